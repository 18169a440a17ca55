// `coordhub migrate-reservations` (SPEC §6 "Reserved assets", issue 5): a
// hand-made legacy pair of lists (`reserved-assets_<app>` ids,
// `reserved-assets-info_<app>` JSON blobs {assetId, expired} in epoch ms or
// seconds) is imported as TTL'd reservations; expired, malformed, id-without-
// blob and already-reserved entries are skipped and reported; a second run
// changes nothing; one itemReserved when something was imported; the legacy
// lists are left alone; custom key names; a large pair; a hub started later
// finds the imported app by SCAN and sweeps it on time; bad flags and an
// unreachable Redis exit 2.
import assert from 'node:assert/strict';
import { before } from 'node:test';
import { freePort, httpJson, pubsubRecorder, runHub, sleep, startHub, startRedis, test } from './harness.mjs';

let redis;
let hub;
let rc;
let sub;

before(async () => {
  redis = await startRedis();
  hub = await startHub({ redisUrl: redis.url });
  rc = await redis.client();
  sub = await pubsubRecorder(redis.port, ['itemReserved']);
});

const KEY = (app, asset) => `reserved:{${app}}:${asset}`;
const IDX = (app) => `reserved:{${app}}`;
const IDS = (app) => `reserved-assets_${app}`;
const INFO = (app) => `reserved-assets-info_${app}`;
const show = (r) => `HTTP ${r.status} ${r.body.slice(0, 300)}`;

async function redisNowMs(c = rc) {
  const [s, us] = await c.command(['TIME']);
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

function migrate(args, { timeoutMs = 30000 } = {}) {
  return runHub(['migrate-reservations', ...args], { timeoutMs });
}

const outOf = (r) => `exit ${r.code} signal ${r.signal}\n--- stdout ---\n${r.stdout.slice(0, 3000)}\n--- stderr ---\n${r.stderr.slice(0, 3000)}`;

// Parses "imported N, skipped M (a reason, b reason, ...)" from stdout.
function summary(r) {
  const m = /imported (\d+), skipped (\d+)(?: \(([^)]*)\))?/.exec(r.stdout);
  assert.ok(m, `no summary line "imported N, skipped M (...)" on stdout:\n${outOf(r)}`);
  const reasons = {};
  if (m[3]) {
    for (const part of m[3].split(',')) {
      const p = /^\s*(\d+) (.+?)\s*$/.exec(part);
      assert.ok(p, `summary reason "${part}" is not "<count> <reason>": ${m[0]}`);
      if (Number(p[1])) reasons[p[2]] = Number(p[1]);
    }
  }
  const sum = Object.values(reasons).reduce((a, b) => a + b, 0);
  assert.equal(sum, Number(m[2]), `skipped ${m[2]} but the reasons add up to ${sum}: ${m[0]}`);
  return { imported: Number(m[1]), skipped: Number(m[2]), reasons, line: m[0] };
}

// Asserts a line of the output names `id` (as a whole id) and `reason`.
function assertSkipLine(r, id, reason) {
  const esc = id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const idRe = new RegExp(`(?<![A-Za-z0-9_.-])${esc}(?![A-Za-z0-9_.-])`);
  const lines = `${r.stdout}\n${r.stderr}`.split('\n');
  assert.ok(
    lines.some((l) => idRe.test(l) && l.includes(reason)),
    `no output line names the skipped entry ${id} with "${reason}":\n${outOf(r)}`,
  );
}

async function pushLegacy(app, ids, blobs, { idsKey = IDS(app), infoKey = INFO(app), c = rc } = {}) {
  await c.command(['DEL', idsKey, infoKey]);
  for (let i = 0; i < ids.length; i += 500) await c.command(['RPUSH', idsKey, ...ids.slice(i, i + 500)]);
  const texts = blobs.map((b) => (typeof b === 'string' ? b : JSON.stringify(b)));
  for (let i = 0; i < texts.length; i += 500) await c.command(['RPUSH', infoKey, ...texts.slice(i, i + 500)]);
}

// Everything under reserved:{app}: key values and PTTLs, index scores.
async function snapshot(app) {
  const keys = (await rc.command(['KEYS', `reserved:{${app}}:*`])).sort();
  const values = {};
  const pttls = {};
  for (const k of keys) {
    values[k] = await rc.command(['GET', k]);
    pttls[k] = await rc.command(['PTTL', k]);
  }
  const idx = await rc.command(['ZRANGE', IDX(app), '0', '-1', 'WITHSCORES']);
  return { keys, values, pttls, idx };
}

async function assertImported(app, asset, expires_at_ms, owner, { from, to }) {
  const raw = await rc.command(['GET', KEY(app, asset)]);
  assert.ok(raw !== null, `${KEY(app, asset)} was not imported`);
  const v = JSON.parse(raw);
  assert.equal(v.expires_at_ms, expires_at_ms, `${KEY(app, asset)}: expires_at_ms (the legacy expiry in ms): ${raw}`);
  if (owner !== undefined) assert.equal(v.owner, owner, `${KEY(app, asset)}: owner: ${raw}`);
  else assert.equal(typeof v.owner, 'string', `${KEY(app, asset)}: owner: ${raw}`);
  assert.ok(Number.isInteger(v.reserved_at_ms) && v.reserved_at_ms >= from - 1 && v.reserved_at_ms <= to + 1, `${KEY(app, asset)}: reserved_at_ms ${v.reserved_at_ms} not within the run (${from}..${to})`);
  const pttl = await rc.command(['PTTL', KEY(app, asset)]);
  const left = expires_at_ms - (await redisNowMs());
  assert.ok(pttl > 0 && Math.abs(pttl - left) <= 2000, `${KEY(app, asset)}: PTTL ${pttl}, expected what remains, about ${left}`);
  assert.equal(Number(await rc.command(['ZSCORE', IDX(app), asset])), expires_at_ms, `ZSCORE ${IDX(app)} ${asset}`);
}

async function assertAbsent(app, asset) {
  assert.equal(await rc.command(['EXISTS', KEY(app, asset)]), 0, `${KEY(app, asset)} should not exist`);
  assert.equal(await rc.command(['ZSCORE', IDX(app), asset]), null, `${asset} should not be in ${IDX(app)}`);
}

test('a legacy pair of lists: unexpired entries imported with what remains of their TTL, the rest skipped and reported; a second run changes nothing', async () => {
  const app = 'legacy1';
  const now = await redisNowMs();
  const exp = {
    m1: now + 600000, // ms form
    m2: (Math.floor(now / 1000) + 900) * 1000, // seconds form, below
    m3: now + 3600000,
  };
  const ids = ['m1', 'm2', 'm3', 'e1', 'e2', 'pre', 'mal1', 'noinfo1'];
  const blobs = [
    { assetId: 'm1', expired: exp.m1 },
    { assetId: 'm2', expired: exp.m2 / 1000 },
    { assetId: 'm3', expired: exp.m3, botId: '7', price: 12.5 }, // extra fields are fine
    { assetId: 'e1', expired: now - 1000 },
    { assetId: 'e2', expired: Math.floor(now / 1000) - 100 },
    { assetId: 'pre', expired: now + 600000 },
    { assetId: 'mal1', expired: 'tomorrow' },
    // noinfo1: no blob at all
  ];
  await pushLegacy(app, ids, blobs);
  const legacyIds = await rc.command(['LRANGE', IDS(app), '0', '-1']);
  const legacyInfo = await rc.command(['LRANGE', INFO(app), '0', '-1']);

  // `pre` is already reserved (through the hub), by someone else, until earlier.
  const tok = hub.token('svc', ['service']);
  const p = await httpJson(`${hub.url}/v1/reservations/${app}`, { method: 'POST', body: { assets: ['pre'], ttl_s: 300, owner: 'svc-pre' }, token: tok });
  assert.equal(p.status, 200, `reserving pre through the hub: ${show(p)}`);
  const preRaw = await rc.command(['GET', KEY(app, 'pre')]);

  await sub.barrier();
  const m0 = await sub.settledMark();
  const from = await redisNowMs();
  const r1 = await migrate(['--app', app, '--redis', redis.url, '--owner', 'migrator']);
  const to = await redisNowMs();
  assert.equal(r1.code, 0, `first run:\n${outOf(r1)}`);
  console.log(`# first run: ${r1.stdout.trim().split('\n').join(' | ')}`);
  const s1 = summary(r1);
  assert.deepEqual(
    { imported: s1.imported, skipped: s1.skipped, reasons: s1.reasons },
    { imported: 3, skipped: 5, reasons: { expired: 2, 'already reserved': 1, malformed: 1, 'no expiry': 1 } },
    `first run summary: ${s1.line}`,
  );
  assertSkipLine(r1, 'e1', 'expired');
  assertSkipLine(r1, 'e2', 'expired');
  assertSkipLine(r1, 'pre', 'already reserved');
  assertSkipLine(r1, 'mal1', 'malformed');
  assertSkipLine(r1, 'noinfo1', 'no expiry');

  for (const a of ['m1', 'm2', 'm3']) await assertImported(app, a, exp[a], 'migrator', { from, to });
  for (const a of ['e1', 'e2', 'mal1', 'noinfo1']) await assertAbsent(app, a);
  assert.equal(await rc.command(['GET', KEY(app, 'pre')]), preRaw, 'the existing reservation of pre is untouched');
  assert.equal(await rc.command(['ZCARD', IDX(app)]), 4);
  await sub.barrier();
  assert.equal(sub.count(m0, 'itemReserved'), 1, 'the run that imported publishes itemReserved once');

  // The legacy lists are left as they were.
  assert.deepEqual(await rc.command(['LRANGE', IDS(app), '0', '-1']), legacyIds);
  assert.deepEqual(await rc.command(['LRANGE', INFO(app), '0', '-1']), legacyInfo);
  assert.equal(await rc.command(['TTL', IDS(app)]), -1);
  assert.equal(await rc.command(['TTL', INFO(app)]), -1);

  // The hub lists what was imported, sorted by expiry.
  const g = await httpJson(`${hub.url}/v1/reservations/${app}`, { token: tok });
  assert.equal(g.status, 200, show(g));
  assert.deepEqual(
    g.json.assets.map((e) => [e.asset, e.owner]),
    [
      ['pre', 'svc-pre'],
      ['m1', 'migrator'],
      ['m2', 'migrator'],
      ['m3', 'migrator'],
    ],
  );
  assert.deepEqual(g.json.assets.find((e) => e.asset === 'm2').expires_at_ms, exp.m2);

  // Second run: nothing changes, nothing is published.
  const snap1 = await snapshot(app);
  await sub.barrier();
  const m1 = sub.mark();
  const r2 = await migrate(['--app', app, '--redis', redis.url, '--owner', 'someone-else']);
  assert.equal(r2.code, 0, `second run:\n${outOf(r2)}`);
  console.log(`# second run: ${r2.stdout.trim().split('\n').join(' | ')}`);
  const s2 = summary(r2);
  assert.deepEqual(
    { imported: s2.imported, skipped: s2.skipped, reasons: s2.reasons },
    { imported: 0, skipped: 8, reasons: { expired: 2, 'already reserved': 4, malformed: 1, 'no expiry': 1 } },
    `second run summary: ${s2.line}`,
  );
  for (const a of ['m1', 'm2', 'm3', 'pre']) assertSkipLine(r2, a, 'already reserved');
  const snap2 = await snapshot(app);
  assert.deepEqual(snap2.keys, snap1.keys);
  assert.deepEqual(snap2.values, snap1.values, 'values unchanged (owner not overwritten)');
  assert.deepEqual(snap2.idx, snap1.idx, 'index unchanged');
  for (const k of snap1.keys) assert.ok(snap2.pttls[k] <= snap1.pttls[k], `${k}: PTTL grew from ${snap1.pttls[k]} to ${snap2.pttls[k]}`);
  await sub.barrier();
  assert.equal(sub.count(m1, 'itemReserved'), 0, 'a run that imported nothing publishes nothing');
  assert.deepEqual(await rc.command(['LRANGE', IDS(app), '0', '-1']), legacyIds);
  assert.deepEqual(await rc.command(['LRANGE', INFO(app), '0', '-1']), legacyInfo);
});

test('--ids-key and --info-key name other lists; without --owner the owner is still a string', async () => {
  const app = 'custom';
  const now = await redisNowMs();
  await pushLegacy(app, ['c1', 'c2', 'c3'], [
    { assetId: 'c1', expired: now + 120000 },
    { assetId: 'c2', expired: Math.floor(now / 1000) + 240 },
    { assetId: 'c3', expired: now - 1 },
  ], { idsKey: 'legacy:ids', infoKey: 'legacy:info' });
  // Decoys under the default names must not be read.
  await pushLegacy(app, ['decoy'], [{ assetId: 'decoy', expired: now + 120000 }]);
  const from = await redisNowMs();
  const r = await migrate(['--app', app, '--redis', redis.url, '--ids-key', 'legacy:ids', '--info-key', 'legacy:info']);
  const to = await redisNowMs();
  assert.equal(r.code, 0, outOf(r));
  const s = summary(r);
  assert.deepEqual({ imported: s.imported, skipped: s.skipped, reasons: s.reasons }, { imported: 2, skipped: 1, reasons: { expired: 1 } }, s.line);
  await assertImported(app, 'c1', now + 120000, undefined, { from, to });
  await assertImported(app, 'c2', (Math.floor(now / 1000) + 240) * 1000, undefined, { from, to });
  await assertAbsent(app, 'c3');
  await assertAbsent(app, 'decoy');
});

test('nothing to import: all expired, or no legacy lists at all: exit 0, no keys, no publish', async () => {
  const now = await redisNowMs();
  await pushLegacy('allexp', ['x1', 'x2'], [
    { assetId: 'x1', expired: now - 60000 },
    { assetId: 'x2', expired: Math.floor(now / 1000) - 60 },
  ]);
  await sub.barrier();
  const m0 = await sub.settledMark();
  const r = await migrate(['--app', 'allexp', '--redis', redis.url]);
  assert.equal(r.code, 0, outOf(r));
  const s = summary(r);
  assert.deepEqual({ imported: s.imported, skipped: s.skipped, reasons: s.reasons }, { imported: 0, skipped: 2, reasons: { expired: 2 } }, s.line);
  const none = await migrate(['--app', 'nolists', '--redis', redis.url]);
  assert.equal(none.code, 0, outOf(none));
  const sn = summary(none);
  assert.equal(sn.imported, 0);
  assert.equal(sn.skipped, 0);
  await sub.barrier();
  assert.equal(sub.count(m0, 'itemReserved'), 0);
  assert.deepEqual(await rc.command(['KEYS', 'reserved:{allexp}*']), []);
  assert.deepEqual(await rc.command(['KEYS', 'reserved:{nolists}*']), []);
});

test('a large legacy pair (2500 entries, 500 expired) imports in one run, bounded in time', async () => {
  const app = 'biglegacy';
  const now = await redisNowMs();
  const ids = Array.from({ length: 2500 }, (_, i) => `big-${i}`);
  const blobs = ids.map((id, i) => ({ assetId: id, expired: i % 5 === 4 ? now - 1000 - i : now + 600000 + i }));
  await pushLegacy(app, ids, blobs);
  const t0 = performance.now();
  const r = await migrate(['--app', app, '--redis', redis.url, '--owner', 'bulk'], { timeoutMs: 60000 });
  const ms = performance.now() - t0;
  assert.equal(r.code, 0, outOf(r));
  const s = summary(r);
  assert.deepEqual({ imported: s.imported, skipped: s.skipped, reasons: s.reasons }, { imported: 2000, skipped: 500, reasons: { expired: 500 } }, s.line);
  console.log(`# 2500 legacy entries: ${s.line} in ${ms.toFixed(0)} ms (process start included)`);
  assert.equal(await rc.command(['ZCARD', IDX(app)]), 2000);
  assert.equal(Number(await rc.command(['ZSCORE', IDX(app), 'big-1233'])), now + 601233);
  await assertAbsent(app, 'big-4');
  const r2 = await migrate(['--app', app, '--redis', redis.url], { timeoutMs: 60000 });
  assert.equal(r2.code, 0, outOf(r2));
  const s2 = summary(r2);
  assert.deepEqual({ imported: s2.imported, skipped: s2.skipped }, { imported: 0, skipped: 2500 }, s2.line);
  assert.equal(await rc.command(['ZCARD', IDX(app)]), 2000);
});

test('a hub started after the migration finds the imported apps by SCAN and sweeps them on time, one publish each', async () => {
  // A Redis of its own with no hub running during the migration.
  const r2 = await startRedis();
  const c2 = await r2.client();
  // Enough other keys that SCAN needs many pages.
  for (let i = 0; i < 3000; i += 500) {
    await c2.command(['MSET', ...Array.from({ length: 500 }, (_, j) => [`filler:${i + j}`, 'x']).flat()]);
  }
  const now = await redisNowMs(c2);
  const expA = now + 7000;
  const expB = now + 9000;
  await pushLegacy('scanA', ['sa1', 'sa2'], [{ assetId: 'sa1', expired: expA }, { assetId: 'sa2', expired: expA }], { c: c2 });
  await pushLegacy('scanB', ['sb1'], [{ assetId: 'sb1', expired: expB }], { c: c2 });
  for (const app of ['scanA', 'scanB']) {
    const r = await migrate(['--app', app, '--redis', r2.url]);
    assert.equal(r.code, 0, outOf(r));
  }
  const rec = await pubsubRecorder(r2.port, ['itemReserved']);
  const h = await startHub({ redisUrl: r2.url });
  const ready = Date.now();
  console.log(`# hub ready ${expA - ready} ms before the first imported expiry`);
  const m0 = rec.mark();
  const got = await rec.waitCount(m0, 2, { channel: 'itemReserved', timeoutMs: Math.max(0, expB - Date.now()) + 8000, what: 'the expiry publishes of scanA and scanB' });
  const dA = got[0].t - Math.max(expA, ready);
  const dB = got[1].t - Math.max(expB, ready);
  await sleep(1500);
  await rec.barrier();
  assert.equal(rec.count(m0, 'itemReserved'), 2, 'one publish per expiry');
  console.log(`# SCAN-discovered apps swept ${dA} and ${dB} ms after their expiries`);
  assert.ok(got[0].t >= expA - 5 && dA <= 1000, `scanA swept ${got[0].t - expA} ms after its expiry (hub ready at ${ready - expA})`);
  assert.ok(got[1].t >= expB - 5 && dB <= 1000, `scanB swept ${got[1].t - expB} ms after its expiry`);
  assert.equal(await c2.command(['EXISTS', IDX('scanA'), IDX('scanB')]), 0, 'both indexes emptied');
  assert.equal(await h.stop(), 0);
  c2.close();
  rec.close();
  await r2.stop();
});

test('bad flags exit 2 with a one-line error and write nothing; an unreachable Redis exits 2', async () => {
  const app = 'flagsapp';
  const now = await redisNowMs();
  await pushLegacy(app, ['f1'], [{ assetId: 'f1', expired: now + 600000 }]);
  const url = redis.url;
  const cases = [
    [[], 'no --app'],
    [['--redis', url], 'no --app, --redis given'],
    [['--app'], '--app without a value'],
    [['--app', '', '--redis', url], 'empty app id'],
    [['--app', 'a b', '--redis', url], 'app id with a space'],
    [['--app', 'a.b', '--redis', url], 'app id with a dot'],
    [['--app', 'x'.repeat(33), '--redis', url], '33-char app id'],
    [['--app', app, '--redis', url, '--bogus'], 'unknown flag'],
    [['--app', app, '--redis', url, 'extra'], 'stray argument'],
    [['--app', app, '--redis'], '--redis without a value'],
    [['--app', app, '--redis', 'nope://127.0.0.1:1'], 'bad Redis URL'],
    [['--app', app, '--redis', url, '--ids-key'], '--ids-key without a value'],
    [['--app', app, '--redis', url, '--info-key'], '--info-key without a value'],
    [['--app', app, '--redis', url, '--owner'], '--owner without a value'],
  ];
  const failures = [];
  for (const [args, what] of cases) {
    const r = await migrate(args, { timeoutMs: 15000 });
    if (r.code !== 2) failures.push(`${what} (${JSON.stringify(args)}): exit ${r.code} signal ${r.signal}, stderr ${JSON.stringify(r.stderr.slice(0, 300))}`);
    else if (!r.stderr.trim()) failures.push(`${what}: exit 2 but nothing on stderr`);
  }
  assert.deepEqual(failures, [], `${failures.length} of ${cases.length} bad invocations`);
  assert.deepEqual(await rc.command(['KEYS', `reserved:{${app}}*`]), [], 'a bad invocation imported something');

  const closed = await freePort();
  const t0 = performance.now();
  const r = await migrate(['--app', app, '--redis', `redis://127.0.0.1:${closed}/0`], { timeoutMs: 20000 });
  const ms = performance.now() - t0;
  assert.equal(r.code, 2, `unreachable Redis:\n${outOf(r)}`);
  assert.match(r.stderr, /redis|connect|refused/i, `unreachable Redis: the error names the problem:\n${outOf(r)}`);
  console.log(`# unreachable Redis: exit 2 after ${ms.toFixed(0)} ms: ${r.stderr.trim().split('\n')[0]}`);

  // The good invocation works (the flags above were the only problem).
  const ok = await migrate(['--app', app, '--redis', url]);
  assert.equal(ok.code, 0, outOf(ok));
  assert.equal(summary(ok).imported, 1);
});
