//! Crash consistency (issue 6): `kill -9` of `vdsd` at random points of a write load and of a
//! stream of configuration changes, then a restart on the same data dir.
//!
//! - Writes: the testkit initiator writes patterned blocks (each 16-byte cell names its LBA
//!   and a generation) with FUA, or without it and then SYNCHRONIZE CACHE; a write counts as
//!   acknowledged when its FUA write or the following SYNCHRONIZE CACHE answered GOOD. After
//!   each restart every block reads back as its last acknowledged generation or a later one
//!   that was sent (a write in flight at the kill may or may not have landed, block by block),
//!   never older, never torn inside a block, never anything else.
//! - Configuration: LUN create/delete/extend/status/mask, target create/delete, the shared
//!   secret, and a persistent reservation with APTPL; the state found after the restart is
//!   either the one with every acknowledged change, or that plus the change in flight at the
//!   kill, and nothing is half-made (no LUN without its storage, no storage without its LUN).
//!
//! Rounds are bounded (VDS_CRASH_ROUNDS, default 10 per test) and seeded (VDS_RELIABILITY_SEED).
//! Ports: API 47100-47101, portals 47000-47001.

mod reliability_common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reliability_common::*;
use serde_json::{json, Value};
use vds_testkit::{Initiator, LoginOptions};

fn rounds() -> usize {
    std::env::var("VDS_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
}

const BS: usize = 512;
/// The region written: 4 MiB of the default LUN, so that writes land on each other often.
const REGION: u64 = 8192;

/// What may be found in one block.
#[derive(Clone, Debug, Default)]
struct BlockModel {
    /// Generation known durable (0: zeros).
    base: u64,
    /// Generations sent after it, in order; the last acknowledged one among them is moved to
    /// `base` when its acknowledgement arrives.
    since: Vec<u64>,
}

#[derive(Default)]
struct WriteModel {
    blocks: BTreeMap<u64, BlockModel>,
    acked_writes: u64,
    acked_blocks: u64,
}

impl WriteModel {
    fn sent(&mut self, lba: u64, n: u32, gen: u64) {
        for b in lba..lba + u64::from(n) {
            self.blocks.entry(b).or_default().since.push(gen);
        }
    }
    fn acked(&mut self, lba: u64, n: u32, gen: u64) {
        self.acked_writes += 1;
        self.acked_blocks += u64::from(n);
        for b in lba..lba + u64::from(n) {
            let m = self.blocks.entry(b).or_default();
            // Everything sent before this generation is superseded.
            if let Some(pos) = m.since.iter().position(|g| *g == gen) {
                m.base = gen;
                m.since.drain(..=pos);
            }
        }
    }
}

/// The generation a block holds, if it is a pattern of `lba` (0 for zeros).
fn generation_of(block: &[u8], lba: u64) -> Option<u64> {
    if block.iter().all(|b| *b == 0) {
        return Some(0);
    }
    let g = u64::from_be_bytes(block[8..16].try_into().unwrap());
    (pattern(lba, g, BS) == block).then_some(g)
}

/// Reads the region back and checks it against the model; the model's base becomes what was
/// found. Returns the number of blocks checked that held acknowledged data.
fn verify_region(d: &Daemon, model: &mut WriteModel) -> u64 {
    let mut ini = d.login(INITIATOR, DEFAULT_IQN);
    let chunk = 1024u32;
    let mut checked = 0;
    for start in (0..REGION).step_by(chunk as usize) {
        let r = command_past_ua(&mut ini, 0, &read16(start, chunk), &[], chunk * BS as u32);
        assert_eq!(r.status, 0, "read at {start}: sense {:02x?}", r.sense);
        assert_eq!(r.data.len(), chunk as usize * BS);
        for i in 0..u64::from(chunk) {
            let lba = start + i;
            let block = &r.data[(i as usize) * BS..(i as usize + 1) * BS];
            let m = model.blocks.entry(lba).or_default();
            let found = generation_of(block, lba).unwrap_or_else(|| {
                panic!("LBA {lba}: neither zeros nor its own pattern (torn or foreign data)")
            });
            let allowed = found == m.base || m.since.contains(&found);
            assert!(
                allowed,
                "LBA {lba}: found generation {found}, acknowledged {} (sent since: {:?}): an acknowledged write was lost",
                m.base, m.since
            );
            if m.base != 0 {
                checked += 1;
            }
            m.base = found;
            m.since.clear();
        }
    }
    let _ = ini.logout();
    checked
}

/// Writes until the connection breaks (the daemon is killed) or `stop` is set.
fn write_load(
    d_portal: std::net::SocketAddr,
    model: Arc<Mutex<WriteModel>>,
    mut rng: Rng,
    next_gen: &mut u64,
    stop: Arc<AtomicBool>,
) {
    let o = LoginOptions::normal(INITIATOR, DEFAULT_IQN);
    let Ok(mut ini) = Initiator::connect(d_portal, &o) else {
        return;
    };
    let _ = ini.set_timeout(Duration::from_secs(5));
    // Writes sent without FUA since the last SYNCHRONIZE CACHE.
    let mut unsynced: Vec<(u64, u32, u64)> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let n = 1 + rng.below(16) as u32;
        let lba = rng.below(REGION - u64::from(n));
        *next_gen += 1;
        let gen = *next_gen;
        let mut data = Vec::with_capacity(n as usize * BS);
        for b in lba..lba + u64::from(n) {
            data.extend_from_slice(&pattern(b, gen, BS));
        }
        let fua = rng.below(2) == 0;
        model.lock().unwrap().sent(lba, n, gen);
        let r = match ini.command(0, &write16(lba, n, fua), &data, 0) {
            Ok(r) => r,
            Err(_) => return,
        };
        if r.status != 0 {
            // A unit attention (first command on the nexus) is not an acknowledgement.
            assert_eq!(kcq(&r.sense).0, 6, "write failed: {:02x?}", r.sense);
            continue;
        }
        if fua {
            model.lock().unwrap().acked(lba, n, gen);
        } else {
            unsynced.push((lba, n, gen));
            if rng.below(3) == 0 {
                match ini.command(0, &sync_cache10(), &[], 0) {
                    Ok(s) if s.status == 0 => {
                        let mut m = model.lock().unwrap();
                        for (l, n, g) in unsynced.drain(..) {
                            m.acked(l, n, g);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        }
    }
}

#[test]
fn acknowledged_writes_survive_kill9_at_random_points() {
    let dir = tempfile::tempdir().unwrap();
    let o = Opts::new(&dir.path().join("data"), 47100, 47000);
    let mut rng = Rng::from_env();
    let model = Arc::new(Mutex::new(WriteModel::default()));
    let mut gen = 0u64;
    let started = Instant::now();
    let n = rounds();
    let mut kills = 0;
    for round in 0..n {
        let mut d = Daemon::start(&o);
        let checked = verify_region(&d, &mut model.lock().unwrap());
        eprintln!("round {round}: restart verified ({checked} acknowledged blocks read back)");
        let stop = Arc::new(AtomicBool::new(false));
        let kill_after = Duration::from_millis(150 + rng.below(1200));
        let load_rng = Rng(rng.next() | 1);
        let portal = d.portal;
        let m2 = model.clone();
        let s2 = stop.clone();
        let mut g = gen;
        let writer = std::thread::spawn(move || {
            write_load(portal, m2, load_rng, &mut g, s2);
            g
        });
        std::thread::sleep(kill_after);
        d.kill9();
        kills += 1;
        gen = writer.join().expect("writer");
        stop.store(true, Ordering::Relaxed);
    }
    let d = Daemon::start(&o);
    let checked = verify_region(&d, &mut model.lock().unwrap());
    let m = model.lock().unwrap();
    eprintln!(
        "writes: {kills} kills survived, {} writes ({} blocks) acknowledged, {} generations sent, \
         {checked} acknowledged blocks verified at the end, nothing lost, {:.1} s",
        m.acked_writes,
        m.acked_blocks,
        gen,
        started.elapsed().as_secs_f64()
    );
    assert!(
        m.acked_writes > 0,
        "the load never got a write acknowledged"
    );
}

// ---------------------------------------------------------------------------------------------
// Configuration changes.

const SECRETS: [&str; 3] = ["crash-secret-01", "crash-secret-002", "another-sec12"];

/// The configuration as the API and an initiator see it. LUNs are keyed by friendly name
/// (the id of a LUN whose creation was in flight is not known).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
struct Config {
    /// name → (size, mask, status)
    luns: BTreeMap<String, (u64, String, String)>,
    /// iqn of targets the test created
    targets: BTreeSet<String>,
    /// ids whose deletion was acknowledged: they must answer 410
    deleted: BTreeSet<String>,
    /// the default target's shared secret
    secret: Option<String>,
    /// our registration key (0: none) and whether we hold a WRITE EXCLUSIVE reservation
    pr: (u64, bool),
}

fn pr_out(sa: u8, ty: u8, key: u64, sa_key: u64, aptpl: bool) -> (Vec<u8>, Vec<u8>) {
    let mut cdb = vec![0u8; 10];
    cdb[0] = 0x5F;
    cdb[1] = sa;
    cdb[2] = ty;
    cdb[8] = 24;
    let mut p = vec![0u8; 24];
    p[0..8].copy_from_slice(&key.to_be_bytes());
    p[8..16].copy_from_slice(&sa_key.to_be_bytes());
    p[20] = u8::from(aptpl);
    (cdb, p)
}

/// (registered keys, reservation (key, type)) of LUN 0 as `ini` sees them.
fn pr_state(ini: &mut Initiator) -> (Vec<u64>, Option<(u64, u8)>) {
    let keys = command_past_ua(ini, 0, &[0x5E, 0, 0, 0, 0, 0, 0, 0x10, 0, 0], &[], 4096);
    assert_eq!(keys.status, 0, "READ KEYS: {:02x?}", keys.sense);
    let len = u32::from_be_bytes(keys.data[4..8].try_into().unwrap()) as usize;
    let list = keys.data[8..8 + len]
        .chunks(8)
        .map(|c| u64::from_be_bytes(c.try_into().unwrap()))
        .collect();
    let res = command_past_ua(ini, 0, &[0x5E, 1, 0, 0, 0, 0, 0, 0x10, 0, 0], &[], 4096);
    assert_eq!(res.status, 0, "READ RESERVATION: {:02x?}", res.sense);
    let rlen = u32::from_be_bytes(res.data[4..8].try_into().unwrap());
    let holder = (rlen >= 16).then(|| {
        (
            u64::from_be_bytes(res.data[8..16].try_into().unwrap()),
            res.data[21] & 0x0F,
        )
    });
    (list, holder)
}

fn chap_login_works(d: &Daemon, secret: Option<&str>) -> bool {
    let mut o = LoginOptions::normal(INITIATOR, DEFAULT_IQN);
    o.timeout = Duration::from_secs(5);
    if let Some(s) = secret {
        o.chap = Some((INITIATOR.into(), s.as_bytes().to_vec()));
    }
    match Initiator::connect(d.portal, &o) {
        Ok(i) => {
            let _ = i.logout();
            true
        }
        Err(_) => false,
    }
}

/// Reads the configuration back and checks that nothing is half-made.
fn observe(d: &Daemon, known_deleted: &BTreeSet<String>, candidates: &[&Config]) -> Config {
    let mut c = Config::default();
    let luns = list(&d.ok("GET", "/v1/luns", None));
    let mut paths = BTreeSet::new();
    for l in &luns {
        let name = l["friendly_name"].as_str().unwrap().to_string();
        let id = l["id"].as_str().unwrap();
        // Complete: readable by id, its storage present with at least its size.
        let one = d.ok("GET", &format!("/v1/luns/{id}"), None);
        assert_eq!(one["friendly_name"], l["friendly_name"]);
        if let Some(p) = l["backing"]["path"].as_str() {
            let meta = std::fs::metadata(p).unwrap_or_else(|e| {
                panic!("LUN {name}: backing file {p} missing after restart: {e}")
            });
            assert!(
                meta.len() >= l["size_bytes"].as_u64().unwrap(),
                "LUN {name}: short file"
            );
            paths.insert(std::path::PathBuf::from(p));
        }
        if name.starts_with("c-") {
            c.luns.insert(
                name,
                (
                    l["size_bytes"].as_u64().unwrap(),
                    l["unmasking_list"].as_str().unwrap().to_string(),
                    l["status"].as_str().unwrap().to_string(),
                ),
            );
        }
    }
    // No storage without its LUN: every file vds made in its LUN dir belongs to a listed LUN.
    if let Ok(rd) = std::fs::read_dir(d.data_dir.join("luns")) {
        for e in rd.flatten() {
            let p = e.path();
            assert!(
                paths.contains(&p),
                "{} has no LUN (half-made creation or deletion)",
                p.display()
            );
        }
    }
    let ss = d.subsystem();
    for t in list(&d.ok("GET", &format!("/v1/subsystems/{ss}/targets"), None)) {
        let iqn = t["iscsi_name"].as_str().unwrap();
        if iqn.starts_with("iqn.2026-01.test.crash:") {
            c.targets.insert(iqn.to_string());
        }
    }
    for id in known_deleted {
        let (st, v) = d.call("GET", &format!("/v1/luns/{id}"), None);
        let (st2, _) = d.call("GET", &format!("/v1/targets/{id}"), None);
        if st == 410 || st2 == 410 {
            c.deleted.insert(id.clone());
        } else {
            assert!(st == 200 || st2 == 200, "id {id}: {st}/{st2} {v}");
        }
    }
    // The secret: none if a login without CHAP works, else the candidate that works.
    c.secret = if chap_login_works(d, None) {
        None
    } else {
        let mut found = None;
        for s in candidates.iter().filter_map(|x| x.secret.as_deref()) {
            if chap_login_works(d, Some(s)) {
                found = Some(s.to_string());
                break;
            }
        }
        assert!(
            found.is_some(),
            "CHAP required but no acknowledged secret works"
        );
        found
    };
    // Persistent reservation: log in with whatever secret is in force.
    let mut o = LoginOptions::normal(INITIATOR, DEFAULT_IQN);
    if let Some(s) = &c.secret {
        o.chap = Some((INITIATOR.into(), s.as_bytes().to_vec()));
    }
    let mut ini = Initiator::connect(d.portal, &o).expect("login for PR check");
    let (keys, holder) = pr_state(&mut ini);
    let _ = ini.logout();
    c.pr = match (keys.as_slice(), holder) {
        ([], None) => (0, false),
        ([k], None) => (*k, false),
        ([k], Some((h, 1))) if *k == h => (*k, true),
        other => panic!("persistent reservation half-made: {other:?}"),
    };
    c
}

/// One configuration change; returns whether it was acknowledged (`Err(())`: the daemon
/// went away before answering).
#[allow(clippy::too_many_arguments)]
fn change(
    d: &Daemon,
    rng: &mut Rng,
    model: &mut Config,
    ids: &mut BTreeMap<String, String>,
    target_ids: &mut BTreeMap<String, String>,
    pending: &mut Option<Config>,
    serial: &mut u64,
    ini: &mut Option<Initiator>,
    default_target: &str,
) -> Result<(), ()> {
    let ss = d.subsystem_try().ok_or(())?;
    let mut next = model.clone();
    *serial += 1;
    let s = *serial;
    let op = rng.below(10);
    let call = |m: &str, p: &str, b: Option<Value>| d.try_call(m, p, b).ok_or(());
    match op {
        0 | 1 => {
            let name = format!("c-{s}");
            let mask = ["*", "", INITIATOR][rng.below(3) as usize].to_string();
            let size = (1 + rng.below(4)) << 20;
            next.luns
                .insert(name.clone(), (size, mask.clone(), "online".into()));
            *pending = Some(next.clone());
            let (st, v) = call(
                "POST",
                &format!("/v1/subsystems/{ss}/luns?wait=true"),
                Some(json!({"size_bytes": size, "friendly_name": name, "unmasking_list": mask})),
            )?;
            assert_eq!(st, 201, "{v}");
            ids.insert(name, v["id"].as_str().unwrap().to_string());
        }
        2 | 3 if !model.luns.is_empty() => {
            let names: Vec<_> = model.luns.keys().cloned().collect();
            let name = &names[rng.below(names.len() as u64) as usize];
            let st_name = ["online", "offline", "not_ready"][rng.below(3) as usize];
            next.luns.get_mut(name).unwrap().2 = st_name.into();
            *pending = Some(next.clone());
            let (st, v) = call(
                "POST",
                &format!("/v1/luns/{}/status", ids[name]),
                Some(json!({"status": st_name})),
            )?;
            assert_eq!(st, 200, "{v}");
        }
        4 if !model.luns.is_empty() => {
            let names: Vec<_> = model.luns.keys().cloned().collect();
            let name = &names[rng.below(names.len() as u64) as usize];
            let mask = ["*", "", INITIATOR][rng.below(3) as usize];
            next.luns.get_mut(name).unwrap().1 = mask.into();
            *pending = Some(next.clone());
            let (st, v) = call(
                "PATCH",
                &format!("/v1/luns/{}", ids[name]),
                Some(json!({"unmasking_list": mask})),
            )?;
            assert_eq!(st, 200, "{v}");
        }
        5 if !model.luns.is_empty() => {
            let names: Vec<_> = model.luns.keys().cloned().collect();
            let name = names[rng.below(names.len() as u64) as usize].clone();
            let id = ids[&name].clone();
            next.luns.remove(&name);
            next.deleted.insert(id.clone());
            *pending = Some(next.clone());
            let (st, v) = call("DELETE", &format!("/v1/luns/{id}"), None)?;
            assert!(st == 200 || st == 204, "{v}");
        }
        6 if !model.luns.is_empty() => {
            let names: Vec<_> = model.luns.keys().cloned().collect();
            let name = &names[rng.below(names.len() as u64) as usize];
            if next.luns[name].2 != "online" {
                return Ok(());
            }
            next.luns.get_mut(name).unwrap().0 += 1 << 20;
            *pending = Some(next.clone());
            let (st, v) = call(
                "POST",
                &format!("/v1/luns/{}/extend?wait=true", ids[name]),
                Some(json!({"bytes": 1 << 20})),
            )?;
            assert!(st == 200 || st == 201, "{v}");
        }
        7 => {
            if model.targets.len() >= 3 || rng.below(2) == 0 {
                let Some(iqn) = model.targets.iter().next().cloned() else {
                    return Ok(());
                };
                let id = target_ids[&iqn].clone();
                next.targets.remove(&iqn);
                next.deleted.insert(id.clone());
                *pending = Some(next.clone());
                let (st, v) = call("DELETE", &format!("/v1/targets/{id}?wait=true"), None)?;
                assert!(st == 200 || st == 204, "{v}");
            } else {
                let iqn = format!("iqn.2026-01.test.crash:t{s}");
                next.targets.insert(iqn.clone());
                *pending = Some(next.clone());
                let (st, v) = call(
                    "POST",
                    &format!("/v1/subsystems/{ss}/targets?wait=true"),
                    Some(json!({"iscsi_name": iqn, "friendly_name": format!("t{s}")})),
                )?;
                assert_eq!(st, 201, "{v}");
                target_ids.insert(iqn, v["id"].as_str().unwrap().to_string());
            }
        }
        8 => {
            let secret = (rng.below(3) != 0).then(|| SECRETS[rng.below(3) as usize].to_string());
            next.secret = secret.clone();
            *pending = Some(next.clone());
            let body = match &secret {
                Some(x) => json!({"secret": x}),
                None => json!({}),
            };
            let (st, v) = call(
                "PUT",
                &format!("/v1/targets/{default_target}/shared-secret"),
                Some(body),
            )?;
            assert!(st == 200 || st == 204, "{v}");
        }
        _ => {
            // Persistent reservation with APTPL: register a new key (ignoring the old one),
            // then reserve WRITE EXCLUSIVE; each step is acknowledged by GOOD.
            let Some(i) = ini.as_mut() else {
                return Ok(());
            };
            let key = 0x1000 + s;
            let (cdb, p) = pr_out(0x06, 0, 0, key, true);
            let mut reg = next.clone();
            // After REGISTER AND IGNORE the old reservation, if any, stays with our nexus under
            // the new key; a fresh registration holds none until RESERVE.
            reg.pr = (key, model.pr.1);
            *pending = Some(reg.clone());
            let r = i.command(0, &cdb, &p, 0).map_err(|_| ())?;
            if r.status != 0 {
                assert_eq!(kcq(&r.sense).0, 6, "PR REGISTER: {:02x?}", r.sense);
                *pending = None;
                return Ok(());
            }
            *model = reg.clone();
            reg.pr = (key, true);
            let (cdb, p) = pr_out(0x01, 0x01, key, 0, false);
            *pending = Some(reg.clone());
            let r = i.command(0, &cdb, &p, 0).map_err(|_| ())?;
            assert_eq!(r.status, 0, "PR RESERVE: {:02x?}", r.sense);
            next = reg;
        }
    }
    *model = next;
    *pending = None;
    Ok(())
}

impl Daemon {
    fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Option<(u16, Value)> {
        let req = self
            .agent
            .request(method, &self.url(path))
            .set("Authorization", &self.bearer());
        let res = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match res {
            Ok(r) => {
                let st = r.status();
                Some((st, r.into_json().unwrap_or(Value::Null)))
            }
            Err(ureq::Error::Status(st, r)) => Some((st, r.into_json().unwrap_or(Value::Null))),
            Err(_) => None,
        }
    }
    fn subsystem_try(&self) -> Option<String> {
        let (st, v) = self.try_call("GET", "/v1/subsystems", None)?;
        (st == 200).then(|| list(&v)[0]["id"].as_str().unwrap().to_string())
    }
}

#[test]
fn acknowledged_configuration_survives_kill9_and_nothing_is_half_made() {
    let dir = tempfile::tempdir().unwrap();
    let o = Opts::new(&dir.path().join("data"), 47101, 47001);
    let mut rng = Rng::from_env();
    let mut model = Config::default();
    let mut ids = BTreeMap::new();
    let mut target_ids = BTreeMap::new();
    let mut serial = 0u64;
    let started = Instant::now();
    let (mut acked, mut kills, mut in_flight) = (0u64, 0u64, 0u64);
    let mut pending: Option<Config> = None;
    for round in 0..=rounds() {
        let d = Daemon::start(&o);
        // Either every acknowledged change, or that plus the one in flight at the kill.
        let mut all_deleted = model.deleted.clone();
        if let Some(p) = &pending {
            all_deleted.extend(p.deleted.iter().cloned());
        }
        let mut cands = vec![&model];
        if let Some(p) = &pending {
            cands.push(p);
        }
        let mut seen = observe(&d, &all_deleted, &cands);
        seen.deleted = seen.deleted.intersection(&all_deleted).cloned().collect();
        let matches_acked = seen == model;
        let matches_pending = pending.as_ref().is_some_and(|p| seen == *p);
        assert!(
            matches_acked || matches_pending,
            "round {round}: after the restart\n found   {seen:?}\n acked   {model:?}\n pending {pending:?}"
        );
        if matches_pending && !matches_acked {
            in_flight += 1;
            model = pending.take().unwrap();
        }
        pending = None;
        // Ids of LUNs whose creation was in flight.
        for l in list(&d.ok("GET", "/v1/luns", None)) {
            let n = l["friendly_name"].as_str().unwrap().to_string();
            ids.entry(n)
                .or_insert_with(|| l["id"].as_str().unwrap().to_string());
        }
        let ss = d.subsystem();
        for t in list(&d.ok("GET", &format!("/v1/subsystems/{ss}/targets"), None)) {
            let n = t["iscsi_name"].as_str().unwrap().to_string();
            target_ids
                .entry(n)
                .or_insert_with(|| t["id"].as_str().unwrap().to_string());
        }
        eprintln!(
            "round {round}: restart verified: {} LUNs, {} targets, {} tombstones, secret {}, PR {:x?}",
            model.luns.len(),
            model.targets.len(),
            model.deleted.len(),
            model.secret.is_some(),
            model.pr
        );
        if round == rounds() {
            break;
        }
        let default_target = d.default_target()["id"].as_str().unwrap().to_string();
        let mut d = d;
        let kill_at = Instant::now() + Duration::from_millis(100 + rng.below(1500));
        let pid = d.pid();
        let killer = std::thread::spawn(move || {
            let now = Instant::now();
            if kill_at > now {
                std::thread::sleep(kill_at - now);
            }
            // SAFETY: kill(2) of the daemon we started; it is reaped by `kill9` below.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
        });
        let mut ini = {
            let mut o = LoginOptions::normal(INITIATOR, DEFAULT_IQN);
            if let Some(s) = &model.secret {
                o.chap = Some((INITIATOR.into(), s.as_bytes().to_vec()));
            }
            Initiator::connect(d.portal, &o).ok()
        };
        // Until the daemon is gone (the change then fails to get an answer).
        while let Ok(()) = change(
            &d,
            &mut rng,
            &mut model,
            &mut ids,
            &mut target_ids,
            &mut pending,
            &mut serial,
            &mut ini,
            &default_target,
        ) {
            acked += 1;
            if Instant::now() > kill_at + Duration::from_secs(5) {
                panic!("the daemon survived SIGKILL?");
            }
        }
        killer.join().unwrap();
        d.kill9();
        kills += 1;
    }
    eprintln!(
        "configuration: {kills} kills survived, {acked} changes acknowledged, {in_flight} in-flight \
         changes found applied, nothing lost or half-made, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(acked > 0);
}
