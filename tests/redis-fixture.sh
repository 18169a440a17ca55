#!/usr/bin/env bash
# ctest fixture: a throwaway redis-server on a free loopback port.
#   redis-fixture.sh start DIR   starts it, writes DIR/port, waits for PING
#   redis-fixture.sh stop DIR    stops it and removes DIR
set -euo pipefail
cmd=$1 dir=$2
case "$cmd" in
start)
    rm -rf "$dir" && mkdir -p "$dir"
    port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --daemonize yes
    for _ in $(seq 100); do
        if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then
            echo "$port" > "$dir/port"
            echo "redis fixture on port $port"
            exit 0
        fi
        sleep 0.05
    done
    echo "redis fixture did not start" >&2
    cat "$dir/redis.log" >&2 || true
    exit 1
    ;;
stop)
    if [ -f "$dir/port" ]; then
        redis-cli -p "$(cat "$dir/port")" shutdown nosave >/dev/null 2>&1 || true
    fi
    if [ -f "$dir/redis.pid" ]; then
        kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
    fi
    rm -rf "$dir"
    ;;
*)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
