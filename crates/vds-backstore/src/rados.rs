//! Shared state in RADOS (docs/SCALEOUT.md "Shared configuration"): one OMAP object whose keys
//! are the objects of a subsystem plus `version`, changed only by compare-and-set, and watched
//! by every gateway.
//!
//! [`ConfigObject::update`] is one RADOS write op: compare `version` with what the caller read,
//! set and remove keys, write `version + 1`. The OSD applies all of it or none of it, so two
//! gateways racing from the same version cannot both win: the loser gets `Err(found)` and
//! re-reads. [`ConfigObject::watch`] delivers every notify on the object to a callback
//! (acknowledged after it returns); [`ConfigObject::notify`] sends one and waits for the
//! watchers' acknowledgements (bounded). Polling is the caller's: a missed notify is caught by
//! comparing versions.

use std::collections::BTreeMap;
use std::ffi::{c_char, c_void, CString};
use std::io;
use std::ptr;
use std::sync::Arc;

use vds_rbd_sys::{rados_ioctx_t, Ceph, LIBRADOS_CMPXATTR_OP_EQ, LIBRADOS_CREATE_EXCLUSIVE};

use crate::rbd::{check, cstr, Cluster, IoCtx};

/// The key holding the object's version (decimal ASCII).
pub const VERSION_KEY: &str = "version";

/// Keys read per round trip.
const PAGE: u64 = 512;

/// What [`ConfigObject::read`] saw: the version and every other key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub version: u64,
    pub keys: BTreeMap<String, Vec<u8>>,
}

/// One OMAP object in a pool, for compare-and-set updates, watches and notifies.
pub struct ConfigObject {
    cluster: Arc<Cluster>,
    io: Arc<IoCtx>,
    oid: CString,
    name: String,
}

/// A write op, released on drop.
struct WriteOp<'a> {
    api: &'a Ceph,
    op: vds_rbd_sys::rados_write_op_t,
}

impl Drop for WriteOp<'_> {
    fn drop(&mut self) {
        // SAFETY: created by rados_create_write_op and released once.
        unsafe { self.api.rados_release_write_op(self.op) };
    }
}

/// A read op, released on drop (after the iterators it filled were ended: they are ended
/// before the op goes out of scope in every caller).
struct ReadOp<'a> {
    api: &'a Ceph,
    op: vds_rbd_sys::rados_read_op_t,
}

impl<'a> ReadOp<'a> {
    fn new(api: &'a Ceph) -> io::Result<ReadOp<'a>> {
        // SAFETY: no arguments; a NULL answer is checked.
        let op = unsafe { api.rados_create_read_op() };
        if op.is_null() {
            return Err(io::Error::other("rados_create_read_op failed"));
        }
        Ok(ReadOp { api, op })
    }
}

impl Drop for ReadOp<'_> {
    fn drop(&mut self) {
        // SAFETY: created by rados_create_read_op and released once.
        unsafe { self.api.rados_release_read_op(self.op) };
    }
}

impl ConfigObject {
    /// The object `oid` in `pool` (it need not exist yet).
    pub fn open(cluster: &Arc<Cluster>, pool: &str, oid: &str) -> io::Result<ConfigObject> {
        Ok(ConfigObject {
            io: Arc::new(cluster.ioctx(pool)?),
            cluster: cluster.clone(),
            oid: cstr(oid, "object name")?,
            name: format!("{pool}/{oid}"),
        })
    }

    fn api(&self) -> &'static Ceph {
        self.cluster.api
    }

    fn write_op(&self) -> io::Result<WriteOp<'static>> {
        // SAFETY: no arguments; a NULL answer is checked.
        let op = unsafe { self.api().rados_create_write_op() };
        if op.is_null() {
            return Err(io::Error::other("rados_create_write_op failed"));
        }
        Ok(WriteOp {
            api: self.api(),
            op,
        })
    }

    /// Creates the object with version 0 and no other key. `Ok(false)` when it exists already
    /// (nothing is changed then).
    pub fn create(&self) -> io::Result<bool> {
        let op = self.write_op()?;
        let (k, v) = (VERSION_KEY.as_bytes(), b"0");
        let keys = [k.as_ptr().cast::<c_char>()];
        let vals = [v.as_ptr().cast::<c_char>()];
        let (klens, vlens) = ([k.len()], [v.len()]);
        // SAFETY: a live op; the key and value arrays and their lengths outlive the operate
        // call below (librados copies them when the op is built).
        unsafe {
            self.api()
                .rados_write_op_create(op.op, LIBRADOS_CREATE_EXCLUSIVE as i32, ptr::null());
            self.api().rados_write_op_omap_set2(
                op.op,
                keys.as_ptr(),
                vals.as_ptr(),
                klens.as_ptr(),
                vlens.as_ptr(),
                1,
            );
        }
        // SAFETY: a live op, an open ioctx, a NUL-terminated oid; no mtime.
        let r = unsafe {
            self.api().rados_write_op_operate2(
                op.op,
                self.io.io,
                self.oid.as_ptr(),
                ptr::null_mut(),
                0,
            )
        };
        if r == -libc::EEXIST {
            return Ok(false);
        }
        check(r.into(), &format!("creating {}", self.name))?;
        Ok(true)
    }

    /// Every key and the version, as of one instant: read page by page, each page with the
    /// version in the same op; a version that moved between pages starts the read again
    /// (bounded: a read that never sees a quiet moment in 100 tries is an error).
    pub fn read(&self) -> io::Result<Snapshot> {
        'again: for _ in 0..100 {
            let mut keys = BTreeMap::new();
            let mut after = CString::default();
            let mut version = None;
            loop {
                let (page, v, more) = self.page(&after)?;
                match version {
                    None => version = Some(v),
                    Some(first) if first != v => continue 'again,
                    Some(_) => {}
                }
                let last = page.keys().next_back().cloned();
                keys.extend(page);
                match (more, last) {
                    (true, Some(l)) => after = cstr(&l, "key")?,
                    _ => break,
                }
            }
            keys.remove(VERSION_KEY);
            let version = version.unwrap_or_default();
            return Ok(Snapshot { version, keys });
        }
        Err(io::Error::other(format!(
            "{} changed during every one of 100 reads",
            self.name
        )))
    }

    /// One page of keys after `after`, with the version in the same op, and whether more
    /// keys follow.
    fn page(&self, after: &CString) -> io::Result<(BTreeMap<String, Vec<u8>>, u64, bool)> {
        let api = self.api();
        let op = ReadOp::new(api)?;
        let (mut iter, mut viter): (
            vds_rbd_sys::rados_omap_iter_t,
            vds_rbd_sys::rados_omap_iter_t,
        ) = (ptr::null_mut(), ptr::null_mut());
        let mut more: u8 = 0;
        let (mut rval, mut vrval): (i32, i32) = (0, 0);
        let vkey = [VERSION_KEY.as_ptr().cast::<c_char>()];
        let vlen = [VERSION_KEY.len()];
        // SAFETY: a live op; `after`, `vkey` and `vlen` outlive the operate call; the
        // out-pointers are valid until then.
        unsafe {
            api.rados_read_op_omap_get_vals2(
                op.op,
                after.as_ptr(),
                ptr::null(),
                PAGE,
                &mut iter,
                &mut more,
                &mut rval,
            );
            api.rados_read_op_omap_get_vals_by_keys2(
                op.op,
                vkey.as_ptr(),
                1,
                vlen.as_ptr(),
                &mut viter,
                &mut vrval,
            );
        }
        // SAFETY: a live op, an open ioctx, a NUL-terminated oid.
        let r = unsafe { api.rados_read_op_operate(op.op, self.io.io, self.oid.as_ptr(), 0) };
        check(r.into(), &format!("reading {}", self.name))?;
        check(rval.into(), &format!("reading the keys of {}", self.name))?;
        check(
            vrval.into(),
            &format!("reading the version of {}", self.name),
        )?;
        let page = self.drain(iter)?;
        let mut v = self.drain(viter)?;
        let version = v
            .remove(VERSION_KEY)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} has no {VERSION_KEY} key", self.name),
                )
            })
            .and_then(|v| parse_version(&v, &self.name))?;
        Ok((page, version, more != 0))
    }

    /// Every pair of an iterator a read op filled; the iterator is ended.
    fn drain(&self, iter: vds_rbd_sys::rados_omap_iter_t) -> io::Result<BTreeMap<String, Vec<u8>>> {
        let api = self.api();
        let mut out = BTreeMap::new();
        let mut failed = None;
        loop {
            let (mut k, mut v): (*mut c_char, *mut c_char) = (ptr::null_mut(), ptr::null_mut());
            let (mut kl, mut vl) = (0usize, 0usize);
            // SAFETY: `iter` was filled by an operate; the out-pointers are valid.
            let r = unsafe { api.rados_omap_get_next2(iter, &mut k, &mut v, &mut kl, &mut vl) };
            if r < 0 {
                failed = Some(r);
                break;
            }
            if k.is_null() {
                break;
            }
            // SAFETY: librados hands `kl` bytes at `k` and `vl` at `v` (v may be NULL when
            // empty), valid until the iterator ends.
            let (key, val) = unsafe {
                (
                    std::slice::from_raw_parts(k.cast::<u8>(), kl).to_vec(),
                    if v.is_null() {
                        Vec::new()
                    } else {
                        std::slice::from_raw_parts(v.cast::<u8>(), vl).to_vec()
                    },
                )
            };
            match String::from_utf8(key) {
                Ok(key) => {
                    out.insert(key, val);
                }
                Err(_) => {
                    failed = Some(-libc::EINVAL);
                    break;
                }
            }
        }
        // SAFETY: ended once, on every path.
        unsafe { api.rados_omap_get_end(iter) };
        if let Some(r) = failed {
            check(r.into(), &format!("the keys of {}", self.name))?;
        }
        Ok(out)
    }

    /// Compare-and-set: when the object's version is still `expected`, sets `set`, removes
    /// `remove` and writes version `expected + 1`, all at once; answers `Ok(new_version)`.
    /// When another update came first nothing is changed and the answer is `Err(found)`.
    pub fn update(
        &self,
        expected: u64,
        set: &[(String, Vec<u8>)],
        remove: &[String],
    ) -> io::Result<Result<u64, u64>> {
        if set.iter().any(|(k, _)| k == VERSION_KEY) || remove.iter().any(|k| k == VERSION_KEY) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the version key is the object's own",
            ));
        }
        let op = self.write_op()?;
        let api = self.api();
        let want = expected.to_string();
        let next = (expected + 1).to_string();
        let mut cmp_rval: i32 = 0;
        let mut keys: Vec<*const c_char> = set.iter().map(|(k, _)| k.as_ptr().cast()).collect();
        let mut klens: Vec<usize> = set.iter().map(|(k, _)| k.len()).collect();
        let mut vals: Vec<*const c_char> = set.iter().map(|(_, v)| v.as_ptr().cast()).collect();
        let mut vlens: Vec<usize> = set.iter().map(|(_, v)| v.len()).collect();
        keys.push(VERSION_KEY.as_ptr().cast());
        klens.push(VERSION_KEY.len());
        vals.push(next.as_ptr().cast());
        vlens.push(next.len());
        let rm: Vec<*const c_char> = remove.iter().map(|k| k.as_ptr().cast()).collect();
        let rmlens: Vec<usize> = remove.iter().map(String::len).collect();
        // SAFETY: a live op; every pointer and length array outlives the operate call below
        // (librados copies keys and values into the op as it is built); `cmp_rval` too.
        unsafe {
            api.rados_write_op_omap_cmp2(
                op.op,
                VERSION_KEY.as_ptr().cast(),
                LIBRADOS_CMPXATTR_OP_EQ as u8,
                want.as_ptr().cast(),
                VERSION_KEY.len(),
                want.len(),
                &mut cmp_rval,
            );
            api.rados_write_op_omap_set2(
                op.op,
                keys.as_ptr(),
                vals.as_ptr(),
                klens.as_ptr(),
                vlens.as_ptr(),
                keys.len(),
            );
            if !rm.is_empty() {
                api.rados_write_op_omap_rm_keys2(op.op, rm.as_ptr(), rmlens.as_ptr(), rm.len());
            }
        }
        // SAFETY: a live op, an open ioctx, a NUL-terminated oid.
        let r = unsafe {
            api.rados_write_op_operate2(op.op, self.io.io, self.oid.as_ptr(), ptr::null_mut(), 0)
        };
        if r == -libc::ECANCELED {
            // The comparison failed: someone else's update came first.
            return Ok(Err(self.read()?.version));
        }
        check(r.into(), &format!("updating {}", self.name))?;
        Ok(Ok(expected + 1))
    }

    /// Sets `set` as they are, with no comparison and no version change (a record only its
    /// writer changes, such as a job's progress); creates the object when missing.
    pub fn set(&self, set: &[(String, Vec<u8>)]) -> io::Result<()> {
        if set.iter().any(|(k, _)| k == VERSION_KEY) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the version key is the object's own",
            ));
        }
        let op = self.write_op()?;
        let api = self.api();
        let keys: Vec<*const c_char> = set.iter().map(|(k, _)| k.as_ptr().cast()).collect();
        let klens: Vec<usize> = set.iter().map(|(k, _)| k.len()).collect();
        let vals: Vec<*const c_char> = set.iter().map(|(_, v)| v.as_ptr().cast()).collect();
        let vlens: Vec<usize> = set.iter().map(|(_, v)| v.len()).collect();
        // SAFETY: a live op; the key and value arrays and their lengths outlive the operate
        // call below (librados copies them when the op is built).
        unsafe {
            api.rados_write_op_omap_set2(
                op.op,
                keys.as_ptr(),
                vals.as_ptr(),
                klens.as_ptr(),
                vlens.as_ptr(),
                keys.len(),
            );
        }
        // SAFETY: a live op, an open ioctx, a NUL-terminated oid; no mtime.
        let r = unsafe {
            api.rados_write_op_operate2(op.op, self.io.io, self.oid.as_ptr(), ptr::null_mut(), 0)
        };
        check(r.into(), &format!("setting keys of {}", self.name)).map(|_| ())
    }

    /// Every key of an object written only by [`ConfigObject::set`] (no version key; no
    /// consistency across pages is promised). A missing object has none.
    pub fn read_all(&self) -> io::Result<BTreeMap<String, Vec<u8>>> {
        let api = self.api();
        let mut keys = BTreeMap::new();
        let mut after = CString::default();
        loop {
            let op = ReadOp::new(api)?;
            let mut iter: vds_rbd_sys::rados_omap_iter_t = ptr::null_mut();
            let mut more: u8 = 0;
            let mut rval: i32 = 0;
            // SAFETY: a live op; `after` outlives the operate call; the out-pointers are
            // valid until then.
            unsafe {
                api.rados_read_op_omap_get_vals2(
                    op.op,
                    after.as_ptr(),
                    ptr::null(),
                    PAGE,
                    &mut iter,
                    &mut more,
                    &mut rval,
                );
            }
            // SAFETY: a live op, an open ioctx, a NUL-terminated oid.
            let r = unsafe { api.rados_read_op_operate(op.op, self.io.io, self.oid.as_ptr(), 0) };
            if r == -libc::ENOENT {
                return Ok(keys);
            }
            check(r.into(), &format!("reading {}", self.name))?;
            check(rval.into(), &format!("reading the keys of {}", self.name))?;
            let page = self.drain(iter)?;
            let last = page.keys().next_back().cloned();
            keys.extend(page);
            match (more != 0, last) {
                (true, Some(l)) => after = cstr(&l, "key")?,
                _ => return Ok(keys),
            }
        }
    }

    /// Notifies every watcher with `payload` and waits (at most `timeout_ms`) for their
    /// acknowledgements; a watcher that did not acknowledge in time is an error (`TimedOut`).
    pub fn notify(&self, payload: &[u8], timeout_ms: u64) -> io::Result<()> {
        let reply = self.notify_all(payload, timeout_ms)?;
        if reply.timed_out.is_empty() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "notifying the watchers of {}: {} did not acknowledge",
                    self.name,
                    reply.timed_out.len()
                ),
            ))
        }
    }

    /// Notifies every watcher with `payload` and waits (at most `timeout_ms`) for their
    /// acknowledgements, answering who acknowledged and who did not in time (a watcher that
    /// died keeps its watch until the watch times out): what a change that must reach every
    /// gateway needs to know before it fences the silent ones.
    pub fn notify_all(&self, payload: &[u8], timeout_ms: u64) -> io::Result<NotifyReply> {
        let len = i32::try_from(payload.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "payload too large"))?;
        let mut reply: *mut c_char = ptr::null_mut();
        let mut reply_len = 0usize;
        // SAFETY: an open ioctx, a NUL-terminated oid, `payload` valid for `len` bytes; the
        // reply buffer librados allocates is copied and freed below.
        let r = unsafe {
            self.api().rados_notify2(
                self.io.io,
                self.oid.as_ptr(),
                payload.as_ptr().cast(),
                len,
                timeout_ms,
                &mut reply,
                &mut reply_len,
            )
        };
        let bytes = if reply.is_null() {
            Vec::new()
        } else {
            // SAFETY: librados allocated `reply_len` bytes at `reply` for this call; copied
            // before the one free.
            let v = unsafe { std::slice::from_raw_parts(reply.cast::<u8>(), reply_len) }.to_vec();
            // SAFETY: allocated by librados for this call, freed once.
            unsafe { self.api().rados_buffer_free(reply) };
            v
        };
        if r < 0 && r != -libc::ETIMEDOUT {
            check(
                r.into(),
                &format!("notifying the watchers of {}", self.name),
            )?;
        }
        NotifyReply::parse(&bytes).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the notify reply of {} is malformed", self.name),
            )
        })
    }

    /// Calls `f` with the payload of every notify on the object (on a librados thread; `f`
    /// must not block for long), acknowledging each after `f` returns, until the answer is
    /// dropped.
    pub fn watch(&self, f: impl Fn(&[u8]) + Send + Sync + 'static) -> io::Result<Watch> {
        let ctx = Box::new(WatchCtx {
            api: self.api(),
            io: self.io.io,
            oid: self.oid.clone(),
            cookie: std::sync::atomic::AtomicU64::new(0),
            f: Box::new(f),
        });
        let raw = Box::into_raw(ctx);
        let mut cookie = 0u64;
        // SAFETY: an open ioctx and a NUL-terminated oid; `raw` stays valid until `Watch`
        // unwatches and flushes (after which no callback runs) and frees it.
        let r = unsafe {
            self.api().rados_watch3(
                self.io.io,
                self.oid.as_ptr(),
                &mut cookie,
                Some(on_notify),
                Some(on_watch_error),
                30,
                raw.cast::<c_void>(),
            )
        };
        if r < 0 {
            // SAFETY: the watch was not registered: nothing else holds `raw`.
            drop(unsafe { Box::from_raw(raw) });
            check(r.into(), &format!("watching {}", self.name))?;
        }
        // SAFETY: `raw` is live (freed only by Watch's drop).
        unsafe { &*raw }
            .cookie
            .store(cookie, std::sync::atomic::Ordering::SeqCst);
        Ok(Watch {
            cluster: self.cluster.clone(),
            io: self.io.clone(),
            cookie,
            ctx: raw,
        })
    }
}

impl Cluster {
    /// This client's global id (the `gid` of `client.<gid>`), as notify replies name watchers.
    pub fn instance_id(&self) -> u64 {
        // SAFETY: a connected handle.
        unsafe { self.api.rados_get_instance_id(self.handle) }
    }
}

/// Who answered a notify ([`ConfigObject::notify_all`]): watchers by RADOS client id
/// (`client.<gid>`) and watch cookie.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyReply {
    pub acked: Vec<(u64, u64)>,
    pub timed_out: Vec<(u64, u64)>,
}

impl NotifyReply {
    /// librados's reply encoding: `le32 n, n × (le64 gid, le64 cookie, le32 len, len bytes),
    /// le32 m, m × (le64 gid, le64 cookie)`; an empty buffer is nobody. `None` when malformed
    /// (short, or counts beyond the buffer).
    fn parse(b: &[u8]) -> Option<NotifyReply> {
        if b.is_empty() {
            return Some(NotifyReply::default());
        }
        let mut at = 0usize;
        let mut take = |n: usize| -> Option<&[u8]> {
            let s = b.get(at..at.checked_add(n)?)?;
            at += n;
            Some(s)
        };
        let u32le = |s: &[u8]| u32::from_le_bytes(s.try_into().unwrap_or_default());
        let u64le = |s: &[u8]| u64::from_le_bytes(s.try_into().unwrap_or_default());
        let mut out = NotifyReply::default();
        let acks = u32le(take(4)?);
        for _ in 0..acks {
            let gid = u64le(take(8)?);
            let cookie = u64le(take(8)?);
            let len = u32le(take(4)?) as usize;
            take(len)?;
            out.acked.push((gid, cookie));
        }
        let timeouts = u32le(take(4)?);
        for _ in 0..timeouts {
            let gid = u64le(take(8)?);
            let cookie = u64le(take(8)?);
            out.timed_out.push((gid, cookie));
        }
        Some(out)
    }
}

/// The prefix of the lease keys: `lease/<lun-id>` holds the LUN's owner lease
/// (docs/SCALEOUT.md "Ownership, ALUA and failover").
pub const LEASE_PREFIX: &str = "lease/";

/// A LUN's owner lease, the value of its `lease/<lun-id>` key. It holds no time: each
/// survivor judges expiry on its own monotonic clock ([`LeaseClock`]), from how long the value
/// stayed the same, never by comparing clocks across machines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The owner gateway's name.
    pub owner: String,
    /// The owner's RADOS client address (what a survivor blocklists).
    pub addr: String,
    /// Moves by one at every change of owner.
    pub generation: u64,
    /// Moves by one at every renewal by the same owner (so a renewal changes the value).
    pub renewals: u64,
}

/// The first line of an encoded lease (format 1).
const LEASE_MAGIC: &str = "vds-lease 1";

impl Lease {
    /// `vds-lease 1`, generation, renewals, owner, address: one per line.
    pub fn encode(&self) -> Vec<u8> {
        format!(
            "{LEASE_MAGIC}\n{}\n{}\n{}\n{}",
            self.generation, self.renewals, self.owner, self.addr
        )
        .into_bytes()
    }

    /// The lease `v` holds; anything else (another format, a field missing or extra, a number
    /// that is not one) is `InvalidData`.
    pub fn decode(v: &[u8]) -> io::Result<Lease> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "a lease value is malformed");
        let s = std::str::from_utf8(v).map_err(|_| bad())?;
        let f: Vec<&str> = s.split('\n').collect();
        let [magic, generation, renewals, owner, addr] = f[..] else {
            return Err(bad());
        };
        let lease = Lease {
            owner: owner.to_string(),
            addr: addr.to_string(),
            generation: generation.parse().map_err(|_| bad())?,
            renewals: renewals.parse().map_err(|_| bad())?,
        };
        if magic != LEASE_MAGIC || lease.check().is_err() {
            return Err(bad());
        }
        Ok(lease)
    }

    /// The same lease renewed (the next renewal count).
    pub fn renewed(&self) -> Lease {
        Lease {
            renewals: self.renewals + 1,
            ..self.clone()
        }
    }

    /// Owner and address are non-empty single lines of at most 256 bytes.
    fn check(&self) -> io::Result<()> {
        for (what, v) in [("owner", &self.owner), ("address", &self.addr)] {
            if v.is_empty() || v.len() > 256 || v.contains(['\n', '\0']) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("a lease {what} must be one line of 1 to 256 bytes: {v:?}"),
                ));
            }
        }
        Ok(())
    }
}

/// The key of `lun`'s lease; a LUN id is 1 to 128 bytes with no `/` and no NUL.
fn lease_key(lun: &str) -> io::Result<String> {
    if lun.is_empty() || lun.len() > 128 || lun.contains(['/', '\0']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a LUN id for a lease must be 1 to 128 bytes without '/' or NUL: {lun:?}"),
        ));
    }
    Ok(format!("{LEASE_PREFIX}{lun}"))
}

impl ConfigObject {
    /// The raw value of `lun`'s lease; empty when there is none.
    pub fn lease(&self, lun: &str) -> io::Result<Vec<u8>> {
        let key = lease_key(lun)?;
        let api = self.api();
        let op = ReadOp::new(api)?;
        let mut iter: vds_rbd_sys::rados_omap_iter_t = ptr::null_mut();
        let mut rval: i32 = 0;
        let keys = [key.as_ptr().cast::<c_char>()];
        let lens = [key.len()];
        // SAFETY: a live op; `keys` and `lens` outlive the operate call; the out-pointers are
        // valid until then.
        unsafe {
            api.rados_read_op_omap_get_vals_by_keys2(
                op.op,
                keys.as_ptr(),
                1,
                lens.as_ptr(),
                &mut iter,
                &mut rval,
            );
        }
        // SAFETY: a live op, an open ioctx, a NUL-terminated oid.
        let r = unsafe { api.rados_read_op_operate(op.op, self.io.io, self.oid.as_ptr(), 0) };
        check(r.into(), &format!("reading {key} of {}", self.name))?;
        check(rval.into(), &format!("reading {key} of {}", self.name))?;
        Ok(self.drain(iter)?.remove(&key).unwrap_or_default())
    }

    /// Compare-and-set of `lun`'s lease on the key's own value: when it is still `expected`
    /// (empty: no lease), writes `new` and answers `true`; otherwise changes nothing and
    /// answers `false`. The object's `version` is neither compared nor bumped: leases move
    /// every few seconds and are not configuration.
    pub fn lease_cas(&self, lun: &str, expected: &[u8], new: &Lease) -> io::Result<bool> {
        new.check()?;
        let value = new.encode();
        self.lease_op(lun, expected, Some(&value))
    }

    /// Removes `lun`'s lease when its value is still `expected` (`false`, nothing changed,
    /// when it is not).
    pub fn lease_remove(&self, lun: &str, expected: &[u8]) -> io::Result<bool> {
        self.lease_op(lun, expected, None)
    }

    /// One write op: compare the lease key with `expected` (a missing key compares as empty),
    /// then set it to `value` or remove it.
    fn lease_op(&self, lun: &str, expected: &[u8], value: Option<&[u8]>) -> io::Result<bool> {
        let key = lease_key(lun)?;
        let op = self.write_op()?;
        let api = self.api();
        let mut cmp_rval: i32 = 0;
        let keys = [key.as_ptr().cast::<c_char>()];
        let klens = [key.len()];
        let vals = [value.unwrap_or_default().as_ptr().cast::<c_char>()];
        let vlens = [value.map_or(0, <[u8]>::len)];
        // SAFETY: a live op; the key, the values and their length arrays outlive the operate
        // call below (librados copies them into the op as it is built); `cmp_rval` too.
        unsafe {
            api.rados_write_op_assert_exists(op.op);
            api.rados_write_op_omap_cmp2(
                op.op,
                key.as_ptr().cast(),
                LIBRADOS_CMPXATTR_OP_EQ as u8,
                expected.as_ptr().cast(),
                key.len(),
                expected.len(),
                &mut cmp_rval,
            );
            if value.is_some() {
                api.rados_write_op_omap_set2(
                    op.op,
                    keys.as_ptr(),
                    vals.as_ptr(),
                    klens.as_ptr(),
                    vlens.as_ptr(),
                    1,
                );
            } else {
                api.rados_write_op_omap_rm_keys2(op.op, keys.as_ptr(), klens.as_ptr(), 1);
            }
        }
        // SAFETY: a live op, an open ioctx, a NUL-terminated oid.
        let r = unsafe {
            api.rados_write_op_operate2(op.op, self.io.io, self.oid.as_ptr(), ptr::null_mut(), 0)
        };
        if r == -libc::ECANCELED {
            return Ok(false);
        }
        check(r.into(), &format!("changing {key} of {}", self.name))?;
        Ok(true)
    }
}

/// Judges a lease's expiry on this gateway's own monotonic clock: expired once its value has
/// stayed the same for the lease time, counted from when this gateway first saw that value
/// (so a gateway that just started waits a whole lease time). No lease at all (an empty value)
/// is free at once.
#[derive(Debug)]
pub struct LeaseClock {
    lease_time: std::time::Duration,
    seen: Option<(Vec<u8>, std::time::Instant)>,
}

impl LeaseClock {
    pub fn new(lease_time: std::time::Duration) -> LeaseClock {
        LeaseClock {
            lease_time,
            seen: None,
        }
    }

    /// Records `value` as read at `now`; whether the lease it holds is expired (or absent).
    pub fn observe(&mut self, value: &[u8], now: std::time::Instant) -> bool {
        if value.is_empty() {
            self.seen = None;
            return true;
        }
        match &self.seen {
            Some((v, since)) if v == value => {
                now.saturating_duration_since(*since) >= self.lease_time
            }
            _ => {
                self.seen = Some((value.to_vec(), now));
                false
            }
        }
    }
}

/// What a watch's callbacks reach.
struct WatchCtx {
    api: &'static Ceph,
    io: rados_ioctx_t,
    oid: CString,
    cookie: std::sync::atomic::AtomicU64,
    f: Box<OnNotify>,
}

/// What a watch calls with each notify's payload.
type OnNotify = dyn Fn(&[u8]) + Send + Sync;

/// librados's notify callback of a watch.
///
/// # Safety
/// `arg` is the `WatchCtx` the watch was registered with, still alive; `data` holds `len`
/// bytes (or is NULL) for the duration of the call.
unsafe extern "C" fn on_notify(
    arg: *mut c_void,
    notify_id: u64,
    handle: u64,
    _notifier: u64,
    data: *mut c_void,
    len: usize,
) {
    // SAFETY: `arg` is the WatchCtx registered with this watch, alive until the watch is
    // removed and flushed; `data` holds `len` bytes for the duration of the call.
    let (ctx, payload) = unsafe {
        let ctx = &*(arg as *const WatchCtx);
        let payload = if data.is_null() {
            &[][..]
        } else {
            std::slice::from_raw_parts(data.cast::<u8>(), len)
        };
        (ctx, payload)
    };
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (ctx.f)(payload)));
    // SAFETY: the watch's ioctx and oid, the notify's ids; no reply payload.
    unsafe {
        ctx.api
            .rados_notify_ack(ctx.io, ctx.oid.as_ptr(), notify_id, handle, ptr::null(), 0)
    };
}

/// librados's error callback of a watch: it only logs, and reads none of its pointers.
extern "C" fn on_watch_error(_arg: *mut c_void, cookie: u64, err: i32) {
    tracing::warn!(
        cookie,
        err,
        "a RADOS watch broke; the watcher must watch again (and poll)"
    );
}

/// A registered watch: removed, and its callbacks finished, when dropped.
pub struct Watch {
    cluster: Arc<Cluster>,
    /// The pool the watch is in: it outlives the watch (the ConfigObject may go first).
    io: Arc<IoCtx>,
    cookie: u64,
    ctx: *mut WatchCtx,
}

// SAFETY: the raw pointers are only used in Drop, which runs once; the callback context is
// Send + Sync itself.
unsafe impl Send for Watch {}

impl Drop for Watch {
    fn drop(&mut self) {
        let api = self.cluster.api;
        // SAFETY: the watch registered with this cookie; after unwatch2 and watch_flush no
        // callback runs, so the context can be freed.
        unsafe {
            api.rados_unwatch2(self.io.io, self.cookie);
            api.rados_watch_flush(self.cluster.handle);
            drop(Box::from_raw(self.ctx));
        }
    }
}

fn parse_version(v: &[u8], name: &str) -> io::Result<u64> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{name}: the version key is not a number"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::NotifyReply;

    fn le32(v: &mut Vec<u8>, x: u32) {
        v.extend_from_slice(&x.to_le_bytes());
    }
    fn le64(v: &mut Vec<u8>, x: u64) {
        v.extend_from_slice(&x.to_le_bytes());
    }

    #[test]
    fn a_notify_reply_is_parsed_and_a_malformed_one_refused() {
        let mut b = Vec::new();
        le32(&mut b, 2);
        for (gid, payload) in [(7u64, &b"ok"[..]), (9, &b""[..])] {
            le64(&mut b, gid);
            le64(&mut b, 100 + gid);
            le32(&mut b, payload.len() as u32);
            b.extend_from_slice(payload);
        }
        le32(&mut b, 1);
        le64(&mut b, 11);
        le64(&mut b, 111);
        assert_eq!(
            NotifyReply::parse(&b),
            Some(NotifyReply {
                acked: vec![(7, 107), (9, 109)],
                timed_out: vec![(11, 111)],
            })
        );
        assert_eq!(NotifyReply::parse(&[]), Some(NotifyReply::default()));
        // Every truncation is refused, never read past the end.
        for n in 1..b.len() {
            assert_eq!(NotifyReply::parse(&b[..n]), None, "cut at {n}");
        }
        // A count or payload length beyond the buffer is refused.
        let mut huge = Vec::new();
        le32(&mut huge, 1);
        le64(&mut huge, 1);
        le64(&mut huge, 1);
        le32(&mut huge, u32::MAX);
        assert_eq!(NotifyReply::parse(&huge), None);
        let mut many = Vec::new();
        le32(&mut many, u32::MAX);
        assert_eq!(NotifyReply::parse(&many), None);
    }
}
