//! One logical unit: the command engine for a LUN.

use std::sync::Arc;

use vds_backstore::BackingStore;

use crate::{ItNexus, LuEvents, LuState, ScsiCommand, ScsiOutcome};

/// What a logical unit is made from.
pub struct LuConfig {
    /// The VDS LUN id; VPD 83 designators and the serial number derive from it (stable across
    /// restarts).
    pub id: uuid::Uuid,
    pub backing: Arc<dyn BackingStore>,
    /// Logical block size in bytes (512 or 4096).
    pub block_size: u32,
    pub state: LuState,
    /// Opaque persistent-reservation state saved through [`LuEvents::persist_reservations`].
    pub pr_state: Option<Vec<u8>>,
    pub events: Arc<dyn LuEvents>,
}

/// The engine for one LUN (skeleton: the full engine lands with the SCSI work).
pub struct LogicalUnit {
    config: LuConfig,
}

impl LogicalUnit {
    pub fn new(config: LuConfig) -> Self {
        LogicalUnit { config }
    }

    pub fn id(&self) -> uuid::Uuid {
        self.config.id
    }

    /// Execute one command from `nexus`; Data-In is appended to `data_in` (cleared first).
    pub fn execute(
        &self,
        nexus: &ItNexus,
        cmd: &ScsiCommand<'_>,
        data_in: &mut Vec<u8>,
    ) -> ScsiOutcome {
        let _ = (nexus, cmd, &self.config);
        data_in.clear();
        crate::sense::check_condition(
            crate::sense::key::ILLEGAL_REQUEST,
            crate::sense::INVALID_COMMAND_OPERATION_CODE,
        )
    }
}
