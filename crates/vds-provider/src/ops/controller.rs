//! Controllers as ALUA target port groups (BEHAVIOUR.md §14): add a controller, a LUN's
//! active controllers (AssociateControllers, QueryActiveControllers), a controller's LUNs
//! (QueryAssociatedLuns), and a LUN's load-balance policy (IVdsLunMpio). Every change that can
//! move an access state pushes the new states to the LUs in its commit.

use uuid::Uuid;
use vds_model::{
    Controller, ControllerStatus, EventKind, Health, Hresult, LbSupportFlag, LoadBalancePolicy,
    LunStatus, ObjectKind,
};

use crate::alua::SUPPORTED_POLICIES;
use crate::commit::Change;
use crate::state::State;
use crate::{Outcome, Provider, VdsError};

use super::{check_name, sorted};

/// The supported policies as `VDS_PROVIDER_LBSUPPORT_FLAG` bits.
fn supported_bits() -> u32 {
    let flags: Vec<LbSupportFlag> = SUPPORTED_POLICIES
        .iter()
        .map(|p| match p {
            LoadBalancePolicy::Failover => LbSupportFlag::Failover,
            LoadBalancePolicy::RoundRobin => LbSupportFlag::RoundRobin,
            _ => LbSupportFlag::RoundRobinWithSubset,
        })
        .collect();
    LbSupportFlag::bits(&flags)
}

impl Provider {
    /// Adds a controller: the next target port group id of the subsystem (one above the
    /// highest in use, so an id is never reused while its controller exists), ONLINE, no
    /// ports yet, inactive for every existing LUN (their states gain its group).
    pub(super) fn add_controller(
        &self,
        sub: Uuid,
        friendly_name: Option<String>,
    ) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Subsystem, sub)?;
        let name = friendly_name
            .map(|n| check_name("friendly_name", &n))
            .transpose()?;
        let last = st
            .controllers_of(sub)
            .last()
            .map(|c| c.port_group)
            .unwrap_or(0);
        let Some(group) = last.checked_add(1) else {
            return Err(VdsError::new(
                Hresult::VDS_E_CONFIG_LIMIT,
                format!("subsystem {sub} has used every target port group id up to {last}"),
            ));
        };
        st.check_free(&[(ObjectKind::Subsystem, sub)])?;
        let id = Uuid::new_v4();
        let c = Controller {
            id,
            subsystem: sub,
            friendly_name: name.unwrap_or_else(|| format!("vds controller {}", group - 1)),
            identification: format!("vds:{}:controller{}", st.provider_id, group - 1),
            status: ControllerStatus::Online,
            health: Health::Healthy,
            number_of_ports: 0,
            port_group: group,
        };
        let luns: Vec<Uuid> = st
            .luns
            .values()
            .filter(|e| e.rec.lun.subsystem == sub)
            .map(|e| e.rec.lun.id)
            .collect();
        let row = c.clone();
        let change = Change::new()
            .store(move |tx| tx.put_controller(&row))
            .apply(move |st| {
                st.controllers.insert(id, c);
                st.push_access_states(luns);
            })
            .event(ObjectKind::Controller, EventKind::Arrive, id);
        inner.commit(st, change, None)?;
        Ok(Outcome::Controller(st.controllers[&id].clone()))
    }

    /// `IVdsController::QueryAssociatedLuns`: the LUNs for which `id` is active.
    pub(super) fn controller_luns(&self, id: Uuid) -> Result<Outcome, VdsError> {
        let mut st = self.inner.state.lock();
        self.inner
            .object_call(&mut st, ObjectKind::Controller, id)?;
        Ok(Outcome::Luns(sorted(
            st.luns
                .values()
                .filter(|e| e.rec.lun.active_controllers.contains(&id))
                .map(|e| (e.seq, e.rec.lun.clone())),
        )))
    }

    /// `IVdsLun::QueryActiveControllers`.
    pub(super) fn lun_controllers(&self, id: Uuid) -> Result<Outcome, VdsError> {
        let mut st = self.inner.state.lock();
        self.inner.object_call(&mut st, ObjectKind::Lun, id)?;
        Ok(active_of(&st, id))
    }

    /// `IVdsLun::AssociateControllers`: every controller of the LUN's subsystem in exactly one
    /// list (E_INVALIDARG), each id known (NOT_FOUND), at least one active; one MODIFY; the
    /// LU's new states (06/2A/06 on every nexus when they change).
    pub(super) fn associate_controllers(
        &self,
        id: Uuid,
        active: Vec<Uuid>,
        inactive: Vec<Uuid>,
    ) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Lun, id)?;
        let sub = st.lun(id)?.rec.lun.subsystem;
        judge_association(st, sub, &active, &inactive)?;
        st.check_free(&[(ObjectKind::Lun, id)])?;
        let mut rec = st.lun(id)?.rec.clone();
        if rec.lun.status == LunStatus::Failed {
            return Err(VdsError::new(
                Hresult::VDS_E_OBJECT_STATUS_FAILED,
                format!("LUN {id} is FAILED"),
            ));
        }
        // Stored in group order, so that the answer does not depend on the caller's order.
        let want: Vec<Uuid> = st
            .controllers_of(sub)
            .iter()
            .map(|c| c.id)
            .filter(|c| active.contains(c))
            .collect();
        if rec.lun.active_controllers == want {
            return Ok(active_of(st, id));
        }
        rec.lun.active_controllers = want;
        let change = Change::new()
            .lun_record(rec)
            .apply(move |st| st.push_access_states([id]));
        inner.commit(st, change, None)?;
        Ok(active_of(st, id))
    }

    /// `IVdsLunMpio::GetLoadBalancePolicy` with the supported set.
    pub(super) fn load_balance(&self, id: Uuid) -> Result<Outcome, VdsError> {
        let mut st = self.inner.state.lock();
        self.inner.object_call(&mut st, ObjectKind::Lun, id)?;
        Ok(Outcome::LoadBalance {
            policy: st.lun(id)?.rec.lun.load_balance,
            supported: supported_bits(),
        })
    }

    /// `IVdsLunMpio::SetLoadBalancePolicy`: not a member or UNKNOWN → E_INVALIDARG; a member
    /// the target cannot honestly mean → NOT_SUPPORTED. One MODIFY; the LU's new states.
    pub(super) fn set_load_balance(&self, id: Uuid, raw: i64) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Lun, id)?;
        let policy = judge_policy(raw)?;
        st.check_free(&[(ObjectKind::Lun, id)])?;
        let mut rec = st.lun(id)?.rec.clone();
        if rec.lun.status == LunStatus::Failed {
            return Err(VdsError::new(
                Hresult::VDS_E_OBJECT_STATUS_FAILED,
                format!("LUN {id} is FAILED"),
            ));
        }
        let shared = |p: LoadBalancePolicy| p == LoadBalancePolicy::RoundRobin;
        if inner.cluster.is_some()
            && rec.lun.backing.kind == vds_model::BackingKind::Rbd
            && shared(rec.lun.load_balance) != shared(policy)
        {
            // Active/active or owned is the image handles' mode on every gateway, fixed when
            // they open it (docs/SCALEOUT.md "Active/active LUNs").
            return Err(VdsError::not_supported(format!(
                "policy: an RBD LUN of several gateways is active/active (round_robin) or owned by one gateway (the other policies) from its creation; LUN {id} is {}",
                rec.lun.load_balance.short_name()
            )));
        }
        if rec.lun.load_balance != policy {
            rec.lun.load_balance = policy;
            let change = Change::new()
                .lun_record(rec)
                .apply(move |st| st.push_access_states([id]));
            inner.commit(st, change, None)?;
        }
        Ok(Outcome::LoadBalance {
            policy,
            supported: supported_bits(),
        })
    }
}

/// Step 4/5 for a requested policy: not a member or UNKNOWN → E_INVALIDARG; a member the
/// target side cannot mean → NOT_SUPPORTED (both naming `policy`).
pub(super) fn judge_policy(raw: i64) -> Result<LoadBalancePolicy, VdsError> {
    let p = LoadBalancePolicy::from_i64(raw).ok_or_else(|| {
        VdsError::invalid_arg(
            "policy",
            format!("{raw} is not a {} value", LoadBalancePolicy::TYPE_NAME),
        )
    })?;
    if p == LoadBalancePolicy::Unknown {
        return Err(VdsError::invalid_arg(
            "policy",
            format!("{} cannot be requested", p.vds_name()),
        ));
    }
    if !SUPPORTED_POLICIES.contains(&p) {
        let names: Vec<&str> = SUPPORTED_POLICIES.iter().map(|p| p.short_name()).collect();
        return Err(VdsError::not_supported(format!(
            "policy: {} is not supported; the target expresses a policy only through ALUA access states, and supports {}",
            p.vds_name(),
            names.join(", ")
        )));
    }
    Ok(p)
}

/// The active controllers of LUN `id`, by group id.
fn active_of(st: &State, id: Uuid) -> Outcome {
    let lun = &st.luns[&id].rec.lun;
    Outcome::Controllers(
        st.controllers_of(lun.subsystem)
            .into_iter()
            .filter(|c| lun.active_controllers.contains(&c.id))
            .cloned()
            .collect(),
    )
}

/// Step 4 of AssociateControllers: each id names a controller (NOT_FOUND, DELETED) of the
/// LUN's subsystem, once in both lists, every controller of the subsystem is listed, and at
/// least one is active (E_INVALIDARG naming the entry).
fn judge_association(
    st: &State,
    sub: Uuid,
    active: &[Uuid],
    inactive: &[Uuid],
) -> Result<(), VdsError> {
    let lists = [("active", active), ("inactive", inactive)];
    let (_, omitted) = super::partition_controllers(st, sub, lists, "the LUN's ")?;
    if let Some(c) = omitted.first() {
        return Err(VdsError::invalid_arg(
            "active/inactive",
            format!(
                "controller {c} is in neither list: every controller of subsystem {sub} must be in exactly one of them"
            ),
        ));
    }
    if active.is_empty() {
        return Err(VdsError::invalid_arg(
            "active",
            "must name at least one controller (a LUN with no active controller serves no path)",
        ));
    }
    Ok(())
}

/// The policy of a LUN stored before policies were is `DEFAULT_POLICY` (the migration says
/// so too); kept here so that the two cannot drift apart unnoticed.
#[cfg(test)]
#[test]
fn the_default_policy_is_supported() {
    use crate::alua::DEFAULT_POLICY;
    assert!(SUPPORTED_POLICIES.contains(&DEFAULT_POLICY));
    assert_eq!(DEFAULT_POLICY.value(), 3, "migration 4 stores 3");
}
