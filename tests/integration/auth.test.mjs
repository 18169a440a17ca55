// Tokens (SPEC §2, §4): no valid token, HTTP 401 before the upgrade.
import assert from 'node:assert/strict';
import { before } from 'node:test';
import { connectWs, makeToken, openWs, startHub, startRedis, test, userId } from './harness.mjs';

let redis;
let hub;
before(async () => {
  redis = await startRedis();
  hub = await startHub({ redisUrl: redis.url });
});

const withQuery = (t) => `${hub.wsUrl}?token=${encodeURIComponent(t)}`;

async function expect401(url, opts, what) {
  const r = await openWs(url, opts);
  if (r.ok) {
    r.client.terminate();
    assert.fail(`${what}: the upgrade succeeded, expected HTTP 401`);
  }
  assert.equal(r.statusCode, 401, `${what}: HTTP status`);
}

test('missing, garbage, expired, badly signed, alg none and other bad tokens get 401 before the upgrade', async () => {
  const sub = userId();
  const secret = hub.secret;
  const now = Math.floor(Date.now() / 1000);
  const good = makeToken({ sub, secret });
  const [h, p] = good.split('.');
  const cases = {
    'no token at all': hub.wsUrl,
    'empty ?token=': `${hub.wsUrl}?token=`,
    'garbage': withQuery('not-a-jwt'),
    'three garbage parts': withQuery('aaa.bbb.ccc'),
    'expired': withQuery(makeToken({ sub, secret, ttl: -60 })),
    'signed with another secret': withQuery(makeToken({ sub, secret: `${secret}x` })),
    'signature cut off': withQuery(`${h}.${p}.`),
    'payload altered after signing': withQuery(
      `${h}.${Buffer.from(JSON.stringify({ sub: userId(), exp: now + 300 })).toString('base64url')}.${good.split('.')[2]}`,
    ),
    'alg none': withQuery(makeToken({ sub, secret, alg: 'none' })),
    'alg HS512 with the right secret': withQuery(makeToken({ sub, secret, alg: 'HS512' })),
    'no exp claim': withQuery(makeToken({ sub, secret, claims: { exp: undefined } })),
    'no sub claim': withQuery(makeToken({ sub, secret, claims: { sub: undefined } })),
    'sub with forbidden characters': withQuery(makeToken({ sub: 'a b/../c', secret })),
    'bad token in Authorization header': [hub.wsUrl, { headers: { Authorization: 'Bearer not-a-jwt' } }],
    'expired token in Authorization header': [
      hub.wsUrl,
      { headers: { Authorization: `Bearer ${makeToken({ sub, secret, ttl: -5 })}` } },
    ],
  };
  for (const [what, c] of Object.entries(cases)) {
    const [url, opts] = Array.isArray(c) ? c : [c, {}];
    await expect401(url, opts, what);
  }
});

test('a valid token is accepted in ?token= and in Authorization: Bearer, and puts the socket in its user room', async () => {
  const sub = userId();
  const q = await connectWs(withQuery(hub.token(sub)));
  const b = await connectWs(hub.wsUrl, { headers: { Authorization: `Bearer ${hub.token(sub)}` } });
  const state = { steamId: sub, token: 't', state: 's', msg: 'm' };
  await redis.publish('tradestate', JSON.stringify(state));
  assert.deepEqual((await q.waitEvent('tradestate')).data, state);
  assert.deepEqual((await b.waitEvent('tradestate')).data, state);
});

test('the hub keeps serving after refusing tokens', async () => {
  for (let i = 0; i < 20; i++) await expect401(withQuery(`junk${i}`), {}, `junk ${i}`);
  const c = await hub.connect(userId());
  c.send({ op: 'ping' });
  await c.waitEvent('pong');
});
