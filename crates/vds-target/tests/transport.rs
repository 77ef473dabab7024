//! The data path over real sockets with the in-repo initiator: portal reachability, discovery,
//! CHAP, limits, login timeout, session reinstatement, async logout on unbind, NOP, TMF and
//! malformed input.

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::{Harness, OTHER, TARGET};
use vds_dataplane::{ChapConfig, DataPlane};
use vds_iscsi::codes::{opcode, reject, tmf, tmf_response, LoginStatus};
use vds_iscsi::pdu::Header;
use vds_target::Limits;
use vds_testkit::initiator::{Error, Initiator, LoginOptions};

const INI: &str = "iqn.2026-11.test:initiator";

fn login_err(addr: std::net::SocketAddr, o: &LoginOptions) -> LoginStatus {
    match Initiator::connect(addr, o) {
        Err(Error::Login(st)) => st,
        Err(e) => panic!("expected a login status, got {e}"),
        Ok(_) => panic!("login unexpectedly succeeded"),
    }
}

#[test]
fn discovery_lists_only_targets_reachable_through_the_portal() {
    let h = Harness::start(
        &["127.0.33.1:43010", "127.0.33.1:43011"],
        ChapConfig::default(),
        Limits::default(),
    );
    let mut d = Initiator::connect(h.addr(0), &LoginOptions::discovery(INI)).unwrap();
    let list = d.send_targets("All").unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].0, TARGET);
    assert_eq!(
        list[0].1,
        vec![
            "127.0.33.1:43010,1".to_string(),
            "127.0.33.1:43011,1".to_string()
        ]
    );
    d.logout().unwrap();
    let mut d = Initiator::connect(h.addr(1), &LoginOptions::discovery(INI)).unwrap();
    let mut names: Vec<String> = d
        .send_targets("All")
        .unwrap()
        .into_iter()
        .map(|t| t.0)
        .collect();
    names.sort();
    assert_eq!(names, vec![OTHER.to_string(), TARGET.to_string()]);
    // A malformed SendTargets value is answered with Reject.
    let keys = d.text(&[("SendTargets".into(), "Alle".into())]).unwrap();
    assert_eq!(keys, vec![("SendTargets".into(), "Reject".into())]);
}

#[test]
fn login_reaches_only_targets_of_the_portal() {
    let h = Harness::start(
        &["127.0.33.1:43012", "127.0.33.1:43013"],
        ChapConfig::default(),
        Limits::default(),
    );
    assert_eq!(
        login_err(h.addr(0), &LoginOptions::normal(INI, OTHER)),
        LoginStatus::TARGET_NOT_FOUND
    );
    assert_eq!(
        login_err(
            h.addr(0),
            &LoginOptions::normal(INI, "iqn.2026-11.nowhere:x")
        ),
        LoginStatus::TARGET_NOT_FOUND
    );
    let s = Initiator::connect(h.addr(1), &LoginOptions::normal(INI, OTHER)).unwrap();
    assert!(s
        .login_keys
        .iter()
        .any(|(k, v)| k == "TargetPortalGroupTag" && v == "2"));
    assert_eq!(h.dp.initiators(h.target_id), Vec::<String>::new());
    let s2 = Initiator::connect(h.addr(0), &LoginOptions::normal(INI, TARGET)).unwrap();
    assert_eq!(h.dp.initiators(h.target_id), vec![INI.to_string()]);
    s.logout().unwrap();
    s2.logout().unwrap();
}

fn chap() -> ChapConfig {
    ChapConfig {
        default_secret: None,
        initiator_secrets: vec![(INI.into(), b"secret-one-12".to_vec())],
        mutual_secrets: vec![(INI.into(), b"target-proof-1".to_vec())],
    }
}

#[test]
fn chap_one_way_mutual_and_wrong_secret() {
    let h = Harness::start(&["127.0.33.1:43014"], chap(), Limits::default());
    let mut o = LoginOptions::normal(INI, TARGET);
    assert_eq!(
        login_err(h.addr(0), &o),
        LoginStatus::AUTHENTICATION_FAILURE
    );
    o.chap = Some((INI.into(), b"secret-one-12".to_vec()));
    for alg in ["5", "6", "7", "8"] {
        o.chap_algorithms = alg.into();
        Initiator::connect(h.addr(0), &o).unwrap().logout().unwrap();
    }
    o.mutual_secret = Some(b"target-proof-1".to_vec());
    Initiator::connect(h.addr(0), &o).unwrap().logout().unwrap();
    o.mutual_secret = None;
    o.chap = Some((INI.into(), b"secret-one-13".to_vec()));
    assert_eq!(
        login_err(h.addr(0), &o),
        LoginStatus::AUTHENTICATION_FAILURE
    );
    // The per-initiator secret authenticates only under the initiator's own name.
    o.chap = Some(("user2".into(), b"secret-one-12".to_vec()));
    assert_eq!(
        login_err(h.addr(0), &o),
        LoginStatus::AUTHENTICATION_FAILURE
    );
}

#[test]
fn half_done_login_is_dropped_after_the_timeout() {
    let limits = Limits {
        login_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let h = Harness::start(&["127.0.33.1:43015"], ChapConfig::default(), limits);
    let mut s = std::net::TcpStream::connect(h.addr(0)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let t0 = Instant::now();
    let mut b = [0u8; 1];
    let n = s.read(&mut b).unwrap_or(0);
    assert_eq!(n, 0);
    assert!(t0.elapsed() < Duration::from_secs(3));
}

#[test]
fn session_and_connection_limits_refuse_cleanly() {
    let limits = Limits {
        sessions_per_target: 1,
        connections_per_portal: 2,
        ..Limits::default()
    };
    let h = Harness::start(&["127.0.33.1:43016"], ChapConfig::default(), limits);
    let mut o = LoginOptions::normal(INI, TARGET);
    let a = Initiator::connect(h.addr(0), &o).unwrap();
    o.isid[5] = 2;
    assert_eq!(login_err(h.addr(0), &o), LoginStatus::OUT_OF_RESOURCES);
    // The refused connection goes away on its own.
    let t0 = Instant::now();
    while h.dp.connections(h.portals[0].id) > 1 && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _d = Initiator::connect(h.addr(0), &LoginOptions::discovery(INI)).unwrap();
    assert_eq!(
        login_err(h.addr(0), &LoginOptions::discovery(INI)),
        LoginStatus::SERVICE_UNAVAILABLE
    );
    a.logout().unwrap();
}

#[test]
fn reinstatement_replaces_the_old_session_and_unknown_tsih_is_refused() {
    let h = Harness::start(
        &["127.0.33.1:43017"],
        ChapConfig::default(),
        Limits::default(),
    );
    let o = LoginOptions::normal(INI, TARGET);
    let mut old = Initiator::connect(h.addr(0), &o).unwrap();
    let new = Initiator::connect(h.addr(0), &o).unwrap();
    assert_ne!(old.tsih, new.tsih);
    old.set_timeout(Duration::from_secs(5)).unwrap();
    assert!(old.closed_by_target(), "the old session's connection ends");
    assert_eq!(h.dp.sessions().len(), 1);
    let mut o2 = o.clone();
    o2.tsih = 0x7777;
    o2.isid[5] = 9;
    assert_eq!(
        login_err(h.addr(0), &o2),
        LoginStatus::SESSION_DOES_NOT_EXIST
    );
    new.logout().unwrap();
}

#[test]
fn unbind_requests_logout_then_drops_what_stays() {
    let h = Harness::start(
        &["127.0.33.1:43018"],
        ChapConfig::default(),
        Limits::default(),
    );
    let mut a = Initiator::connect(h.addr(0), &LoginOptions::normal(INI, TARGET)).unwrap();
    let dp = h.dp.clone();
    let pid = h.portals[0].id;
    let t0 = Instant::now();
    let j = std::thread::spawn(move || dp.unbind_portal(pid, Duration::from_secs(2)));
    // The async message arrives; this initiator ignores it and is dropped after 2 s.
    let p = a.recv().unwrap();
    let Header::AsyncMessage(m) = &p.header else {
        panic!("{p:?}")
    };
    assert_eq!((m.event, m.param3), (1, 2));
    j.join().unwrap();
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(10),
        "{took:?}"
    );
    assert!(a.closed_by_target());
    assert!(
        std::net::TcpStream::connect(h.addr(0)).is_err(),
        "listener closed"
    );

    // An initiator that logs out when asked lets unbind return at once.
    h.dp.bind_portal(pid, h.addr(0)).unwrap();
    let mut b = Initiator::connect(h.addr(0), &LoginOptions::normal(INI, TARGET)).unwrap();
    let dp = h.dp.clone();
    let t0 = Instant::now();
    let j = std::thread::spawn(move || dp.unbind_portal(pid, Duration::from_secs(10)));
    let p = b.recv().unwrap();
    assert_eq!(Initiator::opcode_of(&p), opcode::ASYNC_MESSAGE);
    b.logout().unwrap();
    j.join().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[test]
fn nop_tmf_and_malformed_pdus() {
    let h = Harness::start(
        &["127.0.33.1:43019"],
        ChapConfig::default(),
        Limits::default(),
    );
    let mut o = LoginOptions::normal(INI, TARGET);
    o.header_digest = true;
    o.data_digest = true;
    let mut s = Initiator::connect(h.addr(0), &o).unwrap();
    assert_eq!(s.nop(b"ping-data").unwrap(), b"ping-data");
    assert_eq!(
        s.task_mgmt(tmf::ABORT_TASK, 0, 0x1234, s.cmd_sn().wrapping_sub(100))
            .unwrap(),
        tmf_response::TASK_DOES_NOT_EXIST
    );
    assert_eq!(
        s.task_mgmt(tmf::LOGICAL_UNIT_RESET, 0, 0, 0).unwrap(),
        tmf_response::FUNCTION_COMPLETE
    );
    assert_eq!(
        s.task_mgmt(tmf::LOGICAL_UNIT_RESET, 77, 0, 0).unwrap(),
        tmf_response::LUN_DOES_NOT_EXIST
    );
    assert_eq!(
        s.task_mgmt(tmf::CLEAR_ACA, 0, 0, 0).unwrap(),
        tmf_response::FUNCTION_NOT_SUPPORTED
    );
    // A vendor opcode is rejected as not supported, with digests on.
    let mut bhs = [0u8; 48];
    bhs[0] = 0x1c;
    let mut raw = bhs.to_vec();
    raw.extend_from_slice(&vds_iscsi::pdu::crc32c(&bhs).to_le_bytes());
    s.send_bytes(&raw).unwrap();
    let p = s.recv().unwrap();
    let Header::Reject(r) = &p.header else {
        panic!("{p:?}")
    };
    assert_eq!(r.reason, reject::COMMAND_NOT_SUPPORTED);
    assert_eq!(p.data[0], 0x1c);
    // The session still works.
    assert_eq!(s.nop(b"x").unwrap(), b"x");
    // A header digest error ends the connection (ERL 0).
    let mut bad = raw.clone();
    bad[50] ^= 0xff;
    s.send_bytes(&bad).unwrap();
    s.set_timeout(Duration::from_secs(5)).unwrap();
    assert!(s.closed_by_target());
}

#[test]
fn publishing_a_view_without_the_target_ends_its_sessions() {
    let h = Harness::start(
        &["127.0.33.1:43020"],
        ChapConfig::default(),
        Limits::default(),
    );
    let mut s = Initiator::connect(h.addr(0), &LoginOptions::normal(INI, TARGET)).unwrap();
    assert_eq!(s.nop(b"a").unwrap(), b"a");
    let mut v = (*h.dp.view()).clone();
    v.targets.clear();
    h.dp.publish(std::sync::Arc::new(v));
    s.set_timeout(Duration::from_secs(5)).unwrap();
    assert!(s.closed_by_target());
    assert_eq!(
        login_err(h.addr(0), &LoginOptions::normal(INI, TARGET)),
        LoginStatus::TARGET_NOT_FOUND
    );
}
