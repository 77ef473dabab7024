//! ExtendLun and ShrinkLun (jobs): the file or store is resized (and a fully allocated file's
//! new end allocated) without the lock, then the new size is committed; a failure, a cancel
//! or a store error puts the old size back.

use std::sync::Arc;

use uuid::Uuid;
use vds_backstore::{BackingStore, Filtered};
use vds_model::{
    AsyncOutputType, BackingKind, Hresult, JobOutput, Lun, LunStatus, ObjectKind, TransitionState,
};
use vds_scsi::LogicalUnit;

use crate::commit::Change;
use crate::engine::{round_up, Inner, Slots, MAX_LUN_SIZE};
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
}

impl Provider {
    pub(super) fn resize_lun(
        &self,
        id: Uuid,
        bytes: u64,
        extend: bool,
    ) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Lun, id)?;
        if st.luns[&id].rec.lun.backing.kind == vds_model::BackingKind::Extents {
            return Err(VdsError::not_supported(format!(
                "LUN {id} is extent-backed; extending or shrinking it is not supported yet"
            )));
        }
        let r = check_resize(st, id, bytes, extend)?;
        let slots = inner.claim(st, &[id]);
        let transition = if extend {
            TransitionState::Extending
        } else {
            TransitionState::Shrinking
        };
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
            resize_work(inner, job, r, slots)
        })
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
