#!/usr/bin/env bash
# bench/polling/run.sh: fan-out to Socket.IO clients on Engine.IO HTTP
# long-polling ONLY, coordhub against the Node Socket.IO peer, one command.
#
#   bench/polling/run.sh             # about 3 minutes per run on 2 vCPUs
#   RUNS=2 bench/polling/run.sh      # two runs back to back, both in one report
#   QUICK=1 bench/polling/run.sh     # a smoke run of under a minute (checks the tool, not figures)
#
# For each row (ROWS, default "hub hub-keepalive peer peer-keepalive"): a private
# redis-server and a fresh server, the server pinned to CPU 0 and the
# generator + Redis to CPU 1 (taskset, when there are two CPUs); the
# generator (gen.mjs) connects CLIENTS polling clients, one user each, and
# steps the publish rate (RATES, msg/s to random users, STEP_SECONDS each),
# stopping at the first step with loss, a duplicate, a dropped session or p99
# over MAX_P99_MS. Before the first step it measures the server's CPU with
# every client waiting and nothing published (IDLE_SECONDS); after the
# generator exits, the server's CPU over AFTER_SECONDS while the clients'
# abandoned polls are closed. Rows:
#   hub             build/coordhub, every request a new TCP connection
#   peer            node bench/peer/server.mjs --transports polling,websocket,
#                   same client: a new TCP connection per request
#   peer-keepalive  the peer, the client keeping its connections alive
#   hub-keepalive   coordhub, the client keeping its connections alive
# Writes RESULTS (default bench/polling/results.md) and prints it; raw JSON
# lines and every process's log in OUT (default build/bench/polling). With
# QUICK=1 both go to build/bench/polling-quick/.
#
# Environment: QUICK, RUNS, ROWS, CLIENTS, RATES (comma-separated msg/s),
# STEP_SECONDS, DRAIN_SECONDS, IDLE_SECONDS, AFTER_SECONDS, MAX_P99_MS,
# GEN_HTTP (raw|node), COORDHUB_BIN (default build/coordhub, built or
# brought up to date first; NO_BUILD=1 to use it as it is), REDIS_SERVER,
# RESULTS, OUT, WATCHDOG_SECONDS.
#
# Bounded: loopback only; every process it starts is stopped on exit (by
# pid); the generator has its own deadline and runs under `timeout`; a
# watchdog ends the whole run after WATCHDOG_SECONDS.
set -euo pipefail
export MONGOC_DISABLE_SHM=1

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bench=$(dirname "$here")
repo=$(dirname "$bench")
cd "$repo"

QUICK=${QUICK:-0}
RUNS=${RUNS:-1}
ROWS=${ROWS:-hub hub-keepalive peer peer-keepalive}
if [ "$QUICK" = 1 ]; then
  CLIENTS=${CLIENTS:-50}
  RATES=${RATES:-100,500}
  STEP_SECONDS=${STEP_SECONDS:-2}
  DRAIN_SECONDS=${DRAIN_SECONDS:-3}
  IDLE_SECONDS=${IDLE_SECONDS:-1}
  AFTER_SECONDS=${AFTER_SECONDS:-2}
else
  CLIENTS=${CLIENTS:-200}
  RATES=${RATES:-200,1000,2000}
  STEP_SECONDS=${STEP_SECONDS:-15}
  DRAIN_SECONDS=${DRAIN_SECONDS:-10}
  IDLE_SECONDS=${IDLE_SECONDS:-5}
  AFTER_SECONDS=${AFTER_SECONDS:-5}
fi
MAX_P99_MS=${MAX_P99_MS:-1000}
GEN_HTTP=${GEN_HTTP:-raw}
HUB_BIN=${COORDHUB_BIN:-$repo/build/coordhub}
REDIS_BIN=${REDIS_SERVER:-$(command -v redis-server || echo /usr/bin/redis-server)}
OUT=${OUT:-$repo/build/bench/polling$([ "$QUICK" != 1 ] || echo -quick)}
# a QUICK run does not replace the report (or the raw data) of a real one
RESULTS=${RESULTS:-$([ "$QUICK" = 1 ] && echo "$OUT/results.md" || echo "$here/results.md")}
nsteps=$(($(tr -cd , <<<"$RATES" | wc -c) + 1))
# the generator's own deadline: connect + steps x (step + drain + 1) + slack
GEN_MAX=$((60 + IDLE_SECONDS + nsteps * (STEP_SECONDS + DRAIN_SECONDS + 3)))
nrows=$(wc -w <<<"$ROWS")
WATCHDOG_SECONDS=${WATCHDOG_SECONDS:-$((RUNS * nrows * (GEN_MAX + AFTER_SECONDS + 40) + 120))}
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
SECRET=bench-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')

log() { printf '[polling %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
fail() { log "ERROR: $*"; exit 1; }

for t in node npm timeout; do command -v "$t" >/dev/null || fail "$t is required"; done
[ -x "$REDIS_BIN" ] || fail "redis-server not found (set REDIS_SERVER)"
mkdir -p "$OUT/logs"

# ------------------------------------------------------------------ builds
# The hub: configured as build/ RelWithDebInfo if there is no build tree,
# then brought up to date with the work tree (an incremental build, as
# bench/run.sh does; NO_BUILD=1 uses build/coordhub as it is).
if [ -z "${COORDHUB_BIN:-}" ] && [ "${NO_BUILD:-0}" != 1 ]; then
  command -v cmake >/dev/null || fail "cmake is required to build the hub (or set COORDHUB_BIN)"
  if [ ! -f "$repo/build/CMakeCache.txt" ]; then
    log "configuring the hub (build/, RelWithDebInfo)"
    cmake -S "$repo" -B "$repo/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$OUT/logs/cmake.log" 2>&1 ||
      { tail -20 "$OUT/logs/cmake.log"; fail "cmake configure failed"; }
  fi
  log "building the hub (cmake --build build --target coordhub)"
  cmake --build "$repo/build" --target coordhub -j 2 >"$OUT/logs/build.log" 2>&1 ||
    { tail -30 "$OUT/logs/build.log"; fail "hub build failed"; }
fi
[ -x "$HUB_BIN" ] || fail "no hub binary at $HUB_BIN"
if [ ! -f "$bench/peer/node_modules/.package-lock.json" ] ||
  [ "$bench/peer/package-lock.json" -nt "$bench/peer/node_modules/.package-lock.json" ]; then
  log "installing the peer's packages (npm ci in bench/peer)"
  (cd "$bench/peer" && npm ci --no-audit --no-fund >"$OUT/logs/npm.log" 2>&1) ||
    { tail -20 "$OUT/logs/npm.log"; fail "npm ci failed"; }
fi

# ------------------------------------------------------------------ pinning
SRV_PIN=() GEN_PIN=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ] && taskset -c 1 true 2>/dev/null; then
  SRV_PIN=(taskset -c 0) GEN_PIN=(taskset -c 1)
  PINNING="server on CPU 0; generator and Redis on CPU 1 (taskset)"
else
  PINNING="not pinned (taskset or a second CPU unavailable)"
fi

# ------------------------------------------------------------------ processes
PIDS=()
WD_PID=
cleanup() {
  local p
  [ -n "$WD_PID" ] && kill "$WD_PID" 2>/dev/null || true
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 0.2
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated (watchdog?)"; exit 143' TERM

# The watchdog: TERM to this script after WATCHDOG_SECONDS; the script waits
# on its children with `wait` (interruptible), so the EXIT trap runs at once
# and stops them.
# (Its sleep is its own child, killed with it, so nothing outlives the run.)
(
  trap 'kill "$wd_sleep" 2>/dev/null; exit 0' TERM
  sleep "$WATCHDOG_SECONDS" &
  wd_sleep=$!
  wait "$wd_sleep"
  echo "[polling $(date +%H:%M:%S)] WATCHDOG: still running after $WATCHDOG_SECONDS s; stopping" >&2
  kill -TERM $$ 2>/dev/null
) &
WD_PID=$!

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 10000)) # below the ephemeral range
    if port_free "$p"; then echo "$p"; return; fi
  done
  fail "no free port"
}
http_ok() { # port path
  (exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET %s HTTP/1.0\r\n\r\n' "$2" >&3 &&
    head -c 12 <&3 | grep -q ' 200') 2>/dev/null
}
wait_ready() { # port path pid logfile what
  for _ in $(seq 200); do
    http_ok "$1" "$2" && return 0
    kill -0 "$3" 2>/dev/null || { tail -20 "$4" >&2; fail "$5 exited while starting"; }
    sleep 0.05
  done
  fail "$5 not ready on port $1 within 10 s"
}
stop_pid() { # pid what jsonl: SIGTERM, up to 10 s, then SIGKILL; records how it ended
  local pid=$1 what=$2 jsonl=$3 rc
  if ! kill -0 "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null && rc=0 || rc=$?
    log "WARNING: $what (pid $pid) had already exited (status $rc)"
    echo "{\"label\":\"$what\",\"kind\":\"event\",\"event\":\"exited before the end of its row (status $rc)\"}" >>"$jsonl"
    return
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  if kill -0 "$pid" 2>/dev/null; then
    log "WARNING: $what (pid $pid) had not exited 10 s after SIGTERM; killing it"
    echo "{\"label\":\"$what\",\"kind\":\"event\",\"event\":\"had not exited 10 s after SIGTERM; SIGKILLed\"}" >>"$jsonl"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null && rc=0 || rc=$?
  [ "$rc" = 0 ] || log "NOTE: $what exited with status $rc after SIGTERM"
}

# After the generator exited (its clients vanished with a GET in flight
# each, as browser tabs closing would): the server's CPU over AFTER_SECONDS,
# and how many of its connections were in CLOSE-WAIT (the client closed,
# the server had not) at the start and at the end of that window.
after_clients() { # pid port row jsonl
  local pid=$1 port=$2 row=$3 jsonl=$4 a b cw0 cw1
  [ "$AFTER_SECONDS" -gt 0 ] && kill -0 "$pid" 2>/dev/null || return 0
  cw0=$(ss -Htn state close-wait "( sport = :$port )" 2>/dev/null | wc -l)
  a=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  sleep "$AFTER_SECONDS"
  b=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  cw1=$(ss -Htn state close-wait "( sport = :$port )" 2>/dev/null | wc -l)
  echo "{\"label\":\"$row\",\"kind\":\"after\",\"seconds\":$AFTER_SECONDS,\"server_cpu_pct\":$(((b - a) * 100 / CLK_TCK / AFTER_SECONDS)),\"close_wait_start\":$cw0,\"close_wait_end\":$cw1}" >>"$jsonl"
  log "$row: after the clients vanished: server CPU $(((b - a) * 100 / CLK_TCK / AFTER_SECONDS))% over ${AFTER_SECONDS} s; CLOSE-WAIT connections $cw0 -> $cw1"
}

run_row() { # run row jsonl
  local run=$1 row=$2 jsonl=$3 kind keepalive redis_port redis_dir redis_pid port srv_pid gen_pid rc srvlog
  case "$row" in
    hub) kind=hub keepalive=0 ;;
    hub-keepalive) kind=hub keepalive=1 ;;
    peer) kind=peer keepalive=0 ;;
    peer-keepalive) kind=peer keepalive=1 ;;
    *) fail "unknown row $row" ;;
  esac
  redis_port=$(pick_port)
  redis_dir=$(mktemp -d "${TMPDIR:-/tmp}/bench-polling-redis.XXXXXX")
  "${GEN_PIN[@]}" "$REDIS_BIN" --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$redis_dir" >"$OUT/logs/run$run-$row.redis.log" 2>&1 &
  redis_pid=$!
  PIDS+=("$redis_pid")
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && break
    sleep 0.05
  done
  port=$(pick_port)
  srvlog="$OUT/logs/run$run-$row.server.log"
  case "$kind" in
    hub)
      "${SRV_PIN[@]}" "$HUB_BIN" --listen "127.0.0.1:$port" --redis "redis://127.0.0.1:$redis_port/0" \
        --jwt-secret "$SECRET" --log-level warn >"$srvlog" 2>&1 &
      ;;
    peer)
      "${SRV_PIN[@]}" node "$bench/peer/server.mjs" --listen "127.0.0.1:$port" \
        --redis "redis://127.0.0.1:$redis_port/0" --jwt-secret "$SECRET" \
        --transports polling,websocket >"$srvlog" 2>&1 &
      ;;
  esac
  srv_pid=$!
  PIDS+=("$srv_pid")
  wait_ready "$port" /readyz "$srv_pid" "$srvlog" "$row"
  sleep 1
  log "run $run, $row: server pid $srv_pid on port $port, redis pid $redis_pid; $CLIENTS clients, rates $RATES msg/s, ${STEP_SECONDS} s steps"
  "${GEN_PIN[@]}" timeout -k 5 $((GEN_MAX + 15)) node "$here/gen.mjs" --port "$port" --redis-port "$redis_port" \
    --jwt-secret "$SECRET" --clients "$CLIENTS" --rates "$RATES" --step-seconds "$STEP_SECONDS" \
    --drain-seconds "$DRAIN_SECONDS" --idle-seconds "$IDLE_SECONDS" --keepalive "$keepalive" --http "$GEN_HTTP" --server-pid "$srv_pid" \
    --redis-pid "$redis_pid" --label "$row" --max-p99-ms "$MAX_P99_MS" --max-seconds "$GEN_MAX" \
    >>"$jsonl" 2> >(tee -a "$OUT/logs/run$run-$row.gen.log" >&2) &
  gen_pid=$!
  PIDS+=("$gen_pid")
  rc=0
  wait "$gen_pid" || rc=$?
  if [ "$rc" != 0 ]; then
    log "NOTE: the generator for $row exited with status $rc"
    echo "{\"label\":\"$row\",\"kind\":\"event\",\"event\":\"generator exited with status $rc\"}" >>"$jsonl"
  fi
  after_clients "$srv_pid" "$port" "$row" "$jsonl"
  stop_pid "$srv_pid" "$row" "$jsonl"
  stop_pid "$redis_pid" "$row-redis" "$jsonl"
  rm -rf "$redis_dir"
}

hub_version=$("$HUB_BIN" --version 2>/dev/null | head -1 || true)
hub_commit=$(git -C "$repo" --no-optional-locks rev-parse --short HEAD 2>/dev/null || echo unknown)
hub_dirty=$(git -C "$repo" --no-optional-locks status --porcelain --untracked-files=no -- '*.c' '*.h' 2>/dev/null | wc -l || echo 0)
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$repo/build/CMakeCache.txt" 2>/dev/null || true)
[ -n "${COORDHUB_BIN:-}" ] && build_type="COORDHUB_BIN=$COORDHUB_BIN"
sio_version=$(node -e "console.log(require('$bench/peer/node_modules/socket.io/package.json').version)" 2>/dev/null || true)
cmd=bench/polling/run.sh
[ "$RUNS" = 1 ] || cmd="RUNS=$RUNS $cmd"
[ "$QUICK" != 1 ] || cmd="QUICK=1 $cmd"

metas=()
for run in $(seq "$RUNS"); do
  jsonl="$OUT/run$run.jsonl"
  : >"$jsonl"
  load_start=$(cut -d' ' -f1-3 /proc/loadavg)
  t_start=$(date +%s)
  date_start=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  for row in $ROWS; do run_row "$run" "$row" "$jsonl"; done
  t_end=$(date +%s)
  cat >"$OUT/run$run.meta.json" <<EOF
{
  "run": $run,
  "jsonl": "$jsonl",
  "logs": "$OUT/logs",
  "log_prefix": "run$run-",
  "date_start": "$date_start",
  "date_end": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "seconds": $((t_end - t_start)),
  "load_start": "$load_start",
  "load_end": "$(cut -d' ' -f1-3 /proc/loadavg)",
  "nproc": $(nproc),
  "cpu_model": "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1 | tr -d '"\\')",
  "kernel": "$(uname -r)",
  "pinning": "$PINNING",
  "hub": "$(printf '%s' "$hub_version" | tr -d '"\\')",
  "hub_commit": "$hub_commit",
  "hub_dirty_c_files": $hub_dirty,
  "hub_build_type": "$build_type",
  "redis": "$("$REDIS_BIN" --version | sed 's/Redis server //; s/ sha=.*//')",
  "node": "$(node --version)",
  "socket_io": "$sio_version",
  "command": "$cmd",
  "quick": $QUICK,
  "rows": "$ROWS",
  "clients": $CLIENTS,
  "rates": "$RATES",
  "step_seconds": $STEP_SECONDS,
  "drain_seconds": $DRAIN_SECONDS,
  "idle_seconds": $IDLE_SECONDS,
  "after_seconds": $AFTER_SECONDS,
  "max_p99_ms": $MAX_P99_MS,
  "gen_http": "$GEN_HTTP"
}
EOF
  metas+=("$OUT/run$run.meta.json")
done

node "$here/report.mjs" "${metas[@]}" >"$RESULTS"
cat "$RESULTS"
log "done; results in $RESULTS, raw data in $OUT"
