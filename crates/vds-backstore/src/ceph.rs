//! What a Ceph cluster says about its pools (docs/SCALEOUT.md "Ceph pools"): the monitor's
//! `osd pool ls detail` (name, id, replication, applications), `df detail` (stored, used,
//! max_avail) and `pg dump pgs_brief` (each placement group's state), asked through
//! `rados_mon_command` (the monitor forwards the last to the manager) and read with
//! [`crate::json`]. Every call is bounded by `rados_mon_op_timeout` (set by
//! [`crate::rbd::Cluster::connect`]).

use std::io;
use std::ptr;

use crate::json::Json;
use crate::rbd::{check, cstr, Cluster};

/// How a pool keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replication {
    /// `size` full copies.
    Replicated {
        /// Copies.
        size: u32,
        /// Copies needed to serve I/O.
        min_size: u32,
    },
    /// Erasure-coded (`size` = k + m chunks).
    Erasure {
        /// Chunks.
        size: u32,
        /// Chunks needed to serve I/O.
        min_size: u32,
    },
}

/// One Ceph pool as the cluster reports it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolReport {
    /// The pool id (never reused by Ceph).
    pub id: i64,
    /// The pool name.
    pub name: String,
    /// Replication.
    pub replication: Replication,
    /// The applications enabled on it (`rbd`, `cephfs`, `rgw`, `mgr_devicehealth`...).
    pub applications: Vec<String>,
    /// Bytes the pool's objects hold (`stored`, before replication).
    pub stored: u64,
    /// Raw bytes they take on the OSDs (`bytes_used`, replicas included).
    pub bytes_used: u64,
    /// Bytes a client can still write (`max_avail`, replication and full ratios applied).
    pub max_avail: u64,
    /// The state of each of its placement groups (`active+clean`, ...), as Ceph spells it.
    pub pg_states: Vec<String>,
}

impl Cluster {
    /// Sends one command (a JSON object) to the monitor; answers its output buffer.
    pub fn mon_command(&self, cmd: &str) -> io::Result<Vec<u8>> {
        let c = cstr(cmd, "command")?;
        let mut cmds = [c.as_ptr()];
        let (mut out, mut outlen): (*mut std::ffi::c_char, usize) = (ptr::null_mut(), 0);
        let (mut status, mut statuslen): (*mut std::ffi::c_char, usize) = (ptr::null_mut(), 0);
        // SAFETY: a connected handle; one NUL-terminated command that outlives the call; valid
        // out-pointers, whose buffers librados allocates and we free below.
        let r = unsafe {
            self.api.rados_mon_command(
                self.handle,
                cmds.as_mut_ptr(),
                1,
                ptr::null(),
                0,
                &mut out,
                &mut outlen,
                &mut status,
                &mut statuslen,
            )
        };
        let take = |p: *mut std::ffi::c_char, len: usize| -> Vec<u8> {
            if p.is_null() {
                return Vec::new();
            }
            // SAFETY: librados set `p` to a buffer of `len` bytes it allocated.
            let v = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) }.to_vec();
            // SAFETY: allocated by librados for this call, freed once.
            unsafe { self.api.rados_buffer_free(p) };
            v
        };
        let out = take(out, outlen);
        let status = take(status, statuslen);
        check(
            r.into(),
            &format!(
                "ceph {cmd}: {}",
                String::from_utf8_lossy(&status[..status.len().min(512)])
            ),
        )?;
        Ok(out)
    }

    fn mon_json(&self, cmd: &str) -> io::Result<Json> {
        let out = self.mon_command(cmd)?;
        Json::parse(&out).map_err(|e| io::Error::new(e.kind(), format!("ceph {cmd}: {e}")))
    }

    /// The cluster's fsid.
    pub fn fsid(&self) -> io::Result<String> {
        let mut buf = [0u8; 64];
        // SAFETY: a connected handle and a buffer of the length given.
        let r = unsafe {
            self.api
                .rados_cluster_fsid(self.handle, buf.as_mut_ptr().cast(), buf.len())
        };
        let n = usize::try_from(check(r.into(), "rados_cluster_fsid")?).unwrap_or(0);
        Ok(String::from_utf8_lossy(&buf[..n.min(buf.len())])
            .trim_end_matches('\0')
            .to_string())
    }

    /// Every pool of the cluster with its figures and the states of its PGs, in pool id order.
    pub fn pool_reports(&self) -> io::Result<Vec<PoolReport>> {
        let detail =
            self.mon_json(r#"{"prefix":"osd pool ls","detail":"detail","format":"json"}"#)?;
        let df = self.mon_json(r#"{"prefix":"df","detail":"detail","format":"json"}"#)?;
        let pgs =
            self.mon_json(r#"{"prefix":"pg dump","dumpcontents":["pgs_brief"],"format":"json"}"#)?;
        parse_reports(&detail, &df, &pgs)
    }
}

fn bad(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Puts the three answers together (pure, so tested on recorded answers).
pub fn parse_reports(detail: &Json, df: &Json, pgs: &Json) -> io::Result<Vec<PoolReport>> {
    let mut v = Vec::new();
    for p in detail.items() {
        let field = |k: &str| {
            p.get(k)
                .ok_or_else(|| bad(format!("osd pool ls detail: no {k}")))
        };
        let id = field("pool_id")?
            .as_i64()
            .ok_or_else(|| bad("osd pool ls detail: pool_id".into()))?;
        let name = field("pool_name")?
            .as_str()
            .ok_or_else(|| bad("osd pool ls detail: pool_name".into()))?
            .to_string();
        let num = |k: &str| -> io::Result<u32> {
            field(k)?
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| bad(format!("osd pool ls detail: {k} of {name}")))
        };
        let (size, min_size) = (num("size")?, num("min_size")?);
        // pg_pool_t::TYPE_REPLICATED is 1, TYPE_ERASURE 3.
        let replication = match num("type")? {
            1 => Replication::Replicated { size, min_size },
            3 => Replication::Erasure { size, min_size },
            t => return Err(bad(format!("pool {name}: unknown pool type {t}"))),
        };
        let applications = p
            .get("application_metadata")
            .map(|a| a.members().iter().map(|(k, _)| k.clone()).collect())
            .unwrap_or_default();
        let stats = df
            .get("pools")
            .map(Json::items)
            .unwrap_or_default()
            .iter()
            .find(|d| d.get("id").and_then(Json::as_i64) == Some(id))
            .and_then(|d| d.get("stats"));
        let stat = |k: &str| {
            stats
                .and_then(|s| s.get(k))
                .and_then(Json::as_u64)
                .unwrap_or(0)
        };
        let prefix = format!("{id}.");
        let pg_states = pgs
            .get("pg_stats")
            .map(Json::items)
            .unwrap_or_default()
            .iter()
            .filter(|g| {
                g.get("pgid")
                    .and_then(Json::as_str)
                    .is_some_and(|s| s.starts_with(&prefix))
            })
            .map(|g| {
                g.get("state")
                    .and_then(Json::as_str)
                    .unwrap_or("unknown")
                    .to_string()
            })
            .collect();
        v.push(PoolReport {
            id,
            name,
            replication,
            applications,
            stored: stat("stored"),
            bytes_used: stat("bytes_used"),
            max_avail: stat("max_avail"),
            pg_states,
        });
    }
    v.sort_by_key(|p| p.id);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_put_the_three_answers_together() {
        let detail = Json::parse(
            br#"[{"pool_id":1,"pool_name":"rbd","type":1,"size":2,"min_size":1,
                 "application_metadata":{"rbd":{}}},
                 {"pool_id":3,"pool_name":"ec","type":3,"size":3,"min_size":2,
                 "application_metadata":{}}]"#,
        )
        .unwrap();
        let df = Json::parse(
            br#"{"pools":[{"name":"rbd","id":1,"stats":{"stored":10,"bytes_used":20,"max_avail":4080190208}}]}"#,
        )
        .unwrap();
        let pgs = Json::parse(
            br#"{"pg_ready":true,"pg_stats":[{"pgid":"1.0","state":"active+clean"},
                {"pgid":"3.1","state":"peering"},{"pgid":"1.1","state":"active+undersized+degraded"},
                {"pgid":"13.0","state":"down"}]}"#,
        )
        .unwrap();
        let r = parse_reports(&detail, &df, &pgs).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].name, "rbd");
        assert_eq!(
            r[0].replication,
            Replication::Replicated {
                size: 2,
                min_size: 1
            }
        );
        assert_eq!(r[0].applications, ["rbd"]);
        assert_eq!(
            (r[0].stored, r[0].bytes_used, r[0].max_avail),
            (10, 20, 4080190208)
        );
        assert_eq!(
            r[0].pg_states,
            ["active+clean", "active+undersized+degraded"]
        );
        assert!(matches!(
            r[1].replication,
            Replication::Erasure { size: 3, .. }
        ));
        assert_eq!(r[1].pg_states, ["peering"], "13.0 is not pool 3's");
        assert_eq!(r[1].max_avail, 0);
        // A pool without its id is malformed, not skipped.
        let bad = Json::parse(br#"[{"pool_name":"x","type":1,"size":1,"min_size":1}]"#).unwrap();
        assert!(parse_reports(&bad, &df, &pgs).is_err());
        let bad = Json::parse(br#"[{"pool_id":1,"pool_name":"x","type":7,"size":1,"min_size":1}]"#)
            .unwrap();
        assert!(parse_reports(&bad, &df, &pgs).is_err());
    }

    /// Against the one-node cluster: the `rbd` pool's figures and PG states as Ceph says them.
    #[test]
    fn the_one_node_cluster_reports_its_rbd_pool() {
        let tc = crate::rbd::tests::TestCluster::start(46830);
        let c = Cluster::connect(&tc.conf(), "client.admin").unwrap();
        assert_eq!(c.fsid().unwrap().len(), 36);
        let r = c.pool_reports().unwrap();
        let rbd = r.iter().find(|p| p.name == "rbd").expect("pool rbd");
        assert_eq!(
            rbd.replication,
            Replication::Replicated {
                size: 1,
                min_size: 1
            }
        );
        assert!(rbd.applications.iter().any(|a| a == "rbd"));
        assert!(rbd.max_avail > 1 << 30, "{rbd:?}");
        assert!(!rbd.pg_states.is_empty());
        assert!(
            rbd.pg_states.iter().all(|s| s.contains("active")),
            "{rbd:?}"
        );
        // The caps docs/SCALEOUT.md gives a gateway are enough to read the pools and PGs.
        let keyring = tc.dir.join("client.gw1.keyring");
        let conf = tc.conf().display().to_string();
        let o = std::process::Command::new("ceph")
            .args(["-c", &conf, "auth", "get-or-create", "client.gw1"])
            .args(["mon", "profile rbd", "osd", "profile rbd pool=rbd", "-o"])
            .arg(&keyring)
            .output()
            .expect("ceph auth runs");
        assert!(o.status.success(), "{o:?}");
        let gw = Cluster::connect(&tc.conf(), "client.gw1").unwrap();
        let names = |v: &[PoolReport]| v.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        let seen = gw.pool_reports().unwrap();
        assert_eq!(names(&seen), names(&r));
        assert!(seen.iter().all(|p| !p.pg_states.is_empty()), "{seen:?}");
        // A malformed command is the monitor's error, not a panic.
        let e = c.mon_command("{\"prefix\":\"no such thing\"}").unwrap_err();
        assert!(e.to_string().contains("no such thing"), "{e}");
    }
}
