//! Bounded memory on the data path (BEHAVIOUR §13, issue 10 item 1): hostile connections try
//! every way to make the daemon buffer without bound, all at once, while a real initiator
//! writes and reads back patterned blocks on a LUN of its own target:
//!
//! - logged-in sessions flood immediate WRITEs with a huge EDTL (64 MiB and 3 MiB) and no data;
//! - logged-in sessions flood immediate 2 MiB READs and never read their socket;
//! - a logged-in session floods immediate NOP-Outs with 8 KiB pings and never reads;
//! - a logged-in session sends commands outside the CmdSN window and ahead of it (held);
//! - 200 connections sit in half-finished logins, and others send SCSI commands unlogged.
//!
//! The daemon runs with queue_depth = 2 (the case measured in issue 10),
//! max_connection_buffer_bytes = 4 MiB and max_buffer_bytes = 48 MiB. Asserted: the daemon's
//! RSS (VmRSS) never passes its RSS once every session is logged in plus the budget plus 48 MiB
//! of slack for what is not budgeted (receive buffers, per-connection buffer reuse, the
//! half-open logins, threads, allocator); the real I/O never fails and reads back what it
//! wrote; the daemon stays up and serves a fresh login afterwards.
//!
//! And: once the daemon-wide budget cannot give a new connection its first chunk, logins are
//! refused with 0x0302 (out of resources), and admitted again once a session has gone.
//! Ports: API 47177-47178, portal 47077-47078.

mod reliability_common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reliability_common::*;
use serde_json::json;
use vds_iscsi::pdu::{
    Bhs, Digests, Header, LoginRequest, NopOut, Pdu, ScsiCommand, TaskAttr, BHS_LEN,
};
use vds_testkit::{Initiator, LoginOptions};

const REAL_IQN: &str = "iqn.2026-01.test.memory:real";
const HOSTILE: &str = "iqn.2026-01.test.memory:hostile";
const MIB: u64 = 1 << 20;
const CONN_LIMIT: u64 = 4 * MIB;
const BUDGET: u64 = 48 * MIB;
const SLACK: u64 = 48 * MIB;
/// The two tests run one at a time: the flood would starve the other's logins of CPU.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// How long the attack lasts.
const ATTACK: Duration = Duration::from_secs(8);

fn config() -> String {
    format!(
        "queue_depth = 2\nmax_connection_buffer_bytes = {CONN_LIMIT}\n\
         max_buffer_bytes = {BUDGET}\nlogin_timeout_secs = 5\n"
    )
}

/// A logged-in session driven by raw PDUs, on a socket the test controls (write timeouts:
/// a daemon that stops reading makes the sender wait, which is the point).
struct Raw {
    s: TcpStream,
    cmd_sn: u32,
    itt: u32,
}

fn read_pdu(s: &mut TcpStream) -> std::io::Result<Pdu> {
    let mut h = [0u8; BHS_LEN];
    s.read_exact(&mut h)?;
    let bhs = Bhs(h);
    let mut rest = vec![0u8; bhs.wire_rest_len(false, false)];
    s.read_exact(&mut rest)?;
    Pdu::from_parts(&bhs, &rest, Digests::default())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
}

fn login_request(isid: u8, keys: String) -> Pdu {
    Pdu::new(
        Header::LoginRequest(LoginRequest {
            transit: true,
            cont: false,
            csg: 1,
            nsg: 3,
            version_max: 0,
            version_min: 0,
            isid: [0x80, 0, 0, 0, 0x77, isid],
            tsih: 0,
            itt: 0,
            cid: 0,
            cmd_sn: 0,
            exp_stat_sn: 0,
        }),
        keys.into_bytes(),
    )
}

impl Raw {
    fn login(portal: SocketAddr, isid: u8) -> Raw {
        let mut s = TcpStream::connect_timeout(&portal, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.set_nodelay(true).unwrap();
        let keys = format!(
            "InitiatorName={HOSTILE}\0SessionType=Normal\0TargetName={DEFAULT_IQN}\0\
             HeaderDigest=None\0DataDigest=None\0InitialR2T=No\0ImmediateData=Yes\0\
             MaxRecvDataSegmentLength=262144\0MaxBurstLength=262144\0FirstBurstLength=65536\0"
        );
        let req = login_request(isid, keys);
        s.write_all(&req.to_bytes(Digests::default()).unwrap())
            .unwrap();
        let p = read_pdu(&mut s).expect("login response");
        let Header::LoginResponse(r) = p.header else {
            panic!("expected a login response, got {p:?}")
        };
        assert_eq!((r.status_class, r.status_detail), (0, 0), "hostile login");
        assert!(r.transit && r.nsg == 3, "one-step login: {r:?}");
        s.set_write_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        Raw {
            s,
            cmd_sn: r.sns.exp_cmd_sn,
            itt: 1,
        }
    }

    /// Send one PDU; `false` once the daemon has stopped taking bytes (or closed).
    fn send(&mut self, p: &Pdu) -> bool {
        self.s
            .write_all(&p.to_bytes(Digests::default()).unwrap())
            .is_ok()
    }

    fn scsi(&mut self, immediate: bool, read: bool, edtl: u32, cdb: Vec<u8>, data: Vec<u8>) -> Pdu {
        self.itt = self.itt.wrapping_add(1);
        let cmd_sn = self.cmd_sn;
        if !immediate {
            self.cmd_sn = self.cmd_sn.wrapping_add(1);
        }
        Pdu::new(
            Header::ScsiCommand(ScsiCommand {
                immediate,
                final_: true,
                read,
                write: !read,
                attr: TaskAttr::Simple,
                lun: 0,
                itt: self.itt,
                edtl,
                cmd_sn,
                exp_stat_sn: 0,
                cdb,
                bidi_read_len: None,
            }),
            data,
        )
    }

    /// TEST UNIT READY until the unit attentions of a new nexus are gone, reading answers.
    fn clear_ua(&mut self) {
        for _ in 0..8 {
            let p = self.scsi(false, false, 0, vec![0; 16], vec![]);
            self.s.set_write_timeout(None).unwrap();
            assert!(self.send(&p));
            loop {
                let r = read_pdu(&mut self.s).expect("TUR answer");
                if let Header::ScsiResponse(r) = r.header {
                    if r.status == 0 {
                        self.s
                            .set_write_timeout(Some(Duration::from_millis(300)))
                            .unwrap();
                        return;
                    }
                    break;
                }
            }
        }
        panic!("unit attentions never cleared");
    }
}

fn cdb16(op: u8, lba: u64, blocks: u32) -> Vec<u8> {
    let mut c = vec![0u8; 16];
    c[0] = op;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&blocks.to_be_bytes());
    c
}

#[derive(Default)]
struct Sent {
    pdus: AtomicU64,
    pushed_back: AtomicU64,
}

/// Run `f` until the attack ends or the daemon stops taking bytes from this connection
/// (counted as pushed back, then retried: the connection stays stalled if it is).
fn flood(stop: &AtomicBool, sent: &Sent, mut f: impl FnMut() -> bool) {
    while !stop.load(Ordering::Relaxed) {
        if f() {
            sent.pdus.fetch_add(1, Ordering::Relaxed);
        } else {
            sent.pushed_back.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn hostile_peers_cannot_grow_memory_past_the_budgets() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut o = Opts::new(&dir.path().join("data"), 47177, 47077);
    o.config = Some(config());
    let mut d = Daemon::start(&o);

    // The real initiator's own target and LUN.
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
    d.create_lun(json!({"size_bytes": 16 << 20, "friendly_name": "real",
        "unmasking_list": INITIATOR, "targets": [tid]}));
    // The hostile sessions' LUN on the default target.
    let default_tid = d.default_target()["id"].as_str().unwrap().to_string();
    d.create_lun(json!({"size_bytes": 64 << 20, "friendly_name": "bait",
        "unmasking_list": HOSTILE, "targets": [default_tid]}));

    let mut real = d.login(INITIATOR, REAL_IQN);
    let _ = command_past_ua(&mut real, 0, &[0, 0, 0, 0, 0, 0], &[], 0);
    let mut hostile: Vec<Raw> = (0..8).map(|i| Raw::login(d.portal, i)).collect();
    for h in &mut hostile {
        h.clear_ua();
    }
    let rss0 = d.rss_kib() * 1024;
    let bound = rss0 + BUDGET + SLACK;
    eprintln!(
        "memory: RSS {} MiB with every session logged in; bound {} MiB",
        rss0 / MIB,
        bound / MIB
    );

    let stop = Arc::new(AtomicBool::new(false));
    let real_cmds = Arc::new(AtomicU64::new(0));
    let io = {
        let (stop, real_cmds) = (stop.clone(), real_cmds.clone());
        std::thread::spawn(move || {
            let mut rng = Rng(0x3e3);
            let mut gen = 0u64;
            while !stop.load(Ordering::Relaxed) {
                gen += 1;
                let lba = rng.below(32768 - 64);
                let n = 1 + rng.below(64) as u32;
                let mut data = Vec::new();
                for b in lba..lba + u64::from(n) {
                    data.extend_from_slice(&pattern(b, gen, 512));
                }
                let w = real
                    .command(0, &write16(lba, n, true), &data, 0)
                    .expect("real write");
                assert_eq!(w.status, 0, "real write failed: {:02x?}", w.sense);
                let r = real
                    .command(0, &read16(lba, n), &[], n * 512)
                    .expect("real read");
                assert_eq!(r.status, 0, "real read failed: {:02x?}", r.sense);
                assert!(r.data == data, "real read returned other data at LBA {lba}");
                real_cmds.fetch_add(2, Ordering::Relaxed);
            }
            real.logout().expect("real logout");
        })
    };

    let sent: Arc<[Sent; 6]> = Arc::new(Default::default());
    let mut workers = Vec::new();
    for (i, mut h) in hostile.into_iter().enumerate() {
        let (stop, sent) = (stop.clone(), sent.clone());
        workers.push(std::thread::spawn(move || match i {
            // Immediate WRITEs with a huge EDTL and no data.
            0..=2 => {
                let mut k = 0u32;
                flood(&stop, &sent[0], || {
                    k += 1;
                    let edtl: u32 = if k.is_multiple_of(2) {
                        64 << 20
                    } else {
                        3 << 20
                    };
                    let p = h.scsi(true, false, edtl, cdb16(0x8A, 0, edtl / 512), vec![]);
                    h.send(&p)
                })
            }
            // Immediate 2 MiB READs, the socket never read.
            3..=5 => flood(&stop, &sent[1], || {
                let p = h.scsi(true, true, 2 << 20, cdb16(0x88, 0, 4096), vec![]);
                h.send(&p)
            }),
            // Immediate NOP-Out pings with 8 KiB of data, never read.
            6 => flood(&stop, &sent[2], || {
                h.itt = h.itt.wrapping_add(1);
                let p = Pdu::new(
                    Header::NopOut(NopOut {
                        immediate: true,
                        lun: 0,
                        itt: h.itt,
                        ttt: u32::MAX,
                        cmd_sn: h.cmd_sn,
                        exp_stat_sn: 0,
                    }),
                    vec![0x5a; 8192],
                );
                h.send(&p)
            }),
            // CmdSNs outside the window (ignored) and ahead of it (held), with 8 KiB of
            // immediate data each.
            _ => {
                let mut k = 0u32;
                flood(&stop, &sent[3], || {
                    k += 1;
                    let mut p = h.scsi(false, false, 8192, cdb16(0x8A, 0, 16), vec![7; 8192]);
                    if let Header::ScsiCommand(c) = &mut p.header {
                        c.cmd_sn = match k % 3 {
                            0 => c.cmd_sn.wrapping_add(1),
                            1 => c.cmd_sn.wrapping_add(1000 + k),
                            _ => c.cmd_sn.wrapping_sub(1 + k),
                        };
                    }
                    h.cmd_sn = h.cmd_sn.wrapping_sub(1);
                    h.send(&p)
                })
            }
        }));
    }
    // 200 half-open logins, held; and unlogged connections that send SCSI commands.
    let half_open = {
        let (stop, portal) = (stop.clone(), d.portal);
        std::thread::spawn(move || {
            let mut pool = Vec::new();
            for i in 0..200u32 {
                if let Ok(mut s) = TcpStream::connect_timeout(&portal, Duration::from_secs(2)) {
                    let mut p = login_request(i as u8, format!("InitiatorName={HOSTILE}\0"))
                        .to_bytes(Digests::default())
                        .unwrap();
                    p.truncate(48 + 10);
                    let _ = s.write_all(&p);
                    pool.push(s);
                }
            }
            let mut unlogged = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(s) = TcpStream::connect_timeout(&portal, Duration::from_secs(2)) {
                    let _ = s.set_write_timeout(Some(Duration::from_millis(200)));
                    let mut r = Raw {
                        s,
                        cmd_sn: 0,
                        itt: 0,
                    };
                    for _ in 0..16 {
                        let p = r.scsi(true, false, 64 << 20, cdb16(0x8A, 0, 1 << 17), vec![]);
                        if !r.send(&p) {
                            break;
                        }
                    }
                    unlogged += 1;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (pool.len(), unlogged)
        })
    };

    let end = Instant::now() + ATTACK;
    let mut peak = rss0;
    let mut over = None;
    while Instant::now() < end {
        assert!(d.alive(), "the daemon died:\n{}", d.log_text());
        let rss = d.rss_kib() * 1024;
        peak = peak.max(rss);
        if rss > bound {
            // Stop here rather than let an unbounded daemon eat the machine.
            over = Some(rss);
            d.kill9();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    let names = ["imm-write", "imm-read", "nop", "window"];
    let counts: Vec<String> = names
        .iter()
        .zip(sent.iter())
        .map(|(n, s)| {
            format!(
                "{n}: {} PDUs, pushed back {}",
                s.pdus.load(Ordering::Relaxed),
                s.pushed_back.load(Ordering::Relaxed)
            )
        })
        .collect();
    eprintln!(
        "memory: RSS {} MiB -> peak {} MiB (bound {} MiB); {}",
        rss0 / MIB,
        peak / MIB,
        bound / MIB,
        counts.join("; ")
    );
    if let Some(rss) = over {
        panic!(
            "RSS reached {} MiB, over the bound of {} MiB (baseline {} MiB + budget {} MiB + \
             slack {} MiB); the daemon was killed",
            rss / MIB,
            bound / MIB,
            rss0 / MIB,
            BUDGET / MIB,
            SLACK / MIB
        );
    }
    let (half, unlogged) = half_open.join().expect("half-open logins");
    io.join().expect("the real I/O failed");
    for w in workers {
        w.join().expect("hostile worker");
    }
    eprintln!(
        "memory: {half} half-open logins held, {unlogged} unlogged connections, {} real commands",
        real_cmds.load(Ordering::Relaxed)
    );
    assert!(d.alive(), "the daemon died:\n{}", d.log_text());
    assert!(
        real_cmds.load(Ordering::Relaxed) > 50,
        "the real I/O hardly ran: {}",
        real_cmds.load(Ordering::Relaxed)
    );
    // Every hostile flood reached the daemon.
    for (n, s) in names.iter().zip(sent.iter()) {
        assert!(s.pdus.load(Ordering::Relaxed) > 10, "{n} flood did not run");
    }
    // Served normally afterwards.
    let mut fresh =
        Initiator::connect(d.portal, &LoginOptions::normal(INITIATOR, REAL_IQN)).unwrap();
    let r = command_past_ua(&mut fresh, 0, &read16(0, 8), &[], 4096);
    assert_eq!(r.status, 0);
    let _ = fresh.logout();
    assert_eq!(d.stop(), Some(0));
}

#[test]
fn logins_past_the_daemon_budget_are_refused_until_one_goes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut o = Opts::new(&dir.path().join("data"), 47178, 47078);
    // 1 MiB: four connections' first chunks (256 KiB each).
    o.config =
        Some("max_connection_buffer_bytes = 1048576\nmax_buffer_bytes = 1048576\n".to_string());
    let mut d = Daemon::start(&o);
    let opts = |isid: u8| {
        let mut o = LoginOptions::normal(INITIATOR, DEFAULT_IQN);
        o.isid = [0x80, 0, 0, 0, 0x42, isid];
        o
    };
    let mut sessions: Vec<Initiator> = (0..4)
        .map(|i| Initiator::connect(d.portal, &opts(i)).expect("within the budget"))
        .collect();
    match Initiator::connect(d.portal, &opts(9)) {
        Err(vds_testkit::initiator::Error::Login(st)) => assert_eq!(st.0, 0x0302),
        Err(e) => panic!("fifth login: {e}"),
        Ok(_) => panic!("a fifth connection was admitted past max_buffer_bytes"),
    }
    // The admitted sessions serve.
    for s in &mut sessions {
        let r = command_past_ua(s, 0, &[0, 0, 0, 0, 0, 0], &[], 0);
        assert_eq!(r.status, 0);
    }
    // One logs out: its chunk comes back and a new login is admitted.
    sessions.pop().unwrap().logout().unwrap();
    assert!(
        wait_until(5, || Initiator::connect(d.portal, &opts(9)).is_ok()),
        "the budget never came back"
    );
    assert!(d.alive());
    drop(sessions);
    assert_eq!(d.stop(), Some(0));
}
