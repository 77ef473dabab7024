//! vds-testkit: tools for the engine's own tests, the status checks and the benchmarks.
//!
//! - [`initiator`]: a blocking iSCSI initiator on `vds-iscsi`'s codec (login with CHAP, any
//!   CDB with Data-Out, Data-In and sense, task management, NOP, SendTargets, logout, raw PDUs).

pub mod initiator;

pub use initiator::{Initiator, LoginOptions, ScsiResult};
