// Redis frozen (SIGSTOP for 6 s, then SIGCONT): its TCP sessions stay up,
// so only the hub's keepalive deadline (a round trip every second, dead
// after 3 s without an answer) can notice. /readyz must go 503 while it is
// frozen, the hub must reconnect after SIGCONT, and no HTTP request may
// wait for ever: lock acquires (plain and waiting), a config write, a
// reservation, made while Redis is frozen, all get an answer (503 or
// success) within a bound. WebSockets stay open and delivery resumes.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before } from 'node:test';
import { httpGet, httpJson, sleep, startHub, startRedis, test, userId, waitUntil } from './harness.mjs';

const FREEZE_MS = 6000;
const ANSWER_BOUND_MS = 10000; // every request made during the freeze
const DETECT_BOUND_MS = 5500; // keepalive: 1 s interval + 3 s deadline, with slack
const RECOVER_BOUND_MS = 4000; // after SIGCONT: backoff (cap 2.4 s) + connect

let redis;
let hub;
let frozen = false;
const tag = crypto.randomBytes(3).toString('hex');
const key = `faultsFreeze${tag}`;
const free = `faults:free:${tag}`;
const app = `faults${tag}`;
let frozenTestRan = false;

before(async () => {
  redis = await startRedis();
  hub = await startHub({ redisUrl: redis.url });
});

// Never leave a stopped Redis behind (cleanup would wait on it).
after(() => {
  if (frozen) process.kill(redis.pid, 'SIGCONT');
});

const svc = () => hub.token('faults-svc', ['service']);
const admin = () => hub.token('faults-admin', ['admin']);

// Issues a request and records when (and how) it was answered.
function timed(what, url, opts) {
  const t0 = Date.now();
  return httpJson(url, { timeoutMs: 30000, ...opts }).then(
    (r) => ({ what, status: r.status, code: r.json?.error?.code, ms: Date.now() - t0, body: r.body }),
    (e) => ({ what, status: null, error: e.message, ms: Date.now() - t0 }),
  );
}

test('SIGSTOP of Redis for 6 s: keepalive notices, every request is answered in bounded time, the hub recovers after SIGCONT', async (t) => {
  const U = userId();
  const ws = await hub.connect(U);
  const ops = await hub.connect(userId(), ['ops']);
  ops.send({ op: 'join', room: 'ops' });
  await ops.waitEvent('joined');

  // A lock held by someone else, for a waiter to queue behind.
  const held = `faults:held:${tag}`;
  const h = await httpJson(`${hub.url}/v1/locks/${held}`, { method: 'POST', token: svc(), body: { ttl_ms: 60000, wait_ms: 0, owner: 'holder' } });
  assert.equal(h.status, 200, h.body);
  // A config value to read (into L1) and to write during the freeze.
  assert.equal((await httpJson(`${hub.url}/v1/config/${key}`, { method: 'PUT', token: admin(), body: { value: 1, category: 'faults' } })).status, 200);
  assert.equal((await httpJson(`${hub.url}/v1/config/${key}`, { token: svc() })).status, 200);
  assert.equal((await httpGet(`${hub.url}/readyz`)).status, 200);

  // ---- freeze
  process.kill(redis.pid, 'SIGSTOP');
  frozen = true;
  const tStop = Date.now();
  // Should this test fail while Redis is stopped, wake it anyway (the
  // cleanup hooks stop the hub, which needs its Redis).
  setTimeout(() => {
    if (frozen) {
      process.kill(redis.pid, 'SIGCONT');
      frozen = false;
    }
  }, FREEZE_MS + 1000);
  const inFlight = [
    timed('lock acquire (wait_ms 0)', `${hub.url}/v1/locks/${free}`, { method: 'POST', token: svc(), body: { ttl_ms: 30000, wait_ms: 0, owner: 'a' } }),
    timed('lock acquire (wait_ms 20000, behind a holder)', `${hub.url}/v1/locks/${held}`, { method: 'POST', token: svc(), body: { ttl_ms: 30000, wait_ms: 20000, owner: 'w' } }),
    timed('lock read', `${hub.url}/v1/locks/${free}`, { token: svc() }),
    timed('config write', `${hub.url}/v1/config/${key}`, { method: 'PUT', token: admin(), body: { value: 2, category: 'faults' } }),
    timed('config read (in L1)', `${hub.url}/v1/config/${key}`, { token: svc() }),
    timed('config read (not cached)', `${hub.url}/v1/config/faultsNever${tag}`, { token: svc() }),
    timed('reservation', `${hub.url}/v1/reservations/${app}`, { method: 'POST', token: svc(), body: { assets: ['a1', 'a2'], ttl_s: 60, owner: 'o' } }),
    timed('reservation list', `${hub.url}/v1/reservations/${app}`, { token: svc() }),
  ];
  // /readyz goes 503 by the keepalive deadline.
  await waitUntil(async () => (await httpGet(`${hub.url}/readyz`, { timeoutMs: 3000 })).status === 503, {
    timeoutMs: FREEZE_MS - 500,
    intervalMs: 50,
    what: '/readyz 503 while Redis is frozen',
  });
  const detectMs = Date.now() - tStop;
  assert.equal((await httpGet(`${hub.url}/healthz`, { timeoutMs: 2000 })).status, 200, '/healthz while frozen');
  // Requests made once the hub knows: answered at once.
  const late = await Promise.all([
    timed('lock acquire after detection', `${hub.url}/v1/locks/${free}x`, { method: 'POST', token: svc(), body: { ttl_ms: 30000, wait_ms: 0 } }),
    timed('config write after detection', `${hub.url}/v1/config/${key}`, { method: 'PUT', token: admin(), body: { value: 3, category: 'faults' } }),
    timed('reservation after detection', `${hub.url}/v1/reservations/${app}`, { method: 'POST', token: svc(), body: { assets: ['b1'], ttl_s: 60, owner: 'o' } }),
  ]);
  const wait = FREEZE_MS - (Date.now() - tStop);
  if (wait > 0) await sleep(wait);

  // ---- thaw
  process.kill(redis.pid, 'SIGCONT');
  frozen = false;
  const tCont = Date.now();
  const answers = await Promise.all(inFlight);
  await waitUntil(async () => (await httpGet(`${hub.url}/readyz`, { timeoutMs: 3000 })).status === 200, {
    timeoutMs: 15000,
    intervalMs: 20,
    what: '/readyz 200 after SIGCONT',
  });
  const recoverMs = Date.now() - tCont;

  for (const a of [...answers, ...late]) {
    t.diagnostic(`${a.what}: ${a.status ?? a.error}${a.code ? ` ${a.code}` : ''} after ${a.ms} ms`);
  }
  t.diagnostic(`/readyz 503 ${detectMs} ms after SIGSTOP; 200 ${recoverMs} ms after SIGCONT`);

  for (const a of answers) {
    assert.ok(a.status !== null, `${a.what}: no answer (${a.error})`);
    assert.ok(a.ms <= ANSWER_BOUND_MS, `${a.what}: answered after ${a.ms} ms (bound ${ANSWER_BOUND_MS} ms)`);
    assert.ok([200, 404, 409, 503].includes(a.status), `${a.what}: ${a.status} ${a.body}`);
  }
  // A write cannot have succeeded against a frozen Redis.
  for (const a of answers.filter((x) => /acquire|write|reservation$/.test(x.what))) {
    assert.equal(a.status, 503, `${a.what}: expected 503 while Redis is frozen, got ${a.status} ${a.body}`);
  }
  for (const a of late) {
    assert.equal(a.status, 503, `${a.what}: ${a.status} ${a.body}`);
    assert.ok(a.ms < 1000, `${a.what}: took ${a.ms} ms although the hub knew Redis was gone`);
  }
  assert.ok(detectMs <= DETECT_BOUND_MS, `/readyz went 503 ${detectMs} ms after SIGSTOP (bound ${DETECT_BOUND_MS} ms)`);
  assert.ok(recoverMs <= RECOVER_BOUND_MS, `/readyz back to 200 ${recoverMs} ms after SIGCONT (bound ${RECOVER_BOUND_MS} ms)`);

  // WebSockets survived; delivery works; the API works again.
  assert.equal(ws.isClosed, false, `socket closed: ${JSON.stringify(ws.closeInfo)}`);
  assert.equal(ops.isClosed, false);
  const state = { steamId: U, token: 't', state: 'after-freeze', msg: '' };
  await redis.publish('tradestate', JSON.stringify(state));
  assert.deepEqual((await ws.waitEvent('tradestate', 5000)).data, state);
  await redis.publish('steamDown', 'after-freeze');
  await ops.waitEvent('steamDown', 5000);
  const lk = await httpJson(`${hub.url}/v1/locks/faults:post:${tag}`, { method: 'POST', token: svc(), body: { ttl_ms: 5000, wait_ms: 0 } });
  assert.equal(lk.status, 200, lk.body);
  const cw = await httpJson(`${hub.url}/v1/config/${key}other`, { method: 'PUT', token: admin(), body: { value: 4, category: 'faults' } });
  assert.equal(cw.status, 200, cw.body);
  const rv = await httpJson(`${hub.url}/v1/reservations/${app}post`, { method: 'POST', token: svc(), body: { assets: ['c1'], ttl_s: 60, owner: 'o' } });
  assert.equal(rv.status, 200, rv.body);
  assert.ok((await hub.metric('coordhub_redis_reconnects_total')) >= 1);
  frozenTestRan = true;
});

test('after the freeze, what the hub serves for the key written during it matches the source of truth', async (t) => {
  assert.ok(frozenTestRan, 'the freeze test did not complete');
  // The writes answered 503 were queued on the dead connection: did Redis run
  // them when it woke? (An answer of 503 then means "unknown", not "not
  // done".) Reported, not failed on: SPEC §8 asks for 503, which they got.
  const ghostLock = await httpJson(`${hub.url}/v1/locks/${free}`, { token: svc() });
  const ghostResv = await httpJson(`${hub.url}/v1/reservations/${app}`, { token: svc() });
  const ghostCfg = await httpJson(`${hub.url}/v1/config/${key}`, { token: svc() });
  const storeDoc = JSON.parse((await redis.command(['HGET', 'configuration-store', key])) || 'null');
  const l2 = await redis.command(['GET', `configuration:${key}`]);
  t.diagnostic(
    `after SIGCONT, effects of the writes answered 503: lock ${free} held=${ghostLock.json?.held}; ` +
      `reservations ${JSON.stringify((ghostResv.json?.assets || []).map((a) => a.asset))}; ` +
      `config ${key}: served ${JSON.stringify(ghostCfg.json?.value)} v${ghostCfg.json?.version}, ` +
      `store ${JSON.stringify(storeDoc?.value)} v${storeDoc?.version}, L2 ${l2}`,
  );
  // Whatever happened to the interrupted write, the hub must not serve a
  // (value, version) pair the source of truth does not hold (SPEC §7: no
  // stale value after a write).
  assert.equal(ghostCfg.status, 200, ghostCfg.body);
  assert.deepEqual(
    { value: ghostCfg.json.value, version: ghostCfg.json.version },
    { value: storeDoc.value, version: storeDoc.version },
    'config served after the freeze differs from the source of truth (configuration-store)',
  );
});
