//! The command line grammar (clap derive): `vdsctl [--api URL] [--json] <noun> <verb> [args]`.
//!
//! Every noun and verb of INTERFACE.md. Sizes are parsed here (a bad size is a usage error, exit
//! 2, like every clap error); statuses are passed through unchanged for the provider to judge
//! (subsystem, controller and drive statuses that name no member at all are usage errors).

use clap::{Args, Parser, Subcommand};

use crate::size::parse_size;

#[derive(Debug, Parser)]
#[command(
    name = "vdsctl",
    version,
    about = "Manage a vds iSCSI storage array through its HTTP API",
    after_help = "Objects are named by UUID or unique name: a LUN's friendly name, a target's IQN \
                  or friendly name, a portal's ADDR:PORT. Exit status: 0 success, 1 provider \
                  error, 2 usage error, 3 API unreachable."
)]
pub struct Cli {
    /// Base URL of the vds API.
    #[arg(
        long,
        env = "VDS_API",
        default_value = "http://127.0.0.1:3280",
        global = true
    )]
    pub api: String,
    /// Bearer token of the API (else VDS_TOKEN, else the file api-token in VDS_DATA_DIR or
    /// ./vds-data, which vdsd writes on first start).
    #[arg(long, global = true)]
    pub token: Option<String>,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Do not wait for jobs: print the job as soon as it is started.
    #[arg(long, global = true)]
    pub no_wait: bool,
    #[command(subcommand)]
    pub noun: Noun,
}

#[derive(Debug, Subcommand)]
pub enum Noun {
    /// The provider (this array's management engine).
    Provider {
        #[command(subcommand)]
        verb: ProviderVerb,
    },
    /// Subsystems (arrays).
    Subsystem {
        #[command(subcommand)]
        verb: SubsystemVerb,
    },
    /// LUNs.
    Lun {
        #[command(subcommand)]
        verb: LunVerb,
    },
    /// iSCSI targets.
    Target {
        #[command(subcommand)]
        verb: TargetVerb,
    },
    /// Portal groups of targets.
    PortalGroup {
        #[command(subcommand)]
        verb: PortalGroupVerb,
    },
    /// Portals (listening addresses).
    Portal {
        #[command(subcommand)]
        verb: PortalVerb,
    },
    /// Controllers (each an ALUA target port group).
    Controller {
        #[command(subcommand)]
        verb: ControllerVerb,
    },
    /// Drives: directories or block devices (or files) that hold LUN extents.
    Drive {
        #[command(subcommand)]
        verb: DriveVerb,
    },
    /// Storage pools: the primordial pool of each subsystem and named pools of drives.
    Pool {
        #[command(subcommand)]
        verb: PoolVerb,
    },
    /// Logged-in iSCSI sessions.
    Session {
        #[command(subcommand)]
        verb: SessionVerb,
    },
    /// Plexes of LUNs (`vdsctl lun plexes L` lists them).
    Plex {
        #[command(subcommand)]
        verb: PlexVerb,
    },
    /// Jobs (asynchronous operations).
    Job {
        #[command(subcommand)]
        verb: JobVerb,
    },
    /// Maintenance (IVdsMaintenance) on a subsystem, controller, drive or LUN. vds has no
    /// light, alarm or spindle to drive: the daemon checks the object and the arguments and
    /// answers VDS_E_NOT_SUPPORTED with the reason.
    Maintenance(MaintenanceArgs),
    /// Follow the event stream, one line per event.
    Events,
    /// Print the whole configuration as one JSON document (INTERFACE.md "Configuration
    /// documents").
    Export {
        /// Put the CHAP secrets in the document (otherwise `apply` leaves secrets as they are).
        #[arg(long)]
        include_secrets: bool,
    },
    /// Make the array match a configuration document: objects matched by name are created,
    /// changed and deleted in one job, all or nothing.
    Apply {
        /// The document (`-` for stdin).
        file: std::path::PathBuf,
        /// Print the plan only; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Import another target's configuration (in one transaction, or nothing).
    Import {
        #[command(subcommand)]
        from: ImportFrom,
    },
}

/// `vdsctl import ...`.
#[derive(Debug, Subcommand)]
pub enum ImportFrom {
    /// A targetcli-fb / rtslib-fb `saveconfig.json` (LIO).
    Targetcli {
        /// The saveconfig.json (`-` for stdin).
        file: std::path::PathBuf,
        /// Import what can be mapped even when some of the file cannot.
        #[arg(long)]
        partial: bool,
        /// Print what cannot be mapped and the plan; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `vdsctl maintenance KIND OBJECT OPERATION ACTION [--count N]`.
#[derive(Debug, Args)]
pub struct MaintenanceArgs {
    /// The kind of object.
    #[arg(value_enum)]
    pub kind: MaintenanceKind,
    /// The object (UUID or friendly name).
    pub object: String,
    /// blink_light, beep_alarm, spin_down, spin_up, ping (or a VDS constant or integer).
    pub operation: String,
    /// start, stop or pulse.
    #[arg(value_enum)]
    pub action: MaintenanceActionCli,
    /// Number of pulses (with `pulse` only).
    #[arg(long)]
    pub count: Option<u32>,
}

/// The objects that have IVdsMaintenance.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum MaintenanceKind {
    Subsystem,
    Controller,
    Drive,
    Lun,
}

/// StartMaintenance, StopMaintenance, PulseMaintenance.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum MaintenanceActionCli {
    Start,
    Stop,
    Pulse,
}

#[derive(Debug, Subcommand)]
pub enum ProviderVerb {
    /// Show the provider.
    Show,
    /// Rediscover subsystems, drives and portals.
    Reenumerate,
    /// Re-read the state of every known object.
    Refresh,
    /// The VDS versions whose interfaces the provider implements (GetVersionSupport).
    VersionSupport,
}

/// Subsystem verbs: list/show, SetStatus, rename, SetControllerStatus, interconnects, GetDrive.
#[derive(Debug, Subcommand)]
pub enum SubsystemVerb {
    #[command(flatten)]
    Simple(SimpleVerb),
    /// Set the status: online, offline, a VDS constant or an integer (offline takes every LUN
    /// of the subsystem off the wire).
    SetStatus { subsystem: String, status: String },
    /// Change the friendly name.
    Rename { subsystem: String, name: String },
    /// Set every controller of the subsystem ONLINE or OFFLINE at once (SetControllerStatus):
    /// each controller in exactly one of --online / --offline.
    SetControllerStatus {
        subsystem: String,
        /// A controller to be online (UUID or friendly name; repeatable).
        #[arg(long = "online", value_name = "CONTROLLER")]
        online: Vec<String>,
        /// A controller to be offline (UUID or friendly name; repeatable).
        #[arg(long = "offline", value_name = "CONTROLLER")]
        offline: Vec<String>,
    },
    /// The interconnects the subsystem supports (GetSupportedInterconnects).
    Interconnects { subsystem: String },
    /// ReplaceDrive: every extent on drive OLD moves to drive NEW while the LUNs serve I/O
    /// (a job).
    ReplaceDrive {
        subsystem: String,
        /// The drive emptied (UUID or friendly name).
        #[arg(long)]
        old: String,
        /// The drive that takes its extents (UUID or friendly name).
        #[arg(long)]
        new: String,
    },
    /// The drive at an internal bus and slot (GetDrive).
    Drive {
        subsystem: String,
        /// Internal bus number.
        #[arg(allow_negative_numbers = true)]
        bus: i16,
        /// Slot number.
        #[arg(allow_negative_numbers = true)]
        slot: i16,
    },
    /// The largest LUN a create with these arguments gets now (QueryMaxLunCreateSize).
    MaxLunSize {
        subsystem: String,
        #[command(flatten)]
        args: MaxSizeOpts,
    },
}

/// The arguments of a max-lun-size query.
#[derive(Debug, Args)]
pub struct MaxSizeOpts {
    /// LUN type (default: simple; in a pool, the pool's default type).
    #[arg(long = "type")]
    pub lun_type: Option<String>,
    /// Drives, in order (UUIDs or friendly names, comma-separated or repeated); default:
    /// those a create would choose.
    #[arg(long, value_delimiter = ',')]
    pub drives: Vec<String>,
    /// Plexes of a mirror or raid10 LUN.
    #[arg(long)]
    pub plexes: Option<u32>,
    /// Stripe size, e.g. 64KiB.
    #[arg(long, value_parser = size_arg)]
    pub stripe_size: Option<u64>,
}

/// Storage pool verbs (IVdsHwProviderStoragePools, IVdsStoragePool).
#[derive(Debug, Subcommand)]
pub enum PoolVerb {
    /// List the pools (QueryStoragePools): each subsystem's primordial pool, then its named
    /// ones.
    List(SubsystemOpt),
    /// Show a pool with its figures and attributes.
    Show { pool: String },
    /// Create a named pool of drives (each in no other named pool).
    Create {
        /// Friendly name.
        name: String,
        /// The drives, in order (UUIDs or friendly names, comma-separated or repeated).
        #[arg(long, value_delimiter = ',', required = true)]
        drives: Vec<String>,
        /// Subsystem (needed when there are several).
        #[arg(long)]
        subsystem: Option<String>,
        /// Description.
        #[arg(long)]
        description: Option<String>,
        /// The type a LUN made in the pool gets when it names none (default: default).
        #[arg(long)]
        default_type: Option<String>,
        /// VDS_POOL_ATTRIBUTES raidType (raid0, raid1, raid10, ...).
        #[arg(long)]
        raid_type: Option<String>,
        /// bIsThinProvisioned.
        #[arg(long, value_name = "BOOL")]
        thin_provisioned: Option<bool>,
        /// bNoSinglePointOfFailure.
        #[arg(long, value_name = "BOOL")]
        no_single_point_of_failure: Option<bool>,
        /// ulStripeSize, e.g. 64KiB.
        #[arg(long, value_parser = size_arg)]
        stripe_size: Option<u64>,
        /// ulNumberOfColumns.
        #[arg(long)]
        columns: Option<u32>,
        /// pwszIntendedUsage.
        #[arg(long)]
        intended_usage: Option<String>,
    },
    /// Delete a named pool no LUN uses.
    Delete { pool: String },
    /// The pool's drives.
    Drives { pool: String },
    /// Every used and free range of every drive of the pool (QueryDriveExtents).
    DriveExtents { pool: String },
    /// The LUNs with an extent on the pool's drives (QueryAllocatedLuns).
    Luns { pool: String },
    /// The largest LUN a create in the pool gets now (QueryMaxLunCreateSizeInStoragePool).
    MaxLunSize {
        pool: String,
        #[command(flatten)]
        args: MaxSizeOpts,
    },
}

/// Drive verbs: list/show, SetStatus, add, remove, the hot-spare flag.
#[derive(Debug, Subcommand)]
pub enum DriveVerb {
    #[command(flatten)]
    Simple(SimpleVerb),
    /// Set the status: online, offline, a VDS constant or an integer (offline takes the LUNs
    /// behind it off the wire).
    SetStatus { object: String, status: String },
    /// Add a drive: a directory (`--kind dir`) or a block device or regular file
    /// (`--kind block`), outside the data dir and used by nothing else; vds labels it.
    Add {
        /// Absolute path (symlinks are resolved).
        path: String,
        /// `dir` or `block`.
        #[arg(long)]
        kind: String,
        /// Subsystem (needed when there are several).
        #[arg(long)]
        subsystem: Option<String>,
        /// Friendly name (default "vds drive N", N its slot).
        #[arg(long)]
        name: Option<String>,
        /// Overwrite a foreign label or non-zero first MiB (its data is lost).
        #[arg(long)]
        force: bool,
    },
    /// Remove a drive that holds no LUN; its label is wiped.
    Remove { drive: String },
    /// The drive's used ranges (LUN, plex, column) and free ones (QueryExtents).
    Extents { drive: String },
    /// Replace the fault filters of every extent on the drive (no options: remove them all;
    /// the positional argument is the drive). Needs --enable-fault-injection.
    SetFaults(SetFaults),
    /// Set or clear the hot-spare flag (SetFlags / ClearFlags).
    Flags {
        drive: String,
        /// `true`: the drive is a hot spare; `false`: it is not.
        #[arg(long, action = clap::ArgAction::Set, value_name = "BOOL")]
        hotspare: bool,
    },
}

/// Controller verbs: list/show, SetStatus, add, QueryAssociatedLuns.
#[derive(Debug, Subcommand)]
pub enum ControllerVerb {
    #[command(flatten)]
    Simple(SimpleVerb),
    /// Set the status: online, offline, a VDS constant or an integer (offline makes its ports
    /// Unavailable and fails the LUNs active on it alone over to the surviving controller).
    SetStatus { object: String, status: String },
    /// Add a controller (the next ALUA target port group); it is inactive for every existing
    /// LUN and has no ports until a portal names it (`portal add --controller`).
    Add {
        /// Subsystem (needed when there are several).
        #[arg(long)]
        subsystem: Option<String>,
        /// Friendly name (default "vds controller N").
        #[arg(long)]
        name: Option<String>,
    },
    /// The LUNs for which the controller is active (QueryAssociatedLuns).
    Luns { controller: String },
}

/// `list|show` for the read-only objects (subsystem, controller, drive).
#[derive(Debug, Subcommand)]
pub enum SimpleVerb {
    /// List them.
    List(SubsystemOpt),
    /// Show one (UUID or friendly name).
    Show { object: String },
}

#[derive(Debug, Args)]
pub struct SubsystemOpt {
    /// Only this subsystem (UUID or friendly name); default all.
    #[arg(long)]
    pub subsystem: Option<String>,
}

fn size_arg(s: &str) -> Result<u64, String> {
    parse_size(s)
}

/// Session verbs.
#[derive(Debug, Subcommand)]
pub enum SessionVerb {
    /// List the logged-in sessions (of one target with --target): initiator, ISID, TSIH,
    /// connections with their negotiated keys, and command and byte counters.
    List {
        #[arg(long)]
        target: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PlexVerb {
    /// RemovePlex: free a plex (by UUID) of a LUN of several; never the last nor the last
    /// current one.
    Remove { plex: String },
    /// Show the plex's hints (IVdsLunPlex::QueryHints: its LUN's, VDS_HINTS members), or apply
    /// some with --set NAME=VALUE (repeatable) to its LUN, so to all its plexes at once.
    Hints {
        plex: String,
        /// NAME=VALUE: a VDS_HINTS member in snake_case (as for `lun hints --set`; a
        /// VDS_HINTS2-only member is refused by vdsd).
        #[arg(long = "set", value_parser = hint_arg)]
        set: Vec<(String, serde_json::Value)>,
    },
}

#[derive(Debug, Subcommand)]
// One parsed command line per process: the size of the largest verb costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum LunVerb {
    /// List LUNs.
    List(LunList),
    /// Show a LUN.
    Show { lun: String },
    /// The paths through which the LUN is reached now (IVdsLunMpio::GetPathInfo).
    Paths { lun: String },
    /// The LUN's plexes with their extents (QueryPlexes).
    Plexes { lun: String },
    /// Create a LUN (a job).
    Create(LunCreate),
    /// Delete a LUN.
    Delete { lun: String },
    /// Set the status: online, offline, not_ready, failed, unknown, a VDS constant or an integer.
    SetStatus { lun: String, status: String },
    /// Grow a LUN by SIZE (a job).
    Extend {
        lun: String,
        #[arg(value_parser = size_arg)]
        size: u64,
        /// A span LUN only: the drives the new extents go on, in order (comma-separated or
        /// repeated).
        #[arg(long, value_delimiter = ',')]
        drives: Vec<String>,
    },
    /// The most bytes an extend adds now (QueryMaxLunExtendSize).
    MaxExtendSize {
        lun: String,
        /// A span LUN only: onto these drives.
        #[arg(long, value_delimiter = ',')]
        drives: Vec<String>,
    },
    /// Shrink a LUN by SIZE (a job).
    Shrink {
        lun: String,
        #[arg(value_parser = size_arg)]
        size: u64,
    },
    /// Resynchronise a fault-tolerant LUN (a job).
    Recover { lun: String },
    /// AddPlex: LUN OTHER (extent-backed, one plex, at least as large, on drives of its own,
    /// on no target) becomes a new plex of LUN, regenerated by a job. OTHER's data is gone.
    AddPlex {
        lun: String,
        /// The LUN that becomes the plex (UUID or friendly name).
        #[arg(long = "lun", id = "other")]
        other: String,
    },
    /// Set the unmasking list: "*" everyone, "" nobody, or IQNs separated by ';'.
    SetMask { lun: String, mask: String },
    /// Set the complete set of targets the LUN is exposed through (none: no targets).
    SetTargets { lun: String, targets: Vec<String> },
    /// Change the friendly name.
    Rename { lun: String, name: String },
    /// Make the LUN read-only (true) or writable (false); hosts see the change on their next
    /// command. A vds extension.
    SetReadOnly {
        lun: String,
        #[arg(action = clap::ArgAction::Set, value_parser = clap::value_parser!(bool))]
        read_only: bool,
    },
    /// Replace the fault filters (no options: remove them all). Needs --enable-fault-injection.
    SetFaults(SetFaults),
    /// Identification data (IVdsLun::GetIdentificationData): vendor, product, serial, disk
    /// signature, designators, and one interconnect per portal that serves the LUN.
    Identification { lun: String },
    /// Show the hints (VDS_HINTS2), or apply some with --set NAME=VALUE (repeatable), e.g.
    /// --set write_caching_enabled=false --set optimal_write_size=128KiB.
    Hints {
        lun: String,
        /// NAME=VALUE: a VDS_HINTS2 member in snake_case; booleans true/false, sizes with an
        /// optional unit, rebuild_priority 0-15, bus_type a bus name.
        #[arg(long = "set", value_parser = hint_arg)]
        set: Vec<(String, serde_json::Value)>,
    },
    /// The controllers for which the LUN is active (QueryActiveControllers).
    Controllers { lun: String },
    /// Set the active and inactive controllers (AssociateControllers): every controller of
    /// the subsystem in exactly one list, at least one active.
    AssociateControllers {
        lun: String,
        /// Controllers to be active (UUIDs or friendly names, comma-separated or repeated).
        #[arg(
            long,
            value_name = "CONTROLLER",
            value_delimiter = ',',
            required = true
        )]
        active: Vec<String>,
        /// Controllers to be inactive (comma-separated or repeated).
        #[arg(long, value_name = "CONTROLLER", value_delimiter = ',')]
        inactive: Vec<String>,
    },
    /// Show the load-balance policy and the supported ones, or set it with --set (failover,
    /// round_robin, round_robin_with_subset, a VDS constant or an integer).
    LoadBalance {
        lun: String,
        #[arg(long, value_name = "POLICY")]
        set: Option<String>,
    },
}

/// Boolean members of VDS_HINTS2.
const HINT_BOOLS: [&str; 15] = [
    "write_caching_enabled",
    "write_through_caching_enabled",
    "read_back_verify_enabled",
    "fast_crash_recovery_required",
    "mostly_reads",
    "optimize_for_sequential_reads",
    "optimize_for_sequential_writes",
    "remap_enabled",
    "hardware_checksum_enabled",
    "is_yankable",
    "allocate_hot_spare",
    "use_mirrored_cache",
    "read_caching_enabled",
    "media_scan_enabled",
    "consistency_check_enabled",
];

/// Size members of VDS_HINTS2 (bytes; a unit is allowed).
const HINT_SIZES: [&str; 5] = [
    "optimal_read_size",
    "optimal_read_alignment",
    "optimal_write_size",
    "optimal_write_alignment",
    "expected_maximum_size",
];

/// One `--set NAME=VALUE` of `lun hints`, typed by its member (a usage error otherwise).
fn hint_arg(s: &str) -> Result<(String, serde_json::Value), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected NAME=VALUE"))?;
    let (k, v) = (k.trim(), v.trim());
    let value = if HINT_BOOLS.contains(&k) {
        match v {
            "true" => serde_json::Value::Bool(true),
            "false" => serde_json::Value::Bool(false),
            _ => return Err(format!("{k}: {v:?} is not true or false")),
        }
    } else if HINT_SIZES.contains(&k) {
        serde_json::Value::from(parse_size(v).map_err(|e| format!("{k}: {e}"))?)
    } else if matches!(
        k,
        "rebuild_priority" | "maximum_drive_count" | "stripe_size"
    ) {
        let n: u64 = v
            .parse()
            .map_err(|_| format!("{k}: {v:?} is not a non-negative integer"))?;
        serde_json::Value::from(n)
    } else if k == "bus_type" {
        serde_json::Value::from(v)
    } else {
        return Err(format!("{k:?} is not a VDS_HINTS2 member"));
    };
    Ok((k.to_string(), value))
}

#[derive(Debug, Args)]
pub struct LunCreate {
    /// Size, e.g. 1GiB, 512MiB, 10G or bytes.
    #[arg(long, value_parser = size_arg)]
    pub size: u64,
    /// Friendly name.
    #[arg(long)]
    pub name: Option<String>,
    /// Subsystem (needed when there are several).
    #[arg(long)]
    pub subsystem: Option<String>,
    /// Create it in this storage pool (CreateLunInStoragePool): its drives, its default type.
    #[arg(long, conflicts_with_all = ["subsystem", "drive", "backing", "path", "faults"])]
    pub pool: Option<String>,
    /// LUN type (simple, mirror, ..., a VDS constant or an integer).
    #[arg(long = "type")]
    pub lun_type: Option<String>,
    /// Thin provisioning (sparse).
    #[arg(long, conflicts_with = "thick")]
    pub thin: bool,
    /// Fully allocated.
    #[arg(long)]
    pub thick: bool,
    /// Drive to allocate from (UUID or friendly name).
    #[arg(long)]
    pub drive: Option<String>,
    /// Drives of an extent-backed LUN, in order (UUIDs or friendly names, comma-separated or
    /// repeated): plex i takes the i-th group of drives.
    #[arg(long, value_delimiter = ',')]
    pub drives: Vec<String>,
    /// Plexes of a mirror or raid10 LUN (2-4, default 2).
    #[arg(long)]
    pub plexes: Option<u32>,
    /// Stripe size of a stripe or raid10 LUN, e.g. 64KiB (a power of two, 4KiB-1MiB).
    #[arg(long, value_parser = size_arg)]
    pub stripe_size: Option<u64>,
    /// Load-balance policy from the start (as `lun load-balance --set`); with several
    /// gateways, round_robin makes an RBD LUN active/active.
    #[arg(long)]
    pub load_balance: Option<String>,
    /// Unmasking list ("*", "", or IQNs separated by ';').
    #[arg(long)]
    pub mask: Option<String>,
    /// Target to expose the LUN through (repeatable).
    #[arg(long = "target")]
    pub targets: Vec<String>,
    /// Backing store kind: file, block, memory, null, rbd.
    #[arg(long)]
    pub backing: Option<String>,
    /// Path of the backing file or block device.
    #[arg(long, conflicts_with = "image")]
    pub path: Option<String>,
    /// An RBD image, POOL/IMAGE (backing kind rbd; vdsd started with --ceph-conf).
    #[arg(long)]
    pub image: Option<String>,
    /// A fault filter as JSON, e.g. '{"delay":{"flush_ms":3000}}' (repeatable).
    #[arg(long = "fault")]
    pub faults: Vec<String>,
    /// Create it read-only: hosts may read it, every write fails (a vds extension).
    #[arg(long)]
    pub read_only: bool,
    /// A hint NAME=VALUE (VDS_HINTS2 member in snake_case, as for `lun hints --set`;
    /// repeatable): CreateLun2.
    #[arg(long = "hint", value_parser = hint_arg)]
    pub hints: Vec<(String, serde_json::Value)>,
}

/// `lun list`: every LUN, of one subsystem, or those that carry one designator.
#[derive(Debug, Args)]
pub struct LunList {
    /// Only this subsystem (UUID or friendly name); default all.
    #[arg(long)]
    pub subsystem: Option<String>,
    /// Only the LUN with this designator (NAA hex with or without `naa.`, T10 vendor id or
    /// serial number; case-insensitive): what a host matches a disk by.
    #[arg(long)]
    pub identifier: Option<String>,
}

#[derive(Debug, Args)]
pub struct SetFaults {
    pub lun: String,
    /// Added latency of each read, in ms.
    #[arg(long)]
    pub delay_read_ms: Option<u64>,
    /// Added latency of each write, in ms.
    #[arg(long)]
    pub delay_write_ms: Option<u64>,
    /// Added latency of each flush, in ms.
    #[arg(long)]
    pub delay_flush_ms: Option<u64>,
    /// Operations that fail with EIO: comma-separated read, write, flush.
    #[arg(long)]
    pub error_ops: Option<String>,
    /// Successful operations before the errors start (with --error-ops; default 0).
    #[arg(long, requires = "error_ops")]
    pub error_after: Option<u64>,
    /// A filter as JSON (repeatable), appended after the ones above.
    #[arg(long = "filter")]
    pub filters: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum TargetVerb {
    /// List targets.
    List(SubsystemOpt),
    /// Show a target.
    Show { target: String },
    /// Create a target (a job).
    Create {
        /// Friendly name.
        name: String,
        /// iSCSI name (default: generated by the provider).
        #[arg(long)]
        iqn: Option<String>,
        /// Subsystem (needed when there are several).
        #[arg(long)]
        subsystem: Option<String>,
    },
    /// Delete a target and its portal groups (a job).
    Delete { target: String },
    /// Set the target's CHAP secret (no --secret: clear it). '-' reads it from stdin.
    SetSecret {
        target: String,
        #[arg(long)]
        secret: Option<String>,
        /// The initiator the secret applies to (default: any).
        #[arg(long)]
        initiator: Option<String>,
    },
    /// Remember an initiator's secret for mutual CHAP. '-' reads it from stdin.
    RememberSecret {
        target: String,
        initiator: String,
        #[arg(long)]
        secret: String,
    },
    /// List connected initiators.
    Initiators { target: String },
    /// Change the friendly name.
    Rename { target: String, name: String },
}

#[derive(Debug, Subcommand)]
pub enum PortalGroupVerb {
    /// List portal groups.
    List {
        /// Only this target's.
        #[arg(long)]
        target: Option<String>,
    },
    /// Show a portal group (by id).
    Show { group: String },
    /// Create a portal group on a target (a job).
    Create { target: String },
    /// Delete a portal group (a job).
    Delete { group: String },
    /// Add a portal to a portal group (a job).
    AddPortal { group: String, portal: String },
    /// Remove a portal from a portal group (a job).
    RemovePortal { group: String, portal: String },
}

#[derive(Debug, Subcommand)]
pub enum PortalVerb {
    /// List portals.
    List(SubsystemOpt),
    /// Show a portal (UUID or ADDR:PORT).
    Show { portal: String },
    /// Declare a portal ADDR[:PORT] (port 3260 by default); it starts offline.
    Add {
        endpoint: String,
        #[arg(long)]
        subsystem: Option<String>,
        /// HOST:PORT that SendTargets reports instead of ADDR:PORT (behind NAT, in a container).
        #[arg(long, value_name = "HOST:PORT")]
        advertise: Option<String>,
        /// The controller whose port it is (UUID or friendly name; default the first).
        #[arg(long)]
        controller: Option<String>,
    },
    /// Change a portal: set (--advertise HOST:PORT) or clear (--no-advertise) the address
    /// SendTargets reports for it.
    #[command(group = clap::ArgGroup::new("change").required(true))]
    Set {
        portal: String,
        #[arg(long, value_name = "HOST:PORT", group = "change")]
        advertise: Option<String>,
        #[arg(long, group = "change")]
        no_advertise: bool,
    },
    /// Delete a portal.
    Delete { portal: String },
    /// Set the status: online, offline, a VDS constant or an integer.
    SetStatus { portal: String, status: String },
}

#[derive(Debug, Subcommand)]
pub enum JobVerb {
    /// Show a job.
    Show { job: String },
    /// Wait for a job to end.
    Wait { job: String },
    /// Cancel a job.
    Cancel { job: String },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn grammar_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bad_size_is_a_usage_error() {
        let e = Cli::try_parse_from(["vdsctl", "lun", "create", "--size", "lots"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let ok = Cli::try_parse_from(["vdsctl", "lun", "extend", "db", "1GiB"]).unwrap();
        match ok.noun {
            Noun::Lun {
                verb: LunVerb::Extend { size, .. },
            } => assert_eq!(size, 1 << 30),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn global_flags_anywhere() {
        let c = Cli::try_parse_from([
            "vdsctl",
            "lun",
            "create",
            "--size",
            "1G",
            "--json",
            "--no-wait",
        ])
        .unwrap();
        assert!(c.json && c.no_wait);
    }
}
