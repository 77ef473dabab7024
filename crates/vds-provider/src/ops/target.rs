//! Target operations: create and delete (jobs), rename, CHAP secrets.

use uuid::Uuid;
use vds_model::{
    AsyncOutputType, EventKind, Hresult, JobOutput, ObjectKind, SubsystemStatus, Target,
};
use vds_store::{SecretKind, SecretRow};

use crate::commit::Change;
use crate::state::{State, TargetEntry};
use crate::{Outcome, Provider, VdsError};

use super::{check_initiator, check_name, commit_job};

impl Provider {
    pub(super) fn create_target(
        &self,
        subsystem: Uuid,
        iscsi_name: Option<String>,
        friendly_name: String,
    ) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Subsystem, subsystem)?;
        let friendly = check_name("friendly_name", &friendly_name)?;
        let id = Uuid::new_v4();
        let iqn = match iscsi_name.as_deref().map(str::trim) {
            None | Some("") => format!("iqn.2026-11.local.vds:{}", id.simple()),
            Some(n) => {
                vds_model::validate_iscsi_name(n)
                    .map_err(|e| VdsError::invalid_arg("iscsi_name", e))?;
                n.to_string()
            }
        };
        if st.subsystems[&subsystem].status == SubsystemStatus::Failed {
            return Err(VdsError::new(
                Hresult::VDS_E_OBJECT_STATUS_FAILED,
                format!("subsystem {subsystem} is FAILED"),
            ));
        }
        if let Some(other) = st.iqns.get(&iqn.to_ascii_lowercase()) {
            return Err(VdsError::new(
                Hresult::VDS_E_NAME_NOT_UNIQUE,
                format!("iscsi_name: target {other} already uses {iqn}"),
            ));
        }
        st.iqns.insert(iqn.to_ascii_lowercase(), id);
        let slots = inner.claim(st, &[id]);
        let target = Target {
            id,
            subsystem,
            iscsi_name: iqn,
            friendly_name: friendly,
            chap_enabled: false,
            portal_groups: Vec::new(),
            luns: Vec::new(),
        };
        drop(g);
        self.spawn_job(
            AsyncOutputType::CreateTarget,
            subsystem,
            slots,
            move |inner, job, slots| {
                let mut g = inner.state.lock();
                let st = &mut *g;
                let iqn = target.iscsi_name.to_ascii_lowercase();
                let entry = TargetEntry {
                    t: target.clone(),
                    seq: 0,
                    secrets: Vec::new(),
                    numbers: Default::default(),
                    next_free: 0,
                };
                let change = Change::new()
                    .store(|tx| tx.put_target(&target))
                    .apply(|st| {
                        let seq = st.next_seq();
                        st.targets.insert(id, TargetEntry { seq, ..entry });
                        st.dirty.insert(id);
                    })
                    .publish()
                    .event(ObjectKind::Target, EventKind::Arrive, id);
                let r = commit_job(inner, job, st, change, slots);
                if r.is_err() {
                    // The name reserved at the call is free again.
                    st.iqns.remove(&iqn);
                }
                r?;
                Ok((Hresult::S_OK, Some(JobOutput::Target(target))))
            },
        )
    }

    pub(super) fn delete_target(&self, id: Uuid) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Target, id)?;
        let pgs = st.targets[&id].t.portal_groups.clone();
        let mut busy = vec![(ObjectKind::Target, id)];
        busy.extend(pgs.iter().map(|p| (ObjectKind::PortalGroup, *p)));
        st.check_free(&busy)?;
        if !st.targets[&id].t.luns.is_empty() {
            return Err(VdsError::new(
                Hresult::VDS_E_ASSOCIATED_LUNS_EXIST,
                format!(
                    "target {id} still has {} LUN(s); dissociate them first",
                    st.targets[&id].t.luns.len()
                ),
            ));
        }
        let mut ids = vec![id];
        ids.extend(&pgs);
        let slots = inner.claim(st, &ids);
        drop(g);
        self.spawn_job(
            AsyncOutputType::DeleteTarget,
            id,
            slots,
            move |inner, job, slots| {
                let mut g = inner.state.lock();
                let mut change = Change::new()
                    .store(|tx| {
                        for pg in &pgs {
                            tx.delete_portal_group(*pg)?;
                            tx.add_tombstone(*pg, ObjectKind::PortalGroup)?;
                        }
                        tx.delete_target(id)?;
                        tx.add_tombstone(id, ObjectKind::Target)
                    })
                    .apply(|st| remove_target(st, id, &pgs))
                    .publish();
                for pg in &pgs {
                    change = change.event(ObjectKind::PortalGroup, EventKind::Depart, *pg);
                }
                let change = change.event(ObjectKind::Target, EventKind::Depart, id);
                commit_job(inner, job, &mut g, change, slots)?;
                Ok((Hresult::S_OK, Some(JobOutput::Deleted(id))))
            },
        )
    }

    pub(super) fn rename_target(
        &self,
        id: Uuid,
        friendly_name: String,
    ) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Target, id)?;
        let name = check_name("friendly_name", &friendly_name)?;
        st.check_free(&[(ObjectKind::Target, id)])?;
        let mut t = st.targets[&id].t.clone();
        if t.friendly_name == name {
            return Ok(Outcome::Target(t));
        }
        t.friendly_name = name;
        let change = Change::new()
            .store(|tx| tx.put_target(&t))
            .apply(|st| {
                if let Some(te) = st.targets.get_mut(&id) {
                    te.t.friendly_name = t.friendly_name.clone();
                }
            })
            .publish()
            .event(ObjectKind::Target, EventKind::Modify, id);
        inner.commit(st, change, None)?;
        Ok(Outcome::Target(t))
    }

    pub(super) fn set_secret(
        &self,
        id: Uuid,
        kind: SecretKind,
        initiator: Option<String>,
        secret: Result<Option<Vec<u8>>, VdsError>,
    ) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Target, id)?;
        let secret = secret?;
        let initiator = match initiator {
            Some(n) => check_initiator("initiator_name", &n)?,
            None => String::new(),
        };
        st.check_free(&[(ObjectKind::Target, id)])?;
        let te = &st.targets[&id];
        let current = te
            .secrets
            .iter()
            .find(|s| s.kind == kind && s.initiator.eq_ignore_ascii_case(&initiator));
        if current.map(|s| &s.secret) == secret.as_ref() {
            return Ok(Outcome::Target(te.t.clone()));
        }
        let stored_name = current.map(|s| s.initiator.clone());
        let change = Change::new()
            .store(|tx| {
                if let Some(n) = &stored_name {
                    tx.set_secret(id, kind, n, None)?;
                }
                tx.set_secret(id, kind, &initiator, secret.as_deref())
            })
            .apply(|st| {
                let Some(te) = st.targets.get_mut(&id) else {
                    return;
                };
                te.secrets
                    .retain(|s| !(s.kind == kind && s.initiator.eq_ignore_ascii_case(&initiator)));
                if let Some(s) = secret.clone() {
                    te.secrets.push(SecretRow {
                        target: id,
                        kind,
                        initiator: initiator.clone(),
                        secret: s,
                    });
                }
                te.t.chap_enabled = te.chap().required();
            })
            .publish()
            .event(ObjectKind::Target, EventKind::Modify, id);
        inner.commit(st, change, None)?;
        Ok(Outcome::Target(st.targets[&id].t.clone()))
    }
}

/// Takes a deleted target and its portal groups out of the state (tombstones left).
fn remove_target(st: &mut State, id: Uuid, pgs: &[Uuid]) {
    if let Some(te) = st.targets.remove(&id) {
        st.iqns.remove(&te.t.iscsi_name.to_ascii_lowercase());
    }
    st.tombstones.insert(id, ObjectKind::Target);
    for pg in pgs {
        if let Some((g, _)) = st.pgs.remove(pg) {
            for p in g.portals {
                if let Some(pe) = st.portals.get_mut(&p) {
                    pe.p.portal_groups.retain(|x| x != pg);
                }
            }
        }
        st.tombstones.insert(*pg, ObjectKind::PortalGroup);
    }
    st.dirty.insert(id);
}
