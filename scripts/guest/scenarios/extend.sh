# Scenario "extend": ext4 on the LUN with files; the host's vdsctl extends the LUN by 512 MiB
# while it is mounted; the next command meets UNIT ATTENTION 2A/09 (capacity data has changed);
# after a rescan the kernel sees the new size, resize2fs grows the mounted filesystem, and the
# files written before still read back.
set -u
. /host/lib.sh
login_target || exit 1
dev=${DISK#/dev/}
before=$(blockdev --getsize64 "$DISK")
echo "RESULT size_before=$before"
mkfs.ext4 -q -F "$DISK" || exit 1
mkdir -p /mnt/v; mount "$DISK" /mnt/v || exit 1
for i in $(seq 1 5); do head -c $(( i * 200 * 1024 )) /dev/urandom > /mnt/v/f$i || exit 1; done
(cd /mnt/v && sha256sum f*) > /host/out/written.sha256
sync
vds lun extend default 512MiB || exit 1
# A command to the LUN now gets 06/2A/09; the kernel notes it (and may re-read the capacity).
dd if="$DISK" of=/dev/null bs=4k count=1 iflag=direct 2>/dev/null
rescan
wait_until 20 sh -c "[ \$(blockdev --getsize64 $DISK) -gt $before ]" || exit 1
after=$(blockdev --getsize64 "$DISK")
echo "RESULT size_after=$after"
resize2fs "$DISK" > /host/out/resize2fs.txt 2>&1 || { cat /host/out/resize2fs.txt; exit 1; }
df -B1 /mnt/v | tee /host/out/df.txt
# more than the old size could hold: only the grown filesystem has room for it
fallocate -l 1200M /mnt/v/big || { echo "the grown filesystem has no room for 1200 MiB"; exit 1; }
sync; rm /mnt/v/big
echo 3 > /proc/sys/vm/drop_caches
(cd /mnt/v && sha256sum f*) > /host/out/read.sha256
umount /mnt/v || exit 1
e2fsck -fn "$DISK" > /host/out/e2fsck.txt 2>&1 || { echo "e2fsck found errors"; exit 1; }
