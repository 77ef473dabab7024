//! What the data path reports ([`Command::DataPath`](crate::Command::DataPath)): a LU that
//! failed an I/O, and APTPL reservation state to store before the PERSISTENT RESERVE OUT that
//! changed it is acknowledged (see `hooks`), and a write-back cache (WCE) a MODE SELECT
//! changed, which is the LUN's `write_caching_enabled` hint (BEHAVIOUR.md §14), and what the
//! Ceph poller read (RBD LUNs' health from their pools' PGs, `ceph_pools.rs`).

use vds_model::{Hresult, ObjectKind};

use crate::commit::Change;
use crate::hooks::{DataPathMsg, HookMsg};
use crate::{Outcome, Provider, VdsError};

impl Provider {
    pub(super) fn data_path(&self, msg: &DataPathMsg) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        let id = match msg.get() {
            HookMsg::Failed(id, why) => {
                inner.record_failed(st, *id, why);
                *id
            }
            HookMsg::Reservations(id, blob, claim, done) => {
                // A command that stopped waiting has already answered CHECK CONDITION with its
                // state unchanged: writing its blob now would bring the refused change back
                // after a restart.
                if !claim.claim() {
                    return Err(VdsError::new(
                        Hresult::VDS_E_OPERATION_CANCELED,
                        format!("LUN {id}: the PERSISTENT RESERVE OUT stopped waiting"),
                    ));
                }
                let outcome = if st.luns.contains_key(id) {
                    let change = Change::new().store(|tx| tx.set_pr_state(*id, blob));
                    inner.commit(st, change, None).map_err(|err| {
                        format!("cannot store the reservation state: {}", err.message)
                    })
                } else {
                    // The LUN is gone: nothing to keep.
                    Ok(())
                };
                // The PERSISTENT RESERVE OUT completes with this: GOOD only once stored.
                let _ = done.send(outcome);
                *id
            }
            HookMsg::PlexFailed(id, plex, why) => {
                inner.record_plex_failed(st, *id, *plex, why);
                inner.hot_spare(st, *id, *plex);
                *id
            }
            HookMsg::Ceph(view) => {
                inner.record_ceph(st, view.clone());
                return Ok(Outcome::Provider(inner.provider_info(st)));
            }
            HookMsg::WriteCache(id) => {
                if let Some(e) = st.luns.get(id) {
                    let on = e.lu.write_cache();
                    if e.hints.write_caching_enabled != on {
                        let hints = vds_model::LunHints {
                            write_caching_enabled: on,
                            ..e.hints
                        };
                        let change = super::lun_info::hints_change(st, *id, hints)?;
                        inner.commit(st, change, None)?;
                    }
                }
                *id
            }
        };
        st.lookup(ObjectKind::Lun, id, None)?;
        Ok(Outcome::Lun(Box::new(st.lun(id)?.rec.lun.clone())))
    }
}
