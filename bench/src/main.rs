//! `vds-bench`: benchmarks of vds.
//!
//! - `vds-bench iscsi`: vds and tgt side by side on loopback (issue 5), see [`iscsi`].
//! - `vds-bench api-scale`: management API latency as the LUN count grows to 10,000 (issue 2),
//!   see [`api_scale`].
//! - `vds-bench load`: one workload against one running target (profiling aid).
//! - `vds-bench rss`: peak RSS of vdsd with 64 sessions over 1,000 LUNs.

mod api_scale;
mod chart;
mod daemons;
mod initiator;
mod iscsi;
mod procstat;
mod rbd;
mod rss;
mod stats;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "vds-bench",
    about = "Benchmarks of vds (iSCSI vs tgt, API scale)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// vds and tgt side by side: reads with iscsi-perf, writes and mixes with the built-in
    /// initiator; medians, vds/tgt ratios, CPU per I/O, peak RSS, a table, JSON and a PNG chart.
    Iscsi(iscsi::IscsiOpts),
    /// Create up to 10,000 LUNs through the API and report create/show/set-status latency.
    ApiScale(api_scale::ApiScaleOpts),
    /// Drive one already-running target with the built-in initiator and print IOPS and
    /// latency (for profiling one side alone).
    Load(iscsi::LoadOpts),
    /// Peak RSS of vdsd serving 64 sessions over 1,000 LUNs (must stay under 256 MiB).
    Rss(rss::RssOpts),
    /// An RBD LUN through vds against fio's rbd engine on the same image (one-node Ceph).
    Rbd(rbd::RbdOpts),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Iscsi(o) => iscsi::run(o),
        Cmd::ApiScale(o) => api_scale::run(o),
        Cmd::Load(o) => iscsi::run_load(o),
        Cmd::Rss(o) => rss::run(o),
        Cmd::Rbd(o) => rbd::run(o),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vds-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
