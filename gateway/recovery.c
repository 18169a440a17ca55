/*
 * gateway/recovery.c: recovery of missed events (SPEC §9). The design, its
 * failure cases and its costs are docs/recovery.md; in short:
 *
 * - position: every hub counts the messages of the gateway's channels since
 *   the last anchor (a message on UTIL_CHANNEL_REC_ANCHOR), so every hub
 *   gives a message the same offset "<anchor>-<count>";
 * - history: each synced hub writes each event into its room's stream with
 *   the position as entry ID, batched (one EVAL per 5 ms at most); the
 *   first write of an entry wins, the others are refused by Redis;
 * - recovery: the client's rooms are joined and its output held, the batch
 *   is flushed, one script checks the chain of segments, the epoch, the
 *   window and the bound and reads (offset, now]; its answer goes in front
 *   of the live events held meanwhile.
 */
#include "recovery.h"

#include "writer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_HISTORY "coordhub:rec:h:"
#define KEY_ANCHOR "coordhub:rec:anchor"
#define KEY_EPOCH "coordhub:rec:epoch"
#define KEY_SEGS "coordhub:rec:segs"
#define KEY_BROKEN "coordhub:rec:broken"
#define KEY_SIO "coordhub:rec:sio:"
#define ROOM_EVERYONE "*" /* itemReserved's history: reserve-items goes to everyone */
/* A batch waits this long (or for BATCH_*) before its EVAL: one write to
 * Redis per period rather than per loop iteration, and small enough that
 * Redis, which runs the script in one go, never holds up pub/sub for long.
 * Nothing depends on it but the hub's own recoveries and segment records,
 * which flush first. */
#define FLUSH_MS 5
#define BATCH_ENTRIES 64
#define BATCH_BYTES (512 * 1024)
#define ROOMS_MAX 16      /* rooms one recovery reads (the own room, ?rooms=, "*") */
/* history keys measured per anchor period: MEMORY USAGE is about 1 µs a
 * key, and Redis runs the script in one go */
#define SCAN_COUNT "100"

/* KEYS: the broken segments, then the streams. ARGV: window, the stream
 * length (the bound + 1: at least that many are kept, `~` trimming whole
 * nodes only), then (id, event, data) per entry. An entry
 * another hub wrote first is refused (its ID is not above the stream's
 * last; that hub set the expiry) and counted in the answer. One refused
 * but absent was overtaken by a later segment's entry (a hub that lagged
 * behind one that synced since): history lacks it, so its segment is
 * marked broken and no recovery crosses it. */
static const char WRITE_LUA[] =
    "local w, len, refused = ARGV[1], ARGV[2], 0\n"
    "for i = 2, #KEYS do\n"
    "  local j = 3 + (i - 2) * 3\n"
    "  local id = ARGV[j]\n"
    "  local r\n"
    "  if ARGV[j + 2] == '' then\n"
    "    r = redis.pcall('XADD', KEYS[i], 'MAXLEN', '~', len, id, 'e', ARGV[j + 1])\n"
    "  else\n"
    "    r = redis.pcall('XADD', KEYS[i], 'MAXLEN', '~', len, id, 'e', ARGV[j + 1], 'd', ARGV[j + "
    "2])\n"
    "  end\n"
    "  if type(r) == 'table' and r.err then\n"
    "    refused = refused + 1\n"
    "    if redis.call('TYPE', KEYS[i]).ok ~= 'stream' or\n"
    "       #redis.call('XRANGE', KEYS[i], id, id) == 0 then\n"
    "      local a = string.match(id, '^(%d+)-')\n"
    "      redis.call('ZADD', KEYS[1], a, a)\n"
    "      redis.call('PEXPIRE', KEYS[1], 2 * tonumber(w))\n"
    "    end\n"
    "  else\n"
    "    redis.call('PEXPIRE', KEYS[i], w)\n"
    "  end\n"
    "end\n"
    "return refused\n";

/* KEYS: anchor, epoch, segs, broken. ARGV: a new epoch (used when there is none),
 * the minimum interval (ms), the window (ms), force (1: whatever the
 * interval), the channel. Publishes "<anchor> <epoch>" and returns the
 * anchor, or 0 when the last one is recent enough. */
static const char ANCHOR_LUA[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local last = tonumber(redis.call('GET', KEYS[1]) or '0') or 0\n"
    "if ARGV[4] ~= '1' and now - last < tonumber(ARGV[2]) then return 0 end\n"
    "local e = redis.call('GET', KEYS[2])\n"
    "if not e then e = ARGV[1]; redis.call('SET', KEYS[2], e) end\n"
    "local a = math.max(last + 1, now)\n"
    "local as = string.format('%.0f', a)\n"
    "redis.call('SET', KEYS[1], as)\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', string.format('(%.0f', now - 2 * "
    "tonumber(ARGV[3])))\n"
    "redis.call('PEXPIRE', KEYS[3], 2 * tonumber(ARGV[3]))\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', string.format('(%.0f', now - 2 * "
    "tonumber(ARGV[3])))\n"
    "redis.call('PUBLISH', ARGV[5], as .. ' ' .. e)\n"
    "return a\n";

/* KEYS: epoch, segs, broken, then the rooms' streams. ARGV: the epoch
 * the hub counts in, the offset (anchor, count), the hub's position
 * (anchor, count), the window (ms), the bound. Returns {0, reason} or {1,
 * id, event, data, ...} with the entries in (offset, position] of every
 * stream. A stream keeps at least bound + 1 entries: more than `bound`
 * after the offset means that some may have been trimmed; `bound` or fewer
 * means that an older entry is kept, so none after the offset was trimmed
 * (XINFO's max-deleted-entry-id does not see MAXLEN's trimming in Redis
 * 7.0). */
static const char RECOVER_LUA[] =
    "local function lt(a1, k1, a2, k2) return a1 < a2 or (a1 == a2 and k1 < k2) end\n"
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0, 'epoch'} end\n"
    "local pa, pk = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local na, nk = tonumber(ARGV[4]), tonumber(ARGV[5])\n"
    "local bound = tonumber(ARGV[7])\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "if now - pa > tonumber(ARGV[6]) then return {0, 'window'} end\n"
    "if lt(na, nk, pa, pk) then return {0, 'offset'} end\n"
    "if pa < na then\n"
    "  local at = pa\n"
    "  local segs = redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[2], '(' .. ARGV[4], 'LIMIT', 0, "
    "100000)\n"
    "  for _, m in ipairs(segs) do\n"
    "    local a, b = string.match(m, '^(%d+):(%d+)$')\n"
    "    if tonumber(a) ~= at then return {0, 'gap'} end\n"
    "    at = tonumber(b)\n"
    "  end\n"
    "  if at ~= na then return {0, 'gap'} end\n"
    "end\n"
    "if redis.call('ZCOUNT', KEYS[3], ARGV[2], ARGV[4]) > 0 then return {0, 'gap'} end\n"
    "local out = {1}\n"
    "for i = 4, #KEYS do\n"
    "  if redis.call('TYPE', KEYS[i]).ok == 'stream' then\n"
    "    local es = redis.call('XRANGE', KEYS[i], '(' .. ARGV[2] .. '-' .. ARGV[3], '+', "
    "'COUNT', bound + 1)\n"
    "    if #es > bound then return {0, 'bound'} end\n"
    "    for _, e in ipairs(es) do\n"
    "      local a, k = string.match(e[1], '^(%d+)-(%d+)$')\n"
    "      if not lt(na, nk, tonumber(a), tonumber(k)) then\n"
    "        local f = e[2]\n"
    "        out[#out + 1] = e[1]\n"
    "        out[#out + 1] = f[2] or ''\n"
    "        out[#out + 1] = f[4] or ''\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return out\n";

/* ARGV: cursor, pattern, count. Returns {cursor, keys, bytes}. */
static const char SCAN_LUA[] =
    "local r = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3])\n"
    "local bytes = 0\n"
    "for _, k in ipairs(r[2]) do bytes = bytes + (redis.call('MEMORY', 'USAGE', k) or 0) end\n"
    "return {r[1], #r[2], bytes}\n";

/* The anchor and scan scripts run by EVALSHA (their order does not
 * matter); the write and recover scripts by EVAL, so that a recovery can
 * never overtake the batch sent before it (an EVALSHA answered NOSCRIPT is
 * sent again later: bus.h). */
static bus_script_t anchor_script = {ANCHOR_LUA, "", 0};
static bus_script_t scan_script = {SCAN_LUA, "", 0};

/* A recovery in flight: owned by its connection (c->ws.rec), which
 * cancels the request and frees it when it closes. */
typedef struct gw_recop {
    gw_t *gw;
    gw_conn_t *conn;
    bus_req_t *req;
    uint64_t pa, pk; /* the client's offset */
    char pid[24];    /* Socket.IO: the pid it asked for */
    char sid[24];    /* Socket.IO: its session's socket id */
} gw_recop_t;

/* ---- position and anchors ---- */

static void on_timer(uv_timer_t *t);

static void
on_flush_timer(uv_timer_t *t)
{
    gw__rec_flush(t->data);
}

void
gw__rec_init(gw_t *gw, const gw_options_t *opt)
{
    gw_rec_t *r = &gw->rec;

    r->window_ms = opt->recovery_window_ms;
    r->bound = opt->recovery_max_per_room ? opt->recovery_max_per_room : 100;
    r->anchor_ms = opt->recovery_anchor_ms ? opt->recovery_anchor_ms : 1000;
    strcpy(r->cursor, "0");
    uv_timer_init(gw->loop, &r->timer);
    r->timer.data = gw;
    uv_timer_init(gw->loop, &r->flush);
    r->flush.data = gw;
    if (gw__rec_on(gw))
        uv_timer_start(&r->timer, on_timer, r->anchor_ms, r->anchor_ms);
}

void
gw__rec_close(gw_t *gw)
{
    uv_close((uv_handle_t *)&gw->rec.timer, NULL);
    uv_close((uv_handle_t *)&gw->rec.flush, NULL);
}

void
gw__rec_free(gw_t *gw)
{
    free(gw->rec.bytes);
    free(gw->rec.ents);
}

static void
request_anchor(gw_t *gw, int force)
{
    char epoch[17], window[24], interval[24];
    const char *argv[9] = {KEY_ANCHOR, KEY_EPOCH, KEY_SEGS, KEY_BROKEN, epoch, interval, window,
                           force ? "1" : "0", UTIL_CHANNEL_REC_ANCHOR};
    size_t lens[9];

    util_random_id(epoch, 16, UTIL_ID_B64URL);
    epoch[16] = '\0';
    /* a little under the period, so that timers a few ms early still ask */
    snprintf(interval, sizeof interval, "%u", gw->rec.anchor_ms - gw->rec.anchor_ms / 5);
    snprintf(window, sizeof window, "%u", gw->rec.window_ms);
    for (int i = 0; i < 9; i++)
        lens[i] = strlen(argv[i]);
    /* no answer needed: the anchor arrives as a message */
    bus_script_request(gw->bus, NULL, NULL, &anchor_script, 4, 9, argv, lens, NULL, NULL);
}

static void
on_scanned(void *privdata, redisReply *reply)
{
    gw_t *gw = privdata;
    gw_rec_t *r = &gw->rec;

    r->scanning = 0;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_INTEGER ||
        reply->element[2]->type != REDIS_REPLY_INTEGER) {
        strcpy(r->cursor, "0"); /* start the pass again */
        r->pass_bytes = r->pass_keys = 0;
        return;
    }
    r->pass_keys += (uint64_t)reply->element[1]->integer;
    r->pass_bytes += (uint64_t)reply->element[2]->integer;
    snprintf(r->cursor, sizeof r->cursor, "%s", reply->element[0]->str);
    if (strcmp(r->cursor, "0") == 0) { /* a full pass */
        r->redis_bytes = r->pass_bytes;
        r->redis_keys = r->pass_keys;
        r->pass_bytes = r->pass_keys = 0;
    }
}

static void
on_timer(uv_timer_t *t)
{
    gw_t *gw = t->data;
    gw_rec_t *r = &gw->rec;

    if (gw->bus == NULL || !bus_ready(gw->bus))
        return;
    request_anchor(gw, 0);
    if (!r->scanning) {
        const char *argv[3] = {r->cursor, KEY_HISTORY "*", SCAN_COUNT};
        size_t lens[3] = {strlen(r->cursor), sizeof KEY_HISTORY, sizeof SCAN_COUNT - 1};
        if (bus_script_request(gw->bus, NULL, NULL, &scan_script, 0, 3, argv, lens, on_scanned,
                               gw) == 0)
            r->scanning = 1;
    }
}

void
gw__rec_redis_state(gw_t *gw, int ready)
{
    if (!gw__rec_on(gw))
        return;
    if (!ready) {
        gw->rec.synced = 0; /* messages may have been missed: no position until an anchor */
        gw->rec.n = gw->rec.len = 0;
        uv_timer_stop(&gw->rec.flush);
        return;
    }
    request_anchor(gw, 1);
}

const char *
gw__rec_position(gw_t *gw)
{
    gw_rec_t *r = &gw->rec;

    if (!gw__rec_on(gw))
        return NULL;
    r->count++;
    if (!r->synced) {
        gw->m.rec_unsynced++;
        r->offset[0] = '\0';
    } else {
        snprintf(r->offset, sizeof r->offset, "%llu-%llu", (unsigned long long)r->anchor,
                 (unsigned long long)r->count);
    }
    return r->offset;
}

/* "<anchor> <epoch>": 0, or -1. */
static int
parse_anchor(const char *p, size_t len, uint64_t *anchor, char epoch[40])
{
    const char *sp = memchr(p, ' ', len);
    size_t nl, elen;
    uint64_t a = 0;

    if (sp == NULL)
        return -1;
    nl = (size_t)(sp - p);
    elen = len - nl - 1;
    if (nl == 0 || nl > 16 || elen == 0 || elen >= 40)
        return -1;
    for (size_t i = 0; i < nl; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        a = a * 10 + (uint64_t)(p[i] - '0');
    }
    if (a == 0)
        return -1;
    for (size_t i = 0; i < elen; i++) {
        char ch = sp[1 + i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_'))
            return -1;
    }
    *anchor = a;
    memcpy(epoch, sp + 1, elen);
    epoch[elen] = '\0';
    return 0;
}

void
gw__rec_anchor(gw_t *gw, const char *payload, size_t len)
{
    gw_rec_t *r = &gw->rec;
    uint64_t a;
    char epoch[40];

    if (!gw__rec_on(gw))
        return;
    if (parse_anchor(payload, len, &a, epoch) != 0) {
        LOG_WARN("gw", "ignored a malformed recovery anchor");
        return;
    }
    gw->m.rec_anchors++;
    if (gw->bus == NULL || !bus_ready(gw->bus)) {
        r->synced = 0; /* some subscription may not be confirmed yet */
        return;
    }
    if (r->synced && a > r->anchor && strcmp(epoch, r->epoch) == 0) {
        /* every message of segment r->anchor was seen: its entries go
         * first, then the record that says so (docs/recovery.md) */
        char seg[64], score[24];
        gw__rec_flush(gw);
        snprintf(score, sizeof score, "%llu", (unsigned long long)r->anchor);
        snprintf(seg, sizeof seg, "%llu:%llu", (unsigned long long)r->anchor,
                 (unsigned long long)a);
        bus_command(gw->bus, NULL, NULL, "ZADD %s %s %s", KEY_SEGS, score, seg);
    } else {
        gw__rec_flush(gw);
    }
    r->anchor = a;
    r->count = 0;
    strcpy(r->epoch, epoch);
    r->synced = 1;
}

/* ---- history ---- */

static size_t
batch_put(gw_rec_t *r, const char *s, size_t n)
{
    size_t at = r->len;

    if (r->len + n > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + n)
            cap *= 2;
        r->bytes = util_realloc(r->bytes, cap);
        r->cap = cap;
    }
    memcpy(r->bytes + r->len, s, n);
    r->len += n;
    return at;
}

void
gw__rec_record(gw_t *gw, const char *room, size_t rlen, const char *event, const char *data,
               size_t dlen)
{
    gw_rec_t *r = &gw->rec;
    gw_rec_entry_t *e;

    if (!gw__rec_on(gw) || !r->synced)
        return;
    if (r->n == r->ecap) {
        r->ecap = r->ecap ? r->ecap * 2 : 64;
        r->ents = util_realloc(r->ents, r->ecap * sizeof *r->ents);
    }
    if (r->n == 0)
        uv_timer_start(&r->flush, on_flush_timer, FLUSH_MS, 0);
    e = &r->ents[r->n++];
    e->key = batch_put(r, KEY_HISTORY, sizeof KEY_HISTORY - 1);
    batch_put(r, room, rlen);
    e->klen = sizeof KEY_HISTORY - 1 + rlen;
    e->idlen = strlen(r->offset);
    e->id = batch_put(r, r->offset, e->idlen);
    e->evlen = strlen(event);
    e->ev = batch_put(r, event, e->evlen);
    e->dlen = data ? dlen : 0;
    e->data = batch_put(r, data ? data : "", e->dlen);
    if (r->n >= BATCH_ENTRIES || r->len >= BATCH_BYTES)
        gw__rec_flush(gw);
}

static void
on_written(void *privdata, redisReply *reply)
{
    gw_t *gw = privdata;

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        /* entries this hub vouched for are not in history: no position
         * until the next anchor, so that no segment is recorded whole on
         * this hub's word (a Redis out of memory refuses that ZADD too) */
        gw->m.rec_write_errors++;
        gw->rec.synced = 0;
        if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
            LOG_WARN("gw", "recovery history write failed: %s", reply->str);
        return;
    }
    gw->m.rec_refused += (uint64_t)reply->integer;
}

void
gw__rec_flush(gw_t *gw)
{
    gw_rec_t *r = &gw->rec;
    size_t argc, k = 0;
    const char **argv;
    size_t *lens;
    char nkeys[24], window[24], bound[24];

    if (r->n == 0)
        return;
    uv_timer_stop(&r->flush);
    argc = 3 + 1 + r->n + 2 + 3 * r->n;
    argv = util_malloc(argc * sizeof *argv);
    lens = util_malloc(argc * sizeof *lens);
#define ARG(s, n) (argv[k] = (s), lens[k++] = (n))
    ARG("EVAL", 4);
    ARG(WRITE_LUA, sizeof WRITE_LUA - 1);
    ARG(nkeys, (size_t)snprintf(nkeys, sizeof nkeys, "%zu", 1 + r->n));
    ARG(KEY_BROKEN, sizeof KEY_BROKEN - 1);
    for (size_t i = 0; i < r->n; i++)
        ARG(r->bytes + r->ents[i].key, r->ents[i].klen);
    ARG(window, (size_t)snprintf(window, sizeof window, "%u", r->window_ms));
    ARG(bound, (size_t)snprintf(bound, sizeof bound, "%u", r->bound + 1));
    for (size_t i = 0; i < r->n; i++) {
        const gw_rec_entry_t *e = &r->ents[i];
        ARG(r->bytes + e->id, e->idlen);
        ARG(r->bytes + e->ev, e->evlen);
        ARG(r->bytes + e->data, e->dlen);
    }
#undef ARG
    if (bus_command_argv(gw->bus, on_written, gw, (int)argc, argv, lens) == 0) {
        gw->m.rec_entries += r->n;
        gw->m.rec_batches++;
    } else {
        gw->m.rec_write_errors++;
    }
    free(argv);
    free(lens);
    r->n = 0;
    r->len = 0;
}

/* ---- recovery ---- */

/* Ends a recovery: the answer and the replayed frames go in front of what
 * was queued while held, and the connection writes again. `front` holds
 * `n` frames in order; the references are the queue's now. */
static void
release(gw_t *gw, gw_conn_t *c, gw_frame_t **front, size_t n)
{
    for (size_t i = n; i-- > 0;) {
        if (!c->ws.close_code) /* closing: its queue is dropped already */
            gw__outq_push_front(&c->ws.q, front[i]);
        gw__frame_unref(front[i]);
    }
    c->ws.held = 0;
    gw__out_release(gw, c);
}

static gw_frame_t *
native_answer(int recovered, size_t missed)
{
    char data[64];
    int n = recovered ? snprintf(data, sizeof data, "{\"recovered\":true,\"missed\":%zu}", missed)
                      : snprintf(data, sizeof data, "{\"recovered\":false}");
    return gw__frame_event(GW_FRAMING_NATIVE, "recovered", data, (size_t)n, NULL);
}

static gw_frame_t *
sio_answer(gw_conn_t *c)
{
    char text[96];
    int n = snprintf(text, sizeof text, "40{\"sid\":\"%s\",\"pid\":\"%s\"}", c->ws.sio.sio_sid,
                     c->ws.sio.pid);
    return gw__frame_text(text, (size_t)n);
}

/* "user:<sub>" into `room`; its length. */
static size_t
own_room(const gw_conn_t *c, char room[WIRE_ROOM_MAX + 1])
{
    return (size_t)snprintf(room, WIRE_ROOM_MAX + 1, "user:%s", c->ws.claims.sub);
}

static int
keep_own_room(void *ctx, const char *room)
{
    return strcmp(room, ctx) == 0 || strncmp(room, "config:", 7) == 0;
}

static void
left_quietly(void *ctx, const char *room)
{
    (void)ctx;
    (void)room;
}

/* Ends a recovery that does not recover. Socket.IO gets a fresh session: a
 * new pid, its own sid, its own room only. */
static void
fail(gw_t *gw, gw_conn_t *c, enum gw_rec_outcome why)
{
    gw_frame_t *f;

    gw->m.rec_outcomes[c->ws.framing][why]++;
    if (c->ws.framing == GW_FRAMING_SIO) {
        char own[WIRE_ROOM_MAX + 1];
        size_t n = own_room(c, own);
        gw__rooms_leave_if(gw->rooms, &c->ws.member, keep_own_room, left_quietly, own);
        gw__rooms_join(gw->rooms, own, n, &c->ws.member); /* left while recovering */
        util_random_id(c->ws.sio.pid, 20, UTIL_ID_B64URL);
        c->ws.sio.pid[20] = '\0';
        f = sio_answer(c);
    } else {
        f = native_answer(0, 0);
    }
    release(gw, c, &f, 1);
}

static void
op_free(gw_conn_t *c)
{
    free(c->ws.rec);
    c->ws.rec = NULL;
}

typedef struct replayed {
    uint64_t a, k;
    const redisReply *id, *event, *data;
} replayed_t;

static int
by_position(const void *x, const void *y)
{
    const replayed_t *p = x, *q = y;
    if (p->a != q->a)
        return p->a < q->a ? -1 : 1;
    if (p->k != q->k)
        return p->k < q->k ? -1 : 1;
    /* one message, two rooms (a bot's command): `bot` before `bot-command`, as live */
    return strcmp(p->event->str, q->event->str);
}

static enum gw_rec_outcome
outcome_of(const char *reason)
{
    static const struct {
        const char *name;
        enum gw_rec_outcome o;
    } map[] = {{"epoch", GW_REC_EPOCH},   {"window", GW_REC_WINDOW}, {"offset", GW_REC_OFFSET},
               {"gap", GW_REC_GAP},       {"bound", GW_REC_BOUND}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(reason, map[i].name) == 0)
            return map[i].o;
    return GW_REC_UNAVAILABLE;
}

/* The script's answer: the entries, checked, in position order. Returns
 * the count, or -1 with *why. */
static long
read_entries(const redisReply *reply, replayed_t **out, enum gw_rec_outcome *why)
{
    size_t n;
    replayed_t *v;

    *out = NULL;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER) {
        if (reply && reply->type == REDIS_REPLY_ERROR)
            LOG_WARN("gw", "recovery script failed: %s", reply->str);
        *why = GW_REC_UNAVAILABLE;
        return -1;
    }
    if (reply->element[0]->integer != 1) {
        *why = reply->elements == 2 && reply->element[1]->type == REDIS_REPLY_STRING
                   ? outcome_of(reply->element[1]->str)
                   : GW_REC_UNAVAILABLE;
        return -1;
    }
    if ((reply->elements - 1) % 3 != 0) {
        *why = GW_REC_UNAVAILABLE;
        return -1;
    }
    n = (reply->elements - 1) / 3;
    v = util_malloc((n ? n : 1) * sizeof *v);
    for (size_t i = 0; i < n; i++) {
        redisReply *const *e = reply->element + 1 + 3 * i;
        static const char event_chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-";
        if (e[0]->type != REDIS_REPLY_STRING || e[1]->type != REDIS_REPLY_STRING ||
            e[2]->type != REDIS_REPLY_STRING ||
            wire_offset_parse(e[0]->str, e[0]->len, &v[i].a, &v[i].k) != 0 || e[1]->len == 0 ||
            strspn(e[1]->str, event_chars) != e[1]->len) {
            /* not written by a hub: refuse rather than send it */
            free(v);
            *why = GW_REC_UNAVAILABLE;
            return -1;
        }
        v[i].id = e[0];
        v[i].event = e[1];
        v[i].data = e[2];
    }
    qsort(v, n, sizeof *v, by_position);
    *out = v;
    return (long)n;
}

static void
on_history(void *privdata, redisReply *reply)
{
    gw_recop_t *op = privdata;
    gw_t *gw = op->gw;
    gw_conn_t *c = op->conn;
    enum gw_rec_outcome why;
    replayed_t *v;
    long n = read_entries(reply, &v, &why);
    gw_frame_t **frames;
    size_t nf = 0, last_reserve = SIZE_MAX;

    op->req = NULL;
    if (n < 0) {
        op_free(c);
        fail(gw, c, why);
        return;
    }
    /* itemReserved's entries are one reserve-items, at the last of them */
    for (long i = 0; i < n; i++)
        if (strcmp(v[i].event->str, "reserve-items") == 0)
            last_reserve = (size_t)i;
    frames = util_malloc(((size_t)n + 1) * sizeof *frames);
    nf = 1; /* the answer, below */
    for (long i = 0; i < n; i++) {
        if (strcmp(v[i].event->str, "reserve-items") == 0 && (size_t)i != last_reserve)
            continue;
        frames[nf++] = gw__frame_event(c->ws.framing, v[i].event->str,
                                       v[i].data->len ? v[i].data->str : NULL, v[i].data->len,
                                       v[i].id->str);
    }
    free(v);
    if (c->ws.framing == GW_FRAMING_SIO) {
        memcpy(c->ws.sio.sio_sid, op->sid, sizeof op->sid);
        memcpy(c->ws.sio.pid, op->pid, sizeof op->pid);
        frames[0] = sio_answer(c);
    } else {
        frames[0] = native_answer(1, nf - 1);
    }
    gw->m.rec_outcomes[c->ws.framing][GW_REC_RECOVERED]++;
    gw->m.rec_replayed += nf - 1;
    op_free(c);
    release(gw, c, frames, nf);
    free(frames);
}

struct room_keys {
    char names[ROOMS_MAX][sizeof KEY_HISTORY + WIRE_ROOM_MAX];
    size_t n;
};

static void
add_room_key(void *ctx, const char *room)
{
    struct room_keys *k = ctx;

    if (strncmp(room, "config:", 7) == 0 || k->n >= ROOMS_MAX)
        return;
    snprintf(k->names[k->n++], sizeof k->names[0], KEY_HISTORY "%s", room);
}

/* Reads (offset, now] of the connection's rooms. The batch goes first, on
 * the same connection, so that the script sees every entry up to now. */
static void
start_history(gw_t *gw, gw_conn_t *c)
{
    gw_recop_t *op = c->ws.rec;
    gw_rec_t *r = &gw->rec;
    struct room_keys k;
    const char *argv[3 + 3 + ROOMS_MAX + 7];
    size_t lens[sizeof argv / sizeof argv[0]], argc = 0;
    char nkeys[8], pa[24], pk[24], na[24], nk[24], window[24], bound[24];

    if (!r->synced) {
        op_free(c);
        fail(gw, c, GW_REC_UNSYNCED);
        return;
    }
    if (c->ws.framing == GW_FRAMING_SIO) {
        /* its own room, left while its session was fetched: from now on
         * its events are live, those before are in history */
        char own[WIRE_ROOM_MAX + 1];
        gw__rooms_join(gw->rooms, own, own_room(c, own), &c->ws.member);
    }
    gw__rec_flush(gw);
    k.n = 0;
    gw__rooms_each(&c->ws.member, add_room_key, &k);
    add_room_key(&k, ROOM_EVERYONE);
#define ARG(s, n) (argv[argc] = (s), lens[argc++] = (n))
#define NUM(buf, fmt, v) ARG(buf, (size_t)snprintf(buf, sizeof buf, fmt, v))
    ARG("EVAL", 4);
    ARG(RECOVER_LUA, sizeof RECOVER_LUA - 1);
    NUM(nkeys, "%zu", 3 + k.n);
    ARG(KEY_EPOCH, sizeof KEY_EPOCH - 1);
    ARG(KEY_SEGS, sizeof KEY_SEGS - 1);
    ARG(KEY_BROKEN, sizeof KEY_BROKEN - 1);
    for (size_t i = 0; i < k.n; i++)
        ARG(k.names[i], strlen(k.names[i]));
    ARG(r->epoch, strlen(r->epoch));
    NUM(pa, "%llu", (unsigned long long)op->pa);
    NUM(pk, "%llu", (unsigned long long)op->pk);
    NUM(na, "%llu", (unsigned long long)r->anchor);
    NUM(nk, "%llu", (unsigned long long)r->count);
    NUM(window, "%u", r->window_ms);
    NUM(bound, "%u", r->bound);
#undef NUM
#undef ARG
    if (bus_request_argv(gw->bus, NULL, &op->req, on_history, op, (int)argc, argv, lens) != 0) {
        op_free(c);
        fail(gw, c, GW_REC_UNAVAILABLE);
    }
}

/* Holds the connection's output and makes its recovery op. */
static gw_recop_t *
begin(gw_t *gw, gw_conn_t *c, uint64_t pa, uint64_t pk)
{
    gw_recop_t *op = util_calloc(1, sizeof *op);

    op->gw = gw;
    op->conn = c;
    op->pa = pa;
    op->pk = pk;
    c->ws.rec = op;
    c->ws.held = 1;
    return op;
}

/* Joins the rooms of a comma-separated list the token allows; returns how
 * many it refused. */
static int
join_rooms(gw_t *gw, gw_conn_t *c, const char *list, size_t len)
{
    int refused = 0, count = 0;
    const char *p = list, *end = list + len;

    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        size_t n = comma ? (size_t)(comma - p) : (size_t)(end - p);
        char room[WIRE_ROOM_MAX + 1];
        const char *code;

        if (n > 0) {
            if (n > WIRE_ROOM_MAX || ++count > ROOMS_MAX - 2) {
                refused++;
            } else {
                memcpy(room, p, n);
                room[n] = '\0';
                if (wire_room_check(&c->ws.claims, room, &code) == 0)
                    gw__rooms_join(gw->rooms, room, n, &c->ws.member);
                else
                    refused++;
            }
        }
        p += n + 1;
    }
    return refused;
}

void
gw__rec_native(gw_t *gw, gw_conn_t *c, struct lws *wsi)
{
    /* lws stops looking at the first query argument longer than the
     * buffer: both are sized for the token (auth.c) */
    char offset[WIRE_TOKEN_MAX + 16], rooms[WIRE_TOKEN_MAX + 16];
    const char *o = lws_get_urlarg_by_name(wsi, "offset=", offset, (int)sizeof offset);
    const char *rl = lws_get_urlarg_by_name(wsi, "rooms=", rooms, (int)sizeof rooms);
    uint64_t pa, pk;
    int refused;

    if (o == NULL)
        return; /* no offset: no `recovered` frame (SPEC §9) */
    begin(gw, c, 0, 0);
    refused = rl ? join_rooms(gw, c, rl, strlen(rl)) : 0;
    if (!gw__rec_on(gw) || wire_offset_parse(o, strlen(o), &pa, &pk) != 0) {
        op_free(c);
        fail(gw, c, GW_REC_OFFSET);
    } else if (refused) {
        op_free(c);
        fail(gw, c, GW_REC_ROOMS);
    } else if (gw->bus == NULL || !bus_ready(gw->bus)) {
        op_free(c);
        fail(gw, c, GW_REC_UNAVAILABLE);
    } else {
        c->ws.rec->pa = pa;
        c->ws.rec->pk = pk;
        start_history(gw, c);
    }
}

/* "<sub>\n<sid>\n<room>\n<room>...": the session a socket left (save_session). */
static void
on_session(void *privdata, redisReply *reply)
{
    gw_recop_t *op = privdata;
    gw_t *gw = op->gw;
    gw_conn_t *c = op->conn;
    const char *p, *nl, *nl2;
    size_t sublen;

    op->req = NULL;
    if (reply == NULL || reply->type != REDIS_REPLY_STRING) {
        op_free(c);
        fail(gw, c, reply == NULL || reply->type == REDIS_REPLY_ERROR ? GW_REC_UNAVAILABLE
                                                                      : GW_REC_SESSION);
        return;
    }
    p = reply->str;
    nl = memchr(p, '\n', reply->len);
    sublen = strlen(c->ws.claims.sub);
    nl2 = nl ? memchr(nl + 1, '\n', reply->len - (size_t)(nl + 1 - p)) : NULL;
    if (nl == NULL || (size_t)(nl - p) != sublen || memcmp(p, c->ws.claims.sub, sublen) != 0 ||
        (size_t)((nl2 ? nl2 : p + reply->len) - (nl + 1)) >= sizeof op->sid) {
        op_free(c); /* not this user's session */
        fail(gw, c, GW_REC_SESSION);
        return;
    }
    memcpy(op->sid, nl + 1, (size_t)((nl2 ? nl2 : p + reply->len) - (nl + 1)));
    if (nl2 != NULL) {
        /* the rooms, newline-separated: as a comma list for join_rooms */
        size_t rl = reply->len - (size_t)(nl2 + 1 - p);
        char *list = util_malloc(rl + 1);
        int refused;
        memcpy(list, nl2 + 1, rl);
        for (size_t i = 0; i < rl; i++)
            if (list[i] == '\n' || list[i] == ',')
                list[i] = list[i] == '\n' ? ',' : '\n'; /* a ',' in a name is refused */
        refused = join_rooms(gw, c, list, rl);
        free(list);
        if (refused) {
            op_free(c);
            fail(gw, c, GW_REC_ROOMS);
            return;
        }
    }
    start_history(gw, c);
}

void
gw__rec_sio_connect(gw_t *gw, gw_conn_t *c, json_t *auth)
{
    json_t *pid = json_object_get(auth, "pid"), *off = json_object_get(auth, "offset");
    gw_frame_t *f;
    gw_recop_t *op;
    uint64_t pa, pk;
    const char *ps;
    size_t pl;
    char key[sizeof KEY_SIO + 24];

    if (c->ws.rec != NULL) {
        /* a CONNECT again (after a DISCONNECT) while the first recovered:
         * that one is abandoned */
        if (c->ws.rec->req != NULL)
            bus_cancel(c->ws.rec->req);
        op_free(c);
        c->ws.held = 0;
    }
    if (!json_is_string(pid) || !json_is_string(off)) {
        /* a new session */
        util_random_id(c->ws.sio.pid, 20, UTIL_ID_B64URL);
        c->ws.sio.pid[20] = '\0';
        f = sio_answer(c);
        gw__out_frame(gw, c, f);
        gw__frame_unref(f);
        return;
    }
    op = begin(gw, c, 0, 0);
    ps = json_string_value(pid);
    pl = json_string_length(pid);
    if (wire_offset_parse(json_string_value(off), json_string_length(off), &pa, &pk) != 0 ||
        pl == 0 || pl >= sizeof op->pid || strspn(ps, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != pl) {
        op_free(c);
        fail(gw, c, GW_REC_OFFSET);
        return;
    }
    if (gw->bus == NULL || !bus_ready(gw->bus)) {
        op_free(c);
        fail(gw, c, GW_REC_UNAVAILABLE);
        return;
    }
    op->pa = pa;
    op->pk = pk;
    memcpy(op->pid, ps, pl);
    {
        /* out of its own room until the history is read (start_history):
         * an event queued meanwhile would be replayed too */
        char own[WIRE_ROOM_MAX + 1];
        gw__rooms_leave(gw->rooms, own, own_room(c, own), &c->ws.member);
    }
    snprintf(key, sizeof key, KEY_SIO "%s", op->pid);
    if (bus_request(gw->bus, NULL, &op->req, on_session, op, "GETDEL %s", key) != 0) {
        op_free(c);
        fail(gw, c, GW_REC_UNAVAILABLE);
    }
}

/* ---- closing ---- */

struct session_text {
    char *p;
    size_t len, cap;
    const char *own;
    int rooms, overflow;
};

static void
add_session_room(void *ctx, const char *room)
{
    struct session_text *s = ctx;
    size_t n = strlen(room);

    if (strncmp(room, "config:", 7) == 0 || strcmp(room, s->own) == 0)
        return;
    if (s->len + n + 1 > s->cap || ++s->rooms > ROOMS_MAX - 2) {
        s->overflow = 1; /* more rooms than a recovery reads: no session */
        return;
    }
    s->p[s->len++] = '\n';
    memcpy(s->p + s->len, room, n);
    s->len += n;
}

static void
on_saved(void *privdata, redisReply *reply)
{
    gw_t *gw = privdata;
    gw->rec.saves--;
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR)
        LOG_WARN("gw", "a Socket.IO session for recovery was not saved: %s",
                 reply ? reply->str : "redis went away");
}

static void
save_session(gw_t *gw, gw_conn_t *c)
{
    char text[ROOMS_MAX * (WIRE_ROOM_MAX + 1) + 128], own[WIRE_ROOM_MAX + 1], key[sizeof KEY_SIO + 24];
    char window[24];
    struct session_text s = {text, 0, sizeof text, own, 0, 0};
    const char *argv[5];
    size_t lens[5];

    own_room(c, own);
    s.len = (size_t)snprintf(text, sizeof text, "%s\n%s", c->ws.claims.sub, c->ws.sio.sio_sid);
    gw__rooms_each(&c->ws.member, add_session_room, &s);
    if (s.overflow)
        return;
    snprintf(key, sizeof key, KEY_SIO "%s", c->ws.sio.pid);
    snprintf(window, sizeof window, "%u", gw->rec.window_ms);
    argv[0] = "SET";
    argv[1] = key;
    argv[2] = text;
    argv[3] = "PX";
    argv[4] = window;
    for (int i = 0; i < 5; i++)
        lens[i] = i == 2 ? s.len : strlen(argv[i]);
    if (bus_command_argv(gw->bus, on_saved, gw, 5, argv, lens) == 0)
        gw->rec.saves++;
}

void
gw__rec_conn_closed(gw_t *gw, gw_conn_t *c)
{
    if (c->ws.rec != NULL) {
        if (c->ws.rec->req != NULL)
            bus_cancel(c->ws.rec->req);
        op_free(c);
    }
    if (gw__rec_on(gw) && c->ws.framing == GW_FRAMING_SIO && c->ws.sio.connected &&
        c->ws.sio.pid[0] != '\0' && c->ws.ready && gw->bus != NULL && bus_ready(gw->bus))
        save_session(gw, c);
}

void
gw__rec_moved(gw_conn_t *from, gw_conn_t *to)
{
    to->ws.held = from->ws.held;
    to->ws.rec = from->ws.rec;
    if (to->ws.rec)
        to->ws.rec->conn = to;
    memcpy(to->ws.sio.pid, from->ws.sio.pid, sizeof to->ws.sio.pid);
    from->ws.held = 0;
    from->ws.rec = NULL;
    from->ws.sio.pid[0] = '\0'; /* its close saves nothing: the session lives on */
}
