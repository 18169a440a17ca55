// A Redis demoted under the hub (SPEC §11): the address the hub was given
// no longer leads to a primary (a failover that moved the primary
// elsewhere, here REPLICAOF by hand). The hub notices (ROLE, its keepalive
// on the command connection, or a write answered READONLY), leaves that
// connection and is not ready (503) while the address leads to a replica;
// no socket is dropped (§8); once the address leads to a primary again it
// is ready, resubscribed, and delivers.
import assert from 'node:assert/strict';
import { test, startRedis, startHub, runHub, httpGet, httpJson, waitUntil, userId } from './harness.mjs';

const secret = 'demote-test-secret';

test('a primary demoted under the hub: 503 and no socket dropped, then ready and delivering once it is a primary again', async () => {
  const P = await startRedis();
  const other = await startRedis();
  const H = await startHub({ redisUrl: P.url, secret });
  const users = Array.from({ length: 50 }, () => userId());
  const clients = await Promise.all(users.map((u) => H.connect(u)));
  const reconnects0 = await H.metric('coordhub_redis_reconnects_total');

  await P.command(['REPLICAOF', '127.0.0.1', String(other.port)]);
  await waitUntil(async () => (await httpGet(`${H.url}/readyz`)).status === 503, {
    timeoutMs: 10000,
    what: '/readyz 503 once the primary is demoted',
  });
  assert.match(H.stderr(), /not a primary|READONLY/);
  // a lock is refused while there is no primary, never granted on a replica
  const lock = await httpJson(`${H.url}/v1/locks/demoted`, {
    method: 'POST',
    token: H.token('svc', ['service']),
    body: { ttl_ms: 10000, owner: 't' },
  });
  assert.equal(lock.status, 503, JSON.stringify(lock.json));
  assert.equal(await P.command(['EXISTS', 'demoted']), 0);

  await P.command(['REPLICAOF', 'NO', 'ONE']);
  await waitUntil(async () => (await httpGet(`${H.url}/readyz`)).status === 200, {
    timeoutMs: 15000,
    what: '/readyz 200 once it is a primary again',
  });
  assert.ok((await H.metric('coordhub_redis_reconnects_total')) > reconnects0);
  for (const c of clients) assert.equal(c.isClosed, false, 'a socket was dropped');
  // resubscribed: every client gets its event
  for (const [i, u] of users.entries()) await P.publish('tradestate', JSON.stringify({ steamId: u, state: i }));
  await Promise.all(clients.map((c, i) => c.waitFor((m) => m.event === 'tradestate' && m.data.state === i, 10000)));
  await Promise.all(clients.map((c) => c.close()));
});

test('a hub given a replica at start refuses to start: one line naming the problem, exit 2', async () => {
  const P = await startRedis();
  const R = await startRedis();
  await R.command(['REPLICAOF', '127.0.0.1', String(P.port)]);
  const r = await runHub(['--listen', '127.0.0.1:0', '--redis', R.url, '--jwt-secret', secret]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /not a primary/);
});
