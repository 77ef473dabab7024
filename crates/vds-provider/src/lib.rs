//! The provider engine: one entry point that applies a management command to the array and
//! returns an outcome (skeleton; see ARCHITECTURE.md).

pub mod dataplane;
