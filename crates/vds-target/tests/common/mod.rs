//! Test harness: a `DataPath` in-process with memory LUNs, and helpers to run the libiscsi
//! command-line tools against it with a time limit. Tests listen on 127.0.33.x rather than
//! 127.0.0.1, where other processes' outgoing connections may hold the same port numbers.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;
use vds_dataplane::{ChapConfig, DataPlane, DataView, PortalGroupView, PortalView, TargetView};
use vds_scsi::{LogicalUnit, LuConfig, LuEvents, LuState, LunEntry, LunMap, Mask};
use vds_target::{DataPath, Limits};

pub const TARGET: &str = "iqn.2026-11.local.vds:test";
pub const OTHER: &str = "iqn.2026-11.local.vds:other";

struct NoEvents;
impl LuEvents for NoEvents {
    fn failed(&self, _lu: Uuid, _error: &std::io::Error) {}
    fn persist_reservations(&self, _lu: Uuid, _state: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
}

pub struct Harness {
    pub rt: tokio::runtime::Runtime,
    pub dp: DataPath,
    pub portals: Vec<PortalView>,
    pub target_id: Uuid,
}

pub fn lun_map(n: u64, size: u64) -> Arc<LunMap> {
    let events: Arc<dyn LuEvents> = Arc::new(NoEvents);
    let entries = (0..n)
        .map(|i| {
            let backing =
                vds_backstore::open(&vds_backstore::BackingKind::Memory, size).expect("memory");
            LunEntry {
                number: i,
                lu: Arc::new(LogicalUnit::new(LuConfig {
                    id: Uuid::new_v4(),
                    backing,
                    block_size: 512,
                    state: LuState::Online,
                    pr_state: None,
                    events: events.clone(),
                    write_protected: false,
                })),
                mask: Mask::Everyone,
            }
        })
        .collect();
    Arc::new(LunMap {
        entries,
        port_groups: Default::default(),
    })
}

impl Harness {
    /// Target `TARGET` on every portal in `addrs` (group tag 1); a second target `OTHER` only on
    /// the last portal when there are two or more (group tag 2).
    pub fn start(addrs: &[&str], chap: ChapConfig, limits: Limits) -> Harness {
        Harness::start_sized(addrs, chap, limits, 64 << 20)
    }

    /// As [`Harness::start`] with LUNs of `size` bytes.
    pub fn start_sized(addrs: &[&str], chap: ChapConfig, limits: Limits, size: u64) -> Harness {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let dp = DataPath::new(rt.handle().clone(), limits).expect("I/O threads");
        let portals: Vec<PortalView> = addrs
            .iter()
            .map(|a| PortalView {
                id: Uuid::new_v4(),
                addr: a.parse().expect("address"),
                online: true,
                advertise: None,
            })
            .collect();
        let target_id = Uuid::new_v4();
        let mut targets = vec![TargetView {
            id: target_id,
            iqn: TARGET.into(),
            alias: "test".into(),
            chap,
            portal_groups: vec![PortalGroupView {
                id: Uuid::new_v4(),
                tag: 1,
                portals: portals.iter().map(|p| p.id).collect(),
                tpg: 1,
            }],
            luns: lun_map(2, size),
        }];
        if portals.len() >= 2 {
            targets.push(TargetView {
                id: Uuid::new_v4(),
                iqn: OTHER.into(),
                alias: String::new(),
                chap: ChapConfig::default(),
                portal_groups: vec![PortalGroupView {
                    id: Uuid::new_v4(),
                    tag: 2,
                    portals: vec![portals[portals.len() - 1].id],
                    tpg: 1,
                }],
                luns: lun_map(1, 16 << 20),
            });
        }
        dp.publish(Arc::new(DataView {
            targets,
            portals: portals.clone(),
        }));
        for p in &portals {
            dp.bind_portal(p.id, p.addr).expect("bind");
        }
        Harness {
            rt,
            dp,
            portals,
            target_id,
        }
    }

    pub fn addr(&self, i: usize) -> SocketAddr {
        self.portals[i].addr
    }

    pub fn url(&self, i: usize, lun: u32) -> String {
        format!("iscsi://{}/{}/{}", self.addr(i), TARGET, lun)
    }
}

/// Run a tool with a time limit; the child is killed (by its pid) when it overruns.
pub fn run_tool(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", args[0]));
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
