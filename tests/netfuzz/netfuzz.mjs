// netfuzz: a stateful, network-level fuzzer of the real, running hub.
//
// It starts a throwaway redis-server and the hub (through the integration
// harness), then runs sequences of actions against them over loopback: raw
// HTTP requests (every method, every route family, every token kind, every
// body shape, pipelined, split, kept alive, cut short), WebSocket
// connections of both framings (native /ws and Socket.IO) sending valid and
// broken frames byte by byte as it chooses (masked by hand over node:net),
// Engine.IO long-polling sessions (handshakes whose sid is remembered, GETs
// left waiting, abandoned mid-wait or doubled, POSTs of valid and broken
// packet payloads and bodies, WebSockets probing and taking over a session
// in the right order or not), and Redis PUBLISHes on every channel the hub
// listens to, with valid and mutated payloads (some for the polling
// sessions' users, so that their output queues fill), plus direct Redis
// writes behind the hub's back, Redis frozen (SIGSTOP) for a while or
// restarted empty; and reconnects that ask for what they missed (SPEC §9:
// native ?offset=&rooms=, Socket.IO CONNECTs carrying pid and offset), with
// offsets and pids the hub gave earlier connections or garbage. Many
// connections are alive at once and the actions
// interleave, so that sequences of callbacks get exercised, not only single
// parsers. About half of the requests and WebSocket clients are well-formed
// (the right role, route and body), so that the deferred answers, lock
// waits, rooms and deliveries are reached and then disturbed. The hub runs
// with its web root, and half the time with short liveness timers, so that
// its own timers fire during a run.
//
// The oracle, and nothing else, decides: the hub must not die, must not
// print a sanitizer report, must answer GET /healthz on a fresh connection
// after every batch (NETFUZZ_HEALTHZ_MS, default 5 s, then once more for
// twice that before calling it a hang), and must exit 0 within 10 s of
// SIGTERM at the end of every sequence (LeakSanitizer reports at exit). What
// the hub answers to each request is never judged here, so that a slow or
// loaded machine cannot make this test fail on a correct hub.
//
// Every action is data (JSON), recorded before it runs. A failure writes the
// sequence, its seed and the failure to NETFUZZ_CRASH_DIR (default
// tests/netfuzz/crashes/, ignored by git) and prints the path.
//
//   node tests/netfuzz/netfuzz.mjs                    seeds, then random sequences
//   node tests/netfuzz/netfuzz.mjs --replay FILE...   replay these sequences only
//   node tests/netfuzz/netfuzz.mjs --shrink FILE [S]  minimise a failing sequence
//                                                     (S seconds at most, default
//                                                     600; writes FILE.min.json)
//   node tests/netfuzz/netfuzz.mjs --generate SEED [N] print what the generator
//                                                     makes of a seed (no hub)
//
// A batch is 30 to 90 actions; a sequence (one hub) is NETFUZZ_BATCHES_PER_HUB
// batches, then SIGTERM, and a fresh redis-server and hub for the next one.
// The generator never looks at the hub's answers, so a seed gives the same
// sequences anywhere; the recorded file is what replays, exactly.
//
// Environment: COORDHUB_BIN (the hub binary, default build/coordhub),
// NETFUZZ_SECONDS (random phase, default 45; 0: seeds only), NETFUZZ_SEED (a
// fresh random seed per run otherwise, printed; a seed regenerates the same
// sequences), NETFUZZ_BATCHES_PER_HUB (batches before the hub is stopped and
// a fresh one started, default 15), NETFUZZ_HEALTHZ_MS, NETFUZZ_CRASH_DIR,
// NETFUZZ_KEEP_GOING=1 (go on after a failure, with a fresh hub, to collect
// more reproducers). Seeds (tests/netfuzz/seeds/*.json) always replay first.
//
// File format: {"netfuzz": 1, "note"?, "seed"?, "hub": {"env", "logLevel",
// "webRoot", "args"?}, "actions": [...], "failure"?}; args: more command-line
// flags (half the random sequences watch job queues, SPEC §12: `--queues
// bullmq:nfq,bull:nfb,stream:nfs/nfg/nfs-dead,bullmq:nfgone` with a short
// poll, random alert rules and sometimes a dotted --job-user-field; their
// Redis side is driven by `pub` and `redis` actions: BullMQ events-stream
// entries, job hashes, Bull's event channels, a Streams queue's entries,
// group, consumers and dead letters, and keys turned into other types).
// Actions:
//   {a: "open", c, ack?}         TCP connect (ack: answer the hub's close frame)
//   {a: "send", c, d, w?, cuts?, gap?, upto?, sid?}
//                                write d (w: then wait up to w ms for the
//                                answer's head; cuts: write in pieces cut at
//                                these fractions, gap ms apart; upto: only
//                                this fraction of the bytes; sid: K, an
//                                Engine.IO handshake: its answer's sid is
//                                session K's, and w waits for it)
//   {a: "end"|"close"|"rst"|"pause"|"resume", c}
//                                FIN, destroy, RST, stop/restart reading
//   {a: "pub", ch, d}            PUBLISH on Redis
//   {a: "redis", args}           any other Redis command
//   {a: "redis-freeze", ms}      SIGSTOP redis-server, SIGCONT ms later
//   {a: "redis-restart"}         SIGKILL it and start it again, empty
//   {a: "sleep", ms}, {a: "check"} (the oracle)
// Data d: a string (UTF-8), {b64}, {rep: d, n} (d n times), {frame: {op,
// fin, rsv, mask, key, p, len, form}} (a WebSocket frame; len/form override
// the declared length and its encoding), {req: {h, b}} (an HTTP head whose
// {{bodylen}}, {{bodylen+N}}, {{bodylen-N}} count the body b), or an array
// of those, concatenated. Strings expand {{tok KIND SUB ROLES}} and
// {{tokq ...}} (a token signed by this hub's secret, raw or URL-encoded;
// KIND valid, brief (valid for 2 s), expired, badsig, algnone, nosub, nbf,
// rolesstr, hs512, expstr; ROLES comma-separated or -), {{lock NAME}} (the
// last lock token the hub handed out for NAME), {{sid K}} (the Engine.IO sid
// the hub gave session K, see send's sid; before that, a 20-character sid
// no session has), {{offset C [D]}} (the last offset a frame to connection
// C carried, else the last one any frame carried, else "1-0"; C `*N`: the
// N-th last distinct one seen on any connection; D `+N`/`-N` shifts the
// count, `a+N`/`a-N` the anchor), {{pid C}} (the pid of the last Socket.IO
// CONNECT answer on connection C, or `*N` as above; before that, a
// 20-character pid the hub never gave) and {{port}}. `k` fields are labels
// only.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';

// The harness registers node:test hooks unless told not to: this file
// manages its hubs itself (and checks them itself).
process.env.COORDHUB_HARNESS_NO_HOOKS = '1';
const H = await import('../integration/harness.mjs');
const { makeToken, rawHttp, sleep, startHub, startRedis, withTimeout, RespClient } = H;

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..');

// Sanitizer settings as scripts/test.sh sets them, for a run by hand.
if (!process.env.ASAN_OPTIONS) process.env.ASAN_OPTIONS = 'detect_leaks=1:abort_on_error=0:strict_string_checks=1';
if (!process.env.UBSAN_OPTIONS) process.env.UBSAN_OPTIONS = 'print_stacktrace=1:halt_on_error=1';
if (!process.env.LSAN_OPTIONS) {
  process.env.LSAN_OPTIONS = `suppressions=${path.join(repoRoot, 'tests', 'lsan.supp')}:print_suppressions=0`;
}

const envInt = (name, def) => {
  const v = process.env[name];
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}=${v}: want a non-negative number`);
  return n;
};

const SECONDS = envInt('NETFUZZ_SECONDS', 45);
const BATCHES_PER_HUB = Math.max(1, envInt('NETFUZZ_BATCHES_PER_HUB', 15));
let HEALTHZ_MS = Math.max(500, envInt('NETFUZZ_HEALTHZ_MS', 5000));
const KEEP_GOING = process.env.NETFUZZ_KEEP_GOING === '1';
const CRASH_DIR = process.env.NETFUZZ_CRASH_DIR || path.join(here, 'crashes');
const SEED_DIR = path.join(here, 'seeds');
const SHUTDOWN_MS = 10000;
const MAX_CONNS = 24; // client connections alive at once (the generator's view)
// A sanitizer's report, at the start of a line (the hub's own log lines are
// JSON objects, which may quote what a client sent).
const SANITIZER_RE = /^(==\d+==ERROR: (AddressSanitizer|LeakSanitizer)|\S+:\d+:\d+: runtime error: |SUMMARY: \w+Sanitizer)/m;

// ================================================================ PRNG

// xoshiro128** seeded through splitmix32: small, fast, and the same
// sequence for a seed on every machine.
class Rng {
  constructor(seed) {
    let s = seed >>> 0;
    const next = () => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s = [next(), next(), next(), next()];
  }

  u32() {
    const s = this.s;
    const r = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return r;
  }

  float() {
    return this.u32() / 4294967296;
  }

  int(n) {
    return Math.floor(this.float() * n);
  }

  range(a, b) {
    return a + this.int(b - a + 1);
  }

  chance(p) {
    return this.float() < p;
  }

  pick(arr) {
    return arr[this.int(arr.length)];
  }

  // pairs: [[weight, value], ...]
  weighted(pairs) {
    let total = 0;
    for (const [w] of pairs) total += w;
    let x = this.float() * total;
    for (const [w, v] of pairs) {
      if ((x -= w) < 0) return v;
    }
    return pairs[pairs.length - 1][1];
  }

  bytes(n) {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.u32() & 0xff;
    return b;
  }

  hex(n) {
    return this.bytes(n).toString('hex');
  }
}

function rotl(x, k) {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

// A seed for epoch `i` of run seed `seed`: each epoch regenerates alone.
function epochSeed(seed, i) {
  const h = crypto.createHash('sha256').update(`${seed}:${i}`).digest();
  return h.readUInt32LE(0);
}

// ================================================================ data

// Bytes as the recorded form: text when it round-trips as UTF-8.
function bin(buf) {
  const s = buf.toString('utf8');
  return Buffer.from(s, 'utf8').equals(buf) ? s : { b64: buf.toString('base64') };
}

// Expands the placeholders of a string against the hub being driven.
function expand(s, ctx) {
  if (!s.includes('{{')) return s;
  return s.replace(/\{\{(tokq?|lock|port|sid|offset|pid)(?: ([^}]*))?\}\}/g, (_, kind, arg = '') => {
    if (kind === 'port') return String(ctx.port);
    if (kind === 'offset') return learnedOffset(ctx, arg);
    if (kind === 'pid') return learnedPid(ctx, arg);
    if (kind === 'sid') return ctx.sids?.get(String(arg)) ?? unknownSid(arg);
    if (kind === 'lock') return ctx.lockTokens.get(arg) ?? '00000000000000000000000000000000';
    const t = ctx.token(arg);
    return kind === 'tokq' ? encodeURIComponent(t) : t;
  });
}

// The stand-in for the sid of session K before (or without) its handshake's
// answer: 20 characters of Engine.IO's alphabet that no session has.
function unknownSid(k) {
  return `nf${String(k).replace(/[^A-Za-z0-9_-]/g, '_')}`.padEnd(20, '0').slice(0, 20);
}

// What {{offset C [D]}} and {{pid C}} read: learned from the frames the
// hub sent (Conn.learn), by connection and in order of arrival.
function learned(ctx, what, who) {
  const ring = ctx[`${what}Ring`] ?? [];
  if (who.startsWith('*')) return ring[Math.max(0, ring.length - 1 - (Number(who.slice(1)) || 0))];
  return ctx[`${what}s`]?.get(who) ?? (what === 'offset' ? ring[ring.length - 1] : undefined);
}

function learnedOffset(ctx, arg) {
  const [who = '*', shift = ''] = arg.split(' ');
  const o = learned(ctx, 'offset', who) ?? '1-0';
  const m = /^(\d+)-(\d+)$/.exec(o);
  const d = /^(a?)([+-]\d+)$/.exec(shift);
  if (!m || !d) return o;
  let a = BigInt(m[1]);
  let k = BigInt(m[2]);
  if (d[1]) a += BigInt(d[2]);
  else k += BigInt(d[2]);
  return `${a < 0n ? 0n : a}-${k < 0n ? 0n : k}`;
}

function learnedPid(ctx, arg) {
  const who = arg.trim() || '*';
  return learned(ctx, 'pid', who) ?? `nfpid${who.replace(/[^A-Za-z0-9_-]/g, '_')}`.padEnd(20, '0').slice(0, 20);
}

// Turns recorded data into bytes.
function materialize(d, ctx) {
  if (typeof d === 'string') return Buffer.from(expand(d, ctx), 'utf8');
  if (Array.isArray(d)) return Buffer.concat(d.map((x) => materialize(x, ctx)));
  if (d && typeof d === 'object') {
    if (typeof d.b64 === 'string') return Buffer.from(d.b64, 'base64');
    if (d.rep !== undefined) {
      const one = materialize(d.rep, ctx);
      const n = Math.max(0, Math.min(Number(d.n) || 0, 1 << 24));
      if (one.length === 0 || n === 0) return Buffer.alloc(0);
      const total = Math.min(one.length * n, 1 << 24);
      const out = Buffer.alloc(total);
      for (let off = 0; off < total; off += one.length) one.copy(out, off, 0, Math.min(one.length, total - off));
      return out;
    }
    if (d.frame) return frameBytes(d.frame, ctx);
    if (d.req) {
      // an HTTP request whose head may declare the body's length:
      // {{bodylen}}, {{bodylen+N}}, {{bodylen-N}}, counted after expansion
      const body = d.req.b === undefined ? Buffer.alloc(0) : materialize(d.req.b, ctx);
      const head = d.req.h.replace(/\{\{bodylen([+-]\d+)?\}\}/g, (_, delta) => String(Math.max(0, body.length + Number(delta || 0))));
      return Buffer.concat([materialize(head, ctx), body]);
    }
  }
  throw new Error(`netfuzz: cannot read data ${JSON.stringify(d).slice(0, 200)}`);
}

// A client WebSocket frame, exactly as described (RFC 6455 §5.2), valid or
// not: {op, fin (default 1), rsv (0-7), mask (default 1), key (8 hex
// digits), p (data), len (declared length, a number or a decimal string for
// 64-bit values), form (7, 16 or 64: the length encoding)}.
function frameBytes(f, ctx) {
  const payload = f.p === undefined ? Buffer.alloc(0) : materialize(f.p, ctx);
  const fin = f.fin === undefined ? 1 : f.fin ? 1 : 0;
  const masked = f.mask === undefined ? true : !!f.mask;
  const len = f.len === undefined ? BigInt(payload.length) : BigInt(f.len);
  const form = f.form ?? (len < 126n ? 7 : len < 65536n ? 16 : 64);
  const head = [(fin << 7) | (((f.rsv ?? 0) & 7) << 4) | ((f.op ?? 1) & 0xf)];
  const m = masked ? 0x80 : 0;
  let ext = Buffer.alloc(0);
  if (form === 7) head.push(m | Number(len & 0x7fn));
  else if (form === 16) {
    head.push(m | 126);
    ext = Buffer.alloc(2);
    ext.writeUInt16BE(Number(len & 0xffffn));
  } else {
    head.push(m | 127);
    ext = Buffer.alloc(8);
    ext.writeBigUInt64BE(len & 0xffffffffffffffffn);
  }
  if (!masked) return Buffer.concat([Buffer.from(head), ext, payload]);
  const key = Buffer.from((f.key ?? '00000000').padEnd(8, '0').slice(0, 8), 'hex');
  const body = Buffer.alloc(payload.length);
  for (let i = 0; i < payload.length; i++) body[i] = payload[i] ^ key[i & 3];
  return Buffer.concat([Buffer.from(head), ext, key, body]);
}

// Parses one server frame (unmasked) at the start of buf: {op, payload,
// size} or null when incomplete.
function serverFrame(buf) {
  if (buf.length < 2) return null;
  const op = buf[0] & 0x0f;
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
  if (buf[1] & 0x80) off += 4;
  if (buf.length < off + len) return null;
  return { op, payload: buf.subarray(off, off + len), size: off + len };
}

// ================================================================ tokens

// "KIND SUB ROLES" -> a token for this hub. KIND: valid, expired, badsig,
// algnone, nosub, nbf, rolesstr, hs512, expstr, brief (valid for 2 s).
function mintToken(spec, secret) {
  const [kind = 'valid', sub = 'u1', rolesArg = '-'] = spec.split(' ');
  const roles = rolesArg === '-' ? [] : rolesArg.split(',');
  const base = { sub, roles, secret };
  switch (kind) {
    case 'valid':
      return makeToken({ ...base, ttl: 3600 });
    case 'expired':
      return makeToken({ ...base, ttl: -120 });
    case 'brief': // valid for 2 s: expires while the connection is open
      return makeToken({ ...base, ttl: 2 });
    case 'badsig':
      return makeToken({ ...base, ttl: 3600, signSecret: `${secret}x` });
    case 'algnone':
      return makeToken({ ...base, ttl: 3600, alg: 'none' });
    case 'nosub':
      return makeToken({ ...base, ttl: 3600, claims: { sub: undefined } });
    case 'nbf':
      return makeToken({ ...base, ttl: 3600, claims: { nbf: Math.floor(Date.now() / 1000) + 3600 } });
    case 'rolesstr':
      return makeToken({ ...base, ttl: 3600, claims: { roles: roles.join(',') || 'ops' } });
    case 'hs512':
      return makeToken({ ...base, ttl: 3600, alg: 'HS512' });
    case 'expstr':
      return makeToken({ ...base, ttl: 3600, claims: { exp: String(Math.floor(Date.now() / 1000) + 3600) } });
    default:
      return makeToken({ ...base, ttl: 3600 });
  }
}

// ================================================================ the generator

const USERS = ['76561198000000001', '76561198000000002', 'u3', 'alice', 'B0b'];
const ROLESETS = ['-', 'service', 'admin', 'ops', 'service,admin,ops', 'service,ops', 'admin,ops'];
const LOCKS = ['nf:a', 'nf:b', 'lockTrade:1', 'nf.{x}-y_z'];
const BAD_LOCKS = ['', 'a%2Fb', 'coordhub:fence:{nf:a}', 'x'.repeat(201), 'sp ace', '%00', 'caf%C3%A9', '..', '%', 'a%0Ab'];
const APPS = ['730', '440', 'nf-app'];
const ASSETS = ['a1', 'a2', 'item.9', 'x_y-z'];
const KEYS = ['tradeDisabled', 'nf.k1', 'nf:k2', 'cat-k'];
const CATS = ['general', 'nf', 'a.b:c-d'];
const BOTS = ['7', '42', 'bot_a-1'];
const ROOMS_OK = ['bot:7', 'bot:42', 'ops', 'queues', 'bot:bot_a-1'];
const ROOMS_BAD = ['', 'user:', 'bot:', 'bot:a b', 'x'.repeat(81), 'user:' + 'x'.repeat(65), 'lobby', 'ops ', 'bot:7\u0000', 'b\u00f6t:1', 'user:../x'];
const CLOSE_CODES = [0, 1, 999, 1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1015, 1016, 2999, 3000, 3999, 4000, 4001, 4008, 4999, 5000, 65535];
const JOB_IDS = ['1', '2', '3', '42', 'nf-a'];
const BAD_UTF8 = [[0xff], [0xc3], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xc0, 0xaf], [0xe2, 0x82], [0x80], [0xf8, 0x88, 0x80, 0x80, 0x80]];

// The generator draws every choice from its PRNG and never looks at what
// the hub answered: it keeps its own view of the connections it opened
// (what it meant them to be), so that a seed regenerates the very same
// actions on any machine at any speed. What it cannot know in advance (a
// lock token, a token signed by this hub's secret) is a placeholder that
// the runner fills in. Each step() returns a few actions that belong
// together (a connection opened and upgraded, a frame and its tail).
class Gen {
  constructor(seed) {
    this.r = new Rng(seed);
    this.nextId = 1;
    this.conns = new Map(); // id -> {id, kind: 'http'|'native'|'sio'|'pget'|'ppost', sub, roles, polite}: as intended, not as observed
    this.sessions = []; // Engine.IO polling sessions, as intended (pollHandshake)
    this.nextSess = 1;
    this.past = []; // native and Socket.IO connections opened, closed or not: what a recovery names
    this.queuesOn = false; // the hub watches QUEUE_SPECS (setHub)
    this.userField = 'userId';
  }

  // What the hub of this sequence was started with (hubSettings).
  setHub(cfg) {
    const a = cfg.args || [];
    this.queuesOn = a.includes('--queues');
    const i = a.indexOf('--job-user-field');
    if (i >= 0) this.userField = a[i + 1];
  }

  // ---------------------------------------------------------- small pieces

  user() {
    return this.r.pick(USERS);
  }

  roles() {
    return this.r.pick(ROLESETS);
  }

  // A token in an Authorization header or a query: {text, valid, sub, roles}.
  token({ q = false } = {}) {
    const r = this.r;
    const sub = r.chance(0.9) ? this.user() : r.pick(['x'.repeat(65), 'a b', '', 'é', '0']);
    const roles = r.chance(0.15) ? r.pick(['root', 'ops,ops', 'service,unknown', ',']) : this.roles();
    const kind = r.weighted([
      [60, 'valid'],
      [5, 'expired'],
      [5, 'badsig'],
      [3, 'algnone'],
      [3, 'nosub'],
      [3, 'nbf'],
      [2, 'rolesstr'],
      [2, 'hs512'],
      [2, 'expstr'],
      [8, 'garbage'],
      [2, 'long'],
      [2, 'empty'],
    ]);
    if (kind === 'garbage') {
      const g = r.pick(['abc', 'a.b.c', '...', 'eyJhbGciOiJIUzI1NiJ9.e30.', 'eyJ.eyJ.eyJ', '%00', 'tok en', r.bytes(12).toString('base64url')]);
      return { text: q ? encodeURIComponent(g) : g, valid: false, sub, roles };
    }
    if (kind === 'long') return { text: 'e'.repeat(r.pick([2047, 2048, 4096, 4097, 9000])), valid: false, sub, roles };
    if (kind === 'empty') return { text: '', valid: false, sub, roles };
    const safeSub = /^[A-Za-z0-9]{1,64}$/.test(sub) ? sub : 'u1';
    const spec = `${kind} ${kind === 'valid' ? safeSub : sub.replace(/[ }]/g, '_') || 'u1'} ${roles.replace(/[ }]/g, '_') || '-'}`;
    return {
      text: `{{${q ? 'tokq' : 'tok'} ${spec}}}`,
      valid: kind === 'valid',
      sub: safeSub,
      roles,
    };
  }

  // A valid token of some role, for a client that means well.
  validToken({ q = false } = {}) {
    const sub = this.user();
    const roles = this.roles();
    const kind = this.r.chance(0.1) ? 'brief' : 'valid';
    return { text: `{{${q ? 'tokq' : 'tok'} ${kind} ${sub} ${roles}}}`, valid: true, sub, roles };
  }

  // Mutates text: byte flips, cuts, insertions, duplications, bad UTF-8.
  mutate(s) {
    const r = this.r;
    let b = Buffer.from(s, 'utf8');
    const n = r.range(1, 3);
    for (let i = 0; i < n; i++) {
      const at = r.int(b.length + 1);
      switch (r.int(9)) {
        case 0: // truncate
          b = b.subarray(0, at);
          break;
        case 1: // flip a byte
          if (b.length) {
            b = Buffer.from(b);
            b[Math.min(at, b.length - 1)] ^= 1 << r.int(8);
          }
          break;
        case 2: // insert a JSON-ish token
          b = Buffer.concat([b.subarray(0, at), Buffer.from(r.pick(['"', '{', '}', '[', ']', ',', ':', '\\', '\\u', '\\ud800', 'null', '-0', '1e999', '\u0000', ' ', '"op"', '\n'])), b.subarray(at)]);
          break;
        case 3: // bad UTF-8
          b = Buffer.concat([b.subarray(0, at), Buffer.from(r.pick(BAD_UTF8)), b.subarray(at)]);
          break;
        case 4: // duplicate a slice
          {
            const from = r.int(b.length + 1);
            const to = Math.min(b.length, from + r.range(1, 16));
            b = Buffer.concat([b.subarray(0, at), b.subarray(from, to), b.subarray(at)]);
          }
          break;
        case 5: // delete a slice
          b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + r.range(1, 8)))]);
          break;
        case 6: // random bytes
          b = Buffer.concat([b.subarray(0, at), r.bytes(r.range(1, 6)), b.subarray(at)]);
          break;
        case 7: // a long run
          b = Buffer.concat([b.subarray(0, at), Buffer.alloc(r.pick([64, 255, 1000, 5000]), r.pick(['a', '9', '[', ' ', '"'])), b.subarray(at)]);
          break;
        default: // wrap
          b = Buffer.concat([Buffer.from(r.pick(['[', '{"x":', '"', '  '])), b, Buffer.from(r.pick([']', '}', '"', ''])), ]);
      }
    }
    return bin(b);
  }

  // A JSON value of no particular schema.
  anyJson(depth = 0) {
    const r = this.r;
    const k = r.int(depth > 2 ? 5 : 8);
    switch (k) {
      case 0: return null;
      case 1: return r.chance(0.5);
      case 2: return r.pick([0, -1, 1.5, 1e21, 2 ** 53 + 1, -0, 123456789]);
      case 3: return r.pick(['', 'x', 'é', '\u0000', 'a'.repeat(r.pick([10, 300, 70000]))]);
      case 4: return r.pick(['tradeDisabled', 'on', 'off']);
      case 5: return Array.from({ length: r.range(0, 4) }, () => this.anyJson(depth + 1));
      default: {
        const o = {};
        for (let i = r.range(0, 4); i > 0; i--) o[r.pick(['a', 'value', 'category', 'token', 'x', ''])] = this.anyJson(depth + 1);
        return o;
      }
    }
  }

  // ---------------------------------------------------------- HTTP

  route() {
    const r = this.r;
    const lock = () => (r.chance(0.85) ? r.pick(LOCKS) : r.pick(BAD_LOCKS));
    const app = () => (r.chance(0.9) ? r.pick(APPS) : r.pick(['', 'a/b', 'x'.repeat(33), 'é', '%2F']));
    const asset = () => (r.chance(0.9) ? r.pick(ASSETS) : r.pick(['', 'x'.repeat(129), 'a/b', '%00']));
    const key = () => (r.chance(0.9) ? r.pick(KEYS) : r.pick(['', 'x'.repeat(65), 'a b', '%2e%2e', 'k/1']));
    const fam = r.weighted([
      [6, 'healthz'],
      [3, 'readyz'],
      [3, 'metrics'],
      [5, 'ws'],
      [6, 'sio'],
      [16, 'locks'],
      [12, 'resv'],
      [12, 'config'],
      [4, 'v1'],
      [4, 'static'],
      [8, 'unknown'],
    ]);
    const q = () => (r.chance(0.1) ? r.pick(['?', '?x=1', '?a=b&c', '#frag', '?token={{tokq valid u1 ops}}', `?${'q'.repeat(3000)}=1`]) : '');
    let p;
    let name;
    switch (fam) {
      case 'healthz': p = r.pick(['/healthz', '/healthz', '/healthz/', '/HEALTHZ', '/healthz?x']); break;
      case 'readyz': p = r.pick(['/readyz', '/readyz/']); break;
      case 'metrics': p = r.pick(['/metrics', '/metrics?x=1']); break;
      case 'ws': p = r.pick(['/ws', '/ws/', '/ws?token={{tokq valid u1 -}}', '/wss']); break;
      case 'sio':
        p = r.pick(['/socket.io/', '/socket.io', '/socket.io/?EIO=4&transport=websocket', '/socket.io/?EIO=4&transport=polling', '/socket.io/?EIO=3&transport=polling', '/socket.io/?EIO=4&transport=websocket&sid=abc', '/socket.io/x', '/socket.iox']);
        break;
      case 'locks':
        name = lock();
        p = r.chance(0.95) ? `/v1/locks/${name}` : r.pick(['/v1/locks', '/v1/locks/', '/v1/locks/a/b', '/v1/locks//']);
        break;
      case 'resv':
        name = app();
        p = r.chance(0.55) ? `/v1/reservations/${name}` : r.chance(0.9) ? `/v1/reservations/${name}/${asset()}` : r.pick(['/v1/reservations', '/v1/reservations/', '/v1/reservations/730/a/b']);
        break;
      case 'config':
        name = key();
        p = r.chance(0.6) ? `/v1/config/${name}` : r.pick(['/v1/config', '/v1/config/', `/v1/config?category=${r.pick(CATS)}`, '/v1/config?category=', `/v1/config?category=${'c'.repeat(65)}`, '/v1/config?category=a%20b']);
        break;
      case 'v1': p = r.pick(['/v1/', '/v1', '/v1/unknown', '/v1/hubs', '/v1/queues', '/v1/locks%2Fx', `/v1/${'x'.repeat(520)}`]); break;
      case 'static': p = r.pick(['/', '/index.html', '/app.js', '/style.css', '/../etc/passwd', '/%2e%2e/x', '//x', '/a\\b', '/dir/', '/index.html%00.js']); break;
      default:
        p = r.pick(['/anything', '/anything/else', '*', 'http://127.0.0.1/healthz', '', '/%', '/%zz', '/%00', '/%0d%0aX: y', `/${'a'.repeat(r.pick([600, 5000]))}`, '/é', '/\u0001', 'healthz']);
    }
    return { fam, path: p + q(), name };
  }

  // A body for the route: valid (the route's own schema) or not.
  jsonBody(fam, method, name) {
    const r = this.r;
    let o;
    if (fam === 'locks' || fam === 'locks-plain') {
      const lockTok = () => (r.chance(0.7) && fam === 'locks' ? `{{lock ${name}}}` : r.pick(['', 'x', 'a'.repeat(100)]));
      const ttl = r.pick([1, 50, 500, 900000, 86400000, 0, -1, 86400001, 1.5, '100']);
      if (method === 'PATCH') o = { token: lockTok(), ttl_ms: ttl };
      else if (method === 'DELETE') o = { token: lockTok() };
      else {
        o = { ttl_ms: ttl, wait_ms: r.pick([0, 0, 0, 10, 100, 1000, 3000, 60000, 60001, -5]), owner: r.pick(['svc', '', 'é', 'o'.repeat(300)]) };
        if (r.chance(0.2)) delete o.wait_ms;
        if (r.chance(0.1)) delete o.ttl_ms;
      }
    } else if (fam === 'resv') {
      const n = r.weighted([
        [10, r.range(1, 3)],
        [2, 0],
        [1, 1000],
        [1, 1001],
      ]);
      const assets = Array.from({ length: n }, (_, i) => (n > 10 ? `a${i}` : r.chance(0.9) ? r.pick(ASSETS) : r.pick(['', 'a/b', 'x'.repeat(129), 7])));
      o = { assets, ttl_s: r.pick([1, 2, 60, 1200, 86400, 0, 86401, -1, '5']), owner: r.pick(['svc', '', 'o'.repeat(300)]) };
      if (r.chance(0.1)) o.assets = r.pick(['a1', {}, null]);
    } else if (fam === 'config') {
      o = { value: this.anyJson(), category: r.chance(0.85) ? r.pick(CATS) : r.pick(['', 'c'.repeat(65), 5, null]) };
      if (r.chance(0.1)) delete o.category;
      if (r.chance(0.1)) delete o.value;
    } else {
      o = this.anyJson();
    }
    return JSON.stringify(o);
  }

  // One raw HTTP request: {data (for one send, maybe with split points),
  // label, tail ('keep'|'end'|'close'|'rst'), pieces: [data...]}
  httpRequest() {
    const r = this.r;
    const method = r.weighted([
      [24, 'GET'],
      [24, 'POST'],
      [12, 'PUT'],
      [10, 'PATCH'],
      [10, 'DELETE'],
      [3, 'OPTIONS'],
      [3, 'HEAD'],
      [1, 'TRACE'],
      [1, 'CONNECT'],
      [4, r.pick(['FOO', 'get', 'PRI', 'M-SEARCH', 'PROPFIND', 'POSTX', 'GET ', 'P\u00d8ST', ''])],
    ]);
    const { fam, path: p, name } = this.route();
    const version = r.weighted([
      [92, 'HTTP/1.1'],
      [4, 'HTTP/1.0'],
      [1, 'HTTP/2.0'],
      [1, 'HTTP/1.1x'],
      [1, ''],
      [1, 'HTTP/9.9'],
    ]);
    const headers = [];
    if (r.chance(0.95)) headers.push(['Host', r.chance(0.9) ? '127.0.0.1:{{port}}' : r.pick(['', 'x'.repeat(300), 'evil.example'])]);
    let tok = null;
    if (r.chance(0.75)) {
      tok = this.token();
      const scheme = r.weighted([
        [90, 'Bearer '],
        [3, 'bearer '],
        [2, 'Basic '],
        [2, 'Bearer  '],
        [2, ''],
        [1, 'Bearer'],
      ]);
      headers.push(['Authorization', scheme + tok.text]);
      if (r.chance(0.03)) headers.push(['Authorization', `Bearer ${this.token().text}`]);
    }
    const sendsBody = r.chance(0.8) ? ['POST', 'PUT', 'PATCH', 'DELETE'].includes(method) : r.chance(0.3);
    if (sendsBody && r.chance(0.8)) headers.push(['Content-Type', r.chance(0.9) ? 'application/json' : r.pick(['text/plain', 'multipart/form-data; boundary=x', '', 'application/json; charset=latin1'])]);
    const conn = r.weighted([
      [60, null],
      [20, 'keep-alive'],
      [15, 'close'],
      [5, r.pick(['Upgrade', 'keep-alive, Upgrade', 'TE', ''])],
    ]);
    if (conn !== null) headers.push(['Connection', conn]);
    if (r.chance(0.06)) headers.push(['Upgrade', r.pick(['websocket', 'h2c', 'foo'])]);
    if (r.chance(0.05)) headers.push(['Expect', '100-continue']);
    if (r.chance(0.08)) {
      headers.push(
        r.pick([
          ['X-Fuzz', 'x'.repeat(r.pick([10, 1000, 8000, 20000]))],
          ['Cookie', 'a=b; c=d'],
          ['Origin', 'http://evil.example'],
          ['Accept-Encoding', 'gzip, deflate, br'],
          ['Range', 'bytes=0-1'],
          ['If-Modified-Since', 'Thu, 01 Jan 1970 00:00:00 GMT'],
          ['X-Forwarded-For', '1.2.3.4'],
          ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='],
          ['Bad Header', 'x'],
          ['', 'empty name'],
          [' Leading', 'space'],
          ['X-Folded', 'a\r\n b'],
          ['Transfer-Encoding', 'identity'],
        ]),
      );
    }
    // The body shape.
    const shape = r.weighted([
      [sendsBody ? 4 : 30, 'none'],
      [16, 'cl0'],
      [22, 'json'],
      [12, 'mutated'],
      [4, 'onebyte'],
      [4, 'chunked'],
      [3, 'chunked-bad'],
      [3, 'toolarge'],
      [1, 'huge-real'],
      [6, 'short'],
      [3, 'long'],
      [5, 'badcl'],
    ]);
    let body = '';
    let tail = 'keep';
    const json = () => this.jsonBody(fam, method, name);
    switch (shape) {
      case 'none':
        break;
      case 'cl0':
        headers.push(['Content-Length', '0']);
        break;
      case 'json':
      case 'mutated':
      case 'onebyte':
        body = shape === 'json' ? json() : shape === 'mutated' ? this.mutate(json()) : r.pick(['{', '0', ' ', '\u0000']);
        headers.push(['Content-Length', '{{bodylen}}']);
        break;
      case 'chunked':
      case 'chunked-bad': {
        headers.push(['Transfer-Encoding', r.chance(0.9) ? 'chunked' : 'gzip, chunked']);
        if (r.chance(0.1)) headers.push(['Content-Length', '5']);
        // chunk sizes are counted on the recorded text: no templates inside
        const b = Buffer.from(this.jsonBody(fam === 'locks' ? 'locks-plain' : fam, method, name));
        const parts = [];
        let off = 0;
        while (off < b.length) {
          const n = Math.min(b.length - off, r.range(1, 20));
          parts.push(Buffer.from(`${n.toString(16)}\r\n`), b.subarray(off, off + n), Buffer.from('\r\n'));
          off += n;
        }
        parts.push(Buffer.from('0\r\n\r\n'));
        let c = Buffer.concat(parts);
        if (shape === 'chunked-bad') {
          c = r.pick([
            () => Buffer.concat([Buffer.from('zz\r\n'), c]),
            () => c.subarray(0, r.int(c.length)),
            () => Buffer.concat([Buffer.from('fffffffffffffffff\r\n'), c]),
            () => Buffer.from(c.toString('latin1').replace(/\r\n/g, '\n'), 'latin1'),
            () => Buffer.concat([Buffer.from('-1\r\n'), c]),
            () => Buffer.concat([Buffer.from('1;ext=x\r\n{\r\n'), c]),
          ])();
          if (r.chance(0.5)) tail = r.pick(['end', 'close']);
        }
        body = bin(c);
        break;
      }
      case 'toolarge':
        headers.push(['Content-Length', String(r.pick([1048577, 2000000, 1 << 30, 2 ** 53]))]);
        body = r.chance(0.5) ? json() : '';
        break;
      case 'huge-real':
        headers.push(['Content-Length', '{{bodylen}}']);
        body = ['{"assets":["', { rep: 'a', n: r.pick([1048576, 1048600]) }, '"]}'];
        break;
      case 'short':
        body = json();
        headers.push(['Content-Length', `{{bodylen+${r.range(1, 100)}}}`]);
        tail = r.pick(['end', 'close', 'rst', 'keep']);
        break;
      case 'long':
        body = json();
        headers.push(['Content-Length', `{{bodylen-${r.range(1, 5)}}}`]);
        break;
      default: // badcl
        headers.push(['Content-Length', r.pick(['-1', 'abc', '1e3', ' 5', '5 ', '18446744073709551616', '0x10', '', '+5', '00000000000000000000000000001'])]);
        if (r.chance(0.3)) headers.push(['Content-Length', '3']);
        body = r.chance(0.5) ? json() : '';
    }
    const reqLine = version ? `${method} ${p} ${version}\r\n` : `${method} ${p}\r\n`;
    const lineEnd = r.chance(0.03) ? '\n' : '\r\n';
    const head = `${reqLine}${headers.map(([k, v]) => `${k}: ${v}\r\n`).join('')}`.replace(/\r\n/g, lineEnd) + lineEnd;
    const data = body === '' ? head : { req: { h: head, b: body } };
    const label = `http ${method || '(none)'} ${fam} ${tok ? (tok.valid ? `tok:${tok.roles}` : 'tok:bad') : 'notok'} ${shape}`;
    return { data, label, tail };
  }

  // A request as a well-behaved service sends it: the right method, role
  // and body for its route, so that the hub's deferred answers (Redis
  // round trips, lock waits) and their cancellation get exercised.
  plausibleRequest() {
    const r = this.r;
    const lock = r.pick(LOCKS);
    const app = r.pick(APPS);
    const key = r.pick(KEYS);
    const sub = this.user();
    const [label, method, p, role, body] = r.weighted([
      [8, ['locks acquire', 'POST', `/v1/locks/${lock}`, 'service', JSON.stringify({ ttl_ms: r.pick([50, 300, 2000, 60000]), wait_ms: r.pick([0, 0, 0, 50, 500, 2000, 30000]), owner: 'nf' })]],
      [4, ['locks extend', 'PATCH', `/v1/locks/${lock}`, 'service', `{"token":"{{lock ${lock}}}","ttl_ms":${r.pick([100, 5000])}}`]],
      [5, ['locks release', 'DELETE', `/v1/locks/${lock}`, 'service', `{"token":"{{lock ${lock}}}"}`]],
      [3, ['locks inspect', 'GET', `/v1/locks/${lock}`, r.pick(['service', 'ops']), undefined]],
      [6, ['resv reserve', 'POST', `/v1/reservations/${app}`, 'service', JSON.stringify({ assets: [...new Set(Array.from({ length: r.range(1, 3) }, () => r.pick(ASSETS)))], ttl_s: r.pick([1, 2, 30]), owner: 'nf' })]],
      [3, ['resv release', 'DELETE', `/v1/reservations/${app}/${r.pick(ASSETS)}`, 'service', undefined]],
      [3, ['resv list', 'GET', `/v1/reservations/${app}`, r.pick(['service', 'ops']), undefined]],
      [4, ['config get', 'GET', `/v1/config/${key}`, '-', undefined]],
      [2, ['config list', 'GET', `/v1/config?category=${r.pick(CATS)}`, '-', undefined]],
      [5, ['config put', 'PUT', `/v1/config/${key}`, 'admin', JSON.stringify({ value: this.anyJson(1), category: r.pick(CATS) })]],
      [2, ['healthz', 'GET', r.pick(['/healthz', '/readyz', '/metrics']), null, undefined]],
    ]);
    let head = `${method} ${p} HTTP/1.1\r\nHost: 127.0.0.1:{{port}}\r\n`;
    if (role !== null) head += `Authorization: Bearer {{tok valid ${sub} ${role}}}\r\n`;
    if (r.chance(0.3)) head += `Connection: ${r.pick(['keep-alive', 'close'])}\r\n`;
    if (body !== undefined) head += 'Content-Type: application/json\r\nContent-Length: {{bodylen}}\r\n';
    head += '\r\n';
    return { data: body === undefined ? head : { req: { h: head, b: body } }, label: `http ${method} ${label} ok`, tail: 'keep' };
  }

  // ---------------------------------------------------------- WebSocket

  upgradeRequest(proto, polite) {
    const r = this.r;
    const tok = polite ? this.validToken({ q: true }) : this.token({ q: true });
    let p;
    const headers = [['Host', '127.0.0.1:{{port}}']];
    let ok = tok.valid;
    if (proto === 'native') {
      const how = r.weighted([
        [60, 'query'],
        [30, 'header'],
        [polite ? 0 : 10, 'none'],
      ]);
      p = how === 'query' ? `/ws?token=${tok.text}` : r.pick(['/ws', '/ws/']);
      if (how === 'header') headers.push(['Authorization', `Bearer ${tok.text.replace(/^\{\{tokq/, '{{tok')}`]);
      if (how === 'none') ok = false;
      if (!polite && r.chance(0.05)) p += r.pick(['&offset=0', '&offset=abc', '&x=1', '&token=', '&offset=' + 'x'.repeat(300)]);
    } else {
      ok = true; // authentication is the CONNECT packet's business
      p = '/socket.io/?EIO=4&transport=websocket';
      if (r.chance(0.4)) p += `&token=${tok.text}`;
      if (!polite && r.chance(0.05)) {
        p = r.pick(['/socket.io/?EIO=3&transport=websocket', '/socket.io/?transport=websocket', '/socket.io/?EIO=4&transport=polling', '/socket.io/?EIO=4&transport=websocket&sid=x', '/socket.io?EIO=4&transport=websocket']);
        ok = p === '/socket.io?EIO=4&transport=websocket';
      }
    }
    headers.push(['Upgrade', 'websocket'], ['Connection', 'Upgrade']);
    if (polite || r.chance(0.97)) headers.push(['Sec-WebSocket-Key', r.bytes(16).toString('base64')]);
    else {
      headers.push(['Sec-WebSocket-Key', r.pick(['', 'short', 'x'.repeat(200)])]);
      ok = false;
    }
    if (polite || r.chance(0.97)) headers.push(['Sec-WebSocket-Version', '13']);
    else {
      headers.push(['Sec-WebSocket-Version', r.pick(['8', '', '99'])]);
      ok = false;
    }
    if (r.chance(0.1)) headers.push(['Sec-WebSocket-Extensions', 'permessage-deflate; client_max_window_bits']);
    if (r.chance(0.1)) headers.push(['Sec-WebSocket-Protocol', r.pick(['chat', 'coordhub', 'a, b'])]);
    if (r.chance(0.1)) headers.push(['Origin', 'http://127.0.0.1']);
    const head = `GET ${p} HTTP/1.1\r\n${headers.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
    return { head, ok, sub: tok.sub, roles: tok.roles, label: `ws-open ${proto}${polite ? ' polite' : ''} ${tok.valid ? `tok:${tok.roles}` : 'tok:bad'}` };
  }

  room(c) {
    const r = this.r;
    return r.weighted([
      [20, r.pick(ROOMS_OK)],
      [10, `user:${c.sub}`],
      [6, `user:${this.user()}`],
      [6, r.pick(ROOMS_BAD)],
    ]);
  }

  nativeMessage(c) {
    const r = this.r;
    const kind = r.weighted([
      [20, 'ping'],
      [20, 'join'],
      [12, 'leave'],
      [10, 'watch'],
      [3, 'refresh'],
      [4, 'unknown'],
      [6, 'shape'],
      [14, 'mutated'],
      [3, 'badutf8'],
    ]);
    let m;
    switch (kind) {
      case 'ping': m = r.chance(0.9) ? '{"op":"ping"}' : JSON.stringify({ op: 'ping', pad: 'x'.repeat(r.pick([10, 1000, 60000])) }); break;
      case 'join': m = JSON.stringify({ op: 'join', room: this.room(c) }); break;
      case 'leave': m = JSON.stringify({ op: 'leave', room: this.room(c) }); break;
      case 'watch': m = JSON.stringify({ op: 'config.watch', keys: r.chance(0.8) ? Array.from({ length: r.range(1, 4) }, () => r.pick(KEYS)) : r.pick([[], 'k', [1], Array.from({ length: 33 }, (_, i) => `k${i}`), ['x'.repeat(65)], ['a b']]) }); break;
      case 'refresh': m = JSON.stringify({ op: 'refresh', token: `{{tok ${r.pick(['valid', 'brief', 'expired'])} ${r.chance(0.7) ? c.sub : this.user()} ${this.roles()}}}` }); break;
      case 'unknown': m = JSON.stringify({ op: r.pick(['', 'PING', 'subscribe', 'x'.repeat(300)]), room: 'ops' }); break;
      case 'shape': m = r.pick(['', '{}', '[]', 'null', '"ping"', '1', '{"op":1}', '{"op":"join"}', '{"op":"join","room":1}', '{"op":"ping","op":"join"}', '{"op":"join","room":"ops","room":"bot:1"}', '['.repeat(5000), '{"op":"join","room":"\\u0000"}', '{"op":"ping"} ', ' {"op":"ping"}', '{"op":"ping"}{}']); break;
      case 'badutf8': m = ['{"op":"', { b64: Buffer.from(r.pick(BAD_UTF8)).toString('base64') }, '"}']; break;
      default: m = this.mutate(JSON.stringify(r.pick([{ op: 'ping' }, { op: 'join', room: this.room(c) }, { op: 'config.watch', keys: [r.pick(KEYS)] }])));
    }
    return { m, kind };
  }

  sioMessage(c) {
    const r = this.r;
    const kind = r.weighted([
      [14, 'connect'],
      [16, 'event'],
      [6, 'eio'],
      [3, 'disconnect'],
      [6, 'nsp'],
      [4, 'binary'],
      [4, 'ack'],
      [12, 'mutated'],
      [5, 'odd'],
    ]);
    const ev = () => {
      const name = r.weighted([
        [10, 'ping'],
        [10, 'join'],
        [6, 'leave'],
        [5, 'config.watch'],
        [2, 'refresh'],
        [3, r.pick(['', 'unknown', 'x'.repeat(200)])],
      ]);
      const args = [name];
      if (name === 'join' || name === 'leave') args.push(r.chance(0.7) ? this.room(c) : r.pick([{ room: this.room(c) }, 7, null, [], { room: 5 }]));
      if (name === 'config.watch') args.push(r.chance(0.5) ? [r.pick(KEYS)] : r.pick([{ keys: [r.pick(KEYS), r.pick(KEYS)] }, 'k', [], {}]));
      if (name === 'refresh') args.push(`{{tok ${r.pick(['valid', 'brief', 'expired'])} ${r.chance(0.7) ? c.sub : this.user()} ${this.roles()}}}`);
      return JSON.stringify(args);
    };
    let m;
    switch (kind) {
      case 'connect': m = r.weighted([
          [10, `40${JSON.stringify({ token: this.token().text })}`],
          [3, '40'],
          [2, '40{}'],
          [1, r.pick(['40[]', '40"x"', '40null', '40{"token":5}', '40{"token":""}', '40{"pid":"x","offset":"y"}', '40{"token":"{{tok valid u1 -}}","pid":"abc","offset":"1-2"}', `40{"token":"{{tok valid ${c.sub} ${c.roles}}}","pid":"{{pid *}}","offset":"{{offset *}}"}`, `40{"token":"{{tok valid ${c.sub} ${c.roles}}}","pid":"{{pid ${c.id}}}","offset":"{{offset ${c.id}}}"}`])],
        ]);
        break;
      case 'event': m = `42${r.chance(0.2) ? r.range(0, 99999) : ''}${ev()}`; break;
      case 'eio': m = r.pick(['2', '3', '2probe', '3probe', '5', '6', '1', '0', '4', '2' + 'x'.repeat(70)]); break;
      case 'disconnect': m = r.pick(['41', '41/x,', '1']); break;
      case 'nsp': m = r.pick(['40/admin,', '40/admin,{}', '42/admin,["ping"]', '41/admin,', `40/${'n'.repeat(r.pick([10, 200, 300]))},`, '42/,["ping"]', '40/admin', '43/admin,1[]']); break;
      case 'binary': m = r.pick(['451-["x",{"_placeholder":true,"num":0}]', '461-[]', '450-["x"]', '45-[]', '4599999999999-[]']); break;
      case 'ack': m = r.pick(['430[]', '43', '4312345678901234567890[]', '43x', '44', '44{}', '46', '47', '49']); break;
      case 'odd': m = r.pick(['', '9', 'x', '4', '42', '42 ["ping"]', '42["ping"', '42{}', '42[]', '42[1]', '42"ping"', '4-1[]', '421-["ping"]', `42${'['.repeat(3000)}`]); break;
      default: m = this.mutate(r.pick([`42${ev()}`, `40${JSON.stringify({ token: this.token().text })}`, '2', '41']));
    }
    return { m, kind };
  }

  key4() {
    return this.r.hex(4);
  }

  // Write in pieces: cut points as fractions of the bytes (which exist
  // only once the templates are expanded), a pause between the pieces.
  cuts() {
    const r = this.r;
    const cuts = Array.from({ length: r.range(1, 3) }, () => Math.round(r.float() * 1000) / 1000).sort((x, y) => x - y);
    return { cuts, gap: r.chance(0.5) ? r.range(1, 40) : 0 };
  }

  // Splits a message into n pieces: at any byte when it holds no template
  // (so that a UTF-8 sequence can straddle two fragments), else between
  // characters outside the templates.
  pieces(m, n) {
    const r = this.r;
    const hasTemplate = (x) => (typeof x === 'string' ? x.includes('{{') : Array.isArray(x) ? x.some(hasTemplate) : false);
    if (!hasTemplate(m)) {
      const b = materializeStatic(m);
      const cuts = Array.from({ length: n - 1 }, () => r.int(b.length + 1)).sort((x, y) => x - y);
      const out = [];
      let prev = 0;
      for (const cut of [...cuts, b.length]) {
        out.push(bin(b.subarray(prev, cut)));
        prev = cut;
      }
      return out;
    }
    const s = typeof m === 'string' ? m : materializeStatic(m).toString('utf8');
    const inside = new Set();
    for (const t of s.matchAll(/\{\{[^}]*\}\}/g)) for (let i = t.index + 1; i < t.index + t[0].length; i++) inside.add(i);
    const allowed = [];
    for (let i = 0; i <= s.length; i++) if (!inside.has(i)) allowed.push(i);
    const cuts = Array.from({ length: n - 1 }, () => r.pick(allowed)).sort((x, y) => x - y);
    const out = [];
    let prev = 0;
    for (const cut of [...cuts, s.length]) {
      out.push(s.slice(prev, cut));
      prev = cut;
    }
    return out;
  }

  text(m, extra = {}) {
    return { frame: { op: 1, key: this.key4(), p: m, ...extra } };
  }

  // What a well-behaved client sends: valid ops in valid frames, so that
  // it stays connected, in rooms, receiving what is published.
  politeFrames(c) {
    const r = this.r;
    const room = r.weighted([
      [6, `user:${c.sub}`],
      [c.roles.includes('ops') ? 10 : 2, r.pick(ROOMS_OK)],
      [1, `user:${this.user()}`],
    ]);
    const op = r.weighted([
      [5, 'ping'],
      [8, 'join'],
      [4, 'leave'],
      [4, 'watch'],
      [1, 'refresh'],
    ]);
    const fresh = `{{tok ${r.pick(['valid', 'brief'])} ${c.sub} ${r.chance(0.8) ? c.roles : this.roles()}}}`;
    if (c.rooms && op === 'join') c.rooms.add(room);
    if (c.rooms && op === 'leave') c.rooms.delete(room);
    let m;
    if (c.kind === 'native') {
      m = op === 'ping' ? '{"op":"ping"}' : op === 'watch' ? JSON.stringify({ op: 'config.watch', keys: [r.pick(KEYS), r.pick(KEYS)] }) : op === 'refresh' ? JSON.stringify({ op, token: fresh }) : JSON.stringify({ op, room });
    } else {
      const ack = r.chance(0.3) ? String(r.range(0, 999)) : '';
      m = op === 'ping' ? `42${ack}["ping"]` : op === 'watch' ? `42${ack}${JSON.stringify(['config.watch', [r.pick(KEYS)]])}` : op === 'refresh' ? `42${ack}${JSON.stringify(['refresh', fresh])}` : `42${ack}${JSON.stringify([op, r.chance(0.5) ? room : { room }])}`;
      if (r.chance(0.1)) m = r.pick(['3', '2']); // heartbeat answers, and a ping
    }
    const label = `ws-frame ${c.kind} polite ${op}`;
    const how = r.weighted([
      [75, 'single'],
      [8, 'fragmented'],
      [8, 'split'],
      [5, 'ping'],
      [4, 'pong'],
    ]);
    switch (how) {
      case 'fragmented': {
        const pieces = this.pieces(m, r.range(2, 3));
        return [{ a: 'send', c: c.id, d: pieces.map((pc, i) => ({ frame: { op: i === 0 ? 1 : 0, fin: i === pieces.length - 1 ? 1 : 0, key: this.key4(), p: pc } })), k: label }];
      }
      case 'split':
        return [{ a: 'send', c: c.id, d: this.text(m), k: label, ...this.cuts() }];
      case 'ping':
      case 'pong':
        return [{ a: 'send', c: c.id, d: { frame: { op: how === 'ping' ? 9 : 10, key: this.key4(), p: 'nf' } }, k: `ws-frame ${c.kind} polite ${how}` }];
      default:
        return [{ a: 'send', c: c.id, d: this.text(m), k: label }];
    }
  }

  // Frames for an upgraded connection: [{d, label, then?}] where then is a
  // tail ('close'|'rst'|'end') or a sleep to put between split writes.
  wsFrames(c) {
    const r = this.r;
    if (c.polite && r.chance(0.95)) return this.politeFrames(c);
    const { m, kind } = c.kind === 'native' ? this.nativeMessage(c) : this.sioMessage(c);
    const framing = r.weighted([
      [46, 'single'],
      [9, 'fragmented'],
      [7, 'control'],
      [5, 'close'],
      [3, 'badop'],
      [2, 'rsv'],
      [2, 'unmasked'],
      [2, 'cont-nostart'],
      [3, 'binary'],
      [2, 'oversize'],
      [2, 'declared-huge'],
      [3, 'nonminimal'],
      [2, 'flood'],
      [1, 'ctlflood'],
      [2, 'bigctl'],
      [1, 'fragctl'],
      [6, 'split'],
      [3, 'midframe'],
    ]);
    const label = `ws-frame ${c.kind} ${framing}${framing === 'single' || framing === 'fragmented' || framing === 'split' ? ` ${kind}` : ''}`;
    const out = [];
    const send = (d) => out.push({ a: 'send', c: c.id, d, k: label });
    const tail = (t) => out.push({ a: t, c: c.id, k: label });
    switch (framing) {
      case 'single':
        send(this.text(m));
        break;
      case 'fragmented': {
        const pieces = this.pieces(m, r.range(2, 5));
        const frames = [];
        pieces.forEach((pc, i) => {
          frames.push({ frame: { op: i === 0 ? 1 : 0, fin: i === pieces.length - 1 ? 1 : 0, key: this.key4(), p: pc } });
          if (i < pieces.length - 1 && r.chance(0.3)) frames.push({ frame: { op: r.pick([9, 10]), key: this.key4(), p: r.pick(['', 'hi', 'x'.repeat(125)]) } });
        });
        if (r.chance(0.3)) {
          for (const f of frames) send(f);
        } else send(frames);
        break;
      }
      case 'control':
        send({ frame: { op: r.pick([9, 9, 10]), key: this.key4(), p: r.pick(['', 'p', 'x'.repeat(125), { b64: r.bytes(8).toString('base64') }]) } });
        break;
      case 'close': {
        const code = r.pick(CLOSE_CODES);
        const cb = Buffer.alloc(2);
        cb.writeUInt16BE(code);
        const reason = r.pick(['', 'bye', 'x'.repeat(123), 'x'.repeat(124), { b64: Buffer.from(r.pick(BAD_UTF8)).toString('base64') }]);
        const p = r.weighted([
          [8, [{ b64: cb.toString('base64') }, reason]],
          [1, ''],
          [1, { b64: 'Aw==' }],
        ]);
        send({ frame: { op: 8, key: this.key4(), p } });
        if (r.chance(0.3)) send(this.text(m)); // after our close
        if (r.chance(0.3)) tail(r.pick(['end', 'close', 'rst']));
        break;
      }
      case 'badop':
        send({ frame: { op: r.pick([3, 4, 5, 6, 7, 11, 12, 13, 14, 15]), key: this.key4(), p: m } });
        break;
      case 'rsv':
        send(this.text(m, { rsv: r.range(1, 7) }));
        break;
      case 'unmasked':
        send(this.text(m, { mask: 0 }));
        break;
      case 'cont-nostart':
        send({ frame: { op: 0, fin: r.pick([0, 1]), key: this.key4(), p: m } });
        break;
      case 'binary':
        send({ frame: { op: 2, key: this.key4(), p: r.chance(0.5) ? m : { b64: r.bytes(r.range(1, 40)).toString('base64') } } });
        break;
      case 'oversize': {
        const n = r.pick([65535, 65536, 65537, 70000, 200000]);
        send(this.text(c.kind === 'native' ? ['{"op":"ping","pad":"', { rep: 'x', n: n - 22 }, '"}'] : ['42["ping","', { rep: 'x', n: n - 13 }, '"]']));
        break;
      }
      case 'declared-huge': {
        const len = r.pick([2 ** 40, 2 ** 32, 65537, '9223372036854775808', '18446744073709551615']);
        send({ frame: { op: r.pick([1, 2, 0]), key: this.key4(), p: { rep: 'x', n: r.pick([0, 10, 1000]) }, len, form: 64 } });
        if (r.chance(0.5)) tail(r.pick(['close', 'rst', 'end']));
        break;
      }
      case 'nonminimal':
        send(this.text(m, { form: r.pick([16, 64]) }));
        break;
      case 'flood':
        send({ rep: this.text(c.kind === 'native' ? '{"op":"ping"}' : '42["ping"]'), n: r.pick([50, 200, 500]) });
        break;
      case 'ctlflood':
        send({ rep: { frame: { op: 9, key: this.key4(), p: 'p' } }, n: r.pick([100, 1000]) });
        break;
      case 'bigctl':
        send({ frame: { op: r.pick([8, 9, 10]), key: this.key4(), p: { rep: 'x', n: r.pick([126, 200, 70000]) } } });
        break;
      case 'fragctl':
        send({ frame: { op: 9, fin: 0, key: this.key4(), p: 'a' } });
        if (r.chance(0.5)) send({ frame: { op: 0, fin: 1, key: this.key4(), p: 'b' } });
        break;
      case 'split':
        out.push({ a: 'send', c: c.id, d: this.text(m), k: label, ...this.cuts() });
        break;
      default: {
        // midframe: part of a frame, then the connection goes away (or not)
        out.push({ a: 'send', c: c.id, d: this.text(m), upto: Math.round(r.float() * 1000) / 1000, k: label });
        const how = r.weighted([
          [4, 'close'],
          [3, 'rst'],
          [2, 'end'],
          [1, 'keep'],
        ]);
        if (how !== 'keep') tail(how);
      }
    }
    return out;
  }

  // ---------------------------------------------------------- Redis

  publish() {
    const r = this.r;
    const ch = r.weighted([
      [22, 'tradestate'],
      [8, 'canceledtrades'],
      [6, 'itemReserved'],
      [4, 'finishedtrades'],
      [4, 'steamDown'],
      [16, 'bot'],
      [10, 'configuration-invalidate'],
      [8, 'coordhub:lock-released'],
      [3, '__redis__:invalidate'],
      [2, 'unknown'],
    ]);
    let channel = ch;
    let d;
    const uid = () => (r.chance(0.9) ? this.user() : r.pick(['', 'x'.repeat(65), 'a b', '<b>', '\u00e9']));
    switch (ch) {
      case 'tradestate': {
        const o = { steamId: uid(), token: 't', state: r.pick(['accepted', 'sent', 'x'.repeat(200)]), msg: r.pick(['', 'hello', '\u2603']) };
        if (r.chance(0.2)) o.extra = this.anyJson();
        if (r.chance(0.1)) o.steamId = r.pick([76561198000000001, 0, -0, -1, 1.5, 9223372036854775807, 9223372036854775808, null, true, [], {}]);
        d = r.weighted([
          [10, JSON.stringify(o)],
          [5, this.mutate(JSON.stringify(o))],
          [1, `{"steamId":"${o.steamId}","steamId":"u3"}`],
          [1, `{"steamId":"\\u0075\\u0033","state":"escaped"}`],
          [1, ['{"steamId":"u3","msg":"', { rep: 'm', n: r.pick([300000, 1100000]) }, '"}']],
          [1, `${'['.repeat(3000)}`],
          [1, r.pick(['', 'null', '[]', '"u3"', '{}'])],
        ]);
        break;
      }
      case 'canceledtrades':
        d = r.chance(0.7) ? r.pick([uid(), `"${uid()}"`, ` ${uid()}\n`]) : this.mutate(uid());
        break;
      case 'itemReserved':
        d = r.pick(['', '730', '440', 'nf-app', 'x'.repeat(40), '{"app":"730"}', 'a b']);
        break;
      case 'finishedtrades':
      case 'steamDown':
        d = r.pick(['', 'text', '{"x":1}', 'x'.repeat(r.pick([100, 70000]))]);
        break;
      case 'bot': {
        const bot = r.chance(0.9) ? r.pick(BOTS) : r.pick(['', 'a b', 'x'.repeat(70), '\u00e9', '7\u0000']);
        channel = `bot ${bot}`;
        const cmd = r.pick(['withdraw', 'sale', 'checkSteamGuard', 'deposit', 'x'.repeat(40)]);
        const line = r.weighted([
          [8, `${cmd} ${bot} ${uid()}_${r.pick(['abc123', 'h', 'x'.repeat(80), ''])} tradeData:${JSON.stringify({ items: [1, 2], note: 'x' })}`],
          [3, `${cmd} ${bot}`],
          [2, `${cmd} ${bot} ${uid()}`],
          [1, `${cmd} ${bot} ${uid()}_h tradeData:{not json`],
          [1, `${cmd}  ${bot}`],
          [1, ''],
        ]);
        d = r.chance(0.75) ? line : this.mutate(line);
        break;
      }
      case 'configuration-invalidate':
        d = r.weighted([
          [8, JSON.stringify({ key: r.pick(KEYS), version: r.pick([1, 2, 999, -1, 1e300]) })],
          [3, this.mutate(JSON.stringify({ key: r.pick(KEYS), version: 3 }))],
          [2, r.pick(['', '{}', '{"key":5}', '{"key":""}', `{"key":"${'k'.repeat(65)}"}`, 'null', '"tradeDisabled"'])],
        ]);
        break;
      case 'coordhub:lock-released':
        d = r.chance(0.8) ? r.pick(LOCKS) : r.pick(BAD_LOCKS.map((x) => x || ''));
        break;
      case '__redis__:invalidate':
        d = r.pick(['configuration:tradeDisabled', 'configuration:nf.k1', '', 'x']);
        break;
      default:
        channel = r.pick(['tradestates', 'bot', 'bots 7', 'coordhub:keepalive']);
        d = 'x';
    }
    return { a: 'pub', ch: channel, d, k: `pub ${ch}` };
  }

  redisWrite() {
    const r = this.r;
    const key = r.pick(KEYS);
    const lock = r.pick(LOCKS);
    const app = r.pick(APPS);
    const args = r.weighted([
      [8, ['SET', `configuration:${key}`, r.pick(['1', '"on"', '{"a":1}', 'not json', '', '\u00ff'])]],
      [4, ['DEL', `configuration:${key}`]],
      [3, ['HSET', 'configuration-store', key, r.pick([JSON.stringify({ value: 1, category: 'nf', version: 5 }), 'not json', '{}', '{"value":1,"version":"x"}'])]],
      [2, ['SET', 'configuration-store', 'wrongtype']],
      [4, ['SET', lock, 'foreign', 'PX', String(r.pick([50, 500, 5000]))]],
      [3, ['DEL', lock]],
      [2, ['SET', `coordhub:fence:{${lock}}`, r.pick(['abc', '9223372036854775807'])]],
      [3, ['ZADD', `reserved:{${app}}`, String(Date.now() + r.pick([-1000, 200, 5000])), r.pick(ASSETS)]],
      [2, ['SET', `reserved:{${app}}`, 'wrongtype']],
      [2, ['DEL', `reserved:{${app}}`]],
      [1, ['FLUSHALL']],
      [1, ['SCRIPT', 'FLUSH']],
      [1, ['CLIENT', 'KILL', 'TYPE', 'pubsub']],
      [1, ['CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes']],
    ]);
    return { a: 'redis', args, k: `redis ${args[0]}${args[0] === 'CLIENT' ? ` ${args[3]}` : ''}` };
  }

  // ---------------------------------------------------------- Engine.IO polling

  // The long-polling transport's sessions, as intended (the generator never
  // learns what became of them): {k, sub, roles, dead, get}. `{{sid K}}` is
  // the sid the hub gave the K-th handshake of the sequence, read from its
  // answer by the runner; a K never learned reads as a sid no session has.
  // `get` is the connection of a GET left waiting on it (as far as the
  // generator knows: any output answers it).
  liveSessions(pred = () => true) {
    return this.sessions.filter((s) => !s.dead && pred(s));
  }

  waiting(s) {
    return s.get !== null && this.conns.has(s.get);
  }

  // A session to name: mostly a recent live one (one without a GET waiting,
  // for a GET), else a stale one, an unknown sid, or a sid the hub cannot
  // take. {text, s (the session meant, or null), how}
  pickSid({ forGet = false } = {}) {
    const r = this.r;
    let live = this.liveSessions();
    if (forGet && r.chance(0.8)) {
      const idle = live.filter((s) => !this.waiting(s));
      if (idle.length) live = idle;
    }
    const dead = this.sessions.filter((s) => s.dead);
    const how = r.weighted([
      [live.length ? 74 : 0, 'live'],
      [dead.length ? 12 : 0, 'stale'],
      [6, 'unknown'],
      [4, 'bad'],
    ]);
    if (how === 'live') {
      const s = r.chance(0.7) ? live[live.length - 1 - r.int(Math.min(3, live.length))] : r.pick(live);
      return { text: `{{sid ${s.k}}}`, s, how };
    }
    if (how === 'stale') {
      const s = r.pick(dead);
      return { text: `{{sid ${s.k}}}`, s, how };
    }
    if (how === 'unknown') return { text: r.chance(0.5) ? `{{sid ${this.nextSess + 1000}}}` : r.bytes(15).toString('base64url'), s: null, how };
    const s = live.length ? r.pick(live) : null;
    const text = r.pick([
      '',
      'x'.repeat(r.pick([19, 21, 300, 3000])),
      '%00',
      'a%20b',
      '..%2F',
      s ? `{{sid ${s.k}}}x` : 'y',
      s ? `{{sid ${s.k}}}&sid=x` : 'z',
      s ? `x&sid={{sid ${s.k}}}` : '%',
      s ? `%20{{sid ${s.k}}}` : '%zz',
    ]);
    return { text, s: null, how };
  }

  // The query of a polling request, its parameters in a random order now
  // and then (the t= cache buster as socket.io-client sends it).
  pollUrl(sid, { eio = '4', transport = 'polling' } = {}) {
    const r = this.r;
    const parts = [`EIO=${eio}`, `transport=${transport}`, `t=${r.bytes(5).toString('base64url')}`];
    if (sid !== undefined) parts.push(`sid=${sid}`);
    if (r.chance(0.1)) {
      for (let i = parts.length - 1; i > 0; i--) {
        const j = r.int(i + 1);
        [parts[i], parts[j]] = [parts[j], parts[i]];
      }
    }
    return `/socket.io/?${parts.join('&')}`;
  }

  pollHead(method, url, extra = []) {
    const r = this.r;
    const h = [['Host', '127.0.0.1:{{port}}']];
    if (r.chance(0.3)) h.push(['Accept', '*/*']);
    if (r.chance(0.15)) h.push(['Origin', r.pick(['http://127.0.0.1', 'http://a.example', 'http://evil.example', 'null', `http://${'o'.repeat(300)}`])]);
    if (r.chance(0.2)) h.push(['Connection', r.pick(['keep-alive', 'close'])]);
    if (r.chance(0.05)) h.push(['Cookie', 'io=abc']);
    h.push(...extra);
    const version = r.chance(0.97) ? 'HTTP/1.1' : 'HTTP/1.0';
    return `${method} ${url} ${version}\r\n${h.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
  }

  // One packet of a POST's payload: {p (data), kind}. Polite: what a
  // client sends in the session's state as intended (a CONNECT first, then
  // events and pongs), so that sessions live on; else anything.
  pollPacket(s, polite = false) {
    const r = this.r;
    const sub = s ? s.sub : this.user();
    if (polite) {
      const kind = s && !s.connected ? 'connect' : r.weighted([
        [24, 'event'],
        [10, 'pong'],
        [2, 'ping'],
        [1, 'noop'],
        [1, 'disconnect'],
      ]);
      if (kind === 'connect' || kind === 'event') return this.pollPacketOf(kind, sub, true);
      return { p: kind === 'pong' ? '3' : kind === 'ping' ? '2' : kind === 'noop' ? '6' : '41', kind };
    }
    const kind = r.weighted([
      [13, 'connect'],
      [4, 'connect-bad'],
      [3, 'connect-bare'],
      [22, 'event'],
      [4, 'ack'],
      [9, 'pong'],
      [2, 'ping'],
      [2, 'noop'],
      [3, 'close'],
      [2, 'disconnect'],
      [2, 'upgrade'],
      [3, 'binary'],
      [6, 'sio'],
      [3, 'garbage'],
    ]);
    return this.pollPacketOf(kind, sub);
  }

  pollPacketOf(kind, sub, polite = false) {
    const r = this.r;
    switch (kind) {
      case 'connect': // every role, the session's user mostly
        return { p: `40{"token":"{{tok ${polite || r.chance(0.9) ? 'valid' : 'brief'} ${polite || r.chance(0.85) ? sub : this.user()} ${r.pick(ROLESETS)}}}"}`, kind };
      case 'connect-bad':
        return { p: `40${JSON.stringify({ token: this.token().text })}`, kind };
      case 'connect-bare':
        return { p: r.pick(['40', '40{}', '40/admin,', '40{"token":""}', '40[]', '40{"token":"{{tok valid u1 -}}"}x']), kind };
      case 'event': {
        const ack = r.chance(0.25) ? String(r.range(0, 9999)) : '';
        const room = r.weighted([
          [6, `user:${sub}`],
          [6, r.pick(ROOMS_OK)],
          [polite ? 0 : 2, r.pick(ROOMS_BAD)],
        ]);
        const ev = r.weighted([
          [6, ['ping']],
          [8, ['join', room]],
          [3, ['leave', room]],
          [3, ['config.watch', [r.pick(KEYS)]]],
          [1, ['refresh', `{{tok ${polite ? 'valid' : r.pick(['valid', 'brief', 'expired'])} ${sub} ${this.roles()}}}`]],
          [polite ? 0 : 1, ['ping', 'x'.repeat(r.pick([100, 5000]))]],
        ]);
        return { p: `42${ack}${JSON.stringify(ev)}`, kind };
      }
      case 'ack':
        return { p: r.pick(['430[]', '431["x"]', '43', '4312345678901234567890[]', '43x']), kind };
      case 'pong':
        return { p: '3', kind };
      case 'ping':
        return { p: r.pick(['2', '2probe']), kind };
      case 'noop':
        return { p: '6', kind };
      case 'close':
        return { p: '1', kind };
      case 'disconnect':
        return { p: r.pick(['41', '41/admin,']), kind };
      case 'upgrade':
        return { p: r.pick(['5', '3probe']), kind };
      case 'binary': // Engine.IO's base64 binary packet
        return { p: `b${r.bytes(r.range(0, 30)).toString('base64')}`, kind };
      case 'sio': // anything the WebSocket transport gets, odd or mutated
        return { p: this.sioMessage({ sub, roles: '-' }).m, kind };
      default:
        return { p: r.pick(['', '\u0000', 'x', '4', '9', '42', ' 3', '3 ', '\u00e9', { b64: r.bytes(r.range(1, 12)).toString('base64') }]), kind };
    }
  }

  // A POST of packets to a session: the right framing mostly, else an
  // empty, missing, short, long, oversized or declared-huge body.
  // `given`: these packets, well framed (a client's own sequence).
  pollPost(out, target = this.pickSid(), given = null) {
    const r = this.r;
    const s = target.s;
    // polite: packets for the session's state, well framed
    const polite = !given && s !== null && r.chance(0.6);
    const pk = given
      ? given.map((p) => ({ p, kind: 'given' }))
      : Array.from({ length: r.weighted([[10, 1], [4, 2], [2, r.range(3, 6)]]) }, () => {
          const x = this.pollPacket(s, polite);
          if (polite && x.kind === 'connect') s.connected = true;
          if (polite && x.kind === 'disconnect') s.connected = false;
          return x;
        });
    const body = [];
    pk.forEach((x, i) => {
      if (i) body.push('\u001e');
      body.push(x.p);
    });
    if (!given && !polite && r.chance(0.04)) body.push(r.pick(['\u001e', '\u001e\u001e'])); // empty packets at the end
    const method = given || polite ? 'POST' : r.weighted([
      [93, 'POST'],
      [2, 'PUT'],
      [2, 'OPTIONS'],
      [1, 'DELETE'],
      [1, 'PATCH'],
      [1, 'HEAD'],
    ]);
    const shape = given ? 'ok' : polite ? (r.chance(0.9) ? 'ok' : 'split') : r.weighted([
      [72, 'ok'],
      [4, 'split'],
      [4, 'cl0'],
      [3, 'nocl'],
      [5, 'short'],
      [3, 'long'],
      [3, 'oversize'],
      [2, 'declared'],
      [2, 'chunked'],
      [2, 'badcl'],
      [2, 'flood'],
    ]);
    const hdr = [['Content-Type', r.chance(0.9) ? 'text/plain;charset=UTF-8' : r.pick(['application/octet-stream', 'application/json'])]];
    if (!polite && r.chance(0.03)) hdr.push(['Expect', '100-continue']);
    if (method === 'OPTIONS' && r.chance(0.7)) hdr.push(['Access-Control-Request-Method', 'POST'], ['Origin', 'http://127.0.0.1']);
    let b = body;
    let tail = null;
    switch (shape) {
      case 'ok':
      case 'split':
        hdr.push(['Content-Length', '{{bodylen}}']);
        break;
      case 'cl0':
        hdr.push(['Content-Length', '0']);
        b = null;
        break;
      case 'nocl':
        tail = r.pick(['end', 'keep']);
        break;
      case 'short': // the body never ends: the client goes, or stays
        hdr.push(['Content-Length', `{{bodylen+${r.pick([1, 2, 10, 1000])}}}`]);
        tail = r.pick(['end', 'close', 'rst', 'keep', 'later']);
        break;
      case 'long':
        hdr.push(['Content-Length', `{{bodylen-${r.range(1, 3)}}}`]);
        break;
      case 'oversize': {
        const n = r.pick([65535, 65536, 65537, 70000, 300000]);
        b = ['42["ping","', { rep: 'x', n: n - 13 }, '"]'];
        hdr.push(['Content-Length', '{{bodylen}}']);
        break;
      }
      case 'declared':
        hdr.push(['Content-Length', String(r.pick([65537, 1048576, 1048577, 2 ** 40]))]);
        if (r.chance(0.5)) b = null;
        tail = r.pick(['close', 'rst', 'keep']);
        break;
      case 'chunked':
        hdr.push(['Transfer-Encoding', 'chunked']);
        b = 'a\r\n42["ping"]\r\n0\r\n\r\n';
        break;
      case 'flood': // packets enough for the rate limit, in one POST
        b = [{ rep: r.pick(['42["ping"]\u001e', '3\u001e', '2\u001e']), n: r.pick([50, 300, 2000]) }, '3'];
        hdr.push(['Content-Length', '{{bodylen}}']);
        break;
      default: // badcl
        hdr.push(['Content-Length', r.pick(['-1', 'abc', '1e3', ' 5', '0x10', '18446744073709551616', ''])]);
    }
    // only a POST left open is kept in view (the hub closes the others)
    const c = { id: this.nextId++, kind: 'ppost', sub: s ? s.sub : this.user() };
    if (tail === 'keep') {
      this.ensureRoom(out);
      this.conns.set(c.id, c);
    }
    const head = this.pollHead(method, this.pollUrl(target.text), hdr);
    const kinds = [...new Set(pk.map((x) => x.kind))].join('+');
    const act = { a: 'send', c: c.id, d: b === null ? head : { req: { h: head, b } }, k: `poll post ${polite ? 'polite' : shape} ${target.how} ${kinds}` };
    // most wait for the answer, as a client does before its next POST
    if ((shape === 'ok' || shape === 'split' || shape === 'long') && r.chance(0.85)) act.w = 1500;
    if (shape === 'split') Object.assign(act, this.cuts());
    out.push({ a: 'open', c: c.id, k: 'poll open' });
    out.push(act);
    if (tail === 'later') {
      out.push({ a: 'sleep', ms: r.range(0, 80), k: 'poll sleep' });
      out.push(this.closeConn(c, r.pick(['close', 'rst', 'end'])));
    } else if (tail !== null && tail !== 'keep') out.push(this.closeConn(c, tail));
    if (s && !polite) {
      const ends = pk.some((x) => ['close', 'binary', 'garbage'].includes(x.kind)) || ['cl0', 'oversize', 'chunked', 'badcl'].includes(shape);
      if (ends && r.chance(0.8)) s.dead = true;
      // output for a GET waiting (an answer, an ack, an error): it was answered
      if (pk.some((x) => ['connect', 'connect-bad', 'connect-bare', 'event', 'given'].includes(x.kind))) s.get = null;
      if (pk.some((x) => x.kind === 'connect')) s.connected = !s.connected; // a second CONNECT closes it
      if (pk.some((x) => x.kind === 'given')) s.connected = true;
    } else if (s && pk.some((x) => ['connect', 'event'].includes(x.kind))) s.get = null;
  }

  // A GET on a session: left waiting, waited on for a while, abandoned
  // (its connection gone mid-wait), doubled by a concurrent one, followed
  // by another request in the same write, or not read.
  pollGet(out, target = this.pickSid({ forGet: true }), mode = null) {
    const r = this.r;
    mode ??= r.weighted([
      [38, 'leave'],
      [20, 'wait'],
      [18, 'abandon'],
      [8, 'concurrent'],
      [4, 'pipelined'],
      [4, 'pause'],
      [6, 'split'],
      [3, 'body'],
      [4, 'late'],
    ]);
    const s = target.s;
    this.ensureRoom(out);
    const c = this.newConn('pget', { sub: s ? s.sub : this.user(), sess: s ? s.k : 0 });
    const head = this.pollHead(r.chance(0.97) ? 'GET' : r.pick(['HEAD', 'get']), this.pollUrl(target.text));
    const act = { a: 'send', c: c.id, d: head, k: `poll get ${target.how} ${mode}` };
    out.push({ a: 'open', c: c.id, k: 'poll open' });
    if (s && mode !== 'concurrent') s.get = c.id;
    switch (mode) {
      case 'wait': // as a client does: up to this long for the answer
        act.w = r.pick([50, 200, 600]);
        out.push(act);
        if (s) s.get = null;
        break;
      case 'split':
        Object.assign(act, this.cuts());
        out.push(act);
        break;
      case 'abandon':
        out.push(act);
        if (r.chance(0.7)) out.push({ a: 'sleep', ms: r.range(0, 60), k: 'poll sleep' });
        out.push(this.closeConn(c, r.pick(['close', 'rst', 'end'])));
        if (s && r.chance(0.8)) s.dead = true;
        break;
      case 'concurrent': // the second GET closes the session
        out.push(act);
        this.pollGet(out, target, r.pick(['leave', 'leave', 'abandon', 'wait']));
        if (s) s.dead = true;
        break;
      case 'pipelined': {
        const t2 = r.chance(0.7) ? target : this.pickSid();
        const next = r.pick([
          () => this.pollHead('GET', this.pollUrl(t2.text)),
          () => ({ req: { h: this.pollHead('POST', this.pollUrl(t2.text), [['Content-Length', '{{bodylen}}']]), b: '3' } }),
          () => `GET /socket.io/?EIO=4&transport=websocket&sid=${t2.text} HTTP/1.1\r\nHost: 127.0.0.1:{{port}}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${r.bytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
          () => 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{{port}}\r\n\r\n',
        ])();
        act.d = [head, next];
        out.push(act);
        break;
      }
      case 'late': {
        // another request on the connection while the GET waits (or after
        // its answer): the hub takes one request per connection
        out.push(act);
        out.push({ a: 'sleep', ms: r.range(0, 50), k: 'poll sleep' });
        const t2 = r.chance(0.7) ? target : this.pickSid();
        out.push({
          a: 'send',
          c: c.id,
          d: r.pick([
            () => this.pollHead('GET', this.pollUrl(t2.text)),
            () => ({ req: { h: this.pollHead('POST', this.pollUrl(t2.text), [['Content-Length', '{{bodylen}}']]), b: r.pick(['3', '42["ping"]', '1']) } }),
            () => 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{{port}}\r\n\r\n',
            () => `GET /socket.io/?EIO=4&transport=websocket&sid=${t2.text} HTTP/1.1\r\nHost: 127.0.0.1:{{port}}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${r.bytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
            () => r.pick(['\r\n', 'x', 'GET', { b64: r.bytes(20).toString('base64') }]),
          ])(),
          k: `poll get late ${t2.how}`,
        });
        break;
      }
      case 'body': // a GET with a body, sent or not
        act.d = { req: { h: head.replace(/\r\n\r\n$/, `\r\nContent-Length: ${r.chance(0.7) ? '{{bodylen}}' : '{{bodylen+5}}'}\r\n\r\n`), b: r.pick(['3', '42["ping"]', 'x'.repeat(100)]) } };
        out.push(act);
        break;
      case 'pause': // the answer is not read
        out.push(act);
        out.push({ a: 'pause', c: c.id, k: 'poll pause' });
        break;
      default:
        out.push(act);
    }
  }

  // A WebSocket naming a polling session: 2probe then 5 (the move), in the
  // right order or not, with polls, POSTs and closes in between.
  pollUpgrade(out, target = this.pickSid(), order = null) {
    const r = this.r;
    const s = target.s;
    const sub = s ? s.sub : this.user();
    const roles = s ? s.roles : this.roles();
    this.ensureRoom(out);
    const c = this.newConn('sio', { sub, roles, polite: r.chance(0.6), probe: s ? s.k : 0 });
    let p = `/socket.io/?EIO=4&transport=websocket&sid=${target.text}`;
    if (r.chance(0.2)) p += `&token={{tokq valid ${sub} ${roles}}}`;
    if (r.chance(0.04)) p = r.pick([`/socket.io/?EIO=3&transport=websocket&sid=${target.text}`, `/socket.io/?EIO=4&transport=polling&sid=${target.text}`, `/socket.io/?sid=${target.text}&transport=websocket&EIO=4`]);
    const head = `GET ${p} HTTP/1.1\r\nHost: 127.0.0.1:{{port}}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${r.bytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
    order ??= r.weighted([
      [14, 'right'],
      [4, 'probe-only'],
      [3, 'five-first'],
      [2, 'double-probe'],
      [3, 'odd-probe'],
      [3, 'post-mid'],
      [3, 'close-mid'],
      [2, 'five-late'],
      [2, 'dual'],
      [2, 'fragmented'],
      [2, 'none'],
    ]);
    out.push({ a: 'open', c: c.id, ...(r.chance(0.7) ? { ack: 1 } : {}), k: 'poll open' });
    out.push({ a: 'send', c: c.id, d: head, w: 2000, k: `poll upgrade ${target.how} ${order}` });
    const f = (m) => out.push({ a: 'send', c: c.id, d: this.text(m), k: `poll probe ${order}` });
    const moved = () => {
      if (s) s.dead = true; // its sid polls no more
      if (r.chance(0.5)) out.push(...this.politeFrames(c));
    };
    switch (order) {
      case 'right':
        f('2probe');
        // the GET that waits meanwhile is released with a noop
        if (r.chance(0.5)) this.pollGet(out, target, r.pick(['leave', 'wait']));
        if (r.chance(0.5)) out.push({ a: 'sleep', ms: r.range(0, 30), k: 'poll sleep' });
        f('5');
        moved();
        break;
      case 'probe-only':
        f('2probe');
        break;
      case 'five-first':
        f('5');
        if (r.chance(0.5)) f('2probe');
        break;
      case 'double-probe':
        f('2probe');
        f('2probe');
        if (r.chance(0.5)) f('5');
        break;
      case 'odd-probe':
        f(r.pick(['3probe', '2', '2probex', '2prob', '3', '6', '1', '40', '42["ping"]', '', '5x', '2probe\u001e5']));
        if (r.chance(0.5)) f('5');
        break;
      case 'post-mid':
        f('2probe');
        this.pollPost(out, target);
        if (r.chance(0.8)) {
          f('5');
          moved();
        }
        break;
      case 'close-mid':
        f('2probe');
        if (r.chance(0.5)) out.push({ a: 'sleep', ms: r.range(0, 30), k: 'poll sleep' });
        out.push(this.closeConn(c, r.pick(['close', 'rst', 'end'])));
        break;
      case 'five-late': // the ping timeout may close the session first
        f('2probe');
        out.push({ a: 'sleep', ms: r.range(200, 1500), k: 'poll sleep' });
        f('5');
        moved();
        break;
      case 'dual': {
        // a second WebSocket for the same session
        this.ensureRoom(out);
        const c2 = this.newConn('sio', { sub, roles, polite: false, probe: s ? s.k : 0 });
        out.push({ a: 'open', c: c2.id, k: 'poll open' });
        out.push({ a: 'send', c: c2.id, d: head.replace(/Sec-WebSocket-Key: [^\r]*/, `Sec-WebSocket-Key: ${r.bytes(16).toString('base64')}`), w: 2000, k: 'poll upgrade dual' });
        out.push({ a: 'send', c: c2.id, d: this.text('2probe'), k: 'poll probe dual' });
        f('2probe');
        f('5');
        out.push({ a: 'send', c: c2.id, d: this.text('5'), k: 'poll probe dual' });
        if (s) s.dead = true;
        break;
      }
      case 'fragmented':
        out.push({ a: 'send', c: c.id, d: [{ frame: { op: 1, fin: 0, key: this.key4(), p: '2pr' } }, { frame: { op: 9, key: this.key4(), p: 'x' } }, { frame: { op: 0, fin: 1, key: this.key4(), p: 'obe' } }], k: 'poll probe fragmented' });
        out.push({ a: 'send', c: c.id, d: this.text('5'), k: 'poll probe fragmented', ...this.cuts() });
        moved();
        break;
      default:
        break;
    }
  }

  // Events for the sessions' users, so that their output queues fill (and
  // overflow: the slow-consumer close) while no GET reads them.
  pollPublish(out) {
    const r = this.r;
    const live = this.liveSessions();
    const s = live.length ? r.pick(live) : null;
    const sub = s ? s.sub : this.user();
    const what = r.weighted([
      [10, 'small'],
      [4, 'big'],
      [3, 'burst'],
      [3, 'bot'],
      [2, 'config'],
    ]);
    const small = () => ({ a: 'pub', ch: 'tradestate', d: r.chance(0.9) ? JSON.stringify({ steamId: sub, token: 't', state: 'sent', msg: r.pick(['', 'hi', '\u2603', '\u001e', 'a\u001eb']) }) : `{"steamId":"${sub}","msg":"a\u001eb"}`, k: 'poll pub small' });
    switch (what) {
      case 'small':
        out.push(small());
        break;
      case 'big':
        for (let i = r.range(1, 5); i > 0; i--) out.push({ a: 'pub', ch: 'tradestate', d: ['{"steamId":"', sub, '","state":"big","msg":"', { rep: 'q', n: r.pick([100000, 300000, 500000]) }, '"}'], k: 'poll pub big' });
        break;
      case 'burst':
        for (let i = r.range(5, 20); i > 0; i--) out.push(small());
        break;
      case 'bot': {
        const bot = r.pick(BOTS);
        out.push({ a: 'pub', ch: `bot ${bot}`, d: `withdraw ${bot} ${sub}_abc tradeData:{"items":[1]}`, k: 'poll pub bot' });
        break;
      }
      default:
        out.push({ a: 'pub', ch: 'configuration-invalidate', d: JSON.stringify({ key: r.pick(KEYS), version: r.range(1, 999) }), k: 'poll pub config' });
    }
    if (s) s.get = null;
  }

  // A session opened as socket.io-client opens one: the handshake (its sid
  // learned by the runner), then mostly the CONNECT and the long poll.
  pollHandshake(out) {
    const r = this.r;
    const s = { k: this.nextSess++, sub: this.user(), roles: this.roles(), dead: false, get: null, connected: false };
    this.sessions.push(s);
    if (this.sessions.length > 32) this.sessions.shift();
    let url = this.pollUrl();
    if (r.chance(0.25)) url += `&token={{tokq ${r.pick(['valid', 'valid', 'valid', 'brief', 'expired', 'badsig'])} ${s.sub} ${s.roles}}}`;
    const id = this.nextId++;
    out.push({ a: 'open', c: id, k: 'poll open' });
    out.push({ a: 'send', c: id, d: this.pollHead('GET', url), w: 2000, sid: s.k, k: 'poll handshake' });
    if (r.chance(0.05)) out.push({ a: r.pick(['close', 'rst']), c: id, k: 'poll handshake close' });
    if (r.chance(0.75)) {
      const t = { text: `{{sid ${s.k}}}`, s, how: 'live' };
      this.pollPost(out, t, [`40{"token":"{{tok ${r.weighted([[80, 'valid'], [12, 'brief'], [4, 'expired'], [4, 'badsig']])} ${s.sub} ${s.roles}}}"}`]);
      if (r.chance(0.85)) this.pollGet(out, t, r.chance(0.5) ? 'wait' : 'leave');
      if (r.chance(0.4)) this.pollPost(out, t, [`42["join",${JSON.stringify(r.chance(0.5) ? `user:${s.sub}` : r.pick(ROOMS_OK))}]`]);
      // socket.io-client's default: the upgrade at once
      if (r.chance(0.3)) this.pollUpgrade(out, t, 'right');
    }
  }

  // Engine.IO refusals without a session: versions, transports, methods,
  // a CORS preflight.
  pollOdd(out) {
    const r = this.r;
    const id = this.nextId++;
    const [method, url, extra] = r.pick([
      ['GET', this.pollUrl(undefined, { eio: '3' }), []],
      ['GET', this.pollUrl(undefined, { eio: r.pick(['', '5', '4x', '04']) }), []],
      ['GET', this.pollUrl(undefined, { transport: r.pick(['websocket', 'flashsocket', '', 'Polling']) }), []],
      ['POST', this.pollUrl(), [['Content-Length', '1']]],
      ['PUT', this.pollUrl(), []],
      ['OPTIONS', this.pollUrl(), [['Origin', r.pick(['http://127.0.0.1', 'http://evil.example'])], ['Access-Control-Request-Method', 'POST']]],
      ['HEAD', this.pollUrl(), []],
      ['GET', '/socket.io/?EIO=4&transport=polling&sid=', []],
      ['GET', '/socket.io/?EIO=4&transport=polling&j=0', []],
    ]);
    let d = this.pollHead(method, url, extra);
    if (method === 'POST') d = { req: { h: d, b: '3' } };
    out.push({ a: 'open', c: id, k: 'poll open' });
    out.push({ a: 'send', c: id, d, w: r.chance(0.5) ? 500 : 0, k: `poll odd ${method}` });
  }

  // One polling step.
  pollStep(out) {
    const r = this.r;
    const live = this.liveSessions().length;
    const gets = this.liveConns('pget');
    const what = r.weighted([
      [live ? 14 : 40, 'handshake'],
      [22, 'get'],
      [28, 'post'],
      [live ? 10 : 2, 'upgrade'],
      [live ? 12 : 2, 'pub'],
      [gets.length ? 6 : 0, 'abandon'],
      [gets.length ? 2 : 0, 'pause'],
      [4, 'odd'],
      [1, 'flood'],
    ]);
    switch (what) {
      case 'handshake':
        this.pollHandshake(out);
        break;
      case 'get':
        this.pollGet(out);
        break;
      case 'post':
        this.pollPost(out);
        break;
      case 'upgrade':
        this.pollUpgrade(out);
        break;
      case 'pub':
        this.pollPublish(out);
        break;
      case 'abandon': {
        // a GET waiting (or answered) goes away
        const c = r.pick(gets);
        out.push(this.closeConn(c, r.pick(['close', 'rst', 'end'])));
        break;
      }
      case 'pause': {
        // a GET that stops reading while its session's output grows
        const c = r.pick(gets);
        out.push({ a: 'pause', c: c.id, k: 'poll pause' });
        for (let i = r.range(1, 4); i > 0; i--) out.push({ a: 'pub', ch: 'tradestate', d: ['{"steamId":"', c.sub, '","state":"big","msg":"', { rep: 'z', n: 200000 }, '"}'], k: 'poll pub big' });
        out.push({ a: 'sleep', ms: r.range(10, 100), k: 'poll sleep' });
        if (r.chance(0.6)) out.push({ a: 'resume', c: c.id, k: 'poll resume' });
        else out.push(this.closeConn(c, r.pick(['close', 'rst'])));
        break;
      }
      case 'flood': {
        // many sessions at once (the session table grows), most never
        // polled again: the ping timeout or SIGTERM ends them
        for (let i = r.range(8, 40); i > 0; i--) {
          const sess = { k: this.nextSess++, sub: this.user(), roles: this.roles(), dead: false, get: null, connected: false };
          this.sessions.push(sess);
          if (this.sessions.length > 32) this.sessions.shift();
          const id = this.nextId++;
          out.push({ a: 'open', c: id, k: 'poll open' });
          out.push({ a: 'send', c: id, d: this.pollHead('GET', this.pollUrl()), sid: sess.k, k: 'poll handshake flood' });
        }
        break;
      }
      default:
        this.pollOdd(out);
    }
  }

  // ---------------------------------------------------------- recovery (SPEC §9)

  // A native or Socket.IO connection as intended, kept for the recoveries
  // that name it after it is gone: {id, kind, sub, roles, rooms}.
  remember(c) {
    c.rooms ??= new Set();
    this.past.push(c);
    if (this.past.length > 32) this.past.shift();
  }

  // One of the past connections of this framing: a recent one mostly.
  pastConn(kind) {
    const r = this.r;
    const cs = this.past.filter((p) => p.kind === kind);
    if (!cs.length) return null;
    return r.chance(0.7) ? cs[cs.length - 1 - r.int(Math.min(3, cs.length))] : r.pick(cs);
  }

  // An offset: {v (raw text, may hold templates), how, type ('string' or a
  // JSON value of another type, for Socket.IO)}. The offsets the hub gave
  // are read by the runner ({{offset C}}); the rest is what a buggy or
  // hostile page sends.
  recoveryOffset(prev, { json = false } = {}) {
    const r = this.r;
    const how = r.weighted([
      [prev ? 40 : 0, 'conn'],
      [16, 'any'],
      [8, 'shifted'],
      [22, 'garbage'],
      [4, 'huge'],
      [json ? 10 : 0, 'type'],
    ]);
    switch (how) {
      case 'conn':
        return { v: `{{offset ${prev.id}}}`, how };
      case 'any':
        return { v: r.chance(0.6) ? '{{offset *}}' : `{{offset *${r.int(8)}}}`, how };
      case 'shifted': // from the future, an anchor no hub saw, one too old
        return { v: `{{offset ${prev && r.chance(0.6) ? prev.id : '*'} ${r.pick(['+1', '+2', '-1', '+1000000', 'a+1', 'a-1', 'a+100000', 'a-120000', 'a-99999999999'])}}}`, how };
      case 'garbage':
        return {
          v: r.pick(['', '0', '0-0', '1-0', '1-1', '-', '1-', '-1', '01-2', '1-02', '1--2', '1-2-3', '+1-2', ' 1-2', '1-2 ', '1-2\u0000', '\u0000', '1.5-2', '1e3-2', 'abc', '\uff11-2', '1-2\n', '"1-2"', '1-2,3', '1-2&offset=3-4', '9007199254740991-9007199254740991', '9007199254740992-0', '1-9007199254740992', '18446744073709551617-1', '99999999999999999999-1', '10000000000000000-1', `${'1'.repeat(17)}-1`, 'x'.repeat(41), '1-' + '0'.repeat(39)]),
          how,
        };
      case 'huge':
        return { v: `1-${'9'.repeat(r.pick([40, 300, 4080, 4200, 9000]))}`, how };
      default:
        return { v: null, json: JSON.stringify(r.pick([0, 1, -1, 1.5, 1e300, 2 ** 53, 1764693423518, null, true, {}, [], ['1-0'], { anchor: 1, count: 0 }])), how };
    }
  }

  // A `rooms=` list: the rooms the page had joined, rooms its token allows
  // or not, invalid names, empty entries, lists longer than a recovery reads.
  recoveryRooms(prev, sub) {
    const r = this.r;
    const one = () =>
      r.weighted([
        [prev && prev.rooms && prev.rooms.size ? 14 : 0, () => r.pick([...prev.rooms])],
        [10, () => r.pick(ROOMS_OK)], // allowed with ops, forbidden otherwise
        [4, () => `user:${sub}`], // the own room, named again
        [4, () => `user:${this.user()}`], // another user's: forbidden
        [4, () => r.pick(ROOMS_BAD)],
        [2, () => `config:${r.pick(KEYS)}`],
      ])();
    const n = r.weighted([
      [12, r.range(1, 3)],
      [2, 0],
      [3, r.range(13, 16)], // around the 14 rooms a native recovery reads
      [1, r.pick([40, 300])],
    ]);
    const enc = (room) => (r.chance(0.7) ? encodeURIComponent(room).replace(/%3A/g, ':') : encodeURIComponent(room));
    let list = Array.from({ length: n }, () => enc(one())).join(r.chance(0.9) ? ',' : r.pick(['%2C', ',,', ';']));
    if (r.chance(0.08)) list = r.pick([`${list},`, `,${list}`, `${list}&rooms=ops`, `${'bot:7,'.repeat(800)}ops`, `${'x'.repeat(5000)}`]);
    return list;
  }

  // What a page missed while it was away: events of its rooms.
  missedPub(prev) {
    const r = this.r;
    const rooms = prev.rooms ? [...prev.rooms].filter((x) => x.startsWith('bot:')) : [];
    const what = r.weighted([
      [7, 'user'],
      [rooms.length ? 2 : 0, 'bot'],
      [1, 'everyone'],
    ]);
    if (what === 'bot') {
      const bot = r.pick(rooms).slice(4);
      return { a: 'pub', ch: `bot ${bot}`, d: `withdraw ${bot} ${prev.sub}_abc tradeData:{"items":[1]}`, k: 'recover pub bot' };
    }
    if (what === 'everyone') return { a: 'pub', ch: 'itemReserved', d: r.pick(APPS), k: 'recover pub itemReserved' };
    return { a: 'pub', ch: 'tradestate', d: JSON.stringify({ steamId: prev.sub, token: 't', state: 'sent', msg: `missed ${r.int(1000)}` }), k: 'recover pub user' };
  }

  // A reconnect that asks for what it missed: mostly after its connection
  // went away (the events published meanwhile are what it should get),
  // else for a connection still open, or none at all.
  recoverStep(out) {
    const r = this.r;
    const sio = r.chance(0.45);
    const prev = this.pastConn(sio ? 'sio' : 'native');
    if (prev && this.conns.has(prev.id) && r.chance(0.6)) {
      // a transport close (not a DISCONNECT): the hub saves a Socket.IO session
      out.push(this.closeConn(this.conns.get(prev.id), r.pick(['close', 'rst', 'end'])));
      for (let i = r.weighted([[3, 0], [6, 1], [4, r.range(2, 4)], [1, r.range(6, 12)]]); i > 0; i--) out.push(this.missedPub(prev));
      // anchors come once a second: now and then the gap spans one
      if (r.chance(0.1)) out.push({ a: 'sleep', ms: r.range(200, 1200), k: 'recover sleep' });
    }
    if (!sio && r.chance(0.08)) {
      // a polling session's CONNECT asking for a recovery
      const t = this.pickSid();
      this.pollPost(out, t, [`40${this.recoveryAuth(this.pastConn('sio'), t.s ? t.s.sub : this.user(), t.s ? t.s.roles : this.roles())}`]);
      return;
    }
    this.ensureRoom(out);
    if (sio) this.recoverSio(out, prev);
    else this.recoverNative(out, prev);
  }

  // What happens right after the reconnect, while the hub reads history and
  // holds the connection's output: events published, frames sent, the
  // connection gone again, Redis stopped.
  duringRecovery(out, c, sub) {
    const r = this.r;
    const what = r.weighted([
      [50, 'nothing'],
      [16, 'pub'],
      [12, 'frames'],
      [10, 'close'],
      [3, 'freeze'],
      [9, 'sleep'],
    ]);
    switch (what) {
      case 'pub':
        for (let i = r.range(1, 4); i > 0; i--) out.push(this.missedPub({ sub, rooms: c.rooms }));
        break;
      case 'frames':
        if (c.kind === 'native' || c.kind === 'sio') out.push(...this.politeFrames(c));
        break;
      case 'close':
        out.push(this.closeConn(c, r.pick(['close', 'rst', 'end'])));
        break;
      case 'freeze':
        out.push({ a: 'redis-freeze', ms: r.range(100, 1500), k: 'recover redis-freeze' });
        break;
      case 'sleep':
        out.push({ a: 'sleep', ms: r.range(5, 100), k: 'recover sleep' });
        break;
      default:
    }
    return what;
  }

  // GET /ws?token=...&offset=X[&rooms=...]
  recoverNative(out, prev) {
    const r = this.r;
    const polite = r.chance(0.75);
    let tok;
    if (prev && polite && r.chance(0.85)) tok = { text: `{{tokq valid ${prev.sub} ${prev.roles}}}`, valid: true, sub: prev.sub, roles: prev.roles };
    else tok = polite ? this.validToken({ q: true }) : this.token({ q: true });
    const off = this.recoveryOffset(prev);
    const header = r.chance(0.25);
    const params = [];
    if (!header) params.push(`token=${tok.text}`);
    if (r.chance(0.95)) params.push(`offset=${/\{\{offset/.test(off.v) ? off.v : encodeURIComponent(off.v)}`);
    const rooms = r.chance(0.6) ? this.recoveryRooms(prev, tok.sub) : null;
    if (rooms !== null) params.push(`rooms=${rooms}`);
    if (r.chance(0.06)) params.push(r.pick(['offset=', 'offset=1-0', 'offset={{offset *}}', 'rooms=', 'rooms=ops', 'x=1', 'offset']));
    if (r.chance(0.2)) {
      for (let i = params.length - 1; i > 0; i--) {
        const j = r.int(i + 1);
        [params[i], params[j]] = [params[j], params[i]];
      }
    }
    const headers = [['Host', '127.0.0.1:{{port}}']];
    if (header) headers.push(['Authorization', `Bearer ${tok.text.replace(/^\{\{tokq/, '{{tok')}`]);
    headers.push(['Upgrade', 'websocket'], ['Connection', 'Upgrade'], ['Sec-WebSocket-Key', r.bytes(16).toString('base64')], ['Sec-WebSocket-Version', '13']);
    const head = `GET ${r.chance(0.95) ? '/ws' : '/ws/'}?${params.join('&')} HTTP/1.1\r\n${headers.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
    const c = this.newConn(tok.valid ? 'native' : 'http', { sub: tok.sub, roles: tok.roles, polite });
    if (tok.valid) this.remember(c);
    const label = `recover native ${off.how}${rooms === null ? '' : ' rooms'}`;
    out.push({ a: 'open', c: c.id, ...(r.chance(0.7) ? { ack: 1 } : {}), k: label });
    out.push({ a: 'send', c: c.id, d: head, w: r.chance(0.9) ? 2000 : 0, k: label });
    if (tok.valid) this.duringRecovery(out, c, tok.sub);
  }

  // The auth payload of a CONNECT that asks for a recovery: {token, pid,
  // offset}, each valid, garbage, of another type or missing.
  recoveryAuth(prev, sub, roles) {
    const r = this.r;
    const fields = [];
    const tok = r.weighted([
      [85, `"{{tok valid ${prev && r.chance(0.85) ? `${prev.sub} ${prev.roles}` : `${sub} ${roles}`}}}"`],
      [10, JSON.stringify(this.token().text)],
      [5, null],
    ]);
    if (tok !== null) fields.push(`"token":${tok}`);
    const others = this.liveConns('sio').filter((x) => !prev || x.id !== prev.id);
    const pid = r.weighted([
      [prev ? 42 : 0, () => `"{{pid ${prev.id}}}"`],
      [12, () => `"{{pid *${r.chance(0.5) ? '' : r.int(6)}}}"`],
      [others.length ? 8 : 0, () => `"{{pid ${r.pick(others).id}}}"`], // a session still open: never saved
      [16, () => JSON.stringify(r.pick(['', 'x', 'a'.repeat(20), 'a'.repeat(21), 'a'.repeat(24), 'a'.repeat(25), 'p'.repeat(300), 'é', 'a b', '../x', 'a\u0000b', '{{pid *}}x', 'a%00', 'a\nb']))],
      [12, () => JSON.stringify(r.pick([0, 5, -1, 1.5, null, true, false, {}, [], { pid: 'x' }, ['{{pid *}}']]))],
      [6, () => null],
    ])();
    if (pid !== null) fields.push(`"pid":${pid}`);
    const off = this.recoveryOffset(prev, { json: true });
    if (r.chance(0.94)) fields.push(`"offset":${off.v === null ? off.json : /\{\{offset/.test(off.v) ? `"${off.v}"` : JSON.stringify(off.v)}`);
    if (r.chance(0.05)) fields.push(r.pick(['"pid":"x"', '"offset":"1-0"', '"token":""', '"x":{"pid":"y"}']));
    if (r.chance(0.15)) {
      for (let i = fields.length - 1; i > 0; i--) {
        const j = r.int(i + 1);
        [fields[i], fields[j]] = [fields[j], fields[i]];
      }
    }
    return `{${fields.join(',')}}`;
  }

  // A Socket.IO client coming back: a WebSocket, then a CONNECT whose auth
  // carries the pid and offset it had (once, twice, around a DISCONNECT).
  recoverSio(out, prev) {
    const r = this.r;
    const polite = r.chance(0.75);
    const sub = prev && r.chance(0.9) ? prev.sub : this.user();
    const roles = prev && r.chance(0.9) ? prev.roles : this.roles();
    const c = this.newConn('sio', { sub, roles, polite });
    this.remember(c);
    let p = '/socket.io/?EIO=4&transport=websocket';
    if (r.chance(0.2)) p += `&token={{tokq valid ${sub} ${roles}}}`;
    const head = `GET ${p} HTTP/1.1\r\nHost: 127.0.0.1:{{port}}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${r.bytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
    const auth = this.recoveryAuth(prev, sub, roles);
    const order = r.weighted([
      [70, 'once'],
      [7, 'twice'],
      [6, 'disconnect'],
      [5, 'nsp'],
      [6, 'fragmented'],
      [6, 'split'],
    ]);
    const label = `recover sio ${order}`;
    const f = (m) => out.push({ a: 'send', c: c.id, d: this.text(m), k: label });
    out.push({ a: 'open', c: c.id, ...(r.chance(0.7) ? { ack: 1 } : {}), k: label });
    out.push({ a: 'send', c: c.id, d: head, w: 2000, k: label });
    switch (order) {
      case 'twice': // a second CONNECT while the first recovers
        f(`40${auth}`);
        f(`40${r.chance(0.5) ? auth : this.recoveryAuth(prev, sub, roles)}`);
        break;
      case 'disconnect': // the first recovery abandoned, another asked for
        f(`40${auth}`);
        if (r.chance(0.3)) out.push({ a: 'sleep', ms: r.range(0, 30), k: 'recover sleep' });
        f('41');
        f(`40${r.chance(0.5) ? auth : this.recoveryAuth(prev, sub, roles)}`);
        break;
      case 'nsp':
        f(`40${r.pick(['/admin,', '/,', '/x,'])}${auth}`);
        break;
      case 'fragmented': {
        const pieces = this.pieces(`40${auth}`, r.range(2, 3));
        out.push({ a: 'send', c: c.id, d: pieces.map((pc, i) => ({ frame: { op: i === 0 ? 1 : 0, fin: i === pieces.length - 1 ? 1 : 0, key: this.key4(), p: pc } })), k: label });
        break;
      }
      case 'split':
        out.push({ a: 'send', c: c.id, d: this.text(`40${auth}`), k: label, ...this.cuts() });
        break;
      default:
        f(`40${auth}`);
    }
    this.duringRecovery(out, c, sub);
  }

  // ---------------------------------------------------------- steps

  liveConns(kind) {
    return [...this.conns.values()].filter((c) => !kind || (Array.isArray(kind) ? kind.includes(c.kind) : c.kind === kind));
  }

  closeConn(c, how) {
    this.conns.delete(c.id);
    return { a: how, c: c.id, k: `${how} ${c.kind}` };
  }

  // Makes room under MAX_CONNS by closing the oldest.
  ensureRoom(out) {
    while (this.conns.size >= MAX_CONNS) {
      const oldest = this.conns.values().next().value;
      out.push(this.closeConn(oldest, this.r.pick(['close', 'close', 'rst', 'end'])));
    }
  }

  newConn(kind, extra = {}) {
    const c = { id: this.nextId++, kind, ...extra };
    this.conns.set(c.id, c);
    return c;
  }

  httpOn(c, out) {
    const r = this.r;
    const one = () => (r.chance(0.45) ? this.plausibleRequest() : this.httpRequest());
    const reqs = [one()];
    // pipelined: more requests in the same write
    if (r.chance(0.12)) for (let i = r.range(1, 3); i > 0; i--) reqs.push(one());
    const label = reqs.length > 1 ? `${reqs[0].label} +pipelined` : reqs[0].label;
    const data = reqs.map((q) => q.data);
    const tail = reqs[reqs.length - 1].tail;
    const act = { a: 'send', c: c.id, d: data, k: label };
    if (r.chance(0.25)) Object.assign(act, this.cuts()); // in pieces, as a slow client would
    out.push(act);
    if (tail !== 'keep') out.push(this.closeConn(c, tail));
    else if (r.chance(0.3)) out.push(this.closeConn(c, r.pick(['close', 'end'])));
  }

  // ---------------------------------------------------------- job queues

  // A job id: mostly one of a few (so that hashes, events and ends meet),
  // else one no job has, a huge one, an empty one, bytes.
  jobId() {
    const r = this.r;
    return r.weighted([
      [30, r.pick(JOB_IDS)],
      [4, String(r.range(100000, 999999))],
      [2, 'j'.repeat(r.pick([199, 200, 201, 300, 5000]))],
      [2, ''],
      [1, r.pick(['a:b', 'a b', '\u00e9', '1\u0000x', '*', 'x?[a]\\'])],
      [1, bin(r.bytes(r.range(1, 12)))],
    ]);
  }

  // A user id to route to: mostly a connected user's, else a number or
  // something that is not a user id.
  jobUser() {
    const r = this.r;
    return r.weighted([
      [20, this.user()],
      [3, r.pick([76561198000000001, 0, -1, 1.5, 2 ** 63, 12345])],
      [3, r.pick(['', 'a b', 'x'.repeat(65), '<b>', '\u00e9', 'user:u3', '..'])],
      [2, r.pick([null, true, [], {}, ['u3'], { id: 'u3' }])],
    ]);
  }

  // A job's data as JSON text: the user at the hub's user field (a dotted
  // path: nested objects), or at another path, or none; or not JSON.
  jobData({ user = this.jobUser(), shape } = {}) {
    const r = this.r;
    shape ??= r.weighted([
      [20, 'ok'],
      [3, 'other-field'],
      [2, 'no-user'],
      [2, 'extra'],
      [2, 'not-json'],
      [1, 'big'],
      [1, 'huge'],
      [1, 'deep'],
      [1, 'scalar'],
      [1, 'bytes'],
    ]);
    const at = (field, v) => {
      const parts = field.split('.');
      const o = {};
      let cur = o;
      parts.forEach((p, i) => {
        cur[p] = i === parts.length - 1 ? v : {};
        cur = cur[p];
      });
      return o;
    };
    switch (shape) {
      case 'ok':
        return JSON.stringify({ ...at(this.userField, user), n: r.int(100) });
      case 'other-field':
        return JSON.stringify(at(r.pick(['userId', 'steamId', 'owner', 'owner.id.x', 'a.b']), user));
      case 'no-user':
        return JSON.stringify(this.anyJson());
      case 'extra':
        return JSON.stringify({ ...at(this.userField, user), extra: this.anyJson() });
      case 'not-json':
        return this.mutate(JSON.stringify(at(this.userField, user)));
      case 'big': // over the 4 KiB a result is cut at, under the 1 MiB read
        return ['{"pad":"', { rep: 'p', n: r.pick([5000, 100000]) }, `",${JSON.stringify(at(this.userField, user)).slice(1)}`];
      case 'huge': // over the 1 MiB a job's data is read at
        return ['{"pad":"', { rep: 'h', n: 1100000 }, '"}'];
      case 'deep':
        return r.chance(0.5) ? '['.repeat(r.pick([100, 3000, 100000])) : `${'{"a":'.repeat(2500)}1${'}'.repeat(2500)}`;
      case 'scalar':
        return r.pick(['null', '1', '"u3"', '[]', '', 'true']);
      default:
        return bin(r.bytes(r.range(1, 40)));
    }
  }

  // A progress, return value or reason: JSON, not JSON, long, bytes.
  jobExtra() {
    const r = this.r;
    return r.weighted([
      [10, String(r.int(101))],
      [5, JSON.stringify(this.anyJson())],
      [3, JSON.stringify({ pct: r.int(100), note: 'x' })],
      [3, this.mutate(JSON.stringify({ a: [1, 2] }))],
      [2, r.pick(['', 'boom', 'Error: nope\n    at x (y.js:1:2)', '\u00e9\u2603', 'null'])],
      [1, ['"', { rep: 'r', n: r.pick([4095, 4096, 4097, 100000]) }, '"']],
      [1, [{ rep: 'e', n: r.pick([4097, 100000]) }]],
      [1, bin(r.bytes(r.range(1, 64)))],
      [1, bin(Buffer.concat([Buffer.from('"ab'), Buffer.from(r.pick(BAD_UTF8)), Buffer.from('"')]))],
    ]);
  }

  // One BullMQ events-stream entry (XADD <prefix>:<name>:events).
  bullmqEvent(id = this.jobId(), ev) {
    const r = this.r;
    ev ??= r.weighted([
      [6, 'active'],
      [8, 'progress'],
      [5, 'completed'],
      [4, 'failed'],
      [2, 'waiting'],
      [1, r.pick(['added', 'stalled', 'removed', 'drained', 'delayed', 'retries-exhausted'])],
      [1, r.pick(['', 'ACTIVE', 'garbage', 'progress\u0000', 'x'.repeat(300)])],
      [1, bin(r.bytes(r.range(1, 8)))],
    ]);
    const key = r.chance(0.93) ? 'bull:nfq:events' : r.pick(['bull:nfgone:events', 'bull:nfq:events:x', 'bull:nfb:events']);
    const f = [];
    const xf = { progress: 'data', completed: 'returnvalue', failed: 'failedReason' }[ev];
    if (r.chance(0.97)) f.push('event', ev);
    if (r.chance(0.95)) f.push('jobId', id);
    if (xf && r.chance(0.92)) f.push(xf, this.jobExtra());
    if (r.chance(0.2)) f.push(r.pick(['prev', 'attemptsMade', 'name', 'data', 'returnvalue', 'event', 'jobId']), r.pick(['active', '1', '', '{}', 'completed']));
    if (r.chance(0.05)) f.push(bin(r.bytes(3)), bin(r.bytes(5)));
    if (!f.length) f.push('x', 'y');
    const trim = r.chance(0.1) ? ['MAXLEN', '~', String(r.pick([1, 10, 1000]))] : [];
    return { a: 'redis', args: ['XADD', key, ...trim, '*', ...f], k: `redis XADD bullmq ${ev}` };
  }

  // A job hash: the data (its user), the name; or a key of another type.
  jobHash(q = this.r.pick(['nfq', 'nfb']), id = this.jobId(), opts = {}) {
    const r = this.r;
    const key = `bull:${q}:${id}`;
    const how = opts.how ?? r.weighted([
      [20, 'hset'],
      [2, 'no-data'],
      [2, 'wrongtype'],
      [2, 'del'],
      [1, 'expire'],
    ]);
    switch (how) {
      case 'hset': {
        const f = ['data', this.jobData(opts)];
        if (r.chance(0.85)) f.push('name', r.pick(['backtest', 'optimise', '', '\u00e9', 'x'.repeat(300), bin(Buffer.from([0xff, 0x41]))]));
        if (r.chance(0.3)) f.push('timestamp', String(Date.now() - r.int(100000)), 'processedOn', String(Date.now() - r.int(10000)));
        if (r.chance(0.1)) f.push('opts', '{"attempts":2}', 'delay', r.pick(['0', '-5', 'x']));
        return { a: 'redis', args: ['HSET', key, ...f], k: 'redis HSET job' };
      }
      case 'no-data':
        return { a: 'redis', args: ['HSET', key, 'name', 'nameless', 'x', '1'], k: 'redis HSET job-nodata' };
      case 'wrongtype':
        return r.chance(0.5)
          ? { a: 'redis', args: ['SET', key, r.pick(['{"userId":"u3"}', 'x'])], k: 'redis SET job-wrongtype' }
          : { a: 'redis', args: ['LPUSH', key, 'a', 'b'], k: 'redis LPUSH job-wrongtype' };
      case 'expire':
        return { a: 'redis', args: ['PEXPIRE', key, String(r.pick([1, 50, 500]))], k: 'redis PEXPIRE job' };
      default:
        return { a: 'redis', args: ['DEL', key], k: 'redis DEL job' };
    }
  }

  // A message on Bull v3's global event channels.
  bullPub(id = this.jobId(), ev) {
    const r = this.r;
    ev ??= r.weighted([
      [5, 'active'],
      [7, 'progress'],
      [5, 'completed'],
      [4, 'failed'],
      [1, 'other'],
    ]);
    if (ev === 'active') {
      const ch = `bull:nfb:active@${r.pick(['tok', '', 'a:b', '*', '\u00e9', 'x'.repeat(100)])}`;
      return { a: 'pub', ch, d: r.chance(0.9) ? id : this.mutate(String(id)), k: 'pub bull-active' };
    }
    if (ev === 'other') {
      const ch = r.pick(['bull:nfb:progres', 'bull:nfb:completedx', 'bull:nfb:', 'bull:nfb:active', 'bull:nfq:progress', 'bull:nfb:waiting']);
      return { a: 'pub', ch, d: JSON.stringify({ jobId: id, progress: 1 }), k: 'pub bull-other' };
    }
    const vf = ev === 'progress' ? 'progress' : 'val';
    const jid = r.weighted([
      [12, id],
      [2, r.pick([1, 2, 3, 42, -1, 0, 2 ** 63, 1.5, 1e300])],
      [2, r.pick([null, true, [], {}, ['1']])],
    ]);
    const o = { jobId: jid };
    if (r.chance(0.93)) {
      // progress: any JSON; completed: the result's JSON as a string; failed: the reason
      o[vf] = ev === 'progress'
        ? r.weighted([[6, r.int(101)], [3, this.anyJson()], [1, 'x'.repeat(r.pick([10, 5000]))]])
        : r.weighted([[6, materializeStatic(this.jobExtra()).toString('utf8')], [2, this.anyJson()]]);
    }
    const text = JSON.stringify(o);
    const d = r.weighted([
      [12, text],
      [3, this.mutate(text)],
      [1, r.pick(['', '{}', 'null', '[]', '{"jobId"', `"${id}"`, '{"jobId":"1","jobId":"2"}'])],
      [1, '{"jobId":"1","progress":' + '['.repeat(r.pick([100, 5000])) + '}'],
    ]);
    return { a: 'pub', ch: `bull:nfb:${ev}`, d, k: `pub bull-${ev}` };
  }

  // An entry of the Streams queue: its user as a field, in a data field
  // holding JSON, both, or none.
  streamAdd() {
    const r = this.r;
    const f = [];
    const user = this.jobUser();
    const plain = this.userField.includes('.') ? 'userId' : this.userField;
    const how = r.weighted([
      [8, 'field'],
      [6, 'data'],
      [2, 'both'],
      [2, 'none'],
      [1, 'bad-field'],
    ]);
    if (how === 'field' || how === 'both') f.push(plain, typeof user === 'string' ? user : JSON.stringify(user));
    if (how === 'bad-field') f.push(plain, r.pick(['', 'a b', 'x'.repeat(200), bin(r.bytes(6))]));
    if (how === 'data' || how === 'both') f.push('data', this.jobData({ user }));
    if (r.chance(0.8)) f.push('name', r.pick(['backtest', 'optimise', '', 'x'.repeat(300), bin(Buffer.from([0xc3]))]));
    if (r.chance(0.2)) f.push('payload', '{}');
    if (!f.length) f.push('k', 'v');
    const id = r.weighted([
      [30, '*'],
      [1, '18446744073709551615-18446744073709551615'],
      [1, `${Date.now() + r.pick([0, 86400000])}-*`],
      [1, '0-1'],
    ]);
    const trim = r.chance(0.05) ? ['MAXLEN', String(r.pick([1, 5]))] : [];
    return { a: 'redis', args: ['XADD', 'nfs', ...trim, id, ...f], k: `redis XADD nfs-${how}` };
  }

  // The Streams queue's group and its consumers, by hand or by a script
  // that acts as a worker would (taking what is pending).
  streamWork() {
    const r = this.r;
    const consumer = r.pick(['c1', 'c2', 'worker-3', 'x'.repeat(100)]);
    const what = r.weighted([
      [3, 'create'],
      [1, 'destroy'],
      [1, 'setid'],
      [8, 'read'],
      [6, 'ack'],
      [3, 'claim'],
      [4, 'dead'],
      [1, 'delconsumer'],
      [1, 'ack-bad'],
    ]);
    let args;
    switch (what) {
      case 'create':
        args = ['XGROUP', 'CREATE', 'nfs', 'nfg', r.pick(['$', '0']), 'MKSTREAM'];
        break;
      case 'destroy':
        args = ['XGROUP', 'DESTROY', 'nfs', 'nfg'];
        break;
      case 'setid':
        args = ['XGROUP', 'SETID', 'nfs', 'nfg', r.pick(['0', '$', '1-1'])];
        break;
      case 'read':
        args = ['XREADGROUP', 'GROUP', 'nfg', consumer, 'COUNT', String(r.pick([1, 2, 5, 100])), 'STREAMS', 'nfs', r.chance(0.9) ? '>' : '0'];
        break;
      case 'ack': // the oldest pending entries, acknowledged (a worker done)
        args = ['EVAL', "local n = 0 for _, p in ipairs(redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', tonumber(ARGV[2]))) do n = n + redis.call('XACK', KEYS[1], ARGV[1], p[1]) end return n", '1', 'nfs', 'nfg', String(r.pick([1, 2, 10]))];
        break;
      case 'claim':
        args = r.chance(0.5)
          ? ['XAUTOCLAIM', 'nfs', 'nfg', consumer, '0', '0-0', 'COUNT', String(r.pick([1, 10]))]
          : ['EVAL', "local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1) if p[1] then return redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, p[1][1]) end return 0", '1', 'nfs', 'nfg', consumer];
        break;
      case 'dead': { // the oldest pending entry to the dead letters (its id, a reason), then acknowledged, as a worker gives up; or a dead letter of its own
        const reason = r.weighted([[8, r.pick(['too slow', 'boom', ''])], [1, 'r'.repeat(r.pick([4097, 100000]))], [1, bin(r.bytes(10))]]);
        const rf = r.pick(['reason', 'reason', 'error', 'failedReason', 'why']);
        const idf = r.pick(['id', 'id', 'jobId', 'originalId', 'nope']);
        if (r.chance(0.7)) {
          args = ['EVAL', "local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1) if not p[1] then return 0 end redis.call('XADD', KEYS[2], '*', ARGV[2], p[1][1], ARGV[3], ARGV[4]) if ARGV[5] == '1' then redis.call('XACK', KEYS[1], ARGV[1], p[1][1]) end return 1", '2', 'nfs', 'nfs-dead', 'nfg', idf, rf, reason, r.chance(0.85) ? '1' : '0'];
        } else {
          const f = [idf, r.pick(['1-0', `${Date.now()}-0`, 'x'.repeat(r.pick([47, 48, 100])), '', bin(r.bytes(4))]), rf, reason];
          if (r.chance(0.4)) f.push(this.userField.includes('.') ? 'data' : this.userField, this.userField.includes('.') ? this.jobData() : String(this.user()));
          if (r.chance(0.3)) f.push('name', 'dead-one');
          args = ['XADD', 'nfs-dead', '*', ...f];
        }
        break;
      }
      case 'delconsumer':
        args = ['XGROUP', 'DELCONSUMER', 'nfs', 'nfg', consumer];
        break;
      default:
        args = ['XACK', 'nfs', 'nfg', r.pick(['0-1', '1-1', '18446744073709551615-18446744073709551615'])];
    }
    return { a: 'redis', args, k: `redis stream-${what}` };
  }

  // Keys of a queue turned into other types, back, or filled so that the
  // counts and alerts move.
  queueKeys() {
    const r = this.r;
    const what = r.weighted([
      [4, 'wrongtype'],
      [4, 'del'],
      [6, 'fill'],
      [1, 'cursor'],
    ]);
    if (what === 'wrongtype') {
      const key = r.pick(['bull:nfq:wait', 'bull:nfq:events', 'nfs', 'nfs-dead', 'bull:nfb:wait', 'bull:nfb:active', 'bull:nfq:completed', 'bull:nfq:meta', 'bull:nfgone:events']);
      const args = r.weighted([
        [4, ['SET', key, 'not what you think']],
        [2, ['HSET', key, 'a', '1']],
        [1, ['ZADD', key, '1', 'a']],
        [1, ['SADD', key, 'a']],
        [1, ['LPUSH', key, 'a']],
      ]);
      return { a: 'redis', args: ['EVAL', "redis.call('DEL', KEYS[1]) return redis.call(unpack(ARGV))", '1', key, ...args], k: `redis queue-wrongtype` };
    }
    if (what === 'del') {
      const keys = r.pick([['bull:nfq:wait'], ['bull:nfq:events'], ['nfs'], ['nfs-dead'], ['bull:nfb:wait', 'bull:nfb:active'], ['bull:nfq:wait', 'bull:nfq:events', 'nfs', 'nfs-dead', 'bull:nfb:wait', 'bull:nfb:active', 'bull:nfq:completed', 'bull:nfq:meta', 'bull:nfgone:events']]);
      return { a: 'redis', args: ['DEL', ...keys], k: 'redis queue-del' };
    }
    if (what === 'cursor') {
      // the positions this hub keeps (read at its start; written after reads)
      const key = 'coordhub:queues:cursor:127.0.0.1:{{port}}';
      const args = r.pick([
        ['HSET', key, 'bull:nfq:events', r.pick(['garbage', '99999999999999-0', '0-0', '', 'x'.repeat(60)])],
        ['HSET', key, 'nfs', r.pick(['1-1', 'not-an-id'])],
        ['SET', key, 'wrongtype'],
        ['DEL', key],
      ]);
      return { a: 'redis', args, k: 'redis queue-cursor' };
    }
    const q = r.pick(['nfq', 'nfb']);
    const id = r.pick(JOB_IDS);
    const args = r.weighted([
      [4, ['LPUSH', `bull:${q}:wait`, ...Array.from({ length: r.pick([1, 3, 30]) }, () => r.pick(JOB_IDS))]],
      [1, ['RPUSH', `bull:${q}:wait`, '0:1']],
      [3, ['LPUSH', `bull:${q}:active`, id]],
      [1, ['LPUSH', `bull:nfb:paused`, id]],
      [2, ['ZADD', `bull:${q}:${r.pick(['completed', 'failed', 'delayed', 'prioritized', 'waiting-children'])}`, String(r.int(1000)), id]],
      [2, ['HSET', `bull:${q}:${id}`, 'timestamp', r.pick([String(Date.now() - 5000), 'x', '-1', '1e400']), 'processedOn', r.pick([String(Date.now() - 5000), 'x']), 'delay', r.pick(['0', 'y'])]],
      [1, ['SET', `bull:${q}:${id}:lock`, 'tok', 'PX', '2000']],
      [2, ['LPOP', `bull:${q}:${r.pick(['wait', 'active'])}`, '5']],
      [1, ['HSET', `bull:${q}:meta`, 'paused', '1']],
    ]);
    return { a: 'redis', args, k: 'redis queue-fill' };
  }

  // Thousands of entries at once, written by a script: BullMQ events of
  // distinct jobs (past the table of jobs' users), Streams entries with a
  // user (past the entries tracked), or their delivery and acknowledgement.
  queueFlood() {
    const r = this.r;
    const n = String(r.pick([600, 5000, 70000]));
    const what = r.pick(['bullmq', 'stream', 'deliver']);
    if (what === 'bullmq') {
      return { a: 'redis', args: ['EVAL', "for i = 1, tonumber(ARGV[1]) do redis.call('XADD', KEYS[1], '*', 'event', ARGV[2], 'jobId', 'f' .. i, 'data', '1') end return 1", '1', 'bull:nfq:events', n, r.pick(['active', 'progress'])], k: 'redis queue-flood bullmq' };
    }
    if (what === 'stream') {
      return { a: 'redis', args: ['EVAL', "for i = 1, math.min(tonumber(ARGV[1]), 10000) do redis.call('XADD', KEYS[1], '*', 'userId', ARGV[2], 'name', 'bulk') end return 1", '1', 'nfs', n, String(this.user())], k: 'redis queue-flood stream' };
    }
    return { a: 'redis', args: ['EVAL', "redis.call('XREADGROUP', 'GROUP', ARGV[1], 'flood', 'COUNT', 10000, 'STREAMS', KEYS[1], '>') local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 10000) for i, e in ipairs(p) do if i % 3 ~= 0 then redis.call('XACK', KEYS[1], ARGV[1], e[1]) end end return #p", '1', 'nfs', 'nfg'], k: 'redis queue-flood deliver' };
  }

  // One step of the job queues' Redis side.
  queueStep(out) {
    const r = this.r;
    const what = r.weighted([
      [6, 'bullmq'],
      [4, 'hash'],
      [5, 'bull'],
      [4, 'stream-add'],
      [6, 'stream-work'],
      [3, 'keys'],
      [3, 'life'],
      [1, 'burst'],
      [0.4, 'flood'],
    ]);
    switch (what) {
      case 'flood':
        out.push(this.queueFlood());
        break;
      case 'bullmq':
        out.push(this.bullmqEvent());
        break;
      case 'hash':
        out.push(this.jobHash());
        break;
      case 'bull':
        out.push(this.bullPub());
        break;
      case 'stream-add':
        out.push(this.streamAdd());
        break;
      case 'stream-work':
        out.push(this.streamWork());
        break;
      case 'keys':
        out.push(this.queueKeys());
        break;
      case 'life': {
        // a job's whole life, for a (likely connected) user: its hash, then
        // its events in order (or not), ended or left running
        const id = r.chance(0.7) ? r.pick(JOB_IDS) : String(r.range(1000, 9999));
        const bull = r.chance(0.4);
        out.push(this.jobHash(bull ? 'nfb' : 'nfq', id, { how: 'hset', user: this.user(), shape: r.chance(0.9) ? 'ok' : undefined }));
        const evs = ['active', ...Array.from({ length: r.range(0, 4) }, () => 'progress'), r.pick(['completed', 'failed', 'completed', null])].filter(Boolean);
        if (r.chance(0.1)) evs.reverse();
        for (const ev of evs) {
          out.push(bull ? this.bullPub(id, ev) : this.bullmqEvent(id, ev));
          if (r.chance(0.2)) out.push({ a: 'sleep', ms: r.range(1, 50), k: 'sleep' });
        }
        if (r.chance(0.2)) out.push({ a: 'redis', args: ['DEL', `bull:${bull ? 'nfb' : 'nfq'}:${id}`], k: 'redis DEL job' });
        break;
      }
      default: {
        // many progress events of one job, fast (the throttle), often ended
        const id = r.pick(JOB_IDS);
        const bull = r.chance(0.4);
        if (r.chance(0.7)) out.push(this.jobHash(bull ? 'nfb' : 'nfq', id, { how: 'hset', user: this.user(), shape: 'ok' }));
        for (let i = r.range(8, 40); i > 0; i--) out.push(bull ? this.bullPub(id, 'progress') : this.bullmqEvent(id, 'progress'));
        if (r.chance(0.3)) out.push({ a: 'sleep', ms: r.range(200, 1200), k: 'sleep' });
        if (r.chance(0.6)) out.push(bull ? this.bullPub(id, r.pick(['completed', 'failed'])) : this.bullmqEvent(id, r.pick(['completed', 'failed'])));
      }
    }
  }

  // One step: a few actions that belong together.
  step() {
    const r = this.r;
    const out = [];
    const upgraded = this.liveConns(['native', 'sio']);
    const https = this.liveConns('http');
    const what = r.weighted([
      [24, 'http-new'],
      [https.length ? 7 : 0, 'http-reuse'],
      [this.conns.size < MAX_CONNS ? 11 : 3, 'ws-open'],
      [upgraded.length ? 30 : 0, 'ws-frames'],
      [15, 'pub'],
      [3, 'redis'],
      [0.4, 'redis-fault'],
      [this.conns.size ? 4 : 0, 'close'],
      [upgraded.length ? 1 : 0, 'pause'],
      [3, 'sleep'],
      [11, 'poll'],
      [7, 'recover'],
      [this.queuesOn ? 14 : 0, 'queue'],
    ]);
    switch (what) {
      case 'queue':
        this.queueStep(out);
        break;
      case 'http-new': {
        this.ensureRoom(out);
        const c = this.newConn('http');
        out.push({ a: 'open', c: c.id, k: 'open http' });
        this.httpOn(c, out);
        break;
      }
      case 'http-reuse':
        this.httpOn(r.pick(https), out);
        break;
      case 'ws-open': {
        this.ensureRoom(out);
        const proto = r.chance(0.55) ? 'native' : 'sio';
        const polite = r.chance(0.6);
        const u = this.upgradeRequest(proto, polite);
        const c = this.newConn(u.ok ? proto : 'http', { sub: u.sub, roles: u.roles, polite });
        if (u.ok) this.remember(c);
        // most clients answer the hub's close frame, as browsers do
        out.push({ a: 'open', c: c.id, ...(r.chance(0.7) ? { ack: 1 } : {}), k: u.label });
        out.push({ a: 'send', c: c.id, d: u.head, w: u.ok ? 2000 : 0, k: u.label });
        // a Socket.IO client usually connects at once
        if (c.kind === 'sio' && (polite || r.chance(0.8))) {
          const t = polite ? `{{tok valid ${c.sub} ${c.roles}}}` : this.token().text;
          out.push({ a: 'send', c: c.id, d: this.text(`40${JSON.stringify({ token: t })}`), k: 'ws-frame sio connect' });
        }
        break;
      }
      case 'ws-frames': {
        const c = r.pick(upgraded);
        out.push(...this.wsFrames(c));
        for (const a of out) if (['close', 'rst', 'end'].includes(a.a)) this.conns.delete(c.id);
        break;
      }
      case 'pub':
        out.push(this.publish());
        break;
      case 'poll':
        this.pollStep(out);
        break;
      case 'recover':
        this.recoverStep(out);
        break;
      case 'redis':
        out.push(this.redisWrite());
        break;
      case 'redis-fault':
        // Redis stops answering for a while (the hub's command timeouts),
        // or dies and comes back empty (every pending reply fails)
        out.push(r.chance(0.7) ? { a: 'redis-freeze', ms: r.range(100, 2500), k: 'redis-freeze' } : { a: 'redis-restart', k: 'redis-restart' });
        break;
      case 'close': {
        const c = r.pick([...this.conns.values()]);
        out.push(this.closeConn(c, r.pick(['close', 'rst', 'end'])));
        break;
      }
      case 'pause': {
        // a client that stops reading while events keep coming
        const c = r.pick(upgraded);
        out.push({ a: 'pause', c: c.id, k: 'pause' });
        for (let i = r.range(1, 6); i > 0; i--) {
          out.push({ a: 'pub', ch: 'tradestate', d: ['{"steamId":"', c.sub, '","state":"big","msg":"', { rep: 'z', n: 200000 }, '"}'], k: 'pub tradestate big' });
        }
        out.push({ a: 'sleep', ms: r.range(10, 100), k: 'pause' });
        if (r.chance(0.7)) out.push({ a: 'resume', c: c.id, k: 'resume' });
        break;
      }
      default:
        out.push({ a: 'sleep', ms: r.chance(0.96) ? r.range(0, 20) : r.range(100, 600), k: 'sleep' });
    }
    return out;
  }
}

const STATIC_CTX = { port: 0, lockTokens: new Map(), sids: new Map(), offsets: new Map(), pids: new Map(), token: () => '' };
function materializeStatic(d) {
  return materialize(d, STATIC_CTX);
}

// The hub settings of one sequence: timers short enough that idle pings,
// Socket.IO heartbeats and drops (and polling sessions' ping timeouts)
// happen during a run, half the time; CORS origins, a small recovery bound
// or window now and then.
function hubSettings(r) {
  const short = r.chance(0.5);
  const settings = {
    env: short
      ? {
          COORDHUB_SIO_PING_INTERVAL_MS: String(r.pick([500, 1000, 2000])),
          COORDHUB_SIO_PING_TIMEOUT_MS: String(r.pick([300, 1000])),
          COORDHUB_WS_IDLE_PING_MS: String(r.pick([500, 1500, 3000])),
          COORDHUB_WS_IDLE_DROP_MS: String(r.pick([300, 1000])),
        }
      : {},
    logLevel: r.weighted([
      [3, 'info'],
      [1, 'debug'],
    ]),
    webRoot: true,
  };
  // the polling transport's connect timeout, and its CORS answers
  if (short && r.chance(0.5)) settings.env.COORDHUB_SIO_CONNECT_TIMEOUT_MS = String(r.pick([500, 2000]));
  if (r.chance(0.3)) settings.env.COORDHUB_CORS_ORIGINS = r.pick(['*', 'http://127.0.0.1', 'http://a.example,http://127.0.0.1']);
  // recovery (SPEC §9): a bound of a few events per room, a window of a
  // second or two (both reached during a run), or recovery off
  if (r.chance(0.25)) settings.env.COORDHUB_RECOVERY_MAX_PER_ROOM = String(r.pick([1, 2, 5]));
  if (r.chance(0.15)) settings.env.COORDHUB_RECOVERY_WINDOW_MS = String(r.pick([0, 1000, 2500]));
  // job queues (SPEC §12), half the time: a BullMQ queue, a Bull v3 queue,
  // a Streams queue with its dead letters and a BullMQ queue that names
  // nothing; polled often, with alert rules low enough to fire and clear
  if (r.chance(0.5)) {
    const args = ['--queues', QUEUE_SPECS, '--queue-poll-ms', String(r.range(100, 1000)), '--queue-alerts', queueAlerts(r)];
    if (r.chance(0.35)) args.push('--job-user-field', r.pick(USER_FIELDS));
    settings.args = args;
  }
  return settings;
}

// The queues a queue-watching hub is given, and what its alerts may name.
const QUEUE_SPECS = 'bullmq:nfq,bull:nfb,stream:nfs/nfg/nfs-dead,bullmq:nfgone';
const QUEUE_KINDS = { nfq: 'bullmq', nfb: 'bull', nfs: 'stream', nfgone: 'bullmq' };
const QUEUE_MEASURES = {
  bull: ['waiting', 'active', 'delayed', 'completed', 'failed', 'paused', 'stuck', 'oldest', 'stalled'],
  bullmq: ['waiting', 'active', 'delayed', 'completed', 'failed', 'prioritized', 'waiting-children', 'stuck', 'oldest', 'stalled'],
  stream: ['waiting', 'stuck', 'oldest', 'length', 'pending', 'lag', 'consumers', 'dead-letters'],
};
const ALL_MEASURES = [...new Set(Object.values(QUEUE_MEASURES).flat())];
const USER_FIELDS = ['steamId', 'owner.id', 'a.b.c', 'meta.user', 'x'.repeat(100), 'userId'];

// Valid --queue-alerts rules for QUEUE_SPECS (the hub refuses to start on
// a bad one): global and per-queue, small bounds, durations for stuck and
// oldest.
function queueAlerts(r) {
  const bound = (m) => (m === 'stuck' || m === 'oldest' ? r.pick(['0', '1', '0.5s', '200ms', '2s', '1m', '300s']) : String(r.pick([0, 1, 2, 3, 5, 20, 100, 0.5])));
  const rules = [];
  for (let i = r.range(1, 6); i > 0; i--) {
    if (r.chance(0.4)) {
      const m = r.pick(ALL_MEASURES);
      rules.push(`${m}>${bound(m)}`);
    } else {
      const q = r.pick(Object.keys(QUEUE_KINDS));
      const m = r.pick(QUEUE_MEASURES[QUEUE_KINDS[q]]);
      rules.push(`${q}:${m}>${bound(m)}`);
    }
  }
  return rules.join(',');
}

// ================================================================ the runner

// A client connection: reads everything the hub sends (so that the hub's
// writes complete), learns lock tokens from HTTP answers, and notes the
// close code of a WebSocket.
class Conn {
  constructor(id, sock, runner, ack) {
    this.id = id;
    this.ack = ack; // answer the hub's close frame with one of ours
    this.sock = sock;
    this.runner = runner;
    this.gone = false;
    this.head = null; // first line of the first answer
    this.upgraded = false;
    this.buf = Buffer.alloc(0);
    this.closeCode = null;
    this.scanned = 0; // bytes of buf already looked at
    this.frames = 0;
    this.sidSlot = null; // K: learn the sid of the Engine.IO open packet answered here as session K
    this.waiters = new Set();
    sock.on('data', (d) => this.onData(d));
    sock.on('error', () => {});
    sock.on('close', () => {
      this.gone = true;
      this.wake();
    });
  }

  wake() {
    for (const w of [...this.waiters]) w();
  }

  onData(d) {
    this.runner.bytesIn += d.length;
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    if (!this.upgraded) {
      const text = this.buf.toString('latin1');
      if (this.head === null) {
        const nl = text.indexOf('\r\n');
        if (nl >= 0) this.head = text.slice(0, nl);
      }
      // look at what arrived (and a little before it, for a match cut
      // between reads), counting a match once: when its last byte arrives
      const old = this.scanned;
      const from = Math.max(0, old - 512);
      const fresh = text.slice(from);
      for (const m of fresh.matchAll(/"name":"([^"]*)","token":"([^"]*)"/g)) {
        if (from + m.index + m[0].length <= old) continue;
        this.runner.ctx.lockTokens.set(m[1], m[2]);
        stats.lockTokens++;
      }
      if (this.sidSlot !== null) {
        const m = /0\{"sid":"([A-Za-z0-9_-]{1,64})"/.exec(fresh);
        if (m) {
          this.runner.ctx.sids.set(this.sidSlot, m[1]);
          this.sidSlot = null;
          stats.sessions++;
        }
      }
      // a polling session's packets: events carry offsets, CONNECT answers pids
      for (const m of fresh.matchAll(/,"(\d{1,20}-\d{1,20})"\](?=\x1e|$|HTTP)/g)) {
        if (from + m.index + m[0].length > old) this.runner.learn('offset', this.id, m[1]);
      }
      for (const m of fresh.matchAll(/40\{"sid":"[A-Za-z0-9_-]*","pid":"([A-Za-z0-9_-]{1,64})"\}/g)) {
        if (from + m.index + m[0].length > old) this.runner.learn('pid', this.id, m[1]);
      }
      for (const m of fresh.matchAll(/HTTP\/1\.[01] (\d{3}) /g)) {
        if (from + m.index + m[0].length <= old) continue;
        stats.statuses.set(m[1], (stats.statuses.get(m[1]) || 0) + 1);
      }
      this.scanned = text.length;
      const end = text.indexOf('\r\n\r\n');
      if (end >= 0 && /^HTTP\/1\.1 101/.test(text)) {
        this.upgraded = true;
        stats.upgrades++;
        this.buf = this.buf.subarray(end + 4);
      } else {
        // keep a tail long enough for a lock answer cut between reads
        if (this.buf.length > 4096) {
          this.scanned -= this.buf.length - 1024;
          this.buf = this.buf.subarray(this.buf.length - 1024);
        }
        this.wake();
        return;
      }
    }
    for (;;) {
      const f = serverFrame(this.buf);
      if (!f) break;
      this.buf = this.buf.subarray(f.size);
      this.frames++;
      stats.framesIn++;
      if (f.op === 1) this.learn(f.payload);
      if (f.op === 8 && this.closeCode === null) {
        this.closeCode = f.payload.length >= 2 ? f.payload.readUInt16BE(0) : 1005;
        stats.closeCodes.set(this.closeCode, (stats.closeCodes.get(this.closeCode) || 0) + 1);
        if (this.ack && this.sock.writable) {
          const p = Buffer.alloc(2);
          p.writeUInt16BE(this.closeCode === 1005 ? 1000 : this.closeCode);
          this.sock.write(frameBytes({ op: 8, key: '5a5a5a5a', p: { b64: p.toString('base64') } }, this.runner.ctx));
        }
      }
    }
    if (this.buf.length > (1 << 20)) this.buf = Buffer.alloc(0); // lost sync on a giant frame: stop parsing
    this.wake();
  }

  // What a text frame tells the recoveries: the offset an event carries
  // (native {"event",...,"offset":"A-K"}, Socket.IO 42[...,"A-K"]), the pid
  // of a Socket.IO CONNECT answer, and (counted) a native recovery's answer.
  learn(p) {
    const tail = p.subarray(Math.max(0, p.length - 64)).toString('latin1');
    const sio = p.length > 2 && p[0] === 0x34 && p[1] === 0x32 && p[2] === 0x5b; // 42[
    const m = sio ? /,"(\d{1,20}-\d{1,20})"\]$/.exec(tail) : /"offset":"(\d{1,20}-\d{1,20})"\}$/.exec(tail);
    if (m) this.runner.learn('offset', this.id, m[1]);
    if (p.length > 200) return;
    const text = p.toString('latin1');
    const pid = /^40\{"sid":"[A-Za-z0-9_-]*","pid":"([A-Za-z0-9_-]{1,64})"\}$/.exec(text);
    if (pid) this.runner.learn('pid', this.id, pid[1]);
    const rec = /^\{"event":"recovered","data":\{"recovered":(true|false)/.exec(text);
    if (rec) stats.recovered.set(rec[1], (stats.recovered.get(rec[1]) || 0) + 1);
  }

  // Waits until the answer's head is in, or the connection is gone, or ms.
  waitHead(ms) {
    return this.waitFor(() => this.head !== null, ms);
  }

  // Waits until the sid of an Engine.IO handshake is learned, or the answer
  // is not a 200, or the connection is gone, or ms.
  waitSid(ms) {
    return this.waitFor(() => this.sidSlot === null || (this.head !== null && !/^HTTP\/1\.[01] 200 /.test(this.head)), ms);
  }

  waitFor(ok, ms) {
    if (ok() || this.gone) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(w);
        resolve();
      };
      const w = () => {
        if (ok() || this.gone) done();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(w);
    });
  }
}

class Runner {
  constructor(hub, redis) {
    this.hub = hub;
    this.redis = redis;
    this.conns = new Map();
    this.pubConn = null;
    this.frozen = null; // the timer that will SIGCONT a SIGSTOPped redis-server
    this.bytesIn = 0;
    this.bytesOut = 0;
    const tokens = new Map();
    this.ctx = {
      port: hub.port,
      lockTokens: new Map(),
      sids: new Map(), // session K (a string) -> the sid its handshake got
      offsets: new Map(), // connection (a string) -> the last offset a frame to it carried
      offsetRing: [], // the last distinct offsets seen, oldest first
      pids: new Map(), // connection -> the pid of its last Socket.IO CONNECT answer
      pidRing: [],
      // the same token for the same spec (tokens carry the time), except
      // brief ones, minted fresh each time
      token: (spec) => {
        let t = tokens.get(spec);
        if (t === undefined) {
          t = mintToken(spec, hub.secret);
          if (!spec.startsWith('brief')) tokens.set(spec, t);
        }
        return t;
      },
    };
  }

  // An offset or a pid the hub gave connection `id`, for {{offset}} and {{pid}}.
  learn(what, id, v) {
    this.ctx[`${what}s`].set(String(id), v);
    const ring = this.ctx[`${what}Ring`];
    if (ring[ring.length - 1] !== v) {
      ring.push(v);
      if (ring.length > 16) ring.shift();
      stats[`${what}s`]++;
    }
  }

  async redisClient() {
    if (!this.pubConn || this.pubConn.closed) {
      this.pubConn = await RespClient.connect(this.redis.port, { timeoutMs: 3000 });
    }
    return this.pubConn;
  }

  async exec(act) {
    switch (act.a) {
      case 'open': {
        const old = this.conns.get(act.c);
        if (old) old.sock.destroy();
        const sock = net.connect({ host: '127.0.0.1', port: this.hub.port });
        sock.setNoDelay(true);
        const conn = new Conn(act.c, sock, this, !!act.ack);
        this.conns.set(act.c, conn);
        await new Promise((resolve) => {
          const timer = setTimeout(resolve, 5000);
          sock.once('connect', () => {
            clearTimeout(timer);
            resolve();
          });
          sock.once('close', () => {
            clearTimeout(timer);
            resolve();
          });
        });
        return;
      }
      case 'send': {
        const conn = this.conns.get(act.c);
        if (!conn || conn.gone || conn.sock.destroyed || !conn.sock.writable) return;
        if (act.sid !== undefined) conn.sidSlot = String(act.sid);
        let buf = materialize(act.d, this.ctx);
        if (act.upto !== undefined) buf = buf.subarray(0, Math.floor(Number(act.upto) * buf.length));
        const pieces = [];
        let prev = 0;
        for (const f of act.cuts || []) {
          const cut = Math.max(prev, Math.min(buf.length, Math.floor(Number(f) * buf.length)));
          if (cut > prev) pieces.push(buf.subarray(prev, cut));
          prev = cut;
        }
        if (prev < buf.length || pieces.length === 0) pieces.push(buf.subarray(prev));
        for (const [i, piece] of pieces.entries()) {
          if (i > 0) {
            await sleep(Math.max(0, Math.min(Number(act.gap) || 0, 1000)));
            if (conn.gone || conn.sock.destroyed || !conn.sock.writable) return;
          }
          this.bytesOut += piece.length;
          if (!conn.sock.write(piece)) {
            // a big body: wait (bounded) until the kernel took it, or the
            // hub stopped reading and the connection went away
            await new Promise((resolve) => {
              const timer = setTimeout(resolve, 2000);
              const done = () => {
                clearTimeout(timer);
                conn.sock.removeListener('drain', done);
                conn.sock.removeListener('close', done);
                resolve();
              };
              conn.sock.once('drain', done);
              conn.sock.once('close', done);
            });
          }
        }
        if (act.w) await (act.sid !== undefined ? conn.waitSid(act.w) : conn.waitHead(act.w));
        return;
      }
      case 'end':
      case 'close':
      case 'rst': {
        const conn = this.conns.get(act.c);
        if (!conn) return;
        if (act.a === 'end') {
          conn.sock.end();
          // it will be destroyed when the next open reuses the id, or at the end
        } else {
          if (act.a === 'rst' && typeof conn.sock.resetAndDestroy === 'function' && !conn.sock.destroyed && conn.sock.readyState !== 'opening') conn.sock.resetAndDestroy();
          else conn.sock.destroy();
          this.conns.delete(act.c);
        }
        return;
      }
      case 'pause':
      case 'resume': {
        const conn = this.conns.get(act.c);
        if (conn && !conn.gone) act.a === 'pause' ? conn.sock.pause() : conn.sock.resume();
        return;
      }
      case 'pub':
      case 'redis': {
        const args = act.a === 'pub' ? ['PUBLISH', act.ch, materialize(act.d, this.ctx)] : act.args.map((x) => (typeof x === 'string' ? expand(x, this.ctx) : materialize(x, this.ctx)));
        let c;
        try {
          c = await this.redisClient();
        } catch {
          return; // Redis is restarting: this one is lost
        }
        // Not awaited: a frozen Redis must not stop the other actions.
        // Redis runs one connection's commands in order all the same.
        c.command(args, { timeoutMs: 3000 }).catch((e) => {
          // an error reply (WRONGTYPE...) is fine; a connection killed by
          // CLIENT KILL or a reply that did not come in time (a frozen
          // Redis): start again on a fresh connection, so that no late
          // reply is taken for the answer to a later command
          if (!(e instanceof H.RespError) && this.pubConn === c) {
            c.close();
            this.pubConn = null;
          }
        });
        return;
      }
      case 'redis-freeze':
        // SIGSTOP now, SIGCONT later, while the next actions run
        if (this.frozen) return;
        try {
          process.kill(this.redis.pid, 'SIGSTOP');
        } catch {
          return;
        }
        this.frozen = setTimeout(() => this.thaw(), Math.max(0, Math.min(Number(act.ms) || 0, 5000)));
        return;
      case 'redis-restart':
        this.thaw();
        if (this.pubConn) this.pubConn.close();
        this.pubConn = null;
        await this.redis.restart().catch(() => {}); // same port, no data
        return;
      case 'sleep':
        await sleep(Math.max(0, Math.min(Number(act.ms) || 0, 5000)));
        return;
      case 'check':
        return; // the caller runs the oracle
      default:
        throw new Error(`netfuzz: unknown action ${JSON.stringify(act).slice(0, 200)}`);
    }
  }

  thaw() {
    if (!this.frozen) return;
    clearTimeout(this.frozen);
    this.frozen = null;
    try {
      process.kill(this.redis.pid, 'SIGCONT');
    } catch {
      /* gone */
    }
  }

  closeCodes() {
    const out = {};
    for (const c of this.conns.values()) if (c.closeCode !== null) out[c.id] = c.closeCode;
    return out;
  }

  destroyAll() {
    for (const c of this.conns.values()) c.sock.destroy();
    this.conns.clear();
    if (this.pubConn) this.pubConn.close();
    this.pubConn = null;
  }
}

// ================================================================ the oracle

function sanitizerExcerpt(stderr) {
  const lines = stderr.split('\n');
  const i = lines.findIndex((l) => SANITIZER_RE.test(l));
  if (i < 0) return null;
  return lines.slice(Math.max(0, i - 2), i + 40).join('\n');
}

// The line that names the bug, without addresses: what --shrink compares.
function summaryLine(stderr) {
  const m = /^\S+:\d+:\d+: runtime error: .*/m.exec(stderr) || /^SUMMARY: \w+Sanitizer: .*/m.exec(stderr);
  return m ? m[0].replace(/0x[0-9a-f]+/g, '0x').replace(/\/\S*\//g, '') : '';
}

async function waitExit(hub, ms) {
  if (!hub.exited()) await withTimeout(hub.exit(), ms, 'hub exit').catch(() => {});
  // the rest of its stderr (a sanitizer report is written just before exit)
  if (hub.exited() && hub.proc.stderr && !hub.proc.stderr.destroyed) {
    await withTimeout(new Promise((r) => hub.proc.stderr.once('close', r)), 2000, 'stderr close').catch(() => {});
  }
}

function deathFailure(hub) {
  const err = hub.stderr();
  return {
    kind: 'died',
    code: hub.proc.exitCode,
    signal: hub.proc.signalCode,
    summary: summaryLine(err),
    report: sanitizerExcerpt(err) ?? err.split('\n').slice(-30).join('\n'),
  };
}

async function healthz(port, ms) {
  const t0 = Date.now();
  const r = await rawHttp(port, `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`, undefined, { timeoutMs: ms });
  return { ...r, ms: Date.now() - t0 };
}

// The hub is alive, silent about memory errors, and answers /healthz.
async function oracle(hub) {
  if (hub.exited()) {
    await waitExit(hub, 3000);
    return deathFailure(hub);
  }
  let h = await healthz(hub.port, HEALTHZ_MS);
  if (h.status !== 200) {
    await waitExit(hub, h.why === 'timeout' ? 100 : 2000);
    if (hub.exited()) return deathFailure(hub);
    // once more, longer: a loaded machine is not a hang
    const first = h;
    h = await healthz(hub.port, 2 * HEALTHZ_MS);
    if (h.status !== 200) {
      if (hub.exited()) {
        await waitExit(hub, 3000);
        return deathFailure(hub);
      }
      const hang = h.status === null && h.why === 'timeout';
      return {
        kind: hang ? 'hang' : 'healthz',
        detail: `GET /healthz on a fresh connection: ${first.status ?? first.why} after ${first.ms} ms, then ${h.status ?? h.why} after ${h.ms} ms`,
        summary: hang ? 'hang' : `healthz ${h.status ?? h.why}`,
        report: `${stacks(hub.pid)}--- last lines of stderr ---\n${hub.stderr().split('\n').slice(-15).join('\n')}`,
      };
    }
  }
  const rep = sanitizerExcerpt(hub.stderr());
  if (rep) return { kind: 'sanitizer', summary: summaryLine(hub.stderr()), report: rep };
  return null;
}

// SIGTERM: exit 0 within SHUTDOWN_MS, no report (LeakSanitizer prints at exit).
async function shutdownCheck(hub) {
  if (hub.exited()) {
    await waitExit(hub, 3000);
    return deathFailure(hub);
  }
  const done = hub.exit();
  hub.proc.kill('SIGTERM');
  try {
    await withTimeout(done, SHUTDOWN_MS, 'exit after SIGTERM');
  } catch {
    hub.proc.kill('SIGKILL');
    await waitExit(hub, 5000);
    return { kind: 'shutdown-hang', summary: 'shutdown-hang', detail: `no exit within ${SHUTDOWN_MS} ms of SIGTERM`, report: hub.stderr().split('\n').slice(-20).join('\n') };
  }
  await waitExit(hub, 3000);
  const err = hub.stderr();
  const rep = sanitizerExcerpt(err);
  if (hub.proc.exitCode !== 0 || rep) {
    return {
      kind: rep ? 'sanitizer' : 'shutdown-exit',
      code: hub.proc.exitCode,
      signal: hub.proc.signalCode,
      summary: rep ? summaryLine(err) : `exit ${hub.proc.exitCode ?? hub.proc.signalCode}`,
      detail: `after SIGTERM: exit code ${hub.proc.exitCode}, signal ${hub.proc.signalCode}`,
      report: rep ?? err.split('\n').slice(-20).join('\n'),
    };
  }
  return null;
}

// Where a hung hub is: its threads' stacks, when gdb is there to ask.
function stacks(pid) {
  const r = spawnSync('gdb', ['-p', String(pid), '-batch', '-ex', 'thread apply all bt 25'], { encoding: 'utf8', timeout: 20000 });
  if (r.error || typeof r.stdout !== 'string') return '';
  const bt = r.stdout.split('\n').filter((l) => /^(#\d|Thread )/.test(l));
  return bt.length ? `--- stacks of the hung hub (gdb) ---\n${bt.join('\n')}\n` : '';
}

function signature(f) {
  return f ? `${f.kind}|${f.signal ?? f.code ?? ''}|${f.summary ?? ''}` : 'pass';
}

// ================================================================ sequences

const stats = { actions: 0, byKind: new Map(), checks: 0, hubs: 0, bytesOut: 0, bytesIn: 0, msStart: 0, msActions: 0, msSleep: 0, msOracle: 0, msStop: 0, statuses: new Map(), closeCodes: new Map(), upgrades: 0, framesIn: 0, lockTokens: 0, sessions: 0, metrics: new Map(), offsets: 0, pids: 0, recovered: new Map(), recoveries: new Map() };

// What the hub counted of the paths the polling actions aim at, summed over
// its runs (read from /metrics before each SIGTERM; not judged).
const METRICS_RE = /^coordhub_(polling_\w+|slow_consumer_closes_total|frame_too_large_closes_total|binary_frame_closes_total|protocol_error_closes_total|queue_job_events_unrouted_total|queue_progress_throttled_total|queue_job_lookups_total|queue_alerts_total)(?:\{[^}]*\})? (\d+)$/gm;
// the job queues' counters by state or reason (summed over the queues)
const QUEUE_METRICS_RE = /^coordhub_queue_(job_events|skips)_total\{queue="[^"]*",(?:state|reason)="([\w-]+)"\} (\d+)$/gm;
// ...and the recoveries' outcomes, by framing (SPEC §9).
const RECOVERY_RE = /^coordhub_recovery_total\{framing="(\w+)",outcome="(\w+)"\} (\d+)$/gm;
async function collectMetrics(port) {
  const r = await rawHttp(port, `GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`, undefined, { timeoutMs: 2000 });
  if (r.status !== 200) return;
  for (const m of r.body.matchAll(METRICS_RE)) stats.metrics.set(m[1], (stats.metrics.get(m[1]) || 0) + Number(m[2]));
  const rec = {};
  for (const m of r.body.matchAll(QUEUE_METRICS_RE)) {
    if (m[3] === '0') continue;
    const k = `queue_${m[1]}{${m[2]}}`;
    stats.metrics.set(k, (stats.metrics.get(k) || 0) + Number(m[3]));
    rec[k] = (rec[k] || 0) + Number(m[3]);
  }
  for (const m of r.body.matchAll(RECOVERY_RE)) {
    if (m[3] === '0') continue;
    rec[`${m[1]}/${m[2]}`] = Number(m[3]);
    stats.recoveries.set(`${m[1]}/${m[2]}`, (stats.recoveries.get(`${m[1]}/${m[2]}`) || 0) + Number(m[3]));
  }
  return rec;
}

function countAction(act) {
  stats.actions++;
  const k = act.a === 'send' || act.a === 'open' || act.a === 'pub' || act.a === 'redis' ? (act.k || act.a).split(' ').slice(0, act.a === 'pub' || act.a === 'redis' ? 2 : 3).join(' ') : act.a;
  stats.byKind.set(k, (stats.byKind.get(k) || 0) + 1);
}

// Runs one sequence against a fresh redis-server and hub. `next()` yields
// the actions (null: the end). Returns {failure, actions (as executed),
// closeCodes, recoveries (outcomes the hub counted, and its job-queue
// counters), ms}.
async function runSequence(hubCfg, next, { quiet = false } = {}) {
  const t0 = Date.now();
  let tm = t0;
  const lap = (what) => {
    const now = Date.now();
    stats[what] += now - tm;
    tm = now;
  };
  const redis = await startRedis();
  const hub = await startHub({
    redisUrl: redis.url,
    env: hubCfg.env || {},
    logLevel: hubCfg.logLevel || 'info',
    extraArgs: [...(hubCfg.webRoot ? ['--web-root', path.join(repoRoot, 'web-demo')] : []), ...(hubCfg.args || [])],
  });
  hub.checked = true; // this file judges its hubs itself
  stats.hubs++;
  lap('msStart');
  const runner = new Runner(hub, redis);
  const executed = [];
  let failure = null;
  let closeCodes = {};
  let recoveries = {};
  try {
    for (;;) {
      const act = await next();
      if (act === null) break;
      executed.push(act);
      if (act.a !== 'check') countAction(act);
      lap('msActions');
      await runner.exec(act);
      // yield, so that what the hub sent back is read between actions
      await new Promise((r) => setImmediate(r));
      lap(act.a === 'sleep' ? 'msSleep' : 'msActions');
      if (act.a === 'check') {
        stats.checks++;
        failure = await oracle(hub);
        lap('msOracle');
        if (failure) break;
      } else if (hub.exited()) {
        failure = await oracle(hub);
        break;
      }
    }
    runner.thaw(); // Redis answers again before the end: SIGTERM is judged with it up
    if (!failure) {
      executed.push({ a: 'check', k: 'final' });
      stats.checks++;
      failure = await oracle(hub);
    }
    closeCodes = runner.closeCodes();
    if (!failure) recoveries = (await collectMetrics(hub.port).catch(() => {})) ?? {};
    lap('msOracle');
    // SIGTERM with the clients still connected, as in production
    if (!failure) failure = await shutdownCheck(hub);
    lap('msStop');
  } finally {
    stats.bytesOut += runner.bytesOut;
    stats.bytesIn += runner.bytesIn;
    runner.thaw();
    runner.destroyAll();
    if (!hub.exited()) {
      hub.proc.kill('SIGKILL');
      await waitExit(hub, 5000);
    }
    await redis.stop();
  }
  if (failure && !quiet) failure.hubStderrTail = hub.stderr().split('\n').slice(-60).join('\n');
  return { failure, actions: executed, closeCodes, recoveries, ms: Date.now() - t0 };
}

function fromList(actions) {
  let i = 0;
  return async () => (i < actions.length ? actions[i++] : null);
}

function writeCrash(name, doc) {
  fs.mkdirSync(CRASH_DIR, { recursive: true });
  const file = path.join(CRASH_DIR, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(file, `${JSON.stringify(doc, null, 1)}\n`);
  return file;
}

function describeFailure(f) {
  const lines = [`${f.kind}${f.signal ? ` (${f.signal})` : ''}${f.code !== undefined && f.code !== null ? ` (exit ${f.code})` : ''}${f.summary ? `: ${f.summary}` : ''}`];
  if (f.detail) lines.push(f.detail);
  if (f.report) lines.push('--- hub stderr ---', f.report.split('\n').slice(0, 40).join('\n'), '--- end ---');
  return lines.join('\n');
}

// The command line that replays (or shrinks) a file against this binary.
function howTo(what, file) {
  return `${what}: COORDHUB_BIN=${H.HUB_BIN} node ${fileURLToPath(import.meta.url)} --${what} ${file}`;
}

function loadSequence(file) {
  const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (doc.netfuzz !== 1 || !Array.isArray(doc.actions)) throw new Error(`${file}: not a netfuzz sequence (want {"netfuzz": 1, "actions": [...]})`);
  return doc;
}

function log(s) {
  process.stdout.write(`${s}\n`);
}

function printSummary(t0, seed) {
  const secs = (Date.now() - t0) / 1000;
  log(`netfuzz: ${stats.actions} actions in ${secs.toFixed(1)} s (${(stats.actions / secs).toFixed(0)}/s), ${stats.checks} oracle checks, ${stats.hubs} hubs, ${(stats.bytesOut / 1048576).toFixed(1)} MiB sent, ${(stats.bytesIn / 1048576).toFixed(1)} MiB received${seed !== undefined ? `, seed ${seed}` : ''}`);
  const rows = [...stats.byKind.entries()].sort((a, b) => b[1] - a[1]);
  const groups = new Map();
  for (const [k, n] of rows) {
    const g = k.split(' ')[0];
    groups.set(g, (groups.get(g) || 0) + n);
  }
  log(`netfuzz: time: hub and redis starts ${(stats.msStart / 1000).toFixed(1)} s, actions ${(stats.msActions / 1000).toFixed(1)} s, sleeps ${(stats.msSleep / 1000).toFixed(1)} s, oracle ${(stats.msOracle / 1000).toFixed(1)} s, SIGTERM and exit ${(stats.msStop / 1000).toFixed(1)} s`);
  const hist = (m) => [...m.entries()].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k}×${n}`).join(' ');
  log(`netfuzz: the hub answered: HTTP ${hist(stats.statuses)}; ${stats.upgrades} upgrades, ${stats.framesIn} frames, close codes ${hist(stats.closeCodes)}; ${stats.lockTokens} locks granted; ${stats.sessions} polling sessions opened`);
  if (stats.metrics.size) log(`netfuzz: the hub counted: ${[...stats.metrics.entries()].map(([k, n]) => `${k} ${n}`).join(', ')}`);
  log(`netfuzz: recovery: ${stats.offsets} offsets and ${stats.pids} pids learned from frames; native answers recovered ${hist(stats.recovered)}; the hub counted ${hist(stats.recoveries) || 'none'}`);
  log(`netfuzz: by kind: ${[...groups.entries()].sort((a, b) => b[1] - a[1]).map(([g, n]) => `${g} ${n}`).join(', ')}`);
  const top = rows.slice(0, 32);
  for (let i = 0; i < top.length; i += 4) log(`netfuzz:   ${top.slice(i, i + 4).map(([k, n]) => `${k}: ${n}`).join('; ')}`);
  if (rows.length > top.length) log(`netfuzz:   ... and ${rows.length - top.length} rarer kinds (${rows.slice(top.length).reduce((a, [, n]) => a + n, 0)} actions)`);
}

// Replays a file; returns the result.
async function replayFile(file) {
  const doc = loadSequence(file);
  return runSequence(doc.hub || {}, fromList(doc.actions));
}

// ---------------------------------------------------------------- shrink

// Delta debugging over the actions, keeping what reproduces the same
// failure signature: whole connections first, then chunks, then single
// actions. Each try replays against a fresh hub.
async function shrink(file, budgetMs) {
  const doc = loadSequence(file);
  const hubCfg = doc.hub || {};
  const deadline = Date.now() + budgetMs;
  // a hang shows in 2 + 4 s as well as in 5 + 10 when the machine is idle
  if (!process.env.NETFUZZ_HEALTHZ_MS) HEALTHZ_MS = 2000;
  const first = await runSequence(hubCfg, fromList(doc.actions), { quiet: true });
  const want = signature(first.failure);
  if (!first.failure) throw new Error(`${file} does not fail on this hub: nothing to shrink`);
  log(`shrink: ${doc.actions.length} actions fail as ${want}`);
  let cur = doc.actions.filter((a) => a.a !== 'check');
  let tries = 0;
  const fails = async (cand) => {
    if (Date.now() > deadline) return false;
    tries++;
    const r = await runSequence(hubCfg, fromList(cand), { quiet: true });
    return signature(r.failure) === want;
  };
  // whole connections
  const ids = [...new Set(cur.filter((a) => a.c !== undefined).map((a) => a.c))];
  for (const id of ids) {
    const cand = cur.filter((a) => a.c !== id);
    if (cand.length < cur.length && (await fails(cand))) cur = cand;
  }
  log(`shrink: ${cur.length} actions after dropping connections (${tries} tries)`);
  // chunks, halving
  for (let n = Math.ceil(cur.length / 2); n >= 1 && Date.now() < deadline; n = n === 1 ? 0 : Math.ceil(n / 2)) {
    for (let i = 0; i < cur.length && Date.now() < deadline; ) {
      const cand = cur.slice(0, i).concat(cur.slice(i + n));
      if (cand.length && (await fails(cand))) cur = cand;
      else i += n;
    }
  }
  log(`shrink: ${cur.length} actions (${tries} tries${Date.now() > deadline ? ', stopped by the time budget' : ''})`);
  const out = { ...doc, note: `shrunk from ${path.basename(file)} (${doc.actions.length} actions)`, actions: cur, failure: undefined };
  const last = await runSequence(hubCfg, fromList(cur), { quiet: true });
  out.failure = last.failure ? { ...last.failure, hubStderrTail: undefined } : undefined;
  const dest = file.replace(/(\.min)?\.json$/, '') + '.min.json';
  fs.writeFileSync(dest, `${JSON.stringify(out, null, 1)}\n`);
  return { dest, n: cur.length, failure: last.failure };
}

// ================================================================ main

const argv = process.argv.slice(2);
const hardLimitMs = (SECONDS + 180) * 1000;
const watchdog = setTimeout(() => {
  process.stderr.write(`netfuzz: still running after ${hardLimitMs / 1000} s: giving up (a wait without a bound somewhere)\n`);
  process.exit(3);
}, hardLimitMs);
watchdog.unref();

const cleanupHook = () =>
  after(async () => {
    await H.cleanupAll().catch((e) => process.stderr.write(`netfuzz: cleanup: ${e.message}\n`));
  });

if (argv[0] === '--generate') {
  // Prints the actions the generator makes for a seed (no hub, no Redis):
  // to read what a seed does, or to check the generator itself.
  const seed = Number(argv[1] ?? 1) >>> 0;
  const n = Number(argv[2] ?? 500);
  const gen = new Gen(seed);
  const hub = hubSettings(gen.r); // as a random sequence draws it
  gen.setHub(hub);
  const actions = [];
  const ctx = { port: 1, lockTokens: new Map(), sids: new Map(), offsets: new Map(), pids: new Map(), token: (spec) => `<${spec}>` };
  let bytes = 0;
  while (actions.length < n) {
    for (const a of gen.step()) {
      if (a.d !== undefined) bytes += materialize(a.d, ctx).length;
      if (a.args) for (const x of a.args) bytes += typeof x === 'string' ? Buffer.byteLength(x) : materialize(x, ctx).length;
      actions.push(a);
    }
  }
  if (argv[3] !== 'quiet') log(JSON.stringify({ netfuzz: 1, note: `generated from seed ${seed}`, hub, actions }, null, 1));
  else log(`generated ${actions.length} actions, ${bytes} bytes`);
  clearTimeout(watchdog);
} else if (argv[0] === '--shrink') {
  cleanupHook();
  const file = argv[1];
  if (!file) throw new Error('usage: netfuzz.mjs --shrink FILE [SECONDS]');
  test(`shrink ${file}`, { timeout: (Number(argv[2]) || 600) * 1000 + 60000 }, async () => {
    const r = await shrink(path.resolve(file), (Number(argv[2]) || 600) * 1000);
    log(`shrink: wrote ${r.dest} (${r.n} actions)${r.failure ? `, failing as ${signature(r.failure)}` : ''}`);
  });
} else if (argv[0] === '--replay') {
  cleanupHook();
  const files = argv.slice(1);
  if (!files.length) throw new Error('usage: netfuzz.mjs --replay FILE...');
  for (const file of files) {
    test(`replay ${file}`, async (t) => {
      const r = await replayFile(path.resolve(file));
      t.diagnostic(`${r.actions.length} actions in ${r.ms} ms; close codes seen: ${JSON.stringify(r.closeCodes)}; the hub counted (recoveries, job queues): ${JSON.stringify(r.recoveries)}`);
      if (r.failure) throw new Error(`${file}: ${describeFailure(r.failure)}`);
    });
  }
} else {
  cleanupHook();
  const t0 = Date.now();
  const seedFiles = fs.existsSync(SEED_DIR) ? fs.readdirSync(SEED_DIR).filter((f) => f.endsWith('.json')).sort() : [];
  for (const f of seedFiles) {
    test(`seed ${f}`, async (t) => {
      const file = path.join(SEED_DIR, f);
      const doc = loadSequence(file);
      const r = await runSequence(doc.hub || {}, fromList(doc.actions));
      t.diagnostic(`${r.actions.length} actions in ${r.ms} ms; close codes seen: ${JSON.stringify(r.closeCodes)}; the hub counted (recoveries, job queues): ${JSON.stringify(r.recoveries)}`);
      if (r.failure) {
        const out = writeCrash(`seed-${f.replace(/\.json$/, '')}`, { ...doc, failure: r.failure, actions: r.actions });
        throw new Error(`seed ${f} fails: ${describeFailure(r.failure)}\nreproducer: ${out}\n${howTo('replay', out)}`);
      }
    });
  }

  const seed = process.env.NETFUZZ_SEED ? Number(process.env.NETFUZZ_SEED) >>> 0 : crypto.randomBytes(4).readUInt32LE(0);
  test(`random sequences for ${SECONDS} s (NETFUZZ_SEED=${seed})`, { skip: SECONDS === 0 ? 'NETFUZZ_SECONDS=0' : false }, async (t) => {
    log(`netfuzz: seed ${seed} (NETFUZZ_SEED=${seed} regenerates these sequences), ${SECONDS} s, hub ${H.HUB_BIN}`);
    const tStart = Date.now();
    const end = tStart + SECONDS * 1000;
    for (const k of Object.keys(stats)) stats[k] = stats[k] instanceof Map ? new Map() : 0; // the random phase alone
    const failures = [];
    for (let epoch = 0; Date.now() < end; epoch++) {
      const es = epochSeed(seed, epoch);
      const gen = new Gen(es);
      const hubCfg = hubSettings(gen.r);
      gen.setHub(hubCfg);
      let batch = 0;
      let closing = null;
      let pending = [];
      let inBatch = 0;
      const batchSize = () => gen.r.range(30, 90);
      let size = batchSize();
      const next = async () => {
        if (pending.length) return pending.shift();
        if (inBatch >= size) {
          inBatch = 0;
          size = batchSize();
          batch++;
          return { a: 'check', k: `batch ${batch}` };
        }
        if (batch >= BATCHES_PER_HUB || Date.now() >= end) {
          if (closing === null) {
            // half the time every client leaves before the SIGTERM; else the
            // hub stops with them still connected (and some never answering
            // its close frames: then its 3 s deadline ends the wait)
            closing = gen.r.chance(0.5) ? [...gen.conns.values()].map((c) => gen.closeConn(c, 'close')) : [];
          }
          return closing.length ? closing.shift() : null;
        }
        pending = gen.step();
        inBatch += pending.length;
        return pending.shift();
      };
      const r = await runSequence(hubCfg, next);
      if (r.failure) {
        const file = writeCrash(`seed${seed}-epoch${epoch}`, {
          netfuzz: 1,
          note: `random sequence: NETFUZZ_SEED=${seed}, epoch ${epoch} (generator seed ${es})`,
          seed,
          epoch,
          hub: hubCfg,
          failure: r.failure,
          actions: r.actions,
        });
        const msg = `epoch ${epoch} (seed ${seed}) fails after ${r.actions.length} actions: ${describeFailure(r.failure)}\nreproducer: ${file}\n${howTo('replay', file)}\n${howTo('shrink', file)}`;
        log(`netfuzz: ${msg}`);
        failures.push(msg);
        if (!KEEP_GOING) break;
      }
    }
    printSummary(tStart, seed);
    t.diagnostic(`${stats.actions} actions, ${stats.checks} checks, ${stats.hubs} hubs in ${((Date.now() - t0) / 1000).toFixed(1)} s (seed ${seed})`);
    if (failures.length) throw new Error(`${failures.length} failing sequence(s):\n${failures.join('\n\n')}`);
  });
}
