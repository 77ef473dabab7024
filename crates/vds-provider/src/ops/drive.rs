//! Drives (BEHAVIOUR.md §15): add a `dir` or `block` drive at a caller's path (judged like a
//! backing path, BEHAVIOUR.md §12, and labelled), remove an empty one (its label wiped), the
//! hot-spare flag, and what Reenumerate finds of them (labels gone: DEPART; back: ARRIVE).
//! Drive SetStatus is `path.rs`'s.
//!
//! The data dir's own drive (slot 0, made with the embedded default) holds the array's LUN
//! files: it is never removed, and no other drive may be inside the data dir.

use std::io;
use std::path::{Path, PathBuf};

use uuid::Uuid;
use vds_backstore::label::{self, Found, Label, Medium, Refused};
use vds_backstore::lifecycle::{self, Node};
use vds_model::{
    BackingKind, Drive, DriveFlag, DriveKind, DriveStatus, EventKind, Health, Hresult, ObjectKind,
};

use crate::backing;
use crate::commit::Change;
use crate::state::State;
use crate::storage::fs_space;
use crate::{Outcome, Provider, VdsError};

use super::check_name;

fn medium(kind: DriveKind) -> Medium {
    match kind {
        DriveKind::Dir => Medium::Dir,
        DriveKind::Block => Medium::Block,
    }
}

pub(crate) fn label_of(d: &Drive) -> Label {
    Label {
        drive: *d.id.as_bytes(),
        subsystem: *d.subsystem.as_bytes(),
    }
}

/// Whether `d` is the data dir's own drive.
pub(crate) fn is_data_dir_drive(d: &Drive, data_dir: &Path) -> bool {
    d.kind == DriveKind::Dir && Path::new(&d.path) == lifecycle::canonical_or_same(data_dir)
}

/// Whether one of two resolved paths is the other or inside it.
fn overlaps(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// The `(rdev, ino)` of a block device at `path`, if it is one.
fn device_identity(path: &Path) -> Option<(u64, u64)> {
    let seen = lifecycle::look(path).ok()?;
    (seen.node() == Some(Node::Device)).then(|| seen.identity(Node::Device))
}

/// The added drive (not the data dir's) that a resolved storage path would reach: the drive's
/// path itself, a path inside a `dir` drive, or the same block device under another node. A
/// LUN's own file there would overwrite the drive's label or its extents.
pub(crate) fn drive_at<'a>(st: &'a State, data_dir: &Path, resolved: &Path) -> Option<&'a Drive> {
    let dev = device_identity(resolved);
    st.drives.values().find(|d| {
        !is_data_dir_drive(d, data_dir)
            && (resolved.starts_with(&d.path)
                || (dev.is_some() && dev == device_identity(Path::new(&d.path))))
    })
}

/// Refuses a resolved drive path inside the data dir, or one that another drive or a LUN's
/// storage already uses (the same path, one inside the other, the same device under another
/// node).
fn check_placement(
    st: &State,
    data_dir: &Path,
    requested: &str,
    resolved: &Path,
) -> Result<(), VdsError> {
    let data = lifecycle::canonical_or_same(data_dir);
    if overlaps(resolved, &data) {
        return Err(VdsError::new(
            Hresult::E_ACCESSDENIED,
            format!(
                "path: {requested} is the data dir {} or shares a directory tree with it (the \
                 data dir is the array's own, and its drive is the default drive)",
                data.display()
            ),
        ));
    }
    let dev = device_identity(resolved);
    for d in st.drives.values() {
        let same_device = dev.is_some() && dev == device_identity(Path::new(&d.path));
        if overlaps(resolved, Path::new(&d.path)) || same_device {
            return Err(VdsError::new(
                Hresult::VDS_E_DEVICE_IN_USE,
                format!("path: {requested} overlaps drive {} at {}", d.id, d.path),
            ));
        }
    }
    for e in st.luns.values() {
        let lun = &e.rec.lun;
        let Some(p) = lun.backing.path.as_deref() else {
            continue;
        };
        let same_device = lun.backing.kind == BackingKind::Block
            && dev.is_some()
            && e.rec.identity.map(|i| i.0) == dev.map(|i| i.0);
        if overlaps(resolved, Path::new(p)) || same_device {
            return Err(VdsError::new(
                Hresult::VDS_E_DEVICE_IN_USE,
                format!(
                    "path: {requested} overlaps the storage {p} of LUN {}",
                    lun.id
                ),
            ));
        }
    }
    Ok(())
}

/// The lowest slot on bus 0 that no drive of the subsystem has.
fn free_slot(st: &State, sub: Uuid) -> Result<i16, VdsError> {
    let used: Vec<i16> = st
        .drives
        .values()
        .filter(|d| d.subsystem == sub && d.bus_number == 0)
        .map(|d| d.slot_number)
        .collect();
    (0..=i16::MAX).find(|s| !used.contains(s)).ok_or_else(|| {
        VdsError::new(
            Hresult::VDS_E_CONFIG_LIMIT,
            format!("subsystem {sub} has a drive in every slot"),
        )
    })
}

/// What a refused label write answers.
fn refusal(requested: &str, kind: DriveKind, r: Refused) -> VdsError {
    match r {
        Refused::NotBlank(found) => {
            let what = match (found, kind) {
                (Found::Label(_), _) => "another vds drive's label".to_string(),
                (_, DriveKind::Dir) => {
                    format!("a {} that is not a vds label", label::DIR_LABEL_FILE)
                }
                (_, DriveKind::Block) => "data in its first MiB".to_string(),
            };
            VdsError::new(
                Hresult::VDS_E_DEVICE_IN_USE,
                format!(
                    "path: {requested} holds {what}; \"force\": true overwrites it (its data is lost)"
                ),
            )
        }
        Refused::WrongNode(why) => VdsError::invalid_arg("path", why),
        Refused::Io(e) => VdsError::io(format!("path {requested}"), &e),
    }
}

/// Resolves a drive path (every symlink; it must exist).
fn resolve(requested: &str) -> Result<PathBuf, VdsError> {
    let p = backing::resolve(requested)
        .map_err(|e| VdsError::new(e.hresult, e.message.replacen("backing.path", "path", 1)))?;
    match std::fs::metadata(&p) {
        Ok(_) => Ok(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(VdsError::invalid_arg(
            "path",
            format!("{requested} does not exist"),
        )),
        Err(e) => Err(VdsError::io(format!("path {requested}"), &e)),
    }
}

/// What Reenumerate finds of drive `d` now: its size, or `None` when its label is gone (the
/// directory or device vanished, or holds something else).
fn rediscover(d: &Drive, data_dir: &Path) -> Option<u64> {
    let path = Path::new(&d.path);
    if is_data_dir_drive(d, data_dir) {
        return fs_space(path).ok().map(|(total, _)| total);
    }
    if label::read(path, medium(d.kind)).ok()? != Found::Label(label_of(d)) {
        return None;
    }
    match d.kind {
        DriveKind::Dir => fs_space(path).ok().map(|(total, _)| total),
        DriveKind::Block => label::block_capacity(path)
            .ok()
            .map(|cap| cap - cap % crate::engine::BLOCK_SIZE),
    }
}

impl Provider {
    /// Where block drive `d` is now when its label left its recorded node: the one candidate
    /// of the search dirs carrying it that no other drive or LUN uses (BEHAVIOUR.md §15).
    fn locate_drive(&self, st: &State, d: &Drive) -> Option<PathBuf> {
        let taken = crate::drive_search::Taken::for_drive(
            d,
            st.drives.values(),
            st.luns.values().map(|e| &e.rec),
        );
        crate::drive_search::locate(&self.inner.config.drive_search_dirs, d, &taken)
    }

    /// Reenumerate's drive half (BEHAVIOUR.md §15): every drive's label is read again. One
    /// whose label is gone DEPARTs (FAILED, health failed); a FAILED one whose label is back
    /// ARRIVEs (ONLINE, healthy); a size that changed is a MODIFY; a block drive found under a new
    /// node gets that path (a MODIFY) and stays ONLINE or ARRIVEs. One commit per drive. Run
    /// by Reenumerate and once at start.
    pub(crate) fn rediscover_drives(&self, st: &mut State) -> Result<(), VdsError> {
        let inner = &self.inner;
        let mut ids: Vec<(i16, i16, Uuid)> = st
            .drives
            .values()
            .map(|d| (d.bus_number, d.slot_number, d.id))
            .collect();
        ids.sort();
        for (_, _, id) in ids {
            let old = st.drives[&id].clone();
            let mut d = old.clone();
            let mut found = rediscover(&old, &inner.config.data_dir);
            // A block drive's label gone from its node: it may be under another one now.
            let mut moved = false;
            if found.is_none() {
                if let Some(p) = self.locate_drive(st, &old) {
                    crate::drive_search::move_to(&mut d, &p);
                    found = rediscover(&d, &inner.config.data_dir);
                    moved = found.is_some();
                    if !moved {
                        d = old.clone();
                    }
                }
            }
            let mut events = Vec::new();
            if moved {
                events.push(EventKind::Modify);
                if old.status == DriveStatus::Failed {
                    // What was opened at the old node is not this drive any more.
                    inner.drive_io.close_block(id);
                }
            }
            match (found, old.status) {
                (None, DriveStatus::Failed) => continue,
                (None, _) => {
                    d.status = DriveStatus::Failed;
                    d.health = Health::Failed;
                    events.push(EventKind::Depart);
                }
                (Some(size), DriveStatus::Failed) => {
                    d.status = DriveStatus::Online;
                    d.health = Health::Healthy;
                    d.size_bytes = size;
                    events.push(EventKind::Arrive);
                }
                (Some(size), _) if size != old.size_bytes => {
                    d.size_bytes = size;
                    if !moved {
                        events.push(EventKind::Modify);
                    }
                }
                (Some(_), _) if moved => {}
                (Some(_), _) => continue,
            }
            let row = d.clone();
            let change = Change::new()
                .store(move |tx| tx.put_drive(&row))
                .apply(move |st| {
                    st.drives.insert(id, d);
                });
            let change = events
                .into_iter()
                .fold(change, |c, e| c.event(ObjectKind::Drive, e, id));
            inner.commit(st, change, None)?;
        }
        Ok(())
    }

    /// Adds a drive of `kind` at the caller's `path`: resolved, placed (not in the data dir,
    /// not overlapping another drive or a LUN's storage), labelled (over a foreign label or
    /// non-zero label area only with `force`), bus 0 and the next free slot, ONLINE; its size
    /// is the filesystem's (dir) or the device's less the label area (block).
    pub(super) fn add_drive(
        &self,
        sub: Uuid,
        kind: String,
        path: String,
        friendly_name: Option<String>,
        force: bool,
    ) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Subsystem, sub)?;
        let kind = DriveKind::parse(&kind).ok_or_else(|| {
            VdsError::invalid_arg("kind", format!("{kind:?} is not a drive kind (dir, block)"))
        })?;
        let name = friendly_name
            .map(|n| check_name("friendly_name", &n))
            .transpose()?;
        let resolved = resolve(&path)?;
        check_placement(st, &inner.config.data_dir, &path, &resolved)?;
        st.check_free(&[(ObjectKind::Subsystem, sub)])?;
        let slot = free_slot(st, sub)?;
        let size = match kind {
            DriveKind::Dir => {
                if !resolved.is_dir() {
                    return Err(VdsError::invalid_arg(
                        "path",
                        format!("{path} is not a directory"),
                    ));
                }
                fs_space(&resolved)
                    .map_err(|e| VdsError::io(format!("path {path}"), &e))?
                    .0
            }
            DriveKind::Block => {
                let cap = label::block_capacity(&resolved).map_err(|r| refusal(&path, kind, r))?;
                cap - cap % crate::engine::BLOCK_SIZE
            }
        };
        let shown = resolved.display().to_string();
        let drive = Drive {
            id: Uuid::new_v4(),
            subsystem: sub,
            friendly_name: name.unwrap_or_else(|| format!("vds drive {slot}")),
            identification: shown.clone(),
            size_bytes: size,
            flags: 0,
            status: DriveStatus::Online,
            health: Health::Healthy,
            bus_number: 0,
            slot_number: slot,
            path: shown,
            kind,
        };
        let l = label_of(&drive);
        label::write(&resolved, medium(kind), &l, force).map_err(|r| refusal(&path, kind, r))?;
        let id = drive.id;
        let row = drive.clone();
        let change = Change::new()
            .store(move |tx| tx.put_drive(&row))
            .apply(move |st| {
                st.drives.insert(id, drive);
            })
            .event(ObjectKind::Drive, EventKind::Arrive, id);
        if let Err(e) = inner.commit(st, change, None) {
            // Not added: the label it would have had goes too.
            if let Err(w) = label::wipe(&resolved, medium(kind), &l) {
                tracing::warn!(path = %resolved.display(), error = %w, "label of a drive not added left behind");
            }
            return Err(e);
        }
        Ok(Outcome::Drive(st.drives[&id].clone()))
    }

    /// Removes a drive that holds nothing (`VDS_E_DEVICE_IN_USE` while a LUN is on it; the
    /// data dir's drive never), then wipes its label. A tombstone is left; one REMOVED event.
    pub(super) fn remove_drive(&self, id: Uuid) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Drive, id)?;
        let d = st.drives[&id].clone();
        if is_data_dir_drive(&d, &inner.config.data_dir) {
            return Err(VdsError::not_supported(format!(
                "drive {id} is the data dir's own drive (it holds the array's LUN files); it is \
                 never removed"
            )));
        }
        if let Some(e) = st
            .luns
            .values()
            .find(|e| crate::extents::lun_uses_drive(&e.rec.lun, id))
        {
            return Err(VdsError::new(
                Hresult::VDS_E_DEVICE_IN_USE,
                format!("drive {id} holds LUN {}; delete it first", e.rec.lun.id),
            ));
        }
        if let Some((lun, _)) = crate::extents::extents_on(st, id).first() {
            return Err(VdsError::new(
                Hresult::VDS_E_DEVICE_IN_USE,
                format!("drive {id} holds an extent of LUN {lun}, being created"),
            ));
        }
        if let Some(pool) = super::pool::named_pool_of(st, id) {
            return Err(VdsError::new(
                Hresult::VDS_E_DEVICE_IN_USE,
                format!("drive {id} is in pool {pool}; delete the pool first"),
            ));
        }
        st.check_free(&[(ObjectKind::Drive, id)])?;
        let change = Change::new()
            .store(move |tx| {
                tx.delete_drive(id)?;
                tx.add_tombstone(id, ObjectKind::Drive)
            })
            .apply(move |st| {
                st.drives.remove(&id);
                st.tombstones.insert(id, ObjectKind::Drive);
            })
            .event(ObjectKind::Drive, EventKind::Removed, id);
        inner.commit(st, change, None)?;
        inner.drive_io.forget(id);
        // Removed from the array first: a label that cannot be wiped now (the drive is gone or
        // unreadable) only makes a later add of the same path ask for force.
        match label::wipe(Path::new(&d.path), medium(d.kind), &label_of(&d)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(drive = %id, path = %d.path, error = %e, "label of a removed drive not wiped");
            }
        }
        Ok(Outcome::Deleted {
            kind: ObjectKind::Drive,
            id,
        })
    }

    /// `PUT /v1/drives/{id}/faults`: the same checks as a LUN's (fault injection only), then
    /// the filters go on every segment of every extent on the drive, and on those opened
    /// later. Not stored: a restart starts without them.
    pub(super) fn set_drive_faults(
        &self,
        id: Uuid,
        filters: Vec<vds_model::FaultFilterSpec>,
    ) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Drive, id)?;
        super::check_filters(inner, "filters", &filters)?;
        if !inner.config.fault_injection {
            return Err(VdsError::not_supported(
                "filters: fault filters are accepted only when vdsd runs with --enable-fault-injection",
            ));
        }
        st.check_free(&[(ObjectKind::Drive, id)])?;
        inner.drive_io.set_filters(id, &filters);
        Ok(Outcome::Drive(st.drives[&id].clone()))
    }

    /// `IVdsDrive::SetFlags` / `ClearFlags` with `VDS_DRF_HOTSPARE`: a spare holds no LUN (so
    /// a drive holding one is not made a spare: `VDS_E_DEVICE_IN_USE`) and is not in the
    /// primordial pool. Setting what is already set changes nothing and announces nothing.
    pub(super) fn set_drive_flags(&self, id: Uuid, hotspare: bool) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Drive, id)?;
        let bit = DriveFlag::Hotspare.value();
        let mut d = st.drives[&id].clone();
        if (d.flags & bit != 0) == hotspare {
            return Ok(Outcome::Drive(d));
        }
        if hotspare {
            if is_data_dir_drive(&d, &inner.config.data_dir) {
                return Err(VdsError::not_supported(format!(
                    "drive {id} is the data dir's own drive; it is not made a hot spare"
                )));
            }
            if let Some(e) = st
                .luns
                .values()
                .find(|e| crate::extents::lun_uses_drive(&e.rec.lun, id))
            {
                return Err(VdsError::new(
                    Hresult::VDS_E_DEVICE_IN_USE,
                    format!(
                        "drive {id} holds LUN {}; a hot spare holds none",
                        e.rec.lun.id
                    ),
                ));
            }
            if let Some(pool) = super::pool::named_pool_of(st, id) {
                return Err(VdsError::new(
                    Hresult::VDS_E_DEVICE_IN_USE,
                    format!("drive {id} is in pool {pool}; a hot spare is in no pool"),
                ));
            }
        }
        st.check_free(&[(ObjectKind::Drive, id)])?;
        d.flags ^= bit;
        let row = d.clone();
        let change = Change::new()
            .store(move |tx| tx.put_drive(&row))
            .apply(move |st| {
                st.drives.insert(id, d);
            })
            .event(ObjectKind::Drive, EventKind::Modify, id);
        inner.commit(st, change, None)?;
        Ok(Outcome::Drive(st.drives[&id].clone()))
    }
}
