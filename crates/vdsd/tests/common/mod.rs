//! Shared harness of the daemon-level tests: runs the built `vdsd` on a temporary data dir with
//! ports of its own, talks to its HTTP API (ureq + serde_json), follows its event stream, runs
//! `vdsctl` and the libiscsi tools with time limits, and logs in with the in-repo initiator
//! (`vds-testkit`) to observe what a host sees. Every wait here is bounded.
//!
//! Ports: test slot `s` (0..=109, unique per test across all files) uses the API on
//! `127.0.0.2:45100 + s` and portals `127.0.0.3:45000 + s` (first) and `127.0.0.2:45000 + s`
//! (second; not for slots 100..=109, whose second portal would be the API of slot s - 100). Nothing listens on 127.0.0.1: every outgoing loopback connection takes its
//! ephemeral source port there (32768-60999 holds these numbers), and a listener must never
//! collide with one.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vds_iscsi::pdu::{AsyncMessage, Header, NopOut, Pdu};
use vds_testkit::{Initiator, LoginOptions, ScsiResult};

pub const TARGET: &str = "iqn.2026-11.local.vds:default";
/// How long the daemon may take to print "vdsd: ready".
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How a daemon is started.
#[derive(Clone, Default)]
pub struct Opts {
    /// Also create a second portal on 127.0.0.2 (same port, same portal group).
    pub two_portals: bool,
    pub fault_injection: bool,
    /// Contents of a `--config` file.
    pub config: Option<String>,
    /// A ceph.conf for `--ceph-conf` (RBD LUNs).
    pub ceph_conf: Option<PathBuf>,
}

/// A running `vdsd` (killed by pid on drop).
pub struct Daemon {
    pub slot: u16,
    pub api: SocketAddr,
    /// The API's bearer token (the config's `api_token`, else `<data-dir>/api-token`), read
    /// once the daemon is ready; every call of this harness sends it.
    pub token: String,
    pub portals: Vec<SocketAddr>,
    pub opts: Opts,
    child: Option<Child>,
    dir: tempfile::TempDir,
    agent: ureq::Agent,
}

pub fn vdsd_path() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vdsd"))
}

/// `vdsctl` is another package's binary: it is looked up next to `vdsd` in the same target dir
/// (`cargo test --workspace` and `cargo build --workspace --bins` put it there).
pub fn vdsctl_path() -> PathBuf {
    let p = vdsd_path()
        .parent()
        .expect("vdsd has a parent dir")
        .join("vdsctl");
    assert!(
        p.exists(),
        "{} is missing: build it first (cargo build -p vdsctl, same profile and target dir)",
        p.display()
    );
    p
}

impl Daemon {
    pub fn start(slot: u16, opts: Opts) -> Daemon {
        assert!(slot < 110, "slot {slot} is outside 0..110");
        assert!(
            slot < 100 || !opts.two_portals,
            "slot {slot}'s second portal would be slot {}'s API",
            slot - 100
        );
        let api = SocketAddr::from(([127, 0, 0, 2], 45100 + slot));
        let mut portals = vec![SocketAddr::from(([127, 0, 0, 3], 45000 + slot))];
        if opts.two_portals {
            portals.push(SocketAddr::from(([127, 0, 0, 2], 45000 + slot)));
        }
        Daemon::start_on(slot, api, portals, opts)
    }

    /// A daemon on addresses outside the slot numbering (a test file given its own loopback
    /// addresses, such as 127.0.21.x); `slot` only names its initiator.
    pub fn start_at(api: SocketAddr, portals: Vec<SocketAddr>, opts: Opts) -> Daemon {
        Daemon::start_on(200, api, portals, opts)
    }

    fn start_on(slot: u16, api: SocketAddr, portals: Vec<SocketAddr>, opts: Opts) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .build();
        let mut d = Daemon {
            slot,
            api,
            token: String::new(),
            portals,
            opts,
            child: None,
            dir,
            agent,
        };
        d.spawn();
        d
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("vdsd.log")
    }

    /// Whether the daemon process still runs (for failure messages): its /proc state line.
    pub fn process_state(&self) -> String {
        let Some(pid) = self.child.as_ref().map(Child::id) else {
            return "not started".into();
        };
        match std::fs::read_to_string(format!("/proc/{pid}/status")) {
            Ok(s) => s
                .lines()
                .find(|l| l.starts_with("State:"))
                .map(|l| format!("pid {pid} {l}"))
                .unwrap_or_default(),
            Err(_) => format!("pid {pid} is gone"),
        }
    }

    /// The daemon's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The daemon's log so far (stderr), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(vdsd_path());
        cmd.arg("--data-dir")
            .arg(self.data_dir())
            .arg("--api")
            .arg(self.api.to_string())
            .arg("--log-level")
            .arg("info");
        for p in &self.portals {
            cmd.arg("--portal").arg(p.to_string());
        }
        if self.opts.fault_injection {
            cmd.arg("--enable-fault-injection");
        }
        if let Some(conf) = &self.opts.ceph_conf {
            cmd.arg("--ceph-conf").arg(conf);
        }
        if let Some(text) = &self.opts.config {
            let path = self.dir.path().join("vdsd.conf");
            std::fs::write(&path, text).expect("write config");
            cmd.arg("--config").arg(path);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let mut child = cmd
            .env_remove("VDS_API_ADDR")
            .env_remove("VDS_DATA_DIR")
            .env_remove("VDS_LOG")
            .env_remove("VDS_CEPH_CONF")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start vdsd");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel::<String>();
        // Keeps draining stdout for the daemon's whole life.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line == "vdsd: ready" => {
                    self.token = api_token(&self.data_dir(), self.opts.config.as_deref());
                    break;
                }
                Ok(line) => seen.push(line),
                Err(_) => {
                    let status = self
                        .child
                        .as_mut()
                        .and_then(|c| c.try_wait().ok().flatten());
                    panic!(
                        "vdsd (slot {}) did not print `vdsd: ready` within {READY_TIMEOUT:?} \
                         (exit: {status:?}); stdout: {seen:?}\nlog:\n{}",
                        self.slot,
                        self.log()
                    );
                }
            }
        }
    }

    /// `kill -9`: nothing is flushed or closed cleanly.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGKILL through the child's own pid.
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start again on the same data dir and ports (flags as on first start: they must not
    /// re-create anything).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart after kill9");
        self.spawn();
    }

    /// SIGTERM and wait for exit (bounded); returns the exit status code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(s)) = c.try_wait() {
                return s.code();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (bounded) until the daemon counts at least `n` open event streams
    /// (`vds_api_event_streams` in /metrics): a subscriber is known to be listening before
    /// the test makes the change it must see, instead of sleeping and hoping.
    pub fn wait_event_streams(&self, n: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let text = self
                .agent
                .get(&self.url("/metrics"))
                .set("Authorization", &self.bearer())
                .call()
                .ok()
                .and_then(|r| r.into_string().ok())
                .unwrap_or_default();
            let open = text
                .lines()
                .find_map(|l| l.strip_prefix("vds_api_event_streams "))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
            if open >= n {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{n} event stream(s) never opened: {open} open"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.api, path)
    }

    pub fn api_base(&self) -> String {
        format!("http://{}", self.api)
    }

    /// One HTTP call: (status, JSON body or Null, Location header).
    pub fn call_full(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value, Option<String>) {
        let req = self
            .agent
            .request(method, &self.url(path))
            .set("Authorization", &self.bearer());
        let res = match body {
            Some(b) => req.send_json(b.clone()),
            None => req.call(),
        };
        let resp = match res {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!(
                "{method} {path}: {e} (vdsd {})\nlog:\n{}",
                self.process_state(),
                self.log()
            ),
        };
        let status = resp.status();
        let location = resp.header("location").map(str::to_string);
        let text = resp.into_string().unwrap_or_default();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, v, location)
    }

    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let (s, v, _) = self.call_full(method, path, body);
        (s, v)
    }

    pub fn get(&self, path: &str) -> Value {
        let (s, v) = self.call("GET", path, None);
        assert_eq!(s, 200, "GET {path}: {v}");
        v
    }

    /// A call that must succeed with `want` status.
    pub fn ok(&self, method: &str, path: &str, body: Value, want: u16) -> Value {
        let (s, v) = self.call(method, path, Some(&body));
        assert_eq!(s, want, "{method} {path} {body}: {v}");
        v
    }

    pub fn luns(&self) -> Vec<Value> {
        self.get("/v1/luns").as_array().expect("array").clone()
    }

    /// The embedded default LUN's id.
    pub fn default_lun(&self) -> String {
        self.luns()
            .into_iter()
            .find(|l| l["friendly_name"] == "default")
            .expect("default LUN")["id"]
            .as_str()
            .expect("id")
            .to_string()
    }

    pub fn subsystem(&self) -> String {
        self.get("/v1/subsystems")[0]["id"]
            .as_str()
            .expect("id")
            .to_string()
    }

    pub fn target(&self) -> String {
        let sub = self.subsystem();
        self.get(&format!("/v1/subsystems/{sub}/targets"))[0]["id"]
            .as_str()
            .expect("id")
            .to_string()
    }

    /// Portal id by address.
    pub fn portal_id(&self, addr: SocketAddr) -> String {
        let sub = self.subsystem();
        let all = self.get(&format!("/v1/subsystems/{sub}/portals"));
        all.as_array()
            .expect("array")
            .iter()
            .find(|p| p["address"] == addr.ip().to_string() && p["port"] == u64::from(addr.port()))
            .unwrap_or_else(|| panic!("no portal {addr} in {all}"))["id"]
            .as_str()
            .expect("id")
            .to_string()
    }

    pub fn lun(&self, id: &str) -> Value {
        self.get(&format!("/v1/luns/{id}"))
    }

    pub fn set_lun_status(&self, id: &str, status: Value) -> (u16, Value) {
        self.call(
            "POST",
            &format!("/v1/luns/{id}/status"),
            Some(&json!({ "status": status })),
        )
    }

    pub fn set_portal_status(&self, id: &str, status: Value) -> (u16, Value) {
        self.call(
            "POST",
            &format!("/v1/portals/{id}/status"),
            Some(&json!({ "status": status })),
        )
    }

    /// Creates a file-backed LUN of `size` bytes on the default target (waits for the job);
    /// returns the LUN JSON.
    pub fn create_lun(&self, name: &str, size: u64) -> Value {
        let sub = self.subsystem();
        let target = self.target();
        self.ok(
            "POST",
            &format!("/v1/subsystems/{sub}/luns?wait=true"),
            json!({"size_bytes": size, "friendly_name": name, "targets": [target]}),
            201,
        )
    }

    /// Waits until `f(GET path)` holds (bounded).
    pub fn wait_until(&self, path: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v = self.get(path);
            if f(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {v}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The value of the `Authorization` header.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// The `Host` and `Authorization` header lines of a raw request (no CRLF at the end).
    pub fn raw_headers(&self) -> String {
        format!("Host: {}\r\nAuthorization: {}", self.api, self.bearer())
    }

    /// Subscribes to `GET /v1/events`; events raised after this returns are all seen.
    pub fn events(&self) -> Events {
        Events::open(self.api, &self.token)
    }

    /// Runs `vdsctl --api <this daemon> --token <token> args...` (bounded).
    pub fn vdsctl(&self, args: &[&str]) -> Output {
        self.vdsctl_no_token(
            &["--token", &self.token]
                .into_iter()
                .chain(args.iter().copied())
                .collect::<Vec<_>>(),
        )
    }

    /// Runs `vdsctl --api <this daemon> args...` without giving it the token (bounded).
    pub fn vdsctl_no_token(&self, args: &[&str]) -> Output {
        let mut all = vec!["--api".to_string(), self.api_base()];
        all.extend(args.iter().map(|s| s.to_string()));
        run_limited(&vdsctl_path(), &all, Duration::from_secs(60))
    }

    /// Logs in to the default target through portal `i` (ISID ending in `isid`).
    pub fn login(&self, i: usize, isid: u8) -> Initiator {
        login(self.portals[i], &initiator_name(self.slot), isid)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("---- vdsd slot {} log (last lines) ----", self.slot);
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// The bearer token a daemon on `data_dir` started with `config` uses: the config's
/// `api_token`, else the one it wrote to `<data_dir>/api-token`.
pub fn api_token(data_dir: &Path, config: Option<&str>) -> String {
    let from_config = config.and_then(|c| {
        c.lines().find_map(|l| {
            let (k, v) = l.split('#').next()?.split_once('=')?;
            (k.trim() == "api_token").then(|| v.trim().to_string())
        })
    });
    from_config.unwrap_or_else(|| {
        let p = data_dir.join("api-token");
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .trim()
            .to_string()
    })
}

/// Asserts the body of an error answer: HTTP status, HRESULT hex and name.
pub fn assert_error(got: &(u16, Value), http: u16, hresult: &str, name: &str) {
    let (s, v) = got;
    assert_eq!(*s, http, "HTTP status; body {v}");
    assert_eq!(v["error"]["hresult"], hresult, "hresult; body {v}");
    assert_eq!(v["error"]["name"], name, "name; body {v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "message; body {v}"
    );
}

// ----- events -----

/// A subscription to the event stream; events are collected by a reader thread.
pub struct Events {
    rx: mpsc::Receiver<Value>,
}

impl Events {
    fn open(api: SocketAddr, token: &str) -> Events {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .build();
        let resp = agent
            .get(&format!("http://{api}/v1/events"))
            .set("Authorization", &format!("Bearer {token}"))
            .call()
            .expect("open the event stream");
        // The handler subscribed before it answered: everything from now on is in the stream.
        let (tx, rx) = mpsc::channel();
        let reader = resp.into_reader();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines() {
                let Ok(line) = line else { break };
                if let Some(data) = line.strip_prefix("data:") {
                    if let Ok(v) = serde_json::from_str::<Value>(data.trim()) {
                        if tx.send(v).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Events { rx }
    }

    /// Everything that arrives within `d`.
    pub fn collect(&self, d: Duration) -> Vec<Value> {
        let deadline = Instant::now() + d;
        let mut out = Vec::new();
        while let Ok(v) = self
            .rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            out.push(v);
        }
        out
    }

    /// Everything already received, waiting `settle` for stragglers.
    pub fn drain(&self) -> Vec<Value> {
        self.collect(Duration::from_millis(300))
    }
}

/// The events of `evs` about object `id` with `code`.
pub fn count(evs: &[Value], id: &str, code: u64) -> usize {
    evs.iter()
        .filter(|e| e["id"] == id && e["code"] == code)
        .count()
}

// ----- iSCSI -----

pub fn initiator_name(slot: u16) -> String {
    format!("iqn.2026-11.local.test:h5-{slot}")
}

pub fn login_opts(initiator: &str, isid: u8) -> LoginOptions {
    let mut o = LoginOptions::normal(initiator, TARGET);
    o.isid = [0x80, 0x00, 0x00, 0x00, 0x45, isid];
    o.timeout = Duration::from_secs(10);
    o
}

pub fn login(addr: SocketAddr, initiator: &str, isid: u8) -> Initiator {
    Initiator::connect(addr, &login_opts(initiator, isid))
        .unwrap_or_else(|e| panic!("login through {addr} failed: {e}"))
}

/// (sense key, ASC, ASCQ) of a CHECK CONDITION, fixed or descriptor format.
pub fn sense_of(r: &ScsiResult) -> Option<(u8, u8, u8)> {
    let s = &r.sense;
    match s.first().map(|b| b & 0x7f) {
        Some(0x70) | Some(0x71) if s.len() >= 14 => Some((s[2] & 0x0f, s[12], s[13])),
        Some(0x72) | Some(0x73) if s.len() >= 4 => Some((s[1] & 0x0f, s[2], s[3])),
        _ => None,
    }
}

pub const GOOD: u8 = 0x00;
pub const CHECK: u8 = 0x02;

/// Asserts CHECK CONDITION with this sense.
pub fn assert_sense(r: &ScsiResult, want: (u8, u8, u8), what: &str) {
    assert_eq!(
        (r.status, sense_of(r)),
        (CHECK, Some(want)),
        "{what}: status 0x{:02x}, sense {:02x?}",
        r.status,
        r.sense
    );
}

pub fn assert_good(r: &ScsiResult, what: &str) {
    assert_eq!(
        r.status,
        GOOD,
        "{what}: status 0x{:02x}, sense {:?}",
        r.status,
        sense_of(r)
    );
}

pub mod cdb {
    pub fn tur() -> Vec<u8> {
        vec![0; 6]
    }
    pub fn inquiry(len: u8) -> Vec<u8> {
        vec![0x12, 0, 0, 0, len, 0]
    }
    pub fn request_sense() -> Vec<u8> {
        vec![0x03, 0, 0, 0, 252, 0]
    }
    pub fn report_luns() -> Vec<u8> {
        vec![0xA0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0]
    }
    pub fn read10(lba: u32, blocks: u16) -> Vec<u8> {
        let l = lba.to_be_bytes();
        let b = blocks.to_be_bytes();
        vec![0x28, 0, l[0], l[1], l[2], l[3], 0, b[0], b[1], 0]
    }
    /// WRITE(10) with FUA: on stable storage before GOOD.
    pub fn write10_fua(lba: u32, blocks: u16) -> Vec<u8> {
        let l = lba.to_be_bytes();
        let b = blocks.to_be_bytes();
        vec![0x2A, 0x08, l[0], l[1], l[2], l[3], 0, b[0], b[1], 0]
    }
    pub fn write10(lba: u32, blocks: u16) -> Vec<u8> {
        let mut c = write10_fua(lba, blocks);
        c[1] = 0;
        c
    }
    pub fn sync_cache() -> Vec<u8> {
        vec![0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    }
    pub fn read_capacity16() -> Vec<u8> {
        vec![0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0]
    }
}

pub fn tur(ini: &mut Initiator, lun: u64) -> ScsiResult {
    ini.command(lun, &cdb::tur(), &[], 0)
        .expect("TEST UNIT READY")
}

pub fn read(ini: &mut Initiator, lun: u64, lba: u32, blocks: u16) -> ScsiResult {
    ini.command(lun, &cdb::read10(lba, blocks), &[], u32::from(blocks) * 512)
        .expect("READ(10)")
}

pub fn write_fua(ini: &mut Initiator, lun: u64, lba: u32, data: &[u8]) -> ScsiResult {
    let blocks = (data.len() / 512) as u16;
    ini.command(lun, &cdb::write10_fua(lba, blocks), data, 0)
        .expect("WRITE(10)")
}

pub fn inquiry(ini: &mut Initiator, lun: u64) -> ScsiResult {
    ini.command(lun, &cdb::inquiry(96), &[], 96)
        .expect("INQUIRY")
}

/// LUN numbers REPORT LUNS lists (peripheral or flat addressing).
pub fn report_luns(ini: &mut Initiator) -> Vec<u64> {
    let r = ini
        .command(0, &cdb::report_luns(), &[], 4096)
        .expect("REPORT LUNS");
    assert_good(&r, "REPORT LUNS");
    let n = u32::from_be_bytes([r.data[0], r.data[1], r.data[2], r.data[3]]) as usize / 8;
    (0..n)
        .map(|i| {
            let e = &r.data[8 + i * 8..16 + i * 8];
            u64::from(u16::from_be_bytes([e[0], e[1]]) & 0x3fff)
        })
        .collect()
}

/// READ CAPACITY(16): the size in bytes (after UAs are consumed by the caller).
pub fn capacity(ini: &mut Initiator, lun: u64) -> ScsiResult {
    ini.command(lun, &cdb::read_capacity16(), &[], 32)
        .expect("READ CAPACITY(16)")
}

pub fn capacity_bytes(r: &ScsiResult) -> u64 {
    assert_good(r, "READ CAPACITY(16)");
    let last = u64::from_be_bytes(r.data[0..8].try_into().expect("8 bytes"));
    let bs = u32::from_be_bytes(r.data[8..12].try_into().expect("4 bytes"));
    (last + 1) * u64::from(bs)
}

/// A recognisable block pattern.
pub fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 9) as u8))
        .collect()
}

/// Waits (bounded by the initiator's read timeout) for an Async Message, answering target
/// NOP-In pings meanwhile. `None` if the connection ended or timed out first.
pub fn wait_async(ini: &mut Initiator) -> Option<AsyncMessage> {
    if let Some(a) = ini.async_events.first() {
        return Some(a.clone());
    }
    loop {
        let p = ini.recv().ok()?;
        match p.header {
            Header::AsyncMessage(a) => return Some(a),
            Header::NopIn(n) if n.ttt != 0xffff_ffff => {
                let reply = Pdu::new(
                    Header::NopOut(NopOut {
                        immediate: true,
                        lun: n.lun,
                        itt: 0xffff_ffff,
                        ttt: n.ttt,
                        cmd_sn: ini.cmd_sn(),
                        exp_stat_sn: ini.exp_stat_sn(),
                    }),
                    Vec::new(),
                );
                ini.send(&reply).ok()?;
            }
            _ => {}
        }
    }
}

/// Whether a plain TCP connect to `addr` is refused right now.
pub fn refused(addr: SocketAddr) -> bool {
    match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
        Ok(_) => false,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
    }
}

/// SendTargets=All through `addr`: the addresses listed for the default target.
pub fn send_targets(addr: SocketAddr, initiator: &str) -> Vec<String> {
    let mut o = LoginOptions::discovery(initiator);
    o.timeout = Duration::from_secs(10);
    let mut d = Initiator::connect(addr, &o).expect("discovery login");
    let t = d.send_targets("All").expect("SendTargets");
    let _ = d.logout();
    t.into_iter()
        .filter(|(n, _)| n == TARGET)
        .flat_map(|(_, a)| a)
        .collect()
}

// ----- processes -----

/// Runs a program with a time limit; killed by its pid when it overruns.
pub fn run_limited(program: &Path, args: &[String], limit: Duration) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .env_remove("VDS_API")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    // Drain both pipes on threads so a chatty child cannot block on a full pipe.
    let mut so = child.stdout.take().expect("stdout");
    let mut se = child.stderr.take().expect("stderr");
    let t1 = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = so.read_to_end(&mut b);
        b
    });
    let t2 = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = se.read_to_end(&mut b);
        b
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: t1.join().unwrap_or_default(),
        stderr: t2.join().unwrap_or_default(),
    }
}

/// Runs a libiscsi tool (by name) with a time limit. A missing tool fails the test loudly:
/// `scripts/test` installs libiscsi-bin, and a check that cannot run must not pass.
pub fn iscsi_tool(name: &str, args: &[String]) -> Output {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let prog = std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("{name} is not installed: install libiscsi-bin (scripts/test does)")
        });
    run_limited(&prog, args, Duration::from_secs(30))
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A raw HTTP request (for malformed bodies ureq would not send).
pub fn raw_http(api: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect_timeout(&api, Duration::from_secs(5)).expect("connect API");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    // The server may answer and close before it has read everything (an oversized body):
    // a failed write is not the test's failure, the answer is.
    let _ = s.write_all(request.as_bytes());
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Adds a `dir` drive at `path` (named `name`, or the default name when empty); its id.
pub fn add_drive(d: &Daemon, sub: &str, path: &Path, name: &str) -> String {
    let mut body = json!({"kind": "dir", "path": path});
    if !name.is_empty() {
        body["friendly_name"] = json!(name);
    }
    let v = d.ok(
        "POST",
        &format!("/v1/subsystems/{sub}/drives?wait=true"),
        body,
        201,
    );
    v["id"].as_str().expect("drive id").to_string()
}

/// Makes the directories `names` under `root`.
pub fn dirs(root: &Path, names: &[&str]) -> Vec<PathBuf> {
    names
        .iter()
        .map(|n| {
            let p = root.join(n);
            std::fs::create_dir(&p).unwrap();
            p
        })
        .collect()
}

/// The extent files under a `dir` drive, sorted (none when it has no `vds-extents`).
pub fn files(drive_dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(drive_dir.join("vds-extents"))
        .map(|r| {
            r.map(|e| e.unwrap().path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The one extent file under a `dir` drive.
pub fn extent_file(drive_dir: &Path) -> PathBuf {
    let files = files(drive_dir);
    assert_eq!(
        files.len(),
        1,
        "one extent under {}: {files:?}",
        drive_dir.display()
    );
    files[0].clone()
}

/// Asserts an error answer: a 4xx/5xx status, the HRESULT name, a message.
pub fn assert_refused(got: (u16, Value), name: &str, what: &str) {
    assert!(got.0 >= 400, "{what}: refused, got {} {}", got.0, got.1);
    assert_eq!(got.1["error"]["name"], name, "{what}: {}", got.1);
    let msg = got.1["error"]["message"].as_str().unwrap_or("");
    assert!(!msg.is_empty(), "{what}: a message");
}
