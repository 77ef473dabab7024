//! Thin provisioning: UNMAP, WRITE SAME (with UNMAP and NDOB) and GET LBA STATUS.

use crate::cdb::{be_at, illegal, invalid_cdb, invalid_param, read_err, write_err, Fail, Res};
use crate::lu::{Cmd, LogicalUnit};
use crate::sense;
use crate::spc::inquiry::{MAX_UNMAP_DESCRIPTORS, MAX_UNMAP_LBA_COUNT, MAX_WRITE_SAME_BLOCKS};

pub(crate) fn unmap(lu: &LogicalUnit, c: &mut Cmd<'_>) -> Res {
    let plen = c.cdb.be16(7) as usize;
    if plen == 0 {
        return Ok(());
    }
    if plen < 8 || c.data_out.len() < plen {
        return Err(illegal(sense::PARAMETER_LIST_LENGTH_ERROR));
    }
    lu.check_writable()?;
    let p = &c.data_out[..plen];
    let bd_len = be_at(p, 2, 2) as usize;
    if bd_len > plen - 8 {
        return Err(invalid_param(2, None));
    }
    let count = bd_len / 16;
    let max = if lu.backing().thin() {
        MAX_UNMAP_DESCRIPTORS as usize
    } else {
        0
    };
    if count > max {
        return Err(invalid_param(2, None));
    }
    let descs = || {
        (0..count).map(|k| {
            (
                8 + 16 * k,
                be_at(p, 8 + 16 * k, 8),
                be_at(p, 16 + 16 * k, 4),
            )
        })
    };
    // Validate every descriptor before deallocating anything.
    for (at, lba, n) in descs() {
        lu.check_range(lba, n)?;
        if n > u64::from(MAX_UNMAP_LBA_COUNT) {
            return Err(invalid_param(at + 8, None));
        }
    }
    for (_, lba, n) in descs() {
        if n > 0 {
            lu.backing()
                .unmap(lu.offset(lba), n << lu.block_shift())
                .map_err(write_err)?;
        }
    }
    forced(lu)
}

/// With the write-back cache off every write is durable at GOOD, and a deallocation is a
/// write: the store's `unmap` has no FUA form, so flush after it.
fn forced(lu: &LogicalUnit) -> Res {
    if lu.write_through() {
        lu.backing().flush().map_err(write_err)?;
    }
    Ok(())
}

pub(crate) fn write_same(lu: &LogicalUnit, c: &mut Cmd<'_>) -> Res {
    let sixteen = c.cdb.u8(0) == 0x93;
    let unmap_bit = c.cdb.bit(1, 3);
    let ndob = sixteen && c.cdb.bit(1, 0);
    let (lba, blocks, len_byte) = if sixteen {
        (c.cdb.be64(2), u64::from(c.cdb.be32(10)), 10)
    } else {
        (u64::from(c.cdb.be32(2)), u64::from(c.cdb.be16(7)), 7)
    };
    lu.check_range(lba, blocks)?;
    // 0 blocks: from LBA to the end of the LU (WSNZ is 0 in the Block Limits page).
    let blocks = if blocks == 0 {
        lu.num_blocks() - lba
    } else {
        blocks
    };
    if blocks > MAX_WRITE_SAME_BLOCKS {
        return Err(invalid_cdb(len_byte, None));
    }
    lu.check_writable()?;
    let bs = lu.block_size() as usize;
    let zero = if ndob {
        true
    } else {
        if c.data_out.len() != bs {
            return Err(invalid_cdb(len_byte, None));
        }
        c.data_out.iter().all(|&b| b == 0)
    };
    if blocks == 0 {
        return Ok(());
    }
    let off = lu.offset(lba);
    let total = blocks << lu.block_shift();
    // UNMAP on a thin LU deallocates whatever the data block holds (as LIO does; libiscsi's
    // UnmapUntilEnd reads zeroes back); on a thick LU only zeroes may be "unmapped".
    let discard = (unmap_bit && lu.backing().thin()) || (zero && (unmap_bit || ndob));
    if c.mode == crate::Mode::Inline {
        // Started on a store with asynchronous I/O: one discard (WRITE SAME with UNMAP) or
        // one `writesame` of the data block; NDOB without UNMAP runs the blocking way.
        let wt = lu.write_through();
        return match c.aio_store(lu) {
            Some(_) if discard => crate::sbc::rw::pending(
                vds_backstore::AioOp::Discard {
                    offset: off,
                    len: total,
                },
                wt,
            ),
            Some(_) if !ndob => crate::sbc::rw::pending(
                vds_backstore::AioOp::WriteSame {
                    offset: off,
                    len: total,
                    block: bs,
                },
                wt,
            ),
            _ => Err(Fail::WouldBlock),
        };
    }
    if discard {
        lu.backing().unmap(off, total).map_err(write_err)?;
        return forced(lu);
    }
    let chunk_blocks = ((1usize << 20) / bs).min(blocks as usize).max(1);
    let pattern: Vec<u8> = if ndob {
        vec![0u8; chunk_blocks * bs]
    } else {
        c.data_out.repeat(chunk_blocks)
    };
    let fua = lu.write_through();
    let mut done = 0u64;
    while done < total {
        let n = (total - done).min(pattern.len() as u64) as usize;
        lu.backing()
            .write_at(&pattern[..n], off + done, fua)
            .map_err(write_err)?;
        done += n as u64;
    }
    Ok(())
}

/// Most descriptors one GET LBA STATUS returns (bounds the scan).
const MAX_LBA_STATUS_DESCRIPTORS: usize = 1024;

pub(crate) fn get_lba_status(lu: &LogicalUnit, c: &mut Cmd<'_>) -> Res {
    let start = c.cdb.be64(2);
    let alloc = c.cdb.be32(10) as usize;
    let n = lu.num_blocks();
    if start >= n {
        return Err(crate::cdb::lba_out_of_range());
    }
    let room = (alloc.saturating_sub(8) / 16).clamp(1, MAX_LBA_STATUS_DESCRIPTORS);
    let shift = lu.block_shift();
    let d = &mut *c.data_in;
    d.extend_from_slice(&[0; 8]);
    // Provisioning status is tracked per physical block, so descriptors start on physical
    // block boundaries. A starting LBA inside a physical block is reported from the next
    // boundary (when there is one): libiscsi 1.19 GetLBAStatus.UnmapSingle, our conformance
    // reference, asks for LBA i+1 after unmapping [0, i) and requires the first descriptor at
    // i + LBPPB.
    let lbppb = 1u64 << crate::spc::inquiry::lbppbe(lu);
    let up = start.next_multiple_of(lbppb);
    let mut pos = if up < n { up } else { start };
    let mut last: Option<(u64, u64, bool)> = None;
    let mut count = 0;
    while pos < n {
        let want = (n - pos).min(u64::from(u32::MAX));
        let (mapped, bytes) = lu
            .backing()
            .mapped_extent(pos << shift, want << shift)
            .map_err(read_err)?;
        let blocks = (bytes >> shift).clamp(1, want);
        match &mut last {
            Some((_, len, m)) if *m == mapped && *len + blocks <= u64::from(u32::MAX) => {
                *len += blocks
            }
            _ => {
                if let Some(prev) = last.take() {
                    push(d, prev);
                    count += 1;
                    if count == room {
                        break;
                    }
                }
                last = Some((pos, blocks, mapped));
            }
        }
        pos += blocks;
    }
    if count < room {
        if let Some(prev) = last {
            push(d, prev);
        }
    }
    let len = (d.len() - 4) as u32;
    d[0..4].copy_from_slice(&len.to_be_bytes());
    crate::cdb::truncate_to(d, alloc);
    Ok(())
}

fn push(d: &mut Vec<u8>, (lba, blocks, mapped): (u64, u64, bool)) {
    d.extend_from_slice(&lba.to_be_bytes());
    d.extend_from_slice(&(blocks as u32).to_be_bytes());
    d.push(if mapped { 0 } else { 1 });
    d.extend_from_slice(&[0, 0, 0]);
}
