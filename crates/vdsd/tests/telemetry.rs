//! Data-path telemetry end to end (issue 16, docs/INTERFACE.md "Metrics"): known I/O through
//! the in-repo initiator, a refused login, a CHAP failure, a malformed PDU, task management
//! functions and unit attentions, then the exact deltas of the `/metrics` series; a deleted
//! LUN's series leave the scrape; and `promtool check metrics` accepts a real scrape (Debian
//! package `prometheus`; its absence is a failure, not a skip).
//! Addresses: API 127.0.22.1:46100, portal 127.0.22.2:46000.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use common::*;
use serde_json::json;
use vds_iscsi::pdu::Header;
use vds_testkit::{Initiator, LoginOptions};

/// Every sample of a scrape, by series (name and labels as written).
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("sample line");
            (
                series.to_string(),
                value.parse().unwrap_or_else(|_| panic!("value of {l}")),
            )
        })
        .collect()
}

fn scrape(d: &Daemon) -> String {
    let (status, body) = d.call("GET", "/metrics", None);
    assert_eq!(status, 200, "{body}");
    body.as_str().expect("a text scrape").to_string()
}

/// The value of `series` (0 when absent, as a counter not yet written).
fn v(m: &BTreeMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}

/// Names of the unit attentions the target reports (the test's own table: ASC/ASCQ by SPC).
fn ua_name(asc: u8, ascq: u8) -> &'static str {
    match (asc, ascq) {
        (0x29, 0x00) => "power_on_reset",
        (0x29, 0x03) => "bus_device_reset_function_occurred",
        (0x29, 0x07) => "i_t_nexus_loss_occurred",
        (0x3F, 0x0E) => "reported_luns_data_has_changed",
        (0x2A, 0x09) => "capacity_data_has_changed",
        _ => "other",
    }
}

/// TEST UNIT READY until GOOD; answers how many were sent and the unit attentions seen.
fn clear_uas(i: &mut Initiator, lun: u64, seen: &mut BTreeMap<&'static str, u64>) -> u64 {
    for n in 1..=10 {
        let r = i.command(lun, &[0u8; 6], &[], 0).expect("TUR");
        if r.status == 0 {
            return n;
        }
        let (key, asc, ascq) = sense_of(&r).expect("sense");
        assert_eq!(key, 6, "TUR answered {:02x?}", r.sense);
        *seen.entry(ua_name(asc, ascq)).or_insert(0) += 1;
    }
    panic!("unit attentions do not end");
}

fn read10(lba: u32, blocks: u16) -> Vec<u8> {
    let l = lba.to_be_bytes();
    let b = blocks.to_be_bytes();
    vec![0x28, 0, l[0], l[1], l[2], l[3], 0, b[0], b[1], 0]
}

fn write10(lba: u32, blocks: u16) -> Vec<u8> {
    let mut c = read10(lba, blocks);
    c[0] = 0x2A;
    c
}

fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("promtool cannot run ({e}): install the Debian package `prometheus`")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn data_path_counters_move_by_exactly_what_was_done() {
    let api: SocketAddr = "127.0.22.1:46100".parse().unwrap();
    let portal: SocketAddr = "127.0.22.2:46000".parse().unwrap();
    let d = Daemon::start_at(220, api, vec![portal], Opts::default());
    let tid = d.target();
    let pid = d.portal_id(portal);
    // A name that needs escaping in a label value.
    let lun = d.create_lun("tele \"one\"\\", 1 << 20);
    let lid = lun["id"].as_str().unwrap().to_string();
    let n = lun["lun_numbers"][&tid].as_u64().expect("LUN number");
    let lab = format!("lun=\"{lid}\",name=\"tele \\\"one\\\"\\\\\"");

    let mut i = d.login(0, 1);
    let before = samples(&scrape(&d));
    assert_eq!(
        v(
            &before,
            &format!("vds_target_sessions{{target=\"{tid}\",portal=\"{pid}\"}}")
        ),
        1.0
    );

    // Known I/O: unit attentions cleared, 4 reads and 2 writes of 4 KiB, 1 flush, 1 read
    // past the end (ILLEGAL REQUEST).
    let mut uas = BTreeMap::new();
    let mut turs = clear_uas(&mut i, n, &mut uas);
    for k in 0..4 {
        let r = i.command(n, &read10(k * 8, 8), &[], 4096).unwrap();
        assert_eq!((r.status, r.data.len()), (0, 4096));
    }
    for k in 0..2 {
        let r = i.command(n, &write10(k * 8, 8), &[0xA5; 4096], 0).unwrap();
        assert_eq!(r.status, 0);
    }
    let r = i
        .command(n, &[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[], 0)
        .unwrap();
    assert_eq!(r.status, 0);
    let r = i.command(n, &read10(1 << 20, 1), &[], 512).unwrap();
    assert_eq!(sense_of(&r).map(|s| s.0), Some(5), "{:02x?}", r.sense);

    // Task management: ABORT TASK of no task, LOGICAL UNIT RESET (which raises a unit
    // attention on the next command).
    let rtt = i.next_itt();
    assert_eq!(i.task_mgmt(1, n, rtt, i.cmd_sn()).unwrap(), 1);
    assert_eq!(i.task_mgmt(5, n, 0xffff_ffff, 0).unwrap(), 0);
    turs += clear_uas(&mut i, n, &mut uas);
    assert!(
        uas.contains_key("bus_device_reset_function_occurred"),
        "{uas:?}"
    );

    // A malformed PDU on a second session: an unknown opcode is rejected.
    let mut j = d.login(0, 2);
    let mut bhs = [0u8; 48];
    bhs[0] = 0x1c;
    bhs[16..20].copy_from_slice(&0x1234u32.to_be_bytes());
    j.send_bytes(&bhs).unwrap();
    let rej = j.recv().unwrap();
    let Header::Reject(rj) = &rej.header else {
        panic!("not a Reject: {:?}", rej.header);
    };
    assert_eq!(rj.reason, 0x05);

    // A login to a target that does not exist, then a CHAP failure.
    let bad = LoginOptions::normal(&initiator_name(220), "iqn.2026-11.local.vds:nowhere");
    assert!(Initiator::connect(portal, &bad).is_err());
    let (st, body) = d.call(
        "PUT",
        &format!("/v1/targets/{tid}/shared-secret"),
        Some(&json!({"secret": "telemetry-sec-01"})),
    );
    assert!((200..300).contains(&st), "{st} {body}");
    let mut wrong = LoginOptions::normal(&initiator_name(220), TARGET);
    wrong.isid[5] = 3;
    wrong.chap = Some((initiator_name(220), b"not-the-secret-1".to_vec()));
    assert!(Initiator::connect(portal, &wrong).is_err());

    let text = scrape(&d);
    let after = samples(&text);
    let delta = |s: &str| v(&after, s) - v(&before, s);
    let lunc = |op: &str| format!("vds_lun_commands_total{{{lab},op=\"{op}\"}}");
    assert_eq!(delta(&lunc("read")), 5.0);
    assert_eq!(delta(&lunc("write")), 2.0);
    assert_eq!(delta(&lunc("flush")), 1.0);
    assert_eq!(delta(&lunc("other")), turs as f64);
    assert_eq!(
        delta(&format!("vds_lun_read_bytes_total{{{lab}}}")),
        16384.0
    );
    assert_eq!(
        delta(&format!("vds_lun_written_bytes_total{{{lab}}}")),
        8192.0
    );
    let ua_total: u64 = uas.values().sum();
    assert_eq!(
        delta(&format!(
            "vds_lun_errors_total{{{lab},sense_key=\"illegal_request\"}}"
        )),
        1.0
    );
    assert_eq!(
        delta(&format!(
            "vds_lun_errors_total{{{lab},sense_key=\"unit_attention\"}}"
        )),
        ua_total as f64
    );
    for (name, k) in &uas {
        assert_eq!(
            delta(&format!(
                "vds_unit_attentions_total{{condition=\"{name}\"}}"
            )),
            *k as f64,
            "{name}"
        );
    }
    assert_eq!(
        v(&after, &format!("vds_lun_in_flight_commands{{{lab}}}")),
        0.0
    );
    let h =
        |op: &str, s: &str| format!("vds_lun_command_duration_seconds_{s}{{{lab},op=\"{op}\"}}");
    assert_eq!(delta(&h("read", "count")), 5.0);
    assert_eq!(delta(&h("write", "count")), 2.0);
    assert_eq!(
        delta(&format!(
            "vds_lun_command_duration_seconds_bucket{{{lab},op=\"read\",le=\"+Inf\"}}"
        )),
        5.0
    );
    assert!(delta(&h("read", "sum")) > 0.0);
    assert_eq!(
        delta(&format!("vds_lun_flush_duration_seconds_count{{{lab}}}")),
        1.0
    );
    assert_eq!(
        delta(
            "vds_task_management_total{function=\"abort_task\",response=\"task_does_not_exist\"}"
        ),
        1.0
    );
    assert_eq!(
        delta(
            "vds_task_management_total{function=\"logical_unit_reset\",response=\"function_complete\"}"
        ),
        1.0
    );
    assert_eq!(
        delta("vds_pdus_rejected_total{reason=\"command_not_supported\"}"),
        1.0
    );
    let login = |t: &str, result: &str, status: &str| {
        format!(
            "vds_logins_total{{target=\"{t}\",portal=\"{pid}\",result=\"{result}\",status=\"{status}\"}}"
        )
    };
    assert_eq!(delta(&login(&tid, "accepted", "success")), 1.0);
    assert_eq!(delta(&login("", "refused", "target_not_found")), 1.0);
    assert_eq!(
        delta(&login(&tid, "refused", "authentication_failure")),
        1.0
    );
    assert_eq!(
        delta(&format!(
            "vds_chap_failures_total{{target=\"{tid}\",portal=\"{pid}\"}}"
        )),
        1.0
    );
    assert_eq!(
        v(
            &after,
            &format!("vds_target_sessions{{target=\"{tid}\",portal=\"{pid}\"}}")
        ),
        2.0
    );
    assert_eq!(
        v(
            &after,
            &format!("vds_portal_connections{{portal=\"{pid}\"}}")
        ),
        2.0
    );
    promtool_check(&text);

    // The LUN is deleted: its series go away.
    drop(i);
    drop(j);
    let (st, body) = d.call("DELETE", &format!("/v1/luns/{lid}?wait=true"), None);
    assert!(st == 200 || st == 204, "{st} {body}");
    let gone = scrape(&d);
    assert!(!gone.contains(&lid), "a deleted LUN's series remain");
    promtool_check(&gone);
}
