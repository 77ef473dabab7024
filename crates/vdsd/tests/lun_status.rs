//! BEHAVIOUR.md §3 end to end: `POST /v1/luns/{id}/status` against a running `vdsd`, observed
//! by the in-repo initiator (and libiscsi's tools where installed): the sense in each status,
//! the unit attentions on every nexus, draining and flushing, busy answers while a slow flush
//! runs, deletion and resize as a host sees them, and one event per change.
//! Slots 0..=19.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const MODIFY: u64 = 110;
const DEPART: u64 = 109;

/// Row "any | 0 or a number outside the enum → E_INVALIDARG" and "any | FAILED →
/// VDS_E_NOT_SUPPORTED": the exact HRESULTs, nothing changes (status, no event, I/O still runs).
#[test]
fn lun_invalid_and_report_only_statuses_change_nothing() {
    let d = Daemon::start(0, Opts::default());
    let lun = d.default_lun();
    let mut ini = d.login(0, 1);
    assert_good(&tur(&mut ini, 0), "TUR before");
    let ev = d.events();
    for bad in [
        json!(0),
        json!(3),
        json!(99),
        json!(-1),
        json!("unknown"),
        json!("VDS_LS_UNKNOWN"),
        json!("bogus"),
    ] {
        let r = d.set_lun_status(&lun, bad.clone());
        assert_error(&r, 400, "0x80070057", "E_INVALIDARG");
        assert!(
            r.1["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("status")),
            "the message names the field for {bad}: {}",
            r.1
        );
    }
    for failed in [json!(5), json!("failed"), json!("VDS_LS_FAILED")] {
        let r = d.set_lun_status(&lun, failed);
        assert_error(&r, 422, "0x80042400", "VDS_E_NOT_SUPPORTED");
    }
    // A body without the field, or of the wrong type, is malformed too.
    let r = d.call(
        "POST",
        &format!("/v1/luns/{lun}/status"),
        Some(&json!({"state": "offline"})),
    );
    assert_error(&r, 400, "0x80070057", "E_INVALIDARG");
    let r = d.call(
        "POST",
        &format!("/v1/luns/{lun}/status"),
        Some(&json!({"status": [4]})),
    );
    assert_error(&r, 400, "0x80070057", "E_INVALIDARG");
    assert_eq!(d.lun(&lun)["status"], "online");
    assert_eq!(ev.drain().len(), 0, "no event for refused calls");
    assert_good(&tur(&mut ini, 0), "TUR after");
    assert_good(&read(&mut ini, 0, 0, 8), "READ after");
}

/// Row "X | X → S_OK, nothing changes, no event" (ONLINE→ONLINE, OFFLINE→OFFLINE), with the
/// value in each accepted spelling.
#[test]
fn lun_same_status_is_ok_without_event_or_unit_attention() {
    let d = Daemon::start(1, Opts::default());
    let lun = d.default_lun();
    let mut ini = d.login(0, 1);
    assert_good(&tur(&mut ini, 0), "first TUR");
    let ev = d.events();
    for same in [json!("online"), json!(1), json!("VDS_LS_ONLINE")] {
        let (s, v) = d.set_lun_status(&lun, same);
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["status"], "online");
    }
    assert_eq!(
        count(&ev.drain(), &lun, MODIFY),
        0,
        "online→online raises nothing"
    );
    // No unit attention either: the nexus sees plain GOOD.
    assert_good(&tur(&mut ini, 0), "TUR after online→online");

    let (s, _) = d.set_lun_status(&lun, json!("offline"));
    assert_eq!(s, 200);
    assert_eq!(count(&ev.drain(), &lun, MODIFY), 1);
    for same in [json!("offline"), json!(4), json!("VDS_LS_OFFLINE")] {
        let (s, v) = d.set_lun_status(&lun, same);
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["status"], "offline");
    }
    assert_eq!(
        count(&ev.drain(), &lun, MODIFY),
        0,
        "offline→offline raises nothing"
    );
}

/// Row "ONLINE → OFFLINE": admission stops, INQUIRY / REPORT LUNS / REQUEST SENSE still run,
/// media access gets 02/04/12 on every nexus; libiscsi's tools see the same; one event.
#[test]
fn lun_offline_fences_media_access_on_every_nexus() {
    let d = Daemon::start(
        2,
        Opts {
            two_portals: true,
            ..Opts::default()
        },
    );
    let lun = d.default_lun();
    let mut a = d.login(0, 1);
    let mut b = d.login(1, 2);
    assert_good(&tur(&mut a, 0), "TUR a");
    assert_good(&tur(&mut b, 0), "TUR b");
    let ev = d.events();
    let (s, v) = d.set_lun_status(&lun, json!("offline"));
    assert_eq!((s, &v["status"]), (200, &json!("offline")), "{v}");
    let evs = ev.drain();
    assert_eq!(count(&evs, &lun, MODIFY), 1, "exactly one MODIFY: {evs:?}");
    assert_eq!(evs.len(), 1, "and nothing else: {evs:?}");
    // INTERFACE.md's event object.
    let e = &evs[0];
    assert_eq!(
        (&e["object_type"], &e["event"]),
        (&json!("lun"), &json!("modify")),
        "{e}"
    );
    let time = e["time"].as_str().expect("time");
    assert!(
        time.len() >= 20 && time.as_bytes()[10] == b'T' && time.ends_with('Z'),
        "RFC 3339 time: {time}"
    );
    assert_eq!(d.lun(&lun)["status"], "offline");
    for (ini, who) in [(&mut a, "a"), (&mut b, "b")] {
        assert_sense(&tur(ini, 0), (2, 4, 0x12), &format!("TUR {who}"));
        assert_sense(&read(ini, 0, 0, 1), (2, 4, 0x12), &format!("READ {who}"));
        assert_sense(
            &write_fua(ini, 0, 0, &[0u8; 512]),
            (2, 4, 0x12),
            &format!("WRITE {who}"),
        );
        assert_sense(&capacity(ini, 0), (2, 4, 0x12), "READ CAPACITY");
        let inq = inquiry(ini, 0);
        assert_good(&inq, "INQUIRY while OFFLINE");
        assert_eq!(inq.data[0] & 0x1f, 0, "still a direct-access device");
        assert_eq!(report_luns(ini), vec![0], "REPORT LUNS still lists the LUN");
        let rs = ini
            .command(0, &cdb::request_sense(), &[], 252)
            .expect("REQUEST SENSE");
        assert_good(&rs, "REQUEST SENSE");
        let as_result = vds_testkit::ScsiResult {
            status: CHECK,
            sense: rs.data.clone(),
            ..rs.clone()
        };
        assert_eq!(
            sense_of(&as_result),
            Some((2, 4, 0x12)),
            "REQUEST SENSE data"
        );
    }
    // libiscsi's tools log in and probe with TEST UNIT READY: a real host stack is told the
    // LUN is offline (02/04/12) and gives up on the path at once.
    let url = format!("iscsi://{}/{TARGET}/0", d.portals[0]);
    for tool in ["iscsi-inq", "iscsi-readcapacity16"] {
        {
            let o = iscsi_tool(tool, std::slice::from_ref(&url));
            let t = text(&o);
            assert!(
                !o.status.success() && t.contains("NOT READY") && t.contains("0x0412"),
                "{tool} on an OFFLINE LUN: {t}"
            );
        }
    }
}

/// Row "OFFLINE ↔ NOT_READY": the sense changes (02/04/12 ↔ 02/04/01), one event each way.
#[test]
fn lun_offline_and_not_ready_switch_sense() {
    let d = Daemon::start(
        3,
        Opts {
            fault_injection: true,
            ..Opts::default()
        },
    );
    let lun = d.default_lun();
    let mut ini = d.login(0, 1);
    let ev = d.events();
    let (s, v) = d.set_lun_status(&lun, json!("not_ready"));
    assert_eq!((s, &v["status"]), (200, &json!("not_ready")), "{v}");
    assert_sense(&tur(&mut ini, 0), (2, 4, 1), "TUR NOT_READY");
    assert_sense(&read(&mut ini, 0, 0, 1), (2, 4, 1), "READ NOT_READY");
    assert_good(&inquiry(&mut ini, 0), "INQUIRY NOT_READY");
    let url = format!("iscsi://{}/{TARGET}/0", d.portals[0]);
    {
        let o = iscsi_tool("iscsi-inq", &[url]);
        let t = text(&o);
        assert!(
            !o.status.success() && t.contains("NOT READY") && t.contains("0x0401"),
            "iscsi-inq on a NOT_READY LUN: {t}"
        );
    }
    let (s, _) = d.set_lun_status(&lun, json!("VDS_LS_OFFLINE"));
    assert_eq!(s, 200);
    assert_sense(&tur(&mut ini, 0), (2, 4, 0x12), "TUR OFFLINE");
    let (s, _) = d.set_lun_status(&lun, json!(2));
    assert_eq!(s, 200);
    assert_sense(&tur(&mut ini, 0), (2, 4, 1), "TUR NOT_READY again");
    assert_eq!(count(&ev.drain(), &lun, MODIFY), 3, "one event per change");
    assert_eq!(d.lun(&lun)["status"], "not_ready");
    // "nothing to flush": with a 2 s flush delay installed, switching takes no flush.
    d.ok(
        "PUT",
        &format!("/v1/luns/{lun}/faults"),
        json!({"filters": [{"delay": {"flush_ms": 2000}}]}),
        200,
    );
    let t = Instant::now();
    assert_eq!(d.set_lun_status(&lun, json!("offline")).0, 200);
    assert_eq!(d.set_lun_status(&lun, json!("not_ready")).0, 200);
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "OFFLINE <-> NOT_READY flushed: {:?}",
        t.elapsed()
    );
}

/// Row "OFFLINE or NOT_READY → ONLINE": every nexus gets 06/28/00 on its first command, then
/// normal service; data written (FUA, and plain + SYNCHRONIZE CACHE) before OFFLINE reads back.
#[test]
fn lun_back_online_unit_attention_once_per_nexus_and_data_intact() {
    let d = Daemon::start(
        4,
        Opts {
            two_portals: true,
            ..Opts::default()
        },
    );
    let lun = d.default_lun();
    let mut a = d.login(0, 1);
    let mut b = d.login(1, 2);
    let mut c = d.login(0, 3);
    let p1 = pattern(1, 64 * 512);
    let p2 = pattern(2, 16 * 512);
    assert_good(&write_fua(&mut a, 0, 100, &p1), "WRITE FUA");
    let w = b
        .command(0, &cdb::write10(5000, 16), &p2, 0)
        .expect("WRITE");
    assert_good(&w, "WRITE");
    assert_good(
        &b.command(0, &cdb::sync_cache(), &[], 0).expect("SYNC"),
        "SYNCHRONIZE CACHE",
    );
    assert_good(&tur(&mut c, 0), "TUR c");

    for via in ["offline", "not_ready"] {
        let ev = d.events();
        assert_eq!(d.set_lun_status(&lun, json!(via)).0, 200);
        assert_sense(
            &tur(&mut a, 0),
            (2, 4, if via == "offline" { 0x12 } else { 1 }),
            via,
        );
        let (s, v) = d.set_lun_status(&lun, json!("online"));
        assert_eq!((s, &v["status"]), (200, &json!("online")), "{v}");
        assert_eq!(
            count(&ev.drain(), &lun, MODIFY),
            2,
            "{via} and back: two events"
        );
        // INQUIRY does not consume the unit attention.
        assert_good(&inquiry(&mut a, 0), "INQUIRY after ONLINE");
        for (ini, who) in [(&mut a, "a"), (&mut b, "b"), (&mut c, "c")] {
            assert_sense(
                &tur(ini, 0),
                (6, 0x28, 0),
                &format!("first TUR {who} after {via}"),
            );
            assert_good(&tur(ini, 0), &format!("second TUR {who}"));
        }
        assert_eq!(
            read(&mut b, 0, 100, 64).data,
            p1,
            "FUA data via b after {via}"
        );
        assert_eq!(
            read(&mut a, 0, 5000, 16).data,
            p2,
            "synced data via a after {via}"
        );
    }
    // A fresh nexus after ONLINE has nothing pending.
    let mut e = d.login(1, 9);
    assert_good(&tur(&mut e, 0), "fresh nexus");
}

/// Row "ONLINE → OFFLINE": commands in flight complete (a slow write finishes GOOD before the
/// call returns), new ones are refused at once, the cache is flushed (a slow flush lengthens
/// the call), then the status is stored.
#[test]
fn lun_offline_drains_in_flight_commands_and_flushes() {
    let d = Daemon::start(
        5,
        Opts {
            fault_injection: true,
            ..Opts::default()
        },
    );
    let lun = d.default_lun();
    d.ok(
        "PUT",
        &format!("/v1/luns/{lun}/faults"),
        json!({"filters": [{"delay": {"read_ms": 0, "write_ms": 1500, "flush_ms": 800}}]}),
        200,
    );
    let mut a = d.login(0, 1);
    let mut b = d.login(0, 2);
    assert_good(&tur(&mut b, 0), "TUR b");
    let data = pattern(7, 8 * 512);
    let wdata = data.clone();
    let writer = std::thread::spawn(move || {
        let r = a
            .command(0, &cdb::write10(2048, 8), &wdata, 0)
            .expect("slow WRITE");
        (r, Instant::now(), a)
    });
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    let (api, bearer) = (d.api, d.bearer());
    let lun2 = lun.clone();
    let setter = std::thread::spawn(move || {
        let agent = ureq::agent();
        let r = agent
            .post(&format!("http://{api}/v1/luns/{lun2}/status"))
            .set("Authorization", &bearer)
            .send_json(json!({"status": "offline"}));
        (r.map(|r| r.status()).unwrap_or(0), Instant::now())
    });
    // Admission stops at once: while the write drains, another nexus is refused.
    std::thread::sleep(Duration::from_millis(200));
    let during = tur(&mut b, 0);
    assert_sense(&during, (2, 4, 0x12), "TUR during the transition");
    let (w, w_done, mut a) = writer.join().expect("writer");
    assert_good(&w, "the write in flight completes");
    let (status, set_done) = setter.join().expect("setter");
    assert_eq!(status, 200);
    assert!(
        set_done >= w_done,
        "SetStatus answered before the in-flight write completed"
    );
    assert!(
        set_done - t0 >= Duration::from_millis(1000 + 800 - 300 - 100),
        "the call includes draining and flushing: took {:?}",
        set_done - t0
    );
    assert_eq!(d.lun(&lun)["status"], "offline");
    assert_sense(&tur(&mut a, 0), (2, 4, 0x12), "TUR a after");
    d.ok(
        "PUT",
        &format!("/v1/luns/{lun}/faults"),
        json!({"filters": []}),
        200,
    );
    assert_eq!(d.set_lun_status(&lun, json!("online")).0, 200);
    assert_sense(&tur(&mut a, 0), (6, 0x28, 0), "UA");
    assert_eq!(
        read(&mut a, 0, 2048, 8).data,
        data,
        "the drained write is there"
    );
}

/// §3 "While the call runs, other mutating calls on the LUN answer
/// VDS_E_ANOTHER_CALL_IN_PROGRESS" (issue 4): a slow flush (delay filter) holds the LUN; the
/// first call completes with success, exactly one event.
#[test]
fn lun_slow_flush_makes_concurrent_calls_busy() {
    let d = Daemon::start(
        6,
        Opts {
            fault_injection: true,
            ..Opts::default()
        },
    );
    let lun = d.default_lun();
    d.ok(
        "PUT",
        &format!("/v1/luns/{lun}/faults"),
        json!({"filters": [{"delay": {"flush_ms": 3000}}]}),
        200,
    );
    let ev = d.events();
    let (api, id, bearer) = (d.api, lun.clone(), d.bearer());
    let first = std::thread::spawn(move || {
        let t = Instant::now();
        let r = ureq::agent()
            .post(&format!("http://{api}/v1/luns/{id}/status"))
            .set("Authorization", &bearer)
            .send_json(json!({"status": "offline"}));
        let body: serde_json::Value = match r {
            Ok(r) => r.into_json().expect("json"),
            Err(e) => panic!("first SetStatus failed: {e}"),
        };
        (body, t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    for s in ["not_ready", "online", "offline"] {
        let r = d.set_lun_status(&lun, json!(s));
        assert_error(&r, 409, "0x80042404", "VDS_E_ANOTHER_CALL_IN_PROGRESS");
    }
    let r = d.call(
        "PATCH",
        &format!("/v1/luns/{lun}"),
        Some(&json!({"friendly_name": "renamed"})),
    );
    assert_error(&r, 409, "0x80042404", "VDS_E_ANOTHER_CALL_IN_PROGRESS");
    let r = d.call(
        "POST",
        &format!("/v1/luns/{lun}/extend?wait=true"),
        Some(&json!({"bytes": 1 << 20})),
    );
    assert_error(&r, 409, "0x80042404", "VDS_E_ANOTHER_CALL_IN_PROGRESS");
    let r = d.call("DELETE", &format!("/v1/luns/{lun}"), None);
    assert_error(&r, 409, "0x80042404", "VDS_E_ANOTHER_CALL_IN_PROGRESS");
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "busy answers are immediate, not queued: {:?}",
        t.elapsed()
    );
    // Pure reads never answer busy.
    assert_eq!(d.call("GET", &format!("/v1/luns/{lun}"), None).0, 200);
    let (body, took) = first.join().expect("first call");
    assert_eq!(body["status"], "offline", "{body}");
    assert!(
        took >= Duration::from_millis(2900),
        "the flush was slow: {took:?}"
    );
    let evs = ev.drain();
    assert_eq!(count(&evs, &lun, MODIFY), 1, "one event: {evs:?}");
    assert_eq!(d.lun(&lun)["friendly_name"], "default");
    // The slot is free again.
    assert_eq!(d.set_lun_status(&lun, json!("not_ready")).0, 200);
}

/// §3 "a deleted LUN disappears, the other LUNs of its targets raise 06/3F/0E on every nexus,
/// and commands to its old LUN number get 05/25/00"; DEPART once; its id answers 410.
#[test]
fn lun_delete_reports_luns_changed_and_old_number_is_gone() {
    let d = Daemon::start(
        7,
        Opts {
            two_portals: true,
            ..Opts::default()
        },
    );
    let default = d.default_lun();
    let extra = d.create_lun("extra", 16 << 20);
    let extra_id = extra["id"].as_str().expect("id").to_string();
    let target = d.target();
    let number = extra["lun_numbers"][&target].as_u64().expect("LUN number");
    assert_ne!(number, 0);
    let mut a = d.login(0, 1);
    let mut b = d.login(1, 2);
    for ini in [&mut a, &mut b] {
        let mut l = report_luns(ini);
        l.sort();
        assert_eq!(l, vec![0, number]);
        // The REPORTED LUNS DATA HAS CHANGED of the creation, if any, is consumed here.
        let _ = tur(ini, 0);
        assert_good(&tur(ini, 0), "TUR 0");
        let _ = tur(ini, number);
        assert_good(&tur(ini, number), "TUR extra");
    }
    let ev = d.events();
    let (s, _) = d.call("DELETE", &format!("/v1/luns/{extra_id}"), None);
    assert!(s == 200 || s == 204, "DELETE answered {s}");
    let evs = ev.drain();
    assert_eq!(count(&evs, &extra_id, DEPART), 1, "one DEPART: {evs:?}");
    assert_eq!(
        count(&evs, &default, MODIFY),
        0,
        "the other LUN did not change"
    );
    for (ini, who) in [(&mut a, "a"), (&mut b, "b")] {
        assert_sense(&tur(ini, 0), (6, 0x3f, 0x0e), &format!("LUN 0 on {who}"));
        assert_good(&tur(ini, 0), &format!("LUN 0 then on {who}"));
        assert_sense(
            &tur(ini, number),
            (5, 0x25, 0),
            &format!("old number on {who}"),
        );
        assert_sense(&read(ini, number, 0, 1), (5, 0x25, 0), "READ old number");
        assert_eq!(report_luns(ini), vec![0], "REPORT LUNS on {who}");
    }
    let r = d.call("GET", &format!("/v1/luns/{extra_id}"), None);
    assert_error(&r, 410, "0x8004240B", "VDS_E_OBJECT_DELETED");
    let r = d.set_lun_status(&extra_id, json!("offline"));
    assert_error(&r, 410, "0x8004240B", "VDS_E_OBJECT_DELETED");
    let r = d.set_lun_status("00000000-0000-4000-8000-000000000001", json!("offline"));
    assert_error(&r, 404, "0x80042405", "VDS_E_OBJECT_NOT_FOUND");
}

/// §3 "A LUN whose size changes raises 06/2A/09 once per nexus"; READ CAPACITY shows the new
/// size (the in-repo initiator and iscsi-readcapacity16); one MODIFY per resize.
#[test]
fn lun_extend_and_shrink_raise_capacity_changed_once_per_nexus() {
    let d = Daemon::start(
        8,
        Opts {
            two_portals: true,
            ..Opts::default()
        },
    );
    let lun = d.create_lun("resized", 16 << 20);
    let id = lun["id"].as_str().expect("id").to_string();
    let number = lun["lun_numbers"][&d.target()].as_u64().expect("number");
    let mut a = d.login(0, 1);
    let mut b = d.login(1, 2);
    for ini in [&mut a, &mut b] {
        let _ = tur(ini, number);
        assert_eq!(capacity_bytes(&capacity(ini, number)), 16 << 20);
    }
    let ev = d.events();
    for (verb, want) in [("extend", 48u64 << 20), ("shrink", 24 << 20)] {
        let bytes = if verb == "extend" {
            32u64 << 20
        } else {
            24 << 20
        };
        let v = d.ok(
            "POST",
            &format!("/v1/luns/{id}/{verb}?wait=true"),
            json!({ "bytes": bytes }),
            200,
        );
        assert_eq!(v["size_bytes"], want, "{verb}: {v}");
        for (ini, who) in [(&mut a, "a"), (&mut b, "b")] {
            assert_sense(&tur(ini, number), (6, 0x2a, 9), &format!("{verb} on {who}"));
            assert_good(&tur(ini, number), &format!("once only on {who}"));
            assert_eq!(capacity_bytes(&capacity(ini, number)), want, "{verb} {who}");
        }
        let evs = ev.drain();
        assert_eq!(count(&evs, &id, MODIFY), 1, "{verb}: one MODIFY: {evs:?}");
        let url = format!("iscsi://{}/{TARGET}/{number}", d.portals[0]);
        {
            let o = iscsi_tool("iscsi-readcapacity16", &[url]);
            let t = text(&o);
            assert!(
                o.status.success() && t.contains(&format!("Total size:{want}\n")),
                "iscsi-readcapacity16 after {verb}: {t}"
            );
        }
    }
}

/// Row "OFFLINE or NOT_READY → ONLINE: the backing store is reopened and checked (size,
/// identity)": a backing file resized or replaced while the LUN was OFFLINE is caught
/// (VDS_E_PROVIDER_CACHE_CORRUPT, the LUN stays OFFLINE on the wire); after Reenumerate and
/// Refresh the LUN comes ONLINE with the re-read size, and every nexus is told: 06/2A/09 for
/// the capacity, 06/28/00 for the status.
#[test]
fn lun_online_checks_the_backing_store_size_and_identity() {
    let d = Daemon::start(9, Opts::default());
    let lun = d.create_lun("checked", 16 << 20);
    let id = lun["id"].as_str().expect("id").to_string();
    let n = lun["lun_numbers"][&d.target()].as_u64().expect("number");
    let path = lun["backing"]["path"].as_str().expect("path").to_string();
    let mut a = d.login(0, 1);
    let _ = tur(&mut a, n);
    let data = pattern(0x77, 4 * 512);
    assert_good(&write_fua(&mut a, n, 8, &data), "write");
    assert_eq!(d.set_lun_status(&id, json!("offline")).0, 200);

    // Resized behind the daemon's back.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open the backing file");
    f.set_len(32 << 20).expect("grow it");
    drop(f);
    let r = d.set_lun_status(&id, json!("online"));
    assert_error(&r, 503, "0x8004241F", "VDS_E_PROVIDER_CACHE_CORRUPT");
    assert_sense(&tur(&mut a, n), (2, 4, 0x12), "still OFFLINE");
    assert_good(&tur(&mut a, 0), "the other LUN keeps serving");
    d.ok("POST", "/v1/provider/reenumerate", json!({}), 200);
    d.ok("POST", "/v1/provider/refresh", json!({}), 200);
    assert_eq!(d.lun(&id)["size_bytes"], 32u64 << 20);
    assert_eq!(d.set_lun_status(&id, json!("online")).0, 200);
    let mut seen = vec![
        sense_of(&tur(&mut a, n)).expect("a unit attention"),
        sense_of(&tur(&mut a, n)).expect("a unit attention"),
    ];
    seen.sort();
    assert_eq!(seen, vec![(6, 0x28, 0), (6, 0x2a, 9)]);
    assert_good(&tur(&mut a, n), "then normal");
    assert_eq!(capacity_bytes(&capacity(&mut a, n)), 32 << 20);

    // Replaced by another file (same size, other inode) while OFFLINE.
    assert_eq!(d.set_lun_status(&id, json!("offline")).0, 200);
    let tmp = format!("{path}.new");
    std::fs::copy(&path, &tmp).expect("copy");
    std::fs::rename(&tmp, &path).expect("replace");
    let r = d.set_lun_status(&id, json!("online"));
    assert_error(&r, 503, "0x8004241F", "VDS_E_PROVIDER_CACHE_CORRUPT");
    d.ok("POST", "/v1/provider/reenumerate", json!({}), 200);
    d.ok("POST", "/v1/provider/refresh", json!({}), 200);
    // No command between Refresh and ONLINE: the host last saw the LUN OFFLINE.
    assert_eq!(d.lun(&id)["status"], "offline");
    assert_eq!(d.set_lun_status(&id, json!("online")).0, 200);
    assert_sense(
        &tur(&mut a, n),
        (6, 0x28, 0),
        "back ONLINE over the new file",
    );
    assert_good(&tur(&mut a, n), "then normal");
    assert_eq!(read(&mut a, n, 8, 4).data, data, "the copied data");
    let more = pattern(0x78, 512);
    assert_good(&write_fua(&mut a, n, 0, &more), "write to the new file");
    let on_disk = std::fs::read(&path).expect("read the file");
    assert_eq!(
        &on_disk[..512],
        &more[..],
        "writes go to the file now at the path"
    );
}
