/*
 * cache/store_redis.c: the embedded source of truth, the Redis hash
 * `configuration-store`: field = key, value = JSON {value, category,
 * version, updatedAt}. A write is one Lua script, so the version grows
 * atomically whatever the number of hubs.
 */
#include "cache.h"
#include "util.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define STORE_KEY "configuration-store"

/* KEYS[1] store, KEYS[2] configuration:<key>; ARGV[1] key, ARGV[2] value
 * JSON, ARGV[3] category, ARGV[4] "1" when the category was given, ARGV[5]
 * the L2 TTL in seconds. One script for the whole write: the store (version
 * + 1), L2, the bundles of the new and the previous category (and their
 * generations, see cache.c), then the invalidation. Returns the new
 * document, with the previous category. */
static const char put_lua[] =
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "local v, cat, prev = 0, ARGV[3], ARGV[3] "
    "local old = redis.call('HGET', KEYS[1], ARGV[1]) "
    "if old then "
    "  local ok, d = pcall(cjson.decode, old) "
    "  if ok and type(d) == 'table' then "
    "    if tonumber(d.version) then v = tonumber(d.version) end "
    "    if type(d.category) == 'string' then prev = d.category end "
    "    if ARGV[4] ~= '1' and type(d.category) == 'string' then cat = d.category end "
    "  end "
    "end "
    "v = v + 1 "
    "local doc = '{\"value\":' .. ARGV[2] .. ',\"category\":' .. cjson.encode(cat) .. "
    "  ',\"version\":' .. string.format('%d', v) .. ',\"updatedAt\":' .. "
    "  string.format('%d', now) .. '}' "
    "redis.call('HSET', KEYS[1], ARGV[1], doc) "
    "redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[5]) "
    "for _, c in ipairs({cat, prev}) do "
    "  redis.call('DEL', 'configurationCategory:' .. c .. ':0') "
    "  redis.call('INCR', 'coordhub:config-gen:' .. c) "
    "end "
    "redis.call('PUBLISH', '" UTIL_CHANNEL_CONFIG_INVALIDATE
    "', '{\"key\":' .. cjson.encode(ARGV[1]) .. "
    "  ',\"version\":' .. string.format('%d', v) .. '}') "
    /* the answer also names the category before the write (not stored) */
    "return string.sub(doc, 1, -2) .. ',\"previousCategory\":' .. cjson.encode(prev) .. '}'";

/* KEYS[1] store; ARGV[1] category. {key, doc, key, doc, ...}. */
static const char list_lua[] = "local all = redis.call('HGETALL', KEYS[1]) "
                               "local out = {} "
                               "for i = 1, #all, 2 do "
                               "  local ok, d = pcall(cjson.decode, all[i + 1]) "
                               "  if ok and type(d) == 'table' and d.category == ARGV[1] then "
                               "    out[#out + 1] = all[i]; out[#out + 1] = all[i + 1] "
                               "  end "
                               "end "
                               "return out";

typedef struct rstore {
    cache_store_t base;
    bus_t *bus;
    bus_script_t put_script, list_script;
    unsigned l2_ttl_s;
    /* every call in flight, privdata its rop_t: closing cancels them and
     * frees what they own (docs/requests.md) */
    bus_group_t ops;
} rstore_t;

typedef struct rop {
    rstore_t *s;
    char *key;
    cache_store_cb cb;
    void *privdata;
    int list;
} rop_t;

/* Parses a stored document; 0 or UV_EINVAL. */
static int
parse_doc(const char *key, const char *text, size_t len, cache_doc_t *d)
{
    json_t *o = json_loadb(text, len, 0, NULL);
    json_t *v = json_object_get(o, "value"), *cat = json_object_get(o, "category"),
           *ver = json_object_get(o, "version"), *at = json_object_get(o, "updatedAt");

    memset(d, 0, sizeof *d);
    if (!json_is_object(o) || v == NULL || !json_is_integer(ver)) {
        json_decref(o);
        return UV_EINVAL;
    }
    d->key = util_strdup(key);
    d->value = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    d->category = util_strdup(json_is_string(cat) ? json_string_value(cat) : "");
    d->version = json_integer_value(ver);
    d->updated_at_ms = json_is_integer(at) ? json_integer_value(at) : 0;
    if (json_is_string(json_object_get(o, "previousCategory")))
        d->prev_category = util_strdup(json_string_value(json_object_get(o, "previousCategory")));
    json_decref(o);
    return 0;
}

static void
op_free(void *p)
{
    rop_t *op = p;
    free(op->key);
    free(op);
}

static void
op_done(rop_t *op, int error, enum cache_outcome outcome, const cache_doc_t *docs, size_t n)
{
    op->cb(op->privdata, error, outcome, docs, n);
    op_free(op);
}

static void
on_reply(void *privdata, redisReply *r)
{
    rop_t *op = privdata;
    cache_doc_t *docs;
    size_t n = 0;

    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        if (r)
            LOG_WARN("cache", "configuration store refused: %s", r->str);
        op_done(op, UV_ENOTCONN, CACHE_NOT_FOUND, NULL, 0);
        return;
    }
    if (!op->list) {
        cache_doc_t d;
        if (r->type == REDIS_REPLY_NIL) {
            op_done(op, 0, CACHE_NOT_FOUND, NULL, 0);
        } else if (r->type == REDIS_REPLY_STRING && parse_doc(op->key, r->str, r->len, &d) == 0) {
            op_done(op, 0, CACHE_FOUND, &d, 1);
            cache_doc_free(&d);
        } else {
            LOG_WARN("cache", "malformed document for '%s' in " STORE_KEY, op->key);
            op_done(op, 0, CACHE_NOT_FOUND, NULL, 0);
        }
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY) {
        op_done(op, UV_ENOTCONN, CACHE_NOT_FOUND, NULL, 0);
        return;
    }
    docs = util_calloc(r->elements / 2 + 1, sizeof *docs);
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING &&
            parse_doc(k->str, v->str, v->len, &docs[n]) == 0)
            n++;
    }
    op_done(op, 0, CACHE_FOUND, docs, n);
    for (size_t i = 0; i < n; i++)
        cache_doc_free(&docs[i]);
    free(docs);
}

static rop_t *
op_new(rstore_t *s, const char *key, cache_store_cb cb, void *privdata)
{
    rop_t *op = util_calloc(1, sizeof *op);
    op->s = s;
    op->key = util_strdup(key);
    op->cb = cb;
    op->privdata = privdata;
    return op;
}

static int
started(rop_t *op, int rc)
{
    if (rc != 0) {
        op_free(op);
        return UV_ENOTCONN;
    }
    return 0;
}

static int
rs_get(cache_store_t *base, const char *key, cache_store_cb cb, void *privdata)
{
    rstore_t *s = (rstore_t *)base;
    rop_t *op = op_new(s, key, cb, privdata);
    return started(op,
                   bus_request(s->bus, &s->ops, NULL, on_reply, op, "HGET " STORE_KEY " %s", key));
}

static int
rs_put(cache_store_t *base, const char *key, const char *value, const char *category,
       cache_store_cb cb, void *privdata)
{
    rstore_t *s = (rstore_t *)base;
    rop_t *op = op_new(s, key, cb, privdata);
    char l2key[CACHE_KEY_MAX + 32], ttl[16];
    const char *argv[7] = {
        STORE_KEY, l2key, key, value, category ? category : "", category ? "1" : "0", ttl};
    size_t lens[7];

    snprintf(l2key, sizeof l2key, "configuration:%s", key);
    snprintf(ttl, sizeof ttl, "%u", s->l2_ttl_s);
    for (int i = 0; i < 7; i++)
        lens[i] = strlen(argv[i]);
    return started(op, bus_script_request(s->bus, &s->ops, NULL, &s->put_script, 2, 7, argv, lens,
                                          on_reply, op));
}

static int
rs_list(cache_store_t *base, const char *category, cache_store_cb cb, void *privdata)
{
    rstore_t *s = (rstore_t *)base;
    rop_t *op = op_new(s, category, cb, privdata);
    const char *argv[2] = {STORE_KEY, category};
    size_t lens[2] = {strlen(STORE_KEY), strlen(category)};

    op->list = 1;
    return started(op, bus_script_request(s->bus, &s->ops, NULL, &s->list_script, 1, 2, argv, lens,
                                          on_reply, op));
}

static void
rs_close(cache_store_t *base, void (*cb)(void *), void *privdata)
{
    rstore_t *s = (rstore_t *)base;

    bus_group_cancel(&s->ops, op_free);
    free(s);
    if (cb)
        cb(privdata);
}

static const cache_store_ops_t redis_ops = {
    .name = "redis",
    .put_publishes = 1,
    .get = rs_get,
    .put = rs_put,
    .list = rs_list,
    .close = rs_close,
};

cache_store_t *
cache_store_redis_new(bus_t *bus, unsigned l2_ttl_s)
{
    rstore_t *s = util_calloc(1, sizeof *s);
    s->base.ops = &redis_ops;
    s->bus = bus;
    s->l2_ttl_s = l2_ttl_s ? l2_ttl_s : 180;
    s->put_script.text = put_lua;
    s->list_script.text = list_lua;
    return &s->base;
}
