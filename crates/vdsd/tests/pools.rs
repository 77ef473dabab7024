//! Pools, the exact maxima and extend/shrink of extent-backed LUNs on the wire (BEHAVIOUR.md
//! §15): a named pool's figures against `GET /v1/drives/{id}/extents`, a LUN created in it;
//! span, stripe and mirror LUNs on `block` drives written through iSCSI, extended (the data
//! before the old end kept, the new space reading zero even where an earlier LUN wrote) and
//! shrunk, with `max-extend-size` and `max-lun-size` exact after each: one block more answers
//! VDS_E_NOT_ENOUGH_SPACE; `vdsctl pool` and `max-lun-size`. Slot 100.

mod common;

use std::path::Path;

use common::*;
use serde_json::{json, Value};

const MIB: u64 = 1 << 20;

fn block_drive(d: &Daemon, sub: &str, root: &Path, name: &str, size: u64) -> String {
    let p = root.join(name);
    std::fs::File::create(&p).unwrap().set_len(size).unwrap();
    let v = d.ok(
        "POST",
        &format!("/v1/subsystems/{sub}/drives"),
        json!({"kind": "block", "path": p}),
        201,
    );
    v["id"].as_str().expect("drive id").to_string()
}

/// A pool's figures must be the sums over its drives of their capacity and of their used and
/// free ranges.
fn check_figures(d: &Daemon, pool: &str) -> Value {
    let p = d.get(&format!("/v1/pools/{pool}"));
    let (mut total, mut used, mut free) = (0, 0, 0);
    for id in p["drives"].as_array().unwrap() {
        let id = id.as_str().unwrap();
        total += d.get(&format!("/v1/drives/{id}"))["size_bytes"]
            .as_u64()
            .unwrap();
        for r in d
            .get(&format!("/v1/drives/{id}/extents"))
            .as_array()
            .unwrap()
        {
            let n = r["size_bytes"].as_u64().unwrap();
            if r["free"] == true {
                free += n;
            } else {
                used += n;
            }
        }
    }
    assert_eq!(p["total_managed_space"], total, "{p}");
    assert_eq!(p["consumed_space"], used, "{p}");
    assert_eq!(p["remaining_free_space"], free, "{p}");
    assert_eq!(p["provisioned_space"], used, "{p}");
    assert_eq!(p["overcommitted"], false, "{p}");
    p
}

fn job_ok(d: &Daemon, method: &str, path: &str, body: Value) -> Value {
    let (s, v) = d.call(method, path, Some(&body));
    assert!(s == 200 || s == 201, "{method} {path} {body}: {s} {v}");
    v
}

fn not_enough_space(d: &Daemon, method: &str, path: &str, body: Value) {
    let got = d.call(method, path, Some(&body));
    assert_eq!(
        got.1["error"]["name"], "VDS_E_NOT_ENOUGH_SPACE",
        "{method} {path} {body}: {got:?}"
    );
}

/// Reads `bytes` from `lba` (in 256 KiB commands), past any unit attention.
fn read_all(ini: &mut vds_testkit::Initiator, number: u64, lba: u64, bytes: u64) -> Vec<u8> {
    for _ in 0..4 {
        if tur(ini, number).status == 0 {
            break;
        }
    }
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes {
        let n = (bytes - at).min(256 << 10);
        let r = read(
            ini,
            number,
            ((lba * 512 + at) / 512) as u32,
            (n / 512) as u16,
        );
        assert_good(&r, &format!("read at {}", lba * 512 + at));
        out.extend_from_slice(&r.data);
        at += n;
    }
    out
}

fn write_all(ini: &mut vds_testkit::Initiator, number: u64, data: &[u8]) {
    for (i, chunk) in data.chunks(256 << 10).enumerate() {
        let r = write_fua(ini, number, (i * (256 << 10) / 512) as u32, chunk);
        assert_good(&r, &format!("write of chunk {i}"));
    }
}

fn capacity_of(ini: &mut vds_testkit::Initiator, number: u64) -> u64 {
    for _ in 0..4 {
        let r = capacity(ini, number);
        if r.status == 0 {
            return capacity_bytes(&r);
        }
    }
    panic!("READ CAPACITY never answered GOOD");
}

/// Creates a LUN of `body`, fills it with a pattern through iSCSI, extends it to the most an
/// extend can add (one block more refused), checks old data and zeroed new space, shrinks it
/// and checks the data again; deletes it.
fn grow_and_shrink(d: &Daemon, sub: &str, target: &str, body: Value, seed: u8) {
    let mut body = body;
    body["targets"] = json!([target]);
    let lun = job_ok(
        d,
        "POST",
        &format!("/v1/subsystems/{sub}/luns?wait=true"),
        body,
    );
    let id = lun["id"].as_str().unwrap().to_string();
    let number = lun["lun_numbers"][target].as_u64().unwrap();
    let size = lun["size_bytes"].as_u64().unwrap();
    let mut ini = d.login(0, seed);
    let data = pattern(seed, size as usize);
    write_all(&mut ini, number, &data);

    let max = d.get(&format!("/v1/luns/{id}/max-extend-size"))["size_bytes"]
        .as_u64()
        .unwrap();
    assert!(max > 0, "{lun}");
    not_enough_space(
        d,
        "POST",
        &format!("/v1/luns/{id}/extend?wait=true"),
        json!({"bytes": max + 512}),
    );
    let grown = job_ok(
        d,
        "POST",
        &format!("/v1/luns/{id}/extend?wait=true"),
        json!({"bytes": max}),
    );
    assert_eq!(grown["size_bytes"], size + max, "{grown}");
    assert_eq!(capacity_of(&mut ini, number), size + max);
    assert!(
        read_all(&mut ini, number, 0, size) == data,
        "{}: data before the old end changed",
        lun["type"]
    );
    let new = read_all(&mut ini, number, size / 512, max.min(8 * MIB));
    assert!(
        new.iter().all(|b| *b == 0),
        "{}: the new space does not read zero",
        lun["type"]
    );
    // Nothing more fits on its drives now.
    let (_, v) = d.call("GET", &format!("/v1/luns/{id}/max-extend-size"), None);
    assert_eq!(v["error"]["name"], "VDS_E_NOT_ENOUGH_SPACE", "{v}");

    // Shrink back below the old end: what is left is as written.
    let cut = max + MIB;
    let shrunk = job_ok(
        d,
        "POST",
        &format!("/v1/luns/{id}/shrink?wait=true"),
        json!({"bytes": cut}),
    );
    let left = shrunk["size_bytes"].as_u64().unwrap();
    // At least `cut` bytes go (a stripe gives back whole stripes of every column).
    assert!(
        left <= size - MIB && left + (256 << 10) >= size - MIB,
        "{shrunk}"
    );
    assert_eq!(capacity_of(&mut ini, number), left);
    assert!(read_all(&mut ini, number, 0, left) == data[..left as usize]);
    // The space given back is free again: the LUN can grow by at least as much.
    let again = d.get(&format!("/v1/luns/{id}/max-extend-size"))["size_bytes"]
        .as_u64()
        .unwrap();
    assert!(again >= cut - 2 * MIB, "{again} after giving back {cut}");
    drop(ini);
    let (s, v) = d.call("DELETE", &format!("/v1/luns/{id}"), None);
    assert_eq!(s, 204, "{v}");
}

#[test]
fn pools_maxima_and_resizes_of_span_stripe_and_mirror_luns() {
    let d = Daemon::start(100, Opts::default());
    let sub = d.subsystem();
    let target = d.target();
    let root = tempfile::tempdir().unwrap();
    let a = block_drive(&d, &sub, root.path(), "a.img", 33 * MIB);
    let b = block_drive(&d, &sub, root.path(), "b.img", 25 * MIB);
    let c = block_drive(&d, &sub, root.path(), "c.img", 21 * MIB);

    // The primordial pool holds the three drives; a named pool two of them.
    let pools = d.get(&format!("/v1/subsystems/{sub}/pools"));
    let prim = pools[0]["id"].as_str().unwrap().to_string();
    assert_eq!(pools[0]["type"], "primordial", "{pools}");
    assert_eq!(pools[0]["drives"], json!([a, b, c]));
    check_figures(&d, &prim);
    let named = d.ok(
        "POST",
        &format!("/v1/subsystems/{sub}/pools"),
        json!({"friendly_name": "pair", "drives": [a, b], "default_type": "mirror",
               "attributes": {"raid_type": "raid1", "no_single_point_of_failure": true}}),
        201,
    );
    let pool = named["id"].as_str().unwrap().to_string();
    assert_eq!(named["attributes"]["mask"], 0x11, "{named}");
    // A body that is not one: nothing made.
    let bad = d.call(
        "POST",
        &format!("/v1/subsystems/{sub}/pools"),
        Some(&json!({"friendly_name": "x", "drives": [c], "colour": 1})),
    );
    assert_error(&bad, 400, "0x80070057", "E_INVALIDARG");
    assert_eq!(
        d.get(&format!("/v1/subsystems/{sub}/pools"))
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // The largest mirror in the pool, exactly.
    let max = d.get(&format!("/v1/pools/{pool}/max-lun-size"))["size_bytes"]
        .as_u64()
        .unwrap();
    assert_eq!(max, 24 * MIB, "the smaller drive less its label area");
    not_enough_space(
        &d,
        "POST",
        &format!("/v1/pools/{pool}/luns?wait=true"),
        json!({"size_bytes": max + 512}),
    );
    let lun = job_ok(
        &d,
        "POST",
        &format!("/v1/pools/{pool}/luns?wait=true"),
        json!({"size_bytes": max}),
    );
    assert_eq!(lun["type"], "mirror", "{lun}");
    let p = check_figures(&d, &pool);
    assert_eq!(p["consumed_space"], 2 * max);
    check_figures(&d, &prim);
    let listed = d.get(&format!("/v1/pools/{pool}/luns"));
    assert_eq!(listed[0]["id"], lun["id"]);
    let (_, v) = d.call("DELETE", &format!("/v1/pools/{pool}"), None);
    assert_eq!(v["error"]["name"], "VDS_E_ASSOCIATED_LUNS_EXIST", "{v}");
    let (s, v) = d.call(
        "DELETE",
        &format!("/v1/luns/{}", lun["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(s, 204, "{v}");

    // Automagic: fault_tolerant on two drives is a mirror, non_fault_tolerant a stripe.
    for (t, want) in [
        ("fault_tolerant", "mirror"),
        ("non_fault_tolerant", "stripe"),
    ] {
        let l = job_ok(
            &d,
            "POST",
            &format!("/v1/subsystems/{sub}/luns?wait=true"),
            json!({"size_bytes": 4 * MIB, "type": t, "drives": [a, c]}),
        );
        assert_eq!(l["type"], want, "{l}");
        let (s, v) = d.call(
            "DELETE",
            &format!("/v1/luns/{}", l["id"].as_str().unwrap()),
            None,
        );
        assert_eq!(s, 204, "{v}");
    }

    // Span (grown onto another drive), stripe and mirror: written, grown, shrunk.
    grow_and_shrink(
        &d,
        &sub,
        &target,
        json!({"size_bytes": 6 * MIB, "type": "span", "drives": [a, b]}),
        1,
    );
    grow_and_shrink(
        &d,
        &sub,
        &target,
        json!({"size_bytes": 8 * MIB, "type": "stripe", "drives": [a, b, c], "stripe_size": 65536}),
        2,
    );
    grow_and_shrink(
        &d,
        &sub,
        &target,
        json!({"size_bytes": 5 * MIB, "type": "mirror", "drives": [b, c]}),
        3,
    );
    // A span grows onto a drive of the caller's choice.
    let l = job_ok(
        &d,
        "POST",
        &format!("/v1/subsystems/{sub}/luns?wait=true"),
        json!({"size_bytes": 4 * MIB, "type": "span", "drives": [a]}),
    );
    let id = l["id"].as_str().unwrap();
    let onto = d.get(&format!("/v1/luns/{id}/max-extend-size?drives={c}"))["size_bytes"]
        .as_u64()
        .unwrap();
    assert_eq!(onto, 20 * MIB, "all of c");
    not_enough_space(
        &d,
        "POST",
        &format!("/v1/luns/{id}/extend?wait=true"),
        json!({"bytes": onto + 512, "drives": [c]}),
    );
    let g = job_ok(
        &d,
        "POST",
        &format!("/v1/luns/{id}/extend?wait=true"),
        json!({"bytes": onto, "drives": [c]}),
    );
    assert_eq!(g["size_bytes"], 24 * MIB, "{g}");
    let plexes = d.get(&format!("/v1/luns/{id}/plexes"));
    let on: Vec<String> = plexes[0]["extents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["drive"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(on, vec![a.clone(), c.clone()], "{plexes}");

    // The CLI: pools and the maxima.
    let out = d.vdsctl(&["--json", "pool", "list"]);
    assert!(out.status.success(), "{out:?}");
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    let out = d.vdsctl(&["--json", "pool", "show", "pair"]);
    assert!(out.status.success(), "{out:?}");
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["id"], pool.as_str());
    let out = d.vdsctl(&[
        "--json",
        "subsystem",
        "max-lun-size",
        &sub,
        "--type",
        "simple",
        "--drives",
        &b,
    ]);
    assert!(out.status.success(), "{out:?}");
    let m: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["size_bytes"], 24 * MIB, "{m}");
    let (s, v) = d.call("DELETE", &format!("/v1/luns/{id}"), None);
    assert_eq!(s, 204, "{v}");
    let json_of = |args: &[&str]| -> Value {
        let out = d.vdsctl(args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    };
    let made = json_of(&[
        "--json",
        "pool",
        "create",
        "solo",
        "--drives",
        &c,
        "--default-type",
        "simple",
        "--raid-type",
        "raid0",
        "--stripe-size",
        "64KiB",
    ]);
    assert_eq!(made["attributes"]["mask"], 0x801, "{made}");
    let max = json_of(&["--json", "pool", "max-lun-size", "solo"]);
    assert_eq!(max["size_bytes"], 20 * MIB, "{max}");
    let lun = json_of(&[
        "--json", "lun", "create", "--pool", "solo", "--size", "4MiB", "--name", "in-solo",
    ]);
    assert_eq!(
        (&lun["type"], &lun["size_bytes"]),
        (&json!("simple"), &json!(4 * MIB))
    );
    let on = json_of(&["--json", "pool", "luns", "solo"]);
    assert_eq!(on[0]["friendly_name"], "in-solo", "{on}");
    let ds = json_of(&["--json", "pool", "drives", "solo"]);
    assert_eq!(ds[0]["id"], c.as_str(), "{ds}");
    let more = json_of(&["--json", "lun", "max-extend-size", "in-solo"]);
    assert_eq!(more["size_bytes"], 16 * MIB, "{more}");
    let out = d.vdsctl(&["pool", "delete", "solo"]);
    assert!(!out.status.success(), "a pool with a LUN is kept");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("VDS_E_ASSOCIATED_LUNS_EXIST"),
        "{out:?}"
    );
    json_of(&["lun", "delete", "in-solo"]);
    json_of(&["pool", "delete", "solo"]);
    let out = d.vdsctl(&["pool", "delete", "pair"]);
    assert!(out.status.success(), "{out:?}");
    let (_, v) = d.call("GET", &format!("/v1/pools/{pool}"), None);
    assert_eq!(v["error"]["name"], "VDS_E_OBJECT_DELETED", "{v}");
}
