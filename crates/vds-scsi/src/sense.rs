//! Sense data: keys, additional sense codes in T10 wording, and the fixed (0x70) and descriptor
//! (0x72) formats. This is the one place where an engine failure becomes bytes on the wire.

/// Sense keys (SPC-4 table 27).
pub mod key {
    pub const NO_SENSE: u8 = 0x0;
    pub const RECOVERED_ERROR: u8 = 0x1;
    pub const NOT_READY: u8 = 0x2;
    pub const MEDIUM_ERROR: u8 = 0x3;
    pub const HARDWARE_ERROR: u8 = 0x4;
    pub const ILLEGAL_REQUEST: u8 = 0x5;
    pub const UNIT_ATTENTION: u8 = 0x6;
    pub const DATA_PROTECT: u8 = 0x7;
    pub const COPY_ABORTED: u8 = 0xA;
    pub const ABORTED_COMMAND: u8 = 0xB;
    pub const MISCOMPARE: u8 = 0xE;
}

/// An additional sense code and qualifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Asc(pub u8, pub u8);

pub const NO_ADDITIONAL_SENSE: Asc = Asc(0x00, 0x00);
pub const LUN_BECOMING_READY: Asc = Asc(0x04, 0x01);
pub const LUN_MANUAL_INTERVENTION_REQUIRED: Asc = Asc(0x04, 0x03);
pub const ASYMMETRIC_ACCESS_STATE_TRANSITION: Asc = Asc(0x04, 0x0A);
pub const LUN_NOT_ACCESSIBLE_TARGET_PORT_IN_STANDBY_STATE: Asc = Asc(0x04, 0x0B);
pub const LUN_NOT_ACCESSIBLE_TARGET_PORT_IN_UNAVAILABLE_STATE: Asc = Asc(0x04, 0x0C);
pub const LUN_OFFLINE: Asc = Asc(0x04, 0x12);
pub const WRITE_ERROR: Asc = Asc(0x0C, 0x00);
pub const COPY_TARGET_DEVICE_NOT_REACHABLE: Asc = Asc(0x0D, 0x02);
pub const INVALID_FIELD_IN_COMMAND_INFORMATION_UNIT: Asc = Asc(0x0E, 0x03);
pub const UNRECOVERED_READ_ERROR: Asc = Asc(0x11, 0x00);
pub const PARAMETER_LIST_LENGTH_ERROR: Asc = Asc(0x1A, 0x00);
pub const MISCOMPARE_DURING_VERIFY_OPERATION: Asc = Asc(0x1D, 0x00);
pub const INVALID_COMMAND_OPERATION_CODE: Asc = Asc(0x20, 0x00);
pub const LBA_OUT_OF_RANGE: Asc = Asc(0x21, 0x00);
pub const INVALID_FIELD_IN_CDB: Asc = Asc(0x24, 0x00);
pub const LOGICAL_UNIT_NOT_SUPPORTED: Asc = Asc(0x25, 0x00);
pub const INVALID_FIELD_IN_PARAMETER_LIST: Asc = Asc(0x26, 0x00);
pub const INVALID_RELEASE_OF_PERSISTENT_RESERVATION: Asc = Asc(0x26, 0x04);
pub const TOO_MANY_TARGET_DESCRIPTORS: Asc = Asc(0x26, 0x06);
pub const UNSUPPORTED_TARGET_DESCRIPTOR_TYPE_CODE: Asc = Asc(0x26, 0x07);
pub const UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE_CODE: Asc = Asc(0x26, 0x09);
pub const INLINE_DATA_LENGTH_EXCEEDED: Asc = Asc(0x26, 0x0B);
pub const WRITE_PROTECTED: Asc = Asc(0x27, 0x00);
pub const LOGICAL_UNIT_SOFTWARE_WRITE_PROTECTED: Asc = Asc(0x27, 0x02);
pub const SPACE_ALLOCATION_FAILED_WRITE_PROTECT: Asc = Asc(0x27, 0x07);
pub const NOT_READY_TO_READY_CHANGE: Asc = Asc(0x28, 0x00);
pub const POWER_ON_RESET: Asc = Asc(0x29, 0x00);
pub const BUS_DEVICE_RESET_FUNCTION_OCCURRED: Asc = Asc(0x29, 0x03);
pub const I_T_NEXUS_LOSS_OCCURRED: Asc = Asc(0x29, 0x07);
pub const MODE_PARAMETERS_CHANGED: Asc = Asc(0x2A, 0x01);
pub const RESERVATIONS_PREEMPTED: Asc = Asc(0x2A, 0x03);
pub const RESERVATIONS_RELEASED: Asc = Asc(0x2A, 0x04);
pub const REGISTRATIONS_PREEMPTED: Asc = Asc(0x2A, 0x05);
pub const ASYMMETRIC_ACCESS_STATE_CHANGED: Asc = Asc(0x2A, 0x06);
pub const CAPACITY_DATA_HAS_CHANGED: Asc = Asc(0x2A, 0x09);
pub const SAVING_PARAMETERS_NOT_SUPPORTED: Asc = Asc(0x39, 0x00);
pub const REPORTED_LUNS_DATA_HAS_CHANGED: Asc = Asc(0x3F, 0x0E);
pub const INTERNAL_TARGET_FAILURE: Asc = Asc(0x44, 0x00);

/// Where in the CDB or parameter list an ILLEGAL REQUEST points (SPC-4 4.5.2.4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldPointer {
    /// `true`: the CDB; `false`: the parameter data.
    pub in_cdb: bool,
    pub byte: u16,
    /// The most significant bit of the field, when it does not start on a byte.
    pub bit: Option<u8>,
}

/// One sense condition, independent of its wire format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sense {
    pub key: u8,
    pub asc: Asc,
    /// The INFORMATION field (e.g. the miscompare offset), when valid.
    pub info: Option<u64>,
    pub field: Option<FieldPointer>,
}

impl Sense {
    pub const fn new(key: u8, asc: Asc) -> Sense {
        Sense {
            key,
            asc,
            info: None,
            field: None,
        }
    }

    /// ILLEGAL REQUEST, INVALID FIELD IN CDB pointing at `byte` (and `bit`).
    pub const fn invalid_cdb(byte: u16, bit: Option<u8>) -> Sense {
        Sense {
            key: key::ILLEGAL_REQUEST,
            asc: INVALID_FIELD_IN_CDB,
            info: None,
            field: Some(FieldPointer {
                in_cdb: true,
                byte,
                bit,
            }),
        }
    }

    /// ILLEGAL REQUEST, INVALID FIELD IN PARAMETER LIST pointing at `byte` (and `bit`).
    pub const fn invalid_param(byte: u16, bit: Option<u8>) -> Sense {
        Sense::param(INVALID_FIELD_IN_PARAMETER_LIST, byte, bit)
    }

    /// ILLEGAL REQUEST with an ASC about the parameter list, pointing at `byte`.
    pub const fn param(asc: Asc, byte: u16, bit: Option<u8>) -> Sense {
        Sense {
            key: key::ILLEGAL_REQUEST,
            asc,
            info: None,
            field: Some(FieldPointer {
                in_cdb: false,
                byte,
                bit,
            }),
        }
    }

    pub const fn illegal(asc: Asc) -> Sense {
        Sense::new(key::ILLEGAL_REQUEST, asc)
    }

    pub fn with_info(mut self, info: u64) -> Sense {
        self.info = Some(info);
        self
    }

    fn sks(&self) -> Option<[u8; 3]> {
        self.field.map(|f| {
            let mut b0 = 0x80; // SKSV
            if f.in_cdb {
                b0 |= 0x40;
            }
            if let Some(bit) = f.bit {
                b0 |= 0x08 | (bit & 0x07);
            }
            [b0, (f.byte >> 8) as u8, f.byte as u8]
        })
    }

    /// Encode in fixed (0x70, 18 bytes) or descriptor (0x72) format.
    pub fn encode(&self, descriptor: bool) -> Vec<u8> {
        if descriptor {
            let mut s = vec![0u8; 8];
            s[0] = 0x72;
            s[1] = self.key;
            s[2] = self.asc.0;
            s[3] = self.asc.1;
            if let Some(info) = self.info {
                s.extend_from_slice(&[0x00, 0x0A, 0x80, 0x00]);
                s.extend_from_slice(&info.to_be_bytes());
            }
            if let Some(sks) = self.sks() {
                s.extend_from_slice(&[0x02, 0x06, 0x00, 0x00, sks[0], sks[1], sks[2], 0x00]);
            }
            s[7] = (s.len() - 8) as u8;
            s
        } else {
            let mut s = vec![0u8; 18];
            s[0] = 0x70;
            s[2] = self.key;
            if let Some(info) = self.info {
                // The fixed format holds 32 bits; a larger value is reported without VALID.
                if let Ok(v) = u32::try_from(info) {
                    s[0] |= 0x80;
                    s[3..7].copy_from_slice(&v.to_be_bytes());
                }
            }
            s[7] = 10;
            s[12] = self.asc.0;
            s[13] = self.asc.1;
            if let Some(sks) = self.sks() {
                s[15..18].copy_from_slice(&sks);
            }
            s
        }
    }
}

/// CHECK CONDITION with fixed-format sense.
pub fn check_condition(sense_key: u8, asc: Asc) -> crate::ScsiOutcome {
    crate::ScsiOutcome {
        status: crate::ScsiStatus::CheckCondition,
        sense: Some(Sense::new(sense_key, asc).encode(false)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_format_with_field_pointer() {
        // ILLEGAL REQUEST, INVALID FIELD IN CDB, pointing at CDB byte 1 bit 4.
        let s = Sense::invalid_cdb(1, Some(4)).encode(false);
        assert_eq!(
            s,
            vec![0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0x00, 0, 0xCC, 0x00, 0x01]
        );
    }

    #[test]
    fn fixed_format_information_field() {
        // MISCOMPARE at offset 0x1234 of the Data-Out buffer.
        let s = Sense::new(key::MISCOMPARE, MISCOMPARE_DURING_VERIFY_OPERATION)
            .with_info(0x1234)
            .encode(false);
        assert_eq!(s[0], 0xF0, "VALID set");
        assert_eq!(&s[3..7], &[0, 0, 0x12, 0x34]);
        assert_eq!((s[2], s[12], s[13]), (0x0E, 0x1D, 0x00));
    }

    #[test]
    fn descriptor_format() {
        let s = Sense::invalid_param(0x10, None).with_info(7).encode(true);
        assert_eq!(&s[..4], &[0x72, 0x05, 0x26, 0x00]);
        assert_eq!(s[7] as usize, s.len() - 8);
        // Information descriptor then sense-key-specific descriptor (field in parameter data).
        assert_eq!(&s[8..12], &[0x00, 0x0A, 0x80, 0x00]);
        assert_eq!(&s[12..20], &7u64.to_be_bytes());
        assert_eq!(&s[20..28], &[0x02, 0x06, 0, 0, 0x80, 0x00, 0x10, 0]);
    }
}
