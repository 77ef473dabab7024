//! The write-intent bitmap of a mirror (BEHAVIOUR.md §15, fast crash recovery): one bit per
//! region of the LUN, set and made durable before the first write to a region reaches any
//! plex, cleared once every plex has flushed it with no write in flight. After a crash, only
//! the regions whose bit is set can differ between the plexes, so only those are copied.
//!
//! The file is a 40-byte header (magic `VDSWIBM1`, version 1, region size, LUN size, region
//! count, CRC32C of the header fields and the bitmap) and the bitmap. A file that does not
//! check out (torn, foreign, for another size) is refused: every region is then dirty.
//!
//! Costs: a write to a region already dirty pays one increment and one decrement of an
//! in-flight count and one atomic load per region; only the first write to a clean region
//! takes the lock and writes and syncs the file.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

const MAGIC: &[u8; 8] = b"VDSWIBM1";
const VERSION: u32 = 1;
const HEADER: usize = 40;

/// Most regions a bitmap has: the region size grows with the LUN so that the file stays
/// within 128 KiB however large a size it is given.
pub const MAX_REGIONS: u64 = 1 << 20;

/// What the bitmap says the plexes may disagree on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dirty {
    /// These byte ranges (start, end), in order.
    Ranges(Vec<(u64, u64)>),
    /// Everything: no bitmap, or one that did not check out (the reason).
    All(String),
}

/// A mirror's write-intent bitmap, open.
pub struct WriteIntent {
    file: Mutex<File>,
    region: u64,
    size: u64,
    bits: Vec<AtomicU64>,
    inflight: AtomicUsize,
}

/// A write's hold on the bitmap: the write is in flight until it is dropped.
pub struct Intent<'a>(&'a WriteIntent);

impl Drop for Intent<'_> {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The region size for a LUN of `size` bytes: at least `wanted` (a power of two, at least
/// 64 KiB), doubled until the bitmap has at most [`MAX_REGIONS`] bits.
pub fn region_size(size: u64, wanted: u64) -> u64 {
    let mut r = wanted.max(64 << 10).next_power_of_two();
    while size.div_ceil(r) > MAX_REGIONS {
        r *= 2;
    }
    r
}

impl WriteIntent {
    /// Open (or create) the bitmap at `path` for a LUN of `size` bytes with regions of at least
    /// `region` bytes, and say what a crash may have left unequal. The bitmap keeps its bits:
    /// they are cleared by the first [`WriteIntent::clear`] after the caller has made the
    /// plexes equal.
    pub fn open(path: &Path, size: u64, region: u64) -> io::Result<(WriteIntent, Dirty)> {
        let region = region_size(size, region);
        let n = size.div_ceil(region);
        let words = n.div_ceil(64) as usize;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            // The bitmap says where the LUN's data was written: the data dir's user only.
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        let found = file.metadata()?.len();
        let bits: Vec<AtomicU64> = (0..words).map(|_| AtomicU64::new(0)).collect();
        let dirty = if found == 0 {
            Dirty::All("no write-intent bitmap yet".into())
        } else {
            match read_bitmap(&file, size, region, n) {
                Ok(words_read) => {
                    for (b, w) in bits.iter().zip(&words_read) {
                        b.store(*w, Ordering::Relaxed);
                    }
                    Dirty::Ranges(ranges(&words_read, region, size))
                }
                Err(why) => Dirty::All(why),
            }
        };
        let wi = WriteIntent {
            file: Mutex::new(file),
            region,
            size,
            bits,
            inflight: AtomicUsize::new(0),
        };
        if let Dirty::All(_) = dirty {
            // Until the caller has copied everything, everything is dirty on disk too.
            for b in &wi.bits {
                b.store(u64::MAX, Ordering::Relaxed);
            }
            let g = wi.file.lock();
            wi.persist(&g)?;
        }
        Ok((wi, dirty))
    }

    /// The region size in bytes.
    pub fn region(&self) -> u64 {
        self.region
    }

    /// The LUN size it covers.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Before a write of `[offset, offset + len)`: its regions are marked dirty, durably, and
    /// the write counts as in flight until the returned hold is dropped. With `try_only`, a
    /// write that would have to write the bitmap answers `WouldBlock` instead.
    pub fn begin(&self, offset: u64, len: u64, try_only: bool) -> io::Result<Intent<'_>> {
        self.inflight.fetch_add(1, Ordering::SeqCst);
        let hold = Intent(self);
        if len == 0 {
            return Ok(hold);
        }
        if offset.checked_add(len).is_none_or(|end| end > self.size) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "write {offset}+{len} beyond the {} bytes the write-intent bitmap covers",
                    self.size
                ),
            ));
        }
        let first = offset / self.region;
        let last = (offset + len - 1) / self.region;
        let clear = (first..=last).any(|r| !self.bit(r));
        if clear && try_only {
            return Err(crate::would_block());
        }
        if clear {
            let g = self.file.lock();
            let mut changed = false;
            for r in first..=last {
                if !self.bit(r) {
                    self.bits[(r / 64) as usize].fetch_or(1 << (r % 64), Ordering::SeqCst);
                    changed = true;
                }
            }
            if changed {
                self.persist(&g)?;
            }
        }
        Ok(hold)
    }

    fn bit(&self, r: u64) -> bool {
        self.bits[(r / 64) as usize].load(Ordering::SeqCst) & (1 << (r % 64)) != 0
    }

    /// After every plex has flushed: clear every bit, unless a write is in flight (then its
    /// regions could be unequal still, and the bits stay for the next flush). Returns whether
    /// the bits were cleared.
    pub fn clear(&self) -> io::Result<bool> {
        let g = self.file.lock();
        if self.inflight.load(Ordering::SeqCst) != 0 {
            return Ok(false);
        }
        let saved: Vec<u64> = self
            .bits
            .iter()
            .map(|b| b.swap(0, Ordering::SeqCst))
            .collect();
        if saved.iter().all(|w| *w == 0) {
            return Ok(true);
        }
        // A write that began after the check above found its bits set and did not persist
        // them: it must not lose them. Put them back if one did.
        if self.inflight.load(Ordering::SeqCst) != 0 {
            for (b, w) in self.bits.iter().zip(&saved) {
                b.fetch_or(*w, Ordering::SeqCst);
            }
            return Ok(false);
        }
        self.persist(&g)?;
        Ok(true)
    }

    /// The dirty byte ranges now.
    pub fn dirty(&self) -> Vec<(u64, u64)> {
        let words: Vec<u64> = self.bits.iter().map(|b| b.load(Ordering::SeqCst)).collect();
        ranges(&words, self.region, self.size)
    }

    fn persist(&self, file: &File) -> io::Result<()> {
        let n = self.size.div_ceil(self.region);
        let mut buf = Vec::with_capacity(HEADER + self.bits.len() * 8);
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&VERSION.to_le_bytes());
        buf.extend_from_slice(&self.region.to_le_bytes());
        buf.extend_from_slice(&self.size.to_le_bytes());
        buf.extend_from_slice(&n.to_le_bytes());
        buf.extend_from_slice(&[0; 4]);
        for b in &self.bits {
            buf.extend_from_slice(&b.load(Ordering::SeqCst).to_le_bytes());
        }
        let crc = crc32c::crc32c(&buf[..HEADER - 4]);
        let crc = crc32c::crc32c_append(crc, &buf[HEADER..]);
        buf[HEADER - 4..HEADER].copy_from_slice(&crc.to_le_bytes());
        file.write_all_at(&buf, 0)?;
        crate::sys::fdatasync(file)
    }
}

/// The bitmap words of `file` if it checks out for this LUN; else why not.
fn read_bitmap(file: &File, size: u64, region: u64, n: u64) -> Result<Vec<u64>, String> {
    let words = n.div_ceil(64) as usize;
    let mut buf = vec![0u8; HEADER + words * 8];
    file.read_exact_at(&mut buf, 0)
        .map_err(|e| format!("the write-intent bitmap is short: {e}"))?;
    if &buf[..8] != MAGIC {
        return Err("not a write-intent bitmap".into());
    }
    let u64_at = |i: usize| u64::from_le_bytes(buf[i..i + 8].try_into().expect("8 bytes"));
    let version = u32::from_le_bytes(buf[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(format!("write-intent bitmap version {version}"));
    }
    if (u64_at(12), u64_at(20), u64_at(28)) != (region, size, n) {
        return Err("the write-intent bitmap is for another size".into());
    }
    let stored = u32::from_le_bytes(buf[HEADER - 4..HEADER].try_into().expect("4 bytes"));
    let crc = crc32c::crc32c_append(crc32c::crc32c(&buf[..HEADER - 4]), &buf[HEADER..]);
    if crc != stored {
        return Err("the write-intent bitmap's checksum does not match (torn write)".into());
    }
    Ok(buf[HEADER..]
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect())
}

/// The set bits of `words` as merged byte ranges, clipped to `size`.
fn ranges(words: &[u64], region: u64, size: u64) -> Vec<(u64, u64)> {
    let n = size.div_ceil(region);
    let mut out: Vec<(u64, u64)> = Vec::new();
    for r in 0..n {
        if words[(r / 64) as usize] & (1 << (r % 64)) == 0 {
            continue;
        }
        let (s, e) = (r * region, ((r + 1) * region).min(size));
        match out.last_mut() {
            Some(last) if last.1 == s => last.1 = e,
            _ => out.push((s, e)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: u64 = 64 << 10;

    #[test]
    fn only_regions_written_since_the_last_clear_are_dirty() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wi");
        let size = 100 * R + 5;
        let (wi, dirty) = WriteIntent::open(&p, size, R).unwrap();
        assert!(matches!(dirty, Dirty::All(_)), "a new bitmap: {dirty:?}");
        assert!(wi.clear().unwrap());
        assert_eq!(
            wi.begin(0, 1, true).err().map(|e| e.kind()),
            Some(io::ErrorKind::WouldBlock),
            "a try write never writes the bitmap"
        );
        drop(wi.begin(3 * R + 10, 10, false).unwrap());
        assert!(wi.clear().unwrap());
        // Writes after the last clear, one of them still in flight at the "crash".
        drop(wi.begin(7 * R - 1, 2, false).unwrap());
        let held = wi.begin(99 * R, R + 5, false).unwrap();
        assert!(!wi.clear().unwrap(), "a write in flight keeps the bits");
        std::mem::forget(held);
        drop(wi);
        let (wi, dirty) = WriteIntent::open(&p, size, R).unwrap();
        assert_eq!(
            dirty,
            Dirty::Ranges(vec![(6 * R, 8 * R), (99 * R, size)]),
            "exactly the regions written since the last clear"
        );
        assert_eq!(wi.dirty(), vec![(6 * R, 8 * R), (99 * R, size)]);
    }

    #[test]
    fn a_torn_or_foreign_bitmap_means_everything_is_dirty() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wi");
        let (wi, _) = WriteIntent::open(&p, 10 * R, R).unwrap();
        wi.clear().unwrap();
        drop(wi.begin(0, 1, false).unwrap());
        drop(wi);
        let mut bytes = std::fs::read(&p).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        std::fs::write(&p, &bytes).unwrap();
        let (_, dirty) = WriteIntent::open(&p, 10 * R, R).unwrap();
        assert!(
            matches!(&dirty, Dirty::All(w) if w.contains("checksum")),
            "{dirty:?}"
        );
        let (_, dirty) = WriteIntent::open(&p, 20 * R, R).unwrap();
        assert!(
            matches!(&dirty, Dirty::All(w) if w.contains("another size")),
            "{dirty:?}"
        );
        std::fs::write(&p, b"hello, not a bitmap at all, nothing here to see").unwrap();
        let (_, dirty) = WriteIntent::open(&p, 10 * R, R).unwrap();
        assert!(matches!(dirty, Dirty::All(_)), "{dirty:?}");
    }

    #[test]
    fn a_write_beyond_the_covered_size_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (wi, _) = WriteIntent::open(&dir.path().join("wi"), 10 * R, R).unwrap();
        assert!(wi.begin(10 * R - 1, 1, false).is_ok());
        for (o, l) in [(10 * R, 1), (10 * R - 1, 2), (u64::MAX, 2)] {
            let e = wi.begin(o, l, false).err().expect("refused");
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{o}+{l}");
        }
    }

    #[test]
    fn a_hostile_size_keeps_the_bitmap_small() {
        let r = region_size(u64::MAX / 2, 4096);
        assert!((u64::MAX / 2).div_ceil(r) <= MAX_REGIONS);
        assert_eq!(region_size(1 << 30, 1 << 20), 1 << 20);
        assert_eq!(region_size(1 << 30, 1000), 64 << 10);
    }
}
