//! `vds-bench iscsi`: vds and tgt side by side on loopback. Both serve a page-cached file of the
//! same size and their null backing store; vds also a 2-plex mirror LUN and a 2-column stripe
//! LUN on two `block` drives that are files, against tgt on one file; every workload runs on
//! both, alternating which goes first, for several rounds; the report is the median of each,
//! the vds/tgt ratio, the daemon's CPU time per I/O and its peak RSS.
//!
//! Reads are driven by libiscsi's `iscsi-perf` (IOPS only); writes, mixes and latency
//! percentiles by this crate's initiator ([`crate::initiator`]), the same way on both targets.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use serde_json::json;

use crate::daemons::{self, Tgtd, Vdsd};
use crate::initiator::{self, Endpoint, Load, Session, Stats};
use crate::procstat;
use crate::stats::{median, p50_p99_us};

/// Options of `vds-bench iscsi`.
#[derive(Debug, Clone, clap::Args)]
pub struct IscsiOpts {
    /// Measured seconds per run (after a short warm-up).
    #[arg(long, default_value_t = 3)]
    pub seconds: u64,
    /// Rounds; each workload runs once per round on each target.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// One round of one second over a subset of the workloads (a smoke run).
    #[arg(long)]
    pub quick: bool,
    /// Only workloads whose name contains one of these (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Backings to test: file, null, mirror (a 2-plex mirror LUN on two `block` drives that are
    /// files), stripe (a 2-column stripe LUN on two such drives). tgt serves one file for each
    /// of file, mirror and stripe.
    #[arg(long, value_delimiter = ',', default_value = "file,null,mirror,stripe")]
    pub backing: Vec<String>,
    /// Size of each LUN in MiB.
    #[arg(long, default_value_t = 1024)]
    pub size_mib: u64,
    /// First of the loopback ports used (tgt portal, vdsd API, vdsd portal).
    #[arg(long, default_value_t = 46000)]
    pub port_base: u16,
    /// tgtd control id (`tgtd -C`), so the bench never touches another tgtd.
    #[arg(long, default_value_t = 46)]
    pub tgt_control: u32,
    /// The vdsd binary (default: build and use the workspace's release vdsd).
    #[arg(long)]
    pub vdsd: Option<PathBuf>,
    /// Do not run `cargo build --release -p vdsd` first.
    #[arg(long)]
    pub no_build: bool,
    /// Where results.json and iscsi.png go.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write the chart here (e.g. docs/perf-iscsi.png).
    #[arg(long)]
    pub chart: Option<PathBuf>,
}

/// Options of `vds-bench load`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadOpts {
    /// Portal address, e.g. 127.0.0.1:3260.
    #[arg(long)]
    pub addr: SocketAddr,
    /// Target IQN.
    #[arg(long)]
    pub iqn: String,
    #[arg(long, default_value_t = 0)]
    pub lun: u64,
    /// Bytes per command.
    #[arg(long, default_value_t = 4096)]
    pub io_size: u32,
    #[arg(long, default_value_t = 32)]
    pub qd: usize,
    /// Percentage of reads (100 = reads only, 0 = writes only).
    #[arg(long, default_value_t = 100)]
    pub read_pct: u8,
    /// Sequential instead of random offsets.
    #[arg(long)]
    pub seq: bool,
    #[arg(long, default_value_t = 1)]
    pub sessions: usize,
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
}

/// `vds-bench load`: one run of the generator, printed.
pub fn run_load(o: LoadOpts) -> Result<()> {
    if o.read_pct > 100 {
        bail!("--read-pct must be 0..=100");
    }
    let side = Side {
        name: "target",
        pid: 0,
        addr: o.addr,
        iqn: o.iqn.clone(),
        lun: o.lun,
    };
    let w = wl(
        "load",
        Driver::Generator,
        o.io_size,
        o.qd,
        o.read_pct,
        !o.seq,
        o.sessions.max(1),
    );
    let mut s = run_generator(&side, &w, o.seconds)?;
    let secs = s.elapsed.as_secs_f64().max(1e-9);
    let (p50, p99) = p50_p99_us(&mut s.lat_ns);
    println!(
        "{:.0} IOPS, {:.1} MiB/s, p50 {} us, p99 {} us, {} errors",
        s.ios as f64 / secs,
        s.bytes as f64 / secs / 1048576.0,
        fmt_opt(p50, 0),
        fmt_opt(p99, 0),
        s.errors
    );
    Ok(())
}

/// Which initiator drives a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Driver {
    IscsiPerf,
    Generator,
}

/// One workload: I/O size, depth, read share, pattern, sessions.
#[derive(Debug, Clone, Serialize)]
pub struct Workload {
    pub name: String,
    pub driver: Driver,
    pub io_size: u32,
    pub qd: usize,
    pub read_pct: u8,
    pub random: bool,
    pub sessions: usize,
}

pub(crate) fn wl(
    name: &str,
    driver: Driver,
    io: u32,
    qd: usize,
    read: u8,
    random: bool,
    sessions: usize,
) -> Workload {
    Workload {
        name: name.into(),
        driver,
        io_size: io,
        qd,
        read_pct: read,
        random,
        sessions,
    }
}

/// The workloads of issue 5.
pub fn workloads(quick: bool) -> Vec<Workload> {
    use Driver::*;
    let mut v = Vec::new();
    for (kind, read, drv) in [
        ("read", 100u8, IscsiPerf),
        ("write", 0, Generator),
        ("mix70", 70, Generator),
    ] {
        v.push(wl(
            &format!("{kind} 4k rand qd1"),
            drv,
            4096,
            1,
            read,
            true,
            1,
        ));
        v.push(wl(
            &format!("{kind} 4k rand qd32"),
            drv,
            4096,
            32,
            read,
            true,
            1,
        ));
        v.push(wl(
            &format!("{kind} 4k rand qd128"),
            drv,
            4096,
            128,
            read,
            true,
            1,
        ));
        v.push(wl(
            &format!("{kind} 128k seq qd8"),
            drv,
            128 << 10,
            8,
            read,
            false,
            1,
        ));
        v.push(wl(
            &format!("{kind} 1m seq qd4"),
            drv,
            1 << 20,
            4,
            read,
            false,
            1,
        ));
    }
    // Latency percentiles of reads come from the generator (iscsi-perf prints none).
    v.push(wl("lat read 4k rand qd1", Generator, 4096, 1, 100, true, 1));
    v.push(wl(
        "8sess read 4k rand qd16",
        IscsiPerf,
        4096,
        16,
        100,
        true,
        8,
    ));
    v.push(wl(
        "8sess write 4k rand qd16",
        Generator,
        4096,
        16,
        0,
        true,
        8,
    ));
    v.push(wl(
        "8sess mix70 4k rand qd16",
        Generator,
        4096,
        16,
        70,
        true,
        8,
    ));
    v.push(wl(
        "8sess lat read 4k rand qd1",
        Generator,
        4096,
        1,
        100,
        true,
        8,
    ));
    if quick {
        let keep = [
            "read 4k rand qd32",
            "write 4k rand qd32",
            "mix70 4k rand qd32",
            "read 128k seq qd8",
            "lat read 4k rand qd1",
            "8sess read 4k rand qd16",
        ];
        v.retain(|w| keep.contains(&w.name.as_str()));
    }
    v
}

/// One measured run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunResult {
    pub iops: f64,
    pub mib_s: f64,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub cpu_us_per_io: Option<f64>,
    pub errors: u64,
}

/// Everything about one workload on one backing, both targets.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub workload: Workload,
    pub backing: String,
    pub tgt: Vec<RunResult>,
    pub vds: Vec<RunResult>,
    pub tgt_median: RunResult,
    pub vds_median: RunResult,
    /// vds IOPS / tgt IOPS (medians).
    pub ratio: Option<f64>,
}

/// One side under test.
#[derive(Clone)]
pub(crate) struct Side {
    pub(crate) name: &'static str,
    pub(crate) pid: u32,
    pub(crate) addr: SocketAddr,
    pub(crate) iqn: String,
    pub(crate) lun: u64,
}

pub fn run(opts: IscsiOpts) -> Result<()> {
    let mut opts = opts;
    if opts.quick {
        opts.seconds = 1;
        opts.rounds = 1;
    }
    for b in &opts.backing {
        if !BACKINGS.contains(&b.as_str()) {
            bail!("--backing: {b:?} is none of {}", BACKINGS.join(", "));
        }
    }
    let has = |b: &str| opts.backing.iter().any(|x| x == b);
    let composite = has("mirror") || has("stripe");
    which("tgtd")?;
    which("tgtadm")?;
    which("iscsi-perf")?;
    let vdsd_bin = daemons::release_vdsd(opts.vdsd.as_deref(), !opts.no_build)?;
    let out_dir = opts
        .out
        .clone()
        .unwrap_or_else(|| daemons::workspace_root().join("bench").join("out"));
    std::fs::create_dir_all(&out_dir)?;
    let work = tempfile::Builder::new().prefix("vds-bench-").tempdir()?;
    let size = opts.size_mib << 20;

    let tgt_portal: SocketAddr = ([127, 0, 0, 1], opts.port_base).into();
    let api: SocketAddr = ([127, 0, 0, 1], opts.port_base + 1).into();
    let vds_portal: SocketAddr = ([127, 0, 0, 1], opts.port_base + 2).into();

    eprintln!(
        "vds-bench: preparing two {} MiB page-cached files",
        opts.size_mib
    );
    let tgt_img = work.path().join("tgt.img");
    let vds_img = work.path().join("vds.img");
    if has("file") || composite {
        daemons::prefill(&tgt_img, size)?;
    }
    if has("file") {
        daemons::prefill(&vds_img, size)?;
    }

    // Write and mixed workloads on files get their own sparse files that are never read through
    // the page cache: once ext4 has built large folios for a file (reading it does that), every
    // 4 KiB pwrite into it spends most of its time in ext4_block_write_begin, on both targets
    // alike, and the run measures that instead of the targets (docs/PERFORMANCE.md, pitfall).
    let tgt_w_img = work.path().join("tgt-w.img");
    let vds_w_img = work.path().join("vds-w.img");
    if has("file") || composite {
        for p in [&tgt_w_img, &vds_w_img] {
            std::fs::File::create(p)
                .and_then(|f| f.set_len(size))
                .with_context(|| format!("creating {}", p.display()))?;
        }
    }

    let tgt = Tgtd::start(opts.tgt_control, tgt_portal, &work.path().join("tgtd.log"))?;
    let vds = Vdsd::start(&vdsd_bin, &work.path().join("vds-data"), api, vds_portal)?;
    let (sid, tid, vds_iqn) = vds.default_target()?;

    let tgt_side = |iqn: String| Side {
        name: "tgt",
        pid: tgt.daemon.pid(),
        addr: tgt_portal,
        iqn,
        lun: 1,
    };
    let vds_side = |number: u64| Side {
        name: "vds",
        pid: vds.daemon.pid(),
        addr: vds_portal,
        iqn: vds_iqn.clone(),
        lun: number,
    };
    let mut sides: Vec<(String, Side, Side)> = Vec::new();
    let mut write_sides: Vec<(String, Side, Side)> = Vec::new();
    // The files that hold the vds side of each write row, punched before every write run.
    let mut vds_write_files: Vec<(String, Vec<(PathBuf, u64)>)> = Vec::new();
    if has("file") || composite {
        let tgt_iqn = "iqn.2001-04.com.example:vds-bench-w".to_string();
        tgt.add_target(100, &tgt_iqn, Some(tgt_w_img.as_path()))?;
        for (i, b) in opts.backing.iter().enumerate() {
            let (number, files) = match b.as_str() {
                "file" => {
                    let lun = vds.create_lun(
                        &sid,
                        &tid,
                        size,
                        json!({"kind": "file", "path": vds_w_img}),
                    )?;
                    (lun.1, vec![(vds_w_img.clone(), 0)])
                }
                "mirror" | "stripe" => {
                    let files = drive_files(work.path(), &format!("{b}-w"), b, size, false)?;
                    let number = composite_lun(&vds, &sid, &tid, b, size, &files, i)?;
                    let files = files.into_iter().map(|p| (p, DRIVE_LABEL)).collect();
                    (number, files)
                }
                _ => continue,
            };
            write_sides.push((b.clone(), tgt_side(tgt_iqn.clone()), vds_side(number)));
            vds_write_files.push((b.clone(), files));
        }
    }
    for (i, b) in opts.backing.iter().enumerate() {
        let tgt_iqn = format!("iqn.2001-04.com.example:vds-bench-{b}");
        let lun_path = (b != "null").then_some(tgt_img.as_path());
        tgt.add_target(i as u32 + 1, &tgt_iqn, lun_path)?;
        let number = match b.as_str() {
            "file" => {
                vds.create_lun(&sid, &tid, size, json!({"kind": "file", "path": vds_img}))?
                    .1
            }
            "null" => vds.create_lun(&sid, &tid, size, json!({"kind": "null"}))?.1,
            _ => {
                let files = drive_files(work.path(), &format!("{b}-r"), b, size, true)?;
                composite_lun(&vds, &sid, &tid, b, size, &files, 10 + i)?
            }
        };
        sides.push((b.clone(), tgt_side(tgt_iqn), vds_side(number)));
    }

    let load = load_average();
    let list: Vec<Workload> = workloads(opts.quick)
        .into_iter()
        .filter(|w| opts.only.is_empty() || opts.only.iter().any(|o| w.name.contains(o.as_str())))
        .collect();
    if list.is_empty() {
        bail!("--only matched no workload");
    }
    let total = list.len() * sides.len() * 2 * opts.rounds;
    eprintln!(
        "vds-bench: {} workloads x {} backings x 2 targets x {} rounds = {total} runs of {} s (load average {load})",
        list.len(),
        sides.len(),
        opts.rounds,
        opts.seconds
    );
    let mut rows: Vec<Row> = Vec::new();
    for (b, _, _) in &sides {
        for w in &list {
            rows.push(Row {
                workload: w.clone(),
                backing: b.clone(),
                tgt: Vec::new(),
                vds: Vec::new(),
                tgt_median: RunResult::default(),
                vds_median: RunResult::default(),
                ratio: None,
            });
        }
    }
    let started = Instant::now();
    let mut done = 0usize;
    for round in 0..opts.rounds {
        for row in rows.iter_mut() {
            let writes = row.workload.read_pct < 100;
            let (_, t, v) = write_sides
                .iter()
                .filter(|_| writes)
                .chain(sides.iter())
                .find(|(b, _, _)| *b == row.backing)
                .ok_or_else(|| anyhow!("no side for {}", row.backing))?;
            // Alternate who goes first so neither always runs on a warmer machine.
            let order: [&Side; 2] = if round % 2 == 0 { [t, v] } else { [v, t] };
            for side in order {
                if let Some((_, files)) = vds_write_files
                    .iter()
                    .find(|(b, _)| writes && *b == row.backing)
                {
                    // Every file-write run starts from the same state on both sides: the
                    // previous run's dirty pages written back now, not during this one (else
                    // whichever side runs second pays for the first's writeback), and both
                    // write files sparse again, so no run inherits the page-cache folios the
                    // workloads before it left (docs/PERFORMANCE.md, the folio pitfalls).
                    // A drive's label (its first MiB) is kept.
                    settle_writeback();
                    punch(&tgt_w_img, 0, size)?;
                    for (p, from) in files {
                        let len = std::fs::metadata(p)?.len() - from;
                        punch(p, *from, len)?;
                    }
                }
                let r = run_one(side, &row.workload, opts.seconds).with_context(|| {
                    format!("{} on {} ({})", row.workload.name, side.name, row.backing)
                })?;
                done += 1;
                eprintln!(
                    "[{done}/{total}] round {} {:<28} {:<4} {}: {:>9.0} IOPS {:>8.1} MiB/s p99 {:>8} us cpu {:>6} us/IO",
                    round + 1,
                    row.workload.name,
                    row.backing,
                    side.name,
                    r.iops,
                    r.mib_s,
                    fmt_opt(r.p99_us, 0),
                    fmt_opt(r.cpu_us_per_io, 1)
                );
                if side.name == "tgt" {
                    row.tgt.push(r);
                } else {
                    row.vds.push(r);
                }
            }
        }
    }
    for row in rows.iter_mut() {
        row.tgt_median = median_of(&row.tgt);
        row.vds_median = median_of(&row.vds);
        row.ratio = (row.tgt_median.iops > 0.0).then(|| row.vds_median.iops / row.tgt_median.iops);
    }
    let tgt_rss = procstat::peak_rss(tgt.daemon.pid());
    let vds_rss = procstat::peak_rss(vds.daemon.pid());
    let load_after = load_average();
    drop(vds);
    drop(tgt);

    let table = render_table(&rows);
    println!("{table}");
    println!(
        "peak RSS: tgtd {}  vdsd {}",
        fmt_mib(tgt_rss),
        fmt_mib(vds_rss)
    );
    println!(
        "load average: before {load}, after {load_after}; {} s total",
        started.elapsed().as_secs()
    );
    let results = json!({
        "machine": machine(),
        "load_average_before": load,
        "load_average_after": load_after,
        "seconds": opts.seconds,
        "rounds": opts.rounds,
        "size_mib": opts.size_mib,
        "peak_rss_bytes": {"tgtd": tgt_rss, "vdsd": vds_rss},
        "rows": rows,
    });
    let json_path = out_dir.join("results.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&results)?)?;
    let note = format!(
        "{} cpus, load avg {load}/{load_after}, {} rounds of {} s",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        opts.rounds,
        opts.seconds
    );
    let png = crate::chart::render(&rows, &note)?;
    let png_path = out_dir.join("iscsi.png");
    std::fs::write(&png_path, &png)?;
    if let Some(c) = &opts.chart {
        std::fs::write(c, &png)?;
    }
    std::fs::write(out_dir.join("table.md"), &table)?;
    eprintln!(
        "vds-bench: wrote {}, {} and table.md",
        json_path.display(),
        png_path.display()
    );
    Ok(())
}

fn which(tool: &str) -> Result<()> {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        bail!("{tool} not found (apt-get install tgt libiscsi-bin)")
    }
}

/// The 1-minute load average, as /proc/loadavg prints it.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// CPU model and count, for the record.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpus} x {model}")
}

fn median_of(runs: &[RunResult]) -> RunResult {
    let m = |f: &dyn Fn(&RunResult) -> Option<f64>| {
        let v: Vec<f64> = runs.iter().filter_map(f).collect();
        median(&v)
    };
    RunResult {
        iops: m(&|r| Some(r.iops)).unwrap_or(0.0),
        mib_s: m(&|r| Some(r.mib_s)).unwrap_or(0.0),
        p50_us: m(&|r| r.p50_us),
        p99_us: m(&|r| r.p99_us),
        cpu_us_per_io: m(&|r| r.cpu_us_per_io),
        errors: runs.iter().map(|r| r.errors).sum(),
    }
}

/// Deallocate the whole of `path` (it stays `size` bytes long and open in its target):
/// `fallocate --punch-hole`.
/// The backings `--backing` takes.
const BACKINGS: [&str; 4] = ["file", "null", "mirror", "stripe"];

/// Bytes at the start of a `block` drive that hold its label (BEHAVIOUR.md §15).
const DRIVE_LABEL: u64 = 1 << 20;

/// Stripe unit of the stripe row.
const STRIPE_SIZE: u64 = 64 << 10;

/// The two files that stand for the `block` drives of a mirror or stripe LUN of `size` bytes:
/// room for the label and a plex (mirror) or half the LUN (stripe) each, plus a MiB of slack;
/// `fill`ed and page-cached for read rows, sparse for write rows.
fn drive_files(
    dir: &std::path::Path,
    prefix: &str,
    kind: &str,
    size: u64,
    fill: bool,
) -> Result<Vec<PathBuf>> {
    let per = if kind == "mirror" { size } else { size / 2 };
    let len = DRIVE_LABEL + per + (1 << 20);
    let mut files = Vec::new();
    for i in 0..2 {
        let p = dir.join(format!("{prefix}-{i}.img"));
        if fill {
            daemons::prefill(&p, len)?;
        } else {
            std::fs::File::create(&p)
                .and_then(|f| f.set_len(len))
                .with_context(|| format!("creating {}", p.display()))?;
        }
        files.push(p);
    }
    Ok(files)
}

/// A mirror (2 plexes) or stripe (2 columns) LUN of `size` bytes on target `tid`, on two
/// `block` drives made of `files`; its LUN number.
fn composite_lun(
    vds: &Vdsd,
    sid: &str,
    tid: &str,
    kind: &str,
    size: u64,
    files: &[PathBuf],
    n: usize,
) -> Result<u64> {
    let mut drives = Vec::new();
    for (i, f) in files.iter().enumerate() {
        drives.push(vds.add_drive(sid, "block", f, &format!("bench-{n}-{i}"))?);
    }
    let mut body = json!({
        "size_bytes": size,
        "friendly_name": format!("bench-{kind}-{n}"),
        "type": kind,
        "drives": drives,
        "targets": [tid],
    });
    if kind == "mirror" {
        body["plexes"] = json!(2);
    } else {
        body["stripe_size"] = json!(STRIPE_SIZE);
    }
    let lun = vds.post(&format!("/subsystems/{sid}/luns?wait=true"), body)?;
    lun["lun_numbers"][tid]
        .as_u64()
        .ok_or_else(|| anyhow!("the {kind} LUN has no number on target {tid}: {lun}"))
}

/// Deallocate `len` bytes of `path` from `offset`.
fn punch(path: &std::path::Path, offset: u64, len: u64) -> Result<()> {
    let st = Command::new("fallocate")
        .args(["--punch-hole", "--offset"])
        .arg(offset.to_string())
        .arg("--length")
        .arg(len.to_string())
        .arg(path)
        .status()
        .context("running fallocate")?;
    if !st.success() {
        bail!("fallocate --punch-hole {} failed: {st}", path.display());
    }
    Ok(())
}

/// `sync`: write back every dirty page before a measured file-write run.
fn settle_writeback() {
    match Command::new("sync").status() {
        Ok(st) if st.success() => {}
        other => eprintln!("vds-bench: sync before a write run failed: {other:?}"),
    }
}

fn run_one(side: &Side, w: &Workload, seconds: u64) -> Result<RunResult> {
    let cpu0 = procstat::cpu_time(side.pid);
    let (ios, bytes, mut lat, errors, secs) = match w.driver {
        Driver::IscsiPerf => {
            let (iops, secs) = run_iscsi_perf(side, w, seconds)?;
            let ios = (iops * secs) as u64;
            (ios, ios * u64::from(w.io_size), Vec::new(), 0, secs)
        }
        Driver::Generator => {
            let s = run_generator(side, w, seconds)?;
            (s.ios, s.bytes, s.lat_ns, s.errors, s.elapsed.as_secs_f64())
        }
    };
    let cpu1 = procstat::cpu_time(side.pid);
    let (p50, p99) = if lat.is_empty() {
        (None, None)
    } else {
        p50_p99_us(&mut lat)
    };
    let cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) if ios > 0 => Some((b - a).as_secs_f64() * 1e6 / ios as f64),
        _ => None,
    };
    if errors > 0 {
        eprintln!("vds-bench: {} errors on {} {}", errors, side.name, w.name);
    }
    Ok(RunResult {
        iops: ios as f64 / secs.max(1e-9),
        mib_s: bytes as f64 / secs.max(1e-9) / f64::from(1u32 << 20),
        p50_us: p50,
        p99_us: p99,
        cpu_us_per_io: cpu,
        errors,
    })
}

/// Drive `w` with the built-in initiator: each session on a thread of its own (as separate
/// initiators, or iscsi-perf's one process per session, would be), so several sessions are
/// not capped by one core of the generator.
pub(crate) fn run_generator(side: &Side, w: &Workload, seconds: u64) -> Result<Stats> {
    let ep = Endpoint {
        addr: side.addr,
        iqn: side.iqn.clone(),
        lun: side.lun,
    };
    let load = Load {
        io_size: w.io_size,
        qd: w.qd,
        read_pct: w.read_pct,
        random: w.random,
        warmup: Duration::from_millis(300),
        duration: Duration::from_secs(seconds),
    };
    let threads: Vec<_> = (0..w.sessions)
        .map(|i| {
            let ep = ep.clone();
            let load = load.clone();
            std::thread::spawn(move || -> Result<Stats> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async move {
                    let name = format!("iqn.2026-11.local.vds:bench-{i}");
                    let mut s = Session::login(&ep, &name, i as u16 + 1).await?;
                    // Every new I_T nexus starts with a unit attention (power on / reset);
                    // READ CAPACITY consumes it before the measured commands.
                    let (blocks, block) = s.capacity().await?;
                    initiator::run(s, load, blocks, block, 0x5eed + i as u64).await
                })
            })
        })
        .collect();
    let mut total = Stats::default();
    for t in threads {
        total.merge(t.join().map_err(|_| anyhow!("session thread panicked"))??);
    }
    Ok(total)
}

/// Run `sessions` iscsi-perf processes at once; (aggregate IOPS, seconds).
fn run_iscsi_perf(side: &Side, w: &Workload, seconds: u64) -> Result<(f64, f64)> {
    // iscsi-perf counts in blocks of the LUN; both targets use 512-byte blocks here, which the
    // generator's READ CAPACITY confirmed at setup.
    let blocks = (w.io_size / 512).to_string();
    let url = format!("iscsi://{}/{}/{}", side.addr, side.iqn, side.lun);
    let secs = seconds + 1;
    let mut children = Vec::new();
    for i in 0..w.sessions {
        let mut c = Command::new("iscsi-perf");
        c.arg("-i")
            .arg(format!("iqn.2026-11.local.vds:perf-{i}"))
            .arg("-m")
            .arg(w.qd.to_string())
            .arg("-b")
            .arg(&blocks)
            .arg("-t")
            .arg(secs.to_string());
        if w.random {
            c.arg("-r");
        }
        c.arg(&url).stdout(Stdio::piped()).stderr(Stdio::piped());
        children.push(c.spawn().context("starting iscsi-perf")?);
    }
    let mut total = 0.0;
    for c in children {
        let out = c.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let iops = parse_iscsi_perf(&text).ok_or_else(|| {
            anyhow!(
                "iscsi-perf printed no average (exit {:?}): {} {}",
                out.status.code(),
                text.chars()
                    .rev()
                    .take(300)
                    .collect::<String>()
                    .chars()
                    .rev()
                    .collect::<String>(),
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        total += iops;
    }
    Ok((total, secs as f64))
}

/// The final "iops average N" of iscsi-perf's output (its progress lines use the same words,
/// separated by carriage returns; the last one is the whole-run average).
pub fn parse_iscsi_perf(out: &str) -> Option<f64> {
    let at = out.rfind("iops average ")?;
    let rest = &out[at + "iops average ".len()..];
    let num: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    num.parse().ok()
}

fn fmt_opt(v: Option<f64>, prec: usize) -> String {
    v.map(|x| format!("{x:.prec$}"))
        .unwrap_or_else(|| "-".into())
}

fn fmt_mib(v: Option<u64>) -> String {
    v.map(|b| format!("{:.1} MiB", b as f64 / f64::from(1u32 << 20)))
        .unwrap_or_else(|| "?".into())
}

/// A Markdown table of the medians.
pub fn render_table(rows: &[Row]) -> String {
    let mut s = String::new();
    s.push_str("| workload | backing | tgt IOPS | vds IOPS | vds/tgt | tgt MiB/s | vds MiB/s | tgt p50/p99 us | vds p50/p99 us | tgt CPU us/IO | vds CPU us/IO |\n");
    s.push_str("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for r in rows {
        let (t, v) = (&r.tgt_median, &r.vds_median);
        let lat = |x: &RunResult| match (x.p50_us, x.p99_us) {
            (Some(a), Some(b)) => format!("{a:.0}/{b:.0}"),
            _ => "-".into(),
        };
        s.push_str(&format!(
            "| {} | {} | {:.0} | {:.0} | {} | {:.1} | {:.1} | {} | {} | {} | {} |\n",
            r.workload.name,
            r.backing,
            t.iops,
            v.iops,
            r.ratio
                .map(|x| format!("{x:.2}x"))
                .unwrap_or_else(|| "-".into()),
            t.mib_s,
            v.mib_s,
            lat(t),
            lat(v),
            fmt_opt(t.cpu_us_per_io, 1),
            fmt_opt(v.cpu_us_per_io, 1),
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iscsi_perf_final_average_is_parsed() {
        let out = "performing RANDOM READ\n00:00:02 - lba 1, iops current 11361 (44 MB/s), iops average 11361 (44 MB/s), in_flight 32, busy 0\r00:00:01 - lba 2, iops current 15577 (60 MB/s), iops average 13485 (52 MB/s)\riops average 14312 (55 MB/s)      \n\nfinished.\n";
        assert_eq!(parse_iscsi_perf(out), Some(14312.0));
        assert_eq!(parse_iscsi_perf("connect failed"), None);
    }

    #[test]
    fn workload_list_covers_the_issue() {
        let all = workloads(false);
        for name in [
            "read 4k rand qd1",
            "read 4k rand qd32",
            "read 4k rand qd128",
            "read 128k seq qd8",
            "read 1m seq qd4",
            "write 4k rand qd32",
            "mix70 1m seq qd4",
            "8sess read 4k rand qd16",
            "8sess write 4k rand qd16",
        ] {
            assert!(all.iter().any(|w| w.name == name), "{name} missing");
        }
        assert!(all
            .iter()
            .filter(|w| w.name.starts_with("read"))
            .all(|w| w.driver == Driver::IscsiPerf));
        assert!(workloads(true).len() < all.len());
    }

    #[test]
    fn medians_ignore_missing_latencies() {
        let runs = vec![
            RunResult {
                iops: 10.0,
                p99_us: Some(5.0),
                ..Default::default()
            },
            RunResult {
                iops: 30.0,
                p99_us: None,
                ..Default::default()
            },
            RunResult {
                iops: 20.0,
                p99_us: Some(7.0),
                ..Default::default()
            },
        ];
        let m = median_of(&runs);
        assert_eq!(m.iops, 20.0);
        assert_eq!(m.p99_us, Some(6.0));
    }
}
