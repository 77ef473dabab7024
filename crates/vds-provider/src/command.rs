//! The provider's one entry point, as data: every management operation is a [`Command`], every
//! success an [`Outcome`], every failure a [`VdsError`] (an HRESULT plus a sentence naming the
//! offending field or object). `vds-api` turns HTTP into commands and outcomes back into HTTP;
//! nothing else crosses that seam.
//!
//! Arguments arrive typed, except requested statuses, which arrive as the raw integer the
//! caller sent: judging `E_INVALIDARG` (not a member, or `*_UNKNOWN`) against
//! `VDS_E_NOT_SUPPORTED` (a report-only member) is the provider's job (BEHAVIOUR.md §2–§4).

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::hooks::DataPathMsg;
use uuid::Uuid;
use vds_model::{
    BackingKind, Controller, Drive, FaultFilterSpec, Hresult, Job, LoadBalancePolicy, Lun, LunType,
    ObjectKind, Portal, PortalGroup, ProviderInfo, Subsystem, Target,
};

/// A CHAP secret as a command carries it, not yet checked: its `Debug` shows only the length,
/// so a command in a log or a panic message never carries the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(pub Vec<u8>);

impl From<Vec<u8>> for SecretBytes {
    fn from(v: Vec<u8>) -> Self {
        SecretBytes(v)
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBytes(<{} bytes>)", self.0.len())
    }
}

/// A configuration document (INTERFACE.md "Configuration documents"): the whole array of one
/// subsystem by names (LUN names, target IQNs, portal addresses, portal group tags), which
/// `ApplyConfig` makes true in one commit. Secrets are `None` when not exported.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigDoc {
    /// The subsystem's friendly name (`None`: left as it is).
    pub subsystem: Option<String>,
    /// Every portal.
    pub portals: Vec<ConfigPortal>,
    /// Every target.
    pub targets: Vec<ConfigTarget>,
    /// Every LUN.
    pub luns: Vec<ConfigLun>,
}

/// A portal of a [`ConfigDoc`], known by its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigPortal {
    /// Bind address and port.
    pub address: std::net::SocketAddr,
    /// What SendTargets reports instead (BEHAVIOUR.md §4).
    pub advertise: Option<String>,
    /// ONLINE (listening) rather than OFFLINE.
    pub online: bool,
}

/// A target of a [`ConfigDoc`], known by its IQN (case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigTarget {
    /// The IQN.
    pub iscsi_name: String,
    /// The alias.
    pub friendly_name: String,
    /// The CHAP secrets; `None`: the target's secrets are left as they are.
    pub chap: Option<ConfigChap>,
    /// Portal groups by tag, each with its portals by address.
    pub portal_groups: Vec<(u16, Vec<std::net::SocketAddr>)>,
}

/// A target's CHAP secrets in a [`ConfigDoc`] (BEHAVIOUR.md §10): exactly these, no others.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ConfigChap {
    /// The target-wide secret (`SetSharedSecret` without an initiator).
    pub shared: Option<SecretBytes>,
    /// Per-initiator secrets (`SetSharedSecret` with an initiator).
    pub initiators: Vec<(String, SecretBytes)>,
    /// Mutual secrets (`RememberInitiatorSharedSecret`).
    pub mutual: Vec<(String, SecretBytes)>,
}

impl std::fmt::Debug for ConfigChap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names =
            |l: &[(String, SecretBytes)]| l.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        f.debug_struct("ConfigChap")
            .field("shared", &self.shared)
            .field("initiators", &names(&self.initiators))
            .field("mutual", &names(&self.mutual))
            .finish()
    }
}

/// A LUN of a [`ConfigDoc`], known by its friendly name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigLun {
    /// Friendly name (unique).
    pub name: String,
    /// Size in bytes; `None`: an adopted file or device, whatever its size (an adopted one
    /// keeps its own size; a size given must match it).
    pub size_bytes: Option<u64>,
    /// `file`, `block`, `memory` or `null`.
    pub kind: BackingKind,
    /// The file or device (`None` for a file: vds's own file in the data dir).
    pub path: Option<String>,
    /// Thin (sparse) when vds makes the file.
    pub thin: bool,
    /// The unmasking list (`*`, empty, or initiator names).
    pub unmasking_list: String,
    /// Write-protected.
    pub read_only: bool,
    /// The targets (by IQN) that show the LUN, each with its LUN number.
    pub targets: Vec<(String, u64)>,
    /// Its hints (BEHAVIOUR.md §14): given to a new LUN; an existing LUN's must be the same
    /// (`None`: the defaults for a new LUN, as they are for an existing one).
    pub hints: Option<HintsRequest>,
}

/// The backing store requested for a new LUN (INTERFACE.md `B`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackingSpec {
    /// `file` (default), `block`, `memory`, `null` or `rbd`.
    pub kind: BackingKind,
    /// For `file`: an existing file or one to create (absent: a sparse file in the data dir).
    /// For `block`: the device (required). Must be absolute. An existing file or device is
    /// adopted as it is (BEHAVIOUR §12).
    pub path: Option<String>,
    /// Fault filters (only with fault injection enabled).
    pub filters: Vec<FaultFilterSpec>,
    /// Zero the first and last MiB of an adopted file or device (default: nothing in it is
    /// touched).
    pub wipe: bool,
    /// For `rbd`: the Ceph pool of the image (required; only for `rbd`).
    pub pool: Option<String>,
    /// For `rbd`: the image, created when it does not exist, adopted as it is when it does.
    pub image: Option<String>,
}

impl Default for BackingSpec {
    fn default() -> Self {
        BackingSpec {
            kind: BackingKind::File,
            path: None,
            filters: Vec::new(),
            wipe: false,
            pool: None,
            image: None,
        }
    }
}

/// Arguments of `IVdsSubSystem::CreateLun` (`POST /v1/subsystems/{id}/luns`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateLunArgs {
    /// The subsystem to create it in.
    pub subsystem: Uuid,
    /// Requested capacity in bytes; rounded up to the block size. Must be > 0.
    pub size_bytes: u64,
    /// Friendly name (default: `lun-<first 8 hex of the id>`). Unique among LUNs.
    pub friendly_name: Option<String>,
    /// LUN type (default `simple`). `unknown` → `E_INVALIDARG`; types vds does not build →
    /// `VDS_E_NOT_SUPPORTED`.
    pub lun_type: Option<LunType>,
    /// Thin provisioning (default true; a non-thin file is fully allocated).
    pub thin: Option<bool>,
    /// The drive that holds it (default and, until extent-backed LUNs, the only choice: the
    /// data dir's drive).
    pub drive: Option<Uuid>,
    /// Unmasking list (default `"*"`); see BEHAVIOUR.md §10.
    pub unmasking_list: Option<String>,
    /// Targets to associate at once (LUN numbers: lowest free in each).
    pub targets: Option<Vec<Uuid>>,
    /// Backing store (default: a sparse file in the data dir).
    pub backing: Option<BackingSpec>,
    /// Read-only from the start (default false; a vds extension, see [`Lun::read_only`]).
    ///
    /// [`Lun::read_only`]: vds_model::Lun::read_only
    pub read_only: Option<bool>,
    /// Hints to apply from the start (`IVdsSubSystem2::CreateLun2`); judged like
    /// [`Command::SetLunHints`].
    pub hints: Option<HintsRequest>,
    /// The drives of an extent-backed LUN, used in order (BEHAVIOUR.md §15): plex i takes
    /// the i-th group of `len / plexes` drives.
    pub drives: Option<Vec<Uuid>>,
    /// Plexes of a mirror or RAID-10 LUN (2-4, default 2).
    pub plexes: Option<u32>,
    /// Stripe size of a stripe or RAID-10 LUN (a power of two, 4 KiB-1 MiB, default 64 KiB).
    pub stripe_size: Option<u64>,
    /// The load-balance policy from the start (`IVdsLunMpio::SetLoadBalancePolicy`, judged
    /// alike; default round robin with subset). For an RBD LUN of several gateways it also
    /// decides, for the LUN's life, whether one gateway owns it (every policy but round robin)
    /// or every gateway serves it (round robin: docs/SCALEOUT.md "Active/active LUNs").
    pub load_balance: Option<i64>,
}

/// What a caller gives to create a named pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolArgs {
    /// The subsystem.
    pub subsystem: Uuid,
    /// `pwszName`: unique among pools.
    pub friendly_name: String,
    /// `pwszDescription` (default empty).
    pub description: Option<String>,
    /// The drives, in order; each in one named pool at most.
    pub drives: Vec<Uuid>,
    /// The type a create in the pool gets when it names none (default `default`).
    pub default_type: Option<LunType>,
    /// `VDS_POOL_ATTRIBUTES` members.
    pub attributes: vds_model::PoolAttributes,
}

/// Arguments of QueryMaxLunCreateSize: on a subsystem (its primordial pool's drives when none
/// are given) or in a pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaxSizeArgs {
    /// The subsystem (when not in a pool).
    pub subsystem: Option<Uuid>,
    /// The pool.
    pub pool: Option<Uuid>,
    /// The type (default `simple`; in a pool the pool's default type).
    pub lun_type: Option<LunType>,
    /// The drives (default: chosen as a create would).
    pub drives: Option<Vec<Uuid>>,
    /// Plexes of a mirror or RAID-10 LUN.
    pub plexes: Option<u32>,
    /// Stripe size.
    pub stripe_size: Option<u64>,
}

/// The `VDS_HINTS2` members a caller gave (BEHAVIOUR.md §14 rule 8): the fields present make
/// the hint mask. Sizes are `u64` so that an out-of-range value is judged, not truncated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HintsRequest {
    pub write_caching_enabled: Option<bool>,
    pub write_through_caching_enabled: Option<bool>,
    pub read_back_verify_enabled: Option<bool>,
    pub optimal_read_size: Option<u64>,
    pub optimal_read_alignment: Option<u64>,
    pub optimal_write_size: Option<u64>,
    pub optimal_write_alignment: Option<u64>,
    pub rebuild_priority: Option<i64>,
    pub fast_crash_recovery_required: Option<bool>,
    /// Members vds does not apply ([`vds_model::HINTS_NOT_APPLIED`]), by name, with the value
    /// asked as text (`true`, `0`, `iscsi`).
    pub other: Vec<(String, String)>,
}

/// A hint vds did not apply, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotApplied {
    /// The `VDS_HINTS2` member, snake_case.
    pub field: &'static str,
    /// Why vds cannot honour it.
    pub reason: &'static str,
}

/// The answer of QueryHints2 / ApplyHints2: the LUN's hints, the `VDS_HINT_*` bits of the
/// members in effect as asked, and the members asked for that were not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedHints {
    /// Every hint of the LUN as it is now.
    pub hints: vds_model::LunHints,
    /// `ullHintMask`: GET answers every bit vds applies; PUT the bits of the members it
    /// applied from the request.
    pub mask: u64,
    /// Requested members not applied.
    pub not_applied: Vec<NotApplied>,
}

/// Every management operation (INTERFACE.md "Endpoints").
///
/// Calls marked *job* return [`Outcome::Job`] at once (the job runs on a provider worker
/// thread); the others complete before they return.
// A command is built once per request and moved into `apply`: CreateLun's arguments being
// the largest variant costs a few hundred bytes of stack, not a box per command.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `GET /v1/provider`: the provider's properties and cache state. Works while the cache is
    /// corrupt.
    GetProvider,
    /// `POST /v1/provider/reenumerate`: rediscover subsystems, drives and portals (first half
    /// of the cache cure). Holds the provider's slot.
    Reenumerate,
    /// `POST /v1/provider/refresh`: re-read state and properties of every known object; after a
    /// Reenumerate this cures a corrupt cache. Re-probes FAILED LUNs (→ OFFLINE, HEALTHY).
    Refresh,
    /// `GET /v1/config` (ops/config.rs): the whole configuration as one document, with the
    /// CHAP secrets only when `include_secrets`.
    ExportConfig {
        /// Put the CHAP secrets in the document.
        include_secrets: bool,
    },
    /// `PUT /v1/config`: make the array match the document, all or nothing, in one commit (a
    /// job); with `dry_run`, only the plan (what would be created, changed and deleted).
    ApplyConfig {
        /// The document.
        doc: Box<ConfigDoc>,
        /// Only judge the document and answer the plan.
        dry_run: bool,
    },
    /// `GET /v1/provider/version-support` (`IVdsProviderSupport::GetVersionSupport`): the
    /// `VDS_VERSION_SUPPORT_FLAG` bits this provider implements (BEHAVIOUR.md §14).
    GetVersionSupport,

    /// `GET /v1/subsystems`.
    ListSubsystems,
    /// `GET /v1/subsystems/{id}`.
    GetSubsystem {
        /// Subsystem id.
        id: Uuid,
    },
    /// `IVdsSubSystem::SetStatus`: ONLINE or OFFLINE (OFFLINE flushes every LUN and takes
    /// them off the wire until ONLINE). Other members are report-only.
    SetSubsystemStatus {
        /// Subsystem id.
        id: Uuid,
        /// Raw requested `VDS_SUB_SYSTEM_STATUS`.
        status: i64,
    },
    /// `IVdsSubSystemNaming::SetFriendlyName` (`PATCH /v1/subsystems/{id}`).
    RenameSubsystem {
        /// Subsystem id.
        id: Uuid,
        /// The new friendly name.
        friendly_name: String,
    },
    /// `IVdsSubSystem::SetControllerStatus` (`POST /v1/subsystems/{id}/controller-status`):
    /// every controller of the subsystem in exactly one of the lists; all or nothing.
    SetControllerStatuses {
        /// Subsystem id.
        subsystem: Uuid,
        /// Controllers to be ONLINE.
        online: Vec<Uuid>,
        /// Controllers to be OFFLINE.
        offline: Vec<Uuid>,
    },
    /// `IVdsSubSystemInterconnect::GetSupportedInterconnects`
    /// (`GET /v1/subsystems/{id}/interconnects`).
    GetSupportedInterconnects {
        /// Subsystem id.
        subsystem: Uuid,
    },

    /// `IVdsSubSystem::GetDrive(bus, slot)` (`GET /v1/subsystems/{id}/drives/{bus}/{slot}`).
    GetDriveAt {
        /// Subsystem id.
        subsystem: Uuid,
        /// Internal bus number.
        bus: i16,
        /// Slot number on that bus.
        slot: i16,
    },
    /// `IVdsMaintenance` on a subsystem, controller, drive or LUN
    /// (`POST /v1/{kind}/{id}/maintenance`): checked, then `VDS_E_NOT_SUPPORTED`.
    Maintenance {
        /// Object kind.
        kind: ObjectKind,
        /// Object id.
        id: Uuid,
        /// The operation.
        operation: vds_model::MaintenanceOperation,
        /// Start, stop or pulse.
        action: MaintenanceAction,
    },

    /// `GET /v1/subsystems/{id}/controllers`, or every controller when `subsystem` is `None`.
    ListControllers {
        /// Filter by subsystem.
        subsystem: Option<Uuid>,
    },
    /// `GET /v1/controllers/{id}`.
    GetController {
        /// Controller id.
        id: Uuid,
    },
    /// `IVdsController::SetStatus`: ONLINE or OFFLINE (OFFLINE flushes and takes the LUNs
    /// behind it off the wire).
    SetControllerStatus {
        /// Controller id.
        id: Uuid,
        /// Raw requested `VDS_CONTROLLER_STATUS`.
        status: i64,
    },
    /// `POST /v1/subsystems/{id}/controllers`: adds a controller (a new ALUA target port
    /// group, BEHAVIOUR.md §14).
    AddController {
        /// Subsystem id.
        subsystem: Uuid,
        /// Friendly name (default `vds controller N`).
        friendly_name: Option<String>,
    },
    /// `GET /v1/controllers/{id}/luns` (`IVdsController::QueryAssociatedLuns`): the LUNs for
    /// which the controller is active.
    GetControllerLuns {
        /// Controller id.
        id: Uuid,
    },

    /// `GET /v1/subsystems/{id}/drives`, or every drive when `subsystem` is `None`.
    ListDrives {
        /// Filter by subsystem.
        subsystem: Option<Uuid>,
    },
    /// `GET /v1/drives/{id}`.
    GetDrive {
        /// Drive id.
        id: Uuid,
    },
    /// `GET /v1/drives/{id}/extents` (`IVdsDrive::QueryExtents`): the drive's used and free
    /// ranges, with the LUN and plex of each used one.
    GetDriveExtents {
        /// Drive id.
        id: Uuid,
    },
    /// `GET /v1/luns/{id}/plexes` (`IVdsLun::QueryPlexes`).
    GetLunPlexes {
        /// LUN id.
        id: Uuid,
    },
    /// `GET /v1/plexes/{id}` (`IVdsLunPlex::GetProperties`, `QueryExtents`).
    GetPlex {
        /// Plex id.
        id: Uuid,
    },
    /// `GET /v1/plexes/{id}/hints` (`IVdsLunPlex::QueryHints`): the hints of the plex's LUN,
    /// the `VDS_HINTS` members only.
    GetPlexHints {
        /// Plex id.
        id: Uuid,
    },
    /// `PUT /v1/plexes/{id}/hints` (`IVdsLunPlex::ApplyHints`): `VDS_HINTS` applied to the
    /// plex's LUN, so to all its plexes at once, as [`Command::SetLunHints`].
    SetPlexHints {
        /// Plex id.
        id: Uuid,
        /// The members given (a `VDS_HINTS2`-only member is refused).
        hints: HintsRequest,
    },
    /// `POST /v1/subsystems/{id}/drives`: adds a drive at a caller's path (BEHAVIOUR.md §15).
    AddDrive {
        /// Subsystem id.
        subsystem: Uuid,
        /// `"dir"` or `"block"` (judged by the provider, after the subsystem).
        kind: String,
        /// The directory, block device or file.
        path: String,
        /// Friendly name (default `vds drive N`, N its slot).
        friendly_name: Option<String>,
        /// Overwrite a foreign label or non-zero label area.
        force: bool,
    },
    /// `DELETE /v1/drives/{id}`: removes a drive that holds nothing; its label is wiped.
    RemoveDrive {
        /// Drive id.
        id: Uuid,
    },
    /// `PUT /v1/drives/{id}/faults`: one set of fault filters on every extent of the drive
    /// (fault injection only; kept in memory, BEHAVIOUR.md §15).
    SetDriveFaults {
        /// Drive id.
        id: Uuid,
        /// The complete new list.
        filters: Vec<FaultFilterSpec>,
    },
    /// `PUT /v1/drives/{id}/flags` (`IVdsDrive::SetFlags` / `ClearFlags`).
    SetDriveFlags {
        /// Drive id.
        id: Uuid,
        /// `VDS_DRF_HOTSPARE` set or cleared.
        hotspare: bool,
    },
    /// `GET /v1/subsystems/{id}/pools` (`QueryStoragePools`): the primordial pool first.
    ListPools {
        /// Subsystem id.
        subsystem: Uuid,
    },
    /// `GET /v1/pools/{id}` (`IVdsStoragePool::GetProperties`, `GetAttributes`).
    GetPool {
        /// Pool id.
        id: Uuid,
    },
    /// `GET /v1/pools/{id}/drives`.
    GetPoolDrives {
        /// Pool id.
        id: Uuid,
    },
    /// `GET /v1/pools/{id}/drive-extents` (`IVdsStoragePool::QueryDriveExtents`): every used
    /// and free range of every drive of the pool.
    GetPoolDriveExtents {
        /// Pool id.
        id: Uuid,
    },
    /// `GET /v1/pools/{id}/luns` (`IVdsStoragePool::QueryAllocatedLuns`).
    GetPoolLuns {
        /// Pool id.
        id: Uuid,
    },
    /// `POST /v1/subsystems/{id}/pools`: a named pool.
    CreatePool(PoolArgs),
    /// `DELETE /v1/pools/{id}`.
    DeletePool {
        /// Pool id.
        id: Uuid,
    },
    /// `POST /v1/pools/{id}/luns` (`CreateLunInStoragePool`); `args.subsystem` is the pool's.
    CreateLunInPool {
        /// Pool id.
        pool: Uuid,
        /// The LUN, as for CreateLun.
        args: CreateLunArgs,
    },
    /// `GET .../max-lun-size` (QueryMaxLunCreateSize, QueryMaxLunCreateSizeInStoragePool).
    MaxLunSize(MaxSizeArgs),
    /// `GET /v1/luns/{id}/max-extend-size` (QueryMaxLunExtendSize).
    MaxExtendSize {
        /// LUN id.
        id: Uuid,
        /// The drives new extents may go on (span only; default: the LUN's own).
        drives: Option<Vec<Uuid>>,
    },
    /// `IVdsDrive::SetStatus`: ONLINE or OFFLINE (OFFLINE flushes and takes the LUNs on the
    /// drive off the wire).
    SetDriveStatus {
        /// Drive id.
        id: Uuid,
        /// Raw requested `VDS_DRIVE_STATUS`.
        status: i64,
    },

    /// `GET /v1/subsystems/{id}/luns`, or every LUN when `subsystem` is `None`.
    ListLuns {
        /// Filter by subsystem.
        subsystem: Option<Uuid>,
    },
    /// `GET /v1/luns?identifier=...`: the LUNs that carry this designator (BEHAVIOUR.md §14).
    FindLuns {
        /// NAA hex (with or without `naa.`), T10 vendor id (with or without `t10.`) or serial
        /// number; case-insensitive.
        identifier: String,
    },
    /// `GET /v1/luns/{id}/identification` (`IVdsLun::GetIdentificationData`).
    GetLunIdentification {
        /// LUN id.
        id: Uuid,
    },
    /// `GET /v1/luns/{id}/hints` (`IVdsLun2::QueryHints2`).
    GetLunHints {
        /// LUN id.
        id: Uuid,
    },
    /// `PUT /v1/luns/{id}/hints` (`IVdsLun2::ApplyHints2`).
    SetLunHints {
        /// LUN id.
        id: Uuid,
        /// The members given.
        hints: HintsRequest,
    },
    /// `GET /v1/luns/{id}`.
    GetLun {
        /// LUN id.
        id: Uuid,
    },
    /// `POST /v1/subsystems/{id}/luns` (*job*, output: the LUN).
    CreateLun(CreateLunArgs),
    /// `DELETE /v1/luns/{id}`: removes it from its targets, frees its storage (zeroing the
    /// first and last MiB of block devices), remembers the id.
    DeleteLun {
        /// LUN id.
        id: Uuid,
    },
    /// `PATCH /v1/luns/{id}`: friendly name, unmasking list (`IVdsLun::SetMask`) and/or the
    /// read-only extension (published to the data path before the call returns).
    PatchLun {
        /// LUN id.
        id: Uuid,
        /// New friendly name.
        friendly_name: Option<String>,
        /// New unmasking list (replaces the old one).
        unmasking_list: Option<String>,
        /// Make the LUN read-only (`true`) or writable again (`false`).
        read_only: Option<bool>,
    },
    /// `POST /v1/luns/{id}/status` (`IVdsLun::SetStatus`, BEHAVIOUR.md §3).
    SetLunStatus {
        /// LUN id.
        id: Uuid,
        /// Raw requested `VDS_LUN_STATUS`.
        status: i64,
    },
    /// `POST /v1/luns/{id}/extend` (*job*, output: the LUN).
    ExtendLun {
        /// LUN id.
        id: Uuid,
        /// Bytes to add (> 0; rounded up to the block size).
        bytes: u64,
    },
    /// `POST /v1/luns/{id}/extend` with `drives` (*job*): a span LUN grows onto these drives,
    /// in order.
    ExtendLunOnto {
        /// LUN id.
        id: Uuid,
        /// Bytes to add.
        bytes: u64,
        /// The drives of the new extents.
        drives: Vec<Uuid>,
    },
    /// `POST /v1/luns/{id}/shrink` (*job*, output: the LUN). Removes bytes from the end.
    ShrinkLun {
        /// LUN id.
        id: Uuid,
        /// Bytes to remove (> 0, less than the size; rounded up to the block size).
        bytes: u64,
    },
    /// `POST /v1/luns/{id}/recover` (*job*). `VDS_E_INVALID_OPERATION` on a LUN that is not
    /// fault tolerant.
    RecoverLun {
        /// LUN id.
        id: Uuid,
    },
    /// `POST /v1/subsystems/{id}/replace-drive` (`IVdsSubSystem::ReplaceDrive`, *job*
    /// ReplaceDisk): every extent on drive `old` moves to drive `new`.
    ReplaceDrive {
        /// Subsystem id.
        id: Uuid,
        /// The drive emptied.
        old: Uuid,
        /// The drive that takes its extents.
        new: Uuid,
    },
    /// `POST /v1/luns/{id}/plexes` (`IVdsLun::AddPlex`, *job* AddLunPlex): LUN `lun` becomes
    /// a new plex of LUN `id` (it departs; its data is gone) and is regenerated.
    AddPlex {
        /// LUN id.
        id: Uuid,
        /// The LUN that becomes the plex.
        lun: Uuid,
    },
    /// `DELETE /v1/plexes/{id}` (`IVdsLun::RemovePlex`, *job* RemoveLunPlex, finished at once).
    RemovePlex {
        /// Plex id.
        id: Uuid,
    },
    /// `PUT /v1/luns/{id}/faults`: replaces the fault filters (fault injection only).
    SetLunFaults {
        /// LUN id.
        id: Uuid,
        /// The complete new list.
        filters: Vec<FaultFilterSpec>,
    },
    /// `PUT /v1/luns/{id}/targets` (`IVdsLunIscsi::AssociateTargets`): the complete new set.
    SetLunTargets {
        /// LUN id.
        id: Uuid,
        /// Target ids.
        targets: Vec<Uuid>,
    },
    /// `PUT /v1/luns/{id}/controllers` (`IVdsLun::AssociateControllers`): every controller of
    /// the subsystem in exactly one list, at least one active.
    AssociateControllers {
        /// LUN id.
        id: Uuid,
        /// Controllers for which the LUN is active.
        active: Vec<Uuid>,
        /// The others.
        inactive: Vec<Uuid>,
    },
    /// `GET /v1/luns/{id}/controllers` (`IVdsLun::QueryActiveControllers`).
    GetLunControllers {
        /// LUN id.
        id: Uuid,
    },
    /// `GET /v1/luns/{id}/load-balance` (`IVdsLunMpio::GetLoadBalancePolicy` and
    /// `GetSupportedLbPolicies`).
    GetLoadBalance {
        /// LUN id.
        id: Uuid,
    },
    /// `PUT /v1/luns/{id}/load-balance` (`IVdsLunMpio::SetLoadBalancePolicy`).
    SetLoadBalance {
        /// LUN id.
        id: Uuid,
        /// Raw requested `VDS_LOADBALANCE_POLICY_ENUM` (judged like a requested status).
        policy: i64,
    },

    /// `GET /v1/subsystems/{id}/targets`, or every target when `subsystem` is `None`.
    ListTargets {
        /// Filter by subsystem.
        subsystem: Option<Uuid>,
    },
    /// `GET /v1/targets/{id}`.
    GetTarget {
        /// Target id.
        id: Uuid,
    },
    /// `POST /v1/subsystems/{id}/targets` (*job*, output: the target).
    CreateTarget {
        /// The subsystem.
        subsystem: Uuid,
        /// IQN; `None` or empty: generated.
        iscsi_name: Option<String>,
        /// iSCSI alias.
        friendly_name: String,
    },
    /// `DELETE /v1/targets/{id}` (*job*): deletes its portal groups too;
    /// `VDS_E_ASSOCIATED_LUNS_EXIST` while it has LUNs.
    DeleteTarget {
        /// Target id.
        id: Uuid,
    },
    /// `PATCH /v1/targets/{id}` (`SetFriendlyName`).
    RenameTarget {
        /// Target id.
        id: Uuid,
        /// New alias.
        friendly_name: String,
    },
    /// `PUT /v1/targets/{id}/shared-secret` (`SetSharedSecret`): `secret` `None` clears;
    /// `initiator_name` `None` sets the default secret.
    SetSharedSecret {
        /// Target id.
        id: Uuid,
        /// 12 to 16 bytes, or `None` to clear.
        secret: Option<SecretBytes>,
        /// Per-initiator secret when given.
        initiator_name: Option<String>,
    },
    /// `PUT /v1/targets/{id}/initiator-secrets/{name}` (`RememberInitiatorSharedSecret`):
    /// the secret the target answers an initiator's challenge with (mutual CHAP).
    RememberInitiatorSecret {
        /// Target id.
        id: Uuid,
        /// Initiator name (required).
        initiator_name: String,
        /// 12 to 16 bytes, or `None` to forget.
        secret: Option<SecretBytes>,
    },
    /// `GET /v1/targets/{id}/initiators` (`GetConnectedInitiators`).
    GetConnectedInitiators {
        /// Target id.
        id: Uuid,
    },
    /// `GET /v1/sessions` (every target) and `GET /v1/targets/{id}/sessions`: the logged-in
    /// sessions with their connections and counters (BEHAVIOUR.md §14 "Sessions").
    ListSessions {
        /// Only this target's sessions.
        target: Option<Uuid>,
    },
    /// `GET /v1/luns/{id}/paths` (IVdsLunMpio::GetPathInfo, BEHAVIOUR.md §14 "Paths").
    GetLunPaths {
        /// LUN id.
        id: Uuid,
    },

    /// Portal groups of a target, or every portal group when `target` is `None`.
    ListPortalGroups {
        /// Filter by target.
        target: Option<Uuid>,
    },
    /// `GET /v1/portal-groups/{id}`.
    GetPortalGroup {
        /// Portal group id.
        id: Uuid,
    },
    /// `POST /v1/targets/{id}/portal-groups` (*job*, output: the portal group).
    CreatePortalGroup {
        /// Target id.
        target: Uuid,
    },
    /// `DELETE /v1/portal-groups/{id}` (*job*); `VDS_E_ASSOCIATED_PORTALS_EXIST` while it
    /// has portals.
    DeletePortalGroup {
        /// Portal group id.
        id: Uuid,
    },
    /// `POST /v1/portal-groups/{id}/portals` (*job*, output: the portal group).
    AddPortalToGroup {
        /// Portal group id.
        portal_group: Uuid,
        /// Portal id.
        portal: Uuid,
    },
    /// `DELETE /v1/portal-groups/{id}/portals/{portal_id}` (*job*, output: the portal group).
    RemovePortalFromGroup {
        /// Portal group id.
        portal_group: Uuid,
        /// Portal id.
        portal: Uuid,
    },

    /// `GET /v1/subsystems/{id}/portals`, or every portal when `subsystem` is `None`.
    ListPortals {
        /// Filter by subsystem.
        subsystem: Option<Uuid>,
    },
    /// `GET /v1/portals/{id}`.
    GetPortal {
        /// Portal id.
        id: Uuid,
    },
    /// `POST /v1/subsystems/{id}/portals`: declare a portal; it starts OFFLINE. The same
    /// address and port again answers `VDS_S_ALREADY_EXISTS` with the existing portal.
    CreatePortal {
        /// The subsystem.
        subsystem: Uuid,
        /// Listen address.
        address: IpAddr,
        /// TCP port (> 0).
        port: u16,
        /// What SendTargets reports instead of the bind address (`host:port`, checked by
        /// `AdvertisedAddress::parse`; BEHAVIOUR.md §4).
        advertise: Option<String>,
        /// The controller whose port it is (default: the subsystem's first; BEHAVIOUR.md §14).
        controller: Option<Uuid>,
    },
    /// `PATCH /v1/portals/{id}`: `advertise` `None` leaves it, `Some(None)` clears it,
    /// `Some(Some(a))` sets it (BEHAVIOUR.md §4).
    PatchPortal {
        /// Portal id.
        id: Uuid,
        /// The change to the advertised address.
        advertise: Option<Option<String>>,
    },
    /// `DELETE /v1/portals/{id}`: unbinds it and removes it from its portal groups.
    DeletePortal {
        /// Portal id.
        id: Uuid,
    },
    /// `POST /v1/portals/{id}/status` (`IVdsIscsiPortal::SetStatus`, BEHAVIOUR.md §4).
    SetPortalStatus {
        /// Portal id.
        id: Uuid,
        /// Raw requested `VDS_ISCSI_PORTAL_STATUS`.
        status: i64,
    },

    /// Every job the provider remembers.
    ListJobs,
    /// `GET /v1/jobs/{id}` (`IVdsAsync::QueryStatus`); never blocks.
    GetJob {
        /// Job id.
        id: Uuid,
    },
    /// `POST /v1/jobs/{id}/wait` (`IVdsAsync::Wait`): blocks until the job ends, or until
    /// `timeout` (then the running job is returned).
    WaitJob {
        /// Job id.
        id: Uuid,
        /// Longest wait; `None` waits for the end.
        timeout: Option<Duration>,
    },
    /// `POST /v1/jobs/{id}/cancel` (`IVdsAsync::Cancel`): `S_OK`, `VDS_E_CANCEL_TOO_LATE` or
    /// `VDS_E_OPERATION_CANCELED`.
    CancelJob {
        /// Job id.
        id: Uuid,
    },
    /// Not an endpoint: what a logical unit reports (it failed an I/O; its APTPL reservation
    /// state is to be stored), applied by the same owner as every other change. Made only by
    /// the provider's own hooks: [`DataPathMsg`] has no public constructor, so `vds-api`
    /// cannot make one. Answers the LUN as it is after the report.
    DataPath(DataPathMsg),
}

impl Command {
    /// Whether the command changes nothing (pure reads never answer BUSY or FAILED).
    pub fn is_read(&self) -> bool {
        matches!(
            self,
            Command::GetProvider
                | Command::GetVersionSupport
                | Command::GetSupportedInterconnects { .. }
                | Command::GetDriveAt { .. }
                | Command::Maintenance { .. }
                | Command::ListSubsystems
                | Command::GetSubsystem { .. }
                | Command::ListControllers { .. }
                | Command::GetController { .. }
                | Command::GetControllerLuns { .. }
                | Command::GetLunControllers { .. }
                | Command::GetLoadBalance { .. }
                | Command::ListDrives { .. }
                | Command::GetDrive { .. }
                | Command::GetDriveExtents { .. }
                | Command::GetLunPlexes { .. }
                | Command::GetPlex { .. }
                | Command::GetPlexHints { .. }
                | Command::ListPools { .. }
                | Command::GetPool { .. }
                | Command::GetPoolDrives { .. }
                | Command::GetPoolDriveExtents { .. }
                | Command::GetPoolLuns { .. }
                | Command::MaxLunSize(_)
                | Command::MaxExtendSize { .. }
                | Command::ListLuns { .. }
                | Command::FindLuns { .. }
                | Command::GetLunIdentification { .. }
                | Command::GetLunHints { .. }
                | Command::GetLun { .. }
                | Command::ListTargets { .. }
                | Command::GetTarget { .. }
                | Command::GetConnectedInitiators { .. }
                | Command::ListSessions { .. }
                | Command::GetLunPaths { .. }
                | Command::ListPortalGroups { .. }
                | Command::GetPortalGroup { .. }
                | Command::ListPortals { .. }
                | Command::GetPortal { .. }
                | Command::ListJobs
                | Command::GetJob { .. }
                | Command::WaitJob { .. }
        )
    }

    /// Whether the command starts a job.
    pub fn is_async(&self) -> bool {
        matches!(
            self,
            Command::CreateLun(_)
                | Command::CreateLunInPool { .. }
                | Command::ExtendLun { .. }
                | Command::ExtendLunOnto { .. }
                | Command::ShrinkLun { .. }
                | Command::RecoverLun { .. }
                | Command::AddPlex { .. }
                | Command::RemovePlex { .. }
                | Command::ReplaceDrive { .. }
                | Command::CreateTarget { .. }
                | Command::DeleteTarget { .. }
                | Command::CreatePortalGroup { .. }
                | Command::DeletePortalGroup { .. }
                | Command::AddPortalToGroup { .. }
                | Command::RemovePortalFromGroup { .. }
        )
    }
}

/// A range of a drive (`VDS_DRIVE_EXTENT`): used by a plex of a LUN, or free. On a `dir`
/// drive each used extent is its own file (offset 0) and the free range is what its
/// capacity leaves (offset 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveRange {
    /// Where it starts on the drive.
    pub offset: u64,
    /// Its length.
    pub size: u64,
    /// The LUN and plex that use it (`None`: free).
    pub used_by: Option<(Uuid, Uuid)>,
    /// Column and position in the column of a used range.
    pub column: u32,
    /// See `column`.
    pub seq: u32,
}

/// A plex as an object: its properties, its LUN and its extents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlexInfo {
    /// The LUN it belongs to.
    pub lun: Uuid,
    /// Its properties.
    pub plex: vds_model::LunPlex,
    /// Its extents (empty for a LUN that is one file or device).
    pub extents: Vec<vds_model::Extent>,
}

/// What a successful command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The provider's properties.
    Provider(ProviderInfo),
    /// Subsystems.
    Subsystems(Vec<Subsystem>),
    /// One subsystem.
    Subsystem(Subsystem),
    /// Controllers.
    Controllers(Vec<Controller>),
    /// One controller.
    Controller(Controller),
    /// Drives.
    Drives(Vec<Drive>),
    /// One drive.
    Drive(Drive),
    /// A drive's ranges (`QueryExtents`).
    DriveExtents(Vec<DriveRange>),
    /// The ranges of a pool's drives, each with its drive (`QueryDriveExtents`).
    PoolDriveExtents(Vec<(Uuid, DriveRange)>),
    /// Plexes with their LUN and extents.
    Plexes(Vec<PlexInfo>),
    /// One plex with its LUN and extents.
    Plex(Box<PlexInfo>),
    /// Storage pools.
    Pools(Vec<vds_model::StoragePool>),
    /// One storage pool.
    Pool(Box<vds_model::StoragePool>),
    /// A size in bytes (the maxima).
    Size(u64),
    /// LUNs.
    Luns(Vec<Lun>),
    /// One LUN (as it is after the command).
    Lun(Box<Lun>),
    /// A LUN's identification data.
    Identification(Box<vds_model::LunInformation>),
    /// A LUN's hints.
    Hints(Box<AppliedHints>),
    /// A plex's hints (its LUN's): the `VDS_HINTS` members only.
    PlexHints(Box<AppliedHints>),
    /// Targets.
    Targets(Vec<Target>),
    /// One target.
    Target(Target),
    /// Portal groups.
    PortalGroups(Vec<PortalGroup>),
    /// One portal group.
    PortalGroup(PortalGroup),
    /// Portals.
    Portals(Vec<Portal>),
    /// One portal.
    Portal(Portal),
    /// Jobs.
    Jobs(Vec<Job>),
    /// A job: just started (async commands), or as queried / waited for / canceled.
    Job(Job),
    /// Connected initiator names.
    Initiators(Vec<String>),
    /// Live sessions, by TSIH.
    Sessions(Vec<vds_dataplane::SessionSnapshot>),
    /// The paths of a LUN.
    Paths(Vec<vds_model::PathInfo>),
    /// `VDS_INTERCONNECT_FLAG` bits of a subsystem.
    Interconnects(u32),
    /// A LUN's load-balance policy and the supported set (`VDS_PROVIDER_LBSUPPORT_FLAG` bits).
    LoadBalance {
        policy: LoadBalancePolicy,
        supported: u32,
    },
    /// `VDS_VERSION_SUPPORT_FLAG` bits of the provider.
    VersionSupport(u32),
    /// A synchronous delete finished.
    Deleted {
        /// What was deleted.
        kind: ObjectKind,
        /// Its id (now answering `VDS_E_OBJECT_DELETED`).
        id: Uuid,
    },
    /// Nothing new was created (`VDS_S_ALREADY_EXISTS`); the existing object is inside.
    AlreadyExists(Box<Outcome>),
    /// The configuration document (`ExportConfig`).
    Config(Box<ConfigDoc>),
    /// What an `ApplyConfig` would do, one sentence per step (empty: nothing).
    ConfigPlan(Vec<String>),
}

impl Outcome {
    /// The success HRESULT of the call: `S_OK` or `VDS_S_ALREADY_EXISTS`.
    pub fn hresult(&self) -> Hresult {
        match self {
            Outcome::AlreadyExists(_) => Hresult::VDS_S_ALREADY_EXISTS,
            _ => Hresult::S_OK,
        }
    }
}

/// A failed command: the HRESULT and a sentence that names the offending field or object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VdsError {
    /// The code (always a failure code).
    pub hresult: Hresult,
    /// For a person; names the field or object.
    pub message: String,
}

impl VdsError {
    /// An error with this code and message.
    pub fn new(hresult: Hresult, message: impl Into<String>) -> VdsError {
        VdsError {
            hresult,
            message: message.into(),
        }
    }

    /// `E_INVALIDARG` naming `field`.
    pub fn invalid_arg(field: &str, why: impl fmt::Display) -> VdsError {
        VdsError::new(Hresult::E_INVALIDARG, format!("{field}: {why}"))
    }

    /// `VDS_E_NOT_SUPPORTED`.
    pub fn not_supported(message: impl Into<String>) -> VdsError {
        VdsError::new(Hresult::VDS_E_NOT_SUPPORTED, message)
    }

    /// An OS error converted with `HRESULT_FROM_WIN32`, with context.
    pub fn io(context: impl fmt::Display, err: &std::io::Error) -> VdsError {
        VdsError::new(Hresult::from_io_error(err), format!("{context}: {err}"))
    }
}

impl fmt::Display for VdsError {
    /// `NAME (0xHHHHHHHH): message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.hresult, self.message)
    }
}

impl std::error::Error for VdsError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_debug_hides_its_secret() {
        let c = Command::SetSharedSecret {
            id: Uuid::nil(),
            secret: Some(b"hunter2-secret!".to_vec().into()),
            initiator_name: None,
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            !shown.contains("104, 117"),
            "bytes of the secret in {shown}"
        );
        assert!(shown.contains("15 bytes"), "{shown}");
    }
}

/// Which of the three `IVdsMaintenance` methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaintenanceAction {
    /// `StartMaintenance`: run until stopped.
    Start,
    /// `StopMaintenance`: stop at once.
    Stop,
    /// `PulseMaintenance(count)`: run `count` times, then stop.
    Pulse(u32),
}
