//! The block-device store: positioned I/O on a device node, BLKZEROOUT for UNMAP. The device is
//! opened exclusively (`O_EXCL`, BEHAVIOUR §12): a mounted device, or one another exclusive
//! opener holds (a filesystem, md, LVM, another vds LUN), fails with `EBUSY`.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::{check_range, nowait, sys, would_block, BackingStore};

/// A LUN on a block device. Its size is the device's; it cannot be resized from here.
#[derive(Debug)]
pub struct BlockStore {
    file: File,
    path: PathBuf,
    size: u64,
    rdev: u64,
    /// Whether the device can discard (so zeroing may deallocate): read from sysfs at open.
    discard: bool,
}

/// Flags a device is opened with besides read-write: exclusive (on a block device `O_EXCL`
/// without `O_CREAT` claims the device) and not inherited by children.
pub const OPEN_FLAGS: libc::c_int = libc::O_EXCL | libc::O_CLOEXEC;

impl BlockStore {
    /// Open a block device read-write and exclusively (`EBUSY` when it is mounted or held).
    pub fn open(path: &Path) -> io::Result<BlockStore> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(OPEN_FLAGS)
            .open(path)?;
        let md = file.metadata()?;
        if !md.file_type().is_block_device() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a block device", path.display()),
            ));
        }
        let size = sys::block_size_bytes(&file)?;
        let rdev = md.rdev();
        let discard = discard_supported(rdev);
        Ok(BlockStore {
            file,
            path: path.to_path_buf(),
            size,
            rdev,
            discard,
        })
    }
}

fn discard_supported(rdev: u64) -> bool {
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    std::fs::read_to_string(format!(
        "/sys/dev/block/{major}:{minor}/queue/discard_max_bytes"
    ))
    .ok()
    .and_then(|s| s.trim().parse::<u64>().ok())
    .is_some_and(|n| n > 0)
}

impl BackingStore for BlockStore {
    fn kind(&self) -> &'static str {
        "block"
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(offset, buf.len() as u64, self.size)?;
        self.file.read_exact_at(buf, offset)
    }

    fn try_read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(offset, buf.len() as u64, self.size)?;
        nowait::read_exact_nowait(&self.file, buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64, fua: bool) -> io::Result<()> {
        check_range(offset, buf.len() as u64, self.size)?;
        self.file.write_all_at(buf, offset)?;
        if fua {
            sys::fdatasync(&self.file)?;
        }
        Ok(())
    }

    fn try_write_at(&self, buf: &[u8], offset: u64, _fua: bool) -> io::Result<()> {
        check_range(offset, buf.len() as u64, self.size)?;
        // A device's buffered writes can wait on its queue: only a thread that may block
        // writes to a device.
        Err(would_block())
    }

    fn flush(&self) -> io::Result<()> {
        sys::fdatasync(&self.file)
    }

    fn unmap(&self, offset: u64, len: u64) -> io::Result<()> {
        check_range(offset, len, self.size)?;
        if len == 0 {
            return Ok(());
        }
        // BLKZEROOUT (not BLKDISCARD): discarded blocks are not guaranteed to read as zeroes,
        // and we report LBPRZ. The kernel deallocates when the device supports it.
        sys::block_zeroout(&self.file, offset, len)
    }

    fn thin(&self) -> bool {
        self.discard
    }

    fn probe(&self) -> io::Result<()> {
        let md = std::fs::metadata(&self.path)?;
        if !md.file_type().is_block_device() || md.rdev() != self.rdev {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{} is no longer the device that was opened",
                    self.path.display()
                ),
            ));
        }
        let size = sys::block_size_bytes(&self.file)?;
        if size != self.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is {} bytes, expected {}",
                    self.path.display(),
                    size,
                    self.size
                ),
            ));
        }
        let mut b = [0u8; 512];
        let n = size.min(512) as usize;
        self.file.read_exact_at(&mut b[..n], 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_is_not_a_block_device() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let e = BlockStore::open(f.path()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn devices_are_opened_exclusively() {
        assert_eq!(OPEN_FLAGS & libc::O_EXCL, libc::O_EXCL);
        assert_eq!(
            OPEN_FLAGS & libc::O_CREAT,
            0,
            "O_EXCL alone: claim, never create"
        );
    }

    #[test]
    fn missing_device_is_not_found() {
        let e = BlockStore::open(Path::new("/dev/vds-no-such-device")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
