// The HTTP matrix (issue 13): every method (the seven usual ones, TRACE,
// CONNECT and unknown ones) x every route family (static files, /healthz,
// /readyz, /metrics, /ws without an upgrade, /socket.io/ with and without
// its query, each /v1/ route, unknown paths) x every kind of token (none, a
// bad one, a valid one of each role) x every body shape (none,
// Content-Length: 0, 1 byte, small valid JSON, small invalid JSON, chunked,
// over 1 MiB, shorter than declared then closed), over raw TCP so that the
// bytes are exactly ours, against one hub and one Redis.
//
// For each request: the documented answer (SPEC §6, README), or, where the
// documents are silent, the class of answer that is sound (see EXPECTATIONS
// below); exactly one response to one request (a GET /healthz pipelined
// behind it is answered next, or the connection is closed cleanly); the
// state behind the route changed only by a 2xx that is allowed to change it
// (checked in Redis: each case has a lock, an app and a config key of its
// own); and the hub keeps serving (a GET /healthz on a fresh connection
// after every few requests, /healthz and /readyz at the end, no Redis key
// that no request should have made).
//
// A hub that dies is restarted; the request that killed it is found by
// replaying the suspects one at a time (it must kill a fresh hub twice), and
// the failure names it with its exact bytes and the sanitizer's report; the
// rest of the matrix skips that crash's signature, and the harness's
// after() hook fails the file too. A request that hangs costs a deadline
// but not a slot; after two hangs of one kind the rest of that kind is
// skipped (and reported). Each problem names the method, the path, the
// token and the body shape, grouped over tokens, with the exact bytes of
// one example. COORDHUB_MATRIX_ONLY=<regex> runs a subset (see allCases).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before } from 'node:test';
import { makeTmpDir, makeToken, sleep, startHub, startRedis, test, withTimeout } from './harness.mjs';

const REQ_TIMEOUT_MS = 8000; // the first answer of every exchange
const CONCURRENCY = 6; // requests being worked on at once
const STALL_MS = 500; // a request silent this long stops holding a slot...
const MAX_STALLED = 300; // ...up to this many (a hang costs a deadline, not a slot)
const HEALTH_EVERY = 16; // a fresh-connection /healthz after every this many requests
const MAX_CRASHES = 6; // then the matrix stops
const BIG_HEAD_WAIT_MS = 1000; // an answer to the head of an oversized request, before its body is sent
const FOLLOW_UP_TIMEOUT_MS = 5000; // then the answer to the GET /healthz pipelined behind it
const BUDGET_MS = 90000; // no new request after this (ctest gives the file 120 s)
const MIB = 1024 * 1024;
const INDEX_HTML = '<!doctype html><title>matrix</title><p>static file of --web-root</p>\n';

let redis;
let hub;
let rc;
let webRoot;
let secret;

before(async () => {
  redis = await startRedis();
  webRoot = makeTmpDir('web-root-');
  fs.writeFileSync(path.join(webRoot, 'index.html'), INDEX_HTML);
  secret = crypto.randomBytes(16).toString('hex');
  hub = await startHub({ redisUrl: redis.url, secret, extraArgs: ['--web-root', webRoot] });
  rc = await redis.client();
});

after(() => {
  if (webRoot) fs.rmSync(webRoot, { recursive: true, force: true });
});

// ------------------------------------------------------------------ the axes

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT', 'FOO', 'BREW'];
const ODD_METHODS = new Set(['TRACE', 'CONNECT', 'FOO', 'BREW']); // no route of the hub uses them
const SAFE = new Set(['GET', 'HEAD']);
const HAS_LENGTH_RULE = new Set(['POST', 'PUT', 'PATCH']); // 411 without Content-Length (README, locks)

const TOKENS = [
  { id: 'none', valid: false }, // no Authorization header
  { id: 'bad', valid: false }, // signed with another secret, every role claimed
  { id: 'role-none', valid: true, roles: [] },
  { id: 'service', valid: true, roles: ['service'] },
  { id: 'admin', valid: true, roles: ['admin'] },
  { id: 'ops', valid: true, roles: ['ops'] },
];

const minted = new Map();
function bearer(tok) {
  if (tok.id === 'none') return null;
  if (!minted.has(tok.id)) {
    minted.set(
      tok.id,
      tok.id === 'bad'
        ? makeToken({ sub: 'mx-bad', roles: ['service', 'admin', 'ops'], secret: 'not-the-hub-secret' })
        : makeToken({ sub: `mx-${tok.id}`, roles: tok.roles, ttl: 3600, secret }),
    );
  }
  return minted.get(tok.id);
}

const SHAPES = ['none', 'cl0', 'one', 'json', 'badjson', 'chunked', 'big', 'short'];

// Per-case resources, so that cases never share state: lock mx:L<rid>
// (held with a known token except for POST, which finds it free),
// app mxr<rid> (asset a1 reserved), config key mx.c<rid> (version 1).
const lockName = (rid) => `mx:L${rid}`;
const lockToken = (rid) => crypto.createHash('md5').update(`mx-lock-${rid}`).digest('hex');
const appId = (rid) => `mxr${rid}`;
const cfgKey = (rid) => `mx.c${rid}`;
const FENCE = (name) => `coordhub:fence:{${name}}`;
const RKEY = (app, asset) => `reserved:{${app}}:${asset}`;
const RIDX = (app) => `reserved:{${app}}`;
const STORE = 'configuration-store';
const PRE_TTL_MS = 120000;
const cfgDoc0 = (rid) => JSON.stringify({ value: `v0-${rid}`, category: 'mxpre', version: 1, updatedAt: 1 });
const resv0 = (rid) => JSON.stringify({ owner: 'mxpre', reserved_at_ms: 1, expires_at_ms: 4102444800000 + rid });

// Route families. `v1`: under /v1/ (authenticated API). For the public ones,
// `get` is the answer to GET and `other` to POST/PUT/PATCH/DELETE.
const ROUTES = [
  { id: 'static-root', tpl: '/', target: () => '/', get: [200], other: [404, 405] },
  { id: 'static-file', tpl: '/index.html', target: () => '/index.html', get: [200], other: [404, 405] },
  { id: 'healthz', tpl: '/healthz', target: () => '/healthz', get: [200], other: [405] },
  { id: 'readyz', tpl: '/readyz', target: () => '/readyz', get: [200], other: [405] },
  { id: 'metrics', tpl: '/metrics', target: () => '/metrics', get: [200], other: [405] },
  { id: 'ws', tpl: '/ws', target: () => '/ws', get: [400, 404, 426], other: [400, 404, 405, 426] },
  { id: 'sio', tpl: '/socket.io/', target: () => '/socket.io/', get: [400], other: [400, 405], sio: true },
  {
    id: 'sio-polling',
    tpl: '/socket.io/?EIO=4&transport=polling',
    target: () => '/socket.io/?EIO=4&transport=polling',
    get: [200], // Engine.IO's handshake: a new polling session
    head: [400], // a handshake must be a GET: {"code":2}, as the reference server
    other: [400, 405],
    sio: true,
  },
  {
    id: 'sio-websocket',
    tpl: '/socket.io/?EIO=4&transport=websocket',
    target: () => '/socket.io/?EIO=4&transport=websocket',
    get: [400],
    other: [400, 405],
    sio: true,
  },
  { id: 'unknown', tpl: '/anything', target: () => '/anything', get: [404], other: [404, 405] },
  { id: 'lock', tpl: '/v1/locks/{name}', target: (rid) => `/v1/locks/${lockName(rid)}`, v1: true },
  { id: 'resv-app', tpl: '/v1/reservations/{appId}', target: (rid) => `/v1/reservations/${appId(rid)}`, v1: true },
  {
    id: 'resv-asset',
    tpl: '/v1/reservations/{appId}/{assetId}',
    target: (rid) => `/v1/reservations/${appId(rid)}/a1`,
    v1: true,
  },
  { id: 'config-bare', tpl: '/v1/config', target: () => '/v1/config', v1: true },
  { id: 'config-cat', tpl: '/v1/config?category=x', target: () => '/v1/config?category=mxcat', v1: true },
  { id: 'config-key', tpl: '/v1/config/{key}', target: (rid) => `/v1/config/${cfgKey(rid)}`, v1: true },
  { id: 'hubs', tpl: '/v1/hubs', target: () => '/v1/hubs', v1: true },
  { id: 'v1-unknown', tpl: '/v1/nope', target: () => '/v1/nope', v1: true },
];

// The small valid JSON body of each route: one that the route accepts, so
// that a request refused for another reason (token, role, framing) would
// visibly change state if it were let through.
function validJson(route, rid) {
  switch (route.id) {
    case 'lock':
      return JSON.stringify({ ttl_ms: 300000, wait_ms: 0, owner: 'mx', token: lockToken(rid) });
    case 'resv-app':
    case 'resv-asset':
      return JSON.stringify({ assets: ['b1'], ttl_s: 600, owner: 'mx' });
    case 'config-key':
    case 'config-bare':
    case 'config-cat':
      return JSON.stringify({ value: { n: rid }, category: 'mxw' });
    default:
      return JSON.stringify({ probe: true, ttl_ms: 1000 });
  }
}

// ------------------------------------------------------------------ EXPECTATIONS
//
// Documented (SPEC §6, README): 401 without a valid token, 403 without the
// role, 400 bad input, 404 unknown path / unreserved asset / unknown key,
// 411 for POST/PUT/PATCH without Content-Length, 413 over 1 MiB, /healthz,
// /readyz, /metrics 200 on GET, static files 200 on GET, other paths 404,
// /socket.io/ polling: GET opens a session (200, the open packet), other
// methods 400 {"code":2,...}; 405 for a method a /v1/ route
// does not have (locks, config tests).
//
// Chosen here (not documented; the sound class of answer):
// - Public routes answer the same whatever the token.
// - HEAD: what GET answers, or 405 (or 403 where the route wants role
//   service for anything but GET); never a body (RFC 9110 §9.3.2).
// - OPTIONS: what the other methods get, or 200/204 (an Allow answer).
// - TRACE, CONNECT, FOO, BREW: 400, 403 (libwebsockets' own page), 405 or
//   501, or a clean close; promptly in any case; never a 2xx.
// - /ws without an upgrade: 400, 404 or 426; /socket.io/ without a query or
//   with transport=websocket but no upgrade: 400 with an Engine.IO error
//   object {code, message}, as the reference server answers.
// - Non-GET on a static file: 404 (README: "or 404") or 405.
// - Which refusal wins when several apply (401 vs 411/413, 403 vs 405):
//   either, as long as it is a refusal.
// - A route that takes no body (GET, DELETE of an asset) may ignore a
//   well-framed body or refuse it with 400.
// - Framing: chunked ("request bodies need Content-Length") gets 411, 400,
//   a refusal that needs no body, or a clean close; over 1 MiB gets 413 or a
//   refusal that needs no body; a body shorter than declared then closed
//   gets 400, such a refusal, or a clean close. In none of the three may a
//   request change state; a safe method (GET, HEAD) may still get its
//   normal answer. Either way, nothing may follow the one response.
// - A request pipelined behind a well-framed one (RFC 9112 §9.3.2) gets its
//   own answer, or the connection is closed after the first answer.
// - GET /v1/config with no category: 400 or 404.

const uniq = (xs) => [...new Set(xs)].sort((a, b) => a - b);

// The refusal/answer of a /v1/ route that does not depend on the body, or
// {body: true} when the body decides (a write with the role it needs).
function apiSemantic(method, route, tok) {
  if (!tok.valid) return { fixed: route.id === 'v1-unknown' ? [401, 404] : [401] };
  const r = new Set(tok.roles);
  const svc = r.has('service');
  const readOk = svc || (r.has('ops') && SAFE.has(method));
  const options = (xs) => (method === 'OPTIONS' ? uniq([...xs, 204]) : xs);
  // HEAD: GET's answer, or what a method the route lacks gets (405, or 403
  // where the route wants role service for anything but GET)
  const headOf = (xs, roleRefusal) => uniq([...xs, 405, ...(roleRefusal ? [403] : [])]);
  switch (route.id) {
    case 'lock':
      if (method === 'GET') return { fixed: readOk ? [200] : [403] };
      if (method === 'HEAD') return { fixed: headOf(readOk ? [200] : [403], !svc) };
      if (['POST', 'PATCH', 'DELETE'].includes(method)) return svc ? { body: true } : { fixed: [403] };
      return { fixed: options(svc ? [405] : [403, 405]) };
    case 'resv-app':
      if (method === 'GET') return { fixed: readOk ? [200] : [403] };
      if (method === 'HEAD') return { fixed: headOf(readOk ? [200] : [403], !svc) };
      if (method === 'POST') return svc ? { body: true } : { fixed: [403] };
      return { fixed: options(readOk ? [405] : [403, 405]) };
    case 'resv-asset':
      if (method === 'DELETE') return { fixed: svc ? [200] : [403] };
      if (method === 'HEAD') return { fixed: headOf([], !svc) };
      return { fixed: options(readOk ? [405] : [403, 405]) };
    case 'config-bare':
    case 'config-cat': {
      const get = route.id === 'config-cat' ? [200] : [400, 404];
      if (method === 'GET') return { fixed: get };
      if (method === 'HEAD') return { fixed: headOf(get, false) };
      return { fixed: options(r.has('admin') ? [405] : [403, 405]) };
    }
    case 'config-key':
      if (method === 'GET') return { fixed: [200] };
      if (method === 'HEAD') return { fixed: headOf([200], false) };
      if (method === 'PUT') return r.has('admin') ? { body: true } : { fixed: [403] };
      return { fixed: options(r.has('admin') ? [405] : [403, 405]) };
    case 'hubs': {
      // GET /v1/hubs, role ops (SPEC §11): the role first, then the method
      const ops = r.has('ops');
      if (method === 'GET') return { fixed: ops ? [200] : [403] };
      if (method === 'HEAD') return { fixed: headOf(ops ? [200] : [403], !ops) };
      return { fixed: options(ops ? [405] : [403]) };
    }
    case 'v1-unknown':
      return { fixed: [404, 405] };
    default:
      throw new Error(`no API semantics for ${route.id}`);
  }
}

// {statuses, closeOk, why}: the acceptable answers of one case. `why` says
// whether the expectation is documented or chosen here.
function expected(c) {
  const { method, route, tok, shape } = c;
  if (ODD_METHODS.has(method)) return { statuses: [400, 403, 405, 501], closeOk: true, why: 'chosen: unsupported method' };
  const noStateChange2xx = (xs) => xs.filter((s) => s < 200 || s > 299 || SAFE.has(method));
  if (!route.v1) {
    let base;
    if (method === 'GET') base = route.get;
    else if (method === 'HEAD') base = route.head ?? uniq([...route.get, 405]);
    else if (method === 'OPTIONS') base = uniq([...route.other, 200, 204]);
    else base = route.other;
    if (shape === 'chunked') return { statuses: uniq([...base, 411, 400]), closeOk: true, why: 'chosen: chunked' };
    // (/socket.io/ refuses an unframeable body in Engine.IO's words: 400)
    if (shape === 'big') return { statuses: uniq([...base, 413, ...(route.sio ? [400] : [])]), closeOk: false, why: 'documented 413, or the answer without the body' };
    if (shape === 'short') return { statuses: uniq([...base, 400]), closeOk: true, why: 'chosen: short body then close' };
    return { statuses: base, closeOk: false, why: 'documented/chosen route answer (body ignored)' };
  }
  const sem = apiSemantic(method, route, tok);
  if (sem.body) {
    switch (shape) {
      case 'none':
        return { statuses: HAS_LENGTH_RULE.has(method) ? [411] : [400, 411], closeOk: false, why: 'documented 411 / 400' };
      case 'cl0':
      case 'one':
      case 'badjson':
        return { statuses: [400], closeOk: false, why: 'documented 400 (body not a valid JSON object)' };
      case 'json':
        return { statuses: [200], closeOk: false, why: 'documented 200' };
      case 'chunked':
        return { statuses: [400, 411], closeOk: true, why: 'documented 411, or close' };
      case 'big':
        return { statuses: [413], closeOk: false, why: 'documented 413' };
      case 'short':
        return { statuses: [400], closeOk: true, why: 'chosen: 400 or close' };
    }
  }
  const f = sem.fixed;
  const has2xx = f.some((s) => s >= 200 && s <= 299);
  switch (shape) {
    case 'none':
      return { statuses: HAS_LENGTH_RULE.has(method) ? uniq([...f, 411]) : f, closeOk: false, why: 'documented/chosen' };
    case 'cl0':
      return { statuses: f, closeOk: false, why: 'documented/chosen' };
    case 'one':
    case 'json':
    case 'badjson':
      return { statuses: has2xx ? uniq([...f, 400]) : f, closeOk: false, why: 'documented/chosen (body ignored or refused)' };
    case 'chunked':
      return { statuses: uniq([...noStateChange2xx(f), 411, 400]), closeOk: true, why: 'chosen: chunked' };
    case 'big':
      return { statuses: uniq([...noStateChange2xx(f), 413]), closeOk: false, why: 'documented 413' };
    case 'short':
      return { statuses: uniq([...noStateChange2xx(f), 400]), closeOk: true, why: 'chosen: short body then close' };
  }
  throw new Error(`no expectation for shape ${shape}`);
}

// Whether a 2xx to this case is a write that changes the route's state.
function isWrite(c) {
  if (!c.route.v1 || ODD_METHODS.has(c.method)) return false;
  switch (c.route.id) {
    case 'lock':
      return ['POST', 'PATCH', 'DELETE'].includes(c.method);
    case 'resv-app':
      return c.method === 'POST';
    case 'resv-asset':
      return c.method === 'DELETE';
    case 'config-key':
      return c.method === 'PUT';
    default:
      return false;
  }
}

// ------------------------------------------------------------------ requests

const bigBodies = new Map(); // JSON text -> padded Buffer over 1 MiB (a shared prefix per route)

function buildRequest(c, port) {
  const target = c.route.target(c.rid);
  const auth = bearer(c.tok);
  const json = validJson(c.route, c.rid);
  let head = `${c.method} ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n`;
  if (auth) head += `Authorization: Bearer ${auth}\r\n`;
  let body = Buffer.alloc(0);
  let mode = 'plain';
  const withBody = (b) => {
    body = Buffer.from(b);
    head += `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n`;
  };
  switch (c.shape) {
    case 'none':
      break;
    case 'cl0':
      head += 'Content-Length: 0\r\n';
      break;
    case 'one':
      withBody('x');
      break;
    case 'json':
      withBody(json);
      break;
    case 'badjson':
      withBody(json.slice(0, Math.ceil(json.length / 2)));
      break;
    case 'chunked':
      head += 'Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n';
      body = Buffer.from(`${json.length.toString(16)}\r\n${json}\r\n0\r\n\r\n`);
      break;
    case 'big': {
      // valid JSON padded with spaces: only its size is wrong
      let b = bigBodies.get(json);
      if (!b) {
        b = Buffer.alloc(MIB + 4096, 0x20);
        b.write(json);
        bigBodies.set(json, b);
      }
      body = b;
      head += `Content-Type: application/json\r\nContent-Length: ${b.length}\r\n`;
      mode = 'big';
      break;
    }
    case 'short':
      // declares 16 bytes more than the valid JSON it sends, then FIN
      body = Buffer.from(json);
      head += `Content-Type: application/json\r\nContent-Length: ${body.length + 16}\r\n`;
      mode = 'short';
      break;
  }
  head += '\r\n';
  return { head, body, mode, target };
}

// Human-readable bytes of a request (the big body abbreviated), for reports.
function showBytes(c, port = hub.port) {
  const { head, body } = buildRequest(c, port);
  const b = body.length > 200 ? `<${body.length} bytes: ${JSON.stringify(body.subarray(0, 80).toString())} + spaces>` : JSON.stringify(body.toString());
  const tail = { short: ' then FIN', big: ' (the head alone first; the body after 1 s without an answer)' }[c.shape] ?? ` + ${JSON.stringify(FOLLOW_UP)}, in one write`;
  return `${JSON.stringify(head)} + body ${b}${tail}`;
}

// Parses one response at `off`: {status, end, bodyText} or null if incomplete;
// {status, end: -1} when only the close can end it (no length given).
function parseResponse(buf, off, isHead) {
  const sep = buf.indexOf('\r\n\r\n', off);
  if (sep < 0) return null;
  const headText = buf.toString('latin1', off, sep);
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(headText);
  if (!m) return { status: null, end: -2, headText };
  const status = Number(m[1]);
  const start = sep + 4;
  if (isHead || status === 204 || status === 304 || status < 200) return { status, end: start, headText, bodyText: '' };
  const cl = /\r\ncontent-length:\s*(\d+)/i.exec(headText);
  if (cl) {
    const end = start + Number(cl[1]);
    if (buf.length < end) return null;
    return { status, end, headText, bodyText: buf.toString('utf8', start, end) };
  }
  if (/\r\ntransfer-encoding:\s*chunked/i.test(headText)) {
    const z = buf.indexOf('\r\n0\r\n\r\n', start - 2);
    if (z < 0) return null;
    return { status, end: z + 7, headText, bodyText: buf.toString('utf8', start, z) };
  }
  return { status, end: -1, headText, bodyText: buf.toString('utf8', start) };
}

const FOLLOW_UP = 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n';

// One request on a fresh connection, with a deadline. Plain and chunked
// shapes have a GET /healthz pipelined behind them in the same write: after
// the first response the next bytes must be exactly its 200, or the
// connection closes with nothing more. Resolves
// {status, headText, bodyText, outcome, stray, followUp, errors, ms}:
// outcome 'response' | 'close' (no response at all) | 'partial' (bytes that
// are no complete response, then close) | 'timeout'.
function exchange(c, port, onStall, timeoutMs = REQ_TIMEOUT_MS) {
  const { head, body, mode } = buildRequest(c, port);
  const isHead = c.method === 'HEAD';
  const t0 = performance.now();
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.setNoDelay(true);
    let buf = Buffer.alloc(0);
    let first = null; // the parsed first response
    let followSent = false;
    let done = false;
    const errors = [];
    const stallTimer = setTimeout(() => onStall && onStall(), STALL_MS);
    const finish = (outcome, extra = {}) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(stallTimer);
      sock.destroy();
      resolve({
        status: first ? first.status : null,
        headText: first ? first.headText : buf.toString('latin1', 0, 200),
        bodyText: first ? first.bodyText : '',
        outcome,
        bytes: buf.length,
        errors,
        ms: performance.now() - t0,
        ...extra,
      });
    };
    let timer = setTimeout(() => finish(first ? 'response' : 'timeout', first ? { followUp: 'timeout' } : {}), timeoutMs);
    const advance = (closed) => {
      if (!first) {
        const r = parseResponse(buf, 0, isHead);
        if (r === null || (r.end === -1 && !closed)) {
          if (closed) finish(buf.length ? 'partial' : 'close');
          return;
        }
        if (r.end === -2) return finish('partial');
        if (r.end === -1) r.end = buf.length;
        first = r;
        if (mode === 'big' || mode === 'short' || closed) {
          const rest = buf.subarray(first.end);
          return finish('response', { stray: rest.length ? rest.toString('latin1', 0, 200) : null, followUp: 'none' });
        }
        followSent = true;
        clearTimeout(timer);
        timer = setTimeout(() => finish('response', { followUp: 'timeout' }), FOLLOW_UP_TIMEOUT_MS);
      }
      if (followSent) {
        const rest = buf.subarray(first.end);
        if (rest.length === 0) {
          if (closed) finish('response', { stray: null, followUp: 'closed' });
          return;
        }
        if (!/^HTTP\/1\.1 200 /.test(rest.toString('latin1', 0, 13)) && rest.length >= 13) {
          return finish('response', { stray: rest.toString('latin1', 0, 200), followUp: 'stray' });
        }
        const r = parseResponse(rest, 0, false);
        if (r === null || r.end === -1) {
          if (closed) finish('response', { stray: rest.toString('latin1', 0, 200), followUp: 'stray' });
          return;
        }
        const after = rest.subarray(r.end);
        if (r.status === 200 && r.bodyText.includes('"ok"') && after.length === 0) {
          return finish('response', { stray: null, followUp: 'ok' });
        }
        return finish('response', { stray: rest.toString('latin1', 0, 200), followUp: 'stray' });
      }
    };
    sock.on('data', (d) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      advance(false);
    });
    sock.on('error', (e) => errors.push(e.code || e.message));
    sock.on('close', () => advance(true));
    sock.on('connect', async () => {
      // plain and chunked: the request and, pipelined in the same write, a
      // GET /healthz (RFC 9112 §9.3.2: a server answers pipelined requests
      // in order, or closes)
      if (mode === 'plain') return void sock.write(Buffer.concat([Buffer.from(head, 'latin1'), body, Buffer.from(FOLLOW_UP)]));
      if (mode === 'short') {
        sock.write(Buffer.concat([Buffer.from(head, 'latin1'), body]));
        return void sock.end();
      }
      // big: the head; a hub that answers from it alone (413, 401...) does
      // so within BIG_HEAD_WAIT_MS, before any body byte could make our
      // write fail (EPIPE) and lose its answer; else the body, 64 KiB at a
      // time, until an answer or a close.
      sock.write(head);
      const t = performance.now();
      while (!done && !buf.length && !sock.destroyed && performance.now() - t < BIG_HEAD_WAIT_MS) await sleep(5);
      for (let off = 0; off < body.length; off += 65536) {
        if (done || buf.length || sock.destroyed) return;
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

// GET /healthz on a fresh connection: true when it answers 200 in time.
async function healthz(port, timeoutMs = REQ_TIMEOUT_MS) {
  const r = await new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(null);
    }, timeoutMs);
    const done = (v) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    };
    sock.on('connect', () => sock.write(FOLLOW_UP));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const p = parseResponse(buf, 0, false);
      if (p && p.end !== -1) done(p.status);
    });
    sock.on('error', () => {});
    sock.on('close', () => done(null));
  });
  return r === 200;
}

// ------------------------------------------------------------------ state

// Sets the state each case starts from (one pipeline for many cases).
async function prepare(cases) {
  const cmds = [];
  for (const c of cases) {
    const rid = c.rid;
    switch (c.route.id) {
      case 'lock':
        cmds.push(['DEL', lockName(rid), FENCE(lockName(rid))]);
        if (c.method !== 'POST') cmds.push(['SET', lockName(rid), lockToken(rid), 'PX', String(PRE_TTL_MS)]);
        break;
      case 'resv-app':
      case 'resv-asset':
        cmds.push(['DEL', RKEY(appId(rid), 'a1'), RKEY(appId(rid), 'b1'), RIDX(appId(rid))]);
        cmds.push(['SET', RKEY(appId(rid), 'a1'), resv0(rid), 'PX', String(PRE_TTL_MS)]);
        cmds.push(['ZADD', RIDX(appId(rid)), String(4102444800000 + rid), 'a1']);
        break;
      case 'config-key':
        cmds.push(['DEL', `configuration:${cfgKey(rid)}`]);
        cmds.push(['HSET', STORE, cfgKey(rid), cfgDoc0(rid)]);
        break;
      default:
        break;
    }
  }
  for (let i = 0; i < cmds.length; i += 2000) {
    const replies = await rc.pipeline(cmds.slice(i, i + 2000), { timeoutMs: 20000 });
    const bad = replies.find((x) => x instanceof Error);
    if (bad) throw bad;
  }
}

// Checks the state behind the case's route against its answer: changed
// as the 2xx says, or untouched. Returns a list of problems.
async function checkState(c, r) {
  const rid = c.rid;
  const ok2xx = r.status !== null && r.status >= 200 && r.status <= 299 && isWrite(c);
  const probs = [];
  const say = (m) => probs.push(`state: ${m}`);
  switch (c.route.id) {
    case 'lock': {
      const name = lockName(rid);
      const [val, pttl, fence] = await rc.pipeline([['GET', name], ['PTTL', name], ['GET', FENCE(name)]]);
      if (c.method === 'POST') {
        if (ok2xx) {
          let tokenOut;
          try {
            tokenOut = JSON.parse(r.bodyText).token;
          } catch {
            /* reported by the body check */
          }
          if (val === null || val !== tokenOut) say(`acquired (200) but ${name} holds ${val}, answer token ${tokenOut}`);
        } else if (val !== null || fence !== null) say(`refused (${r.status ?? r.outcome}) yet ${name} = ${val}, fence = ${fence}`);
      } else if (ok2xx && c.method === 'DELETE') {
        if (val !== null) say(`released (200) but ${name} still holds ${val}`);
      } else if (ok2xx && c.method === 'PATCH') {
        if (val !== lockToken(rid) || !(pttl > PRE_TTL_MS)) say(`extended (200) but ${name} = ${val}, PTTL ${pttl}`);
      } else {
        if (val !== lockToken(rid)) say(`${name} should still hold its token, holds ${val}`);
        else if (!(pttl > 0 && pttl <= PRE_TTL_MS)) say(`${name} PTTL moved to ${pttl}`);
        if (fence !== null) say(`${FENCE(name)} = ${fence}: the hub acquired it`);
      }
      break;
    }
    case 'resv-app':
    case 'resv-asset': {
      const app = appId(rid);
      const [a1, b1, members] = await rc.pipeline([['GET', RKEY(app, 'a1')], ['GET', RKEY(app, 'b1')], ['ZRANGE', RIDX(app), '0', '-1']]);
      const wantA1 = !(ok2xx && c.route.id === 'resv-asset');
      const wantB1 = ok2xx && c.route.id === 'resv-app';
      if (wantA1 && a1 !== resv0(rid)) say(`${RKEY(app, 'a1')} should be untouched, is ${a1}`);
      if (!wantA1 && a1 !== null) say(`released (200) but ${RKEY(app, 'a1')} = ${a1}`);
      if (wantB1 !== (b1 !== null)) say(`${RKEY(app, 'b1')} = ${b1} after ${r.status ?? r.outcome}`);
      const wantMembers = [...(wantA1 ? ['a1'] : []), ...(wantB1 ? ['b1'] : [])];
      if (JSON.stringify([...members].sort()) !== JSON.stringify(wantMembers)) say(`${RIDX(app)} holds ${JSON.stringify(members)}, want ${JSON.stringify(wantMembers)}`);
      break;
    }
    case 'config-key': {
      const key = cfgKey(rid);
      const [doc, l2] = await rc.pipeline([['HGET', STORE, key], ['GET', `configuration:${key}`]]);
      if (ok2xx) {
        let d;
        try {
          d = JSON.parse(doc);
        } catch {
          /* below */
        }
        if (!d || d.version !== 2 || JSON.stringify(d.value) !== JSON.stringify({ n: rid })) say(`written (200) but the store holds ${doc}`);
      } else {
        if (doc !== cfgDoc0(rid)) say(`refused (${r.status ?? r.outcome}) yet the store holds ${doc}`);
        if (l2 !== null && l2 !== JSON.stringify(`v0-${rid}`)) say(`refused yet L2 configuration:${key} = ${l2}`);
      }
      break;
    }
    default:
      break;
  }
  return probs;
}

// ------------------------------------------------------------------ answers

const ERROR_CODES = { 400: 'bad_request', 401: 'unauthorized', 403: 'forbidden', 404: 'not_found', 405: 'method_not_allowed', 411: 'length_required', 413: 'too_large' };

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

// Checks the body of an accepted status. Returns a list of problems.
function checkBody(c, r) {
  const probs = [];
  const s = r.status;
  if (c.method === 'HEAD' || ODD_METHODS.has(c.method)) return probs; // no body / libwebsockets' own page
  const j = parseJson(r.bodyText);
  const say = (m) => probs.push(`body: ${m}: ${JSON.stringify(r.bodyText.slice(0, 160))}`);
  if (s >= 400) {
    if (c.route.sio) {
      if (!(j && Number.isInteger(j.code) && typeof j.message === 'string')) say(`not an Engine.IO error {code, message}`);
      // A body the hub cannot frame (chunked, over 1 MiB) is refused before
      // routing, in Engine.IO's words: 3 "Bad request".
      else if (['chunked', 'big'].includes(c.shape) && j.code === 3 && j.message === 'Bad request') return probs;
      else if (c.route.id === 'sio-polling' && c.method !== 'GET' && !(j.code === 2 && j.message === 'Bad handshake method')) say('polling: a handshake that is not a GET: {"code":2,"message":"Bad handshake method"}');
      return probs;
    }
    if (!(j && j.error && typeof j.error.code === 'string' && typeof j.error.message === 'string')) say(`not {"error":{"code","message"}}`);
    else if (ERROR_CODES[s] && j.error.code !== ERROR_CODES[s]) say(`code ${j.error.code} for ${s}, expected ${ERROR_CODES[s]}`);
    return probs;
  }
  if (s < 200 || s > 299) return probs;
  const rid = c.rid;
  switch (c.route.id) {
    case 'static-root':
    case 'static-file':
      if (r.bodyText !== INDEX_HTML) say('not index.html');
      break;
    case 'sio-polling':
      if (c.method === 'GET' && !/^0\{"sid":"[A-Za-z0-9_-]{20}","upgrades":\["websocket"\],/.test(r.bodyText)) say('GET: want the Engine.IO open packet');
      break;
    case 'metrics':
      if (!/^# (TYPE|HELP) coordhub_/m.test(r.bodyText) && !/^coordhub_/m.test(r.bodyText)) say('not Prometheus text');
      break;
    case 'lock':
      if (!j) say('not JSON');
      else if (c.method === 'GET') {
        if (j.held !== true || j.name !== lockName(rid) || r.bodyText.includes(lockToken(rid))) say('GET: want held:true, the name, never the token');
      } else if (c.method === 'POST') {
        if (!(j.name === lockName(rid) && /^[0-9a-f]{32}$/.test(j.token) && Number.isInteger(j.fence) && j.ttl_ms === 300000)) say('POST: want {name, token, fence, ttl_ms:300000}');
      } else if (c.method === 'PATCH') {
        if (!(j.name === lockName(rid) && j.ttl_ms === 300000)) say('PATCH: want {name, ttl_ms:300000}');
      } else if (c.method === 'DELETE') {
        if (!(j.name === lockName(rid) && j.released === true)) say('DELETE: want {name, released:true}');
      }
      break;
    case 'resv-app':
      if (!j) say('not JSON');
      else if (c.method === 'GET') {
        if (!(Array.isArray(j.assets) && j.assets.length === 1 && j.assets[0].asset === 'a1' && j.assets[0].owner === 'mxpre')) say('GET: want the one reserved asset a1');
      } else if (c.method === 'POST') {
        if (!(Array.isArray(j.reserved) && j.reserved.join() === 'b1' && Number.isInteger(j.expires_at_ms))) say('POST: want {reserved:["b1"], expires_at_ms}');
      }
      break;
    case 'resv-asset':
      if (!(j && j.asset === 'a1' && j.released === true)) say('DELETE: want {app, asset:"a1", released:true}');
      break;
    case 'config-cat':
      if (!(j && j.category === 'mxcat' && Array.isArray(j.items) && j.items.length === 0)) say('want {category:"mxcat", items:[]}');
      break;
    case 'config-key':
      if (!j) say('not JSON');
      else if (c.method === 'GET') {
        if (!(j.key === cfgKey(rid) && j.value === `v0-${rid}` && j.version === 1 && j.category === 'mxpre')) say('GET: want the stored value, version 1');
      } else if (c.method === 'PUT') {
        if (!(j.key === cfgKey(rid) && j.version === 2 && j.value && j.value.n === rid && j.category === 'mxw')) say('PUT: want version 2 with the new value');
      }
      break;
    default:
      break;
  }
  return probs;
}

function describeGot(r) {
  if (r.outcome === 'response') return `${r.status}`;
  if (r.outcome === 'close') return `a close with no answer${r.errors.length ? ` (${[...new Set(r.errors)].join(',')})` : ''}`;
  if (r.outcome === 'partial') return `a broken answer ${JSON.stringify(r.headText.slice(0, 80))}`;
  return `no answer within ${REQ_TIMEOUT_MS} ms`;
}

// Every problem of one case, as {key (for grouping), text}.
async function evaluate(c, r) {
  const exp = expected(c);
  const probs = [];
  let got = describeGot(r);
  if (r.outcome === 'response') {
    if (!exp.statuses.includes(r.status)) probs.push(`status ${r.status}, expected ${exp.statuses.join('/')}${exp.closeOk ? ' or a clean close' : ''} (${exp.why})`);
    else probs.push(...checkBody(c, r));
    if (r.followUp === 'stray' || (r.stray && r.followUp !== 'ok')) {
      const second = /^HTTP\/1\.[01] \d{3}[^\r]*/.exec(r.stray || '');
      const what = second
        ? `a second response (${second[0]}) to one request`
        : c.method === 'HEAD'
          ? 'a body sent in the answer to HEAD'
          : 'stray bytes after the response';
      probs.push({ key: what, text: `${what}: ${JSON.stringify(r.stray)}` });
      got += ' + stray bytes';
    } else if (r.followUp === 'timeout') {
      probs.push(`the connection then hangs: a GET /healthz sent on it after the answer got neither an answer nor a close within ${FOLLOW_UP_TIMEOUT_MS} ms`);
    }
  } else if ((r.outcome === 'close' || (r.outcome === 'partial' && c.shape === 'short')) && exp.closeOk) {
    // a clean close is acceptable here (and after a client's FIN, an answer
    // cut short by the hub's close is one)
  } else {
    probs.push(`${describeGot(r)}, expected ${exp.statuses.join('/')}${exp.closeOk ? ' or a clean close' : ''} (${exp.why})`);
  }
  probs.push(...(await checkState(c, r)));
  return probs.map((p) => ({
    key: `${c.method} ${c.route.tpl} [body ${c.shape}]: ${(p.key ?? p).replace(/mx[:.]?[A-Za-z]*\d+/g, '<id>').replace(/"[0-9a-f]{32}"/g, '<token>')}`,
    text: `${c.method} ${c.route.target(c.rid)} token=${c.tok.id} body=${c.shape}: ${p.text ?? p}`,
    tok: c.tok.id,
    got,
    example: c,
  }));
}

// ------------------------------------------------------------------ the run

// COORDHUB_MATRIX_ONLY=<regex> runs only the cases whose
// "METHOD /route/template token body" matches (e.g. "^POST /healthz .* cl0$").
function allCases() {
  const only = process.env.COORDHUB_MATRIX_ONLY ? new RegExp(process.env.COORDHUB_MATRIX_ONLY) : null;
  const cases = [];
  let rid = 0;
  for (const route of ROUTES) {
    for (const method of METHODS) {
      for (const tok of TOKENS) {
        for (const shape of SHAPES) {
          const c = { route, method, tok, shape, rid: rid++ };
          if (!only || only.test(`${method} ${route.tpl} ${tok.id} ${shape}`)) cases.push(c);
        }
      }
    }
  }
  return cases;
}

// Requests that killed the hub share a signature; the rest of the matrix
// skips that signature (one crash reported, not a thousand).
const crashSignature = (c) => `${c.route.v1 ? '/v1/' : 'public'} body=${c.shape} token=${c.tok.valid ? 'valid' : 'invalid'}`;

test('every method x route x token x body shape: its answer, no stray state change, and the hub keeps serving', { timeout: 600000 }, async () => {
  const t0 = performance.now();
  let nextRid = 1e6; // fresh resources for requeued cases
  const cases = allCases();
  await prepare(cases);
  const storeLen0 = await rc.command(['HLEN', STORE]);
  const failures = []; // from evaluate()
  const crashes = []; // {c, signal, bytes}
  const fatal = [];
  const skipped = new Map(); // signature -> count
  const stats = new Map(); // outcome/status -> count
  let done = 0;

  const queue = [...cases];
  const crashSigs = new Set();
  // A request that hangs costs a deadline: after HANG_LIMIT hangs of one
  // (method, public or /v1/, body shape), the rest of that kind is not run.
  const hangSig = (c) => `${c.method} ${c.route.v1 ? '/v1/' : 'public'} body=${c.shape}`;
  const hangs = new Map();
  const HANG_LIMIT = 2;

  // One pass of the pool until the queue is empty or the hub dies.
  async function runPool() {
    const h = hub;
    let died = false;
    const inflight = new Set();
    const recent = []; // {c, at, outcome}: finished requests, newest last
    h.exit().then(() => {
      died = true;
    });
    let active = 0;
    let stalled = 0;
    const waiters = [];
    const wake = () => {
      while (waiters.length && active < CONCURRENCY && stalled < MAX_STALLED) waiters.shift()();
    };
    const slot = () => new Promise((res) => {
      if (active < CONCURRENCY && stalled < MAX_STALLED) res();
      else waiters.push(res);
    });
    const tasks = new Set();
    let sinceHealth = 0;
    while (queue.length && !died && !fatal.length) {
      if (performance.now() - t0 > BUDGET_MS) {
        fatal.push(`time budget of ${BUDGET_MS / 1000} s spent: ${queue.length} requests not run (hung requests? see the problems above)`);
        break;
      }
      await slot();
      if (died || fatal.length) break;
      const c = queue.shift();
      if (crashSigs.has(crashSignature(c))) {
        const k = `crash signature "${crashSignature(c)}"`;
        skipped.set(k, (skipped.get(k) || 0) + 1);
        continue;
      }
      if ((hangs.get(hangSig(c)) || 0) >= HANG_LIMIT) {
        const k = `hang signature "${hangSig(c)}" (${HANG_LIMIT} of them hung already)`;
        skipped.set(k, (skipped.get(k) || 0) + 1);
        continue;
      }
      active++;
      inflight.add(c);
      let state = 'active'; // -> 'stalled' (slot given back early) -> 'done'
      const stall = () => {
        if (state !== 'active') return;
        state = 'stalled';
        active--;
        stalled++;
        wake();
      };
      const task = (async () => {
        const r = await exchange(c, h.port, stall);
        recent.push({ c, at: performance.now(), outcome: r.outcome });
        if (recent.length > 200) recent.shift();
        // The hub's exit can trail the socket errors it causes by a little.
        if (r.outcome !== 'response' && !died) await sleep(30);
        if (died) return; // the suspects are replayed below
        inflight.delete(c);
        if (r.outcome === 'timeout' || r.followUp === 'timeout') hangs.set(hangSig(c), (hangs.get(hangSig(c)) || 0) + 1);
        const key = r.outcome === 'response' ? String(r.status) : r.outcome;
        stats.set(key, (stats.get(key) || 0) + 1);
        failures.push(...(await evaluate(c, r)));
        done++;
        if (++sinceHealth >= HEALTH_EVERY) {
          sinceHealth = 0;
          if (!(await healthz(h.port)) && !died) {
            await sleep(200);
            if (!died) fatal.push(`the hub is running but GET /healthz on a fresh connection failed (after ${done} requests; last: ${c.method} ${c.route.target(c.rid)} token=${c.tok.id} body=${c.shape})`);
          }
        }
      })()
        .catch((e) => fatal.push(`the test itself failed on ${c.method} ${c.route.target(c.rid)} token=${c.tok.id} body=${c.shape}: ${e.stack}`))
        .finally(() => {
          if (state === 'active') active--;
          else if (state === 'stalled') stalled--;
          state = 'done';
          tasks.delete(task);
          wake();
        });
      tasks.add(task);
    }
    await Promise.allSettled([...tasks]);
    if (!died) return null;
    // Suspects: what was in flight, and what finished shortly before (a
    // request can kill the hub after its answer). Those that got no answer
    // first; hung ones last.
    const at = performance.now();
    const rank = (o) => ({ close: 0, partial: 0, response: 2, timeout: 3 })[o] ?? 1;
    const suspects = [
      ...[...inflight].map((c) => ({ c, o: 1 })),
      ...recent.filter((x) => at - x.at < 500).map((x) => ({ c: x.c, o: rank(x.outcome) })),
    ]
      .sort((a, b) => a.o - b.o)
      .map((x) => x.c);
    return { suspects: [...new Set(suspects)], signal: h.proc.signalCode, code: h.proc.exitCode, report: sanitizerLines(h) };
  }

  const sanitizerLines = (h) =>
    h
      .stderr()
      .split('\n')
      .filter((l) => /ERROR: |SUMMARY|runtime error|    #[0-9] /.test(l))
      .slice(0, 10)
      .join('\n');

  async function restart() {
    hub = await startHub({ redisUrl: redis.url, secret, extraArgs: ['--web-root', webRoot] });
  }

  // Does `s`, alone on the current hub (fresh resources), kill it? The hub
  // is restarted if so.
  async function kills(s) {
    const c = { ...s, rid: nextRid++ };
    await prepare([c]);
    const h = hub;
    await exchange(c, h.port, null, 1500);
    const alive = await healthz(h.port, 2000);
    if (alive) await sleep(30); // a death can trail the answers a little
    if (alive && !h.exited()) return null;
    await withTimeout(h.exit(), 5000, 'the crashed hub to exit').catch(() => {});
    const died = { c, signal: h.proc.signalCode, code: h.proc.exitCode, bytes: showBytes(c, h.port), report: sanitizerLines(h) };
    await restart();
    return died;
  }

  // Replays each suspect alone on a fresh hub until one kills it twice in a
  // row: the culprit. The others go back into the queue with fresh
  // resources (one that also kills the hub is found on its own turn).
  async function findCulprit(suspects) {
    const requeue = [];
    let found = false;
    for (const s of suspects) {
      if (found || crashSigs.has(crashSignature(s)) || crashes.length >= MAX_CRASHES) {
        requeue.push(s);
        continue;
      }
      const first = await kills(s);
      if (first && (await kills(s))) {
        crashes.push(first);
        crashSigs.add(crashSignature(s));
        found = true;
      } else if (first) {
        fatal.push(`the hub died once after ${s.method} ${s.route.target(s.rid)} token=${s.tok.id} body=${s.shape} (replayed alone), but not a second time:\n${first.report}`);
      } else requeue.push(s);
    }
    for (const s of requeue.reverse()) queue.unshift({ ...s, rid: nextRid++ });
    if (requeue.length) await prepare(queue.slice(0, requeue.length));
  }

  for (;;) {
    const death = await runPool();
    if (!death || fatal.length) break;
    const known0 = crashes.length;
    await restart();
    await findCulprit(death.suspects);
    if (crashes.length === known0) {
      fatal.push(
        `the hub died (${death.signal ?? `exit ${death.code}`}) while these were in flight or had just finished, and none of them alone kills it twice: ` +
          death.suspects.map((c) => `${c.method} ${c.route.target(c.rid)} token=${c.tok.id} body=${c.shape}`).join('; ') +
          `\n${death.report}`,
      );
      break;
    }
    if (crashes.length >= MAX_CRASHES) {
      fatal.push(`${crashes.length} crashes: the rest of the matrix (${queue.length} requests) was not run`);
      break;
    }
  }

  // The end: the hub is alive and serving, Redis holds nothing unexplained.
  const endProblems = [];
  if (hub.exited()) endProblems.push(`the hub exited (${hub.proc.signalCode ?? hub.proc.exitCode})`);
  else {
    if (!(await healthz(hub.port))) endProblems.push('GET /healthz failed at the end');
    const ready = await exchange({ route: ROUTES.find((r) => r.id === 'readyz'), method: 'GET', tok: TOKENS[0], shape: 'none', rid: 0 }, hub.port);
    if (ready.status !== 200) endProblems.push(`GET /readyz at the end: ${describeGot(ready)}`);
  }
  const storeLen1 = await rc.command(['HLEN', STORE]);
  if (storeLen1 !== storeLen0) endProblems.push(`${STORE} had ${storeLen0} fields, now ${storeLen1}`);
  const known = /^(mx:L\d+|coordhub:fence:\{mx:L\d+\}|reserved:\{mxr\d+\}(:[ab]1)?|configuration:mx\.c\d+|configurationCategory:mx(pre|w|cat):0|coordhub:config-gen:mx(pre|w|cat)|configuration-store)$/;
  // coordhub:rec:*: recovery's own state and history (docs/recovery.md),
  // written for the itemReserved events reservations publish
  const strange = (await rc.command(['KEYS', '*'])).filter(
    (k) => !known.test(k) && !k.startsWith('coordhub:hub:') && k !== 'coordhub:hubs' && !k.startsWith('coordhub:rec:'),
  );
  if (strange.length) endProblems.push(`Redis keys no request should have made: ${strange.slice(0, 20).join(', ')}`);

  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  const statLine = [...stats.entries()].sort().map(([k, v]) => `${k}:${v}`).join(' ');
  console.log(`# ${done} of ${cases.length} requests evaluated in ${secs} s (${statLine}); ${failures.length} problems, ${crashes.length} crashes`);

  // Problems grouped: one line per (method, route, body shape, problem),
  // naming the tokens it happened with and an example with its exact bytes.
  const groups = new Map();
  for (const f of failures) {
    if (!groups.has(f.key)) groups.set(f.key, { toks: new Set(), first: f });
    groups.get(f.key).toks.add(f.tok);
  }
  const lines = [];
  // crashes, grouped by what killed the hub (the sanitizer's first line)
  const sites = new Map();
  for (const c of crashes) {
    const site = (c.report || '').split('\n')[0] || `died of ${c.signal ?? `exit ${c.code}`}`;
    if (!sites.has(site)) sites.set(site, []);
    sites.get(site).push(c);
  }
  for (const [site, cs] of sites) {
    lines.push(
      `CRASH: ${site.trim()}\n` +
        cs.map((c) => `    ${c.c.method} ${c.c.route.target(c.c.rid)} token=${c.c.tok.id} body=${c.c.shape}: ${c.signal ?? `exit ${c.code}`}, twice in a row on a fresh hub\n      bytes: ${c.bytes}`).join('\n') +
        (cs[0].report ? `\n    ${cs[0].report.split('\n').slice(0, 8).join('\n    ')}` : ''),
    );
  }
  lines.push(...fatal, ...endProblems);
  for (const [key, g] of groups) lines.push(`${key} [tokens: ${[...g.toks].join(',')}]\n    e.g. ${g.first.text}\n    bytes: ${showBytes(g.first.example)}`);
  for (const [sig, n] of skipped) lines.push(`not run: ${n} requests of the ${sig}`);
  if (lines.length) console.log(lines.map((l) => `# ${l.split('\n').join('\n# ')}`).join('\n'));
  // the assertion's message: the first line of each entry (and each crash's requests)
  const summary = lines
    .flatMap((l) => (l.startsWith('CRASH') ? l.split('\n').filter((x) => !/^\s+(bytes:|\/|#|\S+:\d+:\d+)/.test(x)) : [l.split('\n')[0]]))
    .slice(0, 50);
  assert.ok(
    lines.length === 0,
    `${crashes.length} crash(es), ${groups.size} kinds of wrong answer (${failures.length} requests), ${fatal.length + endProblems.length} other problems:\n${summary.join('\n')}${lines.length > summary.length ? '\n... (all of them, with the exact bytes of an example each, in the output above)' : ''}`,
  );
});
