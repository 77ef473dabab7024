//! The commit step (`commit.rs`): a store write that fails leaves the state, the events, the
//! published views and the operation slots exactly as they were, and a data-path effect made
//! before the commit (a LUN's flush to OFFLINE) is undone. The store fails for real: another
//! connection holds SQLite's write lock past the store's busy timeout (as in `aptpl`).

use vds_model::{EventKind, LunStatus, ObjectKind};
use vds_scsi::LuState;

use super::{drain, Fixture};
use crate::commit::Change;
use crate::Command;

/// Holds the store's write lock until dropped (ROLLBACK).
struct StoreLock(rusqlite::Connection);

impl StoreLock {
    fn take(f: &Fixture) -> StoreLock {
        let db = rusqlite::Connection::open(f.dir.path().join("data").join("vds.sqlite")).unwrap();
        db.execute_batch("BEGIN IMMEDIATE").unwrap();
        StoreLock(db)
    }
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        let _ = self.0.execute_batch("ROLLBACK");
    }
}

/// Commits a rename of target `id` to `name`, holding the target's slot.
fn rename(f: &Fixture, id: uuid::Uuid, name: &str) -> Result<(), crate::VdsError> {
    let inner = &f.p.inner;
    let mut g = inner.state.lock();
    let st = &mut *g;
    let slots = inner.claim(st, &[id]);
    assert!(st.busy.contains(&id));
    let mut t = st.targets[&id].t.clone();
    t.friendly_name = name.to_string();
    let change = Change::new()
        .store(|tx| tx.put_target(&t))
        .apply(|st| st.targets.get_mut(&id).unwrap().t.friendly_name = name.to_string())
        .publish()
        .event(ObjectKind::Target, EventKind::Modify, id);
    inner.commit(st, change, Some(slots))
}

#[test]
fn a_store_failure_in_commit_leaves_state_events_views_and_slots_as_before() {
    let f = Fixture::new(41060, false);
    let id = f.default_target().id;
    let mut rx = f.p.subscribe();
    let views = f.plane.views.lock().len();

    let lock = StoreLock::take(&f);
    let e = rename(&f, id, "refused").unwrap_err();
    assert!(e.message.contains("store"), "not a store failure: {e}");
    drop(lock);
    {
        let st = f.p.inner.state.lock();
        assert_eq!(st.targets[&id].t.friendly_name, "default", "state applied");
        assert!(!st.busy.contains(&id), "slot still held");
    }
    assert_eq!(drain(&mut rx), vec![], "an event for a change not stored");
    assert_eq!(f.plane.views.lock().len(), views, "a view published");

    // The same change with a working store does each of those things (so the checks above
    // can see them).
    rename(&f, id, "stored").unwrap();
    assert_eq!(
        f.p.inner.state.lock().targets[&id].t.friendly_name,
        "stored"
    );
    assert!(!f.p.inner.state.lock().busy.contains(&id));
    assert_eq!(
        drain(&mut rx),
        vec![(ObjectKind::Target, EventKind::Modify, id)]
    );
    assert_eq!(f.plane.views.lock().len(), views + 1);
}

/// SetStatus OFFLINE quiesces and flushes the LU before the commit; when the store then
/// refuses, the LU is brought back to what the store still says (ONLINE), with no event,
/// and the LUN's slot is free again.
#[test]
fn lun_set_status_store_failure_undoes_the_data_path_transition() {
    let f = Fixture::new(41061, false);
    let id = f.luns()[0].id;
    let lu = f.p.logical_unit(id).unwrap();
    assert_eq!(lu.state(), LuState::Online);
    let mut rx = f.p.subscribe();

    let lock = StoreLock::take(&f);
    let offline = Command::SetLunStatus {
        id,
        status: 4, // OFFLINE
    };
    f.err(offline.clone());
    drop(lock);
    assert_eq!(
        lu.state(),
        LuState::Online,
        "the flush transition was not undone"
    );
    assert_eq!(f.lun(id).status, LunStatus::Online);
    assert_eq!(drain(&mut rx), vec![]);

    // Not BUSY: the slot was released; with the store back the change goes through.
    f.ok(offline);
    assert_eq!(lu.state(), LuState::Offline);
    assert_eq!(f.lun(id).status, LunStatus::Offline);
    assert_eq!(
        drain(&mut rx),
        vec![(ObjectKind::Lun, EventKind::Modify, id)]
    );
}
