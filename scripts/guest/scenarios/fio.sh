# Scenario "fio": fio with verify=crc32c on the raw LUN: 4 KiB random writes at QD32 and large
# sequential writes (64 KiB - 1 MiB, through R2T and unsolicited data), each read back and
# checked; the driver requires 0 errors and every written byte read back.
set -u
. /host/lib.sh
login_target || exit 1
common="--filename=$DISK --ioengine=libaio --direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1"
fio_json rand4k $common --rw=randwrite --bs=4k --iodepth=32 --size=32M || exit 1
fio_json seqbig $common --rw=write --bsrange=64k-1m --iodepth=8 --offset=128M --size=64M || exit 1
