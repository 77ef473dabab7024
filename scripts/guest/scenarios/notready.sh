# Scenario "notready": fio writes (verify=crc32c) for 30 s; 5 s in, the host's vdsctl sets the LUN
# NOT_READY for 10 s, then ONLINE. The LUN answers 02/04/01 (becoming ready) meanwhile, which the
# kernel retries: no I/O error may reach fio, and the slowest command spans the NOT_READY time.
set -u
. /host/lib.sh
login_target || exit 1
fio_json notready --filename="$DISK" --ioengine=libaio --direct=1 --rw=randwrite --bs=4k \
  --iodepth=16 --size=64M --time_based --runtime=30 --verify=crc32c --verify_backlog=512 \
  --verify_fatal=1 &
fpid=$!
sleep 5
vds lun set-status default not_ready || exit 1
t0=$(date +%s.%N)
echo "RESULT status during: $(lun_status default)"
sleep 10
vds lun set-status default online || exit 1
t1=$(date +%s.%N)
echo "RESULT not_ready_seconds=$(awk "BEGIN{print $t1 - $t0}")"
wait $fpid || exit 1
