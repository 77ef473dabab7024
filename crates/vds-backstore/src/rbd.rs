//! RBD images as backing stores (docs/SCALEOUT.md): a LUN's blocks in a Ceph pool, read and
//! written through librbd (`vds-rbd-sys`, loaded at run time).
//!
//! [`Cluster`] is one RADOS client connection (a `ceph.conf` and a client name), shared by
//! every image a daemon opens; [`RbdStore`] is one open image. The calls are librbd's
//! synchronous ones, made on the blocking pool: every `try_` method answers `WouldBlock`, so
//! the data path never waits on the network from an I/O thread.
//!
//! How SCSI maps onto librbd: READ/WRITE → `rbd_read2`/`rbd_write2`; FUA and SYNCHRONIZE
//! CACHE → `rbd_flush`; UNMAP → `rbd_discard`, with `rbd_skip_partial_discard` off so that a
//! discard smaller than the object granularity still reads back as zeroes (LBPRZ holds);
//! resize → `rbd_resize2`. RBD is thin: every image is sparse until written.

use std::ffi::{c_char, CString};
use std::io;
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use vds_rbd_sys::{ceph, rados_ioctx_t, rados_t, rbd_image_t, Ceph};

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
        let store = RbdStore {
            cluster: self.clone(),
            _io: io,
            image,
            size: AtomicU64::new(0),
            name: format!("{pool}/{name}"),
        };
        let size = store.image_size()?;
        store.size.store(size, Ordering::Relaxed);
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
    size: AtomicU64,
    pub(crate) name: String,
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
        // SAFETY: opened by `rbd_open` and closed once; no call on it can be running, since
        // they all borrow `self`.
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
        self.size.load(Ordering::Relaxed)
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
        self.size.store(self.image_size()?, Ordering::Relaxed);
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
        // A second opener resizing the image is seen by probe.
        let other = cluster.open_image("rbd", "t").unwrap();
        other.resize(12 << 20).unwrap();
        assert!(s.probe().is_err());
        drop(other);
        drop(s);
        cluster.remove_image("rbd", "t").unwrap();
        let e = cluster.open_image("rbd", "t").map(|_| ()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
    }
}
