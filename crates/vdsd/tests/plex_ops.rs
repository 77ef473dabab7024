//! AddPlex and RemovePlex (BEHAVIOUR.md §15), end to end against the real daemon: a simple
//! LUN on drive a, written through iSCSI, takes another LUN on drive b as a new plex while the
//! initiator keeps writing (the other LUN departs, its extent file takes this LUN's name, the
//! AddLunPlex job regenerates it and the plexes end byte-equal), a third plex through `vdsctl
//! lun add-plex`; the refusals (itself, smaller, mapped, same drive, malformed); then RemovePlex
//! over HTTP and `vdsctl plex remove` down to one plex (files freed, the drive's extents all
//! free, every byte still reads back), and the last plex is refused. Slot 107.

mod common;

use std::path::PathBuf;

use common::*;
use serde_json::{json, Value};

const SIZE: u64 = 16 << 20;
const CHUNK: usize = 64 << 10;

fn pattern(i: usize, seq: u32) -> Vec<u8> {
    let mut v = vec![0u8; CHUNK];
    for (k, b) in v.iter_mut().enumerate() {
        *b = (k as u32)
            .wrapping_mul(2_654_435_761)
            .wrapping_add(i as u32 * 977 + seq * 131)
            .rotate_left(5) as u8;
    }
    v
}

fn simple_lun(d: &Daemon, sub: &str, name: &str, drive: &str, size: u64, targets: Value) -> String {
    let v = d.ok(
        "POST",
        &format!("/v1/subsystems/{sub}/luns?wait=true"),
        json!({"size_bytes": size, "friendly_name": name, "type": "simple",
               "drives": [drive], "targets": targets}),
        201,
    );
    v["id"].as_str().unwrap().to_string()
}

fn plexes(d: &Daemon, lun: &str) -> Vec<Value> {
    let v = d.get(&format!("/v1/luns/{lun}/plexes"));
    v.as_array()
        .cloned()
        .unwrap_or_else(|| v["items"].as_array().cloned().unwrap_or_default())
}

#[test]
fn a_lun_becomes_a_plex_under_writes_and_plexes_are_removed_down_to_one() {
    let d = Daemon::start(
        107,
        Opts {
            fault_injection: true,
            ..Default::default()
        },
    );
    let sub = d.subsystem();
    let target = d.target();
    let root = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = ["a", "b", "c"]
        .iter()
        .map(|n| {
            let p = root.path().join(n);
            std::fs::create_dir(&p).unwrap();
            p
        })
        .collect();
    let a = add_drive(&d, &sub, &dirs[0], "ap-a");
    let b = add_drive(&d, &sub, &dirs[1], "ap-b");
    let c = add_drive(&d, &sub, &dirs[2], "ap-c");
    let l = d.ok(
        "POST",
        &format!("/v1/subsystems/{sub}/luns?wait=true"),
        json!({"size_bytes": SIZE, "friendly_name": "ap-l", "type": "simple",
               "drives": [a], "targets": [target],
               "hints": {"fast_crash_recovery_required": true}}),
        201,
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let wib = d.data_dir().join("luns").join(format!("{l}.wib"));
    assert!(!wib.exists(), "one plex: no write-intent bitmap");
    let lun = d.lun(&l);
    let number = lun["lun_numbers"][&target].as_u64().unwrap();
    let blocks = (CHUNK / 512) as u32;
    let chunks = SIZE as usize / CHUNK;
    let mut model = vec![0u32; chunks];
    let mut ini = d.login(0, 1);
    let mut write = |ini: &mut vds_testkit::Initiator, i: usize, seq: u32| {
        let cdb = cdb::write10(i as u32 * blocks, blocks as u16);
        let r = ini.command(number, &cdb, &pattern(i, seq), 0).unwrap();
        assert_good(&r, &format!("write of chunk {i}"));
        model[i] = seq;
    };
    for i in 0..chunks {
        write(&mut ini, i, 1);
    }

    // The refusals, each changing nothing.
    let small = simple_lun(&d, &sub, "ap-small", &b, SIZE / 2, json!([]));
    let mapped = simple_lun(&d, &sub, "ap-mapped", &b, SIZE, json!([target]));
    let same = simple_lun(&d, &sub, "ap-same", &a, SIZE, json!([]));
    let add = |other: Value| {
        d.call(
            "POST",
            &format!("/v1/luns/{l}/plexes"),
            Some(&json!({"lun": other})),
        )
    };
    assert_refused(add(json!(l)), "E_INVALIDARG", "itself");
    assert_refused(
        add(json!(small)),
        "VDS_E_INVALID_OPERATION",
        "a smaller LUN",
    );
    assert_refused(
        add(json!(mapped)),
        "VDS_E_DEVICE_IN_USE",
        "a LUN on a target",
    );
    assert_refused(
        add(json!(same)),
        "E_INVALIDARG",
        "a LUN on this LUN's drive",
    );
    assert_refused(add(json!("not-a-uuid")), "E_INVALIDARG", "a malformed id");
    assert_refused(
        add(json!("00000000-0000-4000-8000-000000000001")),
        "VDS_E_OBJECT_NOT_FOUND",
        "an unknown LUN",
    );
    assert_refused(
        d.call(
            "POST",
            &format!("/v1/luns/{l}/plexes"),
            Some(&json!({"lun": small, "x": 1})),
        ),
        "E_INVALIDARG",
        "an unknown field",
    );
    assert_eq!(plexes(&d, &l).len(), 1, "nothing changed");
    for id in [&small, &mapped, &same] {
        let (s, v) = d.call("DELETE", &format!("/v1/luns/{id}"), None);
        assert_eq!(s, 204, "{v}");
    }

    // The LUN inventory of the target changed twice: take the unit attentions.
    for _ in 0..5 {
        if tur(&mut ini, number).status == 0 {
            break;
        }
    }

    // AddPlex under writes: the other LUN (larger) on b.
    let other = simple_lun(&d, &sub, "ap-other", &b, SIZE + (4 << 20), json!([]));
    let ev = d.events();
    d.wait_event_streams(1);
    let (s, job) = d.call(
        "POST",
        &format!("/v1/luns/{l}/plexes"),
        Some(&json!({"lun": other})),
    );
    assert_eq!(s, 202, "{job}");
    assert_eq!(job["operation"], "add_lun_plex", "{job}");
    let mut seq = 2;
    let mut percents = Vec::new();
    loop {
        for i in (0..chunks).step_by(11) {
            write(&mut ini, (i + seq as usize) % chunks, seq);
        }
        let j = d.get(&format!("/v1/jobs/{}", job["id"].as_str().unwrap()));
        percents.push(j["percent"].as_u64().unwrap());
        if j["state"] != "running" {
            assert_eq!(j["state"], "succeeded", "{j}");
            break;
        }
        seq += 1;
        assert!(seq < 10_000, "the AddLunPlex job does not end");
    }
    let (s, v) = d.call("GET", &format!("/v1/luns/{other}"), None);
    assert!(s == 404 || s == 410, "the other LUN departed: {s} {v}");
    let evs = ev.drain();
    assert!(
        evs.iter().any(|e| e.to_string().contains(&other)),
        "an event for the departed LUN: {evs:?}"
    );
    assert!(wib.exists(), "two plexes and the hint: the bitmap");
    let p = plexes(&d, &l);
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p.iter().all(|p| p["health"] == "healthy"), "{p:?}");
    assert_eq!(d.lun(&l)["health"], "healthy");
    assert_eq!(p[1]["extents"][0]["drive"], b.as_str());
    assert_eq!(
        p[1]["extents"][0]["size_bytes"], SIZE,
        "trimmed to this LUN's size"
    );
    let on_b = files(&dirs[1]);
    assert_eq!(on_b.len(), 1, "{on_b:?}");
    let name = on_b[0].file_name().unwrap().to_string_lossy().to_string();
    assert!(
        name.starts_with(&l),
        "the file takes this LUN's name: {name}"
    );
    assert_eq!(std::fs::metadata(&on_b[0]).unwrap().len(), SIZE);
    assert_good(
        &ini.command(number, &cdb::sync_cache(), &[], 0).unwrap(),
        "SYNC",
    );
    let fa = std::fs::read(&files(&dirs[0])[0]).unwrap();
    let fb = std::fs::read(&on_b[0]).unwrap();
    assert_eq!(
        fa.iter().zip(&fb).position(|(x, y)| x != y),
        None,
        "plexes equal after the AddPlex job (writes ran meanwhile, percents {percents:?})"
    );

    // A third plex through vdsctl.
    let third = simple_lun(&d, &sub, "ap-third", &c, SIZE, json!([]));
    let out = d.vdsctl(&["--json", "lun", "add-plex", &l, "--lun", "ap-third"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!(job["operation"], "add_lun_plex", "{job}");
    assert_eq!(job["state"], "succeeded", "{job}");
    let p = plexes(&d, &l);
    assert_eq!(p.len(), 3);
    let (s, _) = d.call("GET", &format!("/v1/luns/{third}"), None);
    assert!(s == 404 || s == 410);

    // RemovePlex: the plex on a over HTTP, then the one on b through vdsctl.
    assert_refused(
        d.call("DELETE", "/v1/plexes/nope", None),
        "E_INVALIDARG",
        "a malformed plex id",
    );
    assert_refused(
        d.call(
            "DELETE",
            "/v1/plexes/00000000-0000-4000-8000-000000000002",
            None,
        ),
        "VDS_E_OBJECT_NOT_FOUND",
        "an unknown plex",
    );
    let pa = p[0]["id"].as_str().unwrap().to_string();
    let (s, v) = d.call("DELETE", &format!("/v1/plexes/{pa}?wait=true"), None);
    assert_eq!(s, 204, "{v}");
    assert!(files(&dirs[0]).is_empty(), "a's extent file is freed");
    let ext = d.get(&format!("/v1/drives/{a}/extents"));
    let ranges = ext
        .as_array()
        .cloned()
        .unwrap_or_else(|| ext["items"].as_array().cloned().unwrap_or_default());
    assert!(
        ranges.iter().all(|r| r["lun"].is_null()),
        "drive a holds nothing: {ext}"
    );
    let pb = plexes(&d, &l)[0]["id"].as_str().unwrap().to_string();
    let out = d.vdsctl(&["--json", "plex", "remove", &pb]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!(job["operation"], "remove_lun_plex", "{job}");
    let out = d.vdsctl(&["plex", "remove", "not-a-uuid"]);
    assert!(
        !out.status.success(),
        "a malformed plex id is refused by vdsctl"
    );
    let p = plexes(&d, &l);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0]["extents"][0]["drive"], c.as_str());
    assert!(!wib.exists(), "one plex again: the bitmap is gone");
    assert_refused(
        d.call(
            "DELETE",
            &format!("/v1/plexes/{}", p[0]["id"].as_str().unwrap()),
            None,
        ),
        "VDS_E_PLEX_LAST_ACTIVE",
        "the last plex",
    );
    // Every byte reads back from the plex on c.
    for (i, seq) in model.iter().enumerate() {
        let r = read(&mut ini, number, i as u32 * blocks, blocks as u16);
        assert_good(&r, &format!("read of chunk {i}"));
        assert!(r.data == pattern(i, *seq), "chunk {i}: not pass {seq}");
    }

    // A failed plex: the healthy one is the last current plex and stays; the failed one goes.
    let back = simple_lun(&d, &sub, "ap-back", &a, SIZE, json!([]));
    let (s, v) = d.call(
        "POST",
        &format!("/v1/luns/{l}/plexes?wait=true"),
        Some(&json!({"lun": back})),
    );
    assert_eq!(s, 204, "{v}");
    d.ok(
        "PUT",
        &format!("/v1/drives/{a}/faults"),
        json!({"filters": [{"error": {"ops": ["read", "write", "flush"], "after": 0}}]}),
        200,
    );
    let cdb = cdb::write10(3 * blocks, blocks as u16);
    let r = ini.command(number, &cdb, &pattern(3, 99), 0).unwrap();
    assert_good(&r, "the write that meets the dead drive");
    d.wait_until(&format!("/v1/luns/{l}"), "failed_redundancy", |v| {
        v["health"] == "failed_redundancy"
    });
    let p = plexes(&d, &l);
    let healthy = p.iter().find(|p| p["health"] == "healthy").unwrap();
    let failed = p.iter().find(|p| p["status"] == "failed").unwrap();
    assert_refused(
        d.call(
            "DELETE",
            &format!("/v1/plexes/{}", healthy["id"].as_str().unwrap()),
            None,
        ),
        "VDS_E_PLEX_LAST_ACTIVE",
        "the last current plex while the other failed",
    );
    let (s, v) = d.call(
        "DELETE",
        &format!("/v1/plexes/{}?wait=true", failed["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(s, 204, "{v}");
    assert_eq!(d.lun(&l)["health"], "healthy");
    assert!(files(&dirs[0]).is_empty(), "the failed plex's file is gone");
    for (i, seq) in model.iter().enumerate() {
        let seq = if i == 3 { &99 } else { seq };
        let r = read(&mut ini, number, i as u32 * blocks, blocks as u16);
        assert_good(&r, &format!("read of chunk {i}"));
        assert!(r.data == pattern(i, *seq), "chunk {i}: not pass {seq}");
    }
}
