#!/usr/bin/env bash
# Soak the crash test: many kill -9 rounds with fresh random seeds, outside the
# test suite. Stops at the first failing run and prints its seed.
#
#   tests/crash/soak.sh [RUNS] [ROUNDS_PER_RUN]     (defaults: 20 runs x 50 rounds)
#
# Runs through `bazel test` (the test binary needs its runfiles), so each run
# may wait for other Bazel commands. Replay a failure with
#   bazel test //tests/crash:crash_test --test_env=LW_SEED=<seed> \
#     --test_env=LW_CRASH_ROUNDS=<rounds> --test_output=all
set -euo pipefail
runs="${1:-20}"
rounds="${2:-50}"
cd "$(dirname "$0")/../.."
for ((i = 1; i <= runs; i++)); do
  seed="$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')"
  echo "soak run ${i}/${runs}: seed ${seed}, ${rounds} rounds"
  if ! bazel test //tests/crash:crash_test --nocache_test_results --test_timeout=3600 \
      --test_env=LW_SEED="${seed}" --test_env=LW_CRASH_ROUNDS="${rounds}" \
      --test_output=errors >/dev/null 2>&1; then
    log="$(bazel info bazel-testlogs 2>/dev/null)/tests/crash/crash_test/test.log"
    tail -n 60 "${log}" || true
    echo "FAILED: seed ${seed}, ${rounds} rounds; log ${log}, history files in" \
         "$(dirname "${log}")/test.outputs"
    exit 1
  fi
  grep -E "^crash_test: [0-9]+ rounds" \
    "$(bazel info bazel-testlogs 2>/dev/null)/tests/crash/crash_test/test.log" || true
done
echo "soak: ${runs} runs x ${rounds} rounds passed"
