//! BEHAVIOUR.md §4 end to end: `POST /v1/portals/{id}/status` against a running `vdsd`,
//! observed on the wire: the listener closing (connects refused), the Async Message asking for
//! logout with the logout timeout, connections dropped at the deadline, SendTargets, rebinding,
//! bind failures (FAILED and 0x80072740), a multipath initiator's second path, and the
//! `portal_status_settable = false` provider. Slots 20..=39.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const MODIFY: u64 = 125;

/// Runs `POST /v1/portals/{id}/status` on a thread: (HTTP status, body, how long it took).
fn set_status_async(
    d: &Daemon,
    id: &str,
    status: &str,
) -> std::thread::JoinHandle<(u16, Value, Duration)> {
    let (api, id, status, bearer) = (d.api, id.to_string(), status.to_string(), d.bearer());
    std::thread::spawn(move || {
        let t = Instant::now();
        let r = ureq::agent()
            .post(&format!("http://{api}/v1/portals/{id}/status"))
            .set("Authorization", &bearer)
            .send_json(json!({ "status": status }));
        let (s, v) = match r {
            Ok(r) => (r.status(), r.into_json().unwrap_or(Value::Null)),
            Err(ureq::Error::Status(s, r)) => (s, r.into_json().unwrap_or(Value::Null)),
            Err(e) => panic!("portal SetStatus: {e}"),
        };
        (s, v, t.elapsed())
    })
}

fn listed(d: &Daemon, via: usize) -> Vec<String> {
    let mut v = send_targets(d.portals[via], &initiator_name(d.slot));
    v.sort();
    v
}

fn entry(addr: std::net::SocketAddr) -> String {
    format!("{addr},1")
}

/// Both portals as SendTargets lists them (sorted like [`listed`]).
fn both(a: std::net::SocketAddr, b: std::net::SocketAddr) -> Vec<String> {
    let mut v = vec![entry(a), entry(b)];
    v.sort();
    v
}

/// Rows "any | 0 or outside the enum → E_INVALIDARG", "any | NOT_READY or FAILED →
/// VDS_E_NOT_SUPPORTED" and "X | X → S_OK, nothing": the listener keeps serving, no event.
#[test]
fn portal_invalid_reported_and_same_values_change_nothing() {
    let d = Daemon::start(20, Opts::default());
    let p = d.portal_id(d.portals[0]);
    let ev = d.events();
    for bad in [
        json!(0),
        json!(3),
        json!(99),
        json!("unknown"),
        json!("VDS_IPS_UNKNOWN"),
    ] {
        let r = d.set_portal_status(&p, bad);
        assert_error(&r, 400, "0x80070057", "E_INVALIDARG");
    }
    for reported in [
        json!(2),
        json!("not_ready"),
        json!(5),
        json!("failed"),
        json!("VDS_IPS_FAILED"),
    ] {
        let r = d.set_portal_status(&p, reported);
        assert_error(&r, 422, "0x80042400", "VDS_E_NOT_SUPPORTED");
    }
    for same in [json!("online"), json!(1), json!("VDS_IPS_ONLINE")] {
        let (s, v) = d.set_portal_status(&p, same);
        assert_eq!((s, &v["status"]), (200, &json!("online")), "{v}");
    }
    assert_eq!(ev.drain().len(), 0, "no event");
    let mut ini = d.login(0, 1);
    assert_good(&tur(&mut ini, 0), "the portal still serves");
    assert_eq!(listed(&d, 0), vec![entry(d.portals[0])]);
}

/// Row "ONLINE → OFFLINE" with the default logout timeout: the listener closes at once, the
/// logged-in initiator gets AsyncEvent 1 with Parameter3 = 2, the status reads NOT_READY while
/// draining, the connection that stays is dropped at the deadline, the other portal's
/// connections are untouched, SendTargets stops listing it, one event. Then row "OFFLINE →
/// ONLINE": the listener is bound again and listed again.
#[test]
fn portal_offline_requests_logout_drops_at_deadline_and_online_rebinds() {
    let d = Daemon::start(
        21,
        Opts {
            two_portals: true,
            ..Opts::default()
        },
    );
    let (p0, p1) = (d.portals[0], d.portals[1]);
    let id = d.portal_id(p0);
    let mut a = d.login(0, 1);
    let mut b = d.login(1, 2);
    assert_good(&tur(&mut a, 0), "a");
    assert_good(&tur(&mut b, 0), "b");
    assert_eq!(listed(&d, 1), both(p0, p1));
    let ev = d.events();
    let t0 = Instant::now();
    let call = set_status_async(&d, &id, "offline");
    a.set_timeout(Duration::from_secs(5)).expect("timeout");
    let msg = wait_async(&mut a).expect("an Async Message before the connection ends");
    assert_eq!(
        msg.event, 1,
        "AsyncEvent 1: target requests logout: {msg:?}"
    );
    assert_eq!(
        msg.param3, 2,
        "Parameter3 = the logout timeout (default 2 s): {msg:?}"
    );
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "the request was prompt"
    );
    // While the connection drains: nothing listens, the portal reports NOT_READY and is not
    // listed by SendTargets on the other portal.
    assert!(refused(p0), "the listener closed at once");
    assert_eq!(d.get(&format!("/v1/portals/{id}"))["status"], "not_ready");
    assert_eq!(listed(&d, 1), vec![entry(p1)]);
    // The initiator ignores the request: dropped at the deadline.
    a.set_timeout(Duration::from_secs(6)).expect("timeout");
    assert!(
        a.closed_by_target(),
        "the connection is dropped at the deadline"
    );
    let dropped = t0.elapsed();
    let (s, v, took) = call.join().expect("call");
    assert_eq!((s, &v["status"]), (200, &json!("offline")), "{v}");
    assert!(
        dropped >= Duration::from_millis(1800) && took >= Duration::from_millis(1800),
        "dropped after {dropped:?}, answered after {took:?}: before the 2 s deadline"
    );
    assert!(took < Duration::from_secs(6), "answered after {took:?}");
    assert_eq!(count(&ev.drain(), &id, MODIFY), 1, "one MODIFY");
    assert_eq!(d.get(&format!("/v1/portals/{id}"))["status"], "offline");
    assert!(refused(p0), "still not listening");
    assert_eq!(listed(&d, 1), vec![entry(p1)]);
    assert_good(
        &tur(&mut b, 0),
        "the other portal's connection is untouched",
    );
    // libiscsi's discovery sees the same: only the ONLINE portal, and nothing at the other.
    {
        let o = iscsi_tool("iscsi-ls", &["-s".into(), format!("iscsi://{p1}/")]);
        let t = text(&o);
        assert!(
            o.status.success()
                && t.contains(&format!("Portal:{p1},1"))
                && !t.contains(&format!("Portal:{p0},1")),
            "iscsi-ls through the ONLINE portal: {t}"
        );
    }
    {
        let o = iscsi_tool("iscsi-ls", &["-s".into(), format!("iscsi://{p0}/")]);
        assert!(
            !o.status.success(),
            "iscsi-ls through the OFFLINE portal: {}",
            text(&o)
        );
    }
    assert_eq!(
        d.get(&format!("/v1/targets/{}/initiators", d.target())),
        json!([initiator_name(d.slot)]),
        "the session through the other portal is still connected"
    );

    let (s, v) = d.set_portal_status(&id, json!("online"));
    assert_eq!((s, &v["status"]), (200, &json!("online")), "{v}");
    assert_eq!(count(&ev.drain(), &id, MODIFY), 1, "one MODIFY");
    assert!(!refused(p0), "listening again");
    let mut c = d.login(0, 3);
    assert_good(&read(&mut c, 0, 0, 1), "I/O through the rebound portal");
    assert_eq!(listed(&d, 0), both(p0, p1));
}

/// An initiator that obeys the Async Message (logs out) ends the wait early: the call does not
/// sit out the whole timeout when nothing is left.
#[test]
fn portal_offline_finishes_early_when_initiators_log_out() {
    let d = Daemon::start(
        22,
        Opts {
            config: Some("logout_timeout_secs = 5\n".into()),
            ..Opts::default()
        },
    );
    let p0 = d.portals[0];
    let id = d.portal_id(p0);
    let mut a = d.login(0, 1);
    assert_good(&tur(&mut a, 0), "a");
    let call = set_status_async(&d, &id, "offline");
    a.set_timeout(Duration::from_secs(5)).expect("timeout");
    let msg = wait_async(&mut a).expect("Async Message");
    assert_eq!(
        (msg.event, msg.param3),
        (1, 5),
        "configured timeout: {msg:?}"
    );
    assert_eq!(a.logout().expect("logout response"), 0, "logout accepted");
    let (s, v, took) = call.join().expect("call");
    assert_eq!((s, &v["status"]), (200, &json!("offline")), "{v}");
    assert!(
        took < Duration::from_secs(3),
        "the call waited {took:?} although the only connection logged out"
    );
    assert!(refused(p0));
}

/// Rows "OFFLINE or FAILED → ONLINE" with a bind failure (the address held by another socket:
/// FAILED and 0x80072740) and "FAILED → OFFLINE"; then ONLINE succeeds once the address is free.
#[test]
fn portal_bind_failure_is_failed_with_the_converted_os_error() {
    let d = Daemon::start(
        23,
        Opts {
            two_portals: true,
            ..Opts::default()
        },
    );
    let p1 = d.portals[1];
    let id = d.portal_id(p1);
    assert_eq!(d.set_portal_status(&id, json!("offline")).0, 200);
    let holder = std::net::TcpListener::bind(p1).expect("hold the portal's address");
    let ev = d.events();
    let r = d.set_portal_status(&id, json!("online"));
    assert_eq!(r.0, 500, "{}", r.1);
    assert_eq!(
        r.1["error"]["hresult"], "0x80072740",
        "WSAEADDRINUSE: {}",
        r.1
    );
    assert_eq!(d.get(&format!("/v1/portals/{id}"))["status"], "failed");
    assert_eq!(
        count(&ev.drain(), &id, MODIFY),
        1,
        "OFFLINE → FAILED is one change"
    );
    // Reported-only values are still refused on a FAILED portal.
    assert_error(
        &d.set_portal_status(&id, json!("failed")),
        422,
        "0x80042400",
        "VDS_E_NOT_SUPPORTED",
    );
    // FAILED → ONLINE with the address still held: FAILED again, same error, no new change.
    let r = d.set_portal_status(&id, json!("online"));
    assert_eq!(r.1["error"]["hresult"], "0x80072740", "{}", r.1);
    assert_eq!(
        count(&ev.drain(), &id, MODIFY),
        0,
        "FAILED → FAILED is no change"
    );
    // FAILED → OFFLINE: nothing is listening; status OFFLINE.
    let (s, v) = d.set_portal_status(&id, json!("offline"));
    assert_eq!((s, &v["status"]), (200, &json!("offline")), "{v}");
    assert_eq!(count(&ev.drain(), &id, MODIFY), 1);
    // The other portal never stopped serving.
    let mut a = d.login(0, 1);
    assert_good(&tur(&mut a, 0), "portal 0");
    drop(holder);
    let (s, v) = d.set_portal_status(&id, json!("online"));
    assert_eq!((s, &v["status"]), (200, &json!("online")), "{v}");
    let mut b = d.login(1, 2);
    assert_good(&tur(&mut b, 0), "portal 1 after rebinding");
}

/// §4 "an initiator with a second path (another portal of the same portal group) keeps its data
/// flowing through it": continuous verified I/O on path B never fails while path A's portal goes
/// OFFLINE; what path A wrote is read intact through B.
#[test]
fn portal_second_path_keeps_multipath_io_flowing() {
    let d = Daemon::start(
        24,
        Opts {
            two_portals: true,
            config: Some("logout_timeout_secs = 1\n".into()),
            ..Opts::default()
        },
    );
    let id = d.portal_id(d.portals[0]);
    // One host, two sessions (one per portal), as dm-multipath over open-iscsi does.
    let mut a = d.login(0, 1);
    let mut b = d.login(1, 2);
    let from_a = pattern(0xA, 32 * 512);
    assert_good(&write_fua(&mut a, 0, 4096, &from_a), "write through path A");
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU32::new(0));
    let (stop2, ok2) = (stop.clone(), ok.clone());
    let io = std::thread::spawn(move || {
        let mut i: u32 = 0;
        while !stop2.load(Ordering::SeqCst) {
            let data = pattern(i as u8, 8 * 512);
            let lba = 8192 + (i % 64) * 8;
            let w = write_fua(&mut b, 0, lba, &data);
            if w.status != GOOD {
                return Err(format!("write {i} on path B: {:?}", sense_of(&w)));
            }
            let r = read(&mut b, 0, lba, 8);
            if r.status != GOOD || r.data != data {
                return Err(format!("read {i} on path B: {:?}", sense_of(&r)));
            }
            ok2.fetch_add(1, Ordering::SeqCst);
            i += 1;
        }
        Ok(b)
    });
    std::thread::sleep(Duration::from_millis(200));
    let before = ok.load(Ordering::SeqCst);
    let call = set_status_async(&d, &id, "offline");
    a.set_timeout(Duration::from_secs(5)).expect("timeout");
    let msg = wait_async(&mut a).expect("Async Message on path A");
    assert_eq!((msg.event, msg.param3), (1, 1));
    assert!(a.closed_by_target(), "path A is dropped");
    let (s, _, _) = call.join().expect("call");
    assert_eq!(s, 200);
    let during = ok.load(Ordering::SeqCst) - before;
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    let mut b = io.join().expect("io thread").expect("path B never failed");
    assert!(during > 0, "I/O flowed on path B while path A went away");
    assert_eq!(
        read(&mut b, 0, 4096, 32).data,
        from_a,
        "path A's data via path B"
    );
}

/// §4: with `portal_status_settable = false` every request answers VDS_E_NOT_SUPPORTED (the
/// documented "Not supported." provider), whatever the value; nothing changes.
#[test]
fn portal_status_not_settable_answers_not_supported_to_everything() {
    let d = Daemon::start(
        25,
        Opts {
            config: Some("portal_status_settable = false\n".into()),
            ..Opts::default()
        },
    );
    let id = d.portal_id(d.portals[0]);
    let ev = d.events();
    for v in [
        json!("offline"),
        json!("online"),
        json!(0),
        json!(99),
        json!("failed"),
        json!("unknown"),
    ] {
        let r = d.set_portal_status(&id, v.clone());
        assert_error(&r, 422, "0x80042400", "VDS_E_NOT_SUPPORTED");
    }
    // Text that is no status at all is a malformed request (§2 step 4 comes first): the API
    // cannot even turn it into a VDS_ISCSI_PORTAL_STATUS for the provider to refuse.
    let r = d.set_portal_status(&id, json!("bogus"));
    assert_error(&r, 400, "0x80070057", "E_INVALIDARG");
    assert_eq!(ev.drain().len(), 0);
    assert_eq!(d.get(&format!("/v1/portals/{id}"))["status"], "online");
    let mut a = d.login(0, 1);
    assert_good(&tur(&mut a, 0), "still serving");
}

/// §4 "commands already accepted complete or are aborted with their tasks, and no write that was
/// acknowledged is lost": a slow write in flight when the portal goes OFFLINE (logout timeout
/// 1 s, write 1.5 s) either is acknowledged and then readable through the other portal, or its
/// connection ends without an acknowledgement.
#[test]
fn portal_offline_loses_no_acknowledged_write() {
    let d = Daemon::start(
        26,
        Opts {
            two_portals: true,
            fault_injection: true,
            config: Some("logout_timeout_secs = 1\n".into()),
            ..Default::default()
        },
    );
    let lun = d.default_lun();
    let id = d.portal_id(d.portals[0]);
    d.ok(
        "PUT",
        &format!("/v1/luns/{lun}/faults"),
        json!({"filters": [{"delay": {"write_ms": 1500}}]}),
        200,
    );
    let mut a = d.login(0, 1);
    let data = pattern(0x5e, 4 * 512);
    let wdata = data.clone();
    let writer = std::thread::spawn(move || {
        let r = a.command(0, &cdb::write10_fua(700, 4), &wdata, 0);
        (r.map(|r| r.status), a.async_events.clone())
    });
    std::thread::sleep(Duration::from_millis(200));
    let (s, _, took) = set_status_async(&d, &id, "offline").join().expect("call");
    assert_eq!(s, 200);
    assert!(
        took >= Duration::from_millis(900),
        "waited for the deadline: {took:?}"
    );
    let (res, asyncs) = writer.join().expect("writer");
    assert!(
        asyncs.iter().any(|m| m.event == 1 && m.param3 == 1),
        "the logout request arrived while the write ran: {asyncs:?}"
    );
    d.ok(
        "PUT",
        &format!("/v1/luns/{lun}/faults"),
        json!({"filters": []}),
        200,
    );
    let mut b = d.login(1, 2);
    let back = read(&mut b, 0, 700, 4);
    assert_good(&back, "read through the other portal");
    eprintln!("the write in flight ended with {res:?}");
    match res {
        Ok(GOOD) => assert_eq!(back.data, data, "an acknowledged write was lost"),
        Ok(other) => panic!("the accepted write answered status 0x{other:02x}"),
        // Not acknowledged: whatever is there is acceptable; the connection is gone.
        Err(_) => {}
    }
}

/// §7 on a portal: while a transition to OFFLINE drains, other mutating calls on the portal
/// answer VDS_E_ANOTHER_CALL_IN_PROGRESS at once; the first call completes with success.
#[test]
fn portal_calls_during_a_drain_are_busy() {
    let d = Daemon::start(
        27,
        Opts {
            two_portals: true,
            ..Opts::default()
        },
    );
    let id = d.portal_id(d.portals[0]);
    let mut a = d.login(0, 1);
    assert_good(&tur(&mut a, 0), "a");
    let ev = d.events();
    let call = set_status_async(&d, &id, "offline");
    a.set_timeout(Duration::from_secs(5)).expect("timeout");
    wait_async(&mut a).expect("Async Message");
    let t = Instant::now();
    for s in ["online", "offline"] {
        let r = d.set_portal_status(&id, json!(s));
        assert_error(&r, 409, "0x80042404", "VDS_E_ANOTHER_CALL_IN_PROGRESS");
    }
    let r = d.call("DELETE", &format!("/v1/portals/{id}"), None);
    assert_error(&r, 409, "0x80042404", "VDS_E_ANOTHER_CALL_IN_PROGRESS");
    assert!(t.elapsed() < Duration::from_secs(1), "answered at once");
    let (s, v, _) = call.join().expect("call");
    assert_eq!((s, &v["status"]), (200, &json!("offline")), "{v}");
    assert_eq!(count(&ev.drain(), &id, MODIFY), 1);
}

/// §4 "at start every portal stored ONLINE is bound, and one that cannot be is FAILED while the
/// daemon keeps running and serving the others"; ONLINE later rebinds it.
#[test]
fn portal_that_cannot_bind_at_start_is_failed_and_the_rest_is_served() {
    let mut d = Daemon::start(
        28,
        Opts {
            two_portals: true,
            ..Opts::default()
        },
    );
    let id = d.portal_id(d.portals[1]);
    d.kill9();
    let holder = std::net::TcpListener::bind(d.portals[1]).expect("hold the address");
    d.restart();
    assert_eq!(d.get(&format!("/v1/portals/{id}"))["status"], "failed");
    let mut a = d.login(0, 1);
    assert_good(&read(&mut a, 0, 0, 1), "the other portal serves");
    assert_eq!(listed(&d, 0), vec![entry(d.portals[0])]);
    drop(holder);
    let (s, v) = d.set_portal_status(&id, json!("online"));
    assert_eq!((s, &v["status"]), (200, &json!("online")), "{v}");
    let mut b = d.login(1, 2);
    assert_good(&tur(&mut b, 0), "rebound");
}

/// §4 "the listener closes at once": as soon as OFFLINE is answered a new TCP connect is
/// refused, and ONLINE right after binds again (the address is free), time after time. (The
/// listener used to close asynchronously, a moment after the answer.)
#[test]
fn portal_offline_refuses_connections_as_soon_as_it_answers() {
    let d = Daemon::start(
        29,
        Opts {
            two_portals: true,
            ..Opts::default()
        },
    );
    let p1 = d.portals[1];
    let id = d.portal_id(p1);
    for i in 0..40 {
        assert_eq!(d.set_portal_status(&id, json!("offline")).0, 200);
        assert!(
            refused(p1),
            "round {i}: a connect succeeded after OFFLINE was answered"
        );
        let (s, v) = d.set_portal_status(&id, json!("online"));
        assert_eq!(s, 200, "round {i}: ONLINE right after OFFLINE: {v}");
        assert!(!refused(p1), "round {i}: not listening after ONLINE");
    }
}
