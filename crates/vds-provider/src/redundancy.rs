//! Health follows facts (BEHAVIOUR.md §15): a composite LUN's health is derived from its
//! plexes, and a plex that failed an I/O is recorded as failed while the LUN goes on serving
//! from the others.

use uuid::Uuid;
use vds_model::{Health, LunPlex, LunPlexStatus};

use crate::engine::Inner;
use crate::state::State;

/// A LUN's health from its plexes: `failed` with no working plex, `rebuilding` while one is
/// regenerated, `failed_redundancy` while one is failed or stale, else `healthy`.
pub(crate) fn lun_health(plexes: &[LunPlex]) -> Health {
    let working = |p: &&LunPlex| p.status == LunPlexStatus::Online && p.health == Health::Healthy;
    let n_working = plexes.iter().filter(working).count();
    if n_working == 0 {
        Health::Failed
    } else if plexes.iter().any(|p| p.health == Health::Rebuilding) {
        Health::Rebuilding
    } else if n_working < plexes.len() {
        Health::FailedRedundancy
    } else {
        Health::Healthy
    }
}

impl Inner {
    /// Plex `plex` of LUN `id` failed an I/O (`why`): the plex is FAILED, the LUN's health is
    /// derived again, and one MODIFY event says so. Kept in memory and announced even when the
    /// store cannot take it (the next start finds the plex failing again). The LUN's status is
    /// not touched here: with no working plex left the LU fails the command and reports that
    /// itself (`record_failed`).
    pub(crate) fn record_plex_failed(&self, st: &mut State, id: Uuid, plex: usize, why: &str) {
        let Some(e) = st.luns.get(&id) else { return };
        let Some(p) = e.rec.lun.plexes.get(plex) else {
            tracing::error!(lun = %id, plex, "a plex the LUN does not have reported a failure");
            return;
        };
        if p.status == LunPlexStatus::Failed {
            return;
        }
        tracing::warn!(lun = %id, plex = %p.id, error = %why, "plex failed an I/O; plex FAILED");
        let mut rec = e.rec.clone();
        rec.lun.plexes[plex].status = LunPlexStatus::Failed;
        rec.lun.plexes[plex].health = Health::Failed;
        rec.lun.health = lun_health(&rec.lun.plexes);
        self.record_fact(st, rec, "the failed plex");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vds_model::{LunPlexType, TransitionState};

    fn plex(status: LunPlexStatus, health: Health) -> LunPlex {
        LunPlex {
            id: Uuid::new_v4(),
            size_bytes: 1 << 20,
            plex_type: LunPlexType::Simple,
            status,
            health,
            transition_state: TransitionState::Stable,
            flags: 0,
            stripe_size: 0,
            rebuild_priority: 0,
        }
    }

    #[test]
    fn health_is_derived_from_the_plexes() {
        use Health::*;
        use LunPlexStatus::{Failed as PFailed, Online};
        let ok = || plex(Online, Healthy);
        assert_eq!(lun_health(&[ok(), ok()]), Healthy);
        assert_eq!(lun_health(&[ok(), plex(PFailed, Failed)]), FailedRedundancy);
        assert_eq!(lun_health(&[ok(), plex(Online, Stale)]), FailedRedundancy);
        assert_eq!(lun_health(&[ok(), plex(Online, Rebuilding)]), Rebuilding);
        assert_eq!(lun_health(&[plex(PFailed, Failed)]), Failed);
        assert_eq!(lun_health(&[ok()]), Healthy);
    }
}
