//! Commands started on a store with asynchronous I/O ([`LunMap::start`]): the store operation
//! handed back as [`Pending`], submitted, completed later from another thread and ended by
//! [`Pending::finish`]; the FUA flush that follows a write; COMPARE AND WRITE's miscompare
//! offset; WRITE SAME and its UNMAP form; a store failure; OFFLINE waiting for a pending
//! command; the same commands on a store without asynchronous I/O; a resize made behind the
//! array reported once as CAPACITY DATA HAS CHANGED.

use std::sync::atomic::AtomicU64;
use std::sync::mpsc;
use std::time::Duration;

use vds_backstore::{AioBufs, AioDone, AioError, AioOp, AioStore};

use super::*;

/// Memory whose asynchronous operations wait in a queue until the test runs them, on a
/// thread of their own; every operation is logged.
#[derive(Default)]
struct QueuedStore {
    mem: Option<MemoryStore>,
    queue: Mutex<Vec<(AioOp, AioBufs, AioDone)>>,
    log: Mutex<Vec<AioOp>>,
    fail: AtomicBool,
    resized: AtomicU64,
}

impl QueuedStore {
    fn new() -> Arc<QueuedStore> {
        Arc::new(QueuedStore {
            mem: Some(MemoryStore::new(BLOCKS * u64::from(BS))),
            ..Default::default()
        })
    }

    fn mem(&self) -> &MemoryStore {
        self.mem.as_ref().expect("memory")
    }

    /// Runs every queued operation on another thread (as librbd's would) and waits for it.
    fn run_queued(self: &Arc<Self>) -> usize {
        let ops: Vec<_> = std::mem::take(&mut *self.queue.lock());
        let n = ops.len();
        let me = self.clone();
        std::thread::spawn(move || {
            for (op, mut bufs, done) in ops {
                let r = me.perform(op, &mut bufs);
                done(r, bufs);
            }
        })
        .join()
        .unwrap();
        n
    }

    fn perform(&self, op: AioOp, bufs: &mut AioBufs) -> Result<(), AioError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(AioError::Io(std::io::Error::other("injected")));
        }
        let m = self.mem();
        match op {
            AioOp::Read { offset, len } => {
                bufs.data_in.resize(len, 0);
                m.read_at(&mut bufs.data_in, offset)
            }
            AioOp::Write { offset, len } => m.write_at(&bufs.data_out[..len], offset, false),
            AioOp::Flush => m.flush(),
            AioOp::Discard { offset, len } => m.unmap(offset, len),
            AioOp::WriteSame { offset, len, block } => {
                let data = bufs.data_out[..block].repeat(len as usize / block);
                m.write_at(&data, offset, false)
            }
            AioOp::CompareAndWrite { offset, len } => {
                let mut cur = vec![0u8; len];
                m.read_at(&mut cur, offset).map_err(AioError::Io)?;
                if let Some(i) = cur
                    .iter()
                    .zip(&bufs.data_out[..len])
                    .position(|(a, b)| a != b)
                {
                    return Err(AioError::Miscompare(i as u64));
                }
                m.write_at(&bufs.data_out[len..2 * len], offset, false)
            }
        }
        .map_err(AioError::Io)
    }
}

impl AioStore for QueuedStore {
    fn compare_and_write_in_one(&self, offset: u64, len: u64) -> bool {
        len > 0 && offset % 512 + len <= 512
    }
    fn submit(&self, op: AioOp, bufs: AioBufs, done: AioDone) {
        self.log.lock().push(op);
        self.queue.lock().push((op, bufs, done));
    }
}

impl BackingStore for QueuedStore {
    fn kind(&self) -> &'static str {
        "queued"
    }
    fn size(&self) -> u64 {
        self.mem().size()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.mem().read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64, fua: bool) -> std::io::Result<()> {
        self.mem().write_at(buf, offset, fua)
    }
    fn try_read_at(&self, _: &mut [u8], _: u64) -> std::io::Result<()> {
        Err(std::io::ErrorKind::WouldBlock.into())
    }
    fn try_write_at(&self, _: &[u8], _: u64, _: bool) -> std::io::Result<()> {
        Err(std::io::ErrorKind::WouldBlock.into())
    }
    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn unmap(&self, offset: u64, len: u64) -> std::io::Result<()> {
        self.mem().unmap(offset, len)
    }
    fn thin(&self) -> bool {
        true
    }
    fn resize(&self, new_size: u64) -> std::io::Result<()> {
        self.mem().resize(new_size)
    }
    fn aio(&self) -> Option<&dyn AioStore> {
        Some(self)
    }
    fn resized_elsewhere(&self) -> u64 {
        self.resized.load(Ordering::SeqCst)
    }
}

struct AioRig {
    map: LunMap,
    lu: Arc<LogicalUnit>,
    store: Arc<QueuedStore>,
    events: Arc<Events>,
    filtered: Arc<Filtered>,
}

fn aio_rig() -> AioRig {
    let store = QueuedStore::new();
    let filtered = Arc::new(Filtered::new(store.clone(), vec![]));
    let (lu, events) = lu_with(filtered.clone(), None);
    let map = LunMap {
        entries: vec![LunEntry {
            number: 0,
            lu: lu.clone(),
            mask: Mask::Everyone,
        }],
        port_groups: Default::default(),
    };
    AioRig {
        map,
        lu,
        store,
        events,
        filtered,
    }
}

fn cmd<'a>(cdb: &'a [u8], out: &'a [u8]) -> ScsiCommand<'a> {
    ScsiCommand {
        cdb,
        data_out: out,
        expected_in_len: 1 << 20,
        attr: TaskAttr::Simple,
    }
}

impl AioRig {
    /// Starts `cdb`; a pending command is submitted, run and ended (with the flush after a
    /// FUA write) as the transport does. The reply and how many operations it took.
    fn start(&self, n: &ItNexus, cdb: &[u8], out: &[u8]) -> (Reply, usize) {
        let mut data = Vec::new();
        let mut p = match self.map.start(n, 0, &cmd(cdb, out), &mut data) {
            Ok(Started::Done(d)) => return (reply(d.outcome, data), 0),
            Ok(Started::Pending(p)) => p,
            Err(WouldBlock) => panic!("{cdb:02x?} would block"),
        };
        let mut bufs = AioBufs {
            data_in: data,
            data_out: out.to_vec(),
        };
        let mut ops = 0;
        loop {
            let (tx, rx) = mpsc::channel();
            p.submit(bufs, move |p, r, b| tx.send((p, r, b)).unwrap())
                .expect("submitted");
            ops += self.store.run_queued();
            let (pending, r, b) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
            let AioBufs {
                mut data_in,
                data_out,
            } = b;
            match pending.finish(r, &mut data_in) {
                Ok(done) => return (reply(done.outcome, data_in), ops),
                Err(next) => {
                    p = next;
                    bufs = AioBufs { data_in, data_out };
                }
            }
        }
    }

    fn would_block(&self, n: &ItNexus, cdb: &[u8], out: &[u8]) -> bool {
        let mut data = Vec::new();
        matches!(
            self.map.start(n, 0, &cmd(cdb, out), &mut data),
            Err(WouldBlock)
        )
    }
}

fn reply(o: ScsiOutcome, data: Vec<u8>) -> Reply {
    Reply {
        status: o.status,
        sense: o.sense,
        data,
    }
}

fn caw(lba: u8, blocks: u8) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0x89;
    c[9] = lba;
    c[13] = blocks;
    c
}

#[test]
fn started_commands_hand_their_store_operation_back_and_end_in_finish() {
    let r = aio_rig();
    let n = nexus(1);
    let data: Vec<u8> = (0..1024u32).map(|i| (i * 7) as u8).collect();
    // WRITE(10) with FUA: the write, then the flush, then GOOD.
    let mut w = write10(1, 2);
    w[1] = 0x08;
    let (rep, ops) = r.start(&n, &w, &data);
    rep.good();
    assert_eq!(ops, 2);
    assert_eq!(
        r.store.log.lock().clone(),
        [
            AioOp::Write {
                offset: 512,
                len: 1024
            },
            AioOp::Flush
        ]
    );
    // READ(10): the Data-In the store filled.
    let (rep, ops) = r.start(&n, &read10(1, 2), &[]);
    assert_eq!((rep.good().data.clone(), ops), (data.clone(), 1));
    // SYNCHRONIZE CACHE(10) is one flush.
    r.store.log.lock().clear();
    let (rep, _) = r.start(&n, &[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[]);
    rep.good();
    assert_eq!(r.store.log.lock().clone(), [AioOp::Flush]);

    // COMPARE AND WRITE of one block: written when equal; a miscompare reports the offset
    // of the first differing byte in INFORMATION and writes nothing.
    let mut out = data[..512].to_vec();
    out.extend(vec![b'B'; 512]);
    r.start(&n, &caw(1, 1), &out).0.good();
    let mut bad = vec![b'B'; 512];
    bad[37] = 0;
    bad.extend(vec![b'C'; 512]);
    let (rep, _) = r.start(&n, &caw(1, 1), &bad);
    check(&rep, (0x0E, 0x1D, 0));
    assert_eq!(&rep.sense.as_ref().unwrap()[3..7], &[0, 0, 0, 37]);
    assert_eq!(r.start(&n, &read10(1, 1), &[]).0.data, vec![b'B'; 512]);
    // Wider than the store's one operation: the blocking way, with the same answers.
    assert!(r.would_block(&n, &caw(1, 2), &[0; 2048]));
    let mut out = vec![b'B'; 512];
    out.extend(&data[512..]);
    out.extend(vec![b'D'; 1024]);
    r.map
        .execute(&n, 0, &cmd(&caw(1, 2), &out), &mut Vec::new());
    assert_eq!(r.start(&n, &read10(1, 2), &[]).0.data, vec![b'D'; 1024]);

    // WRITE SAME(10) of 4 blocks is one writesame; with UNMAP one discard.
    r.store.log.lock().clear();
    let block: Vec<u8> = (0..512u32).map(|i| i as u8).collect();
    let ws = [0x41, 0, 0, 0, 0, 8, 0, 0, 4, 0];
    r.start(&n, &ws, &block).0.good();
    let back = r.start(&n, &read10(8, 4), &[]).0.data;
    assert!(back.chunks(512).all(|c| c == block.as_slice()));
    let ws_unmap = [0x41, 0x08, 0, 0, 0, 8, 0, 0, 2, 0];
    r.start(&n, &ws_unmap, &block).0.good();
    assert_eq!(r.start(&n, &read10(8, 2), &[]).0.data, vec![0; 1024]);
    assert_eq!(
        r.store.log.lock()[..3],
        [
            AioOp::WriteSame {
                offset: 4096,
                len: 2048,
                block: 512
            },
            AioOp::Read {
                offset: 4096,
                len: 2048
            },
            AioOp::Discard {
                offset: 4096,
                len: 1024
            },
        ]
    );
    // Commands without a store operation to hand back are answered or refused as inline.
    assert!(r.would_block(&n, &TUR, &[]));

    // A failed operation is a medium error, and the LU goes FAILED once.
    r.store.fail.store(true, Ordering::SeqCst);
    let (rep, _) = r.start(&n, &write10(1, 1), &data[..512]);
    check(&rep, (3, 0x0C, 0));
    assert_eq!(r.events.failed.load(Ordering::SeqCst), 1);
    assert_eq!(r.lu.state(), LuState::Failed);
}

#[test]
fn offline_waits_for_a_pending_command_and_a_filter_sends_it_the_blocking_way() {
    let r = aio_rig();
    let n = nexus(1);
    let mut data = Vec::new();
    let Ok(Started::Pending(p)) = r
        .map
        .start(&n, 0, &cmd(&write10(0, 1), &[9; 512]), &mut data)
    else {
        panic!("pending");
    };
    let (tx, rx) = mpsc::channel();
    let bufs = AioBufs {
        data_in: data,
        data_out: vec![9; 512],
    };
    p.submit(bufs, move |p, r, b| tx.send((p, r, b)).unwrap())
        .unwrap();
    let lu = r.lu.clone();
    let offline = std::thread::spawn(move || lu.set_state(LuState::Offline).unwrap());
    std::thread::sleep(Duration::from_millis(150));
    assert!(
        !offline.is_finished(),
        "OFFLINE waits for the pending write"
    );
    r.store.run_queued();
    let (p, res, mut b) = rx.recv().unwrap();
    assert!(!offline.is_finished(), "until the command ends");
    assert_eq!(
        p.finish(res, &mut b.data_in).unwrap().outcome,
        ScsiOutcome::GOOD
    );
    offline.join().unwrap();
    assert_eq!(r.lu.state(), LuState::Offline);

    // A fault filter installed after the command started: submit refuses, and the operation
    // runs through the store's blocking methods (through the filter).
    r.lu.set_state(LuState::Online).unwrap();
    r.map.execute(&n, 0, &cmd(&TUR, &[]), &mut Vec::new()); // the 06/29 UA
    let mut data = Vec::new();
    let Ok(Started::Pending(p)) = r.map.start(&n, 0, &cmd(&read10(0, 1), &[]), &mut data) else {
        panic!("pending");
    };
    r.filtered.set_filters(vec![FaultFilter::Error {
        ops: vec![FaultOp::Read],
        after: 0,
    }]);
    // New commands are not started asynchronously while it is installed.
    assert!(r.would_block(&n, &read10(0, 1), &[]));
    let bufs = AioBufs {
        data_in: data,
        data_out: Vec::new(),
    };
    let Err((p, mut bufs)) = p.submit(bufs, |_, _, _| panic!("not submitted")) else {
        panic!("a filtered store has no aio");
    };
    let res = p.run_blocking(&mut bufs);
    let rep = p.finish(res, &mut bufs.data_in).unwrap();
    assert_eq!(rep.outcome.status, ScsiStatus::CheckCondition);
    assert!(r.store.queue.lock().is_empty());
}

#[test]
fn a_store_without_aio_starts_commands_as_inline_dispatch_does() {
    let r = rig();
    let n = nexus(1);
    let mut data = Vec::new();
    let w = r
        .map
        .start(&n, 0, &cmd(&write10(0, 1), &[5; 512]), &mut data);
    assert!(matches!(w, Ok(Started::Done(ref d)) if d.outcome == ScsiOutcome::GOOD));
    let rd = r.map.start(&n, 0, &cmd(&read10(0, 1), &[]), &mut data);
    assert!(matches!(rd, Ok(Started::Done(_))));
    assert_eq!(data, vec![5; 512]);
    for cdb in [
        &caw(0, 1)[..],
        &[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        &[0x41, 0, 0, 0, 0, 0, 0, 0, 1, 0],
    ] {
        assert!(
            matches!(
                r.map.start(&n, 0, &cmd(cdb, &[0; 1024]), &mut data),
                Err(WouldBlock)
            ),
            "{cdb:02x?}"
        );
    }
}

#[test]
fn a_resize_behind_the_array_is_reported_once_per_nexus() {
    let r = aio_rig();
    let (a, b) = (nexus(1), nexus(2));
    r.x_plain(&a).good();
    r.x_plain(&b).good();
    r.store.resize(2 * BLOCKS * u64::from(BS)).unwrap();
    r.store.resized.fetch_add(1, Ordering::SeqCst);
    check(&r.x_plain(&a), (6, 0x2A, 0x09));
    r.x_plain(&a).good();
    check(&r.x_plain(&b), (6, 0x2A, 0x09));
    r.x_plain(&b).good();
    assert_eq!(r.lu.num_blocks(), 2 * BLOCKS);
}

impl AioRig {
    fn x_plain(&self, n: &ItNexus) -> Reply {
        run(&self.map, n, 0, &TUR, &[])
    }
}
