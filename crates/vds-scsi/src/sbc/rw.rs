//! READ, WRITE, VERIFY, WRITE AND VERIFY, ORWRITE, COMPARE AND WRITE, PRE-FETCH and
//! SYNCHRONIZE CACHE. The READ and WRITE paths allocate nothing beyond the caller's Data-In
//! buffer, and they are the inline commands of the table: in [`crate::Mode::Inline`] they go
//! through the store's `try_` methods and a `WouldBlock` answer becomes
//! [`Fail::WouldBlock`], not a medium error.
//!
//! Started through [`crate::LunMap::start`] on a store with asynchronous I/O (RBD), READ,
//! WRITE, COMPARE AND WRITE and SYNCHRONIZE CACHE do their checks and hand the one store
//! operation back ([`Fail::Pending`]); the command ends in [`crate::Pending::finish`].
//!
//! Under the read-back-verify hint (BEHAVIOUR.md §14) every write of this module is made
//! durable (FUA), read back and compared; a WRITE under it never runs inline (the read-back
//! would wait, and a command answered `WouldBlock` must have changed nothing).

use vds_backstore::AioOp;

use crate::cdb::{invalid_cdb, io_err, read_err, write_err, Cdb, Fail, Res, StoreIo};
use crate::lu::{Cmd, LogicalUnit};
use crate::sense::{self, key, Sense};
use crate::spc::inquiry::{MAX_CAW_BLOCKS, MAX_TRANSFER_BYTES};
use crate::Mode;

/// LBA, block count and where the count lives in the CDB (for the field pointer).
struct Range {
    lba: u64,
    blocks: u64,
    len_byte: u16,
}

fn range(cdb: Cdb<'_>) -> Range {
    match cdb.u8(0) {
        0x08 | 0x0A => {
            let n = u64::from(cdb.u8(4));
            Range {
                lba: u64::from(cdb.be24(1) & 0x1F_FFFF),
                blocks: if n == 0 { 256 } else { n },
                len_byte: 4,
            }
        }
        0x28 | 0x2A | 0x2E | 0x2F | 0x34 | 0x35 => Range {
            lba: u64::from(cdb.be32(2)),
            blocks: u64::from(cdb.be16(7)),
            len_byte: 7,
        },
        0xA8 | 0xAA | 0xAE | 0xAF => Range {
            lba: u64::from(cdb.be32(2)),
            blocks: u64::from(cdb.be32(6)),
            len_byte: 6,
        },
        _ => Range {
            lba: cdb.be64(2),
            blocks: u64::from(cdb.be32(10)),
            len_byte: 10,
        },
    }
}

/// Range, capacity and transfer-size checks common to every data command; returns
/// (byte offset, byte length).
fn checked(lu: &LogicalUnit, c: &Cmd<'_>) -> Res<(u64, u64, Range)> {
    let r = range(c.cdb);
    lu.check_range(r.lba, r.blocks)?;
    let bytes = r.blocks << lu.block_shift();
    if bytes > MAX_TRANSFER_BYTES {
        return Err(invalid_cdb(r.len_byte, None));
    }
    Ok((lu.offset(r.lba), bytes, r))
}

fn fua(lu: &LogicalUnit, c: &Cmd<'_>) -> bool {
    // READ(6)/WRITE(6) have no FUA bit; byte 1 bit 3 is FUA in every other form.
    let has_bit = !matches!(c.cdb.u8(0), 0x08 | 0x0A);
    (has_bit && c.cdb.bit(1, 3)) || lu.write_through() || lu.read_back_verify()
}

/// The read-back-verify hint: reads back what was just written at byte offset `off` and
/// compares. A difference is MEDIUM ERROR / WRITE ERROR (03/0C/00) with the INFORMATION field
/// set to the LBA of the first block that differs (SBC-3 4.18: a medium error reports the
/// failing LBA); the LU stays as it is, since the host may rewrite the block. A read error is
/// a read medium error like any other.
fn read_back(lu: &LogicalUnit, data: &[u8], off: u64) -> Res {
    if !lu.read_back_verify() {
        return Ok(());
    }
    let mut back = vec![0u8; data.len()];
    lu.backing().read_at(&mut back, off).map_err(read_err)?;
    match back.iter().zip(data).position(|(a, b)| a != b) {
        Some(i) => Err(Fail::Check(
            Sense::new(key::MEDIUM_ERROR, sense::WRITE_ERROR)
                .with_info((off + i as u64) >> lu.block_shift()),
        )),
        None => Ok(()),
    }
}

pub(crate) fn read(lu: &LogicalUnit, c: &mut Cmd<'_>) -> Res {
    let (off, len, _) = checked(lu, c)?;
    if len == 0 {
        return Ok(());
    }
    if c.aio_store(lu).is_some() {
        return pending(
            AioOp::Read {
                offset: off,
                len: len as usize,
            },
            false,
        );
    }
    let store = lu.backing();
    match c.mode {
        Mode::Blocking => store.read_into(c.data_in, len as usize, off),
        Mode::Inline => store.try_read_into(c.data_in, len as usize, off),
    }
    .map_err(|e| io_err(c.mode, false, e))
}

pub(crate) fn write(lu: &LogicalUnit, c: &mut Cmd<'_>) -> Res {
    let (off, len, _) = checked(lu, c)?;
    lu.check_writable()?;
    if len == 0 {
        return Ok(());
    }
    // Data-Out shorter than the CDB asks (iSCSI EDTL < transfer length): write what was sent;
    // the transport reports the overflow residual. Longer: the extra is ignored (underflow).
    let n = (len as usize).min(c.data_out.len());
    if n == 0 {
        return Ok(());
    }
    if c.mode == Mode::Inline && lu.read_back_verify() {
        return Err(Fail::WouldBlock);
    }
    let f = fua(lu, c);
    if c.aio_store(lu).is_some() && !lu.read_back_verify() {
        return pending(
            AioOp::Write {
                offset: off,
                len: n,
            },
            f,
        );
    }
    let store = lu.backing();
    match c.mode {
        Mode::Blocking => store.write_at(&c.data_out[..n], off, f),
        Mode::Inline => store.try_write_at(&c.data_out[..n], off, f),
    }
    .map_err(|e| io_err(c.mode, true, e))?;
    read_back(lu, &c.data_out[..n], off)
}

pub(crate) fn write_and_verify(lu: &LogicalUnit, c: &mut Cmd<'_>) -> Res {
    let (off, len, _) = checked(lu, c)?;
    lu.check_writable()?;
    let n = (len as usize).min(c.data_out.len());
    if n == 0 {
        return Ok(());
    }
    // The verify step compares what was just written: it is on the medium once the write
    // is forced to it, so write with FUA.
    lu.backing()
        .write_at(&c.data_out[..n], off, true)
        .map_err(write_err)?;
    read_back(lu, &c.data_out[..n], off)
}

/// The command's store operation, handed back to be submitted asynchronously.
pub(crate) fn pending(op: AioOp, flush_after: bool) -> Res {
    Err(Fail::Pending(StoreIo { op, flush_after }))
}

/// MISCOMPARE DURING VERIFY OPERATION with the offset of the first differing byte.
pub(crate) fn miscompare(offset: usize) -> Fail {
    Fail::Check(
        Sense::new(key::MISCOMPARE, sense::MISCOMPARE_DURING_VERIFY_OPERATION)
            .with_info(offset as u64),
    )
}

pub(crate) fn verify(lu: &LogicalUnit, c: &mut Cmd<'_>) -> Res {
    let (off, len, _) = checked(lu, c)?;
    let bytchk = (c.cdb.u8(1) >> 1) & 0x03;
    if bytchk == 0x02 {
        return Err(invalid_cdb(1, Some(2)));
    }
    if len == 0 {
        return Ok(());
    }
    let bs = lu.block_size() as usize;
    let mut medium = vec![0u8; len as usize];
    lu.backing().read_at(&mut medium, off).map_err(read_err)?;
    match bytchk {
        0 => Ok(()),
        1 => {
            if c.data_out.len() < len as usize {
                return Err(Fail::Check(Sense::illegal(
                    sense::INVALID_FIELD_IN_COMMAND_INFORMATION_UNIT,
                )));
            }
            match medium.iter().zip(c.data_out).position(|(a, b)| a != b) {
                Some(i) => Err(miscompare(i)),
                None => Ok(()),
            }
        }
        _ => {
            // 11b: one block of Data-Out compared against every block.
            if c.data_out.len() < bs {
                return Err(Fail::Check(Sense::illegal(
                    sense::INVALID_FIELD_IN_COMMAND_INFORMATION_UNIT,
                )));
            }
            for (k, blk) in medium.chunks(bs).enumerate() {
                if let Some(i) = blk.iter().zip(&c.data_out[..bs]).position(|(a, b)| a != b) {
                    return Err(miscompare(k * bs + i));
                }
            }
            Ok(())
        }
    }
}

pub(crate) fn orwrite(lu: &LogicalUnit, c: &mut Cmd<'_>) -> Res {
    let (off, len, _) = checked(lu, c)?;
    lu.check_writable()?;
    let n = (len as usize).min(c.data_out.len());
    if n == 0 {
        return Ok(());
    }
    let f = fua(lu, c);
    let _atomic = lu.atomic_lock.lock();
    let mut buf = vec![0u8; n];
    lu.backing().read_at(&mut buf, off).map_err(read_err)?;
    for (b, d) in buf.iter_mut().zip(c.data_out) {
        *b |= d;
    }
    lu.backing().write_at(&buf, off, f).map_err(write_err)?;
    read_back(lu, &buf, off)
}

pub(crate) fn compare_and_write(lu: &LogicalUnit, c: &mut Cmd<'_>) -> Res {
    let lba = c.cdb.be64(2);
    let blocks = c.cdb.u8(13);
    lu.check_range(lba, u64::from(blocks))?;
    // NUMBER OF LOGICAL BLOCKS is one byte: it cannot exceed MAX_CAW_BLOCKS (255).
    const _: () = assert!(MAX_CAW_BLOCKS == u8::MAX);
    lu.check_writable()?;
    let len = (u64::from(blocks) << lu.block_shift()) as usize;
    if c.data_out.len() != 2 * len {
        // Data-Out must hold exactly the verify data and the write data (an initiator asking
        // for 256 blocks sends NUMBER OF LOGICAL BLOCKS 0 with 512 blocks of data).
        return Err(invalid_cdb(13, None));
    }
    if blocks == 0 {
        return Ok(());
    }
    let off = lu.offset(lba);
    let f = fua(lu, c);
    if c.mode == Mode::Inline {
        // The store compares and writes atomically when the range fits its one operation
        // (librbd: one 512-byte sector); anything wider runs the blocking way below.
        return match c.aio_store(lu) {
            Some(s) if !lu.read_back_verify() && s.compare_and_write_in_one(off, len as u64) => {
                pending(AioOp::CompareAndWrite { offset: off, len }, f)
            }
            _ => Err(Fail::WouldBlock),
        };
    }
    let (verify, data) = c.data_out.split_at(len);
    let _atomic = lu.atomic_lock.lock();
    let mut cur = vec![0u8; len];
    lu.backing().read_at(&mut cur, off).map_err(read_err)?;
    if let Some(i) = cur.iter().zip(verify).position(|(a, b)| a != b) {
        return Err(miscompare(i));
    }
    lu.backing().write_at(data, off, f).map_err(write_err)?;
    read_back(lu, data, off)
}

/// WRITE ATOMIC(16): up to the store's atomic maximum, any block alignment and any number of
/// blocks (alignment and granularity 1), in one atomic call.
pub(crate) fn write_atomic(lu: &LogicalUnit, c: &mut Cmd<'_>) -> Res {
    let lba = c.cdb.be64(2);
    let blocks = u64::from(c.cdb.be16(12));
    lu.check_range(lba, blocks)?;
    if c.cdb.be16(10) != 0 {
        // ATOMIC BOUNDARY: the maximum boundary size is 0, so none may be requested.
        return Err(invalid_cdb(10, None));
    }
    let max = u64::from(crate::spc::inquiry::atomic_blocks(lu));
    if blocks == 0 {
        return Ok(());
    }
    if blocks > max {
        return Err(invalid_cdb(12, None));
    }
    lu.check_writable()?;
    let len = (blocks << lu.block_shift()) as usize;
    if c.data_out.len() < len {
        // A partial atomic write would not be atomic: refuse rather than write a prefix.
        return Err(Fail::Check(Sense::illegal(
            sense::INVALID_FIELD_IN_COMMAND_INFORMATION_UNIT,
        )));
    }
    let f = fua(lu, c);
    // The store keeps reads and writes from seeing a half-done atomic write; this keeps an
    // atomic write from landing between COMPARE AND WRITE's (or ORWRITE's) read and write.
    let _atomic = lu.atomic_lock.lock();
    lu.backing()
        .write_atomic(&c.data_out[..len], lu.offset(lba), f)
        .map_err(write_err)?;
    read_back(lu, &c.data_out[..len], lu.offset(lba))
}

pub(crate) fn prefetch(lu: &LogicalUnit, c: &mut Cmd<'_>) -> Res {
    let r = range(c.cdb);
    lu.check_range(r.lba, r.blocks)?;
    // The page cache is the cache; there is nothing to load ahead of time that the next read
    // would not load just as fast.
    Ok(())
}

pub(crate) fn synchronize_cache(lu: &LogicalUnit, c: &mut Cmd<'_>) -> Res {
    let r = range(c.cdb);
    lu.check_range(r.lba, r.blocks)?;
    if c.mode == Mode::Inline {
        return match c.aio_store(lu) {
            Some(_) => pending(AioOp::Flush, false),
            None => Err(Fail::WouldBlock),
        };
    }
    lu.backing().flush().map_err(write_err)
}
