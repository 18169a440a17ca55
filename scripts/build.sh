#!/usr/bin/env bash
# Configure and build coordhub with CMake.
#
#   scripts/build.sh [builddir] [extra cmake args...]
#
# builddir defaults to `build` (relative to the repository root); the build
# type defaults to what CMakeLists.txt chooses. Extra arguments go to the
# configure step, e.g. scripts/build.sh build-asan -DCOORDHUB_SANITIZE=ON.
# BUILD_TARGET=name builds that target only (scripts/run.sh builds coordhub).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
builddir="${1:-build}"
if (($# > 0)); then shift; fi
case "$builddir" in
  /*) ;;
  *) builddir="$root/$builddir" ;;
esac

jobs="$(nproc 2>/dev/null || echo 2)"
target=()
if [[ -n "${BUILD_TARGET:-}" ]]; then
  target=(--target "$BUILD_TARGET")
fi
cmake -S "$root" -B "$builddir" "$@"
cmake --build "$builddir" -j"$jobs" "${target[@]}"
