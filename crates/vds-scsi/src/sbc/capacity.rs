//! READ CAPACITY (10/16), START STOP UNIT, PREVENT ALLOW MEDIUM REMOVAL, READ DEFECT DATA.

use crate::cdb::{invalid_cdb, truncate_to, write_err, Res};
use crate::lu::{Cmd, LogicalUnit};
use crate::spc::inquiry::lbppbe;

pub(crate) fn read_capacity10(lu: &LogicalUnit, c: &mut Cmd<'_>) -> Res {
    let pmi = c.cdb.bit(8, 0);
    if !pmi && c.cdb.be32(2) != 0 {
        return Err(invalid_cdb(2, None));
    }
    let last = lu.num_blocks().saturating_sub(1);
    let last = u32::try_from(last).unwrap_or(u32::MAX);
    c.data_in.extend_from_slice(&last.to_be_bytes());
    c.data_in.extend_from_slice(&lu.block_size().to_be_bytes());
    Ok(())
}

pub(crate) fn read_capacity16(lu: &LogicalUnit, c: &mut Cmd<'_>) -> Res {
    let pmi = c.cdb.bit(14, 0);
    if !pmi && c.cdb.be64(2) != 0 {
        return Err(invalid_cdb(2, None));
    }
    let alloc = c.cdb.be32(10) as usize;
    let d = &mut *c.data_in;
    d.extend_from_slice(&lu.num_blocks().saturating_sub(1).to_be_bytes());
    d.extend_from_slice(&lu.block_size().to_be_bytes());
    d.push(0); // no protection information
    d.push(lbppbe(lu));
    d.push(if lu.backing().thin() { 0xC0 } else { 0 }); // LBPME, LBPRZ
    d.push(0);
    d.resize(32, 0);
    truncate_to(d, alloc);
    Ok(())
}

pub(crate) fn start_stop_unit(lu: &LogicalUnit, c: &mut Cmd<'_>) -> Res {
    let b4 = c.cdb.u8(4);
    let power_condition = b4 >> 4;
    let no_flush = b4 & 0x04 != 0;
    let start = b4 & 0x01 != 0;
    // A fixed disk: LOEJ has nothing to eject, START has nothing to spin. Stopping makes the
    // cache durable unless told not to.
    if power_condition == 0 && !start && !no_flush {
        lu.backing().flush().map_err(write_err)?;
    }
    Ok(())
}

pub(crate) fn prevent_allow(_lu: &LogicalUnit, _c: &mut Cmd<'_>) -> Res {
    // Not removable: nothing to lock in.
    Ok(())
}

pub(crate) fn read_defect_data(_lu: &LogicalUnit, c: &mut Cmd<'_>) -> Res {
    // No defects: the header alone, echoing the requested list and format.
    if c.cdb.u8(0) == 0x37 {
        let alloc = c.cdb.be16(7) as usize;
        c.data_in.extend_from_slice(&[0, c.cdb.u8(2) & 0x1F, 0, 0]);
        truncate_to(c.data_in, alloc);
    } else {
        let alloc = c.cdb.be32(6) as usize;
        c.data_in
            .extend_from_slice(&[0, c.cdb.u8(1) & 0x1F, 0, 0, 0, 0, 0, 0]);
        truncate_to(c.data_in, alloc);
    }
    Ok(())
}
