/*
 * tests/unit/test_lockreq.c: the validation of lock requests (locks/validate.c):
 * names, and the JSON bodies of acquire, extend and release, table-driven.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "guard.h"
#include "locks.h"

static void
test_names(void **state)
{
    static const struct {
        const char *name;
        int ok;
    } cases[] = {
        {"lockTrade:42", 1},  {"a", 1},
        {"A-z_0.9:{tag}", 1}, {"", 0},
        {"with space", 0},    {"slash/inside", 0},
        {"percent%3A", 0},    {"coordhub:fence:{x}", 0},
        {"coordhub:", 0},     {"coordhub", 1},
        {"Coordhub:x", 1},    {"tab\there", 0},
        {"nul", 1},           {"ünicode", 0},
    };
    const char *err;
    char long_ok[LOCK_NAME_MAX + 1], long_bad[LOCK_NAME_MAX + 2];
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = lock_valid_name(cases[i].name, strlen(cases[i].name), &err);
        if ((rc == 0) != cases[i].ok)
            fail_msg("name '%s': rc %d", cases[i].name, rc);
        if (rc != 0)
            assert_non_null(err);
    }
    memset(long_ok, 'x', LOCK_NAME_MAX);
    assert_int_equal(lock_valid_name(long_ok, LOCK_NAME_MAX, &err), 0);
    memset(long_bad, 'x', LOCK_NAME_MAX + 1);
    assert_int_not_equal(lock_valid_name(long_bad, LOCK_NAME_MAX + 1, &err), 0);
    /* an embedded NUL is a bad byte, not the end of the name */
    assert_int_not_equal(lock_valid_name("ab\0cd", 5, &err), 0);
}

static void
test_acquire_bodies(void **state)
{
    static const struct {
        const char *body;
        int ok;
        long long ttl, wait;
        const char *owner;
    } cases[] = {
        {"{\"ttl_ms\":900000}", 1, 900000, 0, ""},
        {"{\"ttl_ms\":1,\"wait_ms\":0}", 1, 1, 0, ""},
        {"{\"ttl_ms\":86400000,\"wait_ms\":60000,\"owner\":\"svc\"}", 1, 86400000, 60000, "svc"},
        {"{\"ttl_ms\":5,\"unknown\":true}", 1, 5, 0, ""},
        {"{\"ttl_ms\":0}", 0, 0, 0, NULL},
        {"{\"ttl_ms\":-1}", 0, 0, 0, NULL},
        {"{\"ttl_ms\":86400001}", 0, 0, 0, NULL},
        {"{\"ttl_ms\":\"5\"}", 0, 0, 0, NULL},
        {"{\"ttl_ms\":1.5}", 0, 0, 0, NULL},
        {"{\"ttl_ms\":null}", 0, 0, 0, NULL},
        {"{}", 0, 0, 0, NULL},
        {"{\"wait_ms\":10}", 0, 0, 0, NULL},
        {"{\"ttl_ms\":5,\"wait_ms\":60001}", 0, 0, 0, NULL},
        {"{\"ttl_ms\":5,\"wait_ms\":-1}", 0, 0, 0, NULL},
        {"{\"ttl_ms\":5,\"owner\":7}", 0, 0, 0, NULL},
        {"{\"ttl_ms\":5,\"ttl_ms\":6}", 0, 0, 0, NULL},
        {"[1]", 0, 0, 0, NULL},
        {"\"x\"", 0, 0, 0, NULL},
        {"", 0, 0, 0, NULL},
        {"{\"ttl_ms\":5", 0, 0, 0, NULL},
        {"not json", 0, 0, 0, NULL},
    };
    lock_acquire_args_t a;
    const char *err;
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *b = cases[i].body;
        int rc = lock_parse_acquire(b, strlen(b), &a, &err);
        if ((rc == 0) != cases[i].ok)
            fail_msg("body '%s': rc %d", b, rc);
        if (rc == 0) {
            assert_int_equal(a.ttl_ms, cases[i].ttl);
            assert_int_equal(a.wait_ms, cases[i].wait);
            assert_string_equal(a.owner, cases[i].owner);
        } else {
            assert_non_null(err);
        }
    }
}

static void
test_owner_bound(void **state)
{
    char body[512], owner[LOCK_OWNER_MAX + 2];
    lock_acquire_args_t a;
    const char *err;
    (void)state;

    memset(owner, 'o', LOCK_OWNER_MAX);
    owner[LOCK_OWNER_MAX] = '\0';
    snprintf(body, sizeof body, "{\"ttl_ms\":5,\"owner\":\"%s\"}", owner);
    assert_int_equal(lock_parse_acquire(body, strlen(body), &a, &err), 0);
    owner[LOCK_OWNER_MAX] = 'o';
    owner[LOCK_OWNER_MAX + 1] = '\0';
    snprintf(body, sizeof body, "{\"ttl_ms\":5,\"owner\":\"%s\"}", owner);
    assert_int_not_equal(lock_parse_acquire(body, strlen(body), &a, &err), 0);
    /* an owner with an escaped NUL would be cut short: refused */
    assert_int_not_equal(lock_parse_acquire("{\"ttl_ms\":5,\"owner\":\"a\\u0000b\"}", 33, &a, &err),
                         0);
}

static void
test_extend_release_bodies(void **state)
{
    char token[LOCK_TOKEN_MAX + 1], big[256];
    long long ttl = 0;
    const char *err;
    (void)state;

    assert_int_equal(lock_parse_extend("{\"token\":\"abc\",\"ttl_ms\":10}", 27, token, &ttl, &err),
                     0);
    assert_string_equal(token, "abc");
    assert_int_equal(ttl, 10);
    assert_int_not_equal(lock_parse_extend("{\"token\":\"abc\"}", 15, token, &ttl, &err), 0);
    assert_int_not_equal(lock_parse_extend("{\"ttl_ms\":10}", 13, token, &ttl, &err), 0);
    assert_int_not_equal(lock_parse_extend("{\"token\":5,\"ttl_ms\":10}", 23, token, &ttl, &err),
                         0);
    assert_int_not_equal(lock_parse_extend("{\"token\":\"\",\"ttl_ms\":10}", 24, token, &ttl, &err),
                         0);
    assert_int_equal(lock_parse_release("{\"token\":\"abc\"}", 15, token, &err), 0);
    assert_int_not_equal(lock_parse_release("{}", 2, token, &err), 0);
    assert_int_not_equal(lock_parse_release("{\"token\":null}", 14, token, &err), 0);
    snprintf(big, sizeof big, "{\"token\":\"%065d\"}", 0);
    assert_int_not_equal(lock_parse_release(big, strlen(big), token, &err), 0);
}

static void
test_guarded(void **state)
{
    static const char *const bodies[] = {"{\"ttl_ms\":900000,\"wait_ms\":5}", "{\"ttl_ms\":9",
                                         "{\"token\":\"abc\",\"ttl_ms\":10}"};
    lock_acquire_args_t a;
    char token[LOCK_TOKEN_MAX + 1];
    long long ttl;
    const char *err;
    (void)state;

    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        size_t n = strlen(bodies[i]);
        for (size_t k = 0; k <= n; k++) {
            guard_t g;
            const char *p = guard_place(&g, bodies[i], k);
            (void)lock_parse_acquire(p, k, &a, &err);
            (void)lock_parse_extend(p, k, token, &ttl, &err);
            (void)lock_parse_release(p, k, token, &err);
            (void)lock_valid_name(p, k, &err);
            guard_release(&g);
        }
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),       cmocka_unit_test(test_acquire_bodies),
        cmocka_unit_test(test_owner_bound), cmocka_unit_test(test_extend_release_bodies),
        cmocka_unit_test(test_guarded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
