//! AddPlex, RemovePlex and ReplaceDrive on `block` drives (BEHAVIOUR.md §15): ranges placed
//! first fit and freed, data kept across a `kill -9` restart, and the refusals that change
//! nothing (a failed plex, four plexes, no room, the data dir's drive, a running job).

use std::path::Path;

use uuid::Uuid;
use vds_model::{FaultFilterSpec, FaultOpKind, Hresult, JobState, LunPlexStatus, LunType};

use super::Fixture;
use crate::{Command, Outcome};

const SIZE: u64 = 4 << 20;

fn block_drive(f: &Fixture, root: &Path, name: &str, size: u64) -> vds_model::Drive {
    let p = root.join(name);
    std::fs::File::create(&p).unwrap().set_len(size).unwrap();
    match f.ok(Command::AddDrive {
        subsystem: f.subsystem(),
        kind: "block".into(),
        path: p.display().to_string(),
        friendly_name: Some(name.into()),
        force: false,
    }) {
        Outcome::Drive(d) => d,
        o => panic!("{o:?}"),
    }
}

fn lun_on(f: &Fixture, t: LunType, drives: &[Uuid]) -> vds_model::Lun {
    f.create_lun(|a| {
        a.lun_type = Some(t);
        a.drives = Some(drives.to_vec());
        a.size_bytes = SIZE;
    })
}

fn used(f: &Fixture, drive: Uuid) -> usize {
    match f.ok(Command::GetDriveExtents { id: drive }) {
        Outcome::DriveExtents(r) => r.iter().filter(|r| r.used_by.is_some()).count(),
        o => panic!("{o:?}"),
    }
}

fn fill(f: &Fixture, lun: Uuid, byte: u8) {
    let lu = f.p.logical_unit(lun).unwrap();
    lu.backing()
        .write_at(&vec![byte; SIZE as usize], 0, false)
        .unwrap();
    lu.backing().flush().unwrap();
}

fn holds(f: &Fixture, lun: Uuid, byte: u8) -> bool {
    let lu = f.p.logical_unit(lun).unwrap();
    let mut b = vec![0u8; SIZE as usize];
    lu.backing().read_at(&mut b, 0).unwrap();
    b.iter().all(|&x| x == byte)
}

#[test]
fn replace_drive_moves_block_extents_and_refuses_what_it_cannot_move() {
    let mut f = Fixture::new(41191, true);
    let root = tempfile::tempdir().unwrap();
    let a = block_drive(&f, root.path(), "a.img", 16 << 20);
    let b = block_drive(&f, root.path(), "b.img", 16 << 20);
    let c = block_drive(&f, root.path(), "c.img", 16 << 20);
    let small = block_drive(&f, root.path(), "small.img", 3 << 20);
    let span = lun_on(&f, LunType::Span, &[a.id, b.id]);
    let mirror = lun_on(&f, LunType::Mirror, &[a.id, b.id]);
    fill(&f, span.id, 0x11);
    fill(&f, mirror.id, 0x22);
    let sub = f.subsystem();
    let replace = |old: Uuid, new: Uuid| Command::ReplaceDrive { id: sub, old, new };

    // Refusals, nothing changed by any.
    assert_eq!(
        f.code(replace(a.id, small.id)),
        Hresult::VDS_E_NOT_ENOUGH_SPACE
    );
    assert_eq!(
        f.code(replace(a.id, b.id)),
        Hresult::E_INVALIDARG,
        "b holds the mirror's other plex"
    );
    let data_dir_drive = match f.ok(Command::ListDrives { subsystem: None }) {
        Outcome::Drives(d) => d
            .into_iter()
            .find(|d| d.kind == vds_model::DriveKind::Dir)
            .unwrap(),
        o => panic!("{o:?}"),
    };
    assert_eq!(
        f.code(replace(data_dir_drive.id, c.id)),
        Hresult::VDS_E_NOT_SUPPORTED
    );
    assert!(small.size_bytes < 2 * SIZE);
    assert_eq!((used(&f, a.id), used(&f, c.id)), (2, 0));

    // a → c: both LUNs' extents move; a is empty, c holds them; the data is all there.
    let j = f.job(replace(a.id, c.id));
    assert_eq!(j.state, JobState::Succeeded, "{j:?}");
    assert_eq!((used(&f, a.id), used(&f, c.id)), (0, 2));
    assert!(holds(&f, span.id, 0x11) && holds(&f, mirror.id, 0x22));
    assert!(f
        .lun(mirror.id)
        .plexes
        .iter()
        .all(|p| p.status == LunPlexStatus::Online));
    // A kill -9 and a restart open the moved layout.
    f.restart();
    assert!(holds(&f, span.id, 0x11) && holds(&f, mirror.id, 0x22));
    assert_eq!((used(&f, a.id), used(&f, c.id)), (0, 2));

    // A failed plex is Recover's to move; a drive holding nothing is an empty job.
    f.ok(Command::SetDriveFaults {
        id: b.id,
        filters: vec![FaultFilterSpec::Error {
            ops: vec![FaultOpKind::Read, FaultOpKind::Write, FaultOpKind::Flush],
            after: 0,
        }],
    });
    let lu = f.p.logical_unit(mirror.id).unwrap();
    lu.backing().write_at(&[1u8; 4096], 0, false).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        f.code(replace(b.id, a.id)),
        Hresult::VDS_E_INVALID_OPERATION,
        "the mirror's plex on b failed"
    );
    let j = f.job(replace(a.id, small.id));
    assert_eq!(j.state, JobState::Succeeded, "nothing to move: {j:?}");
}

#[test]
fn add_plex_stops_at_four_and_remove_plex_waits_for_the_copy() {
    let f = Fixture::new(41192, true);
    let root = tempfile::tempdir().unwrap();
    let d: Vec<vds_model::Drive> = (0..5)
        .map(|i| block_drive(&f, root.path(), &format!("d{i}.img"), 16 << 20))
        .collect();
    let l = lun_on(&f, LunType::Simple, &[d[0].id]);
    fill(&f, l.id, 0x33);
    for drive in &d[1..4] {
        let other = lun_on(&f, LunType::Simple, &[drive.id]);
        let j = f.job(Command::AddPlex {
            id: l.id,
            lun: other.id,
        });
        assert_eq!(j.state, JobState::Succeeded, "{j:?}");
        assert_eq!(
            f.code(Command::GetLun { id: other.id }),
            Hresult::VDS_E_OBJECT_DELETED,
            "the other LUN departed"
        );
    }
    assert_eq!(f.lun(l.id).plexes.len(), 4);
    assert!(holds(&f, l.id, 0x33));
    let fifth = lun_on(&f, LunType::Simple, &[d[4].id]);
    assert_eq!(
        f.code(Command::AddPlex {
            id: l.id,
            lun: fifth.id
        }),
        Hresult::VDS_E_INVALID_OPERATION
    );
    // Four plexes: ReplaceDrive needs a fifth for a while.
    assert_eq!(
        f.code(Command::ReplaceDrive {
            id: f.subsystem(),
            old: d[0].id,
            new: d[4].id,
        }),
        Hresult::VDS_E_INVALID_OPERATION
    );
    // Down to one, every plex's range freed; the data stays.
    let plexes: Vec<Uuid> = f.lun(l.id).plexes.iter().map(|p| p.id).collect();
    for p in &plexes[..3] {
        let j = f.job(Command::RemovePlex { id: *p });
        assert_eq!(j.state, JobState::Succeeded, "{j:?}");
        assert!(holds(&f, l.id, 0x33));
    }
    assert_eq!(
        f.code(Command::RemovePlex { id: plexes[3] }),
        Hresult::VDS_E_PLEX_LAST_ACTIVE
    );
    // A removed plex is gone for good: OBJECT_DELETED (a stored tombstone).
    assert_eq!(
        f.code(Command::RemovePlex { id: plexes[0] }),
        Hresult::VDS_E_OBJECT_DELETED
    );
    assert_eq!(
        f.code(Command::GetPlex { id: plexes[1] }),
        Hresult::VDS_E_OBJECT_DELETED
    );
    for drive in &d[..3] {
        assert_eq!(used(&f, drive.id), 0, "drive {} freed", drive.id);
    }
    // A plex being regenerated is not removed while its copy runs (slowed: 200 ms a write).
    let other = lun_on(&f, LunType::Simple, &[d[0].id]);
    f.ok(Command::SetDriveFaults {
        id: d[0].id,
        filters: vec![FaultFilterSpec::Delay {
            read_ms: 0,
            write_ms: 200,
            flush_ms: 0,
        }],
    });
    let job = match f.ok(Command::SetLunHints {
        id: l.id,
        hints: crate::command::HintsRequest {
            rebuild_priority: Some(0),
            ..Default::default()
        },
    }) {
        Outcome::Hints(_) => match f.ok(Command::AddPlex {
            id: l.id,
            lun: other.id,
        }) {
            Outcome::Job(j) => j,
            o => panic!("{o:?}"),
        },
        o => panic!("{o:?}"),
    };
    let new_plex = f.lun(l.id).plexes[1].id;
    let e = f.err(Command::RemovePlex { id: new_plex });
    assert!(
        e.hresult == Hresult::VDS_E_PLEX_REGENERATING,
        "a copy runs: {e:?}"
    );
    f.ok(Command::WaitJob {
        id: job.id,
        timeout: Some(std::time::Duration::from_secs(30)),
    });
    let j = f.job(Command::RemovePlex { id: new_plex });
    assert_eq!(j.state, JobState::Succeeded);
    assert!(holds(&f, l.id, 0x33));
}
