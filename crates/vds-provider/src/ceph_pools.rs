//! Ceph pools as storage pools, and RBD LUNs' type, plexes and health from Ceph
//! (docs/SCALEOUT.md "Ceph pools", BEHAVIOUR.md "RBD LUNs").
//!
//! With a cluster connected, every Ceph pool with the `rbd` application, or holding a vds
//! LUN, is a storage pool derived like the primordial pool: its id from the cluster's fsid and
//! the pool's id (Ceph never reuses one), never stored. What Ceph says is fetched outside the
//! state lock ([`fetch`]: the poller every [`POLL`], and Refresh) and recorded through the
//! provider's one commit path ([`Inner::record_ceph`], reached as `Command::DataPath`, which
//! the API cannot forge): each RBD LUN whose type, plexes or health changed is stored with one
//! MODIFY event; a pool Ceph no longer has departs (its id a tombstone).

use std::sync::{Arc, Weak};
use std::time::Duration;

use uuid::Uuid;
use vds_backstore::ceph::{PoolReport, Replication};
use vds_model::{
    BackingKind, EventKind, Health, Lun, LunPlex, LunPlexStatus, LunPlexType, LunType, ObjectKind,
    PoolAttributes, RaidType, StoragePool, StoragePoolStatus, StoragePoolType,
};

use crate::command::BackingSpec;
use crate::commit::Change;
use crate::engine::{Inner, BLOCK_SIZE};
use crate::state::State;
use crate::VdsError;

/// How often the poller asks Ceph (each ask is bounded by `rados_mon_op_timeout`, 10 s).
pub(crate) const POLL: Duration = Duration::from_secs(2);

/// What the cluster said at one poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CephView {
    /// The cluster's fsid.
    pub fsid: Uuid,
    /// Every pool, in Ceph id order.
    pub pools: Vec<PoolReport>,
}

/// Asks the daemon's cluster now (`None`: no cluster is connected). Blocks for at most the
/// monitor timeout: never call it holding the state lock.
pub(crate) fn fetch() -> Option<std::io::Result<CephView>> {
    let c = vds_backstore::rbd::cluster().ok()?;
    let fsid = match c.fsid() {
        Ok(f) => f,
        Err(e) => return Some(Err(e)),
    };
    let Ok(fsid) = Uuid::parse_str(&fsid) else {
        return Some(Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the cluster's fsid {fsid:?} is not a UUID"),
        )));
    };
    Some(c.pool_reports().map(|pools| CephView { fsid, pools }))
}

/// What a cluster's fsid is xored with, before the pool id, to make a pool's storage-pool id.
const POOL_MASK: u128 = 0x4345_5048_0000_0000_0050_4f4f_4c00_0000;

/// The storage-pool id of Ceph pool `pool` of cluster `fsid`.
pub(crate) fn pool_id(fsid: Uuid, pool: i64) -> Uuid {
    Uuid::from_u128(fsid.as_u128() ^ POOL_MASK ^ u128::from(pool as u64))
}

/// The health of placement groups in these states: any not `active` → failed; else any
/// degraded or undersized and not recovering → failed_redundancy; else any recovering or
/// backfilling → rebuilding; else healthy. (A PG that is `stale` is not known to be active.)
pub(crate) fn pg_health<S: AsRef<str>>(states: &[S]) -> Health {
    let mut worst = Health::Healthy;
    for s in states {
        let flags: Vec<&str> = s.as_ref().split('+').collect();
        let has = |f: &str| flags.contains(&f);
        let h = if !has("active") || has("stale") {
            Health::Failed
        } else if flags
            .iter()
            .any(|f| f.starts_with("recover") || f.starts_with("backfill"))
        {
            Health::Rebuilding
        } else if has("degraded") || has("undersized") {
            Health::FailedRedundancy
        } else {
            Health::Healthy
        };
        worst = match (worst, h) {
            (Health::Failed, _) | (_, Health::Failed) => Health::Failed,
            (Health::FailedRedundancy, _) | (_, Health::FailedRedundancy) => {
                Health::FailedRedundancy
            }
            (Health::Rebuilding, _) | (_, Health::Rebuilding) => Health::Rebuilding,
            _ => Health::Healthy,
        };
    }
    worst
}

/// A pool's health: its PGs' (a pool with no PG reported yet is not serving: failed).
fn pool_health(p: &PoolReport) -> Health {
    if p.pg_states.is_empty() {
        Health::Failed
    } else {
        pg_health(&p.pg_states)
    }
}

/// The LUN type a pool's replication makes: mirror from 2 copies, parity when erasure-coded.
fn lun_type_of(r: Replication) -> LunType {
    match r {
        Replication::Replicated { size, .. } if size >= 2 => LunType::Mirror,
        Replication::Replicated { .. } => LunType::Simple,
        Replication::Erasure { .. } => LunType::Parity,
    }
}

/// The RBD LUNs' pool names (`backing.path` is `pool/image`).
fn pool_of(lun: &Lun) -> Option<&str> {
    (lun.backing.kind == BackingKind::Rbd)
        .then(|| lun.backing.path.as_deref()?.split_once('/').map(|(p, _)| p))
        .flatten()
}

/// Whether `p` is a storage pool: the `rbd` application, or a vds LUN in it.
fn listed(st: &State, p: &PoolReport) -> bool {
    p.applications.iter().any(|a| a == "rbd")
        || st
            .luns
            .values()
            .any(|e| pool_of(&e.rec.lun) == Some(p.name.as_str()))
}

/// The Ceph pools that are storage pools now, in Ceph id order.
fn listed_pools(st: &State) -> Vec<&PoolReport> {
    let Some(v) = &st.ceph else { return Vec::new() };
    v.pools.iter().filter(|p| listed(st, p)).collect()
}

/// The storage-pool ids of the Ceph pools, in Ceph id order.
pub(crate) fn pool_ids(st: &State) -> Vec<Uuid> {
    let Some(v) = &st.ceph else { return Vec::new() };
    listed_pools(st)
        .into_iter()
        .map(|p| pool_id(v.fsid, p.id))
        .collect()
}

/// The Ceph pool whose storage-pool id is `id`.
pub(crate) fn report(st: &State, id: Uuid) -> Option<&PoolReport> {
    let fsid = st.ceph.as_ref()?.fsid;
    listed_pools(st)
        .into_iter()
        .find(|p| pool_id(fsid, p.id) == id)
}

/// The subsystem Ceph pools belong to: the array's (the lowest id when there are several).
fn subsystem_of(st: &State) -> Uuid {
    st.subsystems.keys().min().copied().unwrap_or_default()
}

/// Ceph pool `id` as a storage pool, its figures from the last poll: total = stored +
/// max_avail, consumed = stored, remaining = max_avail, provisioned = the sizes of the vds
/// LUNs in it.
pub(crate) fn pool_view(st: &State, id: Uuid) -> Option<StoragePool> {
    let p = report(st, id)?;
    let health = pool_health(p);
    let lun_type = lun_type_of(p.replication);
    let (what, size) = match p.replication {
        Replication::Replicated { size, .. } => ("replicated", size),
        Replication::Erasure { size, .. } => ("erasure-coded", size),
    };
    let provisioned = st
        .luns
        .values()
        .filter(|e| pool_of(&e.rec.lun) == Some(p.name.as_str()))
        .map(|e| e.rec.lun.size_bytes)
        .sum();
    let total = p.stored.saturating_add(p.max_avail);
    Some(StoragePool {
        id,
        subsystem: subsystem_of(st),
        name: p.name.clone(),
        description: format!("Ceph pool {} ({what}, size {size})", p.id),
        pool_type: StoragePoolType::Concrete,
        status: if health == Health::Failed {
            StoragePoolStatus::Offline
        } else {
            StoragePoolStatus::Online
        },
        health,
        drives: Vec::new(),
        default_type: lun_type,
        attributes: PoolAttributes {
            raid_type: match p.replication {
                Replication::Replicated { size, .. } if size >= 2 => Some(RaidType::Raid1),
                Replication::Replicated { .. } => None,
                Replication::Erasure { size, min_size } if size.saturating_sub(min_size) >= 2 => {
                    Some(RaidType::Raid6)
                }
                Replication::Erasure { .. } => Some(RaidType::Raid5),
            },
            thin_provisioned: Some(true),
            no_single_point_of_failure: Some(size >= 2),
            ..PoolAttributes::default()
        },
        total_managed: total,
        consumed: p.stored,
        remaining: p.max_avail,
        provisioned,
        overcommitted: provisioned > total,
    })
}

/// The largest LUN a create in Ceph pool `id` gets: its max_avail in whole blocks.
pub(crate) fn max_size(st: &State, id: Uuid) -> Option<u64> {
    report(st, id).map(|p| p.max_avail / BLOCK_SIZE * BLOCK_SIZE)
}

/// The id of plex `i` (from 1) of an RBD LUN whose plex 0 is `first`: derived, so stable.
fn replica_plex_id(first: Uuid, i: usize) -> Uuid {
    Uuid::from_u128(first.as_u128() ^ 0x5245_504c_4943_4100_0000_0000_0000_0000 ^ i as u128)
}

/// Gives RBD LUN `lun` the type, plexes and health its pool says (`None`: its pool is gone,
/// the LUN is failed): one plex per replica of a replicated pool of size 2 or more, each
/// reporting the LUN's health; one plex otherwise. Plex 0 keeps its id.
pub(crate) fn shape(p: Option<&PoolReport>, lun: &mut Lun) {
    let (lun_type, copies, health) = match p {
        Some(p) => {
            let t = lun_type_of(p.replication);
            let n = match p.replication {
                Replication::Replicated { size, .. } if size >= 2 => size as usize,
                _ => 1,
            };
            (t, n, pool_health(p))
        }
        None => (lun.lun_type, lun.plexes.len().max(1), Health::Failed),
    };
    let Some(first) = lun.plexes.first().cloned() else {
        return;
    };
    let plex_type = if lun_type == LunType::Parity {
        LunPlexType::Parity
    } else {
        LunPlexType::Simple
    };
    let plex = |id| LunPlex {
        id,
        size_bytes: lun.size_bytes,
        plex_type,
        status: if health == Health::Failed {
            LunPlexStatus::Failed
        } else {
            LunPlexStatus::Online
        },
        health,
        ..first.clone()
    };
    lun.plexes = (0..copies)
        .map(|i| {
            plex(if i == 0 {
                first.id
            } else {
                replica_plex_id(first.id, i)
            })
        })
        .collect();
    lun.lun_type = lun_type;
    lun.health = health;
}

/// The report of the pool RBD LUN `lun` is in, from the last poll.
pub(crate) fn pool_report_of<'a>(st: &'a State, lun: &Lun) -> Option<&'a PoolReport> {
    let name = pool_of(lun)?;
    st.ceph.as_ref()?.pools.iter().find(|p| p.name == name)
}

/// The LUNs in Ceph pool `id` (in creation order), if it is one.
pub(crate) fn luns_in(st: &State, id: Uuid) -> Option<Vec<Lun>> {
    let name = report(st, id)?.name.clone();
    let mut v: Vec<(u64, Lun)> = st
        .luns
        .values()
        .filter(|e| pool_of(&e.rec.lun) == Some(name.as_str()))
        .map(|e| (e.seq, e.rec.lun.clone()))
        .collect();
    v.sort_by_key(|(s, _)| *s);
    Some(v.into_iter().map(|(_, l)| l).collect())
}

/// Judges the type asked of a LUN in Ceph pool `p`: none, `default`, the pool's own type, or
/// the automagic type it satisfies (`fault_tolerant` for mirror or parity,
/// `non_fault_tolerant` for simple); the pool's replication decides, so any other is
/// `VDS_E_NOT_SUPPORTED`. `plexes`, `stripe_size` and `drives` are the extents' arguments.
pub(crate) fn check_create(
    p: &PoolReport,
    lun_type: Option<LunType>,
    drives: bool,
    plexes: bool,
    stripe_size: bool,
) -> Result<(), VdsError> {
    for (given, field) in [
        (drives, "drives"),
        (plexes, "plexes"),
        (stripe_size, "stripe_size"),
    ] {
        if given {
            return Err(VdsError::invalid_arg(
                field,
                format!(
                    "a LUN in Ceph pool {} is an RBD image; Ceph places it",
                    p.name
                ),
            ));
        }
    }
    let own = lun_type_of(p.replication);
    match lun_type {
        None | Some(LunType::Default) => Ok(()),
        Some(t) if t == own => Ok(()),
        Some(LunType::FaultTolerant) if own != LunType::Simple => Ok(()),
        Some(LunType::NonFaultTolerant) if own == LunType::Simple => Ok(()),
        Some(t) => Err(VdsError::not_supported(format!(
            "type: Ceph pool {} makes {} LUNs (its replication decides), not {}",
            p.name,
            own.short_name(),
            t.short_name()
        ))),
    }
}

/// The backing of a LUN made in Ceph pool `p`: the caller's `rbd` backing in this pool (its
/// pool may be left out), or a new image `vds-<uuid>`.
pub(crate) fn backing_in(
    p: &PoolReport,
    given: Option<BackingSpec>,
) -> Result<BackingSpec, VdsError> {
    let mut b = given.unwrap_or(BackingSpec {
        kind: BackingKind::Rbd,
        image: Some(format!("vds-{}", Uuid::new_v4().simple())),
        ..BackingSpec::default()
    });
    if b.kind != BackingKind::Rbd {
        return Err(VdsError::invalid_arg(
            "backing.kind",
            format!(
                "a LUN in Ceph pool {} is an rbd image, not {}",
                p.name,
                b.kind.short_name()
            ),
        ));
    }
    match &b.pool {
        Some(n) if *n != p.name => {
            return Err(VdsError::invalid_arg(
                "backing.pool",
                format!("{n:?} is not this pool ({:?})", p.name),
            ))
        }
        _ => b.pool = Some(p.name.clone()),
    }
    if b.image.is_none() {
        b.image = Some(format!("vds-{}", Uuid::new_v4().simple()));
    }
    Ok(b)
}

impl Inner {
    /// Records what Ceph said: pools gone from the cluster depart (their ids tombstones), and
    /// each RBD LUN whose type, plexes or health changed is stored with one MODIFY event.
    pub(crate) fn record_ceph(&self, st: &mut State, view: CephView) {
        let gone: Vec<Uuid> = match &st.ceph {
            Some(old) if old.fsid == view.fsid => listed_pools(st)
                .into_iter()
                .filter(|p| !view.pools.iter().any(|n| n.id == p.id))
                .map(|p| pool_id(old.fsid, p.id))
                .collect(),
            _ => Vec::new(),
        };
        st.ceph = Some(Arc::new(view));
        for id in gone {
            tracing::warn!(pool = %id, "a Ceph pool is gone; its storage pool departs");
            let change = Change::new()
                .store(move |tx| tx.add_tombstone(id, ObjectKind::Pool))
                .apply(move |st| {
                    st.tombstones.insert(id, ObjectKind::Pool);
                })
                .event(ObjectKind::Pool, EventKind::Depart, id);
            if let Err(e) = self.commit(st, change, None) {
                tracing::error!(pool = %id, error = %e.message, "cannot record a departed pool");
            }
        }
        let mut ids: Vec<(u64, Uuid)> = st
            .luns
            .values()
            .filter(|e| e.rec.lun.backing.kind == BackingKind::Rbd)
            .map(|e| (e.seq, e.rec.lun.id))
            .collect();
        ids.sort();
        for (_, id) in ids {
            // A LUN being changed by a call waits for the next poll.
            if st.busy.contains(&id) {
                continue;
            }
            let e = &st.luns[&id];
            let mut rec = e.rec.clone();
            shape(pool_report_of(st, &rec.lun), &mut rec.lun);
            if rec.lun == e.rec.lun {
                continue;
            }
            tracing::info!(lun = %id, health = rec.lun.health.short_name(), lun_type = rec.lun.lun_type.short_name(), plexes = rec.lun.plexes.len(), "an RBD LUN's pool changed");
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
                tracing::error!(lun = %id, error = %e.message, "cannot record an RBD LUN's health");
            }
        }
    }
}

/// Starts the poller of a provider whose daemon has a cluster (nothing otherwise): every
/// [`POLL`] it fetches what Ceph says, off the state lock, and hands it to the provider as a
/// data-path report. It ends with the provider.
pub(crate) fn start_poller(inner: Weak<Inner>) -> std::io::Result<()> {
    if vds_backstore::rbd::cluster().is_err() {
        return Ok(());
    }
    std::thread::Builder::new()
        .name("vds-ceph-poll".into())
        .spawn(move || loop {
            let got = fetch();
            let Some(inner) = inner.upgrade() else { return };
            match got {
                Some(Ok(view)) => inner.hooks.report_ceph(view),
                Some(Err(e)) => tracing::warn!(error = %e, "cannot read Ceph's pools"),
                None => return,
            }
            drop(inner);
            std::thread::sleep(POLL);
        })
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_states_make_health() {
        use Health::*;
        assert_eq!(pg_health(&["active+clean", "active+clean"]), Healthy);
        assert_eq!(pg_health::<&str>(&[]), Healthy);
        assert_eq!(
            pg_health(&["active+clean", "active+undersized+degraded"]),
            FailedRedundancy
        );
        assert_eq!(pg_health(&["active+undersized"]), FailedRedundancy);
        assert_eq!(pg_health(&["active+recovering+degraded"]), Rebuilding);
        assert_eq!(
            pg_health(&["active+undersized+degraded+remapped+backfilling"]),
            Rebuilding
        );
        assert_eq!(pg_health(&["active+recovery_wait+degraded"]), Rebuilding);
        assert_eq!(
            pg_health(&["active+recovering", "active+undersized+degraded"]),
            FailedRedundancy,
            "a PG that cannot recover outweighs one that is"
        );
        assert_eq!(
            pg_health(&["active+clean", "undersized+degraded+peered"]),
            Failed
        );
        assert_eq!(pg_health(&["peering"]), Failed);
        assert_eq!(pg_health(&["stale+active+clean"]), Failed);
        assert_eq!(pg_health(&["unknown"]), Failed);
        // "inactive" is a word, not the flag "active".
        assert_eq!(pg_health(&["inactive"]), Failed);
    }

    fn report(replication: Replication, states: &[&str]) -> PoolReport {
        PoolReport {
            id: 7,
            name: "vds".into(),
            replication,
            applications: vec!["rbd".into()],
            stored: 0,
            bytes_used: 0,
            max_avail: 1 << 30,
            pg_states: states.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn pool_ids_are_stable_and_distinct() {
        let fsid = Uuid::new_v4();
        assert_eq!(pool_id(fsid, 1), pool_id(fsid, 1));
        assert_ne!(pool_id(fsid, 1), pool_id(fsid, 2));
        assert_ne!(pool_id(fsid, 1), pool_id(Uuid::new_v4(), 1));
    }

    #[test]
    fn replication_shapes_an_rbd_lun() {
        let mut lun = crate::engine::new_lun_model(
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            "l".into(),
            1 << 20,
            "*".into(),
            LunType::Simple,
            true,
            Vec::new(),
            vds_model::Backing {
                kind: BackingKind::Rbd,
                path: Some("vds/img".into()),
            },
            Vec::new(),
        );
        let first = lun.plexes[0].id;
        let r2 = Replication::Replicated {
            size: 3,
            min_size: 1,
        };
        shape(Some(&report(r2, &["active+clean"])), &mut lun);
        assert_eq!(lun.lun_type, LunType::Mirror);
        assert_eq!(lun.plexes.len(), 3);
        assert_eq!(lun.plexes[0].id, first);
        assert_eq!(lun.health, Health::Healthy);
        let again = lun.clone();
        shape(Some(&report(r2, &["active+clean"])), &mut lun);
        assert_eq!(
            lun, again,
            "the same report changes nothing (plex ids derived)"
        );
        shape(Some(&report(r2, &["active+undersized+degraded"])), &mut lun);
        assert_eq!(lun.health, Health::FailedRedundancy);
        assert!(lun
            .plexes
            .iter()
            .all(|p| p.health == Health::FailedRedundancy));
        let r1 = Replication::Replicated {
            size: 1,
            min_size: 1,
        };
        shape(Some(&report(r1, &["active+clean"])), &mut lun);
        assert_eq!(
            (lun.lun_type, lun.plexes.len(), lun.health),
            (LunType::Simple, 1, Health::Healthy)
        );
        assert_eq!(lun.plexes[0].id, first);
        let ec = Replication::Erasure {
            size: 3,
            min_size: 2,
        };
        shape(Some(&report(ec, &["peering"])), &mut lun);
        assert_eq!(
            (lun.lun_type, lun.plexes[0].plex_type, lun.health),
            (LunType::Parity, LunPlexType::Parity, Health::Failed)
        );
        assert_eq!(lun.plexes[0].status, LunPlexStatus::Failed);
        shape(None, &mut lun);
        assert_eq!(lun.health, Health::Failed, "a pool that is gone");
    }
}
