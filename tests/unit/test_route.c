/*
 * tests/unit/test_route.c: the Redis payload parsers for `tradestate`
 * (wire_route_tradestate) and `canceledtrades` (wire_route_canceled).
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

typedef struct id_case {
    const char *in;
    size_t len;
    const char *want; /* NULL: -EINVAL */
} id_case_t;

#define ID64 "0123456789012345678901234567890123456789012345678901234567890123"

static const id_case_t ts_cases[] = {
    {S("{\"steamId\":\"76561198000000001\",\"token\":\"t\",\"state\":3,\"msg\":\"ok\"}"),
     "76561198000000001"},
    {S("{\"state\":3,\"extra\":{\"steamId\":\"9\"},\"steamId\":\"abcXYZ09\"}"), "abcXYZ09"},
    {S(" \n{\"steamId\":\"1\"}\n "), "1"},
    {S("{\"steamId\":\"" ID64 "\"}"), ID64},
    /* integer ids, as some bots send them */
    {S("{\"steamId\":76561198000000001}"), "76561198000000001"},
    {S("{\"steamId\":0}"), "0"},
    {S("{\"steamId\":9223372036854775807}"), "9223372036854775807"},
    {S("{\"steamId\":-1}"), NULL},
    {S("{\"steamId\":1.5}"), NULL},
    {S("{\"steamId\":7.6561198e16}"), NULL},
    {S("{\"steamId\":99999999999999999999}"), NULL}, /* overflows: invalid for jansson */
    /* missing or wrong type */
    {S("{}"), NULL},
    {S("{\"steamid\":\"1\"}"), NULL},
    {S("{\"steamId\":null}"), NULL},
    {S("{\"steamId\":true}"), NULL},
    {S("{\"steamId\":[\"1\"]}"), NULL},
    {S("{\"steamId\":{\"id\":\"1\"}}"), NULL},
    /* bad ids */
    {S("{\"steamId\":\"\"}"), NULL},
    {S("{\"steamId\":\"" ID64 "4\"}"), NULL},
    {S("{\"steamId\":\"765_611\"}"), NULL},
    {S("{\"steamId\":\"user:1\"}"), NULL},
    {S("{\"steamId\":\" 1\"}"), NULL},
    {S("{\"steamId\":\"1\\u0000\"}"), NULL},
    {S("{\"steamId\":\"1\\n\"}"), NULL},
    {S("{\"steamId\":\"\\u00e9\"}"), NULL},
    /* not an object */
    {S("[]"), NULL},
    {S("[{\"steamId\":\"1\"}]"), NULL},
    {S("\"1\""), NULL},
    {S("1"), NULL},
    {S("null"), NULL},
    /* not JSON */
    {S(""), NULL},
    {S(" "), NULL},
    {S("{"), NULL},
    {S("{\"steamId\":\"1\""), NULL},
    {S("{steamId:1}"), NULL},
    {S("{'steamId':'1'}"), NULL},
    {S("{\"steamId\":\"1\"} x"), NULL},
    {S("{\"steamId\":\"1\"}{}"), NULL},
    {S("{\"steamId\":\"1\"}\0"), NULL},
    {S("{\"steamId\":\"1\",}"), NULL},
    /* invalid UTF-8, raw control bytes */
    {S("{\"steamId\":\"1\",\"msg\":\"\xff\"}"), NULL},
    {S("{\"steamId\":\"1\",\"msg\":\"\xc3\"}"), NULL},
    {S("{\"steamId\":\"1\",\"msg\":\"\xed\xa0\x80\"}"), NULL}, /* a UTF-16 surrogate */
    {S("{\"steamId\":\"1\",\"msg\":\"a\x01\"}"), NULL},
    {S("{\"steamId\":\"1\",\"msg\":\"a\0b\"}"), NULL},
    /* which steamId would a browser see? refuse to guess */
    {S("{\"steamId\":\"1\",\"steamId\":\"2\"}"), NULL},
    {S("{\"steamId\":\"1\",\"steam\\u0049d\":\"2\"}"), NULL},
    /* a browser unescapes keys and values: so do we */
    {S("{\"steam\\u0049d\":\"7\"}"), "7"},
    {S("{\"steamId\":\"\\u0037\\u0036\"}"), "76"},
    {S("{\"steamId\":\"7\\u002f\"}"), NULL},
    {S("{\"steamId\":\"7\\/\"}"), NULL},
    {S("{\"steamId\":\"\\u00377\"}"), "77"},
    /* only the top level counts; duplicates elsewhere are the page's business */
    {S("{\"steamId\":\"1\",\"extra\":{\"a\":1,\"a\":2,\"steamId\":\"3\"}}"), "1"},
    {S("{\"steamId\":{\"steamId\":\"1\"}}"), NULL},
    {S("{\"steamId\":-0}"), "0"},
    {S("{\"steamId\":-01}"), NULL},
    {S("{\"steamId\":9223372036854775808}"), NULL},
    {S("{\"steamId\":10000000000000000000}"), NULL},
    /* numbers of any size elsewhere, as JSON.parse takes them */
    {S("{\"steamId\":\"1\",\"p\":1e400,\"q\":123456789012345678901234567890,\"r\":-1.5E-3}"), "1"},
    {S("{\"steamId\":\"1\",\"n\":01}"), NULL},
    {S("{\"steamId\":\"1\",\"n\":-}"), NULL},
    {S("{\"steamId\":\"1\",\"n\":1.}"), NULL},
    {S("{\"steamId\":\"1\",\"n\":.5}"), NULL},
    {S("{\"steamId\":\"1\",\"n\":1e}"), NULL},
    {S("{\"steamId\":\"1\",\"n\":1e+}"), NULL},
    {S("{\"steamId\":\"1\",\"n\":+1}"), NULL},
    {S("{\"steamId\":\"1\",\"n\":1x}"), NULL},
    {S("{\"steamId\":\"1\",\"n\":tru}"), NULL},
    {S("{\"steamId\":\"1\",\"n\":truex}"), NULL},
    /* structure */
    {S("{ \"steamId\" : \"1\" , \"a\" : [ 1 , { \"b\" : null } , [ ] , { } ] }"), "1"},
    {S("{\"steamId\":\"1\",\"a\":[1,]}"), NULL},
    {S("{\"steamId\":\"1\",\"a\":[}"), NULL},
    {S("{\"steamId\":\"1\",\"a\":{\"b\"}}"), NULL},
    {S("{\"steamId\":\"1\",\"a\":{1:2}}"), NULL},
    {S("{\"steamId\":\"1\"}\f"), NULL},
    {S("{\"steamId\":\"1\",\"a\":[1 2]}"), NULL},
    /* strings: escapes, surrogate pairs, UTF-8 */
    {S("{\"steamId\":\"1\",\"m\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0000\"}"), "1"},
    {S("{\"steamId\":\"1\",\"m\":\"\\x\"}"), NULL},
    {S("{\"steamId\":\"1\",\"m\":\"\\u12\"}"), NULL},
    {S("{\"steamId\":\"1\",\"m\":\"\\ud83d\\ude00\"}"), "1"},
    {S("{\"steamId\":\"1\",\"m\":\"\\ud83d\"}"), NULL},
    {S("{\"steamId\":\"1\",\"m\":\"\\ude00\"}"), NULL},
    {S("{\"steamId\":\"1\",\"m\":\"\\ud83d\\u0041\"}"), NULL},
    {S("{\"steamId\":\"1\",\"m\":\"\xf0\x9f\x98\x80 \xc3\xa9 \xe2\x82\xac\"}"), "1"},
    {S("{\"steamId\":\"1\",\"m\":\"\xc0\xaf\"}"), NULL}, /* overlong */
    {S("{\"steamId\":\"1\",\"m\":\"\xe0\x80\xaf\"}"), NULL},
    {S("{\"steamId\":\"1\",\"m\":\"\xf4\x90\x80\x80\"}"), NULL}, /* > U+10FFFF */
    {S("{\"steamId\":\"1\",\"m\":\"\xf0\x9f\x98\"}"), NULL},     /* truncated */
    {S("{\"steamId\":\"1\",\"m\":\"\x80\"}"), NULL},
};

static void
run_id_table(const id_case_t *cases, size_t n,
             int (*fn)(const char *, size_t, char[WIRE_ID_MAX + 1]))
{
    for (size_t i = 0; i < n; i++) {
        for (int placed = 0; placed < 2; placed++) {
            guard_t g;
            const char *in = cases[i].in;
            char id[WIRE_ID_MAX + 1];
            int rc;

            memset(id, 'Z', sizeof id);
            if (placed) {
                in = guard_place(&g, cases[i].in, cases[i].len);
                assert_non_null(in);
            }
            rc = fn(in, cases[i].len, id);
            if (cases[i].want == NULL) {
                if (rc != -EINVAL)
                    fail_msg("case %zu '%.*s' accepted as '%s'", i, (int)cases[i].len, cases[i].in,
                             id);
            } else {
                if (rc != 0)
                    fail_msg("case %zu '%.*s' refused", i, (int)cases[i].len, cases[i].in);
                assert_string_equal(id, cases[i].want);
            }
            if (placed)
                guard_release(&g);
        }
    }
}

static void
test_tradestate_table(void **state)
{
    (void)state;
    run_id_table(ts_cases, sizeof ts_cases / sizeof ts_cases[0], wire_route_tradestate);
}

/* Every proper prefix of a valid payload is invalid JSON, and must be
 * refused without reading past its end. */
static void
test_tradestate_prefixes(void **state)
{
    static const char full[] =
        "{\"steamId\":\"76561198000000001\",\"token\":\"abc\",\"state\":2,\"msg\":\"x\"}";
    char id[WIRE_ID_MAX + 1];
    (void)state;

    for (size_t k = 0; k <= sizeof full - 1; k++) {
        guard_t g;
        const char *in = guard_place(&g, full, k);
        int rc;

        assert_non_null(in);
        rc = wire_route_tradestate(in, k, id);
        if (k < sizeof full - 1)
            assert_int_equal(rc, -EINVAL);
        else {
            assert_int_equal(rc, 0);
            assert_string_equal(id, "76561198000000001");
        }
        guard_release(&g);
    }
}

static void
test_tradestate_random(void **state)
{
    static const char alphabet[] = "{}[]\":,steamId0123 \\u\xff\x01";
    uint64_t seed = 42;
    char buf[48], id[WIRE_ID_MAX + 1];
    (void)state;

    for (int iter = 0; iter < 5000; iter++) {
        size_t n = test_rand(&seed) % sizeof buf;
        guard_t g;
        const char *in;

        for (size_t i = 0; i < n; i++)
            buf[i] = alphabet[test_rand(&seed) % (sizeof alphabet - 1)];
        in = guard_place(&g, buf, n);
        assert_non_null(in);
        if (wire_route_tradestate(in, n, id) == 0) {
            size_t l = strlen(id);
            assert_true(l >= 1 && l <= WIRE_ID_MAX);
            assert_true(
                strspn(id, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") == l);
        }
        guard_release(&g);
    }
}

/* jansson's limit: 2048 levels of nesting, the top object included */
static void
test_tradestate_depth(void **state)
{
    size_t levels[] = {2047, 2048};
    char id[WIRE_ID_MAX + 1];
    (void)state;

    for (size_t k = 0; k < 2; k++) {
        size_t d = levels[k], n = 0;
        char *buf = malloc(32 + 2 * d);
        assert_non_null(buf);
        n += (size_t)sprintf(buf, "{\"steamId\":\"4\",\"x\":");
        memset(buf + n, '[', d);
        n += d;
        memset(buf + n, ']', d);
        n += d;
        buf[n++] = '}';
        assert_int_equal(wire_route_tradestate(buf, n, id), k == 0 ? 0 : -EINVAL);
        free(buf);
    }
}

static void
test_tradestate_oversize(void **state)
{
    size_t max = 1024 * 1024;
    char *big = malloc(max + 1), id[WIRE_ID_MAX + 1];
    static const char head[] = "{\"steamId\":\"5\",\"pad\":\"";
    (void)state;

    assert_non_null(big);
    memset(big, 'x', max + 1);
    memcpy(big, head, sizeof head - 1);
    memcpy(big + max - 2, "\"}", 2);
    assert_int_equal(wire_route_tradestate(big, max, id), 0);
    assert_string_equal(id, "5");
    memcpy(big + max - 2, "x\"}", 3);
    assert_int_equal(wire_route_tradestate(big, max + 1, id), -EINVAL);
    free(big);
}

static const id_case_t cancel_cases[] = {
    {S("76561198000000001"), "76561198000000001"},
    {S("  76561198000000001\n"), "76561198000000001"},
    {S("\t765\r\n"), "765"},
    {S("\"765\""), "765"},
    {S(" \"765\" \r\n"), "765"},
    {S(ID64), ID64},
    {S("\"" ID64 "\""), ID64},
    {S("aBc9"), "aBc9"},
    {S(""), NULL},
    {S("   "), NULL},
    {S("\"\""), NULL},
    {S("\""), NULL},
    {S("\"765"), NULL},
    {S("765\""), NULL},
    {S("\"\"765\"\""), NULL},
    {S("\" 765\""), NULL},
    {S("7 6"), NULL},
    {S("765_1"), NULL},
    {S("765\0"), NULL},
    {S("\x01"
       "765"),
     NULL},
    {S("765\xff"), NULL},
    {S(ID64 "4"), NULL},
    {S("{\"steamId\":\"765\"}"), NULL},
};

static void
test_canceled_table(void **state)
{
    (void)state;
    run_id_table(cancel_cases, sizeof cancel_cases / sizeof cancel_cases[0], wire_route_canceled);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tradestate_table),  cmocka_unit_test(test_tradestate_prefixes),
        cmocka_unit_test(test_tradestate_random), cmocka_unit_test(test_tradestate_oversize),
        cmocka_unit_test(test_canceled_table),    cmocka_unit_test(test_tradestate_depth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
