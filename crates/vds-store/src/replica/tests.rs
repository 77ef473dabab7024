//! Tests of replication: the row encoding (malformed bytes refused, never a panic), writes
//! replicated by compare-and-set (a lost race or an unreachable cluster writes nothing
//! locally), `INSERT OR REPLACE` deletions seen, and a second store made equal by
//! `replace_replicated`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rusqlite::types::Value;
use uuid::Uuid;
use vds_model::{Health, ObjectKind, Subsystem, SubsystemStatus, Target};

use super::{decode_row, encode_row};
use crate::{Replicator, Store, StoreError, CLUSTER_VERSION_KEY};

/// The shared object a test replicates into: keys and a version, compare-and-set.
#[derive(Default)]
struct Shared {
    version: u64,
    keys: BTreeMap<String, Vec<u8>>,
    /// Answer every update with this error (an unreachable cluster).
    down: bool,
}

#[derive(Clone, Default)]
struct Object(Arc<Mutex<Shared>>);

impl Replicator for Object {
    fn update(
        &self,
        base: u64,
        set: &[(String, Vec<u8>)],
        remove: &[String],
    ) -> std::io::Result<Result<u64, u64>> {
        let mut g = self.0.lock().unwrap();
        if g.down {
            return Err(std::io::Error::other("cluster unreachable"));
        }
        if g.version != base {
            return Ok(Err(g.version));
        }
        for (k, v) in set {
            g.keys.insert(k.clone(), v.clone());
        }
        for k in remove {
            g.keys.remove(k);
        }
        g.version += 1;
        Ok(Ok(g.version))
    }
}

impl Object {
    fn keys(&self) -> Vec<(String, Vec<u8>)> {
        let g = self.0.lock().unwrap();
        g.keys.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
    fn version(&self) -> u64 {
        self.0.lock().unwrap().version
    }
}

fn subsystem(id: Uuid, name: &str) -> Subsystem {
    Subsystem {
        id,
        friendly_name: name.into(),
        identification: "ident".into(),
        flags: 1,
        status: SubsystemStatus::Online,
        health: Health::Healthy,
        supported_raid_types: 0,
        rebuild_priority: 0,
        portal_status_settable: true,
    }
}

fn target(sub: Uuid, name: &str) -> Target {
    Target {
        id: Uuid::new_v4(),
        subsystem: sub,
        iscsi_name: format!("iqn.2026-11.local.vds:{name}"),
        friendly_name: name.into(),
        chap_enabled: false,
        portal_groups: vec![],
        luns: vec![],
    }
}

#[test]
fn rows_round_trip_and_malformed_rows_are_refused() {
    let cols = vec![
        ("id".to_string(), Value::Text("é-x".into())),
        ("n".to_string(), Value::Integer(-5)),
        ("f".to_string(), Value::Real(1.5)),
        ("b".to_string(), Value::Blob(vec![0, 1, 255])),
        ("z".to_string(), Value::Null),
    ];
    let enc = encode_row(&cols);
    assert_eq!(decode_row(&enc).unwrap(), cols);
    // Every truncation is refused.
    for n in 0..enc.len() {
        assert!(
            matches!(decode_row(&enc[..n]), Err(StoreError::BadRow(_))),
            "truncated at {n}"
        );
    }
    // A byte after the end, a bad magic, an unknown tag, a huge count, non-UTF-8 text and a
    // column named twice.
    let mut long = enc.clone();
    long.push(0);
    assert!(decode_row(&long).is_err());
    let mut magic = enc.clone();
    magic[0] = 0;
    assert!(decode_row(&magic).is_err());
    let one = encode_row(&[("a".into(), Value::Integer(1))]);
    let mut tag = one.clone();
    tag[1 + 4 + 4 + 1] = 9;
    assert!(decode_row(&tag).is_err());
    let mut count = one.clone();
    count[1..5].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(decode_row(&count).is_err());
    let mut text = encode_row(&[("a".into(), Value::Text("x".into()))]);
    let last = text.len() - 1;
    text[last] = 0xFF;
    assert!(decode_row(&text).is_err());
    let twice = encode_row(&[
        ("a".into(), Value::Integer(1)),
        ("a".into(), Value::Integer(2)),
    ]);
    assert!(decode_row(&twice).is_err());
    // Arbitrary bytes: an error or a value, never a panic.
    let mut x: u32 = 7;
    for _ in 0..2000 {
        let mut b = enc.clone();
        for _ in 0..3 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let i = (x as usize >> 8) % b.len();
            b[i] = (x >> 16) as u8;
        }
        let _ = decode_row(&b);
    }
}

#[test]
fn writes_replicate_and_a_second_store_becomes_equal() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let obj = Object::default();
    let mut a = Store::open(da.path()).unwrap();
    a.set_replicator(Box::new(obj.clone())).unwrap();
    let sub = Uuid::new_v4();
    let t1 = target(sub, "t1");
    let t2 = target(sub, "t2");
    a.write(|tx| {
        tx.put_subsystem(&subsystem(sub, "one"))?;
        tx.put_target(&t1)?;
        tx.put_target(&t2)?;
        tx.set_meta("provider_id", "local")?;
        Ok(())
    })
    .unwrap();
    assert_eq!(obj.version(), 1);
    assert_eq!(a.cluster_version().unwrap(), 1);
    // INSERT OR REPLACE deletes the old row: its key must go too.
    a.write(|tx| tx.put_subsystem(&subsystem(sub, "two")))
        .unwrap();
    a.write(|tx| {
        tx.delete_target(t2.id)?;
        tx.add_tombstone(t2.id, ObjectKind::Target)
    })
    .unwrap();
    assert_eq!(obj.version(), 3);
    let keys = obj.keys();
    assert_eq!(
        keys.iter()
            .filter(|(k, _)| k.starts_with("row/subsystems/"))
            .count(),
        1,
        "{keys:?}"
    );
    assert!(keys.iter().all(|(k, _)| !k.starts_with("row/meta/")));
    // A write that touches nothing replicated does not bump the version.
    a.write(|tx| tx.set_meta("x", "y")).unwrap();
    assert_eq!(obj.version(), 3);

    let mut b = Store::open(db.path()).unwrap();
    let mut with_foreign = obj.keys();
    with_foreign.push(("lease/x".into(), b"not a row".to_vec()));
    b.replace_replicated(&with_foreign, obj.version()).unwrap();
    assert_eq!(b.cluster_version().unwrap(), 3);
    let (sa, sb) = (a.load().unwrap(), b.load().unwrap());
    assert_eq!(sa.subsystems, sb.subsystems);
    assert_eq!(sb.subsystems[0].friendly_name, "two");
    assert_eq!(sa.targets, sb.targets);
    assert_eq!(sa.tombstones, sb.tombstones);
    assert!(sb.meta.iter().all(|(k, _)| k != "provider_id"));

    // B writes from the latest version; A is stale now and writes nothing.
    b.set_replicator(Box::new(obj.clone())).unwrap();
    b.write(|tx| tx.put_target(&target(sub, "t3"))).unwrap();
    assert_eq!(obj.version(), 4);
    let before = a.load().unwrap().targets;
    let e = a.write(|tx| tx.put_target(&target(sub, "t4"))).unwrap_err();
    assert!(
        matches!(e, StoreError::Stale { base: 3, found: 4 }),
        "{e:?}"
    );
    assert!(e.to_string().contains(crate::STALE_MARK));
    assert_eq!(a.load().unwrap().targets, before);
    assert_eq!(a.cluster_version().unwrap(), 3);
    // A syncs and then writes; rowids agree, so B applying the result is A's state.
    a.replace_replicated(&obj.keys(), obj.version()).unwrap();
    a.write(|tx| tx.put_target(&target(sub, "t4"))).unwrap();
    b.replace_replicated(&obj.keys(), obj.version()).unwrap();
    assert_eq!(a.load().unwrap().targets, b.load().unwrap().targets);
    assert_eq!(a.load().unwrap().targets.len(), 3);

    // An unreachable cluster: an error, nothing written locally.
    obj.0.lock().unwrap().down = true;
    let e = a.write(|tx| tx.put_target(&target(sub, "t5"))).unwrap_err();
    assert!(matches!(e, StoreError::Replication(_)), "{e:?}");
    assert_eq!(a.load().unwrap().targets.len(), 3);
}

#[test]
fn a_malformed_replicated_row_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    let sub = Uuid::new_v4();
    s.write(|tx| tx.put_subsystem(&subsystem(sub, "kept")))
        .unwrap();
    let good = encode_row(&[("id".into(), Value::Text("x".into()))]);
    for (k, v) in [
        ("row/subsystems/1", vec![1u8, 2, 3]),
        ("row/nosuch/1", good.clone()),
        ("row/subsystems/x", good.clone()),
        ("row/meta/1", good.clone()),
        // Decodes, but lacks the table's columns.
        ("row/subsystems/1", good.clone()),
    ] {
        let e = s.replace_replicated(&[(k.to_string(), v)], 9).unwrap_err();
        assert!(matches!(e, StoreError::BadRow(_)), "{k}: {e:?}");
        assert_eq!(s.load().unwrap().subsystems[0].friendly_name, "kept");
        assert_eq!(s.cluster_version().unwrap(), 0);
    }
    assert!(s
        .load()
        .unwrap()
        .meta
        .iter()
        .all(|(k, _)| k != CLUSTER_VERSION_KEY));
}
