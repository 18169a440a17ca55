#!/usr/bin/env bash
# bench/run.sh: the fan-out benchmark suite, one command (issue 8).
#
#   bench/run.sh            # the full suite, about 8-12 minutes
#   QUICK=1 bench/run.sh    # a short smoke run (small counts, 1 s steps)
#
# Builds the C tools through CMake (-DCOORDHUB_BENCH=ON, RelWithDebInfo, in
# build-bench/) and, if needed, the hub (cmake --build build);
# installs the peer's npm packages (npm ci in bench/peer); starts a private
# redis-server; then, for each server (coordhub native, coordhub Socket.IO
# framing, the Node Socket.IO peer), runs the scenarios with the server
# pinned to CPU 0 and the generator + Redis to CPU 1 (taskset, when there
# are two CPUs): unicast and broadcast ramps (each with a fixed-rate CPU
# measurement first), and idle memory at 1,000 / 10,000 / 19,000
# connections with the accept rate. The floor program runs in the same run,
# twice: the write() floor, and a bare relay at the unicast CPU rate.
# Writes bench/results.md (and prints it); raw JSON lines and logs go to
# $OUT (default build/bench/out).
#
# Environment: COORDHUB_BIN (default build/coordhub), BENCH_BUILD (the C
# tools' build tree, default build-bench), REDIS_SERVER
# (default redis-server on PATH), SERVERS (default "hub-native hub-sio
# peer"), SCENARIOS (default "unicast broadcast idle"), UNICAST_RATES,
# BROADCAST_RATES (msg/s, comma-separated), IDLE_LEVELS, STEP_SECONDS,
# CPU_SECONDS, UNICAST_CPU_RATE, BROADCAST_CPU_RATE, RESULTS (default
# bench/results.md), OUT.
#
# Bounded: every process it starts is stopped on exit (by pid), each
# loadgen has a watchdog, and the ramps stop at the first step with loss or
# p99 over 50 ms.
set -euo pipefail
# libmongoc counters in /dev/shm: off (a stale file of a reused pid makes it
# print a warning at load time; docs/libraries.md)
export MONGOC_DISABLE_SHM=1

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
cd "$repo"

QUICK=${QUICK:-0}
HUB_BIN=${COORDHUB_BIN:-$repo/build/coordhub}
REDIS_BIN=${REDIS_SERVER:-$(command -v redis-server || echo /usr/bin/redis-server)}
BENCH_BUILD=${BENCH_BUILD:-$repo/build-bench}
BIN=$BENCH_BUILD/bench
OUT=${OUT:-$repo/build/bench/out}
RESULTS=${RESULTS:-$here/results.md}
SERVERS=${SERVERS:-hub-native hub-sio peer}
SCENARIOS=${SCENARIOS:-unicast broadcast idle}
if [ "$QUICK" = 1 ]; then
  UNICAST_USERS=${UNICAST_USERS:-500}
  BROADCAST_USERS=${BROADCAST_USERS:-10}
  BROADCAST_PER_USER=${BROADCAST_PER_USER:-10}
  UNICAST_RATES=${UNICAST_RATES:-2000,5000}
  BROADCAST_RATES=${BROADCAST_RATES:-100,500}
  IDLE_LEVELS=${IDLE_LEVELS:-200 1000}
  STEP_SECONDS=${STEP_SECONDS:-1}
  CPU_SECONDS=${CPU_SECONDS:-1}
  UNICAST_CPU_RATE=${UNICAST_CPU_RATE:-2000}
  BROADCAST_CPU_RATE=${BROADCAST_CPU_RATE:-200}
  FLOOR_SECONDS=${FLOOR_SECONDS:-0.5}
  FLOOR_RUNS=${FLOOR_RUNS:-1}
else
  UNICAST_USERS=${UNICAST_USERS:-5000}
  BROADCAST_USERS=${BROADCAST_USERS:-10}
  BROADCAST_PER_USER=${BROADCAST_PER_USER:-100}
  UNICAST_RATES=${UNICAST_RATES:-5000,10000,20000,30000,40000,60000,80000,100000,120000,160000,240000,320000}
  BROADCAST_RATES=${BROADCAST_RATES:-100,200,500,1000,1500,2000,3000,4000,6000,8000}
  IDLE_LEVELS=${IDLE_LEVELS:-1000 10000 19000}
  STEP_SECONDS=${STEP_SECONDS:-4}
  CPU_SECONDS=${CPU_SECONDS:-5}
  UNICAST_CPU_RATE=${UNICAST_CPU_RATE:-10000}
  BROADCAST_CPU_RATE=${BROADCAST_CPU_RATE:-500}
  FLOOR_SECONDS=${FLOOR_SECONDS:-2}
  FLOOR_RUNS=${FLOOR_RUNS:-3}
fi
IDLE_SECONDS=${IDLE_SECONDS:-$([ "$QUICK" = 1 ] && echo 3 || echo 40)}
SECRET=${BENCH_JWT_SECRET:-bench-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')}

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
fail() { log "ERROR: $*"; exit 1; }

for t in cmake node npm; do command -v "$t" >/dev/null || fail "$t is required"; done
[ -x "$REDIS_BIN" ] || fail "redis-server not found (set REDIS_SERVER)"

# ------------------------------------------------------------------ builds
# The C tools with the project's own flags (warnings are errors): a build
# failure stops the suite here, its output on the terminal.
mkdir -p "$OUT/logs"
log "building the C tools (cmake -DCOORDHUB_BENCH=ON, $BENCH_BUILD)"
cmake -S "$repo" -B "$BENCH_BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOORDHUB_BENCH=ON \
  -DCOORDHUB_TESTS=OFF >"$OUT/logs/bench-cmake.log" 2>&1 ||
  { cat "$OUT/logs/bench-cmake.log" >&2; fail "cmake configure of $BENCH_BUILD failed"; }
cmake --build "$BENCH_BUILD" --target bench_loadgen bench_floor -j "$(nproc)" ||
  fail "building the C tools failed (output above)"
for t in loadgen floor; do [ -x "$BIN/$t" ] || fail "no $t at $BIN/$t after the build"; done

if [ -z "${COORDHUB_BIN:-}" ]; then
  command -v cmake >/dev/null || fail "cmake is required to build the hub (or set COORDHUB_BIN)"
  if [ ! -f "$repo/build/CMakeCache.txt" ]; then
    log "configuring the hub (build/, RelWithDebInfo)"
    cmake -S "$repo" -B "$repo/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$OUT/logs/cmake.log" 2>&1 ||
      { tail -20 "$OUT/logs/cmake.log"; fail "cmake configure failed"; }
  fi
  log "building the hub (cmake --build build --target coordhub)"
  cmake --build "$repo/build" --target coordhub -j "$(nproc)" >"$OUT/logs/build.log" 2>&1 ||
    { tail -30 "$OUT/logs/build.log"; fail "hub build failed"; }
fi
[ -x "$HUB_BIN" ] || fail "no hub binary at $HUB_BIN"

if [ ! -f "$here/peer/node_modules/.package-lock.json" ] ||
  [ "$here/peer/package-lock.json" -nt "$here/peer/node_modules/.package-lock.json" ]; then
  log "installing the peer's packages (npm ci in bench/peer)"
  (cd "$here/peer" && npm ci --no-audit --no-fund >"$OUT/logs/npm.log" 2>&1) ||
    { tail -20 "$OUT/logs/npm.log"; fail "npm ci failed"; }
fi

# ------------------------------------------------------------------ pinning
SRV_PIN=() GEN_PIN=() SRV_CPU=-1 GEN_CPU=-1
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ] && taskset -c 1 true 2>/dev/null; then
  SRV_PIN=(taskset -c 0) GEN_PIN=(taskset -c 1) SRV_CPU=0 GEN_CPU=1
  PINNING="server on CPU 0; load generator and Redis on CPU 1 (taskset)"
else
  PINNING="not pinned (taskset or a second CPU unavailable)"
fi

# ------------------------------------------------------------------ processes
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 0.2
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

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
  if command -v curl >/dev/null; then
    curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$1$2"
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET %s HTTP/1.0\r\n\r\n' "$2" >&3 &&
      head -c 12 <&3 | grep -q ' 200') 2>/dev/null
  fi
}
wait_ready() { # port path pid what
  for _ in $(seq 200); do
    http_ok "$1" "$2" && return 0
    kill -0 "$3" 2>/dev/null || { tail -20 "$OUT/logs/$4.log" >&2; fail "$4 exited while starting"; }
    sleep 0.05
  done
  fail "$4 not ready on port $1 within 10 s"
}
stop_pid() { # pid what: SIGTERM, wait up to 10 s, report how it ended
  local pid=$1 what=$2 rc
  if ! kill -0 "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null && rc=0 || rc=$?
    log "WARNING: $what (pid $pid) had already exited (status $rc); see $OUT/logs/$what.log"
    echo "{\"kind\":\"event\",\"what\":\"$what\",\"event\":\"exited before the end of its scenario (status $rc)\"}" >>"$JSONL"
    return
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  if kill -0 "$pid" 2>/dev/null; then
    log "WARNING: $what (pid $pid) had not exited 10 s after SIGTERM; killing it"
    echo "{\"kind\":\"event\",\"what\":\"$what\",\"event\":\"had not exited 10 s after SIGTERM (its connections already closed by the generator); SIGKILLed\"}" >>"$JSONL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null && rc=0 || rc=$?
  [ "$rc" = 0 ] || log "NOTE: $what exited with status $rc after SIGTERM"
}

JSONL="$OUT/results.jsonl"
: >"$JSONL"
REDIS_PORT=$(pick_port)
REDIS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/bench-redis.XXXXXX")
"${GEN_PIN[@]}" "$REDIS_BIN" --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$REDIS_DIR" >"$OUT/logs/redis.log" 2>&1 &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null && break
  sleep 0.05
done
log "redis-server pid $REDIS_PID on port $REDIS_PORT; $PINNING"

SERVER_PID=
start_server() { # kind name
  local port
  port=$(pick_port)
  SERVER_PORT=$port
  case "$1" in
    hub)
      "${SRV_PIN[@]}" "$HUB_BIN" --listen "127.0.0.1:$port" --redis "redis://127.0.0.1:$REDIS_PORT/0" \
        --jwt-secret "$SECRET" --log-level warn >"$OUT/logs/$2.log" 2>&1 &
      ;;
    peer)
      "${SRV_PIN[@]}" node "$here/peer/server.mjs" --listen "127.0.0.1:$port" \
        --redis "redis://127.0.0.1:$REDIS_PORT/0" --jwt-secret "$SECRET" >"$OUT/logs/$2.log" 2>&1 &
      ;;
  esac
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  wait_ready "$port" /readyz "$SERVER_PID" "$2"
  sleep 1 # let it settle before the RSS baseline
}

loadgen() { # name args...
  local name=$1
  shift
  local rc=0
  "${GEN_PIN[@]}" "$BIN/loadgen" --port "$SERVER_PORT" --jwt-secret "$SECRET" --server-pid "$SERVER_PID" \
    --redis-pid "$REDIS_PID" --redis-port "$REDIS_PORT" "$@" >>"$JSONL" 2> >(tee -a "$OUT/logs/$name.loadgen.log" >&2) ||
    rc=$?
  [ "$rc" = 0 ] || log "NOTE: loadgen for $name exited with status $rc"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
T_START=$(date +%s)

# ------------------------------------------------------------------ floor
log "floor: $FLOOR_RUNS x ${FLOOR_SECONDS}s of 160-byte writes to 1,000 loopback sockets"
for _ in $(seq "$FLOOR_RUNS"); do
  "$BIN/floor" --seconds "$FLOOR_SECONDS" --writer-cpu "$SRV_CPU" --reader-cpu "$GEN_CPU" >>"$JSONL"
done
log "relay floor: $FLOOR_RUNS x ${FLOOR_SECONDS}s of a bare relay, $UNICAST_CPU_RATE msg/s in, to $UNICAST_USERS sockets"
for _ in $(seq "$FLOOR_RUNS"); do
  "$BIN/floor" --relay "$UNICAST_CPU_RATE" --conns "$UNICAST_USERS" --seconds "$FLOOR_SECONDS" \
    --writer-cpu "$SRV_CPU" --reader-cpu "$GEN_CPU" >>"$JSONL"
done

# ------------------------------------------------------------------ servers x scenarios
for server in $SERVERS; do
  case "$server" in
    hub-native) kind=hub proto=native ;;
    hub-sio) kind=hub proto=sio ;;
    peer) kind=peer proto=sio ;;
    *) fail "unknown server $server" ;;
  esac
  for scenario in $SCENARIOS; do
    case "$scenario" in
      unicast)
        log "$server: unicast, $UNICAST_USERS connections, one per user"
        start_server "$kind" "$server-unicast"
        loadgen "$server-unicast" --label "$server" --proto "$proto" --scenario unicast \
          --users "$UNICAST_USERS" --per-user 1 --rates "$UNICAST_RATES" --step-seconds "$STEP_SECONDS" \
          --cpu-rate "$UNICAST_CPU_RATE" --cpu-seconds "$CPU_SECONDS" --max-seconds 300
        stop_pid "$SERVER_PID" "$server-unicast"
        ;;
      broadcast)
        log "$server: broadcast, $BROADCAST_USERS user rooms x $BROADCAST_PER_USER sockets"
        start_server "$kind" "$server-broadcast"
        loadgen "$server-broadcast" --label "$server" --proto "$proto" --scenario broadcast \
          --users "$BROADCAST_USERS" --per-user "$BROADCAST_PER_USER" --rates "$BROADCAST_RATES" \
          --step-seconds "$STEP_SECONDS" --cpu-rate "$BROADCAST_CPU_RATE" --cpu-seconds "$CPU_SECONDS" \
          --max-seconds 300
        stop_pid "$SERVER_PID" "$server-broadcast"
        ;;
      idle)
        for n in $IDLE_LEVELS; do
          log "$server: idle memory at $n connections"
          start_server "$kind" "$server-idle-$n"
          loadgen "$server-idle-$n" --label "$server" --proto "$proto" --scenario idle --mode idle \
            --users "$n" --per-user 1 --idle-seconds "$IDLE_SECONDS" --concurrency 256 --connect-timeout 90 --max-seconds 150
          stop_pid "$SERVER_PID" "$server-idle-$n"
        done
        ;;
      *) fail "unknown scenario $scenario" ;;
    esac
  done
done

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
T_END=$(date +%s)

# ------------------------------------------------------------------ report
hub_version=$("$HUB_BIN" --version 2>/dev/null | head -1 || true)
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$repo/build/CMakeCache.txt" 2>/dev/null || true)
if [ -n "${COORDHUB_BIN:-}" ]; then
  build_type="COORDHUB_BIN=$COORDHUB_BIN"
elif [ -z "$build_type" ]; then
  build_type="RelWithDebInfo, the CMakeLists default"
fi
sio_version=$(node -e "console.log(require('$here/peer/node_modules/socket.io/package.json').version)" 2>/dev/null || true)
redis_client_version=$(node -e "console.log(require('$here/peer/node_modules/redis/package.json').version)" 2>/dev/null || true)
cat >"$OUT/meta.json" <<EOF
{
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "nproc": $(nproc),
  "cpu_model": "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1 | tr -d '"\\')",
  "kernel": "$(uname -r)",
  "mem_total_kb": $(sed -n 's/^MemTotal: *\([0-9]*\).*/\1/p' /proc/meminfo),
  "nofile": "$(ulimit -n)",
  "load_start": "$LOAD_START",
  "load_end": "$LOAD_END",
  "seconds": $((T_END - T_START)),
  "pinning": "$PINNING",
  "hub": "$(printf '%s' "$hub_version" | tr -d '"\\')",
  "hub_build_type": "$build_type",
  "redis": "$("$REDIS_BIN" --version | sed 's/Redis server //; s/ sha=.*//')",
  "node": "$(node --version)",
  "socket_io": "$sio_version",
  "node_redis": "$redis_client_version",
  "command": "$( [ "$QUICK" = 1 ] && echo 'QUICK=1 ' )bench/run.sh",
  "quick": $QUICK,
  "unicast_users": $UNICAST_USERS,
  "broadcast_users": $BROADCAST_USERS,
  "broadcast_per_user": $BROADCAST_PER_USER,
  "step_seconds": $STEP_SECONDS,
  "cpu_seconds": $CPU_SECONDS,
  "unicast_cpu_rate": $UNICAST_CPU_RATE,
  "broadcast_cpu_rate": $BROADCAST_CPU_RATE
}
EOF
node "$here/fanout/report.mjs" "$JSONL" "$OUT/meta.json" >"$RESULTS"
cat "$RESULTS"
log "done in $((T_END - T_START)) s; results in $RESULTS, raw data in $JSONL, logs in $OUT/logs"
