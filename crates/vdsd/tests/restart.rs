//! Restart tests (issue 2, BEHAVIOUR §3/§4 "the status is persistent", §8, §10): `kill -9` of
//! a running `vdsd`, then a restart on the same data dir restores every object, status, secret
//! and tombstone, as the API and an initiator see them; a backing file missing at start makes
//! only that LUN FAILED; SIGTERM asks initiators to log out and exits 0. Slots 55..=69.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use vds_testkit::Initiator;

const SECRET: &str = "s3cret-h5-ok"; // 12 bytes
const MUTUAL: &str = "mutual-h5-secr"; // 14 bytes

/// Everything the API can show about the array, keyed for comparison.
fn snapshot(d: &Daemon) -> Value {
    let sub = d.subsystem();
    let targets = d.get(&format!("/v1/subsystems/{sub}/targets"));
    let mut groups = Vec::new();
    for t in targets.as_array().expect("targets") {
        for g in t["portal_groups"].as_array().expect("groups") {
            groups.push(d.get(&format!("/v1/portal-groups/{}", g.as_str().expect("id"))));
        }
    }
    json!({
        "provider": d.get("/v1/provider"),
        "subsystems": d.get("/v1/subsystems"),
        "controllers": d.get(&format!("/v1/subsystems/{sub}/controllers")),
        "drives": d.get(&format!("/v1/subsystems/{sub}/drives")),
        "luns": d.get("/v1/luns"),
        "targets": targets,
        "portal_groups": groups,
        "portals": d.get(&format!("/v1/subsystems/{sub}/portals")),
    })
}

fn chap_login(d: &Daemon, secret: Option<&str>, mutual: Option<&str>) -> Result<Initiator, String> {
    let name = initiator_name(d.slot);
    let mut o = login_opts(&name, 7);
    o.chap = secret.map(|s| (name.clone(), s.as_bytes().to_vec()));
    o.mutual_secret = mutual.map(|s| s.as_bytes().to_vec());
    Initiator::connect(d.portals[0], &o).map_err(|e| e.to_string())
}

#[test]
fn kill9_then_restart_restores_objects_statuses_secrets_and_tombstones() {
    let mut d = Daemon::start(
        55,
        Opts {
            two_portals: true,
            ..Opts::default()
        },
    );
    let target = d.target();
    let sub = d.subsystem();
    let default = d.default_lun();
    // Data acknowledged with FUA and with SYNCHRONIZE CACHE before the crash.
    let mut a = d.login(0, 1);
    let fua = pattern(0x11, 16 * 512);
    assert_good(&write_fua(&mut a, 0, 10, &fua), "FUA write");
    let synced = pattern(0x22, 8 * 512);
    assert_good(
        &a.command(0, &cdb::write10(300, 8), &synced, 0)
            .expect("write"),
        "write",
    );
    assert_good(
        &a.command(0, &cdb::sync_cache(), &[], 0).expect("sync"),
        "SYNCHRONIZE CACHE",
    );
    drop(a);

    // Objects and statuses of every kind.
    let kept = d.create_lun("kept", 16 << 20);
    let kept_id = kept["id"].as_str().expect("id").to_string();
    let kept_number = kept["lun_numbers"][&target].as_u64().expect("number");
    assert_eq!(d.set_lun_status(&kept_id, json!("offline")).0, 200);
    let nr = d.create_lun("notready", 16 << 20);
    let nr_id = nr["id"].as_str().expect("id").to_string();
    assert_eq!(d.set_lun_status(&nr_id, json!("not_ready")).0, 200);
    d.ok(
        "PATCH",
        &format!("/v1/luns/{nr_id}"),
        json!({"unmasking_list": "iqn.2026-11.local.test:someone-else"}),
        200,
    );
    let gone = d.create_lun("gone", 16 << 20);
    let gone_id = gone["id"].as_str().expect("id").to_string();
    let (s, _) = d.call("DELETE", &format!("/v1/luns/{gone_id}"), None);
    assert!(s == 200 || s == 204, "delete LUN: {s}");
    let t2 = d.ok(
        "POST",
        &format!("/v1/subsystems/{sub}/targets?wait=true"),
        json!({"iscsi_name": "iqn.2026-11.local.vds:second", "friendly_name": "second"}),
        201,
    );
    let t2_id = t2["id"].as_str().expect("id").to_string();
    let (s, v) = d.call("DELETE", &format!("/v1/targets/{t2_id}?wait=true"), None);
    assert!(s == 200 || s == 204, "delete target: {s} {v}");
    let p1 = d.portal_id(d.portals[1]);
    assert_eq!(d.set_portal_status(&p1, json!("offline")).0, 200);
    d.ok(
        "PATCH",
        &format!("/v1/targets/{target}"),
        json!({"friendly_name": "renamed-default"}),
        200,
    );
    d.ok(
        "PUT",
        &format!("/v1/targets/{target}/shared-secret"),
        json!({ "secret": SECRET }),
        200,
    );
    d.ok(
        "PUT",
        &format!(
            "/v1/targets/{target}/initiator-secrets/{}",
            initiator_name(d.slot)
        ),
        json!({ "secret": MUTUAL }),
        200,
    );
    let before = snapshot(&d);
    assert!(
        !before.to_string().contains(SECRET) && !before.to_string().contains(MUTUAL),
        "secrets are never returned"
    );

    d.kill9();
    assert!(refused(d.portals[0]), "the daemon is gone");
    d.restart();

    let after = snapshot(&d);
    assert_eq!(after, before, "every object and property survives kill -9");
    // Tombstones.
    assert_error(
        &d.call("GET", &format!("/v1/luns/{gone_id}"), None),
        410,
        "0x8004240B",
        "VDS_E_OBJECT_DELETED",
    );
    assert_error(
        &d.call("GET", &format!("/v1/targets/{t2_id}"), None),
        410,
        "0x8004240B",
        "VDS_E_OBJECT_DELETED",
    );
    assert_error(
        &d.set_lun_status(&gone_id, json!("online")),
        410,
        "0x8004240B",
        "VDS_E_OBJECT_DELETED",
    );
    // The portal stored OFFLINE is not listening and not listed.
    assert!(refused(d.portals[1]), "OFFLINE portal bound after restart");
    assert_eq!(
        send_targets(d.portals[0], &initiator_name(d.slot)),
        vec![format!("{},1", d.portals[0])]
    );
    // Secrets are enforced: no CHAP and a wrong secret get 0x0201; the right one works, and the
    // target proves the remembered mutual secret.
    for (secret, what) in [(None, "no CHAP"), (Some("wrong-secret-1"), "wrong secret")] {
        let e = chap_login(&d, secret, None)
            .err()
            .unwrap_or_else(|| panic!("{what} logged in"));
        assert!(e.contains("0x0201"), "{what}: {e}");
    }
    let mut a = chap_login(&d, Some(SECRET), Some(MUTUAL)).expect("CHAP login with the secret");
    let _ = tur(&mut a, 0);
    assert_good(&tur(&mut a, 0), "LUN 0 online");
    assert_eq!(read(&mut a, 0, 10, 16).data, fua, "FUA data after kill -9");
    assert_eq!(
        read(&mut a, 0, 300, 8).data,
        synced,
        "synced data after kill -9"
    );
    // Statuses on the wire: OFFLINE stays OFFLINE; the NOT_READY LUN is masked from us.
    let _ = tur(&mut a, kept_number);
    assert_sense(
        &tur(&mut a, kept_number),
        (2, 4, 0x12),
        "kept LUN is OFFLINE",
    );
    assert_eq!(report_luns(&mut a), vec![0, kept_number]);
    assert_eq!(d.lun(&default)["status"], "online");
    // And they can still be changed.
    assert_eq!(d.set_lun_status(&kept_id, json!("online")).0, 200);
    assert_sense(&tur(&mut a, kept_number), (6, 0x28, 0), "UA");
    assert_eq!(d.set_portal_status(&p1, json!("online")).0, 200);
    assert!(!refused(d.portals[1]));
}

/// A second crash right after a change: the change was durable when the API answered.
#[test]
fn acknowledged_changes_survive_an_immediate_kill9() {
    let mut d = Daemon::start(56, Opts::default());
    let lun = d.default_lun();
    for (status, sense) in [("offline", 0x12u8), ("not_ready", 1)] {
        assert_eq!(d.set_lun_status(&lun, json!(status)).0, 200);
        d.kill9();
        d.restart();
        assert_eq!(d.lun(&lun)["status"], status);
        let mut a = d.login(0, 1);
        assert_sense(&tur(&mut a, 0), (2, 4, sense), status);
    }
    let p = d.portal_id(d.portals[0]);
    assert_eq!(d.set_portal_status(&p, json!("offline")).0, 200);
    d.kill9();
    d.restart();
    assert_eq!(d.get(&format!("/v1/portals/{p}"))["status"], "offline");
    assert!(refused(d.portals[0]));
    assert_eq!(d.set_portal_status(&p, json!("online")).0, 200);
    d.kill9();
    d.restart();
    assert_eq!(d.set_lun_status(&lun, json!("online")).0, 200);
    let mut a = d.login(0, 1);
    assert_good(&tur(&mut a, 0), "online after all that");
}

/// INTERFACE "It never exits because one backing store is missing": that LUN is FAILED (02/04/03
/// on the wire), the rest is served; when the file is back, Refresh makes it OFFLINE, HEALTHY.
#[test]
fn missing_backing_file_at_start_fails_only_that_lun() {
    let mut d = Daemon::start(57, Opts::default());
    let lost = d.create_lun("lost", 16 << 20);
    let id = lost["id"].as_str().expect("id").to_string();
    let number = lost["lun_numbers"][&d.target()].as_u64().expect("number");
    let path = lost["backing"]["path"].as_str().expect("path").to_string();
    d.kill9();
    let aside = format!("{path}.aside");
    std::fs::rename(&path, &aside).expect("move the backing file away");
    d.restart();
    let v = d.lun(&id);
    assert_eq!(
        (&v["status"], &v["health"]),
        (&json!("failed"), &json!("failed")),
        "{v}"
    );
    let mut a = d.login(0, 1);
    assert_good(&read(&mut a, 0, 0, 1), "the default LUN is served");
    assert_eq!(
        report_luns(&mut a),
        vec![0, number],
        "the FAILED LUN keeps its place"
    );
    assert_sense(&tur(&mut a, number), (2, 4, 3), "FAILED LUN");
    assert_error(
        &d.set_lun_status(&id, json!("online")),
        409,
        "0x80042431",
        "VDS_E_OBJECT_STATUS_FAILED",
    );
    std::fs::rename(&aside, &path).expect("put it back");
    d.ok("POST", "/v1/provider/refresh", json!({}), 200);
    let v = d.lun(&id);
    assert_eq!(
        (&v["status"], &v["health"]),
        (&json!("offline"), &json!("healthy")),
        "after Refresh: {v}"
    );
    // No command between Refresh and ONLINE: the host last saw the LUN FAILED.
    assert_eq!(d.set_lun_status(&id, json!("online")).0, 200);
    // The nexus that saw the LUN FAILED is told it is back (the LU behind it was rebuilt over
    // the found file; what the host was told must carry over).
    assert_sense(&tur(&mut a, number), (6, 0x28, 0), "back ONLINE");
    assert_good(&tur(&mut a, number), "ONLINE");
}

/// INTERFACE "SIGTERM/SIGINT: stop accepting, request logout from initiators, flush every LUN,
/// exit 0".
#[test]
fn sigterm_requests_logout_and_exits_zero() {
    let mut d = Daemon::start(
        58,
        Opts {
            config: Some("logout_timeout_secs = 1\n".into()),
            ..Opts::default()
        },
    );
    let mut a = d.login(0, 1);
    assert_good(&write_fua(&mut a, 0, 0, &pattern(4, 512)), "write");
    let api = d.api;
    let code = std::thread::scope(|s| {
        let h = s.spawn(|| d.terminate());
        a.set_timeout(Duration::from_secs(5)).expect("timeout");
        let msg = wait_async(&mut a).expect("Async Message at shutdown");
        assert_eq!((msg.event, msg.param3), (1, 1), "{msg:?}");
        h.join().expect("terminate")
    });
    assert_eq!(code, Some(0), "exit status");
    assert!(refused(api), "the API is gone");
    d.restart();
    let mut a = d.login(0, 1);
    assert_eq!(read(&mut a, 0, 0, 1).data, pattern(4, 512));
}

/// Fault filters exist only in a daemon run with --enable-fault-injection: filters left in the
/// store by such a run are dropped when vdsd starts without the flag (they would otherwise keep
/// failing I/O, and PUT faults, refused without the flag, could not remove them).
#[test]
fn fault_filters_do_not_survive_a_start_without_fault_injection() {
    let mut d = Daemon::start(
        59,
        Opts {
            fault_injection: true,
            ..Opts::default()
        },
    );
    let lun = d.default_lun();
    d.ok(
        "PUT",
        &format!("/v1/luns/{lun}/faults"),
        json!({"filters": [{"error": {"ops": ["write"], "after": 0}}]}),
        200,
    );
    d.kill9();
    d.opts.fault_injection = false;
    d.restart();
    assert_eq!(d.lun(&lun)["backing"]["filters"], json!([]));
    let mut a = d.login(0, 1);
    assert_good(
        &write_fua(&mut a, 0, 0, &pattern(6, 512)),
        "no fault injected",
    );
    assert_eq!(d.lun(&lun)["status"], "online");
    drop(a);
    d.kill9();
    d.opts.fault_injection = true;
    d.restart();
    assert_eq!(
        d.lun(&lun)["backing"]["filters"],
        json!([]),
        "dropped for good"
    );
}
