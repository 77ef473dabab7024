//! Starting and stopping the two targets under test on loopback: `vdsd` (through its flags and
//! HTTP API) and `tgtd` (through `tgtadm` on its own control port). Both are killed by pid when
//! their handle is dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

/// A daemon process that is killed (SIGTERM, then SIGKILL) when dropped.
pub struct Daemon {
    child: Child,
    /// How long SIGTERM is given before SIGKILL (tgtd ignores SIGTERM while it has targets).
    grace: Duration,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + self.grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the workspace is (the bench lives in `<root>/bench`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Locate the release `vdsd`, building it first unless `build` is false.
pub fn release_vdsd(explicit: Option<&Path>, build: bool) -> Result<PathBuf> {
    if let Some(p) = explicit {
        if !p.is_file() {
            bail!("--vdsd {}: no such file", p.display());
        }
        return Ok(p.to_path_buf());
    }
    let root = workspace_root();
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    if build {
        eprintln!("vds-bench: cargo build --release -p vdsd");
        let st = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "-p", "vdsd"])
            .current_dir(&root)
            .status()
            .context("running cargo build")?;
        if !st.success() {
            bail!("cargo build --release -p vdsd failed");
        }
    }
    let bin = target_dir.join("release").join("vdsd");
    if !bin.is_file() {
        bail!(
            "{} not found (build it with cargo build --release -p vdsd)",
            bin.display()
        );
    }
    Ok(bin)
}

/// A running `vdsd` with its API address.
pub struct Vdsd {
    pub daemon: Daemon,
    pub api: SocketAddr,
    agent: ureq::Agent,
    /// `Bearer <token>`: the token vdsd wrote to `<data-dir>/api-token` on first start.
    bearer: String,
}

impl Vdsd {
    /// Start on an empty `data_dir` and wait for its "ready" line.
    pub fn start(bin: &Path, data_dir: &Path, api: SocketAddr, portal: SocketAddr) -> Result<Vdsd> {
        Vdsd::start_with(bin, data_dir, api, portal, &[])
    }

    /// [`Vdsd::start`] with more flags (e.g. `--ceph-conf`).
    pub fn start_with(
        bin: &Path,
        data_dir: &Path,
        api: SocketAddr,
        portal: SocketAddr,
        extra: &[&str],
    ) -> Result<Vdsd> {
        std::fs::create_dir_all(data_dir)?;
        let log = std::fs::File::create(data_dir.with_extension("log"))?;
        let mut child = Command::new(bin)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--api")
            .arg(api.to_string())
            .arg("--portal")
            .arg(portal.to_string())
            .args(["--log-level", "warn"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let daemon = Daemon {
            child,
            grace: Duration::from_secs(10),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains("vdsd: ready") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(30)).map_err(|_| {
            anyhow!(
                "vdsd did not print ready within 30 s (log: {}.log)",
                data_dir.display()
            )
        })?;
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(120))
            .build();
        let token_file = data_dir.join("api-token");
        let token = std::fs::read_to_string(&token_file)
            .with_context(|| format!("reading the API token {}", token_file.display()))?;
        Ok(Vdsd {
            daemon,
            api,
            agent,
            bearer: format!("Bearer {}", token.trim()),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/v1{}", self.api, path)
    }

    pub fn get(&self, path: &str) -> Result<Value> {
        call(
            self.agent
                .get(&self.url(path))
                .set("Authorization", &self.bearer),
            None,
        )
    }

    pub fn post(&self, path: &str, body: Value) -> Result<Value> {
        call(
            self.agent
                .post(&self.url(path))
                .set("Authorization", &self.bearer),
            Some(body),
        )
    }

    /// The first subsystem and its first target: (subsystem id, target id, target IQN).
    pub fn default_target(&self) -> Result<(String, String, String)> {
        let subs = self.get("/subsystems")?;
        let sid = first_id(&subs).ok_or_else(|| anyhow!("no subsystem in {subs}"))?;
        let targets = self.get(&format!("/subsystems/{sid}/targets"))?;
        let t = as_list(&targets)
            .first()
            .cloned()
            .ok_or_else(|| anyhow!("no target in {targets}"))?;
        let tid = t["id"]
            .as_str()
            .ok_or_else(|| anyhow!("target without id"))?;
        let iqn = t["iscsi_name"]
            .as_str()
            .ok_or_else(|| anyhow!("target without iscsi_name"))?;
        Ok((sid, tid.to_string(), iqn.to_string()))
    }

    /// Add a drive (`kind` "dir" or "block") at `path` to subsystem `sid`; its id. A file
    /// that stands for a block drive may hold data already (the bench prefills it), so the
    /// label is written with `force`.
    pub fn add_drive(&self, sid: &str, kind: &str, path: &Path, name: &str) -> Result<String> {
        let d = self.post(
            &format!("/subsystems/{sid}/drives?wait=true"),
            json!({"kind": kind, "path": path, "friendly_name": name, "force": true}),
        )?;
        d["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("added drive without id: {d}"))
    }

    /// Create a LUN on target `tid` and return (LUN id, LUN number on that target).
    pub fn create_lun(
        &self,
        sid: &str,
        tid: &str,
        size: u64,
        backing: Value,
    ) -> Result<(String, u64)> {
        let lun = self.post(
            &format!("/subsystems/{sid}/luns?wait=true"),
            json!({"size_bytes": size, "backing": backing, "targets": [tid]}),
        )?;
        let id = lun["id"]
            .as_str()
            .ok_or_else(|| anyhow!("created LUN without id: {lun}"))?
            .to_string();
        let number = lun["lun_numbers"][tid]
            .as_u64()
            .ok_or_else(|| anyhow!("created LUN has no number on target {tid}: {lun}"))?;
        Ok((id, number))
    }
}

/// Lists come either bare or wrapped in an object; accept both.
pub fn as_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Object(o) => o
            .values()
            .find_map(|x| x.as_array().cloned())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn first_id(v: &Value) -> Option<String> {
    as_list(v)
        .first()
        .and_then(|x| x["id"].as_str())
        .map(str::to_string)
}

/// One HTTP call; an error status becomes an error carrying the body.
pub fn call(req: ureq::Request, body: Option<Value>) -> Result<Value> {
    let r = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    match r {
        Ok(resp) => {
            let text = resp.into_string()?;
            if text.is_empty() {
                Ok(Value::Null)
            } else {
                Ok(serde_json::from_str(&text)?)
            }
        }
        Err(ureq::Error::Status(code, resp)) => {
            let text = resp.into_string().unwrap_or_default();
            bail!("HTTP {code}: {text}")
        }
        Err(e) => Err(anyhow!("HTTP transport: {e}")),
    }
}

/// A running `tgtd` with its control id.
pub struct Tgtd {
    pub daemon: Daemon,
    pub control: u32,
}

impl Tgtd {
    pub fn start(control: u32, portal: SocketAddr, log: &Path) -> Result<Tgtd> {
        let logf = std::fs::File::create(log)?;
        let child = Command::new("tgtd")
            .args(["-f", "-C", &control.to_string(), "--iscsi"])
            .arg(format!("portal={portal}"))
            .stdout(Stdio::from(logf.try_clone()?))
            .stderr(Stdio::from(logf))
            .spawn()
            .context("starting tgtd (is the tgt package installed?)")?;
        let mut t = Tgtd {
            daemon: Daemon {
                child,
                grace: Duration::from_millis(200),
            },
            control,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if !t.daemon.alive() {
                bail!("tgtd exited at start (log: {})", log.display());
            }
            if t.adm(&["--op", "show", "--mode", "sys"]).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                bail!("tgtd control port {control} did not answer");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(t)
    }

    /// Run tgtadm against this daemon.
    pub fn adm(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("tgtadm")
            .args(["-C", &self.control.to_string(), "--lld", "iscsi"])
            .args(args)
            .output()
            .context("running tgtadm")?;
        if !out.status.success() {
            bail!(
                "tgtadm {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A target `tid` named `iqn` with LUN 1 on `backing` (a file path, or null), open to all.
    pub fn add_target(&self, tid: u32, iqn: &str, backing: Option<&Path>) -> Result<()> {
        let tid_s = tid.to_string();
        self.adm(&[
            "--op", "new", "--mode", "target", "--tid", &tid_s, "-T", iqn,
        ])?;
        match backing {
            Some(p) => {
                let ps = p.to_string_lossy();
                self.adm(&[
                    "--op",
                    "new",
                    "--mode",
                    "logicalunit",
                    "--tid",
                    &tid_s,
                    "--lun",
                    "1",
                    "-b",
                    &ps,
                ])?;
            }
            None => {
                self.adm(&[
                    "--op",
                    "new",
                    "--mode",
                    "logicalunit",
                    "--tid",
                    &tid_s,
                    "--lun",
                    "1",
                    "--bstype",
                    "null",
                    "-b",
                    "nullb",
                ])?;
            }
        }
        self.adm(&[
            "--op", "bind", "--mode", "target", "--tid", &tid_s, "-I", "ALL",
        ])?;
        Ok(())
    }
}

/// Write `size` bytes of non-zero data to `path` so reads are served from the page cache and
/// not from holes (which the kernel answers without touching a page).
pub fn prefill(path: &Path, size: u64) -> Result<()> {
    use std::io::Write;
    let mut f =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut chunk = vec![0u8; 1 << 20];
    for (i, b) in chunk.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(7);
    }
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    f.sync_all()?;
    // Read it back once so every page is resident before the first round.
    let mut r = std::fs::File::open(path)?;
    let mut sink = vec![0u8; 1 << 20];
    while std::io::Read::read(&mut r, &mut sink)? > 0 {}
    Ok(())
}
