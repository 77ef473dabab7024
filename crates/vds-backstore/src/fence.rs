//! Fencing (docs/SCALEOUT.md "Ownership, ALUA and failover"): the error a fenced client's I/O
//! gets, an image's exclusive lock, a client's own RADOS address, the blocklist, and the
//! take-over of a LUN whose owner's lease expired.
//!
//! A gateway that lost a LUN must never write to it again. Ceph makes that so: once a client's
//! address is blocklisted, every OSD refuses it and librbd fails its I/O with `-ESHUTDOWN`
//! (Ceph's `EBLOCKLISTED`). Such an error is not a failed medium: [`is_fenced`] tells it apart
//! so that the SCSI layer answers NOT READY, ASYMMETRIC ACCESS STATE TRANSITION (the host
//! retries through another path) and never marks the LU FAILED (which would be recorded, and in
//! cluster mode shared, as the LUN failed everywhere).
//!
//! The exclusive lock is taken with `rbd_lock_acquire`, which also turns off librbd's automatic
//! lock transitions: a write on another client never steals the lock ("first I/O wins" is how
//! ceph-iscsi ping-pongs); the lock only moves through [`take_over`].

use std::ffi::{c_char, CStr};
use std::io;
use std::ptr;
use std::time::Duration;

use vds_rbd_sys::rbd_lock_mode_t_RBD_LOCK_MODE_EXCLUSIVE as EXCLUSIVE;

use crate::rados::{ConfigObject, Lease};
use crate::rbd::{check, cstr, Cluster, RbdStore};

/// Ceph's `EBLOCKLISTED` (an alias of `ESHUTDOWN` on Linux).
pub const EBLOCKLISTED: i32 = libc::ESHUTDOWN;

/// The payload of a fenced client's I/O error (see [`fenced`], [`is_fenced`]).
#[derive(Debug)]
pub struct Fenced {
    what: String,
}

impl std::fmt::Display for Fenced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: this client is fenced (blocklisted, or no longer holds the image's lock)",
            self.what
        )
    }
}

impl std::error::Error for Fenced {}

/// The error of an I/O refused because this client is fenced.
pub fn fenced(what: &str) -> io::Error {
    io::Error::other(Fenced {
        what: what.to_string(),
    })
}

/// Whether `err` (or an `io::Error` it wraps) says this client is fenced.
pub fn is_fenced(err: &io::Error) -> bool {
    let mut inner = err.get_ref();
    // Bounded: a wrapper chain deeper than this is not one we make.
    for _ in 0..8 {
        let Some(e) = inner else { return false };
        if e.is::<Fenced>() {
            return true;
        }
        inner = e.downcast_ref::<io::Error>().and_then(io::Error::get_ref);
    }
    false
}

/// [`check`] for an image's I/O: besides `EBLOCKLISTED`, `EROFS` is fencing too. A handle in
/// manual lock mode (every gateway's, see [`RbdStore::lock_acquire`]) that does not hold the
/// exclusive lock gets it for a write: the owner is another gateway, and the host must use
/// another path, never see GOOD.
pub(crate) fn check_io(r: i64, what: &str) -> io::Result<i64> {
    if r == -i64::from(libc::EROFS) {
        return Err(fenced(what));
    }
    check(r, what)
}

impl Cluster {
    /// This client's own address as the OSDs see it (what a survivor blocklists).
    pub fn address(&self) -> io::Result<String> {
        let mut addrs: *mut c_char = ptr::null_mut();
        // SAFETY: a connected handle and a valid out-pointer; the string librados allocates
        // is copied and freed below.
        let r = unsafe { self.api.rados_getaddrs(self.handle, &mut addrs) };
        check(r.into(), "rados_getaddrs")?;
        if addrs.is_null() {
            return Err(io::Error::other("rados_getaddrs answered no address"));
        }
        // SAFETY: a NUL-terminated string allocated by librados for this call.
        let s = unsafe { CStr::from_ptr(addrs) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: allocated by librados for this call, freed once.
        unsafe { self.api.rados_buffer_free(addrs) };
        Ok(s)
    }

    /// Blocklists the client at `addr` (as [`Cluster::address`] gave it) for `expire`
    /// (rounded up to whole seconds, at least one): from the next OSD map on, every OSD refuses
    /// its operations and drops its watches.
    pub fn blocklist(&self, addr: &str, expire: Duration) -> io::Result<()> {
        let a = cstr(addr, "client address")?;
        let secs = u32::try_from(expire.as_secs() + u64::from(expire.subsec_nanos() > 0))
            .unwrap_or(u32::MAX)
            .max(1);
        // SAFETY: a connected handle and a NUL-terminated address (librados only reads it,
        // although the C prototype is not const).
        let r = unsafe {
            self.api
                .rados_blocklist_add(self.handle, a.as_ptr().cast_mut(), secs)
        };
        check(r.into(), &format!("blocklisting {addr}")).map(|_| ())
    }

    /// Waits until this client has the cluster's latest OSD map (so that a blocklist entry
    /// just added is in force for everything this client does next).
    pub fn wait_for_latest_osdmap(&self) -> io::Result<()> {
        // SAFETY: a connected handle.
        let r = unsafe { self.api.rados_wait_for_latest_osdmap(self.handle) };
        check(r.into(), "waiting for the latest OSD map").map(|_| ())
    }
}

impl RbdStore {
    /// Takes the image's exclusive lock, and turns off librbd's automatic lock transitions for
    /// this handle: no other client's request moves it away, and this client's I/O never
    /// requests it. Held until [`RbdStore::lock_release`], the image's close, or a break.
    pub fn lock_acquire(&self) -> io::Result<()> {
        // SAFETY: an open image.
        let r = unsafe { self.cluster.api.rbd_lock_acquire(self.image, EXCLUSIVE) };
        check(r.into(), &format!("taking the lock of {}", self.name)).map(|_| ())
    }

    /// Releases the image's exclusive lock.
    pub fn lock_release(&self) -> io::Result<()> {
        // SAFETY: an open image.
        let r = unsafe { self.cluster.api.rbd_lock_release(self.image) };
        check(r.into(), &format!("releasing the lock of {}", self.name)).map(|_| ())
    }

    /// The addresses of the clients holding the image's exclusive lock (none when free).
    pub fn lock_owners(&self) -> io::Result<Vec<String>> {
        const MAX: usize = 8;
        let mut owners: [*mut c_char; MAX] = [ptr::null_mut(); MAX];
        let mut n = MAX;
        let mut mode = EXCLUSIVE;
        // SAFETY: an open image; `owners` has room for `n` pointers, filled by librbd and
        // released by the cleanup call below.
        let r = unsafe {
            self.cluster
                .api
                .rbd_lock_get_owners(self.image, &mut mode, owners.as_mut_ptr(), &mut n)
        };
        if r == -libc::ENOENT {
            return Ok(Vec::new());
        }
        check(r.into(), &format!("the lock owners of {}", self.name))?;
        let n = n.min(MAX);
        let out = owners[..n]
            .iter()
            .filter(|p| !p.is_null())
            // SAFETY: NUL-terminated strings librbd allocated for this call.
            .map(|&p| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
            .collect();
        // SAFETY: the `n` strings librbd filled in, released once.
        unsafe {
            self.cluster
                .api
                .rbd_lock_get_owners_cleanup(owners.as_mut_ptr(), n)
        };
        Ok(out)
    }

    /// Breaks the exclusive lock held by `owner` (an address from [`RbdStore::lock_owners`]);
    /// librbd blocklists that owner first (`rbd_blocklist_on_break_lock`).
    pub fn lock_break(&self, owner: &str) -> io::Result<()> {
        let o = cstr(owner, "lock owner")?;
        // SAFETY: an open image and a NUL-terminated owner.
        let r = unsafe {
            self.cluster
                .api
                .rbd_lock_break(self.image, EXCLUSIVE, o.as_ptr())
        };
        check(
            r.into(),
            &format!("breaking {owner}'s lock of {}", self.name),
        )
        .map(|_| ())
    }
}

/// How long a blocklist entry made by a take-over lasts: far longer than any gateway's
/// restart, which makes a new RADOS client (a new address) anyway.
pub const BLOCKLIST_TIME: Duration = Duration::from_secs(3600);

/// What a take-over did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TakeOver {
    /// The lease is ours (the value written) and so is the image's exclusive lock.
    Won(Lease),
    /// Another client changed the lease first: nothing was done.
    Lost,
}

/// Takes the LUN `lun` over from the lease value `seen` (the raw value the caller judged
/// expired, empty for none): compare-and-set of the lease to `me` with the next generation;
/// then, only when that won, the old owner's address blocklisted, the latest OSD map awaited
/// and the image's exclusive lock taken (a stale owner's lock broken first). An error after
/// the compare-and-set leaves the lease won but maybe not the lock: the caller takes the lock
/// again later (it renews a lease it holds).
///
/// The compare-and-set is the one decision: of several survivors racing from the same value,
/// one wins; the others change nothing (not the blocklist, not the lock).
pub fn take_over(
    obj: &ConfigObject,
    cluster: &Cluster,
    image: &RbdStore,
    lun: &str,
    seen: &[u8],
    me: &str,
) -> io::Result<TakeOver> {
    let old = if seen.is_empty() {
        None
    } else {
        Some(Lease::decode(seen)?)
    };
    let addr = cluster.address()?;
    let lease = Lease {
        owner: me.to_string(),
        addr: addr.clone(),
        generation: old.as_ref().map_or(1, |l| l.generation + 1),
        renewals: 0,
    };
    if !obj.lease_cas(lun, seen, &lease)? {
        return Ok(TakeOver::Lost);
    }
    if let Some(old) = old.filter(|o| o.addr != addr) {
        cluster.blocklist(&old.addr, BLOCKLIST_TIME)?;
        tracing::warn!(lun, owner = %old.owner, addr = %old.addr, "lease taken over; the old owner is blocklisted");
    }
    cluster.wait_for_latest_osdmap()?;
    // A lock without a previous lease is held, if at all, by a live gateway's I/O before any
    // owner existed (librbd's automatic mode): asked for, it hands the lock over. Breaking it
    // would blocklist that gateway's whole client.
    let stale = if seen.is_empty() {
        Vec::new()
    } else {
        image.lock_owners()?
    };
    for owner in stale {
        if owner != addr {
            match image.lock_break(&owner) {
                Ok(()) => {}
                // Released or broken meanwhile.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    image.lock_acquire()?;
    Ok(TakeOver::Won(lease))
}

#[cfg(test)]
mod tests {
    //! Against a real one-node Ceph (`scripts/ceph-cluster`, monitor ports 46810 and 46812 to
    //! 46814): blocklisted clients, the exclusive lock, lease races and a killed owner.

    use std::io::{BufRead, BufReader, Write};
    use std::path::Path;
    use std::process::{Command, Stdio};
    use std::time::Instant;

    use super::*;
    use crate::rados::LeaseClock;
    use crate::rbd::tests::TestCluster;
    use crate::BackingStore;

    /// Two clients: A holds the lock and writes; B blocklists A; A's next write is refused as
    /// fenced (so the SCSI layer answers 04/0A, not GOOD, not a medium error); B breaks A's
    /// lock, takes it and writes; A stays fenced.
    #[test]
    fn a_blocklisted_client_is_fenced_and_the_survivor_takes_the_lock() {
        let tc = TestCluster::start(46810);
        let a = Cluster::connect(&tc.conf(), "client.admin").unwrap();
        let b = Cluster::connect(&tc.conf(), "client.admin").unwrap();
        let (aa, ba) = (a.address().unwrap(), b.address().unwrap());
        assert_ne!(aa, ba, "two clients, two addresses");
        a.create_image("rbd", "f", 8 << 20).unwrap();
        let sa = a.open_image("rbd", "f").unwrap();
        let sb = b.open_image("rbd", "f").unwrap();
        assert_eq!(sa.lock_owners().unwrap(), Vec::<String>::new());
        sa.lock_acquire().unwrap();
        assert_eq!(sa.lock_owners().unwrap(), [aa.as_str()]);
        sa.write_at(&[1u8; 4096], 0, true).unwrap();
        // A holds the lock with automatic transitions off: B cannot take it by asking.
        let t = Instant::now();
        let e = sb.lock_acquire().unwrap_err();
        println!("B's lock_acquire while A holds it: {e} ({:?})", t.elapsed());
        assert!(!is_fenced(&e), "{e}");
        assert_eq!(sb.lock_owners().unwrap(), [aa.as_str()]);
        // Refused, B's handle is in manual mode all the same: its write does not steal the
        // lock, it is refused as fenced (the host must use the owner's path).
        let t = Instant::now();
        let e = sb.write_at(&[9u8; 4096], 0, false).unwrap_err();
        assert!(
            is_fenced(&e),
            "a non-owner's write: {e} ({:?})",
            t.elapsed()
        );
        assert_eq!(sb.lock_owners().unwrap(), [aa.as_str()]);
        let mut buf = [0u8; 4096];
        sb.read_at(&mut buf, 0).unwrap();
        assert_eq!(buf, [1u8; 4096], "a non-owner reads");

        b.blocklist(&aa, Duration::from_secs(600)).unwrap();
        b.wait_for_latest_osdmap().unwrap();
        let e = sa.write_at(&[2u8; 4096], 0, false).unwrap_err();
        assert!(is_fenced(&e), "a blocklisted client's write: {e}");
        let e = sa.flush().unwrap_err();
        assert!(is_fenced(&e), "a blocklisted client's flush: {e}");

        for owner in sb.lock_owners().unwrap() {
            sb.lock_break(&owner).unwrap();
        }
        sb.lock_acquire().unwrap();
        assert_eq!(sb.lock_owners().unwrap(), [ba.as_str()]);
        sb.write_at(&[3u8; 4096], 0, true).unwrap();
        sb.read_at(&mut buf, 0).unwrap();
        assert_eq!(buf, [3u8; 4096]);
        let e = sa.write_at(&[4u8; 4096], 0, true).unwrap_err();
        assert!(is_fenced(&e), "still fenced: {e}");
        sb.read_at(&mut buf, 0).unwrap();
        assert_eq!(buf, [3u8; 4096], "the fenced write did not land");
        // Plain errors are not fencing.
        assert!(!is_fenced(&io::Error::from_raw_os_error(libc::EIO)));
        assert!(!is_fenced(&io::Error::from_raw_os_error(libc::ESHUTDOWN)));
        assert!(is_fenced(&io::Error::other(fenced("x"))));
        drop(sa);
        drop(a);
    }

    fn kv(k: &str, v: &str) -> (String, Vec<u8>) {
        (k.to_string(), v.as_bytes().to_vec())
    }

    /// Leases change by compare-and-set on their own key and never move `version`; two
    /// survivors racing to take one expired lease: exactly one wins, blocklists the old owner
    /// and holds the lock; the loser changes nothing. A renewing owner is never judged expired.
    #[test]
    fn a_lease_is_taken_by_exactly_one_survivor_and_never_from_a_renewing_owner() {
        let tc = TestCluster::start(46812);
        let old = Cluster::connect(&tc.conf(), "client.admin").unwrap();
        let c1 = Cluster::connect(&tc.conf(), "client.admin").unwrap();
        let c2 = Cluster::connect(&tc.conf(), "client.admin").unwrap();
        let o = ConfigObject::open(&old, "rbd", "vds.lease.config").unwrap();
        let e = o
            .lease_cas("lun1", b"", &lease("gw-old", &old, 1))
            .unwrap_err();
        assert_eq!(
            e.kind(),
            io::ErrorKind::NotFound,
            "no object, no lease: {e}"
        );
        assert!(o.create().unwrap());
        assert_eq!(o.update(0, &[kv("row/x", "1")], &[]).unwrap(), Ok(1));

        // Bad input is refused before RADOS sees it.
        for bad in ["", "a/b", "a\0b", &"x".repeat(129)] {
            let e = o.lease(bad).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
        let mut l = lease("gw-old", &old, 1);
        l.owner = "two\nlines".into();
        assert_eq!(
            o.lease_cas("lun1", b"", &l).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        for junk in [
            &b"junk"[..],
            b"vds-lease 1\n1\n0\nowner",
            b"vds-lease 1\nx\n0\no\na",
        ] {
            assert!(Lease::decode(junk).is_err());
        }

        // The old owner takes lease and lock; a second claim from "no lease" loses.
        old.create_image("rbd", "l", 8 << 20).unwrap();
        let simg = old.open_image("rbd", "l").unwrap();
        let TakeOver::Won(held) = take_over(&o, &old, &simg, "lun1", b"", "gw-old").unwrap() else {
            panic!("the first claim wins");
        };
        assert_eq!((held.generation, held.renewals), (1, 0));
        assert!(!o.lease_cas("lun1", b"", &lease("gw-x", &c1, 1)).unwrap());
        let raw = o.lease("lun1").unwrap();
        assert_eq!(Lease::decode(&raw).unwrap(), held);
        // Renewals move the value, never the version; the config's own keys are untouched.
        let renewed = held.renewed();
        assert!(o.lease_cas("lun1", &raw, &renewed).unwrap());
        assert!(
            !o.lease_cas("lun1", &raw, &renewed.renewed()).unwrap(),
            "stale"
        );
        let snap = o.read().unwrap();
        assert_eq!(snap.version, 1);
        assert_eq!(snap.keys["row/x"], b"1");
        simg.write_at(&[5u8; 4096], 0, true).unwrap();

        // A renewing owner (every 250 ms) is never judged expired by a survivor whose lease
        // time is 1 s, over 3 s.
        let o1 = ConfigObject::open(&c1, "rbd", "vds.lease.config").unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut cur = renewed.clone();
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let next = cur.renewed();
                    assert!(o.lease_cas("lun1", &cur.encode(), &next).unwrap());
                    cur = next;
                    std::thread::sleep(Duration::from_millis(250));
                }
            });
            let mut clock = LeaseClock::new(Duration::from_secs(1));
            let t = Instant::now();
            let mut expired = 0;
            while t.elapsed() < Duration::from_secs(3) {
                let v = o1.lease("lun1").unwrap_or_default();
                expired += usize::from(clock.observe(&v, Instant::now()));
                std::thread::sleep(Duration::from_millis(100));
            }
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            assert_eq!(expired, 0, "a renewing owner was judged expired");
        });
        let last = o1.lease("lun1").unwrap();
        assert_eq!(Lease::decode(&last).unwrap().generation, 1);
        assert!(Lease::decode(&last).unwrap().renewals > 5);

        // The owner stops renewing: each survivor judges it expired on its own clock, and both
        // race from the same value. Exactly one wins.
        let mut clock = LeaseClock::new(Duration::from_secs(1));
        let t = Instant::now();
        while !clock.observe(&o1.lease("lun1").unwrap(), Instant::now()) {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(t.elapsed() >= Duration::from_secs(1));
        let i1 = c1.open_image("rbd", "l").unwrap();
        let i2 = c2.open_image("rbd", "l").unwrap();
        let o2 = ConfigObject::open(&c2, "rbd", "vds.lease.config").unwrap();
        let barrier = std::sync::Barrier::new(2);
        let (r1, r2) = std::thread::scope(|s| {
            let h1 = s.spawn(|| {
                barrier.wait();
                take_over(&o1, &c1, &i1, "lun1", &last, "gw-1").unwrap()
            });
            let h2 = s.spawn(|| {
                barrier.wait();
                take_over(&o2, &c2, &i2, "lun1", &last, "gw-2").unwrap()
            });
            (h1.join().unwrap(), h2.join().unwrap())
        });
        let (winner, wimg, loser_img, wc) = match (&r1, &r2) {
            (TakeOver::Won(w), TakeOver::Lost) => (w, &i1, &i2, &c1),
            (TakeOver::Lost, TakeOver::Won(w)) => (w, &i2, &i1, &c2),
            other => panic!("exactly one survivor wins: {other:?}"),
        };
        assert_eq!(winner.generation, 2);
        assert_eq!(Lease::decode(&o1.lease("lun1").unwrap()).unwrap(), *winner);
        assert_eq!(wimg.lock_owners().unwrap(), [wc.address().unwrap()]);
        wimg.write_at(&[6u8; 4096], 0, true).unwrap();
        // The old owner is fenced; the loser was not blocklisted (it reads), and holds no lock.
        let e = simg.write_at(&[7u8; 4096], 0, true).unwrap_err();
        assert!(is_fenced(&e), "{e}");
        let mut buf = [0u8; 4096];
        loser_img.read_at(&mut buf, 0).unwrap();
        assert_eq!(buf, [6u8; 4096]);
        assert!(
            o1.lease_remove("lun1", &last).is_ok_and(|r| !r),
            "stale remove"
        );
        assert!(o1.lease_remove("lun1", &winner.encode()).unwrap());
        assert_eq!(o1.lease("lun1").unwrap(), b"");
        assert_eq!(o1.read().unwrap().version, 1);
    }

    fn lease(owner: &str, c: &Cluster, generation: u64) -> Lease {
        Lease {
            owner: owner.into(),
            addr: c.address().unwrap(),
            generation,
            renewals: 0,
        }
    }

    /// The lease time of the kill -9 test (the target of docs/SCALEOUT.md is a failover
    /// under 10 s with a lease of about 4 s).
    const LEASE: Duration = Duration::from_secs(4);
    const CHILD_ENV: &str = "VDS_FENCE_TEST_OWNER_CONF";

    /// The killed owner's part, in a child process: take lease and lock, write, say so on
    /// stdout, then renew every second until killed.
    fn owner_child(conf: &str) -> ! {
        let c = Cluster::connect(Path::new(conf), "client.admin").unwrap();
        let o = ConfigObject::open(&c, "rbd", "vds.kill.config").unwrap();
        let img = c.open_image("rbd", "k").unwrap();
        let TakeOver::Won(mut l) = take_over(&o, &c, &img, "lun1", b"", "gw-child").unwrap() else {
            panic!("the child takes the free lease");
        };
        img.write_at(&[9u8; 4096], 0, true).unwrap();
        // Straight to the pipe (the test harness may capture `println!`).
        let mut out = std::io::stdout();
        writeln!(out, "OWNER {}", c.address().unwrap()).unwrap();
        out.flush().unwrap();
        // The parent holds our stdin: when it is gone, so are we (no orphan renewing).
        std::thread::spawn(|| {
            let _ = std::io::Read::read(&mut std::io::stdin(), &mut [0u8; 1]);
            std::process::exit(0);
        });
        loop {
            std::thread::sleep(LEASE / 4);
            let next = l.renewed();
            assert!(o.lease_cas("lun1", &l.encode(), &next).unwrap());
            l = next;
        }
    }

    /// kill -9 of a process that owns a lease and the image's lock: the survivor judges the
    /// lease expired on its own clock, takes it over and holds the lock; the time from the
    /// kill is printed (and must be under 10 s).
    #[test]
    fn a_killed_owner_is_taken_over_within_the_failover_budget() {
        if let Ok(conf) = std::env::var(CHILD_ENV) {
            owner_child(&conf);
        }
        let tc = TestCluster::start(46813);
        let c = Cluster::connect(&tc.conf(), "client.admin").unwrap();
        let o = ConfigObject::open(&c, "rbd", "vds.kill.config").unwrap();
        assert!(o.create().unwrap());
        c.create_image("rbd", "k", 8 << 20).unwrap();
        let img = c.open_image("rbd", "k").unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "fence::tests::a_killed_owner_is_taken_over_within_the_failover_budget",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, tc.conf())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        struct Kill(std::process::Child);
        impl Drop for Kill {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let out = child.stdout.take().unwrap();
        let mut child = Kill(child);
        let mut lines = BufReader::new(out).lines();
        let child_addr = loop {
            let line = lines
                .next()
                .expect("the child says it owns the lease")
                .unwrap();
            // The harness's "test NAME ... " has no newline of its own: find ours anywhere.
            if let Some((_, a)) = line.split_once("OWNER ") {
                break a.to_string();
            }
        };
        assert_eq!(img.lock_owners().unwrap(), [child_addr.as_str()]);
        // While the child renews, the survivor sees a live lease (and starts its clock).
        let mut clock = LeaseClock::new(LEASE);
        let t = Instant::now();
        while t.elapsed() < LEASE + Duration::from_secs(1) {
            assert!(!clock.observe(&o.lease("lun1").unwrap(), Instant::now()));
            std::thread::sleep(Duration::from_millis(200));
        }
        // SAFETY: kill(2) on the pid of our own child, not yet waited for.
        assert_eq!(unsafe { libc::kill(child.0.id() as i32, libc::SIGKILL) }, 0);
        let killed = Instant::now();
        let _ = child.0.wait();
        let won = loop {
            assert!(killed.elapsed() < Duration::from_secs(30), "no take-over");
            let v = o.lease("lun1").unwrap();
            if clock.observe(&v, Instant::now()) {
                match take_over(&o, &c, &img, "lun1", &v, "gw-survivor").unwrap() {
                    TakeOver::Won(l) => break l,
                    TakeOver::Lost => panic!("no one else races here"),
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let took = killed.elapsed();
        println!(
            "failover: lease and lock held by the survivor {:.2} s after kill -9 of the owner (lease time {} s)",
            took.as_secs_f64(),
            LEASE.as_secs()
        );
        assert_eq!(won.generation, 2);
        assert_eq!(img.lock_owners().unwrap(), [c.address().unwrap()]);
        let mut buf = [0u8; 4096];
        img.read_at(&mut buf, 0).unwrap();
        assert_eq!(buf, [9u8; 4096], "the owner's acknowledged write");
        img.write_at(&[1u8; 4096], 0, true).unwrap();
        // The clock ran from the owner's last renewal (at most LEASE / 4 before the kill, seen
        // within a 200 ms poll): never sooner than that.
        assert!(
            took + LEASE / 4 + Duration::from_millis(200) >= LEASE,
            "taken over before the lease time: {took:?}"
        );
        assert!(took < Duration::from_secs(10), "failover took {took:?}");
    }
}
