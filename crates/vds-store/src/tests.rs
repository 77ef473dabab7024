//! Store tests: round trips of every object kind, tombstones across reopen, the schema
//! version guard, durability-relevant pragmas, permissions and external-change detection.

use super::*;
use std::os::unix::fs::PermissionsExt;

fn sample_lun(sub: Uuid, drive: Uuid, target: Uuid) -> LunRecord {
    let id = Uuid::new_v4();
    LunRecord {
        lun: Lun {
            id,
            subsystem: sub,
            drive,
            friendly_name: "lun-a".into(),
            identification: "naa.6001".into(),
            size_bytes: 1 << 30,
            unmasking_list: "*".into(),
            flags: 0,
            lun_type: LunType::Simple,
            status: LunStatus::Offline,
            health: Health::Healthy,
            transition_state: TransitionState::Stable,
            rebuild_priority: 0,
            thin: true,
            read_only: true,
            targets: vec![target],
            lun_numbers: vec![(target, 3)],
            plexes: vec![LunPlex {
                id: Uuid::new_v4(),
                size_bytes: 1 << 30,
                plex_type: LunPlexType::Simple,
                status: LunPlexStatus::Online,
                health: Health::Healthy,
                transition_state: TransitionState::Stable,
                flags: 0,
                stripe_size: 0,
                rebuild_priority: 0,
            }],
            backing: Backing {
                kind: BackingKind::File,
                path: Some("/tmp/x.img".into()),
            },
            filters: vec![
                FaultFilterSpec::Delay {
                    read_ms: 1,
                    write_ms: 2,
                    flush_ms: 3000,
                },
                FaultFilterSpec::Error {
                    ops: vec![FaultOpKind::Read, FaultOpKind::Flush],
                    after: 7,
                },
            ],
            block_size: 512,
            active_controllers: vec![Uuid::new_v4(), Uuid::new_v4()],
            load_balance: LoadBalancePolicy::Failover,
            extents: Vec::new(),
        },
        identity: Some((12, 34)),
        owns_file: true,
    }
}

#[test]
fn round_trip_every_object_and_tombstones_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let sub = Uuid::new_v4();
    let drive = Uuid::new_v4();
    let target = Uuid::new_v4();
    let portal = Uuid::new_v4();
    let pg = Uuid::new_v4();
    let gone = Uuid::new_v4();
    let lun = sample_lun(sub, drive, target);
    {
        let mut s = Store::open(dir.path()).unwrap();
        assert!(s.is_empty().unwrap());
        s.write(|tx| {
            tx.put_subsystem(&Subsystem {
                id: sub,
                friendly_name: "vds".into(),
                identification: "ident".into(),
                flags: 1,
                status: SubsystemStatus::Online,
                health: Health::Healthy,
                supported_raid_types: 0,
                rebuild_priority: 0,
                portal_status_settable: true,
            })?;
            tx.put_controller(&Controller {
                id: Uuid::new_v4(),
                subsystem: sub,
                friendly_name: "c".into(),
                identification: "c0".into(),
                status: ControllerStatus::Online,
                health: Health::Healthy,
                number_of_ports: 1,
                port_group: 7,
            })?;
            tx.put_drive(&Drive {
                id: drive,
                subsystem: sub,
                friendly_name: "d".into(),
                identification: "d0".into(),
                size_bytes: 10,
                flags: 2,
                status: DriveStatus::Online,
                health: Health::Healthy,
                bus_number: 0,
                slot_number: 0,
                path: "/data".into(),
                kind: DriveKind::Block,
            })?;
            tx.put_target(&Target {
                id: target,
                subsystem: sub,
                iscsi_name: "iqn.2026-11.local.vds:t".into(),
                friendly_name: "t".into(),
                chap_enabled: false,
                portal_groups: vec![],
                luns: vec![],
            })?;
            tx.set_secret(target, SecretKind::Default, "", Some(b"0123456789ab"))?;
            tx.set_secret(
                target,
                SecretKind::Mutual,
                "iqn.2001-04.com.a",
                Some(b"abcdefghijkl"),
            )?;
            tx.put_lun(&lun)?;
            tx.put_portal(&Portal {
                id: portal,
                subsystem: sub,
                address: "127.0.0.1".parse().unwrap(),
                port: 3260,
                status: PortalStatus::Online,
                advertise: Some(AdvertisedAddress::parse("[fd00::1]:3260").unwrap()),
                controller: Uuid::new_v4(),
                portal_groups: vec![],
            })?;
            tx.put_portal_group(&PortalGroup {
                id: pg,
                target,
                tag: 1,
                portals: vec![portal],
            })?;
            tx.set_pr_state(lun.lun.id, b"pr")?;
            tx.set_lun_hints(lun.lun.id, &hints())?;
            tx.add_tombstone(gone, ObjectKind::Lun)?;
            tx.set_meta("provider_id", "x")?;
            Ok(())
        })
        .unwrap();
    }
    let s = Store::open(dir.path()).unwrap();
    assert!(!s.is_empty().unwrap());
    let snap = s.load().unwrap();
    assert_eq!(snap.luns, vec![lun.clone()]);
    assert_eq!(snap.targets.len(), 1);
    let t = &snap.targets[0];
    assert!(t.chap_enabled);
    assert_eq!(t.portal_groups, vec![pg]);
    assert_eq!(t.luns, vec![lun.lun.id]);
    assert_eq!(snap.portals[0].portal_groups, vec![pg]);
    assert_eq!(
        snap.portals[0].advertise.as_ref().map(|a| a.as_str()),
        Some("[fd00::1]:3260")
    );
    assert_eq!(snap.portal_groups[0].portals, vec![portal]);
    assert_eq!(snap.secrets.len(), 2);
    assert_eq!(snap.pr_states, vec![(lun.lun.id, b"pr".to_vec())]);
    assert_eq!(snap.lun_hints, vec![(lun.lun.id, hints())]);
    assert_eq!(snap.tombstones, vec![(gone, ObjectKind::Lun)]);
    assert_eq!(s.tombstone(gone).unwrap(), Some(ObjectKind::Lun));
    assert_eq!(s.tombstone(Uuid::new_v4()).unwrap(), None);
    assert_eq!(
        snap.meta,
        vec![("provider_id".to_string(), "x".to_string())]
    );
}

#[test]
fn failed_transaction_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    let r: Result<()> = s.write(|tx| {
        tx.add_tombstone(Uuid::new_v4(), ObjectKind::Lun)?;
        Err(StoreError::BadRow("boom".into()))
    });
    assert!(r.is_err());
    assert!(s.load().unwrap().tombstones.is_empty());
}

#[test]
fn delete_removes_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    let lun = sample_lun(Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    s.write(|tx| tx.put_lun(&lun)).unwrap();
    s.write(|tx| tx.delete_lun(lun.lun.id)).unwrap();
    assert!(s.load().unwrap().luns.is_empty());
}

#[test]
fn newer_schema_is_refused_precisely() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    {
        let c = Connection::open(dir.path().join(STORE_FILE)).unwrap();
        c.execute("UPDATE schema_version SET version = 99", [])
            .unwrap();
    }
    let e = Store::open(dir.path()).err().unwrap();
    assert!(matches!(
        e,
        StoreError::NewerSchema {
            found: 99,
            supported: SCHEMA_VERSION,
            ..
        }
    ));
    assert_eq!(e.hresult(), Hresult::VDS_E_BAD_REVISION_NUMBER);
    assert!(e.to_string().contains("99"));
}

#[test]
fn a_version_1_store_upgrades_and_its_luns_stay_writable() {
    let dir = tempfile::tempdir().unwrap();
    let lun_id = Uuid::new_v4();
    {
        // A store as a version-1 vdsd left it: the first migration only, one LUN row in the
        // 21-column layout of version 1.
        let c = Connection::open(dir.path().join(STORE_FILE)).unwrap();
        c.execute_batch(MIGRATIONS[0]).unwrap();
        c.execute_batch(
            "CREATE TABLE schema_version (version INTEGER NOT NULL);
             INSERT INTO schema_version (version) VALUES (1);",
        )
        .unwrap();
        c.execute(
            "INSERT INTO luns VALUES (?1, 1, ?2, ?3, 'old', 'naa.6001', 1048576, '*', 0, 1, 1, 1,
             1, 0, 1, 'memory', NULL, 512, NULL, NULL, 0)",
            params![
                lun_id.to_string(),
                Uuid::new_v4().to_string(),
                Uuid::new_v4().to_string()
            ],
        )
        .unwrap();
    }
    let mut s = Store::open(dir.path()).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    let snap = s.load().unwrap();
    assert_eq!(snap.luns.len(), 1);
    let mut rec = snap.luns[0].clone();
    assert_eq!(rec.lun.id, lun_id);
    assert_eq!(rec.lun.friendly_name, "old");
    assert!(
        !rec.lun.read_only,
        "a LUN from before read-only LUNs is writable"
    );
    // The new column is written and read back, and survives a reopen.
    rec.lun.read_only = true;
    s.write(|tx| tx.put_lun(&rec)).unwrap();
    drop(s);
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    assert!(s.load().unwrap().luns[0].lun.read_only);
}

#[test]
fn a_version_2_store_upgrades_and_its_portals_advertise_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let portal = Uuid::new_v4();
    {
        // A store as a version-2 vdsd left it: one portal row in the 6-column layout.
        let c = Connection::open(dir.path().join(STORE_FILE)).unwrap();
        c.execute_batch(MIGRATIONS[0]).unwrap();
        c.execute_batch(MIGRATIONS[1]).unwrap();
        c.execute_batch(
            "CREATE TABLE schema_version (version INTEGER NOT NULL);
             INSERT INTO schema_version (version) VALUES (2);",
        )
        .unwrap();
        let sub = Uuid::new_v4().to_string();
        c.execute(
            "INSERT INTO controllers VALUES (?1, ?2, 'c', 'c0', 1, 1, 1)",
            params![Uuid::new_v4().to_string(), sub],
        )
        .unwrap();
        c.execute(
            "INSERT INTO portals VALUES (?1, 1, ?2, '0.0.0.0', 3260, 1)",
            params![portal.to_string(), sub],
        )
        .unwrap();
    }
    let mut s = Store::open(dir.path()).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    let mut p = s.load().unwrap().portals[0].clone();
    assert_eq!(p.id, portal);
    assert_eq!(p.advertise, None, "an old portal advertises nothing");
    p.advertise = Some(AdvertisedAddress::parse("gw.example:3260").unwrap());
    s.write(|tx| tx.put_portal(&p)).unwrap();
    drop(s);
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.load().unwrap().portals[0], p);
}

/// Migration 4 -> 5 (BEHAVIOUR.md §14), from a version-3 store: the controllers of a subsystem become target port
/// groups 1, 2, ... in creation order, its portals belong to the first one, and its LUNs are
/// active on every controller with the default load-balance policy (what they served before).
#[test]
fn a_version_3_store_upgrades_to_controllers_as_port_groups() {
    let dir = tempfile::tempdir().unwrap();
    let (sub, other_sub) = (Uuid::new_v4(), Uuid::new_v4());
    let (c1, c2, c3) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let (portal, lun) = (Uuid::new_v4(), Uuid::new_v4());
    {
        let c = Connection::open(dir.path().join(STORE_FILE)).unwrap();
        for m in &MIGRATIONS[..3] {
            c.execute_batch(m).unwrap();
        }
        c.execute_batch(
            "CREATE TABLE schema_version (version INTEGER NOT NULL);
             INSERT INTO schema_version (version) VALUES (3);",
        )
        .unwrap();
        for (id, s) in [(c1, sub), (c3, other_sub), (c2, sub)] {
            c.execute(
                "INSERT INTO controllers VALUES (?1, ?2, 'c', 'c', 1, 1, 1)",
                params![id.to_string(), s.to_string()],
            )
            .unwrap();
        }
        c.execute(
            "INSERT INTO portals VALUES (?1, 1, ?2, '0.0.0.0', 3260, 1, NULL)",
            params![portal.to_string(), sub.to_string()],
        )
        .unwrap();
        c.execute(
            "INSERT INTO luns VALUES (?1, 2, ?2, ?3, 'old', 'naa.6001', 1048576, '*', 0, 1, 1, 1,
             1, 0, 1, 'memory', NULL, 512, NULL, NULL, 0, 0)",
            params![lun.to_string(), sub.to_string(), Uuid::new_v4().to_string()],
        )
        .unwrap();
    }
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    let snap = s.load().unwrap();
    let groups: Vec<(Uuid, u16)> = snap
        .controllers
        .iter()
        .map(|c| (c.id, c.port_group))
        .collect();
    assert_eq!(groups, vec![(c1, 1), (c3, 1), (c2, 2)]);
    let ports: Vec<i16> = snap.controllers.iter().map(|c| c.number_of_ports).collect();
    assert_eq!(ports, vec![1, 0, 0], "a controller's ports are its portals");
    assert_eq!(snap.portals[0].controller, c1);
    assert_eq!(snap.luns[0].lun.active_controllers, vec![c1, c2]);
    assert_eq!(
        snap.luns[0].lun.load_balance,
        LoadBalancePolicy::RoundRobinWithSubset
    );
}

#[test]
fn a_hand_edited_advertise_is_a_bad_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    s.write(|tx| {
        tx.put_portal(&Portal {
            id: Uuid::new_v4(),
            subsystem: Uuid::new_v4(),
            address: "127.0.0.1".parse().unwrap(),
            port: 3260,
            status: PortalStatus::Online,
            advertise: None,
            controller: Uuid::new_v4(),
            portal_groups: vec![],
        })
    })
    .unwrap();
    s.conn
        .execute("UPDATE portals SET advertise = 'a b:1,1'", [])
        .unwrap();
    let e = s.load().err().unwrap();
    assert!(matches!(e, StoreError::BadRow(_)), "{e}");
    assert!(e.to_string().contains("advertised address"), "{e}");
}

#[test]
fn pragmas_and_permissions() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    let s = Store::open(&dir).unwrap();
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let mode = std::fs::metadata(dir.join(STORE_FILE))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let jm: String = s
        .conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(jm, "wal");
    let sync: i64 = s
        .conn
        .pragma_query_value(None, "synchronous", |r| r.get(0))
        .unwrap();
    assert_eq!(sync, 2, "synchronous=FULL");
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
}

#[test]
fn missing_parent_is_a_data_dir_error() {
    let e = Store::open(Path::new("/nonexistent/vds/data"))
        .err()
        .unwrap();
    assert!(matches!(e, StoreError::DataDir { .. }));
    // ENOENT → ERROR_FILE_NOT_FOUND.
    assert_eq!(e.hresult(), Hresult::from_win32(2));
    assert!(e.to_string().contains("/nonexistent/vds/data"));
}

#[test]
fn another_process_changing_the_store_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    assert!(!s.changed_externally().unwrap());
    s.write(|tx| tx.set_meta("a", "1")).unwrap();
    assert!(!s.changed_externally().unwrap(), "own commits do not count");
    {
        let mut other = Store::open(dir.path()).unwrap();
        other.write(|tx| tx.set_meta("b", "2")).unwrap();
    }
    assert!(s.changed_externally().unwrap());
    assert!(!s.changed_externally().unwrap());
}

#[test]
fn filter_encoding_round_trips() {
    for f in [
        FaultFilterSpec::Delay {
            read_ms: 0,
            write_ms: 5,
            flush_ms: 3000,
        },
        FaultFilterSpec::Error {
            ops: vec![],
            after: 0,
        },
        FaultFilterSpec::Error {
            ops: vec![FaultOpKind::Write],
            after: 9,
        },
    ] {
        assert_eq!(decode_filter(&encode_filter(&f)), Some(f));
    }
    assert_eq!(decode_filter("bogus"), None);
}

#[test]
fn a_full_disk_is_the_converted_os_error() {
    // SQLITE_FULL (13), as a write to the store on a full filesystem reports it.
    let e = StoreError::Sqlite(rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(13),
        Some("database or disk is full".into()),
    ));
    assert_eq!(e.hresult().0, 0x8007_0070);
}

/// Issue 10 item 9: a secret row (and a snapshot holding one) never prints its bytes.
#[test]
fn secret_row_debug_hides_the_secret() {
    let row = SecretRow {
        target: Uuid::nil(),
        kind: SecretKind::Initiator,
        initiator: "iqn.2026-01.test:a".into(),
        secret: b"sekrit-bytes-1".to_vec(),
    };
    let shown = format!("{row:?} {row:#?}");
    assert!(!shown.contains("sekrit"), "{shown}");
    assert!(!shown.contains(&format!("{:?}", row.secret)), "{shown}");
    assert!(
        shown.contains("iqn.2026-01.test:a") && shown.contains("14 bytes"),
        "{shown}"
    );
}

/// Hints unlike the defaults in every field.
fn hints() -> vds_model::LunHints {
    vds_model::LunHints {
        write_caching_enabled: false,
        write_through_caching_enabled: true,
        read_back_verify_enabled: true,
        optimal_read_size: 65536,
        optimal_read_alignment: 4096,
        optimal_write_size: 131072,
        optimal_write_alignment: 8192,
        rebuild_priority: 15,
        fast_crash_recovery_required: true,
    }
}

/// Deleting a LUN takes its hints with it.
#[test]
fn lun_hints_go_with_the_lun() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    let id = Uuid::new_v4();
    s.write(|tx| tx.set_lun_hints(id, &hints())).unwrap();
    assert_eq!(s.load().unwrap().lun_hints.len(), 1);
    s.write(|tx| tx.delete_lun(id)).unwrap();
    assert!(s.load().unwrap().lun_hints.is_empty());
}

/// A version-3 store gains the hints table, empty: its LUNs keep the default hints.
#[test]
fn a_version_3_store_upgrades_with_no_hints() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = Connection::open(dir.path().join(STORE_FILE)).unwrap();
        for m in &MIGRATIONS[..3] {
            c.execute_batch(m).unwrap();
        }
        c.execute_batch(
            "CREATE TABLE schema_version (version INTEGER NOT NULL);
             INSERT INTO schema_version (version) VALUES (3);",
        )
        .unwrap();
    }
    let mut s = Store::open(dir.path()).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    assert!(s.load().unwrap().lun_hints.is_empty());
    let id = Uuid::new_v4();
    s.write(|tx| tx.set_lun_hints(id, &hints())).unwrap();
    assert_eq!(s.load().unwrap().lun_hints, vec![(id, hints())]);
}

/// Migration 5 -> 6 (BEHAVIOUR.md §15): a drive stored before drive kinds is the data dir's
/// filesystem, a `dir` drive; a `block` drive's kind is written and read back.
#[test]
fn a_version_5_store_upgrades_and_its_drive_is_a_dir_drive() {
    let dir = tempfile::tempdir().unwrap();
    let drive = Uuid::new_v4();
    {
        let c = Connection::open(dir.path().join(STORE_FILE)).unwrap();
        for m in &MIGRATIONS[..5] {
            c.execute_batch(m).unwrap();
        }
        c.execute_batch(
            "CREATE TABLE schema_version (version INTEGER NOT NULL);
             INSERT INTO schema_version (version) VALUES (5);",
        )
        .unwrap();
        c.execute(
            "INSERT INTO drives VALUES (?1, ?2, 'data dir', '/data', 4096, 0, 1, 1, 0, 0, '/data')",
            params![drive.to_string(), Uuid::new_v4().to_string()],
        )
        .unwrap();
    }
    let mut s = Store::open(dir.path()).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    let mut d = s.load().unwrap().drives[0].clone();
    assert_eq!((d.id, d.kind), (drive, DriveKind::Dir));
    d.kind = DriveKind::Block;
    s.write(|tx| tx.put_drive(&d)).unwrap();
    drop(s);
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.load().unwrap().drives[0], d);
}

#[test]
fn extents_and_plex_order_round_trip_and_go_with_the_lun() {
    let dir = tempfile::tempdir().unwrap();
    let (sub, drive, target) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let mut rec = sample_lun(sub, drive, target);
    rec.lun.backing = Backing {
        kind: BackingKind::Extents,
        path: None,
    };
    // Plex ids in descending order: the order must come from the LUN, not from the ids.
    let mut ids = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
    ids.sort();
    ids.reverse();
    let template = rec.lun.plexes[0].clone();
    rec.lun.plexes = ids
        .iter()
        .map(|id| LunPlex {
            id: *id,
            stripe_size: 65536,
            ..template.clone()
        })
        .collect();
    let other = Uuid::new_v4();
    rec.lun.extents = ids
        .iter()
        .enumerate()
        .flat_map(|(i, p)| {
            (0..2u32).map(move |c| Extent {
                plex: *p,
                column: c,
                seq: 0,
                drive: if c == 0 { drive } else { other },
                offset: (1 << 20) + i as u64 * 4096,
                size: 1 << 29,
            })
        })
        .collect();
    let mut s = Store::open(dir.path()).unwrap();
    s.write(|tx| tx.put_lun(&rec)).unwrap();
    drop(s);
    let s = Store::open(dir.path()).unwrap();
    let snap = s.load().unwrap();
    assert_eq!(snap.luns.len(), 1);
    let got = &snap.luns[0].lun;
    assert_eq!(got.plexes, rec.lun.plexes, "plexes in the LUN's order");
    assert_eq!(got.extents, rec.lun.extents);
    assert_eq!(got.backing.kind, BackingKind::Extents);
    let mut s = s;
    s.write(|tx| tx.delete_lun(rec.lun.id)).unwrap();
    let n: i64 = s
        .conn
        .query_row("SELECT COUNT(*) FROM extents", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0, "a deleted LUN's extents are gone");
}

#[test]
fn a_version_7_store_upgrades_and_named_pools_round_trip_with_their_drive_order() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = Connection::open(dir.path().join(STORE_FILE)).unwrap();
        for m in &MIGRATIONS[..7] {
            c.execute_batch(m).unwrap();
        }
        c.execute_batch(
            "CREATE TABLE schema_version (version INTEGER NOT NULL);
             INSERT INTO schema_version (version) VALUES (7);",
        )
        .unwrap();
    }
    let mut s = Store::open(dir.path()).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    assert!(s.load().unwrap().pools.is_empty());
    // Drive ids in descending order: the order must come from the pool, not from the ids.
    let mut drives = vec![Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
    drives.sort();
    drives.reverse();
    let pool = StoragePool {
        id: Uuid::new_v4(),
        subsystem: Uuid::new_v4(),
        name: "fast".into(),
        description: "the SSDs".into(),
        pool_type: StoragePoolType::Concrete,
        status: StoragePoolStatus::Online,
        health: Health::Healthy,
        drives: drives.clone(),
        default_type: LunType::Mirror,
        attributes: PoolAttributes {
            raid_type: Some(RaidType::Raid10),
            thin_provisioned: Some(false),
            no_single_point_of_failure: None,
            stripe_size: Some(65536),
            number_of_columns: Some(2),
            intended_usage: Some("databases".into()),
        },
        total_managed: 0,
        consumed: 0,
        remaining: 0,
        provisioned: 0,
        overcommitted: false,
    };
    let other = StoragePool {
        id: Uuid::new_v4(),
        name: "slow".into(),
        drives: vec![Uuid::new_v4()],
        attributes: PoolAttributes::default(),
        ..pool.clone()
    };
    s.write(|tx| {
        tx.put_pool(&pool)?;
        tx.put_pool(&other)
    })
    .unwrap();
    // Replacing keeps one row set; the same name twice is refused by the table.
    s.write(|tx| tx.put_pool(&pool)).unwrap();
    let clash = StoragePool {
        id: Uuid::new_v4(),
        drives: vec![],
        ..pool.clone()
    };
    assert!(s.write(|tx| tx.put_pool(&clash)).is_err());
    drop(s);
    let mut s = Store::open(dir.path()).unwrap();
    assert_eq!(s.load().unwrap().pools, vec![other.clone(), pool.clone()]);
    s.write(|tx| tx.delete_pool(other.id)).unwrap();
    assert_eq!(s.load().unwrap().pools, vec![pool]);
}
