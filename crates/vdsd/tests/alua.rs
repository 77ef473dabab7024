//! Controllers as ALUA target port groups on the wire (BEHAVIOUR.md §14), end to end against
//! the real daemon: two controllers, one portal each, one portal group per controller on the
//! default target, a `vds-testkit` session through each portal. AssociateControllers gives
//! every session UNIT ATTENTION 06/2A/06 once, then GOOD; the active controller going OFFLINE
//! fails the LUN over to the survivor (API), through whose session a write and a read work.
//! REPORT TARGET PORT GROUPS, the same through both sessions, follows every step (AO/ANO,
//! Standby under FAILOVER with 02/04/0B, Unavailable with 02/04/0C).
//! Slots 50–53. The helpers (`Array`, `Array::login_through`, `send`) are kept general for
//! further checks (REPORT TARGET PORT GROUPS, INQUIRY TPGS, VPD 0x83).

mod common;

use common::*;
use serde_json::{json, Value};
use vds_testkit::{Initiator, ScsiResult};

/// ASYMMETRIC ACCESS STATE CHANGED.
const ALUA_CHANGED: (u8, u8, u8) = (0x06, 0x2A, 0x06);

/// Asymmetric access states of REPORT TARGET PORT GROUPS.
const AO: u8 = 0;
const ANO: u8 = 1;
const STANDBY: u8 = 2;
const UNAVAILABLE: u8 = 3;

/// REPORT TARGET PORT GROUPS (length-only header): (group id, access state, relative target
/// ports) of every group, parsed by SPC-4 6.37.
fn rtpg(ini: &mut Initiator) -> Vec<(u16, u8, Vec<u16>)> {
    let r = send(
        ini,
        0,
        &[0xA3, 0x0A, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0],
        &[],
        1024,
    );
    assert_good(&r, "REPORT TARGET PORT GROUPS");
    let d = &r.data;
    let len = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize;
    assert_eq!(len + 4, d.len(), "RETURN DATA LENGTH");
    let mut out = Vec::new();
    let mut i = 4;
    while i < d.len() {
        let n = d[i + 7] as usize;
        let ports = (0..n)
            .map(|k| u16::from_be_bytes([d[i + 8 + 4 * k + 2], d[i + 8 + 4 * k + 3]]))
            .collect();
        out.push((u16::from_be_bytes([d[i + 2], d[i + 3]]), d[i] & 0x0F, ports));
        i += 8 + 4 * n;
    }
    out
}

/// The (group, state) pairs of RTPG through every session, which must all answer the same.
fn states(sessions: &mut [&mut Initiator]) -> Vec<(u16, u8)> {
    let all: Vec<Vec<(u16, u8, Vec<u16>)>> = sessions.iter_mut().map(|s| rtpg(s)).collect();
    for other in &all[1..] {
        assert_eq!(other, &all[0], "RTPG is the same through every port");
    }
    all[0].iter().map(|(g, s, _)| (*g, *s)).collect()
}

/// A daemon with two controllers, each with one portal in its own portal group of the default
/// target: `portals[i]` is controller `controllers[i]`'s (target port group `i + 1`).
pub struct Array {
    pub d: Daemon,
    pub controllers: [String; 2],
    pub portal_groups: [String; 2],
}

impl Array {
    /// Starts the daemon in `slot` (its first portal is the first controller's, in the
    /// default portal group) and adds the second controller, its portal (the slot's second
    /// address) and a second portal group holding it.
    pub fn start(slot: u16) -> Array {
        let mut d = Daemon::start(slot, Opts::default());
        let second = std::net::SocketAddr::from(([127, 0, 0, 2], 45000 + slot));
        d.portals.push(second);
        let sub = d.subsystem();
        let ctl0 = d.get(&format!("/v1/subsystems/{sub}/controllers"))[0]["id"]
            .as_str()
            .expect("id")
            .to_string();
        let ctl1 = d.ok(
            "POST",
            &format!("/v1/subsystems/{sub}/controllers"),
            json!({"friendly_name": "second"}),
            201,
        );
        assert_eq!(ctl1["port_group"], 2, "{ctl1}");
        let ctl1 = ctl1["id"].as_str().expect("id").to_string();
        let p = d.ok(
            "POST",
            &format!("/v1/subsystems/{sub}/portals"),
            json!({"address": second.ip().to_string(), "port": second.port(), "controller": ctl1}),
            201,
        );
        let portal = p["id"].as_str().expect("id").to_string();
        let (s, v) = d.set_portal_status(&portal, json!("online"));
        assert_eq!(s, 200, "{v}");
        let target = d.target();
        let pg0 = d.get(&format!("/v1/targets/{target}"))["portal_groups"][0]
            .as_str()
            .expect("id")
            .to_string();
        let pg1 = d.ok(
            "POST",
            &format!("/v1/targets/{target}/portal-groups?wait=true"),
            json!({}),
            201,
        )["id"]
            .as_str()
            .expect("id")
            .to_string();
        d.ok(
            "POST",
            &format!("/v1/portal-groups/{pg1}/portals?wait=true"),
            json!({ "portal": portal }),
            200,
        );
        Array {
            d,
            controllers: [ctl0, ctl1],
            portal_groups: [pg0, pg1],
        }
    }

    /// A session to the default target through portal `n` (controller `n`), its start-up
    /// unit attentions consumed.
    pub fn login_through(&self, n: usize, isid: u8) -> Initiator {
        let mut ini = self.d.login(n, isid);
        settle(&mut ini, 0);
        ini
    }

    /// The ids of the LUN's active controllers (QueryActiveControllers).
    pub fn active(&self, lun: &str) -> Vec<String> {
        ids(&self.d.get(&format!("/v1/luns/{lun}/controllers")))
    }
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_string())
        .collect()
}

/// Sends one CDB to `lun` (`data` out, up to `len` bytes in).
pub fn send(ini: &mut Initiator, lun: u64, cdb: &[u8], data: &[u8], len: u32) -> ScsiResult {
    ini.command(lun, cdb, data, len)
        .unwrap_or_else(|e| panic!("CDB {cdb:02x?}: {e}"))
}

/// TEST UNIT READY until GOOD, accepting only the unit attentions of a new nexus (bounded).
fn settle(ini: &mut Initiator, lun: u64) {
    for _ in 0..4 {
        let r = tur(ini, lun);
        if r.status == GOOD {
            return;
        }
        match sense_of(&r) {
            Some((0x06, 0x29, _)) | Some((0x06, 0x3F, 0x0E)) => continue,
            other => panic!("a new session sees {other:02x?}, status 0x{:02x}", r.status),
        }
    }
    panic!("TEST UNIT READY never GOOD");
}

#[test]
fn associate_controllers_raises_2a06_once_and_offline_fails_over_to_the_survivor() {
    let a = Array::start(50);
    let d = &a.d;
    let [ctl0, ctl1] = a.controllers.clone();
    let lun = d.default_lun();
    // The default LUN was made when there was one controller: active on it alone.
    assert_eq!(a.active(&lun), vec![ctl0.clone()]);
    let mut s0 = a.login_through(0, 1);
    let mut s1 = a.login_through(1, 2);

    // AssociateControllers: every nexus gets 06/2A/06 once, then GOOD.
    let body = json!({"active": [ctl1], "inactive": [ctl0]});
    let active = d.ok("PUT", &format!("/v1/luns/{lun}/controllers"), body, 200);
    assert_eq!(ids(&active), vec![ctl1.clone()]);
    for (s, what) in [
        (&mut s0, "through controller 0"),
        (&mut s1, "through controller 1"),
    ] {
        assert_sense(&tur(s, 0), ALUA_CHANGED, what);
        assert_good(&tur(s, 0), what);
    }
    // RTPG through both ports: group 1 (controller 0) non-optimized, group 2 optimized, each
    // with its own portal group's tag as its port.
    assert_eq!(states(&mut [&mut s0, &mut s1]), vec![(1, ANO), (2, AO)]);
    let groups = rtpg(&mut s0);
    assert_eq!(groups[0].2.len(), 1, "{groups:?}");
    assert_eq!(groups[1].2.len(), 1, "{groups:?}");
    assert_ne!(groups[0].2, groups[1].2, "{groups:?}");
    assert_good(
        &read(&mut s0, 0, 0, 1),
        "READ through the non-optimized port",
    );
    // FAILOVER makes the inactive controller Standby: its port refuses media access.
    let lb = format!("/v1/luns/{lun}/load-balance");
    d.ok("PUT", &lb, json!({"policy": "failover"}), 200);
    for s in [&mut s0, &mut s1] {
        assert_sense(&tur(s, 0), ALUA_CHANGED, "policy FAILOVER");
    }
    assert_eq!(states(&mut [&mut s0, &mut s1]), vec![(1, STANDBY), (2, AO)]);
    assert_sense(
        &read(&mut s0, 0, 0, 1),
        (0x02, 0x04, 0x0B),
        "READ through the standby port",
    );
    assert_good(&read(&mut s1, 0, 0, 1), "READ through the optimized port");
    d.ok(
        "PUT",
        &lb,
        json!({"policy": "round_robin_with_subset"}),
        200,
    );
    for s in [&mut s0, &mut s1] {
        assert_sense(&tur(s, 0), ALUA_CHANGED, "policy back");
    }
    assert_eq!(states(&mut [&mut s0, &mut s1]), vec![(1, ANO), (2, AO)]);
    // The same association again changes nothing a host sees.
    let body = json!({"active": [ctl1], "inactive": [ctl0]});
    d.ok("PUT", &format!("/v1/luns/{lun}/controllers"), body, 200);
    assert_good(&tur(&mut s0, 0), "no change, no unit attention");

    // The active controller goes OFFLINE: the LUN fails over to controller 0.
    let (s, v) = d.call(
        "POST",
        &format!("/v1/controllers/{ctl1}/status"),
        Some(&json!({"status": "offline"})),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(a.active(&lun), vec![ctl0.clone()]);
    assert_eq!(d.lun(&lun)["active_controllers"], json!([ctl0]));
    let luns = ids(&d.get(&format!("/v1/controllers/{ctl0}/luns")));
    assert!(luns.contains(&lun), "{luns:?}");
    // The survivor's session: told once, then it writes and reads back.
    assert_sense(&tur(&mut s0, 0), ALUA_CHANGED, "after the failover");
    assert_sense(
        &tur(&mut s1, 0),
        ALUA_CHANGED,
        "the offline controller's session too",
    );
    assert_eq!(
        states(&mut [&mut s0, &mut s1]),
        vec![(1, AO), (2, UNAVAILABLE)]
    );
    assert_sense(
        &read(&mut s1, 0, 0, 1),
        (0x02, 0x04, 0x0C),
        "READ through the unavailable port",
    );
    let data: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
    assert_good(
        &write_fua(&mut s0, 0, 100, &data),
        "WRITE through the survivor",
    );
    let r = read(&mut s0, 0, 100, 8);
    assert_good(&r, "READ through the survivor");
    assert_eq!(r.data, data, "read back what was written");
}
