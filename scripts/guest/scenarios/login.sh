# Scenario "login": discovery (SendTargets) and login with the kernel initiator; the LUN shows in
# lsscsi as "VDS LUN"; INQUIRY/VPD through sg3-utils; the command channel answers `lun list`.
set -u
. /host/lib.sh
login_target || exit 1
lsscsi | tee /host/out/lsscsi.txt
sg_inq "$DISK" | tee /host/out/sg_inq.txt
sg_vpd -p 0 "$DISK" | tee /host/out/sg_vpd.txt
echo "RESULT disk=$DISK size_bytes=$(blockdev --getsize64 "$DISK")"
vds lun list | tee /host/out/vdsctl-lun-list.txt || exit 1
iscsiadm -m session | tee /host/out/session.txt
