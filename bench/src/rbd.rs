//! `vds-bench rbd` (issue 15): an RBD LUN served by vds against fio's `rbd` engine on the same
//! image at the same queue depth, so the ratio is what the gateway keeps of raw librbd. Starts
//! its own one-node Ceph (`scripts/ceph-cluster`, monitor on 127.0.0.1:PORT_BASE), fills the
//! image once, runs every workload through fio and then through vdsd (the in-repo initiator),
//! and prints a table with the ratios. Needs the ceph packages and fio.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use crate::daemons::{release_vdsd, workspace_root, Vdsd};
use crate::iscsi::{load_average, run_generator, wl, Driver, Side};

/// Options of `vds-bench rbd`.
#[derive(Debug, Clone, clap::Args)]
pub struct RbdOpts {
    /// Measured seconds per run.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Size of the image in MiB.
    #[arg(long, default_value_t = 1024)]
    pub size_mib: u64,
    /// The monitor's port; vdsd's API and portal are the next two.
    #[arg(long, default_value_t = 46030)]
    pub port_base: u16,
    /// The loopback address vdsd's API and portal listen on (the monitor is on 127.0.0.1).
    #[arg(long, default_value = "127.0.0.1")]
    pub addr: std::net::Ipv4Addr,
    /// The vdsd binary (default: build and use the workspace's release vdsd).
    #[arg(long)]
    pub vdsd: Option<PathBuf>,
    /// Do not run `cargo build --release -p vdsd` first.
    #[arg(long)]
    pub no_build: bool,
}

/// The cluster, stopped (by its recorded pids) when dropped.
struct Cluster {
    dir: PathBuf,
    script: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(&self.script)
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}

/// (name, block size, queue depth, read percent, random)
const WORKLOADS: [(&str, u32, usize, u8, bool); 4] = [
    ("read 4k rand qd32", 4096, 32, 100, true),
    ("write 4k rand qd32", 4096, 32, 0, true),
    ("read 128k seq qd8", 128 << 10, 8, 100, false),
    ("write 128k seq qd8", 128 << 10, 8, 0, false),
];

/// fio's IOPS for one workload on `rbd/bench`.
fn fio(
    conf: &Path,
    name: &str,
    bs: u32,
    qd: usize,
    read: u8,
    random: bool,
    secs: u64,
) -> Result<f64> {
    let rw = match (read, random) {
        (100, true) => "randread",
        (100, false) => "read",
        (_, true) => "randwrite",
        (_, false) => "write",
    };
    let out = Command::new("fio")
        .env("CEPH_CONF", conf)
        .args([
            "--name=bench",
            "--ioengine=rbd",
            "--clientname=admin",
            "--pool=rbd",
            "--rbdname=bench",
            &format!("--rw={rw}"),
            &format!("--bs={bs}"),
            &format!("--iodepth={qd}"),
            "--time_based",
            &format!("--runtime={secs}"),
            "--ramp_time=1",
            "--output-format=json",
        ])
        .output()
        .context("running fio (apt-get install fio)")?;
    if !out.status.success() {
        bail!("fio {name}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: Value = serde_json::from_slice(&out.stdout).context("fio's JSON")?;
    let side = if read == 100 { "read" } else { "write" };
    v["jobs"][0][side]["iops"]
        .as_f64()
        .ok_or_else(|| anyhow!("fio {name}: no {side} iops in {v}"))
}

pub fn run(o: RbdOpts) -> Result<()> {
    let bin = release_vdsd(o.vdsd.as_deref(), !o.no_build)?;
    let tmp = tempfile::tempdir()?;
    let script = workspace_root().join("scripts/ceph-cluster");
    let dir = tmp.path().join("ceph");
    let st = Command::new(&script)
        .arg("start")
        .arg(&dir)
        .arg(o.port_base.to_string())
        .status()
        .context("scripts/ceph-cluster")?;
    if !st.success() {
        bail!("the one-node Ceph did not start");
    }
    let cluster = Cluster {
        dir: dir.clone(),
        script,
    };
    let conf = dir.join("ceph.conf");
    let size = o.size_mib << 20;
    let rbd = |args: &[&str]| -> Result<()> {
        let st = Command::new("rbd")
            .arg("-c")
            .arg(&conf)
            .args(args)
            .status()?;
        if !st.success() {
            bail!("rbd {args:?} failed");
        }
        Ok(())
    };
    rbd(&["create", "rbd/bench", "--size", &format!("{}M", o.size_mib)])?;
    // Every object written once, so reads on both sides hit data, not absent objects.
    eprintln!("vds-bench: filling the {} MiB image", o.size_mib);
    let fill = Command::new("fio")
        .env("CEPH_CONF", &conf)
        .args([
            "--name=fill",
            "--ioengine=rbd",
            "--clientname=admin",
            "--pool=rbd",
            "--rbdname=bench",
            "--rw=write",
            "--bs=4M",
            "--iodepth=8",
        ])
        .output()?;
    if !fill.status.success() {
        bail!("fio fill: {}", String::from_utf8_lossy(&fill.stderr));
    }
    eprintln!("vds-bench: load average {}", load_average());
    let mut raw = Vec::new();
    for (name, bs, qd, read, random) in WORKLOADS {
        let iops = fio(&conf, name, bs, qd, read, random, o.seconds)?;
        eprintln!("  librbd (fio) {name}: {iops:.0} IOPS");
        raw.push(iops);
    }
    if !o.addr.is_loopback() {
        bail!("--addr {}: vdsd listens on a loopback address only", o.addr);
    }
    let api = SocketAddr::from((o.addr, o.port_base + 1));
    let portal = SocketAddr::from((o.addr, o.port_base + 2));
    let conf_s = conf.display().to_string();
    let vdsd = Vdsd::start_with(
        &bin,
        &tmp.path().join("vds"),
        api,
        portal,
        &["--ceph-conf", &conf_s],
    )?;
    let (sid, tid, iqn) = vdsd.default_target()?;
    let (_, lun) = vdsd.create_lun(
        &sid,
        &tid,
        size,
        json!({"kind": "rbd", "pool": "rbd", "image": "bench"}),
    )?;
    let side = Side {
        name: "vds",
        pid: vdsd.daemon.pid(),
        addr: portal,
        iqn,
        lun,
    };
    println!("| workload | librbd (fio) IOPS | vds IOPS | vds/librbd |");
    println!("| --- | ---: | ---: | ---: |");
    for ((name, bs, qd, read, random), raw) in WORKLOADS.into_iter().zip(raw) {
        let w = wl(name, Driver::Generator, bs, qd, read, random, 1);
        let s = run_generator(&side, &w, o.seconds)?;
        if s.errors != 0 {
            bail!("{name}: {} errors through vds", s.errors);
        }
        let iops = s.ios as f64 / s.elapsed.as_secs_f64().max(1e-9);
        println!(
            "| {name} | {raw:.0} | {iops:.0} | {:.2}x |",
            iops / raw.max(1e-9)
        );
    }
    eprintln!("vds-bench: load average {}", load_average());
    drop(vdsd);
    drop(cluster);
    Ok(())
}
