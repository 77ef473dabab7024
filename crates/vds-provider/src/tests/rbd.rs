//! RBD LUNs (docs/SCALEOUT.md): the requests refused before any cluster is reached. This
//! process never connects one, so a well-formed request answers VDS_E_NOT_SUPPORTED; the
//! LUNs themselves are tested against a real one-node Ceph in `crates/vdsd/tests/rbd.rs`.

use vds_model::{BackingKind, Hresult};

use super::Fixture;
use crate::command::BackingSpec;
use crate::Command;

fn rbd(pool: Option<&str>, image: Option<&str>) -> BackingSpec {
    BackingSpec {
        kind: BackingKind::Rbd,
        pool: pool.map(str::to_string),
        image: image.map(str::to_string),
        ..BackingSpec::default()
    }
}

#[test]
fn rbd_backings_are_checked_precisely_and_need_a_cluster() {
    let f = Fixture::new(41092, false);
    let create = |b: BackingSpec| {
        let mut a = f.lun_args();
        a.backing = Some(b);
        f.err(Command::CreateLun(a))
    };
    let cases: Vec<(BackingSpec, Hresult, &str)> = vec![
        (rbd(None, Some("i")), Hresult::E_INVALIDARG, "backing.pool"),
        (rbd(Some("p"), None), Hresult::E_INVALIDARG, "backing.image"),
        (
            rbd(Some("p/q"), Some("i")),
            Hresult::E_INVALIDARG,
            "backing.pool",
        ),
        (
            rbd(Some("p"), Some("i@snap")),
            Hresult::E_INVALIDARG,
            "backing.image",
        ),
        (
            rbd(Some("p"), Some("")),
            Hresult::E_INVALIDARG,
            "backing.image",
        ),
        (
            rbd(Some("p"), Some(&"x".repeat(256))),
            Hresult::E_INVALIDARG,
            "backing.image",
        ),
        (
            BackingSpec {
                path: Some("/tmp/x".into()),
                ..rbd(Some("p"), Some("i"))
            },
            Hresult::E_INVALIDARG,
            "backing.path",
        ),
        (
            BackingSpec {
                wipe: true,
                ..rbd(Some("p"), Some("i"))
            },
            Hresult::E_INVALIDARG,
            "backing.wipe",
        ),
        (
            BackingSpec {
                kind: BackingKind::File,
                ..rbd(Some("p"), None)
            },
            Hresult::E_INVALIDARG,
            "backing.pool",
        ),
        (
            BackingSpec {
                kind: BackingKind::Memory,
                ..rbd(None, Some("i"))
            },
            Hresult::E_INVALIDARG,
            "backing.image",
        ),
        (
            rbd(Some("p"), Some("i")),
            Hresult::VDS_E_NOT_SUPPORTED,
            "--ceph-conf",
        ),
    ];
    for (b, code, says) in cases {
        let what = format!("{b:?}");
        let e = create(b);
        assert_eq!(e.hresult, code, "{what}: {e}");
        assert!(e.message.contains(says), "{what}: {e}");
    }
    assert_eq!(f.luns().len(), 1, "only the default LUN");
}
