// bench/queues/report.mjs: the JSON of bench/queues/bench.mjs to Markdown.
//
//   node report.mjs results.json meta.json > results.md
import fs from 'node:fs';
import path from 'node:path';

const [resPath, metaPath] = process.argv.slice(2);
if (!resPath || !metaPath) {
  console.error('usage: node report.mjs results.json meta.json');
  process.exit(2);
}
const r = JSON.parse(fs.readFileSync(resPath, 'utf8'));
const meta = JSON.parse(fs.readFileSync(metaPath, 'utf8'));

const median = (xs) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
const f = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
const n = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a');

// paths in the repository, relative to it (run.sh runs this from there)
const rel = (x) => (x && path.isAbsolute(x) && !path.relative(process.cwd(), x).startsWith('..') ? path.relative(process.cwd(), x) : x);
const out = [];
const p = (s = '') => out.push(s);
const k = r.knobs || {};

p('# Job queues (SPEC §12): hub CPU per job event, and the cost of polling');
p();
p('```sh');
p(meta.command);
p('```');
p();
p(
  `${r.date_start} to ${r.date_end}; ${r.nproc} vCPUs (${r.cpu_model}), kernel ${r.kernel}, Node ${r.node}, Redis ${r.redis_version}; ` +
    `${r.pinning}. **This machine has 2 cores and other work runs on it** (load average ${r.load_start} at the start, ` +
    `${r.load_end} at the end): read the ratios, which are measured in the same run on the same hub binary, more than the absolute figures.`,
);
p(
  `Hub: ${meta.hub} (${rel(meta.hub_bin)}, sha256 ${meta.hub_sha256}, built ${meta.hub_mtime}; checkout ${meta.hub_commit}` +
    `${meta.hub_dirty ? `, ${meta.hub_dirty} modified C/H files` : ''}). Loopback only; a private redis-server without persistence.`,
);
if (r.error) {
  p();
  p(`**The run failed:** ${r.error}`);
}

// ---- part 1
if (r.events) {
  const ph = r.events.phases;
  p();
  p('## 1. Job events routed to users, against the pub/sub floor');
  p();
  p(
    `One hub (\`--queues bullmq:bench\`), ${k.USERS} native \`/ws\` clients (one per user \`u0\`..\`u${k.USERS - 1}\`, in their own rooms). ` +
      `**jobs**: job hashes \`bull:bench:<id>\` (name, data \`{"userId":"u<k>"}\`) written first, untimed; then BullMQ-shaped ` +
      `entries XADDed to \`bull:bench:events\` (\`active\`, \`progress\` 50, \`completed\` with returnvalue \`{"ok":true}\`, per job, in order) ` +
      `at ${n(k.RATE)}/s for ${k.SECONDS} s: the hub reads them with XREAD, reads each job's user once (its lookup script), ` +
      `and sends a \`job\` event to \`user:<id>\`. **floor**: \`PUBLISH tradestate {"steamId":"u<k>",...}\` at the same rate ` +
      `(the unicast channel of README's table: one delivery to \`user:<steamId>\`). Phases alternate from round to round. ` +
      `Window: from ${k.WARMUP} s after the start of the generation to its end; CPU from \`/proc/<pid>/stat\` (utime + stime, 10 ms ticks) ` +
      `and the sum of the hub's threads' \`schedstat\` (ns); deliveries counted at the clients; routed = ` +
      `\`coordhub_queue_job_events_total\` (sum) over the same window.`,
  );
  p();
  p('| round | phase | delivered in window | rate /s | routed (metrics) | hub CPU % | hub µs / delivery (stat) | (schedstat) | Redis µs / delivery | lost (whole phase) |');
  p('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const x of ph) {
    p(
      `| ${x.round} | ${x.kind} | ${n(x.delivered_window)} | ${n(x.delivered_window / x.window_s)} | ${x.kind === 'jobs' ? n(x.routed_window) : '–'} | ` +
        `${f(x.hub_cpu_pct, 1)} | ${f(x.us_per_delivery)} | ${f(x.us_per_delivery_sched)} | ${f(x.redis_us_per_delivery)} | ${n(x.lost)}${x.errors ? ` (${x.errors} Redis errors: ${x.firstError})` : ''} |`,
    );
  }
  const rounds = [...new Set(ph.map((x) => x.round))];
  const per = (kind, key) => ph.filter((x) => x.kind === kind).map((x) => x[key]);
  const ratios = (key) =>
    rounds
      .map((rd) => {
        const j = ph.find((x) => x.round === rd && x.kind === 'jobs');
        const fl = ph.find((x) => x.round === rd && x.kind === 'floor');
        return j && fl ? j[key] / fl[key] : NaN;
      })
      .filter(Number.isFinite);
  const fl = median(per('floor', 'us_per_delivery_sched'));
  const jb = median(per('jobs', 'us_per_delivery_sched'));
  const flS = median(per('floor', 'us_per_delivery'));
  const jbS = median(per('jobs', 'us_per_delivery'));
  p();
  p(
    `**Hub CPU per routed job event: ${f(jb)} µs** (median of ${per('jobs', 'us_per_delivery_sched').length}; /proc stat: ${f(jbS)} µs) ` +
      `**against ${f(fl)} µs per plain pub/sub delivery** (stat: ${f(flS)} µs): **ratio ${f(jb / fl)}** ` +
      `(per round: ${ratios('us_per_delivery_sched').map((x) => f(x)).join(', ')}; from stat: ${f(jbS / flS)}). ` +
      `At ${n(k.RATE)} events/s the hub used ${f(median(per('jobs', 'hub_cpu_pct')), 1)}% of a core for job events, ` +
      `${f(median(per('floor', 'hub_cpu_pct')), 1)}% for the same rate of pub/sub. ` +
      `Redis (its CPU over the window, per delivery, the generator's own commands included): ` +
      `${f(median(per('jobs', 'redis_us_per_delivery')))} µs with job events (XADD + the hub's XREAD and lookups) against ` +
      `${f(median(per('floor', 'redis_us_per_delivery')))} µs with PUBLISH.`,
  );
  p();
  p(
    `Whole run: ${n(r.events.lookups)} job users read (one per job), ${n(r.events.throttled)} progress events held back by the ` +
      `per-job throttle (one progress per job here, so none), ${n(r.events.unrouted)} unrouted, ${n(r.events.other_frames)} unexpected frames at the clients` +
      `${r.events.hub_stderr ? `; hub log (warn): \`${r.events.hub_stderr.split('\n')[0].slice(0, 200)}\`` : '; nothing in the hub\'s log (level warn)'}.`,
  );
}

// ---- part 2
if (r.polling) {
  const ph = r.polling.phases;
  const wq = ph.filter((x) => x.queues > 0);
  const wo = ph.filter((x) => x.queues === 0);
  const Q = wq[0]?.queues;
  p();
  p(`## 2. Polling ${Q} queues every second`);
  p();
  p(
    `${Q} BullMQ queues \`q0\`..\`q${Q - 1}\`, each with ${Object.entries(r.polling.shape)
      .map(([s, c]) => `${c} ${s}`)
      .join(', ')} (the waiting and active jobs' hashes too; the active ones with \`processedOn\` and a lock key). ` +
      `A fresh hub per phase on the same Redis, ${k.POLL_SETTLE} s to settle, then ${k.POLL_SECONDS} s measured: ` +
      `without \`--queues\`, with \`--queues bullmq:q0,...,bullmq:q${Q - 1} --queue-poll-ms 1000\`, without again. ` +
      `CPU from schedstat (ns; the hub's /proc/stat utime+stime is shown too, but at these levels it is a few 10 ms ticks); ` +
      `\`INFO commandstats\` deltas over the same window.`,
  );
  p();
  p('| phase | hub CPU % (schedstat) | hub CPU s (stat) | redis-server CPU % | polls | evalsha calls | evalsha µs (commandstats) | XREAD calls |');
  p('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const x of ph) {
    p(
      `| ${x.queues ? `with ${x.queues} queues` : 'without --queues'} | ${f((100 * x.hub_cpu_sched_s) / x.window_s, 3)} | ${f(x.hub_cpu_s)} | ` +
        `${f((100 * x.redis_cpu_sched_s) / x.window_s, 3)} | ${n(x.polls)} | ${n(x.evalsha_calls)} | ${n(x.evalsha_usec)} | ${n(x.xread_calls)} |`,
    );
  }
  const base = (key) => mean(wo.map((x) => x[key] / x.window_s)); // per second
  const w = wq[0];
  if (w) {
    const roundsPerS = w.polls / Q / w.window_s;
    const hubExtra = w.hub_cpu_sched_s / w.window_s - base('hub_cpu_sched_s'); // CPU s per s
    const redisExtra = w.redis_cpu_sched_s / w.window_s - base('redis_cpu_sched_s');
    const evCalls = w.evalsha_calls / w.window_s - base('evalsha_calls');
    const evUsec = w.evalsha_usec / w.window_s - base('evalsha_usec');
    const pollsPerS = w.polls / w.window_s;
    p();
    p(
      `**Hub: ${f(hubExtra * 1000 / roundsPerS)} ms CPU per poll round of ${Q} queues** ` +
        `(${f(100 * hubExtra, 3)}% of a core above the hub without \`--queues\`, ${f(roundsPerS, 2)} rounds/s; ` +
        `${f((hubExtra * 1e6) / pollsPerS, 1)} µs per queue poll). ` +
        `**Redis: ${f((redisExtra * 1e6) / pollsPerS, 1)} µs of redis-server CPU per queue poll** ` +
        `(${f(100 * redisExtra, 3)}% of a core; the script's own time by \`INFO commandstats\`: ` +
        `${f(evUsec / evCalls, 1)} µs per EVALSHA, ${n(evCalls)} EVALSHA/s above the baseline). ` +
        `The rest of redis-server's share is the command's parsing and reply and the hub's blocking XREAD on the ${Q} events streams ` +
        `(${n(w.xread_calls)} XREADs in the window: one per second while nothing happens).`,
    );
    if (w.sample) {
      p();
      p(`A queue as GET /v1/queues showed it at the end: \`${JSON.stringify(w.sample)}\``);
    }
  }
}
p();
p('## Notes');
p();
p(
  '- Both paths of part 1 end in the same place, one WebSocket frame to one socket per event; the ratio is what the job ' +
    'path adds before that: XREAD replies instead of pub/sub messages, one lookup script per job (the user, read once, for ' +
    'the three events of the job), the `job` JSON. The producer\'s writes of the job hashes are not in the window (BullMQ\'s ' +
    'producer, not the hub, does them).',
);
p(
  '- Not exercised: the per-job progress throttle (one progress per job), large results (cut at 4 KiB), Bull v3 channels, ' +
    'Streams queues. Redis per delivery includes the generator\'s own XADD or PUBLISH.',
);
p(
  '- Part 2 has no job traffic: the cost is the poll (one EVALSHA per queue per round, reading LLEN/ZCARD of eight keys, the ' +
    'oldest waiting job\'s hash, and per active job its hash and lock) and the idle blocking XREAD of the events streams; it grows ' +
    'with the number of active jobs (up to 1,000 looked at per queue per poll).',
);
p();
p(`Raw figures: \`${rel(meta.out)}/results.json\`; log: \`${rel(meta.out)}/bench.log\`.`);
console.log(out.join('\n'));
