//! The inline path never blocks: a READ or WRITE first runs on the connection's I/O thread
//! through the store's non-blocking methods, and when the store answers `WouldBlock` the
//! command runs again on the blocking pool, never through a blocking method on the I/O thread.
//! Address: 127.0.33.9:43093.

mod common;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use common::{Harness, TARGET};
use uuid::Uuid;
use vds_backstore::{BackingStore, MemoryStore};
use vds_dataplane::{ChapConfig, DataPlane, DataView, PortalGroupView, TargetView};
use vds_scsi::{LogicalUnit, LuConfig, LuEvents, LuState, LunEntry, LunMap, Mask};
use vds_target::Limits;
use vds_testkit::initiator::{Initiator, LoginOptions};

/// Memory that refuses every non-blocking attempt while `refuse` is set, counts both kinds of
/// call, and panics when a blocking method runs on a connection's I/O thread (named
/// `vds-io-N`; its blocking pool's threads are `vds-io-N-blocking`).
struct Watched {
    mem: MemoryStore,
    refuse: AtomicBool,
    tries: AtomicU64,
    blocking: AtomicU64,
}

impl Watched {
    fn may_block(&self) {
        let t = std::thread::current();
        let name = t.name().unwrap_or("");
        if name.starts_with("vds-io-") && !name.ends_with("-blocking") {
            panic!("a blocking store call on the I/O thread {name}");
        }
        self.blocking.fetch_add(1, Ordering::SeqCst);
    }

    fn attempt(&self) -> io::Result<()> {
        self.tries.fetch_add(1, Ordering::SeqCst);
        if self.refuse.load(Ordering::SeqCst) {
            return Err(io::Error::from(io::ErrorKind::WouldBlock));
        }
        Ok(())
    }
}

impl BackingStore for Watched {
    fn kind(&self) -> &'static str {
        "watched"
    }
    fn size(&self) -> u64 {
        self.mem.size()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.may_block();
        self.mem.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64, fua: bool) -> io::Result<()> {
        self.may_block();
        self.mem.write_at(buf, offset, fua)
    }
    fn try_read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.attempt()?;
        self.mem.read_at(buf, offset)
    }
    fn try_write_at(&self, buf: &[u8], offset: u64, fua: bool) -> io::Result<()> {
        self.attempt()?;
        self.mem.write_at(buf, offset, fua)
    }
    fn flush(&self) -> io::Result<()> {
        self.may_block();
        Ok(())
    }
    fn unmap(&self, offset: u64, len: u64) -> io::Result<()> {
        self.may_block();
        self.mem.unmap(offset, len)
    }
}

struct NoEvents;
impl LuEvents for NoEvents {
    fn failed(&self, _lu: Uuid, _error: &io::Error) {}
    fn persist_reservations(&self, _lu: Uuid, _state: &[u8]) -> io::Result<()> {
        Ok(())
    }
}

fn rw10(opcode: u8, lba: u32, blocks: u16) -> [u8; 10] {
    let l = lba.to_be_bytes();
    let b = blocks.to_be_bytes();
    [opcode, 0, l[0], l[1], l[2], l[3], 0, b[0], b[1], 0]
}

#[test]
fn refused_io_runs_again_on_the_blocking_pool_never_blocking_the_io_thread() {
    let h = Harness::start(
        &["127.0.33.9:43093"],
        ChapConfig::default(),
        Limits::default(),
    );
    let store = Arc::new(Watched {
        mem: MemoryStore::new(1 << 20),
        refuse: AtomicBool::new(true),
        tries: AtomicU64::new(0),
        blocking: AtomicU64::new(0),
    });
    let lu = Arc::new(LogicalUnit::new(LuConfig {
        id: Uuid::new_v4(),
        backing: store.clone(),
        block_size: 512,
        state: LuState::Online,
        pr_state: None,
        events: Arc::new(NoEvents),
        write_protected: false,
    }));
    // The harness's target, now with the watched LU as LUN 0.
    h.dp.publish(Arc::new(DataView {
        targets: vec![TargetView {
            id: h.target_id,
            iqn: TARGET.into(),
            alias: "test".into(),
            chap: ChapConfig::default(),
            portal_groups: vec![PortalGroupView {
                id: Uuid::new_v4(),
                tag: 1,
                portals: vec![h.portals[0].id],
                tpg: 1,
            }],
            luns: Arc::new(LunMap {
                entries: vec![LunEntry {
                    number: 0,
                    lu,
                    mask: Mask::Everyone,
                }],
                port_groups: Default::default(),
            }),
        }],
        portals: h.portals.clone(),
    }));
    let mut i = Initiator::connect(
        h.addr(0),
        &LoginOptions::normal("iqn.2026-12.test.inline:i", TARGET),
    )
    .expect("login");
    let pattern: Vec<u8> = (0..8 * 512).map(|k| (k % 251) as u8).collect();

    // The store refuses every attempt: each READ and WRITE is tried on the I/O thread, then
    // done on the blocking pool (a blocking call on the I/O thread would panic in the store
    // and the command would end 04/44/00).
    for lba in [0u32, 64, 1000] {
        let w = i
            .command(0, &rw10(0x2A, lba, 8), &pattern, 0)
            .expect("WRITE");
        assert_eq!((w.status, w.sense.len()), (0, 0), "WRITE at {lba}");
        let r = i
            .command(0, &rw10(0x28, lba, 8), &[], 8 * 512)
            .expect("READ");
        assert_eq!(r.status, 0, "READ at {lba}");
        assert_eq!(r.data, pattern, "READ at {lba}");
    }
    let (tries, blocking) = (
        store.tries.load(Ordering::SeqCst),
        store.blocking.load(Ordering::SeqCst),
    );
    assert_eq!(tries, 6, "every READ and WRITE was first attempted inline");
    assert_eq!(blocking, 6, "and then done on the blocking pool");

    // The store answers at once: the same commands complete inline, nothing blocks.
    store.refuse.store(false, Ordering::SeqCst);
    for lba in [8u32, 72] {
        let w = i
            .command(0, &rw10(0x2A, lba, 8), &pattern, 0)
            .expect("WRITE");
        assert_eq!(w.status, 0, "WRITE at {lba}");
        let r = i
            .command(0, &rw10(0x28, lba, 8), &[], 8 * 512)
            .expect("READ");
        assert_eq!((r.status, &r.data), (0, &pattern), "READ at {lba}");
    }
    assert_eq!(store.tries.load(Ordering::SeqCst), tries + 4);
    assert_eq!(store.blocking.load(Ordering::SeqCst), blocking);

    // A command the table does not mark inline is never attempted there: SYNCHRONIZE
    // CACHE(10) flushes on the blocking pool.
    let s = i
        .command(0, &rw10(0x35, 0, 0), &[], 0)
        .expect("SYNCHRONIZE CACHE");
    assert_eq!(s.status, 0);
    assert_eq!(store.tries.load(Ordering::SeqCst), tries + 4);
    assert_eq!(store.blocking.load(Ordering::SeqCst), blocking + 1);
}
