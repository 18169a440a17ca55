// Command line (SPEC §1): bad flags and an unreachable Redis exit 2 with one
// line; `token` prints a token the hub accepts; --help and --version exit 0.
import assert from 'node:assert/strict';
import { before } from 'node:test';
import { connectWs, freePort, openWs, runHub, startHub, startRedis, test, userId } from './harness.mjs';

let redis;
before(async () => {
  redis = await startRedis();
});

function oneLine(stderr, what) {
  const lines = stderr.split('\n').filter((l) => l.trim() !== '');
  assert.equal(lines.length, 1, `${what}: expected one line on stderr, got ${JSON.stringify(stderr.slice(0, 2000))}`);
  return lines[0];
}

test('no --jwt-secret (and no env): exit 2 with one line naming the secret', async () => {
  const port = await freePort();
  const r = await runHub(['--listen', `127.0.0.1:${port}`, '--redis', redis.url]);
  assert.equal(r.code, 2, `exit code; stderr: ${r.stderr}`);
  assert.match(oneLine(r.stderr, 'missing secret'), /secret|jwt/i);
});

test('--redis pointing at a closed port: exit 2 with one line naming Redis', async () => {
  const port = await freePort();
  const closed = await freePort();
  const r = await runHub(['--listen', `127.0.0.1:${port}`, '--redis', `redis://127.0.0.1:${closed}/0`, '--jwt-secret', 's3cret']);
  assert.equal(r.code, 2, `exit code; stderr: ${r.stderr}`);
  assert.match(oneLine(r.stderr, 'redis unreachable'), /redis/i);
});

test('--listen on a port another process listens on: exit 2 with one line naming the address (no crash)', async () => {
  const first = await startHub({ redisUrl: redis.url });
  const r = await runHub(['--listen', `127.0.0.1:${first.port}`, '--redis', redis.url, '--jwt-secret', 's3cret']);
  assert.equal(r.signal ?? null, null, `killed by a signal; stderr: ${r.stderr}`);
  assert.equal(r.code, 2, `exit code; stderr: ${r.stderr}`);
  assert.match(oneLine(r.stderr, 'address in use'), /listen/i);
});

test('--listen localhost:PORT listens on 127.0.0.1 (a name, not an interface: lws alone would listen nowhere)', async () => {
  const port = await freePort();
  const hub = await startHub({ redisUrl: redis.url, port, extraArgs: ['--listen', `localhost:${port}`] });
  const c = await connectWs(`ws://127.0.0.1:${port}/ws?token=${hub.token(userId())}`);
  await c.close();
  assert.equal(await hub.stop(), 0);
});

test('unknown flag and malformed values: exit 2 with one line', async () => {
  for (const args of [
    ['--no-such-flag'],
    ['--listen', 'not-an-address', '--jwt-secret', 's', '--redis', redis.url],
    ['--redis', 'mysql://127.0.0.1:1/0', '--jwt-secret', 's'],
    ['--log-level', 'loud', '--jwt-secret', 's', '--redis', redis.url],
  ]) {
    const r = await runHub(args);
    assert.equal(r.code, 2, `coordhub ${args.join(' ')}: exit code; stderr: ${r.stderr}`);
    oneLine(r.stderr, `coordhub ${args.join(' ')}`);
  }
});

test('--help and --version exit 0 and print something', async () => {
  const h = await runHub(['--help']);
  assert.equal(h.code, 0);
  assert.match(h.stdout + h.stderr, /--listen/);
  const v = await runHub(['--version']);
  assert.equal(v.code, 0);
  assert.match(v.stdout + v.stderr, /\d+\.\d+\.\d+/);
});

test('`coordhub token` prints a token the hub accepts, with the roles asked for', async () => {
  const secret = 'integration-secret-1';
  const hub = await startHub({ redisUrl: redis.url, secret });
  const sub = userId();
  const t = await runHub(['token', '--sub', sub, '--roles', 'ops', '--ttl', '120', '--jwt-secret', secret]);
  assert.equal(t.code, 0, `token exit code; stderr: ${t.stderr}`);
  const tok = t.stdout.trim();
  assert.match(tok, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, `token output: ${JSON.stringify(t.stdout)}`);
  const claims = JSON.parse(Buffer.from(tok.split('.')[1], 'base64url').toString());
  assert.equal(claims.sub, sub);
  assert.deepEqual(claims.roles, ['ops']);
  const now = Date.now() / 1000;
  assert.ok(claims.exp > now + 100 && claims.exp <= now + 125, `exp ${claims.exp} vs now ${now}`);

  const c = await connectWs(`${hub.wsUrl}?token=${encodeURIComponent(tok)}`);
  c.send({ op: 'join', room: 'ops' });
  await c.waitEvent('joined');
  await redis.publish('canceledtrades', sub);
  await c.waitEvent('canceledtrades');

  // The secret from the environment works too; a token for another secret is refused.
  const e = await runHub(['token', '--sub', sub, '--ttl', '60'], { env: { COORDHUB_JWT_SECRET: secret } });
  assert.equal(e.code, 0, `token with env secret; stderr: ${e.stderr}`);
  await (await connectWs(`${hub.wsUrl}?token=${encodeURIComponent(e.stdout.trim())}`)).close();
  const other = await runHub(['token', '--sub', sub, '--jwt-secret', 'another-secret']);
  assert.equal(other.code, 0);
  const r = await openWs(`${hub.wsUrl}?token=${encodeURIComponent(other.stdout.trim())}`);
  assert.equal(r.ok, false, 'a token signed with another secret was accepted');
  assert.equal(r.statusCode, 401);
  assert.equal(await hub.stop(), 0);
});

test('`coordhub token` without a secret or without --sub exits 2', async () => {
  const a = await runHub(['token', '--sub', 'x']);
  assert.equal(a.code, 2, `no secret: ${a.stderr}`);
  const b = await runHub(['token', '--jwt-secret', 's']);
  assert.equal(b.code, 2, `no --sub: ${b.stderr}`);
});
