//! AddPlex and RemovePlex (`IVdsLun::AddPlex` / `RemovePlex`, BEHAVIOUR.md §15).
//!
//! AddPlex turns another LUN (extent-backed, one plex of one column, same subsystem, at least
//! as large, on drives of its own, on no target) into a new plex of this one: the other LUN
//! departs (tombstoned), its extents become the plex's (trimmed to this LUN's size; a `dir`
//! drive's files renamed to this LUN's names), the composite store takes the plex stale and an
//! AddLunPlex job regenerates it (`rebuild.rs`). RemovePlex frees a plex of a LUN with more than
//! one, never the last current one, and not while a copy runs on the LUN.

use std::path::{Path, PathBuf};

use vds_backstore::lifecycle;

use uuid::Uuid;
use vds_model::{
    AsyncOutputType, BackingKind, EventKind, Extent, Health, Hresult, JobState, LunPlex,
    LunPlexStatus, LunPlexType, ObjectKind, TransitionState,
};

use crate::commit::Change;
use crate::engine::Inner;
use crate::rebuild::Target;
use crate::redundancy::lun_health;
use crate::state::State;
use crate::{Outcome, Provider, VdsError};

/// A file renamed (from, to), to undo.
type Renamed = Vec<(PathBuf, PathBuf)>;

/// The `vds-extents` directory of two extent files of one drive (proved vds's own) and their
/// names in it.
fn in_dir(a: &Path, b: &Path) -> std::io::Result<(std::fs::File, String, String)> {
    let name = |p: &Path| {
        p.file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned)
            .ok_or_else(|| std::io::Error::other(format!("{} is not an extent file", p.display())))
    };
    let dir = a
        .parent()
        .ok_or_else(|| std::io::Error::other(format!("{} has no directory", a.display())))?;
    Ok((lifecycle::open_private_dir(dir)?, name(a)?, name(b)?))
}

fn undo_renames(done: &Renamed) {
    for (from, to) in done.iter().rev() {
        let r = in_dir(to, from).and_then(|(dir, t, f)| lifecycle::rename_in(&dir, &t, &f));
        if let Err(err) = r {
            tracing::error!(from = %to.display(), to = %from.display(), error = %err,
                "could not rename an extent file back");
        }
    }
}

/// The lengths of files trimmed (by their names before the renames were undone) back.
fn restore_lengths(trimmed: &[(PathBuf, u64)]) {
    for (path, len) in trimmed {
        let r = in_dir(path, path)
            .and_then(|(dir, name, _)| lifecycle::open_in(&dir, &name))
            .and_then(|f| f.set_len(*len));
        if let Err(err) = r {
            tracing::error!(path = %path.display(), error = %err, "could not restore an extent file's length");
        }
    }
}

/// Whether a job on LUN `id` runs (a regeneration, a crash resync, an AddPlex).
pub(crate) fn job_runs(inner: &Inner, id: Uuid) -> bool {
    inner
        .jobs
        .list()
        .iter()
        .any(|j| j.object == id && j.state == JobState::Running)
}

/// Checks AddPlex's other LUN `other` against LUN `id` (step 4 and 5 of the checks).
fn check_add(st: &State, id: Uuid, other: Uuid) -> Result<(), VdsError> {
    if other == id {
        return Err(VdsError::invalid_arg(
            "lun",
            format!("LUN {id} cannot become a plex of itself"),
        ));
    }
    st.lookup(ObjectKind::Lun, other, Some("lun"))?;
    let this = st.lun(id)?;
    let that = &st.lun(other)?.rec.lun;
    let me = &this.rec.lun;
    if this.raid.is_none() || me.backing.kind != BackingKind::Extents {
        return Err(VdsError::not_supported(format!(
            "LUN {id} is not made of extents on drives: it takes no plex"
        )));
    }
    if that.backing.kind != BackingKind::Extents {
        return Err(VdsError::not_supported(format!(
            "lun: LUN {other} is not made of extents on drives"
        )));
    }
    if that.subsystem != me.subsystem {
        return Err(VdsError::invalid_arg(
            "lun",
            format!("LUN {other} belongs to another subsystem"),
        ));
    }
    if that.plexes.len() != 1 || that.extents.iter().any(|x| x.column != 0) {
        return Err(VdsError::not_supported(format!(
            "lun: LUN {other} is {} ({} plexes); only a simple or span LUN becomes a plex",
            that.lun_type.short_name(),
            that.plexes.len()
        )));
    }
    if that.size_bytes < me.size_bytes {
        return Err(VdsError::new(
            Hresult::VDS_E_INVALID_OPERATION,
            format!(
                "lun: LUN {other} has {} bytes, fewer than LUN {id}'s {}",
                that.size_bytes, me.size_bytes
            ),
        ));
    }
    if !that.targets.is_empty() {
        return Err(VdsError::new(
            Hresult::VDS_E_DEVICE_IN_USE,
            format!(
                "lun: LUN {other} is on {} target(s); take it off them (PUT /v1/luns/{other}/targets []) first",
                that.targets.len()
            ),
        ));
    }
    if that.status == vds_model::LunStatus::Failed || that.plexes[0].status == LunPlexStatus::Failed
    {
        return Err(VdsError::new(
            Hresult::VDS_E_OBJECT_STATUS_FAILED,
            format!("lun: LUN {other} is FAILED"),
        ));
    }
    if me.plexes.len() >= vds_backstore::raid::MAX_PLEXES {
        return Err(VdsError::new(
            Hresult::VDS_E_INVALID_OPERATION,
            format!(
                "LUN {id} has {} plexes, the most it can have",
                me.plexes.len()
            ),
        ));
    }
    if let Some(x) = that
        .extents
        .iter()
        .find(|x| me.extents.iter().any(|y| y.drive == x.drive))
    {
        return Err(VdsError::invalid_arg(
            "lun",
            format!(
                "LUN {other} has an extent on drive {}, which holds a plex of LUN {id}: every plex is on drives of its own",
                x.drive
            ),
        ));
    }
    Ok(())
}

/// The other LUN's extents as the new plex's: in order, the last one trimmed so that they
/// hold `size` bytes exactly; and those left over (freed).
fn trim(extents: &[Extent], size: u64) -> (Vec<Extent>, Vec<Extent>) {
    let mut xs = extents.to_vec();
    xs.sort_by_key(|x| x.seq);
    let mut left = size;
    let (mut keep, mut spare) = (Vec::new(), Vec::new());
    for x in xs {
        if left == 0 {
            spare.push(x);
            continue;
        }
        let take = x.size.min(left);
        keep.push(Extent { size: take, ..x });
        left -= take;
    }
    (keep, spare)
}

/// The other LUN's extent files taken for this LUN: renamed, and cut to the kept sizes.
struct Taken {
    renamed: Renamed,
    /// Files cut (by their names before the renames), with their lengths before.
    trimmed: Vec<(PathBuf, u64)>,
}

impl Taken {
    /// The files of `keep` on `dir` drives take LUN `id`'s names (from LUN `other`'s) and the
    /// kept size, each through its `vds-extents` directory's handle; on an error what was done
    /// is undone.
    fn take(
        drives: &std::collections::HashMap<Uuid, vds_model::Drive>,
        id: Uuid,
        other: Uuid,
        keep: &[Extent],
    ) -> std::io::Result<Taken> {
        let mut t = Taken {
            renamed: Vec::new(),
            trimmed: Vec::new(),
        };
        for x in keep {
            let Some(d) = drives
                .get(&x.drive)
                .filter(|d| d.kind == vds_model::DriveKind::Dir)
            else {
                continue;
            };
            let from = crate::extents::extent_file(d, other, x);
            let to = crate::extents::extent_file(d, id, x);
            if let Err(e) = t.take_one(&from, &to, x.size) {
                t.undo();
                return Err(e);
            }
        }
        Ok(t)
    }

    fn take_one(&mut self, from: &Path, to: &Path, size: u64) -> std::io::Result<()> {
        let (dir, from_name, to_name) = in_dir(from, to)?;
        lifecycle::rename_in(&dir, &from_name, &to_name)?;
        self.renamed.push((from.to_path_buf(), to.to_path_buf()));
        let f = lifecycle::open_in(&dir, &to_name)?;
        let len = f.metadata()?.len();
        if len != size {
            f.set_len(size)?;
            self.trimmed.push((from.to_path_buf(), len));
        }
        f.sync_all()
    }

    /// The names back, a cut file its length again (what was cut reads as zeros: the other
    /// LUN was becoming a plex, whose data VDS says is gone anyway).
    fn undo(&self) {
        undo_renames(&self.renamed);
        restore_lengths(&self.trimmed);
    }
}

impl Provider {
    /// `POST /v1/luns/{id}/plexes {"lun": other}` (AddPlex): the AddLunPlex job.
    pub(super) fn add_plex(&self, id: Uuid, other: Uuid) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Lun, id)?;
        check_add(st, id, other)?;
        st.check_free(&[(ObjectKind::Lun, id), (ObjectKind::Lun, other)])?;
        let this = st.lun(id)?;
        let raid = this.raid.clone().expect("checked: extent-backed");
        let mut rec = this.rec.clone();
        let hints = this.hints;
        let that = st.lun(other)?.rec.lun.clone();
        let plex_id = that.plexes[0].id;
        let (keep, spare) = trim(&that.extents, rec.lun.size_bytes);
        let taken = Taken::take(&st.drives, id, other, &keep).map_err(|e| {
            crate::ops::storage_err(format!("LUN {id}: taking the other LUN's extent files"), &e)
        })?;
        let plex = LunPlex {
            id: plex_id,
            size_bytes: rec.lun.size_bytes,
            plex_type: if keep.len() == 1 {
                LunPlexType::Simple
            } else {
                LunPlexType::Span
            },
            status: LunPlexStatus::Online,
            health: Health::Rebuilding,
            transition_state: TransitionState::Stable,
            flags: 0,
            stripe_size: 0,
            rebuild_priority: rec.lun.rebuild_priority,
        };
        let alone = vds_model::Lun {
            plexes: vec![plex.clone()],
            extents: keep.clone(),
            ..rec.lun.clone()
        };
        let layout = crate::extents::layouts(&inner.drive_io, &st.drives, &alone).and_then(
            |(mut l, states, _)| {
                if states.first() == Some(&vds_backstore::PlexState::Failed) {
                    return Err(std::io::Error::other("its extents cannot be opened"));
                }
                raid.add_plex(l.remove(0))
            },
        );
        let index = match layout {
            Ok(i) => i,
            Err(e) => {
                taken.undo();
                return Err(crate::ops::storage_err(
                    format!("LUN {id}: opening the new plex"),
                    &e,
                ));
            }
        };
        let was = rec.lun.plexes.len();
        rec.lun.plexes.push(plex);
        rec.lun.extents.extend(keep.iter().copied());
        rec.lun.health = lun_health(&rec.lun.plexes);
        let name = that.friendly_name.clone();
        let row = rec.clone();
        let change = Change::new()
            .store(move |tx| {
                tx.delete_lun(other)?;
                tx.add_tombstone(other, ObjectKind::Lun)?;
                tx.put_lun(&row)
            })
            .apply(move |st| {
                st.luns.remove(&other);
                st.tombstones.insert(other, ObjectKind::Lun);
                st.lun_names.remove(&name);
                if let Some(e) = st.luns.get_mut(&id) {
                    e.rec = rec;
                }
            })
            .event(ObjectKind::Lun, EventKind::Depart, other)
            .event(ObjectKind::Lun, EventKind::Modify, id);
        if let Err(e) = inner.commit(st, change, None) {
            let _ = raid.remove_plex(index);
            taken.undo();
            return Err(e);
        }
        tracing::info!(lun = %id, plex = %plex_id, from = %other, "AddPlex: LUN became a plex; regenerating");
        // What the other LUN kept beside its extents, and the extents beyond this LUN's size.
        let data = crate::storage::default_lun_path(&inner.config.data_dir, other);
        if let Err(err) = vds_backstore::journal::remove_journal(&data) {
            tracing::warn!(lun = %other, error = %err, "could not remove the atomic-write journal");
        }
        crate::recovery::remove_bitmap(&inner.config.data_dir, other);
        let leftovers = crate::extents::files_of(
            &st.drives,
            &vds_model::Lun {
                extents: spare,
                ..that
            },
        );
        crate::extents::remove_files(&leftovers);
        if was == 1 {
            inner.new_lun_recovery(id, &hints, Some(&raid));
        }
        let job = inner.spawn_regenerate_as(
            AsyncOutputType::AddLunPlex,
            Target {
                lun: id,
                plex: plex_id,
            },
            raid,
            hints.rebuild_priority,
        )?;
        Ok(Outcome::Job(job.job()))
    }

    /// `DELETE /v1/plexes/{id}` (RemovePlex): a finished RemoveLunPlex job.
    pub(super) fn remove_plex(&self, plex: Uuid) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        let id = super::plex::lun_of_plex(st, plex)?;
        inner.object_call(st, ObjectKind::Lun, id)?;
        st.check_free(&[(ObjectKind::Lun, id)])?;
        let e = st.lun(id)?;
        let Some(raid) = e.raid.clone() else {
            return Err(VdsError::not_supported(format!(
                "LUN {id} is not made of extents on drives"
            )));
        };
        let mut rec = e.rec.clone();
        let hints = e.hints;
        let index = rec
            .lun
            .plexes
            .iter()
            .position(|p| p.id == plex)
            .expect("found above");
        let working =
            |p: &LunPlex| p.status == LunPlexStatus::Online && p.health == Health::Healthy;
        if rec.lun.plexes.len() == 1 {
            return Err(VdsError::new(
                Hresult::VDS_E_PLEX_LAST_ACTIVE,
                format!("plex {plex} is LUN {id}'s only plex: delete the LUN instead"),
            ));
        }
        let others: Vec<&LunPlex> = rec.lun.plexes.iter().filter(|p| p.id != plex).collect();
        if working(&rec.lun.plexes[index]) && !others.iter().any(|p| working(p)) {
            return Err(VdsError::new(
                Hresult::VDS_E_PLEX_LAST_ACTIVE,
                format!(
                    "plex {plex} is LUN {id}'s last current plex (the others are {}): remove those first",
                    others
                        .iter()
                        .map(|p| format!("{} {}", p.id, p.health.short_name()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        if job_runs(inner, id) || raid.copying() {
            return Err(VdsError::new(
                Hresult::VDS_E_PLEX_REGENERATING,
                format!("a copy runs on LUN {id} (see /v1/jobs): cancel it or wait for its end"),
            ));
        }
        let freed = crate::extents::files_of(
            &st.drives,
            &vds_model::Lun {
                extents: rec
                    .lun
                    .extents
                    .iter()
                    .filter(|x| x.plex == plex)
                    .copied()
                    .collect(),
                ..rec.lun.clone()
            },
        );
        raid.remove_plex(index)
            .map_err(|e| crate::ops::storage_err(format!("LUN {id}: removing plex {plex}"), &e))?;
        rec.lun.plexes.remove(index);
        rec.lun.extents.retain(|x| x.plex != plex);
        rec.lun.health = lun_health(&rec.lun.plexes);
        // The plex answers OBJECT_DELETED from now on, as a deleted LUN's plexes do.
        let gone = Change::new()
            .lun_record(rec)
            .store(move |tx| tx.add_tombstone(plex, ObjectKind::Lun))
            .apply(move |st| {
                st.tombstones.insert(plex, ObjectKind::Lun);
            });
        if let Err(e) = inner.commit(st, gone, None) {
            // The store no longer writes the plex: the next start, from the stored record,
            // opens it and finds it out of date only if it was; keep its files.
            tracing::error!(lun = %id, plex = %plex, error = %e.message,
                "RemovePlex: the store did not take the change");
            return Err(e);
        }
        tracing::info!(lun = %id, plex = %plex, "RemovePlex: plex removed, extents freed");
        crate::extents::remove_files(&freed);
        if raid.plex_count() == 1 && hints.fast_crash_recovery_required {
            // One plex: nothing to keep equal; the bitmap goes.
            if let Err(err) = inner.detach_bitmap(&raid) {
                tracing::warn!(lun = %id, error = %err, "flushing before dropping the bitmap");
            }
            crate::recovery::remove_bitmap(&inner.config.data_dir, id);
        }
        let job = inner.jobs.start(AsyncOutputType::RemoveLunPlex, id);
        job.finish(Ok((Hresult::S_OK, None)));
        Ok(Outcome::Job(job.job()))
    }
}
