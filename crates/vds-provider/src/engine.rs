//! The engine behind [`Provider::apply`](crate::Provider::apply): startup (embedded default,
//! restore), the check order of BEHAVIOUR.md §2, operation slots (§7), events (§9), cache
//! corruption detection and cure (§6), and the helpers every operation shares. The operations
//! themselves live in `ops`; they change the array only through `commit`.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tokio::sync::broadcast;
use uuid::Uuid;
use vds_backstore::BackingStore;
use vds_dataplane::DataPlane;
use vds_model::{
    Backing, BackingKind, CacheState, Controller, ControllerStatus, Drive, DriveKind, DriveStatus,
    EventKind, FaultFilterSpec, Health, Hresult, HwProviderType, Lun, LunHints, LunPlex,
    LunPlexStatus, LunPlexType, LunStatus, LunType, ObjectKind, Portal, PortalGroup, PortalStatus,
    ProviderInfo, Subsystem, SubsystemFlag, SubsystemStatus, Target, TransitionState,
};
use vds_scsi::{LogicalUnit, LuConfig, LuState};
use vds_store::{LunRecord, Snapshot, Store, StoreError};

use crate::commit::Change;
use crate::events::Event;
use crate::hooks::{DataPathMsg, Hooks, MissingStore};
use crate::jobs::Jobs;
use crate::state::{LunEntry, PortalEntry, State, TargetEntry};
use crate::storage::{
    backing_changed, fs_space, identity_of, make_private_dir, open_backing,
    remove_leftover_lun_files, to_filters,
};
use crate::{Command, ProviderConfig, VdsError};

/// Logical block size of every LUN vds creates.
pub(crate) const BLOCK_SIZE: u64 = 512;
/// Largest LUN vds creates (1 PiB): anything larger is an "absurd size" (E_INVALIDARG).
pub(crate) const MAX_LUN_SIZE: u64 = 1 << 50;

pub(crate) fn store_err(e: StoreError) -> VdsError {
    VdsError::new(e.hresult(), e.to_string())
}

/// Everything the provider shares between callers and worker threads.
pub(crate) struct Inner {
    pub config: ProviderConfig,
    pub dataplane: Arc<dyn DataPlane>,
    pub events: broadcast::Sender<Event>,
    pub state: Mutex<State>,
    pub jobs: Jobs,
    pub hooks: Arc<Hooks>,
    /// The open stores and fault filters of the drives under extent-backed LUNs.
    pub drive_io: crate::extents::DriveIo,
    /// The last run ended with a clean shutdown (every LUN flushed).
    pub clean_start: bool,
    /// What a crash may have left unequal, per LUN, noted when its store opens (at start, or
    /// by a Refresh that reloads the store), started as jobs right after (`recovery.rs`).
    pub pending_recovery: Mutex<crate::recovery::Pending>,
    /// The shared configuration (`--ceph-pool`), if this daemon is one of several gateways.
    pub cluster: Option<crate::cluster::ClusterCtx>,
}

/// Slots held by one operation; released under the state lock by [`Slots::release`], or on
/// drop (which takes the lock: never drop unreleased slots while holding it).
pub(crate) struct Slots {
    inner: Arc<Inner>,
    ids: Vec<Uuid>,
    released: bool,
}

impl Slots {
    pub fn release(mut self, st: &mut State) {
        for id in &self.ids {
            st.busy.remove(id);
        }
        self.released = true;
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        if !self.released {
            let mut st = self.inner.state.lock();
            for id in &self.ids {
                st.busy.remove(id);
            }
        }
    }
}

impl Inner {
    /// Sends one event.
    pub fn emit(&self, kind: ObjectKind, event: EventKind, id: Uuid) {
        let Some(code) = kind.event_code(event) else {
            return;
        };
        // No subscriber is not an error.
        let _ = self.events.send(Event {
            object_type: kind,
            event,
            code: code.value() as u32,
            id,
            time: self.config.clock.now(),
        });
    }

    /// Hands the data path the current configuration.
    pub fn publish(&self, st: &mut State) {
        let view = st.view();
        self.dataplane.publish(Arc::new(view));
    }

    /// Claims the slots of `ids` (step 6 must have been checked).
    pub fn claim(self: &Arc<Self>, st: &mut State, ids: &[Uuid]) -> Slots {
        for id in ids {
            st.busy.insert(*id);
        }
        Slots {
            inner: self.clone(),
            ids: ids.to_vec(),
            released: false,
        }
    }

    fn mark_corrupt(st: &mut State, why: String) {
        tracing::warn!(reason = %why, "provider cache is corrupt");
        st.corrupt = Some(why);
        st.reenumerated = false;
    }

    /// Looks for changes behind the provider's back: the store (another process) and, for
    /// `luns`, their backing files (a `stat` each). LUNs whose slot is held are skipped (their
    /// own operation is changing them).
    pub fn detect(&self, st: &mut State, luns: &[Uuid]) {
        // A LU that switched itself to FAILED (an I/O error) is recorded before anything is
        // answered about it: the hook thread may not have run yet, and no answer may lag what
        // an initiator has already been told (MEDIUM ERROR, then 02/04/03), nor may SetStatus
        // treat such a LUN as working (§2 step 7).
        for id in luns {
            let Some(e) = st.luns.get(id) else { continue };
            if !st.busy.contains(id)
                && e.rec.lun.status != LunStatus::Failed
                && e.lu.state() == LuState::Failed
            {
                self.record_failed(st, *id, "the logical unit reported a backing-store failure");
            }
        }
        if st.corrupt.is_some() {
            return;
        }
        match st.store.changed_externally() {
            Ok(true) => {
                Self::mark_corrupt(st, "the store was changed by another process".into());
                return;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the store's data_version"),
        }
        for id in luns {
            if st.busy.contains(id) {
                continue;
            }
            if let Some(why) = st.luns.get(id).and_then(backing_changed) {
                Self::mark_corrupt(st, why);
                return;
            }
        }
    }

    /// Records that a LUN's LU switched itself to FAILED after a backing-store I/O error
    /// (BEHAVIOUR.md §5): status and health FAILED, persisted, one MODIFY event. Called by the
    /// hook thread and by [`Inner::detect`], whichever sees it first; a report the LU has since
    /// left FAILED behind (Refresh brought it back) is stale and ignored.
    pub fn record_failed(&self, st: &mut State, id: Uuid, why: &str) {
        let Some(e) = st.luns.get(&id) else { return };
        if e.rec.lun.status == LunStatus::Failed && e.rec.lun.health == Health::Failed {
            return;
        }
        if e.lu.state() != LuState::Failed {
            return;
        }
        tracing::warn!(lun = %id, error = %why, "backing store failed an I/O; LUN FAILED");
        let mut rec = e.rec.clone();
        rec.lun.status = LunStatus::Failed;
        rec.lun.health = Health::Failed;
        self.record_fact(st, rec, "FAILED status");
    }

    /// A fact the data path found (a LU or a plex failed): `rec` replaces the LUN's record,
    /// one MODIFY announces it. It is what the hosts already see, so it is kept in memory and
    /// announced even when the store cannot take it (the next start finds the failure again);
    /// `what` names it in the log then.
    pub(crate) fn record_fact(&self, st: &mut State, rec: LunRecord, what: &str) {
        let id = rec.lun.id;
        let row = rec.clone();
        let change = Change::new()
            .apply(move |st| {
                if let Some(e) = st.luns.get_mut(&id) {
                    e.rec = rec;
                }
            })
            .event(ObjectKind::Lun, EventKind::Modify, id);
        if let Err(err) = st.store.write(|tx| tx.put_lun(&row)) {
            tracing::error!(lun = %id, error = %err, "cannot persist {what}");
        }
        self.stage(st, change);
    }

    /// Steps 1-3 of BEHAVIOUR.md §2 for the object a call is made on.
    pub fn object_call(&self, st: &mut State, kind: ObjectKind, id: Uuid) -> Result<(), VdsError> {
        st.lookup(kind, id, None)?;
        let luns = if kind == ObjectKind::Lun {
            vec![id]
        } else {
            Vec::new()
        };
        self.detect(st, &luns);
        Self::cache_ok(st)
    }

    /// Step 3 alone (list calls).
    pub fn cache_ok(st: &State) -> Result<(), VdsError> {
        match &st.corrupt {
            Some(why) => Err(VdsError::new(
                Hresult::VDS_E_PROVIDER_CACHE_CORRUPT,
                format!("the provider cache is corrupt ({why}); call Reenumerate, then Refresh"),
            )),
            None => Ok(()),
        }
    }

    pub fn provider_info(&self, st: &State) -> ProviderInfo {
        ProviderInfo {
            id: st.provider_id,
            name: "vds".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            provider_type: HwProviderType::Iscsi,
            flags: 0,
            cache: if st.corrupt.is_some() {
                CacheState::Corrupt
            } else {
                CacheState::Valid
            },
        }
    }

    /// Creates the LU of a LUN over `store` in the state the data path must enforce.
    pub fn make_lu(
        &self,
        lun: &Lun,
        store: Arc<dyn BackingStore>,
        state: LuState,
        pr_state: Option<Vec<u8>>,
    ) -> Arc<LogicalUnit> {
        let lu = Arc::new(LogicalUnit::new(LuConfig {
            id: lun.id,
            backing: store,
            block_size: lun.block_size,
            state,
            pr_state,
            events: self.hooks.clone(),
            write_protected: lun.read_only,
        }));
        if let Some(shared) = self.hooks.shared() {
            // Several gateways: the LU's reservations are the cluster's. A LU that cannot
            // reach them refuses every PERSISTENT RESERVE OUT (its LUN is not served by this
            // gateway as far as they are concerned) rather than keep a private state.
            if let Err(e) = shared.attach(&lu) {
                tracing::error!(lun = %lun.id, error = %e, "the LUN's shared reservations cannot be served");
            }
        }
        lu
    }

    /// An LU for a LUN whose storage cannot be opened: FAILED, every I/O fails.
    pub fn missing_lu(&self, lun: &Lun) -> Arc<LogicalUnit> {
        let what = lun
            .backing
            .path
            .clone()
            .unwrap_or_else(|| format!("the {} store", lun.backing.kind.short_name()));
        self.make_lu(
            lun,
            Arc::new(MissingStore {
                size: lun.size_bytes,
                what,
            }),
            LuState::Failed,
            None,
        )
    }

    /// Persists a portal (FAILED is stored as the ONLINE it was asked to be: a restart
    /// retries the bind).
    pub fn portal_row(p: &Portal) -> Portal {
        let mut row = p.clone();
        if row.status == PortalStatus::Failed || row.status == PortalStatus::NotReady {
            row.status = PortalStatus::Online;
        }
        row
    }

    /// The embedded default of INTERFACE.md "Daemon", written in one transaction.
    fn create_default(&self, st: &mut State) -> Result<(), VdsError> {
        let cfg = &self.config;
        vds_model::validate_iscsi_name(&cfg.default_target_iqn)
            .map_err(|e| VdsError::invalid_arg("default_target_iqn", e))?;
        let data_dir = std::fs::canonicalize(&cfg.data_dir)
            .map_err(|e| VdsError::io(format!("data_dir {}", cfg.data_dir.display()), &e))?;
        let provider_id = Uuid::new_v4();
        let a = self.default_objects(&data_dir, provider_id, Uuid::new_v4())?;
        let (sub, ctl, drive, portals, target, pg) =
            (&a.sub, &a.ctl, &a.drive, &a.portals, &a.target, &a.pg);
        let sub_id = sub.id;
        let lun_id = Uuid::new_v4();
        let size = round_up(cfg.default_lun_size.max(BLOCK_SIZE));
        let luns_dir = data_dir.join("luns");
        make_private_dir(&luns_dir)
            .map_err(|e| VdsError::io(format!("creating {}", luns_dir.display()), &e))?;
        let path = luns_dir.join(format!("{lun_id}.img"));
        vds_backstore::create_file(&path, size, true)
            .map_err(|e| VdsError::io(format!("creating {}", path.display()), &e))?;
        let backing = Backing {
            kind: BackingKind::File,
            path: Some(path.display().to_string()),
        };
        let identity = identity_of(&backing)
            .map_err(|e| VdsError::io(format!("stat {}", path.display()), &e))?;
        let mut lun = new_lun_model(
            lun_id,
            sub_id,
            drive.id,
            "default".into(),
            size,
            "*".into(),
            LunType::Simple,
            true,
            vec![(target.id, 0)],
            backing,
            Vec::new(),
        );
        lun.active_controllers = vec![ctl.id];
        let rec = LunRecord {
            lun,
            identity,
            owns_file: true,
        };
        let r = st.store.write(|tx| {
            tx.set_meta("provider_id", &provider_id.to_string())?;
            tx.put_subsystem(sub)?;
            tx.put_controller(ctl)?;
            tx.put_drive(drive)?;
            for p in portals {
                tx.put_portal(p)?;
            }
            tx.put_target(target)?;
            tx.put_portal_group(pg)?;
            tx.put_lun(&rec)?;
            Ok(())
        });
        if let Err(e) = r {
            let _ = vds_backstore::lifecycle::remove_file(&path);
            return Err(store_err(e));
        }
        Ok(())
    }

    /// The subsystem `sub_id`, its controller, drive (the data dir's filesystem), portals,
    /// target and portal group of the embedded default (a cluster's first gateway passes the
    /// subsystem id the cluster was given).
    pub(crate) fn default_objects(
        &self,
        data_dir: &std::path::Path,
        provider_id: Uuid,
        sub_id: Uuid,
    ) -> Result<DefaultArray, VdsError> {
        let cfg = &self.config;
        let flags = subsystem_flags();
        let sub = Subsystem {
            id: sub_id,
            friendly_name: "vds".into(),
            identification: format!("vds:{provider_id}"),
            flags,
            status: SubsystemStatus::Online,
            health: Health::Healthy,
            supported_raid_types: 0,
            rebuild_priority: 0,
            portal_status_settable: cfg.portal_status_settable,
        };
        let ctl = Controller {
            id: Uuid::new_v4(),
            subsystem: sub_id,
            friendly_name: "vds controller 0".into(),
            identification: format!("vds:{provider_id}:controller0"),
            status: ControllerStatus::Online,
            health: Health::Healthy,
            number_of_ports: 0,
            port_group: 1,
        };
        let (total, _) = fs_space(data_dir)
            .map_err(|e| VdsError::io(format!("data_dir {}", data_dir.display()), &e))?;
        let drive = Drive {
            id: Uuid::new_v4(),
            subsystem: sub_id,
            friendly_name: "data dir".into(),
            identification: data_dir.display().to_string(),
            size_bytes: total,
            flags: 0,
            status: DriveStatus::Online,
            health: Health::Healthy,
            bus_number: 0,
            slot_number: 0,
            path: data_dir.display().to_string(),
            kind: DriveKind::Dir,
        };
        let mut portals = Vec::new();
        for addr in &cfg.first_start_portals {
            if portals.iter().any(|p: &Portal| p.socket_addr() == *addr) {
                continue;
            }
            portals.push(Portal {
                id: Uuid::new_v4(),
                subsystem: sub_id,
                address: addr.ip(),
                port: addr.port(),
                status: PortalStatus::Online,
                advertise: cfg
                    .first_start_advertise
                    .iter()
                    .find(|(a, _)| a == addr)
                    .map(|(_, adv)| adv.clone()),
                controller: ctl.id,
                portal_groups: Vec::new(),
            });
        }
        let ctl = Controller {
            number_of_ports: portals.len().min(i16::MAX as usize) as i16,
            ..ctl
        };
        let target = Target {
            id: Uuid::new_v4(),
            subsystem: sub_id,
            iscsi_name: cfg.default_target_iqn.clone(),
            friendly_name: "default".into(),
            chap_enabled: false,
            portal_groups: Vec::new(),
            luns: Vec::new(),
        };
        let pg = PortalGroup {
            id: Uuid::new_v4(),
            target: target.id,
            tag: 1,
            portals: portals.iter().map(|p| p.id).collect(),
        };
        Ok(DefaultArray {
            sub,
            ctl,
            drive,
            portals,
            target,
            pg,
        })
    }

    /// Replaces the in-memory view with `snap` (startup, or Refresh after another process
    /// changed the store). LUs whose backing is unchanged are kept; portals are bound or
    /// unbound to match their stored status; with `emit`, one event per object that arrived,
    /// departed or changed.
    fn install(&self, st: &mut State, snap: Snapshot, emit: bool) -> Result<(), VdsError> {
        let old_models = emit.then(|| Models::of(st));
        if let Some((_, v)) = snap.meta.iter().find(|(k, _)| k == "provider_id") {
            st.provider_id = Uuid::parse_str(v).map_err(|_| {
                VdsError::new(
                    Hresult::VDS_E_BAD_PROVIDER_DATA,
                    format!("the store's provider_id {v:?} is not a UUID"),
                )
            })?;
        }
        st.subsystems = snap
            .subsystems
            .into_iter()
            .map(|mut s| {
                s.portal_status_settable = self.config.portal_status_settable;
                // What this build implements, whatever an older one stored.
                s.flags = subsystem_flags();
                (s.id, s)
            })
            .collect();
        st.controllers = snap.controllers.into_iter().map(|c| (c.id, c)).collect();
        st.drives = snap.drives.into_iter().map(|d| (d.id, d)).collect();
        for p in snap.pools {
            let seq = st.next_seq();
            st.pools.insert(p.id, (p, seq));
        }
        st.tombstones = snap.tombstones.into_iter().collect();

        let mut old_luns = std::mem::take(&mut st.luns);
        let mut pr: HashMap<Uuid, Vec<u8>> = snap.pr_states.into_iter().collect();
        let mut hints: HashMap<Uuid, LunHints> = snap.lun_hints.into_iter().collect();
        let mut changed: Vec<LunRecord> = Vec::new();
        for mut rec in snap.luns {
            let id = rec.lun.id;
            let seq = st.next_seq();
            let old = old_luns.remove(&id);
            let h = hints.remove(&id).unwrap_or_default();
            // The cache flags follow the hints (a derived value, not stored on its own).
            rec.lun.flags = h.lun_flags();
            let entry =
                self.install_lun(&st.drives, rec, seq, old, pr.remove(&id), h, &mut changed);
            st.luns.insert(id, entry);
        }
        // LUNs that vanished from the store leave the data path with the new view.
        drop(old_luns);
        self.install_paths(
            st,
            snap.targets,
            snap.secrets,
            snap.portal_groups,
            snap.portals,
        );
        self.bring_up(st, &mut changed);
        // Every LU reports its access states per controller (a new LU its first ones).
        let all: Vec<Uuid> = st.luns.keys().copied().collect();
        st.push_access_states(all);
        // The events of a reload: one per object that arrived, departed or changed.
        let mut change = Change::new().publish();
        if !changed.is_empty() {
            // What the storage says is already what the data path serves: a store (or, for
            // a gateway, the shared configuration) that cannot take it is logged, and the next
            // open finds it again.
            let r = st.store.write(|tx| {
                for rec in &changed {
                    tx.put_lun(rec)?;
                }
                Ok(())
            });
            if let Err(e) = r {
                if self.cluster.is_none() {
                    return Err(store_err(e));
                }
                tracing::warn!(error = %e, "cannot store what the LUNs' storage says");
            }
        }
        if let Some(old) = old_models {
            let new = Models::of(st);
            old.diff(&new, |k, e, id| {
                change = std::mem::take(&mut change).event(k, e, id);
            });
        }
        self.commit(st, change, None)
    }

    /// The entry of one LUN of a snapshot: the LU of `old` kept when its storage is the same,
    /// else a new LU over the (re)opened storage, or a FAILED one when it cannot be opened.
    /// Records that need storing again (the file is the truth) go to `changed`.
    #[allow(clippy::too_many_arguments)]
    fn install_lun(
        &self,
        drives: &HashMap<Uuid, vds_model::Drive>,
        mut rec: LunRecord,
        seq: u64,
        old: Option<LunEntry>,
        pr_state: Option<Vec<u8>>,
        hints: LunHints,
        changed: &mut Vec<LunRecord>,
    ) -> LunEntry {
        let id = rec.lun.id;
        if !self.config.fault_injection && !rec.lun.filters.is_empty() {
            // Fault filters exist only in a daemon run with --enable-fault-injection: one
            // started without it must neither inject faults left in the store by an earlier
            // test run nor show them (and could not remove them: PUT faults is refused).
            tracing::warn!(lun = %id, "fault filters dropped: vdsd runs without --enable-fault-injection");
            rec.lun.filters.clear();
            changed.push(rec.clone());
        }
        let reusable = old.as_ref().is_some_and(|e| {
            e.filtered.is_some()
                && e.rec.lun.backing == rec.lun.backing
                && e.rec.identity == rec.identity
                && e.rec.lun.size_bytes == rec.lun.size_bytes
        });
        // An LU rebuilt for a LUN the data path already served takes over what its hosts
        // were told (nexuses, unit attentions, reservations).
        let (reuse, previous) = if reusable {
            (old, None)
        } else {
            (None, old.map(|e| e.lu))
        };
        let inherit = |lu: &Arc<vds_scsi::LogicalUnit>| {
            if let Some(p) = &previous {
                lu.inherit(p);
            }
        };
        match reuse {
            Some(mut e) => {
                if e.rec.lun.filters != rec.lun.filters {
                    if let Some(f) = &e.filtered {
                        f.set_filters(to_filters(&rec.lun.filters));
                    }
                }
                e.rec = rec;
                e.seq = seq;
                if e.hints != hints {
                    apply_hints(&e.lu, &hints);
                    e.hints = hints;
                }
                e
            }
            None => match self.open_lun_store(drives, &rec.lun) {
                Ok((f, raid, broken)) => {
                    if !broken.is_empty() {
                        // A plex whose drive or extent is gone is FAILED (the LUN serves from
                        // the others): BEHAVIOUR.md §15.
                        for i in broken {
                            rec.lun.plexes[i].status = vds_model::LunPlexStatus::Failed;
                            rec.lun.plexes[i].health = Health::Failed;
                        }
                        rec.lun.health = crate::redundancy::lun_health(&rec.lun.plexes);
                        changed.push(rec.clone());
                    }
                    let ident = identity_of(&rec.lun.backing).ok().flatten();
                    let size = f.size();
                    if ident != rec.identity || size != rec.lun.size_bytes {
                        // The store is the cache; the file is the truth when (re)opening.
                        rec.identity = ident;
                        rec.lun.size_bytes = size;
                        for p in &mut rec.lun.plexes {
                            p.size_bytes = size;
                        }
                        changed.push(rec.clone());
                    }
                    // Before any I/O: the bitmap attached, what a crash left noted.
                    self.open_recovery(&rec.lun, &hints, raid.as_deref());
                    let lu = self.make_lu(&rec.lun, f.clone(), LuState::Offline, pr_state);
                    inherit(&lu);
                    apply_hints(&lu, &hints);
                    let ident = naa_hex(&lu);
                    if rec.lun.identification != ident {
                        rec.lun.identification = ident;
                        changed.push(rec.clone());
                    }
                    LunEntry {
                        rec,
                        seq,
                        lu,
                        filtered: Some(f),
                        hints,
                        raid,
                    }
                }
                Err(err) => {
                    tracing::warn!(lun = %id, error = %err, "backing store missing; LUN FAILED");
                    if rec.lun.status != LunStatus::Failed || rec.lun.health != Health::Failed {
                        rec.lun.status = LunStatus::Failed;
                        rec.lun.health = Health::Failed;
                        changed.push(rec.clone());
                    }
                    let lu = self.missing_lu(&rec.lun);
                    inherit(&lu);
                    apply_hints(&lu, &hints);
                    LunEntry {
                        rec,
                        seq,
                        lu,
                        filtered: None,
                        hints,
                        raid: None,
                    }
                }
            },
        }
    }

    /// Opens a LUN's store behind its fault filters: a file, device, memory or null store, or
    /// the composite store of an extent-backed LUN (with the plexes that could not be opened).
    pub(crate) fn open_lun_store(
        self: &Inner,
        drives: &HashMap<Uuid, vds_model::Drive>,
        lun: &vds_model::Lun,
    ) -> std::io::Result<crate::extents::Opened> {
        if lun.backing.kind != vds_model::BackingKind::Extents {
            return Ok((open_backing(lun)?, None, Vec::new()));
        }
        let observer = self.hooks.plex_observer(lun.id);
        let (raid, broken) = crate::extents::open(&self.drive_io, drives, lun, observer)?;
        // Atomic writes through a journal in the data dir (the composite store has none of
        // its own); a record a crash left is replayed onto every working plex here.
        let journal = crate::extents::journal_of(&self.config.data_dir, lun.id);
        if let Some(dir) = journal.parent() {
            crate::storage::make_private_dir(dir)?;
        }
        let store = vds_backstore::journal::with_journal(
            raid.clone(),
            &journal,
            crate::extents::journal_tag(lun.id),
        )?;
        let f = vds_backstore::Filtered::new(store, to_filters(&lun.filters));
        Ok((Arc::new(f), Some(raid), broken))
    }

    /// Installs the targets (with their secrets and LUN numbers), portal groups and portals
    /// of a snapshot; listeners of portals that are gone are closed.
    fn install_paths(
        &self,
        st: &mut State,
        targets: Vec<Target>,
        secrets: Vec<vds_store::SecretRow>,
        portal_groups: Vec<PortalGroup>,
        portals: Vec<Portal>,
    ) {
        st.targets = HashMap::new();
        for t in targets {
            let seq = st.next_seq();
            let numbers = st
                .luns
                .values()
                .filter_map(|e| {
                    e.rec
                        .lun
                        .lun_numbers
                        .iter()
                        .find(|(tid, _)| *tid == t.id)
                        .map(|(_, n)| *n)
                })
                .collect();
            let te = TargetEntry {
                secrets: secrets
                    .iter()
                    .filter(|s| s.target == t.id)
                    .cloned()
                    .collect(),
                seq,
                numbers,
                next_free: 0,
                t,
            };
            st.targets.insert(te.t.id, te);
        }
        st.pgs = HashMap::new();
        for pg in portal_groups {
            let s = st.next_seq();
            st.pgs.insert(pg.id, (pg, s));
        }
        let old_bound: HashMap<Uuid, bool> =
            st.portals.iter().map(|(id, p)| (*id, p.bound)).collect();
        st.portals = HashMap::new();
        for p in portals {
            let s = st.next_seq();
            let bound = old_bound.get(&p.id).copied().unwrap_or(false);
            st.portals.insert(p.id, PortalEntry { p, seq: s, bound });
        }
        // Unbind listeners of portals that are gone.
        for (id, bound) in old_bound {
            if bound && !st.portals.contains_key(&id) {
                self.dataplane.unbind_portal(id, self.config.logout_timeout);
            }
        }
        st.reindex();
    }

    /// Brings every LU to the state its LUN and path call for (one that cannot come up is
    /// FAILED, recorded in `changed`), and binds or unbinds every portal to match its status.
    fn bring_up(&self, st: &mut State, changed: &mut Vec<LunRecord>) {
        let ids: Vec<Uuid> = st.luns.keys().copied().collect();
        for id in ids {
            let want = st.lu_state(&st.luns[&id].rec.lun);
            let e = &st.luns[&id];
            if e.lu.state() != want {
                if let Err(err) = e.lu.set_state(want) {
                    tracing::warn!(lun = %id, error = %err, "LUN could not be brought up; FAILED");
                    if let Some(e) = st.luns.get_mut(&id) {
                        e.rec.lun.status = LunStatus::Failed;
                        e.rec.lun.health = Health::Failed;
                        changed.push(e.rec.clone());
                    }
                }
            }
        }
        // Portals: stored ONLINE → bound; otherwise not listening. In the order they were
        // created, so that when two clash (a wildcard and a specific address on one port) the
        // one that was listening before a restart is the one listening after it.
        let mut ids: Vec<(u64, Uuid)> = st.portals.iter().map(|(id, pe)| (pe.seq, *id)).collect();
        ids.sort_unstable();
        let ids: Vec<Uuid> = ids.into_iter().map(|(_, id)| id).collect();
        // A gateway binds only its own controller's portals; the others' are in the model
        // (SendTargets lists them) but served elsewhere.
        let own = self
            .cluster
            .as_ref()
            .and_then(|ctx| crate::cluster::own_controller(ctx, st));
        for id in ids {
            let Some(pe) = st.portals.get_mut(&id) else {
                continue;
            };
            if self.cluster.is_some() && Some(pe.p.controller) != own {
                continue;
            }
            let want_online = pe.p.status == PortalStatus::Online;
            if want_online && !pe.bound {
                match self.dataplane.bind_portal(id, pe.p.socket_addr()) {
                    Ok(()) => pe.bound = true,
                    Err(err) => {
                        tracing::warn!(portal = %id, addr = %pe.p.socket_addr(), error = %err, "portal cannot bind; FAILED");
                        pe.p.status = PortalStatus::Failed;
                    }
                }
            } else if !want_online && pe.bound {
                self.dataplane.unbind_portal(id, self.config.logout_timeout);
                pe.bound = false;
            }
        }
    }
}

/// The objects of the embedded default other than its LUN.
pub(crate) struct DefaultArray {
    pub sub: Subsystem,
    pub ctl: Controller,
    pub drive: Drive,
    pub portals: Vec<Portal>,
    pub target: Target,
    pub pg: PortalGroup,
}

/// Comparable copies of every object (for the events of a reload).
struct Models {
    all: HashMap<(ObjectKind, Uuid), String>,
}

impl Models {
    fn of(st: &State) -> Models {
        let mut all = HashMap::new();
        for s in st.subsystems.values() {
            all.insert((ObjectKind::Subsystem, s.id), format!("{s:?}"));
        }
        for c in st.controllers.values() {
            all.insert((ObjectKind::Controller, c.id), format!("{c:?}"));
        }
        for d in st.drives.values() {
            all.insert((ObjectKind::Drive, d.id), format!("{d:?}"));
        }
        for e in st.luns.values() {
            all.insert((ObjectKind::Lun, e.rec.lun.id), format!("{:?}", e.rec.lun));
        }
        for t in st.targets.values() {
            all.insert((ObjectKind::Target, t.t.id), format!("{:?}", t.t));
        }
        for (pg, _) in st.pgs.values() {
            all.insert((ObjectKind::PortalGroup, pg.id), format!("{pg:?}"));
        }
        for p in st.portals.values() {
            all.insert((ObjectKind::Portal, p.p.id), format!("{:?}", p.p));
        }
        Models { all }
    }

    fn diff(&self, new: &Models, mut emit: impl FnMut(ObjectKind, EventKind, Uuid)) {
        for ((k, id), v) in &new.all {
            match self.all.get(&(*k, *id)) {
                None => emit(*k, EventKind::Arrive, *id),
                Some(old) if old != v => emit(*k, EventKind::Modify, *id),
                Some(_) => {}
            }
        }
        for (k, id) in self.all.keys() {
            if !new.all.contains_key(&(*k, *id)) {
                emit(*k, EventKind::Depart, *id);
            }
        }
    }
}

/// Rounds a byte count up to the block size.
pub(crate) fn round_up(bytes: u64) -> u64 {
    bytes.div_ceil(BLOCK_SIZE) * BLOCK_SIZE
}

/// A new LUN's model (one simple plex, ONLINE, HEALTHY, STABLE).
#[allow(clippy::too_many_arguments)]
pub(crate) fn new_lun_model(
    id: Uuid,
    subsystem: Uuid,
    drive: Uuid,
    friendly_name: String,
    size: u64,
    unmasking_list: String,
    lun_type: LunType,
    thin: bool,
    lun_numbers: Vec<(Uuid, u64)>,
    backing: Backing,
    filters: Vec<FaultFilterSpec>,
) -> Lun {
    Lun {
        id,
        subsystem,
        drive,
        friendly_name,
        identification: String::new(),
        size_bytes: size,
        unmasking_list,
        flags: LunHints::default().lun_flags(),
        lun_type,
        status: LunStatus::Online,
        health: Health::Healthy,
        transition_state: TransitionState::Stable,
        rebuild_priority: 0,
        thin,
        read_only: false,
        targets: lun_numbers.iter().map(|(t, _)| *t).collect(),
        lun_numbers,
        plexes: vec![LunPlex {
            id: Uuid::new_v4(),
            size_bytes: size,
            plex_type: LunPlexType::Simple,
            status: LunPlexStatus::Online,
            health: Health::Healthy,
            transition_state: TransitionState::Stable,
            flags: 0,
            stripe_size: 0,
            rebuild_priority: 0,
        }],
        backing,
        filters,
        block_size: BLOCK_SIZE as u32,
        active_controllers: Vec::new(),
        load_balance: crate::alua::DEFAULT_POLICY,
        extents: Vec::new(),
    }
}

/// The identification string of a LUN: its NAA-6 designator (VPD page 83) in hex.
pub(crate) fn naa_hex(lu: &LogicalUnit) -> String {
    let mut s = String::from("naa.");
    for byte in lu.naa() {
        s.push_str(&format!("{byte:02X}"));
    }
    s
}

/// Opens the store and the array (see [`crate::Provider::open`]).
pub(crate) fn open(
    config: ProviderConfig,
    dataplane: Arc<dyn DataPlane>,
) -> Result<Arc<Inner>, VdsError> {
    let store = Store::open(&config.data_dir).map_err(store_err)?;
    let cluster = config
        .cluster
        .as_ref()
        .map(crate::cluster::connect)
        .transpose()?;
    let clean_start = crate::recovery::take_clean_marker(&config.data_dir);
    let (tx, rx) = std::sync::mpsc::channel::<DataPathMsg>();
    let (events, _) = broadcast::channel(4096);
    let inner = Arc::new(Inner {
        config,
        dataplane,
        events,
        state: Mutex::new(State::new(store)),
        jobs: Jobs::default(),
        hooks: Arc::new(Hooks::new(tx)),
        drive_io: Default::default(),
        clean_start,
        pending_recovery: Default::default(),
        cluster,
    });
    if let Some(ctx) = &inner.cluster {
        inner
            .jobs
            .set_board(Arc::new(crate::cluster::JobsBoard::open(ctx)?));
        inner
            .hooks
            .share_with(crate::shared_pr::SharedReservations::open(ctx)?);
    }
    {
        let mut g = inner.state.lock();
        let st = &mut *g;
        if let Some(ctx) = &inner.cluster {
            crate::cluster::start(&inner, ctx, st)?;
        } else if st.store.is_empty().map_err(store_err)? {
            inner.create_default(st)?;
        }
        let mut snap = st.store.load().map_err(store_err)?;
        // Before any LUN opens: a block drive under a new node is opened there, never
        // whatever now sits at its old node (BEHAVIOUR.md §15).
        let moved = crate::drive_search::relocate_at_start(
            &inner.config.drive_search_dirs,
            &mut snap.drives,
            &snap.luns,
        );
        inner.install(st, snap, false)?;
        for d in moved {
            let id = d.id;
            let change = Change::new().store(move |tx| tx.put_drive(&d)).event(
                ObjectKind::Drive,
                EventKind::Modify,
                id,
            );
            inner.commit(st, change, None)?;
        }
        remove_leftover_lun_files(&inner.config.data_dir, st);
        crate::extents::remove_leftover_files(st);
        inner.resume_rebuilds(st);
        inner.resume_crash_resyncs(st);
    }
    let weak = Arc::downgrade(&inner);
    std::thread::Builder::new()
        .name("vds-lu-events".into())
        .spawn(move || hook_loop(weak, rx))
        .map_err(|e| VdsError::io("starting the LU event thread", &e))?;
    crate::ceph_pools::start_poller(Arc::downgrade(&inner))
        .map_err(|e| VdsError::io("starting the Ceph poller", &e))?;
    crate::cluster::spawn_sync(&inner)?;
    if let Some(ctx) = &inner.cluster {
        // Each RBD LUN's owner, by lease (docs/SCALEOUT.md "Ownership, ALUA and failover").
        crate::owner::start(
            Arc::downgrade(&inner),
            ctx.object.clone(),
            ctx.config.gateway.clone(),
            crate::owner::LEASE_TIME,
        )
        .map_err(|e| VdsError::io("starting LUN ownership", &e))?;
    }
    Ok(inner)
}

/// Hands what logical units report to [`Provider::apply`](crate::Provider::apply), the one
/// owner of every change (runs until the provider is dropped).
fn hook_loop(inner: Weak<Inner>, rx: std::sync::mpsc::Receiver<DataPathMsg>) {
    while let Ok(msg) = rx.recv() {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let provider = crate::Provider { inner };
        if let Err(e) = provider.apply(Command::DataPath(msg)) {
            tracing::debug!(error = %e, "data-path report not applied");
        }
    }
}

/// Reload entry used by Refresh after another process changed the store.
pub(crate) fn reload(inner: &Inner, st: &mut State) -> Result<(), VdsError> {
    let snap = st.store.load().map_err(store_err)?;
    inner.install(st, snap, true)
}

/// The `VDS_SF_*` bits of a subsystem: exactly what vds implements (BEHAVIOUR.md §14):
/// masking, simple (non-fault-tolerant) LUNs, CHAP and mutual CHAP, LUN numbers, and the
/// hints that take effect (write-back cache, write-through, read-back verify). Not claimed:
/// plexing, remapping, drive extents, hardware checksums, RADIUS, fault-tolerant, span,
/// stripe, mirror and parity LUNs, a mirrored cache, a switchable read cache, media scan,
/// consistency check.
pub(crate) fn subsystem_flags() -> u32 {
    SubsystemFlag::bits(&[
        SubsystemFlag::LunMaskingCapable,
        SubsystemFlag::SupportsSimpleLuns,
        SubsystemFlag::SupportsNonFaultTolerantLuns,
        SubsystemFlag::SupportsAuthChap,
        SubsystemFlag::SupportsAuthMutualChap,
        SubsystemFlag::SupportsLunNumber,
        SubsystemFlag::WriteCachingCapable,
        SubsystemFlag::WriteThroughCachingCapable,
        SubsystemFlag::ReadBackVerifyCapable,
    ])
}

/// What the data path applies of a LUN's hints (BEHAVIOUR.md §14 rule 8).
pub(crate) fn lu_hints(h: &LunHints) -> vds_scsi::LuHints {
    vds_scsi::LuHints {
        write_through: h.write_through_caching_enabled,
        read_back_verify: h.read_back_verify_enabled,
        optimal_read_size: h.optimal_read_size,
        optimal_read_alignment: h.optimal_read_alignment,
        optimal_write_size: h.optimal_write_size,
        optimal_write_alignment: h.optimal_write_alignment,
    }
}

/// Gives a LU (new, or reloaded from the store) the stored hints. Turning its write-back
/// cache off flushes it; a flush error leaves the cache on, and the LU's own next write error
/// reports the store.
pub(crate) fn apply_hints(lu: &vds_scsi::LogicalUnit, h: &LunHints) {
    lu.set_hints(lu_hints(h));
    if let Err(e) = lu.set_write_cache(h.write_caching_enabled) {
        tracing::warn!(lun = %lu.id(), error = %e, "flush before turning the write-back cache off failed");
    }
}
