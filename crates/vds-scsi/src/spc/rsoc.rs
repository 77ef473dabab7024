//! REPORT SUPPORTED OPERATION CODES and REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS, both
//! generated from the command table so they cannot drift from what is accepted.

use crate::cdb::{invalid_cdb, truncate_to, Res};
use crate::lu::{Cmd, LogicalUnit};
use crate::ops::{self, OpDesc, OPS};

/// Recommended command timeout reported in timeouts descriptors, in seconds.
const RECOMMENDED_TIMEOUT_S: u32 = 30;

fn timeouts(d: &mut Vec<u8>) {
    d.extend_from_slice(&[0x00, 0x0A, 0x00, 0x00]);
    d.extend_from_slice(&0u32.to_be_bytes()); // nominal: not specified
    d.extend_from_slice(&RECOMMENDED_TIMEOUT_S.to_be_bytes());
}

fn descriptor(d: &mut Vec<u8>, op: &OpDesc, rctd: bool) {
    let sa = u16::from(op.sa.unwrap_or(0));
    d.push(op.opcode);
    d.push(0);
    d.extend_from_slice(&sa.to_be_bytes());
    d.push(0);
    d.push(if rctd { 0x02 } else { 0 } | u8::from(op.sa.is_some()));
    d.extend_from_slice(&(op.usage.len() as u16).to_be_bytes());
    if rctd {
        timeouts(d);
    }
}

fn one_command(d: &mut Vec<u8>, op: Option<&OpDesc>, rctd: bool) {
    match op {
        None => d.extend_from_slice(&[0, 0x01, 0, 0]),
        Some(op) => {
            d.push(0);
            d.push(if rctd { 0x80 } else { 0 } | 0x03);
            d.extend_from_slice(&(op.usage.len() as u16).to_be_bytes());
            d.extend_from_slice(op.usage);
            if rctd {
                timeouts(d);
            }
        }
    }
}

pub(crate) fn report_supported_opcodes(lu: &LogicalUnit, c: &mut Cmd<'_>) -> Res {
    let find = |opcode: u8, sa: Option<u8>| ops::find(opcode, sa).filter(|o| ops::available(o, lu));
    let rctd = c.cdb.bit(2, 7);
    let options = c.cdb.u8(2) & 0x07;
    let opcode = c.cdb.u8(3);
    let sa = c.cdb.be16(4);
    let alloc = c.cdb.be32(6) as usize;
    let d = &mut *c.data_in;
    let sa8 = || u8::try_from(sa).ok().filter(|s| *s < 0x20);
    match options {
        0 => {
            d.extend_from_slice(&[0; 4]);
            for op in OPS.iter().filter(|o| ops::available(o, lu)) {
                descriptor(d, op, rctd);
            }
            let len = (d.len() - 4) as u32;
            d[0..4].copy_from_slice(&len.to_be_bytes());
        }
        1 => {
            if ops::has_service_action(opcode) {
                return Err(invalid_cdb(3, None));
            }
            one_command(d, find(opcode, None), rctd);
        }
        2 => {
            if !ops::has_service_action(opcode) {
                return Err(invalid_cdb(3, None));
            }
            one_command(d, sa8().and_then(|s| find(opcode, Some(s))), rctd);
        }
        3 => {
            let op = if ops::has_service_action(opcode) {
                sa8().and_then(|s| find(opcode, Some(s)))
            } else {
                find(opcode, None)
            };
            one_command(d, op, rctd);
        }
        _ => return Err(invalid_cdb(2, Some(2))),
    }
    truncate_to(d, alloc);
    Ok(())
}

pub(crate) fn report_supported_tmfs(_lu: &LogicalUnit, c: &mut Cmd<'_>) -> Res {
    let repd = c.cdb.bit(2, 7);
    let alloc = c.cdb.be32(6) as usize;
    let d = &mut *c.data_in;
    // ABORT TASK, ABORT TASK SET, CLEAR TASK SET, LOGICAL UNIT RESET, TARGET RESET.
    d.extend_from_slice(&[0x80 | 0x40 | 0x10 | 0x08 | 0x02, 0, 0, 0]);
    if repd {
        d[3] = 0x0C;
        d.extend_from_slice(&[0; 12]);
    }
    truncate_to(d, alloc);
    Ok(())
}
