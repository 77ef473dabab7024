//! PDU codec: the 48-byte Basic Header Segment (`Bhs`, a checked view), typed headers for every
//! opcode (`Header`, the validated value), AHS (extended CDB, bidirectional read length),
//! padding and CRC32C digests.
//!
//! Panic guarantee: no function here panics on any input bytes. Decoding checks every length
//! before it indexes; malformed input becomes a [`PduError`].

use crate::codes::{opcode, RESERVED_TAG};

/// Length of the Basic Header Segment.
pub const BHS_LEN: usize = 48;
/// Largest data segment the 24-bit DataSegmentLength field can describe.
pub const MAX_DATA_SEGMENT: u32 = (1 << 24) - 1;

/// Why bytes are not a valid PDU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PduError {
    #[error("header shorter than 48 bytes")]
    Short,
    #[error("opcode 0x{0:02x} is not defined for this direction")]
    UnknownOpcode(u8),
    #[error("AHS is malformed")]
    BadAhs,
    #[error("header digest mismatch")]
    HeaderDigest,
    #[error("data digest mismatch")]
    DataDigest,
    #[error("data segment of {0} bytes is over the limit")]
    DataTooLong(u32),
    #[error("invalid field: {0}")]
    InvalidField(&'static str),
}

/// CRC32C as iSCSI uses it (RFC 7143 §13.1); the digest goes on the wire little-endian.
pub fn crc32c(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

/// Bytes of zero padding that follow `len` bytes to reach a 4-byte boundary.
pub fn pad_len(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// What follows a data segment on the wire: its padding and, with data digests, the CRC32C
/// of data and padding. Returns the bytes and how many of them are used (0 for no data).
/// Append the header part of the wire form of a PDU with `header` and a data segment of
/// `data_len` bytes (BHS, AHS, header digest) to `out`.
pub fn wire_head_into(
    header: &Header,
    data_len: usize,
    digests: Digests,
    out: &mut Vec<u8>,
) -> Result<(), PduError> {
    let start = out.len();
    header.encode_into(data_len, out)?;
    if digests.header {
        let c = crc32c(&out[start..]);
        out.extend_from_slice(&c.to_le_bytes());
    }
    Ok(())
}

pub fn wire_tail(data: &[u8], data_digest: bool) -> ([u8; 8], usize) {
    let mut t = [0u8; 8];
    if data.is_empty() {
        return (t, 0);
    }
    let pad = pad_len(data.len());
    let mut n = pad;
    if data_digest {
        let c = crc32c::crc32c_append(crc32c::crc32c(data), &[0u8; 3][..pad]);
        t[pad..pad + 4].copy_from_slice(&c.to_le_bytes());
        n += 4;
    }
    (t, n)
}

/// A checked view of a 48-byte BHS.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Bhs(pub [u8; BHS_LEN]);

impl std::fmt::Debug for Bhs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Bhs(op=0x{:02x} itt=0x{:08x})",
            self.opcode(),
            self.itt()
        )
    }
}

impl Bhs {
    /// Takes the first 48 bytes; `Err(Short)` when there are fewer.
    pub fn new(bytes: &[u8]) -> Result<Self, PduError> {
        let arr: [u8; BHS_LEN] = bytes
            .get(..BHS_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(PduError::Short)?;
        Ok(Bhs(arr))
    }
    pub fn opcode(&self) -> u8 {
        self.0[0] & 0x3f
    }
    pub fn immediate(&self) -> bool {
        self.0[0] & 0x40 != 0
    }
    /// TotalAHSLength in bytes.
    pub fn ahs_len(&self) -> usize {
        usize::from(self.0[4]) * 4
    }
    pub fn data_len(&self) -> u32 {
        u32::from_be_bytes([0, self.0[5], self.0[6], self.0[7]])
    }
    pub fn itt(&self) -> u32 {
        self.u32(16)
    }
    pub fn u32(&self, at: usize) -> u32 {
        u32::from_be_bytes([self.0[at], self.0[at + 1], self.0[at + 2], self.0[at + 3]])
    }
    pub fn u16(&self, at: usize) -> u16 {
        u16::from_be_bytes([self.0[at], self.0[at + 1]])
    }
    pub fn u64(&self, at: usize) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[at..at + 8]);
        u64::from_be_bytes(b)
    }
    /// Bytes that follow the BHS on the wire, given the negotiated digests.
    pub fn wire_rest_len(&self, header_digest: bool, data_digest: bool) -> usize {
        let data = self.data_len() as usize;
        let mut n = self.ahs_len() + if header_digest { 4 } else { 0 };
        if data > 0 {
            n += data + pad_len(data) + if data_digest { 4 } else { 0 };
        }
        n
    }
}

/// Task attribute field of a SCSI Command (3 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TaskAttr {
    Untagged,
    #[default]
    Simple,
    Ordered,
    HeadOfQueue,
    Aca,
}

impl TaskAttr {
    fn from_bits(b: u8) -> Result<Self, PduError> {
        Ok(match b & 7 {
            0 => TaskAttr::Untagged,
            1 => TaskAttr::Simple,
            2 => TaskAttr::Ordered,
            3 => TaskAttr::HeadOfQueue,
            4 => TaskAttr::Aca,
            _ => return Err(PduError::InvalidField("task attribute")),
        })
    }
    fn bits(self) -> u8 {
        match self {
            TaskAttr::Untagged => 0,
            TaskAttr::Simple => 1,
            TaskAttr::Ordered => 2,
            TaskAttr::HeadOfQueue => 3,
            TaskAttr::Aca => 4,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NopOut {
    pub immediate: bool,
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScsiCommand {
    pub immediate: bool,
    pub final_: bool,
    pub read: bool,
    pub write: bool,
    pub attr: TaskAttr,
    pub lun: u64,
    pub itt: u32,
    pub edtl: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
    /// The whole CDB: 16 bytes from the BHS plus any extended-CDB AHS bytes. Trailing zero bytes
    /// of the 16-byte field are kept (the SCSI layer reads the length from the opcode).
    pub cdb: Vec<u8>,
    /// Bidirectional Read Expected Data Transfer Length AHS.
    pub bidi_read_len: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskMgmtRequest {
    pub immediate: bool,
    pub function: u8,
    pub lun: u64,
    pub itt: u32,
    pub rtt: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
    pub ref_cmd_sn: u32,
    pub exp_data_sn: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRequest {
    pub transit: bool,
    pub cont: bool,
    pub csg: u8,
    pub nsg: u8,
    pub version_max: u8,
    pub version_min: u8,
    pub isid: [u8; 6],
    pub tsih: u16,
    pub itt: u32,
    pub cid: u16,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextRequest {
    pub immediate: bool,
    pub final_: bool,
    pub cont: bool,
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataOut {
    pub final_: bool,
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    pub exp_stat_sn: u32,
    pub data_sn: u32,
    pub buffer_offset: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutRequest {
    pub immediate: bool,
    pub reason: u8,
    pub itt: u32,
    pub cid: u16,
    pub cmd_sn: u32,
    pub exp_stat_sn: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snack {
    pub kind: u8,
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    pub exp_stat_sn: u32,
    pub beg_run: u32,
    pub run_length: u32,
}

/// Sequence numbers every target→initiator PDU with status fields carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sns {
    pub stat_sn: u32,
    pub exp_cmd_sn: u32,
    pub max_cmd_sn: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NopIn {
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    pub sns: Sns,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScsiResponse {
    pub bidi_overflow: bool,
    pub bidi_underflow: bool,
    pub overflow: bool,
    pub underflow: bool,
    pub response: u8,
    pub status: u8,
    pub itt: u32,
    pub snack_tag: u32,
    pub sns: Sns,
    pub exp_data_sn: u32,
    pub bidi_residual: u32,
    pub residual: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskMgmtResponse {
    pub response: u8,
    pub itt: u32,
    pub sns: Sns,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginResponse {
    pub transit: bool,
    pub cont: bool,
    pub csg: u8,
    pub nsg: u8,
    pub version_max: u8,
    pub version_active: u8,
    pub isid: [u8; 6],
    pub tsih: u16,
    pub itt: u32,
    pub sns: Sns,
    pub status_class: u8,
    pub status_detail: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextResponse {
    pub final_: bool,
    pub cont: bool,
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    pub sns: Sns,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataIn {
    pub final_: bool,
    pub ack: bool,
    pub overflow: bool,
    pub underflow: bool,
    /// `Some(status)` sets the S bit: status in this (final) PDU.
    pub status: Option<u8>,
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    /// StatSN is meaningful only with the S bit; ExpCmdSN/MaxCmdSN always.
    pub sns: Sns,
    pub data_sn: u32,
    pub buffer_offset: u32,
    pub residual: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutResponse {
    pub response: u8,
    pub itt: u32,
    pub sns: Sns,
    pub time2wait: u16,
    pub time2retain: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct R2t {
    pub lun: u64,
    pub itt: u32,
    pub ttt: u32,
    pub sns: Sns,
    pub r2t_sn: u32,
    pub buffer_offset: u32,
    pub desired_len: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncMessage {
    pub lun: u64,
    pub sns: Sns,
    pub event: u8,
    pub vcode: u8,
    pub param1: u16,
    pub param2: u16,
    pub param3: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub reason: u8,
    pub sns: Sns,
    pub data_sn: u32,
}

/// Every PDU header, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Header {
    NopOut(NopOut),
    ScsiCommand(ScsiCommand),
    TaskMgmtRequest(TaskMgmtRequest),
    LoginRequest(LoginRequest),
    TextRequest(TextRequest),
    DataOut(DataOut),
    LogoutRequest(LogoutRequest),
    Snack(Snack),
    NopIn(NopIn),
    ScsiResponse(ScsiResponse),
    TaskMgmtResponse(TaskMgmtResponse),
    LoginResponse(LoginResponse),
    TextResponse(TextResponse),
    DataIn(DataIn),
    LogoutResponse(LogoutResponse),
    R2t(R2t),
    AsyncMessage(AsyncMessage),
    Reject(Reject),
}

/// A whole PDU: header plus data segment (without padding or digests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdu {
    pub header: Header,
    pub data: Vec<u8>,
}

impl Pdu {
    pub fn new(header: Header, data: Vec<u8>) -> Self {
        Pdu { header, data }
    }
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}
fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}
fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_be_bytes());
}
fn put_sns(b: &mut [u8], s: &Sns) {
    put32(b, 24, s.stat_sn);
    put32(b, 28, s.exp_cmd_sn);
    put32(b, 32, s.max_cmd_sn);
}
fn get_sns(b: &Bhs) -> Sns {
    Sns {
        stat_sn: b.u32(24),
        exp_cmd_sn: b.u32(28),
        max_cmd_sn: b.u32(32),
    }
}

const AHS_EXTENDED_CDB: u8 = 1;
const AHS_BIDI_READ_LEN: u8 = 2;

impl Header {
    pub fn opcode(&self) -> u8 {
        match self {
            Header::NopOut(_) => opcode::NOP_OUT,
            Header::ScsiCommand(_) => opcode::SCSI_COMMAND,
            Header::TaskMgmtRequest(_) => opcode::TASK_MGMT_REQUEST,
            Header::LoginRequest(_) => opcode::LOGIN_REQUEST,
            Header::TextRequest(_) => opcode::TEXT_REQUEST,
            Header::DataOut(_) => opcode::DATA_OUT,
            Header::LogoutRequest(_) => opcode::LOGOUT_REQUEST,
            Header::Snack(_) => opcode::SNACK,
            Header::NopIn(_) => opcode::NOP_IN,
            Header::ScsiResponse(_) => opcode::SCSI_RESPONSE,
            Header::TaskMgmtResponse(_) => opcode::TASK_MGMT_RESPONSE,
            Header::LoginResponse(_) => opcode::LOGIN_RESPONSE,
            Header::TextResponse(_) => opcode::TEXT_RESPONSE,
            Header::DataIn(_) => opcode::DATA_IN,
            Header::LogoutResponse(_) => opcode::LOGOUT_RESPONSE,
            Header::R2t(_) => opcode::R2T,
            Header::AsyncMessage(_) => opcode::ASYNC_MESSAGE,
            Header::Reject(_) => opcode::REJECT,
        }
    }

    /// The BHS and AHS bytes for this header with `data_len` bytes of data segment.
    /// Fails only if the data segment or the CDB cannot be described on the wire.
    pub fn encode(&self, data_len: usize) -> Result<Vec<u8>, PduError> {
        let mut out = Vec::with_capacity(BHS_LEN);
        self.encode_into(data_len, &mut out)?;
        Ok(out)
    }

    /// [`Header::encode`] appending to `out` (the data path encodes every header into one
    /// reused buffer, so nothing is allocated per PDU). On error `out` is left as it was.
    pub fn encode_into(&self, data_len: usize, out: &mut Vec<u8>) -> Result<(), PduError> {
        if data_len > MAX_DATA_SEGMENT as usize {
            return Err(PduError::DataTooLong(data_len as u32));
        }
        let start = out.len();
        out.resize(start + BHS_LEN, 0);
        let b = &mut out[start..];
        b[0] = self.opcode();
        let dl = (data_len as u32).to_be_bytes();
        b[5..8].copy_from_slice(&dl[1..]);
        let mut ahs: Vec<u8> = Vec::new();
        match self {
            Header::NopOut(h) => {
                if h.immediate {
                    b[0] |= 0x40;
                }
                b[1] = 0x80;
                put64(b, 8, h.lun);
                put32(b, 16, h.itt);
                put32(b, 20, h.ttt);
                put32(b, 24, h.cmd_sn);
                put32(b, 28, h.exp_stat_sn);
            }
            Header::ScsiCommand(h) => {
                if h.immediate {
                    b[0] |= 0x40;
                }
                b[1] = h.attr.bits()
                    | if h.final_ { 0x80 } else { 0 }
                    | if h.read { 0x40 } else { 0 }
                    | if h.write { 0x20 } else { 0 };
                put64(b, 8, h.lun);
                put32(b, 16, h.itt);
                put32(b, 20, h.edtl);
                put32(b, 24, h.cmd_sn);
                put32(b, 28, h.exp_stat_sn);
                let n = h.cdb.len().min(16);
                b[32..32 + n].copy_from_slice(&h.cdb[..n]);
                if h.cdb.len() > 16 {
                    let ext = &h.cdb[16..];
                    if ext.len() + 1 > usize::from(u16::MAX) {
                        out.truncate(start);
                        return Err(PduError::InvalidField("CDB too long"));
                    }
                    ahs.extend_from_slice(&((ext.len() + 1) as u16).to_be_bytes());
                    ahs.push(AHS_EXTENDED_CDB);
                    ahs.push(0);
                    ahs.extend_from_slice(ext);
                    ahs.resize(ahs.len() + pad_len(ahs.len()), 0);
                }
                if let Some(len) = h.bidi_read_len {
                    ahs.extend_from_slice(&5u16.to_be_bytes());
                    ahs.push(AHS_BIDI_READ_LEN);
                    ahs.push(0);
                    ahs.extend_from_slice(&len.to_be_bytes());
                }
            }
            Header::TaskMgmtRequest(h) => {
                if h.immediate {
                    b[0] |= 0x40;
                }
                b[1] = 0x80 | (h.function & 0x7f);
                put64(b, 8, h.lun);
                put32(b, 16, h.itt);
                put32(b, 20, h.rtt);
                put32(b, 24, h.cmd_sn);
                put32(b, 28, h.exp_stat_sn);
                put32(b, 32, h.ref_cmd_sn);
                put32(b, 36, h.exp_data_sn);
            }
            Header::LoginRequest(h) => {
                b[0] |= 0x40;
                b[1] = login_flags(h.transit, h.cont, h.csg, h.nsg);
                b[2] = h.version_max;
                b[3] = h.version_min;
                b[8..14].copy_from_slice(&h.isid);
                put16(b, 14, h.tsih);
                put32(b, 16, h.itt);
                put16(b, 20, h.cid);
                put32(b, 24, h.cmd_sn);
                put32(b, 28, h.exp_stat_sn);
            }
            Header::TextRequest(h) => {
                if h.immediate {
                    b[0] |= 0x40;
                }
                b[1] = if h.final_ { 0x80 } else { 0 } | if h.cont { 0x40 } else { 0 };
                put64(b, 8, h.lun);
                put32(b, 16, h.itt);
                put32(b, 20, h.ttt);
                put32(b, 24, h.cmd_sn);
                put32(b, 28, h.exp_stat_sn);
            }
            Header::DataOut(h) => {
                b[1] = if h.final_ { 0x80 } else { 0 };
                put64(b, 8, h.lun);
                put32(b, 16, h.itt);
                put32(b, 20, h.ttt);
                put32(b, 28, h.exp_stat_sn);
                put32(b, 36, h.data_sn);
                put32(b, 40, h.buffer_offset);
            }
            Header::LogoutRequest(h) => {
                if h.immediate {
                    b[0] |= 0x40;
                }
                b[1] = 0x80 | (h.reason & 0x7f);
                put32(b, 16, h.itt);
                put16(b, 20, h.cid);
                put32(b, 24, h.cmd_sn);
                put32(b, 28, h.exp_stat_sn);
            }
            Header::Snack(h) => {
                b[1] = 0x80 | (h.kind & 0x0f);
                put64(b, 8, h.lun);
                put32(b, 16, h.itt);
                put32(b, 20, h.ttt);
                put32(b, 28, h.exp_stat_sn);
                put32(b, 40, h.beg_run);
                put32(b, 44, h.run_length);
            }
            Header::NopIn(h) => {
                b[1] = 0x80;
                put64(b, 8, h.lun);
                put32(b, 16, h.itt);
                put32(b, 20, h.ttt);
                put_sns(b, &h.sns);
            }
            Header::ScsiResponse(h) => {
                b[1] = 0x80
                    | if h.bidi_overflow { 0x10 } else { 0 }
                    | if h.bidi_underflow { 0x08 } else { 0 }
                    | if h.overflow { 0x04 } else { 0 }
                    | if h.underflow { 0x02 } else { 0 };
                b[2] = h.response;
                b[3] = h.status;
                put32(b, 16, h.itt);
                put32(b, 20, h.snack_tag);
                put_sns(b, &h.sns);
                put32(b, 36, h.exp_data_sn);
                put32(b, 40, h.bidi_residual);
                put32(b, 44, h.residual);
            }
            Header::TaskMgmtResponse(h) => {
                b[1] = 0x80;
                b[2] = h.response;
                put32(b, 16, h.itt);
                put_sns(b, &h.sns);
            }
            Header::LoginResponse(h) => {
                b[1] = login_flags(h.transit, h.cont, h.csg, h.nsg);
                b[2] = h.version_max;
                b[3] = h.version_active;
                b[8..14].copy_from_slice(&h.isid);
                put16(b, 14, h.tsih);
                put32(b, 16, h.itt);
                put_sns(b, &h.sns);
                b[36] = h.status_class;
                b[37] = h.status_detail;
            }
            Header::TextResponse(h) => {
                b[1] = if h.final_ { 0x80 } else { 0 } | if h.cont { 0x40 } else { 0 };
                put64(b, 8, h.lun);
                put32(b, 16, h.itt);
                put32(b, 20, h.ttt);
                put_sns(b, &h.sns);
            }
            Header::DataIn(h) => {
                b[1] = if h.final_ { 0x80 } else { 0 }
                    | if h.ack { 0x40 } else { 0 }
                    | if h.overflow { 0x04 } else { 0 }
                    | if h.underflow { 0x02 } else { 0 }
                    | if h.status.is_some() { 0x01 } else { 0 };
                b[3] = h.status.unwrap_or(0);
                put64(b, 8, h.lun);
                put32(b, 16, h.itt);
                put32(b, 20, h.ttt);
                put_sns(b, &h.sns);
                put32(b, 36, h.data_sn);
                put32(b, 40, h.buffer_offset);
                put32(b, 44, h.residual);
            }
            Header::LogoutResponse(h) => {
                b[1] = 0x80;
                b[2] = h.response;
                put32(b, 16, h.itt);
                put_sns(b, &h.sns);
                put16(b, 40, h.time2wait);
                put16(b, 42, h.time2retain);
            }
            Header::R2t(h) => {
                b[1] = 0x80;
                put64(b, 8, h.lun);
                put32(b, 16, h.itt);
                put32(b, 20, h.ttt);
                put_sns(b, &h.sns);
                put32(b, 36, h.r2t_sn);
                put32(b, 40, h.buffer_offset);
                put32(b, 44, h.desired_len);
            }
            Header::AsyncMessage(h) => {
                b[1] = 0x80;
                put64(b, 8, h.lun);
                put32(b, 16, RESERVED_TAG);
                put_sns(b, &h.sns);
                b[36] = h.event;
                b[37] = h.vcode;
                put16(b, 38, h.param1);
                put16(b, 40, h.param2);
                put16(b, 42, h.param3);
            }
            Header::Reject(h) => {
                b[1] = 0x80;
                b[2] = h.reason;
                put32(b, 16, RESERVED_TAG);
                put_sns(b, &h.sns);
                put32(b, 36, h.data_sn);
            }
        }
        if ahs.len() / 4 > 255 {
            out.truncate(start);
            return Err(PduError::BadAhs);
        }
        b[4] = (ahs.len() / 4) as u8;
        out.extend_from_slice(&ahs);
        Ok(())
    }

    /// Decode a BHS plus its AHS bytes.
    pub fn decode(bhs: &Bhs, ahs: &[u8]) -> Result<Header, PduError> {
        let b = &bhs.0;
        let imm = bhs.immediate();
        let f = b[1] & 0x80 != 0;
        Ok(match bhs.opcode() {
            opcode::NOP_OUT => Header::NopOut(NopOut {
                immediate: imm,
                lun: bhs.u64(8),
                itt: bhs.itt(),
                ttt: bhs.u32(20),
                cmd_sn: bhs.u32(24),
                exp_stat_sn: bhs.u32(28),
            }),
            opcode::SCSI_COMMAND => {
                let mut cdb = b[32..48].to_vec();
                let mut bidi = None;
                let mut rest = ahs;
                while !rest.is_empty() {
                    if rest.len() < 4 {
                        return Err(PduError::BadAhs);
                    }
                    let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                    let kind = rest[2];
                    // AHSLength counts from the reserved byte after AHSType.
                    let total = 3 + len;
                    let padded = total + pad_len(total);
                    if len == 0 || rest.len() < total {
                        return Err(PduError::BadAhs);
                    }
                    let body = &rest[4..total];
                    match kind {
                        AHS_EXTENDED_CDB => cdb.extend_from_slice(body),
                        AHS_BIDI_READ_LEN => {
                            if body.len() != 4 {
                                return Err(PduError::BadAhs);
                            }
                            bidi = Some(u32::from_be_bytes([body[0], body[1], body[2], body[3]]));
                        }
                        _ => return Err(PduError::BadAhs),
                    }
                    rest = rest.get(padded..).unwrap_or(&[]);
                }
                Header::ScsiCommand(ScsiCommand {
                    immediate: imm,
                    final_: f,
                    read: b[1] & 0x40 != 0,
                    write: b[1] & 0x20 != 0,
                    attr: TaskAttr::from_bits(b[1])?,
                    lun: bhs.u64(8),
                    itt: bhs.itt(),
                    edtl: bhs.u32(20),
                    cmd_sn: bhs.u32(24),
                    exp_stat_sn: bhs.u32(28),
                    cdb,
                    bidi_read_len: bidi,
                })
            }
            opcode::TASK_MGMT_REQUEST => Header::TaskMgmtRequest(TaskMgmtRequest {
                immediate: imm,
                function: b[1] & 0x7f,
                lun: bhs.u64(8),
                itt: bhs.itt(),
                rtt: bhs.u32(20),
                cmd_sn: bhs.u32(24),
                exp_stat_sn: bhs.u32(28),
                ref_cmd_sn: bhs.u32(32),
                exp_data_sn: bhs.u32(36),
            }),
            opcode::LOGIN_REQUEST => Header::LoginRequest(LoginRequest {
                transit: f,
                cont: b[1] & 0x40 != 0,
                csg: (b[1] >> 2) & 3,
                nsg: b[1] & 3,
                version_max: b[2],
                version_min: b[3],
                isid: [b[8], b[9], b[10], b[11], b[12], b[13]],
                tsih: bhs.u16(14),
                itt: bhs.itt(),
                cid: bhs.u16(20),
                cmd_sn: bhs.u32(24),
                exp_stat_sn: bhs.u32(28),
            }),
            opcode::TEXT_REQUEST => Header::TextRequest(TextRequest {
                immediate: imm,
                final_: f,
                cont: b[1] & 0x40 != 0,
                lun: bhs.u64(8),
                itt: bhs.itt(),
                ttt: bhs.u32(20),
                cmd_sn: bhs.u32(24),
                exp_stat_sn: bhs.u32(28),
            }),
            opcode::DATA_OUT => Header::DataOut(DataOut {
                final_: f,
                lun: bhs.u64(8),
                itt: bhs.itt(),
                ttt: bhs.u32(20),
                exp_stat_sn: bhs.u32(28),
                data_sn: bhs.u32(36),
                buffer_offset: bhs.u32(40),
            }),
            opcode::LOGOUT_REQUEST => Header::LogoutRequest(LogoutRequest {
                immediate: imm,
                reason: b[1] & 0x7f,
                itt: bhs.itt(),
                cid: bhs.u16(20),
                cmd_sn: bhs.u32(24),
                exp_stat_sn: bhs.u32(28),
            }),
            opcode::SNACK => Header::Snack(Snack {
                kind: b[1] & 0x0f,
                lun: bhs.u64(8),
                itt: bhs.itt(),
                ttt: bhs.u32(20),
                exp_stat_sn: bhs.u32(28),
                beg_run: bhs.u32(40),
                run_length: bhs.u32(44),
            }),
            opcode::NOP_IN => Header::NopIn(NopIn {
                lun: bhs.u64(8),
                itt: bhs.itt(),
                ttt: bhs.u32(20),
                sns: get_sns(bhs),
            }),
            opcode::SCSI_RESPONSE => Header::ScsiResponse(ScsiResponse {
                bidi_overflow: b[1] & 0x10 != 0,
                bidi_underflow: b[1] & 0x08 != 0,
                overflow: b[1] & 0x04 != 0,
                underflow: b[1] & 0x02 != 0,
                response: b[2],
                status: b[3],
                itt: bhs.itt(),
                snack_tag: bhs.u32(20),
                sns: get_sns(bhs),
                exp_data_sn: bhs.u32(36),
                bidi_residual: bhs.u32(40),
                residual: bhs.u32(44),
            }),
            opcode::TASK_MGMT_RESPONSE => Header::TaskMgmtResponse(TaskMgmtResponse {
                response: b[2],
                itt: bhs.itt(),
                sns: get_sns(bhs),
            }),
            opcode::LOGIN_RESPONSE => Header::LoginResponse(LoginResponse {
                transit: f,
                cont: b[1] & 0x40 != 0,
                csg: (b[1] >> 2) & 3,
                nsg: b[1] & 3,
                version_max: b[2],
                version_active: b[3],
                isid: [b[8], b[9], b[10], b[11], b[12], b[13]],
                tsih: bhs.u16(14),
                itt: bhs.itt(),
                sns: get_sns(bhs),
                status_class: b[36],
                status_detail: b[37],
            }),
            opcode::TEXT_RESPONSE => Header::TextResponse(TextResponse {
                final_: f,
                cont: b[1] & 0x40 != 0,
                lun: bhs.u64(8),
                itt: bhs.itt(),
                ttt: bhs.u32(20),
                sns: get_sns(bhs),
            }),
            opcode::DATA_IN => Header::DataIn(DataIn {
                final_: f,
                ack: b[1] & 0x40 != 0,
                overflow: b[1] & 0x04 != 0,
                underflow: b[1] & 0x02 != 0,
                status: if b[1] & 0x01 != 0 { Some(b[3]) } else { None },
                lun: bhs.u64(8),
                itt: bhs.itt(),
                ttt: bhs.u32(20),
                sns: get_sns(bhs),
                data_sn: bhs.u32(36),
                buffer_offset: bhs.u32(40),
                residual: bhs.u32(44),
            }),
            opcode::LOGOUT_RESPONSE => Header::LogoutResponse(LogoutResponse {
                response: b[2],
                itt: bhs.itt(),
                sns: get_sns(bhs),
                time2wait: bhs.u16(40),
                time2retain: bhs.u16(42),
            }),
            opcode::R2T => Header::R2t(R2t {
                lun: bhs.u64(8),
                itt: bhs.itt(),
                ttt: bhs.u32(20),
                sns: get_sns(bhs),
                r2t_sn: bhs.u32(36),
                buffer_offset: bhs.u32(40),
                desired_len: bhs.u32(44),
            }),
            opcode::ASYNC_MESSAGE => Header::AsyncMessage(AsyncMessage {
                lun: bhs.u64(8),
                sns: get_sns(bhs),
                event: b[36],
                vcode: b[37],
                param1: bhs.u16(38),
                param2: bhs.u16(40),
                param3: bhs.u16(42),
            }),
            opcode::REJECT => Header::Reject(Reject {
                reason: b[2],
                sns: get_sns(bhs),
                data_sn: bhs.u32(36),
            }),
            other => return Err(PduError::UnknownOpcode(other)),
        })
    }
}

fn login_flags(transit: bool, cont: bool, csg: u8, nsg: u8) -> u8 {
    (if transit { 0x80 } else { 0 }) | (if cont { 0x40 } else { 0 }) | (csg & 3) << 2 | (nsg & 3)
}

/// Digest settings of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Digests {
    pub header: bool,
    pub data: bool,
}

impl Pdu {
    /// Serialize as wire segments: header bytes (BHS + AHS + header digest) and the data
    /// segment bytes (data + padding + data digest), ready for one vectored write.
    pub fn to_wire(&self, digests: Digests) -> Result<(Vec<u8>, Vec<u8>), PduError> {
        let mut head = self.header.encode(self.data.len())?;
        if digests.header {
            let c = crc32c(&head);
            head.extend_from_slice(&c.to_le_bytes());
        }
        let mut data = Vec::new();
        if !self.data.is_empty() {
            data.reserve(self.data.len() + 8);
            data.extend_from_slice(&self.data);
            data.resize(data.len() + pad_len(self.data.len()), 0);
            if digests.data {
                let c = crc32c(&data);
                data.extend_from_slice(&c.to_le_bytes());
            }
        }
        Ok((head, data))
    }

    /// Append the header part of the wire form (BHS, AHS, header digest) to `out`; the data
    /// segment goes on the wire straight from `self.data`, followed by [`wire_tail`].
    pub fn wire_head_into(&self, digests: Digests, out: &mut Vec<u8>) -> Result<(), PduError> {
        wire_head_into(&self.header, self.data.len(), digests, out)
    }

    /// Serialize into one buffer.
    pub fn to_bytes(&self, digests: Digests) -> Result<Vec<u8>, PduError> {
        let (mut h, d) = self.to_wire(digests)?;
        h.extend_from_slice(&d);
        Ok(h)
    }

    /// Decode one complete PDU from `bytes` (BHS first). Returns the PDU and how many bytes it
    /// took. `Ok(None)` when more bytes are needed. `max_data` bounds the data segment.
    pub fn from_bytes(
        bytes: &[u8],
        digests: Digests,
        max_data: u32,
    ) -> Result<Option<(Pdu, usize)>, PduError> {
        if bytes.len() < BHS_LEN {
            return Ok(None);
        }
        let bhs = Bhs::new(bytes)?;
        if bhs.data_len() > max_data {
            return Err(PduError::DataTooLong(bhs.data_len()));
        }
        let need = BHS_LEN + bhs.wire_rest_len(digests.header, digests.data);
        if bytes.len() < need {
            return Ok(None);
        }
        let pdu = Pdu::from_parts(&bhs, &bytes[BHS_LEN..need], digests)?;
        Ok(Some((pdu, need)))
    }

    /// Decode from a BHS and exactly the `bhs.wire_rest_len()` bytes that follow it.
    pub fn from_parts(bhs: &Bhs, rest: &[u8], digests: Digests) -> Result<Pdu, PduError> {
        let (header, data) = Pdu::decode_parts(bhs, rest, digests)?;
        Ok(Pdu {
            header,
            data: data.to_vec(),
        })
    }

    /// [`Pdu::from_parts`] without copying the data segment: the header and the data as a
    /// slice of `rest` (digests checked, padding stripped).
    pub fn decode_parts<'a>(
        bhs: &Bhs,
        rest: &'a [u8],
        digests: Digests,
    ) -> Result<(Header, &'a [u8]), PduError> {
        let ahs_len = bhs.ahs_len();
        let hd = if digests.header { 4 } else { 0 };
        if rest.len() < ahs_len + hd {
            return Err(PduError::Short);
        }
        let ahs = &rest[..ahs_len];
        if digests.header {
            let mut c = crc32c::crc32c(&bhs.0);
            c = crc32c::crc32c_append(c, ahs);
            let got = &rest[ahs_len..ahs_len + 4];
            if c.to_le_bytes() != got {
                return Err(PduError::HeaderDigest);
            }
        }
        let header = Header::decode(bhs, ahs)?;
        let dlen = bhs.data_len() as usize;
        let data_part = &rest[ahs_len + hd..];
        let mut data: &[u8] = &[];
        if dlen > 0 {
            let padded = dlen + pad_len(dlen);
            let dd = if digests.data { 4 } else { 0 };
            if data_part.len() < padded + dd {
                return Err(PduError::Short);
            }
            if digests.data {
                let c = crc32c(&data_part[..padded]);
                if c.to_le_bytes() != data_part[padded..padded + 4] {
                    return Err(PduError::DataDigest);
                }
            }
            data = &data_part[..dlen];
        }
        Ok((header, data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_rfc_vector() {
        // RFC 3720 B.4: 32 bytes of zeroes → 0x8a9136aa, sent as aa 36 91 8a.
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
    }

    #[test]
    fn decodes_annotated_login_request() {
        let mut b = [0u8; 48];
        b[0] = 0x43; // I + Login Request
        b[1] = 0x87; // T, CSG=1 (operational), NSG=3 (full feature)
        b[2] = 0x00; // version max
        b[3] = 0x00; // version min
        b[7] = 0x05; // DataSegmentLength 5
        b[8..14].copy_from_slice(&[0x80, 0x12, 0x34, 0x56, 0x78, 0x9a]); // ISID
        b[14..16].copy_from_slice(&[0x00, 0x00]); // TSIH 0: new session
        b[16..20].copy_from_slice(&[0, 0, 0, 7]); // ITT
        b[20..22].copy_from_slice(&[0, 1]); // CID
        b[24..28].copy_from_slice(&[0, 0, 0, 9]); // CmdSN
        let mut bytes = b.to_vec();
        bytes.extend_from_slice(b"a=b\0\0\0\0\0"); // 5 bytes + 3 padding
        let (pdu, used) = Pdu::from_bytes(&bytes, Digests::default(), 8192)
            .unwrap()
            .unwrap();
        assert_eq!(used, 56);
        assert_eq!(pdu.data, b"a=b\0\0");
        match pdu.header {
            Header::LoginRequest(h) => {
                assert!(h.transit && !h.cont);
                assert_eq!((h.csg, h.nsg), (1, 3));
                assert_eq!(h.isid, [0x80, 0x12, 0x34, 0x56, 0x78, 0x9a]);
                assert_eq!((h.itt, h.cid, h.cmd_sn), (7, 1, 9));
            }
            other => panic!("wrong header {other:?}"),
        }
    }

    #[test]
    fn encodes_annotated_scsi_response() {
        let h = Header::ScsiResponse(ScsiResponse {
            underflow: true,
            status: 0x02,
            itt: 0x11,
            sns: Sns {
                stat_sn: 1,
                exp_cmd_sn: 2,
                max_cmd_sn: 3,
            },
            residual: 512,
            ..Default::default()
        });
        let b = h.encode(20).unwrap();
        assert_eq!(b[0], 0x21);
        assert_eq!(b[1], 0x82); // F + U
        assert_eq!(b[3], 0x02); // CHECK CONDITION
        assert_eq!(&b[5..8], &[0, 0, 20]);
        assert_eq!(&b[16..20], &[0, 0, 0, 0x11]);
        assert_eq!(&b[24..36], &[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]);
        assert_eq!(&b[44..48], &[0, 0, 2, 0]);
    }

    #[test]
    fn extended_cdb_round_trips_through_ahs() {
        let cdb: Vec<u8> = (0..32).collect();
        let pdu = Pdu::new(
            Header::ScsiCommand(ScsiCommand {
                immediate: false,
                final_: true,
                read: true,
                write: false,
                attr: TaskAttr::Simple,
                lun: 0,
                itt: 1,
                edtl: 512,
                cmd_sn: 1,
                exp_stat_sn: 1,
                cdb: cdb.clone(),
                bidi_read_len: Some(77),
            }),
            vec![],
        );
        let d = Digests {
            header: true,
            data: true,
        };
        let bytes = pdu.to_bytes(d).unwrap();
        // 48 BHS + (3+17 → 20) ext CDB + 8 bidi + 4 digest
        assert_eq!(bytes.len(), 48 + 20 + 8 + 4);
        assert_eq!(bytes[4], 7);
        let (back, _) = Pdu::from_bytes(&bytes, d, 0).unwrap().unwrap();
        assert_eq!(back, pdu);
    }

    #[test]
    fn digest_errors_are_detected() {
        let pdu = Pdu::new(
            Header::NopOut(NopOut {
                immediate: true,
                lun: 0,
                itt: 5,
                ttt: RESERVED_TAG,
                cmd_sn: 1,
                exp_stat_sn: 1,
            }),
            b"ping".to_vec(),
        );
        let d = Digests {
            header: true,
            data: true,
        };
        let mut bytes = pdu.to_bytes(d).unwrap();
        let mut h = bytes.clone();
        h[20] ^= 1;
        assert_eq!(Pdu::from_bytes(&h, d, 8192), Err(PduError::HeaderDigest));
        let n = bytes.len();
        bytes[n - 5] ^= 1;
        assert_eq!(Pdu::from_bytes(&bytes, d, 8192), Err(PduError::DataDigest));
    }

    #[test]
    fn oversized_data_segment_is_refused_before_reading_it() {
        let mut b = [0u8; 48];
        b[5] = 0x10; // 1 MiB
        assert_eq!(
            Pdu::from_bytes(&b, Digests::default(), 8192),
            Err(PduError::DataTooLong(0x10_0000))
        );
    }

    #[test]
    fn head_and_tail_match_to_wire() {
        for len in [0usize, 1, 3, 4, 5, 4096, 4099] {
            let pdu = Pdu::new(
                Header::DataIn(DataIn {
                    final_: true,
                    status: Some(0),
                    itt: 9,
                    ttt: RESERVED_TAG,
                    data_sn: 2,
                    ..Default::default()
                }),
                (0..len).map(|i| i as u8).collect(),
            );
            for (header, data) in [(false, false), (true, true), (true, false)] {
                let d = Digests { header, data };
                let (h, w) = pdu.to_wire(d).unwrap();
                let mut out = vec![7u8; 3];
                pdu.wire_head_into(d, &mut out).unwrap();
                assert_eq!(&out[..3], &[7, 7, 7]);
                assert_eq!(&out[3..], &h[..]);
                let (t, n) = wire_tail(&pdu.data, data);
                let mut joined = pdu.data.clone();
                joined.extend_from_slice(&t[..n]);
                assert_eq!(joined, w, "len {len} digests {d:?}");
            }
        }
    }
}
