// Payloads that do not parse are dropped and counted by channel; the hub
// keeps delivering (SPEC §3, §8).
import assert from 'node:assert/strict';
import { before } from 'node:test';
import { join, startHub, startRedis, test, userId, waitUntil } from './harness.mjs';

let redis;
let hub;
before(async () => {
  redis = await startRedis();
  hub = await startHub({ redisUrl: redis.url });
});

const MAL = 'coordhub_malformed_payloads_total';

async function malformed(channel) {
  return hub.metric(MAL, { channel });
}

test('malformed tradestate payloads are dropped, counted, and do not stop delivery', async () => {
  const U = userId();
  const u = await hub.connect(U);
  const before0 = await malformed('tradestate');
  const bad = [
    'not json at all',
    '{"steamId": "' + U + '", "state": ', // truncated JSON
    JSON.stringify({ token: 't', state: 's', msg: 'no steamId' }),
    JSON.stringify({ steamId: `${U}<script>`, token: 't', state: 's', msg: '' }),
    JSON.stringify({ steamId: `${U} x`, token: 't', state: 's', msg: '' }),
    JSON.stringify({ steamId: '', token: 't', state: 's', msg: '' }),
    JSON.stringify({ steamId: 'x'.repeat(65), token: 't', state: 's', msg: '' }),
    JSON.stringify([{ steamId: U }]),
    '',
  ];
  for (const p of bad) await redis.publish('tradestate', p);
  const good = { steamId: U, token: 't', state: 'valid-after-garbage', msg: '' };
  await redis.publish('tradestate', JSON.stringify(good));
  assert.deepEqual((await u.waitEvent('tradestate')).data, good);
  await u.expectNone((m) => m.event === 'tradestate' && m.data.state !== 'valid-after-garbage', 300, {
    what: 'a malformed tradestate was delivered',
  });
  const after = await waitUntil(
    async () => {
      const v = await malformed('tradestate');
      return v - before0 >= bad.length ? v : false;
    },
    { timeoutMs: 5000, what: `${MAL}{channel="tradestate"} to grow by ${bad.length}` },
  );
  assert.equal(after - before0, bad.length, 'each malformed tradestate counted once');
});

test('garbage on canceledtrades is dropped and counted; a valid one is delivered afterwards', async () => {
  const U = userId();
  const u = await hub.connect(U);
  const before0 = await malformed('canceledtrades');
  const bad = ['has space inside', '<script>alert(1)</script>', 'x'.repeat(65), '{"steamId":"1"}', '', '../../etc'];
  for (const p of bad) await redis.publish('canceledtrades', p);
  await redis.publish('canceledtrades', U);
  assert.deepEqual(await u.waitEvent('canceledtrades'), { event: 'canceledtrades', data: U });
  await waitUntil(async () => (await malformed('canceledtrades')) - before0 >= bad.length, {
    what: `${MAL}{channel="canceledtrades"} to grow by ${bad.length}`,
  });
  assert.equal((await malformed('canceledtrades')) - before0, bad.length);
});

test('bad bot payloads are dropped and counted; valid bot traffic still flows', async () => {
  const U = userId();
  const u = await hub.connect(U);
  const ops = await hub.connect(userId(), ['ops']);
  await join(ops, 'bot:7');
  const botMal = async () => hub.metric(MAL, { channel: /^bot/ });
  const before0 = await botMal();
  const bad = [
    '', // empty
    'withdraw\x01 7', // control byte
    `withdraw 7 bad$id_abc`, // steamId with bad characters
    `withdraw 7 ${U}_`, // empty trade hash
    'withdraw\n7', // control byte (newline)
  ];
  for (const p of bad) await redis.publish('bot 7', p);
  const mark = ops.mark();
  await redis.publish('bot 7', `withdraw 7 ${U}_good`);
  const ev = await ops.waitEvent('bot', 5000, () => true, mark);
  assert.equal(ev.data.tradeHash, 'good');
  assert.equal((await u.waitEvent('bot-command')).data.tradeHash, 'good');
  await ops.expectNone((m) => m.event === 'bot' && m.data.tradeHash !== 'good', 300, { since: mark, what: 'a malformed bot payload was delivered' });
  assert.equal(ops.count((m) => m.event === 'bot'), 1, 'only the valid bot payload reaches bot:7');
  await waitUntil(async () => (await botMal()) - before0 >= bad.length, {
    what: `${MAL}{channel=~"bot.*"} to grow by ${bad.length}`,
  });
  assert.equal((await botMal()) - before0, bad.length);
});

test('payloads that are not UTF-8 are never forwarded as broken text', async () => {
  const U = userId();
  const u = await hub.connect(U);
  const ops = await hub.connect(userId(), ['ops']);
  await join(ops, 'bot:7');
  await join(ops, 'ops');
  const bad = Buffer.from([0xc3, 0x28, 0xff]);
  const before0 = await malformed('tradestate');
  // tradestate whose JSON string holds invalid UTF-8: not valid JSON text.
  await redis.command(['PUBLISH', 'tradestate', Buffer.concat([Buffer.from(`{"steamId":"${U}","token":"t","state":"`), bad, Buffer.from('","msg":""}')])]);
  // Opaque parts of bot payloads and ops texts with invalid UTF-8: dropped,
  // or forwarded as valid text; either way the sockets must stay usable
  // (a WebSocket client closes with 1007 on a text frame that is not UTF-8).
  await redis.command(['PUBLISH', 'bot 7', Buffer.concat([Buffer.from(`withdraw 7 ${U}_utf tradeData:`), bad])]);
  await redis.command(['PUBLISH', 'finishedtrades', Buffer.concat([Buffer.from('done '), bad])]);
  await redis.command(['PUBLISH', 'canceledtrades', Buffer.concat([Buffer.from(U), bad])]);
  const good = { steamId: U, token: 't', state: 'after-bad-utf8', msg: '' };
  await redis.publish('tradestate', JSON.stringify(good));
  await redis.publish('bot 7', `withdraw 7 ${U}_after`);
  await redis.publish('finishedtrades', 'after');
  assert.deepEqual((await u.waitEvent('tradestate', 5000, (m) => m.data.state === 'after-bad-utf8')).data, good);
  await ops.waitEvent('bot', 5000, (m) => m.data.tradeHash === 'after');
  await ops.waitEvent('finishedtrades', 5000, (m) => m.data === 'after');
  assert.equal(u.isClosed, false, `user socket closed: ${JSON.stringify(u.closeInfo)}`);
  assert.equal(ops.isClosed, false, `ops socket closed: ${JSON.stringify(ops.closeInfo)}`);
  assert.equal(u.count((m) => m.event === 'tradestate'), 1, 'the invalid tradestate was delivered');
  assert.equal(u.count((m) => m.event === 'canceledtrades'), 0, 'the invalid canceledtrades was delivered');
  await waitUntil(async () => (await malformed('tradestate')) > before0, { what: 'invalid UTF-8 tradestate counted' });
});

test('a tradestate whose steamId is ambiguous never reaches a user it does not name', async () => {
  const A = userId();
  const B = userId();
  const a = await hub.connect(A);
  const b = await hub.connect(B);
  // Duplicate keys: a browser's JSON.parse keeps the last one.
  await redis.publish('tradestate', `{"steamId":"${A}","token":"t","state":"dup","msg":"","steamId":"${B}"}`);
  await redis.publish('tradestate', `{"steamId":"${B}","token":"t","state":"dup2","msg":"","steamId":"${A}"}`);
  const fence = { steamId: A, token: 't', state: 'fence', msg: '' };
  await redis.publish('tradestate', JSON.stringify(fence));
  await redis.publish('tradestate', JSON.stringify({ ...fence, steamId: B }));
  await a.waitEvent('tradestate', 5000, (m) => m.data.state === 'fence');
  await b.waitEvent('tradestate', 5000, (m) => m.data.state === 'fence');
  for (const [who, c, id] of [['A', a, A], ['B', b, B]]) {
    for (const m of c.messages.filter((x) => x.event === 'tradestate')) {
      assert.equal(m.data.steamId, id, `user ${who} received a tradestate that names ${m.data.steamId}`);
    }
  }
});

test('the hub is still healthy and counts messages in after all that', async () => {
  const r = await hub.metrics();
  assert.ok(hub.exited() === false, 'hub still running');
  const U = userId();
  const u = await hub.connect(U);
  await redis.publish('tradestate', JSON.stringify({ steamId: U, token: 't', state: 'final', msg: '' }));
  await u.waitEvent('tradestate');
  assert.ok(r.some((s) => s.name === MAL), `${MAL} is exported`);
});
