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

/// Upper bounds of the data path's latency histograms, in seconds (50 us to 1 s); a last,
/// implicit bucket holds what took longer.
pub const LATENCY_BUCKETS_SECONDS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0,
];

/// Sense key names (SPC-5 table 52), for the `sense_key` label.
pub const SENSE_KEY_NAMES: [&str; 16] = [
    "no_sense",
    "recovered_error",
    "not_ready",
    "medium_error",
    "hardware_error",
    "illegal_request",
    "unit_attention",
    "data_protect",
    "blank_check",
    "vendor_specific",
    "copy_aborted",
    "aborted_command",
    "reserved_0c",
    "volume_overflow",
    "miscompare",
    "completed",
];

/// A latency histogram: `buckets[i]` counts what took at most `LATENCY_BUCKETS_SECONDS[i]`
/// and more than the bound before it (not cumulative); the last entry counts the rest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Histogram {
    pub buckets: [u64; 15],
    pub sum_nanos: u64,
}

impl Histogram {
    /// Observations in all buckets.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a += b;
        }
        self.sum_nanos += other.sum_nanos;
    }
}

/// What the commands sent to one logical unit did, summed over every connection since the
/// daemon started (or since the LU was last mapped).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LunTelemetry {
    pub lun: Uuid,
    /// Commands answered, by kind: READ (6/10/12/16), WRITE (6/10/12/16, WRITE AND VERIFY),
    /// SYNCHRONIZE CACHE (10/16) and every other command.
    pub reads: u64,
    pub writes: u64,
    pub flushes: u64,
    pub others: u64,
    /// Data-In bytes sent and Data-Out bytes received, every command.
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Commands answered CHECK CONDITION, by sense key (0..=15).
    pub errors_by_sense_key: [u64; 16],
    /// Commands handed to the LU and not yet answered.
    pub in_flight: u64,
    /// From the socket read that made the command whole (its last PDU) to the end of the
    /// transport's turn that queued its answer.
    pub read_latency: Histogram,
    pub write_latency: Histogram,
    /// SYNCHRONIZE CACHE: the backing store's flush.
    pub flush_latency: Histogram,
}

/// Sessions and connections of one target through one portal, now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortTelemetry {
    pub target: Uuid,
    pub portal: Uuid,
    pub sessions: u64,
}

/// Logins through a portal that ended with one status (`target`: the target the initiator
/// named, when it exists; `None` for discovery sessions and unknown targets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginTelemetry {
    pub target: Option<Uuid>,
    pub portal: Uuid,
    /// The login status class and detail (0x0000: accepted).
    pub status: u16,
    /// Its name (`vds_iscsi::codes::LoginStatus::name`).
    pub status_name: &'static str,
    pub count: u64,
}

/// Everything the data path counts, merged at the moment it is asked (each counter exact,
/// the whole not one atomic instant). Bounded: LUNs, targets and portals by the
/// configuration, reasons and functions by fixed tables.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Telemetry {
    pub luns: Vec<LunTelemetry>,
    pub ports: Vec<PortTelemetry>,
    /// Open TCP connections by portal (logged in or not).
    pub portal_connections: Vec<(Uuid, u64)>,
    pub logins: Vec<LoginTelemetry>,
    /// PDUs answered with Reject, by reason name.
    pub rejects: Vec<(&'static str, u64)>,
    /// Task management functions answered, by function name and response name.
    pub tmfs: Vec<(&'static str, &'static str, u64)>,
    /// Unit attention conditions reported to initiators, by ASC/ASCQ name.
    pub unit_attentions: Vec<(&'static str, u64)>,
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
    /// The data path's counters, merged now (see [`Telemetry`]). Takes no lock the command
    /// path takes. A data plane that serves no connections has nothing to count.
    fn telemetry(&self) -> Telemetry {
        Telemetry::default()
    }
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
