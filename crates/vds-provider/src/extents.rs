//! Extent-backed LUNs (BEHAVIOUR.md §15): how a simple, span, stripe, mirror or RAID-10 LUN
//! made with `drives` is laid out on them (`plan`: one extent per drive, space checked, first
//! fit on `block` drives), made (`make_files`: a sparse file per extent on `dir` drives),
//! opened as a `vds_backstore::RaidStore` (`open`), and freed (`files_of`). `DriveIo` keeps,
//! per drive, the one open store of a `block` drive and the fault filters of every segment on
//! it (`PUT /v1/drives/{id}/faults` updates them all).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use uuid::Uuid;
use vds_backstore::label::LABEL_AREA;
use vds_backstore::raid::{PlexLayout, PlexObserver, PlexState, RaidStore, Segment};
use vds_backstore::{lifecycle, BackingStore, FileStore, Filtered};
use vds_model::{
    Drive, DriveFlag, DriveKind, DriveStatus, Extent, FaultFilterSpec, Health, Hresult, Lun,
    LunPlex, LunPlexStatus, LunPlexType, LunType, TransitionState,
};

use crate::engine::{BLOCK_SIZE, MAX_LUN_SIZE};
use crate::state::State;
use crate::storage::to_filters;
use crate::VdsError;

/// The directory of a `dir` drive that holds its extents.
pub(crate) const EXTENT_DIR: &str = "vds-extents";

/// The default stripe size (64 KiB).
pub(crate) const DEFAULT_STRIPE: u64 = 64 << 10;

/// What a caller asked for: the type and its drives, plexes and stripe size.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub lun_type: LunType,
    pub drives: Vec<Uuid>,
    pub plexes: Option<u32>,
    pub stripe_size: Option<u64>,
}

/// A planned layout: the plexes, the extents, the LUN's size (whole stripes) and its type
/// (an automagic type resolved).
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub plexes: Vec<LunPlex>,
    pub extents: Vec<Extent>,
    pub size: u64,
    pub lun_type: LunType,
}

/// The largest size a create of `req` gets now: the largest whole number of blocks `plan`
/// accepts, found by bisection over `plan` itself, so the answer and the allocator cannot
/// disagree (`plan` is monotone in the size: a layout that fits still fits smaller). The
/// error of the smallest layout (one block per drive) when nothing fits.
pub(crate) fn max_size(
    st: &State,
    data_dir: &Path,
    subsystem: Uuid,
    req: &Request,
) -> Result<u64, VdsError> {
    let fits = |blocks: u64| plan(st, data_dir, subsystem, req, blocks * BLOCK_SIZE).is_ok();
    let mut lo = req.drives.len().max(1) as u64;
    plan(st, data_dir, subsystem, req, lo * BLOCK_SIZE)?;
    let mut hi = MAX_LUN_SIZE / BLOCK_SIZE + 1;
    if fits(hi - 1) {
        return Ok((hi - 1) * BLOCK_SIZE);
    }
    // fits(lo) and !fits(hi).
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(lo * BLOCK_SIZE)
}

/// What drive `d` can still give to new extents: a `block` drive's free ranges, a `dir`
/// drive's capacity less its extents.
pub(crate) fn free_bytes(st: &State, d: &Drive) -> u64 {
    match d.kind {
        DriveKind::Block => free_ranges(st, d).iter().map(|(_, l)| l).sum(),
        DriveKind::Dir => d
            .size_bytes
            .saturating_sub(extents_on(st, d.id).iter().map(|(_, x)| x.size).sum()),
    }
}

/// The largest extent drive `d` can take now.
pub(crate) fn largest_free(st: &State, d: &Drive) -> u64 {
    match d.kind {
        DriveKind::Block => free_ranges(st, d)
            .iter()
            .map(|(_, l)| *l)
            .max()
            .unwrap_or(0),
        DriveKind::Dir => free_bytes(st, d),
    }
}

/// The stripe size `s` given as `field`, judged: a power of two from 4 KiB to 1 MiB.
pub(crate) fn check_stripe(field: &str, s: u64) -> Result<u64, VdsError> {
    if s.is_power_of_two() && (4096..=1 << 20).contains(&s) {
        Ok(s)
    } else {
        Err(VdsError::invalid_arg(
            field,
            format!("{s} is not a power of two from 4096 to 1048576"),
        ))
    }
}

/// Whether vds builds LUNs of type `t` (given as `field`): `unknown` is E_INVALIDARG, the
/// types vds does not build (parity, and the other RAID levels) VDS_E_NOT_SUPPORTED.
pub(crate) fn check_type(field: &str, t: LunType) -> Result<(), VdsError> {
    match t {
        LunType::Unknown => Err(VdsError::invalid_arg(field, "unknown cannot be requested")),
        LunType::Simple
        | LunType::Span
        | LunType::Stripe
        | LunType::Mirror
        | LunType::Raid10
        | LunType::Default
        | LunType::FaultTolerant
        | LunType::NonFaultTolerant => Ok(()),
        t => Err(VdsError::not_supported(format!(
            "{field}: LUN type {} is not supported by this provider",
            t.short_name()
        ))),
    }
}

/// The automagic types resolved (BEHAVIOUR.md §15) from the drives and the hints given:
/// `fault_tolerant` is RAID-10 with 4 drives or more, a count its plexes divide, when a
/// stripe size asks for striping, else a mirror; `non_fault_tolerant` is a stripe on 2 drives
/// or more, else simple; `default` is simple on one drive, else a span. Other types are as
/// asked.
pub(crate) fn resolve(_st: &State, req: &Request) -> Result<Request, VdsError> {
    check_type("type", req.lun_type)?;
    let d = req.drives.len();
    let lun_type = match req.lun_type {
        LunType::FaultTolerant => {
            let p = req.plexes.unwrap_or(2) as usize;
            if req.stripe_size.is_some() && d >= 4 && p >= 2 && d >= 2 * p && d.is_multiple_of(p) {
                LunType::Raid10
            } else {
                LunType::Mirror
            }
        }
        LunType::NonFaultTolerant if d >= 2 => LunType::Stripe,
        LunType::NonFaultTolerant => LunType::Simple,
        LunType::Default if d >= 2 => LunType::Span,
        LunType::Default => LunType::Simple,
        t => t,
    };
    Ok(Request {
        lun_type,
        ..req.clone()
    })
}

/// Checks `req` against the drives of `subsystem` and lays out `size` bytes on them.
/// Steps 4 and 5 of the checks: E_INVALIDARG, then NOT_SUPPORTED, then the drives and the
/// space (`VDS_E_NOT_ENOUGH_DRIVE`, `VDS_E_NOT_ENOUGH_SPACE`). The automagic types are
/// resolved first (`Plan::lun_type`).
pub(crate) fn plan(
    st: &State,
    data_dir: &Path,
    subsystem: Uuid,
    req: &Request,
    size: u64,
) -> Result<Plan, VdsError> {
    let req = &resolve(st, req)?;
    let stripe = match req.stripe_size {
        None => DEFAULT_STRIPE,
        Some(s) => check_stripe("stripe_size", s)?,
    };
    let (plexes, striped, plex_type) = match req.lun_type {
        LunType::Simple | LunType::Span => (1, false, LunPlexType::Span),
        LunType::Stripe => (1, true, LunPlexType::Stripe),
        LunType::Mirror => (req.plexes.unwrap_or(2), false, LunPlexType::Span),
        LunType::Raid10 => (req.plexes.unwrap_or(2), true, LunPlexType::Stripe),
        t => {
            return Err(VdsError::not_supported(format!(
                "type: LUN type {} is not supported by this provider",
                t.short_name()
            )))
        }
    };
    let mirrored = matches!(req.lun_type, LunType::Mirror | LunType::Raid10);
    if mirrored && !(2..=4).contains(&plexes) {
        return Err(VdsError::invalid_arg(
            "plexes",
            format!(
                "a {} LUN has 2 to 4 plexes, not {plexes}",
                req.lun_type.short_name()
            ),
        ));
    }
    if !mirrored && req.plexes.is_some_and(|p| p != 1) {
        return Err(VdsError::invalid_arg(
            "plexes",
            format!("a {} LUN has one plex", req.lun_type.short_name()),
        ));
    }
    if req.stripe_size.is_some() && !striped {
        return Err(VdsError::invalid_arg(
            "stripe_size",
            format!("a {} LUN is not striped", req.lun_type.short_name()),
        ));
    }
    check_drives(st, data_dir, subsystem, &req.drives)?;
    let d = req.drives.len();
    let p = plexes as usize;
    let enough = match req.lun_type {
        LunType::Simple => d == 1,
        LunType::Stripe => d >= 2,
        LunType::Raid10 => d >= 2 * p,
        _ => d >= p,
    };
    if !enough {
        return Err(VdsError::new(
            Hresult::VDS_E_NOT_ENOUGH_DRIVE,
            format!(
                "drives: a {} LUN{} needs {}, {d} given (each plex on drives of its own)",
                req.lun_type.short_name(),
                if mirrored {
                    format!(" of {p} plexes")
                } else {
                    String::new()
                },
                match req.lun_type {
                    LunType::Simple => "exactly one drive".to_string(),
                    LunType::Stripe => "at least 2 drives".to_string(),
                    LunType::Raid10 => format!("at least {} drives", 2 * p),
                    _ => format!("at least {p} drives"),
                }
            ),
        ));
    }
    if !d.is_multiple_of(p) {
        return Err(VdsError::invalid_arg(
            "drives",
            format!("{d} drives do not split evenly into {p} plexes"),
        ));
    }
    let per_plex = d / p;
    // Every piece a whole number of blocks; a striped plex whole stripes of every column.
    let (plex_size, pieces): (u64, Vec<u64>) = if striped {
        let cols = per_plex as u64;
        let col = size.div_ceil(stripe * cols) * stripe;
        (col * cols, vec![col; per_plex])
    } else {
        let blocks = size / BLOCK_SIZE;
        let base = blocks / per_plex as u64;
        let mut v = vec![base * BLOCK_SIZE; per_plex];
        v[per_plex - 1] += (blocks - base * per_plex as u64) * BLOCK_SIZE;
        (size, v)
    };
    if pieces.contains(&0) {
        return Err(VdsError::invalid_arg(
            "size_bytes",
            format!("{size} bytes cannot be spread over {per_plex} drives"),
        ));
    }
    let mut out = Plan {
        plexes: Vec::new(),
        extents: Vec::new(),
        size: plex_size,
        lun_type: req.lun_type,
    };
    for chunk in req.drives.chunks(per_plex) {
        let plex = Uuid::new_v4();
        out.plexes.push(LunPlex {
            id: plex,
            size_bytes: plex_size,
            plex_type: if per_plex == 1 && !striped {
                LunPlexType::Simple
            } else {
                plex_type
            },
            status: LunPlexStatus::Online,
            health: Health::Healthy,
            transition_state: TransitionState::Stable,
            flags: 0,
            stripe_size: if striped { stripe as u32 } else { 0 },
            rebuild_priority: 0,
        });
        for (k, (drive, len)) in chunk.iter().zip(&pieces).enumerate() {
            let (column, seq) = if striped {
                (k as u32, 0)
            } else {
                (0, k as u32)
            };
            let offset = place(st, &st.drives[drive], *len)?;
            out.extents.push(Extent {
                plex,
                column,
                seq,
                drive: *drive,
                offset,
                size: *len,
            });
        }
    }
    Ok(out)
}

/// The drives of a new extent-backed LUN: listed once each, of this subsystem, added drives
/// (not the data dir's), not failed, not hot spares (a spare waits for a failed plex).
fn check_drives(
    st: &State,
    data_dir: &Path,
    subsystem: Uuid,
    drives: &[Uuid],
) -> Result<(), VdsError> {
    for (i, id) in drives.iter().enumerate() {
        let at = format!("drives[{i}]");
        st.lookup(vds_model::ObjectKind::Drive, *id, Some(&at))?;
        let d = &st.drives[id];
        if drives[..i].contains(id) {
            return Err(VdsError::invalid_arg(
                &at,
                format!("drive {id} is listed twice"),
            ));
        }
        if d.subsystem != subsystem {
            return Err(VdsError::invalid_arg(
                &at,
                format!("drive {id} belongs to another subsystem"),
            ));
        }
        if crate::ops::drive::is_data_dir_drive(d, data_dir) {
            return Err(VdsError::invalid_arg(
                &at,
                format!("drive {id} is the data dir's drive; its LUNs are files (omit drives)"),
            ));
        }
        if d.flags & DriveFlag::Hotspare.value() != 0 {
            return Err(VdsError::invalid_arg(
                &at,
                format!("drive {id} is a hot spare; a spare is used only to rebuild a plex"),
            ));
        }
        if d.status != DriveStatus::Online {
            return Err(VdsError::new(
                Hresult::VDS_E_OBJECT_STATUS_FAILED,
                format!("{at}: drive {id} is {}", d.status.short_name()),
            ));
        }
    }
    Ok(())
}

/// Every extent on drive `id`: the committed LUNs' and those of creates still running.
pub(crate) fn extents_on(st: &State, id: Uuid) -> Vec<(Uuid, Extent)> {
    let mut v: Vec<(Uuid, Extent)> = st
        .luns
        .values()
        .flat_map(|e| e.rec.lun.extents.iter().map(|x| (e.rec.lun.id, *x)))
        .chain(
            st.pending_extents
                .iter()
                .flat_map(|(l, xs)| xs.iter().map(|x| (*l, *x))),
        )
        .filter(|(_, x)| x.drive == id)
        .collect();
    v.sort_by_key(|(_, x)| x.offset);
    v
}

/// Whether LUN `lun` has storage on drive `drive` (its file drive or one of its extents).
pub(crate) fn lun_uses_drive(lun: &Lun, drive: Uuid) -> bool {
    lun.drive == drive || lun.extents.iter().any(|x| x.drive == drive)
}

/// The free byte ranges `(offset, len)` of a `block` drive: after the label area, between
/// its extents, up to its end (the label area plus its capacity).
pub(crate) fn free_ranges(st: &State, d: &Drive) -> Vec<(u64, u64)> {
    free_ranges_besides(st, d, &[])
}

/// [`free_ranges`] with `planned` (extents of a layout being planned) taken as well.
fn free_ranges_besides(st: &State, d: &Drive, planned: &[Extent]) -> Vec<(u64, u64)> {
    let mut used: Vec<Extent> = extents_on(st, d.id).into_iter().map(|(_, x)| x).collect();
    used.extend(planned.iter().filter(|x| x.drive == d.id));
    used.sort_by_key(|x| x.offset);
    let mut free = Vec::new();
    let mut at = LABEL_AREA;
    for x in used {
        if x.offset > at {
            free.push((at, x.offset - at));
        }
        at = at.max(x.offset + x.size);
    }
    let end = LABEL_AREA + d.size_bytes;
    if end > at {
        free.push((at, end - at));
    }
    free
}

/// Where a new `len`-byte extent goes on drive `d`: a `block` drive's first free range that
/// fits; a `dir` drive's own file (offset 0) when what its extents take leaves room.
pub(crate) fn place(st: &State, d: &Drive, len: u64) -> Result<u64, VdsError> {
    place_besides(st, d, len, &[])
}

/// [`place`] with `planned` (extents of the layout being planned) taken as well.
fn place_besides(st: &State, d: &Drive, len: u64, planned: &[Extent]) -> Result<u64, VdsError> {
    let no_space = |free: u64| {
        VdsError::new(
            Hresult::VDS_E_NOT_ENOUGH_SPACE,
            format!(
                "drive {} ({}) has no {len}-byte extent free ({free} bytes free{})",
                d.id,
                d.path,
                if d.kind == DriveKind::Block {
                    " in its largest range"
                } else {
                    ""
                }
            ),
        )
    };
    match d.kind {
        DriveKind::Block => {
            let ranges = free_ranges_besides(st, d, planned);
            ranges
                .iter()
                .find(|(_, l)| *l >= len)
                .map(|(o, _)| *o)
                .ok_or_else(|| no_space(ranges.iter().map(|(_, l)| *l).max().unwrap_or(0)))
        }
        DriveKind::Dir => {
            let used: u64 = extents_on(st, d.id)
                .iter()
                .map(|(_, x)| x.size)
                .sum::<u64>()
                + planned
                    .iter()
                    .filter(|x| x.drive == d.id)
                    .map(|x| x.size)
                    .sum::<u64>();
            let free = d.size_bytes.saturating_sub(used);
            if free < len {
                return Err(no_space(free));
            }
            Ok(0)
        }
    }
}

/// An extend of an extent-backed LUN, planned: the new extents and the new size.
#[derive(Debug, Clone)]
pub(crate) struct Growth {
    pub extents: Vec<Extent>,
    pub size: u64,
}

/// The columns of plex `plex` of `lun`: each its extents in `seq` order.
fn columns_of(lun: &Lun, plex: Uuid) -> Vec<Vec<Extent>> {
    let mut cols: Vec<Vec<Extent>> = Vec::new();
    for x in lun.extents.iter().filter(|x| x.plex == plex) {
        let c = x.column as usize;
        if cols.len() <= c {
            cols.resize_with(c + 1, Vec::new);
        }
        cols[c].push(*x);
    }
    for c in &mut cols {
        c.sort_by_key(|x| x.seq);
    }
    cols
}

/// How much each column of `plex` grows or shrinks for a change of `delta` bytes: a striped
/// plex whole stripes of every column (rounded up), a concatenated one `delta` in blocks.
fn per_column(plex: &LunPlex, columns: usize, delta: u64) -> u64 {
    if plex.stripe_size > 0 {
        let s = u64::from(plex.stripe_size);
        delta.div_ceil(s * columns as u64) * s
    } else {
        delta.div_ceil(BLOCK_SIZE) * BLOCK_SIZE
    }
}

/// Lays out an extend of `lun` by `delta` bytes: one new extent (the next `seq`) at the end
/// of every column of every plex, on the drive of the column's last extent; a span LUN with
/// `drives` given spreads it evenly over those, in order. `VDS_E_NOT_ENOUGH_SPACE` names the
/// drive without room.
pub(crate) fn plan_extend(
    st: &State,
    data_dir: &Path,
    lun: &Lun,
    delta: u64,
    drives: Option<&[Uuid]>,
) -> Result<Growth, VdsError> {
    if let Some(ds) = drives {
        if lun.lun_type != LunType::Span || lun.plexes.len() != 1 {
            return Err(VdsError::invalid_arg(
                "drives",
                format!(
                    "only a span LUN is extended onto drives of the caller's choice; LUN {} is \
                     {} and grows on the drives it has",
                    lun.id,
                    lun.lun_type.short_name()
                ),
            ));
        }
        if ds.is_empty() {
            return Err(VdsError::invalid_arg("drives", "empty"));
        }
        check_drives(st, data_dir, lun.subsystem, ds)?;
    }
    let mut out = Growth {
        extents: Vec::new(),
        size: 0,
    };
    for p in &lun.plexes {
        let cols = columns_of(lun, p.id);
        let g = per_column(p, cols.len(), delta);
        if out.size == 0 {
            out.size = lun.size_bytes + g * cols.len() as u64;
        }
        for (c, col) in cols.iter().enumerate() {
            let last = col.last().expect("a column has an extent");
            let targets: Vec<(Uuid, u64)> = match drives {
                Some(ds) => {
                    let blocks = g / BLOCK_SIZE;
                    let n = ds.len() as u64;
                    if blocks < n {
                        return Err(VdsError::invalid_arg(
                            "bytes",
                            format!("{g} bytes cannot be spread over {n} drives"),
                        ));
                    }
                    let mut v: Vec<(Uuid, u64)> =
                        ds.iter().map(|d| (*d, blocks / n * BLOCK_SIZE)).collect();
                    v.last_mut().expect("not empty").1 += blocks % n * BLOCK_SIZE;
                    v
                }
                None => vec![(last.drive, g)],
            };
            for (k, (drive, len)) in targets.into_iter().enumerate() {
                let d = st.drives.get(&drive).ok_or_else(|| {
                    VdsError::new(
                        Hresult::VDS_E_PROVIDER_CACHE_CORRUPT,
                        format!("drive {drive} of LUN {} is missing", lun.id),
                    )
                })?;
                if d.status != DriveStatus::Online {
                    return Err(VdsError::new(
                        Hresult::VDS_E_OBJECT_STATUS_FAILED,
                        format!("drive {drive} is {}", d.status.short_name()),
                    ));
                }
                let offset = place_besides(st, d, len, &out.extents)?;
                out.extents.push(Extent {
                    plex: p.id,
                    column: c as u32,
                    seq: last.seq + 1 + k as u32,
                    drive,
                    offset,
                    size: len,
                });
            }
        }
    }
    if out.size > MAX_LUN_SIZE {
        return Err(VdsError::invalid_arg(
            "bytes",
            format!("the LUN would exceed the {MAX_LUN_SIZE}-byte limit"),
        ));
    }
    Ok(out)
}

/// The largest number of bytes an extend of `lun` (onto `drives`) adds now, found by
/// bisection over `plan_extend` itself (monotone in the size, as `plan`); the error of the
/// smallest extend when not even that fits.
pub(crate) fn max_extend(
    st: &State,
    data_dir: &Path,
    lun: &Lun,
    drives: Option<&[Uuid]>,
) -> Result<u64, VdsError> {
    let fits = |b: u64| plan_extend(st, data_dir, lun, b * BLOCK_SIZE, drives).is_ok();
    let mut lo = drives.map_or(1, |d| d.len().max(1)) as u64;
    plan_extend(st, data_dir, lun, lo * BLOCK_SIZE, drives)?;
    let mut hi = (MAX_LUN_SIZE - lun.size_bytes.min(MAX_LUN_SIZE)) / BLOCK_SIZE + 1;
    if lo >= hi || fits(hi - 1) {
        return Ok((hi - 1).max(lo) * BLOCK_SIZE);
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    // A striped LUN grows by whole stripes: the largest request is the growth itself.
    let g = plan_extend(st, data_dir, lun, lo * BLOCK_SIZE, drives)?;
    Ok(g.size - lun.size_bytes)
}

/// A shrink of `lun` by `delta` bytes: its extents after (whole trailing extents dropped, the
/// last one kept cut short), the extents dropped, and the new size.
pub(crate) fn plan_shrink(
    lun: &Lun,
    delta: u64,
) -> Result<(Vec<Extent>, Vec<Extent>, u64), VdsError> {
    // (plex, column, seq) -> the extent's new size (0: dropped).
    let mut sizes: HashMap<(Uuid, u32, u32), u64> = HashMap::new();
    let mut size = 0;
    for p in &lun.plexes {
        let cols = columns_of(lun, p.id);
        let g = per_column(p, cols.len(), delta);
        let col_len: u64 = cols[0].iter().map(|x| x.size).sum();
        if g >= col_len {
            return Err(VdsError::invalid_arg(
                "bytes",
                format!(
                    "removing {} bytes from a {}-byte LUN leaves nothing",
                    g * cols.len() as u64,
                    lun.size_bytes
                ),
            ));
        }
        size = lun.size_bytes - g * cols.len() as u64;
        for col in cols {
            let mut cut = g;
            for x in col.into_iter().rev() {
                let left = x.size - cut.min(x.size);
                cut -= x.size - left;
                sizes.insert((x.plex, x.column, x.seq), left);
            }
        }
    }
    let (mut kept, mut dropped) = (Vec::new(), Vec::new());
    for x in &lun.extents {
        match sizes.get(&(x.plex, x.column, x.seq)).copied() {
            Some(0) => dropped.push(*x),
            Some(n) => kept.push(Extent { size: n, ..*x }),
            None => kept.push(*x),
        }
    }
    Ok((kept, dropped, size))
}

/// The file of an extent on a `dir` drive.
pub(crate) fn extent_file(drive: &Drive, lun: Uuid, x: &Extent) -> PathBuf {
    Path::new(&drive.path)
        .join(EXTENT_DIR)
        .join(format!("{lun}-{}-{}-{}", x.plex, x.column, x.seq))
}

/// The extent files of `lun` (on its `dir` drives), to remove after it is deleted.
pub(crate) fn files_of(drives: &HashMap<Uuid, Drive>, lun: &Lun) -> Vec<PathBuf> {
    lun.extents
        .iter()
        .filter_map(|x| {
            let d = drives.get(&x.drive)?;
            (d.kind == DriveKind::Dir).then(|| extent_file(d, lun.id, x))
        })
        .collect()
}

/// Files of LUN `lun` in the extent directories of its `dir` drives that none of its extents
/// names: what a crash left between making an extend's files and its commit, or between a
/// shrink's commit and the removal of what it dropped. Removed with the LUN.
pub(crate) fn stray_files_of(drives: &HashMap<Uuid, Drive>, lun: &Lun) -> Vec<PathBuf> {
    let named = files_of(drives, lun);
    let prefix = format!("{}-", lun.id);
    let mut dirs: Vec<PathBuf> = lun
        .extents
        .iter()
        .filter_map(|x| drives.get(&x.drive))
        .filter(|d| d.kind == DriveKind::Dir)
        .map(|d| Path::new(&d.path).join(EXTENT_DIR))
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs.iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flat_map(|rd| rd.filter_map(Result::ok))
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(&prefix) && is_extent_name(&n)
        })
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| !named.contains(p))
        .collect()
}

/// Makes the files of `extents` of LUN `lun` on `dir` drives: sparse, mode 0600, never over
/// an existing file or through a link, in a `vds-extents` directory proved vds's own
/// (`lifecycle::open_private_dir`); allocated when `allocate` (a LUN that is not thin). On
/// error the files made are removed again.
pub(crate) fn make_files(
    drives: &HashMap<Uuid, Drive>,
    lun: Uuid,
    extents: &[Extent],
    allocate: bool,
) -> io::Result<Vec<PathBuf>> {
    let mut made = Vec::new();
    let r = (|| {
        for x in extents {
            let Some(d) = drives.get(&x.drive).filter(|d| d.kind == DriveKind::Dir) else {
                continue;
            };
            let path = extent_file(d, lun, x);
            let (dir, name) = private_dir_of(&path)?;
            let f = lifecycle::create_new_in(&dir, name, x.size)?;
            made.push(path.clone());
            if allocate {
                lifecycle::allocate_file(&f, 0, x.size).map_err(|e| {
                    io::Error::new(e.kind(), format!("allocating {}: {e}", path.display()))
                })?;
            }
        }
        Ok(())
    })();
    match r {
        Ok(()) => Ok(made),
        Err(e) => {
            remove_files(&made);
            Err(e)
        }
    }
}

/// The `vds-extents` directory holding an extent file (opened and proved vds's own) and the
/// file's name in it.
fn private_dir_of(path: &Path) -> io::Result<(std::fs::File, &str)> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Err(io::Error::other(format!(
            "{} is not an extent file",
            path.display()
        )));
    };
    Ok((lifecycle::open_private_dir(dir)?, name))
}

/// Cuts an extent file short (a shrink), through its directory's handle.
pub(crate) fn cut_file(path: &Path, len: u64) -> io::Result<()> {
    let (dir, name) = private_dir_of(path)?;
    let f = lifecycle::open_in(&dir, name)?;
    f.set_len(len)?;
    f.sync_all()
}

/// Removes extent files (a deleted LUN's, or those of a create that failed), each through its
/// directory's handle.
pub(crate) fn remove_files(files: &[PathBuf]) {
    for f in files {
        let r = private_dir_of(f).and_then(|(dir, name)| lifecycle::remove_in(&dir, name));
        match r {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(err) => {
                tracing::warn!(path = %f.display(), error = %err, "could not remove an extent file")
            }
            Ok(()) => {}
        }
    }
}

/// Removes the files in the `vds-extents` directory of every ONLINE `dir` drive (its label
/// proved) that no extent of the store names: a daemon killed while it created a LUN or moved a
/// plex (the files are made before the record is committed) or deleted one (the record goes
/// first) leaves them behind. Only names vds makes (`<uuid>-<uuid>-<n>-<n>`) are considered,
/// and the directory must be vds's own. Run at start, before any create.
pub(crate) fn remove_leftover_files(st: &State) {
    let wanted: std::collections::HashSet<PathBuf> = st
        .luns
        .values()
        .flat_map(|e| files_of(&st.drives, &e.rec.lun))
        .collect();
    for d in st.drives.values() {
        if d.kind != DriveKind::Dir || d.status != vds_model::DriveStatus::Online {
            continue;
        }
        let dir = Path::new(&d.path).join(EXTENT_DIR);
        if std::fs::symlink_metadata(&dir).is_err() {
            continue;
        }
        let Ok(names) = std::fs::read_dir(&dir) else {
            continue;
        };
        let leftovers: Vec<PathBuf> = names
            .flatten()
            .filter_map(|n| n.file_name().to_str().map(str::to_owned))
            .filter(|n| is_extent_name(n))
            .map(|n| dir.join(n))
            .filter(|p| !wanted.contains(p))
            .collect();
        for p in &leftovers {
            tracing::warn!(path = %p.display(), "removing an extent file no LUN uses (interrupted create, move or delete)");
        }
        remove_files(&leftovers);
    }
}

/// Whether `name` is one vds gives an extent file: `<lun>-<plex>-<column>-<seq>`.
fn is_extent_name(name: &str) -> bool {
    let (Some(lun), Some(rest)) = (name.get(..36), name.get(36..)) else {
        return false;
    };
    let Some(rest) = rest.strip_prefix('-') else {
        return false;
    };
    let (Some(plex), Some(rest)) = (rest.get(..36), rest.get(36..)) else {
        return false;
    };
    let mut nums = rest.split('-').skip(1);
    Uuid::parse_str(lun).is_ok()
        && Uuid::parse_str(plex).is_ok()
        && rest.starts_with('-')
        && nums.next().is_some_and(|c| c.parse::<u32>().is_ok())
        && nums.next().is_some_and(|q| q.parse::<u32>().is_ok())
        && nums.next().is_none()
}

/// What the provider keeps open per drive: a `block` drive's store (opened once, shared by
/// every extent on it) and the filtered store of every segment on the drive, with the fault
/// filters they all apply.
#[derive(Default)]
pub(crate) struct DriveIo {
    drives: Mutex<HashMap<Uuid, DriveEntry>>,
}

#[derive(Default)]
struct DriveEntry {
    block: Option<Arc<dyn BackingStore>>,
    filters: Vec<FaultFilterSpec>,
    segments: Vec<Weak<Filtered>>,
}

impl DriveIo {
    /// The store of one extent, behind the drive's fault filters.
    fn segment(&self, d: &Drive, lun: Uuid, x: &Extent) -> io::Result<Segment> {
        let mut g = self.drives.lock();
        let e = g.entry(d.id).or_default();
        let (store, offset): (Arc<dyn BackingStore>, u64) = match d.kind {
            DriveKind::Dir => {
                let path = extent_file(d, lun, x);
                let (dir, name) = private_dir_of(&path)?;
                let f = FileStore::from_file(lifecycle::open_in(&dir, name)?, &path)?;
                // Longer is fine: a shrink commits before it cuts the file short.
                if f.size() < x.size {
                    return Err(io::Error::other(format!(
                        "{} is {} bytes, its extent {}",
                        path.display(),
                        f.size(),
                        x.size
                    )));
                }
                (Arc::new(f), 0)
            }
            DriveKind::Block => {
                let store = match &e.block {
                    Some(s) => s.clone(),
                    None => {
                        let s = open_block_drive(Path::new(&d.path))?;
                        e.block = Some(s.clone());
                        s
                    }
                };
                if x.offset
                    .checked_add(x.size)
                    .is_none_or(|end| end > store.size())
                {
                    return Err(io::Error::other(format!(
                        "extent {}+{} beyond drive {} ({} bytes)",
                        x.offset,
                        x.size,
                        d.path,
                        store.size()
                    )));
                }
                (store, x.offset)
            }
        };
        let filtered = Arc::new(Filtered::new(store, to_filters(&e.filters)));
        e.segments.retain(|w| w.strong_count() > 0);
        e.segments.push(Arc::downgrade(&filtered));
        Ok(Segment {
            store: filtered,
            offset,
            len: x.size,
        })
    }

    /// Sets the fault filters of every segment on drive `id` (and of those opened later).
    pub(crate) fn set_filters(&self, id: Uuid, filters: &[FaultFilterSpec]) {
        let mut g = self.drives.lock();
        let e = g.entry(id).or_default();
        e.filters = filters.to_vec();
        e.segments.retain(|w| w.strong_count() > 0);
        for s in e.segments.iter().filter_map(Weak::upgrade) {
            s.set_filters(to_filters(filters));
        }
    }

    /// Zeroes `extents` that are on `block` drives, through the drive's one open store (a
    /// range another LUN used may still hold its data; a new file on a `dir` drive is empty).
    pub(crate) fn zero_block_extents(
        &self,
        drives: &HashMap<Uuid, Drive>,
        extents: &[Extent],
    ) -> io::Result<()> {
        for x in extents {
            let Some(d) = drives.get(&x.drive).filter(|d| d.kind == DriveKind::Block) else {
                continue;
            };
            let store = {
                let mut g = self.drives.lock();
                let e = g.entry(d.id).or_default();
                match &e.block {
                    Some(s) => s.clone(),
                    None => {
                        let s = open_block_drive(Path::new(&d.path))?;
                        e.block = Some(s.clone());
                        s
                    }
                }
            };
            // Deallocated where the drive can (a hole in a file, a discard that reads back
            // zeroes on a device), written with zeroes where it cannot.
            store.unmap(x.offset, x.size)?;
            store.flush()?;
        }
        Ok(())
    }

    /// Drops a block drive's open store (it closes with its last extent), so the next extent
    /// opens the drive's node again: the drive was found under a new one.
    pub(crate) fn close_block(&self, id: Uuid) {
        if let Some(e) = self.drives.lock().get_mut(&id) {
            e.block = None;
        }
    }

    /// Forgets a removed drive (its block store closes with its last extent).
    pub(crate) fn forget(&self, id: Uuid) {
        self.drives.lock().remove(&id);
    }
}

/// A `block` drive: a block device (opened `O_EXCL`), or a regular file standing in for one.
fn open_block_drive(path: &Path) -> io::Result<Arc<dyn BackingStore>> {
    let md = std::fs::metadata(path)?;
    if md.is_file() {
        Ok(Arc::new(vds_backstore::FileStore::open(path)?))
    } else {
        Ok(Arc::new(vds_backstore::BlockStore::open(path)?))
    }
}

/// The state a plex opens in: FAILED stays failed, a plex being rebuilt (or stale) is stale,
/// any other is current.
fn plex_state(p: &LunPlex) -> PlexState {
    if p.status == LunPlexStatus::Failed || p.health == Health::Failed {
        PlexState::Failed
    } else if matches!(p.health, Health::Rebuilding | Health::Stale) {
        PlexState::Stale
    } else {
        PlexState::Current
    }
}

/// The layout of plex `plex` of `lun` from its extents.
fn layout_of(
    io: &DriveIo,
    drives: &HashMap<Uuid, Drive>,
    lun: &Lun,
    plex: &LunPlex,
) -> io::Result<PlexLayout> {
    let mut columns: Vec<Vec<(u32, Segment)>> = Vec::new();
    for x in lun.extents.iter().filter(|x| x.plex == plex.id) {
        let d = drives.get(&x.drive).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("drive {} is gone", x.drive),
            )
        })?;
        let c = x.column as usize;
        if columns.len() <= c {
            columns.resize_with(c + 1, Vec::new);
        }
        columns[c].push((x.seq, io.segment(d, lun.id, x)?));
    }
    if columns.is_empty() || columns.iter().any(Vec::is_empty) {
        return Err(io::Error::other(format!("plex {} has no extents", plex.id)));
    }
    Ok(PlexLayout {
        columns: columns
            .into_iter()
            .map(|mut c| {
                c.sort_by_key(|(s, _)| *s);
                c.into_iter().map(|(_, s)| s).collect()
            })
            .collect(),
        stripe_size: u64::from(plex.stripe_size.max(1)),
    })
}

/// The atomic-write journal of the extent-backed LUN `lun`: `<data dir>/luns/<lun>.img.atomic`,
/// beside where a file LUN of that id would be (the data dir is vds's own; a drive can die).
pub(crate) fn journal_of(data_dir: &Path, lun: Uuid) -> PathBuf {
    vds_backstore::journal::journal_path(&crate::storage::default_lun_path(data_dir, lun))
}

/// The tag of a LUN's journal records: a record written for another LUN is never replayed.
pub(crate) fn journal_tag(lun: Uuid) -> u64 {
    let (hi, lo) = lun.as_u64_pair();
    hi ^ lo
}

/// A LUN's composite store, its plexes that could not be opened, behind the LUN's filters.
pub(crate) type Opened = (Arc<Filtered>, Option<Arc<RaidStore>>, Vec<usize>);

/// The layouts of every plex of `lun` and the states they open in; a plex whose extents
/// cannot be opened is FAILED (over the layout of a working one, never read or written) and
/// listed in the third value unless its record already said so.
pub(crate) fn layouts(
    io: &DriveIo,
    drives: &HashMap<Uuid, Drive>,
    lun: &Lun,
) -> io::Result<(Vec<PlexLayout>, Vec<PlexState>, Vec<usize>)> {
    let mut layouts = Vec::new();
    let mut states = Vec::new();
    let mut broken = Vec::new();
    let mut first_err = None;
    for (i, p) in lun.plexes.iter().enumerate() {
        let state = plex_state(p);
        match layout_of(io, drives, lun, p) {
            Ok(l) => {
                layouts.push(Some(l));
                states.push(state);
            }
            Err(e) => {
                tracing::warn!(lun = %lun.id, plex = %p.id, error = %e, "plex cannot be opened; FAILED");
                if state != PlexState::Failed {
                    broken.push(i);
                }
                layouts.push(None);
                states.push(PlexState::Failed);
                first_err.get_or_insert(e);
            }
        }
    }
    let Some(any) = layouts.iter().flatten().next().cloned() else {
        return Err(first_err.unwrap_or_else(|| io::Error::other("no plex")));
    };
    let layouts = layouts
        .into_iter()
        .map(|l| l.unwrap_or_else(|| any.clone()))
        .collect();
    Ok((layouts, states, broken))
}

/// Opens an extent-backed LUN: plex i of the store is `lun.plexes[i]`, in the state its
/// record says, failures told to `observer`; also the plexes that could not be opened.
pub(crate) fn open(
    io: &DriveIo,
    drives: &HashMap<Uuid, Drive>,
    lun: &Lun,
    observer: Arc<dyn PlexObserver>,
) -> io::Result<(Arc<RaidStore>, Vec<usize>)> {
    let (layouts, states, broken) = layouts(io, drives, lun)?;
    let store = RaidStore::new(layouts, states, observer)?;
    Ok((Arc::new(store), broken))
}
