//! Power cut (issue 12, part 4; docs/RELIABILITY.md "Power cut"): `vdsd` runs inside a QEMU
//! guest on a virtio disk (`cache=none`) holding an ext4 of the guest's own; from the host, an
//! initiator writes (FUA writes, writes followed by SYNCHRONIZE CACHE) while a stream of
//! configuration changes goes through the API, and at a random instant QEMU gets SIGKILL. The
//! guest's page cache is lost with it, which `kill -9` of the daemon alone never loses. The
//! guest boots again on the same disk (e2fsck, journal replay) and everything acknowledged must
//! be there, nothing half-made: the same models and checks as `tests/reliability_crash.rs`
//! (`tests/reliability_common/consistency.rs`, included here by path).
//!
//! Usage: `cargo build --release -p vdsd --bin vdsd --example powercut &&
//! target/release/examples/powercut [--rounds N] [--bin DIR] [--work DIR] [--keep]`. Rounds:
//! `--rounds`, else `VDS_POWERCUT_ROUNDS`, else 10; the seed is printed
//! (`VDS_RELIABILITY_SEED` replays it). Prints one line per round and, last,
//! `powercut: N passed, N failed`; exits 1 if any round failed or could not run (no QEMU, no
//! guest image: failures, never skips). `--work DIR` (default a new `/var/tmp/vds-powercut.*`)
//! holds the guest's disk and logs; it is removed after a clean run unless `--keep`.
//!
//! The guest is the harness's image (`scripts/guest-image`) with `scripts/guest/powercut-init`
//! as its init and the host's `vdsd` on the 9p share; the host reaches its portal and API only
//! through QEMU's `hostfwd` on 127.0.0.1 ports picked free at start. QEMU is this process's
//! child, killed by pid (and by the kernel when this process dies: `PR_SET_PDEATHSIG`).

#[path = "../tests/reliability_common/consistency.rs"]
mod consistency;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use consistency::{
    bearer_call, list, login_options, verify_region, write_load, Array, ConfigStream, Rng,
    WriteModel,
};
use serde_json::{json, Value};
use vds_testkit::Initiator;

/// The initiator of the write load (the configuration stream uses `consistency::INITIATOR`).
const WRITER: &str = "iqn.2026-01.test.reliability:writer";
/// The LUN the write load writes to, on the default target (LUN 0 carries the stream's
/// persistent reservation, which would fence the writer).
const DATA_LUN: &str = "pc-data";
const DATA_LUN_BYTES: u64 = 16 << 20;
/// The guest's data disk: a sparse raw file on the host.
const DISK_BYTES: u64 = 2 << 30;
const TMPFS_MAGIC: i64 = 0x0102_1994;

struct Opts {
    rounds: usize,
    bin: PathBuf,
    work: Option<PathBuf>,
    keep: bool,
}

fn parse_args() -> Result<Opts, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    // target/release/examples/powercut → target/release
    let mut bin = exe
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut rounds = match std::env::var("VDS_POWERCUT_ROUNDS") {
        Ok(v) => v
            .parse()
            .map_err(|_| format!("VDS_POWERCUT_ROUNDS={v:?}: not a number of rounds"))?,
        Err(_) => 10,
    };
    let (mut work, mut keep) = (None, false);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--rounds" => {
                let v = value("--rounds")?;
                rounds = v
                    .parse()
                    .map_err(|_| format!("--rounds {v:?}: not a number of rounds"))?;
            }
            "--bin" => bin = PathBuf::from(value("--bin")?),
            "--work" => work = Some(PathBuf::from(value("--work")?)),
            "--keep" => keep = true,
            other => {
                return Err(format!(
                    "unknown argument {other:?} (see the file's header)"
                ))
            }
        }
    }
    if rounds == 0 {
        return Err("--rounds must be at least 1".into());
    }
    Ok(Opts {
        rounds,
        bin,
        work,
        keep,
    })
}

/// Where the run lives on the host: the guest's data disk, its share, its logs.
struct Ctx {
    qemu: PathBuf,
    image: PathBuf,
    work: PathBuf,
    share: PathBuf,
    disk: PathBuf,
    api_port: u16,
    portal_port: u16,
    token: String,
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// Two free ports, different: both listeners are held until both are known (one picked and
/// closed before the next could be picked again, and QEMU refuses the same `hostfwd` twice).
fn free_ports() -> Result<(u16, u16), String> {
    let bind = || TcpListener::bind("127.0.0.1:0").map_err(|e| format!("a free port: {e}"));
    let (a, b) = (bind()?, bind()?);
    let port = |l: &TcpListener| l.local_addr().map(|a| a.port()).map_err(|e| e.to_string());
    Ok((port(&a)?, port(&b)?))
}

fn random_hex(bytes: usize) -> Result<String, String> {
    use std::io::Read;
    let mut b = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// The filesystem type of `p` (statfs `f_type`).
fn fs_type(p: &Path) -> Result<i64, String> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: statfs(2) with a NUL-terminated path and a zeroed struct it fills.
    let (rc, st) = unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        (libc::statfs(c.as_ptr(), &mut st), st)
    };
    if rc != 0 {
        return Err(format!(
            "statfs {}: {}",
            p.display(),
            std::io::Error::last_os_error()
        ));
    }
    // `f_type`'s C type differs between ABIs (long on x86_64, int on some others).
    #[allow(clippy::unnecessary_cast)]
    Ok(st.f_type as i64)
}

fn setup(o: &Opts) -> Result<Ctx, String> {
    let qemu = which("qemu-system-x86_64")
        .ok_or("qemu-system-x86_64 not found (apt-get install -y qemu-system-x86)")?;
    let vdsd = o.bin.join("vdsd");
    if !vdsd.is_file() {
        return Err(format!(
            "{} missing (cargo build --release -p vdsd)",
            vdsd.display()
        ));
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let image = guest_image(&repo)?;
    for f in ["root.img", "vmlinuz", "initrd.img"] {
        if !image.join(f).is_file() {
            return Err(format!("guest image {}: no {f}", image.display()));
        }
    }
    let work = match &o.work {
        Some(w) => {
            std::fs::create_dir_all(w).map_err(|e| format!("{}: {e}", w.display()))?;
            w.clone()
        }
        None => {
            let w = PathBuf::from(format!("/var/tmp/vds-powercut.{}", random_hex(4)?));
            std::fs::create_dir(&w).map_err(|e| format!("{}: {e}", w.display()))?;
            w
        }
    };
    // cache=none opens the disk with O_DIRECT, which tmpfs refuses; and a disk in RAM would
    // not be the host's stable storage.
    if fs_type(&work)? == TMPFS_MAGIC {
        return Err(format!(
            "{} is on tmpfs: the guest's disk needs a real filesystem (--work DIR)",
            work.display()
        ));
    }
    let share = work.join("share");
    std::fs::create_dir_all(share.join("out")).map_err(|e| format!("share: {e}"))?;
    let copy = |from: &Path, to: &str| {
        std::fs::copy(from, share.join(to)).map_err(|e| format!("{}: {e}", from.display()))
    };
    copy(&repo.join("scripts/guest/powercut-init"), "init")?;
    copy(&vdsd, "vdsd")?;
    let token = random_hex(24)?;
    std::fs::write(share.join("vdsd.conf"), format!("api_token = {token}\n"))
        .map_err(|e| format!("vdsd.conf: {e}"))?;
    let disk = work.join("data.img");
    let f = std::fs::File::create(&disk).map_err(|e| format!("{}: {e}", disk.display()))?;
    f.set_len(DISK_BYTES)
        .map_err(|e| format!("{}: {e}", disk.display()))?;
    let (api_port, portal_port) = free_ports()?;
    Ok(Ctx {
        qemu,
        image,
        work,
        share,
        disk,
        api_port,
        portal_port,
        token,
    })
}

/// A running guest; dropping it kills QEMU.
struct Guest {
    child: Child,
    /// Seconds from QEMU's start to vdsd ready in the guest.
    boot_secs: f64,
    /// e2fsck -p's exit code on this boot (0 clean, 1 repaired).
    fsck: i32,
}

impl Guest {
    /// The power cut: SIGKILL of QEMU, by pid.
    fn cut(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.cut();
    }
}

/// The daemon in the guest as the checks see it: API and portal through `hostfwd`, its data
/// dir as the guest listed it when vdsd became ready (before any change of the round).
struct GuestArray {
    api: SocketAddr,
    portal: SocketAddr,
    token: String,
    agent: ureq::Agent,
    /// path → (find's type letter, size)
    files: BTreeMap<String, (String, u64)>,
}

impl Array for GuestArray {
    fn portal(&self) -> SocketAddr {
        self.portal
    }
    fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Option<(u16, Value)> {
        let url = format!("http://{}{path}", self.api);
        bearer_call(&self.agent, &url, &self.token, method, body)
    }
    fn file_len(&self, path: &str) -> Option<u64> {
        self.files
            .get(path)
            .filter(|(t, _)| t == "f")
            .map(|(_, n)| *n)
    }
    fn lun_dir_entries(&self) -> Vec<PathBuf> {
        let dir = Path::new("/data/vds/luns");
        self.files
            .keys()
            .map(PathBuf::from)
            .filter(|p| p.parent() == Some(dir))
            .collect()
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// The guest image dir: `VDS_GUEST_IMAGE` when set (scripts/test resolves the image once for
/// the whole run, so a mirror update during the run does not build a second one), else what
/// `scripts/guest-image` prints (building it if needed).
fn guest_image(repo: &Path) -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("VDS_GUEST_IMAGE").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let script = repo.join("scripts/guest-image");
    let out = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!("scripts/guest-image exited with {}", out.status));
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or("")
            .trim(),
    ))
}

/// QEMU's accelerator, as `scripts/guest.py` chooses it: `VDS_GUEST_ACCEL` (kvm… or a TCG
/// spec) if set; else KVM when guest.py's probe found that KVM boots this image (its verdict in
/// `<image>/kvm-probe`, one line `QEMU version|host kernel|kvm or tcg`); else TCG. The test
/// command runs guest.py first, so the probe has run by then.
fn accel(qemu: &Path, image: &Path) -> Vec<String> {
    let kvm = || ["-accel", "kvm", "-cpu", "host"].map(String::from).to_vec();
    let tcg = |spec: &str| vec!["-accel".to_string(), spec.to_string()];
    if let Ok(a) = std::env::var("VDS_GUEST_ACCEL") {
        return if a.starts_with("kvm") { kvm() } else { tcg(&a) };
    }
    let version = Command::new(qemu)
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default();
    let release = read(Path::new("/proc/sys/kernel/osrelease"));
    let verdict = format!("{version}|{}|kvm", release.trim());
    if read(&image.join("kvm-probe")).lines().any(|l| l == verdict) {
        kvm()
    } else {
        tcg("tcg,thread=multi")
    }
}

/// Boots the guest (boot number `n`) and waits until vdsd in it is ready.
fn boot(ctx: &Ctx, n: usize) -> Result<(Guest, GuestArray), String> {
    let out = ctx.share.join("out");
    std::fs::write(
        ctx.share.join("env"),
        format!(
            "BOOT={n}\nAPI_PORT={}\nPORTAL_PORT={}\n",
            ctx.api_port, ctx.portal_port
        ),
    )
    .map_err(|e| format!("env: {e}"))?;
    let accel = accel(&ctx.qemu, &ctx.image);
    let (hp, ha) = (ctx.portal_port, ctx.api_port);
    let img = |f: &str| ctx.image.join(f).display().to_string();
    let mut cmd = Command::new(&ctx.qemu);
    cmd.args(&accel)
        .args(["-m", "1024", "-smp", "2", "-nodefaults"])
        .args(["-no-user-config", "-kernel", &img("vmlinuz")])
        .args(["-initrd", &img("initrd.img"), "-append"])
        .arg("root=/dev/vda rw console=ttyS0 init=/sbin/vds-init panic=-1 loglevel=4")
        .arg("-drive")
        .arg(format!(
            "file={},format=raw,if=virtio,snapshot=on",
            img("root.img")
        ))
        .arg("-drive")
        .arg(format!(
            "file={},format=raw,if=virtio,cache=none,aio=threads",
            ctx.disk.display()
        ))
        .arg("-netdev")
        .arg(format!(
            "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{hp}-10.0.2.15:{hp},\
             hostfwd=tcp:127.0.0.1:{ha}-10.0.2.15:{ha}"
        ))
        .args(["-device", "virtio-net-pci,netdev=n0", "-virtfs"])
        .arg(format!(
            "local,path={},mount_tag=host,security_model=none",
            ctx.share.display()
        ))
        .args(["-display", "none", "-serial"])
        .arg(format!(
            "file:{}",
            ctx.work.join(format!("console-{n}.log")).display()
        ))
        .args(["-monitor", "none", "-no-reboot"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(
            std::fs::File::create(ctx.work.join(format!("qemu-{n}.log")))
                .map_err(|e| format!("qemu log: {e}"))?,
        );
    // SAFETY: the closure runs in the child between fork and exec and only calls prctl(2),
    // which is async-signal-safe; it makes the kernel SIGKILL QEMU if this process dies.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let t0 = Instant::now();
    let child = cmd.spawn().map_err(|e| format!("qemu: {e}"))?;
    let mut g = Guest {
        child,
        boot_secs: 0.0,
        fsck: -1,
    };
    let timeout = Duration::from_secs(
        std::env::var("VDS_POWERCUT_BOOT_TIMEOUT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(180),
    );
    let ready = out.join(format!("ready-{n}"));
    loop {
        if ready.exists() {
            break;
        }
        let fail = read(&out.join(format!("fail-{n}")));
        if !fail.is_empty() {
            return Err(format!("boot {n}: the guest says: {}", fail.trim()));
        }
        if let Ok(Some(st)) = g.child.try_wait() {
            return Err(format!(
                "boot {n}: QEMU exited with {st}: {}",
                read(&ctx.work.join(format!("qemu-{n}.log"))).trim()
            ));
        }
        if t0.elapsed() > timeout {
            return Err(format!(
                "boot {n}: vdsd not ready in the guest after {} s (see {})",
                timeout.as_secs(),
                ctx.work.join(format!("console-{n}.log")).display()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    g.boot_secs = t0.elapsed().as_secs_f64();
    g.fsck = read(&out.join(format!("fsck-{n}")))
        .trim()
        .parse()
        .unwrap_or(-1);
    // 0: clean; 1: errors corrected (journal replay may report it); more: damage e2fsck could
    // not mend on its own, which a filesystem on a disk that honours flushes never shows.
    if !(0..=1).contains(&g.fsck) {
        return Err(format!(
            "boot {n}: e2fsck -p exited {}: {}",
            g.fsck,
            read(&out.join(format!("fsck-{n}.log"))).trim()
        ));
    }
    let mut files = BTreeMap::new();
    for line in read(&out.join(format!("files-{n}"))).lines() {
        let mut it = line.splitn(2, ' ');
        let (Some(t), Some(rest)) = (it.next(), it.next()) else {
            continue;
        };
        let Some((path, size)) = rest.rsplit_once(' ') else {
            continue;
        };
        let size = size
            .parse()
            .map_err(|_| format!("boot {n}: bad line in files-{n}: {line:?}"))?;
        files.insert(path.to_string(), (t.to_string(), size));
    }
    if files.is_empty() {
        return Err(format!(
            "boot {n}: the guest listed no files in its data dir"
        ));
    }
    let a = GuestArray {
        api: SocketAddr::from(([127, 0, 0, 1], ha)),
        portal: SocketAddr::from(([127, 0, 0, 1], hp)),
        token: ctx.token.clone(),
        agent: ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(60))
            .build(),
        files,
    };
    Ok((g, a))
}

/// The write load's LUN number on the default target: made on the first boot (an
/// acknowledged change like any other), found on every later one.
fn data_lun(d: &GuestArray, first: bool) -> u64 {
    let dt = d.default_target()["id"].as_str().unwrap().to_string();
    let found = list(&d.ok("GET", "/v1/luns", None))
        .into_iter()
        .find(|l| l["friendly_name"] == DATA_LUN);
    let lun = match found {
        Some(l) => l,
        None => {
            assert!(
                first,
                "LUN {DATA_LUN} (acknowledged on the first boot) is gone"
            );
            let ss = d.subsystem();
            let (st, v) = d.call(
                "POST",
                &format!("/v1/subsystems/{ss}/luns?wait=true"),
                Some(
                    json!({"size_bytes": DATA_LUN_BYTES, "friendly_name": DATA_LUN,
                            "targets": [dt]}),
                ),
            );
            assert_eq!(st, 201, "create {DATA_LUN}: {v}");
            v
        }
    };
    lun["lun_numbers"][&dt]
        .as_u64()
        .unwrap_or_else(|| panic!("{DATA_LUN} has no LUN number on the default target: {lun}"))
}

/// Everything the rounds carry from one boot to the next.
struct Run {
    rng: Rng,
    stream: ConfigStream,
    writes: Arc<Mutex<WriteModel>>,
    gen: u64,
    lun: u64,
}

/// Checks the array just booted against everything acknowledged; returns a summary.
fn verify(run: &mut Run, d: &GuestArray, round: usize, first: bool) -> String {
    run.lun = data_lun(d, first);
    // The first boot has nothing to check yet, and its file list predates the data LUN.
    if !first {
        run.stream.verify_after_restart(d, round);
    }
    let o = login_options(WRITER, &run.stream.model.secret);
    let c = verify_region(d.portal, &o, run.lun, &mut run.writes.lock().unwrap());
    format!(
        "{} acknowledged blocks read back, in-flight blocks landed {} / not {}",
        c.acked_blocks, c.in_flight_landed, c.in_flight_lost
    )
}

/// One round: load and changes on the running guest, the cut at a random instant, the next
/// boot and its check. Returns the guest now running and the round's report.
fn round(
    ctx: &Ctx,
    run: &mut Run,
    mut g: Guest,
    d: GuestArray,
    n: usize,
) -> Result<(Guest, GuestArray, String), String> {
    let kill_after = Duration::from_millis(1000 + run.rng.below(7000));
    let dt = d.default_target()["id"].as_str().unwrap().to_string();
    // The writer logs in before the stream may change the target's secret.
    let ini = Initiator::connect(d.portal, &login_options(WRITER, &run.stream.model.secret))
        .map_err(|e| format!("round {n}: writer login: {e}"))?;
    let (w0, c0) = (run.writes.lock().unwrap().acked_writes, run.stream.acked);
    let (l0, x0) = (run.stream.in_flight_landed, run.stream.in_flight_lost);
    let stop = Arc::new(AtomicBool::new(false));
    let load_rng = Rng(run.rng.next() | 1);
    let mut cfg_rng = Rng(run.rng.next() | 1);
    let cut_at = Instant::now() + kill_after;
    std::thread::scope(|s| -> Result<(), String> {
        let writes = run.writes.clone();
        let st2 = stop.clone();
        let gen = &mut run.gen;
        let lun = run.lun;
        let writer = s.spawn(move || write_load(ini, lun, writes, load_rng, gen, st2));
        let stream = &mut run.stream;
        let d2 = &d;
        let changes = s.spawn(move || {
            stream.run_until_gone(d2, &mut cfg_rng, &dt, cut_at + Duration::from_secs(30))
        });
        std::thread::sleep(cut_at.saturating_duration_since(Instant::now()));
        // A guest that died by itself (a panic, a reboot) was no power cut of ours.
        let died = g.child.try_wait().ok().flatten();
        g.cut();
        stop.store(true, Ordering::Relaxed);
        let w = writer.join();
        let c = changes.join();
        if let Some(st) = died {
            return Err(format!(
                "round {n}: QEMU exited by itself ({st}) before the cut"
            ));
        }
        w.map_err(|_| format!("round {n}: the write load failed (see above)"))?;
        c.map_err(|_| format!("round {n}: the configuration stream failed (see above)"))?;
        Ok(())
    })?;
    drop(g);
    let (g, d) = boot(ctx, n + 1)?;
    let verified = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        verify(run, &d, n + 1, false)
    }))
    .map_err(|_| format!("round {n}: the check after the power cut failed (see above)"))?;
    let acked = run.writes.lock().unwrap().acked_writes - w0;
    let landed = run.stream.in_flight_landed - l0;
    let lost = run.stream.in_flight_lost - x0;
    Ok((
        g,
        d,
        format!(
            "cut after {:.2} s: {acked} writes and {} changes acknowledged; change in flight \
             landed {landed} / not {lost}; {verified}",
            kill_after.as_secs_f64(),
            run.stream.acked - c0
        ),
    ))
}

fn main() {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("powercut: {e}");
            std::process::exit(2);
        }
    };
    let started = Instant::now();
    let ctx = match setup(&o) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("powercut: FAIL: {e}");
            println!("powercut: 0 passed, {} failed", o.rounds);
            std::process::exit(1);
        }
    };
    println!(
        "powercut: {} rounds; work dir {} (disk {}, cache=none); image {}",
        o.rounds,
        ctx.work.display(),
        ctx.disk.display(),
        ctx.image.display()
    );
    let mut run = Run {
        rng: Rng::from_env(),
        stream: ConfigStream::default(),
        writes: Arc::new(Mutex::new(WriteModel::default())),
        gen: 0,
        lun: 0,
    };
    let (mut passed, mut failed) = (0usize, 0usize);
    let mut boots = Vec::new();
    let first = boot(&ctx, 0).and_then(|(g, d)| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            verify(&mut run, &d, 0, true)
        }))
        .map_err(|_| "boot 0: the first check failed (see above)".to_string())
        .map(|_| (g, d))
    });
    let mut state = match first {
        Ok((g, d)) => {
            println!(
                "boot 0: ready in {:.1} s (mkfs.ext4 in the guest)",
                g.boot_secs
            );
            boots.push(g.boot_secs);
            Some((g, d))
        }
        Err(e) => {
            eprintln!("powercut: FAIL: {e}");
            None
        }
    };
    for n in 0..o.rounds {
        let Some((g, d)) = state.take() else {
            break;
        };
        let t = Instant::now();
        // A panic of a check outside the threads (an API answer that is not what it must be)
        // fails the round like any other failure.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            round(&ctx, &mut run, g, d, n)
        }))
        .unwrap_or_else(|_| Err(format!("round {n}: a check failed (see above)")));
        match r {
            Ok((g, d, report)) => {
                passed += 1;
                boots.push(g.boot_secs);
                println!(
                    "round {n}: PASS in {:.1} s (boot {:.1} s, e2fsck {}): {report}",
                    t.elapsed().as_secs_f64(),
                    g.boot_secs,
                    g.fsck
                );
                state = Some((g, d));
            }
            Err(e) => {
                failed += 1;
                println!("round {n}: FAIL: {e}");
            }
        }
    }
    drop(state);
    let not_run = o.rounds - passed - failed;
    // A failed check may have panicked holding the lock: the counts are still good.
    let m = run.writes.lock().unwrap_or_else(|e| e.into_inner());
    let mean_boot = boots.iter().sum::<f64>() / boots.len().max(1) as f64;
    println!(
        "powercut: {} writes ({} blocks) and {} configuration changes acknowledged in all; \
         changes in flight landed {} / not {}; mean boot to ready {mean_boot:.1} s; {:.1} s",
        m.acked_writes,
        m.acked_blocks,
        run.stream.acked,
        run.stream.in_flight_landed,
        run.stream.in_flight_lost,
        started.elapsed().as_secs_f64()
    );
    if failed == 0 && not_run == 0 && m.acked_writes == 0 {
        println!("powercut: FAIL: no write was ever acknowledged");
        failed += 1;
    }
    println!(
        "powercut: {passed} passed, {} failed{}",
        failed + not_run,
        if not_run > 0 {
            format!(" ({not_run} not run: the model is not trusted after a failure)")
        } else {
            String::new()
        }
    );
    if failed + not_run == 0 && !o.keep {
        let _ = std::fs::remove_dir_all(&ctx.work);
    } else {
        println!("powercut: artifacts in {}", ctx.work.display());
    }
    std::process::exit(i32::from(failed + not_run > 0));
}
