//! TEST UNIT READY, REQUEST SENSE and REPORT LUNS.

use crate::cdb::{invalid_cdb, truncate_to, Cdb, Res};
use crate::lu::{Cmd, LogicalUnit};
use crate::sense::{self, key, Sense};

pub(crate) fn test_unit_ready(_lu: &LogicalUnit, _c: &mut Cmd<'_>) -> Res {
    // The status gate and unit attentions were checked by the dispatcher.
    Ok(())
}

/// REQUEST SENSE: the pending unit attention (consumed), else the not-ready condition, else
/// NO SENSE; in the format the DESC bit asks for.
pub(crate) fn request_sense(lu: &LogicalUnit, c: &mut Cmd<'_>) -> Res {
    let desc = c.cdb.bit(1, 0);
    let alloc = c.cdb.u8(4) as usize;
    let s = lu
        .pending_condition(c.ns)
        .unwrap_or(Sense::new(key::NO_SENSE, sense::NO_ADDITIONAL_SENSE));
    c.data_in.extend_from_slice(&s.encode(desc));
    truncate_to(c.data_in, alloc);
    Ok(())
}

/// REPORT LUNS sent straight to a logical unit (not through a [`crate::LunMap`]): the LU alone,
/// as LUN 0.
pub(crate) fn report_luns_single(_lu: &LogicalUnit, c: &mut Cmd<'_>) -> Res {
    report_luns(c.cdb, [0u64].into_iter(), c.data_in)
}

/// REPORT LUNS parameter data for `luns` (SPC-4 6.33).
pub(crate) fn report_luns(cdb: Cdb<'_>, luns: impl Iterator<Item = u64>, d: &mut Vec<u8>) -> Res {
    let select = cdb.u8(2);
    let alloc = cdb.be32(6) as usize;
    if alloc < 16 {
        return Err(invalid_cdb(6, None));
    }
    d.extend_from_slice(&[0u8; 8]);
    match select {
        // All logical units with addressing we support (there are no well-known LUs).
        0x00 | 0x02 => {
            for n in luns {
                d.extend_from_slice(&crate::encode_lun(n));
            }
        }
        0x01 => {}
        _ => return Err(invalid_cdb(2, Some(7))),
    }
    let len = (d.len() - 8) as u32;
    d[0..4].copy_from_slice(&len.to_be_bytes());
    truncate_to(d, alloc);
    Ok(())
}
