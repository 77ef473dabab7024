//! A LUN's identification and hints (BEHAVIOUR.md §14 rules 7 and 8):
//! `IVdsLun::GetIdentificationData` built from `vds_scsi::identity` (what INQUIRY and VPD
//! 80/83 send) and the disk signature read from the LUN itself; finding LUNs by any of their
//! designators; QueryHints2 / ApplyHints2 and the hints of CreateLun2.

use std::sync::Arc;

use uuid::Uuid;
use vds_model::{
    hint_mask, DiskSignature, EventKind, Interconnect, InterconnectAddressType, InterconnectPort,
    LunHints, LunInformation, ObjectKind, StorageBusType, StorageIdentifier,
    StorageIdentifierCodeSet, StorageIdentifierType, HINTS_NOT_APPLIED,
};
use vds_scsi::identity::{self, Designator};
use vds_scsi::LogicalUnit;

use crate::command::{AppliedHints, HintsRequest, NotApplied};
use crate::commit::Change;
use crate::engine::{apply_hints, lu_hints};
use crate::state::State;
use crate::{Outcome, Provider, VdsError};

use super::storage_err;

/// Largest optimal transfer size: what one command may move (VPD B0 MAXIMUM TRANSFER LENGTH).
const MAX_OPTIMAL_SIZE: u64 = 32 << 20;
/// Largest optimal alignment, in blocks: OPTIMAL TRANSFER LENGTH GRANULARITY is 16 bits.
const MAX_ALIGNMENT_BLOCKS: u64 = u16::MAX as u64;
/// Highest rebuild priority (`VDS_REBUILD_PRIORITY_MAX` is 16, exclusive).
const MAX_REBUILD_PRIORITY: i64 = 15;

/// Judges `req` against the hints `cur` of a LUN with `block_size`-byte blocks: the new hints,
/// the `VDS_HINT_*` bits of the members applied, and the members not applied. Any member out
/// of range is `E_INVALIDARG` naming it, and nothing is applied.
pub(crate) fn judge_hints(
    req: &HintsRequest,
    cur: LunHints,
    block_size: u32,
) -> Result<(LunHints, u64, Vec<NotApplied>), VdsError> {
    let mut h = cur;
    let mut mask = 0u64;
    let mut flag = |v: Option<bool>, bit: u64, slot: &mut bool| {
        if let Some(v) = v {
            *slot = v;
            mask |= bit;
        }
    };
    flag(
        req.write_caching_enabled,
        hint_mask::WRITE_CACHING_ENABLED,
        &mut h.write_caching_enabled,
    );
    flag(
        req.write_through_caching_enabled,
        hint_mask::WRITE_THROUGH_CACHING_ENABLED,
        &mut h.write_through_caching_enabled,
    );
    flag(
        req.read_back_verify_enabled,
        hint_mask::READ_BACK_VERIFY_ENABLED,
        &mut h.read_back_verify_enabled,
    );
    flag(
        req.fast_crash_recovery_required,
        hint_mask::FAST_CRASH_RECOVERY_REQUIRED,
        &mut h.fast_crash_recovery_required,
    );
    let bs = u64::from(block_size);
    for (field, v, slot, is_size) in [
        (
            "optimal_read_size",
            req.optimal_read_size,
            &mut h.optimal_read_size,
            true,
        ),
        (
            "optimal_read_alignment",
            req.optimal_read_alignment,
            &mut h.optimal_read_alignment,
            false,
        ),
        (
            "optimal_write_size",
            req.optimal_write_size,
            &mut h.optimal_write_size,
            true,
        ),
        (
            "optimal_write_alignment",
            req.optimal_write_alignment,
            &mut h.optimal_write_alignment,
            false,
        ),
    ] {
        let Some(v) = v else { continue };
        if v % bs != 0 {
            return Err(VdsError::invalid_arg(
                field,
                format!("{v} is not a multiple of the block size {bs}"),
            ));
        }
        let max = if is_size {
            MAX_OPTIMAL_SIZE
        } else {
            MAX_ALIGNMENT_BLOCKS * bs
        };
        if v > max {
            return Err(VdsError::invalid_arg(
                field,
                format!("{v} is larger than the most VPD B0 can report, {max}"),
            ));
        }
        *slot = v as u32;
    }
    if let Some(p) = req.rebuild_priority {
        if !(0..=MAX_REBUILD_PRIORITY).contains(&p) {
            return Err(VdsError::invalid_arg(
                "rebuild_priority",
                format!("{p} is not 0 to {MAX_REBUILD_PRIORITY}"),
            ));
        }
        h.rebuild_priority = p as i16;
    }
    let mut not_applied = Vec::new();
    for (name, value) in &req.other {
        let Some(&(field, always, reason)) = HINTS_NOT_APPLIED.iter().find(|e| e.0 == name) else {
            return Err(VdsError::invalid_arg(name, "is not a VDS_HINTS2 member"));
        };
        if value.eq_ignore_ascii_case(always) {
            // What vds always does: met as it stands.
            mask |= other_bit(field);
        } else {
            not_applied.push(NotApplied { field, reason });
        }
    }
    Ok((h, mask, not_applied))
}

/// The `VDS_HINT_*` bit of a member vds does not apply (0 for those without one).
fn other_bit(field: &str) -> u64 {
    match field {
        "mostly_reads" => hint_mask::MOSTLY_READS,
        "optimize_for_sequential_reads" => hint_mask::OPTIMIZE_FOR_SEQUENTIAL_READS,
        "optimize_for_sequential_writes" => hint_mask::OPTIMIZE_FOR_SEQUENTIAL_WRITES,
        "remap_enabled" => hint_mask::REMAP_ENABLED,
        "hardware_checksum_enabled" => hint_mask::HARDWARE_CHECKSUM_ENABLED,
        "is_yankable" => hint_mask::IS_YANKABLE,
        "allocate_hot_spare" => hint_mask::ALLOCATE_HOT_SPARE,
        "bus_type" => hint_mask::BUS_TYPE,
        "use_mirrored_cache" => hint_mask::USE_MIRRORED_CACHE,
        "read_caching_enabled" => hint_mask::READ_CACHING_ENABLED,
        "media_scan_enabled" => hint_mask::MEDIA_SCAN_ENABLED,
        "consistency_check_enabled" => hint_mask::CONSISTENCY_CHECK_ENABLED,
        _ => 0,
    }
}

/// The change that stores `hints` for LUN `id` (with the LUN's flags and rebuild priority,
/// which follow them) and raises one LUN MODIFY event. The data path is not touched here.
pub(crate) fn hints_change(
    st: &State,
    id: Uuid,
    hints: LunHints,
) -> Result<Change<'static>, VdsError> {
    let mut rec = st.lun(id)?.rec.clone();
    rec.lun.flags = hints.lun_flags();
    rec.lun.rebuild_priority = hints.rebuild_priority;
    let row = rec.clone();
    Ok(Change::new()
        .store(move |tx| {
            tx.set_lun_hints(id, &hints)?;
            tx.put_lun(&row)
        })
        .apply(move |st| {
            if let Some(e) = st.luns.get_mut(&id) {
                e.rec = rec;
                e.hints = hints;
            }
        })
        .event(ObjectKind::Lun, EventKind::Modify, id))
}

impl Provider {
    /// QueryHints2: every hint of the LUN, with the bits of every member vds applies.
    pub(super) fn lun_hints(&self, id: Uuid) -> Result<Outcome, VdsError> {
        let mut st = self.inner.state.lock();
        self.inner.object_call(&mut st, ObjectKind::Lun, id)?;
        Ok(Outcome::Hints(Box::new(AppliedHints {
            hints: st.lun(id)?.hints,
            mask: hint_mask::APPLIED,
            not_applied: Vec::new(),
        })))
    }

    /// ApplyHints2. The LU takes the new hints before they are stored (turning its write-back
    /// cache off flushes it first, without the provider lock; the slot keeps other calls off
    /// the LUN), and takes the old ones back if the store refuses, so the data path never
    /// serves what the store does not hold.
    pub(super) fn set_lun_hints(&self, id: Uuid, req: HintsRequest) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Lun, id)?;
        let (old, block_size) = {
            let e = st.lun(id)?;
            (e.hints, e.rec.lun.block_size)
        };
        let (new, mask, not_applied) = judge_hints(&req, old, block_size)?;
        st.check_free(&[(ObjectKind::Lun, id)])?;
        let answer = |hints| {
            Ok(Outcome::Hints(Box::new(AppliedHints {
                hints,
                mask,
                not_applied: not_applied.clone(),
            })))
        };
        if new == old {
            return answer(old);
        }
        let (lu, raid) = {
            let e = st.lun(id)?;
            (e.lu.clone(), e.raid.clone())
        };
        // The write-intent bitmap follows `fast_crash_recovery_required` (recovery.rs).
        let had = crate::recovery::wants_bitmap(&old, raid.as_deref());
        let wants = crate::recovery::wants_bitmap(&new, raid.as_deref());
        let bitmap = |on: bool| -> Result<(), std::io::Error> {
            match (raid.as_deref(), on) {
                (Some(r), true) => inner.attach_bitmap(id, r),
                (Some(r), false) => inner.detach_bitmap(r),
                (None, _) => Ok(()),
            }
        };
        let slots = inner.claim(st, &[id]);
        let prepare = || -> Result<(), (&'static str, std::io::Error)> {
            lu.set_hints(lu_hints(&new));
            lu.set_write_cache(new.write_caching_enabled)
                .map_err(|e| ("flushing the write-back cache before turning it off", e))?;
            if had != wants {
                bitmap(wants).map_err(|e| {
                    if wants {
                        ("attaching the write-intent bitmap", e)
                    } else {
                        (
                            "flushing every plex before dropping the write-intent bitmap",
                            e,
                        )
                    }
                })?;
            }
            Ok(())
        };
        let undo = |_: &mut State, _: &Result<(), (&'static str, std::io::Error)>| {
            apply_hints(&lu, &old);
            if had != wants {
                // As it was: attached again over the kept file, or detached and removed.
                if let Err(err) = bitmap(had) {
                    tracing::warn!(lun = %id, error = %err, "could not put the write-intent bitmap back");
                }
                if !had {
                    crate::recovery::remove_bitmap(&inner.config.data_dir, id);
                }
            }
            Change::new()
        };
        let build = |st: &mut State, done: &Result<(), (&'static str, std::io::Error)>| match done {
            Ok(()) => hints_change(st, id, new),
            Err((what, e)) => Err(storage_err(format!("LUN {id}: {what}"), e)),
        };
        let (_g, _, r) = inner.commit_prepared(g, slots, prepare, undo, build);
        r?;
        if had && !wants {
            // Every plex was flushed with the bitmap detached: it is no longer needed.
            crate::recovery::remove_bitmap(&inner.config.data_dir, id);
        }
        answer(new)
    }

    /// GetIdentificationData.
    pub(super) fn lun_identification(&self, id: Uuid) -> Result<Outcome, VdsError> {
        let (lu, interconnects) = {
            let mut st = self.inner.state.lock();
            self.inner.object_call(&mut st, ObjectKind::Lun, id)?;
            (st.lun(id)?.lu.clone(), interconnects(&st, id))
        };
        // Read without the provider lock: a slow device must not hold up other calls.
        let disk_signature = disk_signature(&lu)
            .map_err(|e| storage_err(format!("LUN {id}: reading the disk signature"), &e))?;
        let ident = lu.identity();
        Ok(Outcome::Identification(Box::new(LunInformation {
            version: 1,
            device_type: ident.device_type,
            device_type_modifier: 0,
            command_queueing: true,
            bus_type: StorageBusType::Iscsi,
            vendor: ident.vendor.to_string(),
            product: ident.product.to_string(),
            revision: ident.revision.to_string(),
            serial_number: ident.serial.clone(),
            disk_signature,
            identifiers: ident.designators.iter().map(storage_identifier).collect(),
            interconnects,
        })))
    }

    /// The LUNs that carry `identifier` among their designators, in creation order.
    pub(super) fn find_luns(&self, identifier: &str) -> Result<Outcome, VdsError> {
        let want = Wanted::parse(identifier)?;
        let luns: Vec<Uuid> = {
            let st = self.inner.state.lock();
            st.luns.keys().copied().collect()
        };
        let st = self.list_prelude(None, &luns)?;
        Ok(Outcome::Luns(super::sorted(
            st.luns
                .values()
                .filter(|e| want.matches(&e.lu.identity()))
                .map(|e| (e.seq, e.rec.lun.clone())),
        )))
    }
}

/// A designator as VDS_STORAGE_IDENTIFIER.
fn storage_identifier(d: &Designator) -> StorageIdentifier {
    StorageIdentifier {
        code_set: StorageIdentifierCodeSet::from_i64(i64::from(d.code_set))
            .unwrap_or(StorageIdentifierCodeSet::Reserved),
        id_type: StorageIdentifierType::from_i64(i64::from(d.designator_type))
            .unwrap_or(StorageIdentifierType::VendorSpecific),
        association: d.association,
        bytes: d.bytes.clone(),
    }
}

/// One interconnect per portal that serves LUN `id` (through a portal group of a target that
/// maps it), in portal creation order, each with the target ports behind it.
fn interconnects(st: &State, id: Uuid) -> Vec<Interconnect> {
    let Some(e) = st.luns.get(&id) else {
        return Vec::new();
    };
    let mut out: Vec<(u64, Interconnect)> = Vec::new();
    for t in &e.rec.lun.targets {
        let Some(te) = st.targets.get(t) else {
            continue;
        };
        for pg in &te.t.portal_groups {
            let Some((pg, _)) = st.pgs.get(pg) else {
                continue;
            };
            let name = format!("{},t,0x{:04x}", te.t.iscsi_name, pg.tag);
            let port = InterconnectPort {
                target: *t,
                identifiers: identity::port_designators(pg.tag, st.port_group_of(pg), &name)
                    .iter()
                    .map(storage_identifier)
                    .collect(),
                name,
                relative_target_port: pg.tag,
            };
            for p in &pg.portals {
                let Some(pe) = st.portals.get(p) else {
                    continue;
                };
                match out.iter_mut().find(|(_, i)| i.portal == *p) {
                    Some((_, i)) => i.ports.push(port.clone()),
                    None => out.push((
                        pe.seq,
                        Interconnect {
                            portal: *p,
                            address_type: InterconnectAddressType::Unknown,
                            address: pe.p.socket_addr().to_string(),
                            ports: vec![port.clone()],
                        },
                    )),
                }
            }
        }
    }
    out.sort_by_key(|(seq, _)| *seq);
    out.into_iter().map(|(_, i)| i).collect()
}

/// What the LUN's first sectors say: the GPT disk GUID when LBA 1 holds a GPT header ("EFI
/// PART", GUID at byte 56), else the MBR disk signature when the boot signature 55 AA is at
/// byte 510, else nothing. Reads at most two blocks, never past the LUN's size.
pub(crate) fn disk_signature(lu: &Arc<LogicalUnit>) -> std::io::Result<DiskSignature> {
    let bs = u64::from(lu.block_size());
    let size = lu.backing().size();
    let len = size.min(2 * bs) as usize;
    let mut buf = vec![0u8; len];
    if len > 0 {
        lu.backing().read_at(&mut buf, 0)?;
    }
    Ok(signature_of(&buf, bs as usize))
}

fn signature_of(buf: &[u8], bs: usize) -> DiskSignature {
    if let Some(hdr) = buf.get(bs..bs + 72) {
        if &hdr[..8] == b"EFI PART" {
            let mut g = [0u8; 16];
            g.copy_from_slice(&hdr[56..72]);
            return DiskSignature::Gpt(Uuid::from_bytes_le(g));
        }
    }
    if buf.len() >= 512 && buf[510] == 0x55 && buf[511] == 0xAA {
        let sig = u32::from_le_bytes([buf[440], buf[441], buf[442], buf[443]]);
        return DiskSignature::Mbr(sig);
    }
    DiskSignature::None
}

/// A designator asked for by `GET /v1/luns?identifier=`.
enum Wanted {
    /// `naa.` + hex: the NAA designator only.
    Naa(Vec<u8>),
    /// Anything else: any designator's text (NAA as hex), or the serial number.
    Text(String),
}

/// Longest identifier accepted (a designator is at most 255 bytes).
const MAX_IDENTIFIER_LEN: usize = 255;

impl Wanted {
    fn parse(s: &str) -> Result<Wanted, VdsError> {
        let field = "identifier";
        let t = s.trim();
        if t.is_empty() {
            return Err(VdsError::invalid_arg(field, "must not be empty"));
        }
        if t.len() > MAX_IDENTIFIER_LEN {
            return Err(VdsError::invalid_arg(
                field,
                format!(
                    "is {} bytes, a designator is at most {MAX_IDENTIFIER_LEN}",
                    t.len()
                ),
            ));
        }
        if t.chars().any(char::is_control) {
            return Err(VdsError::invalid_arg(
                field,
                "must not contain control characters",
            ));
        }
        if t.len() >= 4 && t[..4].eq_ignore_ascii_case("naa.") {
            let hex = &t[4..];
            let ok = matches!(hex.len(), 16 | 32) && hex.bytes().all(|b| b.is_ascii_hexdigit());
            if !ok {
                return Err(VdsError::invalid_arg(
                    field,
                    format!("{t:?}: naa. must be followed by 16 or 32 hex digits"),
                ));
            }
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or(0))
                .collect();
            return Ok(Wanted::Naa(bytes));
        }
        let t = if t.len() >= 4 && t[..4].eq_ignore_ascii_case("t10.") {
            &t[4..]
        } else {
            t
        };
        Ok(Wanted::Text(squash(t)))
    }

    fn matches(&self, ident: &vds_scsi::identity::Identity) -> bool {
        match self {
            Wanted::Naa(b) => ident
                .designators
                .iter()
                .any(|d| d.designator_type == identity::designator_type::NAA && &d.bytes == b),
            Wanted::Text(t) => {
                squash(&ident.serial) == *t
                    || ident.designators.iter().any(|d| squash(&d.text()) == *t)
            }
        }
    }
}

/// Lower case with every run of spaces as one (a T10 vendor id pads the vendor with spaces,
/// which hosts and URLs do not always keep).
fn squash(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_from_the_first_sectors() {
        let mut b = vec![0u8; 1024];
        assert_eq!(signature_of(&b, 512), DiskSignature::None);
        b[440..444].copy_from_slice(&0xDEAD_BEEFu32.to_le_bytes());
        assert_eq!(signature_of(&b, 512), DiskSignature::None, "no 55 AA");
        b[510] = 0x55;
        b[511] = 0xAA;
        assert_eq!(signature_of(&b, 512), DiskSignature::Mbr(0xDEAD_BEEF));
        let g = Uuid::new_v4();
        b[512..520].copy_from_slice(b"EFI PART");
        b[512 + 56..512 + 72].copy_from_slice(&g.to_bytes_le());
        assert_eq!(signature_of(&b, 512), DiskSignature::Gpt(g), "GPT wins");
        assert_eq!(
            signature_of(&b[..580], 512),
            DiskSignature::Mbr(0xDEAD_BEEF),
            "cut header"
        );
        assert_eq!(
            signature_of(&b[..100], 512),
            DiskSignature::None,
            "short LUN"
        );
        assert_eq!(
            DiskSignature::Mbr(0x1234_5678).guid().to_string()[..8],
            *"12345678"
        );
    }

    #[test]
    fn identifier_syntax() {
        assert!(Wanted::parse("").is_err());
        assert!(Wanted::parse("naa.12").is_err());
        assert!(Wanted::parse("naa.zz0056440123456789abcdef01234567").is_err());
        assert!(Wanted::parse(&"x".repeat(256)).is_err());
        assert!(Wanted::parse("a\u{1}b").is_err());
        assert!(
            matches!(Wanted::parse("NAA.60056440123456789ABCDEF012345678"), Ok(Wanted::Naa(b)) if b.len() == 16)
        );
        assert!(matches!(Wanted::parse("t10.VDS  x"), Ok(Wanted::Text(t)) if t == "vds x"));
    }
}
