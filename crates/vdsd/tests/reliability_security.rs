//! Security (issue 6) against the real daemon: CHAP enforced exactly (no login without it,
//! a wrong or replayed response refused with 0x0201, every challenge fresh), secrets never in
//! an API answer, the metrics, the event stream or the daemon's log (at debug level), discovery
//! through a portal showing only what that portal serves, unmasking enforced on every command
//! (also after a mask change under a logged-in session), the API refusing to run without a
//! token off loopback (`--insecure-loopback-api`), and the data dir, store, API token and LUN
//! files private even under umask 0.
//! Ports: API 47120-47129, portals 47020-47029 (127.0.0.1-3).

mod reliability_common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use reliability_common::*;
use serde_json::json;
use vds_iscsi::chap::ChapAlg;
use vds_iscsi::pdu::{Bhs, Digests, Header, LoginRequest, Pdu, BHS_LEN};
use vds_iscsi::text;
use vds_testkit::initiator::Error;
use vds_testkit::{Initiator, LoginOptions};

const SECRET: &str = "h7-secret-abc123"; // 16 bytes
const MUTUAL: &str = "h7-mutual-xyz9"; // 14 bytes

fn login_status(r: Result<Initiator, Error>) -> Option<u16> {
    match r {
        Ok(i) => {
            let _ = i.logout();
            None
        }
        Err(Error::Login(s)) => Some(s.0),
        Err(e) => panic!("login failed without a login status: {e}"),
    }
}

/// A raw login up to the CHAP challenge: returns the stream, the CHAP_I and CHAP_C sent.
fn challenge(portal: SocketAddr, isid: u8) -> (TcpStream, u8, Vec<u8>) {
    let mut s = TcpStream::connect(portal).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let send = |s: &mut TcpStream, transit: bool, keys: &[(&str, &str)]| {
        let keys: Vec<(String, String)> = keys
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let p = Pdu::new(
            Header::LoginRequest(LoginRequest {
                transit,
                cont: false,
                csg: 0,
                nsg: if transit { 1 } else { 0 },
                version_max: 0,
                version_min: 0,
                isid: [0x80, 0, 0, 0, 0x7, isid],
                tsih: 0,
                itt: 1,
                cid: 0,
                cmd_sn: 1,
                exp_stat_sn: 0,
            }),
            text::encode(&keys),
        );
        s.write_all(&p.to_bytes(Digests::default()).unwrap())
            .unwrap();
    };
    let recv = |s: &mut TcpStream| -> Vec<(String, String)> {
        let mut h = [0u8; BHS_LEN];
        s.read_exact(&mut h).unwrap();
        let bhs = Bhs(h);
        let mut rest = vec![0u8; bhs.wire_rest_len(false, false)];
        s.read_exact(&mut rest).unwrap();
        let p = Pdu::from_parts(&bhs, &rest, Digests::default()).unwrap();
        let Header::LoginResponse(r) = &p.header else {
            panic!("not a login response")
        };
        assert_eq!(r.status_class, 0, "login refused early");
        text::parse(&p.data).unwrap()
    };
    send(
        &mut s,
        false,
        &[
            ("InitiatorName", INITIATOR),
            ("SessionType", "Normal"),
            ("TargetName", DEFAULT_IQN),
            ("AuthMethod", "CHAP"),
        ],
    );
    let _ = recv(&mut s);
    send(&mut s, false, &[("CHAP_A", "5")]);
    let k = recv(&mut s);
    let get = |n: &str| {
        k.iter()
            .find(|(a, _)| a == n)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let id: u8 = get("CHAP_I").parse().unwrap();
    let c = text::decode_binary(&get("CHAP_C")).unwrap();
    (s, id, c)
}

/// Answers the challenge on `s` with `response`; returns the login status class/detail.
fn answer(mut s: TcpStream, isid: u8, response: &[u8]) -> u16 {
    let keys = vec![
        ("CHAP_N".to_string(), INITIATOR.to_string()),
        ("CHAP_R".to_string(), text::encode_hex(response)),
    ];
    let p = Pdu::new(
        Header::LoginRequest(LoginRequest {
            transit: true,
            cont: false,
            csg: 0,
            nsg: 1,
            version_max: 0,
            version_min: 0,
            isid: [0x80, 0, 0, 0, 0x7, isid],
            tsih: 0,
            itt: 1,
            cid: 0,
            cmd_sn: 1,
            exp_stat_sn: 0,
        }),
        text::encode(&keys),
    );
    s.write_all(&p.to_bytes(Digests::default()).unwrap())
        .unwrap();
    let mut h = [0u8; BHS_LEN];
    s.read_exact(&mut h).unwrap();
    let bhs = Bhs(h);
    let mut rest = vec![0u8; bhs.wire_rest_len(false, false)];
    s.read_exact(&mut rest).unwrap();
    let p = Pdu::from_parts(&bhs, &rest, Digests::default()).unwrap();
    let Header::LoginResponse(r) = p.header else {
        panic!("not a login response")
    };
    u16::from(r.status_class) << 8 | u16::from(r.status_detail)
}

#[test]
fn chap_is_enforced_exactly_and_secrets_never_leave_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Opts::new(&dir.path().join("data"), 47120, 47020);
    o.log_level = "debug".into();
    let d = Daemon::start(&o);
    let t = d.default_target();
    let tid = t["id"].as_str().unwrap();
    let events = std::thread::spawn({
        let url = d.url("/v1/events");
        let bearer = d.bearer();
        move || {
            // Whatever the event stream carries in the next seconds.
            let agent = ureq::AgentBuilder::new()
                .timeout_read(Duration::from_secs(4))
                .build();
            let mut out = String::new();
            if let Ok(r) = agent.get(&url).set("Authorization", &bearer).call() {
                let _ = r.into_reader().take(1 << 20).read_to_string(&mut out);
            }
            out
        }
    });
    d.wait_event_streams(1);
    d.ok(
        "PUT",
        &format!("/v1/targets/{tid}/shared-secret"),
        Some(json!({"secret": SECRET})),
    );
    d.ok(
        "PUT",
        &format!("/v1/targets/{tid}/initiator-secrets/{INITIATOR}"),
        Some(json!({"secret": MUTUAL})),
    );

    // No CHAP, a wrong secret, a secret that is a prefix of the right one: 0x0201.
    let plain = LoginOptions::normal(INITIATOR, DEFAULT_IQN);
    assert_eq!(
        login_status(Initiator::connect(d.portal, &plain)),
        Some(0x0201)
    );
    for wrong in ["h7-secret-abc12", "h7-secret-abc124", "H7-SECRET-ABC123"] {
        let mut w = plain.clone();
        w.chap = Some((INITIATOR.into(), wrong.as_bytes().to_vec()));
        assert_eq!(
            login_status(Initiator::connect(d.portal, &w)),
            Some(0x0201),
            "{wrong}"
        );
    }
    // The right one, one-way and mutual (the target proves MUTUAL back).
    let mut good = plain.clone();
    good.chap = Some((INITIATOR.into(), SECRET.as_bytes().to_vec()));
    assert_eq!(login_status(Initiator::connect(d.portal, &good)), None);
    good.mutual_secret = Some(MUTUAL.as_bytes().to_vec());
    assert_eq!(login_status(Initiator::connect(d.portal, &good)), None);
    good.mutual_secret = Some(b"not-the-mutual".to_vec());
    assert!(
        Initiator::connect(d.portal, &good).is_err(),
        "wrong mutual proof accepted"
    );

    // Challenges are fresh on every login; an answer to one never opens another.
    let mut seen = HashSet::new();
    for i in 0..20u8 {
        let (s, _, c) = challenge(d.portal, i);
        assert!(c.len() >= 16, "challenge of {} bytes", c.len());
        assert!(seen.insert(c), "challenge reused");
        drop(s);
    }
    let (s1, id1, c1) = challenge(d.portal, 100);
    let (s2, _, _) = challenge(d.portal, 101);
    let replay = ChapAlg::Md5.response(id1, SECRET.as_bytes(), &c1);
    assert_eq!(
        answer(s2, 101, &replay),
        0x0201,
        "a response to another challenge was accepted"
    );
    assert_eq!(
        answer(s1, 100, &replay),
        0x0000,
        "the right response on its own connection"
    );

    // Never returned: target, lists, metrics, events; never logged.
    let mut bodies = vec![
        serde_json::to_string(&d.ok("GET", &format!("/v1/targets/{tid}"), None)).unwrap(),
        serde_json::to_string(&d.ok(
            "GET",
            &format!("/v1/subsystems/{}/targets", d.subsystem()),
            None,
        ))
        .unwrap(),
        serde_json::to_string(&d.ok("GET", "/v1/jobs", None)).unwrap(),
        ureq::get(&d.url("/metrics"))
            .set("Authorization", &d.bearer())
            .call()
            .unwrap()
            .into_string()
            .unwrap(),
        ureq::get(&d.url("/v1/openapi.json"))
            .set("Authorization", &d.bearer())
            .call()
            .unwrap()
            .into_string()
            .unwrap(),
    ];
    bodies.push(events.join().unwrap());
    assert!(
        bodies.last().unwrap().contains("target"),
        "no event seen: {}",
        bodies.last().unwrap()
    );
    for b in &bodies {
        for s in [SECRET, MUTUAL, &text::encode_hex(SECRET.as_bytes())[2..]] {
            assert!(
                !b.contains(s),
                "a secret was returned: {}",
                &b[..b.len().min(300)]
            );
        }
    }
    let mut d = d;
    d.stop();
    let log = d.log_text();
    assert!(
        log.contains("DEBUG") || log.contains("debug"),
        "debug log expected"
    );
    for s in [SECRET, MUTUAL] {
        assert!(!log.contains(s), "a secret was logged");
    }
}

#[test]
fn discovery_through_a_portal_shows_only_what_that_portal_serves() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Opts::new(&dir.path().join("data"), 47121, 47021);
    o.extra_portals = vec!["127.0.0.2:47021".parse().unwrap()];
    let d = Daemon::start(&o);
    let ss = d.subsystem();
    // A third portal and a second target served only through it.
    let p3 = d.ok(
        "POST",
        &format!("/v1/subsystems/{ss}/portals"),
        Some(json!({"address": "127.0.0.3", "port": 47021})),
    );
    let p3id = p3["id"].as_str().unwrap();
    d.ok(
        "POST",
        &format!("/v1/portals/{p3id}/status"),
        Some(json!({"status": "online"})),
    );
    let (st, t2) = d.call(
        "POST",
        &format!("/v1/subsystems/{ss}/targets?wait=true"),
        Some(json!({"iscsi_name": "iqn.2026-01.test.h7:other", "friendly_name": "other"})),
    );
    assert_eq!(st, 201, "{t2}");
    let t2id = t2["id"].as_str().unwrap();
    let (st, pg) = d.call(
        "POST",
        &format!("/v1/targets/{t2id}/portal-groups?wait=true"),
        Some(json!({})),
    );
    assert_eq!(st, 201, "{pg}");
    let pgid = pg["id"].as_str().unwrap();
    let (st, v) = d.call(
        "POST",
        &format!("/v1/portal-groups/{pgid}/portals?wait=true"),
        Some(json!({"portal": p3id})),
    );
    assert!(st == 200 || st == 201, "{v}");

    let discover = |addr: &str| {
        let mut i =
            Initiator::connect(addr.parse().unwrap(), &LoginOptions::discovery(INITIATOR)).unwrap();
        let mut r = i.send_targets("All").unwrap();
        r.sort();
        r
    };
    for a in ["127.0.0.1:47021", "127.0.0.2:47021"] {
        let r = discover(a);
        assert_eq!(r.len(), 1, "{a}: {r:?}");
        assert_eq!(r[0].0, DEFAULT_IQN);
        assert!(r[0].1.iter().all(|x| !x.starts_with("127.0.0.3")), "{r:?}");
        assert_eq!(r[0].1.len(), 2, "{r:?}");
    }
    let r = discover("127.0.0.3:47021");
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].0, "iqn.2026-01.test.h7:other");
    assert_eq!(r[0].1, vec!["127.0.0.3:47021,1".to_string()], "{r:?}");
    // Logging in through the wrong portal: target not found (0x0203).
    let wrong = LoginOptions::normal(INITIATOR, "iqn.2026-01.test.h7:other");
    assert_eq!(
        login_status(Initiator::connect(d.portal, &wrong)),
        Some(0x0203)
    );
    let wrong = LoginOptions::normal(INITIATOR, DEFAULT_IQN);
    assert_eq!(
        login_status(Initiator::connect(
            "127.0.0.3:47021".parse().unwrap(),
            &wrong
        )),
        Some(0x0203)
    );
}

/// Commands that must all be refused with 05/25/00 on a masked LUN.
fn probe_cdbs() -> Vec<(Vec<u8>, Vec<u8>, u32)> {
    vec![
        (vec![0x00, 0, 0, 0, 0, 0], vec![], 0), // TEST UNIT READY
        (read16(0, 1).to_vec(), vec![], 512),   // READ (16)
        (write16(0, 1, false).to_vec(), vec![0xAA; 512], 0), // WRITE (16)
        (vec![0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], vec![], 8), // READ CAPACITY (10)
        (vec![0x1A, 0, 0x3F, 0, 0xFF, 0], vec![], 255), // MODE SENSE (6)
        (sync_cache10().to_vec(), vec![], 0),   // SYNCHRONIZE CACHE
        (vec![0x5E, 0, 0, 0, 0, 0, 0, 0x10, 0, 0], vec![], 4096), // PR IN
        (
            vec![0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0],
            vec![],
            32,
        ), // RC16
    ]
}

fn assert_masked(ini: &mut Initiator, lun: u64) {
    for (cdb, data, rl) in probe_cdbs() {
        let r = ini.command(lun, &cdb, &data, rl).unwrap();
        assert_eq!(
            r.status, 2,
            "opcode {:02x} answered on a masked LUN",
            cdb[0]
        );
        assert_eq!(kcq(&r.sense), (5, 0x25, 0), "opcode {:02x}", cdb[0]);
    }
    // INQUIRY answers "no logical unit here" (peripheral qualifier 011b).
    let r = ini.command(lun, &[0x12, 0, 0, 0, 96, 0], &[], 96).unwrap();
    assert_eq!(r.status, 0);
    assert_eq!(r.data[0] >> 5, 3);
    // REPORT LUNS never lists it.
    let r = ini
        .command(0, &[0xA0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], &[], 256)
        .unwrap();
    let n = u32::from_be_bytes(r.data[0..4].try_into().unwrap()) as usize / 8;
    let luns: Vec<u8> = (0..n).map(|i| r.data[8 + i * 8 + 1]).collect();
    assert!(
        !luns.contains(&(lun as u8)),
        "REPORT LUNS lists masked LUN {lun}: {luns:?}"
    );
}

#[test]
fn unmasking_is_enforced_on_every_command_even_after_a_change() {
    let dir = tempfile::tempdir().unwrap();
    let o = Opts::new(&dir.path().join("data"), 47122, 47022);
    let d = Daemon::start(&o);
    let other = "iqn.2026-01.test.reliability:host2";
    let t = d.default_target();
    let lun = d.create_lun(json!({
        "size_bytes": 1 << 20, "friendly_name": "masked", "unmasking_list": INITIATOR,
        "targets": [t["id"]],
    }));
    let id = lun["id"].as_str().unwrap().to_string();
    let n = lun["lun_numbers"][t["id"].as_str().unwrap()]
        .as_u64()
        .unwrap();
    let mut a = d.login(INITIATOR, DEFAULT_IQN);
    let mut b = d.login(other, DEFAULT_IQN);
    let r = command_past_ua(&mut a, n, &[0x00, 0, 0, 0, 0, 0], &[], 0);
    assert_eq!(r.status, 0, "the unmasked initiator is served");
    let _ = command_past_ua(&mut b, 0, &[0x00, 0, 0, 0, 0, 0], &[], 0);
    assert_masked(&mut b, n);
    // Unmask to both under the open sessions, then mask A away: each command is judged
    // against the mask in force.
    d.ok(
        "PATCH",
        &format!("/v1/luns/{id}"),
        Some(json!({"unmasking_list": format!("{INITIATOR};{other}")})),
    );
    let r = command_past_ua(&mut b, n, &[0x00, 0, 0, 0, 0, 0], &[], 0);
    assert_eq!(r.status, 0, "B served once unmasked: {:02x?}", r.sense);
    d.ok(
        "PATCH",
        &format!("/v1/luns/{id}"),
        Some(json!({"unmasking_list": other})),
    );
    let _ = command_past_ua(&mut a, 0, &[0x00, 0, 0, 0, 0, 0], &[], 0);
    assert_masked(&mut a, n);
    d.ok(
        "PATCH",
        &format!("/v1/luns/{id}"),
        Some(json!({"unmasking_list": ""})),
    );
    let _ = command_past_ua(&mut b, 0, &[0x00, 0, 0, 0, 0, 0], &[], 0);
    assert_masked(&mut b, n);
}

#[test]
fn api_off_loopback_needs_a_token_and_files_are_private_under_umask_0() {
    // No token off loopback: refused before anything is bound or created.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vdsd"))
        .arg("--data-dir")
        .arg(&data)
        .args(["--api", "0.0.0.0:47123", "--portal", "127.0.0.1:47023"])
        .arg("--insecure-loopback-api")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a loopback address"), "{err}");
    assert!(!data.exists(), "nothing is created when the API is refused");

    // Files (the API token among them) are private whatever the umask.
    let o = Opts::new(&data, 47124, 47024);
    let mut cmd_umask = o.clone();
    cmd_umask.log_level = "info".into();
    // SAFETY: umask(2) only changes this test process's mask, which the child inherits; it is
    // restored right after the daemon started.
    let old = unsafe { libc::umask(0) };
    let d = Daemon::try_start(&cmd_umask);
    // SAFETY: umask(2) puts back the mask saved above; it takes no pointers.
    unsafe {
        libc::umask(old);
    }
    let d = d.unwrap();
    let (st, _) = d.call("GET", "/v1/provider", None);
    assert_eq!(st, 200);
    d.create_lun(json!({"size_bytes": 1 << 20, "friendly_name": "private"}));
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "data dir");
    let mut files = 0;
    let mut dirs = vec![data.clone()];
    while let Some(dp) = dirs.pop() {
        for e in std::fs::read_dir(&dp).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                assert_eq!(mode(&p), 0o700, "{}", p.display());
                dirs.push(p);
            } else {
                assert_eq!(mode(&p) & 0o077, 0, "{} is {:o}", p.display(), mode(&p));
                files += 1;
            }
        }
    }
    assert!(files >= 3, "store and LUN files expected, found {files}");
}

/// A tripwire over the sources: no log or print statement mentions a secret (the secrets
/// themselves are `vds_model` types whose `Debug` and `Display` redact them; this keeps
/// anyone from logging the raw bytes next to them). Multi-line statements are joined first.
#[test]
fn no_log_statement_in_the_sources_mentions_a_secret() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let macros = [
        "tracing::",
        "info!(",
        "debug!(",
        "warn!(",
        "error!(",
        "trace!(",
        "println!(",
        "eprintln!(",
    ];
    let mut dirs: Vec<std::path::PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.path().join("src"))
        .filter(|p| p.is_dir())
        .collect();
    let mut found = Vec::new();
    let mut files = 0;
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            files += 1;
            let text = std::fs::read_to_string(&p).unwrap();
            // Statements: split at ';' so a macro call spread over lines is seen whole.
            for stmt in text.split(';') {
                let flat = stmt.split_whitespace().collect::<Vec<_>>().join(" ");
                if macros.iter().any(|m| flat.contains(m)) && flat.to_lowercase().contains("secret")
                {
                    found.push(format!("{}: {}", p.display(), &flat[..flat.len().min(160)]));
                }
            }
        }
    }
    assert!(files > 50, "sources not found under {}", root.display());
    assert!(
        found.is_empty(),
        "log statements mentioning secrets:\n{}",
        found.join("\n")
    );
}
