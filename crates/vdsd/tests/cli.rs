//! The built `vdsctl` against a running `vdsd` (issue 2 "CLI tests running the built binaries",
//! issue 4 "driving vdsd through vdsctl"): status changes by name and by ADDR:PORT observed by
//! an initiator, the exit codes 0/1/2/3 and the `error: NAME (0xHHHHHHHH): message` line,
//! `--json` equal to the API, jobs waited for, fault filters, the event stream. Slots 70..=84.

mod common;

use std::process::Output;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit 1 with exactly one `error: NAME (0xHHHHHHHH): message` line.
fn assert_cli_error(o: &Output, name: &str, hresult: &str) {
    let e = stderr(o);
    assert_eq!(code(o), 1, "exit status; stderr {e}; stdout {}", text(o));
    let prefix = format!("error: {name} ({hresult}): ");
    let line = e.lines().find(|l| l.starts_with("error:")).unwrap_or("");
    assert!(
        line.starts_with(&prefix) && line.len() > prefix.len(),
        "expected `{prefix}...`, got {e:?}"
    );
}

/// Issue 4 "vdsctl lun set-status default offline": exit 0 and the wire follows; invalid
/// values exit 1 with the HRESULT line and change nothing.
#[test]
fn vdsctl_lun_set_status_is_seen_on_the_wire() {
    let d = Daemon::start(70, Opts::default());
    let mut a = d.login(0, 1);
    assert_good(&tur(&mut a, 0), "TUR");
    let o = d.vdsctl(&["lun", "set-status", "default", "offline"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("offline"),
        "prints the LUN: {}",
        text(&o)
    );
    assert_sense(&tur(&mut a, 0), (2, 4, 0x12), "after vdsctl offline");
    for bad in ["3", "0", "99", "unknown", "VDS_LS_UNKNOWN"] {
        let o = d.vdsctl(&["lun", "set-status", "default", bad]);
        assert_cli_error(&o, "E_INVALIDARG", "0x80070057");
    }
    let o = d.vdsctl(&["lun", "set-status", "default", "failed"]);
    assert_cli_error(&o, "VDS_E_NOT_SUPPORTED", "0x80042400");
    assert_sense(&tur(&mut a, 0), (2, 4, 0x12), "still OFFLINE");
    let o = d.vdsctl(&["lun", "set-status", "default", "not_ready"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_sense(&tur(&mut a, 0), (2, 4, 1), "NOT_READY");
    let o = d.vdsctl(&["lun", "set-status", "default", "VDS_LS_ONLINE"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_sense(&tur(&mut a, 0), (6, 0x28, 0), "UA");
    assert_good(&tur(&mut a, 0), "ONLINE");
    // --json prints exactly the API's object.
    let o = d.vdsctl(&["--json", "lun", "show", "default"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let shown: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(shown, d.lun(&d.default_lun()));
}

/// Exit codes 2 (usage) and 3 (API unreachable); deleted and unknown objects exit 1.
#[test]
fn vdsctl_exit_codes_for_usage_unreachable_and_missing_objects() {
    let d = Daemon::start(71, Opts::default());
    for args in [
        vec!["lun", "set-status", "default"],
        vec!["lun", "frobnicate"],
        vec!["lun", "create"],
        vec!["lun", "create", "--size", "twelve"],
        vec!["--no-such-flag", "lun", "list"],
    ] {
        let o = d.vdsctl(&args);
        assert_eq!(code(&o), 2, "{args:?}: {}", text(&o));
    }
    // Nothing listens on slot 84's API port.
    let dead = format!("http://127.0.0.2:{}", 45100 + 84);
    let o = run_limited(
        &vdsctl_path(),
        &[
            "--api".into(),
            dead,
            "lun".into(),
            "set-status".into(),
            "default".into(),
            "offline".into(),
        ],
        Duration::from_secs(30),
    );
    assert_eq!(code(&o), 3, "{}", text(&o));
    assert!(stderr(&o).starts_with("error:"), "{}", stderr(&o));
    let o = d.vdsctl(&["lun", "show", "no-such-lun"]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    let o = d.vdsctl(&["lun", "show", "00000000-0000-4000-8000-00000000abcd"]);
    assert_cli_error(&o, "VDS_E_OBJECT_NOT_FOUND", "0x80042405");
    let lun = d.create_lun("doomed", 16 << 20);
    let id = lun["id"].as_str().expect("id");
    let o = d.vdsctl(&["lun", "delete", "doomed"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let o = d.vdsctl(&["lun", "set-status", id, "offline"]);
    assert_cli_error(&o, "VDS_E_OBJECT_DELETED", "0x8004240B");
}

/// `vdsctl portal set-status ADDR:PORT offline|online` (name resolution by address): the
/// listener closes and reopens; reported-only values exit 1 with VDS_E_NOT_SUPPORTED.
#[test]
fn vdsctl_portal_set_status_by_address() {
    let d = Daemon::start(
        72,
        Opts {
            two_portals: true,
            config: Some("logout_timeout_secs = 1\n".into()),
            ..Opts::default()
        },
    );
    let p1 = d.portals[1].to_string();
    let o = d.vdsctl(&["portal", "set-status", &p1, "offline"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(refused(d.portals[1]));
    assert_eq!(
        send_targets(d.portals[0], &initiator_name(d.slot)),
        vec![format!("{},1", d.portals[0])]
    );
    for (v, name, hr) in [
        ("failed", "VDS_E_NOT_SUPPORTED", "0x80042400"),
        ("not_ready", "VDS_E_NOT_SUPPORTED", "0x80042400"),
        ("0", "E_INVALIDARG", "0x80070057"),
    ] {
        let o = d.vdsctl(&["portal", "set-status", &p1, v]);
        assert_cli_error(&o, name, hr);
    }
    let holder = std::net::TcpListener::bind(d.portals[1]).expect("hold the address");
    let o = d.vdsctl(&["portal", "set-status", &p1, "online"]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(stderr(&o).contains("(0x80072740): "), "{}", stderr(&o));
    drop(holder);
    let o = d.vdsctl(&["portal", "set-status", &p1, "online"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let mut b = d.login(1, 2);
    assert_good(&tur(&mut b, 0), "through the portal again");
}

/// Jobs through the CLI (create, extend: waited for by default) and the effect on the wire:
/// 06/2A/09 then the new capacity; fault filters from the CLI fail the LUN.
#[test]
fn vdsctl_create_extend_and_faults_reach_the_initiator() {
    let d = Daemon::start(
        73,
        Opts {
            fault_injection: true,
            ..Opts::default()
        },
    );
    let o = d.vdsctl(&[
        "--json", "lun", "create", "--size", "16MiB", "--name", "scratch", "--target", TARGET,
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let lun: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let number = lun["lun_numbers"][&d.target()].as_u64().expect("number");
    let mut a = d.login(0, 1);
    let _ = tur(&mut a, number);
    assert_eq!(capacity_bytes(&capacity(&mut a, number)), 16 << 20);
    let o = d.vdsctl(&["lun", "extend", "scratch", "16MiB"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_sense(
        &tur(&mut a, number),
        (6, 0x2a, 9),
        "CAPACITY DATA HAS CHANGED",
    );
    assert_eq!(capacity_bytes(&capacity(&mut a, number)), 32 << 20);
    let o = d.vdsctl(&["lun", "set-faults", "scratch", "--error-ops", "read"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_sense(&read(&mut a, number, 0, 1), (3, 0x11, 0), "read error");
    let id = lun["id"].as_str().expect("id");
    assert_eq!(d.lun(id)["status"], "failed");
    let o = d.vdsctl(&["lun", "set-status", "scratch", "online"]);
    assert_cli_error(&o, "VDS_E_OBJECT_STATUS_FAILED", "0x80042431");
    let o = d.vdsctl(&["lun", "set-faults", "scratch"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let o = d.vdsctl(&["provider", "refresh"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(d.lun(id)["status"], "offline");
}

/// `vdsctl events` follows the stream: a status change appears as one line naming the LUN.
#[test]
fn vdsctl_events_follows_the_stream() {
    let d = Daemon::start(74, Opts::default());
    let lun = d.default_lun();
    let (api, token) = (d.api_base(), d.token.clone());
    let follower = std::thread::spawn(move || {
        run_limited(
            &vdsctl_path(),
            &[
                "--api".into(),
                api,
                "--token".into(),
                token,
                "--json".into(),
                "events".into(),
            ],
            Duration::from_secs(3),
        )
    });
    d.wait_event_streams(1);
    assert_eq!(d.set_lun_status(&lun, json!("offline")).0, 200);
    let o = follower.join().expect("follower");
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().filter(|l| l.contains(&lun)).collect();
    assert_eq!(
        lines.len(),
        1,
        "one event line for the LUN: {out:?} {}",
        stderr(&o)
    );
    assert!(lines[0].contains("110"), "{}", lines[0]);
}
