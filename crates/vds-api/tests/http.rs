//! HTTP tests of the API against a real `Provider` on a temporary data dir, with a small
//! data plane that binds real listeners (ports 42000-42049 on loopback). Requests go through
//! the router in-process (tower `oneshot`), except the serve test, which uses a real socket.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use futures::StreamExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use uuid::Uuid;
use vds_api::{router, router_with_metrics, ApiConfig, Auth, Metrics};
use vds_dataplane::{DataPlane, DataView};
use vds_provider::{Provider, ProviderConfig};

/// The bearer token of every test router.
const TOKEN: &str = "test-token-0123456789abcdef";

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

/// Binds real listeners for portals; serves nothing.
#[derive(Default)]
struct TestPlane {
    listeners: Mutex<HashMap<Uuid, TcpListener>>,
}

impl DataPlane for TestPlane {
    fn publish(&self, _view: Arc<DataView>) {}
    fn bind_portal(&self, id: Uuid, addr: SocketAddr) -> std::io::Result<()> {
        let l = TcpListener::bind(addr)?;
        self.listeners.lock().unwrap().insert(id, l);
        Ok(())
    }
    fn unbind_portal(&self, id: Uuid, _logout_timeout: Duration) {
        self.listeners.lock().unwrap().remove(&id);
    }
    fn initiators(&self, _target: Uuid) -> Vec<String> {
        Vec::new()
    }
    fn sessions_snapshot(&self) -> Vec<vds_dataplane::SessionSnapshot> {
        Vec::new()
    }
}

/// Ports 42000..42040 for portals, one per provider; 42040.. for real API listeners.
fn next_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(42000);
    let p = NEXT.fetch_add(1, Ordering::Relaxed);
    assert!(p < 42040, "test port range exhausted");
    p
}

struct Fixture {
    _dir: tempfile::TempDir,
    provider: Arc<Provider>,
    app: Router,
    metrics: Arc<Metrics>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ProviderConfig::new(dir.path().join("data"));
    cfg.first_start_portals = vec![SocketAddr::from(([127, 0, 0, 1], next_port()))];
    cfg.default_lun_size = 16 << 20;
    cfg.fault_injection = true;
    let provider = Arc::new(Provider::open(cfg, Arc::new(TestPlane::default())).unwrap());
    let metrics = Arc::new(Metrics::default());
    let app = router_with_metrics(
        provider.clone(),
        ApiConfig::with_token(TOKEN),
        metrics.clone(),
    );
    Fixture {
        _dir: dir,
        provider,
        app,
        metrics,
    }
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

async fn send_raw(app: &Router, req: Request<Body>) -> Answer {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    Answer {
        status,
        headers,
        body,
    }
}

async fn call(app: &Router, method: Method, uri: &str, body: Option<Value>) -> Answer {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, bearer());
    let body = match body {
        Some(v) => {
            b = b.header(header::CONTENT_TYPE, "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    send_raw(app, b.body(body).unwrap()).await
}

async fn raw_body(app: &Router, method: Method, uri: &str, body: &str) -> Answer {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, bearer())
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    send_raw(app, req).await
}

/// Asserts the error body shape and returns `(name, message)`.
fn error_of(a: &Answer) -> (String, String) {
    let e = a
        .body
        .get("error")
        .unwrap_or_else(|| panic!("no error body: {:?}", a.body));
    let hresult = e["hresult"].as_str().unwrap();
    assert!(
        hresult.len() == 10
            && hresult.starts_with("0x")
            && hresult[2..]
                .chars()
                .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)),
        "{hresult}"
    );
    (
        e["name"].as_str().unwrap().to_string(),
        e["message"].as_str().unwrap().to_string(),
    )
}

async fn subsystem_id(app: &Router) -> String {
    let a = call(app, Method::GET, "/v1/subsystems", None).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    a.body[0]["id"].as_str().unwrap().to_string()
}

async fn create_lun(app: &Router, name: &str) -> Value {
    let sub = subsystem_id(app).await;
    let a = call(
        app,
        Method::POST,
        &format!("/v1/subsystems/{sub}/luns?wait=true"),
        Some(json!({"size_bytes": 4 << 20, "friendly_name": name})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    a.body
}

#[tokio::test]
async fn embedded_default_is_served_with_short_names() {
    let f = fixture();
    let a = call(&f.app, Method::GET, "/v1/provider", None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["type"], "iscsi");
    assert_eq!(a.body["cache"], "valid");
    let sub = subsystem_id(&f.app).await;
    let luns = call(
        &f.app,
        Method::GET,
        &format!("/v1/subsystems/{sub}/luns"),
        None,
    )
    .await;
    assert_eq!(luns.status, StatusCode::OK);
    let lun = &luns.body[0];
    assert_eq!(lun["status"], "online");
    assert_eq!(lun["health"], "healthy");
    assert_eq!(lun["transition_state"], "stable");
    assert_eq!(lun["unmasking_list"], "*");
    let target = lun["targets"][0].as_str().unwrap();
    assert_eq!(lun["lun_numbers"][target], 0);
    for what in ["controllers", "drives", "targets", "portals"] {
        let a = call(
            &f.app,
            Method::GET,
            &format!("/v1/subsystems/{sub}/{what}"),
            None,
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{what}: {:?}", a.body);
        assert!(!a.body.as_array().unwrap().is_empty(), "{what}");
    }
    let portals = call(
        &f.app,
        Method::GET,
        &format!("/v1/subsystems/{sub}/portals"),
        None,
    )
    .await;
    assert_eq!(portals.body[0]["address_type"], "ipv4");
}

#[tokio::test]
async fn malformed_bodies_name_the_field() {
    let f = fixture();
    let sub = subsystem_id(&f.app).await;
    let lun = create_lun(&f.app, "m1").await;
    let id = lun["id"].as_str().unwrap();

    let a = raw_body(
        &f.app,
        Method::POST,
        &format!("/v1/luns/{id}/status"),
        "{\"status\": ",
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let (name, msg) = error_of(&a);
    assert_eq!(name, "E_INVALIDARG");
    assert!(msg.contains("malformed JSON"), "{msg}");

    let a = call(
        &f.app,
        Method::POST,
        &format!("/v1/luns/{id}/status"),
        Some(json!({"status": "sideways"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let (_, msg) = error_of(&a);
    assert!(msg.starts_with("status: "), "{msg}");
    assert!(msg.contains("VDS_LUN_STATUS"), "{msg}");

    let a = call(
        &f.app,
        Method::POST,
        &format!("/v1/subsystems/{sub}/luns"),
        Some(json!({"size_bytes": "big"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(error_of(&a).1.starts_with("size_bytes: "), "{:?}", a.body);

    let a = call(
        &f.app,
        Method::POST,
        &format!("/v1/subsystems/{sub}/luns"),
        Some(json!({"friendly_name": "x"})),
    )
    .await;
    assert!(error_of(&a).1.contains("size_bytes"), "{:?}", a.body);

    let a = call(
        &f.app,
        Method::POST,
        &format!("/v1/subsystems/{sub}/luns"),
        Some(json!({"size_bytes": 1048576, "type": "raid99"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(error_of(&a).1.starts_with("type: "), "{:?}", a.body);

    let a = call(
        &f.app,
        Method::POST,
        &format!("/v1/subsystems/{sub}/luns"),
        Some(json!({"size_bytes": 1048576, "backing": {"kind": "tape"}})),
    )
    .await;
    assert!(error_of(&a).1.starts_with("backing.kind: "), "{:?}", a.body);

    let a = call(
        &f.app,
        Method::PATCH,
        &format!("/v1/luns/{id}"),
        Some(json!({"frendly_name": "y"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(error_of(&a).1.contains("frendly_name"), "{:?}", a.body);

    let a = call(
        &f.app,
        Method::PUT,
        &format!("/v1/luns/{id}/targets"),
        Some(json!({"targets": ["nope"]})),
    )
    .await;
    assert!(error_of(&a).1.starts_with("targets[0]: "), "{:?}", a.body);
}

#[tokio::test]
async fn invalid_ids_not_found_and_deleted_are_distinct() {
    let f = fixture();
    let a = call(&f.app, Method::GET, "/v1/luns/not-a-uuid", None).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let (name, msg) = error_of(&a);
    assert_eq!(name, "E_INVALIDARG");
    assert!(msg.starts_with("id: "), "{msg}");

    let a = call(
        &f.app,
        Method::GET,
        &format!("/v1/luns/{}", Uuid::new_v4()),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(error_of(&a).0, "VDS_E_OBJECT_NOT_FOUND");

    let lun = create_lun(&f.app, "gone").await;
    let id = lun["id"].as_str().unwrap();
    let a = call(&f.app, Method::DELETE, &format!("/v1/luns/{id}"), None).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{:?}", a.body);
    let a = call(&f.app, Method::GET, &format!("/v1/luns/{id}"), None).await;
    assert_eq!(a.status, StatusCode::GONE);
    let e = a.body["error"].clone();
    assert_eq!(e["hresult"], "0x8004240B");
    assert_eq!(e["name"], "VDS_E_OBJECT_DELETED");

    // BEHAVIOUR §2: a deleted object answers DELETED even to a malformed argument.
    let a = call(
        &f.app,
        Method::POST,
        &format!("/v1/luns/{id}/status"),
        Some(json!({"status": "sideways"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::GONE, "{:?}", a.body);
    let a = raw_body(
        &f.app,
        Method::POST,
        &format!("/v1/luns/{id}/extend"),
        "{oops",
    )
    .await;
    assert_eq!(a.status, StatusCode::GONE, "{:?}", a.body);
    let a = call(
        &f.app,
        Method::POST,
        &format!("/v1/luns/{}/status", Uuid::new_v4()),
        Some(json!({"status": 99})),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{:?}", a.body);
}

#[tokio::test]
async fn status_is_passed_through_for_the_provider_to_judge() {
    let f = fixture();
    let lun = create_lun(&f.app, "s1").await;
    let uri = format!("/v1/luns/{}/status", lun["id"].as_str().unwrap());
    for (status, http, name) in [
        (json!(3), 400, Some("E_INVALIDARG")),
        (json!(0), 400, Some("E_INVALIDARG")),
        (json!("unknown"), 400, Some("E_INVALIDARG")),
        (json!("failed"), 422, Some("VDS_E_NOT_SUPPORTED")),
        (json!("VDS_LS_OFFLINE"), 200, None),
        (json!(2), 200, None),
        (json!("online"), 200, None),
    ] {
        let a = call(
            &f.app,
            Method::POST,
            &uri,
            Some(json!({ "status": status })),
        )
        .await;
        assert_eq!(a.status.as_u16(), http, "{status}: {:?}", a.body);
        match name {
            Some(n) => assert_eq!(error_of(&a).0, n, "{status}"),
            None => assert!(a.body["status"].is_string(), "{:?}", a.body),
        }
    }
    let a = call(
        &f.app,
        Method::POST,
        &uri,
        Some(json!({"status": "offline"})),
    )
    .await;
    assert_eq!(a.body["status"], "offline");
}

#[tokio::test]
async fn jobs_answer_202_with_location_and_wait_answers_the_result() {
    let f = fixture();
    let sub = subsystem_id(&f.app).await;
    let a = call(
        &f.app,
        Method::POST,
        &format!("/v1/subsystems/{sub}/luns"),
        Some(json!({"size_bytes": 2 << 20, "friendly_name": "j1"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{:?}", a.body);
    let job_id = a.body["id"].as_str().unwrap().to_string();
    let loc = a.headers[header::LOCATION].to_str().unwrap().to_string();
    assert_eq!(loc, format!("/v1/jobs/{job_id}"));
    assert_eq!(a.body["operation"], "create_lun");
    let a = call(&f.app, Method::POST, &format!("{loc}/wait"), None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["state"], "succeeded", "{:?}", a.body);
    assert_eq!(a.body["percent"], 100);
    assert_eq!(a.body["hresult"], "0x00000000");
    assert_eq!(a.body["output"]["friendly_name"], "j1");
    let a = call(&f.app, Method::GET, &loc, None).await;
    assert_eq!(a.body["state"], "succeeded");

    // ?wait=true: the final status and the output object.
    let lun = create_lun(&f.app, "j2").await;
    let id = lun["id"].as_str().unwrap();
    let a = call(
        &f.app,
        Method::POST,
        &format!("/v1/luns/{id}/extend?wait=true"),
        Some(json!({"bytes": 1 << 20})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(
        a.body["size_bytes"],
        lun["size_bytes"].as_u64().unwrap() + (1 << 20)
    );

    // A job that fails answers its error body with the wait.
    let a = call(
        &f.app,
        Method::POST,
        &format!("/v1/luns/{id}/recover?wait=true"),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{:?}", a.body);
    assert_eq!(error_of(&a).0, "VDS_E_INVALID_OPERATION");

    let a = call(
        &f.app,
        Method::POST,
        &format!("/v1/luns/{id}/extend?wait=maybe"),
        Some(json!({"bytes": 1 << 20})),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(error_of(&a).1.starts_with("wait: "), "{:?}", a.body);

    // Target and portal group: created (201 + Location) and deleted (204) through jobs.
    let a = call(
        &f.app,
        Method::POST,
        &format!("/v1/subsystems/{sub}/targets?wait=true"),
        Some(json!({"friendly_name": "t-jobs"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    let tid = a.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        a.headers[header::LOCATION].to_str().unwrap(),
        format!("/v1/targets/{tid}")
    );
    let a = call(
        &f.app,
        Method::POST,
        &format!("/v1/targets/{tid}/portal-groups?wait=true"),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    let a = call(
        &f.app,
        Method::DELETE,
        &format!("/v1/targets/{tid}?wait=true"),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{:?}", a.body);
    let a = call(&f.app, Method::GET, &format!("/v1/targets/{tid}"), None).await;
    assert_eq!(a.status, StatusCode::GONE);
}

#[tokio::test]
async fn events_stream_one_json_object_per_change() {
    let f = fixture();
    let lun = create_lun(&f.app, "e1").await;
    let id = lun["id"].as_str().unwrap().to_string();
    let resp = f
        .app
        .clone()
        .oneshot(
            Request::get("/v1/events")
                .header(header::AUTHORIZATION, bearer())
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut stream = resp.into_body().into_data_stream();
    let a = call(
        &f.app,
        Method::POST,
        &format!("/v1/luns/{id}/status"),
        Some(json!({"status": "offline"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    let mut text = String::new();
    let event = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let chunk = stream.next().await.expect("stream open").unwrap();
            text.push_str(std::str::from_utf8(&chunk).unwrap());
            if let Some(line) = text
                .lines()
                .find(|l| l.starts_with("data:") && l.contains(&id))
            {
                return serde_json::from_str::<Value>(line.trim_start_matches("data:").trim())
                    .unwrap();
            }
        }
    })
    .await
    .expect("an event within 10 s");
    assert_eq!(event["object_type"], "lun");
    assert_eq!(event["event"], "modify");
    assert_eq!(event["code"], 110);
    let t = event["time"].as_str().unwrap();
    // RFC 3339: 2024-01-02T03:04:05.123Z or with a numeric offset.
    let b = t.as_bytes();
    assert!(
        t.len() >= 20
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'T'
            && b[13] == b':'
            && (t.ends_with('Z') || t[19..].contains('+') || t[19..].contains('-')),
        "{t}"
    );
    let mut m = String::new();
    f.metrics.render_api(&mut m);
    assert!(m.contains("vds_api_event_streams 1\n"), "{m}");
    drop(stream);
}

#[tokio::test]
async fn openapi_describes_every_interface_endpoint() {
    let f = fixture();
    let a = call(&f.app, Method::GET, "/v1/openapi.json", None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body["openapi"].as_str().unwrap().starts_with("3."));
    // BEHAVIOUR §11: the document says every operation needs the bearer token.
    let scheme = &a.body["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http", "{scheme}");
    assert_eq!(
        scheme["scheme"].as_str().map(str::to_lowercase).as_deref(),
        Some("bearer")
    );
    assert_eq!(a.body["security"][0]["bearer"], serde_json::json!([]));
    let paths = a.body["paths"].as_object().unwrap();
    let expected: &[(&str, &str)] = &[
        ("get", "/v1/provider"),
        ("post", "/v1/provider/reenumerate"),
        ("post", "/v1/provider/refresh"),
        ("get", "/v1/provider/version-support"),
        ("get", "/v1/subsystems"),
        ("get", "/v1/subsystems/{id}"),
        ("patch", "/v1/subsystems/{id}"),
        ("post", "/v1/subsystems/{id}/controller-status"),
        ("get", "/v1/subsystems/{id}/interconnects"),
        ("get", "/v1/subsystems/{id}/controllers"),
        ("post", "/v1/subsystems/{id}/controllers"),
        ("get", "/v1/controllers/{id}/luns"),
        ("get", "/v1/luns/{id}/controllers"),
        ("put", "/v1/luns/{id}/controllers"),
        ("get", "/v1/luns/{id}/load-balance"),
        ("put", "/v1/luns/{id}/load-balance"),
        ("get", "/v1/subsystems/{id}/drives"),
        ("get", "/v1/subsystems/{id}/drives/{bus}/{slot}"),
        ("post", "/v1/subsystems/{id}/maintenance"),
        ("post", "/v1/controllers/{id}/maintenance"),
        ("post", "/v1/drives/{id}/maintenance"),
        ("post", "/v1/luns/{id}/maintenance"),
        ("get", "/v1/subsystems/{id}/luns"),
        ("get", "/v1/subsystems/{id}/targets"),
        ("get", "/v1/subsystems/{id}/portals"),
        ("post", "/v1/subsystems/{id}/luns"),
        ("get", "/v1/luns/{id}"),
        ("delete", "/v1/luns/{id}"),
        ("patch", "/v1/luns/{id}"),
        ("post", "/v1/luns/{id}/status"),
        ("post", "/v1/luns/{id}/extend"),
        ("post", "/v1/luns/{id}/shrink"),
        ("post", "/v1/luns/{id}/recover"),
        ("put", "/v1/luns/{id}/faults"),
        ("put", "/v1/luns/{id}/targets"),
        ("post", "/v1/subsystems/{id}/targets"),
        ("get", "/v1/targets/{id}"),
        ("delete", "/v1/targets/{id}"),
        ("patch", "/v1/targets/{id}"),
        ("put", "/v1/targets/{id}/shared-secret"),
        ("put", "/v1/targets/{id}/initiator-secrets/{initiator_name}"),
        ("get", "/v1/targets/{id}/initiators"),
        ("get", "/v1/targets/{id}/sessions"),
        ("get", "/v1/sessions"),
        ("get", "/v1/luns/{id}/paths"),
        ("post", "/v1/targets/{id}/portal-groups"),
        ("get", "/v1/portal-groups/{id}"),
        ("delete", "/v1/portal-groups/{id}"),
        ("post", "/v1/portal-groups/{id}/portals"),
        ("delete", "/v1/portal-groups/{id}/portals/{portal_id}"),
        ("post", "/v1/subsystems/{id}/portals"),
        ("get", "/v1/portals/{id}"),
        ("delete", "/v1/portals/{id}"),
        ("post", "/v1/portals/{id}/status"),
        ("get", "/v1/jobs/{id}"),
        ("post", "/v1/jobs/{id}/wait"),
        ("post", "/v1/jobs/{id}/cancel"),
        ("get", "/v1/events"),
        ("get", "/metrics"),
        ("get", "/v1/openapi.json"),
    ];
    for (method, path) in expected {
        let item = paths.get(*path).unwrap_or_else(|| panic!("{path} missing"));
        assert!(item.get(*method).is_some(), "{method} {path} missing");
    }
    // Every $ref points at a component that exists.
    let schemas = a.body["components"]["schemas"].as_object().unwrap();
    let text = a.body.to_string();
    for r in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = &r[..r.find('"').unwrap()];
        assert!(schemas.contains_key(name), "dangling $ref {name}");
    }
    // And every documented route answers something other than "no such endpoint".
    for (method, path) in expected {
        let uri = path
            .replace("{id}", &Uuid::new_v4().to_string())
            .replace("{portal_id}", &Uuid::new_v4().to_string())
            .replace("{bus}", "0")
            .replace("{slot}", "0")
            .replace("{initiator_name}", "iqn.2024-01.org.example:x");
        if *path == "/v1/events" {
            continue;
        }
        let a = call(&f.app, method.to_uppercase().parse().unwrap(), &uri, None).await;
        assert!(
            a.status != StatusCode::NOT_FOUND || error_of(&a).0 != "E_INVALIDARG",
            "{method} {path} not routed"
        );
        assert_ne!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
    }
}

#[tokio::test]
async fn metrics_count_requests_objects_and_jobs() {
    let f = fixture();
    create_lun(&f.app, "m1").await;
    call(
        &f.app,
        Method::GET,
        &format!("/v1/luns/{}", Uuid::new_v4()),
        None,
    )
    .await;
    let a = f
        .app
        .clone()
        .oneshot(
            Request::get("/metrics")
                .header(header::AUTHORIZATION, bearer())
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(a.status(), StatusCode::OK);
    assert!(a.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = String::from_utf8(
        axum::body::to_bytes(a.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(
        text.contains(
            "vds_api_requests_total{route=\"/v1/luns/{id}\",method=\"GET\",status=\"404\"} 1\n"
        ),
        "{text}"
    );
    assert!(text.contains("vds_api_requests_total{route=\"/v1/subsystems/{id}/luns\",method=\"POST\",status=\"201\"} 1\n"), "{text}");
    assert!(text.contains("vds_objects{kind=\"lun\"} 2\n"), "{text}");
    assert!(
        text.contains("vds_objects{kind=\"subsystem\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("vds_luns{status=\"online\"} 2\n"), "{text}");
    assert!(text.contains("vds_jobs{state=\"succeeded\"} 1\n"), "{text}");
    assert!(text.contains("vds_provider_cache_corrupt 0\n"), "{text}");
    assert_eq!(f.metrics.request_count("/v1/luns/{id}", "GET", 404), 1);
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "bad sample line {line:?}");
    }
}

#[tokio::test]
async fn routing_limits_and_auth_answer_error_bodies() {
    let f = fixture();
    let a = call(&f.app, Method::GET, "/v1/nothing-here", None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(error_of(&a).0, "E_INVALIDARG");
    let a = call(&f.app, Method::PUT, "/v1/provider", None).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_of(&a).0, "E_INVALIDARG");

    let lun = create_lun(&f.app, "big").await;
    let big = format!("{{\"friendly_name\": \"{}\"}}", "x".repeat(2 << 20));
    let a = raw_body(
        &f.app,
        Method::PATCH,
        &format!("/v1/luns/{}", lun["id"].as_str().unwrap()),
        &big,
    )
    .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    let (name, msg) = error_of(&a);
    assert_eq!(name, "E_INVALIDARG");
    assert!(msg.contains("1 MiB"), "{msg}");

    let secured = router(
        f.provider.clone(),
        ApiConfig::with_token("correct-horse-battery"),
    );
    let req = |token: &str| {
        Request::get("/v1/provider")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    let a = send_raw(&secured, req("wrong-horse")).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = send_raw(&secured, req("correct-horse-battery")).await;
    assert_eq!(a.status, StatusCode::OK);

    // Loopback is no exception; only --insecure-loopback-api turns the token off, and only
    // on loopback.
    assert!(ApiConfig::for_listen_addr("127.0.0.1:3280".parse().unwrap(), None, false).is_err());
    let dev = ApiConfig::for_listen_addr("127.0.0.1:3280".parse().unwrap(), None, true).unwrap();
    assert_eq!(dev.auth, Auth::InsecureLoopback);
    for addr in ["0.0.0.0:3280", "10.0.0.1:3280", "[::]:3280"] {
        let e = ApiConfig::for_listen_addr(addr.parse().unwrap(), Some("t".repeat(20)), true)
            .unwrap_err();
        assert!(e.contains("not a loopback"), "{addr}: {e}");
    }
    let open = ApiConfig::for_listen_addr(
        "10.0.0.1:3280".parse().unwrap(),
        Some("t".repeat(20)),
        false,
    )
    .unwrap();
    assert_eq!(open.auth, Auth::Bearer("t".repeat(20)));
}

/// BEHAVIOUR §11: no token or a wrong one is 401 E_ACCESSDENIED with WWW-Authenticate on every
/// route (events and metrics included, unknown routes too), and nothing changes.
#[tokio::test]
async fn every_route_needs_the_bearer_token() {
    let f = fixture();
    let lun = create_lun(&f.app, "keep").await;
    let id = lun["id"].as_str().unwrap();
    let cases = [
        (Method::GET, "/v1/provider".to_string()),
        (Method::GET, "/v1/events".into()),
        (Method::GET, "/metrics".into()),
        (Method::GET, "/v1/openapi.json".into()),
        (Method::DELETE, format!("/v1/luns/{id}")),
        (Method::POST, format!("/v1/luns/{id}/status")),
        (Method::GET, "/v1/no-such-route".into()),
    ];
    for (m, uri) in cases {
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("Bearer "),
            Some("Basic dGVzdA=="),
        ] {
            let mut b = Request::builder().method(m.clone()).uri(&uri);
            if let Some(a) = auth {
                b = b.header(header::AUTHORIZATION, a);
            }
            let a = send_raw(&f.app, b.body(Body::empty()).unwrap()).await;
            assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{m} {uri} {auth:?}");
            assert_eq!(error_of(&a).0, "E_ACCESSDENIED", "{m} {uri}");
            assert_eq!(a.body["error"]["hresult"], "0x80070005");
            assert!(
                a.headers[header::WWW_AUTHENTICATE]
                    .to_str()
                    .unwrap()
                    .starts_with("Bearer"),
                "{m} {uri}"
            );
        }
    }
    assert_eq!(
        call(&f.app, Method::GET, &format!("/v1/luns/{id}"), None)
            .await
            .body["status"],
        "online",
        "nothing changed"
    );
    // metrics_public opens /metrics, and only it.
    let mut cfg = ApiConfig::with_token(TOKEN);
    cfg.metrics_public = true;
    let public = router(f.provider.clone(), cfg);
    let get = |uri: &str| Request::get(uri).body(Body::empty()).unwrap();
    assert_eq!(
        send_raw(&public, get("/metrics")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send_raw(&public, get("/v1/provider")).await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// BEHAVIOUR §11: a Host that is not the API's own address, localhost with its port, or a name
/// in api_hosts is 403 (DNS rebinding), even with the right token.
#[tokio::test]
async fn a_foreign_host_header_is_forbidden() {
    let f = fixture();
    let mut cfg = ApiConfig::with_token(TOKEN);
    cfg.listen = Some("127.0.0.1:3280".parse().unwrap());
    cfg.hosts = vec!["array.example".into()];
    let app = router(f.provider.clone(), cfg);
    let req = |host: &str| {
        Request::get("/v1/provider")
            .header(header::HOST, host)
            .header(header::AUTHORIZATION, bearer())
            .body(Body::empty())
            .unwrap()
    };
    for host in [
        "127.0.0.1:3280",
        "localhost:3280",
        "array.example:3280",
        "array.example",
    ] {
        assert_eq!(
            send_raw(&app, req(host)).await.status,
            StatusCode::OK,
            "{host}"
        );
    }
    for host in [
        "evil.example:3280",
        "evil.example",
        "localhost:8080",
        "127.0.0.1:80",
        "127.0.0.2:3280",
    ] {
        let a = send_raw(&app, req(host)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{host}");
        assert_eq!(error_of(&a).0, "E_ACCESSDENIED");
        assert!(
            !a.headers.contains_key(header::WWW_AUTHENTICATE),
            "not a token problem"
        );
    }
}

/// BEHAVIOUR §11: a body must be declared application/json (415 otherwise), so a browser's
/// form or text/plain POST never reaches a handler; nothing changes.
#[tokio::test]
async fn only_json_bodies_are_accepted() {
    let f = fixture();
    let lun = create_lun(&f.app, "ct").await;
    let id = lun["id"].as_str().unwrap();
    for ct in [
        Some("application/x-www-form-urlencoded"),
        Some("text/plain"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let mut b =
            Request::post(format!("/v1/luns/{id}/status")).header(header::AUTHORIZATION, bearer());
        if let Some(ct) = ct {
            b = b.header(header::CONTENT_TYPE, ct);
        }
        let a = send_raw(
            &f.app,
            b.body(Body::from(r#"{"status":"offline"}"#)).unwrap(),
        )
        .await;
        assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
        let (name, msg) = error_of(&a);
        assert_eq!(name, "E_INVALIDARG");
        assert!(msg.contains("application/json"), "{msg}");
    }
    let a = call(&f.app, Method::GET, &format!("/v1/luns/{id}"), None).await;
    assert_eq!(a.body["status"], "online", "nothing changed");
    // With a charset parameter, and a bodyless POST with no type at all: accepted.
    let a = send_raw(
        &f.app,
        Request::post(format!("/v1/luns/{id}/status"))
            .header(header::AUTHORIZATION, bearer())
            .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
            .body(Body::from(r#"{"status":"online"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    let a = send_raw(
        &f.app,
        Request::post("/v1/provider/refresh")
            .header(header::AUTHORIZATION, bearer())
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn serve_answers_on_a_real_socket_and_stops_on_shutdown() {
    let f = fixture();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let app = router(
        f.provider.clone(),
        ApiConfig {
            listen: Some("127.0.0.1:42040".parse().unwrap()),
            shutdown: Some(rx.clone()),
            ..ApiConfig::with_token(TOKEN)
        },
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 42040))
        .await
        .unwrap();
    let mut stop = rx.clone();
    let server = tokio::spawn(vds_api::serve_with_shutdown(listener, app, async move {
        let _ = stop.wait_for(|v| *v).await;
    }));
    let body = tokio::task::spawn_blocking(|| {
        ureq::get("http://127.0.0.1:42040/v1/provider")
            .set("Authorization", &bearer())
            .call()
            .unwrap()
            .into_string()
            .unwrap()
    })
    .await
    .unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["type"], "iscsi");
    // An open event stream must not hold the shutdown.
    let events = tokio::task::spawn_blocking(|| {
        let r = ureq::get("http://127.0.0.1:42040/v1/events")
            .set("Authorization", &bearer())
            .call()
            .unwrap();
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut r.into_reader(), &mut s);
        s
    });
    // Shut down only once the stream is open (the server counts it in /metrics).
    tokio::task::spawn_blocking(|| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !ureq::get("http://127.0.0.1:42040/metrics")
            .set("Authorization", &bearer())
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
            .is_some_and(|t| t.lines().any(|l| l == "vds_api_event_streams 1"))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the stream never opened"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    })
    .await
    .unwrap();
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server stopped")
        .unwrap()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), events)
        .await
        .expect("stream ended")
        .unwrap();
}

#[tokio::test]
async fn portal_declared_twice_answers_the_existing_one() {
    let f = fixture();
    let sub = subsystem_id(&f.app).await;
    let uri = format!("/v1/subsystems/{sub}/portals");
    let body = json!({"address": "127.0.0.1", "port": 42041});
    let a = call(&f.app, Method::POST, &uri, Some(body.clone())).await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    assert_eq!(a.body["status"], "offline");
    let id = a.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        a.headers[header::LOCATION].to_str().unwrap(),
        format!("/v1/portals/{id}")
    );
    let a = call(&f.app, Method::POST, &uri, Some(body)).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body["id"], id.as_str());
    let a = call(
        &f.app,
        Method::POST,
        &uri,
        Some(json!({"address": "localhost", "port": 1})),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(error_of(&a).1.starts_with("address: "), "{:?}", a.body);

    let st = format!("/v1/portals/{id}/status");
    let a = call(&f.app, Method::POST, &st, Some(json!({"status": "online"}))).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body["status"], "online");
    let a = call(
        &f.app,
        Method::POST,
        &st,
        Some(json!({"status": "VDS_IPS_NOT_READY"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", a.body);
    let a = call(&f.app, Method::POST, &st, Some(json!({"status": 4}))).await;
    assert_eq!(a.body["status"], "offline", "{:?}", a.body);
}

#[tokio::test]
async fn cache_corruption_until_reenumerate_then_refresh() {
    let f = fixture();
    let lun = create_lun(&f.app, "c1").await;
    let id = lun["id"].as_str().unwrap();
    let path = lun["backing"]["path"].as_str().unwrap().to_string();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(8 << 20).unwrap();
    drop(file);

    let a = call(&f.app, Method::GET, &format!("/v1/luns/{id}"), None).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", a.body);
    assert_eq!(error_of(&a).0, "VDS_E_PROVIDER_CACHE_CORRUPT");
    // §2: corruption is answered before a malformed argument.
    let a = call(
        &f.app,
        Method::POST,
        &format!("/v1/luns/{id}/status"),
        Some(json!({"status": "x"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", a.body);
    let a = call(&f.app, Method::GET, "/v1/provider", None).await;
    assert_eq!(a.body["cache"], "corrupt");
    let m = f
        .app
        .clone()
        .oneshot(
            Request::get("/metrics")
                .header(header::AUTHORIZATION, bearer())
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let text = String::from_utf8(
        axum::body::to_bytes(m.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(text.contains("vds_provider_cache_corrupt 1\n"), "{text}");

    let a = call(&f.app, Method::POST, "/v1/provider/refresh", None).await;
    assert!(a.status.is_success(), "{:?}", a.body);
    let a = call(&f.app, Method::GET, &format!("/v1/luns/{id}"), None).await;
    assert_eq!(
        a.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "refresh alone does not cure"
    );

    let a = call(&f.app, Method::POST, "/v1/provider/reenumerate", None).await;
    assert!(a.status.is_success(), "{:?}", a.body);
    let a = call(&f.app, Method::POST, "/v1/provider/refresh", None).await;
    assert!(a.status.is_success(), "{:?}", a.body);
    let a = call(&f.app, Method::GET, &format!("/v1/luns/{id}"), None).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body["size_bytes"], 8 << 20);
}

#[tokio::test]
async fn a_second_call_during_a_slow_flush_is_busy() {
    let f = fixture();
    let lun = create_lun(&f.app, "slow").await;
    let id = lun["id"].as_str().unwrap().to_string();
    let a = call(
        &f.app,
        Method::PUT,
        &format!("/v1/luns/{id}/faults"),
        Some(json!({"filters": [{"delay": {"flush_ms": 1500}}]})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body["backing"]["filters"][0]["delay"]["flush_ms"], 1500);
    let app = f.app.clone();
    let uri = format!("/v1/luns/{id}/status");
    let slow = tokio::spawn({
        let uri = uri.clone();
        async move {
            call(&app, Method::POST, &uri, Some(json!({"status": "offline"})))
                .await
                .status
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let a = call(
        &f.app,
        Method::PATCH,
        &format!("/v1/luns/{id}"),
        Some(json!({"friendly_name": "other"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{:?}", a.body);
    assert_eq!(error_of(&a).0, "VDS_E_ANOTHER_CALL_IN_PROGRESS");
    // Reads are never BUSY.
    let a = call(&f.app, Method::GET, &format!("/v1/luns/{id}"), None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(slow.await.unwrap(), StatusCode::OK);
}

#[tokio::test]
async fn read_only_extension_is_accepted_returned_and_documented() {
    let f = fixture();
    let sub = subsystem_id(&f.app).await;
    // The default LUN is writable.
    let a = call(&f.app, Method::GET, "/v1/luns", None).await;
    assert_eq!(a.body[0]["read_only"], json!(false), "{:?}", a.body);

    let a = call(
        &f.app,
        Method::POST,
        &format!("/v1/subsystems/{sub}/luns?wait=true"),
        Some(
            json!({"size_bytes": 1 << 20, "friendly_name": "ro", "read_only": true,
                    "backing": {"kind": "memory"}}),
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    assert_eq!(a.body["read_only"], json!(true));
    let id = a.body["id"].as_str().unwrap().to_string();
    let a = call(&f.app, Method::GET, &format!("/v1/luns/{id}"), None).await;
    assert_eq!(a.body["read_only"], json!(true));

    let a = call(
        &f.app,
        Method::PATCH,
        &format!("/v1/luns/{id}"),
        Some(json!({"read_only": false})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body["read_only"], json!(false));
    let a = call(&f.app, Method::GET, &format!("/v1/luns/{id}"), None).await;
    assert_eq!(a.body["read_only"], json!(false));

    // Not a bool: E_INVALIDARG naming the field, nothing changed.
    let a = call(
        &f.app,
        Method::PATCH,
        &format!("/v1/luns/{id}"),
        Some(json!({"read_only": "yes"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let (name, msg) = error_of(&a);
    assert_eq!(name, "E_INVALIDARG");
    assert!(msg.starts_with("read_only: "), "{msg}");

    // The OpenAPI document has the field in the LUN and in both request bodies.
    let a = call(&f.app, Method::GET, "/v1/openapi.json", None).await;
    let schemas = &a.body["components"]["schemas"];
    assert_eq!(
        schemas["LunJson"]["properties"]["read_only"]["type"],
        json!("boolean")
    );
    for s in ["CreateLunBody", "PatchLunBody"] {
        assert_eq!(
            schemas[s]["properties"]["read_only"]["type"],
            json!(["boolean", "null"]),
            "{s}: {}",
            schemas[s]
        );
    }
    let required = schemas["LunJson"]["required"].as_array().unwrap();
    assert!(required.contains(&json!("read_only")));
}

/// BEHAVIOUR §2 for every endpoint that takes a body or a query besides its path: an id that
/// names no object answers NOT_FOUND, even when the body or query is malformed as well.
#[tokio::test]
async fn every_body_or_query_is_judged_after_the_object_of_its_path() {
    let f = fixture();
    let none = Uuid::new_v4();
    let bodies: &[(Method, String, &str)] = &[
        (
            Method::POST,
            format!("/v1/subsystems/{none}/status"),
            r#"{"status":"x"}"#,
        ),
        (
            Method::POST,
            format!("/v1/controllers/{none}/status"),
            r#"{"status":"x"}"#,
        ),
        (
            Method::POST,
            format!("/v1/drives/{none}/status"),
            r#"{"status":"x"}"#,
        ),
        (
            Method::POST,
            format!("/v1/luns/{none}/status"),
            r#"{"status":"x"}"#,
        ),
        (
            Method::POST,
            format!("/v1/portals/{none}/status"),
            r#"{"status":"x"}"#,
        ),
        (Method::POST, format!("/v1/subsystems/{none}/luns"), "{oops"),
        (
            Method::POST,
            format!("/v1/subsystems/{none}/targets"),
            "{oops",
        ),
        (
            Method::POST,
            format!("/v1/subsystems/{none}/portals"),
            "{oops",
        ),
        (Method::PATCH, format!("/v1/luns/{none}"), "{oops"),
        (Method::POST, format!("/v1/luns/{none}/extend"), "{oops"),
        (Method::POST, format!("/v1/luns/{none}/shrink"), "{oops"),
        (Method::PUT, format!("/v1/luns/{none}/faults"), "{oops"),
        (Method::PUT, format!("/v1/luns/{none}/targets"), "{oops"),
        (Method::PATCH, format!("/v1/targets/{none}"), "{oops"),
        (
            Method::PUT,
            format!("/v1/targets/{none}/shared-secret"),
            "{oops",
        ),
        (
            Method::PUT,
            format!("/v1/targets/{none}/initiator-secrets/iqn.1991-05.com.microsoft:h"),
            "{oops",
        ),
        (
            Method::POST,
            format!("/v1/portal-groups/{none}/portals"),
            "{oops",
        ),
        (
            Method::POST,
            format!("/v1/subsystems/{none}/maintenance"),
            r#"{"operation":"blink","action":"start"}"#,
        ),
        (
            Method::POST,
            format!("/v1/controllers/{none}/maintenance"),
            "{oops",
        ),
        (
            Method::POST,
            format!("/v1/drives/{none}/maintenance"),
            r#"{"operation":"ping","action":"pulse"}"#,
        ),
        (
            Method::POST,
            format!("/v1/luns/{none}/maintenance"),
            r#"{"operation":"ping","action":"stop","count":2}"#,
        ),
        (
            Method::GET,
            format!("/v1/subsystems/{none}/drives/x/70000"),
            "",
        ),
    ];
    for (method, uri, body) in bodies {
        let a = raw_body(&f.app, method.clone(), uri, body).await;
        assert_eq!(
            a.status,
            StatusCode::NOT_FOUND,
            "{method} {uri}: {:?}",
            a.body
        );
        assert_eq!(error_of(&a).0, "VDS_E_OBJECT_NOT_FOUND", "{method} {uri}");
    }
    let queries: &[(Method, String)] = &[
        (Method::POST, format!("/v1/luns/{none}/recover?wait=maybe")),
        (Method::DELETE, format!("/v1/targets/{none}?wait=maybe")),
        (
            Method::POST,
            format!("/v1/targets/{none}/portal-groups?wait=maybe"),
        ),
        (
            Method::DELETE,
            format!("/v1/portal-groups/{none}?wait=maybe"),
        ),
        (
            Method::DELETE,
            format!(
                "/v1/portal-groups/{none}/portals/{}?wait=maybe",
                Uuid::new_v4()
            ),
        ),
        (
            Method::POST,
            format!("/v1/jobs/{none}/wait?timeout_ms=soon"),
        ),
    ];
    for (method, uri) in queries {
        let a = call(&f.app, method.clone(), uri, None).await;
        assert_eq!(
            a.status,
            StatusCode::NOT_FOUND,
            "{method} {uri}: {:?}",
            a.body
        );
        assert_eq!(error_of(&a).0, "VDS_E_OBJECT_NOT_FOUND", "{method} {uri}");
    }
}

/// BEHAVIOUR.md §14 "Subsystem surface" over HTTP: rename, SetControllerStatus and the two
/// flag answers; a malformed body is judged after the subsystem of the path, names its field,
/// and changes nothing.
#[tokio::test]
async fn subsystem_surface_over_http() {
    let f = fixture();
    let sub = subsystem_id(&f.app).await;
    let gone = Uuid::new_v4();
    // Flag answers: the short names and the exact ULONG.
    let a = call(&f.app, Method::GET, "/v1/provider/version-support", None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, json!({"flags": ["1_0", "1_1"], "value": 3}));
    let a = call(
        &f.app,
        Method::GET,
        &format!("/v1/subsystems/{sub}/interconnects"),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, json!({"flags": ["iscsi"], "value": 4}));
    let a = call(
        &f.app,
        Method::GET,
        &format!("/v1/subsystems/{gone}/interconnects"),
        None,
    )
    .await;
    assert_eq!(error_of(&a).0, "VDS_E_OBJECT_NOT_FOUND");
    // Rename.
    let a = call(
        &f.app,
        Method::PATCH,
        &format!("/v1/subsystems/{sub}"),
        Some(json!({"friendly_name": "array A"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body["friendly_name"], "array A");
    for (body, field) in [
        (json!({"friendly_name": 7}), "friendly_name"),
        (json!({"friendly_name": ""}), "friendly_name"),
        (json!({}), "friendly_name"),
        (json!({"friendly_name": "b", "flags": 1}), "flags"),
    ] {
        let a = call(
            &f.app,
            Method::PATCH,
            &format!("/v1/subsystems/{sub}"),
            Some(body.clone()),
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {:?}", a.body);
        let (name, msg) = error_of(&a);
        assert_eq!(name, "E_INVALIDARG", "{body}");
        assert!(msg.contains(field), "{body}: {msg}");
    }
    // The path's object first: a bad body on a missing subsystem is NOT_FOUND.
    let a = raw_body(
        &f.app,
        Method::PATCH,
        &format!("/v1/subsystems/{gone}"),
        "{",
    )
    .await;
    assert_eq!(error_of(&a).0, "VDS_E_OBJECT_NOT_FOUND");
    let a = call(&f.app, Method::GET, &format!("/v1/subsystems/{sub}"), None).await;
    assert_eq!(a.body["friendly_name"], "array A", "nothing changed");
    // SetControllerStatus.
    let a = call(
        &f.app,
        Method::GET,
        &format!("/v1/subsystems/{sub}/controllers"),
        None,
    )
    .await;
    let ctl = a.body[0]["id"].as_str().unwrap().to_string();
    let uri = format!("/v1/subsystems/{sub}/controller-status");
    for (body, name, needle) in [
        (
            json!({"online": [ctl], "offline": [ctl]}),
            "E_INVALIDARG",
            "offline[0]",
        ),
        (
            json!({"online": [], "offline": []}),
            "E_INVALIDARG",
            "both lists are empty",
        ),
        (json!({"online": [ctl]}), "E_INVALIDARG", "offline"),
        (
            json!({"online": ["not-a-uuid"], "offline": []}),
            "E_INVALIDARG",
            "online",
        ),
        (
            json!({"online": [ctl, gone], "offline": []}),
            "VDS_E_OBJECT_NOT_FOUND",
            "online[1]",
        ),
    ] {
        let a = call(&f.app, Method::POST, &uri, Some(body.clone())).await;
        let (n, msg) = error_of(&a);
        assert_eq!(n, name, "{body}: {msg}");
        assert!(msg.contains(needle), "{body}: {msg}");
    }
    let a = call(
        &f.app,
        Method::POST,
        &format!("/v1/subsystems/{gone}/controller-status"),
        Some(json!({"online": [ctl], "offline": []})),
    )
    .await;
    assert_eq!(error_of(&a).0, "VDS_E_OBJECT_NOT_FOUND");
    let a = call(
        &f.app,
        Method::POST,
        &uri,
        Some(json!({"online": [], "offline": [ctl]})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body[0]["id"], ctl.as_str());
    assert_eq!(a.body[0]["status"], "offline");
    let a = call(
        &f.app,
        Method::POST,
        &uri,
        Some(json!({"online": [ctl], "offline": []})),
    )
    .await;
    assert_eq!(a.body[0]["status"], "online", "{:?}", a.body);
}

/// BEHAVIOUR.md §14 "Subsystem surface": GetDrive(bus, slot) and IVdsMaintenance over HTTP.
#[tokio::test]
async fn get_drive_at_bus_and_slot_and_maintenance_is_not_supported() {
    let f = fixture();
    let sub = subsystem_id(&f.app).await;
    let a = call(
        &f.app,
        Method::GET,
        &format!("/v1/subsystems/{sub}/drives"),
        None,
    )
    .await;
    let drive = a.body[0].clone();
    let (bus, slot) = (
        drive["bus_number"].as_i64().unwrap(),
        drive["slot_number"].as_i64().unwrap(),
    );
    let a = call(
        &f.app,
        Method::GET,
        &format!("/v1/subsystems/{sub}/drives/{bus}/{slot}"),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body["id"], drive["id"]);
    let a = call(
        &f.app,
        Method::GET,
        &format!("/v1/subsystems/{sub}/drives/{bus}/{}", slot + 1),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(error_of(&a).0, "VDS_E_OBJECT_NOT_FOUND");
    for (b, s, field) in [
        ("x", "0", "bus"),
        ("0", "32768", "slot"),
        ("-32769", "0", "bus"),
    ] {
        let a = call(
            &f.app,
            Method::GET,
            &format!("/v1/subsystems/{sub}/drives/{b}/{s}"),
            None,
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{b}/{s}");
        let (name, msg) = error_of(&a);
        assert_eq!(name, "E_INVALIDARG");
        assert!(msg.starts_with(&format!("{field}: ")), "{msg}");
    }

    let lun = create_lun(&f.app, "maint").await;
    let uri = format!("/v1/luns/{}/maintenance", lun["id"].as_str().unwrap());
    for (body, status, name, starts) in [
        (
            json!({"operation": "blink_light", "action": "start"}),
            422,
            "VDS_E_NOT_SUPPORTED",
            "blink_light: ",
        ),
        (
            json!({"operation": "SpinDown", "action": "stop"}),
            422,
            "VDS_E_NOT_SUPPORTED",
            "spin_down: ",
        ),
        (
            json!({"operation": 5, "action": "pulse", "count": 2}),
            422,
            "VDS_E_NOT_SUPPORTED",
            "ping: ",
        ),
        (
            json!({"operation": "blink", "action": "start"}),
            400,
            "E_INVALIDARG",
            "operation: ",
        ),
        (
            json!({"operation": "ping", "action": "wiggle"}),
            400,
            "E_INVALIDARG",
            "action: ",
        ),
        (
            json!({"operation": "ping", "action": "pulse"}),
            400,
            "E_INVALIDARG",
            "count: ",
        ),
        (
            json!({"operation": "ping", "action": "pulse", "count": 0}),
            400,
            "E_INVALIDARG",
            "count: ",
        ),
        (
            json!({"operation": "ping", "action": "start", "count": 1}),
            400,
            "E_INVALIDARG",
            "count: ",
        ),
    ] {
        let a = call(&f.app, Method::POST, &uri, Some(body.clone())).await;
        assert_eq!(a.status.as_u16(), status, "{body}: {:?}", a.body);
        let (n, msg) = error_of(&a);
        assert_eq!(n, name, "{body}");
        assert!(msg.starts_with(starts), "{body}: {msg}");
    }
}

/// BEHAVIOUR.md §14 over HTTP: add a controller (201 + Location), a portal naming it, the
/// portal-group rule's HRESULT, AssociateControllers with its errors judged after the LUN,
/// QueryActiveControllers / QueryAssociatedLuns, and the load-balance policy.
#[tokio::test]
async fn controllers_associations_and_load_balance_over_http() {
    let f = fixture();
    let app = &f.app;
    let sub = subsystem_id(app).await;
    let a = call(
        app,
        Method::POST,
        &format!("/v1/subsystems/{sub}/controllers"),
        Some(json!({})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    let ctl1 = a.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        a.headers[header::LOCATION],
        format!("/v1/controllers/{ctl1}").as_str()
    );
    assert_eq!(a.body["port_group"], 2);
    let a = call(
        app,
        Method::POST,
        &format!("/v1/subsystems/{sub}/controllers"),
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{:?}", a.body);
    let ctls = call(
        app,
        Method::GET,
        &format!("/v1/subsystems/{sub}/controllers"),
        None,
    )
    .await
    .body;
    let ctl0 = ctls
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["port_group"] == 1)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // A portal names its controller; the default group refuses it.
    let port = next_port();
    let a = call(
        app,
        Method::POST,
        &format!("/v1/subsystems/{sub}/portals"),
        Some(json!({"address": "127.0.0.1", "port": port, "controller": ctl1})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    assert_eq!(a.body["controller"], ctl1.as_str());
    let portal = a.body["id"].as_str().unwrap().to_string();
    let target = call(
        app,
        Method::GET,
        &format!("/v1/subsystems/{sub}/targets"),
        None,
    )
    .await
    .body[0]
        .clone();
    let pg = target["portal_groups"][0].as_str().unwrap();
    let a = call(
        app,
        Method::POST,
        &format!("/v1/portal-groups/{pg}/portals"),
        Some(json!({"portal": portal})),
    )
    .await;
    assert_eq!(error_of(&a).0, "VDS_E_INVALID_PORT_PATH", "{:?}", a.body);
    assert_eq!(a.status, StatusCode::CONFLICT);

    let lun = create_lun(app, "alua-http").await;
    let id = lun["id"].as_str().unwrap();
    assert_eq!(lun["active_controllers"], json!([ctl0, ctl1]));
    assert_eq!(lun["load_balance"], "round_robin_with_subset");
    let uri = format!("/v1/luns/{id}/controllers");
    // The LUN first, then the body.
    let a = call(
        app,
        Method::PUT,
        &format!("/v1/luns/{}/controllers", Uuid::new_v4()),
        Some(json!({"active": 7})),
    )
    .await;
    assert_eq!(error_of(&a).0, "VDS_E_OBJECT_NOT_FOUND");
    let a = call(app, Method::PUT, &uri, Some(json!({"active": [ctl1]}))).await;
    let (name, msg) = error_of(&a);
    assert_eq!(
        (name.as_str(), a.status),
        ("E_INVALIDARG", StatusCode::BAD_REQUEST),
        "{msg}"
    );
    assert!(msg.contains("inactive"), "{msg}");
    let a = call(
        app,
        Method::PUT,
        &uri,
        Some(json!({"active": [ctl1], "inactive": [Uuid::new_v4()]})),
    )
    .await;
    assert_eq!(error_of(&a).0, "VDS_E_OBJECT_NOT_FOUND");
    let a = call(
        app,
        Method::PUT,
        &uri,
        Some(json!({"active": [ctl1], "inactive": []})),
    )
    .await;
    assert_eq!(error_of(&a).0, "E_INVALIDARG");
    let a = call(
        app,
        Method::PUT,
        &uri,
        Some(json!({"active": [ctl1], "inactive": [ctl0]})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body.as_array().unwrap().len(), 1);
    assert_eq!(a.body[0]["id"], ctl1.as_str());
    let a = call(app, Method::GET, &uri, None).await;
    assert_eq!(a.body[0]["id"], ctl1.as_str());
    let a = call(
        app,
        Method::GET,
        &format!("/v1/controllers/{ctl0}/luns"),
        None,
    )
    .await;
    assert!(
        a.body.as_array().unwrap().iter().all(|l| l["id"] != id),
        "{:?}",
        a.body
    );
    let a = call(
        app,
        Method::GET,
        &format!("/v1/controllers/{ctl1}/luns"),
        None,
    )
    .await;
    assert!(
        a.body.as_array().unwrap().iter().any(|l| l["id"] == id),
        "{:?}",
        a.body
    );

    // Load balance.
    let uri = format!("/v1/luns/{id}/load-balance");
    let a = call(app, Method::GET, &uri, None).await;
    assert_eq!(
        a.body,
        json!({"policy": "round_robin_with_subset",
        "supported": ["failover", "round_robin", "round_robin_with_subset"], "supported_value": 7})
    );
    for (policy, want) in [
        (json!("weighted_paths"), "VDS_E_NOT_SUPPORTED"),
        (json!(0), "E_INVALIDARG"),
        (json!("unknown"), "E_INVALIDARG"),
        (json!("nonsense"), "E_INVALIDARG"),
    ] {
        let a = call(app, Method::PUT, &uri, Some(json!({"policy": policy}))).await;
        assert_eq!(error_of(&a).0, want, "{policy}: {:?}", a.body);
    }
    let a = call(
        app,
        Method::PUT,
        &uri,
        Some(json!({"policy": "VDS_LBP_FAILOVER"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body["policy"], "failover");
    let a = call(app, Method::GET, &format!("/v1/luns/{id}"), None).await;
    assert_eq!(a.body["load_balance"], "failover");
    assert_eq!(a.body["active_controllers"], json!([ctl1]));
}

/// INTERFACE.md "Web console": the page and its embedded assets are served without the token,
/// with their content types and strict headers; nothing else is (an unknown file under the
/// console prefix, another method, an API route), and the Host check still applies.
#[tokio::test]
async fn the_console_is_public_embedded_and_strict() {
    let f = fixture();
    let get = |uri: &str| Request::get(uri).body(Body::empty()).unwrap();
    let files = [
        ("/", "text/html; charset=utf-8", "<!doctype html>"),
        (
            "/console/index.html",
            "text/html; charset=utf-8",
            "<!doctype html>",
        ),
        (
            "/console/console.js",
            "text/javascript; charset=utf-8",
            "// vds console",
        ),
        (
            "/console/console.css",
            "text/css; charset=utf-8",
            "/* vds console",
        ),
        ("/console/favicon.svg", "image/svg+xml", "<svg"),
    ];
    for (uri, ctype, starts) in files {
        for req in [get(uri), Request::head(uri).body(Body::empty()).unwrap()] {
            let head = req.method() == Method::HEAD;
            let resp = f.app.clone().oneshot(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{uri} head={head}");
            let h = resp.headers().clone();
            assert_eq!(h[header::CONTENT_TYPE], ctype, "{uri}");
            assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{uri}");
            assert_eq!(h[header::X_FRAME_OPTIONS], "DENY", "{uri}");
            let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
            assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
            assert!(csp.contains("script-src 'self'"), "{csp}");
            assert!(csp.contains("default-src 'none'"), "{csp}");
            assert!(
                !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
                "{csp}"
            );
            let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap();
            if head {
                assert!(body.is_empty(), "{uri}: HEAD has no body");
            } else {
                let text = String::from_utf8(body.to_vec()).unwrap();
                assert!(text.trim_start().starts_with(starts), "{uri}: {text:.80}");
            }
        }
    }
    // The page loads only what is embedded, and no inline script.
    let page = send_raw(&f.app, get("/")).await;
    let page = page.body.as_str().unwrap().to_string();
    assert!(page.contains("src=\"/console/console.js\""));
    assert!(!page.contains("<script>"));

    // Without the token: an unknown console file, another method, a path trying to climb out,
    // and the API itself are all refused.
    for (m, uri) in [
        (Method::GET, "/console/missing.js"),
        (Method::GET, "/console/"),
        (Method::GET, "/console/..%2FCargo.toml"),
        (Method::GET, "/console/../Cargo.toml"),
        (Method::GET, "/console/console.js/x"),
        (Method::GET, "/index.html"),
        (Method::POST, "/"),
        (Method::DELETE, "/console/console.js"),
        (Method::GET, "/v1/luns"),
        (Method::GET, "/v1/events"),
    ] {
        let a = send_raw(
            &f.app,
            Request::builder()
                .method(m.clone())
                .uri(uri)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{m} {uri}");
        assert_eq!(error_of(&a).0, "E_ACCESSDENIED", "{m} {uri}");
    }
    // With the token, a file that is not embedded is 404 (never read from disk), as is a
    // climb out of the prefix; a wrong method is 405.
    for uri in [
        "/console/missing.js",
        "/console/..%2FCargo.toml",
        "/console/..%2F..%2F..%2FCargo.toml",
        "/console/console.js/x",
        "/console/../../Cargo.toml",
        "/index.html",
    ] {
        let a = call(&f.app, Method::GET, uri, None).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(error_of(&a).0, "E_INVALIDARG", "{uri}");
    }
    assert_eq!(
        call(&f.app, Method::POST, "/", None).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );

    // The Host rule (DNS rebinding) holds for the console too.
    let mut cfg = ApiConfig::with_token(TOKEN);
    cfg.listen = Some("127.0.0.1:3280".parse().unwrap());
    let bound = router(f.provider.clone(), cfg);
    let with_host = |host: &str| {
        Request::get("/")
            .header(header::HOST, host)
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(
        send_raw(&bound, with_host("127.0.0.1:3280")).await.status,
        StatusCode::OK
    );
    let a = send_raw(&bound, with_host("evil.example:3280")).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(error_of(&a).0, "E_ACCESSDENIED");
}
