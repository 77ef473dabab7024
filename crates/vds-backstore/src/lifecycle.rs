//! The life of a backing file or device around its I/O: creating a LUN's file (vds's own, or a
//! new one at a caller's path), allocating it, zeroing its ends, judging and pinning an
//! existing file or device, identifying it, measuring its filesystem, and freeing it or finding
//! it left over after an interrupted create or delete.
//!
//! Only the I/O lives here. Which path is allowed, which store wins, and what error a failure
//! becomes for the caller (an HRESULT, a field name) is the provider's policy.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::{file, journal, sync_parent_dir, sys};

/// Bytes zeroed at each end of reused or wiped storage (BEHAVIOUR §8: old partition tables
/// and filesystem signatures must not leak into a new LUN).
pub const ZERO_LEN: u64 = 1 << 20;

/// What a path names, as far as a backing store goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    /// A regular file.
    File,
    /// A block device.
    Device,
}

/// Who a file or device is: `(dev, ino)` of a file, `(rdev, ino)` of a device (the device it
/// stands for, wherever its node is). Recorded with a LUN so that a replaced file or device is
/// recognised.
pub type Identity = (u64, u64);

/// What is at a path now (symlinks followed).
#[derive(Debug)]
pub struct Seen(Metadata);

impl Seen {
    /// A regular file or a block device; `None` for anything else.
    pub fn node(&self) -> Option<Node> {
        let ft = self.0.file_type();
        if ft.is_file() {
            Some(Node::File)
        } else if ft.is_block_device() {
            Some(Node::Device)
        } else {
            None
        }
    }

    /// The identity it has when taken as `node` (what a LUN of that kind records).
    pub fn identity(&self, node: Node) -> Identity {
        identity_as(&self.0, node)
    }

    /// Its length in bytes (a file's size; not a device's, see [`device_size`]).
    pub fn len(&self) -> u64 {
        self.0.len()
    }

    /// Whether it is empty (a file of length 0).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn identity_as(md: &Metadata, node: Node) -> Identity {
    match node {
        Node::File => (md.dev(), md.ino()),
        Node::Device => (md.rdev(), md.ino()),
    }
}

/// Looks at what is at `path`, following symlinks.
pub fn look(path: &Path) -> io::Result<Seen> {
    std::fs::metadata(path).map(Seen)
}

/// The identity of what is at `path`, taken as `node`.
pub fn identity(path: &Path, node: Node) -> io::Result<Identity> {
    Ok(look(path)?.identity(node))
}

/// Total and available bytes of the filesystem holding `path` (`statvfs`).
pub fn space(path: &Path) -> io::Result<(u64, u64)> {
    sys::statvfs(path)
}

/// Creates a directory with mode 0700 when missing; a new one is synced into its parent.
pub fn make_private_dir(path: &Path) -> io::Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        // The LUN files created in it are committed next: the directory must survive a
        // power cut with them (their own entries are synced when they are created).
        Ok(()) => sync_parent_dir(path),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// A directory vds keeps its own files in, inside a directory a caller gave (a `dir` drive's
/// `vds-extents`): made 0700 when missing, then opened without following a link and proved
/// vds's own (a real directory, owned by the daemon's user, writable by nobody else), so that
/// nothing another local user planted there (a link, a directory of their own) is ever
/// written or read through. Files in it are reached relative to the handle:
/// [`create_new_in`], [`open_in`], [`remove_in`].
pub fn open_private_dir(path: &Path) -> io::Result<File> {
    make_private_dir(path)?;
    let refused = |why: String| {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} {why}: not vds's own directory", path.display()),
        )
    };
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) | Some(libc::ENOTDIR) => {
                refused("is a link or not a directory".into())
            }
            _ => e,
        })?;
    let md = dir.metadata()?;
    if md.uid() != sys::euid() {
        return Err(refused(format!("is owned by uid {}", md.uid())));
    }
    if md.mode() & 0o022 != 0 {
        return Err(refused(format!("has mode {:o}", md.mode() & 0o7777)));
    }
    Ok(dir)
}

/// Creates the file `name` in `dir` (from [`open_private_dir`]): new (never over an existing
/// file or through a link), mode 0600, `size` bytes, sparse; its size and name durable.
pub fn create_new_in(dir: &File, name: &str, size: u64) -> io::Result<File> {
    let f = sys::openat(
        dir,
        name,
        libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
        0o600,
    )?;
    f.set_len(size)?;
    sys::fdatasync(&f)?;
    dir.sync_all()?;
    Ok(f)
}

/// Opens the existing regular file `name` in `dir` read-write, not through a link.
pub fn open_in(dir: &File, name: &str) -> io::Result<File> {
    let f = sys::openat(dir, name, libc::O_RDWR, 0)?;
    if !f.metadata()?.file_type().is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name} is not a regular file"),
        ));
    }
    Ok(f)
}

/// Renames the file `from` of `dir` to `to`, never over an existing `to` (a link, then the
/// old name removed; a crash in between leaves both names of one file); durable.
pub fn rename_in(dir: &File, from: &str, to: &str) -> io::Result<()> {
    sys::linkat(dir, from, to)?;
    sys::unlinkat(dir, from)?;
    dir.sync_all()
}

/// Removes the file `name` of `dir`; the removal is durable.
pub fn remove_in(dir: &File, name: &str) -> io::Result<()> {
    sys::unlinkat(dir, name)?;
    dir.sync_all()
}

/// Create (or reuse) the file of a file-backed LUN: afterwards it is exactly `size` bytes, sparse
/// where nothing was written, mode 0600 when created. When the file already existed and
/// `zero_reused` is set, its ends read as zeroes ([`zero_ends`]).
pub fn create_file(path: &Path, size: u64, zero_reused: bool) -> io::Result<()> {
    journal::remove_journal(path)?;
    let existed = path.exists();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    if f.metadata()?.len() != size {
        f.set_len(size)?;
    }
    if existed && zero_reused {
        zero_ends(&f, size)?;
    }
    // The LUN that relies on this file is committed next: its size (and zeroed ends) and,
    // for a new file, its name must survive a power cut first.
    sys::fdatasync(&f)?;
    if !existed {
        sync_parent_dir(path)?;
    }
    Ok(())
}

/// Creates a new LUN file at a path a caller named: never through a link, never over an
/// existing file (`O_CREAT|O_EXCL|O_NOFOLLOW`), mode 0600, `size` bytes, sparse.
pub fn create_new(path: &Path, size: u64) -> io::Result<()> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    // A journal left beside this name by someone else must not be replayed into our file.
    journal::remove_journal(path)?;
    f.set_len(size)?;
    // As for vds's own files: the size, then the name, survive a power cut before the LUN
    // that relies on them is committed.
    sys::fdatasync(&f)?;
    sync_parent_dir(path)
}

/// Allocates `[offset, offset+len)` of the file at `path` (a LUN that is not thin).
pub fn allocate(path: &Path, offset: u64, len: u64) -> io::Result<()> {
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    sys::posix_fallocate(&f, offset, len)
}

/// Allocates `[offset, offset+len)` of the open file `f`.
pub fn allocate_file(f: &File, offset: u64, len: u64) -> io::Result<()> {
    sys::posix_fallocate(f, offset, len)
}

/// Makes the first and last [`ZERO_LEN`] bytes of `f` (`size` bytes long) read as zeroes: a
/// file's ranges are deallocated where its filesystem can (else written with zeroes), a
/// device's are written. Not synced: the caller syncs with whatever else it changed.
pub fn zero_ends(f: &File, size: u64) -> io::Result<()> {
    let device = f.metadata()?.file_type().is_block_device();
    let zero = |offset: u64, len: u64| {
        if device {
            file::write_zeroes(f, offset, len)
        } else {
            file::zero_range(f, offset, len)
        }
    };
    let head = ZERO_LEN.min(size);
    zero(0, head)?;
    let tail_start = size.saturating_sub(ZERO_LEN).max(head);
    zero(tail_start, size - tail_start)
}

/// Zeroes the ends of an adopted file or device through its pinned descriptor ([`pin`]) and
/// makes that durable (a LUN's `"wipe": true`).
pub fn wipe(f: &File, size: u64) -> io::Result<()> {
    zero_ends(f, size)?;
    f.sync_all()
}

/// The size of the block device at `path` (the end of its data), opened without following a
/// link.
pub fn device_size(path: &Path) -> io::Result<u64> {
    use std::io::Seek;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    f.seek(io::SeekFrom::End(0))
}

/// Opens an existing file or device again (never through a link) and proves it is the one that
/// was judged: the same `identity` taken as `node`, and (through `/proc/self/fd`) at the same
/// resolved `path`. Anything else is `PermissionDenied`: it was replaced in between.
pub fn pin(path: &Path, node: Node, identity: Identity, write: bool) -> io::Result<File> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    let now = identity_as(&f.metadata()?, node);
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

/// Why a requested path could not be resolved ([`resolve`]).
#[derive(Debug)]
pub enum Unresolved {
    /// The path is relative.
    NotAbsolute,
    /// The path is a symlink to nothing (creating "through" it would write wherever it points).
    DanglingLink,
    /// A path that does not exist and whose last component is not a file name.
    NoFileName,
    /// The directory a new file would go in is not a directory.
    NotADirectory(PathBuf),
    /// Looking at the path failed.
    Io(io::Error),
    /// Looking at the directory of a path that does not exist failed.
    DirectoryIo(io::Error),
}

/// Resolves every symlink of the absolute `path`. A path that does not exist yet resolves
/// through its directory.
pub fn resolve(path: &Path) -> Result<PathBuf, Unresolved> {
    if !path.is_absolute() {
        return Err(Unresolved::NotAbsolute);
    }
    match std::fs::symlink_metadata(path) {
        Ok(_) => std::fs::canonicalize(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Unresolved::DanglingLink,
            _ => Unresolved::Io(e),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let name = path
                .file_name()
                .filter(|n| *n != "." && *n != "..")
                .ok_or(Unresolved::NoFileName)?;
            let dir = path.parent().unwrap_or(Path::new("/"));
            let dir = std::fs::canonicalize(dir).map_err(Unresolved::DirectoryIo)?;
            if !dir.is_dir() {
                return Err(Unresolved::NotADirectory(dir));
            }
            Ok(dir.join(name))
        }
        Err(e) => Err(Unresolved::Io(e)),
    }
}

/// `path` with every symlink resolved, or as given when that fails.
pub fn canonical_or_same(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Removes a LUN's file (or anything else at its path).
pub fn remove_file(path: &Path) -> io::Result<()> {
    std::fs::remove_file(path)
}

/// The files in `dir` that nothing uses: those `ours` claims as files this array names and
/// makes itself (a caller's own files are never candidates), whose canonical path is none of
/// `used` (the paths of every LUN; canonical, because the directory may be spelled
/// differently from one start to the next). Empty when `dir` cannot be read.
pub fn leftover_files<P: AsRef<Path>>(
    dir: &Path,
    ours: impl Fn(&Path) -> bool,
    used: impl IntoIterator<Item = P>,
) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let used: std::collections::HashSet<PathBuf> = used
        .into_iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| ours(p) && !std::fs::canonicalize(p).is_ok_and(|c| used.contains(&c)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BackingStore, FileStore};

    #[test]
    fn create_file_zeroes_ends_of_a_reused_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lun");
        create_file(&p, 4 << 20, false).unwrap();
        {
            let s = FileStore::open(&p).unwrap();
            s.write_at(&vec![0xEE; 4 << 20], 0, false).unwrap();
        }
        create_file(&p, 4 << 20, true).unwrap();
        let s = FileStore::open(&p).unwrap();
        let mut b = vec![0u8; 4 << 20];
        s.read_at(&mut b, 0).unwrap();
        assert!(b[..1 << 20].iter().all(|&x| x == 0));
        assert!(
            b[1 << 20..3 << 20].iter().all(|&x| x == 0xEE),
            "middle kept"
        );
        assert!(b[3 << 20..].iter().all(|&x| x == 0));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    /// The one zeroing routine: the ends of a file larger than two [`ZERO_LEN`], and all of a
    /// smaller one, through a pinned descriptor; nothing in between, and the size is kept.
    #[test]
    fn wipe_zeroes_the_ends_and_only_those() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        for (size, kept) in [(4u64 << 20, (1usize << 20)..(3 << 20)), (1 << 20, 0..0)] {
            let p = root.join(format!("{size}.img"));
            std::fs::write(&p, vec![0xEE; size as usize]).unwrap();
            let seen = look(&p).unwrap();
            assert_eq!((seen.node(), seen.len()), (Some(Node::File), size));
            let f = pin(&p, Node::File, seen.identity(Node::File), true).unwrap();
            wipe(&f, size).unwrap();
            let now = std::fs::read(&p).unwrap();
            assert_eq!(now.len() as u64, size);
            for (i, &b) in now.iter().enumerate() {
                let want = if kept.contains(&i) { 0xEE } else { 0 };
                assert_eq!(b, want, "byte {i} of a {size}-byte file");
            }
        }
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
        let id = identity(&p, Node::File).unwrap();
        pin(&p, Node::File, id, true).unwrap();
        // Through a link it is not the judged path, even to the same file.
        let link = p.with_extension("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(pin(&link, Node::File, id, false).is_err(), "a link");
        // The judged file is moved aside (kept, so its inode number cannot be reused by the
        // new file, as it can be after an unlink) and another file takes its name.
        std::fs::rename(&p, p.with_extension("old")).unwrap();
        std::fs::write(&p, vec![0u8; 8192]).unwrap();
        assert_eq!(
            pin(&p, Node::File, id, true).unwrap_err().kind(),
            io::ErrorKind::PermissionDenied,
            "another inode"
        );
        // create_new does not follow a link planted at the name either.
        let planted = p.with_extension("planted");
        std::os::unix::fs::symlink(root_of(&d).join("target"), &planted).unwrap();
        assert!(create_new(&planted, 4096).is_err());
        assert!(
            !root_of(&d).join("target").exists(),
            "created through a link"
        );
    }

    fn root_of(d: &tempfile::TempDir) -> PathBuf {
        std::fs::canonicalize(d.path()).unwrap()
    }

    #[test]
    fn resolve_follows_links_and_refuses_dangling_ones() {
        let d = tempfile::tempdir().unwrap();
        let root = root_of(&d);
        std::fs::write(root.join("real"), b"x").unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("link")).unwrap();
        std::os::unix::fs::symlink(root.join("nowhere/x"), root.join("dangling")).unwrap();
        assert_eq!(resolve(&root.join("link")).unwrap(), root.join("real"));
        // A new name resolves through its directory.
        std::os::unix::fs::symlink(&root, root.join("dirlink")).unwrap();
        assert_eq!(
            resolve(&root.join("dirlink/new.img")).unwrap(),
            root.join("new.img")
        );
        assert!(matches!(
            resolve(&root.join("dangling")),
            Err(Unresolved::DanglingLink)
        ));
        assert!(matches!(
            resolve(Path::new("relative.img")),
            Err(Unresolved::NotAbsolute)
        ));
        assert!(matches!(
            resolve(&root.join("missing/new.img")),
            Err(Unresolved::DirectoryIo(_))
        ));
        // Under a file: the kernel answers ENOTDIR for the path itself.
        assert!(matches!(
            resolve(&root.join("real/new.img")),
            Err(Unresolved::Io(_))
        ));
        assert!(matches!(
            resolve(&root.join("missing/..")),
            Err(Unresolved::NoFileName)
        ));
    }

    #[test]
    fn allocate_space_and_private_dir() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("luns");
        make_private_dir(&dir).unwrap();
        make_private_dir(&dir).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let p = dir.join("a.img");
        create_file(&p, 1 << 20, false).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().blocks(), 0, "sparse");
        allocate(&p, 0, 1 << 20).unwrap();
        assert!(std::fs::metadata(&p).unwrap().blocks() * 512 >= 1 << 20);
        let (total, avail) = space(&dir).unwrap();
        assert!(total > 0 && avail <= total, "{total} {avail}");
        assert!(space(&d.path().join("missing")).is_err());
        assert!(allocate(&d.path().join("missing"), 0, 1).is_err());
    }

    /// Leftovers: only files the caller claims as its own, not used by any path (compared
    /// canonically, so a link or another spelling of a used path keeps it).
    #[test]
    fn rename_in_never_replaces_a_file() {
        let d = tempfile::tempdir().unwrap();
        let ext = d.path().join("vds-extents");
        let dir = open_private_dir(&ext).unwrap();
        create_new_in(&dir, "a", 4096).unwrap();
        create_new_in(&dir, "b", 8192).unwrap();
        let e = rename_in(&dir, "a", "b").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::metadata(ext.join("b")).unwrap().len(), 8192);
        rename_in(&dir, "a", "c").unwrap();
        assert!(!ext.join("a").exists());
        assert_eq!(std::fs::metadata(ext.join("c")).unwrap().len(), 4096);
        assert!(rename_in(&dir, "c", "../c").is_err(), "one name, no path");
    }

    #[test]
    fn leftover_files_are_the_claimed_ones_nothing_uses() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("luns");
        make_private_dir(&dir).unwrap();
        for n in ["used.img", "spelled.img", "left.img", "other.txt"] {
            std::fs::write(dir.join(n), b"").unwrap();
        }
        let ours = |p: &Path| p.extension().is_some_and(|x| x == "img");
        let used = [
            dir.join("used.img"),
            d.path().join("luns/../luns/spelled.img"),
        ];
        let left = leftover_files(&dir, ours, &used);
        assert_eq!(left, vec![dir.join("left.img")]);
        assert!(leftover_files(&d.path().join("missing"), ours, &used).is_empty());
        remove_file(&left[0]).unwrap();
        assert!(leftover_files(&dir, ours, &used).is_empty());
    }
}
