//! The provider cache (BEHAVIOUR.md §6): Reenumerate, Refresh, and the re-read and re-probe
//! of LUN storage they run.

use uuid::Uuid;
use vds_backstore::BackingStore;
use vds_model::{EventKind, Health, LunStatus, ObjectKind};
use vds_scsi::LuState;

use crate::commit::Change;
use crate::engine::reload;
use crate::state::State;
use crate::storage::{identity_of, open_backing};
use crate::{Outcome, Provider, VdsError};

use super::lun::set_size;
use super::storage_err;

impl Provider {
    pub(super) fn reenumerate(&self) -> Result<Outcome, VdsError> {
        let mut g = self.inner.state.lock();
        let st = &mut *g;
        let pid = st.provider_id;
        st.check_free(&[(ObjectKind::Provider, pid)])?;
        // Rediscover the drives: labels read again (BEHAVIOUR.md §15), sizes (MODIFY).
        self.rediscover_drives(st)?;
        // Portals: a portal whose listener died is found here by the data path's reports;
        // nothing appears or vanishes on its own in vds.
        let luns: Vec<Uuid> = st.luns.keys().copied().collect();
        self.inner.detect(st, &luns);
        if st.corrupt.is_some() {
            st.reenumerated = true;
        }
        Ok(Outcome::Provider(self.inner.provider_info(st)))
    }

    pub(super) fn refresh(&self) -> Result<Outcome, VdsError> {
        // Ceph is asked before the lock is taken (the answer may take seconds).
        let ceph = crate::ceph_pools::fetch();
        let slots;
        let cure;
        {
            let mut g = self.inner.state.lock();
            let st = &mut *g;
            let pid = st.provider_id;
            st.check_free(&[(ObjectKind::Provider, pid)])?;
            let luns: Vec<Uuid> = st.luns.keys().copied().collect();
            self.inner.detect(st, &luns);
            cure = st.corrupt.is_some() && st.reenumerated;
            if st.corrupt.is_some() && !cure {
                // Refresh alone leaves the cache corrupt (BEHAVIOUR.md §6).
                return Ok(Outcome::Provider(self.inner.provider_info(st)));
            }
            slots = self.inner.claim(st, &[pid]);
        }
        let mut g = self.inner.state.lock();
        let st = &mut *g;
        let r = self.refresh_locked(st, cure);
        match ceph {
            Some(Ok(view)) => self.inner.record_ceph(st, view),
            Some(Err(e)) => tracing::warn!(error = %e, "Refresh: cannot read Ceph's pools"),
            None => {}
        }
        // What Refresh changed was committed LUN by LUN under its one slot, released now.
        self.inner.commit(st, Change::new(), Some(slots))?;
        r?;
        Ok(Outcome::Provider(self.inner.provider_info(st)))
    }

    pub(super) fn refresh_locked(&self, st: &mut State, cure: bool) -> Result<(), VdsError> {
        if cure {
            let external = st
                .corrupt
                .as_deref()
                .is_some_and(|w| w.contains("another process"));
            if external {
                reload(&self.inner, st)?;
                // A mirror opened by the reload is made equal where a crash may have left it not.
                self.inner.resume_crash_resyncs(st);
            }
            // Re-read every LUN's storage: adopt new sizes, reopen replaced files, fail gone ones.
            let ids: Vec<Uuid> = st.luns.keys().copied().collect();
            for id in ids {
                if crate::storage::backing_changed(&st.luns[&id]).is_some() {
                    self.reread_lun(st, id)?;
                }
            }
            st.corrupt = None;
            st.reenumerated = false;
            // Our own re-read commits do not count as another process's changes.
            let _ = st.store.changed_externally();
        }
        // Re-probe FAILED LUNs (§5): a store that answers again makes the LUN OFFLINE, HEALTHY.
        let failed: Vec<Uuid> = st
            .luns
            .values()
            .filter(|e| e.rec.lun.status == LunStatus::Failed)
            .map(|e| e.rec.lun.id)
            .collect();
        for id in failed {
            self.reprobe_failed(st, id)?;
        }
        Ok(())
    }

    /// Re-reads one LUN's storage after it changed behind our back.
    pub(super) fn reread_lun(&self, st: &mut State, id: Uuid) -> Result<(), VdsError> {
        let e = &st.luns[&id];
        let mut rec = e.rec.clone();
        let same_file = identity_of(&rec.lun.backing)
            .ok()
            .flatten()
            .is_some_and(|i| Some(i) == rec.identity);
        let mut new_lu = None;
        if same_file {
            // Same file, new size: adopt it in place (the LU raises CAPACITY DATA HAS CHANGED).
            let path = rec.lun.backing.path.as_deref().unwrap_or_default();
            let len = vds_backstore::lifecycle::look(std::path::Path::new(path))
                .map(|seen| seen.len())
                .unwrap_or(rec.lun.size_bytes);
            if let Some(f) = &e.filtered {
                f.resize(len)
                    .map_err(|err| storage_err(format!("LUN {id}: re-reading the size"), &err))?;
            }
            set_size(&mut rec.lun, len);
            e.lu.capacity_changed();
        } else {
            match open_backing(&rec.lun) {
                Ok(f) => {
                    let old_size = rec.lun.size_bytes;
                    set_size(&mut rec.lun, f.size());
                    rec.identity = identity_of(&rec.lun.backing).ok().flatten();
                    let lu = self
                        .inner
                        .make_lu(&rec.lun, f.clone(), st.lu_state(&rec.lun), None);
                    // Same LUN for the hosts: their nexuses, unit attentions and
                    // reservations carry over to the LU over the new file.
                    lu.inherit(&e.lu);
                    if f.size() != old_size {
                        lu.capacity_changed();
                    }
                    new_lu = Some((lu, Some(f)));
                }
                Err(err) => {
                    tracing::warn!(lun = %id, error = %err, "backing gone; LUN FAILED");
                    rec.lun.status = LunStatus::Failed;
                    rec.lun.health = Health::Failed;
                    let _ = e.lu.set_state(LuState::Failed);
                    let lu = self.inner.missing_lu(&rec.lun);
                    lu.inherit(&e.lu);
                    new_lu = Some((lu, None));
                }
            }
        }
        let change = match new_lu {
            Some((lu, f)) => Change::new()
                .store(|tx| tx.put_lun(&rec))
                .apply(|st| replace_lu(st, rec.clone(), lu, f))
                .publish()
                .event(ObjectKind::Lun, EventKind::Modify, id),
            None => Change::new().lun_record(rec.clone()),
        };
        self.inner.commit(st, change, None)
    }

    pub(super) fn reprobe_failed(&self, st: &mut State, id: Uuid) -> Result<(), VdsError> {
        let e = &st.luns[&id];
        let mut rec = e.rec.clone();
        let mut replace = None;
        let ok = match &e.filtered {
            Some(_) => e.lu.set_state(LuState::Offline).is_ok(),
            None => match open_backing(&rec.lun) {
                Ok(f) => {
                    let old_size = rec.lun.size_bytes;
                    set_size(&mut rec.lun, f.size());
                    rec.identity = identity_of(&rec.lun.backing).ok().flatten();
                    let lu = self
                        .inner
                        .make_lu(&rec.lun, f.clone(), LuState::Offline, None);
                    // The hosts that saw the LUN FAILED must be told when it comes back
                    // ONLINE (06/28/00): keep their nexuses, unit attentions, reservations.
                    lu.inherit(&e.lu);
                    if f.size() != old_size {
                        lu.capacity_changed();
                    }
                    replace = Some((lu, f));
                    true
                }
                Err(_) => false,
            },
        };
        if !ok {
            return Ok(());
        }
        rec.lun.status = LunStatus::Offline;
        rec.lun.health = Health::Healthy;
        let change = match replace {
            Some((lu, f)) => Change::new()
                .store(|tx| tx.put_lun(&rec))
                .apply(|st| replace_lu(st, rec.clone(), lu, Some(f)))
                .publish()
                .event(ObjectKind::Lun, EventKind::Modify, id),
            None => Change::new().lun_record(rec.clone()),
        };
        self.inner.commit(st, change, None)
    }
}

/// Puts a LUN's new record and the LU over its (re)opened store in place; the LUN's targets
/// get the new LU with the next view.
fn replace_lu(
    st: &mut State,
    rec: vds_store::LunRecord,
    lu: std::sync::Arc<vds_scsi::LogicalUnit>,
    filtered: Option<std::sync::Arc<vds_backstore::Filtered>>,
) {
    let Some(e) = st.luns.get_mut(&rec.lun.id) else {
        return;
    };
    e.lu = lu;
    e.filtered = filtered;
    e.rec = rec;
    let lun = e.rec.lun.clone();
    st.dirty_lun(&lun);
}
