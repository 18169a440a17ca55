// 1,000 clients stop reading (their sockets paused) while 64 KiB messages
// for their room keep coming: each must be closed as a slow consumer (4008,
// counted), the hub's RSS must stay within a stated bound, and the clients
// that do read must receive every message, in order (SPEC §4).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { before } from 'node:test';
import { openFleet, rssSampler, sleep, startHub, startRedis, test, waitUntil } from './harness.mjs';

const PAUSED = 1000;
const READERS = 20;
const RSS_LIMIT = 300 * 1024 * 1024;
const MESSAGE_BYTES = 64 * 1024;
const BATCH = 4; // messages per round; readers must have all of a round before the next
const MAX_PUBLISHED = 96 * 1024 * 1024; // give up after this much
const MAX_MS = 120000;

let redis;
let hub;
const tag = crypto.randomBytes(3).toString('hex');

before(async () => {
  redis = await startRedis();
  hub = await startHub({ redisUrl: redis.url });
});

test(`${PAUSED} paused clients are each closed with 4008 while ${READERS} readers get everything and the hub stays under ${RSS_LIMIT >> 20} MiB`, async (t) => {
  const SC = 'coordhub_slow_consumer_closes_total';
  const sc0 = await hub.metric(SC);
  const gauge = () => hub.metric('coordhub_connections', { protocol: 'native' });

  // Readers record the sequence numbers they get, in order.
  const got = new Map();
  const readers = await openFleet(hub, READERS, {
    subOf: (i) => `sr${tag}r${i}`,
    roles: ['ops'],
    join: 'ops',
    concurrency: 20,
    onMessage: (c, m) => {
      if (m.event !== 'finishedtrades') return;
      const seq = Number(m.data.slice(0, m.data.indexOf(':')));
      got.get(c.i).push(seq);
    },
  });
  for (const r of readers) got.set(r.i, []);
  const closes = new Map(); // code -> count, for the paused ones
  const paused = await openFleet(hub, PAUSED, {
    subOf: (i) => `sp${tag}p${i}`,
    roles: ['ops'],
    join: 'ops',
    concurrency: 50,
    onClose: (c, code) => closes.set(code, (closes.get(code) || 0) + 1),
  });
  await waitUntil(async () => (await gauge()) === PAUSED + READERS, { timeoutMs: 20000, what: `${PAUSED + READERS} native connections` });
  for (const c of paused) c.ws._socket.pause(); // never read again (until the end)

  const rss = rssSampler(hub, 50);
  const rss0 = hub.rssBytes();
  const pub = await redis.client();
  const pad = 'x'.repeat(MESSAGE_BYTES);
  let seq = 0;
  let published = 0;
  const started = Date.now();
  let detectedAt = null;
  let slowCloses = 0;
  while (published < MAX_PUBLISHED && Date.now() - started < MAX_MS) {
    const cmds = [];
    for (let k = 0; k < BATCH; k++) cmds.push(['PUBLISH', 'finishedtrades', `${++seq}:${pad}`]);
    await pub.pipeline(cmds);
    published += BATCH * MESSAGE_BYTES;
    const want = seq;
    await waitUntil(() => readers.every((r) => got.get(r.i).at(-1) === want), {
      timeoutMs: 20000,
      intervalMs: 5,
      what: `every reader to receive message ${want}`,
    });
    slowCloses = (await hub.metric(SC)) - sc0;
    if (slowCloses >= PAUSED) {
      detectedAt = Date.now();
      break;
    }
  }
  // A few more rounds after the last close: readers still get everything.
  for (let round = 0; round < 5; round++) {
    const cmds = [];
    for (let k = 0; k < BATCH; k++) cmds.push(['PUBLISH', 'finishedtrades', `${++seq}:after`]);
    await pub.pipeline(cmds);
  }
  const last = seq;
  await waitUntil(() => readers.every((r) => got.get(r.i).at(-1) === last), { timeoutMs: 20000, what: `every reader to receive message ${last}` });
  pub.close();

  // The hub lets go of the paused sockets even though they never read the
  // close frame (it gives them a grace period).
  await waitUntil(async () => (await gauge()) === READERS, {
    timeoutMs: 30000,
    intervalMs: 200,
    what: `coordhub_connections back to the ${READERS} readers (${await gauge()} now)`,
  });
  const dropMs = Date.now() - (detectedAt ?? Date.now());
  const { max } = rss.stop();

  t.diagnostic(
    `published ${seq} messages, ${(published / 1048576).toFixed(0)} MiB, in ${((detectedAt ?? Date.now()) - started) / 1000} s; ` +
      `slow-consumer closes ${slowCloses}; paused sockets gone ${dropMs} ms after the last close was decided; ` +
      `hub RSS ${(rss0 / 1048576).toFixed(1)} MiB before, peak ${(max / 1048576).toFixed(1)} MiB`,
  );
  assert.equal(slowCloses, PAUSED, `${SC} grew by ${slowCloses}, expected ${PAUSED}`);
  assert.ok(max < RSS_LIMIT, `hub RSS peaked at ${(max / 1048576).toFixed(1)} MiB (bound ${RSS_LIMIT >> 20} MiB)`);

  // Every reader got every message, in order, and is still open.
  for (const r of readers) {
    const seqs = got.get(r.i);
    assert.equal(r.closeInfo, null, `reader ${r.i} closed: ${JSON.stringify(r.closeInfo)}`);
    assert.equal(seqs.length, last, `reader ${r.i} got ${seqs.length} of ${last} messages`);
    assert.ok(seqs.every((s, k) => s === k + 1), `reader ${r.i}: messages out of order or missing`);
  }

  // The paused clients, reading again, see 4008 (or, where the hub had to
  // drop a socket whose close frame it could not write, an abrupt end).
  for (const c of paused) c.ws._socket.resume();
  await waitUntil(() => paused.every((c) => c.closeInfo), { timeoutMs: 30000, what: 'every paused client to see its close' });
  const summary = Object.fromEntries(closes);
  t.diagnostic(`paused clients' close codes: ${JSON.stringify(summary)}`);
  for (const code of closes.keys()) assert.ok(code === 4008 || code === 1006, `a paused client was closed with ${code}: ${JSON.stringify(summary)}`);
  await sleep(100);
});
