#!/usr/bin/env bash
# A clean start-traffic-shutdown of the real hub under valgrind: the hub must
# exit 0 after SIGTERM with no definite or indirect leak and no memory error.
#   hub-valgrind.sh COORDHUB_BIN WORKDIR
set -euo pipefail
# libmongoc counters in /dev/shm: off (a stale file of a reused pid makes it
# print a warning at load time; docs/libraries.md)
export MONGOC_DISABLE_SHM=1
bin=$1 work=$2
here=$(cd "$(dirname "$0")/.." && pwd)
rm -rf "$work" && mkdir -p "$work"
freeport() {
    node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}
rport=$(freeport)
hport=$(freeport)
cleanup() {
    [ -n "${hub_pid:-}" ] && kill -9 "$hub_pid" 2>/dev/null || true
    redis-cli -p "$rport" shutdown nosave >/dev/null 2>&1 || true
}
trap cleanup EXIT
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
    --daemonize yes --logfile "$work/redis.log"
for _ in $(seq 100); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.05; done

valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
    --log-file="$work/valgrind.log" \
    "$bin" --listen "127.0.0.1:$hport" --redis "redis://127.0.0.1:$rport/0" \
    --jwt-secret vg-secret 2>"$work/hub.log" &
hub_pid=$!
for _ in $(seq 200); do
    curl -sf "http://127.0.0.1:$hport/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -sf "http://127.0.0.1:$hport/readyz" >/dev/null

token=$("$bin" token --sub 76561198000000001 --roles ops --jwt-secret vg-secret)
# A client that joins a bot room, gets events of each kind, and stays
# connected through the shutdown (so the 1001 path runs under valgrind too).
NODE_PATH="$here/node_modules" node - "$hport" "$token" "$rport" <<'JS'
const WebSocket = require('ws');
const { execFileSync } = require('child_process');
const [port, token, rport] = process.argv.slice(2);
const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?token=${token}`);
const seen = new Set();
const pub = (ch, msg) => execFileSync('redis-cli', ['-p', rport, 'PUBLISH', ch, msg]);
const timer = setTimeout(() => { console.error('timeout; saw', [...seen]); process.exit(1); }, 30000);
ws.on('message', (m) => {
  const ev = JSON.parse(m.toString()).event;
  seen.add(ev);
  if (ev === 'joined') {
    pub('tradestate', '{"steamId":"76561198000000001","state":"sent"}');
    pub('canceledtrades', '76561198000000001');
    pub('bot 7', 'withdraw 7 76561198000000001_ab tradeData:{}');
    pub('itemReserved', '');
    pub('tradestate', 'not json');
  }
  if (['tradestate', 'canceledtrades', 'bot', 'bot-command', 'reserve-items'].every((e) => seen.has(e))) {
    clearTimeout(timer);
    console.log('all events seen');
    process.exit(0);
  }
});
ws.on('open', () => { ws.send('{"op":"ping"}'); ws.send('{"op":"join","room":"bot:7"}'); });
ws.on('error', (e) => { console.error(e.message); process.exit(1); });
JS
# a second client kept open across the shutdown
NODE_PATH="$here/node_modules" node -e "
const WebSocket = require('ws');
const ws = new WebSocket('ws://127.0.0.1:$hport/ws?token=$token');
ws.on('open', () => process.kill($hub_pid, 'SIGTERM'));
ws.on('close', (code) => { console.log('close code', code); process.exit(code === 1001 ? 0 : 1); });
setTimeout(() => process.exit(1), 30000);
"
rc=0
wait "$hub_pid" || rc=$?
hub_pid=
echo "hub exit code $rc"
grep -E "definitely lost|indirectly lost|ERROR SUMMARY" "$work/valgrind.log" || true
if [ "$rc" -ne 0 ]; then
    cat "$work/valgrind.log" | tail -60
    tail -20 "$work/hub.log"
    exit 1
fi
