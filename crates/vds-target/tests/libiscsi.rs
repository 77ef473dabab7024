//! The real libiscsi tools against an in-process data path: discovery, INQUIRY, READ CAPACITY
//! (16), CHAP through URL credentials, and I/O through the in-repo initiator.

mod common;

use std::time::Duration;

use common::{run_tool, text, Harness, TARGET};
use vds_dataplane::ChapConfig;
use vds_target::Limits;
use vds_testkit::initiator::{Initiator, LoginOptions};

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn iscsi_ls_discovers_the_target() {
    let h = Harness::start(
        &["127.0.33.1:43030"],
        ChapConfig::default(),
        Limits::default(),
    );
    let url = format!("iscsi://{}/", h.addr(0));
    let o = run_tool(&["iscsi-ls", &url], LIMIT);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains(&format!("Target:{TARGET} Portal:127.0.33.1:43030,1")),
        "{out}"
    );
}

#[test]
fn iscsi_inq_and_readcapacity16() {
    let h = Harness::start(
        &["127.0.33.1:43031"],
        ChapConfig::default(),
        Limits::default(),
    );
    let o = run_tool(&["iscsi-inq", &h.url(0, 0)], LIMIT);
    assert!(o.status.success(), "{}", text(&o));
    let o = run_tool(&["iscsi-readcapacity16", &h.url(0, 0)], LIMIT);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    // 64 MiB of 512-byte blocks.
    assert!(out.contains("131071") || out.contains("131072"), "{out}");
    let o = run_tool(
        &["iscsi-ls", "-s", &format!("iscsi://{}/", h.addr(0))],
        LIMIT,
    );
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn chap_through_url_credentials() {
    let chap = ChapConfig {
        default_secret: Some(b"url-secret-123".to_vec()),
        ..ChapConfig::default()
    };
    let h = Harness::start(&["127.0.33.1:43032"], chap, Limits::default());
    let good = format!("iscsi://anyone%url-secret-123@{}/{}/0", h.addr(0), TARGET);
    let o = run_tool(&["iscsi-inq", &good], LIMIT);
    assert!(o.status.success(), "{}", text(&o));
    let bad = format!("iscsi://anyone%url-secret-124@{}/{}/0", h.addr(0), TARGET);
    let o = run_tool(&["iscsi-inq", &bad], LIMIT);
    assert!(!o.status.success());
    assert!(text(&o).contains("Authentication failure"), "{}", text(&o));
    let none = h.url(0, 0);
    let o = run_tool(&["iscsi-inq", &none], LIMIT);
    assert!(!o.status.success());
}

#[test]
fn write_then_read_back_through_r2t_and_immediate_data() {
    let h = Harness::start(
        &["127.0.33.1:43033"],
        ChapConfig::default(),
        Limits::default(),
    );
    let mut s = Initiator::connect(
        h.addr(0),
        &LoginOptions::normal("iqn.2026-11.test:rw", TARGET),
    )
    .unwrap();
    // 1 MiB write (immediate + unsolicited + several R2Ts) at LBA 8, then read it back.
    let data: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 253) as u8).collect();
    let blocks = (data.len() / 512) as u16;
    let mut w = vec![0x2a, 0, 0, 0, 0, 8, 0, 0, 0, 0];
    w[7..9].copy_from_slice(&blocks.to_be_bytes());
    let r = s.command(0, &w, &data, 0).unwrap();
    assert_eq!(r.status, 0, "{r:?}");
    let mut rd = w.clone();
    rd[0] = 0x28;
    let r = s.command(0, &rd, &[], data.len() as u32).unwrap();
    assert_eq!(r.status, 0);
    assert!(r.data == data, "read back differs");
    // Underflow residual: ask for more than the CDB moves.
    let mut one = rd.clone();
    one[7..9].copy_from_slice(&1u16.to_be_bytes());
    let r = s.command(0, &one, &[], 4096).unwrap();
    assert_eq!((r.status, r.underflow, r.residual), (0, true, 3584));
    s.logout().unwrap();
}

#[test]
fn logical_unit_reset_raises_a_unit_attention_on_every_nexus() {
    let h = Harness::start(
        &["127.0.33.1:43034"],
        ChapConfig::default(),
        Limits::default(),
    );
    let mut a = Initiator::connect(
        h.addr(0),
        &LoginOptions::normal("iqn.2026-11.test:a", TARGET),
    )
    .unwrap();
    let mut b = Initiator::connect(
        h.addr(0),
        &LoginOptions::normal("iqn.2026-11.test:b", TARGET),
    )
    .unwrap();
    let tur = [0u8; 6];
    // Clear the power-on unit attentions.
    for s in [&mut a, &mut b] {
        for _ in 0..4 {
            if s.command(0, &tur, &[], 0).unwrap().status == 0 {
                break;
            }
        }
    }
    let resp = a
        .task_mgmt(vds_iscsi::codes::tmf::LOGICAL_UNIT_RESET, 0, 0, 0)
        .unwrap();
    assert_eq!(resp, 0);
    let r = b.command(0, &tur, &[], 0).unwrap();
    assert_eq!(r.status, 2, "{r:?}");
    assert_eq!(
        (r.sense[2] & 0xf, r.sense[12], r.sense[13]),
        (6, 0x29, 0x03)
    );
    let r = a.command(0, &tur, &[], 0).unwrap();
    assert_eq!((r.status, r.sense[12]), (2, 0x29));
    assert_eq!(a.command(0, &tur, &[], 0).unwrap().status, 0);
}

#[test]
fn digests_ipv6_and_iscsi_perf() {
    let h = Harness::start(
        &["127.0.33.1:43035"],
        ChapConfig::default(),
        Limits::default(),
    );
    let url = format!("{}?header_digest=crc32c&data_digest=crc32c", h.url(0, 0));
    let o = run_tool(&["iscsi-inq", &url], LIMIT);
    assert!(o.status.success(), "{}", text(&o));
    let o = run_tool(&["iscsi-perf", "-t", "2", "-m", "16", &h.url(0, 0)], LIMIT);
    let out = text(&o);
    assert!(o.status.success() && out.contains("iops average"), "{out}");
    // IPv6 loopback, when the machine has it: SendTargets brackets the address.
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        let h6 = Harness::start(&["[::1]:43036"], ChapConfig::default(), Limits::default());
        let o = run_tool(&["iscsi-ls", "iscsi://[::1]:43036/"], LIMIT);
        let out = text(&o);
        assert!(out.contains("Portal:[::1]:43036,1"), "{out}");
        drop(h6);
    }
}
