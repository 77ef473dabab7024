//! Mirrors after a `kill -9` (BEHAVIOUR.md §15), end to end against the real daemon.
//!
//! - Fast crash recovery: a 2-plex mirror with `fast_crash_recovery_required` keeps its
//!   write-intent bitmap in the data dir; vdsd is killed under a write load through iSCSI; the
//!   test reads the bitmap, corrupts the second plex's extent file in one region it marks dirty
//!   and (the control) in one it does not; after the restart the crash-resync job examines
//!   exactly the dirty regions (its log line), repairs the dirty one and leaves the clean one
//!   as it was, the plexes are equal in every dirty region and every acknowledged write reads
//!   back.
//! - A rebuild onto a hot spare (a drive fault, `rebuild_priority` 0) is killed midway; after
//!   the restart it resumes and completes, the LUN is healthy and the plexes byte-equal.
//!
//! - A mirror without the hint is compared whole after a crash, and not after a clean stop.
//!
//! Slots 105, 106 and 109.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// Bytes per write of the loads.
const CHUNK: usize = 64 << 10;

/// Per chunk: the last acknowledged pass, and the pass in flight.
type Model = Arc<Mutex<Vec<(u32, Option<u32>)>>>;

/// The bytes of write number `seq` at chunk `i`.
fn pattern(i: usize, seq: u32) -> Vec<u8> {
    let mut v = vec![0u8; CHUNK];
    for (k, b) in v.iter_mut().enumerate() {
        *b = (k as u32)
            .wrapping_mul(2_654_435_761)
            .wrapping_add(i as u32 * 977 + seq * 131)
            .rotate_left(7) as u8;
    }
    v
}

fn items(v: Value) -> Vec<Value> {
    v.as_array()
        .cloned()
        .unwrap_or_else(|| v["items"].as_array().cloned().unwrap_or_default())
}

/// The dirty regions a write-intent bitmap file records, and its region size (the layout of
/// `vds_backstore::intent`: magic, version, region, size, count, CRC-32C, then the bits).
fn read_bitmap(path: &Path) -> (u64, Vec<u64>) {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&b[..8], b"VDSWIBM1", "a write-intent bitmap");
    let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
    let (region, n) = (u64_at(12), u64_at(28));
    let dirty = (0..n)
        .filter(|r| b[40 + (r / 8) as usize] & (1 << (r % 8)) != 0)
        .collect();
    (region, dirty)
}

/// The number after `key=` in the log line holding `marker` and `lun` (the last such line).
fn logged(log: &str, marker: &str, lun: &str, key: &str) -> Option<u64> {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains(marker) && l.contains(lun))?;
    let at = line.find(&format!("{key}="))? + key.len() + 1;
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn wait_log(d: &Daemon, marker: &str, lun: &str, key: &str) -> u64 {
    let started = Instant::now();
    loop {
        if let Some(v) = logged(&d.log(), marker, lun, key) {
            return v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no `{marker}` line for {lun} in 120 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The RecoverLun jobs of `lun`, once none of them runs.
fn settled_recover_jobs(d: &Daemon, lun: &str) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let jobs: Vec<Value> = items(d.get("/v1/jobs"))
            .into_iter()
            .filter(|j| j["operation"] == "recover_lun" && j["object"] == lun)
            .collect();
        if !jobs.is_empty() && jobs.iter().all(|j| j["state"] != "running") {
            return jobs;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the RecoverLun jobs of {lun} did not end: {jobs:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn after_kill_9_the_bitmap_s_dirty_regions_and_only_those_are_resynced() {
    const SIZE: u64 = 32 << 20;
    let mut d = Daemon::start(105, Opts::default());
    let sub = d.subsystem();
    let target = d.target();
    let root = tempfile::tempdir().unwrap();
    let dirs = dirs(root.path(), &["a", "b"]);
    let a = add_drive(&d, &sub, &dirs[0], "wib-a");
    let b = add_drive(&d, &sub, &dirs[1], "wib-b");
    let lun = d.ok(
        "POST",
        &format!("/v1/subsystems/{sub}/luns?wait=true"),
        json!({"size_bytes": SIZE, "friendly_name": "wib", "type": "mirror",
               "drives": [a, b], "targets": [target],
               "hints": {"fast_crash_recovery_required": true}}),
        201,
    );
    let id = lun["id"].as_str().unwrap().to_string();
    let number = lun["lun_numbers"][&target].as_u64().unwrap();
    let plexes = items(d.get(&format!("/v1/luns/{id}/plexes")));
    assert_eq!(plexes[1]["extents"][0]["drive"], b.as_str(), "plex 1 on b");
    let wib = d.data_dir().join("luns").join(format!("{id}.wib"));
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&wib).unwrap().permissions());
    assert_eq!(
        mode & 0o777,
        0o600,
        "the bitmap is the data dir user's only"
    );
    assert!(
        !dirs[0]
            .join("vds-extents")
            .join(format!("{id}.wib"))
            .exists(),
        "never on a drive"
    );

    let blocks = (CHUNK / 512) as u32;
    let per_mib = (1 << 20) / CHUNK;
    // Regions 0-3 written and flushed: clean at the crash. Regions 8-15 written under the
    // load that the kill interrupts. Region 24 never written.
    let mut ini = d.login(0, 1);
    for i in 0..4 * per_mib {
        let r = ini
            .command(
                number,
                &cdb::write10(i as u32 * blocks, blocks as u16),
                &pattern(i, 1),
                0,
            )
            .unwrap();
        assert_good(&r, "write");
    }
    assert_good(
        &ini.command(number, &cdb::sync_cache(), &[], 0).unwrap(),
        "SYNCHRONIZE CACHE",
    );
    let model: Model = Arc::new(Mutex::new(vec![(0, None); (SIZE as usize) / CHUNK]));
    for i in 0..4 * per_mib {
        model.lock().unwrap()[i].0 = 1;
    }
    let running = Arc::new(AtomicBool::new(true));
    let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let load = {
        let (model, running, acked) = (model.clone(), running.clone(), acked.clone());
        std::thread::spawn(move || {
            let mut seq = 2u32;
            let mut x = 0x2545_F491_4F6C_DD1Du64;
            while running.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = 8 * per_mib + (x % (8 * per_mib as u64)) as usize;
                model.lock().unwrap()[i].1 = Some(seq);
                let cdb = cdb::write10(i as u32 * blocks, blocks as u16);
                match ini.command(number, &cdb, &pattern(i, seq), 0) {
                    Ok(r) if r.status == 0 => {
                        model.lock().unwrap()[i] = (seq, None);
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    // The daemon is gone: the write may or may not have landed.
                    _ => return,
                }
                seq += 1;
            }
        })
    };
    let started = Instant::now();
    while acked.load(Ordering::Relaxed) < 200 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the load is too slow"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    d.kill9();
    running.store(false, Ordering::Relaxed);
    load.join().unwrap();

    let (region, dirty) = read_bitmap(&wib);
    assert_eq!(region, 1 << 20, "1 MiB regions on a 32 MiB LUN");
    assert!(
        !dirty.is_empty() && dirty.iter().all(|r| (8..16).contains(r)),
        "the dirty regions are those under the load: {dirty:?}"
    );
    let hot = dirty[0];
    let cold = 24u64;
    assert!(!dirty.contains(&cold));
    // Corrupt plex 1 (drive b) in one dirty region and in the clean control region.
    let garbage = vec![0xEEu8; 8192];
    let fb = extent_file(&dirs[1]);
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&fb).unwrap();
        f.write_all_at(&garbage, hot * region + 4096).unwrap();
        f.write_all_at(&garbage, cold * region + 4096).unwrap();
        f.sync_all().unwrap();
    }

    d.restart();
    let examined = wait_log(&d, "crash resync done", &id, "examined_bytes");
    let repaired = wait_log(&d, "crash resync done", &id, "repaired_bytes");
    assert_eq!(
        examined,
        dirty.len() as u64 * region,
        "the job examined exactly the dirty regions"
    );
    assert!(repaired > 0, "the corrupted dirty region was repaired");
    assert!(
        repaired <= examined,
        "repaired {repaired} of {examined} examined bytes"
    );
    let jobs = settled_recover_jobs(&d, &id);
    assert!(
        jobs.iter()
            .any(|j| j["state"] == "succeeded" && j["percent"] == 100),
        "a RecoverLun job ran to the end: {jobs:?}"
    );
    assert_eq!(d.lun(&id)["health"], "healthy");

    let mut ini = d.login(0, 1);
    assert_good(
        &ini.command(number, &cdb::sync_cache(), &[], 0).unwrap(),
        "SYNCHRONIZE CACHE",
    );
    let on_a = std::fs::read(extent_file(&dirs[0])).unwrap();
    let on_b = std::fs::read(extent_file(&dirs[1])).unwrap();
    for r in &dirty {
        let s = (r * region) as usize..((r + 1) * region) as usize;
        assert!(
            on_a[s.clone()] == on_b[s],
            "the plexes differ in dirty region {r}"
        );
    }
    let c = (cold * region + 4096) as usize..(cold * region + 4096) as usize + garbage.len();
    assert!(
        on_b[c.clone()] == garbage[..],
        "the clean region was left alone: only dirty regions are copied"
    );
    assert!(
        on_a[c].iter().all(|&x| x == 0),
        "plex 0 never had the garbage"
    );

    // Every acknowledged write reads back (one in flight at the kill may have landed too).
    let model = model.lock().unwrap();
    for (i, (seq, pending)) in model.iter().enumerate() {
        if *seq == 0 && pending.is_none() {
            continue;
        }
        let r = read(&mut ini, number, i as u32 * blocks, blocks as u16);
        assert_good(&r, &format!("read of chunk {i}"));
        // The write in flight at the kill may be torn (a killed pwrite stops between pages):
        // each block of its chunk is the acknowledged data or the new.
        let old = if *seq > 0 {
            pattern(i, *seq)
        } else {
            vec![0u8; CHUNK]
        };
        let new = pending.map(|p| pattern(i, p));
        let ok = r.data.chunks(512).enumerate().all(|(k, got)| {
            let at = k * 512..(k + 1) * 512;
            got == &old[at.clone()] || new.as_ref().is_some_and(|n| got == &n[at])
        });
        assert!(
            ok && (pending.is_some() || r.data == old),
            "chunk {i}: neither acknowledged pass {seq} nor in-flight {pending:?}"
        );
    }
    // The bitmap is clean again once the repair ended and the LUN was flushed.
    let (_, dirty_after) = read_bitmap(&wib);
    assert!(
        dirty_after.is_empty(),
        "clean after the flush: {dirty_after:?}"
    );

    drop(ini);
    // Setting the hint off flushes and removes the bitmap; on again makes a new one.
    d.ok(
        "PUT",
        &format!("/v1/luns/{id}/hints"),
        json!({"fast_crash_recovery_required": false}),
        200,
    );
    assert!(!wib.exists(), "the bitmap goes with the hint");
    d.ok(
        "PUT",
        &format!("/v1/luns/{id}/hints"),
        json!({"fast_crash_recovery_required": true}),
        200,
    );
    assert!(wib.exists(), "and comes back with it");
    let (status, v) = d.call("DELETE", &format!("/v1/luns/{id}?wait=true"), None);
    assert!((200..300).contains(&status), "DELETE: {status} {v}");
    assert!(!wib.exists(), "the bitmap goes with the LUN");
}

#[test]
fn a_rebuild_killed_midway_resumes_after_the_restart() {
    const SIZE: u64 = 96 << 20;
    let mut d = Daemon::start(
        106,
        Opts {
            fault_injection: true,
            ..Default::default()
        },
    );
    let sub = d.subsystem();
    let target = d.target();
    let root = tempfile::tempdir().unwrap();
    let dirs = dirs(root.path(), &["a", "b", "spare"]);
    let a = add_drive(&d, &sub, &dirs[0], "rb-a");
    let b = add_drive(&d, &sub, &dirs[1], "rb-b");
    let spare = add_drive(&d, &sub, &dirs[2], "rb-spare");
    d.ok(
        "PUT",
        &format!("/v1/drives/{spare}/flags"),
        json!({"hotspare": true}),
        200,
    );
    let lun = d.ok(
        "POST",
        &format!("/v1/subsystems/{sub}/luns?wait=true"),
        json!({"size_bytes": SIZE, "friendly_name": "rb", "type": "mirror",
               "drives": [a, b], "targets": [target],
               "hints": {"rebuild_priority": 0}}),
        201,
    );
    let id = lun["id"].as_str().unwrap().to_string();
    let number = lun["lun_numbers"][&target].as_u64().unwrap();
    let blocks = (CHUNK / 512) as u32;
    let chunks = (SIZE as usize) / CHUNK;
    let mut ini = d.login(0, 1);
    for i in (0..chunks).step_by(5) {
        let r = ini
            .command(
                number,
                &cdb::write10(i as u32 * blocks, blocks as u16),
                &pattern(i, 1),
                0,
            )
            .unwrap();
        assert_good(&r, "write");
    }
    d.ok(
        "PUT",
        &format!("/v1/drives/{a}/faults"),
        json!({"filters": [{"error": {"ops": ["read", "write", "flush"], "after": 0}}]}),
        200,
    );
    // The next write meets the fault: the plex on a fails, the spare takes it.
    let r = ini
        .command(number, &cdb::write10(0, blocks as u16), &pattern(0, 2), 0)
        .unwrap();
    assert_good(&r, "the write that meets the dead drive");
    d.wait_until(&format!("/v1/luns/{id}"), "rebuilding", |l| {
        l["health"] == "rebuilding"
    });
    std::thread::sleep(Duration::from_millis(300));
    let jobs: Vec<Value> = items(d.get("/v1/jobs"))
        .into_iter()
        .filter(|j| j["operation"] == "recover_lun" && j["object"] == id.as_str())
        .collect();
    assert!(
        jobs.iter().any(|j| j["state"] == "running"),
        "the rebuild runs at the kill: {jobs:?}"
    );
    drop(ini);
    d.kill9();

    d.restart();
    let lun = d.lun(&id);
    assert_eq!(
        lun["health"], "rebuilding",
        "still rebuilding after the restart: {lun}"
    );
    d.wait_until(&format!("/v1/luns/{id}"), "healthy", |l| {
        l["health"] == "healthy"
    });
    let jobs = settled_recover_jobs(&d, &id);
    assert!(
        jobs.iter().any(|j| j["state"] == "succeeded"),
        "the resumed rebuild succeeded: {jobs:?}"
    );
    let plexes = items(d.get(&format!("/v1/luns/{id}/plexes")));
    assert!(
        plexes
            .iter()
            .all(|p| p["status"] == "online" && p["health"] == "healthy"),
        "{plexes:?}"
    );
    let mut ini = d.login(0, 1);
    for i in (0..chunks).step_by(5) {
        let r = read(&mut ini, number, i as u32 * blocks, blocks as u16);
        assert_good(&r, &format!("read of chunk {i}"));
        let seq = if i == 0 { 2 } else { 1 };
        assert!(r.data == pattern(i, seq), "chunk {i}");
    }
    assert_good(
        &ini.command(number, &cdb::sync_cache(), &[], 0).unwrap(),
        "SYNCHRONIZE CACHE",
    );
    let on_b = std::fs::read(extent_file(&dirs[1])).unwrap();
    let on_spare = std::fs::read(extent_file(&dirs[2])).unwrap();
    assert_eq!(on_b.len(), on_spare.len());
    assert_eq!(
        on_b.iter().zip(&on_spare).position(|(x, y)| x != y),
        None,
        "the plexes on b and on the spare differ"
    );
}

#[test]
fn a_mirror_without_the_hint_is_compared_whole_after_a_crash_and_not_after_a_clean_stop() {
    const SIZE: u64 = 16 << 20;
    let mut d = Daemon::start(109, Opts::default());
    let sub = d.subsystem();
    let target = d.target();
    let root = tempfile::tempdir().unwrap();
    let dirs = dirs(root.path(), &["a", "b"]);
    let a = add_drive(&d, &sub, &dirs[0], "nh-a");
    let b = add_drive(&d, &sub, &dirs[1], "nh-b");
    let lun = d.ok(
        "POST",
        &format!("/v1/subsystems/{sub}/luns?wait=true"),
        json!({"size_bytes": SIZE, "friendly_name": "nh", "type": "mirror",
               "drives": [a, b], "targets": [target]}),
        201,
    );
    let id = lun["id"].as_str().unwrap().to_string();
    let number = lun["lun_numbers"][&target].as_u64().unwrap();
    let wib = d.data_dir().join("luns").join(format!("{id}.wib"));
    assert!(!wib.exists(), "no bitmap without the hint");
    let blocks = (CHUNK / 512) as u32;
    let chunks = SIZE as usize / CHUNK;
    let mut ini = d.login(0, 1);
    for i in 0..chunks {
        let cdb = cdb::write10(i as u32 * blocks, blocks as u16);
        let r = ini.command(number, &cdb, &pattern(i, 1), 0).unwrap();
        assert_good(&r, "write");
    }
    drop(ini);
    d.kill9();
    // The crash left the plexes unequal somewhere no bitmap records.
    let fb = extent_file(&dirs[1]);
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&fb).unwrap();
        f.write_all_at(&[0xA5u8; 8192], (5 << 20) + 512).unwrap();
        f.sync_all().unwrap();
    }
    d.restart();
    let examined = wait_log(&d, "crash resync done", &id, "examined_bytes");
    let repaired = wait_log(&d, "crash resync done", &id, "repaired_bytes");
    assert_eq!(examined, SIZE, "the whole LUN compared");
    assert!(
        repaired > 0 && repaired < SIZE,
        "only what differed written: {repaired}"
    );
    settled_recover_jobs(&d, &id);
    let on_a = std::fs::read(extent_file(&dirs[0])).unwrap();
    let on_b = std::fs::read(extent_file(&dirs[1])).unwrap();
    assert_eq!(
        on_a.iter().zip(&on_b).position(|(x, y)| x != y),
        None,
        "the plexes are equal after the crash resync"
    );
    let mut ini = d.login(0, 1);
    for i in 0..chunks {
        let r = read(&mut ini, number, i as u32 * blocks, blocks as u16);
        assert_good(&r, "read");
        assert!(r.data == pattern(i, 1), "chunk {i}");
    }
    drop(ini);
    // A clean stop leaves the marker; the next start takes it and compares nothing.
    let started = |log: &str| {
        log.lines()
            .filter(|l| l.contains("crash resync: making the plexes equal") && l.contains(&id))
            .count()
    };
    let before = started(&d.log());
    assert_eq!(before, 1);
    assert_eq!(d.terminate(), Some(0), "a clean stop");
    assert!(
        d.data_dir().join("clean-shutdown").exists(),
        "the marker is written"
    );
    d.restart();
    assert!(
        !d.data_dir().join("clean-shutdown").exists(),
        "the start takes the marker"
    );
    assert_eq!(
        started(&d.log()),
        before,
        "no crash resync after a clean stop"
    );
}
