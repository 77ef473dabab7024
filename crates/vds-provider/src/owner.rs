//! LUN ownership between gateways (docs/SCALEOUT.md "Ownership, ALUA and failover"): each RBD
//! LUN has one owner gateway, the holder of its lease (`lease/<lun-id>` in the config object,
//! `vds_backstore::rados::Lease`). The owner holds the image's exclusive lock and its
//! controller is Active/Optimized for the LUN; every other gateway's is Active/Non-optimized.
//!
//! One thread per gateway ([`start`]) does all of it, every quarter of the lease time, off the
//! state lock: for each RBD LUN it reads the lease and
//! - renews it when it is this gateway's (same name and same RADOS address), taking the lock
//!   again if a take-over won the lease but not the lock;
//! - takes it when it is free and the LUN was created here (or this gateway is the
//!   subsystem's only one), or when it stayed free for a whole lease time (its creator died);
//! - takes it over when this gateway judged it expired on its own monotonic clock (its value
//!   unchanged for the lease time: `LeaseClock`): compare-and-set to self with the next
//!   generation, blocklist of the old owner, latest OSD map, the exclusive lock
//!   (`vds_backstore::fence::take_over`);
//! - gives it up (removes it, releases the lock) when this gateway's controller is not ONLINE,
//!   so a survivor takes it at once.
//!
//! Ownership moves only through the lease: every gateway's image handle is put in librbd's
//! manual lock mode (`lock_acquire` refused by the live owner still switches it), so no
//! host's I/O on another gateway can steal the lock (no ping-pong). Failback is manual: a
//! gateway set OFFLINE and back ONLINE does not take its LUNs back while their new owner
//! renews.
//!
//! A LUN created with the round-robin load-balance policy is active/active instead: no lease,
//! no owner, its handle never in manual mode (docs/SCALEOUT.md "Active/active LUNs").
//!
//! What the thread learns is the `owners` map of the state (derived, never stored):
//! `State::lun_access_states` gives the owner's controller Active/Optimized through the one
//! state function (`alua::access_states`), and `push_access_states` raises 06/2A/06 on every
//! nexus of a LUN whose owner changed.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use uuid::Uuid;
use vds_backstore::fence::{take_over, TakeOver};
use vds_backstore::rados::{ConfigObject, Lease, LeaseClock};
use vds_backstore::rbd::Cluster;
use vds_backstore::{BackingStore, Filtered};
use vds_model::{BackingKind, ControllerStatus, LoadBalancePolicy};

use crate::engine::Inner;

/// The lease time of a gateway's LUNs: a killed owner's LUNs are
/// taken over about this long after its last renewal (renewals every quarter of it).
pub(crate) const LEASE_TIME: Duration = Duration::from_secs(4);

/// What the thread knows of one LUN between rounds.
#[derive(Default)]
struct Known {
    clock: Option<LeaseClock>,
    /// The lease value this gateway last wrote, while it holds the lease.
    mine: Option<Vec<u8>>,
    /// This gateway holds the image's exclusive lock (with the lease).
    locked: bool,
    /// The image handle was put in manual lock mode.
    manual: bool,
    /// Since when the lease has been seen free.
    free_since: Option<Instant>,
}

/// One RBD LUN as the thread sees it in a round (taken under the state lock, used off it).
struct Target {
    lun: Uuid,
    store: Arc<Filtered>,
    /// Created by this gateway, or this gateway is the subsystem's only one: a free lease is
    /// taken at once.
    first: bool,
    /// Active/active (load-balance policy round robin, chosen at creation): no owner, no
    /// lease, no lock taken here; librbd moves the lock between gateways as they write.
    shared: bool,
}

/// The ownership thread of one gateway.
struct Owner {
    inner: Weak<Inner>,
    object: Arc<ConfigObject>,
    cluster: Arc<Cluster>,
    gateway: String,
    lease_time: Duration,
    known: HashMap<Uuid, Known>,
}

/// Starts the ownership thread of gateway `gateway` (its controller's friendly name), with its
/// leases in `object`. It ends with the provider.
pub(crate) fn start(
    inner: Weak<Inner>,
    object: Arc<ConfigObject>,
    gateway: String,
    lease_time: Duration,
) -> std::io::Result<()> {
    let cluster = vds_backstore::rbd::cluster()?;
    let mut owner = Owner {
        inner,
        object,
        cluster,
        gateway,
        lease_time,
        known: HashMap::new(),
    };
    std::thread::Builder::new()
        .name("vds-owner".into())
        .spawn(move || {
            while owner.round() {
                std::thread::sleep(owner.lease_time / 4);
            }
        })
        .map(|_| ())
}

impl Owner {
    /// One round over every RBD LUN; `false` once the provider is gone.
    fn round(&mut self) -> bool {
        let Some(inner) = self.inner.upgrade() else {
            return false;
        };
        let (targets, online) = {
            let st = inner.state.lock();
            let online = st
                .controllers
                .values()
                .any(|c| c.friendly_name == self.gateway && c.status == ControllerStatus::Online);
            let alone = st.controllers.len() <= 1;
            let targets: Vec<Target> = st
                .luns
                .values()
                .filter(|e| e.rec.lun.backing.kind == BackingKind::Rbd)
                .filter_map(|e| {
                    Some(Target {
                        lun: e.rec.lun.id,
                        store: e.filtered.clone()?,
                        first: alone || st.created_here.contains(&e.rec.lun.id),
                        shared: e.rec.lun.load_balance == LoadBalancePolicy::RoundRobin,
                    })
                })
                .collect();
            (targets, online)
        };
        drop(inner);
        let me = match self.cluster.address() {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "ownership: this gateway's RADOS address");
                return true;
            }
        };
        let present: std::collections::HashSet<Uuid> = targets.iter().map(|t| t.lun).collect();
        let mut seen: Vec<(Target, Vec<u8>)> = Vec::new();
        for t in targets {
            match self.object.lease(&t.lun.to_string()) {
                Ok(v) => seen.push((t, v)),
                Err(e) => tracing::warn!(lun = %t.lun, error = %e, "ownership: reading a lease"),
            }
        }
        let mut owners = HashMap::new();
        for (t, v) in &seen {
            // An active/active LUN's handle never enters manual lock mode (no `lock_acquire`
            // on it), so every gateway may write it; it has no owner.
            let owner = if t.shared {
                None
            } else {
                self.one(t, v, &me, online)
            };
            owners.insert(t.lun, owner);
        }
        self.forget_gone(&present);
        let Some(inner) = self.inner.upgrade() else {
            return false;
        };
        let mut st = inner.state.lock();
        let changed: Vec<Uuid> = owners
            .iter()
            .filter(|(id, o)| st.owners.get(*id) != o.as_ref())
            .map(|(id, _)| *id)
            .collect();
        for id in &changed {
            match owners.remove(id).flatten() {
                Some(o) => st.owners.insert(*id, o),
                None => st.owners.remove(id),
            };
        }
        st.owners.retain(|id, _| present.contains(id));
        if !changed.is_empty() {
            tracing::info!(luns = ?changed, "ownership changed");
            st.push_access_states(changed);
        }
        true
    }

    /// Renews, takes, takes over or gives up one LUN's lease; answers its owner's name as this
    /// gateway now knows it.
    fn one(&mut self, t: &Target, v: &[u8], me: &str, online: bool) -> Option<String> {
        let lun = t.lun.to_string();
        let image = t.store.rbd()?;
        let lease = Lease::decode(v).ok();
        let k = self.known.entry(t.lun).or_default();
        if let Some(l) = lease
            .clone()
            .filter(|l| l.owner == self.gateway && l.addr == me)
        {
            if !online {
                // Given up at once, so that a survivor takes it without waiting.
                if self.object.lease_remove(&lun, v).unwrap_or(false) {
                    let _ = image.lock_release();
                    tracing::warn!(lun, "controller not ONLINE: lease given up");
                    k.mine = None;
                    k.locked = false;
                    return None;
                }
                return Some(l.owner);
            }
            let next = l.renewed();
            match self.object.lease_cas(&lun, v, &next) {
                Ok(true) => {
                    k.mine = Some(next.encode());
                    if !k.locked {
                        // A take-over that won the lease but not yet the lock.
                        match image.lock_acquire() {
                            Ok(()) => k.locked = true,
                            Err(e) => tracing::warn!(lun, error = %e, "the owner's lock"),
                        }
                    }
                    return Some(l.owner);
                }
                Ok(false) => {
                    tracing::error!(lun, "lease renewal lost: another gateway took this LUN");
                    k.mine = None;
                    return self
                        .object
                        .lease(&lun)
                        .ok()
                        .and_then(|v| Lease::decode(&v).ok())
                        .map(|l| l.owner);
                }
                Err(e) if vds_backstore::fence::is_fenced(&e) => {
                    // Blocklisted: another gateway took the LUN. This one can no longer read
                    // who: it reports no controller optimized (its writes answer 02/04/0A).
                    tracing::error!(lun, "this gateway is fenced: the LUN was taken over");
                    k.mine = None;
                    return Some(String::new());
                }
                Err(e) => {
                    tracing::warn!(lun, error = %e, "lease renewal failed");
                    return Some(l.owner);
                }
            }
        }
        k.mine = None;
        let clock = k
            .clock
            .get_or_insert_with(|| LeaseClock::new(self.lease_time));
        let expired = clock.observe(v, Instant::now());
        let take = online
            && if v.is_empty() {
                let since = *k.free_since.get_or_insert_with(Instant::now);
                t.first || since.elapsed() >= self.lease_time
            } else {
                k.free_since = None;
                expired
            };
        if !take {
            if !k.manual && lease.is_some() {
                // The live owner refuses: the refusal still puts this handle in manual mode,
                // so no I/O here ever requests or steals the lock.
                match image.lock_acquire() {
                    Ok(()) => {
                        let _ = image.lock_release();
                    }
                    Err(e) => {
                        tracing::debug!(lun, error = %e, "manual lock mode (refused, as expected)")
                    }
                }
                k.manual = true;
            }
            return lease.map(|l| l.owner);
        }
        match take_over(&self.object, &self.cluster, image, &lun, v, &self.gateway) {
            Ok(TakeOver::Won(l)) => {
                tracing::warn!(
                    lun,
                    generation = l.generation,
                    "this gateway owns the LUN now"
                );
                k.mine = Some(l.encode());
                k.manual = true;
                k.locked = true;
                k.free_since = None;
                Some(l.owner)
            }
            Ok(TakeOver::Lost) => self
                .object
                .lease(&lun)
                .ok()
                .and_then(|v| Lease::decode(&v).ok())
                .map(|l| l.owner),
            Err(e) => {
                tracing::error!(lun, error = %e, "take-over failed");
                lease.map(|l| l.owner)
            }
        }
    }

    /// Removes the leases this gateway holds for LUNs that are gone.
    fn forget_gone(&mut self, present: &std::collections::HashSet<Uuid>) {
        let gone: Vec<Uuid> = self
            .known
            .keys()
            .filter(|id| !present.contains(id))
            .copied()
            .collect();
        for id in gone {
            if let Some(Some(v)) = self.known.remove(&id).map(|k| k.mine) {
                let _ = self.object.lease_remove(&id.to_string(), &v);
            }
        }
    }
}
