//! A one-node Ceph for one test (`scripts/ceph-cluster`, docs/SCALEOUT.md "Testing on one
//! machine"): started on its own monitor port in a temporary directory, stopped by its recorded
//! pids when dropped. A missing Ceph fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Ceph {
    dir: PathBuf,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/ceph-cluster")
}

impl Ceph {
    /// Starts the cluster of the test `name` with its monitor on 127.0.0.1:`port`.
    pub fn start(name: &str, port: u16) -> Ceph {
        let dir = std::env::temp_dir().join(format!("vds-{name}-{}", std::process::id()));
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

    /// Runs `ceph ARGS` against it (bounded), answering stdout.
    pub fn ceph(&self, args: &[&str]) -> String {
        let out = Command::new("timeout")
            .arg("30")
            .arg("ceph")
            .arg("-c")
            .arg(self.conf())
            .args(args)
            .output()
            .expect("ceph runs");
        assert!(
            out.status.success(),
            "ceph {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Ceph {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").arg(&self.dir).status();
    }
}
