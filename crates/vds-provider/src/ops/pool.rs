//! Storage pools (BEHAVIOUR.md §15; `IVdsHwProviderStoragePools`, `IVdsStoragePool`): the
//! primordial pool of each subsystem (every added drive that is not a hot spare; its id
//! derived from the subsystem's), named pools (create, delete, their drives and LUNs), the
//! `VDS_STORAGE_POOL_PROP` figures derived from the drives and their extents, CreateLun in a
//! pool (its drives chosen among the pool's) and the exact maxima (QueryMaxLunCreateSize,
//! QueryMaxLunCreateSizeInStoragePool), found by the allocator itself (`extents::max_size`).

use std::path::Path;

use uuid::Uuid;
use vds_model::{
    Drive, DriveFlag, DriveKind, DriveStatus, Health, Hresult, Lun, LunType, ObjectKind,
    PoolAttributes, StoragePool, StoragePoolStatus, StoragePoolType,
};

use crate::command::{CreateLunArgs, MaxSizeArgs, PoolArgs};
use crate::commit::Change;
use crate::extents::{self, Request};
use crate::state::State;
use crate::{Outcome, Provider, VdsError};

use super::check_name;

/// What a subsystem's id is xored with to make its primordial pool's: derived, so the same
/// after every restart; the version and variant bits are left as the subsystem's.
const PRIMORDIAL_MASK: u128 = 0x7052_494d_4f52_0000_0044_4941_4c50_4f4f;

/// How a primordial pool's name starts (a named pool's never does).
const PRIMORDIAL_PREFIX: &str = "primordial-";

/// The id of `subsystem`'s primordial pool.
pub(crate) fn primordial_id(subsystem: Uuid) -> Uuid {
    Uuid::from_u128(subsystem.as_u128() ^ PRIMORDIAL_MASK)
}

/// The subsystem whose primordial pool `id` is, if it is one.
pub(crate) fn primordial_of(st: &State, id: Uuid) -> Option<Uuid> {
    st.subsystems
        .keys()
        .copied()
        .find(|s| primordial_id(*s) == id)
}

/// The drives of the primordial pool of `subsystem`, in bus/slot order.
fn primordial_drives(st: &State, data_dir: &Path, subsystem: Uuid) -> Vec<Uuid> {
    let mut v: Vec<&Drive> = st
        .drives
        .values()
        .filter(|d| {
            d.subsystem == subsystem
                && d.flags & DriveFlag::Hotspare.value() == 0
                && !super::drive::is_data_dir_drive(d, data_dir)
        })
        .collect();
    v.sort_by_key(|d| (d.bus_number, d.slot_number));
    v.into_iter().map(|d| d.id).collect()
}

/// The bytes a thin extent file really holds (`st_blocks * 512`), at most its size; a file
/// that cannot be read counts whole.
fn allocated(d: &Drive, lun: &Lun, x: &vds_model::Extent) -> u64 {
    use std::os::unix::fs::MetadataExt;
    if d.kind != DriveKind::Dir || !lun.thin {
        return x.size;
    }
    match std::fs::symlink_metadata(extents::extent_file(d, lun.id, x)) {
        Ok(m) => (m.blocks() * 512).min(x.size),
        Err(_) => x.size,
    }
}

/// The pool `id` with its figures, derived now (`None`: no such pool).
pub(crate) fn pool_view(st: &State, data_dir: &Path, id: Uuid) -> Option<StoragePool> {
    let mut p = match st.pools.get(&id) {
        Some((p, _)) => p.clone(),
        None => {
            let Some(sub) = primordial_of(st, id) else {
                return crate::ceph_pools::pool_view(st, id);
            };
            StoragePool {
                id,
                subsystem: sub,
                name: format!("{PRIMORDIAL_PREFIX}{}", &sub.simple().to_string()[..8]),
                description: "every added drive of the subsystem that is not a hot spare".into(),
                pool_type: StoragePoolType::Primordial,
                status: StoragePoolStatus::Online,
                health: Health::Healthy,
                drives: primordial_drives(st, data_dir, sub),
                default_type: LunType::Default,
                attributes: PoolAttributes::default(),
                total_managed: 0,
                consumed: 0,
                remaining: 0,
                provisioned: 0,
                overcommitted: false,
            }
        }
    };
    let (mut total, mut consumed, mut provisioned, mut remaining) = (0u64, 0u64, 0u64, 0u64);
    let mut online = 0;
    for d in p.drives.iter().filter_map(|d| st.drives.get(d)) {
        total += d.size_bytes;
        let used = extents::extents_on(st, d.id);
        let placed: u64 = used.iter().map(|(_, x)| x.size).sum();
        provisioned += placed;
        remaining += extents::free_bytes(st, d);
        consumed += used
            .iter()
            .map(|(l, x)| match st.luns.get(l) {
                Some(e) => allocated(d, &e.rec.lun, x),
                None => x.size,
            })
            .sum::<u64>();
        if d.status == DriveStatus::Online {
            online += 1;
        }
    }
    p.total_managed = total;
    p.consumed = consumed;
    p.remaining = remaining;
    p.provisioned = provisioned;
    p.overcommitted = provisioned > total;
    (p.status, p.health) = if p.drives.is_empty() || online == p.drives.len() {
        (StoragePoolStatus::Online, Health::Healthy)
    } else if online > 0 {
        (StoragePoolStatus::Online, Health::Degraded)
    } else {
        (StoragePoolStatus::Offline, Health::Failed)
    };
    Some(p)
}

/// The LUNs with an extent on one of `drives`, in creation order.
fn luns_on(st: &State, drives: &[Uuid]) -> Vec<Lun> {
    let mut v: Vec<(u64, Lun)> = st
        .luns
        .values()
        .filter(|e| {
            drives
                .iter()
                .any(|d| extents::lun_uses_drive(&e.rec.lun, *d))
        })
        .filter(|e| e.rec.lun.backing.kind == vds_model::BackingKind::Extents)
        .map(|e| (e.seq, e.rec.lun.clone()))
        .collect();
    v.sort_by_key(|(s, _)| *s);
    v.into_iter().map(|(_, l)| l).collect()
}

/// The named pool drive `id` is in, if any.
pub(crate) fn named_pool_of(st: &State, id: Uuid) -> Option<Uuid> {
    st.pools
        .values()
        .find(|(p, _)| p.drives.contains(&id))
        .map(|(p, _)| p.id)
}

/// The drives a create in `pool` gets when the caller names none: those of the pool that can
/// take an extent (ONLINE, not a hot spare), the roomiest first (then by bus and slot), as
/// many as the type needs (simple 1, mirror its plexes, RAID-10 twice its plexes, span and
/// stripe every one).
fn choose_drives(st: &State, pool: &StoragePool, req: &Request) -> Vec<Uuid> {
    let mut v: Vec<&Drive> = pool
        .drives
        .iter()
        .filter_map(|d| st.drives.get(d))
        .filter(|d| d.status == DriveStatus::Online && d.flags & DriveFlag::Hotspare.value() == 0)
        .collect();
    v.sort_by_key(|d| {
        (
            std::cmp::Reverse(extents::largest_free(st, d)),
            d.bus_number,
            d.slot_number,
        )
    });
    let n = match req.lun_type {
        LunType::Simple => 1,
        LunType::Mirror => req.plexes.unwrap_or(2) as usize,
        LunType::Raid10 => 2 * req.plexes.unwrap_or(2) as usize,
        _ => v.len(),
    };
    v.into_iter().take(n).map(|d| d.id).collect()
}

impl Provider {
    /// The pool `id` after steps 1-3.
    fn pool_call(&self, st: &mut State, id: Uuid) -> Result<StoragePool, VdsError> {
        self.inner.object_call(st, ObjectKind::Pool, id)?;
        pool_view(st, &self.inner.config.data_dir, id).ok_or_else(|| {
            VdsError::new(
                Hresult::VDS_E_PROVIDER_CACHE_CORRUPT,
                format!("storage pool {id} is missing from the cache"),
            )
        })
    }

    /// `GET /v1/pools/{id}` (`IVdsStoragePool::GetProperties`, `GetAttributes`).
    pub(super) fn get_pool(&self, id: Uuid) -> Result<Outcome, VdsError> {
        let mut st = self.inner.state.lock();
        Ok(Outcome::Pool(Box::new(self.pool_call(&mut st, id)?)))
    }

    /// `GET /v1/subsystems/{id}/pools` (`QueryStoragePools`): the primordial pool first, then
    /// the named pools in creation order, then the Ceph pools in Ceph's id order.
    pub(super) fn list_pools(&self, subsystem: Uuid) -> Result<Outcome, VdsError> {
        let mut st = self.inner.state.lock();
        self.inner
            .object_call(&mut st, ObjectKind::Subsystem, subsystem)?;
        let dd = &self.inner.config.data_dir;
        let mut named: Vec<(u64, Uuid)> = st
            .pools
            .values()
            .filter(|(p, _)| p.subsystem == subsystem)
            .map(|(p, s)| (*s, p.id))
            .collect();
        named.sort();
        let ids = std::iter::once(primordial_id(subsystem))
            .chain(named.into_iter().map(|x| x.1))
            .chain(crate::ceph_pools::pool_ids(&st));
        Ok(Outcome::Pools(
            ids.filter_map(|id| pool_view(&st, dd, id))
                .filter(|p| p.subsystem == subsystem)
                .collect(),
        ))
    }

    /// `GET /v1/pools/{id}/drives`: the pool's drives, in its order.
    pub(super) fn pool_drives(&self, id: Uuid) -> Result<Outcome, VdsError> {
        let mut st = self.inner.state.lock();
        let p = self.pool_call(&mut st, id)?;
        Ok(Outcome::Drives(
            p.drives
                .iter()
                .filter_map(|d| st.drives.get(d).cloned())
                .collect(),
        ))
    }

    /// `GET /v1/pools/{id}/drive-extents` (`QueryDriveExtents`): every used and free range of
    /// every drive of the pool, in the pool's drive order, each as the drive's own
    /// `QueryExtents` answers it.
    pub(super) fn pool_drive_extents(&self, id: Uuid) -> Result<Outcome, VdsError> {
        let mut st = self.inner.state.lock();
        let p = self.pool_call(&mut st, id)?;
        Ok(Outcome::PoolDriveExtents(
            p.drives
                .iter()
                .flat_map(|d| {
                    super::plex::drive_ranges(&st, *d)
                        .into_iter()
                        .map(move |r| (*d, r))
                })
                .collect(),
        ))
    }

    /// `GET /v1/pools/{id}/luns` (`QueryAllocatedLuns`): the LUNs with an extent on one of
    /// the pool's drives.
    pub(super) fn pool_luns(&self, id: Uuid) -> Result<Outcome, VdsError> {
        let mut st = self.inner.state.lock();
        let p = self.pool_call(&mut st, id)?;
        if let Some(luns) = crate::ceph_pools::luns_in(&st, id) {
            return Ok(Outcome::Luns(luns));
        }
        Ok(Outcome::Luns(luns_on(&st, &p.drives)))
    }

    /// `POST /v1/subsystems/{id}/pools`: a named pool of added drives, each in no other named
    /// pool, none a hot spare or the data dir's drive.
    pub(super) fn create_pool(&self, a: PoolArgs) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Subsystem, a.subsystem)?;
        for (i, d) in a.drives.iter().enumerate() {
            st.lookup(ObjectKind::Drive, *d, Some(&format!("drives[{i}]")))?;
        }
        // Step 4.
        let name = check_name("friendly_name", &a.friendly_name)?;
        if name.starts_with(PRIMORDIAL_PREFIX) {
            return Err(VdsError::invalid_arg(
                "friendly_name",
                format!("names starting {PRIMORDIAL_PREFIX:?} are the primordial pools'"),
            ));
        }
        let description = a.description.clone().unwrap_or_default();
        if description.len() > 1024 || description.chars().any(char::is_control) {
            return Err(VdsError::invalid_arg(
                "description",
                "at most 1024 bytes, no control characters",
            ));
        }
        if a.drives.is_empty() {
            return Err(VdsError::invalid_arg("drives", "a pool needs a drive"));
        }
        for (i, id) in a.drives.iter().enumerate() {
            let at = format!("drives[{i}]");
            let d = &st.drives[id];
            if a.drives[..i].contains(id) {
                return Err(VdsError::invalid_arg(
                    &at,
                    format!("drive {id} is listed twice"),
                ));
            }
            if d.subsystem != a.subsystem {
                return Err(VdsError::invalid_arg(
                    &at,
                    format!("drive {id} belongs to another subsystem"),
                ));
            }
            if super::drive::is_data_dir_drive(d, &inner.config.data_dir) {
                return Err(VdsError::invalid_arg(
                    &at,
                    format!("drive {id} is the data dir's drive; it is in no pool"),
                ));
            }
            if d.flags & DriveFlag::Hotspare.value() != 0 {
                return Err(VdsError::invalid_arg(
                    &at,
                    format!("drive {id} is a hot spare; a spare is in no pool"),
                ));
            }
        }
        let default_type = a.default_type.unwrap_or(LunType::Default);
        extents::check_type("default_type", default_type)?;
        let attrs = &a.attributes;
        if let Some(s) = attrs.stripe_size {
            extents::check_stripe("attributes.stripe_size", u64::from(s))?;
        }
        if let Some(u) = &attrs.intended_usage {
            if u.len() > 256 || u.chars().any(char::is_control) {
                return Err(VdsError::invalid_arg(
                    "attributes.intended_usage",
                    "at most 256 bytes, no control characters",
                ));
            }
        }
        // Step 6, then the conflicts.
        let busy: Vec<(ObjectKind, Uuid)> =
            a.drives.iter().map(|d| (ObjectKind::Drive, *d)).collect();
        st.check_free(&busy)?;
        for (i, d) in a.drives.iter().enumerate() {
            if let Some(other) = named_pool_of(st, *d) {
                return Err(VdsError::new(
                    Hresult::VDS_E_DEVICE_IN_USE,
                    format!("drives[{i}]: drive {d} is already in pool {other}"),
                ));
            }
        }
        if let Some((p, _)) = st.pools.values().find(|(p, _)| p.name == name) {
            return Err(VdsError::new(
                Hresult::VDS_E_OBJECT_EXISTS,
                format!("friendly_name: pool {} is already called {name:?}", p.id),
            ));
        }
        let id = Uuid::new_v4();
        let pool = StoragePool {
            id,
            subsystem: a.subsystem,
            name,
            description,
            pool_type: StoragePoolType::Concrete,
            status: StoragePoolStatus::Online,
            health: Health::Healthy,
            drives: a.drives.clone(),
            default_type,
            attributes: a.attributes.clone(),
            total_managed: 0,
            consumed: 0,
            remaining: 0,
            provisioned: 0,
            overcommitted: false,
        };
        let row = pool.clone();
        let change = Change::new()
            .store(move |tx| tx.put_pool(&row))
            .apply(move |st| {
                let seq = st.next_seq();
                st.pools.insert(id, (pool, seq));
            });
        inner.commit(st, change, None)?;
        let p = pool_view(st, &inner.config.data_dir, id).expect("committed above");
        Ok(Outcome::Pool(Box::new(p)))
    }

    /// `DELETE /v1/pools/{id}`: a named pool that no LUN uses (`VDS_E_ASSOCIATED_LUNS_EXIST`
    /// otherwise); its drives stay, in the primordial pool. The primordial pool is never
    /// deleted (`VDS_E_NOT_SUPPORTED`).
    pub(super) fn delete_pool(&self, id: Uuid) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        let p = self.pool_call(st, id)?;
        if p.pool_type == StoragePoolType::Primordial {
            return Err(VdsError::not_supported(format!(
                "pool {id} is the subsystem's primordial pool; it is never deleted"
            )));
        }
        if let Some(c) = crate::ceph_pools::report(st, id) {
            return Err(VdsError::not_supported(format!(
                "pool {id} is Ceph pool {:?}; Ceph's own tools delete it",
                c.name
            )));
        }
        let busy: Vec<(ObjectKind, Uuid)> =
            p.drives.iter().map(|d| (ObjectKind::Drive, *d)).collect();
        st.check_free(&busy)?;
        let mut on: Vec<Uuid> = luns_on(st, &p.drives).iter().map(|l| l.id).collect();
        on.extend(
            st.pending_extents
                .iter()
                .filter(|(_, xs)| xs.iter().any(|x| p.drives.contains(&x.drive)))
                .map(|(l, _)| *l),
        );
        if let Some(l) = on.first() {
            return Err(VdsError::new(
                Hresult::VDS_E_ASSOCIATED_LUNS_EXIST,
                format!(
                    "pool {id} holds {} LUN(s) (LUN {l} first); delete them first",
                    on.len()
                ),
            ));
        }
        let change = Change::new()
            .store(move |tx| {
                tx.delete_pool(id)?;
                tx.add_tombstone(id, ObjectKind::Pool)
            })
            .apply(move |st| {
                st.pools.remove(&id);
                st.tombstones.insert(id, ObjectKind::Pool);
            });
        inner.commit(st, change, None)?;
        Ok(Outcome::Deleted {
            kind: ObjectKind::Pool,
            id,
        })
    }

    /// `POST /v1/pools/{id}/luns` (`CreateLunInStoragePool`): CreateLun on the pool's
    /// subsystem, the type defaulting to the pool's, the drives the caller's (every one in
    /// the pool) or chosen among the pool's.
    pub(super) fn create_lun_in_pool(
        &self,
        pool: Uuid,
        mut a: CreateLunArgs,
    ) -> Result<Outcome, VdsError> {
        {
            let mut st = self.inner.state.lock();
            let p = self.pool_call(&mut st, pool)?;
            a.subsystem = p.subsystem;
            if let Some(c) = crate::ceph_pools::report(&st, pool) {
                crate::ceph_pools::check_create(
                    c,
                    a.lun_type,
                    a.drives.is_some(),
                    a.plexes.is_some(),
                    a.stripe_size.is_some(),
                )?;
                a.backing = Some(crate::ceph_pools::backing_in(c, a.backing.take())?);
                // The pool's replication gives the type (`ceph_pools::shape`).
                a.lun_type = None;
                drop(st);
                return self.create_lun(a);
            }
            a.lun_type = Some(a.lun_type.unwrap_or(p.default_type));
            a.drives = Some(pool_drives_for(
                &st,
                &p,
                &a.drives,
                a.lun_type,
                a.plexes,
                a.stripe_size,
            )?);
        }
        self.create_composite_lun(a)
    }

    /// `GET .../max-lun-size` (QueryMaxLunCreateSize, QueryMaxLunCreateSizeInStoragePool): the
    /// largest size a create with these arguments gets now.
    pub(super) fn max_lun_size(&self, a: MaxSizeArgs) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut st = inner.state.lock();
        let (subsystem, pool) = match a.pool {
            Some(p) => {
                let id = p;
                let p = self.pool_call(&mut st, id)?;
                if let Some(c) = crate::ceph_pools::report(&st, id) {
                    crate::ceph_pools::check_create(
                        c,
                        a.lun_type,
                        a.drives.is_some(),
                        a.plexes.is_some(),
                        a.stripe_size.is_some(),
                    )?;
                    let max = crate::ceph_pools::max_size(&st, id).unwrap_or(0);
                    return Ok(Outcome::Size(max));
                }
                (p.subsystem, Some(p))
            }
            None => {
                let s = a.subsystem.unwrap_or_default();
                inner.object_call(&mut st, ObjectKind::Subsystem, s)?;
                (s, None)
            }
        };
        for (i, d) in a.drives.iter().flatten().enumerate() {
            st.lookup(ObjectKind::Drive, *d, Some(&format!("drives[{i}]")))?;
        }
        let Some(pool) = pool else {
            // On the subsystem: what CreateLun with these arguments makes.
            let lun_type = a.lun_type.unwrap_or(LunType::Simple);
            let Some(drives) = a.drives.clone() else {
                return file_lun_max(lun_type, a.plexes, a.stripe_size);
            };
            let req = Request {
                lun_type,
                drives,
                plexes: a.plexes,
                stripe_size: a.stripe_size,
            };
            let max = extents::max_size(&st, &inner.config.data_dir, subsystem, &req)?;
            return Ok(Outcome::Size(max));
        };
        let lun_type = a.lun_type.unwrap_or(pool.default_type);
        let drives = pool_drives_for(
            &st,
            &pool,
            &a.drives,
            Some(lun_type),
            a.plexes,
            a.stripe_size,
        )?;
        let req = Request {
            lun_type,
            drives,
            plexes: a.plexes,
            stripe_size: a.stripe_size,
        };
        let max = extents::max_size(&st, &inner.config.data_dir, subsystem, &req)?;
        Ok(Outcome::Size(max))
    }
}

/// The largest LUN CreateLun without `drives` makes: a thin file on the data dir's drive, up to
/// the size limit; only the types such a LUN may have.
fn file_lun_max(
    lun_type: LunType,
    plexes: Option<u32>,
    stripe_size: Option<u64>,
) -> Result<Outcome, VdsError> {
    extents::check_type("type", lun_type)?;
    if plexes.is_some() || stripe_size.is_some() {
        return Err(VdsError::invalid_arg(
            "drives",
            "plexes and stripe_size are for an extent-backed LUN: give its drives",
        ));
    }
    if !matches!(
        lun_type,
        LunType::Simple | LunType::Default | LunType::NonFaultTolerant
    ) {
        return Err(VdsError::not_supported(format!(
            "type: a LUN made without drives is a file, never {}; give the drives, or ask a \
             pool (GET /v1/pools/{{id}}/max-lun-size)",
            lun_type.short_name()
        )));
    }
    Ok(Outcome::Size(crate::engine::MAX_LUN_SIZE))
}

/// The drives of a create in pool `p`: the caller's (each in the pool) or chosen.
fn pool_drives_for(
    st: &State,
    p: &StoragePool,
    given: &Option<Vec<Uuid>>,
    lun_type: Option<LunType>,
    plexes: Option<u32>,
    stripe_size: Option<u64>,
) -> Result<Vec<Uuid>, VdsError> {
    if let Some(d) = given {
        for (i, id) in d.iter().enumerate() {
            if !p.drives.contains(id) {
                return Err(VdsError::invalid_arg(
                    &format!("drives[{i}]"),
                    format!("drive {id} is not in pool {}", p.id),
                ));
            }
        }
        return Ok(d.clone());
    }
    let probe = Request {
        lun_type: lun_type.unwrap_or(p.default_type),
        drives: p.drives.clone(),
        plexes,
        stripe_size,
    };
    let resolved = extents::resolve(st, &probe)?;
    let chosen = choose_drives(st, p, &resolved);
    if chosen.is_empty() {
        return Err(VdsError::new(
            Hresult::VDS_E_NOT_ENOUGH_DRIVE,
            format!("pool {} has no ONLINE drive that is not a hot spare", p.id),
        ));
    }
    Ok(chosen)
}
