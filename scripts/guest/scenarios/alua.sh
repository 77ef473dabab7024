# Scenario "alua": two controllers as ALUA target port groups, seen by Linux's dm-multipath with
# `prio alua` and the kernel's ALUA device handler (scsi_dh_alua). Through the host's vdsctl: a
# second controller, a second portal on it (advertising 10.0.2.102:3260) in a second portal group
# of the target, so the target has two target ports in two groups. The LUN's active controller
# is the first, so the second's path is Active/Non-optimized: multipath puts the paths in two
# priority groups and sends I/O to the optimized one. sg_rtpg reads the states through each
# path. Under fio with verify on ext4 on the map, the first controller is set OFFLINE: its port
# turns Unavailable, vds moves the LUN to the second controller (Active/Optimized, UA 2A/06), and
# I/O goes on through the second path. Back ONLINE, the first controller is Active/Non-optimized
# (failback is manual) and both paths are up again. fio must see no error, e2fsck a clean fs.
set -u
. /host/lib.sh
CTL_A=$(vds --json controller list | tr ',' '\n' | sed -n 's/.*"id": *"\([^"]*\)".*/\1/p' | head -1)
[ -n "$CTL_A" ] || { echo "no first controller"; exit 1; }
vds controller add --name ctl-b || exit 1
TARGET=$(vds target list | awk 'NR == 2 {print $1}')
vds portal add "$HOST_PORTAL2" --advertise "$PORTAL2" --controller ctl-b || exit 1
PG2=$(vds --json portal-group create "$TARGET" | tr ',' '\n' | sed -n 's/.*"id": *"\([^"]*\)".*/\1/p' | head -1)
[ -n "$PG2" ] || { echo "no second portal group"; exit 1; }
vds portal-group add-portal "$PG2" "$HOST_PORTAL2" || exit 1
vds portal set-status "$HOST_PORTAL2" online || exit 1
vds portal list | tee /host/out/portals.txt
vds portal-group list | tee /host/out/portal-groups.txt
LUN=$(vds lun list | awk 'NR == 2 {print $2}')
vds lun controllers "$LUN" | tee /host/out/controllers-before.txt
cat > /etc/multipath.conf <<'CONF'
defaults {
    user_friendly_names yes
    find_multipaths no
    polling_interval 1
}
blacklist {
    devnode "^vd"
}
devices {
    device {
        vendor "VDS"
        product "LUN"
        path_grouping_policy group_by_prio
        prio alua
        hardware_handler "1 alua"
        path_checker tur
        no_path_retry queue
        failback immediate
    }
}
CONF
/lib/systemd/systemd-udevd --daemon >/dev/null 2>&1 || /sbin/udevd --daemon >/dev/null 2>&1
modprobe scsi_dh_alua 2>/dev/null
login_target || exit 1
grep -q "^$PORTAL2,[0-9]* $IQN\$" /host/out/discovery.txt || { echo "discovery did not list $PORTAL2"; exit 1; }
for p in "$PORTAL" "$PORTAL2"; do
  iscsiadm -m node -T "$IQN" -p "$p" -o update -n node.session.timeo.replacement_timeout -v 5
done
iscsiadm -m session -r 1 -o update -n node.session.timeo.replacement_timeout -v 5 2>/dev/null
iscsiadm -m node -T "$IQN" -p "$PORTAL2" --login || exit 1
udevadm trigger --action=add; udevadm settle --timeout=20
multipathd -d -s -v3 >/host/out/multipathd.log 2>&1 &
# The disk of each portal, from the sessions.
iscsiadm -m session -P 3 > /host/out/sessions.txt
disk_of() { awk -v p="$1" '/Current Portal:/ {cur = index($0, p) > 0} cur && /Attached scsi disk/ {print "/dev/" $4; exit}' /host/out/sessions.txt; }
D1=$(disk_of "$PORTAL"); D2=$(disk_of "$PORTAL2")
[ -b "$D1" ] && [ -b "$D2" ] || { echo "no disk per portal ($D1, $D2)"; exit 1; }
# rtpg NAME: the state of each group through each path: RESULT rtpg_NAME_sdX=0x1:state,0x2:state,
rtpg() {
  for d in "$D1" "$D2"; do
    sg_rtpg -d "$d" > "/host/out/rtpg-$1-$(basename "$d").txt" 2>&1
    printf 'RESULT rtpg_%s_%s=' "$1" "$(basename "$d")"
    awk '/target port group id : / {split($0, a, ":"); split(a[2], b, ","); g = b[1]; gsub(/ /, "", g)}
         /asymmetric access state/ {s = $0; sub(/.*\(/, "", s); sub(/\).*/, "", s); gsub(/ /, "_", s); printf "%s:%s,", g, s}' \
      "/host/out/rtpg-$1-$(basename "$d").txt"
    echo
  done
}
sg_inq "$D1" > /host/out/inq.txt 2>&1
echo "RESULT tpgs=$(sed -n 's/.*TPGS=\([0-9]\).*/\1/p' /host/out/inq.txt | head -1)"
sg_vpd -p di "$D2" > /host/out/vpd83-d2.txt 2>&1
echo "RESULT d1=$(basename "$D1") d2=$(basename "$D2")"
rtpg before
wait_until 30 sh -c "[ \$(multipath -ll 2>/dev/null | grep -Ec 'active ready +running') = 2 ]" || { multipath -ll; exit 1; }
multipath -ll | tee /host/out/multipath-before.txt
echo "RESULT prio_groups_before=$(grep -c 'policy=' /host/out/multipath-before.txt)"
MAP=/dev/mapper/$(multipath -ll | awk 'NR == 1 {print $1}')
mkfs.ext4 -q -F "$MAP" || exit 1
mkdir -p /mnt/v; mount "$MAP" /mnt/v || exit 1
fio_json alua --directory=/mnt/v --ioengine=libaio --direct=1 --rw=randwrite --bs=4k \
  --iodepth=16 --size=64M --time_based --runtime=40 --verify=crc32c --verify_backlog=512 \
  --verify_fatal=1 &
fpid=$!
sleep 5
vds controller set-status "$CTL_A" offline || exit 1
vds lun controllers "$LUN" | tee /host/out/controllers-during.txt
sleep 6
rtpg during
multipath -ll | tee /host/out/multipath-during.txt
sleep 6
vds controller set-status "$CTL_A" online || exit 1
wait_until 60 sh -c "[ \$(multipath -ll 2>/dev/null | grep -Ec 'active ready +running') = 2 ]"
sleep 3
rtpg after
multipath -ll | tee /host/out/multipath-after.txt
echo "RESULT paths_active_after=$(multipath -ll 2>/dev/null | grep -Ec 'active ready +running')"
wait $fpid || exit 1
umount /mnt/v || exit 1
e2fsck -fn "$MAP" > /host/out/e2fsck.txt 2>&1 || { echo "e2fsck found errors"; exit 1; }
multipath -F >/dev/null 2>&1
exit 0
