//! Crash recovery of mirrors (BEHAVIOUR.md §15, "fast crash recovery").
//!
//! A LUN of more than one plex whose hints say `fast_crash_recovery_required` keeps a
//! write-intent bitmap (`vds_backstore::intent`) in the data dir, `<data>/luns/<lun>.wib`
//! (mode 0600; never on a drive, which may be the one that dies). It is attached when the LUN
//! opens, when it is made with the hint and when the hint is set; setting the hint off detaches
//! it, flushes every plex and only then removes the file. It goes with the LUN.
//!
//! At every start, before any I/O reaches the LUN, the bitmap says which regions a crash may
//! have left unequal; a RecoverLun job then makes every current plex equal to the first one
//! there (`RaidStore::resync_ranges`) while the LUN serves I/O, behind the same gate as a
//! rebuild (`RaidStore::resync`), with reads served by the source plex until it ends. A bitmap
//! that does not check out (torn, foreign, another size) means the whole LUN. A mirror without
//! the hint has no bitmap: after a crash (no clean-shutdown marker, which `Provider::shutdown`
//! writes after flushing every LUN and each start removes) it is compared and repaired whole.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use uuid::Uuid;
use vds_backstore::intent::{Dirty, WriteIntent};
use vds_backstore::{BackingStore, PlexState, RaidStore};
use vds_model::{AsyncOutputType, Hresult, Lun, LunHints};

use crate::engine::Inner;
use crate::jobs::JobHandle;
use crate::VdsError;

/// The region the bitmap asks for (it grows with the LUN, `intent::region_size`).
pub(crate) const REGION: u64 = 1 << 20;

/// Bytes compared per step of a crash resync.
const CHUNK: u64 = 256 << 10;

/// The file a clean shutdown leaves in the data dir.
const CLEAN_MARKER: &str = "clean-shutdown";

/// Per LUN, the byte ranges a crash may have left unequal and why.
pub(crate) type Pending = std::collections::HashMap<Uuid, (Vec<(u64, u64)>, String)>;

/// The write-intent bitmap of LUN `lun`.
pub(crate) fn bitmap_path(data_dir: &Path, lun: Uuid) -> PathBuf {
    data_dir.join("luns").join(format!("{lun}.wib"))
}

/// Whether `lun`, open on `raid`, keeps a bitmap under `hints`.
pub(crate) fn wants_bitmap(hints: &LunHints, raid: Option<&RaidStore>) -> bool {
    hints.fast_crash_recovery_required && raid.is_some_and(|r| r.plex_count() > 1)
}

/// Removes LUN `lun`'s bitmap (a deleted LUN, a hint set off); a missing file is fine.
pub(crate) fn remove_bitmap(data_dir: &Path, lun: Uuid) {
    let path = bitmap_path(data_dir, lun);
    match std::fs::remove_file(&path) {
        Ok(()) => {
            if let Err(err) = vds_backstore::sync_parent_dir(&path) {
                tracing::warn!(path = %path.display(), error = %err, "syncing the luns dir");
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(err) => {
            tracing::warn!(lun = %lun, error = %err, "could not remove the write-intent bitmap")
        }
    }
}

/// Opens (or makes) LUN `lun`'s bitmap and says what a crash may have left unequal.
fn open_bitmap(data_dir: &Path, lun: Uuid, size: u64) -> io::Result<(WriteIntent, Dirty)> {
    let path = bitmap_path(data_dir, lun);
    if let Some(dir) = path.parent() {
        crate::storage::make_private_dir(dir)?;
    }
    let r = WriteIntent::open(&path, size, REGION)?;
    vds_backstore::sync_parent_dir(&path)?;
    Ok(r)
}

/// At start: whether the last run ended with a clean shutdown. The marker is removed (durably)
/// before any LUN opens, so a crash from now on is seen at the next start.
pub(crate) fn take_clean_marker(data_dir: &Path) -> bool {
    let path = data_dir.join(CLEAN_MARKER);
    match std::fs::remove_file(&path) {
        Ok(()) => {
            if let Err(err) = vds_backstore::sync_parent_dir(&path) {
                tracing::warn!(error = %err, "syncing the data dir after the clean-shutdown marker");
            }
            true
        }
        Err(_) => false,
    }
}

/// After every LUN was flushed at shutdown: the marker the next start looks for.
pub(crate) fn write_clean_marker(data_dir: &Path) -> io::Result<()> {
    let path = data_dir.join(CLEAN_MARKER);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    f.sync_all()?;
    vds_backstore::sync_parent_dir(&path)
}

impl Inner {
    /// A LUN's store opened (at start, or when a Refresh reloads a store another process
    /// changed): its bitmap is attached when the hints ask for one (a leftover one is removed
    /// otherwise), and what a crash may have left unequal is noted for
    /// [`Inner::resume_crash_resyncs`].
    pub(crate) fn open_recovery(&self, lun: &Lun, hints: &LunHints, raid: Option<&RaidStore>) {
        let Some(raid) = raid.filter(|r| r.plex_count() > 1) else {
            return;
        };
        // With fewer than two current plexes there is nothing to compare: a stale plex is
        // regenerated whole (spare.rs), a failed one waits for Recover.
        let current = (0..raid.plex_count())
            .filter(|&i| raid.plex_state(i) == PlexState::Current)
            .count();
        let whole = || vec![(0, raid.size())];
        let work = if wants_bitmap(hints, Some(raid)) {
            match open_bitmap(&self.config.data_dir, lun.id, raid.size()) {
                Ok((wi, dirty)) => {
                    raid.set_write_intent(Some(Arc::new(wi)));
                    match dirty {
                        Dirty::Ranges(r) => Some((r, "the write-intent bitmap".to_string())),
                        Dirty::All(why) => Some((whole(), why)),
                    }
                }
                Err(err) => {
                    tracing::error!(lun = %lun.id, error = %err,
                        "cannot open the write-intent bitmap; the LUN runs without one");
                    Some((whole(), format!("no write-intent bitmap: {err}")))
                }
            }
        } else {
            remove_bitmap(&self.config.data_dir, lun.id);
            (!self.clean_start).then(|| (whole(), "no clean shutdown".to_string()))
        };
        if let (true, Some(work)) = (current > 1, work) {
            raid.set_recovering();
            self.pending_recovery.lock().insert(lun.id, work);
        }
    }

    /// A new LUN made with the hint: its bitmap (a failure is logged; the LUN runs without).
    pub(crate) fn new_lun_recovery(&self, lun: Uuid, hints: &LunHints, raid: Option<&RaidStore>) {
        if let (true, Some(r)) = (wants_bitmap(hints, raid), raid) {
            if let Err(err) = self.attach_bitmap(lun, r) {
                tracing::error!(lun = %lun, error = %err,
                    "cannot make the write-intent bitmap; the LUN runs without one");
            }
        }
    }

    /// The hint was set on a live LUN (or it was made with it): a new bitmap is attached and
    /// cleared by a flush of every plex (the plexes are equal: nothing to copy).
    pub(crate) fn attach_bitmap(&self, lun: Uuid, raid: &RaidStore) -> io::Result<()> {
        let (wi, _) = open_bitmap(&self.config.data_dir, lun, raid.size())?;
        raid.set_write_intent(Some(Arc::new(wi)));
        raid.flush()
    }

    /// The hint was set off: writes stop marking the bitmap, every plex is flushed; the caller
    /// removes the file once the change is stored ([`remove_bitmap`]).
    pub(crate) fn detach_bitmap(&self, raid: &RaidStore) -> io::Result<()> {
        raid.set_write_intent(None);
        raid.flush()
    }

    /// After the LUNs opened (at start, after a reload): one RecoverLun job per LUN that a
    /// crash may have left with unequal plexes.
    pub(crate) fn resume_crash_resyncs(self: &Arc<Self>, st: &crate::state::State) {
        let work: Vec<_> = self.pending_recovery.lock().drain().collect();
        for (lun, (ranges, why)) in work {
            let Some(raid) = st.luns.get(&lun).and_then(|e| e.raid.clone()) else {
                continue;
            };
            if let Err(err) = self.spawn_crash_resync(lun, raid, ranges, why) {
                tracing::error!(lun = %lun, error = %err.message, "cannot start the crash resync");
            }
        }
    }

    /// The job: compare and repair `ranges` of LUN `lun`, percentage over their bytes.
    fn spawn_crash_resync(
        self: &Arc<Self>,
        lun: Uuid,
        raid: Arc<RaidStore>,
        ranges: Vec<(u64, u64)>,
        why: String,
    ) -> Result<Arc<JobHandle>, VdsError> {
        let bytes: u64 = ranges.iter().map(|(s, e)| e - s).sum();
        tracing::info!(lun = %lun, ranges = ranges.len(), bytes, reason = %why,
            "crash resync: making the plexes equal");
        let handle = self.jobs.start(AsyncOutputType::RecoverLun, lun);
        crate::jobs::run_on_thread(&handle, "vds-crash-resync".into(), move |h| {
            let done = raid
                .resync_ranges(&ranges, CHUNK, &mut |done, total| {
                    h.set_percent((done.saturating_mul(100) / total.max(1)) as u32);
                    !h.cancel_requested()
                })
                .map_err(|e| crate::ops::storage_err(format!("LUN {lun}: crash resync"), &e))?;
            if done.stopped {
                return Err(VdsError::new(
                    Hresult::VDS_E_OPERATION_CANCELED,
                    format!(
                        "LUN {lun}: crash resync stopped after {} bytes",
                        done.examined
                    ),
                ));
            }
            let current = (0..raid.plex_count())
                .filter(|&i| raid.plex_state(i) == PlexState::Current)
                .count();
            tracing::info!(lun = %lun, examined_bytes = done.examined,
                repaired_bytes = done.repaired, current_plexes = current, "crash resync done");
            Ok((Hresult::S_OK, None))
        })?;
        Ok(handle)
    }
}
