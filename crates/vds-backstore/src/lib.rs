//! Backing stores: where a LUN's blocks live.
//!
//! The one seam is [`BackingStore`], a small capability trait over positioned byte I/O.
//! Implementations: sparse file (thin; UNMAP punches holes), block device, memory, null, and
//! the fault filters (`delay`, `error`) that wrap any of them. This crate is one of the few that
//! may touch the filesystem (see ARCHITECTURE.md).
//!
//! Cache model: a file or block store writes through the kernel page cache, which is the
//! write-back cache of the LUN. `flush` (SYNCHRONIZE CACHE, SetStatus OFFLINE, shutdown) makes
//! every completed write durable (`fdatasync`); a write with `fua = true` is durable before it
//! returns.

use std::io;

/// Where a LUN's blocks live. All offsets and lengths are in bytes; callers (the SCSI engine)
/// have already checked `offset + len <= size()`.
///
/// Implementations must be safe to call from many threads at once: positioned reads and writes
/// of disjoint ranges proceed in parallel.
pub trait BackingStore: Send + Sync {
    /// Short kind name: `"file"`, `"block"`, `"memory"`, `"null"`.
    fn kind(&self) -> &'static str;
    /// Current capacity in bytes.
    fn size(&self) -> u64;
    /// Fill `buf` from `offset`. Holes read as zeroes.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Write `buf` at `offset`; with `fua`, the data is on stable storage when this returns.
    fn write_at(&self, buf: &[u8], offset: u64, fua: bool) -> io::Result<()>;
    /// Make every completed write durable (the write-back cache flush).
    fn flush(&self) -> io::Result<()>;
    /// Deallocate a range; afterwards it reads as zeroes. Stores that cannot deallocate write
    /// zeroes instead.
    fn unmap(&self, offset: u64, len: u64) -> io::Result<()>;
    /// Whether `unmap` really deallocates (thin provisioning: LBPME, VPD B2).
    fn thin(&self) -> bool {
        false
    }
    /// Whether the byte range starting at `offset` is allocated, and for how many bytes that
    /// answer holds (at least 1, at most `len`). Used by GET LBA STATUS. Stores without holes
    /// answer `(true, len)`.
    fn mapped_extent(&self, offset: u64, len: u64) -> io::Result<(bool, u64)> {
        let _ = offset;
        Ok((true, len))
    }
    /// Change the capacity (extend/shrink). Stores of fixed size answer `Unsupported`.
    fn resize(&self, new_size: u64) -> io::Result<()> {
        let _ = new_size;
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
    /// Re-check the store against what it was opened as (size, and for files the device and
    /// inode at its path). `Ok(())` if it is still the same and answering I/O.
    fn probe(&self) -> io::Result<()> {
        Ok(())
    }
}
