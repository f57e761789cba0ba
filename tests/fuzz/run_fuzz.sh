#!/bin/bash
# Builds tests/fuzz/rpc_fuzzer.cc with clang-14 + libFuzzer + ASan + UBSan
# (generating the rpcgen sources itself) and fuzzes the gateway's decode
# path for a bounded time, starting from the checked-in seed corpus.
#
#   tests/fuzz/run_fuzz.sh [SECONDS]     # default 30
#
# Exits non-zero on a build failure or on any crash, leak, timeout or UB
# report; the crashing input is left in $ARTIFACT_DIR (the test's undeclared
# outputs under Bazel, else a temporary directory that is printed).
set -euo pipefail

SECONDS_TO_FUZZ="${1:-30}"
if [[ -n "${TEST_SRCDIR:-}" ]]; then
  ROOT="${TEST_SRCDIR}/${TEST_WORKSPACE:-lockwarden}"
else
  ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
fi
CXX="${FUZZ_CXX:-clang++-14}"
CC="${FUZZ_CC:-clang-14}"
for tool in "$CXX" "$CC" rpcgen; do
  command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
ARTIFACT_DIR="${TEST_UNDECLARED_OUTPUTS_DIR:-$WORK/artifacts}"
mkdir -p "$WORK/gen/gateway/xdr" "$WORK/obj" "$WORK/corpus" "$ARTIFACT_DIR"

# rpcgen, as tools/build_defs.bzl lw_rpcgen_library does.
for x in nlm_prot sm_inter; do
  cp "$ROOT/gateway/xdr/$x.x" "$WORK/gen/gateway/xdr/$x.x"
  (cd "$WORK/gen/gateway/xdr" && rpcgen -h -o "$x.h" "$x.x" &&
     rpcgen -c -o "${x}_xdr.c" "$x.x")
done

SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
INC="-I$ROOT -I$WORK/gen -I$WORK/gen/gateway/xdr -I/usr/include/tirpc"
CFLAGS="-g -O1 -fno-omit-frame-pointer $SAN -fsanitize=fuzzer-no-link $INC"

objs=()
compile() {  # compiler, source
  local out="$WORK/obj/$(echo "$2" | tr '/' '_').o"
  "$1" $CFLAGS ${3:-} -c "$2" -o "$out"
  objs+=("$out")
}
for x in nlm_prot sm_inter; do
  compile "$CC" "$WORK/gen/gateway/xdr/${x}_xdr.c" "-w"
done
for src in gateway/xdr/xdr_codec.cc gateway/rpc/rpc_message.cc \
    gateway/rpc/record_marking.cc gateway/rpc/dispatcher.cc \
    gateway/rpc/duplicate_request_cache.cc gateway/portmap/portmapper.cc \
    gateway/portmap/registration_table.cc common/logging.cc \
    tests/fuzz/rpc_fuzzer.cc; do
  compile "$CXX" "$ROOT/$src" "-std=c++17 -DSPDLOG_SHARED_LIB -DSPDLOG_COMPILED_LIB -DSPDLOG_FMT_EXTERNAL"
done

ABSL_LIBS=$(grep -o '"-labsl_[a-z0-9_]*"' "$ROOT/third_party/system.BUILD" | tr -d '"' | tr '\n' ' ')
"$CXX" -fsanitize=fuzzer,address,undefined "${objs[@]}" -o "$WORK/rpc_fuzzer" \
  -ltirpc -lspdlog -lfmt $ABSL_LIBS -pthread

echo "fuzzing for ${SECONDS_TO_FUZZ}s from $(ls "$ROOT/tests/fuzz/corpus" | wc -l) seeds"
# The first corpus directory collects new inputs; the checked-in seeds are
# only read.
ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:${ASAN_OPTIONS:-}" \
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
"$WORK/rpc_fuzzer" -max_total_time="$SECONDS_TO_FUZZ" -timeout=10 \
  -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 \
  -artifact_prefix="$ARTIFACT_DIR/" \
  "$WORK/corpus" "$ROOT/tests/fuzz/corpus"
echo "no crash in ${SECONDS_TO_FUZZ}s"
