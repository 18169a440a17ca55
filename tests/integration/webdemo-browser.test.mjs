// The web demo (web-demo/, issue 7) in a real browser: headless Chromium,
// driven by playwright-core, opens the page exactly as the hub serves it from
// --web-root, with a token for a user that has roles service and ops. Events
// are published on Redis and through the HTTP API, and the test asserts what
// the page shows: the trade timeline, the bot rooms, the reserved assets
// (re-read when reserve-items arrives), the lock inspector, the watched
// configuration keys, and a hub restart (reconnecting, live again, rooms
// joined and keys watched again, new events shown). No console errors.
// A screenshot of the final page is saved under the build tree.
// The hub watches the BullMQ queue demo-orders (SPEC §12): a second test
// runs real BullMQ jobs of the page's user through a real Worker and checks
// "My jobs" (job events in the user's room) and the ops "Job queues" panel
// (GET /v1/queues, then queues and queue-alert events), and that a hub
// without --queues says it watches none.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { httpJson, makeToken, repoRoot, sleep, startHub, startRedis, test, userId, withTimeout } from './harness.mjs';

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const haveChromium = fs.existsSync(CHROMIUM);
const skip = haveChromium ? false : `no Chromium at ${CHROMIUM} (scripts/deps.sh test installs it)`;

const WEB_ROOT = path.join(repoRoot, 'web-demo');
// Every hub of this file watches one BullMQ queue, polled every 200 ms, with
// the default alert bounds plus a low one for it that the jobs test crosses.
const QUEUE = 'demo-orders';
const QUEUE_ALERT = `${QUEUE}:waiting>2`;
const HUB_ARGS = [
  '--web-root',
  WEB_ROOT,
  '--queues',
  `bullmq:${QUEUE}`,
  '--queue-poll-ms',
  '200',
  '--queue-alerts',
  `waiting>100,failed>50,stuck>300s,${QUEUE_ALERT}`,
];
const WAIT = { timeout: 15000 }; // every wait on the page is bounded

let redis;
let hub;
let browser;
// Whether this hub serves configuration (PUT /v1/config/{key} answers 200).
// The configuration API is younger than the page: until it exists, the test
// checks that the panel says "not available", and the live-config part is
// skipped (and said so).
let configApi = false;

before(async () => {
  if (!haveChromium) return;
  redis = await startRedis();
  hub = await startHub({ redisUrl: redis.url, extraArgs: HUB_ARGS });
  const admin = hub.token('webdemo-admin', ['admin']);
  const probe = await httpJson(`${hub.url}/v1/config/tradeDisabled`, {
    method: 'PUT',
    token: admin,
    body: { value: false, category: 'trading' },
  });
  configApi = probe.status === 200;
  if (configApi) {
    const r = await httpJson(`${hub.url}/v1/config/pricingFlags`, {
      method: 'PUT',
      token: admin,
      body: { value: { surge: 1.0, fees: 'standard' }, category: 'pricing' },
    });
    assert.equal(r.status, 200, `PUT pricingFlags: ${r.body}`);
  }
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
});

// Opens the demo page with `token` in its URL and collects every console
// error, uncaught page error and failed request into `problems`. While
// `expectWsFailures()` is true, Chromium's own line for a WebSocket that
// could not connect to this hub's /ws is expected (the hub is down on
// purpose) and is not a problem; exactly that line, nothing else.
async function openDemo(token, { expectWsFailures = () => false, on = hub } = {}) {
  const page = await browser.newPage({ viewport: { width: 1440, height: 960 } });
  const problems = [];
  const wsFailed = /^WebSocket connection to 'ws:\/\/127\.0\.0\.1:(\d+)\/ws\?token=[^']*' failed: /;
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const m = wsFailed.exec(msg.text());
    if (m && Number(m[1]) === on.port && expectWsFailures()) return;
    problems.push(`console.error: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('requestfailed', (req) => problems.push(`request failed: ${req.url()} ${req.failure()?.errorText}`));
  const resp = await page.goto(`${on.url}/?token=${encodeURIComponent(token)}`, { timeout: 15000 });
  assert.equal(resp.status(), 200, 'the hub served the demo page');
  return { page, problems };
}

const text = (page, sel) => page.locator(sel).first().textContent({ timeout: 5000 });

// "1:15" or "9.4 s" (the page's countdown format) in milliseconds.
function parseCountdown(s) {
  let m = /^(\d+):(\d\d)$/.exec(s.trim());
  if (m) return (Number(m[1]) * 60 + Number(m[2])) * 1000;
  m = /^(\d+(?:\.\d)?) s$/.exec(s.trim());
  if (m) return Number(m[1]) * 1000;
  return NaN;
}

async function waitLive(page, what) {
  await page.locator('#state[data-state="live"]').waitFor(WAIT).catch(async (e) => {
    const st = await text(page, '#state').catch(() => '?');
    throw new Error(`${what}: the page is not live (state "${st}"): ${e.message}`);
  });
}

async function waitRoomsJoined(page) {
  for (const room of ['bot:7', 'bot:12', 'bot:31', 'ops']) {
    await page.locator(`#rooms button[data-room="${room}"][data-state="in"]`).waitFor(WAIT);
  }
}

function tradestate(steamId, state, msg, extra) {
  return JSON.stringify({ steamId, token: `offer${Math.floor(Math.random() * 1e6)}`, state, msg, ...(extra ? { extra } : {}) });
}

function screenshotPath(name) {
  const dir = path.join(process.env.COORDHUB_TEST_TMP || os.tmpdir(), 'webdemo');
  fs.mkdirSync(dir, { recursive: true });
  return path.join(dir, name);
}

test('the demo page shows trades, rooms, reservations, locks and config live, and survives a hub restart', { skip, timeout: 180000 }, async (t) => {
  const U = userId();
  const other = userId();
  const token = hub.token(U, ['service', 'ops'], 900);
  let hubDown = false;
  const { page, problems } = await openDemo(token, { expectWsFailures: () => hubDown });
  try {
    await waitLive(page, 'after opening');
    assert.equal(await text(page, '#who-sub'), U, 'the page shows the token\'s user');
    assert.equal(await text(page, '#timeline-room'), `user:${U}`);
    // An ops token: the page joins the three bot rooms and ops by itself.
    await waitRoomsJoined(page);

    // --- the trade timeline: only this user's events, newest first, escaped
    await redis.publish('tradestate', tradestate(other, 'accepted', 'not for this page'));
    await redis.publish('tradestate', tradestate(U, 'sent', 'Bot 7 sent you a trade offer for 2 item(s)', { bot: '7', items: 2 }));
    const evil = '<img src=x onerror="window.pwned=1"> & <b>bold</b>';
    await redis.publish('tradestate', tradestate(U, 'accepted', evil));
    const first = page.locator('#timeline li[data-kind="tradestate"]').first();
    await page.locator('#timeline li[data-kind="tradestate"]', { hasText: evil }).waitFor(WAIT);
    assert.match(await first.textContent(), /accepted/, 'the newest trade is on top');
    assert.equal(await first.getAttribute('data-state'), 'accepted');
    assert.equal(await first.locator('.title').textContent(), `accepted ${evil}`, 'the message is shown as text');
    const second = page.locator('#timeline li[data-kind="tradestate"]').nth(1);
    assert.match(await second.textContent(), /sent Bot 7 sent you a trade offer for 2 item\(s\)/);
    assert.match(await second.textContent(), /bot 7 · 2 item\(s\)/);
    assert.equal(await page.locator('#timeline img, #timeline b').count(), 0, 'no markup from a payload reached the DOM');
    assert.equal(await page.evaluate(() => window.pwned), undefined);
    assert.equal(await page.locator('#timeline li', { hasText: 'not for this page' }).count(), 0, 'another user\'s trade');

    await redis.publish('canceledtrades', U);
    await page.locator('#timeline li[data-kind="canceledtrades"]', { hasText: U }).waitFor(WAIT);

    // A bot command naming this user: in the user's timeline as bot-command
    // (never the trade data), and in the bot room's stream with the raw line.
    await redis.publish('bot 7', `withdraw 7 ${U}_c0ffee42 tradeData:{"items":[{"assetid":"x9"}]}`);
    const cmd = page.locator('#timeline li[data-kind="bot-command"]').first();
    await cmd.waitFor(WAIT);
    assert.match(await cmd.textContent(), /Bot 7: withdraw.*trade c0ffee42/);
    assert.doesNotMatch(await cmd.textContent(), /tradeData/);
    const botLine = page.locator('#ops-timeline li[data-kind="bot"]', { hasText: 'c0ffee42' });
    await botLine.waitFor(WAIT);
    assert.match(await botLine.textContent(), /bot:7.*withdraw.*tradeData/);
    await redis.publish('steamDown', 'Steam API unreachable');
    await page.locator('#ops-timeline li[data-kind="steamDown"]', { hasText: 'Steam API unreachable' }).waitFor(WAIT);

    // --- reserved assets: re-read when the hub broadcasts reserve-items
    await page.locator('#resv-empty').waitFor({ state: 'visible', ...WAIT });
    const reserved = await httpJson(`${hub.url}/v1/reservations/730`, {
      method: 'POST',
      token,
      body: { assets: ['x1'], ttl_s: 60 },
    });
    assert.equal(reserved.status, 200, `reserve x1: ${reserved.body}`);
    const row = page.locator('#resv-body tr[data-asset="x1"]');
    await row.waitFor(WAIT);
    assert.equal(await page.locator('#resv-table').getAttribute('data-reason'), 'reserve-items', 'refreshed by the event');
    assert.equal(await row.getAttribute('data-expires'), String(reserved.json.expires_at_ms));
    const left = parseCountdown(await row.locator('td').last().textContent());
    assert.ok(left > 45000 && left <= 60000, `x1 expires in ${left} ms, want 45-60 s`);

    // --- lock inspector
    const lock = await httpJson(`${hub.url}/v1/locks/lockTrade:webdemo`, {
      method: 'POST',
      token,
      body: { ttl_ms: 30000, wait_ms: 0, owner: 'webdemo-test' },
    });
    assert.equal(lock.status, 200, `take the lock: ${lock.body}`);
    await page.fill('#lock-name', 'lockTrade:webdemo');
    await page.click('#lock-form button[type="submit"]');
    await page.locator('#lock-result[data-held="true"]').waitFor(WAIT);
    assert.equal(await text(page, '#lock-held'), 'held');
    assert.equal(await text(page, '#lock-fence'), String(lock.json.fence));
    const ttl = parseCountdown(await text(page, '#lock-ttl'));
    assert.ok(ttl > 20000 && ttl <= 30000, `lock ttl shown ${ttl} ms`);

    // --- the hubs of this Redis (GET /v1/hubs every 2 s): this one, and a
    // second hub started now appears by itself, with its connections
    const host = new URL(hub.url).host;
    await page.locator(`#hubs-list li[data-addr="${host}"]`, { hasText: 'native' }).waitFor(WAIT);
    const hub2 = await startHub({ redisUrl: redis.url, secret: hub.secret, extraArgs: HUB_ARGS });
    await page.locator(`#hubs-list li[data-addr="${new URL(hub2.url).host}"]`).waitFor(WAIT);
    assert.equal(await text(page, '#hubs-count'), '2 hubs');
    await hub2.stop();
    await page.locator(`#hubs-list li[data-addr="${new URL(hub2.url).host}"]`).waitFor({ ...WAIT, state: 'detached' });

    // --- configuration
    const admin = hub.token('webdemo-admin', ['admin']);
    if (configApi) {
      const td = page.locator('#config-list li[data-key="tradeDisabled"][data-state="ok"]');
      await td.waitFor(WAIT);
      assert.equal((await td.locator('.config-value').textContent()).trim(), 'false');
      await page.locator('#config-list li[data-key="pricingFlags"][data-state="ok"]', { hasText: 'standard' }).waitFor(WAIT);
      const put = await httpJson(`${hub.url}/v1/config/tradeDisabled`, {
        method: 'PUT',
        token: admin,
        body: { value: true, category: 'trading' },
      });
      assert.equal(put.status, 200, `PUT tradeDisabled: ${put.body}`);
      await page.locator('#config-list li[data-key="tradeDisabled"] .config-when', { hasText: 'changed live' }).waitFor(WAIT);
      assert.equal((await td.locator('.config-value').textContent()).trim(), 'true');
      if (put.json && put.json.version !== undefined) {
        assert.equal(await td.locator('.config-version').textContent(), `v${put.json.version}`);
      }
    } else {
      t.diagnostic('configuration API not served by this hub (PUT /v1/config/tradeDisabled is not 200): live-config checks skipped');
      await page.locator('#config-list[data-available="false"]').waitFor(WAIT);
      assert.match(await text(page, '#config-status'), /Not available/);
      assert.equal(await page.locator('#config-list li[data-state="unavailable"]').count(), 2);
    }

    // --- restart the hub: same port, same Redis, same secret
    const port = hub.port;
    hubDown = true;
    assert.equal(await hub.stop(), 0, 'the old hub exits 0');
    await page.locator('#timeline li[data-kind="system"][data-conn="down"]').waitFor(WAIT);
    await page.waitForFunction(
      () => /^reconnecting in \d+\.\d s$/.test(document.getElementById('state').textContent),
      null,
      WAIT,
    );
    assert.equal(await page.locator('#state').getAttribute('data-state'), 'reconnecting');
    assert.match(await text(page, '#state-detail'), /attempt \d+ · offline .* · hub going away \(1001\)/);
    await sleep(1500); // long enough for a failed attempt or two (backoff)
    hub = await startHub({ redisUrl: redis.url, port, secret: hub.secret, extraArgs: HUB_ARGS });
    await waitLive(page, 'after the restart');
    hubDown = false;
    await page.locator('#timeline li[data-kind="system"][data-conn="up"]', { hasText: 'live again' }).waitFor(WAIT);
    assert.match(await text(page, '#state-detail'), /^live again since .* offline\)$/);
    await waitRoomsJoined(page);

    await redis.publish('tradestate', tradestate(U, 'escrow', 'after the restart: on hold'));
    const newest = page.locator('#timeline li[data-kind="tradestate"]').first();
    await page.locator('#timeline li[data-kind="tradestate"]', { hasText: 'after the restart: on hold' }).waitFor(WAIT);
    assert.match(await newest.textContent(), /escrow after the restart: on hold/);
    await redis.publish('bot 12', 'checkSteamGuard 12');
    await page.locator('#ops-timeline li[data-kind="bot"]', { hasText: 'bot:12' }).waitFor(WAIT);

    // The page re-read the list on reconnecting; a reservation made now
    // reaches it through reserve-items again.
    await page.locator('#resv-table[data-reason="reconnected"]').waitFor(WAIT);
    const again = await httpJson(`${hub.url}/v1/reservations/730`, {
      method: 'POST',
      token,
      body: { assets: ['x2'], ttl_s: 120, owner: 'bot12' },
    });
    assert.equal(again.status, 200, `reserve x2: ${again.body}`);
    await page.locator('#resv-table[data-reason="reserve-items"] tr[data-asset="x2"]').waitFor(WAIT);
    assert.equal(await page.locator('#resv-body tr').count(), 2, 'x1 and x2, earliest expiry first');
    assert.equal(await page.locator('#resv-body tr').first().getAttribute('data-asset'), 'x1');

    if (configApi) {
      // Watched again after the reconnect: a change made now arrives.
      const put = await httpJson(`${hub.url}/v1/config/pricingFlags`, {
        method: 'PUT',
        token: admin,
        body: { value: { surge: 1.5, fees: 'weekend' }, category: 'pricing' },
      });
      assert.equal(put.status, 200, `PUT pricingFlags: ${put.body}`);
      await page.locator('#config-list li[data-key="pricingFlags"] .config-value', { hasText: 'weekend' }).waitFor(WAIT);
    }

    await sleep(300); // let the arrival highlight fade a little for the picture
    const shot = screenshotPath('webdemo-browser.png');
    await page.screenshot({ path: shot, fullPage: true, timeout: 15000 });
    t.diagnostic(`screenshot: ${shot}`);
    console.log(`webdemo screenshot: ${shot}`);

    // Every frame the hub sent was one the page understands, and nothing it
    // sent was refused.
    const odd = await page.locator('#timeline li[data-kind="other"], #timeline li[data-kind="error"]').allTextContents();
    assert.deepEqual(odd, [], 'unknown events or hub errors in the timeline');
    assert.deepEqual(problems, [], 'console errors on the page');
  } finally {
    await withTimeout(page.close(), 10000, 'page to close').catch(() => {});
  }
});

// BullMQ from the tests' packages (its ESM build does not load here).
function bullmq() {
  const require = createRequire(import.meta.url);
  return require('bullmq');
}

test('my jobs and the job queues: BullMQ jobs of this user, live', { skip, timeout: 120000 }, async (t) => {
  const { Queue, Worker } = bullmq();
  const U = userId();
  const other = userId();
  const connection = { host: '127.0.0.1', port: redis.port };
  const { page, problems } = await openDemo(hub.token(U, ['service', 'ops'], 900));
  const queue = new Queue(QUEUE, { connection });
  let worker = null;
  let bare = null;
  try {
    await waitLive(page, 'after opening');
    assert.equal(await text(page, '#jobs-room'), `user:${U}`);
    await page.locator('#jobs-empty').waitFor({ state: 'visible', ...WAIT });
    // The queue is in the table from GET /v1/queues, and the page is in the
    // room queues (the status says live).
    const qrow = page.locator(`#queues-body tr[data-queue="${QUEUE}"]`);
    await qrow.waitFor(WAIT);
    assert.equal(await qrow.getAttribute('data-kind'), 'bullmq');
    await page.locator('#queues-status.ok', { hasText: 'Live' }).waitFor(WAIT);

    // Another user's job first, then three of this user's, with no worker
    // yet: 4 waiting crosses demo-orders:waiting>2, a queue-alert fires.
    const theirs = await queue.add('ship-order', { userId: other, order: 0 });
    const mine = [];
    for (let n = 1; n <= 3; n++) mine.push(await queue.add('ship-order', { userId: U, order: n }));
    await page.waitForFunction(
      (q) => Number(document.querySelector(`#queues-body tr[data-queue="${q}"] td[data-count="waiting"]`)?.textContent) >= 4,
      QUEUE,
      WAIT,
    );
    const alert = page.locator(`#queues-alerts li[data-queue="${QUEUE}"][data-alert="${QUEUE_ALERT}"]`);
    await alert.waitFor(WAIT);
    assert.match(await alert.textContent(), /firing.*demo-orders:waiting>2.*waiting [34]/);

    // The worker: progress 50, then (for this user's first job) wait until
    // the page shows it, then the result.
    let progressSeen = null;
    worker = new Worker(
      QUEUE,
      async (job) => {
        await job.updateProgress(50);
        if (job.id === mine[0].id) {
          progressSeen = await page
            .locator(`#jobs-body tr[data-id="${job.id}"][data-state="progress"] td[data-progress="50"]`)
            .waitFor(WAIT)
            .then(() => true, (e) => e);
        }
        return { ok: true, order: job.data.order };
      },
      { connection, concurrency: 1 },
    );

    for (const job of mine) {
      const row = page.locator(`#jobs-body tr[data-queue="${QUEUE}"][data-id="${job.id}"][data-state="completed"]`);
      await row.waitFor(WAIT);
      assert.equal(await row.locator('.job-name').textContent(), 'ship-order');
      assert.equal(await row.locator('.job-result').textContent(), `{"ok":true,"order":${job.data.order}}`);
      assert.equal(await row.locator('td[data-progress]').getAttribute('data-progress'), '100');
    }
    assert.equal(progressSeen, true, `the page showed progress 50 of job ${mine[0].id}: ${progressSeen}`);
    assert.equal(await page.locator('#jobs-body tr').count(), 3, 'one row per job, updated in place');
    assert.equal(await page.locator(`#jobs-body tr[data-id="${theirs.id}"]`).count(), 0, 'another user\'s job');
    assert.equal(await text(page, '#jobs-count'), '3 jobs');
    assert.equal(await page.locator('#jobs-body tr').first().getAttribute('data-id'), mine[2].id, 'newest first');

    // The ops table follows the queue: all done, the alert cleared.
    await page.waitForFunction(
      (q) => {
        const c = (m) => document.querySelector(`#queues-body tr[data-queue="${q}"] td[data-count="${m}"]`)?.textContent;
        return Number(c('completed')) >= 4 && c('waiting') === '0' && c('active') === '0';
      },
      QUEUE,
      WAIT,
    );
    await alert.waitFor({ ...WAIT, state: 'detached' });
    assert.equal(await qrow.getAttribute('data-status'), 'ok');
    const shot = screenshotPath('webdemo-jobs.png');
    await page.screenshot({ path: shot, fullPage: true, timeout: 15000 });
    t.diagnostic(`screenshot: ${shot}`);

    const odd = await page.locator('#timeline li[data-kind="other"], #timeline li[data-kind="error"]').allTextContents();
    assert.deepEqual(odd, [], 'unknown events or hub errors in the timeline');
    assert.deepEqual(problems, [], 'console errors on the page');

    // A hub without --queues: the panel says it watches none, and nothing
    // else on the page minds.
    bare = await startHub({ redisUrl: redis.url, extraArgs: ['--web-root', WEB_ROOT] });
    const second = await openDemo(bare.token(U, ['service', 'ops'], 900), { on: bare });
    try {
      await waitLive(second.page, 'a hub without --queues');
      await second.page.locator('#queues-empty').waitFor({ state: 'visible', ...WAIT });
      assert.match(await second.page.locator('#queues-empty').textContent(), /No queues watched/);
      assert.equal(await second.page.locator('#queues-table').isHidden(), true);
      await waitRoomsJoined(second.page);
      assert.deepEqual(second.problems, [], 'console errors on the page (hub without --queues)');
    } finally {
      await withTimeout(second.page.close(), 10000, 'page to close').catch(() => {});
    }
  } finally {
    if (worker) await withTimeout(worker.close(), 10000, 'the BullMQ worker to close').catch((e) => t.diagnostic(String(e)));
    await withTimeout(queue.close(), 10000, 'the BullMQ queue to close').catch((e) => t.diagnostic(String(e)));
    if (bare) await bare.stop().catch(() => {});
    await withTimeout(page.close(), 10000, 'page to close').catch(() => {});
  }
});

test('a token without roles sees its own timeline only', { skip, timeout: 60000 }, async () => {
  const U = userId();
  const { page, problems } = await openDemo(hub.token(U, []));
  try {
    await waitLive(page, 'after opening');
    assert.equal(await page.locator('#ops-column').isHidden(), true, 'no bot rooms without role ops');
    assert.match(await text(page, '#resv-status'), /needs a token with role service or ops/);
    await redis.publish('tradestate', tradestate(U, 'declined', 'Trade offer declined'));
    await page.locator('#timeline li[data-kind="tradestate"][data-state="declined"]').waitFor(WAIT);
    assert.deepEqual(problems, [], 'console errors on the page');
  } finally {
    await withTimeout(page.close(), 10000, 'page to close').catch(() => {});
  }
});

test('a token the hub refuses is reported, and the page stops retrying', { skip, timeout: 60000 }, async () => {
  const U = userId();
  // Signed with another secret: well-formed, so the page tries it.
  const bad = makeToken({ sub: U, roles: ['ops'], secret: 'not-the-hubs-secret' });
  const { page, problems } = await openDemo(bad);
  try {
    await page.locator('#state[data-state="error"]').waitFor(WAIT);
    assert.equal(await text(page, '#state'), 'token refused');
    assert.equal(await page.locator('#token-error').isVisible(), true);
    // Here Chromium logs the refused upgrade (a 401, which it words as
    // "HTTP Authentication failed") and the page's own 401 check; those two
    // lines are the expected evidence, anything else is not.
    const unexpected = problems.filter(
      (p) =>
        !/^console\.error: WebSocket connection to 'ws:\/\/127\.0\.0\.1:\d+\/ws\?token=[^']*' failed: (HTTP Authentication failed|.*401)/.test(p) &&
        !/^console\.error: Failed to load resource: the server responded with a status of 401/.test(p),
    );
    assert.deepEqual(unexpected, [], 'console errors on the page');
    const state = await text(page, '#state');
    await sleep(1500);
    assert.equal(await text(page, '#state'), state, 'no more attempts');
  } finally {
    await withTimeout(page.close(), 10000, 'page to close').catch(() => {});
  }
});
