/*
 * tests/cache/test_store_contract.c: the contract every configuration store
 * keeps (cache_store_t): missing keys, versions that grow by one per write,
 * categories kept or moved, listing by category, JSON values of every kind
 * round-tripping. Run against the Redis-hash store always (the ctest redis
 * fixture) and against MongoDB when MONGODB_URI is set; without it the
 * MongoDB run is reported as skipped, with the reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus.h"
#include "loop_util.h"
#include "cache.h"

typedef struct probe {
    int calls;
    int error;
    enum cache_outcome outcome;
    size_t n;
    cache_doc_t docs[16];
    int ready;
    int closed;
} probe_t;

typedef struct world {
    uv_loop_t loop;
    bus_t *bus;
    cache_store_t *store;
    probe_t bp;
    char prefix[32]; /* keys and categories of this run */
} world_t;

static void
on_state(void *privdata, int ready, int ever, const char *err)
{
    (void)ever;
    (void)err;
    ((probe_t *)privdata)->ready = ready;
}

static void
on_docs(void *privdata, int error, enum cache_outcome outcome, const cache_doc_t *docs, size_t n)
{
    probe_t *p = privdata;
    for (size_t i = 0; i < p->n; i++)
        cache_doc_free(&p->docs[i]);
    p->calls++;
    p->error = error;
    p->outcome = outcome;
    p->n = n < 16 ? n : 16;
    for (size_t i = 0; i < p->n; i++)
        cache_doc_copy(&p->docs[i], &docs[i]);
}

static void
probe_reset(probe_t *p)
{
    for (size_t i = 0; i < p->n; i++)
        cache_doc_free(&p->docs[i]);
    memset(p, 0, sizeof *p);
}

static int
setup_common(void **state, int mongo)
{
    static const char *const none[] = {"coordhub:test-none"};
    world_t *w = calloc(1, sizeof *w);
    bus_options_t o = {0};
    const char *err = NULL;
    char url[64];

    uv_loop_init(&w->loop);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", fixture_port());
    o.url = url;
    o.channels = none;
    o.nchannels = 1;
    o.on_state = on_state;
    o.privdata = &w->bp;
    assert_int_equal(bus_new(&w->loop, &o, &w->bus, &err), 0);
    bus_start(w->bus);
    assert_true(run_until(&w->loop, &w->bp.ready, 1, 3000));
    if (mongo) {
        w->store = cache_store_mongo_new(&w->loop, getenv("MONGODB_URI"), &err);
        assert_non_null(w->store);
    } else {
        w->store = cache_store_redis_new(w->bus, 180);
    }
    snprintf(w->prefix, sizeof w->prefix, "ct%d-%lu", (int)getpid(),
             (unsigned long)(uv_hrtime() % 1000000));
    *state = w;
    return 0;
}

static int
setup_redis(void **state)
{
    return setup_common(state, 0);
}

static int
setup_mongo(void **state)
{
    if (getenv("MONGODB_URI") == NULL || *getenv("MONGODB_URI") == '\0') {
        *state = NULL;
        return 0;
    }
    return setup_common(state, 1);
}

static void
on_closed(void *privdata)
{
    ((probe_t *)privdata)->closed++;
}

static int
teardown(void **state)
{
    world_t *w = *state;
    probe_t p = {0};
    if (w == NULL)
        return 0;
    w->store->ops->close(w->store, on_closed, &p);
    bus_close(w->bus, on_closed, &p);
    run_until(&w->loop, &p.closed, 2, 3000);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&w->loop), 0);
    probe_reset(&w->bp);
    free(w);
    return 0;
}

static void
name(const world_t *w, char *out, size_t cap, const char *what)
{
    snprintf(out, cap, "%s-%s", w->prefix, what);
}

/* Runs one call and waits for its answer. */
#define CALL(w, p, expr)                                                                           \
    do {                                                                                           \
        probe_reset(p);                                                                            \
        assert_int_equal((expr), 0);                                                               \
        assert_true(run_until(&(w)->loop, &(p)->calls, 1, 5000));                                  \
    } while (0)

static int
json_equal_text(const char *a, const char *b)
{
    json_t *ja = json_loads(a, JSON_DECODE_ANY, NULL), *jb = json_loads(b, JSON_DECODE_ANY, NULL);
    int eq = ja && jb && json_equal(ja, jb);
    json_decref(ja);
    json_decref(jb);
    return eq;
}

static void
contract(void **state)
{
    world_t *w = *state;
    cache_store_t *s;
    probe_t p = {0};
    char k1[64], k2[64], k3[64], c1[64], c2[64], cnone[64];

    if (w == NULL) {
        print_message("SKIPPED: MongoDB store contract: MONGODB_URI is not set (no MongoDB "
                      "server is installable on this machine)\n");
        skip();
        return;
    }
    s = w->store;
    name(w, k1, sizeof k1, "k1");
    name(w, k2, sizeof k2, "k2");
    name(w, k3, sizeof k3, "k3");
    name(w, c1, sizeof c1, "c1");
    name(w, c2, sizeof c2, "c2");
    name(w, cnone, sizeof cnone, "none");

    CALL(w, &p, s->ops->get(s, k1, on_docs, &p));
    assert_int_equal(p.error, 0);
    assert_int_equal(p.outcome, CACHE_NOT_FOUND);

    CALL(w, &p, s->ops->put(s, k1, "{\"a\":1}", c1, on_docs, &p));
    assert_int_equal(p.error, 0);
    assert_int_equal(p.outcome, CACHE_FOUND);
    assert_int_equal(p.n, 1);
    assert_int_equal(p.docs[0].version, 1);
    assert_string_equal(p.docs[0].category, c1);
    assert_string_equal(p.docs[0].key, k1);
    assert_true(json_equal_text(p.docs[0].value, "{\"a\":1}"));
    assert_true(p.docs[0].updated_at_ms > 1600000000000LL);

    /* a write without a category keeps it; the version grows by one */
    CALL(w, &p, s->ops->put(s, k1, "[1,2]", NULL, on_docs, &p));
    assert_int_equal(p.docs[0].version, 2);
    assert_string_equal(p.docs[0].category, c1);

    CALL(w, &p, s->ops->get(s, k1, on_docs, &p));
    assert_int_equal(p.error, 0);
    assert_int_equal(p.outcome, CACHE_FOUND);
    assert_int_equal(p.docs[0].version, 2);
    assert_true(json_equal_text(p.docs[0].value, "[1,2]"));
    assert_string_equal(p.docs[0].category, c1);

    CALL(w, &p, s->ops->put(s, k2, "\"str\"", c1, on_docs, &p));
    CALL(w, &p, s->ops->put(s, k3, "null", c2, on_docs, &p));
    assert_int_equal(p.docs[0].version, 1);
    assert_true(json_equal_text(p.docs[0].value, "null"));

    CALL(w, &p, s->ops->list(s, c1, on_docs, &p));
    assert_int_equal(p.error, 0);
    assert_int_equal(p.outcome, CACHE_FOUND);
    assert_int_equal(p.n, 2);
    CALL(w, &p, s->ops->list(s, cnone, on_docs, &p));
    assert_int_equal(p.error, 0);
    assert_int_equal(p.outcome, CACHE_FOUND);
    assert_int_equal(p.n, 0);

    /* a new category moves the key */
    CALL(w, &p, s->ops->put(s, k1, "true", c2, on_docs, &p));
    assert_int_equal(p.docs[0].version, 3);
    CALL(w, &p, s->ops->list(s, c1, on_docs, &p));
    assert_int_equal(p.n, 1);
    assert_string_equal(p.docs[0].key, k2);
    CALL(w, &p, s->ops->list(s, c2, on_docs, &p));
    assert_int_equal(p.n, 2);

    /* values of every JSON kind come back equal */
    {
        static const char *const values[] = {"12.5",
                                             "\"x\\\"y\\u00e9\"",
                                             "false",
                                             "-7",
                                             "{\"n\":{\"a\":[1,{\"b\":null}],\"s\":\"\"}}",
                                             "[]"};
        for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
            CALL(w, &p, s->ops->put(s, k2, values[i], NULL, on_docs, &p));
            CALL(w, &p, s->ops->get(s, k2, on_docs, &p));
            if (!json_equal_text(p.docs[0].value, values[i]))
                fail_msg("value %s came back as %s", values[i], p.docs[0].value);
        }
    }
    probe_reset(&p);
}

int
main(int argc, char **argv)
{
    const struct CMUnitTest redis_tests[] = {
        cmocka_unit_test_setup_teardown(contract, setup_redis, teardown),
    };
    const struct CMUnitTest mongo_tests[] = {
        cmocka_unit_test_setup_teardown(contract, setup_mongo, teardown),
    };
    if (argc > 1 && strcmp(argv[1], "mongodb") == 0) {
        if (getenv("MONGODB_URI") == NULL || *getenv("MONGODB_URI") == '\0') {
            /* ctest reports exit 77 as "Skipped" (SKIP_RETURN_CODE) */
            printf("SKIPPED: MongoDB store contract: MONGODB_URI is not set (no MongoDB server "
                   "is installable on this machine)\n");
            return 77;
        }
        return cmocka_run_group_tests_name("store contract: mongodb", mongo_tests, NULL, NULL);
    }
    return cmocka_run_group_tests_name("store contract: redis", redis_tests, NULL, NULL);
}
