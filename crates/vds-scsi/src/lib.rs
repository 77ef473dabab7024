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
//!
//! Layout: `ops` is the command table (opcodes, CDB usage masks, gating);
//! `spc/` holds the SPC-4 commands (INQUIRY, MODE, reservations, EXTENDED COPY, ...), `sbc/`
//! the SBC-3 ones (READ/WRITE family, capacity, provisioning); [`sense`] is the one place sense
//! bytes are built. There is no process-wide index of LUs: EXTENDED COPY resolves a designator
//! only through the requesting nexus's [`LunMap`] (BEHAVIOUR §13).
//!
//! For the transport:
//! - execute through [`LunMap::dispatch`] (masking, REPORT LUNS, unknown LUNs) in a [`Mode`]:
//!   on a thread that must not wait, [`Mode::Inline`] runs the commands the table marks inline
//!   ([`may_run_inline`]) through the store's non-blocking methods and answers [`WouldBlock`]
//!   for anything that would wait; the transport then dispatches it again in
//!   [`Mode::Blocking`] on a thread that may wait. [`LunMap::execute`] is the blocking call;
//! - on session end / reinstatement call [`LunMap::nexus_lost`]; on LOGICAL UNIT RESET
//!   [`LunMap::reset_lun`]; on TARGET WARM/COLD RESET [`LunMap::target_reset`];
//! - residuals: the engine returns Data-In up to the CDB's allocation length (the transport
//!   truncates to EDTL); for Data-Out, [`Executed::data_out_len`] is the length the CDB states
//!   (found during the dispatch, [`Executed::write_residual`] turns it into the residual).
//!   A write whose Data-Out is shorter than the CDB states writes what was sent (GOOD; the
//!   transport reports the overflow residual); a longer one writes what the CDB states.

pub mod alua;
mod cdb;
pub mod identity;
mod ops;
mod sbc;
pub mod sense;
mod spc;
#[cfg(test)]
mod tests;

pub use alua::{AccessState, AccessStates, TargetPortGroups};
pub use ops::{cdb_transfer_len, may_run_inline};

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
    /// The ALUA target port group of the target port (its controller's group id, BEHAVIOUR.md
    /// §14): which of the LU's [`AccessStates`] applies to this nexus.
    pub target_port_group: u16,
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

/// How a command may run: whether its handler may wait for the backing store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// On a thread that may wait: the store's blocking methods.
    Blocking,
    /// On a thread that must not wait (the transport's network thread): only commands the
    /// table marks inline ([`may_run_inline`]), through the store's `try_` methods; anything
    /// that would wait is answered [`WouldBlock`] instead.
    Inline,
}

/// The answer of a [`Mode::Inline`] dispatch that would have had to wait: nothing happened
/// that matters (a refused read may have filled part of the Data-In buffer, a refused write
/// may have written the same bytes once); dispatch the command again in [`Mode::Blocking`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WouldBlock;

/// What [`LunMap::start`] produced: the command's answer, or the store operation it waits
/// for.
pub enum Started {
    Done(Executed),
    Pending(Pending),
}

/// A command started by [`LunMap::start`] whose checks are done and whose one store
/// operation is left: the caller [`Pending::submit`]s it to the store's asynchronous I/O and,
/// when the store's callback hands the result back, ends it with [`Pending::finish`] on its
/// own thread. Nobody waits in between. Until it ends (or is dropped) the command counts as
/// in flight on its LU, so OFFLINE and write protection wait for it.
pub struct Pending {
    held: Held,
    io: cdb::StoreIo,
    data_out_len: Option<u64>,
}

/// A pending command's place among its LU's commands in flight, given up on drop.
struct Held(Arc<LogicalUnit>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.leave_inflight();
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pending({:?})", self.io)
    }
}

impl Pending {
    /// The store operation.
    pub fn op(&self) -> vds_backstore::AioOp {
        self.io.op
    }

    /// Hands the operation to the store's asynchronous I/O with its buffers (`data_out`: the
    /// command's Data-Out; `data_in`: the buffer a read fills). `done` is called once, from the
    /// store's thread, with this command, the result and the buffers: it must only hand them
    /// to the thread that calls [`Pending::finish`]. `Err` (nothing submitted, buffers back)
    /// when the store no longer offers asynchronous I/O (a fault filter was installed since
    /// the command started): nothing that matters has happened, so the caller runs the
    /// command again in [`Mode::Blocking`] (as after [`WouldBlock`]).
    pub fn submit(
        self,
        bufs: vds_backstore::AioBufs,
        done: impl FnOnce(Pending, Result<(), vds_backstore::AioError>, vds_backstore::AioBufs)
            + Send
            + 'static,
    ) -> Result<(), (Pending, vds_backstore::AioBufs)> {
        let lu = self.held.0.clone();
        let Some(store) = lu.backing().aio() else {
            return Err((self, bufs));
        };
        let op = self.io.op;
        store.submit(op, bufs, Box::new(move |r, b| done(self, r, b)));
        Ok(())
    }

    /// Runs the operation through the store's blocking methods, on a thread that may wait:
    /// for a store that stopped offering asynchronous I/O ([`Pending::submit`] answered
    /// `Err`) while the command was already past its checks. Then [`Pending::finish`].
    pub fn run_blocking(
        &self,
        bufs: &mut vds_backstore::AioBufs,
    ) -> Result<(), vds_backstore::AioError> {
        use vds_backstore::{AioError, AioOp};
        let lu = &self.held.0;
        let store = lu.backing();
        let io = AioError::Io;
        match self.io.op {
            AioOp::Read { offset, len } => store.read_into(&mut bufs.data_in, len, offset),
            AioOp::Write { offset, len } => store.write_at(&bufs.data_out[..len], offset, false),
            AioOp::Flush => store.flush(),
            AioOp::Discard { offset, len } => store.unmap(offset, len),
            AioOp::WriteSame { offset, len, block } => {
                let mut at = 0;
                while at < len {
                    store
                        .write_at(&bufs.data_out[..block], offset + at, false)
                        .map_err(io)?;
                    at += block as u64;
                }
                Ok(())
            }
            AioOp::CompareAndWrite { offset, len } => {
                let _atomic = lu.atomic_lock.lock();
                let mut cur = vec![0u8; len];
                store.read_at(&mut cur, offset).map_err(io)?;
                let (verify, data) = bufs.data_out.split_at(len);
                if let Some(i) = cur.iter().zip(verify).position(|(a, b)| a != b) {
                    return Err(AioError::Miscompare(i as u64));
                }
                store.write_at(&data[..len], offset, false)
            }
        }
        .map_err(io)
    }

    /// The command's end once its operation completed: its answer (Data-In of a read in
    /// `data_in`, the buffer the operation filled), or, after a write with FUA, the flush
    /// that must complete first, to submit in turn.
    pub fn finish(
        self,
        result: Result<(), vds_backstore::AioError>,
        data_in: &mut Vec<u8>,
    ) -> Result<Executed, Pending> {
        use vds_backstore::{AioError, AioOp};
        let lu = self.held.0.clone();
        let op = self.io.op;
        if !matches!(op, AioOp::Read { .. }) || result.is_err() {
            data_in.clear();
        }
        let fail = match result {
            Ok(()) if self.io.flush_after => {
                return Err(Pending {
                    io: cdb::StoreIo {
                        op: AioOp::Flush,
                        flush_after: false,
                    },
                    ..self
                })
            }
            Ok(()) => None,
            Err(AioError::Io(err)) => Some(cdb::Fail::Io {
                write: op.writes(),
                err,
            }),
            Err(AioError::Miscompare(at)) => Some(sbc::rw::miscompare(at as usize)),
        };
        let outcome = match fail {
            None => ScsiOutcome::GOOD,
            Some(f) => match lu.outcome(f) {
                Ok(o) => o,
                Err(_) => unreachable!("a store failure is an outcome"),
            },
        };
        Ok(Executed {
            outcome,
            data_out_len: self.data_out_len,
        })
    }
}

/// What one dispatch of a command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executed {
    pub outcome: ScsiOutcome,
    /// Bytes of data the CDB states it moves ([`cdb_transfer_len`] at the block size of the
    /// LU the command ran on); `None` without such an LU or for commands without a stated
    /// transfer length.
    pub data_out_len: Option<u64>,
}

impl Executed {
    /// For a command without Data-In whose transport expected `edtl` bytes: how much of it
    /// the CDB does not use (positive: underflow) or wants beyond it (negative: overflow);
    /// 0 when the CDB states no transfer length.
    pub fn write_residual(&self, edtl: u32) -> i64 {
        match self.data_out_len {
            Some(want) => i64::from(edtl) - want.min(i64::MAX as u64) as i64,
            None => 0,
        }
    }
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
    /// Persistent reservation state with APTPL is about to change; `state` is an opaque blob
    /// to keep durably and hand back through `LuConfig::pr_state` on the next start. `Ok`
    /// means it is durable; an `Err` means it is not stored and never will be (a late write is
    /// cancelled), so the PERSISTENT RESERVE OUT fails and the LU keeps its old state. May
    /// block (boundedly): PERSISTENT RESERVE OUT runs on the blocking pool.
    fn persist_reservations(&self, lu: uuid::Uuid, state: &[u8]) -> std::io::Result<()>;
    /// A MODE SELECT changed the caching page's WCE bit (the LUN's write-back cache, the
    /// `write_caching_enabled` hint of BEHAVIOUR.md §14): the manager stores it so that it
    /// shows in its API and survives a restart. Called after the change took effect; must not
    /// block. A manager that keeps no such setting ignores it (the default).
    fn write_cache_changed(&self, _lu: uuid::Uuid, _enabled: bool) {}
    /// Persistent reservations kept by several gateways at once (docs/SCALEOUT.md "Persistent
    /// reservations across gateways"): a PERSISTENT RESERVE OUT computed `change` from the
    /// shared state of version `change.base`; the manager stores it by compare-and-set and
    /// answers once every gateway serving the LU holds it (or has been fenced). May block
    /// (boundedly): PERSISTENT RESERVE OUT runs on the blocking pool. A manager whose
    /// reservations are this LU's own answers [`SharedPr::NotShared`] (the default), and the
    /// LU keeps them itself (APTPL through [`LuEvents::persist_reservations`]).
    fn share_reservations(&self, _lu: uuid::Uuid, _change: &PrChange<'_>) -> SharedPr {
        SharedPr::NotShared
    }
    /// Whether other gateways serve this LU too, so that a LOGICAL UNIT RESET here must reach
    /// their I_T nexuses (docs/SCALEOUT.md). Must not block. Default: no.
    fn shares_resets(&self) -> bool {
        false
    }
    /// Tells the other gateways of a LOGICAL UNIT RESET of `lu`, waiting (boundedly) until
    /// each has raised its unit attention. May block: it runs on the blocking pool, and the
    /// task management function is answered after it.
    fn reset_elsewhere(&self, _lu: uuid::Uuid) {}
}

/// A change of a LU's persistent reservations, for [`LuEvents::share_reservations`].
pub struct PrChange<'a> {
    /// The version of the shared state the change was computed from.
    pub base: u64,
    /// The new state (the opaque blob of `LuConfig::pr_state`; never empty).
    pub state: &'a [u8],
    /// The unit attentions the change raises, on whichever gateway each I_T nexus is.
    pub uas: &'a [PrUnitAttention],
}

/// A unit attention raised by a reservation change for one I_T nexus, by its port names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrUnitAttention {
    pub initiator_port: String,
    pub target_port: String,
    /// Additional sense code and qualifier.
    pub asc: u8,
    pub ascq: u8,
}

/// The answer of [`LuEvents::share_reservations`].
#[derive(Debug)]
pub enum SharedPr {
    /// This LU's reservations are its own.
    NotShared,
    /// Stored as `version`; every gateway serving the LU holds it.
    Committed { version: u64 },
    /// Another gateway changed the state first: it is `state` at `version` (empty: none).
    /// The LU installs it and computes the command again.
    Stale { version: u64, state: Vec<u8> },
    /// Not stored (the shared store cannot be reached): the command fails, nothing changed.
    Failed(std::io::Error),
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
    /// The target's ports by ALUA target port group (REPORT TARGET PORT GROUPS answers with
    /// these, the same through every port of the target).
    pub port_groups: TargetPortGroups,
}

mod lu;
pub use lu::{LogicalUnit, LuConfig, LuHints};
pub use vds_backstore::{AioBufs, AioError, AioOp};

/// Encode a LUN number as the 8-byte LUN field: peripheral device addressing below 256, flat
/// space addressing below 16384, extended flat space (0xD2) below 2^24. Larger numbers are
/// not addressable and are returned as their raw big-endian bytes.
pub fn encode_lun(n: u64) -> [u8; 8] {
    let mut b = [0u8; 8];
    if n < 256 {
        b[1] = n as u8;
    } else if n < 0x4000 {
        b[0] = 0x40 | (n >> 8) as u8;
        b[1] = n as u8;
    } else if n < 1 << 24 {
        b[0] = 0xD2;
        b[1] = (n >> 16) as u8;
        b[2] = (n >> 8) as u8;
        b[3] = n as u8;
    } else {
        b = n.to_be_bytes();
    }
    b
}

/// Decode an 8-byte LUN field into a LUN number (the inverse of [`encode_lun`]). Forms that
/// are not single-level peripheral/flat/extended-flat addressing decode to their raw 64-bit
/// value, which names no configured LUN (so the command gets 05/25/00).
///
/// Peripheral device addressing with a non-zero bus identifier (`01 00` ...) decodes to
/// `bus << 8 | lun`: that is how Linux's `int_to_scsilun` and libiscsi write LUN numbers of
/// 256 and more (an `iscsi://.../256` URL sends `01 00`), and in SAM's strict reading it names a
/// device behind another bus, which a vds target never has, so the reading is unambiguous.
pub fn decode_lun(b: [u8; 8]) -> u64 {
    let raw = u64::from_be_bytes(b);
    match b[0] >> 6 {
        0 if b[2..].iter().all(|&x| x == 0) => (u64::from(b[0]) << 8) | u64::from(b[1]),
        1 if b[2..].iter().all(|&x| x == 0) => (u64::from(b[0] & 0x3F) << 8) | u64::from(b[1]),
        3 if b[0] == 0xD2 && b[4..].iter().all(|&x| x == 0) => {
            (u64::from(b[1]) << 16) | (u64::from(b[2]) << 8) | u64::from(b[3])
        }
        _ => raw,
    }
}

impl LunMap {
    /// The logical unit at `lun`, if `initiator` may see it.
    pub fn lookup(&self, initiator: &str, lun: u64) -> Option<&Arc<LogicalUnit>> {
        // The provider publishes entries sorted by number: a binary search per command. A map
        // built in another order (or a number listed twice with different masks) is still
        // answered right by the linear search behind it, which only misses pay for.
        let i = self.entries.partition_point(|e| e.number < lun);
        match self.entries.get(i) {
            Some(e) if e.number == lun && e.mask.allows(initiator) => Some(&e.lu),
            _ => self
                .entries
                .iter()
                .find(|e| e.number == lun && e.mask.allows(initiator))
                .map(|e| &e.lu),
        }
    }

    /// LUN numbers `initiator` may see, ascending.
    pub fn visible(&self, initiator: &str) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .entries
            .iter()
            .filter(|e| e.mask.allows(initiator))
            .map(|e| e.number)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Execute a command addressed to `lun` by `nexus`: LUN masking, REPORT LUNS (at any LUN
    /// number, listing only visible LUNs), and the answers for LUNs that are not there
    /// (INQUIRY: peripheral qualifier 011b; REQUEST SENSE: 05/25/00 as data; anything else:
    /// CHECK CONDITION 05/25/00). Data-In replaces the contents of `data_in`. Waits for the
    /// backing store: [`LunMap::dispatch`] in [`Mode::Blocking`].
    pub fn execute(
        &self,
        nexus: &ItNexus,
        lun: u64,
        cmd: &ScsiCommand<'_>,
        data_in: &mut Vec<u8>,
    ) -> ScsiOutcome {
        match self.dispatch(Mode::Blocking, nexus, lun, cmd, data_in) {
            Ok(done) => done.outcome,
            Err(WouldBlock) => unreachable!("only Mode::Inline answers WouldBlock"),
        }
    }

    /// [`LunMap::execute`] in `mode`: the one dispatch of a command, which also finds the
    /// transfer length its CDB states (for the transport's residual). In [`Mode::Inline`] a
    /// command that would wait, or that the table does not mark inline, is `Err(WouldBlock)`.
    pub fn dispatch(
        &self,
        mode: Mode,
        nexus: &ItNexus,
        lun: u64,
        cmd: &ScsiCommand<'_>,
        data_in: &mut Vec<u8>,
    ) -> Result<Executed, WouldBlock> {
        match self.dispatch_any(mode, false, nexus, lun, cmd, data_in)? {
            Started::Done(done) => Ok(done),
            Started::Pending(_) => unreachable!("only LunMap::start hands I/O back"),
        }
    }

    /// [`LunMap::dispatch`] in [`Mode::Inline`] for a caller that can be woken by a store's
    /// asynchronous I/O: a command the table marks `aio` on a store that has it (RBD) hands
    /// its store operation back as [`Started::Pending`] (READ, WRITE, SYNCHRONIZE CACHE,
    /// COMPARE AND WRITE, WRITE SAME) after every check; anything else is as in
    /// [`Mode::Inline`].
    pub fn start(
        &self,
        nexus: &ItNexus,
        lun: u64,
        cmd: &ScsiCommand<'_>,
        data_in: &mut Vec<u8>,
    ) -> Result<Started, WouldBlock> {
        self.dispatch_any(Mode::Inline, true, nexus, lun, cmd, data_in)
    }

    fn dispatch_any(
        &self,
        mode: Mode,
        aio: bool,
        nexus: &ItNexus,
        lun: u64,
        cmd: &ScsiCommand<'_>,
        data_in: &mut Vec<u8>,
    ) -> Result<Started, WouldBlock> {
        data_in.clear();
        let lu = self.lookup(&nexus.initiator_name, lun);
        if let Some(lu) = lu {
            if cmd.cdb.first() != Some(&0xA0) {
                let data_out_len = cdb_transfer_len(cmd.cdb, lu.block_size());
                return match lu.execute_any(Some(self), nexus, cmd, data_in, mode, aio) {
                    Ok(outcome) => Ok(Started::Done(Executed {
                        outcome,
                        data_out_len,
                    })),
                    Err(lu::Deferred::WouldBlock) => Err(WouldBlock),
                    Err(lu::Deferred::Pending(io)) => Ok(Started::Pending(Pending {
                        held: Held(lu.clone()),
                        io,
                        data_out_len,
                    })),
                };
            }
        }
        if mode == Mode::Inline && !may_run_inline(cmd.cdb) {
            return Err(WouldBlock);
        }
        Ok(Started::Done(Executed {
            outcome: self.answer_here(lu, nexus, cmd, data_in),
            data_out_len: None,
        }))
    }

    /// The commands the map answers itself: REPORT LUNS, and every command to a LUN that is
    /// not there (or not visible to the nexus).
    fn answer_here(
        &self,
        lu: Option<&Arc<LogicalUnit>>,
        nexus: &ItNexus,
        cmd: &ScsiCommand<'_>,
        data_in: &mut Vec<u8>,
    ) -> ScsiOutcome {
        let opcode = cmd.cdb.first().copied();
        if opcode == Some(0xA0) {
            let outcome = self.report_luns(nexus, cmd, data_in);
            let descriptor = lu.is_some_and(|l| l.descriptor_sense());
            return match outcome {
                Ok(()) => ScsiOutcome::GOOD,
                Err(s) => {
                    data_in.clear();
                    ScsiOutcome {
                        status: ScsiStatus::CheckCondition,
                        sense: Some(s.encode(descriptor)),
                    }
                }
            };
        }
        let not_supported = sense::Sense::illegal(sense::LOGICAL_UNIT_NOT_SUPPORTED);
        match opcode {
            Some(0x12) if cmd.cdb.len() >= 6 && cmd.cdb[1] & 0x01 == 0 && cmd.cdb[2] == 0 => {
                spc::inquiry::no_lun(data_in);
                let alloc = u16::from_be_bytes([cmd.cdb[3], cmd.cdb[4]]) as usize;
                data_in.truncate(alloc);
                ScsiOutcome::GOOD
            }
            Some(0x03) if cmd.cdb.len() >= 6 => {
                data_in.extend_from_slice(&not_supported.encode(cmd.cdb[1] & 0x01 != 0));
                data_in.truncate(cmd.cdb[4] as usize);
                ScsiOutcome::GOOD
            }
            _ => ScsiOutcome {
                status: ScsiStatus::CheckCondition,
                sense: Some(not_supported.encode(false)),
            },
        }
    }

    fn report_luns(
        &self,
        nexus: &ItNexus,
        cmd: &ScsiCommand<'_>,
        data_in: &mut Vec<u8>,
    ) -> Result<(), sense::Sense> {
        let Some(op) = ops::find(0xA0, None) else {
            return Err(sense::Sense::illegal(sense::INVALID_COMMAND_OPERATION_CODE));
        };
        if cmd.cdb.len() < op.usage.len() {
            return Err(sense::Sense::invalid_cdb(cmd.cdb.len() as u16, None));
        }
        let cdb = &cmd.cdb[..op.usage.len()];
        if let Err((byte, bit)) = ops::check_usage(op, cdb) {
            return Err(sense::Sense::invalid_cdb(byte, Some(bit)));
        }
        let luns = self.visible(&nexus.initiator_name);
        match spc::misc::report_luns(cdb::Cdb(cdb), luns.into_iter(), data_in) {
            Ok(()) => Ok(()),
            Err(cdb::Fail::Check(s)) => Err(s),
            Err(_) => Err(sense::Sense::illegal(sense::INVALID_FIELD_IN_CDB)),
        }
    }

    /// The LU with this NAA designator among those `initiator` may see through this map (the
    /// one way EXTENDED COPY resolves a copy target: never across targets or masks).
    pub(crate) fn visible_by_naa(
        &self,
        initiator: &str,
        naa: &[u8; 16],
    ) -> Option<&Arc<LogicalUnit>> {
        self.entries
            .iter()
            .find(|e| e.lu.naa() == *naa && e.mask.allows(initiator))
            .map(|e| &e.lu)
    }

    /// I_T nexus loss on every LU of the map.
    pub fn nexus_lost(&self, nexus_id: u64) {
        for e in &self.entries {
            e.lu.nexus_lost(nexus_id);
        }
    }

    /// LOGICAL UNIT RESET of `lun` requested by nexus `by`; `false` if there is no such LUN.
    pub fn reset_lun(&self, lun: u64, by: Option<u64>) -> bool {
        let mut found = false;
        for e in self.entries.iter().filter(|e| e.number == lun) {
            e.lu.reset(by);
            found = true;
        }
        found
    }

    /// TARGET WARM/COLD RESET: every LU of the map is reset.
    pub fn target_reset(&self, by: Option<u64>) {
        for e in &self.entries {
            e.lu.reset(by);
        }
    }
}
