//! The inline path never blocks: a READ or WRITE first runs on the connection's I/O thread
//! through the store's non-blocking methods, and when the store answers `WouldBlock` the
//! command runs again on the blocking pool, never through a blocking method on the I/O thread.
//! Address: 127.0.33.9:43093.
//!
//! On a store with asynchronous I/O (as RBD's), READ, WRITE with FUA, SYNCHRONIZE CACHE,
//! COMPARE AND WRITE and WRITE SAME are submitted from the I/O thread and completed from the
//! store's own thread; no blocking method and no blocking-pool thread is used. Address:
//! 127.0.12.5:3260.

mod common;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use common::{Harness, TARGET};
use uuid::Uuid;
use vds_backstore::{AioBufs, AioDone, AioError, AioOp, AioStore, BackingStore, MemoryStore};
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

/// Memory with asynchronous I/O: each operation is done 2 ms later on a thread of its own
/// (`store-cb`), as librbd's would; every blocking method counts (none may run).
#[derive(Default)]
struct Async {
    mem: Option<Arc<MemoryStore>>,
    blocking: AtomicU64,
    submitted_on_io_thread: AtomicU64,
    ops: parking_lot::Mutex<Vec<AioOp>>,
}

impl Async {
    fn mem(&self) -> &MemoryStore {
        self.mem.as_ref().expect("memory")
    }
    fn blocked(&self) {
        self.blocking.fetch_add(1, Ordering::SeqCst);
    }
}

impl AioStore for Async {
    fn compare_and_write_in_one(&self, offset: u64, len: u64) -> bool {
        len > 0 && offset % 512 + len <= 512
    }
    fn submit(&self, op: AioOp, mut bufs: AioBufs, done: AioDone) {
        let name = std::thread::current().name().unwrap_or("").to_string();
        if name.starts_with("vds-io-") && !name.ends_with("-blocking") {
            self.submitted_on_io_thread.fetch_add(1, Ordering::SeqCst);
        }
        self.ops.lock().push(op);
        let mem = self.mem.clone().expect("memory");
        std::thread::Builder::new()
            .name("store-cb".into())
            .spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(2));
                let r = match op {
                    AioOp::Read { offset, len } => {
                        bufs.data_in.resize(len, 0);
                        mem.read_at(&mut bufs.data_in, offset)
                    }
                    AioOp::Write { offset, len } => {
                        mem.write_at(&bufs.data_out[..len], offset, false)
                    }
                    AioOp::Flush => Ok(()),
                    AioOp::Discard { offset, len } => mem.unmap(offset, len),
                    AioOp::WriteSame { offset, len, block } => mem.write_at(
                        &bufs.data_out[..block].repeat(len as usize / block),
                        offset,
                        false,
                    ),
                    AioOp::CompareAndWrite { offset, len } => {
                        let mut cur = vec![0u8; len];
                        let _ = mem.read_at(&mut cur, offset);
                        if let Some(i) = cur
                            .iter()
                            .zip(&bufs.data_out[..len])
                            .position(|(a, b)| a != b)
                        {
                            return done(Err(AioError::Miscompare(i as u64)), bufs);
                        }
                        mem.write_at(&bufs.data_out[len..2 * len], offset, false)
                    }
                };
                done(r.map_err(AioError::Io), bufs);
            })
            .expect("a callback thread");
    }
}

impl BackingStore for Async {
    fn kind(&self) -> &'static str {
        "async"
    }
    fn size(&self) -> u64 {
        self.mem().size()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.blocked();
        self.mem().read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64, fua: bool) -> io::Result<()> {
        self.blocked();
        self.mem().write_at(buf, offset, fua)
    }
    fn try_read_at(&self, _: &mut [u8], _: u64) -> io::Result<()> {
        self.blocked();
        Err(io::ErrorKind::WouldBlock.into())
    }
    fn try_write_at(&self, _: &[u8], _: u64, _: bool) -> io::Result<()> {
        self.blocked();
        Err(io::ErrorKind::WouldBlock.into())
    }
    fn flush(&self) -> io::Result<()> {
        self.blocked();
        Ok(())
    }
    fn unmap(&self, offset: u64, len: u64) -> io::Result<()> {
        self.blocked();
        self.mem().unmap(offset, len)
    }
    fn thin(&self) -> bool {
        true
    }
    fn aio(&self) -> Option<&dyn AioStore> {
        Some(self)
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

#[test]
fn commands_on_an_aio_store_are_submitted_from_the_io_thread_and_never_block() {
    let h = Harness::start(
        &["127.0.12.5:3260"],
        ChapConfig::default(),
        Limits::default(),
    );
    let store = Arc::new(Async {
        mem: Some(Arc::new(MemoryStore::new(1 << 20))),
        ..Default::default()
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
        &LoginOptions::normal("iqn.2026-12.test.aio:i", TARGET),
    )
    .expect("login");
    let pattern: Vec<u8> = (0..8 * 512).map(|k| (k % 249) as u8).collect();
    let good = |r: &vds_testkit::ScsiResult, what: &str| {
        assert_eq!(
            (r.status, r.sense.len()),
            (0, 0),
            "{what}: {:02x?}",
            r.sense
        );
    };
    // WRITE(10) with FUA, then READ(10).
    let mut w = rw10(0x2A, 16, 8);
    w[1] = 0x08;
    good(&i.command(0, &w, &pattern, 0).expect("WRITE"), "WRITE FUA");
    let r = i
        .command(0, &rw10(0x28, 16, 8), &[], 8 * 512)
        .expect("READ");
    good(&r, "READ");
    assert_eq!(r.data, pattern);
    good(
        &i.command(0, &rw10(0x35, 0, 0), &[], 0).expect("SYNC"),
        "SYNCHRONIZE CACHE",
    );
    // COMPARE AND WRITE of block 16 (equal), then a miscompare at byte 5.
    let mut caw = [0u8; 16];
    caw[0] = 0x89;
    caw[9] = 16;
    caw[13] = 1;
    let mut out = pattern[..512].to_vec();
    out.extend(vec![0x5A; 512]);
    good(
        &i.command(0, &caw, &out, 0).expect("CAW"),
        "COMPARE AND WRITE",
    );
    let mut bad = vec![0x5A; 512];
    bad[5] = 0;
    bad.extend(vec![0x11; 512]);
    let m = i.command(0, &caw, &bad, 0).expect("CAW");
    assert_eq!((m.status, m.sense[2] & 0x0F, m.sense[12]), (2, 0x0E, 0x1D));
    assert_eq!(&m.sense[3..7], &[0, 0, 0, 5]);
    // WRITE SAME(10) of 4 blocks.
    let ws = [0x41, 0, 0, 0, 0, 40, 0, 0, 4, 0];
    good(
        &i.command(0, &ws, &pattern[..512], 512).expect("WS"),
        "WRITE SAME",
    );
    let r = i
        .command(0, &rw10(0x28, 40, 4), &[], 4 * 512)
        .expect("READ");
    assert!(r.data.chunks(512).all(|c| c == &pattern[..512]));

    assert_eq!(
        store.ops.lock().clone(),
        [
            AioOp::Write {
                offset: 8192,
                len: 4096
            },
            AioOp::Flush,
            AioOp::Read {
                offset: 8192,
                len: 4096
            },
            AioOp::Flush,
            AioOp::CompareAndWrite {
                offset: 8192,
                len: 512
            },
            AioOp::CompareAndWrite {
                offset: 8192,
                len: 512
            },
            AioOp::WriteSame {
                offset: 20480,
                len: 2048,
                block: 512
            },
            AioOp::Read {
                offset: 20480,
                len: 2048
            },
        ]
    );
    assert_eq!(
        store.submitted_on_io_thread.load(Ordering::SeqCst),
        8,
        "every operation was submitted from the connection's I/O thread"
    );
    assert_eq!(
        store.blocking.load(Ordering::SeqCst),
        0,
        "no blocking or try_ method ran"
    );
}
