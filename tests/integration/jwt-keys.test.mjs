// Keys and algorithms (SPEC §10), with tokens minted by an independent JWT
// library (jose): every algorithm of --jwt-keys accepted on every entry
// point (/ws, Socket.IO CONNECT, the HTTP API); wrongly signed, expired,
// not yet valid, wrong issuer or audience, unknown kid, alg none and an RS256
// key's public half used as an HS256 secret refused everywhere; SIGHUP
// rotating the keys under 500 open sockets.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { before } from 'node:test';
import * as jose from 'jose';
import { io } from 'socket.io-client';
import { connectWs, freePort, httpGet, makeTmpDir, openWs, runHub, startHub, startRedis, test, userId, waitUntil } from './harness.mjs';
import { SioClient } from './sioclient.mjs';

const ISS = 'https://login.example';
const AUD = 'coordhub';
const ALGS = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'ES256', 'ES384'];

let redis;
let hub;
let dir;
let keysFile;
const keys = {}; // alg -> {kid, sign (KeyLike), jwk (public or oct)}

async function makeKey(alg, kid) {
  if (alg.startsWith('HS')) {
    const secret = await jose.generateSecret(alg, { extractable: true });
    const jwk = await jose.exportJWK(secret);
    return { kid, alg, sign: secret, jwk: { ...jwk, kid, alg } };
  }
  const { publicKey, privateKey } = await jose.generateKeyPair(alg, { extractable: true, modulusLength: 2048 });
  return { kid, alg, sign: privateKey, pub: publicKey, jwk: { ...(await jose.exportJWK(publicKey)), kid, alg } };
}

function writeKeys(list) {
  const tmp = `${keysFile}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify({ keys: list.map((k) => k.jwk) }));
  fs.renameSync(tmp, keysFile);
}

function mint(k, { sub = userId(), roles = [], ttl = 300, claims = {}, header = {}, iss = ISS, aud = AUD } = {}) {
  const now = Math.floor(Date.now() / 1000);
  let jwt = new jose.SignJWT({ sub, roles, ...claims }).setProtectedHeader({ alg: k.alg, kid: k.kid, ...header }).setExpirationTime(now + ttl);
  if (iss) jwt = jwt.setIssuer(iss);
  if (aud) jwt = jwt.setAudience(aud);
  return jwt.sign(k.sign);
}

before(async () => {
  for (const alg of ALGS) keys[alg] = await makeKey(alg, `k-${alg.toLowerCase()}`);
  dir = makeTmpDir('jwks-');
  keysFile = path.join(dir, 'keys.json');
  writeKeys(Object.values(keys));
  redis = await startRedis();
  hub = await startHub({ redisUrl: redis.url, extraArgs: ['--jwt-keys', keysFile, '--jwt-issuer', ISS, '--jwt-audience', AUD] });
});

// What each entry point says to a token: 'ok' or 'refused'.
async function wsSays(tok) {
  const r = await openWs(`ws://127.0.0.1:${hub.port}/ws?token=${encodeURIComponent(tok)}`);
  if (r.ok) r.client.terminate();
  return r.ok ? 'ok' : r.statusCode === 401 ? 'refused' : `status ${r.statusCode}`;
}
async function sioSays(tok) {
  const c = new SioClient(io(hub.url, { transports: ['websocket'], forceNew: true, reconnection: false, auth: { token: tok } }));
  try {
    const r = await c.until(() => (c.socket.connected ? 'ok' : c.connectErrors.length ? c.connectErrors[0].message : null), 5000, 'connect or connect_error');
    return r === 'unauthorized' ? 'refused' : r;
  } finally {
    c.close();
  }
}
async function apiSays(tok) {
  const r = await httpGet(`${hub.url}/v1/config/jwtKeysProbe`, { headers: { authorization: `Bearer ${tok}` } });
  return r.status === 401 ? 'refused' : r.status === 404 || r.status === 200 ? 'ok' : `status ${r.status}`;
}
async function everywhere(tok) {
  return [await wsSays(tok), await sioSays(tok), await apiSays(tok)];
}

test('every algorithm of the key set is accepted on /ws, Socket.IO and the HTTP API', async () => {
  for (const alg of ALGS) {
    assert.deepEqual(await everywhere(await mint(keys[alg])), ['ok', 'ok', 'ok'], alg);
    // without a kid: tried against every key of its type
    const noKid = await mint(keys[alg], { header: { kid: undefined } });
    assert.equal(await wsSays(noKid), 'ok', `${alg} without kid`);
  }
  // the claims come through: the user's own room, the roles
  const U = userId();
  const c = await connectWs(`ws://127.0.0.1:${hub.port}/ws?token=${encodeURIComponent(await mint(keys.ES256, { sub: U, roles: ['ops'] }))}`);
  c.send({ op: 'join', room: 'bot:5' });
  await c.waitFor((m) => m.event === 'joined', 5000, 'ops role from an ES256 token');
  await redis.publish('tradestate', JSON.stringify({ steamId: U, token: 't', state: 'es', msg: '' }));
  await c.waitFor((m) => m.event === 'tradestate', 5000, 'its own room');
});

test('bad tokens are refused on every entry point', async () => {
  const other = await makeKey('RS256', keys.RS256.kid); // same kid, another key
  const otherHs = await makeKey('HS256', keys.HS256.kid);
  const now = Math.floor(Date.now() / 1000);
  const rsPem = await jose.exportSPKI(keys.RS256.pub);
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const cases = {
    'RS256 signed by another key': await mint(other),
    'HS256 signed by another secret': await mint(otherHs),
    expired: await mint(keys.ES256, { ttl: -10 }),
    'not yet valid (nbf)': await mint(keys.RS384, { claims: { nbf: now + 120 } }),
    'wrong issuer': await mint(keys.HS384, { iss: 'https://evil.example' }),
    'no issuer': await mint(keys.HS384, { iss: null }),
    'wrong audience': await mint(keys.ES384, { aud: 'someone-else' }),
    'unknown kid': await mint(keys.HS512, { header: { kid: 'nope' } }),
    'alg none': `${b64({ alg: 'none', kid: keys.HS256.kid })}.${b64({ sub: 'u1', exp: now + 60, iss: ISS, aud: AUD })}.`,
    // the public key of the RSA entry as an HMAC secret, under its kid
    'RS256 key re-signed as HS256': await new jose.SignJWT({ sub: 'u1', iss: ISS, aud: AUD })
      .setProtectedHeader({ alg: 'HS256', kid: keys.RS256.kid })
      .setExpirationTime(now + 60)
      .sign(new TextEncoder().encode(rsPem)),
    'ES256 kid with an RS256 alg': await mint({ ...keys.RS256, kid: keys.ES256.kid }),
    // (jose will not sign a crit it does not know: signed by hand)
    'crit extension': (() => {
      const signed = `${b64({ alg: 'HS256', kid: keys.HS256.kid, crit: ['exp-ext'], 'exp-ext': 1 })}.${b64({ sub: 'u1', exp: now + 60, iss: ISS, aud: AUD })}`;
      return `${signed}.${crypto.createHmac('sha256', Buffer.from(keys.HS256.jwk.k, 'base64url')).update(signed).digest('base64url')}`;
    })(),
  };
  for (const [what, tok] of Object.entries(cases)) assert.deepEqual(await everywhere(tok), ['refused', 'refused', 'refused'], what);
});

test('SIGHUP rotation with 500 sockets open: key 2 added, key 1 removed; who refreshed stays, who did not gets 4001 at exp', async () => {
  const k1 = await makeKey('ES256', 'rot-1');
  const k2 = await makeKey('ES256', 'rot-2');
  writeKeys([...Object.values(keys), k1]);
  process.kill(hub.pid, 'SIGHUP');
  await waitUntil(async () => (await wsSays(await mint(k1))) === 'ok', { timeoutMs: 5000, what: 'key 1 loaded' });

  const N = 500;
  const socks = [];
  for (let i = 0; i < N; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, N - i) }, async () => {
        const sub = userId();
        const c = await connectWs(`ws://127.0.0.1:${hub.port}/ws?token=${encodeURIComponent(await mint(k1, { sub, ttl: 10 }))}`);
        return { c, sub };
      }),
    );
    socks.push(...batch);
  }
  const t0 = Date.now();
  // key 2 joins; a broken file on the way changes nothing
  fs.writeFileSync(keysFile, '{"keys": [ broken');
  process.kill(hub.pid, 'SIGHUP');
  writeKeys([...Object.values(keys), k1, k2]);
  process.kill(hub.pid, 'SIGHUP');
  await waitUntil(async () => (await wsSays(await mint(k2))) === 'ok', { timeoutMs: 5000, what: 'key 2 loaded' });
  assert.equal(await wsSays(await mint(k1)), 'ok', 'key 1 still there');
  // half of them refresh with key 2
  const refreshed = socks.filter((_, i) => i % 2 === 0);
  await Promise.all(
    refreshed.map(async (s) => {
      const m = s.c.mark();
      s.c.send({ op: 'refresh', token: await mint(k2, { sub: s.sub, ttl: 120 }) });
      await s.c.waitFor((x) => x.event === 'refreshed', 10000, 'refreshed', m);
    }),
  );
  // key 1 leaves: new tokens signed with it are refused, open sockets stay
  writeKeys([...Object.values(keys), k2]);
  process.kill(hub.pid, 'SIGHUP');
  await waitUntil(async () => (await wsSays(await mint(k1))) === 'refused', { timeoutMs: 5000, what: 'key 1 removed' });
  assert.ok(Date.now() - t0 < 10000, `the rotation took ${Date.now() - t0} ms: tokens expired before it was done`);
  assert.equal(socks.filter((s) => s.c.isClosed).length, 0, 'a socket was dropped by the reload');
  // the others end at their exp with 4001; the refreshed ones stay
  const stale = socks.filter((_, i) => i % 2 === 1);
  const closes = await Promise.all(stale.map((s) => s.c.waitClose(15000)));
  assert.deepEqual([...new Set(closes.map((x) => x.code))], [4001]);
  for (const s of refreshed.slice(0, 20)) {
    const m = s.c.mark();
    s.c.send({ op: 'ping' });
    await s.c.waitFor((x) => x.event === 'pong', 5000, 'pong from a refreshed socket', m);
  }
  assert.equal(refreshed.filter((s) => s.c.isClosed).length, 0, 'a refreshed socket was closed');
  for (const s of refreshed) s.c.terminate();
});

test('a key file that does not load, or no key at all, stops the hub at start with one line and exit 2', async () => {
  const bad = path.join(dir, 'bad.json');
  const cases = [
    ['{"keys": [ broken', /key file .*bad\.json/],
    ['{"keys": []}', /key file .*bad\.json/],
    [JSON.stringify({ keys: [{ kty: 'RSA', n: 'AQAB', e: 'AQAB', kid: 'tiny' }] }), /key file .*bad\.json/],
    [JSON.stringify({ keys: [{ ...keys.ES256.jwk, alg: 'RS256' }] }), /key file .*bad\.json/],
  ];
  for (const [text, re] of cases) {
    fs.writeFileSync(bad, text);
    const r = await runHub(['--listen', `127.0.0.1:${await freePort()}`, '--redis', redis.url, '--jwt-keys', bad]);
    assert.equal(r.code, 2, `${text.slice(0, 40)}: exit ${r.code}; ${r.stderr}`);
    assert.match(r.stderr.trim(), re);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  const none = await runHub(['--listen', `127.0.0.1:${await freePort()}`, '--redis', redis.url]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /no key for tokens/);
});
