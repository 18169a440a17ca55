// Inbound limits (SPEC §4): a frame over 64 KiB closes with 1009, ops over
// the rate limit (20/s sustained, burst 40) close with 1008, a binary frame
// closes with 1003; all counted, other clients undisturbed.
import assert from 'node:assert/strict';
import { before } from 'node:test';
import { sleep, startHub, startRedis, test, userId, waitUntil } from './harness.mjs';

let redis;
let hub;
let bystander;
let bystanderId;
before(async () => {
  redis = await startRedis();
  hub = await startHub({ redisUrl: redis.url });
  bystanderId = userId();
  bystander = await hub.connect(bystanderId);
});

async function bystanderStillServed(tag) {
  assert.equal(bystander.isClosed, false, `bystander closed (${JSON.stringify(bystander.closeInfo)}) after ${tag}`);
  const state = { steamId: bystanderId, token: 't', state: tag, msg: '' };
  await redis.publish('tradestate', JSON.stringify(state));
  await bystander.waitEvent('tradestate', 5000, (m) => m.data.state === tag);
  bystander.send({ op: 'ping' });
  await bystander.waitEvent('pong');
}

test('a 70 KiB frame closes the socket with 1009 and is counted', async () => {
  const before0 = await hub.metric('coordhub_frame_too_large_closes_total');
  const c = await hub.connect(userId());
  // A valid JSON op padded to 70 KiB, so only its size is wrong.
  c.send(JSON.stringify({ op: 'ping', pad: 'x'.repeat(70 * 1024) }));
  const { code } = await c.waitClose(10000);
  assert.equal(code, 1009);
  await waitUntil(async () => (await hub.metric('coordhub_frame_too_large_closes_total')) === before0 + 1, {
    what: 'coordhub_frame_too_large_closes_total to grow by 1',
  });
  await bystanderStillServed('after-1009');
});

test('a frame just under 64 KiB is accepted', async () => {
  const c = await hub.connect(userId());
  c.send(JSON.stringify({ op: 'ping', pad: 'x'.repeat(60 * 1024) }));
  await c.waitEvent('pong', 5000);
  assert.equal(c.isClosed, false);
  await c.close();
});

test('ops at 10/s for 2 s stay within the rate limit', async () => {
  const c = await hub.connect(userId());
  for (let i = 0; i < 20; i++) {
    c.send({ op: 'ping' });
    await sleep(100);
  }
  await waitUntil(() => c.count((m) => m.event === 'pong') === 20 || c.isClosed, {
    what: '20 pongs',
  });
  assert.equal(c.isClosed, false, `closed at 10 ops/s: ${JSON.stringify(c.closeInfo)}`);
  assert.equal(c.count((m) => m.event === 'pong'), 20);
  await c.close();
});

test('a flood of 200 pings closes with 1008 and is counted', async () => {
  const before0 = await hub.metric('coordhub_rate_limited_closes_total');
  const c = await hub.connect(userId());
  for (let i = 0; i < 200; i++) c.send({ op: 'ping' });
  const { code } = await c.waitClose(10000);
  assert.equal(code, 1008);
  // At most the burst (40) plus a little refill was answered.
  const pongs = c.count((m) => m.event === 'pong');
  assert.ok(pongs <= 60, `expected at most about the burst (40) of pongs before the close, got ${pongs}`);
  await waitUntil(async () => (await hub.metric('coordhub_rate_limited_closes_total')) === before0 + 1, {
    what: 'coordhub_rate_limited_closes_total to grow by 1',
  });
  await bystanderStillServed('after-1008');
});

test('a binary frame closes with 1003', async () => {
  const c = await hub.connect(userId());
  c.ws.send(Buffer.from([1, 2, 3, 4]), { binary: true });
  const { code } = await c.waitClose(10000);
  assert.equal(code, 1003);
  await bystanderStillServed('after-1003');
});

test('a text frame that is not UTF-8 gets an error or a 1007 close, nothing worse', async () => {
  const c = await hub.connect(userId());
  c.ws.send(Buffer.from([0x7b, 0x22, 0x6f, 0x70, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]), { binary: false }); // {"op":"\xff\xfe"}
  await waitUntil(() => c.isClosed || c.count((m) => m.event === 'error') > 0, {
    timeoutMs: 10000,
    what: 'an error frame or a close',
  });
  const err = c.messages.find((m) => m.event === 'error');
  const outcome = err ? { error: err.data.code } : { close: c.closeInfo.code };
  if (outcome.error !== undefined) {
    assert.ok(['bad_json', 'bad_request'].includes(outcome.error), `error code ${outcome.error}`);
    c.send({ op: 'ping' });
    await c.waitEvent('pong');
    await c.close();
  } else {
    assert.equal(outcome.close, 1007, 'close code for invalid UTF-8');
  }
  await bystanderStillServed('after-bad-utf8');
});

test('the connection gauge drops back once the closed sockets are gone', async () => {
  await waitUntil(async () => (await hub.metric('coordhub_connections', { protocol: 'native' })) === 1, {
    timeoutMs: 10000,
    what: 'coordhub_connections{protocol="native"} back to 1 (the bystander)',
  });
});
