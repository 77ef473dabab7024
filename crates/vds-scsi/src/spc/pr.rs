//! PERSISTENT RESERVE IN and OUT (SPC-4 5.13, 6.15, 6.16): registrations keyed by I_T nexus
//! (initiator port + target port names, so they survive nexus loss), all six reservation
//! types, APTPL through an opaque blob handed to [`crate::LuEvents::persist_reservations`].
//!
//! Blob format (version 1, all integers big-endian): `u8 version=1, u32 generation,
//! u8 aptpl, u8 has_reservation, [u8 type, str holder_initiator, str holder_target]`
//! (holder strings empty for all-registrants types), `u32 count`, then per registration
//! `u64 key, u16 relative port, str initiator_port, str target_port`; `str` is `u16 len` +
//! UTF-8 bytes. An empty blob means "no persistent reservation state".

use crate::cdb::{be_at, illegal, invalid_cdb, invalid_param, truncate_to, Fail, Res};
use crate::lu::{Cmd, LogicalUnit, Reservations};
use crate::sense::{self, Sense};
use crate::ItNexus;

pub(crate) const WR_EX: u8 = 1;
pub(crate) const EX_AC: u8 = 3;
pub(crate) const WR_EX_RO: u8 = 5;
pub(crate) const EX_AC_RO: u8 = 6;
pub(crate) const WR_EX_AR: u8 = 7;
pub(crate) const EX_AC_AR: u8 = 8;

fn valid_type(t: u8) -> bool {
    matches!(t, WR_EX | EX_AC | WR_EX_RO | EX_AC_RO | WR_EX_AR | EX_AC_AR)
}

fn all_registrants(t: u8) -> bool {
    matches!(t, WR_EX_AR | EX_AC_AR)
}

fn registrants_only(t: u8) -> bool {
    matches!(t, WR_EX_RO | EX_AC_RO)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Registration {
    pub initiator_port: String,
    pub target_port: String,
    pub rel_port: u16,
    pub key: u64,
}

impl Registration {
    fn is(&self, initiator_port: &str, target_port: &str) -> bool {
        self.initiator_port.eq_ignore_ascii_case(initiator_port)
            && self.target_port.eq_ignore_ascii_case(target_port)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reservation {
    pub rtype: u8,
    /// (initiator port, target port) of the holder; `None` for all-registrants types.
    pub holder: Option<(String, String)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PrState {
    pub generation: u32,
    pub aptpl: bool,
    pub regs: Vec<Registration>,
    pub reservation: Option<Reservation>,
}

impl PrState {
    fn find(&self, ip: &str, tp: &str) -> Option<usize> {
        self.regs.iter().position(|r| r.is(ip, tp))
    }

    fn is_holder(&self, ip: &str, tp: &str) -> bool {
        match &self.reservation {
            None => false,
            Some(r) if all_registrants(r.rtype) => self.find(ip, tp).is_some(),
            Some(Reservation {
                holder: Some((hi, ht)),
                ..
            }) => hi.eq_ignore_ascii_case(ip) && ht.eq_ignore_ascii_case(tp),
            Some(_) => false,
        }
    }

    /// Whether `nexus` may perform a read (`write == false`) or write under the reservation.
    pub(crate) fn allows(&self, nexus: &ItNexus, write: bool) -> bool {
        let Some(r) = &self.reservation else {
            return true;
        };
        let (ip, tp) = (&nexus.initiator_port, &nexus.target_port);
        if self.is_holder(ip, tp) {
            return true;
        }
        let registered = self.find(ip, tp).is_some();
        match r.rtype {
            WR_EX | WR_EX_AR => !write,
            WR_EX_RO => registered || !write,
            EX_AC_RO => registered,
            _ => false,
        }
    }

    /// The reservation key READ RESERVATION reports.
    fn reservation_key(&self) -> u64 {
        match &self.reservation {
            Some(Reservation {
                holder: Some((hi, ht)),
                ..
            }) => self.find(hi, ht).map_or(0, |i| self.regs[i].key),
            _ => 0,
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        fn s(v: &mut Vec<u8>, x: &str) {
            let b = &x.as_bytes()[..x.len().min(u16::MAX as usize)];
            v.extend_from_slice(&(b.len() as u16).to_be_bytes());
            v.extend_from_slice(b);
        }
        let mut v = vec![1u8];
        v.extend_from_slice(&self.generation.to_be_bytes());
        v.push(u8::from(self.aptpl));
        match &self.reservation {
            None => v.push(0),
            Some(r) => {
                v.push(1);
                v.push(r.rtype);
                let (hi, ht) = r.holder.clone().unwrap_or_default();
                s(&mut v, &hi);
                s(&mut v, &ht);
            }
        }
        v.extend_from_slice(&(self.regs.len() as u32).to_be_bytes());
        for r in &self.regs {
            v.extend_from_slice(&r.key.to_be_bytes());
            v.extend_from_slice(&r.rel_port.to_be_bytes());
            s(&mut v, &r.initiator_port);
            s(&mut v, &r.target_port);
        }
        v
    }

    pub(crate) fn decode(b: &[u8]) -> Result<PrState, String> {
        if b.is_empty() {
            return Ok(PrState::default());
        }
        struct R<'a>(&'a [u8], usize);
        impl R<'_> {
            fn take(&mut self, n: usize) -> Result<&[u8], String> {
                let end = self.1.checked_add(n).filter(|&e| e <= self.0.len());
                let end = end.ok_or_else(|| format!("truncated at byte {}", self.1))?;
                let s = &self.0[self.1..end];
                self.1 = end;
                Ok(s)
            }
            fn int(&mut self, n: usize) -> Result<u64, String> {
                Ok(be_at(self.take(n)?, 0, n))
            }
            fn str(&mut self) -> Result<String, String> {
                let n = self.int(2)? as usize;
                String::from_utf8(self.take(n)?.to_vec()).map_err(|e| e.to_string())
            }
        }
        let mut r = R(b, 0);
        if r.int(1)? != 1 {
            return Err("unknown version".into());
        }
        let generation = r.int(4)? as u32;
        let aptpl = r.int(1)? != 0;
        let reservation = if r.int(1)? != 0 {
            let rtype = r.int(1)? as u8;
            if !valid_type(rtype) {
                return Err(format!("bad reservation type {rtype}"));
            }
            let hi = r.str()?;
            let ht = r.str()?;
            Some(Reservation {
                rtype,
                holder: if all_registrants(rtype) {
                    None
                } else {
                    Some((hi, ht))
                },
            })
        } else {
            None
        };
        let n = r.int(4)?;
        let mut regs = Vec::new();
        for _ in 0..n {
            let key = r.int(8)?;
            let rel_port = r.int(2)? as u16;
            let initiator_port = r.str()?;
            let target_port = r.str()?;
            regs.push(Registration {
                initiator_port,
                target_port,
                rel_port,
                key,
            });
        }
        if r.1 != b.len() {
            return Err("trailing bytes".into());
        }
        Ok(PrState {
            generation,
            aptpl,
            regs,
            reservation,
        })
    }
}

pub(crate) fn pr_in(lu: &LogicalUnit, c: &mut Cmd<'_>) -> Res {
    let sa = c.cdb.u8(1) & 0x1F;
    let alloc = c.cdb.be16(7) as usize;
    let res = lu.res.lock();
    let pr = &res.pr;
    let d = &mut *c.data_in;
    match sa {
        0x00 => {
            d.extend_from_slice(&pr.generation.to_be_bytes());
            d.extend_from_slice(&((pr.regs.len() * 8) as u32).to_be_bytes());
            for r in &pr.regs {
                d.extend_from_slice(&r.key.to_be_bytes());
            }
        }
        0x01 => {
            d.extend_from_slice(&pr.generation.to_be_bytes());
            match &pr.reservation {
                None => d.extend_from_slice(&0u32.to_be_bytes()),
                Some(r) => {
                    d.extend_from_slice(&16u32.to_be_bytes());
                    d.extend_from_slice(&pr.reservation_key().to_be_bytes());
                    d.extend_from_slice(&[0, 0, 0, 0, 0, r.rtype, 0, 0]);
                }
            }
        }
        0x02 => {
            d.extend_from_slice(&[0, 8]);
            d.push(0x01); // PTPL_C
            d.push(0x80 | u8::from(pr.aptpl)); // TMV, ALLOW COMMANDS 0, PTPL_A
            d.push(0x80 | 0x40 | 0x20 | 0x08 | 0x02); // WR_EX_AR EX_AC_RO WR_EX_RO EX_AC WR_EX
            d.push(0x01); // EX_AC_AR
            d.extend_from_slice(&[0, 0]);
        }
        _ => {
            d.extend_from_slice(&pr.generation.to_be_bytes());
            d.extend_from_slice(&[0; 4]);
            for r in &pr.regs {
                let holder = pr.is_holder(&r.initiator_port, &r.target_port);
                d.extend_from_slice(&r.key.to_be_bytes());
                d.extend_from_slice(&[0; 4]);
                d.push(u8::from(holder));
                d.push(if holder {
                    pr.reservation.as_ref().map_or(0, |x| x.rtype)
                } else {
                    0
                });
                d.extend_from_slice(&[0; 4]);
                d.extend_from_slice(&r.rel_port.to_be_bytes());
                let tid = transport_id(&r.initiator_port);
                d.extend_from_slice(&(tid.len() as u32).to_be_bytes());
                d.extend_from_slice(&tid);
            }
            let len = (d.len() - 8) as u32;
            d[4..8].copy_from_slice(&len.to_be_bytes());
        }
    }
    truncate_to(d, alloc);
    Ok(())
}

/// iSCSI TransportID for an initiator port name: format 01b ("name,i,0xISID") when the name
/// carries an ISID, else format 00b (name only).
fn transport_id(initiator_port: &str) -> Vec<u8> {
    let fmt = if initiator_port.contains(",i,0x") {
        0x40
    } else {
        0x00
    };
    let mut name = initiator_port.as_bytes().to_vec();
    name.push(0);
    while name.len() < 16 || name.len() & 3 != 0 {
        name.push(0);
    }
    let mut v = vec![fmt | 0x05, 0];
    v.extend_from_slice(&(name.len() as u16).to_be_bytes());
    v.extend_from_slice(&name);
    v
}

/// Parse an iSCSI TransportID into the initiator port name it designates.
fn parse_transport_id(t: &[u8], base: usize) -> Result<String, Fail> {
    if t.len() < 4 || t[0] & 0x0F != 0x05 {
        return Err(invalid_param(base, None));
    }
    let len = be_at(t, 2, 2) as usize;
    let body = t.get(4..4 + len).ok_or(invalid_param(base + 2, None))?;
    let end = body.iter().position(|&b| b == 0).unwrap_or(body.len());
    let name = std::str::from_utf8(&body[..end]).map_err(|_| invalid_param(base + 4, None))?;
    if name.is_empty() {
        return Err(invalid_param(base + 4, None));
    }
    Ok(name.to_string())
}

/// What a PR OUT changed, for unit attentions after the lock is dropped.
struct Effects {
    /// (initiator port, target port, sense) to notify.
    uas: Vec<(String, String, sense::Asc)>,
    persist: bool,
}

/// Serialises PERSISTENT RESERVE OUT from the state change through its persisting, per logical
/// unit: the APTPL blob is handed over after the reservation lock is dropped (the hand-over may
/// wait for the store), so without this two commands could compute their changes from the same
/// old state and the second would silently undo the first. SPC-2 RESERVE takes it too, so it
/// cannot slip in between a PR OUT's check and the install of its stored state.
///
/// Each [`LogicalUnit`] owns one: the state ordered is that LU's reservations and the blob
/// stored under its id, so a PR OUT waiting for the store on one LU does not hold up another.
#[derive(Default)]
pub(crate) struct PersistOrder(parking_lot::Mutex<()>);

impl PersistOrder {
    /// Held from a PR OUT's (or RESERVE's) check to the install of its stored state.
    pub(crate) fn lock(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.0.lock()
    }
}

/// The answer when an APTPL change could not be stored: HARDWARE ERROR, INTERNAL TARGET
/// FAILURE. The command was valid (so not ILLEGAL REQUEST, which would tell the host its
/// parameter list was wrong or APTPL unsupported); the target failed to keep it, and nothing
/// changed, so the host may retry.
fn not_stored() -> Fail {
    Fail::Check(Sense::new(
        sense::key::HARDWARE_ERROR,
        sense::INTERNAL_TARGET_FAILURE,
    ))
}

/// How many times a PERSISTENT RESERVE OUT is computed again after other gateways changed the
/// shared state first, before it gives up (BUSY: the host retries).
const SHARED_ATTEMPTS: usize = 8;

pub(crate) fn pr_out(lu: &LogicalUnit, c: &mut Cmd<'_>) -> Res {
    let sa = c.cdb.u8(1) & 0x1F;
    let scope = c.cdb.u8(2) >> 4;
    let rtype = c.cdb.u8(2) & 0x0F;
    let plen = c.cdb.be32(5) as usize;
    let p = &c.data_out[..plen.min(c.data_out.len())];
    let _order = lu.persist_order.lock();
    for _ in 0..SHARED_ATTEMPTS {
        let mut res = lu.res.lock();
        if res.spc2.is_some_and(|h| h != c.nexus.id) {
            return Err(Fail::Conflict);
        }
        // The change is made on a copy and installed only once it is stored (with APTPL, or
        // shared by several gateways), so no command (PR IN, a WRITE checked against the
        // reservation) sees a state that may yet be refused, and a refused change leaves
        // nothing to roll back.
        let was_aptpl = res.pr.aptpl;
        let base = res.shared_version;
        let mut next = Reservations {
            spc2: res.spc2,
            pr: res.pr.clone(),
            shared_version: base,
        };
        let mut fx = Effects {
            uas: Vec::new(),
            persist: false,
        };
        let r = if sa == 0x07 {
            register_and_move(lu, &mut next, c, p, plen, &mut fx)
        } else {
            basic(&mut next, c.nexus, sa, scope, rtype, p, plen, &mut fx)
        };
        if fx.persist {
            drop(res);
            let blob = next.pr.encode();
            let uas: Vec<crate::PrUnitAttention> = fx
                .uas
                .iter()
                .map(|(ip, tp, asc)| crate::PrUnitAttention {
                    initiator_port: ip.clone(),
                    target_port: tp.clone(),
                    asc: asc.0,
                    ascq: asc.1,
                })
                .collect();
            let change = crate::PrChange {
                base,
                state: &blob,
                uas: &uas,
            };
            match lu.events().share_reservations(lu.id(), &change) {
                crate::SharedPr::NotShared => {}
                crate::SharedPr::Committed { version } => {
                    // Installed here unless the manager's notification of this very version
                    // already did (with its unit attentions).
                    lu.install_shared(version, next.pr, &uas);
                    return r;
                }
                crate::SharedPr::Stale { version, state } => {
                    if let Err(e) = lu.install_shared_reservations(version, &state, &[]) {
                        tracing::error!(lu = %lu.id(), error = %e, "the shared reservation state is unreadable");
                        return Err(not_stored());
                    }
                    continue;
                }
                crate::SharedPr::Failed(err) => {
                    tracing::error!(lu = %lu.id(), error = %err, "PERSISTENT RESERVE OUT failed: the shared reservation state was not stored");
                    return Err(not_stored());
                }
            }
            if next.pr.aptpl || was_aptpl {
                let blob = if next.pr.aptpl { blob } else { Vec::new() };
                if let Err(err) = lu.events().persist_reservations(lu.id(), &blob) {
                    tracing::error!(lu = %lu.id(), error = %err, "PERSISTENT RESERVE OUT failed: its APTPL state was not stored");
                    return Err(not_stored());
                }
            }
            // Only PR OUT (serialised above) changes `pr`, so the state the change was
            // computed from is still the one in place.
            res = lu.res.lock();
        }
        res.pr = next.pr;
        lu.update_res_active(&res);
        drop(res);
        for (ip, tp, asc) in fx.uas {
            lu.ua_port(&ip, &tp, asc);
        }
        return r;
    }
    tracing::warn!(lu = %lu.id(), "PERSISTENT RESERVE OUT lost {SHARED_ATTEMPTS} races with other gateways; BUSY");
    Err(Fail::Busy)
}

#[allow(clippy::too_many_arguments)]
fn basic(
    res: &mut Reservations,
    nexus: &ItNexus,
    sa: u8,
    scope: u8,
    rtype: u8,
    p: &[u8],
    plen: usize,
    fx: &mut Effects,
) -> Res {
    if plen != 24 {
        return Err(illegal(sense::PARAMETER_LIST_LENGTH_ERROR));
    }
    if p.len() < 24 {
        return Err(illegal(sense::PARAMETER_LIST_LENGTH_ERROR));
    }
    let rkey = be_at(p, 0, 8);
    let sakey = be_at(p, 8, 8);
    let flags = p[20];
    if flags & 0x08 != 0 {
        return Err(invalid_param(20, Some(3))); // SPEC_I_PT: not supported
    }
    if flags & 0x04 != 0 {
        return Err(invalid_param(20, Some(2))); // ALL_TG_PT: not supported
    }
    let aptpl = flags & 0x01 != 0;
    let (ip, tp) = (nexus.initiator_port.as_str(), nexus.target_port.as_str());
    let pr = &mut res.pr;
    let me = pr.find(ip, tp);
    let needs_type = matches!(sa, 0x01 | 0x02 | 0x04 | 0x05);
    if needs_type && (sa != 0x04 && sa != 0x05 || pr.reservation.is_some()) {
        if scope != 0 {
            return Err(invalid_cdb(2, Some(7)));
        }
        if !valid_type(rtype) {
            return Err(invalid_cdb(2, Some(3)));
        }
    }
    match sa {
        // REGISTER, REGISTER AND IGNORE EXISTING KEY
        0x00 | 0x06 => {
            match me {
                None => {
                    if sa == 0x00 && rkey != 0 {
                        return Err(Fail::Conflict);
                    }
                    if sakey == 0 {
                        return Ok(());
                    }
                    pr.regs.push(Registration {
                        initiator_port: ip.to_string(),
                        target_port: tp.to_string(),
                        rel_port: nexus.relative_target_port,
                        key: sakey,
                    });
                }
                Some(i) => {
                    if sa == 0x00 && rkey != pr.regs[i].key {
                        return Err(Fail::Conflict);
                    }
                    if sakey == 0 {
                        unregister(pr, i, fx);
                    } else {
                        pr.regs[i].key = sakey;
                    }
                }
            }
            pr.aptpl = aptpl;
            pr.generation = pr.generation.wrapping_add(1);
            fx.persist = true;
            Ok(())
        }
        // RESERVE
        0x01 => {
            let i = me.ok_or(Fail::Conflict)?;
            if pr.regs[i].key != rkey {
                return Err(Fail::Conflict);
            }
            match &pr.reservation {
                None => {
                    pr.reservation = Some(Reservation {
                        rtype,
                        holder: if all_registrants(rtype) {
                            None
                        } else {
                            Some((ip.to_string(), tp.to_string()))
                        },
                    });
                    fx.persist = true;
                    Ok(())
                }
                Some(r) if r.rtype == rtype && pr.is_holder(ip, tp) => Ok(()),
                Some(_) => Err(Fail::Conflict),
            }
        }
        // RELEASE
        0x02 => {
            let i = me.ok_or(Fail::Conflict)?;
            if pr.regs[i].key != rkey {
                return Err(Fail::Conflict);
            }
            let Some(r) = pr.reservation.clone() else {
                return Ok(());
            };
            if !pr.is_holder(ip, tp) {
                return Ok(());
            }
            if r.rtype != rtype {
                return Err(illegal(sense::INVALID_RELEASE_OF_PERSISTENT_RESERVATION));
            }
            pr.reservation = None;
            if registrants_only(r.rtype) || all_registrants(r.rtype) {
                for reg in &pr.regs {
                    if !reg.is(ip, tp) {
                        fx.uas.push((
                            reg.initiator_port.clone(),
                            reg.target_port.clone(),
                            sense::RESERVATIONS_RELEASED,
                        ));
                    }
                }
            }
            fx.persist = true;
            Ok(())
        }
        // CLEAR
        0x03 => {
            let i = me.ok_or(Fail::Conflict)?;
            if pr.regs[i].key != rkey {
                return Err(Fail::Conflict);
            }
            for reg in &pr.regs {
                if !reg.is(ip, tp) {
                    fx.uas.push((
                        reg.initiator_port.clone(),
                        reg.target_port.clone(),
                        sense::RESERVATIONS_PREEMPTED,
                    ));
                }
            }
            pr.regs.clear();
            pr.reservation = None;
            pr.generation = pr.generation.wrapping_add(1);
            fx.persist = true;
            Ok(())
        }
        // PREEMPT, PREEMPT AND ABORT (aborting the preempted tasks is the transport's part)
        _ => {
            let i = me.ok_or(Fail::Conflict)?;
            if pr.regs[i].key != rkey {
                return Err(Fail::Conflict);
            }
            preempt(pr, ip, tp, sakey, rtype, fx)
        }
    }
}

/// Remove registration `i`; a holder leaving releases its reservation (all-registrants
/// reservations last while anyone is registered).
fn unregister(pr: &mut PrState, i: usize, fx: &mut Effects) {
    let reg = pr.regs.remove(i);
    if let Some(r) = pr.reservation.clone() {
        let release = if all_registrants(r.rtype) {
            pr.regs.is_empty()
        } else {
            r.holder.as_ref().is_some_and(|(hi, ht)| reg.is(hi, ht))
        };
        if release {
            pr.reservation = None;
            if registrants_only(r.rtype) {
                for other in &pr.regs {
                    fx.uas.push((
                        other.initiator_port.clone(),
                        other.target_port.clone(),
                        sense::RESERVATIONS_RELEASED,
                    ));
                }
            }
        }
    }
}

fn preempt(pr: &mut PrState, ip: &str, tp: &str, sakey: u64, rtype: u8, fx: &mut Effects) -> Res {
    let remove_with = |pr: &mut PrState, fx: &mut Effects, pred: &dyn Fn(&Registration) -> bool| {
        let before = pr.regs.len();
        let mut kept = Vec::new();
        for reg in pr.regs.drain(..) {
            if !reg.is(ip, tp) && pred(&reg) {
                fx.uas.push((
                    reg.initiator_port.clone(),
                    reg.target_port.clone(),
                    sense::REGISTRATIONS_PREEMPTED,
                ));
            } else {
                kept.push(reg);
            }
        }
        pr.regs = kept;
        before - pr.regs.len()
    };
    let new_holder = |rtype: u8| Reservation {
        rtype,
        holder: if all_registrants(rtype) {
            None
        } else {
            Some((ip.to_string(), tp.to_string()))
        },
    };
    match pr.reservation.clone() {
        None => {
            if sakey == 0 {
                return Err(invalid_param(8, None));
            }
            if remove_with(pr, fx, &|r| r.key == sakey) == 0 {
                return Err(Fail::Conflict);
            }
        }
        Some(r) if all_registrants(r.rtype) => {
            if sakey == 0 {
                remove_with(pr, fx, &|_| true);
                pr.reservation = Some(new_holder(rtype));
            } else if remove_with(pr, fx, &|r| r.key == sakey) == 0 {
                return Err(Fail::Conflict);
            }
        }
        Some(r) => {
            let holder_key = pr.reservation_key();
            if sakey == holder_key {
                remove_with(pr, fx, &|r| r.key == sakey);
                pr.reservation = Some(new_holder(rtype));
                let _ = r;
            } else {
                if sakey == 0 {
                    return Err(invalid_param(8, None));
                }
                if remove_with(pr, fx, &|r| r.key == sakey) == 0 {
                    return Err(Fail::Conflict);
                }
            }
        }
    }
    pr.generation = pr.generation.wrapping_add(1);
    fx.persist = true;
    Ok(())
}

fn register_and_move(
    lu: &LogicalUnit,
    res: &mut Reservations,
    c: &Cmd<'_>,
    p: &[u8],
    plen: usize,
    fx: &mut Effects,
) -> Res {
    if plen < 24 || p.len() < plen {
        return Err(illegal(sense::PARAMETER_LIST_LENGTH_ERROR));
    }
    let rkey = be_at(p, 0, 8);
    let sakey = be_at(p, 8, 8);
    let unreg = p[17] & 0x02 != 0;
    let aptpl = p[17] & 0x01 != 0;
    let rel = be_at(p, 18, 2) as u16;
    let tlen = be_at(p, 20, 4) as usize;
    if 24 + tlen > p.len() {
        return Err(illegal(sense::PARAMETER_LIST_LENGTH_ERROR));
    }
    let (ip, tp) = (
        c.nexus.initiator_port.as_str(),
        c.nexus.target_port.as_str(),
    );
    let pr = &mut res.pr;
    let i = pr.find(ip, tp).ok_or(Fail::Conflict)?;
    if pr.regs[i].key != rkey {
        return Err(Fail::Conflict);
    }
    let Some(r) = pr.reservation.clone() else {
        return Err(Fail::Conflict);
    };
    if all_registrants(r.rtype) || !pr.is_holder(ip, tp) {
        return Err(Fail::Conflict);
    }
    if sakey == 0 {
        return Err(invalid_param(8, None));
    }
    let dest_ip = parse_transport_id(&p[24..24 + tlen], 24)?;
    let dest_tp = if rel == c.nexus.relative_target_port {
        tp.to_string()
    } else {
        lu.target_port_by_rel(rel).ok_or(invalid_param(18, None))?
    };
    if dest_ip.eq_ignore_ascii_case(ip) && dest_tp.eq_ignore_ascii_case(tp) {
        return Err(invalid_param(24, None));
    }
    match pr.find(&dest_ip, &dest_tp) {
        Some(j) => pr.regs[j].key = sakey,
        None => pr.regs.push(Registration {
            initiator_port: dest_ip.clone(),
            target_port: dest_tp.clone(),
            rel_port: rel,
            key: sakey,
        }),
    }
    pr.reservation = Some(Reservation {
        rtype: r.rtype,
        holder: Some((dest_ip, dest_tp)),
    });
    if unreg {
        if let Some(k) = pr.find(ip, tp) {
            pr.regs.remove(k);
        }
    }
    pr.aptpl = aptpl;
    pr.generation = pr.generation.wrapping_add(1);
    fx.persist = true;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_round_trip() {
        let s = PrState {
            generation: 7,
            aptpl: true,
            regs: vec![
                Registration {
                    initiator_port: "iqn.a,i,0x230000000001".into(),
                    target_port: "iqn.t,t,0x0001".into(),
                    rel_port: 1,
                    key: 0xABCD,
                },
                Registration {
                    initiator_port: "iqn.b,i,0x230000000002".into(),
                    target_port: "iqn.t,t,0x0001".into(),
                    rel_port: 1,
                    key: 0x1234,
                },
            ],
            reservation: Some(Reservation {
                rtype: WR_EX,
                holder: Some(("iqn.a,i,0x230000000001".into(), "iqn.t,t,0x0001".into())),
            }),
        };
        assert_eq!(PrState::decode(&s.encode()).unwrap(), s);
        assert_eq!(PrState::decode(&[]).unwrap(), PrState::default());
        let b = s.encode();
        for n in 0..b.len() {
            assert!(PrState::decode(&b[..n]).is_err() || n == 0, "prefix {n}");
        }
        assert!(PrState::decode(&[2]).is_err());
    }

    #[test]
    fn transport_id_round_trip() {
        let t = transport_id("iqn.x,i,0x230000000001");
        assert_eq!(t[0], 0x45);
        assert_eq!(t.len() % 4, 0);
        assert_eq!(parse_transport_id(&t, 0).unwrap(), "iqn.x,i,0x230000000001");
    }
}
