//! Every enumeration and flag set of the VDS hardware-provider model with its exact VDS value
//! (as Microsoft's VDS documentation gives it), generated from one table per type by two macros.
//!
//! Each enumeration has `from_i32` / `value()`, `short_name()` (the lower-case JSON name, e.g.
//! `"not_ready"`), `vds_name()` (the SDK constant, e.g. `"VDS_LS_NOT_READY"`) and one parser,
//! [`parse`](LunStatus::parse), that accepts any of the three spellings (INTERFACE.md,
//! "Enumerations in JSON"). Flag sets are the same over `u32` bits.
//!
//! Note: `VDSBusTypeMax` (14) has the same value as `VDSBusTypeVirtual` in the SDK; only the
//! latter is a variant here so that a value maps back to exactly one name.

use std::fmt;

/// A value that is not a member of an enumeration (or flag set). Maps to `E_INVALIDARG`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a {type_name} value (expected a short name such as {example:?}, a VDS constant or its integer value)")]
pub struct EnumParseError {
    /// The SDK type name, e.g. `VDS_LUN_STATUS`.
    pub type_name: &'static str,
    /// The offending input as given.
    pub value: String,
    /// One valid short name, for the message.
    pub example: &'static str,
}

/// Shared parser: short name, VDS constant (both case-insensitive) or a decimal integer.
fn parse_with<T: Copy>(
    input: &str,
    type_name: &'static str,
    all: &[T],
    short: impl Fn(T) -> &'static str,
    vds: impl Fn(T) -> &'static str,
    from_int: impl Fn(i64) -> Option<T>,
) -> Result<T, EnumParseError> {
    let s = input.trim();
    let err = || EnumParseError {
        type_name,
        value: input.to_string(),
        example: all.first().map(|v| short(*v)).unwrap_or(""),
    };
    if let Some(v) = all
        .iter()
        .copied()
        .find(|v| short(*v).eq_ignore_ascii_case(s) || vds(*v).eq_ignore_ascii_case(s))
    {
        return Ok(v);
    }
    let int = if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        i64::from_str_radix(hex, 16).ok()
    } else {
        s.parse::<i64>().ok()
    };
    int.and_then(from_int).ok_or_else(err)
}

/// Declares one VDS enumeration: `Variant = value, "short", "VDS_CONSTANT";`.
macro_rules! vds_enum {
    ($(#[$meta:meta])* $name:ident, $type_name:literal {
        $($(#[$vmeta:meta])* $variant:ident = $value:literal, $short:literal, $vds:literal;)*
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* #[doc = concat!("`", $vds, "` = ", stringify!($value), ".")] $variant,)*
        }

        impl $name {
            /// The SDK type name.
            pub const TYPE_NAME: &'static str = $type_name;
            /// Every member, in SDK order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The member with this VDS value, if any.
            pub fn from_i32(value: i32) -> Option<Self> {
                match value {
                    $($value => Some($name::$variant),)*
                    _ => None,
                }
            }

            /// Like [`Self::from_i32`] for a wide integer (values outside `i32` are no member).
            pub fn from_i64(value: i64) -> Option<Self> {
                i32::try_from(value).ok().and_then(Self::from_i32)
            }

            /// The exact VDS value.
            pub fn value(self) -> i32 {
                match self {
                    $($name::$variant => $value,)*
                }
            }

            /// Lower-case JSON name.
            pub fn short_name(self) -> &'static str {
                match self {
                    $($name::$variant => $short,)*
                }
            }

            /// The SDK constant name.
            pub fn vds_name(self) -> &'static str {
                match self {
                    $($name::$variant => $vds,)*
                }
            }

            /// Parses a short name, a VDS constant or an integer value.
            pub fn parse(input: &str) -> Result<Self, EnumParseError> {
                parse_with(input, $type_name, Self::ALL, Self::short_name, Self::vds_name, Self::from_i64)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.short_name())
            }
        }

        impl std::str::FromStr for $name {
            type Err = EnumParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
    };
}

/// Declares one VDS flag set: `Bit = value, "short", "VDS_CONSTANT";` over `u32`.
macro_rules! vds_flags {
    ($(#[$meta:meta])* $name:ident, $type_name:literal {
        $($(#[$vmeta:meta])* $variant:ident = $value:literal, $short:literal, $vds:literal;)*
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* #[doc = concat!("`", $vds, "` = ", stringify!($value), ".")] $variant,)*
        }

        impl $name {
            /// The SDK type name.
            pub const TYPE_NAME: &'static str = $type_name;
            /// Every member, in SDK order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The member with exactly this value, if any.
            pub fn from_u32(value: u32) -> Option<Self> {
                match value {
                    $($value => Some($name::$variant),)*
                    _ => None,
                }
            }

            /// Like [`Self::from_u32`] for a wide integer.
            pub fn from_i64(value: i64) -> Option<Self> {
                u32::try_from(value).ok().and_then(Self::from_u32)
            }

            /// The exact VDS bit value.
            pub fn value(self) -> u32 {
                match self {
                    $($name::$variant => $value,)*
                }
            }

            /// Lower-case JSON name.
            pub fn short_name(self) -> &'static str {
                match self {
                    $($name::$variant => $short,)*
                }
            }

            /// The SDK constant name.
            pub fn vds_name(self) -> &'static str {
                match self {
                    $($name::$variant => $vds,)*
                }
            }

            /// Parses a short name, a VDS constant or an integer value of one flag.
            pub fn parse(input: &str) -> Result<Self, EnumParseError> {
                parse_with(input, $type_name, Self::ALL, Self::short_name, Self::vds_name, Self::from_i64)
            }

            /// The members whose bits are set in `bits` (unknown bits are ignored).
            pub fn decompose(bits: u32) -> Vec<Self> {
                Self::ALL.iter().copied().filter(|f| f.value() != 0 && bits & f.value() == f.value()).collect()
            }

            /// The short names of the set bits.
            pub fn names(bits: u32) -> Vec<&'static str> {
                Self::decompose(bits).into_iter().map(Self::short_name).collect()
            }

            /// ORs the given flags together.
            pub fn bits(flags: &[Self]) -> u32 {
                flags.iter().fold(0, |acc, f| acc | f.value())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.short_name())
            }
        }
    };
}

vds_enum! {
    /// `VDS_LUN_STATUS`.
    LunStatus, "VDS_LUN_STATUS" {
        /// reserved
        Unknown = 0, "unknown", "VDS_LS_UNKNOWN";
        /// LUN available
        Online = 1, "online", "VDS_LS_ONLINE";
        /// LUN busy
        NotReady = 2, "not_ready", "VDS_LS_NOT_READY";
        /// LUN unavailable
        Offline = 4, "offline", "VDS_LS_OFFLINE";
        /// LUN failed
        Failed = 5, "failed", "VDS_LS_FAILED";
    }
}

vds_enum! {
    /// `VDS_ISCSI_PORTAL_STATUS`.
    PortalStatus, "VDS_ISCSI_PORTAL_STATUS" {
        /// unknown
        Unknown = 0, "unknown", "VDS_IPS_UNKNOWN";
        /// portal available
        Online = 1, "online", "VDS_IPS_ONLINE";
        /// portal busy
        NotReady = 2, "not_ready", "VDS_IPS_NOT_READY";
        /// portal unavailable
        Offline = 4, "offline", "VDS_IPS_OFFLINE";
        /// portal failed
        Failed = 5, "failed", "VDS_IPS_FAILED";
    }
}

vds_enum! {
    /// `VDS_SUB_SYSTEM_STATUS`.
    SubsystemStatus, "VDS_SUB_SYSTEM_STATUS" {
        /// reserved
        Unknown = 0, "unknown", "VDS_SSS_UNKNOWN";
        /// working properly
        Online = 1, "online", "VDS_SSS_ONLINE";
        /// initializing, not yet ready
        NotReady = 2, "not_ready", "VDS_SSS_NOT_READY";
        /// unavailable: disconnected, or failed so badly it looks disconnected
        Offline = 4, "offline", "VDS_SSS_OFFLINE";
        /// failed (not merely disconnected)
        Failed = 5, "failed", "VDS_SSS_FAILED";
        /// degraded: some subcomponents (drives/controllers) failed; not on Server 2008/Vista/2003
        PartiallyManaged = 9, "partially_managed", "VDS_SSS_PARTIALLY_MANAGED";
    }
}

vds_enum! {
    /// `VDS_CONTROLLER_STATUS`.
    ControllerStatus, "VDS_CONTROLLER_STATUS" {
        Unknown = 0, "unknown", "VDS_CS_UNKNOWN";
        Online = 1, "online", "VDS_CS_ONLINE";
        NotReady = 2, "not_ready", "VDS_CS_NOT_READY";
        Offline = 4, "offline", "VDS_CS_OFFLINE";
        Failed = 5, "failed", "VDS_CS_FAILED";
        Removed = 8, "removed", "VDS_CS_REMOVED";
    }
}

vds_enum! {
    /// `VDS_PORT_STATUS`.
    PortStatus, "VDS_PORT_STATUS" {
        Unknown = 0, "unknown", "VDS_PRS_UNKNOWN";
        Online = 1, "online", "VDS_PRS_ONLINE";
        NotReady = 2, "not_ready", "VDS_PRS_NOT_READY";
        Offline = 4, "offline", "VDS_PRS_OFFLINE";
        Failed = 5, "failed", "VDS_PRS_FAILED";
        Removed = 8, "removed", "VDS_PRS_REMOVED";
    }
}

vds_enum! {
    /// `VDS_DRIVE_STATUS`.
    DriveStatus, "VDS_DRIVE_STATUS" {
        Unknown = 0, "unknown", "VDS_DRS_UNKNOWN";
        Online = 1, "online", "VDS_DRS_ONLINE";
        NotReady = 2, "not_ready", "VDS_DRS_NOT_READY";
        Offline = 4, "offline", "VDS_DRS_OFFLINE";
        Failed = 5, "failed", "VDS_DRS_FAILED";
        Removed = 8, "removed", "VDS_DRS_REMOVED";
    }
}

vds_enum! {
    /// `VDS_LUN_PLEX_STATUS`.
    LunPlexStatus, "VDS_LUN_PLEX_STATUS" {
        Unknown = 0, "unknown", "VDS_LPS_UNKNOWN";
        Online = 1, "online", "VDS_LPS_ONLINE";
        NotReady = 2, "not_ready", "VDS_LPS_NOT_READY";
        Offline = 4, "offline", "VDS_LPS_OFFLINE";
        Failed = 5, "failed", "VDS_LPS_FAILED";
    }
}

vds_enum! {
    /// `VDS_STORAGE_POOL_STATUS`.
    StoragePoolStatus, "VDS_STORAGE_POOL_STATUS" {
        Unknown = 0, "unknown", "VDS_SPS_UNKNOWN";
        Online = 1, "online", "VDS_SPS_ONLINE";
        NotReady = 2, "not_ready", "VDS_SPS_NOT_READY";
        Offline = 4, "offline", "VDS_SPS_OFFLINE";
    }
}

vds_enum! {
    /// `VDS_PATH_STATUS`.
    PathStatus, "VDS_PATH_STATUS" {
        Unknown = 0, "unknown", "VDS_MPS_UNKNOWN";
        Online = 1, "online", "VDS_MPS_ONLINE";
        Failed = 5, "failed", "VDS_MPS_FAILED";
        Standby = 7, "standby", "VDS_MPS_STANDBY";
    }
}

vds_enum! {
    /// `VDS_HEALTH`.
    Health, "VDS_HEALTH" {
        /// health cannot be determined
        Unknown = 0, "unknown", "VDS_H_UNKNOWN";
        /// fully operational and working properly (this does not mean it is available for use); the status that goes with it must not be FAILED, UNKNOWN or MISSING
        Healthy = 1, "healthy", "VDS_H_HEALTHY";
        /// a mirror is resyncing all its plexes, or a parity (RAID-5) plex is regenerating parity
        Rebuilding = 2, "rebuilding", "VDS_H_REBUILDING";
        /// configuration is stale; status must not be FAILED or UNKNOWN
        Stale = 3, "stale", "VDS_H_STALE";
        /// failing but still working (e.g. occasional I/O errors it recovers from); status must not be FAILED or UNKNOWN
        Failing = 4, "failing", "VDS_H_FAILING";
        /// one or more plexes have errors, but the object works and all plexes are online (LUN/volume only)
        FailingRedundancy = 5, "failing_redundancy", "VDS_H_FAILING_REDUNDANCY";
        /// one or more plexes have failed, at least one still works (LUN/volume only)
        FailedRedundancy = 6, "failed_redundancy", "VDS_H_FAILED_REDUNDANCY";
        /// the last working plex is failing (LUN/volume only)
        FailedRedundancyFailing = 7, "failed_redundancy_failing", "VDS_H_FAILED_REDUNDANCY_FAILING";
        /// failed; the object's status **must** then be FAILED
        Failed = 8, "failed", "VDS_H_FAILED";
        /// reserved, do not use (not supported on Server 2008/Vista/Server 2003)
        Replaced = 9, "replaced", "VDS_H_REPLACED";
        /// not failing yet, but expected to fail based on analysis of its attributes (e.g. a drive's S.M.A.R.T. data); status must not be FAILED or UNKNOWN (not supported on Server 2008/Vista/Server 2003)
        PendingFailure = 10, "pending_failure", "VDS_H_PENDING_FAILURE";
        /// not completely failed but experiencing failures. Subsystem: firmware errors, or a drive/controller/port/path sub-object failed or is failing. Controller: firmware errors, or a port/path failed or is failing. Storage pool: one or more drives failed or are failing. Status must not be UNKNOWN (not supported on Server 2008/Vista/Server 2003)
        Degraded = 11, "degraded", "VDS_H_DEGRADED";
    }
}

vds_enum! {
    /// `VDS_TRANSITION_STATE`.
    TransitionState, "VDS_TRANSITION_STATE" {
        /// reserved
        Unknown = 0, "unknown", "VDS_TS_UNKNOWN";
        /// no configuration activity in progress
        Stable = 1, "stable", "VDS_TS_STABLE";
        /// being extended
        Extending = 2, "extending", "VDS_TS_EXTENDING";
        /// being shrunk
        Shrinking = 3, "shrinking", "VDS_TS_SHRINKING";
        /// being automagically reconfigured
        Reconfiging = 4, "reconfiging", "VDS_TS_RECONFIGING";
        /// being restriped (not on Server 2008/Vista/2003)
        Restriping = 5, "restriping", "VDS_TS_RESTRIPING";
    }
}

vds_enum! {
    /// `VDS_LUN_TYPE`.
    LunType, "VDS_LUN_TYPE" {
        Unknown = 0, "unknown", "VDS_LT_UNKNOWN";
        Default = 1, "default", "VDS_LT_DEFAULT";
        FaultTolerant = 2, "fault_tolerant", "VDS_LT_FAULT_TOLERANT";
        NonFaultTolerant = 3, "non_fault_tolerant", "VDS_LT_NON_FAULT_TOLERANT";
        Simple = 10, "simple", "VDS_LT_SIMPLE";
        Span = 11, "span", "VDS_LT_SPAN";
        Stripe = 12, "stripe", "VDS_LT_STRIPE";
        Mirror = 13, "mirror", "VDS_LT_MIRROR";
        Parity = 14, "parity", "VDS_LT_PARITY";
        Raid2 = 15, "raid2", "VDS_LT_RAID2";
        Raid3 = 16, "raid3", "VDS_LT_RAID3";
        Raid4 = 17, "raid4", "VDS_LT_RAID4";
        Raid5 = 18, "raid5", "VDS_LT_RAID5";
        Raid6 = 19, "raid6", "VDS_LT_RAID6";
        Raid01 = 20, "raid01", "VDS_LT_RAID01";
        Raid03 = 21, "raid03", "VDS_LT_RAID03";
        Raid05 = 22, "raid05", "VDS_LT_RAID05";
        Raid10 = 23, "raid10", "VDS_LT_RAID10";
        Raid15 = 24, "raid15", "VDS_LT_RAID15";
        Raid30 = 25, "raid30", "VDS_LT_RAID30";
        Raid50 = 26, "raid50", "VDS_LT_RAID50";
        Raid51 = 27, "raid51", "VDS_LT_RAID51";
        Raid53 = 28, "raid53", "VDS_LT_RAID53";
        Raid60 = 29, "raid60", "VDS_LT_RAID60";
        Raid61 = 30, "raid61", "VDS_LT_RAID61";
    }
}

vds_enum! {
    /// `VDS_LUN_PLEX_TYPE`.
    LunPlexType, "VDS_LUN_PLEX_TYPE" {
        Unknown = 0, "unknown", "VDS_LPT_UNKNOWN";
        Simple = 10, "simple", "VDS_LPT_SIMPLE";
        Span = 11, "span", "VDS_LPT_SPAN";
        Stripe = 12, "stripe", "VDS_LPT_STRIPE";
        Parity = 14, "parity", "VDS_LPT_PARITY";
        Raid2 = 15, "raid2", "VDS_LPT_RAID2";
        Raid3 = 16, "raid3", "VDS_LPT_RAID3";
        Raid4 = 17, "raid4", "VDS_LPT_RAID4";
        Raid5 = 18, "raid5", "VDS_LPT_RAID5";
        Raid6 = 19, "raid6", "VDS_LPT_RAID6";
        Raid03 = 21, "raid03", "VDS_LPT_RAID03";
        Raid05 = 22, "raid05", "VDS_LPT_RAID05";
        Raid10 = 23, "raid10", "VDS_LPT_RAID10";
        Raid15 = 24, "raid15", "VDS_LPT_RAID15";
        Raid30 = 25, "raid30", "VDS_LPT_RAID30";
        Raid50 = 26, "raid50", "VDS_LPT_RAID50";
        Raid53 = 28, "raid53", "VDS_LPT_RAID53";
        Raid60 = 29, "raid60", "VDS_LPT_RAID60";
    }
}

vds_enum! {
    /// `VDS_RAID_TYPE`.
    RaidType, "VDS_RAID_TYPE" {
        Unknown = 0, "unknown", "VDS_RT_UNKNOWN";
        Raid0 = 10, "raid0", "VDS_RT_RAID0";
        Raid1 = 11, "raid1", "VDS_RT_RAID1";
        Raid2 = 12, "raid2", "VDS_RT_RAID2";
        Raid3 = 13, "raid3", "VDS_RT_RAID3";
        Raid4 = 14, "raid4", "VDS_RT_RAID4";
        Raid5 = 15, "raid5", "VDS_RT_RAID5";
        Raid6 = 16, "raid6", "VDS_RT_RAID6";
        Raid01 = 17, "raid01", "VDS_RT_RAID01";
        Raid03 = 18, "raid03", "VDS_RT_RAID03";
        Raid05 = 19, "raid05", "VDS_RT_RAID05";
        Raid10 = 20, "raid10", "VDS_RT_RAID10";
        Raid15 = 21, "raid15", "VDS_RT_RAID15";
        Raid30 = 22, "raid30", "VDS_RT_RAID30";
        Raid50 = 23, "raid50", "VDS_RT_RAID50";
        Raid51 = 24, "raid51", "VDS_RT_RAID51";
        Raid53 = 25, "raid53", "VDS_RT_RAID53";
        Raid60 = 26, "raid60", "VDS_RT_RAID60";
        Raid61 = 27, "raid61", "VDS_RT_RAID61";
    }
}

vds_enum! {
    /// `VDS_HWPROVIDER_TYPE`.
    HwProviderType, "VDS_HWPROVIDER_TYPE" {
        Unknown = 0, "unknown", "VDS_HWT_UNKNOWN";
        PciRaid = 1, "pci_raid", "VDS_HWT_PCI_RAID";
        FibreChannel = 2, "fibre_channel", "VDS_HWT_FIBRE_CHANNEL";
        Iscsi = 3, "iscsi", "VDS_HWT_ISCSI";
        Sas = 4, "sas", "VDS_HWT_SAS";
        Hybrid = 5, "hybrid", "VDS_HWT_HYBRID";
    }
}

vds_enum! {
    /// `VDS_PROVIDER_TYPE`.
    ProviderType, "VDS_PROVIDER_TYPE" {
        Unknown = 0, "unknown", "VDS_PT_UNKNOWN";
        Software = 1, "software", "VDS_PT_SOFTWARE";
        Hardware = 2, "hardware", "VDS_PT_HARDWARE";
        Virtualdisk = 3, "virtualdisk", "VDS_PT_VIRTUALDISK";
        Max = 4, "max", "VDS_PT_MAX";
    }
}

vds_enum! {
    /// `VDS_ISCSI_AUTH_TYPE`.
    IscsiAuthType, "VDS_ISCSI_AUTH_TYPE" {
        None = 0, "none", "VDS_IAT_NONE";
        Chap = 1, "chap", "VDS_IAT_CHAP";
        MutualChap = 2, "mutual_chap", "VDS_IAT_MUTUAL_CHAP";
    }
}

vds_enum! {
    /// `VDS_ISCSI_LOGIN_TYPE`.
    IscsiLoginType, "VDS_ISCSI_LOGIN_TYPE" {
        Manual = 0, "manual", "VDS_ILT_MANUAL";
        Persistent = 1, "persistent", "VDS_ILT_PERSISTENT";
        Boot = 2, "boot", "VDS_ILT_BOOT";
    }
}

vds_enum! {
    /// `VDS_IPADDRESS_TYPE`.
    IpAddressType, "VDS_IPADDRESS_TYPE" {
        Text = 0, "text", "VDS_IPT_TEXT";
        Ipv4 = 1, "ipv4", "VDS_IPT_IPV4";
        Ipv6 = 2, "ipv6", "VDS_IPT_IPV6";
        Empty = 3, "empty", "VDS_IPT_EMPTY";
    }
}

vds_enum! {
    /// `VDS_LOADBALANCE_POLICY_ENUM`.
    LoadBalancePolicy, "VDS_LOADBALANCE_POLICY_ENUM" {
        Unknown = 0, "unknown", "VDS_LBP_UNKNOWN";
        Failover = 1, "failover", "VDS_LBP_FAILOVER";
        RoundRobin = 2, "round_robin", "VDS_LBP_ROUND_ROBIN";
        RoundRobinWithSubset = 3, "round_robin_with_subset", "VDS_LBP_ROUND_ROBIN_WITH_SUBSET";
        DynLeastQueueDepth = 4, "dyn_least_queue_depth", "VDS_LBP_DYN_LEAST_QUEUE_DEPTH";
        WeightedPaths = 5, "weighted_paths", "VDS_LBP_WEIGHTED_PATHS";
        LeastBlocks = 6, "least_blocks", "VDS_LBP_LEAST_BLOCKS";
        VendorSpecific = 7, "vendor_specific", "VDS_LBP_VENDOR_SPECIFIC";
    }
}

vds_enum! {
    /// `VDS_MAINTENANCE_OPERATION`.
    MaintenanceOperation, "VDS_MAINTENANCE_OPERATION" {
        /// blink an indicator light
        BlinkLight = 1, "blink_light", "BlinkLight";
        /// sound an alarm
        BeepAlarm = 2, "beep_alarm", "BeepAlarm";
        /// spin the drive(s) down
        SpinDown = 3, "spin_down", "SpinDown";
        /// spin the drive(s) up
        SpinUp = 4, "spin_up", "SpinUp";
        /// ping
        Ping = 5, "ping", "Ping";
    }
}

vds_enum! {
    /// `VDS_ASYNC_OUTPUT_TYPE`.
    AsyncOutputType, "VDS_ASYNC_OUTPUT_TYPE" {
        Unknown = 0, "unknown", "VDS_ASYNCOUT_UNKNOWN";
        CreateVolume = 1, "create_volume", "VDS_ASYNCOUT_CREATEVOLUME";
        ExtendVolume = 2, "extend_volume", "VDS_ASYNCOUT_EXTENDVOLUME";
        ShrinkVolume = 3, "shrink_volume", "VDS_ASYNCOUT_SHRINKVOLUME";
        AddVolumePlex = 4, "add_volume_plex", "VDS_ASYNCOUT_ADDVOLUMEPLEX";
        BreakVolumePlex = 5, "break_volume_plex", "VDS_ASYNCOUT_BREAKVOLUMEPLEX";
        RemoveVolumePlex = 6, "remove_volume_plex", "VDS_ASYNCOUT_REMOVEVOLUMEPLEX";
        RepairVolumePlex = 7, "repair_volume_plex", "VDS_ASYNCOUT_REPAIRVOLUMEPLEX";
        RecoverPack = 8, "recover_pack", "VDS_ASYNCOUT_RECOVERPACK";
        ReplaceDisk = 9, "replace_disk", "VDS_ASYNCOUT_REPLACEDISK";
        CreatePartition = 10, "create_partition", "VDS_ASYNCOUT_CREATEPARTITION";
        Clean = 11, "clean", "VDS_ASYNCOUT_CLEAN";
        CreateLun = 50, "create_lun", "VDS_ASYNCOUT_CREATELUN";
        AddLunPlex = 52, "add_lun_plex", "VDS_ASYNCOUT_ADDLUNPLEX";
        RemoveLunPlex = 53, "remove_lun_plex", "VDS_ASYNCOUT_REMOVELUNPLEX";
        ExtendLun = 54, "extend_lun", "VDS_ASYNCOUT_EXTENDLUN";
        ShrinkLun = 55, "shrink_lun", "VDS_ASYNCOUT_SHRINKLUN";
        RecoverLun = 56, "recover_lun", "VDS_ASYNCOUT_RECOVERLUN";
        LoginToTarget = 60, "login_to_target", "VDS_ASYNCOUT_LOGINTOTARGET";
        LogoutFromTarget = 61, "logout_from_target", "VDS_ASYNCOUT_LOGOUTFROMTARGET";
        CreateTarget = 62, "create_target", "VDS_ASYNCOUT_CREATETARGET";
        CreatePortalGroup = 63, "create_portal_group", "VDS_ASYNCOUT_CREATEPORTALGROUP";
        DeleteTarget = 64, "delete_target", "VDS_ASYNCOUT_DELETETARGET";
        AddPortal = 65, "add_portal", "VDS_ASYNCOUT_ADDPORTAL";
        RemovePortal = 66, "remove_portal", "VDS_ASYNCOUT_REMOVEPORTAL";
        DeletePortalGroup = 67, "delete_portal_group", "VDS_ASYNCOUT_DELETEPORTALGROUP";
        Format = 101, "format", "VDS_ASYNCOUT_FORMAT";
        CreateVdisk = 200, "create_vdisk", "VDS_ASYNCOUT_CREATE_VDISK";
        AttachVdisk = 201, "attach_vdisk", "VDS_ASYNCOUT_ATTACH_VDISK";
        CompactVdisk = 202, "compact_vdisk", "VDS_ASYNCOUT_COMPACT_VDISK";
        MergeVdisk = 203, "merge_vdisk", "VDS_ASYNCOUT_MERGE_VDISK";
        ExpandVdisk = 204, "expand_vdisk", "VDS_ASYNCOUT_EXPAND_VDISK";
    }
}

vds_enum! {
    /// `VDS_OBJECT_TYPE`.
    ObjectType, "VDS_OBJECT_TYPE" {
        Unknown = 0, "unknown", "VDS_OT_UNKNOWN";
        Provider = 1, "provider", "VDS_OT_PROVIDER";
        Pack = 10, "pack", "VDS_OT_PACK";
        Volume = 11, "volume", "VDS_OT_VOLUME";
        VolumePlex = 12, "volume_plex", "VDS_OT_VOLUME_PLEX";
        Disk = 13, "disk", "VDS_OT_DISK";
        SubSystem = 30, "sub_system", "VDS_OT_SUB_SYSTEM";
        Controller = 31, "controller", "VDS_OT_CONTROLLER";
        Drive = 32, "drive", "VDS_OT_DRIVE";
        Lun = 33, "lun", "VDS_OT_LUN";
        LunPlex = 34, "lun_plex", "VDS_OT_LUN_PLEX";
        Port = 35, "port", "VDS_OT_PORT";
        Portal = 36, "portal", "VDS_OT_PORTAL";
        Target = 37, "target", "VDS_OT_TARGET";
        PortalGroup = 38, "portal_group", "VDS_OT_PORTAL_GROUP";
        StoragePool = 39, "storage_pool", "VDS_OT_STORAGE_POOL";
        Hbaport = 90, "hbaport", "VDS_OT_HBAPORT";
        InitAdapter = 91, "init_adapter", "VDS_OT_INIT_ADAPTER";
        InitPortal = 92, "init_portal", "VDS_OT_INIT_PORTAL";
        Async = 100, "async", "VDS_OT_ASYNC";
        Enum = 101, "enum", "VDS_OT_ENUM";
        Vdisk = 200, "vdisk", "VDS_OT_VDISK";
        OpenVdisk = 201, "open_vdisk", "VDS_OT_OPEN_VDISK";
    }
}

vds_enum! {
    /// `VDS_NOTIFICATION_TARGET_TYPE`.
    NotificationTargetType, "VDS_NOTIFICATION_TARGET_TYPE" {
        Unknown = 0, "unknown", "VDS_NTT_UNKNOWN";
        Pack = 10, "pack", "VDS_NTT_PACK";
        Volume = 11, "volume", "VDS_NTT_VOLUME";
        Disk = 13, "disk", "VDS_NTT_DISK";
        SubSystem = 30, "sub_system", "VDS_NTT_SUB_SYSTEM";
        Controller = 31, "controller", "VDS_NTT_CONTROLLER";
        Drive = 32, "drive", "VDS_NTT_DRIVE";
        Lun = 33, "lun", "VDS_NTT_LUN";
        Port = 35, "port", "VDS_NTT_PORT";
        Portal = 36, "portal", "VDS_NTT_PORTAL";
        Target = 37, "target", "VDS_NTT_TARGET";
        PortalGroup = 38, "portal_group", "VDS_NTT_PORTAL_GROUP";
        Partition = 60, "partition", "VDS_NTT_PARTITION";
        DriveLetter = 61, "drive_letter", "VDS_NTT_DRIVE_LETTER";
        FileSystem = 62, "file_system", "VDS_NTT_FILE_SYSTEM";
        MountPoint = 63, "mount_point", "VDS_NTT_MOUNT_POINT";
        Service = 200, "service", "VDS_NTT_SERVICE";
    }
}

vds_enum! {
    /// `VDS_RECOVER_ACTION`.
    RecoverAction, "VDS_RECOVER_ACTION" {
        Unknown = 0, "unknown", "VDS_RA_UNKNOWN";
        Refresh = 1, "refresh", "VDS_RA_REFRESH";
        Restart = 2, "restart", "VDS_RA_RESTART";
    }
}

vds_enum! {
    /// `VDS_STORAGE_BUS_TYPE`.
    StorageBusType, "VDS_STORAGE_BUS_TYPE" {
        Unknown = 0, "unknown", "VDSBusTypeUnknown";
        Scsi = 1, "scsi", "VDSBusTypeScsi";
        Atapi = 2, "atapi", "VDSBusTypeAtapi";
        Ata = 3, "ata", "VDSBusTypeAta";
        Bus1394 = 4, "1394", "VDSBusType1394";
        Ssa = 5, "ssa", "VDSBusTypeSsa";
        Fibre = 6, "fibre", "VDSBusTypeFibre";
        Usb = 7, "usb", "VDSBusTypeUsb";
        Raid = 8, "raid", "VDSBusTypeRAID";
        Iscsi = 9, "iscsi", "VDSBusTypeiScsi";
        Sas = 10, "sas", "VDSBusTypeSas";
        Sata = 11, "sata", "VDSBusTypeSata";
        Sd = 12, "sd", "VDSBusTypeSd";
        Mmc = 13, "mmc", "VDSBusTypeMmc";
        Virtual = 14, "virtual", "VDSBusTypeVirtual";
        FileBackedVirtual = 15, "file_backed_virtual", "VDSBusTypeFileBackedVirtual";
        Spaces = 16, "spaces", "VDSBusTypeSpaces";
        Nvme = 17, "nvme", "VDSBusTypeNVMe";
        Scm = 18, "scm", "VDSBusTypeScm";
        Ufs = 19, "ufs", "VDSBusTypeUfs";
        MaxReserved = 127, "max_reserved", "VDSBusTypeMaxReserved";
    }
}

vds_enum! {
    /// `VDS_STORAGE_IDENTIFIER_CODE_SET`.
    StorageIdentifierCodeSet, "VDS_STORAGE_IDENTIFIER_CODE_SET" {
        Reserved = 0, "reserved", "VDSStorageIdCodeSetReserved";
        Binary = 1, "binary", "VDSStorageIdCodeSetBinary";
        Ascii = 2, "ascii", "VDSStorageIdCodeSetAscii";
        Utf8 = 3, "utf8", "VDSStorageIdCodeSetUtf8";
    }
}

vds_enum! {
    /// `VDS_STORAGE_IDENTIFIER_TYPE`.
    StorageIdentifierType, "VDS_STORAGE_IDENTIFIER_TYPE" {
        VendorSpecific = 0, "vendor_specific", "VDSStorageIdTypeVendorSpecific";
        VendorId = 1, "vendor_id", "VDSStorageIdTypeVendorId";
        Eui64 = 2, "eui64", "VDSStorageIdTypeEUI64";
        Fcphname = 3, "fcphname", "VDSStorageIdTypeFCPHName";
        PortRelative = 4, "port_relative", "VDSStorageIdTypePortRelative";
        TargetPortGroup = 5, "target_port_group", "VDSStorageIdTypeTargetPortGroup";
        LogicalUnitGroup = 6, "logical_unit_group", "VDSStorageIdTypeLogicalUnitGroup";
        Md5LogicalUnitIdentifier = 7, "md5_logical_unit_identifier", "VDSStorageIdTypeMD5LogicalUnitIdentifier";
        ScsiNameString = 8, "scsi_name_string", "VDSStorageIdTypeScsiNameString";
    }
}

vds_enum! {
    /// `VDS_INTERCONNECT_ADDRESS_TYPE`.
    InterconnectAddressType, "VDS_INTERCONNECT_ADDRESS_TYPE" {
        Unknown = 0, "unknown", "VDS_IA_UNKNOWN";
        Fcfs = 1, "fcfs", "VDS_IA_FCFS";
        Fcph = 2, "fcph", "VDS_IA_FCPH";
        Fcph3 = 3, "fcph3", "VDS_IA_FCPH3";
        Mac = 4, "mac", "VDS_IA_MAC";
        Scsi = 5, "scsi", "VDS_IA_SCSI";
    }
}

vds_enum! {
    /// `VDS_STORAGE_POOL_TYPE`.
    StoragePoolType, "VDS_STORAGE_POOL_TYPE" {
        Unknown = 0, "unknown", "VDS_SPT_UNKNOWN";
        Primordial = 1, "primordial", "VDS_SPT_PRIMORDIAL";
        Concrete = 2, "concrete", "VDS_SPT_CONCRETE";
    }
}

vds_enum! {
    /// `VDS_HBAPORT_TYPE`.
    HbaPortType, "VDS_HBAPORT_TYPE" {
        Unknown = 1, "unknown", "VDS_HPT_UNKNOWN";
        Other = 2, "other", "VDS_HPT_OTHER";
        Notpresent = 3, "notpresent", "VDS_HPT_NOTPRESENT";
        Nport = 5, "nport", "VDS_HPT_NPORT";
        Nlport = 6, "nlport", "VDS_HPT_NLPORT";
        Flport = 7, "flport", "VDS_HPT_FLPORT";
        Fport = 8, "fport", "VDS_HPT_FPORT";
        Eport = 9, "eport", "VDS_HPT_EPORT";
        Gport = 10, "gport", "VDS_HPT_GPORT";
        Lport = 20, "lport", "VDS_HPT_LPORT";
        Ptp = 21, "ptp", "VDS_HPT_PTP";
    }
}

vds_enum! {
    /// `VDS_HBAPORT_STATUS`.
    HbaPortStatus, "VDS_HBAPORT_STATUS" {
        Unknown = 1, "unknown", "VDS_HPS_UNKNOWN";
        Online = 2, "online", "VDS_HPS_ONLINE";
        Offline = 3, "offline", "VDS_HPS_OFFLINE";
        Bypassed = 4, "bypassed", "VDS_HPS_BYPASSED";
        Diagnostics = 5, "diagnostics", "VDS_HPS_DIAGNOSTICS";
        Linkdown = 6, "linkdown", "VDS_HPS_LINKDOWN";
        Error = 7, "error", "VDS_HPS_ERROR";
        Loopback = 8, "loopback", "VDS_HPS_LOOPBACK";
    }
}

vds_flags! {
    /// `VDS_LUN_FLAG`.
    LunFlag, "VDS_LUN_FLAG" {
        LbnRemapEnabled = 1, "lbn_remap_enabled", "VDS_LF_LBN_REMAP_ENABLED";
        ReadBackVerifyEnabled = 2, "read_back_verify_enabled", "VDS_LF_READ_BACK_VERIFY_ENABLED";
        WriteThroughCachingEnabled = 4, "write_through_caching_enabled", "VDS_LF_WRITE_THROUGH_CACHING_ENABLED";
        HardwareChecksumEnabled = 8, "hardware_checksum_enabled", "VDS_LF_HARDWARE_CHECKSUM_ENABLED";
        ReadCacheEnabled = 16, "read_cache_enabled", "VDS_LF_READ_CACHE_ENABLED";
        WriteCacheEnabled = 32, "write_cache_enabled", "VDS_LF_WRITE_CACHE_ENABLED";
        MediaScanEnabled = 64, "media_scan_enabled", "VDS_LF_MEDIA_SCAN_ENABLED";
        ConsistencyCheckEnabled = 128, "consistency_check_enabled", "VDS_LF_CONSISTENCY_CHECK_ENABLED";
        Snapshot = 256, "snapshot", "VDS_LF_SNAPSHOT";
    }
}

vds_flags! {
    /// `VDS_LUN_PLEX_FLAG`.
    LunPlexFlag, "VDS_LUN_PLEX_FLAG" {
        Enabled = 1, "enabled", "VDS_LPF_LBN_REMAP_ENABLED";
    }
}

vds_flags! {
    /// `VDS_DRIVE_FLAG`.
    DriveFlag, "VDS_DRIVE_FLAG" {
        Hotspare = 1, "hotspare", "VDS_DRF_HOTSPARE";
        Assigned = 2, "assigned", "VDS_DRF_ASSIGNED";
        Unassigned = 4, "unassigned", "VDS_DRF_UNASSIGNED";
        HotspareInUse = 8, "hotspare_in_use", "VDS_DRF_HOTSPARE_IN_USE";
        HotspareStandby = 16, "hotspare_standby", "VDS_DRF_HOTSPARE_STANDBY";
    }
}

vds_flags! {
    /// `VDS_SUB_SYSTEM_FLAG`.
    SubsystemFlag, "VDS_SUB_SYSTEM_FLAG" {
        LunMaskingCapable = 1, "lun_masking_capable", "VDS_SF_LUN_MASKING_CAPABLE";
        LunPlexingCapable = 2, "lun_plexing_capable", "VDS_SF_LUN_PLEXING_CAPABLE";
        LunRemappingCapable = 4, "lun_remapping_capable", "VDS_SF_LUN_REMAPPING_CAPABLE";
        DriveExtentCapable = 8, "drive_extent_capable", "VDS_SF_DRIVE_EXTENT_CAPABLE";
        HardwareChecksumCapable = 16, "hardware_checksum_capable", "VDS_SF_HARDWARE_CHECKSUM_CAPABLE";
        RadiusCapable = 32, "radius_capable", "VDS_SF_RADIUS_CAPABLE";
        ReadBackVerifyCapable = 64, "read_back_verify_capable", "VDS_SF_READ_BACK_VERIFY_CAPABLE";
        WriteThroughCachingCapable = 128, "write_through_caching_capable", "VDS_SF_WRITE_THROUGH_CACHING_CAPABLE";
        SupportsFaultTolerantLuns = 512, "supports_fault_tolerant_luns", "VDS_SF_SUPPORTS_FAULT_TOLERANT_LUNS";
        SupportsNonFaultTolerantLuns = 1024, "supports_non_fault_tolerant_luns", "VDS_SF_SUPPORTS_NON_FAULT_TOLERANT_LUNS";
        SupportsSimpleLuns = 2048, "supports_simple_luns", "VDS_SF_SUPPORTS_SIMPLE_LUNS";
        SupportsSpanLuns = 4096, "supports_span_luns", "VDS_SF_SUPPORTS_SPAN_LUNS";
        SupportsStripeLuns = 8192, "supports_stripe_luns", "VDS_SF_SUPPORTS_STRIPE_LUNS";
        SupportsMirrorLuns = 16384, "supports_mirror_luns", "VDS_SF_SUPPORTS_MIRROR_LUNS";
        SupportsParityLuns = 32768, "supports_parity_luns", "VDS_SF_SUPPORTS_PARITY_LUNS";
        SupportsAuthChap = 65536, "supports_auth_chap", "VDS_SF_SUPPORTS_AUTH_CHAP";
        SupportsAuthMutualChap = 131072, "supports_auth_mutual_chap", "VDS_SF_SUPPORTS_AUTH_MUTUAL_CHAP";
        SupportsSimpleTargetConfig = 262144, "supports_simple_target_config", "VDS_SF_SUPPORTS_SIMPLE_TARGET_CONFIG";
        SupportsLunNumber = 524288, "supports_lun_number", "VDS_SF_SUPPORTS_LUN_NUMBER";
        SupportsMirroredCache = 1048576, "supports_mirrored_cache", "VDS_SF_SUPPORTS_MIRRORED_CACHE";
        ReadCachingCapable = 2097152, "read_caching_capable", "VDS_SF_READ_CACHING_CAPABLE";
        WriteCachingCapable = 4194304, "write_caching_capable", "VDS_SF_WRITE_CACHING_CAPABLE";
        MediaScanCapable = 8388608, "media_scan_capable", "VDS_SF_MEDIA_SCAN_CAPABLE";
        ConsistencyCheckCapable = 16777216, "consistency_check_capable", "VDS_SF_CONSISTENCY_CHECK_CAPABLE";
    }
}

vds_flags! {
    /// `VDS_SUB_SYSTEM_SUPPORTED_RAID_TYPE_FLAG`.
    SubsystemRaidTypeFlag, "VDS_SUB_SYSTEM_SUPPORTED_RAID_TYPE_FLAG" {
        Raid2Luns = 1, "raid2_luns", "VDS_SF_SUPPORTS_RAID2_LUNS";
        Raid3Luns = 2, "raid3_luns", "VDS_SF_SUPPORTS_RAID3_LUNS";
        Raid4Luns = 4, "raid4_luns", "VDS_SF_SUPPORTS_RAID4_LUNS";
        Raid5Luns = 8, "raid5_luns", "VDS_SF_SUPPORTS_RAID5_LUNS";
        Raid6Luns = 16, "raid6_luns", "VDS_SF_SUPPORTS_RAID6_LUNS";
        Raid01Luns = 32, "raid01_luns", "VDS_SF_SUPPORTS_RAID01_LUNS";
        Raid03Luns = 64, "raid03_luns", "VDS_SF_SUPPORTS_RAID03_LUNS";
        Raid05Luns = 128, "raid05_luns", "VDS_SF_SUPPORTS_RAID05_LUNS";
        Raid10Luns = 256, "raid10_luns", "VDS_SF_SUPPORTS_RAID10_LUNS";
        Raid15Luns = 512, "raid15_luns", "VDS_SF_SUPPORTS_RAID15_LUNS";
        Raid30Luns = 1024, "raid30_luns", "VDS_SF_SUPPORTS_RAID30_LUNS";
        Raid50Luns = 2048, "raid50_luns", "VDS_SF_SUPPORTS_RAID50_LUNS";
        Raid51Luns = 4096, "raid51_luns", "VDS_SF_SUPPORTS_RAID51_LUNS";
        Raid53Luns = 8192, "raid53_luns", "VDS_SF_SUPPORTS_RAID53_LUNS";
        Raid60Luns = 16384, "raid60_luns", "VDS_SF_SUPPORTS_RAID60_LUNS";
        Raid61Luns = 32768, "raid61_luns", "VDS_SF_SUPPORTS_RAID61_LUNS";
    }
}

vds_flags! {
    /// `VDS_INTERCONNECT_FLAG`.
    InterconnectFlag, "VDS_INTERCONNECT_FLAG" {
        PciRaid = 1, "pci_raid", "VDS_ITF_PCI_RAID";
        FibreChannel = 2, "fibre_channel", "VDS_ITF_FIBRE_CHANNEL";
        Iscsi = 4, "iscsi", "VDS_ITF_ISCSI";
        Sas = 8, "sas", "VDS_ITF_SAS";
    }
}

vds_flags! {
    /// `VDS_PROVIDER_FLAG`.
    ProviderFlag, "VDS_PROVIDER_FLAG" {
        Dynamic = 1, "dynamic", "VDS_PF_DYNAMIC";
        InternalHardwareProvider = 2, "internal_hardware_provider", "VDS_PF_INTERNAL_HARDWARE_PROVIDER";
        OneDiskOnlyPerPack = 4, "one_disk_only_per_pack", "VDS_PF_ONE_DISK_ONLY_PER_PACK";
        OnePackOnlineOnly = 8, "one_pack_online_only", "VDS_PF_ONE_PACK_ONLINE_ONLY";
        VolumeSpaceMustBeContiguous = 16, "volume_space_must_be_contiguous", "VDS_PF_VOLUME_SPACE_MUST_BE_CONTIGUOUS";
        SupportMirror = 32, "support_mirror", "VDS_PF_SUPPORT_MIRROR";
        SupportRaid5 = 64, "support_raid5", "VDS_PF_SUPPORT_RAID5";
        SupportDynamic1394 = 536870912, "support_dynamic_1394", "VDS_PF_SUPPORT_DYNAMIC_1394";
        SupportFaultTolerant = 1073741824, "support_fault_tolerant", "VDS_PF_SUPPORT_FAULT_TOLERANT";
        SupportDynamic = 2147483648, "support_dynamic", "VDS_PF_SUPPORT_DYNAMIC";
    }
}

vds_flags! {
    /// `VDS_VERSION_SUPPORT_FLAG`.
    VersionSupportFlag, "VDS_VERSION_SUPPORT_FLAG" {
        Speed10 = 1, "1_0", "VDS_VSF_1_0";
        Speed11 = 2, "1_1", "VDS_VSF_1_1";
        Speed20 = 4, "2_0", "VDS_VSF_2_0";
        Speed21 = 8, "2_1", "VDS_VSF_2_1";
        Speed30 = 16, "3_0", "VDS_VSF_3_0";
    }
}

vds_flags! {
    /// `VDS_ISCSI_IPSEC_FLAG`.
    IscsiIpsecFlag, "VDS_ISCSI_IPSEC_FLAG" {
        Valid = 1, "valid", "VDS_IIF_VALID";
        Ike = 2, "ike", "VDS_IIF_IKE";
        MainMode = 4, "main_mode", "VDS_IIF_MAIN_MODE";
        AggressiveMode = 8, "aggressive_mode", "VDS_IIF_AGGRESSIVE_MODE";
        PfsEnable = 16, "pfs_enable", "VDS_IIF_PFS_ENABLE";
        TransportModePreferred = 32, "transport_mode_preferred", "VDS_IIF_TRANSPORT_MODE_PREFERRED";
        TunnelModePreferred = 64, "tunnel_mode_preferred", "VDS_IIF_TUNNEL_MODE_PREFERRED";
    }
}

vds_flags! {
    /// `VDS_ISCSI_LOGIN_FLAG`.
    IscsiLoginFlag, "VDS_ISCSI_LOGIN_FLAG" {
        RequireIpsec = 1, "require_ipsec", "VDS_ILF_REQUIRE_IPSEC";
        MultipathEnabled = 2, "multipath_enabled", "VDS_ILF_MULTIPATH_ENABLED";
    }
}

vds_flags! {
    /// `VDS_PROVIDER_LBSUPPORT_FLAG`.
    LbSupportFlag, "VDS_PROVIDER_LBSUPPORT_FLAG" {
        Failover = 1, "failover", "VDS_LBF_FAILOVER";
        RoundRobin = 2, "round_robin", "VDS_LBF_ROUND_ROBIN";
        RoundRobinWithSubset = 4, "round_robin_with_subset", "VDS_LBF_ROUND_ROBIN_WITH_SUBSET";
        DynLeastQueueDepth = 8, "dyn_least_queue_depth", "VDS_LBF_DYN_LEAST_QUEUE_DEPTH";
        WeightedPaths = 16, "weighted_paths", "VDS_LBF_WEIGHTED_PATHS";
        LeastBlocks = 32, "least_blocks", "VDS_LBF_LEAST_BLOCKS";
        VendorSpecific = 64, "vendor_specific", "VDS_LBF_VENDOR_SPECIFIC";
    }
}

vds_flags! {
    /// `VDS_HBAPORT_SPEED_FLAG`.
    HbaPortSpeedFlag, "VDS_HBAPORT_SPEED_FLAG" {
        Unknown = 0, "unknown", "VDS_HSF_UNKNOWN";
        Speed1gbit = 1, "1gbit", "VDS_HSF_1GBIT";
        Speed2gbit = 2, "2gbit", "VDS_HSF_2GBIT";
        Speed10gbit = 4, "10gbit", "VDS_HSF_10GBIT";
        Speed4gbit = 8, "4gbit", "VDS_HSF_4GBIT";
        NotNegotiated = 32768, "not_negotiated", "VDS_HSF_NOT_NEGOTIATED";
    }
}

vds_enum! {
    /// `VDS_NF_*` notification event codes (`ulEvent`).
    NotificationEvent, "VDS_NF" {
        PackArrive = 1, "pack_arrive", "VDS_NF_PACK_ARRIVE";
        PackDepart = 2, "pack_depart", "VDS_NF_PACK_DEPART";
        PackModify = 3, "pack_modify", "VDS_NF_PACK_MODIFY";
        VolumeArrive = 4, "volume_arrive", "VDS_NF_VOLUME_ARRIVE";
        VolumeDepart = 5, "volume_depart", "VDS_NF_VOLUME_DEPART";
        VolumeModify = 6, "volume_modify", "VDS_NF_VOLUME_MODIFY";
        VolumeRebuildingProgress = 7, "volume_rebuilding_progress", "VDS_NF_VOLUME_REBUILDING_PROGRESS";
        DiskArrive = 8, "disk_arrive", "VDS_NF_DISK_ARRIVE";
        DiskDepart = 9, "disk_depart", "VDS_NF_DISK_DEPART";
        DiskModify = 10, "disk_modify", "VDS_NF_DISK_MODIFY";
        PartitionArrive = 11, "partition_arrive", "VDS_NF_PARTITION_ARRIVE";
        PartitionDepart = 12, "partition_depart", "VDS_NF_PARTITION_DEPART";
        PartitionModify = 13, "partition_modify", "VDS_NF_PARTITION_MODIFY";
        SubSystemArrive = 101, "sub_system_arrive", "VDS_NF_SUB_SYSTEM_ARRIVE";
        SubSystemDepart = 102, "sub_system_depart", "VDS_NF_SUB_SYSTEM_DEPART";
        SubSystemModify = 151, "sub_system_modify", "VDS_NF_SUB_SYSTEM_MODIFY";
        ControllerArrive = 103, "controller_arrive", "VDS_NF_CONTROLLER_ARRIVE";
        ControllerDepart = 104, "controller_depart", "VDS_NF_CONTROLLER_DEPART";
        ControllerModify = 350, "controller_modify", "VDS_NF_CONTROLLER_MODIFY";
        ControllerRemoved = 351, "controller_removed", "VDS_NF_CONTROLLER_REMOVED";
        DriveArrive = 105, "drive_arrive", "VDS_NF_DRIVE_ARRIVE";
        DriveDepart = 106, "drive_depart", "VDS_NF_DRIVE_DEPART";
        DriveModify = 107, "drive_modify", "VDS_NF_DRIVE_MODIFY";
        DriveRemoved = 354, "drive_removed", "VDS_NF_DRIVE_REMOVED";
        LunArrive = 108, "lun_arrive", "VDS_NF_LUN_ARRIVE";
        LunDepart = 109, "lun_depart", "VDS_NF_LUN_DEPART";
        LunModify = 110, "lun_modify", "VDS_NF_LUN_MODIFY";
        PortArrive = 121, "port_arrive", "VDS_NF_PORT_ARRIVE";
        PortDepart = 122, "port_depart", "VDS_NF_PORT_DEPART";
        PortModify = 352, "port_modify", "VDS_NF_PORT_MODIFY";
        PortRemoved = 353, "port_removed", "VDS_NF_PORT_REMOVED";
        PortalArrive = 123, "portal_arrive", "VDS_NF_PORTAL_ARRIVE";
        PortalDepart = 124, "portal_depart", "VDS_NF_PORTAL_DEPART";
        PortalModify = 125, "portal_modify", "VDS_NF_PORTAL_MODIFY";
        TargetArrive = 126, "target_arrive", "VDS_NF_TARGET_ARRIVE";
        TargetDepart = 127, "target_depart", "VDS_NF_TARGET_DEPART";
        TargetModify = 128, "target_modify", "VDS_NF_TARGET_MODIFY";
        PortalGroupArrive = 129, "portal_group_arrive", "VDS_NF_PORTAL_GROUP_ARRIVE";
        PortalGroupDepart = 130, "portal_group_depart", "VDS_NF_PORTAL_GROUP_DEPART";
        PortalGroupModify = 131, "portal_group_modify", "VDS_NF_PORTAL_GROUP_MODIFY";
        DriveLetterFree = 201, "drive_letter_free", "VDS_NF_DRIVE_LETTER_FREE";
        DriveLetterAssign = 202, "drive_letter_assign", "VDS_NF_DRIVE_LETTER_ASSIGN";
        FileSystemModify = 203, "file_system_modify", "VDS_NF_FILE_SYSTEM_MODIFY";
        FileSystemFormatProgress = 204, "file_system_format_progress", "VDS_NF_FILE_SYSTEM_FORMAT_PROGRESS";
        MountPointsChange = 205, "mount_points_change", "VDS_NF_MOUNT_POINTS_CHANGE";
        FileSystemShrinkingProgress = 206, "file_system_shrinking_progress", "VDS_NF_FILE_SYSTEM_SHRINKING_PROGRESS";
        ServiceOutOfSync = 301, "service_out_of_sync", "VDS_NF_SERVICE_OUT_OF_SYNC";
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_values_are_the_sdk_values() {
        let lun: Vec<(i32, &str)> = LunStatus::ALL
            .iter()
            .map(|s| (s.value(), s.vds_name()))
            .collect();
        assert_eq!(
            lun,
            [
                (0, "VDS_LS_UNKNOWN"),
                (1, "VDS_LS_ONLINE"),
                (2, "VDS_LS_NOT_READY"),
                (4, "VDS_LS_OFFLINE"),
                (5, "VDS_LS_FAILED")
            ]
        );
        assert_eq!(PortalStatus::Offline.vds_name(), "VDS_IPS_OFFLINE");
        assert_eq!(SubsystemStatus::PartiallyManaged.value(), 9);
        assert_eq!(ControllerStatus::Removed.value(), 8);
        assert_eq!(DriveStatus::Removed.value(), 8);
        assert_eq!(Health::FailedRedundancy.short_name(), "failed_redundancy");
        assert_eq!(Health::Degraded.value(), 11);
        assert_eq!(TransitionState::Restriping.value(), 5);
        assert_eq!(LunType::Mirror.value(), 13);
        assert_eq!(LunType::Raid61.value(), 30);
        assert_eq!(AsyncOutputType::CreateLun.value(), 50);
        assert_eq!(AsyncOutputType::DeletePortalGroup.value(), 67);
        assert_eq!(NotificationTargetType::PortalGroup.value(), 38);
        assert_eq!(HwProviderType::Iscsi.short_name(), "iscsi");
        assert_eq!(ProviderFlag::SupportDynamic.value(), 0x8000_0000);
        assert_eq!(SubsystemFlag::SupportsAuthChap.value(), 0x10000);
    }

    #[test]
    fn event_codes_of_semantics_9() {
        use NotificationEvent as N;
        let codes = [
            (N::LunArrive, 108),
            (N::LunDepart, 109),
            (N::LunModify, 110),
            (N::PortalArrive, 123),
            (N::PortalDepart, 124),
            (N::PortalModify, 125),
            (N::TargetArrive, 126),
            (N::TargetDepart, 127),
            (N::TargetModify, 128),
            (N::PortalGroupArrive, 129),
            (N::PortalGroupDepart, 130),
            (N::PortalGroupModify, 131),
            (N::SubSystemArrive, 101),
            (N::SubSystemDepart, 102),
            (N::SubSystemModify, 151),
            (N::ControllerArrive, 103),
            (N::ControllerDepart, 104),
            (N::ControllerModify, 350),
            (N::DriveArrive, 105),
            (N::DriveDepart, 106),
            (N::DriveModify, 107),
        ];
        for (e, v) in codes {
            assert_eq!(e.value(), v, "{e:?}");
        }
    }

    #[test]
    fn parse_accepts_three_spellings() {
        assert_eq!(LunStatus::parse("offline"), Ok(LunStatus::Offline));
        assert_eq!(LunStatus::parse("VDS_LS_OFFLINE"), Ok(LunStatus::Offline));
        assert_eq!(LunStatus::parse("4"), Ok(LunStatus::Offline));
        assert_eq!(LunStatus::parse("not_ready"), Ok(LunStatus::NotReady));
        assert_eq!(
            PortalStatus::parse("VDS_IPS_ONLINE"),
            Ok(PortalStatus::Online)
        );
        assert_eq!(
            Health::parse("failed_redundancy"),
            Ok(Health::FailedRedundancy)
        );
        assert_eq!(LunType::parse("simple"), Ok(LunType::Simple));
        let e = LunStatus::parse("3").unwrap_err();
        assert_eq!(e.type_name, "VDS_LUN_STATUS");
        assert_eq!(e.value, "3");
        assert!(e.to_string().contains("VDS_LUN_STATUS"));
        assert!(LunStatus::parse("VDS_IPS_ONLINE").is_err());
        assert!(LunStatus::parse("99999999999").is_err());
        assert!(LunStatus::parse("").is_err());
    }

    #[test]
    fn every_enum_round_trips() {
        fn check<T: Copy + PartialEq + std::fmt::Debug>(
            all: &[T],
            value: impl Fn(T) -> i64,
            from: impl Fn(i64) -> Option<T>,
            parse: impl Fn(&str) -> Result<T, EnumParseError>,
            short: impl Fn(T) -> &'static str,
            vds: impl Fn(T) -> &'static str,
        ) {
            for v in all.iter().copied() {
                assert_eq!(from(value(v)), Some(v));
                assert_eq!(parse(short(v)), Ok(v));
                assert_eq!(parse(vds(v)), Ok(v));
                assert_eq!(parse(&value(v).to_string()), Ok(v));
                assert_eq!(short(v), short(v).to_ascii_lowercase());
            }
        }
        macro_rules! e {
            ($($t:ty),*) => {$(
                check(<$t>::ALL, |v| v.value() as i64, <$t>::from_i64, <$t>::parse, <$t>::short_name, <$t>::vds_name);
            )*};
        }
        e!(
            LunStatus,
            PortalStatus,
            SubsystemStatus,
            ControllerStatus,
            PortStatus,
            DriveStatus,
            LunPlexStatus,
            StoragePoolStatus,
            PathStatus,
            Health,
            TransitionState,
            LunType,
            LunPlexType,
            RaidType,
            HwProviderType,
            ProviderType,
            IscsiAuthType,
            IscsiLoginType,
            IpAddressType,
            LoadBalancePolicy,
            MaintenanceOperation,
            AsyncOutputType,
            ObjectType,
            NotificationTargetType,
            RecoverAction,
            StorageBusType,
            StorageIdentifierCodeSet,
            StorageIdentifierType,
            InterconnectAddressType,
            StoragePoolType,
            HbaPortType,
            HbaPortStatus,
            NotificationEvent
        );
        e!(
            LunFlag,
            LunPlexFlag,
            DriveFlag,
            SubsystemFlag,
            SubsystemRaidTypeFlag,
            InterconnectFlag,
            ProviderFlag,
            VersionSupportFlag,
            IscsiIpsecFlag,
            IscsiLoginFlag,
            LbSupportFlag,
            HbaPortSpeedFlag
        );
        assert_eq!(
            SubsystemFlag::names(0x1 | 0x10000),
            ["lun_masking_capable", "supports_auth_chap"]
        );
    }
}
