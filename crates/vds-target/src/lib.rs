//! vds-target: the iSCSI data path, the only crate with sockets.
//!
//! [`DataPath`] implements [`vds_dataplane::DataPlane`]: it holds the current
//! [`DataView`] (swapped atomically on every publish), one tokio listener per bound portal, and
//! the connections that came in through each portal. Each connection runs the sans-IO engines of
//! `vds-iscsi` (login, then full-feature phase) and executes SCSI commands on the target's
//! [`vds_scsi::LunMap`]: on the connection's own I/O thread when the engine's command table
//! marks the command inline and the backing store answers without blocking
//! ([`vds_scsi::Mode::Inline`]), otherwise on the runtime's blocking pool.
//!
//! Invariants: a login through a portal reaches only targets whose portal groups hold that
//! portal; a connection's end (logout, drop, reinstatement, a panic) aborts only its own tasks
//! and tells every logical unit of its target that the I_T nexus is gone, through drop guards
//! that no unwinding skips; commands already handed to a logical unit always complete before
//! their connection is released (a command whose execution panics is answered 04/44/00).

mod address;
mod conn;
mod exec;
mod io;
mod session;
mod telemetry;
mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use parking_lot::{Condvar, Mutex};
use tokio::sync::mpsc;
use uuid::Uuid;
use vds_dataplane::{DataPlane, DataView};
use vds_iscsi::conn::{ConnConfig, MemBudget};
use vds_iscsi::TargetLimits;

pub use io::default_io_threads;
pub use session::SessionInfo;

/// Limits of the data path; exceeding one is refused cleanly (a login status, a closed CmdSN
/// window), never with a crash.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Normal sessions per target; more logins get 0x0302 (out of resources).
    pub sessions_per_target: usize,
    /// Connections per portal; more get 0x0301 (service unavailable) at login.
    pub connections_per_portal: usize,
    /// A login not finished within this is dropped (no slow-loris).
    pub login_timeout: Duration,
    /// Negotiation values: data segment sizes, bursts, R2Ts, queue depth per session.
    pub negotiation: TargetLimits,
    /// NOP-In keep-alive, the largest write buffered per command, and the bytes one
    /// connection may hold (`max_connection_buffer_bytes`).
    pub connection: ConnConfig,
    /// Bytes all connections together may hold (`max_buffer_bytes`): past it new commands
    /// answer TASK SET FULL and logins 0x0302 (see `vds_iscsi::conn::MemBudget`).
    pub max_buffer_bytes: usize,
    /// Threads that run connections (each its own reactor; see `io.rs`). Default: one per
    /// core.
    pub io_threads: usize,
    /// Test-only: a command with the magic CDB of `exec::injected_panic` panics on the data
    /// path, to prove that a panic ends one connection only and releases everything it held.
    /// Set by vdsd `--enable-fault-injection` alone; off, that CDB is an unknown opcode.
    pub panic_injection: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            sessions_per_target: 256,
            connections_per_portal: 1024,
            login_timeout: Duration::from_secs(15),
            negotiation: TargetLimits::default(),
            connection: ConnConfig::default(),
            max_buffer_bytes: 256 << 20,
            io_threads: io::default_io_threads(),
            panic_injection: false,
        }
    }
}

/// A message to one connection's task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnCtl {
    /// AsyncEvent 1 with this many seconds.
    RequestLogout(u16),
    /// Stop taking commands, let accepted ones complete, then close.
    Drop,
    /// Reinstated or reset away: abort what can be, close.
    Kill,
}

pub(crate) struct ConnEntry {
    pub ctl: mpsc::UnboundedSender<ConnCtl>,
}

pub(crate) struct PortalState {
    pub addr: SocketAddr,
    pub listener: Option<tokio::task::JoinHandle<()>>,
    pub conns: HashMap<u64, ConnEntry>,
}

pub(crate) struct Inner {
    /// Runs the listeners.
    pub rt: tokio::runtime::Handle,
    /// Runs the connections.
    pub io: io::IoPool,
    pub view: ArcSwap<DataView>,
    pub limits: Limits,
    pub portals: Mutex<HashMap<Uuid, PortalState>>,
    /// Signalled whenever a connection ends (unbind waits on it).
    pub conn_gone: Condvar,
    pub sessions: Mutex<session::SessionTable>,
    pub next_id: AtomicU64,
    /// The daemon-wide buffer budget every connection draws on.
    pub budget: MemBudget,
    /// Every connection's counters (see `telemetry.rs`).
    pub tele: Arc<telemetry::Registry>,
}

impl Inner {
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Remove a finished connection from its portal and wake `unbind_portal`.
    pub fn conn_finished(&self, portal: Uuid, conn_id: u64) {
        let mut p = self.portals.lock();
        if let Some(ps) = p.get_mut(&portal) {
            ps.conns.remove(&conn_id);
        }
        self.conn_gone.notify_all();
    }
}

/// The iSCSI data path.
#[derive(Clone)]
pub struct DataPath {
    inner: Arc<Inner>,
    /// The I/O threads stop when the last clone goes.
    _io: Arc<io::IoGuard>,
}

impl DataPath {
    /// A data path serving nothing yet: listeners run on `rt`, connections on
    /// `limits.io_threads` threads of its own. Usable from any thread. Fails only when the
    /// threads cannot be started.
    pub fn new(rt: tokio::runtime::Handle, limits: Limits) -> std::io::Result<Self> {
        let (io, guard) = io::IoPool::start(limits.io_threads)?;
        let budget = MemBudget::new(limits.max_buffer_bytes);
        Ok(DataPath {
            _io: Arc::new(guard),
            inner: Arc::new(Inner {
                rt,
                io,
                view: ArcSwap::from_pointee(DataView::default()),
                limits,
                portals: Mutex::new(HashMap::new()),
                conn_gone: Condvar::new(),
                sessions: Mutex::new(session::SessionTable::default()),
                next_id: AtomicU64::new(1),
                budget,
                tele: Arc::new(telemetry::Registry::default()),
            }),
        })
    }

    /// The view currently served.
    pub fn view(&self) -> Arc<DataView> {
        self.inner.view.load_full()
    }

    /// Bytes of the daemon-wide buffer budget granted to connections now.
    pub fn buffer_bytes_granted(&self) -> usize {
        self.inner.budget.granted()
    }

    /// The sessions currently logged in.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        self.inner.sessions.lock().list()
    }

    /// Connections currently open through portal `id`.
    pub fn connections(&self, id: Uuid) -> usize {
        self.inner
            .portals
            .lock()
            .get(&id)
            .map(|p| p.conns.len())
            .unwrap_or(0)
    }

    /// The address portal `id` is bound to.
    pub fn bound_addr(&self, id: Uuid) -> Option<SocketAddr> {
        self.inner.portals.lock().get(&id).map(|p| p.addr)
    }

    fn wait_conns_gone(&self, id: Uuid, deadline: Instant) -> bool {
        let mut p = self.inner.portals.lock();
        loop {
            let n = p.get(&id).map(|ps| ps.conns.len()).unwrap_or(0);
            if n == 0 {
                return true;
            }
            if self
                .inner
                .conn_gone
                .wait_until(&mut p, deadline)
                .timed_out()
            {
                return p.get(&id).map(|ps| ps.conns.is_empty()).unwrap_or(true);
            }
        }
    }
}

impl DataPlane for DataPath {
    fn publish(&self, view: Arc<DataView>) {
        self.inner.view.store(view.clone());
        // Sessions whose target is gone, or no longer reachable through the portal they came
        // in by, end: accepted commands complete, then the connection closes.
        for (target, portal, ctl) in self.inner.sessions.lock().routes() {
            let reachable = view.targets.iter().any(|t| {
                t.id == target && t.portal_groups.iter().any(|g| g.portals.contains(&portal))
            });
            if !reachable {
                let _ = ctl.send(ConnCtl::Drop);
            }
        }
    }

    fn bind_portal(&self, id: Uuid, addr: SocketAddr) -> std::io::Result<()> {
        // A portal bound again moves to the new address.
        if self.inner.portals.lock().contains_key(&id) {
            self.unbind_portal(id, Duration::ZERO);
        }
        let _guard = self.inner.rt.enter();
        let sock = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        sock.set_reuseaddr(true)?;
        if addr.is_ipv6() && addr.ip().is_unspecified() {
            // `[::]` accepts IPv4 too, whatever net.ipv6.bindv6only says: SendTargets lists it
            // with an IPv4 address to IPv4 hosts (address.rs), and a `0.0.0.0` portal on the
            // same port is refused with EADDRINUSE rather than half-working.
            dual_stack(&sock)?;
        }
        sock.bind(addr)?;
        let listener = sock.listen(1024)?;
        let local = listener.local_addr()?;
        let inner = self.inner.clone();
        let task = self.inner.rt.spawn(conn::accept_loop(inner, id, listener));
        self.inner.portals.lock().insert(
            id,
            PortalState {
                addr: local,
                listener: Some(task),
                conns: HashMap::new(),
            },
        );
        tracing::info!(%local, portal = %id, "portal listening");
        Ok(())
    }

    fn unbind_portal(&self, id: Uuid, logout_timeout: Duration) {
        let (ctls, listener): (Vec<mpsc::UnboundedSender<ConnCtl>>, _) = {
            let mut p = self.inner.portals.lock();
            let Some(ps) = p.get_mut(&id) else {
                return;
            };
            let listener = ps.listener.take();
            if let Some(l) = &listener {
                l.abort();
            }
            (ps.conns.values().map(|c| c.ctl.clone()).collect(), listener)
        };
        if let Some(l) = listener {
            // `abort` only asks: the listening socket closes when a worker drops the task.
            // Wait for that (bounded), so that once this returns new connections are refused
            // (BEHAVIOUR §4 "the listener closes at once") and the address can be bound again.
            let deadline = Instant::now() + Duration::from_secs(2);
            while !l.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let secs = logout_timeout.as_secs().min(u64::from(u16::MAX)) as u16;
        for c in &ctls {
            let _ = c.send(ConnCtl::RequestLogout(secs.max(1)));
        }
        let deadline = Instant::now() + logout_timeout;
        if !self.wait_conns_gone(id, deadline) {
            let rest: Vec<_> = self
                .inner
                .portals
                .lock()
                .get(&id)
                .map(|ps| ps.conns.values().map(|c| c.ctl.clone()).collect())
                .unwrap_or_default();
            for c in rest {
                let _ = c.send(ConnCtl::Drop);
            }
            // Accepted commands complete before their connection goes; bound the wait so a
            // stuck backing store cannot hang the provider forever.
            self.wait_conns_gone(id, Instant::now() + Duration::from_secs(120));
        }
        self.inner.portals.lock().remove(&id);
        tracing::info!(portal = %id, "portal closed");
    }

    fn initiators(&self, target: Uuid) -> Vec<String> {
        self.inner.sessions.lock().initiators(target)
    }

    fn sessions_snapshot(&self) -> Vec<vds_dataplane::SessionSnapshot> {
        self.inner.sessions.lock().snapshot()
    }

    fn telemetry(&self) -> vds_dataplane::Telemetry {
        let view = self.inner.view.load_full();
        let sessions = self.inner.sessions.lock().ports();
        let conns: Vec<(Uuid, u64)> = self
            .inner
            .portals
            .lock()
            .iter()
            .map(|(id, p)| (*id, p.conns.len() as u64))
            .collect();
        self.inner.tele.snapshot(&view, &sessions, conns)
    }
}

/// Clears IPV6_V6ONLY on an IPv6 socket that is not yet bound.
fn dual_stack(sock: &tokio::net::TcpSocket) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let off: libc::c_int = 0;
    // SAFETY: the descriptor is the live socket `sock` owns; the option value is a c_int that
    // outlives the call, and its size is passed with it.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
            (&off as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl Drop for Inner {
    fn drop(&mut self) {
        for ps in self.portals.get_mut().values_mut() {
            if let Some(l) = ps.listener.take() {
                l.abort();
            }
        }
    }
}
