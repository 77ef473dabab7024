//! Gateways as controllers with fenced failover (docs/SCALEOUT.md "Failover"), against a real
//! one-node Ceph started by `scripts/ceph-cluster` (monitor on 127.0.0.1:46811): gateways A
//! (127.0.11.1) and B (127.0.11.2) serve one subsystem; A owns the LUN (its lease, the image's
//! exclusive lock, Active/Optimized), B is Active/Non-optimized and refuses writes with
//! 02/04/0A; REPORT TARGET PORT GROUPS is the same through both. Under a write load (FUA) on
//! both paths, A is killed with SIGKILL: B takes the lease over, blocklists A, takes the lock
//! and reports Active/Optimized with 06/2A/06; the failover time is measured and printed (and
//! must be under 10 s); every acknowledged write reads back through B; A is on the blocklist;
//! A restarted (a new RADOS client) is a non-owner whose writes are never GOOD, and both
//! gateways report the same port groups again. B's controller set OFFLINE gives its lease up
//! and A takes the LUN; B set ONLINE again takes nothing back. A missing Ceph fails the test.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::ceph::Ceph;
use common::*;
use serde_json::json;
use vds_testkit::Initiator;

/// The failover target of docs/SCALEOUT.md (the lease time is 4 s).
const BUDGET: Duration = Duration::from_secs(10);
const INITIATOR: &str = "iqn.2026-11.local.test:failover";
/// ALUA states in REPORT TARGET PORT GROUPS.
const AO: u8 = 0;
const ANO: u8 = 1;
const UNAVAILABLE: u8 = 3;

/// Gateway `n` (1, 2) on 127.0.11.n: API port 46820, portal 3260.
fn gateway(ceph: &Ceph, n: u8, name: &str) -> Daemon {
    ceph.gateway(220 + u16::from(n), [127, 0, 11, n], 46820, name)
}

fn connect(addr: SocketAddr, isid: u8) -> Option<Initiator> {
    let mut o = login_opts(INITIATOR, isid);
    o.timeout = Duration::from_secs(3);
    Initiator::connect(addr, &o).ok()
}

/// A command past the unit attentions (bounded); `Err` when the connection failed.
fn command(
    ini: &mut Initiator,
    lun: u64,
    cdb: &[u8],
    data: &[u8],
    len: u32,
) -> Result<vds_testkit::ScsiResult, String> {
    for _ in 0..6 {
        let r = ini
            .command(lun, cdb, data, len)
            .map_err(|e| e.to_string())?;
        if r.status == CHECK && sense_of(&r).is_some_and(|(k, _, _)| k == 0x06) {
            continue;
        }
        return Ok(r);
    }
    Err(format!("unit attentions never ended for CDB {cdb:02x?}"))
}

/// REPORT TARGET PORT GROUPS through `addr`: (group id, state) of every group.
fn rtpg(addr: SocketAddr, lun: u64) -> Vec<(u16, u8)> {
    let mut ini = connect(addr, 9).unwrap_or_else(|| panic!("login through {addr}"));
    let r = command(
        &mut ini,
        lun,
        &[0xA3, 0x0A, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0],
        &[],
        1024,
    )
    .unwrap();
    assert_good(&r, "REPORT TARGET PORT GROUPS");
    let d = &r.data;
    let mut out = Vec::new();
    let mut i = 4;
    while i + 8 <= d.len() {
        let n = d[i + 7] as usize;
        out.push((u16::from_be_bytes([d[i + 2], d[i + 3]]), d[i] & 0x0F));
        i += 8 + 4 * n;
    }
    out.sort_unstable();
    out
}

/// Waits (bounded by `limit`) until `f` holds.
fn within(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The lease value of `lun` (empty when none), read with `rados`.
fn lease(ceph: &Ceph, subsystem: &str, lun: &str) -> String {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new("rados")
        .arg("-c")
        .arg(ceph.conf())
        .args([
            "-p",
            "rbd",
            "getomapval",
            &format!("vds.{subsystem}.config"),
        ])
        .arg(format!("lease/{lun}"))
        .arg(tmp.path())
        .output()
        .expect("rados runs");
    if !out.status.success() {
        let err = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(err.contains("No such key"), "rados getomapval: {err}");
        return String::new();
    }
    std::fs::read_to_string(tmp.path()).unwrap()
}

/// Field `i` of a lease value (`vds-lease 1`, generation, renewals, owner, address).
fn field(lease: &str, i: usize) -> String {
    lease.lines().nth(i).unwrap_or_default().to_string()
}

/// What a writer saw.
#[derive(Default)]
struct Seen {
    /// Acknowledged writes: LBA → data.
    acked: BTreeMap<u32, Vec<u8>>,
    /// When each GOOD came, and through which path (0 = A, 1 = B).
    goods: Vec<(Instant, usize)>,
    /// 06/2A/06 seen through B.
    ua_2a06_on_b: bool,
    /// 02/04/0A answers, per path.
    transitions: [usize; 2],
}

/// A host's multipath writer: FUA writes of its own LBAs, each through `pref` first, then the
/// other path (on 02/04/0A or a lost connection), until GOOD; never another answer.
fn writer(
    paths: [SocketAddr; 2],
    pref: usize,
    lun: u64,
    first_lba: u32,
    stop: &AtomicBool,
    seen: &Mutex<Seen>,
) {
    let mut conns: [Option<Initiator>; 2] = [None, None];
    let mut lba = first_lba;
    while !stop.load(Ordering::SeqCst) {
        let data: Vec<u8> = (0..512u32)
            .map(|i| (i as u8) ^ (lba as u8) ^ 0x5A)
            .collect();
        let start = Instant::now();
        'path: loop {
            assert!(
                start.elapsed() < Duration::from_secs(40),
                "a write found no path in 40 s"
            );
            for p in [pref, 1 - pref] {
                if conns[p].is_none() {
                    conns[p] = connect(paths[p], 1 + pref as u8);
                }
                let Some(ini) = conns[p].as_mut() else {
                    continue;
                };
                let r = match ini.command(lun, &cdb::write10_fua(lba, 1), &data, 0) {
                    Ok(r) => r,
                    Err(_) => {
                        conns[p] = None;
                        continue;
                    }
                };
                let mut s = seen.lock().unwrap();
                match (r.status, sense_of(&r)) {
                    (GOOD, _) => {
                        s.acked.insert(lba, data.clone());
                        s.goods.push((Instant::now(), p));
                        break 'path;
                    }
                    (CHECK, Some((0x06, 0x2A, 0x06))) => {
                        s.ua_2a06_on_b |= p == 1;
                    }
                    (CHECK, Some((0x06, _, _))) => {}
                    (CHECK, Some((0x02, 0x04, 0x0A))) => s.transitions[p] += 1,
                    other => panic!("a write through path {p} answered {other:?}"),
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        lba += 1;
    }
}

#[test]
fn a_killed_owner_fails_over_to_the_survivor_fenced_and_within_the_budget() {
    let ceph = Ceph::start("failover", 46811);
    let mut a = gateway(&ceph, 1, "gw-a");
    let sub = a.subsystem();
    let lun_id = a.default_lun();
    // A owns the new LUN: the only gateway, and the least loaded.
    within(Duration::from_secs(15), "A takes the LUN's lease", || {
        field(&lease(&ceph, &sub, &lun_id), 3) == "gw-a"
    });
    let a_lease = lease(&ceph, &sub, &lun_id);
    let a_addr = field(&a_lease, 4);
    assert_eq!(field(&a_lease, 1), "1", "generation 1: {a_lease:?}");

    let b = gateway(&ceph, 2, "gw-b");
    let (pa, pb) = (a.portals[0], b.portals[0]);
    let lun = {
        let mut ini = connect(pb, 7).expect("login through B");
        let luns = report_luns(&mut ini);
        assert_eq!(luns.len(), 1, "{luns:?}");
        luns[0]
    };
    // Both report A's group Active/Optimized and B's Active/Non-optimized.
    let (ga, gb) = (1u16, 2u16);
    within(
        Duration::from_secs(10),
        "the same port groups through A and B",
        || {
            let want = vec![(ga, AO), (gb, ANO)];
            rtpg(pa, lun) == want && rtpg(pb, lun) == want
        },
    );

    // Two hosts' writers: one prefers A, one prefers B (refused there with 02/04/0A).
    let stop = AtomicBool::new(false);
    let seen = [Mutex::new(Seen::default()), Mutex::new(Seen::default())];
    let mut killed = None;
    std::thread::scope(|s| {
        for (w, first) in [(0usize, 0u32), (1, 100_000)] {
            let (stop, seen) = (&stop, &seen[w]);
            s.spawn(move || writer([pa, pb], w, lun, first, stop, seen));
        }
        std::thread::sleep(Duration::from_secs(2));
        a.kill9();
        let t = Instant::now();
        killed = Some(t);
        // Run until both writers have written through B for 2 s after the failover.
        let deadline = t + Duration::from_secs(40);
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let done = seen.iter().all(|s| {
                let s = s.lock().unwrap();
                s.goods
                    .iter()
                    .find(|(at, p)| *at > t && *p == 1)
                    .is_some_and(|(at, _)| at.elapsed() > Duration::from_secs(2))
            });
            if done || Instant::now() > deadline {
                break;
            }
        }
        stop.store(true, Ordering::SeqCst);
    });
    let killed = killed.unwrap();
    let seen: Vec<Seen> = seen.into_iter().map(|m| m.into_inner().unwrap()).collect();
    for (w, s) in seen.iter().enumerate() {
        let before = s.goods.iter().filter(|(at, _)| *at < killed).count();
        println!(
            "writer {w}: {} acknowledged ({before} before the kill), 02/04/0A through A {} and B {}",
            s.acked.len(),
            s.transitions[0],
            s.transitions[1]
        );
        assert!(before > 0, "writer {w} wrote before the kill");
        assert!(
            s.goods.iter().all(|(at, p)| *at < killed || *p == 1),
            "after the kill, only B"
        );
    }
    assert!(
        seen[1].transitions[1] > 0,
        "B refused writes while A owned the LUN"
    );
    let first_after = seen
        .iter()
        .filter_map(|s| s.goods.iter().find(|(at, _)| *at > killed).map(|g| g.0))
        .min()
        .expect("a write after the kill");
    let failover = first_after - killed;
    println!(
        "failover: the first write GOOD through B {:.2} s after kill -9 of A (lease time 4 s)",
        failover.as_secs_f64()
    );
    assert!(failover < BUDGET, "failover took {failover:?}");
    assert!(
        seen[1].ua_2a06_on_b,
        "B's nexus saw 06/2A/06 ASYMMETRIC ACCESS STATE CHANGED"
    );

    // Every acknowledged write reads back through B.
    let mut ini = connect(pb, 8).expect("login through B");
    let mut n = 0;
    for s in &seen {
        for (lba, data) in &s.acked {
            let r = command(&mut ini, lun, &cdb::read10(*lba, 1), &[], 512).unwrap();
            assert_good(&r, "read back through B");
            assert_eq!(&r.data, data, "LBA {lba}");
            n += 1;
        }
    }
    println!("{n} acknowledged writes read back through B");

    // B owns the LUN with the next generation; A's old client is on the blocklist.
    let b_lease = lease(&ceph, &sub, &lun_id);
    assert_eq!(
        (field(&b_lease, 1), field(&b_lease, 3)),
        ("2".to_string(), "gw-b".to_string())
    );
    let blocklist = ceph.run("ceph", &["osd", "blocklist", "ls"]);
    assert!(
        blocklist.contains(a_addr.trim_start_matches("v2:")),
        "{a_addr} blocklisted: {blocklist}"
    );

    // A comes back as a new client: not the owner; its writes are never GOOD; both gateways
    // report B's group Active/Optimized.
    a.restart();
    within(
        Duration::from_secs(15),
        "the same port groups again",
        || {
            let want = vec![(ga, ANO), (gb, AO)];
            rtpg(pa, lun) == want && rtpg(pb, lun) == want
        },
    );
    let mut ini = connect(pa, 6).expect("login through the restarted A");
    for lba in 0..5 {
        let r = command(&mut ini, lun, &cdb::write10_fua(lba, 1), &[0xEE; 512], 0).unwrap();
        assert_sense(&r, (0x02, 0x04, 0x0A), "a write through the old owner");
    }
    let r = command(&mut ini, lun, &cdb::read10(0, 1), &[], 512).unwrap();
    assert_good(&r, "a read through the old owner");
    assert_eq!(r.data, seen[0].acked[&0], "the refused write did not land");
    assert_eq!(
        field(&lease(&ceph, &sub, &lun_id), 3),
        "gw-b",
        "no ping-pong"
    );
    drop(ini);

    // Manual failover: B's controller set OFFLINE gives its lease up; A takes it (after a
    // lease time free) and is the only optimized group; B set ONLINE again takes nothing
    // back (failback is manual).
    let ctls = a.get(&format!("/v1/subsystems/{sub}/controllers"));
    let ctl_b = ctls
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["friendly_name"] == "gw-b")
        .expect("B's controller")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let status = |s: &str| {
        let (code, v) = a.call(
            "POST",
            &format!("/v1/controllers/{ctl_b}/status"),
            Some(&json!({ "status": s })),
        );
        assert_eq!(code, 200, "{v}");
    };
    status("offline");
    within(
        Duration::from_secs(15),
        "A takes the lease B gave up",
        || field(&lease(&ceph, &sub, &lun_id), 3) == "gw-a",
    );
    within(
        Duration::from_secs(5),
        "A's group optimized, B's unavailable",
        || rtpg(pa, lun) == vec![(ga, AO), (gb, UNAVAILABLE)],
    );
    let mut ini = connect(pa, 5).expect("login through A");
    let r = command(&mut ini, lun, &cdb::write10_fua(3, 1), &[0xA5; 512], 0).unwrap();
    assert_good(&r, "a write through the new owner A");
    let generation = field(&lease(&ceph, &sub, &lun_id), 1);
    status("online");
    std::thread::sleep(Duration::from_secs(6));
    let l = lease(&ceph, &sub, &lun_id);
    assert_eq!(
        (field(&l, 3), field(&l, 1)),
        ("gw-a".to_string(), generation),
        "no failback"
    );
}
