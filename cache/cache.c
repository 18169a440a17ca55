/*
 * cache/cache.c: L1, the read and write paths, invalidation and watches.
 *
 * Trust. An L1 entry is fresh only if it was filled in the current epoch,
 * tracking is on, and it is younger than the L1 TTL. The epoch grows when
 * the subscriber connection drops or tracking cannot be enabled: what was
 * learnt before may have been overwritten while we could not hear it.
 * While Redis is down, entries younger than the TTL may still be served,
 * marked stale.
 *
 * The in-flight race. A fetch of a key records that it is in flight; an
 * invalidation of the key meanwhile marks it. A marked fetch fills nothing
 * into L1 and is retried (while it keeps being overtaken, up to a bound),
 * so a GET answer overtaken by an
 * invalidation never becomes a cached value.
 *
 * Lifetimes (docs/requests.md). Every Redis request that points at our
 * memory is in the bus group `reqs`, and the store's calls end with the
 * store; cache_close cancels both, then answers (UV_ECANCELED) and frees
 * what it still owes: the fetches with their waiters, and the writes and
 * category reads on the `live` list. Nothing counts replies.
 */
#include "cache.h"
#include "util.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define WATCH_MAX 10000
#define TRACKING_RETRY_MS 1000
#define FETCH_RETRIES 8 /* an overtaken fetch is read again, up to this often */

typedef struct entry {
    cache_doc_t doc;
    uint64_t filled_ms;
    unsigned epoch;
    util_hnode_t node; /* in `l1`, keyed by doc.key */
} entry_t;

typedef struct bundle {
    char category[CACHE_CATEGORY_MAX + 1];
    cache_doc_t *docs;
    size_t n;
    uint64_t filled_ms;
    unsigned epoch;
    struct bundle *next;
} bundle_t;

typedef struct watch {
    char key[CACHE_KEY_MAX + 1];
    int have;   /* a (version, value) has been seen */
    int absent; /* the last read found nothing */
    long long version;
    char *value;
    util_hnode_t node; /* in `watches`, keyed by `key` */
} watch_t;

enum req_kind { REQ_GET, REQ_LIST, REQ_PUT, REQ_WATCH };

struct cache_req {
    cache_t *c;
    enum req_kind kind;
    char key[CACHE_KEY_MAX + 1];
    char *value;    /* put */
    char *category; /* put, list */
    union {
        cache_get_cb get;
        cache_list_cb list;
        cache_put_cb put;
    } cb;
    void *privdata;
    int cancelled;                   /* the caller is gone: answer nobody */
    struct cache_req *next;          /* in a fetch's waiters */
    struct cache_req *lprev, *lnext; /* puts and lists: the cache's `live` */
    uint64_t t0;                     /* when the store call started, for its latency */
    /* put */
    cache_doc_t doc;
    /* list */
    unsigned bundle_gen;
    char gen[24]; /* the category's generation in Redis before the store list */
    cache_doc_t *docs;
    size_t ndocs;
};

/* One fetch of a key, shared by every concurrent reader (single flight). */
typedef struct fetch {
    cache_t *c;
    char key[CACHE_KEY_MAX + 1];
    int invalidated;
    int retries;
    int pending; /* 2: L2 and store both outstanding */
    int store_error;
    enum cache_outcome store_outcome;
    cache_doc_t store_doc;
    int have_l2;
    char *l2_value;
    int failed;
    uint64_t t0;
    cache_req_t *waiters;
    util_hnode_t node; /* in `fetches` (while `linked`), keyed by `key` */
    int linked;
} fetch_t;

struct cache {
    uv_loop_t *loop;
    bus_t *bus;
    cache_store_t *store;
    cache_options_t o;
    util_htable_t l1;      /* entry_t by key */
    bundle_t *bundles;     /* few, and all dropped at every invalidation: a list */
    unsigned bundle_gen;   /* grows at every invalidation: a list in flight is then not cached */
    util_htable_t watches; /* watch_t by key */
    util_htable_t fetches; /* fetch_t by key: at most one per key */
    unsigned epoch;
    int ready;
    int tracking_ok;
    uv_timer_t retry; /* re-enabling tracking */
    bus_script_t write_script;
    bus_script_t bundle_script;
    cache_metrics_t m;
    bus_group_t reqs;  /* our Redis requests (docs/requests.md) */
    cache_req_t *live; /* puts and lists in flight */
    int closing;
    int store_closed;
    int handles_open;
    void (*close_cb)(void *);
    void *close_privdata;
};

static int start_fetch(cache_t *c, fetch_t *f);
static int fetch_key(cache_t *c, const char *key, cache_req_t *r);

/* KEYS[1] configuration:<key>, KEYS[2] its category's bundle, KEYS[3] that
 * category's generation, KEYS[4] and KEYS[5] the same for the category
 * before the write; ARGV[1] value, ARGV[2] L2 TTL s, ARGV[3] the
 * invalidation. After the store: L2, the bundles (a bundle being filled
 * from an older read sees its generation move and is not written), then
 * every hub hears it. */
static const char write_lua[] =
    "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) "
    "redis.call('DEL', KEYS[2]) "
    "redis.call('INCR', KEYS[3]) "
    "if KEYS[4] ~= KEYS[2] then "
    "  redis.call('DEL', KEYS[4]) redis.call('INCR', KEYS[5]) "
    "end "
    "redis.call('PUBLISH', '" UTIL_CHANNEL_CONFIG_INVALIDATE "', ARGV[3]) "
    "return 1";

/* KEYS[1] the bundle, KEYS[2] its generation; ARGV[1] the bundle JSON,
 * ARGV[2] the generation read before the store was listed, ARGV[3] TTL s. */
static const char bundle_lua[] = "if (redis.call('GET', KEYS[2]) or '0') == ARGV[2] then "
                                 "  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3]) "
                                 "  return 1 end return 0";

static void
maybe_free(cache_t *c)
{
    if (!c->closing || c->handles_open > 0 || !c->store_closed)
        return;
    if (c->close_cb)
        c->close_cb(c->close_privdata);
    free(c);
}

/* ---- L1 ---- */

static entry_t *
l1_find(cache_t *c, const char *key)
{
    util_hnode_t *n = util_htable_find(&c->l1, key, strlen(key));
    return n ? UTIL_CONTAINER_OF(n, entry_t, node) : NULL;
}

static void
l1_drop(cache_t *c, const char *key)
{
    entry_t *e = l1_find(c, key);
    if (e == NULL)
        return;
    util_htable_remove(&c->l1, &e->node);
    cache_doc_free(&e->doc);
    free(e);
}

static void
l1_clear(cache_t *c)
{
    util_hnode_t *n, *next;

    for (n = util_htable_next(&c->l1, NULL); n != NULL; n = next) {
        entry_t *e = UTIL_CONTAINER_OF(n, entry_t, node);
        next = util_htable_next(&c->l1, n);
        cache_doc_free(&e->doc);
        free(e);
    }
    util_htable_free(&c->l1);
}

static void
bundles_clear(cache_t *c)
{
    while (c->bundles) {
        bundle_t *b = c->bundles;
        c->bundles = b->next;
        for (size_t i = 0; i < b->n; i++)
            cache_doc_free(&b->docs[i]);
        free(b->docs);
        free(b);
    }
    c->bundle_gen++;
}

static void
l1_put(cache_t *c, const cache_doc_t *doc)
{
    entry_t *e;

    l1_drop(c, doc->key);
    if (c->l1.count >= c->o.l1_max)
        l1_clear(c); /* a backstop bound, not an LRU: keys are few in practice */
    e = util_calloc(1, sizeof *e);
    cache_doc_copy(&e->doc, doc);
    e->filled_ms = uv_now(c->loop);
    e->epoch = c->epoch;
    util_htable_insert(&c->l1, &e->node, e->doc.key, strlen(e->doc.key));
}

/* A fresh entry, or (when Redis is down) one young enough to serve stale. */
static entry_t *
l1_get(cache_t *c, const char *key, int *stale)
{
    entry_t *e = l1_find(c, key);
    if (e == NULL || uv_now(c->loop) - e->filled_ms >= c->o.l1_ttl_ms)
        return NULL;
    if (c->ready && c->tracking_ok && e->epoch == c->epoch) {
        *stale = 0;
        return e;
    }
    if (!c->ready) {
        *stale = 1;
        return e;
    }
    return NULL;
}

/* ---- watches ---- */

static watch_t *
watch_find(cache_t *c, const char *key)
{
    util_hnode_t *n = util_htable_find(&c->watches, key, strlen(key));
    return n ? UTIL_CONTAINER_OF(n, watch_t, node) : NULL;
}

/* Reports a change only when (version, value) differs from the last one
 * reported: the publish and the tracking paths both end here, once each. */
static void
watch_observe(cache_t *c, const char *key, const cache_doc_t *doc)
{
    watch_t *w = watch_find(c, key);

    if (w == NULL)
        return;
    if (doc == NULL) {
        /* absent is a state too: its creation will be a change */
        w->have = 1;
        w->absent = 1;
        return;
    }
    if (w->have && !w->absent && w->version == doc->version && w->value &&
        strcmp(w->value, doc->value) == 0)
        return;
    free(w->value);
    w->value = util_strdup(doc->value);
    w->version = doc->version;
    w->absent = 0;
    if (!w->have) {
        w->have = 1; /* the baseline: not a change */
        return;
    }
    c->m.changes++;
    if (c->o.on_change)
        c->o.on_change(c->o.privdata, key, doc->value, doc->version);
}

/* ---- fetch (single flight) ---- */

static fetch_t *
fetch_find(cache_t *c, const char *key)
{
    util_hnode_t *n = util_htable_find(&c->fetches, key, strlen(key));
    return n ? UTIL_CONTAINER_OF(n, fetch_t, node) : NULL;
}

static void
fetch_unlink(cache_t *c, fetch_t *f)
{
    if (f->linked)
        util_htable_remove(&c->fetches, &f->node);
    f->linked = 0;
}

static void
req_free(cache_req_t *r)
{
    free(r->value);
    free(r->category);
    cache_doc_free(&r->doc);
    for (size_t i = 0; i < r->ndocs; i++)
        cache_doc_free(&r->docs[i]);
    free(r->docs);
    free(r);
}

static void
fetch_done(cache_t *c, fetch_t *f)
{
    cache_doc_t doc = {0}, *result = NULL;
    int error = 0, stale = 0;
    enum cache_outcome outcome = CACHE_FOUND;
    cache_req_t *r;

    if (f->failed) {
        error = UV_ENOTCONN;
    } else if (f->have_l2 || f->store_outcome == CACHE_FOUND) {
        /* the value from L2 when present (it is what the platform reads, and
         * what a tool writing around the hub changed); version and category
         * from the store */
        doc.key = util_strdup(f->key);
        doc.value = util_strdup(f->have_l2 ? f->l2_value : f->store_doc.value);
        doc.category = util_strdup(f->store_outcome == CACHE_FOUND ? f->store_doc.category : "");
        doc.version = f->store_outcome == CACHE_FOUND ? f->store_doc.version : 0;
        doc.updated_at_ms = f->store_outcome == CACHE_FOUND ? f->store_doc.updated_at_ms : 0;
        result = &doc;
        if (f->have_l2)
            c->m.hits_l2++;
        else
            c->m.hits_store++;
    } else {
        outcome = CACHE_NOT_FOUND;
    }
    if (f->invalidated && !f->failed && f->retries < FETCH_RETRIES) {
        /* overtaken by an invalidation: this answer may be stale, read again
         * (as often as it is overtaken, up to a bound) */
        f->retries++;
        f->invalidated = 0;
        cache_doc_free(&doc);
        fetch_unlink(c, f);
        if (start_fetch(c, f) == 0) {
            f->failed = 1;
            fetch_done(c, f); /* from a reply callback: not inside a caller's call */
        }
        return;
    }
    if (result && !f->invalidated && c->ready && c->tracking_ok)
        l1_put(c, result);
    /* the store had it but L2 did not: fill L2 for the platform's readers
     * (best effort: a lost SET only means the next read fills it) */
    if (result && !f->have_l2 && f->store_outcome == CACHE_FOUND && c->ready)
        bus_command(c->bus, NULL, NULL, "SET configuration:%s %s EX %u NX", f->key,
                    f->store_doc.value, c->o.l2_ttl_s); /* NX: never over a newer write */
    /* an answer overtaken even by its last retry is served (writes keep
     * coming) but neither cached nor reported: watchers are read again */
    if (error == 0 && !f->invalidated)
        watch_observe(c, f->key, result);
    fetch_unlink(c, f);
    if (f->invalidated && c->ready && watch_find(c, f->key) != NULL) {
        cache_req_t *wr = util_calloc(1, sizeof *wr);
        wr->c = c;
        wr->kind = REQ_WATCH;
        snprintf(wr->key, sizeof wr->key, "%s", f->key);
        if (fetch_key(c, f->key, wr) != 0)
            req_free(wr); /* Redis is gone: refresh_watches re-reads at reconnect */
    }
    while ((r = f->waiters) != NULL) {
        f->waiters = r->next;
        if (!r->cancelled && r->kind == REQ_GET) {
            if (error != 0) {
                /* Redis went away mid-fetch: L1 may still answer, marked */
                entry_t *e = l1_get(c, f->key, &stale);
                r->cb.get(r->privdata, e ? 0 : error, CACHE_FOUND, e ? &e->doc : NULL, e ? 1 : 0);
                if (e)
                    c->m.stale_served++;
            } else {
                r->cb.get(r->privdata, 0, outcome, result, 0);
            }
        }
        req_free(r);
    }
    cache_doc_free(&doc);
    cache_doc_free(&f->store_doc);
    free(f->l2_value);
    free(f);
}

static void
fetch_step(cache_t *c, fetch_t *f)
{
    if (--f->pending == 0)
        fetch_done(c, f);
}

static void
on_fetch_l2(void *privdata, redisReply *r)
{
    fetch_t *f = privdata;
    cache_t *c = f->c;

    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        f->failed = 1;
    else if (r->type == REDIS_REPLY_STRING) {
        f->have_l2 = 1;
        f->l2_value = cache_l2_to_json(r->str, r->len);
    }
    fetch_step(c, f);
}

static void
on_fetch_store(void *privdata, int error, enum cache_outcome outcome, const cache_doc_t *docs,
               size_t n)
{
    fetch_t *f = privdata;
    cache_t *c = f->c;

    c->m.store_seconds += (double)(uv_now(c->loop) - f->t0) / 1000.0;
    f->store_error = error;
    f->store_outcome = error == 0 && n == 1 ? outcome : CACHE_NOT_FOUND;
    if (f->store_outcome == CACHE_FOUND)
        cache_doc_copy(&f->store_doc, &docs[0]);
    if (error != 0)
        f->failed = 1;
    fetch_step(c, f);
}

/* Sends the fetch's two reads; returns how many went out. None: nothing
 * will answer, and the caller ends the fetch. */
static int
start_fetch(cache_t *c, fetch_t *f)
{
    free(f->l2_value);
    f->l2_value = NULL;
    f->have_l2 = 0;
    cache_doc_free(&f->store_doc);
    f->store_error = 0;
    f->store_outcome = CACHE_NOT_FOUND;
    f->failed = 0;
    f->pending = 2;
    f->t0 = uv_now(c->loop);
    util_htable_insert(&c->fetches, &f->node, f->key, strlen(f->key));
    f->linked = 1;
    c->m.misses++;
    c->m.store_calls++;
    if (bus_request(c->bus, &c->reqs, NULL, on_fetch_l2, f, "GET configuration:%s", f->key) != 0) {
        f->failed = 1;
        f->pending--;
    }
    if (c->store->ops->get(c->store, f->key, on_fetch_store, f) != 0) {
        f->failed = 1;
        f->pending--;
    }
    return f->pending;
}

/* Joins the fetch of `key`, or starts one. */
/* Adds `r` to the fetch of `key`, starting one if none is in flight.
 * 0, or UV_ENOTCONN when no read could be sent: `r` is then not
 * attached and the caller still owns it. Never answers inside the call. */
static int
fetch_key(cache_t *c, const char *key, cache_req_t *r)
{
    fetch_t *f = fetch_find(c, key);

    if (f == NULL) {
        f = util_calloc(1, sizeof *f);
        f->c = c;
        snprintf(f->key, sizeof f->key, "%s", key);
        r->next = NULL;
        f->waiters = r;
        if (start_fetch(c, f) == 0) {
            fetch_unlink(c, f);
            cache_doc_free(&f->store_doc);
            free(f);
            return UV_ENOTCONN;
        }
        return 0;
    }
    r->next = f->waiters;
    f->waiters = r;
    return 0;
}

/* ---- invalidation ---- */

static void
invalidate_key(cache_t *c, const char *key)
{
    fetch_t *f = fetch_find(c, key);
    cache_req_t *r;

    l1_drop(c, key);
    bundles_clear(c);
    if (f != NULL) {
        f->invalidated = 1;
        return; /* its completion re-reads, and tells watchers */
    }
    if (watch_find(c, key) != NULL && c->ready) {
        /* someone watches it: re-read to learn (and report) the change */
        r = util_calloc(1, sizeof *r);
        r->c = c;
        r->kind = REQ_WATCH;
        snprintf(r->key, sizeof r->key, "%s", key);
        if (fetch_key(c, key, r) != 0)
            req_free(r); /* Redis is gone: refresh_watches re-reads at reconnect */
    }
}

static void
refresh_watches(cache_t *c)
{
    /* invalidate_key starts fetches, never watches */
    for (util_hnode_t *n = util_htable_next(&c->watches, NULL); n;
         n = util_htable_next(&c->watches, n))
        invalidate_key(c, UTIL_CONTAINER_OF(n, watch_t, node)->key);
}

/* Nothing learnt so far is trusted as fresh any more. */
static void
distrust_all(cache_t *c)
{
    c->epoch++;
    bundles_clear(c);
    for (util_hnode_t *n = util_htable_next(&c->fetches, NULL); n;
         n = util_htable_next(&c->fetches, n))
        UTIL_CONTAINER_OF(n, fetch_t, node)->invalidated = 1;
}

void
cache_on_publish(cache_t *c, const char *payload, size_t len)
{
    json_t *o = json_loadb(payload, len, 0, NULL);
    json_t *k = json_object_get(o, "key");

    if (json_is_string(k) && cache_valid_key(json_string_value(k), json_string_length(k)) == 0) {
        c->m.inval_publish++;
        invalidate_key(c, json_string_value(k));
    } else {
        LOG_WARN("cache", "ignored a malformed configuration-invalidate message");
    }
    json_decref(o);
}

void
cache_on_tracking(cache_t *c, const redisReply *keys)
{
    static const char prefix[] = "configuration:";

    if (keys == NULL) {
        /* Redis flushed its keyspace (FLUSHALL, FLUSHDB): forget it all */
        c->m.inval_flush++;
        distrust_all(c);
        l1_clear(c);
        refresh_watches(c);
        return;
    }
    for (size_t i = 0; i < keys->elements; i++) {
        const redisReply *k = keys->element[i];
        if (k->type != REDIS_REPLY_STRING || k->len <= sizeof prefix - 1 ||
            memcmp(k->str, prefix, sizeof prefix - 1) != 0)
            continue;
        if (cache_valid_key(k->str + sizeof prefix - 1, k->len - (sizeof prefix - 1)) != 0)
            continue;
        c->m.inval_tracking++;
        invalidate_key(c, k->str + sizeof prefix - 1);
    }
}

/* ---- tracking ---- */

static void enable_tracking(cache_t *c);

static void
on_retry(uv_timer_t *t)
{
    enable_tracking(t->data);
}

static void
on_tracking_on(void *privdata, redisReply *r)
{
    cache_t *c = privdata;

    if (r != NULL && r->type == REDIS_REPLY_STATUS) {
        c->tracking_ok = 1;
        LOG_INFO("cache", "client tracking on: writes to configuration:* reach this hub");
        /* whatever changed while we could not hear it */
        refresh_watches(c);
        return;
    }
    c->tracking_ok = 0;
    c->m.tracking_errors++;
    distrust_all(c);
    LOG_WARN("cache", "client tracking could not be enabled (%s); L1 is bypassed until it is",
             r && r->type == REDIS_REPLY_ERROR ? r->str : "no reply");
    if (c->ready)
        uv_timer_start(&c->retry, on_retry, TRACKING_RETRY_MS, 0);
}

static void
enable_tracking(cache_t *c)
{
    long long id = bus_subscriber_id(c->bus);
    char ids[24];

    if (!c->ready || c->closing)
        return;
    snprintf(ids, sizeof ids, "%lld", id);
    /* off first: a tracking client cannot change its redirect or prefixes.
     * NOLOOP: our own writes are announced by our own publish. */
    bus_command(c->bus, NULL, NULL, "CLIENT TRACKING off");
    if (id <= 0 || bus_request(c->bus, &c->reqs, NULL, on_tracking_on, c,
                               "CLIENT TRACKING on REDIRECT %s BCAST PREFIX configuration: NOLOOP",
                               ids) != 0) {
        c->m.tracking_errors++;
        uv_timer_start(&c->retry, on_retry, TRACKING_RETRY_MS, 0);
    }
}

void
cache_on_redis_state(cache_t *c, int ready)
{
    c->ready = ready;
    if (!ready) {
        /* deaf from now on: distrust L1 (it may still serve stale) */
        c->tracking_ok = 0;
        c->m.inval_flush++;
        distrust_all(c);
        uv_timer_stop(&c->retry);
        return;
    }
    bus_script_preload(c->bus, &c->reqs, &c->write_script);
    bus_script_preload(c->bus, &c->reqs, &c->bundle_script);
    enable_tracking(c);
}

/* ---- public reads and writes ---- */

static cache_req_t *
req_new(cache_t *c, enum req_kind kind, const char *key, void *privdata)
{
    cache_req_t *r = util_calloc(1, sizeof *r);
    r->c = c;
    r->kind = kind;
    snprintf(r->key, sizeof r->key, "%s", key ? key : "");
    r->privdata = privdata;
    return r;
}

/* Puts and lists in flight are on `live`, so that cache_close finds them. */
static void
live_add(cache_t *c, cache_req_t *r)
{
    r->lprev = NULL;
    r->lnext = c->live;
    if (c->live)
        c->live->lprev = r;
    c->live = r;
}

static void
live_remove(cache_t *c, cache_req_t *r)
{
    if (r->lprev)
        r->lprev->lnext = r->lnext;
    else
        c->live = r->lnext;
    if (r->lnext)
        r->lnext->lprev = r->lprev;
    r->lprev = r->lnext = NULL;
}

int
cache_peek(cache_t *c, const char *key, const cache_doc_t **doc, int *stale)
{
    entry_t *e;

    if (c->closing)
        return 0;
    e = l1_get(c, key, stale);
    if (e == NULL)
        return 0;
    if (*stale)
        c->m.stale_served++;
    else
        c->m.hits_l1++;
    *doc = &e->doc;
    return 1;
}

int
cache_get(cache_t *c, const char *key, cache_get_cb cb, void *privdata, cache_req_t **req)
{
    cache_req_t *r;

    if (c->closing || !c->ready)
        return c->closing ? UV_ECANCELED : UV_ENOTCONN;
    r = req_new(c, REQ_GET, key, privdata);
    r->cb.get = cb;
    if (fetch_key(c, key, r) != 0) {
        req_free(r);
        return UV_ENOTCONN;
    }
    *req = r;
    return 0;
}

/* -- writes -- */

static void
put_finish(cache_req_t *r, int error)
{
    live_remove(r->c, r);
    if (!r->cancelled)
        r->cb.put(r->privdata, error, error == 0 ? &r->doc : NULL);
    req_free(r);
}

static void
on_write_published(void *privdata, redisReply *reply)
{
    cache_req_t *r = privdata;
    cache_t *c = r->c;

    /* read your own write: this hub's L1 must not answer the old value
     * between this answer and the arrival of its own publish */
    invalidate_key(c, r->key);
    put_finish(r, reply != NULL && reply->type == REDIS_REPLY_INTEGER ? 0 : UV_ENOTCONN);
}

static void
on_put_stored(void *privdata, int error, enum cache_outcome outcome, const cache_doc_t *docs,
              size_t n)
{
    cache_req_t *r = privdata;
    cache_t *c = r->c;
    char l2key[CACHE_KEY_MAX + 32], bundle[CACHE_CATEGORY_MAX + 40], ttl[16];
    char gen[CACHE_CATEGORY_MAX + 40], obundle[CACHE_CATEGORY_MAX + 40],
        ogen[CACHE_CATEGORY_MAX + 40];
    const char *argv[8], *prev;
    size_t lens[8];
    json_t *msg;
    char *payload;
    int rc;

    c->m.store_seconds += (double)(uv_now(c->loop) - r->t0) / 1000.0;
    (void)outcome;
    if (error != 0 || n != 1) {
        put_finish(r, UV_ENOTCONN);
        return;
    }
    cache_doc_copy(&r->doc, &docs[0]);
    c->m.writes++;
    if (c->store->ops->put_publishes) {
        /* the store's own script did L2, the bundles and the publish */
        invalidate_key(c, r->key);
        put_finish(r, 0);
        return;
    }
    /* L2, the bundles and the publish, in that order, in one script */
    prev = r->doc.prev_category ? r->doc.prev_category : r->doc.category;
    snprintf(l2key, sizeof l2key, "configuration:%s", r->key);
    snprintf(bundle, sizeof bundle, "configurationCategory:%s:0", r->doc.category);
    snprintf(gen, sizeof gen, "coordhub:config-gen:%s", r->doc.category);
    snprintf(obundle, sizeof obundle, "configurationCategory:%s:0", prev);
    snprintf(ogen, sizeof ogen, "coordhub:config-gen:%s", prev);
    snprintf(ttl, sizeof ttl, "%u", c->o.l2_ttl_s);
    msg = json_pack("{s:s,s:I}", "key", r->key, "version", (json_int_t)r->doc.version);
    payload = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    argv[0] = l2key;
    argv[1] = bundle;
    argv[2] = gen;
    argv[3] = obundle;
    argv[4] = ogen;
    argv[5] = r->doc.value;
    argv[6] = ttl;
    argv[7] = payload;
    for (int i = 0; i < 8; i++)
        lens[i] = strlen(argv[i]);
    rc = bus_script_request(c->bus, &c->reqs, NULL, &c->write_script, 5, 8, argv, lens,
                            on_write_published, r);
    free(payload);
    if (rc != 0)
        put_finish(r, UV_ENOTCONN);
}

int
cache_put(cache_t *c, const char *key, const char *value, const char *category, cache_put_cb cb,
          void *privdata, cache_req_t **req)
{
    cache_req_t *r;

    if (c->closing || !c->ready)
        return c->closing ? UV_ECANCELED : UV_ENOTCONN;
    r = req_new(c, REQ_PUT, key, privdata);
    r->cb.put = cb;
    r->value = util_strdup(value);
    r->category = category ? util_strdup(category) : NULL;
    r->t0 = uv_now(c->loop);
    c->m.store_calls++;
    if (c->store->ops->put(c->store, key, value, category, on_put_stored, r) != 0) {
        req_free(r);
        return UV_ENOTCONN;
    }
    live_add(c, r);
    *req = r;
    return 0;
}

/* -- category reads -- */

static bundle_t *
bundle_find(cache_t *c, const char *category)
{
    for (bundle_t *b = c->bundles; b; b = b->next)
        if (strcmp(b->category, category) == 0)
            return b;
    return NULL;
}

static void
list_finish(cache_req_t *r, int error)
{
    live_remove(r->c, r);
    if (!r->cancelled)
        r->cb.list(r->privdata, error, r->docs, r->ndocs, 0);
    req_free(r);
}

static void
on_list_overlay(void *privdata, redisReply *reply)
{
    cache_req_t *r = privdata;
    cache_t *c = r->c;
    bundle_t *b;
    json_t *arr;
    char *text;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != r->ndocs) {
        list_finish(r, UV_ENOTCONN);
        return;
    }
    /* values from L2 where present: what a tool writing around the hub set */
    for (size_t i = 0; i < r->ndocs; i++) {
        redisReply *v = reply->element[i];
        if (v->type == REDIS_REPLY_STRING) {
            free(r->docs[i].value);
            r->docs[i].value = cache_l2_to_json(v->str, v->len);
        }
    }
    if (r->bundle_gen == c->bundle_gen && c->ready && c->tracking_ok) {
        b = util_calloc(1, sizeof *b);
        snprintf(b->category, sizeof b->category, "%s", r->category);
        b->docs = util_calloc(r->ndocs + 1, sizeof *b->docs);
        for (size_t i = 0; i < r->ndocs; i++)
            cache_doc_copy(&b->docs[i], &r->docs[i]);
        b->n = r->ndocs;
        b->filled_ms = uv_now(c->loop);
        b->epoch = c->epoch;
        b->next = c->bundles;
        c->bundles = b;
    }
    /* the platform's bundle layout, for its readers: [{key, value, version}] */
    arr = json_array();
    for (size_t i = 0; i < r->ndocs; i++) {
        json_t *v = json_loads(r->docs[i].value, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        json_array_append_new(arr, json_pack("{s:s,s:o,s:I}", "key", r->docs[i].key, "value",
                                             v ? v : json_null(), "version",
                                             (json_int_t)r->docs[i].version));
    }
    text = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    {
        /* only if no write moved the category's generation since our read */
        char bkey[CACHE_CATEGORY_MAX + 40], gkey[CACHE_CATEGORY_MAX + 40], ttl[16];
        const char *argv[5] = {bkey, gkey, text, r->gen, ttl};
        size_t lens[5];
        snprintf(bkey, sizeof bkey, "configurationCategory:%s:0", r->category);
        snprintf(gkey, sizeof gkey, "coordhub:config-gen:%s", r->category);
        snprintf(ttl, sizeof ttl, "%u", c->o.l2_ttl_s);
        for (int i = 0; i < 5; i++)
            lens[i] = strlen(argv[i]);
        bus_script_request(c->bus, &c->reqs, NULL, &c->bundle_script, 2, 5, argv, lens, NULL, NULL);
    }
    free(text);
    list_finish(r, 0);
}

static void
on_list_stored(void *privdata, int error, enum cache_outcome outcome, const cache_doc_t *docs,
               size_t n)
{
    cache_req_t *r = privdata;
    cache_t *c = r->c;
    const char **argv;
    size_t *lens;
    int rc;

    c->m.store_seconds += (double)(uv_now(c->loop) - r->t0) / 1000.0;
    (void)outcome;
    if (error != 0) {
        list_finish(r, error);
        return;
    }
    r->docs = util_calloc(n + 1, sizeof *r->docs);
    for (size_t i = 0; i < n; i++)
        cache_doc_copy(&r->docs[i], &docs[i]);
    r->ndocs = n;
    if (n == 0) {
        list_finish(r, 0);
        return;
    }
    argv = util_calloc(n + 1, sizeof *argv);
    lens = util_calloc(n + 1, sizeof *lens);
    argv[0] = "MGET";
    lens[0] = 4;
    for (size_t i = 0; i < n; i++) {
        size_t kl = strlen(r->docs[i].key) + 16;
        char *k = util_malloc(kl);
        snprintf(k, kl, "configuration:%s", r->docs[i].key);
        argv[i + 1] = k;
        lens[i + 1] = strlen(k);
    }
    rc = bus_request_argv(c->bus, &c->reqs, NULL, on_list_overlay, r, (int)n + 1, argv, lens);
    for (size_t i = 0; i < n; i++)
        free((char *)argv[i + 1]);
    free(argv);
    free(lens);
    if (rc != 0)
        list_finish(r, UV_ENOTCONN);
}

static void
on_list_gen(void *privdata, redisReply *reply)
{
    cache_req_t *r = privdata;
    cache_t *c = r->c;

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        list_finish(r, UV_ENOTCONN);
        return;
    }
    snprintf(r->gen, sizeof r->gen, "%s", reply->type == REDIS_REPLY_STRING ? reply->str : "0");
    if (c->store->ops->list(c->store, r->category, on_list_stored, r) != 0)
        list_finish(r, UV_ENOTCONN);
}

int
cache_peek_list(cache_t *c, const char *category, const cache_doc_t **docs, size_t *n, int *stale)
{
    bundle_t *b;

    if (c->closing)
        return 0;
    b = bundle_find(c, category);
    if (b == NULL || uv_now(c->loop) - b->filled_ms >= c->o.l1_ttl_ms ||
        !((c->ready && c->tracking_ok && b->epoch == c->epoch) || !c->ready))
        return 0;
    if (c->ready)
        c->m.hits_l1++;
    else
        c->m.stale_served++;
    *docs = b->docs;
    *n = b->n;
    *stale = !c->ready;
    return 1;
}

int
cache_list(cache_t *c, const char *category, cache_list_cb cb, void *privdata, cache_req_t **req)
{
    cache_req_t *r;

    if (c->closing || !c->ready)
        return c->closing ? UV_ECANCELED : UV_ENOTCONN;
    r = req_new(c, REQ_LIST, NULL, privdata);
    r->cb.list = cb;
    r->category = util_strdup(category);
    r->bundle_gen = c->bundle_gen;
    r->t0 = uv_now(c->loop);
    c->m.misses++;
    c->m.store_calls++;
    /* the generation first, then the store: a write in between shows */
    if (bus_request(c->bus, &c->reqs, NULL, on_list_gen, r, "GET coordhub:config-gen:%s",
                    category) != 0) {
        req_free(r);
        return UV_ENOTCONN;
    }
    live_add(c, r);
    *req = r;
    return 0;
}

void
cache_cancel(cache_req_t *req)
{
    /* The work goes on (a write still invalidates, a read still fills L1);
     * only the answer is dropped. Freed when done, or by cache_close. */
    if (req != NULL)
        req->cancelled = 1;
}

int
cache_watch(cache_t *c, const char *key)
{
    watch_t *w = watch_find(c, key);
    cache_req_t *r;

    if (w != NULL)
        return 0;
    if (c->closing)
        return UV_ECANCELED;
    if (c->watches.count >= WATCH_MAX)
        return UV_ENOSPC;
    w = util_calloc(1, sizeof *w);
    snprintf(w->key, sizeof w->key, "%s", key);
    util_htable_insert(&c->watches, &w->node, w->key, strlen(w->key));
    if (c->ready) {
        /* the baseline, so that the first change is recognised as one */
        r = req_new(c, REQ_WATCH, key, NULL);
        if (fetch_key(c, key, r) != 0)
            req_free(r); /* Redis is gone: refresh_watches re-reads at reconnect */
    }
    return 0;
}

/* ---- life ---- */

cache_t *
cache_new(uv_loop_t *loop, bus_t *bus, cache_store_t *store, const cache_options_t *o)
{
    cache_t *c = util_calloc(1, sizeof *c);
    c->loop = loop;
    c->bus = bus;
    c->store = store;
    c->o = *o;
    if (c->o.l1_ttl_ms == 0)
        c->o.l1_ttl_ms = 60000;
    if (c->o.l1_max == 0)
        c->o.l1_max = 10000;
    if (c->o.l2_ttl_s == 0)
        c->o.l2_ttl_s = 180;
    c->write_script.text = write_lua;
    c->bundle_script.text = bundle_lua;
    uv_timer_init(loop, &c->retry);
    c->retry.data = c;
    c->handles_open = 1;
    return c;
}

const cache_metrics_t *
cache_metrics(const cache_t *c)
{
    return &c->m;
}

static void
on_retry_closed(uv_handle_t *h)
{
    cache_t *c = h->data;
    c->handles_open--;
    maybe_free(c);
}

static void
on_store_closed(void *privdata)
{
    cache_t *c = privdata;
    c->store_closed = 1;
    maybe_free(c);
}

void
cache_close(cache_t *c, void (*close_cb)(void *privdata), void *privdata)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->close_cb = close_cb;
    c->close_privdata = privdata;
    /* nothing in flight will answer from now on... */
    bus_group_cancel(&c->reqs, NULL);
    c->store->ops->close(c->store, on_store_closed, c);
    /* ...so what is still owed is answered here, and freed */
    for (util_hnode_t *n = util_htable_next(&c->fetches, NULL), *next; n; n = next) {
        fetch_t *f = UTIL_CONTAINER_OF(n, fetch_t, node);
        cache_req_t *r;
        next = util_htable_next(&c->fetches, n);
        fetch_unlink(c, f);
        while ((r = f->waiters) != NULL) {
            f->waiters = r->next;
            if (!r->cancelled && r->kind == REQ_GET)
                r->cb.get(r->privdata, UV_ECANCELED, CACHE_FOUND, NULL, 0);
            req_free(r);
        }
        cache_doc_free(&f->store_doc);
        free(f->l2_value);
        free(f);
    }
    while (c->live != NULL) {
        cache_req_t *r = c->live;
        if (r->kind == REQ_PUT)
            put_finish(r, UV_ECANCELED);
        else
            list_finish(r, UV_ECANCELED);
    }
    l1_clear(c);
    bundles_clear(c);
    for (util_hnode_t *n = util_htable_next(&c->watches, NULL), *next; n; n = next) {
        watch_t *w = UTIL_CONTAINER_OF(n, watch_t, node);
        next = util_htable_next(&c->watches, n);
        free(w->value);
        free(w);
    }
    util_htable_free(&c->watches);
    util_htable_free(&c->fetches);
    uv_close((uv_handle_t *)&c->retry, on_retry_closed);
}
