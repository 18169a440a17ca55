/*
 * queues/events.c: job events to the users they concern (SPEC §12,
 * docs/queues.md).
 *
 * Sources, all on the module's own connection (`ebus`):
 *  - BullMQ: its events stream `<prefix>:<name>:events`;
 *  - a Streams queue: the stream itself (entries with a user are tracked)
 *    and its dead-letter stream (failed);
 *    read together by one `XREAD BLOCK`, from positions saved in Redis
 *    (`coordhub:queues:cursor:<host:port>`), so a restarted hub neither
 *    repeats nor skips what its stream still holds;
 *  - Bull v3: its global event channels, on the connection's subscriber.
 *
 * A Bull or BullMQ event names a job; its user is read once, by a script
 * that returns the jobs' data of a whole batch (one per loop iteration),
 * and kept in a bounded table until the job ends. Events wait in one queue
 * until their user is known, so they leave in the order they came.
 * A Streams queue's entry becomes `active` once the group has delivered it
 * and `completed` once it is acknowledged without a dead letter: a check
 * script reads both, and an acknowledgement counts only after an XREAD
 * issued later has come back (a worker writes the dead letter first, then
 * acknowledges; that XREAD has seen the dead letter if there is one).
 */
#include "queues_int.h"

#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JOBS_MAX 65536   /* jobs whose user is remembered */
#define TRACKS_MAX 4096  /* per Streams queue */
#define CHECK_MAX 256    /* tracked entries per check */
#define XREAD_COUNT "512"
#define XREAD_BLOCK_MS "1000" /* under the bus's 3 s keepalive bound */
#define CURSOR_TTL_MS "86400000"
#define DATA_MAX 1048576 /* a job's data read for its user, at most */
#define RESULT_MAX 4096

struct job_entry {
    util_hnode_t node;
    char *key; /* "<queue index>:<job id>" */
    char *user; /* NULL: not routed */
    char *name;
    int known;           /* its lookup has answered */
    uint64_t seq;        /* the lookup batch that reads it */
    job_entry_t *older, *newer;
    uint64_t last_progress;
    int progressed;
    char *owed; /* a trailing progress (JSON text) */
    job_entry_t *owed_next;
    int on_owed;
    queue_t *q;
};

struct track {
    char id[48];
    char *user;
    char *name;
    int active_sent;
    uint64_t acked_after; /* 0, or: completed once XREAD number > this is back */
};

typedef struct job_ev {
    struct job_ev *next;
    queue_t *q;
    char *id;
    int state;
    char *extra; /* progress, result: JSON text; reason: raw text */
    size_t elen;
    int table;         /* Bull, BullMQ: its user is in the table of jobs */
    char *user, *name; /* otherwise: they came with it */
} job_ev_t;

typedef struct lookup {
    queues_t *qs;
    uint64_t seq;
    char **keys; /* the table's keys of the jobs read */
    size_t n, cap;
} lookup_t;

/* KEYS: job hashes. Per job: its data (false when gone, or over ARGV[1]
 * bytes), its name, a status: 0 read, 1 gone, 2 not a hash, 3 too large. */
static const char LOOKUP_LUA[] =
    "local out = {}\n"
    "for i, k in ipairs(KEYS) do\n"
    "  local ok, f = pcall(redis.call, 'HMGET', k, 'data', 'name')\n"
    "  local st, d, n = 0, false, false\n"
    "  if not ok then st = 2\n"
    "  elseif not f[1] then st = 1\n"
    "  elseif #f[1] > tonumber(ARGV[1]) then st = 3\n"
    "  else d, n = f[1], f[2] or false end\n"
    "  out[#out + 1] = d; out[#out + 1] = n; out[#out + 1] = st\n"
    "end\n"
    "return out\n";

/* KEYS: the positions' hash, then the streams. Per stream: the saved
 * position (when it is an ID), else the stream's last ID, else "0-0" (read it from its first
 * entry when it appears). */
static const char CURSOR_LUA[] =
    "local out = {}\n"
    "for i = 2, #KEYS do\n"
    "  local ok, c = pcall(redis.call, 'HGET', KEYS[1], KEYS[i])\n"
    "  if ok and c and not string.match(c, '^%d+%-%d+$') then c = nil end\n"
    "  if not ok or not c then\n"
    "    c = '0-0'\n"
    "    if redis.call('TYPE', KEYS[i])['ok'] == 'stream' then\n"
    "      local x = redis.call('XINFO', 'STREAM', KEYS[i])\n"
    "      for j = 1, #x, 2 do if x[j] == 'last-generated-id' then c = x[j + 1] end end\n"
    "    end\n"
    "  end\n"
    "  out[#out + 1] = c\n"
    "end\n"
    "return out\n";

/* KEYS: the stream. ARGV: the group, then entry IDs. Per ID: 0 not yet
 * delivered, 1 pending, 2 acknowledged. */
static const char CHECK_LUA[] =
    "local function cmp(a, b)\n"
    "  local am, as = string.match(a, '^(%d+)-(%d+)$')\n"
    "  local bm, bs = string.match(b, '^(%d+)-(%d+)$')\n"
    "  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)\n"
    "  if am ~= bm then return am < bm and -1 or 1 end\n"
    "  if as == bs then return 0 end\n"
    "  return as < bs and -1 or 1\n"
    "end\n"
    "local last\n"
    "for _, e in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do\n"
    "  local f = {}\n"
    "  for i = 1, #e, 2 do f[e[i]] = e[i + 1] end\n"
    "  if f['name'] == ARGV[1] then last = f['last-delivered-id'] end\n"
    "end\n"
    "if not last then return redis.error_reply('NOGROUP no such consumer group') end\n"
    "local out = {}\n"
    "for i = 2, #ARGV do\n"
    "  if cmp(ARGV[i], last) > 0 then out[#out + 1] = 0\n"
    "  else\n"
    "    local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)\n"
    "    out[#out + 1] = #p > 0 and 1 or 2\n"
    "  end\n"
    "end\n"
    "return out\n";

static bus_script_t lookup_script = {LOOKUP_LUA, "", 0};
static bus_script_t cursor_script = {CURSOR_LUA, "", 0};
static bus_script_t check_script = {CHECK_LUA, "", 0};

/* ---- the streams XREAD reads ---- */

enum xrole { XR_BULLMQ, XR_STREAM, XR_DEAD };

typedef struct xsrc {
    queue_t *q;
    enum xrole role;
    const char *key;
    char *cursor; /* q->cursor or q->dcursor */
} xsrc_t;

static size_t
xsources(queues_t *qs, xsrc_t *out)
{
    size_t n = 0;
    for (size_t i = 0; i < qs->conf.nq; i++) {
        queue_t *q = &qs->q[i];
        if (q->spec->kind == QUEUE_BULLMQ && !q->bad[0]) {
            if (out)
                out[n] = (xsrc_t){q, XR_BULLMQ, q->events_key, q->cursor};
            n++;
        } else if (q->spec->kind == QUEUE_STREAM) {
            if (!q->bad[0]) {
                if (out)
                    out[n] = (xsrc_t){q, XR_STREAM, q->spec->label, q->cursor};
                n++;
            }
            if (q->spec->dead && !q->bad[1]) {
                if (out)
                    out[n] = (xsrc_t){q, XR_DEAD, q->spec->dead, q->dcursor};
                n++;
            }
        }
    }
    return n;
}

/* ---- the table of jobs ---- */

static void
entry_unowe(queues_t *qs, job_entry_t *e)
{
    if (!e->on_owed)
        return;
    for (job_entry_t **p = &qs->owed; *p; p = &(*p)->owed_next)
        if (*p == e) {
            *p = e->owed_next;
            break;
        }
    e->on_owed = 0;
}

static void
entry_free(queues_t *qs, job_entry_t *e)
{
    entry_unowe(qs, e);
    util_htable_remove(&qs->jobs, &e->node);
    if (e->older)
        e->older->newer = e->newer;
    else
        qs->jobs_head = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        qs->jobs_tail = e->older;
    qs->njobs--;
    free(e->key);
    free(e->user);
    free(e->name);
    free(e->owed);
    free(e);
}

static job_entry_t *
entry_find(queues_t *qs, const char *key, size_t len)
{
    util_hnode_t *n = util_htable_find(&qs->jobs, key, len);
    return n ? UTIL_CONTAINER_OF(n, job_entry_t, node) : NULL;
}

static void
lookup_free(void *p)
{
    lookup_t *l = p;
    for (size_t i = 0; i < l->n; i++)
        free(l->keys[i]);
    free(l->keys);
    free(l);
}

static void on_flush_check(uv_check_t *h);

/* A new entry whose user the open batch will read. */
static job_entry_t *
entry_new(queues_t *qs, queue_t *q, const char *key, size_t len)
{
    job_entry_t *e;
    lookup_t *l = qs->lookup_open;

    /* the bound: forget the oldest jobs whose user is known */
    while (qs->njobs >= JOBS_MAX && qs->jobs_head && qs->jobs_head->known)
        entry_free(qs, qs->jobs_head);
    e = util_calloc(1, sizeof *e);
    e->key = util_strndup(key, len);
    e->q = q;
    util_htable_insert(&qs->jobs, &e->node, e->key, len);
    e->older = qs->jobs_tail;
    if (qs->jobs_tail)
        qs->jobs_tail->newer = e;
    else
        qs->jobs_head = e;
    qs->jobs_tail = e;
    qs->njobs++;
    if (l == NULL) {
        l = qs->lookup_open = util_calloc(1, sizeof *l);
        l->qs = qs;
        l->seq = qs->lookup_sent + 1;
        uv_check_start(&qs->flush_check, on_flush_check);
    }
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->keys = util_realloc(l->keys, l->cap * sizeof *l->keys);
    }
    l->keys[l->n++] = util_strndup(key, len);
    e->seq = l->seq;
    return e;
}

/* ---- sending ---- */

static void
send_job(queues_t *qs, queue_t *q, const char *user, const char *id, const char *name, int state,
         const char *extra, size_t elen)
{
    static const char *const states[4] = {"active", "progress", "completed", "failed"};
    char room[WIRE_ROOM_MAX + 1];
    json_t *o;
    char *s;
    int n = snprintf(room, sizeof room, "user:%s", user);

    if (n < 0 || (size_t)n >= sizeof room)
        return;
    o = json_pack("{s:s,s:s,s:s}", "queue", q->spec->label, "id", id, "state", states[state]);
    json_object_set_new(o, "name", name ? json_string(name) : json_null());
    if (extra != NULL && state != JOB_ACTIVE) {
        json_t *v = NULL;
        if (state != JOB_FAILED && elen <= RESULT_MAX)
            v = json_loadb(extra, elen, JSON_DECODE_ANY, NULL);
        if (v == NULL) { /* a reason, or a result too long or not JSON: text, cut */
            size_t cut = elen > RESULT_MAX ? RESULT_MAX : elen;
            char *t = util_malloc(3 * cut + 1); /* each byte that is not UTF-8: 3 (U+FFFD) */
            size_t tl = util_utf8_sanitize(t, extra, cut);
            while (tl > RESULT_MAX || (tl > 0 && ((unsigned char)t[tl] & 0xC0) == 0x80))
                tl--; /* at most 4 KiB, cut between characters */
            v = json_stringn(t, tl);
            free(t);
            if (elen > RESULT_MAX)
                json_object_set_new(o, "truncated", json_true());
        }
        json_object_set_new(o,
                            state == JOB_PROGRESS    ? "progress"
                            : state == JOB_COMPLETED ? "result"
                                                     : "reason",
                            v ? v : json_null());
    }
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s == NULL)
        return;
    q->events[state]++;
    qs->emitted++;
    qs->emit(qs->privdata, room, "job", s, strlen(s));
    free(s);
}

static const char *
job_id_of(const job_entry_t *e)
{
    return strchr(e->key, ':') + 1;
}

/* An event of a job whose user is known: progress through the throttle,
 * an end of the job drops what the throttle holds and forgets the job. */
static void
deliver(queues_t *qs, job_entry_t *e, int state, const char *extra, size_t elen)
{
    uint64_t now = uv_now(qs->loop);

    if (e->user == NULL) {
        e->q->unrouted++;
    } else if (state == JOB_PROGRESS && e->progressed && now - e->last_progress < qs->progress_ms) {
        free(e->owed);
        e->owed = util_strndup(extra ? extra : "null", extra ? elen : 4);
        qs->throttled++;
        if (!e->on_owed) {
            e->on_owed = 1;
            e->owed_next = qs->owed;
            qs->owed = e;
        }
        return;
    } else {
        if (state == JOB_PROGRESS) {
            e->progressed = 1;
            e->last_progress = now;
        }
        if ((state == JOB_COMPLETED || state == JOB_FAILED) && e->owed) {
            qs->throttled++; /* the end supersedes the progress held back */
            free(e->owed);
            e->owed = NULL;
        }
        send_job(qs, e->q, e->user, job_id_of(e), e->name, state, extra, elen);
    }
    if (state == JOB_COMPLETED || state == JOB_FAILED)
        entry_free(qs, e);
}

static void
ev_free(job_ev_t *ev)
{
    free(ev->id);
    free(ev->extra);
    free(ev->user);
    free(ev->name);
    free(ev);
}

/* Sends the waiting events from the head while their user is known. */
static void
flush_events(queues_t *qs)
{
    job_ev_t *ev;

    while ((ev = qs->evq_head) != NULL) {
        if (!ev->table) {
            if (ev->user)
                send_job(qs, ev->q, ev->user, ev->id, ev->name, ev->state, ev->extra, ev->elen);
            else
                ev->q->unrouted++;
        } else {
            char key[QUEUE_NAME_MAX + 32];
            int n = snprintf(key, sizeof key, "%zu:%s", ev->q->idx, ev->id);
            job_entry_t *e = (n > 0 && (size_t)n < sizeof key) ? entry_find(qs, key, (size_t)n)
                                                                : NULL;
            if (e != NULL && e->known)
                deliver(qs, e, ev->state, ev->extra, ev->elen);
            else if (e != NULL && e->seq > qs->lookup_done)
                break; /* its user is on its way */
            /* else forgotten, or its lookup failed: dropped (counted there) */
        }
        qs->evq_head = ev->next;
        if (qs->evq_head == NULL)
            qs->evq_tail = NULL;
        ev_free(ev);
    }
}

static void
enqueue(queues_t *qs, job_ev_t *ev)
{
    ev->next = NULL;
    if (qs->evq_tail)
        qs->evq_tail->next = ev;
    else
        qs->evq_head = ev;
    qs->evq_tail = ev;
}

/* A Bull or BullMQ job's event. */
static void
job_event(queues_t *qs, queue_t *q, const char *id, size_t idlen, int state, const char *extra,
          size_t elen)
{
    char key[QUEUE_NAME_MAX + 32];
    int n;
    job_entry_t *e;
    job_ev_t *ev;

    if (idlen == 0 || idlen > QUEUE_NAME_MAX)
        return;
    n = snprintf(key, sizeof key, "%zu:%.*s", q->idx, (int)idlen, id);
    if (n < 0 || (size_t)n >= sizeof key)
        return;
    e = entry_find(qs, key, (size_t)n);
    if (e == NULL)
        e = entry_new(qs, q, key, (size_t)n);
    ev = util_calloc(1, sizeof *ev);
    ev->q = q;
    ev->id = util_strndup(id, idlen);
    ev->state = state;
    if (extra) {
        ev->extra = util_strndup(extra, elen);
        ev->elen = elen;
    }
    ev->table = 1;
    enqueue(qs, ev);
    flush_events(qs);
}

/* A Streams queue's event, its user known. */
static void
stream_event(queues_t *qs, queue_t *q, const char *id, const char *user, const char *name,
             int state, const char *extra, size_t elen)
{
    job_ev_t *ev = util_calloc(1, sizeof *ev);
    ev->q = q;
    ev->id = util_strdup(id);
    ev->state = state;
    ev->user = user ? util_strdup(user) : NULL;
    ev->name = name ? util_strdup(name) : NULL;
    if (extra) {
        ev->extra = util_strndup(extra, elen);
        ev->elen = elen;
    }
    enqueue(qs, ev);
    flush_events(qs);
}

/* ---- users out of job data ---- */

/* The user id at qs->user_field in `data` (JSON text) into a malloc'd
 * string: 0 found, QS_DATA not JSON, QS_USER present but not a user id,
 * -1 absent. */
static int
user_of(const queues_t *qs, const char *data, size_t len, char **out)
{
    json_t *root = json_loadb(data, len, JSON_DECODE_ANY, NULL), *v = root;
    const char *p = qs->user_field;
    char buf[64];
    int rc = -1;

    *out = NULL;
    if (root == NULL)
        return QS_DATA;
    while (v != NULL && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        char part[128];
        if (n >= sizeof part || !json_is_object(v)) {
            v = NULL;
            break;
        }
        memcpy(part, p, n);
        part[n] = '\0';
        v = json_object_get(v, part);
        p += n + (dot ? 1 : 0);
    }
    if (json_is_string(v)) {
        if (wire_valid_user_id(json_string_value(v), json_string_length(v))) {
            *out = util_strdup(json_string_value(v));
            rc = 0;
        } else {
            rc = QS_USER;
        }
    } else if (json_is_integer(v)) {
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        *out = util_strdup(buf);
        rc = 0;
    } else if (v != NULL && !json_is_null(v)) {
        rc = QS_USER;
    }
    json_decref(root);
    return rc;
}

static void
on_lookup(void *privdata, redisReply *r)
{
    lookup_t *l = privdata;
    queues_t *qs = l->qs;
    int ok = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 3 * l->n;

    if (r != NULL && r->type == REDIS_REPLY_ERROR)
        LOG_WARN("queues", "reading jobs' users failed: %s", r->str);
    for (size_t i = 0; i < l->n; i++) {
        job_entry_t *e = entry_find(qs, l->keys[i], strlen(l->keys[i]));
        const redisReply *d, *nm, *st;
        int rc;
        if (e == NULL || e->known || e->seq != l->seq)
            continue;
        e->known = 1;
        if (!ok)
            continue; /* not routed: Redis went away or failed */
        d = r->element[3 * i];
        nm = r->element[3 * i + 1];
        st = r->element[3 * i + 2];
        if (nm->type == REDIS_REPLY_STRING)
            e->name = util_strndup(nm->str, nm->len);
        if (st->type != REDIS_REPLY_INTEGER || st->integer != 0 || d->type != REDIS_REPLY_STRING) {
            long long why = st->type == REDIS_REPLY_INTEGER ? st->integer : 2;
            queues__skip(qs, e->q, why == 1 ? QS_GONE : why == 3 ? QS_DATA : QS_WRONGTYPE,
                         why == 1   ? "the job was removed before its user was read"
                         : why == 3 ? "the job's data is too large"
                                    : "the job's key is not a hash");
            continue;
        }
        rc = user_of(qs, d->str, d->len, &e->user);
        if (rc == QS_DATA || rc == QS_USER)
            queues__skip(qs, e->q, (enum queue_skip)rc,
                         rc == QS_DATA ? "the job's data is not JSON"
                                       : "the job's user field is not a user id");
    }
    qs->lookup_done = l->seq;
    lookup_free(l);
    flush_events(qs);
}

/* Once per loop iteration while a batch is open: one script for it. */
static void
on_flush_check(uv_check_t *h)
{
    queues_t *qs = h->data;
    lookup_t *l = qs->lookup_open;
    const char **argv;
    size_t *argvlen;
    char max[16];
    int rc;

    uv_check_stop(h);
    if (l == NULL)
        return;
    qs->lookup_open = NULL;
    qs->lookup_sent = l->seq;
    qs->lookups += l->n;
    argv = util_malloc((l->n + 1) * sizeof *argv);
    argvlen = util_malloc((l->n + 1) * sizeof *argvlen);
    for (size_t i = 0; i < l->n; i++) {
        queue_t *q = &qs->q[strtoul(l->keys[i], NULL, 10)];
        const char *id = strchr(l->keys[i], ':') + 1;
        char *k = util_malloc(strlen(q->base) + strlen(id) + 1);
        sprintf(k, "%s%s", q->base, id);
        argv[i] = k;
        argvlen[i] = strlen(k);
    }
    snprintf(max, sizeof max, "%d", DATA_MAX);
    argv[l->n] = max;
    argvlen[l->n] = strlen(max);
    rc = bus_script_request(qs->bus, &qs->lgroup, NULL, &lookup_script, (int)l->n,
                            (int)l->n + 1, argv, argvlen, on_lookup, l);
    for (size_t i = 0; i < l->n; i++)
        free((char *)argv[i]);
    free(argv);
    free(argvlen);
    if (rc != 0)
        on_lookup(l, NULL); /* Redis is down: these jobs are not routed */
}

/* ---- Bull v3: the global event channels ---- */

static void
on_bull_message(void *privdata, const char *pattern, const char *channel, size_t chlen,
                const char *payload, size_t len)
{
    queues_t *qs = privdata;
    (void)pattern;

    if (qs->closing)
        return;
    for (size_t i = 0; i < qs->conf.nq; i++) {
        queue_t *q = &qs->q[i];
        size_t bl;
        const char *ev;
        size_t evl;
        json_t *j, *id;
        if (q->spec->kind != QUEUE_BULL)
            continue;
        bl = strlen(q->base);
        if (chlen <= bl || memcmp(channel, q->base, bl) != 0)
            continue;
        ev = channel + bl;
        evl = chlen - bl;
        if (evl >= 7 && memcmp(ev, "active@", 7) == 0) {
            job_event(qs, q, payload, len, JOB_ACTIVE, NULL, 0);
            return;
        }
        if (!((evl == 8 && memcmp(ev, "progress", 8) == 0) ||
              (evl == 9 && memcmp(ev, "completed", 9) == 0) ||
              (evl == 6 && memcmp(ev, "failed", 6) == 0)))
            continue;
        /* {"jobId":..,"progress":..} or {"jobId":..,"val":..} */
        j = json_loadb(payload, len, 0, NULL);
        id = j ? json_object_get(j, "jobId") : NULL;
        if (json_is_string(id) || json_is_integer(id)) {
            char idbuf[32];
            const char *ids = idbuf;
            size_t idl;
            json_t *val = json_object_get(j, evl == 8 ? "progress" : "val");
            char *extra = NULL;
            int state = evl == 8 ? JOB_PROGRESS : evl == 9 ? JOB_COMPLETED : JOB_FAILED;
            if (json_is_string(id)) {
                ids = json_string_value(id);
                idl = json_string_length(id);
            } else {
                idl = (size_t)snprintf(idbuf, sizeof idbuf, "%" JSON_INTEGER_FORMAT,
                                       json_integer_value(id));
            }
            if (state == JOB_PROGRESS)
                extra = val ? json_dumps(val, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
            else if (json_is_string(val)) /* the result's JSON, or the reason */
                extra = util_strndup(json_string_value(val), json_string_length(val));
            job_event(qs, q, ids, idl, state, extra, extra ? strlen(extra) : 0);
            free(extra);
        }
        json_decref(j);
        return;
    }
}

/* ---- XREAD ---- */

static const redisReply *
field(const redisReply *fv, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i + 1 < fv->elements; i += 2) {
        const redisReply *k = fv->element[i];
        if (k->type == REDIS_REPLY_STRING && k->len == n && memcmp(k->str, name, n) == 0 &&
            fv->element[i + 1]->type == REDIS_REPLY_STRING)
            return fv->element[i + 1];
    }
    return NULL;
}

static void
bullmq_entry(queues_t *qs, queue_t *q, const redisReply *fv)
{
    const redisReply *ev = field(fv, "event"), *id = field(fv, "jobId"), *x = NULL;
    int state;

    if (ev == NULL || id == NULL)
        return;
    if (strcmp(ev->str, "active") == 0)
        state = JOB_ACTIVE;
    else if (strcmp(ev->str, "progress") == 0)
        state = JOB_PROGRESS, x = field(fv, "data");
    else if (strcmp(ev->str, "completed") == 0)
        state = JOB_COMPLETED, x = field(fv, "returnvalue");
    else if (strcmp(ev->str, "failed") == 0)
        state = JOB_FAILED, x = field(fv, "failedReason");
    else
        return;
    job_event(qs, q, id->str, id->len, state, x ? x->str : NULL, x ? x->len : 0);
}

/* A Streams entry's user: the field itself (its first path segment), else
 * the path inside a `data` field holding JSON. */
static int
entry_user(queues_t *qs, const redisReply *fv, char **user)
{
    char first[128];
    const char *dot = strchr(qs->user_field, '.');
    size_t n = dot ? (size_t)(dot - qs->user_field) : strlen(qs->user_field);
    const redisReply *f, *data;

    *user = NULL;
    if (!dot && n < sizeof first) {
        memcpy(first, qs->user_field, n);
        first[n] = '\0';
        f = field(fv, first);
        if (f != NULL) {
            if (!wire_valid_user_id(f->str, f->len))
                return QS_USER;
            *user = util_strndup(f->str, f->len);
            return 0;
        }
    }
    data = field(fv, "data");
    return data ? user_of(qs, data->str, data->len, user) : -1;
}

static track_t *
track_find(queue_t *q, const char *id)
{
    for (size_t i = 0; i < q->ntracks; i++)
        if (strcmp(q->tracks[i].id, id) == 0)
            return &q->tracks[i];
    return NULL;
}

static void
track_drop(queue_t *q, track_t *t)
{
    free(t->user);
    free(t->name);
    *t = q->tracks[--q->ntracks];
}

static void
stream_entry(queues_t *qs, queue_t *q, const redisReply *id, const redisReply *fv)
{
    char *user;
    int rc = entry_user(qs, fv, &user);
    const redisReply *nm = field(fv, "name");
    track_t *t;

    if (rc > 0)
        queues__skip(qs, q, (enum queue_skip)rc,
                     rc == QS_DATA ? "an entry's data is not JSON"
                                   : "an entry's user field is not a user id");
    if (user == NULL) {
        if (rc < 0)
            q->unrouted++;
        return;
    }
    if (id->len >= sizeof t->id) {
        free(user);
        return;
    }
    if (q->ntracks == TRACKS_MAX) /* the oldest is forgotten */
        track_drop(q, &q->tracks[0]);
    if (q->ntracks % 64 == 0)
        q->tracks = util_realloc(q->tracks, (q->ntracks + 64) * sizeof *q->tracks);
    t = &q->tracks[q->ntracks++];
    memset(t, 0, sizeof *t);
    memcpy(t->id, id->str, id->len);
    t->user = user;
    t->name = nm ? util_strndup(nm->str, nm->len) : NULL;
}

static void
dead_entry(queues_t *qs, queue_t *q, const redisReply *id, const redisReply *fv)
{
    static const char *const idf[] = {"id", "jobId", "originalId"};
    static const char *const rf[] = {"reason", "error", "failedReason"};
    const redisReply *orig = NULL, *reason = NULL, *nm = field(fv, "name");
    char oid[48], *user = NULL;
    track_t *t;

    for (int i = 0; i < 3 && orig == NULL; i++)
        orig = field(fv, idf[i]);
    for (int i = 0; i < 3 && reason == NULL; i++)
        reason = field(fv, rf[i]);
    if (orig == NULL)
        orig = id;
    snprintf(oid, sizeof oid, "%.*s", (int)(orig->len < 47 ? orig->len : 47), orig->str);
    char *name;

    t = track_find(q, oid);
    if (entry_user(qs, fv, &user) != 0 && t != NULL && t->user)
        user = util_strdup(t->user);
    name = nm ? util_strndup(nm->str, nm->len) : t && t->name ? util_strdup(t->name) : NULL;
    stream_event(qs, q, oid, user, name, JOB_FAILED, reason ? reason->str : NULL,
                 reason ? reason->len : 0);
    free(user);
    free(name);
    if (t != NULL)
        track_drop(q, t);
}

static void xread_send(queues_t *qs);
static void find_bad(queues_t *qs);

/* The lengths of argv[0..n) (C strings), malloc'd. */
static size_t *
lens(const char **argv, size_t n)
{
    size_t *l = util_malloc((n ? n : 1) * sizeof *l);
    for (size_t i = 0; i < n; i++)
        l[i] = strlen(argv[i]);
    return l;
}

static void
save_cursors(queues_t *qs)
{
    size_t n = xsources(qs, NULL);
    const char **argv = util_malloc((2 + 2 * n) * sizeof *argv);
    int argc = 0;
    xsrc_t *src = util_malloc((n ? n : 1) * sizeof *src);

    xsources(qs, src);
    argv[argc++] = "HSET";
    argv[argc++] = qs->cursor_key;
    for (size_t i = 0; i < n; i++)
        if (src[i].cursor[0]) {
            argv[argc++] = src[i].key;
            argv[argc++] = src[i].cursor;
        }
    size_t *l = lens(argv, (size_t)argc);
    if (argc > 2 && bus_command_argv(qs->bus, NULL, NULL, argc, argv, l) == 0) {
        bus_command(qs->bus, NULL, NULL, "PEXPIRE %s " CURSOR_TTL_MS, qs->cursor_key);
        qs->cursor_saves++;
    }
    free(l);
    free(argv);
    free(src);
}

static void
complete_acked(queues_t *qs)
{
    for (size_t i = 0; i < qs->conf.nq; i++) {
        queue_t *q = &qs->q[i];
        for (size_t k = 0; k < q->ntracks;) {
            track_t *t = &q->tracks[k];
            if (t->acked_after != 0 && qs->xread_seq > t->acked_after) {
                stream_event(qs, q, t->id, t->user, t->name, JOB_COMPLETED, NULL, 0);
                track_drop(q, t);
            } else {
                k++;
            }
        }
    }
}

/* Every key XREAD reads, with the TYPE of each: those that are neither a
 * stream nor missing. */
static const char TYPES_LUA[] =
    "local out = {}\n"
    "for i, k in ipairs(KEYS) do out[i] = redis.call('TYPE', k)['ok'] end\n"
    "return out\n";
static bus_script_t types_script = {TYPES_LUA, "", 0};

static void
on_types(void *privdata, redisReply *r)
{
    queues_t *qs = privdata;
    size_t n = xsources(qs, NULL);
    xsrc_t *src;

    int found = 0;

    qs->types = NULL;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != n)
        return; /* tried again at the next poll */
    src = util_malloc((n ? n : 1) * sizeof *src);
    xsources(qs, src);
    for (size_t i = 0; i < n; i++) {
        const redisReply *t = r->element[i];
        if (t->type == REDIS_REPLY_STATUS || t->type == REDIS_REPLY_STRING) {
            if (strcmp(t->str, "stream") != 0 && strcmp(t->str, "none") != 0) {
                found = 1;
                queue_t *q = src[i].q;
                int which = src[i].role == XR_DEAD;
                q->bad[which] = 1;
                q->skips[QS_WRONGTYPE]++;
                if (!q->bad_logged[which]) /* once, until it is a stream again */
                    LOG_WARN("queues", "queue %s: %s is a %s, not a stream: its job events are "
                             "not read", q->spec->label, src[i].key, t->str);
                q->bad_logged[which] = 1;
            }
        }
    }
    free(src);
    /* no key to leave out: the XREAD failed for another reason (a position
     * Redis refuses, an ACL); the tick tries again in a second, not at once */
    if (!found)
        qs->xread_after = uv_now(qs->loop) + 1000;
    xread_send(qs);
}

static void
find_bad(queues_t *qs)
{
    size_t n = xsources(qs, NULL);
    const char **argv = util_malloc((n ? n : 1) * sizeof *argv);
    xsrc_t *src = util_malloc((n ? n : 1) * sizeof *src);
    size_t *l;

    xsources(qs, src);
    for (size_t i = 0; i < n; i++)
        argv[i] = src[i].key;
    l = lens(argv, n);
    if (n > 0)
        bus_script_request(qs->ebus, &qs->egroup, &qs->types, &types_script, (int)n, (int)n,
                           argv, l, on_types, qs);
    free(l);
    free(src);
    free(argv);
}

static void
on_xread(void *privdata, redisReply *r)
{
    queues_t *qs = privdata;
    size_t n = xsources(qs, NULL);
    xsrc_t *src;
    int advanced = 0;

    qs->xread = NULL;
    if (r == NULL || qs->closing)
        return; /* the connection went away: started again when it is back */
    if (r->type == REDIS_REPLY_ERROR) {
        /* a key that is not a stream fails the whole XREAD: find it, leave
         * it out until the next poll, read the others */
        unsigned k = util_ratelog_allow(&qs->xread_log, uv_now(qs->loop), 1);
        if (k)
            LOG_WARN("queues", "reading job events failed: %s (%u since last report)", r->str, k);
        qs->xread_seq++;
        find_bad(qs);
        return;
    }
    src = util_malloc((n ? n : 1) * sizeof *src);
    xsources(qs, src);
    if (r->type == REDIS_REPLY_ARRAY) {
        for (size_t s = 0; s < r->elements; s++) {
            const redisReply *kv = r->element[s], *entries;
            xsrc_t *x = NULL;
            if (kv->type != REDIS_REPLY_ARRAY || kv->elements != 2 ||
                kv->element[0]->type != REDIS_REPLY_STRING ||
                kv->element[1]->type != REDIS_REPLY_ARRAY)
                continue;
            for (size_t i = 0; i < n && x == NULL; i++)
                if (strlen(src[i].key) == kv->element[0]->len &&
                    memcmp(src[i].key, kv->element[0]->str, kv->element[0]->len) == 0)
                    x = &src[i];
            if (x == NULL)
                continue;
            entries = kv->element[1];
            for (size_t e = 0; e < entries->elements; e++) {
                const redisReply *ent = entries->element[e], *id, *fv;
                if (ent->type != REDIS_REPLY_ARRAY || ent->elements != 2)
                    continue;
                id = ent->element[0];
                fv = ent->element[1];
                if (id->type != REDIS_REPLY_STRING || id->len >= sizeof x->q->cursor)
                    continue;
                memcpy(x->cursor, id->str, id->len);
                x->cursor[id->len] = '\0';
                advanced = 1;
                if (fv->type != REDIS_REPLY_ARRAY)
                    continue;
                if (x->role == XR_BULLMQ)
                    bullmq_entry(qs, x->q, fv);
                else if (x->role == XR_STREAM)
                    stream_entry(qs, x->q, id, fv);
                else
                    dead_entry(qs, x->q, id, fv);
            }
        }
    }
    free(src);
    qs->xread_seq++;
    complete_acked(qs);
    if (advanced)
        save_cursors(qs);
    xread_send(qs);
}

static void
xread_send(queues_t *qs)
{
    size_t n = xsources(qs, NULL);
    const char **argv;
    xsrc_t *src;
    int argc = 0;

    if (n == 0 || qs->closing || !qs->cursors_known || qs->xread || qs->types ||
        uv_now(qs->loop) < qs->xread_after || !bus_ready(qs->ebus))
        return;
    argv = util_malloc((6 + 2 * n) * sizeof *argv);
    src = util_malloc(n * sizeof *src);
    xsources(qs, src);
    argv[argc++] = "XREAD";
    argv[argc++] = "COUNT";
    argv[argc++] = XREAD_COUNT;
    argv[argc++] = "BLOCK";
    argv[argc++] = XREAD_BLOCK_MS;
    argv[argc++] = "STREAMS";
    for (size_t i = 0; i < n; i++)
        argv[argc++] = src[i].key;
    for (size_t i = 0; i < n; i++)
        argv[argc++] = src[i].cursor;
    size_t *l = lens(argv, (size_t)argc);
    bus_request_argv(qs->ebus, &qs->egroup, &qs->xread, on_xread, qs, argc, argv, l);
    free(l);
    free(argv);
    free(src);
}

static void
on_cursors(void *privdata, redisReply *r)
{
    queues_t *qs = privdata;
    size_t n = xsources(qs, NULL);
    xsrc_t *src;

    qs->cursor_load = NULL;
    if (r == NULL)
        return;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
        LOG_WARN("queues", "reading the streams' positions failed: %s",
                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected answer");
        return; /* tried again at the next poll */
    }
    src = util_malloc((n ? n : 1) * sizeof *src);
    xsources(qs, src);
    for (size_t i = 0; i < n; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING && r->element[i]->len < 48)
            snprintf(src[i].cursor, 48, "%s", r->element[i]->str);
        else
            snprintf(src[i].cursor, 48, "0-0");
    free(src);
    qs->cursors_known = 1;
    LOG_INFO("queues", "reading job events of %zu streams", n);
    xread_send(qs);
}

static void
load_cursors(queues_t *qs)
{
    size_t n = xsources(qs, NULL);
    const char **argv;
    xsrc_t *src;

    if (n == 0 || qs->cursors_known || qs->cursor_load || !bus_ready(qs->ebus))
        return;
    argv = util_malloc((n + 1) * sizeof *argv);
    src = util_malloc(n * sizeof *src);
    xsources(qs, src);
    argv[0] = qs->cursor_key;
    for (size_t i = 0; i < n; i++)
        argv[i + 1] = src[i].key;
    size_t *l = lens(argv, n + 1);
    bus_script_request(qs->ebus, &qs->egroup, &qs->cursor_load, &cursor_script, (int)n + 1,
                       (int)n + 1, argv, l, on_cursors, qs);
    free(l);
    free(argv);
    free(src);
}

static void
on_ebus_state(void *privdata, int ready, int ever_ready, const char *error)
{
    queues_t *qs = privdata;
    (void)ever_ready;
    if (!ready) {
        if (error)
            LOG_DEBUG("queues", "job events' connection down: %s", error);
        return;
    }
    load_cursors(qs);
    xread_send(qs);
}

/* ---- Streams queues: what the group has done with tracked entries ---- */

typedef struct check {
    queue_t *q;
    size_t n;
    char (*ids)[48];
} check_t;

static void
on_check(void *privdata, redisReply *r)
{
    check_t *c = privdata;
    queue_t *q = c->q;
    queues_t *qs = q->owner;

    q->check = NULL;
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == c->n) {
        for (size_t i = 0; i < c->n; i++) {
            track_t *t = track_find(q, c->ids[i]);
            long long v = r->element[i]->type == REDIS_REPLY_INTEGER ? r->element[i]->integer : 0;
            if (t == NULL)
                continue; /* dead-lettered meanwhile */
            if (v >= 1 && !t->active_sent) {
                t->active_sent = 1;
                stream_event(qs, q, t->id, t->user, t->name, JOB_ACTIVE, NULL, 0);
            }
            if (v == 2 && t->acked_after == 0)
                t->acked_after = qs->xread_seq + (qs->xread ? 1 : 0);
        }
    } else if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        queues__skip(qs, q, QS_GROUP, r->str);
    }
    free(c->ids);
    free(c);
}

static void
check_release(void *privdata)
{
    check_t *c = privdata;
    c->q->check = NULL;
    free(c->ids);
    free(c);
}

static void
check_streams(queues_t *qs)
{
    for (size_t i = 0; i < qs->conf.nq; i++) {
        queue_t *q = &qs->q[i];
        check_t *c;
        const char **argv;
        size_t n = 0, *l;
        if (q->spec->kind != QUEUE_STREAM || q->check || q->ntracks == 0)
            continue;
        c = util_calloc(1, sizeof *c);
        c->q = q;
        c->ids = util_malloc(CHECK_MAX * sizeof *c->ids);
        argv = util_malloc((CHECK_MAX + 2) * sizeof *argv);
        argv[0] = q->spec->label;
        argv[1] = q->spec->group;
        for (size_t k = 0; k < q->ntracks && n < CHECK_MAX; k++)
            if (q->tracks[k].acked_after == 0) {
                memcpy(c->ids[n], q->tracks[k].id, 48);
                argv[2 + n] = c->ids[n];
                n++;
            }
        c->n = n;
        l = lens(argv, n + 2);
        if (n == 0 || bus_script_request(qs->bus, &qs->cgroup, &q->check, &check_script, 1,
                                         (int)n + 2, argv, l, on_check, c) != 0) {
            free(c->ids);
            free(c);
        }
        free(l);
        free(argv);
    }
}

/* ---- the tick (every 100 ms) ---- */

void
queues__events_tick(queues_t *qs)
{
    uint64_t now = uv_now(qs->loop);
    job_entry_t **p = &qs->owed;

    while (*p) { /* trailing progress whose second is over */
        job_entry_t *e = *p;
        if (now - e->last_progress >= qs->progress_ms) {
            char *owed = e->owed;
            *p = e->owed_next;
            e->on_owed = 0;
            e->owed = NULL;
            e->last_progress = now;
            send_job(qs, e->q, e->user, job_id_of(e), e->name, JOB_PROGRESS, owed,
                     strlen(owed));
            free(owed);
        } else {
            p = &e->owed_next;
        }
    }
    check_streams(qs);
    if (qs->ebus && bus_ready(qs->ebus)) {
        load_cursors(qs);
        xread_send(qs);
    }
}

/* After each poll: keys left out for not being streams are tried again
 * (the XREAD in flight does not read them; the next one will). */
void
queues__events_retry(queues_t *qs)
{
    if (qs->types != NULL)
        return;
    for (size_t i = 0; i < qs->conf.nq; i++)
        qs->q[i].bad[0] = qs->q[i].bad[1] = 0;
}

/* ---- life ---- */

static char *
glob_escape(const char *s)
{
    char *out = util_malloc(2 * strlen(s) + 1), *o = out;
    for (; *s; s++) {
        if (strchr("*?[]\\", *s))
            *o++ = '\\';
        *o++ = *s;
    }
    *o = '\0';
    return out;
}

int
queues__events_new(queues_t *qs, const char *redis_url, const char **err)
{
    size_t nch = 0, npat = 0, nstreams = 0;
    char **ch, **pat;
    bus_options_t o = {0};
    int rc;

    for (size_t i = 0; i < qs->conf.nq; i++) {
        queue_t *q = &qs->q[i];
        if (q->spec->kind == QUEUE_BULL) {
            nch += 3;
            npat++;
        } else {
            nstreams++;
            if (q->spec->kind == QUEUE_BULLMQ) {
                q->events_key = util_malloc(strlen(q->base) + 8);
                sprintf(q->events_key, "%sevents", q->base);
            }
        }
    }
    if (nch == 0 && nstreams == 0)
        return 0;
    ch = util_calloc(nch + 1, sizeof *ch);
    pat = util_calloc(npat + 1, sizeof *pat);
    nch = npat = 0;
    for (size_t i = 0; i < qs->conf.nq; i++) {
        queue_t *q = &qs->q[i];
        static const char *const sfx[3] = {"progress", "completed", "failed"};
        char *esc;
        if (q->spec->kind != QUEUE_BULL)
            continue;
        for (int k = 0; k < 3; k++) {
            ch[nch] = util_malloc(strlen(q->base) + 12);
            sprintf(ch[nch++], "%s%s", q->base, sfx[k]);
        }
        esc = glob_escape(q->base);
        pat[npat] = util_malloc(strlen(esc) + 10);
        sprintf(pat[npat++], "%sactive@*", esc);
        free(esc);
    }
    o.url = redis_url;
    o.channels = (const char *const *)ch;
    o.nchannels = nch;
    o.patterns = (const char *const *)pat;
    o.npatterns = npat;
    o.on_message = on_bull_message;
    o.on_state = on_ebus_state;
    o.privdata = qs;
    rc = bus_new(qs->loop, &o, &qs->ebus, err);
    for (size_t i = 0; i < nch; i++)
        free(ch[i]);
    for (size_t i = 0; i < npat; i++)
        free(pat[i]);
    free(ch);
    free(pat);
    return rc;
}

void
queues__events_start(queues_t *qs)
{
    if (qs->ebus)
        bus_start(qs->ebus);
}


static void
on_ebus_closed(void *privdata)
{
    queues_t *qs = privdata;
    qs->ebus = NULL;
    queues__maybe_free(qs);
}

void
queues__events_close(queues_t *qs)
{
    bus_group_cancel(&qs->lgroup, lookup_free);
    bus_group_cancel(&qs->cgroup, check_release);
    bus_group_cancel(&qs->egroup, NULL);
    qs->xread = qs->cursor_load = qs->types = NULL;
    if (qs->cursors_known)
        save_cursors(qs);
    if (qs->ebus)
        bus_close(qs->ebus, on_ebus_closed, qs);
}

void
queues__events_free(queues_t *qs)
{
    while (qs->evq_head) {
        job_ev_t *ev = qs->evq_head;
        qs->evq_head = ev->next;
        ev_free(ev);
    }
    qs->evq_tail = NULL;
    if (qs->lookup_open)
        lookup_free(qs->lookup_open);
    qs->lookup_open = NULL;
    while (qs->jobs_head)
        entry_free(qs, qs->jobs_head);
    util_htable_free(&qs->jobs);
    for (size_t i = 0; i < qs->conf.nq; i++) {
        queue_t *q = &qs->q[i];
        while (q->ntracks)
            track_drop(q, &q->tracks[0]);
        free(q->tracks);
        free(q->events_key);
    }
}
