//! The Get and List calls of every object kind: steps 1-3 of BEHAVIOUR.md §2 (a list checks
//! the cache, and the backing files of the LUNs it lists), then copies of the objects, in
//! creation order (subsystems, controllers and drives by id).

use uuid::Uuid;
use vds_model::{Hresult, ObjectKind};

use crate::engine::Inner;
use crate::{Outcome, Provider, VdsError};

use super::sorted;

fn not_an_object(kind: ObjectKind) -> VdsError {
    VdsError::new(
        Hresult::E_INVALIDARG,
        format!("{} is not an object of the array", kind.label()),
    )
}

impl Provider {
    /// Get on one object of `kind`.
    pub(super) fn get(&self, kind: ObjectKind, id: Uuid) -> Result<Outcome, VdsError> {
        let mut st = self.inner.state.lock();
        self.inner.object_call(&mut st, kind, id)?;
        Ok(match kind {
            ObjectKind::Subsystem => Outcome::Subsystem(st.subsystems[&id].clone()),
            ObjectKind::Controller => Outcome::Controller(st.controllers[&id].clone()),
            ObjectKind::Drive => Outcome::Drive(st.drives[&id].clone()),
            ObjectKind::Lun => Outcome::Lun(Box::new(st.lun(id)?.rec.lun.clone())),
            ObjectKind::Target => Outcome::Target(st.targets[&id].t.clone()),
            ObjectKind::PortalGroup => Outcome::PortalGroup(st.pgs[&id].0.clone()),
            ObjectKind::Portal => Outcome::Portal(st.portals[&id].p.clone()),
            ObjectKind::Provider | ObjectKind::Job | ObjectKind::Pool => {
                return Err(not_an_object(kind))
            }
        })
    }

    /// List of the objects of `kind`, of one subsystem or of all.
    pub(super) fn list(
        &self,
        kind: ObjectKind,
        subsystem: Option<Uuid>,
    ) -> Result<Outcome, VdsError> {
        let in_sub = |s: Uuid| subsystem.is_none_or(|x| x == s);
        if kind == ObjectKind::Subsystem {
            let mut st = self.inner.state.lock();
            self.inner.detect(&mut st, &[]);
            Inner::cache_ok(&st)?;
            return Ok(Outcome::Subsystems(sorted(
                st.subsystems.values().map(|s| (s.id, s.clone())),
            )));
        }
        let luns: Vec<Uuid> = if kind == ObjectKind::Lun {
            let st = self.inner.state.lock();
            st.luns.keys().copied().collect()
        } else {
            Vec::new()
        };
        let st = self.list_prelude(subsystem, &luns)?;
        Ok(match kind {
            ObjectKind::Controller => Outcome::Controllers(sorted(
                st.controllers
                    .values()
                    .filter(|c| in_sub(c.subsystem))
                    .map(|c| (c.id, c.clone())),
            )),
            ObjectKind::Drive => Outcome::Drives(sorted(
                st.drives
                    .values()
                    .filter(|d| in_sub(d.subsystem))
                    .map(|d| (d.id, d.clone())),
            )),
            ObjectKind::Lun => Outcome::Luns(sorted(
                st.luns
                    .values()
                    .filter(|e| in_sub(e.rec.lun.subsystem))
                    .map(|e| (e.seq, e.rec.lun.clone())),
            )),
            ObjectKind::Target => Outcome::Targets(sorted(
                st.targets
                    .values()
                    .filter(|t| in_sub(t.t.subsystem))
                    .map(|t| (t.seq, t.t.clone())),
            )),
            ObjectKind::Portal => Outcome::Portals(sorted(
                st.portals
                    .values()
                    .filter(|p| in_sub(p.p.subsystem))
                    .map(|p| (p.seq, p.p.clone())),
            )),
            _ => return Err(not_an_object(kind)),
        })
    }

    /// The portal groups of one target, or of all.
    pub(super) fn list_portal_groups(&self, target: Option<Uuid>) -> Result<Outcome, VdsError> {
        let mut st = self.inner.state.lock();
        if let Some(t) = target {
            self.inner.object_call(&mut st, ObjectKind::Target, t)?;
        } else {
            self.inner.detect(&mut st, &[]);
            Inner::cache_ok(&st)?;
        }
        Ok(Outcome::PortalGroups(sorted(
            st.pgs
                .values()
                .filter(|(pg, _)| target.is_none_or(|x| x == pg.target))
                .map(|(pg, s)| (*s, pg.clone())),
        )))
    }

    /// The initiators logged in to a target.
    pub(super) fn connected_initiators(&self, id: Uuid) -> Result<Outcome, VdsError> {
        {
            let mut st = self.inner.state.lock();
            self.inner.object_call(&mut st, ObjectKind::Target, id)?;
        }
        Ok(Outcome::Initiators(self.inner.dataplane.initiators(id)))
    }
}
