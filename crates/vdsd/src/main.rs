//! `vdsd`: the vds daemon. Wires the provider (management engine and store), the iSCSI data
//! path and the HTTP API together, prints what it serves, and shuts down cleanly on
//! SIGTERM/SIGINT (initiators asked to log out, every LUN flushed, exit 0).

mod cli;
mod config;
mod token;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use vds_provider::{Command, Outcome, Provider, ProviderConfig};

fn main() -> ExitCode {
    let args = cli::Args::parse();
    let filter = EnvFilter::try_new(&args.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        // Colour codes only for a person at a terminal; a log file, journald or a pipe gets
        // plain text.
        cli::LogFormat::Text => fmt.with_ansi(std::io::stderr().is_terminal()).init(),
        // Log shippers parse each line on its own; JSON strings never carry colour codes.
        cli::LogFormat::Json => fmt.json().with_ansi(false).init(),
    }
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vdsd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: cli::Args) -> anyhow::Result<()> {
    let daemon_cfg = match &args.config {
        Some(p) => config::DaemonConfig::load(p).map_err(anyhow::Error::msg)?,
        None => config::DaemonConfig::default(),
    };
    if args.insecure_loopback_api && !args.api.ip().is_loopback() {
        anyhow::bail!(
            "--insecure-loopback-api: the API address {} is not a loopback address; \
             refusing to serve it without authentication",
            args.api
        );
    }

    raise_open_file_limit();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("vdsd")
        .build()?;

    // The API address is bound before anything else so a second daemon on the same data dir
    // or address fails fast instead of half-starting.
    let std_listener = std::net::TcpListener::bind(args.api)
        .map_err(|e| anyhow::anyhow!("cannot bind the API to {}: {e}", args.api))?;
    std_listener.set_nonblocking(true)?;

    let mut limits = daemon_cfg.target_limits();
    limits.panic_injection = args.enable_fault_injection;
    let datapath = vds_target::DataPath::new(rt.handle().clone(), limits)
        .map_err(|e| anyhow::anyhow!("cannot start the I/O threads: {e}"))?;
    // Before the provider opens: its rbd LUNs are opened through this cluster.
    if let Some(conf) = &args.ceph_conf {
        vds_backstore::rbd::connect(conf, &args.ceph_client).map_err(|e| {
            anyhow::anyhow!(
                "cannot connect to the Ceph cluster of {}: {e}",
                conf.display()
            )
        })?;
        tracing::info!(conf = %conf.display(), client = %args.ceph_client, "connected to Ceph");
    }
    let mut pcfg = ProviderConfig::new(&args.data_dir);
    pcfg.first_start_portals = args.first_start_portals();
    pcfg.first_start_advertise = args.first_start_advertise();
    pcfg.fault_injection = args.enable_fault_injection;
    pcfg.logout_timeout = daemon_cfg.logout_timeout;
    pcfg.portal_status_settable = daemon_cfg.portal_status_settable;
    if let Some(dirs) = &daemon_cfg.drive_search_dirs {
        pcfg.drive_search_dirs = dirs.clone();
    }
    if let (Some(pool), Some(gateway)) = (&args.ceph_pool, &args.gateway) {
        pcfg.cluster = Some(vds_provider::ClusterConfig {
            pool: pool.clone(),
            gateway: gateway.clone(),
        });
    }
    let provider = Arc::new(
        Provider::open(pcfg, Arc::new(datapath.clone()))
            .map_err(|e| anyhow::anyhow!("cannot open the provider: {e}"))?,
    );

    // After the provider made the data dir (with its permissions).
    let token = match &daemon_cfg.api_token {
        Some(t) => t.0.clone(),
        None => token::load_or_create(&args.data_dir).map_err(anyhow::Error::msg)?,
    };
    let mut api_cfg =
        vds_api::ApiConfig::for_listen_addr(args.api, Some(token), args.insecure_loopback_api)
            .map_err(anyhow::Error::msg)?;
    api_cfg.hosts = daemon_cfg.api_hosts.clone();
    api_cfg.metrics_public = daemon_cfg.metrics_public;

    print_banner(&provider, &args, daemon_cfg.api_token.is_some());

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    api_cfg.shutdown = Some(stop_rx);
    let router = vds_api::with_limits(
        vds_api::router(provider.clone(), api_cfg),
        daemon_cfg.api_limits(),
    );
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        let signal = async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            let _ = stop_tx.send(true);
        };
        vds_api::serve_with_shutdown(listener, router, signal).await
    })?;

    // Ask initiators to log out, flush every LUN; configuration is already durable.
    let p = provider.clone();
    let res = std::thread::spawn(move || p.shutdown())
        .join()
        .map_err(|_| anyhow::anyhow!("shutdown panicked"))?;
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    res.map_err(|e| anyhow::anyhow!("flush at shutdown failed: {e}"))?;
    println!("vdsd: stopped");
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot install the SIGTERM handler: {e}");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Prints what the array serves; readiness is signalled by this output (INTERFACE.md).
fn print_banner(provider: &Provider, args: &cli::Args, token_in_config: bool) {
    let targets = match provider.apply(Command::ListTargets { subsystem: None }) {
        Ok(Outcome::Targets(t)) => t,
        _ => Vec::new(),
    };
    let portals = match provider.apply(Command::ListPortals { subsystem: None }) {
        Ok(Outcome::Portals(p)) => p,
        _ => Vec::new(),
    };
    let luns = match provider.apply(Command::ListLuns { subsystem: None }) {
        Ok(Outcome::Luns(l)) => l,
        _ => Vec::new(),
    };
    println!("vdsd: data dir {}", args.data_dir.display());
    for t in &targets {
        println!("vdsd: target {}", t.iscsi_name);
    }
    for p in &portals {
        let addr = std::net::SocketAddr::new(p.address, p.port);
        println!("vdsd: portal {addr} {}", p.status.short_name());
    }
    for l in &luns {
        for (t, n) in &l.lun_numbers {
            let iqn = targets
                .iter()
                .find(|x| x.id == *t)
                .map(|x| x.iscsi_name.as_str())
                .unwrap_or("?");
            println!(
                "vdsd: lun {} ({} bytes, {}) at {iqn} LUN {n}",
                l.friendly_name,
                l.size_bytes,
                l.status.short_name()
            );
        }
    }
    println!("vdsd: api http://{}/v1", args.api);
    if args.insecure_loopback_api {
        println!("vdsd: WARNING: the API needs no token (--insecure-loopback-api): any local process can manage this array");
        tracing::warn!("the management API runs without authentication (--insecure-loopback-api)");
    } else if token_in_config {
        println!("vdsd: api token: api_token of the config file");
    } else {
        println!(
            "vdsd: api token in {}",
            args.data_dir.join(token::TOKEN_FILE).display()
        );
    }
    println!("vdsd: ready");
}

/// Every LUN holds its backing store open (two descriptors for a file LUN) and every connection
/// its socket, so the soft open-file limit a shell or an init gives (often 1024) would cap an
/// array at a few hundred LUNs with an `ERROR_TOO_MANY_OPEN_FILES` on the next create. The soft
/// limit is raised to the hard one, which the administrator set (as Go's runtime and most
/// daemons do); the hard limit is never touched. A failure is logged, never fatal.
fn raise_open_file_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only the rlimit it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "reading the open-file limit");
        return;
    }
    if lim.rlim_cur >= lim.rlim_max {
        tracing::info!(limit = lim.rlim_cur, "open-file limit");
        return;
    }
    let old = lim.rlim_cur;
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: setrlimit reads only the rlimit it is given.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), soft = old, hard = lim.rlim_max,
            "raising the open-file limit");
        return;
    }
    tracing::info!(
        from = old,
        to = lim.rlim_cur,
        "open-file limit raised to the hard limit"
    );
}
