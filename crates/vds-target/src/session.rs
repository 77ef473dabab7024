//! The session table: TSIH allocation, lookup by (initiator name, ISID, target) for session
//! reinstatement, per-target session counts, the connected-initiators query and the live
//! sessions' snapshot (`DataPlane::sessions_snapshot`), with each session's counters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::mpsc;
use uuid::Uuid;
use vds_dataplane::{ConnectionSnapshot, SessionCounters, SessionSnapshot};

use crate::ConnCtl;

/// A logged-in normal session as the table keeps it.
pub(crate) struct SessionEntry {
    pub initiator: String,
    pub isid: [u8; 6],
    pub target: Uuid,
    pub portal: Uuid,
    pub conn_id: u64,
    pub ctl: mpsc::UnboundedSender<ConnCtl>,
    /// What the snapshot reports besides the fields above, fixed at login.
    pub info: SessionDetail,
    /// Written by the connection's task, read by the snapshot.
    pub stats: Arc<SessionStats>,
}

/// The parts of a session's snapshot settled at login.
pub(crate) struct SessionDetail {
    pub target_iqn: String,
    pub initiator_alias: Option<String>,
    pub portal_group_tag: u16,
    pub target_port_group: u16,
    pub login_time: SystemTime,
    pub connection: ConnectionSnapshot,
}

/// A session's counters (BEHAVIOUR.md §14 "Sessions"). Only its connection's task writes them,
/// with a Relaxed load and store (no read-modify-write, no lock: on x86 a plain add to a line
/// that stays in that core's cache); the snapshot reads them Relaxed. One writer makes each
/// counter exact.
#[derive(Debug, Default)]
pub(crate) struct SessionStats {
    commands: AtomicU64,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
    errors: AtomicU64,
}

/// SCSI status CHECK CONDITION.
const CHECK_CONDITION: u8 = 0x02;

/// Adds `n` to a counter only one thread writes.
fn bump(c: &AtomicU64, n: u64) {
    if n != 0 {
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }
}

impl SessionStats {
    /// One command answered with `status`, having sent `read` Data-In bytes and received
    /// `written` Data-Out bytes. Called by the owning connection's task only.
    pub fn command(&self, status: u8, read: usize, written: usize) {
        bump(&self.commands, 1);
        bump(&self.bytes_read, read as u64);
        bump(&self.bytes_written, written as u64);
        if status == CHECK_CONDITION {
            bump(&self.errors, 1);
        }
    }

    pub fn snapshot(&self) -> SessionCounters {
        SessionCounters {
            commands: self.commands.load(Ordering::Relaxed),
            bytes_read: self.bytes_read.load(Ordering::Relaxed),
            bytes_written: self.bytes_written.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

/// A session as [`crate::DataPath::sessions`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub tsih: u16,
    pub initiator: String,
    pub isid: [u8; 6],
    pub target: Uuid,
    pub portal: Uuid,
}

#[derive(Default)]
pub(crate) struct SessionTable {
    by_tsih: HashMap<u16, SessionEntry>,
    last_tsih: u16,
}

impl SessionTable {
    /// A TSIH not in use (never 0).
    pub fn alloc_tsih(&mut self) -> u16 {
        loop {
            self.last_tsih = self.last_tsih.wrapping_add(1);
            if self.last_tsih != 0 && !self.by_tsih.contains_key(&self.last_tsih) {
                return self.last_tsih;
            }
        }
    }

    pub fn insert(&mut self, tsih: u16, e: SessionEntry) {
        self.by_tsih.insert(tsih, e);
    }

    pub fn get(&self, tsih: u16) -> Option<&SessionEntry> {
        self.by_tsih.get(&tsih)
    }

    /// Remove the session if it still belongs to connection `conn_id`.
    pub fn remove_conn(&mut self, tsih: u16, conn_id: u64) {
        if self
            .by_tsih
            .get(&tsih)
            .is_some_and(|e| e.conn_id == conn_id)
        {
            self.by_tsih.remove(&tsih);
        }
    }

    /// The session of this initiator port on this target, for reinstatement.
    pub fn find(&self, initiator: &str, isid: [u8; 6], target: Uuid) -> Option<u16> {
        self.by_tsih
            .iter()
            .find(|(_, e)| {
                e.isid == isid && e.target == target && e.initiator.eq_ignore_ascii_case(initiator)
            })
            .map(|(t, _)| *t)
    }

    /// (target, portal) of every session, for the telemetry.
    pub fn ports(&self) -> Vec<(Uuid, Uuid)> {
        self.by_tsih
            .values()
            .map(|e| (e.target, e.portal))
            .collect()
    }

    pub fn count_for(&self, target: Uuid) -> usize {
        self.by_tsih.values().filter(|e| e.target == target).count()
    }

    pub fn initiators(&self, target: Uuid) -> Vec<String> {
        let mut v: Vec<String> = self
            .by_tsih
            .values()
            .filter(|e| e.target == target)
            .map(|e| e.initiator.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    pub fn list(&self) -> Vec<SessionInfo> {
        let mut v: Vec<SessionInfo> = self
            .by_tsih
            .iter()
            .map(|(t, e)| SessionInfo {
                tsih: *t,
                initiator: e.initiator.clone(),
                isid: e.isid,
                target: e.target,
                portal: e.portal,
            })
            .collect();
        v.sort_by_key(|s| s.tsih);
        v
    }

    /// Every session as `GET /v1/sessions` shows it, by TSIH.
    pub fn snapshot(&self) -> Vec<SessionSnapshot> {
        let mut v: Vec<SessionSnapshot> = self
            .by_tsih
            .iter()
            .map(|(t, e)| SessionSnapshot {
                target: e.target,
                target_iqn: e.info.target_iqn.clone(),
                initiator: e.initiator.clone(),
                initiator_alias: e.info.initiator_alias.clone(),
                isid: e.isid,
                tsih: *t,
                portal_group_tag: e.info.portal_group_tag,
                target_port_group: e.info.target_port_group,
                login_time: e.info.login_time,
                connections: vec![e.info.connection.clone()],
                counters: e.stats.snapshot(),
            })
            .collect();
        v.sort_by_key(|s| s.tsih);
        v
    }

    /// Every session's target, portal and control channel.
    pub fn routes(&self) -> Vec<(Uuid, Uuid, mpsc::UnboundedSender<ConnCtl>)> {
        self.by_tsih
            .values()
            .map(|e| (e.target, e.portal, e.ctl.clone()))
            .collect()
    }

    /// Sessions of a target (for TARGET COLD RESET).
    pub fn of_target(&self, target: Uuid) -> Vec<(u16, mpsc::UnboundedSender<ConnCtl>, u64)> {
        self.by_tsih
            .iter()
            .filter(|(_, e)| e.target == target)
            .map(|(t, e)| (*t, e.ctl.clone(), e.conn_id))
            .collect()
    }
}
