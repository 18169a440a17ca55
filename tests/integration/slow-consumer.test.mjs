// A client that stops reading is closed as a slow consumer (4008) once its
// unsent output passes ~1 MiB; the hub does not grow, and other sockets of
// the same user keep receiving (SPEC §4).
import assert from 'node:assert/strict';
import { before } from 'node:test';
import { startHub, startRedis, test, userId, waitUntil } from './harness.mjs';

const RSS_LIMIT = 200 * 1024 * 1024;
const MESSAGE_BYTES = 100 * 1024;
const BATCH = 4; // messages per round; the reading socket drains each round
const MAX_BYTES = 32 * 1024 * 1024; // give up publishing after this much

let redis;
let hub;
before(async () => {
  redis = await startRedis();
  hub = await startHub({ redisUrl: redis.url });
});

test('a paused client is closed with 4008 (counted), the hub stays small, a reading sibling keeps receiving', async (t) => {
  const U = userId();
  const reader = await hub.connect(U);
  const slow = await hub.connect(U);
  const SC = 'coordhub_slow_consumer_closes_total';
  const before0 = await hub.metric(SC);
  const rss0 = hub.rssBytes();

  slow.ws._socket.pause(); // never read again (until later)

  const pub = await redis.client();
  const pad = 'x'.repeat(MESSAGE_BYTES);
  let published = 0;
  let seq = 0;
  let maxRss = rss0;
  let detected = false;
  const started = Date.now();
  while (published < MAX_BYTES && Date.now() - started < 60000) {
    const cmds = [];
    for (let i = 0; i < BATCH; i++) {
      seq++;
      cmds.push(['PUBLISH', 'tradestate', JSON.stringify({ steamId: U, token: 't', state: 'bulk', msg: '', extra: { seq, pad } })]);
    }
    await pub.pipeline(cmds);
    published += BATCH * MESSAGE_BYTES;
    // The reader drains each round, so only the paused socket backs up.
    const want = seq;
    await reader.waitFor((m) => m.event === 'tradestate' && m.data.extra && m.data.extra.seq === want, 10000, `bulk message ${want} at the reader`);
    maxRss = Math.max(maxRss, hub.rssBytes());
    if (published >= 3 * 1024 * 1024 && (await hub.metric(SC)) > before0) {
      detected = true;
      break;
    }
  }
  // If publishing stopped before the counter moved, allow the hub a few
  // seconds (a client that never reads may be dropped on a timer).
  if (!detected) {
    await waitUntil(async () => (await hub.metric(SC)) > before0, {
      timeoutMs: 15000,
      what: `${SC} to grow after ${(published / 1048576).toFixed(1)} MiB for a paused client`,
    });
  }
  assert.equal((await hub.metric(SC)) - before0, 1, 'exactly one slow-consumer close (the paused socket)');
  maxRss = Math.max(maxRss, hub.rssBytes());
  assert.ok(
    maxRss < RSS_LIMIT,
    `hub RSS reached ${(maxRss / 1048576).toFixed(1)} MiB (limit ${RSS_LIMIT / 1048576} MiB, start ${(rss0 / 1048576).toFixed(1)} MiB)`,
  );

  // The reading sibling is untouched and still receives.
  assert.equal(reader.isClosed, false, `reader closed: ${JSON.stringify(reader.closeInfo)}`);
  const marker = { steamId: U, token: 't', state: 'after-slow-close', msg: '' };
  await pub.publish('tradestate', JSON.stringify(marker));
  assert.deepEqual((await reader.waitEvent('tradestate', 10000, (m) => m.data.state === 'after-slow-close')).data, marker);

  // The paused client, once it reads again, sees 4008 (or a dropped
  // connection if the hub gave up on it first).
  slow.ws._socket.resume();
  const { code } = await slow.waitClose(20000);
  assert.ok(code === 4008 || code === 1006, `slow consumer closed with ${code}, expected 4008 (or 1006)`);
  t.diagnostic(
    `published ${(published / 1048576).toFixed(1)} MiB; hub RSS ${(rss0 / 1048576).toFixed(1)} -> max ${(maxRss / 1048576).toFixed(1)} MiB; ` +
      `paused client got ${slow.count((m) => m.event === 'tradestate')} messages, then close ${code}`,
  );
  // It received a prefix of the stream, never the marker sent after its close.
  assert.equal(slow.count((m) => m.event === 'tradestate' && m.data.state === 'after-slow-close'), 0);
  pub.close();

  // And the hub gives the memory back: the gauge drops to the one reader.
  await waitUntil(async () => (await hub.metric('coordhub_connections', { protocol: 'native' })) === 1, {
    timeoutMs: 10000,
    what: 'coordhub_connections{protocol="native"} back to 1',
  });
});

test('a client that never reads again is dropped within a bounded time and the hub stays small', async (t) => {
  const U = userId();
  const gauge = () => hub.metric('coordhub_connections', { protocol: 'native' });
  const base = await gauge();
  const reader = await hub.connect(U);
  const stuck = await hub.connect(U);
  const before0 = await hub.metric('coordhub_slow_consumer_closes_total');
  await waitUntil(async () => (await gauge()) === base + 2, { what: 'two more native connections' });
  stuck.ws._socket.pause(); // and never resumed

  const pub = await redis.client();
  const pad = 'z'.repeat(MESSAGE_BYTES);
  let seq = 0;
  let maxRss = hub.rssBytes();
  const started = Date.now();
  // About 8 MiB in rounds the reader drains; the stuck socket backs up.
  while (seq < 80 && Date.now() - started < 60000) {
    const cmds = [];
    for (let i = 0; i < BATCH; i++) {
      seq++;
      cmds.push(['PUBLISH', 'tradestate', JSON.stringify({ steamId: U, token: 't', state: 'bulk2', msg: '', extra: { seq, pad } })]);
    }
    await pub.pipeline(cmds);
    const want = seq;
    await reader.waitFor((m) => m.event === 'tradestate' && m.data.extra && m.data.extra.seq === want, 10000, `message ${want} at the reader`);
    maxRss = Math.max(maxRss, hub.rssBytes());
  }
  // The hub cannot deliver a close frame to a socket that does not read;
  // it must still let go of it.
  const t0 = Date.now();
  await waitUntil(async () => (await gauge()) === base + 1, {
    timeoutMs: 20000,
    intervalMs: 200,
    what: 'the stuck connection to be dropped (coordhub_connections down by one)',
  });
  t.diagnostic(`stuck socket dropped ${Date.now() - t0} ms after publishing ended; max RSS ${(maxRss / 1048576).toFixed(1)} MiB`);
  assert.equal((await hub.metric('coordhub_slow_consumer_closes_total')) - before0, 1);
  assert.ok(maxRss < RSS_LIMIT, `hub RSS reached ${(maxRss / 1048576).toFixed(1)} MiB`);
  assert.equal(reader.isClosed, false);
  await pub.publish('canceledtrades', U);
  await reader.waitEvent('canceledtrades', 5000);
  pub.close();
});
