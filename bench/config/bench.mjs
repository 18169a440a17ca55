#!/usr/bin/env node
// Configuration cache benchmark (SPEC §7): the stale window between two hubs,
// the cost of an L1 hit, and GET /v1/config throughput. Starts its own
// redis-server and two hubs (A and B) on loopback through the test harness,
// prints Markdown tables, stops everything. Not a test: see README.md.
//
//   node bench/config/bench.mjs [--writes 300] [--bursts 100] [--seconds 3] [--levels 1,4,16,64]
//   COORDHUB_BIN=/path/to/coordhub  (default build/coordhub)
//   BENCH_BUILD=dir                 where CMake builds l1_lookup (default build-bench)
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

// The harness, without its node:test hooks (this is not a test file).
process.env.COORDHUB_HARNESS_NO_HOOKS = '1';
const { HUB_BIN, REDIS_BIN, RespClient, cleanupAll, httpJson, keepAliveAgent, repoRoot, startHub, startRedis } =
  await import('../../tests/integration/harness.mjs');

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : dflt;
}
const WRITES = Number(arg('writes', '300'));
const BURSTS = Number(arg('bursts', '100'));
const BURST_LEN = 5;
const SECONDS = Number(arg('seconds', '3'));
const LEVELS = arg('levels', '1,4,16,64').split(',').map(Number);
const WARMUP_MS = 500;
const WAIT_MS = 5000; // bound on any single wait for a change to show
if (
  !(Number.isInteger(WRITES) && WRITES >= 10 && WRITES <= 10000) ||
  !(Number.isInteger(BURSTS) && BURSTS >= 0 && BURSTS <= 10000) ||
  !(SECONDS > 0 && SECONDS <= 60) ||
  LEVELS.some((n) => !(Number.isInteger(n) && n >= 1 && n <= 512))
) {
  console.error('usage: bench.mjs [--writes 10..10000] [--bursts 0..10000] [--seconds 0<S<=60] [--levels n1,n2,... (1..512)]');
  process.exit(2);
}

const now = () => performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pct = (xs, p) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '-');
const f0 = (x) => (Number.isFinite(x) ? x.toFixed(0) : '-');

// CPU seconds (user + system) used so far by process `pid`, from /proc.
function cpuSeconds(pid) {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in USER_HZ (100)
  } catch {
    return NaN;
  }
}

let A;
let B;
let redis;
let direct; // a RESP connection for writes that bypass the hubs
const agents = new Map();
const admin = (h) => h.token('bench-admin', ['admin'], 3600);
const reader = (h) => h.token('bench-reader', [], 3600);

async function put(h, key, value) {
  const r = await httpJson(`${h.url}/v1/config/${key}`, { method: 'PUT', token: admin(h), body: { value }, agent: agents.get(h) });
  if (r.status !== 200) throw new Error(`PUT ${key}: ${r.status} ${r.body.slice(0, 200)}`);
  return r.json;
}
async function get(h, key) {
  const r = await httpJson(`${h.url}/v1/config/${key}`, { token: reader(h), agent: agents.get(h) });
  if (r.status !== 200) throw new Error(`GET ${key}: ${r.status} ${r.body.slice(0, 200)}`);
  return r.json;
}
// One write of `value` to `key` by `path` ('hub': PUT through A; 'direct':
// SET configuration:<key> around the hubs). Resolves when acknowledged.
async function write(pathKind, key, value) {
  if (pathKind === 'hub') return put(A, key, value);
  const r = await direct.command(['SET', `configuration:${key}`, JSON.stringify(value), 'EX', '180']);
  if (r !== 'OK') throw new Error(`SET: ${r}`);
  return null;
}

// A native watcher on hub h for `key`; every config event is recorded with
// its arrival time.
async function watcher(h, key) {
  const ws = await h.connect('bench-watcher');
  const events = []; // {t, data}
  const waiters = new Set();
  ws.ws.on('message', (d) => {
    const t = now();
    let m;
    try {
      m = JSON.parse(d.toString());
    } catch {
      return;
    }
    if (m.event !== 'config' || m.data.key !== key) return;
    events.push({ t, data: m.data });
    for (const w of waiters) w();
  });
  ws.send({ op: 'config.watch', keys: [key] });
  await ws.waitEvent('watching', WAIT_MS);
  await get(h, key); // the watch's baseline is in
  const until = (pred, ms) =>
    new Promise((resolve) => {
      const check = () => {
        const e = events.find(pred);
        if (e) {
          done();
          resolve(e);
        }
      };
      const timer = setTimeout(() => {
        done();
        resolve(null);
      }, ms);
      const done = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });
  return { ws, events, until, close: () => ws.close() };
}

// ---------------------------------------------------------------- the stale window

// `WRITES` writes by `pathKind`; B is either watched (the time from the
// write's acknowledgement to B's config event) or polled back to back with
// keep-alive (the time from the acknowledgement to the first GET answer on
// B with the new value, B holding the old value in L1 before each write).
async function staleWindow(pathKind, mode) {
  const key = `bench.sw.${pathKind}.${mode}`;
  await put(A, key, { i: 0 });
  const lat = [];
  let staleGets = 0;
  let lost = 0;
  if (mode === 'event') {
    const w = await watcher(B, key);
    for (let i = 1; i <= WRITES; i++) {
      await write(pathKind, key, { i });
      const tAck = now();
      const e = await w.until((x) => x.data.value && x.data.value.i === i, WAIT_MS);
      if (!e) {
        lost++;
        continue;
      }
      lat.push(e.t - tAck);
    }
    await sleep(500); // late duplicates
    const extra = w.events.length - (WRITES - lost);
    w.close();
    return { lat, lost, extra, staleGets: NaN };
  }
  for (let i = 1; i <= WRITES; i++) {
    await get(B, key); // the old value is in B's L1
    await write(pathKind, key, { i });
    const tAck = now();
    for (;;) {
      const j = await get(B, key);
      const t = now();
      if (j.value && j.value.i === i) {
        lat.push(t - tAck);
        break;
      }
      staleGets++;
      if (t - tAck > WAIT_MS) {
        lost++;
        break;
      }
    }
  }
  return { lat, lost, extra: NaN, staleGets };
}

// Bursts of BURST_LEN writes back to back (each acknowledged before the
// next); after each burst: does B's watcher end on the last value?
async function bursts(pathKind) {
  const key = `bench.burst.${pathKind}`;
  await put(A, key, { b: 0, n: 0 });
  const w = await watcher(B, key);
  let finalMissing = 0;
  let writes = 0;
  const settle = [];
  for (let b = 1; b <= BURSTS; b++) {
    for (let n = 1; n <= BURST_LEN; n++) {
      await write(pathKind, key, { b, n });
      writes++;
    }
    const tAck = now();
    const last = (x) => x.data.value && x.data.value.b === b && x.data.value.n === BURST_LEN;
    const e = await w.until(last, 1000);
    if (!e) {
      finalMissing++;
      // make sure the next burst starts from a known state: B serves the last value
      const j = await get(B, key);
      if (!(j.value && j.value.b === b && j.value.n === BURST_LEN)) throw new Error(`B serves ${JSON.stringify(j)} after burst ${b}`);
    } else {
      settle.push(e.t - tAck);
    }
  }
  await sleep(300);
  const events = w.events.length;
  w.close();
  return { writes, events, finalMissing, settle };
}

// ---------------------------------------------------------------- throughput

// Runs `n` workers calling `cycle()` back to back: WARMUP_MS not counted,
// then SECONDS counted. Returns {rate, p50, p99, errors, cpu: {hub, redis,
// client}} with cpu as the share of one core in the counted window.
async function measure(n, makeWorker, pids) {
  const workers = await Promise.all(Array.from({ length: n }, (_, i) => makeWorker(i)));
  const tStart = now() + WARMUP_MS;
  const tEnd = tStart + SECONDS * 1000;
  let count = 0;
  let errors = 0;
  let firstError = null;
  const lat = [];
  let cpu0 = null;
  const snap = () => ({ ...Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, cpuSeconds(p)])), client: process.cpuUsage() });
  const cpu = {};
  const t1 = setTimeout(() => (cpu0 = snap()), Math.max(0, tStart - now()));
  const t2 = setTimeout(() => {
    const c1 = snap();
    for (const k of Object.keys(pids)) cpu[k] = (c1[k] - cpu0[k]) / SECONDS;
    const d = process.cpuUsage(cpu0.client);
    cpu.client = (d.user + d.system) / 1e6 / SECONDS;
  }, Math.max(0, tEnd - now()));
  await Promise.all(
    workers.map(async (w) => {
      while (now() < tEnd) {
        const s = now();
        try {
          await w.cycle();
        } catch (e) {
          errors++;
          firstError ??= e.message;
          if (errors > 100) break;
          continue;
        }
        const e = now();
        if (s >= tStart && e <= tEnd) {
          count++;
          lat.push(e - s);
        }
      }
    }),
  );
  clearTimeout(t1);
  clearTimeout(t2);
  for (const w of workers) w.close?.();
  return { rate: count / SECONDS, p50: pct(lat, 50), p99: pct(lat, 99), errors, firstError, cpu };
}

const httpWorker = (h, pathAndQuery, expectStatus) => async () => {
  const agent = keepAliveAgent();
  const url = `${h.url}${pathAndQuery}`;
  const token = reader(h);
  return {
    async cycle() {
      const r = await httpJson(url, { token, agent });
      if (r.status !== expectStatus) throw new Error(`GET ${pathAndQuery}: ${r.status} ${r.body.slice(0, 200)}`);
    },
    close: () => agent.destroy(),
  };
};

// ---------------------------------------------------------------- ns per L1 lookup

// Builds bench/config/l1_lookup.c (the hub's cache.c and validate.c with
// stand-ins for the bus and the store) through CMake, in its own build tree
// with -DCOORDHUB_BENCH=ON: the same flags, warnings-as-errors included, as
// the hub. Returns the binary's path; a failed configure or build throws
// (its output is on stderr), and the whole bench fails: never skipped.
function buildL1Lookup() {
  const dir = process.env.BENCH_BUILD || path.join(repoRoot, 'build-bench');
  const out = { stdio: ['ignore', 2, 2], timeout: 600000 }; // compiler output to stderr, not the tables
  process.stderr.write(`building l1_lookup (cmake, ${dir}) ...\n`);
  execFileSync(
    'cmake',
    ['-S', repoRoot, '-B', dir, '-DCMAKE_BUILD_TYPE=RelWithDebInfo', '-DCOORDHUB_BENCH=ON', '-DCOORDHUB_TESTS=OFF'],
    out,
  );
  execFileSync('cmake', ['--build', dir, '--target', 'bench_l1_lookup', '--parallel', String(os.cpus().length || 2)], out);
  const bin = path.join(dir, 'bench', 'l1_lookup');
  if (!fs.existsSync(bin)) throw new Error(`the build left no ${bin}`);
  return bin;
}

// Runs l1_lookup at 1 to 10,000 keys: [{keys, ns_per_lookup, ...}]. A run
// that fails (not every lookup an L1 hit, a crash) throws.
function l1Lookup(bin) {
  const rows = [];
  for (const keys of [1, 100, 1000, 10000]) {
    const line = execFileSync(bin, [String(keys), '20000000'], { encoding: 'utf8', timeout: 120000, stdio: ['ignore', 'pipe', 2] }).trim();
    rows.push(JSON.parse(line));
  }
  return rows;
}

// ---------------------------------------------------------------- main

async function cacheCounters(h) {
  const s = await h.metrics();
  const m = (name, labels = {}) =>
    s.filter((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v)).reduce((a, x) => a + x.value, 0);
  return { l1: m('coordhub_config_cache_hits_total', { tier: 'l1' }), misses: m('coordhub_config_cache_misses_total') };
}

async function main() {
  const watchdog = setTimeout(
    async () => {
      console.error('bench: over its time bound, stopping');
      await cleanupAll().catch(() => {});
      process.exit(3);
    },
    (LEVELS.length * 3 * (SECONDS + 2) + (WRITES * 4 + BURSTS * BURST_LEN * 2) * 0.05 + 180) * 1000,
  );
  watchdog.unref();

  // first, so that a build failure stops the bench before anything starts
  const l1Bin = buildL1Lookup();

  redis = await startRedis();
  A = await startHub({ redisUrl: redis.url, logLevel: 'warn' });
  B = await startHub({ redisUrl: redis.url, logLevel: 'warn' });
  for (const h of [A, B]) agents.set(h, keepAliveAgent());
  direct = await RespClient.connect(redis.port);

  const redisVersion = /redis_version:(\S+)/.exec(await direct.command(['INFO', 'server']))?.[1];
  let hubVersion = '?';
  try {
    hubVersion = execFileSync(HUB_BIN, ['--version'], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    /* not important */
  }
  console.log(
    `configuration cache, two hubs (A, B) on one Redis\n` +
      `hub ${HUB_BIN} (${hubVersion}), ${REDIS_BIN} ${redisVersion}, node ${process.version}, ` +
      `${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}); hubs, Redis and this client on one machine\n`,
  );

  // -- the stale window
  process.stderr.write('stale window ...\n');
  const sw = [];
  for (const pathKind of ['hub', 'direct']) {
    for (const mode of ['event', 'poll']) {
      const r = await staleWindow(pathKind, mode);
      sw.push({ pathKind, mode, ...r });
      process.stderr.write(`  ${pathKind}/${mode}: p50 ${f2(pct(r.lat, 50))} ms, max ${f2(Math.max(...r.lat))} ms\n`);
    }
  }
  console.log(`### Stale window: ${WRITES} writes each, from the write's acknowledgement until hub B serves the new value\n`);
  console.log('| write path | B measured by | p50 ms | p99 ms | max ms | min ms | stale GETs after the ack | changes never seen | extra events |');
  console.log('|---|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of sw) {
    const what = r.pathKind === 'hub' ? 'PUT through hub A' : 'SET configuration:<key> (bypass)';
    const how = r.mode === 'event' ? '`config` event on a socket' : 'GET polled back to back';
    console.log(
      `| ${what} | ${how} | ${f2(pct(r.lat, 50))} | ${f2(pct(r.lat, 99))} | ${f2(Math.max(...r.lat))} | ${f2(Math.min(...r.lat))} | ` +
        `${Number.isFinite(r.staleGets) ? `${r.staleGets} (${f2(r.staleGets / WRITES)}/write)` : '-'} | ${r.lost} | ${Number.isFinite(r.extra) ? r.extra : '-'} |`,
    );
  }
  console.log(
    '\nA negative time: B\'s event arrived before the writer\'s acknowledgement did. "extra events": events beyond one per change (duplicates).\n',
  );

  // -- bursts
  if (BURSTS > 0) {
    process.stderr.write('bursts ...\n');
    const br = [];
    for (const pathKind of ['hub', 'direct']) br.push({ pathKind, ...(await bursts(pathKind)) });
    console.log(`### Bursts: ${BURSTS} bursts of ${BURST_LEN} writes back to back (each acknowledged before the next), a watcher on B\n`);
    console.log('| write path | writes | events on B | bursts whose last value never came as an event (1 s) | last event after the last ack p50 / max ms |');
    console.log('|---|---:|---:|---:|---:|');
    for (const r of br) {
      console.log(
        `| ${r.pathKind === 'hub' ? 'PUT through hub A' : 'SET configuration:<key> (bypass)'} | ${r.writes} | ${r.events} | ` +
          `${r.finalMissing} | ${f2(pct(r.settle, 50))} / ${f2(Math.max(...r.settle))} |`,
      );
    }
    console.log('\nFewer events than writes is allowed (a re-read sees the latest of several changes); a missing last value is not.\n');
  }

  // -- L1 hit cost
  process.stderr.write('ns per L1 lookup ...\n');
  const l1Rows = l1Lookup(l1Bin);
  console.log('### L1 hit cost\n');
  console.log('In-process, `cache_get()` answering from L1 (bench/config/l1_lookup.c, the hub\'s cache.c built RelWithDebInfo (-O2), 20 M lookups):\n');
  console.log('| keys in L1 | ns per lookup |');
  console.log('|---:|---:|');
  for (const r of l1Rows) console.log(`| ${r.keys} | ${r.ns_per_lookup.toFixed(1)} |`);
  console.log('');

  process.stderr.write('HTTP GET throughput ...\n');
  // fresh keep-alive connections: the hubs close idle ones, and a request
  // racing that close would fail
  for (const h of [A, B]) {
    agents.get(h).destroy();
    agents.set(h, keepAliveAgent());
  }
  const hot = 'bench.hot';
  await put(A, hot, { enabled: true, limit: 250, note: 'a typical small flag' });
  await get(B, hot);
  const cat = 'benchcat';
  for (let i = 0; i < 20; i++) {
    const r = await httpJson(`${A.url}/v1/config/bench.cat.${i}`, { method: 'PUT', token: admin(A), body: { value: { i }, category: cat } });
    if (r.status !== 200) throw new Error(`PUT: ${r.status}`);
  }
  await sleep(100);
  const rows = [];
  let failed = false;
  const before = await cacheCounters(B);
  for (const n of LEVELS) {
    const h = await measure(n, httpWorker(B, `/v1/config/${hot}`, 200), { hub: B.pid, redis: redis.pid });
    const ref = await measure(n, httpWorker(B, '/v1/config/bad*key', 400), { hub: B.pid, redis: redis.pid });
    const l = await measure(n, httpWorker(B, `/v1/config?category=${cat}`, 200), { hub: B.pid, redis: redis.pid });
    for (const [what, r] of [['hot key', h], ['400 reference', ref], ['category', l]]) {
      if (r.errors) {
        failed = true;
        console.error(`concurrency ${n}, ${what}: ${r.errors} errors, first: ${r.firstError}`);
      }
    }
    rows.push({ n, h, ref, l });
    process.stderr.write(`  concurrency ${n}: hot ${h.rate.toFixed(0)}/s, 400 ${ref.rate.toFixed(0)}/s, category ${l.rate.toFixed(0)}/s\n`);
  }
  const afterC = await cacheCounters(B);
  const us = (r) => (r.rate > 0 ? (r.cpu.hub * 1e6) / r.rate : NaN);
  const pc = (x) => (Number.isFinite(x) ? `${Math.round(x * 100)}` : '-');
  console.log(
    `HTTP on hub B, keep-alive, one connection per worker, ${SECONDS} s per cell after ${WARMUP_MS} ms warm-up. ` +
      '"hot key": GET /v1/config/{key} answered from L1; "400 reference": GET /v1/config/bad*key (the same parsing, token ' +
      'check and JSON error answer, no lookup); "category": GET /v1/config?category= of 20 keys from the L1 bundle.\n',
  );
  console.log(
    '| concurrency | hot key req/s | p50 / p99 ms | hub CPU µs/req | CPU % hub / client | 400 reference req/s | hub CPU µs/req | category req/s | p50 / p99 ms | hub CPU µs/req |',
  );
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const { n, h, ref, l } of rows) {
    console.log(
      `| ${n} | ${f0(h.rate)} | ${f2(h.p50)} / ${f2(h.p99)} | ${f0(us(h))} | ${pc(h.cpu.hub)} / ${pc(h.cpu.client)} | ` +
        `${f0(ref.rate)} | ${f0(us(ref))} | ${f0(l.rate)} | ${f2(l.p50)} / ${f2(l.p99)} | ${f0(us(l))} |`,
    );
  }
  console.log(
    `\nCache misses on B during these runs: ${afterC.misses - before.misses} (L1 hits: ${afterC.l1 - before.l1}). ` +
      'CPU %: share of one core in the counted window.',
  );

  // -- for scale: the same read straight from Redis (what the platform does today)
  const redisWorker = async () => {
    const c = await RespClient.connect(redis.port);
    return {
      async cycle() {
        const v = await c.command(['GET', `configuration:${hot}`]);
        if (typeof v !== 'string') throw new Error(`GET: ${v}`);
      },
      close: () => c.close(),
    };
  };
  const dr = [];
  for (const n of [1, 16]) dr.push({ n, r: await measure(n, redisWorker, { redis: redis.pid }) });
  console.log(
    `\nFor scale, GET configuration:<key> straight from Redis on a raw RESP connection: ` +
      dr.map(({ n, r }) => `concurrency ${n}: ${f0(r.rate)}/s, p50 ${f2(r.p50)} ms`).join('; ') +
      '.',
  );
  return failed ? 1 : 0;
}

let code = 1;
try {
  code = await main();
} catch (e) {
  console.error(`bench: ${e.stack || e.message}`);
}
try {
  direct?.close();
  await cleanupAll();
} catch (e) {
  console.error(`bench: ${e.message}`);
  code = code || 1;
}
process.exit(code);
