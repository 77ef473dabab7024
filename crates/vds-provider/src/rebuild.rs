//! Regenerating a plex (BEHAVIOUR.md §15): a job that copies a current plex onto a stale one
//! while the LUN serves I/O, throttled by the LUN's `rebuild_priority` hint, and then records
//! the plex as current (plex ONLINE and healthy, the LUN's health derived again, one MODIFY
//! event). The copy itself is `vds_backstore::RaidStore::resync`: every write that reaches the
//! LUN meanwhile goes to the stale plex too, so what is copied is never older than the data.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;
use vds_backstore::{PlexState, RaidStore};
use vds_model::TransitionState;
use vds_model::{AsyncOutputType, EventKind, Health, Hresult, LunPlexStatus, ObjectKind};

use crate::commit::Change;
use crate::engine::Inner;
use crate::jobs::JobHandle;
use crate::redundancy::lun_health;
use crate::VdsError;

/// Bytes copied per step of a regeneration.
pub(crate) const CHUNK: u64 = 1 << 20;

/// The pause after each [`CHUNK`] at rebuild priority `priority` (VDS: 0, lowest, to 15,
/// highest): 15 ms at 0 (about 65 MiB/s, leaving the drives to the hosts), none at 15.
pub(crate) fn pause_for(priority: i16) -> Duration {
    Duration::from_millis((15 - priority.clamp(0, 15)) as u64)
}

/// The plex of LUN `lun` being regenerated, by id: its index may move if plexes are removed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target {
    pub lun: Uuid,
    pub plex: Uuid,
}

impl Inner {
    /// Starts a RecoverLun job that regenerates `target` in `store` (whose plex must be
    /// stale already, and recorded so: `rebuilding`). The job runs on its own thread; its
    /// percentage is the copy's.
    pub(crate) fn spawn_regenerate(
        self: &Arc<Self>,
        target: Target,
        store: Arc<RaidStore>,
        priority: i16,
    ) -> Result<Arc<JobHandle>, VdsError> {
        self.spawn_regenerate_as(AsyncOutputType::RecoverLun, target, store, priority)
    }

    /// [`Inner::spawn_regenerate`] as a job of type `operation` (AddPlex: AddLunPlex).
    pub(crate) fn spawn_regenerate_as(
        self: &Arc<Self>,
        operation: AsyncOutputType,
        target: Target,
        store: Arc<RaidStore>,
        priority: i16,
    ) -> Result<Arc<JobHandle>, VdsError> {
        let handle = self.jobs.start(operation, target.lun);
        let inner = self.clone();
        crate::jobs::run_on_thread(&handle, "vds-regenerate".into(), move |h| {
            let r = inner.regenerate(target, &store, priority, h);
            if let Err(e) = &r {
                tracing::error!(lun = %target.lun, plex = %target.plex, error = %e.message,
                    "plex regeneration failed");
            }
            r.map(|()| (Hresult::S_OK, None))
        })?;
        Ok(handle)
    }

    /// The job's body: copy, then record. A cancel leaves the plex stale (and the LUN
    /// `rebuilding` until a Recover resumes it); an I/O error on the plex fails it through the
    /// store's observer.
    fn regenerate(
        &self,
        target: Target,
        store: &RaidStore,
        priority: i16,
        job: &JobHandle,
    ) -> Result<(), VdsError> {
        let index = self.plex_index(target)?;
        let pause = pause_for(priority);
        let mut canceled = false;
        let copied = store.resync(index, CHUNK, &mut |done, total| {
            job.set_percent((done.saturating_mul(100) / total.max(1)) as u32);
            if job.cancel_requested() || store.plex_state(index) != PlexState::Stale {
                canceled = true;
                return false;
            }
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
            true
        });
        if let Err(e) = copied {
            return Err(crate::ops::storage_err(
                format!("LUN {}: regenerating plex {}", target.lun, target.plex),
                &e,
            ));
        }
        if canceled {
            return Err(VdsError::new(
                Hresult::VDS_E_OPERATION_CANCELED,
                format!(
                    "LUN {}: regeneration of plex {} stopped; it stays stale",
                    target.lun, target.plex
                ),
            ));
        }
        self.record_regenerated(target)
    }

    /// Where plex `target.plex` is in its LUN now.
    fn plex_index(&self, target: Target) -> Result<usize, VdsError> {
        let st = self.state.lock();
        let lun = &st.lun(target.lun)?.rec.lun;
        lun.plexes
            .iter()
            .position(|p| p.id == target.plex)
            .ok_or_else(|| {
                VdsError::new(
                    Hresult::VDS_E_OBJECT_NOT_FOUND,
                    format!("LUN {} has no plex {}", target.lun, target.plex),
                )
            })
    }

    /// The copy is done and the store made the plex current: the plex is ONLINE and healthy,
    /// the LUN's health derived again, stored, one MODIFY event.
    fn record_regenerated(&self, target: Target) -> Result<(), VdsError> {
        let mut g = self.state.lock();
        let st = &mut *g;
        let mut rec = st.lun(target.lun)?.rec.clone();
        let Some(p) = rec.lun.plexes.iter_mut().find(|p| p.id == target.plex) else {
            return Err(VdsError::new(
                Hresult::VDS_E_OBJECT_NOT_FOUND,
                format!("LUN {} has no plex {} any more", target.lun, target.plex),
            ));
        };
        p.status = LunPlexStatus::Online;
        p.health = Health::Healthy;
        p.transition_state = TransitionState::Stable;
        rec.lun.health = lun_health(&rec.lun.plexes);
        tracing::info!(lun = %target.lun, plex = %target.plex, health = %rec.lun.health.short_name(),
            "plex regenerated");
        let row = rec.clone();
        let id = target.lun;
        let change = Change::new()
            .store(move |tx| tx.put_lun(&row))
            .apply(move |st| {
                if let Some(e) = st.luns.get_mut(&id) {
                    e.rec = rec;
                }
            })
            .event(ObjectKind::Lun, EventKind::Modify, id);
        self.commit(st, change, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_sets_the_pause() {
        assert_eq!(pause_for(0), Duration::from_millis(15));
        assert_eq!(pause_for(15), Duration::ZERO);
        assert_eq!(pause_for(-4), Duration::from_millis(15));
        assert_eq!(pause_for(99), Duration::ZERO);
        assert!(pause_for(7) > pause_for(8));
    }
}
