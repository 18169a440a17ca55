#!/usr/bin/env bash
# bench/auth/run.sh: what the JWT change costs or saves, before vs after, in
# one run (bench/README.md, "Token verification"; figures in
# bench/auth/results.md).
#
#   bench/auth/run.sh            # full: 6-8 minutes on 2 vCPUs
#   QUICK=1 bench/auth/run.sh    # smoke run, under a minute once built
#
# Binaries (each built RelWithDebInfo into <tree>/build-bench-auth with
# `cmake -S <tree> -B <tree>/build-bench-auth -DCMAKE_BUILD_TYPE=RelWithDebInfo
# -DCOORDHUB_TESTS=OFF && cmake --build ... --target coordhub`):
#   after   this checkout (HEAD): tokens verified by wire/keys.c over OpenSSL 3
#           (an initialised EVP_MAC_CTX per key, CRYPTO_memcmp)
#   before  e09c524 (BEFORE_REV): libjwt 1.10 (HMAC fetched per call, strcmp)
#   base    984d3c6 (BASE_REV), the idle scenario only, full mode only: the
#           commit before e09c524, whose liveness sweep does not look at
#           token expiry. e09c524 already has the expiry check in the sweep
#           (that commit added it), so before/after does not isolate it;
#           base/before does.
# The old trees are extracted with `git archive REV | tar -x` (read-only for
# the repository) into $SRC_ROOT/<rev> unless BEFORE_TREE / BASE_TREE name
# existing trees. The generator is bench/fanout/loadgen.c (built with
# -DCOORDHUB_BENCH=ON into build-bench-auth-tools/); it mints HS256 tokens
# with the claims `coordhub token` writes (exp = now + 3600, iat, sub).
#
# Scenarios, ROUNDS rounds, the binaries' order rotated every round; a fresh
# hub per measurement pinned to CPU 0, the generator and Redis on CPU 1:
#   accept  ACCEPT_N native /ws connections (5,000; QUICK 1,000), one per
#           user, ACCEPT_CONCURRENCY handshakes in flight (256). Accept rate =
#           ready / (first connect -> last ready), from the generator. Hub CPU
#           per accept = utime+stime (/proc/PID/stat) from just before the
#           generator starts to the moment it reports the last handshake,
#           / accepts; also the same from schedstat (ns) and the generator's
#           own reading over its connect window. A measurement in which the
#           hub waited for its core over ACCEPT_MAX_WAIT_PCT (10) % of the
#           window is made again, up to ACCEPT_ATTEMPTS (3; QUICK 1) times,
#           the last kept; the report shows the ones set aside.
#   idle    IDLE_N native connections (19,000; QUICK 2,000), then IDLE_SETTLE
#           s, then the hub's CPU over IDLE_SECONDS (20; QUICK 5). The native
#           idle ping is moved out of the window (COORDHUB_WS_IDLE_PING_MS=
#           120000; the sweep period stays 1 s), so what is measured is the
#           1 s liveness sweep over every connection (and the expiry compare
#           in it) plus the hub's own timers. With SWEEP (default: when perf
#           probe works), each sweep's duration too (uprobes, below).
#           Connecting 19,000 takes 10-45 s here: the generator's connect()
#           spends it in the kernel's ephemeral port search (its system time
#           is in the report); the window starts after.
#
# Environment: QUICK, ROUNDS, ACCEPT_N, ACCEPT_CONCURRENCY,
# ACCEPT_MAX_WAIT_PCT, ACCEPT_ATTEMPTS, IDLE_N, IDLE_SECONDS, IDLE_SETTLE,
# WITH_BASE (1 in full mode), SWEEP (auto|0), SCENARIOS ("accept idle"),
# BEFORE_REV, BASE_REV, BEFORE_TREE, BASE_TREE, SRC_ROOT, REDIS_SERVER, OUT
# (default build-bench-auth/out), RESULTS (default $OUT/results.md; the
# committed bench/auth/results.md is written by hand from such reports).
#
# Loopback only. Bounded: every wait has a timeout, the generator has a
# watchdog (--max-seconds), and every process started here is stopped on
# exit, by pid (perf probes it added are removed).
set -euo pipefail
export MONGOC_DISABLE_SHM=1 # as bench/run.sh

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"

QUICK=${QUICK:-0}
ROUNDS=${ROUNDS:-3}
SCENARIOS=${SCENARIOS:-accept idle}
BEFORE_REV=${BEFORE_REV:-e09c524}
BASE_REV=${BASE_REV:-984d3c6}
SRC_ROOT=${SRC_ROOT:-${TMPDIR:-/tmp}/coordhub-bench-auth}
REDIS_BIN=${REDIS_SERVER:-$(command -v redis-server || echo /usr/bin/redis-server)}
TOOLS_BUILD=$repo/build-bench-auth-tools
OUT=${OUT:-$repo/build-bench-auth/out}
RESULTS=${RESULTS:-$OUT/results.md}
ACCEPT_CONCURRENCY=${ACCEPT_CONCURRENCY:-256}
ACCEPT_MAX_WAIT_PCT=${ACCEPT_MAX_WAIT_PCT:-10}
ACCEPT_ATTEMPTS=${ACCEPT_ATTEMPTS:-$([ "$QUICK" = 1 ] && echo 1 || echo 3)}
if [ "$QUICK" = 1 ]; then
  ACCEPT_N=${ACCEPT_N:-1000}
  IDLE_N=${IDLE_N:-2000}
  IDLE_SECONDS=${IDLE_SECONDS:-5}
  IDLE_SETTLE=${IDLE_SETTLE:-0.3}
  WITH_BASE=${WITH_BASE:-0}
  START_SETTLE=0.1 LG_TAIL=0.3
else
  ACCEPT_N=${ACCEPT_N:-5000}
  IDLE_N=${IDLE_N:-19000}
  IDLE_SECONDS=${IDLE_SECONDS:-20}
  IDLE_SETTLE=${IDLE_SETTLE:-3}
  WITH_BASE=${WITH_BASE:-1}
  START_SETTLE=1 LG_TAIL=1
fi
SECRET=bench-auth-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')

log() { printf '[auth %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
fail() { log "ERROR: $*"; exit 1; }

for t in cmake node git curl; do command -v "$t" >/dev/null || fail "$t is required"; done
[ -x "$REDIS_BIN" ] || fail "redis-server not found (set REDIS_SERVER)"
mkdir -p "$OUT/logs"
JSONL=$OUT/auth.jsonl
: >"$JSONL"

# ------------------------------------------------------------------ trees, builds
tree_for() { # rev override -> prints the tree
  local rev=$1 override=$2 dir
  if [ -n "$override" ]; then
    [ -f "$override/CMakeLists.txt" ] || fail "$override is not a source tree"
    echo "$override"
    return
  fi
  dir=$SRC_ROOT/$(git rev-parse --short=7 "$rev^{commit}")
  if [ ! -f "$dir/.bench-auth-rev" ]; then
    log "extracting $rev into $dir (git archive)"
    rm -rf "$dir" && mkdir -p "$dir"
    git archive "$rev" | tar -x -C "$dir"
    git rev-parse "$rev^{commit}" >"$dir/.bench-auth-rev"
  fi
  echo "$dir"
}
build_hub() { # tree name
  local tree=$1 name=$2
  log "building $name: cmake --build $tree/build-bench-auth --target coordhub"
  cmake -S "$tree" -B "$tree/build-bench-auth" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOORDHUB_TESTS=OFF \
    >"$OUT/logs/cmake-$name.log" 2>&1 || { tail -20 "$OUT/logs/cmake-$name.log" >&2; fail "configure of $name failed"; }
  cmake --build "$tree/build-bench-auth" --target coordhub -j "$(nproc)" >"$OUT/logs/build-$name.log" 2>&1 ||
    { tail -30 "$OUT/logs/build-$name.log" >&2; fail "build of $name failed"; }
  [ -x "$tree/build-bench-auth/coordhub" ] || fail "no coordhub in $tree/build-bench-auth"
}

AFTER_REV=$(git rev-parse HEAD)
AFTER_DIRTY=0
git diff --quiet HEAD -- '*.c' '*.h' '*CMakeLists.txt' || AFTER_DIRTY=1
[ "$AFTER_DIRTY" = 0 ] || log "NOTE: the checkout's C sources differ from HEAD; 'after' is HEAD plus those changes"
BEFORE_TREE=$(tree_for "$BEFORE_REV" "${BEFORE_TREE:-}")
BINS=(before after)
IDLE_BINS=(before after)
if [ "$WITH_BASE" = 1 ]; then
  BASE_TREE=$(tree_for "$BASE_REV" "${BASE_TREE:-}")
  IDLE_BINS=(base before after)
fi
build_hub "$repo" after
build_hub "$BEFORE_TREE" before
[ "$WITH_BASE" = 1 ] && build_hub "$BASE_TREE" base
declare -A HUB=([after]=$repo/build-bench-auth/coordhub [before]=$BEFORE_TREE/build-bench-auth/coordhub)
declare -A REV=([after]=$AFTER_REV [before]=$(git rev-parse "$BEFORE_REV^{commit}"))
if [ "$WITH_BASE" = 1 ]; then
  HUB[base]=$BASE_TREE/build-bench-auth/coordhub
  REV[base]=$(git rev-parse "$BASE_REV^{commit}")
fi

log "building the generator (cmake -DCOORDHUB_BENCH=ON, $TOOLS_BUILD)"
cmake -S "$repo" -B "$TOOLS_BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOORDHUB_BENCH=ON -DCOORDHUB_TESTS=OFF \
  >"$OUT/logs/cmake-tools.log" 2>&1 || { tail -20 "$OUT/logs/cmake-tools.log" >&2; fail "configure of the tools failed"; }
cmake --build "$TOOLS_BUILD" --target bench_loadgen -j "$(nproc)" >"$OUT/logs/build-tools.log" 2>&1 ||
  { tail -30 "$OUT/logs/build-tools.log" >&2; fail "loadgen build failed"; }
LOADGEN=$TOOLS_BUILD/bench/loadgen
[ -x "$LOADGEN" ] || fail "no loadgen at $LOADGEN"

# the open-file limit bounds one generator process (and the hub)
NOFILE=$(ulimit -Hn)
IDLE_NOTE=
if [ "$NOFILE" != unlimited ] && [ "$IDLE_N" -gt $((NOFILE - 64)) ]; then
  IDLE_NOTE="lowered from $IDLE_N to $((NOFILE - 64)): the open-file limit is $NOFILE"
  IDLE_N=$((NOFILE - 64))
  log "NOTE: idle connections $IDLE_NOTE"
fi

# ------------------------------------------------------------------ pinning
SRV_PIN=() GEN_PIN=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ] && taskset -c 1 true 2>/dev/null; then
  SRV_PIN=(taskset -c 0) GEN_PIN=(taskset -c 1)
  PINNING="hub on CPU 0; generator and Redis on CPU 1 (taskset)"
else
  PINNING="not pinned (taskset or a second CPU unavailable)"
fi

# ------------------------------------------------------------------ processes
PIDS=()
FIFO=$OUT/lg.fifo
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 0.2
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -f "$FIFO"
  [ -n "${REDIS_DIR:-}" ] && rm -rf "$REDIS_DIR"
  [ -z "${PROBES:-}" ] || probes_del
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM
forget() { # pid: reaped, so never signalled again (its number may be reused)
  local p keep=()
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 10000)) # below the ephemeral range
    if port_free "$p"; then echo "$p"; return; fi
  done
  fail "no free port"
}

REDIS_PORT=$(pick_port)
REDIS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/bench-auth-redis.XXXXXX")
"${GEN_PIN[@]}" "$REDIS_BIN" --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$REDIS_DIR" >"$OUT/logs/redis.log" 2>&1 &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null && break
  sleep 0.05
done

# CPU of a process, read with bash builtins only (no fork on the way):
# STAT_TICKS = utime + stime (/proc/PID/stat, clock ticks; all threads);
# SCHED_NS / WAIT_NS = time on a CPU / runnable but waiting for one (sum of
# /proc/PID/task/*/schedstat); T_US = wall clock in µs.
CLK_TCK=$(getconf CLK_TCK)
read_cpu() { # pid
  local s f t a b c
  read -r s <"/proc/$1/stat"
  s=${s##*) }
  read -r -a f <<<"$s"
  STAT_TICKS=$((f[11] + f[12]))
  SCHED_NS=0 WAIT_NS=0
  for t in /proc/"$1"/task/*/schedstat; do
    read -r a b c <"$t" || continue
    SCHED_NS=$((SCHED_NS + a)) WAIT_NS=$((WAIT_NS + b))
  done
  T_US=${EPOCHREALTIME/./}
}

# the generator's own user / system ticks (it is alive until its tail ends)
gen_ticks() { # pid -> GEN_UT GEN_ST
  local s f
  GEN_UT=-1 GEN_ST=-1
  read -r s <"/proc/$1/stat" 2>/dev/null || return 0
  s=${s##*) }
  read -r -a f <<<"$s"
  GEN_UT=${f[11]} GEN_ST=${f[12]}
}

HUB_PID= HUB_PORT= START_RETRIES=0
# A fresh hub; if it exits while starting because it could not reach Redis
# (seen once, right after a 19,000-connection run, on a busy machine), it
# is started again, up to 3 times, and the report counts the retries.
start_hub() { # name logname [env...]
  local name=$1 logname=$2 attempt rc
  shift 2
  for attempt in 1 2 3; do
    HUB_PORT=$(pick_port)
    env "$@" "${SRV_PIN[@]}" "${HUB[$name]}" --listen "127.0.0.1:$HUB_PORT" \
      --redis "redis://127.0.0.1:$REDIS_PORT/0" --jwt-secret "$SECRET" --log-level warn \
      >"$OUT/logs/$logname.log" 2>&1 &
    HUB_PID=$!
    PIDS+=("$HUB_PID")
    for _ in $(seq 200); do
      if curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$HUB_PORT/readyz"; then
        sleep "$START_SETTLE"
        return 0
      fi
      kill -0 "$HUB_PID" 2>/dev/null || break
      sleep 0.05
    done
    if kill -0 "$HUB_PID" 2>/dev/null; then
      stop_hub "$name"
      fail "$name not ready on port $HUB_PORT within 10 s"
    fi
    wait "$HUB_PID" 2>/dev/null && rc=0 || rc=$?
    forget "$HUB_PID"
    grep -q 'cannot use Redis' "$OUT/logs/$logname.log" && [ "$attempt" -lt 3 ] || {
      tail -20 "$OUT/logs/$logname.log" >&2
      fail "$name exited while starting (status $rc)"
    }
    START_RETRIES=$((START_RETRIES + 1))
    log "NOTE: $name could not reach Redis at start ($(tail -1 "$OUT/logs/$logname.log")); starting it again"
    cp "$OUT/logs/$logname.log" "$OUT/logs/$logname.start-$attempt.log"
    sleep 1
  done
}
stop_hub() { # name
  local rc
  if ! kill -0 "$HUB_PID" 2>/dev/null; then
    wait "$HUB_PID" 2>/dev/null && rc=0 || rc=$?
    fail "$1 (pid $HUB_PID) exited during the measurement (status $rc)"
  fi
  kill -TERM "$HUB_PID" 2>/dev/null || true
  for _ in $(seq 200); do kill -0 "$HUB_PID" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$HUB_PID" 2>/dev/null || true
  wait "$HUB_PID" 2>/dev/null || true
  forget "$HUB_PID"
}

# The generator writes its JSON lines into a FIFO; the connect line arrives
# the moment the last handshake is done, and the hub's CPU is read then.
LG_PID= LG_FD=
start_loadgen() { # logname args...
  local logname=$1
  shift
  rm -f "$FIFO"
  mkfifo "$FIFO"
  "${GEN_PIN[@]}" "$LOADGEN" --port "$HUB_PORT" --jwt-secret "$SECRET" --server-pid "$HUB_PID" \
    --proto native "$@" >"$FIFO" 2>>"$OUT/logs/$logname.loadgen.log" &
  LG_PID=$!
  PIDS+=("$LG_PID")
  exec {LG_FD}<"$FIFO"
}
read_line() { # timeout -> LINE (the next line that is JSON), or fails
  LINE=
  while IFS= read -r -t "$1" -u "$LG_FD" LINE; do
    [ "${LINE:0:1}" = "{" ] && return 0
  done
  return 1
}
finish_loadgen() { # -> LG_RC, and the remaining JSON line (idle) in LG_IDLE
  local l
  LG_IDLE=null
  while IFS= read -r -t 120 -u "$LG_FD" l; do
    [ "${l:0:1}" = "{" ] && LG_IDLE=$l
  done
  exec {LG_FD}<&-
  wait "$LG_PID" && LG_RC=0 || LG_RC=$?
  forget "$LG_PID"
  rm -f "$FIFO"
}

order_for() { # round, names... -> ORDER (rotated by round)
  local r=$1
  shift
  local n=$# i
  ORDER=()
  local names=("$@")
  for ((i = 0; i < n; i++)); do ORDER+=("${names[$(((i + r - 1) % n))]}"); done
}

load1() { cut -d' ' -f1 /proc/loadavg; }
# a sleep that a signal interrupts at once (the traps run in `wait`)
nap() {
  local p
  sleep "$1" &
  p=$!
  PIDS+=("$p")
  wait "$p" || true
  forget "$p"
}
# other processes over 5% CPU (lifetime average, as ps shows it), for the report
busy_now() { ps -eo pcpu=,args= --sort=-pcpu | awk '$1 >= 5 && $2 != "ps" && n++ < 8 { print substr($0, 1, 140) }'; }

# ------------------------------------------------------------------ scenarios
accept_run() { # name round pos
  local name=$1 r=$2 pos=$3 attempt tag
  local l0 s0 n0 w0 t0 s1 n1 w1 t1 conn kept
  for ((attempt = 1; attempt <= ACCEPT_ATTEMPTS; attempt++)); do
    tag="accept-$name-r$r"
    [ "$attempt" = 1 ] || tag="$tag-a$attempt"
    start_hub "$name" "$tag"
    l0=$(load1)
    read_cpu "$HUB_PID"
    s0=$STAT_TICKS n0=$SCHED_NS w0=$WAIT_NS t0=$T_US
    start_loadgen "$tag" --label "$name" --scenario accept --mode idle --users "$ACCEPT_N" --per-user 1 \
      --concurrency "$ACCEPT_CONCURRENCY" --idle-seconds "$LG_TAIL" --connect-timeout 60 --max-seconds 90
    read_line 95 || fail "$tag: no connect line from the generator (see $OUT/logs/$tag.loadgen.log)"
    read_cpu "$HUB_PID"
    s1=$STAT_TICKS n1=$SCHED_NS w1=$WAIT_NS t1=$T_US
    conn=$LINE
    gen_ticks "$LG_PID"
    finish_loadgen
    stop_hub "$name"
    # other load on the hub's core: the hub waited for it over
    # ACCEPT_MAX_WAIT_PCT of the window -> measured again (the last attempt
    # is kept whatever it shows)
    kept=1
    if [ $(((w1 - w0) / 10)) -gt $((ACCEPT_MAX_WAIT_PCT * (t1 - t0))) ] && [ "$attempt" -lt "$ACCEPT_ATTEMPTS" ]; then
      kept=0
    fi
    printf '{"kind":"accept","bin":"%s","rev":"%s","round":%d,"pos":%d,"attempt":%d,"kept":%d,"n":%d,"concurrency":%d,"clk_tck":%d,"stat_ticks":%d,"sched_ns":%d,"wait_ns":%d,"window_us":%d,"load1":%s,"lg_rc":%d,"gen_utime_ticks":%d,"gen_stime_ticks":%d,"connect":%s,"idle":%s}\n' \
      "$name" "${REV[$name]}" "$r" "$pos" "$attempt" "$kept" "$ACCEPT_N" "$ACCEPT_CONCURRENCY" "$CLK_TCK" \
      $((s1 - s0)) $((n1 - n0)) $((w1 - w0)) $((t1 - t0)) "$l0" "$LG_RC" "$GEN_UT" "$GEN_ST" "$conn" "$LG_IDLE" >>"$JSONL"
    log "accept $name round $r attempt $attempt: $(sed -n 's/.*"ready":\([0-9]*\).*"accept_per_s":\([0-9]*\).*/\1 ready, \2\/s/p' <<<"$conn"), hub $(((s1 - s0) * 1000000 / CLK_TCK / ACCEPT_N)) µs/accept (stat), $(((n1 - n0) / 1000 / ACCEPT_N)) µs (schedstat), waited $(((w1 - w0) / 1000000)) ms of $(((t1 - t0) / 1000)) ms$([ "$kept" = 1 ] || echo ': other load on CPU 0, measured again')"
    [ "$kept" = 1 ] && return 0
  done
}

idle_run() { # name round pos
  local name=$1 r=$2 pos=$3 tag="idle-$1-r$2"
  # the generator idles past the window; it closes everything after
  local lg_idle perf_pid= sweep=null
  lg_idle=$(awk -v a="$IDLE_SETTLE" -v b="$IDLE_SECONDS" -v c="$LG_TAIL" 'BEGIN { print a + b + c }')
  start_hub "$name" "$tag" COORDHUB_WS_IDLE_PING_MS=120000
  local l0 s0 n0 w0 t0 s1 n1 w1 t1 conn
  start_loadgen "$tag" --label "$name" --scenario idle --mode idle --users "$IDLE_N" --per-user 1 \
    --concurrency 256 --idle-seconds "$lg_idle" --connect-timeout 90 --max-seconds 180
  read_line 95 || fail "$tag: no connect line from the generator (see $OUT/logs/$tag.loadgen.log)"
  conn=$LINE
  gen_ticks "$LG_PID"
  if [ "$SWEEP" = 1 ]; then
    # each sweep's entry and return (uprobes), on the generator's core,
    # started before the window and ending just after it
    "${GEN_PIN[@]}" perf record -q -e "probe_coordhub:benchauth_${name}_in" \
      -e "probe_coordhub:benchauth_${name}_out__return" -p "$HUB_PID" -o "$OUT/$tag.sweep.data" \
      -- sleep "$(awk -v a="$IDLE_SETTLE" -v b="$IDLE_SECONDS" 'BEGIN { print a + b }')" \
      >"$OUT/logs/$tag.perf.log" 2>&1 &
    perf_pid=$!
    PIDS+=("$perf_pid")
  fi
  nap "$IDLE_SETTLE"
  l0=$(load1)
  read_cpu "$HUB_PID"
  s0=$STAT_TICKS n0=$SCHED_NS w0=$WAIT_NS t0=$T_US
  nap "$IDLE_SECONDS"
  read_cpu "$HUB_PID"
  s1=$STAT_TICKS n1=$SCHED_NS w1=$WAIT_NS t1=$T_US
  local lg_alive=1 # still idling: its closes are not in the window
  kill -0 "$LG_PID" 2>/dev/null || lg_alive=0
  if [ -n "$perf_pid" ]; then
    wait "$perf_pid" || true
    forget "$perf_pid"
    # durations of the sweeps, µs, in the order they ran
    sweep=$(perf script -i "$OUT/$tag.sweep.data" -F event,time 2>/dev/null | tr -d ':' |
      awk '/_in/ { t = $1 } /_out/ { if (t) d[n++] = ($1 - t) * 1e6; t = 0 }
        END { printf "["; for (i = 0; i < n; i++) printf "%s%.1f", i ? "," : "", d[i]; printf "]" }')
    rm -f "$OUT/$tag.sweep.data"
  fi
  finish_loadgen
  stop_hub "$name"
  printf '{"kind":"idle","bin":"%s","rev":"%s","round":%d,"pos":%d,"n":%d,"clk_tck":%d,"stat_ticks":%d,"sched_ns":%d,"wait_ns":%d,"window_us":%d,"load1":%s,"lg_rc":%d,"lg_alive":%d,"gen_utime_ticks":%d,"gen_stime_ticks":%d,"sweep_us":%s,"connect":%s,"idle":%s}\n' \
    "$name" "${REV[$name]}" "$r" "$pos" "$IDLE_N" "$CLK_TCK" $((s1 - s0)) $((n1 - n0)) $((w1 - w0)) \
    $((t1 - t0)) "$l0" "$LG_RC" "$lg_alive" "$GEN_UT" "$GEN_ST" "$sweep" "$conn" "$LG_IDLE" >>"$JSONL"
  log "idle $name round $r: $(sed -n 's/.*"ready":\([0-9]*\).*/\1 ready/p' <<<"$conn"), hub $(awk -v n=$((n1 - n0)) -v t=$((t1 - t0)) 'BEGIN { printf "%.3f", n / 10 / t }')% of a core (schedstat), $(((s1 - s0))) ticks (stat)$([ "$sweep" = null ] || echo ", sweeps (µs): ${sweep:0:80}")"
}

# ------------------------------------------------------------------ sweep timing
# SWEEP=1 (the default when it works): uprobes on the liveness sweep's
# on_sweep (gateway/liveness.c) entry and return in each binary, recorded
# with perf during the idle window: the time each 1 s sweep over every
# connection takes. Needs root, perf and uprobes; otherwise the report says
# it was skipped. The probes are removed on exit.
SWEEP=${SWEEP:-auto}
SWEEP_NOTE=
# perf mounts tracefs at /sys/kernel/tracing by itself when it is not; if
# it was not mounted before, it is unmounted again on exit
TRACEFS_WAS_MOUNTED=0
grep -q ' /sys/kernel/tracing ' /proc/mounts && TRACEFS_WAS_MOUNTED=1
probes_del() {
  perf probe -q -d 'probe_coordhub:benchauth_*' >/dev/null 2>&1 || true
  if [ "$TRACEFS_WAS_MOUNTED" = 0 ] && grep -q ' /sys/kernel/tracing ' /proc/mounts; then
    umount /sys/kernel/tracing 2>/dev/null || true
  fi
}
if [ "$SWEEP" != 0 ] && [[ " $SCENARIOS " == *" idle "* ]]; then
  SWEEP=1
  if ! command -v perf >/dev/null; then
    SWEEP=0 SWEEP_NOTE="perf not installed"
  else
    probes_del
    for b in "${IDLE_BINS[@]}"; do
      if ! perf probe -q -x "${HUB[$b]}" -a "benchauth_${b}_in=on_sweep@gateway/liveness.c" >"$OUT/logs/probe-$b.log" 2>&1 ||
        ! perf probe -q -x "${HUB[$b]}" -a "benchauth_${b}_out=on_sweep@gateway/liveness.c%return" >>"$OUT/logs/probe-$b.log" 2>&1; then
        SWEEP=0 SWEEP_NOTE="perf probe failed (root, uprobes and tracefs at /sys/kernel/tracing are needed): $(tail -1 "$OUT/logs/probe-$b.log")"
        break
      fi
    done
    [ "$SWEEP" = 1 ] && PROBES=1
  fi
  [ "$SWEEP" = 1 ] || { probes_del; log "NOTE: sweep timing skipped: $SWEEP_NOTE"; }
else
  SWEEP=0 SWEEP_NOTE="not asked for (SWEEP=0)"
fi

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
BUSY_START=$(busy_now)
T_START=$(date +%s)
log "redis pid $REDIS_PID on $REDIS_PORT; $PINNING; load average $LOAD_START"
for scenario in $SCENARIOS; do
  for ((r = 1; r <= ROUNDS; r++)); do
    case "$scenario" in
      accept) order_for "$r" "${BINS[@]}" ;;
      idle) order_for "$r" "${IDLE_BINS[@]}" ;;
      *) fail "unknown scenario $scenario" ;;
    esac
    pos=0
    for b in "${ORDER[@]}"; do
      pos=$((pos + 1))
      "${scenario}_run" "$b" "$r" "$pos"
    done
  done
done
T_END=$(date +%s)
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
BUSY_END=$(busy_now)

# ------------------------------------------------------------------ report
json_str() { node -e 'process.stdout.write(JSON.stringify(process.argv[1]))' -- "$1"; }
cmd=bench/auth/run.sh
[ "$QUICK" = 1 ] && cmd="QUICK=1 $cmd"
for v in ROUNDS ACCEPT_N IDLE_N IDLE_SECONDS IDLE_SETTLE SCENARIOS WITH_BASE; do # knobs set by hand
  [ -n "${!v+x}" ] && [ -n "$(printenv "$v")" ] && cmd="$v=$(printenv "$v") $cmd"
done
cat >"$OUT/meta.json" <<EOF
{
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "command": $(json_str "$cmd"),
  "quick": $QUICK,
  "rounds": $ROUNDS,
  "seconds": $((T_END - T_START)),
  "nproc": $(nproc),
  "cpu_model": $(json_str "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"),
  "kernel": "$(uname -r)",
  "openssl": $(json_str "$(openssl version 2>/dev/null || echo unknown)"),
  "libjwt": "$(pkg-config --modversion libjwt 2>/dev/null || echo unknown)",
  "nofile": "$NOFILE",
  "pinning": "$PINNING",
  "load_start": "$LOAD_START",
  "load_end": "$LOAD_END",
  "busy_start": $(json_str "$BUSY_START"),
  "busy_end": $(json_str "$BUSY_END"),
  "after_rev": "$AFTER_REV",
  "after_dirty": $AFTER_DIRTY,
  "before_rev": "${REV[before]}",
  "base_rev": "${REV[base]:-}",
  "hub_start_retries": $START_RETRIES,
  "sweep": $SWEEP,
  "sweep_note": $(json_str "$SWEEP_NOTE"),
  "accept_n": $ACCEPT_N,
  "accept_concurrency": $ACCEPT_CONCURRENCY,
  "accept_max_wait_pct": $ACCEPT_MAX_WAIT_PCT,
  "accept_attempts": $ACCEPT_ATTEMPTS,
  "idle_n": $IDLE_N,
  "idle_note": $(json_str "$IDLE_NOTE"),
  "idle_seconds": $IDLE_SECONDS,
  "idle_settle": $IDLE_SETTLE
}
EOF
node "$here/report.mjs" "$JSONL" "$OUT/meta.json" >"$RESULTS"
cat "$RESULTS"
log "done in $((T_END - T_START)) s; report $RESULTS, raw data $JSONL, logs $OUT/logs"
