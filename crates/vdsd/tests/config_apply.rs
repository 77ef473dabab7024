//! The configuration document end to end (INTERFACE.md "Configuration documents", issue 16):
//! `vdsctl export` of a daemon applied with `vdsctl apply` onto a fresh one exports the same
//! again; a second apply changes nothing; a bad document changes nothing and names its field
//! (at the call, and at the job's commit time: a portal that cannot be bound undoes the LUN
//! file already made); `vdsctl import targetcli` of saveconfig.json fixtures in rtslib-fb's
//! `dump()` format (`tests/data/targetcli/`), the unmappable and hostile ones refused with
//! nothing changed. Addresses 127.0.21.3-9 (this file's own).

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use common::{Daemon, Opts};
use serde_json::{json, Value};

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

fn start(api: &str, portal: &str) -> Daemon {
    Daemon::start_at(200, addr(api), vec![addr(portal)], Opts::default())
}

/// `vdsctl ARGS` that must succeed; its stdout.
fn ctl_ok(d: &Daemon, args: &[&str]) -> String {
    let out = d.vdsctl(args);
    assert!(
        out.status.success(),
        "vdsctl {args:?}: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The export (with secrets) as JSON.
fn export(d: &Daemon) -> Value {
    let text = ctl_ok(d, &["export", "--include-secrets"]);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("export is not JSON ({e}): {text}"))
}

/// Runs a job call with `?wait=true` and insists on `want`.
fn wait_ok(d: &Daemon, method: &str, path: &str, body: Value, want: u16) -> Value {
    let sep = if path.contains('?') { '&' } else { '?' };
    d.ok(method, &format!("{path}{sep}wait=true"), body, want)
}

/// An array with a bit of everything, built through the API.
fn populate(d: &Daemon, dir: &Path) {
    let sub = d.subsystem();
    let beta = dir.join("beta.img");
    std::fs::write(&beta, vec![0u8; 8 << 20]).unwrap();
    let alpha = wait_ok(
        d,
        "POST",
        &format!("/v1/subsystems/{sub}/luns"),
        json!({"size_bytes": 4 << 20, "friendly_name": "alpha",
               "unmasking_list": "iqn.1994-05.com.example:h1"}),
        201,
    );
    let beta = wait_ok(
        d,
        "POST",
        &format!("/v1/subsystems/{sub}/luns"),
        json!({"size_bytes": 8 << 20, "friendly_name": "beta",
               "backing": {"kind": "file", "path": beta.display().to_string()}}),
        201,
    );
    let beta_id = beta["id"].as_str().unwrap();
    d.ok(
        "PATCH",
        &format!("/v1/luns/{beta_id}"),
        json!({"read_only": true}),
        200,
    );
    let t = wait_ok(
        d,
        "POST",
        &format!("/v1/subsystems/{sub}/targets"),
        json!({"friendly_name": "second", "iscsi_name": "iqn.2026-12.test.vds:second"}),
        201,
    );
    let tid = t["id"].as_str().unwrap().to_string();
    let pg = wait_ok(
        d,
        "POST",
        &format!("/v1/targets/{tid}/portal-groups"),
        json!({}),
        201,
    );
    let p = d.ok(
        "POST",
        &format!("/v1/subsystems/{sub}/portals"),
        json!({"address": "127.0.21.4", "port": 45234}),
        201,
    );
    let pg_id = pg["id"].as_str().unwrap();
    wait_ok(
        d,
        "POST",
        &format!("/v1/portal-groups/{pg_id}/portals"),
        json!({"portal": p["id"]}),
        200,
    );
    d.ok(
        "PUT",
        &format!("/v1/luns/{}/hints", alpha["id"].as_str().unwrap()),
        json!({"optimal_write_size": 65536, "write_caching_enabled": false}),
        200,
    );
    let default_target = d.target();
    let alpha_id = alpha["id"].as_str().unwrap();
    d.ok(
        "PUT",
        &format!("/v1/luns/{alpha_id}/targets"),
        json!({"targets": [default_target, tid]}),
        200,
    );
    d.ok(
        "PUT",
        &format!("/v1/targets/{tid}/shared-secret"),
        json!({"secret": "sharedsecret1"}),
        200,
    );
    d.ok(
        "PUT",
        &format!("/v1/targets/{tid}/shared-secret"),
        json!({"secret": "initsecret123", "initiator_name": "iqn.1994-05.com.example:h1"}),
        200,
    );
    d.ok(
        "PUT",
        &format!("/v1/targets/{tid}/initiator-secrets/iqn.1994-05.com.example:h1"),
        json!({"secret": "mutualsecret1"}),
        200,
    );
}

#[test]
fn export_applied_to_a_fresh_daemon_exports_the_same_and_a_second_apply_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = start("127.0.21.3:45230", "127.0.21.4:45231");
    populate(&a, dir.path());
    let doc_a = export(&a);
    assert_eq!(doc_a["format"], "vds-config/1");
    assert_eq!(doc_a["luns"].as_array().unwrap().len(), 3, "{doc_a:#}");
    assert_eq!(doc_a["luns"][0]["name"], "alpha");
    assert_eq!(doc_a["luns"][0]["hints"]["optimal_write_size"], 65536);
    assert_eq!(doc_a["luns"][0]["hints"]["write_caching_enabled"], false);
    assert!(
        doc_a.to_string().contains("mutualsecret1"),
        "secrets with --include-secrets: {doc_a:#}"
    );
    let plain = ctl_ok(&a, &["export"]);
    assert!(
        !plain.contains("secret1") && !plain.contains("\"chap\""),
        "no secrets without --include-secrets: {plain}"
    );
    // A's portals and files are B's to take.
    a.terminate();
    let file = dir.path().join("a.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc_a).unwrap()).unwrap();
    let b = start("127.0.21.5:45232", "127.0.21.5:45233");
    let plan = ctl_ok(&b, &["apply", "--dry-run", file.to_str().unwrap()]);
    assert!(plan.contains("plan: create LUN \"alpha\""), "{plan}");
    assert!(
        plan.contains("plan: delete portal 127.0.21.5:45233"),
        "{plan}"
    );
    assert_eq!(
        export(&b)["luns"].as_array().unwrap().len(),
        1,
        "a dry run changes nothing"
    );
    let events = b.events();
    ctl_ok(&b, &["apply", file.to_str().unwrap()]);
    let doc_b = export(&b);
    assert_eq!(doc_b, doc_a, "export -> apply -> export differs");
    // The imported portal listens; the deleted one does not.
    assert!(std::net::TcpStream::connect("127.0.21.4:45231").is_ok());
    assert!(std::net::TcpStream::connect("127.0.21.5:45233").is_err());
    // Idempotent: the plan is empty, and applying again sends no event.
    let again = ctl_ok(&b, &["apply", "--dry-run", file.to_str().unwrap()]);
    assert!(again.contains("nothing to do"), "{again}");
    drop(events);
    let events = b.events();
    ctl_ok(&b, &["apply", file.to_str().unwrap()]);
    assert_eq!(export(&b), doc_a);
    let lun = b.create_lun("marker", 1 << 20);
    let seen = events.collect(std::time::Duration::from_secs(1));
    assert!(
        !seen.is_empty(),
        "the event stream saw nothing, so it proves nothing"
    );
    for e in &seen {
        assert_eq!(
            e["id"], lun["id"],
            "the second apply announced a change: {e}"
        );
    }
}

/// The document a daemon exports, with `f` applied to it.
fn edited(doc: &Value, f: impl FnOnce(&mut Value)) -> Value {
    let mut d = doc.clone();
    f(&mut d);
    d
}

fn lun_files(d: &Daemon) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(d.data_dir().join("luns"))
        .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_bad_document_changes_nothing_and_names_the_field() {
    let d = start("127.0.21.8:45240", "127.0.21.8:45241");
    let doc0 = export(&d);
    let files0 = lun_files(&d);
    let new_lun = json!({"name": "new1", "size_bytes": 1 << 20, "backing": {"kind": "file"}});
    let cases: Vec<(Value, &str)> = vec![
        (
            edited(&doc0, |x| {
                x["luns"].as_array_mut().unwrap().push(new_lun.clone());
                x["luns"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"name": "new2",
                    "size_bytes": 1 << 20, "backing": {"kind": "file"},
                    "unmasking_list": "not an iqn"}));
            }),
            "luns[2].unmasking_list",
        ),
        (
            edited(&doc0, |x| x["luns"][0]["size_bytes"] = json!("big")),
            "size_bytes",
        ),
        (edited(&doc0, |x| x["colour"] = json!("blue")), "colour"),
        (
            edited(&doc0, |x| x["format"] = json!("vds-config/9")),
            "format",
        ),
        (
            edited(&doc0, |x| x["portals"][0]["address"] = json!("127.0.21.8")),
            "portals[0].address",
        ),
        (
            edited(&doc0, |x| {
                x["targets"][0]["portal_groups"][0]["portals"] = json!(["127.0.21.9:1"])
            }),
            "targets[0].portal_groups[0].portals[0]",
        ),
        (
            edited(&doc0, |x| {
                x["luns"].as_array_mut().unwrap().push(json!({"name": "shadow",
                    "size_bytes": 1 << 20,
                    "backing": {"kind": "file", "path": d.data_dir().join("vds.sqlite").display().to_string()}}))
            }),
            "luns[1].backing.path",
        ),
        (
            edited(&doc0, |x| x["luns"][0]["backing"]["kind"] = json!("tape")),
            "luns[0].backing.kind",
        ),
        (
            edited(&doc0, |x| {
                x["luns"][0]["hints"]["rebuild_priority"] = json!(7)
            }),
            "luns[0].hints",
        ),
        (
            edited(&doc0, |x| {
                let mut l = new_lun.clone();
                l["hints"] = json!({"optimal_write_size": 1000});
                x["luns"].as_array_mut().unwrap().push(l);
            }),
            "luns[1].hints.optimal_write_size",
        ),
    ];
    for (doc, field) in cases {
        let (s, v) = d.call("PUT", "/v1/config?wait=true", Some(&doc));
        assert!(s >= 400, "{field}: accepted: {v}");
        let msg = v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(msg.contains(field), "{field} not named in {v}");
        assert_eq!(export(&d), doc0, "{field}: the array changed");
        assert_eq!(lun_files(&d), files0, "{field}: a LUN file stayed");
    }
    // Judged good, failing in the job: the new LUN's file is made first, then the portal
    // cannot listen (the API holds the address); all of it is undone.
    let doc = edited(&doc0, |x| {
        x["luns"].as_array_mut().unwrap().push(new_lun.clone());
        x["portals"]
            .as_array_mut()
            .unwrap()
            .push(json!({"address": "127.0.21.8:45240", "status": "online"}));
    });
    let (s, v) = d.call("PUT", "/v1/config?wait=true", Some(&doc));
    assert!(s >= 400, "a portal on the API's address was bound: {v}");
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("127.0.21.8:45240"), "{v}");
    assert_eq!(export(&d), doc0, "the failed job left a change");
    assert_eq!(lun_files(&d), files0, "the failed job left its LUN file");
    // The name it had reserved is free again.
    d.create_lun("new1", 1 << 20);
}

/// A loop device attached for the test, detached on drop.
struct Loop {
    dev: PathBuf,
}

impl Loop {
    fn attach(file: &Path) -> Loop {
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(euid, 0, "this test attaches loop devices: run it as root");
        let out = std::process::Command::new("losetup")
            .args(["-f", "--show"])
            .arg(file)
            .output()
            .expect("losetup (util-linux) is required for this test");
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Loop {
            dev: PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()),
        }
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("losetup")
            .arg("-d")
            .arg(&self.dev)
            .status();
    }
}

/// A fixture with its placeholders filled in, written to `dir`.
fn fixture(name: &str, dir: &Path, subst: &[(&str, String)]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/targetcli")
        .join(name);
    let mut text = std::fs::read_to_string(&src).expect("fixture");
    for (k, v) in subst {
        text = text.replace(k, v);
    }
    let out = dir.join(name);
    std::fs::write(&out, text).unwrap();
    out
}

fn import(d: &Daemon, file: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["import", "targetcli", file.to_str().unwrap()];
    args.extend(extra);
    d.vdsctl(&args)
}

fn lun_named<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["luns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == name)
        .unwrap_or_else(|| panic!("no LUN {name} in {doc:#}"))
}

fn target_named<'a>(doc: &'a Value, iqn: &str) -> &'a Value {
    doc["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["iscsi_name"] == iqn)
        .unwrap_or_else(|| panic!("no target {iqn} in {doc:#}"))
}

#[test]
fn targetcli_saveconfig_is_imported_in_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().to_path_buf();
    std::fs::create_dir(base.join("sub")).unwrap();
    std::fs::write(base.join("disk1.img"), vec![0u8; 16 << 20]).unwrap();
    std::fs::write(base.join("disk2.img"), vec![0u8; 8 << 20]).unwrap();
    std::fs::write(base.join("dev1.img"), vec![0u8; 4 << 20]).unwrap();
    std::fs::write(base.join("dev2.img"), vec![0u8; 6 << 20]).unwrap();
    let l1 = Loop::attach(&base.join("dev1.img"));
    let l2 = Loop::attach(&base.join("dev2.img"));
    let subst = [
        ("@DIR@", base.display().to_string()),
        ("@LOOP1@", l1.dev.display().to_string()),
        ("@LOOP2@", l2.dev.display().to_string()),
    ];
    let d = start("127.0.21.9:45250", "127.0.21.9:45251");
    let before = export(&d);

    // What cannot be mapped is listed by place, and nothing is changed.
    let unm = fixture("unmappable.json", &base, &subst);
    let out = import(&d, &unm, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for place in [
        "not mapped: fabric_modules[0]",
        "not mapped: storage_objects[1]: ramdisk rd0",
        "not mapped: storage_objects[2]: pscsi pt0",
        "not mapped: storage_objects[3]: user-backed",
        "not mapped: storage_objects[4].attributes.emulate_pr",
        "not mapped: targets[0].tpgs[0].node_acls[0].mapped_luns[0]: iqn.1994-05.com.redhat:client9 sees TPG LUN 0 as LUN 5",
        "not mapped: targets[0].tpgs[0].node_acls[0].mapped_luns[1].write_protect",
        "not mapped: targets[0].tpgs[0].node_acls[0].chap_password: a 5-byte secret",
        "not mapped: targets[0].tpgs[0].luns[1].storage_object",
        "not mapped: targets[1]: a loopback target",
        "not mapped: targets[0].tpgs[0].attributes.authentication: 1 without a secret",
    ] {
        assert!(err.contains(place), "{place:?} not listed:\n{err}");
    }
    assert_eq!(export(&d), before, "a refused import changed the array");

    // The wildcard portals as a plan (binding 0.0.0.0 is not for a test).
    let wild = fixture("wildcard.json", &base, &subst);
    let out = import(&d, &wild, &["--dry-run"]);
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{plan}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        plan.contains("plan: create portal 0.0.0.0:3260 (ONLINE)"),
        "{plan}"
    );
    assert!(
        plan.contains("plan: create portal [::]:3260 (ONLINE)"),
        "{plan}"
    );
    assert!(plan.contains("plan: create LUN \"wdisk\""), "{plan}");
    assert_eq!(export(&d), before, "a dry run changed the array");

    // fileio (one through `..`), block and iblock, CHAP per ACL with mutual, demo-mode CHAP,
    // ACLs as unmasking lists, two TPGs as two portal groups.
    let basic = fixture("basic.json", &base, &subst);
    let out = import(&d, &basic, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("not mapped"), "{err}");
    assert!(err.contains("note: storage_objects[0].wwn"), "{err}");
    let doc = export(&d);
    let disk1 = lun_named(&doc, "disk1");
    assert_eq!(
        disk1["backing"]["path"],
        base.join("disk1.img").display().to_string()
    );
    assert_eq!(disk1["size_bytes"], 16 << 20);
    let a = "iqn.2003-01.org.linux-iscsi.lio.x8664:sn.aaaaaaaaaaaa";
    let b = "iqn.2003-01.org.linux-iscsi.lio.x8664:sn.bbbbbbbbbbbb";
    assert_eq!(
        disk1["unmasking_list"],
        "iqn.1994-05.com.redhat:client1;iqn.1994-05.com.redhat:client2"
    );
    assert_eq!(disk1["targets"], json!([{"iscsi_name": a, "lun": 0}]));
    let disk2 = lun_named(&doc, "disk2");
    assert_eq!(
        disk2["backing"]["path"],
        base.join("disk2.img").display().to_string()
    );
    assert_eq!(disk2["unmasking_list"], "*");
    let blk1 = lun_named(&doc, "blk1");
    assert_eq!(blk1["backing"]["kind"], "block");
    assert_eq!(blk1["size_bytes"], 4 << 20);
    assert_eq!(blk1["unmasking_list"], "iqn.1994-05.com.redhat:client1");
    let blk2 = lun_named(&doc, "blk2");
    assert_eq!(blk2["backing"]["path"], l2.dev.display().to_string());
    assert_eq!(blk2["targets"], json!([{"iscsi_name": b, "lun": 3}]));
    let ta = target_named(&doc, a);
    assert_eq!(
        ta["chap"],
        json!({"initiators": [{"initiator": "iqn.1994-05.com.redhat:client1", "secret": "client1secret"}],
               "mutual": [{"initiator": "iqn.1994-05.com.redhat:client1", "secret": "target1secret"}]})
    );
    let tb = target_named(&doc, b);
    assert_eq!(tb["chap"]["shared"], "demosecret12");
    assert_eq!(
        tb["portal_groups"],
        json!([{"tag": 1, "portals": ["127.0.21.6:45253"]}, {"tag": 2, "portals": ["127.0.21.7:45253"]}])
    );
    assert!(std::net::TcpStream::connect("127.0.21.7:45253").is_ok());
    // On the wire: client1 logs in with its CHAP secret, proves the target by the mutual one,
    // and sees the two LUNs its ACL maps, at their LIO numbers; without CHAP it is refused.
    let client1 = "iqn.1994-05.com.redhat:client1";
    let mut o = common::login_opts(client1, 1);
    o.target_name = Some(a.to_string());
    o.chap = Some((client1.to_string(), b"client1secret".to_vec()));
    o.mutual_secret = Some(b"target1secret".to_vec());
    let mut ini = vds_testkit::Initiator::connect(addr("127.0.21.6:45252"), &o)
        .expect("CHAP login with the imported secrets");
    assert_eq!(common::report_luns(&mut ini), vec![0, 1]);
    let _ = ini.logout();
    let mut o = common::login_opts("iqn.1994-05.com.redhat:client2", 2);
    o.target_name = Some(a.to_string());
    assert!(
        vds_testkit::Initiator::connect(addr("127.0.21.6:45252"), &o).is_err(),
        "a login without CHAP was let in"
    );
    // What was there before is still there (an import adds).
    for l in before["luns"].as_array().unwrap() {
        lun_named(&doc, l["name"].as_str().unwrap());
    }
    // A second import of the same file is refused whole.
    let out = import(&d, &basic, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already has a target"));
    assert_eq!(export(&d), doc);
}

/// A saveconfig.json written by targetcli-fb itself (2.1.53, Debian 12, LIO in the guest of
/// scripts/guest.py's "targetcli" scenario, which makes it anew each run): two fileio
/// backstores, one TPG with its portal, an ACL with mutual CHAP and authentication on. The
/// backing paths and the portal are placeholders filled in here; everything else is as LIO
/// wrote it.
#[test]
fn a_saveconfig_written_by_targetcli_is_imported_and_served() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().to_path_buf();
    std::fs::write(base.join("disk0.img"), vec![7u8; 8 << 20]).unwrap();
    std::fs::write(base.join("disk1.img"), vec![0u8; 4 << 20]).unwrap();
    let d = start("127.0.21.10:45266", "127.0.21.10:45267");
    let subst = [
        ("@DIR@", base.display().to_string()),
        ("@PORTAL_IP@", "127.0.21.10".to_string()),
        ("@PORTAL_PORT@", "45267".to_string()),
    ];
    let file = fixture("lio-guest.json", &base, &subst);
    let out = import(&d, &file, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("not mapped"), "{err}");
    for note in [
        "note: storage_objects[0].wwn: disk1 gets a unit serial number from vds",
        "note: storage_objects[1].wwn: disk0 gets a unit serial number from vds",
        "note: targets[0].tpgs[0].node_acls[0].chap_mutual_userid",
    ] {
        assert!(err.contains(note), "{note:?} not in:\n{err}");
    }
    let doc = export(&d);
    let tiqn = "iqn.2003-01.org.linux-iscsi.vds-guest:imported";
    let ini = "iqn.2026-12.local.vds-guest:399d1e1bcaf8d87b-c0ded880a2f6a422";
    for (name, size, lun) in [("disk0", 8 << 20, 0), ("disk1", 4 << 20, 1)] {
        let l = lun_named(&doc, name);
        let path = base.join(format!("{name}.img")).display().to_string();
        assert_eq!(l["backing"]["path"], path.as_str(), "{l:#}");
        assert_eq!(l["size_bytes"], size, "{l:#}");
        assert_eq!(l["unmasking_list"], ini, "{l:#}");
        assert_eq!(
            l["targets"],
            json!([{"iscsi_name": tiqn, "lun": lun}]),
            "{l:#}"
        );
    }
    let t = target_named(&doc, tiqn);
    assert_eq!(
        t["chap"],
        json!({"initiators": [{"initiator": ini, "secret": "80be3b21191870a8"}],
               "mutual": [{"initiator": ini, "secret": "f331ad9f85545b"}]})
    );
    // The TPG's portal is the daemon's own: no second listener was made.
    assert_eq!(doc["portals"].as_array().unwrap().len(), 1, "{doc:#}");
    // On the wire, with the ACL's secrets: the two LUNs, and LUN 0 holds what the file held
    // (adopted, never wiped).
    let mut o = common::login_opts(ini, 3);
    o.target_name = Some(tiqn.to_string());
    o.chap = Some((ini.to_string(), b"80be3b21191870a8".to_vec()));
    o.mutual_secret = Some(b"f331ad9f85545b".to_vec());
    let mut i = vds_testkit::Initiator::connect(addr("127.0.21.10:45267"), &o)
        .expect("CHAP login with the secrets LIO had");
    assert_eq!(common::report_luns(&mut i), vec![0, 1]);
    // A unit attention (power on) may come first.
    for _ in 0..3 {
        if common::tur(&mut i, 0).status == 0 {
            break;
        }
    }
    let r = common::read(&mut i, 0, 0, 8);
    common::assert_good(&r, "READ(10) of LUN 0");
    assert!(
        r.data.len() == 4096 && r.data.iter().all(|&b| b == 7),
        "LUN 0 does not hold the file's bytes"
    );
    let _ = i.logout();
}

#[test]
fn hostile_saveconfig_files_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    let d = start("127.0.21.9:45260", "127.0.21.9:45261");
    let before = export(&d);
    std::os::unix::fs::symlink("/etc/shadow", base.join("shadow-link")).unwrap();
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let many: Vec<Value> = (0..5000)
        .map(|i| json!({"plugin": "fileio", "name": format!("f{i}"), "dev": "/nonexistent", "size": 512}))
        .collect();
    let so = |dev: &str, size: u64| {
        json!({"storage_objects": [{"plugin": "fileio", "name": "evil", "dev": dev, "size": size}],
               "targets": [{"fabric": "iscsi", "wwn": "iqn.2003-01.org.evil:t", "tpgs": [{"tag": 1,
                 "attributes": {"generate_node_acls": 1}, "portals": [],
                 "luns": [{"index": 0, "storage_object": "/backstores/fileio/evil"}]}]}]})
    };
    let cases: Vec<(String, &str)> = vec![
        (deep, "not JSON"),
        (
            json!({"storage_objects": {"a": 1}}).to_string(),
            "storage_objects: not a list",
        ),
        (
            json!({"targets": [{"fabric": "iscsi", "wwn": 5}]}).to_string(),
            "targets[0].wwn: missing or not a string",
        ),
        (
            json!({"targets": [{"fabric": "iscsi", "wwn": "iqn.2003-01.org.x:y",
                "tpgs": [{"tag": "x"}]}]})
            .to_string(),
            "targets[0].tpgs[0].tag",
        ),
        (
            json!({"storage_objects": many}).to_string(),
            "the limit is 4096",
        ),
        (json!([1, 2, 3]).to_string(), "(top): not an object"),
        // A link to /etc/shadow is resolved and judged as /etc/shadow: its size is not the
        // 16 MiB the file claims, so nothing is adopted.
        (
            so(&base.join("shadow-link").display().to_string(), 16 << 20).to_string(),
            "luns[1].size_bytes",
        ),
        (
            so(
                &format!("{}/../../../../etc/../etc/shadow", base.display()),
                16 << 20,
            )
            .to_string(),
            "luns[1].size_bytes",
        ),
        (
            so(
                &d.data_dir().join("vds.sqlite").display().to_string(),
                16 << 20,
            )
            .to_string(),
            "luns[1].backing.path",
        ),
        (
            so("relative/path.img", 16 << 20).to_string(),
            "luns[1].backing.path",
        ),
    ];
    for (i, (text, want)) in cases.into_iter().enumerate() {
        let f = base.join(format!("hostile{i}.json"));
        std::fs::write(&f, &text).unwrap();
        let out = import(&d, &f, &["--partial"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "case {i} accepted: {err}");
        assert!(err.contains(want), "case {i}: {want:?} not in {err}");
        assert_eq!(export(&d), before, "case {i} changed the array");
    }
}
