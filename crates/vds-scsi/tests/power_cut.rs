//! The durability promises of the SCSI engine, checked across a simulated power cut: a logical
//! unit over `vds_backstore::PowerCut`, which drops every write that was not made durable
//! (ARCHITECTURE.md "Acknowledged means durable"; BEHAVIOUR §3).
//!
//! Each promise is checked under every loss mode of the store, and the store is first shown to
//! really lose unflushed writes, so a missing flush fails these tests.

use std::sync::Arc;

use vds_backstore::{journal, BackingStore, Loss, PowerCut};
use vds_scsi::{
    ItNexus, LogicalUnit, LuConfig, LuEvents, LuState, ScsiCommand, ScsiStatus, TaskAttr,
};

const BS: u32 = 512;
const SIZE: u64 = 1 << 20;

/// Every way the store may lose unflushed writes.
const LOSSES: [Loss; 4] = [
    Loss::Unflushed,
    Loss::Subset { seed: 7 },
    Loss::Sectors { seed: 11 },
    Loss::Sectors { seed: 12 },
];

struct NoEvents;

impl LuEvents for NoEvents {
    fn failed(&self, _lu: uuid::Uuid, _error: &std::io::Error) {}
    fn persist_reservations(&self, _lu: uuid::Uuid, _state: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
}

fn lu_over(backing: Arc<dyn BackingStore>) -> LogicalUnit {
    LogicalUnit::new(LuConfig {
        id: uuid::Uuid::new_v4(),
        backing,
        block_size: BS,
        state: LuState::Online,
        pr_state: None,
        events: Arc::new(NoEvents),
        write_protected: false,
    })
}

fn nexus() -> ItNexus {
    ItNexus {
        id: 1,
        initiator_name: "iqn.2026-01.test:init".into(),
        initiator_port: "iqn.2026-01.test:init,i,0x230000000001".into(),
        target_port: "iqn.2026-01.test:target,t,0x0001".into(),
        relative_target_port: 1,
        target_port_group: 1,
    }
}

/// Run one command; panics unless it answers GOOD. Returns Data-In.
fn good(lu: &LogicalUnit, cdb: &[u8], out: &[u8]) -> Vec<u8> {
    let n = nexus();
    let mut data = Vec::new();
    for _ in 0..4 {
        let o = lu.execute(
            &n,
            &ScsiCommand {
                cdb,
                data_out: out,
                expected_in_len: 0xFFFF,
                attr: TaskAttr::Simple,
            },
            &mut data,
        );
        if o.status == ScsiStatus::Good {
            return data;
        }
        // The first command of a nexus may meet a unit attention; nothing else is expected.
        let s = o.sense.expect("sense with CHECK CONDITION");
        assert_eq!(s[2] & 0x0F, 6, "{cdb:02x?}: sense {s:02x?}");
    }
    panic!("{cdb:02x?} never answered GOOD");
}

fn write10(lba: u32, blocks: u16, fua: bool) -> Vec<u8> {
    let mut c = vec![0x2A, if fua { 0x08 } else { 0 }, 0, 0, 0, 0, 0, 0, 0, 0];
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[7..9].copy_from_slice(&blocks.to_be_bytes());
    c
}

fn write12(lba: u32, blocks: u32, fua: bool) -> Vec<u8> {
    let mut c = vec![
        0xAA,
        if fua { 0x08 } else { 0 },
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ];
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[6..10].copy_from_slice(&blocks.to_be_bytes());
    c
}

fn cdb16(op: u8, byte1: u8, lba: u64, blocks: u32) -> Vec<u8> {
    let mut c = vec![0u8; 16];
    c[0] = op;
    c[1] = byte1;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&blocks.to_be_bytes());
    c
}

/// `blocks` blocks of `byte`.
fn pattern(byte: u8, blocks: usize) -> Vec<u8> {
    vec![byte; blocks * BS as usize]
}

/// Panics unless `blocks` blocks at `lba` all hold `byte`, naming the first that does not.
fn expect(store: &dyn BackingStore, lba: u64, blocks: usize, byte: u8, what: String) {
    let got = read(store, lba, blocks);
    if let Some(i) = got.iter().position(|&b| b != byte) {
        panic!(
            "{what}: block {} holds {:#04x}, expected {byte:#04x}",
            lba + (i / BS as usize) as u64,
            got[i]
        );
    }
}

fn read(store: &dyn BackingStore, lba: u64, blocks: usize) -> Vec<u8> {
    let mut b = vec![0u8; blocks * BS as usize];
    store.read_at(&mut b, lba * u64::from(BS)).unwrap();
    b
}

/// The store's first unflushed write really is lost at a cut (f): without this, every test
/// below could pass with the flushes removed.
#[test]
fn unflushed_writes_are_lost_at_a_power_cut() {
    for loss in LOSSES {
        let pc = Arc::new(PowerCut::new(SIZE, loss));
        let lu = lu_over(pc.clone());
        // 64 blocks in 8 writes: every loss mode loses something of them.
        for k in 0..8u32 {
            good(&lu, &write10(k * 8, 8, false), &pattern(0xA0 + k as u8, 8));
        }
        expect(&*pc, 0, 8, 0xA0, "the cache has it".into());
        let back = pc.restart();
        assert!(pc.lost() > 0, "{loss:?}: nothing was lost");
        let after: Vec<u8> = read(&back, 0, 64);
        let before: Vec<u8> = (0..8u8).flat_map(|k| pattern(0xA0 + k, 8)).collect();
        assert!(after != before, "{loss:?}: every unflushed write survived");
    }
}

/// (a) A WRITE with FUA is durable when GOOD is answered, in every form that has the bit, and
/// WRITE AND VERIFY (always forced) too.
#[test]
fn a_fua_write_is_durable_at_good() {
    for loss in LOSSES {
        let pc = Arc::new(PowerCut::new(SIZE, loss));
        let lu = lu_over(pc.clone());
        good(&lu, &write10(0, 8, true), &pattern(1, 8));
        good(&lu, &write12(8, 8, true), &pattern(2, 8));
        good(&lu, &cdb16(0x8A, 0x08, 16, 8), &pattern(3, 8));
        // WRITE AND VERIFY(10), BYTCHK 0.
        let mut wv = write10(24, 8, false);
        wv[0] = 0x2E;
        good(&lu, &wv, &pattern(4, 8));
        // ORWRITE(16) with FUA over zeroes.
        good(&lu, &cdb16(0x8B, 0x08, 32, 8), &pattern(5, 8));
        // COMPARE AND WRITE with FUA: verify zeroes, write 6.
        let mut caw = cdb16(0x89, 0x08, 40, 0);
        caw[10..14].fill(0);
        caw[13] = 8;
        let mut out = pattern(0, 8);
        out.extend(pattern(6, 8));
        good(&lu, &caw, &out);
        // Plain writes after them are not flushed.
        good(&lu, &write10(48, 8, false), &pattern(9, 8));
        let back = pc.restart();
        for (k, byte) in (1..=6u8).enumerate() {
            expect(
                &back,
                k as u64 * 8,
                8,
                byte,
                format!("{loss:?}: forced write {byte} lost"),
            );
        }
    }
}

/// (b) Writes followed by SYNCHRONIZE CACHE(10) or (16) are durable when it answers GOOD;
/// so are writes before START STOP UNIT (stop, no NO_FLUSH).
#[test]
fn writes_before_synchronize_cache_are_durable_at_good() {
    let sync10 = [0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let sync16 = cdb16(0x91, 0, 0, 0);
    let stop = [0x1B, 0, 0, 0, 0, 0];
    for loss in LOSSES {
        for flush in [&sync10[..], &sync16[..], &stop[..]] {
            let pc = Arc::new(PowerCut::new(SIZE, loss));
            let lu = lu_over(pc.clone());
            for k in 0..8u32 {
                good(&lu, &write10(k * 8, 8, false), &pattern(k as u8 + 1, 8));
            }
            // WRITE SAME(16) of a non-zero block, and an UNMAP of part of the first write.
            good(&lu, &cdb16(0x93, 0, 64, 8), &pattern(0x77, 1));
            let mut unmap = vec![0u8; 24];
            unmap[1] = 22;
            unmap[3] = 16;
            unmap[8..16].copy_from_slice(&0u64.to_be_bytes());
            unmap[16..20].copy_from_slice(&4u32.to_be_bytes());
            good(&lu, &[0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], &unmap);
            good(&lu, flush, &[]);
            let back = pc.restart();
            expect(&back, 0, 4, 0, format!("{loss:?} {flush:02x?}"));
            expect(&back, 4, 4, 1, format!("{loss:?} {flush:02x?}"));
            for k in 1..8u64 {
                expect(
                    &back,
                    k * 8,
                    8,
                    k as u8 + 1,
                    format!("{loss:?} {flush:02x?}: write {k} lost"),
                );
            }
            expect(&back, 64, 8, 0x77, format!("{loss:?}"));
        }
    }
}

/// (c) Taking the LU OFFLINE or NOT_READY flushes before the transition is acknowledged, and
/// so does the provider's shutdown flush (`LogicalUnit::flush`).
#[test]
fn offline_not_ready_and_shutdown_flush_before_they_return() {
    for loss in LOSSES {
        for to in [Some(LuState::Offline), Some(LuState::NotReady), None] {
            let pc = Arc::new(PowerCut::new(SIZE, loss));
            let lu = lu_over(pc.clone());
            for k in 0..8u32 {
                good(&lu, &write10(k * 8, 8, false), &pattern(k as u8 + 1, 8));
            }
            match to {
                Some(s) => lu.set_state(s).unwrap(),
                None => lu.flush().unwrap(),
            }
            let back = pc.restart();
            for k in 0..8u64 {
                expect(
                    &back,
                    k * 8,
                    8,
                    k as u8 + 1,
                    format!("{loss:?} to {to:?}: write {k} lost"),
                );
            }
        }
    }
}

/// MODE SELECT(6) of the caching page with WCE set as given.
fn set_wce(lu: &LogicalUnit, on: bool) {
    let sense = good(lu, &[0x1A, 0x08, 0x08, 0, 0xFF, 0], &[]);
    let mut p = sense.clone();
    p[..4].fill(0);
    p[4] &= 0x3F;
    if on {
        p[6] |= 0x04;
    } else {
        p[6] &= !0x04;
    }
    good(lu, &[0x15, 0x10, 0, 0, p.len() as u8, 0], &p);
    let now = good(lu, &[0x1A, 0x08, 0x08, 0, 0xFF, 0], &[]);
    assert_eq!(now[6] & 0x04 != 0, on, "WCE now {on}");
}

/// (e) With the write-back cache off (WCE=0 by MODE SELECT), turning it off flushes, and every
/// write, WRITE SAME and UNMAP is durable at GOOD.
#[test]
fn with_the_write_cache_off_every_write_is_durable_at_good() {
    for loss in LOSSES {
        // Turning the cache off makes what it held durable.
        let pc = Arc::new(PowerCut::new(SIZE, loss));
        let lu = lu_over(pc.clone());
        good(&lu, &write10(0, 8, false), &pattern(1, 8));
        set_wce(&lu, false);
        expect(
            &pc.restart(),
            0,
            8,
            1,
            format!("{loss:?}: not flushed by WCE=0"),
        );
        let pc = Arc::new(PowerCut::new(SIZE, loss));
        let lu = lu_over(pc.clone());
        good(&lu, &write10(0, 8, false), &pattern(1, 8));
        good(&lu, &write10(8, 8, false), &pattern(0x55, 8));
        set_wce(&lu, false);
        good(&lu, &write10(16, 8, false), &pattern(2, 8));
        good(&lu, &[0x0A, 0, 0, 24, 8, 0], &pattern(3, 8)); // WRITE(6): no FUA bit at all
        good(&lu, &cdb16(0x93, 0, 32, 8), &pattern(4, 1)); // WRITE SAME(16)
                                                           // UNMAP of blocks 8..16 and WRITE SAME(16) with UNMAP over 40..48, which a thin store
                                                           // deallocates rather than writes.
        good(&lu, &write10(40, 8, true), &pattern(0x66, 8));
        let mut unmap = vec![0u8; 24];
        unmap[1] = 22;
        unmap[3] = 16;
        unmap[8..16].copy_from_slice(&8u64.to_be_bytes());
        unmap[16..20].copy_from_slice(&8u32.to_be_bytes());
        good(&lu, &[0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], &unmap);
        good(&lu, &cdb16(0x93, 0x08, 40, 8), &pattern(0, 1));
        let back = pc.restart();
        expect(&back, 0, 8, 1, format!("{loss:?}: flushed by WCE=0"));
        expect(&back, 8, 8, 0, format!("{loss:?}: UNMAP lost"));
        expect(&back, 16, 8, 2, format!("{loss:?}: WRITE(10)"));
        expect(&back, 24, 8, 3, format!("{loss:?}: WRITE(6)"));
        expect(&back, 32, 8, 4, format!("{loss:?}: WRITE SAME"));
        expect(&back, 40, 8, 0, format!("{loss:?}: WRITE SAME UNMAP lost"));
    }
}

/// (d) WRITE ATOMIC(16) through the redo journal over the power-cut store: durable at GOOD,
/// and all or nothing when the power fails at any operation of the store during it.
#[test]
fn write_atomic_through_the_journal_is_durable_and_whole_at_any_cut() {
    // 8 blocks at LBA 4, over 8 blocks of 0x11 that were flushed first.
    let atomic = |lba: u64| {
        let mut c = cdb16(0x9C, 0, lba, 0);
        c[10..14].fill(0);
        c[12..14].copy_from_slice(&8u16.to_be_bytes());
        c
    };
    for loss in LOSSES {
        for cut in 0..8u64 {
            let dir = tempfile::tempdir().unwrap();
            let jpath = dir.path().join("lun.atomic");
            let pc = Arc::new(PowerCut::new(SIZE, loss));
            let lu = lu_over(journal::with_journal(pc.clone(), &jpath, 1).unwrap());
            assert!(lu.backing().atomic_write_max() > 0, "journaled");
            good(&lu, &write10(0, 16, false), &pattern(0x11, 16));
            good(&lu, &[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[]);
            pc.cut_after(cut);
            let n = nexus();
            let mut data = Vec::new();
            let o = lu.execute(
                &n,
                &ScsiCommand {
                    cdb: &atomic(4),
                    data_out: &pattern(0x22, 8),
                    expected_in_len: 0,
                    attr: TaskAttr::Simple,
                },
                &mut data,
            );
            let acked = o.status == ScsiStatus::Good;
            let back: Arc<dyn BackingStore> = Arc::new(pc.restart());
            // Reopen as the daemon would: the journal replays an interrupted write.
            let back = journal::with_journal(back, &jpath, 1).unwrap();
            let got = read(&*back, 0, 16);
            let old = pattern(0x11, 16);
            let mut new = old.clone();
            new[4 * BS as usize..12 * BS as usize].fill(0x22);
            if acked {
                assert!(
                    got == new,
                    "{loss:?} cut {cut}: acknowledged atomic write lost"
                );
            } else {
                assert!(
                    got == old || got == new,
                    "{loss:?} cut {cut}: atomic write torn"
                );
            }
        }
    }
}
