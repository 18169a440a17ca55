// Rooms and roles (SPEC §2, §3, §4): user rooms are private, bot:* and ops
// need role ops; bot events are parsed, users get bot-command without
// tradeData; finishedtrades/steamDown go to room ops.
import assert from 'node:assert/strict';
import { before } from 'node:test';
import { join, startHub, startRedis, test, userId } from './harness.mjs';

let redis;
let hub;
before(async () => {
  redis = await startRedis();
  hub = await startHub({ redisUrl: redis.url });
});

// Sends `op` and expects an error frame whose code is `code` (or one of an
// array of codes where the contract leaves the choice open).
async function expectError(client, op, code) {
  client.send(op);
  const m = await client.waitFor((x) => x.event === 'error' || x.event === 'joined' || x.event === 'left', 5000, `error ${code}`);
  assert.equal(m.event, 'error', `${JSON.stringify(op)} should be refused, got ${JSON.stringify(m)}`);
  if (Array.isArray(code)) assert.ok(code.includes(m.data.code), `error code for ${JSON.stringify(op)}: ${m.data.code}, expected one of ${code}`);
  else assert.equal(m.data.code, code, `error code for ${JSON.stringify(op)}`);
  assert.equal(typeof m.data.message, 'string');
}

test('a user cannot join another user\'s room, a bot room or ops, and receives nothing from them', async () => {
  const A = userId();
  const B = userId();
  const a = await hub.connect(A);
  await expectError(a, { op: 'join', room: `user:${B}` }, 'forbidden');
  await expectError(a, { op: 'join', room: 'bot:7' }, 'forbidden');
  await expectError(a, { op: 'join', room: 'ops' }, 'forbidden');
  // Roles other than ops do not open bot or ops rooms either.
  const svc = await hub.connect(userId(), ['service', 'admin']);
  await expectError(svc, { op: 'join', room: 'bot:7' }, 'forbidden');
  await expectError(svc, { op: 'join', room: 'ops' }, 'forbidden');
  // Even ops may not enter someone else's user room.
  const ops = await hub.connect(userId(), ['ops']);
  await expectError(ops, { op: 'join', room: `user:${B}` }, 'forbidden');

  const mark = a.mark();
  await redis.publish('tradestate', JSON.stringify({ steamId: B, token: 't', state: 's', msg: '' }));
  await redis.publish('bot 7', `withdraw 7 ${B}_h1`);
  await redis.publish('finishedtrades', 'done');
  await a.expectNone((m) => ['tradestate', 'bot', 'bot-command', 'finishedtrades'].includes(m.event), 700, {
    since: mark,
    what: 'a refused join still delivered',
  });
});

test('bad room names are refused with bad_room', async () => {
  const ops = await hub.connect(userId(), ['ops']);
  for (const room of ['lobby', 'bot:', 'bot:a b', 'bot:a/b', 'user:', 'user:a.b', 'ops2', `bot:${'x'.repeat(65)}`]) {
    await expectError(ops, { op: 'join', room }, 'bad_room');
  }
  // Far too long to be any room: a bad room or a bad request, either way refused.
  await expectError(ops, { op: 'join', room: `bot:${'x'.repeat(200)}` }, ['bad_room', 'bad_request']);
  // Still usable afterwards.
  await join(ops, 'ops');
});

test('an ops socket in bot:7 gets the parsed bot event; the user named gets bot-command without tradeData', async () => {
  const U = userId();
  const ops = await hub.connect(userId(), ['ops']);
  const user = await hub.connect(U);
  const other = await hub.connect(userId());
  assert.deepEqual(await join(ops, 'bot:7'), { event: 'joined', data: { room: 'bot:7' } });

  const payload = `withdraw 7 ${U}_abc tradeData:{"items":[{"assetid":"1","secret":"tradeData"}],"note":"x y"}`;
  await redis.publish('bot 7', payload);

  const bot = await ops.waitEvent('bot');
  assert.deepEqual(bot, {
    event: 'bot',
    data: { botId: '7', command: 'withdraw', steamId: U, tradeHash: 'abc', raw: payload },
  });
  const cmd = await user.waitEvent('bot-command');
  assert.deepEqual(cmd, { event: 'bot-command', data: { botId: '7', command: 'withdraw', tradeHash: 'abc' } });
  await user.expectNone((m) => m.event === 'bot', 300, { what: 'a user received the raw bot event' });
  for (const text of user.raw) assert.ok(!text.includes('tradeData'), `user received tradeData: ${text}`);
  await other.expectNone((m) => m.event === 'bot' || m.event === 'bot-command', 300, { what: 'an unrelated user got a bot event' });

  // Another bot's channel does not reach bot:7.
  await redis.publish('bot 8', `withdraw 8 ${U}_def`);
  assert.deepEqual((await user.waitEvent('bot-command')).data, { botId: '8', command: 'withdraw', tradeHash: 'def' });
  await ops.expectNone((m) => m.event === 'bot' && m.data.botId === '8', 300, { what: 'bot 8 reached bot:7' });

  // A command naming no steamId goes to the bot room only.
  await redis.publish('bot 7', 'checkSteamGuard 7');
  const plain = await ops.waitEvent('bot');
  assert.equal(plain.data.command, 'checkSteamGuard');
  assert.equal(plain.data.botId, '7');
  assert.equal(plain.data.raw, 'checkSteamGuard 7');
  assert.equal(plain.data.steamId, undefined);

  // After leave, nothing more from bot:7.
  ops.send({ op: 'leave', room: 'bot:7' });
  assert.deepEqual(await ops.waitEvent('left'), { event: 'left', data: { room: 'bot:7' } });
  const mark = ops.mark();
  await redis.publish('bot 7', `withdraw 7 ${U}_ghi`);
  await user.waitEvent('bot-command', 5000, (m) => m.data.tradeHash === 'ghi');
  await ops.expectNone((m) => m.event === 'bot', 500, { since: mark, what: 'bot event after leave' });
  for (const text of user.raw) assert.ok(!text.includes('tradeData'), `user received tradeData: ${text}`);
});

test('finishedtrades and steamDown reach ops sockets in room ops, not plain users', async () => {
  const ops = await hub.connect(userId(), ['ops']);
  const opsNotJoined = await hub.connect(userId(), ['ops']);
  const user = await hub.connect(userId());
  await join(ops, 'ops');
  await redis.publish('finishedtrades', 'trade 123 finished');
  await redis.publish('steamDown', 'steam is down');
  assert.deepEqual(await ops.waitEvent('finishedtrades'), { event: 'finishedtrades', data: 'trade 123 finished' });
  assert.deepEqual(await ops.waitEvent('steamDown'), { event: 'steamDown', data: 'steam is down' });
  for (const c of [user, opsNotJoined]) {
    await c.expectNone((m) => m.event === 'finishedtrades' || m.event === 'steamDown', 500, {
      what: 'ops event outside room ops',
    });
  }
});

test('ping, bad JSON, bad requests and unknown ops get answers and keep the socket open', async () => {
  const c = await hub.connect(userId());
  c.send({ op: 'ping' });
  assert.deepEqual(await c.waitEvent('pong'), { event: 'pong' });
  await expectError(c, '{"op":', 'bad_json');
  await expectError(c, { op: 'frobnicate' }, 'unknown_op');
  await expectError(c, { op: 'join' }, 'bad_request');
  // Valid JSON that is not an object: the contract allows either code.
  await expectError(c, [1, 2, 3], ['bad_json', 'bad_request']);
  await expectError(c, { op: 42 }, 'bad_request');
  await expectError(c, { op: 'join', room: 7 }, 'bad_request');
  c.send({ op: 'ping' });
  await c.waitEvent('pong');
  assert.equal(c.isClosed, false);
});
