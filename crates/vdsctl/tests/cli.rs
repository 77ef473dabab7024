//! Runs the built `vdsctl` binary against a real API (an in-process `vds-api` server over a
//! real `Provider` on a temporary data dir, listening on 127.0.0.1:42050-42069) and checks
//! output, exit codes 0/1/2/3 and the `error: NAME (0xHHHHHHHH): message` line.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use uuid::Uuid;
use vds_dataplane::{DataPlane, DataView};
use vds_provider::{Provider, ProviderConfig};

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

/// Nothing listens here: the "API unreachable" case.
const DEAD_PORT: u16 = 42099;

struct Server {
    url: String,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The token of the servers most tests use (vdsctl gets it through `VDS_TOKEN`).
const TOKEN: &str = "cli-test-token-0123456789";

fn server() -> Server {
    server_with(vds_api::Auth::Bearer(TOKEN.into()))
}

fn server_with(auth: vds_api::Auth) -> Server {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let i = NEXT.fetch_add(1, Ordering::Relaxed);
    assert!(i < 20, "test port range exhausted");
    let (api_port, portal_port) = (42050 + i, 42070 + i);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ProviderConfig::new(dir.path().join("data"));
    cfg.first_start_portals = vec![SocketAddr::from(([127, 0, 0, 1], portal_port))];
    cfg.default_lun_size = 16 << 20;
    cfg.fault_injection = true;
    let provider = Arc::new(Provider::open(cfg, Arc::new(TestPlane::default())).unwrap());
    let (tx, rx) = tokio::sync::watch::channel(false);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", api_port))
                .await
                .unwrap();
            let app = vds_api::router(
                provider,
                vds_api::ApiConfig {
                    auth,
                    listen: Some(SocketAddr::from(([127, 0, 0, 1], api_port))),
                    hosts: Vec::new(),
                    metrics_public: false,
                    shutdown: Some(rx.clone()),
                },
            );
            ready_tx.send(()).unwrap();
            let mut stop = rx;
            vds_api::serve_with_shutdown(listener, app, async move {
                let _ = stop.wait_for(|v| *v).await;
            })
            .await
            .unwrap();
        });
    });
    ready_rx.recv().unwrap();
    Server {
        url: format!("http://127.0.0.1:{api_port}"),
        stop: Some(tx),
        thread: Some(thread),
        _dir: dir,
    }
}

fn vdsctl(api: &str, args: &[&str]) -> Output {
    vdsctl_token(api, Some(TOKEN), args)
}

/// `vdsctl` with `VDS_TOKEN` set to `token` (or unset), no `VDS_DATA_DIR`, run in an empty
/// directory (so no `./vds-data/api-token` is found by accident).
fn vdsctl_token(api: &str, token: Option<&str>, args: &[&str]) -> Output {
    let cwd = tempfile::tempdir().unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_vdsctl"));
    c.arg("--api")
        .arg(api)
        .args(args)
        .current_dir(cwd.path())
        .env_remove("VDS_TOKEN")
        .env_remove("VDS_DATA_DIR");
    if let Some(t) = token {
        c.env("VDS_TOKEN", t);
    }
    c.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(api: &str, args: &[&str]) -> String {
    let o = vdsctl(api, args);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    stdout(&o)
}

/// Asserts exit 1 and the error line; returns the HRESULT name.
fn provider_error(api: &str, args: &[&str]) -> String {
    let o = vdsctl(api, args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
    let line = err.lines().next().unwrap_or("");
    // error: NAME (0xHHHHHHHH): message
    let rest = line
        .strip_prefix("error: ")
        .unwrap_or_else(|| panic!("{line}"));
    let (name, rest) = rest.split_once(" (0x").unwrap_or_else(|| panic!("{line}"));
    let (hex, message) = rest.split_once("): ").unwrap_or_else(|| panic!("{line}"));
    assert_eq!(hex.len(), 8, "{line}");
    assert!(
        hex.chars()
            .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)),
        "{line}"
    );
    assert!(!message.is_empty(), "{line}");
    name.to_string()
}

#[test]
fn lun_lifecycle_by_name_with_tables_and_json() {
    let s = server();
    let api = s.url.as_str();

    let show = ok(api, &["provider", "show"]);
    assert!(show.contains("type:") && show.contains("iscsi"), "{show}");

    let table = ok(api, &["lun", "list"]);
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("ID") && header.contains("STATUS"),
        "{table}"
    );
    assert_eq!(
        table.lines().count(),
        2,
        "the embedded default LUN: {table}"
    );

    let created = ok(api, &["lun", "create", "--size", "8MiB", "--name", "db1"]);
    assert!(
        created.contains("friendly_name:") && created.contains("db1"),
        "{created}"
    );
    assert!(created.contains("8388608 (8 MiB)"), "{created}");

    let json: Value = serde_json::from_str(&ok(api, &["--json", "lun", "show", "db1"])).unwrap();
    assert_eq!(json["friendly_name"], "db1");
    let id = json["id"].as_str().unwrap().to_string();

    let list: Value = serde_json::from_str(&ok(api, &["--json", "lun", "list"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);

    let off = ok(api, &["lun", "set-status", "db1", "offline"]);
    assert!(
        off.lines()
            .any(|l| l.starts_with("status:") && l.ends_with("offline")),
        "{off}"
    );
    ok(api, &["lun", "set-status", &id, "VDS_LS_ONLINE"]);
    ok(api, &["lun", "set-status", "db1", "2"]);

    let grown: Value =
        serde_json::from_str(&ok(api, &["--json", "lun", "extend", "db1", "1MiB"])).unwrap();
    assert_eq!(grown["size_bytes"], 9 << 20);

    ok(api, &["lun", "rename", "db1", "db2"]);
    ok(
        api,
        &["lun", "set-mask", "db2", "iqn.1991-05.com.microsoft:host1"],
    );
    let shown: Value = serde_json::from_str(&ok(api, &["--json", "lun", "show", "db2"])).unwrap();
    assert_eq!(shown["unmasking_list"], "iqn.1991-05.com.microsoft:host1");

    let job: Value = serde_json::from_str(&ok(
        api,
        &["--json", "--no-wait", "lun", "extend", "db2", "1MiB"],
    ))
    .unwrap();
    let job_id = job["id"].as_str().unwrap();
    let waited: Value = serde_json::from_str(&ok(api, &["--json", "job", "wait", job_id])).unwrap();
    assert_eq!(waited["state"], "succeeded");

    ok(api, &["lun", "delete", "db2"]);
    assert_eq!(
        provider_error(api, &["lun", "show", &id]),
        "VDS_E_OBJECT_DELETED"
    );
}

#[test]
fn provider_errors_exit_1_with_the_error_line() {
    let s = server();
    let api = s.url.as_str();
    assert_eq!(
        provider_error(api, &["lun", "show", "no-such-lun"]),
        "VDS_E_OBJECT_NOT_FOUND"
    );
    assert_eq!(
        provider_error(api, &["lun", "show", &Uuid::new_v4().to_string()]),
        "VDS_E_OBJECT_NOT_FOUND"
    );
    let lun: Value = serde_json::from_str(&ok(api, &["--json", "lun", "list"])).unwrap();
    let id = lun[0]["id"].as_str().unwrap();
    assert_eq!(
        provider_error(api, &["lun", "set-status", id, "failed"]),
        "VDS_E_NOT_SUPPORTED"
    );
    assert_eq!(
        provider_error(api, &["lun", "set-status", id, "3"]),
        "E_INVALIDARG"
    );
    assert_eq!(
        provider_error(api, &["lun", "set-status", id, "sideways"]),
        "E_INVALIDARG"
    );
    assert_eq!(
        provider_error(api, &["lun", "recover", id]),
        "VDS_E_INVALID_OPERATION"
    );
}

#[test]
fn usage_errors_exit_2() {
    let s = server();
    let api = s.url.as_str();
    for args in [
        &["lun", "create", "--size", "lots"][..],
        &["lun", "create", "--size", "1.5B"],
        &["lun", "extend", "x"],
        &["lun", "frobnicate"],
        &["portal-group", "show", "not-a-uuid"],
        &["job", "show", "12"],
        &["portal", "show", "not-an-address"],
        &["portal", "set", "127.0.0.1:42087"],
        &[
            "portal",
            "set",
            "127.0.0.1:42087",
            "--advertise",
            "h:1",
            "--no-advertise",
        ],
    ] {
        let o = vdsctl(api, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).is_empty());
    }
}

/// BEHAVIOUR.md §4 "Addresses in SendTargets": `portal add --advertise`, `portal set
/// --advertise` / `--no-advertise`, shown by `portal show` and `portal list`; a bad value is
/// the provider's E_INVALIDARG and changes nothing.
#[test]
fn portal_advertised_address_set_shown_and_cleared() {
    let s = server();
    let api = s.url.as_str();
    let p: Value = serde_json::from_str(&ok(
        api,
        &[
            "--json",
            "portal",
            "add",
            "127.0.0.1:42087",
            "--advertise",
            "10.0.2.100:3260",
        ],
    ))
    .unwrap();
    assert_eq!(p["advertise"], "10.0.2.100:3260");
    let shown = ok(api, &["portal", "show", "127.0.0.1:42087"]);
    assert!(shown.contains("10.0.2.100:3260"), "{shown}");
    let list = ok(api, &["portal", "list"]);
    assert!(list.contains("ADVERTISE"), "{list}");
    let row = list
        .lines()
        .find(|l| l.contains("127.0.0.1:42087"))
        .unwrap();
    assert!(row.contains("10.0.2.100:3260"), "{list}");

    let p: Value = serde_json::from_str(&ok(
        api,
        &[
            "--json",
            "portal",
            "set",
            "127.0.0.1:42087",
            "--advertise",
            "[fd00::1]:13260",
        ],
    ))
    .unwrap();
    assert_eq!(p["advertise"], "[fd00::1]:13260");
    for bad in ["fd00::1:3260", "gw:3260,1", "gw"] {
        assert_eq!(
            provider_error(
                api,
                &["portal", "set", "127.0.0.1:42087", "--advertise", bad]
            ),
            "E_INVALIDARG",
            "{bad}"
        );
    }
    let o = vdsctl(
        api,
        &["portal", "set", "127.0.0.1:42087", "--advertise", "gw:0"],
    );
    assert!(stderr(&o).contains("advertise: "), "{}", stderr(&o));
    let p: Value =
        serde_json::from_str(&ok(api, &["--json", "portal", "show", "127.0.0.1:42087"])).unwrap();
    assert_eq!(
        p["advertise"], "[fd00::1]:13260",
        "a bad value changed nothing"
    );

    let p: Value = serde_json::from_str(&ok(
        api,
        &[
            "--json",
            "portal",
            "set",
            "127.0.0.1:42087",
            "--no-advertise",
        ],
    ))
    .unwrap();
    assert!(p["advertise"].is_null(), "{p}");
    let row = ok(api, &["portal", "list"])
        .lines()
        .find(|l| l.contains("127.0.0.1:42087"))
        .unwrap()
        .to_string();
    assert!(row.trim_end().ends_with('-'), "{row}");
    // A bad value at create: nothing is made.
    assert_eq!(
        provider_error(
            api,
            &["portal", "add", "127.0.0.1:42086", "--advertise", "a b:1"]
        ),
        "E_INVALIDARG"
    );
    assert_eq!(
        provider_error(api, &["portal", "show", "127.0.0.1:42086"]),
        "VDS_E_OBJECT_NOT_FOUND"
    );
}

#[test]
fn unreachable_api_exits_3() {
    let o = vdsctl(
        &format!("http://127.0.0.1:{DEAD_PORT}"),
        &["provider", "show"],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with("error: cannot reach the vds API"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn targets_portals_and_portal_groups_by_name() {
    let s = server();
    let api = s.url.as_str();
    let t: Value = serde_json::from_str(&ok(
        api,
        &[
            "--json",
            "target",
            "create",
            "web",
            "--iqn",
            "iqn.2024-01.org.example:web",
        ],
    ))
    .unwrap();
    assert_eq!(t["iscsi_name"], "iqn.2024-01.org.example:web");
    ok(api, &["target", "show", "web"]);
    ok(api, &["target", "show", "iqn.2024-01.org.example:web"]);
    let targets = ok(api, &["target", "list"]);
    assert!(targets.contains("iqn.2024-01.org.example:web"), "{targets}");

    let pg: Value =
        serde_json::from_str(&ok(api, &["--json", "portal-group", "create", "web"])).unwrap();
    let pg_id = pg["id"].as_str().unwrap();
    let p: Value =
        serde_json::from_str(&ok(api, &["--json", "portal", "add", "127.0.0.1:42089"])).unwrap();
    assert_eq!(p["status"], "offline");
    ok(api, &["portal", "show", "127.0.0.1:42089"]);
    let with: Value = serde_json::from_str(&ok(
        api,
        &[
            "--json",
            "portal-group",
            "add-portal",
            pg_id,
            "127.0.0.1:42089",
        ],
    ))
    .unwrap();
    assert_eq!(with["portals"].as_array().unwrap().len(), 1);
    let groups = ok(api, &["portal-group", "list", "--target", "web"]);
    assert!(groups.contains(pg_id), "{groups}");
    assert_eq!(
        provider_error(api, &["portal-group", "delete", pg_id]),
        "VDS_E_ASSOCIATED_PORTALS_EXIST"
    );
    ok(
        api,
        &["portal-group", "remove-portal", pg_id, "127.0.0.1:42089"],
    );
    ok(
        api,
        &["target", "set-secret", "web", "--secret", "0123456789abcd"],
    );
    let shown: Value =
        serde_json::from_str(&ok(api, &["--json", "target", "show", "web"])).unwrap();
    assert_eq!(shown["chap_enabled"], true);
    let short = provider_error(api, &["target", "set-secret", "web", "--secret", "short"]);
    assert!(
        short == "E_INVALIDARG" || short == "VDS_E_ISCSI_CHAP_SECRET",
        "{short}"
    );
    ok(api, &["target", "delete", "web"]);
    assert_eq!(
        provider_error(api, &["target", "show", "web"]),
        "VDS_E_OBJECT_NOT_FOUND"
    );
    ok(api, &["portal", "delete", "127.0.0.1:42089"]);
    ok(api, &["subsystem", "list"]);
    ok(api, &["controller", "list"]);
    ok(api, &["drive", "list"]);
}

/// BEHAVIOUR §11: vdsctl takes `--token`, then `VDS_TOKEN`, then the file `api-token` in
/// `VDS_DATA_DIR` or `./vds-data`; without any, the API answers 401 E_ACCESSDENIED (exit 1).
#[test]
fn bearer_token_comes_from_flag_env_or_data_dir_file() {
    const GOOD: &str = "open-sesame-0123456789";
    let s = server_with(vds_api::Auth::Bearer(GOOD.into()));
    let api = s.url.as_str();
    let show = ["provider", "show"];
    let o = vdsctl_token(api, None, &show);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("E_ACCESSDENIED (0x80070005)"),
        "{}",
        stderr(&o)
    );
    let o = vdsctl_token(api, Some("wrong"), &show);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // VDS_TOKEN.
    let o = vdsctl_token(api, Some(GOOD), &show);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // --token wins over a wrong VDS_TOKEN.
    let o = vdsctl_token(api, Some("wrong"), &["--token", GOOD, "provider", "show"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = vdsctl_token(api, Some(GOOD), &["--token", "wrong", "provider", "show"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "--token comes first: {}",
        stderr(&o)
    );
    // The file in VDS_DATA_DIR, then ./vds-data.
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("api-token"), format!("{GOOD}\n")).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_vdsctl"))
        .args(["--api", api, "provider", "show"])
        .env_remove("VDS_TOKEN")
        .env("VDS_DATA_DIR", data.path())
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "VDS_DATA_DIR: {}", stderr(&o));
    let cwd = tempfile::tempdir().unwrap();
    std::fs::create_dir(cwd.path().join("vds-data")).unwrap();
    std::fs::write(cwd.path().join("vds-data/api-token"), GOOD).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_vdsctl"))
        .args(["--api", api, "provider", "show"])
        .env_remove("VDS_TOKEN")
        .env_remove("VDS_DATA_DIR")
        .current_dir(cwd.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "./vds-data: {}", stderr(&o));
}

#[test]
fn events_prints_one_line_per_event() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let s = server();
    let api = s.url.clone();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vdsctl"))
        .args(["--api", &api, "--token", TOKEN, "--json", "events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let lun: Value = serde_json::from_str(&ok(&api, &["--json", "lun", "list"])).unwrap();
    let id = lun[0]["id"].as_str().unwrap().to_string();
    // The stream may not be subscribed yet when the first change happens: toggle until a
    // line arrives (bounded).
    let mut got = None;
    for i in 0..20 {
        let status = if i % 2 == 0 { "offline" } else { "online" };
        ok(&api, &["lun", "set-status", &id, status]);
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
            got = Some(line);
            break;
        }
    }
    child.kill().unwrap();
    let _ = child.wait();
    let _ = reader.join();
    let line = got.expect("an event line from vdsctl events");
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["object_type"], "lun");
    assert_eq!(v["event"], "modify");
    assert_eq!(v["code"], 110);
    assert_eq!(v["id"], id.as_str());
}

#[test]
fn every_remaining_verb_runs() {
    let s = server();
    let api = s.url.as_str();
    ok(api, &["provider", "reenumerate"]);
    ok(api, &["provider", "refresh"]);

    let subs: Value = serde_json::from_str(&ok(api, &["--json", "subsystem", "list"])).unwrap();
    let sub_id = subs[0]["id"].as_str().unwrap();
    let sub_name = subs[0]["friendly_name"].as_str().unwrap();
    ok(api, &["subsystem", "show", sub_id]);
    ok(api, &["subsystem", "show", sub_name]);
    ok(api, &["lun", "list", "--subsystem", sub_name]);
    for noun in ["controller", "drive"] {
        let items: Value = serde_json::from_str(&ok(api, &["--json", noun, "list"])).unwrap();
        let id = items[0]["id"].as_str().unwrap();
        let name = items[0]["friendly_name"].as_str().unwrap();
        let by_id: Value = serde_json::from_str(&ok(api, &["--json", noun, "show", id])).unwrap();
        let by_name: Value =
            serde_json::from_str(&ok(api, &["--json", noun, "show", name])).unwrap();
        assert_eq!(by_id, by_name);
        assert_eq!(
            provider_error(api, &[noun, "show", &Uuid::new_v4().to_string()]),
            "VDS_E_OBJECT_NOT_FOUND"
        );
    }

    ok(api, &["target", "create", "t2"]);
    ok(api, &["target", "rename", "t2", "t3"]);
    ok(
        api,
        &[
            "target",
            "remember-secret",
            "t3",
            "iqn.1991-05.com.microsoft:h",
            "--secret",
            "abcdefghijklmn",
        ],
    );
    ok(api, &["target", "initiators", "t3"]);
    ok(
        api,
        &[
            "lun", "create", "--size", "4M", "--name", "l2", "--target", "t3", "--mask", "*",
        ],
    );
    let l: Value = serde_json::from_str(&ok(api, &["--json", "lun", "show", "l2"])).unwrap();
    assert_eq!(l["targets"].as_array().unwrap().len(), 1);
    ok(api, &["lun", "set-targets", "l2"]);
    let l: Value = serde_json::from_str(&ok(api, &["--json", "lun", "show", "l2"])).unwrap();
    assert!(l["targets"].as_array().unwrap().is_empty());
    ok(api, &["lun", "set-faults", "l2", "--delay-flush-ms", "5"]);
    let l: Value = serde_json::from_str(&ok(api, &["--json", "lun", "show", "l2"])).unwrap();
    assert_eq!(l["backing"]["filters"][0]["delay"]["flush_ms"], 5);
    ok(api, &["lun", "set-faults", "l2"]);
    let shrunk: Value =
        serde_json::from_str(&ok(api, &["--json", "lun", "shrink", "l2", "1MiB"])).unwrap();
    assert_eq!(shrunk["size_bytes"], 3 << 20);

    let job: Value = serde_json::from_str(&ok(
        api,
        &["--json", "--no-wait", "lun", "extend", "l2", "1M"],
    ))
    .unwrap();
    let job_id = job["id"].as_str().unwrap();
    ok(api, &["job", "wait", job_id]);
    let shown: Value = serde_json::from_str(&ok(api, &["--json", "job", "show", job_id])).unwrap();
    assert_eq!(shown["state"], "succeeded");
    let o = vdsctl(api, &["job", "cancel", job_id]);
    assert!(
        matches!(o.status.code(), Some(0) | Some(1)),
        "{}",
        stderr(&o)
    );

    ok(api, &["portal", "add", "127.0.0.1:42088"]);
    let p: Value = serde_json::from_str(&ok(
        api,
        &[
            "--json",
            "portal",
            "set-status",
            "127.0.0.1:42088",
            "online",
        ],
    ))
    .unwrap();
    assert_eq!(p["status"], "online");
    ok(api, &["portal", "set-status", "127.0.0.1:42088", "offline"]);
    let pgs: Value = serde_json::from_str(&ok(api, &["--json", "target", "show", "t3"])).unwrap();
    assert!(pgs["portal_groups"].is_array());
    let pg: Value =
        serde_json::from_str(&ok(api, &["--json", "portal-group", "create", "t3"])).unwrap();
    let pg_id = pg["id"].as_str().unwrap();
    ok(api, &["portal-group", "show", pg_id]);
    ok(api, &["portal-group", "delete", pg_id]);
    ok(api, &["lun", "delete", "l2"]);
    ok(api, &["target", "delete", "t3"]);
    ok(api, &["portal", "delete", "127.0.0.1:42088"]);
}

#[test]
fn read_only_luns_are_created_and_switched() {
    let s = server();
    let api = s.url.as_str();
    let l: Value = serde_json::from_str(&ok(
        api,
        &[
            "--json",
            "lun",
            "create",
            "--size",
            "1M",
            "--name",
            "ro",
            "--backing",
            "memory",
            "--read-only",
        ],
    ))
    .unwrap();
    assert_eq!(l["read_only"], true);
    // The human block shows it.
    assert!(
        ok(api, &["lun", "show", "ro"])
            .lines()
            .any(|l| l.starts_with("read_only:") && l.ends_with("true")),
        "read_only line"
    );
    let l: Value =
        serde_json::from_str(&ok(api, &["--json", "lun", "set-read-only", "ro", "false"])).unwrap();
    assert_eq!(l["read_only"], false);
    let l: Value = serde_json::from_str(&ok(api, &["--json", "lun", "show", "ro"])).unwrap();
    assert_eq!(l["read_only"], false);
    ok(api, &["lun", "set-read-only", "ro", "true"]);
    let l: Value = serde_json::from_str(&ok(api, &["--json", "lun", "show", "ro"])).unwrap();
    assert_eq!(l["read_only"], true);
    // Without --read-only a LUN is writable.
    let l: Value = serde_json::from_str(&ok(
        api,
        &["--json", "lun", "create", "--size", "1M", "--name", "rw"],
    ))
    .unwrap();
    assert_eq!(l["read_only"], false);
    // Only true or false; an unknown LUN is the provider's answer.
    for bad in [
        &["lun", "set-read-only", "ro", "maybe"][..],
        &["lun", "set-read-only", "ro"],
    ] {
        let o = vdsctl(api, bad);
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", stderr(&o));
    }
    assert_eq!(
        provider_error(
            api,
            &["lun", "set-read-only", &Uuid::new_v4().to_string(), "true"]
        ),
        "VDS_E_OBJECT_NOT_FOUND"
    );
}

/// BEHAVIOUR.md §14 from the command line: `controller add`, `portal add --controller`,
/// `lun associate-controllers` (names or ids, comma-separated), `lun controllers`,
/// `controller luns`, `lun load-balance [--set]`, with `--json`; refusals are the provider's
/// errors (exit 1) and a missing `--active` is a usage error (exit 2).
#[test]
fn controllers_associations_and_load_balance() {
    let s = server();
    let api = s.url.as_str();
    let c: Value = serde_json::from_str(&ok(
        api,
        &["--json", "controller", "add", "--name", "ctl-b"],
    ))
    .unwrap();
    assert_eq!(c["port_group"], 2);
    assert_eq!(c["number_of_ports"], 0);
    let list = ok(api, &["controller", "list"]);
    assert!(list.contains("GROUP") && list.contains("ctl-b"), "{list}");
    let p: Value = serde_json::from_str(&ok(
        api,
        &[
            "--json",
            "portal",
            "add",
            "127.0.0.1:42085",
            "--controller",
            "ctl-b",
        ],
    ))
    .unwrap();
    assert_eq!(p["controller"], c["id"]);
    let c: Value =
        serde_json::from_str(&ok(api, &["--json", "controller", "show", "ctl-b"])).unwrap();
    assert_eq!(c["number_of_ports"], 1);

    // The default LUN is active on the first controller only (ctl-b came later).
    let active: Value =
        serde_json::from_str(&ok(api, &["--json", "lun", "controllers", "default"])).unwrap();
    assert_eq!(active.as_array().unwrap().len(), 1);
    assert_eq!(active[0]["friendly_name"], "vds controller 0");
    let luns = ok(api, &["controller", "luns", "ctl-b"]);
    assert!(!luns.contains("default"), "{luns}");

    // Refusals: omitting a controller, no --active at all.
    assert_eq!(
        provider_error(
            api,
            &[
                "lun",
                "associate-controllers",
                "default",
                "--active",
                "ctl-b"
            ]
        ),
        "E_INVALIDARG"
    );
    let o = vdsctl(
        api,
        &[
            "lun",
            "associate-controllers",
            "default",
            "--inactive",
            "ctl-b",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let active: Value = serde_json::from_str(&ok(
        api,
        &[
            "--json",
            "lun",
            "associate-controllers",
            "default",
            "--active",
            "ctl-b",
            "--inactive",
            "vds controller 0",
        ],
    ))
    .unwrap();
    assert_eq!(active.as_array().unwrap().len(), 1);
    assert_eq!(active[0]["friendly_name"], "ctl-b");
    let luns = ok(api, &["controller", "luns", "ctl-b"]);
    assert!(luns.contains("default"), "{luns}");

    // Load balance: shown with the supported set; set by name; unsupported is NOT_SUPPORTED.
    let lb: Value =
        serde_json::from_str(&ok(api, &["--json", "lun", "load-balance", "default"])).unwrap();
    assert_eq!(lb["policy"], "round_robin_with_subset");
    assert_eq!(
        lb["supported"],
        serde_json::json!(["failover", "round_robin", "round_robin_with_subset"])
    );
    let lb: Value = serde_json::from_str(&ok(
        api,
        &[
            "--json",
            "lun",
            "load-balance",
            "default",
            "--set",
            "VDS_LBP_FAILOVER",
        ],
    ))
    .unwrap();
    assert_eq!(lb["policy"], "failover");
    assert_eq!(
        provider_error(
            api,
            &["lun", "load-balance", "default", "--set", "least_blocks"]
        ),
        "VDS_E_NOT_SUPPORTED"
    );
    assert_eq!(
        provider_error(
            api,
            &["lun", "load-balance", "default", "--set", "sideways"]
        ),
        "E_INVALIDARG"
    );
    let shown = ok(api, &["lun", "show", "default"]);
    assert!(shown.contains("failover"), "{shown}");
}
