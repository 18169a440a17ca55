// Configuration cache (SPEC §6 "Configuration", §7), with TWO hubs on one
// Redis: reads and writes, invalidation across hubs (the hub's publish and
// Redis client tracking for writes that bypass the hub), config.watch on
// /ws and Socket.IO (exactly one event per change), category reads, the
// error answers, legacy L2 values, single flight, and what a lost Redis
// connection does to L1 (distrusted; stale while down; fresh after).
//
// "At once" is measured, not slept for: after a write is acknowledged the
// other hub is polled back to back for at most 200 ms (the invalidation is a
// pub/sub message racing the test's next HTTP request by a fraction of a
// millisecond); the time it took is reported as a diagnostic.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { after, before } from 'node:test';
import { io } from 'socket.io-client';
import {
  httpJson,
  keepAliveAgent,
  makeToken,
  pubsubRecorder,
  sleep,
  startHub,
  startRedis,
  test,
  waitUntil,
  withTimeout,
} from './harness.mjs';

const REDIS_CLI = process.env.REDIS_CLI || '/usr/bin/redis-cli';
const AT_ONCE_MS = 200; // the bound on "at once"
const EVENT_MS = 5000; // the bound on an expected event
const QUIET_MS = 800; // how long we listen for duplicates

let redis;
let A;
let B;
const tok = {}; // per hub: admin, user, service
const agents = new Map(); // hub -> keep-alive agent

before(async () => {
  redis = await startRedis();
  A = await startHub({ redisUrl: redis.url, logLevel: 'info' });
  B = await startHub({ redisUrl: redis.url, logLevel: 'info' });
  for (const h of [A, B]) {
    tok[h.port] = {
      admin: h.token('admin-1', ['admin']),
      user: h.token('user-1'),
      service: h.token('svc-1', ['service']),
      ops: h.token('ops-1', ['ops']),
    };
    agents.set(h, keepAliveAgent());
  }
  // Both hubs have tracking on before anything is tested.
  await waitUntil(async () => (await cmdConns()).filter((c) => c.flags.includes('t')).length === 2, {
    timeoutMs: 10000,
    what: 'two coordhub-cmd connections with tracking on',
  });
});

// ---------------------------------------------------------------- helpers

const admin = (h) => tok[h.port].admin;
const user = (h) => tok[h.port].user;

function get(h, key, { token = user(h), agent = agents.get(h) } = {}) {
  return httpJson(`${h.url}/v1/config/${key}`, { token, agent });
}
function list(h, category, { token = user(h) } = {}) {
  return httpJson(`${h.url}/v1/config?category=${category}`, { token, agent: agents.get(h) });
}
async function put(h, key, body, { token = admin(h), expect = 200 } = {}) {
  // expect: null to take any status
  const r = await httpJson(`${h.url}/v1/config/${key}`, { method: 'PUT', token, body, agent: agents.get(h) });
  if (expect !== null) assert.equal(r.status, expect, `PUT ${key} on :${h.port}: ${r.status} ${r.body}`);
  return r;
}
async function getOk(h, key) {
  const r = await get(h, key);
  assert.equal(r.status, 200, `GET ${key} on :${h.port}: ${r.status} ${r.body}`);
  return r.json;
}

// Polls GET `key` on hub `h` back to back until `pred(json)` holds; at most
// AT_ONCE_MS. Returns {ms, tries, json}.
async function pollAtOnce(h, key, pred, what) {
  const t0 = performance.now();
  let tries = 0;
  let last;
  for (;;) {
    last = await get(h, key);
    tries++;
    if (last.status === 200 && pred(last.json)) return { ms: performance.now() - t0, tries, json: last.json };
    if (performance.now() - t0 > AT_ONCE_MS) {
      throw new Error(`${what}: hub :${h.port} still answers ${last.status} ${last.body} after ${tries} GETs in ${AT_ONCE_MS} ms`);
    }
  }
}

const metric = (h, name, labels) => h.metric(name, labels);
async function cacheMetrics(h) {
  const s = await h.metrics();
  const m = (name, labels = {}) =>
    s.filter((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v)).reduce((a, x) => a + x.value, 0);
  return {
    l1: m('coordhub_config_cache_hits_total', { tier: 'l1' }),
    l2: m('coordhub_config_cache_hits_total', { tier: 'l2' }),
    store: m('coordhub_config_cache_hits_total', { tier: 'store' }),
    misses: m('coordhub_config_cache_misses_total'),
    stale: m('coordhub_config_stale_served_total'),
    publish: m('coordhub_config_invalidations_total', { source: 'publish' }),
    tracking: m('coordhub_config_invalidations_total', { source: 'tracking' }),
    flush: m('coordhub_config_invalidations_total', { source: 'flush' }),
    changes: m('coordhub_config_changes_total'),
    writes: m('coordhub_config_writes_total'),
    storeCount: m('coordhub_config_store_seconds_count'),
    trackingErrors: m('coordhub_config_tracking_errors_total'),
  };
}
const delta = (a, b) => Object.fromEntries(Object.keys(b).map((k) => [k, b[k] - a[k]]));

// Waits until hub `h` has stopped counting invalidations (two reads 40 ms
// apart agree): the notifications of earlier writes have all been handled.
async function settled(h) {
  let last = '';
  await waitUntil(
    async () => {
      const m = await cacheMetrics(h);
      const now = `${m.publish}/${m.tracking}/${m.flush}`;
      const same = now === last;
      last = now;
      return same;
    },
    { timeoutMs: 5000, intervalMs: 40, what: `hub :${h.port} to settle` },
  );
}

function redisCli(...args) {
  return new Promise((resolve, reject) => {
    execFile(REDIS_CLI, ['-h', '127.0.0.1', '-p', String(redis.port), ...args], { timeout: 5000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`redis-cli ${args.join(' ')}: ${err.message} ${stderr}`)) : resolve(stdout.trim()),
    );
  });
}

// CLIENT LIST as objects.
async function clientList() {
  const text = await redis.command(['CLIENT', 'LIST']);
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => Object.fromEntries(line.trim().split(' ').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])));
}
const cmdConns = async () => (await clientList()).filter((c) => c.name === 'coordhub-cmd');

// The local TCP ports of process `pid`'s sockets (from /proc), to tell the
// two hubs' Redis connections apart in CLIENT LIST.
function localPorts(pid) {
  const inodes = new Set();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch {
      /* closed meanwhile */
    }
  }
  const ports = new Set();
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = fs.readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length > 9 && inodes.has(cols[9])) ports.add(parseInt(cols[1].split(':')[1], 16));
    }
  }
  return ports;
}
// This hub's entries in CLIENT LIST: {sub, cmd} (either may be undefined).
async function hubConns(h) {
  const ports = localPorts(h.pid);
  const mine = (await clientList()).filter((c) => ports.has(Number(c.addr.split(':').pop())));
  return { sub: mine.find((c) => c.name === 'coordhub-sub'), cmd: mine.find((c) => c.name === 'coordhub-cmd') };
}
// Waits until hub `h` is ready and its command connection tracks (flag t)
// with its redirect pointing at its own subscriber; returns the entries.
async function waitTracking(h, timeoutMs = 15000) {
  return waitUntil(
    async () => {
      const r = await httpJson(`${h.url}/readyz`, { timeoutMs: 2000 });
      if (r.status !== 200) return false;
      const c = await hubConns(h);
      return c.cmd && c.sub && c.cmd.flags.includes('t') && c.cmd.redir === c.sub.id ? c : false;
    },
    { timeoutMs, intervalMs: 50, what: `hub :${h.port} ready with CLIENT TRACKING on, redirected to its subscriber` },
  );
}

// A native watcher: connects to `h`, watches `keys`, returns the client.
async function watchNative(h, keys) {
  const ws = await h.connect(`watcher-${h.port}`);
  ws.send({ op: 'config.watch', keys });
  const m = await ws.waitFor((x) => x.event === 'watching' || x.event === 'error', EVENT_MS, 'watching');
  assert.equal(m.event, 'watching', `config.watch refused: ${JSON.stringify(m)}`);
  assert.deepEqual(m.data, { keys });
  return ws;
}
const configEvents = (ws, key, since = 0) =>
  ws.messages.slice(since).filter((m) => m.event === 'config' && (key === undefined || m.data.key === key)).map((m) => m.data);

// A Socket.IO watcher (the official client, websocket transport only).
const sioSockets = new Set();
after(() => {
  for (const s of sioSockets) s.close();
});
async function watchSio(h, keys) {
  const socket = io(h.url, {
    transports: ['websocket'],
    auth: { token: h.token('sio-watcher') },
    reconnection: false,
    forceNew: true,
    timeout: 5000,
  });
  sioSockets.add(socket);
  const events = [];
  socket.on('config', (d) => events.push(d));
  await withTimeout(
    new Promise((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('connect_error', reject);
    }),
    EVENT_MS,
    'Socket.IO connect',
  );
  const ack = await socket.timeout(EVENT_MS).emitWithAck('config.watch', keys);
  assert.deepEqual(ack, { ok: true }, `Socket.IO config.watch ack: ${JSON.stringify(ack)}`);
  return { socket, events };
}

// ---------------------------------------------------------------- reads and writes

test('PUT then GET: shape, versions grow by one, category kept when omitted, any JSON value, the Redis layout', async () => {
  const K = 'rw.basic';
  const r404 = await get(B, K);
  assert.equal(r404.status, 404);
  assert.equal(r404.json.error.code, 'not_found');

  const rec = await pubsubRecorder(redis.port, ['configuration-invalidate']);
  await redis.command(['SET', 'configurationCategory:rwcat:0', '[]']); // a bundle the write must drop
  const t0 = Date.now();
  const p1 = await put(A, K, { value: { a: 1, s: 'x' }, category: 'rwcat' });
  assert.deepEqual(p1.json, { key: K, value: { a: 1, s: 'x' }, version: 1, category: 'rwcat' });
  assert.equal(await redis.command(['EXISTS', 'configurationCategory:rwcat:0']), 0, 'the category bundle was not DELeted');

  // the store: hash configuration-store, field = key, {value, category, version, updatedAt}
  const doc = JSON.parse(await redis.command(['HGET', 'configuration-store', K]));
  assert.deepEqual(doc.value, { a: 1, s: 'x' });
  assert.equal(doc.category, 'rwcat');
  assert.equal(doc.version, 1);
  assert.ok(Math.abs(doc.updatedAt - t0) < 5000, `updatedAt ${doc.updatedAt} is not about now (${t0})`);
  // L2: the value's JSON text alone, TTL 180 s
  assert.deepEqual(JSON.parse(await redis.command(['GET', `configuration:${K}`])), { a: 1, s: 'x' });
  const ttl = await redis.command(['TTL', `configuration:${K}`]);
  assert.ok(ttl > 170 && ttl <= 180, `TTL of configuration:${K} is ${ttl}`);
  // the invalidation
  await rec.barrier();
  assert.deepEqual(rec.since(0).map((m) => JSON.parse(m.payload)), [{ key: K, version: 1 }]);

  const values = [[1, 2, { n: null }], null, 42.5, true, 'plain string', 'ünïcødé ✓ "quoted"', { deep: { er: [{}] } }, 0];
  let v = 1;
  for (const value of values) {
    const r = await put(v % 2 ? B : A, K, { value });
    v++;
    assert.deepEqual(r.json, { key: K, value, version: v, category: 'rwcat' }, `write ${v}`);
    // (the writer's own next GET is held to "at once" by the read-your-own-write test below)
    for (const h of [A, B]) {
      const g = await pollAtOnce(h, K, (j) => j.version === v, `write ${v} read on :${h.port}`);
      assert.deepEqual(g.json, { key: K, value, version: v, category: 'rwcat' });
    }
  }
  await rec.barrier();
  assert.deepEqual(
    rec.since(0).map((m) => JSON.parse(m.payload).version),
    Array.from({ length: v }, (_, i) => i + 1),
    'one configuration-invalidate per write, versions in order',
  );
  rec.close();

  // "" is "no category"
  const r = await put(A, K, { value: 'x', category: '' });
  assert.deepEqual(r.json, { key: K, value: 'x', version: v + 1, category: '' });
  // another hub hears it through the publish, a millisecond or so later
  await waitUntil(async () => (await getOk(B, K)).category === '', {
    timeoutMs: 200,
    intervalMs: 2,
    what: "hub B to serve the write's empty category",
  });
});

test('read your own write: the hub that answered a PUT serves the new value on the very next GET', async (t) => {
  // The writer hub does not hear its own write through tracking (NOLOOP),
  // only through its own publish, which can arrive after the PUT's answer:
  // the PUT's answer must not come before the hub stops serving the old value.
  const K = 'ryow.k';
  const ROUNDS = 100;
  const stale = [];
  for (let i = 1; i <= ROUNDS; i++) {
    const h = i % 2 ? A : B;
    await getOk(h, K).catch(() => {}); // the old value (or nothing) in L1
    await getOk(h, K).catch(() => {});
    const w = await put(h, K, { value: i });
    const g = await get(h, K);
    if (g.status !== 200 || g.json.version !== w.json.version) stale.push(`round ${i} on :${h.port}: PUT answered version ${w.json.version}, the next GET ${g.status} ${g.body}`);
  }
  t.diagnostic(`${stale.length}/${ROUNDS} next GETs on the writing hub were stale`);
  assert.deepEqual(stale, [], `${stale.length}/${ROUNDS} GETs right after a PUT on the same hub served the old value`);
});

test('a write through hub A is read on hub B at once (the next GET after the PUT answer)', async (t) => {
  const K = 'xhub.write';
  await put(A, K, { value: 0, category: 'xhub' });
  const m0 = await cacheMetrics(B);
  const times = [];
  let firstTry = 0;
  const ROUNDS = 20;
  for (let i = 1; i <= ROUNDS; i++) {
    // B holds the old value in L1 (the second GET is an L1 hit)
    assert.equal((await getOk(B, K)).value, i - 1);
    assert.equal((await getOk(B, K)).value, i - 1);
    const w = await put(A, K, { value: i });
    const r = await pollAtOnce(B, K, (j) => j.value === i, `round ${i}: B after A's PUT`);
    assert.equal(r.json.version, w.json.version);
    assert.equal(r.json.category, 'xhub');
    times.push(r.ms);
    if (r.tries === 1) firstTry++;
  }
  const m1 = delta(m0, await cacheMetrics(B));
  t.diagnostic(
    `B served the new value on the first GET in ${firstTry}/${ROUNDS} rounds; ms until new: max ${Math.max(...times).toFixed(2)}, ` +
      `median ${times.sort((a, b) => a - b)[ROUNDS >> 1].toFixed(2)}`,
  );
  assert.ok(m1.l1 >= ROUNDS, `B's L1 hits grew by ${m1.l1}, want >= ${ROUNDS} (the priming GETs)`);
  assert.ok(m1.publish >= ROUNDS, `B's publish invalidations grew by ${m1.publish}`);
  assert.ok(m1.tracking >= ROUNDS, `B's tracking invalidations grew by ${m1.tracking} (A's SET of L2 is tracked too)`);
  assert.equal(m1.writes, 0, 'B wrote nothing');
  assert.ok((await metric(A, 'coordhub_config_writes_total')) >= ROUNDS);
});

test('a SET configuration:<key> done around the hubs (redis-cli) is read on hub B at once', async (t) => {
  const K = 'xhub.bypass';
  const p0 = (await cacheMetrics(B)).publish;
  const w = await put(A, K, { value: 'v0', category: 'bp' });
  // a barrier: A's answer can leave before its invalidation reaches B
  await waitUntil(async () => (await cacheMetrics(B)).publish > p0, { what: "B counts A's invalidation" });
  const times = [];
  let firstTry = 0;
  const ROUNDS = 20;
  const m0 = await cacheMetrics(B);
  for (let i = 1; i <= ROUNDS; i++) {
    assert.deepEqual((await getOk(B, K)).value, i === 1 ? 'v0' : { r: i - 1 });
    assert.deepEqual((await getOk(A, K)).value, i === 1 ? 'v0' : { r: i - 1 });
    const text = JSON.stringify({ r: i });
    // a few rounds through the real redis-cli, the others on a raw connection (faster to issue)
    if (i % 5 === 0) assert.equal(await redisCli('SET', `configuration:${K}`, text), 'OK');
    else assert.equal(await redis.command(['SET', `configuration:${K}`, text]), 'OK');
    const r = await pollAtOnce(B, K, (j) => j.value && j.value.r === i, `round ${i}: B after a direct SET`);
    // the value is L2's; version and category are still the store's
    assert.equal(r.json.version, w.json.version);
    assert.equal(r.json.category, 'bp');
    await pollAtOnce(A, K, (j) => j.value && j.value.r === i, `round ${i}: A after a direct SET`);
    times.push(r.ms);
    if (r.tries === 1) firstTry++;
  }
  const m1 = delta(m0, await cacheMetrics(B));
  t.diagnostic(
    `B served the new value on the first GET in ${firstTry}/${ROUNDS} rounds; ms until new: max ${Math.max(...times).toFixed(2)}, ` +
      `median ${times.sort((a, b) => a - b)[ROUNDS >> 1].toFixed(2)}`,
  );
  assert.ok(m1.tracking >= ROUNDS, `B's tracking invalidations grew by ${m1.tracking}, want >= ${ROUNDS}`);
  assert.equal(m1.publish, 0, 'a direct SET publishes nothing');
});

test('config.watch: exactly one config event per change (hub write on A, on B, direct SET, creations), native and Socket.IO', async (t) => {
  const W = 'watch.w';
  const C = 'watch.created'; // absent, created through the hub
  const D = 'watch.direct'; // absent, created by a direct SET
  await put(A, W, { value: 'start', category: 'wcat' });
  const nativeB = await watchNative(B, [W, C, D]);
  const sioB = await watchSio(B, [W, C, D]);
  const nativeA = await watchNative(A, [W]);
  // A GET after watching follows (or shares) the watch's first read: the
  // baseline is known before anything changes.
  assert.equal((await getOk(B, W)).value, 'start');
  assert.equal((await get(B, C)).status, 404);
  assert.equal((await get(B, D)).status, 404);
  assert.equal((await getOk(A, W)).value, 'start');
  const mB0 = await cacheMetrics(B);
  const mA0 = await cacheMetrics(A);

  const expectB = [];
  const expectA = [];
  const lat = [];
  const step = async (what, action, ev, alsoA) => {
    const nb = configEvents(nativeB).length;
    const sb = sioB.events.length;
    const na = configEvents(nativeA).length;
    const t0 = performance.now();
    await action();
    expectB.push(ev);
    if (alsoA) expectA.push(ev);
    await nativeB.waitFor((m) => m.event === 'config' && configEvents(nativeB).length > nb, EVENT_MS, `${what}: native event on B`);
    lat.push(performance.now() - t0);
    await waitUntil(() => sioB.events.length > sb, { timeoutMs: EVENT_MS, intervalMs: 5, what: `${what}: Socket.IO event on B` });
    if (alsoA) await waitUntil(() => configEvents(nativeA).length > na, { timeoutMs: EVENT_MS, intervalMs: 5, what: `${what}: native event on A` });
  };

  await step('hub write on A', () => put(A, W, { value: 'a1' }), { key: W, value: 'a1', version: 2 }, true);
  await step('hub write on B', () => put(B, W, { value: { b: 1 } }), { key: W, value: { b: 1 }, version: 3 }, true);
  await step(
    'direct SET',
    () => redis.command(['SET', `configuration:${W}`, '"direct-1"']),
    { key: W, value: 'direct-1', version: 3 },
    true,
  );
  await step('same value, new version (hub write on A)', () => put(A, W, { value: 'direct-1' }), { key: W, value: 'direct-1', version: 4 }, true);
  await step('creation through hub A', () => put(A, C, { value: [1] }), { key: C, value: [1], version: 1 }, false);
  await step('creation by a direct SET', () => redis.command(['SET', `configuration:${D}`, '{"d":true}']), { key: D, value: { d: true }, version: 0 }, false);
  await step('hub write on B of the key created directly', () => put(B, D, { value: { d: false } }), { key: D, value: { d: false }, version: 1 }, false);

  await sleep(QUIET_MS); // late duplicates would arrive now
  assert.deepEqual(configEvents(nativeB), expectB, `native watcher on B: ${nativeB.summary(20)}`);
  assert.deepEqual(sioB.events, expectB, 'Socket.IO watcher on B');
  assert.deepEqual(configEvents(nativeA), expectA, `native watcher on A: ${nativeA.summary(20)}`);
  const dB = delta(mB0, await cacheMetrics(B));
  const dA = delta(mA0, await cacheMetrics(A));
  assert.equal(dB.changes, expectB.length, 'coordhub_config_changes_total on B');
  // A watches W only (C and D are not watched there)
  assert.equal(dA.changes, expectA.length, 'coordhub_config_changes_total on A');
  t.diagnostic(`write-to-event on B (ms): ${lat.map((x) => x.toFixed(1)).join(', ')}`);

  // GET agrees with the last event
  assert.deepEqual(await getOk(B, W), { key: W, value: 'direct-1', version: 4, category: 'wcat' });

  // bad watch requests: an error, and the socket stays usable
  nativeB.send({ op: 'config.watch', keys: ['bad key'] });
  const e1 = await nativeB.waitEvent('error', EVENT_MS);
  assert.equal(e1.data.code, 'bad_request');
  nativeB.send({ op: 'config.watch', keys: [] });
  assert.equal((await nativeB.waitEvent('error', EVENT_MS)).data.code, 'bad_request');
  nativeB.send({ op: 'config.watch', keys: 'watch.w' });
  assert.equal((await nativeB.waitEvent('error', EVENT_MS)).data.code, 'bad_request');
  const bad = await sioB.socket.timeout(EVENT_MS).emitWithAck('config.watch', ['bad/key']);
  assert.equal(bad.ok, false);
  assert.equal(bad.error.code, 'bad_request');
  // a watch can not be faked with join
  nativeB.send({ op: 'join', room: `config:${W}` });
  assert.equal((await nativeB.waitEvent('error', EVENT_MS)).event, 'error');
  await nativeB.close();
  await nativeA.close();
  sioB.socket.close();
});

test('category reads: items, bundle invalidation on both paths, a category change moves the key', async (t) => {
  await put(A, 'cat.x1', { value: 1, category: 'catA' });
  await put(A, 'cat.x2', { value: 2, category: 'catA' });
  await put(B, 'cat.y1', { value: 3, category: 'catB' });
  // Any invalidation drops every bundle (and keeps a list in flight from
  // being cached): let those of the writes above arrive first.
  await settled(B);
  const items = (j) => Object.fromEntries(j.items.map((it) => [it.key, it]));
  const listOk = async (h, cat) => {
    const r = await list(h, cat);
    assert.equal(r.status, 200, `list ${cat}: ${r.status} ${r.body}`);
    assert.equal(r.json.category, cat);
    return r.json;
  };
  const l1 = await listOk(B, 'catA');
  assert.deepEqual(items(l1), {
    'cat.x1': { key: 'cat.x1', value: 1, version: 1 },
    'cat.x2': { key: 'cat.x2', value: 2, version: 1 },
  });
  // the platform's bundle in L2
  // (written to Redis after the answer: the answer may arrive first)
  const bundle = await waitUntil(
    async () => JSON.parse(await redis.command(['GET', 'configurationCategory:catA:0'])),
    { what: 'configurationCategory:catA:0 written' },
  );
  assert.equal(bundle.length, 2, `configurationCategory:catA:0 = ${JSON.stringify(bundle)}`);
  const h0 = await metric(B, 'coordhub_config_cache_hits_total', { tier: 'l1' });
  await listOk(B, 'catA');
  assert.equal(await metric(B, 'coordhub_config_cache_hits_total', { tier: 'l1' }), h0 + 1, 'the second list is an L1 hit');

  // a write through A: B's list shows it at once
  await put(A, 'cat.x1', { value: 11 }); // category kept
  assert.equal(await redis.command(['EXISTS', 'configurationCategory:catA:0']), 0, 'L2 bundle of catA not dropped by the write');
  const pollList = async (h, cat, pred, what) => {
    const t0 = performance.now();
    for (;;) {
      const j = await listOk(h, cat);
      if (pred(items(j))) return performance.now() - t0;
      if (performance.now() - t0 > AT_ONCE_MS) throw new Error(`${what}: list ${cat} on :${h.port} is still ${JSON.stringify(j)}`);
    }
  };
  const ms1 = await pollList(B, 'catA', (it) => it['cat.x1'] && it['cat.x1'].value === 11 && it['cat.x1'].version === 2, 'after A wrote x1');
  // a direct SET of one key: its value is overlaid from L2
  await listOk(B, 'catA'); // cached again
  await redis.command(['SET', 'configuration:cat.x2', '22']);
  const ms2 = await pollList(B, 'catA', (it) => it['cat.x2'] && it['cat.x2'].value === 22 && it['cat.x2'].version === 1, 'after a direct SET of x2');

  // move x1 from catA to catB
  await listOk(B, 'catA');
  await listOk(B, 'catB');
  assert.ok(await redis.command(['EXISTS', 'configurationCategory:catA:0']), 'a list refills the L2 bundle');
  const mv = await put(A, 'cat.x1', { value: 11, category: 'catB' });
  assert.deepEqual(mv.json, { key: 'cat.x1', value: 11, version: 3, category: 'catB' });
  const ms3 = await pollList(B, 'catA', (it) => !it['cat.x1'] && it['cat.x2'], 'x1 moved out of catA');
  await pollList(B, 'catB', (it) => it['cat.x1'] && it['cat.x1'].version === 3 && it['cat.y1'], 'x1 moved into catB');
  assert.equal((await getOk(B, 'cat.x1')).category, 'catB');
  assert.deepEqual(Object.keys(items(await listOk(A, 'catA'))), ['cat.x2']);
  t.diagnostic(`list on B new after: A's write ${ms1.toFixed(1)} ms, direct SET ${ms2.toFixed(1)} ms, move ${ms3.toFixed(1)} ms`);

  // an unknown category is empty; a bad or missing one is 400
  assert.deepEqual(await listOk(B, 'nothing.here'), { category: 'nothing.here', items: [] });
  for (const q of ['bad%20cat', 'a/b', '', 'x'.repeat(65)]) {
    const r = await list(B, q);
    assert.equal(r.status, 400, `category=${q}: ${r.status} ${r.body}`);
  }
  const noQuery = await httpJson(`${B.url}/v1/config`, { token: user(B) });
  assert.equal(noQuery.status, 400, `GET /v1/config without a category: ${noQuery.status} ${noQuery.body}`);
});

test("a category change drops the old category's L2 bundle too (the platform reads it)", async () => {
  await put(A, 'mv.k1', { value: 'a', category: 'mvOld' });
  await put(A, 'mv.k2', { value: 'b', category: 'mvOld' });
  await settled(B);
  const l = await list(B, 'mvOld');
  assert.equal(l.json.items.length, 2);
  await waitUntil(async () => (await redis.command(['EXISTS', 'configurationCategory:mvOld:0'])) === 1, {
    timeoutMs: 2000,
    intervalMs: 10,
    what: 'the list to fill configurationCategory:mvOld:0',
  });
  const mv = await put(A, 'mv.k1', { value: 'a', category: 'mvNew' });
  assert.equal(mv.json.category, 'mvNew');
  // checked before any list refills it: for up to its 180 s TTL the
  // platform's readers would still find mv.k1 in mvOld
  const oldBundle = await redis.command(['GET', 'configurationCategory:mvOld:0']);
  assert.ok(
    oldBundle === null || !JSON.parse(oldBundle).some((it) => it.key === 'mv.k1'),
    `after moving mv.k1 to mvNew, L2 configurationCategory:mvOld:0 still lists it: ${oldBundle} ` +
      `(TTL ${await redis.command(['TTL', 'configurationCategory:mvOld:0'])} s)`,
  );
});

// ---------------------------------------------------------------- refusals

test('401 without a valid token, 403 for non-admin writes, 400 for bad keys and bodies, 404, 405', async () => {
  const K = 'auth.k';
  await put(A, K, { value: 1 });
  const expectErr = (r, status, code, what) => {
    assert.equal(r.status, status, `${what}: ${r.status} ${r.body}`);
    assert.equal(typeof r.json?.error?.code, 'string', `${what}: error body ${r.body}`);
    if (code) assert.equal(r.json.error.code, code, what);
    assert.equal(typeof r.json.error.message, 'string', what);
  };
  // 401: no token, a token of another secret, an expired one
  const foreign = makeToken({ sub: 'x', roles: ['admin'], secret: 'not-the-secret' });
  const expired = makeToken({ sub: 'x', roles: ['admin'], secret: B.secret, ttl: -60 });
  for (const [what, token] of [
    ['no token', undefined],
    ['foreign signature', foreign],
    ['expired', expired],
  ]) {
    expectErr(await httpJson(`${B.url}/v1/config/${K}`, { token }), 401, undefined, `GET, ${what}`);
    expectErr(await httpJson(`${B.url}/v1/config?category=c`, { token }), 401, undefined, `list, ${what}`);
    expectErr(await httpJson(`${B.url}/v1/config/${K}`, { method: 'PUT', token, body: { value: 2 } }), 401, undefined, `PUT, ${what}`);
  }
  // 403: any role but admin
  for (const role of [[], ['service'], ['ops'], ['service', 'ops']]) {
    const r = await httpJson(`${B.url}/v1/config/${K}`, { method: 'PUT', token: B.token('nonadmin', role), body: { value: 3 } });
    expectErr(r, 403, 'forbidden', `PUT with roles ${JSON.stringify(role)}`);
  }
  assert.deepEqual((await getOk(B, K)).value, 1, 'a refused write changed nothing');
  assert.equal(JSON.parse(await redis.command(['HGET', 'configuration-store', K])).version, 1);

  // 400: keys
  const badKeys = ['x'.repeat(65), 'a%20b', 'a%2Fb', 'a/b', 'a*b', 'caf%C3%A9', 'k%22', 'a%25b', 'a+b'];
  for (const k of badKeys) {
    expectErr(await get(B, k), 400, 'bad_request', `GET key ${JSON.stringify(k)}`);
    expectErr(await put(B, k, { value: 1 }, { expect: null }), 400, 'bad_request', `PUT key ${JSON.stringify(k)}`);
  }
  // These never reach the hub: libwebsockets refuses them while parsing the
  // request line (its own 403 page for a bad escape, a closed connection for
  // an encoded NUL), as locks.test.mjs records. Only a refusal is accepted.
  for (const k of ['a%zzb', 'a%4', 'a%', 'a%00b']) {
    for (const method of ['GET', 'PUT']) {
      let r;
      try {
        r = await httpJson(`${B.url}/v1/config/${k}`, { method, token: admin(B), body: method === 'PUT' ? { value: 1 } : undefined });
      } catch {
        continue; // a closed connection
      }
      if (r.status !== 403) expectErr(r, 400, 'bad_request', `${method} key ${JSON.stringify(k)}`);
    }
  }
  // the edges that are valid: 64 characters, every allowed character, percent-encoded allowed ones
  const k64 = 'k'.repeat(64);
  assert.equal((await get(B, k64)).status, 404);
  assert.equal((await put(B, k64, { value: 64 })).json.version, 1);
  assert.equal((await getOk(A, k64)).value, 64);
  const every = 'Az09_.:-';
  assert.equal((await put(B, every, { value: 'every' })).json.key, every);
  assert.equal((await getOk(A, 'Az09_.%3A-')).value, 'every', 'a percent-encoded ":" is decoded before validation');

  // 400: bodies
  const badBodies = [
    ['not JSON', '{'],
    ['trailing garbage', '{"value":1} x'],
    ['an array', '[1]'],
    ['a bare value', '1'],
    ['no value', '{}'],
    ['no value, only category', '{"category":"c"}'],
    ['category a number', '{"value":1,"category":5}'],
    ['category null', '{"value":1,"category":null}'],
    ['category an object', '{"value":1,"category":{}}'],
    ['category with a space', '{"value":1,"category":"a b"}'],
    ['category too long', JSON.stringify({ value: 1, category: 'c'.repeat(65) })],
    ['empty body', ''],
  ];
  for (const [what, body] of badBodies) {
    expectErr(await put(B, K, body, { expect: null }), 400, undefined, `PUT body ${what}`);
  }
  assert.equal(JSON.parse(await redis.command(['HGET', 'configuration-store', K])).version, 1, 'no bad body was stored');
  // value null is a value
  assert.equal((await put(B, K, '{"value":null}')).json.value, null);

  // 404
  const nf = await get(B, 'no.such.key');
  expectErr(nf, 404, 'not_found', 'unknown key');
  // 405
  for (const method of ['DELETE', 'POST', 'PATCH']) {
    const r = await httpJson(`${B.url}/v1/config/${K}`, { method, token: admin(B), body: { value: 1 } });
    expectErr(r, 405, undefined, `${method} on a key`);
  }
});

// ---------------------------------------------------------------- tiers

test('a legacy plain-text L2 value is served as a JSON string (version 0, no category when the store has no doc)', async () => {
  await redisCli('SET', 'configuration:legacy.plain', 'plain text');
  assert.deepEqual(await getOk(B, 'legacy.plain'), { key: 'legacy.plain', value: 'plain text', version: 0, category: '' });
  assert.deepEqual(await getOk(A, 'legacy.plain'), { key: 'legacy.plain', value: 'plain text', version: 0, category: '' });
  // JSON text in L2 is parsed
  await redis.command(['SET', 'configuration:legacy.num', '42']);
  assert.deepEqual(await getOk(B, 'legacy.num'), { key: 'legacy.num', value: 42, version: 0, category: '' });
  await redis.command(['SET', 'configuration:legacy.obj', '{"enabled":false}']);
  assert.deepEqual((await getOk(B, 'legacy.obj')).value, { enabled: false });
  // a store doc with a legacy L2 value: L2's value, the store's version and category
  await put(A, 'legacy.both', { value: 'structured', category: 'lc' });
  await redis.command(['SET', 'configuration:legacy.both', 'trade disabled: maintenance']);
  await pollAtOnce(B, 'legacy.both', (j) => j.value === 'trade disabled: maintenance', 'legacy value over a store doc');
  assert.deepEqual(await getOk(B, 'legacy.both'), { key: 'legacy.both', value: 'trade disabled: maintenance', version: 1, category: 'lc' });
  // a legacy value that a hub write replaces
  const w = await put(B, 'legacy.plain', { value: { now: 'json' } });
  assert.equal(w.json.version, 1);
  assert.equal(await redis.command(['GET', 'configuration:legacy.plain']), '{"now":"json"}');
  assert.deepEqual((await getOk(A, 'legacy.plain')).value, { now: 'json' });
});

test('a doc only in the store is read through (tier store), fills L2 with its TTL, then L2 and L1 serve', async () => {
  const K = 'tier.k';
  await redis.command([
    'HSET',
    'configuration-store',
    K,
    JSON.stringify({ value: { z: 1 }, category: 'tc', version: 7, updatedAt: Date.now() }),
  ]);
  const m0B = await cacheMetrics(B);
  assert.deepEqual(await getOk(B, K), { key: K, value: { z: 1 }, version: 7, category: 'tc' });
  await waitUntil(async () => (await redis.command(['GET', `configuration:${K}`])) === '{"z":1}', {
    timeoutMs: 2000,
    intervalMs: 10,
    what: `B to fill configuration:${K}`,
  });
  const ttl = await redis.command(['TTL', `configuration:${K}`]);
  assert.ok(ttl > 170 && ttl <= 180, `TTL ${ttl}`);
  assert.deepEqual(await getOk(B, K), { key: K, value: { z: 1 }, version: 7, category: 'tc' });
  const d = delta(m0B, await cacheMetrics(B));
  assert.equal(d.store, 1, 'one store hit on B');
  assert.equal(d.misses, 1, 'one miss on B');
  assert.equal(d.l1, 1, 'then an L1 hit on B');
  assert.ok(d.storeCount >= 1, 'coordhub_config_store_seconds_count grew');

  const m0A = await cacheMetrics(A);
  // A sees the fill through tracking too (no stale entry there: it had none)
  assert.deepEqual(await getOk(A, K), { key: K, value: { z: 1 }, version: 7, category: 'tc' });
  const dA = delta(m0A, await cacheMetrics(A));
  assert.equal(dA.l2, 1, 'A read it from L2');
});

test('concurrent misses for one key make one fetch (single flight), held up by a busy Redis', async () => {
  const K = 'sf.k';
  await put(A, K, { value: 'one' });
  const busy = await redis.client();
  const m0 = await cacheMetrics(B);
  // Redis runs a 400 ms script: B's fetch waits, and every GET meanwhile joins it.
  const script = 'local t0 = redis.call("TIME") local s = t0[1] * 1000000 + t0[2] ' +
    'repeat local t = redis.call("TIME") until t[1] * 1000000 + t[2] - s >= tonumber(ARGV[1]) * 1000 return 1';
  const slow = busy.command(['EVAL', script, '0', '400'], { timeoutMs: 10000 });
  await sleep(30);
  const N = 20;
  const rs = await Promise.all(Array.from({ length: N }, () => httpJson(`${B.url}/v1/config/${K}`, { token: user(B), timeoutMs: 10000 })));
  await slow;
  busy.close();
  for (const r of rs) assert.deepEqual(r.json, { key: K, value: 'one', version: 1, category: '' });
  const d = delta(m0, await cacheMetrics(B));
  assert.equal(d.misses, 1, `${N} concurrent GETs of a cold key made ${d.misses} fetches`);
  assert.equal(d.l2, 1);
});

// ---------------------------------------------------------------- Redis connection loss

test('CLIENT KILL of the subscriber only: L1 distrusted, tracking re-pointed at the new subscriber', async (t) => {
  const K = 'kill.sub';
  await put(A, K, { value: 'before' });
  assert.equal((await getOk(B, K)).value, 'before');
  assert.equal((await getOk(B, K)).value, 'before'); // in L1
  const c0 = await waitTracking(B);
  const m0 = await cacheMetrics(B);
  // Kill B's subscriber and change the value in the same pipeline: Redis
  // runs both before B can reconnect, so B never hears of the change.
  const conn = await redis.client();
  const [kill, set] = await conn.pipeline([
    ['CLIENT', 'KILL', 'ID', c0.sub.id],
    ['SET', `configuration:${K}`, '"while-deaf"'],
  ]);
  conn.close();
  assert.equal(kill, 1);
  assert.equal(set, 'OK');
  const c1 = await waitTracking(B);
  assert.notEqual(c1.sub.id, c0.sub.id, 'B has a new subscriber');
  assert.equal(c1.cmd.redir, c1.sub.id, 'tracking redirects to the new subscriber');
  const r = await get(B, K);
  assert.equal(r.status, 200);
  assert.equal(r.json.value, 'while-deaf', `B served ${r.body} after its subscriber reconnected`);
  assert.equal(r.json.stale, undefined);
  const d = delta(m0, await cacheMetrics(B));
  assert.ok(d.flush >= 1, 'coordhub_config_invalidations_total{source="flush"} grew');
  // and tracking works again through the new subscriber
  assert.equal((await getOk(B, K)).value, 'while-deaf');
  await redis.command(['SET', `configuration:${K}`, '"after"']);
  const p = await pollAtOnce(B, K, (j) => j.value === 'after', 'a direct SET after the subscriber came back');
  t.diagnostic(`direct SET seen on B after ${p.ms.toFixed(1)} ms`);
});

test('CLIENT KILL of both connections with a change in between: the change is served, the watcher hears it once', async (t) => {
  const K = 'kill.both';
  await put(A, K, { value: 'before' });
  const ws = await watchNative(B, [K]);
  assert.equal((await getOk(B, K)).value, 'before');
  assert.equal((await getOk(B, K)).value, 'before');
  const c0 = await waitTracking(B);
  const mark = ws.mark();
  const conn = await redis.client();
  const replies = await conn.pipeline([
    ['CLIENT', 'KILL', 'ID', c0.sub.id],
    ['CLIENT', 'KILL', 'ID', c0.cmd.id],
    ['SET', `configuration:${K}`, '"while-deaf"'],
  ]);
  conn.close();
  assert.deepEqual(replies, [1, 1, 'OK']);
  const c1 = await waitTracking(B);
  assert.notEqual(c1.cmd.id, c0.cmd.id);
  const r = await get(B, K);
  assert.equal(r.json.value, 'while-deaf', `B served ${r.body} after reconnecting`);
  assert.equal(r.json.stale, undefined);
  // the watcher learns what changed while B was deaf
  const ev = await ws.waitFor((m) => m.event === 'config', EVENT_MS, 'the change made while deaf', mark);
  assert.deepEqual(ev.data, { key: K, value: 'while-deaf', version: 1 });
  // and hears later changes, once each
  await put(A, K, { value: 'later' });
  await ws.waitFor((m) => m.event === 'config' && m.data.value === 'later', EVENT_MS, 'a later change', mark);
  await sleep(QUIET_MS);
  assert.deepEqual(
    configEvents(ws, K, mark),
    [
      { key: K, value: 'while-deaf', version: 1 },
      { key: K, value: 'later', version: 2 },
    ],
    ws.summary(20),
  );
  await ws.close();
});

test('Redis restart: stale from L1 while down, 503 otherwise, writes 503; fresh after, tracking and watches back', async (t) => {
  const K = 'restart.k'; // read on B before the outage
  const K2 = 'restart.unread'; // exists, but never read on B
  await put(A, K, { value: 'v1', category: 'rs' });
  await put(A, K2, { value: 'u1' });
  const ws = await watchNative(B, [K]);
  assert.equal((await getOk(B, K)).value, 'v1');
  assert.equal((await getOk(A, K)).value, 'v1');
  // Make the restarted Redis come back with a value the hubs never heard
  // of: snapshot a changed value, then put the old one back (both hubs hear
  // those two SETs), read it on B (L1 = v1 again), then kill Redis. The
  // restart loads the snapshot: 'while-deaf'.
  const conn = await redis.client();
  await conn.pipeline([
    ['SET', `configuration:${K}`, '"while-deaf"', 'EX', '180'],
    ['SAVE'],
    ['SET', `configuration:${K}`, '"v1"', 'EX', '180'],
  ]);
  conn.close();
  await pollAtOnce(B, K, (j) => j.value === 'v1', 'B back on v1 before the outage');
  assert.equal((await getOk(B, K)).value, 'v1');
  await pollAtOnce(A, K, (j) => j.value === 'v1', 'A back on v1 before the outage');
  const mark = ws.mark();
  const mB0 = await cacheMetrics(B);
  const mA0 = await cacheMetrics(A);

  await redis.kill('SIGKILL');
  for (const h of [A, B]) {
    await waitUntil(async () => (await httpJson(`${h.url}/readyz`)).status === 503, {
      timeoutMs: 10000,
      what: `hub :${h.port} /readyz 503 while Redis is down`,
    });
  }
  // in L1, read within the TTL: served, marked stale
  const s = await get(B, K);
  assert.equal(s.status, 200, `GET of an L1 key while Redis is down: ${s.status} ${s.body}`);
  assert.deepEqual(s.json, { key: K, value: 'v1', version: 1, category: 'rs', stale: true });
  // not in L1: 503
  const u = await get(B, K2);
  assert.equal(u.status, 503, `GET of a key not in L1 while Redis is down: ${u.status} ${u.body}`);
  assert.equal(u.json.error.code, 'unavailable');
  assert.equal((await get(B, 'restart.never')).status, 503);
  assert.equal((await list(B, 'rs')).status, 503, 'a category not in L1 while down');
  // writes: 503 on both hubs
  for (const h of [A, B]) {
    const w = await put(h, K, { value: 'nope' }, { expect: null });
    assert.equal(w.status, 503, `PUT while Redis is down on :${h.port}: ${w.status} ${w.body}`);
    assert.equal(w.json.error.code, 'unavailable');
  }
  const dDown = delta(mB0, await cacheMetrics(B));
  assert.ok(dDown.stale >= 1, 'coordhub_config_stale_served_total grew');
  assert.ok(dDown.flush >= 1, 'coordhub_config_invalidations_total{source="flush"} grew on B');
  assert.ok((await cacheMetrics(A)).flush > mA0.flush, 'flush on A');
  assert.equal(ws.isClosed, false, 'the watcher stays connected while Redis is down');

  await redis.restart();
  assert.equal(await redis.command(['GET', `configuration:${K}`]), '"while-deaf"', 'the snapshot was loaded');
  for (const h of [A, B]) {
    await waitUntil(async () => (await httpJson(`${h.url}/readyz`)).status === 200, {
      timeoutMs: 15000,
      what: `hub :${h.port} /readyz 200 after the restart`,
    });
  }
  // The first GET after readiness is already fresh: L1 learnt v1 before the
  // outage and is never again served as fresh.
  for (const h of [B, A]) {
    const r = await get(h, K);
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { key: K, value: 'while-deaf', version: 1, category: 'rs' }, `hub :${h.port} after the restart`);
  }
  // tracking is back on both hubs
  const cB = await waitTracking(B);
  const cA = await waitTracking(A);
  t.diagnostic(`after the restart: B cmd flags=${cB.cmd.flags} redir=${cB.cmd.redir}; A cmd flags=${cA.cmd.flags}`);
  // the watcher hears the change made while deaf, then later ones (hub write, direct SET), once each
  await ws.waitFor((m) => m.event === 'config', EVENT_MS, 'the change found after the restart', mark);
  const w = await put(A, K, { value: 'v2' });
  assert.equal(w.json.version, 2);
  await ws.waitFor((m) => m.event === 'config' && m.data.value === 'v2', EVENT_MS, 'a hub write after the restart', mark);
  await redis.command(['SET', `configuration:${K}`, '"v2-direct"']);
  await ws.waitFor((m) => m.event === 'config' && m.data.value === 'v2-direct', EVENT_MS, 'a direct SET after the restart', mark);
  await pollAtOnce(B, K, (j) => j.value === 'v2-direct', 'B after a direct SET after the restart');
  await sleep(QUIET_MS);
  assert.deepEqual(
    configEvents(ws, K, mark),
    [
      { key: K, value: 'while-deaf', version: 1 },
      { key: K, value: 'v2', version: 2 },
      { key: K, value: 'v2-direct', version: 2 },
    ],
    ws.summary(20),
  );
  await ws.close();
});

test('metrics: every config series is exported', async () => {
  const s = await B.metrics();
  const has = (name, labels = {}) =>
    s.some((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  for (const tier of ['l1', 'l2', 'store']) assert.ok(has('coordhub_config_cache_hits_total', { tier }), `hits tier=${tier}`);
  for (const source of ['publish', 'tracking', 'flush']) {
    assert.ok(has('coordhub_config_invalidations_total', { source }), `invalidations source=${source}`);
  }
  for (const name of [
    'coordhub_config_cache_misses_total',
    'coordhub_config_stale_served_total',
    'coordhub_config_changes_total',
    'coordhub_config_writes_total',
    'coordhub_config_store_seconds_sum',
    'coordhub_config_store_seconds_count',
    'coordhub_config_tracking_errors_total',
  ]) {
    assert.ok(has(name), name);
  }
  const m = await cacheMetrics(B);
  for (const k of ['l1', 'l2', 'store', 'misses', 'stale', 'publish', 'tracking', 'flush', 'changes', 'writes', 'storeCount']) {
    assert.ok(m[k] > 0, `${k} is still 0 on B after this file's tests: ${JSON.stringify(m)}`);
  }
  assert.ok((await metric(B, 'coordhub_config_store_seconds_sum')) >= 0);
  assert.equal(m.trackingErrors, 0, 'no tracking errors');
});
