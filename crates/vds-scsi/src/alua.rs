//! Asymmetric logical unit access (SPC-4 5.16): the access state of a logical unit through
//! each target port group. In vds a target port group is a controller (BEHAVIOUR.md §14); the
//! provider computes the states and hands them to each [`crate::LogicalUnit`] with
//! [`crate::LogicalUnit::set_access_states`]; the nexus says which group it came through
//! ([`crate::ItNexus::target_port_group`]); each target's [`crate::LunMap`] carries the
//! [`TargetPortGroups`] of that target (which relative target ports form which group), for
//! REPORT TARGET PORT GROUPS.

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

    /// The state from its 4-bit code (the inverse of [`AccessState::code`]).
    pub fn from_code(code: u8) -> Option<AccessState> {
        Some(match code {
            0x0 => AccessState::ActiveOptimized,
            0x1 => AccessState::ActiveNonOptimized,
            0x2 => AccessState::Standby,
            0x3 => AccessState::Unavailable,
            _ => return None,
        })
    }
}

/// The target port groups of one target: each group id with the relative target port
/// identifiers (portal group tags) of that target in the group, both ascending. Empty when the
/// builder of the map did not say (a command is then answered for its own port alone).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetPortGroups(Vec<(u16, Vec<u16>)>);

impl TargetPortGroups {
    /// From (target port group, relative target port) pairs, in any order; a pair given twice
    /// counts once.
    pub fn new(ports: impl IntoIterator<Item = (u16, u16)>) -> Self {
        let mut pairs: Vec<(u16, u16)> = ports.into_iter().collect();
        pairs.sort_unstable();
        pairs.dedup();
        let mut groups: Vec<(u16, Vec<u16>)> = Vec::new();
        for (g, rel) in pairs {
            match groups.last_mut() {
                Some((last, ports)) if *last == g => ports.push(rel),
                _ => groups.push((g, vec![rel])),
            }
        }
        TargetPortGroups(groups)
    }

    /// Every (group id, its relative target ports), by group id.
    pub fn iter(&self) -> impl Iterator<Item = (u16, &[u16])> + '_ {
        self.0.iter().map(|(g, p)| (*g, p.as_slice()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
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
    fn port_groups_are_sorted_and_grouped() {
        let g = TargetPortGroups::new([(2, 5), (1, 3), (2, 4), (1, 3), (1, 1)]);
        let v: Vec<(u16, Vec<u16>)> = g.iter().map(|(g, p)| (g, p.to_vec())).collect();
        assert_eq!(v, vec![(1, vec![1, 3]), (2, vec![4, 5])]);
        assert!(TargetPortGroups::new([]).is_empty());
        for s in [
            AccessState::ActiveOptimized,
            AccessState::ActiveNonOptimized,
            AccessState::Standby,
            AccessState::Unavailable,
        ] {
            assert_eq!(AccessState::from_code(s.code()), Some(s));
        }
        assert_eq!(AccessState::from_code(0xF), None);
    }

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
