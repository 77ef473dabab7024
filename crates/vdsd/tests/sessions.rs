//! Live sessions and LUN paths against the real daemon (BEHAVIOUR.md §14 "Sessions" and
//! "Paths"): `GET /v1/sessions` shows each logged-in session with its ISID, TSIH, addresses and
//! negotiated keys, and counters that rise by exactly what was sent; `GET /v1/luns/{id}/paths`
//! lists only the sessions the unmasking list allows, `failed` while the controller is OFFLINE,
//! and loses a path when its session logs out or its portal goes OFFLINE; a libiscsi session
//! shows up with the ISID it sent on the wire; `vdsctl session list` and `lun paths` print them.
//!
//! Slots 60 (API and wire), 61 (libiscsi; its relay listens on 127.0.0.4:45061) and 62
//! (vdsctl).

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use vds_testkit::Initiator;

fn sessions(d: &Daemon) -> Vec<Value> {
    d.get("/v1/sessions").as_array().expect("array").clone()
}

fn session(d: &Daemon, tsih: u16) -> Option<Value> {
    sessions(d)
        .into_iter()
        .find(|s| s["tsih"] == u64::from(tsih))
}

fn paths(d: &Daemon, lun: &str) -> Vec<Value> {
    d.get(&format!("/v1/luns/{lun}/paths"))
        .as_array()
        .expect("array")
        .clone()
}

/// (initiator, tsih, status) of every path, sorted by TSIH.
fn path_summary(d: &Daemon, lun: &str) -> Vec<(String, u64, String)> {
    let mut v: Vec<_> = paths(d, lun)
        .iter()
        .map(|p| {
            (
                p["initiator"].as_str().unwrap().to_string(),
                p["tsih"].as_u64().unwrap(),
                p["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort_by_key(|x| x.1);
    v
}

/// Waits (bounded) until `f` holds for the session list.
fn wait_sessions(d: &Daemon, what: &str, f: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = sessions(d);
        if f(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what}: {s:#?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn counters(s: &Value) -> (u64, u64, u64, u64) {
    let c = &s["counters"];
    (
        c["commands"].as_u64().unwrap(),
        c["bytes_written"].as_u64().unwrap(),
        c["bytes_read"].as_u64().unwrap(),
        c["errors"].as_u64().unwrap(),
    )
}

fn isid_hex(isid: [u8; 6]) -> String {
    isid.iter().map(|b| format!("{b:02x}")).collect()
}

fn controller(d: &Daemon) -> String {
    let sub = d.subsystem();
    d.get(&format!("/v1/subsystems/{sub}/controllers"))[0]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn sessions_and_paths_follow_logins_masks_and_logouts() {
    let d = Daemon::start(
        60,
        Opts {
            two_portals: true,
            ..Opts::default()
        },
    );
    let lun = d.default_lun();
    let target = d.target();
    let name_a = initiator_name(60);
    let name_b = format!("{name_a}-b");
    let mut a = d.login(0, 1);
    let mut ob = login_opts(&name_b, 2);
    ob.header_digest = true;
    ob.data_digest = true;
    let mut b = Initiator::connect(d.portals[1], &ob).expect("login b");
    assert!(d.get("/v1/sessions").to_string().len() > 2);

    // Both sessions, with what they settled on at login.
    let all = sessions(&d);
    assert_eq!(all.len(), 2, "{all:#?}");
    for (ini, name, portal, isid, digest) in [
        (&a, &name_a, 0usize, 1u8, "None"),
        (&b, &name_b, 1, 2, "CRC32C"),
    ] {
        let s = session(&d, ini.tsih).expect("listed");
        assert_eq!(s["target"], target.as_str());
        assert_eq!(s["target_iqn"], TARGET);
        assert_eq!(s["initiator"], name.as_str());
        assert_eq!(s["isid"], isid_hex([0x80, 0, 0, 0, 0x45, isid]));
        assert_eq!(s["portal_group_tag"], 1);
        assert!(s["login_time"].as_str().unwrap().contains('T'), "{s}");
        let c = &s["connections"][0];
        assert_eq!(s["connections"].as_array().unwrap().len(), 1);
        assert_eq!(c["portal"], d.portal_id(d.portals[portal]).as_str());
        assert_eq!(c["local_address"], d.portals[portal].to_string());
        assert_eq!(c["peer_address"], ini.local_addr().unwrap().to_string());
        assert_eq!(c["auth_method"], "none");
        assert_eq!(c["keys"]["header_digest"], digest);
        assert_eq!(c["keys"]["data_digest"], digest);
        assert_eq!(c["keys"]["error_recovery_level"], 0);
        assert_eq!(c["keys"]["max_connections"], 1);
        assert_eq!(
            c["keys"]["initiator_max_recv_data_segment_length"],
            ini.max_xmit
        );
        assert_eq!(c["keys"]["first_burst_length"], ini.first_burst);
        assert_eq!(counters(&s), (0, 0, 0, 0));
    }
    // The target's own list is the same two.
    let of_target = d.get(&format!("/v1/targets/{target}/sessions"));
    assert_eq!(of_target.as_array().unwrap().len(), 2);

    // Counters rise by exactly what was sent: a: 3 writes of 4 blocks, 2 reads of 8, a TEST
    // UNIT READY and a READ past the end (CHECK CONDITION); b (digests): 1 write, 1 read.
    for lba in 0..3 {
        assert_good(&write_fua(&mut a, 0, lba * 4, &pattern(1, 2048)), "write");
    }
    for _ in 0..2 {
        let r = read(&mut a, 0, 0, 8);
        assert_good(&r, "read");
        assert_eq!(r.data.len(), 4096);
    }
    assert_good(&tur(&mut a, 0), "TUR");
    let past = read(&mut a, 0, u32::MAX - 1, 1);
    assert_eq!(past.status, 2, "READ past the end");
    assert_good(&write_fua(&mut b, 0, 100, &pattern(2, 512)), "write b");
    assert_good(&read(&mut b, 0, 100, 2), "read b");
    assert_eq!(
        counters(&session(&d, a.tsih).unwrap()),
        (7, 3 * 2048, 2 * 4096, 1)
    );
    assert_eq!(counters(&session(&d, b.tsih).unwrap()), (2, 512, 1024, 0));

    // Paths: one per session, through its portal and the subsystem's controller.
    let ctl = controller(&d);
    let ps = paths(&d, &lun);
    assert_eq!(ps.len(), 2, "{ps:#?}");
    for p in &ps {
        let (ini, portal) = if p["tsih"] == u64::from(a.tsih) {
            (&a, 0)
        } else {
            (&b, 1)
        };
        assert_eq!(p["type"], "iscsi");
        assert_eq!(p["status"], "online");
        assert_eq!(p["target"], target.as_str());
        assert_eq!(p["target_portal"], d.portal_id(d.portals[portal]).as_str());
        assert_eq!(p["controller"], ctl.as_str());
        let peer = ini.local_addr().unwrap();
        assert_eq!(p["initiator_address"], peer.ip().to_string());
        assert_eq!(p["initiator_port"], peer.port());
        let id = p["id"]["path_id"].as_str().unwrap();
        assert!(id.starts_with("0x") && id.len() == 18, "{p}");
    }
    // Stable while the sessions live.
    assert_eq!(paths(&d, &lun), ps);

    // A masked initiator has no path (the LUN is hidden from it on the wire too).
    d.ok(
        "PATCH",
        &format!("/v1/luns/{lun}"),
        json!({"unmasking_list": name_a}),
        200,
    );
    assert_eq!(
        path_summary(&d, &lun),
        vec![(name_a.clone(), u64::from(a.tsih), "online".into())]
    );
    assert_eq!(report_luns(&mut b), Vec::<u64>::new(), "masked on the wire");
    d.ok(
        "PATCH",
        &format!("/v1/luns/{lun}"),
        json!({"unmasking_list": "*"}),
        200,
    );
    assert_eq!(paths(&d, &lun).len(), 2);

    // The controller OFFLINE: the sessions stay, their paths are failed.
    d.ok(
        "POST",
        &format!("/v1/controllers/{ctl}/status"),
        json!({"status": "offline"}),
        200,
    );
    let failed: Vec<String> = path_summary(&d, &lun).into_iter().map(|p| p.2).collect();
    assert_eq!(failed, vec!["failed", "failed"]);
    d.ok(
        "POST",
        &format!("/v1/controllers/{ctl}/status"),
        json!({"status": "online"}),
        200,
    );
    let online: Vec<String> = path_summary(&d, &lun).into_iter().map(|p| p.2).collect();
    assert_eq!(online, vec!["online", "online"]);

    // b logs out: its session and path are gone, a's counters are intact.
    let tsih_b = b.tsih;
    b.logout().expect("logout");
    wait_sessions(&d, "b logged out", |s| {
        s.len() == 1 && s[0]["tsih"] == u64::from(a.tsih)
    });
    assert_eq!(
        path_summary(&d, &lun),
        vec![(name_a.clone(), u64::from(a.tsih), "online".into())]
    );
    assert!(session(&d, tsih_b).is_none());
    assert_eq!(
        counters(&session(&d, a.tsih).unwrap()),
        (7, 3 * 2048, 2 * 4096, 1)
    );

    // a's portal OFFLINE: its session is logged out (BEHAVIOUR.md §4) and the path is gone.
    let portal_a = d.portal_id(d.portals[0]);
    let (s, v) = d.set_portal_status(&portal_a, json!("offline"));
    assert_eq!(s, 200, "{v}");
    wait_sessions(&d, "portal OFFLINE ends its session", |s| s.is_empty());
    assert_eq!(paths(&d, &lun), Vec::<Value>::new());
    drop(a);

    // Unknown objects answer as every Get does.
    let nobody = "00000000-0000-4000-8000-000000000001";
    let r = d.call("GET", &format!("/v1/luns/{nobody}/paths"), None);
    assert_error(&r, 404, "0x80042405", "VDS_E_OBJECT_NOT_FOUND");
    let r = d.call("GET", &format!("/v1/targets/{nobody}/sessions"), None);
    assert_error(&r, 404, "0x80042405", "VDS_E_OBJECT_NOT_FOUND");
    let r = d.call("GET", "/v1/luns/not-a-uuid/paths", None);
    assert_eq!(r.0, 400, "{}", r.1);
}

/// A one-connection TCP relay on `listen` to `to` that records the ISID of the first Login
/// Request it forwards (BHS bytes 8..14). Runs until either side closes.
fn isid_relay(listen: SocketAddr, to: SocketAddr) -> mpsc::Receiver<[u8; 6]> {
    let l = TcpListener::bind(listen).expect("relay bind");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut client, _)) = l.accept() else {
            return;
        };
        let Ok(mut server) = TcpStream::connect(to) else {
            return;
        };
        let mut bhs = [0u8; 48];
        if client.read_exact(&mut bhs).is_err() {
            return;
        }
        let mut isid = [0u8; 6];
        isid.copy_from_slice(&bhs[8..14]);
        let _ = tx.send(isid);
        use std::io::Write;
        if server.write_all(&bhs).is_err() {
            return;
        }
        let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        let up = std::thread::spawn(move || {
            let _ = std::io::copy(&mut c2, &mut s2);
            let _ = s2.shutdown(std::net::Shutdown::Write);
        });
        let _ = std::io::copy(&mut server, &mut client);
        let _ = client.shutdown(std::net::Shutdown::Write);
        let _ = up.join();
    });
    rx
}

/// A child process killed by its pid when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A libiscsi session (iscsi-perf, which keeps its session open while it reads; iscsi-inq
/// logs out within milliseconds) appears in `GET /v1/sessions` with the ISID it sent, its
/// initiator name and rising counters, and is gone once the tool is killed.
#[test]
fn a_libiscsi_session_shows_with_the_isid_it_sent() {
    let d = Daemon::start(61, Opts::default());
    let relay: SocketAddr = "127.0.0.4:45061".parse().unwrap();
    let isid = isid_relay(relay, d.portals[0]);
    let name = "iqn.2026-11.local.test:libiscsi-61";
    let path = std::env::var_os("PATH").unwrap_or_default();
    let prog = std::env::split_paths(&path)
        .map(|p| p.join("iscsi-perf"))
        .find(|p| p.exists())
        .expect("iscsi-perf is not installed: install libiscsi-bin (scripts/test does)");
    let _tool = Killed(
        Command::new(prog)
            .args(["-i", name, "-m", "4", "-b", "8"])
            .arg(format!("iscsi://{relay}/{TARGET}/0"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start iscsi-perf"),
    );
    let sent = isid
        .recv_timeout(Duration::from_secs(10))
        .expect("iscsi-perf logged in through the relay");
    let s = wait_sessions(&d, "the libiscsi session", |s| {
        s.iter()
            .any(|x| x["initiator"] == name && counters(x).2 > 0)
    });
    let s = s.iter().find(|x| x["initiator"] == name).unwrap();
    assert_eq!(s["isid"], isid_hex(sent), "{s}");
    assert_eq!(s["target_iqn"], TARGET);
    let tsih = s["tsih"].as_u64().unwrap() as u16;
    let first = counters(s);
    std::thread::sleep(Duration::from_millis(300));
    let later = counters(&session(&d, tsih).expect("still logged in"));
    assert!(
        later.0 > first.0 && later.2 > first.2,
        "{first:?} {later:?}"
    );
    // Its path to the default LUN.
    let p = paths(&d, &d.default_lun());
    assert!(
        p.iter()
            .any(|p| p["initiator"] == name && p["tsih"] == u64::from(tsih)),
        "{p:#?}"
    );
    drop(_tool);
    wait_sessions(&d, "the killed tool's session ends", |s| {
        s.iter().all(|x| x["initiator"] != name)
    });
}

#[test]
fn vdsctl_lists_sessions_and_paths() {
    let d = Daemon::start(62, Opts::default());
    let mut a = d.login(0, 0x3c);
    assert_good(&read(&mut a, 0, 0, 2), "read");
    let o = d.vdsctl(&["session", "list"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let header = out.lines().next().unwrap();
    assert!(
        header.starts_with("TSIH") && header.contains("ISID"),
        "{out}"
    );
    let row = out.lines().nth(1).expect("one session");
    assert!(row.starts_with(&a.tsih.to_string()), "{out}");
    assert!(row.contains("80000000453c"), "{out}");
    assert!(row.contains(&initiator_name(62)), "{out}");
    assert!(row.contains("None/None"), "{out}");
    assert_eq!(out.lines().count(), 2, "{out}");
    // --json is the API's body; --target names the target by IQN.
    let o = d.vdsctl(&["--json", "session", "list", "--target", TARGET]);
    assert!(o.status.success(), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v[0]["counters"]["commands"], 1);
    assert_eq!(v[0]["counters"]["bytes_read"], 1024);
    let o = d.vdsctl(&[
        "session",
        "list",
        "--target",
        "iqn.2026-11.local.vds:nobody",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    // Paths of the default LUN by name.
    let o = d.vdsctl(&["lun", "paths", "default"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.lines().next().unwrap().starts_with("PATH ID"), "{out}");
    let row = out.lines().nth(1).expect("one path");
    assert!(
        row.contains("online") && row.contains(&initiator_name(62)),
        "{out}"
    );
    let o = d.vdsctl(&["--json", "lun", "paths", "default"]);
    let v: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["tsih"], a.tsih);
    // After logout: no session, no path (a table with its header only).
    a.logout().expect("logout");
    wait_sessions(&d, "logged out", |s| s.is_empty());
    let o = d.vdsctl(&["lun", "paths", "default"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 1);
}
