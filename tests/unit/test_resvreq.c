/*
 * tests/unit/test_resvreq.c: validation of reservation requests
 * (reserve/validate.c): app and asset ids, reserve bodies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "reserve.h"

static void
test_ids(void **state)
{
    static const struct {
        const char *s;
        int app, asset;
    } cases[] = {
        {"730", 1, 1},      {"app_1-x", 1, 1}, {"a.b", 0, 1},
        {"", 0, 0},         {"a b", 0, 0},     {"a:b", 0, 0},
        {"a{b}", 0, 0},     {"a/b", 0, 0},     {"1234567890123456789", 1, 1},
        {"\xc3\xa9", 0, 0},
    };
    char long33[34], long129[130];
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = strlen(cases[i].s);
        if ((resv_valid_app(cases[i].s, n) == 0) != cases[i].app)
            fail_msg("app '%s'", cases[i].s);
        if ((resv_valid_asset(cases[i].s, n) == 0) != cases[i].asset)
            fail_msg("asset '%s'", cases[i].s);
    }
    memset(long33, '7', 33);
    assert_int_equal(resv_valid_app(long33, 32), 0);
    assert_int_not_equal(resv_valid_app(long33, 33), 0);
    memset(long129, 'a', 129);
    assert_int_equal(resv_valid_asset(long129, 128), 0);
    assert_int_not_equal(resv_valid_asset(long129, 129), 0);
    assert_int_not_equal(resv_valid_asset("a\0b", 3), 0);
}

static void
test_bodies(void **state)
{
    static const struct {
        const char *body;
        int ok;
        size_t n;
        long long ttl;
    } cases[] = {
        {"{\"assets\":[\"a1\",\"a2\"],\"ttl_s\":1200,\"owner\":\"svc\"}", 1, 2, 1200},
        {"{\"assets\":[\"a1\"],\"ttl_s\":1}", 1, 1, 1},
        {"{\"assets\":[\"a1\"],\"ttl_s\":86400}", 1, 1, 86400},
        {"{\"assets\":[],\"ttl_s\":5}", 0, 0, 0},
        {"{\"assets\":[\"a1\",\"a1\"],\"ttl_s\":5}", 0, 0, 0},
        {"{\"assets\":[\"a 1\"],\"ttl_s\":5}", 0, 0, 0},
        {"{\"assets\":[1],\"ttl_s\":5}", 0, 0, 0},
        {"{\"assets\":\"a1\",\"ttl_s\":5}", 0, 0, 0},
        {"{\"assets\":[\"a1\"],\"ttl_s\":0}", 0, 0, 0},
        {"{\"assets\":[\"a1\"],\"ttl_s\":86401}", 0, 0, 0},
        {"{\"assets\":[\"a1\"],\"ttl_s\":\"5\"}", 0, 0, 0},
        {"{\"assets\":[\"a1\"]}", 0, 0, 0},
        {"{\"assets\":[\"a1\"],\"ttl_s\":5,\"owner\":5}", 0, 0, 0},
        {"{\"assets\":[\"a1\"],\"ttl_s\":5,\"ttl_s\":6}", 0, 0, 0},
        {"[\"a1\"]", 0, 0, 0},
        {"", 0, 0, 0},
        {"{", 0, 0, 0},
    };
    resv_reserve_args_t a;
    const char *err;
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = resv_parse_reserve(cases[i].body, strlen(cases[i].body), &a, &err);
        if ((rc == 0) != cases[i].ok)
            fail_msg("body '%s': rc %d", cases[i].body, rc);
        if (rc == 0) {
            assert_int_equal(a.nassets, cases[i].n);
            assert_int_equal(a.ttl_s, cases[i].ttl);
            resv_reserve_args_free(&a);
        } else {
            assert_non_null(err);
            assert_null(a.assets);
        }
    }
}

static void
test_asset_count_bound(void **state)
{
    size_t cap = 16 + (RESV_ASSETS_MAX + 1) * 12;
    char *body = malloc(cap);
    resv_reserve_args_t a;
    const char *err;
    size_t o;
    (void)state;

    for (int n = RESV_ASSETS_MAX; n <= RESV_ASSETS_MAX + 1; n++) {
        o = (size_t)snprintf(body, cap, "{\"ttl_s\":5,\"assets\":[");
        for (int i = 0; i < n; i++)
            o += (size_t)snprintf(body + o, cap - o, "%s\"a%d\"", i ? "," : "", i);
        o += (size_t)snprintf(body + o, cap - o, "]}");
        if (n == RESV_ASSETS_MAX) {
            assert_int_equal(resv_parse_reserve(body, o, &a, &err), 0);
            assert_int_equal(a.nassets, RESV_ASSETS_MAX);
            resv_reserve_args_free(&a);
        } else {
            assert_int_not_equal(resv_parse_reserve(body, o, &a, &err), 0);
        }
    }
    free(body);
}

static void
test_guarded(void **state)
{
    const char *b = "{\"assets\":[\"a1\",\"a2\"],\"ttl_s\":1200}";
    size_t n = strlen(b);
    resv_reserve_args_t a;
    const char *err;
    (void)state;

    for (size_t k = 0; k <= n; k++) {
        guard_t g;
        const char *p = guard_place(&g, b, k);
        if (resv_parse_reserve(p, k, &a, &err) == 0)
            resv_reserve_args_free(&a);
        (void)resv_valid_app(p, k);
        (void)resv_valid_asset(p, k);
        guard_release(&g);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_bodies),
        cmocka_unit_test(test_asset_count_bound),
        cmocka_unit_test(test_guarded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
