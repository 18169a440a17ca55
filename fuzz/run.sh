#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) in build-fuzz/ and runs
# each for a bounded time; scripts/test.sh calls it after the ctest suites.
#
#   fuzz/run.sh                 every target, 20 s each
#   fuzz/run.sh 120             every target, 120 s each
#   fuzz/run.sh 60 sio jwt      only these targets
#
# Targets run side by side, FUZZ_JOBS at a time (default: the number of
# CPUs). Each fuzzes a copy of its seeds, build-fuzz/corpus/<target>/ (new
# inputs stay there: the committed fuzz/corpus/ never grows from a run),
# with its dictionary fuzz/dict/<target>.dict if there is one. A crash, a
# leak, a timeout or a broken invariant fails the target: its reproducer is
# saved to build-fuzz/crashes/ and fuzz/crashes/ (ignored by git) and the
# sanitizer's report is printed. Replay one with
#   build-fuzz/fuzz/fuzz_<target> fuzz/crashes/<file>
#
# Environment: FUZZ_JOBS, FUZZ_CC (default clang), FUZZ_BUILD_DIR (default
# build-fuzz). Exit status: 0 when every target passed.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-20}
shift || true
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "fuzz/run.sh: seconds per target must be a positive integer, not '$seconds'" >&2
    exit 2
fi

build=${FUZZ_BUILD_DIR:-build-fuzz}
cc=${FUZZ_CC:-clang}
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}

# What each parser needs to see: frames up to the 64 KiB limit and a bit
# over; tokens just past WIRE_TOKEN_MAX; bodies and payloads of a few KiB (a
# 1,001-asset reserve body is ~7 KiB); URLs past their 1 KiB limit; offsets
# past their 40 bytes; HTTP heads past the 8 KiB max (plus a control byte).
max_len_of() {
    case "$1" in
        clientmsg | sio) echo 70000 ;;
        jwt) echo 4200 ;;
        jwt_claims) echo 3200 ;;
        url) echo 1100 ;;
        offset) echo 64 ;;
        http1) echo 8300 ;;
        reserve | config) echo 16384 ;;
        *) echo 8192 ;;
    esac
}

if ! command -v "$cc" >/dev/null 2>&1; then
    echo "fuzz/run.sh: $cc not found (scripts/deps.sh test installs clang and its sanitizer runtime)" >&2
    exit 1
fi
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ]; then
    for s in llvm-symbolizer llvm-symbolizer-14 /usr/lib/llvm-14/bin/llvm-symbolizer; do
        if command -v "$s" >/dev/null 2>&1; then
            export ASAN_SYMBOLIZER_PATH
            ASAN_SYMBOLIZER_PATH=$(command -v "$s")
            break
        fi
    done
fi

echo "=== $build: configure and build the fuzz targets ($cc)"
CC=$cc cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOORDHUB_FUZZ=ON \
    -DCOORDHUB_TESTS=OFF >/dev/null
cmake --build "$build" -j"$jobs" --target fuzzers

if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for bin in "$build"/fuzz/fuzz_*; do
        [ -x "$bin" ] && targets+=("${bin##*/fuzz_}")
    done
fi
if [ ${#targets[@]} -eq 0 ]; then
    echo "fuzz/run.sh: no fuzz targets were built" >&2
    exit 1
fi

mkdir -p "$build/crashes" "$build/fuzz-logs" fuzz/crashes
rm -f "$build"/fuzz-logs/*

# One target: fuzz, then write "<status> <runs> <seconds> <artifact>" to its
# result file and print the report of a failure.
run_target() {
    local t=$1 bin="$build/fuzz/fuzz_$1" corpus="$build/corpus/$1"
    local log="$build/fuzz-logs/$1.log" result="$build/fuzz-logs/$1.result"
    local dict=() start end rc=0 runs artifact=- status=passed

    if [ ! -x "$bin" ]; then
        echo "failed 0 0 -" >"$result"
        echo "=== fuzz_$t: FAILED: no binary $bin"
        return
    fi
    mkdir -p "$corpus"
    [ -d "fuzz/corpus/$t" ] && cp -a "fuzz/corpus/$t/." "$corpus/"
    [ -f "fuzz/dict/$t.dict" ] && dict=("-dict=fuzz/dict/$t.dict")
    start=$(date +%s)
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1:allocator_may_return_null=0 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "$bin" -max_total_time="$seconds" -max_len="$(max_len_of "$t")" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$build/crashes/$t-" \
        "${dict[@]}" "$corpus" >"$log" 2>&1 || rc=$?
    end=$(date +%s)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1 || true)
    if [ "$rc" -ne 0 ]; then
        status=failed
        artifact=$(sed -n "s/.*Test unit written to \(.*\)$/\1/p" "$log" | tail -n 1)
        if [ -n "$artifact" ] && [ -f "$artifact" ]; then
            cp "$artifact" fuzz/crashes/
            artifact="fuzz/crashes/${artifact##*/}"
        else
            artifact=-
        fi
        {
            echo "=== fuzz_$t: FAILED (exit $rc), reproducer: $artifact"
            # the sanitizer's or the invariant's report, without the
            # progress lines before it
            grep -v -E '^#[0-9]+\s+(NEW|REDUCE|pulse|INITED|RELOAD)|^INFO:' "$log" | tail -n 80 || true
            echo "=== fuzz_$t: replay: $bin $artifact"
        } >"$log.report"
        cat "$log.report"
    fi
    echo "$status ${runs:-0} $((end - start)) $artifact" >"$result"
}

echo "=== fuzzing ${#targets[@]} targets, ${seconds} s each, $jobs at a time"
for t in "${targets[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
        wait -n || true
    done
    run_target "$t" &
done
wait

passed=0
failed=0
echo "=== fuzz results"
for t in "${targets[@]}"; do
    read -r status runs secs artifact <"$build/fuzz-logs/$t.result" || status=failed
    if [ "$status" = passed ]; then
        passed=$((passed + 1))
        printf '%-18s passed %12s runs %5s s\n' "fuzz_$t" "$runs" "$secs"
    else
        failed=$((failed + 1))
        printf '%-18s FAILED %12s runs %5s s  reproducer: %s\n' "fuzz_$t" "${runs:-0}" \
            "${secs:-0}" "${artifact:--}"
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
