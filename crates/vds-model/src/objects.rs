//! The hardware-provider objects (INTERFACE.md "Resources"): provider, subsystem, controller,
//! drive, storage pool, LUN with its plexes, target, portal group, portal, the asynchronous job, and a LUN's
//! paths (derived from the live sessions, never stored). Plain values: the provider owns and
//! mutates them, the API serialises them.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use uuid::Uuid;

use crate::enums::*;
use crate::hresult::Hresult;

/// The kinds of object the provider manages (and that events name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    /// The provider itself.
    Provider,
    /// A subsystem (the array).
    Subsystem,
    /// A controller of a subsystem.
    Controller,
    /// A drive of a subsystem.
    Drive,
    /// A LUN.
    Lun,
    /// An iSCSI target.
    Target,
    /// A portal group of a target.
    PortalGroup,
    /// An iSCSI portal.
    Portal,
    /// An asynchronous job.
    Job,
    /// A storage pool of a subsystem (BEHAVIOUR.md §15).
    Pool,
}

impl ObjectKind {
    /// Every kind.
    pub const ALL: &'static [ObjectKind] = &[
        ObjectKind::Provider,
        ObjectKind::Subsystem,
        ObjectKind::Controller,
        ObjectKind::Drive,
        ObjectKind::Lun,
        ObjectKind::Target,
        ObjectKind::PortalGroup,
        ObjectKind::Portal,
        ObjectKind::Job,
        ObjectKind::Pool,
    ];

    /// JSON / event name: `"lun"`, `"portal_group"`, ...
    pub fn short_name(self) -> &'static str {
        match self {
            ObjectKind::Provider => "provider",
            ObjectKind::Subsystem => "subsystem",
            ObjectKind::Controller => "controller",
            ObjectKind::Drive => "drive",
            ObjectKind::Lun => "lun",
            ObjectKind::Target => "target",
            ObjectKind::PortalGroup => "portal_group",
            ObjectKind::Portal => "portal",
            ObjectKind::Job => "job",
            ObjectKind::Pool => "pool",
        }
    }

    /// The label used in messages: `"LUN"`, `"portal group"`, ...
    pub fn label(self) -> &'static str {
        match self {
            ObjectKind::Provider => "provider",
            ObjectKind::Subsystem => "subsystem",
            ObjectKind::Controller => "controller",
            ObjectKind::Drive => "drive",
            ObjectKind::Lun => "LUN",
            ObjectKind::Target => "target",
            ObjectKind::PortalGroup => "portal group",
            ObjectKind::Portal => "portal",
            ObjectKind::Job => "job",
            ObjectKind::Pool => "storage pool",
        }
    }

    /// Parses a short name.
    pub fn parse(s: &str) -> Option<ObjectKind> {
        ObjectKind::ALL
            .iter()
            .copied()
            .find(|k| k.short_name() == s)
    }

    /// The VDS object type.
    pub fn object_type(self) -> ObjectType {
        match self {
            ObjectKind::Provider => ObjectType::Provider,
            ObjectKind::Subsystem => ObjectType::SubSystem,
            ObjectKind::Controller => ObjectType::Controller,
            ObjectKind::Drive => ObjectType::Drive,
            ObjectKind::Lun => ObjectType::Lun,
            ObjectKind::Target => ObjectType::Target,
            ObjectKind::PortalGroup => ObjectType::PortalGroup,
            ObjectKind::Portal => ObjectType::Portal,
            ObjectKind::Job => ObjectType::Async,
            ObjectKind::Pool => ObjectType::StoragePool,
        }
    }

    /// The VDS notification target type, for kinds that raise notifications.
    pub fn notification_type(self) -> Option<NotificationTargetType> {
        Some(match self {
            ObjectKind::Subsystem => NotificationTargetType::SubSystem,
            ObjectKind::Controller => NotificationTargetType::Controller,
            ObjectKind::Drive => NotificationTargetType::Drive,
            ObjectKind::Lun => NotificationTargetType::Lun,
            ObjectKind::Target => NotificationTargetType::Target,
            ObjectKind::PortalGroup => NotificationTargetType::PortalGroup,
            ObjectKind::Portal => NotificationTargetType::Portal,
            // VDS has no notification type for storage pools.
            ObjectKind::Provider | ObjectKind::Job | ObjectKind::Pool => return None,
        })
    }

    /// The VDS event code for `event` on this kind (BEHAVIOUR.md §9).
    pub fn event_code(self, event: EventKind) -> Option<NotificationEvent> {
        use EventKind::*;
        use NotificationEvent as N;
        Some(match (self, event) {
            (ObjectKind::Subsystem, Arrive) => N::SubSystemArrive,
            (ObjectKind::Subsystem, Depart) => N::SubSystemDepart,
            (ObjectKind::Subsystem, Modify) => N::SubSystemModify,
            (ObjectKind::Controller, Arrive) => N::ControllerArrive,
            (ObjectKind::Controller, Depart) => N::ControllerDepart,
            (ObjectKind::Controller, Modify) => N::ControllerModify,
            (ObjectKind::Controller, Removed) => N::ControllerRemoved,
            (ObjectKind::Drive, Arrive) => N::DriveArrive,
            (ObjectKind::Drive, Depart) => N::DriveDepart,
            (ObjectKind::Drive, Modify) => N::DriveModify,
            (ObjectKind::Drive, Removed) => N::DriveRemoved,
            (ObjectKind::Lun, Arrive) => N::LunArrive,
            (ObjectKind::Lun, Depart) => N::LunDepart,
            (ObjectKind::Lun, Modify) => N::LunModify,
            (ObjectKind::Portal, Arrive) => N::PortalArrive,
            (ObjectKind::Portal, Depart) => N::PortalDepart,
            (ObjectKind::Portal, Modify) => N::PortalModify,
            (ObjectKind::Target, Arrive) => N::TargetArrive,
            (ObjectKind::Target, Depart) => N::TargetDepart,
            (ObjectKind::Target, Modify) => N::TargetModify,
            (ObjectKind::PortalGroup, Arrive) => N::PortalGroupArrive,
            (ObjectKind::PortalGroup, Depart) => N::PortalGroupDepart,
            (ObjectKind::PortalGroup, Modify) => N::PortalGroupModify,
            _ => return None,
        })
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_name())
    }
}

/// What happened to an object (the part of a `VDS_NF_*` name after the object).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// Created / appeared.
    Arrive,
    /// Deleted / vanished.
    Depart,
    /// A property changed.
    Modify,
    /// Present but out of use (controllers, drives).
    Removed,
}

impl EventKind {
    /// `"arrive"`, `"depart"`, `"modify"`, `"removed"`.
    pub fn short_name(self) -> &'static str {
        match self {
            EventKind::Arrive => "arrive",
            EventKind::Depart => "depart",
            EventKind::Modify => "modify",
            EventKind::Removed => "removed",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_name())
    }
}

/// Whether the provider's cache matches the array (BEHAVIOUR.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheState {
    /// The cache matches.
    Valid,
    /// Something changed behind the provider's back; Reenumerate then Refresh.
    Corrupt,
}

impl CacheState {
    /// `"valid"` / `"corrupt"`.
    pub fn short_name(self) -> &'static str {
        match self {
            CacheState::Valid => "valid",
            CacheState::Corrupt => "corrupt",
        }
    }
}

/// `VDS_PROVIDER_PROP` plus the cache state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderInfo {
    /// Persistent provider id.
    pub id: Uuid,
    /// Provider name.
    pub name: String,
    /// Version string.
    pub version: String,
    /// Always [`HwProviderType::Iscsi`].
    pub provider_type: HwProviderType,
    /// `VDS_PROVIDER_FLAG` bits.
    pub flags: u32,
    /// Cache state.
    pub cache: CacheState,
}

/// `VDS_SUB_SYSTEM_PROP2` (the fields that apply to vds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subsystem {
    /// Object id.
    pub id: Uuid,
    /// Friendly name.
    pub friendly_name: String,
    /// Identification string.
    pub identification: String,
    /// `VDS_SUB_SYSTEM_FLAG` bits.
    pub flags: u32,
    /// Status.
    pub status: SubsystemStatus,
    /// Health.
    pub health: Health,
    /// `VDS_SUB_SYSTEM_SUPPORTED_RAID_TYPE_FLAG` bits.
    pub supported_raid_types: u32,
    /// 0 (lowest) to 15 (highest).
    pub rebuild_priority: i16,
    /// Whether `IVdsIscsiPortal::SetStatus` is implemented (BEHAVIOUR.md §4).
    pub portal_status_settable: bool,
}

/// `VDS_CONTROLLER_PROP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Controller {
    /// Object id.
    pub id: Uuid,
    /// Owning subsystem.
    pub subsystem: Uuid,
    /// Friendly name.
    pub friendly_name: String,
    /// Identification string.
    pub identification: String,
    /// Status.
    pub status: ControllerStatus,
    /// Health.
    pub health: Health,
    /// Number of ports: its portals (BEHAVIOUR.md §14).
    pub number_of_ports: i16,
    /// Its ALUA target port group id (1, 2, ...; never reused while the controller exists).
    pub port_group: u16,
}

/// `VDS_DRIVE_PROP` plus the filesystem path it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drive {
    /// Object id.
    pub id: Uuid,
    /// Owning subsystem.
    pub subsystem: Uuid,
    /// Friendly name.
    pub friendly_name: String,
    /// Identification string.
    pub identification: String,
    /// Capacity of the filesystem in bytes.
    pub size_bytes: u64,
    /// `VDS_DRIVE_FLAG` bits.
    pub flags: u32,
    /// Status.
    pub status: DriveStatus,
    /// Health.
    pub health: Health,
    /// Internal bus number.
    pub bus_number: i16,
    /// Slot number.
    pub slot_number: i16,
    /// The directory (`dir`) or the block device or file (`block`) this drive is.
    pub path: String,
    /// What the path is.
    pub kind: DriveKind,
}

/// `VDS_STORAGE_POOL_PROP` with the pool's drives, default LUN type and attributes
/// (BEHAVIOUR.md §15). The figures are derived from the drives and their extents whenever the
/// pool is read; nothing of them is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoragePool {
    /// Object id (a primordial pool's is derived from its subsystem's, so it never changes).
    pub id: Uuid,
    /// Owning subsystem.
    pub subsystem: Uuid,
    /// `pwszName`.
    pub name: String,
    /// `pwszDescription`.
    pub description: String,
    /// Primordial (every added drive that is not a hot spare) or concrete (named).
    pub pool_type: StoragePoolType,
    /// Status: ONLINE, or OFFLINE when none of its drives is ONLINE.
    pub status: StoragePoolStatus,
    /// Health: healthy, degraded when some drive is not ONLINE, failed when none is.
    pub health: Health,
    /// The drives, in the order given (primordial: bus/slot order).
    pub drives: Vec<Uuid>,
    /// The LUN type a create in the pool gets when it names none.
    pub default_type: LunType,
    /// `VDS_POOL_ATTRIBUTES` as given at creation.
    pub attributes: PoolAttributes,
    /// `ullTotalManagedSpace`: the sum of the drives' capacities.
    pub total_managed: u64,
    /// `ullTotalConsumedSpace`: the sum of the extents on the drives (a thin LUN's extent
    /// file on a `dir` drive counts its allocated blocks).
    pub consumed: u64,
    /// `ullRemainingFreeSpace`: what new extents can still take (capacity less the extents
    /// placed, whatever their allocation).
    pub remaining: u64,
    /// `VDS_POOL_ATTRIBUTES.ullProvisionedSpace`: the sizes of the extents on the drives.
    pub provisioned: u64,
    /// Provisioned space exceeds the total managed space (a drive shrank under its extents).
    pub overcommitted: bool,
}

/// The `VDS_POOL_ATTRIBUTES` members a pool's creator may give; `mask` answers the
/// `VDS_POOL_ATTRIB_*` bits of those given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolAttributes {
    /// `raidType` (`VDS_POOL_ATTRIB_RAIDTYPE`).
    pub raid_type: Option<RaidType>,
    /// `bIsThinProvisioned` (`VDS_POOL_ATTRIB_THIN_PROVISION`).
    pub thin_provisioned: Option<bool>,
    /// `bNoSinglePointOfFailure` (`VDS_POOL_ATTRIB_NO_SINGLE_POF`).
    pub no_single_point_of_failure: Option<bool>,
    /// `ulStripeSize` (`VDS_POOL_ATTRIB_STRIPE_SIZE`).
    pub stripe_size: Option<u32>,
    /// `ulNumberOfColumns` (`VDS_POOL_ATTRIB_NUM_CLMNS`).
    pub number_of_columns: Option<u32>,
    /// `pwszIntendedUsage`.
    pub intended_usage: Option<String>,
}

impl PoolAttributes {
    /// `ullAttributeMask`: the `VDS_POOL_ATTRIB_*` bits of the members given.
    pub fn mask(&self) -> u64 {
        [
            (self.raid_type.is_some(), 0x1),
            (self.thin_provisioned.is_some(), 0x8),
            (self.no_single_point_of_failure.is_some(), 0x10),
            (self.stripe_size.is_some(), 0x800),
            (self.number_of_columns.is_some(), 0x8000),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .fold(0, |m, (_, b)| m | b)
    }
}

/// What a drive is (BEHAVIOUR.md §15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DriveKind {
    /// A directory on a filesystem: extents are sparse files, the label is a file in it.
    Dir,
    /// A block device, or a regular file standing in for one: extents are LBA ranges after
    /// the label area (its first MiB).
    Block,
}

impl DriveKind {
    /// Every kind.
    pub const ALL: &'static [DriveKind] = &[DriveKind::Dir, DriveKind::Block];

    /// `"dir"`, `"block"`.
    pub fn short_name(self) -> &'static str {
        match self {
            DriveKind::Dir => "dir",
            DriveKind::Block => "block",
        }
    }

    /// Parses a short name.
    pub fn parse(s: &str) -> Option<DriveKind> {
        DriveKind::ALL.iter().copied().find(|k| k.short_name() == s)
    }
}

/// Where a LUN's blocks live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackingKind {
    /// A (sparse) file.
    File,
    /// A block device.
    Block,
    /// Memory (lost at exit).
    Memory,
    /// Discards writes, reads zeroes.
    Null,
    /// Extents vds allocated on drives (a simple, span, stripe, mirror or RAID-10 LUN made
    /// with `drives`, BEHAVIOUR.md §15): made by the provider only, never named by a caller.
    Extents,
}

impl BackingKind {
    /// Every kind.
    pub const ALL: &'static [BackingKind] = &[
        BackingKind::File,
        BackingKind::Block,
        BackingKind::Memory,
        BackingKind::Null,
        BackingKind::Extents,
    ];

    /// `"file"`, `"block"`, `"memory"`, `"null"`, `"extents"`.
    pub fn short_name(self) -> &'static str {
        match self {
            BackingKind::File => "file",
            BackingKind::Block => "block",
            BackingKind::Memory => "memory",
            BackingKind::Null => "null",
            BackingKind::Extents => "extents",
        }
    }

    /// Parses a short name.
    pub fn parse(s: &str) -> Option<BackingKind> {
        BackingKind::ALL
            .iter()
            .copied()
            .find(|k| k.short_name() == s)
    }
}

/// A LUN's backing store as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backing {
    /// Kind.
    pub kind: BackingKind,
    /// File or device path (file and block only).
    pub path: Option<String>,
}

/// Operations a fault filter can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultOpKind {
    /// Reads.
    Read,
    /// Writes.
    Write,
    /// Flushes.
    Flush,
}

impl FaultOpKind {
    /// `"read"`, `"write"`, `"flush"`.
    pub fn short_name(self) -> &'static str {
        match self {
            FaultOpKind::Read => "read",
            FaultOpKind::Write => "write",
            FaultOpKind::Flush => "flush",
        }
    }

    /// Parses a short name.
    pub fn parse(s: &str) -> Option<FaultOpKind> {
        [FaultOpKind::Read, FaultOpKind::Write, FaultOpKind::Flush]
            .into_iter()
            .find(|k| k.short_name() == s)
    }
}

/// A fault filter on a LUN's backing store (INTERFACE.md `F`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultFilterSpec {
    /// Adds latency to each operation of that kind.
    Delay {
        /// Milliseconds added to each read.
        read_ms: u64,
        /// Milliseconds added to each write.
        write_ms: u64,
        /// Milliseconds added to each flush.
        flush_ms: u64,
    },
    /// Makes the listed operations fail with EIO once `after` of them have succeeded.
    Error {
        /// Which operations fail.
        ops: Vec<FaultOpKind>,
        /// How many succeed first.
        after: u64,
    },
}

/// `VDS_LUN_PLEX_PROP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LunPlex {
    /// Plex id.
    pub id: Uuid,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Plex type.
    pub plex_type: LunPlexType,
    /// Status.
    pub status: LunPlexStatus,
    /// Health.
    pub health: Health,
    /// Transition state.
    pub transition_state: TransitionState,
    /// `VDS_LUN_PLEX_FLAG` bits.
    pub flags: u32,
    /// Stripe size (0: not striped).
    pub stripe_size: u32,
    /// Rebuild priority.
    pub rebuild_priority: i16,
}

/// One extent of a composite LUN (`VDS_DRIVE_EXTENT`): `size` bytes of `drive` at `offset`
/// (a `block` drive: its byte offset; a `dir` drive: 0 in the extent's own file), holding
/// part `seq` of column `column` of plex `plex`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// The plex (an id of `Lun::plexes`).
    pub plex: Uuid,
    /// The column in the plex (stripe order).
    pub column: u32,
    /// The position in the column (concatenation order).
    pub seq: u32,
    /// The drive that holds it.
    pub drive: Uuid,
    /// Where it starts on the drive.
    pub offset: u64,
    /// Its length in bytes.
    pub size: u64,
}

/// `VDS_LUN_PROP` plus associations and backing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lun {
    /// Object id.
    pub id: Uuid,
    /// Owning subsystem.
    pub subsystem: Uuid,
    /// Drive that holds it.
    pub drive: Uuid,
    /// Friendly name.
    pub friendly_name: String,
    /// Identification string (NAA-style designator from the id).
    pub identification: String,
    /// Capacity in bytes.
    pub size_bytes: u64,
    /// Canonical unmasking list (`"*"`, `""`, or `;`-separated names).
    pub unmasking_list: String,
    /// `VDS_LUN_FLAG` bits.
    pub flags: u32,
    /// LUN type.
    pub lun_type: LunType,
    /// Status.
    pub status: LunStatus,
    /// Health.
    pub health: Health,
    /// Transition state.
    pub transition_state: TransitionState,
    /// Rebuild priority.
    pub rebuild_priority: i16,
    /// Thin provisioned (sparse; UNMAP deallocates).
    pub thin: bool,
    /// Read-only (a vds extension of `VDS_LUN_PROP`): hosts see the LUN write-protected (MODE
    /// SENSE WP) and every write-type command fails with DATA PROTECT / WRITE PROTECTED.
    pub read_only: bool,
    /// Associated targets.
    pub targets: Vec<Uuid>,
    /// LUN number in each associated target.
    pub lun_numbers: Vec<(Uuid, u64)>,
    /// Plexes (at least one).
    pub plexes: Vec<LunPlex>,
    /// Backing store.
    pub backing: Backing,
    /// Fault filters on the backing store.
    pub filters: Vec<FaultFilterSpec>,
    /// Logical block size in bytes.
    pub block_size: u32,
    /// The controllers for which the LUN is active (`IVdsLun::AssociateControllers`), by id.
    pub active_controllers: Vec<Uuid>,
    /// The LUN's load-balance policy (`IVdsLunMpio`, BEHAVIOUR.md §14).
    pub load_balance: LoadBalancePolicy,
    /// The extents of a LUN whose backing is [`BackingKind::Extents`] (else empty).
    pub extents: Vec<Extent>,
}

/// `VDS_ISCSI_TARGET_PROP` plus associations. Secrets are never part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Object id.
    pub id: Uuid,
    /// Owning subsystem.
    pub subsystem: Uuid,
    /// Target IQN.
    pub iscsi_name: String,
    /// iSCSI alias.
    pub friendly_name: String,
    /// Whether a target secret is set (CHAP required).
    pub chap_enabled: bool,
    /// Portal groups.
    pub portal_groups: Vec<Uuid>,
    /// Associated LUNs.
    pub luns: Vec<Uuid>,
}

/// `VDS_ISCSI_PORTALGROUP_PROP` plus associations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalGroup {
    /// Object id.
    pub id: Uuid,
    /// Owning target.
    pub target: Uuid,
    /// Target portal group tag.
    pub tag: u16,
    /// Member portals.
    pub portals: Vec<Uuid>,
}

/// `VDS_ISCSI_PORTAL_PROP` plus associations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Portal {
    /// Object id.
    pub id: Uuid,
    /// Owning subsystem.
    pub subsystem: Uuid,
    /// Listen address.
    pub address: IpAddr,
    /// TCP port.
    pub port: u16,
    /// Status.
    pub status: PortalStatus,
    /// What SendTargets reports instead of the bind address (BEHAVIOUR.md §4).
    pub advertise: Option<crate::AdvertisedAddress>,
    /// The controller whose port it is (BEHAVIOUR.md §14).
    pub controller: Uuid,
    /// Portal groups that hold it.
    pub portal_groups: Vec<Uuid>,
}

impl Portal {
    /// `ipv4` / `ipv6`.
    pub fn address_type(&self) -> IpAddressType {
        match self.address {
            IpAddr::V4(_) => IpAddressType::Ipv4,
            IpAddr::V6(_) => IpAddressType::Ipv6,
        }
    }

    /// `ADDR:PORT` (IPv6 in brackets).
    pub fn socket_addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.address, self.port)
    }
}

/// Job lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Still running (`VDS_E_OPERATION_PENDING`).
    Running,
    /// Ended with a success HRESULT.
    Succeeded,
    /// Ended with a failure HRESULT.
    Failed,
    /// Ended by a cancel (`VDS_E_OPERATION_CANCELED`).
    Canceled,
}

impl JobState {
    /// `"running"`, `"succeeded"`, `"failed"`, `"canceled"`.
    pub fn short_name(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Canceled => "canceled",
        }
    }
}

/// What a finished job produced (`VDS_ASYNC_OUTPUT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutput {
    /// CREATELUN, EXTENDLUN, SHRINKLUN, RECOVERLUN: the LUN as it is now.
    Lun(Box<Lun>),
    /// CREATETARGET: the target.
    Target(Target),
    /// CREATEPORTALGROUP, ADDPORTAL, REMOVEPORTAL: the portal group as it is now.
    PortalGroup(PortalGroup),
    /// DELETETARGET, DELETEPORTALGROUP: the id of what is gone.
    Deleted(Uuid),
}

/// An asynchronous operation (`IVdsAsync`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Job id.
    pub id: Uuid,
    /// Which operation.
    pub operation: AsyncOutputType,
    /// The object the operation acts on (for creations: the parent).
    pub object: Uuid,
    /// Lifecycle state.
    pub state: JobState,
    /// 0-99 while running (0 if unknown), 100 at the end.
    pub percent: u32,
    /// `VDS_E_OPERATION_PENDING` while running, then the final result.
    pub hresult: Hresult,
    /// A sentence for a person when the job failed.
    pub message: Option<String>,
    /// The output, on success.
    pub output: Option<JobOutput>,
}

/// One path to a LUN (`VDS_PATH_INFO`, IVdsLunMpio::GetPathInfo): a logged-in I_T nexus
/// through which the LUN can be reached (BEHAVIOUR.md §14 "Paths"). Derived from the data
/// path's live sessions on every call, never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathInfo {
    /// `VDS_PATH_ID.ullSourceId`: the first 8 bytes of the target's id.
    pub source_id: u64,
    /// `VDS_PATH_ID.ullPathId`: the session's TSIH in the top 16 bits, its ISID below; stable
    /// while the session lives, unique among live sessions.
    pub path_id: u64,
    /// The target the session is logged in to.
    pub target: Uuid,
    /// The portal of the session's leading connection (`targetPortalId`).
    pub portal: Uuid,
    /// The controller that portal belongs to; `None` when the portal is gone.
    pub controller: Option<Uuid>,
    /// The initiator's iSCSI name.
    pub initiator: String,
    /// The initiator's end of the leading connection (`pInitiatorPortalIpAddr`).
    pub initiator_address: SocketAddr,
    /// The session's ISID and TSIH (what `GET /v1/sessions` shows for it).
    pub isid: [u8; 6],
    pub tsih: u16,
    /// `failed` (portal or controller not ONLINE), `standby` (ALUA Standby or Unavailable
    /// through the session's target port group), else `online`.
    pub status: PathStatus,
}

/// The hints of a LUN that vds applies (`VDS_HINTS2`, BEHAVIOUR.md §14 rule 8), as stored.
/// The other `VDS_HINTS2` members are never applied (see [`HINTS_NOT_APPLIED`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LunHints {
    /// The write-back cache: the WCE bit of the caching mode page (`VDS_LF_WRITE_CACHE_ENABLED`).
    pub write_caching_enabled: bool,
    /// Every write is durable before GOOD, as with FUA (`VDS_LF_WRITE_THROUGH_CACHING_ENABLED`).
    pub write_through_caching_enabled: bool,
    /// Every write is read back and compared (`VDS_LF_READ_BACK_VERIFY_ENABLED`).
    pub read_back_verify_enabled: bool,
    /// Optimal read size in bytes (0: none given); reported in VPD B0.
    pub optimal_read_size: u32,
    /// Optimal read alignment in bytes (0: none given).
    pub optimal_read_alignment: u32,
    /// Optimal write size in bytes (0: none given).
    pub optimal_write_size: u32,
    /// Optimal write alignment in bytes (0: none given).
    pub optimal_write_alignment: u32,
    /// Resynchronisation priority, 0 (lowest) to 15 (the LUN's `rebuild_priority`).
    pub rebuild_priority: i16,
    /// Mirrors keep a write-intent bitmap (used by fault-tolerant LUNs).
    pub fast_crash_recovery_required: bool,
}

impl Default for LunHints {
    /// What a LUN has unless asked otherwise: write-back cache on, nothing else.
    fn default() -> Self {
        LunHints {
            write_caching_enabled: true,
            write_through_caching_enabled: false,
            read_back_verify_enabled: false,
            optimal_read_size: 0,
            optimal_read_alignment: 0,
            optimal_write_size: 0,
            optimal_write_alignment: 0,
            rebuild_priority: 0,
            fast_crash_recovery_required: false,
        }
    }
}

impl LunHints {
    /// The `VDS_LUN_FLAG` bits these hints set (the read cache is always on).
    pub fn lun_flags(&self) -> u32 {
        let mut f = vec![crate::LunFlag::ReadCacheEnabled];
        if self.write_caching_enabled {
            f.push(crate::LunFlag::WriteCacheEnabled);
        }
        if self.write_through_caching_enabled {
            f.push(crate::LunFlag::WriteThroughCachingEnabled);
        }
        if self.read_back_verify_enabled {
            f.push(crate::LunFlag::ReadBackVerifyEnabled);
        }
        crate::LunFlag::bits(&f)
    }
}

/// `VDS_HINT_*` bits of `ullHintMask`.
pub mod hint_mask {
    pub const FAST_CRASH_RECOVERY_REQUIRED: u64 = 0x0001;
    pub const MOSTLY_READS: u64 = 0x0002;
    pub const OPTIMIZE_FOR_SEQUENTIAL_READS: u64 = 0x0004;
    pub const OPTIMIZE_FOR_SEQUENTIAL_WRITES: u64 = 0x0008;
    pub const READ_BACK_VERIFY_ENABLED: u64 = 0x0010;
    pub const REMAP_ENABLED: u64 = 0x0020;
    pub const WRITE_THROUGH_CACHING_ENABLED: u64 = 0x0040;
    pub const HARDWARE_CHECKSUM_ENABLED: u64 = 0x0080;
    pub const IS_YANKABLE: u64 = 0x0100;
    pub const ALLOCATE_HOT_SPARE: u64 = 0x0200;
    pub const BUS_TYPE: u64 = 0x0400;
    pub const USE_MIRRORED_CACHE: u64 = 0x0800;
    pub const READ_CACHING_ENABLED: u64 = 0x1000;
    pub const WRITE_CACHING_ENABLED: u64 = 0x2000;
    pub const MEDIA_SCAN_ENABLED: u64 = 0x4000;
    pub const CONSISTENCY_CHECK_ENABLED: u64 = 0x8000;
    /// The bits of the hints vds applies.
    pub const APPLIED: u64 = FAST_CRASH_RECOVERY_REQUIRED
        | READ_BACK_VERIFY_ENABLED
        | WRITE_THROUGH_CACHING_ENABLED
        | WRITE_CACHING_ENABLED;
}

/// The `VDS_HINTS2` members vds does not apply, by their snake_case name, with the value vds
/// always has for them (a request for that value is met as it stands) and why it cannot
/// honour another (BEHAVIOUR.md §14).
pub const HINTS_NOT_APPLIED: &[(&str, &str, &str)] = &[
    (
        "expected_maximum_size",
        "0",
        "a LUN grows only by Extend; nothing is reserved ahead",
    ),
    (
        "maximum_drive_count",
        "0",
        "every LUN is a simple LUN on one drive",
    ),
    (
        "stripe_size",
        "0",
        "every LUN is a simple LUN; nothing is striped",
    ),
    (
        "mostly_reads",
        "false",
        "no per-LUN layout or cache policy exists to tune",
    ),
    (
        "optimize_for_sequential_reads",
        "false",
        "read-ahead is the host page cache's, not per LUN",
    ),
    (
        "optimize_for_sequential_writes",
        "false",
        "no per-LUN layout or cache policy exists to tune",
    ),
    (
        "remap_enabled",
        "false",
        "no spare blocks: the backing file or device remaps, if anything",
    ),
    (
        "hardware_checksum_enabled",
        "false",
        "no checksums are kept on the data",
    ),
    (
        "is_yankable",
        "false",
        "a LUN is a file or device of the host, not a removable disk",
    ),
    ("allocate_hot_spare", "false", "no spare drives exist"),
    (
        "use_mirrored_cache",
        "false",
        "there is one cache, the host's page cache",
    ),
    (
        "read_caching_enabled",
        "true",
        "reads always go through the host's page cache",
    ),
    (
        "media_scan_enabled",
        "false",
        "no background scan of the medium exists",
    ),
    (
        "consistency_check_enabled",
        "false",
        "simple LUNs have no redundancy to check",
    ),
    ("bus_type", "iscsi", "the data path speaks iSCSI only"),
];

/// One designator of a LUN (`VDS_STORAGE_IDENTIFIER`), as VPD page 83 carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageIdentifier {
    /// Code set.
    pub code_set: crate::StorageIdentifierCodeSet,
    /// Designator type.
    pub id_type: crate::StorageIdentifierType,
    /// ASSOCIATION of SPC-4: 0 the logical unit, 1 the target port, 2 the target device.
    pub association: u8,
    /// The designator bytes.
    pub bytes: Vec<u8>,
}

/// What a LUN's own first sectors say it is (the disk signature of `VDS_LUN_INFORMATION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskSignature {
    /// Neither an MBR nor a GPT header: zero.
    None,
    /// The MBR disk signature (bytes 440..444, little-endian).
    Mbr(u32),
    /// The GPT disk GUID of the header at LBA 1.
    Gpt(Uuid),
}

impl DiskSignature {
    /// As the GUID `m_diskSignature` holds: the MBR signature in the first 4 bytes (Data1),
    /// the GPT disk GUID as it is, zero otherwise.
    pub fn guid(&self) -> Uuid {
        match self {
            DiskSignature::None => Uuid::nil(),
            DiskSignature::Mbr(sig) => Uuid::from_fields(*sig, 0, 0, &[0; 8]),
            DiskSignature::Gpt(g) => *g,
        }
    }
}

/// One target port through which a portal serves a LUN, with the designators VPD page 83
/// adds for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterconnectPort {
    /// The target.
    pub target: Uuid,
    /// SCSI target port name, `"<iqn>,t,0x<tag>"`.
    pub name: String,
    /// Relative target port identifier (the portal group tag).
    pub relative_target_port: u16,
    /// The port-associated designators.
    pub identifiers: Vec<StorageIdentifier>,
}

/// One portal that serves a LUN (`VDS_INTERCONNECT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interconnect {
    /// The portal.
    pub portal: Uuid,
    /// `VDS_INTERCONNECT_ADDRESS_TYPE`: none of its members is an IP address, so `unknown`.
    pub address_type: crate::InterconnectAddressType,
    /// `ip:port` of the portal.
    pub address: String,
    /// The target ports behind it (one per portal group of a target that maps the LUN).
    pub ports: Vec<InterconnectPort>,
}

/// `VDS_LUN_INFORMATION` (`IVdsLun::GetIdentificationData`, BEHAVIOUR.md §14 rule 7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LunInformation {
    /// `VER_VDS_LUN_INFORMATION` (1).
    pub version: u32,
    /// SCSI peripheral device type (0: direct access).
    pub device_type: u8,
    /// Device type modifier (0).
    pub device_type_modifier: u8,
    /// Command queueing supported (CMDQUE).
    pub command_queueing: bool,
    /// Bus type (`iscsi`).
    pub bus_type: crate::StorageBusType,
    /// T10 vendor id.
    pub vendor: String,
    /// Product id.
    pub product: String,
    /// Product revision.
    pub revision: String,
    /// Unit serial number (VPD 80).
    pub serial_number: String,
    /// Read from the LUN's first sectors.
    pub disk_signature: DiskSignature,
    /// The logical-unit designators of VPD 83.
    pub identifiers: Vec<StorageIdentifier>,
    /// One per portal serving the LUN.
    pub interconnects: Vec<Interconnect>,
}
