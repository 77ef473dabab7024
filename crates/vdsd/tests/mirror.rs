//! Mirrors that survive a dead drive (BEHAVIOUR.md §15), end to end against the real daemon:
//! a 2-plex mirror LUN on two `dir` drives with a hot spare, written through iSCSI; one drive
//! starts failing every I/O (its `error` fault filter) under a write load; the initiator sees
//! no error, the LUN stays ONLINE with `failed_redundancy`, a rebuild onto the spare starts by
//! itself (`rebuilding`), completes, and the LUN is `healthy` again, with the MODIFY events in
//! that order; afterwards every byte reads back as written and the two current plexes are
//! byte-equal on disk (slot 96); the same failure under a libiscsi write load (qemu-img convert
//! onto iscsi://) with no error and the data intact (slot 97).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const MODIFY: u64 = 110;

/// Bytes per write of the load.
const CHUNK: usize = 64 << 10;

/// A mirror LUN's size.
const SIZE: u64 = 32 << 20;

/// The bytes of write number `seq` at chunk `i`: every chunk different on every pass.
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

fn health(d: &Daemon, lun: &str) -> String {
    d.lun(lun)["health"].as_str().unwrap_or("").to_string()
}

#[test]
fn a_mirror_loses_a_drive_under_load_and_rebuilds_onto_the_hot_spare() {
    let d = Daemon::start(
        96,
        Opts {
            fault_injection: true,
            ..Default::default()
        },
    );
    let sub = d.subsystem();
    let target = d.target();
    let root = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = ["a", "b", "spare"]
        .iter()
        .map(|n| {
            let p = root.path().join(n);
            std::fs::create_dir(&p).unwrap();
            p
        })
        .collect();
    let a = add_drive(&d, &sub, &dirs[0], "mirror-a");
    let b = add_drive(&d, &sub, &dirs[1], "mirror-b");
    let spare = add_drive(&d, &sub, &dirs[2], "mirror-spare");
    d.ok(
        "PUT",
        &format!("/v1/drives/{spare}/flags"),
        json!({"hotspare": true}),
        200,
    );
    let lun = d.ok(
        "POST",
        &format!("/v1/subsystems/{sub}/luns?wait=true"),
        json!({"size_bytes": SIZE, "friendly_name": "mirror-e2e", "type": "mirror",
               "drives": [a, b], "plexes": 2, "targets": [target],
               "hints": {"rebuild_priority": 15}}),
        201,
    );
    assert_eq!(lun["type"], "mirror", "{lun}");
    assert_eq!(lun["health"], "healthy", "{lun}");
    assert_eq!(lun["plexes"].as_array().map(Vec::len), Some(2), "{lun}");
    let id = lun["id"].as_str().unwrap().to_string();
    let number = lun["lun_numbers"][&target].as_u64().unwrap();

    let chunks = (SIZE as usize) / CHUNK;
    let blocks = (CHUNK / 512) as u32;
    let mut ini = d.login(0, 1);
    let mut model: Vec<u32> = vec![0; chunks];
    let write = |ini: &mut vds_testkit::Initiator, i: usize, seq: u32, model: &mut [u32]| {
        let r = ini
            .command(
                number,
                &cdb::write10(i as u32 * blocks, blocks as u16),
                &pattern(i, seq),
                0,
            )
            .expect("WRITE(10)");
        assert_good(&r, &format!("write of chunk {i}, pass {seq}"));
        model[i] = seq;
    };
    for i in 0..chunks {
        write(&mut ini, i, 1, &mut model);
    }

    // Drive a dies: every read, write and flush on it fails from now on.
    let ev = d.events();
    d.ok(
        "PUT",
        &format!("/v1/drives/{a}/faults"),
        json!({"filters": [{"error": {"ops": ["read", "write", "flush"], "after": 0}}]}),
        200,
    );
    // The load goes on through the failure and the rebuild: no error reaches the initiator.
    let started = Instant::now();
    let mut seq = 2;
    let mut seen = Vec::new();
    loop {
        for i in (0..chunks).step_by(7) {
            write(&mut ini, (i + seq as usize) % chunks, seq, &mut model);
        }
        let h = health(&d, &id);
        if seen.last() != Some(&h) {
            seen.push(h.clone());
        }
        if h == "healthy" && seq > 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the LUN did not come back to healthy in 120 s; health seen: {seen:?}"
        );
        seq += 1;
    }
    let lun = d.lun(&id);
    assert_eq!(lun["status"], "online", "the LUN stayed ONLINE: {lun}");

    // The LUN's MODIFY events, in order: failed_redundancy, rebuilding, healthy (each event
    // is followed by a GET of the LUN in the stream's order; the health trail is checked on
    // what the poll saw and on the count of events).
    let evs = ev.drain();
    let modifies = count(&evs, &id, MODIFY);
    assert!(
        modifies >= 3,
        "at least the plex failure, the rebuild start and its end: {modifies} MODIFY in {evs:?}"
    );
    let trail: Vec<&str> = seen.iter().map(String::as_str).collect();
    let pos = |h: &str| trail.iter().position(|x| *x == h);
    if let (Some(r), Some(f)) = (pos("rebuilding"), pos("failed_redundancy")) {
        assert!(f < r, "failed_redundancy before rebuilding: {trail:?}");
    }
    assert_eq!(trail.last(), Some(&"healthy"), "{trail:?}");

    // The plexes: one on the spare (current), one on b; a's failed.
    let plexes = d.get(&format!("/v1/luns/{id}/plexes"));
    let plexes: Vec<Value> = plexes
        .as_array()
        .cloned()
        .unwrap_or_else(|| plexes["items"].as_array().cloned().unwrap_or_default());
    let online = plexes
        .iter()
        .filter(|p| p["status"] == "online" && p["health"] == "healthy")
        .count();
    assert_eq!(
        online, 2,
        "two current plexes after the rebuild: {plexes:?}"
    );

    // Every byte reads back as last written, through iSCSI...
    for (i, seq) in model.iter().enumerate() {
        let r = read(&mut ini, number, i as u32 * blocks, blocks as u16);
        assert_good(&r, &format!("read of chunk {i}"));
        assert!(
            r.data == pattern(i, *seq),
            "chunk {i}: not pass {seq}'s data"
        );
    }
    // ... and the two current plexes are equal on disk.
    let sync = ini.command(number, &cdb::sync_cache(), &[], 0).unwrap();
    assert_good(&sync, "SYNCHRONIZE CACHE");
    let on_b = std::fs::read(extent_file(&dirs[1])).unwrap();
    let on_spare = std::fs::read(extent_file(&dirs[2])).unwrap();
    assert_eq!(on_b.len(), on_spare.len(), "extent sizes");
    let first_diff = on_b.iter().zip(&on_spare).position(|(x, y)| x != y);
    assert_eq!(first_diff, None, "the plexes on b and on the spare differ");
}

/// The same failure under a write load from libiscsi (QEMU's iSCSI client: `qemu-img convert`
/// onto `iscsi://`, with fsync at the end): a drive of the mirror starts failing while the
/// copy runs; qemu-img reports no error, the LUN is `failed_redundancy`, and what is read
/// back through libiscsi is exactly the source.
#[test]
fn a_mirror_loses_a_drive_under_a_libiscsi_write_load() {
    let d = Daemon::start(
        97,
        Opts {
            fault_injection: true,
            ..Default::default()
        },
    );
    let sub = d.subsystem();
    let target = d.target();
    let root = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = ["la", "lb"]
        .iter()
        .map(|n| {
            let p = root.path().join(n);
            std::fs::create_dir(&p).unwrap();
            p
        })
        .collect();
    let a = add_drive(&d, &sub, &dirs[0], "libiscsi-a");
    let b = add_drive(&d, &sub, &dirs[1], "libiscsi-b");
    const LEN: u64 = 256 << 20;
    let lun = d.ok(
        "POST",
        &format!("/v1/subsystems/{sub}/luns?wait=true"),
        json!({"size_bytes": LEN, "type": "mirror", "drives": [a, b], "plexes": 2,
               "targets": [target]}),
        201,
    );
    let id = lun["id"].as_str().unwrap().to_string();
    let number = lun["lun_numbers"][&target].as_u64().unwrap();
    let src = root.path().join("src.img");
    let data: Vec<u8> = (0..LEN as usize)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(7) as u8)
        .collect();
    std::fs::write(&src, &data).unwrap();
    let url = format!("iscsi://{}/{}/{number}", d.portals[0], TARGET);
    // qemu-img writes in the background while drive a starts failing.
    let mut copy = std::process::Command::new("qemu-img")
        .args([
            "convert", "-n", "-p", "-t", "none", "-W", "-f", "raw", "-O", "raw",
        ])
        .arg(&src)
        .arg(&url)
        .env(
            "LIBISCSI_INITIATOR_NAME",
            "iqn.2026-12.test:mirror-libiscsi",
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("qemu-img (apt-get install qemu-utils qemu-block-extra)");
    std::thread::sleep(std::time::Duration::from_millis(200));
    d.ok(
        "PUT",
        &format!("/v1/drives/{a}/faults"),
        json!({"filters": [{"error": {"ops": ["read", "write", "flush"], "after": 0}}]}),
        200,
    );
    assert!(
        copy.try_wait().unwrap().is_none(),
        "qemu-img finished before the drive failed: the load did not cover the failure"
    );
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = copy.try_wait().unwrap() {
            break s;
        }
        assert!(t0.elapsed().as_secs() < 120, "qemu-img did not finish");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(copy.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "qemu-img convert saw an error: {err}");
    assert_eq!(health(&d, &id), "failed_redundancy");
    assert_eq!(d.lun(&id)["status"], "online");
    // Read back through libiscsi too.
    let back = root.path().join("back.img");
    let o = run_limited(
        Path::new("qemu-img"),
        &[
            "convert".into(),
            "-f".into(),
            "raw".into(),
            "-O".into(),
            "raw".into(),
            url.clone(),
            back.display().to_string(),
        ],
        std::time::Duration::from_secs(120),
    );
    assert!(o.status.success(), "qemu-img read back: {}", text(&o));
    assert!(
        std::fs::read(&back).unwrap() == data,
        "the LUN holds exactly the source"
    );
}
