//! The bytes of one full-feature connection: a receive buffer that one `read` fills with as
//! many PDUs as the socket holds (parsed in place), a send queue written with one vectored
//! write for many PDUs (header, data segment and its padding/digest as separate slices, the
//! data never copied), and a pool of Data-In buffers so commands do not allocate.
//!
//! Buffers are sized by use: the receive buffer starts small and grows only to the largest
//! PDU the peer actually sends, and shrinks back when a large one has gone through.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::ops::Range;
use std::sync::Arc;

use tokio::net::TcpStream;
use vds_iscsi::conn::SharedPdu;
use vds_iscsi::pdu::{wire_head_into, wire_tail, Bhs, Digests, Header, Pdu, BHS_LEN};

/// Initial (and idle) size of the receive buffer: a burst of 4 KiB writes with immediate data
/// at queue depth 16, or a few hundred command PDUs.
const RX_INITIAL: usize = 64 * 1024;
/// Room kept free for a read to land in.
const RX_MIN_SPARE: usize = 16 * 1024;

pub(crate) struct RxBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl RxBuf {
    pub fn new() -> Self {
        RxBuf {
            buf: vec![0u8; RX_INITIAL],
            start: 0,
            end: 0,
        }
    }

    /// Space for the next read (made by compacting or growing as needed).
    pub fn spare(&mut self) -> &mut [u8] {
        if self.buf.len() - self.end < RX_MIN_SPARE {
            self.make_room(RX_MIN_SPARE);
        }
        &mut self.buf[self.end..]
    }

    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Ensure `need` bytes fit after `start`, with at least `spare` free after `end`.
    fn make_room(&mut self, spare: usize) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < spare {
            self.buf.resize(self.end + spare, 0);
        }
    }

    /// The next whole frame: its BHS and the range of the bytes that follow it (AHS, digests,
    /// data), to be read with [`RxBuf::bytes`] before the next call. `Ok(None)`: more bytes are
    /// needed (room for them has been made). A data segment over `max_data` is an error.
    pub fn next_frame(
        &mut self,
        digests: Digests,
        max_data: u32,
    ) -> io::Result<Option<(Bhs, Range<usize>)>> {
        let avail = self.end - self.start;
        if avail < BHS_LEN {
            self.settle(BHS_LEN);
            return Ok(None);
        }
        let bhs = match Bhs::new(&self.buf[self.start..self.end]) {
            Ok(b) => b,
            Err(_) => return Ok(None),
        };
        if bhs.data_len() > max_data {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "data segment over MaxRecvDataSegmentLength",
            ));
        }
        let total = BHS_LEN + bhs.wire_rest_len(digests.header, digests.data);
        if avail < total {
            self.settle(total);
            return Ok(None);
        }
        let rest = self.start + BHS_LEN..self.start + total;
        self.start += total;
        Ok(Some((bhs, rest)))
    }

    pub fn bytes(&self, r: Range<usize>) -> &[u8] {
        &self.buf[r]
    }

    /// Give back what a burst of large PDUs grew the buffer to (called when the connection is
    /// idle, so a steady stream of large PDUs does not regrow it each time).
    pub fn shrink_if_idle(&mut self) {
        if self.start == self.end && self.buf.len() > RX_INITIAL {
            self.start = 0;
            self.end = 0;
            self.buf.truncate(RX_INITIAL);
            self.buf.shrink_to_fit();
        }
    }

    /// Between reads: reset an empty buffer, or make sure a partial frame of `frame` bytes
    /// will fit.
    fn settle(&mut self, frame: usize) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        let have = self.end - self.start;
        if self.buf.len() - self.start < frame {
            self.make_room(frame - have);
        }
    }
}

/// Buffers handed to the SCSI engine for Data-In and back after the PDU is written.
pub(crate) struct BufPool {
    free: Vec<Vec<u8>>,
    /// Capacity held in `free`.
    bytes: usize,
}

/// Memory a connection keeps for reuse: a queue depth of 64 at 4 KiB, 16 at 128 KiB. Larger
/// or further buffers go back to the allocator, so idle sessions stay small.
const POOL_MAX_BYTES: usize = 2 << 20;
const POOL_MAX: usize = 64;

impl BufPool {
    pub fn new() -> Self {
        BufPool {
            free: Vec::new(),
            bytes: 0,
        }
    }

    pub fn take(&mut self) -> Vec<u8> {
        let v = self.free.pop().unwrap_or_default();
        self.bytes -= v.capacity();
        v
    }

    pub fn give(&mut self, mut v: Vec<u8>) {
        let cap = v.capacity();
        if cap == 0 || self.bytes + cap > POOL_MAX_BYTES || self.free.len() >= POOL_MAX {
            return;
        }
        v.clear();
        self.bytes += cap;
        self.free.push(v);
    }
}

/// Target PDUs carry no AHS: BHS plus header digest.
const HEAD_MAX: usize = BHS_LEN + 4;

/// A data segment: its own buffer, or a slice of one shared by a Data-In sequence.
enum Payload {
    Owned(Vec<u8>),
    Shared(Arc<Vec<u8>>, Range<usize>),
}

impl Payload {
    fn bytes(&self) -> &[u8] {
        match self {
            Payload::Owned(v) => v,
            Payload::Shared(b, r) => &b[r.clone()],
        }
    }

    /// Memory the PDU keeps alive while queued: an owned buffer's capacity (the SCSI layer
    /// may have filled more than is sent), a shared one's slice (the sequence's PDUs share
    /// a buffer sized to what they send).
    fn cost(&self) -> usize {
        match self {
            Payload::Owned(v) => v.capacity(),
            Payload::Shared(_, r) => r.len(),
        }
    }

    /// The buffer back for reuse, once nothing else holds it.
    fn into_buffer(self) -> Option<Vec<u8>> {
        match self {
            Payload::Owned(v) => Some(v),
            Payload::Shared(b, _) => Arc::try_unwrap(b).ok(),
        }
    }
}

struct OutPdu {
    head: [u8; HEAD_MAX],
    head_len: u8,
    data: Payload,
    tail: [u8; 8],
    tail_len: u8,
}

impl OutPdu {
    fn len(&self) -> usize {
        usize::from(self.head_len) + self.data.bytes().len() + usize::from(self.tail_len)
    }
}

/// PDUs waiting to be written, in order.
pub(crate) struct TxQueue {
    q: VecDeque<OutPdu>,
    /// Bytes of the front PDU already written.
    sent: usize,
    scratch: Vec<u8>,
    /// Memory held by the queued PDUs (see `Payload::cost`), for the connection's limit.
    queued: usize,
}

/// What a queued PDU costs besides its payload.
const PDU_OVERHEAD: usize = std::mem::size_of::<OutPdu>();

/// Slices per `writev` (well under IOV_MAX).
const MAX_IOV: usize = 96;

impl TxQueue {
    pub fn new() -> Self {
        TxQueue {
            q: VecDeque::new(),
            sent: 0,
            scratch: Vec::with_capacity(HEAD_MAX),
            queued: 0,
        }
    }

    /// Memory the queue holds (payload buffers and PDU records).
    pub fn queued(&self) -> usize {
        self.queued
    }

    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    /// Queue `pdu`; its data segment is moved, not copied.
    pub fn push(&mut self, pdu: Pdu, digests: Digests) -> Result<(), vds_iscsi::PduError> {
        self.push_payload(&pdu.header, Payload::Owned(pdu.data), digests)
    }

    /// Queue a PDU whose data is a slice of a shared buffer (not copied either).
    pub fn push_shared(
        &mut self,
        pdu: SharedPdu,
        digests: Digests,
    ) -> Result<(), vds_iscsi::PduError> {
        if pdu.range.end > pdu.buf.len() || pdu.range.start > pdu.range.end {
            return Err(vds_iscsi::PduError::InvalidField("shared data range"));
        }
        self.push_payload(&pdu.header, Payload::Shared(pdu.buf, pdu.range), digests)
    }

    fn push_payload(
        &mut self,
        header: &Header,
        data: Payload,
        digests: Digests,
    ) -> Result<(), vds_iscsi::PduError> {
        self.scratch.clear();
        wire_head_into(header, data.bytes().len(), digests, &mut self.scratch)?;
        if self.scratch.len() > HEAD_MAX {
            return Err(vds_iscsi::PduError::BadAhs);
        }
        let mut head = [0u8; HEAD_MAX];
        head[..self.scratch.len()].copy_from_slice(&self.scratch);
        let (tail, tail_len) = wire_tail(data.bytes(), digests.data);
        self.queued += data.cost() + PDU_OVERHEAD;
        self.q.push_back(OutPdu {
            head,
            head_len: self.scratch.len() as u8,
            data,
            tail,
            tail_len: tail_len as u8,
        });
        Ok(())
    }

    /// Write as much as the socket takes now. `Ok(true)`: everything went out;
    /// `Ok(false)`: the socket is full (wait for writability). Written data buffers go back
    /// to `pool`.
    pub fn flush(&mut self, stream: &TcpStream, pool: &mut BufPool) -> io::Result<bool> {
        while !self.q.is_empty() {
            let n = {
                let mut iov: [IoSlice<'_>; MAX_IOV] = [IoSlice::new(&[]); MAX_IOV];
                let mut k = 0;
                let mut skip = self.sent;
                'fill: for p in &self.q {
                    for part in [
                        &p.head[..usize::from(p.head_len)],
                        p.data.bytes(),
                        &p.tail[..usize::from(p.tail_len)],
                    ] {
                        if skip >= part.len() {
                            skip -= part.len();
                            continue;
                        }
                        iov[k] = IoSlice::new(&part[skip..]);
                        skip = 0;
                        k += 1;
                        if k == MAX_IOV {
                            break 'fill;
                        }
                    }
                }
                match stream.try_write_vectored(&iov[..k]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            self.advance(n, pool);
        }
        Ok(true)
    }

    fn advance(&mut self, mut n: usize, pool: &mut BufPool) {
        while n > 0 {
            let Some(front) = self.q.front() else {
                return;
            };
            let left = front.len() - self.sent;
            if n < left {
                self.sent += n;
                return;
            }
            n -= left;
            self.sent = 0;
            if let Some(p) = self.q.pop_front() {
                self.queued -= p.data.cost() + PDU_OVERHEAD;
                if let Some(b) = p.data.into_buffer() {
                    pool.give(b);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vds_iscsi::pdu::{Header, NopIn, Sns};

    fn frame(data_len: usize) -> Vec<u8> {
        let pdu = Pdu::new(
            Header::NopIn(NopIn {
                lun: 0,
                itt: 1,
                ttt: 0xffff_ffff,
                sns: Sns::default(),
            }),
            vec![3u8; data_len],
        );
        pdu.to_bytes(Digests::default()).unwrap()
    }

    #[test]
    fn frames_are_parsed_across_reads_and_large_ones_grow_then_shrink_the_buffer() {
        let mut rx = RxBuf::new();
        let mut wire = frame(5);
        wire.extend_from_slice(&frame(300_000));
        wire.extend_from_slice(&frame(0));
        let mut fed = 0;
        let mut got = Vec::new();
        while got.len() < 3 {
            match rx.next_frame(Digests::default(), 1 << 20).unwrap() {
                Some((bhs, r)) => got.push((bhs.data_len(), rx.bytes(r).len())),
                None => {
                    let spare = rx.spare();
                    let n = spare.len().min(wire.len() - fed).min(7000);
                    spare[..n].copy_from_slice(&wire[fed..fed + n]);
                    rx.filled(n);
                    fed += n;
                }
            }
        }
        assert_eq!(got, vec![(5, 8), (300_000, 300_000), (0, 0)]);
        assert_eq!(rx.next_frame(Digests::default(), 1 << 20).unwrap(), None);
        assert!(rx.buf.len() > 300_000);
        rx.shrink_if_idle();
        assert_eq!(rx.buf.len(), RX_INITIAL);
    }

    #[test]
    fn oversized_data_segment_is_an_error() {
        let mut rx = RxBuf::new();
        let w = frame(9000);
        rx.spare()[..w.len()].copy_from_slice(&w);
        rx.filled(w.len());
        assert!(rx.next_frame(Digests::default(), 8192).is_err());
    }

    #[test]
    fn the_send_queue_counts_the_memory_it_holds_until_written() {
        let mut q = TxQueue::new();
        let mut pool = BufPool::new();
        let hdr = Header::NopIn(NopIn {
            lun: 0,
            itt: 1,
            ttt: 0xffff_ffff,
            sns: Sns::default(),
        });
        // A 100-byte segment in a 1 MiB buffer holds the whole MiB.
        let mut big = Vec::with_capacity(1 << 20);
        big.extend_from_slice(&[1u8; 100]);
        q.push(Pdu::new(hdr.clone(), big), Digests::default())
            .unwrap();
        let shared = Arc::new(vec![2u8; 3000]);
        q.push_shared(
            SharedPdu {
                header: hdr,
                buf: shared,
                range: 0..1000,
            },
            Digests::default(),
        )
        .unwrap();
        assert!(q.queued() >= (1 << 20) + 1000);
        let first = q.q.front().unwrap().len();
        q.advance(first, &mut pool);
        assert_eq!(q.queued(), 1000 + PDU_OVERHEAD);
        let second = q.q.front().unwrap().len();
        q.advance(second, &mut pool);
        assert_eq!(q.queued(), 0);
    }

    #[test]
    fn pool_keeps_bounded_buffers() {
        let mut p = BufPool::new();
        p.give(Vec::with_capacity(4096));
        p.give(Vec::with_capacity(8 << 20));
        p.give(Vec::new());
        assert_eq!(p.free.len(), 1);
        for _ in 0..300 {
            p.give(Vec::with_capacity(4096));
        }
        assert_eq!(p.free.len(), POOL_MAX);
        assert!(p.bytes <= POOL_MAX_BYTES);
        assert_eq!(p.take().capacity(), 4096);
        assert_eq!(p.bytes, (POOL_MAX - 1) * 4096);
    }
}
