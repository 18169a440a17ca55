// --lock-replicas N (SPEC §11): a lock is granted only after WAIT N
// confirms that N replicas hold it (within 100 ms); otherwise it is
// released and the answer is 503 unavailable. A real primary and replica;
// the replica frozen (SIGSTOP) stands for one that lags or is gone.
import assert from 'node:assert/strict';
import { test, startRedis, startHub, httpGet, httpJson, waitUntil, userId } from './harness.mjs';

const secret = 'lock-replicas-secret';

test('--lock-replicas 1: granted once the replica holds it; refused (503) and released while the replica is frozen; the hub goes on meanwhile', async () => {
  const P = await startRedis();
  const R = await startRedis();
  await R.command(['REPLICAOF', '127.0.0.1', String(P.port)]);
  await waitUntil(async () => /master_link_status:up/.test(await R.command(['INFO', 'replication'])), {
    timeoutMs: 10000,
    what: 'the replica in sync',
  });
  const H = await startHub({ redisUrl: P.url, secret, extraArgs: ['--lock-replicas', '1'] });
  const svc = H.token('svc', ['service']);
  const acquire = (name) =>
    httpJson(`${H.url}/v1/locks/${name}`, { method: 'POST', token: svc, body: { ttl_ms: 30000, owner: 't' } });

  const a = await acquire('lr-a');
  assert.equal(a.status, 200, JSON.stringify(a.json));
  // granted means the replica had it already
  assert.equal(await R.command(['GET', 'lr-a']), a.json.token);

  process.kill(R.pid, 'SIGSTOP');
  try {
    const U = userId();
    const ws = await H.connect(U);
    const b = await acquire('lr-b');
    assert.equal(b.status, 503, JSON.stringify(b.json));
    assert.equal(b.json.error.code, 'unavailable');
    assert.equal(await P.command(['EXISTS', 'lr-b']), 0, 'a refused lock is released');
    assert.equal(await H.metric('coordhub_lock_replica_refusals_total'), 1);
    // WAIT blocks the locks' own connection only: the hub serves meanwhile
    assert.equal((await httpGet(`${H.url}/readyz`)).status, 200);
    await P.publish('tradestate', JSON.stringify({ steamId: U, state: 'during' }));
    await ws.waitFor((m) => m.event === 'tradestate' && m.data.state === 'during', 5000);
    await ws.close();
  } finally {
    process.kill(R.pid, 'SIGCONT');
  }
  await waitUntil(async () => /master_link_status:up/.test(await R.command(['INFO', 'replication'])), {
    timeoutMs: 10000,
    what: 'the replica back in sync',
  });
  const c = await acquire('lr-b');
  assert.equal(c.status, 200, JSON.stringify(c.json));
  assert.ok(c.json.fence > 0);
});

test('--lock-replicas 1 with no replica at all: every lock refused (503), none left behind', async () => {
  const P = await startRedis();
  const H = await startHub({ redisUrl: P.url, secret, extraArgs: ['--lock-replicas', '1'] });
  const r = await httpJson(`${H.url}/v1/locks/lr-none`, {
    method: 'POST',
    token: H.token('svc', ['service']),
    body: { ttl_ms: 30000, owner: 't' },
  });
  assert.equal(r.status, 503);
  assert.equal(await P.command(['EXISTS', 'lr-none']), 0);
});

test('--lock-replicas: a bad value is refused at start', async () => {
  const { runHub } = await import('./harness.mjs');
  const r = await runHub(['--lock-replicas', '17', '--jwt-secret', secret]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--lock-replicas/);
});
