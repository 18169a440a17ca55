/*
 * tests/unit/test_offset.c: the recovery offset parser, wire_offset_parse
 * ("<anchor>-<count>", docs/recovery.md): the table of valid and invalid
 * forms, every length of an input cut short, and random inputs checked
 * against a model written from the contract. Every input is also parsed
 * placed against a PROT_NONE page (guard.h), so that a read past `n`
 * crashes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "wire.h"

#define S(lit) lit, sizeof(lit) - 1

#define MAX53 UINT64_C(9007199254740991) /* 2^53 - 1 */

typedef struct offset_case {
    const char *in;
    size_t len;
    int ok;
    uint64_t anchor, count;
} offset_case_t;

#define OK(lit, a, k)                                                                              \
    {                                                                                              \
        S(lit), 1, UINT64_C(a), UINT64_C(k)                                                        \
    }
#define BAD(lit)                                                                                   \
    {                                                                                              \
        S(lit), 0, 0, 0                                                                            \
    }

static const offset_case_t cases[] = {
    /* valid */
    OK("1-0", 1, 0),
    OK("1-1", 1, 1),
    OK("1-9", 1, 9),
    OK("9-10", 9, 10),
    OK("10-0", 10, 0),
    OK("1796229453110-4", 1796229453110, 4),
    OK("1764693423518-42", 1764693423518, 42),
    OK("1000000000000000-1000000000000000", 1000000000000000, 1000000000000000),
    OK("9007199254740991-0", 9007199254740991, 0),
    OK("1-9007199254740991", 1, 9007199254740991),
    OK("9007199254740991-9007199254740991", 9007199254740991, 9007199254740991),
    OK("9007199254740990-9007199254740990", 9007199254740990, 9007199254740990),
    OK("8999999999999999-8999999999999999", 8999999999999999, 8999999999999999),
    /* empty, or a part missing */
    BAD(""),
    BAD("-"),
    BAD("1"),
    BAD("1-"),
    BAD("-1"),
    BAD("-0"),
    BAD("--"),
    BAD("1--2"),
    BAD("1-2-3"),
    BAD("1-2-"),
    BAD("1796229453110"),
    /* anchor 0, leading zeros */
    BAD("0-0"),
    BAD("0-1"),
    BAD("00-1"),
    BAD("01-2"),
    BAD("001-2"),
    BAD("1-02"),
    BAD("1-00"),
    BAD("1-000"),
    BAD("0001796229453110-4"),
    /* signs, spaces, other characters around or inside */
    BAD("+1-2"),
    BAD("1-+2"),
    BAD("1--0"),
    BAD(" 1-2"),
    BAD("1-2 "),
    BAD("1 -2"),
    BAD("1- 2"),
    BAD("\t1-2"),
    BAD("1-2\n"),
    BAD("1-2\r\n"),
    BAD("1_000-2"),
    BAD("1.0-2"),
    BAD("1e3-2"),
    BAD("0x1-2"),
    BAD("1-0x2"),
    BAD("a-1"),
    BAD("1-a"),
    BAD("1-2a"),
    BAD("1a-2"),
    BAD("1:2"),
    BAD("1/2"),
    BAD("1-2/"),
    BAD("/1-2"),
    BAD("1-:"),
    BAD("\"1-2\""),
    BAD("1\xe2\x80\x93"
        "2"),              /* U+2013, an en dash */
    BAD("\xef\xbc\x91-2"), /* U+FF11, a fullwidth one */
    BAD("1-2\xff"),
    BAD("\xb1-2"), /* '1' | 0x80 */
    BAD("1\xad"
        "2"), /* '-' | 0x80 */
    /* NUL inside, before, after */
    BAD("\0"),
    BAD("\0001-2"),
    BAD("1\0-2"),
    BAD("1-\0"),
    BAD("1-\0002"),
    BAD("1-2\0"),
    BAD("1-0\0"),
    BAD("9007199254740991-9007199254740991\0"),
    /* 2^53 and above, 17 digits and more */
    BAD("9007199254740992-0"),
    BAD("1-9007199254740992"),
    BAD("9007199254740993-1"),
    BAD("9999999999999999-1"),
    BAD("1-9999999999999999"),
    BAD("10000000000000000-1"),
    BAD("1-10000000000000000"),
    BAD("00000000000000001-1"),
    BAD("1-00000000000000000"),
    BAD("90071992547409910-1"),
    BAD("18446744073709551615-1"),
    BAD("18446744073709551616-1"), /* 2^64: 0 after a wrap */
    BAD("18446744073709551617-1"), /* 2^64 + 1: 1 after a wrap */
    BAD("1-18446744073709551617"),
    BAD("36893488147419103232-0"), /* 2^65 */
    BAD("99999999999999999999999999999999999999-1"),
    /* longer than WIRE_OFFSET_MAX */
    BAD("1-00000000000000000000000000000000000000"),  /* 40 */
    BAD("1-000000000000000000000000000000000000000"), /* 41 */
    BAD("9007199254740991-9007199254740991        "), /* 41 */
    BAD("11111111111111111111111111111111111111111111111111111111111111111111111111-1"),
};

/* What the parser must answer for s[0..n), from the contract alone: a
 * number is 1-16 digits without a leading zero (0 itself allowed) and at
 * most 2^53 - 1; the anchor is not 0. 1 with *a, *k set, or 0. */
static int
model(const char *s, size_t n, uint64_t *a, uint64_t *k)
{
    uint64_t v[2] = {0, 0};
    size_t i = 0;

    if (n > WIRE_OFFSET_MAX)
        return 0;
    for (int part = 0; part < 2; part++) {
        size_t start = i;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (i - start == 16)
                return 0;
            v[part] = v[part] * 10 + (uint64_t)(s[i] - '0');
            i++;
        }
        if (i == start || (s[start] == '0' && i - start > 1) || v[part] > MAX53)
            return 0;
        if (part == 0) {
            if (i == n || s[i] != '-')
                return 0;
            i++;
        }
    }
    if (i != n || v[0] == 0)
        return 0;
    *a = v[0];
    *k = v[1];
    return 1;
}

/* Parses s[0..n) from an exact-size heap copy and from a copy against a
 * guard page; both must give `want` (and the numbers). A valid offset
 * prints back as the very bytes that were parsed. */
static void
check(const char *s, size_t n, int want, uint64_t wa, uint64_t wk, const char *what)
{
    for (int placed = 0; placed < 2; placed++) {
        guard_t g;
        char *heap = NULL;
        const char *in;
        uint64_t a = 0xdeadbeef, k = 0xdeadbeef;
        int rc;

        if (placed) {
            in = guard_place(&g, s, n);
            assert_non_null(in);
        } else {
            heap = malloc(n ? n : 1);
            assert_non_null(heap);
            memcpy(heap, s, n);
            in = heap;
        }
        rc = wire_offset_parse(in, n, &a, &k);
        if (!want) {
            if (rc != -EINVAL)
                fail_msg("%s: '%.*s' (%zu bytes, %s) accepted as %llu-%llu (rc %d)", what, (int)n,
                         s, n, placed ? "guarded" : "heap", (unsigned long long)a,
                         (unsigned long long)k, rc);
        } else {
            char back[64];
            int bn;

            if (rc != 0)
                fail_msg("%s: '%.*s' (%zu bytes, %s) refused (rc %d)", what, (int)n, s, n,
                         placed ? "guarded" : "heap", rc);
            if (a != wa || k != wk)
                fail_msg("%s: '%.*s' parsed as %llu-%llu, want %llu-%llu", what, (int)n, s,
                         (unsigned long long)a, (unsigned long long)k, (unsigned long long)wa,
                         (unsigned long long)wk);
            assert_true(a >= 1 && a <= MAX53 && k <= MAX53);
            bn = snprintf(back, sizeof back, "%llu-%llu", (unsigned long long)a,
                          (unsigned long long)k);
            assert_true(bn > 0 && (size_t)bn == n && memcmp(back, s, n) == 0);
        }
        if (placed)
            guard_release(&g);
        free(heap);
    }
}

static void
test_offset_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char what[32];
        uint64_t a, k;

        snprintf(what, sizeof what, "case %zu", i);
        /* the table and the model agree: a mistake in either shows here */
        if (model(cases[i].in, cases[i].len, &a, &k) != cases[i].ok)
            fail_msg("case %zu '%.*s': the table and the model disagree", i, (int)cases[i].len,
                     cases[i].in);
        check(cases[i].in, cases[i].len, cases[i].ok, cases[i].anchor, cases[i].count, what);
    }
}

/* No NULL dereference, and nothing to parse. */
static void
test_offset_null(void **state)
{
    uint64_t a, k;
    (void)state;

    assert_int_equal(wire_offset_parse(NULL, 0, &a, &k), -EINVAL);
    assert_int_equal(wire_offset_parse(NULL, 3, &a, &k), -EINVAL);
}

/* `n` is the whole input: the bytes after it, here the rest of a longer
 * valid offset, are never looked at (no strlen, no peeking). */
static void
test_offset_length_is_n(void **state)
{
    static const char full[] = "9007199254740991-9007199254740991";
    (void)state;

    for (size_t n = 0; n <= sizeof full - 1; n++) {
        char what[32];
        uint64_t a = 0, k = 0;
        int ok = model(full, n, &a, &k);

        snprintf(what, sizeof what, "prefix %zu", n);
        /* "9007199254740991-" and shorter are invalid, then every longer
         * prefix is a valid count */
        assert_int_equal(ok, n > 17);
        check(full, n, ok, a, k, what);
    }
    /* a shorter n inside a NUL-terminated string */
    check("12-345", 4, 1, 12, 3, "n inside");
    check("12-0", 3, 0, 0, 0, "n before the count");
    check("1-2 trailing", 3, 1, 1, 2, "n before garbage");
}

/* Both numbers at every length from 1 to 17 digits, each digit string
 * just below, at and above a power of ten and 2^53. */
static void
test_offset_lengths(void **state)
{
    static const char *const nums[] = {
        "0",
        "1",
        "9",
        "10",
        "99",
        "100",
        "999999999999999",
        "1000000000000000",
        "4503599627370496",
        "9007199254740991",
        "9007199254740992",
        "9007199254740999",
        "9999999999999999",
        "10000000000000000",
        "90071992547409911",
    };
    const size_t nn = sizeof nums / sizeof nums[0];
    (void)state;

    for (size_t i = 0; i < nn; i++)
        for (size_t j = 0; j < nn; j++) {
            char buf[64], what[48];
            int n = snprintf(buf, sizeof buf, "%s-%s", nums[i], nums[j]);
            uint64_t a = 0, k = 0;
            int ok = model(buf, (size_t)n, &a, &k);

            snprintf(what, sizeof what, "%s-%s", nums[i], nums[j]);
            /* the model on its own: valid exactly when both fit and the
             * anchor is not 0 */
            assert_int_equal(ok, i > 0 && i <= 9 && j <= 9);
            check(buf, (size_t)n, ok, a, k, what);
        }
}

/* Random bytes over a small alphabet, each checked against the model. */
static void
test_offset_random(void **state)
{
    static const char alphabet[] = "0123456789012345678901234567890123456789---9+ \0x\xff";
    uint64_t seed = 0x0ff5e7;
    char buf[48];
    unsigned accepted = 0;
    (void)state;

    for (int iter = 0; iter < 20000; iter++) {
        size_t n = test_rand(&seed) % sizeof buf;
        uint64_t a = 0, k = 0;
        int ok;

        /* half the time a valid shape to mutate, so that acceptance is
         * reached often */
        if (test_rand(&seed) & 1) {
            int m = snprintf(buf, sizeof buf, "%llu-%llu",
                             (unsigned long long)(test_rand(&seed) % (MAX53 + 2)),
                             (unsigned long long)(test_rand(&seed) >> (test_rand(&seed) % 64)));
            n = (size_t)m;
            if (test_rand(&seed) % 3 == 0)
                buf[test_rand(&seed) % n] = alphabet[test_rand(&seed) % (sizeof alphabet - 1)];
        } else {
            for (size_t i = 0; i < n; i++)
                buf[i] = alphabet[test_rand(&seed) % (sizeof alphabet - 1)];
        }
        ok = model(buf, n, &a, &k);
        accepted += (unsigned)ok;
        check(buf, n, ok, a, k, "random");
    }
    assert_true(accepted > 1000);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offset_table),       cmocka_unit_test(test_offset_null),
        cmocka_unit_test(test_offset_length_is_n), cmocka_unit_test(test_offset_lengths),
        cmocka_unit_test(test_offset_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
