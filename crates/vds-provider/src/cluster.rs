//! Several gateways that are one subsystem (docs/SCALEOUT.md "Shared configuration"): the
//! configuration lives in a RADOS object, `vds.<subsystem-id>.config` in `--ceph-pool`, found
//! through the root object `vds.root`; every gateway's store replicates into it (one
//! compare-and-set per commit, `vds_store::Replicator`) and applies it back
//! (`Store::replace_replicated`, then `engine::reload`) when a watch or the poll sees a newer
//! version.
//!
//! - [`connect`]: the root object (created exclusively by the first gateway, holding the
//!   subsystem id) and the config object.
//! - [`start`]: the first gateway writes the embedded default (its LUN an RBD image); a later
//!   one loads the object and, when no controller has its name, joins in one commit (its
//!   controller, portals, one portal group per target, every LUN associated with it).
//! - [`spawn_sync`]: the watch and the 1 s poll that keep a gateway's view current; [`sync`]
//!   is also what `Provider::apply` runs after a commit lost its race.
//!
//! Without `--ceph-pool` none of this runs.

use std::sync::mpsc;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use uuid::Uuid;
use vds_backstore::rados::{ConfigObject, Watch};
use vds_model::{
    Backing, BackingKind, Controller, ControllerStatus, Health, Hresult, LunType, PortalStatus,
};
use vds_store::{LunRecord, Replicator, Store};

use crate::engine::{new_lun_model, round_up, store_err, Inner, BLOCK_SIZE};
use crate::state::State;
use crate::VdsError;

/// The root object: it names the subsystem every gateway of the pool serves.
pub const ROOT_OBJECT: &str = "vds.root";
/// The root object's key holding the subsystem id.
const ROOT_SUBSYSTEM_KEY: &str = "subsystem";
/// How often a gateway reads the config object's version when no notify came.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long a starting gateway waits for the first gateway's configuration to appear.
const FIRST_CONFIG_PATIENCE: Duration = Duration::from_secs(30);
/// How long a notify waits for the other gateways' acknowledgements.
const NOTIFY_TIMEOUT_MS: u64 = 2000;
/// How many times a command whose commit lost its race is run again.
pub(crate) const STALE_RETRIES: usize = 4;

/// The cluster part of a gateway's configuration (`--ceph-pool`, `--gateway`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// The Ceph pool of the config object and of new LUNs' images.
    pub pool: String,
    /// This gateway's name: its controller's friendly name.
    pub gateway: String,
}

/// A gateway's link to the shared configuration.
pub(crate) struct ClusterCtx {
    pub config: ClusterConfig,
    pub subsystem: Uuid,
    pub object: Arc<ConfigObject>,
    /// Whether this gateway created the root object (it writes the embedded default).
    first: bool,
    /// Wakes the sync thread (the watch's callback, a lost race).
    wake: parking_lot::Mutex<Option<mpsc::Sender<()>>>,
    /// The watch on the config object (kept for as long as the provider lives).
    watch: parking_lot::Mutex<Option<Watch>>,
}

fn io_err(what: &str, e: &std::io::Error) -> VdsError {
    VdsError::new(
        Hresult::VDS_E_IO_ERROR,
        format!("the shared configuration: {what}: {e}"),
    )
}

/// Finds (or, first of all gateways, creates) the root object and the config object.
pub(crate) fn connect(cfg: &ClusterConfig) -> Result<ClusterCtx, VdsError> {
    let gateway = crate::ops::check_name("--gateway", &cfg.gateway)?;
    if gateway != cfg.gateway {
        return Err(VdsError::invalid_arg(
            "--gateway",
            "must not begin or end with white space",
        ));
    }
    crate::rbd::check_name("--ceph-pool", Some(&cfg.pool))?;
    let c = vds_backstore::rbd::cluster().map_err(|e| {
        VdsError::not_supported(format!(
            "--ceph-pool needs a Ceph cluster (--ceph-conf): {e}"
        ))
    })?;
    let root = ConfigObject::open(&c, &cfg.pool, ROOT_OBJECT)
        .map_err(|e| io_err(&format!("pool {}", cfg.pool), &e))?;
    let first = root
        .create()
        .map_err(|e| io_err(&format!("creating {}/{ROOT_OBJECT}", cfg.pool), &e))?;
    let subsystem = if first {
        let id = Uuid::new_v4();
        let set = [(ROOT_SUBSYSTEM_KEY.to_string(), id.to_string().into_bytes())];
        match root.update(0, &set, &[]) {
            Ok(Ok(_)) => id,
            Ok(Err(v)) => {
                return Err(VdsError::new(
                    Hresult::VDS_E_PROVIDER_FAILURE,
                    format!(
                    "{ROOT_OBJECT} was changed (version {v}) right after this gateway created it"
                ),
                ))
            }
            Err(e) => return Err(io_err(&format!("writing {ROOT_OBJECT}"), &e)),
        }
    } else {
        root_subsystem(&root)?
    };
    let object = ConfigObject::open(&c, &cfg.pool, &format!("vds.{subsystem}.config"))
        .map_err(|e| io_err("the config object", &e))?;
    if first {
        object
            .create()
            .map_err(|e| io_err("creating the config object", &e))?;
    }
    Ok(ClusterCtx {
        config: cfg.clone(),
        subsystem,
        object: Arc::new(object),
        first,
        wake: parking_lot::Mutex::new(None),
        watch: parking_lot::Mutex::new(None),
    })
}

/// The subsystem id the root object holds, waiting (bounded) for the gateway that created it
/// to write it.
fn root_subsystem(root: &ConfigObject) -> Result<Uuid, VdsError> {
    let start = Instant::now();
    loop {
        match root.read() {
            Ok(s) => {
                if let Some(v) = s.keys.get(ROOT_SUBSYSTEM_KEY) {
                    return std::str::from_utf8(v)
                        .ok()
                        .and_then(|v| Uuid::parse_str(v).ok())
                        .ok_or_else(|| {
                            VdsError::new(
                                Hresult::VDS_E_BAD_PROVIDER_DATA,
                                format!("{ROOT_OBJECT} holds a subsystem id that is not a UUID"),
                            )
                        });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&format!("reading {ROOT_OBJECT}"), &e)),
        }
        if start.elapsed() > FIRST_CONFIG_PATIENCE {
            return Err(VdsError::new(
                Hresult::VDS_E_PROVIDER_FAILURE,
                format!(
                    "{ROOT_OBJECT} names no subsystem after {FIRST_CONFIG_PATIENCE:?}: the gateway that created it stopped before writing it; remove the object (rados rm) and start again"
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The store's replicator: the config object's compare-and-set, and a notify (on a thread of
/// its own, so that a commit never waits for the other gateways) after each success.
struct ObjectReplicator {
    object: Arc<ConfigObject>,
    notify: mpsc::Sender<()>,
}

impl Replicator for ObjectReplicator {
    fn update(
        &self,
        base: u64,
        set: &[(String, Vec<u8>)],
        remove: &[String],
    ) -> std::io::Result<Result<u64, u64>> {
        let r = self.object.update(base, set, remove)?;
        if r.is_ok() {
            let _ = self.notify.send(());
        }
        Ok(r)
    }
}

/// Sends one notify per batch of commits until the store (the sender) is gone.
fn notifier(object: Arc<ConfigObject>, rx: mpsc::Receiver<()>) {
    while rx.recv().is_ok() {
        while rx.try_recv().is_ok() {}
        if let Err(e) = object.notify(b"changed", NOTIFY_TIMEOUT_MS) {
            // A gateway that did not answer still polls.
            tracing::debug!(error = %e, "notify of a configuration change");
        }
    }
}

/// Brings the local store to the shared configuration before the array is installed: the
/// first gateway writes the embedded default; a later one applies the object and joins.
pub(crate) fn start(inner: &Inner, ctx: &ClusterCtx, st: &mut State) -> Result<(), VdsError> {
    let local = st.store.load().map_err(store_err)?;
    if st.store.cluster_version().map_err(store_err)? == 0 && !local.subsystems.is_empty() {
        return Err(VdsError::new(
            Hresult::VDS_E_PROVIDER_FAILURE,
            format!(
                "data dir {} holds a single-node array; a gateway needs a data dir of its own",
                inner.config.data_dir.display()
            ),
        ));
    }
    if local.subsystems.iter().any(|s| s.id != ctx.subsystem) {
        return Err(VdsError::new(
            Hresult::VDS_E_PROVIDER_FAILURE,
            format!(
                "data dir {} belongs to another subsystem than {}",
                inner.config.data_dir.display(),
                ctx.subsystem
            ),
        ));
    }
    let (tx, rx) = mpsc::channel();
    let object = ctx.object.clone();
    std::thread::Builder::new()
        .name("vds-notify".into())
        .spawn(move || notifier(object, rx))
        .map_err(|e| VdsError::io("starting the notify thread", &e))?;
    st.store
        .set_replicator(Box::new(ObjectReplicator {
            object: ctx.object.clone(),
            notify: tx,
        }))
        .map_err(store_err)?;
    if ctx.first {
        return create_default(inner, ctx, st);
    }
    let start = Instant::now();
    for _ in 0..STALE_RETRIES {
        apply_latest(ctx, &mut st.store, start)?;
        match join(inner, ctx, &mut st.store) {
            Err(e) if is_stale(&e) => continue,
            r => return r,
        }
    }
    Err(stale_too_often())
}

/// Reads the config object and, when it is newer than the store, applies it. Waits (bounded)
/// for the first gateway's default when the object is still empty.
fn apply_latest(ctx: &ClusterCtx, store: &mut Store, since: Instant) -> Result<bool, VdsError> {
    loop {
        let snap = ctx
            .object
            .read()
            .map_err(|e| io_err("reading the config object", &e))?;
        if snap.version == 0 {
            if since.elapsed() > FIRST_CONFIG_PATIENCE {
                return Err(VdsError::new(
                    Hresult::VDS_E_PROVIDER_FAILURE,
                    format!(
                        "the config object of subsystem {} is still empty after {FIRST_CONFIG_PATIENCE:?}",
                        ctx.subsystem
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        if snap.version <= store.cluster_version().map_err(store_err)? {
            return Ok(false);
        }
        let keys: Vec<(String, Vec<u8>)> = snap.keys.into_iter().collect();
        store
            .replace_replicated(&keys, snap.version)
            .map_err(store_err)?;
        return Ok(true);
    }
}

/// Whether `e` is a commit that lost its race with another gateway.
pub(crate) fn is_stale(e: &VdsError) -> bool {
    e.hresult == Hresult::VDS_E_ANOTHER_CALL_IN_PROGRESS
        && e.message.contains(vds_store::STALE_MARK)
}

pub(crate) fn stale_too_often() -> VdsError {
    VdsError::new(
        Hresult::VDS_E_ANOTHER_CALL_IN_PROGRESS,
        format!(
            "other gateways changed the array {STALE_RETRIES} times while this call ran; call again"
        ),
    )
}

/// The first gateway's embedded default: the single-node default with its LUN an RBD image
/// in the pool, no drive, and its controller named after the gateway.
fn create_default(inner: &Inner, ctx: &ClusterCtx, st: &mut State) -> Result<(), VdsError> {
    let cfg = &inner.config;
    vds_model::validate_iscsi_name(&cfg.default_target_iqn)
        .map_err(|e| VdsError::invalid_arg("default_target_iqn", e))?;
    let provider_id = Uuid::new_v4();
    let a = inner.default_objects(&cfg.data_dir, provider_id, ctx.subsystem)?;
    let (sub, portals, target) = (a.sub, a.portals, a.target);
    // The gateway's controller is named after the gateway; it has no drive (its LUNs are RBD
    // images).
    let ctl = Controller {
        friendly_name: ctx.config.gateway.clone(),
        identification: format!("vds:{}:{}", sub.id, ctx.config.gateway),
        ..a.ctl
    };
    let lun_id = Uuid::new_v4();
    let size = round_up(cfg.default_lun_size.max(BLOCK_SIZE));
    let backing = Backing {
        kind: BackingKind::Rbd,
        path: Some(format!("{}/{}", ctx.config.pool, image_name(lun_id))),
    };
    let mut lun = new_lun_model(
        lun_id,
        sub.id,
        Uuid::nil(),
        "default".into(),
        size,
        "*".into(),
        LunType::Simple,
        true,
        vec![(target.id, 0)],
        backing,
        Vec::new(),
    );
    lun.active_controllers = vec![ctl.id];
    crate::rbd::create(&lun).map_err(|e| {
        VdsError::io(
            format!(
                "creating the RBD image {}",
                lun.backing.path.as_deref().unwrap_or_default()
            ),
            &e,
        )
    })?;
    let rec = LunRecord {
        lun,
        identity: None,
        owns_file: true,
    };
    let r = st.store.write(|tx| {
        tx.set_meta("provider_id", &provider_id.to_string())?;
        tx.put_subsystem(&sub)?;
        tx.put_controller(&ctl)?;
        for p in &portals {
            tx.put_portal(p)?;
        }
        tx.put_target(&target)?;
        tx.put_portal_group(&a.pg)?;
        tx.put_lun(&rec)?;
        Ok(())
    });
    if let Err(e) = r {
        // Nothing half-made stays: the image made for the default goes with it.
        let _ = crate::rbd::remove(&rec.lun);
        return Err(store_err(e));
    }
    Ok(())
}

/// The RBD image of a LUN created without a backing in cluster mode.
pub(crate) fn image_name(lun: Uuid) -> String {
    format!("vds-lun-{}", lun.simple())
}

/// A later gateway's first start: when no controller has its name, one commit adds its
/// controller (the next ALUA port group), its portals, one portal group per target holding
/// them, and associates every LUN with it. A restart finds its controller by name.
fn join(inner: &Inner, ctx: &ClusterCtx, store: &mut Store) -> Result<(), VdsError> {
    let snap = store.load().map_err(store_err)?;
    if snap
        .controllers
        .iter()
        .any(|c| c.friendly_name == ctx.config.gateway)
    {
        return Ok(());
    }
    let provider_id = Uuid::new_v4();
    let ctl = Controller {
        id: Uuid::new_v4(),
        subsystem: ctx.subsystem,
        friendly_name: ctx.config.gateway.clone(),
        identification: format!("vds:{}:{}", ctx.subsystem, ctx.config.gateway),
        status: ControllerStatus::Online,
        health: Health::Healthy,
        number_of_ports: 0,
        port_group: snap
            .controllers
            .iter()
            .map(|c| c.port_group)
            .max()
            .unwrap_or(0)
            + 1,
    };
    let mut portals = Vec::new();
    for addr in &inner.config.first_start_portals {
        if portals
            .iter()
            .any(|p: &vds_model::Portal| p.socket_addr() == *addr)
        {
            continue;
        }
        if snap.portals.iter().any(|p| p.socket_addr() == *addr) {
            return Err(VdsError::new(
                Hresult::VDS_E_OBJECT_EXISTS,
                format!("--portal {addr}: another gateway's portal has that address"),
            ));
        }
        portals.push(vds_model::Portal {
            id: Uuid::new_v4(),
            subsystem: ctx.subsystem,
            address: addr.ip(),
            port: addr.port(),
            status: PortalStatus::Online,
            advertise: inner
                .config
                .first_start_advertise
                .iter()
                .find(|(a, _)| a == addr)
                .map(|(_, adv)| adv.clone()),
            controller: ctl.id,
            portal_groups: Vec::new(),
        });
    }
    let ctl = Controller {
        number_of_ports: portals.len().min(i16::MAX as usize) as i16,
        ..ctl
    };
    let groups: Vec<vds_model::PortalGroup> = snap
        .targets
        .iter()
        .filter(|t| t.subsystem == ctx.subsystem)
        .map(|t| vds_model::PortalGroup {
            id: Uuid::new_v4(),
            target: t.id,
            tag: snap
                .portal_groups
                .iter()
                .filter(|g| g.target == t.id)
                .map(|g| g.tag)
                .max()
                .unwrap_or(0)
                + 1,
            portals: portals.iter().map(|p| p.id).collect(),
        })
        .collect();
    let luns: Vec<LunRecord> = snap
        .luns
        .into_iter()
        .filter(|r| r.lun.subsystem == ctx.subsystem)
        .map(|mut r| {
            r.lun.active_controllers.push(ctl.id);
            r
        })
        .collect();
    store
        .write(|tx| {
            tx.set_meta("provider_id", &provider_id.to_string())?;
            tx.put_controller(&ctl)?;
            for p in &portals {
                tx.put_portal(p)?;
            }
            for g in &groups {
                tx.put_portal_group(g)?;
            }
            for r in &luns {
                tx.put_lun(r)?;
            }
            Ok(())
        })
        .map_err(store_err)?;
    tracing::info!(gateway = %ctx.config.gateway, controller = %ctl.id, port_group = ctl.port_group, "joined the subsystem");
    Ok(())
}

/// This gateway's controller (the one named after it), if the model has it.
pub(crate) fn own_controller(ctx: &ClusterCtx, st: &State) -> Option<Uuid> {
    st.controllers
        .values()
        .find(|c| c.friendly_name == ctx.config.gateway && c.subsystem == ctx.subsystem)
        .map(|c| c.id)
}

/// Reads the config object and, when it is newer than what this gateway holds, applies it and
/// reloads the array under the state lock (one event per object that arrived, departed or
/// changed). Answers whether anything was applied.
pub(crate) fn sync(inner: &Inner) -> Result<bool, VdsError> {
    let Some(ctx) = &inner.cluster else {
        return Ok(false);
    };
    let snap = ctx
        .object
        .read()
        .map_err(|e| io_err("reading the config object", &e))?;
    let mut g = inner.state.lock();
    let st = &mut *g;
    if snap.version <= st.store.cluster_version().map_err(store_err)? {
        return Ok(false);
    }
    let keys: Vec<(String, Vec<u8>)> = snap.keys.into_iter().collect();
    st.store
        .replace_replicated(&keys, snap.version)
        .map_err(store_err)?;
    crate::engine::reload(inner, st)?;
    tracing::debug!(version = snap.version, "applied the shared configuration");
    Ok(true)
}

/// Starts the watch on the config object and the thread that syncs on every notify and
/// every [`POLL_INTERVAL`]; both end when the provider is dropped.
pub(crate) fn spawn_sync(inner: &Arc<Inner>) -> Result<(), VdsError> {
    let Some(ctx) = &inner.cluster else {
        return Ok(());
    };
    let (tx, rx) = mpsc::channel::<()>();
    let w = tx.clone();
    match ctx.object.watch(move |_| {
        let _ = w.send(());
    }) {
        Ok(watch) => *ctx.watch.lock() = Some(watch),
        // The poll alone still brings every change, within its interval.
        Err(e) => tracing::warn!(error = %e, "cannot watch the config object; polling only"),
    }
    *ctx.wake.lock() = Some(tx);
    let weak: Weak<Inner> = Arc::downgrade(inner);
    std::thread::Builder::new()
        .name("vds-cluster-sync".into())
        .spawn(move || loop {
            match rx.recv_timeout(POLL_INTERVAL) {
                Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
            while rx.try_recv().is_ok() {}
            let Some(inner) = weak.upgrade() else { return };
            if let Err(e) = sync(&inner) {
                tracing::warn!(error = %e, "cannot apply the shared configuration");
            }
        })
        .map_err(|e| VdsError::io("starting the cluster sync thread", &e))?;
    Ok(())
}

impl Drop for ClusterCtx {
    fn drop(&mut self) {
        // The sync thread ends with its channel; the watch is removed before the object.
        self.wake.lock().take();
        self.watch.lock().take();
    }
}

/// The jobs object `vds.<subsystem-id>.jobs`: one key `job/<id>` per job, its record written
/// by the gateway that runs it (plain sets: nobody else writes that key).
pub(crate) struct JobsBoard {
    object: ConfigObject,
}

/// The prefix of a job's key.
const JOB_PREFIX: &str = "job/";

impl JobsBoard {
    pub(crate) fn open(ctx: &ClusterCtx) -> Result<JobsBoard, VdsError> {
        let c = vds_backstore::rbd::cluster()
            .map_err(|e| VdsError::not_supported(format!("--ceph-pool: {e}")))?;
        let object =
            ConfigObject::open(&c, &ctx.config.pool, &format!("vds.{}.jobs", ctx.subsystem))
                .map_err(|e| io_err("the jobs object", &e))?;
        Ok(JobsBoard { object })
    }
}

impl crate::jobs::Board for JobsBoard {
    fn publish(&self, job: &vds_model::Job) {
        let set = [(format!("{JOB_PREFIX}{}", job.id), encode_job(job))];
        if let Err(e) = self.object.set(&set) {
            // The job runs all the same; the other gateways see it late or not at all.
            tracing::warn!(job = %job.id, error = %e, "cannot show the job to the other gateways");
        }
    }

    fn records(&self) -> Vec<vds_model::Job> {
        match self.object.read_all() {
            Ok(keys) => keys
                .iter()
                .filter_map(|(k, v)| {
                    let id = Uuid::parse_str(k.strip_prefix(JOB_PREFIX)?).ok()?;
                    match decode_job(id, v) {
                        Some(j) => Some(j),
                        None => {
                            tracing::warn!(key = %k, "a malformed job record is ignored");
                            None
                        }
                    }
                })
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the other gateways' jobs");
                Vec::new()
            }
        }
    }
}

/// A job's record: `1 <type> <object> <state> <percent> <hresult> <message>`, tab-separated
/// (the message's tabs and line breaks become spaces). The output is not part of it.
pub(crate) fn encode_job(j: &vds_model::Job) -> Vec<u8> {
    let message: String = j
        .message
        .as_deref()
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!(
        "1\t{}\t{}\t{}\t{}\t{:08x}\t{message}",
        j.operation.value(),
        j.object,
        j.state.short_name(),
        j.percent,
        j.hresult.value()
    )
    .into_bytes()
}

/// Decodes [`encode_job`]'s bytes strictly (`None` for anything else).
pub(crate) fn decode_job(id: Uuid, b: &[u8]) -> Option<vds_model::Job> {
    use vds_model::JobState;
    let s = std::str::from_utf8(b).ok()?;
    let f: Vec<&str> = s.splitn(7, '\t').collect();
    if f.len() != 7 || f[0] != "1" {
        return None;
    }
    let state = match f[3] {
        "running" => JobState::Running,
        "succeeded" => JobState::Succeeded,
        "failed" => JobState::Failed,
        "canceled" => JobState::Canceled,
        _ => return None,
    };
    let percent: u32 = f[4].parse().ok().filter(|p| *p <= 100)?;
    if f[5].len() != 8 {
        return None;
    }
    Some(vds_model::Job {
        id,
        operation: vds_model::AsyncOutputType::from_i64(f[1].parse().ok()?)?,
        object: Uuid::parse_str(f[2]).ok()?,
        state,
        percent,
        hresult: Hresult(u32::from_str_radix(f[5], 16).ok()?),
        message: (!f[6].is_empty()).then(|| f[6].to_string()),
        output: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_records_round_trip_and_malformed_ones_are_refused() {
        let j = vds_model::Job {
            id: Uuid::new_v4(),
            operation: vds_model::AsyncOutputType::CreateLun,
            object: Uuid::new_v4(),
            state: vds_model::JobState::Failed,
            percent: 100,
            hresult: Hresult::VDS_E_IO_ERROR,
            message: Some("two\tlines\nhere".into()),
            output: None,
        };
        let enc = encode_job(&j);
        let back = decode_job(j.id, &enc).unwrap();
        assert_eq!(back.message.as_deref(), Some("two lines here"));
        assert_eq!(
            vds_model::Job {
                message: j.message.clone(),
                ..back
            },
            j
        );
        for n in 0..enc.len() - "two lines here".len() {
            assert!(decode_job(j.id, &enc[..n]).is_none(), "truncated at {n}");
        }
        for bad in [
            "2\t50\tx\trunning\t0\t00000000\t",
            "1\t9999\t00000000-0000-0000-0000-000000000000\trunning\t0\t00000000\t",
            "1\t50\t00000000-0000-0000-0000-000000000000\tdone\t0\t00000000\t",
            "1\t50\t00000000-0000-0000-0000-000000000000\trunning\t101\t00000000\t",
            "1\t50\t00000000-0000-0000-0000-000000000000\trunning\t1\t0000\t",
        ] {
            assert!(decode_job(j.id, bad.as_bytes()).is_none(), "{bad:?}");
        }
    }
}
