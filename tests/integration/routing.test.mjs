// Per-user routing of tradestate and canceledtrades (SPEC §3, §4).
import assert from 'node:assert/strict';
import { before } from 'node:test';
import { connectWs, startHub, startRedis, test, userId, waitUntil } from './harness.mjs';

let redis;
let hub;
before(async () => {
  redis = await startRedis();
  hub = await startHub({ redisUrl: redis.url });
});

test('tradestate reaches every socket of its user and no one else', async () => {
  const A = userId();
  const B = userId();
  const a1 = await hub.connect(A);
  // The second socket of A authenticates with Authorization: Bearer.
  const a2 = await connectWs(hub.wsUrl, { headers: { Authorization: `Bearer ${hub.token(A)}` } });
  const b = await hub.connect(B);

  const state = { steamId: A, token: 'tok-1', state: 'sent', msg: 'Trade offer sent', extra: { n: 1, s: 'x' } };
  await redis.publish('tradestate', JSON.stringify(state));

  for (const c of [a1, a2]) {
    const m = await c.waitEvent('tradestate', 5000);
    assert.deepEqual(m, { event: 'tradestate', data: state });
  }
  await b.expectNone((m) => m.event === 'tradestate', 700, { what: 'B received A\'s tradestate' });

  // And B's own state goes to B only.
  const stateB = { steamId: B, token: 'tok-2', state: 'accepted', msg: 'ok' };
  await redis.publish('tradestate', JSON.stringify(stateB));
  assert.deepEqual((await b.waitEvent('tradestate')).data, stateB);
  for (const c of [a1, a2]) {
    await c.expectNone((m) => m.event === 'tradestate' && m.data.steamId === B, 300, { what: 'A received B\'s tradestate' });
    assert.equal(c.count((m) => m.event === 'tradestate'), 1, 'A got exactly its one tradestate');
  }
});

test('canceledtrades reaches the named user only, data is the steamId string', async () => {
  const A = userId();
  const B = userId();
  const a = await hub.connect(A);
  const b = await hub.connect(B);
  await redis.publish('canceledtrades', A);
  assert.deepEqual(await a.waitEvent('canceledtrades'), { event: 'canceledtrades', data: A });
  await b.expectNone((m) => m.event === 'canceledtrades', 700, { what: 'B received A\'s canceledtrades' });

  await redis.publish('canceledtrades', B);
  assert.deepEqual(await b.waitEvent('canceledtrades'), { event: 'canceledtrades', data: B });
  await a.expectNone((m) => m.event === 'canceledtrades' && m.data === B, 300, { what: 'A received B\'s canceledtrades' });
});

test('a message for a user with no socket is harmless; a later socket gets later messages only', async () => {
  const C = userId();
  const seen = await hub.metric('coordhub_messages_in_total', { channel: 'tradestate' });
  await redis.publish('tradestate', JSON.stringify({ steamId: C, token: 't', state: 'early', msg: '' }));
  // Connect only once the hub has taken the early message in.
  await waitUntil(async () => (await hub.metric('coordhub_messages_in_total', { channel: 'tradestate' })) > seen, {
    what: 'coordhub_messages_in_total{channel="tradestate"} to count the early message',
  });
  const c = await hub.connect(C);
  const later = { steamId: C, token: 't', state: 'late', msg: '' };
  await redis.publish('tradestate', JSON.stringify(later));
  assert.deepEqual((await c.waitEvent('tradestate')).data, later);
  await c.expectNone((m) => m.event === 'tradestate' && m.data.state === 'early', 300, { what: 'replayed an old message' });
});

test('messages for one user arrive in publish order and byte-exact (unicode, escapes, big payloads)', async () => {
  const U = userId();
  const c = await hub.connect(U);
  const pub = await redis.client();
  const N = 200;
  const cmds = [];
  for (let i = 0; i < N; i++) {
    const extra = { i, text: 'Trade offer ✓ 日本語 "quoted" \\ back\nslash', emoji: '🎉' };
    if (i % 50 === 0) extra.big = 'y'.repeat(200 * 1024); // well over any inbound limit: output is not capped like input
    cmds.push(['PUBLISH', 'tradestate', JSON.stringify({ steamId: U, token: `t${i}`, state: 'seq', msg: '', extra })]);
  }
  await pub.pipeline(cmds);
  await waitUntil(() => c.count((m) => m.event === 'tradestate') >= N, {
    timeoutMs: 15000,
    what: `${N} tradestate messages`,
  });
  const got = c.messages.filter((m) => m.event === 'tradestate');
  assert.equal(got.length, N);
  got.forEach((m, i) => {
    assert.equal(m.data.extra.i, i, `message ${i} out of order`);
    assert.equal(m.data.extra.text, 'Trade offer ✓ 日本語 "quoted" \\ back\nslash');
    assert.equal(m.data.extra.emoji, '🎉');
    if (i % 50 === 0) assert.equal(m.data.extra.big.length, 200 * 1024);
  });
  pub.close();
});
