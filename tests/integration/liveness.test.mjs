// WebSocket liveness: a native connection silent for COORDHUB_WS_IDLE_PING_MS
// is sent a PING; a client that answers (every WebSocket client does, by
// itself) stays open however long it idles; one that does not is dropped
// COORDHUB_WS_IDLE_DROP_MS later, and counted. The hub here uses 300 / 400 ms
// instead of the 30 s / 10 s defaults.
import assert from 'node:assert/strict';
import { before } from 'node:test';
import { RawWs, sleep, startHub, startRedis, test, userId, waitUntil, wsFrame } from './harness.mjs';

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

test('a client that stops reading while lws holds output for it is still dropped, once', async () => {
  // its own hub: the PING must come after the output has piled up
  const h = await startHub({
    redisUrl: redis.url,
    env: { COORDHUB_WS_IDLE_PING_MS: '1500', COORDHUB_WS_IDLE_DROP_MS: '400' },
  });
  const U = userId();
  const c = await RawWs.open(h, { sub: U });
  c.sock.pause(); // alive, but never reads again
  const native = () => h.metric('coordhub_connections', { protocol: 'native' });
  assert.equal(await native(), 1);
  // 900 KB events, one at a time, until one waits in the hub's queue: the
  // kernel's buffers are full and lws holds the rest of the one before.
  // One waiting event is under the 1 MiB slow-consumer limit, so that is not
  // what closes it.
  const pad = 'x'.repeat(900 * 1024);
  let published = 0;
  for (;;) {
    assert.ok(published < 40, 'the kernel took 36 MB for a socket that does not read');
    await redis.publish('tradestate', JSON.stringify({ steamId: U, state: published, pad }));
    published++;
    await sleep(150);
    if ((await h.metric('coordhub_deliveries_total')) < published) break;
  }
  await waitUntil(async () => (await native()) === 0, {
    timeoutMs: 5000,
    what: 'the non-reading connection to be closed after PING + grace',
  });
  await sleep(500); // more sweeps: it is dropped once
  assert.equal(await h.metric('coordhub_idle_drops_total'), 1);
  assert.equal(await h.metric('coordhub_slow_consumer_closes_total'), 0, 'closed as a slow consumer instead');
  c.destroy();
  await h.stop();
});
