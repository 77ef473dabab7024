//! Portal operations: create, delete, SetStatus (bind/unbind the listener).

use std::net::{IpAddr, SocketAddr};

use uuid::Uuid;
use vds_model::{EventKind, Hresult, ObjectKind, Portal, PortalGroup, PortalStatus};

use crate::engine::{store_err, Inner};
use crate::state::PortalEntry;
use crate::{Outcome, Provider, VdsError};

use super::*;

impl Provider {
    pub(super) fn create_portal(
        &self,
        subsystem: Uuid,
        address: IpAddr,
        port: u16,
    ) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Subsystem, subsystem)?;
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
            portal_groups: Vec::new(),
        };
        st.store.write(|tx| tx.put_portal(&p)).map_err(store_err)?;
        let seq = st.next_seq();
        st.portal_addrs.insert(addr, p.id);
        st.portals.insert(
            p.id,
            PortalEntry {
                p: p.clone(),
                seq,
                bound: false,
            },
        );
        inner.publish(st);
        inner.emit(ObjectKind::Portal, EventKind::Arrive, p.id);
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
        st.portals.get_mut(&id).expect("present").p.status = PortalStatus::NotReady;
        inner.publish(st);
        drop(g);
        if bound {
            inner
                .dataplane
                .unbind_portal(id, inner.config.logout_timeout);
        }
        let mut g = inner.state.lock();
        let st = &mut *g;
        let new_pgs: Vec<PortalGroup> = pgs
            .iter()
            .filter_map(|pg| st.pgs.get(pg))
            .map(|(g, _)| {
                let mut g = g.clone();
                g.portals.retain(|p| *p != id);
                g
            })
            .collect();
        let r = st.store.write(|tx| {
            for pg in &new_pgs {
                tx.put_portal_group(pg)?;
            }
            tx.delete_portal(id)?;
            tx.add_tombstone(id, ObjectKind::Portal)
        });
        if let Err(e) = r {
            // Still there, no longer listening: OFFLINE.
            let pe = st.portals.get_mut(&id).expect("present");
            pe.bound = false;
            pe.p.status = PortalStatus::Offline;
            inner.publish(st);
            slots.release(st);
            return Err(store_err(e));
        }
        let pe = st.portals.remove(&id).expect("present");
        st.portal_addrs.remove(&pe.p.socket_addr());
        st.tombstones.insert(id, ObjectKind::Portal);
        for pg in new_pgs {
            if let Some(e) = st.pgs.get_mut(&pg.id) {
                e.0 = pg;
            }
        }
        inner.publish(st);
        inner.emit(ObjectKind::Portal, EventKind::Depart, id);
        slots.release(st);
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
            // The documented "Not supported." provider (SEMANTICS.md §4): the method as a whole.
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
        st.portals.get_mut(&id).expect("present").p.status = PortalStatus::NotReady;
        inner.publish(st);
        drop(g);
        let outcome: Result<(), VdsError> = if want == PortalStatus::Offline {
            if bound {
                inner
                    .dataplane
                    .unbind_portal(id, inner.config.logout_timeout);
            }
            Ok(())
        } else {
            inner.dataplane.bind_portal(id, addr).map_err(|e| {
                VdsError::new(
                    Hresult::from_io_error(&e),
                    format!("portal {id}: cannot listen on {addr}: {e}"),
                )
            })
        };
        let mut g = inner.state.lock();
        let st = &mut *g;
        let mut p = st.portals[&id].p.clone();
        let now_bound = want == PortalStatus::Online && outcome.is_ok();
        p.status = match (&outcome, want) {
            (Ok(()), w) => w,
            (Err(_), _) => PortalStatus::Failed,
        };
        let row = Inner::portal_row(&p);
        if let Err(e) = st.store.write(|tx| tx.put_portal(&row)) {
            // Not durable: go back to what the store says.
            if now_bound {
                inner
                    .dataplane
                    .unbind_portal(id, inner.config.logout_timeout);
            }
            let pe = st.portals.get_mut(&id).expect("present");
            pe.p.status = cur;
            pe.bound = bound && want != PortalStatus::Offline;
            inner.publish(st);
            slots.release(st);
            return Err(store_err(e));
        }
        let pe = st.portals.get_mut(&id).expect("present");
        pe.p = p.clone();
        pe.bound = now_bound;
        inner.publish(st);
        if p.status != cur {
            inner.emit(ObjectKind::Portal, EventKind::Modify, id);
        }
        slots.release(st);
        outcome.map(|()| Outcome::Portal(p))
    }
}
