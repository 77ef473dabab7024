//! BEHAVIOUR.md §14 rules 7 and 8 end to end, against a running `vdsd` and the in-repo
//! initiator: the identification the API answers is what INQUIRY and VPD 80/83 say on the
//! wire; the disk signature is what was written through iSCSI (MBR, GPT, blank); LUNs are
//! found by each designator; hints change what the wire shows (MODE SENSE WCE after PUT,
//! hints after MODE SELECT, VPD B0) and survive a restart; `vdsctl lun identification` and
//! `vdsctl lun hints`.
//! Slots 66..=69.

mod common;

use common::*;
use serde_json::{json, Value};

/// INQUIRY with EVPD for `page`.
fn vpd(ini: &mut vds_testkit::Initiator, page: u8) -> Vec<u8> {
    let r = ini
        .command(0, &[0x12, 0x01, page, 0x01, 0x00, 0], &[], 256)
        .expect("INQUIRY VPD");
    assert_good(&r, "INQUIRY VPD");
    r.data
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The designators of a VPD 83 page: (code set, type, association, bytes).
fn designators(page: &[u8]) -> Vec<(u8, u8, u8, Vec<u8>)> {
    let len = u16::from_be_bytes([page[2], page[3]]) as usize;
    let mut out = Vec::new();
    let mut i = 4;
    while i + 4 <= 4 + len {
        let n = page[i + 3] as usize;
        out.push((
            page[i] & 0x0F,
            page[i + 1] & 0x0F,
            (page[i + 1] >> 4) & 0x03,
            page[i + 4..i + 4 + n].to_vec(),
        ));
        i += 4 + n;
    }
    out
}

fn code_set(name: &str) -> u8 {
    match name {
        "binary" => 1,
        "ascii" => 2,
        "utf8" => 3,
        other => panic!("code set {other}"),
    }
}

fn association(name: &str) -> u8 {
    match name {
        "logical_unit" => 0,
        "target_port" => 1,
        other => panic!("association {other}"),
    }
}

fn id_type(name: &str) -> u8 {
    match name {
        "vendor_id" => 1,
        "fcphname" => 3,
        "port_relative" => 4,
        "target_port_group" => 5,
        "scsi_name_string" => 8,
        other => panic!("type {other}"),
    }
}

fn from_api(ids: &Value) -> Vec<(u8, u8, u8, Vec<u8>)> {
    ids.as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let b = i["bytes"].as_str().unwrap();
            (
                code_set(i["code_set"].as_str().unwrap()),
                id_type(i["type"].as_str().unwrap()),
                association(i["association"].as_str().unwrap()),
                (0..b.len())
                    .step_by(2)
                    .map(|k| u8::from_str_radix(&b[k..k + 2], 16).unwrap())
                    .collect(),
            )
        })
        .collect()
}

/// What the wire says and what the API says are the same: vendor, product, revision from
/// standard INQUIRY; the serial from VPD 80; VPD 83 = the LU identifiers + the port
/// identifiers of the interconnect the session came through.
#[test]
fn identification_is_what_inquiry_and_vpd_say() {
    let d = Daemon::start(66, Opts::default());
    let lun = d.default_lun();
    let mut ini = d.login(0, 1);
    let _ = tur(&mut ini, 0);
    let std = inquiry(&mut ini, 0);
    assert_good(&std, "INQUIRY");
    let info = d.get(&format!("/v1/luns/{lun}/identification"));
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    assert_eq!(info["vendor_id"], text(&std.data[8..16]));
    assert_eq!(info["product_id"], text(&std.data[16..32]));
    assert_eq!(info["product_revision"], text(&std.data[32..36]));
    assert_eq!(info["device_type"], u64::from(std.data[0] & 0x1F));
    assert_eq!(info["bus_type"], "iscsi");
    assert_eq!(info["version"], 1);
    let serial = vpd(&mut ini, 0x80);
    assert_eq!(info["serial_number"], text(&serial[4..]));

    let wire = designators(&vpd(&mut ini, 0x83));
    let lu_ids = from_api(&info["identifiers"]);
    let ics = info["interconnects"].as_array().unwrap();
    assert_eq!(ics.len(), 1, "one portal serves the default LUN: {info}");
    assert_eq!(ics[0]["address"], d.portals[0].to_string());
    let port = &ics[0]["ports"][0];
    assert_eq!(port["name"], format!("{TARGET},t,0x0001"));
    let mut want = lu_ids.clone();
    want.extend(from_api(&port["identifiers"]));
    assert_eq!(wire, want, "VPD 83 on the wire vs the API");
    assert!(
        lu_ids.iter().all(|i| i.2 == 0),
        "LU identifiers are LU-associated"
    );

    // Found by each of its designators, and by nothing else.
    let naa = hex(&lu_ids[0].3);
    let t10 = String::from_utf8(lu_ids[1].3.clone()).unwrap();
    for q in [
        format!("naa.{naa}"),
        naa.to_uppercase(),
        t10.replace(' ', "%20"),
        info["serial_number"].as_str().unwrap().to_uppercase(),
    ] {
        let found = d.get(&format!("/v1/luns?identifier={q}"));
        let ids: Vec<&str> = found
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, vec![lun.as_str()], "{q}");
    }
    let none = d.get("/v1/luns?identifier=naa.60056440000000000000000000000000");
    assert_eq!(none, json!([]));
    let r = d.call("GET", "/v1/luns?identifier=naa.12zz", None);
    assert_error(&r, 400, "0x80070057", "E_INVALIDARG");
    assert!(r.1["error"]["message"]
        .as_str()
        .unwrap()
        .contains("identifier"));
    let r = d.call("GET", "/v1/luns?identifer=x", None);
    assert_error(&r, 400, "0x80070057", "E_INVALIDARG");
    let r = d.call(
        "GET",
        "/v1/luns/00000000-0000-0000-0000-000000000001/identification",
        None,
    );
    assert_error(&r, 404, "0x80042405", "VDS_E_OBJECT_NOT_FOUND");
}

/// The disk signature is read from the LUN: blank → zero; an MBR written through iSCSI → its
/// signature; a GPT header at LBA 1 → the disk GUID.
#[test]
fn disk_signature_is_read_from_the_lun() {
    let d = Daemon::start(67, Opts::default());
    let lun = d.default_lun();
    let path = format!("/v1/luns/{lun}/identification");
    let info = d.get(&path);
    assert_eq!(info["disk_signature_kind"], "none");
    assert_eq!(
        info["disk_signature"],
        "00000000-0000-0000-0000-000000000000"
    );

    let mut ini = d.login(0, 1);
    let _ = tur(&mut ini, 0);
    let mut mbr = vec![0u8; 512];
    mbr[440..444].copy_from_slice(&0xCAFE_F00Du32.to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xAA;
    assert_good(&write_fua(&mut ini, 0, 0, &mbr), "write MBR");
    let info = d.get(&path);
    assert_eq!(info["disk_signature_kind"], "mbr");
    assert_eq!(info["mbr_signature"], "cafef00d");
    assert_eq!(
        info["disk_signature"],
        "cafef00d-0000-0000-0000-000000000000"
    );

    // A GPT header: "EFI PART" at LBA 1, disk GUID at byte 56 (mixed-endian on disk).
    let guid = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
    let mut hdr = vec![0u8; 512];
    hdr[..8].copy_from_slice(b"EFI PART");
    hdr[56..72].copy_from_slice(&[
        0x3c, 0x2d, 0x1e, 0x0f, 0x5a, 0x4b, 0x78, 0x69, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1,
        0xf0,
    ]);
    assert_good(&write_fua(&mut ini, 0, 1, &hdr), "write GPT header");
    let info = d.get(&path);
    assert_eq!(info["disk_signature_kind"], "gpt");
    assert_eq!(info["disk_signature"], guid);
}

/// MODE SENSE(6) of the caching page: WCE.
fn wce(ini: &mut vds_testkit::Initiator) -> bool {
    let r = ini
        .command(0, &[0x1A, 0x08, 0x08, 0, 255, 0], &[], 255)
        .expect("MODE SENSE");
    assert_good(&r, "MODE SENSE");
    r.data[4 + 2] & 0x04 != 0
}

/// VPD B0 OPTIMAL TRANSFER LENGTH GRANULARITY and OPTIMAL TRANSFER LENGTH, in blocks.
fn b0(ini: &mut vds_testkit::Initiator) -> (u16, u32) {
    let p = vpd(ini, 0xB0);
    (
        u16::from_be_bytes([p[6], p[7]]),
        u32::from_be_bytes([p[12], p[13], p[14], p[15]]),
    )
}

/// Hints on the wire, both ways, and across a restart.
#[test]
fn hints_change_what_the_wire_shows_and_mode_select_changes_the_hints() {
    let mut d = Daemon::start(68, Opts::default());
    let lun = d.default_lun();
    let path = format!("/v1/luns/{lun}/hints");
    let h = d.get(&path);
    assert_eq!(h["write_caching_enabled"], true);
    assert_eq!(h["hint_mask"], 0x0001 | 0x0010 | 0x0040 | 0x2000);
    let mut ini = d.login(0, 1);
    let _ = tur(&mut ini, 0);
    assert!(wce(&mut ini));
    assert_eq!(b0(&mut ini), (8, 2048), "defaults");

    // Bad hints change nothing.
    for (body, field) in [
        (json!({"optimal_write_size": 1000}), "optimal_write_size"),
        (json!({"rebuild_priority": 16}), "rebuild_priority"),
        (json!({"hint_mask": 1}), "hint_mask"),
        (json!({"is_yankable": 1}), "is_yankable"),
    ] {
        let r = d.call("PUT", &path, Some(&body));
        assert_error(&r, 400, "0x80070057", "E_INVALIDARG");
        assert!(
            r.1["error"]["message"].as_str().unwrap().contains(field),
            "{field}: {}",
            r.1
        );
    }
    assert_eq!(d.get(&path), h);

    let set = d.ok(
        "PUT",
        &path,
        json!({"write_caching_enabled": false, "optimal_write_size": 131072,
               "optimal_write_alignment": 8192, "is_yankable": true, "rebuild_priority": 4}),
        200,
    );
    assert_eq!(set["write_caching_enabled"], false);
    assert_eq!(set["hint_mask"], 0x2000);
    assert_eq!(set["not_applied"][0]["field"], "is_yankable");
    // The LUN changed WCE under the host: 06/2A/01 is not promised, so skip any UA first.
    let _ = tur(&mut ini, 0);
    assert!(!wce(&mut ini), "MODE SENSE WCE after PUT hints");
    assert_eq!(b0(&mut ini), (16, 256), "VPD B0 after PUT hints");
    assert_eq!(d.lun(&lun)["rebuild_priority"], 4);

    // MODE SELECT(6) turning WCE back on shows in the hints.
    let mut page = vec![0u8; 4 + 20];
    page[4] = 0x08;
    page[5] = 0x12;
    page[6] = 0x04;
    let r = ini
        .command(0, &[0x15, 0x10, 0, 0, page.len() as u8, 0], &page, 0)
        .expect("MODE SELECT");
    assert_good(&r, "MODE SELECT");
    d.wait_until(&path, "write cache back on", |h| {
        h["write_caching_enabled"] == true
    });
    drop(ini);

    // kill -9: what the API answered is stored.
    d.kill9();
    d.restart();
    let h = d.get(&path);
    assert_eq!(h["write_caching_enabled"], true, "stored");
    assert_eq!(h["optimal_write_size"], 131072);
    let mut ini = d.login(0, 2);
    let _ = tur(&mut ini, 0);
    assert!(wce(&mut ini));
    assert_eq!(b0(&mut ini), (16, 256), "VPD B0 after a restart");

    // Hints in the create body (CreateLun2).
    let sub = d.subsystem();
    let created = d.ok(
        "POST",
        &format!("/v1/subsystems/{sub}/luns?wait=true"),
        json!({"size_bytes": 1 << 20, "hints": {"write_through_caching_enabled": true}}),
        201,
    );
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        d.get(&format!("/v1/luns/{id}/hints"))["write_through_caching_enabled"],
        true
    );
    assert!(created["flags"]
        .as_array()
        .unwrap()
        .contains(&json!("write_through_caching_enabled")));
}

/// `vdsctl lun identification` and `vdsctl lun hints`.
#[test]
fn vdsctl_identification_and_hints() {
    let d = Daemon::start(69, Opts::default());
    let lun = d.default_lun();
    let out = d.vdsctl(&["lun", "identification", &lun, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, d.get(&format!("/v1/luns/{lun}/identification")));
    let out = d.vdsctl(&["lun", "identification", &lun]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(v["serial_number"].as_str().unwrap()),
        "{text}"
    );

    let out = d.vdsctl(&[
        "lun",
        "hints",
        &lun,
        "--set",
        "read_back_verify_enabled=true",
        "--set",
        "optimal_read_size=65536",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["read_back_verify_enabled"], true);
    assert_eq!(v["optimal_read_size"], 65536);
    let h = d.get(&format!("/v1/luns/{lun}/hints"));
    assert_eq!(h["read_back_verify_enabled"], true);
    // A malformed --set is a usage error and changes nothing.
    for bad in [
        "read_back_verify_enabled",
        "optimal_read_size=big",
        "nosuch=1",
    ] {
        let out = d.vdsctl(&["lun", "hints", &lun, "--set", bad]);
        assert!(!out.status.success(), "{bad}");
    }
    assert_eq!(d.get(&format!("/v1/luns/{lun}/hints")), h);
    let out = d.vdsctl(&["lun", "hints", &lun]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("read_back_verify_enabled"));

    // `lun list --identifier`: by serial, by NAA, by the T10 vendor id (spaces in it), and a
    // designator no LUN carries (an empty list).
    let info = d.get(&format!("/v1/luns/{lun}/identification"));
    let serial = info["serial_number"].as_str().unwrap().to_string();
    let mut by = vec![serial.to_uppercase()];
    for i in info["identifiers"].as_array().unwrap() {
        let bytes = i["bytes"].as_str().unwrap();
        match i["type"].as_str().unwrap() {
            "fcphname" => by.push(format!("naa.{bytes}")),
            "vendor_id" => by.push(
                String::from_utf8(
                    (0..bytes.len())
                        .step_by(2)
                        .map(|k| u8::from_str_radix(&bytes[k..k + 2], 16).unwrap())
                        .collect(),
                )
                .unwrap(),
            ),
            _ => {}
        }
    }
    assert_eq!(by.len(), 3, "{info}");
    for designator in &by {
        let out = d.vdsctl(&["--json", "lun", "list", "--identifier", designator]);
        assert!(out.status.success(), "{designator}: {}", common::text(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v.as_array().map(Vec::len), Some(1), "{designator}: {v}");
        assert_eq!(v[0]["id"], lun, "{designator}");
    }
    let out = d.vdsctl(&[
        "--json",
        "lun",
        "list",
        "--identifier",
        "naa.60000000000000000000000000000001",
    ]);
    assert!(out.status.success(), "{}", common::text(&out));
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        serde_json::json!([])
    );
    let out = d.vdsctl(&["lun", "list", "--identifier", "naa.xyz"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "bad syntax is the API's E_INVALIDARG: {}",
        common::text(&out)
    );

    // `lun create --hint` (CreateLun2): the hints are applied at creation.
    let out = d.vdsctl(&[
        "--json",
        "lun",
        "create",
        "--size",
        "4MiB",
        "--name",
        "hinted",
        "--hint",
        "write_caching_enabled=false",
    ]);
    assert!(out.status.success(), "{}", common::text(&out));
    let id = d
        .get("/v1/luns")
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["friendly_name"] == "hinted")
        .map(|l| l["id"].as_str().unwrap().to_string())
        .expect("created");
    assert_eq!(
        d.get(&format!("/v1/luns/{id}/hints"))["write_caching_enabled"],
        false
    );
}
