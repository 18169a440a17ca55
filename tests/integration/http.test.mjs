// HTTP endpoints (SPEC §6): /healthz, /readyz, /metrics, 404.
import assert from 'node:assert/strict';
import { before } from 'node:test';
import { httpGet, metricSum, parseMetrics, startHub, startRedis, test, userId, waitUntil } from './harness.mjs';

let redis;
let hub;
before(async () => {
  redis = await startRedis();
  hub = await startHub({ redisUrl: redis.url });
});

const NAMES = [
  'coordhub_connections',
  'coordhub_messages_in_total',
  'coordhub_deliveries_total',
  'coordhub_slow_consumer_closes_total',
  'coordhub_malformed_payloads_total',
  'coordhub_redis_connected',
  'coordhub_redis_reconnects_total',
  'coordhub_frame_too_large_closes_total',
  'coordhub_rate_limited_closes_total',
  'coordhub_delivery_latency_seconds',
];

test('/healthz and /readyz answer 200', async () => {
  assert.equal((await httpGet(`${hub.url}/healthz`)).status, 200);
  assert.equal((await httpGet(`${hub.url}/readyz`)).status, 200);
});

test('unknown paths answer 404', async () => {
  for (const p of ['/nope', '/healthz/extra', '/metricsx', '/ws/other']) {
    const r = await httpGet(`${hub.url}${p}`);
    assert.equal(r.status, 404, `GET ${p}`);
  }
});

test('/metrics is Prometheus text with every documented name, and the counters move', async () => {
  const r0 = await httpGet(`${hub.url}/metrics`);
  assert.equal(r0.status, 200);
  assert.match(String(r0.headers['content-type']), /^text\/plain/);
  for (const n of NAMES) assert.match(r0.body, new RegExp(`^(# TYPE )?${n}[ {_]`, 'm'), `/metrics lacks ${n}`);
  assert.match(r0.body, /^# TYPE coordhub_delivery_latency_seconds histogram$/m);
  const m0 = parseMetrics(r0.body);
  assert.equal(metricSum(m0, 'coordhub_redis_connected'), 1);

  const U = userId();
  const a = await hub.connect(U);
  const b = await hub.connect(U);
  await waitUntil(async () => (await hub.metric('coordhub_connections', { protocol: 'native' })) === 2, {
    what: 'coordhub_connections{protocol="native"} = 2',
  });
  const state = { steamId: U, token: 't', state: 's', msg: '' };
  await redis.publish('tradestate', JSON.stringify(state));
  await a.waitEvent('tradestate');
  await b.waitEvent('tradestate');
  const m1 = await waitUntil(
    async () => {
      const m = await hub.metrics();
      return metricSum(m, 'coordhub_deliveries_total') >= metricSum(m0, 'coordhub_deliveries_total') + 2 ? m : false;
    },
    { what: 'coordhub_deliveries_total to grow by 2' },
  );
  assert.equal(
    metricSum(m1, 'coordhub_messages_in_total', { channel: 'tradestate' }) -
      metricSum(m0, 'coordhub_messages_in_total', { channel: 'tradestate' }),
    1,
    'messages_in_total{channel="tradestate"} grew by 1',
  );
  const count = metricSum(m1, 'coordhub_delivery_latency_seconds_count');
  assert.ok(count >= metricSum(m0, 'coordhub_delivery_latency_seconds_count') + 1, 'latency histogram counted');
  const inf = metricSum(m1, 'coordhub_delivery_latency_seconds_bucket', { le: '+Inf' });
  assert.equal(inf, count, 'the +Inf bucket equals _count');
  assert.ok(metricSum(m1, 'coordhub_delivery_latency_seconds_sum') >= 0);

  await a.close();
  await b.close();
  await waitUntil(async () => (await hub.metric('coordhub_connections', { protocol: 'native' })) === 0, {
    what: 'coordhub_connections{protocol="native"} back to 0',
  });
});
