//! Read-only LUNs (a vds extension of `VDS_LUN_PROP`): created read-only or switched with
//! PATCH, stored, one MODIFY event per real change, and enforced by the very LU the data path
//! serves (DATA PROTECT / WRITE PROTECTED on writes) at once and after a restart.

use std::sync::Arc;

use uuid::Uuid;
use vds_model::{EventKind, Hresult, ObjectKind};
use vds_scsi::{ItNexus, LogicalUnit, ScsiCommand, ScsiOutcome, ScsiStatus, TaskAttr};

use super::{drain, Fixture};
use crate::{BackingSpec, Command};

fn nexus() -> ItNexus {
    ItNexus {
        id: 7,
        initiator_name: "iqn.2026-01.test:ro".into(),
        initiator_port: "iqn.2026-01.test:ro,i,0x230000000007".into(),
        target_port: "iqn.2026-11.local.vds:default,t,0x0001".into(),
        relative_target_port: 1,
        target_port_group: 1,
    }
}

/// The LU the last published view serves for LUN `id` (through the default target).
fn served_lu(f: &Fixture, id: Uuid) -> Arc<LogicalUnit> {
    let view = f.plane.last();
    view.targets[0]
        .luns
        .entries
        .iter()
        .find(|e| e.lu.id() == id)
        .map(|e| e.lu.clone())
        .expect("the LUN is served by the default target")
}

fn exec(lu: &LogicalUnit, cdb: &[u8], data: &[u8]) -> ScsiOutcome {
    let mut data_in = Vec::new();
    let cmd = ScsiCommand {
        cdb,
        data_out: data,
        expected_in_len: 255,
        attr: TaskAttr::Simple,
    };
    lu.execute(&nexus(), &cmd, &mut data_in)
}

/// (key, ASC, ASCQ) of a fixed-format sense.
fn kcq(o: &ScsiOutcome) -> (u8, u8, u8) {
    let s = o.sense.as_ref().expect("sense");
    (s[2] & 0x0F, s[12], s[13])
}

/// WRITE(10): 2A | 00 | LBA 0 | 00 | 1 block | 00.
const WRITE10: [u8; 10] = [0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0];

fn patch(id: Uuid, read_only: Option<bool>) -> Command {
    Command::PatchLun {
        id,
        friendly_name: None,
        unmasking_list: None,
        read_only,
    }
}

#[test]
fn read_only_is_created_patched_stored_and_enforced() {
    let mut f = Fixture::new(40100, false);
    assert!(!f.luns()[0].read_only, "the default LUN is writable");
    let target = f.default_target().id;
    let lun = f.create_lun(|a| {
        a.read_only = Some(true);
        a.targets = Some(vec![target]);
        a.backing = Some(BackingSpec {
            kind: vds_model::BackingKind::Memory,
            ..BackingSpec::default()
        });
    });
    assert!(lun.read_only);
    assert!(f.lun(lun.id).read_only);
    let lu = served_lu(&f, lun.id);
    assert!(lu.write_protected());
    let block = [0x5Au8; 512];
    // DATA PROTECT / WRITE PROTECTED.
    assert_eq!(kcq(&exec(&lu, &WRITE10, &block)), (7, 0x27, 0x00));

    // Writable again: one MODIFY, the same LU changes at once (after one 06/2A/01).
    let mut rx = f.p.subscribe();
    f.ok(patch(lun.id, Some(false)));
    assert_eq!(
        drain(&mut rx),
        vec![(ObjectKind::Lun, EventKind::Modify, lun.id)]
    );
    assert!(!f.lun(lun.id).read_only);
    assert!(!lu.write_protected());
    assert_eq!(kcq(&exec(&lu, &WRITE10, &block)), (6, 0x2A, 0x01));
    assert_eq!(exec(&lu, &WRITE10, &block).status, ScsiStatus::Good);

    // No change, no event (and no field at all, none either).
    f.ok(patch(lun.id, Some(false)));
    f.ok(patch(lun.id, None));
    assert!(drain(&mut rx).is_empty());

    // Read-only again, then a restart: stored, and the rebuilt LU is protected.
    f.ok(patch(lun.id, Some(true)));
    assert_eq!(
        drain(&mut rx),
        vec![(ObjectKind::Lun, EventKind::Modify, lun.id)]
    );
    assert!(lu.write_protected());
    f.restart();
    assert!(f.lun(lun.id).read_only);
    // A memory LUN comes back empty but still read-only.
    let lu = served_lu(&f, lun.id);
    assert!(lu.write_protected());
    let mut o = exec(&lu, &WRITE10, &block);
    if o.status == ScsiStatus::CheckCondition && kcq(&o).0 == 6 {
        o = exec(&lu, &WRITE10, &block);
    }
    assert_eq!(kcq(&o), (7, 0x27, 0x00));
}

#[test]
fn read_only_patch_follows_the_usual_checks() {
    let f = Fixture::new(40101, false);
    let id = f.luns()[0].id;
    // An unknown LUN is not found, whatever the body.
    assert_eq!(
        f.code(patch(Uuid::new_v4(), Some(true))),
        Hresult::VDS_E_OBJECT_NOT_FOUND
    );
    // A bad field next to it changes nothing (validation comes before any change).
    assert_eq!(
        f.code(Command::PatchLun {
            id,
            friendly_name: None,
            unmasking_list: Some(";".into()),
            read_only: Some(true),
        }),
        Hresult::E_INVALIDARG
    );
    assert!(!f.lun(id).read_only);
    assert!(!served_lu(&f, id).write_protected());
    // Together with a rename: both land.
    f.ok(Command::PatchLun {
        id,
        friendly_name: Some("frozen".into()),
        unmasking_list: None,
        read_only: Some(true),
    });
    let l = f.lun(id);
    assert_eq!((l.friendly_name.as_str(), l.read_only), ("frozen", true));
    assert!(served_lu(&f, id).write_protected());
}
