//! What logical units tell the provider (`vds_scsi::LuEvents`), and the stand-in store of a
//! LUN whose backing file or device is missing.
//!
//! LU callbacks come from I/O threads and must not block for long, so they queue a message; a
//! provider thread hands it to [`Provider::apply`](crate::Provider::apply) as a
//! [`Command::DataPath`](crate::Command::DataPath), so the one owner that applies every
//! management change applies these too (FAILED status persisted, MODIFY event; reservation
//! blobs persisted; the write-back cache a MODE SELECT changed, persisted as the LUN's
//! `write_caching_enabled` hint). Only these hooks make a [`DataPathMsg`]: it has no public constructor, so
//! no HTTP request can forge one. A reservation change with APTPL waits (boundedly) until its blob is stored:
//! the PERSISTENT RESERVE OUT is acknowledged to the initiator only after that, so a crash
//! never loses an acknowledged APTPL registration or reservation. When the store fails, or the
//! wait runs out before the provider thread took the blob up, the command fails and the blob is
//! never written: the reservation state stays what it was, in memory and in the store.

use std::io;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{RecvTimeoutError, Sender, SyncSender};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use uuid::Uuid;
use vds_backstore::{BackingStore, PlexObserver};

/// A message from the data path, applied as [`Command::DataPath`](crate::Command::DataPath).
/// Only the provider's own LU hooks make one (no public constructor). Clones share the one
/// message; two messages are equal only when they are the same message.
#[derive(Clone)]
pub struct DataPathMsg(Arc<HookMsg>);

impl DataPathMsg {
    pub(crate) fn get(&self) -> &HookMsg {
        &self.0
    }
}

impl PartialEq for DataPathMsg {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for DataPathMsg {}

impl std::fmt::Debug for DataPathMsg {
    /// The LUN and the kind of report; never the reservation bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.0 {
            HookMsg::Failed(lu, why) => write!(f, "DataPathMsg::Failed({lu}, {why:?})"),
            HookMsg::Reservations(lu, blob, ..) => {
                write!(f, "DataPathMsg::Reservations({lu}, {} bytes)", blob.len())
            }
            HookMsg::WriteCache(lu) => write!(f, "DataPathMsg::WriteCache({lu})"),
            HookMsg::Ceph(v) => write!(f, "DataPathMsg::Ceph({} pools)", v.pools.len()),
            HookMsg::PlexFailed(lu, plex, why) => {
                write!(f, "DataPathMsg::PlexFailed({lu}, {plex}, {why:?})")
            }
        }
    }
}

/// What the data path reports.
pub(crate) enum HookMsg {
    /// The LU failed an I/O and switched itself to FAILED.
    Failed(Uuid, String),
    /// Persistent reservations changed (APTPL): store the blob unless the waiting command gave
    /// up ([`Claim`]), then send the outcome.
    Reservations(Uuid, Vec<u8>, Arc<Claim>, SyncSender<Result<(), String>>),
    /// A MODE SELECT changed the LU's write-back cache (WCE): store what the LU has now.
    WriteCache(Uuid),
    /// Plex `usize` (its index in the LUN's `plexes`) of a composite LUN failed an I/O; the
    /// LUN goes on serving from the others (BEHAVIOUR.md §15).
    PlexFailed(Uuid, usize, String),
    /// What the Ceph cluster says about its pools now (`ceph_pools.rs`'s poller): RBD LUNs'
    /// type, plexes and health follow it.
    Ceph(crate::ceph_pools::CephView),
}

/// Longest a PERSISTENT RESERVE OUT waits for the provider thread to take its APTPL state up.
/// Once taken up, the write's own outcome decides (it is bounded by the store's busy timeout).
pub(crate) const PERSIST_WAIT: Duration = Duration::from_secs(5);

const PENDING: u8 = 0;
const CLAIMED: u8 = 1;
const CANCELLED: u8 = 2;

/// Who decides the fate of one reservation blob: the provider thread claims it before writing,
/// a PERSISTENT RESERVE OUT that stopped waiting cancels it; the first one wins. Without this a
/// command answered CHECK CONDITION after a timeout could still have its state written later,
/// and the refused change would reappear after a restart.
pub(crate) struct Claim(AtomicU8);

impl Claim {
    fn new() -> Claim {
        Claim(AtomicU8::new(PENDING))
    }

    /// The provider thread is about to write the blob; false if the command gave up.
    pub(crate) fn claim(&self) -> bool {
        self.swap_from_pending(CLAIMED)
    }

    /// The command gives up; false if the write has already started.
    fn cancel(&self) -> bool {
        self.swap_from_pending(CANCELLED)
    }

    fn swap_from_pending(&self, to: u8) -> bool {
        self.0
            .compare_exchange(PENDING, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// The provider's `LuEvents` implementation.
pub(crate) struct Hooks {
    tx: Mutex<Sender<DataPathMsg>>,
    /// Several gateways: the reservations every gateway shares (`shared_pr.rs`).
    shared: std::sync::OnceLock<Arc<crate::shared_pr::SharedReservations>>,
}

impl Hooks {
    pub(crate) fn new(tx: Sender<DataPathMsg>) -> Hooks {
        Hooks {
            tx: Mutex::new(tx),
            shared: std::sync::OnceLock::new(),
        }
    }

    /// Several gateways: reservations are shared from now on (set once, before any LU).
    pub(crate) fn share_with(&self, shared: Arc<crate::shared_pr::SharedReservations>) {
        let _ = self.shared.set(shared);
    }

    /// The shared reservations, when this provider is one of several gateways.
    pub(crate) fn shared(&self) -> Option<&Arc<crate::shared_pr::SharedReservations>> {
        self.shared.get()
    }

    /// Hands the provider what the Ceph cluster says (the poller of `ceph_pools.rs`).
    pub(crate) fn report_ceph(&self, view: crate::ceph_pools::CephView) {
        // A closed channel means the provider is gone; nothing is left to record it.
        let _ = self
            .tx
            .lock()
            .send(DataPathMsg(Arc::new(HookMsg::Ceph(view))));
    }

    /// The observer of LUN `lun`'s composite store: a failed plex becomes a
    /// [`HookMsg::PlexFailed`].
    pub(crate) fn plex_observer(self: &Arc<Self>, lun: Uuid) -> Arc<dyn PlexObserver> {
        Arc::new(PlexHook {
            hooks: self.clone(),
            lun,
        })
    }
}

/// [`Hooks::plex_observer`].
struct PlexHook {
    hooks: Arc<Hooks>,
    lun: Uuid,
}

impl PlexObserver for PlexHook {
    fn plex_failed(&self, plex: usize, error: &io::Error) {
        // A closed channel means the provider is gone; nothing is left to record it.
        let msg = HookMsg::PlexFailed(self.lun, plex, error.to_string());
        let _ = self.hooks.tx.lock().send(DataPathMsg(Arc::new(msg)));
    }
}

fn not_stored(why: impl Into<String>) -> io::Error {
    io::Error::other(why.into())
}

impl vds_scsi::LuEvents for Hooks {
    fn failed(&self, lu: Uuid, error: &io::Error) {
        // A closed channel means the provider is gone; nothing is left to record it.
        let msg = DataPathMsg(Arc::new(HookMsg::Failed(lu, error.to_string())));
        let _ = self.tx.lock().send(msg);
    }

    fn write_cache_changed(&self, lu: Uuid, _enabled: bool) {
        // The provider stores the LU's value when it applies the message, not this one: two
        // quick changes, or one racing an API call, then end with what the LU really has.
        let _ = self
            .tx
            .lock()
            .send(DataPathMsg(Arc::new(HookMsg::WriteCache(lu))));
    }

    fn shares_resets(&self) -> bool {
        self.shared.get().is_some()
    }

    fn reset_elsewhere(&self, lu: Uuid) {
        if let Some(shared) = self.shared.get() {
            shared.reset_elsewhere(lu);
        }
    }

    fn share_reservations(&self, lu: Uuid, change: &vds_scsi::PrChange<'_>) -> vds_scsi::SharedPr {
        match self.shared.get() {
            Some(shared) => shared.share(lu, change),
            None => vds_scsi::SharedPr::NotShared,
        }
    }

    fn persist_reservations(&self, lu: Uuid, state: &[u8]) -> io::Result<()> {
        let claim = Arc::new(Claim::new());
        let (done, stored) = std::sync::mpsc::sync_channel(1);
        let msg = DataPathMsg(Arc::new(HookMsg::Reservations(
            lu,
            state.to_vec(),
            claim.clone(),
            done,
        )));
        if self.tx.lock().send(msg).is_err() {
            return Err(not_stored("the provider is shut down"));
        }
        let outcome = match stored.recv_timeout(PERSIST_WAIT) {
            Ok(outcome) => outcome,
            // Bounded: a provider holding its state lock for long (a slow flush it waits on)
            // must not hang the command; the blob is cancelled so it is never written late.
            Err(RecvTimeoutError::Timeout) if claim.cancel() => Err(format!(
                "not taken up by the provider within {PERSIST_WAIT:?}"
            )),
            // The write started just as the wait ran out: its outcome decides.
            Err(RecvTimeoutError::Timeout) => stored
                .recv()
                .unwrap_or_else(|_| Err("the provider stopped during the write".into())),
            Err(RecvTimeoutError::Disconnected) => {
                Err("the provider stopped before storing it".into())
            }
        };
        outcome.map_err(|why| {
            tracing::error!(lu = %lu, error = %why, "reservation state not stored; the command fails");
            not_stored(why)
        })
    }
}

/// The backing store of a LUN whose file or device could not be opened: every I/O fails, so
/// the LU (which is FAILED) keeps its place in REPORT LUNS until Refresh finds the real store.
pub(crate) struct MissingStore {
    pub(crate) size: u64,
    pub(crate) what: String,
}

impl MissingStore {
    fn err(&self) -> io::Error {
        io::Error::new(io::ErrorKind::NotFound, format!("{} is missing", self.what))
    }
}

impl BackingStore for MissingStore {
    fn kind(&self) -> &'static str {
        "missing"
    }
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&self, _buf: &mut [u8], _offset: u64) -> io::Result<()> {
        Err(self.err())
    }
    fn write_at(&self, _buf: &[u8], _offset: u64, _fua: bool) -> io::Result<()> {
        Err(self.err())
    }
    // Failing at once needs no waiting.
    fn try_read_at(&self, _buf: &mut [u8], _offset: u64) -> io::Result<()> {
        Err(self.err())
    }
    fn try_write_at(&self, _buf: &[u8], _offset: u64, _fua: bool) -> io::Result<()> {
        Err(self.err())
    }
    fn flush(&self) -> io::Result<()> {
        Err(self.err())
    }
    fn unmap(&self, _offset: u64, _len: u64) -> io::Result<()> {
        Err(self.err())
    }
    fn probe(&self) -> io::Result<()> {
        Err(self.err())
    }
}
