// bench/recovery/report.mjs: the JSON lines of a bench/recovery/run.sh run
// (bench/run.sh's, each tagged with round, recovery on|off and its place in
// the round) to Markdown.
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

const median = (xs) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmt = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
const fmtInt = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a');
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : NaN);
const NAMES = { 'hub-native': 'native /ws', 'hub-sio': 'Socket.IO' };
const QUIET = 10; // % of the step the hub may wait for its core in a "quiet" measurement
const quiet = (m) => m && m.server_runq_wait_pct < QUIET;

// one measurement = the fixed-rate CPU step of one bench/run.sh call
const cpuSteps = rows.filter((r) => r.kind === 'step' && r.step === 'cpu');
const configs = [];
for (const r of cpuSteps)
  if (!configs.some((c) => c.label === r.label && c.scenario === r.scenario))
    configs.push({ label: r.label, scenario: r.scenario });
const rounds = [...new Set(rows.map((r) => r.round).filter(Number.isFinite))].sort((a, b) => a - b);

function measurement(round, label, scenario, mode) {
  const s = cpuSteps.find(
    (r) => r.round === round && r.label === label && r.scenario === scenario && r.recovery === mode,
  );
  if (!s) return null;
  const redisCpuS = (s.redis_cpu_pct * s.wall_seconds) / 100;
  return {
    ...s,
    us: s.server_us_per_delivery,
    p99: s.p99_ms,
    redisUs: s.delivered ? (redisCpuS * 1e6) / s.delivered : NaN,
  };
}
const loss = (m) =>
  m ? [m.lost && `${fmtInt(m.lost)} lost`, m.dup && `${fmtInt(m.dup)} dup`, m.misrouted && `${fmtInt(m.misrouted)} misrouted`, m.disconnects && `${m.disconnects} disc`].filter(Boolean).join(', ') || '0' : 'n/a';

const out = [];
const p = (s = '') => out.push(s);

p('# Recovery on vs off: fan-out CPU per delivery and p99');
p();
p('```sh');
p(meta.command);
p('```');
p();
p(
  `${meta.date_start} to ${meta.date_end} (${meta.seconds} s); ${meta.nproc} vCPUs (${meta.cpu_model}), kernel ${meta.kernel}; ` +
    `${meta.pinning || 'pinning: see the calls\' meta.json'}; load average ${meta.load_start} at the start, ${meta.load_end} at the end.`,
);
p(
  `Hub: ${meta.hub} (${meta.hub_build_type}); checkout at ${meta.hub_commit}` +
    `${meta.hub_dirty_c_files ? ` with ${meta.hub_dirty_c_files} modified C/H files` : ''} when the binary was copied; ` +
    `binary ${meta.hub_src} of ${meta.hub_mtime} (sha256 ${meta.hub_sha256}), copied once and run by every measurement; Redis ${meta.redis}.`,
);
p();
p(
  `Each measurement is one \`bench/run.sh\` call (its own redis-server and a fresh hub) and its fixed-rate CPU step: ` +
    `${meta.cpu_seconds} s after a 1 s warm-up; unicast ${fmtInt(meta.unicast_cpu_rate)} msg/s round robin over ` +
    `${fmtInt(meta.unicast_users)} users, one socket each (${fmtInt(meta.unicast_cpu_rate)} deliveries/s); broadcast ` +
    `${fmtInt(meta.broadcast_cpu_rate)} msg/s to ${meta.broadcast_users} user rooms x ${meta.broadcast_per_user} sockets ` +
    `(${fmtInt(meta.broadcast_cpu_rate * meta.broadcast_per_user)} deliveries/s). Recovery on: ` +
    `\`COORDHUB_RECOVERY_WINDOW_MS=${meta.window_ms}\` in the hub's environment; off: \`=0\`. ${meta.rounds} round(s); ` +
    `in each, for each row, on and off back to back, the order alternating by round (odd: on first; even: off first).`,
);
p(
  `Check before the rounds (same binary, the variable inherited, one tradestate published): on: window ` +
    `${meta.check?.on?.window_s} s, ${meta.check?.on?.history_entries} history entry written; off: window ` +
    `${meta.check?.off?.window_s} s, ${meta.check?.off?.history_entries} entries.`,
);
if (meta.note) p(`\n${meta.note}`);
if (meta.quick) p('\n**QUICK run: small counts and short windows; it checks the tool, not the figures.**');
p();
p('## Medians over the rounds');
p();
p(
  'Hub CPU per delivery = hub utime+stime over the step (publish start to drain end) / deliveries; p99 = publish to receipt ' +
    '(through Redis and the hub); ratio = the median of the per-round ratios on/off (each round\'s on and off ran back to back). ' +
    'Redis CPU per delivery is informative (with recovery on, Redis also runs the history script; Redis shares its core with the generator).',
);
p();
p(
  `"Quiet pairs": the rounds in which the hub waited for its core less than ${QUIET}% of the step both on and off; ` +
    'a starved hub reads several messages per wake-up and batches more, so its CPU per delivery falls and its p99 rises.',
);
p();
p('| framing | scenario | rounds | hub µs/delivery on | off | **on/off** | p99 ms on | off | **on/off** | Redis µs/delivery on | off | on/off | quiet pairs | hub CPU on/off, quiet | p99 on/off, quiet |');
p('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
const summary = [];
for (const { label, scenario } of configs) {
  const pairs = rounds
    .map((r) => ({ r, on: measurement(r, label, scenario, 'on'), off: measurement(r, label, scenario, 'off') }))
    .filter((x) => x.on && x.off);
  const all = (mode) => rounds.map((r) => measurement(r, label, scenario, mode)).filter(Boolean);
  const on = all('on'),
    off = all('off');
  const s = {
    label,
    scenario,
    n: pairs.length,
    usOn: median(on.map((m) => m.us)),
    usOff: median(off.map((m) => m.us)),
    usR: median(pairs.map((x) => ratio(x.on.us, x.off.us))),
    p99On: median(on.map((m) => m.p99)),
    p99Off: median(off.map((m) => m.p99)),
    p99R: median(pairs.map((x) => ratio(x.on.p99, x.off.p99))),
    rOn: median(on.map((m) => m.redisUs)),
    rOff: median(off.map((m) => m.redisUs)),
    rR: median(pairs.map((x) => ratio(x.on.redisUs, x.off.redisUs))),
  };
  const qp = pairs.filter((x) => quiet(x.on) && quiet(x.off));
  s.nq = qp.length;
  s.usRq = median(qp.map((x) => ratio(x.on.us, x.off.us)));
  s.p99Rq = median(qp.map((x) => ratio(x.on.p99, x.off.p99)));
  summary.push(s);
  p(
    `| ${NAMES[label] || label} | ${scenario} | ${s.n} | ${fmt(s.usOn)} | ${fmt(s.usOff)} | **${fmt(s.usR, 3)}** | ` +
      `${fmt(s.p99On)} | ${fmt(s.p99Off)} | **${fmt(s.p99R, 3)}** | ${fmt(s.rOn)} | ${fmt(s.rOff)} | ${fmt(s.rR, 2)} | ` +
      `${s.nq} | ${s.nq ? fmt(s.usRq, 3) : 'n/a'} | ${s.nq ? fmt(s.p99Rq, 3) : 'n/a'} |`,
  );
}
p();
const verdict = (x) => (!Number.isFinite(x) ? 'n/a' : x <= 1.1 ? 'within 10%' : `**over by ${fmt((x - 1) * 100, 0)}%**`);
p('Against the issue\'s bound (median ratio on/off at most 1.10):');
p();
for (const s of summary)
  p(
    `- ${NAMES[s.label] || s.label}, ${s.scenario}: CPU per delivery ${verdict(s.usR)}; p99 ${verdict(s.p99R)}` +
      (s.nq ? ` (quiet pairs, ${s.nq}: CPU ${verdict(s.usRq)}, p99 ${verdict(s.p99Rq)})` : ' (no quiet pair)') + '.',
  );
p();
p('## Every round');
p();
p(
  '"first" is the mode that ran first in the pair. "waited" is the share of the step the hub was runnable but waiting for its core ' +
    '(other load on CPU 0); "gen waited" the same for the generator (CPU 1, shared with Redis).',
);
p();
p('| round | framing | scenario | first | hub µs/d on | off | on/off | p99 ms on | off | on/off | Redis µs/d on | off | deliveries/s on / off | hub waited % on / off | gen waited % on / off | loss on / off |');
p('|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|');
for (const r of rounds)
  for (const { label, scenario } of configs) {
    const on = measurement(r, label, scenario, 'on'),
      off = measurement(r, label, scenario, 'off');
    const first = on && off ? (on.order < off.order ? 'on' : 'off') : 'n/a';
    p(
      `| ${r} | ${NAMES[label] || label} | ${scenario} | ${first} | ${fmt(on?.us)} | ${fmt(off?.us)} | ${fmt(ratio(on?.us, off?.us), 3)} | ` +
        `${fmt(on?.p99)} | ${fmt(off?.p99)} | ${fmt(ratio(on?.p99, off?.p99), 3)} | ${fmt(on?.redisUs)} | ${fmt(off?.redisUs)} | ` +
        `${fmtInt(on?.deliveries_per_s)} / ${fmtInt(off?.deliveries_per_s)} | ${fmt(on?.server_runq_wait_pct, 1)} / ${fmt(off?.server_runq_wait_pct, 1)} | ` +
        `${fmt(on?.gen_runq_wait_pct, 1)} / ${fmt(off?.gen_runq_wait_pct, 1)} | ${loss(on)} / ${loss(off)} |`,
    );
  }
p();

// anything that did not go as planned, one line per call: failed steps (the
// CPU step or the one ramp step), connection failures, events (exits, hub
// log lines), missing measurements
const notes = [];
const calls = [...new Set(rows.map((r) => r.call).filter(Boolean))];
for (const call of calls) {
  const rs = rows.filter((r) => r.call === call);
  const r0 = rs[0];
  const what = [];
  for (const r of rs) {
    if (r.kind === 'step' && !r.pass) {
      const why = [];
      if (r.lost) why.push(`${fmtInt(r.lost)} lost`);
      if (r.dup) why.push(`${fmtInt(r.dup)} dup`);
      if (r.misrouted) why.push(`${fmtInt(r.misrouted)} misrouted`);
      if (r.disconnects) why.push(`${r.disconnects} disconnects`);
      if (r.pub_behind) why.push('publisher behind');
      if (r.p99_ms > 50) why.push(`p99 ${fmt(r.p99_ms, 1)} ms`);
      what.push(`step ${r.step}${r.attempt > 1 ? ` (retry)` : ''}: ${why.join(', ') || 'failed'}`);
    }
    if (r.kind === 'connect' && r.failed) what.push(`${r.failed} of ${r.conns} connections failed (${r.last_failure})`);
    if (r.kind === 'event') what.push(r.event);
  }
  if (what.length)
    notes.push(`round ${r0.round}, ${NAMES[r0.label] || r0.label} ${r0.scenario}, recovery ${r0.recovery}: ${what.join('; ')}`);
}
for (const r of rounds)
  for (const { label, scenario } of configs)
    for (const mode of ['on', 'off'])
      if (!measurement(r, label, scenario, mode)) notes.push(`round ${r}, ${NAMES[label] || label} ${scenario}, recovery ${mode}: no CPU step`);
const ms = cpuSteps;
const busy = ms.filter((m) => !quiet(m));
const failedP99 = rows.filter((r) => r.kind === 'step' && !r.pass && !r.lost && !r.dup && !r.misrouted && !r.disconnects && !r.pub_behind);
p('## Notes');
p();
if (busy.length)
  p(
    `- The hub waited for its core ${QUIET}% of the step or more in ${busy.length} of ${ms.length} measurements ` +
      `(up to ${fmt(Math.max(...ms.map((m) => m.server_runq_wait_pct)), 0)}%; the generator up to ` +
      `${fmt(Math.max(...ms.map((m) => m.gen_runq_wait_pct)), 0)}%): other load on the machine (load average above).`,
  );
if (failedP99.length)
  p(
    `- ${failedP99.length} step${failedP99.length > 1 ? 's' : ''} "failed" on bench/run.sh's p99 limit of 50 ms alone (no loss, no duplicate, no disconnect); ` +
      'they are listed below and kept in the tables: the measurement is the same whether or not it passes.',
  );
if (notes.length) for (const n of notes) p(`- ${n}`);
else p('- Every step passed: no loss, duplicate, misrouted event or disconnect; no hub log line; every measurement present.');
p(
  `- Raw JSON lines: \`${meta.out}/results.jsonl\`; each bench/run.sh call's output, logs and own report under \`${meta.out}/calls/\`. ` +
    'Besides the CPU step, each call ran bench/run.sh\'s ramp reduced to one step at the same rate (in the raw data, not in the tables).',
);
console.log(out.join('\n'));
