// Socket.IO compatibility in a real browser (SPEC §5): headless Chromium,
// driven by playwright-core, loads a page that the hub itself serves from
// --web-root, with the official socket.io-client browser bundle (copied from
// node_modules: no CDN, no network beyond loopback), connected with
// transports: ["websocket"] and the token in the auth payload.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before } from 'node:test';
import { makeTmpDir, startHub, startRedis, test, userId, withTimeout } from './harness.mjs';

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
let webRoot;
let browser;

before(async () => {
  if (!haveChromium) return;
  webRoot = makeTmpDir('webroot-');
  const bundle = path.join(path.dirname(require.resolve('socket.io-client/package.json')), 'dist', 'socket.io.min.js');
  fs.copyFileSync(bundle, path.join(webRoot, 'socket.io.min.js'));
  for (const f of ['index.html', 'page.js']) fs.copyFileSync(path.join(FIXTURES, f), path.join(webRoot, f));
  redis = await startRedis();
  hub = await startHub({ redisUrl: redis.url, extraArgs: ['--web-root', webRoot] });
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
  if (browser) await withTimeout(browser.close(), 15000, 'Chromium to close').catch(() => {});
  if (webRoot) fs.rmSync(webRoot, { recursive: true, force: true });
});

// Opens the page for `sub`, collecting console errors and page errors.
async function openPage(sub, roles = []) {
  const page = await browser.newPage();
  const problems = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console.error: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('requestfailed', (req) => problems.push(`request failed: ${req.url()} ${req.failure()?.errorText}`));
  const tok = hub.token(sub, roles);
  const resp = await page.goto(`${hub.url}/index.html#token=${encodeURIComponent(tok)}`, { timeout: 15000 });
  assert.equal(resp.status(), 200, 'the hub served the test page');
  return { page, problems };
}

test('a page using the socket.io-client browser bundle receives its events', { skip, timeout: 90000 }, async () => {
  const U = userId();
  const B = userId();
  const { page, problems } = await openPage(U);
  try {
    await page
      .waitForFunction(() => window.sioConnected === true || window.connectErrors.length > 0, null, { timeout: 15000 })
      .catch((e) => {
        throw new Error(`page did not connect: ${e.message}; problems: ${JSON.stringify(problems)}`);
      });
    assert.deepEqual(await page.evaluate(() => window.connectErrors), [], 'connect_error on the page');
    assert.equal(await page.evaluate(() => window.socket.io.engine.transport.name), 'websocket');

    const stB = { steamId: B, token: 'tb', state: 'other', msg: '' };
    const st = { steamId: U, token: 'ta', state: 'sent', msg: 'Trade offer sent ✓', extra: { emoji: '🎉', n: [1, 2] } };
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
    const by = (n) => received.filter((e) => e.name === n);
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
    assert.deepEqual(problems, [], 'console errors on the page');
  } finally {
    await withTimeout(page.close(), 10000, 'page to close').catch(() => {});
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
