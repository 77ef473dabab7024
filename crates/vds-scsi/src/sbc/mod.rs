//! SBC-3: the block commands of a direct-access logical unit.

pub(crate) mod capacity;
pub(crate) mod provisioning;
pub(crate) mod rw;
