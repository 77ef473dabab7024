//! Drives through the real daemon (BEHAVIOUR.md §15): `dir` and `block` drives added over
//! HTTP and with the built `vdsctl`, their labels on disk, the refusals (data dir, foreign data
//! without force, a drive in use), the hot-spare flag, remove, and everything after a restart.
//! Slot 63.

mod common;

use std::os::unix::fs::FileExt;
use std::process::Output;

use common::*;
use serde_json::{json, Value};

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn json_out(o: &Output) -> Value {
    assert_eq!(code(o), 0, "{}", text(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

#[test]
fn drives_are_added_flagged_removed_and_restored() {
    let mut d = Daemon::start(63, Opts::default());
    let sub = d.subsystem();
    let outside = tempfile::tempdir().unwrap();
    let dir = outside.path().join("d1");
    std::fs::create_dir(&dir).unwrap();
    let img = outside.path().join("disk.img");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&img)
        .unwrap();
    f.set_len(32 << 20).unwrap();

    // A dir drive over HTTP: 201, Location, the label file.
    let (s, a, loc) = d.call_full(
        "POST",
        &format!("/v1/subsystems/{sub}/drives"),
        Some(&json!({"kind": "dir", "path": dir.display().to_string(), "friendly_name": "d1"})),
    );
    assert_eq!(s, 201, "{a}");
    let a_id = a["id"].as_str().unwrap().to_string();
    assert_eq!(loc.as_deref(), Some(format!("/v1/drives/{a_id}").as_str()));
    assert_eq!(
        (a["kind"].as_str(), a["slot_number"].as_i64()),
        (Some("dir"), Some(1))
    );
    let label = std::fs::read(dir.join(".vds-drive")).unwrap();
    assert_eq!(&label[..8], b"VDSDRIVE");

    // A block drive on a file with foreign data in its first MiB: refused, then forced,
    // through vdsctl.
    f.write_all_at(b"\x55\xaa", 510).unwrap();
    let path = img.display().to_string();
    let o = d.vdsctl(&["drive", "add", &path, "--kind", "block"]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(text(&o).contains("VDS_E_DEVICE_IN_USE"), "{}", text(&o));
    let mut mbr = [0u8; 2];
    f.read_exact_at(&mut mbr, 510).unwrap();
    assert_eq!(mbr, *b"\x55\xaa", "a refused add writes nothing");
    let b = json_out(&d.vdsctl(&[
        "--json", "drive", "add", &path, "--kind", "block", "--force",
    ]));
    let b_id = b["id"].as_str().unwrap().to_string();
    assert_eq!(b["kind"], "block");
    assert_eq!(b["size_bytes"].as_u64(), Some(31 << 20));
    let mut head = [0u8; 8];
    f.read_exact_at(&mut head, 0).unwrap();
    assert_eq!(&head, b"VDSDRIVE");

    // The data dir is the array's own.
    let data = d.data_dir().display().to_string();
    let (s, e) = d.call(
        "POST",
        &format!("/v1/subsystems/{sub}/drives"),
        Some(&json!({"kind": "dir", "path": data})),
    );
    assert_eq!(
        (s, e["error"]["name"].as_str()),
        (403, Some("E_ACCESSDENIED")),
        "{e}"
    );
    let (s, e) = d.call(
        "POST",
        &format!("/v1/subsystems/{sub}/drives"),
        Some(&json!({"kind": "tape", "path": data})),
    );
    assert_eq!(
        (s, e["error"]["name"].as_str()),
        (400, Some("E_INVALIDARG")),
        "{e}"
    );

    // Hot spare through vdsctl, then the listing shows both drives with their kinds.
    let spare = json_out(&d.vdsctl(&["--json", "drive", "flags", &b_id, "--hotspare", "true"]));
    assert_eq!(spare["flags"], json!(["hotspare"]));
    let listed = json_out(&d.vdsctl(&["--json", "drive", "list"]));
    assert_eq!(listed.as_array().unwrap().len(), 3, "{listed}");

    // Restored after a restart, kinds and flags included.
    let before = d.get(&format!("/v1/subsystems/{sub}/drives"));
    d.terminate();
    d.restart();
    assert_eq!(d.get(&format!("/v1/subsystems/{sub}/drives")), before);

    // Remove: the label goes, the id answers DELETED.
    let o = d.vdsctl(&["drive", "remove", "d1"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(!dir.join(".vds-drive").exists());
    let (s, e) = d.call("GET", &format!("/v1/drives/{a_id}"), None);
    assert_eq!(
        (s, e["error"]["name"].as_str()),
        (410, Some("VDS_E_OBJECT_DELETED")),
        "{e}"
    );
    let (s, _) = d.call("DELETE", &format!("/v1/drives/{b_id}"), None);
    assert_eq!(s, 204);
    f.read_exact_at(&mut head, 0).unwrap();
    assert_eq!(head, [0u8; 8], "the block label is wiped");
}
