// Socket.IO through nginx in front of two hubs (fixtures/nginx-sticky.conf.tmpl,
// the README's production configuration): socket.io-client with its default
// options starts on HTTP long-polling, whose requests must all reach the hub
// that holds the session, so the upstream is sticky (hash $remote_addr);
// every client here comes from 127.0.0.1 and so sticks to one of the hubs.
// Covered: polling, the upgrade to WebSocket and polling-only clients through
// the proxy; the hub the clients are on stopped (SIGTERM, SIGKILL) and the
// clients moving to the other by themselves; and what happens without
// stickiness (round robin, random), where a poll reaching the other hub is
// answered 400 {"code":1,"message":"Session ID unknown"}.
//
// Skipped when nginx is not installed (Debian: apt-get install nginx).
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { io } from 'socket.io-client';
import {
  httpRequest,
  nginxMissing,
  startHub,
  startNginx,
  startRedis,
  test as harnessTest,
  userId,
  waitUntil,
} from './harness.mjs';
import { SioClient, closeAllSio, withoutOffset } from './sioclient.mjs';

const SKIP = nginxMissing(); // a reason, or null

// Short Engine.IO pings, so that long-poll cycles (a GET answered with a
// ping, the pong POSTed) happen through nginx within the test, and so that
// abandoned sessions are closed within seconds.
const PING_INTERVAL_MS = 1500;
const PING_TIMEOUT_MS = 3000;
const HUB_ENV = {
  COORDHUB_SIO_PING_INTERVAL_MS: String(PING_INTERVAL_MS),
  COORDHUB_SIO_PING_TIMEOUT_MS: String(PING_TIMEOUT_MS),
};

const SESSION_UNKNOWN = { code: 1, message: 'Session ID unknown' };

// ---------------------------------------------------------------- helpers

const liveNginx = new Set(); // started by the running test

// socket.io-client as a page would use it through the proxy: default
// options (polling first, then the upgrade; reconnection on), the token in
// auth, a manager of its own, and a short reconnection delay.
function sioClient(ngx, token, opts = {}) {
  return new SioClient(io(ngx.url, {
    auth: { token },
    forceNew: true,
    reconnectionDelay: 100,
    reconnectionDelayMax: 500,
    ...opts,
  }));
}

// Starts nginx for the running test; it is stopped when the test ends, and
// its logs are printed if the test fails.
async function nginx(opts) {
  const n = await startNginx(opts);
  liveNginx.add(n);
  return n;
}

// Each test: skipped without nginx; on failure the nginx logs too (the
// harness prints the hubs'); its sockets closed and its nginx stopped on the
// way out, pass or fail.
function test(name, fn) {
  return harnessTest(name, { skip: SKIP ?? false }, async (t) => {
    try {
      return await fn(t);
    } catch (e) {
      for (const n of liveNginx) n.dumpLogs(name);
      throw e;
    } finally {
      closeAllSio();
      await Promise.all([...liveNginx].map((n) => n.stop()));
      liveNginx.clear();
    }
  });
}

const tradestate = (steamId, state) => ({ steamId, token: `tok-${state}`, state, msg: `m-${state}`, extra: { n: 1 } });

let redis;
before(async () => {
  if (SKIP) return;
  redis = await startRedis();
});

// Two hubs on one Redis with one JWT secret: either can serve any client.
async function hubPair() {
  const a = await startHub({ redisUrl: redis.url, env: HUB_ENV });
  const b = await startHub({ redisUrl: redis.url, env: HUB_ENV, secret: a.secret });
  return [a, b];
}

// {ws, polling}: Socket.IO connections a hub holds, by transport.
async function sioConns(hub) {
  const m = await hub.metrics();
  const g = (protocol) => m.find((s) => s.name === 'coordhub_connections' && s.labels.protocol === protocol)?.value;
  return { ws: g('socketio'), polling: g('socketio_polling') };
}

// Waits until `hub` holds exactly `want` ({ws, polling}) Socket.IO connections.
async function waitConns(hub, want, what, timeoutMs = 10000) {
  let last;
  await waitUntil(
    async () => {
      last = await sioConns(hub);
      return last.ws === want.ws && last.polling === want.polling;
    },
    { timeoutMs, what: `${what}: hub port ${hub.port} to hold ${JSON.stringify(want)} Socket.IO connections` },
  ).catch((e) => {
    throw new Error(`${e.message}; it holds ${JSON.stringify(last)}`);
  });
}

// [the hub that holds Socket.IO connections, the other]: a first guess,
// which waitConns() then checks.
async function stuckTo(a, b) {
  const c = await sioConns(a);
  return c.ws + c.polling > 0 ? [a, b] : [b, a];
}

// Publishes one tradestate per client (to its user) and waits until each
// has it.
async function deliverToAll(clients, tag) {
  const marks = clients.map((c) => c.mark());
  for (const c of clients) await redis.publish('tradestate', JSON.stringify(tradestate(c.user, `${tag}-${c.user}`)));
  await Promise.all(
    clients.map(async (c, i) => {
      const args = await c.waitEvent('tradestate', 5000, (x) => x.state === `${tag}-${c.user}`, marks[i]);
      assert.deepEqual(withoutOffset(args), [tradestate(c.user, `${tag}-${c.user}`)]);
    }),
  );
}

// The hub whose port nginx's X-Coordhub-Upstream / access log names.
const upstreamOf = (res) => res.headers['x-coordhub-upstream'];

// ---------------------------------------------------------------- sticky

test('through nginx (sticky): default clients poll, upgrade to WebSocket and receive; polling-only clients work', async () => {
  const [a, b] = await hubPair();
  const ngx = await nginx({ upstreams: [a, b] });

  const def = [];
  for (let i = 0; i < 3; i++) {
    const user = userId();
    const c = sioClient(ngx, a.token(user), { reconnection: false });
    c.user = user;
    def.push(c);
  }
  const poll = [];
  for (let i = 0; i < 2; i++) {
    const user = userId();
    const c = sioClient(ngx, a.token(user), { reconnection: false, transports: ['polling'] });
    c.user = user;
    poll.push(c);
  }
  await Promise.all(def.map((c) => c.ready(10000)));
  await Promise.all(poll.map((c) => c.ready(10000, { upgrade: false })));
  for (const c of def) {
    assert.deepEqual(c.upgrades, [{ engine: 1, to: 'websocket' }], `default client: ${c.summary()}`);
    assert.equal(c.transport, 'websocket');
  }

  // Sticky: every client on one hub, and the other one never asked.
  const [on, other] = await stuckTo(a, b);
  await waitConns(on, { ws: 3, polling: 2 }, 'all five clients on one hub');
  await waitConns(other, { ws: 0, polling: 0 }, 'none on the other');
  assert.equal(await other.metric('coordhub_polling_requests_total'), 0, 'a polling request reached the other hub');
  assert.equal(await on.metric('coordhub_polling_upgrades_total'), 3);
  const seen = ngx.accessLog();
  assert.ok(!seen.includes(`up=127.0.0.1:${other.port}`), `nginx sent requests to the other hub:\n${seen}`);

  await deliverToAll([...def, ...poll], 'sticky');

  // The polling-only clients: POSTs through nginx (ping -> pong), and two
  // long-poll cycles ended by the hub's ping (answered with a POSTed pong).
  await Promise.all(
    poll.map(async (c) => {
      let pings = 0;
      c.socket.io.engine.on('ping', () => {
        pings++;
        c._poke();
      });
      const mark = c.mark();
      c.socket.emit('ping');
      await c.waitEvent('pong', 5000, () => true, mark);
      await c.until(() => pings >= 2, 3 * PING_INTERVAL_MS + 5000, 'two Engine.IO pings over long-polling');
      assert.equal(c.transport, 'polling');
      assert.equal(c.socket.connected, true, c.summary());
      assert.deepEqual(c.disconnects, []);
    }),
  );
  await deliverToAll([...def, ...poll], 'after-pings');
  for (const c of [...def, ...poll]) assert.deepEqual(c.connectErrors, [], c.summary());
});

// ---------------------------------------------------------------- failover

for (const signal of ['SIGTERM', 'SIGKILL']) {
  test(`${signal} to the hub the clients stuck to: they reconnect by themselves to the other, through nginx, and receive again`, async () => {
    const [a, b] = await hubPair();
    const ngx = await nginx({ upstreams: [a, b] });
    const clients = [];
    for (const transports of [undefined, undefined, ['polling']]) {
      const user = userId();
      const c = sioClient(ngx, a.token(user), transports ? { transports } : {});
      c.user = user;
      c.pollingOnly = !!transports;
      clients.push(c);
    }
    await Promise.all(clients.map((c) => c.ready(10000, { upgrade: !c.pollingOnly })));
    const [on, other] = await stuckTo(a, b);
    await waitConns(on, { ws: 2, polling: 1 }, 'before the stop');
    await waitConns(other, { ws: 0, polling: 0 }, 'before the stop');
    await deliverToAll(clients, 'before');

    if (signal === 'SIGTERM') assert.equal(await on.stop(15000), 0, 'exit code after SIGTERM');
    else await on.kill('SIGKILL');

    // Dropped, and not told to stay away: socket.io-client reconnects by
    // itself after "transport close"/"transport error", never after
    // "io server disconnect".
    await Promise.all(clients.map((c) => c.until(() => c.disconnects.length >= 1, 10000, 'the disconnect')));
    for (const c of clients) {
      assert.ok(['transport close', 'transport error'].includes(c.disconnects[0]), `disconnect reason: ${c.summary()}`);
    }
    await Promise.all(
      clients.map((c) =>
        c.until(() => c.connects >= 2, 15000, 'the reconnection').then(() => c.ready(10000, { upgrade: !c.pollingOnly })),
      ),
    );
    for (const c of clients) {
      assert.equal(c.connects, 2, `more than one reconnection: ${c.summary()}`);
      if (!c.pollingOnly) assert.equal(c.transport, 'websocket', c.summary());
    }
    await waitConns(other, { ws: 2, polling: 1 }, 'after the failover');
    await deliverToAll(clients, 'after');
  });
}

// ---------------------------------------------------------------- without stickiness

test('without stickiness: a poll on the other hub gets 400 code 1; socket.io-client retries (round robin: forever; random: until one lands), WebSocket-only works; abandoned sessions are closed', async (t) => {
  const [a, b] = await hubPair();
  const byAddr = { [`127.0.0.1:${a.port}`]: a, [`127.0.0.1:${b.port}`]: b };
  const rr = await nginx({ upstreams: [a, b], balance: '' });

  // 1. The wire: a handshake on one hub, the next request with its sid on
  // the other (round robin alternates), answered as Engine.IO does.
  const hs = await httpRequest(`${rr.url}/socket.io/?EIO=4&transport=polling`);
  assert.equal(hs.status, 200, hs.body);
  const sid = JSON.parse(hs.body.slice(1)).sid;
  const home = byAddr[upstreamOf(hs)];
  assert.ok(home, `handshake answered by ${upstreamOf(hs)}`);
  let refused = null;
  for (let i = 0; i < 4 && !refused; i++) {
    const r = await httpRequest(`${rr.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`);
    const by = byAddr[upstreamOf(r)];
    if (by === home) {
      assert.equal(r.status, 200, `a poll on the session's own hub: ${r.status} ${r.body}`);
      continue;
    }
    assert.ok(by, `poll answered by ${upstreamOf(r)}`);
    refused = r;
  }
  assert.ok(refused, 'four polls in a row reached the hub that holds the session: no round robin?');
  assert.equal(refused.status, 400);
  assert.deepEqual(JSON.parse(refused.body), SESSION_UNKNOWN);
  assert.match(refused.headers['content-type'], /^application\/json/);

  // 2. socket.io-client, default options, reconnection on. Each attempt is
  // a handshake and then, at once, a GET, the CONNECT POST and the
  // WebSocket probe: with strict round robin and nothing else on the proxy,
  // at most one of the three reaches the handshake's hub, so the GET or the
  // POST gets 400 code 1; the client reports connect_error "xhr poll
  // error"/"xhr post error" (description 400, the hub's body) and tries
  // again, at its base delay, without backing off (the engine had opened),
  // never connecting. A polling-only client the same. One client at a time:
  // another one's requests in between would shift the alternation.
  for (const opts of [{}, { transports: ['polling'] }]) {
    const c = sioClient(rr, a.token(userId()), opts);
    await c.until(() => c.connectErrors.length >= 4, 15000, 'four connect_errors');
    assert.equal(c.connects, 0, `connected through round robin: ${c.summary()}`);
    assert.equal(c.socket.active, true, 'socket.io-client stopped retrying');
    for (const e of c.connectErrors) {
      assert.match(e.message, /^xhr (poll|post) error$/, c.summary());
      assert.equal(e.description, 400, c.summary());
      assert.deepEqual(JSON.parse(e.body), SESSION_UNKNOWN);
    }
    assert.ok(c.engines >= 4, `the handshakes did not succeed: ${c.summary()}`);
    t.diagnostic(
      `round robin, transports ${JSON.stringify(opts.transports ?? ['polling', 'websocket'])}: ` +
        `${c.connectErrors.length} connect_errors (${[...new Set(c.connectErrors.map((e) => e.message))].join(', ')}; 400 code 1), never connected`,
    );
    c.close();
  }

  // 3. Random balancing (or round robin shared with other clients): an
  // attempt whose GET, CONNECT POST and WebSocket probe all reach the
  // handshake's hub (about 1 in 8) connects and upgrades, and once on
  // WebSocket the client stays there; attempts in between may connect on
  // polling and be dropped by the next poll. It gets there by retrying:
  // typically within 10 attempts (0.1-1.5 s here); 40 s is over 50
  // attempts even on a loaded machine ((7/8)^50 < 0.2 %).
  const rnd = await nginx({ upstreams: [a, b], balance: 'random;' });
  const luckyUser = userId();
  const lucky = sioClient(rnd, a.token(luckyUser), { reconnectionDelay: 50, reconnectionDelayMax: 100 });
  lucky.user = luckyUser;
  const t0 = Date.now();
  await lucky.ready(40000);
  t.diagnostic(
    `random: connected and upgraded after ${lucky.engines} handshakes, ${lucky.connectErrors.length} connect_errors, ` +
      `${lucky.connects} connects (${Date.now() - t0} ms)`,
  );
  for (const e of lucky.connectErrors) assert.deepEqual(JSON.parse(e.body), SESSION_UNKNOWN, lucky.summary());
  await deliverToAll([lucky], 'random');
  lucky.close();

  // 4. WebSocket only: one connection, one hub, no stickiness needed.
  const wsOnly = [];
  for (let i = 0; i < 4; i++) {
    const user = userId();
    const c = sioClient(rr, a.token(user), { transports: ['websocket'], reconnection: false });
    c.user = user;
    wsOnly.push(c);
  }
  await Promise.all(wsOnly.map((c) => c.ready(10000, { upgrade: false })));
  // Round robin spread them over both hubs (the random client's socket,
  // closed above, may take a moment to go).
  let ws;
  await waitUntil(
    async () => {
      ws = [(await sioConns(a)).ws, (await sioConns(b)).ws];
      return ws[0] === 2 && ws[1] === 2;
    },
    { timeoutMs: 5000, what: 'two WebSocket-only clients on each hub under round robin' },
  ).catch((e) => {
    throw new Error(`${e.message}; per hub: ${JSON.stringify(ws)}`);
  });
  await deliverToAll(wsOnly, 'ws-only');
  for (const c of wsOnly) assert.deepEqual(c.connectErrors, []);
  for (const c of wsOnly) c.close();

  // 5. The sessions the retries left behind (opened, then abandoned when
  // another request failed) are closed by the hubs after the ping interval
  // and timeout, like every client gone silent.
  const bound = PING_INTERVAL_MS + PING_TIMEOUT_MS + 5000;
  await Promise.all([a, b].map((h) => waitConns(h, { ws: 0, polling: 0 }, 'abandoned sessions closed', bound)));
});
