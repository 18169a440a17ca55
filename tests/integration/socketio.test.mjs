// Socket.IO v4 compatibility (SPEC §5): the official socket.io-client (Node
// build) with transports: ["websocket"], and raw Engine.IO frames over `ws`
// where the client library would hide what the hub does.
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { io } from 'socket.io-client';
import {
  connectWs,
  httpGet,
  makeToken,
  openWs,
  rawHttp,
  sleep,
  startHub,
  startRedis,
  userId,
  waitUntil,
  withTimeout,
} from './harness.mjs';
import { SioClient, liveSio, splitPacketOffset, sioTest as test, withoutOffset } from './sioclient.mjs';

// ---------------------------------------------------------------- helpers

// A socket.io-client socket on `hub` (not yet connected when returned).
// Reconnection is off unless asked for: a test that expects a failure must
// not be hidden by a retry.
function sio(hub, { token, query, nsp = '', ...opts } = {}) {
  const o = { transports: ['websocket'], forceNew: true, reconnection: false, timeout: 5000, ...opts };
  if (token !== undefined) o.auth = { token };
  if (query !== undefined) o.query = query;
  return new SioClient(io(`${hub.url}${nsp}`, o));
}

// Connected socket for `sub` (roles), token in the auth payload.
async function sioConnect(hub, sub, roles = [], opts = {}) {
  const c = sio(hub, { token: hub.token(sub, roles), ...opts });
  await c.connected();
  return c;
}




// A frame as text: WsClient parses frames as JSON ("2", "40" parse as
// numbers), so go back to the wire text.
const text = (m) => (m && typeof m === 'object' && '__raw' in m ? m.__raw : JSON.stringify(m));

const sioPath = (hub, q = '') => `ws://127.0.0.1:${hub.port}/socket.io/?EIO=4&transport=websocket${q}`;

// A raw WebSocket on /socket.io/, past the Engine.IO open packet; returns
// {client, open} with the open packet's JSON.
async function rawOpen(hub, q = '') {
  const client = await connectWs(sioPath(hub, q));
  const m = await client.waitFor((x) => text(x).startsWith('0'), 5000, 'the Engine.IO open packet');
  return { client, open: JSON.parse(text(m).slice(1)) };
}

// Raw socket past a successful Socket.IO CONNECT for `sub`.
async function rawConnected(hub, sub, roles = []) {
  const { client } = await rawOpen(hub);
  client.send(`40${JSON.stringify({ token: hub.token(sub, roles) })}`);
  await client.waitFor((x) => /^40\{/.test(text(x)), 5000, 'the CONNECT reply 40{"sid":...}');
  return client;
}

const tradestate = (steamId, state) => ({ steamId, token: `tok-${state}`, state, msg: `m-${state}`, extra: { n: 1 } });

// ---------------------------------------------------------------- fixtures

let redis;
let hub; // default ping interval/timeout
let fastHub; // COORDHUB_SIO_PING_INTERVAL_MS=300, COORDHUB_SIO_PING_TIMEOUT_MS=400
let bystander; // a Socket.IO socket on `hub` that must survive every abuse
let bystanderId;

before(async () => {
  redis = await startRedis();
  [hub, fastHub] = await Promise.all([
    startHub({ redisUrl: redis.url }),
    startHub({
      redisUrl: redis.url,
      env: { COORDHUB_SIO_PING_INTERVAL_MS: '300', COORDHUB_SIO_PING_TIMEOUT_MS: '400' },
    }),
  ]);
});

// The bystander is opened lazily by the abuse tests and kept out of the
// per-test close (it is not in liveSio).
async function bystanderStillServed(tag) {
  if (!bystander) {
    bystanderId = userId();
    bystander = await sioConnect(hub, bystanderId);
    liveSio.delete(bystander);
  }
  assert.equal(bystander.socket.connected, true, `bystander disconnected (${bystander.disconnects}) after ${tag}`);
  const st = tradestate(bystanderId, tag);
  await redis.publish('tradestate', JSON.stringify(st));
  assert.deepEqual(withoutOffset(await bystander.waitEvent('tradestate', 5000, (d) => d.state === tag)), [st]);
}
after(() => bystander?.close());

// ---------------------------------------------------------------- handshake

test('Engine.IO open packet: sid, no upgrades, default ping 25000/20000, maxPayload 65536', async () => {
  const { client, open } = await rawOpen(hub);
  assert.equal(typeof open.sid, 'string');
  assert.ok(open.sid.length >= 8, `sid ${open.sid} too short`);
  assert.deepEqual(open.upgrades, []);
  assert.equal(open.pingInterval, 25000);
  assert.equal(open.pingTimeout, 20000);
  assert.equal(open.maxPayload, 65536);
  // Session ids differ between connections.
  const { client: c2, open: open2 } = await rawOpen(hub);
  assert.notEqual(open2.sid, open.sid);
  await client.close();
  await c2.close();
});

test('COORDHUB_SIO_PING_INTERVAL_MS / _TIMEOUT_MS set the advertised ping interval and timeout', async () => {
  const { client, open } = await rawOpen(fastHub);
  assert.equal(open.pingInterval, 300);
  assert.equal(open.pingTimeout, 400);
  client.terminate();
});

test('raw CONNECT: a good token gets 40{"sid","pid"}; a bad one 44 unauthorized and then nothing', async () => {
  const U = userId();
  const good = await rawConnected(hub, U);
  const reply = JSON.parse(text(good.messages.find((x) => /^40\{/.test(text(x)))).slice(2));
  assert.deepEqual(Object.keys(reply), ['sid', 'pid']);
  assert.equal(typeof reply.sid, 'string');
  assert.equal(typeof reply.pid, 'string');

  const { client: bad } = await rawOpen(hub);
  bad.send(`40${JSON.stringify({ token: makeToken({ sub: U, secret: 'not-the-secret' }) })}`);
  const m = await bad.waitFor((x) => /^4[04]/.test(text(x)), 5000, 'a CONNECT answer');
  assert.match(text(m), /^44\{/, `bad token answered ${text(m)}`);
  const err = JSON.parse(text(m).slice(2));
  assert.equal(err.message, 'unauthorized');
  assert.equal(err.data?.code, 'unauthorized');
  // A refused socket is in no room: it may try, but receives nothing.
  if (!bad.isClosed) {
    bad.send('42["join","user:' + U + '"]');
    bad.send('42["ping"]');
  }
  const mark = bad.mark();
  await redis.publish('tradestate', JSON.stringify(tradestate(U, 'refused')));
  const gm = await good.waitFor((x) => text(x).startsWith('42["tradestate"'), 5000, 'tradestate on the good socket');
  assert.deepEqual(splitPacketOffset(text(gm)).event, ['tradestate', tradestate(U, 'refused')]);
  await bad.expectNone((x) => /^4[23]/.test(text(x)), 700, { since: mark, what: 'a refused socket received a packet' });
  await good.close();
  await bad.close();
});

test('socket.io-client connects with the token in auth, and with ?token=', async () => {
  const U = userId();
  const a = sio(hub, { token: hub.token(U) });
  await a.connected();
  assert.equal(typeof a.socket.id, 'string');
  const q = sio(hub, { query: { token: hub.token(U) } });
  await q.connected();
  // Both are in user:U.
  const st = tradestate(U, 'both');
  await redis.publish('tradestate', JSON.stringify(st));
  assert.deepEqual(withoutOffset(await a.waitEvent('tradestate')), [st]);
  assert.deepEqual(withoutOffset(await q.waitEvent('tradestate')), [st]);
});

test('bad or missing tokens get connect_error "unauthorized" (auth and query)', async () => {
  const U = userId();
  const cases = [
    ['no token at all', {}],
    ['wrong secret', { token: makeToken({ sub: U, secret: 'wrong-secret' }) }],
    ['expired', { token: hub.token(U, [], -30) }],
    ['garbage', { token: 'not.a.jwt' }],
    ['empty', { token: '' }],
    ['alg none', { token: makeToken({ sub: U, secret: hub.secret, alg: 'none' }) }],
    ['token not a string', { auth: { token: 12345 } }],
    ['bad token in the query', { query: { token: makeToken({ sub: U, secret: 'wrong-secret' }) } }],
    ['expired token in the query', { query: { token: hub.token(U, [], -30) } }],
  ];
  for (const [what, opts] of cases) {
    const c = sio(hub, opts);
    const err = await c.connectError(5000).catch((e) => {
      throw new Error(`${what}: ${e.message}`);
    });
    assert.equal(err.message, 'unauthorized', `${what}: connect_error message`);
    assert.equal(err.data?.code, 'unauthorized', `${what}: connect_error data.code`);
    assert.equal(c.socket.connected, false, what);
    c.close();
  }
});

test('coordhub_connections{protocol="socketio"} counts connected Socket.IO sockets', async () => {
  const base = await hub.metric('coordhub_connections', { protocol: 'socketio' });
  const native0 = await hub.metric('coordhub_connections', { protocol: 'native' });
  const cs = [];
  for (let i = 0; i < 3; i++) cs.push(await sioConnect(hub, userId()));
  await waitUntil(async () => (await hub.metric('coordhub_connections', { protocol: 'socketio' })) === base + 3, {
    what: `coordhub_connections{protocol="socketio"} to reach ${base + 3}`,
  });
  assert.equal(await hub.metric('coordhub_connections', { protocol: 'native' }), native0, 'native gauge moved');
  for (const c of cs) c.close();
  await waitUntil(async () => (await hub.metric('coordhub_connections', { protocol: 'socketio' })) === base, {
    timeoutMs: 10000,
    what: `coordhub_connections{protocol="socketio"} back to ${base}`,
  });
});

// ---------------------------------------------------------------- events

test('tradestate and canceledtrades reach user A only (Socket.IO and native alike); reserve-items reaches all', async () => {
  const A = userId();
  const B = userId();
  const a = await sioConnect(hub, A);
  const b = await sioConnect(hub, B);
  const aNative = await hub.connect(A);

  const st = tradestate(A, 'sent');
  st.extra = { unicode: 'Trade ✓ 日本語 "q" \\ \n', emoji: '🎉', nested: [1, { x: null }] };
  await redis.publish('tradestate', JSON.stringify(st));
  assert.deepEqual(withoutOffset(await a.waitEvent('tradestate')), [st]);
  assert.deepEqual((await aNative.waitEvent('tradestate')).data, st);

  await redis.publish('canceledtrades', A);
  assert.deepEqual(withoutOffset(await a.waitEvent('canceledtrades')), [A]);
  assert.deepEqual((await aNative.waitEvent('canceledtrades')).data, A);

  await b.expectNone((n) => n === 'tradestate' || n === 'canceledtrades', 700, { what: "B received A's event" });
  assert.equal(a.count('tradestate'), 1);
  assert.equal(a.count('canceledtrades'), 1);

  // B's own.
  const stB = tradestate(B, 'accepted');
  await redis.publish('tradestate', JSON.stringify(stB));
  assert.deepEqual(withoutOffset(await b.waitEvent('tradestate')), [stB]);
  await a.expectNone((n, d) => n === 'tradestate' && d.steamId === B, 300, { what: "A received B's tradestate" });

  // reserve-items: everyone, no arguments.
  await redis.publish('itemReserved', '');
  for (const c of [a, b]) assert.deepEqual(withoutOffset(await c.waitEvent('reserve-items', 5000)), []);
  await aNative.waitEvent('reserve-items');
  await aNative.close();
});

test('bot and bot-command routing; join/leave with acks and without; ping; unknown events', async () => {
  const U = userId();
  const ops = await sioConnect(hub, userId(), ['ops']);
  const user = await sioConnect(hub, U);
  const other = await sioConnect(hub, userId());

  assert.deepEqual(await ops.ack('join', 'bot:7'), { ok: true, room: 'bot:7' });

  const payload = `withdraw 7 ${U}_abc tradeData:{"items":[{"assetid":"1","secret":"tradeData"}],"note":"x y"}`;
  await redis.publish('bot 7', payload);
  assert.deepEqual(withoutOffset(await ops.waitEvent('bot')), [
    { botId: '7', command: 'withdraw', steamId: U, tradeHash: 'abc', raw: payload },
  ]);
  assert.deepEqual(withoutOffset(await user.waitEvent('bot-command')), [{ botId: '7', command: 'withdraw', tradeHash: 'abc' }]);
  await user.expectNone((n) => n === 'bot', 300, { what: 'a user received the raw bot event' });
  assert.ok(!JSON.stringify(user.events).includes('tradeData'), 'the user received tradeData');
  await other.expectNone((n) => n === 'bot' || n === 'bot-command', 300, { what: 'an unrelated user got a bot event' });

  // Refusals, with an ack.
  const forb = await user.ack('join', 'bot:7');
  assert.equal(forb.ok, false);
  assert.equal(forb.error?.code, 'forbidden');
  assert.equal(typeof forb.error?.message, 'string');
  assert.equal((await user.ack('join', 'ops')).error?.code, 'forbidden');
  assert.equal((await ops.ack('join', `user:${U}`)).error?.code, 'forbidden');
  const bad = await ops.ack('join', 'lobby');
  assert.equal(bad.ok, false);
  assert.equal(bad.error?.code, 'bad_room');
  assert.equal(typeof bad.error?.message, 'string');

  // Without an ack: 'joined' / 'error' events. And the object form.
  ops.socket.emit('join', 'ops');
  assert.deepEqual(await ops.waitEvent('joined', 5000, (d) => d?.room === 'ops'), [{ room: 'ops' }]);
  let mark = user.mark();
  user.socket.emit('join', 'bot:7');
  const [e] = await user.waitEvent('error', 5000, () => true, mark);
  assert.equal(e.code, 'forbidden');
  assert.equal(typeof e.message, 'string');
  assert.deepEqual(await ops.ack('join', { room: 'bot:8' }), { ok: true, room: 'bot:8' });

  await redis.publish('finishedtrades', 'trade 123 finished');
  await redis.publish('steamDown', 'steam is down');
  assert.deepEqual(withoutOffset(await ops.waitEvent('finishedtrades')), ['trade 123 finished']);
  assert.deepEqual(withoutOffset(await ops.waitEvent('steamDown')), ['steam is down']);
  await user.expectNone((n) => n === 'finishedtrades' || n === 'steamDown', 300, { what: 'ops event to a user' });

  await redis.publish('bot 8', 'checkSteamGuard 8');
  const [b8] = withoutOffset(await ops.waitEvent('bot', 5000, (d) => d.botId === '8'));
  assert.equal(b8.command, 'checkSteamGuard');
  assert.equal(b8.raw, 'checkSteamGuard 8');
  assert.equal(b8.steamId, undefined);

  // leave, with an ack and without.
  assert.deepEqual(await ops.ack('leave', 'bot:7'), { ok: true, room: 'bot:7' });
  ops.socket.emit('leave', { room: 'bot:8' });
  assert.deepEqual(await ops.waitEvent('left', 5000, (d) => d?.room === 'bot:8'), [{ room: 'bot:8' }]);
  mark = ops.mark();
  await redis.publish('bot 7', `withdraw 7 ${U}_ghi`);
  await redis.publish('bot 8', 'checkSteamGuard 8');
  await user.waitEvent('bot-command', 5000, (d) => d.tradeHash === 'ghi');
  await ops.expectNone((n) => n === 'bot', 500, { since: mark, what: 'bot event after leave' });

  // ping -> pong; an unknown event -> error unknown_op.
  mark = user.mark();
  user.socket.emit('ping');
  assert.deepEqual(await user.waitEvent('pong', 5000, () => true, mark), []);
  user.socket.emit('subscribe', 'bot:7');
  const [u] = await user.waitEvent('error', 5000, () => true, mark);
  assert.equal(u.code, 'unknown_op');
  // And the socket is still fine.
  assert.equal(user.socket.connected, true);
  const st = tradestate(U, 'after-errors');
  await redis.publish('tradestate', JSON.stringify(st));
  assert.deepEqual(withoutOffset(await user.waitEvent('tradestate', 5000, (d) => d.state === 'after-errors')), [st]);
});

// ---------------------------------------------------------------- ping/pong

test('a socket.io-client connection survives several short ping intervals and keeps receiving', async () => {
  const U = userId();
  const c = await sioConnect(fastHub, U);
  let pings = 0;
  c.socket.io.engine.on('ping', () => pings++);
  // About 6 intervals of 300 ms.
  await sleep(2000);
  assert.deepEqual(c.disconnects, [], 'disconnected during the ping intervals');
  assert.equal(c.socket.connected, true);
  assert.ok(pings >= 3, `only ${pings} pings in 2 s at a 300 ms interval`);
  const st = tradestate(U, 'after-pings');
  await redis.publish('tradestate', JSON.stringify(st));
  assert.deepEqual(withoutOffset(await c.waitEvent('tradestate')), [st]);
  await sleep(1000);
  assert.deepEqual(c.disconnects, [], 'disconnected later');
});

test('a raw client that never answers pings is closed after interval + timeout', async () => {
  const t0 = Date.now();
  const c = await rawConnected(fastHub, userId());
  const info = await c.waitClose(10000);
  const elapsed = Date.now() - t0;
  assert.ok(c.raw.includes('2'), `no ping before the close: ${c.summary()}`);
  // 300 + 400 ms nominal; a little slack below for timer granularity.
  assert.ok(elapsed >= 550, `closed after only ${elapsed} ms (close ${JSON.stringify(info)})`);
  assert.ok(elapsed <= 5000, `closed only after ${elapsed} ms`);
});

test('a raw client that answers pings stays connected', async () => {
  const c = await rawConnected(fastHub, userId());
  c.ws.on('message', (d, bin) => {
    if (!bin && d.toString() === '2') c.send('3');
  });
  await sleep(2000);
  assert.equal(c.isClosed, false, `closed: ${JSON.stringify(c.closeInfo)}`);
  assert.ok(c.raw.filter((x) => x === '2').length >= 3, `pings: ${c.summary()}`);
  await c.close();
});

// ---------------------------------------------------------------- refusals

test('Engine.IO refusals: its own codes and 400 bodies, for polling and for upgrades', async () => {
  const cases = [
    ['GET', '/socket.io/?EIO=4&transport=carrier-pigeon', 0, 'Transport unknown'],
    ['GET', '/socket.io/?EIO=4', 0, 'Transport unknown'],
    ['GET', '/socket.io/?EIO=4&transport=polling&sid=nosuchsession', 1, 'Session ID unknown'],
    ['POST', '/socket.io/?EIO=4&transport=polling&sid=nosuchsession', 1, 'Session ID unknown'],
    ['POST', '/socket.io/?EIO=4&transport=polling', 2, 'Bad handshake method'],
    ['PUT', '/socket.io/?EIO=4&transport=polling', 2, 'Bad handshake method'],
    ['GET', '/socket.io/?EIO=4&transport=websocket', 3, 'Bad request'],
    ['GET', '/socket.io/?EIO=3&transport=polling', 5, 'Unsupported protocol version'],
    ['GET', '/socket.io/?transport=polling', 5, 'Unsupported protocol version'],
  ];
  for (const [method, path, code, message] of cases) {
    const r = await rawHttp(hub.port, `${method} ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: ${method === 'GET' ? 0 : 2}\r\n\r\n${method === 'GET' ? '' : '40'}`);
    assert.equal(r.status, 400, `${method} ${path}: ${r.status} ${r.body}`);
    assert.deepEqual(JSON.parse(r.body), { code, message }, `${method} ${path}`);
    assert.match(r.raw, /\r\ncontent-type: application\/json/i);
  }
  // upgrades: an Engine.IO v3 client, and a sid no polling session has
  for (const [q, code, message] of [
    ['?EIO=3&transport=websocket', 5, 'Unsupported protocol version'],
    ['?EIO=4&transport=websocket&sid=nosuchsession', 1, 'Session ID unknown'],
  ]) {
    const up = await openWs(`ws://127.0.0.1:${hub.port}/socket.io/${q}`);
    assert.equal(up.ok, false, `${q} upgrade accepted`);
    assert.equal(up.statusCode, 400);
    assert.deepEqual(JSON.parse(up.body), { code, message });
  }
});

test('socket.io-client with its default options connects over polling, upgrades to WebSocket, receives its events', async () => {
  const U = userId();
  const c = new SioClient(io(hub.url, { forceNew: true, reconnection: false, timeout: 5000, auth: { token: hub.token(U) } }));
  liveSio.add(c);
  const upgrades = await hub.metric('coordhub_polling_upgrades_total');
  // the engine opens on polling: an 'upgrade' event is the move from it
  const upgraded = new Promise((resolve) => c.socket.io.engine.once('upgrade', (t) => resolve(t.name)));
  await c.connected();
  assert.equal(await withTimeout(upgraded, 5000, 'the upgrade'), 'websocket');
  assert.equal(await hub.metric('coordhub_polling_upgrades_total'), upgrades + 1);
  const st = tradestate(U, 'after-upgrade');
  await redis.publish('tradestate', JSON.stringify(st));
  assert.deepEqual(withoutOffset(await c.waitEvent('tradestate')), [st]);
  assert.equal(c.socket.io.engine.transport.name, 'websocket');
});

test('a namespace other than "/" gets connect_error "Invalid namespace"', async () => {
  const c = sio(hub, { token: hub.token(userId()), nsp: '/admin' });
  const err = await c.connectError(5000);
  assert.equal(err.message, 'Invalid namespace');
  assert.equal(c.socket.connected, false);
  await bystanderStillServed('after-invalid-namespace');
});

test('a binary event closes that connection cleanly; others are served', async () => {
  const c = await sioConnect(hub, userId());
  c.socket.emit('x', Buffer.from([1, 2]));
  const reason = await c.waitDisconnect(5000);
  assert.ok(['transport close', 'io server disconnect', 'transport error'].includes(reason), `disconnect reason ${reason}`);
  await bystanderStillServed('after-binary-event');
});

test('a binary WebSocket frame closes the connection with a close frame; others are served', async () => {
  const c = await rawConnected(hub, userId());
  c.ws.send(Buffer.from([0x34, 0x32, 0x5b, 0x5d]), { binary: true });
  const { code } = await c.waitClose(5000);
  assert.notEqual(code, 1006, 'closed without a close frame');
  await bystanderStillServed('after-binary-frame');
});

test('malformed packets on a raw connection close it; the hub keeps serving', async () => {
  // the reference server's refusals too: a second CONNECT, a packet for a
  // namespace never joined; before CONNECT, an event or an ack, or a
  // CONNECT whose payload is not an object
  const afterConnect = ['4x', '9', '42[', '', '4', '40', '40{}', '42x', '42["join"', '4212x', '42{}', '42[]', '7abc', '42/admin', '42/admin,["ping"]', '43/admin,1[]'];
  const beforeConnect = ['4x', '9', '42[', '', '4', '40x', '40{', '40[1', '40[1]', '40"token"', '40 ', '42["ping"]', '431[]', '41'];
  const results = [];
  const check = async (when, frame, open) => {
    const c = await open();
    c.send(frame);
    try {
      await c.waitClose(5000);
      results.push(null);
    } catch {
      results.push(`${when} ${JSON.stringify(frame)} did not close the connection: ${c.summary()}`);
      c.terminate();
    }
  };
  for (const f of afterConnect) await check('after CONNECT', f, () => rawConnected(hub, userId()));
  for (const f of beforeConnect) await check('before CONNECT', f, async () => (await rawOpen(hub)).client);
  // Not UTF-8 in a text frame.
  await check('after CONNECT', Buffer.from([0x34, 0x32, 0x5b, 0x22, 0xff, 0xfe, 0x22, 0x5d]), () => rawConnected(hub, userId()));
  const failures = results.filter(Boolean);
  assert.deepEqual(failures, []);
  await bystanderStillServed('after-malformed');
});

test('an inbound frame over 64 KiB closes with 1009; 60 KiB is fine', async () => {
  const ok = await rawConnected(hub, userId());
  ok.send(`42["ping","${'x'.repeat(60 * 1024)}"]`);
  ok.send('42["ping"]');
  await ok.waitFor((x) => text(x) === '42["pong"]', 5000, 'a pong after a 60 KiB frame');
  assert.equal(ok.isClosed, false);
  await ok.close();

  const c = await rawConnected(hub, userId());
  c.send(`42["ping","${'x'.repeat(70 * 1024)}"]`);
  const { code } = await c.waitClose(10000);
  assert.equal(code, 1009);
  await bystanderStillServed('after-1009');
});

test('a flood of events closes with 1008 (rate limit)', async () => {
  const c = await rawConnected(hub, userId());
  for (let i = 0; i < 200; i++) c.send('42["ping"]');
  const { code } = await c.waitClose(10000);
  assert.equal(code, 1008);
  const pongs = c.raw.filter((x) => x === '42["pong"]').length;
  assert.ok(pongs <= 60, `expected at most about the burst of pongs, got ${pongs}`);
  await bystanderStillServed('after-1008');
});

// ---------------------------------------------------------------- restart

test('SIGTERM closes Socket.IO sockets with 1001; socket.io-client reconnects to a hub restarted on the port', async () => {
  const own = await startHub({ redisUrl: redis.url });
  const U = userId();
  const c = await sioConnect(own, U, [], { reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 500 });
  const raw = await rawConnected(own, userId());
  const st1 = tradestate(U, 'before-restart');
  await redis.publish('tradestate', JSON.stringify(st1));
  assert.deepEqual(withoutOffset(await c.waitEvent('tradestate')), [st1]);

  const code = await own.stop(15000);
  assert.equal(code, 0, 'hub exit code after SIGTERM');
  assert.equal((await raw.waitClose(5000)).code, 1001);
  const reason = await c.waitDisconnect(5000);
  assert.equal(reason, 'transport close');
  assert.equal(c.socket.active, true, 'socket.io-client gave up instead of reconnecting');

  const again = await startHub({ redisUrl: redis.url, port: own.port, secret: own.secret });
  await c.until(() => c.connects >= 2 && c.socket.connected, 15000, 'socket.io-client to reconnect');
  const st2 = tradestate(U, 'after-restart');
  // The reconnected socket is in user:U again.
  await redis.publish('tradestate', JSON.stringify(st2));
  assert.deepEqual(withoutOffset(await c.waitEvent('tradestate', 5000, (d) => d.state === 'after-restart')), [st2]);
  c.close();
  await again.stop(15000);
});
