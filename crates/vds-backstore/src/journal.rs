//! Atomic writes for a store that has none of its own (a sparse file): [`Journaled`] wraps the
//! store with a one-record redo journal beside it and a gate that keeps every other I/O of the
//! store from seeing or interleaving with a half-done atomic write. This is what lets a file
//! LUN answer WRITE ATOMIC(16).
//!
//! Crash atomicity. An atomic write of `data` at `offset`:
//! 0. allocates the range in the file (`fallocate`), so a full filesystem fails the command
//!    before anything is touched rather than half-way through step 2;
//! 1. writes one record (header + `data`, format below) at the start of the journal file and
//!    `fdatasync`s the journal;
//! 2. writes `data` into the store and flushes the store (`fdatasync`);
//! 3. invalidates the record (zeroes its magic) in the page cache.
//!
//! On open, a valid record (magic and CRC32C right) is written into the store again (the write
//! is idempotent) and flushed before the store serves any I/O: a crash during step 2 ends with
//! all of `data`. A record that fails its CRC was torn by a crash during step 1, before the
//! store was touched, and is discarded: all of the old data. A store whose atomic write failed
//! after its record became durable answers every later I/O with an error (the LU fails) until
//! it is reopened, which completes the write by replaying the record.
//!
//! Step 3 is made durable lazily, before anything could depend on it: the next `flush`, FUA
//! write, resize or atomic write of this store first syncs the journal. Replaying a record
//! whose invalidation was lost can only overwrite writes that were never flushed, which a
//! write-back cache may lose anyway; a write that was made durable (FUA, SYNCHRONIZE CACHE)
//! can never be overwritten by a replay.
//!
//! Visibility. The first atomic write *engages* the gate (an `RwLock`); from then on every
//! read, write and unmap holds it shared and atomic writes hold it exclusively. Until then the
//! common path pays one atomic load before and one after the I/O: an operation that ran
//! ungated while the gate became engaged runs again under the gate, so it ends up ordered
//! entirely before or entirely after the atomic write (a read is redone, a write is applied
//! again on top, which is the order "atomic write first").
//!
//! Journal file format (little-endian; documented in docs/PERSISTENT_FORMAT.md):
//!
//! | bytes  | field |
//! | ------ | ----- |
//! | 0..8   | magic `VDSATOM1`; 8 zero bytes once invalidated |
//! | 8..16  | sequence number (one more for each atomic write of the store) |
//! | 16..24 | inode of the data file (a record never lands in a different file) |
//! | 24..32 | byte offset in the store |
//! | 32..40 | length of the data in bytes |
//! | 40..44 | CRC32C of bytes 0..40 followed by the data |
//! | 44..64 | zero |
//! | 64..   | the data |
//!
//! The journal of a file store is `<file>.atomic`, created on the first atomic write (a LUN
//! that never receives one has none). Concurrent openers of the same file (a reopen while the
//! old store still answers I/O) serialise their use of the journal with `flock`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock, RwLockReadGuard};

use crate::{check_range, sys, BackingStore, FileStore};

/// Largest atomic write, in bytes. The journal grows to this plus its header; each atomic
/// write copies its data twice (journal, store) and waits for two `fdatasync`s while every
/// other I/O of the store waits, so it stays small. 1 MiB is 256 blocks of 4 KiB, the largest
/// atomic write libiscsi's WriteAtomic16 tests issue.
pub const ATOMIC_MAX: u64 = 1 << 20;

/// What is appended to a data file's name to name its journal.
pub const JOURNAL_SUFFIX: &str = ".atomic";

const MAGIC: [u8; 8] = *b"VDSATOM1";
/// Bytes before the data in a record.
pub const HEADER_LEN: usize = 64;
/// End of the header bytes covered by the CRC (the CRC itself follows).
const CRC_AT: usize = 40;

/// The journal path of the data file at `data`: `<data>.atomic`.
pub fn journal_path(data: &Path) -> PathBuf {
    let mut s = data.as_os_str().to_owned();
    s.push(JOURNAL_SUFFIX);
    PathBuf::from(s)
}

/// Remove the journal of the data file at `data`, if there is one. Called when a LUN's storage
/// is freed and when a file is (re)created for a new LUN, so that no record of an earlier LUN
/// at that path can ever be replayed into it.
pub fn remove_journal(data: &Path) -> io::Result<()> {
    let path = journal_path(data);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        // Durably gone: a journal that came back after a power cut could hold a record
        // (its invalidation is synced lazily) that would replay into the next LUN here.
        Ok(()) => crate::sync_parent_dir(&path),
        Err(e) => Err(e),
    }
}

/// Open the file store at `path` with atomic writes through its journal (replaying a record a
/// crash left there first). Where no journal can be created (a read-only directory), the store
/// is returned as it is, without atomic writes.
pub(crate) fn open_file(path: &Path) -> io::Result<Arc<dyn BackingStore>> {
    let store = FileStore::open(path)?;
    // A second descriptor of the same file, for `fallocate` (FileStore keeps its own private).
    let data = OpenOptions::new().write(true).open(path)?;
    let ino = data.metadata()?.ino();
    if std::fs::metadata(path)?.ino() != ino {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} was replaced while it was opened", path.display()),
        ));
    }
    Ok(
        match Journaled::open(Arc::new(store), &journal_path(path), ino)? {
            Ok(mut j) => {
                j.prealloc = Some(data);
                Arc::new(j)
            }
            Err(store) => store,
        },
    )
}

/// Give `store` atomic writes of up to [`ATOMIC_MAX`] bytes through the journal at `journal`.
/// `tag` identifies what the store is (the data file's inode): a record with another tag is
/// never replayed. A valid record in an existing journal is replayed and flushed before this
/// returns. When the journal does not exist and its directory is not writable, `store` is
/// returned unchanged (no atomic writes).
pub fn with_journal(
    store: Arc<dyn BackingStore>,
    journal: &Path,
    tag: u64,
) -> io::Result<Arc<dyn BackingStore>> {
    Ok(match Journaled::open(store, journal, tag)? {
        Ok(j) => Arc::new(j),
        Err(store) => store,
    })
}

/// `access(dir of path, W_OK|X_OK)`: whether a file can be created there (false on a
/// read-only filesystem too).
fn dir_writable(path: &Path) -> bool {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access on a NUL-terminated path that outlives the call.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

/// One journal record.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    seq: u64,
    tag: u64,
    offset: u64,
    data: Vec<u8>,
}

/// What the start of a journal holds.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    /// Nothing, or an invalidated record (its sequence number kept).
    Clean {
        seq: u64,
    },
    /// A record cut short or damaged by a crash while it was written.
    Torn,
    Valid(Record),
}

fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Header and data of a record, ready to be written at offset 0 of the journal.
fn encode(seq: u64, tag: u64, offset: u64, data: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER_LEN + data.len());
    b.extend_from_slice(&MAGIC);
    b.extend_from_slice(&seq.to_le_bytes());
    b.extend_from_slice(&tag.to_le_bytes());
    b.extend_from_slice(&offset.to_le_bytes());
    b.extend_from_slice(&(data.len() as u64).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&b[..CRC_AT]), data);
    b.extend_from_slice(&crc.to_le_bytes());
    b.resize(HEADER_LEN, 0);
    b.extend_from_slice(data);
    b
}

fn read_record(f: &File) -> io::Result<Found> {
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(Found::Clean { seq: 0 });
    }
    if len < HEADER_LEN as u64 {
        return Ok(Found::Torn);
    }
    let mut h = [0u8; HEADER_LEN];
    f.read_exact_at(&mut h, 0)?;
    if h[..8] == [0; 8] {
        return Ok(Found::Clean { seq: le64(&h[8..]) });
    }
    if h[..8] != MAGIC {
        return Ok(Found::Torn);
    }
    let data_len = le64(&h[32..]);
    if data_len > ATOMIC_MAX || HEADER_LEN as u64 + data_len > len {
        return Ok(Found::Torn);
    }
    let mut data = vec![0u8; data_len as usize];
    f.read_exact_at(&mut data, HEADER_LEN as u64)?;
    let crc = crc32c::crc32c_append(crc32c::crc32c(&h[..CRC_AT]), &data);
    if crc.to_le_bytes() != h[CRC_AT..CRC_AT + 4] {
        return Ok(Found::Torn);
    }
    Ok(Found::Valid(Record {
        seq: le64(&h[8..]),
        tag: le64(&h[16..]),
        offset: le64(&h[24..]),
        data,
    }))
}

/// Mark the record at the start of `f` invalid (not synced).
fn invalidate(f: &File) -> io::Result<()> {
    f.write_all_at(&[0u8; 8], 0)
}

/// Allocate `[offset, offset+len)` of `f` without changing its size; filesystems that cannot
/// (`EOPNOTSUPP`) are left to allocate as they write.
fn allocate(f: &File, offset: u64, len: u64) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    let to_off =
        |v: u64| libc::off_t::try_from(v).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput));
    loop {
        // SAFETY: fallocate on a valid fd with integer arguments; no memory is passed.
        let r = unsafe {
            libc::fallocate(
                f.as_raw_fd(),
                libc::FALLOC_FL_KEEP_SIZE,
                to_off(offset)?,
                to_off(len)?,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EOPNOTSUPP) => return Ok(()),
            _ => return Err(e),
        }
    }
}

/// Holds `flock(LOCK_EX)` on a journal until dropped.
struct Flock<'a>(&'a File);

impl<'a> Flock<'a> {
    fn exclusive(f: &'a File) -> io::Result<Flock<'a>> {
        loop {
            // SAFETY: flock on a valid fd.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(Flock(f));
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

impl Drop for Flock<'_> {
    fn drop(&mut self) {
        // SAFETY: flock on a valid fd; unlocking cannot fail in a way we could act on.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// Bring the store and its journal to a clean state: replay a valid record, drop a torn one,
/// and make the journal's state durable. Returns the last sequence number seen.
fn recover(store: &dyn BackingStore, f: &File, path: &Path, tag: u64) -> io::Result<u64> {
    let _lock = Flock::exclusive(f)?;
    let seq = match read_record(f)? {
        Found::Clean { seq } => seq,
        Found::Torn => {
            tracing::warn!(journal = %path.display(), "discarding a torn atomic-write record");
            invalidate(f)?;
            0
        }
        Found::Valid(rec) => {
            let len = rec.data.len() as u64;
            if rec.tag != tag {
                tracing::warn!(
                    journal = %path.display(),
                    "discarding an atomic-write record made for another file"
                );
            } else if check_range(rec.offset, len, store.size()).is_err() {
                tracing::warn!(
                    journal = %path.display(),
                    offset = rec.offset,
                    len,
                    "discarding an atomic-write record beyond the end of the store"
                );
            } else {
                tracing::info!(
                    journal = %path.display(),
                    offset = rec.offset,
                    len,
                    "replaying an interrupted atomic write"
                );
                store.write_at(&rec.data, rec.offset, false)?;
                store.flush()?;
            }
            invalidate(f)?;
            rec.seq
        }
    };
    // Also makes durable an invalidation that an earlier opener left in the page cache.
    sys::fdatasync(f)?;
    Ok(seq)
}

/// The journal file, opened on the first atomic write when it did not exist yet.
struct JournalFile {
    file: Option<File>,
    seq: u64,
}

/// A store with journaled atomic writes (see the module documentation).
pub struct Journaled {
    inner: Arc<dyn BackingStore>,
    path: PathBuf,
    tag: u64,
    /// The data file, to allocate an atomic write's range before the record is written.
    prealloc: Option<File>,
    /// An atomic write failed after its record was made durable: part of its data may be in
    /// the store and only the replay at the next open can complete it, so nothing is served
    /// until then.
    broken: AtomicBool,
    /// Set by the first atomic write; from then on every I/O goes through `gate`.
    engaged: AtomicBool,
    /// Shared: reads, writes, unmaps (once engaged). Exclusive: atomic writes, resize.
    gate: RwLock<()>,
    /// Taken by atomic writes and by whoever syncs the journal, so a sync never runs while
    /// a record is half written and never clears `unsynced` for a later invalidation.
    journal: Mutex<JournalFile>,
    /// The last record was invalidated in the page cache only.
    unsynced: AtomicBool,
}

impl Journaled {
    /// See [`with_journal`]; `Ok(Err(store))` when no journal can be kept for `store`.
    #[allow(clippy::type_complexity)]
    pub fn open(
        store: Arc<dyn BackingStore>,
        journal: &Path,
        tag: u64,
    ) -> io::Result<Result<Journaled, Arc<dyn BackingStore>>> {
        let (file, seq) = match OpenOptions::new().read(true).write(true).open(journal) {
            Ok(f) => {
                let seq = recover(&*store, &f, journal, tag)?;
                (Some(f), seq)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !dir_writable(journal) {
                    tracing::info!(
                        journal = %journal.display(),
                        "directory not writable: no atomic writes for this store"
                    );
                    return Ok(Err(store));
                }
                (None, 0)
            }
            Err(e) => {
                // It exists but cannot be written: fine unless it holds a write to replay.
                let f = File::open(journal).map_err(|_| e)?;
                if let Found::Valid(_) = read_record(&f)? {
                    return Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        format!(
                            "{} holds an atomic write to replay but cannot be opened for writing",
                            journal.display()
                        ),
                    ));
                }
                tracing::warn!(
                    journal = %journal.display(),
                    "journal not writable: no atomic writes for this store"
                );
                return Ok(Err(store));
            }
        };
        Ok(Ok(Journaled {
            inner: store,
            path: journal.to_path_buf(),
            tag,
            prealloc: None,
            broken: AtomicBool::new(false),
            engaged: AtomicBool::new(false),
            gate: RwLock::new(()),
            journal: Mutex::new(JournalFile { file, seq }),
            unsynced: AtomicBool::new(false),
        }))
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<dyn BackingStore> {
        &self.inner
    }

    /// The gate, shared; without `wait` (a non-blocking attempt), `WouldBlock` rather than
    /// wait for an atomic write.
    fn shared(&self, wait: bool) -> io::Result<RwLockReadGuard<'_, ()>> {
        let g = if wait {
            self.gate.read()
        } else {
            self.gate.try_read().ok_or_else(crate::would_block)?
        };
        // Only an engaged store can be broken, and every I/O of an engaged store comes here.
        self.check_whole()?;
        Ok(g)
    }

    fn check_whole(&self) -> io::Result<()> {
        if self.broken.load(Ordering::Acquire) {
            return Err(io::Error::other(
                "an atomic write was interrupted; the store must be reopened to complete it",
            ));
        }
        Ok(())
    }

    /// Give up on this store after a failure that left a record to replay.
    fn interrupted(&self, e: io::Error) -> io::Error {
        self.broken.store(true, Ordering::Release);
        tracing::error!(
            journal = %self.path.display(),
            error = %e,
            "atomic write interrupted; it completes when the store is reopened"
        );
        // Not the original kind: an out-of-space error would leave the LU serving I/O.
        io::Error::other(format!("atomic write interrupted: {e}"))
    }

    /// Run a write-like `op` (write, unmap) in order with atomic writes.
    fn gated_write(&self, op: impl Fn() -> io::Result<()>) -> io::Result<()> {
        if !self.engaged.load(Ordering::Acquire) {
            let r = op();
            // Orders this write's stores before the second look at `engaged` (an atomic
            // write stores `engaged` before any of its data).
            fence(Ordering::SeqCst);
            if !self.engaged.load(Ordering::Relaxed) {
                return r;
            }
            // An atomic write began meanwhile and may have interleaved with `op`: apply `op`
            // again, after it.
        }
        let _g = self.shared(true)?;
        op()
    }

    /// Make the last invalidation durable, if it is not yet.
    fn sync_invalidation(&self) -> io::Result<()> {
        if !self.unsynced.load(Ordering::Acquire) {
            return Ok(());
        }
        let j = self.journal.lock();
        if self.unsynced.load(Ordering::Acquire) {
            if let Some(f) = &j.file {
                sys::fdatasync(f)?;
            }
            self.unsynced.store(false, Ordering::Release);
        }
        Ok(())
    }

    fn open_journal(&self) -> io::Result<File> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&self.path)?;
        // The journal's name must be durable before a record in it is relied on (step 2
        // touches the store only once the record is durable, and a record in a file whose
        // directory entry a power cut took away is no record at all).
        crate::sync_parent_dir(&self.path)?;
        Ok(f)
    }
}

impl Journaled {
    /// `read_at`, or with `wait` unset `try_read_at`: the same ordering with atomic writes,
    /// but a held gate or an uncached page is `WouldBlock`.
    fn read(&self, buf: &mut [u8], offset: u64, wait: bool) -> io::Result<()> {
        let inner = |buf: &mut [u8]| {
            if wait {
                self.inner.read_at(buf, offset)
            } else {
                self.inner.try_read_at(buf, offset)
            }
        };
        if !self.engaged.load(Ordering::Acquire) {
            let r = inner(buf);
            // Orders the read's loads before the second look at `engaged`: a read that saw
            // any byte of an atomic write sees `engaged` set and reads again under the gate.
            fence(Ordering::Acquire);
            if !self.engaged.load(Ordering::Relaxed) {
                return r;
            }
        }
        let _g = self.shared(wait)?;
        inner(buf)
    }

    /// `write_at`, or with `wait` unset `try_write_at` (see [`Journaled::read`]).
    fn write(&self, buf: &[u8], offset: u64, fua: bool, wait: bool) -> io::Result<()> {
        let inner = |fua: bool| {
            if wait {
                self.inner.write_at(buf, offset, fua)
            } else {
                self.inner.try_write_at(buf, offset, fua)
            }
        };
        if !self.engaged.load(Ordering::Acquire) {
            let r = inner(fua);
            fence(Ordering::SeqCst);
            if !self.engaged.load(Ordering::Relaxed) {
                return r;
            }
        }
        if fua && !wait {
            // The invalidation sync and the flush below wait for the device.
            return Err(crate::would_block());
        }
        {
            let _g = self.shared(wait)?;
            inner(false)?;
        }
        if fua {
            // Durable, and no replay of an earlier atomic write can ever overwrite it.
            self.sync_invalidation()?;
            self.inner.flush()?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Journaled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journaled")
            .field("kind", &self.inner.kind())
            .field("journal", &self.path)
            .field("engaged", &self.engaged.load(Ordering::Relaxed))
            .finish()
    }
}

impl BackingStore for Journaled {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn size(&self) -> u64 {
        self.inner.size()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.read(buf, offset, true)
    }

    fn try_read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.read(buf, offset, false)
    }

    fn write_at(&self, buf: &[u8], offset: u64, fua: bool) -> io::Result<()> {
        self.write(buf, offset, fua, true)
    }

    fn try_write_at(&self, buf: &[u8], offset: u64, fua: bool) -> io::Result<()> {
        self.write(buf, offset, fua, false)
    }

    fn flush(&self) -> io::Result<()> {
        self.sync_invalidation()?;
        self.inner.flush()
    }

    fn unmap(&self, offset: u64, len: u64) -> io::Result<()> {
        self.gated_write(|| self.inner.unmap(offset, len))
    }

    fn thin(&self) -> bool {
        self.inner.thin()
    }

    fn mapped_extent(&self, offset: u64, len: u64) -> io::Result<(bool, u64)> {
        self.inner.mapped_extent(offset, len)
    }

    fn resize(&self, new_size: u64) -> io::Result<()> {
        let _x = self.gate.write();
        self.check_whole()?;
        self.sync_invalidation()?;
        self.inner.resize(new_size)
    }

    fn atomic_write_max(&self) -> u64 {
        ATOMIC_MAX
    }

    fn write_atomic(&self, buf: &[u8], offset: u64, _fua: bool) -> io::Result<()> {
        // FUA changes nothing: an atomic write is durable when it completes.
        if buf.len() as u64 > ATOMIC_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "atomic write larger than the atomic maximum",
            ));
        }
        if !self.engaged.load(Ordering::Relaxed) {
            self.engaged.store(true, Ordering::SeqCst);
        }
        // `engaged` is visible before any byte of this write (see `read_at`).
        fence(Ordering::SeqCst);
        let _x = self.gate.write();
        self.check_whole()?;
        check_range(offset, buf.len() as u64, self.inner.size())?;
        if let Some(data) = &self.prealloc {
            // 0. Room for the data in a thin file, so that step 2 cannot run out of space
            // half-way: a full filesystem fails the command here, with nothing touched.
            allocate(data, offset, buf.len() as u64)?;
        }
        let mut guard = self.journal.lock();
        let j = &mut *guard;
        let f = match j.file.take() {
            Some(f) => f,
            None => self.open_journal()?,
        };
        let f = j.file.insert(f);
        let _lock = Flock::exclusive(f)?;
        j.seq += 1;
        // 1. The record, durable before the store is touched.
        let rec = encode(j.seq, self.tag, offset, buf);
        if let Err(e) = f.write_all_at(&rec, 0).and_then(|()| sys::fdatasync(f)) {
            // The record may have reached the disk whole: it must never be replayed over
            // what is written after this failed command.
            if invalidate(f).and_then(|()| sys::fdatasync(f)).is_err() {
                return Err(self.interrupted(e));
            }
            return Err(e);
        }
        // The new record replaced the previous (invalidated) one: nothing left to sync.
        self.unsynced.store(false, Ordering::Release);
        // 2. The data, durable.
        if let Err(e) = self
            .inner
            .write_at(buf, offset, false)
            .and_then(|()| self.inner.flush())
        {
            return Err(self.interrupted(e));
        }
        // 3. The record is spent; its invalidation becomes durable lazily.
        if let Err(e) = invalidate(f) {
            return Err(self.interrupted(e));
        }
        self.unsynced.store(true, Ordering::Release);
        Ok(())
    }

    fn probe(&self) -> io::Result<()> {
        self.inner.probe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{create_file, open, BackingKind};

    fn setup(size: u64) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lun.img");
        create_file(&p, size, false).unwrap();
        (dir, p)
    }

    fn open_file_store(p: &Path) -> Arc<dyn BackingStore> {
        open(&BackingKind::File { path: p.into() }, 0).unwrap()
    }

    fn read(s: &dyn BackingStore, off: u64, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        s.read_at(&mut b, off).unwrap();
        b
    }

    fn journal_state(p: &Path) -> Found {
        read_record(&File::open(journal_path(p)).unwrap()).unwrap()
    }

    /// Leave a record in the journal as a crash after step 1 would.
    fn crash_after_record(p: &Path, offset: u64, data: &[u8]) -> Vec<u8> {
        let ino = std::fs::metadata(p).unwrap().ino();
        let rec = encode(7, ino, offset, data);
        std::fs::write(journal_path(p), &rec).unwrap();
        rec
    }

    #[test]
    fn journal_path_appends_the_suffix() {
        assert_eq!(
            journal_path(Path::new("/d/luns/x.img")),
            PathBuf::from("/d/luns/x.img.atomic")
        );
    }

    #[test]
    fn clean_atomic_write_leaves_an_invalidated_journal() {
        let (_d, p) = setup(1 << 20);
        let s = open_file_store(&p);
        assert_eq!(s.atomic_write_max(), ATOMIC_MAX);
        assert!(
            !journal_path(&p).exists(),
            "no journal before the first atomic write"
        );
        s.write_atomic(&[0x5A; 3 * 512], 512, false).unwrap();
        assert_eq!(read(&*s, 512, 3 * 512), vec![0x5A; 3 * 512]);
        assert_eq!(read(&*s, 0, 512), vec![0; 512]);
        assert_eq!(journal_state(&p), Found::Clean { seq: 1 });
        s.write_atomic(&[0x5B; 512], 0, true).unwrap();
        assert_eq!(journal_state(&p), Found::Clean { seq: 2 });
        // The data went to the file itself.
        let raw = std::fs::read(&p).unwrap();
        assert_eq!(&raw[..512], &[0x5B; 512]);
        assert_eq!(&raw[512..2048], &[0x5A; 1536]);
        // Reopening finds nothing to replay and continues the sequence.
        drop(s);
        let s = open_file_store(&p);
        s.write_atomic(&[1; 512], 4096, false).unwrap();
        assert_eq!(journal_state(&p), Found::Clean { seq: 3 });
    }

    #[test]
    fn record_written_but_not_applied_is_replayed_on_open() {
        let (_d, p) = setup(1 << 20);
        let data: Vec<u8> = (0..8192u32).map(|i| (i % 251) as u8).collect();
        crash_after_record(&p, 65536, &data);
        let s = open_file_store(&p);
        assert_eq!(read(&*s, 65536, 8192), data);
        assert_eq!(journal_state(&p), Found::Clean { seq: 7 });
        // The next write continues after the replayed record's sequence number.
        s.write_atomic(&[9; 512], 0, false).unwrap();
        assert_eq!(journal_state(&p), Found::Clean { seq: 8 });
    }

    #[test]
    fn record_half_applied_is_completed_on_open() {
        let (_d, p) = setup(1 << 20);
        {
            let s = open_file_store(&p);
            s.write_at(&[0x11; 8192], 0, false).unwrap();
        }
        crash_after_record(&p, 0, &[0x22; 8192]);
        // The crash hit in the middle of step 2: half the new data is in the file.
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.write_all_at(&[0x22; 4096], 0).unwrap();
        drop(f);
        let s = open_file_store(&p);
        assert_eq!(read(&*s, 0, 8192), vec![0x22; 8192]);
    }

    #[test]
    fn torn_record_is_discarded() {
        let (_d, p) = setup(1 << 20);
        {
            let s = open_file_store(&p);
            s.write_at(&[0x11; 4096], 0, false).unwrap();
        }
        // A data byte of the record never reached the disk.
        let mut rec = crash_after_record(&p, 0, &[0x22; 4096]);
        rec[HEADER_LEN + 100] = 0;
        std::fs::write(journal_path(&p), &rec).unwrap();
        assert_eq!(journal_state(&p), Found::Torn);
        let s = open_file_store(&p);
        assert_eq!(read(&*s, 0, 4096), vec![0x11; 4096], "old data kept");
        assert!(matches!(journal_state(&p), Found::Clean { .. }));
        drop(s);
        // The record cut short (the journal file ends inside it).
        let rec = crash_after_record(&p, 0, &[0x33; 4096]);
        std::fs::write(journal_path(&p), &rec[..HEADER_LEN + 1000]).unwrap();
        let s = open_file_store(&p);
        assert_eq!(read(&*s, 0, 4096), vec![0x11; 4096]);
        drop(s);
        // Only part of the header.
        std::fs::write(journal_path(&p), &rec[..20]).unwrap();
        let s = open_file_store(&p);
        assert_eq!(read(&*s, 0, 4096), vec![0x11; 4096]);
    }

    #[test]
    fn records_for_another_file_or_beyond_the_end_are_discarded() {
        let (_d, p) = setup(1 << 20);
        let rec = encode(3, 12345, 0, &[0x44; 512]);
        std::fs::write(journal_path(&p), &rec).unwrap();
        let s = open_file_store(&p);
        assert_eq!(read(&*s, 0, 512), vec![0; 512]);
        drop(s);
        crash_after_record(&p, (1 << 20) - 256, &[0x44; 512]);
        let s = open_file_store(&p);
        assert_eq!(s.size(), 1 << 20, "a record never extends the file");
        assert!(matches!(journal_state(&p), Found::Clean { .. }));
    }

    #[test]
    fn create_file_forgets_a_stale_journal() {
        let (_d, p) = setup(1 << 20);
        crash_after_record(&p, 0, &[0x55; 512]);
        create_file(&p, 1 << 20, true).unwrap();
        assert!(!journal_path(&p).exists());
        let s = open_file_store(&p);
        assert_eq!(read(&*s, 0, 512), vec![0; 512]);
        s.write_atomic(&[1; 512], 0, false).unwrap();
        remove_journal(&p).unwrap();
        assert!(!journal_path(&p).exists());
        remove_journal(&p).unwrap();
    }

    #[test]
    fn limits_are_enforced() {
        let (_d, p) = setup(4 << 20);
        let s = open_file_store(&p);
        let big = vec![1u8; ATOMIC_MAX as usize + 512];
        assert_eq!(
            s.write_atomic(&big, 0, false).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        s.write_atomic(&big[..ATOMIC_MAX as usize], 0, false)
            .unwrap();
        assert!(s.write_atomic(&[1; 512], (4 << 20) - 256, false).is_err());
        assert!(s.write_atomic(&[1; 512], u64::MAX - 10, false).is_err());
    }

    #[test]
    fn flush_and_fua_make_the_invalidation_durable() {
        let (_d, p) = setup(1 << 20);
        let s = journaled(&p);
        s.write_atomic(&[1; 512], 0, false).unwrap();
        assert!(s.unsynced.load(Ordering::Relaxed));
        s.flush().unwrap();
        assert!(!s.unsynced.load(Ordering::Relaxed));
        s.write_atomic(&[2; 512], 0, false).unwrap();
        s.write_at(&[3; 512], 512, false).unwrap();
        assert!(
            s.unsynced.load(Ordering::Relaxed),
            "a plain write does not sync"
        );
        s.write_at(&[3; 512], 512, true).unwrap();
        assert!(!s.unsynced.load(Ordering::Relaxed), "a FUA write does");
        s.write_atomic(&[2; 512], 0, false).unwrap();
        s.resize(2 << 20).unwrap();
        assert!(!s.unsynced.load(Ordering::Relaxed), "so does a resize");
        assert_eq!(s.size(), 2 << 20);
    }

    fn journaled(p: &Path) -> Journaled {
        let f: Arc<dyn BackingStore> = Arc::new(FileStore::open(p).unwrap());
        let ino = std::fs::metadata(p).unwrap().ino();
        match Journaled::open(f, &journal_path(p), ino).unwrap() {
            Ok(j) => j,
            Err(_) => panic!("a temporary directory is writable"),
        }
    }

    #[test]
    fn non_blocking_attempts_refuse_what_would_wait() {
        let (_d, p) = setup(1 << 20);
        let s = journaled(&p);
        let would_block = |r: io::Result<()>| r.unwrap_err().kind() == io::ErrorKind::WouldBlock;
        // Not engaged: the file store's own answer (a FUA write waits for the device).
        assert!(would_block(s.try_write_at(&[1; 512], 0, true)));
        s.write_atomic(&[1; 512], 0, false).unwrap();
        // Engaged, with an atomic write in progress (the gate held exclusively): a read or a
        // write refuses instead of waiting on the network thread.
        let x = s.gate.write();
        let mut b = [0u8; 512];
        assert!(would_block(s.try_read_at(&mut b, 0)));
        assert!(would_block(s.try_write_at(&[2; 512], 512, false)));
        drop(x);
        s.try_read_at(&mut b, 0).expect("cached and ungated");
        assert_eq!(b, [1; 512]);
        // Engaged: a FUA write needs the invalidation synced and the store flushed.
        assert!(would_block(s.try_write_at(&[2; 512], 0, true)));
        s.try_write_at(&[2; 512], 0, false).unwrap();
        s.read_at(&mut b, 0).unwrap();
        assert_eq!(b, [2; 512]);
    }

    /// A memory store that reads and writes 4 KiB at a time, so an I/O is visibly in progress
    /// for a while: what the gate has to hide. With `hold` set, the next I/O stops after its
    /// first piece until `release` is set (a deterministic race).
    #[derive(Default)]
    struct Piecewise {
        mem: Option<crate::MemoryStore>,
        hold: AtomicBool,
        paused: AtomicBool,
        release: AtomicBool,
    }

    impl Piecewise {
        fn mem(&self) -> &crate::MemoryStore {
            self.mem.as_ref().expect("built with a memory store")
        }

        fn pieces(
            &self,
            len: usize,
            mut op: impl FnMut(usize) -> io::Result<()>,
        ) -> io::Result<()> {
            for k in 0..len.div_ceil(4096) {
                op(k * 4096)?;
                if k == 0 && self.hold.swap(false, Ordering::SeqCst) {
                    self.paused.store(true, Ordering::SeqCst);
                    while !self.release.load(Ordering::SeqCst) {
                        std::thread::sleep(std::time::Duration::from_micros(100));
                    }
                }
                std::thread::sleep(std::time::Duration::from_micros(20));
            }
            Ok(())
        }

        /// Hold the next I/O after its first piece; run `during` meanwhile, then let it go.
        fn race(&self, io: impl FnOnce() + Send, during: impl FnOnce()) {
            self.hold.store(true, Ordering::SeqCst);
            self.paused.store(false, Ordering::SeqCst);
            self.release.store(false, Ordering::SeqCst);
            std::thread::scope(|sc| {
                sc.spawn(io);
                while !self.paused.load(Ordering::SeqCst) {
                    std::thread::sleep(std::time::Duration::from_micros(100));
                }
                during();
                self.release.store(true, Ordering::SeqCst);
            });
        }
    }

    impl BackingStore for Piecewise {
        fn kind(&self) -> &'static str {
            "piecewise"
        }
        fn size(&self) -> u64 {
            self.mem().size()
        }
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
            let len = buf.len();
            self.pieces(len, |at| {
                let end = (at + 4096).min(len);
                self.mem().read_at(&mut buf[at..end], offset + at as u64)
            })
        }
        fn write_at(&self, buf: &[u8], offset: u64, fua: bool) -> io::Result<()> {
            self.pieces(buf.len(), |at| {
                let end = (at + 4096).min(buf.len());
                self.mem().write_at(&buf[at..end], offset + at as u64, fua)
            })
        }
        fn try_read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
            self.read_at(buf, offset)
        }
        fn try_write_at(&self, buf: &[u8], offset: u64, fua: bool) -> io::Result<()> {
            self.write_at(buf, offset, fua)
        }
        fn flush(&self) -> io::Result<()> {
            Ok(())
        }
        fn unmap(&self, offset: u64, len: u64) -> io::Result<()> {
            self.pieces(len as usize, |at| {
                let n = (len - at as u64).min(4096);
                self.mem().unmap(offset + at as u64, n)
            })
        }
    }

    fn piecewise(dir: &Path) -> (Arc<Piecewise>, Journaled) {
        let p = Arc::new(Piecewise {
            mem: Some(crate::MemoryStore::new(1 << 20)),
            ..Piecewise::default()
        });
        match Journaled::open(p.clone(), &dir.join("j.atomic"), 1).unwrap() {
            Ok(j) => (p, j),
            Err(_) => panic!("a temporary directory is writable"),
        }
    }

    fn uniform(b: &[u8]) -> bool {
        b.iter().all(|&x| x == b[0])
    }

    const LEN: usize = 64 << 10;

    #[test]
    fn a_read_overlapping_the_first_atomic_write_is_redone() {
        let dir = tempfile::tempdir().unwrap();
        let (p, s) = piecewise(dir.path());
        let mut b = vec![9u8; LEN];
        // The read starts ungated, reads its first piece (old data), and the first atomic
        // write engages the gate and completes before the read goes on.
        p.race(
            || s.read_at(&mut b, 0).unwrap(),
            || s.write_atomic(&vec![1; LEN], 0, false).unwrap(),
        );
        assert!(uniform(&b), "torn read: {} then {}", b[0], b[LEN - 1]);
        assert_eq!(b[0], 1, "the read was redone after the atomic write");
    }

    #[test]
    fn a_write_overlapping_the_first_atomic_write_lands_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let (p, s) = piecewise(dir.path());
        p.race(
            || s.write_at(&vec![0xEE; LEN], 0, false).unwrap(),
            || s.write_atomic(&vec![1; LEN], 0, false).unwrap(),
        );
        let b = read(&s, 0, LEN);
        assert!(uniform(&b), "interleaved: {} then {}", b[0], b[LEN - 1]);
        assert_eq!(
            b[0], 0xEE,
            "the plain write was applied again after the atomic one"
        );
        // Unmap goes the same way.
        let dir = tempfile::tempdir().unwrap();
        let (p, s) = piecewise(dir.path());
        s.write_at(&vec![0xEE; LEN], 0, false).unwrap();
        p.race(
            || s.unmap(0, LEN as u64).unwrap(),
            || s.write_atomic(&vec![1; LEN], 0, false).unwrap(),
        );
        assert_eq!(read(&s, 0, LEN), vec![0; LEN]);
    }

    #[test]
    fn readers_never_see_a_torn_atomic_write() {
        let dir = tempfile::tempdir().unwrap();
        let (_p, s) = piecewise(dir.path());
        let stop = AtomicBool::new(false);
        let reads = std::thread::scope(|sc| {
            let reader = sc.spawn(|| {
                let mut n = 0u32;
                let mut b = vec![0u8; LEN];
                while !stop.load(Ordering::Relaxed) {
                    s.read_at(&mut b, 0).unwrap();
                    assert!(uniform(&b), "torn read: {} then {}", b[0], b[LEN - 1]);
                    n += 1;
                }
                n
            });
            for i in 1..=20u8 {
                s.write_atomic(&vec![i; LEN], 0, false).unwrap();
            }
            stop.store(true, Ordering::Relaxed);
            reader.join().unwrap()
        });
        assert!(reads > 0);
        assert_eq!(read(&s, 0, LEN), vec![20; LEN]);
    }

    /// A memory store whose next write stops with EIO after its first 4 KiB when `fail` is set.
    struct Failing {
        mem: crate::MemoryStore,
        fail: AtomicBool,
    }

    impl BackingStore for Failing {
        fn kind(&self) -> &'static str {
            "failing"
        }
        fn size(&self) -> u64 {
            self.mem.size()
        }
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
            self.mem.read_at(buf, offset)
        }
        fn write_at(&self, buf: &[u8], offset: u64, fua: bool) -> io::Result<()> {
            if self.fail.swap(false, Ordering::SeqCst) {
                self.mem.write_at(&buf[..4096], offset, fua)?;
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            self.mem.write_at(buf, offset, fua)
        }
        fn try_read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
            self.read_at(buf, offset)
        }
        fn try_write_at(&self, buf: &[u8], offset: u64, fua: bool) -> io::Result<()> {
            self.write_at(buf, offset, fua)
        }
        fn flush(&self) -> io::Result<()> {
            Ok(())
        }
        fn unmap(&self, offset: u64, len: u64) -> io::Result<()> {
            self.mem.unmap(offset, len)
        }
    }

    #[test]
    fn an_interrupted_atomic_write_is_completed_by_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("j.atomic");
        let inner = Arc::new(Failing {
            mem: crate::MemoryStore::new(1 << 20),
            fail: AtomicBool::new(false),
        });
        let open = || match Journaled::open(inner.clone(), &journal, 1).unwrap() {
            Ok(j) => j,
            Err(_) => panic!("a temporary directory is writable"),
        };
        let s = open();
        inner.fail.store(true, Ordering::SeqCst);
        let e = s.write_atomic(&vec![7; LEN], 0, false).unwrap_err();
        // Not ENOSPC: the LU must not go on serving the half-written range.
        assert_eq!(e.kind(), io::ErrorKind::Other);
        assert_eq!(inner.mem_byte(0), 7);
        assert_eq!(inner.mem_byte(4096), 0, "half written");
        let mut b = vec![0u8; LEN];
        assert!(s.read_at(&mut b, 0).is_err(), "nothing is served");
        assert!(s.write_at(&b, 0, false).is_err());
        assert!(s.write_atomic(&b, 0, false).is_err());
        assert!(s.resize(2 << 20).is_err());
        drop(s);
        // Reopening replays the record: the atomic write ends up whole.
        let s = open();
        assert_eq!(read(&s, 0, LEN), vec![7; LEN]);
        s.write_atomic(&vec![8; LEN], 0, false).unwrap();
        assert_eq!(read(&s, 0, LEN), vec![8; LEN]);
    }

    /// One operation of the power-cut workload, on whole sectors of a small region.
    #[derive(Debug, Clone, Copy)]
    enum Step {
        Atomic { sector: u64, n: u64 },
        Write { sector: u64, n: u64, fua: bool },
        Flush,
    }

    const SECTORS: u64 = 64;
    const SECTOR: u64 = crate::powercut::SECTOR;

    fn workload(seed: u64) -> Vec<Step> {
        let mut x = seed;
        let mut rnd = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        (0..20)
            .map(|_| {
                let sector = rnd(SECTORS - 16);
                let n = 1 + rnd(16);
                match rnd(6) {
                    0 | 1 => Step::Atomic { sector, n },
                    2 | 3 => Step::Write {
                        sector,
                        n,
                        fua: false,
                    },
                    4 => Step::Write {
                        sector,
                        n,
                        fua: true,
                    },
                    _ => Step::Flush,
                }
            })
            .collect()
    }

    /// `n` sectors, each the operation number `id` repeated.
    fn sectors_of(id: u64, n: u64) -> Vec<u8> {
        id.to_le_bytes().repeat((n * SECTOR / 8) as usize)
    }

    /// The value (operation number) of each sector; panics on a sector torn inside.
    fn values(s: &dyn BackingStore) -> Vec<u64> {
        read(s, 0, (SECTORS * SECTOR) as usize)
            .chunks(SECTOR as usize)
            .map(|c| {
                let v = le64(c);
                assert!(c.chunks(8).all(|w| le64(w) == v), "torn inside a sector");
                v
            })
            .collect()
    }

    /// Run `steps` on a journaled power-cut store until the power fails after `cut` store
    /// operations; restart, recover and check: every sector holds a value it may hold (the
    /// last durable one, or a later one that was never made durable), and no atomic write
    /// is seen in part. With `lost_invalidation`, the last invalidation of the journal, if it
    /// was not synced yet, did not reach the disk either.
    /// Returns whether the whole workload ran (no cut).
    fn cut_run(steps: &[Step], loss: crate::Loss, cut: u64, lost_invalidation: bool) -> bool {
        let dir = tempfile::tempdir().unwrap();
        let jpath = dir.path().join("j.atomic");
        let pc = Arc::new(crate::PowerCut::new(SECTORS * SECTOR, loss));
        let j = match Journaled::open(pc.clone(), &jpath, 1).unwrap() {
            Ok(j) => j,
            Err(_) => panic!("a temporary directory is writable"),
        };
        pc.cut_after(cut);
        // What each sector may hold after the cut; atomic writes done or in flight.
        let mut allowed: Vec<Vec<u64>> = vec![vec![0]; SECTORS as usize];
        let mut atomics = Vec::new();
        let mut cache = vec![0u64; SECTORS as usize];
        let mut ran = true;
        // Whether the record of an atomic write cut short reached the disk.
        let mut record_durable = true;
        for (i, step) in steps.iter().enumerate() {
            let id = i as u64 + 1;
            crate::fsync::log::take();
            let (r, range, durable) = match *step {
                Step::Atomic { sector, n } => {
                    atomics.push((id, sector, n));
                    let r = j.write_atomic(&sectors_of(id, n), sector * SECTOR, false);
                    (r, Some((sector, n)), true)
                }
                Step::Write { sector, n, fua } => {
                    let r = j.write_at(&sectors_of(id, n), sector * SECTOR, fua);
                    (r, Some((sector, n)), fua)
                }
                Step::Flush => (j.flush(), None, true),
            };
            let ok = r.is_ok();
            if !ok && matches!(step, Step::Atomic { .. }) {
                let ino = std::fs::metadata(&jpath).unwrap().ino();
                record_durable =
                    crate::fsync::log::take().contains(&crate::fsync::log::Synced::Data(ino));
            }
            match range {
                Some((sector, n)) => {
                    for s in sector..sector + n {
                        let a = &mut allowed[s as usize];
                        if ok && durable {
                            a.clear();
                        }
                        a.push(id);
                        if ok {
                            cache[s as usize] = id;
                        }
                    }
                }
                None if ok => {
                    for (a, &v) in allowed.iter_mut().zip(&cache) {
                        *a = vec![v];
                    }
                }
                None => {}
            }
            if !ok {
                assert!(pc.is_off(), "{step:?} failed with the power on: {r:?}");
                ran = false;
                break;
            }
        }
        let unsynced = j.unsynced.load(Ordering::Acquire);
        drop(j);
        let back: Arc<dyn BackingStore> = Arc::new(pc.restart());
        if !record_durable {
            // The page cache had the record, the disk did not: the power cut takes it.
            let f = OpenOptions::new().write(true).open(&jpath).unwrap();
            f.write_all_at(&[0; 8], 0).unwrap();
        }
        if lost_invalidation && unsynced {
            let f = OpenOptions::new().write(true).open(&jpath).unwrap();
            f.write_all_at(&MAGIC, 0).unwrap();
        }
        let j = match Journaled::open(back, &jpath, 1).unwrap() {
            Ok(j) => j,
            Err(_) => panic!("a temporary directory is writable"),
        };
        let got = values(&j);
        let when = match cut {
            u64::MAX => format!("cut after {} steps", steps.len()),
            n => format!("cut at store operation {n}"),
        };
        let what = format!("{loss:?}, {when}, lost invalidation {lost_invalidation}");
        for (s, v) in got.iter().enumerate() {
            assert!(
                allowed[s].contains(v),
                "{what}: sector {s} holds {v}, may hold {:?}",
                allowed[s]
            );
        }
        for &(id, sector, n) in &atomics {
            let r = &got[sector as usize..(sector + n) as usize];
            if r.contains(&id) {
                assert!(
                    r.iter().all(|&v| v >= id),
                    "{what}: atomic write {id} seen in part: {r:?}"
                );
            }
        }
        ran
    }

    /// Every pairing the journal has to order: an atomic write followed by a plain write, a
    /// FUA write, a flush and another atomic write over the same sectors.
    fn pairings() -> Vec<Step> {
        let a = |sector, n| Step::Atomic { sector, n };
        let w = |sector, n, fua| Step::Write { sector, n, fua };
        vec![
            w(0, 16, false),
            a(2, 8),
            w(4, 2, false),
            w(6, 4, true),
            a(0, 4),
            Step::Flush,
            w(1, 2, false),
            a(8, 8),
            w(9, 1, true),
            a(12, 8),
            a(14, 4),
            w(15, 2, false),
            Step::Flush,
        ]
    }

    #[test]
    fn the_journal_survives_a_power_cut_at_any_point() {
        for seed in [0, 0x9E37_79B9_u64] {
            let steps = if seed == 0 {
                pairings()
            } else {
                workload(seed)
            };
            assert!(steps.iter().any(|s| matches!(s, Step::Atomic { .. })));
            for loss in [
                crate::Loss::Unflushed,
                crate::Loss::Subset { seed: seed + 1 },
                crate::Loss::Sectors { seed: seed + 1 },
            ] {
                // The power fails between two operations (after the journal's own writes of
                // the last one)...
                for k in 0..=steps.len() {
                    assert!(cut_run(&steps[..k], loss, u64::MAX, false));
                    assert!(cut_run(&steps[..k], loss, u64::MAX, true));
                }
                // ... or at any operation of the store, inside an atomic write too.
                let mut cut = 0;
                loop {
                    let a = cut_run(&steps, loss, cut, false);
                    let b = cut_run(&steps, loss, cut, true);
                    assert_eq!(a, b);
                    if a {
                        break;
                    }
                    cut += 1;
                }
                assert!(cut > 10, "the workload reached the store {cut} times");
            }
        }
    }

    impl Failing {
        fn mem_byte(&self, at: u64) -> u8 {
            let mut b = [0u8; 1];
            self.mem.read_at(&mut b, at).unwrap();
            b[0]
        }
    }
}
