//! Bounded memory per connection (BEHAVIOUR §13) through real sockets: a peer that asks for
//! Data-In and never reads it stops being read once its send queue holds
//! `max_buffer_bytes`, is dropped after `nop_timeout` without progress, and gives its share of
//! the daemon-wide budget back; another session serves all along.
//! Address: 127.0.33.1:43077.

mod common;

use std::time::{Duration, Instant};

use common::{Harness, TARGET};
use vds_dataplane::ChapConfig;
use vds_iscsi::conn::{ConnConfig, BUDGET_CHUNK};
use vds_iscsi::pdu::{Header, Pdu, ScsiCommand, TaskAttr};
use vds_target::Limits;
use vds_testkit::initiator::{Initiator, LoginOptions};

fn read16(lba: u64, blocks: u32) -> Vec<u8> {
    let mut c = vec![0u8; 16];
    c[0] = 0x88;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&blocks.to_be_bytes());
    c
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

#[test]
fn a_peer_that_reads_nothing_is_bounded_then_dropped_and_its_budget_returns() {
    let limits = Limits {
        connection: ConnConfig {
            nop_interval: Some(Duration::from_millis(300)),
            nop_timeout: Duration::from_millis(800),
            max_buffer_bytes: 1 << 20,
            ..ConnConfig::default()
        },
        max_buffer_bytes: 8 << 20,
        ..Limits::default()
    };
    let h = Harness::start(&["127.0.33.1:43077"], ChapConfig::default(), limits);
    let portal = h.portals[0].id;
    let mut good = Initiator::connect(
        h.addr(0),
        &LoginOptions::normal("iqn.2026-12.test.memory:good", TARGET),
    )
    .expect("login");
    let mut bad = Initiator::connect(
        h.addr(0),
        &LoginOptions::normal("iqn.2026-12.test.memory:bad", TARGET),
    )
    .expect("login");
    // Clear the power-on unit attention of both nexuses.
    for i in [&mut good, &mut bad] {
        for _ in 0..4 {
            if i.command(0, &[0; 6], &[], 0).expect("TUR").status == 0 {
                break;
            }
        }
    }
    assert_eq!(h.dp.buffer_bytes_granted(), 2 * BUDGET_CHUNK);
    // 64 immediate 256 KiB READs (16 MiB), never read.
    for k in 0..64u32 {
        let itt = bad.next_itt();
        let p = Pdu::new(
            Header::ScsiCommand(ScsiCommand {
                immediate: true,
                final_: true,
                read: true,
                write: false,
                attr: TaskAttr::Simple,
                lun: 0,
                itt,
                edtl: 256 << 10,
                cmd_sn: bad.cmd_sn(),
                exp_stat_sn: 0,
                cdb: read16(u64::from(k) * 512, 512),
                bidi_read_len: None,
            }),
            Vec::new(),
        );
        bad.send(&p).expect("the PDUs fit the socket buffers");
    }
    // The good session serves all along (its commands keep it from being pinged), the
    // daemon holds at most the budget, and the silent peer is dropped (NOP-In unanswered or
    // send queue stalled) with its grant given back.
    let t0 = Instant::now();
    loop {
        let r = good.command(0, &read16(0, 8), &[], 4096).expect("read");
        assert_eq!(r.status, 0);
        let granted = h.dp.buffer_bytes_granted();
        assert!(granted <= 8 << 20, "granted {granted}");
        if h.dp.connections(portal) == 1 && granted == BUDGET_CHUNK {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the peer that reads nothing was not dropped ({} connections, {granted} granted)",
            h.dp.connections(portal)
        );
    }
    let _ = good.logout();
    assert!(wait_until(Duration::from_secs(5), || h
        .dp
        .buffer_bytes_granted()
        == 0));
}
