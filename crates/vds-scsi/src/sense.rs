//! Sense data: keys, additional sense codes in T10 wording, and the fixed (0x70) and descriptor
//! (0x72) formats.

/// Sense keys (SPC-4 table 27).
pub mod key {
    pub const NO_SENSE: u8 = 0x0;
    pub const NOT_READY: u8 = 0x2;
    pub const MEDIUM_ERROR: u8 = 0x3;
    pub const HARDWARE_ERROR: u8 = 0x4;
    pub const ILLEGAL_REQUEST: u8 = 0x5;
    pub const UNIT_ATTENTION: u8 = 0x6;
    pub const DATA_PROTECT: u8 = 0x7;
    pub const ABORTED_COMMAND: u8 = 0xB;
    pub const MISCOMPARE: u8 = 0xE;
}

/// An additional sense code and qualifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asc(pub u8, pub u8);

pub const INVALID_COMMAND_OPERATION_CODE: Asc = Asc(0x20, 0x00);
pub const LBA_OUT_OF_RANGE: Asc = Asc(0x21, 0x00);
pub const INVALID_FIELD_IN_CDB: Asc = Asc(0x24, 0x00);
pub const LOGICAL_UNIT_NOT_SUPPORTED: Asc = Asc(0x25, 0x00);
pub const INVALID_FIELD_IN_PARAMETER_LIST: Asc = Asc(0x26, 0x00);
pub const LUN_BECOMING_READY: Asc = Asc(0x04, 0x01);
pub const LUN_MANUAL_INTERVENTION_REQUIRED: Asc = Asc(0x04, 0x03);
pub const LUN_OFFLINE: Asc = Asc(0x04, 0x12);
pub const UNRECOVERED_READ_ERROR: Asc = Asc(0x11, 0x00);
pub const WRITE_ERROR: Asc = Asc(0x0C, 0x00);
pub const NOT_READY_TO_READY_CHANGE: Asc = Asc(0x28, 0x00);
pub const POWER_ON_RESET: Asc = Asc(0x29, 0x00);
pub const CAPACITY_DATA_HAS_CHANGED: Asc = Asc(0x2A, 0x09);
pub const REPORTED_LUNS_DATA_HAS_CHANGED: Asc = Asc(0x3F, 0x0E);

/// CHECK CONDITION with fixed-format sense.
pub fn check_condition(sense_key: u8, asc: Asc) -> crate::ScsiOutcome {
    let mut s = vec![0u8; 18];
    s[0] = 0x70;
    s[2] = sense_key;
    s[7] = 10;
    s[12] = asc.0;
    s[13] = asc.1;
    crate::ScsiOutcome {
        status: crate::ScsiStatus::CheckCondition,
        sense: Some(s),
    }
}
