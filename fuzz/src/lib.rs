//! Shared pieces of the fuzz targets: a LUN map of small memory logical units (one visible to
//! everyone, one masked to a single initiator, one behind an error filter) and the nexuses
//! that address them.

use std::sync::Arc;

use vds_backstore::{BackingStore, FaultFilter, FaultOp, Filtered, MemoryStore};
use vds_scsi::{ItNexus, LogicalUnit, LuConfig, LuEvents, LuState, LunEntry, LunMap, Mask};

/// Logical-unit callbacks that keep nothing (the engine's own answers are what is fuzzed).
pub struct NoEvents;

impl LuEvents for NoEvents {
    fn failed(&self, _lu: uuid::Uuid, _error: &std::io::Error) {}
    fn persist_reservations(&self, _lu: uuid::Uuid, _state: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
}

/// Blocks per memory LU: small, so that fuzzed LBAs hit both ends often.
pub const BLOCKS: u64 = 256;

/// A LUN map: LUN 0 (512-byte blocks, everyone), LUN 1 (4096-byte blocks, only
/// `nexus(1)`'s initiator) and LUN 2 (512-byte blocks, every write fails after 4 writes).
pub fn memory_map(pr_state: Option<Vec<u8>>) -> LunMap {
    let lu = |bs: u32, backing: Arc<dyn BackingStore>, pr: Option<Vec<u8>>| {
        Arc::new(LogicalUnit::new(LuConfig {
            id: uuid::Uuid::from_u128(u128::from(bs) + 1),
            backing,
            block_size: bs,
            state: LuState::Online,
            pr_state: pr,
            events: Arc::new(NoEvents),
            write_protected: false,
        }))
    };
    let faulty: Arc<dyn BackingStore> = Arc::new(Filtered::new(
        Arc::new(MemoryStore::new(BLOCKS * 512)),
        vec![FaultFilter::Error {
            ops: vec![FaultOp::Write],
            after: 4,
        }],
    ));
    LunMap {
        entries: vec![
            LunEntry {
                number: 0,
                lu: lu(512, Arc::new(MemoryStore::new(BLOCKS * 512)), pr_state),
                mask: Mask::Everyone,
            },
            LunEntry {
                number: 1,
                lu: lu(4096, Arc::new(MemoryStore::new(BLOCKS * 4096)), None),
                mask: Mask::Only(vec![nexus(1).initiator_name]),
            },
            LunEntry {
                number: 2,
                lu: lu(512, faulty, None),
                mask: Mask::Everyone,
            },
        ],
        port_groups: Default::default(),
    }
}

/// Nexus `id` (0..=3): distinct initiators and ports, two target ports.
pub fn nexus(id: u64) -> ItNexus {
    ItNexus {
        id,
        initiator_name: format!("iqn.2026-01.fuzz:init{id}"),
        initiator_port: format!("iqn.2026-01.fuzz:init{id},i,0x23000000000{id}"),
        target_port: format!("iqn.2026-01.fuzz:target,t,0x000{}", 1 + id % 2),
        relative_target_port: 1 + (id % 2) as u16,
        target_port_group: 1 + (id % 2) as u16,
    }
}
