//! Ceph pools as storage pools and RBD LUNs' health from Ceph's PG states, against a real
//! one-node Ceph (docs/SCALEOUT.md "Ceph pools", `scripts/ceph-cluster`): the pools with the
//! `rbd` application are listed over HTTP and by `vdsctl` with Ceph's figures, the largest LUN
//! is Ceph's max_avail, a LUN made in a pool is an RBD image there; changing the pool's
//! replication on the one OSD makes its PGs undersized (size 2, min_size 1: the LUN is a
//! mirror of two plexes, `failed_redundancy`), inactive (min_size 2: `failed`) and clean again
//! (size 1: `simple`, `healthy`), each change one MODIFY event; a pool deleted in Ceph departs.
//! A missing Ceph fails the test. The cluster's monitor on 127.0.0.1:46831; the daemon on
//! 127.0.13.1.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::ceph::Ceph;
use common::*;
use serde_json::{json, Value};

/// How long a Ceph change may take to reach a LUN: peering, the manager's PG stats, and the
/// poller's period.
const CEPH_SETTLE: Duration = Duration::from_secs(60);

/// Polls `GET path` until `f` holds (bounded by [`CEPH_SETTLE`]).
fn wait(d: &Daemon, path: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + CEPH_SETTLE;
    loop {
        let v = d.get(path);
        if f(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {v}\nlog:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn pool_named<'a>(pools: &'a Value, name: &str) -> Option<&'a Value> {
    pools
        .as_array()?
        .iter()
        .find(|p| p["friendly_name"] == name)
}

#[test]
fn ceph_pools_are_storage_pools_and_luns_follow_pg_health() {
    let ceph = Ceph::start("ceph-pools", 46831);
    ceph.ceph(&["osd", "pool", "create", "vds2", "8", "8"]);
    ceph.ceph(&["osd", "pool", "application", "enable", "vds2", "rbd"]);
    let api = SocketAddr::from(([127, 0, 13, 1], 46840));
    let portal = SocketAddr::from(([127, 0, 13, 1], 46841));
    let d = Daemon::start_at(
        120,
        api,
        vec![portal],
        Opts {
            ceph_conf: Some(ceph.conf()),
            ..Default::default()
        },
    );
    let sub = d.subsystem();
    let pools_path = format!("/v1/subsystems/{sub}/pools");

    // The pools with the rbd application are storage pools; the manager's own is not. (A new
    // pool's PGs are not active until they peered and the manager heard of it: failed.)
    let pools = wait(&d, &pools_path, "the Ceph pools, healthy", |p| {
        pool_named(p, "rbd").is_some_and(|p| p["health"] == "healthy")
            && pool_named(p, "vds2").is_some_and(|p| p["health"] == "healthy")
    });
    assert!(
        pool_named(&pools, "device_health_metrics").is_none(),
        "{pools}"
    );
    let vds2 = pool_named(&pools, "vds2").unwrap().clone();
    let pool = vds2["id"].as_str().unwrap().to_string();
    assert_eq!(vds2["default_type"], "simple", "{vds2}");
    assert_eq!(vds2["attributes"]["thin_provisioned"], true, "{vds2}");
    assert_eq!(vds2["drives"].as_array().map(Vec::len), Some(0), "{vds2}");
    // The same id after a restart-free second look: derived, never stored.
    assert_eq!(d.get(&format!("/v1/pools/{pool}"))["id"], pool.as_str());

    // QueryMaxLunCreateSize: Ceph's max_avail in whole blocks (asked again until Ceph's figure
    // held still between our two looks: the manager may write meanwhile).
    let mut seen = Vec::new();
    let ok = (0..10).any(|_| {
        let before = max_avail(&ceph, "vds2");
        d.ok("POST", "/v1/provider/refresh", json!({}), 200);
        let got = d.get(&format!("/v1/pools/{pool}/max-lun-size"))["size_bytes"]
            .as_u64()
            .unwrap();
        let after = max_avail(&ceph, "vds2");
        seen.push((before, got, after));
        before == after && got == before / 512 * 512
    });
    assert!(
        ok,
        "max-lun-size against ceph df (before, vds, after): {seen:?}"
    );
    let p = d.get(&format!("/v1/pools/{pool}"));
    assert_eq!(
        p["remaining_free_space"].as_u64(),
        Some(seen.last().unwrap().2),
        "{p}"
    );
    let r = d.call(
        "GET",
        &format!("/v1/pools/{pool}/max-lun-size?type=mirror"),
        None,
    );
    assert_eq!(r.1["error"]["name"], "VDS_E_NOT_SUPPORTED", "{}", r.1);

    // vdsctl lists them too.
    let out = d.vdsctl(&["--json", "pool", "list"]);
    assert!(out.status.success(), "{}", text(&out));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(pool_named(&listed, "vds2").is_some(), "{listed}");

    // A LUN made in the pool is an RBD image there.
    let out = d.vdsctl(&[
        "--json", "lun", "create", "--size", "8MiB", "--pool", "vds2", "--name", "c1",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let luns = d.luns();
    let lun = luns
        .iter()
        .find(|l| l["friendly_name"] == "c1")
        .expect("LUN c1")
        .clone();
    let id = lun["id"].as_str().unwrap().to_string();
    let image = lun["backing"]["path"].as_str().unwrap().to_string();
    assert!(image.starts_with("vds2/vds-"), "{lun}");
    assert_eq!(
        ceph.run("rbd", &["ls", "vds2"]).trim(),
        image.trim_start_matches("vds2/")
    );
    assert_eq!(
        (lun["type"].as_str(), lun["health"].as_str()),
        (Some("simple"), Some("healthy")),
        "{lun}"
    );
    let in_pool = d.get(&format!("/v1/pools/{pool}/luns"));
    assert_eq!(in_pool[0]["id"], id.as_str(), "{in_pool}");

    let events = d.events();
    let lun_path = format!("/v1/luns/{id}");
    // Size 2 on one OSD: every PG undersized and degraded, still active (min_size 1).
    ceph.ceph(&["osd", "pool", "set", "vds2", "size", "2"]);
    ceph.ceph(&["osd", "pool", "set", "vds2", "min_size", "1"]);
    let l = wait(&d, &lun_path, "failed_redundancy", |l| {
        l["health"] == "failed_redundancy"
    });
    assert_eq!(l["type"], "mirror", "{l}");
    let plexes = d.get(&format!("/v1/luns/{id}/plexes"));
    assert_eq!(
        plexes.as_array().map(Vec::len),
        Some(2),
        "one plex per replica: {plexes}"
    );
    let p = wait(&d, &format!("/v1/pools/{pool}"), "the pool's health", |p| {
        p["health"] == "failed_redundancy"
    });
    assert_eq!(p["default_type"], "mirror", "{p}");
    // min_size 2 with one copy: the PGs stop serving.
    ceph.ceph(&["osd", "pool", "set", "vds2", "min_size", "2"]);
    wait(&d, &lun_path, "failed", |l| l["health"] == "failed");
    wait(&d, &format!("/v1/pools/{pool}"), "the pool failed", |p| {
        p["health"] == "failed" && p["status"] == "offline"
    });
    // Size 1 again: clean.
    ceph.ceph(&[
        "osd",
        "pool",
        "set",
        "vds2",
        "size",
        "1",
        "--yes-i-really-mean-it",
    ]);
    let l = wait(&d, &lun_path, "healthy", |l| l["health"] == "healthy");
    assert_eq!(l["type"], "simple", "{l}");
    assert_eq!(
        d.get(&format!("/v1/luns/{id}/plexes"))
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    // Each change one MODIFY (the type and health of the first may come in one or two steps
    // as the PGs peer, never more than one event per step, never none).
    let evs = events.drain();
    let modifies = count(&evs, &id, 110);
    assert!(
        (3..=6).contains(&modifies),
        "LUN MODIFY events: {modifies} in {evs:?}"
    );

    // A pool deleted behind vds departs on the next refresh: its id answers OBJECT_DELETED.
    ceph.ceph(&["osd", "pool", "create", "gone", "8", "8"]);
    ceph.ceph(&["osd", "pool", "application", "enable", "gone", "rbd"]);
    let pools = wait(&d, &pools_path, "pool gone listed", |p| {
        pool_named(p, "gone").is_some()
    });
    let gone = pool_named(&pools, "gone").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    ceph.ceph(&[
        "osd",
        "pool",
        "delete",
        "gone",
        "gone",
        "--yes-i-really-really-mean-it",
    ]);
    d.ok("POST", "/v1/provider/refresh", json!({}), 200);
    let r = d.call("GET", &format!("/v1/pools/{gone}"), None);
    assert_eq!(r.1["error"]["name"], "VDS_E_OBJECT_DELETED", "{}", r.1);
    assert!(pool_named(&d.get(&pools_path), "gone").is_none());

    // Deleting the LUN removes its image.
    let (status, v) = d.call("DELETE", &lun_path, None);
    assert_eq!(status, 204, "DELETE: {v}");
    let deadline = Instant::now() + Duration::from_secs(40);
    while !ceph.run("rbd", &["ls", "vds2"]).trim().is_empty() {
        assert!(Instant::now() < deadline, "the image was not removed");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Pool `name`'s max_avail as `ceph df detail` says it now.
fn max_avail(ceph: &Ceph, name: &str) -> u64 {
    let df: Value =
        serde_json::from_str(&ceph.ceph(&["df", "detail", "-f", "json"])).expect("df JSON");
    df["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no pool {name} in {df}"))["stats"]["max_avail"]
        .as_u64()
        .unwrap()
}
