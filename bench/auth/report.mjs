// bench/auth/report.mjs: the JSON lines of a bench/auth/run.sh run to
// Markdown (medians of the rounds and the ratios between binaries).
//
//   node report.mjs auth.jsonl meta.json > results.md

import fs from 'node:fs';

const [jsonlPath, metaPath] = process.argv.slice(2);
if (!jsonlPath || !metaPath) {
  console.error('usage: node report.mjs auth.jsonl meta.json');
  process.exit(2);
}
const rows = fs
  .readFileSync(jsonlPath, 'utf8')
  .split('\n')
  .filter((l) => l.trim().startsWith('{'))
  .map((l) => JSON.parse(l));
const meta = JSON.parse(fs.readFileSync(metaPath, 'utf8'));

const median = (xs) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmt = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
const fmtInt = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a');
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : NaN);
const short = (rev) => (rev || '').slice(0, 7);
const NAMES = {
  base: `base (${short(meta.base_rev)}, no expiry check)`,
  before: `before (${short(meta.before_rev)}, libjwt)`,
  after: `after (${short(meta.after_rev)}${meta.after_dirty ? ' + local changes' : ''}, keys.c)`,
};

// ------------------------------------------------------------------ derive
for (const r of rows) {
  const c = r.connect || {};
  r.ready = c.ready ?? 0;
  r.window_s = r.window_us / 1e6;
  r.wait_ms = r.wait_ns / 1e6;
  r.wait_pct = (100 * r.wait_ns) / (r.window_us * 1e3);
  r.gen = r.gen_utime_ticks >= 0 ? `${fmt(r.gen_utime_ticks / r.clk_tck, 2)} / ${fmt(r.gen_stime_ticks / r.clk_tck, 2)}` : 'n/a';
  if (r.kind === 'accept') {
    r.accept_per_s = c.accept_per_s;
    r.connect_s = c.seconds;
    r.us_stat = r.ready ? ((r.stat_ticks / r.clk_tck) * 1e6) / r.ready : NaN;
    r.us_sched = r.ready ? r.sched_ns / 1e3 / r.ready : NaN;
    r.us_lg = r.ready ? (c.server_cpu_s * 1e6) / r.ready : NaN;
    r.busy_pct = (100 * r.sched_ns) / (r.window_us * 1e3);
  } else {
    r.pct_stat = (100 * (r.stat_ticks / r.clk_tck)) / r.window_s;
    r.pct_sched = (100 * r.sched_ns) / (r.window_us * 1e3);
    r.ns_per_conn_s = r.ready ? r.sched_ns / r.window_s / r.ready : NaN;
    r.still_open = r.idle ? r.idle.still_open : NaN;
    r.pings = r.idle ? r.idle.pings_answered : NaN;
    r.closes = r.idle ? r.idle.close_frames + r.idle.eofs + r.idle.resets : NaN;
    r.sweeps = Array.isArray(r.sweep_us) ? r.sweep_us.length : 0;
    r.sweep_med_us = r.sweeps ? median(r.sweep_us) : NaN;
    r.sweep_min_us = r.sweeps ? Math.min(...r.sweep_us) : NaN;
    r.sweep_ns_per_conn = r.ready ? (r.sweep_med_us * 1e3) / r.ready : NaN;
  }
}
const of = (kind, bin) =>
  rows.filter((r) => r.kind === kind && r.bin === bin && r.kept !== 0).sort((a, b) => a.round - b.round);
const bins = (kind) => ['base', 'before', 'after'].filter((b) => of(kind, b).length);
const med = (kind, bin, key) => median(of(kind, bin).map((r) => r[key]));

const out = [];
const p = (s = '') => out.push(s);

p(`# Token verification: before vs after (bench/auth/run.sh)`);
p();
p(`\`${meta.command}\` on ${meta.date}, ${meta.seconds} s, ${meta.rounds} rounds${meta.quick ? ' (QUICK: a smoke run, not figures)' : ''}.`);
p();
p(`- after: \`${meta.after_rev}\`${meta.after_dirty ? ' plus uncommitted C changes in the checkout' : ''} (tokens verified by wire/keys.c over OpenSSL; an initialised EVP_MAC_CTX per key, CRYPTO_memcmp)`);
p(`- before: \`${meta.before_rev}\` (libjwt ${meta.libjwt}: the HMAC fetched on every call, strcmp)`);
if (meta.base_rev)
  p(`- base (idle only): \`${meta.base_rev}\`, the parent of before, whose liveness sweep does not look at token expiry (before already has the check, added by that commit)`);
p(`- each built RelWithDebInfo (\`cmake -S <tree> -B <tree>/build-bench-auth -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOORDHUB_TESTS=OFF\`); ${meta.openssl}`);
p(`- ${meta.nproc} vCPUs (${meta.cpu_model}), kernel ${meta.kernel}, open-file limit ${meta.nofile}; ${meta.pinning}`);
p(`- load average ${meta.load_start} at the start, ${meta.load_end} at the end`);
if (meta.hub_start_retries) p(`- a hub that could not reach Redis at start was started again ${meta.hub_start_retries} time(s) (logs/*.start-N.log)`);
const busy = (s) => (s.trim() ? s.trim().split('\n').map((l) => `  - \`${l.trim()}\``).join('\n') : '  - none');
p(`- other processes over 5% CPU at the start:\n${busy(meta.busy_start)}`);
p(`- at the end:\n${busy(meta.busy_end)}`);
p();

// ------------------------------------------------------------------ accept
if (rows.some((r) => r.kind === 'accept')) {
  p(`## Accepts: ${fmtInt(meta.accept_n)} native connections, ${meta.accept_concurrency} handshakes in flight`);
  p();
  p('A fresh hub per measurement. Hub CPU per accept: utime+stime from `/proc/PID/stat` (10 ms ticks) from just before the generator starts to its report of the last handshake, / accepts; the same window from schedstat (ns); and the generator\'s own reading over first connect -> last ready. "waited" is the time the hub was runnable but not on CPU 0 (other load on its core).');
  p();
  p('| binary | accepts/s | hub µs/accept (stat) | (schedstat) | (generator window) | hub busy in window | hub waited |');
  p('|---|---:|---:|---:|---:|---:|---:|');
  for (const b of bins('accept'))
    p(
      `| ${NAMES[b]} | ${fmtInt(med('accept', b, 'accept_per_s'))} | ${fmt(med('accept', b, 'us_stat'), 1)} | ${fmt(med('accept', b, 'us_sched'), 1)} | ${fmt(med('accept', b, 'us_lg'), 1)} | ${fmt(med('accept', b, 'busy_pct'), 0)}% | ${fmt(med('accept', b, 'wait_ms'), 0)} ms |`,
    );
  if (bins('accept').includes('before') && bins('accept').includes('after')) {
    const r = (k) => fmt(ratio(med('accept', 'after', k), med('accept', 'before', k)), 2);
    p(`| **after / before** | **${r('accept_per_s')}** | **${r('us_stat')}** | **${r('us_sched')}** | **${r('us_lg')}** | | |`);
  }
  p();
  const dropped = rows.filter((r) => r.kind === 'accept' && r.kept === 0).length;
  p(
    `Medians of the rounds. A measurement in which the hub waited for CPU 0 more than ${meta.accept_max_wait_pct}% of its window (other load on its core) is made again, up to ${meta.accept_attempts} attempts, the last one kept whatever it shows; ${dropped} attempt(s) were set aside this way (struck through below). Each attempt:`,
  );
  p();
  p('| round | order | binary | ready | accepts/s | connect s | µs/accept (stat) | (schedstat) | (generator) | hub waited | generator user / sys s | load1 |');
  p('|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows.filter((x) => x.kind === 'accept'))
    p(
      `| ${r.round}${r.attempt > 1 ? `.${r.attempt}` : ''} | ${r.pos} | ${r.kept === 0 ? `~~${r.bin}~~` : r.bin} | ${fmtInt(r.ready)}/${fmtInt(r.n)} | ${fmtInt(r.accept_per_s)} | ${fmt(r.connect_s, 3)} | ${fmt(r.us_stat, 1)} | ${fmt(r.us_sched, 1)} | ${fmt(r.us_lg, 1)} | ${fmt(r.wait_ms, 0)} ms (${fmt(r.wait_pct, 0)}%) | ${r.gen} | ${r.load1} |`,
    );
  p();
}

// ------------------------------------------------------------------ idle
if (rows.some((r) => r.kind === 'idle')) {
  p(`## Idle: ${fmtInt(meta.idle_n)} native connections, hub CPU over ${meta.idle_seconds} s`);
  p();
  if (meta.idle_note) p(`Connections ${meta.idle_note}.`), p();
  p(`A fresh hub per measurement (COORDHUB_WS_IDLE_PING_MS=120000: no native idle ping falls in the window; the sweep still runs every 1 s). The window starts ${meta.idle_settle} s after the last handshake. "ns per conn-second" = hub CPU (schedstat) / window / connections: with one sweep a second, the sweep's cost per connection visit plus the hub's other timers spread over the connections.`);
  p();
  const sw = meta.sweep === 1;
  if (sw)
    p(`"sweep": the liveness sweep's own duration (uprobes on on_sweep's entry and return, gateway/liveness.c, recorded with perf from the settle's start to the window's end, so one sweep a second over ${fmt(meta.idle_settle + meta.idle_seconds, 1)} s): the median sweep of each measurement, then the median of those; "ns per connection" = that / connections.`);
  else p(`Sweep timing skipped: ${meta.sweep_note}.`);
  p();
  p(`| binary | hub CPU (stat) | hub CPU (schedstat) | ns per conn-second | hub waited |${sw ? ' sweep µs | sweep ns per connection |' : ''}`);
  p(`|---|---:|---:|---:|---:|${sw ? '---:|---:|' : ''}`);
  for (const b of bins('idle'))
    p(
      `| ${NAMES[b]} | ${fmt(med('idle', b, 'pct_stat'), 3)}% | ${fmt(med('idle', b, 'pct_sched'), 3)}% | ${fmt(med('idle', b, 'ns_per_conn_s'), 1)} | ${fmt(med('idle', b, 'wait_ms'), 1)} ms |${sw ? ` ${fmt(med('idle', b, 'sweep_med_us'), 0)} | ${fmt(med('idle', b, 'sweep_ns_per_conn'), 1)} |` : ''}`,
    );
  const pairs = [
    ['after', 'before'],
    ['before', 'base'],
    ['after', 'base'],
  ].filter(([a, b]) => bins('idle').includes(a) && bins('idle').includes(b));
  for (const [a, b] of pairs) {
    const r = (k) => fmt(ratio(med('idle', a, k), med('idle', b, k)), 2);
    p(`| **${a} / ${b}** | **${r('pct_stat')}** | **${r('pct_sched')}** | **${r('ns_per_conn_s')}** | |${sw ? ` **${r('sweep_med_us')}** | **${r('sweep_ns_per_conn')}** |` : ''}`);
  }
  p();
  p('Medians of the rounds. Each round:');
  p();
  p('| round | order | binary | ready | still open | connect s | generator user / sys s | window s | hub CPU (stat ticks) | (stat) | (schedstat) | ns per conn-second | hub waited | sweeps | sweep µs median (min) | pings | closed | load1 |');
  p('|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows.filter((x) => x.kind === 'idle'))
    p(
      `| ${r.round} | ${r.pos} | ${r.bin} | ${fmtInt(r.ready)}/${fmtInt(r.n)} | ${fmtInt(r.still_open)} | ${fmt(r.connect?.seconds, 1)} | ${r.gen} | ${fmt(r.window_s, 2)} | ${r.stat_ticks} | ${fmt(r.pct_stat, 3)}% | ${fmt(r.pct_sched, 3)}% | ${fmt(r.ns_per_conn_s, 1)} | ${fmt(r.wait_ms, 1)} ms | ${r.sweeps} | ${fmt(r.sweep_med_us, 0)} (${fmt(r.sweep_min_us, 0)}) | ${r.pings} | ${r.closes} | ${r.load1} |`,
    );
  p();
}

const bad = rows.filter(
  (r) => r.ready < r.n || r.lg_rc !== 0 || (r.kind === 'idle' && (r.still_open !== r.ready || r.lg_alive === 0)),
);
if (bad.length) {
  p('## Problems');
  p();
  for (const r of bad)
    p(`- ${r.kind} ${r.bin} round ${r.round}: ${r.ready}/${r.n} ready, generator status ${r.lg_rc}${r.kind === 'idle' ? `, ${r.still_open} still open${r.lg_alive === 0 ? ', the generator had ended before the window did (its closes are in it)' : ''}` : ''}; last failure: ${r.connect?.last_failure || 'none'}`);
  p();
}
process.stdout.write(out.join('\n'));
