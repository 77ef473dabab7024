//! Portal group operations (all jobs): create, delete, add and remove a portal.

use uuid::Uuid;
use vds_model::{AsyncOutputType, EventKind, Hresult, JobOutput, ObjectKind, PortalGroup};

use crate::commit::Change;
use crate::engine::Inner;

use super::commit_job;
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
                    let existing = st.targets.get(&target).and_then(|te| {
                        let pg = te.t.portal_groups.first()?;
                        st.pgs.get(pg).map(|(g, _)| g.clone())
                    });
                    return match existing {
                        Some(pg) => {
                            inner.commit(st, Change::new(), Some(slots))?;
                            Ok((
                                Hresult::VDS_S_ALREADY_EXISTS,
                                Some(JobOutput::PortalGroup(pg)),
                            ))
                        }
                        None => Err(Inner::abandon(
                            st,
                            slots,
                            VdsError::new(Hresult::E_OUTOFMEMORY, "no portal group tag is free"),
                        )),
                    };
                };
                let pg = PortalGroup {
                    id,
                    target,
                    tag,
                    portals: Vec::new(),
                };
                let row = pg.clone();
                let change = Change::new()
                    .store(|tx| tx.put_portal_group(&row))
                    .apply(move |st| {
                        let seq = st.next_seq();
                        st.pgs.insert(id, (pg, seq));
                        if let Some(te) = st.targets.get_mut(&target) {
                            te.t.portal_groups.push(id);
                        }
                    })
                    .publish()
                    .event(ObjectKind::PortalGroup, EventKind::Arrive, id);
                commit_job(inner, job, st, change, slots)?;
                Ok((Hresult::S_OK, Some(JobOutput::PortalGroup(row))))
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
                let change = Change::new()
                    .store(|tx| {
                        tx.delete_portal_group(id)?;
                        tx.add_tombstone(id, ObjectKind::PortalGroup)
                    })
                    .apply(|st| {
                        st.pgs.remove(&id);
                        st.tombstones.insert(id, ObjectKind::PortalGroup);
                        if let Some(te) = st.targets.get_mut(&target) {
                            te.t.portal_groups.retain(|p| *p != id);
                        }
                    })
                    .publish()
                    .event(ObjectKind::PortalGroup, EventKind::Depart, id);
                commit_job(inner, job, &mut g, change, slots)?;
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
            // A target port is in exactly one ALUA target port group: every portal of a
            // portal group belongs to one controller (BEHAVIOUR.md §14).
            let mine = st.portals[&portal].p.controller;
            if let Some(other) = pg
                .portals
                .iter()
                .filter_map(|p| st.portals.get(p))
                .find(|pe| pe.p.controller != mine)
            {
                return Err(VdsError::new(
                    Hresult::VDS_E_INVALID_PORT_PATH,
                    format!(
                        "portal: portal {portal} is a port of controller {mine}, but portal group {pg_id} holds portal {} of controller {}; the portals of a portal group belong to one controller",
                        other.p.id, other.p.controller
                    ),
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
            let mut pg = st.pgs[&pg_id].0.clone();
            if add && member {
                inner.commit(st, Change::new(), Some(slots))?;
                return Ok((
                    Hresult::VDS_S_ALREADY_EXISTS,
                    Some(JobOutput::PortalGroup(pg)),
                ));
            }
            if add {
                pg.portals.push(portal);
            } else {
                pg.portals.retain(|p| *p != portal);
            }
            let row = pg.clone();
            let change = Change::new()
                .store(|tx| tx.put_portal_group(&row))
                .apply(|st| {
                    if let Some(e) = st.pgs.get_mut(&pg_id) {
                        e.0 = row.clone();
                    }
                    if let Some(pe) = st.portals.get_mut(&portal) {
                        if add {
                            pe.p.portal_groups.push(pg_id);
                        } else {
                            pe.p.portal_groups.retain(|p| *p != pg_id);
                        }
                    }
                })
                .publish()
                .event(ObjectKind::PortalGroup, EventKind::Modify, pg_id);
            commit_job(inner, job, st, change, slots)?;
            Ok((Hresult::S_OK, Some(JobOutput::PortalGroup(pg))))
        })
    }
}
