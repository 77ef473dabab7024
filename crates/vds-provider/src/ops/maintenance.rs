//! `IVdsMaintenance` (StartMaintenance, StopMaintenance, PulseMaintenance) and
//! `IVdsSubSystem::GetDrive(bus, slot)` (BEHAVIOUR.md §14 "Subsystem surface").
//!
//! Maintenance operations act on hardware: an indicator light, an alarm, a spindle, a device
//! that answers a ping. A vds subsystem is software on a host; its controllers are groups of
//! portals, its drive is a directory on a filesystem and its LUNs are files or block devices it
//! does not own. None of them has a light, an alarm or a spindle vds could drive, and the
//! liveness a ping would show is already each object's status and health, kept current by the
//! data path. So every operation answers `VDS_E_NOT_SUPPORTED`, with the reason, after the
//! object and the arguments have been checked like any other call's (BEHAVIOUR.md §2).

use uuid::Uuid;
use vds_model::{Hresult, MaintenanceOperation, ObjectKind};

use crate::{MaintenanceAction, Outcome, Provider, VdsError};

/// Why vds cannot perform `op` on an object of `kind`.
fn reason(kind: ObjectKind, op: MaintenanceOperation) -> String {
    let what = kind.label();
    match op {
        MaintenanceOperation::BlinkLight => {
            format!("a vds {what} is software on a host and has no indicator light to blink")
        }
        MaintenanceOperation::BeepAlarm => {
            format!("a vds {what} is software on a host and has no alarm to sound")
        }
        MaintenanceOperation::SpinDown | MaintenanceOperation::SpinUp => format!(
            "a vds {what} has no spindle of its own: the disks under the data directory and \
             under adopted backing files belong to the host, which spins them"
        ),
        MaintenanceOperation::Ping => format!(
            "a vds {what} has no separate device to ping: its status and health are kept \
             current by the data path (GET the object)"
        ),
    }
}

impl Provider {
    /// `IVdsMaintenance::{Start,Stop,Pulse}Maintenance` on a subsystem, controller, drive or
    /// LUN: the object first (NOT_FOUND, DELETED, CACHE_CORRUPT), then the pulse count, then
    /// `VDS_E_NOT_SUPPORTED` with the reason.
    pub(super) fn maintenance(
        &self,
        kind: ObjectKind,
        id: Uuid,
        operation: MaintenanceOperation,
        action: MaintenanceAction,
    ) -> Result<Outcome, VdsError> {
        if !matches!(
            kind,
            ObjectKind::Subsystem | ObjectKind::Controller | ObjectKind::Drive | ObjectKind::Lun
        ) {
            return Err(VdsError::new(
                Hresult::E_INVALIDARG,
                format!("a {} has no IVdsMaintenance interface", kind.label()),
            ));
        }
        {
            let mut st = self.inner.state.lock();
            self.inner.object_call(&mut st, kind, id)?;
        }
        if action == MaintenanceAction::Pulse(0) {
            return Err(VdsError::new(
                Hresult::E_INVALIDARG,
                "count: a pulse needs a count of at least 1",
            ));
        }
        Err(VdsError::new(
            Hresult::VDS_E_NOT_SUPPORTED,
            format!("{}: {}", operation.short_name(), reason(kind, operation)),
        ))
    }

    /// `IVdsSubSystem::GetDrive(bus, slot)`: the drive of the subsystem at that bus and slot
    /// (together they name one drive), or `VDS_E_OBJECT_NOT_FOUND`.
    pub(super) fn drive_at(
        &self,
        subsystem: Uuid,
        bus: i16,
        slot: i16,
    ) -> Result<Outcome, VdsError> {
        let mut st = self.inner.state.lock();
        self.inner
            .object_call(&mut st, ObjectKind::Subsystem, subsystem)?;
        st.drives
            .values()
            .find(|d| d.subsystem == subsystem && d.bus_number == bus && d.slot_number == slot)
            .map(|d| Outcome::Drive(d.clone()))
            .ok_or_else(|| {
                VdsError::new(
                    Hresult::VDS_E_OBJECT_NOT_FOUND,
                    format!("subsystem {subsystem} has no drive at bus {bus}, slot {slot}"),
                )
            })
    }
}
