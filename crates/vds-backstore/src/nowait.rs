//! Non-blocking attempts: run store I/O on a thread that must not block (the data path's
//! network thread) and learn whether the store had to refuse.
//!
//! Inside [`attempt`], a store that would have to wait (a read of data not in the page cache,
//! a forced-unit-access write, a fault filter that sleeps) does nothing and fails with
//! [`io::ErrorKind::WouldBlock`]; [`attempt`] then reports `refused = true` and the caller runs
//! the whole operation again on a thread that may block. Stores that never block (memory,
//! null) ignore the mode. Outside [`attempt`] every store behaves as it always does.
//!
//! Only operations that are safe to run twice belong in an attempt: a refused operation may
//! have done part of its work (a read that filled part of the buffer).

use std::cell::Cell;
use std::io;

thread_local! {
    /// 0: not in an attempt; 1: in one; 2: in one, and a store refused.
    static MODE: Cell<u8> = const { Cell::new(0) };
}

/// Run `f` with stores in non-blocking mode. Returns its result and whether any store refused
/// (then the result is meaningless and `f` must run again outside an attempt).
pub fn attempt<T>(f: impl FnOnce() -> T) -> (T, bool) {
    let prev = MODE.with(|m| m.replace(1));
    // Restore on unwind too, so a panic inside `f` cannot leave the thread in nowait mode.
    struct Restore(u8);
    impl Drop for Restore {
        fn drop(&mut self) {
            MODE.with(|m| m.set(self.0));
        }
    }
    let restore = Restore(prev);
    let out = f();
    let refused = MODE.with(|m| m.get()) == 2;
    drop(restore);
    (out, refused)
}

/// Whether the current thread is inside [`attempt`].
pub fn active() -> bool {
    MODE.with(|m| m.get()) != 0
}

/// Record a refusal and return the error the store answers with.
pub(crate) fn refuse() -> io::Error {
    MODE.with(|m| {
        if m.get() != 0 {
            m.set(2);
        }
    });
    io::Error::from(io::ErrorKind::WouldBlock)
}

/// `preadv2(fd, buf, offset, RWF_NOWAIT)` until `buf` is full: data not in the page cache
/// refuses (see [`refuse`]); the end of the file is `UnexpectedEof` as with `read_exact_at`.
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
                Some(libc::EAGAIN) | Some(libc::EOPNOTSUPP) => Err(refuse()),
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
    fn refusal_is_reported_only_inside_an_attempt() {
        assert!(!active());
        let ((), refused) = attempt(|| {
            assert!(active());
        });
        assert!(!refused);
        let (e, refused) = attempt(refuse);
        assert!(refused);
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(!active());
        // Outside an attempt nothing is recorded.
        let _ = refuse();
        let ((), refused) = attempt(|| ());
        assert!(!refused);
    }

    #[test]
    fn nested_attempts_restore_the_outer_mode() {
        let (inner, outer) = attempt(|| {
            let ((), r) = attempt(|| ());
            assert!(active());
            r
        });
        assert!(!inner && !outer);
        assert!(!active());
    }

    #[test]
    fn cached_file_reads_do_not_refuse() {
        use std::io::Write;
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&[5u8; 8192]).unwrap();
        let mut b = [0u8; 4096];
        let (r, refused) = attempt(|| read_exact_nowait(&f, &mut b, 4096));
        r.unwrap();
        assert!(!refused);
        assert_eq!(b, [5u8; 4096]);
        let (r, _) = attempt(|| read_exact_nowait(&f, &mut b, 6000));
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn stores_refuse_what_would_wait_and_do_it_outside_an_attempt() {
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
        let (r, refused) = attempt(|| f.read_at(&mut b, 8192));
        assert!(refused, "an uncached read must refuse");
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::WouldBlock);
        f.read_at(&mut b, 8192).unwrap();
        assert_eq!(b, vec![7u8; 4096]);
        // Now cached: the attempt succeeds.
        let (r, refused) = attempt(|| f.read_at(&mut b, 8192));
        r.unwrap();
        assert!(!refused);
        // FUA and flush wait for the device; a buffered write does not.
        let (_, refused) = attempt(|| f.write_at(&[1u8; 512], 0, true));
        assert!(refused);
        let (_, refused) = attempt(|| f.flush());
        assert!(refused);
        let (r, refused) = attempt(|| f.write_at(&[1u8; 512], 0, false));
        r.unwrap();
        assert!(!refused);
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
        let (_, refused) = attempt(|| slow.read_at(&mut b, 0));
        assert!(refused);
        assert!(t.elapsed() < std::time::Duration::from_millis(1000));
        // Memory never refuses.
        let m = MemoryStore::new(1 << 20);
        let (r, refused) = attempt(|| m.write_at(&[3u8; 4096], 0, true));
        r.unwrap();
        assert!(!refused);
    }
}
