// Socket.IO compatibility in a real browser (SPEC §5): headless Chromium,
// driven by playwright-core, loads a page with the official socket.io-client
// browser bundle (copied from node_modules: no CDN, no network beyond
// loopback), the token in the auth payload: with the client's default
// options (long-polling, then the upgrade), polling only, WebSocket only;
// served by the hub itself (--web-root), and from another origin that the
// hub lists in --cors-origins (and from one it does not).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before } from 'node:test';
import { makeTmpDir, startHub, startRedis, test, userId, withTimeout } from './harness.mjs';
import { withoutOffset } from './sioclient.mjs';

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const haveChromium = fs.existsSync(CHROMIUM);
const skip = haveChromium ? false : `no Chromium at ${CHROMIUM} (scripts/deps.sh test installs it)`;

const require = createRequire(import.meta.url);

// The page and its script (fixtures/socketio-browser/): they connect,
// record every event and any connect_error in window.received and
// window.connectErrors. The hub's CSP allows scripts from 'self' only.
const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'socketio-browser');

let redis;
let hub;
let corsHub; // lists the other origin's pages in --cors-origins
let webRoot;
let browser;
let origin; // another origin serving the same page (a plain Node server, no CSP)
let originServer;

before(async () => {
  if (!haveChromium) return;
  webRoot = makeTmpDir('webroot-');
  const bundle = path.join(path.dirname(require.resolve('socket.io-client/package.json')), 'dist', 'socket.io.min.js');
  fs.copyFileSync(bundle, path.join(webRoot, 'socket.io.min.js'));
  for (const f of ['index.html', 'page.js']) fs.copyFileSync(path.join(FIXTURES, f), path.join(webRoot, f));
  redis = await startRedis();
  hub = await startHub({ redisUrl: redis.url, extraArgs: ['--web-root', webRoot] });
  originServer = http.createServer((req, res) => {
    const name = new URL(req.url, 'http://x').pathname.slice(1) || 'index.html';
    const file = path.join(webRoot, path.basename(name));
    if (!fs.existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': name.endsWith('.js') ? 'text/javascript' : 'text/html' });
    res.end(fs.readFileSync(file));
  });
  await new Promise((resolve) => originServer.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${originServer.address().port}`;
  corsHub = await startHub({ redisUrl: redis.url, secret: hub.secret, extraArgs: ['--cors-origins', `https://elsewhere.example,${origin}`] });
  const { chromium } = await import('playwright-core');
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    timeout: 30000,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
});

after(async () => {
  if (originServer) originServer.close();
  if (browser) await withTimeout(browser.close(), 15000, 'Chromium to close').catch(() => {});
  if (webRoot) fs.rmSync(webRoot, { recursive: true, force: true });
});

// Opens the page for `sub`, collecting console errors and page errors.
// `hash`: more page options (transports, hub); `base`: where the page is.
async function openPage(sub, roles = [], { hash = '', base = hub.url } = {}) {
  const page = await browser.newPage();
  const problems = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console.error: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('requestfailed', (req) => problems.push(`request failed: ${req.url()} ${req.failure()?.errorText}`));
  const tok = hub.token(sub, roles);
  const resp = await page.goto(`${base}/index.html#token=${encodeURIComponent(tok)}${hash}`, { timeout: 15000 });
  assert.equal(resp.status(), 200, 'the page was served');
  return { page, problems };
}

async function waitConnected(page, problems) {
  await page
    .waitForFunction(() => window.sioConnected === true || window.connectErrors.length > 0, null, { timeout: 15000 })
    .catch((e) => {
      throw new Error(`page did not connect: ${e.message}; problems: ${JSON.stringify(problems)}`);
    });
  assert.deepEqual(await page.evaluate(() => window.connectErrors), [], 'connect_error on the page');
}

// Publishes another user's trade, the user's trade, a cancel and a
// reservation change; the page must get exactly its own three events.
async function checkEvents(page, problems, U, via) {
  const B = userId();
  const stB = { steamId: B, token: 'tb', state: 'other', msg: '' };
  const st = { steamId: U, token: 'ta', state: 'sent', msg: `Trade offer sent ✓ ${via}`, extra: { emoji: '🎉', n: [1, 2] } };
  await redis.publish('tradestate', JSON.stringify(stB));
  await redis.publish('tradestate', JSON.stringify(st));
  await redis.publish('canceledtrades', U);
  await redis.publish('itemReserved', '');

  const want = ['tradestate', 'canceledtrades', 'reserve-items'];
  await page
    .waitForFunction((names) => names.every((n) => window.received.some((e) => e.name === n)), want, {
      timeout: 15000,
    })
    .catch(async (e) => {
      const got = await page.evaluate(() => window.received).catch(() => 'unavailable');
      throw new Error(`events did not arrive: ${e.message}; received: ${JSON.stringify(got)}; problems: ${JSON.stringify(problems)}`);
    });
  const received = await page.evaluate(() => window.received);
  // each with its recovery offset as the handlers' last argument (checked,
  // then taken off)
  const by = (n) => received.filter((e) => e.name === n).map((e) => ({ name: e.name, args: withoutOffset(e.args, `${n} on the page`) }));
  assert.deepEqual(by('tradestate'), [{ name: 'tradestate', args: [st] }], 'tradestate (only U\'s)');
  assert.deepEqual(by('canceledtrades'), [{ name: 'canceledtrades', args: [U] }]);
  assert.deepEqual(by('reserve-items')[0], { name: 'reserve-items', args: [] });

  // An emit with an acknowledgement from the page: a plain user may not
  // join a bot room.
  const ack = await page.evaluate(
    () =>
      new Promise((resolve) => {
        window.socket.timeout(5000).emit('join', 'bot:7', (err, res) => resolve(err ? { timeout: String(err) } : res));
      }),
  );
  assert.equal(ack.ok, false, `join bot:7 ack: ${JSON.stringify(ack)}`);
  assert.equal(ack.error?.code, 'forbidden');
  assert.equal(await page.evaluate(() => window.sioConnected), true, 'the page lost its connection');
}

for (const [what, hash, transports] of [
  ['default options (long-polling, then the upgrade)', '', ['polling', 'websocket']],
  ['transports: ["polling"]', '&transports=polling', ['polling']],
  ['transports: ["websocket"]', '&transports=websocket', ['websocket']],
]) {
  test(`a page with ${what} receives its events`, { skip, timeout: 90000 }, async () => {
    const U = userId();
    const { page, problems } = await openPage(U, [], { hash });
    try {
      await waitConnected(page, problems);
      if (transports.length > 1) {
        await page.waitForFunction((n) => window.transports.length >= n, transports.length, { timeout: 15000 }).catch(async (e) => {
          throw new Error(`no upgrade: ${e.message}; transports ${JSON.stringify(await page.evaluate(() => window.transports))}`);
        });
      }
      await checkEvents(page, problems, U, what);
      assert.deepEqual(await page.evaluate(() => window.transports), transports, 'the transports the engine used');
      assert.deepEqual(problems, [], 'console errors on the page');
    } finally {
      await withTimeout(page.close(), 10000, 'page to close').catch(() => {});
    }
  });
}

test('a page from another origin: served when --cors-origins lists it, refused by the browser otherwise', { skip, timeout: 90000 }, async () => {
  const U = userId();
  // polling only: the transport CORS governs (a WebSocket needs none)
  const ok = await openPage(U, [], { base: origin, hash: `&transports=polling&hub=${encodeURIComponent(corsHub.url)}` });
  try {
    await waitConnected(ok.page, ok.problems);
    await checkEvents(ok.page, ok.problems, U, 'cross-origin');
    assert.deepEqual(ok.problems, [], 'console errors on the page');
  } finally {
    await withTimeout(ok.page.close(), 10000, 'page to close').catch(() => {});
  }
  // the same page against the hub that lists no origin: the browser refuses
  // the answers (no Access-Control-Allow-Origin), the client says so
  const no = await openPage(U, [], { base: origin, hash: `&transports=polling&hub=${encodeURIComponent(hub.url)}` });
  try {
    await no.page.waitForFunction(() => window.connectErrors.length > 0 || window.sioConnected, null, { timeout: 15000 });
    assert.equal(await no.page.evaluate(() => window.sioConnected), false, 'connected across origins without CORS');
    assert.match((await no.page.evaluate(() => window.connectErrors))[0].message, /xhr poll error/);
  } finally {
    await withTimeout(no.page.close(), 10000, 'page to close').catch(() => {});
  }
});

test('a page with a bad token gets connect_error "unauthorized"', { skip, timeout: 60000 }, async () => {
  const page = await browser.newPage();
  try {
    await page.goto(`${hub.url}/index.html#token=not-a-token`, { timeout: 15000 });
    await page.waitForFunction(() => window.connectErrors.length > 0 || window.sioConnected, null, { timeout: 15000 });
    const errs = await page.evaluate(() => window.connectErrors);
    assert.equal(await page.evaluate(() => window.sioConnected), false);
    assert.equal(errs[0]?.message, 'unauthorized');
    assert.equal(errs[0]?.data?.code, 'unauthorized');
  } finally {
    await withTimeout(page.close(), 10000, 'page to close').catch(() => {});
  }
});
