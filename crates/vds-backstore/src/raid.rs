//! Composite stores: a LUN made of extents on drives (BEHAVIOUR.md §15).
//!
//! A [`RaidStore`] is one or more *plexes*, each a full copy of the LUN's blocks (one plex:
//! simple, span or stripe; several: mirror or RAID-10). A plex is one or more *columns*; one
//! column is a concatenation of [`Segment`]s (simple, span), several are striped in units of
//! `stripe_size` (RAID-0): logical stripe unit `u` lives in column `u % columns` at column
//! offset `(u / columns) * stripe_size`. A segment is a byte range of a drive's store (an
//! extent file on a `dir` drive, an LBA range of a `block` drive).
//!
//! Mirrors: a write goes to every plex that is not failed and succeeds when every `Current`
//! plex holds it; a plex whose I/O fails becomes [`PlexState::Failed`] and the
//! [`PlexObserver`] hears it once, and the command still succeeds while one current plex
//! worked. Reads are served from a current plex (chosen by offset, so no state is shared
//! between commands) and retried on the next one after an error. A [`PlexState::Stale`] plex
//! (being regenerated) receives every write but serves no read until [`RaidStore::resync`]
//! has copied it and made it current.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use parking_lot::{Condvar, Mutex};

use crate::intent::WriteIntent;
use crate::{check_range, BackingStore};

/// A byte range of a drive's store that holds part of a column.
#[derive(Clone)]
pub struct Segment {
    /// The drive's store (or the extent's file).
    pub store: Arc<dyn BackingStore>,
    /// Where the range starts in `store`.
    pub offset: u64,
    /// Its length in bytes.
    pub len: u64,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("store", &self.store.kind())
            .field("offset", &self.offset)
            .field("len", &self.len)
            .finish()
    }
}

/// One plex: its columns (each a concatenation of segments) and the stripe size when there
/// is more than one column.
#[derive(Debug, Clone)]
pub struct PlexLayout {
    /// The columns, in stripe order.
    pub columns: Vec<Vec<Segment>>,
    /// Bytes per stripe unit (ignored with one column).
    pub stripe_size: u64,
}

impl PlexLayout {
    /// Usable bytes: the concatenation's length with one column; with several, whole stripe
    /// units of the shortest column times the number of columns.
    pub fn size(&self) -> u64 {
        let lens: Vec<u64> = self
            .columns
            .iter()
            .map(|c| c.iter().map(|s| s.len).sum())
            .collect();
        match lens.len() {
            0 => 0,
            1 => lens[0],
            n => {
                let s = self.stripe_size.max(1);
                let min = lens.iter().copied().min().unwrap_or(0);
                (min / s) * s * n as u64
            }
        }
    }

    /// Where logical bytes `[offset, offset + len)` of this plex live: calls `f(segment,
    /// offset in the segment's store, length, offset in the caller's buffer)` for each piece,
    /// in logical order. The caller has checked the range.
    pub fn map(
        &self,
        offset: u64,
        len: u64,
        mut f: impl FnMut(&Segment, u64, u64, usize) -> io::Result<()>,
    ) -> io::Result<()> {
        let n = self.columns.len() as u64;
        let mut done = 0u64;
        while done < len {
            let o = offset + done;
            let (col, col_off, piece) = if n <= 1 {
                (0usize, o, len - done)
            } else {
                let s = self.stripe_size.max(1);
                let unit = o / s;
                let within = o % s;
                (
                    (unit % n) as usize,
                    (unit / n) * s + within,
                    (s - within).min(len - done),
                )
            };
            map_column(&self.columns[col], col_off, piece, |seg, at, l, b| {
                f(seg, at, l, done as usize + b)
            })?;
            done += piece;
        }
        Ok(())
    }
}

/// Maps `[offset, offset + len)` of one column (a concatenation) onto its segments.
fn map_column(
    segs: &[Segment],
    offset: u64,
    len: u64,
    mut f: impl FnMut(&Segment, u64, u64, usize) -> io::Result<()>,
) -> io::Result<()> {
    let mut start = 0u64;
    let mut done = 0u64;
    for seg in segs {
        if done == len {
            break;
        }
        let end = start + seg.len;
        let o = offset + done;
        if o < end {
            let within = o - start;
            let l = (seg.len - within).min(len - done);
            f(seg, seg.offset + within, l, done as usize)?;
            done += l;
        }
        start = end;
    }
    if done < len {
        return Err(crate::out_of_range(offset, len, start));
    }
    Ok(())
}

/// The state of one plex of a [`RaidStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PlexState {
    /// Holds every acknowledged write; serves reads.
    Current = 0,
    /// Receives writes but misses older data: regenerating, or waiting to be.
    Stale = 1,
    /// Failed an I/O (or its drive is gone): receives nothing.
    Failed = 2,
}

impl PlexState {
    fn from_u8(v: u8) -> PlexState {
        match v {
            0 => PlexState::Current,
            1 => PlexState::Stale,
            _ => PlexState::Failed,
        }
    }
}

/// Told when a plex fails (once per failure), on the thread that saw the error.
pub trait PlexObserver: Send + Sync {
    /// Plex `plex` (index in the store) failed with `error`.
    fn plex_failed(&self, plex: usize, error: &io::Error);
}

/// An observer that only records nothing (stores opened for tests or for a copy).
pub struct NoObserver;

impl PlexObserver for NoObserver {
    fn plex_failed(&self, _plex: usize, _error: &io::Error) {}
}

/// Most plexes a store has (AddPlex stops there).
pub const MAX_PLEXES: usize = 4;

/// The plexes and their states: a state belongs to its plex (it moves with it when another
/// plex is removed), so an I/O that loaded a layout fails the plex it used and no other.
struct Layout {
    plexes: Vec<PlexLayout>,
    states: Vec<Arc<AtomicU8>>,
    size: u64,
}

impl Layout {
    fn state(&self, plex: usize) -> PlexState {
        self.states.get(plex).map_or(PlexState::Failed, |s| {
            PlexState::from_u8(s.load(Ordering::Acquire))
        })
    }
}

/// One or more plexes serving one LUN (see the module documentation).
pub struct RaidStore {
    layout: ArcSwap<Layout>,
    /// Serialises the layout changes (relayout, add and remove a plex).
    reshape: Mutex<()>,
    observer: Arc<dyn PlexObserver>,
    gate: Gate,
    intent: ArcSwapOption<WriteIntent>,
    /// A crash may have left the plexes unequal and [`RaidStore::resync_ranges`] has not
    /// finished: every read comes from the first current plex (the one copied from), so a
    /// region not repaired yet never reads differently twice, and a flush keeps the
    /// write-intent bitmap's bits (they are the record of what is still to repair).
    recovering: AtomicBool,
    /// One copy at a time (a rebuild and a crash resync share the gate).
    copier: Mutex<()>,
}

/// What [`RaidStore::resync_ranges`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RangeResync {
    /// Bytes of the ranges compared (each once, whatever the number of plexes).
    pub examined: u64,
    /// Bytes written onto other plexes because they differed (summed over the plexes).
    pub repaired: u64,
    /// The copy was stopped by its progress callback before the end.
    pub stopped: bool,
}

/// What keeps a resync's copy and the writes apart (see [`RaidStore::resync`]). A write and
/// the copy of a chunk must not overlap in time: the copy reads the current plex and writes
/// the stale one, so a write landing in between would be undone on the stale plex.
///
/// Without a resync the only cost of a write is an increment and a decrement of `untracked`
/// (every store pays it, one plex or more: a plex can be added under a running write). While a resync runs (`active`), writes register their
/// range in `ranges` and wait for a chunk being copied over it; the copy waits for the
/// registered writes over its chunk. `active` is set, then `untracked` drained, so a write that
/// missed `active` has finished before the first chunk is copied (both sides `SeqCst`).
#[derive(Default)]
struct Gate {
    active: AtomicBool,
    untracked: AtomicUsize,
    ranges: Mutex<Ranges>,
    changed: Condvar,
}

#[derive(Default)]
struct Ranges {
    /// The chunk being copied.
    copying: Option<(u64, u64)>,
    /// Writes in flight while a resync runs: (start, end), one entry per write.
    writing: Vec<(u64, u64)>,
}

fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// A registered write; unregisters on drop.
struct Tracked<'a> {
    gate: &'a Gate,
    range: (u64, u64),
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        let mut r = self.gate.ranges.lock();
        if let Some(i) = r.writing.iter().position(|w| *w == self.range) {
            r.writing.swap_remove(i);
        }
        drop(r);
        self.gate.changed.notify_all();
    }
}

/// A write's pass through the gate; dropping it ends the write.
enum Pass<'a> {
    /// No resync: counted in `untracked`.
    Untracked(&'a Gate),
    /// A resync runs: registered; unregisters when dropped.
    Tracked { _held: Tracked<'a> },
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        if let Pass::Untracked(g) = self {
            g.untracked.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Gate {
    /// Enter for a write of `range`: at once without a resync; with one, after any chunk
    /// being copied over `range` (or `WouldBlock` for a `try_` write).
    fn enter(&self, range: (u64, u64), try_only: bool) -> io::Result<Pass<'_>> {
        self.untracked.fetch_add(1, Ordering::SeqCst);
        if !self.active.load(Ordering::SeqCst) {
            return Ok(Pass::Untracked(self));
        }
        self.untracked.fetch_sub(1, Ordering::SeqCst);
        let mut r = self.ranges.lock();
        while r.copying.is_some_and(|c| overlaps(c, range)) {
            if try_only {
                return Err(crate::would_block());
            }
            self.changed.wait(&mut r);
        }
        r.writing.push(range);
        Ok(Pass::Tracked {
            _held: Tracked { gate: self, range },
        })
    }

    /// A resync starts: from now on writes register; those that did not are waited for.
    fn begin(&self) {
        self.active.store(true, Ordering::SeqCst);
        while self.untracked.load(Ordering::SeqCst) != 0 {
            std::thread::sleep(Duration::from_micros(100));
        }
    }

    fn end(&self) {
        self.active.store(false, Ordering::SeqCst);
    }

    /// Hold `chunk` against writes: waits for the registered writes over it.
    fn lock_chunk(&self, chunk: (u64, u64)) {
        let mut r = self.ranges.lock();
        r.copying = Some(chunk);
        while r.writing.iter().any(|w| overlaps(*w, chunk)) {
            self.changed.wait(&mut r);
        }
    }

    fn unlock_chunk(&self) {
        self.ranges.lock().copying = None;
        self.changed.notify_all();
    }
}

/// Ends a resync's hold on the gate however the resync ends.
struct Resyncing<'a>(&'a Gate);

impl Drop for Resyncing<'_> {
    fn drop(&mut self) {
        self.0.unlock_chunk();
        self.0.end();
    }
}

impl RaidStore {
    /// A store over `plexes` in the given states. Every plex must have the same size, and at
    /// least one must be current.
    pub fn new(
        plexes: Vec<PlexLayout>,
        states: Vec<PlexState>,
        observer: Arc<dyn PlexObserver>,
    ) -> io::Result<RaidStore> {
        if states.len() != plexes.len() {
            return Err(invalid("one state per plex"));
        }
        if !states.contains(&PlexState::Current) {
            return Err(invalid("no current plex"));
        }
        if plexes.len() > MAX_PLEXES {
            return Err(invalid("more than 4 plexes"));
        }
        let states = states
            .into_iter()
            .map(|s| Arc::new(AtomicU8::new(s as u8)))
            .collect();
        let layout = Self::check(plexes, states)?;
        Ok(RaidStore {
            layout: ArcSwap::from_pointee(layout),
            reshape: Mutex::new(()),
            observer,
            gate: Gate::default(),
            intent: ArcSwapOption::empty(),
            recovering: AtomicBool::new(false),
            copier: Mutex::new(()),
        })
    }

    fn check(plexes: Vec<PlexLayout>, states: Vec<Arc<AtomicU8>>) -> io::Result<Layout> {
        let Some(first) = plexes.first() else {
            return Err(invalid("no plex"));
        };
        let size = first.size();
        if plexes.iter().any(|p| p.size() != size) {
            return Err(invalid("plexes of different sizes"));
        }
        Ok(Layout {
            plexes,
            states,
            size,
        })
    }

    /// Replace every plex's layout (extend, shrink, a migrated extent): the same number of
    /// plexes, each of the same new size, holding the same data where the old ones did.
    pub fn relayout(&self, plexes: Vec<PlexLayout>) -> io::Result<()> {
        let _one = self.reshape.lock();
        let cur = self.layout.load();
        if plexes.len() != cur.states.len() {
            return Err(invalid("relayout changes the number of plexes"));
        }
        let layout = Self::check(plexes, cur.states.clone())?;
        if let Some(wi) = self.intent.load().as_deref() {
            if wi.size() != layout.size {
                return Err(invalid(
                    "relayout changes the size under a write-intent bitmap (detach it first)",
                ));
            }
        }
        self.layout.store(Arc::new(layout));
        Ok(())
    }

    /// Add a plex (AddPlex): of the store's size exactly, stale (it receives every write
    /// from now on and serves no read until [`RaidStore::resync`] has copied it). Returns its
    /// index, the last. A write that loaded the old layout entered the gate before, so a
    /// resync started afterwards waits for it.
    pub fn add_plex(&self, plex: PlexLayout) -> io::Result<usize> {
        let _one = self.reshape.lock();
        let cur = self.layout.load();
        if cur.plexes.len() >= MAX_PLEXES {
            return Err(invalid("a store has at most 4 plexes"));
        }
        let mut plexes = cur.plexes.clone();
        plexes.push(plex);
        let mut states = cur.states.clone();
        states.push(Arc::new(AtomicU8::new(PlexState::Stale as u8)));
        let layout = Self::check(plexes, states)?;
        let index = layout.plexes.len() - 1;
        self.layout.store(Arc::new(layout));
        Ok(index)
    }

    /// Whether a resync or a crash resync runs (a plex is not removed meanwhile).
    pub fn copying(&self) -> bool {
        self.copier.is_locked()
    }

    /// Remove plex `plex` (RemovePlex): never the last plex nor the last current one, never
    /// while a resync runs. Returns once no write that could still reach the removed plex's
    /// extents is in flight, so the caller may free them.
    pub fn remove_plex(&self, plex: usize) -> io::Result<()> {
        let _one = self.reshape.lock();
        let Some(_copy) = self.copier.try_lock() else {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                "a resync runs on the store",
            ));
        };
        let cur = self.layout.load();
        if plex >= cur.plexes.len() {
            return Err(invalid("no such plex"));
        }
        if cur.plexes.len() == 1 {
            return Err(invalid("the last plex is not removed"));
        }
        let others_current =
            (0..cur.plexes.len()).any(|i| i != plex && cur.state(i) == PlexState::Current);
        if !others_current {
            return Err(invalid("the last current plex is not removed"));
        }
        let mut plexes = cur.plexes.clone();
        let mut states = cur.states.clone();
        plexes.remove(plex);
        states.remove(plex);
        self.layout.store(Arc::new(Self::check(plexes, states)?));
        // Writes that loaded the old layout: drained (untracked) or waited for (tracked).
        self.gate.begin();
        let hold = Resyncing(&self.gate);
        self.gate.lock_chunk((0, u64::MAX));
        drop(hold);
        Ok(())
    }

    /// How many plexes.
    pub fn plex_count(&self) -> usize {
        self.layout.load().states.len()
    }

    /// The state of plex `plex` (`Failed` for an index it does not have).
    pub fn plex_state(&self, plex: usize) -> PlexState {
        self.layout.load().state(plex)
    }

    /// Set the state of plex `plex` (the provider's decision: a replaced drive, a finished
    /// resync). Does not notify the observer.
    pub fn set_plex_state(&self, plex: usize, state: PlexState) {
        if let Some(s) = self.layout.load().states.get(plex) {
            s.store(state as u8, Ordering::Release);
        }
    }

    /// Mark plex `plex` of `layout` failed after `e`; the observer hears it (with the plex's
    /// index in the store's layout now) if this call made the change.
    fn fail(&self, layout: &Layout, plex: usize, e: &io::Error) {
        let state = &layout.states[plex];
        let was = state.swap(PlexState::Failed as u8, Ordering::AcqRel);
        if was != PlexState::Failed as u8 {
            let now = self.layout.load();
            let Some(index) = now.states.iter().position(|s| Arc::ptr_eq(s, state)) else {
                return; // removed meanwhile
            };
            tracing::warn!(plex = index, error = %e, "plex failed");
            self.observer.plex_failed(index, e);
        }
    }

    /// The current plexes of `layout`, starting with the one `offset` prefers.
    fn readers<'l>(&self, layout: &'l Layout, offset: u64) -> impl Iterator<Item = usize> + 'l {
        let n = layout.states.len();
        let first = if self.recovering.load(Ordering::Acquire) {
            0
        } else {
            ((offset >> 20) as usize) % n.max(1)
        };
        (0..n)
            .map(move |i| (first + i) % n)
            .filter(move |&i| layout.state(i) == PlexState::Current)
    }

    fn read_plex(p: &PlexLayout, buf: &mut [u8], offset: u64, try_only: bool) -> io::Result<()> {
        p.map(offset, buf.len() as u64, |seg, at, l, b| {
            let dst = &mut buf[b..b + l as usize];
            if try_only {
                seg.store.try_read_at(dst, at)
            } else {
                seg.store.read_at(dst, at)
            }
        })
    }

    fn read(&self, buf: &mut [u8], offset: u64, try_only: bool) -> io::Result<()> {
        let layout = self.layout.load();
        check_range(offset, buf.len() as u64, layout.size)?;
        let mut last = None;
        for i in self.readers(&layout, offset) {
            match Self::read_plex(&layout.plexes[i], buf, offset, try_only) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(e),
                Err(e) => {
                    self.fail(&layout, i, &e);
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(no_plex))
    }

    /// Runs `op` on every plex that is not failed; succeeds when every current plex did (a
    /// failing plex is failed, not the command) and at least one current plex remains.
    fn each_plex(&self, op: impl FnMut(&PlexLayout) -> io::Result<()>) -> io::Result<()> {
        self.run_plexes(None, op)
    }

    /// Runs `op` on every plex that is not failed (or only on plex `only`). A failing plex is
    /// failed, not the command; the call succeeds when a current plex (or `only`, whatever its
    /// state) succeeded. `WouldBlock` and `InvalidInput` (the caller's range) end it at once.
    fn run_plexes(
        &self,
        only: Option<usize>,
        mut op: impl FnMut(&PlexLayout) -> io::Result<()>,
    ) -> io::Result<()> {
        let layout = self.layout.load();
        let mut ok = false;
        let mut last = None;
        for (i, p) in layout.plexes.iter().enumerate() {
            let state = layout.state(i);
            if state == PlexState::Failed || only.is_some_and(|o| o != i) {
                continue;
            }
            match op(p) {
                Ok(()) => ok |= state == PlexState::Current || only.is_some(),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(e),
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => return Err(e),
                Err(e) => {
                    self.fail(&layout, i, &e);
                    last = Some(e);
                }
            }
        }
        if ok {
            Ok(())
        } else {
            Err(last.unwrap_or_else(no_plex))
        }
    }

    fn write(&self, buf: &[u8], offset: u64, fua: bool, try_only: bool) -> io::Result<()> {
        let len = buf.len() as u64;
        check_range(offset, len, self.layout.load().size)?;
        let _pass = self.gate.enter((offset, offset + len), try_only)?;
        let intent = self.intent.load();
        let _intent = match intent.as_deref() {
            Some(wi) => Some(wi.begin(offset, len, try_only)?),
            None => None,
        };
        self.each_plex(|p| {
            p.map(offset, len, |seg, at, l, b| {
                let src = &buf[b..b + l as usize];
                if try_only {
                    seg.store.try_write_at(src, at, fua)
                } else {
                    seg.store.write_at(src, at, fua)
                }
            })
        })
    }

    /// Keep (or stop keeping) a write-intent bitmap: from now on every write marks its
    /// regions in it first, and a flush of every plex clears them (fast crash recovery).
    pub fn set_write_intent(&self, intent: Option<Arc<WriteIntent>>) {
        self.intent.store(intent);
    }

    /// Make every current plex equal to the first current one over `ranges` (byte ranges: a
    /// write-intent bitmap's dirty regions after a crash, or the whole LUN): `chunk` bytes at a
    /// time, behind the same gate as [`RaidStore::resync`] (writes go on meanwhile), each chunk
    /// read from the source and from each other current plex and written there only where it
    /// differs; then a flush. Stale plexes are left to their regeneration, failed ones alone.
    /// While it runs every read is served by the source plex. `progress(done, total)` after
    /// each chunk; answering `false` stops the copy (`stopped`).
    pub fn resync_ranges(
        &self,
        ranges: &[(u64, u64)],
        chunk: u64,
        progress: &mut dyn FnMut(u64, u64) -> bool,
    ) -> io::Result<RangeResync> {
        let _one = self.copier.lock();
        let (size, src) = {
            let l = self.layout.load();
            let src = (0..l.states.len()).find(|&i| l.state(i) == PlexState::Current);
            (l.size, src.ok_or_else(no_plex)?)
        };
        let total: u64 = ranges
            .iter()
            .map(|&(s, e)| e.min(size).saturating_sub(s))
            .sum();
        let chunk = chunk.max(4096);
        let mut buf = vec![0u8; chunk as usize];
        let mut other = vec![0u8; chunk as usize];
        let mut out = RangeResync::default();
        self.recovering.store(true, Ordering::Release);
        self.gate.begin();
        let hold = Resyncing(&self.gate);
        'all: for &(start, end) in ranges {
            let end = end.min(size);
            let mut at = start;
            while at < end {
                let l = chunk.min(end - at) as usize;
                // No write over this chunk lands between the reads and the repair.
                self.gate.lock_chunk((at, at + l as u64));
                self.read_plex_at(src, &mut buf[..l], at)?;
                let layout = self.layout.load();
                for (i, p) in layout.plexes.iter().enumerate() {
                    if i == src || layout.state(i) != PlexState::Current {
                        continue;
                    }
                    let equal = Self::read_plex(p, &mut other[..l], at, false)
                        .is_ok_and(|()| other[..l] == buf[..l]);
                    if equal {
                        continue;
                    }
                    match p.map(at, l as u64, |seg, o, pl, b| {
                        seg.store.write_at(&buf[b..b + pl as usize], o, false)
                    }) {
                        Ok(()) => out.repaired += l as u64,
                        Err(e) => self.fail(&layout, i, &e),
                    }
                }
                self.gate.unlock_chunk();
                at += l as u64;
                out.examined += l as u64;
                if !progress(out.examined, total) {
                    out.stopped = true;
                    break 'all;
                }
            }
        }
        drop(hold);
        self.each_plex_flush(None)?;
        if !out.stopped {
            // Equal everywhere the bitmap marked: it may be cleared by this flush on.
            self.recovering.store(false, Ordering::Release);
            BackingStore::flush(self)?;
        }
        Ok(out)
    }

    /// A crash may have left the plexes unequal: until [`RaidStore::resync_ranges`] finishes,
    /// reads come from the first current plex and flushes keep the write-intent bitmap.
    pub fn set_recovering(&self) {
        self.recovering.store(true, Ordering::Release);
    }

    /// Read plex `plex` alone (comparing plexes; a failed plex reads too, if its drive
    /// answers). Does not fail the plex on an error.
    pub fn read_plex_at(&self, plex: usize, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let layout = self.layout.load();
        check_range(offset, buf.len() as u64, layout.size)?;
        let p = layout
            .plexes
            .get(plex)
            .ok_or_else(|| invalid("no such plex"))?;
        Self::read_plex(p, buf, offset, false)
    }

    /// Copy every byte of a current plex onto `plex` (which must be stale), `chunk` bytes at a
    /// time, calling `progress(done, total)` after each chunk; `progress` answering `false`
    /// stops the copy (the plex stays stale). On success the plex is current.
    pub fn resync(
        &self,
        plex: usize,
        chunk: u64,
        progress: &mut dyn FnMut(u64, u64) -> bool,
    ) -> io::Result<()> {
        let total = self.layout.load().size;
        self.resync_onto(plex, &[(0, total)], chunk, progress)
    }

    /// [`RaidStore::resync`] of the byte ranges `ranges` only: the stale plex `plex` holds the
    /// current data everywhere else already (ReplaceDrive: a copy of a plex that shares every
    /// extent but the one moved). `progress(done, total)` counts the ranges' bytes.
    pub fn resync_onto(
        &self,
        plex: usize,
        ranges: &[(u64, u64)],
        chunk: u64,
        progress: &mut dyn FnMut(u64, u64) -> bool,
    ) -> io::Result<()> {
        if self.plex_state(plex) != PlexState::Stale {
            return Err(invalid("only a stale plex is resynchronised"));
        }
        let _one = self.copier.lock();
        let size = self.layout.load().size;
        let total: u64 = ranges
            .iter()
            .map(|&(s, e)| e.min(size).saturating_sub(s))
            .sum();
        let chunk = chunk.max(4096);
        let mut buf = vec![0u8; chunk as usize];
        let mut done = 0u64;
        self.gate.begin();
        let hold = Resyncing(&self.gate);
        for &(start, end) in ranges {
            let end = end.min(size);
            let mut at = start;
            while at < end {
                let l = chunk.min(end - at) as usize;
                // No write over this chunk lands between the read and the copy's write.
                self.gate.lock_chunk((at, at + l as u64));
                self.read(&mut buf[..l], at, false)?;
                let layout = self.layout.load();
                let target = &layout.plexes[plex];
                if let Err(e) = target.map(at, l as u64, |seg, o, pl, b| {
                    seg.store.write_at(&buf[b..b + pl as usize], o, false)
                }) {
                    self.fail(&layout, plex, &e);
                    return Err(e);
                }
                self.gate.unlock_chunk();
                at += l as u64;
                done += l as u64;
                if !progress(done, total) {
                    return Ok(());
                }
            }
        }
        drop(hold);
        self.each_plex_flush(Some(plex))?;
        self.set_plex_state(plex, PlexState::Current);
        Ok(())
    }

    /// Flush each distinct store once (every plex, or only `only`).
    fn each_plex_flush(&self, only: Option<usize>) -> io::Result<()> {
        self.run_plexes(only, |p| {
            let mut seen: Vec<*const ()> = Vec::new();
            p.columns.iter().flatten().try_for_each(|seg| {
                let key = Arc::as_ptr(&seg.store) as *const ();
                if seen.contains(&key) {
                    return Ok(());
                }
                seen.push(key);
                seg.store.flush()
            })
        })
    }
}

impl BackingStore for RaidStore {
    fn kind(&self) -> &'static str {
        "raid"
    }

    fn size(&self) -> u64 {
        self.layout.load().size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.read(buf, offset, false)
    }

    fn write_at(&self, buf: &[u8], offset: u64, fua: bool) -> io::Result<()> {
        self.write(buf, offset, fua, false)
    }

    fn try_read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.read(buf, offset, true)
    }

    fn try_write_at(&self, buf: &[u8], offset: u64, fua: bool) -> io::Result<()> {
        self.write(buf, offset, fua, true)
    }

    fn flush(&self) -> io::Result<()> {
        self.each_plex_flush(None)?;
        if let Some(wi) = self.intent.load().as_deref() {
            // Every plex holds every completed write: their regions are equal now, unless a
            // crash left them unequal and the repair has not finished.
            if !self.recovering.load(Ordering::Acquire) {
                wi.clear()?;
            }
        }
        Ok(())
    }

    fn unmap(&self, offset: u64, len: u64) -> io::Result<()> {
        check_range(offset, len, self.layout.load().size)?;
        let _pass = self.gate.enter((offset, offset + len), false)?;
        let intent = self.intent.load();
        let _intent = match intent.as_deref() {
            Some(wi) => Some(wi.begin(offset, len, false)?),
            None => None,
        };
        self.each_plex(|p| p.map(offset, len, |seg, at, l, _| seg.store.unmap(at, l)))
    }

    fn thin(&self) -> bool {
        let layout = self.layout.load();
        layout
            .plexes
            .iter()
            .flat_map(|p| p.columns.iter().flatten())
            .all(|s| s.store.thin())
    }
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.to_string())
}

fn no_plex() -> io::Error {
    io::Error::other("no current plex")
}

#[cfg(test)]
#[path = "raid/failure_tests.rs"]
mod failure_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    fn seg(store: &Arc<dyn BackingStore>, offset: u64, len: u64) -> Segment {
        Segment {
            store: store.clone(),
            offset,
            len,
        }
    }

    #[test]
    fn stripe_units_land_in_columns_in_turn() {
        let a: Arc<dyn BackingStore> = Arc::new(MemoryStore::new(1 << 20));
        let b: Arc<dyn BackingStore> = Arc::new(MemoryStore::new(1 << 20));
        let p = PlexLayout {
            columns: vec![vec![seg(&a, 4096, 65536)], vec![seg(&b, 0, 70000)]],
            stripe_size: 8192,
        };
        assert_eq!(p.size(), 2 * 65536);
        let s = RaidStore::new(vec![p], vec![PlexState::Current], Arc::new(NoObserver)).unwrap();
        let data: Vec<u8> = (0..4 * 8192u32).map(|i| (i / 8192) as u8 + 1).collect();
        s.write_at(&data, 0, false).unwrap();
        let mut x = vec![0u8; 8192];
        a.read_at(&mut x, 4096).unwrap();
        assert!(x.iter().all(|&v| v == 1));
        b.read_at(&mut x, 0).unwrap();
        assert!(x.iter().all(|&v| v == 2));
        a.read_at(&mut x, 4096 + 8192).unwrap();
        assert!(x.iter().all(|&v| v == 3));
        b.read_at(&mut x, 8192).unwrap();
        assert!(x.iter().all(|&v| v == 4));
        let mut back = vec![0u8; data.len()];
        s.read_at(&mut back, 0).unwrap();
        assert_eq!(back, data);
    }

    /// A memory store whose writes sleep 1 ms per 16 KiB: a large write (a resync's chunk)
    /// lands well after a small one started later, which is the window a resync must close.
    struct SizeDelayed(MemoryStore);

    impl BackingStore for SizeDelayed {
        fn kind(&self) -> &'static str {
            "memory"
        }
        fn size(&self) -> u64 {
            self.0.size()
        }
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
            self.0.read_at(buf, offset)
        }
        fn write_at(&self, buf: &[u8], offset: u64, fua: bool) -> io::Result<()> {
            std::thread::sleep(Duration::from_millis(buf.len() as u64 / 16384));
            self.0.write_at(buf, offset, fua)
        }
        fn try_read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
            self.0.try_read_at(buf, offset)
        }
        fn try_write_at(&self, _: &[u8], _: u64, _: bool) -> io::Result<()> {
            Err(crate::would_block())
        }
        fn flush(&self) -> io::Result<()> {
            self.0.flush()
        }
        fn unmap(&self, offset: u64, len: u64) -> io::Result<()> {
            self.0.unmap(offset, len)
        }
    }

    /// A mirror of two plexes of `size` bytes, the second stale; with `slow`, the second's
    /// writes take time in proportion to their size.
    fn mirror(size: u64, slow: bool) -> (RaidStore, [Arc<dyn BackingStore>; 2]) {
        let a: Arc<dyn BackingStore> = Arc::new(MemoryStore::new(size));
        let b: Arc<dyn BackingStore> = if slow {
            Arc::new(SizeDelayed(MemoryStore::new(size)))
        } else {
            Arc::new(MemoryStore::new(size))
        };
        let plex = |s: &Arc<dyn BackingStore>| PlexLayout {
            columns: vec![vec![seg(s, 0, size)]],
            stripe_size: 0,
        };
        let store = RaidStore::new(
            vec![plex(&a), plex(&b)],
            vec![PlexState::Current, PlexState::Stale],
            Arc::new(NoObserver),
        )
        .unwrap();
        (store, [a, b])
    }

    #[test]
    fn resync_under_concurrent_writes_leaves_the_plexes_equal() {
        const SIZE: u64 = 4 << 20;
        for round in 0..4u64 {
            let (store, [a, b]) = mirror(SIZE, true);
            let fill: Vec<u8> = (0..SIZE).map(|i| (i * 7 + round) as u8).collect();
            a.write_at(&fill, 0, false).unwrap();
            let store = Arc::new(store);
            let stop = Arc::new(AtomicBool::new(false));
            let writer = {
                let (store, stop) = (store.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ round;
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let off = (x % (SIZE / 4096)) * 4096;
                        let len = 4096 * (1 + (x >> 40) % 8).min((SIZE - off) / 4096);
                        let data = vec![(n % 251) as u8 + 1; len as usize];
                        store.write_at(&data, off, false).unwrap();
                        n += 1;
                    }
                    n
                })
            };
            store
                .resync(1, 64 << 10, &mut |_, _| {
                    std::thread::yield_now();
                    true
                })
                .unwrap();
            stop.store(true, Ordering::Relaxed);
            let writes = writer.join().unwrap();
            assert!(writes > 0);
            assert_eq!(store.plex_state(1), PlexState::Current);
            let (mut x, mut y) = (vec![0u8; SIZE as usize], vec![0u8; SIZE as usize]);
            a.read_at(&mut x, 0).unwrap();
            b.read_at(&mut y, 0).unwrap();
            let diff = x.iter().zip(&y).position(|(p, q)| p != q);
            assert_eq!(
                diff, None,
                "round {round}: plexes differ after {writes} writes"
            );
        }
    }

    #[test]
    fn a_plex_is_added_resynced_and_removed() {
        const SIZE: u64 = 1 << 20;
        let (store, [a, _b]) = mirror(SIZE, false);
        store.set_plex_state(1, PlexState::Current);
        store.write_at(&[5u8; 8192], 0, false).unwrap();
        let c: Arc<dyn BackingStore> = Arc::new(MemoryStore::new(SIZE + 4096));
        let short = PlexLayout {
            columns: vec![vec![seg(&c, 4096, SIZE - 4096)]],
            stripe_size: 0,
        };
        assert!(store.add_plex(short).is_err(), "a plex of another size");
        let plex = PlexLayout {
            columns: vec![vec![seg(&c, 4096, SIZE)]],
            stripe_size: 0,
        };
        assert_eq!(store.add_plex(plex).unwrap(), 2);
        assert_eq!(store.plex_state(2), PlexState::Stale);
        store.write_at(&[6u8; 4096], 65536, false).unwrap();
        let mut x = [0u8; 4096];
        c.read_at(&mut x, 4096 + 65536).unwrap();
        assert_eq!(x, [6u8; 4096], "the new plex takes writes at once");
        store.resync(2, 65536, &mut |_, _| true).unwrap();
        assert_eq!(store.plex_state(2), PlexState::Current);
        c.read_at(&mut x, 4096).unwrap();
        assert_eq!(x, [5u8; 4096], "and the older data after its resync");
        // Plex 0 goes; the others keep their states and data, and plex 0's store no writes.
        store.set_plex_state(1, PlexState::Stale);
        store.remove_plex(0).unwrap();
        assert_eq!(store.plex_count(), 2);
        assert_eq!(
            (store.plex_state(0), store.plex_state(1)),
            (PlexState::Stale, PlexState::Current),
            "states moved with their plexes"
        );
        store.write_at(&[7u8; 4096], 0, false).unwrap();
        a.read_at(&mut x, 0).unwrap();
        assert_eq!(x, [5u8; 4096], "the removed plex gets nothing");
        store.read_at(&mut x, 0).unwrap();
        assert_eq!(x, [7u8; 4096]);
        assert!(store.remove_plex(1).is_err(), "the last current plex stays");
        store.set_plex_state(0, PlexState::Current);
        store.remove_plex(1).unwrap();
        assert!(store.remove_plex(0).is_err(), "the last plex stays");
    }

    #[test]
    fn a_stale_plex_takes_writes_but_serves_no_read() {
        let (store, [a, b]) = mirror(1 << 20, false);
        a.write_at(&[7u8; 4096], 0, false).unwrap();
        store.write_at(&[9u8; 4096], 8192, false).unwrap();
        let mut x = [0u8; 4096];
        b.read_at(&mut x, 8192).unwrap();
        assert_eq!(x, [9u8; 4096], "the stale plex got the write");
        for _ in 0..8 {
            store.read_at(&mut x, 0).unwrap();
            assert_eq!(x, [7u8; 4096], "reads come from the current plex");
        }
        let mut y = [1u8; 4096];
        store.read_plex_at(1, &mut y, 0).unwrap();
        assert_eq!(y, [0u8; 4096]);
    }

    #[test]
    fn after_a_crash_only_the_dirty_regions_are_copied() {
        const R: u64 = 64 << 10;
        let dir = tempfile::tempdir().unwrap();
        let bitmap = dir.path().join("wi");
        let (store, [a, b]) = mirror(64 * R, false);
        store.set_plex_state(1, PlexState::Current);
        let (wi, dirty) = crate::intent::WriteIntent::open(&bitmap, 64 * R, R).unwrap();
        assert!(matches!(dirty, crate::intent::Dirty::All(_)));
        store.set_write_intent(Some(Arc::new(wi)));
        store.write_at(&[3u8; 4096], 3 * R, false).unwrap();
        store.flush().unwrap();
        store.write_at(&[7u8; 4096], 7 * R, false).unwrap();
        drop(store);
        // The crash: plex b missed the write to region 7, and differs in region 20, where
        // nothing was written since the last flush (so no copy may touch it).
        b.write_at(&[0u8; 4096], 7 * R, false).unwrap();
        b.write_at(&[9u8; 4096], 20 * R, false).unwrap();
        let (wi, dirty) = crate::intent::WriteIntent::open(&bitmap, 64 * R, R).unwrap();
        let crate::intent::Dirty::Ranges(ranges) = dirty else {
            panic!("the bitmap checks out: {dirty:?}")
        };
        assert_eq!(ranges, vec![(7 * R, 8 * R)], "only region 7 is dirty");
        let plex = |s: &Arc<dyn BackingStore>| PlexLayout {
            columns: vec![vec![seg(s, 0, 64 * R)]],
            stripe_size: 0,
        };
        let store = RaidStore::new(
            vec![plex(&a), plex(&b)],
            vec![PlexState::Current, PlexState::Current],
            Arc::new(NoObserver),
        )
        .unwrap();
        let wi = Arc::new(wi);
        store.set_write_intent(Some(wi.clone()));
        store.set_recovering();
        let mut x = [0u8; 4096];
        store.read_at(&mut x, 20 * R).unwrap();
        assert_eq!(x, [0u8; 4096], "while recovering, reads come from plex a");
        store.flush().unwrap();
        assert_eq!(
            wi.dirty(),
            ranges,
            "a flush keeps the bits until the repair ends"
        );
        let done = store
            .resync_ranges(&ranges, 16 << 10, &mut |_, _| true)
            .unwrap();
        assert_eq!(wi.dirty(), vec![], "cleared once the repair ended");
        assert_eq!(done.examined, R, "one region examined");
        assert_eq!(
            done.repaired,
            16 << 10,
            "only the chunk that differed written"
        );
        b.read_at(&mut x, 7 * R).unwrap();
        assert_eq!(x, [7u8; 4096], "region 7 copied from a");
        b.read_at(&mut x, 20 * R).unwrap();
        assert_eq!(
            x, [9u8; 4096],
            "region 20 not copied: only dirty regions are"
        );
        drop(store);
        let (_, dirty) = crate::intent::WriteIntent::open(&bitmap, 64 * R, R).unwrap();
        assert_eq!(
            dirty,
            crate::intent::Dirty::Ranges(vec![]),
            "clean after a flush"
        );
    }
}
