//! Listener and connection tasks: accept, login phase (with its timeout and limits), then the
//! full-feature loop that drives `vds_iscsi::conn::Connection`.
//!
//! The full-feature loop is one task per connection, with no handoff per command: one read
//! brings in every PDU the socket holds, each command is first dispatched right there in
//! `vds_scsi::Mode::Inline` (READ and WRITE run when the backing store can answer without
//! blocking: a page-cached file, memory, null; see `BackingStore::try_read_at`), the commands
//! the engine answers `WouldBlock` for (every other command, and refused I/O) go to tokio's
//! blocking pool, and the responses of the whole batch leave in one vectored write.
//!
//! On a store with asynchronous I/O (RBD) the engine hands a command's store operation back
//! instead (`vds_scsi::Pending`): it is submitted from this task, the store's own thread runs
//! the completion callback, which only sends the result down the connection's completion
//! channel, and this task ends the command when it reads it. No thread waits on the store.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use uuid::Uuid;
use vds_dataplane::{DataView, TargetView};
use vds_iscsi::codes::{tmf, LoginStatus};
use vds_iscsi::conn::{CloseReason, ConnEnv, Connection, Event};
use vds_iscsi::login::{ChapSecrets, Login, LoginEnv, LoginStep, LoginTarget, LOGIN_MAX_DATA};
use vds_iscsi::pdu::{Bhs, Digests, Header, Pdu, PduError, BHS_LEN};
use vds_iscsi::{SessionParams, SessionType};
use vds_scsi::{AioBufs, AioError, ItNexus, Pending, WouldBlock};

use crate::address::target_address;
use crate::session::{SessionDetail, SessionEntry, SessionStats};
use crate::telemetry::{Began as Counted, ConnTelemetry};
use crate::wire::{BufPool, RxBuf, TxQueue};
use crate::{exec, ConnCtl, ConnEntry, Inner};

pub(crate) async fn accept_loop(inner: Arc<Inner>, portal: Uuid, listener: TcpListener) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let conn_id = inner.next_id();
        let (tx, rx) = mpsc::unbounded_channel();
        let refuse = {
            let mut p = inner.portals.lock();
            let Some(ps) = p.get_mut(&portal) else {
                return;
            };
            if ps.conns.len() >= inner.limits.connections_per_portal {
                Some(LoginStatus::SERVICE_UNAVAILABLE)
            } else {
                ps.conns.insert(conn_id, ConnEntry { ctl: tx.clone() });
                None
            }
        };
        let registered = refuse.is_none().then(|| PortalSlot {
            inner: inner.clone(),
            portal,
            conn_id,
        });
        // The connection moves to an I/O thread's reactor for its whole life.
        let std_stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accepted socket unusable");
                continue;
            }
        };
        let inner2 = inner.clone();
        let (io, slot) = inner.io.pick();
        io.spawn(async move {
            // Declared first, dropped last: the portal's count falls once everything else of
            // the connection (session, nexus) is released, however the task ends.
            let _registered = registered;
            let _slot = slot;
            match TcpStream::from_std(std_stream) {
                Ok(stream) => {
                    serve(
                        inner2.clone(),
                        portal,
                        conn_id,
                        stream,
                        peer,
                        tx,
                        rx,
                        refuse,
                    )
                    .await
                }
                Err(e) => tracing::warn!(error = %e, "accepted socket not registrable"),
            }
        });
    }
}

// Per-connection and per-session resources are released by drop guards, not by code at the end
// of a function: a panic on a connection's task unwinds through them (tokio drops the task's
// future), so the connection counts, the session table and the LUs' view of the nexus are
// right whatever ended the connection (BEHAVIOUR §13).

/// A connection's place in its portal's table (the per-portal connection count and what
/// `unbind_portal` waits for); dropping it removes the connection.
struct PortalSlot {
    inner: Arc<Inner>,
    portal: Uuid,
    conn_id: u64,
}

impl Drop for PortalSlot {
    fn drop(&mut self) {
        self.inner.conn_finished(self.portal, self.conn_id);
    }
}

/// A session this connection put in the session table; dropping it removes the session if it
/// is still this connection's (a reinstatement may have given the TSIH to another).
struct SessionSlot {
    inner: Arc<Inner>,
    tsih: u16,
    conn_id: u64,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.inner
            .sessions
            .lock()
            .remove_conn(self.tsih, self.conn_id);
    }
}

/// The I_T nexus of a normal session as the target's logical units know it. When the last
/// holder goes (the connection's task, and every command of it still running on the blocking
/// pool), every LU of the target is told the nexus is lost: its RESERVE(6) reservation is
/// released and the other nexuses hear of it (06/29/07), its unit attentions are forgotten.
struct NexusLoss {
    inner: Arc<Inner>,
    target: Uuid,
    nexus: Option<Arc<ItNexus>>,
}

impl NexusLoss {
    /// The orderly end, once the connection's commands have completed: on a blocking thread,
    /// since a LU's reservation lock may be held by a command that waits on its store.
    async fn release(self: Arc<Self>) {
        let Ok(mut me) = Arc::try_unwrap(self) else {
            // A command job still holds it: the loss happens when that job ends.
            return;
        };
        let Some(n) = me.nexus.take() else {
            return;
        };
        let (inner, target) = (me.inner.clone(), me.target);
        let _ = tokio::task::spawn_blocking(move || nexus_lost(&inner, target, &n)).await;
    }
}

impl Drop for NexusLoss {
    fn drop(&mut self) {
        // Reached without `release` only when the connection's task unwound (or a job held the
        // last reference): right here, so the loss is done before the connection's slot goes.
        if let Some(n) = self.nexus.take() {
            nexus_lost(&self.inner, self.target, &n);
        }
    }
}

/// Tell every logical unit of `target` (as the current view has it) that `nexus` is gone.
fn nexus_lost(inner: &Inner, target: Uuid, nexus: &ItNexus) {
    let view = inner.view.load_full();
    if let Some(tv) = view.targets.iter().find(|x| x.id == target) {
        exec::nexus_lost(&tv.luns, nexus);
    }
}

/// Read one whole PDU. `Ok(None)` on a clean EOF before a header.
async fn read_frame(
    rd: &mut OwnedReadHalf,
    digests: Digests,
    max_data: u32,
) -> std::io::Result<Option<(Bhs, Vec<u8>)>> {
    let mut h = [0u8; BHS_LEN];
    let mut got = 0;
    while got < BHS_LEN {
        let n = rd.read(&mut h[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        got += n;
    }
    let bhs = Bhs(h);
    if bhs.data_len() > max_data {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "data segment over MaxRecvDataSegmentLength",
        ));
    }
    let mut rest = vec![0u8; bhs.wire_rest_len(digests.header, digests.data)];
    rd.read_exact(&mut rest).await?;
    Ok(Some((bhs, rest)))
}

async fn write_pdu(wr: &mut OwnedWriteHalf, pdu: &Pdu, digests: Digests) -> std::io::Result<()> {
    let (h, d) = pdu
        .to_wire(digests)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    write_all_vectored(wr, &h, &d).await
}

async fn write_all_vectored(wr: &mut OwnedWriteHalf, a: &[u8], b: &[u8]) -> std::io::Result<()> {
    let (mut ia, mut ib) = (0usize, 0usize);
    while ia < a.len() || ib < b.len() {
        let bufs = [IoSlice::new(&a[ia..]), IoSlice::new(&b[ib..])];
        let n = wr.write_vectored(&bufs).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let take_a = n.min(a.len() - ia);
        ia += take_a;
        ib += n - take_a;
    }
    Ok(())
}

struct PortalLogin<'a> {
    inner: &'a Arc<Inner>,
    view: Arc<DataView>,
    portal: Uuid,
    conn_id: u64,
    ctl: mpsc::UnboundedSender<ConnCtl>,
    /// The target chosen at login, with the tag of the group holding this portal.
    target: Option<(TargetView, u16)>,
    /// A session to reinstate (closed before the new one starts).
    reinstated: Option<mpsc::UnboundedSender<ConnCtl>>,
    /// The session this login put in the table: removed again if the login does not
    /// complete (refused, timed out, socket gone, panic).
    registered: Option<SessionSlot>,
    /// The buffer-budget chunk this login was admitted on, held until its connection's own
    /// grant exists (so concurrent logins cannot be admitted on the same room).
    budget_hold: Option<vds_iscsi::conn::BudgetHold>,
    /// The connection's two ends, for the session table.
    local: SocketAddr,
    peer: SocketAddr,
    /// The counters of the session this login makes; its connection's task writes them.
    stats: Arc<SessionStats>,
}

fn tpgt_for(t: &TargetView, portal: Uuid) -> Option<u16> {
    t.portal_groups
        .iter()
        .find(|g| g.portals.contains(&portal))
        .map(|g| g.tag)
}

impl LoginEnv for PortalLogin<'_> {
    fn find_target(&mut self, name: &str) -> Option<LoginTarget> {
        let t = self
            .view
            .targets
            .iter()
            .find(|t| t.iqn.eq_ignore_ascii_case(name))?;
        let tag = tpgt_for(t, self.portal)?;
        self.target = Some((t.clone(), tag));
        Some(LoginTarget {
            name: t.iqn.clone(),
            alias: t.alias.clone(),
            tpgt: tag,
            chap: ChapSecrets {
                default_secret: t.chap.default_secret.clone(),
                initiator_secrets: t.chap.initiator_secrets.clone(),
                mutual_secrets: t.chap.mutual_secrets.clone(),
            },
        })
    }

    fn instate(&mut self, p: &SessionParams) -> Result<u16, LoginStatus> {
        // Every connection in full-feature phase holds a chunk of the buffer budget: past
        // the budget, logins are refused (BEHAVIOUR §13), before anything is allocated.
        let hold = self
            .inner
            .budget
            .hold(vds_iscsi::conn::BUDGET_CHUNK)
            .ok_or(LoginStatus::OUT_OF_RESOURCES)?;
        let tsih = self.instate_locked(p)?;
        self.budget_hold = Some(hold);
        if p.session_type == SessionType::Normal {
            // Outside the table's lock: a slot replaced here locks it to remove its session.
            self.registered = Some(SessionSlot {
                inner: self.inner.clone(),
                tsih,
                conn_id: self.conn_id,
            });
        }
        Ok(tsih)
    }

    fn random(&mut self, buf: &mut [u8]) {
        use rand::RngCore;
        rand::rngs::OsRng.fill_bytes(buf);
    }
}

impl PortalLogin<'_> {
    /// Allocate or take over the TSIH and put the session in the table.
    fn instate_locked(&mut self, p: &SessionParams) -> Result<u16, LoginStatus> {
        let mut table = self.inner.sessions.lock();
        if p.session_type == SessionType::Discovery {
            return Ok(table.alloc_tsih());
        }
        let Some((t, _)) = &self.target else {
            return Err(LoginStatus::TARGET_NOT_FOUND);
        };
        if p.tsih != 0 {
            // Adding or reinstating a connection: the session must exist and be this
            // initiator's; with one connection per session, reinstating its connection.
            match table.get(p.tsih) {
                Some(e)
                    if e.isid == p.isid
                        && e.target == t.id
                        && e.initiator.eq_ignore_ascii_case(&p.initiator_name) =>
                {
                    self.reinstated = Some(e.ctl.clone());
                }
                _ => return Err(LoginStatus::SESSION_DOES_NOT_EXIST),
            }
            let tsih = p.tsih;
            table.insert(tsih, self.entry(p, t.id));
            return Ok(tsih);
        }
        if let Some(old) = table.find(&p.initiator_name, p.isid, t.id) {
            if let Some(e) = table.get(old) {
                self.reinstated = Some(e.ctl.clone());
            }
            let old_conn = table.get(old).map(|e| e.conn_id).unwrap_or(0);
            table.remove_conn(old, old_conn);
        } else if table.count_for(t.id) >= self.inner.limits.sessions_per_target {
            return Err(LoginStatus::OUT_OF_RESOURCES);
        }
        let tsih = table.alloc_tsih();
        table.insert(tsih, self.entry(p, t.id));
        Ok(tsih)
    }

    /// The table's entry for the session `p` settles on (its keys are final at instatement).
    fn entry(&self, p: &SessionParams, target: Uuid) -> SessionEntry {
        let (iqn, tag, tpg) = self
            .target
            .as_ref()
            .map(|(t, tag)| (t.iqn.clone(), *tag, tpg_of(t, *tag)))
            .unwrap_or_default();
        SessionEntry {
            initiator: p.initiator_name.clone(),
            isid: p.isid,
            target,
            portal: self.portal,
            conn_id: self.conn_id,
            ctl: self.ctl.clone(),
            info: SessionDetail {
                target_iqn: iqn,
                initiator_alias: p.initiator_alias.clone(),
                portal_group_tag: tag,
                target_port_group: tpg,
                login_time: std::time::SystemTime::now(),
                connection: vds_dataplane::ConnectionSnapshot {
                    cid: p.cid,
                    portal: self.portal,
                    local: self.local,
                    peer: self.peer,
                    chap: p.chap_name.is_some(),
                    keys: negotiated_keys(p),
                },
            },
            stats: self.stats.clone(),
        }
    }
}

/// The ALUA target port group of the port with tag `tag` of `t` (0 when unknown).
fn tpg_of(t: &TargetView, tag: u16) -> u16 {
    t.portal_groups
        .iter()
        .find(|g| g.tag == tag)
        .map_or(0, |g| g.tpg)
}

/// The operational keys of a completed login, as the session snapshot shows them.
fn negotiated_keys(p: &SessionParams) -> vds_dataplane::NegotiatedKeys {
    vds_dataplane::NegotiatedKeys {
        header_digest: p.header_digest,
        data_digest: p.data_digest,
        target_max_recv_data_segment_length: p.max_recv_data_segment_length,
        initiator_max_recv_data_segment_length: p.max_xmit_data_segment_length,
        max_burst_length: p.max_burst_length,
        first_burst_length: p.first_burst_length,
        immediate_data: p.immediate_data,
        initial_r2t: p.initial_r2t,
        max_outstanding_r2t: p.max_outstanding_r2t,
        error_recovery_level: p.error_recovery_level,
        data_pdu_in_order: p.data_pdu_in_order,
        data_sequence_in_order: p.data_sequence_in_order,
        default_time2wait: p.default_time2wait,
        default_time2retain: p.default_time2retain,
        max_connections: p.max_connections,
    }
}

/// SendTargets as seen through one portal.
struct Discovery {
    inner: Arc<Inner>,
    portal: Uuid,
    /// The connection's local socket address: what a wildcard portal is listed as.
    local: Option<SocketAddr>,
}

impl ConnEnv for Discovery {
    fn send_targets(&mut self, query: &str, session: &SessionParams) -> Vec<(String, Vec<String>)> {
        let view = self.inner.view.load_full();
        let mut out = Vec::new();
        for t in &view.targets {
            if tpgt_for(t, self.portal).is_none() {
                continue;
            }
            let wanted = match (session.session_type, query) {
                (SessionType::Discovery, "All") => true,
                (_, "") | (SessionType::Normal, "All") => session
                    .target_name
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(&t.iqn)),
                (_, name) => name.eq_ignore_ascii_case(&t.iqn),
            };
            if !wanted {
                continue;
            }
            let mut addrs = Vec::new();
            for g in &t.portal_groups {
                for pid in &g.portals {
                    let listed = view.portals.iter().find(|p| p.id == *pid && p.online);
                    if let Some(a) = listed.and_then(|p| target_address(p, self.local)) {
                        addrs.push(format!("{a},{}", g.tag));
                    }
                }
            }
            out.push((t.iqn.clone(), addrs));
        }
        out
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    inner: Arc<Inner>,
    portal: Uuid,
    conn_id: u64,
    stream: TcpStream,
    peer: SocketAddr,
    ctl_tx: mpsc::UnboundedSender<ConnCtl>,
    mut ctl_rx: mpsc::UnboundedReceiver<ConnCtl>,
    refuse: Option<LoginStatus>,
) {
    let local = stream.local_addr().unwrap_or(peer);
    let (mut rd, mut wr) = stream.into_split();
    let login_deadline = inner.limits.login_timeout;
    let ends = Ends { local, peer };
    let login = tokio::time::timeout(
        login_deadline,
        login_phase(
            &inner, portal, conn_id, &mut rd, &mut wr, ctl_tx, refuse, ends,
        ),
    )
    .await;
    let (params, target, reinstated, _session, budget_hold, stats) = match login {
        Ok(Some(x)) => x,
        Ok(None) => return,
        Err(_) => {
            tracing::info!(%peer, "login timed out; connection dropped");
            return;
        }
    };
    if let Some(old) = reinstated {
        // The old session's tasks end and its nexus is lost (its task does that on Kill).
        let _ = old.send(ConnCtl::Kill);
    }
    let tsih = params.tsih;
    let nexus = target.as_ref().map(|(t, tag)| {
        Arc::new(ItNexus {
            id: inner.next_id(),
            initiator_name: params.initiator_name.clone(),
            initiator_port: format!(
                "{},i,0x{}",
                params.initiator_name,
                params
                    .isid
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            ),
            target_port: format!("{},t,0x{:04x}", t.iqn, tag),
            relative_target_port: *tag,
            target_port_group: tpg_of(t, *tag),
        })
    });
    // Declared after `_session`, so dropped before it: the nexus is lost before the session
    // leaves the table.
    let loss = target.as_ref().zip(nexus.as_ref()).map(|((t, _), n)| {
        Arc::new(NexusLoss {
            inner: inner.clone(),
            target: t.id,
            nexus: Some(n.clone()),
        })
    });
    tracing::info!(%peer, initiator = %params.initiator_name, tsih, "login complete");
    full_feature(
        inner.clone(),
        portal,
        conn_id,
        rd,
        wr,
        *params,
        target.as_ref().map(|(t, _)| t.id),
        nexus,
        loss.clone(),
        budget_hold,
        stats,
        &mut ctl_rx,
    )
    .await;
    if let Some(l) = loss {
        l.release().await;
    }
}

type LoginResult = (
    Box<SessionParams>,
    Option<(TargetView, u16)>,
    Option<mpsc::UnboundedSender<ConnCtl>>,
    Option<SessionSlot>,
    Option<vds_iscsi::conn::BudgetHold>,
    Arc<SessionStats>,
);

/// A connection's local and peer addresses.
struct Ends {
    local: SocketAddr,
    peer: SocketAddr,
}

#[allow(clippy::too_many_arguments)]
async fn login_phase(
    inner: &Arc<Inner>,
    portal: Uuid,
    conn_id: u64,
    rd: &mut OwnedReadHalf,
    wr: &mut OwnedWriteHalf,
    ctl: mpsc::UnboundedSender<ConnCtl>,
    refuse: Option<LoginStatus>,
    ends: Ends,
) -> Option<LoginResult> {
    let mut login = Login::new(inner.limits.negotiation.clone());
    let mut env = PortalLogin {
        inner,
        view: inner.view.load_full(),
        portal,
        conn_id,
        ctl,
        target: None,
        reinstated: None,
        registered: None,
        budget_hold: None,
        local: ends.local,
        peer: ends.peer,
        stats: Arc::new(SessionStats::default()),
    };
    loop {
        let (bhs, rest) = match read_frame(rd, Digests::default(), LOGIN_MAX_DATA as u32).await {
            Ok(Some(f)) => f,
            _ => return None,
        };
        let pdu = match Pdu::from_parts(&bhs, &rest, Digests::default()) {
            Ok(p) => p,
            Err(_) => {
                inner.tele.login(None, portal, LoginStatus::INITIATOR_ERROR);
                let step = login.failure(LoginStatus::INITIATOR_ERROR);
                if let LoginStep::Fail(p, _) = step {
                    let _ = write_pdu(wr, &p, Digests::default()).await;
                }
                return None;
            }
        };
        let Header::LoginRequest(req) = &pdu.header else {
            // Anything but a Login Request before full-feature phase: protocol error.
            inner
                .tele
                .login(None, portal, LoginStatus::INVALID_DURING_LOGIN);
            let step = login.failure(LoginStatus::INVALID_DURING_LOGIN);
            if let LoginStep::Fail(p, _) = step {
                let _ = write_pdu(wr, &p, Digests::default()).await;
            }
            return None;
        };
        if let Some(st) = refuse {
            inner.tele.login(None, portal, st);
            let step = {
                let _ = login.handle(req, &[], &mut NoEnv);
                login.failure(st)
            };
            if let LoginStep::Fail(p, _) = step {
                let _ = write_pdu(wr, &p, Digests::default()).await;
            }
            return None;
        }
        match login.handle(req, &pdu.data, &mut env) {
            LoginStep::Continue(p) => {
                if write_pdu(wr, &p, Digests::default()).await.is_err() {
                    return None;
                }
            }
            LoginStep::Fail(p, st) => {
                tracing::info!(status = format!("0x{:04x}", st.0), "login refused");
                let named = env.target.as_ref().map(|(t, _)| t.id);
                inner.tele.login(named, portal, st);
                let _ = write_pdu(wr, &p, Digests::default()).await;
                return None;
            }
            LoginStep::Done(p, params, _) => {
                // A failed write drops `env`, and with it the session it registered.
                if write_pdu(wr, &p, Digests::default()).await.is_err() {
                    return None;
                }
                let named = env.target.as_ref().map(|(t, _)| t.id);
                inner.tele.login(named, portal, LoginStatus::SUCCESS);
                return Some((
                    params,
                    env.target.take(),
                    env.reinstated.take(),
                    env.registered.take(),
                    env.budget_hold.take(),
                    env.stats.clone(),
                ));
            }
        }
    }
}

/// Environment for a login that is refused at its first PDU.
struct NoEnv;
impl LoginEnv for NoEnv {
    fn find_target(&mut self, _: &str) -> Option<LoginTarget> {
        None
    }
    fn instate(&mut self, _: &SessionParams) -> Result<u16, LoginStatus> {
        Err(LoginStatus::SERVICE_UNAVAILABLE)
    }
    fn random(&mut self, _: &mut [u8]) {}
}

/// What a polled read brought.
enum Read {
    Bytes(usize),
    Eof,
}

/// Adaptive polling for the next command of a peer that answers fast.
///
/// At queue depth 1 every command is one round trip, and sleeping in `epoll_wait` between
/// them costs a wake-up on both sides (on a VM, a halted vCPU and an IPI: about half of the
/// target's CPU per command, measured with perf). When the peer's recent answers came within
/// [`SPIN_MAX`], the connection instead polls its socket, yielding to the other tasks of its
/// worker between polls, for up to twice the usual gap; a peer that goes quiet pushes the
/// average up and the connection back to sleeping.
///
/// Polling pays only while a core is otherwise idle: one latency-bound session. So a
/// connection polls only when it is the daemon's only "hot" one (a peer answering within
/// `SPIN_MAX`); with several, the peers' work fills the cores and the wake-ups amortise, and
/// every connection sleeps as before.
struct Spin {
    /// Moving average of the gap between going idle and the next bytes, in ns.
    avg_ns: u64,
    /// Spins in a row that ran out of budget.
    misses: u32,
    /// Counted in [`HOT`].
    hot: bool,
}

/// Gaps longer than this are not worth polling for.
const SPIN_MAX: Duration = Duration::from_micros(150);
/// Connections whose peers answer within `SPIN_MAX`.
static HOT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Spin {
    fn new() -> Self {
        Spin {
            avg_ns: u64::MAX,
            misses: 0,
            hot: false,
        }
    }

    fn worth_it(&self) -> bool {
        self.hot && self.misses < 4 && HOT.load(std::sync::atomic::Ordering::Relaxed) == 1
    }

    /// Record the gap before the peer's next bytes.
    fn observe(&mut self, gap: Duration) {
        use std::sync::atomic::Ordering;
        let g = u64::try_from(gap.as_nanos())
            .unwrap_or(u64::MAX / 8)
            .min(u64::MAX / 8);
        self.avg_ns = if self.avg_ns == u64::MAX {
            g
        } else {
            (self.avg_ns * 7 + g) / 8
        };
        if gap < SPIN_MAX {
            self.misses = 0;
        }
        let hot = self.avg_ns < SPIN_MAX.as_nanos() as u64;
        if hot != self.hot {
            self.hot = hot;
            if hot {
                HOT.fetch_add(1, Ordering::Relaxed);
            } else {
                HOT.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Poll `f` until it yields something or the budget runs out (`None`).
    async fn poll<T>(&mut self, mut f: impl FnMut() -> Option<T>) -> Option<T> {
        let budget = Duration::from_nanos(
            self.avg_ns
                .saturating_mul(2)
                .clamp(20_000, 2 * SPIN_MAX.as_nanos() as u64),
        );
        let start = Instant::now();
        loop {
            if let Some(x) = f() {
                return Some(x);
            }
            if start.elapsed() >= budget {
                self.misses += 1;
                return None;
            }
            tokio::task::yield_now().await;
        }
    }
}

impl Drop for Spin {
    fn drop(&mut self) {
        if self.hot {
            HOT.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

enum Input {
    Readable,
    Writable,
    Done(Done),
    Ctl(Option<ConnCtl>),
    Tick,
    /// Commands wait for memory: try them again.
    Retry,
}

/// How often commands waiting for the daemon-wide budget try again (other connections give
/// memory back without telling this one).
const MEMORY_RETRY: Duration = Duration::from_millis(5);

/// A command that ran on a blocking thread.
/// What comes back down a connection's completion channel.
enum Done {
    /// A command that ran on the blocking pool.
    Ran(Completion),
    /// A pending command's store operation ended (sent from the store's thread).
    Io(IoDone),
    /// A task management function whose reset reached the other gateways: its itt and
    /// response.
    Tmf(u32, Option<u8>),
}

/// A pending command's store operation ended, with what the command needs to end.
struct IoDone {
    pending: Pending,
    result: Result<(), AioError>,
    bufs: AioBufs,
    meta: IoMeta,
}

/// What a pending command's answer needs from its iSCSI command.
#[derive(Clone, Copy)]
struct IoMeta {
    itt: u32,
    read: bool,
    edtl: u32,
    /// See [`Completion::read_limit`].
    read_limit: usize,
    /// Its telemetry since hand-over.
    counted: Option<Counted>,
}

/// Sends a completion from whatever thread has it. Should the connection be gone, what it
/// holds (a pending command keeps its LU, and so its store, alive) is dropped on a thread of
/// its own: never on the store's completion thread, which closing the store would wait for.
fn send_done(tx: &mpsc::UnboundedSender<Done>, d: Done) {
    if let Err(mpsc::error::SendError(d)) = tx.send(d) {
        let _ = std::thread::Builder::new()
            .name("vds-io-drop".into())
            .spawn(move || drop(d));
    }
}

struct Completion {
    itt: u32,
    outcome: vds_scsi::ScsiOutcome,
    data: Vec<u8>,
    /// The command's Data-Out buffer, for reuse.
    data_out: Vec<u8>,
    write_residual: i64,
    /// The Data-In the initiator asked for (0 for a command without the R bit): what of
    /// `data` is sent, for the session's counters.
    read_limit: usize,
    /// The execution panicked: the command is answered 04/44/00 and the connection ends.
    panicked: bool,
    /// Its telemetry since hand-over.
    counted: Option<Counted>,
}

/// Run `f`, containing a panic (`None`); the panic message has gone to the log through the
/// panic hook.
fn run_contained<T>(f: impl FnOnce() -> T) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok()
}

/// The LUN map this connection's commands run on, re-resolved only when a new view is
/// published (a pointer comparison per batch, no lock).
struct MapCache {
    view: Arc<DataView>,
    map: Option<Arc<vds_scsi::LunMap>>,
    /// Block size of the last logical unit looked up, by LUN field (for READ reservations).
    block: Option<(u64, u32)>,
}

impl MapCache {
    fn get(&mut self, inner: &Inner, target: Option<Uuid>) -> Option<Arc<vds_scsi::LunMap>> {
        let cur = inner.view.load();
        if !Arc::ptr_eq(&cur, &self.view) {
            self.block = None;
            self.view = arc_swap::Guard::into_inner(cur);
            self.map = target
                .and_then(|id| self.view.targets.iter().find(|t| t.id == id))
                .map(|t| t.luns.clone());
        }
        self.map.clone()
    }
}

/// Per-connection state the event handler works on.
struct Ffp<'a> {
    inner: &'a Arc<Inner>,
    conn_id: u64,
    target: Option<Uuid>,
    nexus: Option<Arc<ItNexus>>,
    /// Held by every command job too, so the nexus is lost only after the last one ends.
    loss: Option<Arc<NexusLoss>>,
    digests: Digests,
    max_data: u32,
    tx: TxQueue,
    pool: BufPool,
    maps: MapCache,
    done_tx: mpsc::UnboundedSender<Done>,
    executing: usize,
    draining: bool,
    killed: bool,
    /// The session's counters; only this task writes them.
    stats: Arc<SessionStats>,
    /// The connection's telemetry; only this task writes it.
    tele: ConnTelemetry,
    /// While PDUs of one socket read are taken: when that read returned (the start of the
    /// telemetry's command time); `None` otherwise (a command handed over later reads the
    /// clock).
    arrived: Option<Instant>,
    /// `max_connection_buffer_bytes`: no PDU is taken from the socket while the send queue
    /// holds this much (a peer that stops reading stops being read).
    tx_limit: usize,
    /// Whole PDUs left in the receive buffer because the send queue was full.
    backlog: bool,
    /// Since when the send queue has held PDUs the peer does not read (`None`: empty, or
    /// written at the last flush). A peer that reads nothing for `nop_timeout` is dropped:
    /// its queued Data-In would otherwise hold its share of the buffer budget forever.
    stalled_since: Option<Instant>,
}

impl Ffp<'_> {
    /// Act on everything the engine asked for.
    fn drain_events(&mut self, conn: &mut Connection) {
        // TMFs the engine answered on its own (ABORT TASK, unsupported functions) or when
        // their last waited-for command completed.
        for (f, r) in conn.take_answered_tmfs() {
            self.tele.tmf(f, r);
        }
        while let Some(ev) = conn.poll_event() {
            match ev {
                Event::Send(pdu) => {
                    if self.killed {
                        continue;
                    }
                    if let Header::Reject(r) = &pdu.header {
                        self.tele.reject(r.reason);
                    }
                    if let Err(e) = self.tx.push(pdu, self.digests) {
                        tracing::warn!(error = %e, "PDU not encodable");
                    }
                }
                Event::SendShared(pdu) => {
                    if self.killed {
                        continue;
                    }
                    if let Err(e) = self.tx.push_shared(pdu, self.digests) {
                        tracing::warn!(error = %e, "PDU not encodable");
                    }
                }
                Event::Execute(cmd) => self.execute(conn, cmd),
                Event::TaskMgmt(req) => {
                    let map = self.maps.get(self.inner, self.target);
                    let (resp, elsewhere) = match (&map, &self.nexus) {
                        (Some(m), Some(n)) => exec::task_mgmt(m, n, req.function, req.lun),
                        _ => (None, Vec::new()),
                    };
                    if req.function == tmf::TARGET_COLD_RESET {
                        if let Some(t) = self.target {
                            cold_reset_others(self.inner, t, self.conn_id);
                        }
                    }
                    if elsewhere.is_empty() {
                        conn.tmf_done(req.itt, resp);
                        for (f, r) in conn.take_answered_tmfs() {
                            self.tele.tmf(f, r);
                        }
                    } else {
                        // Other gateways serve these LUs: the function is answered once they
                        // raised the reset's unit attention too (waited for off this thread).
                        self.executing += 1;
                        let tx = self.done_tx.clone();
                        let itt = req.itt;
                        tokio::task::spawn_blocking(move || {
                            for lu in &elsewhere {
                                run_contained(|| lu.reset_elsewhere());
                            }
                            send_done(&tx, Done::Tmf(itt, resp));
                        });
                    }
                }
                Event::Close(reason) => {
                    for (f, r) in conn.take_answered_tmfs() {
                        self.tele.tmf(f, r);
                    }
                    tracing::debug!(?reason, "connection closing");
                    if matches!(
                        reason,
                        CloseReason::NopTimeout | CloseReason::ProtocolError(_)
                    ) {
                        // The peer is gone or broken: nothing more is worth sending.
                        self.killed = true;
                    }
                    self.draining = true;
                }
            }
        }
    }

    /// The Data-In a READ will produce when its logical unit's blocks make it larger than the
    /// connection reserved at arrival (EDTL, or the CDB at 512-byte blocks); `None` otherwise.
    /// A READ whose EDTL covers the CDB at 4 KiB blocks needs no look-up.
    fn read_beyond_reservation(
        &mut self,
        map: &vds_scsi::LunMap,
        nexus: &ItNexus,
        cmd: &vds_iscsi::conn::Command,
    ) -> Option<usize> {
        if !cmd.read || !matches!(cmd.cdb.first(), Some(0x08 | 0x28 | 0xA8 | 0x88)) {
            return None;
        }
        let at_4k = vds_scsi::cdb_transfer_len(&cmd.cdb, 4096)?;
        if u64::from(cmd.expected_in_len) >= at_4k {
            return None;
        }
        let bs = match self.maps.block {
            Some((lun, bs)) if lun == cmd.lun => bs,
            _ => {
                let bs = map
                    .lookup(&nexus.initiator_name, exec::lun_number(cmd.lun))?
                    .block_size();
                self.maps.block = Some((cmd.lun, bs));
                bs
            }
        };
        let real = vds_scsi::cdb_transfer_len(&cmd.cdb, bs)?.min(32 << 20);
        (real > u64::from(cmd.expected_in_len)).then_some(real as usize)
    }

    /// Run a command: first on this thread in `Mode::Inline` (READ/WRITE on page-cached files,
    /// memory and null stores answer at once), and whatever the engine answers `WouldBlock`
    /// for (every command its table does not mark inline, and refused store I/O) on a
    /// blocking thread.
    fn execute(&mut self, conn: &mut Connection, mut cmd: vds_iscsi::conn::Command) {
        let map = self.maps.get(self.inner, self.target);
        let (Some(map), Some(nexus)) = (map, self.nexus.clone()) else {
            conn.fail(cmd.itt);
            return;
        };
        let injected = if self.inner.limits.panic_injection {
            exec::injected_panic(&cmd.cdb)
        } else {
            None
        };
        if injected == Some(exec::PanicSite::Task) {
            panic!("injected panic on a connection task (fault injection)");
        }
        if let Some(need) = self.read_beyond_reservation(&map, &nexus, &cmd) {
            if !conn.reserve_at_least(cmd.itt, need) {
                conn.refuse(cmd.itt);
                return;
            }
        }
        let t0 = self.arrived.unwrap_or_else(Instant::now);
        let counted = self
            .tele
            .begin(&map, &nexus.initiator_name, cmd.lun, &cmd.cdb, t0);
        let mut buf = self.pool.take();
        let ran = run_contained(|| exec::start(&map, &nexus, &cmd, &mut buf));
        let answered = match ran {
            Some(Ok(exec::Began::Done(o, r))) => Some((o, r)),
            Some(Ok(exec::Began::Pending(p))) => {
                let meta = IoMeta {
                    itt: cmd.itt,
                    read: cmd.read,
                    edtl: cmd.edtl,
                    read_limit: sent_in(&cmd, usize::MAX),
                    counted,
                };
                let bufs = AioBufs {
                    data_in: buf,
                    data_out: std::mem::take(&mut cmd.data_out),
                };
                self.executing += 1;
                self.submit(p, bufs, meta);
                return;
            }
            Some(Err(WouldBlock)) => None,
            None => {
                // Answered now, not run again on the blocking pool.
                self.contained_panic(&cmd);
                buf.clear();
                Some((exec::internal_failure(), 0))
            }
        };
        if let Some((outcome, wres)) = answered {
            self.stats.command(
                outcome.status as u8,
                sent_in(&cmd, buf.len()),
                cmd.data_out.len(),
            );
            self.count(
                counted,
                &outcome,
                sent_in(&cmd, buf.len()),
                cmd.data_out.len(),
            );
            conn.recycle(cmd.data_out);
            let back = conn.complete_owned(
                cmd.itt,
                outcome.status as u8,
                outcome.sense.as_deref(),
                buf,
                wres,
            );
            if let Some(b) = back {
                self.pool.give(b);
            }
            return;
        }
        self.executing += 1;
        let tx = self.done_tx.clone();
        let hold = self.loss.clone();
        let tx_ran = move |c: Completion| send_done(&tx, Done::Ran(c));
        tokio::task::spawn_blocking(move || {
            let ran = run_contained(|| {
                if injected == Some(exec::PanicSite::Job) {
                    panic!("injected panic in a command job (fault injection)");
                }
                exec::execute_blocking(&map, &nexus, &cmd, &mut buf)
            });
            let panicked = ran.is_none();
            if panicked {
                tracing::error!(
                    opcode = format!("0x{:02x}", cmd.cdb.first().copied().unwrap_or(0)),
                    "command execution panicked; answered 04/44/00, ending this connection"
                );
                buf.clear();
            }
            let (outcome, write_residual) = ran.unwrap_or_else(|| (exec::internal_failure(), 0));
            // Before the completion is sent: once the connection has every completion, it
            // holds the last reference and releases the nexus itself, in order.
            drop(hold);
            tx_ran(Completion {
                itt: cmd.itt,
                outcome,
                data: buf,
                read_limit: sent_in(&cmd, usize::MAX),
                data_out: cmd.data_out,
                write_residual,
                panicked,
                counted,
            });
        });
    }

    /// Telemetry of a command answered with `outcome` (`counted`: since its hand-over to
    /// an LU; `None`: its LUN names none).
    fn count(
        &mut self,
        counted: Option<Counted>,
        outcome: &vds_scsi::ScsiOutcome,
        read: usize,
        written: usize,
    ) {
        let status = outcome.status as u8;
        match counted {
            Some(c) => self
                .tele
                .end(c, status, outcome.sense.as_deref(), read, written),
            None => self.tele.unrouted(status, outcome.sense.as_deref()),
        }
    }

    /// Submits a pending command's store operation (counted in `executing` by the caller);
    /// its completion comes back as [`Done::Io`]. A store that no longer offers asynchronous
    /// I/O (a fault filter installed meanwhile) gets the operation on the blocking pool.
    fn submit(&mut self, p: Pending, bufs: AioBufs, meta: IoMeta) {
        let tx = self.done_tx.clone();
        let sent = p.submit(bufs, move |pending, result, bufs| {
            send_done(
                &tx,
                Done::Io(IoDone {
                    pending,
                    result,
                    bufs,
                    meta,
                }),
            );
        });
        if let Err((pending, mut bufs)) = sent {
            let tx = self.done_tx.clone();
            let hold = self.loss.clone();
            tokio::task::spawn_blocking(move || {
                let result = pending.run_blocking(&mut bufs);
                drop(hold);
                let d = IoDone {
                    pending,
                    result,
                    bufs,
                    meta,
                };
                send_done(&tx, Done::Io(d));
            });
        }
    }

    /// A pending command's operation ended: the command's answer, or its next operation (the
    /// flush of a FUA write) submitted.
    fn io_done(&mut self, conn: &mut Connection, d: IoDone) {
        let IoDone {
            pending,
            result,
            bufs,
            meta,
        } = d;
        let AioBufs {
            mut data_in,
            data_out,
        } = bufs;
        let ran = run_contained(move || {
            let r = pending.finish(result, &mut data_in);
            (r, data_in)
        });
        let (done, data) = match ran {
            Some((Ok(done), data)) => (exec::answer(done, meta.read, meta.edtl), data),
            Some((Err(next), data_in)) => {
                self.submit(next, AioBufs { data_in, data_out }, meta);
                return;
            }
            None => {
                self.draining = true;
                ((exec::internal_failure(), 0), Vec::new())
            }
        };
        self.executing -= 1;
        let (outcome, wres) = done;
        self.stats.command(
            outcome.status as u8,
            data.len().min(meta.read_limit),
            data_out.len(),
        );
        self.count(
            meta.counted,
            &outcome,
            data.len().min(meta.read_limit),
            data_out.len(),
        );
        conn.recycle(data_out);
        let back = conn.complete_owned(
            meta.itt,
            outcome.status as u8,
            outcome.sense.as_deref(),
            data,
            wres,
        );
        if let Some(b) = back {
            self.pool.give(b);
        }
    }

    /// A command's execution panicked: it was answered 04/44/00, and the connection ends (its
    /// accepted commands complete first). The state the panic unwound through belongs to this
    /// connection's nexus; ending it releases that nexus everywhere (its reservations, its
    /// unit attentions) and the initiator recovers by logging in again, as after any
    /// connection loss. Other connections are not touched.
    fn contained_panic(&mut self, cmd: &vds_iscsi::conn::Command) {
        tracing::error!(
            opcode = format!("0x{:02x}", cmd.cdb.first().copied().unwrap_or(0)),
            "command execution panicked; answered 04/44/00, ending this connection"
        );
        self.draining = true;
    }

    /// Hand every whole PDU in `rx` to the engine and act on what it asks for.
    fn take_frames(
        &mut self,
        rx: &mut RxBuf,
        conn: &mut Connection,
        env: &mut Discovery,
        reader_done: &mut bool,
    ) {
        let now = Instant::now();
        // Commands this read completes are timed from it (one clock reading for the batch).
        self.arrived = Some(now);
        while !self.draining {
            if self.tx.queued() >= self.tx_limit {
                // The peer is not reading what it asked for: leave the rest where it is.
                self.backlog = true;
                break;
            }
            let (bhs, rest) = match rx.next_frame(self.digests, self.max_data) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    tracing::info!(error = %e, "framing error; dropping connection");
                    *reader_done = true;
                    break;
                }
            };
            // The data segment stays in the receive buffer until the engine copies it where
            // it belongs.
            match Pdu::decode_parts(&bhs, rx.bytes(rest), self.digests) {
                Ok((header, data)) => conn.handle_parts(header, data, now, env),
                Err(PduError::HeaderDigest) => {
                    // ERL 0: a header we cannot trust ends the connection.
                    tracing::info!("header digest error; dropping connection");
                    *reader_done = true;
                    self.draining = true;
                }
                Err(e) => conn.handle_malformed(&bhs.0, &e, env),
            }
            self.drain_events(conn);
            // What this PDU queued counts before the next one is admitted.
            conn.set_outbound(self.tx.queued());
        }
        self.arrived = None;
    }

    /// Whether the socket may be read: not while the send queue is full or PDUs already read
    /// wait for it to drain.
    fn may_read(&self) -> bool {
        !self.backlog && self.tx.queued() < self.tx_limit
    }

    /// Write what the socket takes now; a broken socket ends the connection.
    fn flush(&mut self, stream: &TcpStream) {
        if self.tx.is_empty() {
            return;
        }
        let before = self.tx.queued();
        if let Err(e) = self.tx.flush(stream, &mut self.pool) {
            tracing::debug!(error = %e, "write failed; connection dropped");
            self.tx = TxQueue::new();
            self.killed = true;
            self.draining = true;
        }
        if self.tx.is_empty() {
            self.stalled_since = None;
        } else if self.tx.queued() < before || self.stalled_since.is_none() {
            self.stalled_since = Some(Instant::now());
        }
    }

    /// After a flush: account what is still queued, and take the PDUs left in the receive
    /// buffer once the send queue has room again.
    fn after_flush(
        &mut self,
        rx: &mut RxBuf,
        conn: &mut Connection,
        env: &mut Discovery,
        reader_done: &mut bool,
    ) {
        conn.set_outbound(self.tx.queued());
        if self.backlog && self.tx.queued() < self.tx_limit {
            self.backlog = false;
            self.take_frames(rx, conn, env, reader_done);
            self.drain_events(conn);
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn full_feature(
    inner: Arc<Inner>,
    portal: Uuid,
    conn_id: u64,
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    params: SessionParams,
    target: Option<Uuid>,
    nexus: Option<Arc<ItNexus>>,
    loss: Option<Arc<NexusLoss>>,
    budget_hold: Option<vds_iscsi::conn::BudgetHold>,
    stats: Arc<SessionStats>,
    ctl_rx: &mut mpsc::UnboundedReceiver<ConnCtl>,
) {
    let Ok(mut stream) = rd.reunite(wr) else {
        return;
    };
    let digests = Digests {
        header: params.header_digest,
        data: params.data_digest,
    };
    let max_data = params.max_recv_data_segment_length;
    let mut config = inner.limits.connection.clone();
    config.budget = Some(inner.budget.clone());
    let tx_limit = config.max_buffer_bytes;
    let mut conn = Connection::new(params, inner.limits.negotiation.clone(), config);
    // The connection's grant now holds its chunk; the login's hold goes back.
    drop(budget_hold);
    let mut env = Discovery {
        inner: inner.clone(),
        portal,
        local: stream.local_addr().ok(),
    };
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let view = inner.view.load_full();
    let mut st = Ffp {
        inner: &inner,
        conn_id,
        target,
        nexus,
        loss,
        digests,
        max_data,
        tx: TxQueue::new(),
        pool: BufPool::new(),
        maps: MapCache {
            map: target
                .and_then(|id| view.targets.iter().find(|t| t.id == id))
                .map(|t| t.luns.clone()),
            view,
            block: None,
        },
        done_tx,
        executing: 0,
        draining: false,
        killed: false,
        stats,
        tele: inner.tele.connection(conn_id),
        arrived: None,
        tx_limit,
        backlog: false,
        stalled_since: None,
    };
    let mut rx = RxBuf::new();
    let mut reader_done = false;
    conn.poll_timers(Instant::now());
    // One timer, re-armed only when it fires: `poll_timers` knows whether the keep-alive is
    // really due, so the deadline need not follow every PDU.
    let far = || tokio::time::Instant::now() + Duration::from_secs(3600);
    let timer = tokio::time::sleep_until(
        conn.next_timer()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(far),
    );
    tokio::pin!(timer);
    let mut spin = Spin::new();
    loop {
        st.flush(&stream);
        st.after_flush(&mut rx, &mut conn, &mut env, &mut reader_done);
        if st.backlog && !st.tx.is_empty() {
            // Still full: what was taken may have queued more; write it first.
            st.flush(&stream);
        }
        if (st.draining || reader_done) && st.executing == 0 {
            break;
        }
        let want_read = !st.draining && !reader_done && st.may_read();
        let want_write = !st.tx.is_empty();
        // Waiting for the peer's next command with nothing else to do: the moment it arrives
        // is measured, and when the peer has lately answered within the spin budget (one
        // command at a time, a loopback or local peer), it is polled for instead of slept on.
        let idle = want_read && !want_write && st.executing == 0;
        let idle_since = idle.then(Instant::now);
        if idle && spin.worth_it() {
            let got = spin
                .poll(|| match stream.try_read(rx.spare()) {
                    Ok(0) => Some(Read::Eof),
                    Ok(n) => Some(Read::Bytes(n)),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => None,
                    Err(_) => Some(Read::Eof),
                })
                .await;
            if let Some(r) = got {
                if let Some(t) = idle_since {
                    spin.observe(t.elapsed());
                }
                match r {
                    Read::Eof => reader_done = true,
                    Read::Bytes(n) => {
                        rx.filled(n);
                        st.take_frames(&mut rx, &mut conn, &mut env, &mut reader_done);
                    }
                }
                st.drain_events(&mut conn);
                st.tele.settle();
                continue;
            }
        }
        let input = tokio::select! {
            biased;
            c = done_rx.recv() => match c { Some(c) => Input::Done(c), None => continue },
            c = ctl_rx.recv() => Input::Ctl(c),
            r = stream.readable(), if want_read => match r {
                Ok(()) => Input::Readable,
                Err(_) => { reader_done = true; continue }
            },
            w = stream.writable(), if want_write => match w {
                Ok(()) => Input::Writable,
                Err(_) => { st.tx = TxQueue::new(); st.killed = true; st.draining = true; continue }
            },
            _ = &mut timer, if !st.draining => Input::Tick,
            _ = tokio::time::sleep(MEMORY_RETRY), if conn.waiting_for_memory() => Input::Retry,
        };
        match input {
            Input::Readable => {
                match stream.try_read(rx.spare()) {
                    Ok(0) => reader_done = true,
                    Ok(n) => rx.filled(n),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => reader_done = true,
                }
                if let Some(t) = idle_since {
                    spin.observe(t.elapsed());
                }
                st.take_frames(&mut rx, &mut conn, &mut env, &mut reader_done);
            }
            Input::Writable => {}
            Input::Done(Done::Io(d)) => st.io_done(&mut conn, d),
            Input::Done(Done::Tmf(itt, resp)) => {
                st.executing -= 1;
                conn.tmf_done(itt, resp);
                for (f, r) in conn.take_answered_tmfs() {
                    st.tele.tmf(f, r);
                }
            }
            Input::Done(Done::Ran(c)) => {
                st.executing -= 1;
                st.stats.command(
                    c.outcome.status as u8,
                    c.data.len().min(c.read_limit),
                    c.data_out.len(),
                );
                st.count(
                    c.counted,
                    &c.outcome,
                    c.data.len().min(c.read_limit),
                    c.data_out.len(),
                );
                if c.panicked {
                    st.draining = true;
                }
                conn.recycle(c.data_out);
                let back = conn.complete_owned(
                    c.itt,
                    c.outcome.status as u8,
                    c.outcome.sense.as_deref(),
                    c.data,
                    c.write_residual,
                );
                if let Some(b) = back {
                    st.pool.give(b);
                }
            }
            Input::Ctl(Some(ConnCtl::RequestLogout(secs))) => conn.request_logout(secs),
            Input::Ctl(Some(ConnCtl::Drop)) => st.draining = true,
            Input::Ctl(Some(ConnCtl::Kill)) => {
                st.killed = true;
                st.draining = true;
            }
            Input::Ctl(None) => {}
            Input::Retry => conn.retry_waiting(),
            Input::Tick => {
                if st
                    .stalled_since
                    .is_some_and(|t| t.elapsed() >= inner.limits.connection.nop_timeout)
                {
                    tracing::info!("peer reads nothing; connection dropped");
                    st.tx = TxQueue::new();
                    st.killed = true;
                    st.draining = true;
                }
                rx.shrink_if_idle();
                conn.poll_timers(Instant::now());
                timer.as_mut().reset(
                    conn.next_timer()
                        .map(tokio::time::Instant::from_std)
                        .unwrap_or_else(far),
                );
            }
        }
        st.drain_events(&mut conn);
        // One clock reading times every command this turn answered (before the flush at the
        // top of the loop sends the answers).
        st.tele.settle();
    }
    // Accepted commands complete before the connection goes (no acknowledged write is lost).
    while st.executing > 0 {
        match done_rx.recv().await {
            Some(_) => st.executing -= 1,
            None => break,
        }
    }
    // Let what is queued (logout response, last statuses) go out, bounded.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match st.tx.flush(&stream, &mut st.pool) {
                Ok(false) => {
                    if stream.writable().await.is_err() {
                        return;
                    }
                }
                Ok(true) | Err(_) => return,
            }
        }
    })
    .await;
    let _ = stream.shutdown().await;
}

/// The Data-In bytes a command answered with `len` bytes sends: what the initiator asked for
/// at most (`Connection::complete_owned` truncates the rest).
fn sent_in(cmd: &vds_iscsi::conn::Command, len: usize) -> usize {
    if cmd.read {
        len.min(cmd.expected_in_len as usize)
    } else {
        0
    }
}

/// TARGET COLD RESET ends every other session of the target too.
fn cold_reset_others(inner: &Inner, target: Uuid, me: u64) {
    let sessions = inner.sessions.lock().of_target(target);
    for (_, ctl, conn_id) in sessions {
        if conn_id != me {
            let _ = ctl.send(ConnCtl::Kill);
        }
    }
}
