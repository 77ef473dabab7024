//! Controllers as ALUA target port groups (BEHAVIOUR.md §14), on the management side: adding
//! controllers, the portal ↔ controller ↔ portal group rules and the published group ids,
//! AssociateControllers with its validation, the load-balance policy, the access states the
//! LUs get, automatic failover when a controller leaves ONLINE, and all of it across a restart.

use uuid::Uuid;
use vds_model::{ControllerStatus, EventKind, Hresult, LoadBalancePolicy, ObjectKind};
use vds_scsi::{AccessState, LuState};

use super::{drain, Fixture};
use crate::{Command, Outcome};

use AccessState::{ActiveNonOptimized as Ano, ActiveOptimized as Ao, Standby, Unavailable};

impl Fixture {
    fn controllers(&self) -> Vec<vds_model::Controller> {
        match self.ok(Command::ListControllers { subsystem: None }) {
            Outcome::Controllers(c) => {
                let mut c = c;
                c.sort_by_key(|c| c.port_group);
                c
            }
            o => panic!("{o:?}"),
        }
    }

    fn add_controller(&self) -> vds_model::Controller {
        match self.ok(Command::AddController {
            subsystem: self.subsystem(),
            friendly_name: None,
        }) {
            Outcome::Controller(c) => c,
            o => panic!("{o:?}"),
        }
    }

    fn states(&self, lun: Uuid) -> Vec<(u16, AccessState)> {
        self.p
            .logical_unit(lun)
            .unwrap()
            .access_states()
            .iter()
            .collect()
    }

    fn active(&self, lun: Uuid) -> Vec<Uuid> {
        match self.ok(Command::GetLunControllers { id: lun }) {
            Outcome::Controllers(c) => c.iter().map(|c| c.id).collect(),
            o => panic!("{o:?}"),
        }
    }

    fn associate(&self, lun: Uuid, active: &[Uuid], inactive: &[Uuid]) -> Command {
        Command::AssociateControllers {
            id: lun,
            active: active.to_vec(),
            inactive: inactive.to_vec(),
        }
    }
}

#[test]
fn added_controllers_start_inactive_and_associate_controllers_validates_then_moves_the_states() {
    let mut f = Fixture::new(41070, false);
    let old = f.luns()[0].id;
    let ctl0 = f.controllers()[0].clone();
    assert_eq!(ctl0.port_group, 1);
    assert_eq!(f.active(old), vec![ctl0.id]);
    assert_eq!(f.states(old), vec![(1, Ao)]);
    let mut rx = f.p.subscribe();
    let ctl1 = f.add_controller();
    assert_eq!(
        (ctl1.port_group, ctl1.status, ctl1.number_of_ports),
        (2, ControllerStatus::Online, 0)
    );
    assert_eq!(
        drain(&mut rx),
        vec![(ObjectKind::Controller, EventKind::Arrive, ctl1.id)]
    );
    // Existing LUNs: the new controller is inactive; a new LUN is active on every controller.
    assert_eq!(f.active(old), vec![ctl0.id]);
    assert_eq!(f.states(old), vec![(1, Ao), (2, Ano)]);
    let new = f.create_lun(|_| {}).id;
    assert_eq!(f.active(new), vec![ctl0.id, ctl1.id]);
    assert_eq!(f.states(new), vec![(1, Ao), (2, Ao)]);
    let _ = drain(&mut rx);

    // Refusals: each precise, none changes or announces anything.
    let unknown = Uuid::new_v4();
    let e = f.err(f.associate(old, &[ctl0.id], &[unknown]));
    assert_eq!(e.hresult, Hresult::VDS_E_OBJECT_NOT_FOUND, "{e}");
    assert!(e.message.contains("inactive[0]"), "{e}");
    let e = f.err(f.associate(Uuid::new_v4(), &[ctl0.id], &[ctl1.id]));
    assert_eq!(e.hresult, Hresult::VDS_E_OBJECT_NOT_FOUND, "{e}");
    let bad: [(&[Uuid], &[Uuid], &str); 4] = [
        (&[ctl1.id], &[], "is in neither list"),
        (&[ctl0.id, ctl1.id], &[ctl0.id], "inactive[0]"),
        (&[ctl1.id, ctl1.id], &[ctl0.id], "active[1]"),
        (&[], &[ctl0.id, ctl1.id], "at least one"),
    ];
    for (a, i, why) in bad {
        let e = f.err(f.associate(old, a, i));
        assert_eq!(e.hresult, Hresult::E_INVALIDARG, "{a:?} {i:?}: {e}");
        assert!(e.message.contains(why), "{a:?} {i:?}: {e}");
    }
    assert!(
        drain(&mut rx).is_empty(),
        "a refused call announces nothing"
    );
    assert_eq!(f.active(old), vec![ctl0.id]);

    // The move: one MODIFY, the LU's states follow.
    match f.ok(f.associate(old, &[ctl1.id], &[ctl0.id])) {
        Outcome::Controllers(c) => {
            assert_eq!(c.iter().map(|c| c.id).collect::<Vec<_>>(), vec![ctl1.id])
        }
        o => panic!("{o:?}"),
    }
    assert_eq!(
        drain(&mut rx),
        vec![(ObjectKind::Lun, EventKind::Modify, old)]
    );
    assert_eq!(f.states(old), vec![(1, Ano), (2, Ao)]);
    // The same association again changes nothing.
    f.ok(f.associate(old, &[ctl1.id], &[ctl0.id]));
    assert!(drain(&mut rx).is_empty());
    // QueryAssociatedLuns: the LUNs for which the controller is active.
    let luns_of = |c: Uuid| match f.ok(Command::GetControllerLuns { id: c }) {
        Outcome::Luns(l) => l.iter().map(|l| l.id).collect::<Vec<_>>(),
        o => panic!("{o:?}"),
    };
    assert_eq!(luns_of(ctl0.id), vec![new]);
    assert_eq!(luns_of(ctl1.id), vec![old, new]);

    // Load balance: FAILOVER turns inactive into Standby; the rest is judged.
    let lb = |p: i64| Command::SetLoadBalance { id: old, policy: p };
    assert_eq!(
        f.ok(Command::GetLoadBalance { id: old }),
        Outcome::LoadBalance {
            policy: LoadBalancePolicy::RoundRobinWithSubset,
            supported: 0x7
        }
    );
    for (raw, hr) in [
        (0, Hresult::E_INVALIDARG),
        (8, Hresult::E_INVALIDARG),
        (-1, Hresult::E_INVALIDARG),
        (4, Hresult::VDS_E_NOT_SUPPORTED),
        (5, Hresult::VDS_E_NOT_SUPPORTED),
        (6, Hresult::VDS_E_NOT_SUPPORTED),
        (7, Hresult::VDS_E_NOT_SUPPORTED),
    ] {
        let e = f.err(lb(raw));
        assert_eq!(e.hresult, hr, "{raw}: {e}");
        assert!(e.message.starts_with("policy"), "{e}");
    }
    assert!(drain(&mut rx).is_empty());
    f.ok(lb(1));
    assert_eq!(
        drain(&mut rx),
        vec![(ObjectKind::Lun, EventKind::Modify, old)]
    );
    assert_eq!(f.states(old), vec![(1, Standby), (2, Ao)]);
    f.ok(lb(2));
    assert_eq!(f.states(old), vec![(1, Ano), (2, Ao)]);
    f.ok(lb(1));

    // Everything is stored.
    f.restart();
    let ctls = f.controllers();
    assert_eq!(
        ctls.iter()
            .map(|c| (c.id, c.port_group))
            .collect::<Vec<_>>(),
        vec![(ctl0.id, 1), (ctl1.id, 2)]
    );
    assert_eq!(f.active(old), vec![ctl1.id]);
    assert_eq!(f.active(new), vec![ctl0.id, ctl1.id]);
    assert_eq!(f.lun(old).load_balance, LoadBalancePolicy::Failover);
    assert_eq!(f.states(old), vec![(1, Standby), (2, Ao)]);
    // Group ids are never reused: the next one is 3.
    assert_eq!(f.add_controller().port_group, 3);
}

#[test]
fn a_controller_leaving_online_fails_its_luns_over_to_the_lowest_surviving_group() {
    let mut f = Fixture::new(41071, false);
    let a = f.luns()[0].id; // active on ctl0 only
    let ctl0 = f.controllers()[0].id;
    let ctl1 = f.add_controller().id;
    let ctl2 = f.add_controller().id;
    let b = f.create_lun(|_| {}).id; // active on all three
    let c = f.create_lun(|_| {}).id;
    f.ok(f.associate(c, &[ctl2], &[ctl0, ctl1]));
    let mut rx = f.p.subscribe();
    let set = |id: Uuid, s: i64| Command::SetControllerStatus { id, status: s };

    // ctl0 OFFLINE: A (only ctl0) moves to ctl1, the lowest survivor; B keeps its ONLINE
    // active controllers, C is untouched. One MODIFY for A, one for the controller.
    f.ok(set(ctl0, 4));
    let ev = drain(&mut rx);
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert!(
        ev.contains(&(ObjectKind::Lun, EventKind::Modify, a)),
        "{ev:?}"
    );
    assert!(
        ev.contains(&(ObjectKind::Controller, EventKind::Modify, ctl0)),
        "{ev:?}"
    );
    assert_eq!(f.active(a), vec![ctl1]);
    assert_eq!(f.active(b), vec![ctl0, ctl1, ctl2]);
    assert_eq!(f.active(c), vec![ctl2]);
    assert_eq!(f.states(a), vec![(1, Unavailable), (2, Ao), (3, Ano)]);
    assert_eq!(f.states(b), vec![(1, Unavailable), (2, Ao), (3, Ao)]);
    let lu = f.p.logical_unit(a).unwrap();
    assert_eq!(lu.state(), LuState::Online, "served through the survivors");

    // Back ONLINE: no failback.
    f.ok(set(ctl0, 1));
    assert_eq!(
        drain(&mut rx),
        vec![(ObjectKind::Controller, EventKind::Modify, ctl0)]
    );
    assert_eq!(f.active(a), vec![ctl1]);
    assert_eq!(f.states(a), vec![(1, Ano), (2, Ao), (3, Ano)]);

    // SetControllerStatus of the subsystem alike: ctl1 and ctl2 OFFLINE in one call moves A
    // and C to ctl0 (B keeps its set: ctl0 is in it).
    f.ok(Command::SetControllerStatuses {
        subsystem: f.subsystem(),
        online: vec![ctl0],
        offline: vec![ctl1, ctl2],
    });
    let ev = drain(&mut rx);
    assert_eq!(ev.len(), 4, "{ev:?}");
    for l in [a, c] {
        assert!(
            ev.contains(&(ObjectKind::Lun, EventKind::Modify, l)),
            "{ev:?}"
        );
    }
    assert_eq!(f.active(a), vec![ctl0]);
    assert_eq!(f.active(c), vec![ctl0]);
    assert_eq!(f.active(b), vec![ctl0, ctl1, ctl2]);
    assert_eq!(
        f.states(c),
        vec![(1, Ao), (2, Unavailable), (3, Unavailable)]
    );

    // No survivor: the set stays, every port Unavailable, the LUN off the wire.
    f.ok(set(ctl0, 4));
    let ev = drain(&mut rx);
    assert_eq!(ev, vec![(ObjectKind::Controller, EventKind::Modify, ctl0)]);
    assert_eq!(f.active(a), vec![ctl0]);
    assert_eq!(
        f.states(a),
        vec![(1, Unavailable), (2, Unavailable), (3, Unavailable)]
    );
    assert_eq!(lu.state(), LuState::Offline);

    // Stored: after a restart the states are what they were.
    f.restart();
    assert_eq!(f.active(a), vec![ctl0]);
    assert_eq!(f.active(c), vec![ctl0]);
    assert_eq!(
        f.states(a),
        vec![(1, Unavailable), (2, Unavailable), (3, Unavailable)]
    );
    f.ok(set(ctl2, 1));
    assert_eq!(
        f.states(c),
        vec![(1, Unavailable), (2, Unavailable), (3, Ano)]
    );
}

#[test]
fn portals_belong_to_one_controller_and_a_portal_group_to_one_port_group() {
    let f = Fixture::new(41072, false);
    let sub = f.subsystem();
    let ctl0 = f.controllers()[0].clone();
    assert_eq!(ctl0.number_of_ports, 1, "the default portal");
    let ctl1 = f.add_controller();
    let first = f.portals()[0].clone();
    assert_eq!(
        first.controller, ctl0.id,
        "the default portal is the first controller's"
    );
    let create = |port: u16, controller: Option<Uuid>| Command::CreatePortal {
        subsystem: sub,
        address: "127.0.0.1".parse().unwrap(),
        port,
        advertise: None,
        controller,
    };
    let e = f.err(create(41073, Some(Uuid::new_v4())));
    assert_eq!(e.hresult, Hresult::VDS_E_OBJECT_NOT_FOUND, "{e}");
    assert!(e.message.starts_with("controller: "), "{e}");
    let mut rx = f.p.subscribe();
    let p1 = match f.ok(create(41073, Some(ctl1.id))) {
        Outcome::Portal(p) => p,
        o => panic!("{o:?}"),
    };
    assert_eq!(p1.controller, ctl1.id);
    let ev = drain(&mut rx);
    assert!(
        ev.contains(&(ObjectKind::Controller, EventKind::Modify, ctl1.id)),
        "{ev:?}"
    );
    let ports = |id: Uuid| {
        f.controllers()
            .into_iter()
            .find(|c| c.id == id)
            .unwrap()
            .number_of_ports
    };
    assert_eq!(ports(ctl1.id), 1);

    // The default group holds the first controller's portal: ctl1's is refused there.
    let t = f.default_target();
    let pg0 = t.portal_groups[0];
    let e = f.err(Command::AddPortalToGroup {
        portal_group: pg0,
        portal: p1.id,
    });
    assert_eq!(e.hresult, Hresult::VDS_E_INVALID_PORT_PATH, "{e}");
    assert!(e.message.contains("belong to one controller"), "{e}");
    // A group of its own: published with ctl1's target port group.
    let pg1 = match f.job(Command::CreatePortalGroup { target: t.id }).output {
        Some(vds_model::JobOutput::PortalGroup(pg)) => pg.id,
        o => panic!("{o:?}"),
    };
    let j = f.job(Command::AddPortalToGroup {
        portal_group: pg1,
        portal: p1.id,
    });
    assert_eq!(j.state, vds_model::JobState::Succeeded, "{j:?}");
    let view = f.plane.last();
    let tv = view.targets.iter().find(|x| x.id == t.id).unwrap();
    let tpgs: Vec<(Uuid, u16)> = tv.portal_groups.iter().map(|g| (g.id, g.tpg)).collect();
    assert_eq!(tpgs, vec![(pg0, 1), (pg1, 2)]);
    // And another portal of the first controller (the default when none is named) may not
    // join ctl1's group either.
    let p2 = match f.ok(create(41074, None)) {
        Outcome::Portal(p) => p,
        o => panic!("{o:?}"),
    };
    assert_eq!(p2.controller, ctl0.id);
    assert_eq!(
        f.code(Command::AddPortalToGroup {
            portal_group: pg1,
            portal: p2.id,
        }),
        Hresult::VDS_E_INVALID_PORT_PATH
    );
    // Deleting the portal takes the port from its controller.
    f.ok(Command::DeletePortal { id: p1.id });
    assert_eq!(ports(ctl1.id), 0);
}

/// A LUN with an owner gateway (`owner.rs`, derived from its lease) is Active/Optimized
/// through its owner's controller only, whatever its active controllers; the owner moving
/// moves the states (through `push_access_states`, the one path); no owner known, the active
/// controllers decide again.
#[test]
fn an_owner_gateway_is_the_only_optimized_controller_of_its_lun() {
    let f = Fixture::new(41093, false);
    let lun = f.luns()[0].id;
    let gw_b = match f.ok(Command::AddController {
        subsystem: f.subsystem(),
        friendly_name: Some("gw-b".into()),
    }) {
        Outcome::Controller(c) => c,
        o => panic!("{o:?}"),
    };
    let gw_a = f.controllers()[0].clone();
    f.ok(f.associate(lun, &[gw_a.id, gw_b.id], &[]));
    assert_eq!(f.states(lun), vec![(1, Ao), (2, Ao)]);
    let own = |owner: Option<&str>| {
        let mut st = f.p.inner.state.lock();
        match owner {
            Some(o) => st.owners.insert(lun, o.to_string()),
            None => st.owners.remove(&lun),
        };
        st.push_access_states([lun]);
    };
    own(Some("gw-b"));
    assert_eq!(f.states(lun), vec![(1, Ano), (2, Ao)]);
    own(Some(&gw_a.friendly_name));
    assert_eq!(f.states(lun), vec![(1, Ao), (2, Ano)]);
    // An owner whose controller is not ONLINE: nobody optimized, the others usable.
    f.ok(Command::SetControllerStatus {
        id: gw_a.id,
        status: 4, // VDS_CS_OFFLINE
    });
    own(Some(&gw_a.friendly_name));
    assert_eq!(f.states(lun), vec![(1, Unavailable), (2, Ano)]);
    own(None);
    assert_eq!(f.states(lun)[0], (1, Unavailable));
}
