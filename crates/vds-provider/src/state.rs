//! The provider's in-memory view of the array (the "cache" of BEHAVIOUR.md §6): every object,
//! the operation slots (§7), the tombstones (§8), the indexes that keep names unique, and the
//! builder of the [`DataView`](vds_dataplane::DataView) the data path serves.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use uuid::Uuid;
use vds_backstore::Filtered;
use vds_dataplane::{ChapConfig, DataView, PortalGroupView, PortalView, TargetView};
use vds_model::{
    ControllerStatus, DriveStatus, Hresult, Lun, LunStatus, ObjectKind, Portal, PortalGroup,
    PortalStatus, Subsystem, SubsystemStatus, Target, UnmaskingList,
};
use vds_scsi::{LogicalUnit, LuState, LunMap, Mask};
use vds_store::{LunRecord, SecretKind, SecretRow, Store};

use crate::VdsError;

/// One LUN: its record and its engine.
#[derive(Clone)]
pub(crate) struct LunEntry {
    pub rec: LunRecord,
    pub seq: u64,
    pub lu: Arc<LogicalUnit>,
    /// The opened store behind the LU; `None` when the backing is missing.
    pub filtered: Option<Arc<Filtered>>,
    /// The hints as stored (BEHAVIOUR.md §14); the LU applies the data-path ones.
    pub hints: vds_model::LunHints,
    /// The composite store of an extent-backed LUN (inside `filtered`).
    pub raid: Option<Arc<vds_backstore::RaidStore>>,
}

/// One target: its properties, secrets and LUN-number bookkeeping.
pub(crate) struct TargetEntry {
    pub t: Target,
    pub seq: u64,
    pub secrets: Vec<SecretRow>,
    /// LUN numbers in use.
    pub numbers: BTreeSet<u64>,
    /// Every number below this is in use (allocation hint).
    pub next_free: u64,
}

impl TargetEntry {
    /// The lowest free LUN number.
    pub fn allocate(&mut self) -> Option<u64> {
        let mut n = self.next_free;
        while self.numbers.contains(&n) {
            n += 1;
        }
        if n > MAX_LUN_NUMBER {
            return None;
        }
        self.numbers.insert(n);
        self.next_free = n + 1;
        Some(n)
    }

    /// Returns a number to the pool.
    pub fn release(&mut self, n: u64) {
        self.numbers.remove(&n);
        self.next_free = self.next_free.min(n);
    }

    /// The data path's CHAP configuration.
    pub fn chap(&self) -> ChapConfig {
        let mut c = ChapConfig::default();
        for s in &self.secrets {
            match s.kind {
                SecretKind::Default => c.default_secret = Some(s.secret.clone()),
                SecretKind::Initiator => c
                    .initiator_secrets
                    .push((s.initiator.clone(), s.secret.clone())),
                SecretKind::Mutual => c
                    .mutual_secrets
                    .push((s.initiator.clone(), s.secret.clone())),
            }
        }
        c
    }
}

/// Highest LUN number (flat space addressing, SAM-5).
pub(crate) const MAX_LUN_NUMBER: u64 = 16383;

/// One portal and whether a listener is up for it.
pub(crate) struct PortalEntry {
    pub p: Portal,
    pub seq: u64,
    pub bound: bool,
}

/// Everything the provider knows; guarded by one mutex in the provider.
pub(crate) struct State {
    pub store: Store,
    pub provider_id: Uuid,
    pub seq: u64,
    pub subsystems: HashMap<Uuid, Subsystem>,
    pub controllers: HashMap<Uuid, vds_model::Controller>,
    pub drives: HashMap<Uuid, vds_model::Drive>,
    /// Named storage pools with their creation order (the primordial pools are derived).
    pub pools: HashMap<Uuid, (vds_model::StoragePool, u64)>,
    pub luns: HashMap<Uuid, LunEntry>,
    pub targets: HashMap<Uuid, TargetEntry>,
    pub pgs: HashMap<Uuid, (PortalGroup, u64)>,
    pub portals: HashMap<Uuid, PortalEntry>,
    pub tombstones: HashMap<Uuid, ObjectKind>,
    /// Operation slots held (object ids; the provider's id for Reenumerate/Refresh).
    pub busy: HashSet<Uuid>,
    /// Why the cache is corrupt, if it is.
    pub corrupt: Option<String>,
    /// A Reenumerate ran since the corruption was detected.
    pub reenumerated: bool,
    /// Friendly name → LUN.
    pub lun_names: HashMap<String, Uuid>,
    /// Lower-case IQN → target.
    pub iqns: HashMap<String, Uuid>,
    /// Address → portal.
    pub portal_addrs: HashMap<SocketAddr, Uuid>,
    /// Backing path → LUN (a path serves one LUN).
    pub backing_paths: HashMap<String, Uuid>,
    /// The extents of extent-backed LUNs being created (LUN → extents), taken until the
    /// create commits or fails so that no other create is given the same space.
    pub pending_extents: HashMap<Uuid, Vec<vds_model::Extent>>,
    /// Per-target LUN maps, rebuilt only for targets marked dirty.
    pub lunmaps: HashMap<Uuid, Arc<LunMap>>,
    pub dirty: HashSet<Uuid>,
    /// LUNs newly mapped to a target since the last view: inserted into the previous map
    /// instead of rebuilding it, so creating a LUN does not cost a walk over every LUN of the
    /// target (a rebuild parses every unmasking list and looks up every LUN).
    pub added: HashMap<Uuid, Vec<Uuid>>,
    /// What the Ceph cluster said at the last poll (`ceph_pools.rs`); derived, never stored.
    pub ceph: Option<Arc<crate::ceph_pools::CephView>>,
    /// The owner gateway of each RBD LUN whose lease this gateway has read (`owner.rs`):
    /// its controller (by friendly name) is the LUN's Active/Optimized one. Derived from the
    /// leases, never stored; empty unless the gateway runs the ownership thread.
    pub owners: HashMap<Uuid, String>,
    /// RBD LUNs created by this gateway (this run): it takes their leases at once, the
    /// others only after a lease time without an owner (`owner.rs`).
    pub created_here: HashSet<Uuid>,
}

impl State {
    pub fn new(store: Store) -> State {
        State {
            store,
            provider_id: Uuid::nil(),
            seq: 0,
            subsystems: HashMap::new(),
            controllers: HashMap::new(),
            drives: HashMap::new(),
            pools: HashMap::new(),
            luns: HashMap::new(),
            targets: HashMap::new(),
            pgs: HashMap::new(),
            portals: HashMap::new(),
            tombstones: HashMap::new(),
            busy: HashSet::new(),
            corrupt: None,
            reenumerated: false,
            lun_names: HashMap::new(),
            iqns: HashMap::new(),
            portal_addrs: HashMap::new(),
            backing_paths: HashMap::new(),
            pending_extents: HashMap::new(),
            owners: HashMap::new(),
            created_here: HashSet::new(),
            lunmaps: HashMap::new(),
            dirty: HashSet::new(),
            added: HashMap::new(),
            ceph: None,
        }
    }

    /// The error for an object the state should hold and does not: the cache no longer
    /// matches what was checked (never expected; answered, not a panic).
    pub fn missing(kind: ObjectKind, id: Uuid) -> VdsError {
        VdsError::new(
            Hresult::VDS_E_PROVIDER_CACHE_CORRUPT,
            format!("{} {id} is missing from the provider cache", kind.label()),
        )
    }

    /// LUN `id`, or the cache-corrupt error.
    pub fn lun(&self, id: Uuid) -> Result<&LunEntry, VdsError> {
        self.luns
            .get(&id)
            .ok_or_else(|| State::missing(ObjectKind::Lun, id))
    }

    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Whether `id` names a live object of `kind`.
    pub fn exists(&self, kind: ObjectKind, id: Uuid) -> bool {
        match kind {
            ObjectKind::Provider => id == self.provider_id,
            ObjectKind::Subsystem => self.subsystems.contains_key(&id),
            ObjectKind::Controller => self.controllers.contains_key(&id),
            ObjectKind::Drive => self.drives.contains_key(&id),
            ObjectKind::Lun => self.luns.contains_key(&id),
            ObjectKind::Target => self.targets.contains_key(&id),
            ObjectKind::PortalGroup => self.pgs.contains_key(&id),
            ObjectKind::Portal => self.portals.contains_key(&id),
            ObjectKind::Job => false,
            ObjectKind::Pool => {
                self.pools.contains_key(&id)
                    || crate::ops::pool::primordial_of(self, id).is_some()
                    || crate::ceph_pools::report(self, id).is_some()
            }
        }
    }

    /// Steps 1 and 2 of BEHAVIOUR.md §2 for an id given as `field` (`None`: the object the
    /// call is made on).
    pub fn lookup(&self, kind: ObjectKind, id: Uuid, field: Option<&str>) -> Result<(), VdsError> {
        if self.exists(kind, id) {
            return Ok(());
        }
        let prefix = field.map(|f| format!("{f}: ")).unwrap_or_default();
        if let Some(k) = self.tombstones.get(&id) {
            return Err(VdsError::new(
                Hresult::VDS_E_OBJECT_DELETED,
                format!("{prefix}{} {id} is no longer present", k.label()),
            ));
        }
        Err(VdsError::new(
            Hresult::VDS_E_OBJECT_NOT_FOUND,
            format!("{prefix}no {} has id {id}", kind.label()),
        ))
    }

    /// Step 6: fails with BUSY if any of `ids` holds its slot.
    pub fn check_free(&self, ids: &[(ObjectKind, Uuid)]) -> Result<(), VdsError> {
        for (kind, id) in ids {
            if self.busy.contains(id) {
                return Err(VdsError::new(
                    Hresult::VDS_E_ANOTHER_CALL_IN_PROGRESS,
                    format!(
                        "another operation on {} {id} has not finished",
                        kind.label()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Whether the storage path of a LUN is up (subsystem, a controller and its drive ONLINE).
    pub fn path_online(&self, lun: &Lun) -> bool {
        let sub_ok = self
            .subsystems
            .get(&lun.subsystem)
            .is_some_and(|s| s.status == SubsystemStatus::Online);
        let ctl_ok = self
            .controllers
            .values()
            .any(|c| c.subsystem == lun.subsystem && c.status == ControllerStatus::Online);
        // A LUN whose drive record is gone is judged by its subsystem and controllers only.
        let drive_ok = self
            .drives
            .get(&lun.drive)
            .is_none_or(|d| d.status == DriveStatus::Online);
        sub_ok && ctl_ok && drive_ok
    }

    /// The controller whose port `portal` is (BEHAVIOUR.md §14): the one the portal named
    /// when it was declared. The one place that answers this question.
    pub fn controller_of_portal(&self, portal: Uuid) -> Option<&vds_model::Controller> {
        let p = self.portals.get(&portal)?;
        self.controllers.get(&p.p.controller)
    }

    /// What the data path enforces for `lun`: its status, or OFFLINE while its path is down.
    pub fn lu_state(&self, lun: &Lun) -> LuState {
        match lun.status {
            LunStatus::Failed => LuState::Failed,
            LunStatus::NotReady => LuState::NotReady,
            LunStatus::Online if self.path_online(lun) => LuState::Online,
            LunStatus::Online | LunStatus::Offline | LunStatus::Unknown => LuState::Offline,
        }
    }

    /// Records that `lun`, which no LUN map holds yet, is now mapped to `target` (the next view
    /// inserts it into the target's map in place of a full rebuild).
    pub fn lun_added(&mut self, target: Uuid, lun: Uuid) {
        self.added.entry(target).or_default().push(lun);
    }

    /// Calls `f` on every LU of `target` in its current LUN map (after a view was built), or
    /// of its LUN list when no map is current. No allocation per LU.
    pub fn for_each_lu_of_target(&self, target: Uuid, mut f: impl FnMut(&Arc<LogicalUnit>)) {
        let current = !self.dirty.contains(&target) && !self.added.contains_key(&target);
        match self.lunmaps.get(&target) {
            Some(map) if current => map.entries.iter().for_each(|e| f(&e.lu)),
            _ => self.lus_of_target(target).iter().for_each(f),
        }
    }

    /// Marks the targets of a LUN for a LUN-map rebuild.
    pub fn dirty_lun(&mut self, lun: &Lun) {
        for t in &lun.targets {
            self.dirty.insert(*t);
        }
    }

    /// Every LU mapped by `target` (for REPORTED LUNS DATA HAS CHANGED).
    pub fn lus_of_target(&self, target: Uuid) -> Vec<Arc<LogicalUnit>> {
        self.targets
            .get(&target)
            .map(|t| {
                t.t.luns
                    .iter()
                    .filter_map(|l| self.luns.get(l).map(|e| e.lu.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn lunmap(&self, target: &TargetEntry) -> LunMap {
        let mut entries: Vec<vds_scsi::LunEntry> = target
            .t
            .luns
            .iter()
            .filter_map(|id| self.luns.get(id))
            .filter_map(|e| {
                let number = e
                    .rec
                    .lun
                    .lun_numbers
                    .iter()
                    .find(|(t, _)| *t == target.t.id)?
                    .1;
                Some(vds_scsi::LunEntry {
                    number,
                    lu: e.lu.clone(),
                    mask: mask_of(&e.rec.lun.unmasking_list),
                })
            })
            .collect();
        entries.sort_by_key(|e| e.number);
        LunMap {
            entries,
            port_groups: self.port_groups(target),
        }
    }

    /// `old` plus the entries of `added` (LUNs it does not hold yet), kept sorted by number.
    fn lunmap_with(&self, target: &TargetEntry, old: &LunMap, added: &[Uuid]) -> LunMap {
        let mut entries = Vec::with_capacity(old.entries.len() + added.len());
        entries.extend(old.entries.iter().cloned());
        for id in added {
            let Some(e) = self.luns.get(id) else { continue };
            let Some(&(_, number)) = e
                .rec
                .lun
                .lun_numbers
                .iter()
                .find(|(t, _)| *t == target.t.id)
            else {
                continue;
            };
            let at = entries.partition_point(|x: &vds_scsi::LunEntry| x.number < number);
            entries.insert(
                at,
                vds_scsi::LunEntry {
                    number,
                    lu: e.lu.clone(),
                    mask: mask_of(&e.rec.lun.unmasking_list),
                },
            );
        }
        LunMap {
            entries,
            port_groups: old.port_groups.clone(),
        }
    }

    /// The portal groups of `target` as views for the data path.
    fn portal_group_views(&self, target: &TargetEntry) -> Vec<PortalGroupView> {
        target
            .t
            .portal_groups
            .iter()
            .filter_map(|pg| self.pgs.get(pg))
            .map(|(pg, _)| PortalGroupView {
                id: pg.id,
                tag: pg.tag,
                portals: pg.portals.clone(),
                tpg: self.port_group_of(pg),
            })
            .collect()
    }

    /// The ALUA target port groups of `target` (REPORT TARGET PORT GROUPS): each portal
    /// group's tag is a relative target port of its `tpg`.
    /// A portal group without portals (target port group 0) serves no nexus and is not listed.
    fn port_groups(&self, target: &TargetEntry) -> vds_scsi::TargetPortGroups {
        vds_scsi::TargetPortGroups::new(
            self.portal_group_views(target)
                .iter()
                .filter(|g| g.tpg != 0)
                .map(|g| (g.tpg, g.tag)),
        )
    }

    /// The complete configuration for the data path.
    pub fn view(&mut self) -> DataView {
        let added: Vec<(Uuid, Vec<Uuid>)> = self.added.drain().collect();
        for (t, luns) in added {
            if self.dirty.contains(&t) {
                continue; // rebuilt below anyway
            }
            match (self.targets.get(&t), self.lunmaps.get(&t)) {
                (Some(te), Some(old)) => {
                    let map = Arc::new(self.lunmap_with(te, old, &luns));
                    self.lunmaps.insert(t, map);
                }
                _ => {
                    self.dirty.insert(t);
                }
            }
        }
        let dirty: Vec<Uuid> = self.dirty.drain().collect();
        for t in dirty {
            match self.targets.get(&t) {
                Some(te) => {
                    let map = Arc::new(self.lunmap(te));
                    self.lunmaps.insert(t, map);
                }
                None => {
                    self.lunmaps.remove(&t);
                }
            }
        }
        // A target's ports change without its LUNs changing (a portal group added, removed,
        // re-tagged or moved to another controller): its map is copied with the new groups.
        let regrouped: Vec<(Uuid, vds_scsi::TargetPortGroups)> = self
            .targets
            .values()
            .filter_map(|te| {
                let groups = self.port_groups(te);
                let map = self.lunmaps.get(&te.t.id)?;
                (map.port_groups != groups).then_some((te.t.id, groups))
            })
            .collect();
        for (t, port_groups) in regrouped {
            if let Some(old) = self.lunmaps.get(&t) {
                let map = LunMap {
                    entries: old.entries.clone(),
                    port_groups,
                };
                self.lunmaps.insert(t, Arc::new(map));
            }
        }
        let mut targets: Vec<&TargetEntry> = self.targets.values().collect();
        targets.sort_by_key(|t| t.seq);
        let targets = targets
            .into_iter()
            .map(|te| TargetView {
                id: te.t.id,
                iqn: te.t.iscsi_name.clone(),
                alias: te.t.friendly_name.clone(),
                chap: te.chap(),
                portal_groups: self.portal_group_views(te),
                luns: self.lunmaps.get(&te.t.id).cloned().unwrap_or_default(),
            })
            .collect();
        let mut portals: Vec<&PortalEntry> = self.portals.values().collect();
        portals.sort_by_key(|p| p.seq);
        let portals = portals
            .into_iter()
            .map(|pe| PortalView {
                id: pe.p.id,
                addr: pe.p.socket_addr(),
                online: pe.p.status == PortalStatus::Online,
                advertise: pe.p.advertise.as_ref().map(|a| a.to_string()),
            })
            .collect();
        DataView { targets, portals }
    }

    /// The ALUA target port group of a portal group's target port: the group id of the
    /// controller its portals belong to (all the same, BEHAVIOUR.md §14). A group without
    /// portals serves no nexus; it reports 0, a group no controller has.
    pub(crate) fn port_group_of(&self, pg: &PortalGroup) -> u16 {
        pg.portals
            .iter()
            .filter_map(|p| self.portals.get(p))
            .find_map(|pe| self.controllers.get(&pe.p.controller))
            .map(|c| c.port_group)
            .unwrap_or(0)
    }

    /// Rebuilds the name indexes from the objects.
    pub fn reindex(&mut self) {
        self.lun_names = self
            .luns
            .values()
            .map(|e| (e.rec.lun.friendly_name.clone(), e.rec.lun.id))
            .collect();
        self.backing_paths = self
            .luns
            .values()
            .filter_map(|e| e.rec.lun.backing.path.clone().map(|p| (p, e.rec.lun.id)))
            .collect();
        self.iqns = self
            .targets
            .values()
            .map(|t| (t.t.iscsi_name.to_ascii_lowercase(), t.t.id))
            .collect();
        self.portal_addrs = self
            .portals
            .values()
            .map(|p| (p.p.socket_addr(), p.p.id))
            .collect();
        self.dirty.extend(self.targets.keys().copied());
    }
}

/// The data path's mask for a stored (already canonical) unmasking list.
pub(crate) fn mask_of(list: &str) -> Mask {
    match UnmaskingList::parse(list) {
        Ok(UnmaskingList::Everyone) => Mask::Everyone,
        Ok(UnmaskingList::Only(names)) => Mask::Only(names),
        // A stored list is canonical; anything unreadable hides the LUN (fail closed).
        Ok(UnmaskingList::Nobody) | Err(_) => Mask::Nobody,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::Fixture;
    use crate::Command;

    fn published(f: &Fixture, target: Uuid) -> Arc<LunMap> {
        let view = f.plane.last();
        let tv = view
            .targets
            .iter()
            .find(|t| t.id == target)
            .expect("target published");
        tv.luns.clone()
    }

    fn summary(map: &LunMap) -> Vec<(u64, Uuid, bool, bool)> {
        map.entries
            .iter()
            .map(|e| {
                (
                    e.number,
                    e.lu.id(),
                    e.mask.allows("iqn.2001-04.com.a"),
                    e.mask.allows("iqn.2001-04.com.z"),
                )
            })
            .collect()
    }

    /// LUN maps patched by creates (the fast path) are what a full rebuild makes: every LUN,
    /// sorted by number, with its mask; a number freed by a delete is filled in the middle.
    #[test]
    fn lun_maps_patched_on_create_equal_a_full_rebuild() {
        let f = Fixture::new(41095, false);
        let t = f.default_target().id;
        let a = f.create_lun(|a| a.targets = Some(vec![t]));
        let b = f.create_lun(|a| {
            a.targets = Some(vec![t]);
            a.unmasking_list = Some("iqn.2001-04.com.a".into());
        });
        f.ok(Command::DeleteLun { id: a.id });
        let c = f.create_lun(|a| a.targets = Some(vec![t]));
        let d = f.create_lun(|a| a.targets = Some(vec![t]));
        assert_eq!(c.lun_numbers, a.lun_numbers, "the freed number is reused");

        let patched = summary(&published(&f, t));
        let rebuilt = {
            let st = f.p.inner.state.lock();
            assert!(
                st.added.is_empty() && st.dirty.is_empty(),
                "a view was published"
            );
            summary(&st.lunmap(&st.targets[&t]))
        };
        assert_eq!(patched, rebuilt);
        let numbers: Vec<u64> = patched.iter().map(|e| e.0).collect();
        let mut sorted = numbers.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(numbers, sorted, "sorted and unique");
        for lun in [&b, &c, &d] {
            assert!(patched.iter().any(|e| e.1 == lun.id), "{} missing", lun.id);
        }
        assert!(
            !patched.iter().any(|e| e.1 == a.id),
            "deleted LUN still mapped"
        );
        let masked = patched.iter().find(|e| e.1 == b.id).unwrap();
        assert_eq!((masked.2, masked.3), (true, false), "the mask came along");
    }

    /// Each published map carries its target's ports by target port group (REPORT TARGET
    /// PORT GROUPS): every portal group's tag in its `tpg`, following portal groups that come
    /// and go while the LUNs stay.
    #[test]
    fn lun_maps_carry_the_targets_port_groups() {
        let f = Fixture::new(44150, false);
        let t = f.default_target().id;
        f.create_lun(|a| a.targets = Some(vec![t]));
        let ports = |f: &Fixture| {
            let view = f.plane.last();
            let tv = view.targets.iter().find(|x| x.id == t).unwrap();
            let want = vds_scsi::TargetPortGroups::new(
                tv.portal_groups
                    .iter()
                    .filter(|g| g.tpg != 0)
                    .map(|g| (g.tpg, g.tag)),
            );
            assert_eq!(
                tv.luns.port_groups, want,
                "the map follows the portal groups"
            );
            tv.luns.port_groups.clone()
        };
        let before = ports(&f);
        assert!(!before.is_empty());
        let entries = summary(&published(&f, t));
        let pg = match f.job(Command::CreatePortalGroup { target: t }).output {
            Some(vds_model::JobOutput::PortalGroup(g)) => g,
            o => panic!("{o:?}"),
        };
        // An empty portal group is no target port anyone can reach: not listed.
        assert_eq!(ports(&f), before, "an empty portal group is not listed");
        let portal = match f.ok(Command::CreatePortal {
            subsystem: f.subsystem(),
            address: "127.0.0.1".parse().unwrap(),
            port: 44151,
            advertise: None,
            controller: None,
        }) {
            crate::Outcome::Portal(p) => p.id,
            o => panic!("{o:?}"),
        };
        f.job(Command::AddPortalToGroup {
            portal_group: pg.id,
            portal,
        });
        let with = ports(&f);
        let tags: Vec<u16> = with.iter().flat_map(|(_, p)| p.to_vec()).collect();
        assert!(tags.contains(&pg.tag), "{tags:?} lacks tag {}", pg.tag);
        assert_eq!(
            with.iter().count(),
            1,
            "one controller: one target port group"
        );
        assert_eq!(
            summary(&published(&f, t)),
            entries,
            "the LUNs did not change"
        );
        f.job(Command::RemovePortalFromGroup {
            portal_group: pg.id,
            portal,
        });
        assert_eq!(ports(&f), before, "emptied, it is not listed again");
        f.job(Command::DeletePortalGroup { id: pg.id });
        assert_eq!(ports(&f), before);
    }
}
