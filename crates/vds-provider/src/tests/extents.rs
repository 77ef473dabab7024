//! Extent-backed LUNs (BEHAVIOUR.md §15): stripe and mirror LUNs laid out on `dir` and `block`
//! drives (files per extent, first-fit LBA ranges after the label), the refusals, delete
//! freeing the extents, and everything restored after a restart.

use std::path::Path;

use uuid::Uuid;
use vds_backstore::label::LABEL_AREA;
use vds_model::{BackingKind, DriveKind, Hresult, LunPlexType, LunStatus, LunType};

use super::Fixture;
use crate::command::BackingSpec;
use crate::{Command, Outcome};

fn add(f: &Fixture, kind: &str, path: &Path) -> vds_model::Drive {
    match f.ok(Command::AddDrive {
        subsystem: f.subsystem(),
        kind: kind.into(),
        path: path.display().to_string(),
        friendly_name: None,
        force: false,
    }) {
        Outcome::Drive(d) => d,
        o => panic!("{o:?}"),
    }
}

fn dir_drive(f: &Fixture, root: &Path, name: &str) -> vds_model::Drive {
    let p = root.join(name);
    std::fs::create_dir(&p).unwrap();
    add(f, "dir", &p)
}

fn block_drive(f: &Fixture, root: &Path, name: &str, size: u64) -> vds_model::Drive {
    let p = root.join(name);
    std::fs::File::create(&p).unwrap().set_len(size).unwrap();
    add(f, "block", &p)
}

fn composite(
    lun_type: LunType,
    drives: &[Uuid],
    size: u64,
) -> impl FnOnce(&mut crate::CreateLunArgs) {
    let drives = drives.to_vec();
    move |a| {
        a.lun_type = Some(lun_type);
        a.drives = Some(drives);
        a.size_bytes = size;
    }
}

fn args(f: &Fixture, edit: impl FnOnce(&mut crate::CreateLunArgs)) -> Command {
    let mut a = f.lun_args();
    edit(&mut a);
    Command::CreateLun(a)
}

fn files_in(d: &vds_model::Drive) -> Vec<std::path::PathBuf> {
    match std::fs::read_dir(Path::new(&d.path).join("vds-extents")) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn a_stripe_lun_on_dir_drives_has_one_sparse_file_per_column_and_survives_a_restart() {
    let mut f = Fixture::new(41086, false);
    let root = tempfile::tempdir().unwrap();
    let a = dir_drive(&f, root.path(), "a");
    let b = dir_drive(&f, root.path(), "b");
    // 5 MiB + 1 block on 2 columns of 64 KiB units: whole stripes, 3 MiB + 64 KiB a column.
    let lun = f.create_lun(|x| {
        composite(LunType::Stripe, &[a.id, b.id], (5 << 20) + 512)(x);
    });
    assert_eq!(lun.backing.kind, BackingKind::Extents);
    assert_eq!(lun.lun_type, LunType::Stripe);
    assert_eq!(lun.plexes.len(), 1);
    assert_eq!(lun.plexes[0].plex_type, LunPlexType::Stripe);
    assert_eq!(lun.plexes[0].stripe_size, 64 << 10);
    let col = (5u64 << 20).div_ceil(128 << 10) * (64 << 10) + (64 << 10);
    assert_eq!(lun.size_bytes, 2 * col, "{lun:?}");
    assert_eq!(lun.extents.len(), 2);
    for (i, (x, d)) in lun.extents.iter().zip([&a, &b]).enumerate() {
        assert_eq!(
            (x.column, x.seq, x.drive, x.offset, x.size),
            (i as u32, 0, d.id, 0, col)
        );
        let files = files_in(d);
        assert_eq!(files.len(), 1, "{files:?}");
        assert_eq!(std::fs::metadata(&files[0]).unwrap().len(), col);
    }
    assert_eq!(lun.status, LunStatus::Online);
    // A drive holding an extent is not removed.
    let e = f.err(Command::RemoveDrive { id: a.id });
    assert_eq!(e.hresult, Hresult::VDS_E_DEVICE_IN_USE, "{e}");

    f.restart();
    let back = f.lun(lun.id);
    assert_eq!(back.extents, lun.extents);
    assert_eq!(back.plexes, lun.plexes);
    assert_eq!(back.size_bytes, lun.size_bytes);
    assert_ne!(back.status, LunStatus::Failed, "{back:?}");

    f.ok(Command::DeleteLun { id: lun.id });
    assert!(
        files_in(&a).is_empty() && files_in(&b).is_empty(),
        "extent files removed"
    );
    f.ok(Command::RemoveDrive { id: a.id });
}

#[test]
fn mirror_extents_on_block_drives_are_first_fit_after_the_label_and_freed_on_delete() {
    let mut f = Fixture::new(41087, false);
    let root = tempfile::tempdir().unwrap();
    let a = block_drive(&f, root.path(), "a.img", 16 << 20);
    let b = block_drive(&f, root.path(), "b.img", 16 << 20);
    assert_eq!(a.kind, DriveKind::Block);
    let mk = |f: &Fixture, size: u64| {
        f.create_lun(|x| {
            composite(LunType::Mirror, &[a.id, b.id], size)(x);
            x.plexes = Some(2);
        })
    };
    let one = mk(&f, 4 << 20);
    let two = mk(&f, 4 << 20);
    assert_eq!(one.plexes.len(), 2);
    assert_ne!(one.extents[0].plex, one.extents[1].plex, "a plex per drive");
    for x in &one.extents {
        assert_eq!((x.offset, x.size), (LABEL_AREA, 4 << 20));
    }
    for x in &two.extents {
        assert_eq!(x.offset, LABEL_AREA + (4 << 20), "first fit after LUN one");
    }
    // 16 MiB drives: 1 MiB label + 8 MiB used leaves 7 MiB; 8 MiB does not fit.
    let e = f.err(args(&f, composite(LunType::Mirror, &[a.id, b.id], 8 << 20)));
    assert_eq!(e.hresult, Hresult::VDS_E_NOT_ENOUGH_SPACE, "{e}");
    f.ok(Command::DeleteLun { id: one.id });
    let three = mk(&f, 2 << 20);
    assert_eq!(
        three.extents[0].offset, LABEL_AREA,
        "the freed range is reused"
    );
    f.restart();
    let back = f.lun(two.id);
    assert_eq!(back.extents, two.extents);
    assert_ne!(back.status, LunStatus::Failed, "{back:?}");
    let four = mk(&f, 2 << 20);
    assert_eq!(
        four.extents[0].offset,
        LABEL_AREA + (2 << 20),
        "after a restart the extents are still taken"
    );
}

/// A change to the arguments of a create.
type Edit = Box<dyn FnOnce(&mut crate::CreateLunArgs)>;

#[test]
fn composite_creates_are_refused_precisely_and_change_nothing() {
    let f = Fixture::new(41088, false);
    let root = tempfile::tempdir().unwrap();
    let a = dir_drive(&f, root.path(), "a");
    let b = dir_drive(&f, root.path(), "b");
    let spare = dir_drive(&f, root.path(), "s");
    f.ok(Command::SetDriveFlags {
        id: spare.id,
        hotspare: true,
    });
    let before = f.luns().len();
    let cases: Vec<(Hresult, Edit)> = vec![
        (
            Hresult::VDS_E_NOT_ENOUGH_DRIVE,
            Box::new(composite(LunType::Mirror, &[a.id], 1 << 20)),
        ),
        (
            Hresult::VDS_E_NOT_ENOUGH_DRIVE,
            Box::new(composite(LunType::Stripe, &[a.id], 1 << 20)),
        ),
        (Hresult::E_INVALIDARG, {
            let c = composite(LunType::Mirror, &[a.id, b.id], 1 << 20);
            Box::new(move |x| {
                c(x);
                x.plexes = Some(5);
            })
        }),
        (Hresult::E_INVALIDARG, {
            let c = composite(LunType::Stripe, &[a.id, b.id], 1 << 20);
            Box::new(move |x| {
                c(x);
                x.stripe_size = Some(3000);
            })
        }),
        (
            Hresult::E_INVALIDARG,
            Box::new(composite(LunType::Mirror, &[a.id, a.id], 1 << 20)),
        ),
        (
            Hresult::E_INVALIDARG,
            Box::new(composite(LunType::Mirror, &[a.id, spare.id], 1 << 20)),
        ),
        (
            Hresult::VDS_E_NOT_SUPPORTED,
            Box::new(composite(LunType::Raid5, &[a.id, b.id, spare.id], 1 << 20)),
        ),
        (
            Hresult::VDS_E_NOT_ENOUGH_SPACE,
            Box::new(composite(
                LunType::Mirror,
                &[a.id, b.id],
                a.size_bytes + 512,
            )),
        ),
        (Hresult::E_INVALIDARG, {
            Box::new(|x: &mut crate::CreateLunArgs| {
                x.backing = Some(BackingSpec {
                    kind: BackingKind::Extents,
                    ..Default::default()
                })
            })
        }),
        (Hresult::E_INVALIDARG, {
            Box::new(|x: &mut crate::CreateLunArgs| x.plexes = Some(2))
        }),
    ];
    for (i, (want, edit)) in cases.into_iter().enumerate() {
        let e = f.err(args(&f, edit));
        assert_eq!(e.hresult, want, "case {i}: {e}");
    }
    assert_eq!(f.luns().len(), before);
    for d in [&a, &b, &spare] {
        assert!(files_in(d).is_empty(), "nothing made on {}", d.path);
    }
}

/// `<dir>/vds-extents` is vds's own: a link planted in its place, or a directory others may
/// write, is refused (the create fails, nothing is written through it); extent files are 0600.
#[test]
fn the_extent_directory_must_be_vds_own() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new(41089, false);
    let root = tempfile::tempdir().unwrap();
    let good = dir_drive(&f, root.path(), "good");
    let linked = dir_drive(&f, root.path(), "linked");
    let open = dir_drive(&f, root.path(), "open");
    let elsewhere = root.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, Path::new(&linked.path).join("vds-extents")).unwrap();
    let shared = Path::new(&open.path).join("vds-extents");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();

    for (d, what) in [(&linked, "link"), (&open, "mode 777")] {
        let j = f.job(args(&f, composite(LunType::Simple, &[d.id], 4 << 20)));
        assert_eq!(j.state, vds_model::JobState::Failed, "{what}: {j:?}");
        let m = j.message.clone().unwrap_or_default();
        assert!(m.contains("not vds's own directory"), "{what}: {j:?}");
    }
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(&shared).unwrap().count(), 0);
    assert_eq!(f.luns().len(), 1, "only the default LUN");

    f.create_lun(composite(LunType::Simple, &[good.id], 4 << 20));
    let files = files_in(&good);
    assert_eq!(files.len(), 1);
    let md = std::fs::metadata(&files[0]).unwrap();
    assert_eq!(md.permissions().mode() & 0o777, 0o600);
    let dmd = std::fs::metadata(Path::new(&good.path).join("vds-extents")).unwrap();
    assert_eq!(dmd.permissions().mode() & 0o777, 0o700);
}

/// Extent files no LUN names (a create, move or delete killed half-way) are removed at the next
/// start; files vds does not name, and those of LUNs, are left alone.
#[test]
fn leftover_extent_files_are_removed_at_start() {
    let mut f = Fixture::new(41090, false);
    let root = tempfile::tempdir().unwrap();
    let a = dir_drive(&f, root.path(), "a");
    let b = dir_drive(&f, root.path(), "b");
    f.create_lun(composite(LunType::Mirror, &[a.id, b.id], 4 << 20));
    let ours = files_in(&a);
    assert_eq!(ours.len(), 1);
    let dir = Path::new(&a.path).join("vds-extents");
    let leftover = dir.join(format!("{}-{}-0-0", Uuid::new_v4(), Uuid::new_v4()));
    let foreign = dir.join("notes.txt");
    let odd = dir.join(format!("{}-{}-0", Uuid::new_v4(), Uuid::new_v4()));
    for p in [&leftover, &foreign, &odd] {
        std::fs::write(p, b"x").unwrap();
    }
    f.restart();
    assert!(
        !leftover.exists(),
        "the leftover extent file was not removed"
    );
    assert!(
        foreign.exists() && odd.exists(),
        "a file vds does not name was touched"
    );
    assert!(ours[0].exists());
    assert_eq!(files_in(&b).len(), 1);
}

/// A new LUN on a `block` drive never reads what an earlier LUN (or anything else) left in
/// its range: the extents are zeroed before the LUN is created.
#[test]
fn a_new_lun_on_a_block_drive_reads_zeroes_not_old_data() {
    use std::os::unix::fs::FileExt;
    let f = Fixture::new(41091, false);
    let root = tempfile::tempdir().unwrap();
    let d = block_drive(&f, root.path(), "disk.img", 16 << 20);
    // What a deleted LUN left behind, everywhere after the label.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&d.path)
        .unwrap();
    file.write_all_at(&vec![0xab; 15 << 20], LABEL_AREA)
        .unwrap();
    drop(file);
    let lun = f.create_lun(composite(LunType::Simple, &[d.id], 4 << 20));
    let x = lun.extents[0];
    let mut buf = vec![1u8; x.size as usize];
    std::fs::File::open(&d.path)
        .unwrap()
        .read_exact_at(&mut buf, x.offset)
        .unwrap();
    assert!(
        buf.iter().all(|&b| b == 0),
        "the new LUN's extent holds old data"
    );
}
