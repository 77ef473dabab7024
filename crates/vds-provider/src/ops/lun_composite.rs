//! CreateLun of an extent-backed LUN (`drives` given; BEHAVIOUR.md §15): the same checks and
//! reservations as any CreateLun, the layout planned on the drives under the lock (its extents
//! pending until the commit), then a job that makes the extent files, opens the composite
//! store and commits the LUN.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use uuid::Uuid;
use vds_backstore::BackingStore;
use vds_model::{
    AsyncOutputType, Backing, BackingKind, Drive, Hresult, JobOutput, Lun, LunHints, LunType,
    ObjectKind, SubsystemStatus, UnmaskingList,
};

use crate::command::CreateLunArgs;
use crate::engine::{new_lun_model, round_up, Inner, Slots, MAX_LUN_SIZE};
use crate::extents::{self, Request};
use crate::jobs::JobHandle;
use crate::{Outcome, Provider, VdsError};

use super::lun_create::commit_new_lun;
use super::{canceled, check_filters, check_name, storage_err, JobResult};

/// What the job of a composite create needs.
struct Work {
    lun: Lun,
    hints: LunHints,
    targets: Vec<Uuid>,
    drives: HashMap<Uuid, Drive>,
}

impl Provider {
    /// CreateLun with `drives` (or `plexes`, `stripe_size`): an extent-backed LUN.
    pub(super) fn create_composite_lun(&self, a: CreateLunArgs) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Subsystem, a.subsystem)?;
        let targets = a.targets.clone().unwrap_or_default();
        for (i, t) in targets.iter().enumerate() {
            st.lookup(ObjectKind::Target, *t, Some(&format!("targets[{i}]")))?;
        }
        // Step 4.
        if a.size_bytes == 0 || a.size_bytes > MAX_LUN_SIZE {
            return Err(VdsError::invalid_arg(
                "size_bytes",
                format!("{} is not from 1 to {MAX_LUN_SIZE}", a.size_bytes),
            ));
        }
        let Some(drives) = a.drives.clone().filter(|d| !d.is_empty()) else {
            return Err(VdsError::invalid_arg(
                "drives",
                "an extent-backed LUN (plexes, stripe_size) needs its drives",
            ));
        };
        if a.drive.is_some() {
            return Err(VdsError::invalid_arg(
                "drive",
                "give drives for an extent-backed LUN, not drive",
            ));
        }
        if a.backing.is_some() {
            return Err(VdsError::invalid_arg(
                "backing",
                "an extent-backed LUN's storage is its extents on drives",
            ));
        }
        let lun_type = a.lun_type.unwrap_or(LunType::Simple);
        if lun_type == LunType::Unknown {
            return Err(VdsError::invalid_arg("type", "unknown cannot be requested"));
        }
        let friendly = a
            .friendly_name
            .as_deref()
            .map(|n| check_name("friendly_name", n))
            .transpose()?;
        let mask = UnmaskingList::parse(a.unmasking_list.as_deref().unwrap_or("*"))
            .map_err(|e| VdsError::invalid_arg("unmasking_list", e))?;
        for (i, t) in targets.iter().enumerate() {
            if targets[..i].contains(t) || st.targets[t].t.subsystem != a.subsystem {
                return Err(VdsError::invalid_arg(
                    &format!("targets[{i}]"),
                    format!("target {t} is listed twice or belongs to another subsystem"),
                ));
            }
        }
        let hints = match &a.hints {
            Some(h) => {
                super::lun_info::judge_hints(
                    h,
                    LunHints::default(),
                    crate::engine::BLOCK_SIZE as u32,
                )?
                .0
            }
            None => LunHints::default(),
        };
        check_filters(inner, "filters", &[])?;
        let req = Request {
            lun_type,
            drives: drives.clone(),
            plexes: a.plexes,
            stripe_size: a.stripe_size,
        };
        let plan = extents::plan(
            st,
            &inner.config.data_dir,
            a.subsystem,
            &req,
            round_up(a.size_bytes),
        )?;
        // Step 6.
        let busy: Vec<(ObjectKind, Uuid)> =
            targets.iter().map(|t| (ObjectKind::Target, *t)).collect();
        st.check_free(&busy)?;
        // Step 7.
        if st.subsystems[&a.subsystem].status == SubsystemStatus::Failed {
            return Err(VdsError::new(
                Hresult::VDS_E_OBJECT_STATUS_FAILED,
                format!("subsystem {} is FAILED", a.subsystem),
            ));
        }
        if let Some(n) = &friendly {
            if let Some(other) = st.lun_names.get(n) {
                return Err(VdsError::new(
                    Hresult::VDS_E_OBJECT_EXISTS,
                    format!("friendly_name: LUN {other} is already called {n:?}"),
                ));
            }
        }
        let id = Uuid::new_v4();
        let mut friendly =
            friendly.unwrap_or_else(|| format!("lun-{}", &id.simple().to_string()[..8]));
        if st.lun_names.contains_key(&friendly) {
            friendly = format!("lun-{}", id.simple());
        }
        st.lun_names.insert(friendly.clone(), id);
        st.pending_extents.insert(id, plan.extents.clone());
        let mut slot_ids = vec![id];
        slot_ids.extend(&targets);
        let slots = inner.claim(st, &slot_ids);
        let mut lun = new_lun_model(
            id,
            a.subsystem,
            drives[0],
            friendly.clone(),
            plan.size,
            mask.to_string(),
            plan.lun_type,
            a.thin.unwrap_or(true),
            Vec::new(),
            Backing {
                kind: BackingKind::Extents,
                path: None,
            },
            Vec::new(),
        );
        lun.plexes = plan.plexes;
        lun.extents = plan.extents;
        lun.read_only = a.read_only.unwrap_or(false);
        // Judged by `create_lun` before anything was reserved.
        if let Some(p) = a
            .load_balance
            .and_then(vds_model::LoadBalancePolicy::from_i64)
        {
            lun.load_balance = p;
        }
        lun.flags = hints.lun_flags();
        lun.rebuild_priority = hints.rebuild_priority;
        let work = Work {
            lun,
            hints,
            targets,
            drives: drives.iter().map(|d| (*d, st.drives[d].clone())).collect(),
        };
        drop(g);
        self.spawn_job(
            AsyncOutputType::CreateLun,
            a.subsystem,
            slots,
            move |inner, job, slots| {
                let r = create_composite_work(inner, job, work, slots);
                if r.is_err() {
                    let mut st = inner.state.lock();
                    st.lun_names.remove(&friendly);
                    st.pending_extents.remove(&id);
                }
                r
            },
        )
    }
}

/// The job body: extent files, the composite store, the commit. Files made are removed when
/// the LUN is not created.
fn create_composite_work(
    inner: &Arc<Inner>,
    job: &JobHandle,
    mut w: Work,
    slots: Slots,
) -> JobResult {
    let files: Vec<PathBuf> = extents::make_files(&w.drives, w.lun.id, &w.lun.extents, !w.lun.thin)
        .map_err(|e| storage_err("making the LUN's extent files".to_string(), &e))?;
    let r = (|| {
        // A range of a `block` drive may hold the data of a LUN deleted before: the new LUN
        // must never read it.
        inner
            .drive_io
            .zero_block_extents(&w.drives, &w.lun.extents)
            .map_err(|e| storage_err("zeroing the LUN's extents".to_string(), &e))?;
        job.set_percent(50);
        if job.cancel_requested() {
            return Err(canceled());
        }
        let (filtered, raid, broken) = inner
            .open_lun_store(&w.drives, &w.lun)
            .map_err(|e| storage_err("opening the LUN's extents".to_string(), &e))?;
        if !broken.is_empty() || filtered.size() != w.lun.size_bytes {
            return Err(VdsError::new(
                Hresult::VDS_E_IO_ERROR,
                format!(
                    "the new LUN's extents opened as {} bytes with plexes {broken:?} unusable",
                    filtered.size()
                ),
            ));
        }
        job.set_percent(90);
        let mut g = inner.state.lock();
        commit_new_lun(
            inner,
            job,
            &mut g,
            &mut w.lun,
            w.hints,
            &w.targets,
            (filtered, raid),
            None,
            false,
            slots,
        )
    })();
    if let Err(e) = r {
        extents::remove_files(&files);
        return Err(e);
    }
    Ok((Hresult::S_OK, Some(JobOutput::Lun(Box::new(w.lun)))))
}
