//! `vds-bench rss`: peak resident memory of `vdsd` serving many sessions over many LUNs
//! (issue 5: 64 sessions over 1,000 LUNs under 256 MiB). Creates the LUNs through the API
//! (null backing, so the page cache is not counted), logs 64 sessions in, each on its own LUN,
//! runs 4 KiB random I/O on all of them at once, and reads VmHWM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use serde_json::json;

use crate::daemons::{self, Vdsd};
use crate::initiator::{self, Endpoint, Load, Session, Stats};
use crate::procstat;

/// Options of `vds-bench rss`.
#[derive(Debug, Clone, clap::Args)]
pub struct RssOpts {
    #[arg(long, default_value_t = 1000)]
    pub luns: usize,
    #[arg(long, default_value_t = 64)]
    pub sessions: usize,
    /// Commands outstanding per session.
    #[arg(long, default_value_t = 4)]
    pub qd: usize,
    /// Bytes per command (the largest buffers dominate memory).
    #[arg(long, default_value_t = 131072)]
    pub io_size: u32,
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// First of the loopback ports used (API, portal).
    #[arg(long, default_value_t = 46020)]
    pub port_base: u16,
    #[arg(long)]
    pub vdsd: Option<PathBuf>,
    #[arg(long)]
    pub no_build: bool,
}

pub fn run(o: RssOpts) -> Result<()> {
    if o.sessions == 0 || o.luns == 0 {
        bail!("--sessions and --luns must be positive");
    }
    let bin = daemons::release_vdsd(o.vdsd.as_deref(), !o.no_build)?;
    let work = tempfile::Builder::new().prefix("vds-rss-").tempdir()?;
    let api: SocketAddr = ([127, 0, 0, 1], o.port_base).into();
    let portal: SocketAddr = ([127, 0, 0, 1], o.port_base + 1).into();
    let vds = Vdsd::start(&bin, &work.path().join("vds-data"), api, portal)?;
    let (sid, tid, iqn) = vds.default_target()?;
    let mut numbers = Vec::with_capacity(o.luns);
    for _ in 0..o.luns {
        let (_, n) = vds.create_lun(&sid, &tid, 64 << 20, json!({"kind": "null"}))?;
        numbers.push(n);
    }
    let idle = procstat::rss(vds.daemon.pid());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let load = Load {
        io_size: o.io_size,
        qd: o.qd,
        read_pct: 50,
        random: true,
        warmup: Duration::from_millis(300),
        duration: Duration::from_secs(o.seconds),
    };
    let stats: Stats = rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..o.sessions {
            let ep = Endpoint {
                addr: portal,
                iqn: iqn.clone(),
                lun: numbers[i * numbers.len() / o.sessions],
            };
            let name = format!("iqn.2026-11.local.vds:rss-{i}");
            let mut s = Session::login(&ep, &name, i as u16 + 1).await?;
            let (blocks, block) = s.capacity().await?;
            let l = load.clone();
            tasks.push(tokio::spawn(initiator::run(s, l, blocks, block, i as u64)));
        }
        let mut total = Stats::default();
        for t in tasks {
            total.merge(t.await.map_err(|e| anyhow!("session task: {e}"))??);
        }
        Ok::<Stats, anyhow::Error>(total)
    })?;
    let peak = procstat::peak_rss(vds.daemon.pid());
    let mib = |b: Option<u64>| b.map(|b| b as f64 / 1048576.0).unwrap_or(f64::NAN);
    println!(
        "vdsd with {} LUNs, {} sessions (QD {}, {} KiB 50/50 random): {:.0} IOPS, {} errors; RSS idle {:.1} MiB, peak {:.1} MiB (limit 256 MiB)",
        o.luns,
        o.sessions,
        o.qd,
        o.io_size / 1024,
        stats.ios as f64 / stats.elapsed.as_secs_f64().max(1e-9),
        stats.errors,
        mib(idle),
        mib(peak)
    );
    if peak.is_some_and(|p| p > 256 << 20) {
        bail!("peak RSS over 256 MiB");
    }
    Ok(())
}
