//! The JSON of the live sessions (`GET /v1/sessions`, `GET /v1/targets/{id}/sessions`) and of
//! a LUN's paths (`GET /v1/luns/{id}/paths`), INTERFACE.md "Resources". Built from the data
//! path's snapshot as the provider answers it; nothing here is stored or accepted as input.
//! No secret is part of it: a connection says only whether CHAP was used.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;
use vds_model::PathInfo;
use vds_provider::{ConnectionSnapshot, NegotiatedKeys, SessionCounters, SessionSnapshot};

/// An ISID as its 12 lower-case hex digits (how `iscsiadm` and targetcli show it).
fn isid_hex(isid: &[u8; 6]) -> String {
    isid.iter().map(|b| format!("{b:02x}")).collect()
}

/// A digest key's value as negotiated (`CRC32C` or `None`).
fn digest(on: bool) -> &'static str {
    if on {
        "CRC32C"
    } else {
        "None"
    }
}

/// The operational keys of a connection (RFC 7143 §13), in snake_case.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeysJson {
    #[schema(example = "CRC32C")]
    pub header_digest: &'static str,
    #[schema(example = "None")]
    pub data_digest: &'static str,
    /// What the target accepts per PDU (its MaxRecvDataSegmentLength).
    pub target_max_recv_data_segment_length: u32,
    /// What the initiator accepts per PDU (its MaxRecvDataSegmentLength).
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

impl From<&NegotiatedKeys> for KeysJson {
    fn from(k: &NegotiatedKeys) -> Self {
        KeysJson {
            header_digest: digest(k.header_digest),
            data_digest: digest(k.data_digest),
            target_max_recv_data_segment_length: k.target_max_recv_data_segment_length,
            initiator_max_recv_data_segment_length: k.initiator_max_recv_data_segment_length,
            max_burst_length: k.max_burst_length,
            first_burst_length: k.first_burst_length,
            immediate_data: k.immediate_data,
            initial_r2t: k.initial_r2t,
            max_outstanding_r2t: k.max_outstanding_r2t,
            error_recovery_level: k.error_recovery_level,
            data_pdu_in_order: k.data_pdu_in_order,
            data_sequence_in_order: k.data_sequence_in_order,
            default_time2wait: k.default_time2wait,
            default_time2retain: k.default_time2retain,
            max_connections: k.max_connections,
        }
    }
}

/// One connection of a session.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConnectionJson {
    pub cid: u16,
    /// The portal it came in through.
    pub portal: Uuid,
    /// The target's end, `addr:port` (`[v6]:port`).
    #[schema(example = "127.0.0.3:3260")]
    pub local_address: String,
    /// The initiator's end.
    #[schema(example = "127.0.0.1:51234")]
    pub peer_address: String,
    /// `chap` or `none` (never a name or a secret).
    #[schema(example = "none")]
    pub auth_method: &'static str,
    pub keys: KeysJson,
}

impl From<&ConnectionSnapshot> for ConnectionJson {
    fn from(c: &ConnectionSnapshot) -> Self {
        ConnectionJson {
            cid: c.cid,
            portal: c.portal,
            local_address: c.local.to_string(),
            peer_address: c.peer.to_string(),
            auth_method: if c.chap { "chap" } else { "none" },
            keys: KeysJson::from(&c.keys),
        }
    }
}

/// What a session's commands did since login.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CountersJson {
    /// SCSI commands answered with a status.
    pub commands: u64,
    /// Data-In bytes sent.
    pub bytes_read: u64,
    /// Data-Out bytes received.
    pub bytes_written: u64,
    /// Commands answered CHECK CONDITION.
    pub errors: u64,
}

impl From<&SessionCounters> for CountersJson {
    fn from(c: &SessionCounters) -> Self {
        CountersJson {
            commands: c.commands,
            bytes_read: c.bytes_read,
            bytes_written: c.bytes_written,
            errors: c.errors,
        }
    }
}

/// A logged-in normal session.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionJson {
    pub target: Uuid,
    pub target_iqn: String,
    pub initiator: String,
    pub initiator_alias: Option<String>,
    /// 12 hex digits.
    #[schema(example = "400001370000")]
    pub isid: String,
    pub tsih: u16,
    pub portal_group_tag: u16,
    /// The ALUA target port group of the session's I_T nexus.
    pub target_port_group: u16,
    /// RFC 3339.
    pub login_time: String,
    /// The leading connection first.
    pub connections: Vec<ConnectionJson>,
    pub counters: CountersJson,
}

impl From<&SessionSnapshot> for SessionJson {
    fn from(s: &SessionSnapshot) -> Self {
        let t = time::OffsetDateTime::from(s.login_time);
        SessionJson {
            target: s.target,
            target_iqn: s.target_iqn.clone(),
            initiator: s.initiator.clone(),
            initiator_alias: s.initiator_alias.clone(),
            isid: isid_hex(&s.isid),
            tsih: s.tsih,
            portal_group_tag: s.portal_group_tag,
            target_port_group: s.target_port_group,
            login_time: t
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| t.unix_timestamp().to_string()),
            connections: s.connections.iter().map(ConnectionJson::from).collect(),
            counters: CountersJson::from(&s.counters),
        }
    }
}

/// `VDS_PATH_ID`, each half as `0x` and 16 hex digits (a JSON number would lose bits).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PathIdJson {
    #[schema(example = "0x9f1c2a7e4b5d4e21")]
    pub source_id: String,
    #[schema(example = "0x0001400001370000")]
    pub path_id: String,
}

/// One path to a LUN (`VDS_PATH_INFO`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PathJson {
    pub id: PathIdJson,
    /// `VDS_HWPROVIDER_TYPE`: always `iscsi`.
    #[serde(rename = "type")]
    #[schema(example = "iscsi")]
    pub kind: &'static str,
    /// `online`, `standby` or `failed` (VDS_PATH_STATUS).
    #[schema(example = "online")]
    pub status: String,
    pub target: Uuid,
    /// The portal of the session's leading connection.
    pub target_portal: Uuid,
    /// That portal's controller.
    pub controller: Option<Uuid>,
    pub initiator: String,
    /// The initiator's IP address and TCP port (`VDS_IPADDRESS`).
    #[schema(example = "127.0.0.1")]
    pub initiator_address: String,
    pub initiator_port: u16,
    /// The session it is (as `GET /v1/sessions` shows it).
    pub isid: String,
    pub tsih: u16,
}

impl From<&PathInfo> for PathJson {
    fn from(p: &PathInfo) -> Self {
        PathJson {
            id: PathIdJson {
                source_id: format!("0x{:016x}", p.source_id),
                path_id: format!("0x{:016x}", p.path_id),
            },
            kind: "iscsi",
            status: p.status.short_name().into(),
            target: p.target,
            target_portal: p.portal,
            controller: p.controller,
            initiator: p.initiator.clone(),
            initiator_address: p.initiator_address.ip().to_string(),
            initiator_port: p.initiator_address.port(),
            isid: isid_hex(&p.isid),
            tsih: p.tsih,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isid_and_digests_are_written_as_iscsi_shows_them() {
        assert_eq!(
            isid_hex(&[0x40, 0x00, 0x01, 0x37, 0x00, 0x0a]),
            "40000137000a"
        );
        assert_eq!(digest(true), "CRC32C");
        assert_eq!(digest(false), "None");
    }
}
