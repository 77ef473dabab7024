//! The system call behind the file and block stores' non-blocking reads
//! ([`crate::BackingStore::try_read_at`]): `preadv2` with `RWF_NOWAIT`, which copies from the
//! page cache and answers `EAGAIN` instead of going to the disk.

use std::io;

/// `preadv2(fd, buf, offset, RWF_NOWAIT)` until `buf` is full: data not in the page cache
/// is `WouldBlock`; the end of the file is `UnexpectedEof` as with `read_exact_at`.
pub(crate) fn read_exact_nowait(
    f: &impl std::os::fd::AsRawFd,
    mut buf: &mut [u8],
    mut offset: u64,
) -> io::Result<()> {
    while !buf.is_empty() {
        let iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let off = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: one iovec describing `buf`, which is valid for writes of its length for the
        // duration of the call.
        let r = unsafe { libc::preadv2(f.as_raw_fd(), &iov, 1, off, libc::RWF_NOWAIT) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                // EAGAIN: not cached; EOPNOTSUPP: the file cannot do non-blocking reads.
                Some(libc::EAGAIN) | Some(libc::EOPNOTSUPP) => Err(crate::would_block()),
                _ => Err(e),
            };
        }
        if r == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        let n = r as usize;
        buf = &mut buf[n..];
        offset += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_file_reads_do_not_refuse() {
        use std::io::Write;
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&[5u8; 8192]).unwrap();
        let mut b = [0u8; 4096];
        read_exact_nowait(&f, &mut b, 4096).unwrap();
        assert_eq!(b, [5u8; 4096]);
        let r = read_exact_nowait(&f, &mut b, 6000);
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn stores_refuse_what_would_wait_and_do_it_when_they_may_wait() {
        use crate::{create_file, BackingStore, FaultFilter, FileStore, Filtered, MemoryStore};
        use std::os::fd::AsRawFd;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lun");
        create_file(&p, 1 << 20, false).unwrap();
        let f = FileStore::open(&p).unwrap();
        f.write_at(&[7u8; 65536], 0, true).unwrap();
        // Evict the (clean) pages: a read must now go to the disk.
        let file = std::fs::File::open(&p).unwrap();
        // SAFETY: fadvise on a valid fd with integer arguments.
        let r = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(r, 0);
        let mut b = vec![0u8; 4096];
        let r = f.try_read_at(&mut b, 8192);
        assert_eq!(
            r.unwrap_err().kind(),
            io::ErrorKind::WouldBlock,
            "an uncached read must refuse"
        );
        f.read_at(&mut b, 8192).unwrap();
        assert_eq!(b, vec![7u8; 4096]);
        // Now cached: the attempt succeeds.
        f.try_read_at(&mut b, 8192).unwrap();
        let mut v = Vec::new();
        f.try_read_into(&mut v, 4096, 8192).unwrap();
        assert_eq!(v, vec![7u8; 4096]);
        // FUA waits for the device; a buffered write does not.
        let r = f.try_write_at(&[1u8; 512], 0, true);
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::WouldBlock);
        f.try_write_at(&[1u8; 512], 0, false).unwrap();
        // A filter that sleeps refuses at once instead of sleeping.
        let slow = Filtered::new(
            std::sync::Arc::new(MemoryStore::new(1 << 20)),
            vec![FaultFilter::Delay {
                read_ms: 2000,
                write_ms: 0,
                flush_ms: 0,
            }],
        );
        let t = std::time::Instant::now();
        let r = slow.try_read_at(&mut b, 0);
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::WouldBlock);
        let r = slow.try_write_at(&b, 0, false);
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::WouldBlock);
        assert!(t.elapsed() < std::time::Duration::from_millis(1000));
        // Without filters the wrapper passes the attempt through.
        slow.set_filters(Vec::new());
        slow.try_read_at(&mut b, 0).unwrap();
        // Memory never refuses.
        let m = MemoryStore::new(1 << 20);
        m.try_write_at(&[3u8; 4096], 0, true).unwrap();
        m.try_read_into(&mut v, 4096, 0).unwrap();
        assert_eq!(v, vec![3u8; 4096]);
    }
}
