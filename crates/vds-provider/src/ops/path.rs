//! SetStatus of the objects on a LUN's storage path: subsystem, controller, drive.

use std::sync::Arc;

use uuid::Uuid;
use vds_model::{
    ControllerStatus, DriveStatus, EventKind, Health, Hresult, LunStatus, ObjectKind,
    SubsystemStatus,
};
use vds_scsi::LuState;

use crate::engine::store_err;
use crate::state::State;
use crate::{Outcome, Provider, VdsError};

use super::*;

impl Provider {
    pub(super) fn set_path_status(
        &self,
        kind: ObjectKind,
        id: Uuid,
        raw: i64,
    ) -> Result<Outcome, VdsError> {
        let mut g = self.inner.state.lock();
        let st = &mut *g;
        self.inner.object_call(st, kind, id)?;
        // Step 4/5: judge the value; ONLINE and OFFLINE are settable, the rest reported.
        let (want_online, current_online, failed) = match kind {
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
        let slots = self.inner.claim(st, &ids);
        // Change the object in memory first so lu_state sees the new path.
        set_path_object(st, kind, id, want_online);
        let plan: Vec<(Uuid, Arc<vds_scsi::LogicalUnit>, LuState)> = affected
            .iter()
            .map(|l| {
                let e = &st.luns[l];
                (*l, e.lu.clone(), st.lu_state(&e.rec.lun))
            })
            .collect();
        drop(g);
        // Quiesce/flush (or probe) every affected LU outside the lock.
        let mut failures = Vec::new();
        for (l, lu, want) in plan {
            if lu.state() != want {
                if let Err(e) = lu.set_state(want) {
                    failures.push((l, e));
                }
            }
        }
        let mut g = self.inner.state.lock();
        let st = &mut *g;
        let r = (|| {
            let mut recs = Vec::new();
            for (l, _) in &failures {
                let mut rec = st.luns[l].rec.clone();
                rec.lun.status = LunStatus::Failed;
                rec.lun.health = Health::Failed;
                recs.push(rec);
            }
            let sub = st.subsystems.get(&id).cloned();
            let ctl = st.controllers.get(&id).cloned();
            let drv = st.drives.get(&id).cloned();
            st.store
                .write(|tx| {
                    match kind {
                        ObjectKind::Subsystem => {
                            tx.put_subsystem(sub.as_ref().expect("present"))?
                        }
                        ObjectKind::Controller => {
                            tx.put_controller(ctl.as_ref().expect("present"))?
                        }
                        _ => tx.put_drive(drv.as_ref().expect("present"))?,
                    }
                    for rec in &recs {
                        tx.put_lun(rec)?;
                    }
                    Ok(())
                })
                .map_err(store_err)?;
            for rec in recs {
                let lid = rec.lun.id;
                st.luns.get_mut(&lid).expect("present").rec = rec;
                self.inner.emit(ObjectKind::Lun, EventKind::Modify, lid);
            }
            self.inner.emit(kind, EventKind::Modify, id);
            Ok(())
        })();
        if r.is_err() {
            // Not committed: put the object back as it was.
            set_path_object(st, kind, id, current_online);
        }
        slots.release(st);
        r?;
        if let Some((l, e)) = failures.first() {
            return Err(storage_err(format!("LUN {l} could not follow"), e));
        }
        Ok(self.path_outcome(st, kind, id))
    }

    pub(super) fn path_outcome(&self, st: &State, kind: ObjectKind, id: Uuid) -> Outcome {
        match kind {
            ObjectKind::Subsystem => Outcome::Subsystem(st.subsystems[&id].clone()),
            ObjectKind::Controller => Outcome::Controller(st.controllers[&id].clone()),
            _ => Outcome::Drive(st.drives[&id].clone()),
        }
    }
}

pub(super) fn set_path_object(st: &mut State, kind: ObjectKind, id: Uuid, online: bool) {
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
