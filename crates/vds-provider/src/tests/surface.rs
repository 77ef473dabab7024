//! The subsystem's small management surface (BEHAVIOUR.md §14 "Subsystem surface"):
//! SetControllerStatus with both lists validated and applied all or nothing, rename with the
//! name rules and one event per real change, and the two flag answers (interconnects,
//! version support). The second controller and the foreign subsystem are written into the
//! store while the provider is down, as an array with two controllers would have them.

use uuid::Uuid;
use vds_model::{ControllerStatus, EventKind, Hresult, ObjectKind};
use vds_scsi::LuState;

use super::{drain, Fixture};
use crate::{Command, Outcome};

fn controllers(f: &Fixture, sub: Uuid) -> Vec<vds_model::Controller> {
    match f.ok(Command::ListControllers {
        subsystem: Some(sub),
    }) {
        Outcome::Controllers(c) => c,
        o => panic!("{o:?}"),
    }
}

/// Adds a controller `ctl1` to the subsystem, and a subsystem `other` with controller
/// `ctl2`, in the store; restarts the provider on it. Returns (ctl0, ctl1, ctl2).
fn two_controllers(f: &mut Fixture) -> (Uuid, Uuid, Uuid) {
    let sub = f.subsystem();
    let ctl0 = controllers(f, sub)[0].id;
    let (ctl1, ctl2, other) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let db =
        rusqlite::Connection::open(f.dir.path().join("data").join(vds_store::STORE_FILE)).unwrap();
    db.execute(
        "INSERT INTO controllers SELECT ?1, subsystem, 'ctl1', identification || '-1', status, \
         health, number_of_ports, 2 FROM controllers WHERE id = ?2",
        rusqlite::params![ctl1.to_string(), ctl0.to_string()],
    )
    .unwrap();
    db.execute(
        "INSERT INTO subsystems SELECT ?1, 'other', identification || '-other', flags, status, \
         health, supported_raid_types, rebuild_priority, portal_status_settable FROM subsystems \
         WHERE id = ?2",
        rusqlite::params![other.to_string(), sub.to_string()],
    )
    .unwrap();
    db.execute(
        "INSERT INTO controllers SELECT ?1, ?2, 'ctl2', identification || '-2', status, health, \
         number_of_ports, 1 FROM controllers WHERE id = ?3",
        rusqlite::params![ctl2.to_string(), other.to_string(), ctl0.to_string()],
    )
    .unwrap();
    drop(db);
    f.restart();
    assert_eq!(controllers(f, sub).len(), 2);
    (ctl0, ctl1, ctl2)
}

#[test]
fn set_controller_status_validates_both_lists_and_is_all_or_nothing() {
    let mut f = Fixture::new(41030, false);
    let sub = f.subsystem();
    let (ctl0, ctl1, ctl2) = two_controllers(&mut f);
    let lun = f.luns()[0].id;
    let lu = f.p.logical_unit(lun).unwrap();
    let set = |online: Vec<Uuid>, offline: Vec<Uuid>| Command::SetControllerStatuses {
        subsystem: sub,
        online,
        offline,
    };
    let mut rx = f.p.subscribe();
    // The subsystem first.
    let e = f.err(Command::SetControllerStatuses {
        subsystem: Uuid::new_v4(),
        online: vec![ctl0, ctl1],
        offline: vec![],
    });
    assert_eq!(e.hresult, Hresult::VDS_E_OBJECT_NOT_FOUND, "{e}");
    let unknown = Uuid::new_v4();
    let e = f.err(set(vec![ctl0], vec![ctl1, unknown]));
    assert_eq!(e.hresult, Hresult::VDS_E_OBJECT_NOT_FOUND, "{e}");
    assert!(e.message.contains("offline[1]"), "{e}");
    let bad: [(Vec<Uuid>, Vec<Uuid>, &str); 6] = [
        (vec![ctl0, ctl1, ctl2], vec![], "belongs to subsystem"),
        (vec![ctl0, ctl1], vec![ctl0], "offline[0]"),
        (vec![ctl0, ctl0], vec![ctl1], "online[1]"),
        (vec![], vec![], "both lists are empty"),
        (
            vec![ctl0],
            vec![],
            &format!("controller {ctl1} is in neither list"),
        ),
        (
            vec![],
            vec![ctl1],
            &format!("controller {ctl0} is in neither list"),
        ),
    ];
    for (on, off, why) in bad {
        let e = f.err(set(on.clone(), off.clone()));
        assert_eq!(e.hresult, Hresult::E_INVALIDARG, "{on:?} {off:?}: {e}");
        assert!(e.message.contains(why), "{on:?} {off:?}: {e}");
    }
    assert!(
        drain(&mut rx).is_empty(),
        "a refused call announces nothing"
    );
    assert!(controllers(&f, sub)
        .iter()
        .all(|c| c.status == ControllerStatus::Online));
    // Already in the requested state: nothing changes, no event.
    f.ok(set(vec![ctl0, ctl1], vec![]));
    assert!(drain(&mut rx).is_empty());
    // One controller OFFLINE: the LUN is still served through the other.
    match f.ok(set(vec![ctl0], vec![ctl1])) {
        Outcome::Controllers(c) => {
            let st: Vec<_> = c.iter().map(|c| (c.id, c.status)).collect();
            assert!(st.contains(&(ctl0, ControllerStatus::Online)), "{st:?}");
            assert!(st.contains(&(ctl1, ControllerStatus::Offline)), "{st:?}");
        }
        o => panic!("{o:?}"),
    }
    assert_eq!(
        drain(&mut rx),
        vec![(ObjectKind::Controller, EventKind::Modify, ctl1)]
    );
    assert_eq!(lu.state(), LuState::Online);
    // Both OFFLINE: the LUN goes off the wire; only ctl0 changed.
    f.ok(set(vec![], vec![ctl1, ctl0]));
    assert_eq!(
        drain(&mut rx),
        vec![(ObjectKind::Controller, EventKind::Modify, ctl0)]
    );
    assert_eq!(lu.state(), LuState::Offline);
    // The other subsystem's controller was never touched.
    assert_eq!(
        controllers(&f, f.subsystem_other(sub))[0].status,
        ControllerStatus::Online
    );
    // Persisted.
    f.restart();
    assert!(controllers(&f, sub)
        .iter()
        .all(|c| c.status == ControllerStatus::Offline));
    let lu = f.p.logical_unit(lun).unwrap();
    assert_eq!(lu.state(), LuState::Offline);
    let mut rx = f.p.subscribe();
    f.ok(set(vec![ctl1, ctl0], vec![]));
    let ev = drain(&mut rx);
    assert_eq!(ev.len(), 2, "{ev:?}");
    for c in [ctl0, ctl1] {
        assert!(
            ev.contains(&(ObjectKind::Controller, EventKind::Modify, c)),
            "{ev:?}"
        );
    }
    assert_eq!(lu.state(), LuState::Online);
}

impl Fixture {
    /// The subsystem that is not `sub`.
    fn subsystem_other(&self, sub: Uuid) -> Uuid {
        match self.ok(Command::ListSubsystems) {
            Outcome::Subsystems(s) => s.iter().find(|s| s.id != sub).expect("two").id,
            o => panic!("{o:?}"),
        }
    }
}

#[test]
fn subsystem_rename_follows_the_name_rules_and_persists() {
    let mut f = Fixture::new(41031, false);
    let sub = f.subsystem();
    let rename = |name: &str| Command::RenameSubsystem {
        id: sub,
        friendly_name: name.into(),
    };
    let before = match f.ok(Command::GetSubsystem { id: sub }) {
        Outcome::Subsystem(s) => s.friendly_name,
        o => panic!("{o:?}"),
    };
    let mut rx = f.p.subscribe();
    let long = "n".repeat(256);
    for bad in ["", "   ", long.as_str(), "a\nb", "tab\there"] {
        let e = f.err(rename(bad));
        assert_eq!(e.hresult, Hresult::E_INVALIDARG, "{bad:?}: {e}");
        assert!(e.message.starts_with("friendly_name: "), "{e}");
    }
    let e = f.err(Command::RenameSubsystem {
        id: Uuid::new_v4(),
        friendly_name: "x".into(),
    });
    assert_eq!(e.hresult, Hresult::VDS_E_OBJECT_NOT_FOUND);
    assert!(drain(&mut rx).is_empty());
    match f.ok(rename(" array A ")) {
        Outcome::Subsystem(s) => assert_eq!(s.friendly_name, "array A"),
        o => panic!("{o:?}"),
    }
    assert_ne!(before, "array A");
    assert_eq!(
        drain(&mut rx),
        vec![(ObjectKind::Subsystem, EventKind::Modify, sub)]
    );
    // The same name again is a no-op: no event.
    f.ok(rename("array A"));
    assert!(drain(&mut rx).is_empty());
    f.restart();
    match f.ok(Command::GetSubsystem { id: sub }) {
        Outcome::Subsystem(s) => assert_eq!(s.friendly_name, "array A"),
        o => panic!("{o:?}"),
    }
}

#[test]
fn interconnects_are_iscsi_and_version_support_is_1_0_and_1_1() {
    let f = Fixture::new(41032, false);
    let sub = f.subsystem();
    assert_eq!(
        f.ok(Command::GetSupportedInterconnects { subsystem: sub }),
        Outcome::Interconnects(vds_model::InterconnectFlag::Iscsi.value())
    );
    assert_eq!(
        f.ok(Command::GetSupportedInterconnects { subsystem: sub }),
        Outcome::Interconnects(4)
    );
    assert_eq!(
        f.code(Command::GetSupportedInterconnects {
            subsystem: Uuid::new_v4()
        }),
        Hresult::VDS_E_OBJECT_NOT_FOUND
    );
    // VDS_VSF_1_0 | VDS_VSF_1_1; no 2.x (no IVdsSubSystem2/IVdsLun2/VDS_HINTS2), no 3.0.
    assert_eq!(
        f.ok(Command::GetVersionSupport),
        Outcome::VersionSupport(0x3)
    );
}
