//! Thin wrappers over the Linux calls `std` does not expose: `fallocate`, `posix_fallocate`,
//! `lseek` with SEEK_DATA/SEEK_HOLE, `fdatasync`, `statvfs`, `openat`/`unlinkat` and the
//! block-device ioctls.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// `_IOR(0x12, 114, size_t)`: the device size in bytes.
const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
/// `_IO(0x12, 127)`: write zeroes over a byte range (the device may deallocate it).
const BLKZEROOUT: libc::c_ulong = 0x127f;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn to_off(v: u64) -> io::Result<libc::off_t> {
    libc::off_t::try_from(v).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Deallocate `[offset, offset+len)` keeping the file size.
pub fn punch_hole(f: &impl AsRawFd, offset: u64, len: u64) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    // SAFETY: fallocate on a valid fd with integer arguments; no memory is passed.
    let r = unsafe {
        libc::fallocate(
            f.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            to_off(offset)?,
            to_off(len)?,
        )
    };
    cvt(r).map(|_| ())
}

/// `lseek(fd, offset, whence)`; `Ok(None)` for ENXIO (no data / hole at or after `offset`).
pub fn seek(f: &impl AsRawFd, offset: u64, whence: libc::c_int) -> io::Result<Option<u64>> {
    // SAFETY: lseek on a valid fd; no memory is passed.
    let r = unsafe { libc::lseek(f.as_raw_fd(), to_off(offset)?, whence) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENXIO) {
            return Ok(None);
        }
        return Err(e);
    }
    Ok(Some(r as u64))
}

/// `openat(dir, name, flags | O_CLOEXEC | O_NOFOLLOW, mode)`: `name` is one component (no
/// `/`), reached through the directory handle, never through a link.
pub fn openat(dir: &impl AsRawFd, name: &str, flags: libc::c_int, mode: u32) -> io::Result<File> {
    let c = one_component(name)?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call; the fd is valid; openat
    // returns a new fd we own (or -1).
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            flags | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            mode as libc::c_uint,
        )
    };
    let fd = cvt(fd)?;
    // SAFETY: `fd` was just returned by openat and is owned by nobody else.
    Ok(unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// `unlinkat(dir, name, 0)`: removes the file `name` of the directory, not following a link.
pub fn unlinkat(dir: &impl AsRawFd, name: &str) -> io::Result<()> {
    let c = one_component(name)?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call; the fd is valid.
    cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) }).map(|_| ())
}

/// `linkat(dir, from, dir, to, 0)`: a second name `to` for the file `from` of the directory;
/// `EEXIST` when `to` exists (never replaces it), and a link `from` is not followed.
pub fn linkat(dir: &impl AsRawFd, from: &str, to: &str) -> io::Result<()> {
    let (f, t) = (one_component(from)?, one_component(to)?);
    let fd = dir.as_raw_fd();
    // SAFETY: `f` and `t` are NUL-terminated strings that outlive the call; the fd is valid.
    cvt(unsafe { libc::linkat(fd, f.as_ptr(), fd, t.as_ptr(), 0) }).map(|_| ())
}

/// The daemon's effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn one_component(name: &str) -> io::Result<std::ffi::CString> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a file name"),
        ));
    }
    std::ffi::CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// `fdatasync(fd)`.
pub fn fdatasync(f: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: fdatasync on a valid fd.
    cvt(unsafe { libc::fdatasync(f.as_raw_fd()) })?;
    #[cfg(test)]
    record_fdatasync(f);
    Ok(())
}

/// Log a sync for the tests (see `fsync::log`), by inode.
#[cfg(test)]
fn record_fdatasync(f: &impl AsRawFd) {
    // SAFETY: `libc::stat` is a C struct of integers, for which all-zero bytes are a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat on a valid fd writes one stat struct, which `st` is.
    if unsafe { libc::fstat(f.as_raw_fd(), &mut st) } == 0 {
        crate::fsync::log::push(crate::fsync::log::Synced::Data(st.st_ino));
    }
}

/// The size of a block device.
pub fn block_size_bytes(f: &impl AsRawFd) -> io::Result<u64> {
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which points at `size`.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), BLKGETSIZE64 as _, &mut size as *mut u64) };
    cvt(r)?;
    Ok(size)
}

/// Zero a byte range of a block device.
pub fn block_zeroout(f: &impl AsRawFd, offset: u64, len: u64) -> io::Result<()> {
    let range: [u64; 2] = [offset, len];
    // SAFETY: BLKZEROOUT reads two u64 (start, length) from the pointer, which points at `range`.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), BLKZEROOUT as _, range.as_ptr()) };
    cvt(r).map(|_| ())
}

/// `posix_fallocate(fd, offset, len)`: allocate the range so later writes cannot run out of
/// space.
pub fn posix_fallocate(f: &impl AsRawFd, offset: u64, len: u64) -> io::Result<()> {
    // SAFETY: posix_fallocate on a valid fd with integer arguments; no memory is passed.
    let r = unsafe { libc::posix_fallocate(f.as_raw_fd(), to_off(offset)?, to_off(len)?) };
    // It answers the error number itself instead of setting errno.
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(())
}

/// Total and available (to unprivileged users) bytes of the filesystem holding `path`.
pub fn statvfs(path: &std::path::Path) -> io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: statvfs is plain integers, for which all-zero bytes are a valid value.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `s` a writable statvfs struct.
    cvt(unsafe { libc::statvfs(c.as_ptr(), &mut s) })?;
    let frsize = s.f_frsize as u64;
    Ok((s.f_blocks as u64 * frsize, s.f_bavail as u64 * frsize))
}
