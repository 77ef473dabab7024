//! A small pipelined iSCSI initiator used as the load generator: login (no authentication,
//! operational keys that allow immediate and unsolicited data), READ(10)/WRITE(10) with many
//! commands outstanding, R2T answering, NOP-In echo, and latency recording.
//!
//! It is written from RFC 7143 on its own, not with `vds-iscsi`'s codec, so that the code that
//! measures vds does not share a bug (or a shortcut) with the code that is measured, and so that
//! tgt is driven by exactly the same bytes.
//!
//! Design: one session = one TCP connection and two tasks. The reader task owns all session
//! state (sequence numbers, the table of outstanding commands, statistics) and issues the next
//! command as soon as one completes; the writer task only writes what it is given, batching
//! everything queued into one vectored write.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const BHS: usize = 48;
const RESERVED_TAG: u32 = 0xffff_ffff;

// Opcodes (RFC 7143 §11.2.1.2).
const OP_NOP_OUT: u8 = 0x00;
const OP_SCSI_CMD: u8 = 0x01;
const OP_LOGIN_REQ: u8 = 0x03;
const OP_DATA_OUT: u8 = 0x05;
const OP_LOGOUT_REQ: u8 = 0x06;
const OP_NOP_IN: u8 = 0x20;
const OP_SCSI_RSP: u8 = 0x21;
const OP_LOGIN_RSP: u8 = 0x23;
const OP_DATA_IN: u8 = 0x25;
const OP_LOGOUT_RSP: u8 = 0x26;
const OP_R2T: u8 = 0x31;
const OP_ASYNC: u8 = 0x32;
const OP_REJECT: u8 = 0x3f;

/// Where to log in.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub iqn: String,
    pub lun: u64,
}

/// What the target declared at login, as far as the initiator must obey it.
#[derive(Debug, Clone, Copy)]
pub struct Negotiated {
    /// The target's MaxRecvDataSegmentLength: largest data segment we may send.
    pub max_send_segment: u32,
    pub first_burst: u32,
    pub max_burst: u32,
    pub initial_r2t: bool,
    pub immediate_data: bool,
}

impl Negotiated {
    /// Take the target's answers and declarations from the login key lists.
    pub fn apply(&mut self, keys: &[(String, String)]) {
        for (k, v) in keys {
            let n = v.parse::<u32>().ok();
            match (k.as_str(), n) {
                ("MaxRecvDataSegmentLength", Some(n)) => self.max_send_segment = n,
                ("FirstBurstLength", Some(n)) => self.first_burst = n,
                ("MaxBurstLength", Some(n)) => self.max_burst = n,
                ("InitialR2T", _) => self.initial_r2t = v == "Yes",
                ("ImmediateData", _) => self.immediate_data = v == "Yes",
                _ => {}
            }
        }
        // FirstBurstLength never exceeds MaxBurstLength (RFC 7143 §13.14).
        self.first_burst = self.first_burst.min(self.max_burst);
    }

    /// (immediate bytes in the command PDU, total unsolicited bytes) for a write of `len`.
    pub fn unsolicited(&self, len: u32) -> (u32, u32) {
        let burst = self.first_burst.min(len);
        let imm = if self.immediate_data {
            burst.min(self.max_send_segment)
        } else {
            0
        };
        if self.initial_r2t {
            (imm, imm)
        } else {
            (imm, burst)
        }
    }
}

/// Serial number arithmetic (RFC 1982, 32 bits): a < b.
fn sn_lt(a: u32, b: u32) -> bool {
    a != b && (b.wrapping_sub(a) as i32) > 0
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

fn put_dsl(b: &mut [u8; BHS], len: u32) {
    b[5] = (len >> 16) as u8;
    b[6] = (len >> 8) as u8;
    b[7] = len as u8;
}

/// SAM single-level LUN encoding (peripheral device addressing below 256, flat above).
fn encode_lun(lun: u64) -> [u8; 8] {
    let mut out = [0u8; 8];
    if lun < 256 {
        out[1] = lun as u8;
    } else {
        out[0] = 0x40 | ((lun >> 8) as u8 & 0x3f);
        out[1] = lun as u8;
    }
    out
}

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

/// A logged-in session before it is split into its reader and writer.
pub struct Session {
    stream: TcpStream,
    lun: [u8; 8],
    cmd_sn: u32,
    exp_stat_sn: u32,
    max_cmd_sn: u32,
    pub neg: Negotiated,
    next_itt: u32,
}

fn parse_keys(data: &[u8], into: &mut Vec<(String, String)>) {
    for kv in data.split(|b| *b == 0) {
        if kv.is_empty() {
            continue;
        }
        let s = String::from_utf8_lossy(kv);
        if let Some((k, v)) = s.split_once('=') {
            into.push((k.to_string(), v.to_string()));
        }
    }
}

async fn read_pdu(s: &mut TcpStream) -> Result<([u8; BHS], Vec<u8>)> {
    let mut h = [0u8; BHS];
    s.read_exact(&mut h).await?;
    let ahs = h[4] as usize * 4;
    let dsl = ((h[5] as usize) << 16) | ((h[6] as usize) << 8) | h[7] as usize;
    let mut rest = vec![0u8; ahs + dsl + pad4(dsl)];
    s.read_exact(&mut rest).await?;
    rest.drain(..ahs);
    rest.truncate(dsl);
    Ok((h, rest))
}

impl Session {
    /// Connect and log in to a normal session: security stage without authentication, then
    /// operational negotiation asking for immediate data and no initial R2T.
    pub async fn login(ep: &Endpoint, initiator: &str, isid_tag: u16) -> Result<Session> {
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(ep.addr))
            .await
            .map_err(|_| anyhow!("connect to {} timed out", ep.addr))?
            .with_context(|| format!("connect to {}", ep.addr))?;
        stream.set_nodelay(true)?;
        let mut s = Session {
            stream,
            lun: encode_lun(ep.lun),
            cmd_sn: 1,
            exp_stat_sn: 0,
            max_cmd_sn: 1,
            neg: Negotiated {
                max_send_segment: 8192,
                first_burst: 65536,
                max_burst: 262144,
                initial_r2t: true,
                immediate_data: true,
            },
            next_itt: 1,
        };
        // ISID: type 0x80 (random), the rest from the tag so every session differs.
        let isid = [
            0x80,
            0x12,
            0x34,
            (isid_tag >> 8) as u8,
            isid_tag as u8,
            0x01,
        ];
        let security = format!(
            "InitiatorName={initiator}\0SessionType=Normal\0TargetName={}\0AuthMethod=None\0",
            ep.iqn
        );
        let operational = "HeaderDigest=None\0DataDigest=None\0InitialR2T=No\0ImmediateData=Yes\0\
            MaxRecvDataSegmentLength=262144\0MaxBurstLength=16776192\0FirstBurstLength=262144\0\
            MaxOutstandingR2T=1\0DataPDUInOrder=Yes\0DataSequenceInOrder=Yes\0ErrorRecoveryLevel=0\0\
            MaxConnections=1\0DefaultTime2Wait=0\0DefaultTime2Retain=0\0";
        let mut keys = Vec::new();
        let mut tsih = 0u16;
        let mut stage = 0u8;
        let mut sent_ops = false;
        let itt = 0u32;
        for _round in 0..16 {
            let (csg, nsg, body): (u8, u8, &str) = match stage {
                0 => (
                    0,
                    1,
                    if tsih == 0 && keys.is_empty() {
                        &security
                    } else {
                        ""
                    },
                ),
                _ => {
                    let b = if sent_ops { "" } else { operational };
                    sent_ops = true;
                    (1, 3, b)
                }
            };
            let mut h = [0u8; BHS];
            h[0] = 0x40 | OP_LOGIN_REQ;
            h[1] = 0x80 | (csg << 2) | nsg;
            h[8..14].copy_from_slice(&isid);
            h[14..16].copy_from_slice(&tsih.to_be_bytes());
            put32(&mut h, 16, itt);
            put32(&mut h, 24, s.cmd_sn);
            put32(&mut h, 28, s.exp_stat_sn);
            put_dsl(&mut h, body.len() as u32);
            let mut wire = h.to_vec();
            wire.extend_from_slice(body.as_bytes());
            wire.resize(wire.len() + pad4(body.len()), 0);
            s.stream.write_all(&wire).await?;
            let (rh, data) = tokio::time::timeout(Duration::from_secs(10), read_pdu(&mut s.stream))
                .await
                .map_err(|_| anyhow!("login response timed out"))??;
            if rh[0] & 0x3f != OP_LOGIN_RSP {
                bail!(
                    "expected a login response, got opcode {:#04x}",
                    rh[0] & 0x3f
                );
            }
            let (class, detail) = (rh[36], rh[37]);
            if class != 0 {
                bail!(
                    "login to {} refused: status {class:#04x}{detail:02x}, keys {:?}",
                    ep.iqn,
                    String::from_utf8_lossy(&data)
                );
            }
            tsih = u16::from_be_bytes([rh[14], rh[15]]);
            s.exp_stat_sn = be32(&rh, 24).wrapping_add(1);
            s.cmd_sn = be32(&rh, 28);
            s.max_cmd_sn = be32(&rh, 32);
            parse_keys(&data, &mut keys);
            let transit = rh[1] & 0x80 != 0;
            let rnsg = rh[1] & 0x03;
            if transit && rnsg == 3 {
                s.neg.apply(&keys);
                return Ok(s);
            }
            if transit && stage == 0 {
                stage = 1;
            }
        }
        bail!("login to {} did not reach full-feature phase", ep.iqn)
    }

    fn header(&mut self, op: u8, flags: u8) -> [u8; BHS] {
        let mut h = [0u8; BHS];
        h[0] = op;
        h[1] = flags;
        h[8..16].copy_from_slice(&self.lun);
        h
    }

    /// One command, sent and waited for (setup only: capacity). Returns the Data-In bytes.
    pub async fn command_blocking(&mut self, cdb: &[u8], read_len: u32) -> Result<Vec<u8>> {
        let mut h = self.header(OP_SCSI_CMD, 0x80 | 0x40 | 0x01);
        let itt = self.next_itt;
        self.next_itt += 1;
        put32(&mut h, 16, itt);
        put32(&mut h, 20, read_len);
        put32(&mut h, 24, self.cmd_sn);
        put32(&mut h, 28, self.exp_stat_sn);
        h[32..32 + cdb.len()].copy_from_slice(cdb);
        self.cmd_sn = self.cmd_sn.wrapping_add(1);
        self.stream.write_all(&h).await?;
        let mut out = Vec::new();
        loop {
            let (rh, data) =
                tokio::time::timeout(Duration::from_secs(10), read_pdu(&mut self.stream))
                    .await
                    .map_err(|_| anyhow!("command timed out"))??;
            match rh[0] & 0x3f {
                OP_DATA_IN => {
                    out.extend_from_slice(&data);
                    if rh[1] & 0x01 != 0 {
                        self.exp_stat_sn = be32(&rh, 24).wrapping_add(1);
                        self.max_cmd_sn = be32(&rh, 32);
                        if rh[3] != 0 {
                            bail!("command failed with status {:#04x}", rh[3]);
                        }
                        return Ok(out);
                    }
                }
                OP_SCSI_RSP => {
                    self.exp_stat_sn = be32(&rh, 24).wrapping_add(1);
                    self.max_cmd_sn = be32(&rh, 32);
                    if rh[2] != 0 || rh[3] != 0 {
                        bail!(
                            "command failed: response {:#04x} status {:#04x} sense {:02x?}",
                            rh[2],
                            rh[3],
                            &data[..data.len().min(20)]
                        );
                    }
                    return Ok(out);
                }
                OP_NOP_IN | OP_ASYNC => {}
                op => bail!("unexpected opcode {op:#04x} during setup"),
            }
        }
    }

    /// READ CAPACITY(16): (number of blocks, block length). Retries once past a unit attention.
    pub async fn capacity(&mut self) -> Result<(u64, u32)> {
        let mut cdb = [0u8; 16];
        cdb[0] = 0x9e;
        cdb[1] = 0x10;
        cdb[13] = 32;
        let mut last = None;
        for _ in 0..3 {
            match self.command_blocking(&cdb, 32).await {
                Ok(d) if d.len() >= 12 => {
                    let last_lba = u64::from_be_bytes(d[0..8].try_into().expect("8 bytes"));
                    return Ok((last_lba + 1, be32(&d, 8)));
                }
                Ok(d) => last = Some(anyhow!("short READ CAPACITY data ({} bytes)", d.len())),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("READ CAPACITY failed")))
    }
}

/// What one load run does.
#[derive(Debug, Clone)]
pub struct Load {
    /// Bytes per command.
    pub io_size: u32,
    /// Commands outstanding per session.
    pub qd: usize,
    /// Percentage of reads (100 = read only, 0 = write only).
    pub read_pct: u8,
    /// Random offsets (else sequential, wrapping).
    pub random: bool,
    pub warmup: Duration,
    pub duration: Duration,
}

/// Statistics of one session (or the sum of many).
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub ios: u64,
    pub bytes: u64,
    pub errors: u64,
    /// Latency of every measured command, nanoseconds.
    pub lat_ns: Vec<u32>,
    pub elapsed: Duration,
}

impl Stats {
    pub fn merge(&mut self, o: Stats) {
        self.ios += o.ios;
        self.bytes += o.bytes;
        self.errors += o.errors;
        self.lat_ns.extend(o.lat_ns);
        self.elapsed = self.elapsed.max(o.elapsed);
    }
}

/// Sequence state of a session in its load phase.
struct Seq {
    lun: [u8; 8],
    cmd_sn: u32,
    exp_stat_sn: u32,
    max_cmd_sn: u32,
    neg: Negotiated,
}

/// One queued write: a header and optionally a slice of the shared payload.
struct Out {
    hdr: [u8; BHS],
    data: Option<(usize, usize)>,
}

#[derive(Clone, Copy)]
struct Slot {
    busy: bool,
    start: Instant,
    write: bool,
    len: u32,
    /// Data-In bytes received so far (a read that completes with fewer counts as an error).
    got: u32,
}

/// Write everything queued: gathers up to 64 PDUs into one vectored write.
async fn writer(mut wr: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Out>, payload: Arc<[u8]>) {
    let mut batch: Vec<Out> = Vec::with_capacity(64);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < 64 {
            match rx.try_recv() {
                Ok(o) => batch.push(o),
                Err(_) => break,
            }
        }
        let mut parts: Vec<&[u8]> = Vec::with_capacity(batch.len() * 2);
        for o in &batch {
            parts.push(&o.hdr);
            if let Some((off, len)) = o.data {
                parts.push(&payload[off..off + len]);
                let p = pad4(len);
                if p > 0 {
                    parts.push(&[0u8; 3][..p]);
                }
            }
        }
        if write_all_parts(&mut wr, &parts).await.is_err() {
            return;
        }
        batch.clear();
    }
    let _ = wr.shutdown().await;
}

async fn write_all_parts(wr: &mut OwnedWriteHalf, parts: &[&[u8]]) -> std::io::Result<()> {
    let mut idx = 0usize;
    let mut off = 0usize;
    while idx < parts.len() {
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(parts.len() - idx);
        slices.push(IoSlice::new(&parts[idx][off..]));
        for p in &parts[idx + 1..] {
            slices.push(IoSlice::new(p));
        }
        let mut n = wr.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while idx < parts.len() && n >= parts[idx].len() - off {
            n -= parts[idx].len() - off;
            idx += 1;
            off = 0;
        }
        off += n;
    }
    Ok(())
}

/// Size of the shared write payload: the largest I/O plus room for any offset into it.
fn payload_len(io_size: u32) -> usize {
    io_size as usize
}

/// Run `load` on a logged-in session until its duration is over, then log out.
pub async fn run(
    sess: Session,
    load: Load,
    capacity_blocks: u64,
    block: u32,
    seed: u64,
) -> Result<Stats> {
    let blocks_per_io = (load.io_size / block) as u64;
    if blocks_per_io == 0 || blocks_per_io > u16::MAX as u64 || capacity_blocks < blocks_per_io {
        bail!("I/O size {} does not fit the LUN", load.io_size);
    }
    let ios_in_lun = capacity_blocks / blocks_per_io;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut payload = vec![0u8; payload_len(load.io_size)];
    rng.fill(&mut payload[..]);
    let payload: Arc<[u8]> = payload.into();

    let Session {
        stream,
        lun,
        cmd_sn,
        exp_stat_sn,
        max_cmd_sn,
        neg,
        ..
    } = sess;
    let mut s = Seq {
        lun,
        cmd_sn,
        exp_stat_sn,
        max_cmd_sn,
        neg,
    };
    let (rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::unbounded_channel::<Out>();
    let wtask = tokio::spawn(writer(wr, rx, payload.clone()));
    let mut rd = BufReader::with_capacity(1 << 18, rd);

    let qd = load.qd.max(1);
    let mut slots = vec![
        Slot {
            busy: false,
            start: Instant::now(),
            write: false,
            len: 0,
            got: 0,
        };
        qd
    ];
    let mut seq_next: u64 = rng.gen_range(0..ios_in_lun);
    let begin = Instant::now();
    let t0 = begin + load.warmup;
    let t1 = t0 + load.duration;
    let mut stats = Stats::default();
    let mut outstanding = 0usize;
    let mut scratch = vec![0u8; 1 << 18];
    let mut stopping = false;
    // Pending = slots free but not yet issued because the CmdSN window is closed.
    let mut pending: Vec<usize> = (0..qd).collect();
    // ITT: slot index in the low 16 bits, a generation above (stale responses are detected).
    let mut gen: u32 = 1;
    loop {
        // Issue what the window allows.
        while !stopping && !pending.is_empty() && !sn_lt(s.max_cmd_sn, s.cmd_sn) {
            let slot = pending.pop().expect("non-empty");
            let write = rng.gen_range(0..100u8) >= load.read_pct;
            let idx = if load.random {
                rng.gen_range(0..ios_in_lun)
            } else {
                let i = seq_next;
                seq_next = (seq_next + 1) % ios_in_lun;
                i
            };
            let lba = idx * blocks_per_io;
            gen = gen.wrapping_add(1) & 0x7fff;
            let itt = (gen << 16) | slot as u32;
            let mut h = [0u8; BHS];
            h[0] = OP_SCSI_CMD;
            h[1] = 0x80 | if write { 0x20 } else { 0x40 } | 0x01;
            h[8..16].copy_from_slice(&s.lun);
            put32(&mut h, 16, itt);
            put32(&mut h, 20, load.io_size);
            put32(&mut h, 24, s.cmd_sn);
            put32(&mut h, 28, s.exp_stat_sn);
            let cdb = &mut h[32..48];
            cdb[0] = if write { 0x2a } else { 0x28 };
            cdb[2..6].copy_from_slice(&(lba as u32).to_be_bytes());
            cdb[7..9].copy_from_slice(&(blocks_per_io as u16).to_be_bytes());
            s.cmd_sn = s.cmd_sn.wrapping_add(1);
            let now = Instant::now();
            slots[slot] = Slot {
                busy: true,
                start: now,
                write,
                len: load.io_size,
                got: 0,
            };
            outstanding += 1;
            if write {
                // Immediate data, then unsolicited Data-Out up to FirstBurstLength.
                let (imm, unsolicited) = s.neg.unsolicited(load.io_size);
                put_dsl(&mut h, imm);
                if unsolicited > imm {
                    h[1] &= !0x80; // F only when no unsolicited Data-Out follows
                }
                let _ = tx.send(Out {
                    hdr: h,
                    data: (imm > 0).then_some((0, imm as usize)),
                });
                if unsolicited > imm {
                    send_data_out(&tx, &s, itt, RESERVED_TAG, imm, unsolicited - imm, 0);
                }
            } else {
                let _ = tx.send(Out { hdr: h, data: None });
            }
        }
        if !stopping && Instant::now() >= t1 {
            stopping = true;
        }
        if stopping && outstanding == 0 {
            break;
        }
        // Read one PDU.
        let mut h = [0u8; BHS];
        match tokio::time::timeout(Duration::from_secs(10), rd.read_exact(&mut h)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e).context("connection lost"),
            Err(_) => bail!(
                "no response for 10 s ({} commands outstanding)",
                outstanding
            ),
        }
        let ahs = h[4] as usize * 4;
        let dsl = ((h[5] as usize) << 16) | ((h[6] as usize) << 8) | h[7] as usize;
        let mut left = ahs + dsl + pad4(dsl);
        let op = h[0] & 0x3f;
        let mut keep = Vec::new();
        while left > 0 {
            let n = left.min(scratch.len());
            rd.read_exact(&mut scratch[..n]).await?;
            if op != OP_DATA_IN && keep.len() < 4096 {
                keep.extend_from_slice(&scratch[..n.min(4096)]);
            }
            left -= n;
        }
        let exp_cmd = be32(&h, 28);
        let max_cmd = be32(&h, 32);
        let has_sns = matches!(
            op,
            OP_SCSI_RSP | OP_NOP_IN | OP_R2T | OP_LOGOUT_RSP | OP_ASYNC
        ) || (op == OP_DATA_IN && h[1] & 0x01 != 0);
        if has_sns && !sn_lt(max_cmd.wrapping_add(1), exp_cmd) && sn_lt(s.max_cmd_sn, max_cmd) {
            s.max_cmd_sn = max_cmd;
        }
        let itt = be32(&h, 16);
        if op == OP_DATA_IN {
            let slot = (itt & 0xffff) as usize;
            if slot < qd && slots[slot].busy {
                slots[slot].got = slots[slot].got.saturating_add(dsl as u32);
            }
        }
        let done_status: Option<(u8, u8)> = match op {
            OP_DATA_IN => {
                if h[1] & 0x01 != 0 {
                    s.exp_stat_sn = be32(&h, 24).wrapping_add(1);
                    Some((0, h[3]))
                } else {
                    None
                }
            }
            OP_SCSI_RSP => {
                s.exp_stat_sn = be32(&h, 24).wrapping_add(1);
                Some((h[2], h[3]))
            }
            OP_R2T => {
                let slot = (itt & 0xffff) as usize;
                let ttt = be32(&h, 20);
                let off = be32(&h, 40);
                let len = be32(&h, 44);
                if slot < qd && slots[slot].busy && slots[slot].write {
                    let end = off.saturating_add(len).min(slots[slot].len);
                    send_data_out(&tx, &s, itt, ttt, off, end.saturating_sub(off), 0);
                } else {
                    bail!("R2T for unknown task {itt:#x}");
                }
                None
            }
            OP_NOP_IN => {
                s.exp_stat_sn = be32(&h, 24).wrapping_add(1);
                let ttt = be32(&h, 20);
                if ttt != RESERVED_TAG {
                    let mut o = [0u8; BHS];
                    o[0] = 0x40 | OP_NOP_OUT;
                    o[1] = 0x80;
                    put32(&mut o, 16, RESERVED_TAG);
                    put32(&mut o, 20, ttt);
                    put32(&mut o, 24, s.cmd_sn);
                    put32(&mut o, 28, s.exp_stat_sn);
                    let _ = tx.send(Out { hdr: o, data: None });
                }
                None
            }
            OP_ASYNC => None,
            OP_REJECT => bail!(
                "target rejected a PDU: {:02x?}",
                &keep[..keep.len().min(48)]
            ),
            op => bail!("unexpected opcode {op:#04x}"),
        };
        if let Some((response, status)) = done_status {
            let slot = (itt & 0xffff) as usize;
            if slot >= qd || !slots[slot].busy {
                bail!("response for unknown task {itt:#x}");
            }
            let sl = slots[slot];
            slots[slot].busy = false;
            outstanding -= 1;
            let short_read = !sl.write && sl.got != sl.len;
            if response != 0 || status != 0 || short_read {
                stats.errors += 1;
                if stats.errors == 1 {
                    eprintln!(
                        "vds-bench: command failed (response {response:#04x}, status {status:#04x}, {} of {} bytes read, sense {:02x?})",
                        sl.got,
                        if sl.write { 0 } else { sl.len },
                        &keep[..keep.len().min(20)]
                    );
                }
            }
            // Counted when it completes inside the window, wherever it was issued.
            let now = Instant::now();
            {
                if now >= t0 && now <= t1 {
                    stats.ios += 1;
                    stats.bytes += u64::from(sl.len);
                    let ns = now.duration_since(sl.start).as_nanos();
                    stats.lat_ns.push(ns.min(u32::MAX as u128) as u32);
                }
            }
            pending.push(slot);
        }
    }
    stats.elapsed = load.duration;
    // Logout (best effort; a benchmark does not care about the answer beyond a moment).
    let mut o = [0u8; BHS];
    o[0] = 0x40 | OP_LOGOUT_REQ;
    o[1] = 0x80;
    put32(&mut o, 16, 0x7fff_fff0);
    put32(&mut o, 24, s.cmd_sn);
    put32(&mut o, 28, s.exp_stat_sn);
    let _ = tx.send(Out { hdr: o, data: None });
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let mut h = [0u8; BHS];
        while rd.read_exact(&mut h).await.is_ok() {
            let dsl = ((h[5] as usize) << 16) | ((h[6] as usize) << 8) | h[7] as usize;
            let mut left = h[4] as usize * 4 + dsl + pad4(dsl);
            while left > 0 {
                let n = left.min(scratch.len());
                if rd.read_exact(&mut scratch[..n]).await.is_err() {
                    return;
                }
                left -= n;
            }
            if h[0] & 0x3f == OP_LOGOUT_RSP {
                return;
            }
        }
    })
    .await;
    let _ = wtask.await;
    Ok(stats)
}

/// Data-Out PDUs for `[off, off+len)` of the payload, split at the target's segment limit.
fn send_data_out(
    tx: &mpsc::UnboundedSender<Out>,
    s: &Seq,
    itt: u32,
    ttt: u32,
    off: u32,
    len: u32,
    first_data_sn: u32,
) {
    let seg = s.neg.max_send_segment.max(512);
    let mut done = 0u32;
    let mut data_sn = first_data_sn;
    while done < len {
        let n = seg.min(len - done);
        let mut h = [0u8; BHS];
        h[0] = OP_DATA_OUT;
        h[1] = if done + n == len { 0x80 } else { 0 };
        h[8..16].copy_from_slice(&s.lun);
        put32(&mut h, 16, itt);
        put32(&mut h, 20, ttt);
        put32(&mut h, 28, s.exp_stat_sn);
        put32(&mut h, 36, data_sn);
        put32(&mut h, 40, off + done);
        put_dsl(&mut h, n);
        let _ = tx.send(Out {
            hdr: h,
            data: Some(((off + done) as usize, n as usize)),
        });
        done += n;
        data_sn += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_numbers_wrap() {
        assert!(sn_lt(1, 2));
        assert!(!sn_lt(2, 1));
        assert!(!sn_lt(5, 5));
        assert!(sn_lt(u32::MAX, 0));
        assert!(!sn_lt(0, u32::MAX));
    }

    #[test]
    fn luns_encode_per_sam() {
        assert_eq!(encode_lun(0), [0; 8]);
        assert_eq!(encode_lun(5), [0, 5, 0, 0, 0, 0, 0, 0]);
        assert_eq!(encode_lun(300), [0x41, 0x2c, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn keys_parse_and_apply() {
        let mut keys = Vec::new();
        parse_keys(
            b"MaxRecvDataSegmentLength=8192\0FirstBurstLength=65536\0MaxBurstLength=32768\0InitialR2T=Yes\0ImmediateData=No\0",
            &mut keys,
        );
        assert_eq!(keys.len(), 5);
        let mut neg = Negotiated {
            max_send_segment: 0,
            first_burst: 0,
            max_burst: 0,
            initial_r2t: false,
            immediate_data: true,
        };
        neg.apply(&keys);
        assert_eq!(neg.max_send_segment, 8192);
        assert!(neg.initial_r2t);
        assert!(!neg.immediate_data);
        // FirstBurst is clamped to MaxBurst.
        assert_eq!(neg.first_burst, 32768);
    }

    #[test]
    fn unsolicited_data_follows_the_negotiated_keys() {
        let mut n = Negotiated {
            max_send_segment: 8192,
            first_burst: 65536,
            max_burst: 262144,
            initial_r2t: false,
            immediate_data: true,
        };
        assert_eq!(n.unsolicited(4096), (4096, 4096));
        assert_eq!(n.unsolicited(131072), (8192, 65536));
        n.initial_r2t = true;
        assert_eq!(n.unsolicited(131072), (8192, 8192));
        n.immediate_data = false;
        assert_eq!(n.unsolicited(131072), (0, 0));
        n.initial_r2t = false;
        assert_eq!(n.unsolicited(4096), (0, 4096));
    }
}
