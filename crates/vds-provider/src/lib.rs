//! The provider engine: one entry point, [`Provider::apply`], that applies a management
//! [`Command`] to the array and returns an [`Outcome`] or a [`VdsError`].
//!
//! - `command`: the command/outcome/error API (the seam with `vds-api`);
//! - `engine`: startup and reload, the check order of BEHAVIOUR.md §2, operation slots;
//! - `ops`: the operations, one module per object kind, and `dispatch`;
//! - `commit`: the one step through which every operation changes the array;
//! - `alua`: controllers as ALUA target port groups (the access-state function);
//! - `state`: the in-memory view (the cache) and the data path's view built from it;
//! - `hooks`: what logical units report, applied as `Command::DataPath`;
//! - `jobs`: asynchronous operations (`IVdsAsync`);
//! - `events`: notifications and the clock;
//! - the seam with the iSCSI data path is the `vds-dataplane` crate.

mod alua;
mod backing;
mod ceph_pools;
mod cluster;
pub mod command;
mod commit;
mod drive_search;
mod engine;
pub mod events;
mod extents;
mod hooks;
mod jobs;
mod ops;
mod owner;
mod rbd;
mod rebuild;
mod recovery;
mod redundancy;
mod shared_pr;
mod spare;
mod state;
mod storage;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use cluster::ClusterConfig;
pub use command::{
    AppliedHints, BackingSpec, Command, ConfigChap, ConfigDoc, ConfigLun, ConfigPortal,
    ConfigTarget, CreateLunArgs, DriveRange, HintsRequest, MaintenanceAction, MaxSizeArgs,
    NotApplied, Outcome, PlexInfo, PoolArgs, SecretBytes, VdsError,
};
pub use events::{Clock, Event, SystemClock};
pub use hooks::DataPathMsg;
/// What `Outcome::Sessions` holds: the data path's snapshot of one session.
pub use vds_dataplane::{
    ConnectionSnapshot, Histogram, LoginTelemetry, LunTelemetry, NegotiatedKeys, PortTelemetry,
    SessionCounters, SessionSnapshot, Telemetry, LATENCY_BUCKETS_SECONDS, SENSE_KEY_NAMES,
};

/// How the provider starts.
#[derive(Clone)]
pub struct ProviderConfig {
    /// The store and the LUN files live here (created 0700 if missing).
    pub data_dir: PathBuf,
    /// Portals of the embedded default, created on first start only.
    pub first_start_portals: Vec<SocketAddr>,
    /// The advertised address of some of them (`--portal ADDR:PORT,advertise=HOST:PORT`).
    pub first_start_advertise: Vec<(SocketAddr, vds_model::AdvertisedAddress)>,
    /// Accept fault filters (`--enable-fault-injection`).
    pub fault_injection: bool,
    /// How long a portal going OFFLINE waits for initiators to log out.
    pub logout_timeout: Duration,
    /// `false` reproduces the documented "not supported" `IVdsIscsiPortal::SetStatus`.
    pub portal_status_settable: bool,
    /// Size of the embedded default LUN.
    pub default_lun_size: u64,
    /// IQN of the embedded default target.
    pub default_target_iqn: String,
    /// Time source for events.
    pub clock: Arc<dyn Clock>,
    /// Where a `block` drive whose label left its recorded path is looked for (BEHAVIOUR.md
    /// §15): `/dev` means every block device in `/sys/class/block`; another directory the
    /// block devices and regular files in it. Empty: never looked for.
    pub drive_search_dirs: Vec<PathBuf>,
    /// One of several gateways that are one subsystem (docs/SCALEOUT.md): the pool of the
    /// shared configuration and of new LUNs, and this gateway's name. `None`: single node.
    pub cluster: Option<ClusterConfig>,
}

impl ProviderConfig {
    /// Defaults: one portal `127.0.0.1:3260`, no fault injection, 2 s logout timeout,
    /// settable portal status, a 1 GiB default LUN.
    pub fn new(data_dir: impl Into<PathBuf>) -> ProviderConfig {
        ProviderConfig {
            data_dir: data_dir.into(),
            first_start_portals: vec![SocketAddr::from(([127, 0, 0, 1], 3260))],
            first_start_advertise: Vec::new(),
            fault_injection: false,
            logout_timeout: Duration::from_secs(2),
            portal_status_settable: true,
            default_lun_size: 1 << 30,
            default_target_iqn: "iqn.2026-11.local.vds:default".to_string(),
            clock: Arc::new(SystemClock),
            drive_search_dirs: vec![PathBuf::from("/dev")],
            cluster: None,
        }
    }
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("data_dir", &self.data_dir)
            .field("first_start_portals", &self.first_start_portals)
            .field("fault_injection", &self.fault_injection)
            .field("logout_timeout", &self.logout_timeout)
            .field("portal_status_settable", &self.portal_status_settable)
            .field("default_lun_size", &self.default_lun_size)
            .field("default_target_iqn", &self.default_target_iqn)
            .field("drive_search_dirs", &self.drive_search_dirs)
            .field("cluster", &self.cluster)
            .finish()
    }
}

/// The provider: owns the configuration of the array. Cheap to share (`Arc` inside); every
/// method may be called from any thread. `apply` may block (flushes, binds, job waits): call
/// it from a blocking context (`tokio::task::spawn_blocking` in async code).
#[derive(Clone)]
pub struct Provider {
    inner: Arc<engine::Inner>,
}

impl Provider {
    /// Opens the store in `config.data_dir` (creating the embedded default of INTERFACE.md
    /// "Daemon" when it is empty), opens every LUN (a missing backing store makes that LUN
    /// FAILED), binds every portal stored ONLINE (one that cannot bind is FAILED), publishes
    /// the configuration to `dataplane`, and reads every drive's label again.
    pub fn open(
        config: ProviderConfig,
        dataplane: Arc<dyn vds_dataplane::DataPlane>,
    ) -> Result<Provider, VdsError> {
        let p = Provider {
            inner: engine::open(config, dataplane)?,
        };
        {
            // A drive whose label went away (or came back) while vdsd was down starts FAILED
            // (or ONLINE), as a Reenumerate would find it (BEHAVIOUR.md §15).
            let mut g = p.inner.state.lock();
            p.rediscover_drives(&mut g)?;
        }
        Ok(p)
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &ProviderConfig {
        &self.inner.config
    }

    /// Applies one command (see [`Command`] for what each does). A gateway whose commit lost
    /// its race with another gateway's applies the shared configuration and runs the command
    /// again (a few times at most).
    pub fn apply(&self, cmd: Command) -> Result<Outcome, VdsError> {
        if self.inner.cluster.is_none() {
            return self.dispatch(cmd);
        }
        for _ in 0..cluster::STALE_RETRIES {
            match self.dispatch(cmd.clone()) {
                Err(e) if cluster::is_stale(&e) => {
                    cluster::sync(&self.inner)?;
                }
                r => return r,
            }
        }
        Err(cluster::stale_too_often())
    }

    /// A new receiver of every event from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// The logical unit of a LUN (for the daemon's diagnostics and for tests).
    pub fn logical_unit(&self, lun: uuid::Uuid) -> Option<Arc<vds_scsi::LogicalUnit>> {
        self.inner.state.lock().luns.get(&lun).map(|e| e.lu.clone())
    }

    /// Daemon shutdown: closes every listener (initiators are asked to log out, within the
    /// logout timeout, all portals at once), then flushes every LUN. Configuration is already
    /// durable. Returns the first flush error, after trying every LUN.
    pub fn shutdown(&self) -> Result<(), VdsError> {
        let (portals, lus) = {
            let mut st = self.inner.state.lock();
            let portals: Vec<uuid::Uuid> = st
                .portals
                .values_mut()
                .filter(|p| p.bound)
                .map(|p| {
                    p.bound = false;
                    p.p.id
                })
                .collect();
            let lus: Vec<_> = st.luns.values().map(|e| e.lu.clone()).collect();
            (portals, lus)
        };
        let timeout = self.inner.config.logout_timeout;
        std::thread::scope(|s| {
            for id in portals {
                let dp = &self.inner.dataplane;
                s.spawn(move || dp.unbind_portal(id, timeout));
            }
        });
        let mut first = None;
        for lu in lus {
            if lu.state() == vds_scsi::LuState::Failed {
                continue;
            }
            if let Err(e) = lu.flush() {
                first.get_or_insert(VdsError::io(format!("flushing LUN {}", lu.id()), &e));
            }
        }
        if first.is_none() {
            // Every LUN flushed: the next start need not compare mirrors (recovery.rs).
            if let Err(e) = crate::recovery::write_clean_marker(&self.inner.config.data_dir) {
                first = Some(VdsError::io("writing the clean-shutdown marker", &e));
            }
        }
        first.map_or(Ok(()), Err)
    }
}
