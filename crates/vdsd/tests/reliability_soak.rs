//! Soak under hostile input (issue 6): for a bounded time (VDS_SOAK_SECS, default 20, at most
//! 600) hundreds of connections send random bytes, truncated and oversized PDUs, absurd AHS
//! and data segment lengths, logins with endless keys, idle half-logins, and garbage after a
//! real login, while a real initiator keeps writing and reading back patterned blocks on a
//! LUN of its own target (so that nothing the hostile sessions may legally do, such as a
//! TARGET COLD RESET or a reservation, reaches it). The real I/O never fails, the daemon stays
//! up, its RSS (VmRSS) stays bounded, and it serves a fresh login at the end.
//! Ports: API 47140, portal 47040.

mod reliability_common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reliability_common::*;
use serde_json::json;
use vds_iscsi::pdu::{Digests, Header, LoginRequest, Pdu};
use vds_testkit::{Initiator, LoginOptions};

const REAL_IQN: &str = "iqn.2026-01.test.h7:real";

fn soak_secs() -> u64 {
    std::env::var("VDS_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
        .clamp(1, 600)
}

#[derive(Default)]
struct Stats {
    connections: AtomicU64,
    bytes: AtomicU64,
    real_commands: AtomicU64,
}

fn login_pdu(cont: bool, transit: bool, isid: u8, data: Vec<u8>) -> Vec<u8> {
    Pdu::new(
        Header::LoginRequest(LoginRequest {
            transit,
            cont,
            csg: 1,
            nsg: if transit { 3 } else { 0 },
            version_max: 0,
            version_min: 0,
            isid: [0x80, 0, 0, 0, 0x66, isid],
            tsih: 0,
            itt: 1,
            cid: 0,
            cmd_sn: 0,
            exp_stat_sn: 0,
        }),
        data,
    )
    .to_bytes(Digests::default())
    .unwrap()
}

/// One hostile connection of kind `k`; returns the bytes sent.
fn hostile(portal: SocketAddr, k: u64, rng: &mut Rng, stop: &AtomicBool) -> u64 {
    let Ok(mut s) = TcpStream::connect_timeout(&portal, Duration::from_secs(2)) else {
        return 0;
    };
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut sent = 0u64;
    let mut send = |s: &mut TcpStream, b: &[u8]| -> bool {
        sent += b.len() as u64;
        s.write_all(b).is_ok()
    };
    match k {
        // Random bytes.
        0 => {
            let n = 1 + rng.below(64 << 10) as usize;
            send(&mut s, &rng.bytes(n));
        }
        // A login PDU that claims more data than it sends, then silence.
        1 => {
            let mut p = login_pdu(false, false, 1, vec![b'A'; 1000]);
            p.truncate(48 + rng.below(900) as usize);
            send(&mut s, &p);
            std::thread::sleep(Duration::from_millis(rng.below(500)));
        }
        // Absurd lengths: data segment 16 MiB - 1, TotalAHSLength 255 words.
        2 => {
            let mut h = [0u8; 48];
            h[0] = 0x43;
            h[1] = 0x87;
            h[4] = if rng.below(2) == 0 { 255 } else { 0 };
            h[5..8].copy_from_slice(&[0xFF, 0xFF, 0xFF]);
            send(&mut s, &h);
            let n = rng.below(4096) as usize;
            send(&mut s, &rng.bytes(n));
        }
        // Endless keys: C=1 login PDUs of 8 KiB keys until the target gives up.
        3 => {
            let mut key = Vec::new();
            while key.len() < 8000 {
                key.extend_from_slice(format!("X-h7.key{}=", key.len()).as_bytes());
                key.extend_from_slice(&[b'v'; 200]);
                key.push(0);
            }
            for _ in 0..64 {
                if stop.load(Ordering::Relaxed)
                    || !send(&mut s, &login_pdu(true, false, 3, key.clone()))
                {
                    break;
                }
                let mut b = [0u8; 512];
                if let Ok(0) = s.read(&mut b) {
                    break;
                }
            }
        }
        // Garbage after a real login (another target, other initiator names).
        4 => {
            drop(s);
            let o = LoginOptions::normal(
                &format!("iqn.2026-01.test.h7:evil{}", rng.below(50)),
                DEFAULT_IQN,
            );
            if let Ok(mut i) = Initiator::connect(portal, &o) {
                for _ in 0..rng.below(8) {
                    let n = 48 + rng.below(600) as usize;
                    let mut pdu = rng.bytes(n);
                    pdu[0] =
                        [0x01, 0x05, 0x04, 0x02, 0x00, 0x06, 0x10, 0x3F][rng.below(8) as usize];
                    pdu[4] = 0;
                    pdu[5..8].copy_from_slice(&[0, 0, (rng.below(64) * 4) as u8]);
                    sent += pdu.len() as u64;
                    if i.send_bytes(&pdu).is_err() {
                        break;
                    }
                }
                // A random CDB on the default target's LUN 0 (never the real LUN).
                let mut cdb = rng.bytes(16);
                cdb[0] = [0x28, 0x2A, 0x12, 0xA0, 0x5E, 0x1A, 0x00][rng.below(7) as usize];
                let _ = i.set_timeout(Duration::from_millis(500));
                let _ = i.command(0, &cdb, &[], 512);
            }
        }
        // A valid first login PDU, then nothing (half login) or a wrong stage.
        _ => {
            let keys = format!("InitiatorName=iqn.2026-01.test.h7:half\0SessionType=Normal\0TargetName={DEFAULT_IQN}\0AuthMethod=None\0");
            let mut p = login_pdu(false, rng.below(2) == 0, 5, keys.into_bytes());
            p[1] = 0x80 | (rng.below(16) as u8);
            send(&mut s, &p);
            std::thread::sleep(Duration::from_millis(rng.below(300)));
        }
    }
    sent
}

#[test]
fn hostile_connections_never_disturb_real_io() {
    let secs = soak_secs();
    let dir = tempfile::tempdir().unwrap();
    let o = Opts::new(&dir.path().join("data"), 47140, 47040);
    let mut d = Daemon::start(&o);
    // The real initiator's own target and LUN, masked to it.
    let ss = d.subsystem();
    let (st, t) = d.call(
        "POST",
        &format!("/v1/subsystems/{ss}/targets?wait=true"),
        Some(json!({"iscsi_name": REAL_IQN, "friendly_name": "real"})),
    );
    assert_eq!(st, 201, "{t}");
    let tid = t["id"].as_str().unwrap().to_string();
    let (st, pg) = d.call(
        "POST",
        &format!("/v1/targets/{tid}/portal-groups?wait=true"),
        Some(json!({})),
    );
    assert_eq!(st, 201, "{pg}");
    let portal_id =
        list(&d.ok("GET", &format!("/v1/subsystems/{ss}/portals"), None))[0]["id"].clone();
    let (st, v) = d.call(
        "POST",
        &format!(
            "/v1/portal-groups/{}/portals?wait=true",
            pg["id"].as_str().unwrap()
        ),
        Some(json!({"portal": portal_id})),
    );
    assert!(st == 200 || st == 201, "{v}");
    d.create_lun(json!({"size_bytes": 16 << 20, "friendly_name": "real", "unmasking_list": INITIATOR, "targets": [tid]}));

    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Stats::default());
    let mut real = d.login(INITIATOR, REAL_IQN);
    let _ = command_past_ua(&mut real, 0, &[0, 0, 0, 0, 0, 0], &[], 0);
    std::thread::sleep(Duration::from_millis(300));
    let rss0 = d.rss_kib();

    // The real I/O: write a patterned block with FUA, read it back, every time.
    let io = {
        let (stop, stats) = (stop.clone(), stats.clone());
        std::thread::spawn(move || {
            let mut rng = Rng(0x5eed);
            let mut worst = Duration::ZERO;
            let mut gen = 0u64;
            while !stop.load(Ordering::Relaxed) {
                gen += 1;
                let lba = rng.below(32768 - 8);
                let n = 1 + rng.below(8) as u32;
                let mut data = Vec::new();
                for b in lba..lba + u64::from(n) {
                    data.extend_from_slice(&pattern(b, gen, 512));
                }
                let t0 = Instant::now();
                let w = real
                    .command(0, &write16(lba, n, true), &data, 0)
                    .expect("real write");
                assert_eq!(w.status, 0, "real write failed: {:02x?}", w.sense);
                let r = real
                    .command(0, &read16(lba, n), &[], n * 512)
                    .expect("real read");
                assert_eq!(r.status, 0, "real read failed: {:02x?}", r.sense);
                assert!(r.data == data, "real read returned other data at LBA {lba}");
                worst = worst.max(t0.elapsed());
                stats.real_commands.fetch_add(2, Ordering::Relaxed);
            }
            real.logout().expect("real logout");
            worst
        })
    };

    // Idle half-logins: a pool of 300 connections held open, renewed as the daemon drops them.
    let idle = {
        let (stop, stats, portal) = (stop.clone(), stats.clone(), d.portal);
        std::thread::spawn(move || {
            let mut pool: Vec<TcpStream> = Vec::new();
            let mut peak = 0;
            while !stop.load(Ordering::Relaxed) {
                while pool.len() < 300 {
                    match TcpStream::connect_timeout(&portal, Duration::from_secs(2)) {
                        Ok(mut s) => {
                            let _ = s.write_all(&[0x43, 0x87, 0, 0]);
                            let _ = s.set_nonblocking(true);
                            stats.connections.fetch_add(1, Ordering::Relaxed);
                            pool.push(s);
                        }
                        Err(_) => break,
                    }
                }
                peak = peak.max(pool.len());
                // Drop the ones the daemon closed (login timeout).
                pool.retain_mut(|s| {
                    let mut b = [0u8; 1];
                    !matches!(s.read(&mut b), Ok(0))
                });
                std::thread::sleep(Duration::from_millis(200));
            }
            peak
        })
    };

    let workers: Vec<_> = (0..6u64)
        .map(|w| {
            let (stop, stats, portal) = (stop.clone(), stats.clone(), d.portal);
            std::thread::spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (w + 1));
                while !stop.load(Ordering::Relaxed) {
                    let k = rng.below(6);
                    let b = hostile(portal, k, &mut rng, &stop);
                    stats.connections.fetch_add(1, Ordering::Relaxed);
                    stats.bytes.fetch_add(b, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let end = Instant::now() + Duration::from_secs(secs);
    let mut peak_rss = rss0;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(250));
        assert!(d.alive(), "the daemon died:\n{}", d.log_text());
        peak_rss = peak_rss.max(d.rss_kib());
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("hostile worker");
    }
    let peak_idle = idle.join().expect("idle pool");
    let worst = io.join().expect("the real I/O failed");
    assert!(d.alive());
    // Bounded memory: hundreds of connections cost a bounded amount each.
    assert!(
        peak_rss < rss0 + 256 * 1024,
        "RSS grew from {rss0} KiB to {peak_rss} KiB"
    );
    // Served normally afterwards.
    let mut fresh =
        Initiator::connect(d.portal, &LoginOptions::normal(INITIATOR, REAL_IQN)).unwrap();
    let r = command_past_ua(&mut fresh, 0, &read16(0, 1), &[], 512);
    assert_eq!(r.status, 0);
    eprintln!(
        "soak: {secs} s, {} hostile connections ({} bytes, peak {peak_idle} idle half-logins), \
         {} real commands all good (worst write+read {:?}), RSS {} KiB -> peak {} KiB",
        stats.connections.load(Ordering::Relaxed),
        stats.bytes.load(Ordering::Relaxed),
        stats.real_commands.load(Ordering::Relaxed),
        worst,
        rss0,
        peak_rss
    );
    assert!(
        stats.real_commands.load(Ordering::Relaxed) > 100,
        "the real I/O hardly ran"
    );
    let _ = fresh.logout();
    assert_eq!(d.stop(), Some(0));
}
