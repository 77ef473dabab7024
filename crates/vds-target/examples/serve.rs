//! A standalone iSCSI target for tests and conformance runs: target `iqn.2026-11.local.vds:test`
//! with N memory LUNs unmasked to everyone, served through each `--portal` in one portal group
//! (tag 1).
//!
//! ```text
//! cargo run -p vds-target --example serve -- --portal 127.0.0.1:3260 [--portal ...]
//!     [--size-mib N] [--luns N] [--block-size 512|4096] [--chap-secret S [--chap-user NAME]]
//!     [--mutual-secret S] [--queue-depth N]
//! ```
//! Prints `ready` on stdout once every portal listens; runs until killed.

use std::net::SocketAddr;
use std::sync::Arc;

use uuid::Uuid;
use vds_dataplane::{ChapConfig, DataPlane, DataView, PortalGroupView, PortalView, TargetView};
use vds_scsi::{
    LogicalUnit, LuConfig, LuEvents, LuState, LunEntry, LunMap, Mask, TargetPortGroups,
};
use vds_target::{DataPath, Limits};

const TARGET: &str = "iqn.2026-11.local.vds:test";

struct Quiet;
impl LuEvents for Quiet {
    fn failed(&self, lu: Uuid, error: &std::io::Error) {
        eprintln!("LU {lu} failed: {error}");
    }
    fn persist_reservations(&self, _lu: Uuid, _state: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
}

struct Args {
    portals: Vec<SocketAddr>,
    size_mib: u64,
    luns: u64,
    block_size: u32,
    chap_secret: Option<String>,
    chap_user: Option<String>,
    mutual_secret: Option<String>,
    queue_depth: u32,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        portals: Vec::new(),
        size_mib: 1024,
        luns: 1,
        block_size: 512,
        chap_secret: None,
        chap_user: None,
        mutual_secret: None,
        queue_depth: 128,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--portal" => a
                .portals
                .push(val()?.parse().map_err(|e| format!("--portal: {e}"))?),
            "--size-mib" => a.size_mib = val()?.parse().map_err(|e| format!("--size-mib: {e}"))?,
            "--luns" => a.luns = val()?.parse().map_err(|e| format!("--luns: {e}"))?,
            "--block-size" => {
                a.block_size = val()?.parse().map_err(|e| format!("--block-size: {e}"))?
            }
            "--chap-secret" => a.chap_secret = Some(val()?),
            "--chap-user" => a.chap_user = Some(val()?),
            "--mutual-secret" => a.mutual_secret = Some(val()?),
            "--queue-depth" => {
                a.queue_depth = val()?.parse().map_err(|e| format!("--queue-depth: {e}"))?
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.portals.is_empty() {
        a.portals
            .push("127.0.0.1:3260".parse().expect("literal address"));
    }
    Ok(a)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("serve: {e}");
            std::process::exit(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut limits = Limits::default();
    limits.negotiation.queue_depth = args.queue_depth;
    let dp = DataPath::new(rt.handle().clone(), limits).expect("I/O threads");

    let events: Arc<dyn LuEvents> = Arc::new(Quiet);
    let mut entries = Vec::new();
    for n in 0..args.luns {
        let size = args.size_mib << 20;
        let backing =
            vds_backstore::open(&vds_backstore::BackingKind::Memory, size).expect("memory store");
        let lu = LogicalUnit::new(LuConfig {
            id: Uuid::new_v4(),
            backing,
            block_size: args.block_size,
            state: LuState::Online,
            pr_state: None,
            events: events.clone(),
            write_protected: false,
        });
        entries.push(LunEntry {
            number: n,
            lu: Arc::new(lu),
            mask: Mask::Everyone,
        });
    }
    let portals: Vec<PortalView> = args
        .portals
        .iter()
        .map(|addr| PortalView {
            id: Uuid::new_v4(),
            addr: *addr,
            online: true,
            advertise: None,
        })
        .collect();
    let mut chap = ChapConfig::default();
    if let Some(s) = &args.chap_secret {
        match &args.chap_user {
            Some(u) => chap
                .initiator_secrets
                .push((u.clone(), s.as_bytes().to_vec())),
            None => chap.default_secret = Some(s.as_bytes().to_vec()),
        }
    }
    if let Some(s) = &args.mutual_secret {
        chap.mutual_secrets
            .push((String::new(), s.as_bytes().to_vec()));
    }
    let view = DataView {
        targets: vec![TargetView {
            id: Uuid::new_v4(),
            iqn: TARGET.to_string(),
            alias: "vds test".to_string(),
            chap,
            portal_groups: vec![PortalGroupView {
                id: Uuid::new_v4(),
                tag: 1,
                portals: portals.iter().map(|p| p.id).collect(),
                tpg: 1,
            }],
            // One portal group (relative target port 1) in target port group 1.
            luns: Arc::new(LunMap {
                entries,
                port_groups: TargetPortGroups::new([(1, 1)]),
            }),
        }],
        portals: portals.clone(),
    };
    dp.publish(Arc::new(view));
    for p in &portals {
        if let Err(e) = dp.bind_portal(p.id, p.addr) {
            eprintln!("serve: cannot listen on {}: {e}", p.addr);
            std::process::exit(1);
        }
    }
    println!("ready");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    rt.block_on(async {
        let _ = tokio::signal::ctrl_c().await;
    });
}
