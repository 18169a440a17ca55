// Engine.IO v4 / Socket.IO v5 protocol conformance on /socket.io/, over both
// transports (HTTP long-polling and WebSocket, and the upgrade between
// them), derived from the official test suites (socketio/socket.io,
// docs/engine.io-protocol/v4-test-suite and docs/socket.io-protocol/
// v5-test-suite). Case ids in the test names: E<n> = the n-th test of the
// Engine.IO suite (E1-E4 handshake/polling, E5-E7 handshake/WebSocket,
// E8-E13 message/polling, E14-E16 message/WebSocket, E17-E20 heartbeat,
// E21-E22 close, E23-E25 upgrade), S<n> = the n-th test of the Socket.IO
// suite's "Socket.IO protocol" part (S1-S7 connect, S8-S9 disconnect,
// S10-S16 message); the Socket.IO suite's "Engine.IO protocol" part is the
// E cases on /socket.io/. "adapted": the suites' test server echoes, the hub
// does not; its `ping` event (answered `pong`, or an ack [{ok:true}]) stands
// in. Cases the hub cannot run (echo, /custom, binary) are listed in the
// README.
//
// Two hubs: `fast` has the suites' test-server timings (pingInterval 300,
// pingTimeout 200, connectTimeout 1000); `calm` keeps the defaults, for
// flows longer than a heartbeat that are about something else. Every HTTP
// request goes on a fresh TCP connection (the hub serves one request per
// connection).
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before } from 'node:test';
import {
  WebSocket,
  openWs,
  sleep,
  startHub,
  startRedis,
  test as harnessTest,
  userId,
  waitUntil,
  withTimeout,
} from './harness.mjs';
import { splitPacketOffset } from './sioclient.mjs';

const PING_INTERVAL = 300;
const PING_TIMEOUT = 200;
const CONNECT_TIMEOUT = 1000;
const MAX_PAYLOAD = 65536; // the hub's frame limit (the suites' server says 1000000)

const ERR = {
  0: 'Transport unknown',
  1: 'Session ID unknown',
  2: 'Bad handshake method',
  3: 'Bad request',
  5: 'Unsupported protocol version',
};

// ---------------------------------------------------------------- cleanup

const live = new Set(); // {terminate()}: sockets and WebSockets of this file

function terminateAll() {
  for (const x of [...live]) {
    try {
      x.terminate();
    } catch {
      /* best effort */
    }
  }
  live.clear();
}

// Each test ends its own connections, pass or fail.
function test(name, fn) {
  return harnessTest(name, async (t) => {
    try {
      return await fn(t);
    } finally {
      terminateAll();
    }
  });
}
after(terminateAll);

// ---------------------------------------------------------------- HTTP

// One HTTP/1.1 request on its own TCP connection, written at once (head and
// body). The returned promise resolves (never rejects) with {status,
// headers (lower-case names), body, json, why ('complete' | 'closed' |
// 'timeout' | 'aborted'), ms}; it has an abort() that destroys the
// connection before the answer.
function request(port, method, path, body = '', { timeoutMs = 5000, headers = {} } = {}) {
  let abort;
  const p = new Promise((resolve) => {
    const t0 = Date.now();
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.setNoDelay(true);
    const entry = { terminate: () => sock.destroy() };
    live.add(entry);
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (why) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      live.delete(entry);
      const text = buf.toString('latin1');
      const sep = text.indexOf('\r\n\r\n');
      const head = sep >= 0 ? text.slice(0, sep) : text;
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      const hdrs = {};
      for (const line of head.split('\r\n').slice(1)) {
        const i = line.indexOf(':');
        if (i > 0) hdrs[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      const bodyText = sep >= 0 ? buf.subarray(sep + 4).toString('utf8') : '';
      let json;
      try {
        json = JSON.parse(bodyText);
      } catch {
        json = undefined;
      }
      resolve({ status: m ? Number(m[1]) : null, headers: hdrs, body: bodyText, json, why, ms: Date.now() - t0 });
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    abort = () => finish('aborted');
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const sep = buf.indexOf('\r\n\r\n');
      if (sep < 0) return;
      const cl = /\r\ncontent-length:\s*(\d+)/i.exec(buf.toString('latin1', 0, sep));
      if (cl && buf.length >= sep + 4 + Number(cl[1])) finish('complete');
    });
    sock.on('error', () => {});
    sock.on('close', () => finish('closed'));
    sock.on('connect', () => {
      const b = Buffer.from(body, 'utf8');
      let h = `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n`;
      for (const [k, v] of Object.entries(headers)) h += `${k}: ${v}\r\n`;
      if (method !== 'GET' || b.length) h += `Content-Length: ${b.length}\r\n`;
      if (b.length) h += 'Content-Type: text/plain;charset=UTF-8\r\n';
      sock.write(Buffer.concat([Buffer.from(`${h}\r\n`, 'latin1'), b]));
    });
  });
  p.abort = abort;
  return p;
}

const P = (sid, extra = '') => `/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}${extra}`;
const get = (hub, sid, opts) => request(hub.port, 'GET', P(sid), '', opts);
const post = (hub, sid, body, opts) => request(hub.port, 'POST', P(sid), body, opts);

const show = (r) => `${r.status} ${JSON.stringify(r.body).slice(0, 300)} (${r.why}, ${r.ms} ms)`;

// Engine.IO's refusal: 400, application/json, {"code":N,"message":...}.
function assertEioError(r, code, what) {
  assert.equal(r.status, 400, `${what}: ${show(r)}`);
  assert.match(r.headers['content-type'] ?? '', /^application\/json/i, `${what}: content-type`);
  assert.deepEqual(r.json, { code, message: ERR[code] }, `${what}: body`);
}

function assertOk(r, what) {
  assert.equal(r.status, 200, `${what}: ${show(r)}`);
  assert.equal(r.body, 'ok', `${what}: body`);
}

// A 200 poll answer whose body is exactly `body`.
function assertPoll(r, body, what) {
  assert.equal(r.status, 200, `${what}: ${show(r)}`);
  assert.match(r.headers['content-type'] ?? '', /^text\/plain; ?charset=utf-8$/i, `${what}: content-type`);
  assert.equal(r.body, body, `${what}: body`);
}

// The polling handshake: {sid, open, res, at}.
async function pollOpen(hub, query = '') {
  const res = await request(hub.port, 'GET', `/socket.io/?EIO=4&transport=polling${query}`);
  assert.equal(res.status, 200, `handshake: ${show(res)}`);
  assert.ok(res.body.startsWith('0{'), `handshake body ${JSON.stringify(res.body)}`);
  const open = JSON.parse(res.body.slice(1));
  return { sid: open.sid, open, res, at: Date.now() };
}

// A GET that the hub has received (and holds, unless it had something to
// send): resolves {res} (a request promise) once
// coordhub_polling_requests_total moved. Wrapped so that awaiting this
// does not await the answer.
async function heldGet(hub, sid, opts = {}) {
  const before = await hub.metric('coordhub_polling_requests_total');
  const res = request(hub.port, 'GET', P(sid, opts.extra ?? ''), '', { timeoutMs: opts.timeoutMs ?? 5000 });
  await waitUntil(async () => (await hub.metric('coordhub_polling_requests_total')) > before, {
    timeoutMs: 3000,
    intervalMs: 5,
    what: 'the hub to receive the GET',
  });
  return { res };
}

// A polling session past its Socket.IO CONNECT (token in the CONNECT
// payload): {sid, sioSid}. Only on `calm` (the flow outlasts a heartbeat of
// `fast` under a sanitizer build).
async function pollConnected(hub, sub) {
  const s = await pollOpen(hub);
  assertOk(await post(hub, s.sid, `40${JSON.stringify({ token: hub.token(sub) })}`), 'CONNECT POST');
  const g = await get(hub, s.sid);
  assert.equal(g.status, 200, `GET after CONNECT: ${show(g)}`);
  assert.match(g.body, /^40\{"sid":"[^"]+","pid":"[^"]+"\}$/, 'CONNECT answer');
  return { sid: s.sid, sioSid: JSON.parse(g.body.slice(2)).sid };
}

// Waits until polling session `sid` is gone: a GET then answers 400 code 1
// (or a GET held when it closes gets the close packet "1"). Returns the
// answers seen.
async function pollClosed(hub, sid, what, timeoutMs = 3000) {
  const seen = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await get(hub, sid, { timeoutMs: Math.max(100, deadline - Date.now()) });
    seen.push(show(r));
    if (r.status === 400) {
      assertEioError(r, 1, `${what}: GET after the close`);
      return seen;
    }
    if (r.status === 200 && r.body.split('\x1e').includes('1')) {
      // the close packet; the session is gone after it
      assertEioError(await get(hub, sid), 1, `${what}: GET after the close packet`);
      return seen;
    }
    if (Date.now() >= deadline) throw new Error(`${what}: session ${sid} not closed within ${timeoutMs} ms: ${seen.join(' | ')}`);
  }
}

// ---------------------------------------------------------------- WebSocket

// A raw WebSocket reading Engine.IO packets in order: next() returns the
// next unread frame ({text} or {binary}); close is awaited with
// waitClose().
class EioWs {
  constructor(url) {
    this.url = url;
    this.ws = new WebSocket(url, { perMessageDeflate: false });
    this.frames = []; // {text, binary, at}
    this.read = 0;
    this.closeInfo = null;
    this.errors = [];
    this.waiters = new Set();
    this.openedAt = null;
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => {
        this.openedAt = Date.now();
        resolve();
      });
      this.ws.once('error', reject);
    });
    this.opened.catch(() => {});
    this.ws.on('message', (d, isBinary) => {
      this.frames.push(isBinary ? { binary: Buffer.from(d), at: Date.now() } : { text: d.toString('utf8'), at: Date.now() });
      this._wake();
    });
    this.ws.on('close', (code, reason) => {
      this.closeInfo = { code, reason: reason.toString(), at: Date.now() };
      live.delete(this);
      this._wake();
    });
    this.ws.on('error', (e) => this.errors.push(e));
    live.add(this);
  }

  static async open(url, timeoutMs = 5000) {
    const c = new EioWs(url);
    try {
      await withTimeout(c.opened, timeoutMs, `WebSocket ${url} to open`);
    } catch (e) {
      c.terminate();
      throw e;
    }
    return c;
  }

  _wake() {
    for (const w of [...this.waiters]) w();
  }

  _until(pred, ms, what) {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const w = () => {
        if (pred()) {
          clearTimeout(timer);
          this.waiters.delete(w);
          resolve();
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(w);
        reject(new Error(`timed out after ${ms} ms waiting for ${what}; ${this.summary()}`));
      }, ms);
      this.waiters.add(w);
    });
  }

  // The next unread frame; throws if the socket closes first.
  async next(ms = 3000, what = 'a frame') {
    await this._until(() => this.frames.length > this.read || this.closeInfo, ms, what);
    if (this.frames.length > this.read) return this.frames[this.read++];
    throw new Error(`WebSocket closed (${this.closeInfo.code}) while waiting for ${what}; ${this.summary()}`);
  }

  // The next text frame's text.
  async nextText(ms, what) {
    const f = await this.next(ms, what);
    if (f.text === undefined) throw new Error(`binary frame while waiting for ${what}`);
    return f.text;
  }

  // The next packet other than a server ping; pings met on the way are
  // answered with a pong (unless pong: false).
  async nextPacket(ms = 3000, what = 'a packet', { pong = true } = {}) {
    const deadline = Date.now() + ms;
    for (;;) {
      const t = await this.nextText(Math.max(1, deadline - Date.now()), what);
      if (t !== '2') return t;
      if (pong) this.send('3');
    }
  }

  send(s) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(s);
  }

  sendBinary(buf) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(buf, { binary: true });
  }

  get isClosed() {
    return this.closeInfo !== null;
  }

  async waitClose(ms = 3000, what = 'the hub to close the WebSocket') {
    await this._until(() => this.closeInfo, ms, what);
    return this.closeInfo;
  }

  summary() {
    const tail = this.frames.slice(-8).map((f) => (f.text !== undefined ? f.text.slice(0, 150) : `<binary ${f.binary.length}>`));
    return `frames read ${this.read}/${this.frames.length}, last: ${JSON.stringify(tail)}, close: ${JSON.stringify(this.closeInfo)}`;
  }

  terminate() {
    try {
      this.ws.terminate();
    } catch {
      /* ignore */
    }
  }
}

const wsUrl = (hub, q = '') => `ws://127.0.0.1:${hub.port}/socket.io/?EIO=4&transport=websocket${q}`;

// A WebSocket session past the open packet: {c, open}.
async function wsOpen(hub, q = '') {
  const c = await EioWs.open(wsUrl(hub, q));
  const first = await c.nextText(3000, 'the open packet');
  assert.ok(first.startsWith('0{'), `first frame ${JSON.stringify(first)}`);
  return { c, open: JSON.parse(first.slice(1)) };
}

// A WebSocket session past its Socket.IO CONNECT: {c, open, sioSid}.
async function wsConnected(hub, sub) {
  const { c, open } = await wsOpen(hub);
  c.send(`40${JSON.stringify({ token: hub.token(sub) })}`);
  const ack = await c.nextPacket(3000, 'the CONNECT answer');
  assert.match(ack, /^40\{"sid":"[^"]+","pid":"[^"]+"\}$/, 'CONNECT answer');
  return { c, open, sioSid: JSON.parse(ack.slice(2)).sid };
}

// The open packet, exactly as the suites check it (E1/E5).
function assertOpenPacket(open, upgrades) {
  assert.deepEqual(Object.keys(open).sort(), ['maxPayload', 'pingInterval', 'pingTimeout', 'sid', 'upgrades'], 'open packet keys');
  assert.equal(typeof open.sid, 'string');
  assert.match(open.sid, /^[A-Za-z0-9_-]{16,}$/, 'sid: URL-safe, not short');
  assert.deepEqual(open.upgrades, upgrades);
  assert.equal(open.pingInterval, PING_INTERVAL);
  assert.equal(open.pingTimeout, PING_TIMEOUT);
  assert.equal(open.maxPayload, MAX_PAYLOAD);
}

const tradestate = (steamId, n) => ({ steamId, token: 't', state: `s${n}`, msg: `m${n}` });

// ---------------------------------------------------------------- fixtures

let redis;
let fast; // the suites' timings
let calm; // defaults (ping 25 s, connect timeout 45 s)

before(async () => {
  redis = await startRedis();
  [fast, calm] = await Promise.all([
    startHub({
      redisUrl: redis.url,
      env: {
        COORDHUB_SIO_PING_INTERVAL_MS: String(PING_INTERVAL),
        COORDHUB_SIO_PING_TIMEOUT_MS: String(PING_TIMEOUT),
        COORDHUB_SIO_CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT),
      },
    }),
    startHub({ redisUrl: redis.url }),
  ]);
});

// ================================================================ Engine.IO: handshake

test('E1 polling handshake: 200 text/plain, the open packet alone, exactly sid/upgrades ["websocket"]/300/200/65536', async () => {
  const a = await pollOpen(fast);
  assertPoll(a.res, a.res.body, 'handshake');
  assert.ok(!a.res.body.includes('\x1e'), 'the handshake answer carries another packet');
  assertOpenPacket(a.open, ['websocket']);
  const b = await pollOpen(fast);
  assert.notEqual(b.sid, a.sid, 'two sessions, one sid');
});

test('E5 WebSocket handshake: first frame the open packet with upgrades [], then nothing before the first ping', async () => {
  const { c, open } = await wsOpen(fast);
  assertOpenPacket(open, []);
  // v5: no Socket.IO packet until the client's CONNECT; the next frame is
  // the heartbeat's.
  assert.equal(await c.nextText(2000, 'the first ping'), '2');
  const { open: open2 } = await wsOpen(fast);
  assert.notEqual(open2.sid, open.sid, 'two sessions, one sid');
});

test('E2-E4 polling handshake refusals: EIO (code 5), transport (code 0), method (code 2), websocket without upgrade (code 3)', async () => {
  const cases = [
    ['GET', '/socket.io/?transport=polling', 5],
    ['GET', '/socket.io/?EIO=abc&transport=polling', 5],
    ['GET', '/socket.io/?EIO=3&transport=polling', 5],
    ['GET', '/socket.io/?EIO=4', 0],
    ['GET', '/socket.io/?EIO=4&transport=abc', 0],
    ['POST', '/socket.io/?EIO=4&transport=polling', 2],
    ['PUT', '/socket.io/?EIO=4&transport=polling', 2],
    ['GET', '/socket.io/?EIO=4&transport=websocket', 3],
  ];
  for (const [method, path, code] of cases) {
    assertEioError(await request(fast.port, method, path), code, `${method} ${path}`);
  }
});

test('E6/E7 WebSocket handshake refusals: bad EIO (code 5), bad transport (code 0), a polling upgrade (code 3)', async () => {
  const cases = [
    ['/socket.io/?transport=websocket', 5],
    ['/socket.io/?EIO=abc&transport=websocket', 5],
    ['/socket.io/?EIO=4', 0],
    ['/socket.io/?EIO=4&transport=abc', 0],
    ['/socket.io/?EIO=4&transport=polling', 3],
  ];
  for (const [path, code] of cases) {
    const r = await openWs(`ws://127.0.0.1:${fast.port}${path}`);
    if (r.ok) r.client.terminate();
    assert.equal(r.ok, false, `${path}: the upgrade was accepted`);
    assert.equal(r.statusCode, 400, path);
    assert.deepEqual(JSON.parse(r.body), { code, message: ERR[code] }, path);
  }
});

test('session ids: unknown sid answers code 1 (GET, POST, WebSocket upgrade); a live sid on transport=websocket without upgrade code 3', async () => {
  for (const method of ['GET', 'POST']) {
    assertEioError(await request(fast.port, method, P('nosuchsession0000000'), method === 'POST' ? '6' : ''), 1, `${method} unknown sid`);
  }
  const up = await openWs(wsUrl(fast, '&sid=nosuchsession0000000'));
  if (up.ok) up.client.terminate();
  assert.equal(up.ok, false, 'upgrade with an unknown sid accepted');
  assert.equal(up.statusCode, 400);
  assert.deepEqual(JSON.parse(up.body), { code: 1, message: ERR[1] });

  const s = await pollOpen(fast);
  assertEioError(
    await request(fast.port, 'GET', `/socket.io/?EIO=4&transport=websocket&sid=${s.sid}`),
    3,
    'live sid, transport=websocket, no Upgrade',
  );
  // that refusal leaves the session as it was: its first ping comes
  assertPoll(await get(fast, s.sid), '2', 'GET after the refusal');
});

// ================================================================ Engine.IO: heartbeat

test('E17 polling heartbeat: 3 times, a held GET answered exactly "2" about pingInterval after the last pong; POST "3" answered "ok"', async () => {
  // As the suite: no CONNECT, so the three pings must come within the
  // connect timeout (1000 ms): at 300, 600, 900 ms plus round trips.
  const s = await pollOpen(fast);
  const times = [];
  for (let i = 0; i < 3; i++) {
    const g = await get(fast, s.sid, { timeoutMs: 3000 });
    times.push(`${show(g)} at ${Date.now() - s.at} ms`);
    assertPoll(g, '2', `ping ${i + 1} (answers after the handshake: ${times.join('; ')})`);
    // held, not answered at once (the first ping is due 300 ms after the
    // handshake, each later one 300 ms after the pong)
    assert.ok(g.ms >= PING_INTERVAL - 60, `ping ${i + 1} came after only ${g.ms} ms`);
    const p = await post(fast, s.sid, '3');
    assertOk(p, `pong ${i + 1}`);
    assert.match(p.headers['content-type'] ?? '', /^text\/html/i, 'POST answer content-type');
  }
});

test('E18 polling ping timeout: no pong, no request, a GET at pingInterval + pingTimeout after the handshake gets 400 code 1', async () => {
  const s = await pollOpen(fast);
  // The suite's own timing: sleep exactly 300 + 200 ms after the
  // handshake answer, then poll. (Nothing to wait on: the client sends
  // nothing, by design.)
  await sleep(Math.max(0, s.at + PING_INTERVAL + PING_TIMEOUT - Date.now()));
  const sentAt = Date.now() - s.at;
  const r = await get(fast, s.sid, { timeoutMs: 2000 });
  assertEioError(r, 1, `GET sent ${sentAt} ms after the handshake`);
});

test('polling ping timeout with a poll waiting: the GET after the unanswered "2" is answered "1" about pingTimeout later; then 400 code 1', async () => {
  const s = await pollOpen(fast);
  assertPoll(await get(fast, s.sid, { timeoutMs: 3000 }), '2', 'the ping');
  const t0 = Date.now();
  const g = await get(fast, s.sid, { timeoutMs: 3000 });
  assertPoll(g, '1', 'the held GET at the ping timeout');
  const waited = Date.now() - t0;
  assert.ok(waited >= PING_TIMEOUT - 60 && waited <= PING_TIMEOUT + 400, `closed ${waited} ms after the ping`);
  assertEioError(await get(fast, s.sid), 1, 'GET after the timeout');
});

test('E19 WebSocket heartbeat: 3 times, the next frame is exactly "2", about pingInterval after the last pong', async () => {
  // As the suite: no CONNECT, so the three pings must come within the
  // connect timeout (1000 ms).
  const { c } = await wsOpen(fast);
  const t0 = c.openedAt;
  let last = t0;
  for (let i = 0; i < 3; i++) {
    let f;
    try {
      f = await c.next(2000, `ping ${i + 1}`);
    } catch (e) {
      const pings = c.frames.filter((x) => x.text === '2').map((x) => x.at - t0);
      throw new Error(`${e.message}\npings at ${JSON.stringify(pings)} ms after the open, closed at ${c.closeInfo ? c.closeInfo.at - t0 : '-'} ms`);
    }
    assert.equal(f.text, '2', `frame ${i + 1}`);
    assert.ok(f.at - last >= PING_INTERVAL - 60, `ping ${i + 1} only ${f.at - last} ms after the last pong`);
    c.send('3');
    last = Date.now();
  }
  assert.equal(c.isClosed, false);
});

test('E20 WebSocket ping timeout: a client that never answers is closed after the ping, within the suite\'s 2 s', async () => {
  const { c } = await wsOpen(fast);
  const info = await c.waitClose(2000);
  const after = info.at - c.openedAt;
  assert.ok(c.frames.some((f) => f.text === '2'), `closed without a ping first: ${c.summary()}`);
  assert.ok(after >= PING_INTERVAL + PING_TIMEOUT - 60, `closed after only ${after} ms`);
});

// ================================================================ Engine.IO: close

test('E21 polling close: POST "1" answers the held GET "6" and the POST "ok"; the next GET gets 400 code 1', async () => {
  const s = await pollOpen(calm);
  const held = await heldGet(calm, s.sid);
  assertOk(await post(calm, s.sid, '1'), 'POST 1');
  assertPoll(await held.res, '6', 'held GET');
  assertEioError(await get(calm, s.sid), 1, 'GET after the close');
  assertEioError(await post(calm, s.sid, '3'), 1, 'POST after the close');
});

test('E22 WebSocket close: the client\'s "1" closes the connection (well before any heartbeat)', async () => {
  const { c } = await wsOpen(calm); // ping interval 25 s: no timeout can be the cause
  c.send('1');
  await c.waitClose(1500, 'the hub to close after the close packet');
});

// ================================================================ Engine.IO: upgrade

// The probe of polling session `sid`, with a GET held during it: 2probe
// answered 3probe on the WebSocket and the GET answered "6". Returns the
// WebSocket, no "5" sent yet.
async function probe(hub, sid) {
  const held = await heldGet(hub, sid);
  const ws = await EioWs.open(wsUrl(hub, `&sid=${sid}`));
  ws.send('2probe');
  // nothing comes on the probe before the 3probe
  assert.equal(await ws.nextText(2000, '3probe'), '3probe', 'the first frame on the probe');
  assertPoll(await held.res, '6', 'the GET held during the probe');
  return ws;
}

// A polling session upgraded to WebSocket as the suites do it. Returns
// {sid, ws}.
async function upgrade(hub) {
  const s = await pollOpen(hub);
  const ws = await probe(hub, s.sid);
  ws.send('5');
  return { sid: s.sid, ws };
}

// A Socket.IO CONNECT over the upgraded WebSocket (the hub handles a
// connection's packets in order: the "5" before it).
async function connectOver(ws, hub) {
  ws.send(`40${JSON.stringify({ token: hub.token(userId()) })}`);
  assert.match(await ws.nextPacket(2000, 'the CONNECT answer over the WebSocket'), /^40\{"sid":"[^"]+","pid":"[^"]+"\}$/);
}

test('E23 upgrade: 2probe -> 3probe, the held GET answered "6", then 5; Socket.IO and the heartbeat go on over the WebSocket', async () => {
  const { ws } = await upgrade(fast);
  await connectOver(ws, fast);
  ws.send('42["ping"]');
  assert.equal(await ws.nextPacket(2000, 'pong'), '42["pong"]');
  // the session's pings now come on the WebSocket, and a pong keeps it
  for (let i = 0; i < 2; i++) {
    assert.equal(await ws.nextText(2000, `ping ${i + 1} on the WebSocket`), '2');
    ws.send('3');
  }
  assert.equal(ws.isClosed, false);
});

test('E24 upgrade: afterwards GET and POST with that sid are refused (400), the WebSocket session goes on', async () => {
  const { sid, ws } = await upgrade(calm);
  await connectOver(ws, calm);
  for (const [method, body] of [
    ['GET', ''],
    ['POST', '42["ping"]'],
  ]) {
    const r = await request(calm.port, method, P(sid), body);
    assert.equal(r.status, 400, `${method} after the upgrade: ${show(r)}`);
    // the reference server says 3 (transport mismatch); 1 (unknown) is a
    // refusal too
    assert.ok([1, 3].includes(r.json?.code) && r.json.message === ERR[r.json.code], `${method}: body ${r.body}`);
  }
  ws.send('42["ping"]');
  assert.equal(await ws.nextPacket(2000, 'pong'), '42["pong"]', 'the refused POST reached the session');
  assert.equal(ws.isClosed, false);
});

test('E25 upgrade: a second WebSocket with the same sid is refused or closed; the first goes on', async () => {
  const { sid, ws } = await upgrade(calm);
  await connectOver(ws, calm);
  const r = await openWs(wsUrl(calm, `&sid=${sid}`));
  if (r.ok) {
    await r.client.waitClose(2000);
  } else {
    assert.equal(r.statusCode, 400, `second WebSocket: ${r.statusCode} ${r.body}`);
  }
  ws.send('42["ping"]');
  assert.equal(await ws.nextPacket(2000, 'pong on the first WebSocket'), '42["pong"]');
  assert.equal(ws.isClosed, false);
});

test('upgrade with Socket.IO traffic: CONNECT over polling, an event queued during the probe arrives over the WebSocket after 5, events and acks there', async () => {
  const U = userId();
  const s = await pollConnected(calm, U);
  const ws = await probe(calm, s.sid);
  // queued for the session while no GET is there and the upgrade is not
  // done: it must not be lost
  const routed = await calm.metric('coordhub_events_routed_total');
  assert.ok((await redis.publish('tradestate', JSON.stringify(tradestate(U, 1)))) >= 1, 'PUBLISH reached no hub');
  await waitUntil(async () => (await calm.metric('coordhub_events_routed_total')) > routed, {
    intervalMs: 10,
    what: 'the hub to route the tradestate',
  });
  ws.send('5');
  assert.deepEqual(splitPacketOffset(await ws.nextPacket(2000, 'the queued tradestate')).event, ['tradestate', tradestate(U, 1)]);
  ws.send('42["ping"]');
  assert.equal(await ws.nextPacket(2000, 'pong'), '42["pong"]');
  ws.send('427["ping"]');
  assert.equal(await ws.nextPacket(2000, 'the ack'), '437[{"ok":true}]');
  await redis.publish('tradestate', JSON.stringify(tradestate(U, 2)));
  // the wire text exactly: the event array, its offset last
  const after2 = await ws.nextPacket(2000, 'a tradestate after the upgrade');
  const { event: ev2, offset: off2 } = splitPacketOffset(after2);
  assert.deepEqual(ev2, ['tradestate', tradestate(U, 2)]);
  assert.equal(after2, `42${JSON.stringify(['tradestate', tradestate(U, 2), off2])}`);
  // the polling side is gone
  assertEioError(await get(calm, s.sid), 1, 'GET after the upgrade');
});

test('upgrade: a GET sent after the probe\'s noop and before "5" is answered "6" at once (the client waits for it to send 5)', async () => {
  // A browser's polling transport may send its next GET as soon as the
  // noop arrives, before "3probe" reaches it on the WebSocket; it then
  // waits for that GET to end before it sends "5". The reference server
  // keeps answering such GETs with noops.
  const U = userId();
  const s = await pollConnected(calm, U);
  const ws = await probe(calm, s.sid);
  // ping interval 25 s on this hub: a GET that waited would time out here
  assertPoll(await get(calm, s.sid, { timeoutMs: 2000 }), '6', 'the GET after the probe');
  ws.send('5');
  ws.send('42["ping"]');
  assert.equal(await ws.nextPacket(2000, 'pong over the WebSocket'), '42["pong"]');
});

test('upgrade aborted: a probe WebSocket that sends anything but 2probe/5 is closed; the polling session goes on', async () => {
  const U = userId();
  const s = await pollConnected(calm, U);
  const ws = await EioWs.open(wsUrl(calm, `&sid=${s.sid}`));
  ws.send('42["ping"]');
  await ws.waitClose(2000);
  assertOk(await post(calm, s.sid, '42["ping"]'), 'POST on the polling session');
  assertPoll(await get(calm, s.sid), '42["pong"]', 'GET on the polling session');
});

// ================================================================ Engine.IO: bad requests

test('E12 concurrent GETs: the second is refused 400, the first answered "1", then 400 code 1', async () => {
  const s = await pollOpen(calm);
  const first = await heldGet(calm, s.sid);
  const second = await request(calm.port, 'GET', P(s.sid, '&t=burst'), '', { timeoutMs: 2000 });
  assert.equal(second.status, 400, `second GET: ${show(second)}`);
  assertPoll(await first.res, '1', 'the first GET');
  assertEioError(await get(calm, s.sid), 1, 'GET after');
});

test('E11 parse error in a POST closes the session (next GET 400 code 1); a held GET gets "1"', async () => {
  const s = await pollOpen(calm);
  await post(calm, s.sid, 'abc'); // its answer is not checked (the reference resets it)
  assertEioError(await get(calm, s.sid), 1, 'GET after "abc"');

  const t = await pollOpen(calm);
  const held = await heldGet(calm, t.sid);
  await post(calm, t.sid, 'abc');
  assertPoll(await held.res, '1', 'the GET held during the bad POST');
  assertEioError(await get(calm, t.sid), 1, 'GET after');
});

test('E13 a held GET the client abandons closes the session: the next GETs get 400', async () => {
  const s = await pollOpen(calm);
  const held = await heldGet(calm, s.sid);
  held.res.abort();
  await held.res;
  // racing the hub's notice of the abort, a GET may be refused as a second
  // GET (code 3) rather than for an unknown sid: 400 either way
  const r = await get(calm, s.sid, { timeoutMs: 2000 });
  assert.equal(r.status, 400, `GET after the abort: ${show(r)}`);
  assertEioError(await get(calm, s.sid), 1, 'the next GET');
});

test('E16 WebSocket: a packet that is not Engine.IO ("abc") closes the connection', async () => {
  const { c } = await wsOpen(calm);
  c.send('abc');
  await c.waitClose(2000);
});

// ================================================================ Socket.IO: connect

test('S1/S2 WebSocket CONNECT with a token: 40{"sid","pid"} (only keys), a Socket.IO sid other than the Engine.IO sid; events answered', async () => {
  const U = userId();
  const { c, open } = await wsOpen(fast);
  c.send(`40${JSON.stringify({ token: fast.token(U) })}`);
  const ack = await c.nextPacket(2000, 'the CONNECT answer');
  assert.ok(ack.startsWith('40'), ack);
  const body = JSON.parse(ack.slice(2));
  assert.deepEqual(Object.keys(body), ['sid', 'pid']);
  assert.equal(typeof body.sid, 'string');
  assert.equal(typeof body.pid, 'string');
  assert.ok(body.pid.length > 0, 'an empty pid');
  assert.notEqual(body.sid, open.sid, 'the Socket.IO sid is the Engine.IO sid');
  c.send('42["ping"]');
  assert.equal(await c.nextPacket(2000, 'pong'), '42["pong"]');
  c.send('4212["ping"]');
  assert.equal(await c.nextPacket(2000, 'the ack'), '4312[{"ok":true}]');
  await redis.publish('tradestate', JSON.stringify(tradestate(U, 1)));
  // the wire text exactly: the event array, its offset last
  const pkt = await c.nextPacket(2000, 'the tradestate');
  const { event, offset } = splitPacketOffset(pkt);
  assert.deepEqual(event, ['tradestate', tradestate(U, 1)]);
  assert.equal(pkt, `42${JSON.stringify(['tradestate', tradestate(U, 1), offset])}`);
});

test('polling CONNECT: token in the CONNECT payload, or ?token= in the handshake and a bare 40; distinct sids; events answered', async () => {
  const U = userId();
  const a = await pollConnected(calm, U);
  assert.notEqual(a.sioSid, a.sid, 'the Socket.IO sid is the Engine.IO sid');

  const b = await pollOpen(calm, `&token=${encodeURIComponent(calm.token(U))}`);
  assertOk(await post(calm, b.sid, '40'), 'bare CONNECT');
  const g = await get(calm, b.sid);
  assert.equal(g.status, 200, show(g));
  assert.match(g.body, /^40\{"sid":"[^"]+","pid":"[^"]+"\}$/);
  assert.notEqual(JSON.parse(g.body.slice(2)).sid, b.sid);

  assertOk(await post(calm, b.sid, '42["ping"]'), 'event');
  assertPoll(await get(calm, b.sid), '42["pong"]', 'pong');
  assertOk(await post(calm, b.sid, '429["ping"]'), 'event with an ack id');
  assertPoll(await get(calm, b.sid), '439[{"ok":true}]', 'ack');
});

test('CONNECT_ERROR for a bad token: 44{"message":...}; the session stays open and a later good CONNECT succeeds (WebSocket, polling)', async () => {
  const U = userId();
  const { c } = await wsOpen(calm);
  c.send('40{"token":"not.a.jwt"}');
  const err = await c.nextPacket(2000, 'the CONNECT_ERROR');
  assert.ok(err.startsWith('44{'), `answer ${err}`);
  assert.equal(typeof JSON.parse(err.slice(2)).message, 'string');
  c.send(`40${JSON.stringify({ token: calm.token(U) })}`);
  assert.match(await c.nextPacket(2000, 'the second CONNECT answer'), /^40\{"sid":"[^"]+","pid":"[^"]+"\}$/);

  const s = await pollOpen(calm);
  assertOk(await post(calm, s.sid, '40{"token":"not.a.jwt"}'), 'bad CONNECT');
  const g = await get(calm, s.sid);
  assert.equal(g.status, 200, show(g));
  assert.ok(g.body.startsWith('44{'), `answer ${g.body}`);
  assertOk(await post(calm, s.sid, `40${JSON.stringify({ token: calm.token(U) })}`), 'good CONNECT');
  assert.match((await get(calm, s.sid)).body, /^40\{"sid":"[^"]+","pid":"[^"]+"\}$/);
});

test('S5 unknown namespace: 40/random -> exactly 44/random,{"message":"Invalid namespace"}; the session stays open (WebSocket, polling)', async () => {
  const U = userId();
  const { c } = await wsOpen(fast);
  c.send('40/random');
  assert.equal(await c.nextPacket(2000, 'the CONNECT_ERROR'), '44/random,{"message":"Invalid namespace"}');
  c.send('40/random,{"token":"x"}');
  assert.equal(await c.nextPacket(2000, 'the second CONNECT_ERROR'), '44/random,{"message":"Invalid namespace"}');
  c.send(`40${JSON.stringify({ token: fast.token(U) })}`);
  assert.match(await c.nextPacket(2000, 'CONNECT to /'), /^40\{"sid":"[^"]+","pid":"[^"]+"\}$/);

  const s = await pollOpen(calm);
  assertOk(await post(calm, s.sid, '40/random'), 'CONNECT /random');
  assertPoll(await get(calm, s.sid), '44/random,{"message":"Invalid namespace"}', 'its answer');
  assertOk(await post(calm, s.sid, `40${JSON.stringify({ token: calm.token(U) })}`), 'CONNECT /');
  assert.match((await get(calm, s.sid)).body, /^40\{"sid":"[^"]+","pid":"[^"]+"\}$/);
});

test('S7 connect timeout: no CONNECT within 1000 ms closes the session although pings are answered; a connected one lives on (WebSocket)', async () => {
  const idle = await wsOpen(fast);
  const conn = await wsConnected(fast, userId());
  // both answer every ping
  for (const x of [idle.c, conn.c]) x.ws.on('message', (d, bin) => !bin && d.toString() === '2' && x.send('3'));
  const info = await idle.c.waitClose(CONNECT_TIMEOUT + 2000, 'the connect timeout');
  const lived = info.at - idle.c.openedAt;
  assert.ok(idle.c.frames.filter((f) => f.text === '2').length >= 2, `not a connect timeout (fewer than 2 pings answered): ${idle.c.summary()}`);
  assert.ok(lived >= CONNECT_TIMEOUT - 100, `closed after only ${lived} ms`);
  // the connected socket is older, and still served
  conn.c.send('42["ping"]');
  assert.equal(await conn.c.nextPacket(2000, 'pong on the connected socket'), '42["pong"]');
  assert.equal(conn.c.isClosed, false);
});

test('connect timeout over polling: pongs sent, no CONNECT: the session ends after 1000 ms', async () => {
  const s = await pollOpen(fast);
  let pongs = 0;
  for (;;) {
    const g = await get(fast, s.sid, { timeoutMs: 3000 });
    if (g.status === 200 && g.body === '2') {
      assertOk(await post(fast, s.sid, '3'), 'pong');
      pongs++;
      continue;
    }
    const lived = Date.now() - s.at;
    if (g.status === 200) assertPoll(g, '1', 'the GET at the connect timeout');
    else assertEioError(g, 1, 'GET after the connect timeout');
    assert.ok(pongs >= 2, `only ${pongs} pongs: not the connect timeout`);
    assert.ok(lived >= CONNECT_TIMEOUT - 100 && lived <= CONNECT_TIMEOUT + 1500, `session lived ${lived} ms`);
    break;
  }
});

// ================================================================ Socket.IO: disconnect

test('S8 41 on the main namespace: nothing sent back, the Engine.IO session stays (next frame the ping); a later 40 connects again', async () => {
  const U = userId();
  const { c, open } = await wsConnected(fast, U);
  c.send('41');
  assert.equal(await c.nextText(2000, 'the ping after 41'), '2');
  c.send('3');
  c.send(`40${JSON.stringify({ token: fast.token(U) })}`);
  const again = await c.nextPacket(2000, 'the second CONNECT answer');
  assert.match(again, /^40\{"sid":"[^"]+","pid":"[^"]+"\}$/);
  const sid2 = JSON.parse(again.slice(2)).sid;
  assert.notEqual(sid2, open.sid);
  c.send('42["ping"]');
  assert.equal(await c.nextPacket(2000, 'pong'), '42["pong"]');
});

test('41 over polling: nothing sent back; a later 40 connects again', async () => {
  const U = userId();
  const s = await pollConnected(calm, U);
  assertOk(await post(calm, s.sid, '41'), 'DISCONNECT');
  assertOk(await post(calm, s.sid, `40${JSON.stringify({ token: calm.token(U) })}`), 'CONNECT again');
  const g = await get(calm, s.sid);
  assert.equal(g.status, 200, show(g));
  assert.match(g.body, /^40\{"sid":"[^"]+","pid":"[^"]+"\}$/, 'nothing but the CONNECT answer');
  assertOk(await post(calm, s.sid, '42["ping"]'), 'event');
  assertPoll(await get(calm, s.sid), '42["pong"]', 'pong');
});

test('after 41, an event for the namespace left closes the connection (as the reference server)', async () => {
  const { c } = await wsConnected(calm, userId());
  c.send('41');
  c.send('42["ping"]');
  await c.waitClose(2000);
  assert.ok(!c.frames.some((f) => f.text === '42["pong"]'), 'the event was answered');
});

// ================================================================ Socket.IO: refusals

test('an event (or ack, or 41) before CONNECT closes the session (WebSocket, polling)', async () => {
  for (const pkt of ['42["ping"]', '431[]', '41']) {
    const { c } = await wsOpen(calm);
    c.send(pkt);
    await c.waitClose(2000, `the close after ${pkt}`).catch((e) => {
      throw new Error(`${pkt} before CONNECT: ${e.message}`);
    });
    assert.ok(!c.frames.some((f) => f.text?.startsWith('4')), `${pkt}: answered ${c.summary()}`);
  }
  const s = await pollOpen(calm);
  const held = await heldGet(calm, s.sid);
  await post(calm, s.sid, '42["ping"]');
  assertPoll(await held.res, '1', 'the GET held during the event before CONNECT');
  assertEioError(await get(calm, s.sid), 1, 'GET after');
});

test('a second CONNECT on a connected namespace closes the session (WebSocket, polling)', async () => {
  const U = userId();
  const { c } = await wsConnected(calm, U);
  c.send(`40${JSON.stringify({ token: calm.token(U) })}`);
  await c.waitClose(2000);
  assert.ok(!c.frames.slice(2).some((f) => f.text?.startsWith('40')), `answered: ${c.summary()}`);

  const s = await pollConnected(calm, U);
  await post(calm, s.sid, '40');
  await pollClosed(calm, s.sid, 'second CONNECT over polling');
});

test('a CONNECT payload that is not an object (40[1], 40"x", 40null) closes the session (WebSocket, polling)', async () => {
  for (const pkt of ['40[1]', '40"x"', '40null']) {
    const { c } = await wsOpen(calm);
    c.send(pkt);
    await c.waitClose(2000, `the close after ${pkt}`).catch((e) => {
      throw new Error(`${pkt}: ${e.message}`);
    });
    assert.ok(!c.frames.some((f) => f.text?.startsWith('4')), `${pkt}: answered ${c.summary()}`);
  }
  const s = await pollOpen(calm);
  await post(calm, s.sid, '40[1]');
  await pollClosed(calm, s.sid, '40[1] over polling');
});

test('a numeric event name (42[1,"x"]) is an event: answered (unknown_op), the session stays (WebSocket, polling)', async () => {
  const U = userId();
  const { c } = await wsConnected(calm, U);
  c.send('42[1,"x"]');
  const e = JSON.parse((await c.nextPacket(2000, 'the answer to 42[1,"x"]')).replace(/^42/, ''));
  assert.equal(e[0], 'error');
  assert.equal(e[1]?.code, 'unknown_op');
  c.send('42["ping"]');
  assert.equal(await c.nextPacket(2000, 'pong'), '42["pong"]');
  assert.equal(c.isClosed, false);

  const s = await pollConnected(calm, U);
  assertOk(await post(calm, s.sid, '42[1,"x"]'), 'numeric event');
  const g = await get(calm, s.sid);
  assert.equal(g.status, 200, show(g));
  const pe = JSON.parse(g.body.replace(/^42/, ''));
  assert.equal(pe[0], 'error');
  assert.equal(pe[1]?.code, 'unknown_op');
  assertOk(await post(calm, s.sid, '42["ping"]'), 'ping event');
  assertPoll(await get(calm, s.sid), '42["pong"]', 'pong');
});

test('unknown event names get 42["error",{"code":"unknown_op"}] (or an ack with it); the session stays', async () => {
  const { c } = await wsConnected(calm, userId());
  c.send('42["message",1,"2",{"3":[true]}]');
  const e = JSON.parse((await c.nextPacket(2000, 'the error event')).replace(/^42/, ''));
  assert.equal(e.length, 2);
  assert.equal(e[0], 'error');
  assert.equal(e[1].code, 'unknown_op');
  assert.equal(typeof e[1].message, 'string');
  c.send('42456["message-with-ack",1,"2",{"3":[false]}]');
  const a = await c.nextPacket(2000, 'the ack');
  assert.ok(a.startsWith('43456['), `ack ${a}`);
  const body = JSON.parse(a.slice(5));
  assert.equal(body[0].ok, false);
  assert.equal(body[0].error?.code, 'unknown_op');
  assert.equal(c.isClosed, false);
});

test('S6/S14-S16 invalid Socket.IO packets close the connection: 4abc, 42{}, 42abc[...], before and after CONNECT (WebSocket, polling)', async () => {
  for (const pkt of ['4abc', '42{}', '42abc["ping"]', '42[]', '4']) {
    const { c } = await wsConnected(calm, userId());
    c.send(pkt);
    await c.waitClose(2000, `the close after ${pkt}`).catch((e) => {
      throw new Error(`${pkt} after CONNECT: ${e.message}`);
    });
  }
  // S6: before CONNECT
  const { c } = await wsOpen(calm);
  c.send('4abc');
  await c.waitClose(2000);

  const s = await pollConnected(calm, userId());
  await post(calm, s.sid, '42{}');
  await pollClosed(calm, s.sid, '42{} over polling');
});

test('S11/E10/E15 adapted: binary is refused: a binary frame, a base64 "b" packet, a 45 attachment header each close the session', async () => {
  const a = await wsConnected(calm, userId());
  a.c.sendBinary(Buffer.from([1, 2, 3, 4]));
  await a.c.waitClose(2000, 'the close after a binary frame');

  const b = await wsConnected(calm, userId());
  b.c.send('451-["ping",{"_placeholder":true,"num":0}]');
  await b.c.waitClose(2000, 'the close after a binary event header');

  const s = await pollConnected(calm, userId());
  await post(calm, s.sid, 'bAQIDBA==');
  await pollClosed(calm, s.sid, 'a base64 packet over polling');
});

// ================================================================ payloads

test('E9 adapted: a POST carrying several packets (\\x1e) is handled in order; one GET returns every queued answer joined by \\x1e', async () => {
  const s = await pollConnected(calm, userId());
  assertOk(await post(calm, s.sid, '42["ping"]\x1e421["ping"]\x1e3\x1e42["nope"]\x1e6'), 'POST of 5 packets');
  const g = await get(calm, s.sid);
  assert.equal(g.status, 200, show(g));
  const parts = g.body.split('\x1e');
  assert.equal(parts.length, 3, `one response, three packets: ${JSON.stringify(g.body)}`);
  assert.equal(parts[0], '42["pong"]');
  assert.equal(parts[1], '431[{"ok":true}]');
  const e = JSON.parse(parts[2].replace(/^42/, ''));
  assert.equal(e[0], 'error');
  assert.equal(e[1].code, 'unknown_op');
});

test('three events published before a poll arrive in ONE GET response, joined by \\x1e, in order', async () => {
  const U = userId();
  const s = await pollConnected(calm, U);
  const routed = await calm.metric('coordhub_events_routed_total');
  for (let i = 1; i <= 3; i++) {
    // both hubs subscribe: the PUBLISH reaches 2
    assert.ok((await redis.publish('tradestate', JSON.stringify(tradestate(U, i)))) >= 1, 'PUBLISH reached no hub');
  }
  // all three are queued for the session before the GET goes
  await waitUntil(async () => (await calm.metric('coordhub_events_routed_total')) >= routed + 3, {
    intervalMs: 10,
    what: 'the hub to route the three events',
  });
  const g = await get(calm, s.sid);
  assert.equal(g.status, 200, show(g));
  const parts = g.body.split('\x1e');
  assert.equal(parts.length, 3, `one response, three packets: ${JSON.stringify(g.body)}`);
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(splitPacketOffset(parts[i], `packet ${i}`).event, ['tradestate', tradestate(U, i + 1)]);
  }
  // nothing else was queued: after a ping event, the pong alone
  assertOk(await post(calm, s.sid, '42["ping"]'), 'ping');
  assertPoll(await get(calm, s.sid), '42["pong"]', 'only the pong is left');
});
