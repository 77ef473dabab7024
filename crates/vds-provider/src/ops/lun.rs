//! LUN operations other than CreateLun: delete, patch, SetStatus, recover, fault filters,
//! target associations (extend/shrink are in `lun_resize`).

use uuid::Uuid;
use vds_model::{
    EventKind, FaultFilterSpec, Health, Hresult, Lun, LunStatus, LunType, ObjectKind, UnmaskingList,
};
use vds_scsi::LuState;

use crate::commit::Change;
use crate::state::State;
use crate::storage::{free_storage, to_filters};
use crate::{Outcome, Provider, VdsError};

use super::lun_create::{allocate_numbers, release_numbers};
use super::{check_filters, check_name, judge_status, storage_err};

impl Provider {
    pub(super) fn delete_lun(&self, id: Uuid) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Lun, id)?;
        let targets = st.luns[&id].rec.lun.targets.clone();
        let mut busy = vec![(ObjectKind::Lun, id)];
        busy.extend(targets.iter().map(|t| (ObjectKind::Target, *t)));
        st.check_free(&busy)?;
        // Deleting a FAILED LUN is how an operator gets rid of broken storage: allowed.
        let Some(entry) = st.luns.remove(&id) else {
            return Err(State::missing(ObjectKind::Lun, id));
        };
        let mut ids = vec![id];
        ids.extend(&targets);
        let slots = inner.claim(st, &ids);
        let numbers = entry.rec.lun.lun_numbers.clone();
        let plexes: Vec<Uuid> = entry.rec.lun.plexes.iter().map(|p| p.id).collect();
        // Leave the data path first: new commands get 05/25/00, the others see 06/3F/0E.
        let leave = Change::new()
            .apply(|st| {
                for t in &targets {
                    if let Some(te) = st.targets.get_mut(t) {
                        te.t.luns.retain(|l| *l != id);
                        if let Some((_, n)) = numbers.iter().find(|(x, _)| x == t) {
                            te.release(*n);
                        }
                    }
                    st.dirty.insert(*t);
                }
            })
            .publish_then(|st| {
                for t in &targets {
                    for lu in st.lus_of_target(*t) {
                        lu.luns_changed();
                    }
                }
            });
        inner.stage(st, leave);
        // Drain what is in flight on the LU (its store is going away).
        let drain = || {
            let _ = entry.lu.set_state(LuState::Offline);
        };
        // Not deleted: put it back exactly as it was.
        let undo = |st: &mut State, _: &()| {
            let lun = entry.rec.lun.clone();
            for (t, n) in &lun.lun_numbers {
                if let Some(te) = st.targets.get_mut(t) {
                    te.t.luns.push(id);
                    te.numbers.insert(*n);
                }
            }
            let _ = entry.lu.set_state(st.lu_state(&lun));
            st.luns.insert(id, entry.clone());
            st.dirty_lun(&lun);
            Change::new().publish()
        };
        let build = |_: &mut State, _: &()| {
            Ok(Change::new()
                .store(|tx| {
                    tx.delete_lun(id)?;
                    tx.add_tombstone(id, ObjectKind::Lun)?;
                    // A plex of a deleted LUN answers OBJECT_DELETED too (`ops/plex.rs`).
                    for p in &plexes {
                        tx.add_tombstone(*p, ObjectKind::Lun)?;
                    }
                    Ok(())
                })
                .apply(|st| {
                    st.tombstones.insert(id, ObjectKind::Lun);
                    st.tombstones
                        .extend(plexes.iter().map(|p| (*p, ObjectKind::Lun)));
                    st.lun_names.remove(&entry.rec.lun.friendly_name);
                    if let Some(p) = &entry.rec.lun.backing.path {
                        st.backing_paths.remove(p);
                    }
                })
                .event(ObjectKind::Lun, EventKind::Depart, id))
        };
        let mut extent_files = crate::extents::files_of(&g.drives, &entry.rec.lun);
        extent_files.extend(crate::extents::stray_files_of(&g.drives, &entry.rec.lun));
        let (g, (), r) = inner.commit_prepared(g, slots, drain, undo, build);
        r?;
        drop(g);
        free_storage(&entry);
        crate::extents::remove_files(&extent_files);
        if entry.rec.lun.backing.kind == vds_model::BackingKind::Extents {
            let data = crate::storage::default_lun_path(&inner.config.data_dir, id);
            if let Err(err) = vds_backstore::journal::remove_journal(&data) {
                tracing::warn!(lun = %id, error = %err, "could not remove the atomic-write journal");
            }
            crate::recovery::remove_bitmap(&inner.config.data_dir, id);
        }
        Ok(Outcome::Deleted {
            kind: ObjectKind::Lun,
            id,
        })
    }

    pub(super) fn patch_lun(
        &self,
        id: Uuid,
        friendly_name: Option<String>,
        unmasking_list: Option<String>,
        read_only: Option<bool>,
    ) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Lun, id)?;
        let name = friendly_name
            .as_deref()
            .map(|n| check_name("friendly_name", n))
            .transpose()?;
        let mask = unmasking_list
            .as_deref()
            .map(|m| {
                UnmaskingList::parse(m)
                    .map(|l| l.to_string())
                    .map_err(|e| VdsError::invalid_arg("unmasking_list", e))
            })
            .transpose()?;
        st.check_free(&[(ObjectKind::Lun, id)])?;
        let mut rec = st.luns[&id].rec.clone();
        if let Some(n) = &name {
            if let Some(other) = st.lun_names.get(n).filter(|o| **o != id) {
                return Err(VdsError::new(
                    Hresult::VDS_E_OBJECT_EXISTS,
                    format!("friendly_name: LUN {other} is already called {n:?}"),
                ));
            }
            rec.lun.friendly_name = n.clone();
        }
        if let Some(m) = &mask {
            rec.lun.unmasking_list = m.clone();
        }
        if let Some(ro) = read_only {
            rec.lun.read_only = ro;
        }
        let old = st.luns[&id].rec.lun.clone();
        if rec.lun == old {
            return Ok(Outcome::Lun(Box::new(old)));
        }
        let lu = st.luns[&id].lu.clone();
        // Keep the store and the data path from ever disagreeing in the unsafe direction: a
        // LUN becoming read-only is protected on the wire before the change is stored (waiting
        // for the writes in flight, without the provider lock; the slot keeps other calls off
        // this LUN meanwhile), one becoming writable is stored first.
        let protect = rec.lun.read_only && !old.read_only;
        let unprotect = !rec.lun.read_only && old.read_only;
        let lun = rec.lun.clone();
        let build = |st: &mut State, _: &()| -> Result<Change<'_>, VdsError> {
            // While the lock was let go another LUN may have taken the new name.
            if let Some(other) = st
                .lun_names
                .get(&rec.lun.friendly_name)
                .filter(|o| **o != id)
            {
                return Err(VdsError::new(
                    Hresult::VDS_E_OBJECT_EXISTS,
                    format!(
                        "friendly_name: LUN {other} is already called {:?}",
                        rec.lun.friendly_name
                    ),
                ));
            }
            let row = rec.clone();
            let change = Change::new().store(move |tx| tx.put_lun(&row)).apply(|st| {
                if unprotect {
                    lu.set_write_protected(false);
                }
                st.lun_names.remove(&old.friendly_name);
                st.lun_names.insert(rec.lun.friendly_name.clone(), id);
                if old.unmasking_list != rec.lun.unmasking_list {
                    st.dirty_lun(&rec.lun);
                }
                if let Some(e) = st.luns.get_mut(&id) {
                    e.rec = rec;
                }
            });
            let change = if old.unmasking_list != lun.unmasking_list {
                change.publish()
            } else {
                change
            };
            Ok(change.event(ObjectKind::Lun, EventKind::Modify, id))
        };
        if protect {
            let slots = inner.claim(st, &[id]);
            let undo = |_: &mut State, _: &()| {
                lu.set_write_protected(false);
                Change::new()
            };
            let write_protect = || lu.set_write_protected(true);
            let (_g, (), r) = inner.commit_prepared(g, slots, write_protect, undo, build);
            r?;
        } else {
            let change = build(st, &())?;
            inner.commit(st, change, None)?;
        }
        Ok(Outcome::Lun(Box::new(lun)))
    }

    pub(super) fn set_lun_status(&self, id: Uuid, raw: i64) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Lun, id)?;
        let want = judge_status(
            raw,
            "VDS_LUN_STATUS",
            "LUN",
            LunStatus::from_i64,
            LunStatus::Unknown,
            &[LunStatus::Online, LunStatus::NotReady, LunStatus::Offline],
            LunStatus::vds_name,
        )?;
        st.check_free(&[(ObjectKind::Lun, id)])?;
        let cur = st.luns[&id].rec.lun.status;
        if cur == LunStatus::Failed {
            return Err(VdsError::new(
                Hresult::VDS_E_OBJECT_STATUS_FAILED,
                format!("LUN {id} is FAILED; Refresh re-probes it (it then comes back OFFLINE)"),
            ));
        }
        if cur == want {
            return Ok(Outcome::Lun(Box::new(st.luns[&id].rec.lun.clone())));
        }
        let slots = inner.claim(st, &[id]);
        let mut probe = st.luns[&id].rec.lun.clone();
        probe.status = want;
        let lu_want = st.lu_state(&probe);
        let lu = st.luns[&id].lu.clone();
        // The data path goes first: quiesce + flush (OFFLINE, NOT_READY), or probe + unit
        // attention (ONLINE). An acknowledged OFFLINE means flushed: the store may only say
        // OFFLINE once every write the hosts were told is done is on the backing store, and a
        // flush that fails makes the LUN FAILED, which is then what is stored. This may take
        // long (fault delay, big cache), so it runs without the lock, under the slot.
        let transition = || {
            if lu.state() != lu_want {
                lu.set_state(lu_want)
            } else {
                Ok(())
            }
        };
        // Not durable: the data path follows the store, so the LU goes back.
        let undo = |st: &mut State, io: &std::io::Result<()>| {
            if io.is_ok() {
                if let Some(e) = st.luns.get(&id) {
                    let _ = lu.set_state(st.lu_state(&e.rec.lun));
                }
            }
            Change::new()
        };
        let build = |st: &mut State, io: &std::io::Result<()>| {
            let mut rec = st.lun(id)?.rec.clone();
            match io {
                Ok(()) => rec.lun.status = want,
                Err(_) => {
                    rec.lun.status = LunStatus::Failed;
                    rec.lun.health = Health::Failed;
                }
            }
            Ok(Change::new().lun_record(rec))
        };
        let (g, io, r) = inner.commit_prepared(g, slots, transition, undo, build);
        r?;
        if let Err(e) = io {
            return Err(storage_err(
                format!(
                    "LUN {id}: the backing store failed while going {}",
                    want.short_name()
                ),
                &e,
            ));
        }
        Ok(Outcome::Lun(Box::new(g.lun(id)?.rec.lun.clone())))
    }

    pub(super) fn recover_lun(&self, id: Uuid) -> Result<Outcome, VdsError> {
        let mut g = self.inner.state.lock();
        let st = &mut *g;
        self.inner.object_call(st, ObjectKind::Lun, id)?;
        let lun = &st.luns[&id].rec.lun;
        let fault_tolerant = matches!(
            lun.lun_type,
            LunType::FaultTolerant | LunType::Mirror | LunType::Parity | LunType::Raid5
        ) || lun.plexes.len() > 1;
        if !fault_tolerant {
            return Err(VdsError::new(
                Hresult::VDS_E_INVALID_OPERATION,
                format!(
                    "LUN {id} is {} (not fault tolerant): there is nothing to recover",
                    lun.lun_type.short_name()
                ),
            ));
        }
        // A mirror with a failed plex: a spare or another drive takes it and it is rebuilt.
        if let Some(plex) = lun
            .plexes
            .iter()
            .position(|p| p.status == vds_model::LunPlexStatus::Failed)
        {
            if st.luns[&id].raid.is_some() {
                let job = self
                    .inner
                    .replace_plex(st, id, plex, crate::spare::Source::Any)?;
                return Ok(Outcome::Job(job.job()));
            }
        }
        if lun.backing.kind == vds_model::BackingKind::Extents {
            return Err(VdsError::new(
                Hresult::VDS_E_INVALID_OPERATION,
                format!("LUN {id} has no failed plex: there is nothing to recover"),
            ));
        }
        // A fault-tolerant LUN that is not on extents came from elsewhere.
        Err(VdsError::not_supported(format!(
            "LUN {id}: recovery of {} LUNs is not supported by this provider",
            lun.lun_type.short_name()
        )))
    }

    pub(super) fn set_lun_faults(
        &self,
        id: Uuid,
        filters: Vec<FaultFilterSpec>,
    ) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Lun, id)?;
        check_filters(inner, "filters", &filters)?;
        if !inner.config.fault_injection {
            return Err(VdsError::not_supported(
                "filters: fault filters are accepted only when vdsd runs with --enable-fault-injection",
            ));
        }
        st.check_free(&[(ObjectKind::Lun, id)])?;
        let mut rec = st.luns[&id].rec.clone();
        if rec.lun.filters == filters {
            return Ok(Outcome::Lun(Box::new(rec.lun)));
        }
        rec.lun.filters = filters;
        let lun = rec.lun.clone();
        let change = Change::new()
            .store(|tx| tx.put_lun(&rec))
            .apply(|st| {
                if let Some(e) = st.luns.get_mut(&id) {
                    if let Some(f) = &e.filtered {
                        f.set_filters(to_filters(&lun.filters));
                    }
                    e.rec = rec.clone();
                }
            })
            .event(ObjectKind::Lun, EventKind::Modify, id);
        inner.commit(st, change, None)?;
        Ok(Outcome::Lun(Box::new(lun)))
    }

    pub(super) fn set_lun_targets(
        &self,
        id: Uuid,
        targets: Vec<Uuid>,
    ) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Lun, id)?;
        for (i, t) in targets.iter().enumerate() {
            st.lookup(ObjectKind::Target, *t, Some(&format!("targets[{i}]")))?;
        }
        let lun = st.luns[&id].rec.lun.clone();
        for (i, t) in targets.iter().enumerate() {
            if targets[..i].contains(t) {
                return Err(VdsError::invalid_arg(
                    &format!("targets[{i}]"),
                    format!("target {t} is listed twice"),
                ));
            }
            if st.targets[t].t.subsystem != lun.subsystem {
                return Err(VdsError::invalid_arg(
                    &format!("targets[{i}]"),
                    format!("target {t} belongs to another subsystem"),
                ));
            }
        }
        let added: Vec<Uuid> = targets
            .iter()
            .filter(|t| !lun.targets.contains(t))
            .copied()
            .collect();
        let removed: Vec<Uuid> = lun
            .targets
            .iter()
            .filter(|t| !targets.contains(t))
            .copied()
            .collect();
        let mut busy = vec![(ObjectKind::Lun, id)];
        busy.extend(
            added
                .iter()
                .chain(&removed)
                .map(|t| (ObjectKind::Target, *t)),
        );
        st.check_free(&busy)?;
        if added.is_empty() && removed.is_empty() {
            return Ok(Outcome::Lun(Box::new(lun)));
        }
        // New numbers: kept targets keep theirs, new ones get the lowest free.
        let mut numbers: Vec<(Uuid, u64)> = lun
            .lun_numbers
            .iter()
            .filter(|(t, _)| targets.contains(t))
            .copied()
            .collect();
        let taken = allocate_numbers(st, &added)?;
        numbers.extend(&taken);
        let mut rec = st.lun(id)?.rec.clone();
        rec.lun.targets = numbers.iter().map(|(t, _)| *t).collect();
        rec.lun.lun_numbers = numbers;
        let new = rec.lun.clone();
        let change = Change::new()
            .store(|tx| tx.put_lun(&rec))
            .apply(|st| {
                for t in &removed {
                    if let Some(te) = st.targets.get_mut(t) {
                        te.t.luns.retain(|l| *l != id);
                        if let Some((_, n)) = lun.lun_numbers.iter().find(|(x, _)| x == t) {
                            te.release(*n);
                        }
                    }
                    st.dirty.insert(*t);
                }
                for t in &added {
                    if let Some(te) = st.targets.get_mut(t) {
                        te.t.luns.push(id);
                    }
                    st.dirty.insert(*t);
                }
                if let Some(e) = st.luns.get_mut(&id) {
                    e.rec = rec.clone();
                }
            })
            .publish_then(|st| {
                for t in added.iter().chain(&removed) {
                    for lu in st.lus_of_target(*t) {
                        lu.luns_changed();
                    }
                }
            })
            .event(ObjectKind::Lun, EventKind::Modify, id);
        if let Err(e) = inner.commit(st, change, None) {
            release_numbers(st, &taken);
            return Err(e);
        }
        Ok(Outcome::Lun(Box::new(new)))
    }
}

pub(super) fn set_size(lun: &mut Lun, size: u64) {
    lun.size_bytes = size;
    for p in &mut lun.plexes {
        p.size_bytes = size;
    }
}
