// Recovery of missed events (SPEC §9, docs/recovery.md) through failures:
// a hub stopped with SIGTERM under 1,000 native and 100 Socket.IO clients
// (they all recover on another hub), a hub killed with SIGKILL (native
// recovers on a hub that stayed synced; Socket.IO does not: its session
// died with the hub), the only hub killed and restarted, FLUSHALL, Redis
// restarted without its data, and a recovery asked while the hub has no
// Redis. Every case answers exactly the missed events or recovered:false,
// and the socket lives on with live events.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  connectWs,
  httpGet,
  startHub,
  startRedis,
  userId,
  waitUntil,
} from './harness.mjs';
import {
  assertIncreasing,
  dropNative,
  nativeEvents,
  nativeStates,
  outcomes,
  publishAll,
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

const NATIVE = 1000;
const SOCKETIO = 100;

// Runs fn(i) for i in 0..n-1, `concurrency` at a time; resolves the results.
async function pool(n, concurrency, fn) {
  const out = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, n) }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await fn(i);
      }
    }),
  );
  return out;
}

// Two hubs on a fresh Redis with one secret, both synced.
async function twoHubs(extra = {}) {
  const redis = await startRedis();
  const secret = crypto.randomBytes(16).toString('hex');
  const [A, B] = await Promise.all([
    startHub({ redisUrl: redis.url, secret, ...extra }),
    startHub({ redisUrl: redis.url, secret, ...extra }),
  ]);
  await Promise.all([waitSynced(A), waitSynced(B)]);
  return { redis, secret, A, B, pub: await publisher(redis) };
}

const noDeflate = { perMessageDeflate: false };

test(`SIGTERM of hub A with ${NATIVE} native and ${SOCKETIO} Socket.IO clients: all recover on hub B exactly the events they missed`, async () => {
  const { redis, A, B, pub } = await twoHubs();
  const tag = crypto.randomBytes(3).toString('hex');
  const nUsers = range(0, NATIVE).map((i) => `rt${tag}n${i}`);
  const sUsers = range(0, SOCKETIO).map((i) => `rt${tag}s${i}`);
  const all = [...nUsers, ...sUsers];
  const nTok = nUsers.map((u) => A.token(u));
  const native0 = await outcomes(B, 'native', 'recovered');
  const sio0 = await outcomes(B, 'socketio', 'recovered');

  const natives = await pool(NATIVE, 100, (i) => connectWs(wsUrl(A, nTok[i]), { timeoutMs: 30000, wsOptions: noDeflate }));
  // Socket.IO through a proxy that will send their reconnections to B;
  // half with the default transports (upgraded), half WebSocket only.
  const proxy = await startProxy(A.port);
  const sios = sUsers.map((u, i) => sioClient(proxy.url, A.token(u), i % 2 ? { transports: ['websocket'] } : {}));
  await Promise.all(sios.map((c, i) => c.ready(60000, { upgrade: i % 2 === 0 })));

  await publishAll(pub, all.map((u) => ['tradestate', tsPayload(u, 0)]), { minReceivers: 2 });
  await waitUntil(
    () => natives.every((c) => nativeStates(c.messages).length === 1) && sios.every((c) => sioStates(c).length === 1),
    { timeoutMs: 30000, intervalMs: 50, what: 'state 0 on every client' },
  );
  const sids = sios.map((c) => c.socket.id);
  const pids = sios.map((c) => c.socket._pid);

  // SIGTERM with state 1 in flight: some clients get it from A, some not.
  proxy.pause();
  const inFlight = publishAll(pub, all.map((u) => ['tradestate', tsPayload(u, 1)]));
  const t0 = Date.now();
  const code = await A.stop(30000);
  await inFlight;
  assert.equal(code, 0, 'hub A exit code after SIGTERM');
  const closes = await Promise.all(natives.map((c) => c.waitClose(10000)));
  const codes = {};
  for (const cl of closes) codes[cl.code] = (codes[cl.code] || 0) + 1;
  assert.deepEqual(codes, { 1001: NATIVE }, 'close codes of the native clients');
  await Promise.all(sios.map((c) => c.waitDisconnect(10000)));
  // A wrote every Socket.IO session before it let go of Redis.
  const keys = await redis.command(['KEYS', 'coordhub:rec:sio:*']);
  assert.equal(keys.length, SOCKETIO, `sessions saved at SIGTERM: ${keys.length}`);
  for (const pid of pids) assert.ok(keys.includes(`coordhub:rec:sio:${pid}`), `no session for pid ${pid}`);
  const stoppedMs = Date.now() - t0;

  // Missed by everyone.
  await publishAll(pub, all.flatMap((u) => [2, 3].map((n) => ['tradestate', tsPayload(u, n)])));

  const seen = natives.map((c) => c.messages.slice());
  const t1 = Date.now();
  proxy.setTarget(B.port);
  const recs = await pool(NATIVE, 100, (i) => recoverNative(B, nTok[i], nativeEvents(seen[i]).at(-1).offset, { timeoutMs: 30000, wsOptions: noDeflate }));
  await waitUntil(() => sios.every((c) => c.connects === 2), { timeoutMs: 60000, intervalMs: 50, what: 'every Socket.IO client reconnected' });
  const reconnectMs = Date.now() - t1;

  // The marker: once state 4 is in, everything before it is too.
  await publishAll(pub, all.map((u) => ['tradestate', tsPayload(u, 4)]), { minReceivers: 1 });
  await waitUntil(
    () => recs.every((r) => nativeStates(r.client.messages).at(-1) === 4) && sios.every((c) => sioStates(c).at(-1) === 4),
    { timeoutMs: 30000, intervalMs: 50, what: 'state 4 on every client' },
  );

  const missedHist = {};
  recs.forEach((r, i) => {
    const before = nativeStates(seen[i]);
    assert.ok(before[0] === 0 && before.length <= 2, `native ${i} before: ${before}`);
    assert.equal(r.recovered.recovered, true, `native ${i}: ${JSON.stringify(r.recovered)}`);
    assert.equal(r.recovered.missed, 4 - before.length, `native ${i}: saw ${before}, recovered ${JSON.stringify(r.recovered)}`);
    assert.deepEqual([...before, ...nativeStates(r.client.messages)], [0, 1, 2, 3, 4], `native ${i}`);
    assertIncreasing([...nativeEvents(seen[i]), ...nativeEvents(r.client.messages)].map((m) => m.offset), `native ${i}`);
    missedHist[r.recovered.missed] = (missedHist[r.recovered.missed] || 0) + 1;
  });
  sios.forEach((c, i) => {
    assert.equal(c.socket.recovered, true, `socket.io ${i}: ${c.summary()}`);
    assert.equal(c.socket.id, sids[i], `socket.io ${i} kept its id`);
    assert.deepEqual(sioStates(c), [0, 1, 2, 3, 4], `socket.io ${i}`);
    assertIncreasing(sioEvents(c).map((e) => e.offset), `socket.io ${i}`);
  });
  assert.equal((await outcomes(B, 'native', 'recovered')) - native0, NATIVE);
  assert.equal((await outcomes(B, 'socketio', 'recovered')) - sio0, SOCKETIO);
  assert.deepEqual(await redis.command(['KEYS', 'coordhub:rec:sio:*']), [], 'sessions are taken once');
  console.log(
    `# SIGTERM: hub A stopped in ${stoppedMs} ms; ${NATIVE} native + ${SOCKETIO} Socket.IO recovered on B in ${reconnectMs} ms; native missed counts ${JSON.stringify(missedHist)}`,
  );
  for (const r of recs) r.client.terminate();
  proxy.close();
});

test('native, SIGKILL of hub A while hub B stays synced: recovered:true on B with exactly the missed events', async () => {
  const { A, B, pub } = await twoHubs();
  const U = userId();
  const tok = A.token(U);
  const a = await connectWs(wsUrl(A, tok));
  await publishStates(pub, U, 0, 5, { minReceivers: 2 });
  await waitUntil(() => nativeStates(a.messages).length === 5, { what: '5 events' });
  // Killed with events in flight, then more while the client is away.
  const inFlight = publishStates(pub, U, 5, 10);
  await A.kill('SIGKILL');
  await inFlight;
  await a.waitClose(10000);
  const seen = a.messages.slice();
  await publishStates(pub, U, 10, 30);
  const { client: b, recovered } = await recoverNative(B, tok, nativeEvents(seen).at(-1).offset);
  const before = nativeStates(seen);
  assert.deepEqual(recovered, { recovered: true, missed: 30 - before.length }, `saw ${before.length} before the kill`);
  await publishStates(pub, U, 30, 31);
  await waitUntil(() => nativeStates(b.messages).at(-1) === 30, { timeoutMs: 10000, what: 'state 30' });
  assert.deepEqual([...before, ...nativeStates(b.messages)], range(0, 31));
  assertIncreasing([...nativeEvents(seen), ...nativeEvents(b.messages)].map((m) => m.offset), 'offsets');
  await b.close();
});

test('rolling deploy: a client of hub A comes back to hub B, started after it left, once A has stopped (SIGTERM)', async () => {
  const redis = await startRedis();
  const secret = crypto.randomBytes(16).toString('hex');
  const A = await startHub({ redisUrl: redis.url, secret });
  await waitSynced(A);
  const pub = await publisher(redis);
  const U = userId();
  const tok = A.token(U);
  const a = await connectWs(wsUrl(A, tok));
  await publishStates(pub, U, 0, 5);
  await waitUntil(() => nativeStates(a.messages).length === 5, { what: '5 events' });
  const last = nativeEvents(dropNative(a)).at(-1).offset;
  await publishStates(pub, U, 5, 10); // only A hears these
  const B = await startHub({ redisUrl: redis.url, secret });
  await waitSynced(B);
  await publishStates(pub, U, 10, 15, { minReceivers: 2 });
  assert.equal(await A.stop(), 0);
  await publishStates(pub, U, 15, 20); // only B
  const { client, recovered } = await recoverNative(B, tok, last);
  assert.deepEqual(recovered, { recovered: true, missed: 15 });
  await waitUntil(() => nativeStates(client.messages).length === 15, { what: '15 replayed' });
  assert.deepEqual(nativeStates(client.messages), range(5, 20));
  await client.close();
});

test('Socket.IO, SIGKILL of hub A: on hub B socket.recovered is false (no session was saved), then live events', async () => {
  const { redis, A, B, pub } = await twoHubs();
  const U = userId();
  const proxy = await startProxy(A.port);
  const c = sioClient(proxy.url, A.token(U), { transports: ['websocket'] });
  await c.connected();
  await publishStates(pub, U, 0, 3, { minReceivers: 2 });
  await c.until(() => sioStates(c).length === 3, 10000, '3 events');
  const sid = c.socket.id;
  const pid = c.socket._pid;
  const session0 = await outcomes(B, 'socketio', 'session');
  proxy.pause();
  await A.kill('SIGKILL');
  await c.waitDisconnect(10000);
  await publishStates(pub, U, 3, 6); // missed, never replayed
  assert.deepEqual(await redis.command(['KEYS', 'coordhub:rec:sio:*']), [], 'a killed hub saved a session');
  proxy.setTarget(B.port);
  await c.until(() => c.connects === 2, 15000, 'the reconnection to B');
  assert.equal(c.socket.recovered, false, c.summary());
  assert.notEqual(c.socket._pid, pid, 'a new session gets a new pid');
  assert.notEqual(c.socket.id, sid, 'a new session gets a new id');
  assert.equal((await outcomes(B, 'socketio', 'session')) - session0, 1);
  await publishStates(pub, U, 6, 7);
  await c.until(() => sioStates(c).at(-1) === 6, 10000, 'a live event');
  assert.deepEqual(sioStates(c), [0, 1, 2, 6], 'missed events replayed without a session');
  c.close();
  proxy.close();
});

test('the only hub SIGKILLed and restarted: recovered:false, then live events', async () => {
  const redis = await startRedis();
  const secret = crypto.randomBytes(16).toString('hex');
  const K = await startHub({ redisUrl: redis.url, secret });
  await waitSynced(K);
  const pub = await publisher(redis);
  const U = userId();
  const tok = K.token(U);
  const a = await connectWs(wsUrl(K, tok));
  await publishStates(pub, U, 0, 3);
  await waitUntil(() => nativeStates(a.messages).length === 3, { what: '3 events' });
  await K.kill('SIGKILL');
  await a.waitClose(10000);
  const last = nativeEvents(a.messages).at(-1).offset;
  await publishStates(pub, U, 3, 5, { minReceivers: 0 }); // nobody hears these
  const K2 = await startHub({ redisUrl: redis.url, secret });
  await waitSynced(K2);
  const { client, recovered } = await recoverNative(K2, tok, last);
  assert.deepEqual(recovered, { recovered: false });
  assert.equal(await outcomes(K2, 'native', 'gap'), 1, 'outcome "gap": the killed hub\'s last segment was never recorded');
  await publishStates(pub, U, 5, 6);
  assert.equal((await client.waitEvent('tradestate', 10000)).data.state, 5);
  assert.equal(client.messages.length, 2);
  await client.close();
});

test('FLUSHALL: recovered:false right after it and after the next anchors; recovery works again for later offsets', async () => {
  const redis = await startRedis();
  const secret = crypto.randomBytes(16).toString('hex');
  const F = await startHub({ redisUrl: redis.url, secret, env: { COORDHUB_RECOVERY_ANCHOR_MS: '250' } });
  await waitSynced(F);
  const pub = await publisher(redis);
  const U = userId();
  const tok = F.token(U);
  const a = await connectWs(wsUrl(F, tok));
  await publishStates(pub, U, 0, 3);
  await waitUntil(() => nativeStates(a.messages).length === 3, { what: '3 events' });
  const last = nativeEvents(dropNative(a)).at(-1).offset;

  assert.equal(await redis.command(['FLUSHALL']), 'OK');
  await publishStates(pub, U, 3, 5);
  const bad0 = (await outcomes(F, 'native', 'epoch')) + (await outcomes(F, 'native', 'gap'));
  const first = await recoverNative(F, tok, last);
  assert.deepEqual(first.recovered, { recovered: false }, 'right after FLUSHALL');
  assert.equal((await outcomes(F, 'native', 'epoch')) + (await outcomes(F, 'native', 'gap')) - bad0, 1);

  // Two anchors later (a new epoch): still false.
  const anchors0 = await F.metric('coordhub_recovery_anchors_total');
  await waitUntil(async () => (await F.metric('coordhub_recovery_anchors_total')) >= anchors0 + 2, {
    timeoutMs: 10000,
    what: 'two anchors after FLUSHALL',
  });
  const second = await recoverNative(F, tok, last);
  assert.deepEqual(second.recovered, { recovered: false }, 'after the next anchors');
  await first.client.close();

  // A later offset recovers.
  await publishStates(pub, U, 5, 6);
  await waitUntil(() => nativeStates(second.client.messages).at(-1) === 5, { what: 'live state 5' });
  assert.deepEqual(nativeStates(second.client.messages), [5]);
  const fresh = nativeEvents(dropNative(second.client)).at(-1).offset;
  await publishStates(pub, U, 6, 8);
  const third = await recoverNative(F, tok, fresh);
  assert.deepEqual(third.recovered, { recovered: true, missed: 2 });
  await waitUntil(() => nativeStates(third.client.messages).length === 2, { what: '2 replayed' });
  assert.deepEqual(nativeStates(third.client.messages), [6, 7]);
  await third.client.close();
});

test('Redis restarted without its data: recovered:false (and false while Redis is down); the old socket lives on; later offsets recover', async () => {
  const redis = await startRedis();
  const secret = crypto.randomBytes(16).toString('hex');
  const H = await startHub({ redisUrl: redis.url, secret });
  await waitSynced(H);
  let pub = await publisher(redis);
  const U = userId();
  const tok = H.token(U);
  const keep = await connectWs(wsUrl(H, tok)); // stays connected through it all
  const a = await connectWs(wsUrl(H, tok));
  await publishStates(pub, U, 0, 3);
  await waitUntil(() => nativeStates(a.messages).length === 3 && nativeStates(keep.messages).length === 3, { what: '3 events' });
  const last = nativeEvents(dropNative(a)).at(-1).offset;

  await redis.kill('SIGKILL');
  await waitUntil(async () => (await H.metric('coordhub_recovery_synced')) === 0, { timeoutMs: 10000, what: 'synced 0 without Redis' });
  // Asked while the hub has no Redis: false at once, the socket stays.
  const unavailable0 = await outcomes(H, 'native', 'unavailable');
  const down = await recoverNative(H, tok, last);
  assert.deepEqual(down.recovered, { recovered: false }, 'while Redis is down');
  assert.equal((await outcomes(H, 'native', 'unavailable')) - unavailable0, 1);

  await redis.restart();
  await waitUntil(async () => (await httpGet(`${H.url}/readyz`, { timeoutMs: 2000 })).status === 200, {
    timeoutMs: 15000,
    what: '/readyz 200 after the Redis restart',
  });
  await waitSynced(H);
  pub = await publisher(redis);
  const after = await recoverNative(H, tok, last);
  assert.deepEqual(after.recovered, { recovered: false }, 'after the restart');

  await publishStates(pub, U, 3, 4);
  for (const c of [keep, down.client, after.client]) {
    await waitUntil(() => nativeStates(c.messages).at(-1) === 3, { timeoutMs: 10000, what: 'live state 3' });
  }
  assert.equal(keep.isClosed, false);
  assert.deepEqual(nativeStates(keep.messages), [0, 1, 2, 3]);
  assert.deepEqual(nativeStates(down.client.messages), [3]);
  assert.deepEqual(nativeStates(after.client.messages), [3]);

  // An offset from after the restart recovers.
  const fresh = nativeEvents(dropNative(keep)).at(-1).offset;
  await publishStates(pub, U, 4, 7);
  const r = await recoverNative(H, tok, fresh);
  assert.deepEqual(r.recovered, { recovered: true, missed: 3 });
  await waitUntil(() => nativeStates(r.client.messages).length === 3, { what: '3 replayed' });
  assert.deepEqual(nativeStates(r.client.messages), [4, 5, 6]);
  for (const c of [down.client, after.client, r.client]) await c.close();
});

// History entries are deduplicated by XADD refusing an ID not above the
// stream's last one. A hub that becomes synced (a new hub in a rolling
// deploy, or one back from a Redis blip) writes the entries of its first
// segment S at once; a hub that lags (here: SIGSTOPped, in production:
// busy) writes the end of the previous segment P later, and Redis refuses
// those entries because S-1 is already in the stream. The write script
// sees that a refused entry is absent and marks P broken: a recovery from
// inside P is recovered:false (SPEC §9), never a replay with a hole.
test(
  'a hub that lags behind a newly synced hub does not leave a hole in history',
  {},
  async () => {
    const redis = await startRedis();
    const secret = crypto.randomBytes(16).toString('hex');
    const B = await startHub({ redisUrl: redis.url, secret });
    await waitSynced(B);
    const pub = await publisher(redis);
    const U = userId();
    const tok = B.token(U);
    const c = await connectWs(wsUrl(B, tok));
    await publishStates(pub, U, 0, 1);
    await waitUntil(() => nativeStates(c.messages).length === 1, { what: 'state 0' });
    const last = nativeEvents(c.messages)[0].offset;
    B.proc.kill('SIGSTOP');
    let A;
    try {
      await publishStates(pub, U, 1, 2); // segment P, only B will write it
      A = await startHub({ redisUrl: redis.url, secret });
      await waitSynced(A); // A's first anchor S
      await publishStates(pub, U, 2, 3); // S-1, written by A at once
      // A's entry is in (B, stopped, may not even have written state 0)
      await waitUntil(
        async () =>
          (await redis.command(['XRANGE', `coordhub:rec:h:user:${U}`, '-', '+'])).some((e) => e[1][3] === tsPayload(U, 2)),
        { what: 'A to write S-1' },
      );
    } finally {
      B.proc.kill('SIGCONT');
    }
    // B catches up: state 1 and the anchor S; it writes P's entry, then
    // records P:S. A barrier: state 3 reaches B's client after all that.
    await publishStates(pub, U, 3, 4);
    await waitUntil(() => nativeStates(c.messages).at(-1) === 3, { timeoutMs: 10000, what: 'B to catch up' });
    const P = last.split('-')[0];
    await waitUntil(async () => (await redis.command(['ZRANGEBYSCORE', 'coordhub:rec:segs', P, P])).length === 1, {
      what: `the segment ${P} recorded (by B, after its writes)`,
    });
    const { client, recovered } = await recoverNative(A, tok, last);
    if (recovered.recovered) {
      await waitUntil(() => nativeStates(client.messages).length >= recovered.missed, { what: 'the replay' });
      assert.deepEqual(nativeStates(client.messages).slice(0, recovered.missed), [1, 2, 3], `recovered ${JSON.stringify(recovered)}: a hole`);
    }
    await client.close();
  },
);
