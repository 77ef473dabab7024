//! Fuzz target: the full-feature phase of one connection with text negotiation. A stream of
//! PDUs, either raw frames read the way the data path reads them (BHS, then the lengths the
//! BHS states, malformed ones handed to `handle_malformed`) or well-formed PDUs with fuzzed
//! fields (SCSI commands with Data-Out, Data-Out bursts, Text Requests with SendTargets and
//! other keys across C=1 PDUs, NOP-Out, task management, logout, SNACK), drives a
//! `Connection` whose commands execute on memory LUs, with timers advanced in between.
//! Nothing panics, every PDU the engine sends encodes, and no data segment it sends exceeds
//! what the initiator declared it can receive.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use vds_fuzz::{memory_map, nexus};
use vds_iscsi::conn::{ConnConfig, ConnEnv, Connection, Event};
use vds_iscsi::pdu::{
    Bhs, DataOut, Digests, Header, LogoutRequest, NopOut, Pdu, ScsiCommand, Snack, TaskAttr,
    TaskMgmtRequest, TextRequest, BHS_LEN,
};
use vds_iscsi::{SessionParams, SessionType, TargetLimits};

struct Env;

impl ConnEnv for Env {
    fn send_targets(&mut self, query: &str, _s: &SessionParams) -> Vec<(String, Vec<String>)> {
        let all = vec![
            (
                "iqn.2026-01.fuzz:t0".to_string(),
                vec!["127.0.0.1:3260,1".to_string(), "[::1]:3260,2".to_string()],
            ),
            (
                "iqn.2026-01.fuzz:t1".to_string(),
                vec!["127.0.0.1:3261,1".to_string()],
            ),
        ];
        match query {
            "All" => all,
            "" => all.into_iter().take(1).collect(),
            q => all.into_iter().filter(|(n, _)| n == q).collect(),
        }
    }
}

const TEXT: &[&str] = &[
    "SendTargets=All\0",
    "SendTargets=\0",
    "SendTargets=iqn.2026-01.fuzz:t1\0",
    "MaxRecvDataSegmentLength=512\0",
    "X-vendor.key=1\0",
    "TargetAlias=x\0",
    "SendTargets=All",
    "=\0",
    "\0\0",
];

fn pdu(u: &mut Unstructured<'_>, cmd_sn: &mut u32, itt: &mut u32, exp: u32) -> Result<Pdu> {
    let sn = if u.ratio(7, 8)? {
        let s = *cmd_sn;
        *cmd_sn = cmd_sn.wrapping_add(1);
        s
    } else {
        u.arbitrary()?
    };
    if u.ratio(3, 4)? {
        *itt = itt.wrapping_add(1);
    }
    let lun = vds_scsi::encode_lun(u.int_in_range(0..=3)?);
    let lun = u64::from_be_bytes(lun);
    let h = match u.int_in_range(0..=8u8)? {
        0 | 1 => {
            let mut cdb = vec![0u8; 16];
            u.fill_buffer(&mut cdb)?;
            cdb[0] = *u.choose(&[0x28, 0x2A, 0x88, 0x8A, 0x00, 0x12, 0xA0, 0x35, 0x89, 0x42])?;
            for b in &mut cdb[2..14] {
                *b &= 0x01;
            }
            let write = u.arbitrary()?;
            Header::ScsiCommand(ScsiCommand {
                immediate: u.ratio(1, 8)?,
                final_: u.arbitrary()?,
                read: u.arbitrary()?,
                write,
                attr: TaskAttr::Simple,
                lun,
                itt: *itt,
                edtl: u.int_in_range(0..=70_000)?,
                cmd_sn: sn,
                exp_stat_sn: exp,
                cdb,
                bidi_read_len: if u.ratio(1, 10)? {
                    Some(u.arbitrary()?)
                } else {
                    None
                },
            })
        }
        2 => Header::DataOut(DataOut {
            final_: u.arbitrary()?,
            lun,
            itt: itt.wrapping_sub(u.int_in_range(0..=2)?),
            ttt: if u.arbitrary()? {
                u32::MAX
            } else {
                u.int_in_range(0..=4)?
            },
            exp_stat_sn: exp,
            data_sn: u.int_in_range(0..=3)?,
            buffer_offset: u.int_in_range(0..=70_000)?,
        }),
        3 => Header::TextRequest(TextRequest {
            immediate: u.ratio(1, 8)?,
            final_: u.ratio(3, 4)?,
            cont: u.ratio(1, 4)?,
            lun: 0,
            itt: *itt,
            ttt: if u.arbitrary()? {
                u32::MAX
            } else {
                u.int_in_range(0..=4)?
            },
            cmd_sn: sn,
            exp_stat_sn: exp,
        }),
        4 => Header::NopOut(NopOut {
            immediate: u.arbitrary()?,
            lun,
            itt: if u.ratio(1, 4)? { u32::MAX } else { *itt },
            ttt: if u.ratio(3, 4)? {
                u32::MAX
            } else {
                u.arbitrary()?
            },
            cmd_sn: sn,
            exp_stat_sn: exp,
        }),
        5 => Header::TaskMgmtRequest(TaskMgmtRequest {
            immediate: u.arbitrary()?,
            function: u.int_in_range(0..=15)?,
            lun,
            itt: *itt,
            rtt: itt.wrapping_sub(u.int_in_range(0..=3)?),
            cmd_sn: sn,
            exp_stat_sn: exp,
            ref_cmd_sn: sn.wrapping_sub(u.int_in_range(0..=3)?),
            exp_data_sn: 0,
        }),
        6 => Header::LogoutRequest(LogoutRequest {
            immediate: u.arbitrary()?,
            reason: u.int_in_range(0..=3)?,
            itt: *itt,
            cid: u.int_in_range(0..=1)?,
            cmd_sn: sn,
            exp_stat_sn: exp,
        }),
        7 => Header::Snack(Snack {
            kind: u.int_in_range(0..=3)?,
            lun,
            itt: *itt,
            ttt: u.arbitrary()?,
            exp_stat_sn: exp,
            beg_run: u.int_in_range(0..=3)?,
            run_length: u.int_in_range(0..=3)?,
        }),
        _ => {
            let t = *u.choose(TEXT)?;
            return Ok(Pdu::new(
                Header::TextRequest(TextRequest {
                    immediate: false,
                    final_: true,
                    cont: false,
                    lun: 0,
                    itt: *itt,
                    ttt: u32::MAX,
                    cmd_sn: sn,
                    exp_stat_sn: exp,
                }),
                t.as_bytes().to_vec(),
            ));
        }
    };
    let data = if matches!(h, Header::TextRequest(_)) && u.arbitrary()? {
        u.choose(TEXT)?.as_bytes().to_vec()
    } else {
        let n = u.int_in_range(0..=9000usize)?;
        u.bytes(n.min(u.len()))?.to_vec()
    };
    Ok(Pdu::new(h, data))
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let limits = TargetLimits {
        max_recv_data_segment_length: 8192,
        queue_depth: u.int_in_range(1..=8)?,
        ..TargetLimits::default()
    };
    let mut p = SessionParams::defaults(&limits);
    p.session_type = if u.ratio(1, 4)? {
        SessionType::Discovery
    } else {
        SessionType::Normal
    };
    p.initiator_name = nexus(0).initiator_name;
    p.max_xmit_data_segment_length = *u.choose(&[512, 4096, 8192, 262_144])?;
    p.initial_r2t = u.arbitrary()?;
    p.immediate_data = u.arbitrary()?;
    p.first_burst_length = *u.choose(&[512, 8192, 65_536])?;
    p.max_burst_length = p.first_burst_length.max(*u.choose(&[512, 16384, 262_144])?);
    p.max_outstanding_r2t = u.int_in_range(1..=4)?;
    p.exp_cmd_sn = u.arbitrary()?;
    let max_xmit = p.max_xmit_data_segment_length as usize;
    let digests = Digests::default();
    let mut cmd_sn = p.exp_cmd_sn;
    let mut itt = 0u32;
    let mut conn = Connection::new(p, limits, ConnConfig::default());
    let map = memory_map(None);
    let ne = nexus(0);
    let mut now = Instant::now();
    let mut data_in = Vec::new();
    let mut exp_stat = 0u32;
    for _ in 0..u.int_in_range(1..=32u8)? {
        if u.ratio(1, 3)? {
            // A raw frame, read the way the data path reads one.
            let mut h = [0u8; BHS_LEN];
            u.fill_buffer(&mut h)?;
            let bhs = Bhs(h);
            if bhs.data_len() > 8192 {
                break; // the reader closes the connection
            }
            let n = bhs.wire_rest_len(false, false);
            let rest = u.bytes(n.min(u.len()))?;
            if rest.len() < n {
                break; // truncated: the reader sees EOF
            }
            match Pdu::from_parts(&bhs, rest, digests) {
                Ok(pdu) => conn.handle_pdu(pdu, now, &mut Env),
                Err(e) => conn.handle_malformed(&bhs.0, &e, &mut Env),
            }
        } else {
            let pdu = pdu(u, &mut cmd_sn, &mut itt, exp_stat)?;
            conn.handle_pdu(pdu, now, &mut Env);
        }
        if u.ratio(1, 6)? {
            now += Duration::from_secs(u.int_in_range(1..=90)?);
            conn.poll_timers(now);
        }
        if u.ratio(1, 16)? {
            conn.request_logout(u.int_in_range(0..=5)?);
        }
        // Act on everything the engine asked for, as the data path does.
        let mut closed = false;
        let mut tmfs = Vec::new();
        while let Some(ev) = conn.poll_event() {
            match ev {
                Event::Send(_) | Event::SendShared(_) => {
                    let p = match ev {
                        Event::Send(p) => p,
                        Event::SendShared(s) => s.to_pdu(),
                        _ => unreachable!(),
                    };
                    let wire = p.to_bytes(digests).expect("engine output encodes");
                    assert!(wire.len() >= BHS_LEN);
                    assert!(
                        p.data.len() <= max_xmit,
                        "sent {} bytes of data over MaxRecvDataSegmentLength {max_xmit}",
                        p.data.len()
                    );
                    if let Some(s) = stat_sn_of(&p.header) {
                        exp_stat = s.wrapping_add(1);
                    }
                }
                Event::Execute(c) => {
                    let cmd = vds_scsi::ScsiCommand {
                        cdb: &c.cdb,
                        data_out: &c.data_out,
                        expected_in_len: c.expected_in_len,
                        attr: vds_scsi::TaskAttr::Simple,
                    };
                    let lun = vds_scsi::decode_lun(c.lun.to_be_bytes());
                    let out = map.execute(&ne, lun, &cmd, &mut data_in);
                    let want = vds_scsi::cdb_transfer_len(&c.cdb, 512).unwrap_or(0) as i64;
                    let resid = if c.data_out.is_empty() {
                        0
                    } else {
                        want - c.data_out.len() as i64
                    };
                    conn.complete(
                        c.itt,
                        out.status as u8,
                        out.sense.as_deref(),
                        &data_in,
                        resid,
                    );
                }
                Event::TaskMgmt(t) => tmfs.push(t.itt),
                Event::Close(_) => closed = true,
            }
        }
        for t in tmfs {
            conn.tmf_done(t, None);
        }
        while let Some(ev) = conn.poll_event() {
            if let Event::Send(p) = ev {
                p.to_bytes(digests).expect("engine output encodes");
            }
        }
        if closed {
            break;
        }
    }
    Ok(())
}

fn stat_sn_of(h: &Header) -> Option<u32> {
    match h {
        Header::ScsiResponse(r) => Some(r.sns.stat_sn),
        Header::NopIn(r) => Some(r.sns.stat_sn),
        Header::TextResponse(r) => Some(r.sns.stat_sn),
        _ => None,
    }
}

fuzz_target!(|input: &[u8]| {
    let mut u = Unstructured::new(input);
    let _ = run(&mut u);
});
