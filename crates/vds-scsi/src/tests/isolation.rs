//! What one I_T nexus may reach beyond the LU it addresses (BEHAVIOUR §13): EXTENDED COPY
//! resolves copy targets only among the LUs of its own target's map that it may see, admits
//! them like commands of its own (status gate, reservations, in-flight count), and leaves
//! every other LU untouched; nexus loss tells the others when it released a reservation.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::*;

/// The pattern block `i` of a LU is filled with, for telling data apart.
fn pattern(seed: u8, blocks: u16) -> Vec<u8> {
    (0..usize::from(blocks) * BS as usize)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

fn entry(number: u64, lu: &Arc<LogicalUnit>, mask: Mask) -> LunEntry {
    LunEntry {
        number,
        lu: lu.clone(),
        mask,
    }
}

/// The store's bytes (straight from the backing store: what is there, whoever may read it).
fn read(lu: &Arc<LogicalUnit>, lba: u32, blocks: u16) -> Vec<u8> {
    let mut b = vec![0u8; usize::from(blocks) * BS as usize];
    lu.backing()
        .read_at(&mut b, u64::from(lba) * u64::from(BS))
        .unwrap();
    b
}

/// The requester's target: `home` (LUN 0, everyone), `open` (LUN 1, everyone), `masked`
/// (LUN 2, visible to another initiator only), `reserved` (LUN 3, everyone). `elsewhere` is
/// on another target of the same process.
struct World {
    home: Rig,
    open: Rig,
    masked: Rig,
    reserved: Rig,
    elsewhere: Rig,
    map: LunMap,
    other_map: LunMap,
}

fn world() -> World {
    let (home, open, masked, reserved, elsewhere) = (rig(), rig(), rig(), rig(), rig());
    for (r, seed) in [
        (&home, 1u8),
        (&open, 2),
        (&masked, 3),
        (&reserved, 4),
        (&elsewhere, 5),
    ] {
        r.lu.backing()
            .write_at(&pattern(seed, 64), 0, false)
            .unwrap();
    }
    let map = LunMap {
        entries: vec![
            entry(0, &home.lu, Mask::Everyone),
            entry(1, &open.lu, Mask::Everyone),
            entry(2, &masked.lu, Mask::Only(vec![nexus(2).initiator_name])),
            entry(3, &reserved.lu, Mask::Everyone),
        ],
        port_groups: Default::default(),
    };
    let other_map = LunMap {
        entries: vec![entry(0, &elsewhere.lu, Mask::Everyone)],
        port_groups: Default::default(),
    };
    World {
        home,
        open,
        masked,
        reserved,
        elsewhere,
        map,
        other_map,
    }
}

#[test]
fn extended_copy_reaches_no_masked_foreign_or_reserved_lu() {
    let w = world();
    let me = nexus(1);
    let holder = nexus(2);
    // Another initiator holds RESERVE(6) on LUN 3 (the first command may meet no UA: fresh).
    run(&w.map, &holder, 3, &[0x16, 0, 0, 0, 0, 0], &[]).good();
    let before: Vec<Vec<u8>> = [&w.home, &w.masked, &w.reserved, &w.elsewhere]
        .iter()
        .map(|r| read(&r.lu, 0, 64))
        .collect();
    let cases: [(&str, &Rig, (u8, u8, u8)); 3] = [
        ("masked LU", &w.masked, (5, 0x0D, 0x02)),
        ("LU on another target", &w.elsewhere, (5, 0x0D, 0x02)),
        ("LU reserved by another initiator", &w.reserved, (0, 0, 0)),
    ];
    for (what, other, want) in cases {
        for other_is_source in [true, false] {
            let p = if other_is_source {
                xcopy_param(&other.lu, &w.home.lu, 8, 0, 16)
            } else {
                xcopy_param(&w.home.lu, &other.lu, 8, 0, 16)
            };
            let r = run(&w.map, &me, 0, &xcopy_cdb(p.len()), &p);
            if want == (0, 0, 0) {
                assert_eq!(
                    r.status,
                    ScsiStatus::ReservationConflict,
                    "{what} as source={other_is_source}: {:02x?}",
                    r.sense
                );
            } else {
                assert_eq!(r.status, ScsiStatus::CheckCondition, "{what}");
                assert_eq!(r.kcq(), want, "{what} as source={other_is_source}");
            }
        }
    }
    let after: Vec<Vec<u8>> = [&w.home, &w.masked, &w.reserved, &w.elsewhere]
        .iter()
        .map(|r| read(&r.lu, 0, 64))
        .collect();
    assert!(before == after, "a refused copy changed data");
    // The same copies through a map that shows the LU, by a nexus the reservation allows,
    // work: the refusals above were about reach, not about the copy.
    let p = xcopy_param(&w.home.lu, &w.open.lu, 8, 0, 16);
    run(&w.map, &me, 0, &xcopy_cdb(p.len()), &p).good();
    assert_eq!(read(&w.open.lu, 16, 8), pattern(1, 8));
    let p = xcopy_param(&w.home.lu, &w.reserved.lu, 8, 0, 16);
    run(&w.map, &holder, 0, &xcopy_cdb(p.len()), &p).good();
    assert_eq!(read(&w.reserved.lu, 16, 8), pattern(1, 8));
    let p = xcopy_param(&w.masked.lu, &w.home.lu, 8, 0, 24);
    let mut r = run(&w.map, &holder, 0, &xcopy_cdb(p.len()), &p);
    if r.status == ScsiStatus::CheckCondition && r.kcq().0 == 6 {
        r = run(&w.map, &holder, 0, &xcopy_cdb(p.len()), &p);
    }
    r.good();
    assert_eq!(read(&w.home.lu, 24, 8), pattern(3, 8));
    // Nor does a LU on another target become reachable by naming it from that target's map.
    let p = xcopy_param(&w.elsewhere.lu, &w.home.lu, 8, 0, 32);
    check(
        &run(&w.other_map, &me, 0, &xcopy_cdb(p.len()), &p),
        (5, 0x0D, 0x02),
    );
    // Not through a map at all: only the LU itself.
    let mut data = Vec::new();
    let p = xcopy_param(&w.home.lu, &w.open.lu, 8, 0, 32);
    let o = w.home.lu.execute(
        &me,
        &ScsiCommand {
            cdb: &xcopy_cdb(p.len()),
            data_out: &p,
            expected_in_len: 0,
            attr: TaskAttr::Simple,
        },
        &mut data,
    );
    assert_eq!(o.status, ScsiStatus::CheckCondition);
}

#[test]
fn extended_copy_to_an_offline_lu_is_not_reachable() {
    let w = world();
    let me = nexus(1);
    w.open.lu.set_state(LuState::Offline).unwrap();
    let before = read(&w.open.lu, 0, 64);
    for p in [
        xcopy_param(&w.home.lu, &w.open.lu, 8, 0, 16),
        xcopy_param(&w.open.lu, &w.home.lu, 8, 0, 16),
    ] {
        check(
            &run(&w.map, &me, 0, &xcopy_cdb(p.len()), &p),
            (5, 0x0D, 0x02),
        );
    }
    assert!(read(&w.open.lu, 0, 64) == before);
}

/// A memory store whose writes stop at a gate until the test opens it.
struct GatedStore {
    mem: MemoryStore,
    armed: AtomicBool,
    entered: Mutex<Option<mpsc::Sender<()>>>,
    open: Mutex<Option<mpsc::Receiver<()>>>,
}

impl BackingStore for GatedStore {
    fn kind(&self) -> &'static str {
        "gated"
    }
    fn size(&self) -> u64 {
        self.mem.size()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.mem.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64, fua: bool) -> std::io::Result<()> {
        if self.armed.swap(false, Ordering::SeqCst) {
            if let Some(tx) = self.entered.lock().take() {
                let _ = tx.send(());
            }
            if let Some(rx) = self.open.lock().take() {
                let _ = rx.recv_timeout(Duration::from_secs(30));
            }
        }
        self.mem.write_at(buf, offset, fua)
    }
    fn try_read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.mem.read_at(buf, offset)
    }
    fn try_write_at(&self, buf: &[u8], offset: u64, fua: bool) -> std::io::Result<()> {
        if self.armed.load(Ordering::SeqCst) {
            // The armed write waits at the gate.
            return Err(std::io::Error::from(std::io::ErrorKind::WouldBlock));
        }
        self.mem.write_at(buf, offset, fua)
    }
    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn unmap(&self, offset: u64, len: u64) -> std::io::Result<()> {
        self.mem.unmap(offset, len)
    }
}

#[test]
fn offline_of_the_destination_waits_for_a_copy_in_flight() {
    let src = rig();
    let (entered_tx, entered_rx) = mpsc::channel();
    let (open_tx, open_rx) = mpsc::channel();
    let store = Arc::new(GatedStore {
        mem: MemoryStore::new(BLOCKS * u64::from(BS)),
        armed: AtomicBool::new(true),
        entered: Mutex::new(Some(entered_tx)),
        open: Mutex::new(Some(open_rx)),
    });
    let (dst, _) = lu_with(store, None);
    let map = Arc::new(LunMap {
        entries: vec![
            entry(0, &src.lu, Mask::Everyone),
            entry(1, &dst, Mask::Everyone),
        ],
        port_groups: Default::default(),
    });
    src.lu.backing().write_at(&pattern(6, 8), 0, false).unwrap();
    let p = xcopy_param(&src.lu, &dst, 8, 0, 0);
    let copy = {
        let map = map.clone();
        std::thread::spawn(move || run(&map, &nexus(1), 0, &xcopy_cdb(p.len()), &p).status)
    };
    entered_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the copy reaches the destination's store");
    let offline = {
        let dst = dst.clone();
        std::thread::spawn(move || dst.set_state(LuState::Offline))
    };
    // While the copy's write is held, OFFLINE must not complete.
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline {
        assert!(
            !offline.is_finished(),
            "OFFLINE completed while a copy was writing to the LU"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    open_tx.send(()).unwrap();
    assert_eq!(copy.join().unwrap(), ScsiStatus::Good);
    offline.join().unwrap().unwrap();
    assert_eq!(dst.state(), LuState::Offline);
    let mut b = vec![0u8; 8 * BS as usize];
    dst.backing().read_at(&mut b, 0).unwrap();
    assert_eq!(b, pattern(6, 8));
}

#[test]
fn nexus_loss_tells_the_others_only_when_it_released_a_reservation() {
    let r = rig();
    let (a, b, c) = (nexus(1), nexus(2), nexus(3));
    for n in [&a, &b, &c] {
        r.x(n, &TUR, &[]).good();
    }
    // Nexus 3 held nothing: its loss is nobody else's concern.
    r.map.nexus_lost(c.id);
    r.x(&a, &TUR, &[]).good();
    r.x(&b, &TUR, &[]).good();
    // Nexus 1 held RESERVE(6): nexus 2 is told once, and may now use the LU.
    r.x(&a, &[0x16, 0, 0, 0, 0, 0], &[]).good();
    assert_eq!(r.x(&b, &TUR, &[]).status, ScsiStatus::ReservationConflict);
    r.map.nexus_lost(a.id);
    check(&r.x(&b, &TUR, &[]), (6, 0x29, 0x07));
    r.x(&b, &TUR, &[]).good();
    r.x(&b, &write10(0, 1), &[0u8; 512]).good();
}
