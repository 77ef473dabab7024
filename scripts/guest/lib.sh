# Helpers the scenarios source. vds ARGS...: runs `vdsctl ARGS` on the host through the command
# channel (guestfwd 10.0.2.101:80 -> the driver's listener), prints its output, returns its status.
vds() {
  local line
  exec 9<>/dev/tcp/10.0.2.101/80 || return 3
  printf '%s\n' "$*" >&9
  local out; out=$(cat <&9); exec 9<&-
  printf '%s\n' "$out" | sed '$d'
  line=$(printf '%s\n' "$out" | tail -1)
  return "${line#rc=}"
}
# login_target: discovery through the forwarded portal, then login to the node record it made, as
# a real host does. The portal advertises the forwarded address (vdsd --portal ...,advertise=), so
# SendTargets lists "$PORTAL,1" and the record discovery creates is the one to log in to.
login_target() {
  iscsiadm -m discovery -t st -p "$PORTAL" | tee /host/out/discovery.txt || return 1
  grep -q "^$PORTAL,1 $IQN\$" /host/out/discovery.txt \
    || { echo "discovery did not list $IQN at $PORTAL"; return 1; }
  iscsiadm -m node -T "$IQN" -p "$PORTAL" --login || return 1
  wait_disk
}
# wait_disk: waits (10 s at most) until the LUN's disk node exists, which the kernel makes
# only once its probe (partition scan included) is done: a logout before that fails the
# probe's reads ("Buffer I/O error ... async page read" in dmesg).
wait_disk() {
  for _ in $(seq 1 50); do
    DISK=$(lsscsi | awk '/VDS/ && /LUN/ {print $NF; exit}')
    [ -n "$DISK" ] && [ -b "$DISK" ] && return 0
    sleep 0.2
  done
  echo "no VDS LUN disk after login"; return 1
}
# fio_json NAME FIO-ARGS...: runs fio with JSON output into /host/out/NAME.json (the driver reads
# its error counts and latencies), prints its status line, returns fio's status.
fio_json() {
  local name=$1; shift
  fio --output-format=json --output="/host/out/$name.json" --name="$name" "$@"
  local rc=$?
  echo "RESULT fio $name rc=$rc"
  return $rc
}
# wait_until SECONDS CMD...: runs CMD every 0.5 s until it succeeds; fails after SECONDS.
wait_until() {
  local end=$(( $(date +%s) + $1 )); shift
  until "$@"; do
    [ "$(date +%s)" -ge "$end" ] && { echo "timed out waiting for: $*"; return 1; }
    sleep 0.5
  done
}
# lun_status LUN: the LUN's status as `vdsctl lun list` shows it.
lun_status() { vds lun list | awk -v n="$1" '$2 == n {print $6}'; }
# rescan: asks the kernel to re-read every SCSI device of every session (capacity, VPD).
rescan() { iscsiadm -m session --rescan >/dev/null; }
