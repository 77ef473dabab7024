//! vds-dataplane: the seam between the management engine (`vds-provider`) and the iSCSI data
//! path (`vds-target`). A crate of its own so that both depend on it and neither on the other:
//! the data path does not link the engine or its store (SQLite).
//!
//! The provider owns configuration; the data path serves it. After every committed change the
//! provider publishes a complete, immutable [`DataView`]; the data path swaps it in atomically
//! (new logins and new commands see the new view; nothing is half-applied). Listener lifecycle is
//! explicit ([`DataPlane::bind_portal`], [`DataPlane::unbind_portal`]) because its failures are
//! VDS answers (FAILED portal, converted OS error).
//!
//! Logical units are shared objects (`Arc<vds_scsi::LogicalUnit>`): the provider creates them,
//! changes their state (`SetStatus` quiesces and flushes through them) and hands them to the data
//! path inside the view.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use uuid::Uuid;

/// CHAP configuration of one target (BEHAVIOUR §10). `Debug` shows names and lengths, never
/// the secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ChapConfig {
    /// Secret set without an initiator name: any CHAP_N is accepted with it.
    pub default_secret: Option<Vec<u8>>,
    /// Per-initiator secrets: apply when CHAP_N equals the initiator name.
    pub initiator_secrets: Vec<(String, Vec<u8>)>,
    /// Secrets the target remembers for initiators (mutual CHAP: the target answers the
    /// initiator's challenge with this secret). Keyed by initiator name; `""` for any.
    pub mutual_secrets: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for ChapConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        /// A secret by its length only.
        struct Redacted(usize);
        impl std::fmt::Debug for Redacted {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "<{} bytes>", self.0)
            }
        }
        let named = |list: &[(String, Vec<u8>)]| -> Vec<(String, Redacted)> {
            list.iter()
                .map(|(n, s)| (n.clone(), Redacted(s.len())))
                .collect()
        };
        f.debug_struct("ChapConfig")
            .field(
                "default_secret",
                &self.default_secret.as_ref().map(|s| Redacted(s.len())),
            )
            .field("initiator_secrets", &named(&self.initiator_secrets))
            .field("mutual_secrets", &named(&self.mutual_secrets))
            .finish()
    }
}

impl ChapConfig {
    /// CHAP is required when any target secret is set.
    pub fn required(&self) -> bool {
        self.default_secret.is_some() || !self.initiator_secrets.is_empty()
    }
}

/// One portal group of a target as the data path needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalGroupView {
    pub id: Uuid,
    /// Target portal group tag (TargetPortalGroupTag, relative target port).
    pub tag: u16,
    pub portals: Vec<Uuid>,
    /// The ALUA target port group of this target port: the group id of the controller its
    /// portals belong to (BEHAVIOUR.md §14).
    pub tpg: u16,
}

/// One iSCSI target as the data path serves it.
#[derive(Clone)]
pub struct TargetView {
    pub id: Uuid,
    pub iqn: String,
    pub alias: String,
    pub chap: ChapConfig,
    pub portal_groups: Vec<PortalGroupView>,
    pub luns: Arc<vds_scsi::LunMap>,
}

/// One portal (listener address), whether it is to be listed by SendTargets, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalView {
    pub id: Uuid,
    pub addr: SocketAddr,
    /// Only ONLINE portals are listed in SendTargets.
    pub online: bool,
    /// The validated `host:port` SendTargets reports instead of `addr` (BEHAVIOUR.md §4).
    pub advertise: Option<String>,
}

/// The whole configuration the data path serves.
#[derive(Clone, Default)]
pub struct DataView {
    pub targets: Vec<TargetView>,
    pub portals: Vec<PortalView>,
}

/// The operational keys one connection settled on at login (RFC 7143 §13), as the target
/// applies them. Secrets and authentication keys are not part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedKeys {
    pub header_digest: bool,
    pub data_digest: bool,
    /// Largest data segment the target accepts (its own declaration).
    pub target_max_recv_data_segment_length: u32,
    /// Largest data segment the initiator accepts (what the target may send).
    pub initiator_max_recv_data_segment_length: u32,
    pub max_burst_length: u32,
    pub first_burst_length: u32,
    pub immediate_data: bool,
    pub initial_r2t: bool,
    pub max_outstanding_r2t: u16,
    pub error_recovery_level: u8,
    pub data_pdu_in_order: bool,
    pub data_sequence_in_order: bool,
    pub default_time2wait: u16,
    pub default_time2retain: u16,
    pub max_connections: u16,
}

/// One connection of a live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSnapshot {
    /// The connection id (CID) the initiator gave.
    pub cid: u16,
    /// The portal it came in through.
    pub portal: Uuid,
    /// The target's end of the TCP connection.
    pub local: SocketAddr,
    /// The initiator's end.
    pub peer: SocketAddr,
    /// Whether the initiator authenticated with CHAP (never the name or secret used).
    pub chap: bool,
    pub keys: NegotiatedKeys,
}

/// What a session's commands did since login. Written by the connection's own task only and
/// read here as a snapshot (each counter exact; the four together not one atomic instant).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionCounters {
    /// SCSI commands answered with a status.
    pub commands: u64,
    /// Data-In bytes sent (what the initiator read).
    pub bytes_read: u64,
    /// Data-Out bytes received, immediate and solicited (what the initiator wrote).
    pub bytes_written: u64,
    /// Commands answered CHECK CONDITION.
    pub errors: u64,
}

/// One logged-in normal session as the data path serves it now (`GET /v1/sessions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSnapshot {
    pub target: Uuid,
    pub target_iqn: String,
    pub initiator: String,
    pub initiator_alias: Option<String>,
    pub isid: [u8; 6],
    pub tsih: u16,
    /// The target portal group tag the session logged in through.
    pub portal_group_tag: u16,
    /// The ALUA target port group of its I_T nexus ([`PortalGroupView::tpg`] at login).
    pub target_port_group: u16,
    pub login_time: SystemTime,
    /// Its connections; the first is the leading one.
    pub connections: Vec<ConnectionSnapshot>,
    pub counters: SessionCounters,
}

/// Implemented by the data path (`vds-target`); called by the provider. Methods may block
/// (the provider calls them from its own worker threads, never from an async executor).
pub trait DataPlane: Send + Sync {
    /// Swap in a new configuration.
    fn publish(&self, view: Arc<DataView>);
    /// Start listening for portal `id` on `addr`. The error is the OS error of bind/listen
    /// (EADDRINUSE, EADDRNOTAVAIL, EACCES, ...), which the provider converts to an HRESULT.
    fn bind_portal(&self, id: Uuid, addr: SocketAddr) -> std::io::Result<()>;
    /// Stop portal `id`: close the listener at once, send AsyncEvent 1 (logout requested,
    /// Parameter3 = `logout_timeout` in seconds) on every connection that came through it,
    /// wait up to `logout_timeout` for them to log out, then drop the rest. Commands already
    /// accepted complete before a connection is dropped (no acknowledged write is lost).
    /// Returns when nothing of the portal is left.
    fn unbind_portal(&self, id: Uuid, logout_timeout: Duration);
    /// Connected initiator names of a target (for `GET /v1/targets/{id}/initiators`).
    fn initiators(&self, target: Uuid) -> Vec<String>;
    /// Every logged-in normal session with its connections and counters, by TSIH. Bounded by
    /// the session limits; takes the session table's lock once and reads no connection's
    /// state but its counters.
    fn sessions_snapshot(&self) -> Vec<SessionSnapshot>;
}

#[cfg(test)]
mod tests {
    use super::ChapConfig;

    /// Issue 10 item 9: the data path's CHAP configuration never prints a secret.
    #[test]
    fn chap_config_debug_hides_the_secrets() {
        let c = ChapConfig {
            default_secret: Some(b"default-sekrit".to_vec()),
            initiator_secrets: vec![("iqn.2026-01.test:a".into(), b"initiator-sekrit".to_vec())],
            mutual_secrets: vec![("".into(), b"mutual-sekrit".to_vec())],
        };
        let shown = format!("{c:?} {c:#?}");
        assert!(!shown.contains("sekrit"), "{shown}");
        for bytes in [
            &b"default-sekrit"[..],
            b"initiator-sekrit",
            b"mutual-sekrit",
        ] {
            assert!(!shown.contains(&format!("{bytes:?}")), "{shown}");
        }
        assert!(shown.contains("iqn.2026-01.test:a"), "{shown}");
    }
}
