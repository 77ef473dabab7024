//! Scenario tests of the full-feature phase: an in-memory initiator feeds PDUs and checks what
//! the connection answers.

use super::*;
use crate::pdu::ScsiCommand;

struct Env;
impl ConnEnv for Env {
    fn send_targets(&mut self, q: &str, _s: &SessionParams) -> Vec<(String, Vec<String>)> {
        if q == "All" {
            (0..200)
                .map(|i| {
                    (
                        format!("iqn.2026-11.local.vds:target-number-{i:04}"),
                        vec![format!("127.0.0.1:3260,{i}"), "[::1]:3260,1".to_string()],
                    )
                })
                .collect()
        } else {
            vec![]
        }
    }
}

fn params() -> SessionParams {
    let mut p = SessionParams::defaults(&TargetLimits::default());
    p.initiator_name = "iqn.i".into();
    p.target_name = Some("iqn.t".into());
    p.exp_cmd_sn = 100;
    p.stat_sn = 50;
    p.max_xmit_data_segment_length = 8192;
    p.max_burst_length = 16384;
    p.first_burst_length = 8192;
    p.initial_r2t = false;
    p.max_outstanding_r2t = 2;
    p
}

fn conn_with(p: SessionParams) -> Connection {
    let limits = TargetLimits {
        queue_depth: 4,
        ..TargetLimits::default()
    };
    Connection::new(p, limits, ConnConfig::default())
}

fn drain(c: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn cmd(itt: u32, cmd_sn: u32, read: bool, write: bool, edtl: u32, final_: bool) -> ScsiCommand {
    ScsiCommand {
        immediate: false,
        final_,
        read,
        write,
        attr: TaskAttr::Simple,
        lun: 0,
        itt,
        edtl,
        cmd_sn,
        exp_stat_sn: 50,
        cdb: vec![0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0],
        bidi_read_len: None,
    }
}

fn feed(c: &mut Connection, h: Header, data: Vec<u8>) -> Vec<Event> {
    c.handle_pdu(Pdu::new(h, data), Instant::now(), &mut Env);
    drain(c)
}

fn sent(evs: &[Event]) -> Vec<Pdu> {
    evs.iter()
        .filter_map(|e| match e {
            Event::Send(p) => Some(p.clone()),
            Event::SendShared(p) => Some(p.to_pdu()),
            _ => None,
        })
        .collect()
}

#[test]
fn read_sends_data_in_with_status_in_the_last_pdu() {
    let mut c = conn_with(params());
    let evs = feed(
        &mut c,
        Header::ScsiCommand(cmd(1, 100, true, false, 20000, true)),
        vec![],
    );
    let Event::Execute(x) = &evs[0] else {
        panic!("{evs:?}")
    };
    assert_eq!(x.expected_in_len, 20000);
    c.complete(1, 0, None, &vec![7u8; 20000], 0);
    let evs = drain(&mut c);
    let pdus = sent(&evs);
    // 8192 + 8192 (end of the 16384 burst) + 3616.
    assert_eq!(pdus.len(), 3);
    let mut off = 0;
    for (i, p) in pdus.iter().enumerate() {
        let Header::DataIn(d) = &p.header else {
            panic!()
        };
        assert_eq!(d.data_sn, i as u32);
        assert_eq!(d.buffer_offset, off);
        off += p.data.len() as u32;
        if i == 1 {
            assert!(d.final_, "F at the MaxBurstLength boundary");
            assert!(d.status.is_none());
        }
        if i == 2 {
            assert_eq!(d.status, Some(0));
            assert_eq!(d.sns.stat_sn, 50);
            assert_eq!(d.sns.exp_cmd_sn, 101);
        }
    }
}

#[test]
fn an_owned_read_over_several_pdus_shares_one_buffer_and_sends_the_same_bytes() {
    let mut c = conn_with(params());
    feed(
        &mut c,
        Header::ScsiCommand(cmd(1, 100, true, false, 20000, true)),
        vec![],
    );
    let data: Vec<u8> = (0..20000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(c.complete_owned(1, 0, None, data.clone(), 0), None);
    let evs = drain(&mut c);
    let shared: Vec<&SharedPdu> = evs
        .iter()
        .filter_map(|e| match e {
            Event::SendShared(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(shared.len(), 3, "{evs:?}");
    assert!(shared
        .iter()
        .all(|p| std::sync::Arc::ptr_eq(&p.buf, &shared[0].buf)));
    let mut joined = Vec::new();
    for (i, p) in sent(&evs).iter().enumerate() {
        let Header::DataIn(d) = &p.header else {
            panic!()
        };
        assert_eq!(d.buffer_offset as usize, joined.len());
        assert_eq!(d.status.is_some(), i == 2);
        joined.extend_from_slice(&p.data);
    }
    assert_eq!(joined, data);
    // A read that fits one PDU moves its buffer instead.
    feed(
        &mut c,
        Header::ScsiCommand(cmd(2, 101, true, false, 4096, true)),
        vec![],
    );
    assert_eq!(c.complete_owned(2, 0, None, vec![1u8; 4096], 0), None);
    assert!(matches!(drain(&mut c)[..], [Event::Send(_)]));
}

#[test]
fn read_residuals_under_and_over() {
    let mut c = conn_with(params());
    feed(
        &mut c,
        Header::ScsiCommand(cmd(1, 100, true, false, 1024, true)),
        vec![],
    );
    c.complete(1, 0, None, &[1u8; 512], 0);
    let evs = drain(&mut c);
    let Header::DataIn(d) = &sent(&evs)[0].header else {
        panic!()
    };
    assert!(d.underflow && !d.overflow);
    assert_eq!(d.residual, 512);

    feed(
        &mut c,
        Header::ScsiCommand(cmd(2, 101, true, false, 200, true)),
        vec![],
    );
    c.complete(2, 0, None, &[1u8; 512], 0);
    let evs = drain(&mut c);
    let p = sent(&evs)[0].clone();
    assert_eq!(p.data.len(), 200);
    let Header::DataIn(d) = &p.header else {
        panic!()
    };
    assert!(d.overflow);
    assert_eq!(d.residual, 312);
}

#[test]
fn sense_goes_in_a_scsi_response() {
    let mut c = conn_with(params());
    feed(
        &mut c,
        Header::ScsiCommand(cmd(1, 100, true, false, 512, true)),
        vec![],
    );
    let sense = [0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0, 0, 0, 0, 0];
    c.complete(1, 2, Some(&sense), &[], 0);
    let evs = drain(&mut c);
    let p = sent(&evs)[0].clone();
    let Header::ScsiResponse(r) = &p.header else {
        panic!()
    };
    assert_eq!(r.status, 2);
    assert!(r.underflow);
    assert_eq!(r.residual, 512);
    assert_eq!(&p.data[..2], &[0, 18]);
    assert_eq!(&p.data[2..], &sense);
}

#[test]
fn write_with_immediate_unsolicited_and_r2t_data() {
    let mut c = conn_with(params());
    // 40000 bytes: 1000 immediate, unsolicited up to FirstBurstLength 8192, rest by R2T.
    let evs = feed(
        &mut c,
        Header::ScsiCommand(cmd(9, 100, false, true, 40000, false)),
        vec![1u8; 1000],
    );
    let r2ts: Vec<R2t> = sent(&evs)
        .iter()
        .filter_map(|p| match &p.header {
            Header::R2t(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    // MaxOutstandingR2T = 2, MaxBurstLength = 16384.
    assert_eq!(r2ts.len(), 2);
    assert_eq!((r2ts[0].buffer_offset, r2ts[0].desired_len), (8192, 16384));
    assert_eq!((r2ts[1].buffer_offset, r2ts[1].desired_len), (24576, 15424));
    assert_eq!((r2ts[0].r2t_sn, r2ts[1].r2t_sn), (0, 1));
    let dout = |ttt, sn, off, len: usize, f| {
        Header::DataOut(DataOut {
            final_: f,
            lun: 0,
            itt: 9,
            ttt,
            exp_stat_sn: 0,
            data_sn: sn,
            buffer_offset: off,
        })
        .clone()
        .into_pdu(vec![(off % 251) as u8; len])
    };
    for p in [
        dout(RESERVED_TAG, 0, 1000, 7192, true),
        dout(r2ts[1].ttt, 0, 24576, 8192, false),
        dout(r2ts[1].ttt, 1, 32768, 7232, true),
        dout(r2ts[0].ttt, 0, 8192, 8192, false),
    ] {
        let evs = {
            c.handle_pdu(p, Instant::now(), &mut Env);
            drain(&mut c)
        };
        assert!(evs.is_empty(), "{evs:?}");
    }
    let evs = feed_pdu(&mut c, dout(r2ts[0].ttt, 1, 16384, 8192, true));
    let Event::Execute(x) = &evs[0] else {
        panic!("{evs:?}")
    };
    assert_eq!(x.data_out.len(), 40000);
    assert_eq!(x.data_out[0], 1);
    assert_eq!(x.data_out[1000], (1000 % 251) as u8);
    assert_eq!(x.data_out[32768], (32768 % 251) as u8);
    c.complete(9, 0, None, &[], 0);
    let evs = drain(&mut c);
    let Header::ScsiResponse(r) = &sent(&evs)[0].header else {
        panic!()
    };
    assert_eq!((r.status, r.residual, r.exp_data_sn), (0, 0, 2));
}

trait IntoPdu {
    fn into_pdu(self, data: Vec<u8>) -> Pdu;
}
impl IntoPdu for Header {
    fn into_pdu(self, data: Vec<u8>) -> Pdu {
        Pdu::new(self, data)
    }
}
fn feed_pdu(c: &mut Connection, p: Pdu) -> Vec<Event> {
    c.handle_pdu(p, Instant::now(), &mut Env);
    drain(c)
}

#[test]
fn bad_data_sn_is_rejected_and_ends_the_task() {
    let mut p = params();
    p.initial_r2t = true;
    p.immediate_data = false;
    let mut c = conn_with(p);
    let evs = feed(
        &mut c,
        Header::ScsiCommand(cmd(3, 100, false, true, 1024, true)),
        vec![],
    );
    let Header::R2t(r) = &sent(&evs)[0].header else {
        panic!()
    };
    let evs = feed(
        &mut c,
        Header::DataOut(DataOut {
            final_: false,
            lun: 0,
            itt: 3,
            ttt: r.ttt,
            exp_stat_sn: 0,
            data_sn: 27,
            buffer_offset: 0,
        }),
        vec![0; 512],
    );
    let Header::Reject(rj) = &sent(&evs)[0].header else {
        panic!("{evs:?}")
    };
    assert_eq!(rj.reason, reject::PROTOCOL_ERROR);
    assert_eq!(sent(&evs)[0].data[0], opcode::DATA_OUT);
    assert_eq!(c.active_tasks(), 0);
}

#[test]
fn cmd_sn_outside_the_window_is_ignored_and_gaps_are_held() {
    let mut c = conn_with(params());
    // Window is [100, 103] (queue depth 4).
    assert!(feed(
        &mut c,
        Header::ScsiCommand(cmd(1, 104, true, false, 0, true)),
        vec![]
    )
    .is_empty());
    assert!(feed(
        &mut c,
        Header::ScsiCommand(cmd(1, 99, true, false, 0, true)),
        vec![]
    )
    .is_empty());
    // 101 arrives before 100: held, then both run in order.
    assert!(feed(
        &mut c,
        Header::ScsiCommand(cmd(2, 101, true, false, 0, true)),
        vec![]
    )
    .is_empty());
    let evs = feed(
        &mut c,
        Header::ScsiCommand(cmd(1, 100, true, false, 0, true)),
        vec![],
    );
    let itts: Vec<u32> = evs
        .iter()
        .filter_map(|e| match e {
            Event::Execute(x) => Some(x.itt),
            _ => None,
        })
        .collect();
    assert_eq!(itts, vec![1, 2]);
    // Two executing: MaxCmdSN = 102 + (4 - 2) - 1 = 103.
    c.complete(1, 0, None, &[], 0);
    let evs = drain(&mut c);
    let Header::ScsiResponse(r) = &sent(&evs)[0].header else {
        panic!()
    };
    assert_eq!((r.sns.exp_cmd_sn, r.sns.max_cmd_sn), (102, 104));
}

#[test]
fn nop_out_ping_and_target_keepalive() {
    let mut c = conn_with(params());
    let evs = feed(
        &mut c,
        Header::NopOut(NopOut {
            immediate: true,
            lun: 0,
            itt: 77,
            ttt: RESERVED_TAG,
            cmd_sn: 100,
            exp_stat_sn: 50,
        }),
        b"hello".to_vec(),
    );
    let p = sent(&evs)[0].clone();
    let Header::NopIn(n) = &p.header else {
        panic!()
    };
    assert_eq!((n.itt, n.ttt, n.sns.stat_sn), (77, RESERVED_TAG, 50));
    assert_eq!(p.data, b"hello");

    let t0 = Instant::now();
    c.poll_timers(t0);
    assert!(drain(&mut c).is_empty());
    c.poll_timers(t0 + Duration::from_secs(31));
    let evs = drain(&mut c);
    let Header::NopIn(ping) = &sent(&evs)[0].header else {
        panic!()
    };
    assert_eq!(ping.itt, RESERVED_TAG);
    assert_ne!(ping.ttt, RESERVED_TAG);
    c.poll_timers(t0 + Duration::from_secs(62));
    assert_eq!(drain(&mut c), vec![Event::Close(CloseReason::NopTimeout)]);
}

#[test]
fn abort_task_waits_for_the_executing_task() {
    let mut c = conn_with(params());
    feed(
        &mut c,
        Header::ScsiCommand(cmd(5, 100, true, false, 512, true)),
        vec![],
    );
    let tmf_req = |f, rtt| {
        Header::TaskMgmtRequest(TaskMgmtRequest {
            immediate: true,
            function: f,
            lun: 0,
            itt: 6,
            rtt,
            cmd_sn: 101,
            exp_stat_sn: 50,
            ref_cmd_sn: 100,
            exp_data_sn: 0,
        })
    };
    assert!(feed(&mut c, tmf_req(tmf::ABORT_TASK, 5), vec![]).is_empty());
    c.complete(5, 0, None, &[0; 512], 0);
    let evs = drain(&mut c);
    assert_eq!(
        evs.len(),
        1,
        "only the TMF response, no data for the aborted task"
    );
    let Header::TaskMgmtResponse(r) = &sent(&evs)[0].header else {
        panic!()
    };
    assert_eq!((r.itt, r.response), (6, tmf_response::FUNCTION_COMPLETE));
    // LU reset goes to the caller first.
    let evs = feed(&mut c, tmf_req(tmf::LOGICAL_UNIT_RESET, 0), vec![]);
    assert!(matches!(
        evs[0],
        Event::TaskMgmt(TmfRequest { function: 5, .. })
    ));
    c.tmf_done(6, None);
    assert_eq!(sent(&drain(&mut c)).len(), 1);
    let evs = feed(&mut c, tmf_req(9, 0), vec![]);
    let Header::TaskMgmtResponse(r) = &sent(&evs)[0].header else {
        panic!()
    };
    assert_eq!(r.response, tmf_response::FUNCTION_NOT_SUPPORTED);
}

#[test]
fn logout_waits_for_executing_commands() {
    let mut c = conn_with(params());
    feed(
        &mut c,
        Header::ScsiCommand(cmd(5, 100, true, false, 512, true)),
        vec![],
    );
    let evs = feed(
        &mut c,
        Header::LogoutRequest(crate::pdu::LogoutRequest {
            immediate: true,
            reason: logout::CLOSE_SESSION,
            itt: 8,
            cid: 0,
            cmd_sn: 101,
            exp_stat_sn: 50,
        }),
        vec![],
    );
    assert!(evs.is_empty());
    c.complete(5, 0, None, &[0; 512], 0);
    let evs = drain(&mut c);
    assert!(matches!(&sent(&evs)[0].header, Header::DataIn(_)));
    assert!(matches!(&sent(&evs)[1].header, Header::LogoutResponse(_)));
    assert_eq!(evs.last(), Some(&Event::Close(CloseReason::LoggedOut)));
}

#[test]
fn long_send_targets_is_split_with_continue() {
    let mut p = params();
    p.session_type = SessionType::Discovery;
    let mut c = conn_with(p);
    let tr = |ttt, sn| {
        Header::TextRequest(TextRequest {
            immediate: true,
            final_: true,
            cont: false,
            lun: 0,
            itt: 4,
            ttt,
            cmd_sn: sn,
            exp_stat_sn: 0,
        })
    };
    let mut all = Vec::new();
    let mut evs = feed(&mut c, tr(RESERVED_TAG, 100), b"SendTargets=All\0".to_vec());
    loop {
        let p = sent(&evs)[0].clone();
        let Header::TextResponse(r) = &p.header else {
            panic!()
        };
        assert!(p.data.len() <= 8192);
        all.extend_from_slice(&p.data);
        if r.final_ {
            break;
        }
        assert!(r.cont);
        evs = feed(&mut c, tr(r.ttt, 100), vec![]);
    }
    let keys: Vec<_> = all.split(|b| *b == 0).filter(|s| !s.is_empty()).collect();
    assert_eq!(keys.len(), 600);
    assert_eq!(keys[2], b"TargetAddress=[::1]:3260,1");
    let evs = feed(
        &mut c,
        tr(RESERVED_TAG, 100),
        b"SendTargets=Alle\0".to_vec(),
    );
    assert_eq!(sent(&evs)[0].data, b"SendTargets=Reject\0");
}

#[test]
fn unknown_opcode_and_snack_are_rejected() {
    let mut c = conn_with(params());
    let mut bhs = [0u8; 48];
    bhs[0] = 0x1c;
    c.handle_malformed(&bhs, &PduError::UnknownOpcode(0x1c), &mut Env);
    let evs = drain(&mut c);
    let Header::Reject(r) = &sent(&evs)[0].header else {
        panic!()
    };
    assert_eq!(r.reason, reject::COMMAND_NOT_SUPPORTED);
    assert_eq!(sent(&evs)[0].data, bhs.to_vec());
}

#[test]
fn text_request_keys_may_span_pdus() {
    let mut p = params();
    p.session_type = SessionType::Discovery;
    let mut c = conn_with(p);
    let tr = |ttt: u32, sn: u32, cont: bool| {
        Header::TextRequest(TextRequest {
            immediate: false,
            final_: !cont,
            cont,
            lun: 0,
            itt: 4,
            ttt,
            cmd_sn: sn,
            exp_stat_sn: 0,
        })
    };
    let evs = feed(&mut c, tr(RESERVED_TAG, 100, true), b"SendTarg".to_vec());
    let Header::TextResponse(r) = &sent(&evs)[0].header else {
        panic!()
    };
    assert!(!r.final_ && r.ttt != RESERVED_TAG);
    assert!(sent(&evs)[0].data.is_empty());
    let evs = feed(&mut c, tr(r.ttt, 101, false), b"ets=All\0".to_vec());
    let p = sent(&evs)[0].clone();
    assert!(p
        .data
        .starts_with(b"TargetName=iqn.2026-11.local.vds:target-number-0000\0"));
}

#[test]
fn a_rejected_command_still_uses_its_cmd_sn() {
    let mut c = conn_with(params());
    let bad = Header::ScsiCommand(cmd(1, 100, true, false, 512, true))
        .encode(0)
        .unwrap();
    let mut bhs = [0u8; 48];
    bhs.copy_from_slice(&bad[..48]);
    c.handle_malformed(&bhs, &PduError::DataDigest, &mut Env);
    let evs = drain(&mut c);
    let Header::Reject(r) = &sent(&evs)[0].header else {
        panic!()
    };
    assert_eq!(r.reason, reject::DATA_DIGEST_ERROR);
    // The next command (CmdSN 101) runs at once.
    let evs = feed(
        &mut c,
        Header::ScsiCommand(cmd(2, 101, true, false, 512, true)),
        vec![],
    );
    assert!(matches!(evs[0], Event::Execute(_)));
}

/// Feed through `handle_parts` (data borrowed) instead of `handle_pdu`.
fn feed_parts(c: &mut Connection, h: Header, data: &[u8]) -> Vec<Event> {
    c.handle_parts(h, data, Instant::now(), &mut Env);
    drain(c)
}

#[test]
fn borrowed_data_path_matches_the_owned_one_and_reuses_write_buffers() {
    // The same write (immediate data, then an R2T for the rest), and an out-of-order command
    // held for its CmdSN, through both entry points: the same events.
    let run = |parts: bool| {
        let mut c = conn_with(params());
        let f = |c: &mut Connection, h: Header, d: Vec<u8>| {
            if parts {
                feed_parts(c, h, &d)
            } else {
                feed(c, h, d)
            }
        };
        let mut log = Vec::new();
        for round in 0..3u32 {
            let itt = 10 + round;
            let sn = 100 + 2 * round;
            // CmdSN sn+1 first: held until sn arrives.
            log.push(f(
                &mut c,
                Header::ScsiCommand(cmd(itt + 100, sn + 1, true, false, 512, true)),
                vec![],
            ));
            let mut w = cmd(itt, sn, false, true, 12288, true);
            w.cdb[0] = 0x2a;
            let evs = f(&mut c, Header::ScsiCommand(w), vec![round as u8 + 1; 4096]);
            let ttt = sent(&evs)
                .iter()
                .find_map(|p| match &p.header {
                    Header::R2t(r) => Some(r.ttt),
                    _ => None,
                })
                .expect("an R2T for the rest");
            log.push(evs.clone());
            let evs = f(
                &mut c,
                Header::DataOut(DataOut {
                    final_: true,
                    lun: 0,
                    itt,
                    ttt,
                    exp_stat_sn: 50,
                    data_sn: 0,
                    buffer_offset: 4096,
                }),
                vec![0xee; 8192],
            );
            for e in &evs {
                if let Event::Execute(x) = e {
                    if x.itt == itt {
                        assert_eq!(&x.data_out[..4096], &[round as u8 + 1; 4096][..]);
                        assert_eq!(&x.data_out[4096..], &[0xee; 8192][..]);
                        c.complete(itt, 0, None, &[], 0);
                        c.recycle(x.data_out.clone());
                    } else {
                        c.complete(x.itt, 0, None, &[0u8; 512], 0);
                    }
                }
            }
            log.push(evs);
            log.push(drain(&mut c));
        }
        (log, c.spare_bufs.len())
    };
    let (owned, _) = run(false);
    let (parts, spare) = run(true);
    assert_eq!(owned, parts);
    // Every round took the buffer the previous one gave back.
    assert_eq!(spare, 1);
}

fn statuses(evs: &[Event]) -> Vec<(u32, u8)> {
    sent(evs)
        .iter()
        .filter_map(|p| match &p.header {
            Header::ScsiResponse(r) => Some((r.itt, r.status)),
            _ => None,
        })
        .collect()
}

fn rejects(evs: &[Event]) -> Vec<u8> {
    sent(evs)
        .iter()
        .filter_map(|p| match &p.header {
            Header::Reject(r) => Some(r.reason),
            _ => None,
        })
        .collect()
}

fn executed(evs: &[Event]) -> Vec<u32> {
    evs.iter()
        .filter_map(|e| match e {
            Event::Execute(c) => Some(c.itt),
            _ => None,
        })
        .collect()
}

#[test]
fn immediate_commands_count_against_the_queue_depth() {
    // queue_depth 4: four commands in hand, whether immediate or not, fill the session.
    let mut c = conn_with(params());
    let imm = |itt| {
        let mut h = cmd(itt, 100, true, false, 4096, true);
        h.immediate = true;
        Header::ScsiCommand(h)
    };
    let evs = feed(
        &mut c,
        Header::ScsiCommand(cmd(1, 100, true, false, 4096, true)),
        vec![],
    );
    assert_eq!(executed(&evs), vec![1]);
    for itt in 2..=4 {
        assert_eq!(executed(&feed(&mut c, imm(itt), vec![])), vec![itt]);
    }
    assert_eq!(c.active_tasks(), 4);
    // One more immediate command: rejected with "too many immediate commands", not queued.
    for itt in 5..50 {
        let evs = feed(&mut c, imm(itt), vec![]);
        assert!(executed(&evs).is_empty(), "{evs:?}");
        assert_eq!(rejects(&evs), vec![reject::IMMEDIATE_COMMAND_REJECT]);
    }
    assert_eq!(c.active_tasks(), 4);
    // The same through the borrowed-data path.
    let mut h = cmd(60, 101, false, true, 512, true);
    h.immediate = true;
    let evs = feed_parts(&mut c, Header::ScsiCommand(h), &[9u8; 512]);
    assert_eq!(rejects(&evs), vec![reject::IMMEDIATE_COMMAND_REJECT]);
    assert_eq!(c.active_tasks(), 4);
    // A completion frees a slot for the next one.
    c.complete(2, 0, None, &[0u8; 4096], 0);
    drain(&mut c);
    assert_eq!(executed(&feed(&mut c, imm(7), vec![])), vec![7]);
}

#[test]
fn the_window_never_shrinks_below_what_was_advertised() {
    // Immediate commands hold slots, yet a command inside the MaxCmdSN already sent is taken.
    let mut c = conn_with(params());
    let window_end = 100 + 4 - 1;
    for itt in 1..=3 {
        let mut h = cmd(itt, 100, true, false, 512, true);
        h.immediate = true;
        feed(&mut c, Header::ScsiCommand(h), vec![]);
    }
    let evs = feed(
        &mut c,
        Header::ScsiCommand(cmd(10, 100, true, false, 512, true)),
        vec![],
    );
    assert_eq!(executed(&evs), vec![10]);
    c.complete(10, 0, None, &[0u8; 512], 0);
    let evs = drain(&mut c);
    let Header::DataIn(d) = &sent(&evs)[0].header else {
        panic!("{evs:?}")
    };
    assert!(sn_le(window_end, d.sns.max_cmd_sn), "{:?}", d.sns);
}

#[test]
fn write_buffers_grow_per_burst_not_at_command_arrival() {
    let mut c = conn_with(params());
    // 1 MiB write, 1000 bytes immediate, whose solicited data never comes.
    let evs = feed(
        &mut c,
        Header::ScsiCommand(cmd(9, 100, false, true, 1 << 20, false)),
        vec![1u8; 1000],
    );
    assert!(executed(&evs).is_empty());
    // Immediate data plus the first burst (8192), not the 1 MiB.
    assert!(
        c.tasks[&9].buf.capacity() <= 8192,
        "{}",
        c.tasks[&9].buf.capacity()
    );
    let r2t = sent(&evs)
        .iter()
        .find_map(|p| match &p.header {
            Header::R2t(r) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(r2t.buffer_offset, 8192);
    // Solicited data grows it as it comes, in place.
    let d = DataOut {
        final_: false,
        lun: 0,
        itt: 9,
        ttt: r2t.ttt,
        exp_stat_sn: 0,
        data_sn: 0,
        buffer_offset: 8192,
    };
    feed(&mut c, Header::DataOut(d), vec![5u8; 8192]);
    let t = &c.tasks[&9];
    assert_eq!(t.buf.len(), 16384);
    assert!(t.buf.capacity() <= 2 * 16384);
    assert_eq!(&t.buf[8192..], &[5u8; 8192][..]);
}

fn small_limit(bytes: usize, budget: Option<MemBudget>) -> Connection {
    let limits = TargetLimits {
        queue_depth: 64,
        ..TargetLimits::default()
    };
    let config = ConnConfig {
        max_buffer_bytes: bytes,
        budget,
        ..ConnConfig::default()
    };
    Connection::new(params(), limits, config)
}

#[test]
fn commands_past_the_connection_limit_answer_task_set_full_and_hold_nothing() {
    let mut c = small_limit(100_000, None);
    // Writes whose data never comes: the first two fit 100 000 bytes, the rest do not.
    let mut sn = 100;
    let mut full = 0;
    for itt in 1..=20u32 {
        let mut h = cmd(itt, sn, false, true, 48 << 10, false);
        h.immediate = itt % 2 == 0;
        if !h.immediate {
            sn += 1;
        }
        let evs = feed(&mut c, Header::ScsiCommand(h), vec![]);
        if let Some((i, st)) = statuses(&evs).first() {
            assert_eq!((*i, *st), (itt, TASK_SET_FULL));
            full += 1;
        }
    }
    assert_eq!(c.active_tasks(), 2);
    assert_eq!(full, 18);
    assert!(c.buffered_bytes() <= 100_000);
    // A READ whose CDB asks for more than the EDTL is reserved at the CDB's length (at 512
    // bytes a block; the caller raises it for larger blocks); it
    // brought no data, so it waits for memory instead (costing its record only).
    let mut r = cmd(30, sn, true, false, 512, true);
    r.cdb = vec![0x28, 0, 0, 0, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0];
    let evs = feed(&mut c, Header::ScsiCommand(r), vec![]);
    assert!(
        statuses(&evs).is_empty() && executed(&evs).is_empty(),
        "{evs:?}"
    );
    assert!(c.waiting_for_memory());
    assert!(c.buffered_bytes() <= 100_000);
    // Output the caller has not written counts too; the waiting command starts once it is
    // written.
    let mut c = small_limit(100_000, None);
    c.set_outbound(98_000);
    let evs = feed(
        &mut c,
        Header::ScsiCommand(cmd(1, 100, true, false, 16384, true)),
        vec![],
    );
    assert!(executed(&evs).is_empty(), "{evs:?}");
    // A later command with data does not overtake it: TASK SET FULL.
    let evs = feed(
        &mut c,
        Header::ScsiCommand(cmd(2, 101, false, true, 512, true)),
        vec![1u8; 512],
    );
    assert_eq!(statuses(&evs), vec![(2, TASK_SET_FULL)]);
    c.set_outbound(0);
    assert_eq!(executed(&drain(&mut c)), vec![1]);
    assert!(!c.waiting_for_memory());
    // One command larger than the limit still runs on an otherwise empty connection.
    let mut c = small_limit(100_000, None);
    let evs = feed(
        &mut c,
        Header::ScsiCommand(cmd(1, 100, false, true, 1 << 20, false)),
        vec![],
    );
    assert!(statuses(&evs).is_empty(), "{evs:?}");
    assert_eq!(c.active_tasks(), 1);
}

#[test]
fn the_daemon_budget_is_granted_in_chunks_and_given_back_when_idle() {
    let budget = MemBudget::new(4 * BUDGET_CHUNK);
    let mut a = small_limit(16 << 20, Some(budget.clone()));
    let mut b = small_limit(16 << 20, Some(budget.clone()));
    assert_eq!(budget.granted(), 2 * BUDGET_CHUNK);
    // READ(10) of 1200 blocks: 600 KiB at 512 bytes a block.
    let read = |itt, sn| {
        let mut c = cmd(itt, sn, true, false, 600 << 10, true);
        c.cdb[7..9].copy_from_slice(&1200u16.to_be_bytes());
        Header::ScsiCommand(c)
    };
    assert_eq!(executed(&feed(&mut a, read(1, 100), vec![])), vec![1]);
    assert_eq!(budget.granted(), 4 * BUDGET_CHUNK);
    // Nothing left for b: its read waits (a write with data would get TASK SET FULL).
    let evs = feed(&mut b, read(1, 100), vec![]);
    assert!(executed(&evs).is_empty(), "{evs:?}");
    assert!(b.waiting_for_memory());
    let mut w = cmd(2, 101, false, true, 4096, true);
    w.cdb = vec![0x2A, 0, 0, 0, 0, 0, 0, 0, 8, 0];
    let evs = feed(&mut b, Header::ScsiCommand(w), vec![2u8; 4096]);
    assert_eq!(statuses(&evs), vec![(2, TASK_SET_FULL)]);
    b.retry_waiting();
    assert!(b.waiting_for_memory(), "still no budget");
    // A command larger than the whole budget could wait forever: TASK SET FULL at once.
    let mut big = cmd(3, 102, true, false, 1 << 20, true);
    big.cdb[7..9].copy_from_slice(&2048u16.to_be_bytes());
    let evs = feed(&mut b, Header::ScsiCommand(big), vec![]);
    assert_eq!(statuses(&evs), vec![(3, TASK_SET_FULL)]);
    assert!(
        !budget.has_room(BUDGET_CHUNK),
        "a login now would be refused"
    );
    // a completes; once its output is written it is idle and gives back all but a chunk.
    a.complete(1, 0, None, &vec![0u8; 600 << 10], 0);
    drain(&mut a);
    a.set_outbound(0);
    assert_eq!(budget.granted(), 2 * BUDGET_CHUNK);
    b.retry_waiting();
    assert_eq!(executed(&drain(&mut b)), vec![1]);
    b.complete(1, 0, None, &vec![0u8; 600 << 10], 0);
    drain(&mut b);
    b.set_outbound(0);
    assert_eq!(budget.granted(), 2 * BUDGET_CHUNK);
    drop(a);
    drop(b);
    assert_eq!(budget.granted(), 0);
}

#[test]
fn held_commands_are_counted() {
    let mut c = conn_with(params());
    // CmdSN 101 arrives before 100: held, with its data.
    let mut h = cmd(2, 101, false, true, 4096, true);
    h.immediate = false;
    c.handle_parts(
        Header::ScsiCommand(h),
        &[3u8; 4096],
        Instant::now(),
        &mut Env,
    );
    drain(&mut c);
    assert_eq!(c.buffered_bytes(), 4096 + 48);
    let evs = feed(
        &mut c,
        Header::ScsiCommand(cmd(1, 100, true, false, 512, true)),
        vec![],
    );
    assert_eq!(executed(&evs), vec![1, 2]);
    // Now reserved by the tasks: the read's 512 (one block, at 512 bytes until the caller
    // knows better) and the write's 4096.
    assert_eq!(c.buffered_bytes(), 512 + 4096);
    assert!(c.reserve_at_least(1, 4096));
    assert_eq!(c.buffered_bytes(), 4096 + 4096);
}

#[test]
fn commands_held_past_the_limit_keep_no_data_and_answer_task_set_full() {
    let mut c = small_limit(64 << 10, None);
    // CmdSNs 101..=110 arrive before 100, each with 8 KiB of immediate data: the first ones
    // are kept whole, the rest only as headers.
    for k in 1..=10u32 {
        let h = cmd(k, 100 + k, false, true, 8192, true);
        c.handle_parts(
            Header::ScsiCommand(h),
            &[k as u8; 8192],
            Instant::now(),
            &mut Env,
        );
    }
    assert!(c.buffered_bytes() <= 64 << 10, "{}", c.buffered_bytes());
    drain(&mut c);
    let evs = feed(
        &mut c,
        Header::ScsiCommand(cmd(100, 100, true, false, 512, true)),
        vec![],
    );
    let ran = executed(&evs);
    let full: Vec<u32> = statuses(&evs).iter().map(|(i, _)| *i).collect();
    assert_eq!(ran.len() + full.len(), 11, "{evs:?}");
    assert!(ran.contains(&100) && ran.contains(&1));
    assert!(statuses(&evs).iter().all(|(_, st)| *st == TASK_SET_FULL));
    assert!(!full.is_empty());
    // Every command kept its data or none of it.
    for e in &evs {
        if let Event::Execute(x) = e {
            if x.itt != 100 {
                assert_eq!(x.data_out, vec![x.itt as u8; 8192]);
            }
        }
    }
}

#[test]
fn read_reservations_follow_the_cdb_not_an_inflated_edtl() {
    // READ(10) of 8 blocks: 4 KiB at 512 bytes a block, 32 KiB at 4096.
    let mut r = cmd(1, 100, true, false, 4096, true);
    r.cdb[7..9].copy_from_slice(&8u16.to_be_bytes());
    assert_eq!(read_reserve(&r.cdb, 4096), Some(4096));
    assert_eq!(read_reserve(&r.cdb, 32768), Some(32768));
    // An EDTL of 4 GiB brings no more than the CDB can.
    assert_eq!(read_reserve(&r.cdb, u32::MAX), Some(32768));
    assert_eq!(read_reserve(&r.cdb, 1), Some(4096));
    // READ(16) of 2^32-1 blocks: capped at the largest transfer.
    let mut c16 = vec![0x88u8; 1];
    c16.resize(16, 0);
    c16[10..14].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(read_reserve(&c16, 512), Some(32 << 20));
    assert_eq!(read_reserve(&[0x12, 0, 0, 0, 255, 0], 255), None);
    let mut c = conn_with(params());
    c.handle_pdu(
        Pdu::new(Header::ScsiCommand(r), vec![]),
        Instant::now(),
        &mut Env,
    );
    assert_eq!(c.buffered_bytes(), 4096);
}

#[test]
fn a_write_whose_data_never_comes_ends_the_connection_after_the_nop_timeout() {
    let mut c = conn_with(params());
    let t0 = Instant::now();
    c.handle_pdu(
        Pdu::new(
            Header::ScsiCommand(cmd(9, 100, false, true, 1 << 20, true)),
            vec![],
        ),
        t0,
        &mut Env,
    );
    drain(&mut c);
    let timeout = ConnConfig::default().nop_timeout;
    c.poll_timers(t0 + timeout / 2);
    assert!(!drain(&mut c).iter().any(|e| matches!(e, Event::Close(_))));
    c.poll_timers(t0 + timeout);
    let evs = drain(&mut c);
    assert!(
        evs.iter()
            .any(|e| matches!(e, Event::Close(CloseReason::ProtocolError(_)))),
        "{evs:?}"
    );
}

#[test]
fn a_login_hold_is_taken_at_once_so_two_logins_cannot_share_the_last_chunk() {
    let budget = MemBudget::new(2 * BUDGET_CHUNK);
    let first = budget.hold(BUDGET_CHUNK).expect("room for one");
    let second = budget.hold(BUDGET_CHUNK).expect("room for two");
    assert!(
        budget.hold(BUDGET_CHUNK).is_none(),
        "a third login admitted on room the first two already took"
    );
    // The first connection's grant exists (one chunk, taken even past the limit), then its
    // login hold goes back: the count never drops below what is in use.
    let conn = small_limit(16 << 20, Some(budget.clone()));
    assert_eq!(budget.granted(), 3 * BUDGET_CHUNK);
    drop(first);
    assert_eq!(budget.granted(), 2 * BUDGET_CHUNK);
    assert!(budget.hold(BUDGET_CHUNK).is_none(), "still full");
    drop(second);
    let third = budget.hold(BUDGET_CHUNK).expect("a place was freed");
    drop((conn, third));
    assert_eq!(budget.granted(), 0);
}
