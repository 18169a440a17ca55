// Reserved assets (SPEC §6 "Reserved assets", issue 5), with two hubs on one
// Redis: real PX TTLs and the sorted-set index, all-or-nothing reserves,
// expiry swept by the hubs' timers (never listed from expires_at_ms on,
// exactly one itemReserved per reserve, release and expiry however many hubs
// run, reserve-items on sockets of both hubs), concurrent overlapping
// reserves from both hubs, release and double release, listing on the hub
// that did not reserve, index entries written behind the hubs' back, apps
// watched through --apps / COORDHUB_APPS, bad inputs of every kind, 411/413,
// 503 while Redis is down, metrics.
//
// itemReserved publishes are counted by a subscriber of our own
// (pubsubRecorder), phase by phase: a barrier message published after a
// request has been answered arrives after every publish the request made.
import assert from 'node:assert/strict';
import { before } from 'node:test';
import {
  httpGet,
  httpJson,
  keepAliveAgent,
  makeToken,
  metricSum,
  rawHttp,
  pubsubRecorder,
  sleep,
  startHub,
  startRedis,
  test,
  userId,
  waitUntil,
} from './harness.mjs';

let redis;
let hubA;
let hubB;
let agentA;
let agentB;
let rc; // RESP client for looking at Redis directly
let sub; // itemReserved recorder

before(async () => {
  redis = await startRedis();
  [hubA, hubB] = await Promise.all([startHub({ redisUrl: redis.url }), startHub({ redisUrl: redis.url })]);
  agentA = keepAliveAgent();
  agentB = keepAliveAgent();
  rc = await redis.client();
  sub = await pubsubRecorder(redis.port, ['itemReserved']);
});

const KEY = (app, asset) => `reserved:{${app}}:${asset}`;
const IDX = (app) => `reserved:{${app}}`;
const svc = (h) => h.token('svc-resv', ['service'], 3600);
const agentOf = (h) => (h === hubA ? agentA : h === hubB ? agentB : false);
const nameOf = (h) => (h === hubA ? 'A' : h === hubB ? 'B' : `pid ${h.pid}`);
const isRI = (m) => m && m.event === 'reserve-items';
const sortedStr = (xs) => [...xs].map(String).sort();

// One request on /v1/reservations/<seg> (seg sent as written).
function api(h, method, seg, body, { token = svc(h), agent = agentOf(h), timeoutMs = 5000, headers } = {}) {
  return httpJson(`${h.url}/v1/reservations/${seg}`, {
    method,
    body,
    token: token === null ? undefined : token,
    agent,
    timeoutMs,
    headers,
  });
}

function show(r) {
  return `HTTP ${r.status} ${r.body.slice(0, 300)}`;
}

function expectError(r, status, code, what) {
  assert.equal(r.status, status, `${what}: expected ${status} ${code}, got ${show(r)}`);
  assert.ok(r.json && typeof r.json === 'object' && r.json.error, `${what}: not an error object: ${show(r)}`);
  assert.equal(r.json.error.code, code, `${what}: error code; got ${show(r)}`);
  assert.equal(typeof r.json.error.message, 'string', `${what}: error.message is a string; got ${show(r)}`);
}

async function redisNowMs() {
  const [s, us] = await rc.command(['TIME']);
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

// POST a reservation; asserts 200 and the answer's shape; returns the answer.
async function reserve(h, app, assets, ttl_s, owner, opts = {}) {
  const body = { assets, ttl_s };
  if (owner !== undefined) body.owner = owner;
  const before = await redisNowMs();
  const r = await api(h, 'POST', app, body, opts);
  const after = await redisNowMs();
  assert.equal(r.status, 200, `reserve ${JSON.stringify(assets).slice(0, 100)} in ${app} on hub ${nameOf(h)}: ${show(r)}`);
  assert.deepEqual(Object.keys(r.json).sort(), ['expires_at_ms', 'reserved'], `reserve answer: ${show(r)}`);
  assert.deepEqual(r.json.reserved, assets, 'reserved: the assets asked for, in order');
  const e = r.json.expires_at_ms;
  assert.ok(Number.isInteger(e), `expires_at_ms ${e}`);
  assert.ok(
    e >= before + ttl_s * 1000 - 1 && e <= after + ttl_s * 1000 + 1,
    `expires_at_ms ${e} should be Redis time + ttl: Redis time was ${before}..${after} around the request, ttl ${ttl_s} s`,
  );
  return r.json;
}

async function release(h, app, asset, opts) {
  const r = await api(h, 'DELETE', `${app}/${asset}`, undefined, opts);
  assert.equal(r.status, 200, `release ${app}/${asset} on hub ${nameOf(h)}: ${show(r)}`);
  assert.deepEqual(r.json, { app, asset, released: true });
}

async function list(h, app, opts) {
  const r = await api(h, 'GET', app, undefined, opts);
  assert.equal(r.status, 200, `list ${app} on hub ${nameOf(h)}: ${show(r)}`);
  assert.ok(r.json && Array.isArray(r.json.assets), `list ${app}: ${show(r)}`);
  return r.json.assets;
}

// The Redis side of one app: {asset: {value, pttl, score}} over the keys and
// the index members.
async function redisState(app) {
  const keys = (await rc.command(['KEYS', `reserved:{${app}}:*`])).sort();
  const idx = await rc.command(['ZRANGE', IDX(app), '0', '-1', 'WITHSCORES']);
  const members = {};
  for (let i = 0; i < idx.length; i += 2) members[idx[i]] = Number(idx[i + 1]);
  const values = {};
  for (const k of keys) values[k.slice(KEY(app, '').length)] = await rc.command(['GET', k]);
  return { keys: keys.map((k) => k.slice(KEY(app, '').length)), members, values };
}

// Asserts the key and index entry of one reservation.
async function assertStored(app, asset, { owner, expires_at_ms, ttl_s }) {
  const raw = await rc.command(['GET', KEY(app, asset)]);
  assert.ok(raw !== null, `${KEY(app, asset)} missing`);
  let v;
  try {
    v = JSON.parse(raw);
  } catch {
    assert.fail(`${KEY(app, asset)} is not JSON: ${raw}`);
  }
  for (const f of ['owner', 'reserved_at_ms', 'expires_at_ms']) assert.ok(f in v, `${KEY(app, asset)} lacks ${f}: ${raw}`);
  if (owner !== undefined) assert.equal(v.owner, owner, `${KEY(app, asset)} owner: ${raw}`);
  assert.equal(v.expires_at_ms, expires_at_ms, `${KEY(app, asset)} expires_at_ms: ${raw}`);
  if (ttl_s !== undefined) assert.equal(v.reserved_at_ms, expires_at_ms - ttl_s * 1000, `${KEY(app, asset)} reserved_at_ms: ${raw}`);
  const pttl = await rc.command(['PTTL', KEY(app, asset)]);
  const left = expires_at_ms - (await redisNowMs());
  assert.ok(pttl > 0 && Math.abs(pttl - left) <= 200, `PTTL of ${KEY(app, asset)} is ${pttl}, expected about ${left} (a real PX TTL)`);
  const score = await rc.command(['ZSCORE', IDX(app), asset]);
  assert.equal(Number(score), expires_at_ms, `ZSCORE ${IDX(app)} ${asset}`);
}

// Waits for the expiry publish of a reservation expiring at `exp`, lets any
// late duplicate (another hub's sweep) arrive, and asserts exactly one, in
// time. Returns the delay from expires_at_ms to the publish.
async function expectOneExpiryPublish(from, exp, what, { boundMs = 1000, settleMs = 2500 } = {}) {
  const got = await sub.waitCount(from, 1, {
    channel: 'itemReserved',
    timeoutMs: Math.max(0, exp - Date.now()) + 8000,
    what: `the itemReserved publish for the expiry of ${what}`,
  });
  const delay = got[0].t - exp;
  await sleep(Math.max(0, exp + settleMs - Date.now()));
  await sub.barrier();
  const n = sub.count(from, 'itemReserved');
  assert.equal(n, 1, `${what}: ${n} itemReserved publishes for one expiry (delays ${sub.since(from).map((m) => m.t - exp)} ms)`);
  assert.ok(delay >= -5, `${what}: itemReserved for the expiry came ${-delay} ms before expires_at_ms`);
  assert.ok(delay <= boundMs, `${what}: the expiry was published ${delay} ms after expires_at_ms (SPEC: within 100 ms; bound here ${boundMs})`);
  return delay;
}

// ------------------------------------------------------------------ expiry

// First in the file: the hubs have delivered no reserve-items yet, so the
// coalescing window (SPEC §3) starts clean.
test('a 1-second reservation expires: not listed by either hub from expires_at_ms on, one publish for the reserve and one for the expiry, reserve-items on both hubs', async () => {
  const app = 'exp1';
  const sa = await hubA.connect(userId());
  const sb = await hubB.connect(userId());

  const m0 = await sub.settledMark();
  const r = await reserve(hubA, app, ['e1'], 1, 'svc-exp');
  const exp = r.expires_at_ms;
  await sub.barrier();
  assert.equal(sub.count(m0, 'itemReserved'), 1, 'the reserve publishes itemReserved once');
  const m1 = sub.mark();
  await assertStored(app, 'e1', { owner: 'svc-exp', expires_at_ms: exp, ttl_s: 1 });
  await sa.waitFor(isRI, 5000, 'reserve-items on hub A for the reserve');
  await sb.waitFor(isRI, 5000, 'reserve-items on hub B for the reserve');
  const wsA = sa.mark();
  const wsB = sb.mark();

  // Poll GET on both hubs from now until 1.5 s after the expiry.
  const violations = [];
  const stats = { A: { listed: 0, absent: 0, after: 0 }, B: { listed: 0, absent: 0, after: 0 } };
  const until = exp + 1500;
  const poll = async (h) => {
    const agent = keepAliveAgent();
    const s = stats[nameOf(h)];
    while (Date.now() < until) {
      const tSend = Date.now();
      const g = await api(h, 'GET', app, undefined, { agent });
      const tRecv = Date.now();
      if (g.status !== 200 || !Array.isArray(g.json?.assets)) {
        violations.push(`hub ${nameOf(h)}: GET answered ${show(g)}`);
        continue;
      }
      const entry = g.json.assets.find((a) => a.asset === 'e1');
      if (entry) s.listed++;
      else s.absent++;
      if (tSend >= exp) s.after++;
      if (entry && tSend >= exp) violations.push(`hub ${nameOf(h)} listed e1 for a GET sent ${tSend - exp} ms after expires_at_ms`);
      if (!entry && tRecv < exp) violations.push(`hub ${nameOf(h)} did not list e1 for a GET answered ${exp - tRecv} ms before expires_at_ms`);
      if (entry && entry.expires_at_ms !== exp) violations.push(`hub ${nameOf(h)} listed e1 with expires_at_ms ${entry.expires_at_ms}, not ${exp}`);
      await sleep(15);
    }
    agent.destroy();
  };
  await Promise.all([poll(hubA), poll(hubB)]);
  console.log(`# GET polls around the expiry: ${JSON.stringify(stats)}`);
  assert.deepEqual(violations.slice(0, 20), [], `${violations.length} listing violations around the expiry`);
  for (const n of ['A', 'B']) {
    assert.ok(stats[n].listed > 0 && stats[n].after > 0, `hub ${n}: too few polls on each side of the expiry: ${JSON.stringify(stats[n])}`);
  }

  const delay = await expectOneExpiryPublish(m1, exp, 'one 1-second reservation');
  console.log(`# expiry published ${delay} ms after expires_at_ms`);
  assert.equal(await rc.command(['ZSCORE', IDX(app), 'e1']), null, 'the index member is gone after the sweep');
  assert.equal(await rc.command(['EXISTS', KEY(app, 'e1')]), 0, 'the key is gone');
  assert.deepEqual(await list(hubB, app), []);
  // The expiry reached the browsers of both hubs (coalesced: may trail by up to 1 s).
  await sa.waitFor(isRI, 5000, 'reserve-items on hub A for the expiry', wsA);
  await sb.waitFor(isRI, 5000, 'reserve-items on hub B for the expiry', wsB);
  await sa.close();
  await sb.close();
});

test('several reservations expiring in the same instant give one publish; the next expiry re-arms the timer (one more publish)', async () => {
  const app = 'exp5';
  const m0 = await sub.settledMark();
  const r = await reserve(hubB, app, ['s1', 's2', 's3', 's4', 's5'], 1, 'svc-5');
  await sub.barrier();
  assert.equal(sub.count(m0, 'itemReserved'), 1, 'a reserve of 5 assets publishes once');
  const m1 = sub.mark();
  for (const a of ['s1', 's5']) await assertStored(app, a, { owner: 'svc-5', expires_at_ms: r.expires_at_ms, ttl_s: 1 });
  const d = await expectOneExpiryPublish(m1, r.expires_at_ms, '5 assets expiring together');
  console.log(`# 5 together: published ${d} ms after expires_at_ms`);
  assert.equal(await rc.command(['ZCARD', IDX(app)]), 0);
  assert.deepEqual(await rc.command(['KEYS', `reserved:{${app}}:*`]), []);

  // Two expiries a second apart in one app, reserved on different hubs:
  // one publish each, each on time (the timer is re-armed for the next).
  const m2 = sub.mark();
  const x = await reserve(hubA, app, ['x'], 1);
  const y = await reserve(hubB, app, ['y'], 2);
  await sub.barrier();
  assert.equal(sub.count(m2, 'itemReserved'), 2, 'two reserves, two publishes');
  const m3 = sub.mark();
  const got = await sub.waitCount(m3, 1, { channel: 'itemReserved', timeoutMs: 8000, what: 'the expiry of x' });
  const dx = got[0].t - x.expires_at_ms;
  assert.ok(dx >= -5 && dx <= 1000, `x's expiry published ${dx} ms after its expires_at_ms`);
  assert.equal(sub.count(m3), 1, 'x alone expired first');
  assert.deepEqual((await list(hubA, app)).map((e) => e.asset), ['y'], 'y is still listed after x expired');
  const m4 = sub.mark();
  const dy = await expectOneExpiryPublish(m4, y.expires_at_ms, 'y, a second after x');
  console.log(`# x then y: published ${dx} and ${dy} ms after their expiries`);
});

// ------------------------------------------------------------------ basics

test('reserve, 409 naming the held ones with nothing written, listing on the other hub sorted by expiry, release, double release 404', async () => {
  const app = 'basic';
  const m0 = await sub.settledMark();
  const a = await reserve(hubA, app, ['a1', 'a2'], 600, 'svc-a');
  await sub.barrier();
  assert.equal(sub.count(m0, 'itemReserved'), 1, 'one publish for a reserve of two');
  await assertStored(app, 'a1', { owner: 'svc-a', expires_at_ms: a.expires_at_ms, ttl_s: 600 });
  await assertStored(app, 'a2', { owner: 'svc-a', expires_at_ms: a.expires_at_ms, ttl_s: 600 });
  const b = await reserve(hubB, app, ['b1'], 300, 'svc-b');
  const c = await reserve(hubA, app, ['c1'], 450); // no owner
  await assertStored(app, 'c1', { expires_at_ms: c.expires_at_ms, ttl_s: 450 });

  // Listed on either hub, sorted by expires_at_ms, fields exactly these.
  for (const h of [hubA, hubB]) {
    const l = await list(h, app);
    assert.deepEqual(
      l.map((e) => e.asset),
      l[2].asset === 'a1' ? ['b1', 'c1', 'a1', 'a2'] : ['b1', 'c1', 'a2', 'a1'],
      `hub ${nameOf(h)}: sorted by expires_at_ms: ${JSON.stringify(l)}`,
    );
    for (const e of l) assert.deepEqual(Object.keys(e).sort(), ['asset', 'expires_at_ms', 'owner'], `entry ${JSON.stringify(e)}`);
    const by = Object.fromEntries(l.map((e) => [e.asset, e]));
    assert.deepEqual(by.a1, { asset: 'a1', owner: 'svc-a', expires_at_ms: a.expires_at_ms });
    assert.deepEqual(by.b1, { asset: 'b1', owner: 'svc-b', expires_at_ms: b.expires_at_ms });
    assert.equal(by.c1.expires_at_ms, c.expires_at_ms);
  }
  // Role ops may read.
  const ops = await api(hubB, 'GET', app, undefined, { token: hubB.token('ops-1', ['ops']) });
  assert.equal(ops.status, 200, `GET with role ops: ${show(ops)}`);
  assert.equal(ops.json.assets.length, 4);
  // An app with nothing reserved.
  assert.deepEqual((await api(hubA, 'GET', 'nothing-here')).json, { assets: [] });

  // 409: all or nothing, naming the held ones; no publish.
  const before = await redisState(app);
  const m1 = sub.mark();
  const x = await api(hubB, 'POST', app, { assets: ['a2', 'd1', 'b1', 'd2'], ttl_s: 10, owner: 'svc-x' });
  expectError(x, 409, 'already_reserved', 'reserve over a2 and b1');
  assert.deepEqual(sortedStr(x.json.error.assets), ['a2', 'b1'], `409 names the held ones: ${show(x)}`);
  const y = await api(hubA, 'POST', app, { assets: ['a1', 'a2'], ttl_s: 10 });
  expectError(y, 409, 'already_reserved', 'reserve of two held ones');
  assert.deepEqual(sortedStr(y.json.error.assets), ['a1', 'a2'], `409 names both: ${show(y)}`);
  await sub.barrier();
  assert.equal(sub.count(m1, 'itemReserved'), 0, 'a refused reserve publishes nothing');
  assert.deepEqual(await redisState(app), before, 'a refused reserve writes nothing (d1, d2 free; a2, b1 unchanged)');

  // The same asset id in another app is another reservation.
  await reserve(hubB, 'basic-other', ['a1'], 600, 'svc-o');
  assert.equal(JSON.parse(await rc.command(['GET', KEY(app, 'a1')])).owner, 'svc-a');

  // Release on the hub that did not reserve it.
  const m2 = sub.mark();
  await release(hubB, app, 'a1');
  await sub.barrier();
  assert.equal(sub.count(m2, 'itemReserved'), 1, 'a release publishes once');
  assert.equal(await rc.command(['EXISTS', KEY(app, 'a1')]), 0);
  assert.equal(await rc.command(['ZSCORE', IDX(app), 'a1']), null);
  await assertStored(app, 'a2', { owner: 'svc-a', expires_at_ms: a.expires_at_ms });
  assert.deepEqual((await list(hubA, app)).map((e) => e.asset), ['b1', 'c1', 'a2']);

  // Double release, release of what was never reserved: 404, no publish.
  const m3 = sub.mark();
  expectError(await api(hubA, 'DELETE', `${app}/a1`), 404, 'not_found', 'second release of a1');
  expectError(await api(hubB, 'DELETE', `${app}/a1`), 404, 'not_found', 'third release of a1, other hub');
  expectError(await api(hubA, 'DELETE', `${app}/never`), 404, 'not_found', 'release of an asset never reserved');
  expectError(await api(hubA, 'DELETE', `no-such-app/a1`), 404, 'not_found', 'release in an app never used');
  await sub.barrier();
  assert.equal(sub.count(m3, 'itemReserved'), 0, 'a 404 release publishes nothing');

  // Released, it can be reserved again, by anyone.
  const again = await reserve(hubA, app, ['a1'], 900, 'svc-again');
  await assertStored(app, 'a1', { owner: 'svc-again', expires_at_ms: again.expires_at_ms, ttl_s: 900 });

  // Percent-encoded path segments are decoded: %37%33%30 is app 730, pct%2E1 is pct.1.
  const p = await reserve(hubA, '%37%33%30', ['pct.1'], 600, 'svc-pct');
  await assertStored('730', 'pct.1', { owner: 'svc-pct', expires_at_ms: p.expires_at_ms });
  assert.deepEqual((await list(hubB, '730')).map((e) => e.asset), ['pct.1']);
  const d = await api(hubB, 'DELETE', '730/pct%2E1');
  assert.equal(d.status, 200, `DELETE 730/pct%2E1: ${show(d)}`);
  assert.deepEqual(d.json, { app: '730', asset: 'pct.1', released: true });
  assert.equal(await rc.command(['EXISTS', KEY('730', 'pct.1')]), 0);
});

test('index entries past their time are never listed and are trimmed by the listing, with one publish; entries written behind the hubs\' back are listed', async () => {
  const app = 'ghost'; // never served by either hub before this test
  const now = await redisNowMs();
  // g1: an index member whose time has passed, its key gone (Redis expired
  // it; no hub has swept the index yet). live: a reservation written as the
  // hub would write it.
  await rc.command(['ZADD', IDX(app), String(now - 5000), 'g1']);
  const liveExp = now + 600000;
  await rc.command(['SET', KEY(app, 'live'), JSON.stringify({ owner: 'behind', reserved_at_ms: now, expires_at_ms: liveExp }), 'PX', '600000']);
  await rc.command(['ZADD', IDX(app), String(liveExp), 'live']);

  const m0 = await sub.settledMark();
  const l = await list(hubB, app);
  assert.deepEqual(l, [{ asset: 'live', owner: 'behind', expires_at_ms: liveExp }], 'g1 is not listed; live is');
  await sub.barrier();
  assert.equal(sub.count(m0, 'itemReserved'), 1, 'the listing removed g1 and published once');
  assert.equal(await rc.command(['ZSCORE', IDX(app), 'g1']), null, 'g1 trimmed from the index');
  const m1 = sub.mark();
  assert.deepEqual(await list(hubA, app), l);
  assert.deepEqual(await list(hubB, app), l);
  await sub.barrier();
  assert.equal(sub.count(m1, 'itemReserved'), 0, 'nothing left to trim: no publish');
  // g1 is free to reserve again.
  await reserve(hubA, app, ['g1'], 600, 'new');
  const conflict = await api(hubB, 'POST', app, { assets: ['live'], ttl_s: 5 });
  expectError(conflict, 409, 'already_reserved', 'a reservation written behind the back is held');
  assert.deepEqual(conflict.json.error.assets, ['live']);
});

// ------------------------------------------------------------------ races

test('overlapping concurrent reserves from both hubs: exactly one wins, the others\' 409 name what it holds, Redis holds only its keys', async () => {
  const ROUNDS = 20;
  const N = 4; // requests per round, two per hub, each over 2-3 connections at once
  const wins = Array(N).fill(0);
  for (let round = 0; round < ROUNDS; round++) {
    const app = `race-${round}`;
    // Every pair shares `c`; neighbours also share s<k>; plus own assets.
    const sets = Array.from({ length: N }, (_, k) => [`own${k}a`, `s${k}`, 'c', `s${(k + 1) % N}`, `own${k}b`]);
    const hubs = [hubA, hubB, hubA, hubB];
    const m0 = await sub.settledMark();
    const rs = await Promise.all(
      sets.map((assets, k) => api(hubs[k], 'POST', app, { assets, ttl_s: 600, owner: `w${k}` }, { agent: false })),
    );
    const winners = rs.map((r, k) => (r.status === 200 ? k : -1)).filter((k) => k >= 0);
    assert.equal(winners.length, 1, `round ${round}: ${winners.length} winners: ${rs.map(show).join(' | ')}`);
    const w = winners[0];
    wins[w]++;
    assert.deepEqual(rs[w].json.reserved, sets[w]);
    for (let k = 0; k < N; k++) {
      if (k === w) continue;
      expectError(rs[k], 409, 'already_reserved', `round ${round}, loser ${k}`);
      const held = sets[k].filter((x) => sets[w].includes(x));
      assert.deepEqual(sortedStr(rs[k].json.error.assets), sortedStr(held), `round ${round}: loser ${k}'s 409 names the winner's overlap`);
    }
    await sub.barrier();
    assert.equal(sub.count(m0, 'itemReserved'), 1, `round ${round}: one publish (the winner's)`);
    const st = await redisState(app);
    assert.deepEqual(st.keys, sortedStr(sets[w]), `round ${round}: keys are the winner's only`);
    assert.deepEqual(sortedStr(Object.keys(st.members)), sortedStr(sets[w]), `round ${round}: index is the winner's only`);
    for (const v of Object.values(st.values)) assert.equal(JSON.parse(v).owner, `w${w}`);
    const l = await list(round % 2 ? hubA : hubB, app);
    assert.deepEqual(sortedStr(l.map((e) => e.asset)), sortedStr(sets[w]));
  }
  console.log(`# ${ROUNDS} rounds of ${N} overlapping reserves: wins by request ${JSON.stringify(wins)}`);

  // The same asset set from both hubs at once, 20 times on one app: one
  // winner each time; the winner releases before the next round.
  const app = 'race-same';
  for (let round = 0; round < 20; round++) {
    const assets = ['p', 'q', 'r'];
    const rs = await Promise.all([hubA, hubB, hubA, hubB].map((h) => api(h, 'POST', app, { assets, ttl_s: 60 }, { agent: false })));
    const ok = rs.filter((r) => r.status === 200);
    assert.equal(ok.length, 1, `identical sets, round ${round}: ${rs.map(show).join(' | ')}`);
    for (const r of rs.filter((x) => x.status !== 200)) {
      expectError(r, 409, 'already_reserved', `identical sets, round ${round}`);
      assert.deepEqual(sortedStr(r.json.error.assets), assets);
    }
    for (const a of assets) await release(round % 2 ? hubA : hubB, app, a);
  }
  assert.equal(await rc.command(['ZCARD', IDX(app)]), 0);
});

// ------------------------------------------------------------------ watched apps

test('a hub given --apps or COORDHUB_APPS sweeps those apps though it never served them', async () => {
  // A Redis of its own, so the sweep can only be the flagged hub's.
  const r2 = await startRedis();
  const rec = await pubsubRecorder(r2.port, ['itemReserved']);
  const hubC = await startHub({ redisUrl: r2.url, extraArgs: ['--apps', 'flagA,flagB'] });
  const hubD = await startHub({ redisUrl: r2.url, env: { COORDHUB_APPS: 'envapp,other' } });
  const c2 = await r2.client();
  for (const [h, app] of [
    [hubC, 'flagB'],
    [hubD, 'envapp'],
  ]) {
    const expired0 = await h.metric('coordhub_reservation_expired_total');
    // Written as the hub writes it, by another program, announced the way
    // legacy publishers do (empty payload).
    const [s, us] = await c2.command(['TIME']);
    const exp = Number(s) * 1000 + Math.floor(Number(us) / 1000) + 1500;
    await c2.command(['SET', KEY(app, 'w1'), JSON.stringify({ owner: 'other', reserved_at_ms: exp - 1500, expires_at_ms: exp }), 'PX', '1500']);
    await c2.command(['ZADD', IDX(app), String(exp), 'w1']);
    await rec.barrier();
    const m = rec.mark(); // from our own announcement on
    await c2.command(['PUBLISH', 'itemReserved', '']);
    const got = await rec.waitCount(m, 2, {
      channel: 'itemReserved',
      timeoutMs: 10000,
      what: `the expiry publish for ${app} (watched by hub pid ${h.pid} through ${h === hubC ? '--apps' : 'COORDHUB_APPS'})`,
    });
    const delay = got[got.length - 1].t - exp;
    assert.ok(delay >= -5 && delay <= 1500, `${app}: expiry published ${delay} ms after its time`);
    await sleep(1500);
    await rec.barrier();
    assert.equal(rec.count(m, 'itemReserved'), 2, `${app}: our announcement and exactly one expiry publish`);
    assert.equal(await c2.command(['ZCARD', IDX(app)]), 0, `${app}: the index member was swept`);
    assert.equal((await h.metric('coordhub_reservation_expired_total')) - expired0, 1, `${app}: the flagged hub counted the expiry`);
    console.log(`# ${app}: swept ${delay} ms after its expiry by the hub that watches it`);
  }
  assert.equal(await hubC.stop(), 0);
  assert.equal(await hubD.stop(), 0);
  c2.close();
  rec.close();
  await r2.stop();
});

// ------------------------------------------------------------------ metrics

test('metrics: reservations by result, releases by result, sweeps and expired assets', async () => {
  const mA0 = await hubA.metrics();
  const mB0 = await hubB.metrics();
  const d = (m1, m0, name, labels) => metricSum(m1, name, labels) - metricSum(m0, name, labels);

  await reserve(hubA, 'metrics', ['m1'], 600);
  expectError(await api(hubA, 'POST', 'metrics', { assets: ['m1'], ttl_s: 60 }), 409, 'already_reserved', 'metrics conflict');
  await release(hubB, 'metrics', 'm1');
  expectError(await api(hubB, 'DELETE', 'metrics/m1'), 404, 'not_found', 'metrics double release');
  // Three assets expiring together, no listing meanwhile. (The barrier
  // first: the release's own publish must not be counted in this phase.)
  await sub.barrier();
  const m0 = await sub.settledMark();
  const r = await reserve(hubB, 'metrics-exp', ['x1', 'x2', 'x3'], 1);
  await sub.barrier();
  await expectOneExpiryPublish(sub.mark(), r.expires_at_ms, 'metrics-exp', { settleMs: 2000 });
  assert.equal(sub.count(m0, 'itemReserved'), 2);

  const mA1 = await hubA.metrics();
  const mB1 = await hubB.metrics();
  for (const [name, result] of [
    ['coordhub_reservations_total', 'reserved'],
    ['coordhub_reservations_total', 'conflict'],
    ['coordhub_reservation_releases_total', 'released'],
    ['coordhub_reservation_releases_total', 'not_found'],
  ]) {
    assert.ok(mA1.some((s) => s.name === name && s.labels.result === result), `hub A /metrics lacks ${name}{result="${result}"}`);
  }
  for (const name of ['coordhub_reservation_sweeps_total', 'coordhub_reservation_expired_total']) {
    assert.ok(mA1.some((s) => s.name === name), `hub A /metrics lacks ${name}`);
  }
  assert.equal(d(mA1, mA0, 'coordhub_reservations_total', { result: 'reserved' }), 1, 'A reserved');
  assert.equal(d(mA1, mA0, 'coordhub_reservations_total', { result: 'conflict' }), 1, 'A conflict');
  assert.equal(d(mB1, mB0, 'coordhub_reservations_total', { result: 'reserved' }), 1, 'B reserved');
  assert.equal(d(mB1, mB0, 'coordhub_reservations_total', { result: 'conflict' }), 0, 'B conflict');
  assert.equal(d(mB1, mB0, 'coordhub_reservation_releases_total', { result: 'released' }), 1, 'B released');
  assert.equal(d(mB1, mB0, 'coordhub_reservation_releases_total', { result: 'not_found' }), 1, 'B not_found');
  assert.equal(d(mA1, mA0, 'coordhub_reservation_releases_total'), 0, 'A releases');
  const expired = d(mA1, mA0, 'coordhub_reservation_expired_total') + d(mB1, mB0, 'coordhub_reservation_expired_total');
  assert.equal(expired, 3, 'three assets expired, counted once across the two hubs');
  const sweeps = d(mA1, mA0, 'coordhub_reservation_sweeps_total') + d(mB1, mB0, 'coordhub_reservation_sweeps_total');
  assert.ok(sweeps >= 1, `sweeps across both hubs: ${sweeps}`);
});

// ------------------------------------------------------------------ bad inputs

test('bad inputs: exact status and code each, nothing changes, nothing is published, the hubs keep serving', async () => {
  const APP = 'bad';
  const held = await reserve(hubA, APP, ['held'], 600, 'probe');
  const keys0 = (await rc.command(['KEYS', '*'])).sort();
  const state0 = await redisState(APP);
  const metrics0 = await hubA.metrics();
  const m0 = await sub.settledMark();
  const good = { assets: ['free1', 'free2'], ttl_s: 60 };

  // New keys only: other tests' reservations may expire meanwhile.
  async function unchanged(what) {
    const fresh = (await rc.command(['KEYS', '*'])).filter((k) => !keys0.includes(k));
    assert.deepEqual(fresh, [], `${what}: new Redis keys`);
    assert.deepEqual(await redisState(APP), state0, `${what}: app ${APP} changed`);
  }

  const cases = [];
  const add = (method, seg, body, status, code, what, opts = {}) => cases.push({ method, seg, body, status, code, what, opts });

  // App ids: 1-32 of [A-Za-z0-9_-], after percent-decoding.
  const badApps = [
    ['', 'empty'],
    ['a'.repeat(33), '33 chars'],
    ['%61'.repeat(33), '33 chars once decoded'],
    ['a.b', 'dot (allowed in asset ids, not app ids)'],
    ['a:b', 'colon'],
    ['a%3Ab', 'encoded colon'],
    ['a{b', 'brace'],
    ['%7Bbad%7D', 'encoded braces'],
    ['a}b', 'closing brace'],
    ['a%20b', 'encoded space'],
    ['a%0Ab', 'encoded newline'],
    ['a%0D%0Ab', 'encoded CR LF'],
    ['a%09b', 'encoded tab'],
    ['a%C3%A9', 'encoded UTF-8 é'],
    ['%FF', 'encoded 0xFF'],
    ['a*b', 'star'],
    ['a%2Ab', 'encoded star'],
    ['a$b', 'dollar'],
    ['a+b', 'plus'],
    ['a,b', 'comma'],
    ['a~b', 'tilde'],
    ["a'b", 'quote'],
    ['a%22b', 'encoded double quote'],
    ['a%25b', 'encoded percent'],
  ];
  // These never reach the hub: libwebsockets refuses them while it parses
  // the request line (its own 403 page for a bad escape, a closed
  // connection for an encoded NUL); locks.test.mjs accepts the same. What
  // is checked: no answer other than such a refusal, and nothing changes.
  // (An encoded slash has a test of its own below.)
  const lwsRefused = [
    ['a%zzb', 'bad escape'],
    ['a%4', 'truncated escape'],
    ['a%', 'lone percent'],
    ['a%00b', 'encoded NUL'],
  ];
  for (const [seg, what] of badApps) add('POST', seg, good, 400, 'bad_request', `POST app ${what}`);
  for (const [seg, what] of badApps.filter(([s]) => s !== '')) {
    add('GET', seg, undefined, 400, 'bad_request', `GET app ${what}`);
    add('DELETE', `${seg}/held`, undefined, 400, 'bad_request', `DELETE app ${what}`);
  }
  for (const [seg, what] of lwsRefused) {
    add('POST', seg, good, 400, 'bad_request', `POST app ${what}`, { lwsRefusal: true });
    add('GET', seg, undefined, 400, 'bad_request', `GET app ${what}`, { lwsRefusal: true });
    add('DELETE', `${seg}/held`, undefined, 400, 'bad_request', `DELETE app ${what}`, { lwsRefusal: true });
    add('DELETE', `${APP}/held${seg.slice(1)}`, undefined, 400, 'bad_request', `DELETE asset ${what}`, { lwsRefusal: true });
  }

  // Asset ids in the path: 1-128 of [A-Za-z0-9_.-], after percent-decoding.
  const badAssetSegs = [
    ['', 'empty'],
    ['a'.repeat(129), '129 chars'],
    ['%61'.repeat(129), '129 chars once decoded'],
    ['a:b', 'colon'],
    ['held%3Ax', 'encoded colon'],
    ['a{b', 'brace'],
    ['a}b', 'closing brace'],
    ['held/x', 'a slash (an extra segment)'],
    ['held%2Fx', 'encoded slash'],
    ['a%20b', 'encoded space'],
    ['held%0Ax', 'encoded newline'],
    ['a*b', 'star'],
    ['a%C3%A9', 'encoded UTF-8 é'],
  ];
  for (const [seg, what] of badAssetSegs) add('DELETE', `${APP}/${seg}`, undefined, 400, 'bad_request', `DELETE asset ${what}`);

  // Bodies, POST on free assets (a hub that let them through would take them).
  const badBodies = [
    ['not json', 'not JSON'],
    ['{', 'truncated JSON'],
    ['{"assets":["free1"],"ttl_s":60}x', 'trailing garbage'],
    ['', 'empty body'],
    ['[]', 'empty array'],
    ['[{"assets":["free1"],"ttl_s":60}]', 'array'],
    ['"free1"', 'string'],
    ['60', 'number'],
    ['null', 'null'],
    ['true', 'boolean'],
    [{}, 'empty object'],
    [{ ttl_s: 60 }, 'assets missing'],
    [{ assets: [], ttl_s: 60 }, 'assets empty'],
    [{ assets: 'free1', ttl_s: 60 }, 'assets a string'],
    [{ assets: { free1: true }, ttl_s: 60 }, 'assets an object'],
    [{ assets: null, ttl_s: 60 }, 'assets null'],
    [{ assets: ['free1', 'free1'], ttl_s: 60 }, 'duplicate asset'],
    [{ assets: ['free1', 'free2', 'free1'], ttl_s: 60 }, 'duplicate asset, not adjacent'],
    [{ assets: Array.from({ length: 1001 }, (_, i) => `n${i}`), ttl_s: 60 }, '1001 assets'],
    [{ assets: ['free1', ''], ttl_s: 60 }, 'empty asset id'],
    [{ assets: ['a'.repeat(129)], ttl_s: 60 }, '129-char asset id'],
    [{ assets: ['free1', 'a b'], ttl_s: 60 }, 'space in an asset id'],
    [{ assets: ['a/b'], ttl_s: 60 }, 'slash in an asset id'],
    [{ assets: ['a:b'], ttl_s: 60 }, 'colon in an asset id'],
    [{ assets: ['a{b}'], ttl_s: 60 }, 'braces in an asset id'],
    [{ assets: ['a*'], ttl_s: 60 }, 'star in an asset id'],
    [{ assets: ['é'], ttl_s: 60 }, 'non-ASCII asset id'],
    [{ assets: ['a\u0000b'], ttl_s: 60 }, 'NUL in an asset id'],
    [{ assets: ['free1', 5], ttl_s: 60 }, 'a number among the assets'],
    [{ assets: ['free1', null], ttl_s: 60 }, 'null among the assets'],
    [{ assets: [['free1']], ttl_s: 60 }, 'nested array'],
    [{ assets: [{ id: 'free1' }], ttl_s: 60 }, 'an object among the assets'],
    [{ assets: ['free1'] }, 'ttl_s missing'],
    [{ assets: ['free1'], ttl_s: 0 }, 'ttl_s 0'],
    [{ assets: ['free1'], ttl_s: -1 }, 'ttl_s -1'],
    [{ assets: ['free1'], ttl_s: 86401 }, 'ttl_s 86401'],
    [{ assets: ['free1'], ttl_s: '60' }, 'ttl_s "60"'],
    [{ assets: ['free1'], ttl_s: 1.5 }, 'ttl_s 1.5'],
    [{ assets: ['free1'], ttl_s: null }, 'ttl_s null'],
    [{ assets: ['free1'], ttl_s: true }, 'ttl_s true'],
    [{ assets: ['free1'], ttl_s: [60] }, 'ttl_s array'],
    [{ assets: ['free1'], ttl_s: 1e20 }, 'ttl_s 1e20'],
    ['{"assets":["free1"],"ttl_s":18446744073709551617}', 'ttl_s 2^64+1'],
    ['{"assets":["free1"],"ttl_s":-18446744073709551617}', 'ttl_s -(2^64+1)'],
    [{ assets: ['free1'], ttl_s: 60, owner: 5 }, 'owner a number'],
    [{ assets: ['free1'], ttl_s: 60, owner: {} }, 'owner an object'],
    [{ assets: ['free1'], ttl_s: 60, owner: ['svc'] }, 'owner an array'],
    [{ assets: ['free1'], ttl_s: 60, owner: true }, 'owner a boolean'],
    [{ assets: ['free1'], ttl_s: 60, owner: 'o'.repeat(129) }, 'owner 129 chars'],
  ];
  for (const [body, what] of badBodies) add('POST', APP, body, 400, 'bad_request', `POST body: ${what}`);
  // Bad input is checked before "already reserved".
  add('POST', APP, { assets: ['held'], ttl_s: 0 }, 400, 'bad_request', 'POST ttl_s 0 over a held asset');
  add('POST', APP, { assets: ['held', 'held'], ttl_s: 60 }, 400, 'bad_request', 'POST a held asset twice');

  // Tokens: 401 for no/bad token, 403 for a valid one without the role.
  const secret = hubA.secret;
  const expired = makeToken({ sub: 's', roles: ['service'], ttl: -60, secret });
  const wrongKey = makeToken({ sub: 's', roles: ['service'], secret: 'not-the-secret' });
  const otherHub = hubB.token('s', ['service']); // valid on hub B only
  const algNone = makeToken({ sub: 's', roles: ['service'], secret, alg: 'none' });
  const noSub = makeToken({ sub: undefined, roles: ['service'], secret });
  const routes = [
    ['POST', APP, good],
    ['DELETE', `${APP}/held`, undefined],
    ['GET', APP, undefined],
  ];
  for (const [method, seg, body] of routes) {
    add(method, seg, body, 401, 'unauthorized', `${method} without Authorization`, { token: null });
    add(method, seg, body, 401, 'unauthorized', `${method} Bearer garbage`, { token: 'garbage' });
    add(method, seg, body, 401, 'unauthorized', `${method} expired token`, { token: expired });
    add(method, seg, body, 401, 'unauthorized', `${method} wrong signing key`, { token: wrongKey });
    add(method, seg, body, 401, 'unauthorized', `${method} the other hub's token`, { token: otherHub });
    add(method, seg, body, 401, 'unauthorized', `${method} alg none`, { token: algNone });
    add(method, seg, body, 401, 'unauthorized', `${method} token without sub`, { token: noSub });
    add(method, seg, body, 401, 'unauthorized', `${method} Basic auth`, {
      token: null,
      headers: { authorization: 'Basic c3ZjOnN2Yw==' },
    });
    add(method, seg, body, 401, 'unauthorized', `${method} token without "Bearer "`, {
      token: null,
      headers: { authorization: svc(hubA) },
    });
    add(method, seg, body, 403, 'forbidden', `${method} token without roles`, { token: hubA.token('u', []) });
    add(method, seg, body, 403, 'forbidden', `${method} role admin`, { token: hubA.token('u', ['admin']) });
    if (method !== 'GET') add(method, seg, body, 403, 'forbidden', `${method} role ops`, { token: hubA.token('u', ['ops']) });
  }
  // A method the routes do not have.
  add('PUT', APP, good, 405, 'method_not_allowed', 'PUT on an app');
  add('PUT', `${APP}/held`, good, 405, 'method_not_allowed', 'PUT on an asset');

  const failures = [];
  let stateBroken = null;
  for (const c of cases) {
    const what = `${c.method} /v1/reservations/${c.seg.slice(0, 40)} (${c.what})`;
    let r;
    try {
      r = await api(hubA, c.method, c.seg, c.body, { ...c.opts, agent: false });
    } catch (e) {
      if (!c.opts.lwsRefusal) failures.push(`${what}: no HTTP answer: ${e.message}`);
    }
    try {
      // a refusal by libwebsockets itself: its 403 page, or a closed socket
      if (r && !(c.opts.lwsRefusal && r.status === 403)) expectError(r, c.status, c.code, what);
    } catch (e) {
      failures.push(e.message.split('\n')[0]);
    }
    if (!stateBroken) await unchanged(what).catch((e) => (stateBroken = e.message));
  }
  console.log(`# ${cases.length} bad inputs tried, ${failures.length} answered wrongly`);
  assert.deepEqual(failures, [], `${failures.length} of ${cases.length} bad inputs answered wrongly`);
  assert.equal(stateBroken, null, 'a bad input changed the state');
  await sub.barrier();
  assert.equal(sub.count(m0, 'itemReserved'), 0, 'a bad input published itemReserved');
  const metrics1 = await hubA.metrics();
  for (const n of ['coordhub_reservations_total', 'coordhub_reservation_releases_total']) {
    assert.equal(metricSum(metrics1, n), metricSum(metrics0, n), `${n} moved on bad inputs`);
  }
  for (const h of [hubA, hubB]) assert.equal((await httpGet(`${h.url}/healthz`)).status, 200);

  // The boundaries just inside are accepted.
  const app32 = 'Az09_-'.padEnd(32, 'x');
  const asset128 = 'Az09_.-'.padEnd(128, 'y');
  const big = await reserve(hubB, app32, [asset128], 86400, 'o'.repeat(128));
  await assertStored(app32, asset128, { owner: 'o'.repeat(128), expires_at_ms: big.expires_at_ms, ttl_s: 86400 });
  const thousand = Array.from({ length: 1000 }, (_, i) => `k${i}`);
  const t = await reserve(hubA, 'bound-1000', thousand, 600);
  assert.equal(await rc.command(['ZCARD', IDX('bound-1000')]), 1000);
  assert.equal((await list(hubB, 'bound-1000')).length, 1000);
  assert.ok(t.expires_at_ms > 0);
  // ttl_s 1 is accepted; wait for its expiry so it does not leak into later tests.
  const m1 = sub.mark();
  const one = await reserve(hubA, 'bound-ttl1', ['t1'], 1);
  await sub.waitCount(m1, 2, { channel: 'itemReserved', timeoutMs: 8000, what: 'the reserve and the expiry of a ttl_s 1 reservation' });
  assert.ok(Date.now() >= one.expires_at_ms);
  // The held probe is as it was.
  await assertStored(APP, 'held', { owner: 'probe', expires_at_ms: held.expires_at_ms, ttl_s: 600 });
});

// SPEC §6 wants each path segment decoded after the path is split, so that
// "slash%2Fheld" would be one (bad) app id. libwebsockets 4.1 decodes %XX
// inside its request-line parser, before the hub sees the path, and has no
// option to keep it encoded: an encoded slash is a separator, exactly as a
// literal one (README, "Reserved assets"). What this pins down: the hub
// treats the two spellings identically, so no request can reach something
// the literal path could not.
test('an encoded slash acts exactly as a literal one (libwebsockets decodes before the hub splits the path)', async () => {
  const APP = 'slash';
  for (const spelling of ['%2F', '/']) {
    await reserve(hubA, APP, ['held'], 600, 'probe');
    await sub.barrier(); // the reserve's own publish is not counted
    const m0 = await sub.settledMark();
    const g = await api(hubA, 'GET', `${APP}${spelling}held`, undefined, { agent: false });
    assert.equal(g.status, 405, `GET /v1/reservations/${APP}${spelling}held`);
    const d = await api(hubA, 'DELETE', `${APP}${spelling}held`, undefined, { agent: false });
    assert.equal(d.status, 200, `DELETE /v1/reservations/${APP}${spelling}held`);
    assert.equal(await rc.command(['GET', KEY(APP, 'held')]), null);
    await sub.barrier();
    assert.equal(sub.count(m0, 'itemReserved'), 1);
  }
});


test('a 1.1 MiB body gets 413 too_large; a chunked body gets 411 or a closed connection; nothing reserved; exactly 1 MiB is accepted', async () => {
  const APP = 'big';
  const auth = `Bearer ${svc(hubA)}`;
  const m0 = await sub.settledMark();
  const bigBody = Buffer.from(`{"assets":["z1"],"ttl_s":60}${' '.repeat(1.1 * 1024 * 1024)}`);
  const r = await rawHttp(
    hubA.port,
    `POST /v1/reservations/${APP} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${auth}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${bigBody.length}\r\n\r\n`,
    bigBody,
  );
  assert.equal(r.status, 413, `1.1 MiB body: ${r.why}, errors ${r.errors}, got: ${r.raw}`);
  assert.equal(r.json?.error?.code, 'too_large', `1.1 MiB body: ${r.body}`);

  const chunk = '{"assets":["z1"],"ttl_s":60}';
  const c = await rawHttp(
    hubA.port,
    `POST /v1/reservations/${APP} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${auth}\r\n` +
      `Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n` +
      `${chunk.length.toString(16)}\r\n${chunk}\r\n0\r\n\r\n`,
    undefined,
    { timeoutMs: 5000 },
  );
  if (c.status === null) {
    assert.equal(c.why, 'closed', `chunked POST: neither a response nor a close within 5 s (${c.why})`);
  } else {
    assert.equal(c.status, 411, `chunked POST: ${c.raw}`);
    assert.equal(c.json?.error?.code, 'length_required', `chunked POST: ${c.body}`);
  }
  assert.equal(await rc.command(['EXISTS', KEY(APP, 'z1'), IDX(APP)]), 0, 'the oversized or chunked POST reserved z1');
  await sub.barrier();
  assert.equal(sub.count(m0, 'itemReserved'), 0);

  const mib = Buffer.from('{"assets":["z1"],"ttl_s":60}'.padEnd(1024 * 1024, ' '));
  const ok = await api(hubA, 'POST', APP, mib, { agent: false, timeoutMs: 10000 });
  assert.equal(ok.status, 200, `a body of exactly 1 MiB: ${show(ok)}`);
  await release(hubA, APP, 'z1');
});

// ------------------------------------------------------------------ a hub dies

test('the hub that served an app dies before the expiry: another hub, which only heard of the app through itemReserved, sweeps it with one publish', async () => {
  const app = 'orphan'; // never served by hub B, not present when B started (no SCAN find)
  const m0 = await sub.settledMark();
  const r = await reserve(hubA, app, ['o1', 'o2'], 2, 'svc-orphan');
  await sub.barrier();
  assert.equal(sub.count(m0, 'itemReserved'), 1);
  const expiredB0 = await hubB.metric('coordhub_reservation_expired_total');
  await hubA.kill('SIGKILL');
  const m1 = sub.mark();
  let failure = null;
  try {
    const d = await expectOneExpiryPublish(m1, r.expires_at_ms, 'a reservation whose hub died', { boundMs: 1500 });
    console.log(`# orphaned app swept by hub B ${d} ms after its expiry`);
    assert.equal(await rc.command(['ZCARD', IDX(app)]), 0, 'hub B emptied the index');
    assert.equal((await hubB.metric('coordhub_reservation_expired_total')) - expiredB0, 2, 'hub B counted the two expired');
  } catch (e) {
    failure = e;
  }
  // Hub A again, for the tests that follow (it finds the app by SCAN now).
  hubA = await startHub({ redisUrl: redis.url });
  agentA = keepAliveAgent();
  if (failure) throw failure;
});

// ------------------------------------------------------------------ Redis down

test('Redis killed: reserve, release and list get 503 on both hubs; after Redis returns all works again, expiry included', async () => {
  await reserve(hubA, 'down', ['d1'], 600);
  await redis.kill('SIGKILL');
  for (const h of [hubA, hubB]) {
    await waitUntil(async () => (await httpGet(`${h.url}/readyz`, { timeoutMs: 2000 })).status === 503, {
      timeoutMs: 10000,
      what: `/readyz 503 on hub ${nameOf(h)}`,
    });
  }
  for (const h of [hubA, hubB]) {
    for (const [method, seg, body] of [
      ['POST', 'down', { assets: ['d2'], ttl_s: 60 }],
      ['DELETE', 'down/d1', undefined],
      ['GET', 'down', undefined],
    ]) {
      const x = await api(h, method, seg, body, { agent: false, timeoutMs: 8000 });
      expectError(x, 503, 'unavailable', `hub ${nameOf(h)}: ${method} ${seg} while Redis is down`);
    }
    // Auth still applies.
    expectError(await api(h, 'GET', 'down', undefined, { agent: false, token: null }), 401, 'unauthorized', 'no token while Redis is down');
    assert.equal((await httpGet(`${h.url}/healthz`)).status, 200);
  }

  await redis.restart(); // empty: no persistence
  for (const h of [hubA, hubB]) {
    await waitUntil(async () => (await httpGet(`${h.url}/readyz`, { timeoutMs: 2000 })).status === 200, {
      timeoutMs: 15000,
      what: `/readyz 200 on hub ${nameOf(h)} after Redis returned`,
    });
  }
  rc = await redis.client();
  sub = await pubsubRecorder(redis.port, ['itemReserved']);
  assert.deepEqual(await list(hubB, 'down'), []);
  const m0 = await sub.settledMark();
  const r = await reserve(hubB, 'down', ['d3'], 1, 'after');
  await sub.barrier();
  assert.equal(sub.count(m0, 'itemReserved'), 1);
  const conflict = await api(hubA, 'POST', 'down', { assets: ['d3'], ttl_s: 5 });
  expectError(conflict, 409, 'already_reserved', 'after Redis returned');
  await expectOneExpiryPublish(sub.mark(), r.expires_at_ms, 'a 1-second reservation after Redis returned');
  assert.deepEqual(await list(hubA, 'down'), []);
});
