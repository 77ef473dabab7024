//! `IVdsSubSystem::GetDrive(bus, slot)` and `IVdsMaintenance` (BEHAVIOUR.md §14 "Subsystem
//! surface"): the drive found by its bus and slot, the checks before the answer, and the
//! honest `VDS_E_NOT_SUPPORTED` of every maintenance operation on every kind that has the
//! interface.

use uuid::Uuid;
use vds_model::{Hresult, MaintenanceOperation, ObjectKind};

use super::Fixture;
use crate::{Command, MaintenanceAction, Outcome};

#[test]
fn get_drive_by_bus_and_slot() {
    let f = Fixture::new(41033, false);
    let sub = f.subsystem();
    let drives = match f.ok(Command::ListDrives {
        subsystem: Some(sub),
    }) {
        Outcome::Drives(d) => d,
        o => panic!("{o:?}"),
    };
    let d = &drives[0];
    match f.ok(Command::GetDriveAt {
        subsystem: sub,
        bus: d.bus_number,
        slot: d.slot_number,
    }) {
        Outcome::Drive(x) => assert_eq!(x, *d),
        o => panic!("{o:?}"),
    }
    // Another slot or bus names no drive.
    for (bus, slot) in [
        (d.bus_number, d.slot_number.wrapping_add(1)),
        (d.bus_number.wrapping_add(1), d.slot_number),
    ] {
        let e = f.err(Command::GetDriveAt {
            subsystem: sub,
            bus,
            slot,
        });
        assert_eq!(e.hresult, Hresult::VDS_E_OBJECT_NOT_FOUND, "{e}");
        assert!(
            e.message.contains(&format!("bus {bus}, slot {slot}")),
            "{e}"
        );
    }
    // The subsystem is checked first.
    let e = f.err(Command::GetDriveAt {
        subsystem: Uuid::new_v4(),
        bus: d.bus_number,
        slot: d.slot_number,
    });
    assert_eq!(e.hresult, Hresult::VDS_E_OBJECT_NOT_FOUND, "{e}");
    assert!(e.message.contains("subsystem"), "{e}");
}

#[test]
fn maintenance_checks_the_object_and_count_then_is_not_supported() {
    let f = Fixture::new(41034, false);
    let sub = f.subsystem();
    let lun = f.luns()[0].id;
    let ctl = match f.ok(Command::ListControllers {
        subsystem: Some(sub),
    }) {
        Outcome::Controllers(c) => c[0].id,
        o => panic!("{o:?}"),
    };
    let drive = match f.ok(Command::ListDrives {
        subsystem: Some(sub),
    }) {
        Outcome::Drives(d) => d[0].id,
        o => panic!("{o:?}"),
    };
    let m = |kind, id, operation, action| Command::Maintenance {
        kind,
        id,
        operation,
        action,
    };
    for (kind, id) in [
        (ObjectKind::Subsystem, sub),
        (ObjectKind::Controller, ctl),
        (ObjectKind::Drive, drive),
        (ObjectKind::Lun, lun),
    ] {
        for op in MaintenanceOperation::ALL {
            for action in [
                MaintenanceAction::Start,
                MaintenanceAction::Stop,
                MaintenanceAction::Pulse(3),
            ] {
                let e = f.err(m(kind, id, *op, action));
                assert_eq!(
                    e.hresult,
                    Hresult::VDS_E_NOT_SUPPORTED,
                    "{kind:?} {op:?}: {e}"
                );
                // The reason names the operation and the kind of object.
                assert!(e.message.starts_with(op.short_name()), "{e}");
                assert!(e.message.contains(kind.label()), "{e}");
            }
        }
        // A pulse of nothing is a bad argument, judged after the object.
        let e = f.err(m(
            kind,
            id,
            MaintenanceOperation::BlinkLight,
            MaintenanceAction::Pulse(0),
        ));
        assert_eq!(e.hresult, Hresult::E_INVALIDARG, "{e}");
        assert!(e.message.starts_with("count: "), "{e}");
        let e = f.err(m(
            kind,
            Uuid::new_v4(),
            MaintenanceOperation::BlinkLight,
            MaintenanceAction::Pulse(0),
        ));
        assert_eq!(e.hresult, Hresult::VDS_E_OBJECT_NOT_FOUND, "{kind:?}: {e}");
    }
    // An object of another kind than its id: not found, as for any call.
    let e = f.err(m(
        ObjectKind::Drive,
        lun,
        MaintenanceOperation::Ping,
        MaintenanceAction::Start,
    ));
    assert_eq!(e.hresult, Hresult::VDS_E_OBJECT_NOT_FOUND, "{e}");
    // Kinds without IVdsMaintenance.
    let e = f.err(m(
        ObjectKind::Portal,
        Uuid::new_v4(),
        MaintenanceOperation::Ping,
        MaintenanceAction::Start,
    ));
    assert_eq!(e.hresult, Hresult::E_INVALIDARG, "{e}");
    // Nothing changed: the LUN is as it was.
    assert_eq!(f.luns()[0].status, vds_model::LunStatus::Online);
}
