//! A drive's vds label (BEHAVIOUR.md §15): what makes a directory or a block device a vds
//! drive, recognised after a restart, a renamed device node or a Reenumerate.
//!
//! The label is [`LABEL_LEN`] bytes: the magic `VDSDRIVE`, the format version (u32 LE), the
//! drive's id and its subsystem's id (16 bytes each) and the CRC-32C of everything before it
//! (u32 LE). A `dir` drive keeps it in the file `<dir>/.vds-drive`; a `block` drive at the
//! start of its label area, the first [`LABEL_AREA`] bytes of the device (or of the regular
//! file standing in for one), which vds writes whole (label, then zeros) and never lends to an
//! extent. A device is opened `O_EXCL`, so a mounted or otherwise claimed one is refused.
//!
//! Only the I/O lives here; which path may become a drive is the provider's policy.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::sync_parent_dir;

/// Bytes at the start of a `block` drive that hold its label and no extent.
pub const LABEL_AREA: u64 = 1 << 20;

/// Bytes of a label.
pub const LABEL_LEN: usize = 48;

/// The label file of a `dir` drive.
pub const DIR_LABEL_FILE: &str = ".vds-drive";

const MAGIC: &[u8; 8] = b"VDSDRIVE";
const VERSION: u32 = 1;

/// Where a drive keeps its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Medium {
    /// A directory: the label is a file in it.
    Dir,
    /// A block device or a regular file: the label is at its start.
    Block,
}

/// A drive's label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label {
    /// The drive's id.
    pub drive: [u8; 16],
    /// Its subsystem's id.
    pub subsystem: [u8; 16],
}

impl Label {
    /// The label's bytes.
    pub fn encode(&self) -> [u8; LABEL_LEN] {
        let mut b = [0u8; LABEL_LEN];
        b[..8].copy_from_slice(MAGIC);
        b[8..12].copy_from_slice(&VERSION.to_le_bytes());
        b[12..28].copy_from_slice(&self.drive);
        b[28..44].copy_from_slice(&self.subsystem);
        let crc = crc32c::crc32c(&b[..44]);
        b[44..48].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes a label: `None` unless magic, version and CRC are all right.
    pub fn decode(b: &[u8]) -> Option<Label> {
        if b.len() < LABEL_LEN || &b[..8] != MAGIC {
            return None;
        }
        let version = u32::from_le_bytes(b[8..12].try_into().ok()?);
        let crc = u32::from_le_bytes(b[44..48].try_into().ok()?);
        if version != VERSION || crc != crc32c::crc32c(&b[..44]) {
            return None;
        }
        Some(Label {
            drive: b[12..28].try_into().ok()?,
            subsystem: b[28..44].try_into().ok()?,
        })
    }
}

/// What is where a label would be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// A vds label.
    Label(Label),
    /// Nothing: no label file (dir), or a label area of zeros (block).
    Blank,
    /// Something else: another program's data, or a damaged label.
    Foreign,
}

/// Why a label was not written.
#[derive(Debug)]
pub enum Refused {
    /// What is there is not blank and not this drive's label, and `force` was not given.
    NotBlank(Found),
    /// The path is not what the medium needs (a directory; a regular file or block device of
    /// more than the label area).
    WrongNode(String),
    /// The I/O failed.
    Io(io::Error),
}

impl From<io::Error> for Refused {
    fn from(e: io::Error) -> Refused {
        Refused::Io(e)
    }
}

fn label_file(dir: &Path) -> PathBuf {
    dir.join(DIR_LABEL_FILE)
}

/// Opens a block drive: read-write, no symlink followed, `O_EXCL` for a device (refused while
/// mounted or claimed by another exclusive opener).
fn open_block(path: &Path) -> io::Result<File> {
    let md = std::fs::symlink_metadata(path)?;
    let mut flags = libc::O_NOFOLLOW | libc::O_CLOEXEC;
    if md.file_type().is_block_device() {
        flags |= libc::O_EXCL;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(flags)
        .open(path)
}

/// The bytes a `block` drive offers after its label area (a device's size, a file's length,
/// less [`LABEL_AREA`]), or why it cannot be one.
pub fn block_capacity(path: &Path) -> Result<u64, Refused> {
    let md = std::fs::metadata(path)?;
    let ft = md.file_type();
    let size = if ft.is_block_device() {
        crate::lifecycle::device_size(path)?
    } else if ft.is_file() {
        md.len()
    } else {
        return Err(Refused::WrongNode(format!(
            "{} is neither a block device nor a regular file",
            path.display()
        )));
    };
    if size <= LABEL_AREA {
        return Err(Refused::WrongNode(format!(
            "{} is {size} bytes: a block drive needs more than its {LABEL_AREA}-byte label area",
            path.display()
        )));
    }
    Ok(size - LABEL_AREA)
}

/// Reads what is where the label of a drive at `path` would be.
pub fn read(path: &Path, medium: Medium) -> io::Result<Found> {
    match medium {
        Medium::Dir => {
            let mut b = Vec::new();
            match File::open(label_file(path)) {
                Ok(f) => {
                    f.take(LABEL_LEN as u64 + 1).read_to_end(&mut b)?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Blank),
                Err(e) => return Err(e),
            }
            Ok(match Label::decode(&b) {
                Some(l) if b.len() == LABEL_LEN => Found::Label(l),
                _ => Found::Foreign,
            })
        }
        Medium::Block => {
            let f = File::open(path)?;
            let len = usize::try_from(LABEL_AREA).unwrap_or(usize::MAX);
            let mut b = vec![0u8; len];
            let mut got = 0;
            while got < b.len() {
                match f.read_at(&mut b[got..], got as u64)? {
                    0 => break,
                    n => got += n,
                }
            }
            b.truncate(got);
            if let Some(l) = Label::decode(&b) {
                if b[LABEL_LEN..].iter().all(|&x| x == 0) {
                    return Ok(Found::Label(l));
                }
            }
            Ok(if b.iter().all(|&x| x == 0) {
                Found::Blank
            } else {
                Found::Foreign
            })
        }
    }
}

/// The label of a candidate for a `block` drive that moved to another node, if it carries one
/// whole: opened read-only, never `O_EXCL` (looking must not claim anything), never through a
/// link, non-blocking (a drive with no medium answers at once), and at most the label area
/// read. Anything but a regular file or block device of more than the label area is `None`.
pub fn read_candidate(path: &Path) -> io::Result<Option<Label>> {
    use std::io::Seek;
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let ft = f.metadata()?.file_type();
    if !ft.is_block_device() && !ft.is_file() {
        return Ok(None);
    }
    if f.seek(io::SeekFrom::End(0))? <= LABEL_AREA {
        return Ok(None);
    }
    let mut b = vec![0u8; usize::try_from(LABEL_AREA).unwrap_or(usize::MAX)];
    f.read_exact_at(&mut b, 0)?;
    Ok(match Label::decode(&b) {
        Some(l) if b[LABEL_LEN..].iter().all(|&x| x == 0) => Some(l),
        _ => None,
    })
}

/// Writes `label` as the drive at `path`, durably. Refused when what is there is neither blank
/// nor already this drive's label, unless `force`. A `block` drive's whole label area is
/// written (the label, then zeros).
pub fn write(path: &Path, medium: Medium, label: &Label, force: bool) -> Result<(), Refused> {
    match medium {
        Medium::Dir => {
            if !std::fs::metadata(path)?.is_dir() {
                return Err(Refused::WrongNode(format!(
                    "{} is not a directory",
                    path.display()
                )));
            }
        }
        Medium::Block => {
            block_capacity(path)?;
        }
    }
    let found = read(path, medium)?;
    let ours = found == Found::Label(*label);
    if !ours && found != Found::Blank && !force {
        return Err(Refused::NotBlank(found));
    }
    match medium {
        Medium::Dir => {
            // Written beside, then renamed over: a crash leaves the old label or the new one.
            let tmp = path.join(format!("{DIR_LABEL_FILE}.tmp"));
            let _ = std::fs::remove_file(&tmp);
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&tmp)?;
            f.write_all(&label.encode())?;
            f.sync_all()?;
            std::fs::rename(&tmp, label_file(path))?;
            sync_parent_dir(&label_file(path))?;
        }
        Medium::Block => {
            let f = open_block(path)?;
            let mut area = vec![0u8; usize::try_from(LABEL_AREA).unwrap_or(usize::MAX)];
            area[..LABEL_LEN].copy_from_slice(&label.encode());
            f.write_all_at(&area, 0)?;
            f.sync_all()?;
        }
    }
    Ok(())
}

/// Wipes the label of the drive at `path` if it is `label` (a dir drive's label file is
/// removed; a block drive's label area is zeroed). Anything else there is left alone: it is
/// not ours to wipe.
pub fn wipe(path: &Path, medium: Medium, label: &Label) -> io::Result<()> {
    if read(path, medium)? != Found::Label(*label) {
        return Ok(());
    }
    match medium {
        Medium::Dir => {
            std::fs::remove_file(label_file(path))?;
            sync_parent_dir(&label_file(path))
        }
        Medium::Block => {
            let f = open_block(path)?;
            let zeros = vec![0u8; usize::try_from(LABEL_AREA).unwrap_or(usize::MAX)];
            f.write_all_at(&zeros, 0)?;
            f.sync_all()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(n: u8) -> Label {
        Label {
            drive: [n; 16],
            subsystem: [7; 16],
        }
    }

    #[test]
    fn a_label_round_trips_and_a_damaged_one_is_foreign() {
        let l = label(1);
        let b = l.encode();
        assert_eq!(Label::decode(&b), Some(l));
        for i in 0..LABEL_LEN {
            let mut bad = b;
            bad[i] ^= 0x40;
            assert_eq!(Label::decode(&bad), None, "byte {i} flipped");
        }
    }

    #[test]
    fn a_dir_drive_is_labelled_recognised_refused_when_foreign_and_wiped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        assert_eq!(read(p, Medium::Dir).unwrap(), Found::Blank);
        write(p, Medium::Dir, &label(1), false).unwrap();
        assert_eq!(read(p, Medium::Dir).unwrap(), Found::Label(label(1)));
        // Rewriting its own label is fine; another drive's label needs force.
        write(p, Medium::Dir, &label(1), false).unwrap();
        assert!(matches!(
            write(p, Medium::Dir, &label(2), false),
            Err(Refused::NotBlank(Found::Label(_)))
        ));
        // Wiping with the wrong label leaves it; with the right one removes it.
        wipe(p, Medium::Dir, &label(2)).unwrap();
        assert_eq!(read(p, Medium::Dir).unwrap(), Found::Label(label(1)));
        write(p, Medium::Dir, &label(2), true).unwrap();
        wipe(p, Medium::Dir, &label(2)).unwrap();
        assert_eq!(read(p, Medium::Dir).unwrap(), Found::Blank);
        std::fs::write(p.join(DIR_LABEL_FILE), b"something else").unwrap();
        assert_eq!(read(p, Medium::Dir).unwrap(), Found::Foreign);
        assert!(matches!(
            write(p, Medium::Dir, &label(1), false),
            Err(Refused::NotBlank(Found::Foreign))
        ));
        let file = p.join("f");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(
            write(&file, Medium::Dir, &label(1), false),
            Err(Refused::WrongNode(_))
        ));
    }

    #[test]
    fn a_candidate_is_read_without_claiming_it_and_only_a_whole_label_counts() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("disk");
        File::create(&p).unwrap().set_len(2 * LABEL_AREA).unwrap();
        assert_eq!(read_candidate(&p).unwrap(), None);
        write(&p, Medium::Block, &label(4), false).unwrap();
        assert_eq!(read_candidate(&p).unwrap(), Some(label(4)));
        // Something after the label in the label area: not a vds label.
        File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .write_all_at(b"x", 4096)
            .unwrap();
        assert_eq!(read_candidate(&p).unwrap(), None);
        // Too small to be a drive, a directory, a link: never a candidate.
        let small = dir.path().join("small");
        std::fs::write(&small, label(4).encode()).unwrap();
        assert_eq!(read_candidate(&small).unwrap(), None);
        assert_eq!(read_candidate(dir.path()).unwrap(), None);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(read_candidate(&link).is_err());
    }

    #[test]
    fn a_block_drive_on_a_file_keeps_its_label_in_the_first_mib() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("disk");
        let f = File::create(&p).unwrap();
        f.set_len(4 * LABEL_AREA).unwrap();
        assert_eq!(block_capacity(&p).unwrap(), 3 * LABEL_AREA);
        assert_eq!(read(&p, Medium::Block).unwrap(), Found::Blank);
        write(&p, Medium::Block, &label(3), false).unwrap();
        assert_eq!(read(&p, Medium::Block).unwrap(), Found::Label(label(3)));
        // Anything non-zero in the label area makes it foreign.
        f.write_all_at(&[1], LABEL_AREA - 1).unwrap();
        assert_eq!(read(&p, Medium::Block).unwrap(), Found::Foreign);
        assert!(matches!(
            write(&p, Medium::Block, &label(3), false),
            Err(Refused::NotBlank(Found::Foreign))
        ));
        write(&p, Medium::Block, &label(3), true).unwrap();
        assert_eq!(read(&p, Medium::Block).unwrap(), Found::Label(label(3)));
        // Data after the label area is not the label's business.
        f.write_all_at(&[9], LABEL_AREA).unwrap();
        assert_eq!(read(&p, Medium::Block).unwrap(), Found::Label(label(3)));
        wipe(&p, Medium::Block, &label(3)).unwrap();
        assert_eq!(read(&p, Medium::Block).unwrap(), Found::Blank);
        // Too small to hold the label area and an extent.
        f.set_len(LABEL_AREA).unwrap();
        assert!(matches!(block_capacity(&p), Err(Refused::WrongNode(_))));
    }
}
