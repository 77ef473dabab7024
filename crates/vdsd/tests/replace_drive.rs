//! ReplaceDrive (BEHAVIOUR.md §15), end to end against the real daemon: a span LUN on drives a
//! and b and a mirror on a and c, both written through iSCSI; drive a is replaced by drive d
//! while the initiator keeps writing to both: no command fails, the ReplaceDisk job ends with
//! its percentage, drive a holds nothing (`GET /v1/drives/{a}/extents` all free, no file
//! left), every acknowledged write reads back and the mirror's plexes are byte-equal; the
//! refusals (same drive, a drive holding the mirror's other plex, malformed, unknown) change
//! nothing, and `vdsctl subsystem replace-drive` moves the extents back. Slot 108.

mod common;

use std::path::PathBuf;

use common::*;
use serde_json::{json, Value};

const CHUNK: usize = 64 << 10;

fn pattern(i: usize, seq: u32, salt: u32) -> Vec<u8> {
    let mut v = vec![0u8; CHUNK];
    for (k, b) in v.iter_mut().enumerate() {
        *b = (k as u32)
            .wrapping_mul(2_654_435_761)
            .wrapping_add(i as u32 * 977 + seq * 131 + salt * 7919)
            .rotate_left(3) as u8;
    }
    v
}

fn list(v: Value) -> Vec<Value> {
    v.as_array()
        .cloned()
        .unwrap_or_else(|| v["items"].as_array().cloned().unwrap_or_default())
}

/// One LUN under the load: its number, its chunks and the last pass written to each.
struct Lun {
    id: String,
    number: u64,
    salt: u32,
    model: Vec<u32>,
}

impl Lun {
    fn write(&mut self, ini: &mut vds_testkit::Initiator, i: usize, seq: u32) {
        let blocks = (CHUNK / 512) as u32;
        let cdb = cdb::write10(i as u32 * blocks, blocks as u16);
        let r = ini
            .command(self.number, &cdb, &pattern(i, seq, self.salt), 0)
            .expect("WRITE(10)");
        assert_good(&r, &format!("LUN {} chunk {i} pass {seq}", self.id));
        self.model[i] = seq;
    }

    fn check(&self, ini: &mut vds_testkit::Initiator) {
        let blocks = (CHUNK / 512) as u16;
        for (i, seq) in self.model.iter().enumerate() {
            let r = read(ini, self.number, i as u32 * blocks as u32, blocks);
            assert_good(&r, &format!("read of chunk {i}"));
            assert!(
                r.data == pattern(i, *seq, self.salt),
                "LUN {} chunk {i}: not pass {seq}",
                self.id
            );
        }
    }
}

#[test]
fn a_drive_is_replaced_under_writes_and_left_empty() {
    let mut d = Daemon::start(108, Opts::default());
    let sub = d.subsystem();
    let target = d.target();
    let root = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| {
            let p = root.path().join(n);
            std::fs::create_dir(&p).unwrap();
            p
        })
        .collect();
    let a = add_drive(&d, &sub, &dirs[0], "rd-a");
    let b = add_drive(&d, &sub, &dirs[1], "rd-b");
    let c = add_drive(&d, &sub, &dirs[2], "rd-c");
    let dd = add_drive(&d, &sub, &dirs[3], "rd-d");
    let mut luns = Vec::new();
    for (k, (ty, drives, size)) in [
        ("span", json!([a, b]), 32u64 << 20),
        ("mirror", json!([a, c]), 16u64 << 20),
    ]
    .into_iter()
    .enumerate()
    {
        let v = d.ok(
            "POST",
            &format!("/v1/subsystems/{sub}/luns?wait=true"),
            json!({"size_bytes": size, "friendly_name": format!("rd-{ty}"), "type": ty,
                   "drives": drives, "targets": [target]}),
            201,
        );
        luns.push(Lun {
            id: v["id"].as_str().unwrap().to_string(),
            number: v["lun_numbers"][&target].as_u64().unwrap(),
            salt: k as u32,
            model: vec![0; size as usize / CHUNK],
        });
    }
    let mut ini = d.login(0, 1);
    for _ in 0..4 {
        if tur(&mut ini, luns[0].number).status == 0 && tur(&mut ini, luns[1].number).status == 0 {
            break;
        }
    }
    for l in &mut luns {
        for i in 0..l.model.len() {
            l.write(&mut ini, i, 1);
        }
    }

    // Refusals first; nothing changes.
    let url = format!("/v1/subsystems/{sub}/replace-drive");
    let call = |body: Value| d.call("POST", &url, Some(&body));
    assert_refused(
        call(json!({"old": a, "new": a})),
        "E_INVALIDARG",
        "the same drive",
    );
    assert_refused(
        call(json!({"old": a, "new": c})),
        "E_INVALIDARG",
        "a drive holding the mirror's other plex",
    );
    assert_refused(
        call(json!({"old": a, "new": "x"})),
        "E_INVALIDARG",
        "a malformed id",
    );
    assert_refused(call(json!({"old": a})), "E_INVALIDARG", "new missing");
    assert_refused(
        call(json!({"old": a, "new": "00000000-0000-4000-8000-000000000003"})),
        "VDS_E_OBJECT_NOT_FOUND",
        "an unknown drive",
    );
    assert_eq!(files(&dirs[0]).len(), 2, "a still holds both LUNs' extents");
    assert!(files(&dirs[3]).is_empty(), "nothing made on d");

    // The replacement, under writes to both LUNs.
    let (s, job) = call(json!({"old": a, "new": dd}));
    assert_eq!(s, 202, "{job}");
    assert_eq!(job["operation"], "replace_disk", "{job}");
    let job_url = format!("/v1/jobs/{}", job["id"].as_str().unwrap());
    let mut seq = 2;
    let mut writes_during = 0;
    let end = loop {
        let j = d.get(&job_url);
        if j["state"] != "running" {
            break j;
        }
        for l in &mut luns {
            for i in (0..l.model.len()).step_by(13) {
                l.write(&mut ini, (i + seq as usize) % l.model.len(), seq);
                writes_during += 1;
            }
        }
        seq += 1;
        assert!(seq < 100_000, "the job does not end");
    };
    assert_eq!(end["state"], "succeeded", "{end}");
    assert_eq!(end["percent"], 100, "{end}");
    assert!(writes_during > 0, "writes ran while the job did");

    let ext = list(d.get(&format!("/v1/drives/{a}/extents")));
    assert!(
        ext.iter().all(|r| r["lun"].is_null()),
        "drive a holds nothing: {ext:?}"
    );
    assert!(
        files(&dirs[0]).is_empty(),
        "no file left on a: {:?}",
        files(&dirs[0])
    );
    assert_eq!(files(&dirs[3]).len(), 2, "d holds both moved extents");
    for l in &luns {
        let lun = d.lun(&l.id);
        assert_eq!(lun["health"], "healthy", "{lun}");
        let plexes = list(d.get(&format!("/v1/luns/{}/plexes", l.id)));
        assert!(
            plexes
                .iter()
                .flat_map(|p| p["extents"].as_array().cloned().unwrap_or_default())
                .all(|x| x["drive"] != a.as_str()),
            "{plexes:?}"
        );
    }
    for l in &luns {
        l.check(&mut ini);
    }
    assert_good(
        &ini.command(luns[1].number, &cdb::sync_cache(), &[], 0)
            .unwrap(),
        "SYNC",
    );
    let on_c = std::fs::read(&files(&dirs[2])[0]).unwrap();
    let mirror_on_d = files(&dirs[3])
        .into_iter()
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&luns[1].id)
        })
        .unwrap();
    let on_d = std::fs::read(mirror_on_d).unwrap();
    assert_eq!(
        on_c.iter().zip(&on_d).position(|(x, y)| x != y),
        None,
        "the mirror's plexes differ"
    );

    // And back through vdsctl.
    let out = d.vdsctl(&[
        "--json",
        "subsystem",
        "replace-drive",
        &sub,
        "--old",
        "rd-d",
        "--new",
        "rd-a",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(files(&dirs[3]).is_empty());
    assert_eq!(files(&dirs[0]).len(), 2);
    let job: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!(job["operation"], "replace_disk", "{job}");
    for l in &luns {
        l.check(&mut ini);
    }
    // The moved layout is what the store holds: a restart opens it.
    drop(ini);
    assert_eq!(d.terminate(), Some(0));
    d.restart();
    let mut ini = d.login(0, 1);
    for l in &luns {
        assert_eq!(d.lun(&l.id)["health"], "healthy");
        for _ in 0..3 {
            if tur(&mut ini, l.number).status == 0 {
                break;
            }
        }
        l.check(&mut ini);
    }
}
