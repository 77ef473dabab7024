//! Negotiation inputs and results: what the target offers ([`TargetLimits`]) and what a login
//! settled on ([`SessionParams`]), with the RFC 7143 defaults.

/// The target's own values for the negotiable keys (its side of each result function).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetLimits {
    /// MaxRecvDataSegmentLength we declare: the largest data segment we accept in FFP.
    pub max_recv_data_segment_length: u32,
    /// Our MaxBurstLength (Minimum).
    pub max_burst_length: u32,
    /// Our FirstBurstLength (Minimum).
    pub first_burst_length: u32,
    /// Our MaxOutstandingR2T (Minimum).
    pub max_outstanding_r2t: u16,
    /// Our InitialR2T (OR): `false` lets the initiator send unsolicited Data-Out.
    pub initial_r2t: bool,
    /// Our ImmediateData (AND).
    pub immediate_data: bool,
    /// Whether we accept CRC32C header/data digests when offered.
    pub allow_digests: bool,
    pub default_time2wait: u16,
    pub default_time2retain: u16,
    /// Commands the CmdSN window admits at once (MaxCmdSN - ExpCmdSN + 1).
    pub queue_depth: u32,
}

impl Default for TargetLimits {
    fn default() -> Self {
        TargetLimits {
            max_recv_data_segment_length: 262_144,
            max_burst_length: 1 << 20,
            // A 128 or 256 KiB write goes as immediate data in one PDU (no R2T round trip).
            first_burst_length: 262_144,
            max_outstanding_r2t: 16,
            initial_r2t: false,
            immediate_data: true,
            allow_digests: true,
            default_time2wait: 2,
            default_time2retain: 20,
            queue_depth: 128,
        }
    }
}

/// Normal or discovery session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionType {
    Normal,
    Discovery,
}

/// Everything a completed login settled on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionParams {
    pub session_type: SessionType,
    pub initiator_name: String,
    pub initiator_alias: Option<String>,
    /// The target of a normal session.
    pub target_name: Option<String>,
    pub isid: [u8; 6],
    pub tsih: u16,
    pub cid: u16,
    pub header_digest: bool,
    pub data_digest: bool,
    /// Largest data segment we accept (our declaration).
    pub max_recv_data_segment_length: u32,
    /// Largest data segment we may send (the initiator's declaration).
    pub max_xmit_data_segment_length: u32,
    pub max_burst_length: u32,
    pub first_burst_length: u32,
    pub initial_r2t: bool,
    pub immediate_data: bool,
    pub max_outstanding_r2t: u16,
    pub data_pdu_in_order: bool,
    pub data_sequence_in_order: bool,
    pub error_recovery_level: u8,
    pub default_time2wait: u16,
    pub default_time2retain: u16,
    pub max_connections: u16,
    /// The next CmdSN the session expects (the login's CmdSN).
    pub exp_cmd_sn: u32,
    /// The next StatSN this connection will use.
    pub stat_sn: u32,
    /// The CHAP_N the initiator authenticated with, if it used CHAP.
    pub chap_name: Option<String>,
}

impl SessionParams {
    /// RFC 7143 defaults before any key is negotiated.
    pub fn defaults(limits: &TargetLimits) -> Self {
        SessionParams {
            session_type: SessionType::Normal,
            initiator_name: String::new(),
            initiator_alias: None,
            target_name: None,
            isid: [0; 6],
            tsih: 0,
            cid: 0,
            header_digest: false,
            data_digest: false,
            // Declarative: until we declare ours the default holds in both directions.
            max_recv_data_segment_length: 8192.min(limits.max_recv_data_segment_length),
            max_xmit_data_segment_length: 8192,
            max_burst_length: 262_144.min(limits.max_burst_length),
            first_burst_length: 65_536.min(limits.first_burst_length),
            initial_r2t: true,
            immediate_data: limits.immediate_data,
            max_outstanding_r2t: 1,
            data_pdu_in_order: true,
            data_sequence_in_order: true,
            error_recovery_level: 0,
            default_time2wait: 2,
            default_time2retain: 20,
            max_connections: 1,
            exp_cmd_sn: 0,
            stat_sn: 0,
            chap_name: None,
        }
    }
}
