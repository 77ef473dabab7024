//! The sparse-file store: positioned I/O on a regular file, holes punched by UNMAP, the page
//! cache as the write-back cache.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{check_range, nowait, sys, would_block, BackingStore};

/// A LUN in a regular file.
#[derive(Debug)]
pub struct FileStore {
    file: File,
    path: PathBuf,
    /// Cached capacity: `size()` is on the hot path of every command's range check.
    size: AtomicU64,
    dev: u64,
    ino: u64,
}

impl FileStore {
    /// Open an existing regular file read-write.
    pub fn open(path: &Path) -> io::Result<FileStore> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        FileStore::from_file(file, path)
    }

    /// The store of a regular file already opened read-write (as `path`, for messages).
    pub fn from_file(file: File, path: &Path) -> io::Result<FileStore> {
        let md = file.metadata()?;
        if !md.file_type().is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", path.display()),
            ));
        }
        Ok(FileStore {
            file,
            path: path.to_path_buf(),
            size: AtomicU64::new(md.len()),
            dev: md.dev(),
            ino: md.ino(),
        })
    }

    /// The path the store was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Make `[offset, offset+len)` of `f` read as zeroes: punch a hole, or write zeroes where the
/// filesystem cannot punch.
pub(crate) fn zero_range(f: &File, offset: u64, len: u64) -> io::Result<()> {
    match sys::punch_hole(f, offset, len) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => write_zeroes(f, offset, len),
        Err(e) => Err(e),
    }
}

/// Writes zeroes over `[offset, offset+len)` (where nothing can be deallocated).
pub(crate) fn write_zeroes(f: &File, mut offset: u64, len: u64) -> io::Result<()> {
    const CHUNK: u64 = 1 << 20;
    let zeroes = vec![0u8; CHUNK.min(len) as usize];
    let end = offset + len;
    while offset < end {
        let n = (end - offset).min(CHUNK) as usize;
        f.write_all_at(&zeroes[..n], offset)?;
        offset += n as u64;
    }
    Ok(())
}

impl BackingStore for FileStore {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn size(&self) -> u64 {
        self.size.load(Ordering::Relaxed)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(offset, buf.len() as u64, self.size())?;
        // `read_exact_at` turns a short read (the file shrank behind us) into UnexpectedEof,
        // which the engine reports as a medium error: the data is not there.
        self.file.read_exact_at(buf, offset)
    }

    fn try_read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(offset, buf.len() as u64, self.size())?;
        nowait::read_exact_nowait(&self.file, buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64, fua: bool) -> io::Result<()> {
        check_range(offset, buf.len() as u64, self.size())?;
        self.file.write_all_at(buf, offset)?;
        if fua {
            // Forced unit access: this write (and, as a side effect, every earlier one) is on
            // stable storage before the command completes.
            sys::fdatasync(&self.file)?;
        }
        Ok(())
    }

    fn try_write_at(&self, buf: &[u8], offset: u64, fua: bool) -> io::Result<()> {
        if fua {
            // fdatasync waits for the device.
            check_range(offset, buf.len() as u64, self.size())?;
            return Err(would_block());
        }
        // A buffered write only copies into the page cache (it can wait when dirty pages
        // are throttled, which a non-blocking attempt accepts: the thread pool would wait
        // just the same).
        self.write_at(buf, offset, false)
    }

    fn flush(&self) -> io::Result<()> {
        sys::fdatasync(&self.file)
    }

    fn unmap(&self, offset: u64, len: u64) -> io::Result<()> {
        check_range(offset, len, self.size())?;
        zero_range(&self.file, offset, len)
    }

    fn thin(&self) -> bool {
        true
    }

    fn mapped_extent(&self, offset: u64, len: u64) -> io::Result<(bool, u64)> {
        if len == 0 {
            return Ok((true, 0));
        }
        let end = offset.saturating_add(len);
        match sys::seek(&self.file, offset, libc::SEEK_DATA)? {
            // No data at or after offset: all of the range is a hole.
            None => Ok((false, len)),
            Some(data) if data > offset => Ok((false, (data.min(end)) - offset)),
            Some(_) => {
                // Data at offset; it runs until the next hole (EOF counts as a hole).
                let hole = sys::seek(&self.file, offset, libc::SEEK_HOLE)?.unwrap_or(end);
                Ok((true, hole.min(end).max(offset + 1) - offset))
            }
        }
    }

    fn resize(&self, new_size: u64) -> io::Result<()> {
        self.file.set_len(new_size)?;
        self.size.store(new_size, Ordering::Relaxed);
        // The provider commits the new size next; a power cut must not leave the file at the
        // old one (the LUN would come back FAILED, its size not the one acknowledged).
        sys::fdatasync(&self.file)
    }

    fn probe(&self) -> io::Result<()> {
        let md = std::fs::metadata(&self.path)?;
        if md.dev() != self.dev || md.ino() != self.ino {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{} is no longer the file that was opened",
                    self.path.display()
                ),
            ));
        }
        let size = self.size();
        if md.len() != size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is {} bytes, expected {}",
                    self.path.display(),
                    md.len(),
                    size
                ),
            ));
        }
        // A tiny read proves the file still answers I/O (e.g. its filesystem is not gone).
        let mut b = [0u8; 512];
        let n = (size.min(b.len() as u64)) as usize;
        self.file.read_exact_at(&mut b[..n], 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(size: u64) -> (tempfile::TempDir, FileStore) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lun");
        crate::create_file(&p, size, false).unwrap();
        let s = FileStore::open(&p).unwrap();
        (dir, s)
    }

    #[test]
    fn write_read_round_trip_and_size() {
        let (_d, s) = store(1 << 20);
        assert_eq!(s.size(), 1 << 20);
        s.write_at(&[7u8; 4096], 8192, false).unwrap();
        let mut b = [0u8; 4096];
        s.read_at(&mut b, 8192).unwrap();
        assert_eq!(b, [7u8; 4096]);
        s.read_at(&mut b, 0).unwrap();
        assert_eq!(b, [0u8; 4096], "unwritten space reads as zeroes");
    }

    #[test]
    fn out_of_range_is_an_error_not_a_short_io() {
        let (_d, s) = store(8192);
        let mut b = [0u8; 4096];
        assert!(s.read_at(&mut b, 8192 - 100).is_err());
        assert!(s.write_at(&b, u64::MAX - 10, false).is_err());
        assert!(s.unmap(4096, 8192).is_err());
    }

    #[test]
    fn fua_and_flush_succeed() {
        let (_d, s) = store(1 << 20);
        s.write_at(&[1u8; 512], 0, true).unwrap();
        s.write_at(&[2u8; 512], 512, false).unwrap();
        s.flush().unwrap();
        let mut b = [0u8; 1024];
        s.read_at(&mut b, 0).unwrap();
        assert_eq!(&b[..512], &[1u8; 512]);
        assert_eq!(&b[512..], &[2u8; 512]);
    }

    #[test]
    fn unmap_punches_a_real_hole() {
        let (_d, s) = store(4 << 20);
        s.write_at(&vec![0xAB; 4 << 20], 0, false).unwrap();
        assert_eq!(s.mapped_extent(0, 4 << 20).unwrap(), (true, 4 << 20));
        s.unmap(1 << 20, 1 << 20).unwrap();
        // SEEK_HOLE from the start finds the punched hole exactly.
        let hole = sys::seek(&s.file, 0, libc::SEEK_HOLE).unwrap().unwrap();
        assert_eq!(hole, 1 << 20);
        assert_eq!(s.mapped_extent(0, 4 << 20).unwrap(), (true, 1 << 20));
        assert_eq!(s.mapped_extent(1 << 20, 3 << 20).unwrap(), (false, 1 << 20));
        assert_eq!(s.mapped_extent(2 << 20, 1 << 20).unwrap(), (true, 1 << 20));
        let mut b = vec![1u8; 1 << 20];
        s.read_at(&mut b, 1 << 20).unwrap();
        assert!(b.iter().all(|&x| x == 0), "a hole reads as zeroes");
        // Fewer blocks allocated than before.
        let blocks = s.file.metadata().unwrap().blocks();
        assert!(blocks * 512 <= 3 << 20, "allocated {} bytes", blocks * 512);
    }

    #[test]
    fn fresh_file_is_all_hole() {
        let (_d, s) = store(1 << 20);
        assert_eq!(s.mapped_extent(0, 1 << 20).unwrap(), (false, 1 << 20));
        assert_eq!(s.mapped_extent(4096, 100).unwrap(), (false, 100));
    }

    #[test]
    fn resize_changes_size() {
        let (_d, s) = store(1 << 20);
        s.resize(2 << 20).unwrap();
        assert_eq!(s.size(), 2 << 20);
        s.probe().unwrap();
        s.write_at(&[1; 512], (2 << 20) - 512, false).unwrap();
    }

    #[test]
    fn probe_detects_size_change_behind_our_back() {
        let (d, s) = store(1 << 20);
        s.probe().unwrap();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(d.path().join("lun"))
            .unwrap();
        f.set_len(2 << 20).unwrap();
        let e = s.probe().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn probe_detects_replaced_and_removed_file() {
        let (d, s) = store(1 << 20);
        let p = d.path().join("lun");
        std::fs::remove_file(&p).unwrap();
        assert_eq!(s.probe().unwrap_err().kind(), io::ErrorKind::NotFound);
        crate::create_file(&p, 1 << 20, false).unwrap();
        // Same path and size, different inode.
        assert_eq!(s.probe().unwrap_err().kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn opening_a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(FileStore::open(dir.path()).is_err());
    }
}
