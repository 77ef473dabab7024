//! Fuzz target: the HTTP API router. Random method, path (known routes with live, unknown or
//! garbage ids, percent-escapes, queries), headers and body (fuzzed bytes or JSON built from
//! the API's field names) go through `vds_api::router` on a real `Provider` in a temporary data
//! dir, in-process with tower `oneshot`. Nothing panics, and every error response carries the
//! error body of INTERFACE.md (`hresult` as `0x` + 8 upper-case hex digits, a name, a message).
//!
//! Safety of the host: the data plane binds nothing, and any `path` key is removed from JSON
//! bodies so that no backing store outside the temporary data dir is ever opened, created or
//! freed (the API would otherwise accept absolute file and device paths, as designed).
#![no_main]

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tower::ServiceExt;
use uuid::Uuid;
use vds_dataplane::{DataPlane, DataView};
use vds_provider::{Provider, ProviderConfig};

/// Serves nothing and binds nothing.
struct NoPlane;

impl DataPlane for NoPlane {
    fn publish(&self, _view: Arc<DataView>) {}
    fn bind_portal(&self, _id: Uuid, _addr: SocketAddr) -> std::io::Result<()> {
        Ok(())
    }
    fn unbind_portal(&self, _id: Uuid, _t: Duration) {}
    fn initiators(&self, _target: Uuid) -> Vec<String> {
        Vec::new()
    }
    fn sessions_snapshot(&self) -> Vec<vds_dataplane::SessionSnapshot> {
        Vec::new()
    }
}

/// The token of the fuzzed router (every request carries it).
const TOKEN: &str = "fuzz-token-0123456789";

struct World {
    rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
    app: axum::Router,
    ids: Vec<String>,
    runs: u32,
}

impl World {
    fn new() -> World {
        // On a memory filesystem when there is one: the store syncs every commit.
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            tempfile::tempdir_in("/dev/shm")
        } else {
            tempfile::tempdir()
        }
        .expect("tempdir");
        let mut cfg = ProviderConfig::new(dir.path().join("data"));
        cfg.first_start_portals = vec![SocketAddr::from(([127, 0, 0, 1], 3260))];
        cfg.default_lun_size = 1 << 20;
        let provider = Arc::new(Provider::open(cfg, Arc::new(NoPlane)).expect("provider"));
        let app = vds_api::router(provider, vds_api::ApiConfig::with_token(TOKEN));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let mut w = World {
            rt,
            _dir: dir,
            app,
            ids: Vec::new(),
            runs: 0,
        };
        for p in ["/v1/subsystems", "/v1/luns", "/v1/jobs"] {
            let (_, body) = w.send(Method::GET, p, Vec::new(), None);
            collect_ids(&body, &mut w.ids);
        }
        w
    }

    fn send(
        &mut self,
        method: Method,
        uri: &str,
        body: Vec<u8>,
        ctype: Option<&str>,
    ) -> (u16, Value) {
        // Authorised: the fuzzer explores the handlers, not the token check.
        let mut b = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {TOKEN}"));
        if let Some(c) = ctype {
            b = b.header("content-type", c);
        }
        let Ok(req) = b.body(Body::from(body)) else {
            return (0, Value::Null); // not an HTTP request at all (bad URI)
        };
        let stream = uri.contains("events");
        let app = self.app.clone();
        self.rt.block_on(async move {
            let resp = app.oneshot(req).await.expect("router is infallible");
            let status = resp.status().as_u16();
            if stream {
                return (status, Value::Null);
            }
            let bytes = axum::body::to_bytes(resp.into_body(), 8 << 20)
                .await
                .expect("body");
            let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            (status, v)
        })
    }
}

fn collect_ids(v: &Value, ids: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if let (true, Value::String(s)) = (k == "id" || k.ends_with("_id"), x) {
                    if ids.len() < 64 && !ids.contains(s) {
                        ids.push(s.clone());
                    }
                }
                collect_ids(x, ids);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_ids(x, ids)),
        _ => {}
    }
}

/// Removes every `path` key (see the header: nothing outside the temporary dir is touched).
fn strip_paths(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("path");
            m.values_mut().for_each(strip_paths);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_paths),
        _ => {}
    }
}

const ROUTES: &[&str] = &[
    "/v1/provider",
    "/v1/provider/reenumerate",
    "/v1/provider/refresh",
    "/v1/subsystems",
    "/v1/subsystems/{}",
    "/v1/subsystems/{}/status",
    "/v1/subsystems/{}/controllers",
    "/v1/subsystems/{}/drives",
    "/v1/subsystems/{}/luns",
    "/v1/subsystems/{}/targets",
    "/v1/subsystems/{}/portals",
    "/v1/controllers/{}",
    "/v1/controllers/{}/status",
    "/v1/drives/{}",
    "/v1/drives/{}/status",
    "/v1/luns",
    "/v1/luns/{}",
    "/v1/luns/{}/status",
    "/v1/luns/{}/extend",
    "/v1/luns/{}/shrink",
    "/v1/luns/{}/recover",
    "/v1/luns/{}/faults",
    "/v1/luns/{}/targets",
    "/v1/targets/{}",
    "/v1/targets/{}/shared-secret",
    "/v1/targets/{}/initiator-secrets/{}",
    "/v1/targets/{}/initiators",
    "/v1/targets/{}/portal-groups",
    "/v1/portal-groups/{}",
    "/v1/portal-groups/{}/portals",
    "/v1/portal-groups/{}/portals/{}",
    "/v1/portals/{}",
    "/v1/portals/{}/status",
    "/v1/jobs",
    "/v1/jobs/{}",
    "/v1/jobs/{}/wait",
    "/v1/jobs/{}/cancel",
    "/v1/openapi.json",
    "/metrics",
];

const FIELDS: &[&str] = &[
    "status",
    "size_bytes",
    "friendly_name",
    "name",
    "unmasking_list",
    "type",
    "thin",
    "backing",
    "kind",
    "filters",
    "error",
    "delay",
    "ops",
    "after",
    "targets",
    "target",
    "lun_number",
    "iscsi_name",
    "secret",
    "initiator_name",
    "portal",
    "address",
    "port",
    "portal_group",
    "read_ms",
    "write_ms",
    "flush_ms",
    "rebuild_priority",
    "wait",
];

fn json(u: &mut Unstructured<'_>, ids: &[String], depth: u8) -> Result<Value> {
    Ok(match u.int_in_range(0..=9u8)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::from(u.arbitrary::<i64>()?),
        3 => Value::from(u.int_in_range(0..=6u64)?),
        4 => Value::from(u.arbitrary::<f64>()?),
        5 => Value::from(*u.choose(&[
            "online",
            "offline",
            "not_ready",
            "failed",
            "unknown",
            "VDS_LS_OFFLINE",
            "*",
            "",
            "file",
            "memory",
            "null",
            "block",
            "iqn.2026-01.fuzz:x",
            "127.0.0.1",
            "read",
            "write",
            "flush",
            "simple",
            "1MiB",
            "secret-secret-1",
        ])?),
        6 if !ids.is_empty() => Value::from(u.choose(ids)?.clone()),
        7 if depth < 3 => {
            let n = u.int_in_range(0..=3)?;
            Value::Array(
                (0..n)
                    .map(|_| json(u, ids, depth + 1))
                    .collect::<Result<_>>()?,
            )
        }
        8 | 9 if depth < 3 => {
            let mut m = serde_json::Map::new();
            for _ in 0..u.int_in_range(0..=5)? {
                let k = u.choose(FIELDS)?.to_string();
                m.insert(k, json(u, ids, depth + 1)?);
            }
            Value::Object(m)
        }
        _ => Value::from(String::from_utf8_lossy(u.arbitrary::<&[u8]>()?).into_owned()),
    })
}

fn segment(u: &mut Unstructured<'_>, ids: &[String]) -> Result<String> {
    Ok(match u.int_in_range(0..=5u8)? {
        0 | 1 | 2 if !ids.is_empty() => u.choose(ids)?.clone(),
        3 => Uuid::from_u128(u.arbitrary()?).to_string(),
        4 => "iqn.2026-01.fuzz:init".into(),
        _ => {
            let raw: &[u8] = u.arbitrary()?;
            raw.iter()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(b) {
                        (*b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect()
        }
    })
}

fn run(u: &mut Unstructured<'_>, w: &mut World) -> Result<()> {
    for _ in 0..u.int_in_range(1..=6u8)? {
        let method = u
            .choose(&[
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
                Method::HEAD,
                Method::OPTIONS,
            ])?
            .clone();
        let route = *u.choose(ROUTES)?;
        let mut uri = String::new();
        for (i, part) in route.split("{}").enumerate() {
            if i > 0 {
                uri.push_str(&segment(u, &w.ids)?);
            }
            uri.push_str(part);
        }
        if u.ratio(1, 4)? {
            uri.push_str(u.choose(&["?wait=true", "?wait=false", "?wait=maybe", "?x=%ZZ", "?"])?);
        }
        let body = match u.int_in_range(0..=4u8)? {
            0 => Vec::new(),
            1 => {
                // Raw bytes; JSON among them is made safe the same way.
                let raw = u.arbitrary::<&[u8]>()?.to_vec();
                match serde_json::from_slice::<Value>(&raw) {
                    Ok(mut v) => {
                        strip_paths(&mut v);
                        serde_json::to_vec(&v).unwrap_or_default()
                    }
                    Err(_) => raw,
                }
            }
            _ => {
                let mut v = json(u, &w.ids, 0)?;
                strip_paths(&mut v);
                serde_json::to_vec(&v).unwrap_or_default()
            }
        };
        let ctype = *u.choose(&[Some("application/json"), None, Some("text/plain")])?;
        let (status, v) = w.send(method.clone(), &uri, body, ctype);
        if status >= 400 && method != Method::HEAD {
            let e = &v["error"];
            let h = e["hresult"].as_str().unwrap_or_else(|| {
                panic!("{method} {uri} answered {status} without an error body: {v}")
            });
            assert!(
                h.len() == 10
                    && h.starts_with("0x")
                    && h[2..]
                        .bytes()
                        .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c)),
                "bad hresult {h:?}"
            );
            assert!(e["name"].is_string() && e["message"].is_string(), "{v}");
        }
        collect_ids(&v, &mut w.ids);
    }
    Ok(())
}

thread_local! {
    static WORLD: RefCell<Option<World>> = const { RefCell::new(None) };
}

fuzz_target!(|input: &[u8]| {
    WORLD.with(|cell| {
        let mut slot = cell.borrow_mut();
        // A fresh provider now and then, so that state does not grow without bound.
        if slot.as_ref().is_none_or(|w| w.runs >= 500) {
            *slot = None;
            *slot = Some(World::new());
        }
        let w = slot.as_mut().expect("world");
        w.runs += 1;
        let mut u = Unstructured::new(input);
        let _ = run(&mut u, w);
    });
});
