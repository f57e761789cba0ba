# shellcheck shell=bash
# Shared shell helpers for end-to-end tests that drive a real
# lockwarden-server with the real lockwardenctl on 127.0.0.1 (source it):
#
#   source "$3"            # the sh_test passes $(rootpath //tests/harness:e2e_lib.sh)
#   e2e_init cli_e2e "$1" "$2"
#   start_server "$WORK/data" [SERVER FLAGS...]   # sets SERVER_PID, ADDR
#   expect_exit 0 "health" -- ctl health          # output in $OUT
#   stop_server
#   e2e_finish                                    # exit 1 if any check failed
#
# Globals: CTL, SERVER, WORK (a temp dir removed at exit), SERVER_PID, ADDR,
# OUT (stdout of the last expect_exit; its stderr is in $WORK/stderr),
# FAILURES. A test that starts other background jobs defines e2e_on_exit to
# stop them; cleanup calls it first. Every wait here is bounded.

# Tenths of a second start_server waits for the port line (30 s) and
# stop_server waits for a graceful exit before SIGKILL (5 s).
E2E_START_POLLS=300
E2E_STOP_POLLS=50

# e2e_init NAME CTL SERVER: sets the globals, makes $WORK, traps EXIT.
e2e_init() {
  WORK="$(mktemp -d "${TEST_TMPDIR:-/tmp}/$1.XXXXXX")"
  CTL="$2"
  SERVER="$3"
  SERVER_PID=""
  ADDR=""
  OUT=""
  FAILURES=0
  trap cleanup EXIT
}

# stop_server: SIGTERM, a bounded wait for a graceful exit, then SIGKILL.
stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill -TERM "$SERVER_PID" 2>/dev/null
    for _ in $(seq 1 "$E2E_STOP_POLLS"); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=""
  fi
}

cleanup() {
  if declare -F e2e_on_exit >/dev/null; then e2e_on_exit; fi
  stop_server
  rm -rf "$WORK"
}

fail() {
  echo "FAIL: $*" >&2
  FAILURES=$((FAILURES + 1))
}

# expect_exit CODE DESCRIPTION -- COMMAND...: runs COMMAND, output in $OUT.
expect_exit() {
  local want="$1" what="$2"
  shift 3
  OUT="$("$@" 2>"$WORK/stderr")"
  local got=$?
  if [ "$got" != "$want" ]; then
    fail "$what: exit $got, want $want; stdout: $OUT; stderr: $(cat "$WORK/stderr")"
  fi
}

# start_server DATA_DIR [FLAGS...]: starts lockwarden-server on an OS-chosen
# port of 127.0.0.1 and sets SERVER_PID and ADDR; exits the test if the
# server does not report its port in time.
start_server() {
  local data="$1"
  shift
  # Empty the log here, synchronously: the background job's own truncation
  # may come after the loop below has read the previous server's port.
  : >"$WORK/server.log"
  "$SERVER" --listen=127.0.0.1:0 --data-dir="$data" --log-level=warn "$@" \
    >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  local port=""
  for _ in $(seq 1 "$E2E_START_POLLS"); do
    port="$(sed -n 's/^lockwarden-server listening on port \([0-9]*\)$/\1/p' "$WORK/server.log")"
    [ -n "$port" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$port" ]; then
    echo "FAIL: server did not start:" >&2
    cat "$WORK/server.log" >&2
    exit 1
  fi
  ADDR="127.0.0.1:$port"
}

# ctl ARGS...: lockwardenctl against the running server.
ctl() { "$CTL" --server="$ADDR" --timeout=10s "$@"; }

# e2e_finish: the verdict; on failure, the count and the server log's tail.
e2e_finish() {
  if [ "$FAILURES" != 0 ]; then
    echo "$FAILURES check(s) failed; server log tail:" >&2
    tail -n 30 "$WORK/server.log" >&2
    exit 1
  fi
  echo "PASS"
}
