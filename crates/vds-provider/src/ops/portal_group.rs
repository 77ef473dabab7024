//! Portal group operations (all jobs): create, delete, add and remove a portal.

use uuid::Uuid;
use vds_model::{AsyncOutputType, EventKind, Hresult, JobOutput, ObjectKind, PortalGroup};

use crate::engine::store_err;
use crate::{Outcome, Provider, VdsError};

impl Provider {
    pub(super) fn create_portal_group(&self, target: Uuid) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Target, target)?;
        st.check_free(&[(ObjectKind::Target, target)])?;
        let used: std::collections::HashSet<u16> = st.targets[&target]
            .t
            .portal_groups
            .iter()
            .filter_map(|pg| st.pgs.get(pg).map(|(g, _)| g.tag))
            .collect();
        let tag = (1..=u16::MAX).find(|t| !used.contains(t));
        let id = Uuid::new_v4();
        let slots = inner.claim(st, &[target]);
        drop(g);
        self.spawn_job(
            AsyncOutputType::CreatePortalGroup,
            target,
            slots,
            move |inner, job, slots| {
                let mut g = inner.state.lock();
                let st = &mut *g;
                let Some(tag) = tag else {
                    // No tag left: hand back an existing group (VDS_S_ALREADY_EXISTS).
                    let existing = st.targets[&target]
                        .t
                        .portal_groups
                        .first()
                        .and_then(|pg| st.pgs.get(pg))
                        .map(|(g, _)| g.clone());
                    slots.release(st);
                    return match existing {
                        Some(pg) => Ok((
                            Hresult::VDS_S_ALREADY_EXISTS,
                            Some(JobOutput::PortalGroup(pg)),
                        )),
                        None => Err(VdsError::new(
                            Hresult::E_OUTOFMEMORY,
                            "no portal group tag is free",
                        )),
                    };
                };
                if !job.begin_commit() {
                    slots.release(st);
                    return Err(VdsError::new(Hresult::VDS_E_OPERATION_CANCELED, "canceled"));
                }
                let pg = PortalGroup {
                    id,
                    target,
                    tag,
                    portals: Vec::new(),
                };
                if let Err(e) = st.store.write(|tx| tx.put_portal_group(&pg)) {
                    slots.release(st);
                    return Err(store_err(e));
                }
                let seq = st.next_seq();
                st.pgs.insert(id, (pg.clone(), seq));
                st.targets
                    .get_mut(&target)
                    .expect("present")
                    .t
                    .portal_groups
                    .push(id);
                inner.publish(st);
                inner.emit(ObjectKind::PortalGroup, EventKind::Arrive, id);
                slots.release(st);
                Ok((Hresult::S_OK, Some(JobOutput::PortalGroup(pg))))
            },
        )
    }

    pub(super) fn delete_portal_group(&self, id: Uuid) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::PortalGroup, id)?;
        let target = st.pgs[&id].0.target;
        st.check_free(&[(ObjectKind::PortalGroup, id), (ObjectKind::Target, target)])?;
        if !st.pgs[&id].0.portals.is_empty() {
            return Err(VdsError::new(
                Hresult::VDS_E_ASSOCIATED_PORTALS_EXIST,
                format!(
                    "portal group {id} still has {} portal(s); remove them first",
                    st.pgs[&id].0.portals.len()
                ),
            ));
        }
        let slots = inner.claim(st, &[id, target]);
        drop(g);
        self.spawn_job(
            AsyncOutputType::DeletePortalGroup,
            id,
            slots,
            move |inner, job, slots| {
                let mut g = inner.state.lock();
                let st = &mut *g;
                if !job.begin_commit() {
                    slots.release(st);
                    return Err(VdsError::new(Hresult::VDS_E_OPERATION_CANCELED, "canceled"));
                }
                let r = st.store.write(|tx| {
                    tx.delete_portal_group(id)?;
                    tx.add_tombstone(id, ObjectKind::PortalGroup)
                });
                if let Err(e) = r {
                    slots.release(st);
                    return Err(store_err(e));
                }
                st.pgs.remove(&id);
                st.tombstones.insert(id, ObjectKind::PortalGroup);
                if let Some(te) = st.targets.get_mut(&target) {
                    te.t.portal_groups.retain(|p| *p != id);
                }
                inner.publish(st);
                inner.emit(ObjectKind::PortalGroup, EventKind::Depart, id);
                slots.release(st);
                Ok((Hresult::S_OK, Some(JobOutput::Deleted(id))))
            },
        )
    }

    pub(super) fn change_membership(
        &self,
        pg_id: Uuid,
        portal: Uuid,
        add: bool,
    ) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::PortalGroup, pg_id)?;
        st.lookup(ObjectKind::Portal, portal, Some("portal"))?;
        let pg = st.pgs[&pg_id].0.clone();
        let member = pg.portals.contains(&portal);
        if !add && !member {
            return Err(VdsError::new(
                Hresult::VDS_E_OBJECT_NOT_FOUND,
                format!("portal: portal {portal} is not in portal group {pg_id}"),
            ));
        }
        if add && !member {
            // A portal is in at most one portal group of a target.
            if let Some(other) = st.targets[&pg.target].t.portal_groups.iter().find(|o| {
                **o != pg_id
                    && st
                        .pgs
                        .get(o)
                        .is_some_and(|(g, _)| g.portals.contains(&portal))
            }) {
                return Err(VdsError::new(
                    Hresult::VDS_E_OBJECT_EXISTS,
                    format!("portal: portal {portal} is already in portal group {other} of the same target"),
                ));
            }
        }
        st.check_free(&[
            (ObjectKind::PortalGroup, pg_id),
            (ObjectKind::Portal, portal),
        ])?;
        let slots = inner.claim(st, &[pg_id, portal]);
        drop(g);
        let op = if add {
            AsyncOutputType::AddPortal
        } else {
            AsyncOutputType::RemovePortal
        };
        self.spawn_job(op, pg_id, slots, move |inner, job, slots| {
            let mut g = inner.state.lock();
            let st = &mut *g;
            if add && member {
                let pg = st.pgs[&pg_id].0.clone();
                slots.release(st);
                return Ok((
                    Hresult::VDS_S_ALREADY_EXISTS,
                    Some(JobOutput::PortalGroup(pg)),
                ));
            }
            if !job.begin_commit() {
                slots.release(st);
                return Err(VdsError::new(Hresult::VDS_E_OPERATION_CANCELED, "canceled"));
            }
            let mut pg = st.pgs[&pg_id].0.clone();
            if add {
                pg.portals.push(portal);
            } else {
                pg.portals.retain(|p| *p != portal);
            }
            if let Err(e) = st.store.write(|tx| tx.put_portal_group(&pg)) {
                slots.release(st);
                return Err(store_err(e));
            }
            st.pgs.get_mut(&pg_id).expect("present").0 = pg.clone();
            if let Some(pe) = st.portals.get_mut(&portal) {
                if add {
                    pe.p.portal_groups.push(pg_id);
                } else {
                    pe.p.portal_groups.retain(|p| *p != pg_id);
                }
            }
            inner.publish(st);
            inner.emit(ObjectKind::PortalGroup, EventKind::Modify, pg_id);
            slots.release(st);
            Ok((Hresult::S_OK, Some(JobOutput::PortalGroup(pg))))
        })
    }
}
