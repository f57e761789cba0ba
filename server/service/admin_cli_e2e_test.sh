#!/bin/bash
# End-to-end: the real lockwardenctl's repair commands against a real
# lockwarden-server (RocksDB on a temp dir, OS-chosen port on 127.0.0.1).
#   usage: admin_cli_e2e_test.sh <lockwardenctl> <lockwarden-server> <e2e_lib.sh>
# Checks: `locks release --client` frees exactly that client's lock;
# `client reboot` releases the client's older locks and bumps its state;
# `gateway reset` bumps the identity's state by 2 and starts grace;
# `snapshot export` writes a verified file; status reports the bound port;
# with --admin-token-file, a mutation without the token is refused (exit 2)
# and accepted with it.
set -u

# shellcheck source=tests/harness/e2e_lib.sh
source "$3"
e2e_init admin_e2e "$1" "$2"
# Grace outlasts the test, so `gateway reset` leaves the identity in grace.
GRACE_FLAG="--grace-period-ms=60000"

# json_get EXPR: evaluates a Python expression over the JSON in $OUT (as d).
json_get() { echo "$OUT" | python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

start_server "$WORK/data" "$GRACE_FLAG"

expect_exit 0 "status" -- ctl status --output=json
[ "$(json_get 'd["leader_address"]')" = "$ADDR" ] || fail "leader_address is not $ADDR: $OUT"

expect_exit 0 "alice locks" -- ctl lock --fh=0a01 --client=alice --svid=1 --oh=a1
expect_exit 0 "bob locks" -- ctl lock --fh=0a02 --client=bob --svid=2 --oh=b2
expect_exit 0 "release alice" -- ctl locks release --client=alice --reason="e2e: alice hung" \
  --output=json
[ "$(json_get 'd.get("released_locks")')" = "1" ] || fail "release alice: $OUT"
expect_exit 0 "locks after release" -- ctl locks list --output=json
[ "$(json_get '[l["owner"]["client_name"] for l in d["locks"]]')" = "['bob']" ] ||
  fail "after releasing alice: $OUT"

expect_exit 0 "bob reboots" -- ctl client reboot --client=bob --reason="e2e drill" --output=json
[ "$(json_get 'd.get("released_locks")')" = "1" ] || fail "client reboot: $OUT"
expect_exit 0 "clients" -- ctl clients list --output=json
[ "$(json_get '[c.get("nsm_state") for c in d["clients"] if c["client_name"]=="bob"]')" = "[3]" ] ||
  fail "bob's state after reboot: $OUT"

expect_exit 0 "gateways before" -- ctl gateways list --output=json
BEFORE="$(json_get 'd["gateways"][0]["nsm_state"]')"
expect_exit 0 "carol locks" -- ctl lock --fh=0a03 --client=carol --svid=3 --oh=c3
expect_exit 0 "gateway reset" -- ctl gateway reset --gateway-id=lockwardenctl \
  --reason="e2e lost state" --output=json
[ "$(json_get 'd.get("new_state")')" = "$((BEFORE + 2))" ] || fail "gateway reset: $OUT (before $BEFORE)"
expect_exit 0 "grace" -- ctl grace status --output=json
[ "$(json_get 'd["gateways"][0].get("in_grace")')" = "True" ] || fail "not in grace: $OUT"

expect_exit 0 "grace end" -- ctl grace end --gateway-id=lockwardenctl --reason="e2e" --output=json
# Nothing in grace and no ledger left: the listing of all identities is empty.
expect_exit 0 "grace after end" -- ctl grace status --output=json
[ "$(json_get 'len(d["gateways"])')" = "0" ] || fail "still in grace: $OUT"
expect_exit 2 "grace end again" -- ctl grace end --gateway-id=lockwardenctl --reason="e2e"
grep -q "FAILED_PRECONDITION" "$WORK/stderr" || fail "second grace end: $(cat "$WORK/stderr")"

expect_exit 0 "erin locks" -- ctl lock --fh=0a05 --client=erin --svid=5 --oh=e5
expect_exit 0 "gateway drain" -- ctl gateway drain --gateway-id=lockwardenctl --reason="e2e" \
  --output=json
[ "$(json_get 'd.get("draining")')" = "True" ] || fail "drain: $OUT"
expect_exit 0 "gateways drained" -- ctl gateways list --output=json
[ "$(json_get '[g.get("draining") for g in d["gateways"] if g["gateway_id"]=="lockwardenctl"]')" = "[True]" ] ||
  fail "not listed as draining: $OUT"
# A blocking LOCK behind erin's is answered at once (DENIED, exit 1), not queued.
expect_exit 1 "blocked lock while drained" -- ctl lock --fh=0a05 --client=frank --svid=6 \
  --oh=f6 --wait --wait-timeout=5s
expect_exit 0 "no waiters" -- ctl waiters list --output=json
[ "$(json_get 'len(d["waiters"])')" = "0" ] || fail "a waiter queued while drained: $OUT"
expect_exit 0 "gateway undrain" -- ctl gateway drain --undrain --gateway-id=lockwardenctl \
  --reason="e2e"

expect_exit 0 "snapshot export" -- ctl snapshot export --file="$WORK/lw.snap" --reason=e2e
[ -s "$WORK/lw.snap" ] || fail "no snapshot file"
expect_exit 0 "locks before import" -- ctl locks list --output=json
LOCKS_BEFORE="$(json_get 'sorted(l["fencing_token"] for l in d["locks"])')"

stop_server
# Import into a fresh store: the same locks, same fencing tokens.
start_server "$WORK/data-imported" "$GRACE_FLAG"
expect_exit 0 "snapshot import" -- ctl snapshot import --file="$WORK/lw.snap" --state-is-current \
  --reason="e2e restore" --output=json
expect_exit 0 "locks after import" -- ctl locks list --output=json
[ "$(json_get 'sorted(l["fencing_token"] for l in d["locks"])')" = "$LOCKS_BEFORE" ] ||
  fail "imported locks differ: $OUT (before $LOCKS_BEFORE)"
expect_exit 2 "import into a non-empty store" -- ctl snapshot import --file="$WORK/lw.snap" \
  --reason="e2e again"
grep -q "force" "$WORK/stderr" || fail "refusal unclear: $(cat "$WORK/stderr")"

stop_server
echo "e2e-token-value" >"$WORK/token"
start_server "$WORK/data2" "$GRACE_FLAG" --admin-token-file="$WORK/token"
expect_exit 0 "dave locks" -- ctl lock --fh=0a04 --client=dave --svid=4 --oh=d4
expect_exit 2 "release without token" -- ctl locks release --client=dave --reason=e2e
grep -q "UNAUTHENTICATED\|Bearer" "$WORK/stderr" || fail "refusal unclear: $(cat "$WORK/stderr")"
expect_exit 0 "release with token" -- ctl --token=e2e-token-value locks release --client=dave \
  --reason=e2e

e2e_finish
