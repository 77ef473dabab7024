//! The JSON of the API (INTERFACE.md "Resources"): response objects built from `vds-model`
//! values, request bodies, and the enumeration arguments that accept a short name, a VDS
//! constant or an integer. This crate is the only one with wire serde.
//!
//! Enumerated fields are written as lower-case short names; flag sets as the list of the short
//! names of their set bits; ids as UUID strings; `lun_numbers` as an object from target id to
//! LUN number. Request bodies reject unknown fields, so a misspelt field is named in an
//! `E_INVALIDARG` answer instead of being silently ignored.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};
use uuid::Uuid;
use vds_model::enums::EnumParseError;
use vds_model::{
    BackingKind, Controller, ControllerStatus, DriveFlag, DriveStatus, FaultFilterSpec,
    FaultOpKind, Job, JobOutput, LbSupportFlag, LoadBalancePolicy, Lun, LunFlag, LunPlexFlag,
    LunStatus, LunType, MaintenanceOperation, Portal, PortalGroup, PortalStatus, ProviderFlag,
    ProviderInfo, Subsystem, SubsystemFlag, SubsystemRaidTypeFlag, SubsystemStatus, Target,
};
use vds_provider::Event;

// ---- enumeration arguments -------------------------------------------------------------------

/// A VDS enumeration that requests may name (short name, VDS constant or integer).
pub trait VdsEnum: Sized + Copy {
    /// SDK type name, for messages.
    const TYPE_NAME: &'static str;
    /// Parses any of the three spellings.
    fn parse_any(s: &str) -> Result<Self, EnumParseError>;
    /// The VDS integer value.
    fn int_value(self) -> i64;
}

macro_rules! vds_enum_arg {
    ($($t:ty),* $(,)?) => {$(
        impl VdsEnum for $t {
            const TYPE_NAME: &'static str = <$t>::TYPE_NAME;
            fn parse_any(s: &str) -> Result<Self, EnumParseError> {
                <$t>::parse(s)
            }
            fn int_value(self) -> i64 {
                i64::from(self.value())
            }
        }
    )*};
}

vds_enum_arg!(
    LunStatus,
    PortalStatus,
    SubsystemStatus,
    ControllerStatus,
    DriveStatus,
    LunType,
    MaintenanceOperation,
    vds_model::StorageBusType,
    LoadBalancePolicy,
    vds_model::RaidType
);

/// An enumerated request field, parsed to its member: unknown names and numbers outside the
/// enumeration are rejected while deserializing (E_INVALIDARG naming the field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnumArg<T>(pub T);

/// A requested status: the raw integer the caller meant. Names (short or VDS constant) are
/// mapped to their value; integers pass through unjudged, because judging a status (not a
/// member → E_INVALIDARG, report-only → VDS_E_NOT_SUPPORTED) is the provider's job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusArg<T> {
    pub value: i64,
    _t: PhantomData<T>,
}

impl<T> StatusArg<T> {
    pub fn new(value: i64) -> Self {
        StatusArg {
            value,
            _t: PhantomData,
        }
    }
}

/// Either a string or an integer, as read from JSON.
enum Spelling {
    Text(String),
    Int(i64),
}

struct SpellingVisitor(&'static str);

impl Visitor<'_> for SpellingVisitor {
    type Value = Spelling;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "a {} value: a short name, a VDS constant or an integer",
            self.0
        )
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Spelling, E> {
        Ok(Spelling::Text(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Spelling, E> {
        Ok(Spelling::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Spelling, E> {
        i64::try_from(v)
            .map(Spelling::Int)
            .map_err(|_| E::custom(format!("{v} is not a {} value", self.0)))
    }
}

impl<'de, T: VdsEnum> Deserialize<'de> for EnumArg<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = match d.deserialize_any(SpellingVisitor(T::TYPE_NAME))? {
            Spelling::Text(s) => s,
            Spelling::Int(i) => i.to_string(),
        };
        T::parse_any(&text).map(EnumArg).map_err(de::Error::custom)
    }
}

impl<'de, T: VdsEnum> Deserialize<'de> for StatusArg<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_any(SpellingVisitor(T::TYPE_NAME))? {
            Spelling::Int(i) => Ok(StatusArg::new(i)),
            Spelling::Text(s) => match s.trim().parse::<i64>() {
                Ok(i) => Ok(StatusArg::new(i)),
                Err(_) => T::parse_any(&s)
                    .map(|v| StatusArg::new(v.int_value()))
                    .map_err(de::Error::custom),
            },
        }
    }
}

/// Schema of every enumeration argument: a short name / VDS constant, or an integer.
pub struct EnumValue;

impl PartialSchema for EnumValue {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some(
                        "short name (\"offline\") or VDS constant (\"VDS_LS_OFFLINE\")",
                    )),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .description(Some("the VDS integer value")),
            )
            .into()
    }
}

impl ToSchema for EnumValue {}

/// A string-only short-name enumeration of `vds-model` whose parser returns `Option`.
macro_rules! short_name_arg {
    ($name:ident, $model:ty, $what:literal) => {
        #[doc = concat!("A ", $what, " named by its short name.")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name(pub $model);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                <$model>::parse(&s).map($name).ok_or_else(|| {
                    let names: Vec<&str> = <$model>::ALL.iter().map(|k| k.short_name()).collect();
                    de::Error::custom(format!(
                        "{s:?} is not a {} (expected one of {})",
                        $what,
                        names.join(", ")
                    ))
                })
            }
        }
    };
}

short_name_arg!(BackingKindArg, BackingKind, "backing store kind");

/// A fault-filter operation kind (`read`, `write`, `flush`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultOpArg(pub FaultOpKind);

impl<'de> Deserialize<'de> for FaultOpArg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        FaultOpKind::parse(&s).map(FaultOpArg).ok_or_else(|| {
            de::Error::custom(format!(
                "{s:?} is not a fault operation (expected read, write or flush)"
            ))
        })
    }
}

// ---- request bodies --------------------------------------------------------------------------

/// `F`: a fault filter.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultFilterBody {
    /// Adds latency to each operation of that kind.
    Delay(DelayBody),
    /// Makes the listed operations fail with EIO once `after` of them have succeeded.
    Error(ErrorFaultBody),
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DelayBody {
    #[serde(default)]
    pub read_ms: u64,
    #[serde(default)]
    pub write_ms: u64,
    #[serde(default)]
    pub flush_ms: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ErrorFaultBody {
    /// `read`, `write`, `flush`.
    #[schema(value_type = Vec<String>, example = json!(["write"]))]
    #[serde(serialize_with = "ser_ops")]
    pub ops: Vec<FaultOpArg>,
    #[serde(default)]
    pub after: u64,
}

fn ser_ops<S: serde::Serializer>(ops: &[FaultOpArg], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(ops.iter().map(|o| o.0.short_name()))
}

impl From<&FaultFilterBody> for FaultFilterSpec {
    fn from(b: &FaultFilterBody) -> Self {
        match b {
            FaultFilterBody::Delay(d) => FaultFilterSpec::Delay {
                read_ms: d.read_ms,
                write_ms: d.write_ms,
                flush_ms: d.flush_ms,
            },
            FaultFilterBody::Error(e) => FaultFilterSpec::Error {
                ops: e.ops.iter().map(|o| o.0).collect(),
                after: e.after,
            },
        }
    }
}

impl From<&FaultFilterSpec> for FaultFilterBody {
    fn from(f: &FaultFilterSpec) -> Self {
        match f {
            FaultFilterSpec::Delay {
                read_ms,
                write_ms,
                flush_ms,
            } => FaultFilterBody::Delay(DelayBody {
                read_ms: *read_ms,
                write_ms: *write_ms,
                flush_ms: *flush_ms,
            }),
            FaultFilterSpec::Error { ops, after } => FaultFilterBody::Error(ErrorFaultBody {
                ops: ops.iter().copied().map(FaultOpArg).collect(),
                after: *after,
            }),
        }
    }
}

/// `B`: the backing store of a new LUN.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackingBody {
    /// `file` (default), `block`, `memory`, `null`, `rbd` (with `--ceph-conf`).
    #[schema(value_type = Option<String>, example = "file")]
    pub kind: Option<BackingKindArg>,
    /// File or device path (absolute).
    pub path: Option<String>,
    /// `rbd`: the Ceph pool holding the image.
    pub pool: Option<String>,
    /// `rbd`: the image (created when missing, adopted when it exists).
    pub image: Option<String>,
    /// Fault filters (only with `--enable-fault-injection`).
    #[serde(default)]
    pub filters: Vec<FaultFilterBody>,
    /// An existing file or device at `path` is adopted as it is; `true` zeroes its first and
    /// last MiB first (default `false`: nothing in it is changed).
    #[serde(default)]
    pub wipe: bool,
}

/// `POST /v1/subsystems/{id}/luns`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLunBody {
    pub size_bytes: u64,
    pub friendly_name: Option<String>,
    #[serde(rename = "type")]
    #[schema(value_type = Option<EnumValue>)]
    pub lun_type: Option<EnumArg<LunType>>,
    pub thin: Option<bool>,
    pub drive: Option<Uuid>,
    pub unmasking_list: Option<String>,
    pub targets: Option<Vec<Uuid>>,
    pub backing: Option<BackingBody>,
    /// Extension: create the LUN read-only (default false). Hosts see it write-protected and
    /// every write fails with DATA PROTECT / WRITE PROTECTED (07/27/00).
    pub read_only: Option<bool>,
    /// `IVdsSubSystem2::CreateLun2`: hints applied from the start (as `PUT .../hints`).
    pub hints: Option<HintsBody>,
    /// The drives of an extent-backed LUN (simple, span, stripe, mirror, raid10), used in
    /// order: plex i takes the i-th group of `len / plexes` drives (BEHAVIOUR.md §15).
    pub drives: Option<Vec<Uuid>>,
    /// Plexes of a mirror or RAID-10 LUN: 2 to 4 (default 2).
    pub plexes: Option<u32>,
    /// Stripe size of a stripe or RAID-10 LUN: a power of two, 4096 to 1048576 (default 65536).
    pub stripe_size: Option<u64>,
    /// The load-balance policy from the start, as `PUT .../load-balance` takes it (default
    /// `round_robin_with_subset`). For an RBD LUN of several gateways, `round_robin` makes it
    /// active/active: served by every gateway, with no owner (docs/SCALEOUT.md).
    #[schema(value_type = Option<EnumValue>)]
    pub load_balance: Option<StatusArg<LoadBalancePolicy>>,
}

/// `PATCH /v1/luns/{id}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchLunBody {
    pub friendly_name: Option<String>,
    pub unmasking_list: Option<String>,
    /// Extension: make the LUN read-only (`true`) or writable (`false`); hosts see the change
    /// on their next command (UNIT ATTENTION 06/2A/01 MODE PARAMETERS CHANGED).
    pub read_only: Option<bool>,
}

/// `POST /v1/{luns,portals,...}/{id}/status`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, bound = "T: VdsEnum")]
pub struct StatusBody<T: VdsEnum> {
    pub status: StatusArg<T>,
}

/// The body of every `.../status` call (documentation of [`StatusBody`]).
#[derive(Debug, Clone, ToSchema)]
pub struct StatusRequest {
    /// Short name (`"offline"`), VDS constant (`"VDS_LS_OFFLINE"`) or integer (`4`).
    #[schema(value_type = EnumValue)]
    pub status: i64,
}

/// `POST /v1/luns/{id}/extend`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BytesBody {
    pub bytes: u64,
    /// A span LUN only: the drives the new extents go on, in order (default: every column
    /// grows on the drive of its last extent).
    pub drives: Option<Vec<Uuid>>,
}

/// `POST /v1/luns/{id}/shrink`: the bytes to remove from the end.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShrinkBody {
    pub bytes: u64,
}

/// `VDS_POOL_ATTRIBUTES` members given at a pool's creation (the mask answers which).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolAttributesJson {
    /// `raidType` (`VDS_RAID_TYPE`: raid0, raid1, raid10, ...).
    #[schema(value_type = Option<EnumValue>)]
    pub raid_type: Option<EnumArg<vds_model::RaidType>>,
    /// `bIsThinProvisioned`.
    pub thin_provisioned: Option<bool>,
    /// `bNoSinglePointOfFailure`.
    pub no_single_point_of_failure: Option<bool>,
    /// `ulStripeSize`.
    pub stripe_size: Option<u32>,
    /// `ulNumberOfColumns`.
    pub number_of_columns: Option<u32>,
    /// `pwszIntendedUsage`.
    pub intended_usage: Option<String>,
}

/// A pool's `VDS_POOL_ATTRIBUTES`: the members given at its creation and their mask.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PoolAttributesOut {
    /// `ullAttributeMask`: the `VDS_POOL_ATTRIB_*` bits of the members below.
    pub mask: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raid_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thin_provisioned: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_single_point_of_failure: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stripe_size: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number_of_columns: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intended_usage: Option<String>,
}

impl From<&PoolAttributesJson> for vds_model::PoolAttributes {
    fn from(a: &PoolAttributesJson) -> Self {
        vds_model::PoolAttributes {
            raid_type: a.raid_type.map(|t| t.0),
            thin_provisioned: a.thin_provisioned,
            no_single_point_of_failure: a.no_single_point_of_failure,
            stripe_size: a.stripe_size,
            number_of_columns: a.number_of_columns,
            intended_usage: a.intended_usage.clone(),
        }
    }
}

/// `POST /v1/subsystems/{id}/pools`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePoolBody {
    pub friendly_name: String,
    pub description: Option<String>,
    /// The drives, in order: added drives of the subsystem, none a hot spare, none in another
    /// named pool.
    pub drives: Vec<Uuid>,
    /// The type a create in the pool gets when it names none (default `default`).
    #[schema(value_type = Option<EnumValue>)]
    pub default_type: Option<EnumArg<LunType>>,
    pub attributes: Option<PoolAttributesJson>,
}

/// `POST /v1/pools/{id}/luns` (`CreateLunInStoragePool`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePoolLunBody {
    pub size_bytes: u64,
    pub friendly_name: Option<String>,
    /// Default: the pool's default type.
    #[serde(rename = "type")]
    #[schema(value_type = Option<EnumValue>)]
    pub lun_type: Option<EnumArg<LunType>>,
    pub thin: Option<bool>,
    pub unmasking_list: Option<String>,
    pub targets: Option<Vec<Uuid>>,
    pub read_only: Option<bool>,
    pub hints: Option<HintsBody>,
    /// Drives of the pool, in order (default: chosen among the pool's, the roomiest first).
    pub drives: Option<Vec<Uuid>>,
    pub plexes: Option<u32>,
    pub stripe_size: Option<u64>,
}

/// A storage pool (`VDS_STORAGE_POOL_PROP` and `VDS_POOL_ATTRIBUTES`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PoolJson {
    pub id: Uuid,
    pub subsystem: Uuid,
    pub friendly_name: String,
    pub description: String,
    /// `primordial` or `concrete`.
    #[serde(rename = "type")]
    pub pool_type: &'static str,
    pub status: &'static str,
    pub health: &'static str,
    pub drives: Vec<Uuid>,
    pub default_type: &'static str,
    /// `ullTotalManagedSpace`: the drives' capacities.
    pub total_managed_space: u64,
    /// `ullTotalConsumedSpace`: the extents on them (thin extents on `dir` drives: their
    /// allocated blocks).
    pub consumed_space: u64,
    /// `ullRemainingFreeSpace`: what new extents can take.
    pub remaining_free_space: u64,
    /// `VDS_POOL_ATTRIBUTES.ullProvisionedSpace`: the sizes of the extents on the drives.
    pub provisioned_space: u64,
    /// The provisioned space exceeds the total managed space.
    pub overcommitted: bool,
    pub attributes: PoolAttributesOut,
}

impl From<&vds_model::StoragePool> for PoolJson {
    fn from(p: &vds_model::StoragePool) -> Self {
        let a = &p.attributes;
        PoolJson {
            id: p.id,
            subsystem: p.subsystem,
            friendly_name: p.name.clone(),
            description: p.description.clone(),
            pool_type: p.pool_type.short_name(),
            status: p.status.short_name(),
            health: p.health.short_name(),
            drives: p.drives.clone(),
            default_type: p.default_type.short_name(),
            total_managed_space: p.total_managed,
            consumed_space: p.consumed,
            remaining_free_space: p.remaining,
            provisioned_space: p.provisioned,
            overcommitted: p.overcommitted,
            attributes: PoolAttributesOut {
                raid_type: a.raid_type.map(|t| t.short_name()),
                thin_provisioned: a.thin_provisioned,
                no_single_point_of_failure: a.no_single_point_of_failure,
                stripe_size: a.stripe_size,
                number_of_columns: a.number_of_columns,
                intended_usage: a.intended_usage.clone(),
                mask: a.mask(),
            },
        }
    }
}

/// A size answer (`max-lun-size`, `max-extend-size`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SizeJson {
    pub size_bytes: u64,
}

/// `POST /v1/subsystems/{id}/replace-drive` (ReplaceDrive).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceDriveBody {
    /// The drive emptied.
    pub old: Uuid,
    /// The drive that takes every extent of `old`.
    pub new: Uuid,
}

/// `POST /v1/luns/{id}/plexes` (AddPlex).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddPlexBody {
    /// The LUN that becomes the new plex (it departs; its data is gone).
    pub lun: Uuid,
}

/// `PUT /v1/luns/{id}/faults`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultsBody {
    pub filters: Vec<FaultFilterBody>,
}

/// `PUT /v1/luns/{id}/targets`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetsBody {
    pub targets: Vec<Uuid>,
}

/// `POST /v1/subsystems/{id}/targets`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTargetBody {
    pub iscsi_name: Option<String>,
    pub friendly_name: String,
}

/// `PATCH /v1/subsystems/{id}` (`IVdsSubSystemNaming::SetFriendlyName`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchSubsystemBody {
    pub friendly_name: String,
}

/// `POST /v1/subsystems/{id}/controller-status` (`IVdsSubSystem::SetControllerStatus`): every
/// controller of the subsystem in exactly one list.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ControllerStatusBody {
    pub online: Vec<Uuid>,
    pub offline: Vec<Uuid>,
}

/// `POST /v1/{subsystems,controllers,drives,luns}/{id}/maintenance` (`IVdsMaintenance`):
/// `StartMaintenance`, `StopMaintenance` or `PulseMaintenance(count)` of one operation.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceBody {
    /// `VDS_MAINTENANCE_OPERATION`: `blink_light`, `beep_alarm`, `spin_down`, `spin_up`, `ping`
    /// (or the VDS constant or integer).
    #[schema(value_type = EnumValue)]
    pub operation: EnumArg<MaintenanceOperation>,
    /// `start`, `stop` or `pulse`.
    pub action: MaintenanceActionArg,
    /// How many pulses (`pulse` only, at least 1).
    pub count: Option<u32>,
}

/// The three `IVdsMaintenance` methods.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MaintenanceActionArg {
    Start,
    Stop,
    Pulse,
}

/// `POST /v1/subsystems/{id}/controllers`: adds a controller (an ALUA target port group).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddControllerBody {
    /// Default `vds controller N`.
    pub friendly_name: Option<String>,
}

/// `POST /v1/subsystems/{id}/drives`: adds a drive (BEHAVIOUR.md §15).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddDriveBody {
    /// `dir` (a directory) or `block` (a block device, or a regular file standing in for one).
    pub kind: String,
    /// Absolute path; symlinks are resolved.
    pub path: String,
    /// Default `vds drive N` (N its slot).
    pub friendly_name: Option<String>,
    /// Overwrite a foreign label or non-zero first MiB (its data is lost).
    pub force: Option<bool>,
}

/// `PUT /v1/drives/{id}/flags` (`IVdsDrive::SetFlags` / `ClearFlags`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DriveFlagsBody {
    /// `VDS_DRF_HOTSPARE`: a spare holds no LUN and is not in the primordial pool.
    pub hotspare: bool,
}

/// `PUT /v1/luns/{id}/controllers` (`IVdsLun::AssociateControllers`): every controller of
/// the LUN's subsystem in exactly one list, at least one active.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssociateControllersBody {
    pub active: Vec<Uuid>,
    pub inactive: Vec<Uuid>,
}

/// `PUT /v1/luns/{id}/load-balance` (`IVdsLunMpio::SetLoadBalancePolicy`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalanceBody {
    pub policy: StatusArg<LoadBalancePolicy>,
}

/// The body of `PUT /v1/luns/{id}/load-balance` (documentation of [`LoadBalanceBody`]).
#[derive(Debug, Clone, ToSchema)]
pub struct LoadBalanceRequest {
    /// Short name (`"failover"`), VDS constant (`"VDS_LBP_FAILOVER"`) or integer (`1`).
    #[schema(value_type = EnumValue)]
    pub policy: i64,
}

/// A LUN's load-balance policy (`IVdsLunMpio::GetLoadBalancePolicy`) and the policies the
/// provider supports (`GetSupportedLbPolicies`, `VDS_PROVIDER_LBSUPPORT_FLAG`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LoadBalanceJson {
    #[schema(example = "round_robin_with_subset")]
    pub policy: String,
    #[schema(example = json!(["failover", "round_robin", "round_robin_with_subset"]))]
    pub supported: Vec<&'static str>,
    /// The `VDS_PROVIDER_LBSUPPORT_FLAG` bits of `supported`.
    #[schema(example = 7)]
    pub supported_value: u32,
}

impl LoadBalanceJson {
    pub fn new(policy: LoadBalancePolicy, supported: u32) -> Self {
        LoadBalanceJson {
            policy: policy.short_name().into(),
            supported: LbSupportFlag::names(supported),
            supported_value: supported,
        }
    }
}

/// `PATCH /v1/targets/{id}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTargetBody {
    pub friendly_name: String,
}

/// `PUT /v1/targets/{id}/shared-secret` (absent secret clears).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SharedSecretBody {
    pub secret: Option<String>,
    pub initiator_name: Option<String>,
}

/// `PUT /v1/targets/{id}/initiator-secrets/{initiator_name}` (absent secret forgets).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InitiatorSecretBody {
    pub secret: Option<String>,
}

/// `POST /v1/portal-groups/{id}/portals`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddPortalBody {
    pub portal: Uuid,
}

/// `POST /v1/subsystems/{id}/portals`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePortalBody {
    #[schema(value_type = String, example = "127.0.0.2")]
    pub address: std::net::IpAddr,
    pub port: u16,
    /// What SendTargets reports instead of `address:port` (`host:port`; BEHAVIOUR.md §4).
    #[schema(example = "10.0.2.100:3260")]
    pub advertise: Option<String>,
    /// The controller whose port it is (default: the subsystem's first; BEHAVIOUR.md §14).
    pub controller: Option<Uuid>,
}

/// `PATCH /v1/portals/{id}`: `"advertise": "host:port"` sets, `null` clears, absent leaves.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchPortalBody {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "10.0.2.100:3260")]
    pub advertise: Option<Option<String>>,
}

/// A field that is present, `null` included: `Some(None)` for `null`, `Some(Some(v))` for a
/// value (with `#[serde(default)]`, `None` when absent).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

// ---- response objects ------------------------------------------------------------------------

/// The provider.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProviderJson {
    pub id: Uuid,
    pub name: String,
    pub version: String,
    #[serde(rename = "type")]
    #[schema(example = "iscsi")]
    pub provider_type: String,
    pub flags: Vec<&'static str>,
    /// `valid` or `corrupt`.
    pub cache: String,
}

impl From<&ProviderInfo> for ProviderJson {
    fn from(p: &ProviderInfo) -> Self {
        ProviderJson {
            id: p.id,
            name: p.name.clone(),
            version: p.version.clone(),
            provider_type: p.provider_type.short_name().into(),
            flags: ProviderFlag::names(p.flags),
            cache: p.cache.short_name().into(),
        }
    }
}

/// A flag set: the short names of the set bits and the exact `ULONG` value (what
/// `GetSupportedInterconnects` and `GetVersionSupport` answer).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FlagsJson {
    #[schema(example = json!(["iscsi"]))]
    pub flags: Vec<&'static str>,
    #[schema(example = 4)]
    pub value: u32,
}

/// A subsystem.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SubsystemJson {
    pub id: Uuid,
    pub friendly_name: String,
    pub identification: String,
    pub flags: Vec<&'static str>,
    pub status: String,
    pub health: String,
    pub supported_raid_types: Vec<&'static str>,
    pub rebuild_priority: i16,
    pub portal_status_settable: bool,
}

impl From<&Subsystem> for SubsystemJson {
    fn from(s: &Subsystem) -> Self {
        SubsystemJson {
            id: s.id,
            friendly_name: s.friendly_name.clone(),
            identification: s.identification.clone(),
            flags: SubsystemFlag::names(s.flags),
            status: s.status.short_name().into(),
            health: s.health.short_name().into(),
            supported_raid_types: SubsystemRaidTypeFlag::names(s.supported_raid_types),
            rebuild_priority: s.rebuild_priority,
            portal_status_settable: s.portal_status_settable,
        }
    }
}

/// A controller.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ControllerJson {
    pub id: Uuid,
    pub subsystem: Uuid,
    pub friendly_name: String,
    pub identification: String,
    pub status: String,
    pub health: String,
    /// Its portals.
    pub number_of_ports: i16,
    /// Its ALUA target port group id (BEHAVIOUR.md §14).
    pub port_group: u16,
}

impl From<&Controller> for ControllerJson {
    fn from(c: &Controller) -> Self {
        ControllerJson {
            id: c.id,
            subsystem: c.subsystem,
            friendly_name: c.friendly_name.clone(),
            identification: c.identification.clone(),
            status: c.status.short_name().into(),
            health: c.health.short_name().into(),
            number_of_ports: c.number_of_ports,
            port_group: c.port_group,
        }
    }
}

/// A drive.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DriveJson {
    pub id: Uuid,
    pub subsystem: Uuid,
    pub friendly_name: String,
    pub identification: String,
    pub size_bytes: u64,
    pub flags: Vec<&'static str>,
    pub status: String,
    pub health: String,
    pub bus_number: i16,
    pub slot_number: i16,
    pub path: String,
    /// `dir` or `block`.
    pub kind: &'static str,
}

impl From<&vds_model::Drive> for DriveJson {
    fn from(d: &vds_model::Drive) -> Self {
        DriveJson {
            id: d.id,
            subsystem: d.subsystem,
            friendly_name: d.friendly_name.clone(),
            identification: d.identification.clone(),
            size_bytes: d.size_bytes,
            flags: DriveFlag::names(d.flags),
            status: d.status.short_name().into(),
            health: d.health.short_name().into(),
            bus_number: d.bus_number,
            slot_number: d.slot_number,
            path: d.path.clone(),
            kind: d.kind.short_name(),
        }
    }
}

/// A plex of a LUN.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlexJson {
    pub id: Uuid,
    pub size_bytes: u64,
    #[serde(rename = "type")]
    pub plex_type: String,
    pub status: String,
    pub health: String,
    pub transition_state: String,
    pub flags: Vec<&'static str>,
    pub stripe_size: u32,
    pub rebuild_priority: i16,
}

/// One extent of a plex (`VDS_DRIVE_EXTENT` seen from the plex).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExtentJson {
    pub drive: Uuid,
    /// Byte offset on a `block` drive; 0 on a `dir` drive (the extent is its own file).
    pub offset: u64,
    pub size_bytes: u64,
    /// Column of the plex (stripe order).
    pub column: u32,
    /// Position in the column (concatenation order).
    pub seq: u32,
}

impl From<&vds_model::Extent> for ExtentJson {
    fn from(x: &vds_model::Extent) -> Self {
        ExtentJson {
            drive: x.drive,
            offset: x.offset,
            size_bytes: x.size,
            column: x.column,
            seq: x.seq,
        }
    }
}

/// A plex as an object: `GET /v1/plexes/{id}`, `GET /v1/luns/{id}/plexes` (plex i is the
/// LUN's i-th).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LunPlexJson {
    pub id: Uuid,
    pub lun: Uuid,
    pub size_bytes: u64,
    #[serde(rename = "type")]
    pub plex_type: String,
    pub status: String,
    pub health: String,
    pub transition_state: String,
    pub flags: Vec<&'static str>,
    pub stripe_size: u32,
    pub rebuild_priority: i16,
    pub extents: Vec<ExtentJson>,
}

impl From<&vds_provider::PlexInfo> for LunPlexJson {
    fn from(i: &vds_provider::PlexInfo) -> Self {
        let p = &i.plex;
        LunPlexJson {
            id: p.id,
            lun: i.lun,
            size_bytes: p.size_bytes,
            plex_type: p.plex_type.short_name().into(),
            status: p.status.short_name().into(),
            health: p.health.short_name().into(),
            transition_state: p.transition_state.short_name().into(),
            flags: LunPlexFlag::names(p.flags),
            stripe_size: p.stripe_size,
            rebuild_priority: p.rebuild_priority,
            extents: i.extents.iter().map(ExtentJson::from).collect(),
        }
    }
}

/// A range of a drive (`IVdsDrive::QueryExtents`): used by a plex of a LUN, or free.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DriveRangeJson {
    /// Byte offset on a `block` drive; 0 on a `dir` drive.
    pub offset: u64,
    pub size_bytes: u64,
    /// `true` when no LUN uses it.
    pub free: bool,
    pub lun: Option<Uuid>,
    pub plex: Option<Uuid>,
    /// Column and position in it, for a used range.
    pub column: Option<u32>,
    pub seq: Option<u32>,
}

impl From<&vds_provider::DriveRange> for DriveRangeJson {
    fn from(r: &vds_provider::DriveRange) -> Self {
        DriveRangeJson {
            offset: r.offset,
            size_bytes: r.size,
            free: r.used_by.is_none(),
            lun: r.used_by.map(|(l, _)| l),
            plex: r.used_by.map(|(_, p)| p),
            column: r.used_by.map(|_| r.column),
            seq: r.used_by.map(|_| r.seq),
        }
    }
}

/// `VDS_STORAGE_POOL_DRIVE_EXTENT` (`GET /v1/pools/{id}/drive-extents`): one used or free range
/// of a drive of the pool, as the drive's own `GET /v1/drives/{id}/extents` answers it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PoolDriveExtentJson {
    /// The drive.
    pub drive: Uuid,
    pub size_bytes: u64,
    /// `true` when a plex of a LUN uses it.
    pub used: bool,
}

impl From<&(Uuid, vds_provider::DriveRange)> for PoolDriveExtentJson {
    fn from((drive, r): &(Uuid, vds_provider::DriveRange)) -> Self {
        PoolDriveExtentJson {
            drive: *drive,
            size_bytes: r.size,
            used: r.used_by.is_some(),
        }
    }
}

/// Where a LUN's blocks live.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BackingJson {
    /// `file`, `block`, `memory`, `null`, or `extents` (on drives: see the plexes).
    pub kind: String,
    pub path: Option<String>,
    pub filters: Vec<FaultFilterBody>,
}

/// A LUN.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LunJson {
    pub id: Uuid,
    pub subsystem: Uuid,
    pub drive: Uuid,
    pub friendly_name: String,
    pub identification: String,
    pub size_bytes: u64,
    pub block_size: u32,
    pub unmasking_list: String,
    pub flags: Vec<&'static str>,
    #[serde(rename = "type")]
    pub lun_type: String,
    pub status: String,
    pub health: String,
    pub transition_state: String,
    pub rebuild_priority: i16,
    pub thin: bool,
    /// Extension: hosts may read but not write the LUN.
    pub read_only: bool,
    pub targets: Vec<Uuid>,
    /// Target id → LUN number in that target.
    pub lun_numbers: BTreeMap<Uuid, u64>,
    pub plexes: Vec<PlexJson>,
    pub backing: BackingJson,
    /// The controllers for which the LUN is active (`QueryActiveControllers`).
    pub active_controllers: Vec<Uuid>,
    /// `VDS_LOADBALANCE_POLICY_ENUM` short name.
    #[schema(example = "round_robin_with_subset")]
    pub load_balance: String,
}

impl From<&Lun> for LunJson {
    fn from(l: &Lun) -> Self {
        LunJson {
            id: l.id,
            subsystem: l.subsystem,
            drive: l.drive,
            friendly_name: l.friendly_name.clone(),
            identification: l.identification.clone(),
            size_bytes: l.size_bytes,
            block_size: l.block_size,
            unmasking_list: l.unmasking_list.clone(),
            flags: LunFlag::names(l.flags),
            lun_type: l.lun_type.short_name().into(),
            status: l.status.short_name().into(),
            health: l.health.short_name().into(),
            transition_state: l.transition_state.short_name().into(),
            rebuild_priority: l.rebuild_priority,
            thin: l.thin,
            read_only: l.read_only,
            targets: l.targets.clone(),
            lun_numbers: l.lun_numbers.iter().copied().collect(),
            plexes: l
                .plexes
                .iter()
                .map(|p| PlexJson {
                    id: p.id,
                    size_bytes: p.size_bytes,
                    plex_type: p.plex_type.short_name().into(),
                    status: p.status.short_name().into(),
                    health: p.health.short_name().into(),
                    transition_state: p.transition_state.short_name().into(),
                    flags: LunPlexFlag::names(p.flags),
                    stripe_size: p.stripe_size,
                    rebuild_priority: p.rebuild_priority,
                })
                .collect(),
            backing: BackingJson {
                kind: l.backing.kind.short_name().into(),
                path: l.backing.path.clone(),
                filters: l.filters.iter().map(FaultFilterBody::from).collect(),
            },
            active_controllers: l.active_controllers.clone(),
            load_balance: l.load_balance.short_name().into(),
        }
    }
}

/// An iSCSI target. Secrets are never part of it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TargetJson {
    pub id: Uuid,
    pub subsystem: Uuid,
    pub iscsi_name: String,
    pub friendly_name: String,
    pub chap_enabled: bool,
    pub portal_groups: Vec<Uuid>,
    pub luns: Vec<Uuid>,
}

impl From<&Target> for TargetJson {
    fn from(t: &Target) -> Self {
        TargetJson {
            id: t.id,
            subsystem: t.subsystem,
            iscsi_name: t.iscsi_name.clone(),
            friendly_name: t.friendly_name.clone(),
            chap_enabled: t.chap_enabled,
            portal_groups: t.portal_groups.clone(),
            luns: t.luns.clone(),
        }
    }
}

/// A portal group.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PortalGroupJson {
    pub id: Uuid,
    pub target: Uuid,
    pub tag: u16,
    pub portals: Vec<Uuid>,
}

impl From<&PortalGroup> for PortalGroupJson {
    fn from(p: &PortalGroup) -> Self {
        PortalGroupJson {
            id: p.id,
            target: p.target,
            tag: p.tag,
            portals: p.portals.clone(),
        }
    }
}

/// A portal.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PortalJson {
    pub id: Uuid,
    pub subsystem: Uuid,
    #[schema(example = "127.0.0.1")]
    pub address: String,
    pub port: u16,
    /// `ipv4` / `ipv6`.
    pub address_type: String,
    pub status: String,
    /// What SendTargets reports instead of `address:port`; `null` when none.
    #[schema(example = "10.0.2.100:3260")]
    pub advertise: Option<String>,
    /// The controller whose port it is.
    pub controller: Uuid,
    pub portal_groups: Vec<Uuid>,
}

impl From<&Portal> for PortalJson {
    fn from(p: &Portal) -> Self {
        PortalJson {
            id: p.id,
            subsystem: p.subsystem,
            address: p.address.to_string(),
            port: p.port,
            address_type: p.address_type().short_name().into(),
            status: p.status.short_name().into(),
            advertise: p.advertise.as_ref().map(|a| a.to_string()),
            controller: p.controller,
            portal_groups: p.portal_groups.clone(),
        }
    }
}

/// What a job produced: the created or changed object, or the id of what it deleted.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum JobOutputJson {
    Lun(Box<LunJson>),
    Target(TargetJson),
    PortalGroup(PortalGroupJson),
    Deleted(DeletedJson),
}

/// The id of a deleted object.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeletedJson {
    pub id: Uuid,
    pub deleted: bool,
}

impl From<&JobOutput> for JobOutputJson {
    fn from(o: &JobOutput) -> Self {
        match o {
            JobOutput::Lun(l) => JobOutputJson::Lun(Box::new(LunJson::from(l.as_ref()))),
            JobOutput::Target(t) => JobOutputJson::Target(t.into()),
            JobOutput::PortalGroup(p) => JobOutputJson::PortalGroup(p.into()),
            JobOutput::Deleted(id) => JobOutputJson::Deleted(DeletedJson {
                id: *id,
                deleted: true,
            }),
        }
    }
}

/// An asynchronous operation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobJson {
    pub id: Uuid,
    /// `create_lun`, `extend_lun`, ... (`VDS_ASYNC_OUTPUT_TYPE`).
    pub operation: String,
    /// The object it acts on (for creations: the parent).
    pub object: Uuid,
    /// `running`, `succeeded`, `failed`, `canceled`.
    pub state: String,
    pub percent: u32,
    /// `0x` + 8 hex digits; `VDS_E_OPERATION_PENDING` while running.
    #[schema(example = "0x80042409")]
    pub hresult: String,
    #[schema(example = "VDS_E_OPERATION_PENDING")]
    pub name: String,
    pub message: Option<String>,
    pub output: Option<JobOutputJson>,
}

impl From<&Job> for JobJson {
    fn from(j: &Job) -> Self {
        JobJson {
            id: j.id,
            operation: j.operation.short_name().into(),
            object: j.object,
            state: j.state.short_name().into(),
            percent: j.percent,
            hresult: j.hresult.hex(),
            name: j.hresult.name().into_owned(),
            message: j.message.clone(),
            output: j.output.as_ref().map(JobOutputJson::from),
        }
    }
}

/// One notification on `GET /v1/events`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventJson {
    /// `lun`, `portal`, `target`, `portal_group`, `subsystem`, `controller`, `drive`.
    pub object_type: String,
    /// `arrive`, `depart`, `modify`, `removed`.
    pub event: String,
    /// The `VDS_NF_*` code.
    pub code: u32,
    pub id: Uuid,
    /// RFC 3339.
    pub time: String,
}

impl From<&Event> for EventJson {
    fn from(e: &Event) -> Self {
        EventJson {
            object_type: e.object_type.short_name().into(),
            event: e.event.short_name().into(),
            code: e.code,
            id: e.id,
            time: e.time_rfc3339(),
        }
    }
}

/// The error body: `{"error": {"hresult": "0x8004240B", "name": "...", "message": "..."}}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// `0x` + 8 upper-case hex digits.
    #[schema(example = "0x8004240B")]
    pub hresult: String,
    #[schema(example = "VDS_E_OBJECT_DELETED")]
    pub name: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(v: serde_json::Value) -> Result<i64, String> {
        serde_json::from_value::<StatusBody<LunStatus>>(json!({ "status": v }))
            .map(|b| b.status.value)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn status_accepts_the_three_spellings_and_passes_integers_through() {
        assert_eq!(status(json!("offline")), Ok(4));
        assert_eq!(status(json!("VDS_LS_OFFLINE")), Ok(4));
        assert_eq!(status(json!(4)), Ok(4));
        assert_eq!(status(json!("4")), Ok(4));
        assert_eq!(
            status(json!(3)),
            Ok(3),
            "integers are judged by the provider"
        );
        assert_eq!(status(json!(0)), Ok(0));
        let e = status(json!("bogus")).unwrap_err();
        assert!(e.contains("VDS_LUN_STATUS"), "{e}");
        assert!(status(json!(1.5)).is_err());
        assert!(status(json!(null)).is_err());
        assert!(status(json!(u64::MAX)).is_err());
    }

    #[test]
    fn enum_args_reject_non_members() {
        let t = |v| serde_json::from_value::<EnumArg<LunType>>(v).map(|a| a.0);
        assert_eq!(t(json!("simple")).unwrap(), LunType::Simple);
        assert_eq!(t(json!("VDS_LT_MIRROR")).unwrap(), LunType::Mirror);
        assert_eq!(t(json!(10)).unwrap(), LunType::Simple);
        assert!(t(json!(99)).is_err());
        assert!(t(json!("raid99")).is_err());
    }

    #[test]
    fn fault_filters_round_trip() {
        let f: Vec<FaultFilterBody> = serde_json::from_value(json!([
            {"delay": {"flush_ms": 3000}},
            {"error": {"ops": ["read", "flush"], "after": 2}}
        ]))
        .unwrap();
        let spec: Vec<FaultFilterSpec> = f.iter().map(FaultFilterSpec::from).collect();
        assert_eq!(
            spec,
            vec![
                FaultFilterSpec::Delay {
                    read_ms: 0,
                    write_ms: 0,
                    flush_ms: 3000
                },
                FaultFilterSpec::Error {
                    ops: vec![FaultOpKind::Read, FaultOpKind::Flush],
                    after: 2
                }
            ]
        );
        let back: Vec<FaultFilterBody> = spec.iter().map(FaultFilterBody::from).collect();
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            json!([{"delay": {"read_ms": 0, "write_ms": 0, "flush_ms": 3000}},
                   {"error": {"ops": ["read", "flush"], "after": 2}}])
        );
        assert!(
            serde_json::from_value::<FaultFilterBody>(json!({"error": {"ops": ["erase"]}}))
                .is_err()
        );
        assert!(serde_json::from_value::<FaultFilterBody>(json!({"explode": {}})).is_err());
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let e =
            serde_json::from_value::<CreateLunBody>(json!({"size_bytes": 1, "frendly_name": "x"}))
                .unwrap_err();
        assert!(e.to_string().contains("frendly_name"));
    }
}

// ---- identification and hints (BEHAVIOUR.md §14 rules 7 and 8) --------------------------------

/// One designator (`VDS_STORAGE_IDENTIFIER`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StorageIdentifierJson {
    /// `binary`, `ascii` or `utf8`.
    pub code_set: &'static str,
    /// `VDS_STORAGE_IDENTIFIER_TYPE` short name (`fcphname` is the NAA designator).
    #[serde(rename = "type")]
    pub id_type: &'static str,
    /// `logical_unit`, `target_port` or `target_device`.
    pub association: &'static str,
    /// The designator bytes in lower-case hex.
    pub bytes: String,
    /// ASCII and UTF-8 designators as text (trailing NULs cut), binary ones as hex.
    pub text: String,
}

impl From<&vds_model::StorageIdentifier> for StorageIdentifierJson {
    fn from(s: &vds_model::StorageIdentifier) -> Self {
        let text = match s.code_set {
            vds_model::StorageIdentifierCodeSet::Ascii
            | vds_model::StorageIdentifierCodeSet::Utf8 => String::from_utf8_lossy(&s.bytes)
                .trim_end_matches('\0')
                .to_string(),
            _ => hex(&s.bytes),
        };
        StorageIdentifierJson {
            code_set: s.code_set.short_name(),
            id_type: s.id_type.short_name(),
            association: match s.association {
                0 => "logical_unit",
                1 => "target_port",
                _ => "target_device",
            },
            bytes: hex(&s.bytes),
            text,
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A target port behind a portal, with the designators VPD 83 adds for it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InterconnectPortJson {
    pub target: Uuid,
    /// `"<iqn>,t,0x<tag>"`.
    pub name: String,
    pub relative_target_port: u16,
    pub identifiers: Vec<StorageIdentifierJson>,
}

/// One portal serving the LUN (`VDS_INTERCONNECT`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InterconnectJson {
    pub portal: Uuid,
    /// `VDS_INTERCONNECT_ADDRESS_TYPE`: `unknown` (none of its members is an IP address).
    pub address_type: &'static str,
    /// `ip:port`.
    pub address: String,
    pub ports: Vec<InterconnectPortJson>,
}

/// `VDS_LUN_INFORMATION` (`GET /v1/luns/{id}/identification`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IdentificationJson {
    pub version: u32,
    /// SCSI peripheral device type: 0, direct access.
    pub device_type: u8,
    pub device_type_modifier: u8,
    pub command_queueing: bool,
    pub bus_type: &'static str,
    pub vendor_id: String,
    pub product_id: String,
    pub product_revision: String,
    pub serial_number: String,
    /// The GUID `m_diskSignature`: the MBR signature in its first 4 bytes, or the GPT disk
    /// GUID, or all zero.
    pub disk_signature: Uuid,
    /// `none`, `mbr` or `gpt`.
    pub disk_signature_kind: &'static str,
    /// The MBR signature as 8 hex digits, when there is one.
    pub mbr_signature: Option<String>,
    pub identifiers: Vec<StorageIdentifierJson>,
    pub interconnects: Vec<InterconnectJson>,
}

impl From<&vds_model::LunInformation> for IdentificationJson {
    fn from(i: &vds_model::LunInformation) -> Self {
        use vds_model::DiskSignature;
        let ids = |v: &[vds_model::StorageIdentifier]| v.iter().map(Into::into).collect();
        IdentificationJson {
            version: i.version,
            device_type: i.device_type,
            device_type_modifier: i.device_type_modifier,
            command_queueing: i.command_queueing,
            bus_type: i.bus_type.short_name(),
            vendor_id: i.vendor.clone(),
            product_id: i.product.clone(),
            product_revision: i.revision.clone(),
            serial_number: i.serial_number.clone(),
            disk_signature: i.disk_signature.guid(),
            disk_signature_kind: match i.disk_signature {
                DiskSignature::None => "none",
                DiskSignature::Mbr(_) => "mbr",
                DiskSignature::Gpt(_) => "gpt",
            },
            mbr_signature: match i.disk_signature {
                DiskSignature::Mbr(s) => Some(format!("{s:08x}")),
                _ => None,
            },
            identifiers: ids(&i.identifiers),
            interconnects: i
                .interconnects
                .iter()
                .map(|c| InterconnectJson {
                    portal: c.portal,
                    address_type: c.address_type.short_name(),
                    address: c.address.clone(),
                    ports: c
                        .ports
                        .iter()
                        .map(|p| InterconnectPortJson {
                            target: p.target,
                            name: p.name.clone(),
                            relative_target_port: p.relative_target_port,
                            identifiers: ids(&p.identifiers),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// `PUT /v1/luns/{id}/hints` and `"hints"` in a LUN create body: `VDS_HINTS2` members in
/// snake_case; the members present make the hint mask (`hint_mask` itself is not accepted).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HintsBody {
    pub write_caching_enabled: Option<bool>,
    pub write_through_caching_enabled: Option<bool>,
    pub read_back_verify_enabled: Option<bool>,
    /// Bytes, a multiple of the block size, at most 32 MiB.
    pub optimal_read_size: Option<u64>,
    /// Bytes, a multiple of the block size, at most 65535 blocks.
    pub optimal_read_alignment: Option<u64>,
    pub optimal_write_size: Option<u64>,
    pub optimal_write_alignment: Option<u64>,
    /// 0 to 15.
    pub rebuild_priority: Option<i64>,
    pub fast_crash_recovery_required: Option<bool>,
    // Members vds never applies (answered in `not_applied` unless they ask what vds does).
    pub expected_maximum_size: Option<u64>,
    pub maximum_drive_count: Option<u64>,
    pub stripe_size: Option<u64>,
    pub mostly_reads: Option<bool>,
    pub optimize_for_sequential_reads: Option<bool>,
    pub optimize_for_sequential_writes: Option<bool>,
    pub remap_enabled: Option<bool>,
    pub hardware_checksum_enabled: Option<bool>,
    pub is_yankable: Option<bool>,
    pub allocate_hot_spare: Option<bool>,
    pub use_mirrored_cache: Option<bool>,
    pub read_caching_enabled: Option<bool>,
    pub media_scan_enabled: Option<bool>,
    pub consistency_check_enabled: Option<bool>,
    #[schema(value_type = Option<EnumValue>)]
    pub bus_type: Option<EnumArg<vds_model::StorageBusType>>,
}

impl From<HintsBody> for vds_provider::HintsRequest {
    fn from(b: HintsBody) -> Self {
        let mut other = Vec::new();
        let mut num = |name: &str, v: Option<u64>| {
            if let Some(v) = v {
                other.push((name.to_string(), v.to_string()));
            }
        };
        num("expected_maximum_size", b.expected_maximum_size);
        num("maximum_drive_count", b.maximum_drive_count);
        num("stripe_size", b.stripe_size);
        for (name, v) in [
            ("mostly_reads", b.mostly_reads),
            (
                "optimize_for_sequential_reads",
                b.optimize_for_sequential_reads,
            ),
            (
                "optimize_for_sequential_writes",
                b.optimize_for_sequential_writes,
            ),
            ("remap_enabled", b.remap_enabled),
            ("hardware_checksum_enabled", b.hardware_checksum_enabled),
            ("is_yankable", b.is_yankable),
            ("allocate_hot_spare", b.allocate_hot_spare),
            ("use_mirrored_cache", b.use_mirrored_cache),
            ("read_caching_enabled", b.read_caching_enabled),
            ("media_scan_enabled", b.media_scan_enabled),
            ("consistency_check_enabled", b.consistency_check_enabled),
        ] {
            if let Some(v) = v {
                other.push((name.to_string(), v.to_string()));
            }
        }
        if let Some(t) = b.bus_type {
            other.push(("bus_type".into(), t.0.short_name().to_string()));
        }
        vds_provider::HintsRequest {
            write_caching_enabled: b.write_caching_enabled,
            write_through_caching_enabled: b.write_through_caching_enabled,
            read_back_verify_enabled: b.read_back_verify_enabled,
            optimal_read_size: b.optimal_read_size,
            optimal_read_alignment: b.optimal_read_alignment,
            optimal_write_size: b.optimal_write_size,
            optimal_write_alignment: b.optimal_write_alignment,
            rebuild_priority: b.rebuild_priority,
            fast_crash_recovery_required: b.fast_crash_recovery_required,
            other,
        }
    }
}

/// A requested hint that was not applied.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NotAppliedJson {
    pub field: &'static str,
    pub reason: &'static str,
}

/// `VDS_HINTS2` of a LUN (`GET`/`PUT /v1/luns/{id}/hints`): every member as it is for the LUN
/// (those vds never applies at the value vds always has), the hint mask (GET: every member
/// vds applies; PUT: the members of the request that are in effect as asked), and the
/// requested members not applied.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HintsJson {
    pub hint_mask: u64,
    pub write_caching_enabled: bool,
    pub write_through_caching_enabled: bool,
    pub read_back_verify_enabled: bool,
    pub optimal_read_size: u32,
    pub optimal_read_alignment: u32,
    pub optimal_write_size: u32,
    pub optimal_write_alignment: u32,
    pub rebuild_priority: i16,
    pub fast_crash_recovery_required: bool,
    pub expected_maximum_size: u64,
    pub maximum_drive_count: u32,
    pub stripe_size: u32,
    pub mostly_reads: bool,
    pub optimize_for_sequential_reads: bool,
    pub optimize_for_sequential_writes: bool,
    pub remap_enabled: bool,
    pub hardware_checksum_enabled: bool,
    pub is_yankable: bool,
    pub allocate_hot_spare: bool,
    pub use_mirrored_cache: bool,
    pub read_caching_enabled: bool,
    pub media_scan_enabled: bool,
    pub consistency_check_enabled: bool,
    pub bus_type: &'static str,
    pub not_applied: Vec<NotAppliedJson>,
}

impl From<&vds_provider::AppliedHints> for HintsJson {
    fn from(a: &vds_provider::AppliedHints) -> Self {
        let h = &a.hints;
        HintsJson {
            hint_mask: a.mask,
            write_caching_enabled: h.write_caching_enabled,
            write_through_caching_enabled: h.write_through_caching_enabled,
            read_back_verify_enabled: h.read_back_verify_enabled,
            optimal_read_size: h.optimal_read_size,
            optimal_read_alignment: h.optimal_read_alignment,
            optimal_write_size: h.optimal_write_size,
            optimal_write_alignment: h.optimal_write_alignment,
            rebuild_priority: h.rebuild_priority,
            fast_crash_recovery_required: h.fast_crash_recovery_required,
            expected_maximum_size: 0,
            maximum_drive_count: 0,
            stripe_size: 0,
            mostly_reads: false,
            optimize_for_sequential_reads: false,
            optimize_for_sequential_writes: false,
            remap_enabled: false,
            hardware_checksum_enabled: false,
            is_yankable: false,
            allocate_hot_spare: false,
            use_mirrored_cache: false,
            read_caching_enabled: true,
            media_scan_enabled: false,
            consistency_check_enabled: false,
            bus_type: vds_model::StorageBusType::Iscsi.short_name(),
            not_applied: a
                .not_applied
                .iter()
                .map(|n| NotAppliedJson {
                    field: n.field,
                    reason: n.reason,
                })
                .collect(),
        }
    }
}

/// `VDS_HINTS` of a plex (`GET`/`PUT /v1/plexes/{id}/hints`, `IVdsLunPlex::QueryHints` /
/// `ApplyHints`): its LUN's hints, the `VDS_HINTS` members only (names as in [`HintsJson`]);
/// the mask has only `VDS_HINTS` bits.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlexHintsJson {
    pub hint_mask: u64,
    pub expected_maximum_size: u64,
    pub optimal_read_size: u32,
    pub optimal_read_alignment: u32,
    pub optimal_write_size: u32,
    pub optimal_write_alignment: u32,
    pub maximum_drive_count: u32,
    pub stripe_size: u32,
    pub fast_crash_recovery_required: bool,
    pub mostly_reads: bool,
    pub optimize_for_sequential_reads: bool,
    pub optimize_for_sequential_writes: bool,
    pub remap_enabled: bool,
    pub read_back_verify_enabled: bool,
    pub write_through_caching_enabled: bool,
    pub hardware_checksum_enabled: bool,
    pub is_yankable: bool,
    pub rebuild_priority: i16,
    pub not_applied: Vec<NotAppliedJson>,
}

impl From<&vds_provider::AppliedHints> for PlexHintsJson {
    /// The `VDS_HINTS` subset of the LUN's answer: one conversion, then the members copied.
    fn from(a: &vds_provider::AppliedHints) -> Self {
        let h = HintsJson::from(a);
        PlexHintsJson {
            hint_mask: h.hint_mask,
            expected_maximum_size: h.expected_maximum_size,
            optimal_read_size: h.optimal_read_size,
            optimal_read_alignment: h.optimal_read_alignment,
            optimal_write_size: h.optimal_write_size,
            optimal_write_alignment: h.optimal_write_alignment,
            maximum_drive_count: h.maximum_drive_count,
            stripe_size: h.stripe_size,
            fast_crash_recovery_required: h.fast_crash_recovery_required,
            mostly_reads: h.mostly_reads,
            optimize_for_sequential_reads: h.optimize_for_sequential_reads,
            optimize_for_sequential_writes: h.optimize_for_sequential_writes,
            remap_enabled: h.remap_enabled,
            read_back_verify_enabled: h.read_back_verify_enabled,
            write_through_caching_enabled: h.write_through_caching_enabled,
            hardware_checksum_enabled: h.hardware_checksum_enabled,
            is_yankable: h.is_yankable,
            rebuild_priority: h.rebuild_priority,
            not_applied: h.not_applied,
        }
    }
}
