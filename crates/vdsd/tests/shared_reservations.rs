//! Persistent reservations shared by the gateways of one subsystem (docs/SCALEOUT.md
//! "Persistent reservations across gateways"), against a real one-node Ceph (monitor on
//! 127.0.0.1:46841) and two gateways on 127.0.14.1-2: registrations made through either are
//! seen through both; a reservation taken through A conflicts through B; a PREEMPT through B
//! tells A's preempted nexus (06/2A/05) and shuts it out (host2 then reads through B: A owns
//! the LUN, so B serves reads only); the state outlives a gateway's
//! restart; and after B is killed (-9) a change through A completes once B is blocklisted
//! (it can no longer acknowledge), within the bound, with B's address in the OSD blocklist.

mod common;

use std::time::{Duration, Instant};

use common::ceph::Ceph;
use common::*;
use vds_testkit::Initiator;

/// Gateway `n` on 127.0.14.n: API port 46850, portal 3260.
fn gateway(ceph: &Ceph, n: u8, name: &str) -> Daemon {
    ceph.gateway(220 + u16::from(n), [127, 0, 14, n], 46850, name)
}

/// PERSISTENT RESERVE OUT: service action `sa`, type `rtype`, keys.
fn prout(sa: u8, rtype: u8, key: u64, sakey: u64) -> (Vec<u8>, Vec<u8>) {
    let cdb = vec![0x5F, sa, rtype, 0, 0, 0, 0, 0, 24, 0];
    let mut p = vec![0u8; 24];
    p[0..8].copy_from_slice(&key.to_be_bytes());
    p[8..16].copy_from_slice(&sakey.to_be_bytes());
    (cdb, p)
}

/// A command, past the unit attentions a new nexus sees first (bounded).
fn settle(ini: &mut Initiator, cdb: &[u8], data: &[u8], len: u32) -> vds_testkit::ScsiResult {
    for _ in 0..6 {
        let r = ini.command(0, cdb, data, len).expect("command");
        if r.status == 0x02 && sense_of(&r).is_some_and(|(k, _, _)| k == 0x06) {
            continue;
        }
        return r;
    }
    panic!("unit attentions never ended for CDB {cdb:02x?}");
}

/// READ KEYS: (generation, keys).
fn keys(ini: &mut Initiator) -> (u32, Vec<u64>) {
    let r = settle(ini, &[0x5E, 0, 0, 0, 0, 0, 0, 0x10, 0, 0], &[], 4096);
    assert_good(&r, "READ KEYS");
    let d = &r.data;
    let gen = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
    let n = u32::from_be_bytes([d[4], d[5], d[6], d[7]]) as usize / 8;
    let keys = (0..n)
        .map(|i| u64::from_be_bytes(d[8 + 8 * i..16 + 8 * i].try_into().unwrap()))
        .collect();
    (gen, keys)
}

/// The RADOS address gateway `name` recorded in the config object (`gw/<name>`: `gid addr`).
fn gateway_address(ceph: &Ceph, sub: &str, name: &str) -> String {
    let file = std::env::temp_dir().join(format!("vds-shared-pr-gw-{}", std::process::id()));
    let out = std::process::Command::new("timeout")
        .arg("30")
        .arg("rados")
        .arg("-c")
        .arg(ceph.conf())
        .args(["-p", "rbd", "getomapval", &format!("vds.{sub}.config")])
        .arg(format!("gw/{name}"))
        .arg(&file)
        .output()
        .expect("rados runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = std::fs::read_to_string(&file).expect("the record");
    let _ = std::fs::remove_file(&file);
    let (_, addr) = v.trim().split_once(' ').expect("`gid addr`");
    addr.to_string()
}

fn login(d: &Daemon, who: &str) -> Initiator {
    Initiator::connect(d.portals[0], &login_opts(who, 1)).expect("login")
}

const WRITE: [u8; 10] = [0x2A, 0, 0, 0, 0, 8, 0, 0, 1, 0];
const READ: [u8; 10] = [0x28, 0, 0, 0, 0, 8, 0, 0, 1, 0];
const CONFLICT: u8 = 0x18;

#[test]
fn reservations_are_one_state_across_gateways_and_a_silent_gateway_is_fenced() {
    let ceph = Ceph::start("shared-pr", 46841);
    let a = gateway(&ceph, 1, "gw-a");
    let mut b = gateway(&ceph, 2, "gw-b");
    let mut i1 = login(&a, "iqn.2026-11.local.test:host1");
    let mut i2 = login(&b, "iqn.2026-11.local.test:host2");

    // Registrations through either gateway are one list, with one generation, on both.
    let (c, p) = prout(0, 0, 0, 0xA);
    assert_good(&settle(&mut i1, &c, &p, 0), "REGISTER through A");
    let (c, p) = prout(0, 0, 0, 0xB);
    assert_good(&settle(&mut i2, &c, &p, 0), "REGISTER through B");
    assert_eq!(keys(&mut i1), (2, vec![0xA, 0xB]));
    assert_eq!(keys(&mut i2), (2, vec![0xA, 0xB]));

    // Exclusive access taken through A: host2 through B may neither write nor read.
    let (c, p) = prout(1, 3, 0xA, 0);
    assert_good(&settle(&mut i1, &c, &p, 0), "RESERVE through A");
    let data = vec![0x5A; 512];
    assert_eq!(
        settle(&mut i2, &WRITE, &data, 0).status,
        CONFLICT,
        "WRITE through B"
    );
    assert_eq!(
        settle(&mut i2, &READ, &[], 512).status,
        CONFLICT,
        "READ through B"
    );
    assert_good(
        &settle(&mut i1, &WRITE, &data, 0),
        "WRITE by the holder through A",
    );
    // host1 through B is another I_T nexus, registered nowhere: refused as well.
    let mut i1b = login(&b, "iqn.2026-11.local.test:host1");
    assert_eq!(
        settle(&mut i1b, &WRITE, &data, 0).status,
        CONFLICT,
        "host1 through B"
    );
    i1b.logout().ok();

    // host2 preempts host1 through B: host1, on A, hears REGISTRATIONS PREEMPTED first and is
    // then shut out; host2 holds the reservation.
    let (c, p) = prout(4, 3, 0xB, 0xA);
    assert_good(&settle(&mut i2, &c, &p, 0), "PREEMPT through B");
    let r = i1
        .command(0, &[0, 0, 0, 0, 0, 0], &[], 0)
        .expect("TUR through A");
    assert_eq!(
        sense_of(&r),
        Some((0x06, 0x2A, 0x05)),
        "host1's unit attention on A"
    );
    assert_eq!(
        settle(&mut i1, &WRITE, &data, 0).status,
        CONFLICT,
        "WRITE by host1 through A"
    );
    // B does not own the LUN (A does: docs/SCALEOUT.md "Ownership"), so host2's proof of
    // holding exclusive access through B is a READ, which only the holder may do.
    assert_good(&settle(&mut i2, &READ, &[], 512), "READ by host2 through B");
    assert_eq!(keys(&mut i1).1, vec![0xB]);

    // The state outlives a gateway's restart (it is the cluster's).
    i2.logout().ok();
    b.terminate();
    b.restart();
    let mut i2 = login(&b, "iqn.2026-11.local.test:host2");
    assert_eq!(keys(&mut i2).1, vec![0xB], "after B's restart");
    assert_good(
        &settle(&mut i2, &READ, &[], 512),
        "the holder's READ after B's restart",
    );

    // B, which owns nothing, dies without a word: its watch lingers, so the next change
    // cannot be acknowledged by B; A (the owner: no take-over happens, so nothing else
    // blocklists B) blocklists B and the command completes.
    i2.logout().ok();
    let sub = a.subsystem();
    let b_addr = gateway_address(&ceph, &sub, "gw-b");
    b.kill9();
    let t = Instant::now();
    let (c, p) = prout(0, 0, 0, 0xC);
    assert_good(
        &settle(&mut i1, &c, &p, 0),
        "REGISTER (host1 again) through A with B dead",
    );
    let took = t.elapsed();
    println!("a reservation change with a dead gateway completed in {took:?}");
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert_eq!(keys(&mut i1).1, vec![0xB, 0xC]);
    let listed = ceph.ceph(&["osd", "blocklist", "ls"]);
    assert!(
        listed.lines().any(|l| l.starts_with(&b_addr)),
        "B's client {b_addr} is blocklisted: {listed}"
    );
    i1.logout().ok();
}
