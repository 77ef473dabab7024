//! LUNs on RBD images (docs/SCALEOUT.md, BEHAVIOUR.md "RBD LUNs"): `backing: {"kind": "rbd",
//! "pool": P, "image": I}` on a daemon started with `--ceph-conf`. The image is created when
//! it does not exist (vds owns it and removes it with the LUN) and adopted as it is when it
//! does (its size is the LUN's; deleting the LUN leaves it). The LUN's `backing.path` is
//! `pool/image`; nothing about it is a filesystem path.

use std::io;

use vds_model::{BackingKind, Hresult, Lun};

use crate::command::BackingSpec;
use crate::VdsError;

/// Longest pool or image name taken (RADOS object names allow more; 255 is what rbd's CLI
/// and every peer use in practice).
const NAME_MAX: usize = 255;

pub(crate) fn check_name(field: &str, v: Option<&str>) -> Result<String, VdsError> {
    let Some(v) = v else {
        return Err(VdsError::invalid_arg(
            field,
            "required for an rbd backing store",
        ));
    };
    if v.is_empty() || v.len() > NAME_MAX {
        return Err(VdsError::invalid_arg(
            field,
            format!("must be 1 to {NAME_MAX} bytes"),
        ));
    }
    // `/` separates pool and image in the LUN's path, `@` names a snapshot in librbd's specs.
    if let Some(c) = v
        .chars()
        .find(|c| c.is_control() || c.is_whitespace() || matches!(c, '/' | '@'))
    {
        return Err(VdsError::invalid_arg(
            field,
            format!("{v:?} holds {c:?}, which an RBD pool or image name cannot"),
        ));
    }
    Ok(v.to_string())
}

/// Checks an `rbd` backing request: pool and image well formed, no path, nothing to wipe, and
/// a cluster to hold it. Answers the LUN's `backing.path`, `pool/image`. For any other kind,
/// refuses `pool` and `image`.
pub(crate) fn check(b: &BackingSpec) -> Result<Option<String>, VdsError> {
    if b.kind != BackingKind::Rbd {
        if b.pool.is_some() || b.image.is_some() {
            return Err(VdsError::invalid_arg(
                if b.pool.is_some() {
                    "backing.pool"
                } else {
                    "backing.image"
                },
                format!("only for an rbd backing store, not {}", b.kind.short_name()),
            ));
        }
        return Ok(None);
    }
    if b.path.is_some() {
        return Err(VdsError::invalid_arg(
            "backing.path",
            "an rbd backing store is named by pool and image",
        ));
    }
    if b.wipe {
        return Err(VdsError::invalid_arg(
            "backing.wipe",
            "an adopted RBD image is used as it is",
        ));
    }
    let pool = check_name("backing.pool", b.pool.as_deref())?;
    let image = check_name("backing.image", b.image.as_deref())?;
    cluster()?;
    Ok(Some(format!("{pool}/{image}")))
}

/// The daemon's cluster, or `VDS_E_NOT_SUPPORTED` saying how to get one.
fn cluster() -> Result<std::sync::Arc<vds_backstore::rbd::Cluster>, VdsError> {
    vds_backstore::rbd::cluster()
        .map_err(|e| VdsError::not_supported(format!("backing.kind rbd: {e}")))
}

/// `pool/image` → (pool, image).
pub(crate) fn split(path: &str) -> io::Result<(&str, &str)> {
    path.split_once('/').ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{path:?} is not pool/image"),
        )
    })
}

/// The size of the image at `path` if it exists.
pub(crate) fn existing_size(path: &str) -> Result<Option<u64>, VdsError> {
    let c = cluster()?;
    let (pool, image) = split(path).map_err(|e| VdsError::io("backing", &e))?;
    match c.open_image(pool, image) {
        Ok(s) => Ok(Some(vds_backstore::BackingStore::size(&s))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // A pool that does not exist is the caller's error, not an image to create.
            c.pool_exists(pool)
                .map_err(|e| VdsError::io(format!("backing.pool {pool}"), &e))?
                .then_some(None)
                .ok_or_else(|| {
                    VdsError::new(
                        Hresult::VDS_E_OBJECT_NOT_FOUND,
                        format!("backing.pool: Ceph has no pool {pool:?}"),
                    )
                })
        }
        Err(e) => Err(VdsError::io(format!("backing {path}"), &e)),
    }
}

/// Creates the image of a new LUN (`size_bytes` bytes).
pub(crate) fn create(lun: &Lun) -> io::Result<()> {
    let path = lun.backing.path.as_deref().unwrap_or_default();
    let (pool, image) = split(path)?;
    let cluster = vds_backstore::rbd::cluster()?;
    cluster.create_image(pool, image, lun.size_bytes)?;
    if lun.load_balance == vds_model::LoadBalancePolicy::RoundRobin {
        // Active/active (docs/SCALEOUT.md): every gateway writes and reads the image, so none
        // may serve a read from a cache another gateway's write made stale. Set before any
        // gateway opens it; an image that cannot be made so is not used.
        if let Err(e) = cluster.set_image_metadata(pool, image, "conf_rbd_cache", "false") {
            let _ = cluster.remove_image(pool, image);
            return Err(e);
        }
    }
    Ok(())
}

/// Removes the image vds created for a LUN.
pub(crate) fn remove(lun: &Lun) -> io::Result<()> {
    let path = lun.backing.path.as_deref().unwrap_or_default();
    let (pool, image) = split(path)?;
    vds_backstore::rbd::cluster()?.remove_image(pool, image)
}

/// How long a deleted LUN's image waits for its last handle to close before it is left.
const REMOVE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// The images of deleted LUNs not yet removed (`pool/image`): a new LUN may not take one, or
/// the removal would take its storage away later.
static REMOVING: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Whether the image at `path` is waiting to be removed.
pub(crate) fn being_removed(path: &str) -> bool {
    REMOVING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|p| p == path)
}

/// Removes a deleted LUN's image on a thread of its own, once the handles the data path still
/// holds (a command in flight, a connection yet to see the new view) are closed: librbd
/// refuses to remove an image that is open (`EBUSY`). Bounded by [`REMOVE_PATIENCE`]; an
/// image still open then is left, and said so in the log.
pub(crate) fn remove_when_closed(lun: Lun) {
    let path = lun.backing.path.clone().unwrap_or_default();
    REMOVING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(path.clone());
    let done = move || {
        REMOVING
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|p| *p != path);
    };
    let run = move || {
        let start = std::time::Instant::now();
        loop {
            match remove(&lun) {
                Ok(()) => return done(),
                Err(e)
                    if e.raw_os_error() == Some(libc::EBUSY)
                        && start.elapsed() < REMOVE_PATIENCE =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(err) => {
                    tracing::warn!(lun = %lun.id, image = lun.backing.path.as_deref().unwrap_or_default(), error = %err, "could not remove the deleted LUN's RBD image");
                    return done();
                }
            }
        }
    };
    if let Err(err) = std::thread::Builder::new()
        .name("vds-rbd-remove".into())
        .spawn(run)
    {
        tracing::warn!(error = %err, "could not start the thread that removes an RBD image");
    }
}
