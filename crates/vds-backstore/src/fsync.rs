//! Making a file's existence durable: `fsync` of the directory that holds it. A new or removed
//! name is in the directory, not in the file, so `fdatasync` of the file alone can lose it
//! at a power cut (a journal that vanishes with its record, a LUN file that was never there).
//!
//! In this crate's tests, every sync the real code paths perform (these and
//! `sys::fdatasync`) is also written to a per-thread log, so a test can check which syncs
//! happened and in what order ([`log`]).

use std::fs::File;
use std::io;
use std::path::Path;

/// The directory holding `path` (`.` for a bare name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// `fsync` the directory holding `path`, so that its entry for `path` (created, renamed or
/// removed) survives a power cut.
pub fn sync_parent_dir(path: &Path) -> io::Result<()> {
    let dir = parent(path);
    File::open(dir)?.sync_all()?;
    #[cfg(test)]
    log::push(log::Synced::Dir(dir.to_path_buf()));
    Ok(())
}

#[cfg(test)]
pub(crate) mod log {
    use std::cell::RefCell;
    use std::path::PathBuf;

    /// One sync that reached the kernel.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) enum Synced {
        /// `fdatasync` of the file with this inode.
        Data(u64),
        /// `fsync` of this directory.
        Dir(PathBuf),
    }

    thread_local! {
        static LOG: RefCell<Vec<Synced>> = const { RefCell::new(Vec::new()) };
    }

    pub(crate) fn push(s: Synced) {
        LOG.with(|l| l.borrow_mut().push(s));
    }

    /// The syncs this thread performed since the last call.
    pub(crate) fn take() -> Vec<Synced> {
        LOG.with(|l| std::mem::take(&mut *l.borrow_mut()))
    }
}

#[cfg(test)]
mod tests {
    use super::log::{take, Synced};
    use crate::{create_file, journal, open, BackingKind, BackingStore, FileStore};
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    fn ino(p: &Path) -> u64 {
        std::fs::metadata(p).unwrap().ino()
    }

    #[test]
    fn a_new_lun_file_is_synced_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lun");
        take();
        create_file(&p, 1 << 20, false).unwrap();
        assert_eq!(
            take(),
            [Synced::Data(ino(&p)), Synced::Dir(dir.path().into())],
            "size, then the name"
        );
        // Reused with a new size: the size is synced; the name was already there.
        create_file(&p, 2 << 20, false).unwrap();
        assert_eq!(take(), [Synced::Data(ino(&p))]);
    }

    #[test]
    fn a_new_file_at_a_callers_path_is_synced_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("given");
        take();
        crate::lifecycle::create_new(&p, 1 << 20).unwrap();
        assert_eq!(
            take(),
            [Synced::Data(ino(&p)), Synced::Dir(dir.path().into())],
            "size, then the name"
        );
    }

    #[test]
    fn the_journal_name_is_durable_before_the_store_is_touched() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lun");
        create_file(&p, 1 << 20, false).unwrap();
        let s = open(&BackingKind::File { path: p.clone() }, 0).unwrap();
        take();
        s.write_atomic(&[7; 4096], 0, false).unwrap();
        let j = ino(&journal::journal_path(&p));
        assert_eq!(
            take(),
            [
                Synced::Dir(dir.path().into()),
                Synced::Data(j),
                Synced::Data(ino(&p)),
            ],
            "journal name, then the record, then the data"
        );
        // The journal exists now: later atomic writes do not sync the directory.
        s.write_atomic(&[8; 4096], 0, false).unwrap();
        assert!(!take().contains(&Synced::Dir(dir.path().into())));
    }

    #[test]
    fn a_removed_journal_stays_removed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lun");
        create_file(&p, 1 << 20, false).unwrap();
        let s = open(&BackingKind::File { path: p.clone() }, 0).unwrap();
        s.write_atomic(&[7; 4096], 0, false).unwrap();
        drop(s);
        take();
        journal::remove_journal(&p).unwrap();
        assert_eq!(take(), [Synced::Dir(dir.path().into())]);
        journal::remove_journal(&p).unwrap();
        assert_eq!(take(), [], "nothing removed, nothing to sync");
    }

    #[test]
    fn a_resize_is_durable_when_it_returns() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lun");
        create_file(&p, 1 << 20, false).unwrap();
        let s = FileStore::open(&p).unwrap();
        take();
        s.resize(2 << 20).unwrap();
        assert_eq!(take(), [Synced::Data(ino(&p))], "extend");
        s.resize(1 << 20).unwrap();
        assert_eq!(take(), [Synced::Data(ino(&p))], "shrink");
    }
}
