// The polling fan-out generator (bench/polling/run.sh): N Socket.IO clients
// on Engine.IO v4 HTTP long-polling ONLY, the protocol spoken by hand over
// HTTP/1.1 (no socket.io-client: it would add its own timers, reconnection
// and parsing cost to the generator's core), plus the publisher, in one
// process, no dependencies.
//
//   node gen.mjs --port P --redis-port R --jwt-secret S --clients 200 \
//     --rates 200,1000,2000 --step-seconds 15 [--keepalive 0|1] \
//     --server-pid PID --redis-pid PID --label NAME [--max-p99-ms 1000] [--max-seconds 300]
//
// Each client is a distinct user (token sub = u<i>): handshake
// GET /socket.io/?EIO=4&transport=polling, POST 40{"token":...} with the sid,
// then a loop of GETs (one in flight per client); a ping `2` in an answer is
// answered with a POST `3` (POSTs of one client are serialised: Engine.IO
// closes a session on a second POST at once). Answers hold packets separated
// by \x1e.
//
// --keepalive 0 (default): no keep-alive, so every request is a new TCP
// connection (`Connection: close`); --keepalive 1 reuses connections where
// the server lets it (both servers do). --http raw (default) or node: see "HTTP" below.
//
// The publisher is a raw RESP connection on the same event loop: PUBLISH
// tradestate {"steamId":"<sub>","token":"t","state":"s","msg":"<ns>"} to a
// random user, paced to rate x step seconds, where <ns> is
// process.hrtime.bigint() at publish (monotonic, same process as the
// receiver, made unique per message). Every published msg is pending until
// its client receives it: delivered, lost (still pending after the drain),
// duplicated, misrouted (received by another user's client) are exact.
//
// Per step it reads the server's and Redis's /proc/<pid>/stat utime+stime
// (and the server's threads' schedstat run-queue wait) at the first publish
// and at the end of the drain, and its own process.cpuUsage(); before the
// first step, the server's CPU over --idle-seconds with every client waiting
// and nothing published. Output: JSON lines on stdout ({"kind":"connect"},
// {"kind":"idle"}, {"kind":"step"}, {"kind":"end"}); progress on stderr. The ramp stops at the first step with loss, a
// duplicate, a misrouted message, a dropped session or p99 over --max-p99-ms.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { execSync } from 'node:child_process';

function arg(name, def) {
  const i = process.argv.indexOf(name);
  if (i > 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  if (def === undefined) {
    console.error(`gen: ${name} is required`);
    process.exit(2);
  }
  return def;
}

const PORT = Number(arg('--port'));
const REDIS_PORT = Number(arg('--redis-port'));
const SECRET = arg('--jwt-secret');
const CLIENTS = Number(arg('--clients', '200'));
const RATES = arg('--rates', '200,1000,2000').split(',').map(Number);
const STEP_SECONDS = Number(arg('--step-seconds', '15'));
const KEEPALIVE = arg('--keepalive', '0') === '1';
const SERVER_PID = Number(arg('--server-pid'));
const REDIS_PID = Number(arg('--redis-pid'));
const LABEL = arg('--label', 'server');
const MAX_P99_MS = Number(arg('--max-p99-ms', '1000'));
const MAX_SECONDS = Number(arg('--max-seconds', '300'));
const DRAIN_MAX_S = Number(arg('--drain-seconds', '10'));
const DRAIN_IDLE_S = Number(arg('--drain-idle-seconds', '3'));
const CONNECT_CONCURRENCY = Number(arg('--connect-concurrency', '20'));
const CONNECT_TIMEOUT_S = Number(arg('--connect-timeout', '60'));
const REQ_TIMEOUT_MS = Number(arg('--request-timeout-ms', '40000'));
const IDLE_SECONDS = Number(arg('--idle-seconds', '5'));
const HOST = '127.0.0.1';

const CLK_TCK = (() => {
  try {
    return Number(execSync('getconf CLK_TCK').toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

const out = (o) => process.stdout.write(`${JSON.stringify({ label: LABEL, ...o })}\n`);
const log = (s) => process.stderr.write(`[gen ${LABEL}] ${s}\n`);

// Watchdog: a hard deadline (the outer `timeout` in run.sh covers a blocked
// event loop).
const watchdog = setTimeout(() => {
  out({ kind: 'fatal', error: `watchdog: still running after ${MAX_SECONDS} s` });
  log(`watchdog: still running after ${MAX_SECONDS} s, exiting`);
  process.exit(3);
}, MAX_SECONDS * 1000);

// ------------------------------------------------------------------ /proc
function procCpuTicks(pid) {
  // /proc/<pid>/stat: fields 14 and 15 (utime, stime), after the ")"
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}
function schedstat(pid) {
  // sum over the threads: [run ns, wait ns]
  let run = 0;
  let wait = 0;
  try {
    for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
      try {
        const [r, w] = fs.readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ').map(Number);
        run += r;
        wait += w;
      } catch {}
    }
  } catch {}
  return [run, wait];
}
function snapshot() {
  const cu = process.cpuUsage();
  return {
    t: process.hrtime.bigint(),
    server: procCpuTicks(SERVER_PID),
    serverSched: schedstat(SERVER_PID),
    redis: procCpuTicks(REDIS_PID),
    redisSched: schedstat(REDIS_PID),
    genSched: schedstat(process.pid),
    gen: cu.user + cu.system, // µs
  };
}

// ------------------------------------------------------------------ tokens
const b64u = (b) => Buffer.from(b).toString('base64url');
function jwt(sub) {
  const now = Math.floor(Date.now() / 1000);
  const h = b64u(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const p = b64u(JSON.stringify({ sub, iat: now, exp: now + 3600 }));
  const sig = crypto.createHmac('sha256', SECRET).update(`${h}.${p}`).digest('base64url');
  return `${h}.${p}.${sig}`;
}

// ------------------------------------------------------------------ HTTP
// Two clients, same requests: `raw` (default), HTTP/1.1 written and parsed
// by hand on net sockets (a third of node:http's CPU per request, which
// matters: the generator shares CPU 1 with Redis and makes one request per
// delivery at low rates), and `node`, node:http with an http.Agent
// ({keepAlive, maxSockets: Infinity}), to check that the raw client changes
// nothing but the generator's cost. Without keep-alive every request says
// `Connection: close` and has its own TCP connection; with it, each client
// keeps one connection for its GETs and one for its POSTs (as a browser
// would), reused while the server keeps it open.
const HTTP_IMPL = arg('--http', 'raw');
const agent = new http.Agent({ keepAlive: KEEPALIVE, maxSockets: Infinity });
const counters = {
  gets: 0,
  posts: 0,
  tcpConnects: 0, // raw client: TCP connections opened
  reqErrors: {}, // "GET ECONNRESET" -> n, "GET 400 {...}" -> n
  sessionsLost: 0, // sessions that ended under the generator (a reconnect followed)
  closePackets: 0, // Engine.IO close packets `1` received
  connectErrors: 0, // 44 packets
  pongs: 0,
  pings: 0,
};
const bump = (k) => {
  counters.reqErrors[k] = (counters.reqErrors[k] ?? 0) + 1;
};
const errorLog = []; // the first few, verbatim, with time
function noteError(kind, detail) {
  bump(kind);
  if (errorLog.length < 20) errorLog.push({ at_s: Number(process.hrtime.bigint() - T0) / 1e9, kind, detail });
}

const pathFor = (sid) => `/socket.io/?EIO=4&transport=polling${sid ? `&sid=${encodeURIComponent(sid)}` : ''}`;

function nodeRequest(method, sid, body) {
  return new Promise((resolve, reject) => {
    const headers = {};
    if (body !== undefined) {
      headers['content-type'] = 'text/plain;charset=UTF-8';
      headers['content-length'] = Buffer.byteLength(body);
    }
    const req = http.request({ host: HOST, port: PORT, method, path: pathFor(sid), agent, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(REQ_TIMEOUT_MS, () => req.destroy(new Error('request timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

// One exchange on a raw socket. `slot` is {sock} (keep-alive: the client's
// GET or POST connection, reused while open) or null (a new connection,
// `Connection: close`). Resolves {status, body}.
function rawRequest(method, sid, body, slot) {
  return new Promise((resolve, reject) => {
    let sock = slot?.sock;
    const reused = !!sock;
    if (!sock) {
      sock = net.connect({ host: HOST, port: PORT });
      sock.setNoDelay(true);
      counters.tcpConnects++;
      sock._ended = false;
      sock.on('end', () => {
        sock._ended = true;
      });
      sock.on('close', () => {
        sock._ended = true;
        if (slot && slot.sock === sock) slot.sock = null;
      });
      sock.on('error', () => {}); // reported through the exchange below
      if (slot) slot.sock = sock;
    }
    let buf = Buffer.alloc(0);
    let head = null; // {status, len, chunked, close, bodyStart}
    let done = false;
    const timer = setTimeout(() => finish(new Error('request timeout')), REQ_TIMEOUT_MS);
    const finish = (err, res) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.off('data', onData);
      sock.off('close', onClose);
      sock.off('error', onError);
      if (err || !slot || head?.close) {
        if (slot && slot.sock === sock) slot.sock = null;
        sock.destroy();
      }
      if (err) {
        err.reused = reused;
        reject(err);
      } else resolve(res);
    };
    const tryParse = () => {
      if (!head) {
        const i = buf.indexOf('\r\n\r\n');
        if (i < 0) return;
        const lines = buf.subarray(0, i).toString('latin1').split('\r\n');
        const status = Number(lines[0].split(' ')[1]);
        let len = -1;
        let chunked = false;
        let close = false;
        for (let k = 1; k < lines.length; k++) {
          const c = lines[k].indexOf(':');
          const name = lines[k].slice(0, c).trim().toLowerCase();
          const v = lines[k].slice(c + 1).trim().toLowerCase();
          if (name === 'content-length') len = Number(v);
          else if (name === 'transfer-encoding') chunked = v.includes('chunked');
          else if (name === 'connection') close = v.includes('close');
        }
        head = { status, len, chunked, close, bodyStart: i + 4 };
      }
      const b = buf.subarray(head.bodyStart);
      if (head.chunked) {
        const parts = [];
        let o = 0;
        for (;;) {
          const e = b.indexOf('\r\n', o);
          if (e < 0) return;
          const n = parseInt(b.subarray(o, e).toString('latin1'), 16);
          if (n === 0) {
            if (b.length < e + 4) return;
            return finish(null, { status: head.status, body: Buffer.concat(parts).toString('utf8') });
          }
          if (b.length < e + 2 + n + 2) return;
          parts.push(b.subarray(e + 2, e + 2 + n));
          o = e + 2 + n + 2;
        }
      }
      if (head.len >= 0) {
        if (b.length >= head.len) finish(null, { status: head.status, body: b.subarray(0, head.len).toString('utf8') });
      }
      // else: the body ends at EOF (onClose)
    };
    const onData = (d) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      tryParse();
    };
    const onClose = () => {
      if (head && head.len < 0 && !head.chunked) {
        head.close = true;
        return finish(null, { status: head.status, body: buf.subarray(head.bodyStart).toString('utf8') });
      }
      const e = new Error(head ? 'connection closed mid-body' : 'connection closed before the answer');
      e.code = head ? 'EBODY' : 'ECLOSED';
      finish(e);
    };
    const onError = (e) => finish(e);
    sock.on('data', onData);
    sock.on('close', onClose);
    sock.on('error', onError);
    let req =
      `${method} ${pathFor(sid)} HTTP/1.1\r\nHost: ${HOST}:${PORT}\r\nAccept: */*\r\n` +
      `Connection: ${slot ? 'keep-alive' : 'close'}\r\n`;
    if (body !== undefined) req += `Content-Type: text/plain;charset=UTF-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n`;
    req += `\r\n${body ?? ''}`;
    sock.write(req);
  });
}

// A request for client `c` ('get' or 'post' connection slot when keep-alive).
// A reused keep-alive connection that the server had closed (its idle
// timeout) fails before any answer: that request is sent again once on a
// new connection, as node's agent does.
async function request(method, sid, body, c, which) {
  if (HTTP_IMPL === 'node') return nodeRequest(method, sid, body);
  const slot = KEEPALIVE ? (c ? c.slots[which] : { sock: null }) : null;
  if (slot?.sock?._ended) slot.sock = null;
  try {
    return await rawRequest(method, sid, body, slot);
  } catch (e) {
    if (e.reused && e.code === 'ECLOSED') return rawRequest(method, sid, body, slot);
    throw e;
  }
}

// ------------------------------------------------------------------ delivery accounting
const T0 = process.hrtime.bigint();
let lastNs = 0n;
const pending = new Map(); // msg -> step index
const seen = new Set(); // delivered msgs (for duplicates)
let cur = null; // the current step's counters

function onEvent(client, payload) {
  let arr;
  try {
    arr = JSON.parse(payload);
  } catch {
    noteError('unparsable event', payload.slice(0, 120));
    return;
  }
  if (!Array.isArray(arr) || arr[0] !== 'tradestate') return;
  const obj = arr[1] ?? {};
  const now = process.hrtime.bigint();
  const msg = String(obj.msg);
  const step = pending.get(msg);
  if (step === undefined) {
    if (seen.has(msg)) {
      if (cur) cur.dup++;
    } else if (cur) cur.unknown++;
    return;
  }
  pending.delete(msg);
  seen.add(msg);
  if (!cur || step !== cur.index) {
    if (cur) cur.stale++;
    return;
  }
  if (obj.steamId !== client.sub) cur.misrouted++;
  cur.delivered++;
  cur.lastDeliveryAt = now;
  cur.lat.push(Number(now - BigInt(msg)) / 1e6);
}

// ------------------------------------------------------------------ clients
let running = true;

class Client {
  constructor(i) {
    this.i = i;
    this.sub = `u${i}`;
    this.token = jwt(this.sub);
    this.sid = null;
    this.gen = 0; // session generation
    this.connected = false;
    this.outq = [];
    this.posting = false;
    this.onReady = null;
    this.everConnected = false;
    this.slots = { get: { sock: null }, post: { sock: null } };
  }

  async open() {
    const g = ++this.gen;
    this.connected = false;
    this.outq = [];
    this.posting = false;
    let r;
    try {
      r = await request('GET', undefined, undefined, this, 'get');
    } catch (e) {
      noteError(`handshake ${e.code ?? e.message}`, e.message);
      return this.retry(g);
    }
    if (r.status !== 200 || !r.body.startsWith('0{')) {
      noteError(`handshake ${r.status}`, r.body.slice(0, 200));
      return this.retry(g);
    }
    this.sid = JSON.parse(r.body.slice(1)).sid;
    this.post(`40${JSON.stringify({ token: this.token })}`, g);
    this.pollLoop(g);
  }

  retry(g) {
    if (!running || g !== this.gen) return;
    setTimeout(() => running && g === this.gen && this.open(), 200);
  }

  lost(g, why, detail) {
    if (g !== this.gen) return;
    noteError(why, detail);
    if (this.everConnected) counters.sessionsLost++;
    if (cur && this.everConnected) cur.sessionsLost++;
    this.connected = false;
    this.retry(g);
  }

  post(packet, g) {
    this.outq.push(packet);
    this.flush(g);
  }

  async flush(g) {
    if (this.posting || this.outq.length === 0 || g !== this.gen) return;
    this.posting = true;
    const body = this.outq.join('\x1e');
    this.outq = [];
    counters.posts++;
    let r;
    try {
      r = await request('POST', this.sid, body, this, 'post');
    } catch (e) {
      this.posting = false;
      return this.lost(g, `POST ${e.code ?? e.message}`, e.message);
    }
    this.posting = false;
    if (r.status !== 200 || r.body !== 'ok') return this.lost(g, `POST ${r.status} ${r.body.slice(0, 80)}`, r.body.slice(0, 200));
    this.flush(g);
  }

  async pollLoop(g) {
    while (running && g === this.gen) {
      let r;
      counters.gets++;
      try {
        r = await request('GET', this.sid, undefined, this, 'get');
      } catch (e) {
        return this.lost(g, `GET ${e.code ?? e.message}`, e.message);
      }
      if (g !== this.gen) return;
      if (r.status !== 200) return this.lost(g, `GET ${r.status} ${r.body.slice(0, 80)}`, r.body.slice(0, 200));
      let closed = false;
      for (const p of r.body.split('\x1e')) {
        if (p.startsWith('42')) onEvent(this, p.slice(2));
        else if (p === '2') {
          counters.pings++;
          counters.pongs++;
          this.post('3', g);
        } else if (p.startsWith('40')) {
          this.connected = true;
          this.everConnected = true;
          if (this.onReady) this.onReady();
        } else if (p.startsWith('44')) {
          counters.connectErrors++;
          noteError('CONNECT refused (44)', p.slice(0, 200));
          closed = true;
        } else if (p === '1') {
          counters.closePackets++;
          closed = true;
        } else if (p === '6' || p === '') {
          // noop
        } else {
          noteError('unexpected packet', p.slice(0, 120));
        }
      }
      if (closed) return this.lost(g, 'session closed by the server (close packet 1 or 44)', r.body.slice(0, 200));
    }
  }
}

// ------------------------------------------------------------------ Redis publisher (raw RESP)
let redisOutstanding = 0;
let zeroReceivers = 0;
let redisErrors = 0;
const redis = net.connect({ host: HOST, port: REDIS_PORT });
redis.setNoDelay(true);
let rbuf = '';
redis.on('data', (d) => {
  rbuf += d.toString('latin1');
  let i;
  while ((i = rbuf.indexOf('\r\n')) >= 0) {
    const line = rbuf.slice(0, i);
    rbuf = rbuf.slice(i + 2);
    redisOutstanding--;
    if (line[0] === ':') {
      if (line === ':0') {
        zeroReceivers++;
        if (cur) cur.zeroReceivers++;
      }
    } else {
      redisErrors++;
      if (errorLog.length < 20) errorLog.push({ kind: 'redis reply', detail: line });
    }
  }
});
redis.on('error', (e) => {
  out({ kind: 'fatal', error: `redis: ${e.message}` });
  process.exit(4);
});
await new Promise((res) => redis.once('connect', res));

const PUB_HEAD = '*3\r\n$7\r\nPUBLISH\r\n$10\r\ntradestate\r\n';
function publishBatch(n, stepIndex) {
  let s = '';
  for (let k = 0; k < n; k++) {
    let ns = process.hrtime.bigint();
    if (ns <= lastNs) ns = lastNs + 1n;
    lastNs = ns;
    const msg = String(ns);
    const user = `u${Math.floor(Math.random() * CLIENTS)}`;
    const json = `{"steamId":"${user}","token":"t","state":"s","msg":"${msg}"}`;
    pending.set(msg, stepIndex);
    s += `${PUB_HEAD}$${Buffer.byteLength(json)}\r\n${json}\r\n`;
  }
  redisOutstanding += n;
  redis.write(s);
}

// ------------------------------------------------------------------ run
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const clients = Array.from({ length: CLIENTS }, (_, i) => new Client(i));
log(`connecting ${CLIENTS} polling clients (keep-alive ${KEEPALIVE ? 'on' : 'off'}, ${HTTP_IMPL} HTTP client)`);
const tc0 = process.hrtime.bigint();
{
  let next = 0;
  const deadline = Date.now() + CONNECT_TIMEOUT_S * 1000;
  await Promise.all(
    Array.from({ length: CONNECT_CONCURRENCY }, async () => {
      while (next < clients.length && Date.now() < deadline) {
        const c = clients[next++];
        await new Promise((resolve) => {
          const t = setTimeout(resolve, Math.max(0, deadline - Date.now()));
          c.onReady = () => {
            clearTimeout(t);
            c.onReady = null;
            resolve();
          };
          c.open();
        });
      }
    }),
  );
}
const connectSeconds = Number(process.hrtime.bigint() - tc0) / 1e9;
const connected = clients.filter((c) => c.connected).length;
out({ kind: 'connect', clients: CLIENTS, connected, seconds: connectSeconds, keepalive: KEEPALIVE, http: HTTP_IMPL, errors: { ...counters.reqErrors } });
log(`${connected}/${CLIENTS} connected in ${connectSeconds.toFixed(2)} s`);
await sleep(1000);

// Idle: every client waiting in a GET, nothing published: the server's CPU
// for holding the sessions.
if (IDLE_SECONDS > 0) {
  const a = snapshot();
  await sleep(IDLE_SECONDS * 1000);
  const b = snapshot();
  const w = Number(b.t - a.t) / 1e9;
  out({
    kind: 'idle',
    seconds: w,
    connected: clients.filter((c) => c.connected).length,
    server_cpu_pct: (100 * (b.server - a.server)) / CLK_TCK / w,
    server_sched_cpu_pct: (100 * (b.serverSched[0] - a.serverSched[0])) / 1e9 / w,
  });
}

function pct(sorted, q) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

for (let si = 0; si < RATES.length; si++) {
  const rate = RATES[si];
  const total = Math.round(rate * STEP_SECONDS);
  cur = {
    index: si,
    rate,
    published: 0,
    delivered: 0,
    dup: 0,
    stale: 0,
    unknown: 0,
    misrouted: 0,
    sessionsLost: 0,
    zeroReceivers: 0,
    lat: [],
    lastDeliveryAt: 0n,
  };
  const errs0 = JSON.stringify(counters.reqErrors);
  const gets0 = counters.gets;
  const posts0 = counters.posts;
  const tcp0 = counters.tcpConnects;
  const a = snapshot();
  const tp0 = a.t;
  // publish: a tick every ~1 ms, what is due since the start
  while (cur.published < total) {
    const el = Number(process.hrtime.bigint() - tp0) / 1e9;
    const due = Math.min(total, Math.floor(rate * el));
    if (due > cur.published) {
      publishBatch(due - cur.published, si);
      cur.published = due;
    }
    await sleep(1);
  }
  const tpEnd = process.hrtime.bigint();
  // drain: until nothing of this step is pending, or DRAIN_IDLE_S without a
  // delivery, or DRAIN_MAX_S
  const drainStart = Date.now();
  let lastCount = -1;
  let lastProgress = Date.now();
  for (;;) {
    let left = 0;
    for (const v of pending.values()) if (v === si) left++;
    if (left === 0) break;
    if (cur.delivered !== lastCount) {
      lastCount = cur.delivered;
      lastProgress = Date.now();
    }
    if (Date.now() - lastProgress > DRAIN_IDLE_S * 1000 || Date.now() - drainStart > DRAIN_MAX_S * 1000) break;
    await sleep(20);
  }
  const b = snapshot();
  let lost = 0;
  for (const v of pending.values()) if (v === si) lost++;
  const lat = cur.lat.sort((x, y) => x - y);
  const windowS = Number(b.t - a.t) / 1e9;
  const pubS = Number(tpEnd - tp0) / 1e9;
  const serverCpuS = (b.server - a.server) / CLK_TCK;
  const p99 = pct(lat, 0.99);
  const reasons = [];
  if (lost) reasons.push(`${lost} lost`);
  if (cur.dup) reasons.push(`${cur.dup} duplicated`);
  if (cur.misrouted) reasons.push(`${cur.misrouted} misrouted`);
  if (cur.sessionsLost) reasons.push(`${cur.sessionsLost} sessions dropped`);
  if (p99 !== null && p99 > MAX_P99_MS) reasons.push(`p99 ${p99.toFixed(0)} ms > ${MAX_P99_MS} ms`);
  if (cur.delivered === 0) reasons.push('nothing delivered');
  const rec = {
    kind: 'step',
    step: si,
    rate,
    clients: CLIENTS,
    connected: clients.filter((c) => c.connected).length,
    keepalive: KEEPALIVE,
    http: HTTP_IMPL,
    step_seconds: STEP_SECONDS,
    publish_seconds: pubS,
    window_seconds: windowS,
    published: cur.published,
    published_per_s: cur.published / pubS,
    delivered: cur.delivered,
    // deliveries of this step's messages over the publish time (the drain
    // adds only the tail)
    delivered_per_s: cur.delivered / pubS,
    lost,
    dup: cur.dup,
    misrouted: cur.misrouted,
    stale: cur.stale,
    unknown: cur.unknown,
    zero_receivers: cur.zeroReceivers,
    sessions_lost: cur.sessionsLost,
    gets: counters.gets - gets0,
    posts: counters.posts - posts0,
    tcp_connects: counters.tcpConnects - tcp0,
    deliveries_per_get: cur.delivered / Math.max(1, counters.gets - gets0),
    p50_ms: pct(lat, 0.5),
    p90_ms: pct(lat, 0.9),
    p99_ms: p99,
    max_ms: lat.length ? lat[lat.length - 1] : null,
    server_cpu_s: serverCpuS,
    server_cpu_pct: (100 * serverCpuS) / windowS,
    server_cpu_s_per_1000: cur.delivered ? (1000 * serverCpuS) / cur.delivered : null,
    server_sched_cpu_s: (b.serverSched[0] - a.serverSched[0]) / 1e9,
    server_waited_pct: (100 * (b.serverSched[1] - a.serverSched[1])) / 1e9 / windowS,
    redis_cpu_pct: (100 * (b.redis - a.redis)) / CLK_TCK / windowS,
    gen_cpu_pct: (100 * (b.gen - a.gen)) / 1e6 / windowS,
    // time the generator's and Redis's threads were runnable but waiting for
    // a CPU: other load on CPU 1
    gen_redis_waited_pct:
      (100 * (b.genSched[1] - a.genSched[1] + b.redisSched[1] - a.redisSched[1])) / 1e9 / windowS,
    errors: JSON.stringify(counters.reqErrors) === errs0 ? {} : diffCounts(JSON.parse(errs0), counters.reqErrors),
    result: reasons.length ? reasons.join(', ') : 'pass',
  };
  out(rec);
  log(
    `step ${rate}/s: published ${rec.published}, delivered ${rec.delivered}, lost ${lost}, p50 ${fmt(rec.p50_ms)} p99 ${fmt(p99)} ms, ` +
      `server ${rec.server_cpu_pct.toFixed(0)}% (${fmt(rec.server_cpu_s_per_1000, 3)} s/1000), gen ${rec.gen_cpu_pct.toFixed(0)}%: ${rec.result}`,
  );
  cur = null;
  if (reasons.length) break;
  await sleep(1000);
}

function diffCounts(a, b) {
  const d = {};
  for (const [k, v] of Object.entries(b)) if (v !== (a[k] ?? 0)) d[k] = v - (a[k] ?? 0);
  return d;
}
function fmt(x, d = 1) {
  return x === null || x === undefined ? '-' : x.toFixed(d);
}

running = false;
out({
  kind: 'end',
  counters: { ...counters, zeroReceivers, redisErrors },
  error_log: errorLog,
  seconds: Number(process.hrtime.bigint() - T0) / 1e9,
});
clearTimeout(watchdog);
redis.end();
agent.destroy();
process.exit(0);
