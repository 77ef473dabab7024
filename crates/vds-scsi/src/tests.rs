//! Engine tests: annotated CDB byte vectors through a [`LunMap`] of memory LUs, scenarios for
//! statuses, unit attentions, masking, reservations, EXTENDED COPY and COMPARE AND WRITE, and
//! property tests that no CDB makes the engine panic.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use proptest::prelude::*;
use vds_backstore::{BackingStore, FaultFilter, FaultOp, Filtered, MemoryStore};

use crate::*;

#[derive(Default)]
struct Events {
    failed: AtomicUsize,
    persisted: Mutex<Vec<Vec<u8>>>,
    /// Answer every persist with an error, as a full or locked store would.
    refuse: AtomicBool,
}

impl LuEvents for Events {
    fn failed(&self, _lu: uuid::Uuid, _error: &std::io::Error) {
        self.failed.fetch_add(1, Ordering::SeqCst);
    }
    fn persist_reservations(&self, _lu: uuid::Uuid, state: &[u8]) -> std::io::Result<()> {
        if self.refuse.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("store refused"));
        }
        self.persisted.lock().push(state.to_vec());
        Ok(())
    }
}

const BS: u32 = 512;
const BLOCKS: u64 = 2048; // 1 MiB

struct Rig {
    map: LunMap,
    lu: Arc<LogicalUnit>,
    events: Arc<Events>,
    filtered: Arc<Filtered>,
}

fn lu_with(
    backing: Arc<dyn BackingStore>,
    pr_state: Option<Vec<u8>>,
) -> (Arc<LogicalUnit>, Arc<Events>) {
    let events = Arc::new(Events::default());
    let lu = Arc::new(LogicalUnit::new(LuConfig {
        id: uuid::Uuid::new_v4(),
        backing,
        block_size: BS,
        state: LuState::Online,
        pr_state,
        events: events.clone(),
        write_protected: false,
    }));
    (lu, events)
}

fn rig() -> Rig {
    let mem: Arc<dyn BackingStore> = Arc::new(MemoryStore::new(BLOCKS * u64::from(BS)));
    let filtered = Arc::new(Filtered::new(mem, vec![]));
    let (lu, events) = lu_with(filtered.clone(), None);
    let map = LunMap {
        entries: vec![LunEntry {
            number: 0,
            lu: lu.clone(),
            mask: Mask::Everyone,
        }],
        port_groups: Default::default(),
    };
    Rig {
        map,
        lu,
        events,
        filtered,
    }
}

fn nexus(id: u64) -> ItNexus {
    ItNexus {
        id,
        initiator_name: format!("iqn.2026-01.test:init{id}"),
        initiator_port: format!("iqn.2026-01.test:init{id},i,0x23000000000{id}"),
        target_port: "iqn.2026-01.test:target,t,0x0001".into(),
        relative_target_port: 1,
        target_port_group: 1,
    }
}

struct Reply {
    status: ScsiStatus,
    sense: Option<Vec<u8>>,
    data: Vec<u8>,
}

impl Reply {
    /// (key, asc, ascq) from fixed or descriptor sense.
    fn kcq(&self) -> (u8, u8, u8) {
        let s = self.sense.as_ref().expect("sense");
        if s[0] & 0x7F == 0x72 {
            (s[1], s[2], s[3])
        } else {
            (s[2] & 0x0F, s[12], s[13])
        }
    }
    fn good(&self) -> &Self {
        assert_eq!(self.status, ScsiStatus::Good, "sense {:02x?}", self.sense);
        self
    }
}

fn run(map: &LunMap, n: &ItNexus, lun: u64, cdb: &[u8], out: &[u8]) -> Reply {
    let mut data = Vec::new();
    let o = map.execute(
        n,
        lun,
        &ScsiCommand {
            cdb,
            data_out: out,
            expected_in_len: 0,
            attr: TaskAttr::Simple,
        },
        &mut data,
    );
    if o.status == ScsiStatus::Good {
        assert!(o.sense.is_none());
    }
    Reply {
        status: o.status,
        sense: o.sense,
        data,
    }
}

impl Rig {
    fn x(&self, n: &ItNexus, cdb: &[u8], out: &[u8]) -> Reply {
        run(&self.map, n, 0, cdb, out)
    }
}

fn read10(lba: u32, blocks: u16) -> [u8; 10] {
    let l = lba.to_be_bytes();
    let b = blocks.to_be_bytes();
    [0x28, 0, l[0], l[1], l[2], l[3], 0, b[0], b[1], 0]
}

fn write10(lba: u32, blocks: u16) -> [u8; 10] {
    let mut c = read10(lba, blocks);
    c[0] = 0x2A;
    c
}

const TUR: [u8; 6] = [0x00, 0, 0, 0, 0, 0];

fn check(r: &Reply, kcq: (u8, u8, u8)) {
    assert_eq!(r.status, ScsiStatus::CheckCondition);
    assert_eq!(r.kcq(), kcq);
}

#[test]
fn inquiry_standard_data() {
    let r = rig();
    // opcode 0x12 INQUIRY, EVPD 0, page 0, allocation length 255
    let rep = r.x(&nexus(1), &[0x12, 0, 0, 0, 0xFF, 0], &[]);
    rep.good();
    let d = &rep.data;
    assert_eq!(d.len(), 96);
    assert_eq!(d[0], 0x00, "PQ 0, direct access");
    assert_eq!(d[2], 0x06, "SPC-4");
    assert_eq!(d[3] & 0x0F, 2, "response data format");
    assert_eq!(d[4] as usize, d.len() - 5);
    assert_eq!(&d[8..16], b"VDS     ");
    assert_eq!(&d[16..32], b"VDS LUN         ");
    // allocation length 5 truncates
    let rep = r.x(&nexus(1), &[0x12, 0, 0, 0, 5, 0], &[]);
    assert_eq!(rep.good().data.len(), 5);
}

#[test]
fn inquiry_page_code_without_evpd_points_at_byte_2() {
    let r = rig();
    // opcode 0x12 INQUIRY, EVPD 0 but page 0x80: invalid field, CDB byte 2
    let rep = r.x(&nexus(1), &[0x12, 0, 0x80, 0, 0xFF, 0], &[]);
    check(&rep, (5, 0x24, 0));
    let s = rep.sense.unwrap();
    assert_eq!(
        &s[15..18],
        &[0xC8 | 7, 0, 2],
        "SKSV, C/D, BPV, bit 7, byte 2"
    );
    // opcode 0x12 INQUIRY, EVPD 1, page 0xC0 (not supported)
    check(
        &r.x(&nexus(1), &[0x12, 1, 0xC0, 0, 0xFF, 0], &[]),
        (5, 0x24, 0),
    );
}

#[test]
fn vpd_pages() {
    let r = rig();
    let n = nexus(1);
    // opcode 0x12 INQUIRY, EVPD 1, page 0x00 supported pages
    let d = r.x(&n, &[0x12, 1, 0x00, 0, 0xFF, 0], &[]).data;
    assert_eq!(&d[4..], &[0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2]);
    // page 0x80: the serial number is the LUN UUID
    let d = r.x(&n, &[0x12, 1, 0x80, 0, 0xFF, 0], &[]).data;
    assert_eq!(&d[4..], r.lu.id().simple().to_string().as_bytes());
    // page 0x83: NAA-6 first, then T10, relative port, SCSI name string
    let d = r.x(&n, &[0x12, 1, 0x83, 0, 0xFF, 0], &[]).data;
    assert_eq!(u16::from_be_bytes([d[2], d[3]]) as usize, d.len() - 4);
    assert_eq!(&d[4..8], &[0x01, 0x03, 0x00, 16]);
    assert_eq!(&d[8..24], &r.lu.naa());
    assert!(d
        .windows(n.target_port.len())
        .any(|w| w == n.target_port.as_bytes()));
    // page 0xB0 block limits: 0x3C page length, WSNZ clear, max unmap count for a thin LU
    let d = r.x(&n, &[0x12, 1, 0xB0, 0, 0xFF, 0], &[]).data;
    assert_eq!((d[3], d[4] & 1), (0x3C, 0));
    assert!(u32::from_be_bytes([d[20], d[21], d[22], d[23]]) > 0);
    // page 0xB2: LBPU, LBPWS, LBPWS10, LBPRZ; thin
    let d = r.x(&n, &[0x12, 1, 0xB2, 0, 0xFF, 0], &[]).data;
    assert_eq!((d[5], d[6]), (0xE4, 0x02));
}

#[test]
fn read_capacity() {
    let r = rig();
    // opcode 0x25 READ CAPACITY(10)
    let d = r.x(&nexus(1), &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[]).data;
    assert_eq!(d, [0, 0, 0x07, 0xFF, 0, 0, 0x02, 0x00]);
    // opcode 0x9E SA 0x10 READ CAPACITY(16), allocation length 32
    let d = r
        .x(
            &nexus(1),
            &[0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0],
            &[],
        )
        .data;
    assert_eq!(d.len(), 32);
    assert_eq!(&d[0..8], &(BLOCKS - 1).to_be_bytes());
    assert_eq!(d[13], 3, "8 logical blocks per 4 KiB physical block");
    assert_eq!(d[14] & 0xC0, 0xC0, "LBPME, LBPRZ");
}

#[test]
fn write_then_read_round_trip() {
    let r = rig();
    let n = nexus(1);
    let data: Vec<u8> = (0..1024).map(|i| i as u8).collect();
    // opcode 0x2A WRITE(10), LBA 0x10, 2 blocks
    r.x(&n, &write10(0x10, 2), &data).good();
    // opcode 0x28 READ(10), LBA 0x10, 2 blocks
    assert_eq!(r.x(&n, &read10(0x10, 2), &[]).good().data, data);
    // opcode 0x08 READ(6), LBA 0x10, 1 block
    assert_eq!(
        r.x(&n, &[0x08, 0, 0, 0x10, 1, 0], &[]).good().data,
        data[..512]
    );
    // opcode 0x88 READ(16) LBA 0x11 1 block, FUA
    let mut c = [0u8; 16];
    c[0] = 0x88;
    c[1] = 0x08;
    c[9] = 0x11;
    c[13] = 1;
    assert_eq!(r.x(&n, &c, &[]).good().data, data[512..]);
}

#[test]
fn short_data_out_writes_what_was_sent() {
    let r = rig();
    let n = nexus(1);
    r.x(&n, &write10(0, 2), &[b'a'; 1024]).good();
    // WRITE(10) of 2 blocks with only one block of Data-Out (EDTL < TL)
    r.x(&n, &write10(0, 2), &[b'b'; 512]).good();
    let d = r.x(&n, &read10(0, 2), &[]).data;
    assert!(d[..512].iter().all(|&b| b == b'b'));
    assert!(d[512..].iter().all(|&b| b == b'a'));
}

#[test]
fn lba_out_of_range_and_zero_blocks() {
    let r = rig();
    let n = nexus(1);
    // READ(10) at the last LBA, 2 blocks: one beyond the end
    check(&r.x(&n, &read10(BLOCKS as u32 - 1, 2), &[]), (5, 0x21, 0));
    // READ(10) 0 blocks at LBA 0: fine; 0 blocks one past the end: out of range
    r.x(&n, &read10(0, 0), &[]).good();
    r.x(&n, &read10(BLOCKS as u32, 0), &[]).good();
    check(&r.x(&n, &read10(BLOCKS as u32 + 1, 0), &[]), (5, 0x21, 0));
    // READ(16) at LBA 2^64-1: the sum overflows, still out of range
    let mut c = [0xFFu8; 16];
    c[0] = 0x88;
    c[1] = 0;
    c[10..14].copy_from_slice(&1u32.to_be_bytes());
    c[14] = 0;
    c[15] = 0;
    check(&r.x(&n, &c, &[]), (5, 0x21, 0));
}

#[test]
fn protection_bits_are_rejected_with_field_pointer() {
    let r = rig();
    // opcode 0x28 READ(10) with RDPROTECT=001b (byte 1 bit 5)
    let mut c = read10(0, 1);
    c[1] = 0x20;
    let rep = r.x(&nexus(1), &c, &[]);
    check(&rep, (5, 0x24, 0));
    assert_eq!(&rep.sense.unwrap()[15..18], &[0xC8 | 5, 0, 1]);
}

#[test]
fn unknown_opcode_and_service_action() {
    let r = rig();
    // opcode 0xC0 (vendor specific): invalid command operation code
    check(&r.x(&nexus(1), &[0xC0, 0, 0, 0, 0, 0], &[]), (5, 0x20, 0));
    // opcode 0x48 SANITIZE: not implemented
    check(
        &r.x(&nexus(1), &[0x48, 1, 0, 0, 0, 0, 0, 0, 0, 0], &[]),
        (5, 0x20, 0),
    );
    // opcode 0x9E SA 0x1F: invalid field pointing at the service action
    let mut c = [0u8; 16];
    c[0] = 0x9E;
    c[1] = 0x1F;
    check(&r.x(&nexus(1), &c, &[]), (5, 0x24, 0));
    // empty and truncated CDBs
    check(&r.x(&nexus(1), &[], &[]), (5, 0x20, 0));
    check(&r.x(&nexus(1), &[0x28, 0, 0], &[]), (5, 0x24, 0));
}

#[test]
fn sense_per_state_and_always_executed_commands() {
    let r = rig();
    let n = nexus(1);
    r.x(&n, &TUR, &[]).good();
    for (state, ascq) in [
        (LuState::NotReady, 0x01),
        (LuState::Offline, 0x12),
        (LuState::Failed, 0x03),
    ] {
        r.lu.set_state(LuState::Online).unwrap();
        r.x(&n, &TUR, &[]); // may report the 28/00 unit attention
        r.x(&n, &TUR, &[]).good();
        r.lu.set_state(state).unwrap();
        assert_eq!(r.lu.state(), state);
        check(&r.x(&n, &TUR, &[]), (2, 0x04, ascq));
        check(&r.x(&n, &read10(0, 1), &[]), (2, 0x04, ascq));
        r.x(&n, &[0x12, 0, 0, 0, 36, 0], &[]).good();
        let rl = r.x(&n, &[0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0], &[]);
        assert_eq!(&rl.good().data[8..16], &encode_lun(0));
        // REQUEST SENSE returns the not-ready condition as data, status GOOD
        let rs = r.x(&n, &[0x03, 0, 0, 0, 18, 0], &[]);
        assert_eq!((rs.good().data[2], rs.data[12], rs.data[13]), (2, 4, ascq));
    }
}

#[test]
fn back_online_raises_unit_attention_once_per_known_nexus() {
    let r = rig();
    let (a, b) = (nexus(1), nexus(2));
    r.x(&a, &TUR, &[]).good();
    r.x(&b, &TUR, &[]).good();
    r.lu.set_state(LuState::Offline).unwrap();
    r.lu.set_state(LuState::Online).unwrap();
    for n in [&a, &b] {
        check(&r.x(n, &read10(0, 1), &[]), (6, 0x28, 0));
        r.x(n, &read10(0, 1), &[]).good();
    }
    // A nexus first seen afterwards gets none.
    r.x(&nexus(3), &TUR, &[]).good();
    // INQUIRY does not consume a unit attention.
    r.lu.capacity_changed();
    r.x(&a, &[0x12, 0, 0, 0, 36, 0], &[]).good();
    check(&r.x(&a, &TUR, &[]), (6, 0x2A, 0x09));
    r.x(&a, &TUR, &[]).good();
    // REQUEST SENSE reports and clears it.
    r.lu.luns_changed();
    let rs = r.x(&a, &[0x03, 0, 0, 0, 18, 0], &[]);
    assert_eq!((rs.data[2], rs.data[12], rs.data[13]), (6, 0x3F, 0x0E));
    r.x(&a, &TUR, &[]).good();
}

#[test]
fn offline_waits_for_commands_in_flight_then_flushes() {
    let r = rig();
    r.filtered.set_filters(vec![FaultFilter::Delay {
        read_ms: 0,
        write_ms: 300,
        flush_ms: 0,
    }]);
    let map = r.map.clone();
    let t = std::thread::spawn(move || run(&map, &nexus(1), 0, &write10(0, 1), &[7; 512]).status);
    std::thread::sleep(std::time::Duration::from_millis(50));
    let start = std::time::Instant::now();
    r.lu.set_state(LuState::Offline).unwrap();
    assert!(
        start.elapsed() >= std::time::Duration::from_millis(150),
        "drained"
    );
    assert_eq!(
        t.join().unwrap(),
        ScsiStatus::Good,
        "the write in flight completed"
    );
    check(&r.x(&nexus(1), &read10(0, 1), &[]), (2, 4, 0x12));
}

/// `Mode::Inline`: only the table's inline commands run, a store that would wait is answered
/// `WouldBlock` with no effect on the LU, and the dispatch carries the CDB's transfer length.
#[test]
fn inline_dispatch_refuses_what_would_wait_and_changes_nothing() {
    let r = rig();
    let n = nexus(1);
    let dispatch = |mode: Mode, lun: u64, cdb: &[u8], out: &[u8]| {
        let mut data = Vec::new();
        let cmd = ScsiCommand {
            cdb,
            data_out: out,
            expected_in_len: 0,
            attr: TaskAttr::Simple,
        };
        r.map
            .dispatch(mode, &n, lun, &cmd, &mut data)
            .map(|e| (e, data))
    };
    r.x(&n, &TUR, &[]).good();
    // Not marked inline: refused before anything happens.
    for cdb in [
        &TUR[..],
        &[0x12, 0, 0, 0, 36, 0],
        &[0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0],
        &[],
    ] {
        assert_eq!(
            dispatch(Mode::Inline, 0, cdb, &[]),
            Err(WouldBlock),
            "{cdb:02x?}"
        );
    }
    // An inline write the store takes at once: the residual comes with the outcome.
    let (done, _) = dispatch(Mode::Inline, 0, &write10(0, 1), &[9; 512]).unwrap();
    assert_eq!(done.outcome, ScsiOutcome::GOOD);
    assert_eq!(done.data_out_len, Some(512));
    assert_eq!(
        (done.write_residual(1024), done.write_residual(0)),
        (512, -512)
    );
    // A unit attention waits; commands that are not inline do not consume it.
    r.lu.capacity_changed();
    assert_eq!(dispatch(Mode::Inline, 0, &TUR, &[]), Err(WouldBlock));
    // Any filter makes the store refuse: the read is refused, the LU stays as it is.
    r.filtered.set_filters(vec![FaultFilter::Delay {
        read_ms: 0,
        write_ms: 0,
        flush_ms: 0,
    }]);
    check(&r.x(&n, &TUR, &[]), (6, 0x2A, 0x09));
    assert_eq!(
        dispatch(Mode::Inline, 0, &read10(0, 1), &[]),
        Err(WouldBlock)
    );
    assert_eq!(
        dispatch(Mode::Inline, 0, &write10(0, 1), &[1; 512]),
        Err(WouldBlock)
    );
    assert_eq!(r.lu.state(), LuState::Online);
    assert_eq!(r.events.failed.load(Ordering::SeqCst), 0);
    // The same commands in blocking mode run.
    let (done, data) = dispatch(Mode::Blocking, 0, &read10(0, 1), &[]).unwrap();
    assert_eq!((done.outcome, data), (ScsiOutcome::GOOD, vec![9; 512]));
    // A missing LUN has nothing to wait for: an inline READ is answered there (05/25/00).
    let (done, _) = dispatch(Mode::Inline, 5, &read10(0, 1), &[]).unwrap();
    assert_eq!(done.outcome.status, ScsiStatus::CheckCondition);
    assert_eq!(done.data_out_len, None);
    assert_eq!(dispatch(Mode::Inline, 5, &TUR, &[]), Err(WouldBlock));
}

#[test]
fn io_error_is_a_medium_error_and_fails_the_lu_once() {
    let r = rig();
    let n = nexus(1);
    r.filtered.set_filters(vec![FaultFilter::Error {
        ops: vec![FaultOp::Read, FaultOp::Write],
        after: 0,
    }]);
    check(&r.x(&n, &read10(0, 1), &[]), (3, 0x11, 0));
    assert_eq!(r.lu.state(), LuState::Failed);
    check(&r.x(&n, &read10(0, 1), &[]), (2, 0x04, 0x03));
    assert_eq!(r.events.failed.load(Ordering::SeqCst), 1);
    // The way out: the store answers again, Refresh moves FAILED to OFFLINE.
    assert!(
        r.lu.set_state(LuState::Offline).is_err(),
        "probe still fails"
    );
    r.filtered.set_filters(vec![]);
    r.lu.set_state(LuState::Offline).unwrap();
    r.lu.set_state(LuState::Online).unwrap();
    r.x(&n, &TUR, &[]);
    r.x(&n, &read10(0, 1), &[]).good();
    // A write error is 03/0C/00.
    r.filtered.set_filters(vec![FaultFilter::Error {
        ops: vec![FaultOp::Write],
        after: 0,
    }]);
    check(&r.x(&n, &write10(0, 1), &[0; 512]), (3, 0x0C, 0));
    assert_eq!(r.events.failed.load(Ordering::SeqCst), 2);
}

/// A memory store whose I/O is refused as a fenced RBD client's is, while `fenced` is set.
struct FencedStore {
    fenced: AtomicBool,
    mem: MemoryStore,
}

impl FencedStore {
    fn gate(&self) -> std::io::Result<()> {
        if self.fenced.load(Ordering::SeqCst) {
            return Err(vds_backstore::fence::fenced("writing rbd/lun"));
        }
        Ok(())
    }
}

impl BackingStore for FencedStore {
    fn kind(&self) -> &'static str {
        "fenced"
    }
    fn size(&self) -> u64 {
        self.mem.size()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.gate()?;
        self.mem.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64, fua: bool) -> std::io::Result<()> {
        self.gate()?;
        self.mem.write_at(buf, offset, fua)
    }
    fn try_read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.read_at(buf, offset)
    }
    fn try_write_at(&self, buf: &[u8], offset: u64, fua: bool) -> std::io::Result<()> {
        self.write_at(buf, offset, fua)
    }
    fn flush(&self) -> std::io::Result<()> {
        self.gate()?;
        self.mem.flush()
    }
    fn unmap(&self, offset: u64, len: u64) -> std::io::Result<()> {
        self.gate()?;
        self.mem.unmap(offset, len)
    }
}

/// A fenced store's refusal is NOT READY, ASYMMETRIC ACCESS STATE TRANSITION (04/0A): never
/// GOOD, never a medium error, and the LU is not marked FAILED (no event, state kept), so the
/// host retries through another path and the LUN is not recorded failed anywhere.
#[test]
fn a_fenced_store_answers_04_0a_and_never_fails_the_lu() {
    let store = Arc::new(FencedStore {
        fenced: AtomicBool::new(false),
        mem: MemoryStore::new(BLOCKS * u64::from(BS)),
    });
    let (lu, events) = lu_with(store.clone(), None);
    let map = LunMap {
        entries: vec![LunEntry {
            number: 0,
            lu: lu.clone(),
            mask: Mask::Everyone,
        }],
        port_groups: Default::default(),
    };
    let n = nexus(1);
    run(&map, &n, 0, &TUR, &[]);
    run(&map, &n, 0, &write10(0, 1), &[7; 512]).good();
    store.fenced.store(true, Ordering::SeqCst);
    for _ in 0..2 {
        check(
            &run(&map, &n, 0, &write10(0, 1), &[8; 512]),
            (2, 0x04, 0x0A),
        );
        check(&run(&map, &n, 0, &read10(0, 1), &[]), (2, 0x04, 0x0A));
        // SYNCHRONIZE CACHE(10).
        check(
            &run(&map, &n, 0, &[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[]),
            (2, 0x04, 0x0A),
        );
    }
    assert!(lu.flush().is_err());
    assert_eq!(lu.state(), LuState::Online);
    assert_eq!(events.failed.load(Ordering::SeqCst), 0);
    // Unfenced, the same LU serves again: it was never FAILED.
    store.fenced.store(false, Ordering::SeqCst);
    run(&map, &n, 0, &read10(0, 1), &[]).good();
}

#[test]
fn masking_report_luns_and_missing_luns() {
    let a = rig();
    let b = rig();
    let map = LunMap {
        entries: vec![
            LunEntry {
                number: 3,
                lu: a.lu.clone(),
                mask: Mask::Only(vec!["IQN.2026-01.TEST:INIT1".into()]),
            },
            LunEntry {
                number: 300,
                lu: b.lu.clone(),
                mask: Mask::Everyone,
            },
        ],
        port_groups: Default::default(),
    };
    let (one, two) = (nexus(1), nexus(2));
    // opcode 0xA0 REPORT LUNS to LUN 0 (not configured), select 0, allocation length 64
    let rl = [0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0];
    let d = run(&map, &one, 0, &rl, &[]).good().data.clone();
    assert_eq!(&d[0..4], &16u32.to_be_bytes());
    assert_eq!(&d[8..16], &encode_lun(3));
    assert_eq!(
        &d[16..24],
        &[0x41, 0x2C, 0, 0, 0, 0, 0, 0],
        "LUN 300, flat space"
    );
    let d = run(&map, &two, 300, &rl, &[]).good().data.clone();
    assert_eq!(&d[0..4], &8u32.to_be_bytes(), "LUN 3 is masked from init2");
    // select report 1: well-known LUs only (none); 0x10: invalid
    let mut c = rl;
    c[2] = 1;
    assert_eq!(
        &run(&map, &one, 0, &c, &[]).good().data[0..4],
        &[0, 0, 0, 0]
    );
    c[2] = 0x10;
    check(&run(&map, &one, 0, &c, &[]), (5, 0x24, 0));
    // allocation length below 16
    let mut c = rl;
    c[9] = 8;
    check(&run(&map, &one, 0, &c, &[]), (5, 0x24, 0));
    // A masked LUN is invisible: 05/25/00, INQUIRY has PQ 011b PDT 1Fh
    check(&run(&map, &two, 3, &TUR, &[]), (5, 0x25, 0));
    let inq = run(&map, &two, 3, &[0x12, 0, 0, 0, 36, 0], &[]);
    assert_eq!(inq.good().data[0], 0x7F);
    let rs = run(&map, &two, 7, &[0x03, 0, 0, 0, 18, 0], &[]);
    assert_eq!((rs.good().data[2], rs.data[12]), (5, 0x25));
    run(&map, &one, 3, &TUR, &[]).good();
}

#[test]
fn lun_encoding_round_trips() {
    for n in [0u64, 1, 255, 256, 16383, 16384, (1 << 24) - 1] {
        assert_eq!(decode_lun(encode_lun(n)), n);
    }
    assert_eq!(encode_lun(5), [0, 5, 0, 0, 0, 0, 0, 0]);
    // A second-level LUN is not one of ours.
    assert_ne!(decode_lun([0, 5, 0, 1, 0, 0, 0, 0]), 5);
    // LUN 256 and above as Linux and libiscsi write them: peripheral addressing, bus = high byte.
    assert_eq!(decode_lun([0x01, 0x00, 0, 0, 0, 0, 0, 0]), 256);
    assert_eq!(decode_lun([0x03, 0xE7, 0, 0, 0, 0, 0, 0]), 999);
    // ... and the same numbers in flat addressing, as REPORT LUNS lists them.
    assert_eq!(decode_lun([0x41, 0x00, 0, 0, 0, 0, 0, 0]), 256);
    assert_eq!(decode_lun([0x43, 0xE7, 0, 0, 0, 0, 0, 0]), 999);
}

#[test]
fn compare_and_write_and_miscompare_offset() {
    let r = rig();
    let n = nexus(1);
    r.x(&n, &write10(4, 1), &[b'A'; 512]).good();
    // opcode 0x89 COMPARE AND WRITE, LBA 4, 1 block
    let mut caw = [0u8; 16];
    caw[0] = 0x89;
    caw[9] = 4;
    caw[13] = 1;
    let mut out = vec![b'A'; 512];
    out.extend_from_slice(&[b'B'; 512]);
    r.x(&n, &caw, &out).good();
    assert_eq!(r.x(&n, &read10(4, 1), &[]).data, vec![b'B'; 512]);
    // Compare data differs at byte 100: MISCOMPARE with INFORMATION = 100, nothing written.
    let mut out = vec![b'B'; 512];
    out[100] = b'X';
    out.extend_from_slice(&[b'C'; 512]);
    let rep = r.x(&n, &caw, &out);
    check(&rep, (0x0E, 0x1D, 0));
    let s = rep.sense.unwrap();
    assert_eq!((s[0] & 0x80, &s[3..7]), (0x80, &[0u8, 0, 0, 100][..]));
    assert_eq!(r.x(&n, &read10(4, 1), &[]).data, vec![b'B'; 512]);
    // Data-Out of the wrong size
    check(&r.x(&n, &caw, &[0; 512]), (5, 0x24, 0));
}

#[test]
fn verify_bytchk_and_orwrite() {
    let r = rig();
    let n = nexus(1);
    r.x(&n, &write10(0, 1), &[0x0F; 512]).good();
    // opcode 0x2F VERIFY(10), BYTCHK=01b, LBA 0, 1 block
    let v = [0x2F, 0x02, 0, 0, 0, 0, 0, 0, 1, 0];
    r.x(&n, &v, &[0x0F; 512]).good();
    let mut bad = [0x0F; 512];
    bad[7] = 0;
    let rep = r.x(&n, &v, &bad);
    check(&rep, (0x0E, 0x1D, 0));
    assert_eq!(&rep.sense.unwrap()[3..7], &[0, 0, 0, 7]);
    // BYTCHK=0: no comparison
    r.x(&n, &[0x2F, 0, 0, 0, 0, 0, 0, 0, 1, 0], &[]).good();
    // opcode 0x8B ORWRITE(16), LBA 0, 1 block
    let mut c = [0u8; 16];
    c[0] = 0x8B;
    c[13] = 1;
    r.x(&n, &c, &[0xF0; 512]).good();
    assert_eq!(r.x(&n, &read10(0, 1), &[]).data, vec![0xFF; 512]);
}

#[test]
fn unmap_write_same_and_lba_status() {
    let r = rig();
    let n = nexus(1);
    let mut w = write10(0, 64);
    w[0] = 0x2A;
    r.x(&n, &w, &[1; 64 * 512]).good();
    // opcode 0x9E SA 0x12 GET LBA STATUS at LBA 0, allocation length 64
    let gls = |lba: u64| {
        let mut c = [0u8; 16];
        c[0] = 0x9E;
        c[1] = 0x12;
        c[2..10].copy_from_slice(&lba.to_be_bytes());
        c[13] = 64;
        c
    };
    let d = r.x(&n, &gls(0), &[]).good().data.clone();
    assert_eq!(&d[8..16], &0u64.to_be_bytes());
    assert_eq!(
        (&d[16..20], d[20]),
        (&64u32.to_be_bytes()[..], 0),
        "64 mapped"
    );
    assert_eq!(d[36], 1, "then deallocated");
    // opcode 0x42 UNMAP, parameter list: one descriptor LBA 8, 8 blocks
    let mut p = vec![0, 22, 0, 16, 0, 0, 0, 0];
    p.extend_from_slice(&8u64.to_be_bytes());
    p.extend_from_slice(&8u32.to_be_bytes());
    p.extend_from_slice(&[0; 4]);
    r.x(&n, &[0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], &p).good();
    let d = r.x(&n, &gls(8), &[]).good().data.clone();
    assert_eq!(
        (&d[8..16], &d[16..20], d[20]),
        (&8u64.to_be_bytes()[..], &8u32.to_be_bytes()[..], 1)
    );
    assert!(r.x(&n, &read10(8, 8), &[]).data.iter().all(|&b| b == 0));
    // UNMAP descriptor beyond the end
    let mut p2 = p.clone();
    p2[8..16].copy_from_slice(&(BLOCKS - 1).to_be_bytes());
    check(
        &r.x(&n, &[0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], &p2),
        (5, 0x21, 0),
    );
    // UNMAP parameter list length 4: length error
    check(
        &r.x(&n, &[0x42, 0, 0, 0, 0, 0, 0, 0, 4, 0], &p[..4]),
        (5, 0x1A, 0),
    );
    // opcode 0x93 WRITE SAME(16) UNMAP, LBA 32, 16 blocks of zeroes: deallocated
    let mut ws = [0u8; 16];
    ws[0] = 0x93;
    ws[1] = 0x08;
    ws[9] = 32;
    ws[13] = 16;
    r.x(&n, &ws, &[0; 512]).good();
    assert_eq!(r.x(&n, &gls(32), &[]).data[20], 1);
    // opcode 0x41 WRITE SAME(10), LBA 100, 3 blocks of a pattern
    r.x(&n, &[0x41, 0, 0, 0, 0, 100, 0, 0, 3, 0], &[9; 512])
        .good();
    assert_eq!(r.x(&n, &read10(100, 3), &[]).data, vec![9; 1536]);
    // zero blocks: to the end of the LU (WSNZ 0)
    let last = (BLOCKS as u32 - 4).to_be_bytes();
    r.x(
        &n,
        &[0x41, 0, last[0], last[1], last[2], last[3], 0, 0, 0, 0],
        &[7; 512],
    )
    .good();
    assert_eq!(
        r.x(&n, &read10(BLOCKS as u32 - 4, 4), &[]).data,
        vec![7; 2048]
    );
    // a wrong Data-Out size
    check(
        &r.x(&n, &[0x41, 0, 0, 0, 0, 100, 0, 0, 1, 0], &[9; 1024]),
        (5, 0x24, 0),
    );
    // GET LBA STATUS at the capacity: out of range
    check(&r.x(&n, &gls(BLOCKS), &[]), (5, 0x21, 0));
}

#[test]
fn mode_sense_select_d_sense_and_swp() {
    let r = rig();
    let n = nexus(1);
    // opcode 0x1A MODE SENSE(6), page 0x3F all pages, allocation length 255
    let d = r
        .x(&n, &[0x1A, 0, 0x3F, 0, 0xFF, 0], &[])
        .good()
        .data
        .clone();
    assert_eq!(d[0] as usize, d.len() - 1);
    assert_eq!(d[3], 8, "one short block descriptor");
    assert_eq!(d[2] & 0x10, 0x10, "DPOFUA");
    let pages: Vec<u8> = {
        let mut v = vec![];
        let mut i = 12;
        while i < d.len() {
            v.push(d[i]);
            i += d[i + 1] as usize + 2;
        }
        v
    };
    assert_eq!(pages, [0x08, 0x0A, 0x1C]);
    // MODE SENSE(6) control page, saved values: not supported
    check(&r.x(&n, &[0x1A, 0, 0xCA, 0, 0xFF, 0], &[]), (5, 0x39, 0));
    // MODE SENSE(10) with DBD, caching page
    let d = r
        .x(&n, &[0x5A, 0x08, 0x08, 0, 0, 0, 0, 0, 0xFF, 0], &[])
        .good()
        .data
        .clone();
    assert_eq!((d[8], d[10] & 0x04), (0x08, 0x04), "WCE on");
    // MODE SELECT(6), PF: control page with D_SENSE set
    let mut p = vec![
        0, 0, 0, 0, 0x0A, 0x0A, 0x04, 0x10, 0, 0x40, 0, 0, 0xFF, 0xFF, 0, 0,
    ];
    r.x(&n, &[0x15, 0x10, 0, 0, p.len() as u8, 0], &p).good();
    let rep = r.x(&n, &read10(BLOCKS as u32, 1), &[]);
    assert_eq!(rep.sense.as_ref().unwrap()[0], 0x72, "descriptor format");
    assert_eq!(rep.kcq(), (5, 0x21, 0));
    // Changing a non-changeable field (QAM) is refused and changes nothing.
    p[6] = 0;
    p[7] = 0x00;
    check(
        &r.x(&n, &[0x15, 0x10, 0, 0, p.len() as u8, 0], &p),
        (5, 0x26, 0),
    );
    assert!(r.lu.descriptor_sense());
    // SWP on: writes are refused, reads work; then off.
    let swp = |on: u8| {
        vec![
            0,
            0,
            0,
            0,
            0x0A,
            0x0A,
            0x00,
            0x10,
            on << 3,
            0x40,
            0,
            0,
            0xFF,
            0xFF,
            0,
            0,
        ]
    };
    r.x(&n, &[0x15, 0x10, 0, 0, 16, 0], &swp(1)).good();
    assert_eq!(
        r.x(&n, &[0x1A, 0, 0x0A, 0, 0xFF, 0], &[]).data[2] & 0x80,
        0x80,
        "WP"
    );
    check(&r.x(&n, &write10(0, 1), &[0; 512]), (7, 0x27, 0x02));
    r.x(&n, &read10(0, 1), &[]).good();
    r.x(&n, &[0x15, 0x10, 0, 0, 16, 0], &swp(0)).good();
    r.x(&n, &write10(0, 1), &[0; 512]).good();
}

#[test]
fn report_supported_opcodes_matches_acceptance() {
    let r = rig();
    let n = nexus(1);
    // opcode 0xA3 SA 0x0C, all commands, RCTD
    let d = r
        .x(&n, &[0xA3, 0x0C, 0x80, 0, 0, 0, 0, 0, 0x10, 0, 0, 0], &[])
        .good()
        .data
        .clone();
    let len = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize;
    assert_eq!(len, d.len() - 4);
    let mut i = 4;
    let mut seen = 0;
    while i < d.len() {
        assert_eq!(d[i + 5] & 0x02, 0x02, "CTDP");
        assert_eq!(
            &d[i + 8..i + 10],
            &[0x00, 0x0A],
            "timeouts descriptor length"
        );
        i += 20;
        seen += 1;
    }
    assert!(seen > 40);
    // One command: READ(10) reports DPO/FUA in its usage data.
    let d = r
        .x(&n, &[0xA3, 0x0C, 0x01, 0x28, 0, 0, 0, 0, 1, 0, 0, 0], &[])
        .good()
        .data
        .clone();
    assert_eq!((d[1] & 0x07, &d[2..4]), (3, &[0u8, 10][..]));
    assert_eq!((d[4], d[5]), (0x28, 0x18));
    // Not supported opcode: SUPPORT 001b
    let d = r
        .x(&n, &[0xA3, 0x0C, 0x01, 0xC0, 0, 0, 0, 0, 1, 0, 0, 0], &[])
        .data;
    assert_eq!(d[1] & 7, 1);
    // Asking for READ CAPACITY(16) without a service action is an error
    check(
        &r.x(&n, &[0xA3, 0x0C, 0x01, 0x9E, 0, 0, 0, 0, 1, 0, 0, 0], &[]),
        (5, 0x24, 0),
    );
    let d = r
        .x(
            &n,
            &[0xA3, 0x0C, 0x02, 0x9E, 0, 0x10, 0, 0, 1, 0, 0, 0],
            &[],
        )
        .good()
        .data
        .clone();
    assert_eq!((d[1] & 7, d[4], d[5]), (3, 0x9E, 0x1F));
}

fn prout(sa: u8, rtype: u8, key: u64, sakey: u64, aptpl: bool) -> ([u8; 10], Vec<u8>) {
    let cdb = [0x5F, sa, rtype, 0, 0, 0, 0, 0, 24, 0];
    let mut p = vec![0u8; 24];
    p[0..8].copy_from_slice(&key.to_be_bytes());
    p[8..16].copy_from_slice(&sakey.to_be_bytes());
    p[20] = u8::from(aptpl);
    (cdb, p)
}

fn pr(r: &Rig, n: &ItNexus, sa: u8, rtype: u8, key: u64, sakey: u64) -> Reply {
    let (c, p) = prout(sa, rtype, key, sakey, false);
    r.x(n, &c, &p)
}

fn read_keys(r: &Rig, n: &ItNexus) -> (u32, Vec<u64>) {
    let d = r
        .x(n, &[0x5E, 0, 0, 0, 0, 0, 0, 0x10, 0, 0], &[])
        .good()
        .data
        .clone();
    let gen = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
    let keys = d[8..]
        .chunks(8)
        .map(|c| u64::from_be_bytes(c.try_into().unwrap()))
        .collect();
    (gen, keys)
}

#[test]
fn persistent_reservation_write_exclusive() {
    let r = rig();
    let (a, b) = (nexus(1), nexus(2));
    pr(&r, &a, 0, 0, 0, 0xA).good();
    pr(&r, &b, 0, 0, 0, 0xB).good();
    assert_eq!(read_keys(&r, &a), (2, vec![0xA, 0xB]));
    // Registering again with a wrong key conflicts.
    assert_eq!(
        pr(&r, &b, 0, 0, 0x99, 0xC).status,
        ScsiStatus::ReservationConflict
    );
    // A RESERVE type 1 (write exclusive)
    pr(&r, &a, 1, 1, 0xA, 0).good();
    let d = r
        .x(&b, &[0x5E, 1, 0, 0, 0, 0, 0, 0x10, 0, 0], &[])
        .good()
        .data
        .clone();
    assert_eq!((&d[8..16], d[21]), (&0xAu64.to_be_bytes()[..], 1));
    // B may read, not write; A may write.
    r.x(&b, &read10(0, 1), &[]).good();
    assert_eq!(
        r.x(&b, &write10(0, 1), &[0; 512]).status,
        ScsiStatus::ReservationConflict
    );
    r.x(&a, &write10(0, 1), &[0; 512]).good();
    // B cannot reserve; RELEASE by the non-holder is a no-op.
    assert_eq!(
        pr(&r, &b, 1, 1, 0xB, 0).status,
        ScsiStatus::ReservationConflict
    );
    pr(&r, &b, 2, 1, 0xB, 0).good();
    // Release with the wrong type.
    check(&pr(&r, &a, 2, 3, 0xA, 0), (5, 0x26, 0x04));
    pr(&r, &a, 2, 1, 0xA, 0).good();
    r.x(&b, &write10(0, 1), &[0; 512]).good();
}

#[test]
fn persistent_reservation_types_access() {
    // (type, registered non-holder may read, may write, unregistered may read, may write)
    let table = [
        (1u8, true, false, true, false),
        (3, false, false, false, false),
        (5, true, true, true, false),
        (6, true, true, false, false),
        (7, true, true, true, false),
        (8, true, true, false, false),
    ];
    for (t, rr, rw, ur, uw) in table {
        let r = rig();
        let (a, b, c) = (nexus(1), nexus(2), nexus(3));
        pr(&r, &a, 0, 0, 0, 1).good();
        pr(&r, &b, 0, 0, 0, 2).good();
        pr(&r, &a, 1, t, 1, 0).good();
        let ok = |n: &ItNexus, w: bool| {
            let rep = if w {
                r.x(n, &write10(0, 1), &[0; 512])
            } else {
                r.x(n, &read10(0, 1), &[])
            };
            rep.status == ScsiStatus::Good
        };
        assert!(ok(&a, false) && ok(&a, true), "type {t}: holder");
        assert_eq!(
            (ok(&b, false), ok(&b, true)),
            (rr, rw),
            "type {t}: registrant"
        );
        assert_eq!((ok(&c, false), ok(&c, true)), (ur, uw), "type {t}: other");
        // INQUIRY, TUR, READ CAPACITY and PR IN are always allowed.
        r.x(&c, &TUR, &[]).good();
        r.x(&c, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[]).good();
    }
}

#[test]
fn preempt_clear_and_unit_attentions() {
    let r = rig();
    let (a, b) = (nexus(1), nexus(2));
    pr(&r, &a, 0, 0, 0, 1).good();
    pr(&r, &b, 0, 0, 0, 2).good();
    pr(&r, &a, 1, 3, 1, 0).good();
    // B preempts A's reservation (key 1), taking it as write exclusive.
    pr(&r, &b, 4, 1, 2, 1).good();
    assert_eq!(read_keys(&r, &b).1, vec![2]);
    check(&r.x(&a, &TUR, &[]), (6, 0x2A, 0x05));
    assert_eq!(
        r.x(&a, &write10(0, 1), &[0; 512]).status,
        ScsiStatus::ReservationConflict
    );
    // Preempting a key nobody holds conflicts.
    assert_eq!(
        pr(&r, &b, 4, 1, 2, 77).status,
        ScsiStatus::ReservationConflict
    );
    // A registers again, B clears everything: A gets RESERVATIONS PREEMPTED.
    pr(&r, &a, 0, 0, 0, 1).good();
    let gen = read_keys(&r, &a).0;
    pr(&r, &b, 3, 0, 2, 0).good();
    assert_eq!(read_keys(&r, &b), (gen + 1, vec![]));
    check(&r.x(&a, &TUR, &[]), (6, 0x2A, 0x03));
    r.x(&a, &write10(0, 1), &[0; 512]).good();
}

#[test]
fn aptpl_state_is_persisted_and_restored() {
    let r = rig();
    let a = nexus(1);
    let (c, p) = prout(0, 0, 0, 0xAB, true);
    r.x(&a, &c, &p).good();
    pr(&r, &a, 1, 1, 0xAB, 0).good();
    let blob = r.events.persisted.lock().last().cloned().unwrap();
    // A new LU (daemon restart) from the blob has the registration and reservation.
    let (lu2, _) = lu_with(Arc::new(MemoryStore::new(1 << 20)), Some(blob));
    let map = LunMap {
        entries: vec![LunEntry {
            number: 0,
            lu: lu2,
            mask: Mask::Everyone,
        }],
        port_groups: Default::default(),
    };
    let d = run(&map, &a, 0, &[0x5E, 1, 0, 0, 0, 0, 0, 0x10, 0, 0], &[]).data;
    assert_eq!((&d[8..16], d[21]), (&0xABu64.to_be_bytes()[..], 1));
    assert_eq!(
        run(&map, &nexus(2), 0, &write10(0, 1), &[0; 512]).status,
        ScsiStatus::ReservationConflict
    );
    // REPORT CAPABILITIES shows PTPL_C and PTPL_A.
    let d = r
        .x(&a, &[0x5E, 2, 0, 0, 0, 0, 0, 0, 8, 0], &[])
        .good()
        .data
        .clone();
    assert_eq!((d[2] & 1, d[3] & 1), (1, 1));
    // Unregistering with APTPL=0 persists an empty state.
    let (c, p) = prout(0, 0, 0xAB, 0, false);
    r.x(&a, &c, &p).good();
    assert!(r.events.persisted.lock().last().unwrap().is_empty());
    // Garbage state is ignored, not a panic.
    let (lu3, _) = lu_with(Arc::new(MemoryStore::new(1 << 20)), Some(vec![1, 2, 3]));
    assert_eq!(lu3.state(), LuState::Online);
}

/// An APTPL change the store refuses answers HARDWARE ERROR / INTERNAL TARGET FAILURE and
/// changes nothing: keys, holder, generation, the data path's conflict check, and no unit
/// attention reaches the nexus that would have been preempted. Issue 10 item 4.
#[test]
fn aptpl_change_that_cannot_be_stored_fails_and_changes_nothing() {
    let r = rig();
    let (a, b) = (nexus(1), nexus(2));
    for (n, key) in [(&a, 0xABu64), (&b, 0xCD)] {
        let (c, p) = prout(0, 0, 0, key, true);
        r.x(n, &c, &p).good();
    }
    pr(&r, &b, 1, 1, 0xCD, 0).good();
    let keys = read_keys(&r, &a);
    let stored = r.events.persisted.lock().len();
    r.events.refuse.store(true, Ordering::SeqCst);
    // A preempts B's WRITE EXCLUSIVE reservation: refused by the store.
    check(&pr(&r, &a, 4, 1, 0xAB, 0xCD), (4, 0x44, 0x00));
    // A new registration is refused the same way.
    let (c, p) = prout(0, 0, 0, 0xEF, true);
    check(&r.x(&nexus(3), &c, &p), (4, 0x44, 0x00));
    assert_eq!(read_keys(&r, &a), keys);
    let d = r
        .x(&a, &[0x5E, 1, 0, 0, 0, 0, 0, 0x10, 0, 0], &[])
        .good()
        .data
        .clone();
    assert_eq!((&d[8..16], d[21]), (&0xCDu64.to_be_bytes()[..], 1));
    r.x(&b, &TUR, &[]).good();
    r.x(&b, &write10(0, 1), &[0; 512]).good();
    assert_eq!(
        r.x(&a, &write10(0, 1), &[0; 512]).status,
        ScsiStatus::ReservationConflict
    );
    assert_eq!(r.events.persisted.lock().len(), stored);
    // Once the store works again the same command succeeds and B is told.
    r.events.refuse.store(false, Ordering::SeqCst);
    pr(&r, &a, 4, 1, 0xAB, 0xCD).good();
    check(&r.x(&b, &TUR, &[]), (6, 0x2A, 0x05));
    assert_eq!(read_keys(&r, &a).1, vec![0xAB]);
}

#[test]
fn pr_in_service_action_range_and_full_status() {
    let r = rig();
    let a = nexus(1);
    for sa in 4..0x20u8 {
        check(
            &r.x(&a, &[0x5E, sa, 0, 0, 0, 0, 0, 0x10, 0, 0], &[]),
            (5, 0x24, 0),
        );
    }
    pr(&r, &a, 0, 0, 0, 5).good();
    pr(&r, &a, 1, 1, 5, 0).good();
    let d = r
        .x(&a, &[0x5E, 3, 0, 0, 0, 0, 0, 0x10, 0, 0], &[])
        .good()
        .data
        .clone();
    assert_eq!(&d[8..16], &5u64.to_be_bytes());
    assert_eq!((d[20] & 1, d[21]), (1, 1), "holder, type 1");
    assert_eq!(d[32], 0x45, "iSCSI TransportID format 01b");
    // Parameter list length other than 24
    check(
        &r.x(&a, &[0x5F, 0, 0, 0, 0, 0, 0, 0, 20, 0], &[0; 20]),
        (5, 0x1A, 0),
    );
}

#[test]
fn reserve6_release_and_nexus_loss() {
    let r = rig();
    let (a, b) = (nexus(1), nexus(2));
    // opcode 0x16 RESERVE(6)
    r.x(&a, &[0x16, 0, 0, 0, 0, 0], &[]).good();
    r.x(&a, &[0x16, 0, 0, 0, 0, 0], &[]).good();
    assert_eq!(
        r.x(&b, &[0x16, 0, 0, 0, 0, 0], &[]).status,
        ScsiStatus::ReservationConflict
    );
    assert_eq!(
        r.x(&b, &read10(0, 1), &[]).status,
        ScsiStatus::ReservationConflict
    );
    r.x(&b, &[0x12, 0, 0, 0, 36, 0], &[]).good();
    // opcode 0x17 RELEASE(6) by the other nexus: no-op
    r.x(&b, &[0x17, 0, 0, 0, 0, 0], &[]).good();
    assert_eq!(r.x(&b, &TUR, &[]).status, ScsiStatus::ReservationConflict);
    r.map.nexus_lost(a.id);
    // The reservation went with its nexus: the other nexus is told once (06/29/07).
    check(&r.x(&b, &[0x16, 0, 0, 0, 0, 0], &[]), (6, 0x29, 0x07));
    r.x(&b, &[0x16, 0, 0, 0, 0, 0], &[]).good();
    // LU reset releases it too, with 29/03 for every nexus.
    r.x(&a, &TUR, &[]);
    assert!(r.map.reset_lun(0, Some(b.id)));
    check(&r.x(&a, &TUR, &[]), (6, 0x29, 0x03));
    check(&r.x(&b, &TUR, &[]), (6, 0x29, 0x03));
    r.x(&a, &[0x16, 0, 0, 0, 0, 0], &[]).good();
    r.x(&a, &[0x17, 0, 0, 0, 0, 0], &[]).good();
}

fn xcopy_param(
    src: &LogicalUnit,
    dst: &LogicalUnit,
    blocks: u16,
    src_lba: u64,
    dst_lba: u64,
) -> Vec<u8> {
    let mut p = vec![0u8; 16];
    p[1] = 0x18; // list id usage 11b
    p[2..4].copy_from_slice(&64u16.to_be_bytes());
    p[8..12].copy_from_slice(&28u32.to_be_bytes());
    for lu in [src, dst] {
        let mut t = [0u8; 32];
        t[0] = 0xE4;
        t[4] = 0x01;
        t[5] = 0x03;
        t[7] = 16;
        t[8..24].copy_from_slice(&lu.naa());
        t[29..32].copy_from_slice(&lu.block_size().to_be_bytes()[1..]);
        p.extend_from_slice(&t);
    }
    let mut s = [0u8; 28];
    s[0] = 0x02;
    s[2..4].copy_from_slice(&24u16.to_be_bytes());
    s[4..6].copy_from_slice(&0u16.to_be_bytes());
    s[6..8].copy_from_slice(&1u16.to_be_bytes());
    s[10..12].copy_from_slice(&blocks.to_be_bytes());
    s[12..20].copy_from_slice(&src_lba.to_be_bytes());
    s[20..28].copy_from_slice(&dst_lba.to_be_bytes());
    p.extend_from_slice(&s);
    p
}

fn xcopy_cdb(len: usize) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0x83;
    c[10..14].copy_from_slice(&(len as u32).to_be_bytes());
    c
}

/// One target's map: `a` at LUN 0 and `b` at LUN 1, both visible to everyone.
fn map_of_two(a: &Rig, b: &Rig) -> LunMap {
    LunMap {
        entries: vec![
            LunEntry {
                number: 0,
                lu: a.lu.clone(),
                mask: Mask::Everyone,
            },
            LunEntry {
                number: 1,
                lu: b.lu.clone(),
                mask: Mask::Everyone,
            },
        ],
        port_groups: Default::default(),
    }
}

#[test]
fn extended_copy_between_two_memory_lus() {
    let a = rig();
    let b = rig();
    let map = map_of_two(&a, &b);
    let n = nexus(1);
    let data: Vec<u8> = (0..8 * 512).map(|i| (i % 251) as u8).collect();
    a.x(&n, &write10(10, 8), &data).good();
    let p = xcopy_param(&a.lu, &b.lu, 8, 10, 100);
    run(&map, &n, 0, &xcopy_cdb(p.len()), &p).good();
    assert_eq!(b.x(&n, &read10(100, 8), &[]).data, data);
    // Destination range beyond the end.
    let p = xcopy_param(&a.lu, &b.lu, 8, 10, BLOCKS - 4);
    check(&run(&map, &n, 0, &xcopy_cdb(p.len()), &p), (0x0A, 0, 0));
    // Unknown designator: copy target not reachable.
    let mut p = xcopy_param(&a.lu, &b.lu, 8, 10, 100);
    p[16 + 32 + 8] ^= 0xFF;
    check(&run(&map, &n, 0, &xcopy_cdb(p.len()), &p), (5, 0x0D, 0x02));
    // Unsupported descriptor type codes.
    let mut p = xcopy_param(&a.lu, &b.lu, 8, 10, 100);
    p[16] = 0xE0;
    check(&run(&map, &n, 0, &xcopy_cdb(p.len()), &p), (5, 0x26, 0x07));
    let mut p = xcopy_param(&a.lu, &b.lu, 8, 10, 100);
    p[80] = 0x0A;
    check(&run(&map, &n, 0, &xcopy_cdb(p.len()), &p), (5, 0x26, 0x09));
    // Truncated by the parameter list length.
    let p = xcopy_param(&a.lu, &b.lu, 8, 10, 100);
    check(&run(&map, &n, 0, &xcopy_cdb(60), &p), (5, 0x1A, 0));
    // RECEIVE COPY RESULTS, operating parameters
    let mut c = [0u8; 16];
    c[0] = 0x84;
    c[1] = 0x03;
    c[13] = 0xFF;
    let d = a.x(&n, &c, &[]).good().data.clone();
    assert_eq!(
        u16::from_be_bytes([d[8], d[9]]) as usize,
        crate::spc::xcopy::MAX_TARGET_DESCRIPTORS
    );
    assert_eq!(&d[44..], &[0x02, 0xE4]);
    // Through a map without `b` (a's own), `b` is not reachable.
    let p = xcopy_param(&a.lu, &b.lu, 8, 10, 100);
    check(&a.x(&n, &xcopy_cdb(p.len()), &p), (5, 0x0D, 0x02));
}

mod aio;
mod alua;
mod hints;
mod isolation;
mod shared_pr;

#[test]
fn copy_status_by_list_identifier() {
    let a = rig();
    let n = nexus(1);
    let mut p = xcopy_param(&a.lu, &a.lu, 4, 0, 8);
    p[0] = 7; // list id 7, usage 00b (keep status)
    p[1] = 0;
    a.x(&n, &xcopy_cdb(p.len()), &p).good();
    let mut c = [0u8; 16];
    c[0] = 0x84;
    c[2] = 7;
    c[13] = 0xFF;
    let d = a.x(&n, &c, &[]).good().data.clone();
    assert_eq!((d[4], &d[5..7]), (0, &[0u8, 1][..]));
    c[2] = 8;
    check(&a.x(&n, &c, &[]), (5, 0x24, 0));
}

#[test]
fn request_sense_desc_bit() {
    let r = rig();
    // opcode 0x03 REQUEST SENSE, DESC=1, allocation length 252
    let d = r
        .x(&nexus(1), &[0x03, 1, 0, 0, 252, 0], &[])
        .good()
        .data
        .clone();
    assert_eq!(&d[..4], &[0x72, 0, 0, 0], "NO SENSE, descriptor format");
}

#[test]
fn synchronize_cache_and_start_stop() {
    let r = rig();
    let n = nexus(1);
    // opcode 0x35 SYNCHRONIZE CACHE(10), whole LU
    r.x(&n, &[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[]).good();
    // beyond the end
    check(
        &r.x(&n, &[0x35, 0, 0xFF, 0, 0, 0, 0, 0, 1, 0], &[]),
        (5, 0x21, 0),
    );
    // opcode 0x1B START STOP UNIT, stop
    r.x(&n, &[0x1B, 0, 0, 0, 0, 0], &[]).good();
    // opcode 0x37 READ DEFECT DATA(10), allocation length 4
    r.x(&n, &[0x37, 0, 0x0C, 0, 0, 0, 0, 0, 4, 0], &[]).good();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, .. ProptestConfig::default() })]

    /// No CDB and no Data-Out make the engine panic, and failures always carry sense.
    #[test]
    fn random_cdbs_never_panic(
        op in prop::sample::select(crate::ops::OPS.iter().map(|o| o.opcode).chain([0x48, 0xFF, 0x9C]).collect::<Vec<u8>>()),
        rest in prop::collection::vec(any::<u8>(), 0..20),
        out in prop::collection::vec(any::<u8>(), 0..1200),
        lun in 0u64..3,
    ) {
        let r = rig();
        let mut cdb = vec![op];
        cdb.extend_from_slice(&rest);
        let rep = run(&r.map, &nexus(1), lun, &cdb, &out);
        if rep.status == ScsiStatus::CheckCondition {
            prop_assert!(rep.sense.is_some());
        }
    }

    #[test]
    fn lun_codec_round_trip(n in 0u64..(1 << 24)) {
        prop_assert_eq!(decode_lun(encode_lun(n)), n);
    }

    #[test]
    fn decode_lun_never_panics(b in any::<[u8; 8]>()) {
        let _ = decode_lun(b);
    }
}

#[test]
fn lba_status_starts_at_the_requested_lba() {
    let r = rig();
    let n = nexus(1);
    r.x(&n, &write10(0, 264), &vec![1; 264 * 512]).good();
    for (unmap_n, at) in [(8u32, 0u64), (9, 9), (16, 9), (1, 1), (255, 255)] {
        let mut p = vec![0, 22, 0, 16, 0, 0, 0, 0];
        p.extend_from_slice(&0u64.to_be_bytes());
        p.extend_from_slice(&unmap_n.to_be_bytes());
        p.extend_from_slice(&[0; 4]);
        r.x(&n, &[0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], &p).good();
        // opcode 0x9E SA 0x12 GET LBA STATUS, allocation length 24: one descriptor
        let mut c = [0u8; 16];
        c[0] = 0x9E;
        c[1] = 0x12;
        c[2..10].copy_from_slice(&at.to_be_bytes());
        c[13] = 24;
        let d = r.x(&n, &c, &[]).good().data.clone();
        assert_eq!(d.len(), 24);
        let first = u64::from_be_bytes(d[8..16].try_into().unwrap());
        assert_eq!(
            first,
            at.next_multiple_of(8),
            "unmap {unmap_n}, status at {at}"
        );
    }
}

/// WRITE ATOMIC(16) CDB: opcode 0x9C, LBA in bytes 2..10, NUMBER OF LOGICAL BLOCKS in 12..14.
fn write_atomic16(lba: u64, blocks: u16) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0x9C;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[12..14].copy_from_slice(&blocks.to_be_bytes());
    c
}

/// Fixed-format sense: SKSV and C/D set, FIELD POINTER = `byte` (bytes 15..18).
fn field_pointer(r: &Reply) -> (u8, u16) {
    let s = r.sense.as_ref().expect("sense");
    assert_eq!(s[0] & 0x7F, 0x70, "fixed format");
    (s[15], u16::from_be_bytes([s[16], s[17]]))
}

fn map_of(lu: Arc<LogicalUnit>) -> LunMap {
    LunMap {
        entries: vec![LunEntry {
            number: 0,
            lu,
            mask: Mask::Everyone,
        }],
        port_groups: Default::default(),
    }
}

#[test]
fn write_atomic_on_a_memory_store() {
    let r = rig();
    let n = nexus(1);
    // VPD B0: maximum atomic transfer length 1 MiB = 2048 blocks, alignment 1, granularity 1
    let d = r.x(&n, &[0x12, 1, 0xB0, 0, 0xFF, 0], &[]).data;
    assert_eq!(&d[44..56], &[0, 0, 0x08, 0, 0, 0, 0, 1, 0, 0, 0, 1]);
    // LBA 1, 3 blocks
    r.x(&n, &write_atomic16(1, 3), &[5; 1536]).good();
    assert_eq!(r.x(&n, &read10(1, 3), &[]).data, vec![5; 1536]);
    // longer than the atomic maximum (on a 4 MiB LU, so the range is fine)
    let (big, _) = lu_with(Arc::new(MemoryStore::new(4 << 20)), None);
    let big = map_of(big);
    check(
        &run(&big, &n, 0, &write_atomic16(0, 2049), &vec![5; 2049 * 512]),
        (5, 0x24, 0),
    );
    run(&big, &n, 0, &write_atomic16(0, 2048), &vec![5; 2048 * 512]).good();
    check(&r.x(&n, &write_atomic16(0, 2), &[5; 512]), (5, 0x0E, 0x03)); // short Data-Out
    let mut c = write_atomic16(0, 1);
    c[11] = 1; // ATOMIC BOUNDARY
    check(&r.x(&n, &c, &[5; 512]), (5, 0x24, 0));
}

#[test]
fn write_atomic_is_not_offered_by_a_store_without_atomic_writes() {
    let (lu, _) = lu_with(Arc::new(vds_backstore::NullStore::new(1 << 20)), None);
    let map = map_of(lu);
    let n = nexus(1);
    // WRITE ATOMIC(16) LBA 8, 8 blocks: 05/20/00 INVALID COMMAND OPERATION CODE
    check(
        &run(&map, &n, 0, &write_atomic16(8, 8), &[5; 4096]),
        (5, 0x20, 0),
    );
    // opcode 0xA3/0x0C REPORT SUPPORTED OPERATION CODES, options 001b, opcode 0x9C,
    // allocation length 256
    let d = run(
        &map,
        &n,
        0,
        &[0xA3, 0x0C, 0x01, 0x9C, 0, 0, 0, 0, 1, 0, 0, 0],
        &[],
    )
    .data;
    assert_eq!(d[1] & 7, 1, "not supported");
    // VPD B0: maximum atomic transfer length, alignment, granularity all 0
    let d = run(&map, &n, 0, &[0x12, 1, 0xB0, 0, 0xFF, 0], &[]).data;
    assert_eq!(&d[44..64], &[0; 20]);
}

#[test]
fn write_atomic_on_a_file_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lun.img");
    // 4 MiB = 8192 blocks of 512 bytes
    vds_backstore::create_file(&path, 4 << 20, false).unwrap();
    let file =
        vds_backstore::open(&vds_backstore::BackingKind::File { path: path.clone() }, 0).unwrap();
    let (lu, events) = lu_with(file, None);
    let map = map_of(lu);
    let n = nexus(1);
    let x = |cdb: &[u8], out: &[u8]| run(&map, &n, 0, cdb, out);

    // INQUIRY VPD B0 (0x12, EVPD 1, page 0xB0, allocation length 255)
    let d = x(&[0x12, 1, 0xB0, 0, 0xFF, 0], &[]).good().data.clone();
    assert_eq!(u16::from_be_bytes([d[2], d[3]]), 0x3C, "page length");
    assert_eq!(
        &d[44..48],
        &[0, 0, 0x08, 0],
        "MAXIMUM ATOMIC TRANSFER LENGTH 2048 blocks"
    );
    assert_eq!(&d[48..52], &[0, 0, 0, 1], "ATOMIC ALIGNMENT 1");
    assert_eq!(
        &d[52..56],
        &[0, 0, 0, 1],
        "ATOMIC TRANSFER LENGTH GRANULARITY 1"
    );
    assert_eq!(&d[56..64], &[0; 8], "no atomic boundaries");
    let max_xfer = u32::from_be_bytes(d[8..12].try_into().unwrap());
    assert!(
        2048 <= max_xfer,
        "atomic maximum within MAXIMUM TRANSFER LENGTH"
    );

    // REPORT SUPPORTED OPERATION CODES (0xA3/0x0C), options 001b, opcode 0x9C, alloc 256
    let d = x(&[0xA3, 0x0C, 0x01, 0x9C, 0, 0, 0, 0, 1, 0, 0, 0], &[])
        .good()
        .data
        .clone();
    assert_eq!(d[1] & 7, 3, "supported as the standard says");
    assert_eq!(u16::from_be_bytes([d[2], d[3]]), 16, "CDB size");
    assert_eq!(d[4], 0x9C);

    // WRITE ATOMIC(16) LBA 1 (odd: no alignment restriction), 3 blocks, then READ(10) it
    x(&write_atomic16(1, 3), &[0xA5; 1536]).good();
    assert_eq!(x(&read10(0, 5), &[]).good().data, {
        let mut v = vec![0u8; 2560];
        v[512..2048].fill(0xA5);
        v
    });
    // The data is in the file and the journal's record is spent (magic zeroed).
    let raw = std::fs::read(&path).unwrap();
    assert_eq!(&raw[512..2048], &[0xA5; 1536]);
    let journal = std::fs::read(vds_backstore::journal::journal_path(&path)).unwrap();
    assert_eq!(&journal[..8], &[0; 8]);

    // WRITE ATOMIC(16) with DPO (bit 4) and FUA (bit 3), LBA 8188, the last 4 blocks
    let mut c = write_atomic16(8188, 4);
    c[1] = 0x18;
    x(&c, &[0x5C; 2048]).good();
    assert_eq!(x(&read10(8188, 4), &[]).data, vec![0x5C; 2048]);
    // 0 blocks: nothing to do
    x(&write_atomic16(0, 0), &[]).good();
    // The whole atomic maximum: 2048 blocks at LBA 4000
    x(&write_atomic16(4000, 2048), &vec![0x3E; 2048 * 512]).good();
    assert_eq!(x(&read10(4000, 2048), &[]).data, vec![0x3E; 2048 * 512]);

    // Beyond the end: LBA 8190 + 4 blocks > 8192 → 05/21/00 LBA OUT OF RANGE
    check(&x(&write_atomic16(8190, 4), &[1; 2048]), (5, 0x21, 0));
    // LBA 2^64-1: the end overflows, still 05/21/00
    check(&x(&write_atomic16(u64::MAX, 1), &[1; 512]), (5, 0x21, 0));
    // Over the atomic maximum: 2049 blocks → 05/24/00, field pointer byte 12 (C/D set)
    let r = x(&write_atomic16(0, 2049), &vec![1; 2049 * 512]);
    check(&r, (5, 0x24, 0));
    assert_eq!(field_pointer(&r), (0xC0, 12));
    // ATOMIC BOUNDARY (bytes 10..12) non-zero while the maximum boundary size is 0:
    // 05/24/00 pointing at byte 10
    let mut c = write_atomic16(0, 1);
    c[11] = 1;
    let r = x(&c, &[1; 512]);
    check(&r, (5, 0x24, 0));
    assert_eq!(field_pointer(&r), (0xC0, 10));
    // Less Data-Out than the 2 blocks asked: no partial atomic write, 05/0E/03
    check(&x(&write_atomic16(0, 2), &[1; 512]), (5, 0x0E, 0x03));
    // None of the refused commands wrote anything.
    assert_eq!(x(&read10(0, 1), &[]).data, vec![0; 512]);
    assert_eq!(x(&read10(8190, 2), &[]).data, vec![0x5C; 1024]);
    assert_eq!(events.failed.load(Ordering::SeqCst), 0);
}

/// A read-only (provider write-protected) memory LU of `BLOCKS` blocks whose every block holds
/// 0xA5, mapped as LUN 0.
fn read_only_rig() -> (LunMap, Arc<LogicalUnit>) {
    let mem = Arc::new(MemoryStore::new(BLOCKS * u64::from(BS)));
    mem.write_at(&vec![0xA5; (BLOCKS * u64::from(BS)) as usize], 0, false)
        .unwrap();
    let lu = Arc::new(LogicalUnit::new(LuConfig {
        id: uuid::Uuid::new_v4(),
        backing: mem,
        block_size: BS,
        state: LuState::Online,
        pr_state: None,
        events: Arc::new(Events::default()),
        write_protected: true,
    }));
    (map_of(lu.clone()), lu)
}

/// 16-byte CDB with an 8-byte LBA at 2..10 and a 4-byte length at 10..14 (WRITE(16) family).
fn cdb16(opcode: u8, byte1: u8, lba: u64, blocks: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = opcode;
    c[1] = byte1;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&blocks.to_be_bytes());
    c
}

#[test]
fn read_only_lu_refuses_every_write_type_command_with_write_protected() {
    let (map, lu) = read_only_rig();
    let n = nexus(1);
    let x = |cdb: &[u8], out: &[u8]| run(&map, &n, 0, cdb, out);
    assert!(lu.write_protected());

    // MODE SENSE(6) (0x1A), all pages (0x3F), allocation length 255: header byte 2 is the
    // device-specific parameter, WP (bit 7) and DPOFUA (bit 4).
    let d = x(&[0x1A, 0, 0x3F, 0, 0xFF, 0], &[]).good().data.clone();
    assert_eq!(d[2], 0x90, "WP and DPOFUA");
    // MODE SENSE(10) (0x5A), DBD, control page (0x0A), allocation length 255: header byte 3.
    let d = x(&[0x5A, 0x08, 0x0A, 0, 0, 0, 0, 0, 0xFF, 0], &[])
        .good()
        .data
        .clone();
    assert_eq!(d[3], 0x90, "WP and DPOFUA");
    // The control page's SWP (page byte 4 bit 3) is the initiator's software write protect,
    // which nobody set: the LUN's own protection shows in the header only.
    assert_eq!((d[8], d[12] & 0x08), (0x0A, 0), "SWP clear");

    let one = [0x5Au8; 512];
    let unmap_list = {
        // UNMAP parameter list: data length 22, block descriptor data length 16, then one
        // descriptor: LBA 0, 1 block.
        let mut p = vec![0, 22, 0, 16, 0, 0, 0, 0];
        p.extend_from_slice(&0u64.to_be_bytes());
        p.extend_from_slice(&1u32.to_be_bytes());
        p.extend_from_slice(&[0; 4]);
        p
    };
    let caw_data = {
        // COMPARE AND WRITE Data-Out: the verify block (matches the medium) then the write block.
        let mut v = vec![0xA5u8; 512];
        v.extend_from_slice(&one);
        v
    };
    let refused: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        // opcode 0x0A WRITE(6): LBA 0 (bytes 1..4), 1 block (byte 4)
        ("WRITE(6)", vec![0x0A, 0, 0, 0, 1, 0], one.to_vec()),
        // opcode 0x2A WRITE(10): LBA 0, 1 block
        ("WRITE(10)", write10(0, 1).to_vec(), one.to_vec()),
        // opcode 0x2A WRITE(10) with FUA (byte 1 bit 3)
        (
            "WRITE(10) FUA",
            vec![0x2A, 0x08, 0, 0, 0, 0, 0, 0, 1, 0],
            one.to_vec(),
        ),
        // opcode 0xAA WRITE(12): LBA 0 (bytes 2..6), 1 block (bytes 6..10)
        (
            "WRITE(12)",
            vec![0xAA, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0],
            one.to_vec(),
        ),
        // opcode 0x8A WRITE(16): LBA 0, 1 block
        ("WRITE(16)", cdb16(0x8A, 0, 0, 1).to_vec(), one.to_vec()),
        // opcode 0x2E WRITE AND VERIFY(10), BYTCHK 0: LBA 0, 1 block
        (
            "WRITE AND VERIFY(10)",
            vec![0x2E, 0, 0, 0, 0, 0, 0, 0, 1, 0],
            one.to_vec(),
        ),
        // opcode 0xAE WRITE AND VERIFY(12): LBA 0, 1 block
        (
            "WRITE AND VERIFY(12)",
            vec![0xAE, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0],
            one.to_vec(),
        ),
        // opcode 0x8E WRITE AND VERIFY(16): LBA 0, 1 block
        (
            "WRITE AND VERIFY(16)",
            cdb16(0x8E, 0, 0, 1).to_vec(),
            one.to_vec(),
        ),
        // opcode 0x41 WRITE SAME(10): LBA 0, 8 blocks, one block of data
        (
            "WRITE SAME(10)",
            vec![0x41, 0, 0, 0, 0, 0, 0, 0, 8, 0],
            one.to_vec(),
        ),
        // opcode 0x41 WRITE SAME(10) with UNMAP (byte 1 bit 3), zero data
        (
            "WRITE SAME(10) UNMAP",
            vec![0x41, 0x08, 0, 0, 0, 0, 0, 0, 8, 0],
            vec![0; 512],
        ),
        // opcode 0x93 WRITE SAME(16): LBA 0, 8 blocks
        (
            "WRITE SAME(16)",
            cdb16(0x93, 0, 0, 8).to_vec(),
            one.to_vec(),
        ),
        // opcode 0x93 WRITE SAME(16) with UNMAP
        (
            "WRITE SAME(16) UNMAP",
            cdb16(0x93, 0x08, 0, 8).to_vec(),
            vec![0; 512],
        ),
        // opcode 0x93 WRITE SAME(16) with NDOB (byte 1 bit 0): no Data-Out
        (
            "WRITE SAME(16) NDOB",
            cdb16(0x93, 0x01, 0, 8).to_vec(),
            vec![],
        ),
        // opcode 0x42 UNMAP, parameter list length 24 (bytes 7..9)
        (
            "UNMAP",
            vec![0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0],
            unmap_list.clone(),
        ),
        // opcode 0x89 COMPARE AND WRITE: LBA 0, 1 block (byte 13); the compare would match
        (
            "COMPARE AND WRITE",
            vec![0x89, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0],
            caw_data.clone(),
        ),
        // opcode 0x8B ORWRITE(16): LBA 0, 1 block
        ("ORWRITE(16)", cdb16(0x8B, 0, 0, 1).to_vec(), one.to_vec()),
        // opcode 0x9C WRITE ATOMIC(16): LBA 0, 1 block (bytes 12..14)
        (
            "WRITE ATOMIC(16)",
            write_atomic16(0, 1).to_vec(),
            one.to_vec(),
        ),
    ];
    for (name, cdb, out) in &refused {
        let r = x(cdb, out);
        assert_eq!(r.status, ScsiStatus::CheckCondition, "{name}");
        assert_eq!(
            r.kcq(),
            (7, 0x27, 0x00),
            "{name}: DATA PROTECT / WRITE PROTECTED"
        );
    }
    // Nothing reached the medium.
    assert_eq!(
        x(&read10(0, 16), &[]).good().data,
        vec![0xA5; 16 * 512],
        "medium unchanged"
    );

    // What does not change the medium works as on any LU.
    x(&TUR, &[]).good();
    // opcode 0x2F VERIFY(10), BYTCHK 01b (byte 1 = 0x02): LBA 0, 1 block, data matches
    x(&[0x2F, 0x02, 0, 0, 0, 0, 0, 0, 1, 0], &[0xA5; 512]).good();
    // opcode 0x35 SYNCHRONIZE CACHE(10), whole LU
    x(&[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[]).good();
    // opcode 0x25 READ CAPACITY(10): last LBA and block length
    let d = x(&[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[])
        .good()
        .data
        .clone();
    assert_eq!(d[..4], ((BLOCKS - 1) as u32).to_be_bytes());
    assert_eq!(d[4..8], BS.to_be_bytes());
    // READ CAPACITY(16) (0x9E/0x10, allocation 32) and VPD B0/B2 as on a writable LU.
    let w = rig();
    let w1 = nexus(1);
    for cdb in [
        &[0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0][..],
        &[0x12, 1, 0xB0, 0, 0xFF, 0][..],
        &[0x12, 1, 0xB2, 0, 0xFF, 0][..],
    ] {
        assert_eq!(
            x(cdb, &[]).good().data,
            w.x(&w1, cdb, &[]).good().data,
            "{cdb:02x?}"
        );
    }
    // MODE SELECT(6) of the control page with D_SENSE (page byte 2 bit 2) is a mode change,
    // not a medium change: accepted.
    let p = [
        0, 0, 0, 0, 0x0A, 0x0A, 0x04, 0x10, 0, 0x40, 0, 0, 0xFF, 0xFF, 0, 0,
    ];
    x(&[0x15, 0x10, 0, 0, 16, 0], &p).good();
    assert!(lu.descriptor_sense());
}

#[test]
fn read_only_check_comes_after_cdb_range_status_and_reservation_checks() {
    let (map, lu) = read_only_rig();
    let a = nexus(1);
    let b = nexus(2);
    // WRITE(10) with WRPROTECT 001b (byte 1 bit 5): the CDB is invalid first, 05/24/00.
    check(
        &run(
            &map,
            &a,
            0,
            &[0x2A, 0x20, 0, 0, 0, 0, 0, 0, 1, 0],
            &[0; 512],
        ),
        (5, 0x24, 0),
    );
    // WRITE(10) at LBA BLOCKS (one past the end): 05/21/00 LBA OUT OF RANGE.
    check(
        &run(&map, &a, 0, &write10(BLOCKS as u32, 1), &[0; 512]),
        (5, 0x21, 0),
    );
    // RESERVE(6) (0x16) from nexus 2: nexus 1's WRITE(10) is a RESERVATION CONFLICT.
    run(&map, &b, 0, &[0x16, 0, 0, 0, 0, 0], &[]).good();
    assert_eq!(
        run(&map, &a, 0, &write10(0, 1), &[0; 512]).status,
        ScsiStatus::ReservationConflict
    );
    // The holder itself meets the protection.
    check(&run(&map, &b, 0, &write10(0, 1), &[0; 512]), (7, 0x27, 0));
    // RELEASE(6) (0x17)
    run(&map, &b, 0, &[0x17, 0, 0, 0, 0, 0], &[]).good();
    // OFFLINE: NOT READY / LOGICAL UNIT OFFLINE (02/04/12) before any data protection.
    lu.set_state(LuState::Offline).unwrap();
    check(
        &run(&map, &a, 0, &write10(0, 1), &[0; 512]),
        (2, 0x04, 0x12),
    );
    lu.set_state(LuState::Online).unwrap();
    // Back ONLINE: the unit attention 06/28/00 comes first, then the protection.
    check(&run(&map, &a, 0, &write10(0, 1), &[0; 512]), (6, 0x28, 0));
    check(&run(&map, &a, 0, &write10(0, 1), &[0; 512]), (7, 0x27, 0));
    // Software write protect on top: the LUN's own protection is what is reported.
    // MODE SELECT(6) control page with SWP (page byte 4 bit 3).
    let p = [
        0, 0, 0, 0, 0x0A, 0x0A, 0x00, 0x10, 0x08, 0x40, 0, 0, 0xFF, 0xFF, 0, 0,
    ];
    run(&map, &a, 0, &[0x15, 0x10, 0, 0, 16, 0], &p).good();
    check(&run(&map, &a, 0, &write10(0, 1), &[0; 512]), (7, 0x27, 0));
}

#[test]
fn write_protection_changes_at_runtime_with_a_mode_parameters_changed_attention() {
    let (map, lu) = read_only_rig();
    let a = nexus(1);
    let b = nexus(2);
    // MODE SENSE(6) of the control page (0x0A), allocation 255: byte 2 bit 7 is WP.
    let ms6 = [0x1A, 0, 0x0A, 0, 0xFF, 0];
    let wp = |n: &ItNexus| run(&map, n, 0, &ms6, &[]).good().data[2] & 0x80 != 0;
    assert!(wp(&a) && wp(&b));

    lu.set_write_protected(false);
    assert!(!lu.write_protected());
    // Each nexus hears of it once: 06/2A/01 MODE PARAMETERS CHANGED.
    for n in [&a, &b] {
        check(&run(&map, n, 0, &TUR, &[]), (6, 0x2A, 0x01));
        run(&map, n, 0, &TUR, &[]).good();
    }
    assert!(!wp(&a));
    run(&map, &a, 0, &write10(0, 1), &[0x11; 512]).good();
    assert_eq!(run(&map, &b, 0, &read10(0, 1), &[]).data, vec![0x11; 512]);

    // Setting the same value again changes nothing and queues nothing.
    lu.set_write_protected(false);
    run(&map, &a, 0, &TUR, &[]).good();

    lu.set_write_protected(true);
    check(&run(&map, &b, 0, &TUR, &[]), (6, 0x2A, 0x01));
    assert!(wp(&b));
    check(
        &run(&map, &b, 0, &write10(0, 1), &[0x22; 512]),
        (7, 0x27, 0),
    );
    // Nexus 1's pending attention is reported before the protection.
    check(
        &run(&map, &a, 0, &write10(0, 1), &[0x22; 512]),
        (6, 0x2A, 0x01),
    );
    check(
        &run(&map, &a, 0, &write10(0, 1), &[0x22; 512]),
        (7, 0x27, 0),
    );
    assert_eq!(run(&map, &a, 0, &read10(0, 1), &[]).data, vec![0x11; 512]);
}

#[test]
fn lun_lookup_finds_entries_sorted_or_not_and_honours_masks() {
    let (a, b, c) = (rig(), rig(), rig());
    let entry = |n: u64, lu: &Arc<LogicalUnit>, mask: Mask| LunEntry {
        number: n,
        lu: lu.clone(),
        mask,
    };
    let only = |n: &str| Mask::Only(vec![n.into()]);
    let sorted = LunMap {
        entries: vec![
            entry(0, &a.lu, Mask::Everyone),
            entry(7, &b.lu, only("iqn.x:one")),
            entry(7, &c.lu, only("iqn.x:two")),
            entry(300, &c.lu, Mask::Everyone),
        ],
        port_groups: Default::default(),
    };
    let unsorted = LunMap {
        entries: sorted.entries.iter().rev().cloned().collect(),
        port_groups: Default::default(),
    };
    for map in [&sorted, &unsorted] {
        let hit = |who: &str, n: u64| map.lookup(who, n).map(Arc::as_ptr);
        assert_eq!(hit("iqn.x:one", 0), Some(Arc::as_ptr(&a.lu)));
        assert_eq!(hit("iqn.x:one", 7), Some(Arc::as_ptr(&b.lu)));
        // The second of two entries with one number, reached through its mask.
        assert_eq!(hit("iqn.x:two", 7), Some(Arc::as_ptr(&c.lu)));
        assert_eq!(hit("iqn.x:three", 7), None);
        assert_eq!(hit("iqn.x:three", 300), Some(Arc::as_ptr(&c.lu)));
        assert_eq!(hit("iqn.x:one", 5), None);
        assert_eq!(hit("iqn.x:one", 301), None);
    }
}

/// A store whose first APTPL persist waits until the test lets it go (a store slow to answer);
/// later ones are kept at once.
struct SlowStore {
    calls: AtomicUsize,
    entered: std::sync::mpsc::SyncSender<()>,
    release: Mutex<std::sync::mpsc::Receiver<()>>,
}

impl LuEvents for SlowStore {
    fn failed(&self, _lu: uuid::Uuid, _error: &std::io::Error) {}
    fn persist_reservations(&self, _lu: uuid::Uuid, _state: &[u8]) -> std::io::Result<()> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            let _ = self.entered.send(());
            let _ = self.release.lock().recv();
        }
        Ok(())
    }
}

/// The PERSISTENT RESERVE OUT order is per logical unit: while one LU's APTPL state waits for
/// the store, a PR OUT on another LU completes, and a second PR OUT on the same LU waits for
/// the first to be installed (so it is computed from the state that includes it, not the one
/// before it: both registrations are kept).
#[test]
fn aptpl_persist_is_ordered_per_logical_unit() {
    use std::sync::mpsc;
    use std::time::Duration;
    let (entered_tx, entered) = mpsc::sync_channel(1);
    let (release, release_rx) = mpsc::channel();
    let slow = Arc::new(SlowStore {
        calls: AtomicUsize::new(0),
        entered: entered_tx,
        release: Mutex::new(release_rx),
    });
    let slow_lu = Arc::new(LogicalUnit::new(LuConfig {
        id: uuid::Uuid::new_v4(),
        backing: Arc::new(MemoryStore::new(1 << 20)),
        block_size: BS,
        state: LuState::Online,
        pr_state: None,
        events: slow,
        write_protected: false,
    }));
    let slow_map = Arc::new(LunMap {
        entries: vec![LunEntry {
            number: 0,
            lu: slow_lu,
            mask: Mask::Everyone,
        }],
        port_groups: Default::default(),
    });
    let register = |map: Arc<LunMap>, n: ItNexus, key: u64| {
        let (c, p) = prout(0, 0, 0, key, true);
        let (done, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(run(&map, &n, 0, &c, &p).status);
        });
        rx
    };
    let first = register(slow_map.clone(), nexus(1), 0xAB);
    entered
        .recv_timeout(Duration::from_secs(10))
        .expect("the first registration reaches the store");
    // Another LU is not held up by the one waiting for its store.
    let other = rig();
    let other_map = Arc::new(LunMap {
        entries: vec![LunEntry {
            number: 0,
            lu: other.lu.clone(),
            mask: Mask::Everyone,
        }],
        port_groups: Default::default(),
    });
    let status = register(other_map, nexus(1), 0xCD).recv_timeout(Duration::from_secs(10));
    // The same LU is: its second registration waits for the first.
    let second = register(slow_map.clone(), nexus(2), 0xEF);
    let early = second.recv_timeout(Duration::from_millis(300));
    release.send(()).unwrap();
    assert_eq!(status, Ok(ScsiStatus::Good), "the other LU's PR OUT waited");
    assert_eq!(other.events.persisted.lock().len(), 1);
    assert!(early.is_err(), "the same LU's second PR OUT did not wait");
    let done = Duration::from_secs(10);
    assert_eq!(first.recv_timeout(done), Ok(ScsiStatus::Good));
    assert_eq!(second.recv_timeout(done), Ok(ScsiStatus::Good));
    let d = run(
        &slow_map,
        &nexus(1),
        0,
        &[0x5E, 0, 0, 0, 0, 0, 0, 0x18, 0, 0],
        &[],
    )
    .data;
    let mut keys: Vec<u64> = d[8..]
        .chunks(8)
        .map(|c| u64::from_be_bytes(c.try_into().unwrap()))
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, vec![0xAB, 0xEF]);
}
