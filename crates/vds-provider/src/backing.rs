//! Backing paths given by the caller (SEMANTICS.md §12).
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
//!   still the file or device that was judged ([`pin`]): the same device and inode, at the
//!   same resolved path (`/proc/self/fd`). Wiping goes through that descriptor.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

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
    let path = Path::new(p);
    if !path.is_absolute() {
        return Err(invalid(format!("{p:?} is not absolute")));
    }
    match std::fs::symlink_metadata(path) {
        Ok(_) => std::fs::canonicalize(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => invalid(format!("{p} is a symbolic link to nothing")),
            _ => VdsError::io(format!("backing.path {p}"), &e),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let name = path
                .file_name()
                .filter(|n| *n != "." && *n != "..")
                .ok_or_else(|| invalid(format!("{p} does not name a file")))?;
            let dir = path.parent().unwrap_or(Path::new("/"));
            let dir = std::fs::canonicalize(dir)
                .map_err(|e| VdsError::io(format!("backing.path {p}: the directory"), &e))?;
            if !dir.is_dir() {
                return Err(invalid(format!("{} is not a directory", dir.display())));
            }
            Ok(dir.join(name))
        }
        Err(e) => Err(VdsError::io(format!("backing.path {p}"), &e)),
    }
}

/// Refuses a resolved path inside the data dir unless it is one of the array's own LUN files.
pub(crate) fn check_not_private(
    requested: &str,
    resolved: &Path,
    data_dir: &Path,
) -> Result<(), VdsError> {
    let data = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
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
    let md = match std::fs::metadata(&resolved) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound && kind == BackingKind::File => {
            return Ok(Judged {
                path: shown,
                existing: None,
            });
        }
        Err(e) => return Err(VdsError::io(format!("backing.path {requested}"), &e)),
    };
    let ft = md.file_type();
    let (identity, size) = match kind {
        BackingKind::Block if ft.is_block_device() => {
            ((md.rdev(), md.ino()), device_size(&resolved, requested)?)
        }
        BackingKind::Block => {
            return Err(invalid(format!("{requested} is not a block device")));
        }
        _ if ft.is_file() => ((md.dev(), md.ino()), md.len()),
        _ => return Err(invalid(format!("{requested} is not a regular file"))),
    };
    if size != size_bytes {
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

/// The size of a block device (the end of its data).
fn device_size(resolved: &Path, requested: &str) -> Result<u64, VdsError> {
    use std::io::Seek;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(resolved)
        .map_err(|e| VdsError::io(format!("backing.path {requested}"), &e))?;
    f.seek(io::SeekFrom::End(0))
        .map_err(|e| VdsError::io(format!("backing.path {requested}"), &e))
}

/// Creates a new LUN file: never through a link, never over an existing file, mode 0600.
pub(crate) fn create_new(path: &Path, size: u64) -> io::Result<()> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    // A journal left beside this name by someone else must not be replayed into our file.
    vds_backstore::journal::remove_journal(path)?;
    f.set_len(size)?;
    f.sync_all()
}

/// Opens an adopted path again and proves it is what [`judge`] saw: not a link, the same
/// identity, and (through `/proc/self/fd`) the same resolved path.
pub(crate) fn pin(
    path: &Path,
    kind: BackingKind,
    identity: (u64, u64),
    write: bool,
) -> io::Result<File> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    let md = f.metadata()?;
    let now = match kind {
        BackingKind::Block => (md.rdev(), md.ino()),
        _ => (md.dev(), md.ino()),
    };
    let real = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&f)
    ))?;
    if now != identity || real != path {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} was replaced while the LUN was being created",
                path.display()
            ),
        ));
    }
    Ok(f)
}

/// Zeroes the first and last MiB of an adopted file or device through its pinned descriptor
/// (`"wipe": true`).
pub(crate) fn wipe(f: &File, size: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let len = crate::storage::ZERO_LEN.min(size);
    let zeros = vec![0u8; len as usize];
    f.write_all_at(&zeros, 0)?;
    let tail = size.saturating_sub(crate::storage::ZERO_LEN);
    f.write_all_at(&zeros[..(size - tail) as usize], tail)?;
    f.sync_all()
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

    #[test]
    fn pin_refuses_a_replaced_file_and_create_new_never_overwrites() {
        let d = tempfile::tempdir().unwrap();
        let p = std::fs::canonicalize(d.path()).unwrap().join("x.img");
        create_new(&p, 8192).unwrap();
        assert_eq!(
            create_new(&p, 4096).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 8192);
        let data = d.path().join("data");
        let j = judge(&p.display().to_string(), BackingKind::File, 8192, &data).unwrap();
        let id = j.existing.unwrap().0;
        pin(&p, BackingKind::File, id, true).unwrap();
        // The judged file is moved aside (kept, so its inode number cannot be reused by the
        // new file, as it can be after an unlink) and another file takes its name.
        std::fs::rename(&p, p.with_extension("old")).unwrap();
        std::fs::write(&p, vec![0u8; 8192]).unwrap();
        assert!(
            pin(&p, BackingKind::File, id, true).is_err(),
            "another inode"
        );
    }
}
