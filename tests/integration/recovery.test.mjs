// Recovery of missed events (SPEC §9, §5 last bullet; design in
// docs/recovery.md): offsets on every event, a native reconnect with
// ?offset= and a Socket.IO reconnect (the official client's connection state
// recovery) on another hub of the same Redis get exactly the missed events,
// in order, once, then live ones; or recovered:false, never a partial
// replay, when the gap is older than the window, longer than the per-room
// bound, the offset is garbled or forged, or a room is no longer allowed.
// The hub and Redis failures (SIGTERM, SIGKILL, FLUSHALL, a Redis restart)
// are recovery-faults.test.mjs.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { before } from 'node:test';
import { connectWs, join, sleep, startHub, startRedis, userId, waitUntil } from './harness.mjs';
import {
  assertIncreasing,
  dropNative,
  nativeEvents,
  nativeStates,
  outcomes,
  publishAll,
  publishLoop,
  publishStates,
  publisher,
  range,
  recoverNative,
  sioClient,
  sioEvents,
  sioStates,
  startProxy,
  tsPayload,
  waitSynced,
  wsUrl,
} from './recovery-helpers.mjs';
import { sioTest as test } from './sioclient.mjs';

// Two hubs on one Redis, one secret: a token works on both. The bound is
// raised so that the seam tests (a publisher running while the client
// reconnects) never touch it; the default bound has its own test below.
let redis;
let A;
let B;
let pub;
const secret = crypto.randomBytes(16).toString('hex');

before(async () => {
  redis = await startRedis();
  [A, B] = await Promise.all([
    startHub({ redisUrl: redis.url, secret, extraArgs: ['--recovery-max-per-room', '1000'] }),
    startHub({ redisUrl: redis.url, secret, extraArgs: ['--recovery-max-per-room', '1000'] }),
  ]);
  await Promise.all([waitSynced(A), waitSynced(B)]);
  pub = await publisher(redis);
});

const waitStates = (client, n, what) =>
  waitUntil(() => nativeStates(client.messages).length >= n, { timeoutMs: 10000, intervalMs: 10, what: what || `${n} tradestate events` });

// ---------------------------------------------------------------- native

test('every event frame carries an offset; the same message has the same offset on every hub', async () => {
  const U = userId();
  const tok = A.token(U);
  const a = await connectWs(wsUrl(A, tok));
  const b = await connectWs(wsUrl(B, tok));
  await publishStates(pub, U, 0, 5, { minReceivers: 2 });
  await waitStates(a, 5);
  await waitStates(b, 5);
  const offA = nativeEvents(a.messages).map((m) => m.offset);
  const offB = nativeEvents(b.messages).map((m) => m.offset);
  assert.deepEqual(offA, offB, 'the two hubs numbered the same messages differently');
  assertIncreasing(offA, 'offsets of one room');
  // A connection without ?offset= gets no `recovered` frame: its first
  // frame is the first live event.
  assert.equal(a.messages[0].event, 'tradestate', a.raw[0]);
  assert.equal(b.messages[0].event, 'tradestate', b.raw[0]);
  assert.equal(a.count((m) => m.event === 'recovered'), 0);
  await a.close();
  await b.close();
});

test('native, A -> B: recovered:true missed:50, exactly the 50 missed events in order, then live ones', async () => {
  const U = userId();
  const tok = A.token(U);
  const rec0 = await outcomes(B, 'native', 'recovered');
  const replayed0 = await B.metric('coordhub_recovery_replayed_events_total');
  const a = await connectWs(wsUrl(A, tok));
  const witness = await connectWs(wsUrl(B, tok)); // connected throughout
  await publishStates(pub, U, 0, 10, { minReceivers: 2 });
  await waitStates(a, 10);
  const seen = dropNative(a);
  assert.deepEqual(nativeStates(seen), range(0, 10));
  const last = nativeEvents(seen).at(-1).offset;

  await publishStates(pub, U, 10, 60, { minReceivers: 2 }); // while away
  const { client: b, recovered } = await recoverNative(B, tok, last);
  assert.deepEqual(recovered, { recovered: true, missed: 50 });
  await waitStates(b, 50);
  assert.deepEqual(nativeStates(b.messages), range(10, 60), 'the replay');
  // Replayed frames are the live frames, byte for byte (data and offset).
  await waitStates(witness, 60);
  assert.deepEqual(b.raw.slice(1, 51), witness.raw.slice(10, 60), 'replayed frames differ from the live ones');
  await witness.close();

  await publishStates(pub, U, 60, 70, { minReceivers: 2 }); // live
  await waitStates(b, 60);
  assert.deepEqual(nativeStates(b.messages), range(10, 70), 'replay then live');
  assertIncreasing([...nativeEvents(seen), ...nativeEvents(b.messages)].map((m) => m.offset), 'offsets across the two connections');
  assert.equal(b.count((m) => m.event === 'recovered'), 1);
  assert.equal(b.isClosed, false);
  assert.equal((await outcomes(B, 'native', 'recovered')) - rec0, 1);
  assert.equal((await B.metric('coordhub_recovery_replayed_events_total')) - replayed0, 50);
  await b.close();
});

test('native, nothing missed: recovered:true missed:0, then live events', async () => {
  const U = userId();
  const tok = A.token(U);
  const a = await connectWs(wsUrl(A, tok));
  await publishStates(pub, U, 0, 3);
  await waitStates(a, 3);
  const last = nativeEvents(dropNative(a)).at(-1).offset;
  const { client: b, recovered } = await recoverNative(B, tok, last);
  assert.deepEqual(recovered, { recovered: true, missed: 0 });
  await publishStates(pub, U, 3, 5);
  await waitStates(b, 2);
  assert.deepEqual(nativeStates(b.messages), [3, 4]);
  await b.close();
});

// The seam between history and live events: a publisher runs all along,
// the client drops and reconnects in the middle of it. Across the old and
// the new connection the client must see 0..N-1, each once, in order.
for (const [name, from, to] of [
  ['A -> B', () => A, () => B],
  ['B -> A', () => B, () => A],
  ['A -> A (the same hub)', () => A, () => A],
]) {
  test(`native seam, ${name}: publishing continuously while the client reconnects loses and doubles nothing`, async () => {
    let replayed = 0;
    for (let round = 0; round < 3; round++) {
      const U = userId();
      const tok = A.token(U);
      const old = await connectWs(wsUrl(from(), tok));
      const loop = publishLoop(pub, U, { gapMs: 1 });
      await waitStates(old, 15 + round * 10);
      const seen = dropNative(old);
      const last = nativeEvents(seen).at(-1).offset;
      // away for 10 events or more, the publisher still running
      const atDrop = loop.count;
      await waitUntil(() => loop.count >= atDrop + 10, { timeoutMs: 10000, intervalMs: 1, what: '10 events published while away' });
      const { client: nw, recovered } = await recoverNative(to(), tok, last);
      assert.equal(recovered.recovered, true, JSON.stringify(recovered));
      // not >= 10: some of the 10 may still be on their way to the new
      // hub when it reads history (then they arrive live); the sequence
      // check below is what matters
      replayed += recovered.missed;
      // some live events after the replay, then stop and drain
      await waitStates(nw, recovered.missed + 20, `the replay (${recovered.missed}) and 20 live events`);
      const total = await loop.stop();
      await waitUntil(() => nativeStates(nw.messages).at(-1) === total - 1, {
        timeoutMs: 10000,
        intervalMs: 10,
        what: `state ${total - 1}, the last one published`,
      });
      const all = [...nativeStates(seen), ...nativeStates(nw.messages)];
      assert.deepEqual(all, range(0, total), `round ${round}: old connection ${nativeStates(seen).length} events, missed ${recovered.missed}`);
      assertIncreasing([...nativeEvents(seen), ...nativeEvents(nw.messages)].map((m) => m.offset), `round ${round} offsets`);
      assert.equal(nw.messages[0].event, 'recovered');
      console.log(`# native seam ${name} round ${round}: ${nativeStates(seen).length} before the drop, ${recovered.missed} replayed, ${total - nativeStates(seen).length - recovered.missed} live`);
      await nw.close();
    }
    assert.ok(replayed >= 10, `${replayed} events replayed in 3 rounds: the replay was not exercised`);
  });
}

test('native: a client that recovers twice in a row (B, then A) still sees every event once', async () => {
  const U = userId();
  const tok = A.token(U);
  let c = await connectWs(wsUrl(A, tok));
  const all = [];
  let next = 0;
  for (const hub of [B, A, B]) {
    await publishStates(pub, U, next, next + 5);
    next += 5;
    await waitUntil(() => nativeStates(c.messages).at(-1) === next - 1, { timeoutMs: 10000, what: `state ${next - 1}` });
    const seen = dropNative(c);
    all.push(...nativeStates(seen));
    await publishStates(pub, U, next, next + 7); // missed
    next += 7;
    const r = await recoverNative(hub, tok, nativeEvents(seen).at(-1).offset);
    assert.deepEqual(r.recovered, { recovered: true, missed: 7 });
    c = r.client;
  }
  await waitUntil(() => nativeStates(c.messages).length === 7, { timeoutMs: 10000, what: '7 replayed' });
  all.push(...nativeStates(c.messages));
  assert.deepEqual(all, range(0, next));
  await c.close();
});

test('native: a gap spanning many anchor segments is recovered whole on the other hub', async () => {
  const r = await startRedis();
  const opts = { redisUrl: r.url, secret, env: { COORDHUB_RECOVERY_ANCHOR_MS: '50' } };
  const [H1, H2] = await Promise.all([startHub(opts), startHub(opts)]);
  await Promise.all([waitSynced(H1), waitSynced(H2)]);
  const p = await publisher(r);
  const U = userId();
  const tok = H1.token(U);
  const a = await connectWs(wsUrl(H1, tok));
  await publishStates(p, U, 0, 1, { minReceivers: 2 });
  await waitStates(a, 1);
  const last = nativeEvents(dropNative(a)).at(-1).offset;
  // One event per segment or so: wait for an anchor between publishes.
  for (let n = 1; n <= 12; n++) {
    const anchors = await H2.metric('coordhub_recovery_anchors_total');
    await publishStates(p, U, n, n + 1, { minReceivers: 2 });
    await waitUntil(async () => (await H2.metric('coordhub_recovery_anchors_total')) > anchors, {
      timeoutMs: 5000,
      intervalMs: 10,
      what: 'the next anchor',
    });
  }
  const { client, recovered } = await recoverNative(H2, tok, last);
  assert.deepEqual(recovered, { recovered: true, missed: 12 });
  await waitStates(client, 12);
  assert.deepEqual(nativeStates(client.messages), range(1, 13));
  const offsets = nativeEvents(client.messages).map((m) => m.offset);
  assertIncreasing([last, ...offsets], 'offsets');
  const anchors = new Set(offsets.map((o) => o.split('-')[0]));
  assert.ok(anchors.size >= 6, `the events fell in only ${anchors.size} segments`);
  await client.close();
});

test('native: itemReserved in the gap is replayed as one reserve-items, at the last one\'s position', async () => {
  // A Redis and hub of its own: reserve-items goes to every connection.
  const r = await startRedis();
  const H = await startHub({ redisUrl: r.url, secret });
  await waitSynced(H);
  const p = await publisher(r);
  const U = userId();
  const tok = H.token(U);
  const a = await connectWs(wsUrl(H, tok));
  await publishStates(p, U, 0, 1);
  await waitStates(a, 1);
  const last = nativeEvents(dropNative(a)).at(-1).offset;
  await publishAll(p, [
    ['tradestate', tsPayload(U, 1)],
    ['itemReserved', ''],
    ['tradestate', tsPayload(U, 2)],
    ['itemReserved', 'x'],
    ['tradestate', tsPayload(U, 3)],
  ]);
  const { client, recovered } = await recoverNative(H, tok, last);
  assert.deepEqual(recovered, { recovered: true, missed: 4 });
  await waitUntil(() => client.messages.length >= 5, { timeoutMs: 10000, what: '4 replayed' });
  const replay = client.messages.slice(1, 5);
  assert.deepEqual(
    replay.map((m) => m.event),
    ['tradestate', 'tradestate', 'reserve-items', 'tradestate'],
  );
  assert.equal('data' in replay[2], false, JSON.stringify(replay[2]));
  assertIncreasing([last, ...replay.map((m) => m.offset)], 'offsets');
  await client.close();
  await H.stop();
});

// ---------------------------------------------------------------- Socket.IO

for (const [label, opts, upgrade] of [
  ['default transports (polling, then the upgrade)', {}, true],
  ["transports: ['websocket']", { transports: ['websocket'] }, false],
]) {
  test(`Socket.IO, ${label}: moved to the other hub, socket.recovered, the 50 missed events then live ones, nothing lost or doubled`, async () => {
    for (const [round, from, to] of [
      [0, A, B],
      [1, B, A],
      [2, A, B],
    ]) {
      const what = `round ${round}`;
      const U = userId();
      const tok = A.token(U);
      const proxy = await startProxy(from.port);
      const rec0 = await outcomes(to, 'socketio', 'recovered');
      const replayed0 = await to.metric('coordhub_recovery_replayed_events_total');
      const c = sioClient(proxy.url, tok, opts);
      await c.ready(15000, { upgrade });
      assert.equal(c.socket.recovered, false);
      const pid = c.socket._pid;
      const sid = c.socket.id;
      assert.equal(typeof pid, 'string', 'the CONNECT answer carried no pid');
      assert.ok(pid.length > 0);

      await publishStates(pub, U, 0, 10, { minReceivers: 2 });
      await c.until(() => sioStates(c).length === 10, 10000, '10 events');
      for (const e of sioEvents(c)) {
        assert.equal(e.args.length, 2, `event args ${JSON.stringify(e.args)}`);
        assert.equal(typeof e.offset, 'string');
      }

      // The network fails; the hub saves the session when it sees the
      // transport close. The client's reconnection waits in the proxy
      // until the session is in Redis, then goes to the other hub.
      proxy.pause();
      proxy.dropAll();
      await c.waitDisconnect(10000);
      assert.ok(['transport close', 'transport error'].includes(c.disconnects[0]), c.summary());
      await waitUntil(async () => (await redis.command(['EXISTS', `coordhub:rec:sio:${pid}`])) === 1, {
        timeoutMs: 10000,
        what: `${what}: the hub to save the Socket.IO session`,
      });
      await publishStates(pub, U, 10, 60, { minReceivers: 2 }); // missed

      // More events while the client reconnects, and after.
      const loop = publishLoop(pub, U, { gapMs: 1, start: 60 });
      proxy.setTarget(to.port);
      await c.until(() => c.connects === 2, 15000, `${what}: the reconnection`);
      const atReconnect = loop.count;
      assert.equal(c.socket.recovered, true, `${what}: socket.recovered false after the move: ${c.summary()}`);
      assert.equal(c.socket.id, sid, 'a recovered socket keeps its id');
      assert.equal(c.socket._pid, pid);
      await c.until(() => sioStates(c).length >= atReconnect + 20, 15000, `${what}: the missed events and 20 live ones`);
      const total = await loop.stop();
      await c.until(() => sioStates(c).at(-1) === total - 1, 10000, `state ${total - 1}`);
      assert.deepEqual(sioStates(c), range(0, total), `${what}: every event once, in order, across the move`);
      assertIncreasing(sioEvents(c).map((e) => e.offset), `${what}: offsets across the move`);
      assert.equal(c.connects, 2);
      assert.equal((await outcomes(to, 'socketio', 'recovered')) - rec0, 1);
      const replayed = (await to.metric('coordhub_recovery_replayed_events_total')) - replayed0;
      assert.ok(replayed >= 50, `${replayed} replayed`);
      console.log(`# Socket.IO ${label} ${what}: 10 before the drop, ${replayed} replayed, ${total - 10 - replayed} live`);
      // GETDEL: the session was taken.
      assert.equal(await redis.command(['EXISTS', `coordhub:rec:sio:${pid}`]), 0);
      if (upgrade) await c.ready(15000, { upgrade: true }); // and it upgrades again there
      c.close();
      proxy.close();
    }
  });
}

test('Socket.IO: back on the same hub after a network drop, socket.recovered and exactly the missed events', async () => {
  const U = userId();
  const tok = A.token(U);
  const proxy = await startProxy(A.port);
  const c = sioClient(proxy.url, tok, { transports: ['websocket'] });
  await c.connected();
  await publishStates(pub, U, 0, 5);
  await c.until(() => sioStates(c).length === 5, 10000, '5 events');
  const pid = c.socket._pid;
  proxy.pause();
  proxy.dropAll();
  await c.waitDisconnect(10000);
  await waitUntil(async () => (await redis.command(['EXISTS', `coordhub:rec:sio:${pid}`])) === 1, { what: 'the session saved' });
  await publishStates(pub, U, 5, 12);
  proxy.setTarget(A.port);
  await c.until(() => c.connects === 2, 15000, 'the reconnection');
  assert.equal(c.socket.recovered, true, c.summary());
  await publishStates(pub, U, 12, 13);
  await c.until(() => sioStates(c).at(-1) === 12, 10000, 'state 12');
  assert.deepEqual(sioStates(c), range(0, 13));
  // Taken once: the same pid and offset again get nothing.
  const session0 = await outcomes(A, 'socketio', 'session');
  const again = sioClient(A.url, tok, { transports: ['websocket'], autoConnect: false, reconnection: false });
  again.socket._pid = pid;
  again.socket._lastOffset = sioEvents(c)[4].offset;
  again.socket.connect();
  await again.connected();
  assert.equal(again.socket.recovered, false, 'a session recovered twice');
  assert.equal((await outcomes(A, 'socketio', 'session')) - session0, 1);
  await publishStates(pub, U, 13, 14);
  await again.until(() => sioStates(again).includes(13), 10000, 'a live event');
  assert.deepEqual(sioStates(again), [13]);
  c.close();
  proxy.close();
});

test('Socket.IO: a session is taken once, by its own user only', async () => {
  const U = userId();
  const tok = A.token(U);
  const proxy = await startProxy(A.port);
  const c = sioClient(proxy.url, tok, { transports: ['websocket'] });
  await c.connected();
  await publishStates(pub, U, 0, 2);
  await c.until(() => sioStates(c).length === 2, 10000, '2 events');
  const pid = c.socket._pid;
  const offset = sioEvents(c).at(-1).offset;
  c.close(); // a DISCONNECT packet: the page left, no session is saved
  await waitUntil(async () => (await A.metric('coordhub_connections', { protocol: 'socketio' })) === 0, {
    what: 'the socket gone on A',
  });
  assert.equal(await redis.command(['EXISTS', `coordhub:rec:sio:${pid}`]), 0, 'a DISCONNECT saved a session');

  // Another user presenting a real pid gets nothing of that session.
  const c2 = sioClient(proxy.url, tok, { transports: ['websocket'] });
  await c2.connected();
  await publishStates(pub, U, 2, 3);
  await c2.until(() => sioStates(c2).length === 1, 10000, 'an event');
  const pid2 = c2.socket._pid;
  proxy.pause();
  proxy.dropAll();
  await c2.waitDisconnect(10000);
  await waitUntil(async () => (await redis.command(['EXISTS', `coordhub:rec:sio:${pid2}`])) === 1, { what: 'the session saved' });
  const V = userId();
  const session0 = await outcomes(B, 'socketio', 'session');
  c2.socket.auth = { token: A.token(V) }; // the same pid and offset, another user's token
  await publishStates(pub, U, 3, 5); // U's events, missed
  proxy.setTarget(B.port);
  await c2.until(() => c2.connects === 2, 15000, 'the reconnection');
  assert.equal(c2.socket.recovered, false, 'another user recovered the session');
  assert.notEqual(c2.socket._pid, pid2, 'a failed recovery gets a new pid');
  assert.equal((await outcomes(B, 'socketio', 'session')) - session0, 1);
  // The session is gone either way (GETDEL), and V sees none of U's events,
  // old or new, but its own.
  assert.equal(await redis.command(['EXISTS', `coordhub:rec:sio:${pid2}`]), 0);
  const mark = c2.mark();
  await publishAll(pub, [
    ['tradestate', tsPayload(U, 5)],
    ['tradestate', tsPayload(V, 100)],
  ]);
  await c2.waitEvent('tradestate', 10000, (d) => d.steamId === V, mark);
  await c2.expectNone((name, d) => name === 'tradestate' && d.steamId === U, 0, { since: mark, what: "U's event on V's socket" });

  // A forged pid with a real offset: no session, recovered false, connected.
  const c3 = sioClient(B.url, tok, { transports: ['websocket'], autoConnect: false });
  c3.socket._pid = 'AAAAAAAAAAAAAAAAAAAA';
  c3.socket._lastOffset = offset;
  c3.socket.connect();
  await c3.connected();
  assert.equal(c3.socket.recovered, false);
  await publishStates(pub, U, 6, 7);
  await c3.until(() => sioStates(c3).includes(6), 10000, 'a live event');
  assert.deepEqual(sioStates(c3), [6], 'a forged pid replayed events');
  c2.close();
  c3.close();
  proxy.close();
});

// ---------------------------------------------------------------- garbled offsets

test('native: a garbled, forged or future offset gets recovered:false; the socket stays open and gets live events', async () => {
  const U = userId();
  const tok = A.token(U);
  const probe = await connectWs(wsUrl(A, tok));
  await publishStates(pub, U, 0, 1);
  await waitStates(probe, 1);
  const real = nativeEvents(probe.messages)[0].offset;
  const [anchor] = real.split('-').map(Number);
  await probe.close();
  const bad = [
    ['abc', 'offset'],
    ['1-2-3', 'offset'],
    ['99999999999999999999-1', 'offset'],
    ['', 'offset'],
    ['-', 'offset'],
    ['0-0', 'offset'],
    ['01-1', 'offset'],
    [`${anchor}-`, 'offset'],
    [`-${anchor}`, 'offset'],
    [`${anchor}-1x`, 'offset'],
    [`${anchor}%20-1`, 'offset'],
    ['9007199254740992-1', 'offset'], // 2^53: beyond what Lua compares exactly
    ['x'.repeat(600), 'offset'],
    [`${anchor + 10_000_000}-1`, 'offset'], // from the future
    [`${anchor - 1}-1`, 'gap'], // no such anchor: a segment chain that does not exist
    ['1-1', 'window'], // 1970
  ];
  const before = {};
  for (const o of ['offset', 'gap', 'window', 'recovered']) before[o] = await outcomes(B, 'native', o);
  let n = 1;
  for (const [offset, outcome] of bad) {
    const { client, recovered } = await recoverNative(B, tok, offset).catch((e) => {
      throw new Error(`offset ${JSON.stringify(offset)}: ${e.message}`);
    });
    assert.deepEqual(recovered, { recovered: false }, `offset ${JSON.stringify(offset)}`);
    await publishStates(pub, U, n, n + 1);
    const m = await client.waitEvent('tradestate', 10000);
    assert.equal(m.data.state, n, `offset ${JSON.stringify(offset)}: live event`);
    assert.equal(client.isClosed, false);
    assert.equal(client.messages.length, 2, `offset ${JSON.stringify(offset)}: ${client.summary()}`);
    n++;
    await client.close();
  }
  const want = {};
  for (const [, o] of bad) want[o] = (want[o] || 0) + 1;
  for (const o of ['offset', 'gap', 'window']) {
    assert.equal((await outcomes(B, 'native', o)) - before[o], want[o], `coordhub_recovery_total{outcome="${o}"}`);
  }
  assert.equal((await outcomes(B, 'native', 'recovered')) - before.recovered, 0);
});

test('Socket.IO: a garbled or future offset, or a garbled pid: recovered false, connected, live events', async () => {
  const U = userId();
  const tok = A.token(U);
  const cases = [
    ['AAAAAAAAAAAAAAAAAAAA', 'abc'],
    ['AAAAAAAAAAAAAAAAAAAA', ''],
    ['AAAAAAAAAAAAAAAAAAAA', '99999999999999999999-1'],
    ['AAAAAAAAAAAAAAAAAAAA', `${Date.now() + 10_000_000}-1`],
    ['../../etc', '1796229453110-4'],
    ['', '1796229453110-4'],
    ['x'.repeat(200), '1796229453110-4'],
  ];
  let n = 0;
  for (const [pid, offset] of cases) {
    const c = sioClient(B.url, tok, { transports: ['websocket'], autoConnect: false, reconnection: false });
    c.socket._pid = pid;
    c.socket._lastOffset = offset;
    c.socket.connect();
    await c.connected().catch((e) => {
      throw new Error(`pid ${JSON.stringify(pid)} offset ${JSON.stringify(offset)}: ${e.message}`);
    });
    assert.equal(c.socket.recovered, false, `pid ${pid} offset ${offset}`);
    assert.notEqual(c.socket._pid, pid);
    await publishStates(pub, U, n, n + 1);
    await c.until(() => sioStates(c).includes(n), 10000, 'a live event');
    assert.deepEqual(sioStates(c), [n]);
    assert.equal(c.socket.connected, true);
    n++;
    c.close();
  }
});

// ---------------------------------------------------------------- rooms

test('rooms: rooms=bot:7,ops with an ops token recovers bot and ops events; never another user\'s', async () => {
  const U = userId();
  const V = userId();
  const opsTok = A.token(U, ['ops']);
  const a = await connectWs(wsUrl(A, opsTok));
  await join(a, 'bot:7');
  await join(a, 'ops');
  await publishStates(pub, U, 0, 1);
  await waitStates(a, 1);
  const last = nativeEvents(dropNative(a)).at(-1).offset;

  // While away: U's, V's, bot 7's and bot 8's, ops.
  await publishAll(pub, [
    ['tradestate', tsPayload(V, 100)],
    ['bot 7', `withdraw 7 ${U}_h1`],
    ['bot 8', `withdraw 8 ${V}_h2`],
    ['tradestate', tsPayload(U, 1)],
    ['bot 7', `withdraw 7 ${V}_h3`],
    ['finishedtrades', 'ft1'],
    ['canceledtrades', V],
    ['canceledtrades', U],
    ['bot 8', `withdraw 8 ${U}_h4`],
  ]);

  // The ops token, the rooms it had: everything of its rooms, in order.
  const { client: b, recovered } = await recoverNative(B, opsTok, last, { rooms: 'bot:7,ops' });
  assert.deepEqual(recovered, { recovered: true, missed: 7 });
  await waitUntil(() => b.messages.length >= 8, { timeoutMs: 10000, what: '7 replayed events' });
  const got = b.messages.slice(1, 8).map((m) => [m.event, m.data]);
  assert.deepEqual(got, [
    ['bot', { botId: '7', command: 'withdraw', steamId: U, tradeHash: 'h1', raw: `withdraw 7 ${U}_h1` }],
    ['bot-command', { botId: '7', command: 'withdraw', tradeHash: 'h1' }],
    ['tradestate', { steamId: U, state: 1 }],
    ['bot', { botId: '7', command: 'withdraw', steamId: V, tradeHash: 'h3', raw: `withdraw 7 ${V}_h3` }],
    ['finishedtrades', 'ft1'],
    ['canceledtrades', U],
    ['bot-command', { botId: '8', command: 'withdraw', tradeHash: 'h4' }],
  ]);
  // One message, two rooms: `bot` and `bot-command` share its offset.
  assertIncreasing(b.messages.slice(1, 8).map((m) => m.offset), 'replayed offsets', { allowEqual: true });
  assert.equal(b.messages[1].offset, b.messages[2].offset);
  // The rooms are joined: live bot 7 and ops events arrive.
  await publishAll(pub, [
    ['bot 7', `sale 7 ${V}_h5`],
    ['steamDown', 'sd'],
    ['tradestate', tsPayload(U, 2)],
  ]);
  await b.waitFor((m) => m.event === 'tradestate' && m.data.state === 2, 10000, 'live tradestate');
  assert.deepEqual(
    b.messages.slice(8).map((m) => m.event),
    ['bot', 'steamDown', 'tradestate'],
  );
  await b.close();
});

test('rooms: without the ops role rooms=bot:7 gets recovered:false and never a bot:7 event; the own room alone recovers', async () => {
  const U = userId();
  const V = userId();
  const opsTok = A.token(U, ['ops']);
  const plainTok = A.token(U);
  const a = await connectWs(wsUrl(A, opsTok));
  await join(a, 'bot:7');
  await publishStates(pub, U, 0, 1);
  await waitStates(a, 1);
  const last = nativeEvents(dropNative(a)).at(-1).offset;
  await publishAll(pub, [
    ['bot 7', `withdraw 7 ${V}_h1`],
    ['tradestate', tsPayload(U, 1)],
    ['tradestate', tsPayload(V, 1)],
  ]);
  const rooms0 = await outcomes(B, 'native', 'rooms');

  // The role is gone: false, and bot:7 is not joined.
  const { client: b, recovered } = await recoverNative(B, plainTok, last, { rooms: 'bot:7' });
  assert.deepEqual(recovered, { recovered: false });
  assert.equal((await outcomes(B, 'native', 'rooms')) - rooms0, 1);
  await publishAll(pub, [
    ['bot 7', `withdraw 7 ${V}_h2`],
    ['bot 7', `withdraw 7 ${U}_h3`],
    ['tradestate', tsPayload(U, 2)],
  ]);
  await b.waitFor((m) => m.event === 'tradestate' && m.data.state === 2, 10000, 'live tradestate');
  // Everything published before that tradestate has been routed.
  assert.deepEqual(
    b.messages.map((m) => m.event),
    ['recovered', 'bot-command', 'tradestate'],
    b.summary(),
  );

  // Another user's room in rooms=: false, and none of V's events.
  const { client: c, recovered: r2 } = await recoverNative(B, plainTok, last, { rooms: `user:${V}` });
  assert.deepEqual(r2, { recovered: false });
  await publishAll(pub, [
    ['tradestate', tsPayload(V, 3)],
    ['tradestate', tsPayload(U, 3)],
  ]);
  await c.waitFor((m) => m.event === 'tradestate' && m.data.state === 3, 10000, 'live tradestate');
  assert.deepEqual(c.messages.map((m) => m.event), ['recovered', 'tradestate'], c.summary());
  assert.equal(c.messages[1].data.steamId, U);

  // The same offset, no rooms=: the own room recovers (and only it).
  const { client: d, recovered: r3 } = await recoverNative(B, plainTok, last);
  assert.deepEqual(r3, { recovered: true, missed: 4 });
  await waitUntil(() => d.messages.length >= 5, { timeoutMs: 10000, what: '4 replayed' });
  assert.deepEqual(
    d.messages.slice(1).map((m) => [m.event, m.event === 'tradestate' ? m.data.steamId : m.data.tradeHash]),
    [
      ['tradestate', U],
      ['bot-command', 'h3'],
      ['tradestate', U],
      ['tradestate', U],
    ],
  );
  assert.deepEqual(nativeStates(d.messages), [1, 2, 3]);
  await b.close();
  await c.close();
  await d.close();
});

test('rooms, Socket.IO: the session\'s bot:7 is recovered with the ops role, refused without it', async () => {
  const U = userId();
  const V = userId();
  for (const keepOps of [true, false]) {
    const proxy = await startProxy(A.port);
    const c = sioClient(proxy.url, A.token(U, ['ops']), { transports: ['websocket'] });
    await c.connected();
    const ack = await c.ack('join', 'bot:7');
    assert.equal(ack.ok, true, JSON.stringify(ack));
    await publishStates(pub, U, 0, 1);
    await c.until(() => sioStates(c).length === 1, 10000, 'an event');
    const pid = c.socket._pid;
    proxy.pause();
    proxy.dropAll();
    await c.waitDisconnect(10000);
    await waitUntil(async () => (await redis.command(['EXISTS', `coordhub:rec:sio:${pid}`])) === 1, { what: 'the session saved' });
    await publishAll(pub, [
      ['bot 7', `withdraw 7 ${V}_h1`],
      ['tradestate', tsPayload(V, 1)],
      ['tradestate', tsPayload(U, 1)],
    ]);
    if (!keepOps) c.socket.auth = { token: A.token(U) };
    const mark = c.mark();
    proxy.setTarget(B.port);
    await c.until(() => c.connects === 2, 15000, 'the reconnection');
    await publishAll(pub, [
      ['bot 7', `withdraw 7 ${V}_h2`],
      ['tradestate', tsPayload(U, 2)],
    ]);
    await c.waitEvent('tradestate', 10000, (d) => d.state === 2, mark);
    const after = c.events.slice(mark).map((e) => [e.name, e.name === 'bot' ? e.args[0].tradeHash : e.args[0].state]);
    if (keepOps) {
      assert.equal(c.socket.recovered, true, c.summary());
      assert.deepEqual(after, [['bot', 'h1'], ['tradestate', 1], ['bot', 'h2'], ['tradestate', 2]]);
    } else {
      assert.equal(c.socket.recovered, false, 'recovered a room the token no longer allows');
      assert.deepEqual(after, [['tradestate', 2]], 'bot:7 events without the ops role');
    }
    assert.ok(!c.events.some((e) => e.name === 'tradestate' && e.args[0].steamId === V), "V's events on U's socket");
    c.close();
    proxy.close();
  }
});

// ---------------------------------------------------------------- window, bound, off

test('--recovery-window-ms 1500: recovered inside the window, recovered:false once it has passed', async () => {
  const r = await startRedis();
  const W = await startHub({
    redisUrl: r.url,
    secret,
    extraArgs: ['--recovery-window-ms', '1500'],
    env: { COORDHUB_RECOVERY_ANCHOR_MS: '200' },
  });
  await waitSynced(W);
  const p = await publisher(r);
  assert.equal(await W.metric('coordhub_recovery_window_seconds'), 1.5);

  // Inside the window (the anchor is at most ~200 ms old): true.
  const U = userId();
  const tok = W.token(U);
  const a = await connectWs(wsUrl(W, tok));
  await publishStates(p, U, 0, 1);
  await waitStates(a, 1);
  const last0 = nativeEvents(dropNative(a)).at(-1).offset;
  await publishStates(p, U, 1, 2);
  const first = await recoverNative(W, tok, last0);
  assert.deepEqual(first.recovered, { recovered: true, missed: 1 });
  await waitStates(first.client, 1);
  const seenAt = Date.now();
  const last1 = nativeEvents(dropNative(first.client)).at(-1).offset;
  await publishStates(p, U, 2, 3);

  // Past the window (a time-based wait is the point here).
  const window0 = await outcomes(W, 'native', 'window');
  await sleep(Math.max(0, seenAt + 2600 - Date.now()));
  const late = await recoverNative(W, tok, last1);
  assert.deepEqual(late.recovered, { recovered: false });
  assert.equal((await outcomes(W, 'native', 'window')) - window0, 1);
  // The history expired with the window: Redis keeps nothing of it.
  await waitUntil(async () => (await r.command(['EXISTS', `coordhub:rec:h:user:${U}`])) === 0, {
    timeoutMs: 5000,
    what: 'the history stream to expire',
  });
  await publishStates(p, U, 3, 4);
  const m = await late.client.waitEvent('tradestate', 10000);
  assert.equal(m.data.state, 3);
  await late.client.close();
  await W.stop();
});

// One hub with --recovery-max-per-room 10, shared by the two bound tests.
let boundHub;
async function bounded() {
  if (!boundHub) {
    const r = await startRedis();
    const H = await startHub({ redisUrl: r.url, secret, extraArgs: ['--recovery-max-per-room', '10'] });
    await waitSynced(H);
    boundHub = { H, r, p: await publisher(r) };
  }
  return boundHub;
}

// A client of the bound hub that saw states 0..2, dropped, and missed
// 3..3+missed-1 in its room; returns the reconnect's {client, recovered}.
async function missInBoundedRoom(missed, { otherRoomTraffic = 0 } = {}) {
  const { H, p } = await bounded();
  const U = userId();
  const tok = H.token(U);
  const a = await connectWs(wsUrl(H, tok));
  await publishStates(p, U, 0, 3);
  await waitStates(a, 3);
  const last = nativeEvents(dropNative(a)).at(-1).offset;
  if (otherRoomTraffic) await publishStates(p, userId(), 0, otherRoomTraffic);
  await publishStates(p, U, 3, 3 + missed);
  return { U, ...(await recoverNative(H, tok, last)) };
}

test('--recovery-max-per-room 10: 10 missed events recover; another room\'s traffic does not count', async () => {
  const { H, r } = await bounded();
  assert.equal(await H.metric('coordhub_recovery_room_bound'), 10);
  const one = await missInBoundedRoom(10);
  assert.deepEqual(one.recovered, { recovered: true, missed: 10 });
  await waitStates(one.client, 10);
  assert.deepEqual(nativeStates(one.client.messages), range(3, 13));
  // the room's history holds at least bound + 1 (MAXLEN ~ trims whole nodes)
  assert.ok((await r.command(['XLEN', `coordhub:rec:h:user:${one.U}`])) >= 11);
  await one.client.close();

  const two = await missInBoundedRoom(5, { otherRoomTraffic: 50 });
  assert.deepEqual(two.recovered, { recovered: true, missed: 5 });
  await waitStates(two.client, 5);
  assert.deepEqual(nativeStates(two.client.messages), range(3, 8));
  await two.client.close();
});

// The bound: a stream keeps bound + 1 entries, and more than `bound` after
// the offset is recovered:false (XINFO's max-deleted-entry-id does not see
// MAXLEN's trimming in Redis 7.0: docs/recovery.md). 10 missed events with a
// bound of 10 recover, 11 do not: never a partial replay.
test(
  '--recovery-max-per-room 10: 11 or more missed events get recovered:false, never a partial replay',
  {},
  async () => {
    const { H, p } = await bounded();
    for (const missed of [11, 30]) {
      const bound0 = await outcomes(H, 'native', 'bound');
      const { U, client, recovered } = await missInBoundedRoom(missed);
      assert.deepEqual(recovered, { recovered: false }, `${missed} missed with a bound of 10`);
      assert.equal((await outcomes(H, 'native', 'bound')) - bound0, 1);
      await publishStates(p, U, 100, 101);
      const m = await client.waitEvent('tradestate', 10000);
      assert.equal(m.data.state, 100, 'a partial replay before the live event');
      assert.equal(client.messages.length, 2);
      await client.close();
    }
  },
);

test('--recovery-window-ms 0 turns recovery off: no offsets, no pid, a reconnect with an offset gets recovered:false', async () => {
  const r = await startRedis();
  const H = await startHub({ redisUrl: r.url, secret, extraArgs: ['--recovery-window-ms', '0'] });
  const p = await publisher(r);
  const U = userId();
  const tok = H.token(U);
  const a = await connectWs(wsUrl(H, tok));
  const s = sioClient(H.url, tok, { transports: ['websocket'] });
  await s.connected();
  assert.equal(s.socket._pid, undefined, 'a pid with recovery off');
  await publishStates(p, U, 0, 2);
  await waitStates(a, 2);
  await s.until(() => sioStates(s).length === 2, 10000, '2 events');
  for (const m of a.messages) assert.equal('offset' in m, false, `a frame with an offset: ${JSON.stringify(m)}`);
  for (const e of sioEvents(s)) assert.deepEqual(e.args.length, 1, `event args ${JSON.stringify(e.args)}`);
  for (const raw of a.raw) assert.doesNotMatch(raw, /offset/);
  a.terminate();
  const { client, recovered } = await recoverNative(H, tok, '1796229453110-4');
  assert.deepEqual(recovered, { recovered: false });
  await publishStates(p, U, 2, 3);
  const m = await client.waitEvent('tradestate', 10000);
  assert.equal(m.data.state, 2);
  assert.equal('offset' in m, false);
  assert.equal(await H.metric('coordhub_recovery_synced'), 0);
  assert.deepEqual(await r.command(['KEYS', 'coordhub:rec:*']), [], 'recovery off wrote recovery keys');
  await client.close();
  s.close();
  await H.stop();
});

// ---------------------------------------------------------------- metrics

test('/metrics: the history\'s memory in Redis is visible', async () => {
  const U = userId();
  const tok = A.token(U);
  const a = await connectWs(wsUrl(A, tok));
  await publishStates(pub, U, 0, 3);
  await waitStates(a, 3);
  await waitUntil(async () => (await A.metric('coordhub_recovery_history_bytes')) > 0, {
    timeoutMs: 10000,
    what: 'coordhub_recovery_history_bytes > 0',
  });
  assert.ok((await A.metric('coordhub_recovery_history_entries_total')) > 0);
  assert.equal(await A.metric('coordhub_recovery_history_errors_total'), 0);
  assert.equal(await B.metric('coordhub_recovery_history_errors_total'), 0);
  await a.close();
});
