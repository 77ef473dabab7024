#!/usr/bin/env python3
"""Guest harness driver: runs scenarios in a Debian 12 guest (Linux kernel initiator) against vdsd.

Usage: scripts/guest.py [--bin DIR] [--artifacts DIR] [--timeout SECS] [SCENARIO...]
Scenarios are scripts/guest/scenarios/NAME.sh (default: all of them, in SCENARIOS order).
For each scenario: a fresh vdsd (temp data dir, portal and API on 127.0.0.1 high ports), the
guest booted under QEMU with the scenario, host-side assertions on what it wrote to the share.
Exits 0 when every scenario passed; a missing tool is a failure, never a skip.
Design and timings: docs/TESTING.md, "Guest harness".
"""
import argparse, json, os, re, secrets, shlex, shutil, signal, socket, subprocess, sys, tempfile, threading, time

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
                out, rc = self.run(shlex.split(line))
            except Exception as e:  # noqa: BLE001 - reported to the guest and logged
                out, rc = "command channel: %s\n" % e, 125
            with open(self.logpath, "a") as lg:
                lg.write("%.3f $ vdsctl %s\n%s[rc=%d]\n" % (time.time(), line, out, rc))
            conn.sendall((out if out.endswith("\n") or not out else out + "\n").encode()
                         + ("rc=%d\n" % rc).encode())

    def vdsctl_run(self, args):
        # the token in the environment, not in argv where `ps` shows it
        r = subprocess.run([self.vdsctl, "--api", self.api] + args,
                           env=dict(os.environ, VDS_TOKEN=self.token),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        return r.stdout.decode(errors="replace"), r.returncode

    def run(self, args):
        if args[:1] == ["@allocated"]:
            return self.allocated(args[1:])
        return self.vdsctl_run(args)

    def allocated(self, args):
        """`@allocated LUN`: the bytes the LUN's backing file has allocated on the host
        (st_blocks * 512), which the guest cannot see; the path comes from `vdsctl lun show`."""
        if len(args) != 1:
            return "usage: @allocated LUN\n", 2
        out, rc = self.vdsctl_run(["--json", "lun", "show", args[0]])
        if rc != 0:
            return out, rc
        path = json.loads(out)["backing"]["path"]
        return "%d\n" % (os.stat(path).st_blocks * 512), 0

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


TCG = ["-accel", "tcg,thread=multi"]
KVM = ["-accel", "kvm", "-cpu", "host"]
ACCEL = TCG  # chosen once per run by choose_accel()


def choose_accel(image, art):
    """KVM when it boots this guest, else TCG. VDS_GUEST_ACCEL=kvm|tcg decides without a probe.
    The probe boots the image under KVM with an init that only reports and powers off, bounded
    by 25 s (a working KVM needs ~3 s; the nested KVM of some hosts hangs silently). Its verdict
    is kept next to the image, keyed by QEMU's version and the host kernel, so it costs that
    once per machine."""
    forced = os.environ.get("VDS_GUEST_ACCEL", "")
    if forced:
        return (KVM if forced.startswith("kvm") else TCG), "VDS_GUEST_ACCEL=" + forced
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return TCG, "no usable /dev/kvm"
    qemu = need("qemu-system-x86_64")
    version = subprocess.run([qemu, "--version"], stdout=subprocess.PIPE).stdout.decode().split("\n")[0]
    key = "%s|%s" % (version, os.uname().release)
    verdict_file = os.path.join(image, "kvm-probe")
    for line in read(verdict_file).splitlines():
        if line.startswith(key + "|"):
            v = line.rsplit("|", 1)[1]
            return (KVM if v == "kvm" else TCG), "KVM probe (cached): %s" % v
    share = os.path.join(art, "kvm-probe")
    os.makedirs(share, exist_ok=True)
    with open(os.path.join(share, "init"), "w") as f:
        f.write("#!/bin/sh\necho 'guest: kvm works'\necho o > /proc/sysrq-trigger; sleep 10\n")
    os.chmod(os.path.join(share, "init"), 0o755)
    console = os.path.join(share, "console.log")
    cmd = [qemu] + KVM + ["-m", "512", "-nodefaults", "-no-user-config",
                          "-kernel", os.path.join(image, "vmlinuz"),
                          "-initrd", os.path.join(image, "initrd.img"),
                          "-append", "root=/dev/vda ro console=ttyS0 init=/sbin/vds-init panic=-1",
                          "-drive", "file=%s,format=raw,if=virtio,snapshot=on" % os.path.join(image, "root.img"),
                          "-virtfs", "local,path=%s,mount_tag=host,security_model=none" % share,
                          "-display", "none", "-serial", "file:" + console, "-monitor", "none",
                          "-no-reboot"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                         start_new_session=True)
    PROCS.append(p)
    t0 = time.time()
    try:
        p.wait(25)
    except subprocess.TimeoutExpired:
        pass
    cleanup()
    v = "kvm" if "guest: kvm works" in read(console) else "tcg"
    with open(verdict_file, "a") as f:
        f.write("%s|%s\n" % (key, v))
    return (KVM if v == "kvm" else TCG), "KVM probe: %s in %.1f s" % (v, time.time() - t0)


def boot_guest(image, share, art, pport, pport2, cport, secret, timeout):
    qemu = need("qemu-system-x86_64")
    net = ("user,id=n0,restrict=on,"
           "guestfwd=tcp:10.0.2.100:3260-cmd:%s 127.0.0.1 %d,"
           "guestfwd=tcp:10.0.2.102:3260-cmd:%s 127.0.0.1 %d,"
           "guestfwd=tcp:10.0.2.101:80-cmd:%s 127.0.0.1 %d auth"
           % (RELAY, pport, RELAY, pport2, RELAY, cport))
    cmd = [qemu] + ACCEL + ["-m", "1024", "-smp", "2", "-nodefaults", "-no-user-config",
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
    env = dict(os.environ, VDS_GUEST_CHANNEL_SECRET=secret,
               VDS_GUEST_RELAY_LOG=os.path.join(art, "relay.log"))
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
    if "10.0.2.100:3260,1 %s" % ctx["iqn"] not in read(os.path.join(out, "discovery.txt")).splitlines():
        fails.append("discovery did not list %s at the advertised 10.0.2.100:3260" % ctx["iqn"])
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


def results(out):
    """The scenario's `RESULT key=value ...` lines, as one dict (later keys win)."""
    r = {}
    for line in read(os.path.join(out, "scenario.log")).splitlines():
        if line.startswith("RESULT "):
            for word in line.split()[1:]:
                if "=" in word:
                    k, v = word.split("=", 1)
                    r[k] = v
            r.setdefault("lines", []).append(line)
    return r


def named_results(out):
    """The scenario's `RESULT NAME key=value ...` lines, as NAME -> {key: value}."""
    r = {}
    for line in read(os.path.join(out, "scenario.log")).splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "RESULT":
            r[words[1]] = dict(w.split("=", 1) for w in words[2:] if "=" in w)
    return r


def fio_job(out, name, fails):
    """The one job of fio's JSON output /host/out/NAME.json, with its error checked."""
    try:
        with open(os.path.join(out, name + ".json")) as f:
            text = f.read()
        job = json.loads(text[text.index("{"):])["jobs"][0]  # fio may print notes first
    except (OSError, ValueError, KeyError, IndexError) as e:
        fails.append("fio %s: no JSON result (%s)" % (name, e))
        return None
    if job.get("error", 0) != 0:
        fails.append("fio %s: error %s" % (name, job["error"]))
    return job


def assert_fio(out, ctx):
    fails = []
    for name, size in (("rand4k", 32 << 20), ("seqbig", 64 << 20)):
        job = fio_job(out, name, fails)
        if not job:
            continue
        w, r = job["write"]["io_bytes"], job["read"]["io_bytes"]
        if w < size:
            fails.append("fio %s wrote %d bytes, expected %d" % (name, w, size))
        if r != w:
            fails.append("fio %s verified %d of %d bytes written" % (name, r, w))
    return fails


def max_lat_s(job):
    return max(job[d]["clat_ns"]["max"] for d in ("read", "write")) / 1e9


def channel_log(art):
    """The commands the command channel ran, in order: (command line, exit status)."""
    entries, cmd = [], None
    for ln in read(os.path.join(art, "command-channel.log")).splitlines():
        m = re.match(r"^[0-9]+\.[0-9]+ \$ vdsctl (.*)$", ln)
        if m:
            cmd = m.group(1)
        m = re.search(r"\[rc=(-?[0-9]+)\]$", ln)
        if m and cmd is not None:
            entries.append((cmd, int(m.group(1))))
            cmd = None
    return entries


def channel_ok(art, command):
    """Whether the command channel ran `vdsctl COMMAND` with status 0."""
    return (command, 0) in channel_log(art)


def assert_notready(out, ctx):
    fails = []
    job = fio_job(out, "notready", fails)
    if job:
        if job["write"]["io_bytes"] <= 0:
            fails.append("fio wrote nothing")
        if max_lat_s(job) < 8:
            fails.append("the slowest command took %.1f s: I/O did not wait through NOT_READY"
                         % max_lat_s(job))
    for c in ("lun set-status default not_ready", "lun set-status default online"):
        if not channel_ok(ctx["art"], c):
            fails.append("vdsctl %s did not succeed" % c)
    if "RESULT status during: not_ready" not in results(out).get("lines", []):
        fails.append("the LUN was not NOT_READY during the pause")
    return fails


def assert_same_files(out, fails):
    w = read(os.path.join(out, "written.sha256")).splitlines()
    if not w or w != read(os.path.join(out, "read.sha256")).splitlines():
        fails.append("the files read back differ from those written (or none were written)")


def assert_offline(out, ctx):
    fails = []
    r = results(out)
    lines = r.get("lines", [])
    if "RESULT status during: offline" not in lines:
        fails.append("the LUN was not OFFLINE")
    reads = [ln for ln in lines if ln.startswith("RESULT read_while_offline")]
    if not reads or "rc=0 " in reads[0]:
        fails.append("a read while OFFLINE did not fail: %s" % reads)
    elif float(reads[0].split()[-2]) > 5:
        fails.append("a read while OFFLINE took %s s to fail (OFFLINE fails fast)" % reads[0].split()[-2])
    if any(ln.startswith("RESULT write_while_offline rc=0") for ln in lines) \
            or not any(ln.startswith("RESULT write_while_offline") for ln in lines):
        fails.append("a write while OFFLINE did not fail")
    tur = read(os.path.join(out, "tur-after-online.txt")).lower()
    if "RESULT first_tur_after_online rc=0" in lines or "medium may have changed" not in tur:
        fails.append("the first command after ONLINE did not meet UNIT ATTENTION 28/00: %r" % tur[:300])
    if "RESULT second_tur_after_online rc=0" not in lines:
        fails.append("the command after the UNIT ATTENTION did not succeed")
    if "RESULT read_after_online rc=0" not in lines:
        fails.append("the disk did not work again after ONLINE and a rescan")
    if "Logical unit not ready" not in read(os.path.join(out, "dmesg.txt")) \
            and "not ready" not in read(os.path.join(out, "dmesg.txt")).lower():
        fails.append("the kernel did not report the LUN not ready")
    assert_same_files(out, fails)
    return fails


def assert_extend(out, ctx):
    fails = []
    r = results(out)
    if int(r.get("size_after", 0)) != int(r.get("size_before", -1)) + (512 << 20):
        fails.append("size %s -> %s, expected +512 MiB" % (r.get("size_before"), r.get("size_after")))
    if "capacity data has changed" not in read(os.path.join(out, "dmesg.txt")).lower():
        fails.append("the kernel did not log the capacity change (UA 2A/09)")
    assert_same_files(out, fails)
    return fails


def assert_fstrim(out, ctx):
    fails = []
    r = results(out)
    if int(r.get("discard_max_bytes", 0)) <= 0:
        fails.append("the kernel sees no discard support (VPD B0/B2)")
    a0, a1, a2 = (int(r.get(k, -1)) for k in ("empty", "written", "trimmed"))
    if a1 - a0 < 200 << 20:
        fails.append("writing 256 MiB grew the backing file by %d bytes only" % (a1 - a0))
    if a1 - a2 < 200 << 20:
        fails.append("fstrim shrank the backing file by %d bytes only (%d -> %d)" % (a1 - a2, a1, a2))
    return fails


def assert_chap(out, ctx):
    fails = []
    r = results(out)
    want = {"none_after_secret": "24", "oneway_wrong": "24", "oneway_right": "0",
            "mutual_right": "0", "none_after_clear": "0"}
    got = {}
    for ln in r.get("lines", []):
        if ln.startswith("RESULT login "):
            got[ln.split()[2]] = ln.split("rc=")[1]
    for k, v in want.items():
        if got.get(k) != v:
            fails.append("login %s: iscsiadm status %s, expected %s" % (k, got.get(k), v))
    if got.get("mutual_wrong") in (None, "0") or \
            "incorrect CHAP response from target" not in read(os.path.join(out, "iscsid.log")):
        fails.append("a target that cannot prove the mutual secret was not refused by iscsid (%s)"
                     % got.get("mutual_wrong"))
    return fails


def assert_targetcli(out, ctx):
    """The saveconfig.json is LIO's own, the import took it whole, and the pattern written
    before LIO served it reads back through vds (and a write through vds lands in the file)."""
    fails = []
    r = named_results(out)
    try:
        with open(os.path.join(out, "saveconfig.json")) as f:
            saved = json.load(f)
        plugins = sorted(so.get("plugin") for so in saved.get("storage_objects", []))
        if plugins != ["fileio", "fileio"] or not saved.get("targets"):
            fails.append("saveconfig.json: storage objects %s, %d targets" % (plugins, len(saved.get("targets", []))))
    except (OSError, ValueError) as e:
        fails.append("no saveconfig.json written by targetcli: %s" % e)
    if r.get("import", {}).get("rc") != "0":
        fails.append("vdsctl import targetcli: status %s (see import.txt)" % r.get("import", {}).get("rc"))
    tcli = os.path.join(out, "tcli")
    try:
        with open(os.path.join(out, "luns.json")) as f:
            luns = {l["friendly_name"]: l for l in json.load(f)}
        for name, size in (("disk0", 8 << 20), ("disk1", 4 << 20)):
            lun = luns.get(name)
            want = os.path.join(tcli, name + ".img")
            if not lun:
                fails.append("no LUN %s after the import (LUNs: %s)" % (name, sorted(luns)))
            elif lun["backing"].get("path") != want or lun["size_bytes"] != size:
                fails.append("LUN %s: backing %s, %d bytes; expected the adopted %s, %d bytes"
                             % (name, lun["backing"].get("path"), lun["size_bytes"], want, size))
    except (OSError, ValueError, KeyError) as e:
        fails.append("no LUN list after the import: %s" % e)
    if r.get("sizes") != {"lun0": str(8 << 20), "lun1": str(4 << 20)}:
        fails.append("the guest saw LUN sizes %s" % r.get("sizes"))
    pattern = r.get("pattern", {}).get("md5")
    if not pattern or r.get("read", {}).get("md5") != pattern:
        fails.append("LUN 0 read through vds %s, LIO's file held %s" % (r.get("read"), pattern))
    if not r.get("wrote") or r.get("file", {}).get("md5") != r["wrote"].get("md5"):
        fails.append("the write through vds is not in the adopted file (%s vs %s)" % (r.get("wrote"), r.get("file")))
    return fails


def assert_multipath(out, ctx):
    fails = []
    job = fio_job(out, "mpath", fails)
    if job and job["write"]["io_bytes"] <= 0:
        fails.append("fio wrote nothing")
    r = results(out)
    if r.get("paths_active_during") != "1":
        fails.append("with the portal OFFLINE, %s paths were active (expected 1)" % r.get("paths_active_during"))
    if r.get("paths_active_after") != "2":
        fails.append("after ONLINE, %s paths were active (expected 2)" % r.get("paths_active_after"))
    if "reinstated" not in read(os.path.join(out, "multipathd.log")):
        fails.append("multipathd did not reinstate the path")
    if not any(c.startswith("portal set-status") and c.endswith("offline") and rc == 0
               for c, rc in channel_log(ctx["art"])):
        fails.append("the portal was never set OFFLINE through vdsctl")
    return fails


def assert_alua(out, ctx):
    fails = []
    job = fio_job(out, "alua", fails)
    if job and job["write"]["io_bytes"] <= 0:
        fails.append("fio wrote nothing")
    r = results(out)
    if r.get("tpgs") != "1":
        fails.append("INQUIRY TPGS is %s, expected 1 (implicit ALUA)" % r.get("tpgs"))
    d1, d2 = r.get("d1"), r.get("d2")

    def states(when, disk):
        v = r.get("rtpg_%s_%s" % (when, disk), "")
        return dict(x.split(":", 1) for x in v.split(",") if ":" in x)

    want = {
        # The LUN is active on the first controller (group 1); the second is non-optimized.
        "before": ({"0x1": "active/optimized", "0x2": "active/non_optimized"}, (d1, d2)),
        # The first controller OFFLINE: its group is unavailable, the LUN failed over to group 2.
        # Read through the survivor's path (the other port answers too, but need not).
        "during": ({"0x1": "unavailable", "0x2": "active/optimized"}, (d2,)),
        # Back ONLINE: failback is manual, so group 1 is non-optimized now.
        "after": ({"0x1": "active/non_optimized", "0x2": "active/optimized"}, (d1, d2)),
    }
    for when, (expect, disks) in want.items():
        for disk in disks:
            got = states(when, disk)
            if got != expect:
                fails.append("REPORT TARGET PORT GROUPS %s through %s: %s, expected %s"
                             % (when, disk, got, expect))
    if r.get("prio_groups_before") != "2":
        fails.append("multipath made %s priority groups from the ALUA states (expected 2)"
                     % r.get("prio_groups_before"))
    if r.get("paths_active_after") != "2":
        fails.append("after ONLINE, %s paths were active (expected 2)" % r.get("paths_active_after"))
    if not any(c.startswith("controller set-status") and c.endswith("offline") and rc == 0
               for c, rc in channel_log(ctx["art"])):
        fails.append("the controller was never set OFFLINE through vdsctl")
    return fails


# Kernel messages that mean an error reached the block layer or the filesystem.
DMESG_ERRORS = ("I/O error", "EXT4-fs error", "Buffer I/O error", "detected conn error", "Aborting journal")


def dmesg_errors(out, allowed):
    return [ln for ln in read(os.path.join(out, "dmesg.txt")).splitlines()
            if any(e in ln for e in DMESG_ERRORS) and not any(re.search(a, ln) for a in allowed)]


# name -> (host-side assertions, kernel error lines that scenario expects). An expected line is
# one on a SCSI disk (sdX) the scenario makes fail on purpose; an error on the filesystem, on a
# buffer or on the multipath map is never expected.
SCENARIOS = {
    "login": (assert_login, ()),
    "fs": (assert_fs, ()),
    "fio": (assert_fio, ()),
    "notready": (assert_notready, ()),
    "offline": (assert_offline, (r"I/O error, dev sd[a-z]+,",)),
    "multipath": (assert_multipath, (r"I/O error, dev sd[a-z]+,", r"detected conn error \(1020\)")),
    # The unavailable port answers 02/04/0C: the path's commands fail over, the map's do not.
    "alua": (assert_alua, (r"I/O error, dev sd[a-z]+,", r"detected conn error \(1020\)")),
    "extend": (assert_extend, ()),
    "fstrim": (assert_fstrim, ()),
    # Logging out closes the connection from both ends at once; the kernel may see the target's
    # close first and log 1020 (ISCSI_ERR_TCP_CONN_CLOSE) for a session it was ending anyway.
    "chap": (assert_chap, (r"detected conn error \(1020\)",)),
    "targetcli": (assert_targetcli, ()),
}


def run_scenario(name, args, image, art):
    os.makedirs(art, exist_ok=True)
    share = os.path.join(art, "share")
    os.makedirs(os.path.join(share, "out"))
    shutil.copy(os.path.join(HERE, "guest", "init"), share)
    shutil.copy(os.path.join(HERE, "guest", "lib.sh"), share)
    shutil.copy(os.path.join(HERE, "guest", "scenarios", name + ".sh"), os.path.join(share, "scenario.sh"))
    os.chmod(os.path.join(share, "init"), 0o755)
    ctx = {"iqn": "iqn.2026-11.local.vds:default", "files": args.files, "art": art}
    data = None
    chan = None
    try:
        vp, data, pport, aport, token = start_vdsd(os.path.join(args.bin, "vdsd"), art)
        chan = CommandChannel(os.path.join(args.bin, "vdsctl"), "http://127.0.0.1:%d" % aport,
                              token, os.path.join(art, "command-channel.log"))
        # The second portal (multipath) is made by the scenario on a port chosen here, which the
        # guest reaches as 10.0.2.102:3260. CHAP secrets are fresh per run (12-16 bytes, §10).
        pport2 = free_ports(1)[0]
        with open(os.path.join(share, "env"), "w") as f:
            f.write("SCENARIO=%s\nIQN=%s\nPORTAL=10.0.2.100:3260\nFILES=%d\n"
                    "PORTAL2=10.0.2.102:3260\nHOST_PORTAL2=127.0.0.1:%d\n"
                    "CHAP_SECRET=%s\nMUTUAL_SECRET=%s\n"
                    "HOST_PORTAL=127.0.0.1:%d\nHOST_SHARE=%s\n"
                    % (name, ctx["iqn"], args.files, pport2, secrets.token_hex(8),
                       secrets.token_hex(7), pport, share))
        log("%s: vdsd pid %d portal 127.0.0.1:%d api 127.0.0.1:%d; booting the guest"
            % (name, vp.pid, pport, aport))
        secs, qrc = boot_guest(image, share, art, pport, pport2, chan.port, chan.secret,
                               args.timeout)
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
    check, allowed = SCENARIOS[name]
    fails += check(out, ctx)
    errs = dmesg_errors(out, allowed)
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
    ap.add_argument("scenarios", nargs="*", default=list(SCENARIOS))
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    for s in args.scenarios:
        if s not in SCENARIOS:
            raise SystemExit("guest.py: unknown scenario %s (known: %s)" % (s, " ".join(SCENARIOS)))
    for b in ("vdsd", "vdsctl"):
        if not os.access(os.path.join(args.bin, b), os.X_OK):
            raise SystemExit("guest.py: FAIL: %s/%s missing (cargo build --release -p vdsd -p vdsctl)" % (args.bin, b))
    need("qemu-system-x86_64")
    art = args.artifacts or tempfile.mkdtemp(prefix="vds-guest.")
    os.makedirs(art, exist_ok=True)
    t0 = time.time()
    # One test run, one image: scripts/test resolves it once and passes it on, so that a mirror
    # update in the middle of a run does not build a second image for the power-cut step.
    image = os.environ.get("VDS_GUEST_IMAGE", "")
    if not image:
        r = subprocess.run([os.path.join(HERE, "guest-image")], stdout=subprocess.PIPE, timeout=1800)
        if r.returncode != 0:
            raise SystemExit("guest.py: FAIL: scripts/guest-image exited %d" % r.returncode)
        image = r.stdout.decode().strip().splitlines()[-1]
    for f in ("root.img", "vmlinuz", "initrd.img"):
        if not os.path.isfile(os.path.join(image, f)):
            raise SystemExit("guest.py: FAIL: guest image %s has no %s" % (image, f))
    log("image %s (%.1f s); artifacts in %s" % (image, time.time() - t0, art))
    global ACCEL
    ACCEL, why = choose_accel(image, art)
    log("accelerator: %s (%s)" % (" ".join(ACCEL[1:]), why))
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
