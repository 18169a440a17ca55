/*
 * reserve: reserved assets that expire through real Redis TTLs (README,
 * "Reserved assets").
 *
 * A reservation is the key `reserved:{<app>}:<asset>` (JSON: owner,
 * reserved_at_ms, expires_at_ms) with a PX TTL, indexed in the sorted set
 * `reserved:{<app>}` (member asset, score expiry ms); the hash tag keeps an
 * app's keys in one cluster slot. Reserve (all or nothing), release, list
 * and the expiry sweep are each one Lua script, timed by Redis's own clock
 * (TIME), so hubs with skewed clocks agree.
 *
 * `itemReserved` is published by the scripts themselves: once per reserve,
 * once per release, and once per sweep (or listing) that removed expired
 * members. Every hub arms a timer for the earliest expiry of the apps it
 * watches; whichever hub's sweep removes the members publishes, the others
 * find nothing to remove: exactly one publish per expiry, with no reliance
 * on keyspace notifications.
 */
#ifndef COORDHUB_RESERVE_H
#define COORDHUB_RESERVE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <uv.h>

#include "bus.h"

#define RESV_APP_MAX 32
#define RESV_ASSET_MAX 128
#define RESV_ASSETS_MAX 1000
#define RESV_TTL_S_MAX 86400
#define RESV_OWNER_MAX 128

typedef struct resv_mgr resv_mgr_t;
typedef struct resv_op resv_op_t;

/* What happened, when the request did not fail (docs/errors.md). */
enum resv_outcome {
    RESV_DONE = 0,  /* reserved, released or listed */
    RESV_CONFLICT,  /* reserve: some assets are held (listed in the result) */
    RESV_NOT_FOUND, /* release: not reserved */
};

typedef struct resv_entry {
    const char *asset;
    const char *owner;
    long long expires_at_ms;
} resv_entry_t;

typedef struct resv_result {
    /* 0, or UV_ENOTCONN (Redis down or gone), UV_ECANCELED (the manager
     * closed), UV_EPROTO (Redis answered something unexpected) */
    int error;
    enum resv_outcome outcome; /* when error is 0 */
    const char *app;
    const char *asset;         /* release */
    long long expires_at_ms;   /* reserve */
    const char *const *assets; /* reserve: the reserved; conflict: the held ones */
    size_t nassets;
    const resv_entry_t *entries; /* list, by expiry */
    size_t nentries;
    const char *detail; /* with an error: why, or NULL */
} resv_result_t;

typedef void (*resv_cb)(void *privdata, const resv_result_t *r);

typedef struct resv_metrics {
    uint64_t reserved;
    uint64_t conflicts;
    uint64_t released;
    uint64_t not_found;
    uint64_t lists;
    uint64_t sweeps;
    uint64_t expired; /* members removed by this hub's sweeps and listings */
} resv_metrics_t;

/* ---- validation (pure; validate.c) ---- */

/* 1..32 of [A-Za-z0-9_-]. 0 or UV_EINVAL. */
int resv_valid_app(const char *s, size_t n);
/* 1..128 of [A-Za-z0-9_.-]. 0 or UV_EINVAL. */
int resv_valid_asset(const char *s, size_t n);

typedef struct resv_reserve_args {
    char **assets; /* owned; free with resv_reserve_args_free */
    size_t nassets;
    long long ttl_s;
    char owner[RESV_OWNER_MAX + 1];
} resv_reserve_args_t;

/* {"assets": [1..1000 unique valid ids], "ttl_s": 1..86400, "owner"?: string}.
 * Returns 0, or UV_EINVAL with *err naming the problem (nothing to free). */
int resv_parse_reserve(const char *body, size_t len, resv_reserve_args_t *out, const char **err);
void resv_reserve_args_free(resv_reserve_args_t *a);

/* ---- the manager (reserve.c) ---- */

resv_mgr_t *resv_mgr_new(uv_loop_t *loop, bus_t *bus);

/* Watches `app` (its expiries are swept by this hub). Invalid ids ignored. */
void resv_watch(resv_mgr_t *m, const char *app, size_t len);

/* Readiness: on the first ready, SCAN discovers the apps in Redis; on every
 * ready, each watched app is swept (which arms its timer). */
void resv_on_redis_state(resv_mgr_t *m, int ready);

/* An `itemReserved` was heard (payload: the app id, from coordhub; legacy
 * publishers send anything): another hub may have reserved something
 * expiring sooner; watch the app and re-read the earliest expiries
 * (coalesced). */
void resv_on_item_reserved(resv_mgr_t *m, const char *payload, size_t len);

/* Requests: 0 (the callback fires once, from the loop, unless cancelled; `*op`
 * is valid until the callback starts or resv_cancel returns), or UV_ECANCELED
 * (closing) / UV_ENOTCONN (Redis not ready), and the callback never fires.
 * The ids must have passed validation. After resv_cancel the callback never
 * fires (docs/requests.md). */
int resv_reserve(resv_mgr_t *m, const char *app, const resv_reserve_args_t *a, resv_cb cb,
                 void *privdata, resv_op_t **op);
int resv_release(resv_mgr_t *m, const char *app, const char *asset, resv_cb cb, void *privdata,
                 resv_op_t **op);
int resv_list(resv_mgr_t *m, const char *app, resv_cb cb, void *privdata, resv_op_t **op);
void resv_cancel(resv_op_t *op);

const resv_metrics_t *resv_metrics(const resv_mgr_t *m);

/* Closes every handle; requests not yet answered are answered UV_ECANCELED
 * (unless cancelled). Before or after bus_close (see lock_mgr_close). */
void resv_mgr_close(resv_mgr_t *m, void (*close_cb)(void *privdata), void *privdata);

/* ---- migration (migrate.c): blocking, for the command line only ---- */

typedef struct resv_migrate_opts {
    const char *app;
    const char *ids_key;  /* default reserved-assets_<app> */
    const char *info_key; /* default reserved-assets-info_<app> */
    const char *owner;    /* default "migrated" */
} resv_migrate_opts_t;

/* Imports the legacy pair of lists of `app` over the connected `redis`
 * (struct redisContext *), printing what it does to `out`. Returns 0, or
 * UV_EIO when Redis failed (a message was printed to `err`). */
int resv_migrate(void *redis, const resv_migrate_opts_t *o, FILE *out, FILE *err);

#endif
