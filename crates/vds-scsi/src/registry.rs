//! The process-wide registry of logical units by NAA designator.
//!
//! It is not an access path: EXTENDED COPY resolves its identification target descriptors
//! (0xE4) only among the LUs the requesting nexus may see through its target's LUN map
//! ([`crate::LunMap`]), never here, since this registry holds every LU of every target
//! whatever its unmasking list (SEMANTICS §13).
//!
//! Whoever creates a [`LogicalUnit`] (the provider) calls [`register_lu`] once it is in an
//! `Arc`; entries are weak, so a dropped LU disappears by itself ([`unregister_lu`] removes it
//! at once, e.g. on LUN deletion while commands still hold a reference).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::RwLock;

use crate::LogicalUnit;

type Map = RwLock<HashMap<[u8; 16], Weak<LogicalUnit>>>;

fn map() -> &'static Map {
    static REGISTRY: OnceLock<Map> = OnceLock::new();
    REGISTRY.get_or_init(|| RwLock::new(HashMap::new()))
}

/// Record `lu` under its NAA designator.
pub fn register_lu(lu: &Arc<LogicalUnit>) {
    let mut m = map().write();
    m.retain(|_, w| w.strong_count() > 0);
    m.insert(lu.naa(), Arc::downgrade(lu));
}

/// Remove `lu` from the registry.
pub fn unregister_lu(lu: &LogicalUnit) {
    map().write().remove(&lu.naa());
}

/// The registered LU with this NAA designator.
pub fn lookup_lu(naa: &[u8; 16]) -> Option<Arc<LogicalUnit>> {
    map().read().get(naa).and_then(Weak::upgrade)
}
