//! A one-node Ceph for one test (`scripts/ceph-cluster`, docs/SCALEOUT.md "Testing on one
//! machine"): started on its own monitor port in a temporary directory, stopped by its recorded
//! pids when dropped, and Ceph's own tools run against it with time limits. A missing Ceph
//! fails the test.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// The one-node cluster of a test.
pub struct Ceph {
    dir: PathBuf,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/ceph-cluster")
}

impl Ceph {
    /// Starts the cluster of the test `name` with its monitor on 127.0.0.1:`port`.
    pub fn start(name: &str, port: u16) -> Ceph {
        let dir = std::env::temp_dir().join(format!("vds-{name}-{}-{port}", std::process::id()));
        let out = Command::new(script())
            .arg("start")
            .arg(&dir)
            .arg(port.to_string())
            .output()
            .expect("scripts/ceph-cluster runs");
        assert!(
            out.status.success(),
            "the one-node Ceph did not start (apt-get install ceph-mon ceph-osd ceph-mgr ceph-common): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ceph { dir }
    }

    /// Its ceph.conf (client.admin's keyring beside it).
    pub fn conf(&self) -> PathBuf {
        self.dir.join("ceph.conf")
    }

    /// `PROGRAM -c ceph.conf ARGS` against this cluster (at most 60 s), as it ended.
    pub fn output(&self, program: &str, args: &[&str]) -> Output {
        let mut all = vec!["-c".to_string(), self.conf().display().to_string()];
        all.extend(args.iter().map(|s| s.to_string()));
        super::run_limited(Path::new(program), &all, Duration::from_secs(60))
    }

    /// `PROGRAM -c ceph.conf ARGS` against this cluster; it must succeed; its stdout.
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        let o = self.output(program, args);
        assert!(
            o.status.success(),
            "{program} {args:?}: {}",
            super::text(&o)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `ceph ARGS`; it must succeed; its stdout.
    pub fn ceph(&self, args: &[&str]) -> String {
        self.run("ceph", args)
    }

    /// `rbd ARGS`, as it ended.
    pub fn rbd(&self, args: &[&str]) -> Output {
        self.output("rbd", args)
    }

    /// A gateway of the subsystem kept in pool `rbd` (`--ceph-pool rbd --gateway NAME`,
    /// docs/SCALEOUT.md), listening on `ip`: its API on `api_port`, its portal on 3260;
    /// `slot` only names its initiators.
    pub fn gateway(&self, slot: u16, ip: [u8; 4], api_port: u16, name: &str) -> super::Daemon {
        super::Daemon::start_at(
            slot,
            SocketAddr::from((ip, api_port)),
            vec![SocketAddr::from((ip, 3260))],
            super::Opts {
                ceph_conf: Some(self.conf()),
                args: vec![
                    "--ceph-pool".into(),
                    "rbd".into(),
                    "--gateway".into(),
                    name.into(),
                ],
                ..super::Opts::default()
            },
        )
    }

    /// The images of pool `rbd`.
    pub fn images(&self) -> Vec<String> {
        self.run("rbd", &["ls", "rbd"])
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Ceph {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").arg(&self.dir).status();
    }
}
