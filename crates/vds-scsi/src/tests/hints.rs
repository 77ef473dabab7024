//! The provider's hints on the data path (BEHAVIOUR.md §14 rule 8) and the identity that
//! INQUIRY shows: the write-back cache is WCE both ways, write-through makes every write FUA,
//! read-back-verify catches a store that does not keep what it was given, the optimal sizes
//! reach VPD B0, and VPD 80/83 are the encoding of `crate::identity`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::*;

/// A memory store that counts the writes it was asked to make durable (FUA) and, when told
/// to, keeps a different byte than it was given (a store that loses data).
struct Recorder {
    inner: MemoryStore,
    writes: AtomicUsize,
    fua_writes: AtomicUsize,
    corrupt: AtomicBool,
}

impl Recorder {
    fn new() -> Recorder {
        Recorder {
            inner: MemoryStore::new(BLOCKS * u64::from(BS)),
            writes: AtomicUsize::new(0),
            fua_writes: AtomicUsize::new(0),
            corrupt: AtomicBool::new(false),
        }
    }

    fn record(&self, buf: &[u8], offset: u64, fua: bool) -> std::io::Result<()> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        if fua {
            self.fua_writes.fetch_add(1, Ordering::SeqCst);
        }
        if self.corrupt.load(Ordering::SeqCst) {
            let mut bad = buf.to_vec();
            let last = bad.len() - 1;
            bad[last] ^= 0xFF;
            return self.inner.write_at(&bad, offset, fua);
        }
        self.inner.write_at(buf, offset, fua)
    }
}

impl BackingStore for Recorder {
    fn kind(&self) -> &'static str {
        "recorder"
    }
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64, fua: bool) -> std::io::Result<()> {
        self.record(buf, offset, fua)
    }
    fn try_read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.inner.try_read_at(buf, offset)
    }
    fn try_write_at(&self, buf: &[u8], offset: u64, fua: bool) -> std::io::Result<()> {
        self.record(buf, offset, fua)
    }
    fn flush(&self) -> std::io::Result<()> {
        self.inner.flush()
    }
    fn unmap(&self, offset: u64, len: u64) -> std::io::Result<()> {
        self.inner.unmap(offset, len)
    }
}

/// Records the write-cache reports of the LU.
#[derive(Default)]
struct CacheEvents {
    reports: Mutex<Vec<bool>>,
}

impl LuEvents for CacheEvents {
    fn failed(&self, _lu: uuid::Uuid, _error: &std::io::Error) {}
    fn persist_reservations(&self, _lu: uuid::Uuid, _state: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
    fn write_cache_changed(&self, _lu: uuid::Uuid, enabled: bool) {
        self.reports.lock().push(enabled);
    }
}

fn recorder_rig() -> (LunMap, Arc<LogicalUnit>, Arc<Recorder>, Arc<CacheEvents>) {
    let store = Arc::new(Recorder::new());
    let events = Arc::new(CacheEvents::default());
    let lu = Arc::new(LogicalUnit::new(LuConfig {
        id: uuid::Uuid::new_v4(),
        backing: store.clone(),
        block_size: BS,
        state: LuState::Online,
        pr_state: None,
        events: events.clone(),
        write_protected: false,
    }));
    let map = LunMap {
        entries: vec![LunEntry {
            number: 0,
            lu: lu.clone(),
            mask: Mask::Everyone,
        }],
        port_groups: Default::default(),
    };
    (map, lu, store, events)
}

/// The caching page's WCE bit as MODE SENSE(6) reports it.
fn wce(map: &LunMap, n: &ItNexus) -> bool {
    let r = run(map, n, 0, &[0x1A, 0x08, 0x08, 0, 255, 0], &[]);
    r.good();
    // 4-byte header, no block descriptor (DBD), page 08 byte 2 bit 2.
    r.data[4 + 2] & 0x04 != 0
}

fn caching_page(wce: bool) -> Vec<u8> {
    let mut p = vec![0u8; 4 + 20];
    p[4] = 0x08;
    p[5] = 0x12;
    p[6] = u8::from(wce) << 2;
    p
}

/// Both directions of `write_caching_enabled`: the provider's setting is what MODE SENSE
/// reports and is not echoed back; a MODE SELECT that changes WCE is reported once, one that
/// leaves it as it was is not.
#[test]
fn write_cache_is_wce_both_ways() {
    let (map, lu, _store, events) = recorder_rig();
    let n = nexus(1);
    assert!(wce(&map, &n), "write-back cache on by default");
    lu.set_write_cache(false).unwrap();
    assert!(!wce(&map, &n), "the provider turned it off");
    assert!(!lu.write_cache());
    assert!(
        events.reports.lock().is_empty(),
        "no echo of the provider's own change"
    );
    lu.set_write_cache(true).unwrap();
    assert!(wce(&map, &n));

    let off = caching_page(false);
    run(&map, &n, 0, &[0x15, 0x10, 0, 0, off.len() as u8, 0], &off).good();
    assert!(!lu.write_cache());
    assert_eq!(
        *events.reports.lock(),
        vec![false],
        "reported to the provider"
    );
    run(&map, &n, 0, &[0x15, 0x10, 0, 0, off.len() as u8, 0], &off).good();
    assert_eq!(*events.reports.lock(), vec![false], "no change, no report");
    let on = caching_page(true);
    run(&map, &n, 0, &[0x15, 0x10, 0, 0, on.len() as u8, 0], &on).good();
    assert_eq!(*events.reports.lock(), vec![false, true]);
    assert!(wce(&map, &n));
}

/// `write_through_caching_enabled`: a WRITE without FUA reaches the store as FUA, while the
/// write-back cache stays on; without the hint it does not.
#[test]
fn write_through_hint_makes_every_write_fua() {
    let (map, lu, store, _events) = recorder_rig();
    let n = nexus(1);
    let data = vec![0x5Au8; BS as usize];
    run(&map, &n, 0, &write10(3, 1), &data).good();
    assert_eq!(store.fua_writes.load(Ordering::SeqCst), 0, "WCE on, no FUA");
    lu.set_hints(LuHints {
        write_through: true,
        ..LuHints::default()
    });
    run(&map, &n, 0, &write10(3, 1), &data).good();
    assert_eq!(store.writes.load(Ordering::SeqCst), 2);
    assert_eq!(store.fua_writes.load(Ordering::SeqCst), 1, "forced to FUA");
    assert!(wce(&map, &n), "the write-back cache setting is separate");
}

/// `read_back_verify_enabled`: a store that keeps other bytes than it was given makes the
/// WRITE fail with MEDIUM ERROR / WRITE ERROR and the failing LBA in INFORMATION; the LU stays
/// ONLINE. Without the hint the same store's loss goes unnoticed (GOOD). Inline, such a WRITE
/// is handed to the blocking pool before it touches the store.
#[test]
fn read_back_verify_hint_catches_a_store_that_loses_data() {
    let (map, lu, store, _events) = recorder_rig();
    let n = nexus(1);
    store.corrupt.store(true, Ordering::SeqCst);
    let data = vec![0xA5u8; 2 * BS as usize];
    run(&map, &n, 0, &write10(10, 2), &data).good();

    lu.set_hints(LuHints {
        read_back_verify: true,
        ..LuHints::default()
    });
    let before = store.writes.load(Ordering::SeqCst);
    let mut buf = Vec::new();
    let inline = map.dispatch(
        Mode::Inline,
        &n,
        0,
        &ScsiCommand {
            cdb: &write10(10, 2),
            data_out: &data,
            expected_in_len: 0,
            attr: TaskAttr::Simple,
        },
        &mut buf,
    );
    assert!(inline.is_err(), "a verified WRITE does not run inline");
    assert_eq!(
        store.writes.load(Ordering::SeqCst),
        before,
        "and wrote nothing"
    );

    let r = run(&map, &n, 0, &write10(10, 2), &data);
    check(&r, (0x03, 0x0C, 0x00));
    let s = r.sense.as_ref().unwrap();
    assert_eq!(s[0] & 0x80, 0x80, "INFORMATION valid");
    assert_eq!(
        u32::from_be_bytes([s[3], s[4], s[5], s[6]]),
        11,
        "the last block differs"
    );
    assert_eq!(
        store.fua_writes.load(Ordering::SeqCst),
        1,
        "verified writes are durable"
    );
    assert_eq!(lu.state(), LuState::Online);

    store.corrupt.store(false, Ordering::SeqCst);
    run(&map, &n, 0, &write10(10, 2), &data).good();
}

/// The optimal sizes reach VPD B0: the write hint when given, else the read hint, else the
/// defaults (1 MiB, the physical block).
#[test]
fn optimal_transfer_hints_in_block_limits() {
    let (map, lu, _store, _events) = recorder_rig();
    let n = nexus(1);
    let b0 = |map: &LunMap| {
        let r = run(map, &n, 0, &[0x12, 0x01, 0xB0, 0, 255, 0], &[]);
        r.good();
        let d = r.data;
        (
            u16::from_be_bytes([d[6], d[7]]),
            u32::from_be_bytes([d[12], d[13], d[14], d[15]]),
        )
    };
    assert_eq!(b0(&map), (8, 2048), "defaults: 4 KiB granularity, 1 MiB");
    lu.set_hints(LuHints {
        optimal_read_size: 256 * 1024,
        optimal_read_alignment: 64 * 1024,
        ..LuHints::default()
    });
    assert_eq!(b0(&map), (128, 512), "read hints when no write hint");
    lu.set_hints(LuHints {
        optimal_read_size: 256 * 1024,
        optimal_read_alignment: 64 * 1024,
        optimal_write_size: 128 * 1024,
        optimal_write_alignment: 8 * 1024,
        ..LuHints::default()
    });
    assert_eq!(b0(&map), (16, 256), "write hints win");
}

/// VPD 80 is the identity's serial; VPD 83 is the identity's LU designators followed by the
/// port designators of the nexus, encoded; the standard data carries its vendor, product and
/// revision.
#[test]
fn vpd_pages_are_the_identity_encoded() {
    let (map, lu, _store, _events) = recorder_rig();
    let n = nexus(1);
    let ident = lu.identity();
    let r = run(&map, &n, 0, &[0x12, 0x01, 0x80, 0, 255, 0], &[]);
    assert_eq!(&r.good().data[4..], ident.serial.as_bytes());
    let r = run(&map, &n, 0, &[0x12, 0x01, 0x83, 0, 255, 0], &[]);
    let mut want = Vec::new();
    for d in ident.designators.iter().chain(
        crate::identity::port_designators(
            n.relative_target_port,
            n.target_port_group,
            &n.target_port,
        )
        .iter(),
    ) {
        d.encode(&mut want);
    }
    assert_eq!(&r.good().data[4..], &want[..]);
    let r = run(&map, &n, 0, &[0x12, 0, 0, 0, 96, 0], &[]);
    let d = &r.good().data;
    assert_eq!(String::from_utf8_lossy(&d[8..16]).trim(), ident.vendor);
    assert_eq!(String::from_utf8_lossy(&d[16..32]).trim(), ident.product);
    assert_eq!(String::from_utf8_lossy(&d[32..36]).trim(), ident.revision);
}
