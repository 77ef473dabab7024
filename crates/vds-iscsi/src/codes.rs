//! The one table of iSCSI wire codes (RFC 7143): opcodes, login status class/detail, Reject
//! reasons, task management functions and responses, logout reasons and responses, async events.
//! Every other module names these constants instead of writing numbers.

/// PDU opcodes (BHS byte 0, low six bits).
pub mod opcode {
    pub const NOP_OUT: u8 = 0x00;
    pub const SCSI_COMMAND: u8 = 0x01;
    pub const TASK_MGMT_REQUEST: u8 = 0x02;
    pub const LOGIN_REQUEST: u8 = 0x03;
    pub const TEXT_REQUEST: u8 = 0x04;
    pub const DATA_OUT: u8 = 0x05;
    pub const LOGOUT_REQUEST: u8 = 0x06;
    pub const SNACK: u8 = 0x10;
    pub const NOP_IN: u8 = 0x20;
    pub const SCSI_RESPONSE: u8 = 0x21;
    pub const TASK_MGMT_RESPONSE: u8 = 0x22;
    pub const LOGIN_RESPONSE: u8 = 0x23;
    pub const TEXT_RESPONSE: u8 = 0x24;
    pub const DATA_IN: u8 = 0x25;
    pub const LOGOUT_RESPONSE: u8 = 0x26;
    pub const R2T: u8 = 0x31;
    pub const ASYNC_MESSAGE: u8 = 0x32;
    pub const REJECT: u8 = 0x3f;
}

/// The reserved tag value (ITT/TTT "none").
pub const RESERVED_TAG: u32 = 0xffff_ffff;

/// Login status: class in the high byte, detail in the low byte (RFC 7143 §11.13.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LoginStatus(pub u16);

impl LoginStatus {
    pub const SUCCESS: LoginStatus = LoginStatus(0x0000);
    pub const TARGET_MOVED_TEMPORARILY: LoginStatus = LoginStatus(0x0101);
    pub const TARGET_MOVED_PERMANENTLY: LoginStatus = LoginStatus(0x0102);
    /// Malformed request, or a negotiation the target cannot follow.
    pub const INITIATOR_ERROR: LoginStatus = LoginStatus(0x0200);
    pub const AUTHENTICATION_FAILURE: LoginStatus = LoginStatus(0x0201);
    pub const AUTHORIZATION_FAILURE: LoginStatus = LoginStatus(0x0202);
    pub const TARGET_NOT_FOUND: LoginStatus = LoginStatus(0x0203);
    pub const TARGET_REMOVED: LoginStatus = LoginStatus(0x0204);
    pub const UNSUPPORTED_VERSION: LoginStatus = LoginStatus(0x0205);
    pub const TOO_MANY_CONNECTIONS: LoginStatus = LoginStatus(0x0206);
    pub const MISSING_PARAMETER: LoginStatus = LoginStatus(0x0207);
    pub const CANT_INCLUDE_IN_SESSION: LoginStatus = LoginStatus(0x0208);
    pub const SESSION_TYPE_NOT_SUPPORTED: LoginStatus = LoginStatus(0x0209);
    pub const SESSION_DOES_NOT_EXIST: LoginStatus = LoginStatus(0x020A);
    pub const INVALID_DURING_LOGIN: LoginStatus = LoginStatus(0x020B);
    pub const TARGET_ERROR: LoginStatus = LoginStatus(0x0300);
    pub const SERVICE_UNAVAILABLE: LoginStatus = LoginStatus(0x0301);
    pub const OUT_OF_RESOURCES: LoginStatus = LoginStatus(0x0302);

    pub fn class(self) -> u8 {
        (self.0 >> 8) as u8
    }
    pub fn detail(self) -> u8 {
        self.0 as u8
    }
    pub fn from_parts(class: u8, detail: u8) -> Self {
        LoginStatus(u16::from(class) << 8 | u16::from(detail))
    }

    /// The status's name in lower case (RFC 7143 §11.13.5), as metrics label it; a status
    /// outside the table is `other`, so the set of names is fixed.
    pub fn name(self) -> &'static str {
        LOGIN_STATUS_NAMES
            .iter()
            .find(|(s, _)| *s == self)
            .map(|(_, n)| *n)
            .unwrap_or("other")
    }
}

/// Every login status the target sends, with its name.
pub const LOGIN_STATUS_NAMES: &[(LoginStatus, &str)] = &[
    (LoginStatus::SUCCESS, "success"),
    (
        LoginStatus::TARGET_MOVED_TEMPORARILY,
        "target_moved_temporarily",
    ),
    (
        LoginStatus::TARGET_MOVED_PERMANENTLY,
        "target_moved_permanently",
    ),
    (LoginStatus::INITIATOR_ERROR, "initiator_error"),
    (
        LoginStatus::AUTHENTICATION_FAILURE,
        "authentication_failure",
    ),
    (LoginStatus::AUTHORIZATION_FAILURE, "authorization_failure"),
    (LoginStatus::TARGET_NOT_FOUND, "target_not_found"),
    (LoginStatus::TARGET_REMOVED, "target_removed"),
    (LoginStatus::UNSUPPORTED_VERSION, "unsupported_version"),
    (LoginStatus::TOO_MANY_CONNECTIONS, "too_many_connections"),
    (LoginStatus::MISSING_PARAMETER, "missing_parameter"),
    (
        LoginStatus::CANT_INCLUDE_IN_SESSION,
        "cant_include_in_session",
    ),
    (
        LoginStatus::SESSION_TYPE_NOT_SUPPORTED,
        "session_type_not_supported",
    ),
    (
        LoginStatus::SESSION_DOES_NOT_EXIST,
        "session_does_not_exist",
    ),
    (LoginStatus::INVALID_DURING_LOGIN, "invalid_during_login"),
    (LoginStatus::TARGET_ERROR, "target_error"),
    (LoginStatus::SERVICE_UNAVAILABLE, "service_unavailable"),
    (LoginStatus::OUT_OF_RESOURCES, "out_of_resources"),
];

/// The name of `code` in `table`, `other` when it is not there.
pub fn name_in(table: &'static [(u8, &'static str)], code: u8) -> &'static str {
    table
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, n)| *n)
        .unwrap_or("other")
}

/// Reject reasons (RFC 7143 §11.17.1).
pub mod reject {
    pub const DATA_DIGEST_ERROR: u8 = 0x02;
    pub const SNACK_REJECT: u8 = 0x03;
    pub const PROTOCOL_ERROR: u8 = 0x04;
    pub const COMMAND_NOT_SUPPORTED: u8 = 0x05;
    pub const IMMEDIATE_COMMAND_REJECT: u8 = 0x06;
    pub const TASK_IN_PROGRESS: u8 = 0x07;
    pub const INVALID_DATA_ACK: u8 = 0x08;
    pub const INVALID_PDU_FIELD: u8 = 0x09;
    pub const LONG_OPERATION_REJECT: u8 = 0x0a;
    pub const NEGOTIATION_RESET: u8 = 0x0b;
    pub const WAITING_FOR_LOGOUT: u8 = 0x0c;

    /// Every reason with its name, as metrics label it.
    pub const NAMES: &[(u8, &str)] = &[
        (DATA_DIGEST_ERROR, "data_digest_error"),
        (SNACK_REJECT, "snack_reject"),
        (PROTOCOL_ERROR, "protocol_error"),
        (COMMAND_NOT_SUPPORTED, "command_not_supported"),
        (IMMEDIATE_COMMAND_REJECT, "immediate_command_reject"),
        (TASK_IN_PROGRESS, "task_in_progress"),
        (INVALID_DATA_ACK, "invalid_data_ack"),
        (INVALID_PDU_FIELD, "invalid_pdu_field"),
        (LONG_OPERATION_REJECT, "long_operation_reject"),
        (NEGOTIATION_RESET, "negotiation_reset"),
        (WAITING_FOR_LOGOUT, "waiting_for_logout"),
    ];
}

/// Task management functions (RFC 7143 §11.5.1).
pub mod tmf {
    pub const ABORT_TASK: u8 = 1;
    pub const ABORT_TASK_SET: u8 = 2;
    pub const CLEAR_ACA: u8 = 3;
    pub const CLEAR_TASK_SET: u8 = 4;
    pub const LOGICAL_UNIT_RESET: u8 = 5;
    pub const TARGET_WARM_RESET: u8 = 6;
    pub const TARGET_COLD_RESET: u8 = 7;
    pub const TASK_REASSIGN: u8 = 8;

    /// Every function with its name, as metrics label it.
    pub const NAMES: &[(u8, &str)] = &[
        (ABORT_TASK, "abort_task"),
        (ABORT_TASK_SET, "abort_task_set"),
        (CLEAR_ACA, "clear_aca"),
        (CLEAR_TASK_SET, "clear_task_set"),
        (LOGICAL_UNIT_RESET, "logical_unit_reset"),
        (TARGET_WARM_RESET, "target_warm_reset"),
        (TARGET_COLD_RESET, "target_cold_reset"),
        (TASK_REASSIGN, "task_reassign"),
    ];
}

/// Task management responses (RFC 7143 §11.6.1).
pub mod tmf_response {
    pub const FUNCTION_COMPLETE: u8 = 0;
    pub const TASK_DOES_NOT_EXIST: u8 = 1;
    pub const LUN_DOES_NOT_EXIST: u8 = 2;
    pub const TASK_STILL_ALLEGIANT: u8 = 3;
    pub const TASK_REASSIGNMENT_NOT_SUPPORTED: u8 = 4;
    pub const FUNCTION_NOT_SUPPORTED: u8 = 5;
    pub const AUTHORIZATION_FAILED: u8 = 6;
    pub const FUNCTION_REJECTED: u8 = 255;

    /// Every response with its name, as metrics label it.
    pub const NAMES: &[(u8, &str)] = &[
        (FUNCTION_COMPLETE, "function_complete"),
        (TASK_DOES_NOT_EXIST, "task_does_not_exist"),
        (LUN_DOES_NOT_EXIST, "lun_does_not_exist"),
        (TASK_STILL_ALLEGIANT, "task_still_allegiant"),
        (
            TASK_REASSIGNMENT_NOT_SUPPORTED,
            "task_reassignment_not_supported",
        ),
        (FUNCTION_NOT_SUPPORTED, "function_not_supported"),
        (AUTHORIZATION_FAILED, "authorization_failed"),
        (FUNCTION_REJECTED, "function_rejected"),
    ];
}

/// Logout reasons (request) and responses.
pub mod logout {
    pub const CLOSE_SESSION: u8 = 0;
    pub const CLOSE_CONNECTION: u8 = 1;
    pub const REMOVE_FOR_RECOVERY: u8 = 2;

    pub const SUCCESS: u8 = 0;
    pub const CID_NOT_FOUND: u8 = 1;
    pub const RECOVERY_NOT_SUPPORTED: u8 = 2;
    pub const CLEANUP_FAILED: u8 = 3;
}

/// Async message events (RFC 7143 §11.9.1).
pub mod async_event {
    pub const SCSI_EVENT: u8 = 0;
    pub const LOGOUT_REQUEST: u8 = 1;
    pub const CONNECTION_DROP: u8 = 2;
    pub const SESSION_DROP: u8 = 3;
    pub const RENEGOTIATE: u8 = 4;
}

/// SCSI Response "Response" field.
pub mod scsi_response {
    pub const COMMAND_COMPLETED: u8 = 0x00;
    pub const TARGET_FAILURE: u8 = 0x01;
}

/// Login stages (CSG/NSG).
pub mod stage {
    pub const SECURITY: u8 = 0;
    pub const OPERATIONAL: u8 = 1;
    pub const FULL_FEATURE: u8 = 3;
}
