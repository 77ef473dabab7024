//! Hints and identification in the provider (BEHAVIOUR.md §14 rules 7 and 8): hints judged
//! (nothing changes on a bad one), applied to the very LU the data path serves, stored (they
//! survive a restart), one MODIFY event per real change; a MODE SELECT of WCE comes back as
//! the `write_caching_enabled` hint; the identification is the LU's identity with the disk
//! signature read from the LUN; LUNs are found by any designator.

use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;
use vds_model::{
    hint_mask, DiskSignature, EventKind, Hresult, LunHints, LunInformation, ObjectKind,
};
use vds_scsi::{ItNexus, LogicalUnit, ScsiCommand, ScsiStatus, TaskAttr};

use super::{drain, Fixture};
use crate::{AppliedHints, Command, HintsRequest, Outcome};

fn nexus() -> ItNexus {
    ItNexus {
        id: 9,
        initiator_name: "iqn.2026-01.test:hints".into(),
        initiator_port: "iqn.2026-01.test:hints,i,0x230000000009".into(),
        target_port: "iqn.2026-11.local.vds:default,t,0x0001".into(),
        relative_target_port: 1,
        target_port_group: 1,
    }
}

fn served_lu(f: &Fixture, id: Uuid) -> Arc<LogicalUnit> {
    f.plane.last().targets[0]
        .luns
        .entries
        .iter()
        .find(|e| e.lu.id() == id)
        .map(|e| e.lu.clone())
        .expect("served by the default target")
}

/// Runs a command, retrying once past a unit attention.
fn exec(lu: &LogicalUnit, cdb: &[u8], data: &[u8]) -> (ScsiStatus, Vec<u8>) {
    for _ in 0..3 {
        let mut data_in = Vec::new();
        let cmd = ScsiCommand {
            cdb,
            data_out: data,
            expected_in_len: 255,
            attr: TaskAttr::Simple,
        };
        let o = lu.execute(&nexus(), &cmd, &mut data_in);
        let ua = o.sense.as_ref().is_some_and(|s| s[2] & 0x0F == 6);
        if !ua {
            return (o.status, data_in);
        }
    }
    panic!("unit attentions do not stop")
}

fn hints(f: &Fixture, id: Uuid) -> AppliedHints {
    match f.ok(Command::GetLunHints { id }) {
        Outcome::Hints(h) => *h,
        o => panic!("{o:?}"),
    }
}

fn put(f: &Fixture, id: Uuid, req: HintsRequest) -> Result<AppliedHints, crate::VdsError> {
    f.p.apply(Command::SetLunHints { id, hints: req })
        .map(|o| match o {
            Outcome::Hints(h) => *h,
            o => panic!("{o:?}"),
        })
}

#[test]
fn hints_are_judged_applied_stored_and_announced() {
    let mut f = Fixture::new(40110, false);
    let id = f.luns()[0].id;
    let got = hints(&f, id);
    assert_eq!(got.hints, LunHints::default());
    assert_eq!(got.mask, hint_mask::APPLIED);
    let mut rx = f.p.subscribe();

    // Step 4: each bad member is E_INVALIDARG naming it, and changes nothing.
    let bad: Vec<(&str, HintsRequest)> = vec![
        (
            "optimal_read_size",
            HintsRequest {
                optimal_read_size: Some(1000),
                ..Default::default()
            },
        ),
        (
            "optimal_write_size",
            HintsRequest {
                optimal_write_size: Some(64 << 20),
                ..Default::default()
            },
        ),
        (
            "optimal_write_alignment",
            HintsRequest {
                optimal_write_alignment: Some(512 << 16),
                ..Default::default()
            },
        ),
        (
            "rebuild_priority",
            HintsRequest {
                rebuild_priority: Some(16),
                ..Default::default()
            },
        ),
        (
            "rebuild_priority",
            HintsRequest {
                rebuild_priority: Some(-1),
                ..Default::default()
            },
        ),
        (
            "stripe_sizes",
            HintsRequest {
                other: vec![("stripe_sizes".into(), "0".into())],
                ..Default::default()
            },
        ),
    ];
    for (field, mut req) in bad {
        req.write_caching_enabled = Some(false);
        let e = put(&f, id, req).unwrap_err();
        assert_eq!(e.hresult, Hresult::E_INVALIDARG, "{field}: {e}");
        assert!(e.message.starts_with(field), "{field}: {e}");
    }
    assert_eq!(hints(&f, id).hints, LunHints::default());
    assert!(drain(&mut rx).is_empty());
    // The object first: an unknown LUN is not found whatever the body.
    let e = put(
        &f,
        Uuid::new_v4(),
        HintsRequest {
            rebuild_priority: Some(99),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.hresult, Hresult::VDS_E_OBJECT_NOT_FOUND);

    let lu = served_lu(&f, id);
    let req = HintsRequest {
        write_caching_enabled: Some(false),
        read_back_verify_enabled: Some(true),
        optimal_write_size: Some(256 << 10),
        optimal_write_alignment: Some(64 << 10),
        rebuild_priority: Some(7),
        fast_crash_recovery_required: Some(true),
        other: vec![
            ("is_yankable".into(), "true".into()),
            ("media_scan_enabled".into(), "false".into()),
        ],
        ..Default::default()
    };
    let got = put(&f, id, req.clone()).unwrap();
    assert_eq!(
        got.mask,
        hint_mask::WRITE_CACHING_ENABLED
            | hint_mask::READ_BACK_VERIFY_ENABLED
            | hint_mask::FAST_CRASH_RECOVERY_REQUIRED
            | hint_mask::MEDIA_SCAN_ENABLED,
        "what was asked and applied"
    );
    assert_eq!(got.not_applied.len(), 1);
    assert_eq!(got.not_applied[0].field, "is_yankable");
    let want = LunHints {
        write_caching_enabled: false,
        read_back_verify_enabled: true,
        optimal_write_size: 256 << 10,
        optimal_write_alignment: 64 << 10,
        rebuild_priority: 7,
        fast_crash_recovery_required: true,
        ..LunHints::default()
    };
    assert_eq!(got.hints, want);
    assert_eq!(
        drain(&mut rx),
        vec![(ObjectKind::Lun, EventKind::Modify, id)]
    );
    // On the LU the data path serves, at once.
    assert!(!lu.write_cache());
    assert!(lu.hints().read_back_verify);
    assert_eq!(lu.hints().optimal_write_size, 256 << 10);
    let lun = f.lun(id);
    assert_eq!(lun.rebuild_priority, 7);
    assert_eq!(
        lun.flags,
        vds_model::LunFlag::bits(&[
            vds_model::LunFlag::ReadCacheEnabled,
            vds_model::LunFlag::ReadBackVerifyEnabled
        ])
    );
    // The same again: nothing changes, no event.
    put(&f, id, req).unwrap();
    assert!(drain(&mut rx).is_empty());

    f.restart();
    assert_eq!(hints(&f, id).hints, want, "stored");
    let lu = served_lu(&f, id);
    assert!(!lu.write_cache(), "the rebuilt LU has them");
    assert!(lu.hints().read_back_verify);
    assert_eq!(f.lun(id).rebuild_priority, 7);
}

#[test]
fn mode_select_of_wce_is_the_write_caching_hint() {
    let mut f = Fixture::new(40111, false);
    let id = f.luns()[0].id;
    let lu = served_lu(&f, id);
    let mut rx = f.p.subscribe();
    // MODE SELECT(6), PF: the caching page with WCE 0.
    let mut page = vec![0u8; 4 + 20];
    page[4] = 0x08;
    page[5] = 0x12;
    let (status, _) = exec(&lu, &[0x15, 0x10, 0, 0, page.len() as u8, 0], &page);
    assert_eq!(status, ScsiStatus::Good);
    let deadline = Instant::now() + Duration::from_secs(10);
    while hints(&f, id).hints.write_caching_enabled {
        assert!(Instant::now() < deadline, "the provider never stored WCE 0");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        drain(&mut rx),
        vec![(ObjectKind::Lun, EventKind::Modify, id)]
    );
    assert_eq!(
        f.lun(id).flags & vds_model::LunFlag::WriteCacheEnabled.value(),
        0
    );
    f.restart();
    assert!(!hints(&f, id).hints.write_caching_enabled, "stored");
    let lu = served_lu(&f, id);
    assert!(!lu.write_cache());
    // MODE SENSE(6) of the caching page: WCE 0 after the restart.
    let (status, d) = exec(&lu, &[0x1A, 0x08, 0x08, 0, 255, 0], &[]);
    assert_eq!(status, ScsiStatus::Good);
    assert_eq!(d[4 + 2] & 0x04, 0);
}

#[test]
fn create_lun_takes_hints() {
    let f = Fixture::new(40112, false);
    let lun = f.create_lun(|a| {
        a.hints = Some(HintsRequest {
            write_through_caching_enabled: Some(true),
            rebuild_priority: Some(3),
            ..Default::default()
        })
    });
    let h = hints(&f, lun.id).hints;
    assert!(h.write_through_caching_enabled);
    assert_eq!(h.rebuild_priority, 3);
    assert_eq!(lun.rebuild_priority, 3);
    // A bad hint refuses the create before anything is made.
    let before = f.luns().len();
    let e = f.err(Command::CreateLun(crate::CreateLunArgs {
        subsystem: f.subsystem(),
        size_bytes: 1 << 20,
        friendly_name: None,
        lun_type: None,
        thin: None,
        drive: None,
        unmasking_list: None,
        targets: None,
        backing: None,
        read_only: None,
        hints: Some(HintsRequest {
            optimal_read_alignment: Some(100),
            ..Default::default()
        }),
        drives: None,
        plexes: None,
        stripe_size: None,
        load_balance: None,
    }));
    assert_eq!(e.hresult, Hresult::E_INVALIDARG);
    assert!(e.message.starts_with("optimal_read_alignment"), "{e}");
    assert_eq!(f.luns().len(), before);
}

fn identification(f: &Fixture, id: Uuid) -> LunInformation {
    match f.ok(Command::GetLunIdentification { id }) {
        Outcome::Identification(i) => *i,
        o => panic!("{o:?}"),
    }
}

fn found(f: &Fixture, identifier: &str) -> Vec<Uuid> {
    match f.ok(Command::FindLuns {
        identifier: identifier.into(),
    }) {
        Outcome::Luns(l) => l.into_iter().map(|l| l.id).collect(),
        o => panic!("{o:?}"),
    }
}

#[test]
fn identification_is_the_lu_identity_and_finds_luns() {
    let f = Fixture::new(40113, false);
    let id = f.luns()[0].id;
    let other = f.create_lun(|_| {}).id;
    let lu = served_lu(&f, id);
    let info = identification(&f, id);
    let ident = lu.identity();
    assert_eq!(info.serial_number, ident.serial);
    assert_eq!(info.vendor, ident.vendor);
    assert_eq!(info.identifiers.len(), ident.designators.len());
    for (a, b) in info.identifiers.iter().zip(&ident.designators) {
        assert_eq!(a.bytes, b.bytes);
        assert_eq!(a.id_type.value(), i32::from(b.designator_type));
    }
    assert_eq!(info.disk_signature, DiskSignature::None, "blank");
    let portal = f.portals()[0].clone();
    assert_eq!(info.interconnects.len(), 1, "{:?}", info.interconnects);
    assert_eq!(info.interconnects[0].portal, portal.id);
    assert_eq!(
        info.interconnects[0].address,
        portal.socket_addr().to_string()
    );
    assert_eq!(
        info.interconnects[0].ports[0].name,
        "iqn.2026-11.local.vds:default,t,0x0001"
    );
    assert!(
        identification(&f, other).interconnects.is_empty(),
        "a LUN in no target is served by no portal"
    );

    // An MBR written through the LU.
    let mut sector = vec![0u8; 512];
    sector[440..444].copy_from_slice(&0x1234_ABCDu32.to_le_bytes());
    sector[510] = 0x55;
    sector[511] = 0xAA;
    let (status, _) = exec(&lu, &[0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0], &sector);
    assert_eq!(status, ScsiStatus::Good);
    assert_eq!(
        identification(&f, id).disk_signature,
        DiskSignature::Mbr(0x1234_ABCD)
    );

    // Found by each designator, in any case, with or without prefixes.
    let naa = vds_scsi::identity::hex(&ident.designators[0].bytes);
    for q in [
        format!("naa.{naa}"),
        format!("NAA.{}", naa.to_uppercase()),
        naa.clone(),
        ident.serial.to_uppercase(),
        ident.designators[1].text(),
        format!("t10.{}", ident.designators[1].text().replace("     ", " ")),
    ] {
        assert_eq!(found(&f, &q), vec![id], "{q}");
    }
    assert!(found(&f, "naa.600564400000000000000000000000ff").is_empty());
    let e = f.err(Command::FindLuns {
        identifier: "naa.xyz".into(),
    });
    assert_eq!(e.hresult, Hresult::E_INVALIDARG);
    assert!(e.message.starts_with("identifier"), "{e}");
}
