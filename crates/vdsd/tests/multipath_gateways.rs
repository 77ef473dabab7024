//! Active/active LUNs across gateways (docs/SCALEOUT.md "Active/active LUNs"), against a real
//! one-node Ceph (monitor on 127.0.0.1:46842) and two gateways on 127.0.15.1-2: a LUN created
//! with the round-robin load-balance policy has no owner; both gateways' port groups are
//! Active/Optimized for it; its policy cannot move to an owned one; and libiscsi's multipath
//! tests (`iscsi-test-cu --test=SCSI.MultipathIO`: writes through one gateway read back
//! through the other, a LUN reset, COMPARE AND WRITE from both) pass across the two gateways.
//! Missing Ceph or libiscsi fails the test.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::ceph::Ceph;
use common::*;
use serde_json::json;
use vds_testkit::Initiator;

/// Gateway `n` on 127.0.15.n: API port 46860, portal 3260.
fn gateway(ceph: &Ceph, n: u8, name: &str) -> Daemon {
    ceph.gateway(230 + u16::from(n), [127, 0, 15, n], 46860, name)
}

/// REPORT TARGET PORT GROUPS through `d`'s portal: the (group, state) pairs.
fn groups(d: &Daemon, lun: u64) -> Vec<(u16, u8)> {
    let mut ini =
        Initiator::connect(d.portals[0], &login_opts("iqn.2026-11.local.test:mp", 1)).unwrap();
    let mut r = None;
    for _ in 0..6 {
        let x = ini
            .command(lun, &[0xA3, 0x0A, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0], &[], 1024)
            .expect("REPORT TARGET PORT GROUPS");
        if x.status == 0x02 && sense_of(&x).is_some_and(|(k, _, _)| k == 0x06) {
            continue;
        }
        r = Some(x);
        break;
    }
    let r = r.expect("past the unit attentions");
    assert_good(&r, "REPORT TARGET PORT GROUPS");
    ini.logout().ok();
    let d = &r.data;
    let mut out = Vec::new();
    let mut i = 4;
    while i + 8 <= d.len() {
        let n = d[i + 7] as usize;
        out.push((u16::from_be_bytes([d[i + 2], d[i + 3]]), d[i] & 0x0F));
        i += 8 + 4 * n;
    }
    out.sort_unstable();
    out
}

#[test]
fn an_active_active_lun_passes_libiscsi_multipath_tests_across_two_gateways() {
    let ceph = Ceph::start("multipath", 46842);
    let a = gateway(&ceph, 1, "gw-a");
    let b = gateway(&ceph, 2, "gw-b");
    let sub = a.subsystem();
    let target = a.target();
    let (s, lun) = a.call(
        "POST",
        &format!("/v1/subsystems/{sub}/luns?wait=true"),
        Some(
            &json!({"size_bytes": 64 << 20, "friendly_name": "aa", "targets": [target],
                     "load_balance": "round_robin"}),
        ),
    );
    assert_eq!(s, 201, "{lun}");
    assert_eq!(lun["load_balance"], "round_robin", "{lun}");
    let id = lun["id"].as_str().unwrap().to_string();
    let n = lun["lun_numbers"][target.as_str()]
        .as_u64()
        .expect("LUN number");
    let start = Instant::now();
    while b.call("GET", &format!("/v1/luns/{id}"), None).0 != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "B never served the LUN"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // No owner: both gateways' groups Active/Optimized, the same through both; and the
    // policy cannot turn it into an owned LUN.
    let start = Instant::now();
    loop {
        let (ga, gb) = (groups(&a, n), groups(&b, n));
        if ga == gb && ga.len() == 2 && ga.iter().all(|(_, s)| *s == 0) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "both groups Active/Optimized: A {ga:?}, B {gb:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (s, v) = a.call(
        "PUT",
        &format!("/v1/luns/{id}/load-balance"),
        Some(&json!({"policy": "failover"})),
    );
    assert!(s >= 400, "{v}");
    assert_eq!(v["error"]["name"], "VDS_E_NOT_SUPPORTED", "{v}");

    // libiscsi's multipath tests, one URL per gateway.
    let iqn = a.get(&format!("/v1/targets/{target}"))["iscsi_name"]
        .as_str()
        .expect("iscsi_name")
        .to_string();
    let urls: Vec<String> = [&a, &b]
        .iter()
        .map(|d| format!("iscsi://{}/{iqn}/{n}", d.portals[0]))
        .collect();
    let mut args = vec![
        "--dataloss".to_string(),
        "--test=SCSI.MultipathIO".to_string(),
    ];
    args.extend(urls.iter().cloned());
    let out = run_limited(Path::new("iscsi-test-cu"), &args, Duration::from_secs(300));
    let log = text(&out);
    println!("{log}");
    // CUnit's run summary: `tests  <total>  <ran>  <passed>  <failed>  <inactive>`.
    let tests: Vec<u64> = log
        .lines()
        .find(|l| l.trim_start().starts_with("tests"))
        .unwrap_or_else(|| panic!("no CUnit summary: {log}"))
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    assert!(tests.len() >= 4, "summary {tests:?}");
    let (ran, passed, failed) = (tests[1], tests[2], tests[3]);
    assert!(
        ran >= 4 && failed == 0 && passed == ran,
        "MultipathIO across two gateways: ran {ran}, passed {passed}, failed {failed}"
    );
    // Every asserted check ran (a skip shows as a test with no failed assert but a message).
    assert!(
        !log.contains("SKIPPED") && !log.contains("Skipping"),
        "a multipath test skipped: {log}"
    );
}
