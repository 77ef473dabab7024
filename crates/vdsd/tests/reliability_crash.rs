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
//! The load, the models and the checks live in `reliability_common/consistency.rs`, shared with
//! the power-cut runner (`examples/powercut.rs`), which kills the guest the daemon runs in.
//! Rounds are bounded (VDS_CRASH_ROUNDS, default 10 per test) and seeded (VDS_RELIABILITY_SEED).
//! Ports: API 47100-47101, portals 47000-47001.

mod reliability_common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reliability_common::consistency::{verify_region, write_load, ConfigStream, WriteModel};
use reliability_common::*;
use vds_testkit::{Initiator, LoginOptions};

fn rounds() -> usize {
    std::env::var("VDS_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
}

#[test]
fn acknowledged_writes_survive_kill9_at_random_points() {
    let dir = tempfile::tempdir().unwrap();
    let o = Opts::new(&dir.path().join("data"), 47100, 47000);
    let mut rng = Rng::from_env();
    let model = Arc::new(Mutex::new(WriteModel::default()));
    let login = LoginOptions::normal(INITIATOR, DEFAULT_IQN);
    let mut gen = 0u64;
    let started = Instant::now();
    let n = rounds();
    let mut kills = 0;
    for round in 0..n {
        let mut d = Daemon::start(&o);
        let c = verify_region(d.portal, &login, 0, &mut model.lock().unwrap());
        eprintln!(
            "round {round}: restart verified ({} acknowledged blocks read back)",
            c.acked_blocks
        );
        let stop = Arc::new(AtomicBool::new(false));
        let kill_after = Duration::from_millis(150 + rng.below(1200));
        let load_rng = Rng(rng.next() | 1);
        let portal = d.portal;
        let m2 = model.clone();
        let s2 = stop.clone();
        let l2 = login.clone();
        let mut g = gen;
        let writer = std::thread::spawn(move || {
            // The kill may come first: then nothing is sent.
            if let Ok(ini) = Initiator::connect(portal, &l2) {
                write_load(ini, 0, m2, load_rng, &mut g, s2);
            }
            g
        });
        std::thread::sleep(kill_after);
        d.kill9();
        kills += 1;
        gen = writer.join().expect("writer");
        stop.store(true, Ordering::Relaxed);
    }
    let d = Daemon::start(&o);
    let c = verify_region(d.portal, &login, 0, &mut model.lock().unwrap());
    let m = model.lock().unwrap();
    eprintln!(
        "writes: {kills} kills survived, {} writes ({} blocks) acknowledged, {} generations sent, \
         {} acknowledged blocks verified at the end, nothing lost, {:.1} s",
        m.acked_writes,
        m.acked_blocks,
        gen,
        c.acked_blocks,
        started.elapsed().as_secs_f64()
    );
    assert!(
        m.acked_writes > 0,
        "the load never got a write acknowledged"
    );
}

#[test]
fn acknowledged_configuration_survives_kill9_and_nothing_is_half_made() {
    let dir = tempfile::tempdir().unwrap();
    let o = Opts::new(&dir.path().join("data"), 47101, 47001);
    let mut rng = Rng::from_env();
    let mut stream = ConfigStream::default();
    let started = Instant::now();
    let mut kills = 0u64;
    for round in 0..=rounds() {
        let d = Daemon::start(&o);
        // Either every acknowledged change, or that plus the one in flight at the kill.
        stream.verify_after_restart(&d, round);
        let m = &stream.model;
        eprintln!(
            "round {round}: restart verified: {} LUNs, {} targets, {} tombstones, secret {}, PR {:x?}",
            m.luns.len(),
            m.targets.len(),
            m.deleted.len(),
            m.secret.is_some(),
            m.pr
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
        // Until the daemon is gone (the change then fails to get an answer).
        stream.run_until_gone(
            &d,
            &mut rng,
            &default_target,
            kill_at + Duration::from_secs(5),
        );
        killer.join().unwrap();
        d.kill9();
        kills += 1;
    }
    eprintln!(
        "configuration: {kills} kills survived, {} changes acknowledged, {} in-flight \
         changes found applied, nothing lost or half-made, {:.1} s",
        stream.acked,
        stream.in_flight_landed,
        started.elapsed().as_secs_f64()
    );
    assert!(stream.acked > 0);
}
