//! The memory store: sparse, chunked, allocated on first write and freed by UNMAP, so a large
//! memory LUN costs nothing until it is written.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::{check_range, BackingStore};

/// Allocation unit, and the granularity of deallocation: 4 KiB, the physical block size the
/// SCSI engine advertises, so UNMAP of one physical block really frees it (256 Ki chunk
/// entries per GiB, about 6 MiB of table).
pub const CHUNK: u64 = 4096;

/// Largest atomic write: bounded because it stops all other I/O of the store while it copies.
pub const ATOMIC_MAX: u64 = 1 << 20;

type Chunk = Mutex<Option<Box<[u8]>>>;

/// A LUN in process memory.
#[derive(Debug)]
pub struct MemoryStore {
    size: AtomicU64,
    /// The write lock is taken only by `resize`; every I/O takes the read lock, then the chunk
    /// locks it touches, so I/O on different chunks runs in parallel.
    chunks: RwLock<Vec<Chunk>>,
}

fn chunk_count(size: u64) -> usize {
    size.div_ceil(CHUNK) as usize
}

impl MemoryStore {
    pub fn new(size: u64) -> MemoryStore {
        let mut v = Vec::new();
        v.resize_with(chunk_count(size), || Mutex::new(None));
        MemoryStore {
            size: AtomicU64::new(size),
            chunks: RwLock::new(v),
        }
    }

    /// Bytes of memory currently allocated for data.
    pub fn allocated(&self) -> u64 {
        let chunks = self.chunks.read();
        chunks.iter().filter(|c| c.lock().is_some()).count() as u64 * CHUNK
    }

    /// Visit `[offset, offset+len)` chunk by chunk: `(chunk index, offset in chunk, range in
    /// the caller's buffer)`.
    fn pieces(
        offset: u64,
        len: u64,
    ) -> impl Iterator<Item = (usize, usize, std::ops::Range<usize>)> {
        let end = offset + len;
        let mut pos = offset;
        std::iter::from_fn(move || {
            if pos >= end {
                return None;
            }
            let idx = pos / CHUNK;
            let within = pos % CHUNK;
            let n = (CHUNK - within).min(end - pos);
            let b = (pos - offset) as usize;
            pos += n;
            Some((idx as usize, within as usize, b..b + n as usize))
        })
    }
}

impl BackingStore for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn size(&self) -> u64 {
        self.size.load(Ordering::Relaxed)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let chunks = self.chunks.read();
        check_range(offset, buf.len() as u64, self.size())?;
        for (idx, within, r) in Self::pieces(offset, buf.len() as u64) {
            let dst = &mut buf[r];
            match &*chunks[idx].lock() {
                Some(data) => dst.copy_from_slice(&data[within..within + dst.len()]),
                None => dst.fill(0),
            }
        }
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64, _fua: bool) -> io::Result<()> {
        let chunks = self.chunks.read();
        check_range(offset, buf.len() as u64, self.size())?;
        for (idx, within, r) in Self::pieces(offset, buf.len() as u64) {
            let src = &buf[r];
            let mut c = chunks[idx].lock();
            let data = c.get_or_insert_with(|| vec![0u8; CHUNK as usize].into_boxed_slice());
            data[within..within + src.len()].copy_from_slice(src);
        }
        Ok(())
    }

    fn try_read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        // Memory never waits for a device (its chunk locks are held for a copy only).
        self.read_at(buf, offset)
    }

    fn try_write_at(&self, buf: &[u8], offset: u64, fua: bool) -> io::Result<()> {
        self.write_at(buf, offset, fua)
    }

    fn flush(&self) -> io::Result<()> {
        Ok(())
    }

    fn unmap(&self, offset: u64, len: u64) -> io::Result<()> {
        let chunks = self.chunks.read();
        check_range(offset, len, self.size())?;
        for (idx, within, r) in Self::pieces(offset, len) {
            let mut c = chunks[idx].lock();
            if r.len() as u64 == CHUNK {
                *c = None;
            } else if let Some(data) = c.as_mut() {
                data[within..within + r.len()].fill(0);
            }
        }
        Ok(())
    }

    fn thin(&self) -> bool {
        true
    }

    fn atomic_write_max(&self) -> u64 {
        ATOMIC_MAX
    }

    fn write_atomic(&self, buf: &[u8], offset: u64, _fua: bool) -> io::Result<()> {
        if buf.len() as u64 > ATOMIC_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "atomic write larger than the atomic maximum",
            ));
        }
        // Every other I/O holds the table lock shared: holding it exclusively, no read or
        // write can see or interleave with a half-done copy.
        let chunks = self.chunks.write();
        check_range(offset, buf.len() as u64, self.size())?;
        for (idx, within, r) in Self::pieces(offset, buf.len() as u64) {
            let src = &buf[r];
            let mut c = chunks[idx].lock();
            let data = c.get_or_insert_with(|| vec![0u8; CHUNK as usize].into_boxed_slice());
            data[within..within + src.len()].copy_from_slice(src);
        }
        Ok(())
    }

    fn mapped_extent(&self, offset: u64, len: u64) -> io::Result<(bool, u64)> {
        let chunks = self.chunks.read();
        check_range(offset, len, self.size())?;
        if len == 0 {
            return Ok((true, 0));
        }
        let mut answer: Option<bool> = None;
        let mut n = 0u64;
        for (idx, _, r) in Self::pieces(offset, len) {
            let mapped = chunks[idx].lock().is_some();
            match answer {
                None => answer = Some(mapped),
                Some(a) if a != mapped => break,
                Some(_) => {}
            }
            n += r.len() as u64;
        }
        Ok((answer.unwrap_or(true), n))
    }

    fn resize(&self, new_size: u64) -> io::Result<()> {
        let mut chunks = self.chunks.write();
        let old = self.size();
        if new_size < old {
            // Zero the tail of the last kept chunk so a later extension reads zeroes there.
            let within = (new_size % CHUNK) as usize;
            if within != 0 {
                if let Some(data) = chunks[(new_size / CHUNK) as usize].get_mut().as_mut() {
                    data[within..].fill(0);
                }
            }
        }
        chunks.resize_with(chunk_count(new_size), || Mutex::new(None));
        self.size.store(new_size, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_gibibyte_costs_nothing_until_written() {
        let s = MemoryStore::new(1 << 30);
        assert_eq!(s.allocated(), 0);
        s.write_at(&[1u8; 100], 10 * CHUNK + 100, false).unwrap();
        assert_eq!(s.allocated(), CHUNK);
        assert_eq!(s.mapped_extent(0, 1 << 30).unwrap(), (false, 10 * CHUNK));
        assert_eq!(s.mapped_extent(10 * CHUNK, 1 << 20).unwrap(), (true, CHUNK));
    }

    #[test]
    fn unmap_frees_whole_chunks_and_zeroes_partial_ones() {
        let s = MemoryStore::new(4 * CHUNK);
        s.write_at(&vec![9u8; (4 * CHUNK) as usize], 0, false)
            .unwrap();
        s.unmap(CHUNK / 2, 2 * CHUNK).unwrap();
        assert_eq!(s.allocated(), 3 * CHUNK);
        let mut b = vec![0u8; (4 * CHUNK) as usize];
        s.read_at(&mut b, 0).unwrap();
        let half = (CHUNK / 2) as usize;
        assert!(b[..half].iter().all(|&x| x == 9));
        assert!(b[half..half + 2 * CHUNK as usize].iter().all(|&x| x == 0));
        assert!(b[half + 2 * CHUNK as usize..].iter().all(|&x| x == 9));
    }

    #[test]
    fn shrink_then_extend_reads_zeroes() {
        let s = MemoryStore::new(2 * CHUNK);
        s.write_at(&vec![5u8; (2 * CHUNK) as usize], 0, false)
            .unwrap();
        s.resize(CHUNK + 10).unwrap();
        assert!(s.read_at(&mut [0u8; 20], CHUNK).is_err());
        s.resize(2 * CHUNK).unwrap();
        let mut b = vec![1u8; CHUNK as usize];
        s.read_at(&mut b, CHUNK).unwrap();
        assert!(b[..10].iter().all(|&x| x == 5));
        assert!(b[10..].iter().all(|&x| x == 0));
    }

    #[test]
    fn atomic_write_is_bounded_and_lands() {
        let s = MemoryStore::new(4 << 20);
        assert_eq!(s.atomic_write_max(), ATOMIC_MAX);
        s.write_atomic(&vec![3u8; 8192], 4096 + 512, false).unwrap();
        let mut b = vec![0u8; 8192];
        s.read_at(&mut b, 4096 + 512).unwrap();
        assert!(b.iter().all(|&x| x == 3));
        assert!(s
            .write_atomic(&vec![0u8; (ATOMIC_MAX + 1) as usize], 0, false)
            .is_err());
        assert!(s.write_atomic(&[0u8; 512], 4 << 20, false).is_err());
    }

    proptest! {
        /// The store behaves like a flat byte array under any sequence of writes and unmaps.
        #[test]
        fn matches_a_flat_model(ops in proptest::collection::vec((any::<bool>(), 0u64..300_000, 0u64..150_000, any::<u8>()), 1..20)) {
            let size = 300_000u64;
            let s = MemoryStore::new(size);
            let mut model = vec![0u8; size as usize];
            for (write, off, len, byte) in ops {
                let len = len.min(size - off);
                if write {
                    s.write_at(&vec![byte; len as usize], off, false).unwrap();
                    model[off as usize..(off + len) as usize].fill(byte);
                } else {
                    s.unmap(off, len).unwrap();
                    model[off as usize..(off + len) as usize].fill(0);
                }
            }
            let mut b = vec![0u8; size as usize];
            s.read_at(&mut b, 0).unwrap();
            prop_assert!(b == model);
        }
    }
}
