// Redis Sentinel (SPEC §11): two hubs given redis+sentinel:// follow a
// failover by themselves. A real primary, one replica and three sentinels
// (redis-server --sentinel), all on loopback; 1,000 WebSocket clients on the
// two hubs; lock clients acquiring and releasing in a loop. Then the primary
// is killed (SIGKILL), and in the second test frozen (SIGSTOP) until the
// sentinels have promoted the replica. Asserted: no socket dropped, both
// hubs ready again (the time from the promotion is printed), every event
// published after the promotion delivered, lock answers only 200, 409 or
// 503.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after } from 'node:test';
import {
  test,
  startRedis,
  startHub,
  httpGet,
  httpJson,
  waitUntil,
  userId,
  freePort,
  makeTmpDir,
  redisCommand,
  REDIS_BIN,
  withTimeout,
} from './harness.mjs';

const secret = 'sentinel-test-secret';
const MASTER = 'coordmaster';
const procs = new Set();
after(() => {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
});

async function startSentinels(primaryPort, n = 3) {
  const dir = makeTmpDir('sentinel');
  const ports = [];
  for (let i = 0; i < n; i++) {
    const port = await freePort();
    const conf = path.join(dir, `s${port}.conf`);
    fs.writeFileSync(
      conf,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `sentinel monitor ${MASTER} 127.0.0.1 ${primaryPort} 2`,
        `sentinel down-after-milliseconds ${MASTER} 1000`,
        `sentinel failover-timeout ${MASTER} 4000`,
        `sentinel parallel-syncs ${MASTER} 1`,
        '',
      ].join('\n'),
    );
    const p = spawn(REDIS_BIN, [conf, '--sentinel'], { stdio: ['ignore', 'ignore', 'ignore'] });
    procs.add(p);
    ports.push(port);
  }
  // each answers, and each knows the other two (hello messages, ~2 s)
  await waitUntil(
    async () => {
      for (const port of ports) {
        const others = await redisCommand(port, ['SENTINEL', 'SENTINELS', MASTER]).catch(() => null);
        if (!Array.isArray(others) || others.length < n - 1) return false;
      }
      return true;
    },
    { timeoutMs: 20000, intervalMs: 200, what: 'three sentinels that know each other' },
  );
  return ports;
}

async function masterOf(sentinelPort) {
  const a = await redisCommand(sentinelPort, ['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER]);
  return Number(a[1]);
}

async function setup(extraArgs = []) {
  const P = await startRedis();
  const R = await startRedis();
  await R.command(['REPLICAOF', '127.0.0.1', String(P.port)]);
  await waitUntil(async () => /master_link_status:up/.test(await R.command(['INFO', 'replication'])), {
    timeoutMs: 10000,
    what: 'the replica in sync',
  });
  const sentinels = await startSentinels(P.port);
  const url = `redis+sentinel://${sentinels.map((p) => `127.0.0.1:${p}`).join(',')}/${MASTER}`;
  const hubs = await Promise.all([0, 1].map(() => startHub({ redisUrl: url, secret, extraArgs })));
  return { P, R, sentinels, hubs };
}

async function failover(kind, { lockReplicas = 0 } = {}) {
  const { P, R, sentinels, hubs } = await setup(lockReplicas ? ['--lock-replicas', String(lockReplicas)] : []);
  const users = Array.from({ length: 1000 }, () => userId());
  const clients = [];
  for (let i = 0; i < users.length; i += 100) {
    clients.push(...(await Promise.all(users.slice(i, i + 100).map((u, k) => hubs[(i + k) % 2].connect(u)))));
  }

  // lock clients: acquire and release in a loop through both hubs
  const statuses = new Map();
  const grants = []; // {name, fence}, in the order the answers came
  let locking = true;
  const lockers = [0, 1, 2, 3].map(async (k) => {
    const hub = hubs[k % 2];
    const token = hub.token(`svc${k}`, ['service']);
    while (locking) {
      const a = await httpJson(`${hub.url}/v1/locks/sentinel-lock-${k % 2}`, {
        method: 'POST',
        token,
        body: { ttl_ms: 5000, owner: `o${k}` },
        timeoutMs: 10000,
      }).catch(() => ({ status: 'error' }));
      statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
      if (a.status === 200) {
        grants.push({ name: `sentinel-lock-${k % 2}`, fence: a.json.fence });
        const r = await httpJson(`${hub.url}/v1/locks/sentinel-lock-${k % 2}`, {
          method: 'DELETE',
          token,
          body: { token: a.json.token },
          timeoutMs: 10000,
        }).catch(() => ({ status: 'error' }));
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      }
      await new Promise((res) => setTimeout(res, 20));
    }
  });

  // the lock clients are going before the primary goes
  await waitUntil(() => grants.length >= 5, { timeoutMs: 20000, what: 'locks granted before the failover' });
  assert.equal(await masterOf(sentinels[0]), P.port);
  if (kind === 'kill') await P.kill('SIGKILL');
  else process.kill(P.pid, 'SIGSTOP');
  const t0 = Date.now();
  await waitUntil(async () => (await masterOf(sentinels[0]).catch(() => 0)) === R.port, {
    timeoutMs: 30000,
    intervalMs: 100,
    what: 'the sentinels to promote the replica',
  });
  const promoted = Date.now();
  const readyAfter = await Promise.all(
    hubs.map(async (h) => {
      await waitUntil(async () => (await httpGet(`${h.url}/readyz`)).status === 200, {
        timeoutMs: 30000,
        intervalMs: 50,
        what: `hub ${h.url} ready on the new primary`,
      });
      return Date.now() - promoted;
    }),
  );
  console.log(`# ${kind}: promotion ${promoted - t0} ms after the ${kind}; hubs ready ${readyAfter.join(' and ')} ms after it`);
  if (kind === 'freeze') {
    // the old primary wakes up and the sentinels demote it; the hubs stay
    process.kill(P.pid, 'SIGCONT');
    await waitUntil(async () => /role:slave/.test(await P.command(['INFO', 'replication']).catch(() => '')), {
      timeoutMs: 30000,
      intervalMs: 200,
      what: 'the old primary demoted by the sentinels',
    });
  }

  // every event published after the promotion reaches its socket
  for (const [i, u] of users.entries()) await R.publish('tradestate', JSON.stringify({ steamId: u, state: i }));
  await Promise.all(clients.map((c, i) => c.waitFor((m) => m.event === 'tradestate' && m.data.state === i, 20000)));
  const dropped = clients.filter((c) => c.isClosed).length;
  console.log(`# ${kind}: sockets dropped ${dropped}; lock answers ${JSON.stringify(Object.fromEntries(statuses))}`);
  assert.equal(dropped, 0, 'sockets dropped');

  {
    // locks are granted again after the failover (with --lock-replicas,
    // once the new primary has a replica: the old one, demoted; without,
    // once a lock granted just before it has expired): wait for a few
    const before = grants.length;
    await waitUntil(() => grants.length >= before + 5, { timeoutMs: 30000, what: 'locks granted after the failover' });
  }
  locking = false;
  await withTimeout(Promise.all(lockers), 30000, 'the lock clients to stop');
  if (lockReplicas) {
    // WAIT made every granted fence reach the replica before the answer:
    // the new primary goes on from there, never issuing one again
    for (const name of new Set(grants.map((g) => g.name))) {
      const f = grants.filter((g) => g.name === name).map((g) => g.fence);
      for (let i = 1; i < f.length; i++) assert.ok(f[i] > f[i - 1], `${name}: fence ${f[i]} after ${f[i - 1]} (${f.length} grants)`);
    }
    console.log(`# ${kind}: ${grants.length} locks granted, fences strictly increasing per name across the failover`);
  }
  for (const s of statuses.keys()) assert.ok([200, 409, 503].includes(s), `lock answer ${s}: ${JSON.stringify(Object.fromEntries(statuses))}`);
  assert.ok((statuses.get(200) ?? 0) > 0, 'locks were granted');
  for (const h of hubs) {
    const r = await httpJson(`${h.url}/v1/hubs`, { token: h.token('op', ['ops']) });
    assert.ok(r.json.hubs.every((e) => e.redis.role === 'master' || e.redis.role === 'unknown'));
  }
  await Promise.all(clients.map((c) => c.close()));
}

test('SIGKILL of the primary: both hubs follow the sentinels, no socket dropped, every later event delivered', { timeout: 240000 }, async () => {
  await failover('kill');
});

test('SIGSTOP of the primary until the sentinels promote the replica, with --lock-replicas 1: the same, the old primary comes back demoted, and fencing numbers never go back', { timeout: 240000 }, async () => {
  await failover('freeze', { lockReplicas: 1 });
});
