/*
 * tests/bus/test_owners.c: the owners of bus requests (locks, reserve, cache)
 * against a real redis-server (the ctest fixture "redis"): each can close
 * while its requests are in flight, before the bus (docs/requests.md). What
 * a caller was still owed is answered UV_ECANCELED exactly once, a request
 * its caller cancelled is never answered, and nothing leaks (ASan, and
 * uv_loop_close == 0).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "cache.h"
#include "locks.h"
#include "loop_util.h"
#include "reserve.h"

typedef struct world {
    uv_loop_t loop;
    bus_t *bus;
    int ready;
    int closed;
} world_t;

typedef struct answer {
    int calls;
    int error;
} answer_t;

static void
on_state(void *privdata, int ready, int ever, const char *err)
{
    (void)ever;
    (void)err;
    ((world_t *)privdata)->ready = ready;
}

static void
on_closed(void *privdata)
{
    ((world_t *)privdata)->closed++;
}

static void
world_up(world_t *w)
{
    static const char *const none[] = {"coordhub:test-none"};
    bus_options_t o = {0};
    const char *err = NULL;
    char url[64];

    memset(w, 0, sizeof *w);
    uv_loop_init(&w->loop);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", fixture_port());
    o.url = url;
    o.channels = none;
    o.nchannels = 1;
    o.on_state = on_state;
    o.privdata = w;
    assert_int_equal(bus_new(&w->loop, &o, &w->bus, &err), 0);
    bus_start(w->bus);
    assert_true(run_until(&w->loop, &w->ready, 1, 3000));
}

/* The owner closed (close_cb counted in w->closed), then the bus. */
static void
world_down(world_t *w, int owners)
{
    assert_true(run_until(&w->loop, &w->closed, owners, 2000));
    bus_close(w->bus, on_closed, w);
    assert_true(run_until(&w->loop, &w->closed, owners + 1, 2000));
    uv_run(&w->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&w->loop), 0);
}

/* ---- locks ---- */

static void
on_lock(void *privdata, const lock_result_t *r)
{
    answer_t *a = privdata;
    a->calls++;
    a->error = r->error;
}

static void
test_locks_close_in_flight(void **state)
{
    world_t w;
    lock_mgr_t *m;
    lock_acquire_args_t args = {.ttl_ms = 5000, .wait_ms = 0};
    answer_t owed = {0}, cancelled = {0}, inspect = {0};
    lock_op_t *op1, *op2, *op3;
    (void)state;

    world_up(&w);
    m = lock_mgr_new(&w.loop, w.bus);
    lock_on_redis_state(m, 1);
    assert_int_equal(lock_valid_name("t:owners", 8, &(const char *){NULL}), 0);
    assert_int_equal(lock_acquire(m, "t:owners", 8, &args, on_lock, &owed, &op1), 0);
    assert_int_equal(lock_inspect(m, "t:owners2", 9, on_lock, &cancelled, &op2), 0);
    assert_int_equal(lock_inspect(m, "t:owners3", 9, on_lock, &inspect, &op3), 0);
    lock_cancel(op2);
    /* bad input is refused before anything else, whatever Redis does */
    assert_int_equal(lock_inspect(m, "", 0, on_lock, &inspect, &op3), UV_EINVAL);
    lock_mgr_close(m, on_closed, &w);
    assert_int_equal(owed.calls, 1);
    assert_int_equal(owed.error, UV_ECANCELED);
    assert_int_equal(inspect.calls, 1);
    assert_int_equal(inspect.error, UV_ECANCELED);
    assert_int_equal(cancelled.calls, 0);
    world_down(&w, 1);
    assert_int_equal(owed.calls, 1);
    assert_int_equal(cancelled.calls, 0);
}

/* ---- reserve ---- */

static void
on_resv(void *privdata, const resv_result_t *r)
{
    answer_t *a = privdata;
    a->calls++;
    a->error = r->error;
}

static void
test_reserve_close_in_flight(void **state)
{
    world_t w;
    resv_mgr_t *m;
    answer_t owed = {0}, cancelled = {0};
    resv_op_t *op1, *op2;
    (void)state;

    world_up(&w);
    m = resv_mgr_new(&w.loop, w.bus);
    resv_on_redis_state(m, 1); /* discovery and sweeps go out too */
    assert_int_equal(resv_list(m, "owners", on_resv, &owed, &op1), 0);
    assert_int_equal(resv_release(m, "owners", "a1", on_resv, &cancelled, &op2), 0);
    resv_cancel(op2);
    resv_mgr_close(m, on_closed, &w);
    assert_int_equal(owed.calls, 1);
    assert_int_equal(owed.error, UV_ECANCELED);
    assert_int_equal(resv_list(m, "owners", on_resv, &owed, &op1), UV_ECANCELED);
    world_down(&w, 1);
    assert_int_equal(owed.calls, 1);
    assert_int_equal(cancelled.calls, 0);
}

/* ---- cache ---- */

static void
on_get(void *privdata, int error, enum cache_outcome outcome, const cache_doc_t *doc, int stale)
{
    answer_t *a = privdata;
    (void)outcome;
    (void)doc;
    (void)stale;
    a->calls++;
    a->error = error;
}

static void
on_list(void *privdata, int error, const cache_doc_t *docs, size_t n, int stale)
{
    answer_t *a = privdata;
    (void)docs;
    (void)n;
    (void)stale;
    a->calls++;
    a->error = error;
}

static void
test_cache_close_in_flight(void **state)
{
    world_t w;
    cache_t *c;
    cache_options_t o = {0};
    answer_t get = {0}, list = {0}, cancelled = {0};
    cache_req_t *r1, *r2, *r3;
    (void)state;

    world_up(&w);
    c = cache_new(&w.loop, w.bus, cache_store_redis_new(w.bus, 180), &o);
    cache_on_redis_state(c, 1);                      /* tracking and script loads go out too */
    assert_int_equal(cache_watch(c, "owners.k"), 0); /* a fetch of its own */
    assert_int_equal(cache_get(c, "owners.k", on_get, &get, &r1), 0);
    assert_int_equal(cache_list(c, "owners", on_list, &list, &r2), 0);
    assert_int_equal(cache_get(c, "owners.k2", on_get, &cancelled, &r3), 0);
    cache_cancel(r3);
    cache_close(c, on_closed, &w);
    assert_int_equal(get.calls, 1);
    assert_int_equal(get.error, UV_ECANCELED);
    assert_int_equal(list.calls, 1);
    assert_int_equal(list.error, UV_ECANCELED);
    world_down(&w, 1);
    assert_int_equal(get.calls, 1);
    assert_int_equal(list.calls, 1);
    assert_int_equal(cancelled.calls, 0);
}

/* The order main uses: the bus first (its close answers NULL), then the
 * owners, which then have nothing in flight. */
static void
test_bus_first(void **state)
{
    world_t w;
    lock_mgr_t *m;
    cache_t *c;
    cache_options_t o = {0};
    lock_acquire_args_t args = {.ttl_ms = 5000, .wait_ms = 0};
    answer_t lk = {0}, get = {0};
    lock_op_t *op;
    cache_req_t *r;
    (void)state;

    world_up(&w);
    m = lock_mgr_new(&w.loop, w.bus);
    lock_on_redis_state(m, 1);
    c = cache_new(&w.loop, w.bus, cache_store_redis_new(w.bus, 180), &o);
    cache_on_redis_state(c, 1);
    assert_int_equal(lock_acquire(m, "t:busfirst", 10, &args, on_lock, &lk, &op), 0);
    assert_int_equal(cache_get(c, "busfirst.k", on_get, &get, &r), 0);
    bus_close(w.bus, on_closed, &w);
    assert_int_equal(lk.calls, 1);
    assert_int_equal(lk.error, UV_ENOTCONN);
    assert_int_equal(get.calls, 1);
    assert_int_equal(get.error, UV_ENOTCONN);
    assert_true(run_until(&w.loop, &w.closed, 1, 2000));
    lock_mgr_close(m, on_closed, &w);
    cache_close(c, on_closed, &w);
    assert_true(run_until(&w.loop, &w.closed, 3, 2000));
    uv_run(&w.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&w.loop), 0);
    assert_int_equal(lk.calls, 1);
    assert_int_equal(get.calls, 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_locks_close_in_flight),
        cmocka_unit_test(test_reserve_close_in_flight),
        cmocka_unit_test(test_cache_close_in_flight),
        cmocka_unit_test(test_bus_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
