//! The live sessions (`GET /v1/sessions`, `GET /v1/targets/{id}/sessions`) and a LUN's paths
//! (`GET /v1/luns/{id}/paths`, IVdsLunMpio::GetPathInfo), both read from the data path's
//! session snapshot (`DataPlane::sessions_snapshot`) and never stored (BEHAVIOUR.md §14
//! "Sessions" and "Paths"). `path_of` is the one rule that turns a session into a path.
//! Also the data path's telemetry, read the same way (`Provider::telemetry`).

use uuid::Uuid;
use vds_dataplane::SessionSnapshot;
use vds_model::{ControllerStatus, ObjectKind, PathInfo, PathStatus, PortalStatus};
use vds_scsi::{AccessState, Mask};

use crate::state::{mask_of, State};
use crate::{Outcome, Provider, VdsError};

/// What the path rule needs to know of the portal a session came in through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Port {
    /// The portal is ONLINE.
    pub online: bool,
    /// Its controller and whether that is ONLINE.
    pub controller: Option<(Uuid, bool)>,
}

/// The portal `id` as the path rule sees it (`None`: the portal is gone).
fn port(st: &State, id: Uuid) -> Option<Port> {
    let p = st.portals.get(&id)?;
    Some(Port {
        online: p.p.status == PortalStatus::Online,
        controller: st
            .controller_of_portal(id)
            .map(|c| (c.id, c.status == ControllerStatus::Online)),
    })
}

/// The path session `s` gives to a LUN served by the targets `lun_targets` under `mask`, or
/// `None` when the session cannot reach it (another target, or an initiator the unmasking list
/// does not allow: the same `Mask` the LUN map applies on the wire). `port` is the portal of
/// the session's leading connection; `access` the LU's ALUA state through a target port group.
pub(crate) fn path_of(
    s: &SessionSnapshot,
    lun_targets: &[Uuid],
    mask: &Mask,
    port: Option<Port>,
    access: impl Fn(u16) -> AccessState,
) -> Option<PathInfo> {
    if !lun_targets.contains(&s.target) || !mask.allows(&s.initiator) {
        return None;
    }
    let lead = s.connections.first()?;
    let status = match port {
        Some(Port {
            online: true,
            controller: Some((_, true)),
        }) => match access(s.target_port_group) {
            AccessState::Standby | AccessState::Unavailable => PathStatus::Standby,
            AccessState::ActiveOptimized | AccessState::ActiveNonOptimized => PathStatus::Online,
        },
        _ => PathStatus::Failed,
    };
    let mut source = [0u8; 8];
    source.copy_from_slice(&s.target.as_bytes()[..8]);
    let mut id = [0u8; 8];
    id[..2].copy_from_slice(&s.tsih.to_be_bytes());
    id[2..].copy_from_slice(&s.isid);
    Some(PathInfo {
        source_id: u64::from_be_bytes(source),
        path_id: u64::from_be_bytes(id),
        target: s.target,
        portal: lead.portal,
        controller: port.and_then(|p| p.controller).map(|(c, _)| c),
        initiator: s.initiator.clone(),
        initiator_address: lead.peer,
        isid: s.isid,
        tsih: s.tsih,
        status,
    })
}

impl Provider {
    /// The data path's counters, merged now (`GET /metrics`; docs/INTERFACE.md "Metrics").
    /// Takes no lock of the provider: LUN names and liveness are the caller's to join.
    pub fn telemetry(&self) -> vds_dataplane::Telemetry {
        self.inner.dataplane.telemetry()
    }

    /// The logged-in sessions, of one target or of all.
    pub(super) fn list_sessions(&self, target: Option<Uuid>) -> Result<Outcome, VdsError> {
        if let Some(t) = target {
            let mut st = self.inner.state.lock();
            self.inner.object_call(&mut st, ObjectKind::Target, t)?;
        }
        let mut v = self.inner.dataplane.sessions_snapshot();
        v.retain(|s| target.is_none_or(|t| t == s.target));
        Ok(Outcome::Sessions(v))
    }

    /// Every path through which LUN `id` can be reached now.
    pub(super) fn lun_paths(&self, id: Uuid) -> Result<Outcome, VdsError> {
        // Taken before the state's lock: the data path takes its session table's lock while
        // the provider publishes, never the other way round.
        let sessions = self.inner.dataplane.sessions_snapshot();
        let mut st = self.inner.state.lock();
        self.inner.object_call(&mut st, ObjectKind::Lun, id)?;
        let e = st.lun(id)?;
        let mask = mask_of(&e.rec.lun.unmasking_list);
        let paths = sessions
            .iter()
            .filter_map(|s| {
                let lead = s.connections.first()?;
                path_of(s, &e.rec.lun.targets, &mask, port(&st, lead.portal), |g| {
                    e.lu.access_state(g)
                })
            })
            .collect();
        Ok(Outcome::Paths(paths))
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::SystemTime;

    use vds_dataplane::{ConnectionSnapshot, NegotiatedKeys, SessionCounters};

    use super::*;

    fn keys() -> NegotiatedKeys {
        NegotiatedKeys {
            header_digest: false,
            data_digest: false,
            target_max_recv_data_segment_length: 262_144,
            initiator_max_recv_data_segment_length: 8192,
            max_burst_length: 262_144,
            first_burst_length: 65_536,
            immediate_data: true,
            initial_r2t: true,
            max_outstanding_r2t: 1,
            error_recovery_level: 0,
            data_pdu_in_order: true,
            data_sequence_in_order: true,
            default_time2wait: 2,
            default_time2retain: 20,
            max_connections: 1,
        }
    }

    fn session(target: Uuid, initiator: &str, tsih: u16, tpg: u16) -> SessionSnapshot {
        SessionSnapshot {
            target,
            target_iqn: "iqn.2026-11.local.vds:t".into(),
            initiator: initiator.into(),
            initiator_alias: None,
            isid: [0x80, 0, 0, 0, 0x45, 7],
            tsih,
            portal_group_tag: 1,
            target_port_group: tpg,
            login_time: SystemTime::UNIX_EPOCH,
            connections: vec![ConnectionSnapshot {
                cid: 0,
                portal: Uuid::from_u128(0xB0),
                local: SocketAddr::from(([127, 0, 0, 3], 3260)),
                peer: SocketAddr::from(([127, 0, 0, 9], 40000)),
                chap: false,
                keys: keys(),
            }],
            counters: SessionCounters::default(),
        }
    }

    const UP: Port = Port {
        online: true,
        controller: Some((Uuid::from_u128(0xC0), true)),
    };

    fn optimized(_: u16) -> AccessState {
        AccessState::ActiveOptimized
    }

    #[test]
    fn a_path_carries_the_session_portal_controller_and_a_stable_id() {
        let t = Uuid::from_u128(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10);
        let s = session(t, "iqn.2026-11.local.test:a", 0x0102, 1);
        let p = path_of(&s, &[t], &Mask::Everyone, Some(UP), optimized).expect("a path");
        assert_eq!(p.status, PathStatus::Online);
        assert_eq!(p.portal, Uuid::from_u128(0xB0));
        assert_eq!(p.controller, Some(Uuid::from_u128(0xC0)));
        assert_eq!(p.initiator, "iqn.2026-11.local.test:a");
        assert_eq!(
            p.initiator_address,
            SocketAddr::from(([127, 0, 0, 9], 40000))
        );
        assert_eq!(p.source_id, 0x0102_0304_0506_0708);
        assert_eq!(p.path_id, 0x0102_8000_0000_4507);
        // The same session gives the same id; another TSIH another.
        assert_eq!(
            path_of(&s, &[t], &Mask::Everyone, Some(UP), optimized),
            Some(p.clone())
        );
        let other = session(t, "iqn.2026-11.local.test:a", 0x0103, 1);
        let q = path_of(&other, &[t], &Mask::Everyone, Some(UP), optimized).unwrap();
        assert_ne!(q.path_id, p.path_id);
    }

    #[test]
    fn only_sessions_that_reach_the_lun_are_paths() {
        let t = Uuid::from_u128(1);
        let s = session(t, "iqn.2026-11.local.test:a", 1, 1);
        // Another target.
        assert_eq!(
            path_of(
                &s,
                &[Uuid::from_u128(2)],
                &Mask::Everyone,
                Some(UP),
                optimized
            ),
            None
        );
        // Masked away (names compare case-insensitively, as on the wire).
        assert_eq!(path_of(&s, &[t], &Mask::Nobody, Some(UP), optimized), None);
        let only_b = Mask::Only(vec!["iqn.2026-11.local.test:b".into()]);
        assert_eq!(path_of(&s, &[t], &only_b, Some(UP), optimized), None);
        let only_a = Mask::Only(vec!["IQN.2026-11.local.test:A".into()]);
        assert!(path_of(&s, &[t], &only_a, Some(UP), optimized).is_some());
    }

    /// The rule over the provider's real state: the LUN's targets and unmasking list, the
    /// portal's and the controller's status, the LU's access states, and unknown objects.
    #[test]
    fn lun_paths_follow_mask_portal_controller_and_alua() {
        use crate::tests::Fixture;
        use crate::Command;
        use vds_model::Hresult;
        use vds_scsi::AccessStates;

        let f = Fixture::new(41077, false);
        let target = f.default_target().id;
        let lun = f.luns()[0].id;
        assert!(f.lun(lun).targets.contains(&target));
        let portal = f.portals()[0].id;
        let at = |mut s: SessionSnapshot| {
            s.connections[0].portal = portal;
            s
        };
        *f.plane.sessions.lock() = vec![
            at(session(target, "iqn.2026-11.local.test:a", 1, 1)),
            at(session(target, "iqn.2026-11.local.test:b", 2, 1)),
            at(session(
                Uuid::from_u128(9),
                "iqn.2026-11.local.test:a",
                3,
                1,
            )),
        ];
        let paths = |f: &Fixture| match f.ok(Command::GetLunPaths { id: lun }) {
            Outcome::Paths(v) => v
                .into_iter()
                .map(|p| (p.initiator, p.tsih, p.status))
                .collect::<Vec<_>>(),
            o => panic!("{o:?}"),
        };
        let a = "iqn.2026-11.local.test:a".to_string();
        let b = "iqn.2026-11.local.test:b".to_string();
        assert_eq!(
            paths(&f),
            vec![
                (a.clone(), 1, PathStatus::Online),
                (b.clone(), 2, PathStatus::Online)
            ]
        );
        match f.ok(Command::GetLunPaths { id: lun }) {
            Outcome::Paths(v) => {
                assert_eq!(v[0].portal, portal);
                let ctl =
                    f.p.inner
                        .state
                        .lock()
                        .controller_of_portal(portal)
                        .map(|c| c.id);
                assert!(ctl.is_some());
                assert_eq!(v[0].controller, ctl);
            }
            o => panic!("{o:?}"),
        }
        // The unmasking list hides b's path.
        f.ok(Command::PatchLun {
            id: lun,
            friendly_name: None,
            unmasking_list: Some(a.clone()),
            read_only: None,
        });
        assert_eq!(paths(&f), vec![(a.clone(), 1, PathStatus::Online)]);
        // ALUA Standby through the session's group.
        let lu = f.p.inner.state.lock().lun(lun).unwrap().lu.clone();
        lu.set_access_states(AccessStates::new(vec![(1, AccessState::Standby)]));
        assert_eq!(paths(&f), vec![(a.clone(), 1, PathStatus::Standby)]);
        lu.set_access_states(AccessStates::new(vec![(1, AccessState::ActiveOptimized)]));
        // The controller OFFLINE, then the portal OFFLINE: failed.
        let ctl =
            f.p.inner
                .state
                .lock()
                .controller_of_portal(portal)
                .unwrap()
                .id;
        f.ok(Command::SetControllerStatus { id: ctl, status: 4 });
        assert_eq!(paths(&f), vec![(a.clone(), 1, PathStatus::Failed)]);
        f.ok(Command::SetControllerStatus { id: ctl, status: 1 });
        assert_eq!(paths(&f), vec![(a.clone(), 1, PathStatus::Online)]);
        f.ok(Command::SetPortalStatus {
            id: portal,
            status: 4,
        });
        assert_eq!(paths(&f), vec![(a.clone(), 1, PathStatus::Failed)]);
        // Sessions of one target; unknown objects answer as every Get does.
        match f.ok(Command::ListSessions {
            target: Some(target),
        }) {
            Outcome::Sessions(v) => {
                assert_eq!(v.iter().map(|s| s.tsih).collect::<Vec<_>>(), vec![1, 2])
            }
            o => panic!("{o:?}"),
        }
        match f.ok(Command::ListSessions { target: None }) {
            Outcome::Sessions(v) => assert_eq!(v.len(), 3),
            o => panic!("{o:?}"),
        }
        let nobody = Uuid::from_u128(0xdead);
        assert_eq!(
            f.code(Command::GetLunPaths { id: nobody }),
            Hresult::VDS_E_OBJECT_NOT_FOUND
        );
        assert_eq!(
            f.code(Command::ListSessions {
                target: Some(nobody)
            }),
            Hresult::VDS_E_OBJECT_NOT_FOUND
        );
    }

    #[test]
    fn status_is_failed_for_a_down_port_else_standby_by_alua() {
        let t = Uuid::from_u128(1);
        let s = session(t, "iqn.2026-11.local.test:a", 1, 2);
        let status = |port: Option<Port>, a: AccessState| {
            path_of(&s, &[t], &Mask::Everyone, port, |g| {
                assert_eq!(
                    g, 2,
                    "the state is read for the session's target port group"
                );
                a
            })
            .unwrap()
            .status
        };
        use AccessState::*;
        assert_eq!(status(Some(UP), ActiveOptimized), PathStatus::Online);
        assert_eq!(status(Some(UP), ActiveNonOptimized), PathStatus::Online);
        assert_eq!(status(Some(UP), Standby), PathStatus::Standby);
        assert_eq!(status(Some(UP), Unavailable), PathStatus::Standby);
        let portal_off = Port {
            online: false,
            ..UP
        };
        let ctl_off = Port {
            online: true,
            controller: Some((Uuid::from_u128(0xC0), false)),
        };
        let no_ctl = Port {
            online: true,
            controller: None,
        };
        for p in [Some(portal_off), Some(ctl_off), Some(no_ctl), None] {
            assert_eq!(status(p, ActiveOptimized), PathStatus::Failed, "{p:?}");
        }
    }
}
