# Scenario "fs": mkfs.ext4 on the LUN, mount, write N files of random data, record their sha256,
# sync, unmount, mount again, sha256 them again. The driver compares the two lists.
set -u
. /host/lib.sh
N=${FILES:-20}
login_target || exit 1
mkfs.ext4 -q -F "$DISK" || exit 1
mkdir -p /mnt/v; mount "$DISK" /mnt/v || exit 1
for i in $(seq 1 "$N"); do
  head -c $(( (i * 37 % 512 + 1) * 1024 )) /dev/urandom > /mnt/v/f$i || exit 1
done
(cd /mnt/v && sha256sum f*) > /host/out/written.sha256
sync; umount /mnt/v || exit 1
echo 3 > /proc/sys/vm/drop_caches
mount "$DISK" /mnt/v || exit 1
(cd /mnt/v && sha256sum f*) > /host/out/read.sha256
umount /mnt/v || exit 1
e2fsck -fn "$DISK" > /host/out/e2fsck.txt 2>&1 || { echo "e2fsck found errors"; exit 1; }
echo "RESULT files=$N"
