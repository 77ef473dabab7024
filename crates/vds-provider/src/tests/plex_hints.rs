//! `IVdsLunPlex::QueryHints` / `ApplyHints` (BEHAVIOUR.md §15): a plex's hints are its LUN's,
//! in `VDS_HINTS` form; applied through any plex they apply to the LUN and so to every plex at
//! once; a `VDS_HINTS2`-only member is refused by name and changes nothing; an unknown plex is
//! not found and a deleted LUN's plex is deleted, also after a restart.

use std::path::Path;

use uuid::Uuid;
use vds_model::{hint_mask, EventKind, Hresult, LunHints, LunType, ObjectKind};

use super::{drain, Fixture};
use crate::ops::plex::HINTS_V1_MASK;
use crate::{AppliedHints, Command, HintsRequest, Outcome};

fn block_drive(f: &Fixture, root: &Path, name: &str) -> Uuid {
    let p = root.join(name);
    std::fs::File::create(&p)
        .unwrap()
        .set_len(16 << 20)
        .unwrap();
    match f.ok(Command::AddDrive {
        subsystem: f.subsystem(),
        kind: "block".into(),
        path: p.display().to_string(),
        friendly_name: Some(name.into()),
        force: false,
    }) {
        Outcome::Drive(d) => d.id,
        o => panic!("{o:?}"),
    }
}

fn plex_hints(f: &Fixture, id: Uuid) -> AppliedHints {
    match f.ok(Command::GetPlexHints { id }) {
        Outcome::PlexHints(h) => *h,
        o => panic!("{o:?}"),
    }
}

fn lun_hints(f: &Fixture, id: Uuid) -> LunHints {
    match f.ok(Command::GetLunHints { id }) {
        Outcome::Hints(h) => h.hints,
        o => panic!("{o:?}"),
    }
}

fn put(id: Uuid, hints: HintsRequest) -> Command {
    Command::SetPlexHints { id, hints }
}

#[test]
fn plex_hints_are_the_luns_and_apply_to_every_plex() {
    let mut f = Fixture::new(41411, false);
    let root = tempfile::tempdir().unwrap();
    let a = block_drive(&f, root.path(), "a.img");
    let b = block_drive(&f, root.path(), "b.img");
    let lun = f.create_lun(|x| {
        x.lun_type = Some(LunType::Mirror);
        x.drives = Some(vec![a, b]);
        x.size_bytes = 4 << 20;
    });
    let (p0, p1) = (lun.plexes[0].id, lun.plexes[1].id);

    // QueryHints: the LUN's hints, with the VDS_HINTS bits of the applied mask only.
    let got = plex_hints(&f, p0);
    assert_eq!(got.hints, lun_hints(&f, lun.id));
    assert_eq!(got.mask, hint_mask::APPLIED & HINTS_V1_MASK);
    assert_eq!(got.mask & hint_mask::WRITE_CACHING_ENABLED, 0);

    // ApplyHints through plex 0: the LUN (and so plex 1) has them; one MODIFY of the LUN.
    let mut rx = f.p.subscribe();
    let req = HintsRequest {
        read_back_verify_enabled: Some(true),
        rebuild_priority: Some(7),
        other: vec![("mostly_reads".into(), "true".into())],
        ..Default::default()
    };
    let applied = match f.ok(put(p0, req)) {
        Outcome::PlexHints(h) => *h,
        o => panic!("{o:?}"),
    };
    assert!(applied.hints.read_back_verify_enabled);
    assert_eq!(applied.mask, hint_mask::READ_BACK_VERIFY_ENABLED);
    assert_eq!(applied.not_applied.len(), 1);
    assert_eq!(applied.not_applied[0].field, "mostly_reads");
    assert_eq!(
        drain(&mut rx),
        vec![(ObjectKind::Lun, EventKind::Modify, lun.id)]
    );
    let now = lun_hints(&f, lun.id);
    assert!(now.read_back_verify_enabled);
    assert_eq!(now.rebuild_priority, 7);
    assert_eq!(f.lun(lun.id).rebuild_priority, 7);
    assert_eq!(plex_hints(&f, p1).hints, now);
    assert_eq!(plex_hints(&f, p0).hints, now);

    // VDS_HINTS2-only members are refused by name; the same rules as the LUN's call hold.
    let e = f.err(put(
        p1,
        HintsRequest {
            write_caching_enabled: Some(false),
            read_back_verify_enabled: Some(false),
            ..Default::default()
        },
    ));
    assert_eq!(e.hresult, Hresult::E_INVALIDARG);
    assert!(e.message.contains("write_caching_enabled"), "{e:?}");
    let e = f.err(put(
        p1,
        HintsRequest {
            other: vec![
                ("media_scan_enabled".into(), "false".into()),
                ("bus_type".into(), "iscsi".into()),
            ],
            ..Default::default()
        },
    ));
    assert_eq!(e.hresult, Hresult::E_INVALIDARG);
    assert!(e.message.contains("bus_type, media_scan_enabled"), "{e:?}");
    let e = f.err(put(
        p1,
        HintsRequest {
            rebuild_priority: Some(16),
            ..Default::default()
        },
    ));
    assert_eq!(e.hresult, Hresult::E_INVALIDARG);
    assert!(e.message.starts_with("rebuild_priority"), "{e:?}");
    assert_eq!(
        lun_hints(&f, lun.id),
        now,
        "a refused call changed the hints"
    );

    // Unknown plex; then the plexes of a deleted LUN, before and after a restart.
    let nobody = Uuid::new_v4();
    assert_eq!(
        f.code(Command::GetPlexHints { id: nobody }),
        Hresult::VDS_E_OBJECT_NOT_FOUND
    );
    assert_eq!(
        f.code(put(nobody, HintsRequest::default())),
        Hresult::VDS_E_OBJECT_NOT_FOUND
    );
    f.ok(Command::DeleteLun { id: lun.id });
    for _ in 0..2 {
        assert_eq!(
            f.code(Command::GetPlexHints { id: p0 }),
            Hresult::VDS_E_OBJECT_DELETED
        );
        assert_eq!(
            f.code(put(p1, HintsRequest::default())),
            Hresult::VDS_E_OBJECT_DELETED
        );
        assert_eq!(
            f.code(Command::GetPlex { id: p1 }),
            Hresult::VDS_E_OBJECT_DELETED
        );
        f.restart();
    }
}
