//! A `block` drive found under a new device node (BEHAVIOUR.md §15): its label looked for among
//! the candidates of `drive_search_dirs` (here a temp dir whose regular files stand in for
//! devices) at start and on Reenumerate; the one carrying it is the drive (path stored, one
//! MODIFY, its LUN's data intact); two copies, a copy of another subsystem's and storage a LUN
//! uses are never taken.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use uuid::Uuid;
use vds_backstore::label::{Label, LABEL_AREA};
use vds_model::{DriveStatus, EventKind, Health, LunStatus, LunType, ObjectKind};

use super::{drain, Fixture};
use crate::{Command, Outcome};

/// A fixture whose drives are looked for in a temp dir of its own ("/dev" of the test).
fn fixture(port: u16) -> (Fixture, tempfile::TempDir) {
    let mut f = Fixture::new(port, false);
    let devs = tempfile::tempdir().unwrap();
    f.drive_search_dirs = vec![devs.path().to_path_buf()];
    f.restart();
    (f, devs)
}

/// A block drive on a 16 MiB file `name` of `devs`.
fn block_drive(f: &Fixture, devs: &Path, name: &str) -> vds_model::Drive {
    let p = devs.join(name);
    std::fs::File::create(&p)
        .unwrap()
        .set_len(16 << 20)
        .unwrap();
    match f.ok(Command::AddDrive {
        subsystem: f.subsystem(),
        kind: "block".into(),
        path: p.display().to_string(),
        friendly_name: None,
        force: false,
    }) {
        Outcome::Drive(d) => d,
        o => panic!("{o:?}"),
    }
}

fn drive(f: &Fixture, id: Uuid) -> vds_model::Drive {
    match f.ok(Command::GetDrive { id }) {
        Outcome::Drive(d) => d,
        o => panic!("{o:?}"),
    }
}

fn resolved(p: PathBuf) -> String {
    std::fs::canonicalize(p).unwrap().display().to_string()
}

/// A simple 4 MiB LUN on drive `d`, a pattern written through its store.
fn lun_with_data(f: &Fixture, d: Uuid) -> (Uuid, Vec<u8>) {
    let lun = f.create_lun(|a| {
        a.lun_type = Some(LunType::Simple);
        a.drives = Some(vec![d]);
        a.size_bytes = 4 << 20;
    });
    let data: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let lu = f.p.logical_unit(lun.id).unwrap();
    lu.backing().write_at(&data, 1 << 20, true).unwrap();
    lu.backing().flush().unwrap();
    (lun.id, data)
}

fn data_of(f: &Fixture, lun: Uuid) -> Vec<u8> {
    let mut buf = vec![0u8; 1 << 20];
    f.p.logical_unit(lun)
        .unwrap()
        .backing()
        .read_at(&mut buf, 1 << 20)
        .unwrap();
    buf
}

#[test]
fn a_renamed_block_drive_is_found_at_start_with_its_lun_data() {
    let (mut f, devs) = fixture(41261);
    let d = block_drive(&f, devs.path(), "sdb");
    let (lun, data) = lun_with_data(&f, d.id);
    std::fs::rename(devs.path().join("sdb"), devs.path().join("sdc")).unwrap();
    f.restart();
    let now = drive(&f, d.id);
    assert_eq!(now.path, resolved(devs.path().join("sdc")));
    assert_eq!(
        (now.status, now.health),
        (DriveStatus::Online, Health::Healthy)
    );
    let l = f.lun(lun);
    assert_eq!((l.status, l.health), (LunStatus::Online, Health::Healthy));
    assert_eq!(data_of(&f, lun), data);
    // The new path was stored: the next start finds the drive there without looking.
    f.drive_search_dirs = vec![];
    f.restart();
    assert_eq!(drive(&f, d.id).path, resolved(devs.path().join("sdc")));
    assert_eq!(drive(&f, d.id).status, DriveStatus::Online);
    assert_eq!(data_of(&f, lun), data);
}

#[test]
fn reenumerate_finds_a_renamed_block_drive() {
    let (f, devs) = fixture(41262);
    let d = block_drive(&f, devs.path(), "sdb");
    let (lun, data) = lun_with_data(&f, d.id);
    let mut rx = f.p.subscribe();
    // Renamed under a running array: one MODIFY, still ONLINE, the LUN still serving.
    std::fs::rename(devs.path().join("sdb"), devs.path().join("sdc")).unwrap();
    f.ok(Command::Reenumerate);
    assert_eq!(
        drain(&mut rx),
        vec![(ObjectKind::Drive, EventKind::Modify, d.id)]
    );
    let now = drive(&f, d.id);
    assert_eq!(now.path, resolved(devs.path().join("sdc")));
    assert_eq!(now.status, DriveStatus::Online);
    assert_eq!(data_of(&f, lun), data);
    f.ok(Command::Reenumerate);
    assert_eq!(drain(&mut rx), vec![]);

    // Gone (out of the search dir): DEPART. Back under another name: MODIFY and ARRIVE.
    let away = tempfile::tempdir().unwrap();
    std::fs::rename(devs.path().join("sdc"), away.path().join("x")).unwrap();
    f.ok(Command::Reenumerate);
    assert_eq!(
        drain(&mut rx),
        vec![(ObjectKind::Drive, EventKind::Depart, d.id)]
    );
    assert_eq!(drive(&f, d.id).status, DriveStatus::Failed);
    std::fs::rename(away.path().join("x"), devs.path().join("sdd")).unwrap();
    f.ok(Command::Reenumerate);
    assert_eq!(
        drain(&mut rx),
        vec![
            (ObjectKind::Drive, EventKind::Modify, d.id),
            (ObjectKind::Drive, EventKind::Arrive, d.id)
        ]
    );
    let now = drive(&f, d.id);
    assert_eq!(now.path, resolved(devs.path().join("sdd")));
    assert_eq!(
        (now.status, now.health),
        (DriveStatus::Online, Health::Healthy)
    );
}

#[test]
fn a_cloned_block_drive_is_not_taken() {
    let (mut f, devs) = fixture(41263);
    let d = block_drive(&f, devs.path(), "sdb");
    let old = drive(&f, d.id).path;
    std::fs::rename(devs.path().join("sdb"), devs.path().join("sdc")).unwrap();
    std::fs::copy(devs.path().join("sdc"), devs.path().join("sdd")).unwrap();
    f.restart();
    let now = drive(&f, d.id);
    assert_eq!(now.path, old, "neither copy taken");
    assert_eq!(
        (now.status, now.health),
        (DriveStatus::Failed, Health::Failed)
    );
    let mut rx = f.p.subscribe();
    f.ok(Command::Reenumerate);
    assert_eq!(drain(&mut rx), vec![]);
    assert_eq!(drive(&f, d.id).path, old);
    // One name of the same file twice is one candidate, not a clone.
    std::fs::remove_file(devs.path().join("sdd")).unwrap();
    std::fs::hard_link(devs.path().join("sdc"), devs.path().join("sdd")).unwrap();
    f.ok(Command::Reenumerate);
    assert_eq!(
        drain(&mut rx),
        vec![
            (ObjectKind::Drive, EventKind::Modify, d.id),
            (ObjectKind::Drive, EventKind::Arrive, d.id)
        ]
    );
    assert_eq!(drive(&f, d.id).status, DriveStatus::Online);
}

#[test]
fn another_subsystems_label_or_a_luns_storage_is_not_taken() {
    let (mut f, devs) = fixture(41264);
    let d = block_drive(&f, devs.path(), "sdb");
    let old = drive(&f, d.id).path;
    // The drive's id with another subsystem's: not this drive.
    let foreign = Label {
        drive: *d.id.as_bytes(),
        subsystem: *Uuid::new_v4().as_bytes(),
    };
    let sdc = devs.path().join("sdc");
    std::fs::File::create(&sdc)
        .unwrap()
        .set_len(16 << 20)
        .unwrap();
    let w = std::fs::OpenOptions::new().write(true).open(&sdc).unwrap();
    w.write_all_at(&foreign.encode(), 0).unwrap();
    drop(w);
    // A LUN's own file carrying the drive's label (its first MiB copied): never taken.
    let lun_file = devs.path().join("lun.img");
    f.create_lun(|a| {
        a.size_bytes = 8 << 20;
        a.backing = Some(crate::BackingSpec {
            kind: vds_model::BackingKind::File,
            path: Some(lun_file.display().to_string()),
            filters: vec![],
            wipe: true,
            pool: None,
            image: None,
        });
    });
    let area = {
        let mut b = vec![0u8; LABEL_AREA as usize];
        std::fs::File::open(&old)
            .unwrap()
            .read_exact_at(&mut b, 0)
            .unwrap();
        b
    };
    std::fs::OpenOptions::new()
        .write(true)
        .open(&lun_file)
        .unwrap()
        .write_all_at(&area, 0)
        .unwrap();
    std::fs::remove_file(&old).unwrap();
    f.restart();
    let now = drive(&f, d.id);
    assert_eq!(now.path, old);
    assert_eq!(now.status, DriveStatus::Failed);
    f.ok(Command::Reenumerate);
    assert_eq!(drive(&f, d.id).path, old);
    assert_eq!(drive(&f, d.id).status, DriveStatus::Failed);
    // The drive's label whole on a free file: that one is the drive.
    std::fs::write(devs.path().join("sde"), {
        let mut b = area.clone();
        b.resize(16 << 20, 0);
        b
    })
    .unwrap();
    f.ok(Command::Reenumerate);
    assert_eq!(drive(&f, d.id).path, resolved(devs.path().join("sde")));
    assert_eq!(drive(&f, d.id).status, DriveStatus::Online);
}

/// Two nodes swapped between boots (sdb is sdc and sdc is sdb): each drive is found at the
/// other's old node, its LUN's data with it.
#[test]
fn two_swapped_block_drives_are_each_found_at_the_others_node() {
    let (mut f, devs) = fixture(41265);
    let a = block_drive(&f, devs.path(), "sdb");
    let b = block_drive(&f, devs.path(), "sdc");
    let (lun, data) = lun_with_data(&f, b.id);
    let (sdb, sdc, tmp) = (
        devs.path().join("sdb"),
        devs.path().join("sdc"),
        devs.path().join("tmp"),
    );
    std::fs::rename(&sdb, &tmp).unwrap();
    std::fs::rename(&sdc, &sdb).unwrap();
    std::fs::rename(&tmp, &sdc).unwrap();
    f.restart();
    assert_eq!(drive(&f, a.id).path, resolved(sdc.clone()));
    assert_eq!(drive(&f, b.id).path, resolved(sdb.clone()));
    for id in [a.id, b.id] {
        assert_eq!(drive(&f, id).status, DriveStatus::Online);
    }
    let l = f.lun(lun);
    assert_eq!((l.status, l.health), (LunStatus::Online, Health::Healthy));
    assert_eq!(data_of(&f, lun), data);
    // And back again, found by Reenumerate this time.
    std::fs::rename(&sdb, &tmp).unwrap();
    std::fs::rename(&sdc, &sdb).unwrap();
    std::fs::rename(&tmp, &sdc).unwrap();
    f.ok(Command::Reenumerate);
    assert_eq!(drive(&f, a.id).path, resolved(sdb));
    assert_eq!(drive(&f, b.id).path, resolved(sdc));
    for id in [a.id, b.id] {
        assert_eq!(drive(&f, id).status, DriveStatus::Online);
    }
    assert_eq!(data_of(&f, lun), data);
}
