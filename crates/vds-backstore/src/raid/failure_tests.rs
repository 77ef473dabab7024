//! More tests of the composite store: stripe/concat mapping against a model (proptest),
//! the mirror failure rules, resync under concurrent writes on memory and on files, and flush
//! and FUA fan-out.

use std::sync::atomic::AtomicU64;
use std::sync::Mutex as StdMutex;
use std::time::Instant;

use proptest::prelude::*;

use super::*;
use crate::{FaultFilter, FaultOp, FileStore, Filtered, MemoryStore};

fn seg(store: &Arc<dyn BackingStore>, offset: u64, len: u64) -> Segment {
    Segment {
        store: store.clone(),
        offset,
        len,
    }
}

fn mem(size: u64) -> Arc<dyn BackingStore> {
    Arc::new(MemoryStore::new(size))
}

fn simple(store: &Arc<dyn BackingStore>) -> PlexLayout {
    PlexLayout {
        columns: vec![vec![seg(store, 0, store.size())]],
        stripe_size: 0,
    }
}

/// Records every failure it hears.
#[derive(Default)]
struct Recorder(StdMutex<Vec<usize>>);

impl PlexObserver for Recorder {
    fn plex_failed(&self, plex: usize, _error: &io::Error) {
        self.0.lock().unwrap().push(plex);
    }
}

/// A store that counts what reaches it.
struct Counting {
    inner: Arc<dyn BackingStore>,
    reads: AtomicU64,
    writes: AtomicU64,
    fua_writes: AtomicU64,
    flushes: AtomicU64,
}

impl Counting {
    fn new(inner: Arc<dyn BackingStore>) -> Arc<Counting> {
        Arc::new(Counting {
            inner,
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            fua_writes: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
        })
    }
    fn n(a: &AtomicU64) -> u64 {
        a.load(Ordering::SeqCst)
    }
}

impl BackingStore for Counting {
    fn kind(&self) -> &'static str {
        "counting"
    }
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64, fua: bool) -> io::Result<()> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        if fua {
            self.fua_writes.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.write_at(buf, offset, fua)
    }
    fn try_read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.read_at(buf, offset)
    }
    fn try_write_at(&self, buf: &[u8], offset: u64, fua: bool) -> io::Result<()> {
        self.write_at(buf, offset, fua)
    }
    fn flush(&self) -> io::Result<()> {
        self.flushes.fetch_add(1, Ordering::SeqCst);
        self.inner.flush()
    }
    fn unmap(&self, offset: u64, len: u64) -> io::Result<()> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.unmap(offset, len)
    }
}

fn error_filter(ops: Vec<FaultOp>) -> Vec<FaultFilter> {
    vec![FaultFilter::Error { ops, after: 0 }]
}

#[test]
fn a_plex_failing_writes_is_failed_once_and_left_alone() {
    let good = mem(1 << 20);
    let bad_inner = Counting::new(mem(1 << 20));
    let bad: Arc<dyn BackingStore> = Arc::new(Filtered::new(
        bad_inner.clone(),
        error_filter(vec![FaultOp::Write]),
    ));
    let obs = Arc::new(Recorder::default());
    let s = RaidStore::new(
        vec![simple(&good), simple(&bad)],
        vec![PlexState::Current, PlexState::Current],
        obs.clone(),
    )
    .unwrap();
    for i in 0..64u64 {
        let data = vec![i as u8 + 1; 4096];
        s.write_at(&data, i * 16384, false).unwrap();
        s.try_write_at(&data, i * 16384 + 4096, true).unwrap();
    }
    assert_eq!(*obs.0.lock().unwrap(), vec![1]);
    assert_eq!(s.plex_state(1), PlexState::Failed);
    assert_eq!(Counting::n(&bad_inner.writes), 0);
    let mut buf = vec![0u8; 4096];
    for i in 0..64u64 {
        s.read_at(&mut buf, i * (1 << 14)).unwrap();
        assert!(buf.iter().all(|&v| v == i as u8 + 1));
        s.try_read_at(&mut buf, i * (1 << 14) + 4096).unwrap();
    }
    assert_eq!(Counting::n(&bad_inner.reads), 0);
    s.flush().unwrap();
    assert_eq!(Counting::n(&bad_inner.flushes), 0);
    assert_eq!(obs.0.lock().unwrap().len(), 1);
}

#[test]
fn a_plex_failing_reads_is_failed_and_the_read_retried() {
    let a = mem(4 << 20);
    let b_inner = mem(4 << 20);
    let b = Arc::new(Filtered::new(b_inner, Vec::new()));
    let bd: Arc<dyn BackingStore> = b.clone();
    let obs = Arc::new(Recorder::default());
    let s = RaidStore::new(
        vec![simple(&a), simple(&bd)],
        vec![PlexState::Current, PlexState::Current],
        obs.clone(),
    )
    .unwrap();
    let data: Vec<u8> = (0..(4u32 << 20)).map(|i| (i % 251) as u8).collect();
    s.write_at(&data, 0, false).unwrap();
    b.set_filters(error_filter(vec![FaultOp::Read]));
    // Offsets in every MiB, so each plex is the preferred one for some of them.
    let mut buf = vec![0u8; 8192];
    for mib in 0..4u64 {
        let o = mib << 20;
        s.read_at(&mut buf, o).unwrap();
        assert_eq!(&buf[..], &data[o as usize..o as usize + 8192]);
    }
    assert_eq!(s.plex_state(1), PlexState::Failed);
    assert_eq!(s.plex_state(0), PlexState::Current);
    assert_eq!(*obs.0.lock().unwrap(), vec![1]);
}

#[test]
fn every_plex_failing_fails_the_write_and_the_read() {
    let stores: Vec<Arc<dyn BackingStore>> = (0..2)
        .map(|_| {
            Arc::new(Filtered::new(
                mem(1 << 20),
                error_filter(vec![FaultOp::Write, FaultOp::Read]),
            )) as Arc<dyn BackingStore>
        })
        .collect();
    let obs = Arc::new(Recorder::default());
    let s = RaidStore::new(
        stores.iter().map(simple).collect(),
        vec![PlexState::Current; 2],
        obs.clone(),
    )
    .unwrap();
    let e = s.write_at(&[1u8; 512], 0, false).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO));
    assert_eq!(*obs.0.lock().unwrap(), vec![0, 1]);
    assert!(s.read_at(&mut [0u8; 512], 0).is_err());
    assert!(s.write_at(&[1u8; 512], 0, false).is_err());
    // A range beyond the end is refused as such and fails no plex.
    let one = mem(1 << 20);
    let t = RaidStore::new(
        vec![simple(&one)],
        vec![PlexState::Current],
        Arc::new(NoObserver),
    )
    .unwrap();
    let e = t.write_at(&[0u8; 512], 1 << 20, false).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(t.plex_state(0), PlexState::Current);
}

/// One run: a stale plex resynchronised while a writer thread writes at random; afterwards
/// both plexes equal the writer's model. Answers whether the plexes came out equal.
fn resync_under_writes(seed: u64, files: Option<&std::path::Path>) -> bool {
    const SIZE: u64 = 1 << 20;
    let (a, b): (Arc<dyn BackingStore>, Arc<dyn BackingStore>) = match files {
        Some(dir) => {
            let open = |n: &str| -> Arc<dyn BackingStore> {
                let p = dir.join(format!("{n}{seed}"));
                crate::create_file(&p, SIZE, false).unwrap();
                Arc::new(FileStore::open(&p).unwrap())
            };
            (open("a"), open("b"))
        }
        None => (mem(SIZE), mem(SIZE)),
    };
    b.write_at(&vec![0xEE; SIZE as usize], 0, false).unwrap();
    let s = Arc::new(
        RaidStore::new(
            vec![simple(&a), simple(&b)],
            vec![PlexState::Current, PlexState::Stale],
            Arc::new(NoObserver),
        )
        .unwrap(),
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (s, stop) = (s.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut model = vec![0u8; SIZE as usize];
            let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) || n < 200 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let o = (x % (SIZE / 512 - 8)) * 512;
                let len = 512 * (1 + (x >> 40) % 8) as usize;
                let v = (x >> 32) as u8;
                let data = vec![v; len];
                if s.try_write_at(&data, o, false).is_err() {
                    s.write_at(&data, o, false).unwrap();
                }
                model[o as usize..o as usize + len].copy_from_slice(&data);
                n += 1;
            }
            model
        })
    };
    s.resync(1, 16384, &mut |_, _| true).unwrap();
    stop.store(true, Ordering::Relaxed);
    let model = writer.join().unwrap();
    assert_eq!(s.plex_state(1), PlexState::Current);
    let mut p0 = vec![0u8; SIZE as usize];
    let mut p1 = vec![0u8; SIZE as usize];
    s.read_plex_at(0, &mut p0, 0).unwrap();
    s.read_plex_at(1, &mut p1, 0).unwrap();
    assert!(p0 == model, "plex 0 differs from the model");
    p0 == p1
}

#[test]
fn resync_under_a_concurrent_writer_leaves_equal_plexes() {
    let t = Instant::now();
    let bad = (0..60).filter(|&i| !resync_under_writes(i, None)).count();
    let dir = tempfile::tempdir().unwrap();
    let bad_files = (0..10)
        .filter(|&i| !resync_under_writes(i, Some(dir.path())))
        .count();
    eprintln!("resync under writes: 70 runs in {:?}", t.elapsed());
    assert_eq!((bad, bad_files), (0, 0), "runs with unequal plexes");
}

#[test]
fn flush_and_fua_reach_every_distinct_store_of_every_live_plex() {
    let c: Vec<Arc<Counting>> = (0..5).map(|_| Counting::new(mem(1 << 20))).collect();
    let d: Vec<Arc<dyn BackingStore>> = c.iter().map(|x| x.clone() as _).collect();
    // Plex 0: a stripe whose two columns share store 0 and also use store 1.
    let p0 = PlexLayout {
        columns: vec![
            vec![seg(&d[0], 0, 65536), seg(&d[1], 0, 65536)],
            vec![seg(&d[0], 1 << 19, 131072)],
        ],
        stripe_size: 4096,
    };
    let p1 = PlexLayout {
        columns: vec![vec![seg(&d[2], 0, 131072), seg(&d[3], 0, 131072)]],
        stripe_size: 0,
    };
    let p2 = simple(&d[4]);
    let p2 = PlexLayout {
        columns: vec![vec![seg(&d[4], 0, 262144)]],
        ..p2
    };
    let s = RaidStore::new(
        vec![p0, p1, p2],
        vec![PlexState::Current, PlexState::Stale, PlexState::Failed],
        Arc::new(NoObserver),
    )
    .unwrap();
    s.flush().unwrap();
    let flushes: Vec<u64> = c.iter().map(|x| Counting::n(&x.flushes)).collect();
    assert_eq!(flushes, vec![1, 1, 1, 1, 0]);
    // A FUA write of the whole LUN reaches every store of the live plexes with FUA.
    s.write_at(&vec![3u8; 262144], 0, true).unwrap();
    let fua: Vec<bool> = c.iter().map(|x| Counting::n(&x.fua_writes) > 0).collect();
    assert_eq!(fua, vec![true, true, true, true, false]);
    let writes: u64 = c.iter().map(|x| Counting::n(&x.writes)).sum();
    let fua_n: u64 = c.iter().map(|x| Counting::n(&x.fua_writes)).sum();
    assert_eq!(writes, fua_n);
}

/// Where logical byte `o` of a plex lives, computed the slow way: (column, column offset),
/// then the segment holding that column offset.
fn model_place(cols: &[Vec<(usize, u64, u64)>], stripe: u64, o: u64) -> (usize, u64) {
    let n = cols.len() as u64;
    let (c, co) = if n == 1 {
        (0, o)
    } else {
        (
            ((o / stripe) % n) as usize,
            (o / stripe / n) * stripe + o % stripe,
        )
    };
    let mut start = 0;
    for &(store, off, len) in &cols[c] {
        if co < start + len {
            return (store, off + co - start);
        }
        start += len;
    }
    unreachable!("byte {o} beyond its column")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn mapping_matches_a_model(
        col_segs in prop::collection::vec(prop::collection::vec(1u64..20_000, 1..4), 1..5),
        stripe_k in 1u64..9,
        ranges in prop::collection::vec((0u64..1_000_000, 1u64..40_000), 1..12),
    ) {
        let stripe = stripe_k * 512;
        // Every segment on its own store at an odd offset, so misplacement shows.
        let mut stores = Vec::new();
        let mut cols = Vec::new();
        let mut layout_cols = Vec::new();
        for segs in &col_segs {
            let mut c = Vec::new();
            let mut lc = Vec::new();
            for &len in segs {
                let st = mem(len + 777);
                c.push((stores.len(), 777, len));
                lc.push(seg(&st, 777, len));
                stores.push(st);
            }
            cols.push(c);
            layout_cols.push(lc);
        }
        let p = PlexLayout { columns: layout_cols, stripe_size: stripe };
        let size = p.size();
        prop_assume!(size > 0);
        let s = RaidStore::new(vec![p], vec![PlexState::Current], Arc::new(NoObserver)).unwrap();
        let mut model = vec![0u8; size as usize];
        for (k, &(o, l)) in ranges.iter().enumerate() {
            let o = o % size;
            let l = l.min(size - o);
            let data: Vec<u8> = (0..l).map(|i| (i as u8).wrapping_mul(31) ^ k as u8 ^ 0x5A).collect();
            s.write_at(&data, o, false).unwrap();
            model[o as usize..(o + l) as usize].copy_from_slice(&data);
        }
        for o in 0..size {
            let (st, at) = model_place(&cols, stripe, o);
            let mut b = [0u8];
            stores[st].read_at(&mut b, at).unwrap();
            prop_assert_eq!(b[0], model[o as usize], "byte {}", o);
        }
        for &(o, l) in &ranges {
            let o = o % size;
            let l = l.min(size - o);
            let mut back = vec![0u8; l as usize];
            s.read_at(&mut back, o).unwrap();
            prop_assert!(back[..] == model[o as usize..(o + l) as usize]);
        }
    }
}
