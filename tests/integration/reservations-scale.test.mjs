// Reserved assets at scale (SPEC §6, issue 5): 5000 reservations in one app,
// made in five POSTs of 1000, list in one GET, complete and sorted by
// expiry, quickly, with a handful of Redis commands (not one per asset:
// counted from INFO stats/commandstats around the GET, Lua-internal calls
// included). A 1000-asset reserve that collides on one asset writes
// nothing; 1000 assets expiring together are swept with one publish.
import assert from 'node:assert/strict';
import { before } from 'node:test';
import { httpJson, keepAliveAgent, pubsubRecorder, startHub, startRedis, test } from './harness.mjs';

let redis;
let hub;
let agent;
let rc;
let sub;

before(async () => {
  redis = await startRedis();
  hub = await startHub({ redisUrl: redis.url });
  agent = keepAliveAgent();
  rc = await redis.client();
  sub = await pubsubRecorder(redis.port, ['itemReserved']);
});

const IDX = (app) => `reserved:{${app}}`;
const svc = () => hub.token('svc-scale', ['service'], 3600);
const show = (r) => `HTTP ${r.status} ${r.body.slice(0, 300)}`;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function api(method, seg, body, { timeoutMs = 30000 } = {}) {
  return httpJson(`${hub.url}/v1/reservations/${seg}`, { method, body, token: svc(), agent, timeoutMs });
}

// INFO stats + commandstats in one call: {total, calls: {cmd: n}}.
async function commandCounts() {
  const text = await rc.command(['INFO', 'stats', 'commandstats']);
  const total = Number(/total_commands_processed:(\d+)/.exec(text)[1]);
  const calls = {};
  for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls[m[1]] = Number(m[2]);
  return { total, calls };
}

function diffCalls(a, b) {
  const out = {};
  for (const [k, v] of Object.entries(b.calls)) if (v - (a.calls[k] || 0)) out[k] = v - (a.calls[k] || 0);
  return out;
}

const N = 5000;
const PER = 1000;
const APP = 'scale';
const batches = []; // {assets, owner, expires_at_ms}

test(`${N} reservations in one app (POSTs of ${PER}) list in one GET: complete, sorted, fast, a handful of Redis commands`, async () => {
  const postMs = [];
  for (let b = 0; b < N / PER; b++) {
    const assets = Array.from({ length: PER }, (_, i) => `asset-${b}-${String(i).padStart(4, '0')}.x`);
    const owner = `batch-${b}`;
    // Later batches expire earlier: the listing has to sort, not echo insertion order.
    const ttl_s = 7200 - b * 60;
    const r = await api('POST', APP, { assets, ttl_s, owner });
    postMs.push(r.ms);
    assert.equal(r.status, 200, `POST batch ${b}: ${show(r)}`);
    assert.equal(r.json.reserved.length, PER);
    batches.push({ assets, owner, expires_at_ms: r.json.expires_at_ms });
  }
  console.log(`# ${N / PER} POSTs of ${PER}: ${postMs.map((x) => x.toFixed(1)).join(' ')} ms`);
  assert.equal(await rc.command(['ZCARD', IDX(APP)]), N);
  const dbsize = await rc.command(['DBSIZE']);
  assert.ok(dbsize >= N + 1, `DBSIZE ${dbsize}: one key per reservation plus the index`);

  await api('GET', APP); // warm-up (script load, connection)
  const c0 = await commandCounts();
  const g = await api('GET', APP);
  const c1 = await commandCounts();
  assert.equal(g.status, 200, `GET: ${show(g)}`);
  const used = c1.total - c0.total - 1; // less the first INFO
  const byCmd = diffCalls(c0, c1);
  delete byCmd.info;
  console.log(`# GET of ${N}: ${g.ms.toFixed(1)} ms, ${g.body.length} bytes; Redis commands during it: ${used} ${JSON.stringify(byCmd)}`);
  assert.ok(used <= 20, `the GET of ${N} reservations cost ${used} Redis commands (Lua-internal included): ${JSON.stringify(byCmd)}; expected a handful`);

  const l = g.json.assets;
  assert.equal(l.length, N, `all ${N} listed in one answer`);
  const want = new Map();
  for (const b of batches) for (const a of b.assets) want.set(a, b);
  const seen = new Set();
  for (let i = 0; i < l.length; i++) {
    const e = l[i];
    const b = want.get(e.asset);
    assert.ok(b, `listed an asset never reserved: ${JSON.stringify(e)}`);
    assert.ok(!seen.has(e.asset), `listed twice: ${e.asset}`);
    seen.add(e.asset);
    assert.deepEqual(e, { asset: e.asset, owner: b.owner, expires_at_ms: b.expires_at_ms }, `entry ${i}`);
    if (i) assert.ok(l[i - 1].expires_at_ms <= e.expires_at_ms, `not sorted by expires_at_ms at ${i}`);
  }
  assert.equal(l[0].owner, `batch-${N / PER - 1}`, 'the last batch expires first');

  const times = [];
  for (let i = 0; i < 5; i++) {
    const r = await api('GET', APP);
    assert.equal(r.status, 200);
    assert.equal(r.json.assets.length, N);
    times.push(r.ms);
  }
  console.log(`# 5 more GETs of ${N}: ${times.map((x) => x.toFixed(1)).join(' ')} ms (median ${median(times).toFixed(1)})`);
  assert.ok(g.ms < 5000 && median(times) < 5000, `listing ${N} took ${g.ms.toFixed(0)} ms / median ${median(times).toFixed(0)} ms (bound 5000)`);
});

test(`a ${PER}-asset reserve colliding on one held asset writes nothing and names it; one of ${PER} held names all; release one of ${N}`, async () => {
  const m0 = await sub.settledMark();
  const z0 = await rc.command(['ZCARD', IDX(APP)]);
  const held = batches[2].assets[517];
  const fresh = Array.from({ length: PER - 1 }, (_, i) => `fresh-${i}`);
  const assets = [...fresh.slice(0, 400), held, ...fresh.slice(400)];
  const r = await api('POST', APP, { assets, ttl_s: 60 });
  assert.equal(r.status, 409, `collision on ${held}: ${show(r)}`);
  assert.equal(r.json.error.code, 'already_reserved');
  assert.deepEqual(r.json.error.assets, [held]);
  assert.equal(await rc.command(['ZCARD', IDX(APP)]), z0, 'nothing added to the index');
  assert.equal(await rc.command(['EXISTS', ...fresh.slice(0, 50).map((a) => `${IDX(APP)}:${a}`)]), 0, 'no fresh key written');

  const all = await api('POST', APP, { assets: batches[0].assets, ttl_s: 60 });
  assert.equal(all.status, 409, show(all));
  assert.deepEqual([...all.json.error.assets].sort(), [...batches[0].assets].sort(), `409 names all ${PER}`);
  await sub.barrier();
  assert.equal(sub.count(m0, 'itemReserved'), 0, 'refused reserves publish nothing');

  const d = await api('DELETE', `${APP}/${batches[1].assets[3]}`);
  assert.equal(d.status, 200, show(d));
  const g = await api('GET', APP);
  assert.equal(g.json.assets.length, N - 1);
  assert.ok(!g.json.assets.some((e) => e.asset === batches[1].assets[3]));
});

test(`${PER} assets expiring together are swept with one publish; the ${N - 1} others stay listed`, async () => {
  const app = 'scale-exp';
  const assets = Array.from({ length: PER }, (_, i) => `e${i}`);
  const r = await api('POST', app, { assets, ttl_s: 1 });
  assert.equal(r.status, 200, show(r));
  const exp = r.json.expires_at_ms;
  await sub.barrier();
  const m0 = await sub.settledMark();
  const got = await sub.waitCount(m0, 1, { channel: 'itemReserved', timeoutMs: Math.max(0, exp - Date.now()) + 8000, what: 'the expiry publish' });
  const delay = got[0].t - exp;
  await new Promise((res) => setTimeout(res, Math.max(0, exp + 2500 - Date.now())));
  await sub.barrier();
  assert.equal(sub.count(m0, 'itemReserved'), 1, `${PER} expiring together: ${sub.count(m0)} publishes`);
  console.log(`# ${PER} expiring together: one publish ${delay} ms after expires_at_ms`);
  assert.ok(delay >= -5 && delay <= 1000, `swept ${delay} ms after expiry`);
  assert.equal(await rc.command(['ZCARD', IDX(app)]), 0);
  const g = await api('GET', app);
  assert.deepEqual(g.json, { assets: [] });
  assert.equal((await api('GET', APP)).json.assets.length, N - 1);
});
