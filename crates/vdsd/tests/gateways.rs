//! Several gateways that are one subsystem (docs/SCALEOUT.md "Shared configuration"), against
//! a real one-node Ceph started by `scripts/ceph-cluster` (monitor on 127.0.0.1:46800):
//! gateways A, B and C on 127.0.10.1-3, each with its own data dir and API, serve the same
//! subsystem; a LUN created on A is served on B within the stated bound (measured and
//! printed); data written through A's portal reads back equal through B's; a CHAP secret and a
//! mask set on A are enforced on B; a LUN deleted on A answers VDS_E_OBJECT_DELETED on B;
//! creates raced on A and B both succeed; B's event stream shows the ARRIVE of a LUN created
//! on A; REPORT TARGET PORT GROUPS is the same through every gateway; B restarted keeps its controller.
//! A missing Ceph fails the test.

mod common;

use std::time::{Duration, Instant};

use common::ceph::Ceph;
use common::*;
use serde_json::{json, Value};
use vds_testkit::{Initiator, LoginOptions};

/// The bound docs/SCALEOUT.md states: a change committed on one gateway is served by every
/// other within it.
const BOUND: Duration = Duration::from_secs(2);
/// VDS_NF_LUN_ARRIVE.
const LUN_ARRIVE: u64 = 108;

/// Gateway `n` (1, 2, ...) on 127.0.10.n: API port 46810, portal 3260.
fn gateway(ceph: &Ceph, n: u8, name: &str) -> Daemon {
    ceph.gateway(200 + u16::from(n), [127, 0, 10, n], 46810, name)
}

const INITIATOR: &str = "iqn.2026-11.local.test:gateways";

fn opts(chap: Option<&str>) -> LoginOptions {
    let mut o = login_opts(INITIATOR, 1);
    o.chap = chap.map(|s| (INITIATOR.to_string(), s.as_bytes().to_vec()));
    o
}

/// A command through `ini`, past the unit attentions a new LUN or nexus raises (bounded).
fn command(
    ini: &mut Initiator,
    lun: u64,
    cdb: &[u8],
    data: &[u8],
    len: u32,
) -> vds_testkit::ScsiResult {
    for _ in 0..6 {
        let r = ini.command(lun, cdb, data, len).expect("command");
        if r.status == 0x02 && sense_of(&r).is_some_and(|(k, _, _)| k == 0x06) {
            continue;
        }
        return r;
    }
    panic!("unit attentions never ended for CDB {cdb:02x?}");
}

/// REPORT TARGET PORT GROUPS: (group id, state, relative port ids) of every group.
fn rtpg(ini: &mut Initiator, lun: u64) -> Vec<(u16, u8, Vec<u16>)> {
    let r = command(
        ini,
        lun,
        &[0xA3, 0x0A, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0],
        &[],
        1024,
    );
    assert_good(&r, "REPORT TARGET PORT GROUPS");
    let d = &r.data;
    let mut out = Vec::new();
    let mut i = 4;
    while i < d.len() {
        let n = d[i + 7] as usize;
        let ports = (0..n)
            .map(|k| u16::from_be_bytes([d[i + 8 + 4 * k + 2], d[i + 8 + 4 * k + 3]]))
            .collect();
        out.push((u16::from_be_bytes([d[i + 2], d[i + 3]]), d[i] & 0x0F, ports));
        i += 8 + 4 * n;
    }
    out
}

/// Waits (bounded by `limit`) until `f` holds; answers how long it took.
fn within(limit: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if f() {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn lun_number(lun: &Value, target: &str) -> u64 {
    lun["lun_numbers"][target]
        .as_u64()
        .unwrap_or_else(|| panic!("LUN numbers of {lun}"))
}

#[test]
fn gateways_serve_one_subsystem_from_the_shared_configuration() {
    let t0 = Instant::now();
    let ceph = Ceph::start("gateways", 46800);
    let a = gateway(&ceph, 1, "gw-a");
    let mut b = gateway(&ceph, 2, "gw-b");
    let c = gateway(&ceph, 3, "gw-c");
    println!("cluster and three gateways up in {:?}", t0.elapsed());

    // One subsystem, one target, every controller on every gateway.
    let sub = a.subsystem();
    assert_eq!(b.subsystem(), sub, "the same subsystem on every gateway");
    assert_eq!(c.subsystem(), sub, "the same subsystem on every gateway");
    let target = a.target();
    assert_eq!(b.target(), target);
    let ctls = format!("/v1/subsystems/{sub}/controllers");
    within(BOUND * 2, "A and B see every controller", || {
        a.get(&ctls).as_array().map(Vec::len) == Some(3)
            && b.get(&ctls).as_array().map(Vec::len) == Some(3)
    });
    let b_ctl: Vec<Value> = b.get(&ctls).as_array().unwrap().clone();
    let b_ctl_id = b_ctl
        .iter()
        .find(|c| c["friendly_name"] == "gw-b")
        .expect("B's controller is named after it")["id"]
        .clone();
    // Each gateway listens on its own portal only; SendTargets lists them all.
    assert!(!refused(a.portals[0]) && !refused(b.portals[0]));
    let listed = send_targets(b.portals[0], INITIATOR);
    assert!(
        listed.iter().any(|l| l.contains("127.0.10.1:3260"))
            && listed.iter().any(|l| l.contains("127.0.10.2:3260")),
        "SendTargets through B: {listed:?}"
    );
    // No gateway marks another's portal FAILED for not binding it.
    for d in [&a, &b, &c] {
        let portals = d.get(&format!("/v1/subsystems/{sub}/portals"));
        let all = portals.as_array().unwrap();
        assert_eq!(all.len(), 3, "{portals}");
        assert!(all.iter().all(|p| p["status"] == "online"), "{portals}");
    }

    // A LUN created on A is served through B within the bound; B's event stream shows it.
    let ev_b = b.events();
    let mut ib = Initiator::connect(b.portals[0], &opts(None)).expect("login through B");
    let lun = a.create_lun("shared-1", 8 << 20);
    let created = Instant::now();
    let id = lun["id"].as_str().unwrap().to_string();
    assert_eq!(
        lun["backing"]["kind"], "rbd",
        "a gateway's LUN is an RBD image: {lun}"
    );
    let n = lun_number(&lun, &target);
    within(BOUND, "the LUN made on A served through B", || {
        report_luns(&mut ib).contains(&n)
    });
    println!(
        "LUN created on A served through B after {:?}",
        created.elapsed()
    );
    let evs = ev_b.collect(Duration::from_millis(500));
    assert_eq!(count(&evs, &id, LUN_ARRIVE), 1, "B's event stream: {evs:?}");

    // Written through A, read back through B.
    let mut ia = Initiator::connect(a.portals[0], &opts(None)).expect("login through A");
    let data = pattern(7, 64 * 1024);
    let w = command(&mut ia, n, &cdb::write10_fua(16, 128), &data, 0);
    assert_good(&w, "WRITE through A");
    let r = command(&mut ib, n, &cdb::read10(16, 128), &[], 64 * 1024);
    assert_good(&r, "READ through B");
    assert!(r.data == data, "B reads what A wrote");

    // REPORT TARGET PORT GROUPS: the same groups through A, B and C once each gateway has
    // read the new LUN's lease (A, its creator, owns it: its group alone Active/Optimized).
    let mut ic = Initiator::connect(c.portals[0], &opts(None)).expect("login through C");
    let mut ga = Vec::new();
    let optimized = |g: &[(u16, u8, Vec<u16>)]| -> Vec<u16> {
        g.iter().filter(|g| g.1 == 0).map(|g| g.0).collect()
    };
    within(
        BOUND,
        "the same port groups through A, B and C, A's optimized",
        || {
            ga = rtpg(&mut ia, n);
            optimized(&ga) == [1] && ga == rtpg(&mut ib, n) && ga == rtpg(&mut ic, n)
        },
    );
    ic.logout().ok();
    assert_eq!(ga.len(), 3, "one group per gateway: {ga:?}");
    ia.logout().ok();
    ib.logout().ok();

    // A mask set on A hides the LUN through B; a CHAP secret set on A is required by B.
    let r = a.call(
        "PATCH",
        &format!("/v1/luns/{id}"),
        Some(&json!({"unmasking_list": "iqn.2026-11.local.test:someone-else"})),
    );
    assert!((200..300).contains(&r.0), "PATCH on A: {r:?}");
    within(BOUND, "the mask set on A enforced by B", || {
        let mut i = Initiator::connect(b.portals[0], &opts(None)).expect("login through B");
        let listed = report_luns(&mut i);
        i.logout().ok();
        !listed.contains(&n)
    });
    let secret = "gateway-secret-1";
    let r = a.call(
        "PUT",
        &format!("/v1/targets/{target}/shared-secret"),
        Some(&json!({"secret": secret})),
    );
    assert!((200..300).contains(&r.0), "PUT shared-secret on A: {r:?}");
    within(BOUND, "the CHAP secret set on A required by B", || {
        Initiator::connect(b.portals[0], &opts(None)).is_err()
    });
    let i = Initiator::connect(b.portals[0], &opts(Some(secret))).expect("CHAP login through B");
    i.logout().ok();
    let r = a.call(
        "PUT",
        &format!("/v1/targets/{target}/shared-secret"),
        Some(&json!({})),
    );
    assert!(
        (200..300).contains(&r.0),
        "forgetting the secret on A: {r:?}"
    );

    // Deleted on A: gone on B, and answered as deleted there.
    let (s, v) = a.call("DELETE", &format!("/v1/luns/{id}?wait=true"), None);
    assert!(s == 200 || s == 204, "DELETE on A: {s} {v}");
    let gone = within(BOUND, "the LUN deleted on A gone on B", || {
        b.call("GET", &format!("/v1/luns/{id}"), None).0 != 200
    });
    println!("LUN deleted on A gone on B after {gone:?}");
    let r = b.call("GET", &format!("/v1/luns/{id}"), None);
    assert_eq!(r.1["error"]["name"], "VDS_E_OBJECT_DELETED", "{}", r.1);

    // Creates raced on A and B, three times: all succeed (the loser of the compare-and-set
    // syncs and commits again), nothing lost, the same LUNs on every gateway.
    for round in 0..3 {
        let (ra, rb) = std::thread::scope(|s| {
            let ta = s.spawn(|| a.create_lun(&format!("race-a{round}"), 4 << 20));
            let tb = s.spawn(|| b.create_lun(&format!("race-b{round}"), 4 << 20));
            (ta.join().unwrap(), tb.join().unwrap())
        });
        assert_ne!(lun_number(&ra, &target), lun_number(&rb, &target));
    }
    let names = |d: &Daemon| {
        let mut v: Vec<String> = d
            .luns()
            .iter()
            .map(|l| l["friendly_name"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    within(BOUND, "every raced LUN on every gateway", || {
        names(&a) == names(&b) && names(&a) == names(&c) && names(&a).len() == 7
    });

    // A job started on A is visible on B, to its end.
    let (s, v, loc) = a.call_full(
        "POST",
        &format!("/v1/subsystems/{sub}/luns"),
        Some(&json!({"size_bytes": 4 << 20, "friendly_name": "by-job", "targets": [target]})),
    );
    assert_eq!(s, 202, "{v}");
    let job = loc.expect("a job's Location");
    within(BOUND * 5, "A's job seen on B, finished", || {
        let (s, v) = b.call("GET", &job, None);
        s == 200 && v["state"] == "succeeded"
    });
    let jid = job.rsplit('/').next().unwrap().to_string();
    let listed = b.get("/v1/jobs");
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["id"] == jid.as_str()),
        "GET /v1/jobs on B lists A's job: {listed}"
    );

    // B restarted keeps its controller (no second one is made).
    b.terminate();
    b.restart();
    let after: Vec<Value> = b.get(&ctls).as_array().unwrap().clone();
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(after.iter().any(|c| c["id"] == b_ctl_id), "{after:?}");
    assert_eq!(names(&b), names(&a));
    println!("whole test {:?}", t0.elapsed());
}
