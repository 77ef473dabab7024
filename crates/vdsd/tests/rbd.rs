//! RBD LUNs against a real one-node Ceph (docs/SCALEOUT.md, `scripts/ceph-cluster`): a LUN
//! made on a new image is written and read through iSCSI, survives a restart, grows (the
//! initiator sees the new capacity), and its image is removed with it; an existing image is
//! adopted with its data and size and left in place when its LUN is deleted; the refusals. A
//! missing Ceph fails the test. Slot 101; the cluster's monitor on 127.0.0.1:46793.
//!
//! The asynchronous data path (librbd's aio, completions on librbd's thread): COMPARE AND
//! WRITE (and its miscompare offset), WRITE SAME and WRITE SAME with UNMAP, SYNCHRONIZE CACHE,
//! and a resize made by `rbd resize` behind the gateway seen as 06/2A/09 with the new
//! capacity. That daemon is on 127.0.12.1 (API :3280, portal :3260), its cluster's monitor on
//! 127.0.0.1:46821.

mod common;

use common::ceph::Ceph;
use common::*;
use serde_json::json;

/// Asserts an error answer by HTTP status and HRESULT name.
fn refused(r: &(u16, serde_json::Value), http: u16, name: &str, what: &str) {
    assert_eq!(r.0, http, "{what}: {}", r.1);
    assert_eq!(r.1["error"]["name"], name, "{what}: {}", r.1);
}

#[test]
fn rbd_luns_are_made_served_resized_adopted_and_removed() {
    let ceph = Ceph::start("rbd", 46793);
    let mut d = Daemon::start(
        101,
        Opts {
            ceph_conf: Some(ceph.conf()),
            ..Default::default()
        },
    );
    let sub = d.subsystem();
    let target = d.target();
    let luns = format!("/v1/subsystems/{sub}/luns?wait=true");

    // Refusals, each changing nothing.
    let bad = |backing: serde_json::Value, code: &str| {
        let r = d.call(
            "POST",
            &luns,
            Some(&json!({"size_bytes": 8 << 20, "backing": backing})),
        );
        refused(&r, 400, code, &format!("{backing}"));
    };
    bad(json!({"kind": "rbd", "pool": "rbd"}), "E_INVALIDARG");
    bad(
        json!({"kind": "rbd", "pool": "rbd", "image": "a/b"}),
        "E_INVALIDARG",
    );
    let r = d.call(
        "POST",
        &luns,
        Some(&json!({"size_bytes": 8 << 20, "backing": {"kind": "rbd", "pool": "nopool", "image": "x"}})),
    );
    refused(
        &r,
        404,
        "VDS_E_OBJECT_NOT_FOUND",
        "a pool Ceph does not have",
    );
    assert!(ceph.images().is_empty());

    // A new image: made by vds.
    let lun = d.ok(
        "POST",
        &luns,
        json!({"size_bytes": 8 << 20, "friendly_name": "r1", "targets": [target],
               "backing": {"kind": "rbd", "pool": "rbd", "image": "r1"}}),
        201,
    );
    let id = lun["id"].as_str().unwrap().to_string();
    assert_eq!(lun["backing"]["kind"], "rbd", "{lun}");
    assert_eq!(lun["backing"]["path"], "rbd/r1", "{lun}");
    assert_eq!(ceph.images(), ["r1"]);
    let number = lun["lun_numbers"][&target].as_u64().unwrap();
    // The same image twice is refused.
    let r = d.call(
        "POST",
        &luns,
        Some(&json!({"size_bytes": 8 << 20, "backing": {"kind": "rbd", "pool": "rbd", "image": "r1"}})),
    );
    refused(&r, 409, "VDS_E_DEVICE_IN_USE", "the same image again");

    let data = pattern(7, 64 << 10);
    let mut ini = d.login(0, 1);
    assert_good(&write_fua(&mut ini, number, 100, &data), "WRITE FUA");
    let r = read(&mut ini, number, 100, 128);
    assert_good(&r, "READ");
    assert!(r.data == data, "read back what was written");
    assert_eq!(capacity_bytes(&capacity(&mut ini, number)), 8 << 20);
    drop(ini);

    // A restart reopens the image with its data.
    assert_eq!(d.terminate(), Some(0));
    d.restart();
    let mut ini = d.login(0, 2);
    let r = read(&mut ini, number, 100, 128);
    assert_good(&r, "READ after the restart");
    assert!(r.data == data, "the data survived the restart");

    // Extend: the image grows and the initiator sees it.
    let v = d.ok(
        "POST",
        &format!("/v1/luns/{id}/extend?wait=true"),
        json!({"bytes": 8 << 20}),
        200,
    );
    assert_eq!(v["size_bytes"], 16 << 20, "{v}");
    let o = ceph.rbd(&["info", "rbd/r1", "--format", "json"]);
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).expect("rbd info json");
    assert_eq!(info["size"], 16 << 20, "{info}");
    let _ = tur(&mut ini, number); // the capacity-changed unit attention
    assert_eq!(capacity_bytes(&capacity(&mut ini, number)), 16 << 20);
    drop(ini);

    // An existing image is adopted as it is (its size; a different size is refused).
    let o = ceph.rbd(&["create", "rbd/mine", "--size", "4M"]);
    assert!(o.status.success(), "rbd create: {}", text(&o));
    let r = d.call(
        "POST",
        &luns,
        Some(&json!({"size_bytes": 8 << 20, "backing": {"kind": "rbd", "pool": "rbd", "image": "mine"}})),
    );
    refused(&r, 400, "E_INVALIDARG", "an adopted image keeps its size");
    let mine = d.ok(
        "POST",
        &luns,
        json!({"size_bytes": 4 << 20, "backing": {"kind": "rbd", "pool": "rbd", "image": "mine"}}),
        201,
    );
    let mine_id = mine["id"].as_str().unwrap().to_string();

    // The same through vdsctl: `--image POOL/IMAGE`.
    let o = d.vdsctl(&[
        "lun", "create", "--size", "4MiB", "--name", "r2", "--image", "rbd/r2",
    ]);
    assert!(
        o.status.success(),
        "vdsctl lun create --image: {}",
        text(&o)
    );
    assert!(ceph.images().contains(&"r2".to_string()));
    let o = d.vdsctl(&["lun", "create", "--size", "4MiB", "--image", "no-slash"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = d.vdsctl(&["lun", "delete", "r2"]);
    assert!(o.status.success(), "vdsctl lun delete: {}", text(&o));

    // Deleting: vds's own image goes, the adopted one stays. While another client watches
    // r1 librbd cannot remove it: until it is gone no new LUN may take it.
    let mut watcher = std::process::Command::new("rbd")
        .arg("-c")
        .arg(ceph.conf())
        .args(["watch", "rbd/r1"])
        // It watches until a line arrives on its stdin: kept open until it is killed.
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("rbd watch");
    // Registered once `rbd status` lists two watchers (vdsd's and this one).
    let t0 = std::time::Instant::now();
    loop {
        let o = ceph.rbd(&["status", "rbd/r1"]);
        if String::from_utf8_lossy(&o.stdout)
            .matches("watcher=")
            .count()
            >= 2
        {
            break;
        }
        assert!(
            t0.elapsed().as_secs() < 20,
            "rbd watch did not register: {}",
            text(&o)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    for (id, what) in [(&id, "r1"), (&mine_id, "mine")] {
        let (status, v) = d.call("DELETE", &format!("/v1/luns/{id}"), None);
        assert_eq!(status, 204, "DELETE {what}: {v}");
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        ceph.images().contains(&"r1".to_string()),
        "watched: not removable yet"
    );
    let r = d.call(
        "POST",
        &luns,
        Some(&json!({"size_bytes": 16 << 20, "backing": {"kind": "rbd", "pool": "rbd", "image": "r1"}})),
    );
    refused(&r, 409, "VDS_E_DEVICE_IN_USE", "an image being removed");
    // A line on its stdin makes `rbd watch` unwatch and exit (a kill would leave the watch
    // until the OSD times it out).
    std::io::Write::write_all(watcher.stdin.as_mut().unwrap(), b"\n").unwrap();
    let t0 = std::time::Instant::now();
    while watcher.try_wait().unwrap().is_none() {
        assert!(t0.elapsed().as_secs() < 20, "rbd watch did not exit");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The image goes once the data path has closed it (bounded).
    let t0 = std::time::Instant::now();
    while ceph.images() != ["mine"] {
        assert!(
            t0.elapsed().as_secs() < 20,
            "images left: {:?}",
            ceph.images()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// SCSI on an RBD LUN through librbd's asynchronous calls, and a resize behind the gateway.
#[test]
fn rbd_aio_commands_and_a_resize_behind_the_gateway() {
    let ceph = Ceph::start("rbd", 46821);
    let ip = [127, 0, 12, 1];
    let d = Daemon::start_at(
        120,
        std::net::SocketAddr::from((ip, 3280)),
        vec![std::net::SocketAddr::from((ip, 3260))],
        Opts {
            ceph_conf: Some(ceph.conf()),
            ..Default::default()
        },
    );
    let sub = d.subsystem();
    let target = d.target();
    let lun = d.ok(
        "POST",
        &format!("/v1/subsystems/{sub}/luns?wait=true"),
        json!({"size_bytes": 8 << 20, "friendly_name": "a1", "targets": [target],
               "backing": {"kind": "rbd", "pool": "rbd", "image": "a1"}}),
        201,
    );
    let n = lun["lun_numbers"][&target].as_u64().unwrap();
    let mut ini = d.login(0, 1);
    let _ = tur(&mut ini, n);
    assert_eq!(capacity_bytes(&capacity(&mut ini, n)), 8 << 20);
    let cmd = |ini: &mut vds_testkit::Initiator, cdb: &[u8], out: &[u8], len: u32| {
        ini.command(n, cdb, out, len).expect("command")
    };

    // WRITE (FUA), READ and SYNCHRONIZE CACHE.
    let data = pattern(3, 32 << 10);
    assert_good(&write_fua(&mut ini, n, 40, &data), "WRITE FUA");
    let r = read(&mut ini, n, 40, 64);
    assert_good(&r, "READ");
    assert!(r.data == data, "read back what was written");
    assert_good(
        &cmd(&mut ini, &cdb::sync_cache(), &[], 0),
        "SYNCHRONIZE CACHE",
    );

    // COMPARE AND WRITE of block 40: equal → written; a miscompare at byte 77 → 0E/1D/00
    // with INFORMATION 77, and nothing written.
    let mut caw = vec![0u8; 16];
    caw[0] = 0x89;
    caw[9] = 40;
    caw[13] = 1;
    let mut out = data[..512].to_vec();
    out.extend(vec![0xC1; 512]);
    assert_good(&cmd(&mut ini, &caw, &out, 0), "COMPARE AND WRITE");
    assert_eq!(read(&mut ini, n, 40, 1).data, vec![0xC1; 512]);
    let mut bad = vec![0xC1; 512];
    bad[77] = 0;
    bad.extend(vec![0xC2; 512]);
    let r = cmd(&mut ini, &caw, &bad, 0);
    assert_sense(&r, (0x0E, 0x1D, 0x00), "COMPARE AND WRITE miscompare");
    assert_eq!(&r.sense[3..7], &[0, 0, 0, 77], "the miscompare offset");
    assert_eq!(read(&mut ini, n, 40, 1).data, vec![0xC1; 512]);

    // WRITE SAME(16) of one block over 64 blocks, then WRITE SAME with UNMAP over 16.
    let block = pattern(9, 512);
    let mut ws = vec![0u8; 16];
    ws[0] = 0x93;
    ws[9] = 200;
    ws[13] = 64;
    assert_good(&cmd(&mut ini, &ws, &block, 512), "WRITE SAME(16)");
    let r = read(&mut ini, n, 200, 64);
    assert!(
        r.data.chunks(512).all(|c| c == block.as_slice()),
        "WRITE SAME pattern"
    );
    ws[1] = 0x08;
    ws[13] = 16;
    assert_good(&cmd(&mut ini, &ws, &block, 512), "WRITE SAME(16) UNMAP");
    let r = read(&mut ini, n, 200, 64);
    assert!(
        r.data[..16 * 512].iter().all(|&b| b == 0),
        "unmapped blocks read zero"
    );
    assert!(r.data[16 * 512..]
        .chunks(512)
        .all(|c| c == block.as_slice()));

    // `rbd resize` behind the gateway: the next command gets 06/2A/09 (within 10 s) and READ
    // CAPACITY the new size, growing and shrinking.
    for (size, args) in [
        (24u64 << 20, &["resize", "rbd/a1", "--size", "24M"][..]),
        (
            12 << 20,
            &["resize", "rbd/a1", "--size", "12M", "--allow-shrink"][..],
        ),
    ] {
        let o = ceph.rbd(args);
        assert!(o.status.success(), "rbd resize: {}", text(&o));
        let t0 = std::time::Instant::now();
        loop {
            let r = tur(&mut ini, n);
            if r.status == CHECK {
                assert_sense(&r, (6, 0x2A, 0x09), "CAPACITY DATA HAS CHANGED");
                break;
            }
            assert!(
                t0.elapsed().as_secs() < 10,
                "no capacity-changed UA for {size}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(capacity_bytes(&capacity(&mut ini, n)), size);
        assert_good(&tur(&mut ini, n), "once per change");
    }
    // Data below the new end is still there; the old end is now out of range (05/21/00).
    assert_eq!(read(&mut ini, n, 40, 1).data, vec![0xC1; 512]);
    let r = read(&mut ini, n, (12 << 20) / 512, 1);
    assert_sense(&r, (5, 0x21, 0x00), "READ beyond the shrunk image");
    drop(ini);
}
