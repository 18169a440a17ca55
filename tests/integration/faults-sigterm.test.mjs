// SIGTERM under load (SPEC §1): 300 native clients receiving a steady flow,
// HTTP requests running back to back on kept-alive connections (locks,
// reservations, config, health), a lock waiter queued behind a holder, and
// a request whose body is still arriving. Every WebSocket must get 1001,
// every request sent before the signal must get an HTTP answer (no reset
// without one), and the hub must exit 0.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { before } from 'node:test';
import {
  httpJson,
  keepAliveAgent,
  openFleet,
  publishFlow,
  rawTcp,
  sleep,
  startHub,
  startRedis,
  test,
  withTimeout,
} from './harness.mjs';

const CLIENTS = 300;
const LOOPS = 4; // kept-alive connections issuing requests back to back

let redis;
let hub;
const tag = crypto.randomBytes(3).toString('hex');

before(async () => {
  redis = await startRedis();
  hub = await startHub({ redisUrl: redis.url });
});

test(`SIGTERM with ${CLIENTS} clients, messages flowing and HTTP in flight: 1001 for all, every request answered, exit 0`, async (t) => {
  const svc = hub.token('faults-svc', ['service']);
  const admin = hub.token('faults-admin', ['admin']);
  const users = Array.from({ length: CLIENTS }, (_, i) => `sg${tag}u${i}`);
  let delivered = 0;
  const fleet = await openFleet(hub, CLIENTS, {
    subOf: (i) => users[i],
    concurrency: 50,
    onMessage: (c, m) => {
      if (m.event === 'tradestate') delivered++;
    },
  });
  const flow = publishFlow(redis, users, { ratePerSec: 300, batch: 10 });

  // A holder and a waiter behind it.
  const lockName = `faults:term:${tag}`;
  const held = await httpJson(`${hub.url}/v1/locks/${lockName}`, { method: 'POST', token: svc, body: { ttl_ms: 60000, wait_ms: 0, owner: 'holder' } });
  assert.equal(held.status, 200, held.body);
  const waiterAgent = keepAliveAgent();
  await httpJson(`${hub.url}/healthz`, { agent: waiterAgent });
  const waiterSent = Date.now();
  const waiter = httpJson(`${hub.url}/v1/locks/${lockName}`, {
    method: 'POST',
    token: svc,
    body: { ttl_ms: 5000, wait_ms: 30000, owner: 'waiter' },
    agent: waiterAgent,
    timeoutMs: 30000,
  }).then(
    (r) => ({ status: r.status, body: r.body, ms: Date.now() - waiterSent }),
    (e) => ({ error: e.code || e.message, ms: Date.now() - waiterSent }),
  );

  // Request loops, each on its own kept-alive connection.
  let killedAt = null;
  let exited = false;
  const results = []; // {what, sentAt, status | error}
  const requests = [
    (i, n) => ['PUT config', `${hub.url}/v1/config/faultsTerm${i}`, { method: 'PUT', token: admin, body: { value: n, category: 'faults' } }],
    (i, n) => ['POST lock', `${hub.url}/v1/locks/faults:t${tag}:${i}:${n}`, { method: 'POST', token: svc, body: { ttl_ms: 2000, wait_ms: 0 } }],
    (i, n) => ['POST reservation', `${hub.url}/v1/reservations/term${tag}${i}`, { method: 'POST', token: svc, body: { assets: [`a${n}`], ttl_s: 5, owner: 'o' } }],
    (i, n) => ['GET config', `${hub.url}/v1/config/faultsTerm${i}`, { token: svc }],
    (i) => ['GET healthz', `${hub.url}/healthz`, {}],
  ];
  const loops = Array.from({ length: LOOPS }, async (_, i) => {
    const agent = keepAliveAgent();
    await httpJson(`${hub.url}/healthz`, { agent });
    for (let n = 0; !exited; n++) {
      const [what, url, opts] = requests[n % requests.length](i, n);
      const sentAt = Date.now();
      const rec = { what, sentAt, afterKill: killedAt !== null };
      results.push(rec);
      try {
        const r = await httpJson(url, { ...opts, agent, timeoutMs: 10000 });
        rec.status = r.status;
      } catch (e) {
        rec.error = e.code || e.message;
        if (killedAt !== null) break; // the hub is going: stop this loop
      }
    }
  });

  // A request whose body is still arriving when the signal comes.
  const slowSock = await rawTcp(hub.port);
  let slowAnswer = '';
  slowSock.on('data', (d) => {
    slowAnswer += d.toString('latin1');
  });
  const slowEnded = new Promise((resolve) => slowSock.once('close', resolve));
  const slowBody = JSON.stringify({ value: 'slow', category: 'faults' });
  slowSock.write(
    `PUT /v1/config/faultsTermSlow HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${admin}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${slowBody.length}\r\n\r\n${slowBody.slice(0, 10)}`,
  );

  await sleep(1500); // load running
  const beforeKill = results.length;
  assert.ok(beforeKill > 10, `only ${beforeKill} requests before the signal`);
  const exit = hub.exit();
  killedAt = Date.now();
  hub.proc.kill('SIGTERM');
  setTimeout(() => slowSock.write(slowBody.slice(10)), 200);

  const { code, signal } = await withTimeout(exit, 15000, 'the hub to exit after SIGTERM');
  exited = true;
  const exitMs = Date.now() - killedAt;
  await Promise.all(loops);
  const w = await waiter;
  await withTimeout(slowEnded, 5000, 'the slow request connection to end').catch(() => slowSock.destroy());
  const flowStats = await flow.stop();
  const closes = {};
  await Promise.all(fleet.map((c) => (c.closeInfo ? null : new Promise((r) => c.ws.once('close', r)))));
  for (const c of fleet) closes[c.closeInfo.code] = (closes[c.closeInfo.code] || 0) + 1;

  const pre = results.filter((r) => !r.afterKill);
  const post = results.filter((r) => r.afterKill);
  const tally = (rs) => {
    const o = {};
    for (const r of rs) {
      const k = r.status !== undefined ? String(r.status) : r.error;
      o[k] = (o[k] || 0) + 1;
    }
    return o;
  };
  const slowStatus = /^HTTP\/1\.1 (\d+)/.exec(slowAnswer)?.[1] ?? `no answer (${JSON.stringify(slowAnswer.slice(0, 80))})`;
  t.diagnostic(`exit ${code}${signal ? ` signal ${signal}` : ''} ${exitMs} ms after SIGTERM; WebSocket closes ${JSON.stringify(closes)}; ${delivered} flow messages delivered, ${flowStats.sent} published`);
  t.diagnostic(`requests sent before SIGTERM: ${pre.length} ${JSON.stringify(tally(pre))}; after: ${post.length} ${JSON.stringify(tally(post))}`);
  t.diagnostic(`lock waiter: ${w.status ?? w.error} after ${w.ms} ms${w.body ? ` ${w.body}` : ''}; request with its body still arriving: ${slowStatus}`);

  assert.equal(signal, null, `the hub died of ${signal}`);
  assert.equal(code, 0, 'exit code');
  assert.deepEqual(closes, { 1001: CLIENTS }, 'every WebSocket closed with 1001');
  // Requests issued after the signal may find their kept-alive connection
  // closed by the hub as it stops (the usual keep-alive race a client
  // retries): reported above, not failed on. Those sent before it must all
  // have been answered.
  const unanswered = pre.filter((r) => r.status === undefined);
  assert.deepEqual(unanswered, [], 'requests sent before SIGTERM without an HTTP answer');
  assert.equal(w.status, 503, `the lock waiter: ${JSON.stringify(w)}`);
  assert.match(slowStatus, /^\d+$/, 'the request whose body was still arriving got no answer');
  assert.doesNotMatch(hub.stderr(), /AddressSanitizer|runtime error:|LeakSanitizer/);
});
