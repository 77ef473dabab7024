//! A small blocking iSCSI initiator on `vds-iscsi`'s codec, for scripting scenarios in tests
//! and benchmarks: login (discovery or normal, AuthMethod None or CHAP one-way/mutual, digests),
//! any CDB with Data-Out (immediate, unsolicited and R2T-driven), Data-In and sense, task
//! management, NOP, SendTargets, logout, and raw PDU access for malformed-input scenarios.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use vds_iscsi::chap::ChapAlg;
use vds_iscsi::codes::{stage, LoginStatus, RESERVED_TAG};
use vds_iscsi::pdu::{
    Bhs, DataOut, Digests, Header, LoginRequest, LogoutRequest, NopOut, Pdu, ScsiCommand, TaskAttr,
    TaskMgmtRequest, TextRequest, BHS_LEN,
};
use vds_iscsi::text;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("login refused with status 0x{:04x}", .0 .0)]
    Login(LoginStatus),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("rejected with reason 0x{0:02x}")]
    Rejected(u8),
}

pub type Result<T> = std::result::Result<T, Error>;

/// How to log in.
#[derive(Debug, Clone)]
pub struct LoginOptions {
    pub initiator_name: String,
    /// `None`: a discovery session.
    pub target_name: Option<String>,
    pub isid: [u8; 6],
    pub tsih: u16,
    /// CHAP user and secret (one-way).
    pub chap: Option<(String, Vec<u8>)>,
    /// Secret the target must prove (mutual CHAP).
    pub mutual_secret: Option<Vec<u8>>,
    /// CHAP_A list to offer.
    pub chap_algorithms: String,
    pub header_digest: bool,
    pub data_digest: bool,
    /// Extra operational keys (sent in the operational stage).
    pub extra_keys: Vec<(String, String)>,
    pub timeout: Duration,
}

impl LoginOptions {
    pub fn normal(initiator: &str, target: &str) -> Self {
        LoginOptions {
            initiator_name: initiator.to_string(),
            target_name: Some(target.to_string()),
            isid: [0x80, 0x00, 0x00, 0x00, 0x00, 0x01],
            tsih: 0,
            chap: None,
            mutual_secret: None,
            chap_algorithms: "5".into(),
            header_digest: false,
            data_digest: false,
            extra_keys: Vec::new(),
            timeout: Duration::from_secs(10),
        }
    }
    pub fn discovery(initiator: &str) -> Self {
        LoginOptions {
            target_name: None,
            ..LoginOptions::normal(initiator, "")
        }
    }
}

/// Result of one SCSI command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScsiResult {
    pub status: u8,
    pub sense: Vec<u8>,
    pub data: Vec<u8>,
    pub overflow: bool,
    pub underflow: bool,
    pub residual: u32,
}

/// The keys a target may send in a security-stage login response (open-iscsi's list:
/// authentication, and the target's own declarations of identity).
const SECURITY_STAGE_KEYS: [&str; 9] = [
    "AuthMethod",
    "CHAP_A",
    "CHAP_I",
    "CHAP_C",
    "CHAP_N",
    "CHAP_R",
    "TargetPortalGroupTag",
    "TargetAlias",
    "TargetAddress",
];

/// A logged-in connection.
pub struct Initiator {
    stream: TcpStream,
    digests: Digests,
    itt: u32,
    cmd_sn: u32,
    exp_stat_sn: u32,
    /// Negotiated values.
    pub tsih: u16,
    pub max_xmit: u32,
    pub first_burst: u32,
    pub immediate_data: bool,
    pub initial_r2t: bool,
    /// Async messages seen while waiting for other PDUs.
    pub async_events: Vec<vds_iscsi::pdu::AsyncMessage>,
    /// Keys of the final login response.
    pub login_keys: Vec<(String, String)>,
}

impl Initiator {
    /// Connect and log in.
    pub fn connect(addr: SocketAddr, opts: &LoginOptions) -> Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, opts.timeout)?;
        stream.set_read_timeout(Some(opts.timeout))?;
        stream.set_nodelay(true)?;
        let mut ini = Initiator {
            stream,
            digests: Digests::default(),
            itt: 1,
            cmd_sn: 1,
            exp_stat_sn: 0,
            tsih: 0,
            max_xmit: 8192,
            first_burst: 65536,
            immediate_data: true,
            initial_r2t: true,
            async_events: Vec::new(),
            login_keys: Vec::new(),
        };
        ini.login(opts)?;
        Ok(ini)
    }

    /// The initiator's end of the connection (the target's peer address).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.stream.local_addr()?)
    }

    /// A fresh initiator task tag.
    pub fn next_itt(&mut self) -> u32 {
        let i = self.itt;
        self.itt = self.itt.wrapping_add(1);
        if self.itt == RESERVED_TAG {
            self.itt = 1;
        }
        i
    }

    /// CmdSN for the next non-immediate command (and advance it).
    pub fn take_cmd_sn(&mut self) -> u32 {
        let c = self.cmd_sn;
        self.cmd_sn = self.cmd_sn.wrapping_add(1);
        c
    }

    pub fn cmd_sn(&self) -> u32 {
        self.cmd_sn
    }
    pub fn exp_stat_sn(&self) -> u32 {
        self.exp_stat_sn
    }

    /// Send a raw PDU.
    pub fn send(&mut self, pdu: &Pdu) -> Result<()> {
        let b = pdu
            .to_bytes(self.digests)
            .map_err(|e| Error::Protocol(e.to_string()))?;
        self.stream.write_all(&b)?;
        Ok(())
    }

    /// Send raw bytes (malformed-input scenarios).
    pub fn send_bytes(&mut self, b: &[u8]) -> Result<()> {
        self.stream.write_all(b)?;
        Ok(())
    }

    /// Receive one PDU (any kind).
    pub fn recv(&mut self) -> Result<Pdu> {
        let mut h = [0u8; BHS_LEN];
        self.stream.read_exact(&mut h)?;
        let bhs = Bhs(h);
        let mut rest = vec![0u8; bhs.wire_rest_len(self.digests.header, self.digests.data)];
        self.stream.read_exact(&mut rest)?;
        let pdu = Pdu::from_parts(&bhs, &rest, self.digests)
            .map_err(|e| Error::Protocol(e.to_string()))?;
        let stat_sn = match &pdu.header {
            Header::ScsiResponse(r) => Some(r.sns.stat_sn),
            Header::LoginResponse(r) => Some(r.sns.stat_sn),
            Header::TextResponse(r) => Some(r.sns.stat_sn),
            Header::TaskMgmtResponse(r) => Some(r.sns.stat_sn),
            Header::LogoutResponse(r) => Some(r.sns.stat_sn),
            Header::Reject(r) => Some(r.sns.stat_sn),
            Header::AsyncMessage(r) => Some(r.sns.stat_sn),
            Header::NopIn(r) if r.itt != RESERVED_TAG => Some(r.sns.stat_sn),
            Header::DataIn(r) if r.status.is_some() => Some(r.sns.stat_sn),
            _ => None,
        };
        if let Some(s) = stat_sn {
            self.exp_stat_sn = s.wrapping_add(1);
        }
        Ok(pdu)
    }

    /// Receive the next PDU that is not an async message or a target ping (those are recorded
    /// or answered).
    pub fn recv_reply(&mut self) -> Result<Pdu> {
        loop {
            let p = self.recv()?;
            match &p.header {
                Header::AsyncMessage(a) => self.async_events.push(a.clone()),
                Header::NopIn(n) if n.ttt != RESERVED_TAG => {
                    let reply = Pdu::new(
                        Header::NopOut(NopOut {
                            immediate: true,
                            lun: n.lun,
                            itt: RESERVED_TAG,
                            ttt: n.ttt,
                            cmd_sn: self.cmd_sn,
                            exp_stat_sn: self.exp_stat_sn,
                        }),
                        Vec::new(),
                    );
                    self.send(&reply)?;
                }
                _ => return Ok(p),
            }
        }
    }

    fn login(&mut self, o: &LoginOptions) -> Result<()> {
        let itt = self.next_itt();
        let mut csg = stage::SECURITY;
        let mut keys: Vec<(String, String)> =
            vec![("InitiatorName".into(), o.initiator_name.clone())];
        match &o.target_name {
            Some(t) => {
                keys.push(("SessionType".into(), "Normal".into()));
                keys.push(("TargetName".into(), t.clone()));
            }
            None => keys.push(("SessionType".into(), "Discovery".into())),
        }
        let op_keys = {
            let mut k: Vec<(String, String)> = vec![
                (
                    "HeaderDigest".into(),
                    if o.header_digest { "CRC32C" } else { "None" }.into(),
                ),
                (
                    "DataDigest".into(),
                    if o.data_digest { "CRC32C" } else { "None" }.into(),
                ),
                ("MaxRecvDataSegmentLength".into(), "262144".into()),
            ];
            if o.target_name.is_some() {
                k.push(("InitialR2T".into(), "No".into()));
                k.push(("ImmediateData".into(), "Yes".into()));
                k.push(("MaxBurstLength".into(), "262144".into()));
                k.push(("FirstBurstLength".into(), "65536".into()));
                k.push(("MaxOutstandingR2T".into(), "4".into()));
            }
            k.extend(o.extra_keys.iter().cloned());
            k
        };
        let mut chap_state: Option<ChapAlg> = None;
        let mut mutual_challenge: Vec<u8> = Vec::new();
        if o.chap.is_some() {
            keys.push(("AuthMethod".into(), "CHAP,None".into()));
        } else {
            keys.push(("AuthMethod".into(), "None".into()));
        }
        let mut transit = o.chap.is_none();
        let mut nsg = stage::OPERATIONAL;
        loop {
            let req = Pdu::new(
                Header::LoginRequest(LoginRequest {
                    transit,
                    cont: false,
                    csg,
                    nsg: if transit { nsg } else { 0 },
                    version_max: 0,
                    version_min: 0,
                    isid: o.isid,
                    tsih: o.tsih,
                    itt,
                    cid: 0,
                    cmd_sn: self.cmd_sn,
                    exp_stat_sn: self.exp_stat_sn,
                }),
                text::encode(&keys),
            );
            self.send(&req)?;
            let resp = self.recv()?;
            let Header::LoginResponse(r) = &resp.header else {
                return Err(Error::Protocol(format!(
                    "expected login response, got {resp:?}"
                )));
            };
            if r.status_class != 0 {
                return Err(Error::Login(LoginStatus::from_parts(
                    r.status_class,
                    r.status_detail,
                )));
            }
            let got = text::parse(&resp.data).map_err(|e| Error::Protocol(e.to_string()))?;
            // As strict as open-iscsi, which fails the login on any other key in a
            // security-stage response (issue 12: the kernel initiator could not log in with CHAP).
            if r.csg == stage::SECURITY {
                if let Some((k, _)) = got
                    .iter()
                    .find(|(k, _)| !SECURITY_STAGE_KEYS.contains(&k.as_str()))
                {
                    return Err(Error::Protocol(format!(
                        "{k} in a security-stage login response"
                    )));
                }
            }
            let get = |k: &str| got.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            self.login_keys.extend(got.iter().cloned());
            keys = Vec::new();
            if r.transit {
                csg = r.nsg;
                if csg == stage::FULL_FEATURE {
                    self.tsih = r.tsih;
                    let all = self.login_keys.clone();
                    let val = |k: &str| {
                        all.iter()
                            .rev()
                            .find(|(n, _)| n == k)
                            .map(|(_, v)| v.as_str())
                    };
                    self.digests = Digests {
                        header: val("HeaderDigest") == Some("CRC32C"),
                        data: val("DataDigest") == Some("CRC32C"),
                    };
                    if let Some(v) = val("MaxRecvDataSegmentLength").and_then(text::parse_number) {
                        self.max_xmit = v as u32;
                    }
                    if let Some(v) = val("FirstBurstLength").and_then(text::parse_number) {
                        self.first_burst = v as u32;
                    }
                    self.immediate_data = val("ImmediateData") != Some("No");
                    self.initial_r2t = val("InitialR2T") != Some("No");
                    break;
                }
                // Operational stage: offer our keys and ask for full-feature phase.
                keys = op_keys.clone();
                transit = true;
                nsg = stage::FULL_FEATURE;
                continue;
            }
            if csg == stage::SECURITY {
                if let Some((user, secret)) = &o.chap {
                    if chap_state.is_none() && get("CHAP_C").is_none() {
                        keys.push(("CHAP_A".into(), o.chap_algorithms.clone()));
                        chap_state = Some(ChapAlg::Md5);
                        continue;
                    }
                    if let (Some(a), Some(i), Some(c)) =
                        (get("CHAP_A"), get("CHAP_I"), get("CHAP_C"))
                    {
                        let alg = text::parse_number(&a)
                            .and_then(ChapAlg::from_number)
                            .ok_or_else(|| Error::Protocol("bad CHAP_A".into()))?;
                        let id = text::parse_number(&i).unwrap_or(0) as u8;
                        let ch = text::decode_binary(&c)
                            .ok_or_else(|| Error::Protocol("bad CHAP_C".into()))?;
                        keys.push(("CHAP_N".into(), user.clone()));
                        keys.push((
                            "CHAP_R".into(),
                            text::encode_hex(&alg.response(id, secret, &ch)),
                        ));
                        if o.mutual_secret.is_some() {
                            mutual_challenge = vec![0x5a; 16];
                            keys.push(("CHAP_I".into(), "42".into()));
                            keys.push(("CHAP_C".into(), text::encode_hex(&mutual_challenge)));
                        }
                        chap_state = Some(alg);
                        transit = true;
                        nsg = stage::OPERATIONAL;
                        continue;
                    }
                }
                transit = true;
                nsg = stage::OPERATIONAL;
                continue;
            }
            return Err(Error::Protocol("target did not move on".into()));
        }
        if let (Some(ms), Some(alg)) = (&o.mutual_secret, chap_state) {
            let r = self
                .login_keys
                .iter()
                .find(|(n, _)| n == "CHAP_R")
                .map(|(_, v)| v.clone());
            let ok = r
                .and_then(|v| text::decode_binary(&v))
                .is_some_and(|r| alg.verify(42, ms, &mutual_challenge, &r));
            if !ok {
                return Err(Error::Protocol("target failed mutual CHAP".into()));
            }
        }
        Ok(())
    }

    /// Run one command to completion. `read_len` is the EDTL for a read.
    pub fn command(
        &mut self,
        lun: u64,
        cdb: &[u8],
        data_out: &[u8],
        read_len: u32,
    ) -> Result<ScsiResult> {
        let itt = self.next_itt();
        let write = !data_out.is_empty();
        let imm = if write && self.immediate_data {
            data_out
                .len()
                .min(self.first_burst as usize)
                .min(self.max_xmit as usize)
        } else {
            0
        };
        let cmd_sn = self.take_cmd_sn();
        let edtl = if write {
            data_out.len() as u32
        } else {
            read_len
        };
        let unsol_end = if write && !self.initial_r2t {
            data_out.len().min(self.first_burst as usize)
        } else {
            imm
        };
        let pdu = Pdu::new(
            Header::ScsiCommand(ScsiCommand {
                immediate: false,
                final_: unsol_end <= imm,
                read: read_len > 0,
                write,
                attr: TaskAttr::Simple,
                lun: lun_field(lun),
                itt,
                edtl,
                cmd_sn,
                exp_stat_sn: self.exp_stat_sn,
                cdb: cdb.to_vec(),
                bidi_read_len: None,
            }),
            data_out[..imm].to_vec(),
        );
        self.send(&pdu)?;
        // Unsolicited Data-Out up to FirstBurstLength.
        let mut off = imm;
        let mut sn = 0;
        while off < unsol_end {
            let n = (unsol_end - off).min(self.max_xmit as usize);
            self.data_out(
                lun,
                itt,
                RESERVED_TAG,
                sn,
                off as u32,
                &data_out[off..off + n],
                off + n == unsol_end,
            )?;
            off += n;
            sn += 1;
        }
        let mut data = vec![0u8; read_len as usize];
        let mut got_data = 0usize;
        loop {
            let p = self.recv_reply()?;
            match p.header {
                Header::R2t(r) => {
                    let (mut o, end) = (
                        r.buffer_offset as usize,
                        (r.buffer_offset + r.desired_len) as usize,
                    );
                    let mut sn = 0;
                    while o < end.min(data_out.len()) {
                        let n = (end - o).min(self.max_xmit as usize);
                        self.data_out(
                            lun,
                            itt,
                            r.ttt,
                            sn,
                            o as u32,
                            &data_out[o..o + n],
                            o + n == end,
                        )?;
                        o += n;
                        sn += 1;
                    }
                }
                Header::DataIn(d) if d.itt == itt => {
                    let o = d.buffer_offset as usize;
                    if o + p.data.len() > data.len() {
                        return Err(Error::Protocol("Data-In beyond EDTL".into()));
                    }
                    data[o..o + p.data.len()].copy_from_slice(&p.data);
                    got_data = got_data.max(o + p.data.len());
                    if let Some(status) = d.status {
                        data.truncate(got_data);
                        return Ok(ScsiResult {
                            status,
                            sense: Vec::new(),
                            data,
                            overflow: d.overflow,
                            underflow: d.underflow,
                            residual: d.residual,
                        });
                    }
                }
                Header::ScsiResponse(r) if r.itt == itt => {
                    let sense = if p.data.len() >= 2 {
                        let n = u16::from_be_bytes([p.data[0], p.data[1]]) as usize;
                        p.data[2..].get(..n).unwrap_or(&p.data[2..]).to_vec()
                    } else {
                        Vec::new()
                    };
                    data.truncate(got_data);
                    return Ok(ScsiResult {
                        status: r.status,
                        sense,
                        data,
                        overflow: r.overflow,
                        underflow: r.underflow,
                        residual: r.residual,
                    });
                }
                Header::Reject(r) => return Err(Error::Rejected(r.reason)),
                other => return Err(Error::Protocol(format!("unexpected {other:?}"))),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn data_out(
        &mut self,
        lun: u64,
        itt: u32,
        ttt: u32,
        sn: u32,
        off: u32,
        d: &[u8],
        f: bool,
    ) -> Result<()> {
        let p = Pdu::new(
            Header::DataOut(DataOut {
                final_: f,
                lun: lun_field(lun),
                itt,
                ttt,
                exp_stat_sn: self.exp_stat_sn,
                data_sn: sn,
                buffer_offset: off,
            }),
            d.to_vec(),
        );
        self.send(&p)
    }

    /// A task management function; returns the response code.
    pub fn task_mgmt(&mut self, function: u8, lun: u64, rtt: u32, ref_cmd_sn: u32) -> Result<u8> {
        let itt = self.next_itt();
        let p = Pdu::new(
            Header::TaskMgmtRequest(TaskMgmtRequest {
                immediate: true,
                function,
                lun: lun_field(lun),
                itt,
                rtt,
                cmd_sn: self.cmd_sn,
                exp_stat_sn: self.exp_stat_sn,
                ref_cmd_sn,
                exp_data_sn: 0,
            }),
            Vec::new(),
        );
        self.send(&p)?;
        loop {
            let r = self.recv_reply()?;
            if let Header::TaskMgmtResponse(t) = &r.header {
                if t.itt == itt {
                    return Ok(t.response);
                }
            }
        }
    }

    /// NOP-Out ping; returns the echoed data.
    pub fn nop(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        let itt = self.next_itt();
        let p = Pdu::new(
            Header::NopOut(NopOut {
                immediate: true,
                lun: 0,
                itt,
                ttt: RESERVED_TAG,
                cmd_sn: self.cmd_sn,
                exp_stat_sn: self.exp_stat_sn,
            }),
            data.to_vec(),
        );
        self.send(&p)?;
        let r = self.recv_reply()?;
        match r.header {
            Header::NopIn(n) if n.itt == itt => Ok(r.data),
            other => Err(Error::Protocol(format!("unexpected {other:?}"))),
        }
    }

    /// Text request with `keys`; follows C=1 continuations. Returns the response keys in order
    /// (repeated keys such as TargetAddress kept).
    pub fn text(&mut self, keys: &[(String, String)]) -> Result<Vec<(String, String)>> {
        let itt = self.next_itt();
        let mut ttt = RESERVED_TAG;
        let mut body = text::encode(keys);
        let mut all = Vec::new();
        loop {
            let p = Pdu::new(
                Header::TextRequest(TextRequest {
                    immediate: false,
                    final_: true,
                    cont: false,
                    lun: 0,
                    itt,
                    ttt,
                    cmd_sn: self.take_cmd_sn(),
                    exp_stat_sn: self.exp_stat_sn,
                }),
                std::mem::take(&mut body),
            );
            self.send(&p)?;
            let r = self.recv_reply()?;
            let Header::TextResponse(t) = &r.header else {
                if let Header::Reject(rj) = r.header {
                    return Err(Error::Rejected(rj.reason));
                }
                return Err(Error::Protocol(format!("unexpected {r:?}")));
            };
            all.extend_from_slice(&r.data);
            if t.final_ {
                break;
            }
            ttt = t.ttt;
        }
        // Parse keeping repeats.
        let mut out = Vec::new();
        for item in all.split(|b| *b == 0).filter(|s| !s.is_empty()) {
            let s = String::from_utf8_lossy(item);
            if let Some((k, v)) = s.split_once('=') {
                out.push((k.to_string(), v.to_string()));
            }
        }
        Ok(out)
    }

    /// SendTargets=`query`: (target name, addresses).
    pub fn send_targets(&mut self, query: &str) -> Result<Vec<(String, Vec<String>)>> {
        let keys = self.text(&[("SendTargets".into(), query.into())])?;
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for (k, v) in keys {
            match k.as_str() {
                "TargetName" => out.push((v, Vec::new())),
                "TargetAddress" => {
                    if let Some(last) = out.last_mut() {
                        last.1.push(v);
                    }
                }
                _ => return Err(Error::Protocol(format!("unexpected key {k}={v}"))),
            }
        }
        Ok(out)
    }

    /// Log out (close the session) and wait for the response.
    pub fn logout(mut self) -> Result<u8> {
        let itt = self.next_itt();
        let p = Pdu::new(
            Header::LogoutRequest(LogoutRequest {
                immediate: true,
                reason: 0,
                itt,
                cid: 0,
                cmd_sn: self.cmd_sn,
                exp_stat_sn: self.exp_stat_sn,
            }),
            Vec::new(),
        );
        self.send(&p)?;
        loop {
            let r = self.recv_reply()?;
            if let Header::LogoutResponse(l) = r.header {
                return Ok(l.response);
            }
        }
    }

    /// Whether the target closed the connection (EOF within the read timeout).
    pub fn closed_by_target(&mut self) -> bool {
        let mut b = [0u8; 1];
        match self.stream.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            // A reset also counts as closed; a timeout does not.
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    }

    /// The opcode of a received header (helper for raw scenarios).
    pub fn opcode_of(p: &Pdu) -> u8 {
        p.header.opcode()
    }

    /// Set the socket read timeout.
    pub fn set_timeout(&mut self, t: Duration) -> Result<()> {
        self.stream.set_read_timeout(Some(t))?;
        Ok(())
    }
}

/// The 8-byte LUN field for LUN `n` (peripheral addressing below 256, flat above).
pub fn lun_field(n: u64) -> u64 {
    if n < 256 {
        n << 48
    } else {
        (0x4000 | (n & 0x3fff)) << 48
    }
}
