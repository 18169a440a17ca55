// The Socket.IO test files' client wrapper: a socket.io-client socket whose
// events, connects, disconnects and connect_errors are recorded and can be
// awaited with a deadline, like the harness's WsClient; and the set of live
// ones, closed after each test (sioTest) so that a reconnecting client never
// outlives its test or keeps node running.
import assert from 'node:assert/strict';
import { after } from 'node:test';
import { OFFSET_RE, test as harnessTest } from './harness.mjs';

// ---------------------------------------------------------------- offsets

// Every event the hub routes (tradestate, canceledtrades, reserve-items,
// bot, bot-command, finishedtrades, steamDown) carries its recovery offset
// (SPEC §9, docs/recovery.md) as the LAST element of the Socket.IO event
// array, so socket.io-client hands it to handlers as an extra last
// argument: 42["tradestate",{...},"<a>-<k>"], 42["reserve-items","<a>-<k>"]
// ("" while the hub is not synced). Answers and control events (pong,
// joined, left, error, config, ...) carry none. SioClient records args as
// received, offset included; these take it off, checking that it is there
// and well-formed (harness.mjs's OFFSET_RE, as for native frames).

// {args, offset}: `args` (an event's arguments, as socket.io-client passes
// them) without the trailing offset, which must be there.
export function splitOffset(args, what = 'event') {
  assert.ok(Array.isArray(args) && args.length >= 1, `${what}: no trailing offset in ${JSON.stringify(args)}`);
  const offset = args[args.length - 1];
  assert.ok(
    typeof offset === 'string' && OFFSET_RE.test(offset),
    `${what}: the last argument is not an offset ("<digits>-<digits>" or ""): ${JSON.stringify(args).slice(0, 400)}`,
  );
  return { args: args.slice(0, -1), offset };
}

// An event's arguments without their trailing offset (checked as above):
// assert.deepEqual(withoutOffset(await c.waitEvent('tradestate')), [st]).
export const withoutOffset = (args, what) => splitOffset(args, what).args;

// A raw EVENT packet `42[name, ...args, offset]` (WebSocket frame or one
// packet of a poll answer): {event: [name, ...args], offset}, the offset
// checked as above.
export function splitPacketOffset(packet, what = 'packet') {
  assert.equal(typeof packet, 'string', `${what}: not a text packet`);
  assert.ok(packet.startsWith('42['), `${what}: not an EVENT packet: ${JSON.stringify(packet).slice(0, 400)}`);
  const [name, ...rest] = JSON.parse(packet.slice(2));
  assert.equal(typeof name, 'string', `${what}: no event name in ${packet.slice(0, 400)}`);
  const { args, offset } = splitOffset(rest, `${what} (${name})`);
  return { event: [name, ...args], offset };
}

export const liveSio = new Set(); // SioClient

export class SioClient {
  constructor(socket) {
    this.socket = socket;
    this.events = []; // {name, args, at}
    this.connects = 0;
    this.disconnects = []; // reasons
    this.connectErrors = [];
    this.waiters = new Set();
    socket.onAny((name, ...args) => {
      this.events.push({ name, args, at: Date.now() });
      this._poke();
    });
    socket.on('connect', () => {
      this.connects++;
      this._poke();
    });
    socket.on('disconnect', (reason) => {
      this.disconnects.push(reason);
      this._poke();
    });
    socket.on('connect_error', (err) => {
      // a refused poll's status is err.description; its body is read now
      // (the client reuses the request object)
      err.body = err.context?.responseText;
      this.connectErrors.push(err);
      this._poke();
    });
    // The manager opens a new engine for each (re)connection: `upgrades`
    // lists, per engine, the transports it upgraded to.
    this.engines = 0; // engines opened (handshakes that succeeded)
    this.upgrades = []; // {engine, to}
    this.upgradeErrors = [];
    socket.io.on('open', () => {
      const n = ++this.engines;
      const engine = socket.io.engine;
      engine.on('upgrade', (t) => {
        this.upgrades.push({ engine: n, to: t.name });
        this._poke();
      });
      engine.on('upgradeError', (e) => this.upgradeErrors.push(e.message));
      this._poke();
    });
    liveSio.add(this);
  }

  get engine() {
    return this.socket.io.engine;
  }

  get transport() {
    return this.socket.io.engine?.transport?.name;
  }

  // Connected, and (unless polling is all it may use) upgraded to WebSocket
  // on the engine of this connection.
  ready(timeoutMs = 10000, { upgrade = true } = {}) {
    return this.until(
      () =>
        this.socket.connected &&
        (!upgrade || (this.upgrades.some((u) => u.engine === this.engines && u.to === 'websocket') && this.transport === 'websocket')),
      timeoutMs,
      upgrade ? 'connect and the upgrade to websocket' : 'connect',
    );
  }

  _poke() {
    for (const w of [...this.waiters]) w();
  }

  // Resolves with the value of `fn()` once truthy (re-checked on every
  // socket event, and on poke()); rejects after `timeoutMs` naming `what`.
  until(fn, timeoutMs, what) {
    const v = fn();
    if (v) return Promise.resolve(v);
    return new Promise((resolve, reject) => {
      const w = () => {
        const r = fn();
        if (r) {
          done();
          resolve(r);
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ${this.summary()}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(w);
      };
      this.waiters.add(w);
    });
  }

  async connected(timeoutMs = 10000) {
    const seenErrors = this.connectErrors.length;
    const r = await this.until(
      () => (this.socket.connected ? 'ok' : this.connectErrors.length > seenErrors ? 'err' : null),
      timeoutMs,
      'connect',
    );
    if (r === 'err') {
      const e = this.connectErrors.at(-1);
      throw new Error(`connect_error instead of connect: ${e.message} ${JSON.stringify(e.data)}`);
    }
  }

  // Waits for a connect_error and returns it; a connect rejects at once.
  async connectError(timeoutMs = 5000) {
    const r = await this.until(
      () => (this.connectErrors.length ? 'err' : this.socket.connected ? 'connected' : null),
      timeoutMs,
      'connect_error',
    );
    if (r === 'connected') throw new Error('connected, expected a connect_error');
    return this.connectErrors[0];
  }

  count(name, since = 0) {
    return this.events.slice(since).filter((e) => e.name === name).length;
  }

  mark() {
    return this.events.length;
  }

  // The args of the first event `name` at index >= since matching pred.
  async waitEvent(name, timeoutMs = 5000, pred = () => true, since = 0) {
    const e = await this.until(
      () => this.events.slice(since).find((x) => x.name === name && pred(...x.args)),
      timeoutMs,
      `event "${name}"`,
    );
    return e.args;
  }

  // Fails early if an event matching appears within `ms` (from `since`).
  async expectNone(pred, ms = 500, { since = 0, what = 'unexpected event' } = {}) {
    const find = () => this.events.slice(since).find((e) => pred(e.name, ...e.args));
    const hit = await this.until(find, ms, what).catch(() => null);
    if (hit) throw new Error(`${what}: got ${hit.name} ${JSON.stringify(hit.args).slice(0, 400)}`);
  }

  async waitDisconnect(timeoutMs = 5000, since = 0) {
    return this.until(() => this.disconnects[since], timeoutMs, 'disconnect');
  }

  ack(event, arg, timeoutMs = 5000) {
    return this.socket.timeout(timeoutMs).emitWithAck(event, arg);
  }

  close() {
    this.socket.disconnect();
    this.socket.io.engine?.close();
    liveSio.delete(this);
  }

  summary() {
    const tail = this.events.slice(-8).map((e) => `${e.name}${JSON.stringify(e.args).slice(0, 120)}`);
    return (
      `transport=${this.transport} connected=${this.socket.connected} connects=${this.connects} engines=${this.engines} ` +
      `upgrades=${JSON.stringify(this.upgrades)} upgrade_errors=${JSON.stringify(this.upgradeErrors.slice(-3))} ` +
      `disconnects=${JSON.stringify(this.disconnects.slice(-5))} connect_errors(${this.connectErrors.length})=` +
      `${JSON.stringify(this.connectErrors.slice(-3).map((e) => [e.message, e.description, e.body]))} last events: ${JSON.stringify(tail)}`
    );
  }
}


export function closeAllSio() {
  for (const c of [...liveSio]) {
    try {
      c.close();
    } catch {
      /* best effort */
    }
  }
  liveSio.clear();
}

// The harness's test(), closing every Socket.IO socket on the way out, pass
// or fail.
export function sioTest(name, ...args) {
  const fn = args.pop();
  return harnessTest(name, ...args, async (t) => {
    try {
      return await fn(t);
    } finally {
      closeAllSio();
    }
  });
}
after(closeAllSio);
