//! Panic containment (BEHAVIOUR §13): a panic while serving one connection, on its task or in
//! one of its command jobs, ends that connection only; its portal slot, its session and its
//! I_T nexus (with the RESERVE(6) it held) are released by drop guards; the other sessions
//! keep serving and hear of the lost reservation once (06/29/07). The panic is injected with
//! the test-only magic CDB that `Limits::panic_injection` enables.

mod common;

use std::time::{Duration, Instant};

use common::{Harness, TARGET};
use vds_dataplane::ChapConfig;
use vds_target::{DataPath, Limits};
use vds_testkit::initiator::{Initiator, LoginOptions, ScsiResult};

const TUR: [u8; 6] = [0; 6];
const RESERVE6: [u8; 6] = [0x16, 0, 0, 0, 0, 0];
/// READ(10) of one block at LBA 0.
const READ10: [u8; 10] = [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0];

/// `FF "vds-panic" SITE`, zeros to 16 bytes (see `exec::injected_panic`).
fn magic(site: u8) -> Vec<u8> {
    let mut c = b"\xFFvds-panic".to_vec();
    c.push(site);
    c.resize(16, 0);
    c
}

fn limits() -> Limits {
    Limits {
        panic_injection: true,
        ..Limits::default()
    }
}

fn login(h: &Harness, initiator: &str, isid: u8) -> Initiator {
    let mut o = LoginOptions::normal(initiator, TARGET);
    o.isid[5] = isid;
    o.timeout = Duration::from_secs(10);
    Initiator::connect(h.addr(0), &o).expect("login")
}

/// (key, ASC, ASCQ) of fixed-format sense.
fn kcq(r: &ScsiResult) -> (u8, u8, u8) {
    assert_eq!(r.status, 0x02, "CHECK CONDITION expected");
    (r.sense[2] & 0x0F, r.sense[12], r.sense[13])
}

fn wait_for(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn counts(dp: &DataPath, h: &Harness) -> (usize, usize) {
    (dp.connections(h.portals[0].id), dp.sessions().len())
}

/// Session A reserves LUN 0 and panics at `site`; session B must then see the release once
/// and keep serving; every count returns to where it was.
fn panic_releases_everything(addr: &str, site: u8) -> Option<ScsiResult> {
    let h = Harness::start(&[addr], ChapConfig::default(), limits());
    let mut a = login(&h, "iqn.2026-11.test:panicking", 1);
    let mut b = login(&h, "iqn.2026-11.test:bystander", 2);
    assert_eq!(counts(&h.dp, &h), (2, 2));
    assert_eq!(a.command(0, &TUR, &[], 0).unwrap().status, 0);
    assert_eq!(b.command(0, &TUR, &[], 0).unwrap().status, 0);
    assert_eq!(a.command(0, &RESERVE6, &[], 0).unwrap().status, 0);
    assert_eq!(b.command(0, &TUR, &[], 0).unwrap().status, 0x18);

    a.set_timeout(Duration::from_secs(10)).unwrap();
    let answer = a.command(0, &magic(site), &[], 0).ok();
    assert!(a.closed_by_target(), "the panicking connection ends");
    wait_for("the panicked connection and session to go", || {
        counts(&h.dp, &h) == (1, 1)
    });
    assert_eq!(h.dp.sessions()[0].initiator, "iqn.2026-11.test:bystander");

    // The other session kept its connection; the reservation went with the lost nexus, and
    // it is told so once.
    assert_eq!(kcq(&b.command(0, &TUR, &[], 0).unwrap()), (6, 0x29, 0x07));
    assert_eq!(b.command(0, &TUR, &[], 0).unwrap().status, 0);
    assert_eq!(b.command(0, &RESERVE6, &[], 0).unwrap().status, 0);
    let r = b.command(0, &READ10, &[], 512).unwrap();
    assert_eq!((r.status, r.data.len()), (0, 512));

    // The same initiator logs in again and is served (the reservation now is B's).
    let mut again = login(&h, "iqn.2026-11.test:panicking", 1);
    assert_eq!(again.command(0, &TUR, &[], 0).unwrap().status, 0x18);
    assert_eq!(again.command(1, &READ10, &[], 512).unwrap().status, 0);
    again.logout().unwrap();
    b.logout().unwrap();
    wait_for("every connection and session to go", || {
        counts(&h.dp, &h) == (0, 0)
    });
    answer
}

#[test]
fn a_panic_on_a_connection_task_releases_its_slot_session_and_reservation() {
    let answer = panic_releases_everything("127.0.33.7:43070", 1);
    assert!(answer.is_none(), "a task that panicked sends nothing more");
}

#[test]
fn a_panic_in_a_command_job_answers_04_44_00_and_ends_that_connection_only() {
    let answer = panic_releases_everything("127.0.33.7:43071", 2);
    let r = answer.expect("the command is answered");
    assert_eq!(kcq(&r), (4, 0x44, 0x00));
}

#[test]
fn without_panic_injection_the_magic_cdb_is_an_unknown_opcode() {
    let h = Harness::start(
        &["127.0.33.7:43072"],
        ChapConfig::default(),
        Limits::default(),
    );
    let mut a = login(&h, "iqn.2026-11.test:curious", 1);
    assert_eq!(a.command(0, &TUR, &[], 0).unwrap().status, 0);
    for site in [1, 2] {
        let r = a.command(0, &magic(site), &[], 0).unwrap();
        assert_eq!(kcq(&r), (5, 0x20, 0x00));
    }
    assert_eq!(a.command(0, &TUR, &[], 0).unwrap().status, 0);
    a.logout().unwrap();
    wait_for("the connection to go", || counts(&h.dp, &h) == (0, 0));
}
