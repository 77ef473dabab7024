//! ReplaceDrive (`IVdsSubSystem::ReplaceDrive`, BEHAVIOUR.md §15): every extent on one drive
//! moves to another, as one ReplaceDisk job whose percentage counts every byte copied.
//!
//! Each plex with extents on the old drive is moved the same way, redundant or not: a copy of
//! the plex with those extents on the new drive (and the others shared) joins the composite
//! store stale, so every write from then on reaches the old extent and the new one; the
//! extents' logical ranges are copied onto it behind the resync gate (`RaidStore::resync_onto`);
//! then the copy replaces the plex in the store and in the LUN's record (same plex id, now the
//! LUN's last plex; one MODIFY) and the old files are removed. Redundancy is never lower than
//! before meanwhile, and a LUN of one plex is served throughout.

use std::sync::Arc;

use uuid::Uuid;
use vds_backstore::PlexState;
use vds_model::{AsyncOutputType, DriveStatus, Extent, Hresult, Lun, LunPlexStatus, ObjectKind};

use crate::commit::Change;
use crate::engine::Inner;
use crate::jobs::JobHandle;
use crate::state::State;
use crate::{Outcome, Provider, VdsError};

/// Bytes copied per step.
const CHUNK: u64 = 1 << 20;

/// One plex's extents leaving the old drive.
#[derive(Debug, Clone)]
struct Move {
    lun: Uuid,
    plex: Uuid,
    old: Vec<Extent>,
    new: Vec<Extent>,
    /// The logical byte ranges the moved extents hold (the whole LUN for a striped plex).
    ranges: Vec<(u64, u64)>,
}

impl Move {
    fn bytes(&self) -> u64 {
        self.ranges.iter().map(|(s, e)| e - s).sum()
    }
}

/// Where extents `moved` of plex `plex` of `lun` lie in the LUN: in a plex of one column, the
/// extent's place in the concatenation; in a striped plex, everywhere.
fn ranges_of(lun: &Lun, plex: Uuid, moved: &[Extent]) -> Vec<(u64, u64)> {
    let mut xs: Vec<&Extent> = lun.extents.iter().filter(|x| x.plex == plex).collect();
    if xs.iter().any(|x| x.column != 0) {
        return vec![(0, lun.size_bytes)];
    }
    xs.sort_by_key(|x| x.seq);
    let mut at = 0u64;
    let mut out = Vec::new();
    for x in xs {
        let end = (at + x.size).min(lun.size_bytes);
        if moved.iter().any(|m| m.seq == x.seq && m.column == x.column) && end > at {
            out.push((at, end));
        }
        at += x.size;
    }
    out
}

/// Drops the reservations `new` of LUN `lun` from the pending extents.
pub(crate) fn unreserve(st: &mut State, lun: Uuid, new: &[Extent]) {
    if let Some(v) = st.pending_extents.get_mut(&lun) {
        v.retain(|x| !new.contains(x));
        if v.is_empty() {
            st.pending_extents.remove(&lun);
        }
    }
}

/// The drives' checks (step 4 and 5): both of `subsystem`, different, `old` an added drive,
/// `new` an added ONLINE drive.
fn check_drives(
    inner: &Inner,
    st: &State,
    subsystem: Uuid,
    old: Uuid,
    new: Uuid,
) -> Result<(), VdsError> {
    st.lookup(ObjectKind::Drive, old, Some("old"))?;
    st.lookup(ObjectKind::Drive, new, Some("new"))?;
    if old == new {
        return Err(VdsError::invalid_arg("new", "the new drive is the old one"));
    }
    for (field, id) in [("old", old), ("new", new)] {
        let d = &st.drives[&id];
        if d.subsystem != subsystem {
            return Err(VdsError::invalid_arg(
                field,
                format!("drive {id} belongs to another subsystem"),
            ));
        }
        if crate::ops::drive::is_data_dir_drive(d, &inner.config.data_dir) {
            return Err(VdsError::not_supported(format!(
                "{field}: drive {id} is the data dir's drive, whose LUNs are files"
            )));
        }
    }
    let n = &st.drives[&new];
    if n.status != DriveStatus::Online {
        return Err(VdsError::new(
            Hresult::VDS_E_OBJECT_STATUS_FAILED,
            format!("new: drive {new} is {}", n.status.short_name()),
        ));
    }
    if st
        .pending_extents
        .values()
        .flatten()
        .any(|x| x.drive == old)
    {
        return Err(VdsError::new(
            Hresult::VDS_E_ANOTHER_CALL_IN_PROGRESS,
            format!("old: a LUN is being made on drive {old}"),
        ));
    }
    Ok(())
}

/// The plexes to move off `old`, checked against `new` (the room is checked when placing).
fn plan_moves(inner: &Inner, st: &State, old: Uuid, new: Uuid) -> Result<Vec<Move>, VdsError> {
    let mut moves: Vec<Move> = Vec::new();
    for (lun_id, x) in crate::extents::extents_on(st, old) {
        match moves
            .iter_mut()
            .find(|m| m.lun == lun_id && m.plex == x.plex)
        {
            Some(m) => m.old.push(x),
            None => moves.push(Move {
                lun: lun_id,
                plex: x.plex,
                old: vec![x],
                new: Vec::new(),
                ranges: Vec::new(),
            }),
        }
    }
    for m in &mut moves {
        let e = st.lun(m.lun)?;
        let lun = &e.rec.lun;
        let Some(raid) = &e.raid else {
            return Err(VdsError::new(
                Hresult::VDS_E_OBJECT_STATUS_FAILED,
                format!("LUN {} on drive {old} is not open on its extents", m.lun),
            ));
        };
        let Some(index) = lun.plexes.iter().position(|p| p.id == m.plex) else {
            return Err(VdsError::new(
                Hresult::VDS_E_PROVIDER_CACHE_CORRUPT,
                format!("LUN {} has an extent of a plex it does not have", m.lun),
            ));
        };
        if lun.plexes[index].status == LunPlexStatus::Failed
            || raid.plex_state(index) != PlexState::Current
        {
            return Err(VdsError::new(
                Hresult::VDS_E_INVALID_OPERATION,
                format!(
                    "plex {} of LUN {} on drive {old} is {}: Recover moves a failed plex, a stale one is being rebuilt",
                    m.plex,
                    m.lun,
                    lun.plexes[index].health.short_name()
                ),
            ));
        }
        if lun
            .extents
            .iter()
            .any(|x| x.drive == new && x.plex != m.plex)
            || moves_to_new_twice(lun, old, m.plex)
        {
            return Err(VdsError::invalid_arg(
                "new",
                format!(
                    "drive {new} would hold two plexes of LUN {}: each plex is on drives of its own",
                    m.lun
                ),
            ));
        }
        if raid.plex_count() >= vds_backstore::raid::MAX_PLEXES {
            return Err(VdsError::new(
                Hresult::VDS_E_INVALID_OPERATION,
                format!(
                    "LUN {} has {} plexes: the move needs a fifth for a while (remove a plex first)",
                    m.lun,
                    raid.plex_count()
                ),
            ));
        }
        if crate::ops::plex_ops::job_runs(inner, m.lun) {
            return Err(VdsError::new(
                Hresult::VDS_E_ANOTHER_CALL_IN_PROGRESS,
                format!("a job runs on LUN {} (see /v1/jobs)", m.lun),
            ));
        }
        m.ranges = ranges_of(lun, m.plex, &m.old);
    }
    Ok(moves)
}

/// Whether another plex of `lun` than `plex` also has extents on `old` (both would land on
/// the one new drive).
fn moves_to_new_twice(lun: &Lun, old: Uuid, plex: Uuid) -> bool {
    lun.extents.iter().any(|x| x.drive == old && x.plex != plex)
}

impl Provider {
    /// `POST /v1/subsystems/{id}/replace-drive {"old", "new"}`: the ReplaceDisk job.
    pub(super) fn replace_drive(
        &self,
        subsystem: Uuid,
        old: Uuid,
        new: Uuid,
    ) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Subsystem, subsystem)?;
        check_drives(inner, st, subsystem, old, new)?;
        let mut moves = plan_moves(inner, st, old, new)?;
        let mut busy: Vec<(ObjectKind, Uuid)> =
            vec![(ObjectKind::Drive, old), (ObjectKind::Drive, new)];
        busy.extend(moves.iter().map(|m| (ObjectKind::Lun, m.lun)));
        st.check_free(&busy)?;
        // Room on the new drive, reserved from now on (pending until each plex is switched).
        let target = st.drives[&new].clone();
        let mut placed: Vec<(Uuid, Extent)> = Vec::new();
        for m in &mut moves {
            for x in &m.old {
                match crate::extents::place(st, &target, x.size) {
                    Ok(offset) => {
                        let y = Extent {
                            drive: new,
                            offset,
                            ..*x
                        };
                        st.pending_extents.entry(m.lun).or_default().push(y);
                        placed.push((m.lun, y));
                        m.new.push(y);
                    }
                    Err(e) => {
                        for (l, y) in &placed {
                            unreserve(st, *l, std::slice::from_ref(y));
                        }
                        return Err(e);
                    }
                }
            }
        }
        // The new files (a leftover of an interrupted move, named alike and used by no
        // record, is replaced).
        let drives = st.drives.clone();
        let mut made = Vec::new();
        for m in &moves {
            for f in crate::extents::files_of(
                &drives,
                &Lun {
                    id: m.lun,
                    extents: m.new.clone(),
                    ..st.lun(m.lun)?.rec.lun.clone()
                },
            ) {
                if std::fs::symlink_metadata(&f).is_ok_and(|md| md.is_file()) {
                    crate::extents::remove_files(std::slice::from_ref(&f));
                }
            }
            let thin = st.lun(m.lun)?.rec.lun.thin;
            match crate::extents::make_files(&drives, m.lun, &m.new, !thin) {
                Ok(f) => made.extend(f),
                Err(e) => {
                    crate::extents::remove_files(&made);
                    for (l, y) in &placed {
                        unreserve(st, *l, std::slice::from_ref(y));
                    }
                    return Err(crate::ops::storage_err(
                        format!("drive {new}: the new extents"),
                        &e,
                    ));
                }
            }
        }
        let ids: Vec<Uuid> = busy.iter().map(|(_, id)| *id).collect();
        let slots = inner.claim(st, &ids);
        // The slots keep other calls off the LUNs and drives; the job's thread drops them,
        // which takes the lock: it is not held from here on.
        drop(g);
        let job = inner.jobs.start(AsyncOutputType::ReplaceDisk, subsystem);
        let worker = inner.clone();
        tracing::info!(old = %old, new = %new, plexes = moves.len(), "ReplaceDrive: moving every extent");
        let started = crate::jobs::run_on_thread(&job, "vds-replace-drive".into(), move |h| {
            let r = worker.run_moves(&moves, h);
            drop(slots);
            r.map(|()| (Hresult::S_OK, None))
        });
        if let Err(e) = started {
            // The slots went with the closure; the reservations and files go now.
            let mut st = inner.state.lock();
            for (l, y) in &placed {
                unreserve(&mut st, *l, std::slice::from_ref(y));
            }
            drop(st);
            crate::extents::remove_files(&made);
            return Err(e);
        }
        Ok(Outcome::Job(job.job()))
    }
}

impl Inner {
    /// The job: each plex in turn; a failure leaves the plexes not moved yet where they were
    /// (their reservations and new files dropped) and the moved ones moved.
    fn run_moves(self: &Arc<Self>, moves: &[Move], job: &JobHandle) -> Result<(), VdsError> {
        let total: u64 = moves.iter().map(Move::bytes).sum::<u64>().max(1);
        let mut base = 0u64;
        for (i, m) in moves.iter().enumerate() {
            if let Err(e) = self.move_plex(m, base, total, job) {
                let mut st = self.state.lock();
                let drives = st.drives.clone();
                for rest in &moves[i..] {
                    unreserve(&mut st, rest.lun, &rest.new);
                    if let Ok(e) = st.lun(rest.lun) {
                        let files = crate::extents::files_of(
                            &drives,
                            &Lun {
                                extents: rest.new.clone(),
                                ..e.rec.lun.clone()
                            },
                        );
                        crate::extents::remove_files(&files);
                    }
                }
                return Err(e);
            }
            base += m.bytes();
        }
        Ok(())
    }

    /// One plex: the copy joins the store, is synchronised over the moved ranges, and takes
    /// the plex's place in the store and in the record.
    fn move_plex(&self, m: &Move, base: u64, total: u64, job: &JobHandle) -> Result<(), VdsError> {
        let storage = |what: &str, e: &std::io::Error| {
            crate::ops::storage_err(format!("LUN {}: {what}", m.lun), e)
        };
        let (raid, copy_index) = {
            let st = self.state.lock();
            let e = st.lun(m.lun)?;
            let raid = e.raid.clone().ok_or_else(|| {
                VdsError::new(
                    Hresult::VDS_E_OBJECT_STATUS_FAILED,
                    format!("LUN {} is not open on its extents", m.lun),
                )
            })?;
            let lun = &e.rec.lun;
            let plex = lun
                .plexes
                .iter()
                .find(|p| p.id == m.plex)
                .cloned()
                .ok_or_else(|| VdsError::new(Hresult::VDS_E_OBJECT_NOT_FOUND, "plex gone"))?;
            let mut extents: Vec<Extent> = lun
                .extents
                .iter()
                .filter(|x| x.plex == m.plex && !m.old.contains(x))
                .copied()
                .collect();
            extents.extend(m.new.iter().copied());
            let alone = Lun {
                plexes: vec![plex],
                extents,
                ..lun.clone()
            };
            let layout = crate::extents::layouts(&self.drive_io, &st.drives, &alone)
                .and_then(|(mut l, states, _)| {
                    if states.first() == Some(&PlexState::Failed) {
                        return Err(std::io::Error::other("the new extents cannot be opened"));
                    }
                    raid.add_plex(l.remove(0))
                })
                .map_err(|e| storage(&format!("opening plex {} on the new drive", m.plex), &e))?;
            (raid, layout)
        };
        let mut stopped = false;
        let copied = raid.resync_onto(copy_index, &m.ranges, CHUNK, &mut |done, _| {
            job.set_percent(((base + done).saturating_mul(100) / total) as u32);
            if job.cancel_requested() {
                stopped = true;
            }
            !stopped
        });
        if copied.is_err() || stopped || raid.plex_state(copy_index) != PlexState::Current {
            if let Err(err) = raid.remove_plex(copy_index) {
                tracing::error!(lun = %m.lun, error = %err, "ReplaceDrive: dropping the copy");
            }
            return Err(match copied {
                Err(e) => storage(&format!("copying plex {}", m.plex), &e),
                Ok(()) => VdsError::new(
                    Hresult::VDS_E_OPERATION_CANCELED,
                    format!(
                        "ReplaceDrive stopped before plex {} of LUN {} moved",
                        m.plex, m.lun
                    ),
                ),
            });
        }
        self.switch_plex(m, &raid)
    }

    /// The copy is current: the old plex leaves the store, the record takes the new extents
    /// (the plex now last, as in the store), one MODIFY, the old files are removed.
    fn switch_plex(&self, m: &Move, raid: &vds_backstore::RaidStore) -> Result<(), VdsError> {
        let mut g = self.state.lock();
        let st = &mut *g;
        let mut rec = st.lun(m.lun)?.rec.clone();
        let Some(index) = rec.lun.plexes.iter().position(|p| p.id == m.plex) else {
            return Err(VdsError::new(Hresult::VDS_E_OBJECT_NOT_FOUND, "plex gone"));
        };
        raid.remove_plex(index).map_err(|e| {
            crate::ops::storage_err(format!("LUN {}: leaving the old extents", m.lun), &e)
        })?;
        let old_files = crate::extents::files_of(
            &st.drives,
            &Lun {
                extents: m.old.clone(),
                ..rec.lun.clone()
            },
        );
        let p = rec.lun.plexes.remove(index);
        rec.lun.plexes.push(p);
        rec.lun.extents.retain(|x| !m.old.contains(x));
        rec.lun.extents.extend(m.new.iter().copied());
        unreserve(st, m.lun, &m.new);
        let r = self.commit(st, Change::new().lun_record(rec), None);
        if let Err(e) = r {
            // The store serves from the new extents; the record names the old ones until a
            // restart opens them again: keep the old files.
            tracing::error!(lun = %m.lun, error = %e.message, "ReplaceDrive: the store did not take the move");
            return Err(e);
        }
        drop(g);
        crate::extents::remove_files(&old_files);
        tracing::info!(lun = %m.lun, plex = %m.plex, "ReplaceDrive: plex moved");
        Ok(())
    }
}
