//! Controllers as ALUA target port groups (BEHAVIOUR.md §14): the one function that turns a
//! LUN's controllers (group id, status, active or not) and its load-balance policy into the
//! access states its logical unit reports, the policies that can honestly mean something on
//! the target side, and the state helpers that push the states to the data path and pick the
//! controller a LUN fails over to.

use std::sync::Arc;

use uuid::Uuid;
use vds_model::{Controller, ControllerStatus, LoadBalancePolicy, Lun};
use vds_scsi::{AccessState, AccessStates, LogicalUnit};

use crate::state::State;

/// The policy of a new LUN (and of every LUN stored before policies were): the active
/// controllers are the subset the host round-robins over; the others are Active/Non-optimized,
/// used only when no active path is left.
pub(crate) const DEFAULT_POLICY: LoadBalancePolicy = LoadBalancePolicy::RoundRobinWithSubset;

/// The policies a LUN accepts. The target only states each port's access state; FAILOVER
/// means Standby for the inactive controllers (the host may not use them until a failover),
/// the round-robin ones Active/Non-optimized. Queue depth, weights and block counts are the
/// host's choices among optimized paths that no target-side state expresses: not supported.
pub(crate) const SUPPORTED_POLICIES: &[LoadBalancePolicy] = &[
    LoadBalancePolicy::Failover,
    LoadBalancePolicy::RoundRobin,
    LoadBalancePolicy::RoundRobinWithSubset,
];

/// The access state through each controller's target port group: ONLINE and active →
/// Active/Optimized; ONLINE and inactive → Active/Non-optimized, or Standby under FAILOVER;
/// not ONLINE → Unavailable. `groups` is (group id, status, active) per controller.
pub(crate) fn access_states(
    groups: &[(u16, ControllerStatus, bool)],
    policy: LoadBalancePolicy,
) -> AccessStates {
    AccessStates::new(
        groups
            .iter()
            .map(|&(group, status, active)| {
                let state = match (status, active) {
                    (ControllerStatus::Online, true) => AccessState::ActiveOptimized,
                    (ControllerStatus::Online, false) if policy == LoadBalancePolicy::Failover => {
                        AccessState::Standby
                    }
                    (ControllerStatus::Online, false) => AccessState::ActiveNonOptimized,
                    _ => AccessState::Unavailable,
                };
                (group, state)
            })
            .collect(),
    )
}

impl State {
    /// The controllers of subsystem `sub`, by group id.
    pub fn controllers_of(&self, sub: Uuid) -> Vec<&Controller> {
        let mut v: Vec<&Controller> = self
            .controllers
            .values()
            .filter(|c| c.subsystem == sub)
            .collect();
        v.sort_by_key(|c| c.port_group);
        v
    }

    /// What `lun`'s logical unit reports through each controller of its subsystem. A LUN with
    /// an owner gateway (`owner.rs`, gateways sharing a cluster) is active through its owner's
    /// controller only; any other through its active controllers.
    pub fn lun_access_states(&self, lun: &Lun) -> AccessStates {
        let owner = self.owners.get(&lun.id);
        let groups: Vec<(u16, ControllerStatus, bool)> = self
            .controllers_of(lun.subsystem)
            .into_iter()
            .map(|c| {
                let active = match owner {
                    Some(o) => c.friendly_name == *o,
                    None => lun.active_controllers.contains(&c.id),
                };
                (c.port_group, c.status, active)
            })
            .collect();
        access_states(&groups, lun.load_balance)
    }

    /// Hands the LUs of `luns` their access states (the LU raises 06/2A/06 on every nexus
    /// when they change after the first setting). Called after every commit that can change
    /// them: controllers added or set, AssociateControllers, the load-balance policy, a new or
    /// reloaded LUN.
    pub fn push_access_states(&self, luns: impl IntoIterator<Item = Uuid>) {
        for id in luns {
            if let Some(e) = self.luns.get(&id) {
                e.lu.set_access_states(self.lun_access_states(&e.rec.lun));
            }
        }
    }

    /// Sets the first access states of a new LU (no unit attention: nobody saw it yet).
    pub fn first_access_states(&self, lun: &Lun, lu: &Arc<LogicalUnit>) {
        lu.set_access_states(self.lun_access_states(lun));
    }

    /// The controller `lun` fails over to when none of its active controllers is ONLINE: the
    /// ONLINE controller of its subsystem with the lowest group id. `None` when an active one
    /// is still ONLINE, or when none survives (the active set stays; every port Unavailable).
    pub fn failover_target(&self, lun: &Lun) -> Option<Uuid> {
        let online = |id: &Uuid| {
            self.controllers
                .get(id)
                .is_some_and(|c| c.status == ControllerStatus::Online)
        };
        if lun.active_controllers.iter().any(online) {
            return None;
        }
        self.controllers_of(lun.subsystem)
            .into_iter()
            .find(|c| c.status == ControllerStatus::Online)
            .map(|c| c.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AccessState::*;
    use ControllerStatus as C;

    fn states(s: &AccessStates) -> Vec<(u16, AccessState)> {
        s.iter().collect()
    }

    #[test]
    fn active_online_is_optimized_and_inactive_follows_the_policy() {
        let groups = [(1, C::Online, true), (2, C::Online, false)];
        for p in [
            LoadBalancePolicy::RoundRobin,
            LoadBalancePolicy::RoundRobinWithSubset,
        ] {
            assert_eq!(
                states(&access_states(&groups, p)),
                vec![(1, ActiveOptimized), (2, ActiveNonOptimized)],
                "{p:?}"
            );
        }
        assert_eq!(
            states(&access_states(&groups, LoadBalancePolicy::Failover)),
            vec![(1, ActiveOptimized), (2, Standby)]
        );
    }

    #[test]
    fn a_controller_not_online_is_unavailable_whatever_its_role() {
        for status in [C::Offline, C::Failed, C::NotReady, C::Removed, C::Unknown] {
            for active in [true, false] {
                let groups = [(3, status, active), (1, C::Online, !active)];
                for p in SUPPORTED_POLICIES {
                    let s = access_states(&groups, *p);
                    assert_eq!(s.get(3), Unavailable, "{status:?} {active} {p:?}");
                    assert_ne!(s.get(1), Unavailable);
                }
            }
        }
    }

    #[test]
    fn every_active_controller_is_optimized() {
        let groups = [(2, C::Online, true), (1, C::Online, true)];
        let s = access_states(&groups, LoadBalancePolicy::Failover);
        assert_eq!(states(&s), vec![(1, ActiveOptimized), (2, ActiveOptimized)]);
    }
}
