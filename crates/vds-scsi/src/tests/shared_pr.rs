//! Persistent reservations shared by several gateways (docs/SCALEOUT.md "Persistent
//! reservations across gateways"): each gateway has its own `LogicalUnit` for the LUN, and a
//! manager that keeps the state by compare-and-set and hands every committed version to every
//! gateway's LU before the command completes. The manager here is the in-memory reference of
//! that contract (the RADOS one is tested end to end in `crates/vdsd/tests`); what is tested
//! is the LU's side: conflicts across gateways, recomputing after a lost race, unit attentions
//! on the other gateway's nexuses, refusals that change nothing.

use std::sync::atomic::AtomicUsize;
use std::sync::Weak;

use super::*;

/// Every gateway's LU, and whether that gateway misses notifications (it is stale).
type Peers = Arc<Mutex<Vec<(Weak<LogicalUnit>, Arc<AtomicBool>)>>>;

/// The shared record: the state every gateway installs.
#[derive(Default)]
struct Record {
    version: u64,
    state: Vec<u8>,
}

/// One gateway's manager: compare-and-set on the shared record, then every gateway's LU gets
/// the new version ("notify and wait for the acknowledgements").
struct Gateway {
    shared: Arc<Mutex<Record>>,
    lus: Peers,
    deaf: Arc<AtomicBool>,
    /// Races to lose: another gateway's change lands first (its state: one more registration).
    lose: AtomicUsize,
    fail: AtomicBool,
    persisted: AtomicUsize,
}

impl LuEvents for Gateway {
    fn failed(&self, _lu: uuid::Uuid, _error: &std::io::Error) {}
    fn persist_reservations(&self, _lu: uuid::Uuid, _state: &[u8]) -> std::io::Result<()> {
        self.persisted.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn share_reservations(&self, _lu: uuid::Uuid, change: &PrChange<'_>) -> SharedPr {
        if self.fail.load(Ordering::SeqCst) {
            return SharedPr::Failed(std::io::Error::other("the cluster cannot be reached"));
        }
        let mut rec = self.shared.lock();
        if self.lose.load(Ordering::SeqCst) > 0 {
            self.lose.fetch_sub(1, Ordering::SeqCst);
            // Someone else's version, which this gateway has not heard of yet.
            rec.version += 1;
            return SharedPr::Stale {
                version: rec.version,
                state: rec.state.clone(),
            };
        }
        if change.base != rec.version {
            return SharedPr::Stale {
                version: rec.version,
                state: rec.state.clone(),
            };
        }
        rec.version += 1;
        rec.state = change.state.to_vec();
        for (lu, deaf) in self.lus.lock().iter() {
            let Some(lu) = lu.upgrade() else { continue };
            if !deaf.load(Ordering::SeqCst) {
                lu.install_shared_reservations(rec.version, &rec.state, change.uas)
                    .expect("the state a LU made is readable");
            }
        }
        SharedPr::Committed {
            version: rec.version,
        }
    }
}

struct Cluster {
    maps: Vec<LunMap>,
    lus: Vec<Arc<LogicalUnit>>,
    gateways: Vec<Arc<Gateway>>,
    shared: Arc<Mutex<Record>>,
}

/// `n` gateways serving one LUN (one memory store, one LU per gateway).
fn cluster(n: usize) -> Cluster {
    let mem: Arc<dyn BackingStore> = Arc::new(MemoryStore::new(BLOCKS * u64::from(BS)));
    let id = uuid::Uuid::new_v4();
    let shared = Arc::new(Mutex::new(Record::default()));
    let all = Arc::new(Mutex::new(Vec::new()));
    let mut c = Cluster {
        maps: Vec::new(),
        lus: Vec::new(),
        gateways: Vec::new(),
        shared: shared.clone(),
    };
    for _ in 0..n {
        let g = Arc::new(Gateway {
            shared: shared.clone(),
            lus: all.clone(),
            deaf: Arc::new(AtomicBool::new(false)),
            lose: AtomicUsize::new(0),
            fail: AtomicBool::new(false),
            persisted: AtomicUsize::new(0),
        });
        let lu = Arc::new(LogicalUnit::new(LuConfig {
            id,
            backing: mem.clone(),
            block_size: BS,
            state: LuState::Online,
            pr_state: None,
            events: g.clone(),
            write_protected: false,
        }));
        all.lock().push((Arc::downgrade(&lu), g.deaf.clone()));
        c.maps.push(LunMap {
            entries: vec![LunEntry {
                number: 0,
                lu: lu.clone(),
                mask: Mask::Everyone,
            }],
            port_groups: Default::default(),
        });
        c.lus.push(lu);
        c.gateways.push(g);
    }
    c
}

/// Initiator `i` through gateway `g` (the gateway's own target port, as each has its TPG).
fn nexus_at(i: u64, g: usize) -> ItNexus {
    let mut n = nexus(i * 10 + g as u64);
    n.initiator_port = format!("iqn.2026-01.test:init{i},i,0x23000000000{i}");
    n.target_port = format!("iqn.2026-01.test:target,t,0x000{}", g + 1);
    n.relative_target_port = g as u16 + 1;
    n
}

impl Cluster {
    fn x(&self, g: usize, n: &ItNexus, cdb: &[u8], out: &[u8]) -> Reply {
        run(&self.maps[g], n, 0, cdb, out)
    }
    fn pr(&self, g: usize, n: &ItNexus, sa: u8, rtype: u8, key: u64, sakey: u64) -> Reply {
        let (c, p) = prout(sa, rtype, key, sakey, false);
        self.x(g, n, &c, &p)
    }
    fn keys(&self, g: usize, n: &ItNexus) -> (u32, Vec<u64>) {
        let d = self
            .x(g, n, &[0x5E, 0, 0, 0, 0, 0, 0, 0x10, 0, 0], &[])
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
}

#[test]
fn a_reservation_taken_through_one_gateway_conflicts_through_another() {
    let c = cluster(2);
    let (a, b) = (nexus_at(1, 0), nexus_at(2, 1));
    c.pr(0, &a, 0, 0, 0, 0xA).good();
    c.pr(1, &b, 0, 0, 0, 0xB).good();
    // Both gateways report both registrations, with one generation.
    assert_eq!(c.keys(0, &a), (2, vec![0xA, 0xB]));
    assert_eq!(c.keys(1, &b), (2, vec![0xA, 0xB]));
    // A reserves (exclusive access) through gateway 0: B, through gateway 1, is refused.
    c.pr(0, &a, 1, 3, 0xA, 0).good();
    assert_eq!(
        c.x(1, &b, &write10(0, 1), &[0; 512]).status,
        ScsiStatus::ReservationConflict
    );
    assert_eq!(
        c.x(1, &b, &read10(0, 1), &[]).status,
        ScsiStatus::ReservationConflict
    );
    // The same initiator through the other gateway is another I_T nexus, not the holder.
    let a_via_1 = nexus_at(1, 1);
    assert_eq!(
        c.x(1, &a_via_1, &write10(0, 1), &[0; 512]).status,
        ScsiStatus::ReservationConflict
    );
    c.x(0, &a, &write10(0, 1), &[0; 512]).good();
    // Reservations are the shared store's: nothing went to the local APTPL persistence.
    assert!(c
        .gateways
        .iter()
        .all(|g| g.persisted.load(Ordering::SeqCst) == 0));
    assert_eq!(c.shared.lock().version, 3);
}

#[test]
fn a_preempt_through_one_gateway_tells_the_preempted_nexus_on_another() {
    let c = cluster(2);
    let (a, b) = (nexus_at(1, 0), nexus_at(2, 1));
    c.pr(0, &a, 0, 0, 0, 0xA).good();
    c.pr(1, &b, 0, 0, 0, 0xB).good();
    c.pr(0, &a, 1, 1, 0xA, 0).good();
    // B's first command through gateway 1 makes its nexus known there.
    c.x(1, &b, &TUR, &[]).good();
    // B preempts A's registration and reservation through gateway 1.
    c.pr(1, &b, 4, 1, 0xB, 0xA).good();
    // A, on gateway 0, hears REGISTRATIONS PREEMPTED (06/2A/05) first.
    check(&c.x(0, &a, &TUR, &[]), (0x06, 0x2A, 0x05));
    assert_eq!(c.keys(0, &a).1, vec![0xB]);
    // A's write is now refused (it is no longer registered), B's accepted.
    assert_eq!(
        c.x(0, &a, &write10(0, 1), &[0; 512]).status,
        ScsiStatus::ReservationConflict
    );
    c.x(1, &b, &write10(0, 1), &[0; 512]).good();
}

#[test]
fn a_lost_race_is_computed_again_from_the_winners_state() {
    let c = cluster(2);
    let (a, b) = (nexus_at(1, 0), nexus_at(2, 1));
    c.pr(1, &b, 0, 0, 0, 0xB).good();
    // Gateway 0 loses two races: it installs the newer state each time and computes again.
    c.gateways[0].lose.store(2, Ordering::SeqCst);
    c.pr(0, &a, 0, 0, 0, 0xA).good();
    assert_eq!(c.gateways[0].lose.load(Ordering::SeqCst), 0);
    assert_eq!(c.keys(0, &a), (2, vec![0xB, 0xA]));
    assert_eq!(c.keys(1, &b), (2, vec![0xB, 0xA]));
    assert_eq!(c.shared.lock().version, 4);
    // Gateway 0 misses B's reservation (its state is stale): A's RESERVE, allowed by the old
    // state, loses the race, is computed again from B's and conflicts.
    c.gateways[0].deaf.store(true, Ordering::SeqCst);
    c.pr(1, &b, 1, 3, 0xB, 0).good();
    c.gateways[0].deaf.store(false, Ordering::SeqCst);
    assert_eq!(
        c.pr(0, &a, 1, 3, 0xA, 0).status,
        ScsiStatus::ReservationConflict
    );
    assert_eq!(
        c.lus[0].shared_reservations_version(),
        c.shared.lock().version
    );
    assert_eq!(
        c.x(0, &a, &read10(0, 1), &[]).status,
        ScsiStatus::ReservationConflict
    );
}

#[test]
fn always_losing_is_busy_and_an_unreachable_store_changes_nothing() {
    let c = cluster(2);
    let a = nexus_at(1, 0);
    c.gateways[0].lose.store(100, Ordering::SeqCst);
    assert_eq!(c.pr(0, &a, 0, 0, 0, 0xA).status, ScsiStatus::Busy);
    c.gateways[0].lose.store(0, Ordering::SeqCst);
    assert_eq!(c.keys(0, &a).1, Vec::<u64>::new());
    c.gateways[0].fail.store(true, Ordering::SeqCst);
    check(&c.pr(0, &a, 0, 0, 0, 0xA), (0x04, 0x44, 0x00));
    assert_eq!(c.keys(0, &a).1, Vec::<u64>::new());
    assert_eq!(c.keys(1, &nexus_at(2, 1)).1, Vec::<u64>::new());
}

#[test]
fn an_older_or_unreadable_shared_state_is_not_installed() {
    let c = cluster(1);
    let a = nexus_at(1, 0);
    c.pr(0, &a, 0, 0, 0, 0xA).good();
    let v = c.lus[0].shared_reservations_version();
    assert_eq!(c.lus[0].install_shared_reservations(v, &[], &[]), Ok(false));
    assert!(c.lus[0]
        .install_shared_reservations(v + 1, &[9, 9, 9], &[])
        .is_err());
    assert_eq!(c.keys(0, &a).1, vec![0xA]);
    // A newer empty state clears them.
    assert_eq!(
        c.lus[0].install_shared_reservations(v + 1, &[], &[]),
        Ok(true)
    );
    assert_eq!(c.keys(0, &a).1, Vec::<u64>::new());
}
