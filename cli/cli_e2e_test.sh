#!/bin/bash
# End-to-end: lockwardenctl against a real lockwarden-server (RocksDB on a
# temp data dir, OS-chosen port on 127.0.0.1).
#   usage: cli_e2e_test.sh <lockwardenctl> <lockwarden-server> <e2e_lib.sh>
# Checks: health; a lock taken by one client; `test` denied (exit 1) for
# another; `locks list --output json` shows the lock; `lock --wait` by the
# second client is granted (stream + ack) once the first unlocks; a wait that
# times out cancels its request; a dead server gives exit 2.
set -u

# shellcheck source=tests/harness/e2e_lib.sh
source "$3"
e2e_init cli_e2e "$1" "$2"
WAITER_PID=""
e2e_on_exit() { [ -n "$WAITER_PID" ] && kill "$WAITER_PID" 2>/dev/null; }

start_server "$WORK/data"

expect_exit 0 "health" -- ctl health
[ "$OUT" = "SERVING" ] || fail "health printed '$OUT'"
expect_exit 0 "status" -- ctl status --output=json
case "$OUT" in *'"role": "SERVER_ROLE_LEADER"'*) ;; *) fail "status: $OUT" ;; esac

expect_exit 0 "alice locks" -- ctl lock --fh=0a0b0c --client=alice --svid=1 \
  --oh=a1 --offset=0 --length=100
case "$OUT" in *GRANTED*) ;; *) fail "alice lock printed: $OUT" ;; esac

expect_exit 1 "bob's test is denied" -- ctl test --fh=0a0b0c --client=bob \
  --svid=2 --offset=50 --length=10
case "$OUT" in
  *DENIED*alice/1/a1*) ;;
  *) fail "denied test does not name the holder: $OUT" ;;
esac

expect_exit 0 "bob's shared test outside the range is granted" -- \
  ctl test --fh=0a0b0c --client=bob --svid=2 --offset=100 --length=10 --shared

expect_exit 0 "locks list json" -- ctl locks list --output=json
echo "$OUT" >"$WORK/locks.json"
python3 - "$WORK/locks.json" <<'PY' || fail "locks list json: $OUT"
import json, sys
doc = json.load(open(sys.argv[1]))
assert isinstance(doc, dict), doc
locks = doc["locks"]
assert len(locks) == 1 and doc["total_size"] == 1, doc
lock = locks[0]
assert lock["file_handle"] == "0a0b0c", lock
assert lock["owner"] == {"client_name": "alice", "svid": 1, "oh": "a1"}, lock
assert lock["range"] == {"offset": 0, "length": 100}, lock
assert lock["exclusive"] is True and lock["gateway_id"] == "lockwardenctl", lock
assert lock["fencing_token"] > 0, lock
PY

# bob waits for the lock; alice's unlock grants it through the grant stream.
ctl --output=json lock --fh=0a0b0c --client=bob --svid=2 --offset=50 \
  --length=10 --wait --wait-timeout=30s >"$WORK/bob.json" 2>"$WORK/bob.err" &
WAITER_PID=$!
for _ in $(seq 1 100); do  # up to 10 s until bob is queued
  ctl waiters list --output=json 2>/dev/null | grep -q '"bob"' && break
  sleep 0.1
done
expect_exit 0 "alice unlocks" -- ctl unlock --fh=0a0b0c --client=alice \
  --svid=1 --oh=a1 --offset=0 --length=100
wait "$WAITER_PID"
BOB_EXIT=$?
WAITER_PID=""
[ "$BOB_EXIT" = 0 ] || fail "bob's lock --wait: exit $BOB_EXIT: $(cat "$WORK/bob.json" "$WORK/bob.err")"
python3 - "$WORK/bob.json" <<'PY' || fail "bob's wait json: $(cat "$WORK/bob.json")"
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["status"] == "LOCK_STATUS_GRANTED", doc
assert doc["ack"]["lock_held"] is True, doc
assert doc["grant"]["owner"]["client_name"] == "bob", doc
PY

expect_exit 0 "bob holds it now" -- ctl locks list --client=bob --output=json
case "$OUT" in *'"bob"'*) ;; *) fail "bob's lock not listed: $OUT" ;; esac

# carol's wait times out and is cancelled: no waiter is left behind.
expect_exit 1 "carol's wait times out" -- ctl lock --fh=0a0b0c --client=carol \
  --wait --wait-timeout=1s
expect_exit 0 "waiters list" -- ctl waiters list --output=json
case "$OUT" in *carol*) fail "carol's waiter was not cancelled: $OUT" ;; esac

expect_exit 0 "bob unlocks" -- ctl unlock --fh=0a0b0c --client=bob --svid=2 \
  --offset=50 --length=10
expect_exit 0 "nothing left" -- ctl locks list --output=json
case "$OUT" in *'"total_size": 0'*) ;; *) fail "locks remain: $OUT" ;; esac

# Every other inspection command either works (one JSON object) or says
# plainly that the server lacks the RPC yet; nothing else is acceptable.
for command in "shares list" "clients list" "monitors list" "gateways list" \
    "events list" "grace status" "waiters graph"; do
  # shellcheck disable=SC2086
  OUT="$(ctl --output=json $command 2>"$WORK/stderr")"
  code=$?
  if [ "$code" = 0 ]; then
    echo "$OUT" | python3 -c 'import json,sys; assert isinstance(json.load(sys.stdin), dict)' ||
      fail "$command: not one JSON object: $OUT"
  elif [ "$code" = 2 ] && grep -q "does not implement .* yet (UNIMPLEMENTED)" "$WORK/stderr"; then
    echo "note: $command: $(cat "$WORK/stderr")"
  else
    fail "$command: exit $code: $OUT $(cat "$WORK/stderr")"
  fi
done

# A stopped server is a connection error: exit 2, naming the server.
stop_server
expect_exit 2 "server gone" -- ctl status
grep -q "$ADDR" "$WORK/stderr" || fail "error does not name $ADDR: $(cat "$WORK/stderr")"

e2e_finish
