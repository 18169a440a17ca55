#!/usr/bin/env node
// bench/queues/bench.mjs: what watching job queues (SPEC §12) costs the hub
// and Redis. Run by bench/queues/run.sh (which pins, bounds and reports);
// it can be run alone. Loopback only; it starts its own redis-server and
// hubs (the tests' harness) and stops them, and stops itself after
// --max-seconds.
//
// Part 1, job events to users: the hub with --queues bullmq:bench and
// USERS native /ws clients (one per user u0..u<USERS-1>, in their own
// rooms). Job hashes bull:bench:<id> (name, data {"userId":"u<k>"}) are
// written first, untimed; then BullMQ-shaped entries are XADDed to
// bull:bench:events (active, progress 50, completed with a returnvalue, per
// job, in that order) at RATE entries/s for SECONDS. The floor, in the same
// run and the same hub: PUBLISH tradestate {"steamId":"u<k>",...} at the
// same rate (README's channel table: a unicast to user:<steamId>). Phases
// alternate (floor, jobs, jobs, floor, ...). Per phase, over the steady
// window (WARMUP s after the start to the end of the generation): the hub's
// CPU (/proc/<pid>/stat utime+stime, and the sum of its threads'
// schedstat), events routed (/metrics coordhub_queue_job_events_total, sum)
// and deliveries counted at the clients; CPU per delivery, and jobs / floor.
//
// Part 2, polling: POLL_QUEUES BullMQ queues q<i> with jobs in wait,
// active (with processedOn and a lock), delayed, completed and failed;
// a hub without --queues, then one with --queues bullmq:q0,...
// --queue-poll-ms 1000, then without again (each a fresh process on the
// same Redis), POLL_SECONDS each after a settle: the hub's and
// redis-server's CPU, polls (coordhub_queue_polls_total), INFO
// commandstats (evalsha). CPU ms per poll round and Redis µs per queue poll
// are (with - mean of the two without) / polls.
//
// Prints one JSON object (the figures) on stdout; report.mjs makes
// Markdown of it.
import fs from 'node:fs';
import os from 'node:os';
import { execFileSync } from 'node:child_process';

process.env.COORDHUB_HARNESS_NO_HOOKS = '1';
const { HUB_BIN, RespClient, WebSocket, cleanupAll, httpGet, parseMetrics, startHub, startRedis } = await import(
  '../../tests/integration/harness.mjs'
);

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : dflt;
}
const RATE = Number(arg('rate', '5000'));
const SECONDS = Number(arg('seconds', '10'));
const WARMUP = Number(arg('warmup', '2'));
const USERS = Number(arg('users', '100'));
const ROUNDS = Number(arg('rounds', '3'));
const POLL_QUEUES = Number(arg('poll-queues', '50'));
const POLL_SECONDS = Number(arg('poll-seconds', '20'));
const POLL_SETTLE = Number(arg('poll-settle', '3'));
const MAX_SECONDS = Number(arg('max-seconds', '240'));
const PIN = arg('pin', 'auto'); // auto | off
const PARTS = arg('parts', 'events,polling').split(',');
if (
  !(RATE >= 100 && RATE <= 50000) ||
  !(SECONDS > WARMUP && SECONDS <= 60) ||
  !(USERS >= 1 && USERS <= 5000) ||
  !(ROUNDS >= 1 && ROUNDS <= 10) ||
  !(POLL_QUEUES >= 1 && POLL_QUEUES <= 500) ||
  !(POLL_SECONDS >= 2 && POLL_SECONDS <= 120)
) {
  console.error('bench.mjs: a knob out of range (see the head of the file)');
  process.exit(2);
}

const log = (...a) => console.error(`[queues ${new Date().toISOString().slice(11, 19)}]`, ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.now();

const watchdog = setTimeout(async () => {
  log(`over its time bound (${MAX_SECONDS} s), stopping`);
  await cleanupAll().catch(() => {});
  process.exit(3);
}, MAX_SECONDS * 1000);
watchdog.unref();
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, async () => {
    log(`${sig}: stopping`);
    await cleanupAll().catch(() => {});
    process.exit(sig === 'SIGINT' ? 130 : 143);
  });
}

// ---- /proc -------------------------------------------------------------

const HZ = 100; // USER_HZ
function statCpu(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / HZ; // utime + stime, seconds
}
function schedCpu(pid) {
  let ns = 0;
  for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(fs.readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      /* a thread that ended */
    }
  }
  return ns / 1e9;
}
const cpu = (pid) => ({ stat: statCpu(pid), sched: schedCpu(pid) });
const cpuDelta = (a, b) => ({ stat: b.stat - a.stat, sched: b.sched - a.sched });

let pinning = 'unpinned';
function pin(pid, cpuList) {
  if (PIN === 'off' || os.cpus().length < 2) return;
  try {
    execFileSync('taskset', ['-a', '-cp', cpuList, String(pid)], { stdio: 'ignore' });
    pinning = 'hub on CPU 0; redis-server and this generator on CPU 1 (taskset)';
  } catch {
    pinning = 'unpinned (taskset failed)';
  }
}

// ---- the hub's /metrics ---------------------------------------------------

async function metricSum(hub, name) {
  const r = await httpGet(`${hub.url}/metrics`, { timeoutMs: 3000 });
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
  let s = 0;
  for (const m of parseMetrics(r.body)) if (m.name === name) s += m.value;
  return s;
}

async function commandstats(redis, cmd) {
  const text = await redis.command(['INFO', 'commandstats']);
  const m = new RegExp(`^cmdstat_${cmd}:calls=(\\d+),usec=(\\d+)`, 'm').exec(text);
  return m ? { calls: Number(m[1]), usec: Number(m[2]) } : { calls: 0, usec: 0 };
}

// ---- clients ----------------------------------------------------------------

async function connectClients(hub, n) {
  const counts = { job: 0, tradestate: 0, other: 0 };
  const sockets = [];
  await Promise.all(
    Array.from({ length: n }, (_, k) =>
      new Promise((resolve, reject) => {
        const tok = hub.token(`u${k}`, [], 3600);
        const ws = new WebSocket(`ws://127.0.0.1:${hub.port}/ws?token=${encodeURIComponent(tok)}`);
        const timer = setTimeout(() => reject(new Error(`client u${k}: no pong in 10 s`)), 10000);
        ws.on('error', (e) => reject(e));
        ws.on('open', () => ws.send('{"op":"ping"}'));
        ws.on('message', (data) => {
          const s = data.toString();
          if (s.startsWith('{"event":"job"')) counts.job++;
          else if (s.startsWith('{"event":"tradestate"')) counts.tradestate++;
          else if (s.startsWith('{"event":"pong"')) {
            clearTimeout(timer);
            resolve();
          } else counts.other++;
        });
        sockets.push(ws);
      }),
    ),
  );
  return { counts, close: () => sockets.forEach((w) => w.terminate()) };
}

// ---- paced generation -------------------------------------------------------

// Sends total = RATE x SECONDS commands made by make(i), paced every 10 ms
// (what is due in one write). Calls marks.at(t) at the start of the window
// and at the end of the generation. Resolves when every reply is in.
async function generate(redis, make, marks) {
  const total = Math.round(RATE * SECONDS);
  let sent = 0;
  let errors = 0;
  let firstError = null;
  let inflight = 0;
  const t0 = now();
  let windowStarted = false;
  while (sent < total) {
    const el = (now() - t0) / 1000;
    if (!windowStarted && el >= WARMUP) {
      windowStarted = true;
      await marks.start();
    }
    const due = Math.min(total, Math.floor(el * RATE)) - sent;
    if (due > 0) {
      const cmds = [];
      for (let i = 0; i < due; i++) cmds.push(make(sent + i));
      sent += due;
      inflight++;
      redis
        .pipeline(cmds, { timeoutMs: 20000 })
        .then(
          (rs) => {
            for (const r of rs) if (r instanceof Error) (errors++, (firstError ??= r.message));
          },
          (e) => (errors++, (firstError ??= e.message)),
        )
        .finally(() => inflight--);
    }
    await sleep(10);
  }
  const genSeconds = (now() - t0) / 1000;
  await marks.end();
  for (const t = now(); inflight > 0 && now() - t < 20000; ) await sleep(10);
  return { sent: total, errors, firstError, genSeconds };
}

// ---- part 1: job events vs the pub/sub floor --------------------------------

let nextJob = 1;
async function makeJobs(redis, n) {
  const first = nextJob;
  const ts = String(Date.now());
  for (let done = 0; done < n; ) {
    const cmds = [];
    for (let i = 0; i < 2000 && done < n; i++, done++) {
      const id = nextJob++;
      cmds.push([
        'HSET',
        `bull:bench:${id}`,
        'name',
        'bench-job',
        'data',
        JSON.stringify({ userId: `u${id % USERS}`, order: id }),
        'opts',
        '{"attempts":1}',
        'timestamp',
        ts,
      ]);
    }
    await redis.pipeline(cmds, { timeoutMs: 30000 });
  }
  return first;
}

async function phase(kind, ctx) {
  const { hub, redis, gen, clients } = ctx;
  const total = Math.round(RATE * SECONDS);
  let make;
  if (kind === 'floor') {
    make = (i) => [
      'PUBLISH',
      'tradestate',
      JSON.stringify({ steamId: `u${i % USERS}`, token: `b${i}`, state: 'sent', msg: 'bench', extra: { seq: i } }),
    ];
  } else {
    const jobs = Math.ceil(total / 3);
    const t = now();
    const first = await makeJobs(gen, jobs);
    log(`  ${jobs} job hashes written in ${((now() - t) / 1000).toFixed(1)} s (untimed)`);
    make = (i) => {
      const id = String(first + Math.floor(i / 3));
      const base = ['XADD', 'bull:bench:events', 'MAXLEN', '~', '10000', '*', 'event'];
      if (i % 3 === 0) return [...base, 'active', 'jobId', id, 'prev', 'waiting'];
      if (i % 3 === 1) return [...base, 'progress', 'jobId', id, 'data', '50'];
      return [...base, 'completed', 'jobId', id, 'returnvalue', '{"ok":true}', 'prev', 'active'];
    };
  }
  const counter = kind === 'floor' ? 'tradestate' : 'job';
  const before = { delivered: clients.counts[counter], routed: await metricSum(hub, 'coordhub_queue_job_events_total') };
  const w = {};
  const snap = async () => ({
    t: now(),
    hub: cpu(hub.pid),
    redis: cpu(redis.pid),
    delivered: clients.counts[counter],
    routed: await metricSum(hub, 'coordhub_queue_job_events_total'),
  });
  const g = await generate(gen, make, {
    start: async () => (w.a = await snap()),
    end: async () => (w.b = await snap()),
  });
  // drain: everything in, or 2 s without progress
  let last = -1;
  let still = now();
  const target = before.delivered + total;
  while (clients.counts[counter] < target && now() - still < 2000) {
    if (clients.counts[counter] !== last) {
      last = clients.counts[counter];
      still = now();
    }
    await sleep(50);
  }
  const routedAll = (await metricSum(hub, 'coordhub_queue_job_events_total')) - before.routed;
  const deliveredAll = clients.counts[counter] - before.delivered;
  const wall = (w.b.t - w.a.t) / 1000;
  const hubCpu = cpuDelta(w.a.hub, w.b.hub);
  const redisCpu = cpuDelta(w.a.redis, w.b.redis);
  const delivered = w.b.delivered - w.a.delivered;
  const routed = w.b.routed - w.a.routed;
  const r = {
    kind,
    sent: g.sent,
    errors: g.errors,
    firstError: g.firstError,
    genSeconds: g.genSeconds,
    window_s: wall,
    delivered_window: delivered,
    routed_window: routed,
    delivered_all: deliveredAll,
    routed_all: kind === 'jobs' ? routedAll : null,
    lost: total - deliveredAll,
    hub_cpu_s: hubCpu.stat,
    hub_cpu_sched_s: hubCpu.sched,
    hub_cpu_pct: (100 * hubCpu.stat) / wall,
    redis_cpu_s: redisCpu.stat,
    us_per_delivery: (1e6 * hubCpu.stat) / delivered,
    us_per_delivery_sched: (1e6 * hubCpu.sched) / delivered,
    redis_us_per_delivery: (1e6 * redisCpu.sched) / delivered,
  };
  log(
    `  ${kind}: ${delivered} delivered in the ${wall.toFixed(1)} s window (${(delivered / wall).toFixed(0)}/s), ` +
      `hub ${r.hub_cpu_pct.toFixed(1)}% CPU, ${r.us_per_delivery.toFixed(2)} µs/delivery (schedstat ${r.us_per_delivery_sched.toFixed(2)}), ` +
      `lost ${r.lost}${kind === 'jobs' ? `, routed ${routedAll}` : ''}`,
  );
  return r;
}

async function partEvents(redis) {
  log(`part 1: job events at ${RATE}/s for ${SECONDS} s vs PUBLISH tradestate, ${USERS} users, ${ROUNDS} rounds`);
  // the queue exists before the hub starts, as BullMQ's Queue leaves it
  await redis.command(['HSET', 'bull:bench:meta', 'opts.maxLenEvents', '10000']);
  const hub = await startHub({ redisUrl: redis.url, logLevel: 'warn', extraArgs: ['--queues', 'bullmq:bench'] });
  pin(hub.pid, '0');
  const clients = await connectClients(hub, USERS);
  const gen = await redis.client();
  const ctx = { hub, redis, gen, clients };
  const phases = [];
  try {
    // a short warm-up of both paths (the hub's tables, the lookup script)
    for (let round = 1; round <= ROUNDS; round++) {
      const order = round % 2 ? ['floor', 'jobs'] : ['jobs', 'floor'];
      for (const k of order) {
        log(` round ${round}: ${k}`);
        phases.push({ round, ...(await phase(k, ctx)) });
      }
    }
    const throttled = await metricSum(hub, 'coordhub_queue_progress_throttled_total');
    const lookups = await metricSum(hub, 'coordhub_queue_job_lookups_total');
    const unrouted = await metricSum(hub, 'coordhub_queue_job_events_unrouted_total');
    return { phases, throttled, lookups, unrouted, other_frames: clients.counts.other, hub_stderr: hub.stderr().slice(-2000) };
  } finally {
    clients.close();
    gen.close();
    await hub.stop().catch(() => {});
  }
}

// ---- part 2: polling --------------------------------------------------------

// Per queue: WAIT waiting, ACTIVE active (processedOn now, a lock), DELAYED
// delayed, COMPLETED completed, FAILED failed; the job hashes of the
// waiting and active ones; meta and id as BullMQ writes them.
const SHAPE = { wait: 20, active: 3, delayed: 5, completed: 100, failed: 2 };
async function makeQueues(gen, n) {
  const ts = Date.now();
  for (let q = 0; q < n; q++) {
    const b = `bull:q${q}:`;
    const cmds = [['HSET', `${b}meta`, 'opts.maxLenEvents', '10000'], ['SET', `${b}id`, '1000']];
    let id = 1;
    const wait = [];
    for (let i = 0; i < SHAPE.wait; i++, id++) {
      wait.push(String(id));
      cmds.push(['HSET', `${b}${id}`, 'name', 'job', 'data', `{"userId":"u${id}"}`, 'timestamp', String(ts - 60000 + id), 'delay', '0']);
    }
    cmds.push(['LPUSH', `${b}wait`, ...wait]);
    const active = [];
    for (let i = 0; i < SHAPE.active; i++, id++) {
      active.push(String(id));
      cmds.push(['HSET', `${b}${id}`, 'name', 'job', 'data', `{"userId":"u${id}"}`, 'timestamp', String(ts - 5000), 'processedOn', String(ts - 1000)]);
      cmds.push(['SET', `${b}${id}:lock`, 'worker-token', 'PX', '3600000']);
    }
    cmds.push(['LPUSH', `${b}active`, ...active]);
    const z = (key, count) => {
      const args = [];
      for (let i = 0; i < count; i++, id++) args.push(String(ts + i), String(id));
      cmds.push(['ZADD', `${b}${key}`, ...args]);
    };
    z('delayed', SHAPE.delayed);
    z('completed', SHAPE.completed);
    z('failed', SHAPE.failed);
    await gen.pipeline(cmds, { timeoutMs: 30000 });
  }
}

async function pollPhase(redis, gen, withQueues) {
  const args = withQueues
    ? ['--queues', Array.from({ length: POLL_QUEUES }, (_, i) => `bullmq:q${i}`).join(','), '--queue-poll-ms', '1000']
    : [];
  const hub = await startHub({ redisUrl: redis.url, logLevel: 'warn', extraArgs: args });
  pin(hub.pid, '0');
  try {
    if (withQueues) {
      const t = now();
      while ((await metricSum(hub, 'coordhub_queue_polls_total')) < POLL_QUEUES && now() - t < 10000) await sleep(100);
    }
    await sleep(POLL_SETTLE * 1000);
    const a = {
      t: now(),
      hub: cpu(hub.pid),
      redis: cpu(redis.pid),
      polls: withQueues ? await metricSum(hub, 'coordhub_queue_polls_total') : 0,
      evalsha: await commandstats(gen, 'evalsha'),
      xread: await commandstats(gen, 'xread'),
    };
    await sleep(POLL_SECONDS * 1000);
    const b = {
      t: now(),
      hub: cpu(hub.pid),
      redis: cpu(redis.pid),
      polls: withQueues ? await metricSum(hub, 'coordhub_queue_polls_total') : 0,
      evalsha: await commandstats(gen, 'evalsha'),
      xread: await commandstats(gen, 'xread'),
    };
    let sample = null;
    if (withQueues) {
      const r = await httpGet(`${hub.url}/v1/queues`, {
        timeoutMs: 3000,
        headers: { Authorization: `Bearer ${hub.token('bench-ops', ['ops'], 600)}` },
      });
      const j = JSON.parse(r.body);
      sample = j.queues[0];
    }
    const wall = (b.t - a.t) / 1000;
    const r = {
      queues: withQueues ? POLL_QUEUES : 0,
      window_s: wall,
      hub_cpu_s: b.hub.stat - a.hub.stat,
      hub_cpu_sched_s: b.hub.sched - a.hub.sched,
      redis_cpu_s: b.redis.stat - a.redis.stat,
      redis_cpu_sched_s: b.redis.sched - a.redis.sched,
      polls: b.polls - a.polls,
      evalsha_calls: b.evalsha.calls - a.evalsha.calls,
      evalsha_usec: b.evalsha.usec - a.evalsha.usec,
      xread_calls: b.xread.calls - a.xread.calls,
      xread_usec: b.xread.usec - a.xread.usec,
      sample,
    };
    log(
      `  ${withQueues ? `with ${POLL_QUEUES} queues` : 'without --queues'}: hub ${((100 * r.hub_cpu_sched_s) / wall).toFixed(2)}% CPU, ` +
        `redis ${((100 * r.redis_cpu_sched_s) / wall).toFixed(2)}%, polls ${r.polls}, evalsha ${r.evalsha_calls} calls ${r.evalsha_usec} µs`,
    );
    return r;
  } finally {
    await hub.stop().catch(() => {});
  }
}

async function partPolling(redis) {
  log(`part 2: polling ${POLL_QUEUES} BullMQ queues every 1 s, ${POLL_SECONDS} s per phase (without, with, without)`);
  const gen = await redis.client();
  try {
    const t = now();
    await makeQueues(gen, POLL_QUEUES);
    log(`  ${POLL_QUEUES} queues written in ${((now() - t) / 1000).toFixed(1)} s (${JSON.stringify(SHAPE)} each)`);
    const phases = [];
    for (const withQueues of [false, true, false]) phases.push(await pollPhase(redis, gen, withQueues));
    return { shape: SHAPE, phases };
  } finally {
    gen.close();
  }
}

// ---- main ---------------------------------------------------------------------

const out = {
  date_start: new Date().toISOString(),
  load_start: fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
  nproc: os.cpus().length,
  cpu_model: os.cpus()[0]?.model,
  kernel: os.release(),
  node: process.version,
  hub_bin: HUB_BIN,
  knobs: { RATE, SECONDS, WARMUP, USERS, ROUNDS, POLL_QUEUES, POLL_SECONDS, POLL_SETTLE },
};
let rc = 0;
try {
  const redis = await startRedis();
  pin(redis.pid, '1');
  pin(process.pid, '1');
  out.redis_version = (await redis.command(['INFO', 'server'])).match(/redis_version:(\S+)/)?.[1];
  if (PARTS.includes('events')) out.events = await partEvents(redis);
  if (PARTS.includes('polling')) out.polling = await partPolling(redis);
} catch (e) {
  log(`ERROR: ${e.stack || e.message}`);
  out.error = e.message;
  rc = 1;
} finally {
  out.pinning = pinning;
  out.date_end = new Date().toISOString();
  out.load_end = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  await cleanupAll().catch((e) => log(`cleanup: ${e.message}`));
  console.log(JSON.stringify(out, null, 1));
  clearTimeout(watchdog);
  process.exit(rc);
}
