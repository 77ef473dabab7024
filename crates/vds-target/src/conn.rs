//! Listener and connection tasks: accept, login phase (with its timeout and limits), then the
//! full-feature loop that drives `vds_iscsi::conn::Connection`, runs commands on blocking
//! threads and writes PDUs in order with vectored writes.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use uuid::Uuid;
use vds_iscsi::codes::{tmf, LoginStatus};
use vds_iscsi::conn::{CloseReason, ConnEnv, Connection, Event};
use vds_iscsi::login::{ChapSecrets, Login, LoginEnv, LoginStep, LoginTarget, LOGIN_MAX_DATA};
use vds_iscsi::pdu::{Bhs, Digests, Header, Pdu, PduError, BHS_LEN};
use vds_iscsi::{SessionParams, SessionType};
use vds_provider::dataplane::{DataView, TargetView};
use vds_scsi::ItNexus;

use crate::session::SessionEntry;
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
        let inner2 = inner.clone();
        tokio::spawn(async move {
            let registered = refuse.is_none();
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
            .await;
            if registered {
                inner2.conn_finished(portal, conn_id);
            }
        });
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
    inner: &'a Inner,
    view: Arc<DataView>,
    portal: Uuid,
    conn_id: u64,
    ctl: mpsc::UnboundedSender<ConnCtl>,
    /// The target chosen at login, with the tag of the group holding this portal.
    target: Option<(TargetView, u16)>,
    /// A session to reinstate (closed before the new one starts).
    reinstated: Option<mpsc::UnboundedSender<ConnCtl>>,
    registered_tsih: Option<u16>,
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
            self.registered_tsih = Some(tsih);
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
        self.registered_tsih = Some(tsih);
        Ok(tsih)
    }

    fn random(&mut self, buf: &mut [u8]) {
        use rand::RngCore;
        rand::rngs::OsRng.fill_bytes(buf);
    }
}

impl PortalLogin<'_> {
    fn entry(&self, p: &SessionParams, target: Uuid) -> SessionEntry {
        SessionEntry {
            initiator: p.initiator_name.clone(),
            isid: p.isid,
            target,
            portal: self.portal,
            conn_id: self.conn_id,
            ctl: self.ctl.clone(),
        }
    }
}

/// SendTargets as seen through one portal.
struct Discovery {
    inner: Arc<Inner>,
    portal: Uuid,
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
                    if let Some(p) = view.portals.iter().find(|p| p.id == *pid && p.online) {
                        addrs.push(format!("{},{}", p.addr, g.tag));
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
    let (mut rd, mut wr) = stream.into_split();
    let login_deadline = inner.limits.login_timeout;
    let login = tokio::time::timeout(
        login_deadline,
        login_phase(&inner, portal, conn_id, &mut rd, &mut wr, ctl_tx, refuse),
    )
    .await;
    let (params, target, reinstated) = match login {
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
    let nexus = target.as_ref().map(|(t, tag)| ItNexus {
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
        nexus.clone(),
        &mut ctl_rx,
    )
    .await;
    if target.is_some() {
        inner.sessions.lock().remove_conn(tsih, conn_id);
    }
}

type LoginResult = (
    Box<SessionParams>,
    Option<(TargetView, u16)>,
    Option<mpsc::UnboundedSender<ConnCtl>>,
);

async fn login_phase(
    inner: &Arc<Inner>,
    portal: Uuid,
    conn_id: u64,
    rd: &mut OwnedReadHalf,
    wr: &mut OwnedWriteHalf,
    ctl: mpsc::UnboundedSender<ConnCtl>,
    refuse: Option<LoginStatus>,
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
        registered_tsih: None,
    };
    loop {
        let (bhs, rest) = match read_frame(rd, Digests::default(), LOGIN_MAX_DATA as u32).await {
            Ok(Some(f)) => f,
            _ => return None,
        };
        let pdu = match Pdu::from_parts(&bhs, &rest, Digests::default()) {
            Ok(p) => p,
            Err(_) => {
                let step = login.failure(LoginStatus::INITIATOR_ERROR);
                if let LoginStep::Fail(p, _) = step {
                    let _ = write_pdu(wr, &p, Digests::default()).await;
                }
                return None;
            }
        };
        let Header::LoginRequest(req) = &pdu.header else {
            // Anything but a Login Request before full-feature phase: protocol error.
            let step = login.failure(LoginStatus::INVALID_DURING_LOGIN);
            if let LoginStep::Fail(p, _) = step {
                let _ = write_pdu(wr, &p, Digests::default()).await;
            }
            return None;
        };
        if let Some(st) = refuse {
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
                let _ = write_pdu(wr, &p, Digests::default()).await;
                return None;
            }
            LoginStep::Done(p, params, _) => {
                if write_pdu(wr, &p, Digests::default()).await.is_err() {
                    if let Some(t) = env.registered_tsih {
                        inner.sessions.lock().remove_conn(t, conn_id);
                    }
                    return None;
                }
                return Some((params, env.target.take(), env.reinstated.take()));
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

enum Input {
    Frame(Result<Option<(Bhs, Vec<u8>)>, std::io::Error>),
    Done(Completion),
    Ctl(Option<ConnCtl>),
    Tick,
}

struct Completion {
    itt: u32,
    outcome: Option<(vds_scsi::ScsiOutcome, Vec<u8>, i64)>,
}

#[allow(clippy::too_many_arguments)]
async fn full_feature(
    inner: Arc<Inner>,
    portal: Uuid,
    conn_id: u64,
    mut rd: OwnedReadHalf,
    mut wr: OwnedWriteHalf,
    params: SessionParams,
    target: Option<Uuid>,
    nexus: Option<ItNexus>,
    ctl_rx: &mut mpsc::UnboundedReceiver<ConnCtl>,
) {
    let digests = Digests {
        header: params.header_digest,
        data: params.data_digest,
    };
    let max_data = params.max_recv_data_segment_length;
    let mut conn = Connection::new(
        params,
        inner.limits.negotiation.clone(),
        inner.limits.connection.clone(),
    );
    let mut env = Discovery {
        inner: inner.clone(),
        portal,
    };
    // Reader: whole frames into a bounded queue (backpressure on a fast initiator).
    let (frame_tx, mut frame_rx) = mpsc::channel(64);
    let reader = tokio::spawn(async move {
        loop {
            let r = read_frame(&mut rd, digests, max_data).await;
            let stop = !matches!(r, Ok(Some(_)));
            if frame_tx.send(r).await.is_err() || stop {
                return;
            }
        }
    });
    // Writer: PDUs in the order the engine produced them.
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<(Vec<u8>, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((h, d)) = out_rx.recv().await {
            if write_all_vectored(&mut wr, &h, &d).await.is_err() {
                return;
            }
        }
        let _ = wr.shutdown().await;
    });
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Completion>();
    let mut executing = 0usize;
    let mut draining = false; // Drop: no new PDUs, finish accepted commands.
    let mut killed = false;
    let mut reader_done = false;
    conn.poll_timers(Instant::now());
    loop {
        if (draining || reader_done) && executing == 0 {
            break;
        }
        let sleep_until = conn
            .next_timer()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        let input = tokio::select! {
            biased;
            c = done_rx.recv() => match c { Some(c) => Input::Done(c), None => continue },
            c = ctl_rx.recv() => Input::Ctl(c),
            f = frame_rx.recv(), if !draining && !reader_done => Input::Frame(f.unwrap_or(Ok(None))),
            _ = tokio::time::sleep_until(sleep_until), if !draining => Input::Tick,
        };
        match input {
            Input::Frame(Ok(Some((bhs, rest)))) => match Pdu::from_parts(&bhs, &rest, digests) {
                Ok(pdu) => conn.handle_pdu(pdu, Instant::now(), &mut env),
                Err(PduError::HeaderDigest) => {
                    // ERL 0: a header we cannot trust ends the connection.
                    tracing::info!("header digest error; dropping connection");
                    reader_done = true;
                    draining = true;
                }
                Err(e) => conn.handle_malformed(&bhs.0, &e, &mut env),
            },
            Input::Frame(Ok(None)) | Input::Frame(Err(_)) => {
                reader_done = true;
            }
            Input::Done(c) => {
                executing -= 1;
                match c.outcome {
                    Some((o, data, wres)) => {
                        conn.complete(c.itt, o.status as u8, o.sense.as_deref(), &data, wres)
                    }
                    None => conn.fail(c.itt),
                }
            }
            Input::Ctl(Some(ConnCtl::RequestLogout(secs))) => conn.request_logout(secs),
            Input::Ctl(Some(ConnCtl::Drop)) => draining = true,
            Input::Ctl(Some(ConnCtl::Kill)) => {
                killed = true;
                draining = true;
            }
            Input::Ctl(None) => {}
            Input::Tick => conn.poll_timers(Instant::now()),
        }
        while let Some(ev) = conn.poll_event() {
            match ev {
                Event::Send(pdu) => {
                    if killed {
                        continue;
                    }
                    match pdu.to_wire(digests) {
                        Ok(w) => {
                            let _ = out_tx.send(w);
                        }
                        Err(e) => tracing::warn!(error = %e, "PDU not encodable"),
                    }
                }
                Event::Execute(cmd) => {
                    let view = inner.view.load_full();
                    let map = target
                        .and_then(|id| view.targets.iter().find(|t| t.id == id))
                        .map(|t| t.luns.clone());
                    let Some((map, nexus)) = map.zip(nexus.clone()) else {
                        conn.fail(cmd.itt);
                        continue;
                    };
                    executing += 1;
                    let tx = done_tx.clone();
                    tokio::task::spawn_blocking(move || {
                        let mut buf = Vec::new();
                        let o = exec::execute(&map, &nexus, &cmd, &mut buf);
                        let wres = exec::write_residual(&map, &nexus, &cmd);
                        let _ = tx.send(Completion {
                            itt: cmd.itt,
                            outcome: Some((o, buf, wres)),
                        });
                    });
                }
                Event::TaskMgmt(req) => {
                    let view = inner.view.load_full();
                    let map = target
                        .and_then(|id| view.targets.iter().find(|t| t.id == id))
                        .map(|t| t.luns.clone());
                    let resp = match (&map, &nexus) {
                        (Some(m), Some(n)) => exec::task_mgmt(m, n, req.function, req.lun),
                        _ => None,
                    };
                    if req.function == tmf::TARGET_COLD_RESET {
                        if let Some(t) = target {
                            cold_reset_others(&inner, t, conn_id);
                        }
                    }
                    conn.tmf_done(req.itt, resp);
                }
                Event::Close(reason) => {
                    tracing::debug!(?reason, "connection closing");
                    if matches!(
                        reason,
                        CloseReason::NopTimeout | CloseReason::ProtocolError(_)
                    ) {
                        // The peer is gone or broken: nothing more is worth sending.
                        killed = true;
                    }
                    draining = true;
                }
            }
        }
    }
    // Accepted commands complete before the connection goes (no acknowledged write is lost).
    while executing > 0 {
        match done_rx.recv().await {
            Some(_) => executing -= 1,
            None => break,
        }
    }
    reader.abort();
    drop(out_tx);
    // Let the writer flush what is queued (logout response, last statuses), bounded.
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    if let (Some(t), Some(n)) = (target, nexus) {
        let view = inner.view.load_full();
        if let Some(tv) = view.targets.iter().find(|x| x.id == t) {
            let map = tv.luns.clone();
            let n2 = n.clone();
            let _ = tokio::task::spawn_blocking(move || exec::nexus_lost(&map, &n2)).await;
        }
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
