/*
 * tests/unit/test_deadline.c: the deadline lists (gateway/deadline.c): order,
 * cancel, replace, and a randomized comparison with a plain array model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "deadline.h"

/* The deadlines of `l` from head to tail into `out`; checks the links. */
static size_t
walk(const gw_slist_t *l, uint64_t *out, size_t cap)
{
    size_t n = 0;
    const gw_snode_t *prev = NULL;

    for (const gw_snode_t *x = l->head; x; x = x->next) {
        assert_ptr_equal(x->prev, prev);
        assert_ptr_equal(x->in, l);
        assert_true(n < cap);
        out[n++] = x->at;
        prev = x;
    }
    assert_ptr_equal(l->tail, prev);
    return n;
}

static void
test_fifo_and_due(void **state)
{
    gw_slist_t l = {NULL, NULL};
    gw_snode_t n[3] = {{0}};
    uint64_t at[4];
    (void)state;

    assert_null(gw__sched_due(&l, 1000));
    gw__sched_put(&l, &n[0], 100);
    gw__sched_put(&l, &n[1], 100);
    gw__sched_put(&l, &n[2], 250);
    assert_int_equal(walk(&l, at, 4), 3);
    assert_null(gw__sched_due(&l, 99));
    assert_ptr_equal(gw__sched_due(&l, 100), &n[0]);
    /* rescheduling moves a node to its place: n[0] to the tail */
    gw__sched_put(&l, &n[0], 300);
    assert_ptr_equal(l.head, &n[1]);
    assert_ptr_equal(l.tail, &n[0]);
    /* an earlier deadline than the tail's is walked into place */
    gw__sched_put(&l, &n[0], 50);
    assert_ptr_equal(l.head, &n[0]);
    assert_int_equal(walk(&l, at, 4), 3);
    assert_true(at[0] == 50 && at[1] == 100 && at[2] == 250);
    gw__sched_cancel(&n[1]);
    gw__sched_cancel(&n[1]); /* twice: a no-op */
    assert_null(n[1].in);
    assert_int_equal(walk(&l, at, 4), 2);
    gw__sched_cancel(&n[0]);
    gw__sched_cancel(&n[2]);
    assert_null(l.head);
    assert_null(l.tail);
}

static void
test_replace(void **state)
{
    gw_slist_t l = {NULL, NULL}, m = {NULL, NULL};
    gw_snode_t a = {0}, b = {0}, c = {0}, d = {0};
    uint64_t at[4];
    (void)state;

    gw__sched_put(&l, &a, 1);
    gw__sched_put(&l, &b, 2);
    gw__sched_put(&l, &c, 3);
    gw__sched_replace(&b, &d); /* the middle */
    assert_null(b.in);
    assert_ptr_equal(a.next, &d);
    assert_ptr_equal(c.prev, &d);
    assert_int_equal(d.at, 2);
    gw__sched_replace(&a, &b); /* the head */
    assert_ptr_equal(l.head, &b);
    gw__sched_replace(&c, &a); /* the tail */
    assert_ptr_equal(l.tail, &a);
    assert_int_equal(walk(&l, at, 4), 3);
    assert_true(at[0] == 1 && at[1] == 2 && at[2] == 3);
    gw__sched_replace(&c, &a); /* c is on no list: nothing moves */
    assert_ptr_equal(l.tail, &a);
    gw__sched_put(&m, &a, 9); /* from one list to another */
    assert_int_equal(walk(&l, at, 4), 2);
    assert_int_equal(walk(&m, at, 4), 1);
}

/* Random puts (mostly "now + fixed", sometimes anything), cancels and
 * pops of due heads against a model: the list is always sorted, holds
 * exactly the live nodes, and pops come out in deadline order. */
static void
test_random_model(void **state)
{
    enum { N = 64 };
    gw_slist_t l = {NULL, NULL};
    gw_snode_t n[N];
    uint64_t now = 0, at[N], last = 0;
    unsigned seed = 12345;
    (void)state;

    for (int i = 0; i < N; i++)
        n[i] = (gw_snode_t){0};
    for (int step = 0; step < 200000; step++) {
        int k;
        seed = seed * 1103515245u + 12345u;
        k = (int)((seed >> 16) % N);
        now += (seed >> 8) % 3;
        switch ((seed >> 4) % 4) {
        case 0:
        case 1: gw__sched_put(&l, &n[k], now + ((seed >> 2) % 8 == 0 ? (seed >> 20) % 50 : 25)); break;
        case 2: gw__sched_cancel(&n[k]); break;
        default: {
            gw_snode_t *d = gw__sched_due(&l, now);
            if (d != NULL) {
                assert_true(d->at <= now);
                gw__sched_cancel(d);
            }
        }
        }
        if (step % 97 == 0) {
            size_t cnt = walk(&l, at, N), live = 0;
            for (size_t i = 1; i < cnt; i++)
                assert_true(at[i - 1] <= at[i]);
            for (int i = 0; i < N; i++)
                live += n[i].in != NULL;
            assert_int_equal(cnt, live);
        }
    }
    /* drain: deadlines come out in order */
    while (l.head != NULL) {
        gw_snode_t *d = gw__sched_due(&l, UINT64_MAX);
        assert_true(d->at >= last);
        last = d->at;
        gw__sched_cancel(d);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_and_due),
        cmocka_unit_test(test_replace),
        cmocka_unit_test(test_random_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
