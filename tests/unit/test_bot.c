/*
 * tests/unit/test_bot.c: the bot text protocol (wire_bot_parse) and bot
 * channel names (wire_bot_channel_id): every command form, hostile and
 * truncated input, each run against a guard page.
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
#define BAD(lit)                                                                                   \
    {                                                                                              \
        S(lit), -EINVAL, NULL, NULL, NULL, NULL                                                    \
    }

typedef struct bot_case {
    const char *in;
    size_t len;
    int rc;
    const char *command, *bot_id, *steamid, *tradehash; /* NULL: absent */
} bot_case_t;

static const bot_case_t bot_cases[] = {
    /* the documented forms */
    {S("withdraw 7 76561198000000001_ab12 tradeData:{\"a\":1}"), 0, "withdraw", "7",
     "76561198000000001", "ab12"},
    {S("withdraw 7 76561198000000001_ab12"), 0, "withdraw", "7", "76561198000000001", "ab12"},
    {S("sale 7 76561198000000001"), 0, "sale", "7", "76561198000000001", NULL},
    {S("sale 7 76561198000000001 extra stuff"), 0, "sale", "7", "76561198000000001", NULL},
    {S("sale 7 76561198000000001 tradeData:{}"), 0, "sale", "7", "76561198000000001", NULL},
    {S("checkSteamGuard 7"), 0, "checkSteamGuard", "7", NULL, NULL},
    {S("checkSteamGuard"), 0, "checkSteamGuard", NULL, NULL, NULL},
    {S("a"), 0, "a", NULL, NULL, NULL},
    {S("with-draw_2 bot.x-1_y"), 0, "with-draw_2", "bot.x-1_y", NULL, NULL},
    /* tradeData is never an id, wherever it stands */
    {S("sale tradeData:{\"steamId\":\"1\"}"), 0, "sale", NULL, NULL, NULL},
    {S("sale 7 tradeData:"), 0, "sale", "7", NULL, NULL},
    {S("sale 7 tradeData:1_a 2_b"), 0, "sale", "7", NULL, NULL},
    {S("sale tradeData: 7 1_a"), 0, "sale", NULL, NULL, NULL},
    /* a third token that is no id is opaque */
    {S("sale 7 abc!def"), 0, "sale", "7", NULL, NULL},
    {S("sale 7 \xff\xfe"), 0, "sale", "7", NULL, NULL},
    {S("sale 7 tradedata:x"), 0, "sale", "7", NULL, NULL},
    /* the split is at the first '_' */
    {S("x 7 1_a_b"), 0, "x", "7", "1", "a_b"},
    {S("x 7 1__"), 0, "x", "7", "1", "_"},
    {S("x 7 1_a b_c"), 0, "x", "7", "1", "a"},
    {S("x 7 1_a-B"), 0, "x", "7", "1", "a-B"},
    /* one trailing line end is tolerated */
    {S("withdraw\n"), 0, "withdraw", NULL, NULL, NULL},
    {S("withdraw\r\n"), 0, "withdraw", NULL, NULL, NULL},
    {S("withdraw 7\n"), 0, "withdraw", "7", NULL, NULL},
    {S("withdraw 7 1_ab\r\n"), 0, "withdraw", "7", "1", "ab"},
    /* control bytes in the opaque rest are not ours to judge */
    {S("withdraw 7 1_a tradeData:{\n\t\"x\":1}"), 0, "withdraw", "7", "1", "a"},
    {S("withdraw 7 1_a \x01\x02"), 0, "withdraw", "7", "1", "a"},
    /* after the id token, the rest (even empty) is not looked at */
    {S("withdraw 7 1_a "), 0, "withdraw", "7", "1", "a"},

    /* empty and separators */
    BAD(""),
    BAD(" "),
    BAD("\n"),
    BAD("\r\n"),
    BAD(" withdraw"),
    BAD("withdraw "),
    BAD("withdraw  7"),
    BAD("withdraw 7 "),
    BAD("withdraw 7  1_a"),
    BAD("withdraw\n\n"),
    BAD("withdraw\r"),
    BAD("withdraw\n7"),
    BAD("withdraw\t7"),
    /* control and other bytes inside interpreted tokens */
    BAD("with\0draw"),
    BAD("withdraw\0"),
    BAD("withdraw 7\0"),
    BAD("withdraw 7\x01"),
    BAD("withdraw 7 1_a\0"),
    BAD("withdraw 7 1_a\x01"),
    BAD("withdraw 7 1\x7f_a"),
    BAD("w\xc3\xadthdraw 7"),
    BAD("wi!thdraw"),
    BAD("withdraw.x"),
    BAD("withdraw bad!id 1_a"),
    BAD("withdraw bot:7"),
    /* '_' at the start or end of the id token, bad steamIds */
    BAD("withdraw 7 _abc"),
    BAD("withdraw 7 123_"),
    BAD("withdraw 7 _"),
    BAD("withdraw 7 1-2_a"),
    BAD("withdraw 7 1.2_a"),
    BAD("withdraw 7 1_a!"),
    BAD("withdraw 7 1_a.b"),
};

static void
expect_part(const char *name, const char *payload, size_t len, const char *got, size_t gotlen,
            const char *want)
{
    if (want == NULL) {
        if (got != NULL || gotlen != 0)
            fail_msg("%s: expected absent, got '%.*s'", name, (int)gotlen, got);
        return;
    }
    if (got == NULL)
        fail_msg("%s: expected '%s', got absent", name, want);
    /* points into the payload, within bounds */
    assert_true(got >= payload && got + gotlen <= payload + len);
    assert_int_equal(gotlen, strlen(want));
    assert_memory_equal(got, want, gotlen);
}

static void
check_case(const bot_case_t *c, const char *in)
{
    wire_bot_cmd_t out;
    int rc = wire_bot_parse(in, c->len, &out);

    if (rc != c->rc)
        fail_msg("'%.*s': rc %d, want %d", (int)c->len, c->in, rc, c->rc);
    if (rc != 0) {
        /* a failed parse leaves nothing half-filled */
        assert_null(out.command);
        assert_null(out.bot_id);
        assert_null(out.steamid);
        assert_null(out.tradehash);
        return;
    }
    expect_part("command", in, c->len, out.command, out.command_len, c->command);
    expect_part("bot_id", in, c->len, out.bot_id, out.bot_id_len, c->bot_id);
    expect_part("steamid", in, c->len, out.steamid, out.steamid_len, c->steamid);
    expect_part("tradehash", in, c->len, out.tradehash, out.tradehash_len, c->tradehash);
}

static void
test_bot_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bot_cases / sizeof bot_cases[0]; i++) {
        guard_t g;
        const char *in;

        check_case(&bot_cases[i], bot_cases[i].in);
        in = guard_place(&g, bot_cases[i].in, bot_cases[i].len);
        assert_non_null(in);
        check_case(&bot_cases[i], in);
        guard_release(&g);
    }
}

/* Builds "<pre><n times c><post>" into buf. */
static size_t
build(char *buf, const char *pre, char c, size_t n, const char *post)
{
    size_t o = strlen(pre);
    memcpy(buf, pre, o);
    memset(buf + o, c, n);
    o += n;
    memcpy(buf + o, post, strlen(post));
    return o + strlen(post);
}

static void
test_bot_lengths(void **state)
{
    char buf[512];
    wire_bot_cmd_t out;
    size_t n;

    (void)state;
    /* command: 32 bytes ok, 33 not */
    n = build(buf, "", 'c', 32, " 7");
    assert_int_equal(wire_bot_parse(buf, n, &out), 0);
    assert_int_equal(out.command_len, 32);
    n = build(buf, "", 'c', 33, " 7");
    assert_int_equal(wire_bot_parse(buf, n, &out), -EINVAL);
    /* bot id: 64 ok, 65 not */
    n = build(buf, "w ", 'b', WIRE_ID_MAX, "");
    assert_int_equal(wire_bot_parse(buf, n, &out), 0);
    assert_int_equal(out.bot_id_len, WIRE_ID_MAX);
    n = build(buf, "w ", 'b', WIRE_ID_MAX + 1, "");
    assert_int_equal(wire_bot_parse(buf, n, &out), -EINVAL);
    /* steamId before '_': 64 ok, 65 not */
    n = build(buf, "w 7 ", '1', WIRE_ID_MAX, "_h");
    assert_int_equal(wire_bot_parse(buf, n, &out), 0);
    assert_int_equal(out.steamid_len, WIRE_ID_MAX);
    assert_int_equal(out.tradehash_len, 1);
    n = build(buf, "w 7 ", '1', WIRE_ID_MAX + 1, "_h");
    assert_int_equal(wire_bot_parse(buf, n, &out), -EINVAL);
    /* a lone overlong steamId is just some other token */
    n = build(buf, "w 7 ", '1', WIRE_ID_MAX + 1, "");
    assert_int_equal(wire_bot_parse(buf, n, &out), 0);
    assert_null(out.steamid);
    n = build(buf, "w 7 ", '1', WIRE_ID_MAX, "");
    assert_int_equal(wire_bot_parse(buf, n, &out), 0);
    assert_int_equal(out.steamid_len, WIRE_ID_MAX);
    /* trade hash: 128 ok, 129 not */
    n = build(buf, "w 7 1_", 'h', WIRE_TRADEHASH_MAX, " tradeData:{}");
    assert_int_equal(wire_bot_parse(buf, n, &out), 0);
    assert_int_equal(out.tradehash_len, WIRE_TRADEHASH_MAX);
    n = build(buf, "w 7 1_", 'h', WIRE_TRADEHASH_MAX + 1, "");
    assert_int_equal(wire_bot_parse(buf, n, &out), -EINVAL);
}

static void
test_bot_payload_max(void **state)
{
    size_t max = 1024 * 1024;
    char *big = malloc(max + 1);
    wire_bot_cmd_t out;

    (void)state;
    assert_non_null(big);
    memset(big, 'x', max + 1);
    memcpy(big, "withdraw 7 1_a ", 15);
    assert_int_equal(wire_bot_parse(big, max, &out), 0);
    assert_int_equal(out.tradehash_len, 1);
    assert_int_equal(wire_bot_parse(big, max + 1, &out), -EINVAL);
    free(big);
}

/* Every prefix of a full payload, each against a guard page, checked against
 * what the grammar says that prefix means. */
static void
test_bot_prefixes(void **state)
{
    static const char full[] = "withdraw 7 76561198000000001_ab12 tradeData:{\"a\":1}";
    const size_t cmd_end = 8, bot_at = 9, id_at = 11, us_at = 28, hash_end = 33;
    (void)state;

    assert_int_equal(full[us_at], '_');
    assert_int_equal(full[hash_end], ' ');
    for (size_t k = 0; k <= sizeof full - 1; k++) {
        guard_t g;
        const char *in = guard_place(&g, full, k);
        wire_bot_cmd_t out;
        /* refused: empty, a trailing space where a token must follow, or a
         * trailing '_' (empty trade hash) */
        int rc, want_ok = !(k == 0 || k == cmd_end + 1 || k == id_at || k == us_at + 1);

        assert_non_null(in);
        rc = wire_bot_parse(in, k, &out);
        if (rc != (want_ok ? 0 : -EINVAL))
            fail_msg("prefix %zu '%.*s': rc %d", k, (int)k, full, rc);
        if (!want_ok) {
            guard_release(&g);
            continue;
        }
        assert_ptr_equal(out.command, in);
        assert_int_equal(out.command_len, k < cmd_end ? k : cmd_end);
        if (k > bot_at) {
            assert_ptr_equal(out.bot_id, in + bot_at);
            assert_int_equal(out.bot_id_len, 1);
        } else {
            assert_null(out.bot_id);
        }
        if (k > id_at) {
            size_t sid = (k < us_at ? k : us_at) - id_at;
            assert_ptr_equal(out.steamid, in + id_at);
            assert_int_equal(out.steamid_len, sid);
        } else {
            assert_null(out.steamid);
        }
        if (k > us_at + 1) {
            assert_ptr_equal(out.tradehash, in + us_at + 1);
            assert_int_equal(out.tradehash_len, (k < hash_end ? k : hash_end) - us_at - 1);
        } else {
            assert_null(out.tradehash);
        }
        guard_release(&g);
    }
}

static int
in_set(unsigned char c, const char *extra)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c && strchr(extra, c) != NULL);
}

static int
all_in_set(const char *s, size_t n, const char *extra)
{
    for (size_t i = 0; i < n; i++)
        if (!in_set((unsigned char)s[i], extra))
            return 0;
    return 1;
}

/* Random bytes from an alphabet rich in separators and edge bytes: the
 * parser must never over-read (guard page) and whatever it accepts must
 * obey the grammar, checked here with our own alphabet tests. */
static void
test_bot_random(void **state)
{
    static const char alphabet[] = "ab7 _ _ 12 tradeData:\n\r\t\x01\x7f\xff.-!{}\"";
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    char buf[64];
    size_t accepted = 0, rejected = 0;

    (void)state;
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = test_rand(&seed) % sizeof buf;
        guard_t g;
        const char *in;
        wire_bot_cmd_t out;

        for (size_t i = 0; i < n; i++) {
            uint64_t r = test_rand(&seed);
            buf[i] = (r & 7) == 0 ? (char)(r >> 8) : alphabet[(r >> 8) % (sizeof alphabet - 1)];
        }
        in = guard_place(&g, buf, n);
        assert_non_null(in);
        if (wire_bot_parse(in, n, &out) != 0) {
            rejected++;
            guard_release(&g);
            continue;
        }
        accepted++;
        assert_ptr_equal(out.command, in);
        assert_true(out.command_len >= 1 && out.command_len <= 32);
        assert_true(all_in_set(out.command, out.command_len, "_-"));
        if (out.bot_id) {
            assert_ptr_equal(out.bot_id, in + out.command_len + 1);
            assert_true(out.bot_id_len >= 1 && out.bot_id_len <= WIRE_ID_MAX);
            assert_true(all_in_set(out.bot_id, out.bot_id_len, "_.-"));
        }
        if (out.steamid) {
            assert_non_null(out.bot_id);
            assert_ptr_equal(out.steamid, out.bot_id + out.bot_id_len + 1);
            assert_true(out.steamid_len >= 1 && out.steamid_len <= WIRE_ID_MAX);
            assert_true(all_in_set(out.steamid, out.steamid_len, ""));
            assert_true(out.steamid + out.steamid_len <= in + n);
        }
        if (out.tradehash) {
            assert_non_null(out.steamid);
            assert_ptr_equal(out.tradehash, out.steamid + out.steamid_len + 1);
            assert_int_equal(out.tradehash[-1], '_');
            assert_true(out.tradehash_len >= 1 && out.tradehash_len <= WIRE_TRADEHASH_MAX);
            assert_true(all_in_set(out.tradehash, out.tradehash_len, "_-"));
            assert_true(out.tradehash + out.tradehash_len <= in + n);
        }
        guard_release(&g);
    }
    /* the alphabet must exercise both outcomes, or the test proves nothing */
    assert_true(accepted > 100);
    assert_true(rejected > 100);
}

typedef struct chan_case {
    const char *in;
    size_t len;
    const char *id; /* NULL: refused */
} chan_case_t;

static void
test_bot_channel(void **state)
{
    static const chan_case_t cases[] = {
        {S("bot 7"), "7"},
        {S("bot abc.def-1_x"), "abc.def-1_x"},
        {S("bot 0123456789012345678901234567890123456789012345678901234567890123"),
         "0123456789012345678901234567890123456789012345678901234567890123"},
        {S("bot 01234567890123456789012345678901234567890123456789012345678901234"), NULL},
        {S("bot "), NULL},
        {S("bot"), NULL},
        {S(""), NULL},
        {S("bots 7"), NULL},
        {S("Bot 7"), NULL},
        {S("bot  7"), NULL},
        {S("bot 7 8"), NULL},
        {S("bot 7\n"), NULL},
        {S("bot \x01"), NULL},
        {S("bot 7\0"), NULL},
        {S("bot:7"), NULL},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        guard_t g;
        const char *in = guard_place(&g, cases[i].in, cases[i].len);
        const char *id = NULL;
        size_t idlen = 0;
        int rc;

        assert_non_null(in);
        rc = wire_bot_channel_id(in, cases[i].len, &id, &idlen);
        if (cases[i].id == NULL) {
            if (rc != -EINVAL)
                fail_msg("channel '%.*s' accepted", (int)cases[i].len, cases[i].in);
        } else {
            assert_int_equal(rc, 0);
            assert_ptr_equal(id, in + 4);
            assert_int_equal(idlen, strlen(cases[i].id));
            assert_memory_equal(id, cases[i].id, idlen);
        }
        guard_release(&g);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bot_table),       cmocka_unit_test(test_bot_lengths),
        cmocka_unit_test(test_bot_payload_max), cmocka_unit_test(test_bot_prefixes),
        cmocka_unit_test(test_bot_random),      cmocka_unit_test(test_bot_channel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
