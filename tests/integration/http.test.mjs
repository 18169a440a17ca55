// HTTP endpoints (SPEC §6): /healthz, /readyz, /metrics, 404.
import assert from 'node:assert/strict';
import { before } from 'node:test';
import { httpGet, httpJson, metricSum, parseMetrics, rawTcp, startHub, startRedis, test, userId, waitUntil, withTimeout } from './harness.mjs';

let redis;
let hub;
before(async () => {
  redis = await startRedis();
  hub = await startHub({ redisUrl: redis.url });
});

const NAMES = [
  'coordhub_connections',
  'coordhub_messages_in_total',
  'coordhub_deliveries_total',
  'coordhub_slow_consumer_closes_total',
  'coordhub_malformed_payloads_total',
  'coordhub_redis_connected',
  'coordhub_redis_reconnects_total',
  'coordhub_frame_too_large_closes_total',
  'coordhub_rate_limited_closes_total',
  'coordhub_delivery_latency_seconds',
];

test('/healthz and /readyz answer 200', async () => {
  assert.equal((await httpGet(`${hub.url}/healthz`)).status, 200);
  assert.equal((await httpGet(`${hub.url}/readyz`)).status, 200);
});

test('unknown paths answer 404', async () => {
  for (const p of ['/nope', '/healthz/extra', '/metricsx', '/ws/other']) {
    const r = await httpGet(`${hub.url}${p}`);
    assert.equal(r.status, 404, `GET ${p}`);
  }
});

test('/metrics is Prometheus text with every documented name, and the counters move', async () => {
  const r0 = await httpGet(`${hub.url}/metrics`);
  assert.equal(r0.status, 200);
  assert.match(String(r0.headers['content-type']), /^text\/plain/);
  for (const n of NAMES) assert.match(r0.body, new RegExp(`^(# TYPE )?${n}[ {_]`, 'm'), `/metrics lacks ${n}`);
  assert.match(r0.body, /^# TYPE coordhub_delivery_latency_seconds histogram$/m);
  const m0 = parseMetrics(r0.body);
  assert.equal(metricSum(m0, 'coordhub_redis_connected'), 1);

  const U = userId();
  const a = await hub.connect(U);
  const b = await hub.connect(U);
  await waitUntil(async () => (await hub.metric('coordhub_connections', { protocol: 'native' })) === 2, {
    what: 'coordhub_connections{protocol="native"} = 2',
  });
  const state = { steamId: U, token: 't', state: 's', msg: '' };
  await redis.publish('tradestate', JSON.stringify(state));
  await a.waitEvent('tradestate');
  await b.waitEvent('tradestate');
  const m1 = await waitUntil(
    async () => {
      const m = await hub.metrics();
      return metricSum(m, 'coordhub_deliveries_total') >= metricSum(m0, 'coordhub_deliveries_total') + 2 ? m : false;
    },
    { what: 'coordhub_deliveries_total to grow by 2' },
  );
  assert.equal(
    metricSum(m1, 'coordhub_messages_in_total', { channel: 'tradestate' }) -
      metricSum(m0, 'coordhub_messages_in_total', { channel: 'tradestate' }),
    1,
    'messages_in_total{channel="tradestate"} grew by 1',
  );
  const count = metricSum(m1, 'coordhub_delivery_latency_seconds_count');
  assert.ok(count >= metricSum(m0, 'coordhub_delivery_latency_seconds_count') + 1, 'latency histogram counted');
  const inf = metricSum(m1, 'coordhub_delivery_latency_seconds_bucket', { le: '+Inf' });
  assert.equal(inf, count, 'the +Inf bucket equals _count');
  assert.ok(metricSum(m1, 'coordhub_delivery_latency_seconds_sum') >= 0);

  await a.close();
  await b.close();
  await waitUntil(async () => (await hub.metric('coordhub_connections', { protocol: 'native' })) === 0, {
    what: 'coordhub_connections{protocol="native"} back to 0',
  });
});

// Keep-alive and pipelining (issue 20). Raw sockets: the answers are read as
// they come and split by Content-Length, so their order is what the hub wrote.
function answerReader(sock) {
  let buf = Buffer.alloc(0);
  const answers = [];
  const waiters = [];
  let closed = false;
  const pump = () => {
    for (;;) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) break;
      const head = buf.subarray(0, end).toString('latin1');
      const m = /\r\ncontent-length: *(\d+)/i.exec(head);
      const len = m ? Number(m[1]) : 0;
      if (buf.length < end + 4 + len) break;
      const status = Number(head.split(' ')[1]);
      const body = buf.subarray(end + 4, end + 4 + len).toString();
      answers.push({ status, head, body });
      buf = buf.subarray(end + 4 + len);
    }
    for (const w of waiters.splice(0)) w();
  };
  sock.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    pump();
  });
  sock.on('close', () => {
    closed = true;
    for (const w of waiters.splice(0)) w();
  });
  return {
    answers,
    get closed() {
      return closed;
    },
    async next(n) {
      while (answers.length < n) {
        if (closed) throw new Error(`connection closed after ${answers.length} of ${n} answers`);
        await withTimeout(new Promise((r) => waiters.push(r)), 5000, `answer ${answers.length + 1} of ${n}`);
      }
      return answers.slice(0, n);
    },
  };
}

const req = (method, path, { token, body } = {}) =>
  `${method} ${path} HTTP/1.1\r\nHost: x\r\n` +
  (token ? `Authorization: Bearer ${token}\r\n` : '') +
  (body !== undefined ? `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` : '') +
  `\r\n${body ?? ''}`;

test('keep-alive by default: several requests on one connection, no Connection: close, headers and body in one answer', async () => {
  const sock = await rawTcp(hub.port);
  const rd = answerReader(sock);
  for (let i = 1; i <= 5; i++) {
    sock.write(req('GET', '/healthz'));
    const a = (await rd.next(i))[i - 1];
    assert.equal(a.status, 200);
    assert.equal(a.body, '{"status":"ok"}');
    assert.doesNotMatch(a.head, /\r\nconnection: *close/i);
  }
  assert.equal(rd.closed, false);
  sock.destroy();
});

test('pipelined requests are answered in order, those that wait on Redis included', async () => {
  const tok = hub.token('svc-pipe', ['service'], 3600);
  const name = `pipe:${userId()}`;
  const sock = await rawTcp(hub.port);
  const rd = answerReader(sock);
  // one write: lws reads them all at once
  sock.write(
    req('GET', '/healthz') +
      req('GET', `/v1/locks/${name}`, { token: tok }) +
      req('GET', '/nope') +
      req('GET', `/v1/locks/${name}`, { token: 'bad' }) +
      req('GET', '/readyz') +
      req('GET', `/v1/locks/${name}`, { token: tok }),
  );
  const a = await rd.next(6);
  assert.deepEqual(
    a.map((x) => x.status),
    [200, 200, 404, 401, 200, 200],
  );
  assert.equal(a[0].body, '{"status":"ok"}');
  assert.equal(JSON.parse(a[1].body).held, false);
  assert.equal(a[4].body, '{"status":"ready"}');
  assert.equal(JSON.parse(a[5].body).held, false);
  // and the connection is still usable
  sock.write(req('GET', '/healthz'));
  assert.equal((await rd.next(7))[6].status, 200);
  sock.destroy();
});

test('a second request sent while the first waits on Redis gets its own answer, in order', async () => {
  const tok = hub.token('svc-ka', ['service'], 3600);
  const name = `ka:${userId()}`;
  const rc = await redis.client();
  const sock = await rawTcp(hub.port);
  const rd = answerReader(sock);
  // Redis answers nobody for 400 ms: the first acquire waits on it
  await rc.command(['CLIENT', 'PAUSE', '400', 'ALL']);
  const t0 = performance.now();
  sock.write(req('POST', `/v1/locks/${name}`, { token: tok, body: '{"ttl_ms":60000}' }));
  await new Promise((r) => setTimeout(r, 100));
  // a second one (with a body) behind it, while the first is unanswered
  assert.equal(rd.answers.length, 0, 'the first acquire was answered during CLIENT PAUSE');
  sock.write(req('POST', `/v1/locks/${name}:2`, { token: tok, body: '{"ttl_ms":60000}' }));
  const a = await rd.next(2);
  assert.ok(performance.now() - t0 >= 300, 'answered before Redis was back');
  assert.equal(a[0].status, 200);
  assert.equal(JSON.parse(a[0].body).name, name);
  assert.equal(a[1].status, 200);
  assert.equal(JSON.parse(a[1].body).name, `${name}:2`);
  assert.equal(rd.closed, false);
  sock.destroy();
  rc.close();
});

test('a request pipelined behind a lock acquire that waits ends the connection; the wait is cancelled', async () => {
  // The one exception to in-order pipelining: an acquire with wait_ms does
  // not hold its input, so that its client's leaving is seen; what lws
  // reads behind it ends the connection (docs/gateway.md).
  const tok = hub.token('svc-kw', ['service'], 3600);
  const name = `kw:${userId()}`;
  const other = await httpJson(`${hub.url}/v1/locks/${name}`, { method: 'POST', token: tok, body: { ttl_ms: 60000 } });
  assert.equal(other.status, 200);
  const waits0 = await hub.metric('coordhub_lock_waits_total');
  const sock = await rawTcp(hub.port);
  const rd = answerReader(sock);
  sock.write(req('POST', `/v1/locks/${name}`, { token: tok, body: '{"ttl_ms":60000,"wait_ms":10000}' }));
  await waitUntil(async () => (await hub.metric('coordhub_lock_waits_total')) > waits0, { what: 'the acquire waits' });
  sock.write(req('POST', `/v1/locks/${name}:2`, { token: tok, body: '{"ttl_ms":60000}' }));
  await withTimeout(new Promise((r) => (rd.closed ? r() : sock.once('close', r))), 5000, 'the connection ends');
  assert.equal(rd.answers.length, 0);
  const rel = await httpJson(`${hub.url}/v1/locks/${name}`, { method: 'DELETE', token: tok, body: { token: other.json.token } });
  assert.equal(rel.status, 200);
  await new Promise((r) => setTimeout(r, 200));
  // neither the cancelled waiter nor the request behind it took a lock
  for (const n of [name, `${name}:2`]) {
    const g = await httpJson(`${hub.url}/v1/locks/${n}`, { token: tok });
    assert.equal(g.status, 200);
    assert.equal(g.json.held, false, `${n} is held`);
  }
});

test('a request with a body pipelined behind another: the answers before it, then the connection ends (lws 4.1), the hub lives', async () => {
  const tok = hub.token('svc-pb', ['service'], 3600);
  const name = `pb:${userId()}`;
  const sock = await rawTcp(hub.port);
  const rd = answerReader(sock);
  sock.write(req('GET', '/healthz') + req('POST', `/v1/locks/${name}`, { token: tok, body: '{"ttl_ms":1000}' }) + req('GET', '/healthz'));
  const a = await rd.next(1);
  assert.equal(a[0].status, 200);
  await new Promise((r) => (rd.closed ? r() : sock.once('close', r)));
  assert.equal((await httpGet(`${hub.url}/healthz`)).status, 200);
});

test('a body request pipelined with part of its body behind another: the connection ends before lws reads the body (lws 4.1 freed the chunk it was reading: use-after-free), the hub lives', async () => {
  // lws keeps what follows the GET in its buffer while the GET's answer is
  // owed, and parses the POST's headers from that chunk once it is out.
  // With the body declared longer than the chunk, lws 4.1 fed the whole
  // chunk to the body, freed it, then read the body from the freed chunk.
  const tok = hub.token('svc-pf', ['service'], 3600);
  const name = `pf:${userId()}`;
  const body = '{"ttl_ms":1000}' + ' '.repeat(1985); // 2000 bytes, valid JSON
  const post = req('POST', `/v1/locks/${name}`, { token: tok, body });
  const sock = await rawTcp(hub.port);
  const rd = answerReader(sock);
  // the GET, the POST's headers and 100 bytes of its body in one write
  sock.write(req('GET', '/healthz') + post.slice(0, post.length - body.length + 100));
  const a = await rd.next(1);
  assert.equal(a[0].status, 200);
  await withTimeout(new Promise((r) => (rd.closed ? r() : sock.once('close', r))), 5000, 'the connection to end');
  assert.equal(rd.answers.length, 1);
  assert.equal((await httpGet(`${hub.url}/healthz`)).status, 200);
});

test('an idle keep-alive connection whose last answer came from Redis is closed after lws\'s keep-alive timeout', async () => {
  // The answer to a lock request is written when Redis replies, outside
  // lws's callbacks; the keep-alive timeout lws sets then must still be
  // scheduled (without the hub's wake-up it waited for lws's next 30 s
  // check). lws's timeout is 5 s; the bound leaves room for a slow run.
  // A hub of its own: any other socket's activity on a shared hub would
  // run lws's scheduling and hide a missing wake-up.
  const own = await startHub({ redisUrl: redis.url });
  try {
    const tok = own.token('svc-idle', ['service'], 3600);
    const sock = await rawTcp(own.port);
    const rd = answerReader(sock);
    sock.write(req('POST', `/v1/locks/idle:${userId()}`, { token: tok, body: '{"ttl_ms":1000}' }));
    const a = (await rd.next(1))[0];
    assert.equal(a.status, 200, a.body);
    const t0 = Date.now();
    await withTimeout(new Promise((r) => (rd.closed ? r() : sock.once('close', r))), 20000, 'the hub closes the idle connection');
    assert.ok(Date.now() - t0 >= 4000, `closed after ${Date.now() - t0} ms, before lws's keep-alive timeout`);
    sock.destroy();
  } finally {
    await own.stop();
  }
});

test('keep-alive requests with a body one after another are all answered (each read fresh)', async () => {
  const tok = hub.token('svc-kb', ['service'], 3600);
  const sock = await rawTcp(hub.port);
  const rd = answerReader(sock);
  for (let i = 1; i <= 6; i++) {
    sock.write(req('POST', `/v1/locks/kb:${userId()}`, { token: tok, body: '{"ttl_ms":1000}' }));
    const a = (await rd.next(i))[i - 1];
    assert.equal(a.status, 200, a.body);
  }
  assert.equal(rd.closed, false);
  sock.destroy();
});
