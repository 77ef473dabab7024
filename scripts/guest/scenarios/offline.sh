# Scenario "offline": one path, no multipath. Files are written to ext4 on the LUN and synced;
# the host's vdsctl sets the LUN OFFLINE; reads and writes to the disk must fail at once (02/04/12:
# OFFLINE fails fast) while the filesystem is idle; back ONLINE, the first command meets
# UNIT ATTENTION 28/00, which the kernel handles; after a rescan the disk works again and every
# file reads back with its checksum; e2fsck finds the filesystem clean.
set -u
. /host/lib.sh
login_target || exit 1
dev=${DISK#/dev/}
mkfs.ext4 -q -F "$DISK" || exit 1
mkdir -p /mnt/v; mount "$DISK" /mnt/v || exit 1
for i in $(seq 1 10); do head -c $(( i * 100 * 1024 )) /dev/urandom > /mnt/v/f$i || exit 1; done
(cd /mnt/v && sha256sum f*) > /host/out/written.sha256
sync; umount /mnt/v || exit 1
vds lun set-status default offline || exit 1
echo "RESULT status during: $(lun_status default)"
s=$(date +%s.%N)
dd if="$DISK" of=/dev/null bs=4k count=1 skip=1000 iflag=direct 2>/host/out/dd-read-offline.txt
echo "RESULT read_while_offline rc=$? in $(awk "BEGIN{print $(date +%s.%N) - $s}") s"
dd if=/dev/zero of="$DISK" bs=4k count=1 seek=3000 oflag=direct 2>/host/out/dd-write-offline.txt
echo "RESULT write_while_offline rc=$?"
echo "RESULT device state while offline: $(cat /sys/block/$dev/device/state)"
vds lun set-status default online || exit 1
# The first command after ONLINE meets UNIT ATTENTION 28/00 (nothing else talks to the disk now,
# so it is ours to see through sg; the kernel's own commands retry it the same way).
sg_turs -v "$DISK" > /host/out/tur-after-online.txt 2>&1
echo "RESULT first_tur_after_online rc=$?"
sg_turs -v "$DISK" >> /host/out/tur-after-online.txt 2>&1
echo "RESULT second_tur_after_online rc=$?"
rescan
echo "RESULT device state after rescan: $(cat /sys/block/$dev/device/state)"
dd if="$DISK" of=/dev/null bs=4k count=1 skip=1000 iflag=direct 2>/host/out/dd-read-online.txt
echo "RESULT read_after_online rc=$?"
echo 3 > /proc/sys/vm/drop_caches
mount "$DISK" /mnt/v || exit 1
(cd /mnt/v && sha256sum f*) > /host/out/read.sha256
umount /mnt/v || exit 1
e2fsck -fn "$DISK" > /host/out/e2fsck.txt 2>&1 || { echo "e2fsck found errors"; exit 1; }
