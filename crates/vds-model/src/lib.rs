//! vds-model: the VDS hardware-provider object model, pure (no I/O, no clock, no serde).
//!
//! - [`enums`]: every enumeration and flag set with its exact VDS value and names;
//! - [`hresult`]: the one table of HRESULTs, `HRESULT_FROM_WIN32` and errno mapping;
//! - [`objects`]: provider, subsystem, controller, drive, LUN (with plexes), target, portal
//!   group, portal, job;
//! - [`names`]: iSCSI names (RFC 3720), the unmasking-list grammar, CHAP secret length, a
//!   portal's advertised address.

pub mod enums;
pub mod hresult;
pub mod names;
pub mod objects;

pub use enums::*;
pub use hresult::Hresult;
pub use names::{
    validate_iscsi_name, AdvertiseError, AdvertisedAddress, ChapSecret, NameError,
    SecretLengthError, UnmaskingError, UnmaskingList,
};
pub use objects::*;
