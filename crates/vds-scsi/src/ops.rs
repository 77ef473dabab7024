//! The command table: every opcode (and service action) the engine accepts, with its CDB usage
//! mask, how it is gated by LU status and reservations, and its handler.
//!
//! The usage masks do double duty: REPORT SUPPORTED OPERATION CODES returns them, and the
//! dispatcher rejects any CDB with a bit set outside its mask (ILLEGAL REQUEST, INVALID FIELD IN
//! CDB, with the field pointer on that bit). So what we report is exactly what we accept.
//!
//! The table also says which commands may run inline, on the transport's thread that must not
//! wait ([`crate::Mode::Inline`]): those that are one positioned read or write of the backing
//! store, safe to attempt and to run again when the store would block. The table and its
//! opcode index are constants: the engine keeps no process-wide state.
//!
//! And it says which commands run through a target port whose asymmetric access state is
//! Standby or Unavailable (SPC-4 5.16.2.4.4, 5.16.2.4.5; BEHAVIOUR.md §14): the `standby`
//! and `unavailable` flags; every other command is refused there with NOT READY, LOGICAL UNIT
//! NOT ACCESSIBLE (02/04/0B, 02/04/0C).

use crate::cdb::Res;
use crate::lu::{Cmd, LogicalUnit};
use crate::{sbc, spc};

/// How the LU's status and unit attentions apply to a command (BEHAVIOUR §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    /// INQUIRY, REPORT LUNS: executed in every status, never report a unit attention.
    Always,
    /// REQUEST SENSE: executed in every status; returns the pending condition as data.
    Sense,
    /// Everything else: unit attention first, then the not-ready sense unless ONLINE.
    Media,
}

/// How reservations apply (SPC-4 table 62, SBC-3 table 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Allowed whatever the reservation.
    Allowed,
    /// Conflicts under exclusive-access types only.
    Read,
    /// Conflicts under every type for a nexus without write access.
    Write,
    /// RESERVE/RELEASE(6/10): their own rules.
    Reserve,
    /// PERSISTENT RESERVE OUT: its own rules.
    Prout,
}

pub(crate) type Handler = fn(&LogicalUnit, &mut Cmd<'_>) -> Res;

// `name` and `dpofua` document the table and are checked by its tests.
#[allow(dead_code)]
pub(crate) struct OpDesc {
    pub opcode: u8,
    /// Service action (low 5 bits of CDB byte 1) for commands that have one.
    pub sa: Option<u8>,
    pub name: &'static str,
    /// CDB usage data (SPC-4 6.35.3): byte 0 is the opcode; its length is the CDB length.
    pub usage: &'static [u8],
    pub gate: Gate,
    pub access: Access,
    pub handler: Handler,
    /// Whether a DPO/FUA bit is in byte 1 of the CDB (for MODE SENSE DPOFUA consistency).
    pub dpofua: bool,
    /// Whether the command may run in [`crate::Mode::Inline`]: its handler does one store
    /// I/O through the `try_` methods there, and it is safe to run again after a refusal.
    pub inline: bool,
    /// Whether, started through [`crate::LunMap::start`] on a store with asynchronous I/O
    /// (`BackingStore::aio`), the handler hands its one store operation back as pending
    /// instead of waiting: READ, WRITE, SYNCHRONIZE CACHE, COMPARE AND WRITE, WRITE SAME.
    /// Such a handler honours `c.aio` and, in [`crate::Mode::Inline`] without it (or without
    /// the store's aio), answers `WouldBlock` before any effect.
    pub aio: bool,
    /// Whether the command runs through a target port in the Standby access state (SPC-4
    /// 5.16.2.4.4).
    pub standby: bool,
    /// Whether the command runs through a target port in the Unavailable access state
    /// (SPC-4 5.16.2.4.5); such a command also runs in Standby.
    pub unavailable: bool,
}

impl OpDesc {
    /// Whether the command runs through a target port in access state `s`; the Active states
    /// run everything.
    pub(crate) fn runs_in(&self, s: crate::AccessState) -> bool {
        match s {
            crate::AccessState::ActiveOptimized | crate::AccessState::ActiveNonOptimized => true,
            crate::AccessState::Standby => self.standby || self.unavailable,
            crate::AccessState::Unavailable => self.unavailable,
        }
    }
}

const F: u8 = 0xFF;

/// One table entry; trailing flags (`dpofua`, `inline`, `standby`, `unavailable`) set the
/// fields of that name.
macro_rules! op {
    ($opc:expr, $sa:expr, $name:expr, $usage:expr, $gate:ident, $access:ident, $h:path $(, $flag:ident)*) => {{
        #[allow(unused_mut)]
        let mut d = OpDesc {
            opcode: $opc,
            sa: $sa,
            name: $name,
            usage: &$usage,
            gate: Gate::$gate,
            access: Access::$access,
            handler: $h,
            dpofua: false,
            inline: false,
            aio: false,
            standby: false,
            unavailable: false,
        };
        $(d.$flag = true;)*
        d
    }};
}

/// Every supported command, in opcode order (REPORT SUPPORTED OPERATION CODES lists them so).
#[rustfmt::skip]
pub(crate) const OPS: &[OpDesc] = &[
    op!(0x00, None, "TEST UNIT READY", [0x00, 0, 0, 0, 0, 0], Media, Allowed, spc::misc::test_unit_ready),
    op!(0x03, None, "REQUEST SENSE", [0x03, 0x01, 0, 0, F, 0], Sense, Allowed, spc::misc::request_sense, unavailable),
    op!(0x08, None, "READ(6)", [0x08, 0x1F, F, F, F, 0], Media, Read, sbc::rw::read, inline, aio),
    op!(0x0A, None, "WRITE(6)", [0x0A, 0x1F, F, F, F, 0], Media, Write, sbc::rw::write, inline, aio),
    op!(0x12, None, "INQUIRY", [0x12, 0x01, F, F, F, 0], Always, Allowed, spc::inquiry::inquiry, unavailable),
    op!(0x15, None, "MODE SELECT(6)", [0x15, 0x11, 0, 0, F, 0], Media, Write, spc::mode::mode_select, standby),
    op!(0x16, None, "RESERVE(6)", [0x16, 0, 0, 0, 0, 0], Media, Reserve, spc::reserve::reserve),
    op!(0x17, None, "RELEASE(6)", [0x17, 0, 0, 0, 0, 0], Media, Reserve, spc::reserve::release),
    op!(0x1A, None, "MODE SENSE(6)", [0x1A, 0x08, F, F, F, 0], Media, Write, spc::mode::mode_sense, standby),
    op!(0x1B, None, "START STOP UNIT", [0x1B, 0x01, 0, 0x0F, 0xF7, 0], Media, Allowed, sbc::capacity::start_stop_unit),
    op!(0x1E, None, "PREVENT ALLOW MEDIUM REMOVAL", [0x1E, 0, 0, 0, 0x03, 0], Media, Allowed, sbc::capacity::prevent_allow),
    op!(0x25, None, "READ CAPACITY(10)", [0x25, 0, F, F, F, F, 0, 0, 0x01, 0], Media, Allowed, sbc::capacity::read_capacity10),
    op!(0x28, None, "READ(10)", [0x28, 0x18, F, F, F, F, 0x1F, F, F, 0], Media, Read, sbc::rw::read, dpofua, inline, aio),
    op!(0x2A, None, "WRITE(10)", [0x2A, 0x18, F, F, F, F, 0x1F, F, F, 0], Media, Write, sbc::rw::write, dpofua, inline, aio),
    op!(0x2E, None, "WRITE AND VERIFY(10)", [0x2E, 0x12, F, F, F, F, 0x1F, F, F, 0], Media, Write, sbc::rw::write_and_verify),
    op!(0x2F, None, "VERIFY(10)", [0x2F, 0x16, F, F, F, F, 0x1F, F, F, 0], Media, Read, sbc::rw::verify),
    op!(0x34, None, "PRE-FETCH(10)", [0x34, 0x02, F, F, F, F, 0x1F, F, F, 0], Media, Read, sbc::rw::prefetch),
    op!(0x35, None, "SYNCHRONIZE CACHE(10)", [0x35, 0x02, F, F, F, F, 0x1F, F, F, 0], Media, Write, sbc::rw::synchronize_cache, aio),
    op!(0x37, None, "READ DEFECT DATA(10)", [0x37, 0, 0x1F, 0, 0, 0, 0, F, F, 0], Media, Read, sbc::capacity::read_defect_data),
    op!(0x41, None, "WRITE SAME(10)", [0x41, 0x08, F, F, F, F, 0x1F, F, F, 0], Media, Write, sbc::provisioning::write_same, aio),
    op!(0x42, None, "UNMAP", [0x42, 0, 0, 0, 0, 0, 0x1F, F, F, 0], Media, Write, sbc::provisioning::unmap),
    op!(0x55, None, "MODE SELECT(10)", [0x55, 0x11, 0, 0, 0, 0, 0, F, F, 0], Media, Write, spc::mode::mode_select, standby),
    op!(0x56, None, "RESERVE(10)", [0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0], Media, Reserve, spc::reserve::reserve),
    op!(0x57, None, "RELEASE(10)", [0x57, 0, 0, 0, 0, 0, 0, 0, 0, 0], Media, Reserve, spc::reserve::release),
    op!(0x5A, None, "MODE SENSE(10)", [0x5A, 0x18, F, F, 0, 0, 0, F, F, 0], Media, Write, spc::mode::mode_sense, standby),
    op!(0x5E, Some(0x00), "PERSISTENT RESERVE IN / READ KEYS", [0x5E, 0x1F, 0, 0, 0, 0, 0, F, F, 0], Media, Allowed, spc::pr::pr_in, standby),
    op!(0x5E, Some(0x01), "PERSISTENT RESERVE IN / READ RESERVATION", [0x5E, 0x1F, 0, 0, 0, 0, 0, F, F, 0], Media, Allowed, spc::pr::pr_in, standby),
    op!(0x5E, Some(0x02), "PERSISTENT RESERVE IN / REPORT CAPABILITIES", [0x5E, 0x1F, 0, 0, 0, 0, 0, F, F, 0], Media, Allowed, spc::pr::pr_in, standby),
    op!(0x5E, Some(0x03), "PERSISTENT RESERVE IN / READ FULL STATUS", [0x5E, 0x1F, 0, 0, 0, 0, 0, F, F, 0], Media, Allowed, spc::pr::pr_in, standby),
    op!(0x5F, Some(0x00), "PERSISTENT RESERVE OUT / REGISTER", [0x5F, 0x1F, F, 0, 0, F, F, F, F, 0], Media, Prout, spc::pr::pr_out, standby),
    op!(0x5F, Some(0x01), "PERSISTENT RESERVE OUT / RESERVE", [0x5F, 0x1F, F, 0, 0, F, F, F, F, 0], Media, Prout, spc::pr::pr_out, standby),
    op!(0x5F, Some(0x02), "PERSISTENT RESERVE OUT / RELEASE", [0x5F, 0x1F, F, 0, 0, F, F, F, F, 0], Media, Prout, spc::pr::pr_out, standby),
    op!(0x5F, Some(0x03), "PERSISTENT RESERVE OUT / CLEAR", [0x5F, 0x1F, F, 0, 0, F, F, F, F, 0], Media, Prout, spc::pr::pr_out, standby),
    op!(0x5F, Some(0x04), "PERSISTENT RESERVE OUT / PREEMPT", [0x5F, 0x1F, F, 0, 0, F, F, F, F, 0], Media, Prout, spc::pr::pr_out, standby),
    op!(0x5F, Some(0x05), "PERSISTENT RESERVE OUT / PREEMPT AND ABORT", [0x5F, 0x1F, F, 0, 0, F, F, F, F, 0], Media, Prout, spc::pr::pr_out, standby),
    op!(0x5F, Some(0x06), "PERSISTENT RESERVE OUT / REGISTER AND IGNORE EXISTING KEY", [0x5F, 0x1F, F, 0, 0, F, F, F, F, 0], Media, Prout, spc::pr::pr_out, standby),
    op!(0x5F, Some(0x07), "PERSISTENT RESERVE OUT / REGISTER AND MOVE", [0x5F, 0x1F, F, 0, 0, F, F, F, F, 0], Media, Prout, spc::pr::pr_out, standby),
    op!(0x83, Some(0x00), "EXTENDED COPY(LID1)", [0x83, 0x1F, 0, 0, 0, 0, 0, 0, 0, 0, F, F, F, F, 0, 0], Media, Write, spc::xcopy::extended_copy),
    op!(0x84, Some(0x00), "RECEIVE COPY RESULTS / COPY STATUS", [0x84, 0x1F, F, 0, 0, 0, 0, 0, 0, 0, F, F, F, F, 0, 0], Media, Write, spc::xcopy::receive_copy_results),
    op!(0x84, Some(0x03), "RECEIVE COPY RESULTS / OPERATING PARAMETERS", [0x84, 0x1F, 0, 0, 0, 0, 0, 0, 0, 0, F, F, F, F, 0, 0], Media, Write, spc::xcopy::receive_copy_results),
    op!(0x88, None, "READ(16)", [0x88, 0x18, F, F, F, F, F, F, F, F, F, F, F, F, 0x1F, 0], Media, Read, sbc::rw::read, dpofua, inline, aio),
    op!(0x89, None, "COMPARE AND WRITE", [0x89, 0x18, F, F, F, F, F, F, F, F, 0, 0, 0, F, 0x1F, 0], Media, Write, sbc::rw::compare_and_write, dpofua, aio),
    op!(0x8A, None, "WRITE(16)", [0x8A, 0x18, F, F, F, F, F, F, F, F, F, F, F, F, 0x1F, 0], Media, Write, sbc::rw::write, dpofua, inline, aio),
    op!(0x8B, None, "ORWRITE(16)", [0x8B, 0x18, F, F, F, F, F, F, F, F, F, F, F, F, 0x1F, 0], Media, Write, sbc::rw::orwrite, dpofua),
    op!(0x8E, None, "WRITE AND VERIFY(16)", [0x8E, 0x12, F, F, F, F, F, F, F, F, F, F, F, F, 0x1F, 0], Media, Write, sbc::rw::write_and_verify),
    op!(0x8F, None, "VERIFY(16)", [0x8F, 0x16, F, F, F, F, F, F, F, F, F, F, F, F, 0x1F, 0], Media, Read, sbc::rw::verify),
    op!(0x90, None, "PRE-FETCH(16)", [0x90, 0x02, F, F, F, F, F, F, F, F, F, F, F, F, 0x1F, 0], Media, Read, sbc::rw::prefetch),
    op!(0x91, None, "SYNCHRONIZE CACHE(16)", [0x91, 0x02, F, F, F, F, F, F, F, F, F, F, F, F, 0x1F, 0], Media, Write, sbc::rw::synchronize_cache, aio),
    op!(0x93, None, "WRITE SAME(16)", [0x93, 0x09, F, F, F, F, F, F, F, F, F, F, F, F, 0x1F, 0], Media, Write, sbc::provisioning::write_same, aio),
    op!(0x9C, None, "WRITE ATOMIC(16)", [0x9C, 0x18, F, F, F, F, F, F, F, F, F, F, F, F, 0x1F, 0], Media, Write, sbc::rw::write_atomic, dpofua),
    op!(0x9E, Some(0x10), "READ CAPACITY(16)", [0x9E, 0x1F, F, F, F, F, F, F, F, F, F, F, F, F, 0x01, 0], Media, Allowed, sbc::capacity::read_capacity16),
    op!(0x9E, Some(0x12), "GET LBA STATUS", [0x9E, 0x1F, F, F, F, F, F, F, F, F, F, F, F, F, 0, 0], Media, Read, sbc::provisioning::get_lba_status),
    op!(0xA0, None, "REPORT LUNS", [0xA0, 0, F, 0, 0, 0, F, F, F, F, 0, 0], Always, Allowed, spc::misc::report_luns_single, unavailable),
    op!(0xA3, Some(0x0A), "REPORT TARGET PORT GROUPS", [0xA3, 0x3F, 0, 0, 0, 0, F, F, F, F, 0, 0], Media, Allowed, spc::alua::report_target_port_groups, unavailable),
    op!(0xA3, Some(0x0C), "REPORT SUPPORTED OPERATION CODES", [0xA3, 0x1F, 0x87, F, F, F, F, F, F, F, 0, 0], Media, Allowed, spc::rsoc::report_supported_opcodes),
    op!(0xA3, Some(0x0D), "REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS", [0xA3, 0x1F, 0x80, 0, 0, 0, F, F, F, F, 0, 0], Media, Allowed, spc::rsoc::report_supported_tmfs),
    op!(0xA8, None, "READ(12)", [0xA8, 0x18, F, F, F, F, F, F, F, F, 0x1F, 0], Media, Read, sbc::rw::read, dpofua, inline, aio),
    op!(0xAA, None, "WRITE(12)", [0xAA, 0x18, F, F, F, F, F, F, F, F, 0x1F, 0], Media, Write, sbc::rw::write, dpofua, inline, aio),
    op!(0xAE, None, "WRITE AND VERIFY(12)", [0xAE, 0x12, F, F, F, F, F, F, F, F, 0x1F, 0], Media, Write, sbc::rw::write_and_verify),
    op!(0xAF, None, "VERIFY(12)", [0xAF, 0x16, F, F, F, F, F, F, F, F, 0x1F, 0], Media, Read, sbc::rw::verify),
    op!(0xB7, None, "READ DEFECT DATA(12)", [0xB7, 0x1F, 0, 0, 0, 0, F, F, F, F, 0, 0], Media, Read, sbc::capacity::read_defect_data),
];

/// Whether `op` is available on `lu` (WRITE ATOMIC(16) needs a store that writes atomically);
/// an unavailable command is answered 05/20/00 and not reported as supported.
pub(crate) fn available(op: &OpDesc, lu: &LogicalUnit) -> bool {
    op.opcode != 0x9C || crate::spc::inquiry::atomic_blocks(lu) > 0
}

/// Opcodes whose CDB byte 1 carries a service action.
pub(crate) fn has_service_action(opcode: u8) -> bool {
    OPS.iter().any(|o| o.opcode == opcode && o.sa.is_some())
}

/// Index of the first table entry for each opcode (`u8::MAX`: none), computed at compile time.
const INDEX: [u8; 256] = index(OPS);

const fn index(ops: &[OpDesc]) -> [u8; 256] {
    assert!(
        ops.len() < u8::MAX as usize,
        "table entries are indexed by u8"
    );
    let mut idx = [u8::MAX; 256];
    let mut i = ops.len();
    while i > 0 {
        i -= 1;
        idx[ops[i].opcode as usize] = i as u8;
    }
    idx
}

/// What the dispatcher found for a CDB.
pub(crate) enum Lookup {
    Found(&'static OpDesc),
    /// Opcode unknown: 05/20/00.
    UnknownOpcode,
    /// Opcode known, service action not: 05/24/00 pointing at byte 1 bits 4..0.
    UnknownServiceAction,
}

/// Find the table entry for `cdb` (which is non-empty).
pub(crate) fn lookup(cdb: &[u8]) -> Lookup {
    let opcode = cdb[0];
    let i = INDEX[opcode as usize];
    if i == u8::MAX {
        return Lookup::UnknownOpcode;
    }
    let first = &OPS[i as usize];
    if first.sa.is_none() {
        return Lookup::Found(first);
    }
    let Some(&b1) = cdb.get(1) else {
        return Lookup::UnknownServiceAction;
    };
    let sa = b1 & 0x1F;
    OPS[i as usize..]
        .iter()
        .take_while(|o| o.opcode == opcode)
        .find(|o| o.sa == Some(sa))
        .map_or(Lookup::UnknownServiceAction, Lookup::Found)
}

/// Whether `cdb` is a command the table lets run in [`crate::Mode::Inline`] (see
/// [`OpDesc::inline`]). The transport asks this instead of keeping its own list.
pub fn may_run_inline(cdb: &[u8]) -> bool {
    !cdb.is_empty() && matches!(lookup(cdb), Lookup::Found(op) if op.inline)
}

/// Find by opcode and optional service action (for REPORT SUPPORTED OPERATION CODES).
pub(crate) fn find(opcode: u8, sa: Option<u8>) -> Option<&'static OpDesc> {
    OPS.iter().find(|o| o.opcode == opcode && o.sa == sa)
}

/// Check a CDB against the usage mask: `Err((byte, bit))` for the first bit set outside it.
/// The service-action bits of byte 1 and the opcode are never flagged.
pub(crate) fn check_usage(op: &OpDesc, cdb: &[u8]) -> Result<(), (u16, u8)> {
    for (i, (&b, &m)) in cdb.iter().zip(op.usage).enumerate().skip(1) {
        let stray = b & !m;
        if stray != 0 {
            let bit = 7 - stray.leading_zeros() as u8;
            return Err((i as u16, bit));
        }
    }
    Ok(())
}

/// Bytes of data a CDB moves (Data-In or Data-Out) as the CDB itself states it, for the
/// transport's residual computation: `None` for commands without a data phase or unknown
/// commands. Block counts are converted with `block_size`.
pub fn cdb_transfer_len(cdb: &[u8], block_size: u32) -> Option<u64> {
    let bs = u64::from(block_size);
    let c = |i: usize, n: usize| -> Option<u64> {
        if cdb.len() < i + n {
            return None;
        }
        Some(crate::cdb::be_at(cdb, i, n))
    };
    match *cdb.first()? {
        0x08 | 0x0A => {
            let n = c(4, 1)?;
            Some(if n == 0 { 256 } else { n } * bs)
        }
        0x28 | 0x2A | 0x2E | 0x2F => match cdb[0] {
            0x2F if cdb.get(1)? & 0x06 == 0 => Some(0),
            0x2F if cdb.get(1)? & 0x06 == 0x06 => Some(bs),
            _ => Some(c(7, 2)? * bs),
        },
        0xA8 | 0xAA | 0xAE | 0xAF => match cdb[0] {
            0xAF if cdb.get(1)? & 0x06 == 0 => Some(0),
            0xAF if cdb.get(1)? & 0x06 == 0x06 => Some(bs),
            _ => Some(c(6, 4)? * bs),
        },
        0x88 | 0x8A | 0x8B | 0x8E | 0x8F => match cdb[0] {
            0x8F if cdb.get(1)? & 0x06 == 0 => Some(0),
            0x8F if cdb.get(1)? & 0x06 == 0x06 => Some(bs),
            _ => Some(c(10, 4)? * bs),
        },
        0x89 => Some(c(13, 1)? * 2 * bs),
        0x9C => Some(c(12, 2)? * bs),
        0x41 | 0x93 => {
            if cdb[0] == 0x93 && cdb.get(1)? & 0x01 != 0 {
                Some(0)
            } else {
                Some(bs)
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_usage_starts_with_opcode() {
        for w in OPS.windows(2) {
            let a = (w[0].opcode, w[0].sa);
            let b = (w[1].opcode, w[1].sa);
            assert!(a < b, "{} before {}", w[0].name, w[1].name);
        }
        for o in OPS {
            assert_eq!(o.usage[0], o.opcode, "{}", o.name);
            assert!(matches!(o.usage.len(), 6 | 10 | 12 | 16), "{}", o.name);
            if o.sa.is_some() {
                assert_eq!(o.usage[1] & 0x1F, 0x1F, "{}: SA bits in usage", o.name);
            }
            if o.dpofua {
                assert_eq!(o.usage[1] & 0x18, 0x18, "{}", o.name);
            }
        }
    }

    /// The commands a store with asynchronous I/O takes from the I/O thread are the inline
    /// ones plus the single-operation writes and the flush; each is a gated data command.
    #[test]
    fn aio_commands_are_read_write_sync_cache_compare_and_write_write_same() {
        let aio: Vec<&str> = OPS.iter().filter(|o| o.aio).map(|o| o.name).collect();
        assert_eq!(
            aio,
            [
                "READ(6)",
                "WRITE(6)",
                "READ(10)",
                "WRITE(10)",
                "SYNCHRONIZE CACHE(10)",
                "WRITE SAME(10)",
                "READ(16)",
                "COMPARE AND WRITE",
                "WRITE(16)",
                "SYNCHRONIZE CACHE(16)",
                "WRITE SAME(16)",
                "READ(12)",
                "WRITE(12)"
            ]
        );
        for o in OPS.iter() {
            assert!(!o.inline || o.aio, "{}: inline but not aio", o.name);
            if o.aio {
                assert!(o.gate == Gate::Media && !o.standby, "{}", o.name);
            }
        }
    }

    /// The commands that may run inline are exactly those the transport used to retry inline
    /// (READ and WRITE 6, 10, 12, 16): one positioned store I/O each, safe to run again.
    #[test]
    fn inline_commands_are_read_and_write_6_10_12_16() {
        let inline: Vec<&str> = OPS.iter().filter(|o| o.inline).map(|o| o.name).collect();
        assert_eq!(
            inline,
            [
                "READ(6)",
                "WRITE(6)",
                "READ(10)",
                "WRITE(10)",
                "READ(16)",
                "WRITE(16)",
                "READ(12)",
                "WRITE(12)"
            ]
        );
        for o in OPS.iter().filter(|o| o.inline) {
            assert!(o.sa.is_none() && o.gate == Gate::Media, "{}", o.name);
            assert!(
                matches!(o.access, Access::Read | Access::Write),
                "{}",
                o.name
            );
        }
        // Every opcode, any CDB length: the same answer as the transport's former list.
        for opcode in 0..=u8::MAX {
            let was = matches!(
                opcode,
                0x08 | 0x28 | 0xA8 | 0x88 | 0x0A | 0x2A | 0xAA | 0x8A
            );
            for len in [1, 6, 16] {
                let mut cdb = vec![0u8; len];
                cdb[0] = opcode;
                assert_eq!(
                    may_run_inline(&cdb),
                    was,
                    "opcode {opcode:#04x}, {len} bytes"
                );
            }
        }
        assert!(!may_run_inline(&[]));
    }

    /// SPC-4 5.16.2.4.4 and 5.16.2.4.5, as far as the table has the commands: what runs
    /// through a Standby port, and the shorter list for an Unavailable one.
    #[test]
    fn standby_and_unavailable_run_exactly_what_spc4_allows() {
        let unavailable: Vec<&str> = OPS
            .iter()
            .filter(|o| o.unavailable)
            .map(|o| o.name)
            .collect();
        assert_eq!(
            unavailable,
            [
                "REQUEST SENSE",
                "INQUIRY",
                "REPORT LUNS",
                "REPORT TARGET PORT GROUPS"
            ]
        );
        let standby: Vec<&str> = OPS
            .iter()
            .filter(|o| o.runs_in(crate::AccessState::Standby))
            .map(|o| o.name)
            .collect();
        let mut want = vec![
            "REQUEST SENSE",
            "INQUIRY",
            "MODE SELECT(6)",
            "MODE SENSE(6)",
            "MODE SELECT(10)",
            "MODE SENSE(10)",
        ];
        want.extend(
            OPS.iter()
                .filter(|o| o.opcode == 0x5E || o.opcode == 0x5F)
                .map(|o| o.name),
        );
        want.extend(["REPORT LUNS", "REPORT TARGET PORT GROUPS"]);
        assert_eq!(standby, want);
        for o in OPS {
            for s in [
                crate::AccessState::ActiveOptimized,
                crate::AccessState::ActiveNonOptimized,
            ] {
                assert!(o.runs_in(s), "{}", o.name);
            }
            assert!(
                !(o.inline && o.standby),
                "{}: inline I/O in standby",
                o.name
            );
        }
    }

    #[test]
    fn the_index_finds_the_first_entry_of_every_opcode() {
        for opcode in 0..=u8::MAX {
            let first = OPS.iter().position(|o| o.opcode == opcode);
            assert_eq!(
                first.map(|i| i as u8).unwrap_or(u8::MAX),
                INDEX[opcode as usize],
                "opcode {opcode:#04x}"
            );
        }
    }

    #[test]
    fn lookup_by_service_action() {
        // opcode 0x9E SERVICE ACTION IN(16), SA 0x10 READ CAPACITY(16)
        let cdb = [0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0];
        assert!(matches!(lookup(&cdb), Lookup::Found(o) if o.name == "READ CAPACITY(16)"));
        // SA 0x11 (READ LONG 16) is not supported.
        let cdb = [0x9E, 0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0];
        assert!(matches!(lookup(&cdb), Lookup::UnknownServiceAction));
        assert!(matches!(lookup(&[0xFF]), Lookup::UnknownOpcode));
    }

    #[test]
    fn usage_rejects_stray_bits_with_pointer() {
        // opcode 0x28 READ(10), byte 1 = 0x20 (RDPROTECT=001b): not in the mask.
        let cdb = [0x28, 0x20, 0, 0, 0, 0, 0, 0, 1, 0];
        let Lookup::Found(op) = lookup(&cdb) else {
            panic!()
        };
        assert_eq!(check_usage(op, &cdb), Err((1, 5)));
        // DPO|FUA are fine.
        let cdb = [0x28, 0x18, 0, 0, 0, 0, 0, 0, 1, 0];
        assert_eq!(check_usage(op, &cdb), Ok(()));
        // NACA in the control byte is not supported.
        let cdb = [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0x04];
        assert_eq!(check_usage(op, &cdb), Err((9, 2)));
    }

    #[test]
    fn transfer_lengths() {
        // opcode 0x2A WRITE(10), 2 blocks
        assert_eq!(
            cdb_transfer_len(&[0x2A, 0, 0, 0, 0, 0, 0, 0, 2, 0], 512),
            Some(1024)
        );
        // opcode 0x08 READ(6), length 0 means 256 blocks
        assert_eq!(
            cdb_transfer_len(&[0x08, 0, 0, 0, 0, 0], 512),
            Some(256 * 512)
        );
        // opcode 0x89 COMPARE AND WRITE, 1 block: compare + write data
        let mut caw = [0u8; 16];
        caw[0] = 0x89;
        caw[13] = 1;
        assert_eq!(cdb_transfer_len(&caw, 4096), Some(8192));
        // opcode 0x2F VERIFY(10) with BYTCHK=0 moves nothing
        assert_eq!(
            cdb_transfer_len(&[0x2F, 0, 0, 0, 0, 0, 0, 0, 8, 0], 512),
            Some(0)
        );
        assert_eq!(cdb_transfer_len(&[0x12, 0, 0, 0, 36, 0], 512), None);
        assert_eq!(cdb_transfer_len(&[0x28, 0], 512), None);
    }
}
