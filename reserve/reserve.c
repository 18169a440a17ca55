/*
 * reserve/reserve.c: the reservation manager: four Lua scripts, the watched
 * apps and their expiry timers.
 *
 * Each watched app has one timer, armed at the earliest expiry in its index
 * as the sweep script reports it (Redis's clock, so the delay is computed
 * from the server's `now`, not ours). A sweep in flight is never doubled: a
 * second request while one runs just asks for another when it returns.
 *
 * Lifetimes (docs/requests.md). Every Redis request is in one of two bus
 * groups: `ops` (a caller's request; its privdata is the resv_op_t, which
 * lives exactly as long as that request) and `reqs` (sweeps, discovery and
 * script loads, whose privdata lives in the manager). Closing cancels both,
 * so no reply ever reaches freed memory and nothing is counted.
 */
#include "reserve.h"
#include "util.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define RESYNC_MS 20          /* coalescing of itemReserved notices */
#define SCAN_MAX_ROUNDS 10000 /* discovery is bounded */

enum script { S_RESERVE, S_RELEASE, S_LIST, S_SWEEP, S_COUNT };

/* The server's clock in ms, the same in every script. */
#define LUA_NOW                                                                                    \
    "local t = redis.call('TIME') "                                                                \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "

/* Expired members go, and if any did, one publish tells every listener.
 * Every publish carries the app id (KEYS[1] is "reserved:{<app>}"), so that
 * a hub that never served the app learns of it and sweeps it too. */
#define LUA_TRIM                                                                                   \
    "local removed = redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now) "                        \
    "if removed > 0 then redis.call('PUBLISH', '" UTIL_CHANNEL_ITEM_RESERVED                       \
    "', string.sub(KEYS[1], 11, -2)) end "

/* KEYS[1] index, KEYS[2..] asset keys; ARGV[1] ttl ms, ARGV[2] owner,
 * ARGV[3..] asset ids. {1, expires_at_ms} or {0, {held ids}}. */
static const char reserve_lua[] =
    "local held = {} "
    "for i = 2, #KEYS do "
    "  if redis.call('EXISTS', KEYS[i]) == 1 then held[#held + 1] = ARGV[i + 1] end "
    "end "
    "if #held > 0 then return {0, held} end " LUA_NOW "local exp = now + tonumber(ARGV[1]) "
    "local val = '{\"owner\":' .. cjson.encode(ARGV[2]) .. "
    "  ',\"reserved_at_ms\":' .. string.format('%d', now) .. "
    "  ',\"expires_at_ms\":' .. string.format('%d', exp) .. '}' "
    "for i = 2, #KEYS do "
    "  redis.call('SET', KEYS[i], val, 'PX', ARGV[1]) "
    "  redis.call('ZADD', KEYS[1], exp, ARGV[i + 1]) "
    "end "
    "redis.call('PUBLISH', '" UTIL_CHANNEL_ITEM_RESERVED "', string.sub(KEYS[1], 11, -2)) "
    "return {1, exp}";

/* KEYS[1] index, KEYS[2] asset key; ARGV[1] asset id. 1 released, 0 not. */
static const char release_lua[] =
    "local n = redis.call('DEL', KEYS[2]) "
    "redis.call('ZREM', KEYS[1], ARGV[1]) "
    "if n == 1 then redis.call('PUBLISH', '" UTIL_CHANNEL_ITEM_RESERVED
    "', string.sub(KEYS[1], 11, -2)) end "
    "return n";

/* KEYS[1] index; ARGV[1] key prefix. {now, {id, value or nil, ...}} in
 * expiry order, MGET in batches (unpack has a stack limit). */
static const char list_lua[] = LUA_NOW LUA_TRIM
    "local ids = redis.call('ZRANGE', KEYS[1], 0, -1) "
    "local out = {} "
    "for i = 1, #ids, 500 do "
    "  local keys = {} "
    "  for j = i, math.min(i + 499, #ids) do keys[#keys + 1] = ARGV[1] .. ids[j] end "
    "  local vals = redis.call('MGET', unpack(keys)) "
    "  for j = 1, #keys do out[#out + 1] = ids[i + j - 1]; out[#out + 1] = vals[j] end "
    "end "
    "return {now, removed, out}";

/* KEYS[1] index. {removed, now, earliest expiry or -1}. */
static const char sweep_lua[] =
    LUA_NOW LUA_TRIM "local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES') "
                     "if #nxt == 0 then return {removed, now, -1} end "
                     "return {removed, now, tonumber(nxt[2])}";

static const char *const script_text[S_COUNT] = {reserve_lua, release_lua, list_lua, sweep_lua};

typedef struct resv_app resv_app_t;

struct resv_app {
    resv_mgr_t *m;
    char id[RESV_APP_MAX + 1];
    uv_timer_t timer;
    int sweeping;      /* a sweep is in flight */
    int sweep_again;   /* and another was asked for meanwhile */
    util_hnode_t node; /* in the manager's `apps`, keyed by `id` */
};

enum op_kind { OP_RESERVE, OP_RELEASE, OP_LIST };

struct resv_op {
    resv_mgr_t *m;
    enum op_kind kind;
    char app[RESV_APP_MAX + 1];
    char asset[RESV_ASSET_MAX + 1];
    char **assets; /* reserve: the ids, for the answer */
    size_t nassets;
    resv_cb cb;
    void *privdata;
    bus_req_t *req; /* its script in flight, for resv_cancel */
};

struct resv_mgr {
    uv_loop_t *loop;
    bus_t *bus;
    bus_script_t scripts[S_COUNT];
    util_htable_t apps; /* resv_app_t by id */
    int ready;
    int discovered; /* SCAN ran once */
    int scan_rounds;
    uv_timer_t resync;
    resv_metrics_t metrics;
    bus_group_t ops;  /* callers' requests: privdata resv_op_t */
    bus_group_t reqs; /* our own: sweeps, SCAN, script loads */
    int closing;
    int handles_open;
    void (*close_cb)(void *);
    void *close_privdata;
};

static void sweep(resv_app_t *a);

/* ---- lifetimes ---- */

static void
maybe_free_mgr(resv_mgr_t *m)
{
    if (!m->closing || m->handles_open > 0)
        return;
    if (m->close_cb)
        m->close_cb(m->close_privdata);
    free(m);
}

static void
op_free(resv_op_t *op)
{
    for (size_t i = 0; i < op->nassets; i++)
        free(op->assets[i]);
    free(op->assets);
    free(op);
}

/* ---- apps ---- */

static resv_app_t *
app_find(resv_mgr_t *m, const char *id, size_t len)
{
    util_hnode_t *n = util_htable_find(&m->apps, id, len);
    return n ? UTIL_CONTAINER_OF(n, resv_app_t, node) : NULL;
}

static void
on_app_timer(uv_timer_t *t)
{
    sweep(t->data);
}

static resv_app_t *
app_get(resv_mgr_t *m, const char *id, size_t len)
{
    resv_app_t *a;

    if (resv_valid_app(id, len) != 0 || m->closing)
        return NULL;
    if ((a = app_find(m, id, len)) != NULL)
        return a;
    a = util_calloc(1, sizeof *a);
    a->m = m;
    memcpy(a->id, id, len);
    a->id[len] = '\0';
    uv_timer_init(m->loop, &a->timer);
    a->timer.data = a;
    m->handles_open++;
    util_htable_insert(&m->apps, &a->node, a->id, len);
    LOG_DEBUG("reserve", "watching app %s", a->id);
    if (m->ready)
        sweep(a);
    return a;
}

void
resv_watch(resv_mgr_t *m, const char *app, size_t len)
{
    app_get(m, app, len);
}

/* ---- the sweep ---- */

static int
reply_ll(const redisReply *r, long long *out)
{
    if (r == NULL || r->type != REDIS_REPLY_INTEGER)
        return UV_EPROTO;
    *out = r->integer;
    return 0;
}

static void
on_sweep(void *privdata, redisReply *reply)
{
    resv_app_t *a = privdata;
    resv_mgr_t *m = a->m;
    long long removed, now, next;

    a->sweeping = 0;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply_ll(reply->element[0], &removed) || reply_ll(reply->element[1], &now) ||
        reply_ll(reply->element[2], &next)) {
        if (reply != NULL)
            LOG_WARN("reserve", "unexpected reply to the sweep of app %s", a->id);
        return; /* Redis down: the next ready sweeps again */
    }
    m->metrics.sweeps++;
    m->metrics.expired += (uint64_t)removed;
    if (a->sweep_again) {
        a->sweep_again = 0;
        sweep(a);
        return;
    }
    if (next >= 0)
        uv_timer_start(&a->timer, on_app_timer, next > now ? (uint64_t)(next - now) + 1 : 0, 0);
    else
        uv_timer_stop(&a->timer);
}

static void
sweep(resv_app_t *a)
{
    resv_mgr_t *m = a->m;
    char key[RESV_APP_MAX + 16];
    const char *argv[1] = {key};
    size_t len;

    if (a->sweeping) {
        a->sweep_again = 1;
        return;
    }
    len = (size_t)snprintf(key, sizeof key, "reserved:{%s}", a->id);
    if (bus_script_request(m->bus, &m->reqs, NULL, &m->scripts[S_SWEEP], 1, 1, argv, &len, on_sweep,
                           a) == 0)
        a->sweeping = 1;
}

static void
sweep_all(resv_mgr_t *m)
{
    for (util_hnode_t *n = util_htable_next(&m->apps, NULL); n; n = util_htable_next(&m->apps, n))
        sweep(UTIL_CONTAINER_OF(n, resv_app_t, node));
}

static void
on_resync(uv_timer_t *t)
{
    sweep_all(t->data);
}

void
resv_on_item_reserved(resv_mgr_t *m, const char *payload, size_t len)
{
    /* an app we did not know: watch it (arms its timer by a sweep) */
    if (len > 0 && resv_valid_app(payload, len) == 0)
        app_get(m, payload, len);
    if (m->ready && !m->closing && !uv_is_active((uv_handle_t *)&m->resync))
        uv_timer_start(&m->resync, on_resync, RESYNC_MS, 0);
}

/* ---- discovery: SCAN MATCH reserved:{*}, never KEYS ---- */

static void scan_from(resv_mgr_t *m, const char *cursor);

static void
on_scan(void *privdata, redisReply *reply)
{
    resv_mgr_t *m = privdata;
    redisReply *keys;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_ARRAY) {
        m->discovered = 0; /* try again at the next ready */
        return;
    }
    keys = reply->element[1];
    for (size_t i = 0; i < keys->elements; i++) {
        redisReply *k = keys->element[i];
        /* "reserved:{<app>}" exactly: the index, not an asset key */
        if (k->type == REDIS_REPLY_STRING && k->len > 11 && k->str[k->len - 1] == '}')
            app_get(m, k->str + 10, k->len - 11);
    }
    if (strcmp(reply->element[0]->str, "0") != 0 && ++m->scan_rounds < SCAN_MAX_ROUNDS)
        scan_from(m, reply->element[0]->str);
}

static void
scan_from(resv_mgr_t *m, const char *cursor)
{
    bus_request(m->bus, &m->reqs, NULL, on_scan, m, "SCAN %s MATCH reserved:{*} COUNT 1000",
                cursor);
}

void
resv_on_redis_state(resv_mgr_t *m, int ready)
{
    m->ready = ready;
    if (!ready || m->closing)
        return;
    for (int s = 0; s < S_COUNT; s++)
        bus_script_preload(m->bus, &m->reqs, &m->scripts[s]);
    if (!m->discovered) {
        m->discovered = 1;
        m->scan_rounds = 0;
        scan_from(m, "0");
    }
    sweep_all(m);
}

/* ---- requests ---- */

static void
finish(resv_op_t *op, const resv_result_t *r)
{
    op->cb(op->privdata, r);
}

static void
fail(resv_op_t *op, redisReply *reply)
{
    resv_result_t r = {0};
    r.error = reply == NULL ? UV_ENOTCONN : UV_EPROTO;
    r.app = op->app;
    r.detail = reply == NULL                      ? "redis unavailable"
               : reply->type == REDIS_REPLY_ERROR ? reply->str
                                                  : "unexpected redis reply";
    finish(op, &r);
}

static void
reserve_reply(resv_op_t *op, redisReply *reply)
{
    resv_mgr_t *m = op->m;
    resv_result_t r = {0};
    long long ok, exp;
    resv_app_t *a;

    r.app = op->app;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply_ll(reply->element[0], &ok) != 0) {
        fail(op, reply);
        return;
    }
    if (ok == 1 && reply_ll(reply->element[1], &exp) == 0) {
        m->metrics.reserved++;
        r.outcome = RESV_DONE;
        r.expires_at_ms = exp;
        r.assets = (const char *const *)op->assets;
        r.nassets = op->nassets;
        /* this hub sweeps what it reserved, at its expiry at the latest */
        if ((a = app_find(m, op->app, strlen(op->app))) != NULL)
            sweep(a);
        finish(op, &r);
        return;
    }
    if (ok == 0 && reply->element[1]->type == REDIS_REPLY_ARRAY) {
        redisReply *held = reply->element[1];
        const char **ids = util_calloc(held->elements + 1, sizeof *ids);
        for (size_t i = 0; i < held->elements; i++)
            ids[r.nassets++] =
                held->element[i]->type == REDIS_REPLY_STRING ? held->element[i]->str : "";
        m->metrics.conflicts++;
        r.outcome = RESV_CONFLICT;
        r.assets = ids;
        finish(op, &r);
        free(ids);
        return;
    }
    fail(op, reply);
}

static void
list_reply(resv_op_t *op, redisReply *reply)
{
    resv_mgr_t *m = op->m;
    resv_result_t r = {0};
    resv_entry_t *entries;
    json_t **docs;
    long long now, removed;
    redisReply *pairs;
    size_t n = 0;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply_ll(reply->element[0], &now) || reply_ll(reply->element[1], &removed) ||
        reply->element[2]->type != REDIS_REPLY_ARRAY) {
        fail(op, reply);
        return;
    }
    m->metrics.lists++;
    m->metrics.expired += (uint64_t)removed;
    pairs = reply->element[2];
    entries = util_calloc(pairs->elements / 2 + 1, sizeof *entries);
    docs = util_calloc(pairs->elements / 2 + 1, sizeof *docs);
    for (size_t i = 0; i + 1 < pairs->elements; i += 2) {
        redisReply *id = pairs->element[i], *val = pairs->element[i + 1];
        json_t *doc, *owner, *exp;
        if (id->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING)
            continue; /* the key is gone (released or evicted): not reserved */
        doc = json_loadb(val->str, val->len, 0, NULL);
        owner = json_object_get(doc, "owner");
        exp = json_object_get(doc, "expires_at_ms");
        /* never list what has expired, whatever Redis has not evicted yet */
        if (!json_is_integer(exp) || json_integer_value(exp) <= now) {
            json_decref(doc);
            continue;
        }
        docs[n] = doc;
        entries[n].asset = id->str;
        entries[n].owner = json_is_string(owner) ? json_string_value(owner) : "";
        entries[n].expires_at_ms = json_integer_value(exp);
        n++;
    }
    r.outcome = RESV_DONE;
    r.app = op->app;
    r.entries = entries;
    r.nentries = n;
    finish(op, &r);
    for (size_t i = 0; i < n; i++)
        json_decref(docs[i]);
    free(docs);
    free(entries);
}

static void
on_op_reply(void *privdata, redisReply *reply)
{
    resv_op_t *op = privdata;
    resv_mgr_t *m = op->m;
    resv_result_t r = {0};

    op->req = NULL;
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        fail(op, reply);
    } else if (op->kind == OP_RESERVE) {
        reserve_reply(op, reply);
    } else if (op->kind == OP_LIST) {
        list_reply(op, reply);
    } else if (reply->type != REDIS_REPLY_INTEGER) {
        fail(op, reply);
    } else {
        r.app = op->app;
        r.asset = op->asset;
        r.outcome = reply->integer == 1 ? RESV_DONE : RESV_NOT_FOUND;
        if (reply->integer == 1)
            m->metrics.released++;
        else
            m->metrics.not_found++;
        finish(op, &r);
    }
    op_free(op);
}

static resv_op_t *
op_new(resv_mgr_t *m, enum op_kind kind, const char *app, resv_cb cb, void *privdata)
{
    resv_op_t *op = util_calloc(1, sizeof *op);
    op->m = m;
    op->kind = kind;
    snprintf(op->app, sizeof op->app, "%s", app);
    op->cb = cb;
    op->privdata = privdata;
    return op;
}

static int
run(resv_op_t *op, enum script s, int numkeys, int argc, const char **argv, const size_t *lens,
    resv_op_t **out)
{
    resv_mgr_t *m = op->m;
    int rc = m->closing ? UV_ECANCELED : !m->ready ? UV_ENOTCONN : 0;

    if (rc == 0)
        rc = bus_script_request(m->bus, &m->ops, &op->req, &m->scripts[s], numkeys, argc, argv,
                                lens, on_op_reply, op);
    if (rc != 0) {
        op_free(op);
        return rc;
    }
    /* an app served is an app watched */
    app_get(m, op->app, strlen(op->app));
    *out = op;
    return 0;
}

int
resv_reserve(resv_mgr_t *m, const char *app, const resv_reserve_args_t *a, resv_cb cb,
             void *privdata, resv_op_t **out)
{
    resv_op_t *op = op_new(m, OP_RESERVE, app, cb, privdata);
    size_t n = a->nassets, argc = 1 + n + 2 + n;
    const char **argv = util_calloc(argc, sizeof *argv);
    size_t *lens = util_calloc(argc, sizeof *lens);
    char **keys = util_calloc(n + 1, sizeof *keys);
    char index[RESV_APP_MAX + 16], ttl[24];
    int rc;

    snprintf(index, sizeof index, "reserved:{%s}", app);
    snprintf(ttl, sizeof ttl, "%lld", a->ttl_s * 1000);
    argv[0] = index;
    for (size_t i = 0; i < n; i++) {
        size_t kl = strlen(app) + strlen(a->assets[i]) + 16;
        keys[i] = util_malloc(kl);
        snprintf(keys[i], kl, "reserved:{%s}:%s", app, a->assets[i]);
        argv[1 + i] = keys[i];
        argv[1 + n + 2 + i] = a->assets[i];
    }
    argv[1 + n] = ttl;
    argv[1 + n + 1] = a->owner;
    for (size_t i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    op->assets = util_calloc(n, sizeof *op->assets);
    for (size_t i = 0; i < n; i++)
        op->assets[op->nassets++] = util_strdup(a->assets[i]);
    rc = run(op, S_RESERVE, (int)(1 + n), (int)argc, argv, lens, out);
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
    free(lens);
    free(argv);
    return rc;
}

int
resv_release(resv_mgr_t *m, const char *app, const char *asset, resv_cb cb, void *privdata,
             resv_op_t **out)
{
    resv_op_t *op = op_new(m, OP_RELEASE, app, cb, privdata);
    char index[RESV_APP_MAX + 16], key[RESV_APP_MAX + RESV_ASSET_MAX + 16];
    const char *argv[3] = {index, key, asset};
    size_t lens[3];

    snprintf(op->asset, sizeof op->asset, "%s", asset);
    lens[0] = (size_t)snprintf(index, sizeof index, "reserved:{%s}", app);
    lens[1] = (size_t)snprintf(key, sizeof key, "reserved:{%s}:%s", app, asset);
    lens[2] = strlen(asset);
    return run(op, S_RELEASE, 2, 3, argv, lens, out);
}

int
resv_list(resv_mgr_t *m, const char *app, resv_cb cb, void *privdata, resv_op_t **out)
{
    resv_op_t *op = op_new(m, OP_LIST, app, cb, privdata);
    char index[RESV_APP_MAX + 16], prefix[RESV_APP_MAX + 16];
    const char *argv[2] = {index, prefix};
    size_t lens[2];

    lens[0] = (size_t)snprintf(index, sizeof index, "reserved:{%s}", app);
    lens[1] = (size_t)snprintf(prefix, sizeof prefix, "reserved:{%s}:", app);
    return run(op, S_LIST, 1, 2, argv, lens, out);
}

void
resv_cancel(resv_op_t *op)
{
    bus_cancel(op->req); /* its callback never fires: the op can go now */
    op_free(op);
}

/* ---- life ---- */

resv_mgr_t *
resv_mgr_new(uv_loop_t *loop, bus_t *bus)
{
    resv_mgr_t *m = util_calloc(1, sizeof *m);
    m->loop = loop;
    m->bus = bus;
    for (int s = 0; s < S_COUNT; s++)
        m->scripts[s].text = script_text[s];
    uv_timer_init(loop, &m->resync);
    m->resync.data = m;
    m->handles_open = 1;
    return m;
}

const resv_metrics_t *
resv_metrics(const resv_mgr_t *m)
{
    return &m->metrics;
}

static void
on_app_closed(uv_handle_t *h)
{
    resv_app_t *a = h->data;
    resv_mgr_t *m = a->m;

    free(a); /* its sweep, if any, was cancelled by resv_mgr_close */
    m->handles_open--;
    maybe_free_mgr(m);
}

/* A caller's request still in flight at close: told, then freed. */
static void
answer_cancelled(void *privdata)
{
    resv_op_t *op = privdata;
    resv_result_t r = {0};

    op->req = NULL;
    r.error = UV_ECANCELED;
    r.app = op->app;
    r.detail = "shutting down";
    finish(op, &r);
    op_free(op);
}

static void
on_resync_closed(uv_handle_t *h)
{
    resv_mgr_t *m = h->data;
    m->handles_open--;
    maybe_free_mgr(m);
}

void
resv_mgr_close(resv_mgr_t *m, void (*close_cb)(void *privdata), void *privdata)
{
    if (m->closing)
        return;
    m->closing = 1;
    m->close_cb = close_cb;
    m->close_privdata = privdata;
    bus_group_cancel(&m->reqs, NULL);
    bus_group_cancel(&m->ops, answer_cancelled);
    for (util_hnode_t *n = util_htable_next(&m->apps, NULL), *next; n; n = next) {
        resv_app_t *a = UTIL_CONTAINER_OF(n, resv_app_t, node);
        next = util_htable_next(&m->apps, n);
        util_htable_remove(&m->apps, n);
        uv_close((uv_handle_t *)&a->timer, on_app_closed);
    }
    util_htable_free(&m->apps);
    uv_close((uv_handle_t *)&m->resync, on_resync_closed);
}
