# Scenario "chap": CHAP with iscsiadm. One-way: the host's vdsctl sets the target's secret; a
# login without CHAP and one with a wrong secret are refused (iscsiadm 24, authorization
# failure), the right secret logs in. Mutual: the host remembers a secret for this initiator;
# the guest asks the target to prove it: right secret logs in, a wrong expected secret is
# refused by the initiator itself.
set -u
. /host/lib.sh
INI=$(sed -n 's/^InitiatorName=//p' /etc/iscsi/initiatorname.iscsi)
node() { iscsiadm -m node -T "$IQN" -p "$PORTAL" "$@"; }
set_auth() {  # set_auth METHOD USER PASS [USER_IN PASS_IN]
  node -o update -n node.session.auth.authmethod -v "$1" >/dev/null
  node -o update -n node.session.auth.username -v "${2:-}" >/dev/null
  node -o update -n node.session.auth.password -v "${3:-}" >/dev/null
  node -o update -n node.session.auth.username_in -v "${4:-}" >/dev/null
  node -o update -n node.session.auth.password_in -v "${5:-}" >/dev/null
}
try_login() {  # try_login LABEL: logs in and out; prints and returns iscsiadm's status
  node --login >/host/out/login-$1.txt 2>&1
  local rc=$?
  # Logged in: the disk is probed before the logout (else its reads fail in dmesg).
  [ $rc = 0 ] && { wait_disk; node --logout >/dev/null 2>&1; }
  echo "RESULT login $1 rc=$rc"
  return $rc
}
login_target || exit 1          # the node record, logged in without CHAP
node --logout || exit 1
vds target set-secret "$IQN" --secret "$CHAP_SECRET" || exit 1
set_auth None
try_login none_after_secret
set_auth CHAP "$INI" "wrong-secret-123"
try_login oneway_wrong
set_auth CHAP "$INI" "$CHAP_SECRET"
try_login oneway_right
vds target remember-secret "$IQN" "$INI" --secret "$MUTUAL_SECRET" || exit 1
set_auth CHAP "$INI" "$CHAP_SECRET" "$IQN" "$MUTUAL_SECRET"
try_login mutual_right
set_auth CHAP "$INI" "$CHAP_SECRET" "$IQN" "not-the-secret1"
try_login mutual_wrong
vds target set-secret "$IQN" || exit 1    # cleared: no CHAP needed again
set_auth None
try_login none_after_clear
exit 0
