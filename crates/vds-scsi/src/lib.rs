//! The SCSI engine: SPC-4 (common) and SBC-3 (block) over a [`vds_backstore::BackingStore`].
//!
//! Sans-IO with respect to the transport: this crate knows nothing of iSCSI. The transport hands
//! a fully assembled command (CDB plus all Data-Out) to [`LunMap::execute`] and gets back a
//! status, sense and Data-In. Every protocol failure is an *outcome* (CHECK CONDITION + sense),
//! never a Rust `Err` and never a panic.
//!
//! Seam summary (kept stable; other crates are written against it):
//! - [`ItNexus`]: who is asking (one per iSCSI session).
//! - [`LogicalUnit`]: one LUN's engine: status gate, unit attentions per nexus, reservations,
//!   the backing store. Created by the provider, shared by every target that maps it.
//! - [`LunMap`]: one target's LUN numbers → logical units with masks; REPORT LUNS and unknown
//!   LUNs are answered here.

pub mod sense;

use std::sync::Arc;

/// One I_T nexus: an initiator port talking to a target port (for iSCSI, one session).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ItNexus {
    /// Unique per nexus for the life of the process (the transport allocates it).
    pub id: u64,
    /// Initiator name (IQN/EUI/NAA), used for LUN masking.
    pub initiator_name: String,
    /// SCSI initiator port name, for iSCSI `"<iqn>,i,0x<isid 12 hex>"`; PR registrations key on it.
    pub initiator_port: String,
    /// SCSI target port name, for iSCSI `"<target iqn>,t,0x<tpgt 4 hex>"`.
    pub target_port: String,
    /// Relative target port identifier (the portal group tag), for VPD 83 and PR.
    pub relative_target_port: u16,
}

/// Task attribute from the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TaskAttr {
    #[default]
    Simple,
    Ordered,
    HeadOfQueue,
    Aca,
}

/// A fully assembled command.
#[derive(Debug)]
pub struct ScsiCommand<'a> {
    /// The CDB, 6 to 260 bytes (extended CDBs arrive through the AHS).
    pub cdb: &'a [u8],
    /// Every byte of Data-Out the initiator sent (may be shorter or longer than the CDB asks:
    /// the engine checks and answers with the right sense/residual).
    pub data_out: &'a [u8],
    /// Expected Data-In transfer length from the transport (iSCSI EDTL for reads).
    pub expected_in_len: u32,
    pub attr: TaskAttr,
}

/// SAM status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ScsiStatus {
    Good = 0x00,
    CheckCondition = 0x02,
    ConditionMet = 0x04,
    Busy = 0x08,
    ReservationConflict = 0x18,
    TaskSetFull = 0x28,
    AcaActive = 0x30,
    TaskAborted = 0x40,
}

/// What the engine answers. Data-In goes into the caller's buffer (reused across commands);
/// it may be longer than `expected_in_len` (the transport truncates and reports the residual).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScsiOutcome {
    pub status: ScsiStatus,
    /// Sense data in the format the LU's D_SENSE selects (fixed 0x70 or descriptor 0x72).
    pub sense: Option<Vec<u8>>,
}

impl ScsiOutcome {
    pub const GOOD: ScsiOutcome = ScsiOutcome {
        status: ScsiStatus::Good,
        sense: None,
    };
}

/// Status of a logical unit as the data path enforces it (the VDS LUN status, minus UNKNOWN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LuState {
    Online,
    /// 02/04/01 LOGICAL UNIT IS IN PROCESS OF BECOMING READY.
    NotReady,
    /// 02/04/12 LOGICAL UNIT NOT READY, OFFLINE.
    Offline,
    /// 02/04/03 LOGICAL UNIT NOT READY, MANUAL INTERVENTION REQUIRED.
    Failed,
}

/// Whom a LUN is visible to (the VDS unmasking list, already parsed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mask {
    /// `"*"`.
    Everyone,
    /// `""`.
    Nobody,
    /// Initiator names, compared case-insensitively.
    Only(Vec<String>),
}

impl Mask {
    pub fn allows(&self, initiator: &str) -> bool {
        match self {
            Mask::Everyone => true,
            Mask::Nobody => false,
            Mask::Only(names) => names.iter().any(|n| n.eq_ignore_ascii_case(initiator)),
        }
    }
}

/// Callbacks from a logical unit to whoever manages it (the provider). Called from I/O threads;
/// implementations must not block.
pub trait LuEvents: Send + Sync {
    /// The backing store failed an I/O; the LU has already switched itself to
    /// [`LuState::Failed`]. Called once per transition to FAILED.
    fn failed(&self, lu: uuid::Uuid, error: &std::io::Error);
    /// Persistent reservation state with APTPL changed; `state` is an opaque blob to keep
    /// durably and hand back through `LuConfig::pr_state` on the next start.
    fn persist_reservations(&self, lu: uuid::Uuid, state: &[u8]);
}

/// One entry of a target's LUN map.
#[derive(Clone)]
pub struct LunEntry {
    pub number: u64,
    pub lu: Arc<LogicalUnit>,
    pub mask: Mask,
}

/// One target's LUNs. Immutable; the provider publishes a new one on every change.
#[derive(Clone, Default)]
pub struct LunMap {
    pub entries: Vec<LunEntry>,
}

mod lu;
pub use lu::{LogicalUnit, LuConfig};
