//! The session table: TSIH allocation, lookup by (initiator name, ISID, target) for session
//! reinstatement, per-target session counts, and the connected-initiators query.

use std::collections::HashMap;

use tokio::sync::mpsc;
use uuid::Uuid;

use crate::ConnCtl;

/// A logged-in normal session as the table keeps it.
pub(crate) struct SessionEntry {
    pub initiator: String,
    pub isid: [u8; 6],
    pub target: Uuid,
    pub portal: Uuid,
    pub conn_id: u64,
    pub ctl: mpsc::UnboundedSender<ConnCtl>,
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
