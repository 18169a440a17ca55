// Hostile clients over raw TCP, sending what the `ws` package would refuse
// to: over-long frames, invalid UTF-8, frames split at every byte, floods,
// half-open connections, unknown opcodes, unmasked frames, continuations
// without a start, oversized and fragmented control frames. Each must get
// the close code RFC 6455 and SPEC §4 name (printed as a diagnostic, what the
// hub actually sent), and nothing else may be disturbed: a bystander keeps
// receiving, /healthz answers 200, and the hub exits 0 on SIGTERM.
import assert from 'node:assert/strict';
import { before } from 'node:test';
import {
  RawWs,
  httpGet,
  hubFdCount,
  rawTcp,
  sleep,
  startHub,
  startRedis,
  test,
  userId,
  waitUntil,
  withTimeout,
  wsFrame,
} from './harness.mjs';

// Half-open connections are checked at the end of the file, so that their
// waiting overlaps with the other tests. Bounds: before the upgrade lws's
// own timeout (10 s in gateway.c) applies; once upgraded, a frame started
// and never finished must not hold a socket for ever either.
const HALF_OPEN_HTTP_BOUND_MS = 15000;
const HALF_OPEN_WS_BOUND_MS = 60000;
const MANY_HALF_OPEN = 200;

const PING = '{"op":"ping"}';

let redis;
let hub;
let bystander;
let bystanderId;
let fd0;
const halfOpen = []; // {name, phase: 'http'|'ws', sock, openedAt, closedAt, got}

function trackHalfOpen(name, phase, sock) {
  const h = { name, phase, sock, openedAt: Date.now(), closedAt: null, got: Buffer.alloc(0) };
  sock.on('data', (d) => {
    h.got = Buffer.concat([h.got, d]);
  });
  sock.once('close', () => {
    h.closedAt = Date.now();
  });
  halfOpen.push(h);
  return h;
}

before(async () => {
  redis = await startRedis();
  hub = await startHub({ redisUrl: redis.url });
  bystanderId = userId();
  bystander = await hub.connect(bystanderId);
  fd0 = hubFdCount(hub);

  // Half-open before the upgrade.
  trackHalfOpen('TCP open, nothing sent', 'http', await rawTcp(hub.port));
  const tok = encodeURIComponent(hub.token(userId()));
  let s = await rawTcp(hub.port);
  s.write(`GET /ws?token=${tok} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n`);
  trackHalfOpen('partial upgrade request (headers never end)', 'http', s);
  s = await rawTcp(hub.port);
  s.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
  trackHalfOpen('partial HTTP request', 'http', s);
  s = await rawTcp(hub.port);
  s.write(
    `POST /v1/locks/hostile:x HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${hub.token('svc', ['service'])}\r\n` +
      'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"ttl_ms":',
  );
  trackHalfOpen('HTTP body shorter than Content-Length', 'http', s);
  // Many at once: partial upgrade requests.
  for (let i = 0; i < MANY_HALF_OPEN; i++) {
    s = await rawTcp(hub.port);
    s.write(`GET /ws?token=${tok} HTTP/1.1\r\nHost: 127.0.0.1\r\n`);
    trackHalfOpen(`partial upgrade #${i}`, 'http', s);
  }

  // Half-open after the upgrade: a frame started, never finished.
  let w = await RawWs.open(hub);
  w.write(wsFrame({ payload: PING }).subarray(0, 4));
  trackHalfOpen('frame header cut short (4 of 6 bytes)', 'ws', w.sock);
  w = await RawWs.open(hub);
  w.write(wsFrame({ payload: PING }).subarray(0, 10));
  trackHalfOpen('frame payload cut short (10 of 19 bytes)', 'ws', w.sock);
  w = await RawWs.open(hub);
  w.write(wsFrame({ payload: '', length: 2 ** 40, lengthForm: 64 }));
  trackHalfOpen('64-bit length 2^40 declared, no payload', 'ws', w.sock);
  w = await RawWs.open(hub);
  w.write(wsFrame({ payload: '{"op":', fin: false }));
  trackHalfOpen('first fragment of a message, never continued', 'ws', w.sock);
});

async function healthz() {
  const r = await httpGet(`${hub.url}/healthz`, { timeoutMs: 5000 });
  assert.equal(r.status, 200, '/healthz');
}

// The bystander still receives a routed event and answers a ping; /healthz 200.
let tagSeq = 0;
async function undisturbed(tag) {
  for (const c of opened) c.destroy();
  assert.equal(bystander.isClosed, false, `bystander closed (${JSON.stringify(bystander.closeInfo)}) after ${tag}`);
  // Every connection a test opened is gone again: the bystander plus the
  // half-open WebSockets still open are all the hub counts.
  const want = () => 1 + halfOpen.filter((h) => h.phase === 'ws' && h.closedAt === null).length;
  await waitUntil(async () => (await hub.metric('coordhub_connections', { protocol: 'native' })) === want(), {
    timeoutMs: 10000,
    what: `coordhub_connections{protocol="native"} back to ${want()} after ${tag}`,
  });
  const state = { steamId: bystanderId, token: 't', state: `${tag}#${++tagSeq}`, msg: '' };
  await redis.publish('tradestate', JSON.stringify(state));
  await bystander.waitEvent('tradestate', 10000, (m) => m.data.state === state.state);
  await roundTripBystander();
  await healthz();
}

async function roundTripBystander() {
  bystander.send({ op: 'ping' });
  await bystander.waitEvent('pong', 10000);
}

// Opens a raw connection, proves it works (ping -> pong), lets `fn` send the
// hostile bytes, then waits for the hub to end the connection. Returns the
// result ({closeCode (null: no close frame), closeReason, texts, ms}) and
// prints it.
async function hostile(t, what, fn, { endMs = 15000 } = {}) {
  const c = await open();
  c.sendFrame({ payload: PING });
  await c.waitEvent('pong');
  c.markHostile();
  await fn(c);
  let r;
  try {
    r = await c.waitEnd(endMs);
  } catch (e) {
    c.destroy();
    throw new Error(`${what}: the hub did not end the connection within ${endMs} ms (close frame: ${c.closeCode}; frames ${c.describe()})`);
  }
  t.diagnostic(
    `${what}: ${r.closeCode === null ? 'TCP closed with no close frame (1006)' : `close ${r.closeCode} "${r.closeReason}"`}` +
      `${r.ms !== null ? ` after ${r.ms} ms` : ''}`,
  );
  return r;
}

// Asserts the close code; `dropOk`: RFC 6455 §7.1.7 only says SHOULD send a
// close frame when failing the connection, so a bare TCP close is allowed
// there (the diagnostic says which happened).
function expectClose(r, code, what, { dropOk = false } = {}) {
  if (dropOk && r.closeCode === null) return;
  assert.equal(r.closeCode, code, `${what}: close code (null = no close frame, TCP dropped)`);
}

const metric = (name) => hub.metric(name);

// Raw clients opened by the tests (not the half-open ones): undisturbed()
// destroys any a failed test left behind before it counts connections.
const opened = new Set();
async function open(opts) {
  const c = await RawWs.open(hub, opts);
  opened.add(c);
  c.end.then(() => opened.delete(c));
  return c;
}

// ------------------------------------------------------------ over-long frames

test('a 64-bit declared length of 2^40 followed by payload closes with 1009', async (t) => {
  const m0 = await metric('coordhub_frame_too_large_closes_total');
  const r = await hostile(t, '64-bit length 2^40, 100 payload bytes', (c) =>
    c.write(wsFrame({ payload: 'x'.repeat(100), length: 2 ** 40, lengthForm: 64 }).subarray(0, 14 + 100)),
  );
  expectClose(r, 1009, '2^40 declared');
  assert.equal((await metric('coordhub_frame_too_large_closes_total')) - m0, 1, 'counted once');
  await undisturbed('after-2^40');
});

test('a 64-bit length with the most significant bit set fails the connection (1002)', async (t) => {
  const r = await hostile(t, '64-bit length with MSB set', (c) => {
    const f = wsFrame({ payload: 'x'.repeat(100), length: 0, lengthForm: 64 });
    f[2] = 0x80; // RFC 6455 §5.2: the most significant bit MUST be 0
    c.write(f);
  });
  expectClose(r, 1002, 'MSB set', { dropOk: true });
  await undisturbed('after-msb');
});

test('frames of 65,537 and 70 KiB close with 1009; exactly 65,536 bytes is answered', async (t) => {
  const m0 = await metric('coordhub_frame_too_large_closes_total');
  const padTo = (n) => {
    const base = JSON.stringify({ op: 'ping', pad: '' }).length;
    const s = JSON.stringify({ op: 'ping', pad: 'x'.repeat(n - base) });
    assert.equal(Buffer.byteLength(s), n);
    return s;
  };
  // 64 KiB exactly: the limit is inclusive.
  const ok = await open();
  ok.sendFrame({ payload: padTo(65536) });
  await ok.waitEvent('pong', 10000);
  ok.sendClose(1000);
  await ok.waitEnd();
  for (const n of [65537, 70 * 1024]) {
    const r = await hostile(t, `${n}-byte text frame`, (c) => c.sendFrame({ payload: padTo(n) }));
    expectClose(r, 1009, `${n} bytes`);
  }
  const r = await hostile(t, 'two 40 KiB fragments (80 KiB message)', (c) => {
    c.sendFrame({ fin: false, payload: `{"op":"ping","pad":"${'x'.repeat(40960)}` });
    c.sendFrame({ opcode: 0x0, payload: `${'x'.repeat(40960)}"}` });
  });
  expectClose(r, 1009, 'fragmented 80 KiB');
  assert.equal((await metric('coordhub_frame_too_large_closes_total')) - m0, 3, 'three 1009 closes counted');
  await undisturbed('after-1009');
});

// ------------------------------------------------------------ UTF-8

const BAD_UTF8 = [
  ['a lone 0xFF byte', [0x7b, 0x22, 0xff, 0x22, 0x7d]],
  ['an overlong encoding (C0 80)', [0x22, 0xc0, 0x80, 0x22]],
  ['a UTF-16 surrogate (ED A0 80)', [0x22, 0xed, 0xa0, 0x80, 0x22]],
  ['a code point above U+10FFFF (F4 90 80 80)', [0x22, 0xf4, 0x90, 0x80, 0x80, 0x22]],
  ['a sequence cut at the end of the message (E2 82)', [0x22, 0x22, 0xe2, 0x82]],
];

for (const [what, bytes] of BAD_UTF8) {
  test(`invalid UTF-8 in a text frame closes with 1007: ${what}`, async (t) => {
    const r = await hostile(t, what, (c) => c.sendFrame({ payload: Buffer.from(bytes) }));
    expectClose(r, 1007, what);
    await undisturbed('after-1007');
  });
}

test('invalid UTF-8 in the second fragment of a message closes with 1007', async (t) => {
  const r = await hostile(t, 'bad byte in a continuation', (c) => {
    c.sendFrame({ fin: false, payload: '{"op":"' });
    c.sendFrame({ opcode: 0x0, payload: Buffer.from([0xfe, 0x22, 0x7d]) });
  });
  expectClose(r, 1007, 'bad continuation');
  await undisturbed('after-1007-frag');
});

test('a valid code point split across two fragments is accepted (answered, not closed)', async () => {
  const c = await open();
  // {"op":"€"} with the euro sign's three bytes split 2 + 1
  c.sendFrame({ fin: false, payload: Buffer.from([0x7b, 0x22, 0x6f, 0x70, 0x22, 0x3a, 0x22, 0xe2, 0x82]) });
  c.sendFrame({ opcode: 0x0, payload: Buffer.from([0xac, 0x22, 0x7d]) });
  const e = await c.waitEvent('error');
  assert.equal(e.data.code, 'unknown_op');
  c.sendFrame({ payload: PING });
  await c.waitUntil(() => c.texts.filter((x) => x.event === 'pong').length === 1 || c.tcpClosed, 5000, 'pong');
  assert.equal(c.closeCode, null, `closed with ${c.closeCode}`);
  c.sendClose(1000);
  await c.waitEnd();
});

test('bad UTF-8 and protocol-error closes are counted in /metrics (SPEC §8)', async () => {
  // SPEC §8: bad UTF-8 (like a too-large frame or bad JSON) gets a clear
  // error and "a counter in /metrics". 1009/1008/1003 have one each; look
  // for any counter of 1007 (or of protocol errors) that moves.
  const re = /utf|1007|protocol|invalid_frame|bad_frame/i;
  const sum = async () =>
    (await hub.metrics()).filter((s) => re.test(s.name) || Object.values(s.labels).some((v) => re.test(v))).reduce((a, s) => a + s.value, 0);
  const m0 = await sum();
  const c = await open();
  c.sendFrame({ payload: Buffer.from([0x22, 0xff, 0x22]) });
  const r = await c.waitEnd();
  assert.equal(r.closeCode, 1007);
  await sleep(200);
  const m1 = await sum();
  assert.ok(m1 > m0, `no /metrics counter moved after a 1007 close (looked for names or labels matching ${re})`);
});

// ------------------------------------------------------------ split frames

test('a valid frame sent one byte at a time (every boundary) is accepted and answered', async (t) => {
  const c = await open();
  // 7-bit length, then a 16-bit length frame (header split inside the
  // extended length and the mask key too).
  const small = wsFrame({ payload: PING });
  const big = wsFrame({ payload: JSON.stringify({ op: 'ping', pad: 'p'.repeat(200) }) });
  const t0 = Date.now();
  for (const frame of [small, big]) {
    for (let i = 0; i < frame.length; i++) {
      c.write(frame.subarray(i, i + 1));
      await sleep(2);
    }
  }
  await c.waitUntil(() => c.texts.filter((x) => x.event === 'pong').length === 2 || c.tcpClosed, 10000, 'two pongs');
  assert.equal(c.closeCode, null, `closed with ${c.closeCode}: ${c.describe()}`);
  t.diagnostic(`${small.length + big.length} bytes sent one per write, 2 ms apart, in ${Date.now() - t0} ms: both answered`);
  c.sendClose(1000);
  await c.waitEnd();
});

test('a frame split in two at each possible boundary is accepted every time', async (t) => {
  const frame = wsFrame({ payload: PING });
  // One connection per 30 splits keeps within the op rate limit (burst 40).
  let answered = 0;
  for (let start = 1; start < frame.length; start += 30) {
    const c = await open();
    let want = 0;
    for (let k = start; k < Math.min(frame.length, start + 30); k++) {
      const f = wsFrame({ payload: PING });
      c.write(f.subarray(0, k));
      await sleep(5);
      c.write(f.subarray(k));
      want++;
      await c.waitUntil(() => c.texts.filter((x) => x.event === 'pong').length === want || c.tcpClosed, 5000, `pong for split at ${k}`);
      assert.equal(c.closeCode, null, `split at byte ${k}: closed with ${c.closeCode}`);
      answered++;
    }
    c.sendClose(1000);
    await c.waitEnd();
  }
  assert.equal(answered, frame.length - 1);
  t.diagnostic(`${answered} split points of a ${frame.length}-byte frame, each answered`);
});

test('a ping control frame between two fragments of a message is answered, and the message too', async () => {
  const c = await open();
  c.sendFrame({ fin: false, payload: '{"op":' });
  c.sendFrame({ opcode: 0x9, payload: 'mid' });
  c.sendFrame({ opcode: 0x0, payload: '"ping"}' });
  await c.waitUntil(() => c.frames.some((f) => f.opcode === 0xa) && c.texts.some((x) => x.event === 'pong'), 5000, 'pong frame and pong event');
  const pong = c.frames.find((f) => f.opcode === 0xa);
  assert.equal(pong.payload.toString(), 'mid', 'the pong echoes the ping payload');
  assert.equal(c.closeCode, null);
  c.sendClose(1000);
  await c.waitEnd();
});

// ------------------------------------------------------------ floods

test('a flood of 500 ops in one write closes with 1008 and is counted', async (t) => {
  const m0 = await metric('coordhub_rate_limited_closes_total');
  const r = await hostile(t, '500 pings in one TCP write', (c) => c.write(Buffer.concat(Array.from({ length: 500 }, () => wsFrame({ payload: PING })))));
  expectClose(r, 1008, 'op flood');
  const pongs = r.texts.filter((x) => x.event === 'pong').length - 1; // minus hostile()'s own
  assert.ok(pongs <= 60, `at most about the burst (40) answered before the close, got ${pongs}`);
  t.diagnostic(`${pongs} of 500 answered before the 1008`);
  assert.equal((await metric('coordhub_rate_limited_closes_total')) - m0, 1);
  await undisturbed('after-1008');
});

test('50 clients flooding at once are each closed with 1008; the bystander is untouched', async (t) => {
  const m0 = await metric('coordhub_rate_limited_closes_total');
  const clients = await Promise.all(Array.from({ length: 50 }, () => open()));
  const burst = Buffer.concat(Array.from({ length: 300 }, () => wsFrame({ payload: PING })));
  for (const c of clients) c.write(burst);
  const results = await Promise.all(clients.map((c) => c.waitEnd(20000)));
  const codes = {};
  for (const r of results) codes[r.closeCode] = (codes[r.closeCode] || 0) + 1;
  t.diagnostic(`close codes: ${JSON.stringify(codes)}`);
  assert.deepEqual(codes, { 1008: 50 });
  assert.equal((await metric('coordhub_rate_limited_closes_total')) - m0, 50);
  await undisturbed('after-flood-50');
});

test('a flood of 2,000 WebSocket pings (control frames) leaves the hub and others unharmed', async (t) => {
  const c = await open();
  c.write(Buffer.concat(Array.from({ length: 2000 }, (_, i) => wsFrame({ opcode: 0x9, payload: `p${i}` }))));
  // RFC 6455 §5.5.3 lets a pong answer only the most recent of several
  // pings. lws 4.1 answers the first ping of each read and drops the rest
  // (the last ping is never answered): noted in the diagnostic, not failed
  // on here. What matters: the connection still works, nothing else moves.
  await sleep(1500);
  const pongs = c.frames.filter((f) => f.opcode === 0xa).map((f) => f.payload.toString());
  assert.ok(pongs.length >= 1 || c.tcpClosed, 'no pong at all and no close');
  t.diagnostic(
    `2,000 pings in one write: ${pongs.length} pongs (${pongs.slice(0, 4).join(', ')}${pongs.length > 4 ? ', ...' : ''}); ` +
      `last ping p1999 ${pongs.includes('p1999') ? '' : 'NOT '}answered; connection ${c.tcpClosed ? `closed (code ${c.closeCode})` : 'still open'}`,
  );
  if (!c.tcpClosed) {
    c.sendFrame({ payload: PING });
    await c.waitEvent('pong');
  }
  c.destroy();
  await undisturbed('after-ping-flood');
});

// ------------------------------------------------------------ framing violations

test('unknown data opcode 0x3 closes with 1002', async (t) => {
  const r = await hostile(t, 'opcode 0x3', (c) => c.sendFrame({ opcode: 0x3, payload: 'abc' }));
  expectClose(r, 1002, 'opcode 0x3');
  await undisturbed('after-0x3');
});

test('unknown control opcode 0xB closes with 1002', async (t) => {
  const r = await hostile(t, 'opcode 0xB', (c) => c.sendFrame({ opcode: 0xb, payload: 'abc' }));
  expectClose(r, 1002, 'opcode 0xB');
  await undisturbed('after-0xB');
});

// libwebsockets 4.1.6 does not check the mask bit of client frames, and
// offers no hook to see it: reported as a known deviation (README), kept
// visible as a todo rather than deleted.
test('an unmasked client frame closes with 1002 (RFC 6455 §5.1: the server MUST close)', { todo: 'libwebsockets 4.1.6 does not check the mask bit' }, async (t) => {
  const r = await hostile(
    t,
    'unmasked text frame',
    async (c) => {
      c.sendFrame({ mask: false, payload: PING });
      await sleep(300);
      // a hub that accepted the frame has answered it by now
      const answered = c.texts.filter((x) => x.event === 'pong').length - 1;
      if (answered > 0) t.diagnostic(`unmasked frame: answered with a pong (processed as if masked)`);
    },
    { endMs: 5000 },
  );
  expectClose(r, 1002, 'unmasked', { dropOk: true });
  await undisturbed('after-unmasked');
});

test('a continuation frame with no message started closes with 1002', async (t) => {
  const r = await hostile(t, 'continuation without a start', (c) => c.sendFrame({ opcode: 0x0, payload: PING }));
  expectClose(r, 1002, 'orphan continuation');
  await undisturbed('after-orphan-cont');
});

test('a new text frame while a fragmented message is open closes with 1002', async (t) => {
  const r = await hostile(t, 'text frame inside a fragmented message', (c) => {
    c.sendFrame({ fin: false, payload: '{"op":' });
    c.sendFrame({ payload: PING });
  });
  expectClose(r, 1002, 'interleaved data frame');
  await undisturbed('after-interleaved');
});

test('a control frame with a 126-byte payload closes with 1002', async (t) => {
  const r = await hostile(t, 'ping with 126 bytes', (c) => c.sendFrame({ opcode: 0x9, payload: 'p'.repeat(126) }));
  expectClose(r, 1002, 'oversized control frame', { dropOk: true });
  await undisturbed('after-big-ping');
});

test('a fragmented control frame (ping with FIN=0) closes with 1002', async (t) => {
  const r = await hostile(t, 'ping with FIN 0', (c) => c.sendFrame({ opcode: 0x9, fin: false, payload: 'p' }));
  expectClose(r, 1002, 'fragmented control frame', { dropOk: true });
  await undisturbed('after-frag-ping');
});

test('RSV bits set with no extension negotiated close with 1002', async (t) => {
  const r = await hostile(t, 'RSV1 set', (c) => c.sendFrame({ rsv: 4, payload: PING }));
  expectClose(r, 1002, 'rsv1', { dropOk: true });
  await undisturbed('after-rsv');
});

test('a close frame with an invalid code (999) is answered 1002', async (t) => {
  const r = await hostile(t, 'close code 999', (c) => c.sendClose(999));
  expectClose(r, 1002, 'close 999', { dropOk: true });
  await undisturbed('after-close-999');
});

test('a close frame with a 1-byte payload is answered 1002', async (t) => {
  // RFC 6455 §5.5.1: a close body, if any, starts with a 2-byte code.
  const r = await hostile(t, 'close with 1-byte body', (c) => c.sendFrame({ opcode: 0x8, payload: Buffer.from([3]) }));
  expectClose(r, 1002, 'close 1-byte body', { dropOk: true });
  await undisturbed('after-close-1byte');
});

test('a close frame whose reason is not UTF-8 is answered 1007', async (t) => {
  const r = await hostile(t, 'close reason not UTF-8', (c) => c.sendFrame({ opcode: 0x8, payload: Buffer.from([0x03, 0xe8, 0xff, 0xfe]) }));
  expectClose(r, 1007, 'close reason', { dropOk: true });
  await undisturbed('after-close-utf8');
});

test('a binary frame closes with 1003 (SPEC: text frames only)', async (t) => {
  const m0 = await metric('coordhub_binary_frame_closes_total');
  const r = await hostile(t, 'binary frame', (c) => c.sendFrame({ opcode: 0x2, payload: Buffer.from([1, 2, 3]) }));
  expectClose(r, 1003, 'binary');
  assert.equal((await metric('coordhub_binary_frame_closes_total')) - m0, 1);
  await undisturbed('after-1003');
});

// ------------------------------------------------------------ half-open

function halfOpenReport(phase) {
  const now = Date.now();
  return halfOpen
    .filter((h) => h.phase === phase && !h.name.startsWith('partial upgrade #'))
    .map((h) => `${h.name}: ${h.closedAt ? `dropped after ${h.closedAt - h.openedAt} ms` : `still open after ${now - h.openedAt} ms`}${h.got.length ? ` (got ${JSON.stringify(h.got.toString('latin1').slice(0, 60))})` : ''}`)
    .join('; ');
}

test(`half-open connections before the upgrade (${4 + MANY_HALF_OPEN}) are dropped within ${HALF_OPEN_HTTP_BOUND_MS / 1000} s`, async (t) => {
  const list = halfOpen.filter((h) => h.phase === 'http');
  const deadline = Math.max(...list.map((h) => h.openedAt)) + HALF_OPEN_HTTP_BOUND_MS;
  await waitUntil(() => list.every((h) => h.closedAt !== null), {
    timeoutMs: Math.max(1000, deadline - Date.now()),
    intervalMs: 100,
    what: `every half-open HTTP-phase connection to be dropped (${halfOpenReport('http')})`,
  });
  const worst = Math.max(...list.map((h) => h.closedAt - h.openedAt));
  t.diagnostic(`${list.length} dropped; slowest after ${worst} ms; ${halfOpenReport('http')}`);
  assert.ok(worst <= HALF_OPEN_HTTP_BOUND_MS);
  for (const h of list) if (h.got.length) assert.doesNotMatch(h.got.toString('latin1'), /^HTTP\/1\.1 [23]/, `${h.name} got a success answer`);
  await undisturbed('after-half-open-http');
});

test(`half-open WebSockets with a frame started and never finished are dropped within ${HALF_OPEN_WS_BOUND_MS / 1000} s`, async (t) => {
  const list = halfOpen.filter((h) => h.phase === 'ws');
  const deadline = Math.max(...list.map((h) => h.openedAt)) + HALF_OPEN_WS_BOUND_MS;
  try {
    await waitUntil(() => list.every((h) => h.closedAt !== null), {
      timeoutMs: Math.max(1000, deadline - Date.now()),
      intervalMs: 200,
      what: 'every half-open WebSocket to be dropped',
    });
  } finally {
    t.diagnostic(halfOpenReport('ws'));
  }
  await undisturbed('after-half-open-ws');
});

test('nothing leaked: the connection gauge is back to the bystander and the hub holds no extra descriptors', async (t) => {
  // Half-open sockets still open (if the previous test failed) are closed
  // by us now; their descriptors must then go too.
  for (const h of halfOpen) h.sock.destroy();
  await waitUntil(async () => (await hub.metric('coordhub_connections', { protocol: 'native' })) === 1, {
    timeoutMs: 15000,
    what: 'coordhub_connections{protocol="native"} back to 1 (the bystander)',
  });
  await waitUntil(() => hubFdCount(hub) <= fd0, {
    timeoutMs: 15000,
    intervalMs: 200,
    what: `the hub's open descriptors back to ${fd0} (now ${hubFdCount(hub)})`,
  });
  t.diagnostic(`hub descriptors: ${fd0} before, ${hubFdCount(hub)} after ${halfOpen.length} half-open connections and every hostile test`);
  await undisturbed('at-the-end');
});

test('after all that, SIGTERM: the bystander gets 1001 and the hub exits 0', async () => {
  const exit = hub.exit();
  hub.proc.kill('SIGTERM');
  assert.equal((await bystander.waitClose(10000)).code, 1001);
  const { code, signal } = await withTimeout(exit, 15000, 'hub to exit after SIGTERM');
  assert.equal(signal, null);
  assert.equal(code, 0);
  assert.doesNotMatch(hub.stderr(), /AddressSanitizer|runtime error:|LeakSanitizer/);
});
