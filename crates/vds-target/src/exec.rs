//! The one place the data path calls into the SCSI engine: command execution (in the mode the
//! engine's command table allows, with the write residual from the same dispatch; started
//! with the store operation handed back as pending on a store with asynchronous I/O), the
//! logical-unit side of task management, and I_T nexus loss.

use std::sync::Arc;

use vds_iscsi::codes::{tmf, tmf_response};
use vds_iscsi::conn::Command;
use vds_iscsi::pdu::TaskAttr as WireAttr;
use vds_scsi::sense::{self, key, Sense};
use vds_scsi::{
    Executed, ItNexus, LunMap, Mode, Pending, ScsiCommand, ScsiOutcome, ScsiStatus, Started,
    TaskAttr, WouldBlock,
};

/// The LUN number from the 8-byte iSCSI LUN field.
pub(crate) fn lun_number(lun: u64) -> u64 {
    vds_scsi::decode_lun(lun.to_be_bytes())
}

/// Execute one command on its LUN of `map` in `mode`; Data-In goes to `buf`. Answers the
/// outcome and, for a command without Data-In, its write residual: how much of the EDTL the
/// CDB does not use (positive: underflow) or wants beyond it (negative: overflow), 0 when the
/// engine does not know the opcode's transfer length. In [`Mode::Inline`], `Err(WouldBlock)`
/// for a command that must run on a thread that may block (see [`vds_scsi::may_run_inline`]).
pub(crate) fn execute(
    map: &LunMap,
    nexus: &ItNexus,
    c: &Command,
    buf: &mut Vec<u8>,
    mode: Mode,
) -> Result<(ScsiOutcome, i64), WouldBlock> {
    let done = map.dispatch(mode, nexus, lun_number(c.lun), &scsi_command(c), buf)?;
    Ok(answer(done, c.read, c.edtl))
}

fn scsi_command(c: &Command) -> ScsiCommand<'_> {
    ScsiCommand {
        cdb: &c.cdb,
        data_out: &c.data_out,
        expected_in_len: c.expected_in_len,
        attr: match c.attr {
            WireAttr::Untagged | WireAttr::Simple => TaskAttr::Simple,
            WireAttr::Ordered => TaskAttr::Ordered,
            WireAttr::HeadOfQueue => TaskAttr::HeadOfQueue,
            WireAttr::Aca => TaskAttr::Aca,
        },
    }
}

/// The outcome and write residual of an executed command (`read`: it has the R bit; `edtl`:
/// its expected data transfer length).
pub(crate) fn answer(done: Executed, read: bool, edtl: u32) -> (ScsiOutcome, i64) {
    let residual = if read { 0 } else { done.write_residual(edtl) };
    (done.outcome, residual)
}

/// What [`start`] produced.
pub(crate) enum Began {
    /// Answered: outcome and write residual.
    Done(ScsiOutcome, i64),
    /// Waiting for its store operation, to submit ([`vds_scsi::Pending`]).
    Pending(Pending),
}

/// [`execute`] in [`Mode::Inline`] for the connection's task, which a store's asynchronous
/// I/O can wake: see [`LunMap::start`].
pub(crate) fn start(
    map: &LunMap,
    nexus: &ItNexus,
    c: &Command,
    buf: &mut Vec<u8>,
) -> Result<Began, WouldBlock> {
    Ok(
        match map.start(nexus, lun_number(c.lun), &scsi_command(c), buf)? {
            Started::Done(done) => {
                let (o, r) = answer(done, c.read, c.edtl);
                Began::Done(o, r)
            }
            Started::Pending(p) => Began::Pending(p),
        },
    )
}

/// [`execute`] on a thread that may block (the blocking pool).
pub(crate) fn execute_blocking(
    map: &LunMap,
    nexus: &ItNexus,
    c: &Command,
    buf: &mut Vec<u8>,
) -> (ScsiOutcome, i64) {
    match execute(map, nexus, c, buf, Mode::Blocking) {
        Ok(done) => done,
        Err(WouldBlock) => unreachable!("only Mode::Inline answers WouldBlock"),
    }
}

/// The logical-unit side of a task management function; `Some(response)` overrides the
/// result (LUN does not exist). The LUs it reset that other gateways serve too come back
/// with it: their reset must reach those gateways before the function is answered.
pub(crate) fn task_mgmt(
    map: &LunMap,
    nexus: &ItNexus,
    function: u8,
    lun: u64,
) -> (Option<u8>, Vec<Arc<vds_scsi::LogicalUnit>>) {
    let n = lun_number(lun);
    match function {
        tmf::ABORT_TASK_SET | tmf::CLEAR_TASK_SET => match map.lookup(&nexus.initiator_name, n) {
            Some(_) => (None, Vec::new()),
            None => (Some(tmf_response::LUN_DOES_NOT_EXIST), Vec::new()),
        },
        tmf::LOGICAL_UNIT_RESET => {
            // SAM-5: the unit attention goes to every I_T nexus, the requester's included
            // (libiscsi MultipathIO.Reset checks it on the resetting path too), and on every
            // gateway (docs/SCALEOUT.md).
            let Some(lu) = map.lookup(&nexus.initiator_name, n).cloned() else {
                return (Some(tmf_response::LUN_DOES_NOT_EXIST), Vec::new());
            };
            if !map.reset_lun(n, None) {
                return (Some(tmf_response::LUN_DOES_NOT_EXIST), Vec::new());
            }
            let elsewhere = if lu.resets_are_shared() {
                vec![lu]
            } else {
                Vec::new()
            };
            (None, elsewhere)
        }
        tmf::TARGET_WARM_RESET | tmf::TARGET_COLD_RESET => {
            map.target_reset(Some(nexus.id));
            let elsewhere = map
                .entries
                .iter()
                .filter(|e| e.lu.resets_are_shared())
                .map(|e| e.lu.clone())
                .collect();
            (None, elsewhere)
        }
        _ => (None, Vec::new()),
    }
}

/// Tell every logical unit of the target that `nexus` is gone.
pub(crate) fn nexus_lost(map: &LunMap, nexus: &ItNexus) {
    map.nexus_lost(nexus.id);
}

/// The answer to a command whose execution panicked: HARDWARE ERROR / INTERNAL TARGET FAILURE
/// (04/44/00). The initiator learns the command failed instead of waiting for it forever.
pub(crate) fn internal_failure() -> ScsiOutcome {
    ScsiOutcome {
        status: ScsiStatus::CheckCondition,
        sense: Some(Sense::new(key::HARDWARE_ERROR, sense::INTERNAL_TARGET_FAILURE).encode(false)),
    }
}

/// Where an injected panic goes off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PanicSite {
    /// On the connection's own task (what a bug in the iSCSI engine would do).
    Task,
    /// Inside the command's execution on the blocking pool (a bug in the SCSI engine or a
    /// store).
    Job,
}

/// The magic CDB of panic injection, a vendor-specific opcode (FFh) no initiator sends:
/// `FF "vds-panic" SITE` and zeros to 16 bytes, SITE 1 = [`PanicSite::Task`], 2 =
/// [`PanicSite::Job`]. Honoured only when [`crate::Limits::panic_injection`] is set (vdsd
/// `--enable-fault-injection`, a test-only flag); otherwise it is an unknown opcode (05/20/00)
/// like any other.
pub(crate) fn injected_panic(cdb: &[u8]) -> Option<PanicSite> {
    const MAGIC: &[u8] = b"\xFFvds-panic";
    if cdb.len() != 16 || !cdb.starts_with(MAGIC) || cdb[11..].iter().any(|&b| b != 0) {
        return None;
    }
    match cdb[10] {
        1 => Some(PanicSite::Task),
        2 => Some(PanicSite::Job),
        _ => None,
    }
}
