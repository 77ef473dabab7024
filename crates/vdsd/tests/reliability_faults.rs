//! Faults (issue 6, BEHAVIOUR §5 and §6): a backing store that fails (error filter), fills up
//! (ENOSPC on an 8 MiB tmpfs) or vanishes (unlinked or truncated behind the daemon's back),
//! and a store on a full disk. Each time: the precise sense code or HRESULT, LUN FAILED where
//! §5 says so (and only there), the other LUNs unaffected, the daemon up, and the state
//! consistent afterwards (also across a restart).
//! Ports: API 47130-47139, portals 47030-47039. The tmpfs tests need root (to mount); without it
//! they fail, saying so (a check that cannot run must not count as a pass).

mod reliability_common;

use reliability_common::*;
use serde_json::{json, Value};
use vds_testkit::Initiator;

fn lun_of(d: &Daemon, id: &str) -> Value {
    d.ok("GET", &format!("/v1/luns/{id}"), None)
}

fn lun_number(d: &Daemon, lun: &Value) -> u64 {
    let t = d.default_target();
    lun["lun_numbers"][t["id"].as_str().unwrap()]
        .as_u64()
        .expect("LUN mapped to the default target")
}

/// Write and read back one block on `n`: the LUN works.
fn works(ini: &mut Initiator, n: u64, lba: u64, fill: u8) {
    let r = command_past_ua(ini, n, &write16(lba, 1, true), &[fill; 512], 0);
    assert_eq!(r.status, 0, "write to LUN {n}: {:02x?}", r.sense);
    let r = command_past_ua(ini, n, &read16(lba, 1), &[], 512);
    assert_eq!(r.status, 0, "read from LUN {n}: {:02x?}", r.sense);
    assert_eq!(r.data, vec![fill; 512]);
}

#[test]
fn failing_backing_store_fails_only_its_lun_with_precise_sense() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Opts::new(&dir.path().join("data"), 47130, 47030);
    o.fault_injection = true;
    let d = Daemon::start(&o);
    let t = d.default_target();
    let tid = t["id"].clone();
    let mk = |name: &str| {
        d.create_lun(json!({"size_bytes": 4 << 20, "friendly_name": name, "targets": [tid]}))
    };
    let (a, b, c) = (mk("fw"), mk("ok"), mk("fr"));
    let (na, nb, nc) = (lun_number(&d, &a), lun_number(&d, &b), lun_number(&d, &c));
    let mut ini = d.login(INITIATOR, DEFAULT_IQN);
    works(&mut ini, na, 1, 0xA1);
    works(&mut ini, nb, 1, 0xB1);
    works(&mut ini, nc, 1, 0xC1);

    let id = |l: &Value| l["id"].as_str().unwrap().to_string();
    d.ok(
        "PUT",
        &format!("/v1/luns/{}/faults", id(&a)),
        Some(json!({"filters": [{"error": {"ops": ["write"], "after": 0}}]})),
    );
    d.ok(
        "PUT",
        &format!("/v1/luns/{}/faults", id(&c)),
        Some(json!({"filters": [{"error": {"ops": ["read"], "after": 0}}]})),
    );

    // The failed command: MEDIUM ERROR, WRITE ERROR / UNRECOVERED READ ERROR.
    let r = ini
        .command(na, &write16(2, 1, false), &[0; 512], 0)
        .unwrap();
    assert_eq!((r.status, kcq(&r.sense)), (2, (3, 0x0C, 0)));
    let r = ini.command(nc, &read16(1, 1), &[], 512).unwrap();
    assert_eq!((r.status, kcq(&r.sense)), (2, (3, 0x11, 0)));
    // Then FAILED: NOT READY, MANUAL INTERVENTION REQUIRED; INQUIRY still answers.
    for n in [na, nc] {
        let r = ini.command(n, &read16(1, 1), &[], 512).unwrap();
        assert_eq!((r.status, kcq(&r.sense)), (2, (2, 0x04, 0x03)), "LUN {n}");
        let r = ini.command(n, &[0x12, 0, 0, 0, 36, 0], &[], 36).unwrap();
        assert_eq!(r.status, 0);
    }
    for l in [&a, &c] {
        let v = lun_of(&d, &id(l));
        assert_eq!(
            (v["status"].as_str(), v["health"].as_str()),
            (Some("failed"), Some("failed"))
        );
    }
    // The other LUN and the default one: untouched.
    works(&mut ini, nb, 2, 0xB2);
    works(&mut ini, 0, 2, 0x02);
    assert_eq!(lun_of(&d, &id(&b))["status"], "online");
    let mut d = d;
    assert!(d.alive());
    let _ = ini.logout();
    assert_eq!(
        d.stop(),
        Some(0),
        "shutdown with FAILED LUNs is still clean"
    );
}

#[test]
fn enospc_on_a_small_filesystem_is_precise_and_recoverable() {
    let fs = SmallFs::mount("8m");
    let dir = tempfile::tempdir().unwrap();
    let o = Opts::new(&dir.path().join("data"), 47131, 47031);
    let mut d = Daemon::start(&o);
    let t = d.default_target();
    let lun_path = fs.path.join("thin.img");
    let lun = d.create_lun(json!({
        "size_bytes": 64 << 20, "friendly_name": "thin", "thin": true, "targets": [t["id"]],
        "backing": {"kind": "file", "path": lun_path.to_str().unwrap()},
    }));
    let id = lun["id"].as_str().unwrap().to_string();
    let n = lun_number(&d, &lun);
    let mut ini = d.login(INITIATOR, DEFAULT_IQN);
    let chunk = vec![0x77u8; 256 << 10];
    let mut written = 0u64;
    let failed = loop {
        let lba = written * 512;
        assert!(
            lba < (64 << 20) / 512,
            "64 MiB written to an 8 MiB filesystem"
        );
        let r = command_past_ua(&mut ini, n, &write16(lba, 512, true), &chunk, 0);
        if r.status != 0 {
            break r;
        }
        written += 1;
    };
    assert!(written >= 8, "only {written} chunks before ENOSPC");
    // Out of space on a thin LUN: DATA PROTECT, SPACE ALLOCATION FAILED WRITE PROTECT; the
    // medium is fine, so the LUN is not FAILED (BEHAVIOUR §5 is about I/O errors).
    assert_eq!(kcq(&failed.sense), (7, 0x27, 0x07), "{:02x?}", failed.sense);
    let v = lun_of(&d, &id);
    assert_eq!(v["status"], "online", "{v}");
    // What was written reads back; the default LUN is unaffected; the daemon is up.
    let r = command_past_ua(&mut ini, n, &read16(0, 512), &[], 256 << 10);
    assert_eq!((r.status, r.data == chunk), (0, true));
    works(&mut ini, 0, 7, 0x07);
    // Space freed (UNMAP of what was written punches holes): writes succeed again.
    let mut unmap = vec![0u8; 24];
    unmap[1] = 22;
    unmap[3] = 16;
    unmap[8..16].copy_from_slice(&0u64.to_be_bytes());
    unmap[16..20].copy_from_slice(&((written * 512) as u32).to_be_bytes());
    let r = command_past_ua(&mut ini, n, &[0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], &unmap, 0);
    assert_eq!(r.status, 0, "UNMAP: {:02x?}", r.sense);
    let r = command_past_ua(&mut ini, n, &write16(written * 512, 512, true), &chunk, 0);
    assert_eq!(r.status, 0, "write after space was freed: {:02x?}", r.sense);
    assert!(d.alive());
    let _ = ini.logout();
    assert_eq!(d.stop(), Some(0));
    drop(fs);
}

#[test]
fn vanished_or_truncated_backing_file_keeps_others_served_and_the_daemon_up() {
    let dir = tempfile::tempdir().unwrap();
    let o = Opts::new(&dir.path().join("data"), 47132, 47032);
    let mut d = Daemon::start(&o);
    let t = d.default_target();
    let tid = t["id"].clone();
    let gone =
        d.create_lun(json!({"size_bytes": 4 << 20, "friendly_name": "gone", "targets": [tid]}));
    let short =
        d.create_lun(json!({"size_bytes": 4 << 20, "friendly_name": "short", "targets": [tid]}));
    let (ng, ns) = (lun_number(&d, &gone), lun_number(&d, &short));
    let mut ini = d.login(INITIATOR, DEFAULT_IQN);
    works(&mut ini, ng, 3, 0x33);
    works(&mut ini, ns, 3, 0x44);

    std::fs::remove_file(gone["backing"]["path"].as_str().unwrap()).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(short["backing"]["path"].as_str().unwrap())
        .unwrap();
    f.set_len(0).unwrap();
    drop(f);

    // The data path keeps answering every command precisely: a read past the new end of the
    // truncated file is a MEDIUM ERROR or reads zeros, never garbage or a hang.
    let r = ini.command(ns, &read16(3, 1), &[], 512).unwrap();
    assert!(
        (r.status == 0 && r.data == vec![0; 512]) || (r.status == 2 && kcq(&r.sense).0 == 3),
        "read of a truncated LUN: status {} sense {:02x?}",
        r.status,
        r.sense
    );
    let r = ini.command(ng, &read16(3, 1), &[], 512).unwrap();
    assert!(r.status == 0 || r.status == 2, "{r:?}");
    works(&mut ini, 0, 9, 0x99);

    // The API sees the change (BEHAVIOUR §6): cache corrupt until Reenumerate + Refresh.
    let (st, v) = d.call(
        "GET",
        &format!("/v1/luns/{}", gone["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(
        (st, v["error"]["name"].as_str()),
        (503, Some("VDS_E_PROVIDER_CACHE_CORRUPT")),
        "{v}"
    );
    d.ok("POST", "/v1/provider/reenumerate", None);
    d.ok("POST", "/v1/provider/refresh", None);
    let v = lun_of(&d, gone["id"].as_str().unwrap());
    assert_eq!(v["status"], "failed", "a LUN whose file is gone: {v}");
    let r = command_past_ua(&mut ini, ng, &read16(3, 1), &[], 512);
    assert_eq!((r.status, kcq(&r.sense)), (2, (2, 0x04, 0x03)));
    works(&mut ini, 0, 10, 0xAA);
    assert!(d.alive());
    let _ = ini.logout();
    // A restart serves the rest and keeps the vanished LUN FAILED.
    d.stop();
    let d = Daemon::start(&o);
    assert_eq!(lun_of(&d, gone["id"].as_str().unwrap())["status"], "failed");
    let mut ini = d.login(INITIATOR, DEFAULT_IQN);
    works(&mut ini, 0, 11, 0xBB);
}

#[test]
fn store_on_a_full_disk_answers_an_error_and_stays_consistent() {
    let fs = SmallFs::mount("8m");
    let data = fs.path.join("data");
    let o = Opts::new(&data, 47133, 47033);
    let mut d = Daemon::start(&o);
    let ss = d.subsystem();
    let lun0 = list(&d.ok("GET", "/v1/luns", None))[0].clone();
    let lun0_id = lun0["id"].as_str().unwrap().to_string();
    let targets_before = list(&d.ok("GET", &format!("/v1/subsystems/{ss}/targets"), None)).len();
    let filler = fill(&fs.path);

    // Mutations answer the converted ENOSPC: HRESULT_FROM_WIN32(ERROR_DISK_FULL).
    let (st, v) = d.call(
        "POST",
        &format!("/v1/subsystems/{ss}/targets?wait=true"),
        Some(json!({"iscsi_name": "iqn.2026-01.test.h7:full", "friendly_name": "full"})),
    );
    assert!(st >= 500, "create target on a full disk: {st} {v}");
    let h = v["error"]["hresult"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!((st, h.as_str()), (500, "0x80070070"), "{v}");
    eprintln!("full store: {st} {}", v["error"]);
    let (st, v) = d.call(
        "POST",
        &format!("/v1/luns/{lun0_id}/status"),
        Some(json!({"status": "offline"})),
    );
    assert!(st >= 500, "set status on a full disk: {st} {v}");
    // Consistent: nothing half-applied, the LUN still online and served.
    assert_eq!(
        list(&d.ok("GET", &format!("/v1/subsystems/{ss}/targets"), None)).len(),
        targets_before
    );
    assert_eq!(lun_of(&d, &lun0_id)["status"], "online");
    let mut ini = d.login(INITIATOR, DEFAULT_IQN);
    let r = command_past_ua(&mut ini, 0, &[0, 0, 0, 0, 0, 0], &[], 0);
    assert_eq!(r.status, 0, "{:02x?}", r.sense);
    let _ = ini.logout();
    assert!(d.alive());

    // Space back: the same calls succeed, once.
    std::fs::remove_file(filler).unwrap();
    let (st, v) = d.call(
        "POST",
        &format!("/v1/subsystems/{ss}/targets?wait=true"),
        Some(json!({"iscsi_name": "iqn.2026-01.test.h7:full", "friendly_name": "full"})),
    );
    assert_eq!(st, 201, "{v}");
    d.ok(
        "POST",
        &format!("/v1/luns/{lun0_id}/status"),
        Some(json!({"status": "offline"})),
    );
    d.kill9();
    let d = Daemon::start(&o);
    let ts = list(&d.ok("GET", &format!("/v1/subsystems/{ss}/targets"), None));
    assert_eq!(ts.len(), targets_before + 1);
    assert_eq!(
        ts.iter()
            .filter(|t| t["iscsi_name"] == "iqn.2026-01.test.h7:full")
            .count(),
        1
    );
    assert_eq!(lun_of(&d, &lun0_id)["status"], "offline");
    drop(d);
    drop(fs);
}
