//! CreateLun (a job): the checks of BEHAVIOUR.md §2 for its arguments, the reservations that
//! keep a concurrent create off the same name and path, and the job that makes or adopts the
//! storage and commits the new LUN.

use std::path::Path;
use std::sync::Arc;

use uuid::Uuid;
use vds_backstore::{BackingStore, Filtered};
use vds_model::{
    AsyncOutputType, BackingKind, EventKind, Hresult, JobOutput, Lun, LunHints, LunType,
    ObjectKind, SubsystemStatus, UnmaskingList,
};
use vds_store::LunRecord;

use crate::backing::Judged;
use crate::command::{BackingSpec, CreateLunArgs};
use crate::commit::Change;
use crate::engine::{naa_hex, new_lun_model, round_up, Inner, Slots, BLOCK_SIZE, MAX_LUN_SIZE};
use crate::jobs::JobHandle;
use crate::state::{LunEntry, State, TargetEntry};
use crate::storage::{
    check_backing, default_lun_path, fs_space, identity_of, open_backing, prepare_storage, Prep,
};
use crate::{Outcome, Provider, VdsError};

use super::drive::{drive_at, is_data_dir_drive};
use super::lun::set_size;
use super::{canceled, check_filters, check_name, storage_err, JobResult};

/// The arguments of a CreateLun that passed steps 4 and 5.
struct Checked {
    size: u64,
    lun_type: LunType,
    friendly: Option<String>,
    mask: UnmaskingList,
    targets: Vec<Uuid>,
    backing: BackingSpec,
    judged: Option<Judged>,
    drive: Uuid,
}

/// The identity of a LUN's storage as `storage::identity_of` records it.
type Identity = Option<(u64, u64)>;

/// Where the new LUN's storage goes and how it is prepared.
struct StoragePlan {
    path: Option<String>,
    owns_file: bool,
    prep: Prep,
}

impl Provider {
    pub(super) fn create_lun(&self, mut a: CreateLunArgs) -> Result<Outcome, VdsError> {
        if let Some(ctx) = &self.inner.cluster {
            cluster_backing(ctx, &mut a)?;
        }
        // Judged first, as SetLoadBalancePolicy judges it (before anything is reserved).
        let policy = a
            .load_balance
            .map(super::controller::judge_policy)
            .transpose()?;
        if a.drives.is_some() || a.plexes.is_some() || a.stripe_size.is_some() {
            return self.create_composite_lun(a);
        }
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Subsystem, a.subsystem)?;
        // References (steps 1-2 for every id argument).
        if let Some(d) = a.drive {
            st.lookup(ObjectKind::Drive, d, Some("drive"))?;
        }
        let targets = a.targets.clone().unwrap_or_default();
        for (i, t) in targets.iter().enumerate() {
            st.lookup(ObjectKind::Target, *t, Some(&format!("targets[{i}]")))?;
        }
        let c = check_args(inner, st, &a, targets)?;
        // CreateLun2: the hints are judged with the other arguments; the job applies them.
        let hints = match &a.hints {
            Some(h) => super::lun_info::judge_hints(h, LunHints::default(), BLOCK_SIZE as u32)?.0,
            None => LunHints::default(),
        };
        // Step 6: the targets whose LUN sets change.
        let busy: Vec<(ObjectKind, Uuid)> =
            c.targets.iter().map(|t| (ObjectKind::Target, *t)).collect();
        st.check_free(&busy)?;
        // Step 7.
        if st.subsystems[&a.subsystem].status == SubsystemStatus::Failed {
            return Err(VdsError::new(
                Hresult::VDS_E_OBJECT_STATUS_FAILED,
                format!("subsystem {} is FAILED", a.subsystem),
            ));
        }
        check_conflicts(st, &inner.config.data_dir, &c)?;
        let thin = a.thin.unwrap_or(true);
        let id = Uuid::new_v4();
        let plan = plan_storage(inner, id, &c, thin)?;
        let mut friendly = c
            .friendly
            .clone()
            .unwrap_or_else(|| format!("lun-{}", &id.simple().to_string()[..8]));
        if st.lun_names.contains_key(&friendly) {
            friendly = format!("lun-{}", id.simple());
        }
        // Reserve the name and path now so that a concurrent create cannot take them.
        st.lun_names.insert(friendly.clone(), id);
        if let Some(p) = &plan.path {
            st.backing_paths.insert(p.clone(), id);
        }
        let mut slot_ids = vec![id];
        slot_ids.extend(&c.targets);
        let slots = inner.claim(st, &slot_ids);
        let mut model = new_lun_model(
            id,
            a.subsystem,
            c.drive,
            friendly.clone(),
            c.size,
            c.mask.to_string(),
            c.lun_type,
            thin,
            Vec::new(),
            vds_model::Backing {
                kind: c.backing.kind,
                path: plan.path.clone(),
            },
            c.backing.filters.clone(),
        );
        model.read_only = a.read_only.unwrap_or(false);
        if let Some(p) = policy {
            model.load_balance = p;
        }
        model.flags = hints.lun_flags();
        model.rebuild_priority = hints.rebuild_priority;
        // An RBD LUN's type, plexes and health are its pool's (the last poll's).
        if let Some(r) = crate::ceph_pools::pool_report_of(st, &model).cloned() {
            crate::ceph_pools::shape(Some(&r), &mut model);
        }
        drop(g);
        let targets = c.targets;
        self.spawn_job(
            AsyncOutputType::CreateLun,
            a.subsystem,
            slots,
            move |inner, job, slots| {
                let path = plan.path.clone();
                let r = create_lun_work(inner, job, model, hints, targets, plan, slots);
                if r.is_err() {
                    let mut st = inner.state.lock();
                    st.lun_names.remove(&friendly);
                    if let Some(p) = &path {
                        st.backing_paths.remove(p);
                    }
                }
                r
            },
        )
    }
}

/// A gateway's LUNs are RBD images (docs/SCALEOUT.md): one created without a backing is an
/// image in `--ceph-pool`; files, devices and drives are one machine's and answer
/// VDS_E_NOT_SUPPORTED.
fn cluster_backing(
    ctx: &crate::cluster::ClusterCtx,
    a: &mut CreateLunArgs,
) -> Result<(), VdsError> {
    let why = "this gateway is one of several serving the subsystem from Ceph (--ceph-pool): its LUNs are RBD images";
    if a.drives.is_some() || a.plexes.is_some() || a.stripe_size.is_some() {
        return Err(VdsError::not_supported(format!(
            "drives, plexes, stripe_size: {why}, not extents on drives"
        )));
    }
    if a.drive.is_some() {
        return Err(VdsError::not_supported(format!("drive: {why}")));
    }
    match &a.backing {
        None => {
            a.backing = Some(BackingSpec {
                kind: BackingKind::Rbd,
                pool: Some(ctx.config.pool.clone()),
                image: Some(crate::cluster::image_name(Uuid::new_v4())),
                ..BackingSpec::default()
            });
        }
        Some(b) if b.kind != BackingKind::Rbd => {
            return Err(VdsError::not_supported(format!(
                "backing.kind {}: {why}",
                b.kind.short_name()
            )));
        }
        Some(_) => {}
    }
    Ok(())
}

/// Steps 4 (E_INVALIDARG) and 5 (NOT_SUPPORTED) for the arguments of CreateLun.
fn check_args(
    inner: &Inner,
    st: &State,
    a: &CreateLunArgs,
    targets: Vec<Uuid>,
) -> Result<Checked, VdsError> {
    if a.size_bytes == 0 {
        return Err(VdsError::invalid_arg(
            "size_bytes",
            "must be greater than 0",
        ));
    }
    if a.size_bytes > MAX_LUN_SIZE {
        return Err(VdsError::invalid_arg(
            "size_bytes",
            format!(
                "{} is larger than the {MAX_LUN_SIZE}-byte limit",
                a.size_bytes
            ),
        ));
    }
    let size = round_up(a.size_bytes);
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
        if targets[..i].contains(t) {
            return Err(VdsError::invalid_arg(
                &format!("targets[{i}]"),
                format!("target {t} is listed twice"),
            ));
        }
        if st.targets[t].t.subsystem != a.subsystem {
            return Err(VdsError::invalid_arg(
                &format!("targets[{i}]"),
                format!("target {t} belongs to another subsystem"),
            ));
        }
    }
    let backing = a.backing.clone().unwrap_or_default();
    let judged = check_backing(&backing, a.size_bytes, &inner.config.data_dir)?;
    // Step 5.
    let simple = matches!(
        lun_type,
        LunType::Simple | LunType::Default | LunType::NonFaultTolerant
    );
    if !simple {
        return Err(VdsError::not_supported(format!(
            "type: LUN type {} is not supported by this provider",
            lun_type.short_name()
        )));
    }
    check_filters(inner, "backing.filters", &backing.filters)?;
    // A LUN made this way is a file (or the caller's file or device): it is on the data dir's
    // drive. Added drives hold extent-backed LUNs only (BEHAVIOUR.md §15).
    let data_drive = st
        .drives
        .values()
        .find(|d| d.subsystem == a.subsystem && is_data_dir_drive(d, &inner.config.data_dir))
        .map(|d| d.id);
    let drive = match (a.drive, data_drive) {
        (Some(d), _) if st.drives[&d].subsystem != a.subsystem => {
            return Err(VdsError::invalid_arg(
                "drive",
                format!("drive {d} belongs to another subsystem"),
            ));
        }
        (Some(d), Some(data)) if d == data => d,
        (Some(d), _) => {
            return Err(VdsError::not_supported(format!(
                "drive: drive {d} is an added drive; a LUN on it is not supported yet"
            )));
        }
        (None, Some(data)) => data,
        // A gateway's RBD LUN is on no drive of this machine.
        (None, None) if inner.cluster.is_some() => Uuid::nil(),
        (None, None) => {
            return Err(VdsError::new(
                Hresult::VDS_E_NOT_ENOUGH_DRIVE,
                format!("subsystem {} has no drive for its LUN files", a.subsystem),
            ));
        }
    };
    Ok(Checked {
        size,
        lun_type,
        friendly,
        mask,
        targets,
        backing,
        judged,
        drive,
    })
}

/// Conflicts with existing objects: the name, the path, the same file or device under
/// another name (a hard link, another device node).
fn check_conflicts(st: &State, data_dir: &Path, c: &Checked) -> Result<(), VdsError> {
    if let Some(n) = &c.friendly {
        if let Some(other) = st.lun_names.get(n) {
            return Err(VdsError::new(
                Hresult::VDS_E_OBJECT_EXISTS,
                format!("friendly_name: LUN {other} is already called {n:?}"),
            ));
        }
    }
    if c.backing.kind == BackingKind::Rbd {
        let path = crate::rbd::check(&c.backing)?.unwrap_or_default();
        if let Some(other) = st.backing_paths.get(&path) {
            return Err(VdsError::new(
                Hresult::VDS_E_DEVICE_IN_USE,
                format!("backing: image {path} already backs LUN {other}"),
            ));
        }
        if crate::rbd::being_removed(&path) {
            return Err(VdsError::new(
                Hresult::VDS_E_DEVICE_IN_USE,
                format!("backing: image {path} belonged to a deleted LUN and is being removed"),
            ));
        }
    }
    let backing_path = c.judged.as_ref().map(|j| j.path.clone());
    if let Some(p) = &backing_path {
        if let Some(d) = drive_at(st, data_dir, Path::new(p)) {
            return Err(VdsError::new(
                Hresult::VDS_E_DEVICE_IN_USE,
                format!("backing.path: {p} is drive {} ({})", d.id, d.path),
            ));
        }
        if let Some(other) = st.backing_paths.get(p) {
            return Err(VdsError::new(
                Hresult::VDS_E_DEVICE_IN_USE,
                format!("backing.path: {p} already backs LUN {other}"),
            ));
        }
    }
    if let Some((want, _)) = c.judged.as_ref().and_then(|j| j.existing) {
        let kind = c.backing.kind;
        let same = |l: &LunEntry| {
            l.rec.lun.backing.kind == kind
                && l.rec.identity.is_some_and(|have| match kind {
                    BackingKind::Block => have.0 == want.0,
                    _ => have == want,
                })
        };
        if let Some(other) = st.luns.values().find(|l| same(l)) {
            return Err(VdsError::new(
                Hresult::VDS_E_DEVICE_IN_USE,
                format!(
                    "backing.path: {} is already the storage of LUN {}",
                    backing_path.as_deref().unwrap_or_default(),
                    other.rec.lun.id
                ),
            ));
        }
    }
    Ok(())
}

/// The path of LUN `id`'s storage, whether vds owns the file, and (for a fully allocated new
/// file) that it fits.
fn plan_storage(inner: &Inner, id: Uuid, c: &Checked, thin: bool) -> Result<StoragePlan, VdsError> {
    let backing_path = c.judged.as_ref().map(|j| j.path.clone());
    let adopted = c.judged.as_ref().and_then(|j| j.existing);
    let (path, owns_file) = match (c.backing.kind, &backing_path) {
        (BackingKind::File, None) => (
            Some(
                default_lun_path(&inner.config.data_dir, id)
                    .display()
                    .to_string(),
            ),
            true,
        ),
        (BackingKind::File, Some(p)) => (Some(p.clone()), adopted.is_none()),
        (BackingKind::Rbd, _) => {
            let path = crate::rbd::check(&c.backing)?.unwrap_or_default();
            match crate::rbd::existing_size(&path)? {
                Some(size) if size != c.size => {
                    return Err(VdsError::invalid_arg(
                        "size_bytes",
                        format!(
                            "the existing image {path} is {size} bytes, not {}; an adopted image \
                             keeps its size",
                            c.size
                        ),
                    ));
                }
                Some(_) => (Some(path), false),
                None => (Some(path), true),
            }
        }
        (_, p) => (p.clone(), false),
    };
    let prep = Prep {
        user_path: backing_path.is_some(),
        adopted: adopted.map(|(identity, _)| identity),
        wipe: c.backing.wipe,
    };
    if c.backing.kind == BackingKind::File && !thin && adopted.is_none() {
        let size = c.size;
        let dir = path
            .as_deref()
            .and_then(|p| std::path::Path::new(p).parent().map(|d| d.to_path_buf()))
            .unwrap_or_else(|| inner.config.data_dir.clone());
        if let Ok((_, avail)) = fs_space(&dir) {
            if avail < size {
                return Err(VdsError::new(
                    Hresult::VDS_E_NOT_ENOUGH_SPACE,
                    format!(
                        "size_bytes: a fully allocated {size}-byte LUN does not fit in the {avail} bytes free in {}",
                        dir.display()
                    ),
                ));
            }
        }
    }
    Ok(StoragePlan {
        path,
        owns_file,
        prep,
    })
}

/// Removes the file of a LUN that was not created (when vds made it).
fn remove_own_file(lun: &Lun, plan: &StoragePlan) {
    if lun.backing.kind == BackingKind::Rbd {
        if plan.owns_file {
            crate::rbd::remove_when_closed(lun.clone());
        }
        return;
    }
    if let Some(p) = lun.backing.path.as_ref().filter(|_| plan.owns_file) {
        let _ = vds_backstore::lifecycle::remove_file(std::path::Path::new(p));
    }
}

/// The job body of CreateLun.
fn create_lun_work(
    inner: &Arc<Inner>,
    job: &JobHandle,
    mut lun: Lun,
    hints: LunHints,
    targets: Vec<Uuid>,
    plan: StoragePlan,
    slots: Slots,
) -> JobResult {
    let opened = open_new_storage(job, &mut lun, &plan);
    let (filtered, identity) = match opened {
        Ok(o) => o,
        Err(e) => {
            remove_own_file(&lun, &plan);
            return Err(e);
        }
    };
    job.set_percent(90);
    let mut slots = Some(slots);
    let mut tries = 0;
    let r = loop {
        let mut g = inner.state.lock();
        let Some(s) = slots.take() else {
            break Err(crate::cluster::stale_too_often());
        };
        let r = commit_new_lun(
            inner,
            job,
            &mut g,
            &mut lun,
            hints,
            &targets,
            (filtered.clone(), None),
            identity,
            plan.owns_file,
            s,
        );
        drop(g);
        match r {
            // Another gateway committed first: apply its change and commit again (new LUN
            // numbers), with the slots taken again.
            Err(e) if crate::cluster::is_stale(&e) && tries < crate::cluster::STALE_RETRIES => {
                tries += 1;
                if let Err(e) = crate::cluster::sync(inner) {
                    break Err(e);
                }
                let mut g = inner.state.lock();
                let mut ids = vec![lun.id];
                ids.extend(&targets);
                let busy: Vec<(ObjectKind, Uuid)> =
                    targets.iter().map(|t| (ObjectKind::Target, *t)).collect();
                if let Err(e) = g.check_free(&busy) {
                    break Err(e);
                }
                slots = Some(inner.claim(&mut g, &ids));
            }
            r => break r,
        }
    };
    if r.is_err() {
        remove_own_file(&lun, &plan);
    }
    r?;
    Ok((Hresult::S_OK, Some(JobOutput::Lun(Box::new(lun)))))
}

/// Makes or adopts the storage (BEHAVIOUR §12) and opens it; sets the LUN's size to what
/// was opened. Returns the store and its identity.
fn open_new_storage(
    job: &JobHandle,
    lun: &mut Lun,
    plan: &StoragePlan,
) -> Result<(Arc<Filtered>, Identity), VdsError> {
    prepare_storage(lun, plan.owns_file, plan.prep)?;
    job.set_percent(50);
    if job.cancel_requested() {
        return Err(canceled());
    }
    let filtered = open_backing(lun).map_err(|e| {
        storage_err(
            format!(
                "opening the new LUN's storage {}",
                lun.backing.path.as_deref().unwrap_or_default()
            ),
            &e,
        )
    })?;
    set_size(lun, filtered.size());
    let identity = identity_of(&lun.backing).ok().flatten();
    // What the store opened is still what was judged: the path names the judged inode now,
    // and the store's descriptor is the inode at the path (probe).
    if let Some(want) = plan.prep.adopted {
        if identity != Some(want) || filtered.probe().is_err() {
            return Err(VdsError::new(
                Hresult::E_ACCESSDENIED,
                format!(
                    "backing.path {}: replaced while the LUN was being created",
                    lun.backing.path.as_deref().unwrap_or_default()
                ),
            ));
        }
    }
    Ok((filtered, identity))
}

/// Gives the new LUN its numbers on `targets` and commits it (with the composite store of an
/// extent-backed LUN in `raid`, whose extents stop being pending in the same commit).
#[allow(clippy::too_many_arguments)]
pub(super) fn commit_new_lun(
    inner: &Arc<Inner>,
    job: &JobHandle,
    st: &mut State,
    lun: &mut Lun,
    hints: LunHints,
    targets: &[Uuid],
    (filtered, raid): (Arc<Filtered>, Option<Arc<vds_backstore::RaidStore>>),
    identity: Identity,
    owns_file: bool,
    slots: Slots,
) -> Result<(), VdsError> {
    if !job.begin_commit() {
        return Err(Inner::abandon(st, slots, canceled()));
    }
    // The targets were held by our slots; they still exist.
    let numbers = match allocate_numbers(st, targets) {
        Ok(n) => n,
        Err(e) => return Err(Inner::abandon(st, slots, e)),
    };
    let id = lun.id;
    lun.targets = numbers.iter().map(|(t, _)| *t).collect();
    lun.lun_numbers = numbers.clone();
    // Active on every controller of the subsystem (as they are at the commit).
    lun.active_controllers = st
        .controllers_of(lun.subsystem)
        .iter()
        .map(|c| c.id)
        .collect();
    inner.new_lun_recovery(lun.id, &hints, raid.as_deref());
    let lu = inner.make_lu(lun, filtered.clone(), st.lu_state(lun), None);
    crate::engine::apply_hints(&lu, &hints);
    st.first_access_states(lun, &lu);
    lun.identification = naa_hex(&lu);
    let rec = LunRecord {
        lun: lun.clone(),
        identity,
        owns_file,
    };
    let row = rec.clone();
    let mut change = Change::new()
        .store(move |tx| {
            tx.put_lun(&row)?;
            if hints != LunHints::default() {
                tx.set_lun_hints(id, &hints)?;
            }
            Ok(())
        })
        .apply(|st| {
            let seq = st.next_seq();
            let entry = LunEntry {
                rec,
                seq,
                lu,
                filtered: Some(filtered),
                hints,
                raid,
            };
            st.pending_extents.remove(&id);
            st.luns.insert(id, entry);
            // The creating gateway is the new LUN's first owner (`owner.rs`).
            st.created_here.insert(id);
            for t in targets {
                if let Some(te) = st.targets.get_mut(t) {
                    te.t.luns.push(id);
                }
                // The new LUN is inserted into each target's map, not rebuilt with every
                // other LUN.
                st.lun_added(*t, id);
            }
        });
    if !targets.is_empty() {
        change = change.publish_then(|st| {
            for t in targets {
                st.for_each_lu_of_target(*t, |lu| {
                    if lu.id() != id {
                        lu.luns_changed();
                    }
                });
            }
        });
    }
    let change = change.event(ObjectKind::Lun, EventKind::Arrive, id);
    let r = inner.commit(st, change, Some(slots));
    if r.is_err() {
        release_numbers(st, &numbers);
    }
    r
}

/// The lowest free LUN number on each of `targets`; none taken when one has no number left.
pub(super) fn allocate_numbers(
    st: &mut State,
    targets: &[Uuid],
) -> Result<Vec<(Uuid, u64)>, VdsError> {
    let mut numbers = Vec::new();
    for t in targets {
        match st.targets.get_mut(t).and_then(TargetEntry::allocate) {
            Some(n) => numbers.push((*t, n)),
            None => {
                release_numbers(st, &numbers);
                return Err(VdsError::new(
                    Hresult::E_OUTOFMEMORY,
                    format!("target {t} has no free LUN number"),
                ));
            }
        }
    }
    Ok(numbers)
}

/// Returns LUN numbers taken by [`allocate_numbers`].
pub(super) fn release_numbers(st: &mut State, numbers: &[(Uuid, u64)]) {
    for (t, n) in numbers {
        if let Some(te) = st.targets.get_mut(t) {
            te.release(*n);
        }
    }
}
