//! CDB access and the engine's internal failure type.
//!
//! Handlers read fields through [`Cdb`] (big-endian, bounds already guaranteed by the
//! dispatcher, which checked the CDB length against the command table) and fail with [`Fail`],
//! which the logical unit turns into status and sense in exactly one place.

use std::io;

use crate::sense::{self, Asc, Sense};

/// Why a command did not complete with GOOD.
#[derive(Debug)]
pub(crate) enum Fail {
    /// CHECK CONDITION with this sense.
    Check(Sense),
    /// RESERVATION CONFLICT (no sense).
    Conflict,
    /// The backing store failed: MEDIUM ERROR, and the LU goes FAILED.
    Io { write: bool, err: io::Error },
    /// In [`crate::Mode::Inline`]: the command would have had to wait (not an inline command,
    /// or the store answered `WouldBlock`). Not a failure: it runs again in blocking mode.
    WouldBlock,
    /// Started by [`crate::LunMap::start`] on a store with asynchronous I/O: the checks are
    /// done and what is left is this one store operation, which the caller submits; the
    /// command ends in [`crate::Pending::finish`].
    Pending(StoreIo),
}

/// The store operation a pending command waits for, and what follows it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoreIo {
    pub op: vds_backstore::AioOp,
    /// Flush once the operation succeeded (FUA, write-through), before GOOD.
    pub flush_after: bool,
}

impl From<Sense> for Fail {
    fn from(s: Sense) -> Fail {
        Fail::Check(s)
    }
}

pub(crate) type Res<T = ()> = Result<T, Fail>;

pub(crate) fn invalid_cdb(byte: u16, bit: Option<u8>) -> Fail {
    Fail::Check(Sense::invalid_cdb(byte, bit))
}

pub(crate) fn invalid_param(byte: usize, bit: Option<u8>) -> Fail {
    Fail::Check(Sense::invalid_param(
        byte.min(u16::MAX as usize) as u16,
        bit,
    ))
}

pub(crate) fn illegal(asc: Asc) -> Fail {
    Fail::Check(Sense::illegal(asc))
}

pub(crate) fn lba_out_of_range() -> Fail {
    illegal(sense::LBA_OUT_OF_RANGE)
}

pub(crate) fn read_err(err: io::Error) -> Fail {
    Fail::Io { write: false, err }
}

pub(crate) fn write_err(err: io::Error) -> Fail {
    Fail::Io { write: true, err }
}

/// The failure for a store error in `mode`: in [`crate::Mode::Inline`] a `WouldBlock` answer
/// of a `try_` method is [`Fail::WouldBlock`]; anything else is an I/O error.
pub(crate) fn io_err(mode: crate::Mode, write: bool, err: io::Error) -> Fail {
    if mode == crate::Mode::Inline && err.kind() == io::ErrorKind::WouldBlock {
        return Fail::WouldBlock;
    }
    Fail::Io { write, err }
}

/// A CDB whose length the dispatcher has already checked against the command table.
#[derive(Clone, Copy)]
pub(crate) struct Cdb<'a>(pub &'a [u8]);

impl Cdb<'_> {
    pub fn u8(&self, i: usize) -> u8 {
        self.0[i]
    }
    pub fn be16(&self, i: usize) -> u16 {
        u16::from_be_bytes([self.0[i], self.0[i + 1]])
    }
    pub fn be24(&self, i: usize) -> u32 {
        u32::from_be_bytes([0, self.0[i], self.0[i + 1], self.0[i + 2]])
    }
    pub fn be32(&self, i: usize) -> u32 {
        u32::from_be_bytes([self.0[i], self.0[i + 1], self.0[i + 2], self.0[i + 3]])
    }
    pub fn be64(&self, i: usize) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[i..i + 8]);
        u64::from_be_bytes(b)
    }
    /// Bit `bit` of byte `i`.
    pub fn bit(&self, i: usize, bit: u8) -> bool {
        self.0[i] & (1 << bit) != 0
    }
}

/// Big-endian reads from parameter data that may be short: missing bytes read as zero
/// (callers validate lengths first where it matters).
pub(crate) fn be_at(data: &[u8], i: usize, n: usize) -> u64 {
    let mut v = 0u64;
    for k in 0..n {
        v = (v << 8) | u64::from(data.get(i + k).copied().unwrap_or(0));
    }
    v
}

/// Truncate `data` to the CDB's allocation length.
pub(crate) fn truncate_to(data: &mut Vec<u8>, alloc_len: usize) {
    if data.len() > alloc_len {
        data.truncate(alloc_len);
    }
}

/// Pad a string with spaces (or cut it) to exactly `n` bytes, as INQUIRY ASCII fields want.
pub(crate) fn ascii_field(s: &str, n: usize) -> Vec<u8> {
    let mut v: Vec<u8> = s.bytes().take(n).collect();
    v.resize(n, b' ');
    v
}
