// Lock contention (issue 4): tens of keep-alive clients each entering one
// critical section many times through POST (wait_ms) + DELETE. Checks that
// no two are ever inside at once (an in-process counter and a Redis
// INCR/DECR in the critical section), that fences strictly increase in
// grant order, and that every acquisition was granted; bounded in time.
import assert from 'node:assert/strict';
import { before } from 'node:test';
import { setImmediate as immediate } from 'node:timers/promises';
import { httpJson, keepAliveAgent, metricSum, sleep, startHub, startRedis, test, withTimeout } from './harness.mjs';

let redis;
let hub;
before(async () => {
  redis = await startRedis();
  hub = await startHub({ redisUrl: redis.url });
});

const now = () => performance.now();
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

// Runs `clients` workers spread over `hubs`, `rounds` critical sections each.
async function contend({ hubs, clients, rounds, waitMs = 10000, label, boundMs }) {
  const name = `contention:{${label}}`;
  const checkKey = `contention-check:${label}`;
  const resp = await Promise.all(Array.from({ length: clients }, () => redis.client()));
  let inside = 0;
  const violations = [];
  const failures = [];
  const grants = []; // in the order this process saw them = grant order, if exclusive
  const waits = [];

  async function worker(id) {
    const h = hubs[id % hubs.length];
    const agent = keepAliveAgent();
    const token = h.token(`svc-${id}`, ['service'], 3600);
    const url = `${h.url}/v1/locks/${encodeURIComponent(name)}`;
    const rc = resp[id];
    for (let i = 0; i < rounds; i++) {
      const t0 = now();
      const a = await httpJson(url, {
        method: 'POST',
        body: { ttl_ms: 15000, wait_ms: waitMs, owner: `client-${id}` },
        token,
        agent,
        timeoutMs: waitMs + 10000,
      });
      if (a.status !== 200) {
        failures.push(`client ${id} round ${i}: POST answered ${a.status} ${a.body.slice(0, 200)}`);
        continue;
      }
      // ---- critical section
      inside++;
      if (inside !== 1) violations.push(`client ${id} round ${i}: ${inside} inside (in-process)`);
      grants.push({ id, i, fence: a.json.fence });
      waits.push(now() - t0);
      const n = await rc.command(['INCR', checkKey]);
      if (n !== 1) violations.push(`client ${id} round ${i}: INCR of the check key gave ${n}`);
      if (i % 4 === 0) await sleep(1);
      else await immediate();
      const m = await rc.command(['DECR', checkKey]);
      if (m !== 0) violations.push(`client ${id} round ${i}: DECR of the check key gave ${m}`);
      inside--;
      // ---- end of critical section
      const d = await httpJson(url, { method: 'DELETE', body: { token: a.json.token }, token, agent, timeoutMs: 10000 });
      if (d.status !== 200 || d.json?.released !== true) {
        failures.push(`client ${id} round ${i}: DELETE answered ${d.status} ${d.body.slice(0, 200)}`);
      }
    }
  }

  const t0 = now();
  await withTimeout(
    Promise.all(Array.from({ length: clients }, (_, id) => worker(id))),
    boundMs,
    `${clients} clients x ${rounds} critical sections (${label})`,
  );
  const secs = (now() - t0) / 1000;
  for (const c of resp) c.close();

  const total = clients * rounds;
  const fences = grants.map((g) => g.fence);
  console.log(
    `# ${label}: ${clients} clients over ${hubs.length} hub(s) x ${rounds} rounds = ${grants.length}/${total} ` +
      `critical sections in ${secs.toFixed(2)} s: ${(grants.length / secs).toFixed(0)} lock cycles/s; ` +
      `wait p50 ${pct(waits, 50).toFixed(1)} ms, p99 ${pct(waits, 99).toFixed(1)} ms, max ${Math.max(...waits).toFixed(1)} ms; ` +
      `fences ${fences[0]}..${fences[fences.length - 1]}`,
  );
  assert.deepEqual(violations.slice(0, 10), [], `${violations.length} mutual-exclusion violations`);
  assert.deepEqual(failures.slice(0, 10), [], `${failures.length} acquisitions or releases failed`);
  assert.equal(grants.length, total, 'every acquisition was granted');
  const bad = [];
  for (let k = 1; k < grants.length; k++) {
    if (!(grants[k].fence > grants[k - 1].fence)) bad.push(`${JSON.stringify(grants[k - 1])} then ${JSON.stringify(grants[k])}`);
  }
  assert.deepEqual(bad.slice(0, 5), [], `${bad.length} fences not above the previous grant's`);
  const perClient = new Map();
  for (const g of grants) perClient.set(g.id, (perClient.get(g.id) || 0) + 1);
  assert.equal(perClient.size, clients, 'every client got in');
  assert.equal(await redis.command(['GET', checkKey]), '0');
  assert.equal(await redis.command(['EXISTS', name]), 0, 'the lock is free at the end');
  return { name, fences, secs };
}

test('24 keep-alive clients x 30 critical sections through one hub: exclusive, fences increasing, all granted', async () => {
  const m0 = await hub.metrics();
  const { name, fences } = await contend({ hubs: [hub], clients: 24, rounds: 30, label: 'one-hub', boundMs: 60000 });
  const total = 24 * 30;
  const m1 = await hub.metrics();
  const d = (n, l) => metricSum(m1, n, l) - metricSum(m0, n, l);
  assert.equal(d('coordhub_lock_acquisitions_total'), total, 'acquisitions counted');
  assert.equal(d('coordhub_lock_releases_total', { result: 'released' }), total, 'releases counted');
  assert.equal(d('coordhub_lock_contention_total'), 0, 'no 409 locked');
  assert.ok(d('coordhub_lock_waits_total') > 0, 'waits counted');
  // The companion counter is where the last grant left it.
  assert.equal(Number(await redis.command(['GET', `coordhub:fence:{${name}}`])), fences[fences.length - 1]);
  console.log(`# fence numbers used: ${fences[fences.length - 1] - fences[0] + 1} for ${total} grants`);
});

test('two hubs on one Redis, 16 clients x 20 critical sections: they wake each other through the release notice', async () => {
  const hub2 = await startHub({ redisUrl: redis.url });
  await contend({ hubs: [hub, hub2], clients: 16, rounds: 20, label: 'two-hubs', boundMs: 40000 });
  assert.equal(await hub2.stop(), 0);
});
