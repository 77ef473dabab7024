//! What logical units tell the provider (`vds_scsi::LuEvents`), and the stand-in store of a
//! LUN whose backing file or device is missing.
//!
//! LU callbacks come from I/O threads and must not block for long, so they queue a message; a
//! provider thread applies it (FAILED status persisted, MODIFY event; reservation blobs
//! persisted). A reservation change with APTPL waits (boundedly) until its blob is stored:
//! the PERSISTENT RESERVE OUT is acknowledged to the initiator only after that, so a crash
//! never loses an acknowledged APTPL registration or reservation.

use std::io;
use std::sync::mpsc::{Sender, SyncSender};
use std::time::Duration;

use parking_lot::Mutex;
use uuid::Uuid;
use vds_backstore::BackingStore;

/// A message from the data path.
pub(crate) enum HookMsg {
    /// The LU failed an I/O and switched itself to FAILED.
    Failed(Uuid, String),
    /// Persistent reservations changed (APTPL); the sender is told once the blob is stored.
    Reservations(Uuid, Vec<u8>, SyncSender<()>),
}

/// Longest a PERSISTENT RESERVE OUT waits for its APTPL state to be stored.
const PERSIST_WAIT: Duration = Duration::from_secs(5);

/// The provider's `LuEvents` implementation.
pub(crate) struct Hooks {
    tx: Mutex<Sender<HookMsg>>,
}

impl Hooks {
    pub(crate) fn new(tx: Sender<HookMsg>) -> Hooks {
        Hooks { tx: Mutex::new(tx) }
    }
}

impl vds_scsi::LuEvents for Hooks {
    fn failed(&self, lu: Uuid, error: &io::Error) {
        // A closed channel means the provider is gone; nothing is left to record it.
        let _ = self.tx.lock().send(HookMsg::Failed(lu, error.to_string()));
    }

    fn persist_reservations(&self, lu: Uuid, state: &[u8]) {
        let (done, stored) = std::sync::mpsc::sync_channel(1);
        if self
            .tx
            .lock()
            .send(HookMsg::Reservations(lu, state.to_vec(), done))
            .is_err()
        {
            return;
        }
        // Bounded: a provider holding its state lock for long (a slow flush it waits on) must
        // not hang the command forever; the write still happens, only later.
        if stored.recv_timeout(PERSIST_WAIT).is_err() {
            tracing::warn!(lu = %lu, "reservation state not yet stored when the command completed");
        }
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
