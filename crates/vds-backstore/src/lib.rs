//! Backing stores: where a LUN's blocks live.
//!
//! The one seam is [`BackingStore`], a small capability trait over positioned byte I/O.
//! Implementations: sparse file (thin; UNMAP punches holes), block device, memory, null, and
//! the fault filters (`delay`, `error`) that wrap any of them; for durability tests,
//! [`PowerCut`] (memory that loses unflushed writes at a simulated power cut). This crate is
//! one of the few that may touch the filesystem (see ARCHITECTURE.md).
//!
//! Cache model: a file or block store writes through the kernel page cache, which is the
//! write-back cache of the LUN. `flush` (SYNCHRONIZE CACHE, SetStatus OFFLINE, shutdown) makes
//! every completed write durable (`fdatasync`); a write with `fua = true` is durable before it
//! returns. A file the array creates and relies on after a crash (a LUN's file, a journal) has
//! its directory synced too ([`sync_parent_dir`]).
//!
//! Entry points: [`open`] turns a [`BackingKind`] into a store, [`create_file`] prepares a
//! sparse file for a new LUN, and [`Filtered`] wraps any store with runtime-replaceable
//! [`FaultFilter`]s. The rest of a backing file's or device's life (creating one at a caller's
//! path, allocating, zeroing the ends, pinning, identity, space, freeing, leftovers) is
//! [`lifecycle`].

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

pub mod aio;
mod block;
pub mod ceph;
pub mod fence;
mod file;
mod filter;
mod fsync;
pub mod intent;
pub mod journal;
pub mod json;
pub mod label;
pub mod lifecycle;
mod memory;
mod nowait;
mod null;
pub mod powercut;
pub mod rados;
pub mod raid;
pub mod rbd;
mod sys;

pub use aio::{AioBufs, AioDone, AioError, AioOp, AioStore};
pub use block::BlockStore;
pub use file::FileStore;
pub use filter::{FaultFilter, FaultOp, Filtered};
pub use fsync::sync_parent_dir;
pub use lifecycle::create_file;
pub use memory::MemoryStore;
pub use null::NullStore;
pub use powercut::{Loss, PowerCut};
pub use raid::{PlexLayout, PlexObserver, PlexState, RaidStore, RangeResync, Segment};

/// Where a LUN's blocks live. All offsets and lengths are in bytes; callers (the SCSI engine)
/// have already checked `offset + len <= size()`.
///
/// Implementations must be safe to call from many threads at once: positioned reads and writes
/// of disjoint ranges proceed in parallel.
///
/// Non-blocking I/O is part of the contract: the data path first runs READ and WRITE on the
/// connection's own thread, which must never wait, through [`BackingStore::try_read_at`] and
/// [`BackingStore::try_write_at`]. These do the I/O only when it needs no waiting (data in the
/// page cache, memory, a buffered write) and otherwise answer [`io::ErrorKind::WouldBlock`];
/// the caller then runs the blocking method on a thread that may wait. They have no default
/// body, so a store or a wrapper that has not decided what it can do without waiting does not
/// compile. A refused attempt may have done part of its work (part of a read's buffer, a
/// write of the same bytes that is done again): only operations that are safe to repeat use
/// them.
pub trait BackingStore: Send + Sync {
    /// Short kind name: `"file"`, `"block"`, `"memory"`, `"null"`.
    fn kind(&self) -> &'static str;
    /// Current capacity in bytes.
    fn size(&self) -> u64;
    /// Fill `buf` from `offset`. Holes read as zeroes.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Make `buf` the `len` bytes at `offset` (its old contents and length do not matter;
    /// its capacity is reused). Stores that can fill a buffer more cheaply than zeroing it
    /// and then reading over it say so here.
    fn read_into(&self, buf: &mut Vec<u8>, len: usize, offset: u64) -> io::Result<()> {
        buf.clear();
        buf.resize(len, 0);
        self.read_at(buf, offset)
    }
    /// Write `buf` at `offset`; with `fua`, the data is on stable storage when this returns.
    fn write_at(&self, buf: &[u8], offset: u64, fua: bool) -> io::Result<()>;
    /// [`BackingStore::read_at`] without waiting: `WouldBlock` when the data cannot be had at
    /// once (not in the page cache, a filter that sleeps, a lock held by an atomic write).
    fn try_read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// [`BackingStore::read_into`] without waiting (see [`BackingStore::try_read_at`]).
    /// The default is safe for any store because `try_read_at` is: stores that override
    /// `read_into` for speed override this too.
    fn try_read_into(&self, buf: &mut Vec<u8>, len: usize, offset: u64) -> io::Result<()> {
        buf.clear();
        buf.resize(len, 0);
        self.try_read_at(buf, offset)
    }
    /// [`BackingStore::write_at`] without waiting: `WouldBlock` when the write would wait for
    /// the medium (FUA, a device queue) or for a filter or lock.
    fn try_write_at(&self, buf: &[u8], offset: u64, fua: bool) -> io::Result<()>;
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
    /// Largest write, in bytes, that [`BackingStore::write_atomic`] performs atomically (all or
    /// nothing, and never seen half-done by a concurrent read or write); 0 when the store makes
    /// no such promise. Drives WRITE ATOMIC(16) and VPD B0.
    fn atomic_write_max(&self) -> u64 {
        0
    }
    /// Write `buf` (at most `atomic_write_max()` bytes) atomically. Stores without atomic
    /// writes answer `Unsupported`.
    fn write_atomic(&self, buf: &[u8], offset: u64, fua: bool) -> io::Result<()> {
        let _ = (buf, offset, fua);
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
    /// The store's asynchronous I/O, when it has one that needs no waiting thread (RBD):
    /// the data path then submits READ, WRITE, flush, COMPARE AND WRITE, WRITE SAME and
    /// discards from its I/O thread and is woken by the completion ([`aio`]). `None` (the
    /// default): the store is reached through `try_*` and the blocking methods. A wrapper
    /// forwards its inner store's only while it adds nothing to the I/O (see [`Filtered`]).
    fn aio(&self) -> Option<&dyn AioStore> {
        None
    }
    /// How many times the store's size changed behind the array's back (another client
    /// resized the image); the logical unit compares it with what it last saw and reports
    /// CAPACITY DATA HAS CHANGED. Stores nobody else can resize answer 0.
    fn resized_elsewhere(&self) -> u64 {
        0
    }
    /// Re-check the store against what it was opened as (size, and for files the device and
    /// inode at its path). `Ok(())` if it is still the same and answering I/O.
    fn probe(&self) -> io::Result<()> {
        Ok(())
    }
    /// The RBD image under this store, if it is one (a wrapper answers its inner store's):
    /// what a gateway locks and fences (`fence.rs`).
    fn rbd(&self) -> Option<&rbd::RbdStore> {
        None
    }
}

/// What a backing store is made of (the `B` object of INTERFACE.md, minus the filters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackingKind {
    /// A regular (normally sparse) file; thin provisioned.
    File { path: PathBuf },
    /// A block device.
    Block { path: PathBuf },
    /// Process memory, allocated on first write; contents are lost at exit.
    Memory,
    /// Reads zeroes, discards writes.
    Null,
    /// An RBD image in the daemon's Ceph cluster ([`rbd::connect`]); thin provisioned.
    Rbd { pool: String, image: String },
}

/// Open a backing store. `size` is the capacity of memory and null stores; file and block
/// stores take the real size of what is at `path` (create files first with [`create_file`]).
/// A file store comes with atomic writes through its journal ([`journal`]).
pub fn open(kind: &BackingKind, size: u64) -> io::Result<Arc<dyn BackingStore>> {
    Ok(match kind {
        BackingKind::File { path } => journal::open_file(path)?,
        BackingKind::Block { path } => Arc::new(BlockStore::open(path)?),
        BackingKind::Memory => Arc::new(MemoryStore::new(size)),
        BackingKind::Null => Arc::new(NullStore::new(size)),
        BackingKind::Rbd { pool, image } => Arc::new(rbd::cluster()?.open_image(pool, image)?),
    })
}

/// An `InvalidInput` error for a range outside the store, so a caller's bug never turns into
/// a silent short I/O.
fn out_of_range(offset: u64, len: u64, size: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("range {offset}+{len} beyond the store's {size} bytes"),
    )
}

/// The answer of a `try_` method that would have to wait.
fn would_block() -> io::Error {
    io::Error::from(io::ErrorKind::WouldBlock)
}

/// Check `offset + len <= size` without overflow.
fn check_range(offset: u64, len: u64, size: u64) -> io::Result<()> {
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(out_of_range(offset, len, size)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_each_kind() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lun");
        create_file(&p, 3 << 20, false).unwrap();
        let f = open(&BackingKind::File { path: p.clone() }, 1).unwrap();
        assert_eq!((f.kind(), f.size(), f.thin()), ("file", 3 << 20, true));
        let m = open(&BackingKind::Memory, 1 << 30).unwrap();
        assert_eq!((m.kind(), m.size(), m.thin()), ("memory", 1 << 30, true));
        let n = open(&BackingKind::Null, 4096).unwrap();
        assert_eq!((n.kind(), n.size(), n.thin()), ("null", 4096, false));
        assert!(open(&BackingKind::Block { path: p }, 0).is_err());
        let missing = dir.path().join("missing");
        assert!(open(&BackingKind::File { path: missing }, 0).is_err());
    }
}
