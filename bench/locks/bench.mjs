#!/usr/bin/env node
// Lock cycles per second (acquire + release) through the hub's HTTP API with
// keep-alive, side by side with the same two operations done directly
// against the same Redis by EVALSHA of equivalent Lua scripts over a raw
// RESP connection, so the hub's overhead shows as a ratio. Starts its own
// redis-server and hub (loopback only) and stops them; prints a Markdown
// table. Not a test: see README.md.
//
//   node bench/locks/bench.mjs [--seconds S] [--levels 1,4,16,64]
//   COORDHUB_BIN=/path/to/coordhub  (default build/coordhub)
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import { execFileSync } from 'node:child_process';

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
const LEVELS = arg('levels', '1,4,16,64').split(',').map(Number);
const WARMUP_MS = 500;
const TTL_MS = 10000;
if (!(SECONDS > 0 && SECONDS <= 60) || LEVELS.some((n) => !(Number.isInteger(n) && n >= 1 && n <= 512))) {
  console.error('usage: bench.mjs [--seconds 0<S<=60] [--levels n1,n2,... (1..512)]');
  process.exit(2);
}

// The same work as the hub's scripts (SPEC §6): SET NX PX + INCR of the
// companion fencing key; GET-compare-DEL + PUBLISH of the release notice.
const ACQUIRE_LUA = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return -redis.call('PTTL', KEYS[1])`;
const RELEASE_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], KEYS[1])
  return 1
end
return 0`;
const NOTICE_CHANNEL = 'coordhub:lock-released';

const now = () => performance.now();
const pct = (xs, p) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

// CPU seconds (user + system) used so far by process `pid`, from /proc.
function cpuSeconds(pid) {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in USER_HZ (100)
  } catch {
    return NaN;
  }
}

// Runs `n` workers calling `cycle(worker)` back to back: WARMUP_MS not
// counted, then SECONDS counted. Returns {rate, p50, p99, errors, cpu}:
// cpu = share of one core used during the counted window by each pid in
// `pids` and by this client.
async function measure(n, makeWorker, pids = {}) {
  const workers = await Promise.all(Array.from({ length: n }, (_, i) => makeWorker(i)));
  const t0 = now();
  const tStart = t0 + WARMUP_MS;
  const tEnd = tStart + SECONDS * 1000;
  let cycles = 0;
  let errors = 0;
  let firstError = null;
  const lat = [];
  let cpu0 = null;
  const cpuSnap = () => ({
    ...Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid)])),
    client: process.cpuUsage(),
  });
  const cpuTimer = setTimeout(() => (cpu0 = cpuSnap()), Math.max(0, tStart - now()));
  const cpu = {};
  const cpuEnd = setTimeout(() => {
    const c1 = cpuSnap();
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
          cycles++;
          lat.push(e - s);
        }
      }
    }),
  );
  clearTimeout(cpuTimer);
  clearTimeout(cpuEnd);
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
    (LEVELS.length * 2 * (SECONDS + 2) + 60) * 1000,
  );
  watchdog.unref();

  const redis = await startRedis();
  const hub = await startHub({ redisUrl: redis.url, logLevel: 'warn' });
  const jwt = hub.token('bench', ['service'], 3600);
  const setup = await redis.client();
  const shaAcquire = await setup.command(['SCRIPT', 'LOAD', ACQUIRE_LUA]);
  const shaRelease = await setup.command(['SCRIPT', 'LOAD', RELEASE_LUA]);

  // One keep-alive connection per worker, its own lock name (uncontended).
  const hubWorker = async (i) => {
    const agent = keepAliveAgent();
    const url = `${hub.url}/v1/locks/bench:hub:${i}`;
    return {
      async cycle() {
        const a = await httpJson(url, { method: 'POST', body: { ttl_ms: TTL_MS }, token: jwt, agent });
        if (a.status !== 200) throw new Error(`POST ${a.status} ${a.body.slice(0, 200)}`);
        const d = await httpJson(url, { method: 'DELETE', body: { token: a.json.token }, token: jwt, agent });
        if (d.status !== 200) throw new Error(`DELETE ${d.status} ${d.body.slice(0, 200)}`);
      },
      close: () => agent.destroy(),
    };
  };
  // One RESP connection per worker, the same two scripts by EVALSHA.
  const redisWorker = async (i) => {
    const c = await RespClient.connect(redis.port);
    const name = `bench:direct:${i}`;
    const fence = `coordhub:fence:{${name}}`;
    return {
      async cycle() {
        const token = crypto.randomBytes(16).toString('hex');
        const f = await c.command(['EVALSHA', shaAcquire, '2', name, fence, token, String(TTL_MS)]);
        if (!(f > 0)) throw new Error(`acquire script returned ${f}`);
        const r = await c.command(['EVALSHA', shaRelease, '1', name, token, NOTICE_CHANNEL]);
        if (r !== 1) throw new Error(`release script returned ${r}`);
      },
      close: () => c.close(),
    };
  };

  // Fail fast (with the hub's answer) if the hub has no lock API.
  const probe = await hubWorker('probe');
  await probe.cycle();
  probe.close();

  const redisVersion = /redis_version:(\S+)/.exec(await setup.command(['INFO', 'server']))?.[1];
  let hubVersion = '?';
  try {
    hubVersion = execFileSync(HUB_BIN, ['--version'], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    /* not important */
  }
  console.log(
    `lock cycles/s (POST acquire + DELETE release), ${SECONDS} s per cell after ${WARMUP_MS} ms warm-up; ` +
      `each worker its own lock name and one keep-alive connection (hub) or RESP connection (direct)\n` +
      `hub ${HUB_BIN} (${hubVersion}), ${REDIS_BIN} ${redisVersion}, node ${process.version}, ` +
      `${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}); hub, Redis and this client on one machine\n`,
  );
  const rows = [];
  let failed = false;
  for (const n of LEVELS) {
    const h = await measure(n, hubWorker, { hub: hub.pid, redis: redis.pid });
    const d = await measure(n, redisWorker, { redis: redis.pid });
    for (const [what, r] of [['hub', h], ['direct', d]]) {
      if (r.errors) {
        failed = true;
        console.error(`concurrency ${n}, ${what}: ${r.errors} errors, first: ${r.firstError}`);
      }
    }
    rows.push({ n, h, d });
    process.stderr.write(`  concurrency ${n}: hub ${h.rate.toFixed(0)}/s, direct ${d.rate.toFixed(0)}/s\n`);
  }
  const f1 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '-');
  const pc = (x) => (Number.isFinite(x) ? `${Math.round(x * 100)}` : '-');
  console.log(
    '| concurrency | hub HTTP cycles/s | hub p50 / p99 ms | CPU % hub / redis / client | ' +
      'direct Redis cycles/s | direct p50 / p99 ms | CPU % redis / client | direct / hub |',
  );
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const { n, h, d } of rows) {
    console.log(
      `| ${n} | ${h.rate.toFixed(0)} | ${f1(h.p50)} / ${f1(h.p99)} | ${pc(h.cpu.hub)} / ${pc(h.cpu.redis)} / ${pc(h.cpu.client)} | ` +
        `${d.rate.toFixed(0)} | ${f1(d.p50)} / ${f1(d.p99)} | ${pc(d.cpu.redis)} / ${pc(d.cpu.client)} | ` +
        `${h.rate > 0 ? (d.rate / h.rate).toFixed(2) : '-'} |`,
    );
  }
  console.log('\nCPU %: share of one core during the counted window (100 = one core busy).');
  setup.close();
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
