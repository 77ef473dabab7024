//! The crash-consistency checks shared by `reliability_crash.rs` (`kill -9` of the daemon) and
//! `examples/powercut.rs` (SIGKILL of the QEMU guest the daemon runs in: a power cut), so that
//! both hold the array to the same model:
//!
//! - [`Array`]: what the checks need of a running array (portal, API, its files), whether it is
//!   a local child process or a daemon inside a guest;
//! - writes: [`WriteModel`], [`write_load`] (patterned FUA writes and writes followed by
//!   SYNCHRONIZE CACHE, acknowledged generations tracked) and [`verify_region`] (every block is
//!   its last acknowledged generation or a later one sent, never older, never torn);
//! - configuration: [`ConfigStream`], a random stream of changes through the API (and a
//!   persistent reservation with APTPL) and the check after a restart that the state is every
//!   acknowledged change, or that plus the one in flight, and that nothing is half-made;
//! - the small SCSI and JSON helpers and the seeded [`Rng`] the reliability tests share.
//!
//! Included by `reliability_common/mod.rs` and, by path, by the example; it names nothing of
//! either, only `vds_testkit`, `serde_json`, `ureq` and `std`.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vds_testkit::{Initiator, LoginOptions};

pub const DEFAULT_IQN: &str = "iqn.2026-11.local.vds:default";
pub const INITIATOR: &str = "iqn.2026-01.test.reliability:host1";

/// One API request with the bearer token: `Some((status, body))` whenever the API answered
/// (any status; a body that is not JSON reads as `null`), `None` when it could not be reached
/// (the array is down or restarting). Both kinds of [`Array`] call the API through this.
pub fn bearer_call(
    agent: &ureq::Agent,
    url: &str,
    token: &str,
    method: &str,
    body: Option<Value>,
) -> Option<(u16, Value)> {
    let req = agent
        .request(method, url)
        .set("Authorization", &format!("Bearer {token}"));
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

/// The array of a list answer (a bare array or `{"items": [...]}`-style objects).
pub fn list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Object(m) => m
            .values()
            .find_map(|x| x.as_array().cloned())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// (sense key, ASC, ASCQ) of fixed or descriptor sense data.
pub fn kcq(sense: &[u8]) -> (u8, u8, u8) {
    if sense.is_empty() {
        return (0, 0, 0);
    }
    if sense[0] & 0x7F == 0x72 {
        (sense[1] & 0x0F, sense[2], sense[3])
    } else if sense.len() >= 14 {
        (sense[2] & 0x0F, sense[12], sense[13])
    } else {
        (0xFF, 0xFF, 0xFF)
    }
}

pub fn write16(lba: u64, blocks: u32, fua: bool) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0x8A;
    if fua {
        c[1] = 0x08;
    }
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&blocks.to_be_bytes());
    c
}

pub fn read16(lba: u64, blocks: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0x88;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&blocks.to_be_bytes());
    c
}

pub fn sync_cache10() -> [u8; 10] {
    [0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]
}

/// A 512-byte block whose every byte says which LBA and which generation wrote it.
pub fn pattern(lba: u64, generation: u64, bs: usize) -> Vec<u8> {
    let mut b = vec![0u8; bs];
    for (i, chunk) in b.chunks_mut(16).enumerate() {
        chunk[..8].copy_from_slice(&lba.to_be_bytes());
        chunk[8..16].copy_from_slice(&(generation ^ (i as u64) << 48).to_be_bytes());
    }
    b
}

/// Send a command until no unit attention stands in the way (a fresh nexus sees power-on
/// or other UAs first); returns the final result.
pub fn command_past_ua(
    ini: &mut Initiator,
    lun: u64,
    cdb: &[u8],
    data: &[u8],
    read_len: u32,
) -> vds_testkit::ScsiResult {
    for _ in 0..8 {
        let r = ini.command(lun, cdb, data, read_len).expect("command");
        if r.status == 2 && kcq(&r.sense).0 == 6 {
            continue;
        }
        return r;
    }
    panic!("unit attentions never cleared");
}

/// A small xorshift generator: the tests print their seed so a failing round can be rerun
/// (`VDS_RELIABILITY_SEED=<n>`).
pub struct Rng(pub u64);

impl Rng {
    pub fn from_env() -> Rng {
        let seed = std::env::var("VDS_RELIABILITY_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        eprintln!("seed: VDS_RELIABILITY_SEED={seed}");
        Rng(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The array under test.

/// What the consistency checks need of a running array.
pub trait Array {
    /// The portal initiators log in to.
    fn portal(&self) -> SocketAddr;
    /// One API call with the bearer token: (HTTP status, JSON body or Null), or `None` when the
    /// daemon did not answer (it is gone).
    fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Option<(u16, Value)>;
    /// The length of the array's file `path` (a LUN's backing path), `None` if it is missing.
    fn file_len(&self, path: &str) -> Option<u64>;
    /// Every entry of the array's LUN directory (`<data-dir>/luns`).
    fn lun_dir_entries(&self) -> Vec<PathBuf>;

    /// An API call that must be answered.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.try_call(method, path, body)
            .unwrap_or_else(|| panic!("{method} {path}: no answer from the daemon"))
    }
    /// An API call that must succeed (2xx); returns its body.
    fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (st, v) = self.call(method, path, body);
        assert!((200..300).contains(&st), "{method} {path} -> {st} {v}");
        v
    }
    fn subsystem(&self) -> String {
        let v = self.ok("GET", "/v1/subsystems", None);
        list(&v)[0]["id"].as_str().unwrap().to_string()
    }
    /// The subsystem's id, `None` when the daemon did not answer.
    fn subsystem_try(&self) -> Option<String> {
        let (st, v) = self.try_call("GET", "/v1/subsystems", None)?;
        (st == 200).then(|| list(&v)[0]["id"].as_str().unwrap().to_string())
    }
    fn default_target(&self) -> Value {
        let ss = self.subsystem();
        let v = self.ok("GET", &format!("/v1/subsystems/{ss}/targets"), None);
        list(&v)
            .into_iter()
            .find(|t| t["iscsi_name"] == DEFAULT_IQN)
            .expect("default target")
    }
}

// ---------------------------------------------------------------------------------------------
// Writes.

pub const BS: usize = 512;
/// The region written: 4 MiB of the LUN, so that writes land on each other often.
pub const REGION: u64 = 8192;

/// What may be found in one block.
#[derive(Clone, Debug, Default)]
pub struct BlockModel {
    /// Generation known durable (0: zeros).
    base: u64,
    /// Generations sent after it, in order; the last acknowledged one among them is moved to
    /// `base` when its acknowledgement arrives.
    since: Vec<u64>,
}

#[derive(Default)]
pub struct WriteModel {
    blocks: BTreeMap<u64, BlockModel>,
    pub acked_writes: u64,
    pub acked_blocks: u64,
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

/// What one read-back of the region found.
#[derive(Clone, Copy, Debug, Default)]
pub struct RegionCheck {
    /// Blocks checked that held acknowledged data.
    pub acked_blocks: u64,
    /// Blocks with unacknowledged writes in flight at the cut: found with one of them (landed)…
    pub in_flight_landed: u64,
    /// …or with the acknowledged generation (not landed).
    pub in_flight_lost: u64,
}

/// Reads the region of LUN `lun` back (logged in with `o`) and checks it against the model;
/// the model's base becomes what was found.
pub fn verify_region(
    portal: SocketAddr,
    o: &LoginOptions,
    lun: u64,
    model: &mut WriteModel,
) -> RegionCheck {
    let mut ini = Initiator::connect(portal, o)
        .unwrap_or_else(|e| panic!("login to {:?}: {e}", o.target_name));
    let chunk = 1024u32;
    let mut c = RegionCheck::default();
    for start in (0..REGION).step_by(chunk as usize) {
        let r = command_past_ua(&mut ini, lun, &read16(start, chunk), &[], chunk * BS as u32);
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
                c.acked_blocks += 1;
            }
            if !m.since.is_empty() {
                if found == m.base {
                    c.in_flight_lost += 1;
                } else {
                    c.in_flight_landed += 1;
                }
            }
            m.base = found;
            m.since.clear();
        }
    }
    let _ = ini.logout();
    c
}

/// Writes to LUN `lun` through `ini` (logged in) until the connection breaks (the daemon is
/// gone) or `stop` is set.
pub fn write_load(
    mut ini: Initiator,
    lun: u64,
    model: Arc<Mutex<WriteModel>>,
    mut rng: Rng,
    next_gen: &mut u64,
    stop: Arc<AtomicBool>,
) {
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
        let r = match ini.command(lun, &write16(lba, n, fua), &data, 0) {
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
                match ini.command(lun, &sync_cache10(), &[], 0) {
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

// ---------------------------------------------------------------------------------------------
// Configuration changes.

/// The most LUNs the configuration stream lets the array hold (its creates turn into deletes).
const MAX_STREAM_LUNS: usize = 150;

const SECRETS: [&str; 3] = ["crash-secret-01", "crash-secret-002", "another-sec12"];

/// The configuration as the API and an initiator see it. LUNs are keyed by friendly name
/// (the id of a LUN whose creation was in flight is not known).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Config {
    /// name → (size, mask, status)
    pub luns: BTreeMap<String, (u64, String, String)>,
    /// iqn of targets the test created
    pub targets: BTreeSet<String>,
    /// ids whose deletion was acknowledged: they must answer 410
    pub deleted: BTreeSet<String>,
    /// the default target's shared secret
    pub secret: Option<String>,
    /// our registration key (0: none) and whether we hold a WRITE EXCLUSIVE reservation
    pub pr: (u64, bool),
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

fn chap_login_works(d: &impl Array, secret: Option<&str>) -> bool {
    let mut o = LoginOptions::normal(INITIATOR, DEFAULT_IQN);
    o.timeout = Duration::from_secs(5);
    if let Some(s) = secret {
        o.chap = Some((INITIATOR.into(), s.as_bytes().to_vec()));
    }
    match Initiator::connect(d.portal(), &o) {
        Ok(i) => {
            let _ = i.logout();
            true
        }
        Err(_) => false,
    }
}

/// Reads the configuration back and checks that nothing is half-made.
fn observe(d: &impl Array, known_deleted: &BTreeSet<String>, candidates: &[&Config]) -> Config {
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
            let len = d
                .file_len(p)
                .unwrap_or_else(|| panic!("LUN {name}: backing file {p} missing after restart"));
            assert!(
                len >= l["size_bytes"].as_u64().unwrap(),
                "LUN {name}: short file"
            );
            paths.insert(PathBuf::from(p));
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
    for p in d.lun_dir_entries() {
        assert!(
            paths.contains(&p),
            "{} has no LUN (half-made creation or deletion)",
            p.display()
        );
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
    let mut ini = Initiator::connect(d.portal(), &login_options(INITIATOR, &c.secret))
        .expect("login for PR check");
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

/// Login options for `initiator` to the default target, with CHAP when a secret is in force.
pub fn login_options(initiator: &str, secret: &Option<String>) -> LoginOptions {
    let mut o = LoginOptions::normal(initiator, DEFAULT_IQN);
    if let Some(s) = secret {
        o.chap = Some((initiator.into(), s.as_bytes().to_vec()));
    }
    o
}

/// A stream of configuration changes and what it knows: the acknowledged configuration, the
/// change in flight, the ids of what it made.
#[derive(Default)]
pub struct ConfigStream {
    /// Every acknowledged change applied.
    pub model: Config,
    /// The configuration with the change in flight applied too (set before it is sent).
    pub pending: Option<Config>,
    ids: BTreeMap<String, String>,
    target_ids: BTreeMap<String, String>,
    serial: u64,
    /// Changes acknowledged so far.
    pub acked: u64,
    /// Restarts after which the change in flight was found applied / not applied.
    pub in_flight_landed: u64,
    pub in_flight_lost: u64,
}

impl ConfigStream {
    /// After a restart: the state found is either every acknowledged change, or that plus the
    /// one in flight (which then counts as acknowledged), and nothing is half-made. Learns the
    /// ids of what was made by a change in flight.
    pub fn verify_after_restart(&mut self, d: &impl Array, round: usize) {
        let mut all_deleted = self.model.deleted.clone();
        if let Some(p) = &self.pending {
            all_deleted.extend(p.deleted.iter().cloned());
        }
        let mut cands = vec![&self.model];
        if let Some(p) = &self.pending {
            cands.push(p);
        }
        let mut seen = observe(d, &all_deleted, &cands);
        seen.deleted = seen.deleted.intersection(&all_deleted).cloned().collect();
        let matches_acked = seen == self.model;
        let matches_pending = self.pending.as_ref().is_some_and(|p| seen == *p);
        assert!(
            matches_acked || matches_pending,
            "round {round}: after the restart\n found   {seen:?}\n acked   {:?}\n pending {:?}",
            self.model,
            self.pending
        );
        if matches_pending && !matches_acked {
            self.in_flight_landed += 1;
            self.model = self.pending.take().unwrap();
        } else if self.pending.is_some() {
            self.in_flight_lost += 1;
        }
        self.pending = None;
        // Ids of LUNs whose creation was in flight.
        for l in list(&d.ok("GET", "/v1/luns", None)) {
            let n = l["friendly_name"].as_str().unwrap().to_string();
            self.ids
                .entry(n)
                .or_insert_with(|| l["id"].as_str().unwrap().to_string());
        }
        let ss = d.subsystem();
        for t in list(&d.ok("GET", &format!("/v1/subsystems/{ss}/targets"), None)) {
            let n = t["iscsi_name"].as_str().unwrap().to_string();
            self.target_ids
                .entry(n)
                .or_insert_with(|| t["id"].as_str().unwrap().to_string());
        }
    }

    /// Makes changes until the daemon stops answering (it was killed); panics if it still
    /// answers after `deadline`. `default_target` is the id of the default target (read before
    /// the kill can come).
    pub fn run_until_gone(
        &mut self,
        d: &impl Array,
        rng: &mut Rng,
        default_target: &str,
        deadline: Instant,
    ) {
        let mut ini =
            Initiator::connect(d.portal(), &login_options(INITIATOR, &self.model.secret)).ok();
        while let Ok(()) = self.change(d, rng, &mut ini, default_target) {
            self.acked += 1;
            assert!(Instant::now() < deadline, "the daemon survived SIGKILL?");
        }
    }

    /// One configuration change; `Err(())`: the daemon went away before answering.
    fn change(
        &mut self,
        d: &impl Array,
        rng: &mut Rng,
        ini: &mut Option<Initiator>,
        default_target: &str,
    ) -> Result<(), ()> {
        let ss = d.subsystem_try().ok_or(())?;
        let mut next = self.model.clone();
        self.serial += 1;
        let s = self.serial;
        let names: Vec<_> = self.model.luns.keys().cloned().collect();
        // Creates outnumber deletes two to one, so over many rounds on one data disk the array
        // would only grow: at MAX_STREAM_LUNS a create becomes a delete.
        let op = match rng.below(10) {
            0 | 1 if names.len() >= MAX_STREAM_LUNS => 5,
            op => op,
        };
        let call = |m: &str, p: &str, b: Option<Value>| d.try_call(m, p, b).ok_or(());
        match op {
            0 | 1 => {
                let name = format!("c-{s}");
                let mask = ["*", "", INITIATOR][rng.below(3) as usize].to_string();
                let size = (1 + rng.below(4)) << 20;
                next.luns
                    .insert(name.clone(), (size, mask.clone(), "online".into()));
                self.pending = Some(next.clone());
                let (st, v) = call(
                    "POST",
                    &format!("/v1/subsystems/{ss}/luns?wait=true"),
                    Some(
                        json!({"size_bytes": size, "friendly_name": name, "unmasking_list": mask}),
                    ),
                )?;
                assert_eq!(st, 201, "{v}");
                self.ids.insert(name, v["id"].as_str().unwrap().to_string());
            }
            2 | 3 if !names.is_empty() => {
                let name = &names[rng.below(names.len() as u64) as usize];
                let st_name = ["online", "offline", "not_ready"][rng.below(3) as usize];
                next.luns.get_mut(name).unwrap().2 = st_name.into();
                self.pending = Some(next.clone());
                let (st, v) = call(
                    "POST",
                    &format!("/v1/luns/{}/status", self.ids[name]),
                    Some(json!({"status": st_name})),
                )?;
                assert_eq!(st, 200, "{v}");
            }
            4 if !names.is_empty() => {
                let name = &names[rng.below(names.len() as u64) as usize];
                let mask = ["*", "", INITIATOR][rng.below(3) as usize];
                next.luns.get_mut(name).unwrap().1 = mask.into();
                self.pending = Some(next.clone());
                let (st, v) = call(
                    "PATCH",
                    &format!("/v1/luns/{}", self.ids[name]),
                    Some(json!({"unmasking_list": mask})),
                )?;
                assert_eq!(st, 200, "{v}");
            }
            5 if !names.is_empty() => {
                let name = names[rng.below(names.len() as u64) as usize].clone();
                let id = self.ids[&name].clone();
                next.luns.remove(&name);
                next.deleted.insert(id.clone());
                self.pending = Some(next.clone());
                let (st, v) = call("DELETE", &format!("/v1/luns/{id}"), None)?;
                assert!(st == 200 || st == 204, "{v}");
            }
            6 if !names.is_empty() => {
                let name = &names[rng.below(names.len() as u64) as usize];
                if next.luns[name].2 != "online" {
                    return Ok(());
                }
                next.luns.get_mut(name).unwrap().0 += 1 << 20;
                self.pending = Some(next.clone());
                let (st, v) = call(
                    "POST",
                    &format!("/v1/luns/{}/extend?wait=true", self.ids[name]),
                    Some(json!({"bytes": 1 << 20})),
                )?;
                assert!(st == 200 || st == 201, "{v}");
            }
            7 => {
                if self.model.targets.len() >= 3 || rng.below(2) == 0 {
                    let Some(iqn) = self.model.targets.iter().next().cloned() else {
                        return Ok(());
                    };
                    let id = self.target_ids[&iqn].clone();
                    next.targets.remove(&iqn);
                    next.deleted.insert(id.clone());
                    self.pending = Some(next.clone());
                    let (st, v) = call("DELETE", &format!("/v1/targets/{id}?wait=true"), None)?;
                    assert!(st == 200 || st == 204, "{v}");
                } else {
                    let iqn = format!("iqn.2026-01.test.crash:t{s}");
                    next.targets.insert(iqn.clone());
                    self.pending = Some(next.clone());
                    let (st, v) = call(
                        "POST",
                        &format!("/v1/subsystems/{ss}/targets?wait=true"),
                        Some(json!({"iscsi_name": iqn, "friendly_name": format!("t{s}")})),
                    )?;
                    assert_eq!(st, 201, "{v}");
                    self.target_ids
                        .insert(iqn, v["id"].as_str().unwrap().to_string());
                }
            }
            8 => {
                let secret =
                    (rng.below(3) != 0).then(|| SECRETS[rng.below(3) as usize].to_string());
                next.secret = secret.clone();
                self.pending = Some(next.clone());
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
            _ => match self.reserve(ini, &next, s)? {
                Some(reg) => next = reg,
                None => return Ok(()),
            },
        }
        self.model = next;
        self.pending = None;
        Ok(())
    }

    /// Persistent reservation with APTPL: register a new key (ignoring the old one), then
    /// reserve WRITE EXCLUSIVE; each step is acknowledged by GOOD. `Ok(None)`: nothing was
    /// changed (no session, or a unit attention answered first).
    fn reserve(
        &mut self,
        ini: &mut Option<Initiator>,
        next: &Config,
        s: u64,
    ) -> Result<Option<Config>, ()> {
        let Some(i) = ini.as_mut() else {
            return Ok(None);
        };
        let key = 0x1000 + s;
        let (cdb, p) = pr_out(0x06, 0, 0, key, true);
        let mut reg = next.clone();
        // After REGISTER AND IGNORE the old reservation, if any, stays with our nexus under the
        // new key; a fresh registration holds none until RESERVE.
        reg.pr = (key, self.model.pr.1);
        self.pending = Some(reg.clone());
        let r = i.command(0, &cdb, &p, 0).map_err(|_| ())?;
        if r.status != 0 {
            assert_eq!(kcq(&r.sense).0, 6, "PR REGISTER: {:02x?}", r.sense);
            self.pending = None;
            return Ok(None);
        }
        self.model = reg.clone();
        reg.pr = (key, true);
        let (cdb, p) = pr_out(0x01, 0x01, key, 0, false);
        self.pending = Some(reg.clone());
        let r = i.command(0, &cdb, &p, 0).map_err(|_| ())?;
        assert_eq!(r.status, 0, "PR RESERVE: {:02x?}", r.sense);
        Ok(Some(reg))
    }
}
