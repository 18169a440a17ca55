// SIGTERM / SIGINT: WebSockets get close code 1001, the hub exits 0 (SPEC §1).
import assert from 'node:assert/strict';
import { before } from 'node:test';
import { httpGet, join, startHub, startRedis, test, userId, waitUntil, withTimeout } from './harness.mjs';

let redis;
before(async () => {
  redis = await startRedis();
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  test(`${signal}: every WebSocket gets 1001, then the hub exits 0`, async () => {
    const hub = await startHub({ redisUrl: redis.url });
    const clients = [await hub.connect(userId()), await hub.connect(userId()), await hub.connect(userId(), ['ops'])];
    await join(clients[2], 'ops');
    const exit = hub.exit();
    hub.proc.kill(signal);
    const closes = await Promise.all(clients.map((c) => c.waitClose(10000)));
    for (const [i, info] of closes.entries()) assert.equal(info.code, 1001, `client ${i} close code`);
    const { code, signal: sig } = await withTimeout(exit, 15000, `hub to exit after ${signal}`);
    assert.equal(sig, null, `hub died of ${sig}`);
    assert.equal(code, 0, 'exit code');
    assert.doesNotMatch(hub.stderr(), /AddressSanitizer|runtime error:|LeakSanitizer/, 'sanitizer report on stderr');
  });
}

test('SIGTERM with no clients exits 0 promptly and the port is released', async () => {
  const hub = await startHub({ redisUrl: redis.url });
  const code = await hub.stop(10000);
  assert.equal(code, 0);
  // Nothing listens any more.
  await assert.rejects(
    fetch(`${hub.url}/healthz`, { signal: AbortSignal.timeout(2000) }),
    'the port still answers after exit',
  );
});

test('SIGTERM while Redis is down still closes sockets with 1001 and exits 0', async () => {
  const own = await startRedis();
  const hub = await startHub({ redisUrl: own.url });
  const c = await hub.connect(userId());
  await own.kill('SIGKILL');
  await waitUntil(async () => (await httpGet(`${hub.url}/readyz`)).status === 503, {
    timeoutMs: 10000,
    what: '/readyz 503 with Redis down',
  });
  const exit = hub.exit();
  hub.proc.kill('SIGTERM');
  assert.equal((await c.waitClose(10000)).code, 1001);
  const { code, signal } = await withTimeout(exit, 15000, 'hub to exit after SIGTERM with Redis down');
  assert.equal(signal, null);
  assert.equal(code, 0);
});
