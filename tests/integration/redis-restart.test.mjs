// Redis dies and comes back on the same port: WebSockets stay open, /readyz
// is 503 meanwhile, the hub resubscribes and delivery resumes (SPEC §8).
import assert from 'node:assert/strict';
import { before } from 'node:test';
import { httpGet, join, sleep, startHub, startRedis, test, userId, waitUntil } from './harness.mjs';

let redis;
let hub;
before(async () => {
  redis = await startRedis();
  hub = await startHub({ redisUrl: redis.url });
});

const CHANNELS = ['tradestate', 'canceledtrades', 'itemReserved', 'finishedtrades', 'steamDown'];

async function readyz() {
  return (await httpGet(`${hub.url}/readyz`, { timeoutMs: 2000 })).status;
}

test('the hub is subscribed to every channel and the bot pattern', async () => {
  const chans = await redis.command(['PUBSUB', 'CHANNELS']);
  for (const c of CHANNELS) assert.ok(chans.includes(c), `PUBSUB CHANNELS lacks ${c}: ${JSON.stringify(chans)}`);
  assert.ok((await redis.command(['PUBSUB', 'NUMPAT'])) >= 1, 'no pattern subscription (bot *)');
  assert.equal(await hub.metric('coordhub_redis_connected'), 1);
});

test('SIGKILL of Redis and a restart on the same port: sockets stay, readyz 503 then 200, delivery resumes', async () => {
  const U = userId();
  const user = await hub.connect(U);
  const ops = await hub.connect(userId(), ['ops']);
  await join(ops, 'bot:7');
  const reconnects0 = await hub.metric('coordhub_redis_reconnects_total');
  assert.equal(await readyz(), 200);

  await redis.kill('SIGKILL');
  await waitUntil(async () => (await readyz()) === 503, { timeoutMs: 10000, what: '/readyz 503 while Redis is down' });
  await waitUntil(async () => (await hub.metric('coordhub_redis_connected')) === 0, {
    timeoutMs: 5000,
    what: 'coordhub_redis_connected 0 while Redis is down',
  });
  // The hub process and its HTTP side live on.
  assert.equal((await httpGet(`${hub.url}/healthz`)).status, 200);
  // Still 503 a little later (it must not claim readiness without Redis).
  await sleep(600);
  assert.equal(await readyz(), 503);

  await redis.restart();
  await waitUntil(async () => (await readyz()) === 200, { timeoutMs: 10000, what: '/readyz 200 after Redis restarted' });

  const chans = await redis.command(['PUBSUB', 'CHANNELS']);
  for (const c of CHANNELS) assert.ok(chans.includes(c), `after restart PUBSUB CHANNELS lacks ${c}: ${JSON.stringify(chans)}`);
  assert.ok((await redis.command(['PUBSUB', 'NUMPAT'])) >= 1, 'after restart no pattern subscription (bot *)');

  assert.equal(user.isClosed, false, `user socket closed: ${JSON.stringify(user.closeInfo)}`);
  assert.equal(ops.isClosed, false, `ops socket closed: ${JSON.stringify(ops.closeInfo)}`);

  const state = { steamId: U, token: 't', state: 'after-restart', msg: '' };
  await redis.publish('tradestate', JSON.stringify(state));
  assert.deepEqual((await user.waitEvent('tradestate', 5000)).data, state);
  await redis.publish('bot 7', `sale 7 ${U}_h`);
  assert.equal((await ops.waitEvent('bot', 5000)).data.command, 'sale');
  await redis.publish('canceledtrades', U);
  await user.waitEvent('canceledtrades', 5000);

  assert.ok(
    (await hub.metric('coordhub_redis_reconnects_total')) > reconnects0,
    'coordhub_redis_reconnects_total did not grow',
  );
  assert.equal(await hub.metric('coordhub_redis_connected'), 1);
});

test('a second outage with no clients connected also recovers', async () => {
  await redis.kill('SIGKILL');
  await waitUntil(async () => (await readyz()) === 503, { timeoutMs: 10000, what: '/readyz 503' });
  await redis.restart();
  await waitUntil(async () => (await readyz()) === 200, { timeoutMs: 10000, what: '/readyz 200' });
  const U = userId();
  const c = await hub.connect(U);
  await redis.publish('canceledtrades', U);
  await c.waitEvent('canceledtrades', 5000);
});
