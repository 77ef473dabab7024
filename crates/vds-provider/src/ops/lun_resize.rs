//! ExtendLun and ShrinkLun (jobs): the file or store is resized (and a fully allocated file's
//! new end allocated) without the lock, then the new size is committed; a failure, a cancel
//! or a store error puts the old size back. An extent-backed LUN (BEHAVIOUR.md §15) grows by
//! a new extent at the end of every column (`extents::plan_extend`) and shrinks by dropping
//! or cutting its trailing extents (`extents::plan_shrink`); its composite store is laid out
//! again before the commit and back on failure. QueryMaxLunExtendSize answers from the same
//! planner (`extents::max_extend`).

use std::sync::Arc;

use uuid::Uuid;
use vds_backstore::{BackingStore, Filtered};
use vds_model::{
    AsyncOutputType, BackingKind, DriveKind, Extent, Health, Hresult, JobOutput, Lun,
    LunPlexStatus, LunStatus, ObjectKind, TransitionState,
};
use vds_scsi::LogicalUnit;

use crate::commit::Change;
use crate::engine::{round_up, Inner, Slots, BLOCK_SIZE, MAX_LUN_SIZE};
use crate::jobs::JobHandle;
use crate::state::State;
use crate::storage::{allocate, fs_space};
use crate::{Outcome, Provider, VdsError};

use super::lun::set_size;
use super::{canceled, storage_err, JobResult};

/// A resize that passed its checks.
struct Resize {
    id: Uuid,
    lun: Lun,
    new_size: u64,
    extend: bool,
    filtered: Arc<Filtered>,
    /// The LU told of the new capacity.
    lu: Arc<LogicalUnit>,
    /// An extent-backed LUN's new extents.
    extents: Option<ExtentResize>,
}

impl Provider {
    pub(super) fn resize_lun(
        &self,
        id: Uuid,
        bytes: u64,
        extend: bool,
        drives: Option<Vec<Uuid>>,
    ) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Lun, id)?;
        for (i, d) in drives.iter().flatten().enumerate() {
            st.lookup(ObjectKind::Drive, *d, Some(&format!("drives[{i}]")))?;
        }
        let is_extents = st.luns[&id].rec.lun.backing.kind == BackingKind::Extents;
        if drives.is_some() && !is_extents {
            return Err(VdsError::invalid_arg(
                "drives",
                format!("LUN {id} is not extent-backed; it grows where its storage is"),
            ));
        }
        let mut r = check_resize(st, id, bytes, extend)?;
        if is_extents {
            r.extents = Some(check_extents(inner, st, &r, bytes, drives.as_deref())?);
        }
        let slots = inner.claim(st, &[id]);
        let transition = if extend {
            TransitionState::Extending
        } else {
            TransitionState::Shrinking
        };
        if let Some(ExtentResize::Grow(g)) = &r.extents {
            st.pending_extents.insert(id, g.extents.clone());
        }
        inner.stage(
            st,
            Change::new().apply(|st| set_transition(st, id, transition)),
        );
        drop(g);
        let op = if extend {
            AsyncOutputType::ExtendLun
        } else {
            AsyncOutputType::ShrinkLun
        };
        self.spawn_job(op, id, slots, move |inner, job, slots| {
            let r = if r.extents.is_some() {
                extents_work(inner, job, r, slots)
            } else {
                resize_work(inner, job, r, slots)
            };
            inner.state.lock().pending_extents.remove(&id);
            r
        })
    }

    /// `GET /v1/luns/{id}/max-extend-size` (QueryMaxLunExtendSize): the most bytes an extend
    /// adds now. An extent-backed LUN answers from its planner (onto `drives` when given, a
    /// span only); a thin file LUN what the size limit leaves; a fully allocated one also no
    /// more than its filesystem has free; a block device's size is the device's.
    pub(super) fn max_extend_size(
        &self,
        id: Uuid,
        drives: Option<Vec<Uuid>>,
    ) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut st = inner.state.lock();
        inner.object_call(&mut st, ObjectKind::Lun, id)?;
        for (i, d) in drives.iter().flatten().enumerate() {
            st.lookup(ObjectKind::Drive, *d, Some(&format!("drives[{i}]")))?;
        }
        let lun = st.luns[&id].rec.lun.clone();
        let left = MAX_LUN_SIZE.saturating_sub(lun.size_bytes);
        match lun.backing.kind {
            BackingKind::Extents => {
                check_plexes(&lun)?;
                let n = crate::extents::max_extend(
                    &st,
                    &inner.config.data_dir,
                    &lun,
                    drives.as_deref(),
                )?;
                Ok(Outcome::Size(n))
            }
            _ if drives.is_some() => Err(VdsError::invalid_arg(
                "drives",
                format!("LUN {id} is not extent-backed; it grows where its storage is"),
            )),
            BackingKind::Block => Err(VdsError::not_supported(format!(
                "LUN {id} is a block device: its size is the device's"
            ))),
            BackingKind::File if !lun.thin => {
                let avail = lun
                    .backing
                    .path
                    .as_deref()
                    .and_then(|p| std::path::Path::new(p).parent())
                    .and_then(|d| fs_space(d).ok())
                    .map_or(0, |(_, a)| a);
                Ok(Outcome::Size(avail.min(left) / BLOCK_SIZE * BLOCK_SIZE))
            }
            _ => Ok(Outcome::Size(left)),
        }
    }
}

/// What an extent-backed LUN's resize does to its extents.
enum ExtentResize {
    /// New extents at the ends of the columns.
    Grow(crate::extents::Growth),
    /// The extents after (some cut short), those dropped, the new size.
    Cut(Vec<Extent>, Vec<Extent>, u64),
}

/// Refuses a resize of an extent-backed LUN while a plex is not ONLINE and healthy (a plex
/// being rebuilt or failed would have to grow too).
fn check_plexes(lun: &Lun) -> Result<(), VdsError> {
    if let Some(p) = lun
        .plexes
        .iter()
        .find(|p| p.status != LunPlexStatus::Online || p.health != Health::Healthy)
    {
        return Err(VdsError::new(
            Hresult::VDS_E_OBJECT_STATUS_FAILED,
            format!(
                "plex {} of LUN {} is {} and {}; recover it before resizing",
                p.id,
                lun.id,
                p.status.short_name(),
                p.health.short_name()
            ),
        ));
    }
    Ok(())
}

/// Steps 4-7 of a resize of an extent-backed LUN: its plexes, the hint that keeps a
/// write-intent bitmap, and the layout (the space: `VDS_E_NOT_ENOUGH_SPACE`).
fn check_extents(
    inner: &Inner,
    st: &State,
    r: &Resize,
    bytes: u64,
    drives: Option<&[Uuid]>,
) -> Result<ExtentResize, VdsError> {
    let lun = &r.lun;
    if drives.is_some() && !r.extend {
        return Err(VdsError::invalid_arg(
            "drives",
            "a shrink gives back the LUN's last extents; it takes no drives",
        ));
    }
    check_plexes(lun)?;
    let delta = round_up(bytes.min(MAX_LUN_SIZE + 1));
    if r.extend {
        let g = crate::extents::plan_extend(st, &inner.config.data_dir, lun, delta, drives)?;
        Ok(ExtentResize::Grow(g))
    } else {
        let (kept, dropped, size) = crate::extents::plan_shrink(lun, delta)?;
        Ok(ExtentResize::Cut(kept, dropped, size))
    }
}

fn set_transition(st: &mut State, id: Uuid, t: TransitionState) {
    if let Some(e) = st.luns.get_mut(&id) {
        e.rec.lun.transition_state = t;
    }
}

/// Steps 4-7 of a resize of LUN `id` by `bytes`.
fn check_resize(st: &State, id: Uuid, bytes: u64, extend: bool) -> Result<Resize, VdsError> {
    let lun = st.luns[&id].rec.lun.clone();
    if bytes == 0 {
        return Err(VdsError::invalid_arg("bytes", "must be greater than 0"));
    }
    let delta = round_up(bytes.min(MAX_LUN_SIZE + 1));
    let new_size = if extend {
        match lun.size_bytes.checked_add(delta) {
            Some(s) if s <= MAX_LUN_SIZE => s,
            _ => {
                return Err(VdsError::invalid_arg(
                    "bytes",
                    format!("the LUN would exceed the {MAX_LUN_SIZE}-byte limit"),
                ))
            }
        }
    } else {
        if delta >= lun.size_bytes {
            return Err(VdsError::invalid_arg(
                "bytes",
                format!(
                    "removing {delta} bytes from a {}-byte LUN leaves nothing",
                    lun.size_bytes
                ),
            ));
        }
        lun.size_bytes - delta
    };
    if lun.backing.kind == BackingKind::Block {
        return Err(VdsError::not_supported(format!(
            "LUN {id} is a block device: its size is the device's"
        )));
    }
    st.check_free(&[(ObjectKind::Lun, id)])?;
    if lun.status == LunStatus::Failed {
        return Err(VdsError::new(
            Hresult::VDS_E_OBJECT_STATUS_FAILED,
            format!("LUN {id} is FAILED"),
        ));
    }
    let Some(filtered) = st.luns[&id].filtered.clone() else {
        return Err(VdsError::new(
            Hresult::VDS_E_OBJECT_STATUS_FAILED,
            format!("LUN {id} has no storage"),
        ));
    };
    if extend && lun.backing.kind == BackingKind::File && !lun.thin {
        if let Some(dir) = lun
            .backing
            .path
            .as_deref()
            .and_then(|p| std::path::Path::new(p).parent())
        {
            if let Ok((_, avail)) = fs_space(dir) {
                if avail < delta {
                    return Err(VdsError::new(
                        Hresult::VDS_E_NOT_ENOUGH_SPACE,
                        format!("bytes: {delta} more bytes do not fit in the {avail} bytes free"),
                    ));
                }
            }
        }
    }
    Ok(Resize {
        id,
        lun,
        new_size,
        extend,
        filtered,
        lu: st.lun(id)?.lu.clone(),
        extents: None,
    })
}

/// The job body of ExtendLun and ShrinkLun.
fn resize_work(inner: &Arc<Inner>, job: &JobHandle, r: Resize, slots: Slots) -> JobResult {
    let Resize {
        id,
        lun,
        new_size,
        extend,
        filtered,
        lu,
        extents: _,
    } = r;
    let old = lun.size_bytes;
    let resize = || {
        let io = filtered.resize(new_size).and_then(|()| {
            if extend && !lun.thin && lun.backing.kind == BackingKind::File {
                allocate(
                    lun.backing.path.as_deref().unwrap_or_default(),
                    old,
                    new_size - old,
                )
            } else {
                Ok(())
            }
        });
        job.set_percent(80);
        io
    };
    // Whatever happens, the transition is over; not committed: the old size is back.
    let undo = |_: &mut State, _: &std::io::Result<()>| {
        let _ = filtered.resize(old);
        Change::new().apply(|st| set_transition(st, id, TransitionState::Stable))
    };
    let build = |st: &mut State, io: &std::io::Result<()>| {
        if let Err(e) = io {
            return Err(storage_err(
                format!("LUN {id}: resizing to {new_size} bytes"),
                e,
            ));
        }
        if !job.begin_commit() {
            return Err(canceled());
        }
        let mut rec = st.lun(id)?.rec.clone();
        set_size(&mut rec.lun, new_size);
        rec.lun.transition_state = TransitionState::Stable;
        Ok(Change::new()
            .lun_record(rec)
            .apply(move |_| lu.capacity_changed()))
    };
    let g = inner.state.lock();
    let (g, _, r) = inner.commit_prepared(g, slots, resize, undo, build);
    r?;
    let lun = g.lun(id)?.rec.lun.clone();
    Ok((Hresult::S_OK, Some(JobOutput::Lun(Box::new(lun)))))
}

/// The job body of ExtendLun and ShrinkLun of an extent-backed LUN: an extend makes the new
/// extent files (allocated when the LUN is not thin) and zeroes new `block` ranges, then the
/// store is laid out again and the record committed; a shrink is laid out, committed, and
/// only then are the extents cut (files truncated or removed; `block` ranges need nothing).
/// On any failure the old layout is put back and new files removed.
fn extents_work(inner: &Arc<Inner>, job: &JobHandle, r: Resize, slots: Slots) -> JobResult {
    let Resize {
        id,
        lun,
        lu,
        extents,
        ..
    } = r;
    let extents = extents.expect("an extent resize");
    let (drives, raid, bitmap) = {
        let st = inner.state.lock();
        let e = st.lun(id)?;
        // A write-intent bitmap is made for one size (RaidStore::relayout refuses another):
        // it is detached around the relayout, with the I/O drained and every plex flushed
        // (so no region is dirty), and one for the new size attached. A crash in between
        // finds a bitmap for another size: the whole LUN is compared at the next start.
        let bitmap = crate::recovery::wants_bitmap(&e.hints, e.raid.as_deref());
        let raid = e.raid.clone().ok_or_else(|| {
            VdsError::new(
                Hresult::VDS_E_OBJECT_STATUS_FAILED,
                format!("LUN {id} has no composite store open"),
            )
        })?;
        (st.drives.clone(), raid, bitmap)
    };
    let mut new = lun.clone();
    let (made, dropped) = match &extents {
        ExtentResize::Grow(g) => {
            new.extents.extend(g.extents.iter().copied());
            set_size(&mut new, g.size);
            // A file of the same name is what a crash left between making it and the commit
            // (the name holds this LUN's id and a position it does not use): not kept.
            let stale = Lun {
                extents: g.extents.clone(),
                ..lun.clone()
            };
            crate::extents::remove_files(&crate::extents::files_of(&drives, &stale));
            let made = crate::extents::make_files(&drives, id, &g.extents, !lun.thin)
                .map_err(|e| storage_err("making the new extent files".to_string(), &e))?;
            (made, Vec::new())
        }
        ExtentResize::Cut(kept, dropped, size) => {
            new.extents = kept.clone();
            set_size(&mut new, *size);
            (Vec::new(), dropped.clone())
        }
    };
    let r = (|| {
        if let ExtentResize::Grow(g) = &extents {
            inner
                .drive_io
                .zero_block_extents(&drives, &g.extents)
                .map_err(|e| storage_err("zeroing the new extents".to_string(), &e))?;
        }
        job.set_percent(50);
        let layouts = |l: &Lun| {
            crate::extents::layouts(&inner.drive_io, &drives, l).and_then(|(ls, _, broken)| {
                if broken.is_empty() {
                    Ok(ls)
                } else {
                    Err(std::io::Error::other(format!(
                        "plexes {broken:?} cannot be opened"
                    )))
                }
            })
        };
        let old_layout =
            layouts(&lun).map_err(|e| storage_err(format!("LUN {id}: its extents"), &e))?;
        let new_layout =
            layouts(&new).map_err(|e| storage_err(format!("LUN {id}: the new extents"), &e))?;
        let g = inner.state.lock();
        let (_g, _, r) = inner.commit_prepared(
            g,
            slots,
            || {
                if bitmap {
                    inner.detach_bitmap(&raid)?;
                }
                let r = raid.relayout(new_layout);
                if bitmap {
                    // For the new size, or (the relayout failed) the old one again.
                    inner.attach_bitmap(id, &raid)?;
                }
                r
            },
            |_, _| {
                if bitmap {
                    let _ = inner.detach_bitmap(&raid);
                }
                let _ = raid.relayout(old_layout);
                if bitmap {
                    if let Err(err) = inner.attach_bitmap(id, &raid) {
                        tracing::error!(lun = %id, error = %err, "cannot make the write-intent bitmap again; the LUN runs without one");
                    }
                }
                Change::new().apply(|st| set_transition(st, id, TransitionState::Stable))
            },
            |st, io| {
                if let Err(e) = io {
                    return Err(storage_err(format!("LUN {id}: laying out its store"), e));
                }
                if !job.begin_commit() {
                    return Err(canceled());
                }
                let mut rec = st.lun(id)?.rec.clone();
                rec.lun.extents = new.extents.clone();
                set_size(&mut rec.lun, new.size_bytes);
                rec.lun.transition_state = TransitionState::Stable;
                Ok(Change::new()
                    .lun_record(rec)
                    .apply(move |_| lu.capacity_changed()))
            },
        );
        r
    })();
    if let Err(e) = r {
        crate::extents::remove_files(&made);
        return Err(e);
    }
    // Committed: the space after the new end is given back.
    if let ExtentResize::Cut(kept, _, _) = &extents {
        cut_files(&drives, id, &lun, kept, &dropped);
    }
    let st = inner.state.lock();
    let lun = st.lun(id)?.rec.lun.clone();
    Ok((Hresult::S_OK, Some(JobOutput::Lun(Box::new(lun)))))
}

/// After a committed shrink: the files of `dropped` extents removed, those of extents cut
/// short truncated to their new size.
fn cut_files(
    drives: &std::collections::HashMap<Uuid, vds_model::Drive>,
    id: Uuid,
    old: &Lun,
    kept: &[Extent],
    dropped: &[Extent],
) {
    let gone = Lun {
        extents: dropped.to_vec(),
        ..old.clone()
    };
    crate::extents::remove_files(&crate::extents::files_of(drives, &gone));
    for x in kept {
        let was = old
            .extents
            .iter()
            .find(|o| (o.plex, o.column, o.seq) == (x.plex, x.column, x.seq));
        if was.is_some_and(|o| o.size != x.size) {
            let Some(d) = drives.get(&x.drive).filter(|d| d.kind == DriveKind::Dir) else {
                continue;
            };
            let path = crate::extents::extent_file(d, id, x);
            if let Err(e) = crate::extents::cut_file(&path, x.size) {
                tracing::warn!(path = %path.display(), error = %e, "extent file not cut short");
            }
        }
    }
}
