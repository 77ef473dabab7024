//! vds-iscsi: the iSCSI protocol (RFC 7143) without I/O.
//!
//! - [`pdu`]: the PDU codec (BHS view, typed headers, AHS, digests, padding).
//! - [`text`]: login/text key lists and value encodings.
//! - [`chap`]: CHAP digests and verification.
//! - [`login`]: the target side of the login phase.
//! - [`conn`]: the full-feature phase of one connection (commands, data, R2T, NOP, TMF,
//!   text, logout, async messages, sequence-number windows).
//! - [`codes`]: the one table of wire codes.
//!
//! No sockets and no clock: the caller feeds PDUs and the current time, and sends what comes
//! back. Nothing here panics on peer input.

pub mod chap;
pub mod codes;
pub mod conn;
pub mod login;
pub mod params;
pub mod pdu;
pub mod text;

pub use codes::LoginStatus;
pub use params::{SessionParams, SessionType, TargetLimits};
pub use pdu::{Bhs, Digests, Header, Pdu, PduError};
