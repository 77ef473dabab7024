//! Every operation of [`Command`](crate::Command), each following SEMANTICS.md §2: the object
//! (1 not found, 2 deleted, 3 cache corrupt), then the arguments (4 E_INVALIDARG, 5
//! NOT_SUPPORTED), then the slots (6 BUSY), then the object's health (7 FAILED); only then is
//! anything changed, committed to the store before the caller hears about it, published to the
//! data path and announced with exactly one event per change.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use uuid::Uuid;
use vds_backstore::BackingStore;
use vds_model::{
    AsyncOutputType, BackingKind, ControllerStatus, DriveStatus, EventKind, FaultFilterSpec,
    Health, Hresult, JobOutput, Lun, LunStatus, LunType, ObjectKind, Portal, PortalGroup,
    PortalStatus, SubsystemStatus, Target, TransitionState, UnmaskingList,
};
use vds_scsi::LuState;
use vds_store::{LunRecord, SecretKind, SecretRow};

use crate::command::CreateLunArgs;
use crate::engine::{
    naa_hex, new_lun_model, reload, round_up, store_err, Inner, Slots, MAX_LUN_SIZE,
};
use crate::jobs::JobHandle;
use crate::state::{LunEntry, PortalEntry, State, TargetEntry};
use crate::storage::{
    allocate, check_backing, default_lun_path, free_storage, fs_space, identity_of, open_backing,
    prepare_storage, to_filters, Prep,
};
use crate::{Command, Outcome, Provider, VdsError};

/// Longest friendly name / alias accepted (the iSCSI TargetAlias limit).
const MAX_NAME_LEN: usize = 255;

type JobResult = Result<(Hresult, Option<JobOutput>), VdsError>;

fn check_name(field: &str, name: &str) -> Result<String, VdsError> {
    let n = name.trim();
    if n.is_empty() {
        return Err(VdsError::invalid_arg(field, "must not be empty"));
    }
    if n.len() > MAX_NAME_LEN {
        return Err(VdsError::invalid_arg(
            field,
            format!("is {} bytes, the limit is {MAX_NAME_LEN}", n.len()),
        ));
    }
    if n.chars().any(char::is_control) {
        return Err(VdsError::invalid_arg(
            field,
            "must not contain control characters",
        ));
    }
    Ok(n.to_string())
}

fn check_secret(
    field: &str,
    secret: Option<crate::SecretBytes>,
) -> Result<Option<Vec<u8>>, VdsError> {
    secret
        .map(|s| {
            vds_model::ChapSecret::new(s.0)
                .map(|s| s.into_bytes())
                .map_err(|e| VdsError::invalid_arg(field, e))
        })
        .transpose()
}

fn check_initiator(field: &str, name: &str) -> Result<String, VdsError> {
    let n = name.trim();
    vds_model::validate_iscsi_name(&n.to_ascii_lowercase())
        .map_err(|e| VdsError::invalid_arg(field, e))?;
    Ok(n.to_string())
}

fn check_filters(inner: &Inner, field: &str, filters: &[FaultFilterSpec]) -> Result<(), VdsError> {
    for (i, f) in filters.iter().enumerate() {
        if let FaultFilterSpec::Error { ops, .. } = f {
            if ops.is_empty() {
                return Err(VdsError::invalid_arg(
                    &format!("{field}[{i}].error.ops"),
                    "must list at least one of read, write, flush",
                ));
            }
        }
    }
    if !filters.is_empty() && !inner.config.fault_injection {
        return Err(VdsError::not_supported(format!(
            "{field}: fault filters are accepted only when vdsd runs with --enable-fault-injection"
        )));
    }
    Ok(())
}

/// Maps an I/O failure of an operation on a LUN's storage: EIO is `VDS_E_IO_ERROR`, ENOSPC
/// `VDS_E_NOT_ENOUGH_SPACE`, anything else the converted OS error.
pub(crate) fn storage_err(context: impl std::fmt::Display, e: &std::io::Error) -> VdsError {
    let hr = match e.raw_os_error() {
        Some(libc::EIO) => Hresult::VDS_E_IO_ERROR,
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => Hresult::VDS_E_NOT_ENOUGH_SPACE,
        // A block device opened O_EXCL that is mounted or held by another opener.
        Some(libc::EBUSY) => Hresult::VDS_E_DEVICE_IN_USE,
        _ => Hresult::from_io_error(e),
    };
    VdsError::new(hr, format!("{context}: {e}"))
}

fn sorted<T: Clone, K: Ord>(items: impl Iterator<Item = (K, T)>) -> Vec<T> {
    let mut v: Vec<(K, T)> = items.collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v.into_iter().map(|(_, t)| t).collect()
}

/// The judged value of a requested status: `Ok(value)` for a member that may be requested.
/// Not a member or UNKNOWN → E_INVALIDARG; a report-only member → NOT_SUPPORTED.
fn judge_status<T: Copy + PartialEq>(
    raw: i64,
    type_name: &str,
    object: &str,
    from: impl Fn(i64) -> Option<T>,
    unknown: T,
    settable: &[T],
    name: impl Fn(T) -> &'static str,
) -> Result<T, VdsError> {
    let v = from(raw).ok_or_else(|| {
        VdsError::invalid_arg("status", format!("{raw} is not a {type_name} value"))
    })?;
    if v == unknown {
        return Err(VdsError::invalid_arg(
            "status",
            format!("{} cannot be requested", name(v)),
        ));
    }
    if !settable.contains(&v) {
        return Err(VdsError::not_supported(format!(
            "status {} is reported by the provider, never set, on a {object}",
            name(v)
        )));
    }
    Ok(v)
}

impl Provider {
    pub(crate) fn dispatch(&self, cmd: Command) -> Result<Outcome, VdsError> {
        match cmd {
            Command::GetProvider => {
                let st = self.inner.state.lock();
                Ok(Outcome::Provider(self.inner.provider_info(&st)))
            }
            Command::Reenumerate => self.reenumerate(),
            Command::Refresh => self.refresh(),
            Command::ListSubsystems => {
                let mut st = self.inner.state.lock();
                self.inner.detect(&mut st, &[]);
                Inner::cache_ok(&st)?;
                Ok(Outcome::Subsystems(sorted(
                    st.subsystems.values().map(|s| (s.id, s.clone())),
                )))
            }
            Command::GetSubsystem { id } => {
                let mut st = self.inner.state.lock();
                self.inner.object_call(&mut st, ObjectKind::Subsystem, id)?;
                Ok(Outcome::Subsystem(st.subsystems[&id].clone()))
            }
            Command::SetSubsystemStatus { id, status } => {
                self.set_path_status(ObjectKind::Subsystem, id, status)
            }
            Command::ListControllers { subsystem } => {
                let st = self.list_prelude(subsystem, &[])?;
                Ok(Outcome::Controllers(sorted(
                    st.controllers
                        .values()
                        .filter(|c| subsystem.is_none_or(|x| x == c.subsystem))
                        .map(|c| (c.id, c.clone())),
                )))
            }
            Command::GetController { id } => {
                let mut st = self.inner.state.lock();
                self.inner
                    .object_call(&mut st, ObjectKind::Controller, id)?;
                Ok(Outcome::Controller(st.controllers[&id].clone()))
            }
            Command::SetControllerStatus { id, status } => {
                self.set_path_status(ObjectKind::Controller, id, status)
            }
            Command::ListDrives { subsystem } => {
                let st = self.list_prelude(subsystem, &[])?;
                Ok(Outcome::Drives(sorted(
                    st.drives
                        .values()
                        .filter(|d| subsystem.is_none_or(|x| x == d.subsystem))
                        .map(|d| (d.id, d.clone())),
                )))
            }
            Command::GetDrive { id } => {
                let mut st = self.inner.state.lock();
                self.inner.object_call(&mut st, ObjectKind::Drive, id)?;
                Ok(Outcome::Drive(st.drives[&id].clone()))
            }
            Command::SetDriveStatus { id, status } => {
                self.set_path_status(ObjectKind::Drive, id, status)
            }
            Command::ListLuns { subsystem } => {
                let ids: Vec<Uuid> = {
                    let st = self.inner.state.lock();
                    st.luns.keys().copied().collect()
                };
                let st = self.list_prelude(subsystem, &ids)?;
                Ok(Outcome::Luns(sorted(
                    st.luns
                        .values()
                        .filter(|e| subsystem.is_none_or(|x| x == e.rec.lun.subsystem))
                        .map(|e| (e.seq, e.rec.lun.clone())),
                )))
            }
            Command::GetLun { id } => {
                let mut st = self.inner.state.lock();
                self.inner.object_call(&mut st, ObjectKind::Lun, id)?;
                Ok(Outcome::Lun(Box::new(st.luns[&id].rec.lun.clone())))
            }
            Command::CreateLun(args) => self.create_lun(args),
            Command::DeleteLun { id } => self.delete_lun(id),
            Command::PatchLun {
                id,
                friendly_name,
                unmasking_list,
                read_only,
            } => self.patch_lun(id, friendly_name, unmasking_list, read_only),
            Command::SetLunStatus { id, status } => self.set_lun_status(id, status),
            Command::ExtendLun { id, bytes } => self.resize_lun(id, bytes, true),
            Command::ShrinkLun { id, bytes } => self.resize_lun(id, bytes, false),
            Command::RecoverLun { id } => self.recover_lun(id),
            Command::SetLunFaults { id, filters } => self.set_lun_faults(id, filters),
            Command::SetLunTargets { id, targets } => self.set_lun_targets(id, targets),
            Command::ListTargets { subsystem } => {
                let st = self.list_prelude(subsystem, &[])?;
                Ok(Outcome::Targets(sorted(
                    st.targets
                        .values()
                        .filter(|t| subsystem.is_none_or(|x| x == t.t.subsystem))
                        .map(|t| (t.seq, t.t.clone())),
                )))
            }
            Command::GetTarget { id } => {
                let mut st = self.inner.state.lock();
                self.inner.object_call(&mut st, ObjectKind::Target, id)?;
                Ok(Outcome::Target(st.targets[&id].t.clone()))
            }
            Command::CreateTarget {
                subsystem,
                iscsi_name,
                friendly_name,
            } => self.create_target(subsystem, iscsi_name, friendly_name),
            Command::DeleteTarget { id } => self.delete_target(id),
            Command::RenameTarget { id, friendly_name } => self.rename_target(id, friendly_name),
            Command::SetSharedSecret {
                id,
                secret,
                initiator_name,
            } => {
                let secret = check_secret("secret", secret);
                let (kind, name) = match initiator_name {
                    Some(n) => (SecretKind::Initiator, Some(n)),
                    None => (SecretKind::Default, None),
                };
                self.set_secret(id, kind, name, secret)
            }
            Command::RememberInitiatorSecret {
                id,
                initiator_name,
                secret,
            } => {
                let secret = check_secret("secret", secret);
                self.set_secret(id, SecretKind::Mutual, Some(initiator_name), secret)
            }
            Command::GetConnectedInitiators { id } => {
                {
                    let mut st = self.inner.state.lock();
                    self.inner.object_call(&mut st, ObjectKind::Target, id)?;
                }
                Ok(Outcome::Initiators(self.inner.dataplane.initiators(id)))
            }
            Command::ListPortalGroups { target } => {
                let mut st = self.inner.state.lock();
                if let Some(t) = target {
                    self.inner.object_call(&mut st, ObjectKind::Target, t)?;
                } else {
                    self.inner.detect(&mut st, &[]);
                    Inner::cache_ok(&st)?;
                }
                Ok(Outcome::PortalGroups(sorted(
                    st.pgs
                        .values()
                        .filter(|(pg, _)| target.is_none_or(|x| x == pg.target))
                        .map(|(pg, s)| (*s, pg.clone())),
                )))
            }
            Command::GetPortalGroup { id } => {
                let mut st = self.inner.state.lock();
                self.inner
                    .object_call(&mut st, ObjectKind::PortalGroup, id)?;
                Ok(Outcome::PortalGroup(st.pgs[&id].0.clone()))
            }
            Command::CreatePortalGroup { target } => self.create_portal_group(target),
            Command::DeletePortalGroup { id } => self.delete_portal_group(id),
            Command::AddPortalToGroup {
                portal_group,
                portal,
            } => self.change_membership(portal_group, portal, true),
            Command::RemovePortalFromGroup {
                portal_group,
                portal,
            } => self.change_membership(portal_group, portal, false),
            Command::ListPortals { subsystem } => {
                let st = self.list_prelude(subsystem, &[])?;
                Ok(Outcome::Portals(sorted(
                    st.portals
                        .values()
                        .filter(|p| subsystem.is_none_or(|x| x == p.p.subsystem))
                        .map(|p| (p.seq, p.p.clone())),
                )))
            }
            Command::GetPortal { id } => {
                let mut st = self.inner.state.lock();
                self.inner.object_call(&mut st, ObjectKind::Portal, id)?;
                Ok(Outcome::Portal(st.portals[&id].p.clone()))
            }
            Command::CreatePortal {
                subsystem,
                address,
                port,
            } => self.create_portal(subsystem, address, port),
            Command::DeletePortal { id } => self.delete_portal(id),
            Command::SetPortalStatus { id, status } => self.set_portal_status(id, status),
            Command::ListJobs => Ok(Outcome::Jobs(self.inner.jobs.list())),
            Command::GetJob { id } => Ok(Outcome::Job(self.inner.jobs.query(id)?)),
            Command::WaitJob { id, timeout } => {
                Ok(Outcome::Job(self.inner.jobs.wait(id, timeout)?))
            }
            Command::CancelJob { id } => Ok(Outcome::Job(self.inner.jobs.cancel(id)?)),
        }
    }

    /// Steps 1-3 for a list call filtered by subsystem; checks `luns`' backing stores.
    fn list_prelude(
        &self,
        subsystem: Option<Uuid>,
        luns: &[Uuid],
    ) -> Result<parking_lot::MutexGuard<'_, State>, VdsError> {
        let mut st = self.inner.state.lock();
        if let Some(s) = subsystem {
            st.lookup(ObjectKind::Subsystem, s, None)?;
        }
        self.inner.detect(&mut st, luns);
        Inner::cache_ok(&st)?;
        Ok(st)
    }

    /// Starts a job on a worker thread; `work` releases the slots when it commits.
    fn spawn_job(
        &self,
        op: AsyncOutputType,
        object: Uuid,
        slots: Slots,
        work: impl FnOnce(&Arc<Inner>, &JobHandle, Slots) -> JobResult + Send + 'static,
    ) -> Result<Outcome, VdsError> {
        let handle = self.inner.jobs.start(op, object);
        let inner = self.inner.clone();
        let h = handle.clone();
        std::thread::Builder::new()
            .name(format!("vds-job-{}", op.short_name()))
            .spawn(move || {
                let r = work(&inner, &h, slots);
                h.finish(r);
            })
            .map_err(|e| {
                let err = VdsError::new(
                    Hresult::E_OUTOFMEMORY,
                    format!("cannot start a worker thread: {e}"),
                );
                handle.finish(Err(err.clone()));
                err
            })?;
        Ok(Outcome::Job(handle.job()))
    }

    // ----- provider -----

    fn reenumerate(&self) -> Result<Outcome, VdsError> {
        let mut g = self.inner.state.lock();
        let st = &mut *g;
        let pid = st.provider_id;
        st.check_free(&[(ObjectKind::Provider, pid)])?;
        // Rediscover the drives (the data dir's filesystem): size changes are MODIFY.
        let ids: Vec<Uuid> = st.drives.keys().copied().collect();
        for id in ids {
            let d = &st.drives[&id];
            if let Ok((total, _)) = fs_space(std::path::Path::new(&d.path)) {
                if total != d.size_bytes {
                    let mut d = d.clone();
                    d.size_bytes = total;
                    st.store.write(|tx| tx.put_drive(&d)).map_err(store_err)?;
                    st.drives.insert(id, d);
                    self.inner.emit(ObjectKind::Drive, EventKind::Modify, id);
                }
            }
        }
        // Portals: a portal whose listener died is found here by the data path's reports;
        // nothing appears or vanishes on its own in vds.
        let luns: Vec<Uuid> = st.luns.keys().copied().collect();
        self.inner.detect(st, &luns);
        if st.corrupt.is_some() {
            st.reenumerated = true;
        }
        Ok(Outcome::Provider(self.inner.provider_info(st)))
    }

    fn refresh(&self) -> Result<Outcome, VdsError> {
        let slots;
        let cure;
        {
            let mut g = self.inner.state.lock();
            let st = &mut *g;
            let pid = st.provider_id;
            st.check_free(&[(ObjectKind::Provider, pid)])?;
            let luns: Vec<Uuid> = st.luns.keys().copied().collect();
            self.inner.detect(st, &luns);
            cure = st.corrupt.is_some() && st.reenumerated;
            if st.corrupt.is_some() && !cure {
                // Refresh alone leaves the cache corrupt (SEMANTICS.md §6).
                return Ok(Outcome::Provider(self.inner.provider_info(st)));
            }
            slots = self.inner.claim(st, &[pid]);
        }
        let mut g = self.inner.state.lock();
        let st = &mut *g;
        let r = self.refresh_locked(st, cure);
        slots.release(st);
        r?;
        Ok(Outcome::Provider(self.inner.provider_info(st)))
    }

    fn refresh_locked(&self, st: &mut State, cure: bool) -> Result<(), VdsError> {
        if cure {
            let external = st
                .corrupt
                .as_deref()
                .is_some_and(|w| w.contains("another process"));
            if external {
                reload(&self.inner, st)?;
            }
            // Re-read every LUN's storage: adopt new sizes, reopen replaced files, fail gone ones.
            let ids: Vec<Uuid> = st.luns.keys().copied().collect();
            for id in ids {
                if crate::storage::backing_changed(&st.luns[&id]).is_some() {
                    self.reread_lun(st, id)?;
                }
            }
            st.corrupt = None;
            st.reenumerated = false;
            // Our own re-read commits do not count as another process's changes.
            let _ = st.store.changed_externally();
        }
        // Re-probe FAILED LUNs (§5): a store that answers again makes the LUN OFFLINE, HEALTHY.
        let failed: Vec<Uuid> = st
            .luns
            .values()
            .filter(|e| e.rec.lun.status == LunStatus::Failed)
            .map(|e| e.rec.lun.id)
            .collect();
        for id in failed {
            self.reprobe_failed(st, id)?;
        }
        Ok(())
    }

    /// Re-reads one LUN's storage after it changed behind our back.
    fn reread_lun(&self, st: &mut State, id: Uuid) -> Result<(), VdsError> {
        let e = &st.luns[&id];
        let mut rec = e.rec.clone();
        let same_file = identity_of(&rec.lun.backing)
            .ok()
            .flatten()
            .is_some_and(|i| Some(i) == rec.identity);
        let mut new_lu = None;
        if same_file {
            // Same file, new size: adopt it in place (the LU raises CAPACITY DATA HAS CHANGED).
            let len = std::fs::metadata(rec.lun.backing.path.as_deref().unwrap_or_default())
                .map(|m| m.len())
                .unwrap_or(rec.lun.size_bytes);
            if let Some(f) = &e.filtered {
                f.resize(len)
                    .map_err(|err| storage_err(format!("LUN {id}: re-reading the size"), &err))?;
            }
            set_size(&mut rec.lun, len);
            e.lu.capacity_changed();
        } else {
            match open_backing(&rec.lun) {
                Ok(f) => {
                    let old_size = rec.lun.size_bytes;
                    set_size(&mut rec.lun, f.size());
                    rec.identity = identity_of(&rec.lun.backing).ok().flatten();
                    let lu = self
                        .inner
                        .make_lu(&rec.lun, f.clone(), st.lu_state(&rec.lun), None);
                    // Same LUN for the hosts: their nexuses, unit attentions and
                    // reservations carry over to the LU over the new file.
                    lu.inherit(&e.lu);
                    if f.size() != old_size {
                        lu.capacity_changed();
                    }
                    new_lu = Some((lu, Some(f)));
                }
                Err(err) => {
                    tracing::warn!(lun = %id, error = %err, "backing gone; LUN FAILED");
                    rec.lun.status = LunStatus::Failed;
                    rec.lun.health = Health::Failed;
                    let _ = e.lu.set_state(LuState::Failed);
                    let lu = self.inner.missing_lu(&rec.lun);
                    lu.inherit(&e.lu);
                    new_lu = Some((lu, None));
                }
            }
        }
        st.store.write(|tx| tx.put_lun(&rec)).map_err(store_err)?;
        let e = st.luns.get_mut(&id).expect("present");
        e.rec = rec;
        if let Some((lu, f)) = new_lu {
            e.lu = lu;
            e.filtered = f;
            let lun = e.rec.lun.clone();
            st.dirty_lun(&lun);
            self.inner.publish(st);
        }
        self.inner.emit(ObjectKind::Lun, EventKind::Modify, id);
        Ok(())
    }

    fn reprobe_failed(&self, st: &mut State, id: Uuid) -> Result<(), VdsError> {
        let e = &st.luns[&id];
        let mut rec = e.rec.clone();
        let mut replace = None;
        let ok = match &e.filtered {
            Some(_) => e.lu.set_state(LuState::Offline).is_ok(),
            None => match open_backing(&rec.lun) {
                Ok(f) => {
                    let old_size = rec.lun.size_bytes;
                    set_size(&mut rec.lun, f.size());
                    rec.identity = identity_of(&rec.lun.backing).ok().flatten();
                    let lu = self
                        .inner
                        .make_lu(&rec.lun, f.clone(), LuState::Offline, None);
                    // The hosts that saw the LUN FAILED must be told when it comes back
                    // ONLINE (06/28/00): keep their nexuses, unit attentions, reservations.
                    lu.inherit(&e.lu);
                    if f.size() != old_size {
                        lu.capacity_changed();
                    }
                    replace = Some((lu, f));
                    true
                }
                Err(_) => false,
            },
        };
        if !ok {
            return Ok(());
        }
        rec.lun.status = LunStatus::Offline;
        rec.lun.health = Health::Healthy;
        st.store.write(|tx| tx.put_lun(&rec)).map_err(store_err)?;
        let e = st.luns.get_mut(&id).expect("present");
        e.rec = rec;
        if let Some((lu, f)) = replace {
            e.lu = lu;
            e.filtered = Some(f);
            let lun = e.rec.lun.clone();
            st.dirty_lun(&lun);
            self.inner.publish(st);
        }
        self.inner.emit(ObjectKind::Lun, EventKind::Modify, id);
        Ok(())
    }

    // ----- subsystem, controller, drive status -----

    fn set_path_status(&self, kind: ObjectKind, id: Uuid, raw: i64) -> Result<Outcome, VdsError> {
        let mut g = self.inner.state.lock();
        let st = &mut *g;
        self.inner.object_call(st, kind, id)?;
        // Step 4/5: judge the value; ONLINE and OFFLINE are settable, the rest reported.
        let (want_online, current_online, failed) = match kind {
            ObjectKind::Subsystem => {
                let v = judge_status(
                    raw,
                    "VDS_SUB_SYSTEM_STATUS",
                    "subsystem",
                    SubsystemStatus::from_i64,
                    SubsystemStatus::Unknown,
                    &[SubsystemStatus::Online, SubsystemStatus::Offline],
                    SubsystemStatus::vds_name,
                )?;
                let cur = st.subsystems[&id].status;
                (
                    v == SubsystemStatus::Online,
                    cur == SubsystemStatus::Online,
                    cur == SubsystemStatus::Failed,
                )
            }
            ObjectKind::Controller => {
                let v = judge_status(
                    raw,
                    "VDS_CONTROLLER_STATUS",
                    "controller",
                    ControllerStatus::from_i64,
                    ControllerStatus::Unknown,
                    &[ControllerStatus::Online, ControllerStatus::Offline],
                    ControllerStatus::vds_name,
                )?;
                let cur = st.controllers[&id].status;
                (
                    v == ControllerStatus::Online,
                    cur == ControllerStatus::Online,
                    cur == ControllerStatus::Failed,
                )
            }
            _ => {
                let v = judge_status(
                    raw,
                    "VDS_DRIVE_STATUS",
                    "drive",
                    DriveStatus::from_i64,
                    DriveStatus::Unknown,
                    &[DriveStatus::Online, DriveStatus::Offline],
                    DriveStatus::vds_name,
                )?;
                let cur = st.drives[&id].status;
                (
                    v == DriveStatus::Online,
                    cur == DriveStatus::Online,
                    cur == DriveStatus::Failed,
                )
            }
        };
        // The LUNs whose path this object is part of.
        let affected: Vec<Uuid> = st
            .luns
            .values()
            .filter(|e| match kind {
                ObjectKind::Subsystem => e.rec.lun.subsystem == id,
                ObjectKind::Controller => e.rec.lun.subsystem == st.controllers[&id].subsystem,
                _ => e.rec.lun.drive == id,
            })
            .map(|e| e.rec.lun.id)
            .collect();
        let mut busy = vec![(kind, id)];
        busy.extend(affected.iter().map(|l| (ObjectKind::Lun, *l)));
        st.check_free(&busy)?;
        if failed {
            return Err(VdsError::new(
                Hresult::VDS_E_OBJECT_STATUS_FAILED,
                format!("{} {id} is FAILED", kind.label()),
            ));
        }
        if want_online == current_online {
            return Ok(self.path_outcome(st, kind, id));
        }
        let mut ids = vec![id];
        ids.extend(&affected);
        let slots = self.inner.claim(st, &ids);
        // Change the object in memory first so lu_state sees the new path.
        set_path_object(st, kind, id, want_online);
        let plan: Vec<(Uuid, Arc<vds_scsi::LogicalUnit>, LuState)> = affected
            .iter()
            .map(|l| {
                let e = &st.luns[l];
                (*l, e.lu.clone(), st.lu_state(&e.rec.lun))
            })
            .collect();
        drop(g);
        // Quiesce/flush (or probe) every affected LU outside the lock.
        let mut failures = Vec::new();
        for (l, lu, want) in plan {
            if lu.state() != want {
                if let Err(e) = lu.set_state(want) {
                    failures.push((l, e));
                }
            }
        }
        let mut g = self.inner.state.lock();
        let st = &mut *g;
        let r = (|| {
            let mut recs = Vec::new();
            for (l, _) in &failures {
                let mut rec = st.luns[l].rec.clone();
                rec.lun.status = LunStatus::Failed;
                rec.lun.health = Health::Failed;
                recs.push(rec);
            }
            let sub = st.subsystems.get(&id).cloned();
            let ctl = st.controllers.get(&id).cloned();
            let drv = st.drives.get(&id).cloned();
            st.store
                .write(|tx| {
                    match kind {
                        ObjectKind::Subsystem => {
                            tx.put_subsystem(sub.as_ref().expect("present"))?
                        }
                        ObjectKind::Controller => {
                            tx.put_controller(ctl.as_ref().expect("present"))?
                        }
                        _ => tx.put_drive(drv.as_ref().expect("present"))?,
                    }
                    for rec in &recs {
                        tx.put_lun(rec)?;
                    }
                    Ok(())
                })
                .map_err(store_err)?;
            for rec in recs {
                let lid = rec.lun.id;
                st.luns.get_mut(&lid).expect("present").rec = rec;
                self.inner.emit(ObjectKind::Lun, EventKind::Modify, lid);
            }
            self.inner.emit(kind, EventKind::Modify, id);
            Ok(())
        })();
        if r.is_err() {
            // Not committed: put the object back as it was.
            set_path_object(st, kind, id, current_online);
        }
        slots.release(st);
        r?;
        if let Some((l, e)) = failures.first() {
            return Err(storage_err(format!("LUN {l} could not follow"), e));
        }
        Ok(self.path_outcome(st, kind, id))
    }

    fn path_outcome(&self, st: &State, kind: ObjectKind, id: Uuid) -> Outcome {
        match kind {
            ObjectKind::Subsystem => Outcome::Subsystem(st.subsystems[&id].clone()),
            ObjectKind::Controller => Outcome::Controller(st.controllers[&id].clone()),
            _ => Outcome::Drive(st.drives[&id].clone()),
        }
    }

    // ----- LUNs -----

    fn create_lun(&self, a: CreateLunArgs) -> Result<Outcome, VdsError> {
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
        // Step 4: arguments.
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
        let backing_path = judged.as_ref().map(|j| j.path.clone());
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
        let drive = match a.drive {
            Some(d) => {
                if st.drives[&d].subsystem != a.subsystem {
                    return Err(VdsError::invalid_arg(
                        "drive",
                        format!("drive {d} belongs to another subsystem"),
                    ));
                }
                d
            }
            None => sorted(
                st.drives
                    .values()
                    .filter(|d| d.subsystem == a.subsystem)
                    .map(|d| (d.id, d.id)),
            )
            .into_iter()
            .next()
            .ok_or_else(|| {
                VdsError::new(
                    Hresult::VDS_E_NOT_ENOUGH_DRIVE,
                    format!("subsystem {} has no drive", a.subsystem),
                )
            })?,
        };
        // Step 6: the targets whose LUN sets change.
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
        // Conflicts with existing objects.
        if let Some(n) = &friendly {
            if let Some(other) = st.lun_names.get(n) {
                return Err(VdsError::new(
                    Hresult::VDS_E_OBJECT_EXISTS,
                    format!("friendly_name: LUN {other} is already called {n:?}"),
                ));
            }
        }
        if let Some(p) = &backing_path {
            if let Some(other) = st.backing_paths.get(p) {
                return Err(VdsError::new(
                    Hresult::VDS_E_DEVICE_IN_USE,
                    format!("backing.path: {p} already backs LUN {other}"),
                ));
            }
        }
        // The same file or device under another name (a hard link, another device node).
        if let Some((want, _)) = judged.as_ref().and_then(|j| j.existing) {
            let same = |l: &LunEntry| {
                l.rec.lun.backing.kind == backing.kind
                    && l.rec.identity.is_some_and(|have| match backing.kind {
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
        let thin = a.thin.unwrap_or(true);
        let id = Uuid::new_v4();
        let adopted = judged.as_ref().and_then(|j| j.existing);
        let (path, owns_file) = match (backing.kind, &backing_path) {
            (BackingKind::File, None) => (
                Some(
                    default_lun_path(&inner.config.data_dir, id)
                        .display()
                        .to_string(),
                ),
                true,
            ),
            (BackingKind::File, Some(p)) => (Some(p.clone()), adopted.is_none()),
            (_, p) => (p.clone(), false),
        };
        let prep = Prep {
            user_path: backing_path.is_some(),
            adopted: adopted.map(|(identity, _)| identity),
            wipe: backing.wipe,
        };
        if backing.kind == BackingKind::File && !thin && adopted.is_none() {
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
        let mut friendly =
            friendly.unwrap_or_else(|| format!("lun-{}", &id.simple().to_string()[..8]));
        if st.lun_names.contains_key(&friendly) {
            friendly = format!("lun-{}", id.simple());
        }
        // Reserve the name and path now so that a concurrent create cannot take them.
        st.lun_names.insert(friendly.clone(), id);
        if let Some(p) = &path {
            st.backing_paths.insert(p.clone(), id);
        }
        let mut slot_ids = vec![id];
        slot_ids.extend(&targets);
        let slots = inner.claim(st, &slot_ids);
        let mut model = new_lun_model(
            id,
            a.subsystem,
            drive,
            friendly.clone(),
            size,
            mask.to_string(),
            if lun_type == LunType::Simple {
                LunType::Simple
            } else {
                lun_type
            },
            thin,
            Vec::new(),
            vds_model::Backing {
                kind: backing.kind,
                path: path.clone(),
            },
            backing.filters.clone(),
        );
        model.read_only = a.read_only.unwrap_or(false);
        drop(g);
        self.spawn_job(
            AsyncOutputType::CreateLun,
            a.subsystem,
            slots,
            move |inner, job, slots| {
                let r = create_lun_work(inner, job, model, targets, owns_file, prep, slots);
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

    fn delete_lun(&self, id: Uuid) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Lun, id)?;
        let targets = st.luns[&id].rec.lun.targets.clone();
        let mut busy = vec![(ObjectKind::Lun, id)];
        busy.extend(targets.iter().map(|t| (ObjectKind::Target, *t)));
        st.check_free(&busy)?;
        // Deleting a FAILED LUN is how an operator gets rid of broken storage: allowed.
        let mut ids = vec![id];
        ids.extend(&targets);
        let slots = inner.claim(st, &ids);
        // Leave the data path first: new commands get 05/25/00, the others see 06/3F/0E.
        let entry = st.luns.remove(&id).expect("present");
        for t in &targets {
            if let Some(te) = st.targets.get_mut(t) {
                te.t.luns.retain(|l| *l != id);
                if let Some((_, n)) = entry.rec.lun.lun_numbers.iter().find(|(x, _)| x == t) {
                    te.release(*n);
                }
            }
            st.dirty.insert(*t);
        }
        inner.publish(st);
        for t in &targets {
            for lu in st.lus_of_target(*t) {
                lu.luns_changed();
            }
        }
        drop(g);
        // Drain what is in flight on the LU (its store is going away).
        let _ = entry.lu.set_state(LuState::Offline);
        let mut g = inner.state.lock();
        let st = &mut *g;
        let r = st.store.write(|tx| {
            tx.delete_lun(id)?;
            tx.add_tombstone(id, ObjectKind::Lun)
        });
        if let Err(e) = r {
            // Not deleted: put it back exactly as it was.
            let lun = entry.rec.lun.clone();
            for (t, n) in &lun.lun_numbers {
                if let Some(te) = st.targets.get_mut(t) {
                    te.t.luns.push(id);
                    te.numbers.insert(*n);
                }
            }
            let want = st.lu_state(&lun);
            let _ = entry.lu.set_state(want);
            st.luns.insert(id, entry);
            st.dirty_lun(&lun);
            inner.publish(st);
            slots.release(st);
            return Err(store_err(e));
        }
        st.tombstones.insert(id, ObjectKind::Lun);
        st.lun_names.remove(&entry.rec.lun.friendly_name);
        if let Some(p) = &entry.rec.lun.backing.path {
            st.backing_paths.remove(p);
        }
        inner.emit(ObjectKind::Lun, EventKind::Depart, id);
        slots.release(st);
        drop(g);
        free_storage(&entry);
        Ok(Outcome::Deleted {
            kind: ObjectKind::Lun,
            id,
        })
    }

    fn patch_lun(
        &self,
        id: Uuid,
        friendly_name: Option<String>,
        unmasking_list: Option<String>,
        read_only: Option<bool>,
    ) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Lun, id)?;
        let name = friendly_name
            .as_deref()
            .map(|n| check_name("friendly_name", n))
            .transpose()?;
        let mask = unmasking_list
            .as_deref()
            .map(|m| {
                UnmaskingList::parse(m)
                    .map(|l| l.to_string())
                    .map_err(|e| VdsError::invalid_arg("unmasking_list", e))
            })
            .transpose()?;
        st.check_free(&[(ObjectKind::Lun, id)])?;
        let mut rec = st.luns[&id].rec.clone();
        if let Some(n) = &name {
            if let Some(other) = st.lun_names.get(n).filter(|o| **o != id) {
                return Err(VdsError::new(
                    Hresult::VDS_E_OBJECT_EXISTS,
                    format!("friendly_name: LUN {other} is already called {n:?}"),
                ));
            }
            rec.lun.friendly_name = n.clone();
        }
        if let Some(m) = &mask {
            rec.lun.unmasking_list = m.clone();
        }
        if let Some(ro) = read_only {
            rec.lun.read_only = ro;
        }
        let old = st.luns[&id].rec.lun.clone();
        if rec.lun == old {
            return Ok(Outcome::Lun(Box::new(old)));
        }
        let lu = st.luns[&id].lu.clone();
        // Keep the store and the data path from ever disagreeing in the unsafe direction: a
        // LUN becoming read-only is protected on the wire before the change is stored (waiting
        // for the writes in flight, without the provider lock; the slot keeps other calls off
        // this LUN meanwhile), one becoming writable is stored first.
        let mut slots = None;
        if rec.lun.read_only && !old.read_only {
            slots = Some(inner.claim(st, &[id]));
            drop(g);
            lu.set_write_protected(true);
            g = inner.state.lock();
        }
        let st = &mut *g;
        // While the lock was let go another LUN may have taken the new name.
        let taken = st
            .lun_names
            .get(&rec.lun.friendly_name)
            .filter(|o| **o != id)
            .map(|other| {
                VdsError::new(
                    Hresult::VDS_E_OBJECT_EXISTS,
                    format!(
                        "friendly_name: LUN {other} is already called {:?}",
                        rec.lun.friendly_name
                    ),
                )
            });
        let stored = match taken {
            Some(e) => Err(e),
            None => st.store.write(|tx| tx.put_lun(&rec)).map_err(store_err),
        };
        if let Err(e) = stored {
            if rec.lun.read_only && !old.read_only {
                lu.set_write_protected(false);
            }
            if let Some(s) = slots {
                s.release(st);
            }
            return Err(e);
        }
        if !rec.lun.read_only && old.read_only {
            lu.set_write_protected(false);
        }
        if let Some(s) = slots {
            s.release(st);
        }
        st.lun_names.remove(&old.friendly_name);
        st.lun_names.insert(rec.lun.friendly_name.clone(), id);
        let lun = rec.lun.clone();
        st.luns.get_mut(&id).expect("present").rec = rec;
        if old.unmasking_list != lun.unmasking_list {
            st.dirty_lun(&lun);
            inner.publish(st);
        }
        inner.emit(ObjectKind::Lun, EventKind::Modify, id);
        Ok(Outcome::Lun(Box::new(lun)))
    }

    fn set_lun_status(&self, id: Uuid, raw: i64) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Lun, id)?;
        let want = judge_status(
            raw,
            "VDS_LUN_STATUS",
            "LUN",
            LunStatus::from_i64,
            LunStatus::Unknown,
            &[LunStatus::Online, LunStatus::NotReady, LunStatus::Offline],
            LunStatus::vds_name,
        )?;
        st.check_free(&[(ObjectKind::Lun, id)])?;
        let cur = st.luns[&id].rec.lun.status;
        if cur == LunStatus::Failed {
            return Err(VdsError::new(
                Hresult::VDS_E_OBJECT_STATUS_FAILED,
                format!("LUN {id} is FAILED; Refresh re-probes it (it then comes back OFFLINE)"),
            ));
        }
        if cur == want {
            return Ok(Outcome::Lun(Box::new(st.luns[&id].rec.lun.clone())));
        }
        let slots = inner.claim(st, &[id]);
        let mut probe = st.luns[&id].rec.lun.clone();
        probe.status = want;
        let lu_want = st.lu_state(&probe);
        let lu = st.luns[&id].lu.clone();
        drop(g);
        // Quiesce + flush, or probe + unit attention: may take long (fault delay, big cache).
        let io = if lu.state() != lu_want {
            lu.set_state(lu_want)
        } else {
            Ok(())
        };
        let mut g = inner.state.lock();
        let st = &mut *g;
        let mut rec = st.luns[&id].rec.clone();
        let result = match &io {
            Ok(()) => {
                rec.lun.status = want;
                Ok(())
            }
            Err(e) => {
                rec.lun.status = LunStatus::Failed;
                rec.lun.health = Health::Failed;
                Err(storage_err(
                    format!(
                        "LUN {id}: the backing store failed while going {}",
                        want.short_name()
                    ),
                    e,
                ))
            }
        };
        if let Err(e) = st.store.write(|tx| tx.put_lun(&rec)) {
            // Not durable: the data path follows the store, so undo what we can.
            let old = st.luns[&id].rec.lun.clone();
            let back = st.lu_state(&old);
            if io.is_ok() {
                let _ = lu.set_state(back);
            }
            slots.release(st);
            return Err(store_err(e));
        }
        let lun = rec.lun.clone();
        st.luns.get_mut(&id).expect("present").rec = rec;
        inner.emit(ObjectKind::Lun, EventKind::Modify, id);
        slots.release(st);
        result.map(|()| Outcome::Lun(Box::new(lun)))
    }

    fn resize_lun(&self, id: Uuid, bytes: u64, extend: bool) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Lun, id)?;
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
                            format!(
                                "bytes: {delta} more bytes do not fit in the {avail} bytes free"
                            ),
                        ));
                    }
                }
            }
        }
        let slots = inner.claim(st, &[id]);
        let e = st.luns.get_mut(&id).expect("present");
        e.rec.lun.transition_state = if extend {
            TransitionState::Extending
        } else {
            TransitionState::Shrinking
        };
        let lu = e.lu.clone();
        drop(g);
        let op = if extend {
            AsyncOutputType::ExtendLun
        } else {
            AsyncOutputType::ShrinkLun
        };
        self.spawn_job(op, id, slots, move |inner, job, slots| {
            let old = lun.size_bytes;
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
            let mut g = inner.state.lock();
            let st = &mut *g;
            let finish = |st: &mut State| {
                if let Some(e) = st.luns.get_mut(&id) {
                    e.rec.lun.transition_state = TransitionState::Stable;
                }
            };
            if let Err(e) = io {
                let _ = filtered.resize(old);
                finish(st);
                slots.release(st);
                return Err(storage_err(
                    format!("LUN {id}: resizing to {new_size} bytes"),
                    &e,
                ));
            }
            if !job.begin_commit() {
                let _ = filtered.resize(old);
                finish(st);
                slots.release(st);
                return Err(VdsError::new(Hresult::VDS_E_OPERATION_CANCELED, "canceled"));
            }
            let mut rec = st.luns[&id].rec.clone();
            set_size(&mut rec.lun, new_size);
            rec.lun.transition_state = TransitionState::Stable;
            if let Err(e) = st.store.write(|tx| tx.put_lun(&rec)) {
                let _ = filtered.resize(old);
                finish(st);
                slots.release(st);
                return Err(store_err(e));
            }
            let lun = rec.lun.clone();
            st.luns.get_mut(&id).expect("present").rec = rec;
            lu.capacity_changed();
            inner.emit(ObjectKind::Lun, EventKind::Modify, id);
            slots.release(st);
            Ok((Hresult::S_OK, Some(JobOutput::Lun(Box::new(lun)))))
        })
    }

    fn recover_lun(&self, id: Uuid) -> Result<Outcome, VdsError> {
        let mut g = self.inner.state.lock();
        let st = &mut *g;
        self.inner.object_call(st, ObjectKind::Lun, id)?;
        let lun = &st.luns[&id].rec.lun;
        let fault_tolerant = matches!(
            lun.lun_type,
            LunType::FaultTolerant | LunType::Mirror | LunType::Parity | LunType::Raid5
        ) || lun.plexes.len() > 1;
        if !fault_tolerant {
            return Err(VdsError::new(
                Hresult::VDS_E_INVALID_OPERATION,
                format!(
                    "LUN {id} is {} (not fault tolerant): there is nothing to recover",
                    lun.lun_type.short_name()
                ),
            ));
        }
        // vds creates no fault-tolerant LUNs yet; a store holding one came from elsewhere.
        Err(VdsError::not_supported(format!(
            "LUN {id}: recovery of {} LUNs is not supported by this provider",
            lun.lun_type.short_name()
        )))
    }

    fn set_lun_faults(&self, id: Uuid, filters: Vec<FaultFilterSpec>) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Lun, id)?;
        check_filters(inner, "filters", &filters)?;
        if !inner.config.fault_injection {
            return Err(VdsError::not_supported(
                "filters: fault filters are accepted only when vdsd runs with --enable-fault-injection",
            ));
        }
        st.check_free(&[(ObjectKind::Lun, id)])?;
        let mut rec = st.luns[&id].rec.clone();
        if rec.lun.filters == filters {
            return Ok(Outcome::Lun(Box::new(rec.lun)));
        }
        rec.lun.filters = filters;
        st.store.write(|tx| tx.put_lun(&rec)).map_err(store_err)?;
        let e = st.luns.get_mut(&id).expect("present");
        if let Some(f) = &e.filtered {
            f.set_filters(to_filters(&rec.lun.filters));
        }
        let lun = rec.lun.clone();
        e.rec = rec;
        inner.emit(ObjectKind::Lun, EventKind::Modify, id);
        Ok(Outcome::Lun(Box::new(lun)))
    }

    fn set_lun_targets(&self, id: Uuid, targets: Vec<Uuid>) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Lun, id)?;
        for (i, t) in targets.iter().enumerate() {
            st.lookup(ObjectKind::Target, *t, Some(&format!("targets[{i}]")))?;
        }
        let lun = st.luns[&id].rec.lun.clone();
        for (i, t) in targets.iter().enumerate() {
            if targets[..i].contains(t) {
                return Err(VdsError::invalid_arg(
                    &format!("targets[{i}]"),
                    format!("target {t} is listed twice"),
                ));
            }
            if st.targets[t].t.subsystem != lun.subsystem {
                return Err(VdsError::invalid_arg(
                    &format!("targets[{i}]"),
                    format!("target {t} belongs to another subsystem"),
                ));
            }
        }
        let added: Vec<Uuid> = targets
            .iter()
            .filter(|t| !lun.targets.contains(t))
            .copied()
            .collect();
        let removed: Vec<Uuid> = lun
            .targets
            .iter()
            .filter(|t| !targets.contains(t))
            .copied()
            .collect();
        let mut busy = vec![(ObjectKind::Lun, id)];
        busy.extend(
            added
                .iter()
                .chain(&removed)
                .map(|t| (ObjectKind::Target, *t)),
        );
        st.check_free(&busy)?;
        if added.is_empty() && removed.is_empty() {
            return Ok(Outcome::Lun(Box::new(lun)));
        }
        // New numbers: kept targets keep theirs, new ones get the lowest free.
        let mut numbers: Vec<(Uuid, u64)> = lun
            .lun_numbers
            .iter()
            .filter(|(t, _)| targets.contains(t))
            .copied()
            .collect();
        let mut taken = Vec::new();
        for t in &added {
            match st.targets.get_mut(t).expect("present").allocate() {
                Some(n) => {
                    taken.push((*t, n));
                    numbers.push((*t, n));
                }
                None => {
                    for (t, n) in taken {
                        st.targets.get_mut(&t).expect("present").release(n);
                    }
                    return Err(VdsError::new(
                        Hresult::E_OUTOFMEMORY,
                        format!("target {t} has no free LUN number"),
                    ));
                }
            }
        }
        let mut rec = st.luns[&id].rec.clone();
        rec.lun.targets = numbers.iter().map(|(t, _)| *t).collect();
        rec.lun.lun_numbers = numbers;
        if let Err(e) = st.store.write(|tx| tx.put_lun(&rec)) {
            for (t, n) in taken {
                st.targets.get_mut(&t).expect("present").release(n);
            }
            return Err(store_err(e));
        }
        for t in &removed {
            let te = st.targets.get_mut(t).expect("present");
            te.t.luns.retain(|l| *l != id);
            if let Some((_, n)) = lun.lun_numbers.iter().find(|(x, _)| x == t) {
                te.release(*n);
            }
            st.dirty.insert(*t);
        }
        for t in &added {
            st.targets.get_mut(t).expect("present").t.luns.push(id);
            st.dirty.insert(*t);
        }
        let new = rec.lun.clone();
        st.luns.get_mut(&id).expect("present").rec = rec;
        inner.publish(st);
        for t in added.iter().chain(&removed) {
            for lu in st.lus_of_target(*t) {
                lu.luns_changed();
            }
        }
        inner.emit(ObjectKind::Lun, EventKind::Modify, id);
        Ok(Outcome::Lun(Box::new(new)))
    }

    // ----- targets -----

    fn create_target(
        &self,
        subsystem: Uuid,
        iscsi_name: Option<String>,
        friendly_name: String,
    ) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Subsystem, subsystem)?;
        let friendly = check_name("friendly_name", &friendly_name)?;
        let id = Uuid::new_v4();
        let iqn = match iscsi_name.as_deref().map(str::trim) {
            None | Some("") => format!("iqn.2026-11.local.vds:{}", id.simple()),
            Some(n) => {
                vds_model::validate_iscsi_name(n)
                    .map_err(|e| VdsError::invalid_arg("iscsi_name", e))?;
                n.to_string()
            }
        };
        if st.subsystems[&subsystem].status == SubsystemStatus::Failed {
            return Err(VdsError::new(
                Hresult::VDS_E_OBJECT_STATUS_FAILED,
                format!("subsystem {subsystem} is FAILED"),
            ));
        }
        if let Some(other) = st.iqns.get(&iqn.to_ascii_lowercase()) {
            return Err(VdsError::new(
                Hresult::VDS_E_NAME_NOT_UNIQUE,
                format!("iscsi_name: target {other} already uses {iqn}"),
            ));
        }
        st.iqns.insert(iqn.to_ascii_lowercase(), id);
        let slots = inner.claim(st, &[id]);
        let target = Target {
            id,
            subsystem,
            iscsi_name: iqn,
            friendly_name: friendly,
            chap_enabled: false,
            portal_groups: Vec::new(),
            luns: Vec::new(),
        };
        drop(g);
        self.spawn_job(
            AsyncOutputType::CreateTarget,
            subsystem,
            slots,
            move |inner, job, slots| {
                let mut g = inner.state.lock();
                let st = &mut *g;
                let undo = |st: &mut State, slots: Slots| {
                    st.iqns.remove(&target.iscsi_name.to_ascii_lowercase());
                    slots.release(st);
                };
                if !job.begin_commit() {
                    undo(st, slots);
                    return Err(VdsError::new(Hresult::VDS_E_OPERATION_CANCELED, "canceled"));
                }
                if let Err(e) = st.store.write(|tx| tx.put_target(&target)) {
                    undo(st, slots);
                    return Err(store_err(e));
                }
                let seq = st.next_seq();
                st.targets.insert(
                    id,
                    TargetEntry {
                        t: target.clone(),
                        seq,
                        secrets: Vec::new(),
                        numbers: Default::default(),
                        next_free: 0,
                    },
                );
                st.dirty.insert(id);
                inner.publish(st);
                inner.emit(ObjectKind::Target, EventKind::Arrive, id);
                slots.release(st);
                Ok((Hresult::S_OK, Some(JobOutput::Target(target))))
            },
        )
    }

    fn delete_target(&self, id: Uuid) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Target, id)?;
        let pgs = st.targets[&id].t.portal_groups.clone();
        let mut busy = vec![(ObjectKind::Target, id)];
        busy.extend(pgs.iter().map(|p| (ObjectKind::PortalGroup, *p)));
        st.check_free(&busy)?;
        if !st.targets[&id].t.luns.is_empty() {
            return Err(VdsError::new(
                Hresult::VDS_E_ASSOCIATED_LUNS_EXIST,
                format!(
                    "target {id} still has {} LUN(s); dissociate them first",
                    st.targets[&id].t.luns.len()
                ),
            ));
        }
        let mut ids = vec![id];
        ids.extend(&pgs);
        let slots = inner.claim(st, &ids);
        drop(g);
        self.spawn_job(
            AsyncOutputType::DeleteTarget,
            id,
            slots,
            move |inner, job, slots| {
                let mut g = inner.state.lock();
                let st = &mut *g;
                if !job.begin_commit() {
                    slots.release(st);
                    return Err(VdsError::new(Hresult::VDS_E_OPERATION_CANCELED, "canceled"));
                }
                let r = st.store.write(|tx| {
                    for pg in &pgs {
                        tx.delete_portal_group(*pg)?;
                        tx.add_tombstone(*pg, ObjectKind::PortalGroup)?;
                    }
                    tx.delete_target(id)?;
                    tx.add_tombstone(id, ObjectKind::Target)
                });
                if let Err(e) = r {
                    slots.release(st);
                    return Err(store_err(e));
                }
                let te = st.targets.remove(&id).expect("present");
                st.iqns.remove(&te.t.iscsi_name.to_ascii_lowercase());
                st.tombstones.insert(id, ObjectKind::Target);
                for pg in &pgs {
                    if let Some((g, _)) = st.pgs.remove(pg) {
                        for p in g.portals {
                            if let Some(pe) = st.portals.get_mut(&p) {
                                pe.p.portal_groups.retain(|x| x != pg);
                            }
                        }
                    }
                    st.tombstones.insert(*pg, ObjectKind::PortalGroup);
                }
                st.dirty.insert(id);
                inner.publish(st);
                for pg in &pgs {
                    inner.emit(ObjectKind::PortalGroup, EventKind::Depart, *pg);
                }
                inner.emit(ObjectKind::Target, EventKind::Depart, id);
                slots.release(st);
                Ok((Hresult::S_OK, Some(JobOutput::Deleted(id))))
            },
        )
    }

    fn rename_target(&self, id: Uuid, friendly_name: String) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Target, id)?;
        let name = check_name("friendly_name", &friendly_name)?;
        st.check_free(&[(ObjectKind::Target, id)])?;
        let mut t = st.targets[&id].t.clone();
        if t.friendly_name == name {
            return Ok(Outcome::Target(t));
        }
        t.friendly_name = name;
        st.store.write(|tx| tx.put_target(&t)).map_err(store_err)?;
        st.targets.get_mut(&id).expect("present").t = t.clone();
        inner.publish(st);
        inner.emit(ObjectKind::Target, EventKind::Modify, id);
        Ok(Outcome::Target(t))
    }

    fn set_secret(
        &self,
        id: Uuid,
        kind: SecretKind,
        initiator: Option<String>,
        secret: Result<Option<Vec<u8>>, VdsError>,
    ) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Target, id)?;
        let secret = secret?;
        let initiator = match initiator {
            Some(n) => check_initiator("initiator_name", &n)?,
            None => String::new(),
        };
        st.check_free(&[(ObjectKind::Target, id)])?;
        let te = &st.targets[&id];
        let current = te
            .secrets
            .iter()
            .find(|s| s.kind == kind && s.initiator.eq_ignore_ascii_case(&initiator));
        if current.map(|s| &s.secret) == secret.as_ref() {
            return Ok(Outcome::Target(te.t.clone()));
        }
        let stored_name = current.map(|s| s.initiator.clone());
        st.store
            .write(|tx| {
                if let Some(n) = &stored_name {
                    tx.set_secret(id, kind, n, None)?;
                }
                tx.set_secret(id, kind, &initiator, secret.as_deref())
            })
            .map_err(store_err)?;
        let te = st.targets.get_mut(&id).expect("present");
        te.secrets
            .retain(|s| !(s.kind == kind && s.initiator.eq_ignore_ascii_case(&initiator)));
        if let Some(s) = secret {
            te.secrets.push(SecretRow {
                target: id,
                kind,
                initiator,
                secret: s,
            });
        }
        te.t.chap_enabled = te.chap().required();
        let t = te.t.clone();
        inner.publish(st);
        inner.emit(ObjectKind::Target, EventKind::Modify, id);
        Ok(Outcome::Target(t))
    }

    // ----- portal groups -----

    fn create_portal_group(&self, target: Uuid) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Target, target)?;
        st.check_free(&[(ObjectKind::Target, target)])?;
        let used: std::collections::HashSet<u16> = st.targets[&target]
            .t
            .portal_groups
            .iter()
            .filter_map(|pg| st.pgs.get(pg).map(|(g, _)| g.tag))
            .collect();
        let tag = (1..=u16::MAX).find(|t| !used.contains(t));
        let id = Uuid::new_v4();
        let slots = inner.claim(st, &[target]);
        drop(g);
        self.spawn_job(
            AsyncOutputType::CreatePortalGroup,
            target,
            slots,
            move |inner, job, slots| {
                let mut g = inner.state.lock();
                let st = &mut *g;
                let Some(tag) = tag else {
                    // No tag left: hand back an existing group (VDS_S_ALREADY_EXISTS).
                    let existing = st.targets[&target]
                        .t
                        .portal_groups
                        .first()
                        .and_then(|pg| st.pgs.get(pg))
                        .map(|(g, _)| g.clone());
                    slots.release(st);
                    return match existing {
                        Some(pg) => Ok((
                            Hresult::VDS_S_ALREADY_EXISTS,
                            Some(JobOutput::PortalGroup(pg)),
                        )),
                        None => Err(VdsError::new(
                            Hresult::E_OUTOFMEMORY,
                            "no portal group tag is free",
                        )),
                    };
                };
                if !job.begin_commit() {
                    slots.release(st);
                    return Err(VdsError::new(Hresult::VDS_E_OPERATION_CANCELED, "canceled"));
                }
                let pg = PortalGroup {
                    id,
                    target,
                    tag,
                    portals: Vec::new(),
                };
                if let Err(e) = st.store.write(|tx| tx.put_portal_group(&pg)) {
                    slots.release(st);
                    return Err(store_err(e));
                }
                let seq = st.next_seq();
                st.pgs.insert(id, (pg.clone(), seq));
                st.targets
                    .get_mut(&target)
                    .expect("present")
                    .t
                    .portal_groups
                    .push(id);
                inner.publish(st);
                inner.emit(ObjectKind::PortalGroup, EventKind::Arrive, id);
                slots.release(st);
                Ok((Hresult::S_OK, Some(JobOutput::PortalGroup(pg))))
            },
        )
    }

    fn delete_portal_group(&self, id: Uuid) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::PortalGroup, id)?;
        let target = st.pgs[&id].0.target;
        st.check_free(&[(ObjectKind::PortalGroup, id), (ObjectKind::Target, target)])?;
        if !st.pgs[&id].0.portals.is_empty() {
            return Err(VdsError::new(
                Hresult::VDS_E_ASSOCIATED_PORTALS_EXIST,
                format!(
                    "portal group {id} still has {} portal(s); remove them first",
                    st.pgs[&id].0.portals.len()
                ),
            ));
        }
        let slots = inner.claim(st, &[id, target]);
        drop(g);
        self.spawn_job(
            AsyncOutputType::DeletePortalGroup,
            id,
            slots,
            move |inner, job, slots| {
                let mut g = inner.state.lock();
                let st = &mut *g;
                if !job.begin_commit() {
                    slots.release(st);
                    return Err(VdsError::new(Hresult::VDS_E_OPERATION_CANCELED, "canceled"));
                }
                let r = st.store.write(|tx| {
                    tx.delete_portal_group(id)?;
                    tx.add_tombstone(id, ObjectKind::PortalGroup)
                });
                if let Err(e) = r {
                    slots.release(st);
                    return Err(store_err(e));
                }
                st.pgs.remove(&id);
                st.tombstones.insert(id, ObjectKind::PortalGroup);
                if let Some(te) = st.targets.get_mut(&target) {
                    te.t.portal_groups.retain(|p| *p != id);
                }
                inner.publish(st);
                inner.emit(ObjectKind::PortalGroup, EventKind::Depart, id);
                slots.release(st);
                Ok((Hresult::S_OK, Some(JobOutput::Deleted(id))))
            },
        )
    }

    fn change_membership(&self, pg_id: Uuid, portal: Uuid, add: bool) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::PortalGroup, pg_id)?;
        st.lookup(ObjectKind::Portal, portal, Some("portal"))?;
        let pg = st.pgs[&pg_id].0.clone();
        let member = pg.portals.contains(&portal);
        if !add && !member {
            return Err(VdsError::new(
                Hresult::VDS_E_OBJECT_NOT_FOUND,
                format!("portal: portal {portal} is not in portal group {pg_id}"),
            ));
        }
        if add && !member {
            // A portal is in at most one portal group of a target.
            if let Some(other) = st.targets[&pg.target].t.portal_groups.iter().find(|o| {
                **o != pg_id
                    && st
                        .pgs
                        .get(o)
                        .is_some_and(|(g, _)| g.portals.contains(&portal))
            }) {
                return Err(VdsError::new(
                    Hresult::VDS_E_OBJECT_EXISTS,
                    format!("portal: portal {portal} is already in portal group {other} of the same target"),
                ));
            }
        }
        st.check_free(&[
            (ObjectKind::PortalGroup, pg_id),
            (ObjectKind::Portal, portal),
        ])?;
        let slots = inner.claim(st, &[pg_id, portal]);
        drop(g);
        let op = if add {
            AsyncOutputType::AddPortal
        } else {
            AsyncOutputType::RemovePortal
        };
        self.spawn_job(op, pg_id, slots, move |inner, job, slots| {
            let mut g = inner.state.lock();
            let st = &mut *g;
            if add && member {
                let pg = st.pgs[&pg_id].0.clone();
                slots.release(st);
                return Ok((
                    Hresult::VDS_S_ALREADY_EXISTS,
                    Some(JobOutput::PortalGroup(pg)),
                ));
            }
            if !job.begin_commit() {
                slots.release(st);
                return Err(VdsError::new(Hresult::VDS_E_OPERATION_CANCELED, "canceled"));
            }
            let mut pg = st.pgs[&pg_id].0.clone();
            if add {
                pg.portals.push(portal);
            } else {
                pg.portals.retain(|p| *p != portal);
            }
            if let Err(e) = st.store.write(|tx| tx.put_portal_group(&pg)) {
                slots.release(st);
                return Err(store_err(e));
            }
            st.pgs.get_mut(&pg_id).expect("present").0 = pg.clone();
            if let Some(pe) = st.portals.get_mut(&portal) {
                if add {
                    pe.p.portal_groups.push(pg_id);
                } else {
                    pe.p.portal_groups.retain(|p| *p != pg_id);
                }
            }
            inner.publish(st);
            inner.emit(ObjectKind::PortalGroup, EventKind::Modify, pg_id);
            slots.release(st);
            Ok((Hresult::S_OK, Some(JobOutput::PortalGroup(pg))))
        })
    }

    // ----- portals -----

    fn create_portal(
        &self,
        subsystem: Uuid,
        address: IpAddr,
        port: u16,
    ) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Subsystem, subsystem)?;
        if port == 0 {
            return Err(VdsError::invalid_arg("port", "must be 1 to 65535"));
        }
        if address.is_multicast() {
            return Err(VdsError::invalid_arg(
                "address",
                format!("{address} is a multicast address"),
            ));
        }
        let addr = SocketAddr::new(address, port);
        if let Some(other) = st.portal_addrs.get(&addr) {
            return Ok(Outcome::AlreadyExists(Box::new(Outcome::Portal(
                st.portals[other].p.clone(),
            ))));
        }
        let p = Portal {
            id: Uuid::new_v4(),
            subsystem,
            address,
            port,
            status: PortalStatus::Offline,
            portal_groups: Vec::new(),
        };
        st.store.write(|tx| tx.put_portal(&p)).map_err(store_err)?;
        let seq = st.next_seq();
        st.portal_addrs.insert(addr, p.id);
        st.portals.insert(
            p.id,
            PortalEntry {
                p: p.clone(),
                seq,
                bound: false,
            },
        );
        inner.publish(st);
        inner.emit(ObjectKind::Portal, EventKind::Arrive, p.id);
        Ok(Outcome::Portal(p))
    }

    fn delete_portal(&self, id: Uuid) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Portal, id)?;
        let pgs = st.portals[&id].p.portal_groups.clone();
        let mut busy = vec![(ObjectKind::Portal, id)];
        busy.extend(pgs.iter().map(|p| (ObjectKind::PortalGroup, *p)));
        st.check_free(&busy)?;
        let mut ids = vec![id];
        ids.extend(&pgs);
        let slots = inner.claim(st, &ids);
        let bound = st.portals[&id].bound;
        // Stop listing it first, then close the listener and let initiators log out.
        st.portals.get_mut(&id).expect("present").p.status = PortalStatus::NotReady;
        inner.publish(st);
        drop(g);
        if bound {
            inner
                .dataplane
                .unbind_portal(id, inner.config.logout_timeout);
        }
        let mut g = inner.state.lock();
        let st = &mut *g;
        let new_pgs: Vec<PortalGroup> = pgs
            .iter()
            .filter_map(|pg| st.pgs.get(pg))
            .map(|(g, _)| {
                let mut g = g.clone();
                g.portals.retain(|p| *p != id);
                g
            })
            .collect();
        let r = st.store.write(|tx| {
            for pg in &new_pgs {
                tx.put_portal_group(pg)?;
            }
            tx.delete_portal(id)?;
            tx.add_tombstone(id, ObjectKind::Portal)
        });
        if let Err(e) = r {
            // Still there, no longer listening: OFFLINE.
            let pe = st.portals.get_mut(&id).expect("present");
            pe.bound = false;
            pe.p.status = PortalStatus::Offline;
            inner.publish(st);
            slots.release(st);
            return Err(store_err(e));
        }
        let pe = st.portals.remove(&id).expect("present");
        st.portal_addrs.remove(&pe.p.socket_addr());
        st.tombstones.insert(id, ObjectKind::Portal);
        for pg in new_pgs {
            if let Some(e) = st.pgs.get_mut(&pg.id) {
                e.0 = pg;
            }
        }
        inner.publish(st);
        inner.emit(ObjectKind::Portal, EventKind::Depart, id);
        slots.release(st);
        Ok(Outcome::Deleted {
            kind: ObjectKind::Portal,
            id,
        })
    }

    fn set_portal_status(&self, id: Uuid, raw: i64) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Portal, id)?;
        let sub = st.portals[&id].p.subsystem;
        if !st
            .subsystems
            .get(&sub)
            .is_some_and(|s| s.portal_status_settable)
        {
            // The documented "Not supported." provider (SEMANTICS.md §4): the method as a whole.
            return Err(VdsError::not_supported(format!(
                "subsystem {sub} does not implement IVdsIscsiPortal::SetStatus (portal_status_settable = false)"
            )));
        }
        let want = judge_status(
            raw,
            "VDS_ISCSI_PORTAL_STATUS",
            "portal",
            PortalStatus::from_i64,
            PortalStatus::Unknown,
            &[PortalStatus::Online, PortalStatus::Offline],
            PortalStatus::vds_name,
        )?;
        st.check_free(&[(ObjectKind::Portal, id)])?;
        let pe = &st.portals[&id];
        let cur = pe.p.status;
        if cur == want {
            return Ok(Outcome::Portal(pe.p.clone()));
        }
        let bound = pe.bound;
        let addr = pe.p.socket_addr();
        let slots = inner.claim(st, &[id]);
        // Reported while the transition runs (NOT_READY: starting or draining), and no
        // longer listed by SendTargets.
        st.portals.get_mut(&id).expect("present").p.status = PortalStatus::NotReady;
        inner.publish(st);
        drop(g);
        let outcome: Result<(), VdsError> = if want == PortalStatus::Offline {
            if bound {
                inner
                    .dataplane
                    .unbind_portal(id, inner.config.logout_timeout);
            }
            Ok(())
        } else {
            inner.dataplane.bind_portal(id, addr).map_err(|e| {
                VdsError::new(
                    Hresult::from_io_error(&e),
                    format!("portal {id}: cannot listen on {addr}: {e}"),
                )
            })
        };
        let mut g = inner.state.lock();
        let st = &mut *g;
        let mut p = st.portals[&id].p.clone();
        let now_bound = want == PortalStatus::Online && outcome.is_ok();
        p.status = match (&outcome, want) {
            (Ok(()), w) => w,
            (Err(_), _) => PortalStatus::Failed,
        };
        let row = Inner::portal_row(&p);
        if let Err(e) = st.store.write(|tx| tx.put_portal(&row)) {
            // Not durable: go back to what the store says.
            if now_bound {
                inner
                    .dataplane
                    .unbind_portal(id, inner.config.logout_timeout);
            }
            let pe = st.portals.get_mut(&id).expect("present");
            pe.p.status = cur;
            pe.bound = bound && want != PortalStatus::Offline;
            inner.publish(st);
            slots.release(st);
            return Err(store_err(e));
        }
        let pe = st.portals.get_mut(&id).expect("present");
        pe.p = p.clone();
        pe.bound = now_bound;
        inner.publish(st);
        if p.status != cur {
            inner.emit(ObjectKind::Portal, EventKind::Modify, id);
        }
        slots.release(st);
        outcome.map(|()| Outcome::Portal(p))
    }
}

/// The job body of CreateLun.
fn create_lun_work(
    inner: &Arc<Inner>,
    job: &JobHandle,
    mut lun: Lun,
    targets: Vec<Uuid>,
    owns_file: bool,
    prep: Prep,
    slots: Slots,
) -> JobResult {
    let id = lun.id;
    let own_path = lun.backing.path.clone().filter(|_| owns_file);
    let cleanup = |_: &Lun| {
        if let Some(p) = &own_path {
            let _ = std::fs::remove_file(p);
        }
    };
    // Storage: create, or adopt what is there (SEMANTICS §12).
    let prepared = prepare_storage(&lun, owns_file, prep);
    if let Err(e) = prepared {
        cleanup(&lun);
        return Err(e);
    }
    job.set_percent(50);
    if job.cancel_requested() {
        cleanup(&lun);
        return Err(VdsError::new(Hresult::VDS_E_OPERATION_CANCELED, "canceled"));
    }
    let filtered = match open_backing(&lun) {
        Ok(f) => f,
        Err(e) => {
            cleanup(&lun);
            return Err(storage_err(
                format!(
                    "opening the new LUN's storage {}",
                    lun.backing.path.as_deref().unwrap_or_default()
                ),
                &e,
            ));
        }
    };
    set_size(&mut lun, filtered.size());
    let identity = identity_of(&lun.backing).ok().flatten();
    // What the store opened is still what was judged: the path names the judged inode now,
    // and the store's descriptor is the inode at the path (probe).
    if let Some(want) = prep.adopted {
        if identity != Some(want) || filtered.probe().is_err() {
            cleanup(&lun);
            return Err(VdsError::new(
                Hresult::E_ACCESSDENIED,
                format!(
                    "backing.path {}: replaced while the LUN was being created",
                    lun.backing.path.as_deref().unwrap_or_default()
                ),
            ));
        }
    }
    job.set_percent(90);

    let mut g = inner.state.lock();
    let st = &mut *g;
    let fail = |st: &mut State, slots: Slots, e: VdsError| {
        slots.release(st);
        if let Some(p) = &own_path {
            let _ = std::fs::remove_file(p);
        }
        Err(e)
    };
    if !job.begin_commit() {
        return fail(
            st,
            slots,
            VdsError::new(Hresult::VDS_E_OPERATION_CANCELED, "canceled"),
        );
    }
    // The targets were held by our slots; they still exist.
    let mut numbers = Vec::new();
    for t in &targets {
        match st.targets.get_mut(t).and_then(TargetEntry::allocate) {
            Some(n) => numbers.push((*t, n)),
            None => {
                for (t, n) in numbers {
                    if let Some(te) = st.targets.get_mut(&t) {
                        te.release(n);
                    }
                }
                return fail(
                    st,
                    slots,
                    VdsError::new(
                        Hresult::E_OUTOFMEMORY,
                        format!("target {t} has no free LUN number"),
                    ),
                );
            }
        }
    }
    lun.targets = numbers.iter().map(|(t, _)| *t).collect();
    lun.lun_numbers = numbers.clone();
    let lu_state = st.lu_state(&lun);
    let lu = inner.make_lu(&lun, filtered.clone(), lu_state, None);
    lun.identification = naa_hex(&lu);
    let rec = LunRecord {
        lun: lun.clone(),
        identity,
        owns_file,
    };
    if let Err(e) = st.store.write(|tx| tx.put_lun(&rec)) {
        for (t, n) in numbers {
            if let Some(te) = st.targets.get_mut(&t) {
                te.release(n);
            }
        }
        return fail(st, slots, store_err(e));
    }
    let seq = st.next_seq();
    st.luns.insert(
        id,
        LunEntry {
            rec,
            seq,
            lu,
            filtered: Some(filtered),
        },
    );
    for t in &targets {
        st.targets.get_mut(t).expect("held").t.luns.push(id);
        // The new LUN is inserted into each target's map, not rebuilt with every other LUN.
        st.lun_added(*t, id);
    }
    if !targets.is_empty() {
        inner.publish(st);
        for t in &targets {
            st.for_each_lu_of_target(*t, |lu| {
                if lu.id() != id {
                    lu.luns_changed();
                }
            });
        }
    }
    inner.emit(ObjectKind::Lun, EventKind::Arrive, id);
    slots.release(st);
    Ok((Hresult::S_OK, Some(JobOutput::Lun(Box::new(lun)))))
}

fn set_size(lun: &mut Lun, size: u64) {
    lun.size_bytes = size;
    for p in &mut lun.plexes {
        p.size_bytes = size;
    }
}

fn set_path_object(st: &mut State, kind: ObjectKind, id: Uuid, online: bool) {
    match kind {
        ObjectKind::Subsystem => {
            if let Some(s) = st.subsystems.get_mut(&id) {
                s.status = if online {
                    SubsystemStatus::Online
                } else {
                    SubsystemStatus::Offline
                };
            }
        }
        ObjectKind::Controller => {
            if let Some(c) = st.controllers.get_mut(&id) {
                c.status = if online {
                    ControllerStatus::Online
                } else {
                    ControllerStatus::Offline
                };
            }
        }
        _ => {
            if let Some(d) = st.drives.get_mut(&id) {
                d.status = if online {
                    DriveStatus::Online
                } else {
                    DriveStatus::Offline
                };
            }
        }
    }
}
