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
  // one write: the hub reads them all at once
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

const closedP = (sock, rd) => new Promise((r) => (rd.closed ? r() : sock.once('close', r)));

// Lock `name` held by another owner, and an acquire on a raw connection
// that waits for it (counted by the hub). {sock, rd, release()}.
async function waitingAcquire(tok, name) {
  const other = await httpJson(`${hub.url}/v1/locks/${name}`, { method: 'POST', token: tok, body: { ttl_ms: 60000 } });
  assert.equal(other.status, 200);
  const waits0 = await hub.metric('coordhub_lock_waits_total');
  const sock = await rawTcp(hub.port);
  const rd = answerReader(sock);
  sock.write(req('POST', `/v1/locks/${name}`, { token: tok, body: '{"ttl_ms":60000,"wait_ms":10000}' }));
  await waitUntil(async () => (await hub.metric('coordhub_lock_waits_total')) > waits0, { what: 'the acquire waits' });
  const release = async () => {
    const rel = await httpJson(`${hub.url}/v1/locks/${name}`, { method: 'DELETE', token: tok, body: { token: other.json.token } });
    assert.equal(rel.status, 200);
  };
  return { sock, rd, release };
}

// After the waiting client's FIN: the hub closes, and a second waiter gets
// the lock at the release (had the first wait not been cancelled, the lock
// would go to it and the second would still be waiting).
async function assertWaitCancelled(tok, name, sock, rd, release) {
  await withTimeout(closedP(sock, rd), 5000, 'the hub to close the connection');
  const waits0 = await hub.metric('coordhub_lock_waits_total');
  const second = httpJson(`${hub.url}/v1/locks/${name}`, { method: 'POST', token: tok, body: { ttl_ms: 60000, wait_ms: 8000 } });
  await waitUntil(async () => (await hub.metric('coordhub_lock_waits_total')) > waits0, { what: 'the second acquire waits' });
  await release();
  const r = await second;
  assert.equal(r.status, 200, `the second waiter got ${r.status}: the lock went to the client that left`);
}

test('a request pipelined behind a lock acquire that waits is answered after it, in order', async () => {
  const tok = hub.token('svc-kw', ['service'], 3600);
  const name = `kw:${userId()}`;
  const { sock, rd, release } = await waitingAcquire(tok, name);
  sock.write(req('POST', `/v1/locks/${name}:2`, { token: tok, body: '{"ttl_ms":60000}' }));
  // the first answer can only come after the release: were the second
  // answered first (out of order), a[0] would name it
  await release();
  const a = await rd.next(2);
  assert.equal(a[0].status, 200, a[0].body);
  assert.equal(JSON.parse(a[0].body).name, name);
  assert.equal(a[1].status, 200, a[1].body);
  assert.equal(JSON.parse(a[1].body).name, `${name}:2`);
  assert.equal(rd.closed, false);
  sock.destroy();
});

test('a client that leaves while its lock acquire waits cancels the wait: the lock does not go to it', async () => {
  const tok = hub.token('svc-kl', ['service'], 3600);
  const name = `kl:${userId()}`;
  const { sock, rd, release } = await waitingAcquire(tok, name);
  sock.end(); // our FIN: the hub closes its side and cancels the wait
  await assertWaitCancelled(tok, name, sock, rd, release);
});

test('requests with a body pipelined behind others are answered in order, on the same connection', async () => {
  const tok = hub.token('svc-pb', ['service'], 3600);
  const name = `pb:${userId()}`;
  const sock = await rawTcp(hub.port);
  const rd = answerReader(sock);
  sock.write(req('GET', '/healthz') + req('POST', `/v1/locks/${name}`, { token: tok, body: '{"ttl_ms":1000}' }) + req('GET', '/healthz'));
  const a = await rd.next(3);
  assert.deepEqual(a.map((x) => x.status), [200, 200, 200]);
  assert.equal(JSON.parse(a[1].body).name, name);
  assert.equal(JSON.parse(a[2].body).status, 'ok');
  assert.equal(rd.closed, false);
  sock.destroy();
});

test('a body request pipelined with part of its body behind another is answered once the rest of its body comes', async () => {
  const tok = hub.token('svc-pf', ['service'], 3600);
  const name = `pf:${userId()}`;
  const body = '{"ttl_ms":1000}' + ' '.repeat(1985); // 2000 bytes, valid JSON
  const post = req('POST', `/v1/locks/${name}`, { token: tok, body });
  const cut = post.length - body.length + 100;
  const sock = await rawTcp(hub.port);
  const rd = answerReader(sock);
  // the GET, the POST's headers and 100 bytes of its body in one write
  sock.write(req('GET', '/healthz') + post.slice(0, cut));
  const a = await rd.next(1);
  assert.equal(a[0].status, 200);
  sock.write(post.slice(cut));
  const b = await rd.next(2);
  assert.equal(b[1].status, 200, b[1].body);
  assert.equal(JSON.parse(b[1].body).name, name);
  assert.equal(rd.closed, false);
  sock.destroy();
});

test('an idle keep-alive connection whose last answer came from Redis is closed after the keep-alive timeout', async () => {
  // The answer to a lock request is written when Redis replies; the
  // keep-alive deadline (5 s) must then be set (under lws, whose timeouts
  // were scheduled only from its own poll callbacks, it waited for a
  // 30 s check). The bound leaves room for a slow run. A hub of its own:
  // any other socket's activity on a shared hub could hide a missing
  // deadline.
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
    assert.ok(Date.now() - t0 >= 4000, `closed after ${Date.now() - t0} ms, before the keep-alive timeout`);
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

// The hub's own HTTP/1.1 front (issue 20, gateway/front.c).


test('a request head over 16 KiB is refused with 431 and the connection closed', async () => {
  const sock = await rawTcp(hub.port);
  const rd = answerReader(sock);
  sock.write(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(17 * 1024)}\r\n\r\n`);
  const a = (await rd.next(1))[0];
  assert.equal(a.status, 431);
  assert.equal(JSON.parse(a.body).error.code, 'header_too_large');
  assert.match(a.head, /\r\nconnection: close/i);
  await withTimeout(closedP(sock, rd), 5000, 'the hub to close the connection');
});

test('HTTP/1.0: closed after the answer, unless it asks for keep-alive (then told so)', async () => {
  const s1 = await rawTcp(hub.port);
  const r1 = answerReader(s1);
  s1.write('GET /healthz HTTP/1.0\r\n\r\n');
  assert.equal((await r1.next(1))[0].status, 200);
  await withTimeout(closedP(s1, r1), 5000, 'the hub to close the HTTP/1.0 connection');

  const s2 = await rawTcp(hub.port);
  const r2 = answerReader(s2);
  for (let i = 1; i <= 3; i++) {
    s2.write('GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
    const a = (await r2.next(i))[i - 1];
    assert.equal(a.status, 200);
    assert.match(a.head, /\r\nconnection: keep-alive/i);
  }
  assert.equal(r2.closed, false);
  s2.destroy();
});

test('Expect: 100-continue gets "100 Continue" before the body is sent, then the answer', async () => {
  const tok = hub.token('svc-ex', ['service'], 3600);
  const body = '{"ttl_ms":1000}';
  const sock = await rawTcp(hub.port);
  const rd = answerReader(sock);
  sock.write(`POST /v1/locks/ex:${userId()} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${tok}\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\n\r\n`);
  assert.equal((await rd.next(1))[0].status, 100);
  sock.write(body);
  const a = (await rd.next(2))[1];
  assert.equal(a.status, 200, a.body);
  sock.destroy();
});

test('a client that half-closes after its request still gets the answer (one that waits on Redis)', async () => {
  const tok = hub.token('svc-hc', ['service'], 3600);
  const sock = await rawTcp(hub.port);
  const rd = answerReader(sock);
  sock.end(req('POST', `/v1/locks/hc:${userId()}`, { token: tok, body: '{"ttl_ms":1000}' }));
  const a = (await rd.next(1))[0];
  assert.equal(a.status, 200, a.body);
  await withTimeout(closedP(sock, rd), 5000, 'the hub to close after answering');
});

test('a body over 1 MiB sent at once with its head: the 413 arrives whole, not lost to a reset', async () => {
  const tok = hub.token('svc-big', ['service'], 3600);
  const big = '{"ttl_ms":1000}' + ' '.repeat(2 * 1024 * 1024);
  const sock = await rawTcp(hub.port);
  const rd = answerReader(sock);
  sock.on('error', () => {}); // the hub may stop reading; what matters is the answer
  sock.write(req('POST', `/v1/locks/big:${userId()}`, { token: tok, body: big }));
  const a = (await rd.next(1))[0];
  assert.equal(a.status, 413);
  assert.equal(JSON.parse(a.body).error.code, 'too_large');
  await withTimeout(closedP(sock, rd), 10000, 'the hub to close the connection');
});

test('a WebSocket upgrade on a connection that served HTTP requests first is handed to the WebSocket side', async () => {
  const tok = hub.token('u-up', ['user'], 3600);
  const sock = await rawTcp(hub.port);
  const rd = answerReader(sock);
  sock.write(req('GET', '/healthz') + req('GET', '/readyz'));
  const a = await rd.next(2);
  assert.deepEqual(a.map((x) => x.status), [200, 200]);
  const key = Buffer.from('0123456789abcdef').toString('base64');
  sock.write(`GET /ws?token=${tok} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  const up = (await rd.next(3))[2];
  assert.equal(up.status, 101, up.head);
  assert.match(up.head, /\r\nupgrade: websocket/i);
  // a masked text frame {"op":"ping"}: the answer is a text frame with "pong"
  const payload = Buffer.from('{"op":"ping"}');
  const mask = Buffer.from([1, 2, 3, 4]);
  const frame = Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, Buffer.from(payload.map((b, i) => b ^ mask[i % 4]))]);
  const got = new Promise((resolve) => {
    let acc = Buffer.alloc(0);
    sock.on('data', (d) => {
      acc = Buffer.concat([acc, d]);
      if (acc.includes('pong')) resolve(acc.toString('latin1'));
    });
  });
  sock.write(frame);
  assert.match(await withTimeout(got, 5000, 'the pong frame'), /"event":"pong"/);
  sock.destroy();
});

test('120 KiB of requests pipelined behind one that waits: input stops at the bound, then all are answered in order', async () => {
  const tok = hub.token('svc-fl', ['service'], 3600);
  const name = `fl:${userId()}`;
  const { sock, rd, release } = await waitingAcquire(tok, name);
  const one = req('GET', '/healthz');
  const n = Math.ceil((120 * 1024) / one.length);
  sock.write(one.repeat(n));
  await release();
  const a = await rd.next(n + 1);
  assert.equal(a[0].status, 200, a[0].body);
  assert.equal(JSON.parse(a[0].body).name, name);
  assert.ok(a.slice(1).every((x) => x.status === 200 && x.body === '{"status":"ok"}'));
  assert.equal(rd.closed, false);
  sock.destroy();
});

test('coordhub_http_connections counts the open HTTP connections, not the upgraded ones', async () => {
  // a hub of its own: no other client's connections come and go; each
  // reading of the gauge is made over a connection of its own (counted)
  const own = await startHub({ redisUrl: redis.url });
  try {
    const gauge = () => own.metric('coordhub_http_connections');
    await waitUntil(async () => (await gauge()) === 1, { what: 'only the reading connection' });
    const socks = await Promise.all([1, 2, 3].map(() => rawTcp(own.port)));
    await waitUntil(async () => (await gauge()) === 4, { what: 'three more connections' });
    const ws = await own.connect('u-gauge');
    assert.equal(await gauge(), 4, 'an upgraded connection is not an HTTP one');
    await ws.close();
    const rds = socks.map((s) => answerReader(s));
    for (const s of socks) s.end(req('GET', '/healthz'));
    for (let i = 0; i < 3; i++) assert.equal((await rds[i].next(1))[0].status, 200);
    await Promise.all(socks.map((s, i) => withTimeout(closedP(s, rds[i]), 5000, 'the hub to close')));
    await waitUntil(async () => (await gauge()) === 1, { what: 'the gauge back to the reading connection' });
  } finally {
    await own.stop();
  }
});

test('SIGTERM: no more accepts, an idle keep-alive connection ends at once, a request whose body is still arriving is answered, exit 0', async () => {
  const own = await startHub({ redisUrl: redis.url });
  try {
    const tok = own.token('svc-term', ['service'], 3600);
    const idle = await rawTcp(own.port);
    const ri = answerReader(idle);
    idle.write(req('GET', '/healthz'));
    assert.equal((await ri.next(1))[0].status, 200);
    const body = '{"ttl_ms":1000}';
    const mid = await rawTcp(own.port);
    const rm = answerReader(mid);
    const full = req('POST', `/v1/locks/term:${userId()}`, { token: tok, body });
    // a barrier: the head is in when the hub counts the request (each
    // reading of the counter is a request of its own, counted too)
    const r0 = await own.metric('coordhub_http_requests_total');
    mid.write(full.slice(0, full.length - body.length + 3)); // the head and 3 bytes of the body
    let reads = 0;
    await waitUntil(async () => (await own.metric('coordhub_http_requests_total')) >= r0 + ++reads + 1, { what: 'the hub to count the request' });
    const stopped = own.stop();
    await withTimeout(closedP(idle, ri), 5000, 'the idle connection to end');
    assert.equal(rm.answers.length, 0, 'the request with its body still arriving was answered before it was whole');
    await assert.rejects(rawTcp(own.port, { timeoutMs: 2000 }), /ECONNREFUSED/);
    mid.write(full.slice(full.length - body.length + 3));
    const a = (await rm.next(1))[0];
    assert.equal(a.status, 503, a.body);
    assert.match(a.head, /\r\nconnection: close/i);
    assert.equal(await stopped, 0);
  } finally {
    await own.stop();
  }
});

test('a client that leaves while its lock acquire waits behind 100 KiB of its own pipelined requests still cancels the wait', async () => {
  const tok = hub.token('svc-kp', ['service'], 3600);
  const name = `kp:${userId()}`;
  const { sock, rd, release } = await waitingAcquire(tok, name);
  // more than the front keeps while an answer is owed: it stops reading
  sock.write(req('GET', '/healthz').repeat(Math.ceil((100 * 1024) / req('GET', '/healthz').length)));
  sock.end();
  await assertWaitCancelled(tok, name, sock, rd, release);
});

test('an empty line before a WebSocket upgrade (RFC 9112 §2.2) does not break it', async () => {
  const tok = hub.token('u-crlf', [], 3600);
  const sock = await rawTcp(hub.port);
  const rd = answerReader(sock);
  const key = Buffer.from('fedcba9876543210').toString('base64');
  sock.write(req('GET', '/healthz') + '\r\n' + `GET /ws?token=${tok} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  const a = await rd.next(2);
  assert.equal(a[0].status, 200);
  assert.equal(a[1].status, 101, a[1].head);
  sock.destroy();
});
