/*
 * tests/unit/test_util.c: what util shares with every module: the hash
 * table (find, insert, remove, iteration with removal, growth, binary
 * keys), random ids (length, alphabet, no repeats) and the channel table
 * (every subscribed name maps back to its id, the metrics labels in their
 * published order).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef struct item {
    char key[24];
    size_t len;
    int value;
    int seen;
    util_hnode_t node;
} item_t;

static item_t *
find(util_htable_t *t, const char *key, size_t len)
{
    util_hnode_t *n = util_htable_find(t, key, len);
    return n ? UTIL_CONTAINER_OF(n, item_t, node) : NULL;
}

static void
test_htable_basics(void **state)
{
    util_htable_t t = {0};
    item_t a = {.key = "a", .len = 1, .value = 1}, b = {.key = "a\0b", .len = 3, .value = 2};
    (void)state;

    assert_null(find(&t, "a", 1)); /* a zeroed table is empty */
    util_htable_insert(&t, &a.node, a.key, a.len);
    util_htable_insert(&t, &b.node, b.key, b.len); /* keys are bytes, not strings */
    assert_int_equal(t.count, 2);
    assert_ptr_equal(find(&t, "a", 1), &a);
    assert_ptr_equal(find(&t, "a\0b", 3), &b);
    assert_null(find(&t, "a\0c", 3));
    assert_null(find(&t, "", 0));
    util_htable_remove(&t, &a.node);
    assert_null(find(&t, "a", 1));
    assert_ptr_equal(find(&t, "a\0b", 3), &b);
    util_htable_remove(&t, &b.node);
    assert_int_equal(t.count, 0);
    util_htable_free(&t);
    assert_null(t.buckets);
}

static void
test_htable_growth_and_iteration(void **state)
{
    enum { N = 5000 };
    util_htable_t t = {0};
    item_t *it = calloc(N, sizeof *it);
    util_hnode_t *n, *next;
    size_t visited = 0;
    (void)state;

    assert_non_null(it);
    for (int i = 0; i < N; i++) {
        it[i].len = (size_t)snprintf(it[i].key, sizeof it[i].key, "key:%d", i);
        it[i].value = i;
        util_htable_insert(&t, &it[i].node, it[i].key, it[i].len);
    }
    assert_int_equal(t.count, N);
    assert_true(t.mask + 1 >= N); /* it grew: at most one node a bucket on average */
    for (int i = 0; i < N; i++) {
        char k[24];
        int l = snprintf(k, sizeof k, "key:%d", i);
        item_t *f = find(&t, k, (size_t)l);
        assert_non_null(f);
        assert_int_equal(f->value, i);
    }
    /* every node once; removing the current one (odd values) is allowed */
    for (n = util_htable_next(&t, NULL); n != NULL; n = next) {
        item_t *x = UTIL_CONTAINER_OF(n, item_t, node);
        next = util_htable_next(&t, n);
        x->seen++;
        visited++;
        if (x->value % 2)
            util_htable_remove(&t, n);
    }
    assert_int_equal(visited, N);
    assert_int_equal(t.count, N / 2);
    for (int i = 0; i < N; i++) {
        assert_int_equal(it[i].seen, 1);
        assert_int_equal(find(&t, it[i].key, it[i].len) != NULL, i % 2 == 0);
    }
    util_htable_free(&t);
    free(it);
}

static int
all_in(const char *s, const char *alphabet)
{
    for (; *s; s++)
        if (strchr(alphabet, *s) == NULL)
            return 0;
    return 1;
}

static int
cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void
test_random_ids(void **state)
{
    char a[33], b[33], s1[21], s2[21];
    (void)state;

    memset(a, 'x', sizeof a);
    util_random_id(a, 32, UTIL_ID_HEX);
    util_random_id(b, 32, UTIL_ID_HEX);
    assert_int_equal(strlen(a), 32);
    assert_true(all_in(a, "0123456789abcdef"));
    assert_string_not_equal(a, b); /* 128 bits: a repeat is a broken source */

    util_random_id(s1, 20, UTIL_ID_B64URL);
    util_random_id(s2, 20, UTIL_ID_B64URL);
    assert_int_equal(strlen(s1), 20);
    assert_true(all_in(s1, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"));
    assert_string_not_equal(s1, s2);

    /* every character is used: 64 x 2000 draws miss one with p ~ 1e-12 */
    {
        int used[256] = {0}, kinds = 0;
        for (int i = 0; i < 100; i++) {
            util_random_id(s1, 20, UTIL_ID_B64URL);
            for (int j = 0; j < 20; j++)
                used[(unsigned char)s1[j]]++;
        }
        for (int c = 0; c < 256; c++)
            kinds += used[c] > 0;
        assert_int_equal(kinds, 64);
    }

    /* bytes come from a pool refilled 256 at a time: ids of 15 and 16
     * bytes drawn across many refills never repeat (a byte given out
     * twice would) */
    {
        enum { N = 3000 };
        static char ids[N][33];
        for (int i = 0; i < N; i++) {
            if (i % 2)
                util_random_id(ids[i], 32, UTIL_ID_HEX);
            else
                util_random_id(ids[i], 20, UTIL_ID_B64URL);
        }
        qsort(ids, N, sizeof ids[0], cmp_id);
        for (int i = 1; i < N; i++)
            assert_string_not_equal(ids[i - 1], ids[i]);
    }
}

static void
test_channels(void **state)
{
    static const char *const labels[] = {"tradestate",     "canceledtrades", "itemReserved",
                                         "finishedtrades", "steamDown",      "bot",
                                         "other"};
    size_t nlabels = 0;
    (void)state;

    for (int i = 0; i < UTIL_CH_COUNT; i++) {
        const util_channel_t *c = &util_channels[i];
        if (c->name != NULL) {
            assert_int_equal(c->len, strlen(c->name));
            if (c->pattern)
                assert_int_equal(util_channel_of(c->name, "bot 7", 5), i);
            else
                assert_int_equal(util_channel_of(NULL, c->name, c->len), i);
        }
        if (c->label != NULL) {
            assert_true(nlabels < sizeof labels / sizeof labels[0]);
            assert_string_equal(c->label, labels[nlabels]);
            nlabels++;
        }
    }
    assert_int_equal(nlabels, sizeof labels / sizeof labels[0]);
    assert_int_equal(util_channel_of(NULL, "tradestatex", 10), UTIL_CH_TRADESTATE);
    assert_int_equal(util_channel_of(NULL, "tradestatex", 11), UTIL_CH_OTHER);
    assert_int_equal(util_channel_of(NULL, "bot *", 5), UTIL_CH_OTHER); /* not a pattern */
    assert_int_equal(util_channel_of("other *", "other 1", 7), UTIL_CH_OTHER);
    assert_int_equal(
        util_channel_of(NULL, UTIL_CHANNEL_LOCK_RELEASED, strlen(UTIL_CHANNEL_LOCK_RELEASED)),
        UTIL_CH_LOCK_RELEASED);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_htable_basics),
        cmocka_unit_test(test_htable_growth_and_iteration),
        cmocka_unit_test(test_random_ids),
        cmocka_unit_test(test_channels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
