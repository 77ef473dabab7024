//! The live-session snapshot (`DataPlane::sessions_snapshot`, BEHAVIOUR.md §14 "Sessions"):
//! one entry per logged-in normal session with its ISID, TSIH, connection addresses and
//! negotiated keys, and counters that rise by exactly what the initiator sent and read, on the
//! inline path (READ/WRITE on a memory store) and the blocking pool (INQUIRY) alike.
//!
//! Address: 127.0.33.12:43060.

mod common;

use std::time::{Duration, Instant};

use common::{Harness, TARGET};
use vds_dataplane::{ChapConfig, DataPlane, SessionSnapshot};
use vds_target::Limits;
use vds_testkit::{Initiator, LoginOptions};

const INITIATOR: &str = "iqn.2026-11.local.test:sessions";

fn login(h: &Harness, isid: u8, digests: bool) -> Initiator {
    let mut o = LoginOptions::normal(INITIATOR, TARGET);
    o.isid = [0x80, 0, 0, 0, 0x60, isid];
    o.header_digest = digests;
    o.data_digest = digests;
    o.timeout = Duration::from_secs(10);
    Initiator::connect(h.addr(0), &o).expect("login")
}

fn of(h: &Harness, tsih: u16) -> Option<SessionSnapshot> {
    h.dp.sessions_snapshot()
        .into_iter()
        .find(|s| s.tsih == tsih)
}

fn write10(lba: u32, blocks: u16) -> Vec<u8> {
    let mut c = vec![0x2A, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[7..9].copy_from_slice(&blocks.to_be_bytes());
    c
}

fn read10(lba: u32, blocks: u16) -> Vec<u8> {
    let mut c = write10(lba, blocks);
    c[0] = 0x28;
    c
}

#[test]
fn snapshot_shows_sessions_keys_and_exact_counters() {
    let h = Harness::start(
        &["127.0.33.12:43060"],
        ChapConfig::default(),
        Limits::default(),
    );
    let mut a = login(&h, 1, false);
    let mut b = login(&h, 2, true);
    let all = h.dp.sessions_snapshot();
    assert_eq!(all.len(), 2, "{all:#?}");
    let (sa, sb) = (of(&h, a.tsih).unwrap(), of(&h, b.tsih).unwrap());
    for (s, isid, ini) in [(&sa, 1u8, &a), (&sb, 2, &b)] {
        assert_eq!(s.target, h.target_id);
        assert_eq!(s.target_iqn, TARGET);
        assert_eq!(s.initiator, INITIATOR);
        assert_eq!(s.isid, [0x80, 0, 0, 0, 0x60, isid]);
        assert_eq!(s.portal_group_tag, 1);
        assert_eq!(s.target_port_group, 1);
        assert_eq!(s.connections.len(), 1);
        let c = &s.connections[0];
        assert_eq!(c.portal, h.portals[0].id);
        assert_eq!(c.local, h.addr(0));
        assert_eq!(c.peer, ini.local_addr().unwrap());
        assert!(!c.chap);
        assert_eq!(c.keys.error_recovery_level, 0);
        assert_eq!(c.keys.initiator_max_recv_data_segment_length, ini.max_xmit);
        assert_eq!(c.keys.first_burst_length, ini.first_burst);
        assert_eq!(c.keys.immediate_data, ini.immediate_data);
        assert_eq!(c.keys.initial_r2t, ini.initial_r2t);
        assert_eq!(s.counters, Default::default());
        assert!(s.login_time.elapsed().unwrap() < Duration::from_secs(60));
    }
    assert!(!sa.connections[0].keys.header_digest && !sa.connections[0].keys.data_digest);
    assert!(sb.connections[0].keys.header_digest && sb.connections[0].keys.data_digest);

    // Session a: 3 writes of 4 blocks, one of 512 blocks (R2Ts beyond the first burst), 2
    // reads of 8 blocks, an INQUIRY of 36 bytes (blocking pool) and one READ past the end
    // (CHECK CONDITION, no data).
    let data = vec![0x5Au8; 2048];
    for lba in 0..3 {
        let r = a.command(0, &write10(lba * 4, 4), &data, 0).unwrap();
        assert_eq!(r.status, 0);
    }
    let big = vec![0xA5u8; 512 * 512];
    assert_eq!(a.command(0, &write10(64, 512), &big, 0).unwrap().status, 0);
    for _ in 0..2 {
        let r = a.command(0, &read10(0, 8), &[], 4096).unwrap();
        assert_eq!((r.status, r.data.len()), (0, 4096));
    }
    let r = a
        .command(0, &[0x12, 0, 0, 0, 36, 0], &[], 36)
        .expect("INQUIRY");
    assert_eq!((r.status, r.data.len()), (0, 36));
    let r = a.command(0, &read10(u32::MAX - 1, 1), &[], 512).unwrap();
    assert_eq!(r.status, 2, "READ past the end is CHECK CONDITION");
    // Session b: one write and one read, digests on.
    assert_eq!(
        b.command(1, &write10(0, 1), &[7u8; 512], 0).unwrap().status,
        0
    );
    assert_eq!(b.command(1, &read10(0, 2), &[], 1024).unwrap().status, 0);

    let ca = of(&h, a.tsih).unwrap().counters;
    assert_eq!(ca.commands, 3 + 1 + 2 + 1 + 1);
    assert_eq!(ca.bytes_written, 3 * 2048 + 512 * 512);
    assert_eq!(ca.bytes_read, 2 * 4096 + 36);
    assert_eq!(ca.errors, 1);
    let cb = of(&h, b.tsih).unwrap().counters;
    assert_eq!(
        (cb.commands, cb.bytes_written, cb.bytes_read, cb.errors),
        (2, 512, 1024, 0)
    );

    // A logged-out session leaves the snapshot; the other stays, counters intact.
    let tsih_b = b.tsih;
    b.logout().expect("logout");
    let deadline = Instant::now() + Duration::from_secs(10);
    while of(&h, tsih_b).is_some() {
        assert!(Instant::now() < deadline, "session {tsih_b} still listed");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(of(&h, a.tsih).unwrap().counters, ca);
    assert_eq!(h.dp.sessions_snapshot().len(), 1);
}

/// A CHAP session says it used CHAP and nothing more: neither the secret nor the name it
/// authenticated with is in the snapshot.
#[test]
fn a_chap_session_shows_no_secret() {
    let secret = b"sessions-sekrit1".to_vec();
    let chap = ChapConfig {
        default_secret: Some(secret.clone()),
        ..ChapConfig::default()
    };
    let h = Harness::start(&["127.0.33.13:43061"], chap, Limits::default());
    let mut o = LoginOptions::normal(INITIATOR, TARGET);
    o.chap = Some(("chap-user-61".into(), secret.clone()));
    o.timeout = Duration::from_secs(10);
    let ini = Initiator::connect(h.addr(0), &o).expect("CHAP login");
    let s = of(&h, ini.tsih).expect("listed");
    assert!(s.connections[0].chap);
    let shown = format!("{s:?} {s:#?}");
    assert!(!shown.contains("sekrit"), "{shown}");
    assert!(!shown.contains(&format!("{secret:?}")), "{shown}");
    assert!(!shown.contains("chap-user-61"), "{shown}");
}
