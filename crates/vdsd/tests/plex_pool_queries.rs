//! IVdsLunPlex::QueryHints / ApplyHints and IVdsStoragePool::QueryDriveExtents over HTTP and
//! vdsctl against the real daemon (BEHAVIOUR.md §15): a mirror on two `dir` drives; its plexes
//! answer the LUN's hints in VDS_HINTS form, hints applied through one plex are the LUN's and
//! the other plex's, a VDS_HINTS2-only member is refused by name (and by vdsctl), an unknown
//! plex is not found and a deleted LUN's plex is deleted (slot 102). A pool's drive extents
//! over HTTP and `vdsctl pool drive-extents`: every drive's ranges, as its own extents, adding
//! up to its capacity (slot 103).

mod common;

use std::path::Path;

use common::*;
use serde_json::{json, Value};

fn add_drive(d: &Daemon, sub: &str, path: &Path, name: &str) -> String {
    let v = d.ok(
        "POST",
        &format!("/v1/subsystems/{sub}/drives?wait=true"),
        json!({"kind": "dir", "path": path, "friendly_name": name}),
        201,
    );
    v["id"].as_str().expect("drive id").to_string()
}

fn plex_ids(d: &Daemon, lun: &str) -> Vec<String> {
    let v = d.get(&format!("/v1/luns/{lun}/plexes"));
    let items = v
        .as_array()
        .cloned()
        .unwrap_or_else(|| v["items"].as_array().cloned().unwrap_or_default());
    items
        .iter()
        .map(|p| p["id"].as_str().expect("plex id").to_string())
        .collect()
}

/// The VDS_HINTS members, as a plex answers them.
const V1: [&str; 17] = [
    "expected_maximum_size",
    "optimal_read_size",
    "optimal_read_alignment",
    "optimal_write_size",
    "optimal_write_alignment",
    "maximum_drive_count",
    "stripe_size",
    "fast_crash_recovery_required",
    "mostly_reads",
    "optimize_for_sequential_reads",
    "optimize_for_sequential_writes",
    "remap_enabled",
    "read_back_verify_enabled",
    "write_through_caching_enabled",
    "hardware_checksum_enabled",
    "is_yankable",
    "rebuild_priority",
];

/// A plex's hints are its LUN's VDS_HINTS members, and nothing of VDS_HINTS2.
fn same_as_lun(plex: &Value, lun: &Value) {
    for k in V1 {
        assert_eq!(plex[k], lun[k], "{k}: plex {plex} LUN {lun}");
    }
    for k in ["write_caching_enabled", "bus_type", "read_caching_enabled"] {
        assert!(
            plex.get(k).is_none(),
            "{k} is not a VDS_HINTS member: {plex}"
        );
    }
}

#[test]
fn plex_hints_are_the_luns_over_http_and_vdsctl() {
    let d = Daemon::start(102, Opts::default());
    let sub = d.subsystem();
    let root = tempfile::tempdir().unwrap();
    let (pa, pb) = (root.path().join("a"), root.path().join("b"));
    std::fs::create_dir_all(&pa).unwrap();
    std::fs::create_dir_all(&pb).unwrap();
    let a = add_drive(&d, &sub, &pa, "ph-a");
    let b = add_drive(&d, &sub, &pb, "ph-b");
    let v = d.ok(
        "POST",
        &format!("/v1/subsystems/{sub}/luns?wait=true"),
        json!({"size_bytes": 4 << 20, "friendly_name": "ph-mirror", "type": "mirror",
               "drives": [a, b]}),
        201,
    );
    let lun = v["id"].as_str().unwrap().to_string();
    let p = plex_ids(&d, &lun);
    assert_eq!(p.len(), 2, "two plexes");

    // QueryHints: the LUN's, VDS_HINTS bits of the mask only.
    let got = d.get(&format!("/v1/plexes/{}/hints", p[0]));
    same_as_lun(&got, &d.get(&format!("/v1/luns/{lun}/hints")));
    assert_eq!(got["hint_mask"], 0x51, "{got}");

    // ApplyHints through plex 0: the LUN's and plex 1's.
    let put = d.ok(
        "PUT",
        &format!("/v1/plexes/{}/hints", p[0]),
        json!({"read_back_verify_enabled": true, "rebuild_priority": 9}),
        200,
    );
    assert_eq!(put["read_back_verify_enabled"], true, "{put}");
    assert_eq!(put["hint_mask"], 0x10, "{put}");
    let lh = d.get(&format!("/v1/luns/{lun}/hints"));
    assert_eq!(lh["read_back_verify_enabled"], true, "{lh}");
    assert_eq!(lh["rebuild_priority"], 9, "{lh}");
    same_as_lun(&d.get(&format!("/v1/plexes/{}/hints", p[1])), &lh);

    // Refusals change nothing: a VDS_HINTS2-only member, an unknown member, a bad value.
    let r = d.call(
        "PUT",
        &format!("/v1/plexes/{}/hints", p[1]),
        Some(&json!({"write_caching_enabled": false, "rebuild_priority": 3})),
    );
    assert_error(&r, 400, "0x80070057", "E_INVALIDARG");
    assert!(
        r.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("write_caching_enabled"),
        "{}",
        r.1
    );
    let r = d.call(
        "PUT",
        &format!("/v1/plexes/{}/hints", p[1]),
        Some(&json!({"bogus": 1})),
    );
    assert_error(&r, 400, "0x80070057", "E_INVALIDARG");
    let r = d.call(
        "PUT",
        &format!("/v1/plexes/{}/hints", p[1]),
        Some(&json!({"rebuild_priority": 99})),
    );
    assert_error(&r, 400, "0x80070057", "E_INVALIDARG");
    assert_eq!(
        d.get(&format!("/v1/luns/{lun}/hints")),
        lh,
        "nothing changed"
    );

    // vdsctl.
    let out = d.vdsctl(&["--json", "plex", "hints", &p[1]]);
    assert!(out.status.success(), "{out:?}");
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["rebuild_priority"], 9, "{shown}");
    let out = d.vdsctl(&[
        "--json",
        "plex",
        "hints",
        &p[1],
        "--set",
        "write_through_caching_enabled=true",
    ]);
    assert!(out.status.success(), "{out:?}");
    let lh = d.get(&format!("/v1/luns/{lun}/hints"));
    assert_eq!(lh["write_through_caching_enabled"], true, "{lh}");
    let out = d.vdsctl(&["plex", "hints", &p[1], "--set", "bus_type=sas"]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bus_type"),
        "{out:?}"
    );
    let out = d.vdsctl(&["plex", "hints", "not-a-uuid"]);
    assert!(!out.status.success(), "{out:?}");

    // Unknown plex; a deleted LUN's plex.
    let never = "0b6e4ad6-36d6-4c4b-9d0f-0a1b2c3d4e5f";
    let r = d.call("GET", &format!("/v1/plexes/{never}/hints"), None);
    assert_error(&r, 404, "0x80042405", "VDS_E_OBJECT_NOT_FOUND");
    let (s, v) = d.call("DELETE", &format!("/v1/luns/{lun}"), None);
    assert_eq!(s, 204, "DELETE: {v}");
    let r = d.call("GET", &format!("/v1/plexes/{}/hints", p[0]), None);
    assert_error(&r, 410, "0x8004240B", "VDS_E_OBJECT_DELETED");
    let r = d.call(
        "PUT",
        &format!("/v1/plexes/{}/hints", p[1]),
        Some(&json!({"rebuild_priority": 1})),
    );
    assert_error(&r, 410, "0x8004240B", "VDS_E_OBJECT_DELETED");
}

/// The ranges of `drive` in a pool's answer: (size, used).
fn of_drive(v: &Value, drive: &str) -> Vec<(u64, bool)> {
    v.as_array()
        .expect("a list")
        .iter()
        .filter(|r| r["drive"] == drive)
        .map(|r| {
            (
                r["size_bytes"].as_u64().unwrap(),
                r["used"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn pool_drive_extents_over_http_and_vdsctl() {
    let d = Daemon::start(103, Opts::default());
    let sub = d.subsystem();
    let root = tempfile::tempdir().unwrap();
    let img = root.path().join("a.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(16 << 20)
        .unwrap();
    let a = d.ok(
        "POST",
        &format!("/v1/subsystems/{sub}/drives?wait=true"),
        json!({"kind": "block", "path": img, "friendly_name": "pe-a"}),
        201,
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let pb = root.path().join("b");
    std::fs::create_dir_all(&pb).unwrap();
    let b = add_drive(&d, &sub, &pb, "pe-b");
    let pool = d.ok(
        "POST",
        &format!("/v1/subsystems/{sub}/pools"),
        json!({"friendly_name": "pe-pool", "drives": [a, b]}),
        201,
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    d.ok(
        "POST",
        &format!("/v1/subsystems/{sub}/luns?wait=true"),
        json!({"size_bytes": 3 << 20, "friendly_name": "pe-span", "type": "span",
               "drives": [a, b]}),
        201,
    );
    let got = d.get(&format!("/v1/pools/{pool}/drive-extents"));
    for drive in [&a, &b] {
        let mine = of_drive(&got, drive);
        let own = d.get(&format!("/v1/drives/{drive}/extents"));
        let own: Vec<(u64, bool)> = own
            .as_array()
            .cloned()
            .unwrap_or_else(|| own["items"].as_array().cloned().unwrap_or_default())
            .iter()
            .map(|r| (r["size_bytes"].as_u64().unwrap(), r["free"] == false))
            .collect();
        assert_eq!(mine, own, "drive {drive}: {got}");
        assert!(
            mine.iter().any(|r| r.1),
            "drive {drive} holds the span: {got}"
        );
        let cap = d.get(&format!("/v1/drives/{drive}"))["size_bytes"]
            .as_u64()
            .unwrap();
        assert_eq!(mine.iter().map(|r| r.0).sum::<u64>(), cap, "{got}");
    }
    let out = d.vdsctl(&["--json", "pool", "drive-extents", &pool]);
    assert!(out.status.success(), "{out:?}");
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown, got);
    let out = d.vdsctl(&["pool", "drive-extents", &pool]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&a), "{out:?}");
    let never = "0b6e4ad6-36d6-4c4b-9d0f-0a1b2c3d4e5f";
    let r = d.call("GET", &format!("/v1/pools/{never}/drive-extents"), None);
    assert_error(&r, 404, "0x80042405", "VDS_E_OBJECT_NOT_FOUND");
}
