#!/usr/bin/env bash
# Install what coordhub needs on a Debian 12 machine, and nothing already there.
#
#   scripts/deps.sh [run|test]
#
#   run   what building and running the hub needs: compiler, CMake, the
#         libraries, redis-server and redis-cli, curl.
#   test  (default) everything: run, plus clang's sanitizer runtime, valgrind,
#         Node.js and npm for the integration tests, Chromium for browser tests.
#
# Idempotent: packages are checked with dpkg-query, `apt-get update` runs once
# and only if something is missing. Runs as root, or through sudo if present.
set -euo pipefail

group="${1:-test}"

run_pkgs=(
  build-essential cmake pkg-config
  libuv1-dev libhiredis-dev libwebsockets-dev libwebsockets-evlib-uv
  libjansson-dev libjwt-dev libmongoc-dev libbson-dev libssl-dev
  # the default build also builds the unit tests (COORDHUB_TESTS=ON)
  libcmocka-dev
  redis-server redis-tools curl procps
)
test_pkgs=(
  clang libclang-rt-14-dev valgrind chromium nginx
  # systemd-analyze verify of the packaged unit (tests/package)
  systemd
)

case "$group" in
  run) wanted=("${run_pkgs[@]}") ;;
  test | all) wanted=("${run_pkgs[@]}" "${test_pkgs[@]}") ;;
  -h | --help)
    sed -n '2,12s/^# \{0,1\}//p' "$0"
    exit 0
    ;;
  *)
    echo "deps.sh: unknown group '$group' (expected 'run' or 'test')" >&2
    exit 2
    ;;
esac

# Node.js may come from somewhere other than Debian (e.g. a vendor .deb that
# ships npm inside it); never replace an existing node or npm with Debian's.
if [[ "$group" != run ]]; then
  command -v node >/dev/null 2>&1 || wanted+=(nodejs)
  command -v npm >/dev/null 2>&1 || wanted+=(npm)
fi

is_installed() {
  local status
  status="$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)"
  [[ "$status" == "install ok installed" ]]
}

missing=()
for pkg in "${wanted[@]}"; do
  is_installed "$pkg" || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
  echo "deps.sh: all ${#wanted[@]} packages for '$group' are installed; nothing to do"
  exit 0
fi

sudo_cmd=()
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo_cmd=(sudo)
  else
    echo "deps.sh: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
fi

echo "deps.sh: installing ${missing[*]}"
"${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq "${missing[@]}" >/dev/null
echo "deps.sh: done"
