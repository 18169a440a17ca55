// Helpers shared by recovery.test.mjs and recovery-faults.test.mjs (SPEC §9,
// docs/recovery.md): offsets, native reconnects with ?offset=, Socket.IO
// clients that reconnect by themselves, and a TCP proxy that moves them
// from one hub to another. Not a test file (no .test.mjs).
import assert from 'node:assert/strict';
import net from 'node:net';
import { after } from 'node:test';
import { io } from 'socket.io-client';
import { RespClient, connectWs, sleep, waitUntil } from './harness.mjs';
import { SioClient } from './sioclient.mjs';

// ---------------------------------------------------------------- offsets

// "<anchor>-<count>" as [anchor, count] (BigInt); fails on anything else.
export function posOf(offset) {
  const m = /^(\d+)-(\d+)$/.exec(offset ?? '');
  assert.ok(m, `not an offset: ${JSON.stringify(offset)}`);
  return [BigInt(m[1]), BigInt(m[2])];
}

// Fails unless `offsets` are strictly increasing positions (or, with
// `allowEqual`, non-decreasing: one message, two rooms).
export function assertIncreasing(offsets, what, { allowEqual = false } = {}) {
  for (let i = 1; i < offsets.length; i++) {
    const [a1, k1] = posOf(offsets[i - 1]);
    const [a2, k2] = posOf(offsets[i]);
    const ok = a1 < a2 || (a1 === a2 && (allowEqual ? k1 <= k2 : k1 < k2));
    assert.ok(ok, `${what}: offset ${offsets[i]} (#${i}) is not after ${offsets[i - 1]}`);
  }
}

export const range = (from, to) => Array.from({ length: to - from }, (_, i) => from + i);

// ---------------------------------------------------------------- events

export const tsPayload = (steamId, state) => JSON.stringify({ steamId, state });

// Native frames of event `name` (default tradestate).
export const nativeEvents = (msgs, name = 'tradestate') => msgs.filter((m) => m && m.event === name);
// The `state` numbers of the tradestate frames.
export const nativeStates = (msgs) => nativeEvents(msgs).map((m) => m.data.state);

// Socket.IO events of `name` as {data, offset, args}.
export const sioEvents = (c, name = 'tradestate') =>
  c.events.filter((e) => e.name === name).map((e) => ({ data: e.args[0], offset: e.args[1], args: e.args }));
export const sioStates = (c) => sioEvents(c).map((e) => e.data.state);

// A Redis connection for publishing, closed by the harness's cleanup.
export async function publisher(redis) {
  return RespClient.connect(redis.port);
}

// PUBLISHes [channel, payload] pairs in one pipeline; every reply must say
// that at least `minReceivers` subscribers (hubs) got it.
export async function publishAll(pub, pairs, { minReceivers = 1 } = {}) {
  if (pairs.length === 0) return [];
  const replies = await pub.pipeline(pairs.map(([c, p]) => ['PUBLISH', c, p]), { timeoutMs: 20000 });
  replies.forEach((r, i) => {
    assert.ok(typeof r === 'number' && r >= minReceivers, `PUBLISH ${pairs[i][0]} ${pairs[i][1]} reached ${r} subscriber(s)`);
  });
  return replies;
}

// tradestate `state` = from..to-1 for `user`, in order.
export const publishStates = (pub, user, from, to, opts) =>
  publishAll(pub, range(from, to).map((n) => ['tradestate', tsPayload(user, n)]), opts);

// Publishes tradestate 0, 1, 2... for `user` one at a time (each PUBLISH
// answered before the next, about `gapMs` apart) until stop(); stop()
// resolves the number published. `onPublished(n)` after each.
export function publishLoop(pub, user, { gapMs = 3, start = 0, max = 2000 } = {}) {
  let stopped = false;
  let n = start;
  let error = null;
  const loop = (async () => {
    while (!stopped && n < max) {
      try {
        const r = await pub.command(['PUBLISH', 'tradestate', tsPayload(user, n)]);
        if (!(r >= 1)) throw new Error(`PUBLISH of state ${n} reached ${r} subscribers`);
      } catch (e) {
        error = e;
        return;
      }
      n++;
      if (gapMs) await sleep(gapMs); // pacing only, nothing waits on it
    }
  })();
  return {
    get count() {
      return n;
    },
    async stop() {
      stopped = true;
      await loop;
      if (error) throw error;
      if (n >= max) throw new Error(`publishLoop reached its cap of ${max} events`);
      return n;
    },
  };
}

// ---------------------------------------------------------------- hubs

export async function waitSynced(hub, timeoutMs = 15000) {
  await waitUntil(async () => (await hub.metric('coordhub_recovery_synced')) === 1, {
    timeoutMs,
    intervalMs: 20,
    what: `coordhub_recovery_synced 1 on the hub on port ${hub.port}`,
  });
}

// coordhub_recovery_total{framing, outcome} on `hub`.
export const outcomes = (hub, framing, outcome) => hub.metric('coordhub_recovery_total', { framing, outcome });

// ---------------------------------------------------------------- native

// The /ws URL of `hub` with token `tok`, and `offset`/`rooms` when given.
export function wsUrl(hub, tok, { offset, rooms } = {}) {
  let u = `${hub.wsUrl}?token=${encodeURIComponent(tok)}`;
  if (offset !== undefined) u += `&offset=${offset}`;
  if (rooms !== undefined) u += `&rooms=${rooms}`;
  return u;
}

// Reconnects to `hub` with `offset` (and `rooms`); resolves {client,
// recovered (the frame's data)} once the `recovered` frame came, which
// must be the first one.
export async function recoverNative(hub, tok, offset, { rooms, timeoutMs = 10000, wsOptions } = {}) {
  const client = await connectWs(wsUrl(hub, tok, { offset, rooms }), { timeoutMs, wsOptions });
  const m = await client.waitEvent('recovered', timeoutMs);
  assert.equal(client.messages[0].event, 'recovered', `first frame after the reconnect: ${client.raw[0]}`);
  return { client, recovered: m.data };
}

// Drops a native client's TCP connection (no close handshake) and returns
// what it had received by then: a page that closed sees nothing later.
export function dropNative(client) {
  const seen = client.messages.slice();
  client.terminate();
  return seen;
}

// ---------------------------------------------------------------- Socket.IO

// A socket.io-client socket at `url` (a hub's or a proxy's) that reconnects
// by itself after a transport drop, 50-100 ms later.
export function sioClient(url, tok, opts = {}) {
  return new SioClient(
    io(url, {
      auth: { token: tok },
      forceNew: true,
      reconnectionDelay: 50,
      reconnectionDelayMax: 100,
      timeout: 20000,
      ...opts,
    }),
  );
}

// ---------------------------------------------------------------- TCP proxy

const liveProxies = new Set();
after(() => {
  for (const p of liveProxies) p.close();
});

// A loopback TCP proxy: connections go to the port set by setTarget();
// while paused (no target) new connections wait, unanswered, until one is
// set. dropAll() destroys every proxied connection (both sides), as a
// network failure would: the client sees its transport die and the hub
// sees the TCP connection end.
export async function startProxy(targetPort = null) {
  let target = targetPort;
  const sockets = new Set();
  const waiting = [];
  const track = (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
  };
  const forward = (client, port) => {
    const up = net.connect({ host: '127.0.0.1', port });
    track(up);
    up.setNoDelay(true);
    client.setNoDelay(true);
    const kill = () => {
      client.destroy();
      up.destroy();
    };
    up.on('error', kill);
    up.on('close', kill);
    client.on('close', kill);
    client.pipe(up);
    up.pipe(client);
    client.resume();
  };
  const server = net.createServer({ pauseOnConnect: true }, (client) => {
    track(client);
    if (target !== null) forward(client, target);
    else waiting.push(client);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const proxy = {
    port: server.address().port,
    get url() {
      return `http://127.0.0.1:${proxy.port}`;
    },
    get waiting() {
      return waiting.filter((s) => !s.destroyed).length;
    },
    pause() {
      target = null;
    },
    setTarget(port) {
      target = port;
      for (const c of waiting.splice(0)) if (!c.destroyed) forward(c, port);
    },
    dropAll() {
      for (const s of [...sockets]) s.destroy();
    },
    close() {
      liveProxies.delete(proxy);
      proxy.dropAll();
      for (const c of waiting.splice(0)) c.destroy();
      server.close();
    },
  };
  liveProxies.add(proxy);
  return proxy;
}
