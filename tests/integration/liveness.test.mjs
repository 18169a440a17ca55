// WebSocket liveness: a native connection silent for COORDHUB_WS_IDLE_PING_MS
// is sent a PING; a client that answers (every WebSocket client does, by
// itself) stays open however long it idles; one that does not is dropped
// COORDHUB_WS_IDLE_DROP_MS later, and counted. The hub here uses 300 / 400 ms
// instead of the 30 s / 10 s defaults.
import assert from 'node:assert/strict';
import { before } from 'node:test';
import { RawWs, sleep, startHub, startRedis, test, userId, wsFrame } from './harness.mjs';

let redis;
let hub;
before(async () => {
  redis = await startRedis();
  hub = await startHub({
    redisUrl: redis.url,
    env: { COORDHUB_WS_IDLE_PING_MS: '300', COORDHUB_WS_IDLE_DROP_MS: '400' },
  });
});

test('an idle client that answers PINGs (the ws library, as browsers) stays open and served', async () => {
  const U = userId();
  const drops0 = await hub.metric('coordhub_idle_drops_total');
  const pings0 = await hub.metric('coordhub_idle_pings_total');
  const c = await hub.connect(U);
  let pings = 0;
  c.ws.on('ping', () => pings++);
  await sleep(3000); // seven times ping + drop
  assert.equal(c.isClosed, false, `closed while idle: ${JSON.stringify(c.closeInfo)}`);
  assert.ok(pings >= 3, `only ${pings} PINGs in 3 s of silence`);
  assert.ok((await hub.metric('coordhub_idle_pings_total')) >= pings0 + 3);
  assert.equal(await hub.metric('coordhub_idle_drops_total'), drops0);
  const state = { steamId: U, token: 't', state: 'after-idle', msg: '' };
  await redis.publish('tradestate', JSON.stringify(state));
  const m = await c.waitEvent('tradestate', 5000, (x) => x.data.state === 'after-idle');
  assert.deepEqual(m.data, state);
  c.close();
});

test('a client that never answers is dropped after the PING and the grace, and counted', async () => {
  const drops0 = await hub.metric('coordhub_idle_drops_total');
  const t0 = Date.now();
  const c = await RawWs.open(hub, { sub: userId() }); // answers nothing but a close
  const end = await c.waitEnd(5000);
  const ms = Date.now() - t0;
  assert.equal(end.tcpClosed, true);
  assert.equal(end.closeCode, null, 'a silent peer is dropped, not sent a close frame');
  const ping = c.frames.find((f) => f.opcode === 0x9);
  assert.ok(ping, 'no PING before the drop');
  assert.ok(ping.payload.length > 0, 'the PING must carry a payload (lws ignores empty PONGs)');
  assert.ok(ms >= 650, `dropped after ${ms} ms, before 300 ms of silence + 400 ms of grace`);
  assert.equal(await hub.metric('coordhub_idle_drops_total'), drops0 + 1);
});

test('a raw client that echoes each PING in a PONG stays open', async () => {
  const c = await RawWs.open(hub, { sub: userId() });
  let answered = 0;
  const timer = setInterval(() => {
    while (answered < c.frames.length) {
      const f = c.frames[answered++];
      if (f.opcode === 0x9) c.write(wsFrame({ opcode: 0xa, payload: f.payload }));
    }
  }, 20);
  try {
    await sleep(2000);
    assert.equal(c.tcpClosed, false, 'dropped although it answered every PING');
    assert.ok(c.frames.filter((f) => f.opcode === 0x9).length >= 2);
  } finally {
    clearInterval(timer);
    c.destroy();
  }
});
