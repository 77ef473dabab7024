//! Harness of the reliability tests: starts the real `vdsd` binary on a data dir with given
//! ports (127.0.0.1:47000-47099 for portals, 47100-47199 for the API), waits for its
//! "vdsd: ready" line, kills it with SIGKILL or stops it with SIGTERM, captures its log, and
//! wraps the HTTP API (ureq) and the testkit initiator for the scenarios.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use vds_testkit::{Initiator, LoginOptions};

pub mod consistency;
// Not every test uses every helper.
#[allow(unused_imports)]
pub use consistency::{
    bearer_call, command_past_ua, kcq, list, pattern, read16, sync_cache10, write16, Array, Rng,
    DEFAULT_IQN, INITIATOR,
};

/// A running daemon. Dropping it kills it (SIGKILL) if it is still running.
pub struct Daemon {
    pub child: Option<Child>,
    pub api: SocketAddr,
    pub portal: SocketAddr,
    pub data_dir: PathBuf,
    /// Everything the daemon wrote on stdout and stderr so far.
    pub log: Arc<Mutex<String>>,
    /// The API's bearer token (config `api_token`, else `<data-dir>/api-token`); every call
    /// of this harness sends it.
    pub token: String,
    /// One HTTP client with keep-alive: thousands of short connections would fill the
    /// ephemeral port range (where the test ports live) with TIME_WAIT sockets.
    pub agent: ureq::Agent,
}

/// How to start a daemon.
#[derive(Clone)]
pub struct Opts {
    pub data_dir: PathBuf,
    pub api_port: u16,
    pub portal_port: u16,
    pub fault_injection: bool,
    pub config: Option<String>,
    pub extra_portals: Vec<SocketAddr>,
    pub log_level: String,
    /// Further `vdsd` flags (e.g. `--insecure-loopback-api`).
    pub extra_args: Vec<String>,
}

impl Opts {
    pub fn new(data_dir: &Path, api_port: u16, portal_port: u16) -> Opts {
        Opts {
            data_dir: data_dir.to_path_buf(),
            api_port,
            portal_port,
            fault_injection: false,
            config: None,
            extra_portals: Vec::new(),
            log_level: "info".into(),
            extra_args: Vec::new(),
        }
    }
}

/// The bearer token a daemon on `data_dir` started with `config` uses: the config's
/// `api_token`, else the one it wrote to `<data_dir>/api-token`.
pub fn api_token(data_dir: &Path, config: Option<&str>) -> Result<String, String> {
    let from_config = config.and_then(|c| {
        c.lines().find_map(|l| {
            let (k, v) = l.split('#').next()?.split_once('=')?;
            (k.trim() == "api_token").then(|| v.trim().to_string())
        })
    });
    match from_config {
        Some(t) => Ok(t),
        None => {
            let p = data_dir.join("api-token");
            std::fs::read_to_string(&p)
                .map(|t| t.trim().to_string())
                .map_err(|e| format!("the API token {}: {e}", p.display()))
        }
    }
}

fn pump(
    r: impl Read + Send + 'static,
    log: Arc<Mutex<String>>,
    ready: Option<std::sync::mpsc::Sender<()>>,
) {
    std::thread::spawn(move || {
        let mut r = BufReader::new(r);
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    log.lock().unwrap().push_str(&line);
                    if line.starts_with("vdsd: ready") {
                        if let Some(tx) = &ready {
                            let _ = tx.send(());
                        }
                    }
                }
            }
        }
    });
}

impl Daemon {
    /// Start `vdsd` and wait (up to 30 s) until it prints that it is ready.
    pub fn start(o: &Opts) -> Daemon {
        // Our ports lie in the kernel's ephemeral range: another process's socket may hold
        // one for a moment. Try again rather than fail on a neighbour's connection.
        // A client socket in TIME_WAIT holds its port for 60 s, so wait up to 70 s.
        let end = Instant::now() + Duration::from_secs(70);
        loop {
            match Self::try_start(o) {
                Ok(d) => return d,
                Err(e) if e.contains("Address already in use") && Instant::now() < end => {
                    eprintln!("port busy, retrying: {}", e.lines().last().unwrap_or(""));
                    std::thread::sleep(Duration::from_secs(1));
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// Like [`Daemon::start`], or the reason it did not become ready (with its log).
    pub fn try_start(o: &Opts) -> Result<Daemon, String> {
        let api = SocketAddr::from(([127, 0, 0, 1], o.api_port));
        let portal = SocketAddr::from(([127, 0, 0, 1], o.portal_port));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vdsd"));
        cmd.arg("--data-dir")
            .arg(&o.data_dir)
            .arg("--api")
            .arg(api.to_string())
            .arg("--portal")
            .arg(portal.to_string())
            .arg("--log-level")
            .arg(&o.log_level)
            .env_remove("VDS_DATA_DIR")
            .env_remove("VDS_API_ADDR")
            .env_remove("VDS_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for p in &o.extra_portals {
            cmd.arg("--portal").arg(p.to_string());
        }
        if o.fault_injection {
            cmd.arg("--enable-fault-injection");
        }
        cmd.args(&o.extra_args);
        if let Some(text) = &o.config {
            let path = o.data_dir.with_extension("conf");
            std::fs::write(&path, text).expect("write config");
            cmd.arg("--config").arg(path);
        }
        let mut child = cmd.spawn().map_err(|e| format!("cannot run vdsd: {e}"))?;
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        pump(child.stdout.take().unwrap(), log.clone(), Some(tx));
        pump(child.stderr.take().unwrap(), log.clone(), None);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if rx.recv_timeout(Duration::from_millis(50)).is_ok() {
                break;
            }
            if let Ok(Some(st)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                return Err(format!(
                    "vdsd exited with {st} before ready:\n{}",
                    log.lock().unwrap()
                ));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("vdsd not ready in 30 s:\n{}", log.lock().unwrap()));
            }
        }
        let text = log.lock().unwrap().clone();
        if let Some(l) = text
            .lines()
            .find(|l| l.starts_with("vdsd: portal ") && l.ends_with(" failed"))
        {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("Address already in use: {l}"));
        }
        // Not a panic here: the child is not owned by a `Daemon` yet, nothing would kill it.
        let token = match api_token(&o.data_dir, o.config.as_deref()) {
            Ok(t) => t,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        Ok(Daemon {
            child: Some(child),
            api,
            portal,
            data_dir: o.data_dir.clone(),
            log,
            token,
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(60))
                .build(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// `kill -9`: no flush, no shutdown, as a power cut looks to the process.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait (up to 20 s); returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        // SAFETY: kill(2) on the pid of a child we own and have not reaped yet.
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st.code();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resident set size of the daemon in KiB (`VmRSS` of /proc/<pid>/status).
    pub fn rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The value of the `Authorization` header.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
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

    /// One API call: (HTTP status, JSON body or Null). Transport failures panic.
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let req = self
            .agent
            .request(method, &self.url(path))
            .set("Authorization", &self.bearer());
        let res = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match res {
            Ok(r) => {
                let st = r.status();
                let text = r.into_string().unwrap_or_default();
                (st, serde_json::from_str(&text).unwrap_or(Value::Null))
            }
            Err(ureq::Error::Status(st, r)) => {
                let text = r.into_string().unwrap_or_default();
                (st, serde_json::from_str(&text).unwrap_or(Value::Null))
            }
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }

    /// An API call that must succeed (2xx); returns its body.
    pub fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (st, v) = self.call(method, path, body);
        assert!((200..300).contains(&st), "{method} {path} -> {st} {v}");
        v
    }

    pub fn subsystem(&self) -> String {
        let v = self.ok("GET", "/v1/subsystems", None);
        list(&v)[0]["id"].as_str().unwrap().to_string()
    }

    /// The LUN with this friendly name, if any.
    pub fn lun_named(&self, name: &str) -> Option<Value> {
        let v = self.ok("GET", "/v1/luns", None);
        list(&v).into_iter().find(|l| l["friendly_name"] == name)
    }

    pub fn default_target(&self) -> Value {
        let ss = self.subsystem();
        let v = self.ok("GET", &format!("/v1/subsystems/{ss}/targets"), None);
        list(&v)
            .into_iter()
            .find(|t| t["iscsi_name"] == DEFAULT_IQN)
            .expect("default target")
    }

    /// Log in to `target` through the daemon's portal.
    pub fn login(&self, initiator: &str, target: &str) -> Initiator {
        let o = LoginOptions::normal(initiator, target);
        Initiator::connect(self.portal, &o).unwrap_or_else(|e| panic!("login to {target}: {e}"))
    }

    /// Create a LUN (waiting for the job) and return it.
    pub fn create_lun(&self, body: Value) -> Value {
        let ss = self.subsystem();
        let (st, v) = self.call(
            "POST",
            &format!("/v1/subsystems/{ss}/luns?wait=true"),
            Some(body),
        );
        assert_eq!(st, 201, "create LUN: {v}");
        v
    }
}

impl Array for Daemon {
    fn portal(&self) -> SocketAddr {
        self.portal
    }
    fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Option<(u16, Value)> {
        bearer_call(&self.agent, &self.url(path), &self.token, method, body)
    }
    fn file_len(&self, path: &str) -> Option<u64> {
        std::fs::metadata(path).ok().map(|m| m.len())
    }
    fn lun_dir_entries(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(self.data_dir.join("luns")) {
            Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Waits until `f` holds, up to `secs` seconds.
pub fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// A small tmpfs mounted on a fresh directory, unmounted on drop (the full-disk tests).
pub struct SmallFs {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl SmallFs {
    /// Mounts a tmpfs of `size`. It needs root (as `scripts/test` runs); without it the test
    /// fails loudly rather than passing without having checked anything.
    pub fn mount(size: &str) -> SmallFs {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("small");
        std::fs::create_dir(&path).expect("mount point");
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&path)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "cannot mount a {size} tmpfs (this test needs root, as scripts/test runs it)"
        );
        SmallFs { _dir: dir, path }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Fills the filesystem of `dir` with a file until ENOSPC; returns its path.
pub fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let p = dir.join("filler");
    let mut f = std::fs::File::create(&p).unwrap();
    let block = vec![0xEEu8; 64 << 10];
    while f.write_all(&block).is_ok() {}
    // The last partial block too.
    while f.write_all(&[0xEE]).is_ok() {}
    p
}
