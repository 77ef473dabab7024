//! Finding a `block` drive whose label is no longer at its recorded path (BEHAVIOUR.md §15):
//! a device node renamed between boots (`/dev/sdb` is now `/dev/sdc`). The candidates come
//! from `ProviderConfig::drive_search_dirs`: `/dev` means every block device the kernel lists
//! in `/sys/class/block` (partitions included) as `/dev/<name>`; any other directory means the
//! block devices and regular files directly in it (tests stand files in for devices, as `block`
//! drives on files do). Each candidate is only read ([`label::read_candidate`]: read-only,
//! never `O_EXCL`, at most the label area); one that cannot be opened or read is skipped.
//! Exactly one candidate whose label names the drive and its subsystem is the drive; two are a
//! cloned disk, and neither is taken. What another drive or a LUN's storage uses is never a
//! candidate.

use std::collections::HashSet;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use vds_backstore::label::{self, Found, Medium};
use vds_model::{Drive, DriveKind};

use crate::ops::drive::label_of;
use vds_store::LunRecord;

/// What the kernel lists every block device in (a directory per device and partition).
const SYS_CLASS_BLOCK: &str = "/sys/class/block";

/// How long one candidate's label may take to read: a dying disk that hangs a read is
/// skipped, not waited for (its reading thread is left to end on its own).
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// What a search found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Search {
    /// One candidate carries the drive's label.
    Found(PathBuf),
    /// None does.
    Missing,
    /// Several do (a cloned disk): none is taken.
    Ambiguous(Vec<PathBuf>),
}

/// The storage a candidate may be: a block device by its device number, a file by its
/// filesystem and inode (so one file under two names is one candidate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Identity {
    Device(u64),
    File(u64, u64),
}

fn identity(md: &std::fs::Metadata) -> Option<Identity> {
    let ft = md.file_type();
    if ft.is_block_device() {
        Some(Identity::Device(md.rdev()))
    } else if ft.is_file() {
        Some(Identity::File(md.dev(), md.ino()))
    } else {
        None
    }
}

/// What other drives and LUNs' storage use: never taken, whatever label it carries.
pub(crate) struct Taken {
    ids: HashSet<Identity>,
}

impl Taken {
    /// The storage at `paths` (links followed: a stored path is resolved already).
    pub(crate) fn new<'a>(paths: impl IntoIterator<Item = &'a str>) -> Taken {
        let ids = paths
            .into_iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .filter_map(|md| identity(&md))
            .collect();
        Taken { ids }
    }

    /// For drive `me`: every other block drive's node that carries that drive's label, and
    /// every LUN's backing path. A node whose label is not its recorded drive's is free: two
    /// nodes swapped between boots hold each other's drives.
    pub(crate) fn for_drive<'a>(
        me: &Drive,
        drives: impl IntoIterator<Item = &'a Drive>,
        luns: impl IntoIterator<Item = &'a LunRecord>,
    ) -> Taken {
        let drives = drives
            .into_iter()
            .filter(|d| d.id != me.id && d.kind == DriveKind::Block && label_in_place(d))
            .map(|d| d.path.as_str());
        let luns = luns
            .into_iter()
            .filter_map(|r| r.lun.backing.path.as_deref());
        Taken::new(drives.chain(luns))
    }
}

/// The candidate nodes of the search dirs, each storage once, in name order.
fn candidates(dirs: &[PathBuf]) -> Vec<(PathBuf, Identity)> {
    let mut names: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        if dir == Path::new("/dev") {
            let Ok(rd) = std::fs::read_dir(SYS_CLASS_BLOCK) else {
                continue;
            };
            // `cciss!c0d0` is `/dev/cciss/c0d0`: the kernel writes `/` in a name as `!`.
            names.extend(
                rd.flatten()
                    .map(|e| dir.join(e.file_name().to_string_lossy().replace('!', "/"))),
            );
        } else if let Ok(rd) = std::fs::read_dir(dir) {
            names.extend(rd.flatten().map(|e| e.path()));
        }
    }
    names.sort();
    let mut seen = HashSet::new();
    names
        .into_iter()
        .filter_map(|p| {
            // Not through a link: a link is another name of a node listed on its own.
            let id = identity(&std::fs::symlink_metadata(&p).ok()?)?;
            seen.insert(id).then_some((p, id))
        })
        .collect()
}

/// [`label::read_candidate`] on a thread of its own, given up after [`READ_TIMEOUT`].
fn read_bounded(p: &Path) -> std::io::Result<Option<label::Label>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let path = p.to_path_buf();
    std::thread::Builder::new()
        .name("vds-drive-search".into())
        .spawn(move || {
            let _ = tx.send(label::read_candidate(&path));
        })?;
    rx.recv_timeout(READ_TIMEOUT).unwrap_or_else(|_| {
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {} s", READ_TIMEOUT.as_secs()),
        ))
    })
}

/// Looks for the node carrying drive `d`'s label among the candidates of `dirs`, leaving out
/// what `taken` holds.
pub(crate) fn search(dirs: &[PathBuf], d: &Drive, taken: &Taken) -> Search {
    let want = label_of(d);
    let mut found: Vec<PathBuf> = Vec::new();
    for (p, id) in candidates(dirs) {
        if taken.ids.contains(&id) {
            continue;
        }
        match read_bounded(&p) {
            Ok(Some(l)) if l == want => found.push(p),
            Ok(_) => {}
            Err(e) => tracing::debug!(path = %p.display(), error = %e, "drive candidate skipped"),
        }
    }
    match found.len() {
        0 => Search::Missing,
        1 => Search::Found(found.remove(0)),
        _ => Search::Ambiguous(found),
    }
}

/// Where block drive `d` is now, when its label is not at its recorded path: the one
/// candidate carrying it, or `None` (logged when several do).
pub(crate) fn locate(dirs: &[PathBuf], d: &Drive, taken: &Taken) -> Option<PathBuf> {
    if d.kind != DriveKind::Block || dirs.is_empty() {
        return None;
    }
    match search(dirs, d, taken) {
        Search::Found(p) => {
            tracing::info!(drive = %d.id, old = %d.path, new = %p.display(), "block drive found under a new device node");
            Some(p)
        }
        Search::Missing => None,
        Search::Ambiguous(ps) => {
            let ps: Vec<String> = ps.iter().map(|p| p.display().to_string()).collect();
            tracing::warn!(drive = %d.id, candidates = ?ps, "block drive's label found on several devices (a cloned disk?); none is taken");
            None
        }
    }
}

/// Whether block drive `d`'s label is at its recorded path.
pub(crate) fn label_in_place(d: &Drive) -> bool {
    label::read(Path::new(&d.path), Medium::Block).ok() == Some(Found::Label(label_of(d)))
}

/// `d` moved to `path`: its path, and its identification when that was the old path.
pub(crate) fn move_to(d: &mut Drive, path: &Path) {
    let shown = path.display().to_string();
    if d.identification == d.path {
        d.identification = shown.clone();
    }
    d.path = shown;
}

/// At start, before any LUN opens: every `block` drive whose label is not at its recorded path
/// is looked for, and moved where it is found. Returns the drives moved (to be stored).
pub(crate) fn relocate_at_start(
    dirs: &[PathBuf],
    drives: &mut [Drive],
    luns: &[LunRecord],
) -> Vec<Drive> {
    let mut moved = Vec::new();
    for i in 0..drives.len() {
        let d = &drives[i];
        if d.kind != DriveKind::Block || label_in_place(d) {
            continue;
        }
        let taken = Taken::for_drive(d, drives.iter(), luns.iter());
        if let Some(p) = locate(dirs, d, &taken) {
            move_to(&mut drives[i], &p);
            moved.push(drives[i].clone());
        }
    }
    moved
}
