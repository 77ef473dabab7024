//! A failed mirror plex replaced (BEHAVIOUR.md §15): by a hot spare with room, at once when the
//! plex fails, or by `Recover` (a spare or any other added drive with room that holds nothing
//! of the LUN). The plex keeps its id; its extents move to the new drive (files made, ranges
//! taken), the LUN's store is laid out again with the plex stale, the plex is recorded
//! `rebuilding` (one MODIFY) and a regeneration job copies it (`rebuild.rs`). A restart with a
//! plex recorded `rebuilding` opens it stale and starts the regeneration again.

use std::sync::Arc;

use uuid::Uuid;
use vds_backstore::PlexState;
use vds_model::{
    Drive, DriveFlag, DriveStatus, EventKind, Extent, Health, Hresult, LunPlexStatus, ObjectKind,
};

use crate::commit::Change;
use crate::engine::Inner;
use crate::jobs::JobHandle;
use crate::rebuild::Target;
use crate::redundancy::lun_health;
use crate::state::State;
use crate::VdsError;

/// Which drives may take a failed plex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// Hot spares only (a plex that just failed).
    Spares,
    /// Hot spares first, then any other added drive (Recover).
    Any,
}

/// The new extents of plex `plex` of LUN `lun` on drive `d`, placed one after the other; `None`
/// when they do not all fit.
fn place_all(st: &mut State, lun: Uuid, old: &[Extent], d: &Drive) -> Option<Vec<Extent>> {
    let mut new = Vec::new();
    let mut fits = true;
    for x in old {
        match crate::extents::place(st, d, x.size) {
            Ok(offset) => {
                let y = Extent {
                    drive: d.id,
                    offset,
                    ..*x
                };
                st.pending_extents.entry(lun).or_default().push(y);
                new.push(y);
            }
            Err(_) => {
                fits = false;
                break;
            }
        }
    }
    // Only the trial placements go: a ReplaceDrive may hold reservations for this LUN.
    crate::ops::unreserve(st, lun, &new);
    fits.then_some(new)
}

impl Inner {
    /// Replaces failed plex `plex` of LUN `id` from `source` and starts its regeneration.
    /// `VDS_E_NOT_ENOUGH_SPACE` when no drive has room (nothing changed).
    pub(crate) fn replace_plex(
        self: &Arc<Self>,
        st: &mut State,
        id: Uuid,
        plex: usize,
        source: Source,
    ) -> Result<Arc<JobHandle>, VdsError> {
        let e = st.lun(id)?;
        let Some(raid) = e.raid.clone() else {
            return Err(VdsError::new(
                Hresult::VDS_E_INVALID_OPERATION,
                format!("LUN {id} is not open on its extents"),
            ));
        };
        let lun = e.rec.lun.clone();
        let priority = e.hints.rebuild_priority;
        let plex_id = lun.plexes[plex].id;
        let old: Vec<Extent> = lun
            .extents
            .iter()
            .filter(|x| x.plex == plex_id)
            .copied()
            .collect();
        let spare = |d: &Drive| d.flags & DriveFlag::Hotspare.value() != 0;
        let mut candidates: Vec<Drive> = st
            .drives
            .values()
            .filter(|d| {
                d.subsystem == lun.subsystem
                    && d.status == DriveStatus::Online
                    && !crate::ops::drive::is_data_dir_drive(d, &self.config.data_dir)
                    && !lun.extents.iter().any(|x| x.drive == d.id)
                    && (spare(d) || source == Source::Any)
            })
            .cloned()
            .collect();
        // Spares first, then by slot: the choice does not depend on hashing.
        candidates.sort_by_key(|d| (!spare(d), d.bus_number, d.slot_number));
        let Some((drive, new)) = candidates
            .iter()
            .find_map(|d| place_all(st, id, &old, d).map(|n| (d.clone(), n)))
        else {
            return Err(VdsError::new(
                Hresult::VDS_E_NOT_ENOUGH_SPACE,
                format!(
                    "LUN {id}: no {}drive has room for plex {plex_id} and holds nothing of the LUN",
                    if source == Source::Spares {
                        "hot-spare "
                    } else {
                        ""
                    }
                ),
            ));
        };
        let mut rec = st.lun(id)?.rec.clone();
        let old_files = crate::extents::files_of(&st.drives, &{
            let mut l = rec.lun.clone();
            l.extents.retain(|x| x.plex == plex_id);
            l
        });
        rec.lun.extents.retain(|x| x.plex != plex_id);
        rec.lun.extents.extend(new.iter().copied());
        let drives = st.drives.clone();
        let files = crate::extents::make_files(&drives, id, &new, !rec.lun.thin).map_err(|e| {
            crate::ops::storage_err(format!("LUN {id}: the new plex's extents"), &e)
        })?;
        let opened = crate::extents::layouts(&self.drive_io, &drives, &rec.lun)
            .and_then(|(layouts, _, _)| raid.relayout(layouts));
        if let Err(e) = opened {
            crate::extents::remove_files(&files);
            return Err(crate::ops::storage_err(
                format!("LUN {id}: opening the new plex on drive {}", drive.id),
                &e,
            ));
        }
        raid.set_plex_state(plex, PlexState::Stale);
        let p = &mut rec.lun.plexes[plex];
        p.status = LunPlexStatus::Online;
        p.health = Health::Rebuilding;
        rec.lun.health = lun_health(&rec.lun.plexes);
        tracing::warn!(lun = %id, plex = %plex_id, drive = %drive.id, "plex moved to a new drive; rebuilding");
        let row = rec.clone();
        let change = Change::new()
            .store(move |tx| tx.put_lun(&row))
            .apply(move |st| {
                if let Some(e) = st.luns.get_mut(&id) {
                    e.rec = rec;
                }
            })
            .event(ObjectKind::Lun, EventKind::Modify, id);
        if let Err(e) = self.commit(st, change, None) {
            // The store did not take it: the plex stays failed on its old drive.
            raid.set_plex_state(plex, PlexState::Failed);
            crate::extents::remove_files(&files);
            return Err(e);
        }
        // The failed plex's old extents are free now (a failing drive may refuse: logged).
        crate::extents::remove_files(&old_files);
        self.spawn_regenerate(
            Target {
                lun: id,
                plex: plex_id,
            },
            raid,
            priority,
        )
    }

    /// After plex `plex` of LUN `id` failed: a hot spare with room takes it (nothing happens
    /// when none has room; Recover can be asked later).
    pub(crate) fn hot_spare(self: &Arc<Self>, st: &mut State, id: Uuid, plex: usize) {
        let Ok(e) = st.lun(id) else { return };
        let p = &e.rec.lun.plexes;
        let failed = p
            .get(plex)
            .is_some_and(|p| p.status == LunPlexStatus::Failed);
        let others_work = p
            .iter()
            .any(|p| p.status == LunPlexStatus::Online && p.health == Health::Healthy);
        if !failed || !others_work || e.raid.is_none() {
            return;
        }
        if let Err(err) = self.replace_plex(st, id, plex, Source::Spares) {
            tracing::warn!(lun = %id, plex, error = %err.message, "no hot spare took the failed plex");
        }
    }

    /// At start: every plex recorded `rebuilding` opened stale; its regeneration starts again.
    pub(crate) fn resume_rebuilds(self: &Arc<Self>, st: &State) {
        for e in st.luns.values() {
            let Some(raid) = &e.raid else { continue };
            for (i, p) in e.rec.lun.plexes.iter().enumerate() {
                if p.health == Health::Rebuilding && raid.plex_state(i) == PlexState::Stale {
                    let target = Target {
                        lun: e.rec.lun.id,
                        plex: p.id,
                    };
                    if let Err(err) =
                        self.spawn_regenerate(target, raid.clone(), e.hints.rebuild_priority)
                    {
                        tracing::error!(lun = %target.lun, error = %err.message, "cannot restart a rebuild");
                    }
                }
            }
        }
    }
}
