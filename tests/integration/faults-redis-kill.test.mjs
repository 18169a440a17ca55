// Redis is killed (SIGKILL) and restarted while 1,000 native clients are
// connected and messages flow (SPEC §7, §8): the hub closes no socket,
// /readyz is 503 for the outage and 200 soon after Redis returns (the delay
// is measured: the backoff caps at 2 s +-20%), every message that reached
// the hub is delivered, delivery resumes for every client, the
// subscriptions and client-side tracking are back (PUBSUB, CLIENT LIST), and
// the config L1 was flushed: a value that changed in Redis while the hub was
// deaf is served fresh.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { before } from 'node:test';
import {
  httpGet,
  httpJson,
  openFleet,
  parseClientList,
  publishFlow,
  sleep,
  startHub,
  startRedis,
  test,
  waitUntil,
} from './harness.mjs';

const CLIENTS = 1000;
const OUTAGE_MS = 4000;
const READY_BOUND_MS = 3000; // backoff cap 2 s + 20% jitter + reconnect
const CHANNELS = ['tradestate', 'canceledtrades', 'itemReserved', 'finishedtrades', 'steamDown'];
const KEY = 'faultsKillKey';

let redis;
let hub;
let fleet;
const tag = crypto.randomBytes(3).toString('hex');
const users = Array.from({ length: CLIENTS }, (_, i) => `fk${tag}u${i}`);
const seen = new Map(); // user -> Set of flow seqs received
const probes = new Map(); // user -> Set of probe tags received
let hubCloses = [];

before(async () => {
  redis = await startRedis();
  hub = await startHub({ redisUrl: redis.url });
  for (const u of users) {
    seen.set(u, new Set());
    probes.set(u, new Set());
  }
  fleet = await openFleet(hub, CLIENTS, {
    subOf: (i) => users[i],
    concurrency: 50,
    onMessage: (c, m) => {
      if (m.event !== 'tradestate') return;
      if (m.data.state === 'flow') seen.get(c.sub).add(Number(m.data.msg));
      else if (m.data.state === 'probe') probes.get(c.sub).add(m.data.msg);
    },
    onClose: (c, code) => hubCloses.push({ user: c.sub, code }),
  });
});

const readyz = async () => (await httpGet(`${hub.url}/readyz`, { timeoutMs: 3000 })).status;

// One tradestate to every user, all awaited.
async function probeAll(probeTag, timeoutMs = 30000) {
  const c = await redis.client();
  try {
    const cmds = users.map((u) => ['PUBLISH', 'tradestate', JSON.stringify({ steamId: u, token: 'p', state: 'probe', msg: probeTag })]);
    for (let i = 0; i < cmds.length; i += 200) await c.pipeline(cmds.slice(i, i + 200));
  } finally {
    c.close();
  }
  await waitUntil(() => users.every((u) => probes.get(u).has(probeTag)), {
    timeoutMs,
    intervalMs: 100,
    what: `every one of ${CLIENTS} clients to receive probe "${probeTag}" (missing: ${users.filter((u) => !probes.get(u).has(probeTag)).length})`,
  });
}

// The hub's two connections in CLIENT LIST: the command connection tracks
// (flag t) and redirects to the subscriber.
async function trackingState() {
  const list = parseClientList(await redis.command(['CLIENT', 'LIST']));
  const cmd = list.find((c) => c.name === 'coordhub-cmd');
  const sub = list.find((c) => c.name === 'coordhub-sub');
  return { cmd, sub, ok: !!(cmd && sub && /t/.test(cmd.flags) && cmd.redir === sub.id) };
}

async function subscriptionsState() {
  const chans = await redis.command(['PUBSUB', 'CHANNELS']);
  const numpat = await redis.command(['PUBSUB', 'NUMPAT']);
  return { chans, numpat, ok: CHANNELS.every((c) => chans.includes(c)) && chans.includes('__redis__:invalidate') && numpat >= 1 };
}

const admin = () => hub.token('faults-admin', ['admin']);
const reader = () => hub.token('faults-reader');
const storeDoc = (value, version) => JSON.stringify({ value, category: 'faults', version, updatedAt: Date.now() });

test(`SIGKILL of Redis under load with ${CLIENTS} clients: nothing closed, nothing lost, readiness, subscriptions, tracking and config all recover`, async (t) => {
  assert.equal(fleet.length, CLIENTS);
  await probeAll('before');
  const before0 = await subscriptionsState();
  assert.ok(before0.ok, `before the outage: ${JSON.stringify(before0)}`);
  assert.ok((await trackingState()).ok, 'before the outage: coordhub-cmd tracks with REDIRECT to coordhub-sub');

  // Config: the hub writes v1. Then Redis is made to hold v2 in a snapshot
  // (dump.rdb, loaded when Redis restarts) and is put back to v1; the hub
  // reads v1 into L1. After the restart Redis holds v2 and nothing tells
  // the hub so, except that the subscriber connection dropped.
  const put = await httpJson(`${hub.url}/v1/config/${KEY}`, { method: 'PUT', token: admin(), body: { value: 'v1', category: 'faults' } });
  assert.equal(put.status, 200, put.body);
  const v1 = put.json.version;
  await redis.command(['HSET', 'configuration-store', KEY, storeDoc('v2', v1 + 1)]);
  await redis.command(['SET', `configuration:${KEY}`, '"v2"', 'PX', '180000']);
  assert.equal(await redis.command(['SAVE']), 'OK');
  await redis.command(['HSET', 'configuration-store', KEY, storeDoc('v1', v1)]);
  await redis.command(['SET', `configuration:${KEY}`, '"v1"', 'PX', '180000']);
  await waitUntil(
    async () => {
      const r = await httpJson(`${hub.url}/v1/config/${KEY}`, { token: reader() });
      return r.status === 200 && r.json.value === 'v1' && r.json.version === v1;
    },
    { what: `GET /v1/config/${KEY} to serve v1 again` },
  );
  const l1Hits0 = await hub.metric('coordhub_config_cache_hits_total', { tier: 'l1' });
  assert.equal((await httpJson(`${hub.url}/v1/config/${KEY}`, { token: reader() })).json.value, 'v1');
  assert.ok((await hub.metric('coordhub_config_cache_hits_total', { tier: 'l1' })) > l1Hits0, 'v1 is served from L1');

  const reconnects0 = await hub.metric('coordhub_redis_reconnects_total');
  const flow = publishFlow(redis, users, { ratePerSec: 400, batch: 20 });
  await sleep(1500);

  // ---- the outage
  const tKill = Date.now();
  await redis.kill('SIGKILL');
  await waitUntil(async () => (await readyz()) === 503, { timeoutMs: 5000, intervalMs: 20, what: '/readyz 503 after SIGKILL' });
  const detectMs = Date.now() - tKill;
  const during = [];
  const staleRead = await httpJson(`${hub.url}/v1/config/${KEY}`, { token: reader() });
  while (Date.now() - tKill < OUTAGE_MS) {
    during.push(await readyz());
    assert.equal((await httpGet(`${hub.url}/healthz`)).status, 200, '/healthz during the outage');
    await sleep(100);
  }
  assert.ok(during.every((s) => s === 503), `/readyz during the outage: ${JSON.stringify([...new Set(during)])}`);
  // While deaf, L1 may be served only marked stale (SPEC §8).
  assert.ok(
    staleRead.status === 503 || (staleRead.status === 200 && staleRead.json.stale === true),
    `config read during the outage: ${staleRead.status} ${staleRead.body}`,
  );

  // ---- Redis returns (with the v2 snapshot)
  await redis.restart();
  const tUp = Date.now();
  await waitUntil(async () => (await readyz()) === 200, { timeoutMs: 10000, intervalMs: 20, what: '/readyz 200 after Redis returned' });
  const readyMs = Date.now() - tUp;
  t.diagnostic(
    `/readyz 503 ${detectMs} ms after SIGKILL; 200 ${readyMs} ms after Redis answered PING again (outage ${tUp - tKill} ms); ` +
      `config read while Redis was down: ${staleRead.status} ${staleRead.body}`,
  );
  assert.ok(readyMs < READY_BOUND_MS, `/readyz took ${readyMs} ms to return to 200 (bound ${READY_BOUND_MS} ms)`);

  const after = await subscriptionsState();
  assert.ok(after.ok, `after the restart the hub is not subscribed to everything: ${JSON.stringify(after)}`);
  const tr = await trackingState();
  assert.ok(tr.ok, `after the restart client tracking is not back: cmd ${JSON.stringify(tr.cmd)}, sub ${JSON.stringify(tr.sub)}`);
  t.diagnostic(`PUBSUB CHANNELS ${JSON.stringify(after.chans.sort())}, NUMPAT ${after.numpat}; coordhub-cmd flags=${tr.cmd.flags} redir=${tr.cmd.redir}, coordhub-sub id=${tr.sub.id}`);

  // L1 was flushed: v2 (what Redis holds now) is served, not L1's v1.
  const fresh = await httpJson(`${hub.url}/v1/config/${KEY}`, { token: reader() });
  assert.equal(fresh.status, 200, fresh.body);
  assert.equal(fresh.json.value, 'v2', `config after recovery: ${fresh.body} (v1 would be a stale L1 entry)`);
  assert.equal(fresh.json.version, v1 + 1);
  assert.notEqual(fresh.json.stale, true);

  // Delivery resumes for every client.
  await sleep(1000);
  const stats = await flow.stop();
  await probeAll('after');

  // Every flow message Redis handed to the hub was delivered.
  const lost = [];
  for (const [seq, l] of stats.log.entries()) if (l.receivers >= 1 && !seen.get(l.user).has(seq)) lost.push(seq);
  t.diagnostic(
    `flow: ${stats.sent} published, ${stats.reachedHub} reached the hub, ${stats.notSubscribed} found no subscriber (hub not yet resubscribed), ` +
      `${stats.failed} failed (Redis down); lost by the hub: ${lost.length}`,
  );
  assert.deepEqual(lost.slice(0, 20), [], `${lost.length} messages reached the hub and were not delivered`);
  assert.ok(stats.reachedHub > 0);

  assert.deepEqual(hubCloses, [], 'no client socket was closed');
  assert.equal(fleet.filter((c) => c.closeInfo).length, 0);
  assert.equal(await hub.metric('coordhub_connections', { protocol: 'native' }), CLIENTS);
  assert.ok((await hub.metric('coordhub_redis_reconnects_total')) > reconnects0);
  assert.ok((await hub.metric('coordhub_config_invalidations_total', { source: 'flush' })) >= 1, 'an L1 flush is counted');
});
