#!/usr/bin/env bash
# Run coordhub for real: a private Redis, the hub, the demo page and three
# demo bots publishing (and reserving assets, taking a lock and writing
# configuration through the hub's API), until Ctrl-C.
#
#   scripts/run.sh
#
# Environment:
#   COORDHUB_PORT        hub port on 127.0.0.1 (default 8080; a free port is
#                        used instead if it is taken)
#   COORDHUB_JWT_SECRET  HS256 secret (default: a random one for this run)
#
# Installs missing packages (scripts/deps.sh run), builds into build/, keeps
# its files and logs in build/demo/. Ctrl-C or SIGTERM stops everything it
# started: the publisher, then the hub (SIGTERM, waited for), then Redis.
set -euo pipefail
# libmongoc counters in /dev/shm: off (a stale file of a reused pid makes it
# print a warning at load time; docs/libraries.md)
export MONGOC_DISABLE_SHM=1

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

demo_user=76561198000000001
demo="$root/build/demo"
hub_log="$demo/hub.log"
redis_log="$demo/redis.log"
pub_log="$demo/publisher.log"

say() { printf 'run.sh: %s\n' "$*"; }
die() {
  printf 'run.sh: %s\n' "$*" >&2
  exit 1
}

# alive PID: the process exists and is not a zombie waiting to be reaped.
alive() {
  local stat
  stat="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
  [[ "$stat" != Z* ]]
}

# stop PID SIGNAL SECONDS: signal, wait up to SECONDS, then SIGKILL; reap.
stop() {
  local pid="$1" sig="$2" secs="$3" i
  alive "$pid" && kill -"$sig" "$pid" 2>/dev/null
  for ((i = 0; i < secs * 10; i++)); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    say "pid $pid did not stop within ${secs}s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# port_in_use PORT: something accepts connections on 127.0.0.1:PORT.
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# free_port: a loopback port nobody listens on, below the ephemeral range.
free_port() {
  local p i
  for ((i = 0; i < 100; i++)); do
    p=$((20000 + RANDOM % 12000))
    port_in_use "$p" || {
      echo "$p"
      return 0
    }
  done
  return 1
}

pub_pid=""
hub_pid=""
redis_pid=""
redis_port=""
cleaning=0

cleanup() {
  ((cleaning)) && return
  cleaning=1
  trap - INT TERM EXIT
  if [[ -n "$pub_pid$hub_pid$redis_pid" ]]; then
    say "stopping"
  fi
  if [[ -n "$pub_pid" ]]; then
    stop "$pub_pid" TERM 3
  fi
  if [[ -n "$hub_pid" ]]; then
    stop "$hub_pid" TERM 10
  fi
  if [[ -n "$redis_pid" ]]; then
    if alive "$redis_pid"; then
      redis-cli -h 127.0.0.1 -p "$redis_port" SHUTDOWN NOSAVE >/dev/null 2>&1 || true
    fi
    stop "$redis_pid" TERM 5
  fi
}
on_signal() {
  echo
  cleanup
  say "stopped"
  exit 0
}
trap on_signal INT TERM
trap cleanup EXIT

# 1. Dependencies and build.
scripts/deps.sh run
# The hub alone: the demo must not depend on every test compiling.
BUILD_TARGET=coordhub scripts/build.sh build
[[ -x build/coordhub ]] || die "build/coordhub was not built"

mkdir -p "$demo/redis"

# The long-running children are started with setsid, in sessions of their
# own, so that a Ctrl-C in the terminal reaches this script alone and the
# shutdown goes in order (the hub closes its sockets while Redis is still up).

# 2. A private Redis on a free loopback port.
for _ in 1 2 3 4 5; do
  redis_port="$(free_port)" || die "no free loopback port for Redis"
  setsid redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$demo/redis" \
    --save "" --appendonly no --daemonize no --logfile "$redis_log" &
  redis_pid=$!
  for ((i = 0; i < 50; i++)); do
    alive "$redis_pid" || break
    [[ "$(redis-cli -h 127.0.0.1 -p "$redis_port" PING 2>/dev/null)" == PONG ]] && break 2
    sleep 0.1
  done
  stop "$redis_pid" TERM 2
  redis_pid=""
done
[[ -n "$redis_pid" ]] || {
  tail -n 5 "$redis_log" >&2 2>/dev/null || true
  die "redis-server did not start (log: $redis_log)"
}

# 3. The hub.
port="${COORDHUB_PORT:-8080}"
if ! [[ "$port" =~ ^[0-9]+$ ]] || ((10#$port < 1 || 10#$port > 65535)); then
  die "COORDHUB_PORT must be a port number, not '$port'"
fi
if port_in_use "$port"; then
  wanted="$port"
  port="$(free_port)" || die "no free loopback port for the hub"
  say "port $wanted is taken; using $port"
fi

secret="${COORDHUB_JWT_SECRET:-}"
if [[ -z "$secret" ]]; then
  if command -v openssl >/dev/null 2>&1; then
    secret="$(openssl rand -hex 32)"
  else
    secret="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
  fi
fi

: >"$hub_log"
setsid build/coordhub --listen "127.0.0.1:$port" \
  --redis "redis://127.0.0.1:$redis_port/0" \
  --jwt-secret "$secret" --web-root web-demo >>"$hub_log" 2>&1 &
hub_pid=$!

hub_died() {
  echo "run.sh: coordhub exited; last lines of $hub_log:" >&2
  tail -n 20 "$hub_log" >&2 || true
  exit 1
}

ready=0
for ((i = 0; i < 150; i++)); do
  alive "$hub_pid" || hub_died
  code="$(curl -s -o /dev/null -m 1 -w '%{http_code}' "http://127.0.0.1:$port/readyz" || true)"
  if [[ "$code" == 200 ]]; then
    ready=1
    break
  fi
  sleep 0.1
done
((ready)) || {
  tail -n 20 "$hub_log" >&2 || true
  die "coordhub did not become ready within 15 s (last /readyz: ${code:-none})"
}

token="$(build/coordhub token --sub "$demo_user" --roles ops,service --ttl 86400 \
  --jwt-secret "$secret")" || die "could not mint a demo token"
token="$(printf '%s' "$token" | tr -d '[:space:]')"
# The demo bots' own tokens: reservations and locks (service), configuration
# writes (admin).
bots_token="$(build/coordhub token --sub demo-bots --roles service --ttl 86400 \
  --jwt-secret "$secret")" || die "could not mint the demo bots' token"
admin_token="$(build/coordhub token --sub demo-admin --roles admin --ttl 86400 \
  --jwt-secret "$secret")" || die "could not mint the demo admin token"

# 4. The demo bots: Redis publishes, plus reservations, a lock and
# configuration writes through the hub's API.
DEMO_HUB_URL="http://127.0.0.1:$port" \
  DEMO_SERVICE_TOKEN="$(printf '%s' "$bots_token" | tr -d '[:space:]')" \
  DEMO_ADMIN_TOKEN="$(printf '%s' "$admin_token" | tr -d '[:space:]')" \
  setsid scripts/demo-publisher.sh "$redis_port" "$demo_user" >"$pub_log" 2>&1 &
pub_pid=$!

url="http://127.0.0.1:$port/?token=$token"
cat <<EOF

  coordhub is running on 127.0.0.1:$port (Redis on 127.0.0.1:$redis_port).

  Open the demo page:
    $url

  Token (user $demo_user, roles ops,service, valid 24 h):
    $token

  Publish by hand:
    redis-cli -p $redis_port PUBLISH tradestate '{"steamId":"$demo_user","token":"t1","state":"accepted","msg":"hello from redis-cli"}'
    redis-cli -p $redis_port PUBLISH canceledtrades $demo_user

  Reserve an asset for a minute (the page's list updates):
    curl -H "Authorization: Bearer \$TOKEN" -d '{"assets":["a1"],"ttl_s":60}' http://127.0.0.1:$port/v1/reservations/730
    (TOKEN: the token above)

  Logs: $hub_log
        $redis_log
        $pub_log

  Ctrl-C stops the publisher, the hub and Redis.

EOF

# 5. Wait until interrupted, or until the hub or Redis dies on its own.
while :; do
  wait -n "$hub_pid" "$redis_pid" || true
  if ! alive "$hub_pid"; then
    hub_died
  fi
  if ! alive "$redis_pid"; then
    say "redis-server exited; last lines of $redis_log:" >&2
    tail -n 10 "$redis_log" >&2 || true
    exit 1
  fi
done
