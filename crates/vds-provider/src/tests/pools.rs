//! Storage pools and the exact maxima (BEHAVIOUR.md §15): the primordial pool (its id the same
//! after a restart, hot spares and the data dir's drive left out), named pools (one pool per
//! drive, not deleted while a LUN uses them, restored after a restart), the pool figures
//! against the drives' extents, CreateLun in a pool; and a property over random drives, types
//! and LUNs: QueryMaxLunCreateSize and QueryMaxLunExtendSize answer a size that succeeds, and
//! one block more fails with `VDS_E_NOT_ENOUGH_SPACE`.

use std::path::Path;

use proptest::prelude::*;
use uuid::Uuid;
use vds_backstore::label::LABEL_AREA;
use vds_model::{
    DriveKind, Hresult, JobOutput, JobState, Lun, LunType, PoolAttributes, RaidType, StoragePool,
    StoragePoolType,
};

use super::Fixture;
use crate::{Command, MaxSizeArgs, Outcome, PoolArgs};

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

fn block_drive(f: &Fixture, root: &Path, name: &str, size: u64) -> vds_model::Drive {
    let p = root.join(name);
    std::fs::File::create(&p).unwrap().set_len(size).unwrap();
    add(f, "block", &p)
}

fn dir_drive(f: &Fixture, root: &Path, name: &str) -> vds_model::Drive {
    let p = root.join(name);
    std::fs::create_dir(&p).unwrap();
    add(f, "dir", &p)
}

fn pools(f: &Fixture) -> Vec<StoragePool> {
    match f.ok(Command::ListPools {
        subsystem: f.subsystem(),
    }) {
        Outcome::Pools(p) => p,
        o => panic!("{o:?}"),
    }
}

fn pool(f: &Fixture, id: Uuid) -> StoragePool {
    match f.ok(Command::GetPool { id }) {
        Outcome::Pool(p) => *p,
        o => panic!("{o:?}"),
    }
}

fn pool_args(f: &Fixture, name: &str, drives: &[Uuid]) -> PoolArgs {
    PoolArgs {
        subsystem: f.subsystem(),
        friendly_name: name.into(),
        description: None,
        drives: drives.to_vec(),
        default_type: None,
        attributes: PoolAttributes::default(),
    }
}

fn lun_of(j: vds_model::Job) -> Lun {
    assert_eq!(j.state, JobState::Succeeded, "{j:?}");
    match j.output {
        Some(JobOutput::Lun(l)) => *l,
        o => panic!("{o:?}"),
    }
}

/// The figures a pool must report, summed from `GET /v1/drives/{id}/extents` of its drives:
/// capacity, used ranges, free ranges.
fn from_extents(f: &Fixture, drives: &[Uuid]) -> (u64, u64, u64) {
    let (mut total, mut used, mut free) = (0, 0, 0);
    for d in drives {
        let Outcome::Drive(drive) = f.ok(Command::GetDrive { id: *d }) else {
            panic!()
        };
        total += drive.size_bytes;
        let Outcome::DriveExtents(rs) = f.ok(Command::GetDriveExtents { id: *d }) else {
            panic!()
        };
        for r in rs {
            if r.used_by.is_some() {
                used += r.size;
            } else {
                free += r.size;
            }
        }
    }
    (total, used, free)
}

#[test]
fn primordial_and_named_pools_report_their_drives_and_survive_a_restart() {
    let mut f = Fixture::new(41201, false);
    let root = tempfile::tempdir().unwrap();
    let a = block_drive(&f, root.path(), "a.img", 40 << 20);
    let b = block_drive(&f, root.path(), "b.img", 24 << 20);
    let c = block_drive(&f, root.path(), "c.img", 32 << 20);
    let spare = block_drive(&f, root.path(), "s.img", 16 << 20);
    f.ok(Command::SetDriveFlags {
        id: spare.id,
        hotspare: true,
    });
    // The primordial pool: every added drive but the spare; not the data dir's.
    let ps = pools(&f);
    assert_eq!(ps.len(), 1);
    let prim = ps[0].clone();
    assert_eq!(prim.pool_type, StoragePoolType::Primordial);
    assert_eq!(prim.drives, vec![a.id, b.id, c.id]);
    let (t, u, fr) = from_extents(&f, &prim.drives);
    assert_eq!(
        (prim.total_managed, prim.consumed, prim.remaining),
        (t, u, fr)
    );
    assert_eq!(t, (96 << 20) - 3 * LABEL_AREA);
    assert_eq!(fr, t, "nothing used yet");

    // A named pool with a default type and attributes.
    let mut args = pool_args(&f, "fast", &[a.id, c.id]);
    args.default_type = Some(LunType::Mirror);
    args.attributes.raid_type = Some(RaidType::Raid1);
    args.attributes.no_single_point_of_failure = Some(true);
    let Outcome::Pool(named) = f.ok(Command::CreatePool(args)) else {
        panic!()
    };
    assert_eq!(named.pool_type, StoragePoolType::Concrete);
    assert_eq!(named.attributes.mask(), 0x1 | 0x10);
    // A drive is in one named pool; a spare in none; a name once.
    for (drives, name, code) in [
        (vec![c.id], "other", Hresult::VDS_E_DEVICE_IN_USE),
        (vec![spare.id], "other", Hresult::E_INVALIDARG),
        (vec![b.id, b.id], "other", Hresult::E_INVALIDARG),
        (vec![], "other", Hresult::E_INVALIDARG),
        (vec![b.id], "fast", Hresult::VDS_E_OBJECT_EXISTS),
        (vec![b.id], "primordial-x", Hresult::E_INVALIDARG),
        (
            vec![Uuid::new_v4()],
            "other",
            Hresult::VDS_E_OBJECT_NOT_FOUND,
        ),
    ] {
        let e = f.err(Command::CreatePool(pool_args(&f, name, &drives)));
        assert_eq!(e.hresult, code, "{drives:?} {name}: {e}");
    }
    assert_eq!(pools(&f).len(), 2, "nothing made by the refusals");

    // A LUN in the pool: its default type, on its drives.
    let mut la = f.lun_args();
    la.size_bytes = 8 << 20;
    let lun = lun_of(f.job(Command::CreateLunInPool {
        pool: named.id,
        args: la.clone(),
    }));
    assert_eq!(lun.lun_type, LunType::Mirror);
    let mut on: Vec<Uuid> = lun.extents.iter().map(|x| x.drive).collect();
    on.sort();
    let mut want = vec![a.id, c.id];
    want.sort();
    assert_eq!(on, want);
    // Drives outside the pool are refused.
    la.drives = Some(vec![a.id, b.id]);
    let e = f.err(Command::CreateLunInPool {
        pool: named.id,
        args: la,
    });
    assert_eq!(e.hresult, Hresult::E_INVALIDARG, "{e}");
    assert!(e.message.contains("drives[1]"), "{e}");

    // The figures follow the extents, in both pools.
    for p in [pool(&f, named.id), pool(&f, prim.id)] {
        let (t, u, fr) = from_extents(&f, &p.drives);
        assert_eq!(
            (p.total_managed, p.consumed, p.remaining),
            (t, u, fr),
            "{p:?}"
        );
        assert_eq!(p.provisioned, u);
        assert!(!p.overcommitted);
    }
    assert_eq!(pool(&f, named.id).consumed, 2 * (8 << 20));
    let Outcome::Luns(ls) = f.ok(Command::GetPoolLuns { id: named.id }) else {
        panic!()
    };
    assert_eq!(ls.iter().map(|l| l.id).collect::<Vec<_>>(), vec![lun.id]);

    // Not deleted while it holds a LUN; its drives not removed nor made spares.
    let e = f.err(Command::DeletePool { id: named.id });
    assert_eq!(e.hresult, Hresult::VDS_E_ASSOCIATED_LUNS_EXIST, "{e}");
    let e = f.err(Command::DeletePool { id: prim.id });
    assert_eq!(e.hresult, Hresult::VDS_E_NOT_SUPPORTED, "{e}");

    f.restart();
    let again = pools(&f);
    assert_eq!(again[0].id, prim.id, "the primordial pool keeps its id");
    assert_eq!(again[1].id, named.id);
    assert_eq!(again[1].default_type, LunType::Mirror);
    assert_eq!(again[1].attributes, named.attributes);
    assert_eq!(again[1].drives, vec![a.id, c.id]);

    f.ok(Command::DeleteLun { id: lun.id });
    let e = f.err(Command::RemoveDrive { id: c.id });
    assert_eq!(e.hresult, Hresult::VDS_E_DEVICE_IN_USE, "{e}");
    assert!(e.message.contains("pool"), "{e}");
    f.ok(Command::DeletePool { id: named.id });
    assert_eq!(
        f.code(Command::GetPool { id: named.id }),
        Hresult::VDS_E_OBJECT_DELETED
    );
    f.restart();
    assert_eq!(pools(&f).len(), 1);
    assert_eq!(
        f.code(Command::GetPool { id: named.id }),
        Hresult::VDS_E_OBJECT_DELETED
    );
    f.ok(Command::RemoveDrive { id: c.id });
}

#[test]
fn a_thin_lun_on_a_dir_drive_consumes_its_allocated_blocks() {
    let f = Fixture::new(41202, false);
    let root = tempfile::tempdir().unwrap();
    let d = dir_drive(&f, root.path(), "d");
    assert_eq!(d.kind, DriveKind::Dir);
    let lun = f.create_lun(|a| {
        a.drives = Some(vec![d.id]);
        a.size_bytes = 64 << 20;
    });
    let prim = &pools(&f)[0];
    assert_eq!(prim.provisioned, 64 << 20);
    assert!(prim.consumed < 64 << 20, "sparse: {prim:?}");
    assert_eq!(prim.remaining, d.size_bytes - (64 << 20));
    // Write 1 MiB into the extent file: consumed grows by it.
    let file = std::fs::read_dir(Path::new(&d.path).join("vds-extents"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let before = prim.consumed;
    std::os::unix::fs::FileExt::write_all_at(
        &std::fs::OpenOptions::new().write(true).open(&file).unwrap(),
        &vec![7u8; 1 << 20],
        8 << 20,
    )
    .unwrap();
    let after = pools(&f)[0].consumed;
    assert!(after >= before + (1 << 20), "{before} -> {after}");
    let _ = lun;
}

fn max_create(f: &Fixture, a: MaxSizeArgs) -> Result<u64, crate::VdsError> {
    f.p.apply(Command::MaxLunSize(a)).map(|o| match o {
        Outcome::Size(n) => n,
        o => panic!("{o:?}"),
    })
}

fn max_extend(f: &Fixture, id: Uuid) -> Result<u64, crate::VdsError> {
    f.p.apply(Command::MaxExtendSize { id, drives: None })
        .map(|o| match o {
            Outcome::Size(n) => n,
            o => panic!("{o:?}"),
        })
}

const TYPES: [LunType; 8] = [
    LunType::Simple,
    LunType::Span,
    LunType::Stripe,
    LunType::Mirror,
    LunType::Raid10,
    LunType::Default,
    LunType::FaultTolerant,
    LunType::NonFaultTolerant,
];

/// One case of the property: `sizes` block drives, `existing` simple LUNs (drive index, size
/// in MiB) made first, then a LUN of `TYPES[t]` on the first `n` drives at the largest size,
/// extended by the most it can, shrunk by `shrink_pct` percent, and the maxima checked again.
fn maxima_case(
    sizes: &[u64],
    existing: &[(usize, u64)],
    t: usize,
    n: usize,
    striped: bool,
    shrink_pct: u64,
) {
    let f = Fixture::new(41203, false);
    let root = tempfile::tempdir().unwrap();
    let drives: Vec<vds_model::Drive> = sizes
        .iter()
        .enumerate()
        .map(|(i, s)| block_drive(&f, root.path(), &format!("{i}.img"), LABEL_AREA + s))
        .collect();
    for (i, mib) in existing {
        let d = drives[i % drives.len()].id;
        let mut a = f.lun_args();
        a.drives = Some(vec![d]);
        a.size_bytes = mib << 20;
        let _ = f.p.apply(Command::CreateLun(a)).map(|o| match o {
            Outcome::Job(j) => f.ok(Command::WaitJob {
                id: j.id,
                timeout: None,
            }),
            o => o,
        });
    }
    let lun_type = TYPES[t];
    let ids: Vec<Uuid> = drives.iter().take(n).map(|d| d.id).collect();
    let args = MaxSizeArgs {
        subsystem: Some(f.subsystem()),
        pool: None,
        lun_type: Some(lun_type),
        drives: Some(ids.clone()),
        plexes: None,
        stripe_size: striped.then_some(16 << 10),
    };
    let create = |size: u64| {
        let mut a = f.lun_args();
        a.lun_type = Some(lun_type);
        a.drives = Some(ids.clone());
        a.stripe_size = args.stripe_size;
        a.size_bytes = size;
        Command::CreateLun(a)
    };
    // Create at the maximum (one block more refused), extend at the maximum, shrink by a
    // part, and the maxima of an extend and of a create are exact again after each.
    let Some(lun) = exact_create(&f, &args, &create, n) else {
        return;
    };
    let lun = exact_extend(&f, &lun);
    let cut = (lun.size_bytes / 512 * shrink_pct / 100).max(1) * 512;
    if let Ok(Outcome::Job(j)) = f.p.apply(Command::ShrinkLun {
        id: lun.id,
        bytes: cut,
    }) {
        let Outcome::Job(j) = f.ok(Command::WaitJob {
            id: j.id,
            timeout: None,
        }) else {
            panic!()
        };
        assert_eq!(j.state, JobState::Succeeded, "shrink by {cut}: {j:?}");
    }
    let lun = f.lun(lun.id);
    exact_extend(&f, &lun);
    exact_create(&f, &args, &create, n);
}

/// Checks QueryMaxLunCreateSize of `args` against creates; the LUN made at the maximum.
fn exact_create(
    f: &Fixture,
    args: &MaxSizeArgs,
    create: &dyn Fn(u64) -> Command,
    n: usize,
) -> Option<Lun> {
    let max = match max_create(f, args.clone()) {
        Ok(m) => m,
        Err(e) => {
            // Nothing fits: then the smallest create fails the same way.
            let e2 = f.err(create(512 * n as u64));
            assert_eq!(e.hresult, e2.hresult, "{e} / {e2}");
            return None;
        }
    };
    let e = f.err(create(max + 512));
    assert!(
        matches!(
            e.hresult,
            Hresult::VDS_E_NOT_ENOUGH_SPACE | Hresult::VDS_E_NOT_ENOUGH_DRIVE
        ),
        "max {max} + 512: {e}"
    );
    let lun = lun_of(f.job(create(max)));
    assert_eq!(lun.size_bytes, max, "{lun:?}");
    Some(lun)
}

/// Checks QueryMaxLunExtendSize of `lun` against extends; the LUN after the largest one.
fn exact_extend(f: &Fixture, lun: &Lun) -> Lun {
    let extend = |bytes: u64| Command::ExtendLun { id: lun.id, bytes };
    match max_extend(f, lun.id) {
        Ok(m) => {
            let e = f.err(extend(m + 512));
            assert_eq!(e.hresult, Hresult::VDS_E_NOT_ENOUGH_SPACE, "{m} + 512: {e}");
            let l = lun_of(f.job(extend(m)));
            assert_eq!(l.size_bytes, lun.size_bytes + m);
            l
        }
        Err(e) => {
            assert_eq!(e.hresult, Hresult::VDS_E_NOT_ENOUGH_SPACE, "{e}");
            assert_eq!(f.err(extend(512)).hresult, e.hresult);
            lun.clone()
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 32, ..ProptestConfig::default() })]

    #[test]
    fn the_maxima_are_exact(
        sizes in prop::collection::vec(2048u64..40960, 1..5),
        existing in prop::collection::vec((0usize..4, 1u64..6), 0..3),
        t in 0usize..TYPES.len(),
        n in 1usize..5,
        striped in any::<bool>(),
        shrink_pct in 1u64..90,
    ) {
        let n = n.min(sizes.len());
        let sizes: Vec<u64> = sizes.iter().map(|b| b * 512).collect();
        let striped = striped && matches!(TYPES[t], LunType::Stripe | LunType::Raid10 | LunType::FaultTolerant);
        maxima_case(&sizes, &existing, t, n, striped, shrink_pct);
    }
}

fn extent_files(d: &vds_model::Drive) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = std::fs::read_dir(Path::new(&d.path).join("vds-extents"))
        .map(|rd| {
            rd.map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().unwrap().len(),
                )
            })
            .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_span_on_dir_drives_grows_by_new_files_and_shrinks_by_removing_and_cutting_them() {
    let mut f = Fixture::new(41204, false);
    let root = tempfile::tempdir().unwrap();
    let a = dir_drive(&f, root.path(), "a");
    let b = dir_drive(&f, root.path(), "b");
    let lun = f.create_lun(|x| {
        x.lun_type = Some(LunType::Span);
        x.drives = Some(vec![a.id]);
        x.size_bytes = 4 << 20;
    });
    let write = |at: u64, byte: u8| {
        let e =
            f.p.inner
                .state
                .lock()
                .lun(lun.id)
                .unwrap()
                .filtered
                .clone()
                .unwrap();
        vds_backstore::BackingStore::write_at(&*e, &vec![byte; 4096], at, true).unwrap();
    };
    write(0, 0xA1);
    // Onto b: a second extent of the one column, its own file.
    let grown = lun_of(f.job(Command::ExtendLunOnto {
        id: lun.id,
        bytes: 3 << 20,
        drives: vec![b.id],
    }));
    assert_eq!(grown.size_bytes, 7 << 20);
    assert_eq!(
        grown
            .extents
            .iter()
            .map(|x| (x.seq, x.drive, x.size))
            .collect::<Vec<_>>(),
        vec![(0, a.id, 4 << 20), (1, b.id, 3 << 20)]
    );
    assert_eq!(extent_files(&b).len(), 1);
    write((5 << 20) + 512, 0xB2);
    // Onto a again: a third extent, a second file on a.
    let grown = lun_of(f.job(Command::ExtendLun {
        id: lun.id,
        bytes: 1 << 20,
    }));
    assert_eq!(grown.size_bytes, 8 << 20);
    assert_eq!(
        grown.extents[2].drive, b.id,
        "a column grows on its last drive"
    );
    // Only a span takes drives; a shrink gives back the last extent and cuts the one before.
    let shrunk = lun_of(f.job(Command::ShrinkLun {
        id: lun.id,
        bytes: (2 << 20) + 4096,
    }));
    assert_eq!(shrunk.size_bytes, (6 << 20) - 4096);
    assert_eq!(
        shrunk
            .extents
            .iter()
            .map(|x| (x.seq, x.size))
            .collect::<Vec<_>>(),
        vec![(0, 4 << 20), (1, (2 << 20) - 4096)]
    );
    let files = extent_files(&b);
    assert_eq!(
        files.len(),
        1,
        "the dropped extent's file is gone: {files:?}"
    );
    assert_eq!(files[0].1, (2 << 20) - 4096, "the cut extent's file is cut");
    f.restart();
    let back = f.lun(lun.id);
    assert_eq!(back.size_bytes, (6 << 20) - 4096);
    assert_eq!(back.status, vds_model::LunStatus::Online);
    let st = f.p.inner.state.lock();
    let s = st.lun(lun.id).unwrap().filtered.clone().unwrap();
    let mut buf = vec![0u8; 4096];
    vds_backstore::BackingStore::read_at(&*s, &mut buf, 0).unwrap();
    assert!(buf.iter().all(|x| *x == 0xA1));
    vds_backstore::BackingStore::read_at(&*s, &mut buf, (5 << 20) + 512).unwrap();
    assert!(buf.iter().all(|x| *x == 0xB2));
    drop(st);
    // Drives on a mirror: refused; a shrink to nothing: refused.
    let e = f.err(Command::ShrinkLun {
        id: lun.id,
        bytes: 6 << 20,
    });
    assert_eq!(e.hresult, Hresult::E_INVALIDARG, "{e}");
}

#[test]
fn automagic_types_resolve_from_the_drives_and_the_stripe_size() {
    let f = Fixture::new(41205, false);
    let root = tempfile::tempdir().unwrap();
    let ds: Vec<Uuid> = (0..4)
        .map(|i| block_drive(&f, root.path(), &format!("{i}.img"), 9 << 20).id)
        .collect();
    for (t, n, stripe, want) in [
        (LunType::Default, 1, false, LunType::Simple),
        (LunType::Default, 2, false, LunType::Span),
        (LunType::NonFaultTolerant, 1, false, LunType::Simple),
        (LunType::NonFaultTolerant, 3, false, LunType::Stripe),
        (LunType::FaultTolerant, 2, false, LunType::Mirror),
        (LunType::FaultTolerant, 4, false, LunType::Mirror),
        (LunType::FaultTolerant, 4, true, LunType::Raid10),
    ] {
        let lun = f.create_lun(|a| {
            a.lun_type = Some(t);
            a.drives = Some(ds[..n].to_vec());
            a.stripe_size = stripe.then_some(64 << 10);
            a.size_bytes = 1 << 20;
        });
        assert_eq!(lun.lun_type, want, "{t:?} on {n} drives");
        f.ok(Command::DeleteLun { id: lun.id });
    }
    // A fault-tolerant LUN on one drive: not enough drives.
    let mut a = f.lun_args();
    a.lun_type = Some(LunType::FaultTolerant);
    a.drives = Some(vec![ds[0]]);
    assert_eq!(
        f.code(Command::CreateLun(a)),
        Hresult::VDS_E_NOT_ENOUGH_DRIVE
    );
    // Parity: not built.
    let mut a = f.lun_args();
    a.lun_type = Some(LunType::Raid5);
    a.drives = Some(ds[..3].to_vec());
    assert_eq!(f.code(Command::CreateLun(a)), Hresult::VDS_E_NOT_SUPPORTED);
}

#[test]
fn a_mirror_with_a_write_intent_bitmap_is_resized_with_a_bitmap_for_its_new_size() {
    let f = Fixture::new(41206, false);
    let root = tempfile::tempdir().unwrap();
    let a = block_drive(&f, root.path(), "a.img", 9 << 20);
    let b = block_drive(&f, root.path(), "b.img", 9 << 20);
    let lun = f.create_lun(|x| {
        x.lun_type = Some(LunType::Mirror);
        x.drives = Some(vec![a.id, b.id]);
        x.size_bytes = 1 << 20;
        x.hints = Some(crate::HintsRequest {
            fast_crash_recovery_required: Some(true),
            ..Default::default()
        });
    });
    // The LUN size the bitmap file was made for (header bytes 20..28, docs/PERSISTENT_FORMAT.md).
    let bitmap_size = || {
        let path = crate::recovery::bitmap_path(&f.p.inner.config.data_dir, lun.id);
        let b = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        u64::from_le_bytes(b[20..28].try_into().unwrap())
    };
    assert_eq!(bitmap_size(), 1 << 20);
    let j = f.job(Command::ExtendLun {
        id: lun.id,
        bytes: 1 << 20,
    });
    assert_eq!(j.state, vds_model::JobState::Succeeded, "{j:?}");
    assert_eq!(f.lun(lun.id).size_bytes, 2 << 20);
    assert_eq!(bitmap_size(), 2 << 20, "the bitmap follows the size");
    let j = f.job(Command::ShrinkLun {
        id: lun.id,
        bytes: 1 << 20,
    });
    assert_eq!(j.state, vds_model::JobState::Succeeded, "{j:?}");
    assert_eq!(bitmap_size(), 1 << 20);
    assert!(f.p.inner.state.lock().pending_extents.is_empty());
}

#[test]
fn without_drives_the_subsystems_maximum_is_a_file_luns_and_a_pools_its_choice() {
    let f = Fixture::new(41207, false);
    let root = tempfile::tempdir().unwrap();
    let a = block_drive(&f, root.path(), "a.img", 9 << 20);
    let b = block_drive(&f, root.path(), "b.img", 5 << 20);
    let on_sub = |t: LunType| {
        max_create(
            &f,
            MaxSizeArgs {
                subsystem: Some(f.subsystem()),
                lun_type: Some(t),
                ..MaxSizeArgs::default()
            },
        )
    };
    // CreateLun without drives makes a thin file: up to the size limit, simple types only.
    assert_eq!(
        on_sub(LunType::Simple).unwrap(),
        crate::engine::MAX_LUN_SIZE
    );
    assert_eq!(
        on_sub(LunType::Mirror).unwrap_err().hresult,
        Hresult::VDS_E_NOT_SUPPORTED
    );
    // In the primordial pool: the roomiest drive for a simple LUN, both for a mirror.
    let prim = pools(&f)[0].id;
    let in_pool = |t: LunType| {
        max_create(
            &f,
            MaxSizeArgs {
                pool: Some(prim),
                lun_type: Some(t),
                ..MaxSizeArgs::default()
            },
        )
        .unwrap()
    };
    assert_eq!(in_pool(LunType::Simple), 8 << 20);
    assert_eq!(in_pool(LunType::Mirror), 4 << 20);
    let mut la = f.lun_args();
    la.size_bytes = 8 << 20;
    la.lun_type = Some(LunType::Simple);
    let lun = lun_of(f.job(Command::CreateLunInPool {
        pool: prim,
        args: la,
    }));
    assert_eq!(lun.extents[0].drive, a.id);
    assert_eq!(in_pool(LunType::Simple), 4 << 20, "now b is the roomiest");
    let _ = b;
}

#[test]
fn a_drive_that_shrank_under_its_extents_leaves_its_pool_overcommitted() {
    let f = Fixture::new(41208, false);
    let root = tempfile::tempdir().unwrap();
    let a = block_drive(&f, root.path(), "a.img", 9 << 20);
    let lun = f.create_lun(|x| {
        x.drives = Some(vec![a.id]);
        x.size_bytes = 6 << 20;
    });
    let p = &pools(&f)[0];
    assert_eq!((p.provisioned, p.overcommitted), (6 << 20, false));
    // The device shrinks (the label stays); Reenumerate reads the new size.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&a.path)
        .unwrap()
        .set_len(5 << 20)
        .unwrap();
    f.ok(Command::Reenumerate);
    let p = &pools(&f)[0];
    assert_eq!(p.total_managed, 4 << 20, "{p:?}");
    assert_eq!(p.provisioned, 6 << 20);
    assert!(p.overcommitted, "{p:?}");
    assert_eq!(p.remaining, 0);
    let _ = lun;
}

#[test]
fn a_deleted_lun_takes_the_files_a_crashed_resize_left_with_it() {
    let f = Fixture::new(41209, false);
    let root = tempfile::tempdir().unwrap();
    let d = dir_drive(&f, root.path(), "d");
    let lun = f.create_lun(|x| {
        x.drives = Some(vec![d.id]);
        x.size_bytes = 1 << 20;
    });
    let dir = Path::new(&d.path).join("vds-extents");
    let x = lun.extents[0];
    // As an extend that crashed before its commit leaves it; another LUN's file stays.
    let stray = dir.join(format!("{}-{}-0-1", lun.id, x.plex));
    std::fs::write(&stray, b"left").unwrap();
    let foreign = dir.join(format!("{}-{}-0-0", Uuid::new_v4(), x.plex));
    std::fs::write(&foreign, b"other").unwrap();
    // An extend makes the same name again: the stray file is replaced.
    let grown = lun_of(f.job(Command::ExtendLun {
        id: lun.id,
        bytes: 1 << 20,
    }));
    assert_eq!(std::fs::metadata(&stray).unwrap().len(), 1 << 20);
    let stray2 = dir.join(format!("{}-{}-0-7", lun.id, x.plex));
    std::fs::write(&stray2, b"left").unwrap();
    f.ok(Command::DeleteLun { id: grown.id });
    assert!(!stray.exists() && !stray2.exists());
    assert!(foreign.exists(), "another LUN's file is not touched");
}

fn pool_extents(f: &Fixture, id: Uuid) -> Vec<(Uuid, crate::DriveRange)> {
    match f.ok(Command::GetPoolDriveExtents { id }) {
        Outcome::PoolDriveExtents(v) => v,
        o => panic!("{o:?}"),
    }
}

/// Every drive of pool `p` answers its ranges, exactly as the drive's own QueryExtents, and
/// they add up to the drive's capacity.
fn check_pool_extents(f: &Fixture, p: &StoragePool) -> Vec<(Uuid, crate::DriveRange)> {
    let got = pool_extents(f, p.id);
    let mut seen: Vec<Uuid> = got.iter().map(|(d, _)| *d).collect();
    seen.dedup();
    assert_eq!(seen, p.drives, "every drive of the pool, in its order");
    for d in &p.drives {
        let mine: Vec<crate::DriveRange> = got
            .iter()
            .filter(|(x, _)| x == d)
            .map(|(_, r)| r.clone())
            .collect();
        let Outcome::DriveExtents(own) = f.ok(Command::GetDriveExtents { id: *d }) else {
            panic!()
        };
        assert_eq!(
            mine, own,
            "drive {d}: the pool answers the drive's own ranges"
        );
        let Outcome::Drive(drive) = f.ok(Command::GetDrive { id: *d }) else {
            panic!()
        };
        let sum: u64 = mine.iter().map(|r| r.size).sum();
        assert_eq!(sum, drive.size_bytes, "drive {d}: {mine:?}");
    }
    got
}

#[test]
fn pool_drive_extents_cover_every_drive_of_the_pool() {
    let f = Fixture::new(41412, false);
    let root = tempfile::tempdir().unwrap();
    let a = block_drive(&f, root.path(), "a.img", 16 << 20);
    let b = block_drive(&f, root.path(), "b.img", 24 << 20);
    let cdir = root.path().join("c");
    std::fs::create_dir(&cdir).unwrap();
    let c = add(&f, "dir", &cdir);
    let Outcome::Pool(named) = f.ok(Command::CreatePool(pool_args(&f, "pair", &[a.id, b.id])))
    else {
        panic!()
    };
    // Nothing used yet: one free range per drive.
    let got = check_pool_extents(&f, &named);
    assert!(got.iter().all(|(_, r)| r.used_by.is_none()), "{got:?}");
    assert_eq!(got.len(), 2, "{got:?}");

    let mut la = f.lun_args();
    la.size_bytes = 4 << 20;
    let mirror = lun_of(f.job(Command::CreateLunInPool {
        pool: named.id,
        args: la,
    }));
    let span = f.create_lun(|x| {
        x.lun_type = Some(LunType::Span);
        x.drives = Some(vec![b.id, c.id]);
        x.size_bytes = 6 << 20;
    });
    let got = check_pool_extents(&f, &named);
    for l in [&mirror, &span] {
        for x in l.extents.iter().filter(|x| x.drive != c.id) {
            assert!(
                got.iter().any(|(d, r)| *d == x.drive
                    && r.used_by.map(|u| u.0) == Some(l.id)
                    && r.size == x.size
                    && r.offset == x.offset),
                "LUN {}'s extent {x:?} in {got:?}",
                l.id
            );
        }
    }
    let prim = pools(&f)
        .into_iter()
        .find(|p| p.pool_type == StoragePoolType::Primordial)
        .expect("the primordial pool");
    assert!(prim.drives.contains(&c.id), "{prim:?}");
    let got = check_pool_extents(&f, &pool(&f, prim.id));
    assert!(
        got.iter()
            .any(|(d, r)| *d == c.id && r.used_by.map(|u| u.0) == Some(span.id)),
        "{got:?}"
    );

    // An unknown pool; a deleted one.
    assert_eq!(
        f.code(Command::GetPoolDriveExtents { id: Uuid::new_v4() }),
        Hresult::VDS_E_OBJECT_NOT_FOUND
    );
    f.ok(Command::DeleteLun { id: mirror.id });
    f.ok(Command::DeleteLun { id: span.id });
    f.ok(Command::DeletePool { id: named.id });
    assert_eq!(
        f.code(Command::GetPoolDriveExtents { id: named.id }),
        Hresult::VDS_E_OBJECT_DELETED
    );
}
