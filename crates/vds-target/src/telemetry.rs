//! Data-path telemetry (docs/INTERFACE.md "Metrics"): per-LUN command counts, bytes, errors
//! by sense key, latency histograms and commands in flight; logins by status; rejected PDUs;
//! task management functions; unit attentions reported.
//!
//! Why it costs the command path nothing shared: every counter a command touches belongs to
//! one connection ([`ConnTelemetry`], owned by the connection's task), is written only by that
//! task with a Relaxed load and store (no read-modify-write, no lock), and sits in a
//! [`LunCounters`] block aligned to its own cache lines, so no other core ever writes a line
//! a command writes. A scrape ([`Registry::snapshot`]) reads every live connection's blocks and
//! adds what finished connections left ([`Retired`]); the registry's locks are taken when a
//! connection starts or ends and at a scrape, never per command. Logins are not commands: they
//! are counted under a lock.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use uuid::Uuid;
use vds_dataplane::{DataView, Histogram, LoginTelemetry, LunTelemetry, PortTelemetry, Telemetry};
use vds_iscsi::codes::{name_in, reject, tmf, tmf_response, LoginStatus};
use vds_scsi::sense;

/// Adds `n` to a counter only one thread writes.
fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// `vds_dataplane::LATENCY_BUCKETS_SECONDS` in nanoseconds (a unit test keeps them equal).
const BUCKET_NANOS: [u64; 14] = [
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
];

/// A latency histogram one thread writes.
#[derive(Default)]
struct Hist {
    buckets: [AtomicU64; 15],
    sum_nanos: AtomicU64,
}

impl Hist {
    fn observe(&self, nanos: u64) {
        let i = BUCKET_NANOS
            .iter()
            .position(|&b| nanos <= b)
            .unwrap_or(BUCKET_NANOS.len());
        bump(&self.buckets[i], 1);
        bump(&self.sum_nanos, nanos);
    }

    fn read(&self) -> Histogram {
        let mut h = Histogram::default();
        for (o, b) in h.buckets.iter_mut().zip(self.buckets.iter()) {
            *o = get(b);
        }
        h.sum_nanos = get(&self.sum_nanos);
        h
    }
}

/// What kind of command a CDB is, for the per-LUN counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Read,
    Write,
    Flush,
    Other,
}

impl Op {
    pub fn of(cdb: &[u8]) -> Op {
        match cdb.first() {
            Some(0x08 | 0x28 | 0xA8 | 0x88) => Op::Read,
            Some(0x0A | 0x2A | 0xAA | 0x8A | 0x2E | 0x8E) => Op::Write,
            Some(0x35 | 0x91) => Op::Flush,
            _ => Op::Other,
        }
    }
}

/// Unit attentions by ASC/ASCQ, with their names (vds_scsi::sense); others are `other`.
const UNIT_ATTENTIONS: &[(sense::Asc, &str)] = &[
    (
        sense::NOT_READY_TO_READY_CHANGE,
        "not_ready_to_ready_change",
    ),
    (sense::POWER_ON_RESET, "power_on_reset"),
    (
        sense::BUS_DEVICE_RESET_FUNCTION_OCCURRED,
        "bus_device_reset_function_occurred",
    ),
    (sense::I_T_NEXUS_LOSS_OCCURRED, "i_t_nexus_loss_occurred"),
    (sense::MODE_PARAMETERS_CHANGED, "mode_parameters_changed"),
    (sense::RESERVATIONS_PREEMPTED, "reservations_preempted"),
    (sense::RESERVATIONS_RELEASED, "reservations_released"),
    (sense::REGISTRATIONS_PREEMPTED, "registrations_preempted"),
    (
        sense::ASYMMETRIC_ACCESS_STATE_CHANGED,
        "asymmetric_access_state_changed",
    ),
    (
        sense::CAPACITY_DATA_HAS_CHANGED,
        "capacity_data_has_changed",
    ),
    (
        sense::REPORTED_LUNS_DATA_HAS_CHANGED,
        "reported_luns_data_has_changed",
    ),
];
const UA_SLOTS: usize = UNIT_ATTENTIONS.len() + 1;

/// Sense key, ASC and ASCQ of fixed (70h/71h) or descriptor (72h/73h) sense data.
pub(crate) fn sense_fields(s: &[u8]) -> Option<(u8, u8, u8)> {
    match s.first()? & 0x7F {
        0x70 | 0x71 => Some((
            s.get(2)? & 0x0F,
            s.get(12).copied().unwrap_or(0),
            s.get(13).copied().unwrap_or(0),
        )),
        0x72 | 0x73 => Some((s.get(1)? & 0x0F, *s.get(2)?, *s.get(3)?)),
        _ => None,
    }
}

fn ua_slot(asc: u8, ascq: u8) -> usize {
    UNIT_ATTENTIONS
        .iter()
        .position(|(a, _)| a.0 == asc && a.1 == ascq)
        .unwrap_or(UNIT_ATTENTIONS.len())
}

fn ua_name(slot: usize) -> &'static str {
    UNIT_ATTENTIONS
        .get(slot)
        .map(|(_, n)| *n)
        .unwrap_or("other")
}

/// SCSI status CHECK CONDITION.
const CHECK_CONDITION: u8 = 0x02;

/// One connection's counters of one logical unit, on cache lines of its own.
#[repr(align(128))]
pub(crate) struct LunCounters {
    lun: Uuid,
    /// By [`Op`] as index.
    commands: [AtomicU64; 4],
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
    errors: [AtomicU64; 16],
    started: AtomicU64,
    finished: AtomicU64,
    /// Read, write, flush.
    latency: [Hist; 3],
}

impl LunCounters {
    fn new(lun: Uuid) -> Self {
        LunCounters {
            lun,
            commands: Default::default(),
            bytes_read: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            errors: Default::default(),
            started: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            latency: Default::default(),
        }
    }

    fn read(&self) -> LunTelemetry {
        let mut t = LunTelemetry {
            lun: self.lun,
            reads: get(&self.commands[0]),
            writes: get(&self.commands[1]),
            flushes: get(&self.commands[2]),
            others: get(&self.commands[3]),
            bytes_read: get(&self.bytes_read),
            bytes_written: get(&self.bytes_written),
            in_flight: get(&self.started).saturating_sub(get(&self.finished)),
            read_latency: self.latency[0].read(),
            write_latency: self.latency[1].read(),
            flush_latency: self.latency[2].read(),
            ..Default::default()
        };
        for (o, e) in t.errors_by_sense_key.iter_mut().zip(self.errors.iter()) {
            *o = get(e);
        }
        t
    }
}

/// Adds `b` into `a` (same LUN).
fn add_lun(a: &mut LunTelemetry, b: &LunTelemetry) {
    a.reads += b.reads;
    a.writes += b.writes;
    a.flushes += b.flushes;
    a.others += b.others;
    a.bytes_read += b.bytes_read;
    a.bytes_written += b.bytes_written;
    for (x, y) in a
        .errors_by_sense_key
        .iter_mut()
        .zip(b.errors_by_sense_key.iter())
    {
        *x += y;
    }
    a.in_flight += b.in_flight;
    a.read_latency.add(&b.read_latency);
    a.write_latency.add(&b.write_latency);
    a.flush_latency.add(&b.flush_latency);
}

/// Response index of the TMF table: position in `tmf_response::NAMES`.
const TMF_RESPONSES: usize = tmf_response::NAMES.len() + 1;
/// Functions 0..=8 (0 and unknown ones count as slot 0, `other`).
const TMF_FUNCTIONS: usize = 9;

/// The counters of one connection that are not per LUN, and its LUN blocks as the scraper
/// sees them.
pub(crate) struct ConnCounters {
    luns: ArcSwap<Vec<Arc<LunCounters>>>,
    rejects: [AtomicU64; 16],
    tmfs: [[AtomicU64; TMF_RESPONSES]; TMF_FUNCTIONS],
    unit_attentions: [AtomicU64; UA_SLOTS],
}

impl Default for ConnCounters {
    fn default() -> Self {
        ConnCounters {
            luns: ArcSwap::from_pointee(Vec::new()),
            rejects: Default::default(),
            tmfs: Default::default(),
            unit_attentions: Default::default(),
        }
    }
}

/// What finished connections counted, kept until their LUN leaves the configuration.
#[derive(Default)]
struct Retired {
    luns: HashMap<Uuid, LunTelemetry>,
    rejects: [u64; 16],
    tmfs: [[u64; TMF_RESPONSES]; TMF_FUNCTIONS],
    unit_attentions: [u64; UA_SLOTS],
}

impl Retired {
    /// Adds connection `c`'s counts; `ended`: the connection is gone.
    fn add(&mut self, c: &ConnCounters, ended: bool) {
        for l in c.luns.load().iter() {
            let mut t = l.read();
            if ended {
                // An ended connection answers nothing more: nothing of it is in flight.
                t.in_flight = 0;
            }
            add_lun(
                self.luns.entry(t.lun).or_insert(LunTelemetry {
                    lun: t.lun,
                    ..Default::default()
                }),
                &t,
            );
        }
        for (a, b) in self.rejects.iter_mut().zip(c.rejects.iter()) {
            *a += get(b);
        }
        for (ra, rb) in self.tmfs.iter_mut().zip(c.tmfs.iter()) {
            for (a, b) in ra.iter_mut().zip(rb.iter()) {
                *a += get(b);
            }
        }
        for (a, b) in self
            .unit_attentions
            .iter_mut()
            .zip(c.unit_attentions.iter())
        {
            *a += get(b);
        }
    }
}

/// Key of the login counts: target (if known), portal, status.
type LoginKey = (Option<Uuid>, Uuid, u16);

/// Every connection's counters, and what finished ones left.
#[derive(Default)]
pub(crate) struct Registry {
    /// Live connections. Lock order: `conns`, then `retired`.
    conns: Mutex<HashMap<u64, Arc<ConnCounters>>>,
    retired: Mutex<Retired>,
    logins: Mutex<BTreeMap<LoginKey, u64>>,
}

/// A command's telemetry from its hand-over to its answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Began {
    slot: u32,
    op: Op,
    t0: Instant,
}

impl Registry {
    /// A login through `portal` ended with `status` (target: the one named, if it exists).
    pub fn login(&self, target: Option<Uuid>, portal: Uuid, status: LoginStatus) {
        *self
            .logins
            .lock()
            .entry((target, portal, status.0))
            .or_insert(0) += 1;
    }

    /// Counters for a new connection; dropping the handle folds them into the totals.
    pub fn connection(self: &Arc<Self>, conn_id: u64) -> ConnTelemetry {
        let shared = Arc::new(ConnCounters::default());
        self.conns.lock().insert(conn_id, shared.clone());
        ConnTelemetry {
            shared,
            reg: self.clone(),
            conn_id,
            map: 0,
            by_field: Vec::new(),
            local: Vec::new(),
            unsettled: Vec::new(),
        }
    }

    /// Everything merged now. Series of LUNs, targets and portals not in `view` are left
    /// out (and a removed LUN's retired counts dropped); `sessions` are (target, portal) of
    /// every logged-in session, `portal_conns` the open connections by portal.
    pub fn snapshot(
        &self,
        view: &DataView,
        sessions: &[(Uuid, Uuid)],
        portal_conns: Vec<(Uuid, u64)>,
    ) -> Telemetry {
        let luns_now: HashSet<Uuid> = view
            .targets
            .iter()
            .flat_map(|t| t.luns.entries.iter().map(|e| e.lu.id()))
            .collect();
        let targets: HashSet<Uuid> = view.targets.iter().map(|t| t.id).collect();
        let portals: HashSet<Uuid> = view.portals.iter().map(|p| p.id).collect();

        let mut all = Retired::default();
        {
            let conns = self.conns.lock();
            let mut retired = self.retired.lock();
            retired.luns.retain(|id, _| luns_now.contains(id));
            all.luns = retired.luns.clone();
            all.rejects = retired.rejects;
            all.tmfs = retired.tmfs;
            all.unit_attentions = retired.unit_attentions;
            drop(retired);
            for c in conns.values() {
                all.add(c, false);
            }
        }
        let mut luns: Vec<LunTelemetry> = all
            .luns
            .into_values()
            .filter(|l| luns_now.contains(&l.lun))
            .collect();
        luns.sort_by_key(|l| l.lun);

        let mut per_port: BTreeMap<(Uuid, Uuid), u64> = BTreeMap::new();
        for (t, p) in sessions {
            *per_port.entry((*t, *p)).or_insert(0) += 1;
        }
        let ports = per_port
            .into_iter()
            .map(|((target, portal), sessions)| PortTelemetry {
                target,
                portal,
                sessions,
            })
            .collect();

        let logins = {
            let mut l = self.logins.lock();
            l.retain(|(t, p, _), _| portals.contains(p) && t.is_none_or(|t| targets.contains(&t)));
            l.iter()
                .map(|(&(target, portal, status), &count)| LoginTelemetry {
                    target,
                    portal,
                    status,
                    status_name: LoginStatus(status).name(),
                    count,
                })
                .collect()
        };
        let rejects = reject::NAMES
            .iter()
            .map(|&(code, name)| (name, all.rejects[usize::from(code & 0x0F)]))
            .collect();
        let mut tmfs = Vec::new();
        for (f, row) in all.tmfs.iter().enumerate() {
            for (r, &n) in row.iter().enumerate() {
                if n == 0 {
                    continue;
                }
                let fname = if f == 0 {
                    "other"
                } else {
                    name_in(tmf::NAMES, f as u8)
                };
                let rname = tmf_response::NAMES.get(r).map(|x| x.1).unwrap_or("other");
                tmfs.push((fname, rname, n));
            }
        }
        let unit_attentions = (0..UA_SLOTS)
            .map(|i| (ua_name(i), all.unit_attentions[i]))
            .collect();
        let mut portal_connections: Vec<(Uuid, u64)> = portal_conns;
        portal_connections.retain(|(p, _)| portals.contains(p));
        portal_connections.sort();
        Telemetry {
            luns,
            ports,
            portal_connections,
            logins,
            rejects,
            tmfs,
            unit_attentions,
        }
    }
}

/// A connection task's telemetry: its counters and the look-up from LUN field to its block.
pub(crate) struct ConnTelemetry {
    shared: Arc<ConnCounters>,
    reg: Arc<Registry>,
    conn_id: u64,
    /// The LUN map `by_field` was resolved on (its address; 0: none yet).
    map: usize,
    /// LUN field → index in `local`, for the current map.
    by_field: Vec<(u64, u32)>,
    /// This connection's blocks, the same list the scraper sees.
    local: Vec<Arc<LunCounters>>,
    /// Commands answered whose time is not yet taken: [`ConnTelemetry::settle`] reads the
    /// clock once for all of them.
    unsettled: Vec<Began>,
}

impl ConnTelemetry {
    /// The block of the LU `lun_field` names in `map` for `initiator`, made on first use.
    fn slot(
        &mut self,
        map: &Arc<vds_scsi::LunMap>,
        initiator: &str,
        lun_field: u64,
    ) -> Option<u32> {
        let at = Arc::as_ptr(map) as usize;
        if at != self.map {
            self.map = at;
            self.by_field.clear();
        }
        if let Some(&(_, i)) = self.by_field.iter().find(|(f, _)| *f == lun_field) {
            return Some(i);
        }
        let lu = map.lookup(initiator, vds_scsi::decode_lun(lun_field.to_be_bytes()))?;
        let id = lu.id();
        let i = match self.local.iter().position(|c| c.lun == id) {
            Some(i) => i,
            None => {
                self.local.push(Arc::new(LunCounters::new(id)));
                // The scraper's copy; made only when the connection first reaches an LU.
                self.shared.luns.store(Arc::new(self.local.clone()));
                self.local.len() - 1
            }
        } as u32;
        self.by_field.push((lun_field, i));
        Some(i)
    }

    /// A command is handed to its LU; `None` when the LUN names no LU (nothing to count).
    /// `t0` is when the socket read that completed it (its last PDU) returned: one clock
    /// reading the transport takes for the whole read, not one per command.
    pub fn begin(
        &mut self,
        map: &Arc<vds_scsi::LunMap>,
        initiator: &str,
        lun_field: u64,
        cdb: &[u8],
        t0: Instant,
    ) -> Option<Began> {
        let slot = self.slot(map, initiator, lun_field)?;
        bump(&self.local[slot as usize].started, 1);
        Some(Began {
            slot,
            op: Op::of(cdb),
            t0,
        })
    }

    /// The command `b` was answered with `status` and `sense`, having sent `read` Data-In
    /// bytes and received `written` Data-Out bytes. Its time is taken by the next
    /// [`ConnTelemetry::settle`].
    pub fn end(&mut self, b: Began, status: u8, sense: Option<&[u8]>, read: usize, written: usize) {
        let c = &self.local[b.slot as usize];
        bump(&c.finished, 1);
        bump(&c.commands[b.op as usize], 1);
        if read != 0 {
            bump(&c.bytes_read, read as u64);
        }
        if written != 0 {
            bump(&c.bytes_written, written as u64);
        }
        if status == CHECK_CONDITION {
            self.sense(sense, Some(c));
        }
        if b.op != Op::Other {
            self.unsettled.push(b);
        }
    }

    /// Times the commands answered since the last call with one clock reading. The transport
    /// calls it once per turn of its loop, after the turn's answers were queued and before
    /// they are written to the socket, so a command's time ends when its answer leaves, and
    /// an initiator that has its answer finds it counted.
    pub fn settle(&mut self) {
        if self.unsettled.is_empty() {
            return;
        }
        let now = Instant::now();
        for b in self.unsettled.drain(..) {
            let nanos = now
                .saturating_duration_since(b.t0)
                .as_nanos()
                .min(u128::from(u64::MAX)) as u64;
            let c = &self.local[b.slot as usize];
            match b.op {
                Op::Read => c.latency[0].observe(nanos),
                Op::Write => c.latency[1].observe(nanos),
                Op::Flush => c.latency[2].observe(nanos),
                Op::Other => {}
            }
        }
    }

    /// A command answered CHECK CONDITION before reaching an LU (an unknown LUN): only its
    /// unit attention, if it reports one, is counted.
    pub fn unrouted(&self, status: u8, sense: Option<&[u8]>) {
        if status == CHECK_CONDITION {
            self.sense(sense, None);
        }
    }

    fn sense(&self, sense: Option<&[u8]>, lun: Option<&LunCounters>) {
        let (key, asc, ascq) = sense.and_then(sense_fields).unwrap_or((0, 0, 0));
        if let Some(c) = lun {
            bump(&c.errors[usize::from(key)], 1);
        }
        if key == sense::key::UNIT_ATTENTION {
            bump(&self.shared.unit_attentions[ua_slot(asc, ascq)], 1);
        }
    }

    /// The connection sent a Reject with `reason`.
    pub fn reject(&self, reason: u8) {
        bump(&self.shared.rejects[usize::from(reason & 0x0F)], 1);
    }

    /// A task management function was answered.
    pub fn tmf(&self, function: u8, response: u8) {
        let f = if usize::from(function) < TMF_FUNCTIONS {
            usize::from(function)
        } else {
            0
        };
        let r = tmf_response::NAMES
            .iter()
            .position(|(c, _)| *c == response)
            .unwrap_or(TMF_RESPONSES - 1);
        bump(&self.shared.tmfs[f][r], 1);
    }
}

impl Drop for ConnTelemetry {
    fn drop(&mut self) {
        self.settle();
        let mut conns = self.reg.conns.lock();
        conns.remove(&self.conn_id);
        self.reg.retired.lock().add(&self.shared, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vds_dataplane::{TargetView, LATENCY_BUCKETS_SECONDS};
    use vds_scsi::{LogicalUnit, LuConfig, LuEvents, LuState, LunEntry, LunMap, Mask};

    struct NoEvents;
    impl LuEvents for NoEvents {
        fn failed(&self, _: Uuid, _: &std::io::Error) {}
        fn persist_reservations(&self, _: Uuid, _: &[u8]) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lu() -> Arc<LogicalUnit> {
        Arc::new(LogicalUnit::new(LuConfig {
            id: Uuid::new_v4(),
            backing: Arc::new(vds_backstore::MemoryStore::new(1 << 20)),
            block_size: 512,
            state: LuState::Online,
            pr_state: None,
            events: Arc::new(NoEvents),
            write_protected: false,
        }))
    }

    fn view(luns: &[Arc<LogicalUnit>]) -> (DataView, Arc<LunMap>) {
        let map = Arc::new(LunMap {
            entries: luns
                .iter()
                .enumerate()
                .map(|(i, lu)| LunEntry {
                    number: i as u64,
                    lu: lu.clone(),
                    mask: Mask::Everyone,
                })
                .collect(),
            port_groups: Default::default(),
        });
        let v = DataView {
            targets: vec![TargetView {
                id: Uuid::from_u128(1),
                iqn: "iqn.2026-01.test:t".into(),
                alias: String::new(),
                chap: Default::default(),
                portal_groups: Vec::new(),
                luns: map.clone(),
            }],
            portals: Vec::new(),
        };
        (v, map)
    }

    fn field(n: u64) -> u64 {
        u64::from_be_bytes(vds_scsi::encode_lun(n))
    }

    #[test]
    fn bucket_bounds_are_the_published_ones() {
        for (n, s) in BUCKET_NANOS.iter().zip(LATENCY_BUCKETS_SECONDS.iter()) {
            assert_eq!(*n, (s * 1e9).round() as u64);
        }
        let h = Hist::default();
        for nanos in [0, 50_000, 50_001, 999_999_999, 1_000_000_000, 1_000_000_001] {
            h.observe(nanos);
        }
        let r = h.read();
        assert_eq!(r.buckets[0], 2);
        assert_eq!(r.buckets[1], 1);
        assert_eq!(r.buckets[13], 2);
        assert_eq!(r.buckets[14], 1);
        assert_eq!(r.count(), 6);
        assert_eq!(
            r.sum_nanos,
            50_000 + 50_001 + 999_999_999 + 1_000_000_000 + 1_000_000_001
        );
    }

    #[test]
    fn sense_fields_of_both_formats() {
        let fixed = sense::Sense::new(sense::key::UNIT_ATTENTION, sense::POWER_ON_RESET);
        assert_eq!(sense_fields(&fixed.encode(false)), Some((6, 0x29, 0)));
        assert_eq!(sense_fields(&fixed.encode(true)), Some((6, 0x29, 0)));
        assert_eq!(sense_fields(&[]), None);
        assert_eq!(sense_fields(&[0x7f]), None);
    }

    /// Two connections count on the same LU; one ends. The scrape is the exact sum, and a
    /// LUN gone from the configuration takes its series (live and retired) with it.
    #[test]
    fn connections_merge_on_scrape_and_a_removed_lun_goes_away() {
        let reg = Arc::new(Registry::default());
        let (a, b) = (lu(), lu());
        let (v, map) = view(&[a.clone(), b.clone()]);
        let mut c1 = reg.connection(1);
        let mut c2 = reg.connection(2);
        let read = [0x28u8, 0, 0, 0, 0, 0, 0, 0, 8, 0];
        let write = [0x2Au8, 0, 0, 0, 0, 0, 0, 0, 8, 0];
        let sync = [0x35u8, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let k = c1
            .begin(&map, "iqn.i", field(0), &read, Instant::now())
            .unwrap();
        c1.end(k, 0, None, 4096, 0);
        let k = c2
            .begin(&map, "iqn.i", field(0), &write, Instant::now())
            .unwrap();
        c2.end(k, 0, None, 0, 4096);
        let ua = sense::Sense::new(sense::key::UNIT_ATTENTION, sense::POWER_ON_RESET).encode(false);
        let k = c2
            .begin(&map, "iqn.i", field(0), &read, Instant::now())
            .unwrap();
        c2.end(k, CHECK_CONDITION, Some(&ua), 0, 0);
        let k = c2
            .begin(&map, "iqn.i", field(1), &sync, Instant::now())
            .unwrap();
        c2.end(k, 0, None, 0, 0);
        // One still in flight on b.
        let _open = c1
            .begin(&map, "iqn.i", field(1), &write, Instant::now())
            .unwrap();
        // A LUN that names no LU is not counted per LUN.
        assert!(c1
            .begin(&map, "iqn.i", field(7), &read, Instant::now())
            .is_none());
        c1.reject(reject::PROTOCOL_ERROR);
        c2.tmf(tmf::LOGICAL_UNIT_RESET, tmf_response::FUNCTION_COMPLETE);
        c2.tmf(tmf::ABORT_TASK, tmf_response::TASK_DOES_NOT_EXIST);
        drop(c2);
        // c1's answered read is timed by its settle (c2's by its drop).
        c1.settle();

        let t = reg.snapshot(&v, &[], Vec::new());
        let la = t.luns.iter().find(|l| l.lun == a.id()).unwrap();
        assert_eq!((la.reads, la.writes, la.flushes, la.others), (2, 1, 0, 0));
        assert_eq!((la.bytes_read, la.bytes_written), (4096, 4096));
        assert_eq!(la.errors_by_sense_key[6], 1);
        assert_eq!(la.errors_by_sense_key.iter().sum::<u64>(), 1);
        assert_eq!(la.read_latency.count(), 2);
        assert_eq!(la.write_latency.count(), 1);
        assert_eq!(la.in_flight, 0);
        let lb = t.luns.iter().find(|l| l.lun == b.id()).unwrap();
        assert_eq!(
            (lb.flushes, lb.flush_latency.count(), lb.in_flight),
            (1, 1, 1)
        );
        assert!(t.unit_attentions.contains(&("power_on_reset", 1)));
        assert!(t.rejects.contains(&("protocol_error", 1)));
        assert_eq!(t.rejects.iter().map(|r| r.1).sum::<u64>(), 1);
        let mut tmfs = t.tmfs.clone();
        tmfs.sort();
        assert_eq!(
            tmfs,
            vec![
                ("abort_task", "task_does_not_exist", 1),
                ("logical_unit_reset", "function_complete", 1)
            ]
        );

        // LUN a leaves the configuration: its series go, the retired ones too.
        let (v2, _) = view(std::slice::from_ref(&b));
        let t = reg.snapshot(&v2, &[], Vec::new());
        assert_eq!(t.luns.len(), 1);
        assert_eq!(t.luns[0].lun, b.id());
        let t = reg.snapshot(&v, &[], Vec::new());
        let la = t.luns.iter().find(|l| l.lun == a.id()).unwrap();
        assert_eq!(la.reads, 1, "only the live connection's count is left");
        drop(c1);
    }

    #[test]
    fn logins_are_counted_by_status_and_bounded_by_the_configuration() {
        let reg = Registry::default();
        let (mut v, _) = view(&[]);
        let portal = Uuid::from_u128(9);
        v.portals.push(vds_dataplane::PortalView {
            id: portal,
            addr: "127.0.0.1:3260".parse().unwrap(),
            online: true,
            advertise: None,
        });
        let t = Some(Uuid::from_u128(1));
        reg.login(t, portal, LoginStatus::SUCCESS);
        reg.login(t, portal, LoginStatus::AUTHENTICATION_FAILURE);
        reg.login(t, portal, LoginStatus::AUTHENTICATION_FAILURE);
        reg.login(None, portal, LoginStatus::TARGET_NOT_FOUND);
        reg.login(Some(Uuid::from_u128(2)), portal, LoginStatus::SUCCESS);
        reg.login(t, Uuid::from_u128(10), LoginStatus::SUCCESS);
        let s = reg.snapshot(&v, &[(Uuid::from_u128(1), portal)], vec![(portal, 3)]);
        let got: Vec<_> = s
            .logins
            .iter()
            .map(|l| (l.target, l.status_name, l.count))
            .collect();
        assert_eq!(
            got,
            vec![
                (None, "target_not_found", 1),
                (t, "success", 1),
                (t, "authentication_failure", 2)
            ]
        );
        assert_eq!(s.ports.len(), 1);
        assert_eq!(s.ports[0].sessions, 1);
        assert_eq!(s.portal_connections, vec![(portal, 3)]);
    }
}
