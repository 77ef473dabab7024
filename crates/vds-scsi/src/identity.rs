//! The identity of a logical unit as the wire shows it: standard INQUIRY's vendor, product and
//! revision, the unit serial number (VPD 80) and the designators of VPD 83.
//!
//! One source of truth (BEHAVIOUR.md §14 rule 7): the INQUIRY and VPD handlers encode what
//! [`lu_identity`] and [`port_designators`] yield, and the provider builds
//! `IVdsLun::GetIdentificationData` from the same two functions, so the API and the wire cannot
//! disagree. The designators that depend on the port a command came through are separate from
//! the logical unit's own.

use crate::spc::inquiry::{naa_designator, serial_number, PRODUCT, REVISION, VENDOR};

/// CODE SET of a designator (SPC-4 7.8.6.1; the same values as VDS_STORAGE_IDENTIFIER_CODE_SET).
pub mod code_set {
    pub const BINARY: u8 = 1;
    pub const ASCII: u8 = 2;
    pub const UTF8: u8 = 3;
}

/// DESIGNATOR TYPE (SPC-4 table 484; the same values as VDS_STORAGE_IDENTIFIER_TYPE).
pub mod designator_type {
    pub const VENDOR_SPECIFIC: u8 = 0;
    pub const T10_VENDOR_ID: u8 = 1;
    pub const EUI64: u8 = 2;
    pub const NAA: u8 = 3;
    pub const RELATIVE_TARGET_PORT: u8 = 4;
    pub const TARGET_PORT_GROUP: u8 = 5;
    pub const LOGICAL_UNIT_GROUP: u8 = 6;
    pub const MD5_LOGICAL_UNIT: u8 = 7;
    pub const SCSI_NAME_STRING: u8 = 8;
}

/// ASSOCIATION of a designator (SPC-4 7.8.6.1).
pub mod association {
    pub const LOGICAL_UNIT: u8 = 0;
    pub const TARGET_PORT: u8 = 1;
    pub const TARGET_DEVICE: u8 = 2;
}

/// PROTOCOL IDENTIFIER of iSCSI (SPC-4 table 362), carried with PIV set by port designators.
pub const PROTOCOL_ISCSI: u8 = 5;

/// One designation descriptor of VPD page 83.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Designator {
    /// [`code_set`] value.
    pub code_set: u8,
    /// [`designator_type`] value.
    pub designator_type: u8,
    /// [`association`] value.
    pub association: u8,
    /// PROTOCOL IDENTIFIER when PIV is set (port-associated designators).
    pub protocol: Option<u8>,
    /// The designator bytes.
    pub bytes: Vec<u8>,
}

impl Designator {
    /// Appends the descriptor in VPD 83 form (4-byte header, then the bytes).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let b0 = (self.protocol.unwrap_or(0) << 4) | (self.code_set & 0x0F);
        let piv = u8::from(self.protocol.is_some()) << 7;
        let b1 = piv | ((self.association & 0x03) << 4) | (self.designator_type & 0x0F);
        out.extend_from_slice(&[b0, b1, 0, self.bytes.len() as u8]);
        out.extend_from_slice(&self.bytes);
    }

    /// The designator as text: ASCII and UTF-8 code sets as their string (trailing NULs cut),
    /// binary ones as lower-case hex.
    pub fn text(&self) -> String {
        match self.code_set {
            code_set::ASCII | code_set::UTF8 => String::from_utf8_lossy(&self.bytes)
                .trim_end_matches('\0')
                .to_string(),
            _ => hex(&self.bytes),
        }
    }
}

/// Lower-case hex of `b`.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// What standard INQUIRY, VPD 80 and the logical-unit part of VPD 83 say about an LU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// PERIPHERAL DEVICE TYPE (0: direct access block device).
    pub device_type: u8,
    /// T10 VENDOR IDENTIFICATION (trimmed).
    pub vendor: &'static str,
    /// PRODUCT IDENTIFICATION (trimmed).
    pub product: &'static str,
    /// PRODUCT REVISION LEVEL.
    pub revision: &'static str,
    /// PRODUCT SERIAL NUMBER of VPD 80.
    pub serial: String,
    /// The designators associated with the logical unit, in VPD 83 order.
    pub designators: Vec<Designator>,
}

/// The identity of the LU of LUN `id` (stable across restarts: it derives only from the id).
pub fn lu_identity(id: &uuid::Uuid) -> Identity {
    // T10 vendor id: vendor (8 bytes, space padded) + the UUID.
    let t10 = format!("{:<8}{}", VENDOR, id.hyphenated());
    Identity {
        device_type: 0,
        vendor: VENDOR,
        product: PRODUCT,
        revision: REVISION,
        serial: serial_number(id),
        designators: vec![
            Designator {
                code_set: code_set::BINARY,
                designator_type: designator_type::NAA,
                association: association::LOGICAL_UNIT,
                protocol: None,
                bytes: naa_designator(id).to_vec(),
            },
            Designator {
                code_set: code_set::ASCII,
                designator_type: designator_type::T10_VENDOR_ID,
                association: association::LOGICAL_UNIT,
                protocol: None,
                bytes: t10.into_bytes(),
            },
        ],
    }
}

/// The designators VPD 83 adds for the target port a command came through: its relative
/// target port identifier, its ALUA target port group (SPC-4 7.8.6, BEHAVIOUR.md §14) and its
/// SCSI name string (`"<iqn>,t,0x<tpgt>"`, UTF-8, NUL-terminated and padded to a multiple of
/// 4; none when the port has no name).
pub fn port_designators(
    relative_target_port: u16,
    target_port_group: u16,
    target_port: &str,
) -> Vec<Designator> {
    let two_bytes = |n: u16| {
        let mut b = vec![0, 0];
        b.extend_from_slice(&n.to_be_bytes());
        b
    };
    let mut v = vec![
        Designator {
            code_set: code_set::BINARY,
            designator_type: designator_type::RELATIVE_TARGET_PORT,
            association: association::TARGET_PORT,
            protocol: Some(PROTOCOL_ISCSI),
            bytes: two_bytes(relative_target_port),
        },
        Designator {
            code_set: code_set::BINARY,
            designator_type: designator_type::TARGET_PORT_GROUP,
            association: association::TARGET_PORT,
            protocol: Some(PROTOCOL_ISCSI),
            bytes: two_bytes(target_port_group),
        },
    ];
    if !target_port.is_empty() {
        let mut name = target_port.as_bytes().to_vec();
        name.truncate(251);
        name.push(0);
        while name.len() & 3 != 0 {
            name.push(0);
        }
        v.push(Designator {
            code_set: code_set::UTF8,
            designator_type: designator_type::SCSI_NAME_STRING,
            association: association::TARGET_PORT,
            protocol: Some(PROTOCOL_ISCSI),
            bytes: name,
        });
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The encoding is byte for byte what VPD 83 carried before the designators were data
    /// (NAA header 01 03 00 10, relative port 51 94 00 04, SCSI name 53 98 00 len).
    #[test]
    fn descriptors_encode_as_vpd_83_headers() {
        let id = uuid::Uuid::parse_str("0123456789abcdef0123456789abcdef").unwrap();
        let ident = lu_identity(&id);
        let mut out = Vec::new();
        ident.designators[0].encode(&mut out);
        assert_eq!(&out[..4], &[0x01, 0x03, 0x00, 16]);
        out.clear();
        ident.designators[1].encode(&mut out);
        assert_eq!(&out[..4], &[0x02, 0x01, 0x00, 44]);
        assert!(ident.designators[1].text().starts_with("VDS     01234567-"));
        let port = port_designators(7, 2, "iqn.x,t,0x0007");
        out.clear();
        port[0].encode(&mut out);
        assert_eq!(out, [0x51, 0x94, 0x00, 4, 0, 0, 0, 7]);
        out.clear();
        port[1].encode(&mut out);
        assert_eq!(out, [0x51, 0x95, 0x00, 4, 0, 0, 0, 2]);
        out.clear();
        port[2].encode(&mut out);
        assert_eq!(&out[..4], &[0x53, 0x98, 0x00, 16]);
        assert_eq!(port[2].text(), "iqn.x,t,0x0007");
        assert_eq!(ident.serial, "0123456789abcdef0123456789abcdef");
    }
}
