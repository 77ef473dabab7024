//! MODE SENSE and MODE SELECT (6 and 10) with the caching (08h), control (0Ah) and
//! informational exceptions (1Ch) pages. Changeable: WCE (caching), D_SENSE and SWP (control).
//! Saved values are not supported.

use std::sync::atomic::Ordering;

use crate::cdb::{illegal, invalid_cdb, invalid_param, truncate_to, Res};
use crate::lu::{Cmd, LogicalUnit};
use crate::sense;

/// Page control field.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pc {
    Current,
    Changeable,
    Default,
}

const PAGES: [u8; 3] = [0x08, 0x0A, 0x1C];

fn page(lu: &LogicalUnit, code: u8, pc: Pc) -> Vec<u8> {
    let wce = lu.mode.wce.load(Ordering::Relaxed);
    let d_sense = lu.descriptor_sense();
    let swp = lu.mode.swp.load(Ordering::Relaxed);
    match code {
        0x08 => {
            let mut p = vec![0u8; 20];
            p[0] = 0x08;
            p[1] = 0x12;
            p[2] = match pc {
                Pc::Current => u8::from(wce) << 2,
                Pc::Changeable => 0x04,
                Pc::Default => 0x04,
            };
            p
        }
        0x0A => {
            let mut p = vec![0u8; 12];
            p[0] = 0x0A;
            p[1] = 0x0A;
            match pc {
                Pc::Changeable => {
                    p[2] = 0x04; // D_SENSE
                    p[4] = 0x08; // SWP
                }
                Pc::Current | Pc::Default => {
                    let cur = pc == Pc::Current;
                    p[2] = if cur { u8::from(d_sense) << 2 } else { 0 };
                    p[3] = 0x10; // QUEUE ALGORITHM MODIFIER 1: unrestricted reordering
                    p[4] = if cur { u8::from(swp) << 3 } else { 0 };
                    p[5] = 0x40; // TAS: aborted commands end with TASK ABORTED
                    p[8..10].copy_from_slice(&0xFFFFu16.to_be_bytes()); // busy timeout: unlimited
                }
            }
            p
        }
        _ => {
            // 0x1C informational exceptions control: reporting disabled (DEXCPT).
            let mut p = vec![0u8; 12];
            p[0] = 0x1C;
            p[1] = 0x0A;
            if pc != Pc::Changeable {
                p[2] = 0x08;
            }
            p
        }
    }
}

pub(crate) fn mode_sense(lu: &LogicalUnit, c: &mut Cmd<'_>) -> Res {
    let ten = c.cdb.u8(0) == 0x5A;
    let dbd = c.cdb.bit(1, 3);
    let llbaa = ten && c.cdb.bit(1, 4);
    let pc = match c.cdb.u8(2) >> 6 {
        0 => Pc::Current,
        1 => Pc::Changeable,
        2 => Pc::Default,
        _ => return Err(illegal(sense::SAVING_PARAMETERS_NOT_SUPPORTED)),
    };
    let code = c.cdb.u8(2) & 0x3F;
    let subpage = c.cdb.u8(3);
    let alloc = if ten {
        c.cdb.be16(7) as usize
    } else {
        c.cdb.u8(4) as usize
    };
    if subpage != 0 && subpage != 0xFF {
        return Err(invalid_cdb(3, Some(7)));
    }
    let codes: &[u8] = match code {
        0x3F => &PAGES,
        0x08 => &PAGES[0..1],
        0x0A => &PAGES[1..2],
        0x1C => &PAGES[2..3],
        _ => return Err(invalid_cdb(2, Some(5))),
    };
    let d = &mut *c.data_in;
    let hdr = if ten { 8 } else { 4 };
    d.resize(hdr, 0);
    // Device-specific parameter (SBC-3 6.5.2): WP when the LUN is read-only or software write
    // protected; DPOFUA (we honour both).
    let dsp = 0x10 | if lu.wp() { 0x80 } else { 0 };
    if !dbd {
        let blocks = lu.num_blocks();
        let bs = lu.block_size();
        if llbaa {
            d.extend_from_slice(&blocks.to_be_bytes());
            d.extend_from_slice(&[0, 0, 0, 0]);
            d.extend_from_slice(&bs.to_be_bytes());
        } else {
            let n = u32::try_from(blocks).unwrap_or(u32::MAX);
            d.extend_from_slice(&n.to_be_bytes());
            d.push(0);
            d.extend_from_slice(&bs.to_be_bytes()[1..]);
        }
    }
    let bdl = d.len() - hdr;
    for &p in codes {
        d.extend_from_slice(&page(lu, p, pc));
    }
    if ten {
        let len = (d.len() - 2) as u16;
        d[0..2].copy_from_slice(&len.to_be_bytes());
        d[3] = dsp;
        d[4] = u8::from(llbaa && !dbd);
        d[6..8].copy_from_slice(&(bdl as u16).to_be_bytes());
    } else {
        d[0] = (d.len() - 1).min(255) as u8;
        d[1] = 0; // medium type
        d[2] = dsp;
        d[3] = bdl as u8;
    }
    truncate_to(d, alloc);
    Ok(())
}

pub(crate) fn mode_select(lu: &LogicalUnit, c: &mut Cmd<'_>) -> Res {
    let ten = c.cdb.u8(0) == 0x55;
    if !c.cdb.bit(1, 4) {
        // PF=0: vendor-specific page format, which we do not have.
        return Err(invalid_cdb(1, Some(4)));
    }
    if c.cdb.bit(1, 0) {
        // SP=1: saving pages is not supported.
        return Err(invalid_cdb(1, Some(0)));
    }
    let plen = if ten {
        c.cdb.be16(7) as usize
    } else {
        c.cdb.u8(4) as usize
    };
    if plen == 0 {
        return Ok(());
    }
    let p = &c.data_out[..plen.min(c.data_out.len())];
    let hdr = if ten { 8 } else { 4 };
    if p.len() < hdr {
        return Err(illegal(sense::PARAMETER_LIST_LENGTH_ERROR));
    }
    let (bdl, long) = if ten {
        (u16::from_be_bytes([p[6], p[7]]) as usize, p[4] & 1 != 0)
    } else {
        (p[3] as usize, false)
    };
    let mut pos = hdr;
    if bdl > 0 {
        let one = if long { 16 } else { 8 };
        if bdl != one || p.len() < hdr + bdl {
            return Err(invalid_param(if ten { 6 } else { 3 }, None));
        }
        // Only the current block length may be "selected".
        let bl = &p[hdr + bdl - 3..hdr + bdl];
        let want = &lu.block_size().to_be_bytes()[1..];
        if bl != want {
            return Err(invalid_param(hdr + bdl - 3, None));
        }
        pos += bdl;
    }
    // Validate every page first, then apply: a bad page changes nothing.
    let mut wce = None;
    let mut d_sense = None;
    let mut swp = None;
    while pos < p.len() {
        if p.len() < pos + 2 {
            return Err(illegal(sense::PARAMETER_LIST_LENGTH_ERROR));
        }
        let code = p[pos] & 0x3F;
        if p[pos] & 0x40 != 0 {
            // SPF: no subpages are changeable.
            return Err(invalid_param(pos, Some(6)));
        }
        let cur = match code {
            0x08 | 0x0A | 0x1C => page(lu, code, Pc::Current),
            _ => return Err(invalid_param(pos, Some(5))),
        };
        let mask = page(lu, code, Pc::Changeable);
        if p[pos + 1] as usize != cur.len() - 2 {
            return Err(invalid_param(pos + 1, None));
        }
        if p.len() < pos + cur.len() {
            return Err(illegal(sense::PARAMETER_LIST_LENGTH_ERROR));
        }
        let new = &p[pos..pos + cur.len()];
        for i in 2..cur.len() {
            let diff = (new[i] ^ cur[i]) & !mask[i];
            if diff != 0 {
                return Err(invalid_param(pos + i, Some(7 - diff.leading_zeros() as u8)));
            }
        }
        match code {
            0x08 => wce = Some(new[2] & 0x04 != 0),
            0x0A => {
                d_sense = Some(new[2] & 0x04 != 0);
                swp = Some(new[4] & 0x08 != 0);
            }
            _ => {}
        }
        pos += cur.len();
    }
    if let Some(v) = wce {
        if !v {
            // Turning the write cache off: what it holds must reach stable storage first.
            lu.backing().flush().map_err(crate::cdb::write_err)?;
        }
        let was = lu.mode.wce.swap(v, Ordering::Relaxed);
        if was != v {
            // The write-back cache is the provider's `write_caching_enabled` hint too.
            lu.events().write_cache_changed(lu.id(), v);
        }
    }
    if let Some(v) = d_sense {
        lu.mode.d_sense.store(v, Ordering::Relaxed);
    }
    if let Some(v) = swp {
        lu.mode.swp.store(v, Ordering::Relaxed);
    }
    Ok(())
}
