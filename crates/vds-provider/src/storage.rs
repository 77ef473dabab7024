//! A LUN's storage as the provider sees it: where vds's own files live, how a new LUN's
//! storage is prepared (created, adopted, allocated), opened behind fault filters, identified,
//! measured, freed, and found left over after an interrupted create or delete.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use uuid::Uuid;
use vds_backstore::lifecycle::{self, Node};
use vds_backstore::{FaultFilter, FaultOp, Filtered};
use vds_model::{Backing, BackingKind, FaultFilterSpec, FaultOpKind, Lun};

use crate::command::BackingSpec;
use crate::ops::storage_err;
use crate::state::{LunEntry, State};
use crate::VdsError;

/// Converts the model's fault filters to the backstore's.
pub(crate) fn to_filters(specs: &[FaultFilterSpec]) -> Vec<FaultFilter> {
    specs
        .iter()
        .map(|f| match f {
            FaultFilterSpec::Delay {
                read_ms,
                write_ms,
                flush_ms,
            } => FaultFilter::Delay {
                read_ms: *read_ms,
                write_ms: *write_ms,
                flush_ms: *flush_ms,
            },
            FaultFilterSpec::Error { ops, after } => FaultFilter::Error {
                ops: ops
                    .iter()
                    .map(|o| match o {
                        FaultOpKind::Read => FaultOp::Read,
                        FaultOpKind::Write => FaultOp::Write,
                        FaultOpKind::Flush => FaultOp::Flush,
                    })
                    .collect(),
                after: *after,
            },
        })
        .collect()
}

/// Opens a LUN's backing store behind a fault-filter layer.
pub(crate) fn open_backing(lun: &Lun) -> io::Result<Arc<Filtered>> {
    let kind = match (lun.backing.kind, &lun.backing.path) {
        (BackingKind::File, Some(p)) => vds_backstore::BackingKind::File { path: p.into() },
        (BackingKind::Block, Some(p)) => vds_backstore::BackingKind::Block { path: p.into() },
        (BackingKind::Memory, _) => vds_backstore::BackingKind::Memory,
        (BackingKind::Null, _) => vds_backstore::BackingKind::Null,
        (BackingKind::Rbd, Some(p)) => {
            let (pool, image) = crate::rbd::split(p)?;
            vds_backstore::BackingKind::Rbd {
                pool: pool.into(),
                image: image.into(),
            }
        }
        (k @ BackingKind::Extents, _) | (k, None) => {
            if k == BackingKind::Extents {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "an extent-backed LUN is opened from its extents",
                ));
            }
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a {} LUN needs a path", k.short_name()),
            ));
        }
    };
    let store = vds_backstore::open(&kind, lun.size_bytes)?;
    Ok(Arc::new(Filtered::new(store, to_filters(&lun.filters))))
}

/// How a LUN of `kind` is identified: a block LUN by the device it stands for, any other by
/// its file.
pub(crate) fn node_of(kind: BackingKind) -> Node {
    match kind {
        BackingKind::Block => Node::Device,
        _ => Node::File,
    }
}

/// Device and inode of what is at a LUN's path (`rdev` for block devices).
pub(crate) fn identity_of(backing: &Backing) -> io::Result<Option<(u64, u64)>> {
    let Some(path) = backing
        .path
        .as_ref()
        .filter(|_| backing.kind != BackingKind::Rbd)
    else {
        return Ok(None);
    };
    lifecycle::identity(Path::new(path), node_of(backing.kind)).map(Some)
}

/// Total and available bytes of the filesystem holding `path`.
pub(crate) fn fs_space(path: &Path) -> io::Result<(u64, u64)> {
    lifecycle::space(path)
}

/// What changed behind the provider's back for an open LUN, if anything (BEHAVIOUR.md §6).
pub(crate) fn backing_changed(e: &LunEntry) -> Option<String> {
    e.filtered.as_ref()?;
    let lun = &e.rec.lun;
    // An RBD image is no local file: nothing on this host can replace it behind our back.
    let path = lun
        .backing
        .path
        .as_ref()
        .filter(|_| lun.backing.kind != BackingKind::Rbd)?;
    let seen = match lifecycle::look(Path::new(path)) {
        Ok(seen) => seen,
        Err(err) => return Some(format!("LUN {}: backing {path} is gone ({err})", lun.id)),
    };
    let ident = seen.identity(node_of(lun.backing.kind));
    if e.rec.identity.is_some_and(|i| i != ident) {
        return Some(format!(
            "LUN {}: {path} is no longer the file or device that was opened",
            lun.id
        ));
    }
    if lun.backing.kind == BackingKind::File && seen.len() != lun.size_bytes {
        return Some(format!(
            "LUN {}: {path} is {} bytes, the provider knows it as {}",
            lun.id,
            seen.len(),
            lun.size_bytes
        ));
    }
    None
}

/// Creates a directory with mode 0700 when missing.
pub(crate) fn make_private_dir(path: &Path) -> io::Result<()> {
    lifecycle::make_private_dir(path)
}

/// Removes the files in `<data dir>/luns` that no LUN of the store uses: a daemon killed while
/// it created a LUN (the file is made before the record is committed) or deleted one (the
/// record goes before the file) leaves one behind; nothing may stay half-made. Only files
/// vds names itself (`<uuid>.img`) are considered.
pub(crate) fn remove_leftover_lun_files(data_dir: &Path, st: &State) {
    // vds names its files after the LUN: one named after a LUN of the store is that LUN's.
    let ours = |path: &Path| {
        let id = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| Uuid::parse_str(s).ok());
        path.extension().is_some_and(|x| x == "img")
            && id.is_some_and(|id| !st.luns.contains_key(&id))
    };
    let used = st
        .luns
        .values()
        .filter_map(|e| e.rec.lun.backing.path.as_ref());
    for path in lifecycle::leftover_files(&data_dir.join("luns"), ours, used) {
        tracing::warn!(path = %path.display(), "removing a LUN file no LUN uses (interrupted create or delete)");
        if let Err(err) = lifecycle::remove_file(&path) {
            tracing::warn!(path = %path.display(), error = %err, "cannot remove the leftover LUN file");
        }
    }
}

/// Path of a new file LUN in the data dir.
pub(crate) fn default_lun_path(data_dir: &Path, id: Uuid) -> PathBuf {
    data_dir.join("luns").join(format!("{id}.img"))
}

/// How a new LUN's storage is prepared (BEHAVIOUR §12, `backing`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Prep {
    /// The caller named the path (else: vds's own file in the data dir).
    pub user_path: bool,
    /// The identity of the existing file or device being adopted, as judged.
    pub adopted: Option<(u64, u64)>,
    /// Zero the first and last MiB of an adopted path.
    pub wipe: bool,
}

/// Prepares the storage of a new LUN before it is opened: vds's own file is created (or reused
/// with its ends zeroed); a new path given by the caller is created, never through a link or
/// over a file; an adopted path is proved unchanged and only touched when `wipe` says so.
pub(crate) fn prepare_storage(lun: &Lun, owns_file: bool, prep: Prep) -> Result<(), VdsError> {
    let path = lun.backing.path.clone().unwrap_or_default();
    let p = std::path::Path::new(&path);
    let ctx = || format!("backing.path {path}");
    match (lun.backing.kind, prep.adopted) {
        (BackingKind::Memory | BackingKind::Null | BackingKind::Extents, _) => return Ok(()),
        (BackingKind::Rbd, _) if owns_file => {
            crate::rbd::create(lun).map_err(|e| storage_err(format!("backing {path}"), &e))?;
        }
        (BackingKind::Rbd, _) => {}
        (kind, Some(identity)) => {
            let f = lifecycle::pin(p, node_of(kind), identity, prep.wipe)
                .map_err(|e| storage_err(ctx(), &e))?;
            if prep.wipe {
                lifecycle::wipe(&f, lun.size_bytes).map_err(|e| storage_err(ctx(), &e))?;
            }
        }
        (BackingKind::File, None) if prep.user_path => {
            lifecycle::create_new(p, lun.size_bytes).map_err(|e| storage_err(ctx(), &e))?;
        }
        (BackingKind::File, None) => {
            if let Some(dir) = p.parent() {
                if owns_file && dir.ends_with("luns") {
                    make_private_dir(dir)
                        .map_err(|e| VdsError::io(format!("creating {}", dir.display()), &e))?;
                }
            }
            lifecycle::create_file(p, lun.size_bytes, true).map_err(|e| storage_err(ctx(), &e))?;
        }
        (BackingKind::Block, None) => {
            return Err(VdsError::invalid_arg(
                "backing.path",
                "required for a block backing store",
            ))
        }
    }
    if lun.backing.kind == BackingKind::File && !lun.thin {
        allocate(&path, 0, lun.size_bytes)
            .map_err(|e| storage_err(format!("allocating {path}"), &e))?;
    }
    Ok(())
}

/// Checks a requested backing store; judges its path when it has one (`backing`).
pub(crate) fn check_backing(
    b: &BackingSpec,
    size_bytes: u64,
    data_dir: &std::path::Path,
) -> Result<Option<crate::backing::Judged>, VdsError> {
    if b.wipe && b.path.is_none() {
        return Err(VdsError::invalid_arg(
            "backing.wipe",
            "only an existing file or device given by backing.path can be wiped",
        ));
    }
    crate::rbd::check(b)?;
    match (b.kind, &b.path) {
        (BackingKind::Rbd, _) => Ok(None),
        (BackingKind::Extents, _) => Err(VdsError::invalid_arg(
            "backing.kind",
            "extents are made by the provider from drives (give type and drives instead)",
        )),
        (BackingKind::Memory | BackingKind::Null, Some(_)) => Err(VdsError::invalid_arg(
            "backing.path",
            format!("a {} backing store has no path", b.kind.short_name()),
        )),
        (BackingKind::Memory | BackingKind::Null, None) | (BackingKind::File, None) => Ok(None),
        (BackingKind::Block, None) => Err(VdsError::invalid_arg(
            "backing.path",
            "required for a block backing store",
        )),
        (kind, Some(p)) => crate::backing::judge(p, kind, size_bytes, data_dir).map(Some),
    }
}

/// Allocates `[offset, offset+len)` of a file (a LUN that is not thin).
pub(crate) fn allocate(path: &str, offset: u64, len: u64) -> std::io::Result<()> {
    lifecycle::allocate(Path::new(path), offset, len)
}

/// Frees a deleted LUN's storage: vds's own file is removed; a file or device the operator
/// gave (adopted, BEHAVIOUR §12) is left exactly as it is. A file's atomic-write journal is
/// vds's own and removed either way.
pub(crate) fn free_storage(e: &LunEntry) {
    let lun = &e.rec.lun;
    let Some(path) = &lun.backing.path else {
        return;
    };
    // Before anything that takes the path for a file's: `pool/image` names no file.
    if lun.backing.kind == BackingKind::Rbd {
        if e.rec.owns_file {
            crate::rbd::remove_when_closed(lun.clone());
        }
        return;
    }
    if e.rec.owns_file {
        if let Err(err) = lifecycle::remove_file(Path::new(path)) {
            tracing::warn!(lun = %lun.id, path, error = %err, "could not free the LUN's storage");
        }
    }
    if lun.backing.kind == BackingKind::File {
        if let Err(err) = vds_backstore::journal::remove_journal(Path::new(path)) {
            tracing::warn!(lun = %lun.id, path, error = %err, "could not remove the atomic-write journal");
        }
    }
}
