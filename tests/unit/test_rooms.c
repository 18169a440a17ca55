/*
 * tests/unit/test_rooms.c: the room registry: join, leave, leave_all, free
 * with members inside, counts, visiting, and growth of the table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rooms.h"

#include <uv.h>

#define R(s) s, strlen(s)

typedef struct conn {
    gw_member_t m;
    int id;
    int visits;
} conn_t;

static void
conn_init(conn_t *c, int id)
{
    memset(c, 0, sizeof *c);
    c->m.owner = c;
    c->id = id;
}

static void
test_rooms_join_leave(void **state)
{
    gw_rooms_t *r = gw__rooms_new();
    conn_t a, b;
    (void)state;

    conn_init(&a, 1);
    conn_init(&b, 2);
    assert_int_equal(gw__rooms_count(r), 0);
    assert_int_equal(gw__rooms_size(r, R("user:1")), 0);
    assert_false(gw__rooms_is_member(r, R("user:1"), &a.m));

    assert_int_equal(gw__rooms_join(r, R("user:1"), &a.m), 0);
    assert_int_equal(gw__rooms_join(r, R("user:1"), &a.m), 1); /* already in */
    assert_int_equal(gw__rooms_size(r, R("user:1")), 1);
    assert_int_equal(gw__rooms_count(r), 1);
    assert_true(gw__rooms_is_member(r, R("user:1"), &a.m));
    assert_false(gw__rooms_is_member(r, R("user:1"), &b.m));

    assert_int_equal(gw__rooms_join(r, R("user:1"), &b.m), 0);
    assert_int_equal(gw__rooms_join(r, R("ops"), &b.m), 0);
    assert_int_equal(gw__rooms_size(r, R("user:1")), 2);
    assert_int_equal(gw__rooms_size(r, R("ops")), 1);
    assert_int_equal(gw__rooms_count(r), 2);

    /* names are (ptr, len): a longer buffer with the same first bytes */
    assert_int_equal(gw__rooms_size(r, "user:1xyz", 6), 2);
    assert_int_equal(gw__rooms_size(r, "user:", 5), 0);
    assert_int_equal(gw__rooms_size(r, "user:12", 7), 0);

    /* leaving what one is not in */
    assert_int_equal(gw__rooms_leave(r, R("ops"), &a.m), UV_EINVAL);
    assert_int_equal(gw__rooms_leave(r, R("nowhere"), &a.m), UV_EINVAL);
    assert_int_equal(gw__rooms_size(r, R("ops")), 1);

    assert_int_equal(gw__rooms_leave(r, R("user:1"), &a.m), 0);
    assert_int_equal(gw__rooms_leave(r, R("user:1"), &a.m), UV_EINVAL);
    assert_false(gw__rooms_is_member(r, R("user:1"), &a.m));
    assert_true(gw__rooms_is_member(r, R("user:1"), &b.m));
    assert_int_equal(gw__rooms_size(r, R("user:1")), 1);
    assert_null(a.m.rooms);

    /* the last member out removes the room */
    assert_int_equal(gw__rooms_leave(r, R("user:1"), &b.m), 0);
    assert_int_equal(gw__rooms_size(r, R("user:1")), 0);
    assert_int_equal(gw__rooms_count(r), 1);
    assert_int_equal(gw__rooms_leave(r, R("ops"), &b.m), 0);
    assert_int_equal(gw__rooms_count(r), 0);
    assert_null(b.m.rooms);
    /* and a room can be re-created */
    assert_int_equal(gw__rooms_join(r, R("ops"), &a.m), 0);
    assert_int_equal(gw__rooms_size(r, R("ops")), 1);
    gw__rooms_leave_all(r, &a.m);
    assert_int_equal(gw__rooms_count(r), 0);
    assert_null(a.m.rooms);
    gw__rooms_free(r);
}

static void
test_rooms_leave_all(void **state)
{
    gw_rooms_t *r = gw__rooms_new();
    conn_t a, b;
    (void)state;

    conn_init(&a, 1);
    conn_init(&b, 2);
    assert_int_equal(gw__rooms_join(r, R("user:1"), &a.m), 0);
    assert_int_equal(gw__rooms_join(r, R("bot:7"), &a.m), 0);
    assert_int_equal(gw__rooms_join(r, R("ops"), &a.m), 0);
    assert_int_equal(gw__rooms_join(r, R("bot:7"), &b.m), 0);
    assert_int_equal(gw__rooms_count(r), 3);

    gw__rooms_leave_all(r, &a.m);
    assert_null(a.m.rooms);
    /* rooms a was alone in are gone; the shared one stays with b */
    assert_int_equal(gw__rooms_count(r), 1);
    assert_int_equal(gw__rooms_size(r, R("user:1")), 0);
    assert_int_equal(gw__rooms_size(r, R("ops")), 0);
    assert_int_equal(gw__rooms_size(r, R("bot:7")), 1);
    assert_true(gw__rooms_is_member(r, R("bot:7"), &b.m));
    assert_false(gw__rooms_is_member(r, R("bot:7"), &a.m));

    gw__rooms_leave_all(r, &a.m); /* nothing left: a no-op */
    gw__rooms_leave_all(r, &b.m);
    assert_int_equal(gw__rooms_count(r), 0);
    gw__rooms_free(r);
}

static void
collect(void *ctx, void *owner)
{
    int *seen = ctx;
    conn_t *c = owner;
    seen[c->id]++;
    c->visits++;
}

static void
test_rooms_visit(void **state)
{
    gw_rooms_t *r = gw__rooms_new();
    conn_t c[10];
    int seen[10] = {0};
    (void)state;

    for (int i = 0; i < 10; i++) {
        conn_init(&c[i], i);
        assert_int_equal(gw__rooms_join(r, R("all"), &c[i].m), 0);
        if (i % 2 == 0)
            assert_int_equal(gw__rooms_join(r, R("even"), &c[i].m), 0);
    }
    assert_int_equal(gw__rooms_size(r, R("all")), 10);
    assert_int_equal(gw__rooms_size(r, R("even")), 5);
    assert_int_equal(gw__rooms_visit(r, R("even"), collect, seen), 5);
    for (int i = 0; i < 10; i++)
        assert_int_equal(seen[i], i % 2 == 0 ? 1 : 0);
    assert_int_equal(gw__rooms_visit(r, R("all"), collect, seen), 10);
    for (int i = 0; i < 10; i++)
        assert_int_equal(seen[i], i % 2 == 0 ? 2 : 1);
    assert_int_equal(gw__rooms_visit(r, R("none"), collect, seen), 0);

    /* leaving from the middle of the list keeps the others */
    assert_int_equal(gw__rooms_leave(r, R("all"), &c[5].m), 0);
    memset(seen, 0, sizeof seen);
    assert_int_equal(gw__rooms_visit(r, R("all"), collect, seen), 9);
    for (int i = 0; i < 10; i++)
        assert_int_equal(seen[i], i == 5 ? 0 : 1);
    for (int i = 0; i < 10; i++)
        gw__rooms_leave_all(r, &c[i].m);
    assert_int_equal(gw__rooms_count(r), 0);
    gw__rooms_free(r);
}

typedef struct self_leave {
    gw_rooms_t *r;
    size_t calls;
} self_leave_t;

static void
leave_self(void *ctx, void *owner)
{
    self_leave_t *s = ctx;
    conn_t *c = owner;
    s->calls++;
    gw__rooms_leave_all(s->r, &c->m);
}

/* The documented exception: the visited member may leave during the visit
 * (a slow consumer closed while being delivered to). */
static void
test_rooms_visit_self_leave(void **state)
{
    gw_rooms_t *r = gw__rooms_new();
    conn_t c[4];
    self_leave_t s = {r, 0};
    (void)state;

    for (int i = 0; i < 4; i++) {
        conn_init(&c[i], i);
        assert_int_equal(gw__rooms_join(r, R("room"), &c[i].m), 0);
        assert_int_equal(gw__rooms_join(r, R("other"), &c[i].m), 0);
    }
    assert_int_equal(gw__rooms_visit(r, R("room"), leave_self, &s), 4);
    assert_int_equal(s.calls, 4);
    assert_int_equal(gw__rooms_count(r), 0);
    gw__rooms_free(r);
}

/* Many rooms force the table to grow several times; every room must still
 * be found with the right members afterwards. */
static void
test_rooms_growth(void **state)
{
    enum { N = 20000 };
    gw_rooms_t *r = gw__rooms_new();
    conn_t *c = calloc(N, sizeof *c);
    conn_t shared;
    char name[32];
    (void)state;

    assert_non_null(c);
    conn_init(&shared, -1);
    for (int i = 0; i < N; i++) {
        int n = snprintf(name, sizeof name, "user:%d", i);
        conn_init(&c[i], i);
        assert_int_equal(gw__rooms_join(r, name, (size_t)n, &c[i].m), 0);
        if (i % 100 == 0)
            assert_int_equal(gw__rooms_join(r, name, (size_t)n, &shared.m), 0);
    }
    assert_int_equal(gw__rooms_count(r), N);
    for (int i = 0; i < N; i++) {
        int n = snprintf(name, sizeof name, "user:%d", i);
        assert_int_equal(gw__rooms_size(r, name, (size_t)n), i % 100 == 0 ? 2 : 1);
        assert_true(gw__rooms_is_member(r, name, (size_t)n, &c[i].m));
        assert_false(gw__rooms_is_member(r, name, (size_t)n, &c[(i + 1) % N].m));
        assert_int_equal(gw__rooms_is_member(r, name, (size_t)n, &shared.m), i % 100 == 0);
    }
    /* the shared member is in N/100 rooms; leave_all takes it out of each */
    gw__rooms_leave_all(r, &shared.m);
    assert_int_equal(gw__rooms_count(r), N);
    for (int i = 0; i < N; i += 2)
        gw__rooms_leave_all(r, &c[i].m);
    assert_int_equal(gw__rooms_count(r), N / 2);
    for (int i = 0; i < N; i++) {
        int n = snprintf(name, sizeof name, "user:%d", i);
        assert_int_equal(gw__rooms_size(r, name, (size_t)n), (size_t)(i % 2));
    }
    for (int i = 1; i < N; i += 2) {
        int n = snprintf(name, sizeof name, "user:%d", i);
        assert_int_equal(gw__rooms_leave(r, name, (size_t)n, &c[i].m), 0);
    }
    assert_int_equal(gw__rooms_count(r), 0);
    gw__rooms_free(r);
    free(c);
}

/*
 * Lookups are hashed, not scanned: 1e6 lookups among 1e5 rooms take well
 * under the budget with a growing table (about 0.1 s, more under ASan), and
 * many seconds with a scan or a table stuck at its initial size (thousands
 * of rooms per chain). CPU time, so a busy machine does not make it flaky.
 */
static void
test_rooms_lookup_is_hashed(void **state)
{
    enum { N = 100000, LOOKUPS = 1000000 };
    gw_rooms_t *r = gw__rooms_new();
    gw_member_t *m = calloc(N, sizeof *m);
    uint64_t seed = 12345;
    size_t found = 0;
    char name[32];
    clock_t t0;
    double secs;
    (void)state;

    assert_non_null(m);
    t0 = clock();
    for (int i = 0; i < N; i++) {
        int n = snprintf(name, sizeof name, "bot:%d", i);
        assert_int_equal(gw__rooms_join(r, name, (size_t)n, &m[i]), 0);
    }
    for (int i = 0; i < LOOKUPS; i++) {
        int n;
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        n = snprintf(name, sizeof name, "bot:%d", (int)((seed >> 33) % N));
        found += gw__rooms_size(r, name, (size_t)n);
        if (i % 4096 == 0 && (double)(clock() - t0) / CLOCKS_PER_SEC > 3.0)
            fail_msg("lookup %d already past 3 s of CPU: not O(1)", i);
    }
    secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    assert_int_equal(found, LOOKUPS);
    if (secs > 3.0)
        fail_msg("%d joins and %d lookups took %.2f s of CPU: not O(1)", N, LOOKUPS, secs);
    for (int i = 0; i < N; i++)
        gw__rooms_leave_all(r, &m[i]);
    assert_int_equal(gw__rooms_count(r), 0);
    gw__rooms_free(r);
    free(m);
}

/* Freeing with members still inside releases everything (LeakSanitizer
 * checks under the sanitizer build) and detaches the members. */
static void
test_rooms_free_with_members(void **state)
{
    gw_rooms_t *r = gw__rooms_new();
    conn_t a, b;
    (void)state;

    conn_init(&a, 1);
    conn_init(&b, 2);
    assert_int_equal(gw__rooms_join(r, R("x"), &a.m), 0);
    assert_int_equal(gw__rooms_join(r, R("y"), &a.m), 0);
    assert_int_equal(gw__rooms_join(r, R("x"), &b.m), 0);
    assert_non_null(a.m.rooms);
    gw__rooms_free(r);
    assert_null(a.m.rooms);
    assert_null(b.m.rooms);
    gw__rooms_free(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rooms_join_leave),
        cmocka_unit_test(test_rooms_leave_all),
        cmocka_unit_test(test_rooms_visit),
        cmocka_unit_test(test_rooms_visit_self_leave),
        cmocka_unit_test(test_rooms_growth),
        cmocka_unit_test(test_rooms_lookup_is_hashed),
        cmocka_unit_test(test_rooms_free_with_members),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
