# Scenario "targetcli": a real LIO configuration moved to vds. In the guest, targetcli-fb builds
# a target on LIO (two fileio backstores, one holding a known pattern; a TPG whose portal is the
# host's vds portal address; an ACL for this initiator with mutual CHAP), saves it with
# `saveconfig`, and clears LIO. The host's `vdsctl import targetcli` then reads that
# saveconfig.json (the backing files are on the share, bind-mounted in the guest at the host's
# own path, so the file's paths are true on the host), and the guest logs in to the imported
# target through vds with the CHAP secrets it gave LIO and reads the pattern back.
set -u
. /host/lib.sh
INI=$(sed -n 's/^InitiatorName=//p' /etc/iscsi/initiatorname.iscsi)
TIQN=iqn.2003-01.org.linux-iscsi.vds-guest:imported
D=$HOST_SHARE/out/tcli
mkdir -p "$HOST_SHARE" && mount --bind /host "$HOST_SHARE" || exit 1
mkdir -p "$D"
modprobe -a configfs target_core_mod target_core_file iscsi_target_mod || exit 1
mountpoint -q /sys/kernel/config || mount -t configfs configfs /sys/kernel/config || exit 1
# targetcli asks the system bus for tcmu-runner's handlers: a bus must answer (it lists none).
mkdir -p /run/dbus && dbus-daemon --system --fork || exit 1
tcli() { targetcli "$@" </dev/null; }
# disk0: 8 MiB of a known pattern; disk1: made by LIO itself (sparse, 4 MiB).
head -c 8388608 /dev/urandom > "$D/disk0.img" || exit 1
PATTERN=$(md5sum < "$D/disk0.img" | cut -d' ' -f1)
echo "RESULT pattern md5=$PATTERN"
tcli set global auto_save_on_exit=false || exit 1
tcli /backstores/fileio create name=disk0 file_or_dev="$D/disk0.img" || exit 1
tcli /backstores/fileio create name=disk1 file_or_dev="$D/disk1.img" size=4M || exit 1
tcli /iscsi create "$TIQN" || exit 1
tcli "/iscsi/$TIQN/tpg1/luns" create /backstores/fileio/disk0 || exit 1
tcli "/iscsi/$TIQN/tpg1/luns" create /backstores/fileio/disk1 || exit 1
# The default 0.0.0.0:3260 portal (if this targetcli made one) gives way to the address the
# host's vdsd listens on, so the import finds that portal already there.
tcli "/iscsi/$TIQN/tpg1/portals" delete 0.0.0.0 3260 >/dev/null 2>&1
tcli "/iscsi/$TIQN/tpg1/portals" create "${HOST_PORTAL%:*}" "${HOST_PORTAL##*:}" || exit 1
tcli "/iscsi/$TIQN/tpg1/acls" create "$INI" || exit 1
tcli "/iscsi/$TIQN/tpg1/acls/$INI" set auth userid="$INI" password="$CHAP_SECRET" \
  mutual_userid="$TIQN" mutual_password="$MUTUAL_SECRET" || exit 1
tcli "/iscsi/$TIQN/tpg1" set attribute authentication=1 || exit 1
tcli ls / >/host/out/targetcli-ls.txt 2>&1
tcli saveconfig "$HOST_SHARE/out/saveconfig.json" || exit 1
tcli clearconfig confirm=True || exit 1
echo "RESULT saveconfig bytes=$(wc -c < /host/out/saveconfig.json)"

# The import, run by the host's vdsctl through the command channel.
vds import targetcli "$HOST_SHARE/out/saveconfig.json" >/host/out/import.txt
rc=$?
cat /host/out/import.txt
echo "RESULT import rc=$rc"
[ $rc = 0 ] || exit 1
vds --json lun list >/host/out/luns.json || exit 1

# Log in to the imported target through vds: discovery lists it at the vds portal; the login
# needs the CHAP secrets the ACL had on LIO (mutual: the target proves it knows its own).
node() { iscsiadm -m node -T "$TIQN" -p "$PORTAL" "$@"; }
iscsiadm -m discovery -t st -p "$PORTAL" | tee /host/out/discovery.txt || exit 1
grep -q "^$PORTAL,[0-9]* $TIQN\$" /host/out/discovery.txt || { echo "discovery did not list $TIQN"; exit 1; }
node -o update -n node.session.auth.authmethod -v CHAP || exit 1
node -o update -n node.session.auth.username -v "$INI" || exit 1
node -o update -n node.session.auth.password -v "$CHAP_SECRET" || exit 1
node -o update -n node.session.auth.username_in -v "$TIQN" || exit 1
node -o update -n node.session.auth.password_in -v "$MUTUAL_SECRET" || exit 1
node --login || exit 1
# The two LUNs: LUN 0 holds the pattern (8 MiB), LUN 1 is 4 MiB.
for _ in $(seq 1 50); do
  [ "$(lsscsi | grep -c VDS)" -ge 2 ] && break
  sleep 0.2
done
lsscsi -s | tee /host/out/lsscsi.txt
DISK0=$(lsscsi | awk '/VDS/ && $0 ~ /:0\]/ {print $NF; exit}')
DISK1=$(lsscsi | awk '/VDS/ && $0 ~ /:1\]/ {print $NF; exit}')
[ -b "$DISK0" ] && [ -b "$DISK1" ] || { echo "LUN disks missing: $DISK0 $DISK1"; exit 1; }
echo "RESULT sizes lun0=$(blockdev --getsize64 "$DISK0") lun1=$(blockdev --getsize64 "$DISK1")"
GOT=$(dd if="$DISK0" bs=1M count=8 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)
echo "RESULT read md5=$GOT"
# A write through vds lands in the adopted file.
head -c 65536 /dev/urandom > /tmp/w.bin
dd if=/tmp/w.bin of="$DISK1" bs=64k count=1 oflag=direct conv=fsync 2>/dev/null || exit 1
W=$(md5sum < /tmp/w.bin | cut -d' ' -f1)
echo "RESULT wrote md5=$W"
node --logout || exit 1
sync
F=$(head -c 65536 "$D/disk1.img" | md5sum | cut -d' ' -f1)
echo "RESULT file md5=$F"
[ "$GOT" = "$PATTERN" ] && [ "$F" = "$W" ] || exit 1
exit 0
