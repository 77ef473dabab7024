#!/usr/bin/env python3
"""Guest harness driver: runs scenarios in a Debian 12 guest (Linux kernel initiator) against vdsd.

Usage: scripts/guest.py [--bin DIR] [--artifacts DIR] [--timeout SECS] [SCENARIO...]
Scenarios are scripts/guest/scenarios/NAME.sh (default: all of them, in ASSERT order).
For each scenario: a fresh vdsd (temp data dir, portal and API on 127.0.0.1 high ports), the
guest booted under QEMU with the scenario, host-side assertions on what it wrote to the share.
Exits 0 when every scenario passed; a missing tool is a failure, never a skip.
Design and timings: docs/TESTING.md, "Guest harness".
"""
import argparse, os, secrets, shlex, shutil, signal, socket, subprocess, sys, tempfile, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RELAY = os.path.join(HERE, "guest", "relay")
PROCS = []  # every child started, killed by pid in cleanup()


def log(msg):
    print("guest.py: " + msg, flush=True)


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def cleanup():
    for p in PROCS:
        if p.poll() is None:
            try:
                p.kill()
            except OSError:
                pass
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                pass
    PROCS.clear()


def on_signal(signum, _frame):
    cleanup()
    sys.exit(128 + signum)


class CommandChannel:
    """Host side of the guest's command channel: one connection = one line of vdsctl arguments;
    answers vdsctl's stdout+stderr and a last line "rc=N". Every command is logged."""

    def __init__(self, vdsctl, api, token, logpath):
        self.vdsctl, self.api, self.token, self.logpath = vdsctl, api, token, logpath
        self.secret = secrets.token_hex(16)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn):
        with conn:
            f = conn.makefile("rb")
            if f.readline().decode(errors="replace").strip() != self.secret:
                return  # not the guest's relay
            line = f.readline().decode(errors="replace").strip()
            try:
                args = shlex.split(line)
                # the token in the environment, not in argv where `ps` shows it
                r = subprocess.run([self.vdsctl, "--api", self.api] + args,
                                   env=dict(os.environ, VDS_TOKEN=self.token),
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
                out, rc = r.stdout.decode(errors="replace"), r.returncode
            except Exception as e:  # noqa: BLE001 - reported to the guest and logged
                out, rc = "command channel: %s\n" % e, 125
            with open(self.logpath, "a") as lg:
                lg.write("%.3f $ vdsctl %s\n%s[rc=%d]\n" % (time.time(), line, out, rc))
            conn.sendall((out if out.endswith("\n") or not out else out + "\n").encode()
                         + ("rc=%d\n" % rc).encode())

    def close(self):
        self.sock.close()


def need(tool):
    path = shutil.which(tool)
    if not path:
        raise SystemExit("guest.py: FAIL: %s not found (apt-get install -y qemu-system-x86 debootstrap)" % tool)
    return path


def start_vdsd(vdsd, art):
    data = tempfile.mkdtemp(prefix="vds-guest-data.")
    pport, aport = free_ports(2)
    out = open(os.path.join(art, "vdsd.log"), "w")
    # The guest reaches the portal only as 10.0.2.100:3260 (guestfwd): that is what
    # SendTargets must tell it (BEHAVIOUR.md §4 "Addresses in SendTargets").
    p = subprocess.Popen([vdsd, "--data-dir", data, "--api", "127.0.0.1:%d" % aport,
                          "--portal", "127.0.0.1:%d,advertise=10.0.2.100:3260" % pport],
                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    PROCS.append(p)
    deadline = time.time() + 30
    while time.time() < deadline:
        if p.poll() is not None:
            raise RuntimeError("vdsd exited with %s" % p.returncode)
        with open(os.path.join(art, "vdsd.log")) as f:
            if "vdsd: ready" in f.read():
                break
        time.sleep(0.1)
    else:
        raise RuntimeError("vdsd not ready in 30 s")
    token = open(os.path.join(data, "api-token")).read().strip()
    return p, data, pport, aport, token


def boot_guest(image, share, art, pport, cport, secret, timeout):
    qemu = need("qemu-system-x86_64")
    accel = os.environ.get("VDS_GUEST_ACCEL", "tcg,thread=multi")
    net = ("user,id=n0,restrict=on,"
           "guestfwd=tcp:10.0.2.100:3260-cmd:%s 127.0.0.1 %d,"
           "guestfwd=tcp:10.0.2.101:80-cmd:%s 127.0.0.1 %d auth" % (RELAY, pport, RELAY, cport))
    cmd = [qemu, "-accel", accel, "-m", "1024", "-smp", "2", "-nodefaults", "-no-user-config",
           "-kernel", os.path.join(image, "vmlinuz"), "-initrd", os.path.join(image, "initrd.img"),
           "-append", "root=/dev/vda rw console=ttyS0 init=/sbin/vds-init panic=-1 loglevel=4",
           "-drive", "file=%s,format=raw,if=virtio,snapshot=on" % os.path.join(image, "root.img"),
           "-netdev", net, "-device", "virtio-net-pci,netdev=n0",
           "-virtfs", "local,path=%s,mount_tag=host,security_model=none" % share,
           "-display", "none", "-serial", "file:%s" % os.path.join(art, "console.log"),
           "-monitor", "none", "-no-reboot"]
    with open(os.path.join(art, "qemu.cmd"), "w") as f:
        f.write(shlex.join(cmd) + "\n")
    t0 = time.time()
    env = dict(os.environ, VDS_GUEST_CHANNEL_SECRET=secret)
    p = subprocess.Popen(cmd, stdout=open(os.path.join(art, "qemu.log"), "w"), env=env,
                         stderr=subprocess.STDOUT, start_new_session=True)
    PROCS.append(p)
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise RuntimeError("guest timed out after %d s" % timeout)
    return time.time() - t0, p.returncode


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


# Host-side assertions on what the guest saw, one function per scenario: a list of failures.
def assert_login(out, ctx):
    fails = []
    if ctx["iqn"] not in read(os.path.join(out, "discovery.txt")):
        fails.append("discovery did not list %s" % ctx["iqn"])
    lsscsi = read(os.path.join(out, "lsscsi.txt"))
    if "VDS" not in lsscsi or "LUN" not in lsscsi:
        fails.append("lsscsi does not show VDS LUN: %r" % lsscsi)
    if "VDS" not in read(os.path.join(out, "sg_inq.txt")):
        fails.append("sg_inq does not show vendor VDS")
    lunlist = read(os.path.join(out, "vdsctl-lun-list.txt"))
    if not any(ln.split()[1:2] == ["default"] and "online" in ln.split() for ln in lunlist.splitlines()):
        fails.append("vdsctl lun list through the command channel did not list LUN default online: %r" % lunlist)
    if "size_bytes=1073741824" not in read(os.path.join(out, "scenario.log")):
        fails.append("the disk is not 1 GiB")
    return fails


def assert_fs(out, ctx):
    fails = []
    w = read(os.path.join(out, "written.sha256")).splitlines()
    r = read(os.path.join(out, "read.sha256")).splitlines()
    if len(w) != ctx["files"]:
        fails.append("%d files written, expected %d" % (len(w), ctx["files"]))
    if w != r:
        fails.append("checksums after remount differ from those written")
    if len(set(x.split()[0] for x in w if x)) != len(w):
        fails.append("files are not distinct")
    return fails


# Kernel messages that mean an error reached the block layer or the filesystem.
DMESG_ERRORS = ("I/O error", "EXT4-fs error", "Buffer I/O error", "detected conn error", "Aborting journal")


def dmesg_errors(out):
    return [ln for ln in read(os.path.join(out, "dmesg.txt")).splitlines()
            if any(e in ln for e in DMESG_ERRORS)]


ASSERT = {"login": assert_login, "fs": assert_fs}


def run_scenario(name, args, image, art):
    os.makedirs(art, exist_ok=True)
    share = os.path.join(art, "share")
    os.makedirs(os.path.join(share, "out"))
    shutil.copy(os.path.join(HERE, "guest", "init"), share)
    shutil.copy(os.path.join(HERE, "guest", "lib.sh"), share)
    shutil.copy(os.path.join(HERE, "guest", "scenarios", name + ".sh"), os.path.join(share, "scenario.sh"))
    os.chmod(os.path.join(share, "init"), 0o755)
    ctx = {"iqn": "iqn.2026-11.local.vds:default", "files": args.files}
    data = None
    chan = None
    try:
        vp, data, pport, aport, token = start_vdsd(os.path.join(args.bin, "vdsd"), art)
        chan = CommandChannel(os.path.join(args.bin, "vdsctl"), "http://127.0.0.1:%d" % aport,
                              token, os.path.join(art, "command-channel.log"))
        with open(os.path.join(share, "env"), "w") as f:
            f.write("SCENARIO=%s\nIQN=%s\nPORTAL=10.0.2.100:3260\nFILES=%d\n"
                    % (name, ctx["iqn"], args.files))
        log("%s: vdsd pid %d portal 127.0.0.1:%d api 127.0.0.1:%d; booting the guest"
            % (name, vp.pid, pport, aport))
        secs, qrc = boot_guest(image, share, art, pport, chan.port, chan.secret, args.timeout)
    except (RuntimeError, OSError) as e:
        log("%s: FAIL: %s (artifacts in %s)" % (name, e, art))
        tail = read(os.path.join(art, "console.log")).splitlines()[-15:]
        log("%s: console tail:\n  %s" % (name, "\n  ".join(tail)))
        return False
    finally:
        cleanup()
        if chan:
            chan.close()
        if data:
            shutil.rmtree(data, ignore_errors=True)
    out = os.path.join(share, "out")
    console = read(os.path.join(art, "console.log"))
    fails = []
    rc = read(os.path.join(out, "rc")).strip()
    if rc != "0":
        fails.append("scenario exited %r (see %s/scenario.log, scenario.trace)" % (rc, out))
    if "guest: done" not in console:
        fails.append("the guest did not finish (qemu exit %s; see console.log)" % qrc)
    fails += ASSERT[name](out, ctx)
    errs = dmesg_errors(out)
    if errs:  # the guest logs out before dmesg is taken, so a logout is not counted
        fails.append("kernel errors in dmesg: %s" % "; ".join(errs[:5]))
    times = read(os.path.join(out, "times")).split()
    stime = float(times[1]) - float(times[0]) if len(times) == 2 else -1
    boot = ""
    for line in console.splitlines():
        if line.startswith("guest: init at"):
            boot = line.split()[3]
    log("%s: %s in %.1f s total (guest init at %s s uptime, scenario %.1f s)"
        % (name, "PASS" if not fails else "FAIL", secs, boot or "?", stime))
    for f in fails:
        log("  %s: %s" % (name, f))
    if fails:
        log("%s: scenario output:\n  %s" % (name, "\n  ".join(read(os.path.join(out, "scenario.log")).splitlines()[-20:])))
    return not fails


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    ap.add_argument("--bin", default=os.path.join(target, "release"), help="dir with vdsd and vdsctl")
    ap.add_argument("--artifacts", default=None, help="artifacts dir (default: a new /tmp/vds-guest.*)")
    ap.add_argument("--timeout", type=int, default=300, help="per-scenario guest timeout, seconds")
    ap.add_argument("--files", type=int, default=20, help="files the fs scenario writes")
    ap.add_argument("scenarios", nargs="*", default=list(ASSERT))
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    for s in args.scenarios:
        if s not in ASSERT:
            raise SystemExit("guest.py: unknown scenario %s (known: %s)" % (s, " ".join(ASSERT)))
    for b in ("vdsd", "vdsctl"):
        if not os.access(os.path.join(args.bin, b), os.X_OK):
            raise SystemExit("guest.py: FAIL: %s/%s missing (cargo build --release -p vdsd -p vdsctl)" % (args.bin, b))
    need("qemu-system-x86_64")
    art = args.artifacts or tempfile.mkdtemp(prefix="vds-guest.")
    os.makedirs(art, exist_ok=True)
    t0 = time.time()
    r = subprocess.run([os.path.join(HERE, "guest-image")], stdout=subprocess.PIPE, timeout=1800)
    if r.returncode != 0:
        raise SystemExit("guest.py: FAIL: scripts/guest-image exited %d" % r.returncode)
    image = r.stdout.decode().strip().splitlines()[-1]
    log("image %s (%.1f s); artifacts in %s" % (image, time.time() - t0, art))
    failed = []
    try:
        for s in args.scenarios:
            if not run_scenario(s, args, image, os.path.join(art, s)):
                failed.append(s)
    finally:
        cleanup()
    log("%d passed, %d failed%s" % (len(args.scenarios) - len(failed), len(failed),
                                    (": " + " ".join(failed)) if failed else ""))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
