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
#
# With the hub's address it also uses the HTTP API, as the platform's
# services do (scripts/run.sh sets all three):
#   DEMO_HUB_URL        e.g. http://127.0.0.1:8080
#   DEMO_SERVICE_TOKEN  a token with role service: reserves assets of app 730
#                       for 15-90 s (the hub then broadcasts reserve-items,
#                       instead of the bare itemReserved publish), releases
#                       some early, and now and then holds lock lockTrade:demo
#   DEMO_ADMIN_TOKEN    a token with role admin: writes the configuration
#                       keys tradeDisabled and pricingFlags every ~15 s
#                       (retried every half minute while the hub answers
#                       anything but 200, e.g. before it serves configuration)
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
hub="${DEMO_HUB_URL:-}"
service_token="${DEMO_SERVICE_TOKEN:-}"
admin_token="${DEMO_ADMIN_TOKEN:-}"
if [[ -n "$hub" ]] && ! command -v curl >/dev/null 2>&1; then
  echo "$0: curl not found: not using the hub's HTTP API" >&2
  hub=""
fi

# Two thirds of the traffic is for STEAMID, so that its page is busy.
users=("$me" "$me" "$me" "$me" 76561198000000002 76561198000000003)
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

# api METHOD PATH TOKEN [JSON]: one call to the hub's API; prints the HTTP
# status (000 when the hub did not answer).
api() {
  local args=(-s -o /dev/null -w '%{http_code}' -m 2 -X "$1" -H "Authorization: Bearer $3")
  if (($# >= 4)); then
    args+=(-H 'Content-Type: application/json' --data "$4")
  fi
  curl "${args[@]}" "$hub$2" 2>/dev/null || true
}

# Reservations of app 730 made here and not yet released: "asset expiry_s".
held_assets=()

reserve() {
  local n=$((RANDOM % 3 + 1)) ttl=$((RANDOM % 76 + 15)) bot list="" asset i code
  bot="$(pick "${bots[@]}")"
  for ((i = 0; i < n; i++)); do
    asset="$((RANDOM * 32768 + RANDOM))"
    list+="${list:+,}\"$asset\""
  done
  code="$(api POST /v1/reservations/730 "$service_token" "{\"assets\":[$list],\"ttl_s\":$ttl,\"owner\":\"bot$bot\"}")"
  if [[ "$code" == 200 ]]; then
    for asset in ${list//[\",]/ }; do
      held_assets+=("$asset $((SECONDS + ttl))")
    done
  elif [[ "$code" != 409 ]]; then
    echo "demo-publisher: POST /v1/reservations/730 answered $code" >&2
  fi
}

# Releases one reservation made here that has not expired yet.
release() {
  local keep=() entry asset expiry released=""
  for entry in "${held_assets[@]}"; do
    read -r asset expiry <<<"$entry"
    ((expiry > SECONDS + 1)) || continue
    if [[ -z "$released" ]]; then
      released="$asset"
      api DELETE "/v1/reservations/730/$asset" "$service_token" >/dev/null
    else
      keep+=("$entry")
    fi
  done
  held_assets=("${keep[@]}")
}

# Holds lockTrade:demo for 8 s (409 when still held: fine).
take_lock() {
  api POST /v1/locks/lockTrade:demo "$service_token" '{"ttl_ms":8000,"wait_ms":0,"owner":"demo-publisher"}' >/dev/null
}

config_next=0 # SECONDS at which to write the configuration next
trade_disabled=false
write_config() {
  local code surge=$((RANDOM % 5 + 10)) fees
  fees="$(pick standard standard weekend promo)"
  if ((RANDOM % 2)); then
    if [[ "$trade_disabled" == false ]]; then trade_disabled=true; else trade_disabled=false; fi
    code="$(api PUT /v1/config/tradeDisabled "$admin_token" "{\"value\":$trade_disabled,\"category\":\"trading\"}")"
  else
    code="$(api PUT /v1/config/pricingFlags "$admin_token" \
      "{\"value\":{\"surge\":$((surge / 10)).$((surge % 10)),\"fees\":\"$fees\",\"maxItemsPerTrade\":50},\"category\":\"pricing\"}")"
  fi
  if [[ "$code" == 200 ]]; then
    config_next=$((SECONDS + 10 + RANDOM % 10))
  else
    ((config_next == 0)) && echo "demo-publisher: PUT /v1/config answered $code; trying again every 30 s" >&2
    config_next=$((SECONDS + 30))
  fi
}

# The first configuration: both keys, so that the page has values at once.
init_config() {
  local a b
  a="$(api PUT /v1/config/tradeDisabled "$admin_token" '{"value":false,"category":"trading"}')"
  b="$(api PUT /v1/config/pricingFlags "$admin_token" \
    '{"value":{"surge":1.0,"fees":"standard","maxItemsPerTrade":50},"category":"pricing"}')"
  if [[ "$a" == 200 && "$b" == 200 ]]; then
    config_next=$((SECONDS + 10))
    return 0
  fi
  echo "demo-publisher: PUT /v1/config answered $a; trying again every 30 s" >&2
  config_next=$((SECONDS + 30))
  return 1
}

tradestate() {
  local user bot state items msg
  user="${1:-$(pick "${users[@]}")}"
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
use_resv=0
use_config=0
if [[ -n "$hub" && -n "$service_token" ]]; then
  use_resv=1
  echo "demo-publisher: reserving assets of app 730 and taking lockTrade:demo through $hub"
fi
if [[ -n "$hub" && -n "$admin_token" ]]; then
  use_config=1
  init_config && echo "demo-publisher: writing tradeDisabled and pricingFlags through $hub"
fi

# Something for the page to show straight away.
tradestate "$me"
if ((use_resv)); then
  reserve
  reserve
  take_lock
fi

steam_down=0
while :; do
  if ((use_config && config_next > 0 && SECONDS >= config_next)); then
    write_config
  fi
  roll=$((RANDOM % 100))
  if ((roll < 45)); then
    tradestate
  elif ((roll < 72)); then
    bot_command
  elif ((roll < 80)); then
    publish canceledtrades "$(pick "${users[@]}")"
  elif ((roll < 88)); then
    if ((use_resv)); then
      case $((RANDOM % 4)) in
        0) release ;;
        1) take_lock ;;
        *) reserve ;;
      esac
    else
      publish itemReserved ""
    fi
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
