//! APTPL against the real daemon with a store that really fails (issue 10 item 4, BEHAVIOUR
//! §13): the store's filesystem is full, so SQLite cannot commit the reservation blob. The
//! PERSISTENT RESERVE OUT answers CHECK CONDITION 04/44/00 (HARDWARE ERROR, INTERNAL TARGET
//! FAILURE) instead of GOOD, the reservation state is unchanged (READ KEYS / READ RESERVATION
//! now and after a `kill -9` and restart), and once space is back the same command succeeds
//! and is kept. Needs root to mount a tmpfs; without it the test fails, it does not skip.
//! Ports: API 47128, portal 47028.

mod reliability_common;

use reliability_common::*;
use vds_testkit::Initiator;

fn pr_out(sa: u8, ty: u8, key: u64, sa_key: u64, aptpl: bool) -> (Vec<u8>, Vec<u8>) {
    let mut cdb = vec![0u8; 10];
    cdb[0] = 0x5F;
    cdb[1] = sa;
    cdb[2] = ty;
    cdb[8] = 24;
    let mut p = vec![0u8; 24];
    p[0..8].copy_from_slice(&key.to_be_bytes());
    p[8..16].copy_from_slice(&sa_key.to_be_bytes());
    p[20] = u8::from(aptpl);
    (cdb, p)
}

/// (registered keys, reservation (key, type)) of LUN 0 as `ini` sees them.
fn pr_state(ini: &mut Initiator) -> (Vec<u64>, Option<(u64, u8)>) {
    let keys = command_past_ua(ini, 0, &[0x5E, 0, 0, 0, 0, 0, 0, 0x10, 0, 0], &[], 4096);
    assert_eq!(keys.status, 0, "READ KEYS: {:02x?}", keys.sense);
    let list = keys.data[8..]
        .chunks(8)
        .map(|k| u64::from_be_bytes(k.try_into().unwrap()))
        .collect();
    let res = command_past_ua(ini, 0, &[0x5E, 1, 0, 0, 0, 0, 0, 0x10, 0, 0], &[], 4096);
    assert_eq!(res.status, 0, "READ RESERVATION: {:02x?}", res.sense);
    let held = (u32::from_be_bytes(res.data[4..8].try_into().unwrap()) == 16).then(|| {
        (
            u64::from_be_bytes(res.data[8..16].try_into().unwrap()),
            res.data[21] & 0x0F,
        )
    });
    (list, held)
}

#[test]
fn aptpl_reservation_on_a_full_store_fails_and_changes_nothing() {
    let fs = SmallFs::mount("8m");
    let o = Opts::new(&fs.path.join("data"), 47128, 47028);
    let mut d = Daemon::start(&o);
    let mut ini = d.login(INITIATOR, DEFAULT_IQN);
    // REGISTER AND IGNORE EXISTING KEY with APTPL while there is space: stored.
    let (c, p) = pr_out(0x06, 0, 0, 0xA1, true);
    let r = command_past_ua(&mut ini, 0, &c, &p, 0);
    assert_eq!(r.status, 0, "{:02x?}", r.sense);
    let before = pr_state(&mut ini);
    assert_eq!(before, (vec![0xA1], None));

    let filler = fill(&fs.path);
    // RESERVE WRITE EXCLUSIVE: the blob cannot be committed, so no GOOD.
    let (c, p) = pr_out(0x01, 0x01, 0xA1, 0, false);
    let r = command_past_ua(&mut ini, 0, &c, &p, 0);
    assert_eq!(r.status, 2, "RESERVE acknowledged on a full store");
    assert_eq!(kcq(&r.sense), (0x04, 0x44, 0x00));
    // A new registration the same way.
    let (c, p) = pr_out(0x00, 0, 0xA1, 0xB2, true);
    let r = command_past_ua(&mut ini, 0, &c, &p, 0);
    assert_eq!((r.status, kcq(&r.sense)), (2, (0x04, 0x44, 0x00)));
    assert_eq!(
        pr_state(&mut ini),
        before,
        "state changed by a refused command"
    );
    let _ = ini.logout();
    assert!(d.alive());

    // Nothing of the refused commands reached the store.
    std::fs::remove_file(&filler).unwrap();
    d.kill9();
    let mut d = Daemon::start(&o);
    let mut ini = d.login(INITIATOR, DEFAULT_IQN);
    assert_eq!(pr_state(&mut ini), before);

    // Space is back: the same RESERVE succeeds and survives a kill -9.
    let (c, p) = pr_out(0x01, 0x01, 0xA1, 0, false);
    let r = command_past_ua(&mut ini, 0, &c, &p, 0);
    assert_eq!(r.status, 0, "{:02x?}", r.sense);
    let _ = ini.logout();
    d.kill9();
    let d = Daemon::start(&o);
    let mut ini = d.login(INITIATOR, DEFAULT_IQN);
    assert_eq!(pr_state(&mut ini), (vec![0xA1], Some((0xA1, 0x01))));
    let _ = ini.logout();
}
