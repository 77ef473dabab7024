//! One logical unit: the command engine for a LUN.
//!
//! Per command: look the opcode up in the table ([`crate::ops`]), check the CDB against its
//! usage mask, report a pending unit attention, gate on the LU status, check reservations, then
//! run the handler. Status and unit attentions are atomics so the read/write path takes no lock
//! that all commands share exclusively; so is the access state through each nexus's target port
//! group (ALUA, BEHAVIOUR.md §14), kept per nexus so the gate is one load.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, RwLock};
use vds_backstore::BackingStore;

use crate::cdb::{Cdb, Fail, Res};
use crate::ops::{self, Access, Gate, Lookup};
use crate::sense::{self, key, Asc, Sense};
use crate::spc::pr::PrState;
use crate::spc::xcopy::CopyResults;
use crate::{
    AccessState, AccessStates, ItNexus, LuEvents, LuState, Mode, ScsiCommand, ScsiOutcome,
    ScsiStatus, WouldBlock,
};

/// What a logical unit is made from.
pub struct LuConfig {
    /// The VDS LUN id; VPD 83 designators and the serial number derive from it (stable across
    /// restarts).
    pub id: uuid::Uuid,
    pub backing: Arc<dyn BackingStore>,
    /// Logical block size in bytes (512 or 4096).
    pub block_size: u32,
    pub state: LuState,
    /// Opaque persistent-reservation state saved through [`LuEvents::persist_reservations`].
    pub pr_state: Option<Vec<u8>>,
    pub events: Arc<dyn LuEvents>,
    /// The LUN is read-only (the provider's `read_only` property): MODE SENSE reports WP and
    /// every command that would change the medium ends with DATA PROTECT / WRITE PROTECTED
    /// (07/27/00). Changed later with [`LogicalUnit::set_write_protected`].
    pub write_protected: bool,
}

/// What the provider's hints (BEHAVIOUR.md §14 rule 8) change on the data path; the write-back
/// cache itself is the caching page's WCE ([`LogicalUnit::set_write_cache`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LuHints {
    /// Every write reaches stable storage before GOOD, as if it carried FUA, whatever WCE says.
    pub write_through: bool,
    /// Every write is read back and compared; a mismatch is MEDIUM ERROR / WRITE ERROR.
    pub read_back_verify: bool,
    /// Optimal transfer size and alignment in bytes for reads and for writes (0: not given);
    /// multiples of the block size, reported in VPD B0.
    pub optimal_read_size: u32,
    pub optimal_read_alignment: u32,
    pub optimal_write_size: u32,
    pub optimal_write_alignment: u32,
}

/// Most unit attentions kept per nexus; older ones are dropped (SPC-4 allows coalescing).
const MAX_UA: usize = 8;

/// What the LU remembers about one I_T nexus.
pub(crate) struct NexusState {
    pub initiator_port: String,
    pub target_port: String,
    pub relative_target_port: u16,
    /// The ALUA target port group the nexus came through.
    target_port_group: u16,
    /// [`AccessState::code`] of the LU through `target_port_group`: kept equal to the LU's
    /// access states by [`LogicalUnit::set_access_states`], read by every command's gate.
    access: AtomicU8,
    ua_pending: AtomicBool,
    ua: Mutex<Vec<Asc>>,
}

impl NexusState {
    pub(crate) fn push_ua(&self, asc: Asc) {
        let mut q = self.ua.lock();
        if !q.contains(&asc) {
            if q.len() == MAX_UA {
                q.remove(0);
            }
            q.push(asc);
        }
        self.ua_pending.store(true, Ordering::Release);
    }

    /// The LU's access state through this nexus's target port.
    pub(crate) fn access_state(&self) -> AccessState {
        AccessState::from_code(self.access.load(Ordering::Acquire))
            .unwrap_or(AccessState::Unavailable)
    }

    fn pop_ua(&self) -> Option<Asc> {
        if !self.ua_pending.load(Ordering::Acquire) {
            return None;
        }
        let mut q = self.ua.lock();
        let first = if q.is_empty() {
            None
        } else {
            Some(q.remove(0))
        };
        if q.is_empty() {
            self.ua_pending.store(false, Ordering::Release);
        }
        first
    }

    pub(crate) fn same_port(&self, initiator_port: &str, target_port: &str) -> bool {
        self.initiator_port.eq_ignore_ascii_case(initiator_port)
            && self.target_port.eq_ignore_ascii_case(target_port)
    }
}

/// Reservation state: SPC-2 RESERVE/RELEASE and SPC-4 persistent reservations.
pub(crate) struct Reservations {
    /// Nexus id holding a RESERVE(6)/(10) reservation.
    pub spc2: Option<u64>,
    pub pr: PrState,
    /// The version of the shared state `pr` is, when several gateways share it
    /// ([`crate::LuEvents::share_reservations`]); 0 otherwise.
    pub shared_version: u64,
}

/// Mode page values that can be changed (MODE SELECT), shared by every nexus.
pub(crate) struct ModeState {
    /// Caching page WCE: write-back cache enabled (otherwise every write is FUA).
    pub wce: AtomicBool,
    /// Control page D_SENSE: descriptor-format sense.
    pub d_sense: AtomicBool,
    /// Control page SWP: software write protect.
    pub swp: AtomicBool,
    /// The write-through hint: every write is FUA whatever WCE says (read on every write).
    pub write_through: AtomicBool,
    /// The read-back-verify hint (read on every write).
    pub verify: AtomicBool,
    /// Every hint, for the pages that report them.
    pub hints: Mutex<LuHints>,
}

/// A command being executed, as handlers see it.
pub(crate) struct Cmd<'a> {
    pub nexus: &'a ItNexus,
    /// The LUN map the command came through, when it came through one: the only LUs that
    /// EXTENDED COPY may name besides this one (those of the map that `nexus` may see).
    pub scope: Option<&'a crate::LunMap>,
    pub ns: &'a Arc<NexusState>,
    pub cdb: Cdb<'a>,
    pub data_out: &'a [u8],
    pub data_in: &'a mut Vec<u8>,
    /// Whether the handler may wait for the backing store (see [`Mode`]).
    pub mode: Mode,
    /// Started by [`crate::LunMap::start`]: a handler whose table row says `aio` hands its
    /// store operation back ([`Fail::Pending`]) when the store has asynchronous I/O.
    pub aio: bool,
}

impl Cmd<'_> {
    /// The store's asynchronous I/O, when this command may hand its operation back to it.
    pub(crate) fn aio_store<'s>(
        &self,
        lu: &'s LogicalUnit,
    ) -> Option<&'s dyn vds_backstore::AioStore> {
        if self.aio {
            lu.backing().aio()
        } else {
            None
        }
    }
}

/// Why [`LogicalUnit::execute_any`] did not answer at once.
pub(crate) enum Deferred {
    /// See [`WouldBlock`].
    WouldBlock,
    /// The command waits for this store operation ([`crate::Pending`]); it holds its place
    /// among the commands in flight until [`LogicalUnit::leave_inflight`].
    Pending(crate::cdb::StoreIo),
}

/// The engine for one LUN. Shared (`Arc`) by every target that maps it.
pub struct LogicalUnit {
    id: uuid::Uuid,
    backing: Arc<dyn BackingStore>,
    block_size: u32,
    block_shift: u32,
    events: Arc<dyn LuEvents>,
    state: AtomicU8,
    /// Commands past the status gate and not finished; `set_state` waits for zero.
    inflight: Inflight,
    /// Serialises `set_state` calls.
    transition: Mutex<()>,
    nexuses: RwLock<HashMap<u64, Arc<NexusState>>>,
    /// Fast path: `true` while any reservation (SPC-2 or persistent) restricts access.
    pub(crate) res_active: AtomicBool,
    pub(crate) res: Mutex<Reservations>,
    /// Orders this LU's PERSISTENT RESERVE OUT (and RESERVE) through the storing of its state.
    pub(crate) persist_order: crate::spc::pr::PersistOrder,
    pub(crate) mode: ModeState,
    /// The store's [`BackingStore::resized_elsewhere`] count last reported as CAPACITY DATA
    /// HAS CHANGED.
    resized_seen: AtomicU64,
    /// Write protection set by the provider (not by MODE SELECT: that is `mode.swp`).
    write_protected: AtomicBool,
    /// COMPARE AND WRITE and ORWRITE are atomic with respect to each other.
    pub(crate) atomic_lock: Mutex<()>,
    pub(crate) copy_results: Mutex<CopyResults>,
    naa: [u8; 16],
    /// The access state through each target port group (BEHAVIOUR.md §14), set by the
    /// provider with [`LogicalUnit::set_access_states`].
    alua: RwLock<Arc<AccessStates>>,
    /// The target port groups whose state a change after the first setting altered (REPORT
    /// TARGET PORT GROUPS status code 02h); written under `alua`'s write lock.
    alua_altered: Mutex<BTreeSet<u16>>,
}

fn state_code(s: LuState) -> u8 {
    match s {
        LuState::Online => 0,
        LuState::NotReady => 1,
        LuState::Offline => 2,
        LuState::Failed => 3,
    }
}

fn state_from(c: u8) -> LuState {
    match c {
        0 => LuState::Online,
        1 => LuState::NotReady,
        2 => LuState::Offline,
        _ => LuState::Failed,
    }
}

/// The count of commands in flight, and a way to wait until it is zero without polling.
///
/// The command path pays two atomic operations and, when the count drops to zero, one load
/// of `waiting`; only while someone drains does it take `lock` to wake them. The drainer sets
/// `waiting` before it looks at the count, and a finishing command drops the count before it
/// looks at `waiting` (both sequentially consistent), so one of the two sees the other: no
/// wake-up is lost.
struct Inflight {
    count: AtomicU64,
    waiting: AtomicBool,
    lock: Mutex<()>,
    zero: Condvar,
}

impl Inflight {
    fn new() -> Self {
        Inflight {
            count: AtomicU64::new(0),
            waiting: AtomicBool::new(false),
            lock: Mutex::new(()),
            zero: Condvar::new(),
        }
    }

    fn enter(&self) -> InflightGuard<'_> {
        self.count.fetch_add(1, Ordering::SeqCst);
        InflightGuard(self)
    }

    /// Wait until no command is in flight (callers serialise on the LU's `transition`).
    fn drain(&self) {
        let mut g = self.lock.lock();
        self.waiting.store(true, Ordering::SeqCst);
        while self.count.load(Ordering::SeqCst) != 0 {
            self.zero.wait(&mut g);
        }
        self.waiting.store(false, Ordering::SeqCst);
    }
}

/// Decrements the in-flight count when a gated command finishes, however it finishes.
pub(crate) struct InflightGuard<'a>(&'a Inflight);

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        self.0.leave();
    }
}

impl Inflight {
    /// One command in flight is done.
    fn leave(&self) {
        let i = self;
        if i.count.fetch_sub(1, Ordering::SeqCst) == 1 && i.waiting.load(Ordering::SeqCst) {
            // Under the lock, so the drainer is either before its look at the count or
            // already waiting.
            let _g = i.lock.lock();
            i.zero.notify_all();
        }
    }
}

impl LogicalUnit {
    pub fn new(config: LuConfig) -> Self {
        let block_size = if config.block_size.is_power_of_two() && config.block_size >= 512 {
            config.block_size
        } else {
            tracing::warn!(
                block_size = config.block_size,
                "unsupported block size, using 512"
            );
            512
        };
        let pr = match config.pr_state.as_deref() {
            Some(blob) => PrState::decode(blob).unwrap_or_else(|e| {
                tracing::warn!(lu = %config.id, error = %e, "ignoring unreadable reservation state");
                PrState::default()
            }),
            None => PrState::default(),
        };
        let res_active = pr.reservation.is_some();
        LogicalUnit {
            id: config.id,
            naa: crate::spc::inquiry::naa_designator(&config.id),
            backing: config.backing,
            block_size,
            block_shift: block_size.trailing_zeros(),
            events: config.events,
            state: AtomicU8::new(state_code(config.state)),
            inflight: Inflight::new(),
            resized_seen: AtomicU64::new(0),
            transition: Mutex::new(()),
            nexuses: RwLock::new(HashMap::new()),
            res_active: AtomicBool::new(res_active),
            res: Mutex::new(Reservations {
                spc2: None,
                pr,
                shared_version: 0,
            }),
            persist_order: Default::default(),
            mode: ModeState {
                wce: AtomicBool::new(true),
                d_sense: AtomicBool::new(false),
                swp: AtomicBool::new(false),
                write_through: AtomicBool::new(false),
                verify: AtomicBool::new(false),
                hints: Mutex::new(LuHints::default()),
            },
            write_protected: AtomicBool::new(config.write_protected),
            atomic_lock: Mutex::new(()),
            copy_results: Mutex::new(CopyResults::default()),
            alua: RwLock::new(Arc::new(AccessStates::default())),
            alua_altered: Mutex::new(BTreeSet::new()),
        }
    }

    pub fn id(&self) -> uuid::Uuid {
        self.id
    }

    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    pub(crate) fn block_shift(&self) -> u32 {
        self.block_shift
    }

    pub fn backing(&self) -> &Arc<dyn BackingStore> {
        &self.backing
    }

    pub(crate) fn events(&self) -> &Arc<dyn LuEvents> {
        &self.events
    }

    /// The 16-byte NAA-6 designator of VPD page 83 (what EXTENDED COPY names a copy target by).
    pub fn naa(&self) -> [u8; 16] {
        self.naa
    }

    /// Capacity in logical blocks.
    pub fn num_blocks(&self) -> u64 {
        self.backing.size() >> self.block_shift
    }

    pub fn state(&self) -> LuState {
        state_from(self.state.load(Ordering::SeqCst))
    }

    fn store_state(&self, s: LuState) {
        self.state.store(state_code(s), Ordering::SeqCst);
    }

    /// Change the status the data path enforces (BEHAVIOUR §3):
    /// - ONLINE → OFFLINE/NOT_READY: new commands get the new sense at once; commands in
    ///   flight finish; then the backing store is flushed.
    /// - OFFLINE/NOT_READY/FAILED → ONLINE: the backing store is probed; then every nexus known
    ///   to the LU gets UNIT ATTENTION 06/28/00.
    /// - FAILED → OFFLINE/NOT_READY: the backing store is probed (Refresh of a FAILED LUN).
    /// - OFFLINE ↔ NOT_READY, or anything → FAILED: just switch.
    ///
    /// A flush or probe error leaves the LU FAILED and is returned (no `LuEvents::failed` call:
    /// the caller has the error).
    pub fn set_state(&self, new: LuState) -> io::Result<()> {
        let _t = self.transition.lock();
        let cur = self.state();
        if cur == new {
            return Ok(());
        }
        match (cur, new) {
            (LuState::Online, LuState::Offline | LuState::NotReady) => {
                self.store_state(new);
                self.drain();
                if let Err(e) = self.backing.flush() {
                    self.store_state(LuState::Failed);
                    return Err(e);
                }
            }
            (_, LuState::Online) => {
                if let Err(e) = self.backing.probe() {
                    self.store_state(LuState::Failed);
                    return Err(e);
                }
                self.store_state(LuState::Online);
                self.ua_all(sense::NOT_READY_TO_READY_CHANGE, None);
            }
            (LuState::Failed, _) => {
                self.backing.probe()?;
                self.store_state(new);
            }
            _ => self.store_state(new),
        }
        Ok(())
    }

    /// Whether the provider made this LU read-only (see [`LuConfig::write_protected`]).
    pub fn write_protected(&self) -> bool {
        self.write_protected.load(Ordering::SeqCst)
    }

    /// Make the LU read-only or writable; commands that start afterwards see the new value.
    /// Turning protection on waits for the commands in flight, so no write lands once this
    /// returns. A change queues UNIT ATTENTION 06/2A/01 MODE PARAMETERS CHANGED on every
    /// nexus (SPC-4: a mode parameter, here the WP bit of the mode parameter header, changed
    /// by other means than MODE SELECT); no change, no unit attention.
    pub fn set_write_protected(&self, on: bool) {
        let _t = self.transition.lock();
        if self.write_protected.swap(on, Ordering::SeqCst) == on {
            return;
        }
        if on {
            self.drain();
        }
        tracing::info!(lu = %self.id, write_protected = on, "write protection changed");
        self.ua_all(sense::MODE_PARAMETERS_CHANGED, None);
    }

    /// Wait until no gated command is in flight.
    fn drain(&self) {
        self.inflight.drain();
    }

    /// Flush the write-back cache (shutdown, provider request). A failure makes the LU FAILED.
    pub fn flush(&self) -> io::Result<()> {
        self.backing.flush().inspect_err(|e| self.mark_failed(e))
    }

    /// The capacity changed (after `backing().resize`): UNIT ATTENTION 06/2A/09 once per nexus.
    pub fn capacity_changed(&self) {
        self.ua_all(sense::CAPACITY_DATA_HAS_CHANGED, None);
    }

    /// Set the access state through each target port group. When it differs from a state
    /// already set (not the first setting of a new LU), every known nexus gets UNIT ATTENTION
    /// 06/2A/06 ASYMMETRIC ACCESS STATE CHANGED once (BEHAVIOUR.md §14). Returns whether
    /// anything changed.
    ///
    /// The groups whose state changed (not on the first setting) report status code 02h
    /// "altered by implicit asymmetric logical unit access behavior" in REPORT TARGET PORT
    /// GROUPS from then on; commands that start afterwards are gated by the new states.
    pub fn set_access_states(&self, states: AccessStates) -> bool {
        let mut cur = self.alua.write();
        if **cur == states {
            return false;
        }
        let first = cur.is_empty();
        if !first {
            let mut altered = self.alua_altered.lock();
            for (g, _) in cur.iter().chain(states.iter()) {
                if cur.get(g) != states.get(g) {
                    altered.insert(g);
                }
            }
        }
        *cur = Arc::new(states);
        drop(cur);
        // The unit attention is queued before any command can meet the new state, so a host
        // is told of the change before (or with) its first refused command.
        if !first {
            self.ua_all(sense::ASYMMETRIC_ACCESS_STATE_CHANGED, None);
        }
        self.refresh_nexus_access();
        true
    }

    /// Bring every known nexus's cached access state up to the LU's current states. Reads the
    /// states afresh (not a caller's copy), under the nexus table's lock as `nexus_state`
    /// does, so concurrent setters and new nexuses all end on the latest states.
    fn refresh_nexus_access(&self) {
        let nexuses = self.nexuses.read();
        let states = self.alua.read();
        for ns in nexuses.values() {
            ns.access
                .store(states.get(ns.target_port_group).code(), Ordering::Release);
        }
    }

    /// The access state through `tpg` and whether a change of the access states altered it
    /// (see [`LogicalUnit::set_access_states`]), read together.
    pub(crate) fn access_report(&self, tpg: u16) -> (AccessState, bool) {
        let states = self.alua.read();
        let altered = self.alua_altered.lock().contains(&tpg);
        (states.get(tpg), altered)
    }

    /// The access states through every target port group.
    pub fn access_states(&self) -> Arc<AccessStates> {
        self.alua.read().clone()
    }

    /// The access state through target port group `tpg`.
    pub fn access_state(&self, tpg: u16) -> AccessState {
        self.alua.read().get(tpg)
    }

    /// The LUN inventory of a target mapping this LU changed: UNIT ATTENTION 06/3F/0E.
    pub fn luns_changed(&self) {
        self.ua_all(sense::REPORTED_LUNS_DATA_HAS_CHANGED, None);
    }

    /// Take over what initiators were told by `old`, the LU this one replaces for the same LUN
    /// (the provider rebuilds an LU when Refresh reopens a replaced or reappearing backing
    /// store): every known I_T nexus with its pending unit attentions, the reservations and
    /// the changeable mode page values. Without this a host that last saw the LUN OFFLINE or
    /// FAILED would never get 06/28/00 when it comes back ONLINE (BEHAVIOUR §3).
    pub fn inherit(&self, old: &LogicalUnit) {
        let known: Vec<(u64, Arc<NexusState>)> = old
            .nexuses
            .read()
            .iter()
            .map(|(id, ns)| (*id, ns.clone()))
            .collect();
        self.nexuses.write().extend(known);
        {
            let from = old.res.lock();
            let mut res = self.res.lock();
            res.spc2 = from.spc2;
            res.pr = from.pr.clone();
            res.shared_version = from.shared_version;
            self.update_res_active(&res);
        }
        {
            let mut alua = self.alua.write();
            *alua = old.access_states();
            *self.alua_altered.lock() = old.alua_altered.lock().clone();
        }
        self.refresh_nexus_access();
        for (mine, theirs) in [
            (&self.mode.wce, &old.mode.wce),
            (&self.mode.d_sense, &old.mode.d_sense),
            (&self.mode.swp, &old.mode.swp),
        ] {
            mine.store(theirs.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        self.set_hints(old.hints());
    }

    /// I_T nexus loss (session ended, reinstated, connection dropped): forget the nexus, its
    /// unit attentions and its RESERVE(6) reservation. Persistent reservations are kept (SPC-4).
    ///
    /// When the lost nexus held the RESERVE(6) reservation, every other nexus of the LU gets
    /// UNIT ATTENTION 06/29/07 I_T NEXUS LOSS OCCURRED once: the reservation that kept them out
    /// is gone without a RELEASE (LIO raises the same condition on nexus loss). Nexuses that
    /// no reservation affected are not told, so a host logging out disturbs no one else.
    pub fn nexus_lost(&self, nexus_id: u64) {
        self.nexuses.write().remove(&nexus_id);
        let released = {
            let mut res = self.res.lock();
            let held = res.spc2 == Some(nexus_id);
            if held {
                res.spc2 = None;
                self.update_res_active(&res);
            }
            held
        };
        if released {
            self.ua_all(sense::I_T_NEXUS_LOSS_OCCURRED, Some(nexus_id));
        }
    }

    /// Whether a reset of this LU must also reach other gateways ([`LuEvents::shares_resets`]).
    pub fn resets_are_shared(&self) -> bool {
        self.events.shares_resets()
    }

    /// Tells the other gateways serving this LU of its reset (blocks, boundedly:
    /// [`LuEvents::reset_elsewhere`]).
    pub fn reset_elsewhere(&self) {
        self.events.reset_elsewhere(self.id);
    }

    /// LOGICAL UNIT RESET (also used per LU by TARGET RESET): RESERVE(6) reservations are
    /// released and every nexus, including `by` (the one that asked, for the log), gets UNIT
    /// ATTENTION 06/29/03 (SAM-5; libiscsi's MultipathIO.Reset checks both paths).
    /// Persistent reservations survive (SPC-4).
    pub fn reset(&self, by: Option<u64>) {
        tracing::debug!(lu = %self.id, by = ?by, "logical unit reset");
        {
            let mut res = self.res.lock();
            res.spc2 = None;
            self.update_res_active(&res);
        }
        self.ua_all(sense::BUS_DEVICE_RESET_FUNCTION_OCCURRED, None);
    }

    /// Installs the shared persistent-reservation state `blob` of `version` (docs/SCALEOUT.md
    /// "Persistent reservations across gateways"), with the unit attentions its change raised
    /// for the I_T nexuses this LU knows; a version not newer than the one held changes nothing
    /// (the change is already here). Answers whether it was installed; an unreadable blob is an
    /// error and changes nothing. Never waits for a PERSISTENT RESERVE OUT in progress (the
    /// gateway running one waits for every gateway, this one included, to install it).
    pub fn install_shared_reservations(
        &self,
        version: u64,
        blob: &[u8],
        uas: &[crate::PrUnitAttention],
    ) -> Result<bool, String> {
        let pr = if blob.is_empty() {
            PrState::default()
        } else {
            PrState::decode(blob)?
        };
        Ok(self.install_shared(version, pr, uas))
    }

    /// The version of the shared reservation state this LU holds (0: none installed).
    pub fn shared_reservations_version(&self) -> u64 {
        self.res.lock().shared_version
    }

    /// Installs `pr` as the shared state of `version` unless this LU holds that version or a
    /// newer one already; whoever installs a version raises its unit attentions, once.
    pub(crate) fn install_shared(
        &self,
        version: u64,
        pr: PrState,
        uas: &[crate::PrUnitAttention],
    ) -> bool {
        let mut res = self.res.lock();
        if version <= res.shared_version {
            return false;
        }
        res.pr = pr;
        res.shared_version = version;
        self.update_res_active(&res);
        drop(res);
        for ua in uas {
            self.ua_port(&ua.initiator_port, &ua.target_port, Asc(ua.asc, ua.ascq));
        }
        true
    }

    pub(crate) fn update_res_active(&self, res: &Reservations) {
        self.res_active.store(
            res.spc2.is_some() || res.pr.reservation.is_some(),
            Ordering::Release,
        );
    }

    /// Queue a unit attention on every known nexus except `except`.
    pub(crate) fn ua_all(&self, asc: Asc, except: Option<u64>) {
        for (id, ns) in self.nexuses.read().iter() {
            if Some(*id) != except {
                ns.push_ua(asc);
            }
        }
    }

    /// Queue a unit attention on every nexus with these port names.
    pub(crate) fn ua_port(&self, initiator_port: &str, target_port: &str, asc: Asc) {
        for ns in self.nexuses.read().values() {
            if ns.same_port(initiator_port, target_port) {
                ns.push_ua(asc);
            }
        }
    }

    /// Known nexuses whose relative target port is `rel`: its target port name, if any.
    pub(crate) fn target_port_by_rel(&self, rel: u16) -> Option<String> {
        self.nexuses
            .read()
            .values()
            .find(|n| n.relative_target_port == rel)
            .map(|n| n.target_port.clone())
    }

    fn nexus_state(&self, nexus: &ItNexus) -> Arc<NexusState> {
        if let Some(ns) = self.nexuses.read().get(&nexus.id) {
            return ns.clone();
        }
        self.nexuses
            .write()
            .entry(nexus.id)
            .or_insert_with(|| {
                // Under the table's write lock: a concurrent `set_access_states` refreshes
                // this nexus after it is in the table, or it reads the new states here.
                let access = self.alua.read().get(nexus.target_port_group).code();
                Arc::new(NexusState {
                    initiator_port: nexus.initiator_port.clone(),
                    target_port: nexus.target_port.clone(),
                    relative_target_port: nexus.relative_target_port,
                    target_port_group: nexus.target_port_group,
                    access: AtomicU8::new(access),
                    ua_pending: AtomicBool::new(false),
                    ua: Mutex::new(Vec::new()),
                })
            })
            .clone()
    }

    /// The LU switched itself to FAILED because the backing store failed. A store that
    /// refuses I/O because this gateway is fenced (`vds_backstore::fence::is_fenced`) has not
    /// failed: the LUN is served by its new owner, so the LU stays as it is.
    pub(crate) fn mark_failed(&self, err: &io::Error) {
        if vds_backstore::fence::is_fenced(err) {
            tracing::warn!(lu = %self.id, error = %err, "fenced: I/O refused, LU state kept");
            return;
        }
        let prev = self
            .state
            .swap(state_code(LuState::Failed), Ordering::SeqCst);
        if prev != state_code(LuState::Failed) {
            tracing::error!(lu = %self.id, error = %err, "backing store I/O failed; LU is FAILED");
            self.events.failed(self.id, err);
        }
    }

    /// The sense for a LU that is not ONLINE.
    pub(crate) fn not_ready_sense(state: LuState) -> Option<Sense> {
        let asc = match state {
            LuState::Online => return None,
            LuState::NotReady => sense::LUN_BECOMING_READY,
            LuState::Offline => sense::LUN_OFFLINE,
            LuState::Failed => sense::LUN_MANUAL_INTERVENTION_REQUIRED,
        };
        Some(Sense::new(key::NOT_READY, asc))
    }

    pub(crate) fn descriptor_sense(&self) -> bool {
        self.mode.d_sense.load(Ordering::Relaxed)
    }

    /// Turn a failure into the wire outcome (the one place this happens); `Err` for a
    /// command that would have had to wait in [`Mode::Inline`] (nothing failed: the caller runs
    /// it again in [`Mode::Blocking`]).
    pub(crate) fn outcome(&self, fail: Fail) -> Result<ScsiOutcome, Deferred> {
        Ok(match fail {
            Fail::WouldBlock => return Err(Deferred::WouldBlock),
            Fail::Pending(io) => return Err(Deferred::Pending(io)),
            Fail::Conflict => ScsiOutcome {
                status: ScsiStatus::ReservationConflict,
                sense: None,
            },
            Fail::Busy => ScsiOutcome {
                status: ScsiStatus::Busy,
                sense: None,
            },
            Fail::Check(s) => self.check(s),
            // Out of space under a thin LU is not a failed medium: the write gets DATA
            // PROTECT / SPACE ALLOCATION FAILED WRITE PROTECT (SBC-3 4.7.3.6) and the LU stays
            // as it is, so writes succeed again once space is freed.
            Fail::Io { write: true, err } if is_out_of_space(&err) => self.check(Sense::new(
                key::DATA_PROTECT,
                sense::SPACE_ALLOCATION_FAILED_WRITE_PROTECT,
            )),
            // Fenced (another gateway took this LUN over): not a failed medium. NOT READY,
            // ASYMMETRIC ACCESS STATE TRANSITION makes the host retry through another path;
            // the LU is not marked FAILED (BEHAVIOUR.md "RBD LUNs").
            Fail::Io { err, .. } if vds_backstore::fence::is_fenced(&err) => self.check(
                Sense::new(key::NOT_READY, sense::ASYMMETRIC_ACCESS_STATE_TRANSITION),
            ),
            Fail::Io { write, err } => {
                self.mark_failed(&err);
                let asc = if write {
                    sense::WRITE_ERROR
                } else {
                    sense::UNRECOVERED_READ_ERROR
                };
                self.check(Sense::new(key::MEDIUM_ERROR, asc))
            }
        })
    }

    fn check(&self, s: Sense) -> ScsiOutcome {
        ScsiOutcome {
            status: ScsiStatus::CheckCondition,
            sense: Some(s.encode(self.descriptor_sense())),
        }
    }

    /// Execute one command from `nexus`; Data-In is placed in `data_in` (its previous contents
    /// are replaced; its capacity is reused). Not through a LUN map, EXTENDED COPY can name
    /// no other LU than this one (see [`crate::LunMap::execute`]).
    pub fn execute(
        &self,
        nexus: &ItNexus,
        cmd: &ScsiCommand<'_>,
        data_in: &mut Vec<u8>,
    ) -> ScsiOutcome {
        match self.execute_in(None, nexus, cmd, data_in, Mode::Blocking) {
            Ok(outcome) => outcome,
            Err(WouldBlock) => unreachable!("only Mode::Inline answers WouldBlock"),
        }
    }

    /// [`Self::execute`] in `mode`, for a command that came through `scope` (the LUN map of
    /// the target the nexus logged in to), if any. In [`Mode::Inline`], a command the table
    /// does not mark inline, or whose store I/O would wait, is `Err(WouldBlock)` with no
    /// effect on the LU (no unit attention consumed, the LU not failed).
    pub(crate) fn execute_in(
        &self,
        scope: Option<&crate::LunMap>,
        nexus: &ItNexus,
        cmd: &ScsiCommand<'_>,
        data_in: &mut Vec<u8>,
        mode: Mode,
    ) -> Result<ScsiOutcome, WouldBlock> {
        match self.execute_any(scope, nexus, cmd, data_in, mode, false) {
            Ok(o) => Ok(o),
            Err(Deferred::WouldBlock) => Err(WouldBlock),
            Err(Deferred::Pending(_)) => unreachable!("only LunMap::start hands I/O back"),
        }
    }

    /// [`Self::execute_in`], and with `aio` a command whose store has asynchronous I/O
    /// hands its store operation back ([`Deferred::Pending`]).
    pub(crate) fn execute_any(
        &self,
        scope: Option<&crate::LunMap>,
        nexus: &ItNexus,
        cmd: &ScsiCommand<'_>,
        data_in: &mut Vec<u8>,
        mode: Mode,
        aio: bool,
    ) -> Result<ScsiOutcome, Deferred> {
        data_in.clear();
        match self.run(scope, nexus, cmd, data_in, mode, aio) {
            Ok(()) => Ok(ScsiOutcome::GOOD),
            Err(f) => {
                data_in.clear();
                self.outcome(f)
            }
        }
    }

    /// A pending command ended (see [`Deferred::Pending`]).
    pub(crate) fn leave_inflight(&self) {
        self.inflight.leave();
    }

    /// The image grew or shrank behind the array (another gateway, `rbd resize`): UNIT
    /// ATTENTION 06/2A/09 for every nexus, once per change. One load per command otherwise.
    fn note_foreign_resize(&self) {
        let n = self.backing.resized_elsewhere();
        if n != self.resized_seen.load(Ordering::Relaxed)
            && self.resized_seen.swap(n, Ordering::SeqCst) != n
        {
            tracing::info!(lu = %self.id, blocks = self.num_blocks(), "capacity changed by another client");
            self.capacity_changed();
        }
    }

    fn run(
        &self,
        scope: Option<&crate::LunMap>,
        nexus: &ItNexus,
        cmd: &ScsiCommand<'_>,
        data_in: &mut Vec<u8>,
        mode: Mode,
        aio: bool,
    ) -> Res {
        if cmd.cdb.is_empty() {
            if mode == Mode::Inline {
                return Err(Fail::WouldBlock);
            }
            return Err(crate::cdb::illegal(sense::INVALID_COMMAND_OPERATION_CODE));
        }
        let found = ops::lookup(cmd.cdb);
        let runs_here =
            |op: &ops::OpDesc| op.inline || (aio && op.aio && self.backing.aio().is_some());
        if mode == Mode::Inline && !matches!(found, Lookup::Found(op) if runs_here(op)) {
            // Before anything with an effect (a new nexus, a unit attention consumed).
            return Err(Fail::WouldBlock);
        }
        let ns = self.nexus_state(nexus);
        self.note_foreign_resize();
        let gate = match &found {
            Lookup::Found(op) => op.gate,
            _ => Gate::Media,
        };
        if gate == Gate::Media {
            if let Some(asc) = ns.pop_ua() {
                return Err(Fail::Check(Sense::new(key::UNIT_ATTENTION, asc)));
            }
        }
        let op = match found {
            Lookup::Found(op) => op,
            Lookup::UnknownOpcode => {
                return Err(crate::cdb::illegal(sense::INVALID_COMMAND_OPERATION_CODE))
            }
            Lookup::UnknownServiceAction => {
                return Err(crate::cdb::invalid_cdb(1, Some(4)));
            }
        };
        if !ops::available(op, self) {
            return Err(crate::cdb::illegal(sense::INVALID_COMMAND_OPERATION_CODE));
        }
        if cmd.cdb.len() < op.usage.len() {
            // The CDB is shorter than this command's: the missing bytes are the invalid field.
            return Err(crate::cdb::invalid_cdb(cmd.cdb.len() as u16, None));
        }
        let cdb = &cmd.cdb[..op.usage.len()];
        if let Err((byte, bit)) = ops::check_usage(op, cdb) {
            return Err(crate::cdb::invalid_cdb(byte, Some(bit)));
        }
        // After the unit attention (SPC-4: reported first), before the LU's own status: the
        // port, not the LU, is what the host must route around. One load per command.
        let access = ns.access_state();
        if !op.runs_in(access) {
            return Err(Fail::Check(Self::inaccessible_sense(access)));
        }
        let _guard = if gate == Gate::Media {
            let guard = self.inflight.enter();
            if let Some(s) = Self::not_ready_sense(self.state()) {
                return Err(Fail::Check(s));
            }
            Some(guard)
        } else {
            None
        };
        if self.res_active.load(Ordering::Acquire) {
            self.check_reservation(nexus, op)?;
        }
        let mut c = Cmd {
            nexus,
            scope,
            ns: &ns,
            cdb: Cdb(cdb),
            data_out: cmd.data_out,
            data_in,
            mode,
            aio,
        };
        let r = (op.handler)(self, &mut c);
        if let Err(Fail::Pending(_)) = &r {
            // The command goes on after this call: its place among the commands in flight
            // (what OFFLINE and write protection drain) goes with it, until the pending
            // command ends and calls `leave_inflight`.
            std::mem::forget(_guard.unwrap_or_else(|| self.inflight.enter()));
        }
        r
    }

    /// RESERVATION CONFLICT if a reservation denies `nexus` this kind of access.
    fn check_reservation(&self, nexus: &ItNexus, op: &ops::OpDesc) -> Res {
        let res = self.res.lock();
        if let Some(holder) = res.spc2 {
            // SPC-2: only the holder may use the LU, except INQUIRY, REPORT LUNS, REQUEST
            // SENSE, PERSISTENT RESERVE IN and RESERVE/RELEASE (which answer for themselves).
            let exempt = op.gate != Gate::Media
                || op.access == Access::Reserve
                || op.access == Access::Prout
                || op.opcode == 0x5E;
            if holder != nexus.id && !exempt {
                return Err(Fail::Conflict);
            }
            return Ok(());
        }
        match op.access {
            Access::Read | Access::Write => {
                if !res.pr.allows(nexus, op.access == Access::Write) {
                    return Err(Fail::Conflict);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Admit `nexus` to this LU as the other end of a copy that another LU runs (EXTENDED
    /// COPY): the status gate, counted in flight for as long as the guard lives (so OFFLINE
    /// and flush wait for the copy), and the reservation check of a READ (source) or a WRITE
    /// (`write`: destination) from that nexus. A LU that is not ONLINE, or that the nexus's
    /// target port group cannot access (Standby, Unavailable), is not reachable.
    pub(crate) fn admit_copy(
        &self,
        nexus: &ItNexus,
        write: bool,
    ) -> Result<InflightGuard<'_>, Fail> {
        let guard = self.inflight.enter();
        let active = matches!(
            self.access_state(nexus.target_port_group),
            AccessState::ActiveOptimized | AccessState::ActiveNonOptimized
        );
        if self.state() != LuState::Online || !active {
            return Err(Fail::Check(Sense::new(
                key::ILLEGAL_REQUEST,
                sense::COPY_TARGET_DEVICE_NOT_REACHABLE,
            )));
        }
        if self.res_active.load(Ordering::Acquire) {
            let res = self.res.lock();
            let denied = match res.spc2 {
                Some(holder) => holder != nexus.id,
                None => !res.pr.allows(nexus, write),
            };
            if denied {
                return Err(Fail::Conflict);
            }
        }
        Ok(guard)
    }

    /// The unit attention, inaccessible-port or not-ready condition REQUEST SENSE reports
    /// (consumes a UA).
    pub(crate) fn pending_condition(&self, ns: &NexusState) -> Option<Sense> {
        if let Some(asc) = ns.pop_ua() {
            return Some(Sense::new(key::UNIT_ATTENTION, asc));
        }
        match ns.access_state() {
            s @ (AccessState::Standby | AccessState::Unavailable) => {
                Some(Self::inaccessible_sense(s))
            }
            _ => Self::not_ready_sense(self.state()),
        }
    }

    /// NOT READY, LOGICAL UNIT NOT ACCESSIBLE for a command refused through a port in access
    /// state `s` (Standby: 04/0B; Unavailable: 04/0C).
    fn inaccessible_sense(s: AccessState) -> Sense {
        let asc = match s {
            AccessState::Standby => sense::LUN_NOT_ACCESSIBLE_TARGET_PORT_IN_STANDBY_STATE,
            _ => sense::LUN_NOT_ACCESSIBLE_TARGET_PORT_IN_UNAVAILABLE_STATE,
        };
        Sense::new(key::NOT_READY, asc)
    }

    /// Check `lba + blocks` against the capacity (LBA OUT OF RANGE).
    pub(crate) fn check_range(&self, lba: u64, blocks: u64) -> Res {
        let n = self.num_blocks();
        match lba.checked_add(blocks) {
            Some(end) if end <= n && lba <= n => Ok(()),
            _ => Err(crate::cdb::lba_out_of_range()),
        }
    }

    /// Byte offset of `lba` (callers have range-checked it).
    pub(crate) fn offset(&self, lba: u64) -> u64 {
        lba << self.block_shift
    }

    /// Whether the mode parameter header reports WP: the provider's write protection or SWP.
    pub(crate) fn wp(&self) -> bool {
        self.write_protected() || self.mode.swp.load(Ordering::Relaxed)
    }

    /// Called by every command that changes the medium, after its CDB and range checks, so
    /// after the unit attention, the status gate and the reservation check (a host is told of
    /// a not-ready LU or a conflict before it is told the medium is protected): DATA PROTECT,
    /// WRITE PROTECTED (07/27/00) on a read-only LUN; LOGICAL UNIT SOFTWARE WRITE PROTECTED
    /// (07/27/02) when an initiator set SWP.
    pub(crate) fn check_writable(&self) -> Res {
        if self.write_protected() {
            return Err(Fail::Check(Sense::new(
                key::DATA_PROTECT,
                sense::WRITE_PROTECTED,
            )));
        }
        if self.mode.swp.load(Ordering::Relaxed) {
            return Err(Fail::Check(Sense::new(
                key::DATA_PROTECT,
                sense::LOGICAL_UNIT_SOFTWARE_WRITE_PROTECTED,
            )));
        }
        Ok(())
    }

    /// Write-back cache disabled, or the write-through hint: every write is forced to stable
    /// storage.
    pub(crate) fn write_through(&self) -> bool {
        !self.mode.wce.load(Ordering::Relaxed) || self.mode.write_through.load(Ordering::Relaxed)
    }

    /// Whether every write is read back and compared (the read-back-verify hint).
    pub(crate) fn read_back_verify(&self) -> bool {
        self.mode.verify.load(Ordering::Relaxed)
    }

    /// What INQUIRY, VPD 80 and VPD 83 say about this LU (see [`crate::identity`]).
    pub fn identity(&self) -> crate::identity::Identity {
        crate::identity::lu_identity(&self.id)
    }

    /// The write-back cache: the caching mode page's WCE bit.
    pub fn write_cache(&self) -> bool {
        self.mode.wce.load(Ordering::Relaxed)
    }

    /// Switches the write-back cache (WCE) for the provider (the hint `write_caching_enabled`).
    /// Turning it off first flushes what it holds; a flush error leaves it on and is returned.
    /// A change made here is not reported back through [`LuEvents::write_cache_changed`]: the
    /// caller made it.
    pub fn set_write_cache(&self, on: bool) -> io::Result<()> {
        if !on && self.write_cache() {
            self.backing.flush()?;
        }
        self.mode.wce.store(on, Ordering::Relaxed);
        Ok(())
    }

    /// The hints the data path applies.
    pub fn hints(&self) -> LuHints {
        *self.mode.hints.lock()
    }

    /// Replaces the hints the data path applies (from the next command on).
    pub fn set_hints(&self, h: LuHints) {
        let mut cur = self.mode.hints.lock();
        *cur = h;
        self.mode
            .write_through
            .store(h.write_through, Ordering::Relaxed);
        self.mode
            .verify
            .store(h.read_back_verify, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for LogicalUnit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogicalUnit")
            .field("id", &self.id)
            .field("kind", &self.backing.kind())
            .field("block_size", &self.block_size)
            .field("state", &self.state())
            .finish()
    }
}

/// ENOSPC or EDQUOT (Linux errno values; this crate does not depend on libc).
fn is_out_of_space(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(28) | Some(122))
}

#[cfg(test)]
mod out_of_space_tests {
    //! A full filesystem under a thin LU (found by the ENOSPC reliability test).
    use super::*;
    use crate::{LunEntry, LunMap, Mask};

    /// 64 blocks; writes fail with ENOSPC while `full` is set.
    struct FullStore {
        full: AtomicBool,
        mem: vds_backstore::MemoryStore,
    }

    impl BackingStore for FullStore {
        fn kind(&self) -> &'static str {
            "full"
        }
        fn size(&self) -> u64 {
            self.mem.size()
        }
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
            self.mem.read_at(buf, offset)
        }
        fn write_at(&self, buf: &[u8], offset: u64, fua: bool) -> io::Result<()> {
            if self.full.load(Ordering::SeqCst) {
                return Err(io::Error::from_raw_os_error(28));
            }
            self.mem.write_at(buf, offset, fua)
        }
        fn try_read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
            self.read_at(buf, offset)
        }
        fn try_write_at(&self, buf: &[u8], offset: u64, fua: bool) -> io::Result<()> {
            self.write_at(buf, offset, fua)
        }
        fn flush(&self) -> io::Result<()> {
            Ok(())
        }
        fn unmap(&self, offset: u64, len: u64) -> io::Result<()> {
            self.mem.unmap(offset, len)
        }
    }

    struct NoEvents;
    impl crate::LuEvents for NoEvents {
        fn failed(&self, _lu: uuid::Uuid, _error: &io::Error) {
            panic!("an out-of-space write must not fail the LU");
        }
        fn persist_reservations(&self, _lu: uuid::Uuid, _state: &[u8]) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn enospc_on_write_is_space_allocation_failed_and_the_lu_stays_online() {
        let store = Arc::new(FullStore {
            full: AtomicBool::new(true),
            mem: vds_backstore::MemoryStore::new(64 * 512),
        });
        let lu = Arc::new(LogicalUnit::new(LuConfig {
            id: uuid::Uuid::from_u128(7),
            backing: store.clone(),
            block_size: 512,
            state: LuState::Online,
            pr_state: None,
            events: Arc::new(NoEvents),
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
        let nexus = ItNexus {
            id: 1,
            initiator_name: "iqn.2026-01.test:i".into(),
            initiator_port: "iqn.2026-01.test:i,i,0x230000000001".into(),
            target_port: "iqn.2026-01.test:t,t,0x0001".into(),
            relative_target_port: 1,
            target_port_group: 1,
        };
        // WRITE (10) of one block at LBA 0: 2A 00 | LBA 00000000 | 00 | length 0001 | 00.
        let write = [0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0];
        let block = [0x5Au8; 512];
        let run = |data: &mut Vec<u8>| {
            map.execute(
                &nexus,
                0,
                &ScsiCommand {
                    cdb: &write,
                    data_out: &block,
                    expected_in_len: 0,
                    attr: crate::TaskAttr::Simple,
                },
                data,
            )
        };
        let mut data = Vec::new();
        // The first command on the nexus may meet a power-on unit attention.
        let mut out = run(&mut data);
        if out
            .sense
            .as_ref()
            .is_some_and(|s| s[2] & 0x0F == key::UNIT_ATTENTION)
        {
            out = run(&mut data);
        }
        assert_eq!(out.status, ScsiStatus::CheckCondition);
        let s = out.sense.expect("sense");
        // Fixed format: key DATA PROTECT, ASC/ASCQ 27/07.
        assert_eq!((s[2] & 0x0F, s[12], s[13]), (0x07, 0x27, 0x07));
        assert_eq!(lu.state(), LuState::Online);
        store.full.store(false, Ordering::SeqCst);
        assert_eq!(run(&mut data).status, ScsiStatus::Good);
    }
}
