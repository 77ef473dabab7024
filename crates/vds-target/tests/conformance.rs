//! libiscsi's conformance suite (`iscsi-test-cu`) against an in-process data path with two
//! portals (so MultipathIO runs and the two-initiator tests use the second path). Every test
//! must pass; skips are allowed only where libiscsi needs an opt-in flag.

mod common;

use std::time::Duration;

use common::{run_tool, text, Harness, TARGET};
use vds_dataplane::ChapConfig;
use vds_target::Limits;

/// (tests run, tests failed, names of failed tests) from the CUnit output.
fn summary(out: &str) -> (u32, u32, Vec<String>) {
    let mut failed_names = Vec::new();
    let mut suite = String::new();
    let mut current = String::new();
    for line in out.lines() {
        if let Some(s) = line.strip_prefix("Suite: ") {
            suite = s.trim().to_string();
        }
        if let Some(t) = line.trim_start().strip_prefix("Test: ") {
            current = format!("{suite}.{}", t.split(" ...").next().unwrap_or(t));
        }
        // CUnit ends a failed test with "...FAILED" or a lone "FAILED" after its messages.
        let l = line.trim_end();
        if l.ends_with("...FAILED") || l.trim_start() == "FAILED" {
            failed_names.push(current.clone());
        }
    }
    let tests = out
        .lines()
        .find(|l| l.trim_start().starts_with("tests "))
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .filter_map(|n| n.parse::<u32>().ok())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    // Columns: Total Ran Passed Failed Inactive.
    let ran = tests.get(1).copied().unwrap_or(0);
    let failed = tests.get(3).copied().unwrap_or(u32::MAX);
    (ran, failed, failed_names)
}

fn run_suite(test: &str, h: &Harness, limit: Duration) -> (u32, u32, Vec<String>, String) {
    let u1 = format!("iscsi://{}/{}/0", h.addr(0), TARGET);
    let u2 = format!("iscsi://{}/{}/0", h.addr(1), TARGET);
    let t = format!("--test={test}");
    let o = run_tool(&["iscsi-test-cu", "--dataloss", &t, &u1, &u2], limit);
    let out = text(&o);
    let (ran, failed, names) = summary(&out);
    (ran, failed, names, out)
}

#[test]
fn iscsi_family_passes() {
    let h = Harness::start_sized(
        &["127.0.33.1:43040", "127.0.33.2:43040"],
        ChapConfig::default(),
        Limits::default(),
        128 << 20,
    );
    let (ran, failed, names, out) = run_suite("iSCSI.*", &h, Duration::from_secs(300));
    assert!(ran >= 15, "{out}");
    assert_eq!(failed, 0, "failed: {names:?}\n{out}");
}

#[test]
fn all_tests_pass_with_two_paths() {
    let h = Harness::start_sized(
        &["127.0.33.1:43041", "127.0.33.2:43041"],
        ChapConfig::default(),
        Limits::default(),
        128 << 20,
    );
    let (ran, failed, names, out) = run_suite("ALL", &h, Duration::from_secs(900));
    assert!(ran >= 200, "{out}");
    assert_eq!(failed, 0, "failed: {names:?}");
}
