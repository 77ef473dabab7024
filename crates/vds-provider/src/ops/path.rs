//! SetStatus of the objects on a LUN's storage path: subsystem, controller, drive, and the
//! subsystem's SetControllerStatus (several controllers at once). Taking one OFFLINE takes
//! every LUN on it OFFLINE on the data path (quiesced and flushed first); a LUN that cannot
//! follow is FAILED.

use std::sync::Arc;

use parking_lot::MutexGuard;

use uuid::Uuid;
use vds_model::{
    Controller, ControllerStatus, Drive, DriveStatus, EventKind, Health, Hresult, LunStatus,
    ObjectKind, Subsystem, SubsystemStatus,
};
use vds_scsi::{LogicalUnit, LuState};
use vds_store::{LunRecord, StoreError, Tx};

use crate::commit::Change;
use crate::state::State;
use crate::{Outcome, Provider, VdsError};

use super::{judge_status, storage_err};

/// The stored row of a path object.
enum PathRow {
    Subsystem(Subsystem),
    Controller(Controller),
    Drive(Drive),
}

impl PathRow {
    fn of(st: &State, kind: ObjectKind, id: Uuid) -> Result<PathRow, VdsError> {
        let row = match kind {
            ObjectKind::Subsystem => st.subsystems.get(&id).cloned().map(PathRow::Subsystem),
            ObjectKind::Controller => st.controllers.get(&id).cloned().map(PathRow::Controller),
            _ => st.drives.get(&id).cloned().map(PathRow::Drive),
        };
        row.ok_or_else(|| State::missing(kind, id))
    }

    fn put(&self, tx: &mut Tx<'_>) -> Result<(), StoreError> {
        match self {
            PathRow::Subsystem(s) => tx.put_subsystem(s),
            PathRow::Controller(c) => tx.put_controller(c),
            PathRow::Drive(d) => tx.put_drive(d),
        }
    }
}

impl Provider {
    pub(super) fn set_path_status(
        &self,
        kind: ObjectKind,
        id: Uuid,
        raw: i64,
    ) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, kind, id)?;
        let (want_online, current_online, failed) = judge_path_status(st, kind, id, raw)?;
        // The LUNs whose path this object is part of.
        let affected: Vec<Uuid> = st
            .luns
            .values()
            .filter(|e| match kind {
                ObjectKind::Subsystem => e.rec.lun.subsystem == id,
                ObjectKind::Controller => e.rec.lun.subsystem == st.controllers[&id].subsystem,
                _ => e.rec.lun.drive == id,
            })
            .map(|e| e.rec.lun.id)
            .collect();
        let mut busy = vec![(kind, id)];
        busy.extend(affected.iter().map(|l| (ObjectKind::Lun, *l)));
        st.check_free(&busy)?;
        if failed {
            return Err(VdsError::new(
                Hresult::VDS_E_OBJECT_STATUS_FAILED,
                format!("{} {id} is FAILED", kind.label()),
            ));
        }
        if want_online == current_online {
            return Ok(self.path_outcome(st, kind, id));
        }
        let g = self.change_path(g, vec![(kind, id, want_online, current_online)], affected)?;
        Ok(self.path_outcome(&g, kind, id))
    }

    /// `IVdsSubSystem::SetControllerStatus`: every controller of `sub` in exactly one of the
    /// lists (BEHAVIOUR.md §14). All of them change in one commit, or none does.
    pub(super) fn set_controller_statuses(
        &self,
        sub: Uuid,
        online: Vec<Uuid>,
        offline: Vec<Uuid>,
    ) -> Result<Outcome, VdsError> {
        let inner = &self.inner;
        let mut g = inner.state.lock();
        let st = &mut *g;
        inner.object_call(st, ObjectKind::Subsystem, sub)?;
        let wanted = judge_controller_lists(st, sub, &online, &offline)?;
        let affected: Vec<Uuid> = st
            .luns
            .values()
            .filter(|e| e.rec.lun.subsystem == sub)
            .map(|e| e.rec.lun.id)
            .collect();
        let mut busy = vec![(ObjectKind::Subsystem, sub)];
        busy.extend(wanted.iter().map(|(c, _)| (ObjectKind::Controller, *c)));
        busy.extend(affected.iter().map(|l| (ObjectKind::Lun, *l)));
        st.check_free(&busy)?;
        if let Some((c, _)) = wanted
            .iter()
            .find(|(c, _)| st.controllers[c].status == ControllerStatus::Failed)
        {
            return Err(VdsError::new(
                Hresult::VDS_E_OBJECT_STATUS_FAILED,
                format!("controller {c} is FAILED"),
            ));
        }
        // Controllers already in the requested state stay as they are (no event).
        let changes: Vec<(ObjectKind, Uuid, bool, bool)> = wanted
            .iter()
            .map(|(c, want)| {
                let cur = st.controllers[c].status == ControllerStatus::Online;
                (ObjectKind::Controller, *c, *want, cur)
            })
            .filter(|(_, _, want, cur)| want != cur)
            .collect();
        let g = if changes.is_empty() {
            g
        } else {
            self.change_path(g, changes, affected)?
        };
        Ok(Outcome::Controllers(super::sorted(
            g.controllers
                .values()
                .filter(|c| c.subsystem == sub)
                .map(|c| (c.id, c.clone())),
        )))
    }

    /// Sets each path object of `objs` (kind, id, wanted ONLINE, now ONLINE) and makes the
    /// `affected` LUNs follow on the data path (quiesced and flushed before the store says
    /// OFFLINE); a LUN that cannot follow is FAILED. One commit, one MODIFY event per object.
    fn change_path<'s>(
        &'s self,
        mut g: MutexGuard<'s, State>,
        objs: Vec<(ObjectKind, Uuid, bool, bool)>,
        affected: Vec<Uuid>,
    ) -> Result<MutexGuard<'s, State>, VdsError> {
        let inner = &self.inner;
        let st = &mut *g;
        let mut ids: Vec<Uuid> = objs.iter().map(|o| o.1).collect();
        ids.extend(&affected);
        let slots = inner.claim(st, &ids);
        // Change the objects in memory first so lu_state sees the new path.
        let staged = objs.clone();
        inner.stage(
            st,
            Change::new().apply(move |st| {
                for (kind, id, want, _) in staged {
                    set_path_object(st, kind, id, want);
                }
            }),
        );
        let plan: Vec<(Uuid, Arc<LogicalUnit>, LuState)> = affected
            .iter()
            .map(|l| {
                let e = &st.luns[l];
                (*l, e.lu.clone(), st.lu_state(&e.rec.lun))
            })
            .collect();
        // Quiesce/flush (or probe) every affected LU outside the lock: the store says OFFLINE
        // only once they are flushed.
        let follow = || {
            let mut failures = Vec::new();
            for (l, lu, want) in plan {
                if lu.state() != want {
                    if let Err(e) = lu.set_state(want) {
                        failures.push((l, e));
                    }
                }
            }
            failures
        };
        // Not committed: put the objects back as they were.
        let restore = objs.clone();
        let undo = |_: &mut State, _: &Vec<(Uuid, std::io::Error)>| {
            Change::new().apply(move |st| {
                for (kind, id, _, cur) in restore {
                    set_path_object(st, kind, id, cur);
                }
            })
        };
        // A controller leaving ONLINE moves the LUNs it leaves without an ONLINE active
        // controller to the survivor (automatic failover, BEHAVIOUR.md §14).
        let left_online = objs
            .iter()
            .any(|(kind, _, want, cur)| *kind == ObjectKind::Controller && *cur && !*want);
        let touched = affected.clone();
        let build = |st: &mut State, failures: &Vec<(Uuid, std::io::Error)>| {
            let mut recs: Vec<LunRecord> = Vec::new();
            for (l, _) in failures {
                let mut rec = st.lun(*l)?.rec.clone();
                rec.lun.status = LunStatus::Failed;
                rec.lun.health = Health::Failed;
                recs.push(rec);
            }
            if left_online {
                for l in &affected {
                    let Some(to) = st.failover_target(&st.lun(*l)?.rec.lun) else {
                        continue;
                    };
                    match recs.iter_mut().find(|r| r.lun.id == *l) {
                        Some(rec) => rec.lun.active_controllers = vec![to],
                        None => {
                            let mut rec = st.lun(*l)?.rec.clone();
                            rec.lun.active_controllers = vec![to];
                            recs.push(rec);
                        }
                    }
                }
            }
            let rows = objs
                .iter()
                .map(|(kind, id, _, _)| PathRow::of(st, *kind, *id))
                .collect::<Result<Vec<_>, _>>()?;
            let mut change = Change::new();
            for rec in &recs {
                change = change.event(ObjectKind::Lun, EventKind::Modify, rec.lun.id);
            }
            for (kind, id, _, _) in &objs {
                change = change.event(*kind, EventKind::Modify, *id);
            }
            let lun_rows = recs.clone();
            Ok(change
                .store(move |tx| {
                    for row in &rows {
                        row.put(tx)?;
                    }
                    for rec in &lun_rows {
                        tx.put_lun(rec)?;
                    }
                    Ok(())
                })
                .apply(move |st| {
                    for rec in recs {
                        if let Some(e) = st.luns.get_mut(&rec.lun.id) {
                            e.rec = rec;
                        }
                    }
                    // The LUs report the new controller statuses and active sets.
                    st.push_access_states(touched);
                }))
        };
        let (g, failures, r) = inner.commit_prepared(g, slots, follow, undo, build);
        r?;
        if let Some((l, e)) = failures.first() {
            return Err(storage_err(format!("LUN {l} could not follow"), e));
        }
        Ok(g)
    }

    pub(super) fn path_outcome(&self, st: &State, kind: ObjectKind, id: Uuid) -> Outcome {
        match kind {
            ObjectKind::Subsystem => Outcome::Subsystem(st.subsystems[&id].clone()),
            ObjectKind::Controller => Outcome::Controller(st.controllers[&id].clone()),
            _ => Outcome::Drive(st.drives[&id].clone()),
        }
    }
}

/// Step 4 of SetControllerStatus: each id names a controller (else NOT_FOUND or DELETED) of
/// this subsystem, appears once in all, and every controller of the subsystem appears
/// (else E_INVALIDARG naming the entry). Returns (controller, wanted ONLINE).
fn judge_controller_lists(
    st: &State,
    sub: Uuid,
    online: &[Uuid],
    offline: &[Uuid],
) -> Result<Vec<(Uuid, bool)>, VdsError> {
    let lists = [("online", online), ("offline", offline)];
    let (listed, mut omitted) = super::partition_controllers(st, sub, lists, "")?;
    omitted.sort();
    if let Some(c) = omitted.first() {
        let why = if online.is_empty() && offline.is_empty() {
            "both lists are empty".to_string()
        } else {
            format!("controller {c} is in neither list")
        };
        return Err(VdsError::invalid_arg(
            "online/offline",
            format!("{why}: every controller of subsystem {sub} must be in exactly one of them"),
        ));
    }
    Ok(listed.into_iter().map(|(c, list)| (c, list == 0)).collect())
}

/// Steps 4/5 for the requested status of a path object: ONLINE and OFFLINE are settable,
/// the rest reported. Returns (wanted ONLINE, now ONLINE, now FAILED).
fn judge_path_status(
    st: &State,
    kind: ObjectKind,
    id: Uuid,
    raw: i64,
) -> Result<(bool, bool, bool), VdsError> {
    // Step 4/5: judge the value; ONLINE and OFFLINE are settable, the rest reported.
    let judged = match kind {
        ObjectKind::Subsystem => {
            let v = judge_status(
                raw,
                "VDS_SUB_SYSTEM_STATUS",
                "subsystem",
                SubsystemStatus::from_i64,
                SubsystemStatus::Unknown,
                &[SubsystemStatus::Online, SubsystemStatus::Offline],
                SubsystemStatus::vds_name,
            )?;
            let cur = st.subsystems[&id].status;
            (
                v == SubsystemStatus::Online,
                cur == SubsystemStatus::Online,
                cur == SubsystemStatus::Failed,
            )
        }
        ObjectKind::Controller => {
            let v = judge_status(
                raw,
                "VDS_CONTROLLER_STATUS",
                "controller",
                ControllerStatus::from_i64,
                ControllerStatus::Unknown,
                &[ControllerStatus::Online, ControllerStatus::Offline],
                ControllerStatus::vds_name,
            )?;
            let cur = st.controllers[&id].status;
            (
                v == ControllerStatus::Online,
                cur == ControllerStatus::Online,
                cur == ControllerStatus::Failed,
            )
        }
        _ => {
            let v = judge_status(
                raw,
                "VDS_DRIVE_STATUS",
                "drive",
                DriveStatus::from_i64,
                DriveStatus::Unknown,
                &[DriveStatus::Online, DriveStatus::Offline],
                DriveStatus::vds_name,
            )?;
            let cur = st.drives[&id].status;
            (
                v == DriveStatus::Online,
                cur == DriveStatus::Online,
                cur == DriveStatus::Failed,
            )
        }
    };
    Ok(judged)
}

fn set_path_object(st: &mut State, kind: ObjectKind, id: Uuid, online: bool) {
    match kind {
        ObjectKind::Subsystem => {
            if let Some(s) = st.subsystems.get_mut(&id) {
                s.status = if online {
                    SubsystemStatus::Online
                } else {
                    SubsystemStatus::Offline
                };
            }
        }
        ObjectKind::Controller => {
            if let Some(c) = st.controllers.get_mut(&id) {
                c.status = if online {
                    ControllerStatus::Online
                } else {
                    ControllerStatus::Offline
                };
            }
        }
        _ => {
            if let Some(d) = st.drives.get_mut(&id) {
                d.status = if online {
                    DriveStatus::Online
                } else {
                    DriveStatus::Offline
                };
            }
        }
    }
}
