//! Backing paths given by the caller (BEHAVIOUR.md §12).
//!
//! The API is root-equivalent, but a path is still judged as if a mistake or a hostile local
//! user could have put it there:
//!
//! - symlinks are resolved first ([`resolve`]); the LUN records the resolved path, and every
//!   check below is made on it;
//! - inside the data dir only the array's own LUN files (`<data>/luns/*`, not journals) may be
//!   named: the store, its WAL, the API token answer `E_ACCESSDENIED`;
//! - a path that exists is **adopted**: its size is the LUN's (`size_bytes` must equal it), and
//!   nothing in it is changed unless the request says `wipe` (first and last MiB zeroed); a
//!   path that does not exist is created (`O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0600), so a link
//!   planted after the check is never followed;
//! - the job re-opens an adopted path with `O_NOFOLLOW` and checks that the open descriptor is
//!   still the file or device that was judged (`vds_backstore::lifecycle::pin`): the same
//!   device and inode, at the same resolved path (`/proc/self/fd`). Wiping goes through that
//!   descriptor.
//!
//! The I/O of all this is `vds_backstore::lifecycle`; here is the policy and what a refusal
//! answers.

use std::io;
use std::path::{Path, PathBuf};

use vds_backstore::lifecycle::{self, Node, Unresolved};
use vds_model::{BackingKind, Hresult};

use crate::VdsError;

/// What is at a requested path, once judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Judged {
    /// The path with every symlink resolved.
    pub path: String,
    /// The identity of what is there now (`(dev, ino)` of a file, `(rdev, ino)` of a device,
    /// as `storage::identity_of` records it), and its size; `None`: the file is to be created.
    pub existing: Option<((u64, u64), u64)>,
}

fn invalid(msg: String) -> VdsError {
    VdsError::invalid_arg("backing.path", msg)
}

/// Resolves every symlink of `p` (absolute). A path that does not exist yet resolves through
/// its directory; a dangling link is refused (creating "through" it would write wherever it
/// points).
pub(crate) fn resolve(p: &str) -> Result<PathBuf, VdsError> {
    lifecycle::resolve(Path::new(p)).map_err(|e| match e {
        Unresolved::NotAbsolute => invalid(format!("{p:?} is not absolute")),
        Unresolved::DanglingLink => invalid(format!("{p} is a symbolic link to nothing")),
        Unresolved::NoFileName => invalid(format!("{p} does not name a file")),
        Unresolved::NotADirectory(dir) => invalid(format!("{} is not a directory", dir.display())),
        Unresolved::Io(e) => VdsError::io(format!("backing.path {p}"), &e),
        Unresolved::DirectoryIo(e) => VdsError::io(format!("backing.path {p}: the directory"), &e),
    })
}

/// Refuses a resolved path inside the data dir unless it is one of the array's own LUN files.
pub(crate) fn check_not_private(
    requested: &str,
    resolved: &Path,
    data_dir: &Path,
) -> Result<(), VdsError> {
    let data = lifecycle::canonical_or_same(data_dir);
    if !resolved.starts_with(&data) {
        return Ok(());
    }
    let lun_file = resolved.parent() == Some(data.join("luns").as_path())
        && resolved.file_name().is_some_and(|n| {
            let n = n.to_string_lossy();
            !n.ends_with(vds_backstore::journal::JOURNAL_SUFFIX) && !n.starts_with('.')
        });
    if lun_file {
        return Ok(());
    }
    Err(VdsError::new(
        Hresult::E_ACCESSDENIED,
        format!(
            "backing.path: {requested} is inside the data dir {} (the store, its journal and \
             the API token are the array's own); only its LUN files may be named",
            data.display()
        ),
    ))
}

/// Judges a requested path of `kind` (file or block) for a LUN of `size_bytes`.
pub(crate) fn judge(
    requested: &str,
    kind: BackingKind,
    size_bytes: u64,
    data_dir: &Path,
) -> Result<Judged, VdsError> {
    let resolved = resolve(requested)?;
    check_not_private(requested, &resolved, data_dir)?;
    let shown = resolved.display().to_string();
    let seen = match lifecycle::look(&resolved) {
        Ok(seen) => seen,
        Err(e) if e.kind() == io::ErrorKind::NotFound && kind == BackingKind::File => {
            return Ok(Judged {
                path: shown,
                existing: None,
            });
        }
        Err(e) => return Err(VdsError::io(format!("backing.path {requested}"), &e)),
    };
    let (identity, size) = match (kind, seen.node()) {
        (BackingKind::Block, Some(Node::Device)) => (
            seen.identity(Node::Device),
            lifecycle::device_size(&resolved)
                .map_err(|e| VdsError::io(format!("backing.path {requested}"), &e))?,
        ),
        (BackingKind::Block, _) => {
            return Err(invalid(format!("{requested} is not a block device")));
        }
        (_, Some(Node::File)) => (seen.identity(Node::File), seen.len()),
        _ => return Err(invalid(format!("{requested} is not a regular file"))),
    };
    // 0: whatever size it has (a configuration document that adopts without naming a size;
    // CreateLun refuses 0 before it gets here).
    if size_bytes != 0 && size != size_bytes {
        return Err(VdsError::invalid_arg(
            "size_bytes",
            format!(
                "{requested} exists and is {size} bytes: an adopted file or device keeps its \
                 size, so size_bytes must be {size} (it is {size_bytes})"
            ),
        ));
    }
    if size % crate::engine::BLOCK_SIZE != 0 {
        return Err(invalid(format!(
            "{requested} is {size} bytes, not a whole number of {}-byte blocks",
            crate::engine::BLOCK_SIZE
        )));
    }
    Ok(Judged {
        path: shown,
        existing: Some((identity, size)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_resolved_and_the_data_dir_is_private() {
        let d = tempfile::tempdir().unwrap();
        let data = d.path().join("data");
        std::fs::create_dir_all(data.join("luns")).unwrap();
        std::fs::write(data.join("vds.sqlite"), b"store").unwrap();
        std::fs::write(data.join("luns/a.img"), vec![0u8; 4096]).unwrap();
        let link = d.path().join("innocent.img");
        std::os::unix::fs::symlink(data.join("vds.sqlite"), &link).unwrap();
        let s = |p: &Path| p.display().to_string();
        for p in [
            data.join("vds.sqlite"),
            data.join("vds.sqlite-wal"),
            link.clone(),
        ] {
            let e = judge(&s(&p), BackingKind::File, 4096, &data).unwrap_err();
            assert_eq!(e.hresult, Hresult::E_ACCESSDENIED, "{}: {e}", p.display());
        }
        let e = judge(
            &s(&data.join("luns/a.img.atomic")),
            BackingKind::File,
            4096,
            &data,
        )
        .unwrap_err();
        assert_eq!(e.hresult, Hresult::E_ACCESSDENIED);
        assert!(judge(&s(&data.join("luns/a.img")), BackingKind::File, 4096, &data).is_ok());
        // A dangling link is not created through.
        let dangling = d.path().join("dangling.img");
        std::os::unix::fs::symlink(d.path().join("nowhere/x"), &dangling).unwrap();
        let e = judge(&s(&dangling), BackingKind::File, 4096, &data).unwrap_err();
        assert_eq!(e.hresult, Hresult::E_INVALIDARG, "{e}");
        // A link to an ordinary file is judged (and recorded) as the file.
        let file = d.path().join("real.img");
        std::fs::write(&file, vec![1u8; 8192]).unwrap();
        let to_file = d.path().join("to-file.img");
        std::os::unix::fs::symlink(&file, &to_file).unwrap();
        let j = judge(&s(&to_file), BackingKind::File, 8192, &data).unwrap();
        assert_eq!(j.path, s(&std::fs::canonicalize(&file).unwrap()));
        assert_eq!(j.existing.unwrap().1, 8192);
        let e = judge(&s(&to_file), BackingKind::File, 4096, &data).unwrap_err();
        assert_eq!(e.hresult, Hresult::E_INVALIDARG);
        assert!(e.message.starts_with("size_bytes"), "{e}");
    }
}
