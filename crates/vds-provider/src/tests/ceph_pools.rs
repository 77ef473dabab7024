//! Ceph pools as storage pools and RBD LUNs' health from their pools' PGs (docs/SCALEOUT.md
//! "Ceph pools"), on reports handed to the provider as the poller hands them (this process
//! connects no cluster; `crates/vdsd/tests/ceph_pools.rs` does it against a real one): the
//! pools listed and derived, the figures, a departed pool's id a tombstone, a LUN's type,
//! plexes and health recorded with exactly one MODIFY per change.

use uuid::Uuid;
use vds_backstore::ceph::{PoolReport, Replication};
use vds_model::{BackingKind, EventKind, Health, Hresult, LunType, ObjectKind, StoragePoolStatus};

use super::{drain, Fixture};
use crate::ceph_pools::{pool_id, CephView};
use crate::{Command, MaxSizeArgs, Outcome};

fn report(id: i64, name: &str, apps: &[&str], size: u32, states: &[&str]) -> PoolReport {
    PoolReport {
        id,
        name: name.into(),
        replication: Replication::Replicated { size, min_size: 1 },
        applications: apps.iter().map(|a| a.to_string()).collect(),
        stored: 4096,
        bytes_used: 8192,
        max_avail: (3 << 30) + 100,
        pg_states: states.iter().map(|s| s.to_string()).collect(),
    }
}

fn record(f: &Fixture, view: CephView) {
    let mut st = f.p.inner.state.lock();
    f.p.inner.record_ceph(&mut st, view);
}

fn pools(f: &Fixture) -> Vec<vds_model::StoragePool> {
    match f.ok(Command::ListPools {
        subsystem: f.subsystem(),
    }) {
        Outcome::Pools(p) => p,
        o => panic!("{o:?}"),
    }
}

#[test]
fn ceph_pools_are_storage_pools_and_rbd_luns_follow_their_pgs() {
    let f = Fixture::new(41093, false);
    let fsid = Uuid::new_v4();
    let clean = ["active+clean", "active+clean"];
    record(
        &f,
        CephView {
            fsid,
            pools: vec![
                report(1, "rbd", &["rbd"], 1, &clean),
                report(2, "device_health_metrics", &["mgr_devicehealth"], 1, &clean),
                report(3, "vds2", &["rbd"], 2, &clean),
            ],
        },
    );
    let listed = pools(&f);
    let ceph: Vec<_> = listed
        .iter()
        .filter(|p| p.drives.is_empty() && p.name != listed[0].name)
        .collect();
    assert_eq!(
        ceph.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["rbd", "vds2"],
        "only pools with the rbd application"
    );
    let rbd = ceph[0];
    assert_eq!(rbd.id, pool_id(fsid, 1));
    assert_eq!(
        (rbd.total_managed, rbd.consumed, rbd.remaining),
        (4096 + (3 << 30) + 100, 4096, (3 << 30) + 100)
    );
    assert_eq!(
        (rbd.default_type, rbd.health),
        (LunType::Simple, Health::Healthy)
    );
    assert_eq!(rbd.attributes.thin_provisioned, Some(true));
    assert_eq!(ceph[1].default_type, LunType::Mirror);
    assert_eq!(
        ceph[1].attributes.raid_type,
        Some(vds_model::RaidType::Raid1)
    );
    let id2 = ceph[1].id;
    // QueryMaxLunCreateSize: max_avail in whole blocks; a type the replication does not make
    // is not supported, extents' arguments are refused.
    let max = |lun_type, drives: Option<Vec<Uuid>>| {
        f.p.apply(Command::MaxLunSize(MaxSizeArgs {
            subsystem: None,
            pool: Some(pool_id(fsid, 1)),
            lun_type,
            drives,
            plexes: None,
            stripe_size: None,
        }))
    };
    assert_eq!(max(None, None).unwrap(), Outcome::Size(3 << 30));
    assert_eq!(
        max(Some(LunType::Mirror), None).unwrap_err().hresult,
        Hresult::VDS_E_NOT_SUPPORTED
    );
    assert_eq!(
        max(None, Some(vec![])).unwrap_err().hresult,
        Hresult::E_INVALIDARG
    );
    assert_eq!(
        f.code(Command::DeletePool {
            id: pool_id(fsid, 1)
        }),
        Hresult::VDS_E_NOT_SUPPORTED
    );

    // A LUN in pool vds2 (planted: this process has no cluster to make the image).
    let lun = f.create_lun(|_| {}).id;
    {
        let mut st = f.p.inner.state.lock();
        let e = st.luns.get_mut(&lun).unwrap();
        e.rec.lun.backing.kind = BackingKind::Rbd;
        e.rec.lun.backing.path = Some("vds2/img".into());
    }
    let mut rx = f.p.subscribe();
    let step = |states: &[&str], size: u32| {
        record(
            &f,
            CephView {
                fsid,
                pools: vec![
                    report(1, "rbd", &["rbd"], 1, &clean),
                    report(3, "vds2", &["rbd"], size, states),
                ],
            },
        );
    };
    step(&clean, 2);
    let l = f.lun(lun);
    assert_eq!(
        (l.lun_type, l.plexes.len(), l.health),
        (LunType::Mirror, 2, Health::Healthy)
    );
    assert_eq!(drain(&mut rx), [(ObjectKind::Lun, EventKind::Modify, lun)]);
    step(&clean, 2);
    assert_eq!(drain(&mut rx), [], "nothing changed, nothing announced");
    step(&["active+clean", "active+undersized+degraded"], 2);
    assert_eq!(f.lun(lun).health, Health::FailedRedundancy);
    let p = pools(&f).into_iter().find(|p| p.id == id2).unwrap();
    assert_eq!(p.health, Health::FailedRedundancy);
    assert_eq!(p.provisioned, l.size_bytes, "the LUN in it");
    assert_eq!(drain(&mut rx), [(ObjectKind::Lun, EventKind::Modify, lun)]);
    step(&["undersized+degraded+peered"], 2);
    assert_eq!(f.lun(lun).health, Health::Failed);
    let p = pools(&f).into_iter().find(|p| p.id == id2).unwrap();
    assert_eq!(
        (p.status, p.health),
        (StoragePoolStatus::Offline, Health::Failed)
    );
    step(&["active+recovering"], 2);
    assert_eq!(f.lun(lun).health, Health::Rebuilding);
    step(&clean, 1);
    let l = f.lun(lun);
    assert_eq!(
        (l.lun_type, l.plexes.len(), l.health),
        (LunType::Simple, 1, Health::Healthy)
    );
    assert_eq!(drain(&mut rx).len(), 3, "one MODIFY per change");
    match f.ok(Command::GetPoolLuns { id: id2 }) {
        Outcome::Luns(v) => assert_eq!(v.iter().map(|l| l.id).collect::<Vec<_>>(), [lun]),
        o => panic!("{o:?}"),
    }

    // Pool 1 is deleted in Ceph: it departs, its id a tombstone; the LUN's pool 3 stays.
    record(
        &f,
        CephView {
            fsid,
            pools: vec![report(3, "vds2", &["rbd"], 1, &clean)],
        },
    );
    assert_eq!(
        f.code(Command::GetPool {
            id: pool_id(fsid, 1)
        }),
        Hresult::VDS_E_OBJECT_DELETED
    );
    assert!(pools(&f).iter().all(|p| p.name != "rbd"));
    // The LUN's pool gone: the LUN is failed.
    record(
        &f,
        CephView {
            fsid,
            pools: vec![],
        },
    );
    assert_eq!(f.lun(lun).health, Health::Failed);
    assert_eq!(
        f.code(Command::GetPool { id: id2 }),
        Hresult::VDS_E_OBJECT_DELETED
    );
}
