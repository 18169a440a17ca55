// itemReserved -> reserve-items to every connection, coalesced to at most
// one per second per hub: the first at once, one trailing (SPEC §3).
import assert from 'node:assert/strict';
import { before } from 'node:test';
import { startHub, startRedis, test, userId, waitUntil, sleep } from './harness.mjs';

let redis;
let hub;
before(async () => {
  redis = await startRedis();
  hub = await startHub({ redisUrl: redis.url });
});

test('a burst of 20 itemReserved gives one or two reserve-items per socket; a later one after quiet arrives promptly', async () => {
  const a = await hub.connect(userId());
  const b = await hub.connect(userId(), ['ops']);
  const isRI = (m) => m.event === 'reserve-items';
  const times = { a: [], b: [] };
  a.ws.on('message', (d) => String(d).includes('reserve-items') && times.a.push(Date.now()));
  b.ws.on('message', (d) => String(d).includes('reserve-items') && times.b.push(Date.now()));

  const pub = await redis.client();
  const sent = Date.now();
  await pub.pipeline(Array.from({ length: 20 }, (_, i) => ['PUBLISH', 'itemReserved', i % 2 ? '' : `asset${i}`]));

  // The leading one comes at once (generous bound for a loaded CI machine).
  const first = await a.waitFor(isRI, 3000, 'leading reserve-items');
  assert.deepEqual(first, { event: 'reserve-items' }, 'reserve-items carries no data');
  await b.waitFor(isRI, 3000, 'leading reserve-items on the second socket');
  // Give the trailing one time to come, then count.
  await sleep(Math.max(0, sent + 1600 - Date.now()));
  for (const [name, c] of [['a', a], ['b', b]]) {
    const n = c.count(isRI);
    assert.ok(n === 1 || n === 2, `socket ${name}: expected 1 or 2 reserve-items for a burst of 20, got ${n}`);
    if (n === 2) {
      const gap = times[name][1] - times[name][0];
      assert.ok(gap >= 800, `socket ${name}: trailing reserve-items only ${gap} ms after the leading one`);
    }
  }
  // No more than those, even later.
  const before2 = a.count(isRI);
  await a.expectNone(isRI, 1200, { since: a.messages.length, what: 'a reserve-items long after the burst' });
  assert.equal(a.count(isRI), before2);

  // More than a second of quiet since the last one: a single publish is
  // delivered at once (leading edge), not held for a second.
  const lastFire = Math.max(...times.a);
  await waitUntil(() => Date.now() - lastFire > 1200, { timeoutMs: 5000 });
  const mark = a.mark();
  const t0 = Date.now();
  await pub.publish('itemReserved', '');
  await a.waitFor(isRI, 3000, 'reserve-items after quiet', mark);
  const latency = Date.now() - t0;
  assert.ok(latency < 700, `reserve-items after >1 s quiet took ${latency} ms (should be immediate, not coalesced)`);
  assert.equal(a.count(isRI, mark), 1);
  pub.close();
});
