// bench/polling/report.mjs: the polling benchmark's JSON lines to Markdown.
//
//   node report.mjs OUT/run1.meta.json [OUT/run2.meta.json ...] > results.md
//
// Each meta file names its run's JSON lines (gen.mjs output plus run.sh's
// events) and its logs directory (the servers' logs are summarised: a hub
// at --log-level warn logs nothing in a clean run).
import fs from 'node:fs';
import path from 'node:path';

const metas = process.argv.slice(2).map((f) => JSON.parse(fs.readFileSync(f, 'utf8')));
if (metas.length === 0) {
  console.error('usage: report.mjs META.json...');
  process.exit(2);
}

const NAMES = {
  hub: 'coordhub',
  'hub-keepalive': 'coordhub, keep-alive client',
  peer: 'Node peer',
  'peer-keepalive': 'Node peer, keep-alive client',
};
const name = (r) => NAMES[r] ?? r;
const runName = (i) => (metas.length > 1 ? String.fromCharCode(65 + i) : '');

const n0 = (x) => (x === null || x === undefined || Number.isNaN(x) ? '-' : Math.round(x).toLocaleString('en-US'));
const f = (x, d = 1) => (x === null || x === undefined || Number.isNaN(x) ? '-' : x.toFixed(d));
const ratio = (a, b) => (a == null || b == null || b === 0 ? '-' : `${(a / b).toFixed(2)}`);

function load(meta) {
  const rows = new Map(); // label -> {connect, steps[], end, events[]}
  const get = (l) => {
    if (!rows.has(l)) rows.set(l, { steps: [], events: [], connect: null, end: null, fatal: [], idle: null, after: null });
    return rows.get(l);
  };
  for (const line of fs.readFileSync(meta.jsonl, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    let o;
    try {
      o = JSON.parse(line);
    } catch {
      continue;
    }
    const label = String(o.label ?? '').replace(/-redis$/, '');
    const r = get(label);
    if (o.kind === 'connect') r.connect = o;
    else if (o.kind === 'step') r.steps.push(o);
    else if (o.kind === 'end') r.end = o;
    else if (o.kind === 'idle') r.idle = o;
    else if (o.kind === 'after') r.after = o;
    else if (o.kind === 'fatal') r.fatal.push(o.error);
    else if (o.kind === 'event') r.events.push(`${o.label}: ${o.event}`);
  }
  for (const [label, r] of rows) {
    const lf = path.join(meta.logs, `${meta.log_prefix}${label}.server.log`);
    let lines = [];
    try {
      lines = fs.readFileSync(lf, 'utf8').split('\n').filter((l) => l.trim());
    } catch {}
    // the peer's start-up line is not an error
    r.serverLog = lines.filter((l) => !/^peer: listening on/.test(l));
  }
  return rows;
}

const runs = metas.map((m) => ({ meta: m, rows: load(m) }));
const order = metas[0].rows.split(/\s+/).filter(Boolean);

function bound(s) {
  if (s.server_cpu_pct >= 85) return `server core full (${f(s.server_cpu_pct, 0)}%)`;
  if (s.gen_cpu_pct + s.redis_cpu_pct >= 85 || s.gen_redis_waited_pct >= 25)
    return `generator core busy (gen+Redis ${f(s.gen_cpu_pct + s.redis_cpu_pct, 0)}%, waited ${f(s.gen_redis_waited_pct, 0)}%)`;
  if (s.server_waited_pct >= 25) return `server ${f(s.server_cpu_pct, 0)}%, but waited ${f(s.server_waited_pct, 0)}% for its core (other load)`;
  return `neither core full (server ${f(s.server_cpu_pct, 0)}%, gen+Redis ${f(s.gen_cpu_pct + s.redis_cpu_pct, 0)}%)`;
}

const o = [];
const m0 = metas[0];
o.push('# Polling fan-out benchmark: coordhub and the Node Socket.IO peer over Engine.IO long-polling');
o.push('');
o.push(`Command: \`${m0.command}\`${metas.length > 1 ? ` (${metas.length} runs, back to back)` : ''}.`);
for (const [i, { meta }] of runs.entries()) {
  o.push(
    `${metas.length > 1 ? `Run ${runName(i)}: ` : ''}${meta.date_start} to ${meta.date_end} (${meta.seconds} s); load average ${meta.load_start} at the start, ${meta.load_end} at the end.`,
  );
}
o.push(
  `Machine: ${m0.nproc} CPUs (${m0.cpu_model}), kernel ${m0.kernel}. Pinning: ${m0.pinning}.`,
);
o.push(
  `Software: ${m0.hub || 'coordhub'} at ${m0.hub_commit}${m0.hub_dirty_c_files ? ` (+${m0.hub_dirty_c_files} modified C files in the work tree)` : ''} (${m0.hub_build_type || 'build type unknown'}), Redis ${m0.redis}, Node ${m0.node}, socket.io ${m0.socket_io} (the peer, \`--transports polling,websocket\`).`,
);
o.push(
  `Plan: ${m0.clients} Socket.IO clients on Engine.IO v4 HTTP long-polling only, one user each; PUBLISH tradestate to a random user at ${m0.rates
    .split(',')
    .map((x) => Number(x).toLocaleString('en-US'))
    .join(', ')} msg/s, ${m0.step_seconds} s per step, drain up to ${m0.drain_seconds} s; the ramp stops at the first step with loss, a duplicate, a dropped session or p99 > ${m0.max_p99_ms} ms. A fresh Redis and server per row. Generator HTTP client: ${m0.gen_http}.`,
);
o.push('');
o.push(
  'Rows: **coordhub** and **Node peer** with a client that opens a new TCP connection for every request (`Connection: close`); **coordhub, keep-alive client** and **Node peer, keep-alive client**: the same servers, the client keeping one connection for its GETs and one for its POSTs, as a browser does.',
);
o.push('');

// ------------------------------------------------------------ summary
o.push('## Summary');
o.push('');
for (const [i, { meta, rows }] of runs.entries()) {
  if (metas.length > 1) o.push(`### Run ${runName(i)} (${meta.date_start}, load ${meta.load_start})`, '');
  o.push(`| | ${order.map(name).join(' | ')} |`);
  o.push(`|---|${order.map(() => '---:').join('|')}|`);
  const cell = (fn) => order.map((r) => (rows.get(r) ? fn(rows.get(r)) : 'not run')).join(' | ');
  o.push(
    `| clients connected | ${cell((r) => (r.connect ? `${r.connect.connected}/${r.connect.clients} in ${f(r.connect.seconds, 2)} s` : '-'))} |`,
  );
  o.push(
    `| peak deliveries/s (passing step) | ${cell((r) => {
      const p = r.steps.filter((s) => s.result === 'pass').at(-1);
      return p ? `${n0(p.delivered_per_s)} (${n0(p.rate)} offered)` : 'none';
    })} |`,
  );
  o.push(
    `| first failing step | ${cell((r) => {
      const x = r.steps.find((s) => s.result !== 'pass');
      return x ? `${n0(x.rate)}/s: ${x.result}; ${bound(x)}` : 'none';
    })} |`,
  );
  o.push(
    `| server CPU, ${meta.clients} clients waiting in a GET, nothing published (${meta.idle_seconds} s) | ${cell((r) => (r.idle ? `${f(r.idle.server_cpu_pct, 1)}%` : '-'))} |`,
  );
  o.push(
    `| server CPU in the ${meta.after_seconds} s after the generator exited with a GET in flight per client; its connections in CLOSE-WAIT at the start → end | ${cell((r) =>
      r.after ? `${f(r.after.server_cpu_pct, 0)}%; ${r.after.close_wait_start} → ${r.after.close_wait_end}` : '-',
    )} |`,
  );
  const rates = [...new Set(order.flatMap((r) => (rows.get(r)?.steps ?? []).map((s) => s.rate)))];
  for (const rate of rates) {
    o.push(
      `| ${n0(rate)}/s: delivered/s, lost | ${cell((r) => {
        const s = r.steps.find((x) => x.rate === rate);
        return s ? `${n0(s.delivered_per_s)}, ${n0(s.lost)}` : '-';
      })} |`,
    );
    o.push(
      `| ${n0(rate)}/s: server CPU s per 1000 deliveries (server CPU %) | ${cell((r) => {
        const s = r.steps.find((x) => x.rate === rate);
        return s ? `${f(s.server_cpu_s_per_1000, 3)} (${f(s.server_cpu_pct, 0)}%)` : '-';
      })} |`,
    );
    o.push(
      `| ${n0(rate)}/s: p50 / p99 ms | ${cell((r) => {
        const s = r.steps.find((x) => x.rate === rate);
        return s ? `${f(s.p50_ms, 1)} / ${f(s.p99_ms, 1)}` : '-';
      })} |`,
    );
  }
  o.push('');
}

// ------------------------------------------------------------ ratios
const hubRow = order.find((r) => r.startsWith('hub'));
const peers = order.filter((r) => r.startsWith('peer'));
if (hubRow && peers.length) {
  o.push('## Ratios coordhub / peer');
  o.push('');
  o.push(
    'Below 1: coordhub uses less CPU per delivery, or has the lower p99. Taken per step, within one run (same Redis version, same generator, minutes apart). The CPU ratio compares like with like when both servers answered about one delivery per GET: a server (or generator) that falls behind answers each poll with several events, which lowers its CPU per delivery and raises its latency; the last column shows it.',
  );
  o.push('');
  const hdr = [];
  for (const p of peers) hdr.push(`CPU per delivery, / ${name(p)}`, `p99, / ${name(p)}`, `deliveries per GET, coordhub / ${name(p)}`);
  o.push(`| run | rate msg/s | ${hdr.join(' | ')} |`);
  o.push(`|---|---:|${hdr.map(() => '---:').join('|')}|`);
  for (const [i, { rows }] of runs.entries()) {
    const hub = rows.get(hubRow);
    if (!hub) continue;
    for (const hs of hub.steps) {
      const cells = [];
      for (const p of peers) {
        const ps = rows.get(p)?.steps.find((s) => s.rate === hs.rate);
        cells.push(
          ps ? `${ratio(hs.server_cpu_s_per_1000, ps.server_cpu_s_per_1000)} (${f(hs.server_cpu_s_per_1000, 3)} / ${f(ps.server_cpu_s_per_1000, 3)})` : '-',
          ps ? `${ratio(hs.p99_ms, ps.p99_ms)} (${f(hs.p99_ms, 1)} / ${f(ps.p99_ms, 1)} ms)` : '-',
          ps ? `${f(hs.deliveries_per_get, 2)} / ${f(ps.deliveries_per_get, 2)}` : '-',
        );
      }
      o.push(`| ${runName(i) || '-'} | ${n0(hs.rate)} | ${cells.join(' | ')} |`);
    }
  }
  o.push('');
}

// ------------------------------------------------------------ steps
o.push('## Steps');
o.push('');
o.push(
  '| run | server | step msg/s | published/s | delivered/s | lost | dup | misrouted | sessions dropped | p50 ms | p90 ms | p99 ms | max ms | server CPU % | server waited % | server CPU s / 1000 deliveries | server CPU ms per GET | GETs/s | deliveries per GET | TCP connects/s | gen % | Redis % | gen+Redis waited % | result |',
);
o.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|');
for (const [i, { rows }] of runs.entries()) {
  for (const r of order) {
    const row = rows.get(r);
    if (!row) continue;
    for (const s of row.steps) {
      o.push(
        `| ${runName(i) || '-'} | ${name(r)} | ${n0(s.rate)} | ${n0(s.published_per_s)} | ${n0(s.delivered_per_s)} | ${n0(s.lost)} | ${n0(s.dup)} | ${n0(s.misrouted)} | ${n0(s.sessions_lost)} | ${f(s.p50_ms, 2)} | ${f(s.p90_ms, 1)} | ${f(s.p99_ms, 1)} | ${f(s.max_ms, 1)} | ${f(s.server_cpu_pct, 0)} | ${f(s.server_waited_pct, 0)} | ${f(s.server_cpu_s_per_1000, 3)} | ${s.gets ? f((1000 * s.server_cpu_s) / s.gets, 3) : '-'} | ${n0(s.gets / s.window_seconds)} | ${f(s.deliveries_per_get, 2)} | ${s.tcp_connects == null ? '-' : n0(s.tcp_connects / s.window_seconds)} | ${f(s.gen_cpu_pct, 0)} | ${f(s.redis_cpu_pct, 0)} | ${f(s.gen_redis_waited_pct, 0)} | ${s.result} |`,
      );
    }
  }
}
o.push('');
o.push(
  'delivered/s: deliveries of the step\'s messages over its publish time (the drain only adds the tail). Server CPU: `/proc/<pid>/stat` utime + stime (all threads; 10 ms ticks) from the first publish to the end of the drain, over the deliveries; server CPU % is that over the same window. Waited %: the time the server\'s threads were runnable but waiting for CPU 0 (schedstat): other load on that core. gen % / Redis %: CPU of the generator and Redis (both on CPU 1). Latency: publish (monotonic ns in `msg`) to the generator\'s parse of the GET answer that carried it.',
);
o.push('');

// ------------------------------------------------------------ errors
o.push('## Errors, events and server logs');
o.push('');
let anything = false;
for (const [i, { rows }] of runs.entries()) {
  for (const r of order) {
    const row = rows.get(r);
    if (!row) continue;
    const lines = [];
    const errs = row.end?.counters?.reqErrors ?? {};
    if (Object.keys(errs).length) lines.push(`client-side errors: ${Object.entries(errs).map(([k, v]) => `${k} x${v}`).join('; ')}`);
    const c = row.end?.counters;
    if (c && (c.sessionsLost || c.closePackets || c.connectErrors || c.zeroReceivers || c.redisErrors))
      lines.push(
        `sessions dropped ${c.sessionsLost}, close packets ${c.closePackets}, CONNECT refusals ${c.connectErrors}, PUBLISH with 0 receivers ${c.zeroReceivers}, Redis errors ${c.redisErrors}`,
      );
    for (const e of row.end?.error_log ?? []) lines.push(`first errors: ${JSON.stringify(e)}`);
    for (const e of row.fatal) lines.push(`generator: ${e}`);
    for (const e of row.events) lines.push(e);
    if (row.after && (row.after.server_cpu_pct >= 20 || row.after.close_wait_end > 0))
      lines.push(
        `after the generator exited (each client's GET abandoned in flight): the server used ${f(row.after.server_cpu_pct, 0)}% of a core over ${row.after.seconds} s with nothing to do, and ${row.after.close_wait_end} of its connections were still in CLOSE-WAIT at the end (${row.after.close_wait_start} at the start): the clients had closed them and the server had not`,
      );
    if (row.serverLog.length)
      lines.push(
        `server log: ${row.serverLog.length} line(s); first: ${row.serverLog
          .slice(0, 5)
          .map((l) => `\`${l.slice(0, 200)}\``)
          .join(' ')}`,
      );
    if (lines.length) {
      anything = true;
      o.push(`- run ${runName(i) || '-'}, ${name(r)}:`);
      for (const l of lines) o.push(`  - ${l}`);
    }
  }
}
if (!anything) o.push('None: no request failed, no session was dropped, and the servers logged nothing (coordhub at `--log-level warn`).');
o.push('');
process.stdout.write(o.join('\n'));
