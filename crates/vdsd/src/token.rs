//! The API's bearer token when the config file gives none (BEHAVIOUR.md §11): 32 random bytes,
//! hex, in `<data-dir>/api-token`, mode 0600, generated on first start and kept after.

use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The file name in the data dir (`vdsctl` and the scripts read the same file).
pub const TOKEN_FILE: &str = "api-token";

/// The token in `<data_dir>/api-token`, created first if there is none.
pub fn load_or_create(data_dir: &Path) -> Result<String, String> {
    let path = data_dir.join(TOKEN_FILE);
    match read(&path) {
        Ok(t) => return Ok(t),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: {e}", path.display())),
    }
    create(data_dir, &path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    read(&path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads the token file, refusing one that others may read or that holds no usable token.
fn read(path: &Path) -> io::Result<String> {
    // O_NOFOLLOW: the token is never read through a link someone else placed.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let md = f.metadata()?;
    if !md.file_type().is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "is not a regular file",
        ));
    }
    if md.mode() & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "mode {:o} lets other users read the API token (chmod 600 it)",
                md.mode() & 0o777
            ),
        ));
    }
    let text = io::read_to_string(io::Read::take(f, 4096))?;
    let token = text.trim();
    if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "does not hold a token (at least 16 printable characters); delete it to have a new one generated",
        ));
    }
    Ok(token.to_string())
}

/// Writes a new token: into a temporary file created with mode 0600 (never wider, not even for
/// a moment), synced, then linked to its name, so the name never shows a partial token; a
/// daemon racing us keeps whichever token was linked first.
fn create(data_dir: &Path, path: &Path) -> io::Result<()> {
    std::fs::create_dir_all(data_dir)?;
    let tmp: PathBuf = data_dir.join(format!(".{TOKEN_FILE}.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    let token = generate()?;
    let linked = (|| {
        f.write_all(format!("{token}\n").as_bytes())?;
        f.sync_all()?;
        match std::fs::hard_link(&tmp, path) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
            _ => Ok(()),
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    linked?;
    std::fs::File::open(data_dir)?.sync_all()
}

/// 32 bytes from the kernel's random source, as 64 hex digits.
fn generate() -> io::Result<String> {
    let mut b = [0u8; 32];
    let mut got = 0;
    while got < b.len() {
        // SAFETY: getrandom writes at most `len - got` bytes into the buffer slice it is given.
        let n = unsafe { libc::getrandom(b[got..].as_mut_ptr().cast(), b.len() - got, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        got += n as usize;
    }
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_0600_random_and_kept() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("data");
        let t = load_or_create(&dir).unwrap();
        assert_eq!(t.len(), 64);
        assert!(t.bytes().all(|b| b.is_ascii_hexdigit()));
        let md = std::fs::metadata(dir.join(TOKEN_FILE)).unwrap();
        assert_eq!(md.mode() & 0o777, 0o600);
        assert_eq!(load_or_create(&dir).unwrap(), t, "kept across starts");
        let other = tempfile::tempdir().unwrap();
        assert_ne!(load_or_create(other.path()).unwrap(), t);
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn a_token_others_can_read_or_an_empty_one_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(TOKEN_FILE);
        std::fs::write(&p, "0123456789abcdef0123\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_or_create(d.path()).unwrap_err();
        assert!(e.contains("chmod 600"), "{e}");
        assert!(
            !e.contains("0123456789abcdef"),
            "never shows the token: {e}"
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(load_or_create(d.path()).unwrap(), "0123456789abcdef0123");
        std::fs::write(&p, "\n").unwrap();
        assert!(load_or_create(d.path()).is_err());
    }
}
