# Scenario "multipath": a second portal in the target's portal group (made through the host's
# vdsctl), a session through each portal, dm-multipath (multibus, tur checker, queue_if_no_path)
# over both, ext4 on the map, fio with verify running on it. 5 s in, the host sets the first
# portal OFFLINE: its session is dropped, the path fails, I/O goes on through the other. 15 s
# later the portal is back ONLINE, the session reconnects and multipathd reinstates the path.
# fio must see no error, both paths must end active, and e2fsck must find the filesystem clean.
set -u
. /host/lib.sh
P1=$(vds portal list | awk 'NR == 2 {print $2}')
PG=$(vds portal-group list | awk 'NR == 2 {print $1}')
vds portal add "$HOST_PORTAL2" || exit 1
vds portal-group add-portal "$PG" "$HOST_PORTAL2" || exit 1
vds portal set-status "$HOST_PORTAL2" online || exit 1
vds portal list | tee /host/out/portals.txt
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
        path_grouping_policy multibus
        path_checker tur
        no_path_retry queue
        failback immediate
    }
}
CONF
# multipathd takes path identities (WWID) and new paths from udev.
/lib/systemd/systemd-udevd --daemon >/dev/null 2>&1 || /sbin/udevd --daemon >/dev/null 2>&1
login_target || exit 1
iscsiadm -m node -o new -T "$IQN" -p "$PORTAL2" >/dev/null || exit 1
# Fail a lost path after 5 s instead of queueing on it for 120 s (open-iscsi's advice for multipath).
for p in "$PORTAL" "$PORTAL2"; do
  iscsiadm -m node -T "$IQN" -p "$p" -o update -n node.session.timeo.replacement_timeout -v 5
done
iscsiadm -m session -r 1 -o update -n node.session.timeo.replacement_timeout -v 5 2>/dev/null
iscsiadm -m node -T "$IQN" -p "$PORTAL2" --login || exit 1
udevadm trigger --action=add; udevadm settle --timeout=20
multipathd -d -s -v3 >/host/out/multipathd.log 2>&1 &
paths() { multipath -ll 2>/dev/null | grep -Ec "active ready +running"; }
wait_until 30 sh -c "[ \$(multipath -ll 2>/dev/null | grep -Ec 'active ready +running') = 2 ]" || { multipath -ll; exit 1; }
multipath -ll | tee /host/out/multipath-before.txt
MAP=/dev/mapper/$(multipath -ll | awk 'NR == 1 {print $1}')
mkfs.ext4 -q -F "$MAP" || exit 1
mkdir -p /mnt/v; mount "$MAP" /mnt/v || exit 1
fio_json mpath --directory=/mnt/v --ioengine=libaio --direct=1 --rw=randwrite --bs=4k \
  --iodepth=16 --size=64M --time_based --runtime=40 --verify=crc32c --verify_backlog=512 \
  --verify_fatal=1 &
fpid=$!
sleep 5
vds portal set-status "$P1" offline || exit 1
wait_until 20 sh -c "multipath -ll 2>/dev/null | grep -q 'failed'" || echo "RESULT no path seen failed"
multipath -ll | tee /host/out/multipath-during.txt
echo "RESULT paths_active_during=$(paths)"
sleep 10
vds portal set-status "$P1" online || exit 1
wait_until 60 sh -c "[ \$(multipath -ll 2>/dev/null | grep -Ec 'active ready +running') = 2 ]"
multipath -ll | tee /host/out/multipath-after.txt
echo "RESULT paths_active_after=$(paths)"
wait $fpid || exit 1
umount /mnt/v || exit 1
e2fsck -fn "$MAP" > /host/out/e2fsck.txt 2>&1 || { echo "e2fsck found errors"; exit 1; }
multipath -F >/dev/null 2>&1
exit 0
