//! Portal operations: create, change the advertised address, delete, SetStatus (bind/unbind
//! the listener).

use std::net::{IpAddr, SocketAddr};

use uuid::Uuid;
use vds_model::{
    AdvertisedAddress, Controller, EventKind, Hresult, ObjectKind, Portal, PortalGroup,
    PortalStatus,
};

use crate::commit::Change;
use crate::engine::Inner;
use crate::state::{PortalEntry, State};
use crate::{Outcome, Provider, VdsError};

use super::judge_status;

impl Provider {
    pub(super) fn create_portal(
        &self,
        subsystem: Uuid,
        address: IpAddr,
        port: u16,
        advertise: Option<String>,
        controller: Option<Uuid>,
    ) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Subsystem, subsystem)?;
        let controller = portal_controller(st, subsystem, controller)?;
        let advertise = advertise.as_deref().map(check_advertise).transpose()?;
        if port == 0 {
            return Err(VdsError::invalid_arg("port", "must be 1 to 65535"));
        }
        if address.is_multicast() {
            return Err(VdsError::invalid_arg(
                "address",
                format!("{address} is a multicast address"),
            ));
        }
        let addr = SocketAddr::new(address, port);
        if let Some(other) = st.portal_addrs.get(&addr) {
            return Ok(Outcome::AlreadyExists(Box::new(Outcome::Portal(
                st.portals[other].p.clone(),
            ))));
        }
        let p = Portal {
            id: Uuid::new_v4(),
            subsystem,
            address,
            port,
            status: PortalStatus::Offline,
            advertise,
            controller,
            portal_groups: Vec::new(),
        };
        // The controller's ports are its portals.
        let mut ctl = st.controllers[&controller].clone();
        ctl.number_of_ports = ctl.number_of_ports.saturating_add(1);
        let entry = PortalEntry {
            p: p.clone(),
            seq: 0,
            bound: false,
        };
        let ctl_row = ctl.clone();
        let change = Change::new()
            .store(|tx| {
                tx.put_portal(&p)?;
                tx.put_controller(&ctl_row)
            })
            .apply(|st| {
                let seq = st.next_seq();
                st.portal_addrs.insert(addr, p.id);
                st.portals.insert(p.id, PortalEntry { seq, ..entry });
                st.controllers.insert(controller, ctl);
            })
            .publish()
            .event(ObjectKind::Portal, EventKind::Arrive, p.id)
            .event(ObjectKind::Controller, EventKind::Modify, controller);
        inner.commit(st, change, None)?;
        Ok(Outcome::Portal(p))
    }

    /// Sets or clears what SendTargets reports for the portal. Hosts see it at their next
    /// discovery; sessions already logged in are not touched.
    pub(super) fn patch_portal(
        &self,
        id: Uuid,
        advertise: Option<Option<String>>,
    ) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Portal, id)?;
        let Some(want) = advertise else {
            return Ok(Outcome::Portal(st.portals[&id].p.clone()));
        };
        let want = want.as_deref().map(check_advertise).transpose()?;
        st.check_free(&[(ObjectKind::Portal, id)])?;
        let mut p = st.portals[&id].p.clone();
        if p.advertise == want {
            return Ok(Outcome::Portal(p));
        }
        p.advertise = want;
        let row = Inner::portal_row(&p);
        let change = Change::new()
            .store(move |tx| tx.put_portal(&row))
            .apply(|st| {
                if let Some(pe) = st.portals.get_mut(&id) {
                    pe.p.advertise = p.advertise.clone();
                }
            })
            .publish()
            .event(ObjectKind::Portal, EventKind::Modify, id);
        inner.commit(st, change, None)?;
        Ok(Outcome::Portal(p))
    }

    pub(super) fn delete_portal(&self, id: Uuid) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Portal, id)?;
        let pgs = st.portals[&id].p.portal_groups.clone();
        let mut busy = vec![(ObjectKind::Portal, id)];
        busy.extend(pgs.iter().map(|p| (ObjectKind::PortalGroup, *p)));
        st.check_free(&busy)?;
        let mut ids = vec![id];
        ids.extend(&pgs);
        let slots = inner.claim(st, &ids);
        let bound = st.portals[&id].bound;
        // Stop listing it first, then close the listener and let initiators log out.
        let stage = Change::new()
            .apply(|st| set_portal(st, id, PortalStatus::NotReady, None))
            .publish();
        inner.stage(st, stage);
        let unbind = || {
            if bound {
                inner
                    .dataplane
                    .unbind_portal(id, inner.config.logout_timeout);
            }
        };
        // Not deleted: still there, no longer listening, so OFFLINE.
        let undo = |_: &mut State, _: &()| {
            Change::new()
                .apply(|st| set_portal(st, id, PortalStatus::Offline, Some(false)))
                .publish()
        };
        let build = |st: &mut State, _: &()| {
            let new_pgs: Vec<PortalGroup> = pgs
                .iter()
                .filter_map(|pg| st.pgs.get(pg))
                .map(|(g, _)| {
                    let mut g = g.clone();
                    g.portals.retain(|p| *p != id);
                    g
                })
                .collect();
            let rows = new_pgs.clone();
            let ctl = st
                .portals
                .get(&id)
                .and_then(|pe| st.controllers.get(&pe.p.controller))
                .map(|c| Controller {
                    number_of_ports: c.number_of_ports.saturating_sub(1).max(0),
                    ..c.clone()
                });
            let ctl_row = ctl.clone();
            let mut change = Change::new()
                .store(move |tx| {
                    for pg in &rows {
                        tx.put_portal_group(pg)?;
                    }
                    if let Some(c) = &ctl_row {
                        tx.put_controller(c)?;
                    }
                    tx.delete_portal(id)?;
                    tx.add_tombstone(id, ObjectKind::Portal)
                })
                .apply(move |st| {
                    if let Some(pe) = st.portals.remove(&id) {
                        st.portal_addrs.remove(&pe.p.socket_addr());
                    }
                    st.tombstones.insert(id, ObjectKind::Portal);
                    for pg in new_pgs {
                        if let Some(e) = st.pgs.get_mut(&pg.id) {
                            e.0 = pg;
                        }
                    }
                })
                .publish()
                .event(ObjectKind::Portal, EventKind::Depart, id);
            if let Some(c) = ctl {
                let cid = c.id;
                change = change
                    .apply(move |st| {
                        st.controllers.insert(cid, c);
                    })
                    .event(ObjectKind::Controller, EventKind::Modify, cid);
            }
            Ok(change)
        };
        let (_g, (), r) = inner.commit_prepared(g, slots, unbind, undo, build);
        r?;
        Ok(Outcome::Deleted {
            kind: ObjectKind::Portal,
            id,
        })
    }

    pub(super) fn set_portal_status(&self, id: Uuid, raw: i64) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Portal, id)?;
        let sub = st.portals[&id].p.subsystem;
        if !st
            .subsystems
            .get(&sub)
            .is_some_and(|s| s.portal_status_settable)
        {
            // The documented "Not supported." provider (BEHAVIOUR.md §4): the method as a whole.
            return Err(VdsError::not_supported(format!(
                "subsystem {sub} does not implement IVdsIscsiPortal::SetStatus (portal_status_settable = false)"
            )));
        }
        let want = judge_status(
            raw,
            "VDS_ISCSI_PORTAL_STATUS",
            "portal",
            PortalStatus::from_i64,
            PortalStatus::Unknown,
            &[PortalStatus::Online, PortalStatus::Offline],
            PortalStatus::vds_name,
        )?;
        st.check_free(&[(ObjectKind::Portal, id)])?;
        let pe = &st.portals[&id];
        let cur = pe.p.status;
        if cur == want {
            return Ok(Outcome::Portal(pe.p.clone()));
        }
        let bound = pe.bound;
        let addr = pe.p.socket_addr();
        let slots = inner.claim(st, &[id]);
        // Reported while the transition runs (NOT_READY: starting or draining), and no
        // longer listed by SendTargets.
        let stage = Change::new()
            .apply(|st| set_portal(st, id, PortalStatus::NotReady, None))
            .publish();
        inner.stage(st, stage);
        let listen = || -> Result<(), VdsError> {
            if want == PortalStatus::Offline {
                if bound {
                    inner
                        .dataplane
                        .unbind_portal(id, inner.config.logout_timeout);
                }
                return Ok(());
            }
            inner.dataplane.bind_portal(id, addr).map_err(|e| {
                VdsError::new(
                    Hresult::from_io_error(&e),
                    format!("portal {id}: cannot listen on {addr}: {e}"),
                )
            })
        };
        let now_bound =
            |outcome: &Result<(), VdsError>| want == PortalStatus::Online && outcome.is_ok();
        // Not durable: go back to what the store says.
        let undo = |_: &mut State, outcome: &Result<(), VdsError>| {
            if now_bound(outcome) {
                inner
                    .dataplane
                    .unbind_portal(id, inner.config.logout_timeout);
            }
            let was_bound = bound && want != PortalStatus::Offline;
            Change::new()
                .apply(move |st| set_portal(st, id, cur, Some(was_bound)))
                .publish()
        };
        let build = |st: &mut State, outcome: &Result<(), VdsError>| {
            let mut p = st.portals[&id].p.clone();
            p.status = match outcome {
                Ok(()) => want,
                Err(_) => PortalStatus::Failed,
            };
            let row = Inner::portal_row(&p);
            let listening = now_bound(outcome);
            let change = Change::new()
                .store(move |tx| tx.put_portal(&row))
                .apply(move |st| set_portal(st, id, p.status, Some(listening)))
                .publish();
            Ok(if p.status != cur {
                change.event(ObjectKind::Portal, EventKind::Modify, id)
            } else {
                change
            })
        };
        let (g, outcome, r) = inner.commit_prepared(g, slots, listen, undo, build);
        r?;
        outcome.map(|()| Outcome::Portal(g.portals[&id].p.clone()))
    }
}

/// The controller a new portal of `sub` belongs to: the one named (it must exist and be of
/// `sub`), else the subsystem's first (lowest target port group).
fn portal_controller(st: &State, sub: Uuid, named: Option<Uuid>) -> Result<Uuid, VdsError> {
    match named {
        Some(c) => {
            st.lookup(ObjectKind::Controller, c, Some("controller"))?;
            let owner = st.controllers[&c].subsystem;
            if owner != sub {
                return Err(VdsError::invalid_arg(
                    "controller",
                    format!("controller {c} belongs to subsystem {owner}, not to {sub}"),
                ));
            }
            Ok(c)
        }
        None => st.controllers_of(sub).first().map(|c| c.id).ok_or_else(|| {
            VdsError::new(
                Hresult::VDS_E_PROVIDER_CACHE_CORRUPT,
                format!("subsystem {sub} has no controller"),
            )
        }),
    }
}

/// A caller's `advertise` value, or `E_INVALIDARG` saying what is wrong with it.
pub(crate) fn check_advertise(s: &str) -> Result<AdvertisedAddress, VdsError> {
    AdvertisedAddress::parse(s).map_err(|e| VdsError::invalid_arg("advertise", e))
}

/// Sets a portal's status and, when given, whether its listener is up.
fn set_portal(st: &mut State, id: Uuid, status: PortalStatus, bound: Option<bool>) {
    if let Some(pe) = st.portals.get_mut(&id) {
        pe.p.status = status;
        if let Some(b) = bound {
            pe.bound = b;
        }
    }
}
