//! EXTENDED COPY (LID1) and RECEIVE COPY RESULTS: block-to-block copies (segment descriptor
//! 02h) between logical units named by identification target descriptors (E4h, NAA
//! designator).
//!
//! A designator is resolved only among the LUs the requesting I_T nexus may see: the LUN map of
//! the target it logged in to, filtered by each LUN's unmasking list (BEHAVIOUR §13; the bug
//! class of LIO's CVE-2020-28374, where any LU of the host was reachable). Every other LU,
//! masked, on another target or not there at all, is answered alike: ILLEGAL REQUEST / COPY
//! TARGET DEVICE NOT REACHABLE (05/0D/02), so the answer tells nothing about LUs the nexus
//! may not see. A reachable other LU is admitted like a command of its own from that nexus
//! (status gate, in-flight count, reservations as a READ on the source and a WRITE on the
//! destination) before any data moves.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::cdb::{be_at, illegal, invalid_cdb, invalid_param, truncate_to, Fail, Res};
use crate::lu::{Cmd, LogicalUnit};
use crate::sense::{self, key, Sense};

pub const MAX_TARGET_DESCRIPTORS: usize = 8;
pub const MAX_SEGMENT_DESCRIPTORS: usize = 64;
/// Large enough for the most target and segment descriptors allowed, so each count limit is
/// reported as such before the list length is.
pub const MAX_DESCRIPTOR_LIST_LEN: usize = 4096;
/// Largest segment, in bytes.
pub const MAX_SEGMENT_BYTES: u64 = 64 << 20;
const TARGET_DESC_LEN: usize = 32;
const SEGMENT_02_LEN: usize = 28;
const CHUNK: u64 = 1 << 20;
const KEPT_RESULTS: usize = 16;

/// Status of finished copies, for RECEIVE COPY RESULTS / COPY STATUS.
#[derive(Default)]
pub(crate) struct CopyResults {
    done: VecDeque<CopyStatus>,
}

#[derive(Clone, Copy)]
struct CopyStatus {
    nexus: u64,
    list_id: u8,
    ok: bool,
    segments: u16,
    kib: u32,
}

/// Too many target or segment descriptors. libiscsi 1.19 (`ExtendedCopy.DescrLimits`, the
/// conformance reference) expects 26/06 for both counts, so both limits report it; the field
/// pointer still says which count (byte 2: target list, byte 8: segment list).
fn too_many_descriptors(byte: u16) -> Fail {
    Fail::Check(Sense::param(sense::TOO_MANY_TARGET_DESCRIPTORS, byte, None))
}

/// A segment descriptor that cannot be processed: COPY ABORTED with no additional sense code
/// (what libiscsi's ExtendedCopy.ValidSegDescr requires) and the segment pointer (SPC-4
/// 4.5.2.4.6, relative to the parameter list) on the offending field.
fn segment_error(byte: usize) -> Fail {
    let mut s = Sense::param(sense::NO_ADDITIONAL_SENSE, byte as u16, None);
    s.key = key::COPY_ABORTED;
    Fail::Check(s)
}

fn copy_aborted(asc: sense::Asc) -> Fail {
    Fail::Check(Sense::new(key::COPY_ABORTED, asc))
}

/// A copy target the nexus cannot reach (not visible to it, or not ONLINE).
fn not_reachable() -> Fail {
    Fail::Check(Sense::new(
        key::ILLEGAL_REQUEST,
        sense::COPY_TARGET_DEVICE_NOT_REACHABLE,
    ))
}

pub(crate) fn extended_copy(lu: &LogicalUnit, c: &mut Cmd<'_>) -> Res {
    let plen = c.cdb.be32(10) as usize;
    if plen == 0 {
        return Ok(());
    }
    if plen < 16 || c.data_out.len() < plen {
        return Err(illegal(sense::PARAMETER_LIST_LENGTH_ERROR));
    }
    let p = &c.data_out[..plen];
    let list_id = p[0];
    let usage = (p[1] >> 3) & 0x03;
    if usage == 0x01 {
        return Err(invalid_param(1, Some(4)));
    }
    if usage == 0x03 && list_id != 0 {
        return Err(invalid_param(0, None));
    }
    let tdl = be_at(p, 2, 2) as usize;
    let sdl = be_at(p, 8, 4) as usize;
    let inline = be_at(p, 12, 4) as usize;
    if tdl + sdl > MAX_DESCRIPTOR_LIST_LEN {
        return Err(illegal(sense::PARAMETER_LIST_LENGTH_ERROR));
    }
    if tdl & (TARGET_DESC_LEN - 1) != 0 {
        return Err(invalid_param(2, None));
    }
    if tdl / TARGET_DESC_LEN > MAX_TARGET_DESCRIPTORS {
        return Err(too_many_descriptors(2));
    }
    // Segment descriptors are all 28 bytes long (type 02h is the only one we take).
    if sdl.div_ceil(SEGMENT_02_LEN) > MAX_SEGMENT_DESCRIPTORS {
        return Err(too_many_descriptors(8));
    }
    if inline > 0 {
        return Err(Fail::Check(Sense::param(
            sense::INLINE_DATA_LENGTH_EXCEEDED,
            12,
            None,
        )));
    }
    if 16 + tdl + sdl > plen {
        return Err(illegal(sense::PARAMETER_LIST_LENGTH_ERROR));
    }

    // Target descriptors.
    let mut targets: Vec<Option<Arc<LogicalUnit>>> = Vec::new();
    for k in 0..tdl / TARGET_DESC_LEN {
        let off = 16 + k * TARGET_DESC_LEN;
        let t = &p[off..off + TARGET_DESC_LEN];
        if t[0] != 0xE4 {
            return Err(Fail::Check(Sense::param(
                sense::UNSUPPORTED_TARGET_DESCRIPTOR_TYPE_CODE,
                off as u16,
                None,
            )));
        }
        // LU ID TYPE (bits 7..6) is ignored: the designator alone names the LU.
        if t[1] & 0x20 != 0 {
            return Err(invalid_param(off + 1, Some(5))); // NUL: no null device here
        }
        if t[1] & 0x1F != 0 {
            return Err(invalid_param(off + 1, Some(4))); // only direct-access devices
        }
        let code_set = t[4] & 0x0F;
        let assoc = (t[5] >> 4) & 0x03;
        let dtype = t[5] & 0x0F;
        let dlen = t[7] as usize;
        if code_set != 1 || assoc != 0 || dtype != 3 || dlen != 16 {
            return Err(copy_aborted(sense::COPY_TARGET_DEVICE_NOT_REACHABLE));
        }
        let mut naa = [0u8; 16];
        naa.copy_from_slice(&t[8..24]);
        let target = if naa == lu.naa() {
            None
        } else {
            let other = c
                .scope
                .and_then(|m| m.visible_by_naa(&c.nexus.initiator_name, &naa))
                .ok_or_else(not_reachable)?;
            Some(other.clone())
        };
        let block_len = be_at(t, 29, 3) as u32;
        let bs = target.as_deref().unwrap_or(lu).block_size();
        if block_len != bs {
            return Err(invalid_param(off + 29, None));
        }
        targets.push(target);
    }
    let get = |i: usize| -> &LogicalUnit { targets[i].as_deref().unwrap_or(lu) };

    // Segment descriptors: validate all, then run.
    let mut segs = Vec::new();
    let mut off = 16 + tdl;
    let end = 16 + tdl + sdl;
    while off < end {
        if segs.len() == MAX_SEGMENT_DESCRIPTORS {
            return Err(too_many_descriptors(8));
        }
        if off + 4 > end {
            return Err(illegal(sense::PARAMETER_LIST_LENGTH_ERROR));
        }
        if p[off] != 0x02 {
            return Err(Fail::Check(Sense::param(
                sense::UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE_CODE,
                off as u16,
                None,
            )));
        }
        if be_at(p, off + 2, 2) as usize != SEGMENT_02_LEN - 4 {
            return Err(invalid_param(off + 2, None));
        }
        if off + SEGMENT_02_LEN > end {
            return Err(illegal(sense::PARAMETER_LIST_LENGTH_ERROR));
        }
        let src = be_at(p, off + 4, 2) as usize;
        let dst = be_at(p, off + 6, 2) as usize;
        // Errors found while processing a segment abort the copy (COPY ABORTED).
        if src >= targets.len() || dst >= targets.len() {
            return Err(segment_error(off + 4));
        }
        let blocks = be_at(p, off + 10, 2);
        let src_lba = be_at(p, off + 12, 8);
        let dst_lba = be_at(p, off + 20, 8);
        let (s, d) = (get(src), get(dst));
        if blocks * u64::from(s.block_size()) > MAX_SEGMENT_BYTES {
            return Err(invalid_param(off + 10, None));
        }
        for (x, lba) in [(s, src_lba), (d, dst_lba)] {
            if x.check_range(lba, blocks).is_err() {
                return Err(segment_error(off + 10));
            }
        }
        segs.push((src, dst, blocks, src_lba, dst_lba));
        off += SEGMENT_02_LEN;
    }

    // Every other LU a segment uses is admitted before any data moves, and stays counted in
    // flight until the copy ends.
    let mut admitted = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let Some(other) = t.as_deref() else {
            continue;
        };
        let read = segs.iter().any(|s| s.0 == i);
        let write = segs.iter().any(|s| s.1 == i);
        if read || write {
            admitted.push(other.admit_copy(c.nexus, write)?);
        }
    }

    let mut status = CopyStatus {
        nexus: c.nexus.id,
        list_id,
        ok: false,
        segments: 0,
        kib: 0,
    };
    let mut buf = Vec::new();
    let mut result = Ok(());
    for &(src, dst, blocks, src_lba, dst_lba) in &segs {
        let (s, d) = (get(src), get(dst));
        if let Err(e) = copy_segment(lu, s, d, blocks, src_lba, dst_lba, &mut buf) {
            result = Err(e);
            break;
        }
        status.segments += 1;
        let bytes = blocks * u64::from(s.block_size());
        status.kib = status.kib.saturating_add((bytes / 1024) as u32);
    }
    status.ok = result.is_ok();
    if usage != 0x03 {
        let mut r = lu.copy_results.lock();
        r.done
            .retain(|x| !(x.nexus == status.nexus && x.list_id == list_id));
        if r.done.len() == KEPT_RESULTS {
            r.done.pop_front();
        }
        r.done.push_back(status);
    }
    drop(admitted);
    result
}

fn copy_segment(
    this: &LogicalUnit,
    s: &LogicalUnit,
    d: &LogicalUnit,
    blocks: u64,
    src_lba: u64,
    dst_lba: u64,
    buf: &mut Vec<u8>,
) -> Res {
    d.check_writable()?;
    let bs = u64::from(s.block_size());
    let total = blocks * bs;
    let mut done = 0u64;
    while done < total {
        let n = (total - done).min(CHUNK);
        buf.resize(n as usize, 0);
        let from = s.offset(src_lba) + done;
        if let Err(e) = s.backing().read_at(buf, from) {
            return Err(io_fail(this, s, e, false));
        }
        let to = d.offset(dst_lba) + done;
        if let Err(e) = d.backing().write_at(buf, to, d.write_through()) {
            return Err(io_fail(this, d, e, true));
        }
        done += n;
    }
    Ok(())
}

/// An I/O error on `failing`: this LU's own errors are medium errors; another LU's make that
/// LU FAILED and abort the copy.
fn io_fail(this: &LogicalUnit, failing: &LogicalUnit, err: std::io::Error, write: bool) -> Fail {
    if std::ptr::eq(this, failing) {
        Fail::Io { write, err }
    } else {
        failing.mark_failed(&err);
        copy_aborted(sense::COPY_TARGET_DEVICE_NOT_REACHABLE)
    }
}

pub(crate) fn receive_copy_results(lu: &LogicalUnit, c: &mut Cmd<'_>) -> Res {
    let sa = c.cdb.u8(1) & 0x1F;
    let alloc = c.cdb.be32(10) as usize;
    let d = &mut *c.data_in;
    if sa == 0x03 {
        d.resize(44, 0);
        d[4] = 0x01; // SNLID: list identifier usage 11b supported
        d[8..10].copy_from_slice(&(MAX_TARGET_DESCRIPTORS as u16).to_be_bytes());
        d[10..12].copy_from_slice(&(MAX_SEGMENT_DESCRIPTORS as u16).to_be_bytes());
        d[12..16].copy_from_slice(&(MAX_DESCRIPTOR_LIST_LEN as u32).to_be_bytes());
        d[16..20].copy_from_slice(&(MAX_SEGMENT_BYTES as u32).to_be_bytes());
        // Max inline data 0, held data limit 0, max stream transfer 0.
        d[34..36].copy_from_slice(&1u16.to_be_bytes()); // total concurrent copies
        d[36] = 1; // maximum concurrent copies
        d[37] = lu.block_shift() as u8; // data segment granularity (log2 bytes)
        let codes = [0x02u8, 0xE4];
        d[43] = codes.len() as u8;
        d.extend_from_slice(&codes);
        let len = (d.len() - 4) as u32;
        d[0..4].copy_from_slice(&len.to_be_bytes());
    } else {
        let list_id = c.cdb.u8(2);
        let r = lu.copy_results.lock();
        let s = r
            .done
            .iter()
            .rev()
            .find(|x| x.nexus == c.nexus.id && x.list_id == list_id)
            .copied()
            .ok_or_else(|| invalid_cdb(2, None))?;
        d.resize(12, 0);
        d[0..4].copy_from_slice(&8u32.to_be_bytes());
        d[4] = if s.ok { 0x00 } else { 0x01 };
        d[5..7].copy_from_slice(&s.segments.to_be_bytes());
        d[7] = 0x01; // transfer count in KiB
        d[8..12].copy_from_slice(&s.kib.to_be_bytes());
    }
    truncate_to(d, alloc);
    Ok(())
}
