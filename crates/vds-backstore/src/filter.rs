//! Fault-injection filters in the spirit of nbdkit's `delay` and `error` filters: a
//! [`Filtered`] store wraps any other and applies a runtime-replaceable list of filters.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

use crate::BackingStore;

/// The kinds of operation a filter acts on. UNMAP counts as a write; `probe` as a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultOp {
    Read,
    Write,
    Flush,
}

/// One fault filter (INTERFACE.md `F`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultFilter {
    /// Sleep before each operation of that kind.
    Delay {
        read_ms: u64,
        write_ms: u64,
        flush_ms: u64,
    },
    /// Every listed operation fails with EIO once `after` operations of those kinds have
    /// succeeded since the filter was installed (`after == 0`: at once).
    Error { ops: Vec<FaultOp>, after: u64 },
}

struct Active {
    filters: Vec<FaultFilter>,
    /// One success counter per filter (used by `Error` filters only).
    succeeded: Vec<AtomicU64>,
}

/// A store with fault filters in front of it. With no filters installed the only cost is one
/// relaxed atomic load per operation.
pub struct Filtered {
    inner: Arc<dyn BackingStore>,
    enabled: AtomicBool,
    active: RwLock<Arc<Active>>,
}

impl Filtered {
    pub fn new(inner: Arc<dyn BackingStore>, filters: Vec<FaultFilter>) -> Filtered {
        let f = Filtered {
            inner,
            enabled: AtomicBool::new(false),
            active: RwLock::new(Arc::new(Active {
                filters: Vec::new(),
                succeeded: Vec::new(),
            })),
        };
        f.set_filters(filters);
        f
    }

    /// Replace every filter at once; error counters start again from zero.
    pub fn set_filters(&self, filters: Vec<FaultFilter>) {
        let enabled = !filters.is_empty();
        let succeeded = filters.iter().map(|_| AtomicU64::new(0)).collect();
        *self.active.write() = Arc::new(Active { filters, succeeded });
        self.enabled.store(enabled, Ordering::Release);
    }

    /// The filters in force.
    pub fn filters(&self) -> Vec<FaultFilter> {
        self.active.read().filters.clone()
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<dyn BackingStore> {
        &self.inner
    }

    /// Run `f` through the filters for `op`: delays, then tripped error filters, then the
    /// operation; a success is counted by every error filter listing `op` when `count` is set.
    fn run<T>(&self, op: FaultOp, count: bool, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        if !self.enabled.load(Ordering::Acquire) {
            return f();
        }
        let active = self.active.read().clone();
        for (filter, n) in active.filters.iter().zip(&active.succeeded) {
            match filter {
                FaultFilter::Delay {
                    read_ms,
                    write_ms,
                    flush_ms,
                } => {
                    let ms = match op {
                        FaultOp::Read => *read_ms,
                        FaultOp::Write => *write_ms,
                        FaultOp::Flush => *flush_ms,
                    };
                    if ms > 0 {
                        std::thread::sleep(Duration::from_millis(ms));
                    }
                }
                FaultFilter::Error { ops, after } => {
                    if ops.contains(&op) && n.load(Ordering::Acquire) >= *after {
                        return Err(io::Error::from_raw_os_error(libc::EIO));
                    }
                }
            }
        }
        let r = f()?;
        if count {
            for (filter, n) in active.filters.iter().zip(&active.succeeded) {
                if let FaultFilter::Error { ops, .. } = filter {
                    if ops.contains(&op) {
                        n.fetch_add(1, Ordering::AcqRel);
                    }
                }
            }
        }
        Ok(r)
    }
}

impl Filtered {
    /// A non-blocking attempt: passed through when no filter is installed; otherwise
    /// `WouldBlock`, because filters sleep and count and run only on threads that may block.
    fn try_run<T>(&self, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        if self.enabled.load(Ordering::Acquire) {
            return Err(crate::would_block());
        }
        f()
    }
}

impl BackingStore for Filtered {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn rbd(&self) -> Option<&crate::rbd::RbdStore> {
        self.inner.rbd()
    }

    fn size(&self) -> u64 {
        self.inner.size()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.run(FaultOp::Read, true, || self.inner.read_at(buf, offset))
    }

    fn write_at(&self, buf: &[u8], offset: u64, fua: bool) -> io::Result<()> {
        self.run(FaultOp::Write, true, || {
            self.inner.write_at(buf, offset, fua)
        })
    }

    fn try_read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.try_run(|| self.inner.try_read_at(buf, offset))
    }

    fn try_write_at(&self, buf: &[u8], offset: u64, fua: bool) -> io::Result<()> {
        self.try_run(|| self.inner.try_write_at(buf, offset, fua))
    }

    fn flush(&self) -> io::Result<()> {
        self.run(FaultOp::Flush, true, || self.inner.flush())
    }

    fn unmap(&self, offset: u64, len: u64) -> io::Result<()> {
        self.run(FaultOp::Write, true, || self.inner.unmap(offset, len))
    }

    fn thin(&self) -> bool {
        self.inner.thin()
    }

    fn mapped_extent(&self, offset: u64, len: u64) -> io::Result<(bool, u64)> {
        self.inner.mapped_extent(offset, len)
    }

    fn resize(&self, new_size: u64) -> io::Result<()> {
        self.inner.resize(new_size)
    }

    fn atomic_write_max(&self) -> u64 {
        self.inner.atomic_write_max()
    }

    fn aio(&self) -> Option<&dyn crate::AioStore> {
        // Filters sleep and count on threads that may block: with any installed, the I/O
        // goes the blocking way through them.
        if self.enabled.load(Ordering::Acquire) {
            return None;
        }
        self.inner.aio()
    }

    fn resized_elsewhere(&self) -> u64 {
        self.inner.resized_elsewhere()
    }

    fn write_atomic(&self, buf: &[u8], offset: u64, fua: bool) -> io::Result<()> {
        self.run(FaultOp::Write, true, || {
            self.inner.write_atomic(buf, offset, fua)
        })
    }

    fn probe(&self) -> io::Result<()> {
        // A store whose reads still fail is not back: Refresh must keep the LUN FAILED.
        self.run(FaultOp::Read, false, || self.inner.probe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;
    use std::time::Instant;

    fn mem() -> Arc<dyn BackingStore> {
        Arc::new(MemoryStore::new(1 << 20))
    }

    #[test]
    fn no_filters_pass_through() {
        let f = Filtered::new(mem(), vec![]);
        f.write_at(&[1; 512], 0, false).unwrap();
        let mut b = [0; 512];
        f.read_at(&mut b, 0).unwrap();
        assert_eq!(b, [1; 512]);
        f.flush().unwrap();
    }

    #[test]
    fn delay_applies_to_the_named_kind_only() {
        let f = Filtered::new(
            mem(),
            vec![FaultFilter::Delay {
                read_ms: 0,
                write_ms: 0,
                flush_ms: 120,
            }],
        );
        let t = Instant::now();
        f.write_at(&[1; 512], 0, false).unwrap();
        assert!(t.elapsed() < Duration::from_millis(100));
        let t = Instant::now();
        f.flush().unwrap();
        assert!(t.elapsed() >= Duration::from_millis(120));
    }

    #[test]
    fn error_after_n_successes() {
        let f = Filtered::new(
            mem(),
            vec![FaultFilter::Error {
                ops: vec![FaultOp::Write],
                after: 2,
            }],
        );
        let mut b = [0u8; 512];
        f.read_at(&mut b, 0).unwrap();
        f.write_at(&b, 0, false).unwrap();
        f.write_at(&b, 512, false).unwrap();
        let e = f.write_at(&b, 1024, false).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO));
        assert!(f.unmap(0, 512).is_err(), "unmap counts as a write");
        f.read_at(&mut b, 0).unwrap();
        f.flush().unwrap();
        f.probe().unwrap();
    }

    #[test]
    fn error_at_once_and_cleared_by_replacing_filters() {
        let f = Filtered::new(mem(), vec![]);
        f.set_filters(vec![FaultFilter::Error {
            ops: vec![FaultOp::Read, FaultOp::Flush],
            after: 0,
        }]);
        let mut b = [0u8; 512];
        assert!(f.read_at(&mut b, 0).is_err());
        assert!(f.flush().is_err());
        assert!(f.probe().is_err(), "probe is a read");
        f.write_at(&b, 0, false).unwrap();
        f.set_filters(vec![]);
        f.read_at(&mut b, 0).unwrap();
        f.probe().unwrap();
        assert!(f.filters().is_empty());
    }

    #[test]
    fn counters_are_shared_across_listed_kinds() {
        let f = Filtered::new(
            mem(),
            vec![FaultFilter::Error {
                ops: vec![FaultOp::Read, FaultOp::Write],
                after: 1,
            }],
        );
        let mut b = [0u8; 512];
        f.read_at(&mut b, 0).unwrap();
        assert!(f.write_at(&b, 0, false).is_err());
    }
}
