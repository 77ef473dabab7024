//! The librbd and librados C API, for vds's `rbd` backing store (docs/SCALEOUT.md).
//!
//! `bindings.rs` is bindgen's output over Debian's `librbd-dev`/`librados-dev` headers (Ceph
//! 16), committed so that building vds needs neither libclang nor the headers; `generate.sh`
//! makes it again. The functions are looked up at run time (bindgen's `--dynamic-loading`, over
//! `libloading`): vdsd starts and serves every other kind of LUN on a machine without Ceph,
//! and only opening an `rbd` LUN needs `librbd.so.1` (which brings `librados.so.2`, whose
//! symbols are found through the same handle).

#![allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    dead_code,
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    unsafe_op_in_unsafe_fn
)]

mod bindings;

pub use bindings::*;

use std::sync::OnceLock;

/// The library the functions are loaded from.
pub const LIBRBD: &str = "librbd.so.1";

/// librbd and librados, loaded once per process: the table of their functions, or why it
/// could not be loaded (the message says what to install).
pub fn ceph() -> Result<&'static Ceph, String> {
    static LOADED: OnceLock<Result<Ceph, String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            // SAFETY: loading librbd runs its initialisers, which have no preconditions on
            // this process; every symbol is looked up with the type bindgen generated from
            // the header of the same ABI.
            unsafe { Ceph::new(LIBRBD) }.map_err(|e| {
                format!("{LIBRBD} cannot be loaded ({e}); install librbd1 (Debian: apt-get install librbd1)")
            })
        })
        .as_ref()
        .map_err(Clone::clone)
}
