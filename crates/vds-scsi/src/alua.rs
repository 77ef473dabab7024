//! Asymmetric logical unit access (SPC-4 5.16): the access state of a logical unit through
//! each target port group. In vds a target port group is a controller (BEHAVIOUR.md §14); the
//! provider computes the states and hands them to each [`crate::LogicalUnit`] with
//! [`crate::LogicalUnit::set_access_states`]; the nexus says which group it came through
//! ([`crate::ItNexus::target_port_group`]).

/// An asymmetric access state (SPC-4 table 160, the values of REPORT TARGET PORT GROUPS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum AccessState {
    ActiveOptimized = 0x0,
    ActiveNonOptimized = 0x1,
    Standby = 0x2,
    Unavailable = 0x3,
}

impl AccessState {
    /// The 4-bit code of REPORT TARGET PORT GROUPS.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// The access state of one logical unit through each target port group, sorted by group id.
/// Empty means "no asymmetric access configured": every port is Active/Optimized.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessStates(Vec<(u16, AccessState)>);

impl AccessStates {
    /// The states of the given groups; a group named twice keeps its last state.
    pub fn new(mut states: Vec<(u16, AccessState)>) -> Self {
        states.reverse();
        states.sort_by_key(|(g, _)| *g);
        states.dedup_by_key(|(g, _)| *g);
        AccessStates(states)
    }

    /// The state through target port group `tpg` (Active/Optimized when not configured, and
    /// Unavailable for a group the configuration does not name).
    pub fn get(&self, tpg: u16) -> AccessState {
        if self.0.is_empty() {
            return AccessState::ActiveOptimized;
        }
        self.0
            .binary_search_by_key(&tpg, |(g, _)| *g)
            .map(|i| self.0[i].1)
            .unwrap_or(AccessState::Unavailable)
    }

    /// Every (group, state), by group id.
    pub fn iter(&self) -> impl Iterator<Item = (u16, AccessState)> + '_ {
        self.0.iter().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unconfigured_is_optimized_and_unknown_groups_are_unavailable() {
        assert_eq!(AccessStates::default().get(7), AccessState::ActiveOptimized);
        let s = AccessStates::new(vec![
            (2, AccessState::Standby),
            (1, AccessState::ActiveNonOptimized),
            (1, AccessState::ActiveOptimized),
        ]);
        assert_eq!(s.get(1), AccessState::ActiveOptimized);
        assert_eq!(s.get(2), AccessState::Standby);
        assert_eq!(s.get(3), AccessState::Unavailable);
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            vec![(1, AccessState::ActiveOptimized), (2, AccessState::Standby)]
        );
    }
}
