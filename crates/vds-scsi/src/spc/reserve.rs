//! RESERVE and RELEASE (6 and 10): SPC-2 reservations of the whole LU by one I_T nexus.
//! Released by RELEASE, I_T nexus loss, LOGICAL UNIT RESET and TARGET RESET.

use crate::cdb::{Fail, Res};
use crate::lu::{Cmd, LogicalUnit};

pub(crate) fn reserve(lu: &LogicalUnit, c: &mut Cmd<'_>) -> Res {
    // Waits for a PERSISTENT RESERVE OUT whose registration is being stored: it is checked
    // against the state that PR OUT installs, not the one before it.
    let _order = lu.persist_order.lock();
    let mut res = lu.res.lock();
    // A persistent reservation (or registration) excludes SPC-2 reservations.
    if res.pr.reservation.is_some() || !res.pr.regs.is_empty() {
        return Err(Fail::Conflict);
    }
    match res.spc2 {
        Some(h) if h != c.nexus.id => Err(Fail::Conflict),
        _ => {
            res.spc2 = Some(c.nexus.id);
            lu.update_res_active(&res);
            Ok(())
        }
    }
}

pub(crate) fn release(lu: &LogicalUnit, c: &mut Cmd<'_>) -> Res {
    let mut res = lu.res.lock();
    if res.pr.reservation.is_some() {
        return Err(Fail::Conflict);
    }
    // RELEASE by a nexus that does not hold the reservation is a no-op (SPC-2 7.21).
    if res.spc2 == Some(c.nexus.id) {
        res.spc2 = None;
        lu.update_res_active(&res);
    }
    Ok(())
}
