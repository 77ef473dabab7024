# Scenario "fstrim": ext4 made and mounted without discard; 256 MiB of data written and synced
# (the backing file on the host grows), deleted, then `fstrim`: the kernel sends UNMAP and the
# host's backing file shrinks by about that much. Host sizes through `vds @allocated`.
set -u
. /host/lib.sh
login_target || exit 1
dev=${DISK#/dev/}
echo "RESULT discard_max_bytes=$(cat /sys/block/$dev/queue/discard_max_bytes)"
echo "RESULT discard_granularity=$(cat /sys/block/$dev/queue/discard_granularity)"
mkfs.ext4 -q -F -E nodiscard "$DISK" || exit 1
mkdir -p /mnt/v; mount -o nodiscard "$DISK" /mnt/v || exit 1
a0=$(vds @allocated default) || exit 1
head -c 256M /dev/urandom > /mnt/v/data || exit 1
sync
a1=$(vds @allocated default) || exit 1
rm /mnt/v/data; sync
fstrim -v /mnt/v | tee /host/out/fstrim.txt || exit 1
a2=$(vds @allocated default) || exit 1
echo "RESULT allocated empty=$a0 written=$a1 trimmed=$a2"
umount /mnt/v || exit 1
e2fsck -fn "$DISK" > /host/out/e2fsck.txt 2>&1 || { echo "e2fsck found errors"; exit 1; }
