//! Extent-backed LUNs on the wire (BEHAVIOUR.md §15): a stripe LUN on two `dir` drives is
//! written through iSCSI and its layout checked by reading the extent files directly (stripe
//! unit k in column k % n at offset (k / n) * stripe_size); a mirror LUN's two plexes are
//! byte-equal on disk after a write load; plexes and drive extents over HTTP; the LUN and its
//! layout come back after a restart. Slots 92 and 95.

mod common;

use common::*;
use serde_json::{json, Value};

const STRIPE: usize = 64 << 10;

/// Stripe unit `k`'s bytes: every unit different.
fn unit(k: usize) -> Vec<u8> {
    (0..STRIPE)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761) ^ (k as u32 * 7919)) as u8)
        .collect()
}

fn write_units(ini: &mut vds_testkit::Initiator, number: u64, units: usize) {
    let blocks = (STRIPE / 512) as u16;
    for k in 0..units {
        let r = ini
            .command(
                number,
                &cdb::write10(k as u32 * u32::from(blocks), blocks),
                &unit(k),
                0,
            )
            .expect("WRITE(10)");
        assert_good(&r, &format!("write of unit {k}"));
    }
    let r = ini.command(number, &cdb::sync_cache(), &[], 0).unwrap();
    assert_good(&r, "SYNCHRONIZE CACHE");
}

#[test]
fn a_stripe_luns_units_land_in_their_columns_and_survive_a_restart() {
    let mut d = Daemon::start(92, Opts::default());
    let sub = d.subsystem();
    let target = d.target();
    let root = tempfile::tempdir().unwrap();
    let ds = dirs(root.path(), &["c0", "c1"]);
    let ids: Vec<String> = ds.iter().map(|p| add_drive(&d, &sub, p, "")).collect();
    let lun = d.ok(
        "POST",
        &format!("/v1/subsystems/{sub}/luns?wait=true"),
        json!({"size_bytes": 4 << 20, "type": "stripe", "drives": ids, "stripe_size": STRIPE,
               "targets": [target]}),
        201,
    );
    assert_eq!(lun["type"], "stripe", "{lun}");
    assert_eq!(lun["backing"]["kind"], "extents", "{lun}");
    let id = lun["id"].as_str().unwrap().to_string();
    let number = lun["lun_numbers"][&target].as_u64().unwrap();
    let units = (4 << 20) / STRIPE;
    let mut ini = d.login(0, 1);
    write_units(&mut ini, number, units);

    let check_layout = || {
        let cols: Vec<Vec<u8>> = ds
            .iter()
            .map(|p| std::fs::read(extent_file(p)).unwrap())
            .collect();
        for k in 0..units {
            let (c, at) = (k % 2, (k / 2) * STRIPE);
            assert!(
                cols[c][at..at + STRIPE] == unit(k)[..],
                "stripe unit {k} is not in column {c} at offset {at}"
            );
        }
    };
    check_layout();

    // Drive faults need --enable-fault-injection.
    let (status, v) = d.call(
        "PUT",
        &format!("/v1/drives/{}/faults", ids[0]),
        Some(&json!({"filters": []})),
    );
    assert_eq!(
        (status, v["error"]["name"].as_str()),
        (422, Some("VDS_E_NOT_SUPPORTED")),
        "{v}"
    );

    // Plexes and extents over HTTP.
    let plexes = d.get(&format!("/v1/luns/{id}/plexes"));
    let plexes = plexes.as_array().expect("a list of plexes");
    assert_eq!(plexes.len(), 1, "{plexes:?}");
    assert_eq!(plexes[0]["stripe_size"], STRIPE as u64);
    assert_eq!(plexes[0]["extents"].as_array().map(Vec::len), Some(2));
    let plex = d.get(&format!("/v1/plexes/{}", plexes[0]["id"].as_str().unwrap()));
    assert_eq!(plex["lun"], id.as_str(), "{plex}");
    let ranges = d.get(&format!("/v1/drives/{}/extents", ids[1]));
    let used: Vec<&Value> = ranges
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["free"] == false)
        .collect();
    assert_eq!(used.len(), 1, "{ranges}");
    assert_eq!(
        (used[0]["lun"].as_str(), used[0]["column"].as_u64()),
        (Some(id.as_str()), Some(1))
    );

    drop(ini);
    assert_eq!(d.terminate(), Some(0), "SIGTERM exits 0");
    d.restart();
    let back = d.lun(&id);
    assert_eq!(back["status"], "online", "{back}");
    let mut ini = d.login(0, 2);
    for k in [0, 1, units - 1] {
        let r = read(
            &mut ini,
            number,
            (k * STRIPE / 512) as u32,
            (STRIPE / 512) as u16,
        );
        assert_good(&r, &format!("read of unit {k} after the restart"));
        assert!(r.data == unit(k), "unit {k} after the restart");
    }
    check_layout();
    // Delete removes the extent files.
    drop(ini);
    let (status, v) = d.call("DELETE", &format!("/v1/luns/{id}"), None);
    assert_eq!(status, 204, "DELETE: {v}");
    for p in &ds {
        let left: Vec<_> = std::fs::read_dir(p.join("vds-extents")).unwrap().collect();
        assert!(left.is_empty(), "{}: {left:?}", p.display());
    }
}

#[test]
fn a_mirror_luns_plexes_are_byte_equal_on_disk_and_a_failing_drive_fails_only_its_plex() {
    let d = Daemon::start(
        95,
        Opts {
            fault_injection: true,
            ..Default::default()
        },
    );
    let sub = d.subsystem();
    let target = d.target();
    let root = tempfile::tempdir().unwrap();
    let ds = dirs(root.path(), &["m0", "m1", "m2"]);
    let mut ids: Vec<String> = ds.iter().map(|p| add_drive(&d, &sub, p, "")).collect();
    // m2 is neither in the LUN nor a spare: only Recover uses it.
    let spare_less = ids.pop().unwrap();
    let lun = d.ok(
        "POST",
        &format!("/v1/subsystems/{sub}/luns?wait=true"),
        json!({"size_bytes": 2 << 20, "type": "mirror", "drives": ids, "plexes": 2,
               "targets": [target]}),
        201,
    );
    assert_eq!(lun["type"], "mirror", "{lun}");
    assert_eq!(lun["health"], "healthy", "{lun}");
    assert_eq!(lun["plexes"].as_array().map(Vec::len), Some(2), "{lun}");
    let number = lun["lun_numbers"][&target].as_u64().unwrap();
    let mut ini = d.login(0, 1);
    write_units(&mut ini, number, (2 << 20) / STRIPE);
    let a = std::fs::read(extent_file(&ds[0])).unwrap();
    let b = std::fs::read(extent_file(&ds[1])).unwrap();
    assert_eq!(a.len(), 2 << 20);
    assert!(a == b, "the two plexes differ on disk");
    assert!(a[..STRIPE] == unit(0)[..], "the data is on the plexes");

    // Drive 0 fails every I/O: the plex on it fails, the initiator sees no error.
    let id = lun["id"].as_str().unwrap();
    let ev = d.events();
    let drive = d.ok(
        "PUT",
        &format!("/v1/drives/{}/faults", ids[0]),
        json!({"filters": [{"error": {"ops": ["read", "write", "flush"], "after": 0}}]}),
        200,
    );
    assert_eq!(drive["id"], ids[0].as_str(), "{drive}");
    let blocks = (STRIPE / 512) as u16;
    let new: Vec<u8> = unit(100);
    for k in 0..4u32 {
        let r = ini
            .command(
                number,
                &cdb::write10(k * u32::from(blocks), blocks),
                &new,
                0,
            )
            .expect("WRITE(10)");
        assert_good(&r, &format!("write {k} with drive 0 failing"));
        let r = read(&mut ini, number, k * u32::from(blocks), blocks);
        assert_good(&r, &format!("read {k} with drive 0 failing"));
        assert!(r.data == new, "read {k} returns what was written");
    }
    let r = ini.command(number, &cdb::sync_cache(), &[], 0).unwrap();
    assert_good(&r, "SYNCHRONIZE CACHE with drive 0 failing");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let lun = loop {
        let l = d.lun(id);
        if l["health"] == "failed_redundancy" || std::time::Instant::now() > deadline {
            break l;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(lun["health"], "failed_redundancy", "{lun}");
    assert_eq!(lun["status"], "online", "{lun}");
    assert_eq!(lun["plexes"][0]["status"], "failed", "{lun}");
    assert_eq!(lun["plexes"][1]["health"], "healthy", "{lun}");
    let evs = ev.drain();
    assert_eq!(
        count(&evs, id, 110),
        1,
        "one MODIFY for the failed plex: {evs:?}"
    );
    let b = std::fs::read(extent_file(&ds[1])).unwrap();
    assert!(
        b[..STRIPE] == new[..],
        "the working plex holds the new data"
    );
    // No hot spare: the plex stays failed until Recover moves it to m2 and rebuilds it.
    assert!(
        std::fs::read_dir(ds[2].join("vds-extents")).is_err(),
        "nothing on the drive outside the LUN yet"
    );
    let (status, v) = d.call("POST", &format!("/v1/luns/{id}/recover"), None);
    assert_eq!(status, 202, "Recover starts a job: {v}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let lun = loop {
        let l = d.lun(id);
        if l["health"] == "healthy" || std::time::Instant::now() > deadline {
            break l;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(lun["health"], "healthy", "{lun}");
    let plexes = d.get(&format!("/v1/luns/{id}/plexes"));
    let on_m2 = plexes.as_array().unwrap()[0]["extents"][0]["drive"].clone();
    assert_eq!(on_m2, spare_less.as_str(), "plex 0 moved to m2: {plexes}");
    let r = ini.command(number, &cdb::sync_cache(), &[], 0).unwrap();
    assert_good(&r, "SYNCHRONIZE CACHE after the rebuild");
    let b = std::fs::read(extent_file(&ds[1])).unwrap();
    let c = std::fs::read(extent_file(&ds[2])).unwrap();
    assert!(b == c, "the rebuilt plex equals the working one on disk");
    // A mirror with no failed plex has nothing to recover.
    let (status, v) = d.call("POST", &format!("/v1/luns/{id}/recover"), None);
    assert_eq!(
        (status, v["error"]["name"].as_str()),
        (409, Some("VDS_E_INVALID_OPERATION")),
        "{v}"
    );
}
