//! SetStatus of the objects on a LUN's storage path: subsystem, controller, drive. Taking
//! one OFFLINE takes every LUN on it OFFLINE on the data path (quiesced and flushed first);
//! a LUN that cannot follow is FAILED.

use std::sync::Arc;

use uuid::Uuid;
use vds_model::{
    Controller, ControllerStatus, Drive, DriveStatus, EventKind, Health, Hresult, LunStatus,
    ObjectKind, Subsystem, SubsystemStatus,
};
use vds_scsi::{LogicalUnit, LuState};
use vds_store::{StoreError, Tx};

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
        let mut ids = vec![id];
        ids.extend(&affected);
        let slots = inner.claim(st, &ids);
        // Change the object in memory first so lu_state sees the new path.
        inner.stage(
            st,
            Change::new().apply(|st| set_path_object(st, kind, id, want_online)),
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
        // Not committed: put the object back as it was.
        let undo = |_: &mut State, _: &Vec<(Uuid, std::io::Error)>| {
            Change::new().apply(move |st| set_path_object(st, kind, id, current_online))
        };
        let build = |st: &mut State, failures: &Vec<(Uuid, std::io::Error)>| {
            let mut recs = Vec::new();
            for (l, _) in failures {
                let mut rec = st.lun(*l)?.rec.clone();
                rec.lun.status = LunStatus::Failed;
                rec.lun.health = Health::Failed;
                recs.push(rec);
            }
            let row = PathRow::of(st, kind, id)?;
            let mut change = Change::new();
            for rec in &recs {
                change = change.event(ObjectKind::Lun, EventKind::Modify, rec.lun.id);
            }
            let rows = recs.clone();
            Ok(change
                .store(move |tx| {
                    row.put(tx)?;
                    for rec in &rows {
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
                })
                .event(kind, EventKind::Modify, id))
        };
        let (g, failures, r) = inner.commit_prepared(g, slots, follow, undo, build);
        r?;
        if let Some((l, e)) = failures.first() {
            return Err(storage_err(format!("LUN {l} could not follow"), e));
        }
        Ok(self.path_outcome(&g, kind, id))
    }

    pub(super) fn path_outcome(&self, st: &State, kind: ObjectKind, id: Uuid) -> Outcome {
        match kind {
            ObjectKind::Subsystem => Outcome::Subsystem(st.subsystems[&id].clone()),
            ObjectKind::Controller => Outcome::Controller(st.controllers[&id].clone()),
            _ => Outcome::Drive(st.drives[&id].clone()),
        }
    }
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
