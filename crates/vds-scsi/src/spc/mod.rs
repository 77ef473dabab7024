//! SPC-4: the commands every SCSI device type shares.

pub(crate) mod alua;
pub(crate) mod inquiry;
pub(crate) mod misc;
pub(crate) mod mode;
pub(crate) mod pr;
pub(crate) mod reserve;
pub(crate) mod rsoc;
pub(crate) mod xcopy;
