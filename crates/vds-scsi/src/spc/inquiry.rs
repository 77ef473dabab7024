//! INQUIRY: standard data and the VPD pages 00, 80, 83, B0, B1, B2. What identifies the LU
//! (vendor, product, serial, designators) is built in `crate::identity` and only encoded here.
//!
//! Identity is stable across restarts because it derives only from the LUN UUID: the unit
//! serial number is the UUID in hex, the NAA-6 designator carries 100 bits of it.

use crate::cdb::{invalid_cdb, truncate_to, Res};
use crate::lu::{Cmd, LogicalUnit};

pub const VENDOR: &str = "VDS";
pub const PRODUCT: &str = "VDS LUN";
pub const REVISION: &str = "0001";

/// IEEE company id in the NAA-6 designators. vds has no registered OUI; this value is a fixed
/// placeholder and uniqueness comes from the 100 bits of LUN UUID that follow it.
pub const COMPANY_ID: u32 = 0x00_56_44; // "VD"

/// Largest transfer accepted by one command, in bytes (the transport buffers whole commands).
pub const MAX_TRANSFER_BYTES: u64 = 32 << 20;
/// Largest COMPARE AND WRITE, in blocks.
pub const MAX_CAW_BLOCKS: u8 = 255;
/// UNMAP limits (libiscsi insists on at most 2^20 for both).
pub const MAX_UNMAP_LBA_COUNT: u32 = 1 << 20;
pub const MAX_UNMAP_DESCRIPTORS: u32 = 256;
/// Largest WRITE SAME, in blocks (also the limit for "to the end of the LU", 0 blocks).
pub const MAX_WRITE_SAME_BLOCKS: u64 = 1 << 16;
/// Physical block size we advertise: the granularity at which files and the memory store
/// deallocate.
pub const PHYSICAL_BLOCK: u32 = 4096;

/// The NAA-6 designator (16 bytes) of a LUN.
pub fn naa_designator(id: &uuid::Uuid) -> [u8; 16] {
    let u = id.as_bytes();
    let mut d = [0u8; 16];
    d[0] = 0x60 | ((COMPANY_ID >> 20) & 0x0F) as u8;
    d[1] = (COMPANY_ID >> 12) as u8;
    d[2] = (COMPANY_ID >> 4) as u8;
    d[3] = ((COMPANY_ID & 0x0F) as u8) << 4 | (u[0] >> 4);
    for k in 0..12 {
        d[4 + k] = (u[k] << 4) | (u[k + 1] >> 4);
    }
    d
}

/// Unit serial number (VPD 80): the UUID as 32 hex digits.
pub fn serial_number(id: &uuid::Uuid) -> String {
    id.simple().to_string()
}

/// Logical blocks per physical block exponent (READ CAPACITY 16 byte 13).
pub(crate) fn lbppbe(lu: &LogicalUnit) -> u8 {
    let bs = lu.block_size();
    if bs >= PHYSICAL_BLOCK {
        0
    } else {
        (PHYSICAL_BLOCK / bs).trailing_zeros() as u8
    }
}

const SUPPORTED_VPD: [u8; 6] = [0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2];

pub(crate) fn inquiry(lu: &LogicalUnit, c: &mut Cmd<'_>) -> Res {
    let evpd = c.cdb.bit(1, 0);
    let page = c.cdb.u8(2);
    let alloc = c.cdb.be16(3) as usize;
    if !evpd {
        if page != 0 {
            return Err(invalid_cdb(2, Some(7)));
        }
        standard(c.data_in);
    } else {
        vpd(lu, c, page)?;
    }
    truncate_to(c.data_in, alloc);
    Ok(())
}

/// Standard INQUIRY data for a connected direct-access device (PQ 000b, PDT 00h).
pub(crate) fn standard(d: &mut Vec<u8>) {
    d.resize(96, 0);
    d[0] = 0x00;
    d[1] = 0x00; // not removable
    d[2] = 0x06; // SPC-4
    d[3] = 0x12; // HISUP, response data format 2
    d[4] = 96 - 5;
    // TPGS 01b: implicit asymmetric access only (no SET TARGET PORT GROUPS); 3PC: EXTENDED
    // COPY.
    d[5] = 0x10 | 0x08;
    d[6] = 0x00;
    d[7] = 0x02; // CMDQUE
    d[8..16].copy_from_slice(&crate::cdb::ascii_field(VENDOR, 8));
    d[16..32].copy_from_slice(&crate::cdb::ascii_field(PRODUCT, 16));
    d[32..36].copy_from_slice(&crate::cdb::ascii_field(REVISION, 4));
    // Version descriptors: SAM-5, SPC-4, SBC-3, iSCSI (no version claimed).
    for (i, v) in [0x00A0u16, 0x0460, 0x04C0, 0x0960].iter().enumerate() {
        d[58 + 2 * i..60 + 2 * i].copy_from_slice(&v.to_be_bytes());
    }
}

/// INQUIRY data for a LUN number that is not there (PQ 011b, PDT 1Fh).
pub(crate) fn no_lun(d: &mut Vec<u8>) {
    standard(d);
    d[0] = 0x7F;
    d[5] = 0;
    d[7] = 0;
}

fn vpd(lu: &LogicalUnit, c: &mut Cmd<'_>, page: u8) -> Res {
    let d = &mut *c.data_in;
    d.extend_from_slice(&[0x00, page, 0, 0]);
    match page {
        0x00 => d.extend_from_slice(&SUPPORTED_VPD),
        0x80 => d.extend_from_slice(lu.identity().serial.as_bytes()),
        0x83 => device_identification(lu, c.nexus, d),
        0xB0 => block_limits(lu, d),
        0xB1 => {
            d.resize(64, 0);
            d[5] = 0x01; // non-rotating medium
        }
        0xB2 => {
            d.resize(8, 0);
            if lu.backing().thin() {
                // LBPU, LBPWS, LBPWS10, LBPRZ=001b; provisioning type 010b (thin).
                d[5] = 0xE4;
                d[6] = 0x02;
            }
        }
        _ => return Err(invalid_cdb(2, Some(7))),
    }
    let len = (d.len() - 4) as u16;
    d[2..4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

fn device_identification(lu: &LogicalUnit, nexus: &crate::ItNexus, d: &mut Vec<u8>) {
    // What the LU is (NAA-6, T10 vendor id), then what the port adds (relative target port,
    // target port group, SCSI name string): the same lists GetIdentificationData reports (`crate::identity`).
    for des in lu.identity().designators.iter().chain(
        crate::identity::port_designators(
            nexus.relative_target_port,
            nexus.target_port_group,
            &nexus.target_port,
        )
        .iter(),
    ) {
        des.encode(d);
    }
}

fn block_limits(lu: &LogicalUnit, d: &mut Vec<u8>) {
    d.resize(64, 0);
    let bs = u64::from(lu.block_size());
    let lbppb = 1u32 << lbppbe(lu);
    // WSNZ 0: WRITE SAME with 0 blocks writes to the end of the LU.
    d[5] = MAX_CAW_BLOCKS;
    let (otl, otlg) = optimal_transfer(lu);
    d[6..8].copy_from_slice(&otlg.to_be_bytes());
    let max_xfer = (MAX_TRANSFER_BYTES / bs) as u32;
    d[8..12].copy_from_slice(&max_xfer.to_be_bytes());
    d[12..16].copy_from_slice(&otl.to_be_bytes());
    d[16..20].copy_from_slice(&max_xfer.to_be_bytes());
    if lu.backing().thin() {
        d[20..24].copy_from_slice(&MAX_UNMAP_LBA_COUNT.to_be_bytes());
        d[24..28].copy_from_slice(&MAX_UNMAP_DESCRIPTORS.to_be_bytes());
        d[28..32].copy_from_slice(&lbppb.to_be_bytes());
        d[32..36].copy_from_slice(&0x8000_0000u32.to_be_bytes()); // UGAVALID, alignment 0
    }
    d[36..44].copy_from_slice(&MAX_WRITE_SAME_BLOCKS.to_be_bytes());
    // Maximum atomic transfer length; where atomic writes are offered, ATOMIC ALIGNMENT and
    // ATOMIC TRANSFER LENGTH GRANULARITY 1 (any LBA, any number of blocks). The two
    // with-boundary fields (56..64) stay 0: no atomic boundaries, so WRITE ATOMIC(16) needs
    // ATOMIC BOUNDARY 0.
    let atomic = atomic_blocks(lu);
    d[44..48].copy_from_slice(&atomic.to_be_bytes());
    if atomic > 0 {
        d[48..52].copy_from_slice(&1u32.to_be_bytes());
        d[52..56].copy_from_slice(&1u32.to_be_bytes());
    }
}

/// OPTIMAL TRANSFER LENGTH and OPTIMAL TRANSFER LENGTH GRANULARITY (in blocks) of VPD B0.
///
/// B0 has one of each where the hints have a read and a write value (BEHAVIOUR.md §14): the
/// write hint is reported when given (a write of the wrong size or alignment costs a
/// read-modify-write below us, a read does not), else the read hint; without either, 1 MiB
/// and the physical block. The provider has checked that the values are multiples of the
/// block size and fit the fields (`LuHints`).
pub(crate) fn optimal_transfer(lu: &LogicalUnit) -> (u32, u16) {
    let h = lu.hints();
    let shift = lu.block_shift();
    let pick = |w: u32, r: u32| if w != 0 { w } else { r };
    let size = pick(h.optimal_write_size, h.optimal_read_size);
    let align = pick(h.optimal_write_alignment, h.optimal_read_alignment);
    let otl = if size != 0 {
        size >> shift
    } else {
        ((1u64 << 20) >> shift) as u32
    };
    let otlg = if align != 0 {
        u16::try_from(align >> shift).unwrap_or(u16::MAX)
    } else {
        (1u32 << lbppbe(lu)) as u16
    };
    (otl, otlg)
}

/// Most blocks one WRITE ATOMIC(16) may write; 0 when the backing store cannot write
/// atomically.
pub(crate) fn atomic_blocks(lu: &LogicalUnit) -> u32 {
    let max = lu.backing().atomic_write_max();
    u32::try_from(max >> lu.block_shift()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naa_is_type_6_and_stable() {
        let id = uuid::Uuid::parse_str("0123456789abcdef0123456789abcdef").unwrap();
        let d = naa_designator(&id);
        assert_eq!(d[0] >> 4, 6);
        assert_eq!(d, naa_designator(&id));
        assert_eq!(&d[3..6], &[0x40, 0x12, 0x34]);
        assert_eq!(serial_number(&id), "0123456789abcdef0123456789abcdef");
    }
}
