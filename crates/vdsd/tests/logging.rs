//! The daemon's log as a file or a pipe sees it (issue 11): when stderr is not a terminal the
//! `tracing` lines carry no ANSI colour codes, so log files, journald and `grep` get plain text;
//! `--log-format json` gives one JSON object per line (issue 16). The plain-text test uses slot
//! 99 of the harness's numbering (API 127.0.0.2:45199, portal 127.0.0.3:45099), the JSON test
//! 127.0.21.1-2; the daemon is started here rather than through `common::Daemon` so that its
//! environment is known (no `NO_COLOR`, which would hide the colours on its own).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::vdsd_path;

/// Kills the daemon by its pid if the test ends before it exited.
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs vdsd with its stderr on a pipe until it is ready, stops it with SIGTERM and returns
/// everything it logged.
fn run_and_stop(api: &str, portal: &str, extra: &[&str], env: &[(&str, &str)]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temp dir");
    let child = Command::new(vdsd_path())
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--api", api, "--portal", portal])
        .args(["--log-level", "info"])
        .args(extra)
        .env_remove("NO_COLOR")
        .env_remove("VDS_API_ADDR")
        .env_remove("VDS_DATA_DIR")
        .env_remove("VDS_LOG")
        .env_remove("VDS_LOG_FORMAT")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vdsd");
    let mut running = Running(Some(child));
    let child = running.0.as_mut().expect("just started");
    let pid = child.id();

    // stderr is drained on its own thread so that a chatty daemon never blocks on a full pipe.
    let mut stderr = child.stderr.take().expect("stderr");
    let log = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stderr.read_to_end(&mut bytes);
        bytes
    });
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line == "vdsd: ready" => break,
            Ok(_) => {}
            Err(_) => panic!("vdsd did not print `vdsd: ready` within 30 s"),
        }
    }

    // A clean shutdown (SIGTERM to this pid) logs too, and closes stderr.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "vdsd did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    running.0 = None;
    log.join().expect("stderr reader")
}

#[test]
fn log_to_a_pipe_has_no_colour_codes() {
    let log = run_and_stop("127.0.0.2:45199", "127.0.0.3:45099", &[], &[]);
    let text = String::from_utf8_lossy(&log);

    assert!(
        text.contains("INFO"),
        "the daemon logged nothing at info level, so the check below proves nothing:\n{text}"
    );
    assert!(
        !log.windows(2).any(|w| w == b"\x1b["),
        "ANSI escape sequences in a log that is not a terminal:\n{text:?}"
    );
}

/// `--log-format json` (and `VDS_LOG_FORMAT=json`): every line of a real run, start to
/// SIGTERM, is one JSON object with a level, a timestamp and a message.
#[test]
fn json_log_lines_each_parse_with_level_timestamp_and_message() {
    let by_flag = run_and_stop(
        "127.0.21.1:45201",
        "127.0.21.2:45202",
        &["--log-format", "json", "--insecure-loopback-api"],
        &[],
    );
    let by_env = run_and_stop(
        "127.0.21.1:45203",
        "127.0.21.2:45204",
        &["--insecure-loopback-api"],
        &[("VDS_LOG_FORMAT", "json")],
    );
    for log in [by_flag, by_env] {
        let text = String::from_utf8(log).expect("the log is UTF-8");
        check_json_lines(&text);
    }
}

/// Every line of `text` parses as a JSON object with a level, a timestamp and a message; the
/// portal's INFO line and the WARN of `--insecure-loopback-api` are among them.
fn check_json_lines(text: &str) {
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.len() >= 2,
        "fewer than two log lines, so the check proves little:\n{text}"
    );
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line:?}"));
        let level = v["level"].as_str().unwrap_or_default();
        assert!(
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level),
            "no level in {line:?}"
        );
        let ts = v["timestamp"].as_str().unwrap_or_default();
        assert!(
            ts.len() >= 20 && ts.as_bytes()[4] == b'-' && ts.contains('T'),
            "no RFC 3339 timestamp in {line:?}"
        );
        assert!(
            v["fields"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "no message in {line:?}"
        );
    }
    for (level, words) in [
        ("INFO", "portal listening"),
        ("WARN", "without authentication"),
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("\"level\":\"{level}\"")) && l.contains(words)),
            "no {level} line with {words:?}:\n{text}"
        );
    }
}
