#!/usr/bin/env bash
# bench/recovery/run.sh: what recovery of missed events (docs/recovery.md)
# costs the fan-out, recovery on against recovery off, in one run.
#
#   bench/recovery/run.sh            # 4 rounds, about 6-7 minutes on 2 vCPUs
#   QUICK=1 bench/recovery/run.sh    # a smoke run of under a minute (checks the tool, not figures)
#
# The measurement is bench/run.sh's own fixed-rate CPU step, and this script
# calls bench/run.sh for it (nothing is duplicated): one call per
# measurement, with SERVERS=<one framing>, SCENARIOS=<one scenario>,
# FLOOR_RUNS=0, the ramp reduced to one step at the same rate, and
# COORDHUB_RECOVERY_WINDOW_MS in its environment, which the hub it starts
# inherits: WINDOW_MS (120000, the hub's default) for "on", 0 for "off".
# Each call starts its own redis-server and a fresh hub (server on CPU 0, the
# generator bench/fanout/loadgen.c and Redis on CPU 1, taskset, when there
# are two CPUs), so "on" never sees the history streams of an earlier call.
#   unicast    UNICAST_USERS (5,000) connections, one per user; the generator
#              PUBLISHes tradestate at UNICAST_CPU_RATE (10,000 msg/s),
#              round robin over the users, for CPU_SECONDS (5) after a 1 s
#              warm-up: 10,000 deliveries/s.
#   broadcast  BROADCAST_USERS (10) user rooms x BROADCAST_PER_USER (100)
#              sockets; BROADCAST_CPU_RATE (500 msg/s): 50,000 deliveries/s.
# Per measurement: hub CPU (utime+stime, schedstat) / deliveries, p99 of
# publish-to-receipt, Redis CPU / deliveries, the time the hub waited for
# its core, loss. ROUNDS rounds (4); in each, for each framing x scenario,
# "on" and "off" back to back, the order alternating from round to round
# (on,off / off,on / on,off ...), so that a slow drift of the machine's
# speed cancels out; the report has every round, the medians, and the
# median of the per-round ratios on/off.
# Before the rounds, a check that the variable reaches the hub: a hub of the
# same binary started both ways on a private Redis, one tradestate
# published, /metrics read (window 120 s and a history entry written / window
# 0 and none).
#
# Environment: QUICK, ROUNDS, SERVERS ("hub-native hub-sio"), SCENARIOS
# ("unicast broadcast"), UNICAST_CPU_RATE, BROADCAST_CPU_RATE, UNICAST_USERS,
# BROADCAST_USERS, BROADCAST_PER_USER, CPU_SECONDS, STEP_SECONDS (the one
# ramp step bench/run.sh always runs, same rate; 1), WINDOW_MS, COORDHUB_BIN
# (default build/coordhub, brought up to date first unless NO_BUILD=1; the
# binary is copied to $OUT/coordhub once and every measurement runs that
# copy, so a rebuild during the run cannot mix two builds), REDIS_SERVER,
# BENCH_BUILD (as bench/run.sh), OUT (default build/bench/recovery; QUICK:
# build/bench/recovery-quick), RESULTS (default bench/recovery/results.md;
# QUICK: $OUT/results.md), WATCHDOG_SECONDS.
#
# Bounded: loopback only; each bench/run.sh call runs in its own process
# group and is stopped with it (TERM, then KILL) if this script ends early;
# the generator has its own deadline (--max-seconds, set by bench/run.sh);
# a watchdog ends the whole run after WATCHDOG_SECONDS.
set -euo pipefail
export MONGOC_DISABLE_SHM=1 # as bench/run.sh

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bench=$(dirname "$here")
repo=$(dirname "$bench")
cd "$repo"

# the exact command, for the report: the knobs set in the environment
cmd=bench/recovery/run.sh
for v in WATCHDOG_SECONDS RESULTS OUT BENCH_BUILD REDIS_SERVER NO_BUILD COORDHUB_BIN WINDOW_MS \
  STEP_SECONDS CPU_SECONDS BROADCAST_PER_USER BROADCAST_USERS UNICAST_USERS BROADCAST_CPU_RATE \
  UNICAST_CPU_RATE SCENARIOS SERVERS ROUNDS QUICK; do
  if [ -n "${!v+x}" ]; then
    val=${!v}
    [[ "$val" =~ ^[A-Za-z0-9_./:,=+-]+$ ]] || val="\"$val\""
    cmd="$v=$val $cmd"
  fi
done

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  ROUNDS=${ROUNDS:-1}
  UNICAST_USERS=${UNICAST_USERS:-500}
  BROADCAST_USERS=${BROADCAST_USERS:-10}
  BROADCAST_PER_USER=${BROADCAST_PER_USER:-10}
  UNICAST_CPU_RATE=${UNICAST_CPU_RATE:-2000}
  BROADCAST_CPU_RATE=${BROADCAST_CPU_RATE:-200}
  CPU_SECONDS=${CPU_SECONDS:-1}
else
  ROUNDS=${ROUNDS:-4}
  UNICAST_USERS=${UNICAST_USERS:-5000}
  BROADCAST_USERS=${BROADCAST_USERS:-10}
  BROADCAST_PER_USER=${BROADCAST_PER_USER:-100}
  UNICAST_CPU_RATE=${UNICAST_CPU_RATE:-10000}
  BROADCAST_CPU_RATE=${BROADCAST_CPU_RATE:-500}
  CPU_SECONDS=${CPU_SECONDS:-5}
fi
STEP_SECONDS=${STEP_SECONDS:-1}
SERVERS=${SERVERS:-hub-native hub-sio}
SCENARIOS=${SCENARIOS:-unicast broadcast}
WINDOW_MS=${WINDOW_MS:-120000}
HUB_SRC=${COORDHUB_BIN:-$repo/build/coordhub}
REDIS_BIN=${REDIS_SERVER:-$(command -v redis-server || echo /usr/bin/redis-server)}
OUT=${OUT:-$repo/build/bench/recovery$([ "$QUICK" != 1 ] || echo -quick)}
# a QUICK run does not replace the report of a real one
RESULTS=${RESULTS:-$([ "$QUICK" = 1 ] && echo "$OUT/results.md" || echo "$here/results.md")}
nmeas=$((ROUNDS * $(wc -w <<<"$SERVERS") * $(wc -w <<<"$SCENARIOS") * 2))
# per measurement: hub start + 1 s settle + connect + warm-up + CPU step +
# the ramp step + drains (3 s without progress at most each) + stop, with slack
WATCHDOG_SECONDS=${WATCHDOG_SECONDS:-$((120 + nmeas * (60 + ${CPU_SECONDS%.*} + 3 * ${STEP_SECONDS%.*})))}

log() { printf '[recovery %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
fail() { log "ERROR: $*"; exit 1; }

for t in node curl setsid; do command -v "$t" >/dev/null || fail "$t is required"; done
[ -x "$REDIS_BIN" ] || fail "redis-server not found (set REDIS_SERVER)"
[ "$ROUNDS" -ge 1 ] 2>/dev/null || fail "ROUNDS must be a positive integer"
[[ "$WINDOW_MS" =~ ^[1-9][0-9]*$ ]] || fail "WINDOW_MS must be a positive integer (the 'on' window)"
for s in $SERVERS; do case "$s" in hub-native | hub-sio) ;; *) fail "SERVERS: $s (hub-native or hub-sio)" ;; esac; done
for s in $SCENARIOS; do case "$s" in unicast | broadcast) ;; *) fail "SCENARIOS: $s (unicast or broadcast)" ;; esac; done
rm -rf "$OUT/calls" # this script's own subdirectory: the calls of an earlier run
mkdir -p "$OUT/logs" "$OUT/calls"
JSONL=$OUT/results.jsonl
: >"$JSONL"

# ------------------------------------------------------------------ the hub
# Brought up to date as bench/run.sh would do it (unless COORDHUB_BIN or
# NO_BUILD=1), then copied once: every measurement runs the same bytes.
if [ -z "${COORDHUB_BIN:-}" ] && [ "${NO_BUILD:-0}" != 1 ]; then
  command -v cmake >/dev/null || fail "cmake is required to build the hub (or set COORDHUB_BIN / NO_BUILD=1)"
  if [ ! -f "$repo/build/CMakeCache.txt" ]; then
    log "configuring the hub (build/, RelWithDebInfo)"
    cmake -S "$repo" -B "$repo/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$OUT/logs/cmake.log" 2>&1 ||
      { tail -20 "$OUT/logs/cmake.log"; fail "cmake configure failed"; }
  fi
  log "building the hub (cmake --build build --target coordhub)"
  cmake --build "$repo/build" --target coordhub -j "$(nproc)" >"$OUT/logs/build.log" 2>&1 ||
    { tail -30 "$OUT/logs/build.log"; fail "hub build failed"; }
fi
[ -x "$HUB_SRC" ] || fail "no hub binary at $HUB_SRC"
HUB_BIN=$OUT/coordhub
cp "$HUB_SRC" "$HUB_BIN"
hub_sha=$(sha256sum "$HUB_BIN" | cut -c1-12)
hub_mtime=$(date -u -r "$HUB_SRC" +%Y-%m-%dT%H:%M:%SZ)
# the checkout when the binary was copied (what it was built from, if it is
# up to date; the tree may move on during the run)
hub_commit=$(git -C "$repo" --no-optional-locks rev-parse --short HEAD 2>/dev/null || echo unknown)
hub_dirty=$(git -C "$repo" --no-optional-locks status --porcelain --untracked-files=no -- '*.c' '*.h' 2>/dev/null | wc -l || echo 0)

# ------------------------------------------------------------------ processes
PIDS=()   # processes started here directly
GROUP=    # the process group of the bench/run.sh call in progress
WD_PID=
cleanup() {
  local p
  [ -n "$WD_PID" ] && kill "$WD_PID" 2>/dev/null || true
  if [ -n "$GROUP" ]; then
    # bench/run.sh's own trap stops its redis-server and hub; the group
    # signal also reaches its generator at once (bash defers a trap while
    # a foreground child runs)
    kill -TERM -- "-$GROUP" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 -- "-$GROUP" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$GROUP" 2>/dev/null || true
  fi
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 0.2
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  [ -n "${REDIS_DIR:-}" ] && rm -rf "$REDIS_DIR"
  return 0
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated (watchdog?)"; exit 143' TERM

# The watchdog: TERM to this script after WATCHDOG_SECONDS; the script waits
# on its children with `wait` (interruptible), so the EXIT trap runs at once.
(
  trap 'kill "$wd_sleep" 2>/dev/null; exit 0' TERM
  sleep "$WATCHDOG_SECONDS" &
  wd_sleep=$!
  wait "$wd_sleep"
  echo "[recovery $(date +%H:%M:%S)] WATCHDOG: still running after $WATCHDOG_SECONDS s; stopping" >&2
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
forget() { # pid: reaped, so never signalled again (its number may be reused)
  local p keep=()
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}
stop() { # pid
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  forget "$1"
}
metric() { # port name -> value (empty if absent)
  local text
  text=$(curl -sf --max-time 2 "http://127.0.0.1:$1/metrics") || return 0
  awk -v n="$2" '$1 == n { print $2; exit }' <<<"$text"
}

# ------------------------------------------------------------------ the check
# The hub started as bench/run.sh starts it, with the variable inherited:
# does it take it? (on: window WINDOW_MS/1000 s, synced, and one history
# entry for one tradestate; off: window 0 and no entry)
REDIS_PORT=$(pick_port)
REDIS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/bench-recovery-redis.XXXXXX")
"$REDIS_BIN" --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$REDIS_DIR" \
  >"$OUT/logs/check.redis.log" 2>&1 &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
for _ in $(seq 100); do port_free "$REDIS_PORT" || break; sleep 0.05; done
publish_one() { # a tradestate to one user, raw RESP; prints Redis's answer
  local p='{"steamId":"76561190000000001","token":"t","state":"accepted","msg":"check"}'
  exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT"
  printf '*3\r\n$7\r\nPUBLISH\r\n$10\r\ntradestate\r\n$%d\r\n%s\r\n' "${#p}" "$p" >&3
  timeout 2 head -c 4 <&3 || true
  exec 3>&-
}
CHECK=()
for mode in on off; do
  window=$([ "$mode" = on ] && echo "$WINDOW_MS" || echo 0)
  port=$(pick_port)
  COORDHUB_RECOVERY_WINDOW_MS=$window "$HUB_BIN" --listen "127.0.0.1:$port" \
    --redis "redis://127.0.0.1:$REDIS_PORT/0" --jwt-secret check --log-level warn \
    >"$OUT/logs/check-$mode.hub.log" 2>&1 &
  hub=$!
  PIDS+=("$hub")
  for _ in $(seq 200); do
    curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$port/readyz" && break
    kill -0 "$hub" 2>/dev/null || { cat "$OUT/logs/check-$mode.hub.log" >&2; fail "check hub ($mode) exited"; }
    sleep 0.05
  done
  if [ "$mode" = on ]; then
    for _ in $(seq 100); do [ "$(metric "$port" coordhub_recovery_synced)" = 1 ] && break; sleep 0.05; done
  fi
  publish_one >/dev/null
  sleep 0.3
  w=$(metric "$port" coordhub_recovery_window_seconds)
  e=$(metric "$port" coordhub_recovery_history_entries_total)
  stop "$hub"
  log "check, recovery $mode (COORDHUB_RECOVERY_WINDOW_MS=$window): window ${w:-?} s, history entries ${e:-?}"
  if [ "$mode" = on ]; then
    [ "${w:-0}" != 0 ] && [ "${e:-0}" -ge 1 ] || fail "recovery did not turn on through COORDHUB_RECOVERY_WINDOW_MS"
  else
    [ "$w" = 0 ] && [ "$e" = 0 ] || fail "recovery did not turn off through COORDHUB_RECOVERY_WINDOW_MS=0"
  fi
  CHECK+=("\"$mode\":{\"window_s\":\"$w\",\"history_entries\":\"$e\"}")
done
stop "$REDIS_PID"
rm -rf "$REDIS_DIR"
REDIS_DIR=

# ------------------------------------------------------------------ rounds
# One bench/run.sh call per measurement, in its own process group (setsid:
# its pid is the group's id), waited for with `wait` (so the watchdog and ^C
# act at once).
measure() { # round order server scenario mode
  local round=$1 order=$2 server=$3 scenario=$4 mode=$5 window dir pid rc line
  window=$([ "$mode" = on ] && echo "$WINDOW_MS" || echo 0)
  dir=$OUT/calls/r$round-$server-$scenario-$mode
  mkdir -p "$dir"
  QUICK=0 SERVERS=$server SCENARIOS=$scenario FLOOR_RUNS=0 COORDHUB_BIN=$HUB_BIN \
    COORDHUB_RECOVERY_WINDOW_MS=$window \
    UNICAST_USERS=$UNICAST_USERS BROADCAST_USERS=$BROADCAST_USERS BROADCAST_PER_USER=$BROADCAST_PER_USER \
    UNICAST_CPU_RATE=$UNICAST_CPU_RATE BROADCAST_CPU_RATE=$BROADCAST_CPU_RATE \
    UNICAST_RATES=$UNICAST_CPU_RATE BROADCAST_RATES=$BROADCAST_CPU_RATE \
    CPU_SECONDS=$CPU_SECONDS STEP_SECONDS=$STEP_SECONDS OUT=$dir RESULTS=$dir/report.md TMPDIR=$dir \
    setsid "$bench/run.sh" </dev/null >"$dir/run.log" 2>&1 &
  pid=$!
  GROUP=$pid
  rc=0
  wait "$pid" || rc=$?
  GROUP=
  # each line tagged with its round, mode and place in the round
  sed "s/^{/{\"round\":$round,\"recovery\":\"$mode\",\"order\":$order,\"call\":\"${dir##*/}\",/" \
    "$dir/results.jsonl" >>"$JSONL" 2>/dev/null || true
  if [ "$rc" != 0 ]; then
    log "NOTE: bench/run.sh for round $round, $server $scenario, recovery $mode exited with status $rc; see $dir/run.log"
    tail -5 "$dir/run.log" >&2
    echo "{\"round\":$round,\"recovery\":\"$mode\",\"order\":$order,\"call\":\"${dir##*/}\",\"kind\":\"event\",\"label\":\"$server\",\"scenario\":\"$scenario\",\"event\":\"bench/run.sh exited with status $rc\"}" >>"$JSONL"
  fi
  # the hub's own log (level warn): anything in it goes into the report
  if [ -s "$dir/logs/$server-$scenario.log" ]; then
    line=$(head -1 "$dir/logs/$server-$scenario.log" | tr -d '"\\' | cut -c1-200)
    echo "{\"round\":$round,\"recovery\":\"$mode\",\"order\":$order,\"call\":\"${dir##*/}\",\"kind\":\"event\",\"label\":\"$server\",\"scenario\":\"$scenario\",\"event\":\"hub log: $(wc -l <"$dir/logs/$server-$scenario.log") lines, the first: $line\"}" >>"$JSONL"
  fi
  line=$(grep -h ' cpu ' "$dir/logs/$server-$scenario.loadgen.log" 2>/dev/null | tail -1 | sed 's/^loadgen: //')
  log "round $round, recovery $mode: ${line:-no CPU step (see $dir/run.log)}"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
DATE_START=$(date -u +%Y-%m-%dT%H:%M:%SZ)
T_START=$(date +%s)
log "$ROUNDS rounds x {$SERVERS} x {$SCENARIOS} x recovery on/off: $nmeas measurements" \
  "(CPU step ${CPU_SECONDS} s; unicast $UNICAST_CPU_RATE msg/s to $UNICAST_USERS users," \
  "broadcast $BROADCAST_CPU_RATE msg/s to $BROADCAST_USERS x $BROADCAST_PER_USER); watchdog ${WATCHDOG_SECONDS} s"
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then modes="on off"; else modes="off on"; fi
  for server in $SERVERS; do
    for scenario in $SCENARIOS; do
      order=0
      for mode in $modes; do
        order=$((order + 1))
        measure "$round" "$order" "$server" "$scenario" "$mode"
      done
    done
  done
done
T_END=$(date +%s)

# ------------------------------------------------------------------ report
hub_version=$("$HUB_BIN" --version 2>/dev/null | head -1 || true)
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$repo/build/CMakeCache.txt" 2>/dev/null || true)
[ -n "${COORDHUB_BIN:-}" ] && build_type="COORDHUB_BIN=$COORDHUB_BIN"
pinning=$(sed -n 's/.*"pinning": "\(.*\)",$/\1/p' "$(ls -d "$OUT"/calls/*/ | head -1)meta.json" 2>/dev/null || true)
cat >"$OUT/meta.json" <<EOF
{
  "command": "$(printf '%s' "$cmd" | sed 's/\\/\\\\/g; s/"/\\"/g')",
  "date_start": "$DATE_START",
  "date_end": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "seconds": $((T_END - T_START)),
  "load_start": "$LOAD_START",
  "load_end": "$(cut -d' ' -f1-3 /proc/loadavg)",
  "nproc": $(nproc),
  "cpu_model": "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1 | tr -d '"\\')",
  "kernel": "$(uname -r)",
  "pinning": "$pinning",
  "hub": "$(printf '%s' "$hub_version" | tr -d '"\\')",
  "hub_src": "$HUB_SRC",
  "hub_sha256": "$hub_sha",
  "hub_mtime": "$hub_mtime",
  "hub_commit": "$hub_commit",
  "hub_dirty_c_files": $hub_dirty,
  "hub_build_type": "$build_type",
  "redis": "$("$REDIS_BIN" --version | sed 's/Redis server //; s/ sha=.*//')",
  "quick": $QUICK,
  "rounds": $ROUNDS,
  "window_ms": $WINDOW_MS,
  "unicast_users": $UNICAST_USERS,
  "broadcast_users": $BROADCAST_USERS,
  "broadcast_per_user": $BROADCAST_PER_USER,
  "unicast_cpu_rate": $UNICAST_CPU_RATE,
  "broadcast_cpu_rate": $BROADCAST_CPU_RATE,
  "cpu_seconds": $CPU_SECONDS,
  "step_seconds": $STEP_SECONDS,
  "check": {$(IFS=,; echo "${CHECK[*]}")},
  "out": "$OUT"
}
EOF
node "$here/report.mjs" "$JSONL" "$OUT/meta.json" >"$RESULTS"
cat "$RESULTS"
log "done in $((T_END - T_START)) s; results in $RESULTS, raw data in $JSONL, each call's logs in $OUT/calls/"
