// The registry of hubs (SPEC §11): every hub announces itself in Redis
// (coordhub:hub:<id>, refreshed every 2 s, gone 10 s after the hub stops
// answering) and GET /v1/hubs (role ops) lists the live ones.
import assert from 'node:assert/strict';
import { test, startRedis, startHub, httpJson, waitUntil, connectWs } from './harness.mjs';

const secret = 'hubs-test-secret';
let redis, A, B, C;

async function list(hub, token) {
  const r = await httpJson(`${hub.url}/v1/hubs`, { token: token ?? hub.token('op', ['ops']) });
  assert.equal(r.status, 200, JSON.stringify(r));
  return r.json.hubs;
}

test('three hubs on one Redis list each other, with their connections; a SIGTERM removes its entry at once', async () => {
  redis = await startRedis();
  [A, B, C] = await Promise.all([0, 1, 2].map(() => startHub({ redisUrl: redis.url, secret })));
  const hubs = await waitUntil(async () => {
    const l = await list(A);
    return l.length === 3 ? l : null;
  }, { timeoutMs: 10000, what: 'three hubs listed' });
  const addrs = hubs.map((h) => h.addr).sort();
  assert.deepEqual(addrs, [A, B, C].map((h) => new URL(h.url).host).sort());
  for (const h of hubs) {
    assert.match(h.id, /^[0-9a-f]{16}$/);
    assert.equal(typeof h.version, 'string');
    assert.ok(h.version.length > 0);
    assert.ok(Number.isInteger(h.started_ms) && h.started_ms > 1.7e12);
    assert.ok(Number.isInteger(h.seen_ms) && h.seen_ms >= h.started_ms);
    assert.deepEqual(Object.keys(h.connections).sort(), ['native', 'polling', 'socketio']);
    assert.equal(h.redis.addr, new URL(redis.url.replace('redis:', 'http:')).host);
    assert.equal(h.redis.role, 'master');
  }
  assert.equal(new Set(hubs.map((h) => h.id)).size, 3, 'distinct ids');
  // every hub answers the same list
  assert.equal((await list(B)).length, 3);

  // two sockets on B show within a beat
  const s1 = await B.connect('u1');
  const s2 = await B.connect('u2');
  const addrB = new URL(B.url).host;
  await waitUntil(async () => (await list(A)).find((h) => h.addr === addrB)?.connections.native === 2, {
    timeoutMs: 8000,
    what: "B's two native connections in its entry",
  });
  await s1.close();
  await s2.close();

  // a graceful stop removes the entry before the hub exits
  const code = await C.stop();
  assert.equal(code, 0);
  const addrC = new URL(C.url).host;
  const after = await list(A);
  assert.equal(after.length, 2);
  assert.ok(!after.some((h) => h.addr === addrC), 'a stopped hub is not listed');
});

test('a SIGKILLed hub stays listed until its entry expires (10 s), then is gone and its id leaves the set', async () => {
  const addrB = new URL(B.url).host;
  await B.kill('SIGKILL');
  const killedAt = Date.now();
  assert.ok((await list(A)).some((h) => h.addr === addrB), 'still listed just after the kill');
  // the entry's expiry is the only signal there is: a bounded wait on it
  await waitUntil(async () => !(await list(A)).some((h) => h.addr === addrB), {
    timeoutMs: 15000,
    intervalMs: 250,
    what: 'the killed hub to leave the list',
  });
  const gone = Date.now() - killedAt;
  assert.ok(gone >= 7000 && gone <= 13000, `gone after ${gone} ms (entry set at most 2 s before the kill, 10 s TTL)`);
  const ids = await redis.command(['SMEMBERS', 'coordhub:hubs']);
  assert.equal(ids.length, 1, `the set holds only the live hub: ${ids}`);
});

test('GET /v1/hubs: 401 without a token, 403 without role ops, 405 for other methods', async () => {
  let r = await httpJson(`${A.url}/v1/hubs`);
  assert.equal(r.status, 401);
  r = await httpJson(`${A.url}/v1/hubs`, { token: A.token('u3', ['service', 'admin']) });
  assert.equal(r.status, 403);
  assert.equal(r.json.error.code, 'forbidden');
  r = await httpJson(`${A.url}/v1/hubs`, { method: 'POST', token: A.token('op', ['ops']), body: {} });
  assert.equal(r.status, 405);
  r = await httpJson(`${A.url}/v1/hubs`, { method: 'DELETE', token: A.token('op', ['ops']) });
  assert.equal(r.status, 405);
});

test('a registry entry that is not JSON is left out, never an error', async () => {
  await redis.command(['SET', 'coordhub:hub:junk', 'not json']);
  await redis.command(['SADD', 'coordhub:hubs', 'junk']);
  const l = await list(A);
  assert.equal(l.length, 1);
  assert.equal(l[0].addr, new URL(A.url).host);
});
