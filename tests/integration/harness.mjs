// Integration-test harness for coordhub: a throwaway redis-server, a tiny
// RESP client, the hub process, HS256 tokens minted in Node, and WebSocket
// clients whose messages can be awaited with a deadline.
//
// Rules every helper keeps: each wait has a deadline, each spawned process is
// killed in an after() hook (and, as a backstop, when this process exits),
// all traffic stays on 127.0.0.1.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test as nodeTest } from 'node:test';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..');

let WebSocket;
try {
  ({ WebSocket } = await import('ws'));
} catch (e) {
  throw new Error(
    `cannot load the 'ws' package (${e.message}). ` +
      `Run 'npm ci' in ${path.join(repoRoot, 'tests')} before the integration tests.`,
  );
}
export { WebSocket };

export const HUB_BIN = process.env.COORDHUB_BIN || path.join(repoRoot, 'build', 'coordhub');
export const REDIS_BIN = process.env.REDIS_SERVER || '/usr/bin/redis-server';

// ---------------------------------------------------------------- basics

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Rejects with `what` when `promise` has not settled within `ms`.
export function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, rej) => {
    timer = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

// Polls `fn` (sync or async) every `intervalMs` until it returns a truthy
// value, which is returned; throws after `timeoutMs` naming `what` and the
// last value or error seen. An error with `fatal: true` ends the wait at once.
export async function waitUntil(fn, { timeoutMs = 5000, intervalMs = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  let lastErr;
  for (;;) {
    try {
      last = await fn();
      lastErr = undefined;
      if (last) return last;
    } catch (e) {
      if (e && e.fatal) throw e; // no point waiting any longer
      lastErr = e;
    }
    if (Date.now() >= deadline) {
      const detail = lastErr ? `last error: ${lastErr.message}` : `last value: ${JSON.stringify(last)}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (${detail})`);
    }
    await sleep(intervalMs);
  }
}

// A free loopback TCP port: bind port 0, read it, close.
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export function makeTmpDir(prefix) {
  const base = process.env.COORDHUB_TEST_TMP || os.tmpdir();
  fs.mkdirSync(base, { recursive: true });
  return fs.mkdtempSync(path.join(base, prefix));
}

// ---------------------------------------------------------------- cleanup

const liveProcs = new Set(); // ChildProcess
const liveClients = new Set(); // WsClient
const liveResp = new Set(); // RespClient
const liveAgents = new Set(); // http.Agent from keepAliveAgent()
const tmpDirs = new Set();
const hubs = []; // every hub started in this file, for log dumps

function trackProc(proc) {
  liveProcs.add(proc);
  proc.once('exit', () => liveProcs.delete(proc));
}

function exitPromise(proc) {
  if (proc.exitCode !== null || proc.signalCode !== null) {
    return Promise.resolve({ code: proc.exitCode, signal: proc.signalCode });
  }
  return new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
}

async function killAndWait(proc, ms = 5000) {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const done = exitPromise(proc);
  try {
    proc.kill('SIGKILL');
  } catch {
    /* already gone */
  }
  await withTimeout(done, ms, `pid ${proc.pid} to die after SIGKILL`).catch(() => {});
}

const SANITIZER_RE = /ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer/;

// Stops everything this file started. Registered as a root after() hook
// below, so it runs even when tests fail. Hubs still running get SIGTERM
// first, with their clients still connected, so every file ends with a real
// shutdown; then the hook fails the file if a hub did not exit 0 within
// 10 s, died of a signal nobody sent, or printed a sanitizer report.
export async function cleanupAll() {
  const problems = [];
  const tail = (h) => h.stderr().split('\n').slice(-40).join('\n');
  await Promise.all(
    hubs
      .filter((h) => !h.exited())
      .map(async (h) => {
        const done = h.exit();
        h.proc.kill('SIGTERM');
        try {
          const { code, signal } = await withTimeout(done, 10000, `hub pid ${h.pid} to exit after SIGTERM`);
          if (code !== 0) problems.push(`hub pid ${h.pid} exited with code ${code} signal ${signal} after SIGTERM`);
        } catch {
          problems.push(`hub pid ${h.pid} did not exit within 10 s of SIGTERM`);
          await killAndWait(h.proc);
        }
      }),
  );
  for (const c of liveClients) c.terminate();
  liveClients.clear();
  for (const r of liveResp) r.close();
  liveResp.clear();
  for (const a of liveAgents) a.destroy();
  liveAgents.clear();
  await Promise.all([...liveProcs].map((p) => killAndWait(p)));
  for (const h of hubs) {
    if (h.checked) continue;
    h.checked = true;
    const sig = h.proc.signalCode;
    if (sig && !h.signalsSent.has(sig)) problems.push(`hub pid ${h.pid} died of ${sig}, which no test sent`);
    if (SANITIZER_RE.test(h.stderr())) problems.push(`hub pid ${h.pid} printed a sanitizer report:\n${tail(h)}`);
  }
  for (const d of tmpDirs) {
    try {
      fs.rmSync(d, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
  tmpDirs.clear();
  if (problems.length) throw new Error(`after the tests:\n${problems.join('\n')}`);
}

// A script that is not a test file (bench/) sets COORDHUB_HARNESS_NO_HOOKS=1
// before importing this module and calls cleanupAll() itself: no node:test
// root (and no TAP output) then.
if (process.env.COORDHUB_HARNESS_NO_HOOKS !== '1') after(cleanupAll);
process.on('exit', () => {
  for (const p of liveProcs) {
    try {
      p.kill('SIGKILL');
    } catch {
      /* ignore */
    }
  }
});

// Prints the tail of every hub's stderr (and exit status). Called by test()
// below when a test fails, so the hub's side of the story is in the report.
export function dumpHubLogs(title, { fromIndex = 0, maxLines = 80 } = {}) {
  // The hubs started by the failing test, and any still running (started
  // by a before() hook, say).
  for (const [i, h] of hubs.entries()) {
    if (i < fromIndex && h.exited()) continue;
    const lines = h.stderr().split('\n');
    const tail = lines.slice(-maxLines).join('\n');
    const status =
      h.proc.exitCode !== null || h.proc.signalCode !== null
        ? `exited code=${h.proc.exitCode} signal=${h.proc.signalCode}`
        : 'running';
    process.stderr.write(
      `\n----- coordhub pid ${h.pid}${h.port ? ` port ${h.port}` : ''} (${status}) stderr, last ${maxLines} lines, after failure of "${title}" -----\n` +
        `${tail}\n----- end of coordhub stderr -----\n`,
    );
  }
}

// node:test's test(), except that a failure also prints the hubs' stderr.
export function test(name, opts, fn) {
  if (typeof opts === 'function') {
    fn = opts;
    opts = {};
  }
  return nodeTest(name, opts, async (t) => {
    const fromIndex = hubs.length;
    try {
      return await fn(t);
    } catch (e) {
      dumpHubLogs(name, { fromIndex });
      throw e;
    }
  });
}

// ---------------------------------------------------------------- RESP

// Encodes one command as a RESP array of bulk strings.
export function respEncode(args) {
  const parts = [`*${args.length}\r\n`];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
    parts.push(`$${b.length}\r\n`, b, '\r\n');
  }
  return Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p))));
}

// Parses one RESP2 reply at `off`. Returns {value, next} or null if more
// bytes are needed. Errors come back as instances of RespError.
export class RespError extends Error {}
function respParse(buf, off) {
  if (off >= buf.length) return null;
  const nl = buf.indexOf('\r\n', off);
  if (nl < 0) return null;
  const type = String.fromCharCode(buf[off]);
  const line = buf.toString('utf8', off + 1, nl);
  const after = nl + 2;
  switch (type) {
    case '+':
      return { value: line, next: after };
    case '-':
      return { value: new RespError(line), next: after };
    case ':':
      return { value: Number(line), next: after };
    case '$': {
      const n = Number(line);
      if (n < 0) return { value: null, next: after };
      if (buf.length < after + n + 2) return null;
      return { value: buf.toString('utf8', after, after + n), next: after + n + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, next: after };
      const arr = [];
      let p = after;
      for (let i = 0; i < n; i++) {
        const r = respParse(buf, p);
        if (!r) return null;
        arr.push(r.value);
        p = r.next;
      }
      return { value: arr, next: p };
    }
    default:
      throw new Error(`bad RESP type byte ${JSON.stringify(type)}`);
  }
}

// A minimal Redis client: one connection, replies matched in order.
export class RespClient {
  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.pending = [];
    this.closed = false;
    sock.on('data', (d) => this._onData(d));
    const fail = (err) => {
      this.closed = true;
      const e = err || new Error('redis connection closed');
      for (const p of this.pending.splice(0)) p.reject(e);
    };
    sock.on('error', fail);
    sock.on('close', () => fail());
    liveResp.add(this);
  }

  static connect(port, { host = '127.0.0.1', timeoutMs = 2000 } = {}) {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host, port });
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new Error(`connect to redis ${host}:${port} timed out`));
      }, timeoutMs);
      sock.once('connect', () => {
        clearTimeout(timer);
        sock.removeListener('error', reject);
        resolve(new RespClient(sock));
      });
      sock.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  _onData(d) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    let off = 0;
    for (;;) {
      const r = respParse(this.buf, off);
      if (!r) break;
      off = r.next;
      const p = this.pending.shift();
      if (p) p.resolve(r.value);
      else if (this.onPush) this.onPush(r.value); // MONITOR lines, pub/sub messages
    }
    this.buf = this.buf.subarray(off);
  }

  // Sends one command; resolves with the reply (a RespError rejects).
  command(args, { timeoutMs = 5000 } = {}) {
    if (this.closed) return Promise.reject(new Error('redis connection closed'));
    const p = new Promise((resolve, reject) => {
      this.pending.push({
        resolve: (v) => (v instanceof RespError ? reject(v) : resolve(v)),
        reject,
      });
    });
    this.sock.write(respEncode(args));
    return withTimeout(p, timeoutMs, `redis reply to ${String(args[0])}`);
  }

  // Sends many commands in one write; resolves with all replies.
  pipeline(cmds, { timeoutMs = 10000 } = {}) {
    if (this.closed) return Promise.reject(new Error('redis connection closed'));
    const ps = cmds.map(
      () =>
        new Promise((resolve, reject) => {
          this.pending.push({ resolve, reject });
        }),
    );
    this.sock.write(Buffer.concat(cmds.map(respEncode)));
    return withTimeout(Promise.all(ps), timeoutMs, `redis pipeline of ${cmds.length}`);
  }

  publish(channel, payload, opts) {
    return this.command(['PUBLISH', channel, payload], opts);
  }

  close() {
    this.closed = true;
    this.sock.destroy();
    liveResp.delete(this);
  }
}

// One command on a fresh connection.
export async function redisCommand(port, args, opts) {
  const c = await RespClient.connect(port);
  try {
    return await c.command(args, opts);
  } finally {
    c.close();
  }
}

// ---------------------------------------------------------------- redis-server

// Starts redis-server on a free loopback port in a temporary directory and
// waits until it answers PING. restart() starts it again on the same port.
export async function startRedis({ readyTimeoutMs = 10000 } = {}) {
  const dir = makeTmpDir('redis-');
  tmpDirs.add(dir);
  let port = await freePort();
  let proc = null;
  let log = '';

  const spawnOnce = async () => {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir];
    log = '';
    const p = spawn(REDIS_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    trackProc(p);
    const onOut = (d) => {
      log += d.toString();
      if (log.length > 65536) log = log.slice(-32768);
    };
    p.stdout.on('data', onOut);
    p.stderr.on('data', onOut);
    p.on('error', (e) => {
      log += `spawn error: ${e.message}\n`;
    });
    proc = p;
    await waitUntil(
      async () => {
        if (p.exitCode !== null || p.signalCode !== null) {
          throw Object.assign(new Error(`redis-server exited (${p.exitCode ?? p.signalCode}): ${log.slice(-2000)}`), {
            fatal: true,
          });
        }
        const r = await redisCommand(port, ['PING'], { timeoutMs: 1000 });
        return r === 'PONG';
      },
      { timeoutMs: readyTimeoutMs, intervalMs: 50, what: `redis-server on port ${port} to answer PING` },
    ).catch((e) => {
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
      throw e;
    });
  };

  // The free port can be taken between probing and binding: try a few.
  for (let attempt = 0; ; attempt++) {
    try {
      await spawnOnce();
      break;
    } catch (e) {
      if (attempt >= 2) throw e;
      port = await freePort();
    }
  }

  const r = {
    get port() {
      return port;
    },
    get url() {
      return `redis://127.0.0.1:${port}/0`;
    },
    get pid() {
      return proc.pid;
    },
    log: () => log,
    // SHUTDOWN NOSAVE-like: SIGTERM, wait for exit.
    async stop(ms = 5000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const done = exitPromise(proc);
      proc.kill('SIGTERM');
      await withTimeout(done, ms, 'redis-server to stop').catch(() => killAndWait(proc));
    },
    // Sends `signal` (default SIGKILL) and waits until the process is gone.
    async kill(signal = 'SIGKILL', ms = 5000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const done = exitPromise(proc);
      proc.kill(signal);
      await withTimeout(done, ms, `redis-server to exit on ${signal}`);
    },
    // Starts a new redis-server on the same port (the old one must be gone).
    async restart() {
      if (proc.exitCode === null && proc.signalCode === null) await r.kill('SIGKILL');
      await spawnOnce();
    },
    client: () => RespClient.connect(port),
    command: (args, opts) => redisCommand(port, args, opts),
    publish: (channel, payload) => redisCommand(port, ['PUBLISH', channel, payload]),
  };
  return r;
}

// ---------------------------------------------------------------- HTTP

// GET (or another method) with a deadline; resolves {status, headers, body}.
export function httpRequest(url, { method = 'GET', headers = {}, body, timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`HTTP ${method} ${url} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

export const httpGet = (url, opts) => httpRequest(url, opts);

// An http.Agent that keeps its connections open between requests (one
// connection unless `maxSockets` says more); destroyed by cleanupAll().
export function keepAliveAgent(opts = {}) {
  const a = new http.Agent({ keepAlive: true, maxSockets: 1, ...opts });
  liveAgents.add(a);
  return a;
}

// A JSON request with a deadline. `body`: a string or Buffer is sent as is,
// anything else JSON-encoded; always with Content-Length (never chunked).
// `token` adds `Authorization: Bearer <token>`. The path after host:port is
// sent exactly as written (no URL normalisation, so `%2F`, `{` and the like
// reach the server untouched). `agent`: an http.Agent (keepAliveAgent()) or
// false for a connection of its own; `signal`: an AbortSignal that destroys
// the request. Resolves {status, headers, body (text), json (undefined when
// the body is not JSON), ms (send to end of response)}.
export function httpJson(url, { method = 'GET', body, token, headers = {}, agent = false, timeoutMs = 5000, signal } = {}) {
  const m = /^http:\/\/([^/:]+):(\d+)(\/.*)?$/.exec(url);
  if (!m) throw new Error(`httpJson: unsupported URL ${url}`);
  const h = { ...headers };
  if (token !== undefined) h.authorization = `Bearer ${token}`;
  let payload;
  if (body !== undefined) {
    payload = typeof body === 'string' || Buffer.isBuffer(body) ? Buffer.from(body) : Buffer.from(JSON.stringify(body));
    if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['content-type'] = 'application/json';
    h['content-length'] = String(payload.length);
  }
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: m[1], port: Number(m[2]), path: m[3] || '/', method, headers: h, agent, signal },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode, headers: res.headers, body: text, json, ms: performance.now() - t0 });
        });
        res.on('error', reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`HTTP ${method} ${url} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

// ---------------------------------------------------------------- metrics

// Parses Prometheus text into [{name, labels: {..}, value}] (comments skipped).
export function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let lm;
      while ((lm = re.exec(m[3]))) labels[lm[1]] = lm[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    }
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

// Sum of the samples named `name` whose labels match `labels` (each value a
// string for equality or a RegExp). A missing series counts 0.
export function metricSum(samples, name, labels = {}) {
  let sum = 0;
  for (const s of samples) {
    if (s.name !== name) continue;
    let ok = true;
    for (const [k, v] of Object.entries(labels)) {
      const have = s.labels[k];
      if (have === undefined || (v instanceof RegExp ? !v.test(have) : have !== v)) ok = false;
    }
    if (ok) sum += s.value;
  }
  return sum;
}

// ---------------------------------------------------------------- tokens

const b64url = (buf) => Buffer.from(buf).toString('base64url');

// Mints a JWT. Defaults: HS256, exp = now + ttl. `header`/`claims` override
// or add fields (set a claim to undefined to drop it); `signSecret` signs
// with another key; alg 'none' gives an empty signature.
export function makeToken({ sub, roles, ttl = 300, secret, header = {}, claims = {}, signSecret, alg = 'HS256' }) {
  const h = { alg, typ: 'JWT', ...header };
  const now = Math.floor(Date.now() / 1000);
  const c = { sub, exp: now + ttl, iat: now };
  if (roles && roles.length) c.roles = roles;
  Object.assign(c, claims);
  for (const k of Object.keys(c)) if (c[k] === undefined) delete c[k];
  const input = `${b64url(JSON.stringify(h))}.${b64url(JSON.stringify(c))}`;
  if (alg === 'none') return `${input}.`;
  const algo = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }[alg];
  if (!algo) throw new Error(`makeToken: unsupported alg ${alg}`);
  const sig = crypto.createHmac(algo, signSecret ?? secret).update(input).digest();
  return `${input}.${b64url(sig)}`;
}

export function token(sub, roles = [], ttl = 300, secret) {
  return makeToken({ sub, roles, ttl, secret });
}

// ---------------------------------------------------------------- the hub

// Spawns the hub on a free port with a fresh secret and waits for /readyz
// 200. `args` replaces the default flags entirely (then no readiness wait
// unless `waitReady`). `port` starts it on that port instead (to restart a
// hub where its clients will reconnect; pass the old hub's `secret` too).
export async function startHub({
  redisUrl,
  extraArgs = [],
  env = {},
  secret = crypto.randomBytes(16).toString('hex'),
  readyTimeoutMs = 20000,
  logLevel,
  port: fixedPort,
} = {}) {
  if (!fs.existsSync(HUB_BIN)) {
    throw new Error(`hub binary not found at ${HUB_BIN} (build it, or set COORDHUB_BIN)`);
  }
  let lastErr;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = fixedPort ?? (await freePort());
    const args = ['--listen', `127.0.0.1:${port}`, '--redis', redisUrl, '--jwt-secret', secret];
    if (logLevel) args.push('--log-level', logLevel);
    args.push(...extraArgs);
    const hub = spawnHubProcess(args, { env, port, secret });
    try {
      await waitUntil(
        async () => {
          if (hub.exited()) {
            throw Object.assign(new Error(`hub exited early (code ${hub.proc.exitCode}, signal ${hub.proc.signalCode})`), {
              fatal: true,
            });
          }
          const r = await httpGet(`${hub.url}/readyz`, { timeoutMs: 1000 });
          return r.status === 200;
        },
        { timeoutMs: readyTimeoutMs, intervalMs: 50, what: `hub on port ${port} to answer /readyz 200` },
      );
      return hub;
    } catch (e) {
      lastErr = new Error(`${e.message}\n--- hub stderr ---\n${hub.stderr().slice(-4000)}`);
      await killAndWait(hub.proc);
      // Retry only when the port was taken under us (and may be another).
      if (fixedPort !== undefined || !/in use|EADDRINUSE|bind/i.test(hub.stderr())) break;
    }
  }
  throw lastErr;
}

// Spawns the hub binary with `args` and the environment given (no
// COORDHUB_* / REDIS_URL inherited, so flags alone decide) and returns a
// handle. No readiness wait.
export function spawnHubProcess(args, { env = {}, port, secret } = {}) {
  const cleanEnv = { ...process.env };
  for (const k of Object.keys(cleanEnv)) {
    if (k.startsWith('COORDHUB_') || k === 'REDIS_URL' || k === 'MONGODB_URI') delete cleanEnv[k];
  }
  // In an ASan build, freed memory sits in a quarantine (256 MiB by default)
  // that would swamp the slow-consumer test's RSS bound: keep it small.
  // Harmless for a build without sanitizers.
  let asan = cleanEnv.ASAN_OPTIONS || '';
  if (!/quarantine_size_mb/.test(asan)) asan += `${asan ? ':' : ''}quarantine_size_mb=16`;
  cleanEnv.ASAN_OPTIONS = asan;
  // libmongoc's load-time counters live in /dev/shm/mongoc-<pid>; a hub
  // killed with SIGKILL leaves its file, and a later process given the same
  // pid prints a warning line on stderr (a test reading one-line errors
  // then fails at random). The hub runs without them (docs/libraries.md).
  cleanEnv.MONGOC_DISABLE_SHM = '1';
  const proc = spawn(HUB_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...cleanEnv, ...env } });
  trackProc(proc);
  // Remember which signals we sent, to tell a crash from a kill.
  const signalsSent = new Set();
  const rawKill = proc.kill.bind(proc);
  proc.kill = (sig = 'SIGTERM') => {
    signalsSent.add(sig);
    return rawKill(sig);
  };
  let err = '';
  let out = '';
  const cap = (s) => (s.length > 1 << 20 ? s.slice(-(1 << 19)) : s);
  proc.stderr.on('data', (d) => {
    err = cap(err + d.toString());
  });
  proc.stdout.on('data', (d) => {
    out = cap(out + d.toString());
  });
  proc.on('error', (e) => {
    err += `spawn error: ${e.message}\n`;
  });
  const exited = () => proc.exitCode !== null || proc.signalCode !== null;
  const hub = {
    proc,
    signalsSent,
    pid: proc.pid,
    port,
    secret,
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    stderr: () => err,
    stdout: () => out,
    exited,
    exit: () => exitPromise(proc),
    // SIGTERM; resolves the exit code (null if killed by a signal). Kills
    // with SIGKILL and throws if the hub has not exited within `ms`.
    async stop(ms = 15000) {
      if (exited()) return proc.exitCode;
      const done = exitPromise(proc);
      proc.kill('SIGTERM');
      try {
        const { code } = await withTimeout(done, ms, `hub pid ${proc.pid} to exit after SIGTERM`);
        return code;
      } catch (e) {
        await killAndWait(proc);
        throw e;
      }
    },
    async kill(signal = 'SIGKILL') {
      if (exited()) return;
      const done = exitPromise(proc);
      proc.kill(signal);
      await withTimeout(done, 5000, `hub to exit on ${signal}`);
    },
    token: (sub, roles = [], ttl = 300) => makeToken({ sub, roles, ttl, secret }),
    // Connects to /ws with a token for `sub` (and `roles`).
    connect: (sub, roles = [], opts = {}) =>
      connectWs(`ws://127.0.0.1:${port}/ws?token=${encodeURIComponent(makeToken({ sub, roles, secret }))}`, opts),
    metrics: async () => {
      const r = await httpGet(`${hub.url}/metrics`);
      if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
      return parseMetrics(r.body);
    },
    metric: async (name, labels) => metricSum(await hub.metrics(), name, labels),
    // VmRSS of the hub in bytes, from /proc.
    rssBytes: () => {
      const s = fs.readFileSync(`/proc/${proc.pid}/status`, 'utf8');
      const m = /VmRSS:\s+(\d+)\s+kB/.exec(s);
      return m ? Number(m[1]) * 1024 : NaN;
    },
  };
  hubs.push(hub);
  return hub;
}

// Runs the hub binary to completion (for --help, token, bad flags) with a
// deadline; resolves {code, signal, stdout, stderr}.
export function runHub(args, { env = {}, timeoutMs = 15000 } = {}) {
  const h = spawnHubProcess(args, { env });
  return withTimeout(h.exit(), timeoutMs, `coordhub ${args.join(' ')} to exit`)
    .then(({ code, signal }) => ({ code, signal, stdout: h.stdout(), stderr: h.stderr() }))
    .catch(async (e) => {
      await killAndWait(h.proc);
      throw new Error(`${e.message}\nstderr: ${h.stderr().slice(-2000)}`);
    });
}

// ---------------------------------------------------------------- WebSockets

// A connected WebSocket client whose text frames are parsed as JSON and
// queued. waitFor() consumes the first unconsumed match; expectNone()
// asserts that no message matching arrives (history included).
// Event frames carry a recovery offset (SPEC §9, docs/recovery.md): its
// shape is checked here, for every test, and the property is kept but made
// non-enumerable, so that tests comparing frames with deepStrictEqual
// compare what they are about. `frame.offset` still reads it.
export const OFFSET_RE = /^(\d+-\d+)?$/;
export function hideOffset(msg) {
  if (msg !== null && typeof msg === 'object' && !Array.isArray(msg) && 'offset' in msg) {
    const o = msg.offset;
    if (typeof o !== 'string' || !OFFSET_RE.test(o)) throw new Error(`bad offset in frame: ${JSON.stringify(msg)}`);
    delete msg.offset;
    Object.defineProperty(msg, 'offset', { value: o, enumerable: false });
  }
  return msg;
}

export class WsClient {
  constructor(ws) {
    this.ws = ws;
    this.messages = []; // parsed JSON (or {__raw: text} when not JSON)
    this.raw = []; // every text frame as received
    this.binary = 0;
    this.errors = [];
    this.consumed = new Set();
    this.waiters = new Set();
    this.closeInfo = null;
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        liveClients.delete(this);
        for (const w of this.waiters) w.check();
        resolve(this.closeInfo);
      });
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) {
        this.binary++;
        return;
      }
      const text = data.toString('utf8');
      this.raw.push(text);
      let msg;
      try {
        msg = JSON.parse(text);
      } catch {
        msg = { __raw: text };
      }
      this.messages.push(hideOffset(msg));
      for (const w of this.waiters) w.check();
    });
    ws.on('error', (e) => this.errors.push(e));
    liveClients.add(this);
  }

  get isClosed() {
    return this.closeInfo !== null;
  }

  send(obj) {
    this.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
  }

  // Index of the next message; pass as `since` to look only at later ones.
  mark() {
    return this.messages.length;
  }

  count(pred, since = 0) {
    return this.messages.slice(since).filter(pred).length;
  }

  // Resolves with the first unconsumed message at index >= `since` that
  // matches `pred`, and marks it consumed.
  waitFor(pred, timeoutMs = 5000, what = 'a matching message', since = 0) {
    const find = () => {
      for (let i = since; i < this.messages.length; i++) {
        if (!this.consumed.has(i) && pred(this.messages[i])) {
          this.consumed.add(i);
          return this.messages[i];
        }
      }
      return undefined;
    };
    const hit = find();
    if (hit !== undefined) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const w = {
        check: () => {
          const m = find();
          if (m !== undefined) {
            done();
            resolve(m);
          } else if (this.closeInfo) {
            done();
            reject(new Error(`socket closed (code ${this.closeInfo.code}) while waiting for ${what}; got: ${this.summary()}`));
          }
        },
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; got: ${this.summary()}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(w);
      };
      this.waiters.add(w);
      w.check();
    });
  }

  // Waits for the next unconsumed event named `event` (and matching `pred`).
  waitEvent(event, timeoutMs = 5000, pred = () => true, since = 0) {
    return this.waitFor((m) => m && m.event === event && pred(m), timeoutMs, `event "${event}"`, since);
  }

  // Waits `ms` and throws if a message matching `pred` is (or was, at or
  // after index `since`) received. Fails early when one arrives.
  expectNone(pred, ms = 500, { since = 0, what = 'unexpected message' } = {}) {
    const find = () => this.messages.slice(since).find(pred);
    return new Promise((resolve, reject) => {
      const w = {
        check: () => {
          const m = find();
          if (m !== undefined) {
            done();
            reject(new Error(`${what}: received ${JSON.stringify(m).slice(0, 500)}`));
          }
        },
      };
      const timer = setTimeout(() => {
        done();
        resolve();
      }, ms);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(w);
      };
      this.waiters.add(w);
      w.check();
    });
  }

  // Resolves {code, reason} when the socket closes; throws after timeoutMs.
  waitClose(timeoutMs = 5000) {
    return withTimeout(this.closed, timeoutMs, 'the WebSocket to close');
  }

  // Closes politely, then terminates if the close handshake stalls.
  async close(timeoutMs = 2000) {
    if (this.isClosed) return this.closeInfo;
    try {
      this.ws.close(1000);
    } catch {
      /* ignore */
    }
    try {
      return await this.waitClose(timeoutMs);
    } catch {
      this.terminate();
      return this.closeInfo;
    }
  }

  terminate() {
    try {
      this.ws.terminate();
    } catch {
      /* ignore */
    }
  }

  summary(max = 10) {
    const tail = this.raw.slice(-max).map((s) => (s.length > 200 ? `${s.slice(0, 200)}…` : s));
    return `${this.raw.length} frames, last ${tail.length}: ${JSON.stringify(tail)}`;
  }
}

// Opens a WebSocket. Resolves {ok: true, client} once open, or {ok: false,
// statusCode, body} when the server answered the upgrade with an HTTP status
// ('unexpected-response'); rejects on other errors or after timeoutMs.
export function openWs(url, { headers = {}, timeoutMs = 5000, wsOptions = {} } = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, handshakeTimeout: timeoutMs, ...wsOptions });
    let settled = false;
    const finish = (fn, v) => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        fn(v);
      }
    };
    const timer = setTimeout(() => {
      ws.terminate();
      finish(reject, new Error(`WebSocket ${url} did not open within ${timeoutMs} ms`));
    }, timeoutMs + 500);
    // Attach the client before 'open' so no early frame is missed.
    const client = new WsClient(ws);
    ws.once('open', () => finish(resolve, { ok: true, client }));
    ws.once('unexpected-response', (req, res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      const done = () => {
        req.destroy();
        liveClients.delete(client);
        finish(resolve, { ok: false, statusCode: res.statusCode, body: Buffer.concat(chunks).toString('utf8') });
      };
      res.on('end', done);
      res.on('error', done);
      setTimeout(done, 1000).unref();
    });
    ws.once('error', (e) => {
      liveClients.delete(client);
      finish(reject, e);
    });
  });
}

// Opens a WebSocket and returns the WsClient; throws unless it opened.
export async function connectWs(url, opts) {
  const r = await openWs(url, opts);
  if (!r.ok) throw new Error(`WebSocket ${url} refused with HTTP ${r.statusCode}: ${r.body.slice(0, 300)}`);
  return r.client;
}

// Round trip through the hub: ping, await pong. Proves that frames sent
// before it have been processed (the hub handles a socket's frames in order).
export async function roundTrip(client, timeoutMs = 5000) {
  client.send({ op: 'ping' });
  await client.waitEvent('pong', timeoutMs);
}

// Joins `room` and waits for the "joined" acknowledgement.
export async function join(client, room, timeoutMs = 5000) {
  client.send({ op: 'join', room });
  const m = await client.waitFor(
    (x) => (x.event === 'joined' && x.data && x.data.room === room) || x.event === 'error',
    timeoutMs,
    `joined ${room}`,
  );
  if (m.event === 'error') throw new Error(`join ${room} refused: ${JSON.stringify(m.data)}`);
  return m;
}

// A fresh, valid steamId-like user id.
let idSeq = 0;
export function userId() {
  idSeq++;
  return `7656119${String(Date.now() % 1e7).padStart(7, '0')}${String(idSeq).padStart(3, '0')}`;
}

// ---------------------------------------------------------------- pub/sub recorder
// (added for the reservation tests; nothing above depends on it)

const BARRIER_CHANNEL = 'coordhub-test:barrier';

// Subscribes, on a connection of its own to the Redis on `port`, to
// `channels` (and a private barrier channel) and records every message with
// its arrival time (Date.now(), comparable with Redis server time on this
// machine). barrier() publishes a marker on the barrier channel and waits
// for it: Redis delivers to one subscriber in publish order, so every
// message published before barrier() was called has been recorded when it
// resolves. mark()/count(since, channel)/since(since, channel) count per
// phase.
export async function pubsubRecorder(port, channels) {
  const c = await RespClient.connect(port);
  const messages = []; // {t, channel, payload}
  const waiting = new Map();
  c.onPush = (v) => {
    if (!Array.isArray(v) || v[0] !== 'message') return;
    if (v[1] === BARRIER_CHANNEL) {
      const f = waiting.get(v[2]);
      if (f) {
        waiting.delete(v[2]);
        f();
      }
      return;
    }
    messages.push({ t: Date.now(), channel: v[1], payload: v[2] });
  };
  await c.command(['SUBSCRIBE', ...channels, BARRIER_CHANNEL]);
  const rec = {
    messages,
    mark: () => messages.length,
    // A mark taken after a barrier: whatever was published before this
    // call (a previous test's release, say) has arrived and lies before it.
    async settledMark() {
      await rec.barrier();
      return messages.length;
    },
    since: (from = 0, channel) => messages.slice(from).filter((m) => channel === undefined || m.channel === channel),
    count: (from = 0, channel) => rec.since(from, channel).length,
    async barrier(timeoutMs = 5000) {
      const id = crypto.randomBytes(8).toString('hex');
      const seen = new Promise((resolve) => waiting.set(id, resolve));
      await redisCommand(port, ['PUBLISH', BARRIER_CHANNEL, id]);
      await withTimeout(seen, timeoutMs, `the barrier message on ${BARRIER_CHANNEL}`).finally(() => waiting.delete(id));
    },
    // Waits until at least `n` messages (on `channel`, if given) arrived
    // at or after index `from`; returns them.
    async waitCount(from, n, { channel, timeoutMs = 5000, what } = {}) {
      await waitUntil(() => rec.count(from, channel) >= n, {
        timeoutMs,
        intervalMs: 5,
        what: what || `${n} message(s)${channel ? ` on ${channel}` : ''}`,
      });
      return rec.since(from, channel);
    },
    get closed() {
      return c.closed;
    },
    close: () => c.close(),
  };
  await rec.barrier(); // every subscription is active once its marker comes back
  return rec;
}

// ---------------------------------------------------------------- fault and hostile-client helpers
// (added for faults-*.test.mjs and hostile.test.mjs; nothing above depends
// on it)

// Encodes one WebSocket frame exactly as told, valid or not. `payload`: a
// string or Buffer. `mask` (default true) masks it with `maskKey` (4 random
// bytes unless given). `length` overrides the declared payload length (the
// bytes sent are still `payload`); `lengthForm` 7, 16 or 64 forces how it
// is encoded (default: the shortest that fits). `fin` (default true), `rsv`
// (0-7) and `opcode` go into the first byte as they are.
export function wsFrame({ opcode = 0x1, payload = '', fin = true, rsv = 0, mask = true, maskKey, length, lengthForm } = {}) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const len = length ?? data.length;
  const form = lengthForm ?? (len < 126 ? 7 : len < 65536 ? 16 : 64);
  const head = [((fin ? 1 : 0) << 7) | ((rsv & 7) << 4) | (opcode & 0xf)];
  const m = mask ? 0x80 : 0;
  let ext = Buffer.alloc(0);
  if (form === 7) {
    head.push(m | len);
  } else if (form === 16) {
    head.push(m | 126);
    ext = Buffer.alloc(2);
    ext.writeUInt16BE(len);
  } else {
    head.push(m | 127);
    ext = Buffer.alloc(8);
    ext.writeBigUInt64BE(BigInt(len));
  }
  if (!mask) return Buffer.concat([Buffer.from(head), ext, data]);
  const key = maskKey ?? crypto.randomBytes(4);
  const body = Buffer.alloc(data.length);
  for (let i = 0; i < data.length; i++) body[i] = data[i] ^ key[i & 3];
  return Buffer.concat([Buffer.from(head), ext, key, body]);
}

// A WebSocket client over a bare TCP socket, for what `ws` refuses to send:
// it performs the upgrade itself, then sends whatever bytes it is given and
// parses the server's frames (text, close, ping, pong). `end` resolves once
// the TCP connection is gone, with {closeCode (null when no close frame
// came: "1006"), closeReason, frames, ms (from the first hostile byte, see
// markHostile(), to the close frame)}.
export class RawWs {
  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.upgraded = false;
    this.handshake = '';
    this.frames = []; // {opcode, fin, payload: Buffer}
    this.texts = []; // parsed JSON of text frames ({__raw} when not JSON)
    this.closeCode = null;
    this.closeReason = '';
    this.closeAt = null;
    this.hostileAt = null;
    this.tcpClosed = false;
    this.replyToClose = true;
    this.error = null;
    this.waiters = new Set();
    this.end = new Promise((resolve) => {
      sock.once('close', () => {
        this.tcpClosed = true;
        liveClients.delete(this);
        this._wake();
        resolve(this.result());
      });
    });
    sock.on('error', (e) => {
      this.error = e;
    });
    sock.on('data', (d) => this._onData(d));
    liveClients.add(this);
  }

  result() {
    return {
      closeCode: this.closeCode,
      closeReason: this.closeReason,
      tcpClosed: this.tcpClosed,
      frames: this.frames.length,
      texts: this.texts,
      ms: this.closeAt !== null && this.hostileAt !== null ? this.closeAt - this.hostileAt : null,
      error: this.error ? this.error.code || this.error.message : null,
    };
  }

  // Opens TCP to the hub and upgrades `path` (default /ws with a token for
  // `sub`). Resolves the RawWs once 101 has been read; rejects otherwise.
  static async open(hub, { sub, roles = [], path: p, timeoutMs = 10000, headers = {} } = {}) {
    const target = p ?? `/ws?token=${encodeURIComponent(hub.token(sub ?? userId(), roles))}`;
    const sock = await rawTcp(hub.port, { timeoutMs });
    const c = new RawWs(sock);
    const key = crypto.randomBytes(16).toString('base64');
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    sock.write(
      `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${hub.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
    );
    try {
      await c.waitUntil(() => c.upgraded || c.tcpClosed, timeoutMs, 'the 101 answer');
    } catch (e) {
      c.destroy();
      throw e;
    }
    if (!c.upgraded) throw new Error(`upgrade refused: ${JSON.stringify(c.handshake.slice(0, 300))}`);
    return c;
  }

  _wake() {
    for (const w of [...this.waiters]) w();
  }

  _onData(d) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    if (!this.upgraded) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0) {
        this.handshake = this.buf.toString('latin1');
        return;
      }
      this.handshake = this.buf.toString('latin1', 0, end);
      if (!/^HTTP\/1\.1 101/.test(this.handshake)) {
        this._wake();
        return;
      }
      this.upgraded = true;
      this.buf = this.buf.subarray(end + 4);
    }
    for (;;) {
      const f = parseServerFrame(this.buf);
      if (!f) break;
      this.buf = this.buf.subarray(f.size);
      this.frames.push(f);
      if (f.opcode === 0x1) {
        const text = f.payload.toString('utf8');
        let msg;
        try {
          msg = JSON.parse(text);
        } catch {
          msg = { __raw: text };
        }
        this.texts.push(hideOffset(msg));
      } else if (f.opcode === 0x8 && this.closeCode === null) {
        this.closeAt = Date.now();
        this.closeCode = f.payload.length >= 2 ? f.payload.readUInt16BE(0) : 1005;
        this.closeReason = f.payload.subarray(2).toString('utf8');
        // Answer the close as a well-behaved client would (the hub then
        // ends TCP at once instead of waiting for the reply).
        if (this.replyToClose && !this.sock.destroyed) {
          const p = Buffer.alloc(2);
          p.writeUInt16BE(this.closeCode === 1005 ? 1000 : this.closeCode);
          this.sock.write(wsFrame({ opcode: 0x8, payload: p }));
        }
      }
    }
    this._wake();
  }

  // Resolves when `pred()` holds; rejects after `ms`.
  waitUntil(pred, ms = 5000, what = 'a condition') {
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
        reject(new Error(`raw client: timed out after ${ms} ms waiting for ${what}; frames: ${this.describe()}`));
      }, ms);
      this.waiters.add(w);
    });
  }

  // Waits for a text frame whose JSON has event `event`.
  waitEvent(event, ms = 5000) {
    return this.waitUntil(() => this.texts.some((t) => t.event === event) || this.tcpClosed, ms, `event ${event}`).then(() => {
      const t = this.texts.find((x) => x.event === event);
      if (!t) throw new Error(`raw client closed (code ${this.closeCode}) before event ${event}; frames: ${this.describe()}`);
      return t;
    });
  }

  // Waits for the close frame and the end of the TCP connection.
  async waitEnd(ms = 10000) {
    return withTimeout(this.end, ms, `the hub to close the raw connection (close frame so far: ${this.closeCode})`);
  }

  describe() {
    return JSON.stringify(
      this.frames.slice(-8).map((f) => ({ op: f.opcode, fin: f.fin, len: f.payload.length, text: f.opcode === 1 || f.opcode === 8 ? f.payload.toString('utf8').slice(0, 120) : undefined })),
    );
  }

  markHostile() {
    if (this.hostileAt === null) this.hostileAt = Date.now();
  }

  write(buf) {
    this.sock.write(buf);
  }

  // Sends a frame built by wsFrame(opts).
  sendFrame(opts) {
    this.sock.write(wsFrame(opts));
  }

  // The usual client close: a masked close frame with `code`.
  sendClose(code = 1000) {
    const p = Buffer.alloc(2);
    p.writeUInt16BE(code);
    this.sendFrame({ opcode: 0x8, payload: p });
  }

  destroy() {
    this.sock.destroy();
  }

  terminate() {
    this.destroy();
  }
}

// Parses one unmasked server frame at the start of `buf`: {opcode, fin,
// payload, size} or null when incomplete.
function parseServerFrame(buf) {
  if (buf.length < 2) return null;
  const fin = (buf[0] & 0x80) !== 0;
  const opcode = buf[0] & 0x0f;
  const masked = (buf[1] & 0x80) !== 0;
  let len = buf[1] & 0x7f;
  let off = 2;
  if (len === 126) {
    if (buf.length < 4) return null;
    len = buf.readUInt16BE(2);
    off = 4;
  } else if (len === 127) {
    if (buf.length < 10) return null;
    len = Number(buf.readBigUInt64BE(2));
    off = 10;
  }
  let key = null;
  if (masked) {
    if (buf.length < off + 4) return null;
    key = buf.subarray(off, off + 4);
    off += 4;
  }
  if (buf.length < off + len) return null;
  let payload = Buffer.from(buf.subarray(off, off + len));
  if (key) for (let i = 0; i < payload.length; i++) payload[i] ^= key[i & 3];
  return { opcode, fin, payload, size: off + len };
}

// A bare TCP connection to the hub (no bytes sent), with no Nagle delay so
// that each write leaves as its own segment. Tracked for cleanup.
export function rawTcp(port, { timeoutMs = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.setNoDelay(true);
    const entry = { terminate: () => sock.destroy() };
    liveClients.add(entry);
    sock.once('close', () => liveClients.delete(entry));
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`TCP connect to 127.0.0.1:${port} timed out`));
    }, timeoutMs);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.removeListener('error', reject);
      resolve(sock);
    });
    sock.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

// Number of open file descriptors of the hub process (/proc/<pid>/fd).
export function hubFdCount(hub) {
  return fs.readdirSync(`/proc/${hub.pid}/fd`).length;
}

// Samples the hub's RSS every `intervalMs` until stop(); stop() returns
// {max, last, samples} in bytes.
export function rssSampler(hub, intervalMs = 100) {
  let max = hub.rssBytes();
  let last = max;
  let samples = 1;
  const timer = setInterval(() => {
    try {
      last = hub.rssBytes();
      samples++;
      if (last > max) max = last;
    } catch {
      /* the hub is gone */
    }
  }, intervalMs);
  return {
    get max() {
      return max;
    },
    stop() {
      clearInterval(timer);
      try {
        last = hub.rssBytes();
        if (last > max) max = last;
      } catch {
        /* gone */
      }
      return { max, last, samples };
    },
  };
}

// Many lightweight native WebSocket clients (raw `ws`, no per-message
// bookkeeping beyond what `onMessage` does): fleet clients are
// {i, sub, ws, open, closeInfo, received}. `subOf(i)` names each user;
// `roles`, `join` (a room joined after open, acknowledged before this
// resolves). Connects `concurrency` at a time; rejects on the first
// client that cannot connect, unless `tolerate` (then it is retried up to
// `retries` times, 100 ms apart, and `failures` counts the attempts that
// failed). onMessage(client, msg) sees every parsed message;
// onClose(client, code) every close.
export async function openFleet(
  hub,
  n,
  { subOf = (i) => `fleet${i}`, roles = [], join: room, concurrency = 100, timeoutMs = 30000, onMessage, onClose, retries = 0, port } = {},
) {
  const clients = [];
  const stats = { failures: 0, errors: [] };
  const p = port ?? hub.port;
  const connectOne = (i) =>
    new Promise((resolve, reject) => {
      const sub = subOf(i);
      const url = `ws://127.0.0.1:${p}/ws?token=${encodeURIComponent(hub.token(sub, roles))}`;
      const ws = new WebSocket(url, { handshakeTimeout: timeoutMs, perMessageDeflate: false });
      const c = { i, sub, ws, open: false, closeInfo: null, received: 0, terminate: () => ws.terminate() };
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error(`fleet client ${i} did not open within ${timeoutMs} ms`));
      }, timeoutMs + 1000);
      let joined = !room;
      ws.on('message', (data, isBinary) => {
        if (isBinary) return;
        c.received++;
        let msg;
        try {
          msg = JSON.parse(data.toString('utf8'));
        } catch {
          msg = { __raw: data.toString('utf8') };
        }
        if (!joined && msg.event === 'joined') {
          joined = true;
          clearTimeout(timer);
          resolve(c);
          return;
        }
        if (!joined && msg.event === 'error') {
          clearTimeout(timer);
          reject(new Error(`fleet client ${i}: join ${room} refused: ${JSON.stringify(msg.data)}`));
          return;
        }
        if (onMessage) onMessage(c, msg);
      });
      ws.on('open', () => {
        c.open = true;
        liveClients.add(c);
        if (room) ws.send(JSON.stringify({ op: 'join', room }));
        else {
          clearTimeout(timer);
          resolve(c);
        }
      });
      ws.on('close', (code, reason) => {
        c.closeInfo = { code, reason: reason.toString() };
        liveClients.delete(c);
        if (onClose) onClose(c, code);
      });
      ws.on('error', (e) => {
        if (!c.open) {
          clearTimeout(timer);
          reject(e);
        }
      });
    });
  const attempt = async (i) => {
    for (let k = 0; ; k++) {
      try {
        return await connectOne(i);
      } catch (e) {
        stats.failures++;
        if (stats.errors.length < 10) stats.errors.push(`${i}: ${e.message}`);
        if (k >= retries) throw e;
        await sleep(100);
      }
    }
  };
  let next = 0;
  const workers = Array.from({ length: Math.min(concurrency, n) }, async () => {
    while (next < n) {
      const i = next++;
      clients[i] = await attempt(i);
    }
  });
  await Promise.all(workers);
  clients.stats = stats;
  return clients;
}

// Closes every fleet client without a close handshake.
export function terminateFleet(clients) {
  for (const c of clients) if (c) c.ws.terminate();
}

// Publishes `tradestate` messages to the users in `users` (round robin) at
// about `ratePerSec`, each {steamId, token: 'flow', state: 'flow', msg:
// "<seq>"}, until stop(). A publish whose PUBLISH reply is >= 1 reached a
// subscriber (the hub): those are the ones that must be delivered. While
// Redis is unreachable it retries the connection every 100 ms. stop()
// resolves {sent, reachedHub, failed, log} where log[seq] = {user,
// receivers} (receivers -1: the PUBLISH itself failed).
export function publishFlow(redis, users, { ratePerSec = 200, batch = 20, channel = 'tradestate' } = {}) {
  const log = [];
  let stopped = false;
  let conn = null;
  let failed = 0;
  const interval = Math.max(5, Math.round((1000 * batch) / ratePerSec));
  const loop = (async () => {
    let next = 0;
    while (!stopped) {
      const t0 = Date.now();
      try {
        if (!conn || conn.closed) conn = await RespClient.connect(redis.port, { timeoutMs: 1000 });
        const cmds = [];
        const seqs = [];
        for (let k = 0; k < batch; k++) {
          const seq = log.length + seqs.length;
          const user = users[next++ % users.length];
          seqs.push({ seq, user });
          cmds.push(['PUBLISH', channel, JSON.stringify({ steamId: user, token: 'flow', state: 'flow', msg: String(seq) })]);
        }
        let replies;
        try {
          replies = await conn.pipeline(cmds, { timeoutMs: 3000 });
        } catch (e) {
          // Unknown whether they reached Redis: they count as failed, and
          // are not expected anywhere.
          for (const s of seqs) log.push({ user: s.user, receivers: -1 });
          failed += seqs.length;
          conn.close();
          conn = null;
          throw e;
        }
        for (const [k, s] of seqs.entries()) {
          const r = replies[k];
          log.push({ user: s.user, receivers: typeof r === 'number' ? r : -1 });
        }
      } catch {
        await sleep(100);
        continue;
      }
      const spent = Date.now() - t0;
      if (spent < interval) await sleep(interval - spent);
    }
  })();
  return {
    log,
    get sent() {
      return log.length;
    },
    async stop() {
      stopped = true;
      await loop;
      if (conn) conn.close();
      return {
        sent: log.length,
        reachedHub: log.filter((l) => l.receivers >= 1).length,
        notSubscribed: log.filter((l) => l.receivers === 0).length,
        failed,
        log,
      };
    },
  };
}

// Parses a Redis CLIENT LIST reply into [{id, name, flags, redir, ...}].
export function parseClientList(text) {
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((line) => {
      const o = {};
      for (const kv of line.trim().split(' ')) {
        const i = kv.indexOf('=');
        if (i > 0) o[kv.slice(0, i)] = kv.slice(i + 1);
      }
      return o;
    });
}

// ---------------------------------------------------------------- raw HTTP

// A raw HTTP/1.1 exchange over one socket : writes
// `head`, gives the server 200 ms to answer from the headers alone, then
// writes `body` in 64 KiB pieces, stopping at the first response byte.
export function rawHttp(port, head, body = Buffer.alloc(0), { timeoutMs = 10000 } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    let done = false;
    const errors = [];
    const finish = (why) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const text = buf.toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      const sep = text.indexOf('\r\n\r\n');
      const bodyText = sep >= 0 ? buf.subarray(sep + 4).toString('utf8') : '';
      let json;
      try {
        json = JSON.parse(bodyText);
      } catch {
        json = undefined;
      }
      resolve({ status: m ? Number(m[1]) : null, raw: text.slice(0, 500), body: bodyText, json, why, errors });
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const text = buf.toString('latin1');
      const sep = text.indexOf('\r\n\r\n');
      if (sep < 0) return;
      const cl = /\r\ncontent-length:\s*(\d+)/i.exec(text.slice(0, sep));
      if (cl && buf.length >= sep + 4 + Number(cl[1])) finish('complete');
    });
    sock.on('error', (e) => errors.push(e.code || e.message));
    sock.on('close', () => finish('closed'));
    sock.on('connect', async () => {
      sock.write(head);
      if (!body.length) return;
      await sleep(200);
      for (let off = 0; off < body.length; off += 65536) {
        if (done || buf.length) return;
        if (!sock.write(body.subarray(off, off + 65536))) {
          await new Promise((r) => {
            sock.once('drain', r);
            sock.once('close', r);
          });
        }
      }
    });
  });
}

// ---------------------------------------------------------------- nginx
// (added for socketio-nginx.test.mjs; nothing above depends on it)

export const NGINX_BIN = process.env.NGINX_BIN || '/usr/sbin/nginx';

// Why nginx cannot run here (a sentence for a test's `skip`), or null.
export function nginxMissing() {
  try {
    fs.accessSync(NGINX_BIN, fs.constants.X_OK);
    return null;
  } catch {
    return `nginx not installed (no executable ${NGINX_BIN}; Debian: apt-get install nginx, or set NGINX_BIN)`;
  }
}

// The uid/gid nginx runs as when this process is root: nobody's.
function unprivilegedIds() {
  let uid = 65534;
  let gid = 65534;
  try {
    const line = fs.readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('nobody:'));
    if (line) [uid, gid] = line.split(':').slice(2, 4).map(Number);
  } catch {
    /* the usual ids */
  }
  return { uid, gid };
}

// True when every directory above `dir` can be entered by anyone.
function worldTraversable(dir) {
  for (let d = path.dirname(dir); ; d = path.dirname(d)) {
    if ((fs.statSync(d).mode & 0o001) === 0) return false;
    if (d === path.dirname(d)) return true;
  }
}

// Starts nginx in the foreground (`nginx -p DIR -c DIR/nginx.conf -g
// 'daemon off;'`), never as root (as root, this process starts it as
// nobody), on a free loopback port, with the configuration rendered from
// `template` (a file under fixtures/, or an absolute path): {{PORT}},
// {{PREFIX}} (its directory: pid, temp paths, logs), {{SERVERS}} (one
// `server 127.0.0.1:PORT;` line per entry of `upstreams`, a hub or a port),
// {{BALANCE}} (`balance`; '' for round robin) and any of `vars`. Waits until
// its worker answers HTTP. The process is killed by cleanupAll() like every
// other. Returns {port, url, pid, proc, dir, conf, stderr(), accessLog(),
// dumpLogs(title), stop()}.
export async function startNginx({
  upstreams,
  template = 'nginx-sticky.conf.tmpl',
  balance = 'hash $remote_addr consistent;',
  vars = {},
  readyTimeoutMs = 10000,
} = {}) {
  const missing = nginxMissing();
  if (missing) throw new Error(missing);
  if (!Array.isArray(upstreams) || upstreams.length === 0) throw new Error('startNginx: no upstreams');
  const tmplPath = path.isAbsolute(template) ? template : path.join(here, 'fixtures', template);
  const tmpl = fs.readFileSync(tmplPath, 'utf8');
  const root = process.getuid?.() === 0;
  const ids = root ? unprivilegedIds() : null;
  // As nobody, nginx must be able to reach its directory.
  let dir = makeTmpDir('nginx-');
  if (root && !worldTraversable(dir)) {
    fs.rmSync(dir, { recursive: true, force: true });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coordhub-nginx-'));
  }
  tmpDirs.add(dir);
  if (root) fs.chownSync(dir, ids.uid, ids.gid);
  const conf = path.join(dir, 'nginx.conf');
  const servers = upstreams.map((u) => `        server 127.0.0.1:${typeof u === 'number' ? u : u.port};`).join('\n');

  let port;
  let proc = null;
  let err = '';
  const spawnOnce = async () => {
    port = await freePort();
    const values = { PORT: port, PREFIX: dir, SERVERS: servers, BALANCE: balance, ...vars };
    const text = tmpl.replace(/\{\{([A-Z0-9_]+)\}\}/g, (m, k) => {
      if (!(k in values)) throw new Error(`startNginx: ${tmplPath} uses {{${k}}}, which has no value`);
      return String(values[k]);
    });
    fs.writeFileSync(conf, text, { mode: 0o644 });
    err = '';
    const p = spawn(NGINX_BIN, ['-p', `${dir}/`, '-c', conf, '-g', 'daemon off;'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: dir,
      // a process group of its own: the workers die with the master
      detached: true,
      ...(root ? { uid: ids.uid, gid: ids.gid } : {}),
    });
    // Every kill (cleanupAll's and the exit backstop's included) goes to
    // the whole group: a worker whose master is SIGKILLed would otherwise
    // live on, holding the port.
    const rawKill = p.kill.bind(p);
    p.kill = (sig = 'SIGTERM') => {
      try {
        process.kill(-p.pid, sig);
        return true;
      } catch {
        return rawKill(sig);
      }
    };
    trackProc(p);
    const onOut = (d) => {
      err += d.toString();
      if (err.length > 1 << 20) err = err.slice(-(1 << 19));
    };
    p.stdout.on('data', onOut);
    p.stderr.on('data', onOut);
    p.on('error', (e) => {
      err += `spawn error: ${e.message}\n`;
    });
    proc = p;
    await waitUntil(
      async () => {
        if (p.exitCode !== null || p.signalCode !== null) {
          throw Object.assign(new Error(`nginx exited (${p.exitCode ?? p.signalCode}): ${err.slice(-2000)}`), {
            fatal: true,
          });
        }
        const r = await httpGet(`http://127.0.0.1:${port}/__nginx_ready`, { timeoutMs: 1000 });
        return r.status > 0; // any answer: its worker is serving
      },
      { timeoutMs: readyTimeoutMs, intervalMs: 50, what: `nginx on port ${port} to answer HTTP` },
    ).catch(async (e) => {
      await killAndWait(p);
      throw e;
    });
  };
  // The free port can be taken between probing and binding: try a few.
  for (let attempt = 0; ; attempt++) {
    try {
      await spawnOnce();
      break;
    } catch (e) {
      if (attempt >= 2 || !/in use|bind\(\)/i.test(err)) throw e;
    }
  }

  const accessLog = () => {
    try {
      return fs.readFileSync(path.join(dir, 'access.log'), 'utf8');
    } catch {
      return '';
    }
  };
  return {
    get port() {
      return port;
    },
    get url() {
      return `http://127.0.0.1:${port}`;
    },
    get pid() {
      return proc.pid;
    },
    proc,
    dir,
    conf,
    stderr: () => err,
    accessLog,
    // The tails of its error output and access log, on stderr.
    dumpLogs(title, maxLines = 60) {
      const tail = (s) => s.split('\n').slice(-maxLines).join('\n');
      process.stderr.write(
        `\n----- nginx pid ${proc.pid} port ${port} after failure of "${title}": stderr -----\n${tail(err)}\n` +
          `----- nginx access log, last ${maxLines} lines -----\n${tail(accessLog())}\n----- end of nginx logs -----\n`,
      );
    },
    // SIGTERM (nginx's fast shutdown: the master stops its workers and
    // waits for them), then SIGKILL to the group after `ms`.
    async stop(ms = 5000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const done = exitPromise(proc);
      proc.kill('SIGTERM');
      await withTimeout(done, ms, 'nginx to stop').catch(() => killAndWait(proc));
    },
  };
}
