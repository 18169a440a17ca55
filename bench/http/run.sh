#!/usr/bin/env bash
# bench/http/run.sh: the hub's HTTP API side by side with what it stands on,
# measured in one run, server on one core, load generator on the other:
#
#   (a) system calls per lock request: strace -f -c on the hub over a wrk
#       run of lock cycles (bench/http/lock.lua), divided by the requests
#       the hub counted (coordhub_http_requests_total) in that window;
#   (b) lock acquire+release cycles/s through the hub (wrk, lock.lua) at 1,
#       4 and 16 connections, against the same two Lua scripts (locks.c)
#       sent by redis-benchmark with EVALSHA to the same Redis;
#   (c) GET /healthz req/s, hub against Debian's nginx answering
#       `return 200` on the same core, 16 connections;
#   (d) GET /v1/config/<key> req/s (an L1 hit), 16 connections.
#
# The "server" core (SERVER_CPU, default 0) runs the hub and Redis in the
# hub's runs, Redis alone in redis-benchmark's, nginx in nginx's: each side
# of a ratio is the whole server side on one core. wrk and redis-benchmark
# run on GEN_CPU (default 1). About 2 minutes.
#
#   bench/http/run.sh                  # COORDHUB_BIN, default build-release/coordhub
#   SECONDS_PER_CELL=5 bench/http/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

BIN=${COORDHUB_BIN:-}
if [ -z "$BIN" ]; then
    for b in build-release/coordhub build/coordhub; do
        [ -x "$b" ] && { BIN=$b; break; }
    done
fi
[ -n "$BIN" ] && [ -x "$BIN" ] || { echo "no coordhub binary (build it, or set COORDHUB_BIN)" >&2; exit 1; }
for tool in wrk redis-server redis-benchmark redis-cli strace taskset nginx curl; do
    command -v "$tool" >/dev/null || { echo "missing: $tool (apt-get install wrk redis-tools strace nginx curl)" >&2; exit 1; }
done
SERVER_CPU=${SERVER_CPU:-0}
GEN_CPU=${GEN_CPU:-1}
D=${SECONDS_PER_CELL:-5}
STRACE_SECONDS=${STRACE_SECONDS:-6}

TMP=$(mktemp -d /tmp/coordhub-httpbench.XXXXXX)
chmod 755 "$TMP" # nginx's workers run as nobody when we are root
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -f "$TMP/nginx.pid" ] && kill "$(cat "$TMP/nginx.pid")" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RPORT=$(freeport)
HPORT=$(freeport)
NPORT=$(freeport)
SECRET=benchsecret-$$

taskset -c "$SERVER_CPU" redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$TMP" --logfile "$TMP/redis.log" &
PIDS+=($!)
for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

taskset -c "$SERVER_CPU" "$BIN" --listen "127.0.0.1:$HPORT" --redis "redis://127.0.0.1:$RPORT/0" \
    --jwt-secret "$SECRET" --log-level warn 2>"$TMP/hub.log" &
HUB=$!
PIDS+=($HUB)
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$HPORT/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$HPORT/readyz" >/dev/null || { echo "the hub did not start:" >&2; cat "$TMP/hub.log" >&2; exit 1; }
export TOKEN
TOKEN=$("$BIN" token --sub bench --roles service,admin --ttl 3600 --jwt-secret "$SECRET")
URL=http://127.0.0.1:$HPORT
gen() { taskset -c "$GEN_CPU" "$@"; }
reqs() { curl -s "$URL/metrics" | awk '/^coordhub_http_requests_total /{print $2}'; }
rps() { awk '/^Requests\/sec:/{printf "%.0f", $2}'; }
# "cycles N failed F cycles/s R": a failed cycle makes the figure worthless
cps() { awk '/^cycles /{if ($4 != 0) {print "FAILED(" $4 ")"; exit} print $6}'; }

echo "# coordhub HTTP bench: $(nproc) CPUs, server on CPU $SERVER_CPU, generator on CPU $GEN_CPU"
echo "# $BIN ($(git rev-parse --short HEAD 2>/dev/null || echo '?')), $(redis-server --version | cut -d' ' -f3), $(nginx -v 2>&1 | cut -d' ' -f3), $(wrk --version 2>&1 | head -1 | cut -d' ' -f2)"
echo

# ---- (a) system calls per lock request
RUN=warm gen wrk -t1 -c1 -d1s -s bench/http/lock.lua "$URL" >/dev/null # warm-up: scripts loaded
r0=$(reqs)
strace -f -c -o "$TMP/strace.txt" -p "$HUB" 2>/dev/null &
ST=$!
sleep 0.5 # attached
RUN=strace gen wrk -t1 -c1 -d"${STRACE_SECONDS}s" -s bench/http/lock.lua "$URL" >"$TMP/wrk-strace.txt"
kill -INT "$ST"
wait "$ST" 2>/dev/null || true
r1=$(reqs)
n=$((r1 - r0 - 1)) # the second /metrics read is counted at its arrival, outside the window
echo "## (a) system calls per lock request (strace -f -c -p <hub>, wrk -t1 -c1 lock.lua, ${n} requests)"
echo
echo "| syscall | calls | per request |"
echo "|---|---:|---:|"
awk -v n="$n" '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" {name=$NF; calls=$4;
        printf "| %s | %d | %.2f |\n", name, calls, calls/n; tot+=calls}
     END {printf "| **total** | %d | **%.2f** |\n", tot, tot/n}' "$TMP/strace.txt"
echo

# ---- (b) lock cycles, hub against redis-benchmark on the same scripts
ACQ=$(redis-cli -p "$RPORT" SCRIPT LOAD "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1, redis.call('INCR', KEYS[2])} end return {0, redis.call('PTTL', KEYS[1])}")
REL=$(redis-cli -p "$RPORT" SCRIPT LOAD "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) redis.call('PUBLISH', 'coordhub:lock-released', KEYS[1]) return 1 end return 0")
echo "## (b) lock acquire+release cycles/s: hub (wrk lock.lua) vs the same scripts by redis-benchmark (EVALSHA)"
echo
echo "| connections | hub cycles/s | direct acquire/s | direct release/s | direct cycles/s | direct / hub |"
echo "|---:|---:|---:|---:|---:|---:|"
for c in 1 4 16; do
    hub=$(RUN=c$c gen wrk -t"$c" -c"$c" -d"${D}s" -s bench/http/lock.lua "$URL" | cps)
    n=$((c * 8000 * D / 5 + 20000))
    # acquire: a fresh random name each time (the SET NX path that wins and
    # INCRs a fence); release: the hub's release script on random names
    # (its GET misses: no DEL, no PUBLISH), so the direct figure is an
    # upper bound and the ratio a little in the hub's disfavour.
    acq=$(gen redis-benchmark -p "$RPORT" -c "$c" -n "$n" -r 100000000 -q \
        EVALSHA "$ACQ" 2 'bench:lock:__rand_int__' 'bench:fence:__rand_int__' tok 60000 |
        awk '{for (i=1;i<=NF;i++) if ($i ~ /requests/) {print int($(i-1)); exit}}')
    rel=$(gen redis-benchmark -p "$RPORT" -c "$c" -n "$n" -r 100000000 -q \
        EVALSHA "$REL" 1 'bench:lock:__rand_int__' tok |
        awk '{for (i=1;i<=NF;i++) if ($i ~ /requests/) {print int($(i-1)); exit}}')
    cyc=$(awk -v a="$acq" -v r="$rel" 'BEGIN{printf "%.0f", 1/(1/a+1/r)}')
    echo "| $c | $hub | $acq | $rel | $cyc | $(awk -v d="$cyc" -v h="$hub" 'BEGIN{printf "%.2f", d/h}') |"
done
redis-cli -p "$RPORT" --scan --pattern 'bench:*' | xargs -r -n 1000 redis-cli -p "$RPORT" DEL >/dev/null
echo

# ---- (c) GET /healthz, hub against nginx `return 200` on the same core
cat >"$TMP/nginx.conf" <<EOF
worker_processes 1;
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $TMP/client_body;
    proxy_temp_path $TMP/proxy;
    fastcgi_temp_path $TMP/fastcgi;
    uwsgi_temp_path $TMP/uwsgi;
    scgi_temp_path $TMP/scgi;
    keepalive_requests 100000000;
    server {
        listen 127.0.0.1:$NPORT;
        location = /healthz { default_type application/json; return 200 '{"status":"ok"}'; }
    }
}
EOF
taskset -c "$SERVER_CPU" nginx -p "$TMP/" -c "$TMP/nginx.conf" -g 'daemon on;'
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$NPORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
hz=$(gen wrk -t2 -c16 -d"${D}s" "$URL/healthz" | rps)
ng=$(gen wrk -t2 -c16 -d"${D}s" "http://127.0.0.1:$NPORT/healthz" | rps)
kill "$(cat "$TMP/nginx.pid")"
echo "## (c) GET /healthz req/s, 16 connections (wrk -t2 -c16)"
echo
echo "| hub | nginx return 200 | nginx / hub |"
echo "|---:|---:|---:|"
echo "| $hz | $ng | $(awk -v a="$ng" -v b="$hz" 'BEGIN{printf "%.2f", a/b}') |"
echo

# ---- (d) GET /v1/config/<key>, an L1 hit, token verified on each request
curl -sf -X PUT -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    --data '{"value":{"limit":42},"category":"bench"}' "$URL/v1/config/bench.key" >/dev/null
cfg=$(gen wrk -t2 -c16 -d"${D}s" -H "Authorization: Bearer $TOKEN" "$URL/v1/config/bench.key" | rps)
echo "## (d) GET /v1/config/<key> req/s, 16 connections (wrk -t2 -c16, Bearer token)"
echo
echo "| hub | vs /healthz |"
echo "|---:|---:|"
echo "| $cfg | $(awk -v a="$cfg" -v b="$hz" 'BEGIN{printf "%.2f", a/b}') |"
