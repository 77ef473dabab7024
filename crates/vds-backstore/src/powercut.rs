//! A backing store for durability tests: it keeps the cache and the stable medium apart and,
//! at a simulated power cut, loses what a real cut may lose (as redb's crash-test backend
//! does). A process kill, which the crash tests use, keeps the page cache, so only a store
//! like this one can tell a missing `fdatasync` from a present one.
//!
//! Model. Every write, unmap and resize lands in the cache (what reads see) and is logged as
//! pending. `flush` makes every pending operation durable. A write with `fua` (and an atomic
//! write with `fua`) is durable when it returns; the operations before it stay pending, as a
//! disk's FUA promises nothing about them. At the cut the power goes off (every later I/O
//! fails with EIO) and the pending operations are replayed onto the durable image according
//! to the [`Loss`] mode, in order, durable ones always, so a lost older write can never
//! overwrite a newer durable one. [`PowerCut::restart`] then gives the store as it comes back:
//! the durable image, nothing else.
//!
//! The cut happens when a test calls [`PowerCut::cut`], or at the mutating operation that
//! exceeds the budget set by [`PowerCut::cut_after`] (a cut at any point of a sequence).

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::memory::{ATOMIC_MAX, CHUNK};
use crate::{check_range, BackingStore, MemoryStore};

/// Torn writes are torn at this granularity (the smallest logical block).
pub const SECTOR: u64 = 512;

/// What a power cut loses of the operations that were not made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// All of them (a disk whose whole cache is volatile).
    Unflushed,
    /// A random subset of them, each whole or not at all (a cache written back in any order).
    Subset { seed: u64 },
    /// A random subset of their sectors: a write can be torn (atomic writes excepted).
    Sectors { seed: u64 },
}

/// One operation since the last flush.
#[derive(Debug)]
enum Op {
    Write {
        offset: u64,
        data: Vec<u8>,
        /// FUA: survives the cut whatever the loss mode.
        durable: bool,
        /// Never torn (an atomic write).
        whole: bool,
    },
    Unmap {
        offset: u64,
        len: u64,
    },
    Resize(u64),
}

/// `splitmix64`: enough randomness to pick survivors reproducibly from a seed.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Mutating state, behind one lock so the log and the cache agree on the order of operations.
#[derive(Debug)]
struct Log {
    pending: Vec<Op>,
    /// Mutating operations still allowed before the cut (`u64::MAX`: no planned cut).
    budget: u64,
}

/// A store that loses unflushed writes at a simulated power cut (see the module docs).
#[derive(Debug)]
pub struct PowerCut {
    /// What reads see: every completed operation.
    cache: MemoryStore,
    /// What survives a cut: operations made durable.
    durable: MemoryStore,
    log: Mutex<Log>,
    loss: Loss,
    off: AtomicBool,
    flushes: AtomicU64,
    /// Operations the cut dropped (wholly or in part).
    lost: AtomicU64,
}

fn power_off() -> io::Error {
    io::Error::other("power cut: the device is gone")
}

impl PowerCut {
    /// An empty store of `size` bytes that loses unflushed operations as `loss` says.
    pub fn new(size: u64, loss: Loss) -> PowerCut {
        PowerCut {
            cache: MemoryStore::new(size),
            durable: MemoryStore::new(size),
            log: Mutex::new(Log {
                pending: Vec::new(),
                budget: u64::MAX,
            }),
            loss,
            off: AtomicBool::new(false),
            flushes: AtomicU64::new(0),
            lost: AtomicU64::new(0),
        }
    }

    /// Cut the power when the `n+1`th mutating operation (write, atomic write, unmap, resize,
    /// flush) from now begins: the first `n` complete, that one and all later I/O fail.
    pub fn cut_after(&self, n: u64) {
        self.log.lock().budget = n;
    }

    /// Cut the power now (if it is still on). Afterwards every I/O fails.
    pub fn cut(&self) {
        let mut log = self.log.lock();
        self.cut_locked(&mut log);
    }

    /// Whether the power is off.
    pub fn is_off(&self) -> bool {
        self.off.load(Ordering::SeqCst)
    }

    /// Flushes that reached the medium (the store's `flush` calls while powered).
    pub fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::SeqCst)
    }

    /// Operations logged since the last flush that are not durable yet.
    pub fn unflushed(&self) -> usize {
        self.log
            .lock()
            .pending
            .iter()
            .filter(|op| !matches!(op, Op::Write { durable: true, .. }))
            .count()
    }

    /// Operations the cut dropped, wholly or in part (0 before the cut).
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::SeqCst)
    }

    /// Cut the power (if it is still on) and return the store as it comes back: the durable
    /// image and nothing else, with the same loss mode, powered on.
    pub fn restart(&self) -> PowerCut {
        self.cut();
        let size = self.durable.size();
        let back = PowerCut::new(size, self.loss);
        let mut buf = vec![0u8; CHUNK as usize];
        let mut at = 0;
        while at < size {
            let (mapped, n) = self.durable.mapped_extent(at, size - at).expect("in range");
            if mapped {
                let mut done = 0;
                while done < n {
                    let k = (n - done).min(CHUNK) as usize;
                    self.durable
                        .read_at(&mut buf[..k], at + done)
                        .expect("in range");
                    back.cache
                        .write_at(&buf[..k], at + done, false)
                        .expect("in range");
                    back.durable
                        .write_at(&buf[..k], at + done, false)
                        .expect("in range");
                    done += k as u64;
                }
            }
            at += n;
        }
        back
    }

    /// Take the power away: replay what survives onto the durable image.
    fn cut_locked(&self, log: &mut Log) {
        if self.off.swap(true, Ordering::SeqCst) {
            return;
        }
        let mut rng = match self.loss {
            Loss::Unflushed => 0,
            Loss::Subset { seed } | Loss::Sectors { seed } => seed,
        };
        let mut lost = 0;
        for op in log.pending.drain(..) {
            let forced = matches!(op, Op::Write { durable: true, .. });
            match (self.loss, forced) {
                (_, true) => apply(&self.durable, &op),
                (Loss::Unflushed, false) => lost += 1,
                (Loss::Subset { .. }, false) => {
                    if next(&mut rng) & 1 == 1 {
                        apply(&self.durable, &op);
                    } else {
                        lost += 1;
                    }
                }
                (Loss::Sectors { .. }, false) => {
                    if !apply_sectors(&self.durable, &op, &mut rng) {
                        lost += 1;
                    }
                }
            }
        }
        self.lost.store(lost, Ordering::SeqCst);
    }

    /// Admit one mutating operation: fails when the power is off or the budget is spent (the
    /// cut happens here, before the operation).
    fn admit(&self, log: &mut Log) -> io::Result<()> {
        if self.is_off() {
            return Err(power_off());
        }
        if log.budget == 0 {
            self.cut_locked(log);
            return Err(power_off());
        }
        if log.budget != u64::MAX {
            log.budget -= 1;
        }
        Ok(())
    }

    fn write(&self, buf: &[u8], offset: u64, fua: bool, whole: bool) -> io::Result<()> {
        let mut log = self.log.lock();
        self.admit(&mut log)?;
        check_range(offset, buf.len() as u64, self.size())?;
        if whole {
            // Readers never see it half-copied either.
            self.cache.write_atomic(buf, offset, false)?;
        } else {
            self.cache.write_at(buf, offset, false)?;
        }
        log.pending.push(Op::Write {
            offset,
            data: buf.to_vec(),
            durable: fua,
            whole,
        });
        Ok(())
    }
}

/// Apply one operation to the durable image. Writes beyond its size (a resize that was lost)
/// keep only what fits.
fn apply(m: &MemoryStore, op: &Op) {
    let size = m.size();
    match op {
        Op::Write { offset, data, .. } => {
            if *offset < size {
                let n = (size - offset).min(data.len() as u64) as usize;
                m.write_at(&data[..n], *offset, false).expect("clipped");
            }
        }
        Op::Unmap { offset, len } => {
            if *offset < size {
                m.unmap(*offset, (size - offset).min(*len))
                    .expect("clipped");
            }
        }
        Op::Resize(n) => m.resize(*n).expect("memory resizes"),
    }
}

/// Apply a random subset of `op`'s sectors; returns whether all of it survived.
fn apply_sectors(m: &MemoryStore, op: &Op, rng: &mut u64) -> bool {
    let (offset, len) = match op {
        Op::Write { whole: true, .. } | Op::Resize(_) => {
            let keep = next(rng) & 1 == 1;
            if keep {
                apply(m, op);
            }
            return keep;
        }
        Op::Write { offset, data, .. } => (*offset, data.len() as u64),
        Op::Unmap { offset, len } => (*offset, *len),
    };
    let mut all = true;
    let mut at = offset;
    while at < offset + len {
        let end = ((at / SECTOR + 1) * SECTOR).min(offset + len);
        if next(rng) & 1 == 1 {
            let piece = match op {
                Op::Write { data, .. } => Op::Write {
                    offset: at,
                    data: data[(at - offset) as usize..(end - offset) as usize].to_vec(),
                    durable: false,
                    whole: false,
                },
                _ => Op::Unmap {
                    offset: at,
                    len: end - at,
                },
            };
            apply(m, &piece);
        } else {
            all = false;
        }
        at = end;
    }
    all
}

impl BackingStore for PowerCut {
    fn kind(&self) -> &'static str {
        "powercut"
    }

    fn size(&self) -> u64 {
        self.cache.size()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        if self.is_off() {
            return Err(power_off());
        }
        self.cache.read_at(buf, offset)
    }

    fn read_into(&self, buf: &mut Vec<u8>, len: usize, offset: u64) -> io::Result<()> {
        if self.is_off() {
            return Err(power_off());
        }
        self.cache.read_into(buf, len, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64, fua: bool) -> io::Result<()> {
        self.write(buf, offset, fua, false)
    }

    fn try_read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.read_at(buf, offset)
    }

    fn try_read_into(&self, buf: &mut Vec<u8>, len: usize, offset: u64) -> io::Result<()> {
        self.read_into(buf, len, offset)
    }

    fn try_write_at(&self, buf: &[u8], offset: u64, fua: bool) -> io::Result<()> {
        if fua {
            // A forced write waits for the medium, as a file store's fdatasync does.
            return Err(crate::would_block());
        }
        self.write(buf, offset, false, false)
    }

    fn flush(&self) -> io::Result<()> {
        let mut log = self.log.lock();
        self.admit(&mut log)?;
        for op in log.pending.drain(..) {
            apply(&self.durable, &op);
        }
        self.flushes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn unmap(&self, offset: u64, len: u64) -> io::Result<()> {
        let mut log = self.log.lock();
        self.admit(&mut log)?;
        check_range(offset, len, self.size())?;
        self.cache.unmap(offset, len)?;
        log.pending.push(Op::Unmap { offset, len });
        Ok(())
    }

    fn thin(&self) -> bool {
        true
    }

    fn mapped_extent(&self, offset: u64, len: u64) -> io::Result<(bool, u64)> {
        if self.is_off() {
            return Err(power_off());
        }
        self.cache.mapped_extent(offset, len)
    }

    fn resize(&self, new_size: u64) -> io::Result<()> {
        let mut log = self.log.lock();
        self.admit(&mut log)?;
        self.cache.resize(new_size)?;
        log.pending.push(Op::Resize(new_size));
        Ok(())
    }

    fn atomic_write_max(&self) -> u64 {
        ATOMIC_MAX
    }

    fn write_atomic(&self, buf: &[u8], offset: u64, fua: bool) -> io::Result<()> {
        if buf.len() as u64 > ATOMIC_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "atomic write larger than the atomic maximum",
            ));
        }
        // All or nothing in the cache, and never torn by a cut.
        self.write(buf, offset, fua, true)
    }

    fn probe(&self) -> io::Result<()> {
        if self.is_off() {
            return Err(power_off());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(s: &dyn BackingStore, off: u64, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        s.read_at(&mut b, off).unwrap();
        b
    }

    #[test]
    fn a_cut_loses_every_unflushed_write() {
        let s = PowerCut::new(1 << 20, Loss::Unflushed);
        s.write_at(&[1; 4096], 0, false).unwrap();
        s.flush().unwrap();
        s.write_at(&[2; 4096], 0, false).unwrap();
        s.write_at(&[3; 4096], 8192, false).unwrap();
        s.unmap(0, 4096).unwrap();
        assert_eq!(read(&s, 0, 4096), vec![0; 4096], "the cache has it all");
        assert_eq!(read(&s, 8192, 4096), vec![3; 4096]);
        assert_eq!(s.unflushed(), 3);
        let back = s.restart();
        assert_eq!(s.lost(), 3);
        assert!(s.read_at(&mut [0; 512], 0).is_err(), "power is off");
        assert!(s.write_at(&[0; 512], 0, false).is_err());
        assert_eq!(read(&back, 0, 4096), vec![1; 4096]);
        assert_eq!(read(&back, 8192, 4096), vec![0; 4096]);
        assert_eq!(back.mapped_extent(8192, 4096).unwrap(), (false, 4096));
    }

    #[test]
    fn fua_is_durable_alone_and_never_overwritten_by_an_older_write() {
        for loss in [
            Loss::Unflushed,
            Loss::Subset { seed: 1 },
            Loss::Sectors { seed: 2 },
        ] {
            let s = PowerCut::new(1 << 20, loss);
            s.write_at(&[1; 4096], 0, false).unwrap();
            s.write_at(&[2; 4096], 0, true).unwrap();
            s.write_at(&[3; 4096], 4096, false).unwrap();
            assert_eq!(s.unflushed(), 2);
            let back = s.restart();
            assert_eq!(read(&back, 0, 4096), vec![2; 4096], "{loss:?}");
        }
        let s = PowerCut::new(1 << 20, Loss::Unflushed);
        s.write_at(&[1; 512], 0, false).unwrap();
        s.write_at(&[2; 512], 512, true).unwrap();
        let back = s.restart();
        assert_eq!(read(&back, 0, 512), vec![0; 512], "FUA covers only itself");
    }

    #[test]
    fn adversarial_modes_keep_some_and_tear_writes() {
        // Over many seeds, a subset keeps some writes and drops others; sectors tear a write.
        let mut kept_some = false;
        let mut torn = false;
        for seed in 0..32 {
            let s = PowerCut::new(1 << 20, Loss::Subset { seed });
            for i in 0..8u8 {
                s.write_at(&[i + 1; 4096], u64::from(i) * 4096, false)
                    .unwrap();
            }
            let back = s.restart();
            let n = (0..8u64)
                .filter(|&i| read(&back, i * 4096, 4096) == vec![i as u8 + 1; 4096])
                .count();
            kept_some |= n > 0 && n < 8;
            for i in 0..8u64 {
                let b = read(&back, i * 4096, 4096);
                assert!(b.iter().all(|&x| x == b[0]), "a subset never tears");
            }
            let s = PowerCut::new(1 << 20, Loss::Sectors { seed });
            s.write_at(&[7; 4096], 0, false).unwrap();
            s.write_atomic(&[8; 4096], 4096, false).unwrap();
            let back = s.restart();
            let b = read(&back, 0, 4096);
            torn |= b.contains(&7) && b.contains(&0);
            for piece in b.chunks(SECTOR as usize) {
                assert!(piece.iter().all(|&x| x == piece[0]), "torn inside a sector");
            }
            let a = read(&back, 4096, 4096);
            assert!(a.iter().all(|&x| x == a[0]), "an atomic write tore");
        }
        assert!(kept_some && torn);
    }

    #[test]
    fn a_planned_cut_stops_at_the_given_operation() {
        let s = PowerCut::new(1 << 20, Loss::Unflushed);
        s.cut_after(2);
        s.write_at(&[1; 512], 0, false).unwrap();
        s.flush().unwrap();
        assert!(
            s.write_at(&[2; 512], 0, true).is_err(),
            "the third operation"
        );
        assert!(s.is_off());
        assert_eq!(s.flushes(), 1);
        let back = s.restart();
        assert_eq!(read(&back, 0, 512), vec![1; 512]);
        back.write_at(&[3; 512], 0, false).unwrap();
        assert_eq!(read(&back, 0, 512), vec![3; 512], "powered on again");
    }

    #[test]
    fn resize_is_lost_with_the_rest_and_flush_keeps_it() {
        let s = PowerCut::new(8192, Loss::Unflushed);
        s.resize(16384).unwrap();
        s.write_at(&[1; 512], 12288, false).unwrap();
        assert_eq!(s.restart().size(), 8192);
        let s = PowerCut::new(8192, Loss::Unflushed);
        s.resize(16384).unwrap();
        s.write_at(&[1; 512], 12288, false).unwrap();
        s.flush().unwrap();
        let back = s.restart();
        assert_eq!(back.size(), 16384);
        assert_eq!(read(&back, 12288, 512), vec![1; 512]);
    }

    #[test]
    fn non_blocking_attempts_refuse_what_waits_for_the_medium() {
        let s = PowerCut::new(8192, Loss::Unflushed);
        let r = s.try_write_at(&[1; 512], 0, true);
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::WouldBlock);
        assert_eq!(
            read(&s, 0, 512),
            vec![0; 512],
            "a refused write changes nothing"
        );
        s.try_write_at(&[1; 512], 0, false).unwrap();
        let mut b = Vec::new();
        s.try_read_into(&mut b, 512, 0).unwrap();
        assert_eq!(b, vec![1; 512]);
    }
}
