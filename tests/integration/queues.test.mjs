// Job queues on the hub's Redis (SPEC §12, docs/queues.md), with the real
// libraries: Bull v3 (`bull`) and BullMQ (`bullmq`) producers and workers,
// and a Redis Streams queue driven command by command (XADD, XREADGROUP,
// XACK, XCLAIM, a dead-letter stream). Asserted: the hub's counts equal
// the libraries' own within one poll; alerts fire and clear once; a job
// killed with its worker is reported stuck and stalled; each job's events
// reach its user's room and nobody else's, progress throttled; a restarted
// hub resumes BullMQ's events stream where it left off; specs that name
// nothing, keys of the wrong type and job data that is not JSON are
// counted skips, never a crash or a stopped poll.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { before } from 'node:test';
import {
  httpJson,
  join,
  metricSum,
  parseMetrics,
  redisCommand,
  repoRoot,
  runHub,
  startHub,
  startRedis,
  test,
  userId,
  waitUntil,
} from './harness.mjs';

const require = createRequire(import.meta.url);
const { Queue, Worker } = require('bullmq'); // its ESM build does not load under node --test here
const Bull = require('bull');

const QUEUES = [
  'bullmq:counts',
  'bullmq:work',
  'bullmq:alerting',
  'bullmq:hang',
  'bullmq:resume',
  'bull:legacy',
  'stream:tasks/workers/tasks-dead',
  'bullmq:ghost',
  'bull:wrong',
  'bullmq:badevents',
].join(',');
const POLL_MS = 200;
const ALERTS = 'waiting>100,failed>50,stuck>1s,alerting:waiting>3';

let redis;
let hub;
let port; // the hub's, kept across its restart
let conn;
let ops;

function hubArgs() {
  return ['--queues', QUEUES, '--queue-poll-ms', String(POLL_MS), '--queue-alerts', ALERTS];
}

async function queuesJson() {
  const r = await httpJson(`${hub.url}/v1/queues`, { token: hub.token('op', ['ops']) });
  assert.equal(r.status, 200, JSON.stringify(r));
  return r.json;
}

async function queueOf(name) {
  return (await queuesJson()).queues.find((q) => q.queue === name);
}

// Resolves with the queue's entry from a poll that started after this call.
async function freshPoll(name) {
  const t0 = (await redisCommand(redis.port, ['TIME'])).map(Number);
  const since = t0[0] * 1000 + Math.floor(t0[1] / 1000);
  return waitUntil(async () => {
    const q = await queueOf(name);
    return q && q.polledAt > since ? q : null;
  }, { timeoutMs: 5000, what: `a poll of ${name} after ${since}` });
}

async function metrics() {
  const r = await httpJson(`${hub.url}/metrics`, {});
  return parseMetrics(r.body);
}

// A test whose library clients (queues, workers, child processes) are
// closed when it ends, pass or fail, while Redis still runs: `track(x)`
// registers x.close(). Each close is bounded.
function qtest(name, fn) {
  test(name, async () => {
    const list = [];
    const track = (x) => {
      list.push(() => x.close());
      return x;
    };
    try {
      await fn(track);
    } finally {
      for (const c of list.reverse()) {
        await Promise.race([Promise.resolve().then(c).catch(() => {}), new Promise((r) => setTimeout(r, 3000).unref())]);
      }
    }
  });
}

before(async () => {
  redis = await startRedis();
  conn = { host: '127.0.0.1', port: redis.port };
  // a key of the wrong type where Bull keeps its waiting list, and where
  // BullMQ keeps its events stream
  await redisCommand(redis.port, ['SET', 'bull:wrong:wait', 'not a list']);
  await redisCommand(redis.port, ['SET', 'bull:badevents:events', 'not a stream']);
  await redisCommand(redis.port, ['XGROUP', 'CREATE', 'tasks', 'workers', '$', 'MKSTREAM']);
  hub = await startHub({ redisUrl: redis.url, extraArgs: hubArgs() });
  port = Number(new URL(hub.url).port);
  ops = await hub.connect('op', ['ops']);
  await join(ops, 'queues');
});


qtest('BullMQ: the counts by state equal getJobCounts() within one poll', async (track) => {
  const q = track(new Queue('counts', { connection: conn }));
  await q.add('a', { userId: 'c1' });
  await q.add('b', { userId: 'c1' });
  await q.add('later', { userId: 'c1' }, { delay: 600000 });
  await q.add('urgent', { userId: 'c1' }, { priority: 3 });
  const lib = await q.getJobCounts();
  const ours = await freshPoll('counts');
  assert.equal(ours.status, 'ok');
  assert.equal(ours.kind, 'bullmq');
  for (const [state, n] of Object.entries(lib)) assert.equal(ours.counts[state], n, `${state}: ${JSON.stringify(ours)}`);
  assert.equal(ours.counts.waiting, 2);
  assert.ok(ours.oldestWaitingSeconds >= 0);
  // /metrics says the same
  const m = await metrics();
  for (const [state, n] of Object.entries(lib)) {
    assert.equal(metricSum(m, 'coordhub_queue_jobs', { queue: 'counts', state }), n, state);
  }
});

qtest("BullMQ: a job's events reach its user's room and nobody else's; progress is throttled; retries end in one failed", async (track) => {
  const [u1, u2] = [userId(), userId()];
  const s1 = await hub.connect(u1);
  const s2 = await hub.connect(u2);
  const q = track(new Queue('work', { connection: conn }));
  const ran = {};
  track(
    new Worker(
      'work',
      async (job) => {
        if (job.data.kind === 'bad') throw new Error('boom');
        ran.start = Date.now();
        for (let i = 1; i <= 25; i++) {
          await job.updateProgress(i * 4);
          await new Promise((r) => setTimeout(r, 60));
        }
        ran.end = Date.now();
        return { done: job.id, big: 'x'.repeat(10) };
      },
      { connection: conn },
    ),
  );
  const good = await q.add('backtest', { userId: u1, kind: 'good' });
  const bad = await q.add('optimise', { userId: u2, kind: 'bad' }, { attempts: 2, backoff: { type: 'fixed', delay: 50 } });

  const done = await s1.waitEvent('job', 20000, (m) => m.data.id === good.id && m.data.state === 'completed');
  assert.deepEqual(done.data, { queue: 'work', id: good.id, name: 'backtest', state: 'completed', result: { done: good.id, big: 'xxxxxxxxxx' } });
  const fail = await s2.waitEvent('job', 20000, (m) => m.data.id === bad.id && m.data.state === 'failed');
  assert.equal(fail.data.reason, 'boom');
  assert.equal(fail.data.name, 'optimise');

  const mine = s1.messages.filter((m) => m.event === 'job' && m.data.id === good.id);
  assert.equal(mine[0].data.state, 'active');
  const progress = mine.filter((m) => m.data.state === 'progress').map((m) => m.data.progress);
  assert.equal(progress[0], 4, 'the first progress goes at once');
  // 25 updates over at least 1.5 s: the first at once, then at most one a
  // second (the last one held back is dropped by the end of the job)
  const most = 2 + Math.ceil((ran.end - ran.start) / 1000);
  assert.ok(progress.length >= 2 && progress.length <= most, `progress events: ${progress} (at most ${most})`);
  for (let i = 1; i < progress.length; i++) assert.ok(progress[i] > progress[i - 1], `in order: ${progress}`);
  // the failing job ended once (its first attempt failed and was retried)
  const ends = s2.messages.filter((m) => m.event === 'job' && m.data.id === bad.id && m.data.state === 'failed');
  assert.equal(ends.length, 1);
  // nobody else's
  assert.ok(!s1.messages.some((m) => m.event === 'job' && m.data.id === bad.id));
  assert.ok(!s2.messages.some((m) => m.event === 'job' && m.data.id === good.id));
  const m = await metrics();
  assert.ok(metricSum(m, 'coordhub_queue_progress_throttled_total') > 0);
  assert.ok(metricSum(m, 'coordhub_queue_job_events_total', { queue: 'work', state: 'completed' }) >= 1);
  await s1.close();
  await s2.close();
});

qtest('an alert fires when its bound is crossed and clears once, to the queues room', async (track) => {
  const since = ops.mark();
  const q = track(new Queue('alerting', { connection: conn }));
  for (let i = 0; i < 4; i++) await q.add('j', { userId: 'a1' }); // waiting>3
  const fired = await ops.waitEvent('queue-alert', 5000, (m) => m.data.queue === 'alerting' && m.data.state === 'firing', since);
  assert.equal(fired.data.alert, 'alerting:waiting>3');
  assert.equal(fired.data.measure, 'waiting');
  assert.equal(fired.data.value, 4);
  assert.equal(fired.data.bound, 3);
  assert.deepEqual((await freshPoll('alerting')).alerts, ['alerting:waiting>3']);
  const w = track(new Worker('alerting', async () => 1, { connection: conn }));
  await ops.waitEvent('queue-alert', 10000, (m) => m.data.queue === 'alerting' && m.data.state === 'cleared', since);
  await w.close();
  // two more polls: nothing fires or clears again
  await freshPoll('alerting');
  await freshPoll('alerting');
  const alerts = ops.messages.slice(since).filter((m) => m.event === 'queue-alert' && m.data.queue === 'alerting');
  assert.deepEqual(alerts.map((m) => m.data.state), ['firing', 'cleared']);
  // a queues event carried the counts as they changed
  assert.ok(ops.messages.slice(since).some((m) => m.event === 'queues' && m.data.queue === 'alerting' && m.data.counts.waiting === 4));
  const m = await metrics();
  assert.equal(metricSum(m, 'coordhub_queue_alerts_total', { queue: 'alerting' }), 1);
  assert.equal(metricSum(m, 'coordhub_queue_alert_firing', { queue: 'alerting', alert: 'alerting:waiting>3' }), 0);
});

qtest('a job whose worker was killed is reported stuck and stalled, and the stuck alert fires', async (track) => {
  const u = userId();
  const s = await hub.connect(u);
  const since = ops.mark();
  const q = track(new Queue('hang', { connection: conn }));
  const job = await q.add('forever', { userId: u });
  const child = spawn(process.execPath, [path.join(repoRoot, 'tests/integration/fixtures/bullmq-hang-worker.cjs'), String(redis.port), 'hang'], {
    cwd: path.join(repoRoot, 'tests'),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  track({ close: async () => child.kill('SIGKILL') });
  await s.waitEvent('job', 10000, (m) => m.data.id === job.id && m.data.state === 'active');
  child.kill('SIGKILL');
  const stuck = await waitUntil(async () => {
    const e = await queueOf('hang');
    return e.stuck === 1 && e.stalled === 1 ? e : null;
  }, { timeoutMs: 10000, what: 'the killed job stuck and stalled' });
  assert.equal(stuck.counts.active, 1);
  assert.equal(stuck.stuckAfterSeconds, 1);
  await ops.waitEvent('queue-alert', 5000, (m) => m.data.queue === 'hang' && m.data.alert === 'stuck>1s' && m.data.state === 'firing', since);
  const m = await metrics();
  assert.equal(metricSum(m, 'coordhub_queue_stuck_jobs', { queue: 'hang' }), 1);
  assert.equal(metricSum(m, 'coordhub_queue_stalled_jobs', { queue: 'hang' }), 1);
  await s.close();
});

qtest("Bull v3: counts equal getJobCounts(); its global events reach the job's user; data that is not JSON is a counted skip", async (track) => {
  const u = userId();
  const s = await hub.connect(u);
  const q = track(new Bull('legacy', { redis: conn }));
  await q.add({ userId: u, n: 1 }, { jobId: 'held-1', delay: 600000 });
  const lib = await q.getJobCounts();
  const ours = await freshPoll('legacy');
  assert.equal(ours.kind, 'bull');
  for (const [state, n] of Object.entries(lib)) assert.equal(ours.counts[state], n, `${state}: ${JSON.stringify(ours)}`);

  // a job whose data is not JSON, announced as Bull announces an active job
  await redisCommand(redis.port, ['HSET', 'bull:legacy:999', 'data', '{not json', 'name', 'broken']);
  await redisCommand(redis.port, ['PUBLISH', 'bull:legacy:active@sometoken', '999']);
  await waitUntil(async () => metricSum(await metrics(), 'coordhub_queue_skips_total', { queue: 'legacy', reason: 'data' }) >= 1, {
    what: 'the skip counted',
  });

  q.process(async (job) => {
    if (job.data.fail) throw new Error('nope');
    await job.progress(30);
    return 'fine';
  });
  const ok = await q.add({ userId: u });
  const ko = await q.add({ userId: u, fail: true });
  const done = await s.waitEvent('job', 10000, (m) => m.data.id === String(ok.id) && m.data.state === 'completed');
  assert.deepEqual(done.data, { queue: 'legacy', id: String(ok.id), name: '__default__', state: 'completed', result: 'fine' });
  const failed = await s.waitEvent('job', 10000, (m) => m.data.id === String(ko.id) && m.data.state === 'failed');
  assert.equal(failed.data.reason, 'nope');
  const seq = s.messages.filter((m) => m.event === 'job' && m.data.id === String(ok.id)).map((m) => m.data.state);
  assert.deepEqual(seq, ['active', 'progress', 'completed']);
  assert.equal(s.messages.find((m) => m.event === 'job' && m.data.state === 'progress').data.progress, 30);
  assert.ok(!s.messages.some((m) => m.event === 'job' && m.data.id === '999'));
  await s.close();
});

test('a Streams queue: counts equal XINFO and XPENDING; delivered entries are active, acknowledged ones completed, dead letters failed', async () => {
  const u = userId();
  const other = userId();
  const s = await hub.connect(u);
  const o = await hub.connect(other);
  const id1 = await redisCommand(redis.port, ['XADD', 'tasks', '*', 'userId', u, 'name', 'backtest', 'payload', '{}']);
  const id2 = await redisCommand(redis.port, ['XADD', 'tasks', '*', 'data', JSON.stringify({ userId: u, p: 1 }), 'name', 'optimise']);
  await redisCommand(redis.port, ['XADD', 'tasks', '*', 'name', 'nobody']);
  await redisCommand(redis.port, ['XADD', 'tasks', '*', 'userId', other, 'name', 'theirs']);
  // a consumer takes three
  await redisCommand(redis.port, ['XREADGROUP', 'GROUP', 'workers', 'c1', 'COUNT', '3', 'STREAMS', 'tasks', '>']);
  for (const id of [id1, id2]) await s.waitEvent('job', 5000, (m) => m.data.id === id && m.data.state === 'active');
  // the first is done; the second goes to the dead letters, then is acknowledged
  await redisCommand(redis.port, ['XACK', 'tasks', 'workers', id1]);
  const c = await s.waitEvent('job', 5000, (m) => m.data.id === id1 && m.data.state === 'completed');
  assert.deepEqual(c.data, { queue: 'tasks', id: id1, name: 'backtest', state: 'completed' });
  await redisCommand(redis.port, ['XADD', 'tasks-dead', '*', 'id', id2, 'reason', 'too slow']);
  await redisCommand(redis.port, ['XACK', 'tasks', 'workers', id2]);
  const f = await s.waitEvent('job', 5000, (m) => m.data.id === id2 && m.data.state === 'failed');
  assert.deepEqual(f.data, { queue: 'tasks', id: id2, name: 'optimise', state: 'failed', reason: 'too slow' });
  // another consumer claims what is pending
  const pend = await redisCommand(redis.port, ['XPENDING', 'tasks', 'workers', '-', '+', '10']);
  for (const [pid] of pend) await redisCommand(redis.port, ['XCLAIM', 'tasks', 'workers', 'c2', '0', pid]);

  const ours = await freshPoll('tasks');
  const groups = await redisCommand(redis.port, ['XINFO', 'GROUPS', 'tasks']);
  const g = Object.fromEntries(groups[0].reduce((a, v, i, arr) => (i % 2 ? a : [...a, [v, arr[i + 1]]]), []));
  assert.equal(ours.counts.length, await redisCommand(redis.port, ['XLEN', 'tasks']));
  assert.equal(ours.counts.pending, g.pending);
  assert.equal(ours.counts.lag, g.lag);
  assert.equal(ours.counts.consumers, g.consumers);
  assert.equal(ours.counts.consumers, 2);
  assert.equal(ours.counts['dead-letters'], 1);
  assert.equal(ours.counts.pending, (await redisCommand(redis.port, ['XPENDING', 'tasks', 'workers']))[0]);
  // exactly once each, and not to the other user
  const mine = s.messages.filter((m) => m.event === 'job').map((m) => `${m.data.id}:${m.data.state}`);
  assert.deepEqual(mine.sort(), [`${id1}:active`, `${id1}:completed`, `${id2}:active`, `${id2}:failed`].sort());
  assert.ok(!o.messages.some((m) => m.event === 'job' && (m.data.id === id1 || m.data.id === id2)));
  await s.close();
  await o.close();
});

test('a spec that names nothing and keys of the wrong type are counted skips; the polls and the other queues go on', async () => {
  const before = await metrics();
  const ghost = await freshPoll('ghost');
  assert.equal(ghost.status, 'missing');
  assert.equal(ghost.counts.waiting, 0);
  const wrong = await freshPoll('wrong');
  assert.equal(wrong.status, 'error');
  assert.match(wrong.error, /WRONGTYPE/);
  const after = await metrics();
  for (const queue of ['ghost', 'wrong', 'counts']) {
    assert.ok(metricSum(after, 'coordhub_queue_polls_total', { queue }) > metricSum(before, 'coordhub_queue_polls_total', { queue }), queue);
  }
  assert.ok(metricSum(after, 'coordhub_queue_skips_total', { queue: 'ghost', reason: 'missing' }) > 0);
  assert.ok(metricSum(after, 'coordhub_queue_skips_total', { queue: 'wrong', reason: 'wrongtype' }) > 0);
  // the BullMQ queue whose events key is a string: skipped, the other streams still read
  assert.ok(metricSum(after, 'coordhub_queue_skips_total', { queue: 'badevents', reason: 'wrongtype' }) > 0);
  const r = await httpJson(`${hub.url}/readyz`, {});
  assert.equal(r.status, 200);
});

test('GET /v1/queues needs role ops', async () => {
  const r = await httpJson(`${hub.url}/v1/queues`, { token: hub.token('someone', ['service']) });
  assert.equal(r.status, 403);
  const none = await httpJson(`${hub.url}/v1/queues`, {});
  assert.equal(none.status, 401);
  const s = await hub.connect('plain-user');
  s.send({ op: 'join', room: 'queues' });
  const e = await s.waitEvent('error');
  assert.equal(e.data.code, 'forbidden');
  await s.close();
});

qtest('a hub restarted on the same address resumes the events stream: nothing twice, nothing lost', async (track) => {
  const u = userId();
  const q = track(new Queue('resume', { connection: conn }));
  const w = track(new Worker('resume', async (job) => job.data.n, { connection: conn }));
  const completed = async () => metricSum(await metrics(), 'coordhub_queue_job_events_total', { queue: 'resume', state: 'completed' });
  let s = await hub.connect(u);
  const a = await q.add('a', { userId: u, n: 1 });
  await s.waitEvent('job', 10000, (m) => m.data.id === a.id && m.data.state === 'completed');
  await s.close();
  assert.equal(await hub.stop(), 0);
  // while it is down
  const b = await q.add('b', { userId: u, n: 2 });
  await waitUntil(async () => (await b.getState()) === 'completed', { timeoutMs: 10000, what: 'job b done' });
  // a saved position Redis would refuse (written by hand): ignored, not
  // retried in a loop
  await redisCommand(redis.port, ['HSET', `coordhub:queues:cursor:127.0.0.1:${port}`, 'bull:counts:events', 'garbage']);
  const failedXreads = async () => {
    const info = await redisCommand(redis.port, ['INFO', 'commandstats']);
    return Number((/cmdstat_xread:.*failed_calls=(\d+)/.exec(info) || [0, 0])[1]);
  };
  const failedBefore = await failedXreads();
  hub = await startHub({ redisUrl: redis.url, extraArgs: hubArgs(), port });
  // the new hub reads b's end from the saved position, and not a's (its
  // counters start at 0: a re-read would make 2)
  await waitUntil(async () => (await completed()) === 1, { timeoutMs: 10000, what: "b's end read after the restart" });
  s = await hub.connect(u);
  const c = await q.add('c', { userId: u, n: 3 });
  const cEnd = await s.waitEvent('job', 10000, (m) => m.data.id === c.id && m.data.state === 'completed');
  assert.equal(cEnd.data.result, 3);
  assert.equal(await completed(), 2, 'b and c, each once');
  assert.ok(!s.messages.some((m) => m.event === 'job' && (m.data.id === a.id || m.data.id === b.id)), 'no event twice');
  // the string key 'bull:badevents:events' fails an XREAD about once a poll
  // round trip (then it is left out): never a loop
  assert.ok((await failedXreads()) - failedBefore < 50, `failed XREADs: ${(await failedXreads()) - failedBefore}`);
  await w.close();
  await s.close();
  ops = await hub.connect('op', ['ops']);
});

test('bad queue flags are refused at start, with the reason', async () => {
  for (const [args, re] of [
    [['--queues', 'kafka:x'], /bull:, bullmq: or stream:/],
    [['--queues', 'stream:only-a-stream'], /stream:<stream>\/<group>/],
    [['--queues', 'bull:a,bull:a'], /second queue named 'a'/],
    [['--queues', 'bull:a', '--queue-alerts', 'b:waiting>1'], /no queue named 'b'/],
    [['--queues', 'bull:a', '--queue-alerts', 'waiting>lots'], /bad bound/],
    [['--queue-poll-ms', '5'], /--queue-poll-ms/],
    [['--job-user-field', 'a..b'], /--job-user-field/],
  ]) {
    const r = await runHub(['--jwt-secret', 's', ...args]);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, re, args.join(' '));
  }
});
