//! BEHAVIOUR.md §5 (and the failure rows of §3) end to end: backing-store errors injected with
//! fault filters (`vdsd --enable-fault-injection`, `PUT /v1/luns/{id}/faults`) fail the command
//! with MEDIUM ERROR, make the LUN FAILED with health FAILED, fence it with 02/04/03, refuse
//! SetStatus with VDS_E_OBJECT_STATUS_FAILED; Refresh brings a healthy one back OFFLINE; Recover
//! of a simple LUN is VDS_E_INVALID_OPERATION. Slots 40..=54.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const MODIFY: u64 = 110;

fn set_faults(d: &Daemon, lun: &str, filters: serde_json::Value) {
    d.ok(
        "PUT",
        &format!("/v1/luns/{lun}/faults"),
        json!({ "filters": filters }),
        200,
    );
}

/// The LUN is FAILED the moment an initiator has been told MEDIUM ERROR: no answer of the API
/// lags the wire (the provider records the LU's own report before answering).
fn assert_failed_now(d: &Daemon, lun: &str) {
    let v = d.lun(lun);
    assert_eq!(
        (&v["status"], &v["health"]),
        (&json!("failed"), &json!("failed")),
        "right after the MEDIUM ERROR: {v}"
    );
}

/// §5 row 1 (read) and row 2: READ gets 03/11/00, the LUN becomes FAILED (health FAILED, one
/// MODIFY), every nexus then gets 02/04/03, SetStatus answers VDS_E_OBJECT_STATUS_FAILED;
/// Refresh while the store still fails keeps it FAILED; once it answers, Refresh makes it
/// OFFLINE + HEALTHY (never ONLINE), and the operator brings it ONLINE.
#[test]
fn read_error_fails_the_lun_and_refresh_brings_it_back_offline() {
    let d = Daemon::start(
        40,
        Opts {
            fault_injection: true,
            two_portals: true,
            ..Opts::default()
        },
    );
    let lun = d.default_lun();
    let mut a = d.login(0, 1);
    let mut b = d.login(1, 2);
    let data = pattern(3, 8 * 512);
    assert_good(&write_fua(&mut a, 0, 64, &data), "write before the fault");
    assert_good(&tur(&mut b, 0), "TUR b");
    set_faults(&d, &lun, json!([{"error": {"ops": ["read"], "after": 0}}]));
    let ev = d.events();
    assert_sense(
        &read(&mut a, 0, 64, 8),
        (3, 0x11, 0),
        "READ with a failing store",
    );
    assert_failed_now(&d, &lun);
    for (ini, who) in [(&mut a, "a"), (&mut b, "b")] {
        assert_sense(&tur(ini, 0), (2, 4, 3), &format!("TUR {who}"));
        assert_sense(&read(ini, 0, 0, 1), (2, 4, 3), &format!("READ {who}"));
        assert_good(&inquiry(ini, 0), "INQUIRY on a FAILED LUN");
        assert_eq!(report_luns(ini), vec![0], "still listed");
    }
    for s in ["online", "offline", "not_ready"] {
        let r = d.set_lun_status(&lun, json!(s));
        assert_error(&r, 409, "0x80042431", "VDS_E_OBJECT_STATUS_FAILED");
    }
    // The check order (§2): a bad value or a report-only one is judged before the FAILED state.
    assert_error(
        &d.set_lun_status(&lun, json!(0)),
        400,
        "0x80070057",
        "E_INVALIDARG",
    );
    assert_error(
        &d.set_lun_status(&lun, json!("failed")),
        422,
        "0x80042400",
        "VDS_E_NOT_SUPPORTED",
    );
    assert_eq!(
        count(&ev.drain(), &lun, MODIFY),
        1,
        "one MODIFY for the failure"
    );

    // Refresh while reads still fail: the LUN stays FAILED.
    d.ok("POST", "/v1/provider/refresh", json!({}), 200);
    let v = d.lun(&lun);
    assert_eq!(
        (&v["status"], &v["health"]),
        (&json!("failed"), &json!("failed"))
    );
    assert_eq!(count(&ev.drain(), &lun, MODIFY), 0);

    // The store answers again: Refresh → OFFLINE, HEALTHY.
    set_faults(&d, &lun, json!([]));
    assert_eq!(count(&ev.drain(), &lun, MODIFY), 1, "the filter change");
    d.ok("POST", "/v1/provider/refresh", json!({}), 200);
    let v = d.lun(&lun);
    assert_eq!(
        (&v["status"], &v["health"]),
        (&json!("offline"), &json!("healthy")),
        "{v}"
    );
    assert_eq!(
        count(&ev.drain(), &lun, MODIFY),
        1,
        "one MODIFY for the re-probe"
    );
    assert_sense(&tur(&mut a, 0), (2, 4, 0x12), "OFFLINE after Refresh");
    assert_eq!(d.set_lun_status(&lun, json!("online")).0, 200);
    for ini in [&mut a, &mut b] {
        assert_sense(&tur(ini, 0), (6, 0x28, 0), "UA after ONLINE");
    }
    assert_eq!(read(&mut b, 0, 64, 8).data, data, "data intact");
}

/// §5 row 1 (write): after two good writes the third gets 03/0C/00 and the LUN is FAILED.
#[test]
fn write_error_is_medium_error_and_fails_the_lun() {
    let d = Daemon::start(
        41,
        Opts {
            fault_injection: true,
            ..Opts::default()
        },
    );
    let lun = d.default_lun();
    let mut a = d.login(0, 1);
    set_faults(&d, &lun, json!([{"error": {"ops": ["write"], "after": 2}}]));
    let blk = pattern(9, 512);
    assert_good(&write_fua(&mut a, 0, 1, &blk), "write 1");
    assert_good(&write_fua(&mut a, 0, 2, &blk), "write 2");
    assert_sense(&write_fua(&mut a, 0, 3, &blk), (3, 0x0c, 0), "write 3");
    // SetStatus right after the MEDIUM ERROR already refuses (§2 step 7).
    assert_error(
        &d.set_lun_status(&lun, json!("not_ready")),
        409,
        "0x80042431",
        "VDS_E_OBJECT_STATUS_FAILED",
    );
    assert_failed_now(&d, &lun);
    assert_sense(&read(&mut a, 0, 1, 1), (2, 4, 3), "READ after the failure");
    assert_error(
        &d.set_lun_status(&lun, json!("offline")),
        409,
        "0x80042431",
        "VDS_E_OBJECT_STATUS_FAILED",
    );
}

/// §3 "If the flush or the reopen fails, the LUN becomes FAILED (health FAILED) and the call
/// answers VDS_E_IO_ERROR": a flush error while going OFFLINE.
#[test]
fn flush_error_while_going_offline_answers_io_error() {
    let d = Daemon::start(
        42,
        Opts {
            fault_injection: true,
            ..Opts::default()
        },
    );
    let lun = d.default_lun();
    let mut a = d.login(0, 1);
    assert_good(&write_fua(&mut a, 0, 0, &pattern(1, 512)), "write");
    set_faults(&d, &lun, json!([{"error": {"ops": ["flush"], "after": 0}}]));
    let ev = d.events();
    let r = d.set_lun_status(&lun, json!("offline"));
    assert_error(&r, 500, "0x8004242B", "VDS_E_IO_ERROR");
    let v = d.lun(&lun);
    assert_eq!(
        (&v["status"], &v["health"]),
        (&json!("failed"), &json!("failed")),
        "{v}"
    );
    assert_eq!(count(&ev.drain(), &lun, MODIFY), 1, "one MODIFY");
    assert_sense(&tur(&mut a, 0), (2, 4, 3), "TUR on the FAILED LUN");
}

/// §3 row "OFFLINE → ONLINE: the backing store is reopened and checked": a store whose reads
/// fail cannot come ONLINE; the LUN is FAILED and the call answers VDS_E_IO_ERROR.
#[test]
fn probe_error_on_the_way_online_answers_io_error() {
    let d = Daemon::start(
        43,
        Opts {
            fault_injection: true,
            ..Opts::default()
        },
    );
    let lun = d.default_lun();
    let mut a = d.login(0, 1);
    assert_eq!(d.set_lun_status(&lun, json!("offline")).0, 200);
    set_faults(&d, &lun, json!([{"error": {"ops": ["read"], "after": 0}}]));
    let r = d.set_lun_status(&lun, json!("online"));
    assert_error(&r, 500, "0x8004242B", "VDS_E_IO_ERROR");
    assert_eq!(d.lun(&lun)["status"], "failed");
    assert_sense(&tur(&mut a, 0), (2, 4, 3), "TUR");
}

/// §5 row 3: Recover on a LUN that is not fault tolerant answers VDS_E_INVALID_OPERATION; and
/// fault filters are refused unless the daemon runs with --enable-fault-injection.
#[test]
fn recover_of_a_simple_lun_and_faults_without_the_flag_are_refused() {
    let d = Daemon::start(44, Opts::default());
    let lun = d.default_lun();
    let r = d.call("POST", &format!("/v1/luns/{lun}/recover?wait=true"), None);
    assert_error(&r, 409, "0x80042415", "VDS_E_INVALID_OPERATION");
    let r = d.call(
        "PUT",
        &format!("/v1/luns/{lun}/faults"),
        Some(&json!({"filters": [{"error": {"ops": ["read"], "after": 0}}]})),
    );
    assert_error(&r, 422, "0x80042400", "VDS_E_NOT_SUPPORTED");
    let mut a = d.login(0, 1);
    assert_good(&read(&mut a, 0, 0, 1), "no filter was installed");
    std::thread::sleep(Duration::from_millis(10));
    assert_eq!(d.lun(&lun)["status"], "online");
}
