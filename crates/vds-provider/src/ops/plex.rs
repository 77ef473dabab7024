//! Plexes and extents as objects (BEHAVIOUR.md §15): `IVdsLun::QueryPlexes`, a plex's
//! properties, extents and hints (`IVdsLunPlex`; its hints are its LUN's), and a drive's used
//! and free ranges (`IVdsDrive::QueryExtents`).

use uuid::Uuid;
use vds_model::{hint_mask, DriveKind, Hresult, Lun, ObjectKind};

use crate::command::{DriveRange, HintsRequest, PlexInfo};
use crate::extents::{extents_on, free_ranges};
use crate::state::State;
use crate::{Outcome, Provider, VdsError};

/// The `VDS_HINT_*` bits of the `VDS_HINTS` members (the first nine; the rest are
/// `VDS_HINTS2`'s).
pub(crate) const HINTS_V1_MASK: u64 = hint_mask::FAST_CRASH_RECOVERY_REQUIRED
    | hint_mask::MOSTLY_READS
    | hint_mask::OPTIMIZE_FOR_SEQUENTIAL_READS
    | hint_mask::OPTIMIZE_FOR_SEQUENTIAL_WRITES
    | hint_mask::READ_BACK_VERIFY_ENABLED
    | hint_mask::REMAP_ENABLED
    | hint_mask::WRITE_THROUGH_CACHING_ENABLED
    | hint_mask::HARDWARE_CHECKSUM_ENABLED
    | hint_mask::IS_YANKABLE;

/// The `VDS_HINTS2` members `VDS_HINTS` does not have, snake_case: `IVdsLunPlex::ApplyHints`
/// refuses them.
pub(crate) const HINTS2_ONLY: &[&str] = &[
    "allocate_hot_spare",
    "bus_type",
    "use_mirrored_cache",
    "read_caching_enabled",
    "write_caching_enabled",
    "media_scan_enabled",
    "consistency_check_enabled",
];

/// The LUN that has plex `plex`. A plex of a deleted LUN answers `VDS_E_OBJECT_DELETED` (its
/// id is a tombstone), one never known `VDS_E_OBJECT_NOT_FOUND`.
pub(super) fn lun_of_plex(st: &State, plex: Uuid) -> Result<Uuid, VdsError> {
    if let Some(e) = st
        .luns
        .values()
        .find(|e| e.rec.lun.plexes.iter().any(|p| p.id == plex))
    {
        return Ok(e.rec.lun.id);
    }
    if st.tombstones.contains_key(&plex) {
        return Err(VdsError::new(
            Hresult::VDS_E_OBJECT_DELETED,
            format!("plex {plex} was removed, or its LUN deleted"),
        ));
    }
    Err(VdsError::new(
        Hresult::VDS_E_OBJECT_NOT_FOUND,
        format!("no LUN has plex {plex}"),
    ))
}

/// The `VDS_HINTS2`-only members of `req`, in [`HINTS2_ONLY`] order.
fn hints2_only(req: &HintsRequest) -> Vec<&'static str> {
    HINTS2_ONLY
        .iter()
        .copied()
        .filter(|&n| {
            (n == "write_caching_enabled" && req.write_caching_enabled.is_some())
                || req.other.iter().any(|(o, _)| o == n)
        })
        .collect()
}

/// A LUN's hints answer as a plex's: the `VDS_HINTS` bits of the mask only.
fn as_plex_hints(o: Outcome) -> Outcome {
    match o {
        Outcome::Hints(mut h) => {
            h.mask &= HINTS_V1_MASK;
            Outcome::PlexHints(h)
        }
        o => o,
    }
}

/// Plex `i` of `lun` with its extents.
fn info(lun: &Lun, i: usize) -> PlexInfo {
    let plex = lun.plexes[i].clone();
    PlexInfo {
        lun: lun.id,
        extents: lun
            .extents
            .iter()
            .filter(|x| x.plex == plex.id)
            .copied()
            .collect(),
        plex,
    }
}

impl Provider {
    /// `GET /v1/luns/{id}/plexes`: plex i is plex i of the LUN's store.
    pub(super) fn lun_plexes(&self, id: Uuid) -> Result<Outcome, VdsError> {
        let mut st = self.inner.state.lock();
        self.inner.object_call(&mut st, ObjectKind::Lun, id)?;
        let lun = &st.lun(id)?.rec.lun;
        Ok(Outcome::Plexes(
            (0..lun.plexes.len()).map(|i| info(lun, i)).collect(),
        ))
    }

    /// `GET /v1/plexes/{id}`.
    pub(super) fn plex(&self, id: Uuid) -> Result<Outcome, VdsError> {
        let st = self.inner.state.lock();
        let lun = &st.lun(lun_of_plex(&st, id)?)?.rec.lun;
        let i = lun
            .plexes
            .iter()
            .position(|p| p.id == id)
            .expect("lun_of_plex found it");
        Ok(Outcome::Plex(Box::new(info(lun, i))))
    }

    /// `IVdsLunPlex::QueryHints`: the hints of the plex's LUN (QueryHints2 of the LUN, the
    /// `VDS_HINTS` bits of the mask only). The LUN's own call makes the usual checks.
    pub(super) fn plex_hints(&self, id: Uuid) -> Result<Outcome, VdsError> {
        let lun = lun_of_plex(&self.inner.state.lock(), id)?;
        self.lun_hints(lun).map(as_plex_hints)
    }

    /// `IVdsLunPlex::ApplyHints`: `VDS_HINTS` applied to the plex's LUN, so to all its plexes
    /// at once, by ApplyHints2 of the LUN (the same judging, data path and store). A member
    /// `VDS_HINTS` does not have is `E_INVALIDARG` naming it, and nothing is applied.
    pub(super) fn set_plex_hints(&self, id: Uuid, req: HintsRequest) -> Result<Outcome, VdsError> {
        let lun = lun_of_plex(&self.inner.state.lock(), id)?;
        let extra = hints2_only(&req);
        if !extra.is_empty() {
            return Err(VdsError::invalid_arg(
                &extra.join(", "),
                "a VDS_HINTS2 member: IVdsLunPlex::ApplyHints takes VDS_HINTS (set it on the LUN)",
            ));
        }
        self.set_lun_hints(lun, req).map(as_plex_hints)
    }

    /// `GET /v1/drives/{id}/extents`: [`drive_ranges`].
    pub(super) fn drive_extents(&self, id: Uuid) -> Result<Outcome, VdsError> {
        let mut st = self.inner.state.lock();
        self.inner.object_call(&mut st, ObjectKind::Drive, id)?;
        Ok(Outcome::DriveExtents(drive_ranges(&st, id)))
    }
}

/// Drive `id`'s used ranges (by offset) and free ones: `IVdsDrive::QueryExtents`, and per
/// drive `IVdsStoragePool::QueryDriveExtents`. A `block` drive's free ranges are the gaps
/// after its label; a `dir` drive's free range is what its extents leave of its capacity.
/// Used and free add up to the drive's capacity. An unknown drive has no ranges.
pub(super) fn drive_ranges(st: &State, id: Uuid) -> Vec<DriveRange> {
    let Some(d) = st.drives.get(&id) else {
        return Vec::new();
    };
    let used = extents_on(st, id);
    let mut v: Vec<DriveRange> = used
        .iter()
        .map(|(lun, x)| DriveRange {
            offset: x.offset,
            size: x.size,
            used_by: Some((*lun, x.plex)),
            column: x.column,
            seq: x.seq,
        })
        .collect();
    let free = |offset, size| DriveRange {
        offset,
        size,
        used_by: None,
        column: 0,
        seq: 0,
    };
    match d.kind {
        DriveKind::Block => {
            v.extend(free_ranges(st, d).into_iter().map(|(o, l)| free(o, l)));
            v.sort_by_key(|r| r.offset);
        }
        DriveKind::Dir => {
            let taken: u64 = used.iter().map(|(_, x)| x.size).sum();
            let left = d.size_bytes.saturating_sub(taken);
            if left > 0 {
                v.push(free(0, left));
            }
        }
    }
    v
}
