/*
 * bench/config/l1_lookup.c: the cost of one L1 hit of cache_peek(), measured
 * in-process (nanoseconds are below what an HTTP benchmark can resolve).
 *
 * Links the hub's own cache/cache.c and cache/validate.c, unchanged, with
 * stand-ins for the Redis bus and the store whose replies are queued and
 * delivered from pump() (never inside the call that sent the command, as a
 * real connection never does). It enables tracking, fills L1 with `keys`
 * entries through the normal read path (cache_get), then times `iterations`
 * cache_peek() calls that hit L1 (the synchronous tier; cache_get itself
 * always answers from the loop), cycling over the keys. Prints one JSON line.
 *
 *   cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release -DCOORDHUB_BENCH=ON
 *   cmake --build build-rel --target bench_l1_lookup
 *   build-rel/bench/l1_lookup [keys] [iterations]
 *
 * Built (through CMake, as above) and run by bench.mjs; not part of the hub
 * or of ctest.
 */
#include "cache.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- stand-ins for the bus (bus.h) ---- */

typedef struct pending {
    bus_reply_cb cb;
    void *privdata;
    redisReply reply;
    char text[128];
    /* or a store answer */
    cache_store_cb scb;
    cache_doc_t doc;
    int store_error;
} pending_t;

static pending_t queue[4096];
static size_t queued;

static void
pump(void)
{
    while (queued > 0) {
        size_t n = queued;
        pending_t batch[64];
        if (n > 64)
            n = 64;
        memcpy(batch, queue, n * sizeof *batch);
        memmove(queue, queue + n, (queued - n) * sizeof *queue);
        queued -= n;
        for (size_t i = 0; i < n; i++) {
            pending_t *p = &batch[i];
            if (p->scb) {
                p->scb(p->privdata, p->store_error, CACHE_FOUND, &p->doc,
                       p->store_error == 0 ? 1 : 0);
                cache_doc_free(&p->doc);
            } else {
                p->reply.str = p->text;
                p->cb(p->privdata, &p->reply);
            }
        }
    }
}

int
bus_request(bus_t *bus, bus_group_t *g, bus_req_t **req, bus_reply_cb cb, void *privdata,
            const char *fmt, ...)
{
    pending_t *p;
    (void)bus, (void)g, (void)req;
    if (cb == NULL)
        return 0;
    if (queued == sizeof queue / sizeof queue[0])
        abort();
    p = &queue[queued++];
    memset(p, 0, sizeof *p);
    p->cb = cb;
    p->privdata = privdata;
    if (strncmp(fmt, "GET ", 4) == 0) {
        p->reply.type = REDIS_REPLY_STRING;
        snprintf(p->text, sizeof p->text, "{\"enabled\":true,\"limit\":250}");
    } else {
        p->reply.type = REDIS_REPLY_STATUS; /* CLIENT TRACKING on ... */
        snprintf(p->text, sizeof p->text, "OK");
    }
    p->reply.len = strlen(p->text);
    return 0;
}

int
bus_command(bus_t *bus, bus_reply_cb cb, void *privdata, const char *fmt, ...)
{
    (void)bus, (void)cb, (void)privdata, (void)fmt;
    return 0; /* SET fills, CLIENT TRACKING off: nobody reads the reply */
}

int
bus_request_argv(bus_t *bus, bus_group_t *g, bus_req_t **req, bus_reply_cb cb, void *privdata,
                 int argc, const char **argv, const size_t *argvlen)
{
    (void)bus, (void)g, (void)req, (void)cb, (void)privdata, (void)argc, (void)argv, (void)argvlen;
    return UV_ENOTCONN; /* category lists are not measured */
}

int
bus_script_request(bus_t *bus, bus_group_t *g, bus_req_t **req, bus_script_t *s, int numkeys,
                   int argc, const char **argv, const size_t *argvlen, bus_reply_cb cb,
                   void *privdata)
{
    (void)bus, (void)g, (void)req, (void)s, (void)numkeys, (void)argc, (void)argv, (void)argvlen,
        (void)cb, (void)privdata;
    return UV_ENOTCONN; /* writes are not measured */
}

void
bus_script_preload(bus_t *bus, bus_group_t *g, bus_script_t *s)
{
    (void)bus, (void)g, (void)s;
}

void
bus_group_cancel(bus_group_t *g, void (*release)(void *privdata))
{
    (void)g, (void)release; /* the bench closes with nothing in flight */
}

long long
bus_subscriber_id(const bus_t *bus)
{
    (void)bus;
    return 42;
}

/* ---- a store that knows every key ---- */

static int
st_get(cache_store_t *s, const char *key, cache_store_cb cb, void *privdata)
{
    pending_t *p;
    (void)s;
    if (queued == sizeof queue / sizeof queue[0])
        abort();
    p = &queue[queued++];
    memset(p, 0, sizeof *p);
    p->scb = cb;
    p->privdata = privdata;
    p->store_error = 0;
    p->doc.key = util_strdup(key);
    p->doc.value = util_strdup("{\"enabled\":true,\"limit\":250}");
    p->doc.category = util_strdup("pricing");
    p->doc.version = 7;
    return 0;
}

static int
st_put(cache_store_t *s, const char *k, const char *v, const char *c, cache_store_cb cb, void *p)
{
    (void)s, (void)k, (void)v, (void)c, (void)cb, (void)p;
    return UV_ENOTCONN;
}

static int
st_list(cache_store_t *s, const char *c, cache_store_cb cb, void *p)
{
    (void)s, (void)c, (void)cb, (void)p;
    return UV_ENOTCONN;
}

static void
st_close(cache_store_t *s, void (*cb)(void *), void *privdata)
{
    (void)s;
    if (cb)
        cb(privdata);
}

/* put_publishes 0: the cache's own write path would publish, but writes
 * are not measured (st_put refuses them) */
static const cache_store_ops_t ops = {
    .name = "bench",
    .put_publishes = 0,
    .get = st_get,
    .put = st_put,
    .list = st_list,
    .close = st_close,
};
static cache_store_t store = {.ops = &ops};

/* ---- the measurement ---- */

static unsigned long long answered, bytes;

static void
on_get(void *privdata, int error, enum cache_outcome outcome, const cache_doc_t *doc, int stale)
{
    (void)privdata;
    if (error == 0 && outcome == CACHE_FOUND && !stale) {
        answered++;
        bytes += doc->value[0]; /* touch the answer */
    }
}

static double
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void
on_closed(void *privdata)
{
    (void)privdata;
}

int
main(int argc, char **argv)
{
    size_t nkeys = argc > 1 ? strtoul(argv[1], NULL, 10) : 1;
    unsigned long long iters = argc > 2 ? strtoull(argv[2], NULL, 10) : 20000000ULL;
    uv_loop_t *loop = uv_default_loop();
    cache_options_t o = {0};
    cache_t *c;
    char(*keys)[CACHE_KEY_MAX + 1];
    cache_req_t *req;
    unsigned long long hits_before;
    double t0, t1;

    if (nkeys < 1 || nkeys > 10000 || iters < 1) {
        fprintf(stderr, "usage: l1_lookup [keys 1..10000] [iterations]\n");
        return 2;
    }
    util_log_set_level(UTIL_LOG_ERROR);
    c = cache_new(loop, (bus_t *)&store /* never dereferenced by the stand-ins */, &store, &o);
    cache_on_redis_state(c, 1);
    pump(); /* tracking on */

    keys = util_calloc(nkeys, sizeof *keys);
    for (size_t i = 0; i < nkeys; i++) {
        snprintf(keys[i], sizeof keys[i], "pricing.flag.%zu", i);
        if (cache_get(c, keys[i], on_get, NULL, &req) != 0)
            abort();
        pump(); /* L2 and store answer: L1 filled */
    }
    hits_before = cache_metrics(c)->hits_l1;
    answered = 0;

    t0 = now_ns();
    for (unsigned long long i = 0; i < iters; i++) {
        const cache_doc_t *doc;
        int stale;
        if (cache_peek(c, keys[i % nkeys], &doc, &stale)) {
            answered++;
            bytes += (unsigned char)doc->value[0]; /* touch the answer */
        }
    }
    t1 = now_ns();

    if (answered != iters || cache_metrics(c)->hits_l1 - hits_before != iters) {
        fprintf(stderr, "not every lookup was an L1 hit: %llu answered, %llu hits of %llu\n",
                answered, (unsigned long long)(cache_metrics(c)->hits_l1 - hits_before), iters);
        return 1;
    }
    printf("{\"keys\":%zu,\"iterations\":%llu,\"ns_per_lookup\":%.1f,\"check\":%llu}\n", nkeys,
           iters, (t1 - t0) / (double)iters, bytes % 10);
    cache_close(c, on_closed, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    free(keys);
    return 0;
}
