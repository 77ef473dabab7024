//! LUN operations: create (a job), delete, patch, SetStatus, extend/shrink (jobs), recover,
//! fault filters, target associations.

use uuid::Uuid;
use vds_backstore::BackingStore;
use vds_model::{
    AsyncOutputType, BackingKind, EventKind, FaultFilterSpec, Health, Hresult, JobOutput, Lun,
    LunStatus, LunType, ObjectKind, TransitionState, UnmaskingList,
};
use vds_scsi::LuState;

use crate::engine::{round_up, store_err, MAX_LUN_SIZE};
use crate::state::State;
use crate::storage::{allocate, free_storage, fs_space, to_filters};
use crate::{Outcome, Provider, VdsError};

use super::*;

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
        let mut ids = vec![id];
        ids.extend(&targets);
        let slots = inner.claim(st, &ids);
        // Leave the data path first: new commands get 05/25/00, the others see 06/3F/0E.
        let entry = st.luns.remove(&id).expect("present");
        for t in &targets {
            if let Some(te) = st.targets.get_mut(t) {
                te.t.luns.retain(|l| *l != id);
                if let Some((_, n)) = entry.rec.lun.lun_numbers.iter().find(|(x, _)| x == t) {
                    te.release(*n);
                }
            }
            st.dirty.insert(*t);
        }
        inner.publish(st);
        for t in &targets {
            for lu in st.lus_of_target(*t) {
                lu.luns_changed();
            }
        }
        drop(g);
        // Drain what is in flight on the LU (its store is going away).
        let _ = entry.lu.set_state(LuState::Offline);
        let mut g = inner.state.lock();
        let st = &mut *g;
        let r = st.store.write(|tx| {
            tx.delete_lun(id)?;
            tx.add_tombstone(id, ObjectKind::Lun)
        });
        if let Err(e) = r {
            // Not deleted: put it back exactly as it was.
            let lun = entry.rec.lun.clone();
            for (t, n) in &lun.lun_numbers {
                if let Some(te) = st.targets.get_mut(t) {
                    te.t.luns.push(id);
                    te.numbers.insert(*n);
                }
            }
            let want = st.lu_state(&lun);
            let _ = entry.lu.set_state(want);
            st.luns.insert(id, entry);
            st.dirty_lun(&lun);
            inner.publish(st);
            slots.release(st);
            return Err(store_err(e));
        }
        st.tombstones.insert(id, ObjectKind::Lun);
        st.lun_names.remove(&entry.rec.lun.friendly_name);
        if let Some(p) = &entry.rec.lun.backing.path {
            st.backing_paths.remove(p);
        }
        inner.emit(ObjectKind::Lun, EventKind::Depart, id);
        slots.release(st);
        drop(g);
        free_storage(&entry);
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
        let mut slots = None;
        if rec.lun.read_only && !old.read_only {
            slots = Some(inner.claim(st, &[id]));
            drop(g);
            lu.set_write_protected(true);
            g = inner.state.lock();
        }
        let st = &mut *g;
        // While the lock was let go another LUN may have taken the new name.
        let taken = st
            .lun_names
            .get(&rec.lun.friendly_name)
            .filter(|o| **o != id)
            .map(|other| {
                VdsError::new(
                    Hresult::VDS_E_OBJECT_EXISTS,
                    format!(
                        "friendly_name: LUN {other} is already called {:?}",
                        rec.lun.friendly_name
                    ),
                )
            });
        let stored = match taken {
            Some(e) => Err(e),
            None => st.store.write(|tx| tx.put_lun(&rec)).map_err(store_err),
        };
        if let Err(e) = stored {
            if rec.lun.read_only && !old.read_only {
                lu.set_write_protected(false);
            }
            if let Some(s) = slots {
                s.release(st);
            }
            return Err(e);
        }
        if !rec.lun.read_only && old.read_only {
            lu.set_write_protected(false);
        }
        if let Some(s) = slots {
            s.release(st);
        }
        st.lun_names.remove(&old.friendly_name);
        st.lun_names.insert(rec.lun.friendly_name.clone(), id);
        let lun = rec.lun.clone();
        st.luns.get_mut(&id).expect("present").rec = rec;
        if old.unmasking_list != lun.unmasking_list {
            st.dirty_lun(&lun);
            inner.publish(st);
        }
        inner.emit(ObjectKind::Lun, EventKind::Modify, id);
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
        drop(g);
        // Quiesce + flush, or probe + unit attention: may take long (fault delay, big cache).
        let io = if lu.state() != lu_want {
            lu.set_state(lu_want)
        } else {
            Ok(())
        };
        let mut g = inner.state.lock();
        let st = &mut *g;
        let mut rec = st.luns[&id].rec.clone();
        let result = match &io {
            Ok(()) => {
                rec.lun.status = want;
                Ok(())
            }
            Err(e) => {
                rec.lun.status = LunStatus::Failed;
                rec.lun.health = Health::Failed;
                Err(storage_err(
                    format!(
                        "LUN {id}: the backing store failed while going {}",
                        want.short_name()
                    ),
                    e,
                ))
            }
        };
        if let Err(e) = st.store.write(|tx| tx.put_lun(&rec)) {
            // Not durable: the data path follows the store, so undo what we can.
            let old = st.luns[&id].rec.lun.clone();
            let back = st.lu_state(&old);
            if io.is_ok() {
                let _ = lu.set_state(back);
            }
            slots.release(st);
            return Err(store_err(e));
        }
        let lun = rec.lun.clone();
        st.luns.get_mut(&id).expect("present").rec = rec;
        inner.emit(ObjectKind::Lun, EventKind::Modify, id);
        slots.release(st);
        result.map(|()| Outcome::Lun(Box::new(lun)))
    }

    pub(super) fn resize_lun(
        &self,
        id: Uuid,
        bytes: u64,
        extend: bool,
    ) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Lun, id)?;
        let lun = st.luns[&id].rec.lun.clone();
        if bytes == 0 {
            return Err(VdsError::invalid_arg("bytes", "must be greater than 0"));
        }
        let delta = round_up(bytes.min(MAX_LUN_SIZE + 1));
        let new_size = if extend {
            match lun.size_bytes.checked_add(delta) {
                Some(s) if s <= MAX_LUN_SIZE => s,
                _ => {
                    return Err(VdsError::invalid_arg(
                        "bytes",
                        format!("the LUN would exceed the {MAX_LUN_SIZE}-byte limit"),
                    ))
                }
            }
        } else {
            if delta >= lun.size_bytes {
                return Err(VdsError::invalid_arg(
                    "bytes",
                    format!(
                        "removing {delta} bytes from a {}-byte LUN leaves nothing",
                        lun.size_bytes
                    ),
                ));
            }
            lun.size_bytes - delta
        };
        if lun.backing.kind == BackingKind::Block {
            return Err(VdsError::not_supported(format!(
                "LUN {id} is a block device: its size is the device's"
            )));
        }
        st.check_free(&[(ObjectKind::Lun, id)])?;
        if lun.status == LunStatus::Failed {
            return Err(VdsError::new(
                Hresult::VDS_E_OBJECT_STATUS_FAILED,
                format!("LUN {id} is FAILED"),
            ));
        }
        let Some(filtered) = st.luns[&id].filtered.clone() else {
            return Err(VdsError::new(
                Hresult::VDS_E_OBJECT_STATUS_FAILED,
                format!("LUN {id} has no storage"),
            ));
        };
        if extend && lun.backing.kind == BackingKind::File && !lun.thin {
            if let Some(dir) = lun
                .backing
                .path
                .as_deref()
                .and_then(|p| std::path::Path::new(p).parent())
            {
                if let Ok((_, avail)) = fs_space(dir) {
                    if avail < delta {
                        return Err(VdsError::new(
                            Hresult::VDS_E_NOT_ENOUGH_SPACE,
                            format!(
                                "bytes: {delta} more bytes do not fit in the {avail} bytes free"
                            ),
                        ));
                    }
                }
            }
        }
        let slots = inner.claim(st, &[id]);
        let e = st.luns.get_mut(&id).expect("present");
        e.rec.lun.transition_state = if extend {
            TransitionState::Extending
        } else {
            TransitionState::Shrinking
        };
        let lu = e.lu.clone();
        drop(g);
        let op = if extend {
            AsyncOutputType::ExtendLun
        } else {
            AsyncOutputType::ShrinkLun
        };
        self.spawn_job(op, id, slots, move |inner, job, slots| {
            let old = lun.size_bytes;
            let io = filtered.resize(new_size).and_then(|()| {
                if extend && !lun.thin && lun.backing.kind == BackingKind::File {
                    allocate(
                        lun.backing.path.as_deref().unwrap_or_default(),
                        old,
                        new_size - old,
                    )
                } else {
                    Ok(())
                }
            });
            job.set_percent(80);
            let mut g = inner.state.lock();
            let st = &mut *g;
            let finish = |st: &mut State| {
                if let Some(e) = st.luns.get_mut(&id) {
                    e.rec.lun.transition_state = TransitionState::Stable;
                }
            };
            if let Err(e) = io {
                let _ = filtered.resize(old);
                finish(st);
                slots.release(st);
                return Err(storage_err(
                    format!("LUN {id}: resizing to {new_size} bytes"),
                    &e,
                ));
            }
            if !job.begin_commit() {
                let _ = filtered.resize(old);
                finish(st);
                slots.release(st);
                return Err(VdsError::new(Hresult::VDS_E_OPERATION_CANCELED, "canceled"));
            }
            let mut rec = st.luns[&id].rec.clone();
            set_size(&mut rec.lun, new_size);
            rec.lun.transition_state = TransitionState::Stable;
            if let Err(e) = st.store.write(|tx| tx.put_lun(&rec)) {
                let _ = filtered.resize(old);
                finish(st);
                slots.release(st);
                return Err(store_err(e));
            }
            let lun = rec.lun.clone();
            st.luns.get_mut(&id).expect("present").rec = rec;
            lu.capacity_changed();
            inner.emit(ObjectKind::Lun, EventKind::Modify, id);
            slots.release(st);
            Ok((Hresult::S_OK, Some(JobOutput::Lun(Box::new(lun)))))
        })
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
        // vds creates no fault-tolerant LUNs yet; a store holding one came from elsewhere.
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
        st.store.write(|tx| tx.put_lun(&rec)).map_err(store_err)?;
        let e = st.luns.get_mut(&id).expect("present");
        if let Some(f) = &e.filtered {
            f.set_filters(to_filters(&rec.lun.filters));
        }
        let lun = rec.lun.clone();
        e.rec = rec;
        inner.emit(ObjectKind::Lun, EventKind::Modify, id);
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
        let mut taken = Vec::new();
        for t in &added {
            match st.targets.get_mut(t).expect("present").allocate() {
                Some(n) => {
                    taken.push((*t, n));
                    numbers.push((*t, n));
                }
                None => {
                    for (t, n) in taken {
                        st.targets.get_mut(&t).expect("present").release(n);
                    }
                    return Err(VdsError::new(
                        Hresult::E_OUTOFMEMORY,
                        format!("target {t} has no free LUN number"),
                    ));
                }
            }
        }
        let mut rec = st.luns[&id].rec.clone();
        rec.lun.targets = numbers.iter().map(|(t, _)| *t).collect();
        rec.lun.lun_numbers = numbers;
        if let Err(e) = st.store.write(|tx| tx.put_lun(&rec)) {
            for (t, n) in taken {
                st.targets.get_mut(&t).expect("present").release(n);
            }
            return Err(store_err(e));
        }
        for t in &removed {
            let te = st.targets.get_mut(t).expect("present");
            te.t.luns.retain(|l| *l != id);
            if let Some((_, n)) = lun.lun_numbers.iter().find(|(x, _)| x == t) {
                te.release(*n);
            }
            st.dirty.insert(*t);
        }
        for t in &added {
            st.targets.get_mut(t).expect("present").t.luns.push(id);
            st.dirty.insert(*t);
        }
        let new = rec.lun.clone();
        st.luns.get_mut(&id).expect("present").rec = rec;
        inner.publish(st);
        for t in added.iter().chain(&removed) {
            for lu in st.lus_of_target(*t) {
                lu.luns_changed();
            }
        }
        inner.emit(ObjectKind::Lun, EventKind::Modify, id);
        Ok(Outcome::Lun(Box::new(new)))
    }
}

pub(super) fn set_size(lun: &mut Lun, size: u64) {
    lun.size_bytes = size;
    for p in &mut lun.plexes {
        p.size_bytes = size;
    }
}
