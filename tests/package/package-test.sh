#!/usr/bin/env bash
# The Debian package, end to end: a Release configure of the source tree in
# WORK/build (kept between runs, so a second run only relinks), `cpack -G
# DEB`, then checks of what an administrator gets:
#   - control: Depends names every library the hub links (dpkg-shlibdeps)
#     and the libwebsockets libuv plugin; the env file is a conffile; the
#     maintainer scripts parse, and run against stubs (postinst creates the
#     user and neither enables nor starts the service; prerm/postrm stop and
#     forget it);
#   - contents: the binary, the unit, the web demo, the env file (0600);
#   - the env file documents every variable of `coordhub --help`, with
#     defaults the binary accepts, and the secret commented out;
#   - the unit passes `systemd-analyze verify` (skipped, visibly, without
#     systemd-analyze);
#   - the extracted binary runs: --version, then against a private
#     redis-server on loopback with the packaged web demo: /readyz 200, the
#     demo's files served as shipped, SIGTERM, exit 0.
# Every process started here is stopped on exit; loopback only.
#
#   package-test.sh SOURCE_DIR WORK_DIR      (CMAKE, CPACK: the tools to use)
set -euo pipefail
src=$1 work=$2
cmake_bin=${CMAKE:-cmake}
cpack_bin=${CPACK:-cpack}
export MONGOC_DISABLE_SHM=1

t0=$(date +%s)
step() { printf '=== [%3ds] %s\n' "$(($(date +%s) - t0))" "$*"; }
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
need() { command -v "$1" >/dev/null 2>&1 || fail "$1 not found ($2)"; }
need dpkg-deb "dpkg"
need dpkg-shlibdeps "package dpkg-dev: cpack's CPACK_DEBIAN_PACKAGE_SHLIBDEPS needs it"
need redis-server "package redis-server"
need curl "package curl"
need node "Node.js, for a free port"

build=$work/build root=$work/root ctrl=$work/control run=$work/run
rm -rf "$root" "$ctrl" "$run"
mkdir -p "$build" "$run"
rm -f "$build"/coordhub_*.deb

hub_pid='' redis_pid=''
cleanup() {
    if [ -n "$hub_pid" ]; then kill -9 "$hub_pid" 2>/dev/null || true; fi
    if [ -n "$redis_pid" ]; then
        kill "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

show_log() {
    echo "--- last lines of $1" >&2
    tail -n "${2:-40}" "$1" >&2 || true
}

# --- build -----------------------------------------------------------------
step "configure (Release) in $build"
timeout 60 "$cmake_bin" -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DCOORDHUB_TESTS=OFF -DCOORDHUB_BENCH=OFF -DCOORDHUB_SANITIZE=OFF -DCOORDHUB_FUZZ=OFF \
    >"$work/configure.log" 2>&1 || {
    show_log "$work/configure.log"
    fail "configure"
}
step "build"
timeout 200 "$cmake_bin" --build "$build" -j"$(nproc 2>/dev/null || echo 2)" \
    >"$work/build.log" 2>&1 || {
    show_log "$work/build.log"
    fail "build (or longer than 200 s)"
}
step "cpack -G DEB"
(cd "$build" && timeout 60 "$cpack_bin" -G DEB) >"$work/cpack.log" 2>&1 || {
    show_log "$work/cpack.log"
    fail "cpack -G DEB"
}
debs=("$build"/coordhub_*.deb)
if [ "${#debs[@]}" -ne 1 ] || [ ! -f "${debs[0]}" ]; then
    fail "expected one coordhub_*.deb in $build: ${debs[*]}"
fi
deb=${debs[0]}
echo "package: $deb ($(stat -c %s "$deb") bytes)"

# --- control -----------------------------------------------------------------
step "dpkg-deb -I"
dpkg-deb -I "$deb"
depends=$(dpkg-deb -f "$deb" Depends)
[ "$(dpkg-deb -f "$deb" Package)" = coordhub ] || fail "Package is not coordhub"
# What the binary links, by soname, and the package that must provide it.
need_dep() {
    local re="(^|[, ])$1([ ,(]|$)"
    [[ "$depends" =~ $re ]] || fail "Depends lacks $1 ($2): $depends"
    echo "Depends has $1 ($2)"
}
need_dep 'libuv1' libuv
need_dep 'libwebsockets[0-9]+' libwebsockets
need_dep 'libwebsockets-evlib-uv' "libwebsockets' libuv plugin, dlopen()ed"
need_dep 'libhiredis[0-9.]+' hiredis
need_dep 'libjansson[0-9]+' jansson
need_dep 'libjwt[0-9]+' libjwt
need_dep 'libssl[0-9]+' "libssl/libcrypto"
need_dep 'libc6' libc
need_dep 'adduser' "postinst"
dpkg-deb -x "$deb" "$root"
bin=$root/usr/bin/coordhub
[ -x "$bin" ] || fail "no executable usr/bin/coordhub in the package"
if ldd "$bin" | grep -q 'libmongoc-1\.0'; then
    need_dep 'libmongoc-1\.0-[0-9]+' mongoc
fi
dpkg-deb -e "$deb" "$ctrl"
grep -qx /etc/coordhub/coordhub.env "$ctrl/conffiles" || fail "/etc/coordhub/coordhub.env is not a conffile"
for s in postinst prerm postrm; do
    [ -x "$ctrl/$s" ] || fail "no executable $s in the control area"
    sh -n "$ctrl/$s" || fail "$s does not parse"
done

step "maintainer scripts against stubs (no system change)"
stubs=$work/stubs calls=$work/stubs/calls
rm -rf "$stubs" && mkdir -p "$stubs"
for c in adduser deb-systemd-helper deb-systemd-invoke systemctl; do
    printf '#!/bin/sh\necho "%s $*" >>"%s"\n' "$c" "$calls" >"$stubs/$c"
done
# getent passwd coordhub: found once $STUB_USER_EXISTS=1 (an upgrade)
# shellcheck disable=SC2016 # expanded by the stub, not here
printf '#!/bin/sh\n[ "${STUB_USER_EXISTS:-0}" = 1 ] && echo "coordhub:x:999:999::/nonexistent:/usr/sbin/nologin" && exit 0\nexit 2\n' >"$stubs/getent"
# deb-systemd-helper debian-installed / was-enabled: "no" on a first install
printf '#!/bin/sh\necho "deb-systemd-helper $*" >>"%s"\ncase "$*" in *debian-installed*|*was-enabled*) exit 1;; esac\nexit 0\n' "$calls" >"$stubs/deb-systemd-helper"
chmod +x "$stubs"/*
run_script() { # NAME ARGS...: run a maintainer script with the stubs first on PATH
    local name=$1
    shift
    : >"$calls"
    PATH="$stubs:$PATH" sh "$ctrl/$name" "$@" || fail "$name $* exited $?"
    echo "$name $*: $(tr '\n' ';' <"$calls")"
}
run_script postinst configure
if ! grep -q '^adduser .*--system' "$calls" || ! grep -q '^adduser .*--group' "$calls" ||
    ! grep -q '^adduser .* coordhub$' "$calls"; then
    fail "postinst configure did not create the system user coordhub"
fi
if grep -Eq '(enable|start|restart)( |$)' "$calls"; then fail "postinst enabled or started the service on a first install"; fi
STUB_USER_EXISTS=1 run_script postinst configure 0.0.9-1
if grep -q '^adduser' "$calls"; then fail "postinst ran adduser for an existing user"; fi
run_script prerm upgrade 0.1.1-1
run_script prerm remove
run_script postrm remove
run_script postrm purge
if [ -x /usr/bin/deb-systemd-helper ]; then
    grep -q '^deb-systemd-helper purge coordhub.service' "$calls" || fail "postrm purge did not purge the unit's state"
fi

# --- contents ---------------------------------------------------------------
step "dpkg-deb -c"
dpkg-deb -c "$deb" | tee "$work/contents.txt"
has() { # MODE-REGEX PATH
    grep -Eq "^$1 [^ ]+ +[0-9]+ [0-9-]+ [0-9:]+ \./$2\$" "$work/contents.txt" || fail "the package lacks ./$2 (mode $1)"
}
has '-rwxr-xr-x' usr/bin/coordhub
has '-rw-r--r--' lib/systemd/system/coordhub.service
has '-rw-------' etc/coordhub/coordhub.env
has '-rw-r--r--' usr/share/doc/coordhub/coordhub.env.example
for f in "$src"/web-demo/*; do
    has '-rw-r--r--' "usr/share/coordhub/web-demo/$(basename "$f")"
done

# --- the environment file ---------------------------------------------------
step "the environment file against coordhub --help"
env_file=$root/etc/coordhub/coordhub.env
help=$("$bin" --help)
vars=$(grep -oE '\b[A-Z][A-Z0-9]*(_[A-Z0-9]+)+\b' <<<"$help" | sort -u)
[ -n "$vars" ] || fail "no variables found in coordhub --help"
for v in $vars; do
    grep -Eq "^#?$v=" "$env_file" || fail "$v (coordhub --help) is not in the env file"
done
echo "all $(wc -w <<<"$vars") variables of --help are documented: $(tr '\n' ' ' <<<"$vars")"
if grep -Eq '^[[:space:]]*COORDHUB_JWT_SECRET=' "$env_file"; then fail "the secret is not commented out"; fi
bad=$(grep -Ev '^[[:space:]]*(#|$)' "$env_file" | grep -Ev '^[A-Z_][A-Z0-9_]*=' || true)
[ -z "$bad" ] || fail "env file lines systemd would not read as VAR=value: $bad"
# The shown defaults, uncommented, are what --help says and what the hub runs with below.
defaults=()
while IFS= read -r line; do
    value=${line#*=}
    grep -qF -- "$value" <<<"$help" || fail "default '$line' in the env file is not in coordhub --help"
    defaults+=("$line")
done < <(sed -n 's/^#\([A-Z][A-Z0-9_]*=.\+\)$/\1/p' "$env_file")
echo "defaults shown: ${defaults[*]}"
cmp "$env_file" "$root/usr/share/doc/coordhub/coordhub.env.example" || fail "the example differs from the conffile"

# --- the unit ----------------------------------------------------------------
step "the systemd unit"
unit=$root/lib/systemd/system/coordhub.service
for d in Type=simple Restart=on-failure User=coordhub ExecStart=/usr/bin/coordhub \
    EnvironmentFile=/etc/coordhub/coordhub.env Environment=MONGOC_DISABLE_SHM=1 \
    KillSignal=SIGTERM LimitNOFILE=65536 ProtectSystem=strict ProtectHome=yes \
    NoNewPrivileges=yes PrivateTmp=yes PrivateDevices=yes CapabilityBoundingSet= \
    SystemCallFilter=@system-service; do
    grep -qx -- "$d" "$unit" || fail "the unit lacks $d"
done
stop=$(sed -n 's/^TimeoutStopSec=\([0-9]\+\)s\?$/\1/p' "$unit")
if [ -z "$stop" ] || [ "$stop" -le 3 ] || [ "$stop" -gt 30 ]; then
    fail "TimeoutStopSec=${stop:-?} should be a little above the hub's ~3 s stop"
fi
if command -v systemd-analyze >/dev/null 2>&1; then
    # As shipped, but for ExecStart: verify checks that the binary exists,
    # and here it is in the scratch root.
    mkdir -p "$work/verify"
    sed "s|^ExecStart=/usr/bin/coordhub|ExecStart=$bin|" "$unit" >"$work/verify/coordhub.service"
    out=$(systemd-analyze verify "$work/verify/coordhub.service" 2>&1) || fail "systemd-analyze verify: $out"
    [ -z "$out" ] || fail "systemd-analyze verify warns: $out"
    echo "systemd-analyze verify: ok"
    systemd-analyze security --offline=true "$work/verify/coordhub.service" 2>/dev/null |
        grep 'Overall exposure' || true
else
    echo "SKIPPED: systemd-analyze verify (systemd-analyze not installed)"
fi

# --- run the packaged binary -------------------------------------------------
step "run the extracted binary"
"$bin" --version
ver=$("$bin" --version | awk '{print $2}')
[ "$(dpkg-deb -f "$deb" Version)" = "$ver-1" ] || fail "package version $(dpkg-deb -f "$deb" Version) is not the binary's $ver-1"

freeport() {
    node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}
rport=$(freeport)
hport=$(freeport)
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$run" \
    --logfile "$run/redis.log" &
redis_pid=$!
for _ in $(seq 100); do
    redis-cli -p "$rport" ping 2>/dev/null | grep -q PONG && break
    sleep 0.05
done
redis-cli -p "$rport" ping 2>/dev/null | grep -q PONG || {
    show_log "$run/redis.log"
    fail "redis-server did not start"
}

webroot=$root/usr/share/coordhub/web-demo
env "${defaults[@]}" COORDHUB_JWT_SECRET="pkg-test-$RANDOM$RANDOM" \
    "$bin" --listen "127.0.0.1:$hport" --redis "redis://127.0.0.1:$rport/0" \
    --web-root "$webroot" 2>"$run/hub.log" &
hub_pid=$!
ready=0
for _ in $(seq 200); do # 20 s
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$hport/readyz")" = 200 ]; then
        ready=1
        break
    fi
    kill -0 "$hub_pid" 2>/dev/null || break
    sleep 0.1
done
[ "$ready" = 1 ] || {
    show_log "$run/hub.log"
    fail "/readyz was not 200 within 20 s"
}
echo "/readyz 200 after $(($(date +%s) - t0)) s of the test"
curl -sf -o "$run/index.html" "http://127.0.0.1:$hport/" || fail "GET / failed"
cmp "$run/index.html" "$webroot/index.html" || fail "GET / is not the web demo's index.html"
for f in "$webroot"/*; do
    name=$(basename "$f")
    curl -sf -o "$run/$name" "http://127.0.0.1:$hport/$name" || fail "GET /$name failed"
    cmp "$run/$name" "$f" || fail "GET /$name differs from the packaged file"
done
echo "web demo served from the package: $(cd "$webroot" && echo *)"

kill -TERM "$hub_pid"
for _ in $(seq 150); do # 15 s
    kill -0 "$hub_pid" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$hub_pid" 2>/dev/null; then
    show_log "$run/hub.log"
    fail "the hub did not exit within 15 s of SIGTERM"
fi
rc=0
wait "$hub_pid" || rc=$?
hub_pid=
[ "$rc" = 0 ] || {
    show_log "$run/hub.log"
    fail "the hub exited $rc after SIGTERM"
}
echo "SIGTERM: exit 0"
step "ok"
