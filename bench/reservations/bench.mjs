#!/usr/bin/env node
// Reserved assets through the hub (SPEC §6, issue 5):
//  1. reserve + release cycles per second (POST /v1/reservations/{app} of one
//     asset, then DELETE /v1/reservations/{app}/{asset}) over keep-alive
//     connections, at a few concurrency levels;
//  2. listing time for LIST_SIZE (10k) reserved assets: GET through the hub
//     (one request, JSON parsed) next to the legacy scan on the same data in
//     the same run: LRANGE of the legacy pair of lists `reserved-assets_<app>`
//     / `reserved-assets-info_<app>` (both in one pipelined round trip), then
//     JSON.parse of every blob and a filter of the expired ones, in Node. A
//     second legacy row adds as many expired leftovers (what the lists
//     accumulate when the cleanup job fails), which the hub's index never
//     holds.
// Starts its own redis-server and hub (loopback only) and stops them; prints
// Markdown tables. Not a test: see README.md.
//
//   node bench/reservations/bench.mjs [--seconds S] [--levels 1,4,16] [--list-size N] [--reps R]
//   COORDHUB_BIN=/path/to/coordhub  (default build/coordhub)
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';

// The harness, without its node:test hooks (this is not a test file).
process.env.COORDHUB_HARNESS_NO_HOOKS = '1';
const { HUB_BIN, REDIS_BIN, RespClient, cleanupAll, httpJson, keepAliveAgent, startHub, startRedis } = await import(
  '../../tests/integration/harness.mjs'
);

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : dflt;
}
const SECONDS = Number(arg('seconds', '3'));
const LEVELS = arg('levels', '1,4,16').split(',').map(Number);
const LIST_SIZE = Number(arg('list-size', '10000'));
const REPS = Number(arg('reps', '9'));
const WARMUP_MS = 500;
const PER_POST = 1000; // the API's bound on assets per reserve
if (
  !(SECONDS > 0 && SECONDS <= 60) ||
  LEVELS.some((n) => !(Number.isInteger(n) && n >= 1 && n <= 256)) ||
  !(Number.isInteger(LIST_SIZE) && LIST_SIZE >= 1 && LIST_SIZE <= 100000) ||
  !(Number.isInteger(REPS) && REPS >= 1 && REPS <= 100)
) {
  console.error('usage: bench.mjs [--seconds 0<S<=60] [--levels n1,n2,... (1..256)] [--list-size 1..100000] [--reps 1..100]');
  process.exit(2);
}

const now = () => performance.now();
const pct = (xs, p) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const median = (xs) => pct(xs, 50);

// CPU seconds (user + system) used so far by process `pid`, from /proc.
function cpuSeconds(pid) {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (100/s on Linux)
  } catch {
    return NaN;
  }
}

// Runs `n` workers calling `cycle()` back to back: WARMUP_MS not counted,
// then SECONDS counted. Returns {rate, p50, p99, errors, firstError, cpu}.
async function measure(n, makeWorker, pids) {
  const workers = await Promise.all(Array.from({ length: n }, (_, i) => makeWorker(i)));
  const t0 = now();
  const tStart = t0 + WARMUP_MS;
  const tEnd = tStart + SECONDS * 1000;
  let cycles = 0;
  let errors = 0;
  let firstError = null;
  const lat = [];
  let cpu0 = null;
  const cpu = {};
  const snap = () => ({ ...Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, cpuSeconds(p)])), client: process.cpuUsage() });
  const tA = setTimeout(() => (cpu0 = snap()), WARMUP_MS);
  const tB = setTimeout(() => {
    const c1 = snap();
    for (const k of Object.keys(pids)) cpu[k] = (c1[k] - cpu0[k]) / SECONDS;
    const d = process.cpuUsage(cpu0.client);
    cpu.client = (d.user + d.system) / 1e6 / SECONDS;
  }, WARMUP_MS + SECONDS * 1000);
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
          cycles++;
          lat.push(e - s);
        }
      }
    }),
  );
  await new Promise((r) => setTimeout(r, Math.max(0, tEnd - now() + 20)));
  clearTimeout(tA);
  clearTimeout(tB);
  for (const w of workers) w.close?.();
  return { rate: cycles / SECONDS, p50: pct(lat, 50), p99: pct(lat, 99), errors, firstError, cpu };
}

async function main() {
  const watchdog = setTimeout(
    async () => {
      console.error('bench: over its time bound, stopping');
      await cleanupAll().catch(() => {});
      process.exit(3);
    },
    (LEVELS.length * (SECONDS + 3) + 120) * 1000,
  );
  watchdog.unref();

  const redis = await startRedis();
  const hub = await startHub({ redisUrl: redis.url, logLevel: 'warn' });
  const jwt = hub.token('bench', ['service'], 3600);
  const rc = await RespClient.connect(redis.port);

  // ---- 1. reserve + release cycles
  const hubWorker = async (i) => {
    const agent = keepAliveAgent();
    const app = 'bench-cycles';
    const asset = `w${i}`;
    const post = `${hub.url}/v1/reservations/${app}`;
    const del = `${hub.url}/v1/reservations/${app}/${asset}`;
    return {
      async cycle() {
        const a = await httpJson(post, { method: 'POST', body: { assets: [asset], ttl_s: 60, owner: 'bench' }, token: jwt, agent });
        if (a.status !== 200) throw new Error(`POST ${a.status} ${a.body.slice(0, 200)}`);
        const d = await httpJson(del, { method: 'DELETE', token: jwt, agent });
        if (d.status !== 200) throw new Error(`DELETE ${d.status} ${d.body.slice(0, 200)}`);
      },
      close: () => agent.destroy(),
    };
  };
  // Fail fast (with the hub's answer) if the hub has no reservation API.
  const probe = await hubWorker('probe');
  await probe.cycle();
  probe.close();

  const redisVersion = /redis_version:(\S+)/.exec(await rc.command(['INFO', 'server']))?.[1];
  let hubVersion = '?';
  try {
    hubVersion = execFileSync(HUB_BIN, ['--version'], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    /* not important */
  }
  console.log(
    `hub ${HUB_BIN} (${hubVersion}), ${REDIS_BIN} ${redisVersion}, node ${process.version}, ` +
      `${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}); hub, Redis and this client on one machine\n`,
  );

  let failed = false;
  const rows = [];
  for (const n of LEVELS) {
    const r = await measure(n, hubWorker, { hub: hub.pid, redis: redis.pid });
    if (r.errors) {
      failed = true;
      console.error(`concurrency ${n}: ${r.errors} errors, first: ${r.firstError}`);
    }
    rows.push({ n, r });
    process.stderr.write(`  concurrency ${n}: ${r.rate.toFixed(0)} cycles/s\n`);
  }
  const f1 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '-');
  const pc = (x) => (Number.isFinite(x) ? `${Math.round(x * 100)}` : '-');
  console.log(
    `### Reserve + release cycles through the hub\n\n` +
      `One cycle = POST of one asset (ttl_s 60) + DELETE of it, each worker its own asset and keep-alive ` +
      `connection, one request at a time; ${SECONDS} s per row after ${WARMUP_MS} ms warm-up. ` +
      `Each cycle publishes itemReserved twice.\n`,
  );
  console.log('| concurrency | cycles/s | requests/s | cycle p50 / p99 ms | CPU % hub / redis / client | errors |');
  console.log('|---:|---:|---:|---:|---:|---:|');
  for (const { n, r } of rows) {
    console.log(
      `| ${n} | ${r.rate.toFixed(0)} | ${(2 * r.rate).toFixed(0)} | ${f1(r.p50)} / ${f1(r.p99)} | ` +
        `${pc(r.cpu.hub)} / ${pc(r.cpu.redis)} / ${pc(r.cpu.client)} | ${r.errors} |`,
    );
  }
  console.log('\nCPU %: share of one core during the counted window (100 = one core busy).\n');

  // ---- 2. listing LIST_SIZE reserved assets
  const app = 'bench-list';
  const agent = keepAliveAgent();
  const ids = Array.from({ length: LIST_SIZE }, (_, i) => `asset-${String(i).padStart(6, '0')}`);
  const expiries = new Map();
  for (let i = 0; i < ids.length; i += PER_POST) {
    const chunk = ids.slice(i, i + PER_POST);
    const r = await httpJson(`${hub.url}/v1/reservations/${app}`, {
      method: 'POST',
      body: { assets: chunk, ttl_s: 3600, owner: 'bench' },
      token: jwt,
      agent,
      timeoutMs: 30000,
    });
    if (r.status !== 200) throw new Error(`reserving ${chunk.length} assets: ${r.status} ${r.body.slice(0, 200)}`);
    for (const a of chunk) expiries.set(a, r.json.expires_at_ms);
  }
  // The same entries in the legacy layout, and a second app with as many
  // expired leftovers besides.
  const nowMs = Date.now();
  const legacy = async (name, withLeftovers) => {
    const idsKey = `reserved-assets_${name}`;
    const infoKey = `reserved-assets-info_${name}`;
    await rc.command(['DEL', idsKey, infoKey]);
    const all = ids.map((a) => [a, expiries.get(a)]);
    if (withLeftovers) for (let i = 0; i < LIST_SIZE; i++) all.push([`old-${i}`, nowMs - 86400000 + i]);
    for (let i = 0; i < all.length; i += 1000) {
      const part = all.slice(i, i + 1000);
      await rc.pipeline([
        ['RPUSH', idsKey, ...part.map(([a]) => a)],
        ['RPUSH', infoKey, ...part.map(([a, e]) => JSON.stringify({ assetId: a, expired: e }))],
      ]);
    }
    return { idsKey, infoKey, total: all.length };
  };
  const legacyA = await legacy('bench-list', false);
  const legacyB = await legacy('bench-list-leftovers', true);

  const hubList = async () => {
    const t0 = now();
    const r = await httpJson(`${hub.url}/v1/reservations/${app}`, { token: jwt, agent, timeoutMs: 30000 });
    if (r.status !== 200) throw new Error(`GET ${r.status} ${r.body.slice(0, 200)}`);
    const n = r.json.assets.length; // parsed by httpJson
    return { ms: now() - t0, n, bytes: r.body.length };
  };
  // The legacy reader: both lists in one round trip, parse, drop the expired.
  const legacyScan = (l) => async () => {
    const t0 = now();
    const [idList, infoList] = await rc.pipeline(
      [
        ['LRANGE', l.idsKey, '0', '-1'],
        ['LRANGE', l.infoKey, '0', '-1'],
      ],
      { timeoutMs: 30000 },
    );
    const t = Date.now();
    const live = [];
    for (const text of infoList) {
      let b;
      try {
        b = JSON.parse(text);
      } catch {
        continue;
      }
      const e = b.expired < 1e12 ? b.expired * 1000 : b.expired;
      if (e > t) live.push({ asset: b.assetId, expires_at_ms: e });
    }
    const held = new Set(idList);
    const out = live.filter((x) => held.has(x.asset));
    out.sort((a, b) => a.expires_at_ms - b.expires_at_ms);
    return { ms: now() - t0, n: out.length, bytes: idList.reduce((s, x) => s + x.length, 0) + infoList.reduce((s, x) => s + x.length, 0) };
  };
  const runs = [
    [`hub GET /v1/reservations/${app}`, hubList, LIST_SIZE],
    [`legacy LRANGE x2 + JSON filter (${legacyA.total} entries)`, legacyScan(legacyA), legacyA.total],
    [`legacy LRANGE x2 + JSON filter (${legacyB.total} entries, half expired)`, legacyScan(legacyB), legacyB.total],
  ];
  // Redis-side time of a run: the usec of every command the run caused
  // (Lua-internal ones are counted inside EVALSHA's), from INFO commandstats.
  const redisUsec = async () => {
    const text = await rc.command(['INFO', 'commandstats']);
    let usec = 0;
    for (const m of text.matchAll(/^cmdstat_(evalsha|eval|lrange):calls=\d+,usec=(\d+)/gm)) usec += Number(m[2]);
    return usec;
  };
  const results = [];
  for (const [, fn] of runs) await fn(); // warm-up each
  for (const [what, fn, stored] of runs) {
    const ms = [];
    let last;
    const u0 = await redisUsec();
    for (let i = 0; i < REPS; i++) {
      last = await fn();
      if (last.n !== LIST_SIZE) {
        failed = true;
        console.error(`${what}: ${last.n} live entries, expected ${LIST_SIZE}`);
      }
      ms.push(last.ms);
    }
    const redisMs = ((await redisUsec()) - u0) / 1000 / REPS;
    results.push({ what, stored, ms, n: last.n, bytes: last.bytes, redisMs });
  }
  console.log(
    `### Listing ${LIST_SIZE} reserved assets\n\n` +
      `${REPS} runs each after one warm-up of each; times include the client's parse ` +
      `(JSON for the hub; RESP + JSON.parse per blob + filter + sort for the legacy scan).\n`,
  );
  console.log('| method | entries stored | live listed | median ms | p90 ms | min ms | of which in Redis, ms (mean) | bytes received |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of results) {
    console.log(
      `| ${r.what} | ${r.stored} | ${r.n} | ${median(r.ms).toFixed(1)} | ${pct(r.ms, 90).toFixed(1)} | ` +
        `${Math.min(...r.ms).toFixed(1)} | ${r.redisMs.toFixed(1)} | ${r.bytes} |`,
    );
  }
  console.log('\n"in Redis": INFO commandstats usec of EVALSHA (Lua-internal commands included) or LRANGE, per run.');
  rc.close();
  return failed ? 1 : 0;
}

let code = 1;
try {
  code = await main();
} catch (e) {
  console.error(`bench: ${e.message}`);
}
try {
  await cleanupAll();
} catch (e) {
  console.error(`bench: ${e.message}`);
  code = code || 1;
}
process.exit(code);
