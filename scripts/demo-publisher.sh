#!/usr/bin/env bash
# Play three trading bots (7, 12, 31) against a Redis, forever, for the demo.
#
#   scripts/demo-publisher.sh REDIS_PORT [STEAMID]
#
# About once a second (DEMO_INTERVAL seconds) it publishes one of the
# messages the platform's bots publish today (SPEC.md section 3): mostly
# `tradestate` JSON for STEAMID (default 76561198000000001) and two other
# users, bot commands on `bot <id>`, and now and then `canceledtrades`,
# `itemReserved`, `finishedtrades` and `steamDown`. Redis is 127.0.0.1 unless
# DEMO_REDIS_HOST says otherwise. Stops on SIGINT/SIGTERM, or after Redis
# has refused ten publishes in a row.
set -euo pipefail

usage() {
  echo "usage: $0 REDIS_PORT [STEAMID]" >&2
  exit 2
}

(($# >= 1 && $# <= 2)) || usage
port="$1"
me="${2:-76561198000000001}"
host="${DEMO_REDIS_HOST:-127.0.0.1}"
interval="${DEMO_INTERVAL:-1}"
[[ "$port" =~ ^[0-9]+$ ]] || usage
[[ "$me" =~ ^[A-Za-z0-9]{1,64}$ ]] || {
  echo "$0: STEAMID must be 1-64 characters of A-Za-z0-9" >&2
  exit 2
}
command -v redis-cli >/dev/null 2>&1 || {
  echo "$0: redis-cli not found (scripts/deps.sh run installs it)" >&2
  exit 1
}

users=("$me" "$me" "$me" 76561198000000002 76561198000000003)
bots=(7 12 31)
states=(sent accepted declined escrow)

sleep_pid=""
on_signal() {
  [[ -n "$sleep_pid" ]] && kill "$sleep_pid" 2>/dev/null
  exit 0
}
trap on_signal INT TERM

# hex N: N random lowercase hex digits.
hex() {
  od -An -N"$(((($1) + 1) / 2))" -tx1 /dev/urandom | tr -d ' \n' | cut -c1-"$1"
}

pick() { # pick ARRAY_ELEMENTS...: one of the arguments at random
  local n=$#
  local i=$((RANDOM % n + 1))
  printf '%s' "${!i}"
}

failures=0
publish() { # publish CHANNEL MESSAGE
  if redis-cli -h "$host" -p "$port" PUBLISH "$1" "$2" >/dev/null 2>&1; then
    failures=0
  else
    failures=$((failures + 1))
    if ((failures >= 10)); then
      echo "demo-publisher: Redis at $host:$port refused 10 publishes in a row; stopping" >&2
      exit 1
    fi
  fi
}

items_json() { # items_json N: a tradeData item list of N items
  local n="$1" i out=""
  for ((i = 0; i < n; i++)); do
    out+="${out:+,}{\"appid\":730,\"assetid\":\"$((RANDOM * 32768 + RANDOM))\"}"
  done
  printf '[%s]' "$out"
}

tradestate() {
  local user bot state items msg
  user="$(pick "${users[@]}")"
  bot="$(pick "${bots[@]}")"
  state="$(pick "${states[@]}")"
  items=$((RANDOM % 5 + 1))
  case "$state" in
    sent) msg="Bot $bot sent you a trade offer for $items item(s)" ;;
    accepted) msg="Trade accepted: $items item(s) moved" ;;
    declined) msg="Trade offer declined" ;;
    escrow) msg="Trade is on hold (Steam escrow)" ;;
  esac
  publish tradestate "{\"steamId\":\"$user\",\"token\":\"$(hex 16)\",\"state\":\"$state\",\"msg\":\"$msg\",\"extra\":{\"bot\":\"$bot\",\"items\":$items}}"
}

bot_command() {
  local bot user
  bot="$(pick "${bots[@]}")"
  user="$(pick "${users[@]}")"
  case $((RANDOM % 3)) in
    0) publish "bot $bot" "withdraw $bot ${user}_$(hex 8) tradeData:{\"items\":$(items_json $((RANDOM % 3 + 1)))}" ;;
    1) publish "bot $bot" "sale $bot ${user}_$(hex 8) tradeData:{\"items\":$(items_json $((RANDOM % 3 + 1))),\"price\":$((RANDOM % 5000 + 100))}" ;;
    2) publish "bot $bot" "checkSteamGuard $bot" ;;
  esac
}

echo "demo-publisher: bots 7, 12, 31 publishing to redis $host:$port for user $me (every ${interval}s; Ctrl-C stops)"

steam_down=0
while :; do
  roll=$((RANDOM % 100))
  if ((roll < 45)); then
    tradestate
  elif ((roll < 72)); then
    bot_command
  elif ((roll < 80)); then
    publish canceledtrades "$(pick "${users[@]}")"
  elif ((roll < 88)); then
    publish itemReserved ""
  elif ((roll < 95)); then
    publish finishedtrades "$(pick "${users[@]}")_$(hex 8)"
  else
    if ((steam_down)); then
      publish steamDown "Steam is back: trade offers resume"
      steam_down=0
    else
      publish steamDown "Steam API unreachable from bot $(pick "${bots[@]}"): trade offers paused"
      steam_down=1
    fi
  fi
  # In the background so that a signal is handled at once, not after sleep.
  sleep "$interval" &
  sleep_pid=$!
  wait "$sleep_pid" || true
  sleep_pid=""
done
