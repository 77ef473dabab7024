//! Isolation against the real daemon (issue 10, BEHAVIOUR §13):
//! - a panic while serving one connection (injected with the test-only magic CDB that
//!   `--enable-fault-injection` enables) ends that connection only: the other session keeps
//!   serving, the panicked session's RESERVE(6) is released and the other nexus hears of it
//!   once (06/29/07), the session and connection counts come back (observed through the API
//!   and through the configured limits), and the daemon stays up;
//! - EXTENDED COPY reaches no LU the requesting nexus may not see (masked, or on another
//!   target) and no LU reserved by another initiator, as source or destination, and their
//!   data is unchanged when read back through a nexus that may see them.
//!
//! Ports: API 47170-47179, portals 47070-47079 (127.0.0.1).

mod reliability_common;

use std::time::Duration;

use reliability_common::*;
use serde_json::{json, Value};
use vds_testkit::{Initiator, LoginOptions, ScsiResult};

const OTHER: &str = "iqn.2026-01.test.reliability:host2";
const TUR: [u8; 6] = [0; 6];
const RESERVE6: [u8; 6] = [0x16, 0, 0, 0, 0, 0];

/// `FF "vds-panic" SITE`, zeros to 16 bytes: 1 panics on the connection's task, 2 inside the
/// command's job on the blocking pool.
fn magic(site: u8) -> Vec<u8> {
    let mut c = b"\xFFvds-panic".to_vec();
    c.push(site);
    c.resize(16, 0);
    c
}

fn login_as(d: &Daemon, initiator: &str, isid: u8, target: &str) -> Initiator {
    let mut o = LoginOptions::normal(initiator, target);
    o.isid[5] = isid;
    o.timeout = Duration::from_secs(10);
    Initiator::connect(d.portal, &o).unwrap_or_else(|e| panic!("login of {initiator}: {e}"))
}

fn initiators(d: &Daemon, target: &str) -> Vec<String> {
    let v = d.ok("GET", &format!("/v1/targets/{target}/initiators"), None);
    list(&v)
        .iter()
        .map(|x| x.as_str().unwrap_or_default().to_string())
        .collect()
}

fn status(r: &ScsiResult) -> (u8, (u8, u8, u8)) {
    (r.status, kcq(&r.sense))
}

#[test]
fn a_panic_ends_one_connection_and_releases_everything_it_held() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Opts::new(&dir.path().join("data"), 47170, 47070);
    o.fault_injection = true;
    // Leaked connections or sessions would show as refused logins at these limits.
    o.config = Some("max_connections_per_portal = 3\nmax_sessions_per_target = 3\n".into());
    let mut d = Daemon::start(&o);
    let tid = d.default_target()["id"].as_str().unwrap().to_string();
    let mut b = login_as(&d, OTHER, 2, DEFAULT_IQN);
    assert_eq!(command_past_ua(&mut b, 0, &TUR, &[], 0).status, 0);
    for (round, site) in [1u8, 2].into_iter().enumerate() {
        let mut a = login_as(&d, INITIATOR, 1, DEFAULT_IQN);
        assert_eq!(command_past_ua(&mut a, 0, &TUR, &[], 0).status, 0);
        assert_eq!(a.command(0, &RESERVE6, &[], 0).unwrap().status, 0);
        assert_eq!(b.command(0, &TUR, &[], 0).unwrap().status, 0x18);
        a.set_timeout(Duration::from_secs(10)).unwrap();
        let answer = a.command(0, &magic(site), &[], 0);
        if site == 2 {
            let r = answer.expect("a command whose job panicked is answered");
            assert_eq!(status(&r), (2, (4, 0x44, 0x00)));
        } else {
            assert!(answer.is_err(), "a task that panicked answers nothing");
        }
        assert!(a.closed_by_target(), "round {round}: the connection ends");
        assert!(
            wait_until(10, || initiators(&d, &tid) == [OTHER]),
            "round {round}: the panicked session is gone: {:?}",
            initiators(&d, &tid)
        );
        // The bystander kept its connection and hears of the released reservation once.
        let r = b.command(0, &TUR, &[], 0).unwrap();
        assert_eq!(status(&r), (2, (6, 0x29, 0x07)), "round {round}");
        assert_eq!(b.command(0, &TUR, &[], 0).unwrap().status, 0);
        let block = pattern(7, round as u64, 512);
        let w = b.command(0, &write16(7, 1, true), &block, 0).unwrap();
        assert_eq!(w.status, 0);
        let r = b.command(0, &read16(7, 1), &[], 512).unwrap();
        assert_eq!((r.status, r.data), (0, block));
    }
    // Both panicked connections and sessions are counted out: with limits of 3, two more
    // sessions join the bystander.
    let mut more: Vec<Initiator> = (3..5)
        .map(|i| login_as(&d, INITIATOR, i, DEFAULT_IQN))
        .collect();
    for m in &mut more {
        assert_eq!(command_past_ua(m, 0, &TUR, &[], 0).status, 0);
    }
    for m in more {
        m.logout().unwrap();
    }
    b.logout().unwrap();
    assert!(
        wait_until(10, || initiators(&d, &tid).is_empty()),
        "every session is gone: {:?}",
        initiators(&d, &tid)
    );
    assert!(d.alive(), "the daemon stays up");
    assert!(d.log_text().contains("injected panic"), "{}", d.log_text());
}

// ----- EXTENDED COPY -----

/// The NAA designator of VPD page 83 (what an initiator names a copy target by).
fn naa_of(ini: &mut Initiator, lun: u64) -> [u8; 16] {
    let r = command_past_ua(ini, lun, &[0x12, 1, 0x83, 0, 0xFF, 0], &[], 255);
    assert_eq!(r.status, 0);
    let d = &r.data;
    let mut i = 4;
    while i + 4 <= d.len() {
        let (kind, len) = (d[i + 1] & 0x0F, d[i + 3] as usize);
        if kind == 3 && len == 16 {
            return d[i + 4..i + 20].try_into().unwrap();
        }
        i += 4 + len;
    }
    panic!("no NAA designator in {d:02x?}");
}

/// One segment (02h) of `blocks` from `src` LBA `src_lba` to `dst` LBA `dst_lba`.
fn xcopy(src: [u8; 16], dst: [u8; 16], blocks: u16, src_lba: u64, dst_lba: u64) -> Vec<u8> {
    let mut p = vec![0u8; 16];
    p[1] = 0x18; // list id usage 11b
    p[2..4].copy_from_slice(&64u16.to_be_bytes());
    p[8..12].copy_from_slice(&28u32.to_be_bytes());
    for naa in [src, dst] {
        let mut t = [0u8; 32];
        t[0] = 0xE4;
        t[4] = 0x01;
        t[5] = 0x03;
        t[7] = 16;
        t[8..24].copy_from_slice(&naa);
        t[29..32].copy_from_slice(&512u32.to_be_bytes()[1..]);
        p.extend_from_slice(&t);
    }
    let mut s = [0u8; 28];
    s[0] = 0x02;
    s[2..4].copy_from_slice(&24u16.to_be_bytes());
    s[6..8].copy_from_slice(&1u16.to_be_bytes());
    s[10..12].copy_from_slice(&blocks.to_be_bytes());
    s[12..20].copy_from_slice(&src_lba.to_be_bytes());
    s[20..28].copy_from_slice(&dst_lba.to_be_bytes());
    p.extend_from_slice(&s);
    p
}

fn xcopy_cdb(len: usize) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0x83;
    c[10..14].copy_from_slice(&(len as u32).to_be_bytes());
    c
}

/// Blocks 0..16 of a LUN as a nexus that may read it sees them.
fn read_back(ini: &mut Initiator, lun: u64) -> Vec<u8> {
    let r = command_past_ua(ini, lun, &read16(0, 16), &[], 16 * 512);
    assert_eq!(r.status, 0, "read back: {:02x?}", r.sense);
    r.data
}

fn fill(ini: &mut Initiator, lun: u64, generation: u64) -> Vec<u8> {
    let data: Vec<u8> = (0..16).flat_map(|l| pattern(l, generation, 512)).collect();
    let r = command_past_ua(ini, lun, &write16(0, 16, true), &data, 0);
    assert_eq!(r.status, 0, "fill: {:02x?}", r.sense);
    data
}

fn lun_number(lun: &Value, target: &str) -> u64 {
    lun["lun_numbers"][target].as_u64().expect("LUN number")
}

#[test]
fn extended_copy_reaches_no_masked_foreign_or_reserved_lu() {
    let dir = tempfile::tempdir().unwrap();
    let o = Opts::new(&dir.path().join("data"), 47171, 47071);
    let d = Daemon::start(&o);
    let ss = d.subsystem();
    let t = d.default_target()["id"].as_str().unwrap().to_string();
    // A second target on the same portal, with a LUN of its own.
    let t2 = d.ok(
        "POST",
        &format!("/v1/subsystems/{ss}/targets?wait=true"),
        Some(
            json!({"iscsi_name": "iqn.2026-01.test.reliability:second", "friendly_name": "second"}),
        ),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let groups = |d: &Daemon| -> Vec<Value> {
        d.ok("GET", &format!("/v1/targets/{t2}"), None)["portal_groups"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    if groups(&d).is_empty() {
        d.ok(
            "POST",
            &format!("/v1/targets/{t2}/portal-groups?wait=true"),
            None,
        );
    }
    let pg = groups(&d)[0].as_str().expect("portal group id").to_string();
    let portal = list(&d.ok("GET", &format!("/v1/subsystems/{ss}/portals"), None))
        .into_iter()
        .find(|p| p["port"] == 47071)
        .expect("the daemon's portal")["id"]
        .clone();
    d.ok(
        "POST",
        &format!("/v1/portal-groups/{pg}/portals?wait=true"),
        Some(json!({ "portal": portal })),
    );
    let mk = |name: &str, mask: &str, target: &str| {
        d.create_lun(json!({
            "size_bytes": 1 << 20, "friendly_name": name, "unmasking_list": mask,
            "targets": [target],
        }))
    };
    let open = lun_number(&mk("open", "*", &t), &t);
    let masked = lun_number(&mk("masked", OTHER, &t), &t);
    let reserved = lun_number(&mk("reserved", "*", &t), &t);
    let foreign = lun_number(&mk("foreign", "*", &t2), &t2);

    let mut me = login_as(&d, INITIATOR, 1, DEFAULT_IQN);
    let mut other = login_as(&d, OTHER, 2, DEFAULT_IQN);
    let mut me_t2 = login_as(&d, INITIATOR, 3, "iqn.2026-01.test.reliability:second");
    let home_data = fill(&mut me, 0, 1);
    fill(&mut me, open, 2);
    let masked_data = fill(&mut other, masked, 3);
    let reserved_data = fill(&mut other, reserved, 4);
    let foreign_data = fill(&mut me_t2, foreign, 5);
    let home = naa_of(&mut me, 0);
    let open_naa = naa_of(&mut me, open);
    let masked_naa = naa_of(&mut other, masked);
    let reserved_naa = naa_of(&mut other, reserved);
    let foreign_naa = naa_of(&mut me_t2, foreign);
    assert_eq!(
        command_past_ua(&mut other, reserved, &RESERVE6, &[], 0).status,
        0
    );

    for (what, naa, want) in [
        ("masked LU", masked_naa, (2, (5, 0x0D, 0x02))),
        ("LU of another target", foreign_naa, (2, (5, 0x0D, 0x02))),
        (
            "LU reserved by another initiator",
            reserved_naa,
            (0x18, (0, 0, 0)),
        ),
    ] {
        for (dir, p) in [
            ("source", xcopy(naa, home, 16, 0, 0)),
            ("destination", xcopy(home, naa, 16, 0, 0)),
        ] {
            let r = command_past_ua(&mut me, 0, &xcopy_cdb(p.len()), &p, 0);
            assert_eq!(status(&r), want, "{what} as {dir}");
        }
    }
    // Nothing moved: every LU reads back as it was written, through a nexus that may read it.
    assert!(read_back(&mut me, 0) == home_data, "home LU changed");
    assert!(
        read_back(&mut other, masked) == masked_data,
        "masked LU changed"
    );
    assert!(
        read_back(&mut other, reserved) == reserved_data,
        "reserved LU changed"
    );
    assert!(
        read_back(&mut me_t2, foreign) == foreign_data,
        "foreign LU changed"
    );

    // A copy between LUs the nexus may use still works.
    let p = xcopy(home, open_naa, 16, 0, 0);
    let r = command_past_ua(&mut me, 0, &xcopy_cdb(p.len()), &p, 0);
    assert_eq!(r.status, 0, "permitted copy: {:02x?}", r.sense);
    assert!(
        read_back(&mut me, open) == home_data,
        "permitted copy landed"
    );
    for i in [me, other, me_t2] {
        i.logout().unwrap();
    }
}
