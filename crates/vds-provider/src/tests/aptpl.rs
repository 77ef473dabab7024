//! PERSISTENT RESERVE OUT with APTPL is acknowledged only once its state is stored: a
//! provider dropped right after the GOOD (as `kill -9` would) finds the registration and the
//! reservation on the next start (found by the reliability crash test). A change the store
//! refuses, or one the provider does not take up in time, fails with 04/44/00 and leaves the
//! state unchanged, in memory and after a restart (BEHAVIOUR §13, issue 10 item 4).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::Fixture;
use vds_scsi::{ItNexus, ScsiCommand, ScsiStatus, TaskAttr};

fn nexus() -> ItNexus {
    ItNexus {
        id: 42,
        initiator_name: "iqn.2026-01.test:aptpl".into(),
        initiator_port: "iqn.2026-01.test:aptpl,i,0x230000000042".into(),
        target_port: "iqn.2026-11.local.vds:default,t,0x0001".into(),
        relative_target_port: 1,
        target_port_group: 1,
    }
}

fn run(lu: &vds_scsi::LogicalUnit, cdb: &[u8], data: &[u8], data_in: &mut Vec<u8>) -> ScsiStatus {
    run_full(lu, cdb, data, data_in).status
}

fn run_full(
    lu: &vds_scsi::LogicalUnit,
    cdb: &[u8],
    data: &[u8],
    data_in: &mut Vec<u8>,
) -> vds_scsi::ScsiOutcome {
    let cmd = ScsiCommand {
        cdb,
        data_out: data,
        expected_in_len: 4096,
        attr: TaskAttr::Simple,
    };
    let out = lu.execute(&nexus(), &cmd, data_in);
    // A new nexus meets a unit attention first (06/29/xx); anything else is the answer.
    let ua = out.status == ScsiStatus::CheckCondition
        && out.sense.as_ref().is_some_and(|s| s[2] & 0x0F == 6);
    if ua {
        data_in.clear();
        return lu.execute(&nexus(), &cmd, data_in);
    }
    out
}

/// Sense key, ASC, ASCQ of fixed-format sense.
fn kcq(out: &vds_scsi::ScsiOutcome) -> (u8, u8, u8) {
    let s = out.sense.as_ref().expect("sense data");
    (s[2] & 0x0F, s[12], s[13])
}

/// READ KEYS: (generation, keys).
fn read_keys(lu: &vds_scsi::LogicalUnit) -> (u32, Vec<u64>) {
    let mut d = Vec::new();
    let c = [0x5E, 0x00, 0, 0, 0, 0, 0, 0x10, 0, 0];
    assert_eq!(run(lu, &c, &[], &mut d), ScsiStatus::Good);
    let keys = d[8..]
        .chunks(8)
        .map(|k| u64::from_be_bytes(k.try_into().unwrap()))
        .collect();
    (u32::from_be_bytes(d[0..4].try_into().unwrap()), keys)
}

/// READ RESERVATION: the holder's key and type, if reserved.
fn read_reservation(lu: &vds_scsi::LogicalUnit) -> Option<(u64, u8)> {
    let mut d = Vec::new();
    let c = [0x5E, 0x01, 0, 0, 0, 0, 0, 0x10, 0, 0];
    assert_eq!(run(lu, &c, &[], &mut d), ScsiStatus::Good);
    (u32::from_be_bytes(d[4..8].try_into().unwrap()) == 16).then(|| {
        (
            u64::from_be_bytes(d[8..16].try_into().unwrap()),
            d[21] & 0x0F,
        )
    })
}

/// Runs a PR OUT on another thread (it may block on the store) and hands back its outcome.
fn pr_out_in_background(
    lu: &std::sync::Arc<vds_scsi::LogicalUnit>,
    sa: u8,
    ty: u8,
    key: u64,
    sa_key: u64,
) -> mpsc::Receiver<vds_scsi::ScsiOutcome> {
    let (tx, rx) = mpsc::channel();
    let lu = lu.clone();
    std::thread::spawn(move || {
        let (c, p) = pr_out(sa, ty, key, sa_key, false);
        let _ = tx.send(run_full(&lu, &c, &p, &mut Vec::new()));
    });
    rx
}

/// PR OUT: 5F | service action | scope/type | 00 00 00 00 | parameter list length 24 | 00.
fn pr_out(sa: u8, ty: u8, key: u64, sa_key: u64, aptpl: bool) -> ([u8; 10], [u8; 24]) {
    let cdb = [0x5F, sa, ty, 0, 0, 0, 0, 0, 24, 0];
    let mut p = [0u8; 24];
    p[0..8].copy_from_slice(&key.to_be_bytes());
    p[8..16].copy_from_slice(&sa_key.to_be_bytes());
    p[20] = u8::from(aptpl);
    (cdb, p)
}

#[test]
fn acknowledged_aptpl_reservation_survives_an_immediate_drop() {
    let mut f = Fixture::new(47098, false);
    let id = f.luns()[0].id;
    let lu = f.p.logical_unit(id).unwrap();
    let mut din = Vec::new();
    // REGISTER AND IGNORE EXISTING KEY (06) with APTPL, then RESERVE (01) WRITE EXCLUSIVE.
    let (c, p) = pr_out(0x06, 0, 0, 0xABCD, true);
    assert_eq!(run(&lu, &c, &p, &mut din), ScsiStatus::Good);
    let (c, p) = pr_out(0x01, 0x01, 0xABCD, 0, false);
    assert_eq!(run(&lu, &c, &p, &mut din), ScsiStatus::Good);
    drop(lu);
    f.restart();
    let lu = f.p.logical_unit(id).unwrap();
    // READ RESERVATION: generation, length 16, key 0xABCD, type 1.
    let read_res = [0x5E, 0x01, 0, 0, 0, 0, 0, 0x10, 0, 0];
    assert_eq!(run(&lu, &read_res, &[], &mut din), ScsiStatus::Good);
    assert_eq!(
        u32::from_be_bytes(din[4..8].try_into().unwrap()),
        16,
        "{din:02x?}"
    );
    assert_eq!(u64::from_be_bytes(din[8..16].try_into().unwrap()), 0xABCD);
    assert_eq!(din[21] & 0x0F, 0x01);
}

/// Registers key 0xABCD with APTPL on the fixture's first LUN; the state every refused change
/// below must leave in place.
fn registered(f: &Fixture) -> (uuid::Uuid, std::sync::Arc<vds_scsi::LogicalUnit>) {
    let id = f.luns()[0].id;
    let lu = f.p.logical_unit(id).unwrap();
    let (c, p) = pr_out(0x06, 0, 0, 0xABCD, true);
    assert_eq!(run(&lu, &c, &p, &mut Vec::new()), ScsiStatus::Good);
    assert_eq!(read_keys(&lu).1, vec![0xABCD]);
    (id, lu)
}

/// A real store failure: another process holds SQLite's write lock (as `sqlite3 vds.sqlite`
/// with an open write transaction would) past the store's busy timeout, so the write answers
/// SQLITE_BUSY. The RESERVE fails with 04/44/00, is never visible (not even while it waits),
/// and the state after a restart is the old one.
#[test]
fn aptpl_change_the_store_refuses_fails_and_changes_nothing() {
    let mut f = Fixture::new(41083, false);
    let (id, lu) = registered(&f);
    let before = read_keys(&lu);
    let db = rusqlite::Connection::open(f.dir.path().join("data").join("vds.sqlite")).unwrap();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = Instant::now();
    let done = pr_out_in_background(&lu, 0x01, 0x01, 0xABCD, 0);
    // While the RESERVE waits on the store, nobody sees it.
    assert_eq!(read_reservation(&lu), None);
    let out = done
        .recv_timeout(Duration::from_secs(60))
        .expect("the PR OUT answers (the store's busy timeout is 5 s)");
    assert_eq!(
        out.status,
        ScsiStatus::CheckCondition,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(kcq(&out), (0x04, 0x44, 0x00));
    db.execute_batch("ROLLBACK").unwrap();
    drop(db);
    assert_eq!(read_reservation(&lu), None);
    assert_eq!(read_keys(&lu), before);
    drop(lu);
    f.restart();
    let lu = f.p.logical_unit(id).unwrap();
    assert_eq!(read_reservation(&lu), None);
    assert_eq!(read_keys(&lu), before);
    // The store works again: the same command succeeds and is kept.
    let (c, p) = pr_out(0x01, 0x01, 0xABCD, 0, false);
    assert_eq!(run(&lu, &c, &p, &mut Vec::new()), ScsiStatus::Good);
    drop(lu);
    f.restart();
    let lu = f.p.logical_unit(id).unwrap();
    assert_eq!(read_reservation(&lu), Some((0xABCD, 0x01)));
}

/// The timeout path: the provider thread cannot take the blob up (its state lock is held, as
/// during a long flush) for longer than the command waits. The command fails with 04/44/00 and
/// its blob is cancelled, so it is not written once the lock is free: neither the running
/// provider nor a restarted one has the reservation.
#[test]
fn aptpl_change_not_stored_in_time_fails_and_is_never_written() {
    let mut f = Fixture::new(41084, false);
    let (id, lu) = registered(&f);
    let before = read_keys(&lu);
    let held = f.p.inner.state.lock();
    let done = pr_out_in_background(&lu, 0x01, 0x01, 0xABCD, 0);
    let out = done
        .recv_timeout(crate::hooks::PERSIST_WAIT + Duration::from_secs(30))
        .expect("the PR OUT gives up after PERSIST_WAIT");
    assert_eq!(out.status, ScsiStatus::CheckCondition);
    assert_eq!(kcq(&out), (0x04, 0x44, 0x00));
    drop(held);
    // A later APTPL change goes through the same queue, so once it is acknowledged the
    // cancelled blob has been passed over.
    let (c, p) = pr_out(0x00, 0, 0xABCD, 0xABCD, true);
    assert_eq!(run(&lu, &c, &p, &mut Vec::new()), ScsiStatus::Good);
    assert_eq!(read_reservation(&lu), None);
    assert_eq!(read_keys(&lu).1, before.1);
    drop(lu);
    f.restart();
    let lu = f.p.logical_unit(id).unwrap();
    assert_eq!(read_reservation(&lu), None);
    assert_eq!(read_keys(&lu).1, before.1);
}
