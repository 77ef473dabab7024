//! REPORT TARGET PORT GROUPS (SPC-4 6.37): the asymmetric access state of the logical unit
//! through each target port group of the target the command came through, with that group's
//! relative target ports in the target (BEHAVIOUR.md §14). The same bytes through every port.
//! Transitions are implicit only: SET TARGET PORT GROUPS is not in the command table.

use crate::cdb::{invalid_cdb, truncate_to, Res};
use crate::lu::{Cmd, LogicalUnit};

/// Supported states (descriptor byte 1): AO_SUP, AN_SUP, S_SUP, U_SUP; not T_SUP, O_SUP or
/// LBD_SUP (the engine never reports Transitioning, Offline or LBA-dependent).
const SUPPORTED_STATES: u8 = 0x0F;

/// IMPLICIT TRANSITION TIME of the extended header. The states change at once when the
/// provider sets them (no Transitioning state is ever reported), so there is no transition to
/// wait for; 0 is SPC-4's "not specified".
const IMPLICIT_TRANSITION_SECS: u8 = 0;

/// STATUS CODE: no status available.
const STATUS_NONE: u8 = 0x00;
/// STATUS CODE: altered by implicit asymmetric logical unit access behavior (the target, not
/// a SET TARGET PORT GROUPS, changed the group's state since it was first set).
const STATUS_ALTERED_IMPLICIT: u8 = 0x02;

pub(crate) fn report_target_port_groups(lu: &LogicalUnit, c: &mut Cmd<'_>) -> Res {
    // PARAMETER DATA FORMAT: 000b length only, 001b extended (the usage mask refuses others).
    let extended = match c.cdb.u8(1) >> 5 {
        0 => false,
        1 => true,
        _ => return Err(invalid_cdb(1, Some(7))),
    };
    let alloc = c.cdb.be32(6) as usize;
    let own = [c.nexus.relative_target_port];
    let groups: Vec<(u16, &[u16])> = match c.scope.map(|m| &m.port_groups) {
        Some(g) if !g.is_empty() => g.iter().collect(),
        // Not through a map that knows the target's ports: this port's group alone.
        _ => vec![(c.nexus.target_port_group, &own[..])],
    };
    let d = &mut *c.data_in;
    d.extend_from_slice(&[0u8; 4]);
    if extended {
        d.extend_from_slice(&[0x10, IMPLICIT_TRANSITION_SECS, 0, 0]);
    }
    for (tpg, ports) in groups {
        let (state, altered) = lu.access_report(tpg);
        // TARGET PORT COUNT is one byte: a group listed with more ports names the first 255.
        let ports = &ports[..ports.len().min(255)];
        let status = if altered {
            STATUS_ALTERED_IMPLICIT
        } else {
            STATUS_NONE
        };
        // PREF 0, state; supported states; group id; reserved; status; vendor; port count.
        d.extend_from_slice(&[state.code(), SUPPORTED_STATES]);
        d.extend_from_slice(&tpg.to_be_bytes());
        d.extend_from_slice(&[0, status, 0, ports.len() as u8]);
        for rel in ports {
            d.extend_from_slice(&[0, 0]);
            d.extend_from_slice(&rel.to_be_bytes());
        }
    }
    // RETURN DATA LENGTH: the bytes after it (the extended header's second word included).
    let len = (d.len() - 4) as u32;
    d[0..4].copy_from_slice(&len.to_be_bytes());
    truncate_to(d, alloc);
    Ok(())
}
