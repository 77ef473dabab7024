//! Plexes and extents as objects (BEHAVIOUR.md §15): `IVdsLun::QueryPlexes`, a plex's
//! properties and extents (`IVdsLunPlex`), and a drive's used and free ranges
//! (`IVdsDrive::QueryExtents`).

use uuid::Uuid;
use vds_model::{DriveKind, Hresult, Lun, ObjectKind};

use crate::command::{DriveRange, PlexInfo};
use crate::extents::{extents_on, free_ranges};
use crate::{Outcome, Provider, VdsError};

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
        for e in st.luns.values() {
            if let Some(i) = e.rec.lun.plexes.iter().position(|p| p.id == id) {
                return Ok(Outcome::Plex(Box::new(info(&e.rec.lun, i))));
            }
        }
        Err(VdsError::new(
            Hresult::VDS_E_OBJECT_NOT_FOUND,
            format!("no LUN has plex {id}"),
        ))
    }

    /// `GET /v1/drives/{id}/extents`: used ranges (by offset) and free ones. A `block`
    /// drive's free ranges are the gaps after its label; a `dir` drive's free range is what
    /// its extents leave of its capacity.
    pub(super) fn drive_extents(&self, id: Uuid) -> Result<Outcome, VdsError> {
        let mut st = self.inner.state.lock();
        self.inner.object_call(&mut st, ObjectKind::Drive, id)?;
        let d = &st.drives[&id];
        let used = extents_on(&st, id);
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
                v.extend(free_ranges(&st, d).into_iter().map(|(o, l)| free(o, l)));
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
        Ok(Outcome::DriveExtents(v))
    }
}
