#!/usr/bin/env bash
# The test command: installs what is missing, builds twice (plain, and with
# AddressSanitizer + UndefinedBehaviorSanitizer) and runs every test of
# ctest in both builds, compiles Release with the benchmark programs
# (build-release, no tests), then runs every fuzz target for a bounded time
# (fuzz/run.sh). .ci/run calls exactly this.
#
#   scripts/test.sh            everything
#   scripts/test.sh -R unit    extra arguments go to ctest (both builds)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh test

if [ -f tests/package-lock.json ]; then
    (cd tests && npm ci --no-audit --no-fund --loglevel=error)
fi

ctest_extra=("$@")
jobs=$(nproc 2>/dev/null || echo 2)
status=0

run_suite() {
    local dir=$1; shift
    echo "=== $dir: configure and build"
    cmake -S . -B "$dir" "$@" >/dev/null
    cmake --build "$dir" -j"$jobs"
    echo "=== $dir: ctest"
    # ASan/UBSan settings are harmless in the plain build and make the
    # sanitized one fail loudly: leaks at exit, any UB report.
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0" \
        ctest --test-dir "$dir" --output-on-failure -j"$jobs" --timeout 300 \
        "${ctest_extra[@]}" || status=1
}

run_suite build -DCMAKE_BUILD_TYPE=RelWithDebInfo
run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DCOORDHUB_SANITIZE=ON

# --- release: the build type packagers use, with the benchmark programs
# (COORDHUB_BENCH), compiled only: no tests are built or run there. Its
# optimiser finds warnings the other builds do not (-Werror), so a warning
# in Release or in bench/ fails the run.
echo "=== build-release: configure and build (Release, COORDHUB_BENCH=ON, compile only)"
if cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DCOORDHUB_BENCH=ON \
    -DCOORDHUB_TESTS=OFF >/dev/null &&
    cmake --build build-release -j"$jobs"; then
    echo "=== build-release: ok"
else
    echo "=== build-release: FAILED"
    status=1
fi

# --- fuzz: each parser's libFuzzer target (clang, ASan + UBSan) for a bounded
# time in build-fuzz/; a crash fails the run, its reproducer is kept in
# fuzz/crashes/. FUZZ_SECONDS per target (default 20; 0 skips, visibly).
fuzz_seconds=${FUZZ_SECONDS:-20}
if [ "$fuzz_seconds" = 0 ]; then
    echo "=== build-fuzz: SKIPPED (FUZZ_SECONDS=0)"
else
    echo "=== build-fuzz: libFuzzer targets, ${fuzz_seconds} s each"
    bash fuzz/run.sh "$fuzz_seconds" || status=1
fi
# --- end fuzz ---

if [ "$status" -ne 0 ]; then
    echo "=== FAILED: see the ctest, build-release and fuzz output above"
fi
exit "$status"
