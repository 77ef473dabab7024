//! One test per management-side rule of BEHAVIOUR.md §2–§10 (named after the rule).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use uuid::Uuid;
use vds_model::{
    AsyncOutputType, BackingKind, CacheState, EventKind, FaultFilterSpec, FaultOpKind, Health,
    Hresult, JobState, LunStatus, LunType, ObjectKind, PortalStatus,
};
use vds_scsi::LuState;

use super::{drain, Fixture};
use crate::{BackingSpec, Command, Outcome};

fn status_of(f: &Fixture, id: Uuid) -> LunStatus {
    f.lun(id).status
}

#[test]
fn first_start_creates_the_embedded_default_and_publishes_it() {
    let f = Fixture::new(41000, false);
    let luns = f.luns();
    assert_eq!(luns.len(), 1);
    let lun = &luns[0];
    assert_eq!(lun.size_bytes, 1 << 30);
    assert_eq!(lun.unmasking_list, "*");
    assert!(lun.thin);
    assert_eq!(lun.status, LunStatus::Online);
    assert!(lun.identification.starts_with("naa.6"));
    let t = f.default_target();
    assert_eq!(t.iscsi_name, "iqn.2026-11.local.vds:default");
    assert_eq!(lun.lun_numbers, vec![(t.id, 0)]);
    let portals = f.portals();
    assert_eq!(portals.len(), 1);
    assert_eq!(portals[0].status, PortalStatus::Online);
    assert!(f.plane.bound(portals[0].id));
    assert!(TcpStream::connect(("127.0.0.1", 41000)).is_ok());
    let pg = t.portal_groups[0];
    match f.ok(Command::GetPortalGroup { id: pg }) {
        Outcome::PortalGroup(g) => {
            assert_eq!(g.tag, 1);
            assert_eq!(g.portals, vec![portals[0].id]);
        }
        o => panic!("{o:?}"),
    }
    let view = f.plane.last();
    assert_eq!(view.targets.len(), 1);
    assert_eq!(view.targets[0].luns.entries.len(), 1);
    assert_eq!(view.targets[0].luns.entries[0].number, 0);
    assert!(view.portals[0].online);
    // The file is sparse in <data-dir>/luns.
    let path = lun.backing.path.clone().unwrap();
    assert!(path.contains("/luns/") && path.ends_with(".img"));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 1 << 30);
    match f.ok(Command::GetProvider) {
        Outcome::Provider(p) => assert_eq!(p.cache, CacheState::Valid),
        o => panic!("{o:?}"),
    }
}

#[test]
fn check_order_not_found_then_deleted_then_cache_corrupt() {
    let f = Fixture::new(41001, false);
    let never = Uuid::new_v4();
    assert_eq!(
        f.code(Command::GetLun { id: never }),
        Hresult::VDS_E_OBJECT_NOT_FOUND
    );
    let lun = f.create_lun(|_| {});
    f.ok(Command::DeleteLun { id: lun.id });
    let e = f.err(Command::GetLun { id: lun.id });
    assert_eq!(e.hresult, Hresult::VDS_E_OBJECT_DELETED);
    assert!(e.message.contains(&lun.id.to_string()));
    // Deleted beats a malformed argument and beats a corrupt cache.
    assert_eq!(
        f.code(Command::SetLunStatus {
            id: lun.id,
            status: 99
        }),
        Hresult::VDS_E_OBJECT_DELETED
    );
    // Corrupt the cache: resize the default LUN's file behind the provider's back.
    let def = f.luns()[0].clone();
    std::fs::OpenOptions::new()
        .write(true)
        .open(def.backing.path.as_ref().unwrap())
        .unwrap()
        .set_len((1 << 30) + 4096)
        .unwrap();
    assert_eq!(
        f.code(Command::GetLun { id: def.id }),
        Hresult::VDS_E_PROVIDER_CACHE_CORRUPT
    );
    // NOT_FOUND and DELETED still come first.
    assert_eq!(
        f.code(Command::GetLun { id: never }),
        Hresult::VDS_E_OBJECT_NOT_FOUND
    );
    assert_eq!(
        f.code(Command::GetLun { id: lun.id }),
        Hresult::VDS_E_OBJECT_DELETED
    );
    // Corrupt beats E_INVALIDARG.
    assert_eq!(
        f.code(Command::SetLunStatus {
            id: def.id,
            status: 0
        }),
        Hresult::VDS_E_PROVIDER_CACHE_CORRUPT
    );
}

#[test]
fn lun_set_status_invalid_values_are_e_invalidarg_and_failed_is_not_supported() {
    let f = Fixture::new(41002, false);
    let id = f.luns()[0].id;
    let mut rx = f.p.subscribe();
    for bad in [0, 3, 6, 7, 8, 9, -1, 99, i64::MAX, i64::MIN] {
        let e = f.err(Command::SetLunStatus { id, status: bad });
        assert_eq!(e.hresult, Hresult::E_INVALIDARG, "{bad}");
        assert!(e.message.starts_with("status:"), "{e}");
    }
    assert_eq!(
        f.code(Command::SetLunStatus { id, status: 5 }),
        Hresult::VDS_E_NOT_SUPPORTED
    );
    assert_eq!(status_of(&f, id), LunStatus::Online);
    assert!(drain(&mut rx).is_empty(), "nothing changed, no event");
}

#[test]
fn lun_set_status_transitions_one_event_each_and_persist() {
    let mut f = Fixture::new(41003, false);
    let id = f.luns()[0].id;
    let lu = f.p.logical_unit(id).unwrap();
    let mut rx = f.p.subscribe();
    // Same status: S_OK, no event.
    f.ok(Command::SetLunStatus { id, status: 1 });
    assert!(drain(&mut rx).is_empty());
    for (status, want, lu_state) in [
        (4, LunStatus::Offline, LuState::Offline),
        (2, LunStatus::NotReady, LuState::NotReady),
        (4, LunStatus::Offline, LuState::Offline),
        (1, LunStatus::Online, LuState::Online),
        (2, LunStatus::NotReady, LuState::NotReady),
    ] {
        match f.ok(Command::SetLunStatus { id, status }) {
            Outcome::Lun(l) => assert_eq!(l.status, want),
            o => panic!("{o:?}"),
        }
        assert_eq!(lu.state(), lu_state);
        assert_eq!(
            drain(&mut rx),
            vec![(ObjectKind::Lun, EventKind::Modify, id)]
        );
    }
    f.ok(Command::SetLunStatus { id, status: 4 });
    f.restart();
    assert_eq!(status_of(&f, id), LunStatus::Offline);
    assert_eq!(f.p.logical_unit(id).unwrap().state(), LuState::Offline);
}

#[test]
fn busy_while_a_slow_flush_holds_the_lun_and_reads_still_work() {
    let f = Fixture::new(41004, true);
    let id = f.luns()[0].id;
    f.ok(Command::SetLunFaults {
        id,
        filters: vec![FaultFilterSpec::Delay {
            read_ms: 0,
            write_ms: 0,
            flush_ms: 1500,
        }],
    });
    let p = f.p.clone();
    let t = std::thread::spawn(move || p.apply(Command::SetLunStatus { id, status: 4 }));
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    for cmd in [
        Command::SetLunStatus { id, status: 2 },
        Command::PatchLun {
            id,
            friendly_name: Some("x".into()),
            unmasking_list: None,
            read_only: None,
        },
        Command::SetLunFaults {
            id,
            filters: vec![],
        },
        Command::DeleteLun { id },
        Command::ExtendLun { id, bytes: 4096 },
    ] {
        assert_eq!(f.code(cmd), Hresult::VDS_E_ANOTHER_CALL_IN_PROGRESS);
    }
    // Answered at once, never queued.
    assert!(start.elapsed() < Duration::from_millis(500));
    // Pure reads are never BUSY.
    assert_eq!(f.lun(id).status, LunStatus::Online);
    let r = t.join().unwrap().unwrap();
    match r {
        Outcome::Lun(l) => assert_eq!(l.status, LunStatus::Offline),
        o => panic!("{o:?}"),
    }
    // The slot is free again.
    f.ok(Command::SetLunStatus { id, status: 2 });
}

#[test]
fn flush_failure_makes_the_lun_failed_which_refuses_set_status_until_refresh() {
    let f = Fixture::new(41005, true);
    let id = f.luns()[0].id;
    f.ok(Command::SetLunFaults {
        id,
        filters: vec![FaultFilterSpec::Error {
            ops: vec![FaultOpKind::Flush],
            after: 0,
        }],
    });
    let mut rx = f.p.subscribe();
    let e = f.err(Command::SetLunStatus { id, status: 4 });
    assert_eq!(e.hresult, Hresult::VDS_E_IO_ERROR, "{e}");
    let lun = f.lun(id);
    assert_eq!(
        (lun.status, lun.health),
        (LunStatus::Failed, Health::Failed)
    );
    assert_eq!(
        drain(&mut rx),
        vec![(ObjectKind::Lun, EventKind::Modify, id)]
    );
    for s in [1, 2, 4] {
        assert_eq!(
            f.code(Command::SetLunStatus { id, status: s }),
            Hresult::VDS_E_OBJECT_STATUS_FAILED
        );
    }
    // Still judged in order: invalid values are E_INVALIDARG, FAILED is NOT_SUPPORTED.
    assert_eq!(
        f.code(Command::SetLunStatus { id, status: 0 }),
        Hresult::E_INVALIDARG
    );
    assert_eq!(
        f.code(Command::SetLunStatus { id, status: 5 }),
        Hresult::VDS_E_NOT_SUPPORTED
    );
    // Refresh with the store still failing reads keeps it FAILED... (flush errors only here,
    // so the probe read succeeds once the filter is gone).
    f.ok(Command::SetLunFaults {
        id,
        filters: vec![],
    });
    drain(&mut rx);
    f.ok(Command::Refresh);
    let lun = f.lun(id);
    assert_eq!(
        (lun.status, lun.health),
        (LunStatus::Offline, Health::Healthy)
    );
    assert_eq!(
        drain(&mut rx),
        vec![(ObjectKind::Lun, EventKind::Modify, id)]
    );
    f.ok(Command::SetLunStatus { id, status: 1 });
    assert_eq!(f.p.logical_unit(id).unwrap().state(), LuState::Online);
}

#[test]
fn data_path_failure_report_sets_failed_persistently() {
    let mut f = Fixture::new(41006, true);
    let id = f.luns()[0].id;
    f.ok(Command::SetLunFaults {
        id,
        filters: vec![FaultFilterSpec::Error {
            ops: vec![FaultOpKind::Flush],
            after: 0,
        }],
    });
    let mut rx = f.p.subscribe();
    let lu = f.p.logical_unit(id).unwrap();
    assert!(lu.flush().is_err());
    let deadline = Instant::now() + Duration::from_secs(5);
    while f.lun(id).status != LunStatus::Failed {
        assert!(Instant::now() < deadline, "FAILED was not recorded");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(f.lun(id).health, Health::Failed);
    assert_eq!(
        drain(&mut rx),
        vec![(ObjectKind::Lun, EventKind::Modify, id)]
    );
    f.restart();
    assert_eq!(f.lun(id).status, LunStatus::Failed);
}

#[test]
fn deleted_versus_not_found_for_every_kind_and_across_restart() {
    let mut f = Fixture::new(41007, false);
    let sub = f.subsystem();
    let lun = f.create_lun(|_| {});
    let t = match f
        .job(Command::CreateTarget {
            subsystem: sub,
            iscsi_name: None,
            friendly_name: "t2".into(),
        })
        .output
    {
        Some(vds_model::JobOutput::Target(t)) => t,
        o => panic!("{o:?}"),
    };
    let pg = match f.job(Command::CreatePortalGroup { target: t.id }).output {
        Some(vds_model::JobOutput::PortalGroup(g)) => g,
        o => panic!("{o:?}"),
    };
    let portal = match f.ok(Command::CreatePortal {
        subsystem: sub,
        address: "127.0.0.1".parse().unwrap(),
        port: 41057,
        advertise: None,
        controller: None,
    }) {
        Outcome::Portal(p) => p,
        o => panic!("{o:?}"),
    };
    let lun_path = std::path::PathBuf::from(lun.backing.path.clone().unwrap());
    let journal = vds_backstore::journal::journal_path(&lun_path);
    std::fs::write(&journal, b"").unwrap();
    f.ok(Command::DeleteLun { id: lun.id });
    assert!(
        !journal.exists(),
        "the atomic-write journal goes with the file"
    );
    f.ok(Command::DeletePortal { id: portal.id });
    assert_eq!(
        f.job(Command::DeletePortalGroup { id: pg.id }).state,
        JobState::Succeeded
    );
    assert_eq!(
        f.job(Command::DeleteTarget { id: t.id }).state,
        JobState::Succeeded
    );
    let check = |f: &Fixture| {
        assert_eq!(
            f.code(Command::GetLun { id: lun.id }),
            Hresult::VDS_E_OBJECT_DELETED
        );
        assert_eq!(
            f.code(Command::GetTarget { id: t.id }),
            Hresult::VDS_E_OBJECT_DELETED
        );
        assert_eq!(
            f.code(Command::GetPortalGroup { id: pg.id }),
            Hresult::VDS_E_OBJECT_DELETED
        );
        assert_eq!(
            f.code(Command::GetPortal { id: portal.id }),
            Hresult::VDS_E_OBJECT_DELETED
        );
        assert_eq!(
            f.code(Command::SetPortalStatus {
                id: portal.id,
                status: 1
            }),
            Hresult::VDS_E_OBJECT_DELETED
        );
        for id in [Uuid::new_v4(), Uuid::nil()] {
            assert_eq!(
                f.code(Command::GetLun { id }),
                Hresult::VDS_E_OBJECT_NOT_FOUND
            );
            assert_eq!(
                f.code(Command::GetTarget { id }),
                Hresult::VDS_E_OBJECT_NOT_FOUND
            );
        }
    };
    check(&f);
    f.restart();
    check(&f);
    // The LUN's file is gone.
    assert!(!std::path::Path::new(lun.backing.path.as_ref().unwrap()).exists());
}

#[test]
fn deletion_rules_for_targets_and_portal_groups() {
    let f = Fixture::new(41008, false);
    let t = f.default_target();
    let e = f.err(Command::DeleteTarget { id: t.id });
    assert_eq!(e.hresult, Hresult::VDS_E_ASSOCIATED_LUNS_EXIST);
    let pg = t.portal_groups[0];
    assert_eq!(
        f.code(Command::DeletePortalGroup { id: pg }),
        Hresult::VDS_E_ASSOCIATED_PORTALS_EXIST
    );
    // Remove the LUN from the target; then deleting the target deletes its portal group.
    let lun = f.luns()[0].id;
    let mut rx = f.p.subscribe();
    f.ok(Command::SetLunTargets {
        id: lun,
        targets: vec![],
    });
    assert_eq!(
        drain(&mut rx),
        vec![(ObjectKind::Lun, EventKind::Modify, lun)]
    );
    assert!(f.plane.last().targets[0].luns.entries.is_empty());
    assert_eq!(
        f.job(Command::DeleteTarget { id: t.id }).state,
        JobState::Succeeded
    );
    assert_eq!(
        f.code(Command::GetPortalGroup { id: pg }),
        Hresult::VDS_E_OBJECT_DELETED
    );
    let ev = drain(&mut rx);
    assert!(ev.contains(&(ObjectKind::PortalGroup, EventKind::Depart, pg)));
    assert!(ev.contains(&(ObjectKind::Target, EventKind::Depart, t.id)));
    assert_eq!(ev.len(), 2);
    // The portal survives, without its group.
    assert!(f.portals()[0].portal_groups.is_empty());
    assert!(f.plane.last().targets.is_empty());
}

#[test]
fn resized_backing_file_corrupts_the_cache_until_reenumerate_then_refresh() {
    let f = Fixture::new(41009, false);
    let lun = f.create_lun(|a| a.size_bytes = 8 << 20);
    let other = f.default_target().id;
    let path = lun.backing.path.clone().unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(16 << 20)
        .unwrap();
    let e = f.err(Command::GetLun { id: lun.id });
    assert_eq!(e.hresult, Hresult::VDS_E_PROVIDER_CACHE_CORRUPT);
    assert!(e.message.contains("Reenumerate"));
    // Every object call, not just that LUN.
    assert_eq!(
        f.code(Command::GetTarget { id: other }),
        Hresult::VDS_E_PROVIDER_CACHE_CORRUPT
    );
    assert_eq!(
        f.code(Command::ListLuns { subsystem: None }),
        Hresult::VDS_E_PROVIDER_CACHE_CORRUPT
    );
    // The provider's own calls and jobs keep working.
    match f.ok(Command::GetProvider) {
        Outcome::Provider(p) => assert_eq!(p.cache, CacheState::Corrupt),
        o => panic!("{o:?}"),
    }
    f.ok(Command::ListJobs);
    // Refresh alone leaves it corrupt.
    f.ok(Command::Refresh);
    assert_eq!(
        f.code(Command::GetLun { id: lun.id }),
        Hresult::VDS_E_PROVIDER_CACHE_CORRUPT
    );
    // Reenumerate alone too.
    f.ok(Command::Reenumerate);
    assert_eq!(
        f.code(Command::GetLun { id: lun.id }),
        Hresult::VDS_E_PROVIDER_CACHE_CORRUPT
    );
    let mut rx = f.p.subscribe();
    f.ok(Command::Refresh);
    let l = f.lun(lun.id);
    assert_eq!(l.size_bytes, 16 << 20, "the re-read truth is reported");
    assert_eq!(l.plexes[0].size_bytes, 16 << 20);
    assert_eq!(
        f.p.logical_unit(lun.id).unwrap().num_blocks(),
        (16 << 20) / 512
    );
    assert_eq!(
        drain(&mut rx),
        vec![(ObjectKind::Lun, EventKind::Modify, lun.id)]
    );
    f.ok(Command::GetTarget { id: other });
}

#[test]
fn replaced_or_removed_backing_file_is_detected_and_cured() {
    let f = Fixture::new(41010, false);
    let a = f.create_lun(|a| a.friendly_name = Some("a".into()));
    let b = f.create_lun(|a| a.friendly_name = Some("b".into()));
    std::fs::remove_file(a.backing.path.as_ref().unwrap()).unwrap();
    assert_eq!(
        f.code(Command::GetLun { id: a.id }),
        Hresult::VDS_E_PROVIDER_CACHE_CORRUPT
    );
    f.ok(Command::Reenumerate);
    f.ok(Command::Refresh);
    let la = f.lun(a.id);
    assert_eq!((la.status, la.health), (LunStatus::Failed, Health::Failed));
    // Replace b's file (new inode, same size).
    let pb = b.backing.path.clone().unwrap();
    std::fs::remove_file(&pb).unwrap();
    vds_backstore::create_file(std::path::Path::new(&pb), 4 << 20, false).unwrap();
    assert_eq!(
        f.code(Command::GetLun { id: b.id }),
        Hresult::VDS_E_PROVIDER_CACHE_CORRUPT
    );
    f.ok(Command::Reenumerate);
    f.ok(Command::Refresh);
    assert_eq!(f.lun(b.id).status, LunStatus::Online);
}

#[test]
fn store_changed_by_another_process_corrupts_the_cache() {
    let f = Fixture::new(41011, false);
    let id = f.luns()[0].id;
    {
        let mut other = vds_store::Store::open(&f.dir.path().join("data")).unwrap();
        let mut snap = other.load().unwrap();
        let mut rec = snap.luns.remove(0);
        rec.lun.friendly_name = "renamed-elsewhere".into();
        other.write(|tx| tx.put_lun(&rec)).unwrap();
    }
    assert_eq!(
        f.code(Command::GetLun { id }),
        Hresult::VDS_E_PROVIDER_CACHE_CORRUPT
    );
    f.ok(Command::Reenumerate);
    let mut rx = f.p.subscribe();
    f.ok(Command::Refresh);
    assert_eq!(f.lun(id).friendly_name, "renamed-elsewhere");
    assert_eq!(
        drain(&mut rx),
        vec![(ObjectKind::Lun, EventKind::Modify, id)]
    );
    // Our own commits do not count as another process.
    f.ok(Command::PatchLun {
        id,
        friendly_name: Some("mine".into()),
        unmasking_list: None,
        read_only: None,
    });
    f.lun(id);
}

#[test]
fn portal_set_status_rules() {
    let f = Fixture::new(41012, false);
    let portal = f.portals()[0].clone();
    let id = portal.id;
    let mut rx = f.p.subscribe();
    for bad in [0, 3, 6, 9, -4, 1 << 40] {
        assert_eq!(
            f.code(Command::SetPortalStatus { id, status: bad }),
            Hresult::E_INVALIDARG,
            "{bad}"
        );
    }
    for report_only in [2, 5] {
        assert_eq!(
            f.code(Command::SetPortalStatus {
                id,
                status: report_only
            }),
            Hresult::VDS_E_NOT_SUPPORTED
        );
    }
    f.ok(Command::SetPortalStatus { id, status: 1 });
    assert!(drain(&mut rx).is_empty());
    // ONLINE → OFFLINE: listener closed, SendTargets stops listing, logout timeout passed.
    f.ok(Command::SetPortalStatus { id, status: 4 });
    assert!(!f.plane.bound(id));
    assert!(TcpStream::connect(("127.0.0.1", 41012)).is_err());
    assert!(!f.plane.last().portals[0].online);
    assert_eq!(
        f.plane.unbinds.lock().last().unwrap().1,
        Duration::from_millis(100)
    );
    assert_eq!(
        drain(&mut rx),
        vec![(ObjectKind::Portal, EventKind::Modify, id)]
    );
    // OFFLINE → ONLINE: bound again.
    f.ok(Command::SetPortalStatus { id, status: 1 });
    assert!(f.plane.bound(id));
    assert!(f.plane.last().portals[0].online);
    f.ok(Command::SetPortalStatus { id, status: 4 });
    // Address in use: FAILED and HRESULT_FROM_WIN32(WSAEADDRINUSE).
    let squatter = TcpListener::bind(("127.0.0.1", 41012)).unwrap();
    drain(&mut rx);
    let e = f.err(Command::SetPortalStatus { id, status: 1 });
    assert_eq!(e.hresult.value(), 0x8007_2740, "{e}");
    assert_eq!(e.hresult.name(), "HRESULT_FROM_WIN32(WSAEADDRINUSE)");
    match f.ok(Command::GetPortal { id }) {
        Outcome::Portal(p) => assert_eq!(p.status, PortalStatus::Failed),
        o => panic!("{o:?}"),
    }
    assert_eq!(
        drain(&mut rx),
        vec![(ObjectKind::Portal, EventKind::Modify, id)]
    );
    // FAILED → OFFLINE: nothing listening, OFFLINE.
    f.ok(Command::SetPortalStatus { id, status: 4 });
    drop(squatter);
    f.ok(Command::SetPortalStatus { id, status: 1 });
    assert!(f.plane.bound(id));
}

#[test]
fn portal_set_status_not_supported_when_the_subsystem_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let plane = std::sync::Arc::new(super::TestPlane::default());
    let mut c = super::config(dir.path(), 41013, false);
    c.portal_status_settable = false;
    let p = crate::Provider::open(c, plane).unwrap();
    let id = match p.apply(Command::ListPortals { subsystem: None }).unwrap() {
        Outcome::Portals(ps) => ps[0].id,
        o => panic!("{o:?}"),
    };
    for s in [0, 1, 2, 4, 5, 77] {
        assert_eq!(
            p.apply(Command::SetPortalStatus { id, status: s })
                .unwrap_err()
                .hresult,
            Hresult::VDS_E_NOT_SUPPORTED
        );
    }
    match p.apply(Command::ListSubsystems).unwrap() {
        Outcome::Subsystems(s) => assert!(!s[0].portal_status_settable),
        o => panic!("{o:?}"),
    }
}

#[test]
fn portal_bind_failure_at_start_is_failed_and_the_rest_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let squatter = TcpListener::bind(("127.0.0.1", 41014)).unwrap();
    let plane = std::sync::Arc::new(super::TestPlane::default());
    let mut c = super::config(dir.path(), 41014, false);
    c.first_start_portals
        .push(SocketAddr::from(([127, 0, 0, 1], 41015)));
    let p = crate::Provider::open(c, plane.clone()).unwrap();
    let portals = match p.apply(Command::ListPortals { subsystem: None }).unwrap() {
        Outcome::Portals(ps) => ps,
        o => panic!("{o:?}"),
    };
    assert_eq!(portals[0].status, PortalStatus::Failed);
    assert_eq!(portals[1].status, PortalStatus::Online);
    assert!(plane.bound(portals[1].id));
    drop(squatter);
}

#[test]
fn subsystem_controller_drive_status_values() {
    let f = Fixture::new(41016, false);
    let sub = f.subsystem();
    let ctl = match f.ok(Command::ListControllers {
        subsystem: Some(sub),
    }) {
        Outcome::Controllers(c) => c[0].id,
        o => panic!("{o:?}"),
    };
    let drive = match f.ok(Command::ListDrives {
        subsystem: Some(sub),
    }) {
        Outcome::Drives(d) => d[0].id,
        o => panic!("{o:?}"),
    };
    let lun = f.luns()[0].id;
    let lu = f.p.logical_unit(lun).unwrap();
    type Case<'a> = (fn(Uuid, i64) -> Command, Uuid, &'a [i64], &'a [i64]);
    let cases: [Case; 3] = [
        (
            |id, status| Command::SetSubsystemStatus { id, status },
            sub,
            &[0, 3, 6, 10, -1],
            &[2, 5, 9],
        ),
        (
            |id, status| Command::SetControllerStatus { id, status },
            ctl,
            &[0, 3, 9, -1],
            &[2, 5, 8],
        ),
        (
            |id, status| Command::SetDriveStatus { id, status },
            drive,
            &[0, 3, 9, -1],
            &[2, 5, 8],
        ),
    ];
    for (mk, id, invalid, report_only) in cases {
        for s in invalid {
            assert_eq!(f.code(mk(id, *s)), Hresult::E_INVALIDARG, "{s}");
        }
        for s in report_only {
            assert_eq!(f.code(mk(id, *s)), Hresult::VDS_E_NOT_SUPPORTED, "{s}");
        }
        let mut rx = f.p.subscribe();
        f.ok(mk(id, 1));
        assert!(drain(&mut rx).is_empty());
        // OFFLINE takes the LUNs behind it off the wire (their own status is unchanged).
        f.ok(mk(id, 4));
        assert_eq!(lu.state(), LuState::Offline);
        assert_eq!(f.lun(lun).status, LunStatus::Online);
        assert_eq!(drain(&mut rx).len(), 1);
        f.ok(mk(id, 1));
        assert_eq!(lu.state(), LuState::Online);
    }
}

#[test]
fn bad_lun_create_arguments_name_the_field_and_change_nothing() {
    let f = Fixture::new(41017, false);
    let sub = f.subsystem();
    let mut rx = f.p.subscribe();
    let base = crate::CreateLunArgs {
        subsystem: sub,
        size_bytes: 1 << 20,
        friendly_name: None,
        lun_type: None,
        thin: None,
        drive: None,
        unmasking_list: None,
        targets: None,
        read_only: None,
        hints: None,
        drives: None,
        plexes: None,
        stripe_size: None,
        load_balance: None,
        backing: None,
    };
    type Edit = Box<dyn Fn(&mut crate::CreateLunArgs)>;
    let cases: Vec<(Edit, Hresult, &str)> = vec![
        (
            Box::new(|a| a.size_bytes = 0),
            Hresult::E_INVALIDARG,
            "size_bytes",
        ),
        (
            Box::new(|a| a.size_bytes = u64::MAX),
            Hresult::E_INVALIDARG,
            "size_bytes",
        ),
        (
            Box::new(|a| a.lun_type = Some(LunType::Unknown)),
            Hresult::E_INVALIDARG,
            "type",
        ),
        (
            Box::new(|a| a.lun_type = Some(LunType::Raid5)),
            Hresult::VDS_E_NOT_SUPPORTED,
            "type",
        ),
        (
            Box::new(|a| a.unmasking_list = Some("*;iqn.2001-04.com.a".into())),
            Hresult::E_INVALIDARG,
            "unmasking_list",
        ),
        (
            Box::new(|a| a.unmasking_list = Some("not-a-name".into())),
            Hresult::E_INVALIDARG,
            "unmasking_list",
        ),
        (
            Box::new(|a| a.friendly_name = Some("  ".into())),
            Hresult::E_INVALIDARG,
            "friendly_name",
        ),
        (
            Box::new(|a| a.friendly_name = Some("default".into())),
            Hresult::VDS_E_OBJECT_EXISTS,
            "friendly_name",
        ),
        (
            Box::new(|a| a.targets = Some(vec![Uuid::new_v4()])),
            Hresult::VDS_E_OBJECT_NOT_FOUND,
            "targets[0]",
        ),
        (
            Box::new(|a| a.drive = Some(Uuid::new_v4())),
            Hresult::VDS_E_OBJECT_NOT_FOUND,
            "drive",
        ),
        (
            Box::new(|a| {
                a.backing = Some(BackingSpec {
                    kind: BackingKind::File,
                    path: Some("relative.img".into()),
                    filters: vec![],
                    wipe: false,
                    pool: None,
                    image: None,
                })
            }),
            Hresult::E_INVALIDARG,
            "backing.path",
        ),
        (
            Box::new(|a| {
                a.backing = Some(BackingSpec {
                    kind: BackingKind::Block,
                    path: None,
                    filters: vec![],
                    wipe: false,
                    pool: None,
                    image: None,
                })
            }),
            Hresult::E_INVALIDARG,
            "backing.path",
        ),
        (
            Box::new(|a| {
                a.backing = Some(BackingSpec {
                    kind: BackingKind::Block,
                    path: Some("/etc/hostname".into()),
                    filters: vec![],
                    wipe: false,
                    pool: None,
                    image: None,
                })
            }),
            Hresult::E_INVALIDARG,
            "backing.path",
        ),
        (
            Box::new(|a| {
                a.backing = Some(BackingSpec {
                    kind: BackingKind::Memory,
                    path: Some("/x".into()),
                    filters: vec![],
                    wipe: false,
                    pool: None,
                    image: None,
                })
            }),
            Hresult::E_INVALIDARG,
            "backing.path",
        ),
        (
            Box::new(|a| {
                a.backing = Some(BackingSpec {
                    kind: BackingKind::Memory,
                    path: None,
                    filters: vec![FaultFilterSpec::Delay {
                        read_ms: 1,
                        write_ms: 1,
                        flush_ms: 1,
                    }],
                    wipe: false,
                    pool: None,
                    image: None,
                })
            }),
            Hresult::VDS_E_NOT_SUPPORTED,
            "--enable-fault-injection",
        ),
    ];
    for (edit, hr, field) in cases {
        let mut a = base.clone();
        edit(&mut a);
        let e = f.err(Command::CreateLun(a));
        assert_eq!(e.hresult, hr, "{field}: {e}");
        assert!(e.message.contains(field), "{field}: {e}");
    }
    assert_eq!(
        f.code(Command::CreateLun(crate::CreateLunArgs {
            subsystem: Uuid::new_v4(),
            ..base.clone()
        })),
        Hresult::VDS_E_OBJECT_NOT_FOUND
    );
    assert_eq!(f.luns().len(), 1);
    assert!(drain(&mut rx).is_empty());
    assert_eq!(
        std::fs::read_dir(f.dir.path().join("data/luns"))
            .unwrap()
            .count(),
        1,
        "no stray file"
    );
}

#[test]
fn lun_create_on_memory_and_existing_file_adopts_it_and_wipe_zeroes_its_ends() {
    let f = Fixture::new(41018, false);
    let t = f.default_target().id;
    let mut rx = f.p.subscribe();
    let m = f.create_lun(|a| {
        a.backing = Some(BackingSpec {
            kind: BackingKind::Memory,
            path: None,
            filters: vec![],
            wipe: false,
            pool: None,
            image: None,
        });
        a.targets = Some(vec![t]);
        a.unmasking_list = Some("iqn.2001-04.com.a:x;IQN.2001-04.COM.A:X".into());
    });
    assert_eq!(m.lun_numbers, vec![(t, 1)]);
    assert_eq!(m.unmasking_list, "iqn.2001-04.com.a:x");
    assert_eq!(
        drain(&mut rx),
        vec![(ObjectKind::Lun, EventKind::Arrive, m.id)]
    );
    assert_eq!(f.plane.last().targets[0].luns.entries.len(), 2);
    // An existing file full of old data is adopted as it is (BEHAVIOUR §12)...
    let kept = f.dir.path().join("kept.img");
    std::fs::write(&kept, vec![0xCD; 4 << 20]).unwrap();
    let k = f.create_lun(|a| {
        a.size_bytes = 4 << 20;
        a.backing = Some(BackingSpec {
            kind: BackingKind::File,
            path: Some(kept.display().to_string()),
            filters: vec![],
            wipe: false,
            pool: None,
            image: None,
        });
    });
    assert!(std::fs::read(&kept).unwrap().iter().all(|&b| b == 0xCD));
    f.ok(Command::DeleteLun { id: k.id });
    assert!(
        std::fs::read(&kept).unwrap().iter().all(|&b| b == 0xCD),
        "deleting an adopted LUN leaves its file alone"
    );
    // ... and with "wipe" its first and last MiB read as zeroes afterwards.
    let path = f.dir.path().join("old.img");
    std::fs::write(&path, vec![0xAB; 4 << 20]).unwrap();
    let l = f.create_lun(|a| {
        a.size_bytes = 4 << 20;
        a.backing = Some(BackingSpec {
            kind: BackingKind::File,
            path: Some(path.display().to_string()),
            filters: vec![],
            wipe: true,
            pool: None,
            image: None,
        });
    });
    let data = std::fs::read(&path).unwrap();
    assert!(data[..1 << 20].iter().all(|&b| b == 0));
    assert!(data[(3 << 20)..].iter().all(|&b| b == 0));
    assert!(data[(1 << 20)..(3 << 20)].iter().all(|&b| b == 0xAB));
    // The same path cannot back two LUNs.
    let e = f.err(Command::CreateLun(crate::CreateLunArgs {
        subsystem: f.subsystem(),
        size_bytes: 4 << 20,
        friendly_name: None,
        lun_type: None,
        thin: None,
        drive: None,
        unmasking_list: None,
        targets: None,
        read_only: None,
        hints: None,
        drives: None,
        plexes: None,
        stripe_size: None,
        load_balance: None,
        backing: Some(BackingSpec {
            kind: BackingKind::File,
            path: Some(path.display().to_string()),
            filters: vec![],
            wipe: false,
            pool: None,
            image: None,
        }),
    }));
    assert_eq!(e.hresult, Hresult::VDS_E_DEVICE_IN_USE);
    // Deleting a LUN on a file vds did not create keeps the file; the atomic-write journal
    // beside it (vds's own) goes.
    let journal = vds_backstore::journal::journal_path(&path);
    std::fs::write(&journal, b"").unwrap();
    f.ok(Command::DeleteLun { id: l.id });
    assert!(path.exists());
    assert!(!journal.exists());
}

#[test]
fn extend_and_shrink_are_jobs_that_resize_the_file() {
    let f = Fixture::new(41019, false);
    let l = f.create_lun(|a| a.size_bytes = 4 << 20);
    let mut rx = f.p.subscribe();
    let j = f.job(Command::ExtendLun {
        id: l.id,
        bytes: 1000,
    });
    assert_eq!(
        (j.state, j.hresult, j.percent),
        (JobState::Succeeded, Hresult::S_OK, 100)
    );
    assert_eq!(j.operation, AsyncOutputType::ExtendLun);
    assert_eq!(
        f.lun(l.id).size_bytes,
        (4 << 20) + 1024,
        "rounded up to the block size"
    );
    let path = l.backing.path.clone().unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), (4 << 20) + 1024);
    assert_eq!(
        drain(&mut rx),
        vec![(ObjectKind::Lun, EventKind::Modify, l.id)]
    );
    let j = f.job(Command::ShrinkLun {
        id: l.id,
        bytes: 1024,
    });
    assert_eq!(j.state, JobState::Succeeded);
    assert_eq!(f.lun(l.id).size_bytes, 4 << 20);
    // Not a cache corruption: our own resize.
    f.lun(l.id);
    for cmd in [
        Command::ExtendLun { id: l.id, bytes: 0 },
        Command::ShrinkLun { id: l.id, bytes: 0 },
        Command::ShrinkLun {
            id: l.id,
            bytes: 4 << 20,
        },
        Command::ExtendLun {
            id: l.id,
            bytes: u64::MAX,
        },
    ] {
        let e = f.err(cmd);
        assert_eq!(e.hresult, Hresult::E_INVALIDARG);
        assert!(e.message.starts_with("bytes:"));
    }
    // Cancel of a finished job is too late.
    assert_eq!(
        f.code(Command::CancelJob { id: j.id }),
        Hresult::VDS_E_CANCEL_TOO_LATE
    );
    assert_eq!(
        f.code(Command::GetJob { id: Uuid::new_v4() }),
        Hresult::VDS_E_OBJECT_NOT_FOUND
    );
}

#[test]
fn recover_on_a_simple_lun_is_an_invalid_operation() {
    let f = Fixture::new(41020, false);
    let id = f.luns()[0].id;
    assert_eq!(
        f.code(Command::RecoverLun { id }),
        Hresult::VDS_E_INVALID_OPERATION
    );
}

#[test]
fn fault_filters_need_the_flag() {
    let f = Fixture::new(41021, false);
    let id = f.luns()[0].id;
    let e = f.err(Command::SetLunFaults {
        id,
        filters: vec![FaultFilterSpec::Delay {
            read_ms: 1,
            write_ms: 0,
            flush_ms: 0,
        }],
    });
    assert_eq!(e.hresult, Hresult::VDS_E_NOT_SUPPORTED);
    assert!(e.message.contains("--enable-fault-injection"));
}

#[test]
fn targets_names_secrets_and_chap() {
    let mut f = Fixture::new(41022, false);
    let sub = f.subsystem();
    for bad in [
        "IQN.2001-04.com.x",
        "iqn.2001-13.com.x",
        "iqn.2001-04.Com.x",
        "foo",
    ] {
        let e = f.err(Command::CreateTarget {
            subsystem: sub,
            iscsi_name: Some(bad.into()),
            friendly_name: "x".into(),
        });
        assert_eq!(e.hresult, Hresult::E_INVALIDARG, "{bad}");
        assert!(e.message.starts_with("iscsi_name:"), "{e}");
    }
    assert_eq!(
        f.code(Command::CreateTarget {
            subsystem: sub,
            iscsi_name: Some("iqn.2026-11.local.vds:default".into()),
            friendly_name: "dup".into(),
        }),
        Hresult::VDS_E_NAME_NOT_UNIQUE
    );
    let t = f.default_target();
    for bad in [11usize, 17, 0] {
        let e = f.err(Command::SetSharedSecret {
            id: t.id,
            secret: Some(vec![b'a'; bad].into()),
            initiator_name: None,
        });
        assert_eq!(e.hresult, Hresult::E_INVALIDARG, "{bad}");
        assert!(e.message.starts_with("secret:"));
    }
    let mut rx = f.p.subscribe();
    match f.ok(Command::SetSharedSecret {
        id: t.id,
        secret: Some(b"0123456789ab".to_vec().into()),
        initiator_name: None,
    }) {
        Outcome::Target(t) => assert!(t.chap_enabled),
        o => panic!("{o:?}"),
    }
    assert_eq!(
        drain(&mut rx),
        vec![(ObjectKind::Target, EventKind::Modify, t.id)]
    );
    // Same secret again: nothing changed, no event.
    f.ok(Command::SetSharedSecret {
        id: t.id,
        secret: Some(b"0123456789ab".to_vec().into()),
        initiator_name: None,
    });
    assert!(drain(&mut rx).is_empty());
    f.ok(Command::RememberInitiatorSecret {
        id: t.id,
        initiator_name: "iqn.2001-04.com.example:host".into(),
        secret: Some(b"mutualsecret16!!".to_vec().into()),
    });
    assert_eq!(
        f.code(Command::RememberInitiatorSecret {
            id: t.id,
            initiator_name: "bad name".into(),
            secret: None
        }),
        Hresult::E_INVALIDARG
    );
    let chap = f.plane.last().targets[0].chap.clone();
    assert_eq!(chap.default_secret.as_deref(), Some(&b"0123456789ab"[..]));
    assert_eq!(chap.mutual_secrets.len(), 1);
    f.restart();
    let chap = f.plane.last().targets[0].chap.clone();
    assert_eq!(chap.default_secret.as_deref(), Some(&b"0123456789ab"[..]));
    assert_eq!(chap.mutual_secrets[0].1, b"mutualsecret16!!".to_vec());
    assert!(f.default_target().chap_enabled);
    // Clearing.
    match f.ok(Command::SetSharedSecret {
        id: t.id,
        secret: None,
        initiator_name: None,
    }) {
        Outcome::Target(t) => assert!(!t.chap_enabled),
        o => panic!("{o:?}"),
    }
    // Connected initiators come from the data path.
    match f.ok(Command::GetConnectedInitiators { id: t.id }) {
        Outcome::Initiators(v) => assert_eq!(v, vec!["iqn.2001-04.com.example:host".to_string()]),
        o => panic!("{o:?}"),
    }
}

#[test]
fn portal_groups_and_membership() {
    let f = Fixture::new(41023, false);
    let sub = f.subsystem();
    let t = f.default_target();
    let mut rx = f.p.subscribe();
    let j = f.job(Command::CreatePortalGroup { target: t.id });
    let pg = match j.output {
        Some(vds_model::JobOutput::PortalGroup(g)) => g,
        o => panic!("{o:?}"),
    };
    assert_eq!(pg.tag, 2);
    assert_eq!(
        drain(&mut rx),
        vec![(ObjectKind::PortalGroup, EventKind::Arrive, pg.id)]
    );
    let p = match f.ok(Command::CreatePortal {
        subsystem: sub,
        address: "127.0.0.1".parse().unwrap(),
        port: 41058,
        advertise: None,
        controller: None,
    }) {
        Outcome::Portal(p) => p,
        o => panic!("{o:?}"),
    };
    assert_eq!(p.status, PortalStatus::Offline, "new portals start OFFLINE");
    assert!(!f.plane.bound(p.id));
    // Same address again: already exists.
    let again = f.ok(Command::CreatePortal {
        subsystem: sub,
        address: "127.0.0.1".parse().unwrap(),
        port: 41058,
        advertise: None,
        controller: None,
    });
    assert_eq!(again.hresult(), Hresult::VDS_S_ALREADY_EXISTS);
    assert_eq!(
        f.code(Command::CreatePortal {
            subsystem: sub,
            address: "127.0.0.1".parse().unwrap(),
            port: 0,
            advertise: None,
            controller: None,
        }),
        Hresult::E_INVALIDARG
    );
    drain(&mut rx);
    let j = f.job(Command::AddPortalToGroup {
        portal_group: pg.id,
        portal: p.id,
    });
    assert_eq!(j.hresult, Hresult::S_OK);
    assert_eq!(
        drain(&mut rx),
        vec![(ObjectKind::PortalGroup, EventKind::Modify, pg.id)]
    );
    let j = f.job(Command::AddPortalToGroup {
        portal_group: pg.id,
        portal: p.id,
    });
    assert_eq!(
        (j.state, j.hresult),
        (JobState::Succeeded, Hresult::VDS_S_ALREADY_EXISTS)
    );
    // The default group's portal cannot also join this target's other group.
    let first = f.portals()[0].id;
    assert_eq!(
        f.code(Command::AddPortalToGroup {
            portal_group: pg.id,
            portal: first
        }),
        Hresult::VDS_E_OBJECT_EXISTS
    );
    assert_eq!(
        f.code(Command::AddPortalToGroup {
            portal_group: pg.id,
            portal: Uuid::new_v4()
        }),
        Hresult::VDS_E_OBJECT_NOT_FOUND
    );
    let view = f.plane.last();
    assert_eq!(view.targets[0].portal_groups[1].portals, vec![p.id]);
    assert_eq!(
        f.code(Command::DeletePortalGroup { id: pg.id }),
        Hresult::VDS_E_ASSOCIATED_PORTALS_EXIST
    );
    assert_eq!(
        f.job(Command::RemovePortalFromGroup {
            portal_group: pg.id,
            portal: p.id
        })
        .state,
        JobState::Succeeded
    );
    assert_eq!(
        f.code(Command::RemovePortalFromGroup {
            portal_group: pg.id,
            portal: p.id
        }),
        Hresult::VDS_E_OBJECT_NOT_FOUND
    );
    assert_eq!(
        f.job(Command::DeletePortalGroup { id: pg.id }).state,
        JobState::Succeeded
    );
}

#[test]
fn patch_lun_mask_and_name() {
    let f = Fixture::new(41024, false);
    let id = f.luns()[0].id;
    let mut rx = f.p.subscribe();
    f.ok(Command::PatchLun {
        id,
        friendly_name: None,
        unmasking_list: None,
        read_only: None,
    });
    assert!(drain(&mut rx).is_empty());
    f.ok(Command::PatchLun {
        id,
        friendly_name: None,
        unmasking_list: Some("iqn.2001-04.com.a;iqn.2001-04.com.b".into()),
        read_only: None,
    });
    assert_eq!(
        drain(&mut rx),
        vec![(ObjectKind::Lun, EventKind::Modify, id)]
    );
    match &f.plane.last().targets[0].luns.entries[0].mask {
        vds_scsi::Mask::Only(n) => assert_eq!(n.len(), 2),
        m => panic!("{m:?}"),
    }
    f.ok(Command::PatchLun {
        id,
        friendly_name: None,
        unmasking_list: Some(String::new()),
        read_only: None,
    });
    assert_eq!(
        f.plane.last().targets[0].luns.entries[0].mask,
        vds_scsi::Mask::Nobody
    );
    assert_eq!(
        f.code(Command::PatchLun {
            id,
            friendly_name: None,
            unmasking_list: Some(";".into()),
            read_only: None,
        }),
        Hresult::E_INVALIDARG
    );
    f.ok(Command::PatchLun {
        id,
        friendly_name: Some("renamed".into()),
        unmasking_list: None,
        read_only: None,
    });
    assert_eq!(f.lun(id).friendly_name, "renamed");
}

#[test]
fn restart_restores_every_object_status_secret_and_tombstone() {
    let mut f = Fixture::new(41025, false);
    let sub = f.subsystem();
    let t = f.default_target();
    let a = f.create_lun(|a| {
        a.friendly_name = Some("a".into());
        a.targets = Some(vec![t.id]);
        a.unmasking_list = Some("iqn.2001-04.com.a".into());
    });
    let gone = f.create_lun(|a| a.friendly_name = Some("gone".into()));
    f.ok(Command::DeleteLun { id: gone.id });
    f.ok(Command::SetLunStatus {
        id: a.id,
        status: 2,
    });
    f.ok(Command::SetSharedSecret {
        id: t.id,
        secret: Some(b"abcdefghijklm".to_vec().into()),
        initiator_name: Some("iqn.2001-04.com.a".into()),
    });
    let p = match f.ok(Command::CreatePortal {
        subsystem: sub,
        address: "127.0.0.1".parse().unwrap(),
        port: 41059,
        advertise: None,
        controller: None,
    }) {
        Outcome::Portal(p) => p,
        o => panic!("{o:?}"),
    };
    f.ok(Command::SetPortalStatus {
        id: p.id,
        status: 1,
    });
    let default_portal = f.portals()[0].id;
    f.ok(Command::SetPortalStatus {
        id: default_portal,
        status: 4,
    });
    let before = (f.luns(), f.portals(), f.default_target());
    f.restart();
    let after = (f.luns(), f.portals(), f.default_target());
    assert_eq!(before, after);
    assert!(f.plane.bound(p.id));
    assert!(!f.plane.bound(default_portal));
    assert_eq!(f.p.logical_unit(a.id).unwrap().state(), LuState::NotReady);
    assert_eq!(
        f.code(Command::GetLun { id: gone.id }),
        Hresult::VDS_E_OBJECT_DELETED
    );
    let chap = f.plane.last().targets[0].chap.clone();
    assert_eq!(
        chap.initiator_secrets,
        vec![("iqn.2001-04.com.a".to_string(), b"abcdefghijklm".to_vec())]
    );
    assert_eq!(f.plane.last().targets[0].luns.entries.len(), 2);
}

#[test]
fn missing_backing_at_start_makes_the_lun_failed_and_the_rest_is_served() {
    let mut f = Fixture::new(41026, false);
    let a = f.create_lun(|a| a.friendly_name = Some("a".into()));
    std::fs::remove_file(a.backing.path.as_ref().unwrap()).unwrap();
    f.restart();
    let l = f.lun(a.id);
    assert_eq!((l.status, l.health), (LunStatus::Failed, Health::Failed));
    assert_eq!(f.p.logical_unit(a.id).unwrap().state(), LuState::Failed);
    // The default LUN is fine, and the cache is not corrupt.
    assert_eq!(f.luns()[0].status, LunStatus::Online);
    // The file comes back: Refresh re-probes it → OFFLINE, HEALTHY.
    vds_backstore::create_file(
        std::path::Path::new(a.backing.path.as_ref().unwrap()),
        4 << 20,
        false,
    )
    .unwrap();
    f.ok(Command::Refresh);
    let l = f.lun(a.id);
    assert_eq!((l.status, l.health), (LunStatus::Offline, Health::Healthy));
    f.ok(Command::SetLunStatus {
        id: a.id,
        status: 1,
    });
}

#[test]
fn newer_store_schema_is_refused_precisely() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    drop(vds_store::Store::open(&data).unwrap());
    {
        let c = rusqlite_conn(&data);
        c.execute("UPDATE schema_version SET version = 42", [])
            .unwrap();
    }
    let plane = std::sync::Arc::new(super::TestPlane::default());
    let e = crate::Provider::open(super::config(dir.path(), 41027, false), plane)
        .err()
        .unwrap();
    assert_eq!(e.hresult, Hresult::VDS_E_BAD_REVISION_NUMBER);
    assert!(e.message.contains("42"));
    let plane = std::sync::Arc::new(super::TestPlane::default());
    let mut c = super::config(dir.path(), 41027, false);
    c.data_dir = "/nonexistent-parent/vds".into();
    let e = crate::Provider::open(c, plane).err().unwrap();
    assert!(e.message.contains("data_dir"), "{e}");
}

/// A second connection to the store file, standing for another process.
fn rusqlite_conn(data: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(data.join(vds_store::STORE_FILE)).unwrap()
}

#[test]
fn events_carry_codes_and_rfc3339_time() {
    let f = Fixture::new(41028, false);
    let mut rx = f.p.subscribe();
    let id = f.luns()[0].id;
    f.ok(Command::SetLunStatus { id, status: 4 });
    let e = rx.try_recv().unwrap();
    assert_eq!(
        (e.object_type, e.event, e.code, e.id),
        (ObjectKind::Lun, EventKind::Modify, 110, id)
    );
    let t = e.time_rfc3339();
    assert!(
        t.contains('T') && (t.ends_with('Z') || t.contains('+')),
        "{t}"
    );
}

#[test]
fn shutdown_flushes_and_unbinds() {
    let f = Fixture::new(41029, false);
    f.p.shutdown().unwrap();
    assert!(f.plane.listeners.lock().is_empty());
    assert!(TcpStream::connect(("127.0.0.1", 41029)).is_err());
}

/// EXTENDED COPY between two LUNs the provider created on one target: an identification target
/// descriptor (0xE4) naming the other LUN resolves through that target's published LUN map
/// (the LUs the nexus may see there; BEHAVIOUR §13).
#[test]
fn extended_copy_reaches_another_lun_the_provider_created() {
    let f = Fixture::new(41040, false);
    let memory = || BackingSpec {
        kind: BackingKind::Memory,
        path: None,
        filters: vec![],
        wipe: false,
        pool: None,
        image: None,
    };
    let target = f.default_target().id;
    let on_target = |x: &mut crate::CreateLunArgs| {
        x.backing = Some(memory());
        x.targets = Some(vec![target]);
    };
    let a = f.create_lun(on_target);
    let b = f.create_lun(on_target);
    let (la, lb) = (
        f.p.logical_unit(a.id).expect("LU of a"),
        f.p.logical_unit(b.id).expect("LU of b"),
    );
    for lu in [&la, &lb] {
        lu.set_state(vds_scsi::LuState::Online).unwrap();
    }
    let nexus = vds_scsi::ItNexus {
        id: 1,
        initiator_name: "iqn.2001-04.com.example:h".into(),
        initiator_port: "iqn.2001-04.com.example:h,i,0x000000000001".into(),
        target_port: "iqn.2026-11.local.vds:default,t,0x0001".into(),
        relative_target_port: 1,
        target_port_group: 1,
    };
    // The published map of the target both LUNs are on, and their LUN numbers there.
    let view = f.plane.last();
    let map = view
        .targets
        .iter()
        .map(|t| t.luns.clone())
        .find(|m| {
            [a.id, b.id]
                .iter()
                .all(|id| m.entries.iter().any(|e| e.lu.id() == *id))
        })
        .expect("a target maps both LUNs");
    let number = |id: Uuid| {
        map.entries
            .iter()
            .find(|e| e.lu.id() == id)
            .map(|e| e.number)
            .expect("LUN number")
    };
    let run = |lu: &vds_scsi::LogicalUnit, cdb: &[u8], data: &[u8]| {
        let mut out = Vec::new();
        let cmd = vds_scsi::ScsiCommand {
            cdb,
            data_out: data,
            expected_in_len: 65536,
            attr: vds_scsi::TaskAttr::Simple,
        };
        let r = map.execute(&nexus, number(lu.id()), &cmd, &mut out);
        (r, out)
    };
    // WRITE(10) 8 blocks at LBA 10 of a.
    let data: Vec<u8> = (0..8 * 512).map(|i| (i % 251) as u8).collect();
    let (r, _) = run(&la, &[0x2A, 0, 0, 0, 0, 10, 0, 0, 8, 0], &data);
    assert_eq!(r, vds_scsi::ScsiOutcome::GOOD);
    // EXTENDED COPY (LID1): two 0xE4 target descriptors (a, b), one block→block segment
    // copying 8 blocks from a:10 to b:100.
    let mut p = vec![0u8; 16];
    p[1] = 0x18;
    p[2..4].copy_from_slice(&64u16.to_be_bytes());
    p[8..12].copy_from_slice(&28u32.to_be_bytes());
    for lu in [&la, &lb] {
        let mut t = [0u8; 32];
        t[0] = 0xE4;
        t[4] = 0x01; // binary code set
        t[5] = 0x03; // NAA designator
        t[7] = 16;
        t[8..24].copy_from_slice(&lu.naa());
        t[29..32].copy_from_slice(&lu.block_size().to_be_bytes()[1..]);
        p.extend_from_slice(&t);
    }
    let mut s = [0u8; 28];
    s[0] = 0x02;
    s[2..4].copy_from_slice(&24u16.to_be_bytes());
    s[6..8].copy_from_slice(&1u16.to_be_bytes()); // destination: descriptor 1
    s[10..12].copy_from_slice(&8u16.to_be_bytes());
    s[12..20].copy_from_slice(&10u64.to_be_bytes());
    s[20..28].copy_from_slice(&100u64.to_be_bytes());
    p.extend_from_slice(&s);
    let mut cdb = [0u8; 16];
    cdb[0] = 0x83;
    cdb[10..14].copy_from_slice(&(p.len() as u32).to_be_bytes());
    let (r, _) = run(&la, &cdb, &p);
    assert_eq!(r, vds_scsi::ScsiOutcome::GOOD, "EXTENDED COPY across LUNs");
    // READ(10) 8 blocks at LBA 100 of b: the copied data.
    let (r, out) = run(&lb, &[0x28, 0, 0, 0, 0, 100, 0, 0, 8, 0], &[]);
    assert_eq!(r, vds_scsi::ScsiOutcome::GOOD);
    assert_eq!(out, data);
}

/// BEHAVIOUR.md §4 "Addresses in SendTargets": a portal's advertised address is set at create
/// or by PATCH, checked, stored, published to the data path, announced by a MODIFY event,
/// cleared, and kept across a restart.
#[test]
fn a_portal_advertised_address_is_checked_stored_published_and_announced() {
    let mut f = Fixture::new(41085, false);
    let sub = f.subsystem();
    let p = match f.ok(Command::CreatePortal {
        subsystem: sub,
        address: "127.0.0.1".parse().unwrap(),
        port: 41086,
        advertise: Some("gw.example:3260".into()),
        controller: None,
    }) {
        Outcome::Portal(p) => p,
        o => panic!("{o:?}"),
    };
    assert_eq!(p.advertise.as_ref().unwrap().as_str(), "gw.example:3260");
    let view = |f: &Fixture| {
        f.plane
            .last()
            .portals
            .iter()
            .find(|v| v.id == p.id)
            .unwrap()
            .advertise
            .clone()
    };
    assert_eq!(view(&f).as_deref(), Some("gw.example:3260"));
    // A bad value at create: E_INVALIDARG naming the field and the rule, nothing made.
    let before = f.portals().len();
    let e = f.err(Command::CreatePortal {
        subsystem: sub,
        address: "127.0.0.1".parse().unwrap(),
        port: 41087,
        advertise: Some("gw.example:3260,7".into()),
        controller: None,
    });
    assert_eq!(e.hresult, Hresult::E_INVALIDARG);
    assert!(
        e.message.contains("advertise") && e.message.contains("','"),
        "{e}"
    );
    assert_eq!(f.portals().len(), before);

    let mut rx = f.p.subscribe();
    let patch = |a: Option<Option<&str>>| Command::PatchPortal {
        id: p.id,
        advertise: a.map(|x| x.map(str::to_string)),
    };
    match f.ok(patch(Some(Some("[fd00::7]:13260")))) {
        Outcome::Portal(q) => assert_eq!(q.advertise.unwrap().as_str(), "[fd00::7]:13260"),
        o => panic!("{o:?}"),
    }
    assert_eq!(view(&f).as_deref(), Some("[fd00::7]:13260"));
    assert_eq!(
        drain(&mut rx),
        vec![(ObjectKind::Portal, EventKind::Modify, p.id)]
    );
    // The same value again, or no change asked: no event.
    f.ok(patch(Some(Some("[fd00::7]:13260"))));
    f.ok(patch(None));
    assert_eq!(drain(&mut rx), vec![]);
    // Bad values: E_INVALIDARG, nothing changed, nothing announced.
    for bad in [
        "",
        "fd00::7:3260",
        "a b:1",
        "h:0",
        "h:3260\r\nX",
        &"a".repeat(300),
    ] {
        let e = f.err(patch(Some(Some(bad))));
        assert_eq!(e.hresult, Hresult::E_INVALIDARG, "{bad:?}");
        assert!(e.message.starts_with("advertise: "), "{e}");
    }
    assert_eq!(drain(&mut rx), vec![]);
    assert_eq!(view(&f).as_deref(), Some("[fd00::7]:13260"));
    // Kept across a restart.
    f.restart();
    let kept = f.portals().into_iter().find(|q| q.id == p.id).unwrap();
    assert_eq!(kept.advertise.unwrap().as_str(), "[fd00::7]:13260");
    assert_eq!(view(&f).as_deref(), Some("[fd00::7]:13260"));
    // Cleared.
    let mut rx = f.p.subscribe();
    match f.ok(patch(Some(None))) {
        Outcome::Portal(q) => assert_eq!(q.advertise, None),
        o => panic!("{o:?}"),
    }
    assert_eq!(view(&f), None);
    assert_eq!(
        drain(&mut rx),
        vec![(ObjectKind::Portal, EventKind::Modify, p.id)]
    );
    f.restart();
    assert_eq!(view(&f), None);
    // An unknown portal.
    assert_eq!(
        f.code(Command::PatchPortal {
            id: Uuid::new_v4(),
            advertise: Some(None)
        }),
        Hresult::VDS_E_OBJECT_NOT_FOUND
    );
}

/// The embedded default's portals take the advertised address given for them on first start.
#[test]
fn first_start_portals_take_their_advertised_address() {
    let dir = tempfile::tempdir().unwrap();
    let plane = std::sync::Arc::new(super::TestPlane::default());
    let mut c = super::config(dir.path(), 41088, false);
    let addr = SocketAddr::from(([127, 0, 0, 1], 41088));
    c.first_start_advertise = vec![(
        addr,
        vds_model::AdvertisedAddress::parse("10.0.2.100:3260").unwrap(),
    )];
    let p = crate::Provider::open(c, plane.clone()).unwrap();
    let portals = match p.apply(Command::ListPortals { subsystem: None }) {
        Ok(Outcome::Portals(v)) => v,
        o => panic!("{o:?}"),
    };
    assert_eq!(
        portals[0].advertise.as_ref().map(|a| a.as_str()),
        Some("10.0.2.100:3260")
    );
    assert_eq!(
        plane.last().portals[0].advertise.as_deref(),
        Some("10.0.2.100:3260")
    );
}
