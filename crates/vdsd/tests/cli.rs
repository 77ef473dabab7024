//! The built `vdsctl` against a running `vdsd` (issue 2 "CLI tests running the built binaries",
//! issue 4 "driving vdsd through vdsctl"): status changes by name and by ADDR:PORT observed by
//! an initiator, the exit codes 0/1/2/3 and the `error: NAME (0xHHHHHHHH): message` line,
//! `--json` equal to the API, jobs waited for, fault filters, the event stream, the subsystem
//! surface (set-status of subsystem/controller/drive, rename, set-controller-status). Slots 70..=84.

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

/// ASYMMETRIC ACCESS STATE CHANGED (BEHAVIOUR.md §14).
const ALUA_CHANGED: (u8, u8, u8) = (6, 0x2A, 0x06);

/// The unit attentions of a LUN back ONLINE: 06/28/00 and, when its controller came back
/// (`alua`), 06/2A/06 too, in either order; then GOOD.
fn back_online(a: &mut vds_testkit::Initiator, alua: bool, what: &str) {
    let mut want = vec![(6, 0x28, 0)];
    if alua {
        want.push(ALUA_CHANGED);
    }
    let mut seen = Vec::new();
    for _ in 0..want.len() {
        let r = tur(a, 0);
        assert_eq!(r.status, CHECK, "{what}: {:?}", sense_of(&r));
        seen.push(sense_of(&r).expect("sense"));
    }
    seen.sort_unstable();
    want.sort_unstable();
    assert_eq!(seen, want, "{what}");
    assert_good(&tur(a, 0), what);
}

/// BEHAVIOUR.md §14 "Subsystem surface" through the built `vdsctl`: `subsystem|controller|drive
/// set-status` (a value that names no member exits 2 and sends nothing; a member the provider
/// refuses exits 1 with its HRESULT; OFFLINE and ONLINE are seen by the initiator),
/// `subsystem rename` (persisted across a restart), `subsystem set-controller-status`,
/// `subsystem interconnects` and `provider version-support` with `--json` equal to the API.
#[test]
fn vdsctl_subsystem_controller_drive_surface() {
    let mut d = Daemon::start(80, Opts::default());
    let sub = d.get("/v1/subsystems")[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let ctl = d.get(&format!("/v1/subsystems/{sub}/controllers"))[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let drive = d.get(&format!("/v1/subsystems/{sub}/drives"))[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let mut a = d.login(0, 1);
    assert_good(&tur(&mut a, 0), "TUR");
    for (noun, id, type_name, constant) in [
        ("subsystem", &sub, "VDS_SUB_SYSTEM_STATUS", "VDS_SSS_ONLINE"),
        ("controller", &ctl, "VDS_CONTROLLER_STATUS", "VDS_CS_ONLINE"),
        ("drive", &drive, "VDS_DRIVE_STATUS", "VDS_DRS_ONLINE"),
    ] {
        for bad in ["bogus", "99", "VDS_LS_OFFLINE", ""] {
            let o = d.vdsctl(&[noun, "set-status", id, bad]);
            assert_eq!(code(&o), 2, "{noun} {bad:?}: {}", text(&o));
            let e = stderr(&o);
            assert!(
                e.starts_with(&format!("error: status {bad:?} is not a {type_name} value")),
                "{noun} {bad:?}: {e}"
            );
        }
        let o = d.vdsctl(&[noun, "set-status", id, "unknown"]);
        assert_cli_error(&o, "E_INVALIDARG", "0x80070057");
        let o = d.vdsctl(&[noun, "set-status", id, "failed"]);
        assert_cli_error(&o, "VDS_E_NOT_SUPPORTED", "0x80042400");
        assert_good(
            &tur(&mut a, 0),
            &format!("{noun}: refused values change nothing"),
        );
        let o = d.vdsctl(&[noun, "set-status", id, "offline"]);
        assert_eq!(code(&o), 0, "{noun}: {}", text(&o));
        assert!(
            text(&o).contains("offline"),
            "{noun} prints it: {}",
            text(&o)
        );
        // The controller is the LUN's one ALUA group: its port turns Unavailable (BEHAVIOUR.md
        // §14), told once, and the port's state answers before the LUN's: 02/04/0C.
        let alua = noun == "controller";
        if alua {
            assert_sense(&tur(&mut a, 0), ALUA_CHANGED, &format!("{noun} offline"));
            assert_sense(&tur(&mut a, 0), (2, 4, 0x0C), &format!("{noun} offline"));
        } else {
            assert_sense(&tur(&mut a, 0), (2, 4, 0x12), &format!("{noun} offline"));
        }
        let o = d.vdsctl(&["--json", noun, "set-status", id, constant]);
        assert_eq!(code(&o), 0, "{noun}: {}", text(&o));
        let shown: Value = serde_json::from_slice(&o.stdout).expect("JSON");
        assert_eq!(shown["status"], "online", "{noun}: {shown}");
        back_online(&mut a, alua, &format!("{noun} online"));
    }
    // SetControllerStatus by controller name; the subsystem by id, then by its new name.
    let ctl_name = d.get(&format!("/v1/controllers/{ctl}"))["friendly_name"]
        .as_str()
        .expect("name")
        .to_string();
    let o = d.vdsctl(&["subsystem", "set-controller-status", &sub]);
    assert_cli_error(&o, "E_INVALIDARG", "0x80070057");
    let o = d.vdsctl(&[
        "subsystem",
        "set-controller-status",
        &sub,
        "--online",
        &ctl,
        "--offline",
        &ctl_name,
    ]);
    assert_cli_error(&o, "E_INVALIDARG", "0x80070057");
    assert_good(
        &tur(&mut a, 0),
        "refused SetControllerStatus changes nothing",
    );
    let o = d.vdsctl(&["subsystem", "rename", &sub, "array A"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let o = d.vdsctl(&[
        "subsystem",
        "set-controller-status",
        "array A",
        "--offline",
        &ctl_name,
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("offline"), "{}", text(&o));
    assert_sense(&tur(&mut a, 0), ALUA_CHANGED, "controller offline");
    assert_sense(
        &tur(&mut a, 0),
        (2, 4, 0x0C),
        "controller offline: port unavailable",
    );
    let o = d.vdsctl(&[
        "--json",
        "subsystem",
        "set-controller-status",
        "array A",
        "--online",
        &ctl,
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let shown: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(shown, d.get(&format!("/v1/subsystems/{sub}/controllers")));
    back_online(&mut a, true, "controller online");
    // Flag answers.
    let o = d.vdsctl(&["--json", "subsystem", "interconnects", "array A"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let shown: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(shown, json!({"flags": ["iscsi"], "value": 4}));
    let o = d.vdsctl(&["--json", "provider", "version-support"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let shown: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(shown, d.get("/v1/provider/version-support"));
    assert_eq!(shown["value"], 3);
    let o = d.vdsctl(&["subsystem", "interconnects", "array A"]);
    assert!(text(&o).contains("iscsi"), "{}", text(&o));
    // GetDrive(bus, slot) and IVdsMaintenance.
    let shown = d.get(&format!("/v1/drives/{drive}"));
    let (bus, slot) = (
        shown["bus_number"].to_string(),
        shown["slot_number"].to_string(),
    );
    let o = d.vdsctl(&["--json", "subsystem", "drive", "array A", &bus, &slot]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let got: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(got, shown);
    let o = d.vdsctl(&["subsystem", "drive", "array A", &bus, "-7"]);
    assert_cli_error(&o, "VDS_E_OBJECT_NOT_FOUND", "0x80042405");
    let o = d.vdsctl(&["subsystem", "drive", "array A", &bus, "40000"]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    let o = d.vdsctl(&[
        "maintenance",
        "drive",
        &drive,
        "blink_light",
        "pulse",
        "--count",
        "3",
    ]);
    assert_cli_error(&o, "VDS_E_NOT_SUPPORTED", "0x80042400");
    assert!(stderr(&o).contains("no indicator light"), "{}", text(&o));
    let o = d.vdsctl(&["maintenance", "controller", &ctl_name, "wink", "start"]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(stderr(&o).contains("operation: "), "{}", text(&o));
    let o = d.vdsctl(&["maintenance", "lun", "no-such-lun", "ping", "start"]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert_good(&tur(&mut a, 0), "maintenance changes nothing");
    // The name survives a restart.
    drop(a);
    d.kill9();
    d.restart();
    assert_eq!(
        d.get(&format!("/v1/subsystems/{sub}"))["friendly_name"],
        "array A"
    );
    let o = d.vdsctl(&["--json", "subsystem", "show", "array A"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
}
