/*
 * queues/queues.c: the watcher's life, the counts (one Lua script per queue
 * per poll, read-only), the alerts, GET /v1/queues and /metrics. Job events
 * are events.c.
 */
#include "queues_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SCAN_LIMIT "1000" /* active jobs / pending entries looked at per poll */

/*
 * Bull v3 and BullMQ. KEYS: wait active paused delayed completed failed
 * prioritized waiting-children id meta events. ARGV: the key base, the
 * stuck bound (ms), the scan limit. Returns the eight counts, the oldest
 * waiting job's age in ms (-1: none), stuck, stalled (active without a
 * lock), whether anything of the queue exists, Redis's time (ms).
 * BullMQ's legacy "0:" marker at the tail of a list is not a job.
 */
static const char BULL_LUA[] =
    "local t = redis.call('TIME')\n"
    "local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
    "local function list(k)\n"
    "  local n = redis.call('LLEN', k)\n"
    "  local tail = n > 0 and redis.call('LINDEX', k, -1)\n"
    "  if tail and string.sub(tail, 1, 2) == '0:' then return n - 1, nil end\n"
    "  return n, tail\n"
    "end\n"
    "local wait, wtail = list(KEYS[1])\n"
    "local active = redis.call('LLEN', KEYS[2])\n"
    "local paused, ptail = list(KEYS[3])\n"
    "local out = {wait, active, paused}\n"
    "for i = 4, 8 do out[i] = redis.call('ZCARD', KEYS[i]) end\n"
    "local oldest, tail = -1, wtail or ptail\n"
    "if tail then\n"
    "  local f = redis.call('HMGET', ARGV[1] .. tail, 'timestamp', 'delay')\n"
    "  local ts = tonumber(f[1])\n"
    "  if ts then oldest = math.max(0, now - ts - (tonumber(f[2]) or 0)) end\n"
    "end\n"
    "local stuck, stalled = 0, 0\n"
    "for _, id in ipairs(redis.call('LRANGE', KEYS[2], 0, tonumber(ARGV[3]) - 1)) do\n"
    "  local p = tonumber(redis.call('HGET', ARGV[1] .. id, 'processedOn'))\n"
    "  if p and now - p > tonumber(ARGV[2]) then stuck = stuck + 1 end\n"
    "  if redis.call('EXISTS', ARGV[1] .. id .. ':lock') == 0 then stalled = stalled + 1 end\n"
    "end\n"
    "out[9], out[10], out[11] = oldest, stuck, stalled\n"
    "out[12] = redis.call('EXISTS', unpack(KEYS))\n"
    "out[13] = now\n"
    "return out\n";

/*
 * A Streams queue. KEYS: the stream [, the dead-letter stream]. ARGV: the
 * group, the stuck bound (ms), the scan limit. Returns {0, time} when the
 * stream does not exist, {2, time} when the group does not, else {1, length, pending,
 * lag (-1: Redis cannot tell), consumers, dead letters, stuck (pending
 * idle for longer than the bound), the oldest undelivered entry's age in
 * ms (-1: none), Redis's time}.
 */
static const char STREAM_LUA[] =
    "local t = redis.call('TIME')\n"
    "local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
    "if redis.call('TYPE', KEYS[1])['ok'] == 'none' then return {0, now} end\n"
    "local len = redis.call('XLEN', KEYS[1])\n"
    "local g\n"
    "for _, e in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do\n"
    "  local f = {}\n"
    "  for i = 1, #e, 2 do f[e[i]] = e[i + 1] end\n"
    "  if f['name'] == ARGV[1] then g = f end\n"
    "end\n"
    "if not g then return {2, now} end\n"
    "local lag = type(g['lag']) == 'number' and g['lag'] or -1\n"
    "local dead = 0\n"
    "if KEYS[2] and redis.call('TYPE', KEYS[2])['ok'] ~= 'none' then\n"
    "  dead = redis.call('XLEN', KEYS[2])\n"
    "end\n"
    "local stuck = #redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', ARGV[2], '-', '+',\n"
    "                          tonumber(ARGV[3]))\n"
    "local oldest = -1\n"
    "local nxt = redis.call('XRANGE', KEYS[1], '(' .. g['last-delivered-id'], '+', 'COUNT', 1)\n"
    "if nxt[1] then\n"
    "  oldest = math.max(0, now - tonumber(string.match(nxt[1][1], '^(%d+)')))\n"
    "end\n"
    "return {1, len, g['pending'], lag, g['consumers'], dead, stuck, oldest, now}\n";

static bus_script_t bull_script = {BULL_LUA, "", 0};
static bus_script_t stream_script = {STREAM_LUA, "", 0};

static const char *const skip_names[QS_COUNT] = {"missing", "wrongtype", "group",
                                                  "data",    "user",      "gone"};
static const char *const kind_names[] = {"bull", "bullmq", "stream"};
static const char *const job_state_names[4] = {"active", "progress", "completed", "failed"};

void
queues__skip(queues_t *qs, queue_t *q, enum queue_skip why, const char *detail)
{
    unsigned n;

    q->skips[why]++;
    n = util_ratelog_allow(&qs->skip_log, uv_now(qs->loop), 5);
    if (n)
        LOG_WARN("queues", "queue %s: skipped (%s)%s%s (%u since last report)", q->spec->label,
                 skip_names[why], detail ? ": " : "", detail ? detail : "", n);
}

/* ---- alerts ---- */

/* Does rule `r` apply to queue `q`: its own, or a global one that no rule
 * of the queue's own for the same measure overrides. */
static int
rule_applies(const queues_t *qs, const queue_t *q, const queue_rule_t *r)
{
    if (r->queue >= 0)
        return (size_t)r->queue == q->idx;
    if (!queue_has(q->spec->kind, r->metric))
        return 0;
    for (size_t k = 0; k < qs->conf.nrules; k++)
        if (qs->conf.rules[k].queue == (int)q->idx && qs->conf.rules[k].metric == r->metric)
            return 0;
    return 1;
}

/* The value a rule compares, and whether it is over its bound. A stuck
 * rule's bound is the time itself: it fires while any job is stuck. */
static int
rule_over(const queue_t *q, const queue_rule_t *r, double *value)
{
    *value = q->v[r->metric];
    if (isnan(*value))
        return -1; /* unknown: no change */
    if (r->metric == QM_STUCK)
        return *value > 0;
    return *value > r->bound;
}

static void
emit(queues_t *qs, const char *room, const char *event, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s == NULL)
        return;
    qs->emit(qs->privdata, room, event, s, strlen(s));
    free(s);
}

static void
check_alerts(queues_t *qs, queue_t *q)
{
    for (size_t k = 0; k < qs->conf.nrules; k++) {
        const queue_rule_t *r = &qs->conf.rules[k];
        double value;
        int over;
        if (!rule_applies(qs, q, r) || (over = rule_over(q, r, &value)) < 0 ||
            over == q->firing[k])
            continue;
        q->firing[k] = over;
        if (over)
            q->alerts++;
        LOG_INFO("queues", "queue %s: alert %s %s (%g)", q->spec->label, r->text,
                 over ? "firing" : "cleared", value);
        emit(qs, "queues", "queue-alert",
             json_pack("{s:s,s:s,s:s,s:f,s:f,s:s}", "queue", q->spec->label, "alert", r->text,
                       "measure", queue_metric_name(r->metric), "value", value, "bound",
                       r->bound, "state", over ? "firing" : "cleared"));
    }
}

/* ---- JSON ---- */

static json_t *
num(double v)
{
    return isnan(v) ? json_null() : json_integer((json_int_t)v);
}

static json_t *
queue_json(const queues_t *qs, const queue_t *q)
{
    json_t *o = json_object(), *counts = json_object(), *firing = json_array();

    json_object_set_new(o, "queue", json_string(q->spec->label));
    json_object_set_new(o, "kind", json_string(kind_names[q->spec->kind]));
    if (q->spec->kind == QUEUE_STREAM) {
        json_object_set_new(o, "group", json_string(q->spec->group));
        json_object_set_new(o, "deadLetters",
                            q->spec->dead ? json_string(q->spec->dead) : json_null());
    } else {
        json_object_set_new(o, "prefix", json_string(q->spec->prefix));
    }
    json_object_set_new(o, "status",
                        json_string(!q->have         ? "unknown"
                                    : q->state > 0   ? "ok"
                                    : q->state == 0  ? "missing"
                                                     : "error"));
    json_object_set_new(o, "error", q->state < 0 ? json_string(q->error) : json_null());
    for (int m = 0; m < QM_COUNT; m++)
        if (queue_has(q->spec->kind, (enum queue_metric)m) && m != QM_STUCK && m != QM_OLDEST &&
            m != QM_STALLED)
            json_object_set_new(counts, queue_metric_name((enum queue_metric)m), num(q->v[m]));
    json_object_set_new(o, "counts", counts);
    json_object_set_new(o, "oldestWaitingSeconds",
                        isnan(q->v[QM_OLDEST]) ? json_null() : json_real(q->v[QM_OLDEST]));
    json_object_set_new(o, "stuck", num(q->v[QM_STUCK]));
    if (q->spec->kind != QUEUE_STREAM)
        json_object_set_new(o, "stalled", num(q->v[QM_STALLED]));
    json_object_set_new(o, "stuckAfterSeconds", json_real((double)q->stuck_ms / 1000.0));
    for (size_t k = 0; k < qs->conf.nrules; k++)
        if (q->firing[k])
            json_array_append_new(firing, json_string(qs->conf.rules[k].text));
    json_object_set_new(o, "alerts", firing);
    json_object_set_new(o, "polledAt", q->have ? json_integer(q->polled_ms) : json_null());
    return o;
}

char *
queues_json(const queues_t *qs, size_t *len)
{
    json_t *o = json_object(), *a = json_array();
    char *s;

    for (size_t i = 0; i < qs->conf.nq; i++)
        json_array_append_new(a, queue_json(qs, &qs->q[i]));
    json_object_set_new(o, "queues", a);
    json_object_set_new(o, "pollSeconds", json_real(qs->poll_ms / 1000.0));
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    *len = s ? strlen(s) : 0;
    return s;
}

/* ---- a poll ---- */

static int
int_at(const redisReply *r, size_t i, double *out)
{
    if (i >= r->elements || r->element[i]->type != REDIS_REPLY_INTEGER)
        return -1;
    *out = (double)r->element[i]->integer;
    return 0;
}

/* Stores a Bull or BullMQ answer; 0, or -1 if it is not what the script
 * returns. */
static int
take_bull(queue_t *q, const redisReply *r, double *nv)
{
    static const enum queue_metric order[8] = {QM_WAITING,   QM_ACTIVE,   QM_PAUSED,
                                               QM_DELAYED,   QM_COMPLETED, QM_FAILED,
                                               QM_PRIORITIZED, QM_WAITING_CHILDREN};
    double oldest, exists, now;

    if (r->elements != 13)
        return -1;
    for (int i = 0; i < 8; i++)
        if (int_at(r, (size_t)i, &nv[order[i]]) != 0)
            return -1;
    if (int_at(r, 8, &oldest) || int_at(r, 9, &nv[QM_STUCK]) || int_at(r, 10, &nv[QM_STALLED]) ||
        int_at(r, 11, &exists) || int_at(r, 12, &now))
        return -1;
    nv[QM_OLDEST] = oldest < 0 ? 0 : oldest / 1000.0;
    q->state = exists > 0 ? 1 : 0;
    q->polled_ms = (long long)now;
    return 0;
}

static int
take_stream(queue_t *q, const redisReply *r, double *nv)
{
    double st, oldest, now;

    if (int_at(r, 0, &st) != 0)
        return -1;
    if (st == 0 || st == 2) {
        if (int_at(r, 1, &now) != 0)
            return -1;
        q->state = st == 0 ? 0 : -1;
        q->polled_ms = (long long)now;
        return 0;
    }
    if (r->elements != 9 || int_at(r, 1, &nv[QM_LENGTH]) || int_at(r, 2, &nv[QM_PENDING]) ||
        int_at(r, 3, &nv[QM_LAG]) || int_at(r, 4, &nv[QM_CONSUMERS]) ||
        int_at(r, 5, &nv[QM_DEAD_LETTERS]) || int_at(r, 6, &nv[QM_STUCK]) ||
        int_at(r, 7, &oldest) || int_at(r, 8, &now))
        return -1;
    if (nv[QM_LAG] < 0)
        nv[QM_LAG] = NAN;
    nv[QM_WAITING] = nv[QM_LAG];
    nv[QM_OLDEST] = oldest < 0 ? 0 : oldest / 1000.0;
    q->state = 1;
    q->polled_ms = (long long)now;
    return 0;
}


/* A poll that found the queue unusable: counted every time, logged when
 * the queue's state changes (not at every poll). */
static void
skip_once(queues_t *qs, queue_t *q, int was, enum queue_skip why, const char *detail)
{
    q->skips[why]++;
    if (was != q->state || strcmp(q->last_logged, detail) != 0)
        LOG_WARN("queues", "queue %s: skipped (%s): %s", q->spec->label, skip_names[why], detail);
    snprintf(q->last_logged, sizeof q->last_logged, "%s", detail);
}

static void
on_poll(void *privdata, redisReply *r)
{
    queue_t *q = privdata;
    queues_t *qs = q->owner;
    double nv[QM_COUNT];
    int changed = 0, ok, was = q->have ? q->state : 1;

    q->poll = NULL;
    if (r == NULL)
        return; /* Redis went away: the next poll tries again */
    for (int m = 0; m < QM_COUNT; m++)
        nv[m] = NAN;
    q->polls++;
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(q->error, sizeof q->error, "%s", r->str);
        q->state = -1;
        q->polled_ms = util_wall_ms();
        skip_once(qs, q, was, QS_WRONGTYPE, r->str);
    } else {
        ok = r->type == REDIS_REPLY_ARRAY &&
             (q->spec->kind == QUEUE_STREAM ? take_stream(q, r, nv) : take_bull(q, r, nv)) == 0;
        if (!ok) {
            snprintf(q->error, sizeof q->error, "unexpected answer");
            q->state = -1;
            q->polled_ms = util_wall_ms();
            skip_once(qs, q, was, QS_WRONGTYPE, q->error);
        } else if (q->state == 0) {
            skip_once(qs, q, was, QS_MISSING, "nothing in Redis under this name (yet)");
        } else if (q->state < 0) {
            snprintf(q->error, sizeof q->error, "no consumer group '%s'", q->spec->group);
            skip_once(qs, q, was, QS_GROUP, q->error);
        }
    }
    if (q->state == 0) /* names nothing (yet): every count is 0 */
        for (int m = 0; m < QM_COUNT; m++)
            if (queue_has(q->spec->kind, (enum queue_metric)m) && m != QM_LAG)
                nv[m] = 0;
    for (int m = 0; m < QM_COUNT; m++)
        if (!(isnan(nv[m]) && isnan(q->v[m])) && nv[m] != q->v[m])
            changed = 1;
    if (q->state > 0)
        q->last_logged[0] = '\0';
    memcpy(q->v, nv, sizeof nv);
    if (!q->have)
        changed = 1;
    q->have = 1;
    check_alerts(qs, q);
    if (changed)
        emit(qs, "queues", "queues", queue_json(qs, q));
}

static void
poll_one(queues_t *qs, queue_t *q)
{
    char stuck[24];
    const char *argv[16];
    size_t argvlen[16];
    char keys[11][QUEUE_NAME_MAX * 2 + 40];
    static const char *const suffix[11] = {"wait",   "active",      "paused",
                                           "delayed", "completed",  "failed",
                                           "prioritized", "waiting-children", "id",
                                           "meta",   "events"};
    int argc = 0, numkeys;

    if (q->poll != NULL)
        return; /* the last one has not answered yet */
    snprintf(stuck, sizeof stuck, "%llu", (unsigned long long)q->stuck_ms);
    if (q->spec->kind == QUEUE_STREAM) {
        argv[argc++] = q->spec->label;
        if (q->spec->dead)
            argv[argc++] = q->spec->dead;
        numkeys = argc;
        argv[argc++] = q->spec->group;
        argv[argc++] = stuck;
        argv[argc++] = SCAN_LIMIT;
    } else {
        for (int i = 0; i < 11; i++) {
            snprintf(keys[i], sizeof keys[i], "%s%s", q->base, suffix[i]);
            argv[argc++] = keys[i];
        }
        numkeys = argc;
        argv[argc++] = q->base;
        argv[argc++] = stuck;
        argv[argc++] = SCAN_LIMIT;
    }
    for (int i = 0; i < argc; i++)
        argvlen[i] = strlen(argv[i]);
    bus_script_request(qs->bus, &qs->group, &q->poll,
                       q->spec->kind == QUEUE_STREAM ? &stream_script : &bull_script, numkeys,
                       argc, argv, argvlen, on_poll, q);
}

void
queues__poll_all(queues_t *qs)
{
    for (size_t i = 0; i < qs->conf.nq; i++)
        poll_one(qs, &qs->q[i]);
    queues__events_retry(qs);
}

static void
on_poll_timer(uv_timer_t *t)
{
    queues__poll_all(t->data);
}

static void
on_tick(uv_timer_t *t)
{
    queues__events_tick(t->data);
}

/* ---- metrics ---- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf_t;

static void
put(sbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (size_t)n;
        b->p = util_realloc(b->p, b->cap);
    }
}

static void
gauge_per_queue(sbuf_t *b, const queues_t *qs, const char *name, const char *help,
                enum queue_metric m)
{
    int any = 0;
    for (size_t i = 0; i < qs->conf.nq; i++) {
        const queue_t *q = &qs->q[i];
        if (!queue_has(q->spec->kind, m) || isnan(q->v[m]))
            continue;
        if (!any++)
            put(b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
        put(b, "%s{queue=\"%s\"} %.17g\n", name, q->spec->label, q->v[m]);
    }
}

char *
queues_metrics(const queues_t *qs, size_t *len)
{
    sbuf_t b = {util_malloc(4096), 0, 4096};
    static const enum queue_metric states[8] = {QM_WAITING,   QM_ACTIVE,  QM_DELAYED,
                                                QM_COMPLETED, QM_FAILED,  QM_PAUSED,
                                                QM_PRIORITIZED, QM_WAITING_CHILDREN};

    b.p[0] = '\0';
    put(&b, "# HELP coordhub_queue_jobs Jobs by state at the last poll (Bull, BullMQ).\n"
            "# TYPE coordhub_queue_jobs gauge\n");
    for (size_t i = 0; i < qs->conf.nq; i++)
        for (int s = 0; s < 8; s++) {
            const queue_t *q = &qs->q[i];
            if (q->spec->kind != QUEUE_STREAM && queue_has(q->spec->kind, states[s]) &&
                !isnan(q->v[states[s]]))
                put(&b, "coordhub_queue_jobs{queue=\"%s\",state=\"%s\"} %.17g\n", q->spec->label,
                    queue_metric_name(states[s]), q->v[states[s]]);
        }
    gauge_per_queue(&b, qs, "coordhub_queue_oldest_waiting_seconds",
                    "Age of the oldest waiting job (streams: undelivered entry).", QM_OLDEST);
    gauge_per_queue(&b, qs, "coordhub_queue_stuck_jobs",
                    "Jobs active (streams: pending) for longer than the stuck bound.", QM_STUCK);
    gauge_per_queue(&b, qs, "coordhub_queue_stalled_jobs",
                    "Active jobs whose worker's lock has expired (a dead worker).", QM_STALLED);
    gauge_per_queue(&b, qs, "coordhub_stream_length", "Entries in the stream (XLEN).", QM_LENGTH);
    gauge_per_queue(&b, qs, "coordhub_stream_pending",
                    "Entries delivered to the group and not acknowledged.", QM_PENDING);
    gauge_per_queue(&b, qs, "coordhub_stream_lag", "Entries not yet delivered to the group.",
                    QM_LAG);
    gauge_per_queue(&b, qs, "coordhub_stream_consumers", "Consumers of the group.", QM_CONSUMERS);
    gauge_per_queue(&b, qs, "coordhub_stream_dead_letters", "Entries in the dead-letter stream.",
                    QM_DEAD_LETTERS);
    put(&b, "# HELP coordhub_queue_polls_total Polls answered, by queue.\n"
            "# TYPE coordhub_queue_polls_total counter\n");
    for (size_t i = 0; i < qs->conf.nq; i++)
        put(&b, "coordhub_queue_polls_total{queue=\"%s\"} %llu\n", qs->q[i].spec->label,
            (unsigned long long)qs->q[i].polls);
    put(&b, "# HELP coordhub_queue_skips_total Polls and jobs skipped, by queue and reason.\n"
            "# TYPE coordhub_queue_skips_total counter\n");
    for (size_t i = 0; i < qs->conf.nq; i++)
        for (int s = 0; s < QS_COUNT; s++)
            put(&b, "coordhub_queue_skips_total{queue=\"%s\",reason=\"%s\"} %llu\n",
                qs->q[i].spec->label, skip_names[s], (unsigned long long)qs->q[i].skips[s]);
    put(&b, "# HELP coordhub_queue_alert_firing 1 while an alert's bound is crossed.\n"
            "# TYPE coordhub_queue_alert_firing gauge\n");
    for (size_t i = 0; i < qs->conf.nq; i++)
        for (size_t k = 0; k < qs->conf.nrules; k++)
            if (rule_applies(qs, &qs->q[i], &qs->conf.rules[k]))
                put(&b, "coordhub_queue_alert_firing{queue=\"%s\",alert=\"%s\"} %d\n",
                    qs->q[i].spec->label, qs->conf.rules[k].text, qs->q[i].firing[k]);
    put(&b, "# HELP coordhub_queue_alerts_total Alerts fired, by queue.\n"
            "# TYPE coordhub_queue_alerts_total counter\n");
    for (size_t i = 0; i < qs->conf.nq; i++)
        put(&b, "coordhub_queue_alerts_total{queue=\"%s\"} %llu\n", qs->q[i].spec->label,
            (unsigned long long)qs->q[i].alerts);
    put(&b, "# HELP coordhub_queue_job_events_total Job events sent to users' rooms, by queue "
            "and state.\n# TYPE coordhub_queue_job_events_total counter\n");
    for (size_t i = 0; i < qs->conf.nq; i++)
        for (int s = 0; s < 4; s++)
            put(&b, "coordhub_queue_job_events_total{queue=\"%s\",state=\"%s\"} %llu\n",
                qs->q[i].spec->label, job_state_names[s], (unsigned long long)qs->q[i].events[s]);
    put(&b, "# HELP coordhub_queue_job_events_unrouted_total Job events of jobs without the "
            "user field.\n# TYPE coordhub_queue_job_events_unrouted_total counter\n");
    for (size_t i = 0; i < qs->conf.nq; i++)
        put(&b, "coordhub_queue_job_events_unrouted_total{queue=\"%s\"} %llu\n",
            qs->q[i].spec->label, (unsigned long long)qs->q[i].unrouted);
    put(&b,
        "# HELP coordhub_queue_progress_throttled_total Progress events held back or replaced "
        "by the per-job throttle.\n# TYPE coordhub_queue_progress_throttled_total counter\n"
        "coordhub_queue_progress_throttled_total %llu\n"
        "# HELP coordhub_queue_job_lookups_total Jobs whose user was read from Redis.\n"
        "# TYPE coordhub_queue_job_lookups_total counter\ncoordhub_queue_job_lookups_total %llu\n",
        (unsigned long long)qs->throttled, (unsigned long long)qs->lookups);
    *len = b.len;
    return b.p;
}

/* ---- life ---- */

int
queues_new(uv_loop_t *loop, const queues_options_t *opt, queues_t **out, const char **err)
{
    queues_t *qs = util_calloc(1, sizeof *qs);

    qs->loop = loop;
    qs->bus = opt->bus;
    qs->conf = opt->conf;
    qs->poll_ms = opt->poll_ms ? opt->poll_ms : 5000;
    qs->progress_ms = opt->progress_ms ? opt->progress_ms : 1000;
    qs->user_field = util_strdup(opt->user_field && *opt->user_field ? opt->user_field : "userId");
    qs->cursor_key = util_malloc(strlen(opt->cursor_id) + 32);
    sprintf(qs->cursor_key, "coordhub:queues:cursor:%s", opt->cursor_id);
    qs->emit = opt->emit;
    qs->privdata = opt->privdata;
    qs->q = util_calloc(qs->conf.nq ? qs->conf.nq : 1, sizeof *qs->q);
    for (size_t i = 0; i < qs->conf.nq; i++) {
        queue_t *q = &qs->q[i];
        q->owner = qs;
        q->idx = i;
        q->spec = &qs->conf.q[i];
        q->stuck_ms = queues_stuck_ms(&qs->conf, i);
        q->firing = util_calloc(qs->conf.nrules ? qs->conf.nrules : 1, sizeof *q->firing);
        for (int m = 0; m < QM_COUNT; m++)
            q->v[m] = NAN;
        if (q->spec->kind != QUEUE_STREAM) {
            q->base = util_malloc(strlen(q->spec->prefix) + strlen(q->spec->label) + 3);
            sprintf(q->base, "%s:%s:", q->spec->prefix, q->spec->label);
        }
    }
    uv_timer_init(loop, &qs->poll_timer);
    uv_timer_init(loop, &qs->tick_timer);
    uv_check_init(loop, &qs->flush_check);
    qs->poll_timer.data = qs->tick_timer.data = qs->flush_check.data = qs;
    qs->handles_open = 3;
    if (queues__events_new(qs, opt->redis_url, err) != 0) {
        *out = qs;
        return UV_EINVAL; /* the caller closes it */
    }
    *out = qs;
    return 0;
}

void
queues_start(queues_t *qs)
{
    if (qs->conf.nq == 0)
        return;
    uv_timer_start(&qs->poll_timer, on_poll_timer, 0, qs->poll_ms);
    uv_timer_start(&qs->tick_timer, on_tick, 100, 100);
    queues__events_start(qs);
}

static void
free_all(queues_t *qs)
{
    void (*done)(void *) = qs->done;
    void *arg = qs->done_arg;

    queues__events_free(qs);
    for (size_t i = 0; i < qs->conf.nq; i++) {
        free(qs->q[i].base);
        free(qs->q[i].firing);
    }
    free(qs->q);
    free(qs->user_field);
    free(qs->cursor_key);
    queues_conf_free(&qs->conf);
    free(qs);
    if (done)
        done(arg);
}

/* A handle closed, or the module's connection is gone: free when both
 * are. */
void
queues__maybe_free(queues_t *qs)
{
    if (qs->handles_open == 0 && qs->ebus == NULL)
        free_all(qs);
}

static void
on_handle_closed(uv_handle_t *h)
{
    queues_t *qs = h->data;
    qs->handles_open--;
    queues__maybe_free(qs);
}

void
queues_close(queues_t *qs, void (*done)(void *privdata), void *privdata)
{
    qs->closing = 1;
    qs->done = done;
    qs->done_arg = privdata;
    bus_group_cancel(&qs->group, NULL);
    for (size_t i = 0; i < qs->conf.nq; i++)
        qs->q[i].poll = qs->q[i].check = NULL;
    queues__events_close(qs); /* saves the positions, closes ebus */
    uv_close((uv_handle_t *)&qs->poll_timer, on_handle_closed);
    uv_close((uv_handle_t *)&qs->tick_timer, on_handle_closed);
    uv_close((uv_handle_t *)&qs->flush_check, on_handle_closed);
}
