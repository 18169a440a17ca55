// bench/fanout/report.mjs: turns the JSON lines of a bench/run.sh run into
// the Markdown report (bench/results.md).
//
//   node report.mjs results.jsonl meta.json > results.md

import fs from 'node:fs';

const [jsonlPath, metaPath] = process.argv.slice(2);
if (!jsonlPath || !metaPath) {
  console.error('usage: node report.mjs results.jsonl meta.json');
  process.exit(2);
}
const rows = fs
  .readFileSync(jsonlPath, 'utf8')
  .split('\n')
  .filter((l) => l.trim().startsWith('{'))
  .map((l) => {
    try {
      return JSON.parse(l);
    } catch {
      return null;
    }
  })
  .filter(Boolean);
const meta = JSON.parse(fs.readFileSync(metaPath, 'utf8'));

const SERVERS = [
  ['hub-native', 'coordhub, native /ws'],
  ['hub-sio', 'coordhub, Socket.IO framing'],
  ['peer', 'Node Socket.IO peer'],
].filter(([k]) => rows.some((r) => r.label === k));
const names = Object.fromEntries(SERVERS);

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
};
const fmtInt = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a');
const fmt = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : NaN);

const floors = rows.filter((r) => r.kind === 'floor');
const floorUs = median(floors.map((r) => r.cpu_us_per_write));
const relays = rows.filter((r) => r.kind === 'relay_floor');
const relayUs = median(relays.map((r) => r.cpu_us_per_write));

const steps = (label, scenario) =>
  rows.filter((r) => r.kind === 'step' && r.label === label && r.scenario === scenario && r.step !== 'cpu');
const cpuStep = (label, scenario) =>
  rows.find((r) => r.kind === 'step' && r.label === label && r.scenario === scenario && r.step === 'cpu');
const connectRow = (label, scenario) =>
  rows.find((r) => r.kind === 'connect' && r.label === label && r.scenario === scenario);

function failReasons(s) {
  const why = [];
  if (s.lost) why.push(`${fmtInt(s.lost)} lost`);
  if (s.dup) why.push(`${fmtInt(s.dup)} dup`);
  if (s.misrouted) why.push(`${fmtInt(s.misrouted)} misrouted`);
  if (s.disconnects) why.push(`${s.disconnects} disconnects (close ${s.last_close_code})`);
  if (s.p99_ms > 50) why.push(`p99 ${fmt(s.p99_ms, 1)} ms`);
  if (s.pub_behind || s.published < s.target_rate * meta.step_seconds * 0.999) why.push('publisher behind');
  return why.join(', ') || 'fail';
}

// Which core ran out: the server's (CPU 0) or the generator + Redis's (CPU 1).
// A process that was runnable but waiting for its CPU (run-queue wait,
// from schedstat) lost that time to other load on the same core.
function boundBy(s) {
  const gen = s.gen_cpu_pct + s.redis_cpu_pct;
  const sw = s.server_runq_wait_pct ?? 0;
  const gw = (s.gen_runq_wait_pct ?? 0) + (s.redis_runq_wait_pct ?? 0);
  if (s.server_cpu_pct >= 85) return `server CPU (${fmt(s.server_cpu_pct, 0)}% of a core)`;
  if (gen >= 85) return `generator + Redis (CPU 1 at ${fmt(gen, 0)}%; server at ${fmt(s.server_cpu_pct, 0)}%)`;
  if (s.server_cpu_pct + sw >= 85)
    return `server core shared with other load (server ran ${fmt(s.server_cpu_pct, 0)}%, waited for the CPU ${fmt(sw, 0)}%)`;
  if (gen + gw >= 85)
    return `generator core shared with other load (gen+Redis ran ${fmt(gen, 0)}%, waited ${fmt(gw, 0)}%)`;
  return `neither core full (server ${fmt(s.server_cpu_pct, 0)}% + ${fmt(sw, 0)}% waiting, gen+Redis ${fmt(gen, 0)}% + ${fmt(gw, 0)}% waiting)`;
}

// The ramp: the peak is the best delivered rate of a passing step before the
// first failing one; `fail` is that failing step (undefined: never saturated).
function ramp(label, scenario) {
  const ss = steps(label, scenario);
  let peak;
  let fail;
  for (const [i, s] of ss.entries()) {
    const next = ss[i + 1];
    if (!s.pass && next && next.target_rate === s.target_rate && (next.attempt || 1) > (s.attempt || 1)) continue; // retried
    if (s.pass) {
      if (!peak || s.deliveries_per_s > peak.deliveries_per_s) peak = s;
    } else {
      fail = s;
      break;
    }
  }
  return { steps: ss, peak, fail };
}

const R = {};
for (const [k] of SERVERS) {
  R[k] = {
    unicast: ramp(k, 'unicast'),
    broadcast: ramp(k, 'broadcast'),
    cpuU: cpuStep(k, 'unicast'),
    cpuB: cpuStep(k, 'broadcast'),
    idle: rows.filter((r) => r.kind === 'idle' && r.label === k).sort((a, b) => a.conns - b.conns),
  };
}
const peer = R.peer;

function peakCell(k, scen) {
  const r = R[k][scen];
  if (!r.steps.length) return 'not run';
  if (!r.peak) return `none passed (first step: ${failReasons(r.steps[0])})`;
  let s = `${fmtInt(r.peak.deliveries_per_s)}`;
  if (!r.fail) s = `≥ ${s} (never saturated)`;
  if (k !== 'peer' && peer && peer[scen].peak && peer[scen].fail) s += ` (${fmt(ratio(r.peak.deliveries_per_s, peer[scen].peak.deliveries_per_s), 1)}× peer)`;
  return s;
}
function failCell(k, scen) {
  const r = R[k][scen];
  if (!r.steps.length) return 'not run';
  if (!r.fail) return 'no failing step';
  return `${fmtInt(r.fail.target_rate * (scen === 'broadcast' ? r.fail.per_user : 1))}/s offered: ${failReasons(r.fail)}; bound: ${boundBy(r.fail)}`;
}
// p99 of this server at the rate where the peer peaked (its last passing step).
function p99AtPeerPeak(k, scen) {
  if (!peer || !peer[scen].peak) return 'n/a';
  const target = peer[scen].peak.target_rate;
  // the last attempt at that rate (a retry decides)
  const s = R[k][scen].steps.filter((x) => x.target_rate === target).pop();
  if (!s) return 'n/a (not reached)';
  return `${fmt(s.p99_ms, 2)} ms${s.pass ? '' : ' (step failed)'}`;
}
function cpuCell(s, relay = false) {
  if (!s) return 'not run';
  const x = ratio(s.server_us_per_delivery, floorUs);
  const y = relay && relays.length ? `, ${fmt(ratio(s.server_us_per_delivery, relayUs), 1)}× relay floor` : '';
  return `${fmt(s.server_us_per_delivery, 2)} µs (${fmt(x, 1)}× floor${y})${s.pass ? '' : ` [${failReasons(s)}]`}`;
}
function idleCell(k, n, field) {
  const r = R[k].idle.find((x) => x.conns === n);
  if (!r) return 'not run';
  if (field === 'mem') {
    let s = `${fmtInt(r.bytes_per_conn)} B`;
    if (r.ready !== r.conns) s += ` (${r.ready}/${r.conns} connected)`;
    if (r.still_open !== r.ready)
      s += ` (${fmtInt(r.ready - r.still_open)} dropped while idle${r.close_frames ? `: ${fmtInt(r.close_frames)} closed with code ${r.last_close_code}` : ''})`;
    return s;
  }
  let s = `${fmtInt(r.accept_per_s)}/s`;
  if (k !== 'peer' && peer) {
    const p = peer.idle.find((x) => x.conns === n);
    if (p) s += ` (${fmt(ratio(r.accept_per_s, p.accept_per_s), 1)}× peer)`;
  }
  return s;
}

const out = [];
const p = (s = '') => out.push(s);
const levels = [...new Set(rows.filter((r) => r.kind === 'idle').map((r) => r.conns))].sort((a, b) => a - b);

p('# Fan-out benchmark: coordhub and the Node Socket.IO peer, side by side');
p();
p(`Command: \`${meta.command}\` (${meta.seconds} s), ${meta.date}.`);
p(
  `Machine: ${meta.nproc} CPUs (${meta.cpu_model}), kernel ${meta.kernel}, ${Math.round(meta.mem_total_kb / 1024)} MiB RAM, open-file limit ${meta.nofile}; ` +
    `load average ${meta.load_start} at the start, ${meta.load_end} at the end.`,
);
p(
  `Software: ${meta.hub || 'coordhub'} (${meta.hub_build_type}), Redis ${meta.redis}, Node ${meta.node}, socket.io ${meta.socket_io}, node-redis ${meta.node_redis}. ` +
    `Pinning: ${meta.pinning}.`,
);
p(
  `Plan: unicast ${fmtInt(meta.unicast_users)} connections, one per user; broadcast ${meta.broadcast_users} user rooms x ${meta.broadcast_per_user} sockets; ` +
    `ramp steps of ${meta.step_seconds} s, stopped at the first step with loss, a duplicate, a disconnect or p99 > 50 ms; ` +
    `CPU per delivery at ${fmtInt(meta.unicast_cpu_rate)} msg/s unicast and ${fmtInt(meta.broadcast_cpu_rate)} msg/s broadcast ` +
    `(${fmtInt(meta.broadcast_cpu_rate * meta.broadcast_per_user)} deliveries/s) for ${meta.cpu_seconds} s.`,
);
if (meta.quick) p('\n**QUICK run: small counts and short steps, for checking the suite only; not figures.**');
p();
p(`Floor: ${fmt(floorUs, 2)} µs of writer CPU per 160-byte write() to 1,000 loopback sockets (median of ${floors.length}: ${floors.map((f) => fmt(f.cpu_us_per_write, 2)).join(', ')}).`);
if (relays.length) {
  const r0 = relays[0];
  p();
  p(
    `Relay floor: ${fmt(relayUs, 2)} µs of CPU per delivery for a bare C relay that is fed ${fmtInt(r0.rate)} msg/s over one loopback socket ` +
      `and write()s each message to the next of ${fmtInt(r0.conns)} sockets (epoll_wait + read + write, nothing else; ` +
      `median of ${relays.length}: ${relays.map((f) => fmt(f.cpu_us_per_write, 2)).join(', ')}; ` +
      `${fmt(r0.writes / Math.max(1, r0.reads), 1)} messages per read` +
      `${relays.some((r) => r.eagain > 0) ? `; WARNING: ${relays.reduce((a, r) => a + r.eagain, 0)} writes found a full socket, so the figure is too high` : ''}). ` +
      `This is what unicast at a moderate rate costs before any server code runs; ` +
      `the write() floor leaves out the input side (a wake-up and a read per batch of input) and is measured with writes back to back, not paced.`,
  );
}
p();
p('## Summary');
p();
p(`| | ${SERVERS.map(([, n]) => n).join(' | ')} |`);
p(`|---|${SERVERS.map(() => '---:').join('|')}|`);
const row = (title, f) => p(`| ${title} | ${SERVERS.map(([k]) => f(k)).join(' | ')} |`);
const ran = (scen) => SERVERS.some(([k]) => R[k][scen].steps.length);
if (ran('unicast')) {
  row('unicast: peak deliveries/s (no loss, p99 ≤ 50 ms)', (k) => peakCell(k, 'unicast'));
  row('unicast: first failing step', (k) => failCell(k, 'unicast'));
  row(`unicast: p99 at the peer's peak rate (${peer?.unicast.peak ? fmtInt(peer.unicast.peak.target_rate) + ' msg/s' : 'n/a'})`, (k) => p99AtPeerPeak(k, 'unicast'));
}
if (ran('broadcast')) {
  row('broadcast: peak deliveries/s', (k) => peakCell(k, 'broadcast'));
  row('broadcast: first failing step', (k) => failCell(k, 'broadcast'));
  row(`broadcast: p99 at the peer's peak rate (${peer?.broadcast.peak ? fmtInt(peer.broadcast.peak.target_rate) + ' msg/s' : 'n/a'})`, (k) => p99AtPeerPeak(k, 'broadcast'));
}
if (SERVERS.some(([k]) => R[k].cpuU)) row(`server CPU per delivery, unicast @ ${fmtInt(meta.unicast_cpu_rate)}/s`, (k) => cpuCell(R[k].cpuU, true));
if (SERVERS.some(([k]) => R[k].cpuB)) row(`server CPU per delivery, broadcast @ ${fmtInt(meta.broadcast_cpu_rate * meta.broadcast_per_user)}/s`, (k) => cpuCell(R[k].cpuB));
for (const n of levels) row(`idle RSS per connection at ${fmtInt(n)} (3 s after connecting)`, (k) => idleCell(k, n, 'mem'));
for (const n of levels) row(`accept rate, ${fmtInt(n)} connections`, (k) => idleCell(k, n, 'rate'));
for (const n of levels)
  row(`server CPU while ${fmtInt(n)} connections sit idle`, (k) => {
    const r = R[k].idle.find((x) => x.conns === n);
    return r && Number.isFinite(r.server_idle_cpu_pct) ? `${fmt(r.server_idle_cpu_pct, 1)}% of a core` : 'not run';
  });
p();
p('Ratios "× peer" are taken in the same run. A step that fails on latency alone is run once more (marked "retry"), and the retry decides.');
p('"bound" names the core that was full at the first failing step');
p('(server: CPU 0; generator + Redis: CPU 1); when the generator side is full first, the server was not saturated.');

for (const scen of ['unicast', 'broadcast']) {
  const any = SERVERS.some(([k]) => R[k][scen].steps.length || R[k][scen === 'unicast' ? 'cpuU' : 'cpuB']);
  if (!any) continue;
  p();
  p(`## ${scen === 'unicast' ? 'Unicast' : 'Broadcast'} steps`);
  p();
  p('| server | step (msg/s) | published/s | deliveries/s | expected | lost | dup | disc | p50 ms | p99 ms | p99.9 ms | max ms | server CPU % | server waited % | server µs/delivery | gen % | Redis % | gen+Redis waited % | gen stall ms | result |');
  p('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|');
  for (const [k, n] of SERVERS) {
    const list = [R[k][scen === 'unicast' ? 'cpuU' : 'cpuB'], ...R[k][scen].steps].filter(Boolean);
    for (const s of list) {
      p(
        `| ${n} | ${s.step === 'cpu' ? `${fmtInt(s.target_rate)} (CPU)` : fmtInt(s.target_rate)}${(s.attempt || 1) > 1 ? ' (retry)' : ''} | ${fmtInt(s.pub_rate)} | ${fmtInt(s.deliveries_per_s)} | ${fmtInt(s.expected)} | ${fmtInt(s.lost)} | ${fmtInt(s.dup)} | ${s.disconnects} | ` +
          `${fmt(s.p50_ms)} | ${fmt(s.p99_ms)} | ${fmt(s.p999_ms)} | ${fmt(s.max_ms, 1)} | ${fmt(s.server_cpu_pct, 0)} | ${fmt(s.server_runq_wait_pct ?? NaN, 0)} | ${fmt(s.server_us_per_delivery)} | ${fmt(s.gen_cpu_pct, 0)} | ${fmt(s.redis_cpu_pct, 0)} | ${fmt((s.gen_runq_wait_pct ?? NaN) + (s.redis_runq_wait_pct ?? NaN), 0)} | ${fmt(s.gen_max_stall_ms, 0)} | ${s.pass ? 'pass' : failReasons(s)} |`,
      );
    }
  }
  p();
  p('Server CPU %: share of one core used by the server between the first publish and the end of the drain; µs/delivery: that CPU time over the deliveries. ' +
    'Waited %: time the process was runnable but waiting for its CPU (schedstat run-queue delay), i.e. taken by other load on that core. ' +
    'gen % / Redis %: CPU of the generator and Redis (both on CPU 1). gen stall: the longest time the generator was not scheduled beyond its poll timeout.');
  const conns = SERVERS.map(([k, n]) => [n, connectRow(k, scen)]).filter(([, c]) => c);
  if (conns.length) {
    p();
    p(`Connections: ${conns.map(([n, c]) => `${n} ${c.ready}/${c.conns} in ${fmt(c.seconds)} s${c.failed ? ` (${c.failed} failed: ${c.last_failure})` : ''}`).join('; ')}.`);
  }
}

if (levels.length) {
  p();
  p('## Idle memory and accept rate');
  p();
  p('| server | connections | connected | RSS before MiB | RSS after 3 s MiB | bytes per connection | RSS at the end MiB | bytes per connection at the end | connect time s | accepted/s | server CPU µs per accept | server CPU % while idle | pings answered |');
  p('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const [k, n] of SERVERS) {
    for (const r of R[k].idle) {
      p(
        `| ${n} | ${fmtInt(r.conns)} | ${fmtInt(r.ready)} | ${fmt(r.rss_before_kb / 1024, 1)} | ${fmt((r.rss_settled_kb ?? NaN) / 1024, 1)} | ${fmtInt(r.bytes_per_conn)} | ${fmt(r.rss_after_kb / 1024, 1)} | ${fmtInt(r.bytes_per_conn_end ?? NaN)} | ${fmt(r.connect_seconds)} | ${fmtInt(r.accept_per_s)} | ${fmt(r.server_us_per_accept, 0)} | ${fmt(r.server_idle_cpu_pct, 1)} | ${fmtInt(r.pings_answered ?? NaN)} |`,
      );
    }
  }
  p();
  const idleS = rows.find((r) => r.kind === 'idle')?.idle_seconds;
  const idleW = rows.find((r) => r.kind === 'idle')?.idle_cpu_window_s;
  p(`Idle: the connections then sit idle for ${idleS ?? '?'} s (Socket.IO servers ping every 25 s, the generator answers); "server CPU % while idle" is the server's CPU over the last ${fmt(idleW ?? NaN, 0)} s of that (the steady state, after the connection work has drained).`);
  p('RSS: VmRSS of the server 3 s after the last connection (the summary\'s figure; again at the end of the idle time: a garbage collector may have run by then), minus VmRSS before the first one, divided by the count; a fresh server per level.');
  p('Accepted/s: connections established (TCP, upgrade, and for Socket.IO the CONNECT answered) divided by the time from the first connect to the last; 256 handshakes in flight.');
}

const events = rows.filter((r) => r.kind === 'event');
if (events.length) {
  p();
  p('## Incidents');
  p();
  for (const e of events) p(`- ${e.what}: ${e.event}`);
}
process.stdout.write(`${out.join('\n')}\n`);
