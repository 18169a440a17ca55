/*
 * cache: configuration in three tiers (README, "Configuration" under "API in
 * brief"; docs/architecture.md).
 *
 *   L1     this hub's memory: key -> {value, version, category}, and category
 *          bundles; bounded, with a TTL as a backstop only.
 *   L2     Redis `configuration:<key>` (the value's JSON text alone, TTL
 *          180 s: the layout the platform already reads) and the bundles
 *          `configurationCategory:<cat>:0`.
 *   store  the source of truth, behind cache_store_t: the Redis hash
 *          `configuration-store` (embedded default) or MongoDB.
 *
 * Reads: L1, else one fetch (concurrent misses for a key share it): the
 * value from L2 if present, else from the store (which then fills L2);
 * version and category always from the store. Writes (role admin): store
 * (version + 1), then L2 and the category bundle, then PUBLISH
 * `configuration-invalidate` {key, version}.
 *
 * Invalidation reaches every hub two ways: that publish, and Redis
 * client-side caching (CLIENT TRACKING ... BCAST PREFIX configuration:
 * REDIRECT <subscriber>), which also sees writes that bypass the hub. Both
 * paths converge: drop the L1 entry, re-read the key if anyone watches it,
 * and report a change only when (version, value) differs from what was last
 * reported, so each change is reported once whichever path saw it. When the
 * subscriber drops (or tracking cannot be enabled), everything in L1 is
 * distrusted: it may be served marked stale while Redis is down, until its
 * TTL, and is never again served as fresh.
 */
#ifndef COORDHUB_CACHE_H
#define COORDHUB_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "bus.h"

#define CACHE_KEY_MAX 64
#define CACHE_CATEGORY_MAX 64
#define CACHE_VALUE_MAX (512 * 1024)

/*
 * Errors follow docs/errors.md: functions return 0 or a UV_E* code
 * (UV_EINVAL bad input, UV_ENOTCONN Redis or the store cannot answer now,
 * UV_ECANCELED closing); callbacks get an `error` of the same kind and, for
 * reads of one key, an outcome of their own.
 */
enum cache_outcome {
    CACHE_FOUND = 0,
    CACHE_NOT_FOUND, /* the key does not exist */
};

/* ---- documents and the store interface (store_redis.c, store_mongo.c) ---- */

/* One configuration entry. Strings are owned by whoever made the doc. */
typedef struct cache_doc {
    char *key;
    char *value;    /* JSON text */
    char *category; /* "" when none */
    long long version;
    long long updated_at_ms;
    char *prev_category; /* put answers: the category before the write, NULL unknown */
} cache_doc_t;

void cache_doc_free(cache_doc_t *d); /* frees the strings, not `d` */
void cache_doc_copy(cache_doc_t *dst, const cache_doc_t *src);

typedef struct cache_store cache_store_t;

/* `error` 0 or UV_ENOTCONN; when 0, `outcome` says whether a get found its
 * key (put and list always answer CACHE_FOUND, a list perhaps with n = 0).
 * `docs` are valid during the call only. Each fires exactly once per
 * accepted call, unless the store was closed first (then never). */
typedef void (*cache_store_cb)(void *privdata, int error, enum cache_outcome outcome,
                               const cache_doc_t *docs, size_t n);

typedef struct cache_store_ops {
    const char *name;
    /* 1: put also wrote L2, dropped the bundles and published the
     * invalidation, atomically with the store update (the Redis store: a
     * write that Redis runs late, after a timeout, is then whole or absent) */
    int put_publishes;
    /* Each returns 0 or UV_ENOTCONN (the callback never fires).
     * get: the doc of `key` (n = 1), or CACHE_NOT_FOUND */
    int (*get)(cache_store_t *s, const char *key, cache_store_cb cb, void *privdata);
    /* writes value (and category; NULL keeps the old one, "" for none) with
     * version + 1; answers the new doc */
    int (*put)(cache_store_t *s, const char *key, const char *value, const char *category,
               cache_store_cb cb, void *privdata);
    /* every doc of `category` */
    int (*list)(cache_store_t *s, const char *category, cache_store_cb cb, void *privdata);
    /* closes: the calls in flight are cancelled (their callbacks never fire);
     * `cb` fires once the store's memory is freed */
    void (*close)(cache_store_t *s, void (*cb)(void *privdata), void *privdata);
} cache_store_ops_t;

struct cache_store {
    const cache_store_ops_t *ops;
};

/* The embedded store: the Redis hash `configuration-store` (field = key,
 * value = JSON {value, category, version, updatedAt}), by Lua scripts. */
cache_store_t *cache_store_redis_new(bus_t *bus, unsigned l2_ttl_s);

/* The MongoDB store: collection `configurations` of `uri`'s database
 * (default "coordhub"), documents {_id, value, category, version,
 * updatedAt}; every driver call on libuv's thread pool. Returns NULL with
 * *err set when the URI does not parse. */
cache_store_t *cache_store_mongo_new(uv_loop_t *loop, const char *uri, const char **err);

/* The BSON <-> doc mapping of the MongoDB store (pure; mongo_map.c).
 * cache_mongo_to_doc: 0, or UV_EINVAL for a document of the wrong shape.
 * cache_mongo_update: the findAndModify update document for a write, as
 * canonical extended JSON text (malloc'd), or NULL if `value` is not JSON. */
struct _bson_t;
int cache_mongo_to_doc(const struct _bson_t *b, cache_doc_t *out);
char *cache_mongo_update_json(const char *value, const char *category, long long now_ms);

/* ---- validation (validate.c) ---- */

/* 1..64 of [A-Za-z0-9_.:-]; categories the same. 0 or UV_EINVAL. */
int cache_valid_key(const char *s, size_t n);
int cache_valid_category(const char *s, size_t n);

/* PUT body {"value": ANY_JSON, "category"?: string}: `*value` is the
 * compact JSON text of the value (malloc'd), `*category` NULL if absent.
 * 0, or UV_EINVAL with `*err` naming the problem. */
int cache_parse_put(const char *body, size_t len, char **value, char **category, const char **err);

/* L2 holds the value's JSON text; a legacy plain string that is not JSON
 * is served as a JSON string. Returns malloc'd JSON text. */
char *cache_l2_to_json(const char *raw, size_t len);

/* ---- the cache (cache.c) ---- */

typedef struct cache cache_t;

typedef struct cache_metrics {
    uint64_t hits_l1, hits_l2, hits_store, misses;
    uint64_t stale_served;
    uint64_t inval_publish, inval_tracking, inval_flush;
    uint64_t changes; /* changes reported to watchers */
    uint64_t writes;
    uint64_t store_calls;
    double store_seconds;
    uint64_t tracking_errors;
} cache_metrics_t;

typedef struct cache_options {
    unsigned l1_ttl_ms; /* 0: 60000 */
    size_t l1_max;      /* 0: 10000 entries */
    unsigned l2_ttl_s;  /* 0: 180 */
    /* a watched key changed (value is JSON text) */
    void (*on_change)(void *privdata, const char *key, const char *value, long long version);
    void *privdata;
} cache_options_t;

/* Takes ownership of `store`. */
cache_t *cache_new(uv_loop_t *loop, bus_t *bus, cache_store_t *store, const cache_options_t *o);

/* Wiring from the bus (main routes these). */
void cache_on_redis_state(cache_t *c, int ready);
void cache_on_publish(cache_t *c, const char *payload, size_t len);
void cache_on_tracking(cache_t *c, const redisReply *keys);

/* Answers (docs/errors.md): `error` 0, UV_ENOTCONN (Redis or the store went
 * away) or UV_ECANCELED (the cache closed). A get with error 0 has an
 * outcome: CACHE_FOUND with `doc`, or CACHE_NOT_FOUND with doc NULL. `stale`
 * is 1 when served from L1 while Redis is down. What the pointers point to
 * is valid during the call only. */
typedef void (*cache_get_cb)(void *privdata, int error, enum cache_outcome outcome,
                             const cache_doc_t *doc, int stale);
typedef void (*cache_list_cb)(void *privdata, int error, const cache_doc_t *docs, size_t n,
                              int stale);
typedef void (*cache_put_cb)(void *privdata, int error, const cache_doc_t *doc);

typedef struct cache_req cache_req_t;

/* The L1 tier, synchronously: 1 and `*doc` (`*docs`, `*n`) when this hub's
 * memory can answer (`*stale` 1 when it serves while Redis is down), else 0.
 * What they point to is valid until control returns to the loop or the
 * next call into the cache. Counted as L1 hits (or stale answers). */
int cache_peek(cache_t *c, const char *key, const cache_doc_t **doc, int *stale);
int cache_peek_list(cache_t *c, const char *category, const cache_doc_t **docs, size_t *n,
                    int *stale);

/* Each returns 0 (the callback fires once, from the loop, unless
 * cancelled) or UV_ENOTCONN / UV_ECANCELED (it never fires). They never
 * answer inside the call: they skip L1 and read Redis and the store (a read
 * also refills L1), so a caller that wants L1 peeks first. `*req` is valid
 * until the callback starts or cache_cancel returns; after cache_cancel the
 * callback never fires (docs/requests.md). */
int cache_get(cache_t *c, const char *key, cache_get_cb cb, void *privdata, cache_req_t **req);
int cache_list(cache_t *c, const char *category, cache_list_cb cb, void *privdata,
               cache_req_t **req);
int cache_put(cache_t *c, const char *key, const char *value, const char *category, cache_put_cb cb,
              void *privdata, cache_req_t **req);
void cache_cancel(cache_req_t *req);

/* Reports changes of `key` to on_change from now on. 0, or UV_ENOSPC when
 * the bound on watched keys (10000) is reached, UV_ECANCELED when closing. */
int cache_watch(cache_t *c, const char *key);

const cache_metrics_t *cache_metrics(const cache_t *c);

/* Closes: every request still waiting is answered UV_ECANCELED (unless
 * cancelled) and the cache's own Redis requests are cancelled, so it may be
 * called before or after bus_close. `close_cb` fires from the loop once the
 * memory is freed. */
void cache_close(cache_t *c, void (*close_cb)(void *privdata), void *privdata);

#endif
