//! Every operation of [`Command`](crate::Command), each following BEHAVIOUR.md §2: the object
//! (1 not found, 2 deleted, 3 cache corrupt), then the arguments (4 E_INVALIDARG, 5
//! NOT_SUPPORTED), then the slots (6 BUSY), then the object's health (7 FAILED); only then is
//! anything changed, and then only through `Inner::commit` (`commit.rs`): the store first,
//! then the state, the data path and exactly one event per change, then the slots.
//!
//! One module per object kind: `lun_create` (CreateLun), `lun` (delete, patch, SetStatus,
//! faults, targets, recover), `lun_info` (identification, find by designator, hints), `lun_resize` (extend/shrink), `target` (with its secrets),
//! `portal_group`, `portal`, `controller` (add, AssociateControllers, QueryActiveControllers,
//! QueryAssociatedLuns, the load-balance policy), `path` (subsystem/controller/drive SetStatus and
//! SetControllerStatus), `subsystem` (rename, interconnects, version support), `cache`
//! (Reenumerate/Refresh and the re-read/re-probe of LUN storage), `read` (every Get and List),
//! `sessions` (the live sessions and a LUN's paths, from the data path) and `data_path` (what
//! logical units report). This module dispatches and holds the checks
//! they share. A new object kind adds its module here, its arms to `dispatch`, and its
//! changes as `Change`s.

use std::sync::Arc;

use uuid::Uuid;
use vds_model::{AsyncOutputType, FaultFilterSpec, Hresult, ObjectKind};
use vds_store::SecretKind;

use crate::commit::Change;
use crate::engine::{Inner, Slots};
use crate::jobs::JobHandle;
use crate::state::State;
use crate::{Command, Outcome, Provider, VdsError};

mod cache;
mod config;
mod controller;
mod data_path;
pub(crate) mod drive;
mod lun;
mod lun_composite;
mod lun_create;
pub(crate) mod lun_info;
mod lun_resize;
mod maintenance;
mod path;
pub(crate) mod plex;
mod plex_ops;
pub(crate) mod pool;
mod replace_drive;
pub(crate) use replace_drive::unreserve;
mod portal;
mod portal_group;
mod read;
mod sessions;
mod subsystem;
mod target;

/// Longest friendly name / alias accepted (the iSCSI TargetAlias limit).
const MAX_NAME_LEN: usize = 255;

use crate::jobs::JobResult;

pub(crate) fn check_name(field: &str, name: &str) -> Result<String, VdsError> {
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

/// Listed controllers with the index of their list, and the omitted ones.
pub(super) type Partition = (Vec<(Uuid, usize)>, Vec<Uuid>);

/// The two-list partition of a subsystem's controllers that AssociateControllers (active,
/// inactive) and SetControllerStatus (online, offline) take: each id names a controller
/// (NOT_FOUND, DELETED) of subsystem `sub` and appears once in both lists (E_INVALIDARG naming
/// the entry; `sub_name` says whose subsystem in the message). Returns every listed controller
/// with the index of its list, and the controllers of `sub` in neither list, in port-group
/// order; each caller words the omission its own way.
pub(super) fn partition_controllers(
    st: &State,
    sub: Uuid,
    lists: [(&str, &[Uuid]); 2],
    sub_name: &str,
) -> Result<Partition, VdsError> {
    let mut seen: std::collections::HashMap<Uuid, String> = std::collections::HashMap::new();
    let mut listed = Vec::new();
    for (n, (list, ids)) in lists.into_iter().enumerate() {
        for (i, c) in ids.iter().enumerate() {
            let field = format!("{list}[{i}]");
            st.lookup(ObjectKind::Controller, *c, Some(&field))?;
            let owner = st.controllers[c].subsystem;
            if owner != sub {
                return Err(VdsError::invalid_arg(
                    &field,
                    format!("controller {c} belongs to subsystem {owner}, not to {sub_name}{sub}"),
                ));
            }
            if let Some(first) = seen.insert(*c, field.clone()) {
                return Err(VdsError::invalid_arg(
                    &field,
                    format!("controller {c} is already listed as {first}; each controller goes in exactly one list, once"),
                ));
            }
            listed.push((*c, n));
        }
    }
    let omitted = st
        .controllers_of(sub)
        .iter()
        .filter(|c| !seen.contains_key(&c.id))
        .map(|c| c.id)
        .collect();
    Ok((listed, omitted))
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
            Command::ExportConfig { include_secrets } => self.export_config(include_secrets),
            Command::ApplyConfig { doc, dry_run } => self.apply_config(*doc, dry_run),
            Command::Refresh => self.refresh(),
            Command::GetVersionSupport => Ok(Outcome::VersionSupport(
                vds_model::VersionSupportFlag::bits(subsystem::VERSION_SUPPORT),
            )),
            Command::ListSubsystems => self.list(ObjectKind::Subsystem, None),
            Command::GetSubsystem { id } => self.get(ObjectKind::Subsystem, id),
            Command::SetSubsystemStatus { id, status } => {
                self.set_path_status(ObjectKind::Subsystem, id, status)
            }
            Command::RenameSubsystem { id, friendly_name } => {
                self.rename_subsystem(id, friendly_name)
            }
            Command::SetControllerStatuses {
                subsystem,
                online,
                offline,
            } => self.set_controller_statuses(subsystem, online, offline),
            Command::GetSupportedInterconnects { subsystem } => {
                self.supported_interconnects(subsystem)
            }
            Command::GetDriveAt {
                subsystem,
                bus,
                slot,
            } => self.drive_at(subsystem, bus, slot),
            Command::Maintenance {
                kind,
                id,
                operation,
                action,
            } => self.maintenance(kind, id, operation, action),
            Command::ListControllers { subsystem } => self.list(ObjectKind::Controller, subsystem),
            Command::GetController { id } => self.get(ObjectKind::Controller, id),
            Command::SetControllerStatus { id, status } => {
                self.set_path_status(ObjectKind::Controller, id, status)
            }
            Command::AddController {
                subsystem,
                friendly_name,
            } => self.add_controller(subsystem, friendly_name),
            Command::GetControllerLuns { id } => self.controller_luns(id),
            Command::AssociateControllers {
                id,
                active,
                inactive,
            } => self.associate_controllers(id, active, inactive),
            Command::GetLunControllers { id } => self.lun_controllers(id),
            Command::GetLoadBalance { id } => self.load_balance(id),
            Command::SetLoadBalance { id, policy } => self.set_load_balance(id, policy),
            Command::ListDrives { subsystem } => self.list(ObjectKind::Drive, subsystem),
            Command::GetDrive { id } => self.get(ObjectKind::Drive, id),
            Command::GetDriveExtents { id } => self.drive_extents(id),
            Command::GetLunPlexes { id } => self.lun_plexes(id),
            Command::GetPlex { id } => self.plex(id),
            Command::GetPlexHints { id } => self.plex_hints(id),
            Command::SetPlexHints { id, hints } => self.set_plex_hints(id, hints),
            Command::AddDrive { .. } if self.inner.cluster.is_some() => {
                Err(VdsError::not_supported(
                    "this gateway is one of several serving the subsystem from Ceph (--ceph-pool): a drive is one machine's disk, which the other gateways cannot reach",
                ))
            }
            Command::AddDrive {
                subsystem,
                kind,
                path,
                friendly_name,
                force,
            } => self.add_drive(subsystem, kind, path, friendly_name, force),
            Command::RemoveDrive { id } => self.remove_drive(id),
            Command::SetDriveFlags { id, hotspare } => self.set_drive_flags(id, hotspare),
            Command::SetDriveFaults { id, filters } => self.set_drive_faults(id, filters),
            Command::SetDriveStatus { id, status } => {
                self.set_path_status(ObjectKind::Drive, id, status)
            }
            Command::ListPools { subsystem } => self.list_pools(subsystem),
            Command::GetPool { id } => self.get_pool(id),
            Command::GetPoolDrives { id } => self.pool_drives(id),
            Command::GetPoolDriveExtents { id } => self.pool_drive_extents(id),
            Command::GetPoolLuns { id } => self.pool_luns(id),
            Command::CreatePool(a) => self.create_pool(a),
            Command::DeletePool { id } => self.delete_pool(id),
            Command::CreateLunInPool { pool, args } => self.create_lun_in_pool(pool, args),
            Command::MaxLunSize(a) => self.max_lun_size(a),
            Command::MaxExtendSize { id, drives } => self.max_extend_size(id, drives),
            Command::ListLuns { subsystem } => self.list(ObjectKind::Lun, subsystem),
            Command::FindLuns { identifier } => self.find_luns(&identifier),
            Command::GetLunIdentification { id } => self.lun_identification(id),
            Command::GetLunHints { id } => self.lun_hints(id),
            Command::SetLunHints { id, hints } => self.set_lun_hints(id, hints),
            Command::GetLun { id } => self.get(ObjectKind::Lun, id),
            Command::CreateLun(args) => self.create_lun(args),
            Command::DeleteLun { id } => self.delete_lun(id),
            Command::PatchLun {
                id,
                friendly_name,
                unmasking_list,
                read_only,
            } => self.patch_lun(id, friendly_name, unmasking_list, read_only),
            Command::SetLunStatus { id, status } => self.set_lun_status(id, status),
            Command::ExtendLun { id, bytes } => self.resize_lun(id, bytes, true, None),
            Command::ExtendLunOnto { id, bytes, drives } => {
                self.resize_lun(id, bytes, true, Some(drives))
            }
            Command::ShrinkLun { id, bytes } => self.resize_lun(id, bytes, false, None),
            Command::RecoverLun { id } => self.recover_lun(id),
            Command::AddPlex { id, lun } => self.add_plex(id, lun),
            Command::RemovePlex { id } => self.remove_plex(id),
            Command::ReplaceDrive { id, old, new } => self.replace_drive(id, old, new),
            Command::SetLunFaults { id, filters } => self.set_lun_faults(id, filters),
            Command::SetLunTargets { id, targets } => self.set_lun_targets(id, targets),
            Command::ListTargets { subsystem } => self.list(ObjectKind::Target, subsystem),
            Command::GetTarget { id } => self.get(ObjectKind::Target, id),
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
            Command::GetConnectedInitiators { id } => self.connected_initiators(id),
            Command::ListSessions { target } => self.list_sessions(target),
            Command::GetLunPaths { id } => self.lun_paths(id),
            Command::ListPortalGroups { target } => self.list_portal_groups(target),
            Command::GetPortalGroup { id } => self.get(ObjectKind::PortalGroup, id),
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
            Command::ListPortals { subsystem } => self.list(ObjectKind::Portal, subsystem),
            Command::GetPortal { id } => self.get(ObjectKind::Portal, id),
            Command::CreatePortal {
                subsystem,
                address,
                port,
                advertise,
                controller,
            } => self.create_portal(subsystem, address, port, advertise, controller),
            Command::PatchPortal { id, advertise } => self.patch_portal(id, advertise),
            Command::DeletePortal { id } => self.delete_portal(id),
            Command::SetPortalStatus { id, status } => self.set_portal_status(id, status),
            Command::ListJobs => Ok(Outcome::Jobs(self.inner.jobs.list())),
            Command::GetJob { id } => Ok(Outcome::Job(self.inner.jobs.query(id)?)),
            Command::WaitJob { id, timeout } => {
                Ok(Outcome::Job(self.inner.jobs.wait(id, timeout)?))
            }
            Command::CancelJob { id } => Ok(Outcome::Job(self.inner.jobs.cancel(id)?)),
            Command::DataPath(msg) => self.data_path(&msg),
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
        let name = format!("vds-job-{}", op.short_name());
        crate::jobs::run_on_thread(&handle, name, move |h| work(&inner, h, slots))?;
        Ok(Outcome::Job(handle.job()))
    }
}

/// The error of a job canceled before it committed.
fn canceled() -> VdsError {
    VdsError::new(Hresult::VDS_E_OPERATION_CANCELED, "canceled")
}

/// Commits a job's `change`, unless the job was canceled first: then nothing changes, the
/// slots are released and the job ends VDS_E_OPERATION_CANCELED.
fn commit_job(
    inner: &Inner,
    job: &JobHandle,
    st: &mut State,
    change: Change<'_>,
    slots: Slots,
) -> Result<(), VdsError> {
    if !job.begin_commit() {
        return Err(Inner::abandon(st, slots, canceled()));
    }
    inner.commit(st, change, Some(slots))
}
