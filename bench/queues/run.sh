#!/usr/bin/env bash
# bench/queues/run.sh: what watching job queues (SPEC §12) costs, one command.
#
#   bench/queues/run.sh            # about 2.5 minutes on 2 vCPUs (2 min 40 s here)
#   QUICK=1 bench/queues/run.sh    # a smoke run of about 40 s (checks the tool, not figures)
#
# 1. Hub CPU per routed job event at RATE (5,000) events/s: a private
#    redis-server, the hub with --queues bullmq:bench, USERS (100) native /ws
#    clients in their user rooms; job hashes bull:bench:<id> with
#    data {"userId":"u<k>"} written first (untimed), then BullMQ-shaped
#    entries (active, progress, completed) XADDed to bull:bench:events at
#    RATE for EVENT_SECONDS (10). The floor, in the same run on the same hub:
#    PUBLISH tradestate (unicast to user:<steamId>) at the same rate. ROUNDS
#    (3) rounds, the order alternating (floor, jobs / jobs, floor ...). Hub CPU
#    (/proc/<pid>/stat utime+stime, and schedstat) over the steady window /
#    deliveries counted at the clients (= coordhub_queue_job_events_total);
#    printed in µs per event with the ratio jobs / floor.
# 2. The cost of polling POLL_QUEUES (50) BullMQ queues every second (jobs
#    in wait, active, delayed, completed, failed): a fresh hub without
#    --queues, with --queues bullmq:q0,... --queue-poll-ms 1000, without
#    again, POLL_SECONDS (20) each: hub and redis-server CPU (/proc), polls,
#    INFO commandstats (evalsha); CPU ms per poll round, Redis µs per queue
#    poll.
# The hub on CPU 0, redis-server and the generator (bench.mjs, Node) on CPU 1
# (taskset, when there are two CPUs).
#
# Writes RESULTS (default bench/queues/results.md; QUICK: $OUT/results.md)
# and prints it; the raw JSON and the log in OUT (default build/bench/queues,
# QUICK: build/bench/queues-quick).
#
# Environment: QUICK, RATE, EVENT_SECONDS, WARMUP, USERS, ROUNDS, POLL_QUEUES,
# POLL_SECONDS, POLL_SETTLE, COORDHUB_BIN (default build/coordhub, brought up
# to date first unless NO_BUILD=1; copied to $OUT/coordhub, and that copy
# runs), REDIS_SERVER, RESULTS, OUT, WATCHDOG_SECONDS.
#
# Bounded: loopback only; bench.mjs stops its redis-server and hubs (by pid)
# on exit, on SIGTERM/SIGINT, and after its own deadline (--max-seconds); it
# runs under `timeout` (WATCHDOG_SECONDS).
set -euo pipefail
export MONGOC_DISABLE_SHM=1

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bench=$(dirname "$here")
repo=$(dirname "$bench")
cd "$repo"

# the exact command, for the report: the knobs set in the environment
cmd=bench/queues/run.sh
for v in WATCHDOG_SECONDS RESULTS OUT REDIS_SERVER NO_BUILD COORDHUB_BIN POLL_SETTLE POLL_SECONDS \
  POLL_QUEUES ROUNDS USERS WARMUP EVENT_SECONDS RATE QUICK; do
  if [ -n "${!v+x}" ]; then
    val=${!v}
    [[ "$val" =~ ^[A-Za-z0-9_./:,=+-]+$ ]] || val="\"$val\""
    cmd="$v=$val $cmd"
  fi
done

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  EVENT_SECONDS=${EVENT_SECONDS:-3}
  ROUNDS=${ROUNDS:-1}
  POLL_SECONDS=${POLL_SECONDS:-4}
  POLL_SETTLE=${POLL_SETTLE:-1}
  WARMUP=${WARMUP:-1}
else
  EVENT_SECONDS=${EVENT_SECONDS:-10}
  ROUNDS=${ROUNDS:-3}
  POLL_SECONDS=${POLL_SECONDS:-20}
  POLL_SETTLE=${POLL_SETTLE:-3}
  WARMUP=${WARMUP:-2}
fi
RATE=${RATE:-5000}
USERS=${USERS:-100}
POLL_QUEUES=${POLL_QUEUES:-50}
OUT=${OUT:-$repo/build/bench/queues$([ "$QUICK" != 1 ] || echo -quick)}
RESULTS=${RESULTS:-$([ "$QUICK" = 1 ] && echo "$OUT/results.md" || echo "$here/results.md")}
HUB_SRC=${COORDHUB_BIN:-$repo/build/coordhub}
REDIS_BIN=${REDIS_SERVER:-$(command -v redis-server || echo /usr/bin/redis-server)}
# part 1: per phase the job hashes, the generation and a drain (2 s at most);
# part 2: three hubs, each settle + window + start/stop; plus slack
MAX_SECONDS=$((60 + ROUNDS * 2 * (EVENT_SECONDS + 6) + 3 * (POLL_SETTLE + POLL_SECONDS + 12)))
WATCHDOG_SECONDS=${WATCHDOG_SECONDS:-$((MAX_SECONDS + 30))}

log() { printf '[queues %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
fail() { log "ERROR: $*"; exit 1; }

for t in node timeout; do command -v "$t" >/dev/null || fail "$t is required"; done
[ -x "$REDIS_BIN" ] || fail "redis-server not found (set REDIS_SERVER)"
[ -d "$repo/tests/node_modules/ws" ] || fail "tests/node_modules is missing (cd tests && npm ci)"
mkdir -p "$OUT"

if [ -z "${COORDHUB_BIN:-}" ] && [ "${NO_BUILD:-0}" != 1 ]; then
  command -v cmake >/dev/null || fail "cmake is required to build the hub (or set COORDHUB_BIN / NO_BUILD=1)"
  [ -f "$repo/build/CMakeCache.txt" ] ||
    cmake -S "$repo" -B "$repo/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$OUT/cmake.log" 2>&1 ||
    { tail -20 "$OUT/cmake.log"; fail "cmake configure failed"; }
  log "building the hub (cmake --build build --target coordhub)"
  cmake --build "$repo/build" --target coordhub -j "$(nproc)" >"$OUT/build.log" 2>&1 ||
    { tail -30 "$OUT/build.log"; fail "hub build failed"; }
fi
[ -x "$HUB_SRC" ] || fail "no hub binary at $HUB_SRC"
HUB_BIN=$OUT/coordhub
cp "$HUB_SRC" "$HUB_BIN"
hub_commit=$(git -C "$repo" --no-optional-locks rev-parse --short HEAD 2>/dev/null || echo unknown)
hub_dirty=$(git -C "$repo" --no-optional-locks status --porcelain --untracked-files=no -- '*.c' '*.h' 2>/dev/null | wc -l || echo 0)

log "rate $RATE/s x ${EVENT_SECONDS} s x $ROUNDS rounds, $USERS users; $POLL_QUEUES queues x ${POLL_SECONDS} s; bound ${MAX_SECONDS} s"
rc=0
COORDHUB_BIN=$HUB_BIN REDIS_SERVER=$REDIS_BIN timeout --signal=TERM --kill-after=10 "$WATCHDOG_SECONDS" \
  node "$here/bench.mjs" --rate "$RATE" --seconds "$EVENT_SECONDS" --warmup "$WARMUP" --users "$USERS" \
  --rounds "$ROUNDS" --poll-queues "$POLL_QUEUES" --poll-seconds "$POLL_SECONDS" --poll-settle "$POLL_SETTLE" \
  --max-seconds "$MAX_SECONDS" >"$OUT/results.json" 2> >(tee "$OUT/bench.log" >&2) || rc=$?
[ -s "$OUT/results.json" ] || fail "bench.mjs wrote nothing (status $rc); see $OUT/bench.log"

cat >"$OUT/meta.json" <<JSON
{
  "command": "$(printf '%s' "$cmd" | sed 's/\\/\\\\/g; s/"/\\"/g')",
  "hub": "$("$HUB_BIN" --version 2>/dev/null | head -1 | tr -d '"\\')",
  "hub_bin": "$HUB_SRC",
  "hub_sha256": "$(sha256sum "$HUB_BIN" | cut -c1-12)",
  "hub_mtime": "$(date -u -r "$HUB_SRC" +%Y-%m-%dT%H:%M:%SZ)",
  "hub_commit": "$hub_commit",
  "hub_dirty": $hub_dirty,
  "out": "$OUT"
}
JSON
node "$here/report.mjs" "$OUT/results.json" "$OUT/meta.json" >"$RESULTS"
cat "$RESULTS"
log "done (status $rc); results in $RESULTS, raw data in $OUT/results.json"
exit "$rc"
