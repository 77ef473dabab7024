//! Full-feature phase of one connection (RFC 7143 §3–§4, §11), target side, sans-IO.
//!
//! The caller feeds each received PDU to [`Connection::handle_pdu`] and the result of every
//! command it executed to [`Connection::complete`], and drains [`Event`]s with
//! [`Connection::poll_event`]: PDUs to send (in order: StatSN order is send order), commands to
//! execute (CDB with all of its Data-Out gathered), task management to carry out on the logical
//! units, and when to close. Time is an argument ([`Connection::poll_timers`]).
//!
//! The target negotiates MaxConnections=1 and ErrorRecoveryLevel=0, so a session has exactly one
//! connection and this state machine holds the session's CmdSN window as well.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::codes::{
    async_event, logout, opcode, reject, scsi_response, tmf, tmf_response, RESERVED_TAG,
};
use crate::params::{SessionParams, SessionType, TargetLimits};
use crate::pdu::{
    AsyncMessage, DataIn, DataOut, Header, LogoutResponse, NopIn, NopOut, Pdu, PduError, R2t,
    Reject, ScsiCommand, ScsiResponse, Sns, TaskAttr, TaskMgmtRequest, TaskMgmtResponse,
    TextRequest, TextResponse,
};
use crate::text;

mod budget;
use budget::Grant;
pub use budget::{Hold as BudgetHold, MemBudget, CHUNK as BUDGET_CHUNK};

/// Serial-number arithmetic (RFC 1982, 32 bits): `a < b`.
pub fn sn_lt(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 0x8000_0000
}
/// `a <= b` in serial arithmetic.
pub fn sn_le(a: u32, b: u32) -> bool {
    a == b || sn_lt(a, b)
}

/// Connection-level settings that are not negotiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnConfig {
    /// Send a NOP-In ping after this much silence from the initiator (`None`: never).
    pub nop_interval: Option<Duration>,
    /// Close the connection when a ping stays unanswered this long.
    pub nop_timeout: Duration,
    /// Largest EDTL accepted for a write (the whole buffer is held in memory).
    pub max_write_len: u32,
    /// Bytes one connection may hold for its peer (`max_connection_buffer_bytes`): Data-Out
    /// and Data-In of its commands, PDUs waiting for a CmdSN gap, output not yet written. A
    /// command that would pass it waits for memory if it brought no data, and is answered
    /// TASK SET FULL otherwise (unless the connection holds nothing else: one large command
    /// always gets through). The caller stops reading the socket while its send queue holds
    /// this much.
    pub max_buffer_bytes: usize,
    /// The daemon-wide budget the connection's bytes are granted from (`None`: unlimited).
    pub budget: Option<MemBudget>,
}

impl Default for ConnConfig {
    fn default() -> Self {
        ConnConfig {
            nop_interval: Some(Duration::from_secs(30)),
            nop_timeout: Duration::from_secs(30),
            max_write_len: 64 << 20,
            max_buffer_bytes: 16 << 20,
            budget: None,
        }
    }
}

/// A command ready for the SCSI layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub itt: u32,
    pub lun: u64,
    pub cdb: Vec<u8>,
    pub data_out: Vec<u8>,
    /// EDTL of a read (or the bidirectional read length).
    pub expected_in_len: u32,
    /// Expected Data Transfer Length as the initiator gave it (for residuals of commands
    /// without Data-In).
    pub edtl: u32,
    /// Whether the initiator expects Data-In (R bit).
    pub read: bool,
    pub attr: TaskAttr,
}

/// Data-In handed to [`Connection::complete`]: borrowed (copied into PDUs) or owned (moved
/// into the PDU when one carries all of it).
enum DataSrc<'a> {
    Borrowed(&'a [u8]),
    Owned(Vec<u8>),
}

impl DataSrc<'_> {
    fn as_slice(&self) -> &[u8] {
        match self {
            DataSrc::Borrowed(b) => b,
            DataSrc::Owned(v) => v,
        }
    }
}

/// Task management the caller carries out on logical units before the response goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TmfRequest {
    pub itt: u32,
    pub function: u8,
    pub lun: u64,
}

/// Why the connection ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The initiator logged out; close after the queued PDUs are written.
    LoggedOut,
    /// A keep-alive ping went unanswered.
    NopTimeout,
    /// TARGET COLD RESET: drop every session of the target after the response.
    ColdReset,
    /// An unrecoverable protocol error (ERL 0).
    ProtocolError(&'static str),
}

/// A PDU whose data segment is a slice of a buffer shared with the other PDUs of one
/// Data-In sequence (a read larger than one PDU is sent without copying).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedPdu {
    pub header: Header,
    pub buf: std::sync::Arc<Vec<u8>>,
    pub range: std::ops::Range<usize>,
}

impl SharedPdu {
    /// The data segment.
    pub fn data(&self) -> &[u8] {
        &self.buf[self.range.clone()]
    }

    /// The same PDU with its data copied out.
    pub fn to_pdu(&self) -> Pdu {
        Pdu::new(self.header.clone(), self.data().to_vec())
    }
}

/// Something the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Send(Pdu),
    /// Send this PDU; its data is `buf[range]`.
    SendShared(SharedPdu),
    Execute(Command),
    /// Carry this out on the logical units, then call [`Connection::tmf_done`].
    TaskMgmt(TmfRequest),
    Close(CloseReason),
}

/// Lookups a connection needs from the data path.
pub trait ConnEnv {
    /// SendTargets: targets (name, `addr:port,tag` addresses) for `query` (`All`, a name, or
    /// empty = the session's own target) as seen by this session.
    fn send_targets(&mut self, query: &str, session: &SessionParams) -> Vec<(String, Vec<String>)>;
}

#[derive(Debug)]
struct R2tState {
    ttt: u32,
    offset: u32,
    len: u32,
    received: u32,
    next_data_sn: u32,
}

#[derive(Debug)]
enum TaskState {
    /// Waiting for this many bytes of memory (it brought no data; see `retry_waiting`).
    Waiting(usize),
    /// Gathering Data-Out.
    Receiving,
    /// Handed to the SCSI layer.
    Executing,
    /// Aborted while executing: its result is dropped.
    Aborted,
}

#[derive(Debug)]
struct Task {
    lun: u64,
    cdb: Vec<u8>,
    attr: TaskAttr,
    read: bool,
    edtl: u32,
    expected_in_len: u32,
    /// Data-Out gathered so far: sized for the immediate data and the first burst at arrival,
    /// grown as solicited data arrives (never past `write_len`).
    buf: Vec<u8>,
    /// Bytes of Data-Out the command carries (its EDTL for a write).
    write_len: u32,
    /// Bytes this task counts against the connection's limit (see `Connection::reserved`).
    reserved: usize,
    received: u32,
    /// Unsolicited burst: [unsol_next, unsol_end) still expected with TTT 0xffffffff.
    unsol_open: bool,
    unsol_next: u32,
    unsol_end: u32,
    unsol_data_sn: u32,
    r2ts: Vec<R2tState>,
    next_r2t_offset: u32,
    r2t_sn: u32,
    state: TaskState,
    /// When its Data-Out last made progress (`None`: not yet seen by `poll_timers`).
    progress: Option<Instant>,
}

impl Task {
    /// All of its Data-Out is here: the task executes, and its command (with the gathered
    /// data, moved out) goes to the transport.
    fn start(&mut self, itt: u32) -> Command {
        self.state = TaskState::Executing;
        Command {
            itt,
            lun: self.lun,
            cdb: self.cdb.clone(),
            data_out: std::mem::take(&mut self.buf),
            expected_in_len: self.expected_in_len,
            edtl: self.edtl,
            read: self.read,
            attr: self.attr,
        }
    }
}

#[derive(Debug)]
struct PendingTmf {
    itt: u32,
    function: u8,
    response: u8,
    waiting_for: Vec<u32>,
    lu_done: bool,
    cold: bool,
}

#[derive(Debug)]
struct TextOut {
    ttt: u32,
    itt: u32,
    rest: Vec<u8>,
}

/// The full-feature phase of one connection (and its session).
pub struct Connection {
    params: SessionParams,
    limits: TargetLimits,
    config: ConnConfig,
    exp_cmd_sn: u32,
    stat_sn: u32,
    tasks: HashMap<u32, Task>,
    /// Non-immediate PDUs that arrived ahead of ExpCmdSN, by CmdSN.
    held: BTreeMap<u32, Pdu>,
    /// CmdSNs an ABORT TASK declared received before they arrived.
    skipped: BTreeSet<u32>,
    events: VecDeque<Event>,
    next_ttt: u32,
    text_in: Vec<u8>,
    /// TTT of an exchange whose request keys continue (C=1).
    text_in_ttt: Option<u32>,
    text_out: Option<TextOut>,
    last_rx: Option<Instant>,
    ping: Option<(u32, Instant)>,
    tmfs: Vec<PendingTmf>,
    /// Task management functions answered since the transport last took them (function,
    /// response), for its counters.
    tmfs_answered: Vec<(u8, u8)>,
    /// Logout in progress: (ITT, response, tasks it waits for).
    logout: Option<(u32, u8, Vec<u32>)>,
    closed: bool,
    /// Data-Out buffers of executed commands, reused by later writes (see `recycle`).
    spare_bufs: Vec<Vec<u8>>,
    spare_bytes: usize,
    /// Highest MaxCmdSN sent: the initiator never lowers its own (RFC 7143 §4.2.2.1), so
    /// commands up to it stay admissible even when the window would now be smaller.
    max_sent: u32,
    /// Bytes reserved by tasks (Data-Out length plus Data-In they may produce).
    reserved: usize,
    /// Bytes of PDUs held for a CmdSN gap.
    held_bytes: usize,
    /// Bytes queued for the socket and not yet written (reported by the caller).
    outbound: usize,
    grant: Grant,
    /// Tasks in [`TaskState::Waiting`], oldest first.
    waiting: VecDeque<u32>,
    /// CmdSNs of held PDUs whose data was not kept (see `hold`).
    held_dropped: BTreeSet<u32>,
}

/// Data-Out buffer memory a connection keeps for reuse (8 writes of 256 KiB, 512 of 4 KiB).
const SPARE_MAX_BYTES: usize = 2 << 20;
const SPARE_MAX: usize = 64;

/// SAM-5 status TASK SET FULL: the command was not run for lack of resources; the initiator
/// retries it later.
pub const TASK_SET_FULL: u8 = 0x28;

/// Memory to reserve for the Data-In of a READ: what its CDB makes the SCSI layer produce,
/// which depends on the logical unit's block size (512 to 4096). The EDTL counts between the
/// CDB's length at 512 and at 4096 bytes per block (an EDTL past that brings no more data),
/// capped at the largest transfer the engine runs (32 MiB, Block Limits VPD). When the blocks
/// are larger than this assumed, the caller raises it ([`Connection::reserve_at_least`]).
/// `None`: not a READ.
fn read_reserve(cdb: &[u8], edtl: u32) -> Option<usize> {
    const MAX_XFER: usize = 32 << 20;
    let blocks = read_cdb_blocks(cdb)?;
    let lo = blocks.saturating_mul(512);
    let hi = blocks.saturating_mul(4096);
    Some((edtl as usize).clamp(lo, hi.max(lo)).min(MAX_XFER))
}

/// The block count of a READ (6, 10, 12, 16) CDB.
fn read_cdb_blocks(cdb: &[u8]) -> Option<usize> {
    let be = |r: std::ops::Range<usize>| {
        cdb.get(r)
            .map(|b| b.iter().fold(0usize, |a, x| (a << 8) | usize::from(*x)))
    };
    match cdb.first() {
        Some(0x08) => cdb
            .get(4)
            .map(|b| if *b == 0 { 256 } else { usize::from(*b) }),
        Some(0x28) => be(7..9),
        Some(0xA8) => be(6..10),
        Some(0x88) => be(10..14),
        _ => None,
    }
}

/// Put Data-Out `data` at `off` of a task's buffer, growing it as solicited data arrives
/// (`write_len` is the final size: growth is geometric but never past it, so a large write
/// is neither copied over and over nor allocated beyond its length).
fn put_data(buf: &mut Vec<u8>, off: usize, data: &[u8], write_len: usize) {
    let end = off + data.len();
    if end > buf.len() {
        if end > buf.capacity() {
            let want = end.max(buf.capacity().saturating_mul(2)).min(write_len);
            buf.reserve_exact(want - buf.len());
        }
        if off > buf.len() {
            // A later burst ahead of an earlier one: the gap is filled when that one comes.
            buf.resize(off, 0);
        }
        let have = buf.len() - off;
        buf[off..].copy_from_slice(&data[..have]);
        buf.extend_from_slice(&data[have..]);
    } else {
        buf[off..end].copy_from_slice(data);
    }
}

/// What a PDU held for a CmdSN gap costs: its data and its header.
fn held_cost(p: &Pdu) -> usize {
    p.data.len() + 48
}

/// What the CmdSN window says about a command.
enum Admit {
    /// Process it now.
    Now,
    /// It is ahead of ExpCmdSN: hold it until the gap fills.
    Hold,
    /// Outside the window: ignore it silently.
    Ignore,
}

impl Connection {
    pub fn new(params: SessionParams, limits: TargetLimits, config: ConnConfig) -> Self {
        let max_sent = params
            .exp_cmd_sn
            .wrapping_add(limits.queue_depth.max(1))
            .wrapping_sub(1);
        let grant = Grant::new(config.budget.clone());
        Connection {
            max_sent,
            reserved: 0,
            held_bytes: 0,
            outbound: 0,
            grant,
            waiting: VecDeque::new(),
            held_dropped: BTreeSet::new(),
            exp_cmd_sn: params.exp_cmd_sn,
            stat_sn: params.stat_sn,
            params,
            limits,
            config,
            tasks: HashMap::new(),
            held: BTreeMap::new(),
            skipped: BTreeSet::new(),
            events: VecDeque::new(),
            next_ttt: 1,
            text_in: Vec::new(),
            text_in_ttt: None,
            text_out: None,
            last_rx: None,
            ping: None,
            tmfs: Vec::new(),
            tmfs_answered: Vec::new(),
            logout: None,
            closed: false,
            spare_bufs: Vec::new(),
            spare_bytes: 0,
        }
    }

    pub fn params(&self) -> &SessionParams {
        &self.params
    }

    /// Tasks the connection holds (gathering data or executing).
    pub fn active_tasks(&self) -> usize {
        self.tasks.len()
    }

    /// Next event to act on.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Bytes held for the peer now (what the grant covers).
    pub fn buffered_bytes(&self) -> usize {
        self.reserved + self.held_bytes + self.outbound
    }

    /// The caller's send queue holds `bytes` not yet written. They count against the limits;
    /// once the queue is empty the grant shrinks back (the connection is idle).
    pub fn set_outbound(&mut self, bytes: usize) {
        let freed = bytes < self.outbound;
        self.outbound = bytes;
        if freed && !self.waiting.is_empty() {
            self.retry_waiting();
        }
        if bytes == 0 && self.tasks.is_empty() {
            self.grant.trim(self.buffered_bytes());
        }
    }

    fn max_cmd_sn(&self) -> u32 {
        let depth = self.limits.queue_depth.max(1);
        let used = (self.tasks.len() + self.held.len()) as u32;
        let mut free = depth.saturating_sub(used);
        // While the commands in hand already hold the connection's share of memory, the
        // window does not grow: new commands wait at the initiator. (Output waiting for the
        // socket does not close it: its draining sends no PDU that would reopen it.)
        let unsol = if self.params.immediate_data || !self.params.initial_r2t {
            self.params.first_burst_length as usize
        } else {
            0
        };
        if self.reserved + self.held_bytes + unsol > self.config.max_buffer_bytes {
            free = 0;
        }
        let m = self.exp_cmd_sn.wrapping_add(free).wrapping_sub(1);
        if sn_lt(m, self.max_sent) {
            self.max_sent
        } else {
            m
        }
    }

    /// Sequence numbers for a PDU that does not consume a StatSN.
    fn sns_peek(&mut self) -> Sns {
        let max_cmd_sn = self.max_cmd_sn();
        self.max_sent = max_cmd_sn;
        Sns {
            stat_sn: self.stat_sn,
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn,
        }
    }

    /// Whether an immediate SCSI command finds the session's queue full: immediate commands
    /// count against `queue_depth` like the rest (BEHAVIOUR §13).
    fn immediate_queue_full(&self) -> bool {
        self.tasks.len() + self.held.len() >= self.limits.queue_depth.max(1) as usize
    }

    /// Reserve `need` bytes for a new command: within the connection's limit (or the
    /// connection holds nothing else) and granted by the daemon-wide budget.
    fn reserve(&mut self, need: usize) -> bool {
        let used = self.buffered_bytes();
        if used != 0 && used.saturating_add(need) > self.config.max_buffer_bytes {
            return false;
        }
        if !self.grant.cover(used.saturating_add(need)) {
            return false;
        }
        self.reserved += need;
        true
    }

    /// Raise what task `itt` reserves to `bytes` (a READ on a logical unit whose blocks are
    /// larger than its EDTL let assume at arrival); `false` when the limits refuse it (then
    /// [`Connection::refuse`] it).
    pub fn reserve_at_least(&mut self, itt: u32, bytes: usize) -> bool {
        let Some(t) = self.tasks.get(&itt) else {
            return true;
        };
        let extra = bytes.saturating_sub(t.reserved);
        if extra == 0 {
            return true;
        }
        let used = self.buffered_bytes();
        let others = used - t.reserved;
        if others != 0 && used.saturating_add(extra) > self.config.max_buffer_bytes {
            return false;
        }
        if !self.grant.cover(used.saturating_add(extra)) {
            return false;
        }
        self.reserved += extra;
        if let Some(t) = self.tasks.get_mut(&itt) {
            t.reserved += extra;
        }
        true
    }

    /// A command handed out for execution is not run after all, for lack of memory: answer
    /// TASK SET FULL.
    pub fn refuse(&mut self, itt: u32) {
        if let Some(t) = self.take_task(itt) {
            if !matches!(t.state, TaskState::Aborted) {
                self.task_set_full(itt, t.edtl);
            }
        }
        self.check_waiters(itt);
    }

    /// Remove a task and give back what it reserved.
    fn take_task(&mut self, itt: u32) -> Option<Task> {
        let t = self.tasks.remove(&itt)?;
        self.reserved -= t.reserved;
        Some(t)
    }

    /// Drop tasks `keep` refuses, giving back what they reserved.
    fn retain_tasks(&mut self, mut keep: impl FnMut(&Task) -> bool) {
        let mut freed = 0;
        self.tasks.retain(|_, t| {
            let k = keep(t);
            if !k {
                freed += t.reserved;
            }
            k
        });
        self.reserved -= freed;
    }

    /// Hold a PDU that came ahead of ExpCmdSN. Its data is kept while the limits allow; past
    /// them only its header is (an initiator on one connection never sends ahead, so this is
    /// a hostile or broken peer): a SCSI command held so answers TASK SET FULL in its turn.
    fn hold(&mut self, sn: u32, mut pdu: Pdu) {
        if self.held.contains_key(&sn) {
            return;
        }
        let used = self.buffered_bytes();
        let fits = used + held_cost(&pdu) <= self.config.max_buffer_bytes
            && self.grant.cover(used + held_cost(&pdu));
        if !fits && !pdu.data.is_empty() {
            pdu.data = Vec::new();
            self.held_dropped.insert(sn);
        }
        self.held_bytes += held_cost(&pdu);
        self.held.insert(sn, pdu);
    }

    fn unhold(&mut self, sn: u32) -> Option<Pdu> {
        let p = self.held.remove(&sn)?;
        self.held_bytes -= held_cost(&p);
        Some(p)
    }

    fn recount_held(&mut self) {
        self.held_bytes = self.held.values().map(held_cost).sum();
        let held = &self.held;
        self.held_dropped.retain(|sn| held.contains_key(sn));
    }

    /// Sequence numbers for a status-bearing PDU (consumes a StatSN).
    fn sns_next(&mut self) -> Sns {
        let s = self.sns_peek();
        self.stat_sn = self.stat_sn.wrapping_add(1);
        s
    }

    fn send(&mut self, header: Header, data: Vec<u8>) {
        self.events.push_back(Event::Send(Pdu::new(header, data)));
    }

    fn new_ttt(&mut self) -> u32 {
        let t = self.next_ttt;
        self.next_ttt = self.next_ttt.wrapping_add(1);
        if self.next_ttt == RESERVED_TAG {
            self.next_ttt = 1;
        }
        t
    }

    /// Reject `rejected` (its header is echoed back) with `reason`.
    pub fn reject(&mut self, reason: u8, rejected: &Header) {
        let bhs = rejected.encode(0).map(|mut b| {
            b.truncate(48);
            b
        });
        self.reject_bytes(reason, bhs.unwrap_or_default());
    }

    fn reject_bytes(&mut self, reason: u8, bhs: Vec<u8>) {
        let sns = self.sns_next();
        self.send(
            Header::Reject(Reject {
                reason,
                sns,
                data_sn: 0,
            }),
            bhs,
        );
    }

    /// A PDU that could not be decoded: Reject it (ERL 0 drops the connection on header
    /// digest errors instead; that is the caller's business since the header is not trusted).
    pub fn handle_malformed(&mut self, bhs: &[u8; 48], err: &PduError, env: &mut dyn ConnEnv) {
        let reason = match err {
            PduError::UnknownOpcode(_) => reject::COMMAND_NOT_SUPPORTED,
            PduError::DataDigest => reject::DATA_DIGEST_ERROR,
            _ => reject::INVALID_PDU_FIELD,
        };
        let op = bhs[0] & 0x3f;
        // A data digest error on Data-Out leaves its task without the data: end the task.
        if matches!(err, PduError::DataDigest) && op == opcode::DATA_OUT {
            let itt = u32::from_be_bytes([bhs[16], bhs[17], bhs[18], bhs[19]]);
            self.drop_task(itt);
        }
        self.reject_bytes(reason, bhs.to_vec());
        // A rejected command still used its CmdSN (the initiator has moved on), or later
        // commands would wait for it forever.
        let carries_cmd_sn = matches!(
            op,
            opcode::NOP_OUT
                | opcode::SCSI_COMMAND
                | opcode::TASK_MGMT_REQUEST
                | opcode::TEXT_REQUEST
                | opcode::LOGOUT_REQUEST
        );
        let immediate = bhs[0] & 0x40 != 0;
        let cmd_sn = u32::from_be_bytes([bhs[24], bhs[25], bhs[26], bhs[27]]);
        if carries_cmd_sn && !immediate && cmd_sn == self.exp_cmd_sn {
            self.exp_cmd_sn = self.exp_cmd_sn.wrapping_add(1);
            self.run_held(env);
        }
    }

    /// The initiator's side is silent since `now`; drives NOP-In keep-alive.
    pub fn poll_timers(&mut self, now: Instant) {
        let last = *self.last_rx.get_or_insert(now);
        if self.data_out_stalled(now) && !self.closed {
            // Memory is reserved for it: a peer that never sends the data it owes would hold
            // it forever. ERL 0 ends the connection.
            self.closed = true;
            self.events
                .push_back(Event::Close(CloseReason::ProtocolError(
                    "solicited Data-Out not received",
                )));
            return;
        }
        if let Some((_, sent)) = self.ping {
            if now.duration_since(sent) >= self.config.nop_timeout && !self.closed {
                self.closed = true;
                self.events.push_back(Event::Close(CloseReason::NopTimeout));
            }
            return;
        }
        if let Some(iv) = self.config.nop_interval {
            if now.duration_since(last) >= iv && !self.closed {
                let ttt = self.new_ttt();
                self.ping = Some((ttt, now));
                let sns = self.sns_peek();
                self.send(
                    Header::NopIn(NopIn {
                        lun: 0,
                        itt: RESERVED_TAG,
                        ttt,
                        sns,
                    }),
                    Vec::new(),
                );
            }
        }
    }

    /// Whether a task has waited for its Data-Out longer than `nop_timeout`.
    fn data_out_stalled(&mut self, now: Instant) -> bool {
        let limit = self.config.nop_timeout;
        let mut stalled = false;
        for t in self.tasks.values_mut() {
            if !matches!(t.state, TaskState::Receiving) {
                continue;
            }
            match t.progress {
                Some(p) if now.saturating_duration_since(p) >= limit => stalled = true,
                Some(_) => {}
                None => t.progress = Some(now),
            }
        }
        stalled
    }

    /// When [`poll_timers`](Self::poll_timers) next needs to run.
    pub fn next_timer(&self) -> Option<Instant> {
        let last = self.last_rx?;
        match self.ping {
            Some((_, sent)) => Some(sent + self.config.nop_timeout),
            None => self.config.nop_interval.map(|iv| last + iv),
        }
    }

    /// Ask the initiator to log out within `seconds` (AsyncEvent 1).
    pub fn request_logout(&mut self, seconds: u16) {
        let sns = self.sns_next();
        self.send(
            Header::AsyncMessage(AsyncMessage {
                lun: 0,
                sns,
                event: async_event::LOGOUT_REQUEST,
                vcode: 0,
                param1: 0,
                param2: 0,
                param3: seconds,
            }),
            Vec::new(),
        );
    }

    /// Whether the command with `cmd_sn` is in the window; advances ExpCmdSN when it is next.
    fn admit(&mut self, immediate: bool, cmd_sn: u32) -> Admit {
        if immediate {
            return Admit::Now;
        }
        let max = self.max_cmd_sn();
        if !(sn_le(self.exp_cmd_sn, cmd_sn) && sn_le(cmd_sn, max)) {
            tracing::debug!(
                cmd_sn,
                exp = self.exp_cmd_sn,
                "CmdSN outside window: ignored"
            );
            return Admit::Ignore;
        }
        if cmd_sn == self.exp_cmd_sn {
            self.exp_cmd_sn = self.exp_cmd_sn.wrapping_add(1);
            Admit::Now
        } else {
            Admit::Hold
        }
    }

    /// Handle one PDU from the initiator.
    pub fn handle_pdu(&mut self, pdu: Pdu, now: Instant, env: &mut dyn ConnEnv) {
        self.last_rx = Some(now);
        if self.closed {
            return;
        }
        self.dispatch(pdu, env);
        self.run_held(env);
    }

    /// [`Connection::handle_pdu`] for a PDU whose data segment the caller still holds (in its
    /// receive buffer): Data-Out and in-order commands copy their data straight into the
    /// command's buffer, so nothing is allocated per PDU on the write path.
    pub fn handle_parts(
        &mut self,
        header: Header,
        data: &[u8],
        now: Instant,
        env: &mut dyn ConnEnv,
    ) {
        self.last_rx = Some(now);
        if self.closed {
            return;
        }
        match header {
            Header::DataOut(h) => self.data_out(h, data),
            Header::ScsiCommand(h)
                if h.immediate && self.logout.is_none() && self.immediate_queue_full() =>
            {
                // Nothing of it is buffered: its data stays in the caller's receive buffer.
                self.reject(reject::IMMEDIATE_COMMAND_REJECT, &Header::ScsiCommand(h));
            }
            Header::ScsiCommand(h) if self.logout.is_none() => {
                match self.admit(h.immediate, h.cmd_sn) {
                    Admit::Now => self.scsi_command(h, data),
                    Admit::Hold => {
                        let sn = h.cmd_sn;
                        if !self.held.contains_key(&sn) {
                            self.hold(sn, Pdu::new(Header::ScsiCommand(h), data.to_vec()));
                        }
                    }
                    Admit::Ignore => {}
                }
            }
            other => self.dispatch(Pdu::new(other, data.to_vec()), env),
        }
        self.run_held(env);
    }

    /// Give back the Data-Out buffer of an executed command; later writes reuse it.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        let cap = buf.capacity();
        if cap == 0
            || self.spare_bytes + cap > SPARE_MAX_BYTES
            || self.spare_bufs.len() >= SPARE_MAX
        {
            return;
        }
        self.spare_bytes += cap;
        self.spare_bufs.push(buf);
    }

    /// A buffer of `len` bytes for a write's Data-Out. Its contents are whatever it held
    /// before: every byte is overwritten by the Data-Out before the command runs (offsets are
    /// checked to be contiguous and the command runs only once all `len` bytes came).
    fn write_buf(&mut self, len: usize) -> Vec<u8> {
        let mut b = match self.spare_bufs.pop() {
            Some(b) => {
                self.spare_bytes -= b.capacity();
                b
            }
            None => Vec::new(),
        };
        if b.len() >= len {
            b.truncate(len);
        } else {
            b.resize(len, 0);
        }
        b
    }

    /// Commands that were waiting for a gap in CmdSN, and CmdSNs already accounted for.
    fn run_held(&mut self, env: &mut dyn ConnEnv) {
        loop {
            if self.skipped.remove(&self.exp_cmd_sn) {
                self.unhold(self.exp_cmd_sn);
                self.held_dropped.remove(&self.exp_cmd_sn);
                self.exp_cmd_sn = self.exp_cmd_sn.wrapping_add(1);
                continue;
            }
            let Some(p) = self.unhold(self.exp_cmd_sn) else {
                break;
            };
            let dropped = self.held_dropped.remove(&self.exp_cmd_sn);
            self.exp_cmd_sn = self.exp_cmd_sn.wrapping_add(1);
            match p.header {
                Header::ScsiCommand(h) if dropped => self.task_set_full(h.itt, h.edtl),
                _ => self.process(p, env),
            }
        }
    }

    fn dispatch(&mut self, pdu: Pdu, env: &mut dyn ConnEnv) {
        let (immediate, cmd_sn) = match &pdu.header {
            Header::ScsiCommand(h) => (h.immediate, h.cmd_sn),
            Header::NopOut(h) => (h.immediate || h.ttt != RESERVED_TAG, h.cmd_sn),
            Header::TaskMgmtRequest(h) => (h.immediate, h.cmd_sn),
            Header::TextRequest(h) => (h.immediate, h.cmd_sn),
            Header::LogoutRequest(h) => (h.immediate, h.cmd_sn),
            _ => {
                self.process(pdu, env);
                return;
            }
        };
        if self.logout.is_some() {
            // Nothing new is accepted once a logout is under way.
            let h = pdu.header.clone();
            self.reject(reject::WAITING_FOR_LOGOUT, &h);
            return;
        }
        if immediate && matches!(pdu.header, Header::ScsiCommand(_)) && self.immediate_queue_full()
        {
            let h = pdu.header.clone();
            self.reject(reject::IMMEDIATE_COMMAND_REJECT, &h);
            return;
        }
        match self.admit(immediate, cmd_sn) {
            Admit::Now => self.process(pdu, env),
            Admit::Hold => self.hold(cmd_sn, pdu),
            Admit::Ignore => {}
        }
    }

    fn process(&mut self, pdu: Pdu, env: &mut dyn ConnEnv) {
        let Pdu { header, data } = pdu;
        match header {
            Header::ScsiCommand(h) => self.scsi_command(h, &data),
            Header::DataOut(h) => self.data_out(h, &data),
            Header::NopOut(h) => self.nop_out(h, data),
            Header::TaskMgmtRequest(h) => self.task_mgmt(h),
            Header::TextRequest(h) => self.text_request(h, data, env),
            Header::LogoutRequest(h) => {
                let itt = h.itt;
                let response = match h.reason {
                    logout::CLOSE_SESSION => logout::SUCCESS,
                    logout::CLOSE_CONNECTION if h.cid == self.params.cid => logout::SUCCESS,
                    logout::CLOSE_CONNECTION => logout::CID_NOT_FOUND,
                    _ => logout::RECOVERY_NOT_SUPPORTED,
                };
                if response != logout::SUCCESS {
                    let sns = self.sns_next();
                    self.send(
                        Header::LogoutResponse(LogoutResponse {
                            response,
                            itt,
                            sns,
                            time2wait: 0,
                            time2retain: 0,
                        }),
                        Vec::new(),
                    );
                    return;
                }
                // Tasks still gathering data end now; executing ones finish first (no
                // acknowledged write is lost), then the response goes out.
                let waiting = self.end_receiving_tasks();
                self.logout = Some((itt, response, waiting));
                self.try_finish_logout();
            }
            Header::Snack(_) => {
                // ERL 0: no SNACK support.
                self.reject(reject::PROTOCOL_ERROR, &header);
            }
            Header::LoginRequest(_) => self.reject(reject::PROTOCOL_ERROR, &header),
            other => {
                // Target-to-initiator opcodes sent to us.
                self.reject(reject::COMMAND_NOT_SUPPORTED, &other);
            }
        }
    }

    fn scsi_command(&mut self, h: ScsiCommand, data: &[u8]) {
        if self.params.session_type == SessionType::Discovery {
            let hh = Header::ScsiCommand(h);
            self.reject(reject::PROTOCOL_ERROR, &hh);
            return;
        }
        if self.tasks.contains_key(&h.itt) || h.itt == RESERVED_TAG {
            let hh = Header::ScsiCommand(h);
            self.reject(reject::INVALID_PDU_FIELD, &hh);
            return;
        }
        let imm_len = data.len() as u32;
        let bad = (!h.write && !data.is_empty())
            || (!data.is_empty() && !self.params.immediate_data)
            || imm_len > h.edtl
            || imm_len > self.params.first_burst_length
            || (!h.final_ && (self.params.initial_r2t || !h.write))
            || (h.write && h.edtl > self.config.max_write_len);
        if bad {
            let hh = Header::ScsiCommand(h);
            self.reject(reject::PROTOCOL_ERROR, &hh);
            return;
        }
        let expected_in_len = if h.read {
            if h.write {
                h.bidi_read_len.unwrap_or(0)
            } else {
                h.edtl
            }
        } else {
            0
        };
        let write_len = if h.write { h.edtl } else { 0 };
        // What the command may make the connection hold: all of its Data-Out, and the Data-In
        // the SCSI layer may produce for it (the CDB's own length for a READ, which can exceed
        // the EDTL). Reserved now, allocated as data arrives.
        let need = if h.read {
            read_reserve(&h.cdb, expected_in_len)
                .unwrap_or((expected_in_len as usize).min(self.config.max_write_len as usize))
        } else {
            0
        } + write_len as usize;
        // Commands already waiting for memory go first.
        let reserved = self.waiting.is_empty() && self.reserve(need);
        // A command that brought no data and expects none unsolicited costs only its record:
        // it waits for memory (BEHAVIOUR §13: new commands wait). One whose data is here
        // cannot wait without buffering it: TASK SET FULL, and the initiator retries.
        let can_wait = data.is_empty() && h.final_ && self.grant.could_ever(need);
        if !reserved && !can_wait {
            tracing::debug!(itt = h.itt, need, "connection memory full: TASK SET FULL");
            self.task_set_full(h.itt, h.edtl);
            return;
        }
        let unsol_end = if h.final_ {
            imm_len
        } else {
            self.params.first_burst_length.min(write_len)
        };
        // The buffer holds the immediate data and the first burst now; solicited data grows
        // it as it arrives (a write whose data never comes costs no more).
        let buf = if write_len == 0 {
            Vec::new()
        } else {
            let mut b = self.write_buf(unsol_end.max(imm_len) as usize);
            b[..data.len()].copy_from_slice(data);
            b
        };
        let mut task = Task {
            lun: h.lun,
            cdb: h.cdb,
            attr: h.attr,
            read: h.read,
            edtl: h.edtl,
            expected_in_len,
            buf,
            write_len,
            reserved: if reserved { need } else { 0 },
            received: imm_len,
            unsol_open: !h.final_ && unsol_end > imm_len,
            unsol_next: imm_len,
            unsol_end,
            unsol_data_sn: 0,
            r2ts: Vec::new(),
            next_r2t_offset: unsol_end.max(imm_len),
            r2t_sn: 0,
            state: TaskState::Receiving,
            progress: self.last_rx,
        };
        if !reserved {
            tracing::debug!(itt = h.itt, need, "connection memory full: command waits");
            task.state = TaskState::Waiting(need);
            self.tasks.insert(h.itt, task);
            self.waiting.push_back(h.itt);
            return;
        }
        self.tasks.insert(h.itt, task);
        self.begin(h.itt);
    }

    /// A task whose memory is reserved: execute it when all of its Data-Out is here, or ask
    /// for the rest.
    fn begin(&mut self, itt: u32) {
        let Some(task) = self.tasks.get_mut(&itt) else {
            return;
        };
        if task.received < task.write_len {
            self.issue_r2ts(itt);
            return;
        }
        let cmd = task.start(itt);
        self.events.push_back(Event::Execute(cmd));
    }

    /// Whether commands wait for memory (the caller retries them now and then with
    /// [`Connection::retry_waiting`]: the daemon-wide budget frees without telling anyone).
    pub fn waiting_for_memory(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Start the commands waiting for memory, in arrival order, while the limits allow.
    pub fn retry_waiting(&mut self) {
        while let Some(&itt) = self.waiting.front() {
            let need = match self.tasks.get(&itt).map(|t| &t.state) {
                Some(TaskState::Waiting(n)) => *n,
                // Aborted or ended meanwhile.
                _ => {
                    self.waiting.pop_front();
                    continue;
                }
            };
            if !self.reserve(need) {
                return;
            }
            self.waiting.pop_front();
            if let Some(t) = self.tasks.get_mut(&itt) {
                t.reserved = need;
                t.state = TaskState::Receiving;
                t.progress = None;
            }
            self.begin(itt);
        }
    }

    /// Send R2Ts for the task while MaxOutstandingR2T allows.
    fn issue_r2ts(&mut self, itt: u32) {
        let max_out = usize::from(self.params.max_outstanding_r2t.max(1));
        let burst = self.params.max_burst_length.max(512);
        loop {
            let Some(t) = self.tasks.get(&itt) else {
                return;
            };
            let write_len = t.write_len;
            if t.r2ts.len() >= max_out || t.next_r2t_offset >= write_len {
                return;
            }
            let offset = t.next_r2t_offset;
            let len = burst.min(write_len - offset);
            let ttt = self.new_ttt();
            let sns = self.sns_peek();
            let Some(t) = self.tasks.get_mut(&itt) else {
                return;
            };
            let r2t_sn = t.r2t_sn;
            t.r2t_sn = t.r2t_sn.wrapping_add(1);
            t.next_r2t_offset = offset + len;
            t.r2ts.push(R2tState {
                ttt,
                offset,
                len,
                received: 0,
                next_data_sn: 0,
            });
            let lun = t.lun;
            self.send(
                Header::R2t(R2t {
                    lun,
                    itt,
                    ttt,
                    sns,
                    r2t_sn,
                    buffer_offset: offset,
                    desired_len: len,
                }),
                Vec::new(),
            );
        }
    }

    fn data_out(&mut self, h: DataOut, data: &[u8]) {
        let itt = h.itt;
        let now = self.last_rx;
        let Some(t) = self.tasks.get_mut(&itt) else {
            // Data for a task that ended (aborted, ignored for CmdSN, rejected): discard.
            return;
        };
        if !matches!(t.state, TaskState::Receiving) {
            return;
        }
        let len = data.len() as u32;
        let off = h.buffer_offset;
        let ok = if h.ttt == RESERVED_TAG {
            if t.unsol_open
                && h.data_sn == t.unsol_data_sn
                && off == t.unsol_next
                && off.checked_add(len).is_some_and(|e| e <= t.unsol_end)
            {
                t.unsol_next += len;
                t.unsol_data_sn = t.unsol_data_sn.wrapping_add(1);
                if h.final_ {
                    t.unsol_open = false;
                }
                true
            } else {
                false
            }
        } else if let Some(r) = t.r2ts.iter_mut().find(|r| r.ttt == h.ttt) {
            if h.data_sn == r.next_data_sn
                && off == r.offset + r.received
                && off.checked_add(len).is_some_and(|e| e <= r.offset + r.len)
            {
                r.received += len;
                r.next_data_sn = r.next_data_sn.wrapping_add(1);
                true
            } else {
                false
            }
        } else {
            false
        };
        if !ok {
            // ERL 0: a sequence error ends the task; the Reject tells the initiator which.
            self.take_task(itt);
            self.reject(reject::PROTOCOL_ERROR, &Header::DataOut(h));
            self.check_waiters(itt);
            return;
        }
        put_data(&mut t.buf, off as usize, data, t.write_len as usize);
        t.progress = now;
        t.received += len;
        t.r2ts.retain(|r| r.received < r.len);
        if t.received >= t.write_len {
            let cmd = t.start(itt);
            self.events.push_back(Event::Execute(cmd));
        } else {
            self.issue_r2ts(itt);
        }
    }

    /// Result of an executed command: build Data-In and the status.
    /// `data_in` may be longer than the initiator expects (overflow residual);
    /// `write_residual` is how much Data-Out the command did not use (underflow) or wanted
    /// beyond what came (negative: overflow), as the SCSI layer reports it.
    pub fn complete(
        &mut self,
        itt: u32,
        status: u8,
        sense: Option<&[u8]>,
        data_in: &[u8],
        write_residual: i64,
    ) {
        self.complete_inner(
            itt,
            status,
            sense,
            DataSrc::Borrowed(data_in),
            write_residual,
        );
    }

    /// [`Connection::complete`] taking the Data-In buffer: when the Data-In fits one PDU the
    /// buffer becomes that PDU's data segment without a copy; otherwise the buffer is handed
    /// back for the caller to reuse.
    pub fn complete_owned(
        &mut self,
        itt: u32,
        status: u8,
        sense: Option<&[u8]>,
        data_in: Vec<u8>,
        write_residual: i64,
    ) -> Option<Vec<u8>> {
        match self.complete_inner(itt, status, sense, DataSrc::Owned(data_in), write_residual) {
            DataSrc::Owned(v) => Some(v),
            DataSrc::Borrowed(_) => None,
        }
    }

    /// Returns `data` unless it was moved into a PDU.
    fn complete_inner<'a>(
        &mut self,
        itt: u32,
        status: u8,
        sense: Option<&[u8]>,
        mut data: DataSrc<'a>,
        write_residual: i64,
    ) -> DataSrc<'a> {
        let Some(task) = self.take_task(itt) else {
            return data;
        };
        if matches!(task.state, TaskState::Aborted) {
            self.check_waiters(itt);
            return data;
        }
        let in_len = data.as_slice().len();
        let exp_in = task.expected_in_len as usize;
        let send_len = in_len.min(exp_in);
        let mut data_sn = 0u32;
        let (mut over, mut under, mut residual) = (false, false, 0u32);
        if task.read {
            if in_len > exp_in {
                over = true;
                residual = (in_len - exp_in).min(u32::MAX as usize) as u32;
            } else if in_len < exp_in {
                under = true;
                residual = (exp_in - in_len) as u32;
            }
        } else if write_residual > 0 {
            under = true;
            residual = write_residual.min(u32::MAX as i64) as u32;
        } else if write_residual < 0 {
            over = true;
            residual = write_residual.unsigned_abs().min(u32::MAX as u64) as u32;
        } else if task.edtl == 0 && in_len > 0 {
            // Data-In the initiator did not ask for at all.
            over = true;
            residual = in_len.min(u32::MAX as usize) as u32;
        }
        let collapse = task.read && send_len > 0 && sense.is_none();
        let seg = (self.params.max_xmit_data_segment_length as usize).max(512);
        let burst = (self.params.max_burst_length as usize).max(seg);
        // An owned buffer that needs several PDUs is shared by them, not copied into each.
        let mut shared: Option<std::sync::Arc<Vec<u8>>> = None;
        // A buffer much larger than what is sent (the CDB asked for more than the EDTL) is
        // copied from, not shared by the PDUs: queued output is counted by what it sends.
        let lean = |v: &Vec<u8>| v.capacity() <= send_len.saturating_mul(2).max(64 << 10);
        if send_len > seg.min(burst) {
            if let DataSrc::Owned(ref mut v) = data {
                if !lean(v) {
                    // Fall through to copying.
                } else {
                    shared = Some(std::sync::Arc::new(std::mem::take(v)));
                    data = DataSrc::Borrowed(&[]);
                }
            }
        }
        if send_len > 0 {
            let mut off = 0usize;
            while off < send_len {
                let n = seg.min(send_len - off).min(burst - off % burst);
                let last = off + n == send_len;
                let end_of_burst = (off + n).is_multiple_of(burst);
                let sns = if last && collapse {
                    self.sns_next()
                } else {
                    self.sns_peek()
                };
                // One PDU carries all of an owned buffer: move it instead of copying.
                let chunk = match data {
                    _ if shared.is_some() => Vec::new(),
                    DataSrc::Owned(ref mut v) if off == 0 && last => {
                        let mut v = std::mem::take(v);
                        v.truncate(n);
                        data = DataSrc::Borrowed(&[]);
                        v
                    }
                    _ => data.as_slice()[off..off + n].to_vec(),
                };
                let header = Header::DataIn(DataIn {
                    final_: last || end_of_burst,
                    ack: false,
                    overflow: last && collapse && over,
                    underflow: last && collapse && under,
                    status: if last && collapse { Some(status) } else { None },
                    lun: if last && collapse { 0 } else { task.lun },
                    itt,
                    ttt: RESERVED_TAG,
                    sns,
                    data_sn,
                    buffer_offset: off as u32,
                    residual: if last && collapse { residual } else { 0 },
                });
                match &shared {
                    Some(buf) => self.events.push_back(Event::SendShared(SharedPdu {
                        header,
                        buf: buf.clone(),
                        range: off..off + n,
                    })),
                    None => self.send(header, chunk),
                }
                data_sn = data_sn.wrapping_add(1);
                off += n;
            }
        }
        if !collapse {
            let mut body = Vec::new();
            if let Some(s) = sense {
                let n = s.len().min(0xffff);
                body.extend_from_slice(&(n as u16).to_be_bytes());
                body.extend_from_slice(&s[..n]);
            }
            let sns = self.sns_next();
            self.send(
                Header::ScsiResponse(ScsiResponse {
                    bidi_overflow: false,
                    bidi_underflow: false,
                    overflow: over,
                    underflow: under,
                    response: scsi_response::COMMAND_COMPLETED,
                    status,
                    itt,
                    snack_tag: 0,
                    sns,
                    exp_data_sn: if task.read { data_sn } else { task.r2t_sn },
                    bidi_residual: 0,
                    residual,
                }),
                body,
            );
        }
        self.check_waiters(itt);
        data
    }

    /// Answer a command that was not started for lack of memory: TASK SET FULL, nothing
    /// transferred (its unsolicited Data-Out, if any follows, is discarded as for any ended
    /// task).
    fn task_set_full(&mut self, itt: u32, edtl: u32) {
        let sns = self.sns_next();
        self.send(
            Header::ScsiResponse(ScsiResponse {
                response: scsi_response::COMMAND_COMPLETED,
                status: TASK_SET_FULL,
                underflow: edtl > 0,
                residual: edtl,
                itt,
                sns,
                ..Default::default()
            }),
            Vec::new(),
        );
    }

    /// The SCSI layer could not run the command at all: answer Response=Target Failure.
    pub fn fail(&mut self, itt: u32) {
        if let Some(task) = self.take_task(itt) {
            if !matches!(task.state, TaskState::Aborted) {
                let sns = self.sns_next();
                self.send(
                    Header::ScsiResponse(ScsiResponse {
                        response: scsi_response::TARGET_FAILURE,
                        itt,
                        sns,
                        ..Default::default()
                    }),
                    Vec::new(),
                );
            }
        }
        self.check_waiters(itt);
    }

    fn nop_out(&mut self, h: NopOut, data: Vec<u8>) {
        if h.ttt != RESERVED_TAG {
            // Answer to our ping.
            if self.ping.map(|(t, _)| t) == Some(h.ttt) {
                self.ping = None;
            }
            return;
        }
        if h.itt == RESERVED_TAG {
            // No answer wanted.
            return;
        }
        let mut data = data;
        data.truncate(self.params.max_xmit_data_segment_length as usize);
        let sns = self.sns_next();
        self.send(
            Header::NopIn(NopIn {
                lun: h.lun,
                itt: h.itt,
                ttt: RESERVED_TAG,
                sns,
            }),
            data,
        );
    }

    /// Abort tasks (all, or those on `lun`): tasks gathering data end now; executing tasks are
    /// marked and returned (their results will be dropped).
    fn abort_all(&mut self, lun: Option<u64>) -> Vec<u32> {
        let mut waiting = Vec::new();
        let mut gone = Vec::new();
        for (itt, t) in self.tasks.iter_mut() {
            if lun.is_some_and(|l| l != t.lun) {
                continue;
            }
            match t.state {
                TaskState::Receiving | TaskState::Waiting(_) => gone.push(*itt),
                TaskState::Executing | TaskState::Aborted => {
                    t.state = TaskState::Aborted;
                    waiting.push(*itt);
                }
            }
        }
        for itt in gone {
            self.take_task(itt);
        }
        self.held.retain(|_, p| match &p.header {
            Header::ScsiCommand(h) => lun.is_some_and(|l| l != h.lun),
            _ => true,
        });
        self.recount_held();
        waiting
    }

    /// For logout: tasks still gathering data end now; executing ones are returned and will
    /// complete normally.
    fn end_receiving_tasks(&mut self) -> Vec<u32> {
        self.retain_tasks(|t| !matches!(t.state, TaskState::Receiving | TaskState::Waiting(_)));
        self.held.clear();
        self.held_bytes = 0;
        self.held_dropped.clear();
        self.tasks.keys().copied().collect()
    }

    /// Executing tasks whose end the logout is waiting for.
    fn abort_for_logout(&mut self) -> Vec<u32> {
        self.tasks
            .iter()
            .filter(|(_, t)| matches!(t.state, TaskState::Executing | TaskState::Aborted))
            .map(|(i, _)| *i)
            .collect()
    }

    fn drop_task(&mut self, itt: u32) {
        if let Some(t) = self.tasks.get(&itt) {
            if matches!(t.state, TaskState::Receiving | TaskState::Waiting(_)) {
                self.take_task(itt);
            }
        }
    }

    fn task_mgmt(&mut self, h: TaskMgmtRequest) {
        let mut needs_lu = false;
        let mut response = tmf_response::FUNCTION_COMPLETE;
        let mut waiting = Vec::new();
        match h.function {
            tmf::ABORT_TASK => match self.tasks.get_mut(&h.rtt) {
                Some(t) => match t.state {
                    TaskState::Receiving | TaskState::Waiting(_) => {
                        self.take_task(h.rtt);
                    }
                    _ => {
                        t.state = TaskState::Aborted;
                        waiting.push(h.rtt);
                    }
                },
                None => {
                    let held = self
                        .held
                        .values()
                        .any(|p| matches!(&p.header, Header::ScsiCommand(c) if c.itt == h.rtt));
                    if held {
                        self.held.retain(
                            |_, p| !matches!(&p.header, Header::ScsiCommand(c) if c.itt == h.rtt),
                        );
                        self.recount_held();
                    } else if sn_le(self.exp_cmd_sn, h.ref_cmd_sn)
                        && sn_le(h.ref_cmd_sn, self.max_cmd_sn())
                        && sn_lt(h.ref_cmd_sn, h.cmd_sn)
                    {
                        // Not received yet but inside the window: consider it received
                        // (RFC 7143 §11.5.1 a), so it is ignored when it arrives.
                        self.skipped.insert(h.ref_cmd_sn);
                    } else {
                        response = tmf_response::TASK_DOES_NOT_EXIST;
                    }
                }
            },
            tmf::ABORT_TASK_SET | tmf::CLEAR_TASK_SET | tmf::LOGICAL_UNIT_RESET => {
                waiting = self.abort_all(Some(h.lun));
                needs_lu = true;
            }
            tmf::TARGET_WARM_RESET | tmf::TARGET_COLD_RESET => {
                waiting = self.abort_all(None);
                needs_lu = true;
            }
            tmf::TASK_REASSIGN => response = tmf_response::TASK_REASSIGNMENT_NOT_SUPPORTED,
            _ => response = tmf_response::FUNCTION_NOT_SUPPORTED,
        }
        self.tmfs.push(PendingTmf {
            itt: h.itt,
            function: h.function,
            response,
            waiting_for: waiting,
            lu_done: !needs_lu,
            cold: h.function == tmf::TARGET_COLD_RESET,
        });
        if needs_lu {
            self.events.push_back(Event::TaskMgmt(TmfRequest {
                itt: h.itt,
                function: h.function,
                lun: h.lun,
            }));
        }
        self.try_finish_tmfs();
    }

    /// The task management functions answered since the last call, as (function, response).
    /// Empty unless a TMF was answered; the transport counts them.
    pub fn take_answered_tmfs(&mut self) -> Vec<(u8, u8)> {
        std::mem::take(&mut self.tmfs_answered)
    }

    /// The logical-unit side of a TMF is done; `response` overrides the function result
    /// (e.g. LUN does not exist).
    pub fn tmf_done(&mut self, itt: u32, response: Option<u8>) {
        for t in self.tmfs.iter_mut().filter(|t| t.itt == itt) {
            t.lu_done = true;
            if let Some(r) = response {
                t.response = r;
            }
        }
        self.try_finish_tmfs();
    }

    fn check_waiters(&mut self, itt: u32) {
        if !self.waiting.is_empty() {
            self.retry_waiting();
        }
        for t in self.tmfs.iter_mut() {
            t.waiting_for.retain(|w| *w != itt);
        }
        if let Some((_, _, w)) = self.logout.as_mut() {
            w.retain(|x| *x != itt);
        }
        self.try_finish_tmfs();
        self.try_finish_logout();
    }

    fn try_finish_tmfs(&mut self) {
        while let Some(pos) = self
            .tmfs
            .iter()
            .position(|t| t.lu_done && t.waiting_for.is_empty())
        {
            let t = self.tmfs.remove(pos);
            self.tmfs_answered.push((t.function, t.response));
            let sns = self.sns_next();
            self.send(
                Header::TaskMgmtResponse(TaskMgmtResponse {
                    response: t.response,
                    itt: t.itt,
                    sns,
                }),
                Vec::new(),
            );
            if t.cold && !self.closed {
                self.closed = true;
                self.events.push_back(Event::Close(CloseReason::ColdReset));
            }
        }
    }

    fn try_finish_logout(&mut self) {
        let done = matches!(&self.logout, Some((_, _, w)) if w.is_empty());
        if !done || self.closed {
            return;
        }
        // Anything still executing was accepted before the logout; wait for it too.
        if !self.abort_for_logout().is_empty() {
            return;
        }
        let Some((itt, response, _)) = self.logout.take() else {
            return;
        };
        let sns = self.sns_next();
        self.send(
            Header::LogoutResponse(LogoutResponse {
                response,
                itt,
                sns,
                time2wait: self.params.default_time2wait,
                time2retain: self.params.default_time2retain,
            }),
            Vec::new(),
        );
        self.closed = true;
        self.events.push_back(Event::Close(CloseReason::LoggedOut));
    }

    fn text_request(&mut self, h: TextRequest, data: Vec<u8>, env: &mut dyn ConnEnv) {
        let max = self.params.max_xmit_data_segment_length.max(512) as usize;
        // Continuation of a long response we split.
        if h.ttt != RESERVED_TAG && self.text_in_ttt != Some(h.ttt) {
            match self.text_out.take() {
                Some(mut o) if o.ttt == h.ttt && o.itt == h.itt => {
                    let rest = if o.rest.len() > max {
                        o.rest.split_off(max)
                    } else {
                        Vec::new()
                    };
                    let chunk = std::mem::replace(&mut o.rest, rest);
                    let more = !o.rest.is_empty();
                    let ttt = if more { o.ttt } else { RESERVED_TAG };
                    if more {
                        self.text_out = Some(o);
                    }
                    self.text_response(h.itt, h.lun, ttt, !more, more, chunk);
                }
                _ => self.reject(reject::INVALID_PDU_FIELD, &Header::TextRequest(h)),
            }
            return;
        }
        self.text_out = None;
        if h.ttt == RESERVED_TAG && self.text_in_ttt.is_some() {
            // A new exchange replaces one whose keys were still arriving.
            self.text_in.clear();
        }
        self.text_in_ttt = None;
        if self.text_in.len() + data.len() > 64 * 1024 {
            self.text_in.clear();
            self.reject(reject::PROTOCOL_ERROR, &Header::TextRequest(h));
            return;
        }
        self.text_in.extend_from_slice(&data);
        if h.cont {
            // More keys follow: an empty response with a TTT to continue.
            let ttt = self.new_ttt();
            self.text_in_ttt = Some(ttt);
            self.text_response(h.itt, h.lun, ttt, false, false, Vec::new());
            return;
        }
        let raw = std::mem::take(&mut self.text_in);
        let keys = match text::parse(&raw) {
            Ok(k) => k,
            Err(_) => {
                self.reject(reject::PROTOCOL_ERROR, &Header::TextRequest(h));
                return;
            }
        };
        let mut out: Vec<(String, String)> = Vec::new();
        for (k, v) in &keys {
            match k.as_str() {
                "SendTargets" => {
                    let valid = v == "All" || v.is_empty() || is_iscsi_name(v);
                    if !valid {
                        out.push((k.clone(), "Reject".into()));
                        continue;
                    }
                    for (name, addrs) in env.send_targets(v, &self.params) {
                        out.push(("TargetName".into(), name));
                        for a in addrs {
                            out.push(("TargetAddress".into(), a));
                        }
                    }
                }
                _ if k.starts_with("X-") || k.starts_with("X#") => {
                    out.push((k.clone(), "NotUnderstood".into()));
                }
                "HeaderDigest"
                | "DataDigest"
                | "MaxConnections"
                | "InitialR2T"
                | "ImmediateData"
                | "MaxBurstLength"
                | "FirstBurstLength"
                | "DefaultTime2Wait"
                | "DefaultTime2Retain"
                | "MaxOutstandingR2T"
                | "DataPDUInOrder"
                | "DataSequenceInOrder"
                | "ErrorRecoveryLevel"
                | "SessionType"
                | "InitiatorName"
                | "TargetName"
                | "AuthMethod" => {
                    // Leading-only and login-only keys cannot change in full-feature phase.
                    out.push((k.clone(), "Reject".into()));
                }
                "MaxRecvDataSegmentLength" => match text::parse_number(v) {
                    Some(n) if (512..(1 << 24)).contains(&n) => {
                        self.params.max_xmit_data_segment_length = n as u32;
                    }
                    _ => out.push((k.clone(), "Reject".into())),
                },
                _ => out.push((k.clone(), "NotUnderstood".into())),
            }
        }
        let mut body = text::encode(&out);
        if body.len() > max {
            let rest = body.split_off(max);
            let ttt = self.new_ttt();
            self.text_out = Some(TextOut {
                ttt,
                itt: h.itt,
                rest,
            });
            self.text_response(h.itt, h.lun, ttt, false, true, body);
        } else {
            self.text_response(h.itt, h.lun, RESERVED_TAG, true, false, body);
        }
    }

    fn text_response(
        &mut self,
        itt: u32,
        lun: u64,
        ttt: u32,
        final_: bool,
        cont: bool,
        d: Vec<u8>,
    ) {
        let sns = self.sns_next();
        self.send(
            Header::TextResponse(TextResponse {
                final_,
                cont,
                lun,
                itt,
                ttt,
                sns,
            }),
            d,
        );
    }
}

/// Whether `s` looks like an iSCSI name (iqn., eui., naa.).
pub fn is_iscsi_name(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    (l.starts_with("iqn.") && l.len() > 4)
        || (l.starts_with("eui.") && l.len() == 20)
        || (l.starts_with("naa.") && (l.len() == 20 || l.len() == 36))
}

#[cfg(test)]
mod tests;
