//! CHAP bound to the InitiatorName and login names validated, against the real daemon (issue
//! 10 items 5 and 9, BEHAVIOUR §13): initiator A's secret does not log anyone in as B (under
//! either CHAP_N), B with B's secret does and sees its LUN, and a malformed InitiatorName or
//! TargetName is refused with login status 0x0200.
//! Ports: API 47127, portal 47027.

mod reliability_common;

use reliability_common::*;
use serde_json::json;
use vds_testkit::initiator::Error;
use vds_testkit::{Initiator, LoginOptions};

const A: &str = INITIATOR;
const B: &str = "iqn.2026-01.test.reliability:host2";
const SECRET_A: &str = "secret-of-a-01"; // 14 bytes
const SECRET_B: &str = "secret-of-b-01";

/// The login status of a refused login, `None` for a login that succeeded.
fn login_status(r: Result<Initiator, Error>) -> Option<u16> {
    match r {
        Ok(i) => {
            let _ = i.logout();
            None
        }
        Err(Error::Login(s)) => Some(s.0),
        Err(e) => panic!("login failed without a login status: {e}"),
    }
}

fn options(initiator: &str, chap_n: &str, secret: &str) -> LoginOptions {
    let mut o = LoginOptions::normal(initiator, DEFAULT_IQN);
    o.chap = Some((chap_n.into(), secret.as_bytes().to_vec()));
    o
}

#[test]
fn a_chap_secret_logs_in_only_its_initiator_and_names_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let o = Opts::new(&dir.path().join("data"), 47127, 47027);
    let d = Daemon::start(&o);
    let t = d.default_target();
    let tid = t["id"].as_str().unwrap();
    for (name, secret) in [(A, SECRET_A), (B, SECRET_B)] {
        d.ok(
            "PUT",
            &format!("/v1/targets/{tid}/shared-secret"),
            Some(json!({"secret": secret, "initiator_name": name})),
        );
    }
    let lun = d.create_lun(json!({
        "size_bytes": 1 << 20, "friendly_name": "b-only", "unmasking_list": B,
        "targets": [t["id"]],
    }));
    let n = lun["lun_numbers"][tid].as_u64().unwrap();

    // A's secret, claiming to be B: refused whether CHAP_N names A or B, with the same status
    // a wrong secret gets.
    let connect = |o: &LoginOptions| login_status(Initiator::connect(d.portal, o));
    assert_eq!(connect(&options(B, A, SECRET_A)), Some(0x0201));
    assert_eq!(connect(&options(B, B, SECRET_A)), Some(0x0201));
    assert_eq!(connect(&options(B, B, "secret-of-b-02")), Some(0x0201));
    // B's secret under A's name does not make A either.
    assert_eq!(connect(&options(A, A, SECRET_B)), Some(0x0201));
    // Each with its own secret and name logs in.
    assert_eq!(connect(&options(A, A, SECRET_A)), None);
    let mut b = Initiator::connect(d.portal, &options(B, B, SECRET_B)).expect("B logs in");
    let r = command_past_ua(&mut b, n, &[0x00, 0, 0, 0, 0, 0], &[], 0);
    assert_eq!(r.status, 0, "B is served its LUN: {:02x?}", r.sense);
    b.logout().unwrap();

    // Malformed names: refused before authentication with 0x0200 (initiator error).
    let too_long = format!("iqn.2026-01.test:{}", "x".repeat(207));
    assert_eq!(too_long.len(), 224);
    for bad in [
        "iqn.2026-01.test:a b",
        "iqn.2026-01.test:a_b",
        "host2",
        "eui.0200",
        too_long.as_str(),
    ] {
        assert_eq!(connect(&options(bad, bad, SECRET_B)), Some(0x0200), "{bad}");
    }
    let mut bad_target = options(B, B, SECRET_B);
    bad_target.target_name = Some("iqn.2026-11.local.vds:default/../x".into());
    assert_eq!(connect(&bad_target), Some(0x0200));
    // The daemon keeps serving.
    assert_eq!(connect(&options(B, B, SECRET_B)), None);
}
