//! The open-file limit (found by the power-cut runner, whose guest starts vdsd with the kernel's
//! default soft limit of 1024: after some hundreds of LUNs a create answered
//! `ERROR_TOO_MANY_OPEN_FILES`). vdsd raises its soft limit to the hard one at start. This
//! test lowers its own soft limit to 256 (its own binary, one test, so nothing else runs under
//! it), starts vdsd (which inherits 256 / 4096) on 127.0.21.11 (API 45268, portal 45269), and
//! creates 200 LUNs: each file LUN holds two descriptors, so under 256 the creates fail after
//! about a hundred; raised, every one succeeds and the limit in /proc is the hard one.

mod common;

use common::{Daemon, Opts};
use serde_json::json;

const SOFT: u64 = 256;
const HARD: u64 = 4096;
const LUNS: usize = 200;

#[test]
fn vdsd_raises_its_open_file_limit_and_holds_hundreds_of_luns() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write only the rlimit given.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        assert!(
            lim.rlim_max >= HARD,
            "this test needs a hard open-file limit of {HARD} or more (it has {})",
            lim.rlim_max
        );
        lim.rlim_cur = SOFT;
        lim.rlim_max = HARD;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    let d = Daemon::start_at(
        221,
        "127.0.21.11:45268".parse().unwrap(),
        vec!["127.0.21.11:45269".parse().unwrap()],
        Opts::default(),
    );
    let pid = d.pid().expect("vdsd's pid");
    let ss = d.subsystem();
    for i in 0..LUNS {
        d.ok(
            "POST",
            &format!("/v1/subsystems/{ss}/luns?wait=true"),
            json!({"size_bytes": 1 << 20, "friendly_name": format!("fd{i}")}),
            201,
        );
    }
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(nums, vec![HARD, HARD], "vdsd's limits: {line}");
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count() as u64;
    assert!(
        open > SOFT,
        "{open} descriptors open: the test no longer shows what it is for"
    );
}
