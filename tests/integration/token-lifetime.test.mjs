// Tokens that end (SPEC §10): a live connection's token is enforced at its
// `exp` (close 4001), `expiring` comes before (30 s before, or at half the
// remaining lifetime when that is shorter), and a refresh with a new token
// of the same `sub` keeps the connection; roles are read again and rooms
// they no longer open are left. On /ws, on Socket.IO over WebSocket and over
// long-polling.
import assert from 'node:assert/strict';
import { before } from 'node:test';
import { io } from 'socket.io-client';
import { connectWs, startHub, startRedis, userId } from './harness.mjs';
import { SioClient, sioTest as test } from './sioclient.mjs';

let redis;
let hub;

before(async () => {
  redis = await startRedis();
  hub = await startHub({ redisUrl: redis.url });
});

const wsUrl = (tok) => `ws://127.0.0.1:${hub.port}/ws?token=${encodeURIComponent(tok)}`;
const ev = (name) => (m) => m.event === name;
const tradestate = (steamId, state) => ({ steamId, token: 't', state, msg: '' });

test('native: expiring at half the remaining lifetime, then 4001 at exp; events until then', async () => {
  const U = userId();
  const t0 = Date.now();
  const c = await connectWs(wsUrl(hub.token(U, [], 3)));
  const warn = await c.waitFor(ev('expiring'), 5000, 'expiring');
  const exp = warn.data.exp;
  assert.ok(Number.isInteger(exp) && exp * 1000 > t0, `exp ${exp}`);
  // half of about 3 s: never later than 30 s before exp, never before 1 s
  assert.ok(Date.now() - t0 >= 900, `expiring after only ${Date.now() - t0} ms`);
  await redis.publish('tradestate', JSON.stringify(tradestate(U, 'still')));
  await c.waitFor((m) => m.event === 'tradestate' && m.data.state === 'still', 5000, 'an event before exp');
  const { code, reason } = await c.waitClose(6000);
  assert.equal(code, 4001);
  assert.equal(reason, 'token expired');
  assert.ok(Date.now() >= exp * 1000, `closed ${exp * 1000 - Date.now()} ms before exp`);
  assert.ok((await hub.metric('coordhub_token_expired_closes_total')) >= 1);
});

test('native: refresh before exp keeps the connection past the old exp', async () => {
  const U = userId();
  const c = await connectWs(wsUrl(hub.token(U, [], 2)));
  await c.waitFor(ev('expiring'), 5000, 'expiring');
  c.send({ op: 'refresh', token: hub.token(U, [], 60) });
  const r = await c.waitFor(ev('refreshed'), 5000, 'refreshed');
  assert.ok(r.data.exp * 1000 > Date.now() + 50000, `new exp ${r.data.exp}`);
  // past the old exp (2 s) by a margin: still open, still receiving
  const barrier = Date.now() + 3500;
  while (Date.now() < barrier) {
    c.send({ op: 'ping' });
    await c.waitFor(ev('pong'), 5000, 'pong');
    await new Promise((res) => setTimeout(res, 250));
  }
  assert.equal(c.isClosed, false, `closed: ${JSON.stringify(c.closeInfo)}`);
  await redis.publish('tradestate', JSON.stringify(tradestate(U, 'after-refresh')));
  await c.waitFor((m) => m.event === 'tradestate' && m.data.state === 'after-refresh', 5000, 'an event after the old exp');
});

test('native: a refresh with another sub closes 4003; a bad token is refused and changes nothing', async () => {
  const U = userId();
  const c = await connectWs(wsUrl(hub.token(U, [], 60)));
  c.send({ op: 'refresh', token: 'not.a.token' });
  const e = await c.waitFor(ev('error'), 5000, 'error');
  assert.equal(e.data.code, 'unauthorized');
  c.send({ op: 'refresh', token: hub.token(U, [], -10) });
  assert.equal((await c.waitFor(ev('error'), 5000, 'error')).data.code, 'unauthorized');
  c.send({ op: 'refresh' });
  assert.equal((await c.waitFor(ev('error'), 5000, 'error')).data.code, 'bad_request');
  c.send({ op: 'ping' });
  await c.waitFor(ev('pong'), 5000, 'still served');
  c.send({ op: 'refresh', token: hub.token(userId(), ['ops'], 60) });
  const { code, reason } = await c.waitClose(5000);
  assert.equal(code, 4003);
  assert.equal(reason, 'forbidden');
});

test('native: a refresh without the ops role leaves the bot and ops rooms, with a left event each', async () => {
  const U = userId();
  const c = await connectWs(wsUrl(hub.token(U, ['ops'], 60)));
  for (const room of ['bot:71', 'ops']) {
    c.send({ op: 'join', room });
    await c.waitFor((m) => m.event === 'joined' && m.data.room === room, 5000, `joined ${room}`);
  }
  // 288 more rooms (configuration watches, which need no role) in front
  // of them: the refresh must judge every room, not the first few hundred
  for (let w = 0; w < 9; w++) {
    c.send({ op: 'config.watch', keys: Array.from({ length: 32 }, (_, i) => `tl${w}k${i}`) });
    await c.waitFor(ev('watching'), 5000, 'watching');
  }
  const mark = c.mark();
  c.send({ op: 'refresh', token: hub.token(U, [], 60) });
  await c.waitFor(ev('refreshed'), 5000, 'refreshed', mark);
  const left = c.messages.slice(mark).filter(ev('left')).map((m) => m.data.room).sort();
  assert.deepEqual(left, ['bot:71', 'ops']);
  // the bot room no longer reaches it; its own room still does (barrier)
  await redis.publish('bot 71', 'withdraw 71 x_y tradeData:{}');
  await redis.publish('tradestate', JSON.stringify(tradestate(U, 'barrier')));
  await c.waitFor((m) => m.event === 'tradestate' && m.data.state === 'barrier', 5000, 'barrier');
  assert.equal(c.count((m) => m.event === 'bot', mark), 0, 'a bot event after the role was gone');
  c.send({ op: 'join', room: 'bot:71' });
  assert.equal((await c.waitFor(ev('error'), 5000, 'error', mark)).data.code, 'forbidden');
});

function sio(tok, transports) {
  return new SioClient(io(hub.url, { transports, forceNew: true, reconnection: false, timeout: 5000, auth: { token: tok } }));
}

for (const transports of [['websocket'], ['polling']]) {
  test(`Socket.IO (${transports[0]}): expiring, then the connection ends at exp`, async () => {
    const U = userId();
    const c = sio(hub.token(U, [], 3), transports);
    await c.connected();
    const [warn] = await c.waitEvent('expiring', 5000);
    assert.ok(Number.isInteger(warn.exp));
    const reason = await c.waitDisconnect(6000);
    // a close frame (WebSocket) or Engine.IO's close packet (polling)
    assert.ok(['io server disconnect', 'transport close'].includes(reason), `disconnect reason ${reason}`);
    assert.ok(Date.now() >= warn.exp * 1000, 'closed before exp');
  });

  test(`Socket.IO (${transports[0]}): refresh with an ack keeps the connection; another sub ends it`, async () => {
    const U = userId();
    const c = sio(hub.token(U, ['ops'], 2), transports);
    await c.connected();
    assert.deepEqual(await c.ack('join', 'bot:72'), { ok: true, room: 'bot:72' });
    const res = await c.ack('refresh', hub.token(U, [], 60));
    assert.equal(res.ok, true);
    assert.ok(res.exp * 1000 > Date.now() + 50000);
    const [left] = await c.waitEvent('left', 5000);
    assert.deepEqual(left, { room: 'bot:72' });
    assert.equal((await c.ack('refresh', 'garbage')).error.code, 'unauthorized');
    // past the first token's exp: still connected (pings answered)
    const until = Date.now() + 3000;
    while (Date.now() < until) {
      await c.ack('ping');
      await new Promise((r) => setTimeout(r, 300));
    }
    assert.equal(c.socket.connected, true, c.summary());
    c.socket.emit('refresh', hub.token(userId(), [], 60));
    await c.waitDisconnect(5000);
  });
}

test('native: a refresh keeps the user room of a sub that is not a steamId (svc-reserve)', async () => {
  const c = await connectWs(wsUrl(hub.token('svc-reserve', ['service'], 60)));
  const mark = c.mark();
  c.send({ op: 'refresh', token: hub.token('svc-reserve', [], 60) });
  await c.waitFor(ev('refreshed'), 5000, 'refreshed', mark);
  c.send({ op: 'leave', room: 'user:svc-reserve' });
  const m = await c.waitFor((x) => x.event === 'left' || x.event === 'error', 5000, 'the answer to leave', mark);
  assert.equal(m.event, 'left', `its own room was left by the refresh: ${JSON.stringify(m)}`);
  assert.equal(c.count(ev('left'), mark), 1, 'the refresh left a room');
});

test('Socket.IO (polling, then the upgrade): expiring still comes after the session moved to the WebSocket', async () => {
  const U = userId();
  const c = new SioClient(io(hub.url, { forceNew: true, reconnection: false, timeout: 5000, auth: { token: hub.token(U, [], 4) } }));
  await c.ready(5000);
  const [warn] = await c.waitEvent('expiring', 6000);
  assert.ok(Number.isInteger(warn.exp));
  assert.equal(c.transport, 'websocket');
  await c.waitDisconnect(8000);
});
