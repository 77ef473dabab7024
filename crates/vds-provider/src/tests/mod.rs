//! Provider tests: one test (or more) per management-side row of BEHAVIOUR.md §2–§10, run
//! against a test data plane that really binds `TcpListener`s (so EADDRINUSE is real) and
//! records every published view. Ports come from 127.0.0.1:41000-41099.

mod alua;
mod aptpl;
mod ceph_pools;
mod commit;
mod drive_search;
mod drives;
mod extents;
mod hints;
mod leftovers;
mod maintenance;
mod model;
mod plex_hints;
mod plex_ops;
mod pools;
mod power_cut;
mod rbd;
mod read_only;
mod rules;
mod surface;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::broadcast::error::TryRecvError;
use uuid::Uuid;
use vds_dataplane::{DataPlane, DataView};
use vds_model::{EventKind, Hresult, Job, JobOutput, JobState, Lun, ObjectKind};

use crate::{Command, Event, Outcome, Provider, ProviderConfig, VdsError};

/// A data plane that binds real listeners and records publishes.
#[derive(Default)]
pub(crate) struct TestPlane {
    pub listeners: Mutex<HashMap<Uuid, TcpListener>>,
    pub views: Mutex<Vec<Arc<DataView>>>,
    pub unbinds: Mutex<Vec<(Uuid, Duration)>>,
    /// What `sessions_snapshot` answers (set by a test).
    pub sessions: Mutex<Vec<vds_dataplane::SessionSnapshot>>,
}

impl TestPlane {
    pub fn last(&self) -> Arc<DataView> {
        self.views
            .lock()
            .last()
            .cloned()
            .expect("a view was published")
    }

    pub fn bound(&self, id: Uuid) -> bool {
        self.listeners.lock().contains_key(&id)
    }
}

impl DataPlane for TestPlane {
    fn publish(&self, view: Arc<DataView>) {
        self.views.lock().push(view);
    }

    fn bind_portal(&self, id: Uuid, addr: SocketAddr) -> std::io::Result<()> {
        let l = TcpListener::bind(addr)?;
        self.listeners.lock().insert(id, l);
        Ok(())
    }

    fn unbind_portal(&self, id: Uuid, logout_timeout: Duration) {
        self.listeners.lock().remove(&id);
        self.unbinds.lock().push((id, logout_timeout));
    }

    fn initiators(&self, _target: Uuid) -> Vec<String> {
        vec!["iqn.2001-04.com.example:host".into()]
    }

    fn sessions_snapshot(&self) -> Vec<vds_dataplane::SessionSnapshot> {
        self.sessions.lock().clone()
    }
}

/// A provider on a fresh data dir with one portal on `port`.
pub(crate) struct Fixture {
    pub dir: tempfile::TempDir,
    pub plane: Arc<TestPlane>,
    pub p: Provider,
    pub port: u16,
    pub fault_injection: bool,
    /// `ProviderConfig::drive_search_dirs` of the next `restart`.
    pub drive_search_dirs: Vec<std::path::PathBuf>,
}

pub(crate) fn config(dir: &std::path::Path, port: u16, fault_injection: bool) -> ProviderConfig {
    let mut c = ProviderConfig::new(dir.join("data"));
    c.first_start_portals = vec![SocketAddr::from(([127, 0, 0, 1], port))];
    c.fault_injection = fault_injection;
    c.logout_timeout = Duration::from_millis(100);
    c
}

impl Fixture {
    pub fn new(port: u16, fault_injection: bool) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let plane = Arc::new(TestPlane::default());
        let p = Provider::open(config(dir.path(), port, fault_injection), plane.clone()).unwrap();
        Fixture {
            dir,
            plane,
            p,
            port,
            fault_injection,
            drive_search_dirs: ProviderConfig::new("").drive_search_dirs,
        }
    }

    /// Drops the provider (as a `kill -9` would: nothing flushed, nothing unbound) and opens
    /// the same data dir again.
    pub fn restart(&mut self) {
        // Free the listeners the way process death would.
        self.plane.listeners.lock().clear();
        let plane = Arc::new(TestPlane::default());
        let mut c = config(self.dir.path(), self.port, self.fault_injection);
        c.drive_search_dirs = self.drive_search_dirs.clone();
        let p = Provider::open(c, plane.clone()).unwrap();
        self.p = p;
        self.plane = plane;
    }

    pub fn ok(&self, cmd: Command) -> Outcome {
        match self.p.apply(cmd.clone()) {
            Ok(o) => o,
            Err(e) => panic!("{cmd:?} failed: {e}"),
        }
    }

    pub fn err(&self, cmd: Command) -> VdsError {
        match self.p.apply(cmd.clone()) {
            Ok(o) => panic!("{cmd:?} succeeded: {o:?}"),
            Err(e) => e,
        }
    }

    pub fn code(&self, cmd: Command) -> Hresult {
        self.err(cmd).hresult
    }

    /// Runs an async command and waits for its job.
    pub fn job(&self, cmd: Command) -> Job {
        match self.ok(cmd) {
            Outcome::Job(j) => match self.ok(Command::WaitJob {
                id: j.id,
                timeout: Some(Duration::from_secs(30)),
            }) {
                Outcome::Job(j) => {
                    assert_ne!(j.state, JobState::Running, "job did not finish");
                    j
                }
                o => panic!("wait answered {o:?}"),
            },
            o => panic!("expected a job, got {o:?}"),
        }
    }

    pub fn subsystem(&self) -> Uuid {
        match self.ok(Command::ListSubsystems) {
            Outcome::Subsystems(s) => s[0].id,
            o => panic!("{o:?}"),
        }
    }

    pub fn luns(&self) -> Vec<Lun> {
        match self.ok(Command::ListLuns { subsystem: None }) {
            Outcome::Luns(l) => l,
            o => panic!("{o:?}"),
        }
    }

    pub fn lun(&self, id: Uuid) -> Lun {
        match self.ok(Command::GetLun { id }) {
            Outcome::Lun(l) => *l,
            o => panic!("{o:?}"),
        }
    }

    pub fn default_target(&self) -> vds_model::Target {
        match self.ok(Command::ListTargets { subsystem: None }) {
            Outcome::Targets(t) => t[0].clone(),
            o => panic!("{o:?}"),
        }
    }

    pub fn portals(&self) -> Vec<vds_model::Portal> {
        match self.ok(Command::ListPortals { subsystem: None }) {
            Outcome::Portals(p) => p,
            o => panic!("{o:?}"),
        }
    }

    /// The arguments of a 4 MiB LUN in the data dir with every option left to its default.
    pub fn lun_args(&self) -> crate::CreateLunArgs {
        crate::CreateLunArgs {
            subsystem: self.subsystem(),
            size_bytes: 4 << 20,
            friendly_name: None,
            lun_type: None,
            thin: None,
            drive: None,
            unmasking_list: None,
            targets: None,
            read_only: None,
            hints: None,
            drives: None,
            plexes: None,
            stripe_size: None,
            load_balance: None,
            backing: None,
        }
    }

    /// Creates a LUN (sparse file in the data dir) with the given extra arguments.
    pub fn create_lun(&self, f: impl FnOnce(&mut crate::CreateLunArgs)) -> Lun {
        let mut a = self.lun_args();
        f(&mut a);
        let j = self.job(Command::CreateLun(a));
        assert_eq!(j.state, JobState::Succeeded, "{j:?}");
        match j.output {
            Some(JobOutput::Lun(l)) => *l,
            o => panic!("{o:?}"),
        }
    }
}

/// Every event received so far.
pub(crate) fn drain(
    rx: &mut tokio::sync::broadcast::Receiver<Event>,
) -> Vec<(ObjectKind, EventKind, Uuid)> {
    let mut v = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(e) => v.push((e.object_type, e.event, e.id)),
            Err(TryRecvError::Empty) | Err(TryRecvError::Closed) => return v,
            Err(TryRecvError::Lagged(_)) => continue,
        }
    }
}
