//! Drives (BEHAVIOUR.md §15): `dir` and `block` drives added at a caller's path and labelled,
//! the placement refusals, bus and slot numbers, remove (only when empty; the label wiped,
//! a tombstone left), the hot-spare flag, and everything restored after a restart.

use std::os::unix::fs::FileExt;
use std::path::Path;

use uuid::Uuid;
use vds_backstore::label::{self, Found, Medium, LABEL_AREA};
use vds_model::{DriveFlag, DriveKind, EventKind, Hresult, ObjectKind};

use super::{drain, Fixture};
use crate::{Command, Outcome};

fn add(
    f: &Fixture,
    kind: &str,
    path: &Path,
    force: bool,
) -> Result<vds_model::Drive, crate::VdsError> {
    f.p.apply(Command::AddDrive {
        subsystem: f.subsystem(),
        kind: kind.into(),
        path: path.display().to_string(),
        friendly_name: None,
        force,
    })
    .map(|o| match o {
        Outcome::Drive(d) => d,
        o => panic!("{o:?}"),
    })
}

fn drives(f: &Fixture) -> Vec<vds_model::Drive> {
    match f.ok(Command::ListDrives { subsystem: None }) {
        Outcome::Drives(d) => d,
        o => panic!("{o:?}"),
    }
}

fn block_file(dir: &Path, name: &str, size: u64) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p).unwrap().set_len(size).unwrap();
    p
}

#[test]
fn dir_and_block_drives_are_added_labelled_and_numbered() {
    let mut f = Fixture::new(41035, false);
    let mut rx = f.p.subscribe();
    let outside = tempfile::tempdir().unwrap();
    let d1 = outside.path().join("d1");
    std::fs::create_dir(&d1).unwrap();
    let img = block_file(outside.path(), "disk.img", 64 << 20);

    let a = add(&f, "dir", &d1, false).unwrap();
    assert_eq!(
        (a.kind, a.bus_number, a.slot_number),
        (DriveKind::Dir, 0, 1)
    );
    assert!(a.size_bytes > 0);
    let b = add(&f, "block", &img, false).unwrap();
    assert_eq!(
        (b.kind, b.bus_number, b.slot_number),
        (DriveKind::Block, 0, 2)
    );
    assert_eq!(
        b.size_bytes,
        (64 << 20) - LABEL_AREA,
        "device size less the label area"
    );
    // Each carries its own label.
    let found = label::read(&d1, Medium::Dir).unwrap();
    assert_eq!(
        found,
        Found::Label(label::Label {
            drive: *a.id.as_bytes(),
            subsystem: *a.subsystem.as_bytes()
        })
    );
    let found = label::read(&img, Medium::Block).unwrap();
    assert_eq!(
        found,
        Found::Label(label::Label {
            drive: *b.id.as_bytes(),
            subsystem: *b.subsystem.as_bytes()
        })
    );
    let ev = drain(&mut rx);
    assert!(
        ev.contains(&(ObjectKind::Drive, EventKind::Arrive, a.id)),
        "{ev:?}"
    );
    assert!(
        ev.contains(&(ObjectKind::Drive, EventKind::Arrive, b.id)),
        "{ev:?}"
    );

    // Everything is restored after a restart, kinds included.
    let before = drives(&f);
    assert_eq!(before.len(), 3);
    f.restart();
    assert_eq!(drives(&f), before);

    // Removing frees the slot (the next drive takes the lowest free one) and wipes the label.
    match f.ok(Command::RemoveDrive { id: a.id }) {
        Outcome::Deleted {
            kind: ObjectKind::Drive,
            id,
        } => assert_eq!(id, a.id),
        o => panic!("{o:?}"),
    }
    assert_eq!(label::read(&d1, Medium::Dir).unwrap(), Found::Blank);
    assert_eq!(
        f.code(Command::GetDrive { id: a.id }),
        Hresult::VDS_E_OBJECT_DELETED
    );
    let again = add(&f, "dir", &d1, false).unwrap();
    assert_eq!(again.slot_number, 1);
    f.ok(Command::RemoveDrive { id: b.id });
    assert_eq!(label::read(&img, Medium::Block).unwrap(), Found::Blank);
    f.restart();
    assert_eq!(
        f.code(Command::GetDrive { id: b.id }),
        Hresult::VDS_E_OBJECT_DELETED
    );
}

#[test]
fn a_drive_path_is_judged_and_foreign_data_needs_force() {
    let f = Fixture::new(41036, false);
    let outside = tempfile::tempdir().unwrap();
    let d1 = outside.path().join("d1");
    std::fs::create_dir(&d1).unwrap();
    let data = f.dir.path().join("data");
    let bad = |kind: &str, p: &Path, code: Hresult, words: &str| {
        let e = add(&f, kind, p, false).unwrap_err();
        assert_eq!(e.hresult, code, "{kind} {}: {e}", p.display());
        assert!(e.message.contains(words), "{e}");
    };
    bad("disk", &d1, Hresult::E_INVALIDARG, "kind");
    bad("dir", Path::new("relative"), Hresult::E_INVALIDARG, "path");
    bad(
        "dir",
        &outside.path().join("missing"),
        Hresult::E_INVALIDARG,
        "does not exist",
    );
    // The data dir, anything in it, and a tree holding it are the array's own.
    bad("dir", &data, Hresult::E_ACCESSDENIED, "data dir");
    bad(
        "dir",
        &data.join("luns"),
        Hresult::E_ACCESSDENIED,
        "data dir",
    );
    bad("dir", f.dir.path(), Hresult::E_ACCESSDENIED, "data dir");
    // Through a symlink, too.
    let link = outside.path().join("link");
    std::os::unix::fs::symlink(&data, &link).unwrap();
    bad("dir", &link, Hresult::E_ACCESSDENIED, "data dir");
    // The wrong node for the kind.
    let img = block_file(outside.path(), "disk.img", 8 << 20);
    bad("dir", &img, Hresult::E_INVALIDARG, "not a directory");
    bad("block", &d1, Hresult::E_INVALIDARG, "neither");
    let tiny = block_file(outside.path(), "tiny.img", LABEL_AREA);
    bad("block", &tiny, Hresult::E_INVALIDARG, "label area");
    // Foreign data in the first MiB of a block drive, or a foreign label file in a directory.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img)
        .unwrap()
        .write_all_at(b"MBR", 510)
        .unwrap();
    bad("block", &img, Hresult::VDS_E_DEVICE_IN_USE, "force");
    std::fs::write(d1.join(label::DIR_LABEL_FILE), b"not ours").unwrap();
    bad("dir", &d1, Hresult::VDS_E_DEVICE_IN_USE, "force");
    assert_eq!(drives(&f).len(), 1, "nothing was added");
    assert_eq!(
        std::fs::read(d1.join(label::DIR_LABEL_FILE)).unwrap(),
        b"not ours",
        "nothing was written"
    );
    // With force they become drives.
    let b = add(&f, "block", &img, true).unwrap();
    let a = add(&f, "dir", &d1, true).unwrap();
    // A path another drive uses, inside it, or holding it.
    bad(
        "block",
        &img,
        Hresult::VDS_E_DEVICE_IN_USE,
        &b.id.to_string(),
    );
    bad("dir", &d1, Hresult::VDS_E_DEVICE_IN_USE, &a.id.to_string());
    let inner = d1.join("inner");
    std::fs::create_dir(&inner).unwrap();
    bad(
        "dir",
        &inner,
        Hresult::VDS_E_DEVICE_IN_USE,
        &a.id.to_string(),
    );
    bad(
        "dir",
        outside.path(),
        Hresult::VDS_E_DEVICE_IN_USE,
        "overlaps",
    );
    // A block drive's label written by another subsystem's drive (another array) is foreign.
    f.ok(Command::RemoveDrive { id: b.id });
    let other = label::Label {
        drive: [1; 16],
        subsystem: [2; 16],
    };
    label::write(&img, Medium::Block, &other, true).unwrap();
    bad(
        "block",
        &img,
        Hresult::VDS_E_DEVICE_IN_USE,
        "another vds drive",
    );
}

#[test]
fn the_data_dir_drive_stays_and_a_spare_holds_nothing() {
    let f = Fixture::new(41037, false);
    let outside = tempfile::tempdir().unwrap();
    let data_drive = drives(&f)[0].clone();
    assert_eq!(
        (data_drive.kind, data_drive.slot_number),
        (DriveKind::Dir, 0)
    );
    // The data dir's drive holds the LUN files: never removed, never a spare.
    let e = f.err(Command::RemoveDrive { id: data_drive.id });
    assert_eq!(e.hresult, Hresult::VDS_E_NOT_SUPPORTED, "{e}");
    let e = f.err(Command::SetDriveFlags {
        id: data_drive.id,
        hotspare: true,
    });
    assert_eq!(e.hresult, Hresult::VDS_E_NOT_SUPPORTED, "{e}");
    // A LUN made the old way still lands on the data dir's drive with another drive present,
    // and a LUN on an added drive is refused until extent-backed LUNs exist.
    let img = block_file(outside.path(), "disk.img", 8 << 20);
    let b = add(&f, "block", &img, false).unwrap();
    let lun = f.create_lun(|_| {});
    assert_eq!(lun.drive, data_drive.id);
    let e = f.err(Command::CreateLun(crate::CreateLunArgs {
        drive: Some(b.id),
        ..f.lun_args()
    }));
    assert_eq!(e.hresult, Hresult::VDS_E_NOT_SUPPORTED, "{e}");
    // The spare flag: set, idempotent (no second event), cleared.
    let mut rx = f.p.subscribe();
    let bit = DriveFlag::Hotspare.value();
    for (hotspare, flags) in [(true, bit), (true, bit), (false, 0)] {
        match f.ok(Command::SetDriveFlags { id: b.id, hotspare }) {
            Outcome::Drive(d) => assert_eq!(d.flags, flags),
            o => panic!("{o:?}"),
        }
    }
    let ev = drain(&mut rx);
    let modifies = ev
        .iter()
        .filter(|e| **e == (ObjectKind::Drive, EventKind::Modify, b.id))
        .count();
    assert_eq!(modifies, 2, "{ev:?}");
    assert_eq!(
        f.code(Command::SetDriveFlags {
            id: Uuid::new_v4(),
            hotspare: true
        }),
        Hresult::VDS_E_OBJECT_NOT_FOUND
    );
}

#[test]
fn reenumerate_reads_the_labels_again() {
    let f = Fixture::new(41038, false);
    let outside = tempfile::tempdir().unwrap();
    let d1 = outside.path().join("d1");
    std::fs::create_dir(&d1).unwrap();
    let img = block_file(outside.path(), "disk.img", 16 << 20);
    let a = add(&f, "dir", &d1, false).unwrap();
    let b = add(&f, "block", &img, false).unwrap();
    let status = |id| match f.ok(Command::GetDrive { id }) {
        Outcome::Drive(d) => (d.status, d.health, d.size_bytes),
        o => panic!("{o:?}"),
    };
    let mut rx = f.p.subscribe();
    // Nothing changed: no event, and the block drive keeps its device size (not the size of
    // the filesystem holding the file).
    f.ok(Command::Reenumerate);
    assert_eq!(drain(&mut rx), vec![]);
    assert_eq!(status(b.id).2, (16 << 20) - LABEL_AREA);

    // The directory moves away and the block drive's label is zeroed: both DEPART, FAILED.
    let moved = outside.path().join("moved");
    std::fs::rename(&d1, &moved).unwrap();
    let saved = std::fs::read(&img).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img)
        .unwrap()
        .write_all_at(&[0u8; 64], 0)
        .unwrap();
    f.ok(Command::Reenumerate);
    let ev = drain(&mut rx);
    assert_eq!(
        ev,
        vec![
            (ObjectKind::Drive, EventKind::Depart, a.id),
            (ObjectKind::Drive, EventKind::Depart, b.id)
        ]
    );
    use vds_model::{DriveStatus, Health};
    assert_eq!(status(a.id).0, DriveStatus::Failed);
    assert_eq!(status(b.id).1, Health::Failed);
    // A FAILED drive's status is not set by hand; a second Reenumerate announces nothing.
    let e = f.err(Command::SetDriveStatus {
        id: a.id,
        status: 1,
    });
    assert_eq!(e.hresult, Hresult::VDS_E_OBJECT_STATUS_FAILED, "{e}");
    f.ok(Command::Reenumerate);
    assert_eq!(drain(&mut rx), vec![]);

    // They come back: ARRIVE, ONLINE, healthy.
    std::fs::rename(&moved, &d1).unwrap();
    std::fs::write(&img, &saved).unwrap();
    f.ok(Command::Reenumerate);
    let ev = drain(&mut rx);
    assert_eq!(
        ev,
        vec![
            (ObjectKind::Drive, EventKind::Arrive, a.id),
            (ObjectKind::Drive, EventKind::Arrive, b.id)
        ]
    );
    assert_eq!(status(a.id).0, DriveStatus::Online);
    assert_eq!(
        status(b.id),
        (
            DriveStatus::Online,
            Health::Healthy,
            (16 << 20) - LABEL_AREA
        )
    );
    // A departed drive can be removed (nothing is on it).
    std::fs::remove_file(d1.join(label::DIR_LABEL_FILE)).unwrap();
    f.ok(Command::Reenumerate);
    f.ok(Command::RemoveDrive { id: a.id });
}

/// A LUN's own storage may not reach into an added drive: its path, a file inside a `dir`
/// drive, the same file under a link. Nothing is created or written there.
#[test]
fn a_lun_backing_path_never_reaches_into_a_drive() {
    let f = Fixture::new(41039, false);
    let outside = tempfile::tempdir().unwrap();
    let d1 = outside.path().join("d1");
    std::fs::create_dir(&d1).unwrap();
    let img = block_file(outside.path(), "disk.img", 8 << 20);
    let a = add(&f, "dir", &d1, false).unwrap();
    let b = add(&f, "block", &img, false).unwrap();
    let link = outside.path().join("link.img");
    std::os::unix::fs::symlink(&img, &link).unwrap();
    let label_before = std::fs::read(&img).unwrap()[..64].to_vec();
    for (path, size, drive) in [
        (img.clone(), 8 << 20, b.id),
        (link, 8 << 20, b.id),
        (d1.join("lun.img"), 4 << 20, a.id),
    ] {
        let e = f.err(Command::CreateLun(crate::CreateLunArgs {
            size_bytes: size,
            backing: Some(crate::BackingSpec {
                kind: vds_model::BackingKind::File,
                path: Some(path.display().to_string()),
                filters: vec![],
                wipe: true,
                pool: None,
                image: None,
            }),
            ..f.lun_args()
        }));
        assert_eq!(
            e.hresult,
            Hresult::VDS_E_DEVICE_IN_USE,
            "{}: {e}",
            path.display()
        );
        assert!(e.message.contains(&drive.to_string()), "{e}");
    }
    assert!(!d1.join("lun.img").exists());
    assert_eq!(std::fs::read(&img).unwrap()[..64], label_before[..]);
    assert_eq!(f.luns().len(), 1, "only the default LUN");
}

/// What Reenumerate finds is found at start too: a drive whose label went away while the
/// provider was down starts FAILED, and ONLINE again once the label is back.
#[test]
fn a_drive_whose_label_went_away_while_down_starts_failed() {
    use vds_model::{DriveStatus, Health};
    let mut f = Fixture::new(41041, false);
    let outside = tempfile::tempdir().unwrap();
    let img = block_file(outside.path(), "disk.img", 8 << 20);
    let b = add(&f, "block", &img, false).unwrap();
    let saved = std::fs::read(&img).unwrap();
    let status = |f: &Fixture| match f.ok(Command::GetDrive { id: b.id }) {
        Outcome::Drive(d) => (d.status, d.health),
        o => panic!("{o:?}"),
    };
    std::fs::write(&img, vec![0u8; 8 << 20]).unwrap();
    f.restart();
    assert_eq!(status(&f), (DriveStatus::Failed, Health::Failed));
    std::fs::write(&img, &saved).unwrap();
    f.restart();
    assert_eq!(status(&f), (DriveStatus::Online, Health::Healthy));
}
