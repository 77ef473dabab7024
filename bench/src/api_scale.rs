//! `vds-bench api-scale`: the management API as the LUN count grows. Creates LUNs one by one
//! through `POST /v1/subsystems/{id}/luns?wait=true` (null backing by default, so the disk is not
//! what is measured), and at each checkpoint (10, 1,000, 10,000 LUNs) measures p50/p99 of create
//! (the last creates before the checkpoint), show (`GET /v1/luns/{id}` of random LUNs) and
//! set-status (offline then online of random LUNs). The cost per call must not grow with the
//! count.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;
use serde_json::json;

use crate::daemons::{self, Vdsd};
use crate::procstat;

/// Options of `vds-bench api-scale`.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiScaleOpts {
    /// Checkpoints (LUN counts) at which latencies are measured; the last is the total created.
    #[arg(long, value_delimiter = ',', default_value = "10,1000,10000")]
    pub at: Vec<usize>,
    /// Backing of the created LUNs: null, memory or file (a sparse file in the data dir).
    #[arg(long, default_value = "null")]
    pub backing: String,
    /// Size of each LUN in MiB.
    #[arg(long, default_value_t = 1)]
    pub size_mib: u64,
    /// Show and set-status calls measured at each checkpoint (and creates in its window).
    #[arg(long, default_value_t = 100)]
    pub samples: usize,
    /// Do not attach the LUNs to the default target (then no LUN numbers are assigned).
    #[arg(long)]
    pub no_attach: bool,
    /// First of the loopback ports used (API, portal).
    #[arg(long, default_value_t = 46010)]
    pub port_base: u16,
    /// The vdsd binary (default: build and use the workspace's release vdsd).
    #[arg(long)]
    pub vdsd: Option<PathBuf>,
    /// Do not run `cargo build --release -p vdsd` first.
    #[arg(long)]
    pub no_build: bool,
    /// Where api-scale.json goes.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Keep the data dir (printed) instead of deleting it.
    #[arg(long)]
    pub keep: bool,
}

/// p50/p99 of one operation at one checkpoint, milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct OpLatency {
    pub op: &'static str,
    pub luns: usize,
    pub calls: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

fn summarize(op: &'static str, luns: usize, samples: &mut [f64]) -> OpLatency {
    samples.sort_by(|a, b| a.total_cmp(b));
    let pick = |p: f64| {
        if samples.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
        samples[rank.clamp(1, samples.len()) - 1]
    };
    OpLatency {
        op,
        luns,
        calls: samples.len(),
        p50_ms: pick(50.0),
        p99_ms: pick(99.0),
        max_ms: samples.last().copied().unwrap_or(f64::NAN),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn run(opts: ApiScaleOpts) -> Result<()> {
    let mut at = opts.at.clone();
    at.sort_unstable();
    at.dedup();
    if at.is_empty() || at[0] == 0 {
        bail!("--at needs positive LUN counts");
    }
    let backing = match opts.backing.as_str() {
        "null" => json!({"kind": "null"}),
        "memory" => json!({"kind": "memory"}),
        "file" => json!({"kind": "file"}),
        other => bail!("--backing {other:?}: expected null, memory or file"),
    };
    let bin = daemons::release_vdsd(opts.vdsd.as_deref(), !opts.no_build)?;
    let out_dir = opts
        .out
        .clone()
        .unwrap_or_else(|| daemons::workspace_root().join("bench").join("out"));
    std::fs::create_dir_all(&out_dir)?;
    let work = tempfile::Builder::new()
        .prefix("vds-api-scale-")
        .tempdir()?;
    let api: SocketAddr = ([127, 0, 0, 1], opts.port_base).into();
    let portal: SocketAddr = ([127, 0, 0, 1], opts.port_base + 1).into();
    let data_dir = work.path().join("vds-data");
    let vds = Vdsd::start(&bin, &data_dir, api, portal)?;
    let (sid, tid, _) = vds.default_target()?;
    let size = opts.size_mib << 20;
    let load_before = crate::iscsi::load_average();
    let started = Instant::now();

    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut ids: Vec<String> = Vec::new();
    let mut create_ms: Vec<f64> = Vec::new();
    let mut results: Vec<OpLatency> = Vec::new();
    let body = |i: usize| {
        let mut b = json!({
            "size_bytes": size,
            "friendly_name": format!("bench-{i}"),
            "backing": backing.clone(),
        });
        if !opts.no_attach {
            b["targets"] = json!([tid]);
        }
        b
    };
    let create_path = format!("/subsystems/{sid}/luns?wait=true");
    for &n in &at {
        while ids.len() < n {
            let i = ids.len();
            let t = Instant::now();
            let lun = vds
                .post(&create_path, body(i))
                .with_context(|| format!("creating LUN {}", i + 1))?;
            create_ms.push(ms(t.elapsed()));
            let id = lun["id"]
                .as_str()
                .with_context(|| format!("created LUN without id: {lun}"))?;
            ids.push(id.to_string());
            if ids.len().is_multiple_of(1000) {
                let w = &create_ms[create_ms.len() - 1000..];
                let mut w = w.to_vec();
                let s = summarize("create", ids.len(), &mut w);
                eprintln!(
                    "vds-bench: {} LUNs, last 1000 creates p50 {:.2} ms p99 {:.2} ms, {:.0} s elapsed",
                    ids.len(),
                    s.p50_ms,
                    s.p99_ms,
                    started.elapsed().as_secs_f64()
                );
            }
        }
        // Creates: the window of the last `samples` creates up to this count.
        let from = n.saturating_sub(opts.samples.max(1));
        let mut w = create_ms[from..n].to_vec();
        results.push(summarize("create", n, &mut w));

        let mut show = Vec::new();
        for _ in 0..opts.samples {
            let id = ids.choose(&mut rng).expect("at least one LUN");
            let t = Instant::now();
            vds.get(&format!("/luns/{id}"))?;
            show.push(ms(t.elapsed()));
        }
        results.push(summarize("show", n, &mut show));

        let mut set = Vec::new();
        for _ in 0..opts.samples {
            let id = ids.choose(&mut rng).expect("at least one LUN");
            for status in ["offline", "online"] {
                let t = Instant::now();
                vds.post(&format!("/luns/{id}/status"), json!({ "status": status }))
                    .with_context(|| format!("set-status {status} of LUN {id}"))?;
                set.push(ms(t.elapsed()));
            }
        }
        results.push(summarize("set-status", n, &mut set));
        eprintln!("vds-bench: checkpoint {n} LUNs measured");
    }
    let elapsed = started.elapsed();
    let rss = procstat::peak_rss(vds.daemon.pid());
    let cur_rss = procstat::rss(vds.daemon.pid());
    let load_after = crate::iscsi::load_average();
    drop(vds);
    let table = render(&results);
    println!("{table}");
    println!(
        "{} LUNs ({} backing, {} MiB each) created in {:.1} s; vdsd peak RSS {:.1} MiB (now {:.1} MiB); load average {} -> {}",
        ids.len(),
        opts.backing,
        opts.size_mib,
        elapsed.as_secs_f64(),
        rss.unwrap_or(0) as f64 / 1048576.0,
        cur_rss.unwrap_or(0) as f64 / 1048576.0,
        load_before,
        load_after
    );
    let all_creates_s: f64 = create_ms.iter().sum::<f64>() / 1000.0;
    let doc = json!({
        "machine": crate::iscsi::machine(),
        "backing": opts.backing,
        "size_mib": opts.size_mib,
        "attached": !opts.no_attach,
        "luns": ids.len(),
        "elapsed_s": elapsed.as_secs_f64(),
        "create_total_s": all_creates_s,
        "peak_rss_bytes": rss,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "latency": results,
    });
    let path = out_dir.join("api-scale.json");
    std::fs::write(&path, serde_json::to_string_pretty(&doc)?)?;
    std::fs::write(out_dir.join("api-scale.md"), &table)?;
    eprintln!("vds-bench: wrote {}", path.display());
    if opts.keep {
        let kept = work.keep();
        eprintln!(
            "vds-bench: data dir kept at {}",
            kept.join("vds-data").display()
        );
    }
    Ok(())
}

/// Markdown table: one line per operation, one column pair per checkpoint.
pub fn render(results: &[OpLatency]) -> String {
    let mut counts: Vec<usize> = results.iter().map(|r| r.luns).collect();
    counts.dedup();
    let mut s = String::from("| operation |");
    for n in &counts {
        s.push_str(&format!(" p50 / p99 ms at {n} LUNs |"));
    }
    s.push_str("\n| --- |");
    for _ in &counts {
        s.push_str(" ---: |");
    }
    s.push('\n');
    for op in ["create", "show", "set-status"] {
        s.push_str(&format!("| {op} |"));
        for n in &counts {
            match results.iter().find(|r| r.op == op && r.luns == *n) {
                Some(r) => s.push_str(&format!(" {:.2} / {:.2} |", r.p50_ms, r.p99_ms)),
                None => s.push_str(" - |"),
            }
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_and_table() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = summarize("show", 10, &mut v);
        assert_eq!(
            (s.p50_ms, s.p99_ms, s.max_ms, s.calls),
            (50.0, 99.0, 100.0, 100)
        );
        let t = render(&[s.clone(), OpLatency { luns: 1000, ..s }]);
        assert!(t.contains("at 10 LUNs"));
        assert!(t.contains("at 1000 LUNs"));
        assert!(t.contains("| show | 50.00 / 99.00 | 50.00 / 99.00 |"));
        assert!(t.contains("| create | - | - |"));
    }
}
