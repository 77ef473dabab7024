//! RBD images as backing stores (docs/SCALEOUT.md): a LUN's blocks in a Ceph pool, read and
//! written through librbd (`vds-rbd-sys`, loaded at run time).
//!
//! [`Cluster`] is one RADOS client connection (a `ceph.conf` and a client name), shared by
//! every image a daemon opens; [`RbdStore`] is one open image.
//!
//! The data path reaches an image through librbd's asynchronous calls ([`AioStore`]): the
//! I/O thread submits (`rbd_aio_*`), librbd's own thread runs the completion callback, which
//! only hands the result on (the connection's task is woken; nothing waits). Every `try_`
//! method answers `WouldBlock`; the synchronous calls (`rbd_read2`, ...) serve the commands
//! that run on the blocking pool.
//!
//! How SCSI maps onto librbd: READ/WRITE → `rbd_aio_read2`/`rbd_aio_write2`; FUA and
//! SYNCHRONIZE CACHE → `rbd_aio_flush`; COMPARE AND WRITE → `rbd_aio_compare_and_write`;
//! WRITE SAME → `rbd_aio_writesame`; UNMAP → `rbd_discard`/`rbd_aio_discard`, with
//! `rbd_skip_partial_discard` off so that a discard smaller than the object granularity still
//! reads back as zeroes (LBPRZ holds); resize → `rbd_resize2`, and a resize by another client
//! is seen through `rbd_update_watch` ([`BackingStore::resized_elsewhere`]). RBD is thin:
//! every image is sparse until written.

use std::ffi::{c_char, c_void, CString};
use std::io;
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use vds_rbd_sys::{ceph, rados_ioctx_t, rados_t, rbd_completion_t, rbd_image_t, Ceph};

use crate::aio::{AioBufs, AioDone, AioError, AioOp, AioStore};
use crate::{check_range, would_block, BackingStore};

/// A negative errno from librbd/librados as an `io::Error` naming the call; `EBLOCKLISTED`
/// (this client is fenced) is [`crate::fence::fenced`], never a plain I/O error.
pub(crate) fn check(r: i64, what: &str) -> io::Result<i64> {
    if r == -i64::from(crate::fence::EBLOCKLISTED) {
        return Err(crate::fence::fenced(what));
    }
    if r < 0 {
        let e = io::Error::from_raw_os_error(i32::try_from(-r).unwrap_or(libc::EIO));
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    } else {
        Ok(r)
    }
}

pub(crate) fn cstr(s: &str, what: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} {s:?} holds a NUL byte"),
        )
    })
}

fn api() -> io::Result<&'static Ceph> {
    ceph().map_err(io::Error::other)
}

/// The daemon's cluster: one per process, set once by [`connect`] (vdsd's `--ceph-conf`).
static CLUSTER: std::sync::OnceLock<Arc<Cluster>> = std::sync::OnceLock::new();

/// Connects the daemon to its Ceph cluster; every `rbd` store is opened through it. Later
/// calls answer the cluster already connected.
pub fn connect(conf: &Path, client: &str) -> io::Result<Arc<Cluster>> {
    if let Some(c) = CLUSTER.get() {
        return Ok(c.clone());
    }
    let c = Cluster::connect(conf, client)?;
    Ok(CLUSTER.get_or_init(|| c).clone())
}

/// The daemon's cluster, or why there is none.
pub fn cluster() -> io::Result<Arc<Cluster>> {
    CLUSTER.get().cloned().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::Unsupported,
            "no Ceph cluster is configured (start vdsd with --ceph-conf)",
        )
    })
}

/// One connection to a Ceph cluster (a RADOS client), shared by the images opened through it.
pub struct Cluster {
    pub(crate) api: &'static Ceph,
    pub(crate) handle: rados_t,
}

// SAFETY: a connected `rados_t` may be used from any thread at once (librados is thread-safe);
// it is only shut down in `Drop`, when no other reference exists.
unsafe impl Send for Cluster {}
// SAFETY: as for `Send`: every call librados offers on a `rados_t` is thread-safe.
unsafe impl Sync for Cluster {}

impl Cluster {
    /// Connects as `client` (e.g. `client.admin`) with the configuration file `conf`.
    pub fn connect(conf: &Path, client: &str) -> io::Result<Arc<Cluster>> {
        let api = api()?;
        let name = cstr(client, "client name")?;
        let conf_c = cstr(&conf.display().to_string(), "ceph.conf path")?;
        let mut handle: rados_t = ptr::null_mut();
        // SAFETY: `handle` is a valid out-pointer; the strings outlive the call.
        let r = unsafe { api.rados_create2(&mut handle, c"ceph".as_ptr(), name.as_ptr(), 0) };
        check(r.into(), "rados_create2")?;
        // From here `cluster` owns the handle and shuts it down on any error.
        let cluster = Cluster { api, handle };
        // SAFETY: a created handle and a NUL-terminated path.
        let r = unsafe { api.rados_conf_read_file(handle, conf_c.as_ptr()) };
        check(r.into(), &format!("reading {}", conf.display()))?;
        // A discard must read back as zeroes even below the object granularity (LBPRZ).
        cluster.set("rbd_skip_partial_discard", "false")?;
        cluster.set("rbd_discard_granularity_bytes", "4096")?;
        // A cluster that does not answer fails the start in seconds, not librados's 5 minutes.
        cluster.set("client_mount_timeout", "15")?;
        // A monitor command (pool figures, PG states) that gets no answer fails in seconds.
        cluster.set("rados_mon_op_timeout", "10")?;
        // SAFETY: a configured handle, connected once.
        let r = unsafe { api.rados_connect(handle) };
        check(
            r.into(),
            &format!("connecting to the cluster of {}", conf.display()),
        )?;
        Ok(Arc::new(cluster))
    }

    fn set(&self, option: &str, value: &str) -> io::Result<()> {
        let (o, v) = (cstr(option, "option")?, cstr(value, "value")?);
        // SAFETY: a created handle and NUL-terminated strings that outlive the call.
        let r = unsafe { self.api.rados_conf_set(self.handle, o.as_ptr(), v.as_ptr()) };
        check(r.into(), &format!("setting {option}")).map(|_| ())
    }

    pub(crate) fn ioctx(&self, pool: &str) -> io::Result<IoCtx> {
        let p = cstr(pool, "pool")?;
        let mut io: rados_ioctx_t = ptr::null_mut();
        // SAFETY: a connected handle, a NUL-terminated pool name, a valid out-pointer.
        let r = unsafe {
            self.api
                .rados_ioctx_create(self.handle, p.as_ptr(), &mut io)
        };
        check(r.into(), &format!("opening pool {pool}"))?;
        Ok(IoCtx { api: self.api, io })
    }

    /// Whether the pool `pool` exists.
    pub fn pool_exists(&self, pool: &str) -> io::Result<bool> {
        let p = cstr(pool, "pool")?;
        // SAFETY: a connected handle and a NUL-terminated pool name.
        let r = unsafe { self.api.rados_pool_lookup(self.handle, p.as_ptr()) };
        match check(r, &format!("looking up pool {pool}")) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Creates the image `pool/name` of `size` bytes (sparse). An image that exists answers
    /// `AlreadyExists`.
    pub fn create_image(&self, pool: &str, name: &str, size: u64) -> io::Result<()> {
        let io = self.ioctx(pool)?;
        let n = cstr(name, "image")?;
        // 4 MiB objects, the RBD default.
        let mut order: std::ffi::c_int = 22;
        // SAFETY: an open ioctx, a NUL-terminated name and a valid `order` pointer.
        let r = unsafe { self.api.rbd_create(io.io, n.as_ptr(), size, &mut order) };
        check(r.into(), &format!("creating image {pool}/{name}")).map(|_| ())
    }

    /// Sets the image `pool/name`'s metadata `key` to `value` (`conf_<option>` keys override
    /// that librbd option for every client that opens the image afterwards).
    pub fn set_image_metadata(
        &self,
        pool: &str,
        name: &str,
        key: &str,
        value: &str,
    ) -> io::Result<()> {
        let io = self.ioctx(pool)?;
        let n = cstr(name, "image")?;
        let k = cstr(key, "metadata key")?;
        let v = cstr(value, "metadata value")?;
        let mut image: rbd_image_t = ptr::null_mut();
        // SAFETY: an open ioctx, a NUL-terminated name, a valid out-pointer; no snapshot.
        let r = unsafe {
            self.api
                .rbd_open(io.io, n.as_ptr(), &mut image, ptr::null())
        };
        check(r.into(), &format!("opening image {pool}/{name}"))?;
        // SAFETY: an open image; NUL-terminated key and value, only read.
        let r = unsafe { self.api.rbd_metadata_set(image, k.as_ptr(), v.as_ptr()) };
        // SAFETY: opened above, closed once.
        unsafe { self.api.rbd_close(image) };
        check(r.into(), &format!("setting {key} of image {pool}/{name}")).map(|_| ())
    }

    /// Removes the image `pool/name` and its data. An image still open somewhere (a watcher:
    /// this daemon's own handle not yet closed, or another client's) answers the raw `EBUSY`.
    pub fn remove_image(&self, pool: &str, name: &str) -> io::Result<()> {
        let io = self.ioctx(pool)?;
        let n = cstr(name, "image")?;
        // SAFETY: an open ioctx and a NUL-terminated name.
        let r = unsafe { self.api.rbd_remove(io.io, n.as_ptr()) };
        if r == -libc::EBUSY {
            return Err(io::Error::from_raw_os_error(libc::EBUSY));
        }
        check(r.into(), &format!("removing image {pool}/{name}")).map(|_| ())
    }

    /// Opens the image `pool/name` as a store.
    pub fn open_image(self: &Arc<Self>, pool: &str, name: &str) -> io::Result<RbdStore> {
        let io = self.ioctx(pool)?;
        let n = cstr(name, "image")?;
        let mut image: rbd_image_t = ptr::null_mut();
        // SAFETY: an open ioctx, a NUL-terminated name, a valid out-pointer; no snapshot.
        let r = unsafe {
            self.api
                .rbd_open(io.io, n.as_ptr(), &mut image, ptr::null())
        };
        check(r.into(), &format!("opening image {pool}/{name}"))?;
        let mut store = RbdStore {
            cluster: self.clone(),
            _io: io,
            image,
            shared: Arc::new(Shared {
                api: self.api,
                size: AtomicU64::new(0),
                resized: AtomicU64::new(0),
                image: Mutex::new(Some(ImagePtr(image))),
            }),
            watch: None,
            name: format!("{pool}/{name}"),
        };
        let size = store.image_size()?;
        store.shared.size.store(size, Ordering::Relaxed);
        store.watch()?;
        Ok(store)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // SAFETY: the handle was created (and maybe connected) by `connect`; every IoCtx and
        // image holds an `Arc<Cluster>`, so none is left.
        unsafe { self.api.rados_shutdown(self.handle) };
    }
}

/// An open pool (a RADOS I/O context), destroyed on drop.
pub(crate) struct IoCtx {
    api: &'static Ceph,
    pub(crate) io: rados_ioctx_t,
}

// SAFETY: a RADOS I/O context may be used from several threads at once (librados serialises
// what it must); it is destroyed only in Drop.
unsafe impl Send for IoCtx {}
// SAFETY: as for Send.
unsafe impl Sync for IoCtx {}

impl Drop for IoCtx {
    fn drop(&mut self) {
        // SAFETY: created by `rados_ioctx_create`; an image opened in it is closed first
        // (`RbdStore`'s fields drop after its `Drop` ran).
        unsafe { self.api.rados_ioctx_destroy(self.io) };
    }
}

/// An RBD image serving a LUN.
pub struct RbdStore {
    pub(crate) image: rbd_image_t,
    /// The pool the image was opened in, which must outlive it.
    _io: IoCtx,
    pub(crate) cluster: Arc<Cluster>,
    /// What the update watch shares with the threads it starts.
    shared: Arc<Shared>,
    /// The `rbd_update_watch` handle and the argument its callback was given.
    watch: Option<(u64, *const Shared)>,
    pub(crate) name: String,
}

/// The span librbd's `rbd_aio_compare_and_write` works within.
const CAW_SECTOR: u64 = 512;

/// An image handle that may cross threads (see the `Send` of [`RbdStore`]).
struct ImagePtr(rbd_image_t);

// SAFETY: librbd's image handles may be used from any thread; this one is only used under
// `Shared::image`'s lock, which `RbdStore`'s Drop takes (and empties) before closing it.
unsafe impl Send for ImagePtr {}

/// The image's size as the data path sees it, kept by the update watch.
struct Shared {
    api: &'static Ceph,
    size: AtomicU64,
    /// Bumped each time the watch found the image resized by someone else.
    resized: AtomicU64,
    /// The open image, for the size look-ups the watch starts; `None` once it is closing.
    image: Mutex<Option<ImagePtr>>,
}

impl Shared {
    /// After a header update: the image's size, compared with the one served. Runs on a
    /// thread of its own (librbd's callback thread must not wait for a refresh it serves).
    fn refresh(&self) {
        let guard = self.image.lock();
        let Some(image) = guard.as_ref() else {
            return;
        };
        let mut size = 0u64;
        // SAFETY: the image is open while it is in `image` (Drop empties it under this lock
        // before closing); a valid out-pointer.
        let r = unsafe { self.api.rbd_get_size(image.0, &mut size) };
        if r < 0 {
            tracing::warn!(
                error = r,
                "size of an RBD image after an update notification"
            );
            return;
        }
        if self.size.swap(size, Ordering::SeqCst) != size {
            tracing::info!(size, "RBD image resized by another client");
            self.resized.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// `rbd_update_watch`'s callback: a header update (a resize among others). The size is read
/// on a new thread, since a librbd call from librbd's own notification thread may wait for
/// that thread.
extern "C" fn update_cb(arg: *mut c_void) {
    // SAFETY: `arg` is the `Arc<Shared>` pointer `watch` leaked; it stays valid until Drop
    // unwatches (which waits for running callbacks) and takes it back.
    // The thread gets a reference of its own; the watch keeps the leaked one.
    let shared = unsafe {
        Arc::increment_strong_count(arg as *const Shared);
        Arc::from_raw(arg as *const Shared)
    };
    let _ = std::thread::Builder::new()
        .name("rbd-watch".into())
        .spawn(move || shared.refresh());
}

/// The state of one asynchronous operation, owned by librbd between submit and callback.
struct AioCtx {
    api: &'static Ceph,
    bufs: AioBufs,
    done: AioDone,
    /// Where `rbd_aio_compare_and_write` puts the image offset of a miscompare.
    mismatch: u64,
    /// The operation's offset (a miscompare is reported from it).
    offset: u64,
    /// What a whole read returns.
    read_len: Option<usize>,
}

/// The offset of a miscompare from the start of the compared range, from what librbd put in
/// `mismatch_off`. Ceph 16 puts the start of the *object* plus that offset there (the
/// object-relative offset of the OSD's answer converted as if it were the object offset), not
/// the image offset of the byte that differs; later releases the image offset. The compare
/// lies inside one 512-byte sector ([`CAW_SECTOR`]) and object starts are multiples of it, so
/// an answer below the range's start is the former and its remainder in the sector is the
/// offset (exact for sector-aligned ranges, which SCSI's are).
fn mismatch_at(mismatch: u64, offset: u64) -> u64 {
    if mismatch >= offset {
        mismatch - offset
    } else {
        mismatch % CAW_SECTOR
    }
}

/// librbd's completion callback: hands the result and the buffers to the caller's `done`.
extern "C" fn aio_cb(c: rbd_completion_t, arg: *mut c_void) {
    // SAFETY: `arg` is the `AioCtx` that `submit` leaked for this completion; librbd calls
    // this once.
    let ctx = unsafe { Box::from_raw(arg.cast::<AioCtx>()) };
    // SAFETY: a completed completion, released once, here (librbd keeps its own reference
    // until the callback returns).
    let r = unsafe {
        let r = ctx.api.rbd_aio_get_return_value(c);
        ctx.api.rbd_aio_release(c);
        r
    };
    let AioCtx {
        bufs,
        done,
        mismatch,
        offset,
        read_len,
        ..
    } = *ctx;
    let result = if r == -(libc::EILSEQ as isize) {
        Err(AioError::Miscompare(mismatch_at(mismatch, offset)))
    } else if r < 0 {
        Err(AioError::Io(
            crate::fence::check_io(r as i64, "rbd aio").expect_err("a negative errno"),
        ))
    } else if read_len.is_some_and(|n| r as usize != n) {
        Err(AioError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("rbd aio read: {r} of {} bytes", read_len.unwrap_or(0)),
        )))
    } else {
        Ok(())
    };
    done(result, bufs);
}

// SAFETY: librbd serialises what it must inside an image; concurrent reads and writes on one
// `rbd_image_t` from several threads are supported. The image is closed only in `Drop`.
unsafe impl Send for RbdStore {}
// SAFETY: as for `Send`.
unsafe impl Sync for RbdStore {}

impl std::fmt::Debug for RbdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RbdStore({})", self.name)
    }
}

impl Drop for RbdStore {
    fn drop(&mut self) {
        if let Some((handle, arg)) = self.watch.take() {
            // SAFETY: the handle `rbd_update_watch` gave; unwatching waits for a callback
            // that is running, so none runs after this and the leaked `Arc` can be taken back.
            unsafe {
                self.cluster.api.rbd_update_unwatch(self.image, handle);
                drop(Arc::from_raw(arg));
            }
        }
        // A size look-up still running finishes first; later ones find no image.
        self.shared.image.lock().take();
        // SAFETY: opened by `rbd_open` and closed once; no synchronous call on it can be
        // running, since they all borrow `self`, and every aio holds the store's owner alive
        // until its callback ran (`rbd_close` also waits for librbd's in-flight I/O).
        unsafe { self.cluster.api.rbd_close(self.image) };
    }
}

impl RbdStore {
    fn api(&self) -> &'static Ceph {
        self.cluster.api
    }

    /// `pool/image`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Registers the update watch (a resize by another client is then seen).
    fn watch(&mut self) -> io::Result<()> {
        let arg = Arc::into_raw(self.shared.clone());
        let mut handle = 0u64;
        // SAFETY: an open image, a valid out-pointer, and a callback whose argument (a leaked
        // `Arc<Shared>`) stays valid until Drop unwatches.
        let r = unsafe {
            self.api().rbd_update_watch(
                self.image,
                &mut handle,
                Some(update_cb),
                arg as *mut c_void,
            )
        };
        if r < 0 {
            // SAFETY: not registered: the leaked reference comes back.
            drop(unsafe { Arc::from_raw(arg) });
            check(r.into(), &format!("watching {}", self.name))?;
        }
        self.watch = Some((handle, arg));
        Ok(())
    }

    /// Whether librbd's COMPARE AND WRITE takes `len` bytes at `offset`: it compares and
    /// writes atomically only inside one 512-byte sector (Ceph 16 answers `EINVAL` for
    /// anything wider); see [`AioStore::compare_and_write_max`].
    pub fn caw_in_one_sector(offset: u64, len: u64) -> bool {
        len > 0 && offset % CAW_SECTOR + len <= CAW_SECTOR
    }

    /// Starts `op` with the buffers of `ctx` (already sized); a negative errno if librbd
    /// refused it at once.
    fn start(&self, op: AioOp, ctx: *mut AioCtx, c: rbd_completion_t) -> i64 {
        let api = self.api();
        // SAFETY: `ctx` is live until the callback runs, which cannot happen before librbd
        // accepted the operation; its buffers are owned by it, sized for `op` by `submit`,
        // and do not move (a Vec's heap buffer stays put when the Vec moves).
        unsafe {
            let bufs = &mut (*ctx).bufs;
            let out = bufs.data_out.as_ptr().cast::<c_char>();
            match op {
                AioOp::Read { offset, len } => i64::from(api.rbd_aio_read2(
                    self.image,
                    offset,
                    len,
                    bufs.data_in.as_mut_ptr().cast::<c_char>(),
                    c,
                    0,
                )),
                AioOp::Write { offset, len } => {
                    i64::from(api.rbd_aio_write2(self.image, offset, len, out, c, 0))
                }
                AioOp::Flush => i64::from(api.rbd_aio_flush(self.image, c)),
                AioOp::CompareAndWrite { offset, len } => api.rbd_aio_compare_and_write(
                    self.image,
                    offset,
                    len,
                    out,
                    out.add(len),
                    c,
                    &mut (*ctx).mismatch,
                    0,
                ) as i64,
                AioOp::WriteSame { offset, len, block } => i64::from(api.rbd_aio_writesame(
                    self.image,
                    offset,
                    len as usize,
                    out,
                    block,
                    c,
                    0,
                )),
                AioOp::Discard { offset, len } => {
                    i64::from(api.rbd_aio_discard(self.image, offset, len, c))
                }
            }
        }
    }

    /// The buffers `op` needs, checked (and a read's made its length).
    fn prepare(&self, op: AioOp, bufs: &mut AioBufs) -> io::Result<()> {
        let size = self.size();
        let short = || {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "aio data buffer shorter than the operation",
            )
        };
        match op {
            AioOp::Read { offset, len } => {
                check_range(offset, len as u64, size)?;
                bufs.data_in.clear();
                bufs.data_in.resize(len, 0);
            }
            AioOp::Write { offset, len } => {
                check_range(offset, len as u64, size)?;
                if bufs.data_out.len() < len {
                    return Err(short());
                }
            }
            AioOp::Flush => {}
            AioOp::CompareAndWrite { offset, len } => {
                check_range(offset, len as u64, size)?;
                if bufs.data_out.len() < 2 * len {
                    return Err(short());
                }
            }
            AioOp::WriteSame { offset, len, block } => {
                check_range(offset, len, size)?;
                if block == 0 || bufs.data_out.len() < block || len % block as u64 != 0 {
                    return Err(short());
                }
            }
            AioOp::Discard { offset, len } => check_range(offset, len, size)?,
        }
        Ok(())
    }

    fn image_size(&self) -> io::Result<u64> {
        let mut size = 0u64;
        // SAFETY: an open image and a valid out-pointer.
        let r = unsafe { self.api().rbd_get_size(self.image, &mut size) };
        check(r.into(), &format!("size of {}", self.name))?;
        Ok(size)
    }

    fn whole(&self, r: isize, len: usize, what: &str) -> io::Result<()> {
        let n = crate::fence::check_io(r as i64, &format!("{what} {}", self.name))?;
        if n as usize != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{what} {}: {n} of {len} bytes", self.name),
            ));
        }
        Ok(())
    }
}

impl BackingStore for RbdStore {
    fn kind(&self) -> &'static str {
        "rbd"
    }

    fn rbd(&self) -> Option<&RbdStore> {
        Some(self)
    }

    fn size(&self) -> u64 {
        self.shared.size.load(Ordering::Relaxed)
    }

    fn aio(&self) -> Option<&dyn AioStore> {
        Some(self)
    }

    fn resized_elsewhere(&self) -> u64 {
        self.shared.resized.load(Ordering::Relaxed)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(offset, buf.len() as u64, self.size())?;
        // SAFETY: an open image; `buf` is valid for `buf.len()` bytes of writes during the call.
        let r = unsafe {
            self.api().rbd_read2(
                self.image,
                offset,
                buf.len(),
                buf.as_mut_ptr().cast::<c_char>(),
                0,
            )
        };
        self.whole(r, buf.len(), "reading")
    }

    fn write_at(&self, buf: &[u8], offset: u64, fua: bool) -> io::Result<()> {
        check_range(offset, buf.len() as u64, self.size())?;
        // SAFETY: an open image; `buf` is valid for `buf.len()` bytes of reads during the call.
        let r = unsafe {
            self.api().rbd_write2(
                self.image,
                offset,
                buf.len(),
                buf.as_ptr().cast::<c_char>(),
                0,
            )
        };
        self.whole(r, buf.len(), "writing")?;
        if fua {
            self.flush()?;
        }
        Ok(())
    }

    fn try_read_at(&self, _buf: &mut [u8], _offset: u64) -> io::Result<()> {
        Err(would_block())
    }

    fn try_write_at(&self, _buf: &[u8], _offset: u64, _fua: bool) -> io::Result<()> {
        Err(would_block())
    }

    fn flush(&self) -> io::Result<()> {
        // SAFETY: an open image.
        let r = unsafe { self.api().rbd_flush(self.image) };
        crate::fence::check_io(r.into(), &format!("flushing {}", self.name)).map(|_| ())
    }

    fn unmap(&self, offset: u64, len: u64) -> io::Result<()> {
        check_range(offset, len, self.size())?;
        // SAFETY: an open image; integers only.
        let r = unsafe { self.api().rbd_discard(self.image, offset, len) };
        crate::fence::check_io(r.into(), &format!("discarding in {}", self.name)).map(|_| ())
    }

    fn thin(&self) -> bool {
        true
    }

    fn resize(&self, new_size: u64) -> io::Result<()> {
        // librbd calls the progress callback without checking it for NULL.
        extern "C" fn no_progress(_: u64, _: u64, _: *mut std::ffi::c_void) -> i32 {
            0
        }
        // Held across the resize: the watch's look-up after our own header update then finds
        // the size already recorded, so it is not taken for another client's resize.
        let _watch = self.shared.image.lock();
        // SAFETY: an open image; the callback ignores its arguments and outlives the call.
        let r = unsafe {
            self.api().rbd_resize2(
                self.image,
                new_size,
                true,
                Some(no_progress),
                ptr::null_mut(),
            )
        };
        check(r.into(), &format!("resizing {}", self.name))?;
        // Our own resize: the watch's look-up then finds nothing changed.
        self.shared.size.store(self.image_size()?, Ordering::SeqCst);
        Ok(())
    }

    fn probe(&self) -> io::Result<()> {
        let size = self.image_size()?;
        if size != self.size() {
            return Err(io::Error::other(format!(
                "{} is {size} bytes, opened as {}",
                self.name,
                self.size()
            )));
        }
        Ok(())
    }
}

impl AioStore for RbdStore {
    fn compare_and_write_in_one(&self, offset: u64, len: u64) -> bool {
        Self::caw_in_one_sector(offset, len)
    }

    fn submit(&self, op: AioOp, mut bufs: AioBufs, done: AioDone) {
        if let Err(e) = self.prepare(op, &mut bufs) {
            return done(Err(AioError::Io(e)), bufs);
        }
        let (offset, read_len) = match op {
            AioOp::Read { offset, len } => (offset, Some(len)),
            AioOp::Write { offset, .. }
            | AioOp::CompareAndWrite { offset, .. }
            | AioOp::WriteSame { offset, .. }
            | AioOp::Discard { offset, .. } => (offset, None),
            AioOp::Flush => (0, None),
        };
        let ctx = Box::into_raw(Box::new(AioCtx {
            api: self.api(),
            bufs,
            done,
            mismatch: 0,
            offset,
            read_len,
        }));
        let mut c: rbd_completion_t = ptr::null_mut();
        // SAFETY: `ctx` is the callback's argument, alive until the callback takes it back;
        // a valid out-pointer.
        let r = unsafe {
            self.api()
                .rbd_aio_create_completion(ctx.cast::<c_void>(), Some(aio_cb), &mut c)
        };
        let r = if r < 0 {
            i64::from(r)
        } else {
            let r = self.start(op, ctx, c);
            if r < 0 {
                // SAFETY: librbd refused the operation: the completion never fires and is
                // released here, once.
                unsafe { self.api().rbd_aio_release(c) };
            }
            r
        };
        if r < 0 {
            // SAFETY: no callback will run: `ctx` comes back here, once.
            let ctx = unsafe { Box::from_raw(ctx) };
            let e = check(r, &format!("submitting to {}", self.name)).expect_err("negative");
            (ctx.done)(Err(AioError::Io(e)), ctx.bufs);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! Against a real one-node Ceph started by `scripts/ceph-cluster` (mon, mgr, memstore OSD
    //! on 127.0.0.1:46790): a missing Ceph fails the test, it never passes without one.

    use std::path::PathBuf;
    use std::process::Command;

    use super::*;

    /// The cluster of one test, stopped (by its pids) when dropped.
    pub(crate) struct TestCluster {
        pub(crate) dir: PathBuf,
        script: PathBuf,
    }

    impl TestCluster {
        pub(crate) fn start(port: u16) -> TestCluster {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/ceph-cluster");
            let dir =
                std::env::temp_dir().join(format!("vds-rbd-test-{}-{port}", std::process::id()));
            let out = Command::new(&script)
                .arg("start")
                .arg(&dir)
                .arg(port.to_string())
                .output()
                .expect("scripts/ceph-cluster runs");
            assert!(
                out.status.success(),
                "the one-node Ceph did not start (install ceph-mon ceph-osd ceph-mgr ceph-common): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            TestCluster { dir, script }
        }

        pub(crate) fn conf(&self) -> PathBuf {
            self.dir.join("ceph.conf")
        }
    }

    impl Drop for TestCluster {
        fn drop(&mut self) {
            let _ = Command::new(&self.script)
                .arg("stop")
                .arg(&self.dir)
                .status();
        }
    }

    /// The config object: create once, compare-and-set (a stale writer loses and changes
    /// nothing), pagination past one page, notify reaching another client's watch, and no
    /// update lost between two clients racing (each retries from what it re-read).
    #[test]
    fn a_config_object_changes_only_by_compare_and_set_and_notifies_its_watchers() {
        use crate::rados::ConfigObject;
        let tc = TestCluster::start(46794);
        let c1 = Cluster::connect(&tc.conf(), "client.admin").unwrap();
        let c2 = Cluster::connect(&tc.conf(), "client.admin").unwrap();
        let o1 = ConfigObject::open(&c1, "rbd", "vds.test.config").unwrap();
        let o2 = ConfigObject::open(&c2, "rbd", "vds.test.config").unwrap();
        assert!(o1.create().unwrap());
        assert!(!o2.create().unwrap(), "a second create changes nothing");
        let s = o2.read().unwrap();
        assert_eq!((s.version, s.keys.len()), (0, 0));

        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let tx = std::sync::Mutex::new(tx);
        let watch = o2
            .watch(move |p| {
                let _ = tx.lock().unwrap().send(p.to_vec());
            })
            .unwrap();

        let kv = |k: &str, v: &str| (k.to_string(), v.as_bytes().to_vec());
        assert_eq!(o1.update(0, &[kv("lun/a", "x")], &[]).unwrap(), Ok(1));
        // A writer still at version 0 loses and changes nothing.
        assert_eq!(o2.update(0, &[kv("lun/b", "y")], &[]).unwrap(), Err(1));
        let s = o2.read().unwrap();
        assert_eq!(s.version, 1);
        assert_eq!(s.keys.keys().collect::<Vec<_>>(), ["lun/a"]);
        assert_eq!(
            o2.update(1, &[kv("lun/b", "y")], &["lun/a".to_string()])
                .unwrap(),
            Ok(2)
        );
        assert_eq!(
            o1.read().unwrap().keys.keys().collect::<Vec<_>>(),
            ["lun/b"]
        );
        assert!(
            o1.update(2, &[kv("version", "9")], &[]).is_err(),
            "the version is not a key to set"
        );

        // Notify reaches the other client's watch, acknowledged.
        o1.notify(b"v2", 5000).unwrap();
        let got = rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        assert_eq!(got, b"v2");

        // More keys than one page.
        let many: Vec<(String, Vec<u8>)> =
            (0..1500).map(|i| kv(&format!("k/{i:05}"), "v")).collect();
        assert_eq!(o1.update(2, &many, &[]).unwrap(), Ok(3));
        assert_eq!(o2.read().unwrap().keys.len(), 1501);

        // Two clients incrementing a counter 25 times each: every increment lands once.
        let bump = |o: &ConfigObject| {
            for _ in 0..25 {
                loop {
                    let s = o.read().unwrap();
                    let n: u64 = std::str::from_utf8(&s.keys["counter"])
                        .map(|x| x.parse().unwrap())
                        .unwrap_or(0);
                    if o.update(s.version, &[kv("counter", &(n + 1).to_string())], &[])
                        .unwrap()
                        .is_ok()
                    {
                        break;
                    }
                }
            }
        };
        assert_eq!(o1.update(3, &[kv("counter", "0")], &[]).unwrap(), Ok(4));
        std::thread::scope(|sc| {
            sc.spawn(|| bump(&o1));
            sc.spawn(|| bump(&o2));
        });
        let s = o1.read().unwrap();
        assert_eq!(s.keys["counter"], b"50");
        assert_eq!(s.version, 54);
        drop(watch);
        drop(o2);
    }

    /// A notify reports who acknowledged and who stayed silent past the timeout (a watcher
    /// busy longer than that, as a dead gateway whose watch has not yet timed out).
    #[test]
    fn a_notify_names_the_watchers_that_did_not_acknowledge() {
        use crate::rados::ConfigObject;
        let tc = TestCluster::start(46840);
        let c: Vec<Arc<Cluster>> = (0..3)
            .map(|_| Cluster::connect(&tc.conf(), "client.admin").unwrap())
            .collect();
        let o: Vec<ConfigObject> = c
            .iter()
            .map(|c| ConfigObject::open(c, "rbd", "vds.test.notify").unwrap())
            .collect();
        o[0].create().unwrap();
        let quick = o[1].watch(|_| {}).unwrap();
        let silent = o[2]
            .watch(|_| std::thread::sleep(std::time::Duration::from_secs(3)))
            .unwrap();
        let t = std::time::Instant::now();
        let r = o[0].notify_all(b"x", 1000).unwrap();
        assert!(t.elapsed() < std::time::Duration::from_millis(2500));
        assert_eq!((r.acked.len(), r.timed_out.len()), (1, 1), "{r:?}");
        assert_ne!(r.acked[0].0, r.timed_out[0].0, "two clients, two ids");
        // Once nobody is slow, everybody acknowledges.
        drop(silent);
        let r = o[0].notify_all(b"y", 5000).unwrap();
        assert_eq!((r.acked.len(), r.timed_out.len()), (1, 0), "{r:?}");
        drop(quick);
    }

    #[test]
    fn an_image_reads_writes_discards_resizes_and_is_removed() {
        let tc = TestCluster::start(46790);
        let cluster = Cluster::connect(&tc.conf(), "client.admin").unwrap();
        cluster.create_image("rbd", "t", 16 << 20).unwrap();
        let e = cluster.create_image("rbd", "t", 16 << 20).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{e}");
        let e = cluster.open_image("nopool", "t").map(|_| ()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");

        let s = cluster.open_image("rbd", "t").unwrap();
        assert_eq!((s.kind(), s.size(), s.thin()), ("rbd", 16 << 20, true));
        // A fresh image reads zeroes; writes read back, across an object boundary (4 MiB).
        let mut buf = vec![1u8; 8192];
        s.read_at(&mut buf, (4 << 20) - 4096).unwrap();
        assert!(buf.iter().all(|&b| b == 0));
        let data: Vec<u8> = (0..8192u32).map(|i| (i * 7 + 3) as u8).collect();
        s.write_at(&data, (4 << 20) - 4096, true).unwrap();
        s.read_at(&mut buf, (4 << 20) - 4096).unwrap();
        assert_eq!(buf, data);
        // try_ never waits on the network.
        assert_eq!(
            s.try_read_at(&mut buf, 0).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        // A 512-byte discard inside written data reads back as zeroes (LBPRZ).
        s.unmap((4 << 20) - 4096 + 512, 512).unwrap();
        s.read_at(&mut buf, (4 << 20) - 4096).unwrap();
        assert_eq!(buf[..512], data[..512]);
        assert!(buf[512..1024].iter().all(|&b| b == 0));
        assert_eq!(buf[1024..], data[1024..]);
        s.flush().unwrap();
        // Out of range is refused before librbd sees it.
        assert_eq!(
            s.write_at(&data, (16 << 20) - 4096, false)
                .unwrap_err()
                .kind(),
            io::ErrorKind::InvalidInput
        );
        // Resize: grow (new space reads zero), shrink; probe follows the image.
        s.resize(32 << 20).unwrap();
        assert_eq!(s.size(), 32 << 20);
        s.read_at(&mut buf, 20 << 20).unwrap();
        assert!(buf.iter().all(|&b| b == 0));
        s.probe().unwrap();
        s.resize(8 << 20).unwrap();
        assert_eq!(s.size(), 8 << 20);
        s.read_at(&mut buf, (4 << 20) - 4096).unwrap();
        assert_eq!(buf[1024..], data[1024..]);
        // A second opener resizing the image: the update watch makes it this store's size
        // (a foreign resize, counted), and probe then finds the image as served.
        let other = cluster.open_image("rbd", "t").unwrap();
        other.resize(12 << 20).unwrap();
        let t = std::time::Instant::now();
        while s.size() != 12 << 20 && t.elapsed() < std::time::Duration::from_secs(10) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!((s.size(), s.resized_elsewhere()), (12 << 20, 1));
        s.probe().unwrap();
        drop(other);
        drop(s);
        cluster.remove_image("rbd", "t").unwrap();
        let e = cluster.open_image("rbd", "t").map(|_| ()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
    }

    #[test]
    fn a_miscompare_offset_is_found_in_either_form_librbd_reports() {
        // Ceph 16: object start + offset; later: the image offset of the byte.
        assert_eq!(mismatch_at((4 << 20) + 100, 4 << 20), 100);
        assert_eq!(mismatch_at(77, 20480), 77);
        assert_eq!(mismatch_at(20480 + 77, 20480), 77);
        assert_eq!(mismatch_at((8 << 20) + 511, (8 << 20) + 3 * 512), 511);
    }

    /// Runs `op` through [`AioStore::submit`] and waits for its callback (a test may wait).
    fn aio(s: &RbdStore, op: AioOp, bufs: AioBufs) -> (Result<(), AioError>, AioBufs) {
        let (tx, rx) = std::sync::mpsc::channel();
        s.submit(
            op,
            bufs,
            Box::new(move |r, b| {
                let _ = tx.send((r, b, std::thread::current().id()));
            }),
        );
        let (r, b, thread) = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the completion callback ran");
        if !matches!(&r, Err(AioError::Io(e)) if e.kind() == io::ErrorKind::InvalidInput) {
            // Completed by librbd's own thread: nobody here waited inside librbd.
            assert_ne!(thread, std::thread::current().id());
        }
        (r, b)
    }

    /// Every asynchronous operation against the image, checked through the synchronous
    /// calls; a miscompare's offset; a resize by another client seen by the update watch.
    #[test]
    fn aio_operations_complete_on_librbds_thread_and_a_foreign_resize_is_seen() {
        let tc = TestCluster::start(46820);
        let cluster = Cluster::connect(&tc.conf(), "client.admin").unwrap();
        cluster.create_image("rbd", "a", 16 << 20).unwrap();
        let s = cluster.open_image("rbd", "a").unwrap();
        let data: Vec<u8> = (0..8192u32).map(|i| (i * 13 + 1) as u8).collect();
        let off = (4 << 20) - 4096;
        let out = |d: Vec<u8>| AioBufs {
            data_in: Vec::new(),
            data_out: d,
        };
        let (r, _) = aio(
            &s,
            AioOp::Write {
                offset: off,
                len: 8192,
            },
            out(data.clone()),
        );
        r.unwrap();
        let (r, _) = aio(&s, AioOp::Flush, AioBufs::default());
        r.unwrap();
        let (r, b) = aio(
            &s,
            AioOp::Read {
                offset: off,
                len: 8192,
            },
            AioBufs::default(),
        );
        r.unwrap();
        assert_eq!(b.data_in, data);
        // Out of range: refused before librbd, the buffers come back.
        let (r, b) = aio(
            &s,
            AioOp::Write {
                offset: 16 << 20,
                len: 512,
            },
            out(vec![1; 512]),
        );
        assert!(matches!(r, Err(AioError::Io(e)) if e.kind() == io::ErrorKind::InvalidInput));
        assert_eq!(b.data_out.len(), 512);

        // COMPARE AND WRITE inside one object: equal → written; different → the offset of
        // the first differing byte, nothing written.
        assert!(s.compare_and_write_in_one(512, 512) && !s.compare_and_write_in_one(256, 512));
        assert!(!s.compare_and_write_in_one(0, 4096) && !s.compare_and_write_in_one(0, 0));
        let mut caw = data[4096..4608].to_vec();
        caw.extend(vec![0xAB; 512]);
        let (r, _) = aio(
            &s,
            AioOp::CompareAndWrite {
                offset: 4 << 20,
                len: 512,
            },
            out(caw),
        );
        r.unwrap();
        let mut cur = vec![0u8; 512];
        s.read_at(&mut cur, 4 << 20).unwrap();
        assert_eq!(cur, vec![0xAB; 512]);
        let mut bad = vec![0xAB; 512];
        bad[100] = 0;
        bad.extend(vec![0xCD; 512]);
        let (r, _) = aio(
            &s,
            AioOp::CompareAndWrite {
                offset: 4 << 20,
                len: 512,
            },
            out(bad),
        );
        match r {
            Err(AioError::Miscompare(at)) => assert_eq!(at, 100),
            other => panic!("expected a miscompare, got {other:?}"),
        }
        s.read_at(&mut cur, 4 << 20).unwrap();
        assert_eq!(cur, vec![0xAB; 512], "a miscompare writes nothing");

        // WRITE SAME of one 512-byte block over 64 KiB; a discard reads back zeroes.
        let block: Vec<u8> = (0..512u32).map(|i| i as u8).collect();
        let (r, _) = aio(
            &s,
            AioOp::WriteSame {
                offset: 8 << 20,
                len: 65536,
                block: 512,
            },
            out(block.clone()),
        );
        r.unwrap();
        let mut got = vec![0u8; 65536];
        s.read_at(&mut got, 8 << 20).unwrap();
        assert!(got.chunks(512).all(|c| c == block.as_slice()));
        let (r, _) = aio(
            &s,
            AioOp::Discard {
                offset: (8 << 20) + 512,
                len: 1024,
            },
            AioBufs::default(),
        );
        r.unwrap();
        s.read_at(&mut got, 8 << 20).unwrap();
        assert_eq!(got[..512], block[..]);
        assert!(got[512..1536].iter().all(|&b| b == 0));
        assert_eq!(got[1536..2048], block[..]);

        // Our own resize is not a foreign one; another client's is seen, both ways.
        s.resize(20 << 20).unwrap();
        assert_eq!(s.resized_elsewhere(), 0);
        let other = cluster.open_image("rbd", "a").unwrap();
        for (i, size) in [(1, 32u64 << 20), (2, 12 << 20)] {
            other.resize(size).unwrap();
            let t = std::time::Instant::now();
            while s.resized_elsewhere() < i && t.elapsed() < std::time::Duration::from_secs(10) {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            assert_eq!((s.resized_elsewhere(), s.size()), (i, size));
        }
        drop(other);
        drop(s);
        cluster.remove_image("rbd", "a").unwrap();
    }
}
