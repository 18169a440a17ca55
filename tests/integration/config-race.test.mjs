// The configuration cache's races, forced (SPEC §7; cache/cache.c "The
// in-flight race"): an invalidation that reaches a hub while one of its
// fetches is in flight must keep that fetch's (possibly old) answer out of
// L1, and no hub may serve the old value once the invalidation has been
// handled.
//
// How the race is forced. Hub B talks to Redis through a small proxy in this
// file that understands RESP. Armed for one command (say `GET
// configuration:k` on B's command connection), it forwards the command, so
// Redis runs it at once against the OLD value, and then holds back the bytes
// Redis sends B on that connection. B's subscriber connection is not held,
// so meanwhile the test changes the key (a direct SET, or a PUT through hub
// A) and waits until B's /metrics count the invalidation: B's event loop has
// handled it, with the fetch still waiting for its reply. Only then is the
// reply released. That is an invalidation between the fetch's request and
// its reply, every time, with no sleeps: a hub that cached the reply would
// serve the old value from L1 from then on.
//
// Neither CLIENT PAUSE nor a busy Lua script can do this deterministically:
// both stop the write that causes the invalidation as well (PAUSE WRITE
// holds every write, PUBLISH and EVAL included; a script blocks the whole
// server), and which of two queued clients Redis then serves first is up to
// its event loop. The busy-script variant is still run below as the
// unforced, natural race (50 rounds, no stale value may follow the
// invalidation either way), alongside the forced ones.
//
// The same proxy can hold a command on its way TO Redis, which forces the
// other window this file checks: a fill of L2 (SET configuration:<key>, SET
// configurationCategory:<cat>:0) decided on an old read and landing after a
// newer write.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before } from 'node:test';
import { freePort, httpJson, keepAliveAgent, sleep, startHub, startRedis, test, waitUntil, withTimeout } from './harness.mjs';

const ROUNDS = Number(process.env.COORDHUB_RACE_ROUNDS || 50);
const EVENT_MS = 5000;

// ---------------------------------------------------------------- RESP proxy

// The end offset of the RESP2 value at `off`, or -1 when incomplete.
function respSkip(buf, off) {
  if (off >= buf.length) return -1;
  const nl = buf.indexOf('\r\n', off);
  if (nl < 0) return -1;
  const type = String.fromCharCode(buf[off]);
  const n = Number(buf.toString('latin1', off + 1, nl));
  let p = nl + 2;
  switch (type) {
    case '+':
    case '-':
    case ':':
      return p;
    case '$':
      if (n < 0) return p;
      return buf.length >= p + n + 2 ? p + n + 2 : -1;
    case '*':
      if (n < 0) return p;
      for (let i = 0; i < n; i++) {
        p = respSkip(buf, p);
        if (p < 0) return -1;
      }
      return p;
    default:
      throw new Error(`proxy: bad RESP type byte ${JSON.stringify(type)} at ${off}`);
  }
}

// One command (an array of bulk strings) at `off`: {args, next} or null.
function respCommand(buf, off) {
  const end = respSkip(buf, off);
  if (end < 0) return null;
  const args = [];
  let p = buf.indexOf('\r\n', off) + 2;
  while (p < end) {
    const nl = buf.indexOf('\r\n', p);
    const n = Number(buf.toString('latin1', p + 1, nl));
    args.push(buf.toString('utf8', nl + 2, nl + 2 + n));
    p = nl + 2 + n + 2;
  }
  return { args, next: end };
}

// A TCP proxy to Redis for one hub. Transparent until armed by hold():
//   hold('replies', match): when a command matching match(args, conn) goes
//     to Redis, everything Redis sends back on that connection from then on
//     is held;
//   hold('command', match): the matching command itself, and whatever the
//     hub sends after it on that connection, is held on its way to Redis.
// Each hold fires once; release() lets the held bytes through, in order.
// conn.name is the CLIENT SETNAME the hub gave (coordhub-cmd, coordhub-sub).
class RedisProxy {
  constructor(upstreamPort) {
    this.upstreamPort = upstreamPort;
    this.conns = new Set();
    this.holds = [];
  }

  async listen() {
    this.port = await freePort();
    this.server = net.createServer((s) => this._accept(s));
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.port, '127.0.0.1', resolve);
    });
    this.server.unref();
    return this;
  }

  get url() {
    return `redis://127.0.0.1:${this.port}/0`;
  }

  _accept(client) {
    const up = net.connect({ host: '127.0.0.1', port: this.upstreamPort });
    const c = { client, up, name: '', inbuf: Buffer.alloc(0), heldUp: null, heldDown: null };
    client.setNoDelay(true);
    up.setNoDelay(true);
    client.unref();
    up.unref();
    this.conns.add(c);
    client.on('data', (d) => this._fromHub(c, d));
    up.on('data', (d) => {
      if (c.heldDown) c.heldDown.push(d);
      else client.write(d);
    });
    const close = () => {
      this.conns.delete(c);
      client.destroy();
      up.destroy();
    };
    for (const s of [client, up]) {
      s.on('close', close);
      s.on('error', close);
    }
  }

  _fromHub(c, d) {
    c.inbuf = c.inbuf.length ? Buffer.concat([c.inbuf, d]) : d;
    let off = 0;
    for (;;) {
      const r = respCommand(c.inbuf, off);
      if (!r) break;
      const bytes = Buffer.from(c.inbuf.subarray(off, r.next));
      off = r.next;
      const { args } = r;
      if (args.length >= 3 && /^client$/i.test(args[0]) && /^setname$/i.test(args[1])) c.name = args[2];
      if (c.heldUp) {
        c.heldUp.push(bytes);
        continue;
      }
      const h = this.holds.find((x) => !x.fired && x.match(args, c));
      if (h) {
        h.fired = true;
        h.conn = c;
        h.args = args;
      }
      if (h && h.kind === 'command') {
        c.heldUp = [bytes];
        h.engage();
        continue;
      }
      c.up.write(bytes);
      if (h) {
        c.heldDown = c.heldDown || [];
        h.engage();
      }
    }
    c.inbuf = c.inbuf.subarray(off);
  }

  hold(kind, match) {
    let engage;
    const engaged = new Promise((resolve) => (engage = resolve));
    const h = {
      kind,
      match,
      fired: false,
      engage: () => engage(h.conn),
      engaged,
      // complete replies held so far (kind 'replies')
      heldReplies() {
        const held = h.conn && h.conn.heldDown ? Buffer.concat(h.conn.heldDown) : Buffer.alloc(0);
        let n = 0;
        for (let p = 0; (p = respSkip(held, p)) >= 0; ) n++;
        return n;
      },
      release() {
        const c = h.conn;
        this.released = true;
        if (!c) return;
        if (kind === 'replies' && c.heldDown) {
          const held = c.heldDown;
          c.heldDown = null;
          for (const b of held) c.client.write(b);
        } else if (kind === 'command' && c.heldUp) {
          const held = c.heldUp;
          c.heldUp = null;
          for (const b of held) c.up.write(b);
        }
      },
      cancel() {
        h.fired = true;
        if (h.conn) h.release();
      },
    };
    this.holds.push(h);
    return h;
  }

  // Holds, from now on, what Redis sends the hub on its connection named
  // `name` (e.g. coordhub-sub: the pub/sub and tracking messages).
  holdConnection(name) {
    const c = [...this.conns].find((x) => x.name === name);
    if (!c) throw new Error(`proxy: no connection named ${name}`);
    c.heldDown = c.heldDown || [];
    const h = { kind: 'replies', conn: c, fired: true, released: false };
    h.release = () => {
      h.released = true;
      const held = c.heldDown;
      c.heldDown = null;
      for (const b of held || []) c.client.write(b);
    };
    this.holds.push(h);
    return h;
  }

  close() {
    for (const h of this.holds) if (h.conn && !h.released) h.release();
    for (const c of this.conns) {
      c.client.destroy();
      c.up.destroy();
    }
    this.server.close();
  }
}

const isCmd = (args, c, name, ...rest) =>
  c.name === 'coordhub-cmd' && args[0].toUpperCase() === name && rest.every((r, i) => args[i + 1] === r);

// ---------------------------------------------------------------- setup

let redis;
let A; // direct to Redis
let B; // through proxyB
let proxyB;
let C; // through proxyC (for the write-window observation)
let proxyC;
const agents = new Map();

before(async () => {
  redis = await startRedis();
  proxyB = await new RedisProxy(redis.port).listen();
  proxyC = await new RedisProxy(redis.port).listen();
  A = await startHub({ redisUrl: redis.url });
  B = await startHub({ redisUrl: proxyB.url });
  C = await startHub({ redisUrl: proxyC.url });
  for (const h of [A, B, C]) agents.set(h, keepAliveAgent());
});
after(() => {
  // the harness's cleanup (registered first) has stopped the hubs by now
  proxyB.close();
  proxyC.close();
});

const get = (h, key, opts = {}) =>
  httpJson(`${h.url}/v1/config/${key}`, { token: h.token('reader'), agent: agents.get(h), timeoutMs: 10000, ...opts });
async function put(h, key, body) {
  const r = await httpJson(`${h.url}/v1/config/${key}`, { method: 'PUT', token: h.token('admin', ['admin']), body, agent: agents.get(h) });
  assert.equal(r.status, 200, `PUT ${key} on :${h.port}: ${r.status} ${r.body}`);
  return r.json;
}
async function counters(h) {
  const s = await h.metrics();
  const m = (name, labels = {}) =>
    s.filter((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v)).reduce((a, x) => a + x.value, 0);
  return {
    l1: m('coordhub_config_cache_hits_total', { tier: 'l1' }),
    misses: m('coordhub_config_cache_misses_total'),
    publish: m('coordhub_config_invalidations_total', { source: 'publish' }),
    tracking: m('coordhub_config_invalidations_total', { source: 'tracking' }),
    changes: m('coordhub_config_changes_total'),
  };
}
// Waits until hub h has handled at least `n` more invalidations of `source` than `base`.
const handled = (h, source, base, n = 1, what = `${source} invalidation`) =>
  waitUntil(async () => (await counters(h))[source] >= base[source] + n, { timeoutMs: EVENT_MS, intervalMs: 5, what: `hub :${h.port} to handle ${what}` });
// Waits until hub h's invalidation counters are still (the notifications of earlier writes are in).
async function settled(h) {
  let last = '';
  await waitUntil(
    async () => {
      const m = await counters(h);
      const now = `${m.publish}/${m.tracking}`;
      const same = now === last;
      last = now;
      return same;
    },
    { timeoutMs: 5000, intervalMs: 40, what: `hub :${h.port} to settle` },
  );
}

// Holds the replies to B's next `GET configuration:<key>` and waits until
// Redis has answered both halves of the fetch (L2 GET and store HGET): the
// old value is in the held bytes.
async function holdFetch(h, proxy, key) {
  const hold = proxy.hold('replies', (args, c) => isCmd(args, c, 'GET', `configuration:${key}`));
  return {
    hold,
    async engaged() {
      await withTimeout(hold.engaged, EVENT_MS, `hub :${h.port} to send GET configuration:${key}`);
      await waitUntil(() => hold.heldReplies() >= 2, { timeoutMs: EVENT_MS, intervalMs: 2, what: 'Redis to answer the held fetch' });
    },
  };
}

// ---------------------------------------------------------------- forced: one invalidation

test(`forced, ${ROUNDS} rounds: a direct SET (tracking) overtakes B's GET reply; the old reply is never served or cached`, async (t) => {
  for (let i = 0; i < ROUNDS; i++) {
    const key = `race.trk.${i}`;
    const base0 = await counters(B);
    await put(A, key, { value: `old-${i}` });
    await handled(B, 'publish', base0, 1, 'the seed write (publish)');
    await handled(B, 'tracking', base0, 1, 'the seed write (tracking)');
    const m0 = await counters(B);

    const f = await holdFetch(B, proxyB, key);
    const pending = get(B, key);
    await f.engaged();
    // the change, with B's fetch in flight and its old answer held
    assert.equal(await redis.command(['SET', `configuration:${key}`, JSON.stringify(`new-${i}`)]), 'OK');
    await handled(B, 'tracking', m0, 1, 'the direct SET');
    f.hold.release();

    const first = await pending;
    assert.equal(first.status, 200, first.body);
    assert.equal(first.json.value, `new-${i}`, `round ${i}: B answered ${first.body} although the invalidation had been handled before the reply came`);
    const second = await get(B, key);
    assert.equal(second.json.value, `new-${i}`, `round ${i}: the next GET on B: ${second.body}`);
    const d = await counters(B);
    // one fetch, overtaken, retried once; then an L1 hit of the NEW value
    assert.equal(d.misses - m0.misses, 2, `round ${i}: fetches`);
    assert.equal(d.l1 - m0.l1, 1, `round ${i}: L1 hits`);
  }
  t.diagnostic(`${ROUNDS} rounds: the overtaken reply was dropped and re-read every time`);
});

test(`forced, ${ROUNDS} rounds: a PUT through hub A (publish + tracking) overtakes B's GET reply`, async () => {
  for (let i = 0; i < ROUNDS; i++) {
    const key = `race.pub.${i}`;
    const base0 = await counters(B);
    await put(A, key, { value: `old-${i}`, category: 'race' });
    await handled(B, 'publish', base0, 1, 'the seed write (publish)');
    await handled(B, 'tracking', base0, 1, 'the seed write (tracking)');
    const m0 = await counters(B);

    const f = await holdFetch(B, proxyB, key);
    const pending = get(B, key);
    await f.engaged();
    const w = await put(A, key, { value: `new-${i}` });
    assert.equal(w.version, 2);
    await handled(B, 'publish', m0, 1, "A's write (publish)");
    await handled(B, 'tracking', m0, 1, "A's write (tracking)");
    f.hold.release();

    const first = await pending;
    assert.deepEqual(first.json, { key, value: `new-${i}`, version: 2, category: 'race' }, `round ${i}: the overtaken GET on B`);
    const second = await get(B, key);
    assert.deepEqual(second.json, { key, value: `new-${i}`, version: 2, category: 'race' }, `round ${i}: the next GET on B`);
    const d = await counters(B);
    assert.equal(d.misses - m0.misses, 2, `round ${i}: fetches`);
    assert.equal(d.l1 - m0.l1, 1, `round ${i}: L1 hits`);
  }
});

// ---------------------------------------------------------------- forced: the writer's own notice late

test("forced: the writing hub's own publish arrives after its PUT answer; its next GET still serves the new value", async () => {
  // B hears its own writes only through its publish (tracking is NOLOOP):
  // hold B's subscriber connection, so the publish is late, as it sometimes
  // is by itself (config.test.mjs "read your own write" catches that).
  const key = 'race.ryow';
  await put(B, key, { value: 'r1' });
  assert.equal((await get(B, key)).json.value, 'r1');
  assert.equal((await get(B, key)).json.value, 'r1'); // in B's L1
  const sub = proxyB.holdConnection('coordhub-sub');
  let r;
  try {
    const w = await put(B, key, { value: 'r2' });
    assert.equal(w.version, 2);
    r = await get(B, key);
  } finally {
    sub.release();
  }
  assert.deepEqual(r.json, { key, value: 'r2', version: 2, category: '' }, 'the GET on the writing hub right after its PUT answered version 2');
});

// ---------------------------------------------------------------- forced: overtaken twice

test('forced: a GET overtaken twice (during its fetch and during the retry) does not answer the value the second change replaced', async () => {
  const key = 'race.twice.get';
  const base0 = await counters(B);
  await put(A, key, { value: 'v1' });
  await handled(B, 'publish', base0);
  await handled(B, 'tracking', base0);
  const m0 = await counters(B);

  const f1 = await holdFetch(B, proxyB, key);
  const pending = get(B, key);
  await f1.engaged();
  await redis.command(['SET', `configuration:${key}`, '"v2"']);
  await handled(B, 'tracking', m0, 1, 'the first change');
  const m1 = await counters(B);
  const f2 = await holdFetch(B, proxyB, key); // the retry's fetch
  f1.hold.release();
  await f2.engaged(); // the retry read v2 ...
  await redis.command(['SET', `configuration:${key}`, '"v3"']); // ... and v3 replaces it meanwhile
  await handled(B, 'tracking', m1, 1, 'the second change');
  f2.hold.release();

  const first = await pending;
  const second = await get(B, key);
  assert.equal(second.json.value, 'v3', `the next GET on B: ${second.body} (L1 must not hold the twice-overtaken answer)`);
  assert.equal(
    first.json.value,
    'v3',
    `the GET answered ${first.body} after B had handled the invalidation of v2 (by v3): the retried fetch was overtaken again and its answer served`,
  );
});

test('forced: a watcher whose re-read is overtaken twice still gets the last change', async () => {
  const key = 'race.twice.watch';
  await put(A, key, { value: 'w1' });
  const ws = await B.connect('race-watcher');
  ws.send({ op: 'config.watch', keys: [key] });
  await ws.waitEvent('watching', EVENT_MS);
  assert.equal((await get(B, key)).json.value, 'w1'); // the watch's baseline is in
  await settled(B);
  const mark = ws.mark();
  const m0 = await counters(B);

  // A's write w2: B's publish starts a re-read (held); the tracking message
  // of the same write then overtakes it: retried once.
  const f1 = await holdFetch(B, proxyB, key);
  await put(A, key, { value: 'w2' });
  await f1.engaged();
  await handled(B, 'publish', m0, 1, 'w2 (publish)');
  await handled(B, 'tracking', m0, 1, 'w2 (tracking)');
  const m1 = await counters(B);
  const f2 = await holdFetch(B, proxyB, key);
  f1.hold.release();
  await f2.engaged(); // the retry read w2 ...
  await put(A, key, { value: 'w3' }); // ... and w3 replaces it meanwhile
  await handled(B, 'publish', m1, 1, 'w3 (publish)');
  await handled(B, 'tracking', m1, 1, 'w3 (tracking)');
  f2.hold.release();

  // whatever came in between, the last event must be w3, version 3
  await waitUntil(() => ws.messages.slice(mark).some((m) => m.event === 'config' && m.data.value === 'w3'), {
    timeoutMs: 3000,
    intervalMs: 10,
    what: 'the config event for w3',
  }).catch(async (e) => {
    throw new Error(
      `the watcher on B never heard of w3: ${e.message}; events since the writes: ${JSON.stringify(ws.messages.slice(mark))}; ` +
        `GET on B now answers ${(await get(B, key)).body}`,
    );
  });
  await sleep(500);
  const evs = ws.messages.slice(mark).filter((m) => m.event === 'config').map((m) => m.data);
  assert.deepEqual(evs.at(-1), { key, value: 'w3', version: 3 });
  await ws.close();
});

// ---------------------------------------------------------------- forced: late L2 fills

test('forced: an L2 fill decided on an old store read does not overwrite a newer write (SET configuration:<key>)', async () => {
  const key = 'race.fill';
  await put(A, key, { value: 'f1' });
  await redis.command(['DEL', `configuration:${key}`]); // L2 expired, say: the next read fills it
  await settled(B);
  const m0 = await counters(B);
  // B's read finds L2 empty, takes f1 from the store, answers, and sends
  // SET configuration:<key> f1: held on its way to Redis ...
  const fill = proxyB.hold('command', (args, c) => isCmd(args, c, 'SET', `configuration:${key}`));
  const r = await get(B, key);
  assert.equal(r.json.value, 'f1');
  await withTimeout(fill.engaged, EVENT_MS, "B's L2 fill");
  // ... while A writes f2 (store, L2, publish) and B hears of it
  const w = await put(A, key, { value: 'f2' });
  assert.equal(w.version, 2);
  await handled(B, 'publish', m0, 1, "A's write");
  fill.release();
  // B's connection is in order: once B answers a later fetch, the fill has run
  await get(B, 'race.fill.barrier');
  const l2 = await redis.command(['GET', `configuration:${key}`]);
  const onA = (await get(A, key)).json;
  const onB = (await get(B, key)).json;
  assert.equal(
    l2,
    '"f2"',
    `L2 configuration:${key} is ${l2} after the acknowledged write of f2: B's late fill of f1 overwrote it ` +
      `(TTL ${await redis.command(['TTL', `configuration:${key}`])} s); hub A now serves ${JSON.stringify(onA)}, hub B ${JSON.stringify(onB)}`,
  );
  assert.deepEqual(onB, { key, value: 'f2', version: 2, category: '' }, 'B after the late fill');
  assert.deepEqual(onA, { key, value: 'f2', version: 2, category: '' }, 'A after the late fill');
});

test('forced: a category bundle filled from an old list does not outlive a newer write (SET configurationCategory:<cat>:0)', async () => {
  await put(A, 'race.cat.k', { value: 'c1', category: 'racecat' });
  await settled(B);
  const m0 = await counters(B);
  // The fill: a plain SET of the bundle, or a script that sets it (the hub
  // guards it with the category's generation) -- not a write, which also
  // names configuration:<key>.
  const fill = proxyB.hold(
    'command',
    (args, c) =>
      isCmd(args, c, 'SET', 'configurationCategory:racecat:0') ||
      (c.name === 'coordhub-cmd' &&
        /^EVAL(SHA)?$/i.test(args[0]) &&
        args.includes('configurationCategory:racecat:0') &&
        !args.some((a) => a.startsWith('configuration:'))),
  );
  const r = await httpJson(`${B.url}/v1/config?category=racecat`, { token: B.token('reader') });
  assert.deepEqual(r.json.items, [{ key: 'race.cat.k', value: 'c1', version: 1 }]);
  await withTimeout(fill.engaged, EVENT_MS, "B's bundle fill");
  await put(A, 'race.cat.k', { value: 'c2' }); // DELs the bundle, publishes
  await handled(B, 'publish', m0, 1, "A's write");
  fill.release();
  await get(B, 'race.cat.barrier');
  const bundle = await redis.command(['GET', 'configurationCategory:racecat:0']);
  assert.ok(
    bundle === null || JSON.parse(bundle).every((it) => it.key !== 'race.cat.k' || it.value === 'c2'),
    `L2 configurationCategory:racecat:0 is ${bundle} after the acknowledged write of c2 (TTL ${await redis.command(['TTL', 'configurationCategory:racecat:0'])} s)`,
  );
  const l = await httpJson(`${B.url}/v1/config?category=racecat`, { token: B.token('reader') });
  assert.deepEqual(l.json.items, [{ key: 'race.cat.k', value: 'c2', version: 2 }], 'the hub lists from the store');
});

// ---------------------------------------------------------------- observed: the write window

test('a held write is whole or absent: another hub serves the old (value, version) pair until it runs, then the new one', async () => {
  // With the embedded store the write is one Lua script (store, L2, bundles,
  // publish), so there is no window where the store has the new version and
  // L2 the old value. Hub C's write is held on its way to Redis; meanwhile A
  // must serve the old pair exactly, and the new pair once it is answered.
  const key = 'race.window';
  await put(C, key, { value: 'p1' });
  await settled(A);
  const held = proxyC.hold('command', (args, c) => c.name === 'coordhub-cmd' && /^EVAL(SHA)?$/i.test(args[0]) && args.includes(`configuration:${key}`));
  const pendingPut = put(C, key, { value: 'p2' });
  await withTimeout(held.engaged, EVENT_MS, "C's write");
  assert.equal(JSON.parse(await redis.command(['HGET', 'configuration-store', key])).version, 1, 'nothing of the held write has happened');
  assert.deepEqual((await get(A, key)).json, { key, value: 'p1', version: 1, category: '' }, 'A during the held write');
  held.release();
  const w = await pendingPut;
  assert.equal(w.version, 2);
  await waitUntil(async () => (await get(A, key)).json.value === 'p2', { timeoutMs: 2000, intervalMs: 2, what: 'A to serve p2' });
  assert.deepEqual((await get(A, key)).json, { key, value: 'p2', version: 2, category: '' });
  assert.deepEqual((await get(B, key)).json, { key, value: 'p2', version: 2, category: '' });
});

// ---------------------------------------------------------------- natural: a busy Redis

test(`natural, ${ROUNDS} rounds: GET and a direct SET queued behind a busy Lua script; nothing stale once the invalidation is handled`, async (t) => {
  // A (no proxy) sends its fetch while Redis runs a 100 ms script on another
  // connection; the SET is queued after it. Redis then serves both, and A
  // gets the reply and the invalidation in whichever order: both orders
  // must end with the new value.
  const busy = await redis.client();
  const setter = await redis.client();
  const script =
    'local t0 = redis.call("TIME") local s = t0[1] * 1000000 + t0[2] ' +
    'repeat local t = redis.call("TIME") until t[1] * 1000000 + t[2] - s >= tonumber(ARGV[1]) * 1000 return 1';
  let oldFirst = 0;
  let retried = 0;
  for (let i = 0; i < ROUNDS; i++) {
    const key = `race.busy.${i}`;
    const base0 = await counters(A);
    await put(B, key, { value: `old-${i}` });
    await handled(A, 'publish', base0);
    await handled(A, 'tracking', base0);
    const m0 = await counters(A);
    const slow = busy.command(['EVAL', script, '0', '100'], { timeoutMs: 10000 });
    await sleep(10); // the script is running
    const pending = get(A, key);
    await sleep(10); // A's fetch is queued at Redis
    const set = setter.command(['SET', `configuration:${key}`, JSON.stringify(`new-${i}`)], { timeoutMs: 10000 });
    await slow;
    await set;
    const first = await pending;
    assert.equal(first.status, 200, first.body);
    assert.ok([`old-${i}`, `new-${i}`].includes(first.json.value), first.body);
    if (first.json.value === `old-${i}`) oldFirst++;
    if ((await counters(A)).misses - m0.misses >= 2) retried++; // the GET's fetch was overtaken
    await handled(A, 'tracking', m0, 1, 'the direct SET');
    const after1 = await get(A, key);
    assert.equal(after1.json.value, `new-${i}`, `round ${i}: after the invalidation was handled A answered ${after1.body}`);
  }
  busy.close();
  setter.close();
  t.diagnostic(`${ROUNDS} rounds: the GET (issued before the SET) answered the old value ${oldFirst} times; the fetch was overtaken and retried ${retried} times`);
});
