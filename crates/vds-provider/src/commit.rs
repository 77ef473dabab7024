//! The one way an operation changes the array. A mutating operation describes what it does
//! as a [`Change`] and hands it to [`Inner::commit`], which does it in the one order that keeps
//! the store, the cache, the data path and the event stream agreeing:
//!
//! 1. the store write (the change is durable before anybody hears of it);
//! 2. the in-memory state update;
//! 3. publish, when the change is visible to the data path, then the data-path notifications
//!    that must follow the new view (REPORTED LUNS DATA HAS CHANGED);
//! 4. the events (one per changed object);
//! 5. the release of the operation's slots.
//!
//! When the store refuses, nothing of 2-4 happens and the slots are released: the operation
//! left no trace. An operation whose data-path effect must come *before* the commit (a LUN
//! going OFFLINE is flushed first) uses [`Inner::commit_prepared`], which pairs that effect
//! with the undo the store failure calls for, so that neither can be forgotten.

use parking_lot::MutexGuard;
use uuid::Uuid;
use vds_model::{EventKind, ObjectKind};
use vds_store::{LunRecord, StoreError, Tx};

use crate::engine::{store_err, Inner, Slots};
use crate::state::State;
use crate::VdsError;

type StoreFn<'a> = Box<dyn FnOnce(&mut Tx<'_>) -> Result<(), StoreError> + 'a>;
type ApplyFn<'a> = Box<dyn FnOnce(&mut State) + 'a>;
type NotifyFn<'a> = Box<dyn FnOnce(&State) + 'a>;

/// What one mutating operation changes, collected before anything is done (see the module
/// header for the order [`Inner::commit`] does it in).
#[must_use = "a change does nothing until it is committed"]
#[derive(Default)]
pub(crate) struct Change<'a> {
    store: Option<StoreFn<'a>>,
    apply: Vec<ApplyFn<'a>>,
    publish: bool,
    notify: Option<NotifyFn<'a>>,
    events: Vec<(ObjectKind, EventKind, Uuid)>,
}

impl<'a> Change<'a> {
    /// A change that writes nothing yet.
    pub fn new() -> Change<'a> {
        Change::default()
    }

    /// The store write, in one transaction; a second call adds its writes after the first's,
    /// in the same transaction.
    pub fn store(mut self, write: impl FnOnce(&mut Tx<'_>) -> Result<(), StoreError> + 'a) -> Self {
        self.store = Some(match self.store.take() {
            None => Box::new(write),
            Some(first) => Box::new(move |tx: &mut Tx<'_>| {
                first(tx)?;
                write(tx)
            }),
        });
        self
    }

    /// An in-memory update, run once the store holds the change (in the order given).
    pub fn apply(mut self, f: impl FnOnce(&mut State) + 'a) -> Self {
        self.apply.push(Box::new(f));
        self
    }

    /// The data path serves the new state: publish a new view after the update.
    pub fn publish(mut self) -> Self {
        self.publish = true;
        self
    }

    /// Publishes (as [`Change::publish`]), then runs `f`: data-path notifications that must
    /// follow the new view.
    pub fn publish_then(mut self, f: impl FnOnce(&State) + 'a) -> Self {
        self.publish = true;
        self.notify = Some(Box::new(f));
        self
    }

    /// A LUN's new record: stored, installed in the cache as it is, and announced as one
    /// MODIFY (the common shape of a change to one LUN's row).
    pub fn lun_record(self, rec: LunRecord) -> Self {
        let id = rec.lun.id;
        let row = rec.clone();
        self.store(move |tx| tx.put_lun(&row))
            .apply(move |st| {
                if let Some(e) = st.luns.get_mut(&id) {
                    e.rec = rec;
                }
            })
            .event(ObjectKind::Lun, EventKind::Modify, id)
    }

    /// One event, sent after the update (events go in the order given).
    pub fn event(mut self, kind: ObjectKind, event: EventKind, id: Uuid) -> Self {
        self.events.push((kind, event, id));
        self
    }
}

impl Inner {
    /// Commits `change` (see the module header), then releases `slots`. On a store error
    /// nothing is applied, published or announced, and the slots are released all the same.
    pub fn commit(
        &self,
        st: &mut State,
        change: Change<'_>,
        slots: Option<Slots>,
    ) -> Result<(), VdsError> {
        self.commit_or_undo(st, change, slots, |_| Change::new())
    }

    /// Runs `prepare`, a data-path effect that must precede the commit, without the state lock
    /// (it may wait on I/O; `slots` keep every other operation off the objects meanwhile),
    /// then commits the change `build` makes of its result. If `build` refuses (the effect
    /// failed, the job was canceled, the state moved while the lock was let go) or the store
    /// does, the in-memory change `undo` makes is committed instead: it reverses the effect,
    /// under the lock, before the slots are released, so that the data path never keeps
    /// serving what the store does not hold. Returns the state lock again, so the caller
    /// answers from the state it committed.
    pub fn commit_prepared<'s, 'c, T>(
        &'s self,
        guard: MutexGuard<'s, State>,
        slots: Slots,
        prepare: impl FnOnce() -> T,
        undo: impl FnOnce(&mut State, &T) -> Change<'c>,
        build: impl FnOnce(&mut State, &T) -> Result<Change<'c>, VdsError>,
    ) -> (MutexGuard<'s, State>, T, Result<(), VdsError>) {
        drop(guard);
        let prepared = prepare();
        let mut g = self.state.lock();
        let st = &mut *g;
        let r = match build(st, &prepared) {
            Ok(change) => self.commit_or_undo(st, change, Some(slots), |st| undo(st, &prepared)),
            Err(e) => {
                let back = undo(st, &prepared);
                self.stage(st, back);
                Self::release(st, Some(slots));
                Err(e)
            }
        };
        (g, prepared, r)
    }

    fn commit_or_undo<'c>(
        &self,
        st: &mut State,
        change: Change<'_>,
        slots: Option<Slots>,
        undo: impl FnOnce(&mut State) -> Change<'c>,
    ) -> Result<(), VdsError> {
        if let Some(write) = change.store {
            if let Err(e) = st.store.write(write) {
                let back = undo(st);
                self.stage(st, back);
                Self::release(st, slots);
                return Err(store_err(e));
            }
        }
        self.finish(
            st,
            change.apply,
            change.publish,
            change.notify,
            change.events,
        );
        Self::release(st, slots);
        Ok(())
    }

    /// Steps 2-4 of a change the store holds (or that is in memory only).
    fn finish(
        &self,
        st: &mut State,
        apply: Vec<ApplyFn<'_>>,
        publish: bool,
        notify: Option<NotifyFn<'_>>,
        events: Vec<(ObjectKind, EventKind, Uuid)>,
    ) {
        for f in apply {
            f(st);
        }
        if publish {
            self.publish(st);
        }
        if let Some(f) = notify {
            f(st);
        }
        for (kind, event, id) in events {
            self.emit(kind, event, id);
        }
    }

    /// Applies an in-memory change that the store does not hold (a transition shown while an
    /// operation runs, such as a portal NOT_READY while it binds): steps 2-4, nothing else.
    pub fn stage(&self, st: &mut State, change: Change<'_>) {
        debug_assert!(change.store.is_none(), "a staged change writes nothing");
        self.finish(
            st,
            change.apply,
            change.publish,
            change.notify,
            change.events,
        );
    }

    /// Ends an operation that changes nothing after all (refused, canceled, or nothing to do):
    /// releases its slots and hands `e` back.
    pub fn abandon(st: &mut State, slots: Slots, e: VdsError) -> VdsError {
        Self::release(st, Some(slots));
        e
    }

    fn release(st: &mut State, slots: Option<Slots>) {
        if let Some(s) = slots {
            s.release(st);
        }
    }
}
