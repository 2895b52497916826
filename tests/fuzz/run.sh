#!/usr/bin/env bash
# run.sh -- runs libFuzzer targets for a bounded time: `make fuzz` calls
#   tests/fuzz/run.sh BUILD_DIR SECONDS TARGET...
# Each target BUILD_DIR/fuzz/TARGET runs SECONDS on two corpus directories: BUILD_DIR/corpus/TARGET
# (what earlier runs found; libFuzzer adds to it) and tests/fuzz/corpus/TARGET (the seeds, never
# written). Options: tests/fuzz/TARGET.options (one line of libFuzzer flags) and a dictionary
# tests/fuzz/TARGET.dict when present. A crash, leak, hang (-timeout) or failed check stops that
# target; its input is saved as BUILD_DIR/artifacts/TARGET-crash-<sha1> (replay it with
# `BUILD_DIR/fuzz/TARGET <file>`) and the run fails. Output goes to BUILD_DIR/logs/TARGET.log.
set -u

if [ $# -lt 3 ]; then
    echo "usage: $0 BUILD_DIR SECONDS TARGET..." >&2
    exit 2
fi
ROOT=$(cd "$(dirname "$0")/../.." && pwd -P)
BUILD=$1
SECONDS_EACH=$2
shift 2
mkdir -p "$BUILD/artifacts" "$BUILD/logs"

# halt_on_error etc. are libFuzzer's defaults under ASan; leaks are errors.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:allocator_may_return_null=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

failed=""
for t in "$@"; do
    bin="$BUILD/fuzz/$t"
    seeds="$ROOT/tests/fuzz/corpus/$t"
    opts=()
    if [ ! -x "$bin" ]; then
        echo "fuzz: $bin not built" >&2
        failed="$failed $t"
        continue
    fi
    mkdir -p "$BUILD/corpus/$t" "$seeds"
    if [ -f "$ROOT/tests/fuzz/$t.options" ]; then
        read -r -a opts <"$ROOT/tests/fuzz/$t.options"
    fi
    if [ -f "$ROOT/tests/fuzz/$t.dict" ]; then
        opts+=("-dict=$ROOT/tests/fuzz/$t.dict")
    fi
    log="$BUILD/logs/$t.log"
    start=$(date +%s)
    "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$BUILD/artifacts/$t-" "${opts[@]}" "$BUILD/corpus/$t" "$seeds" >"$log" 2>&1
    rc=$?
    took=$(($(date +%s) - start))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
    if [ "$rc" -eq 0 ]; then
        echo "fuzz: $t ok: ${execs:-?} inputs in ${took}s, ${cov:-cov: ?}, corpus $(find "$BUILD/corpus/$t" -type f | wc -l) files"
    else
        echo "fuzz: $t FAILED (exit $rc) after ${took}s; log $log" >&2
        grep -E 'ERROR: |SUMMARY: |fuzz check failed|fuzz_http: |Test unit written' "$log" | head -n 20 >&2
        failed="$failed $t"
    fi
done
if [ -n "$failed" ]; then
    echo "fuzz: FAILED:$failed" >&2
    exit 1
fi
