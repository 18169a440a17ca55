/*
 * tests/unit/test_sio.c: the Engine.IO v4 / Socket.IO v5 packet parser
 * (wire_sio_parse), "<eio>[<sio>[<attachments>-][<nsp>,][<ack id>][json]]".
 *
 * Every input is parsed twice: from an ordinary array and placed by
 * guard_place() against a PROT_NONE page, so a read past `len` crashes.
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

#define NONE WIRE_SIO_NONE
#define OK 1
#define BAD 0

typedef struct sio_case {
    const char *in;
    size_t len;
    int ok;           /* OK: returns 0 with the fields below; BAD: -EINVAL */
    int eio;          /* enum wire_eio_type */
    int sio;          /* enum wire_sio_type, NONE unless eio 4 */
    const char *nsp;  /* checked only for eio 4 */
    long long ack;    /* -1: none */
    long att;         /* attachments */
    const char *data; /* exact data bytes ("" = none) */
} sio_case_t;

#define GOOD(lit, e, s, n, a, at, d) {S(lit), OK, e, s, n, a, at, d}
#define FAIL(lit) {S(lit), BAD, 0, 0, NULL, 0, 0, NULL}

/* 127 and 128 characters after the '/': namespaces of 128 and 129 bytes. */
#define X127                                                                                       \
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" \
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
_Static_assert(sizeof(X127) - 1 == 127, "X127");
#define NSP128 "/" X127
#define NSP129 "/" X127 "y"

static const sio_case_t cases[] = {
    /* Engine.IO only */
    GOOD("2", 2, NONE, NULL, -1, 0, ""),
    GOOD("3", 3, NONE, NULL, -1, 0, ""),
    GOOD("2probe", 2, NONE, NULL, -1, 0, "probe"),
    GOOD("3probe", 3, NONE, NULL, -1, 0, "probe"),
    GOOD("1", 1, NONE, NULL, -1, 0, ""),
    GOOD("5", 5, NONE, NULL, -1, 0, ""),
    GOOD("6", 6, NONE, NULL, -1, 0, ""),
    GOOD("0", 0, NONE, NULL, -1, 0, ""),

    /* Socket.IO over MESSAGE: the contract's examples */
    GOOD("40", 4, 0, "/", -1, 0, ""),
    GOOD("40{\"token\":\"x\"}", 4, 0, "/", -1, 0, "{\"token\":\"x\"}"),
    GOOD("40/admin,{}", 4, 0, "/admin", -1, 0, "{}"),
    GOOD("42[\"join\",\"bot:7\"]", 4, 2, "/", -1, 0, "[\"join\",\"bot:7\"]"),
    GOOD("4212[\"join\",\"bot:7\"]", 4, 2, "/", 12, 0, "[\"join\",\"bot:7\"]"),
    GOOD("43/admin,7[1]", 4, 3, "/admin", 7, 0, "[1]"),
    GOOD("451-[\"up\",{\"_placeholder\":true,\"num\":0}]", 4, 5, "/", -1, 1,
         "[\"up\",{\"_placeholder\":true,\"num\":0}]"),
    GOOD("41", 4, 1, "/", -1, 0, ""),

    /* more well-formed shapes */
    GOOD("40/admin,", 4, 0, "/admin", -1, 0, ""),
    GOOD("40/,", 4, 0, "/", -1, 0, ""),
    GOOD("41/admin,", 4, 1, "/admin", -1, 0, ""),
    GOOD("42/chat,12[\"a\"]", 4, 2, "/chat", 12, 0, "[\"a\"]"),
    GOOD("420[\"a\"]", 4, 2, "/", 0, 0, "[\"a\"]"),
    GOOD("42", 4, 2, "/", -1, 0, ""), /* shape only: an empty event is the hub's to refuse */
    GOOD("4299", 4, 2, "/", 99, 0, ""),
    GOOD("43/admin,7", 4, 3, "/admin", 7, 0, ""),
    GOOD("430[]", 4, 3, "/", 0, 0, "[]"),
    GOOD("44{\"message\":\"x\"}", 4, 4, "/", -1, 0, "{\"message\":\"x\"}"),
    GOOD("4512-[\"a\",{\"_placeholder\":true,\"num\":11}]", 4, 5, "/", -1, 12,
         "[\"a\",{\"_placeholder\":true,\"num\":11}]"),
    GOOD("451-/admin,3[\"up\",{\"_placeholder\":true,\"num\":0}]", 4, 5, "/admin", 3, 1,
         "[\"up\",{\"_placeholder\":true,\"num\":0}]"),
    GOOD("461-9[{\"_placeholder\":true,\"num\":0}]", 4, 6, "/", 9, 1,
         "[{\"_placeholder\":true,\"num\":0}]"),
    GOOD("42\"s\"", 4, 2, "/", -1, 0, "\"s\""),
    GOOD("42true", 4, 2, "/", -1, 0, "true"),
    GOOD("42false", 4, 2, "/", -1, 0, "false"),
    GOOD("42null", 4, 2, "/", -1, 0, "null"),
    GOOD("42[", 4, 2, "/", -1, 0, "["), /* the JSON itself is not checked here */
    GOOD("42999999999999999999[1]", 4, 2, "/", 999999999999999999LL, 0, "[1]"), /* 18 digits */
    GOOD("42000000000000000000[1]", 4, 2, "/", 0, 0, "[1]"),
    GOOD("40" NSP128 ",{}", 4, 0, NSP128, -1, 0, "{}"),
    GOOD("42[\"\xe6\x97\xa5\",\"\xf0\x9f\x8e\x89\"]", 4, 2, "/", -1, 0,
         "[\"\xe6\x97\xa5\",\"\xf0\x9f\x8e\x89\"]"),

    /* empty, bad Engine.IO type */
    FAIL(""),
    FAIL("7"),
    FAIL("8"),
    FAIL("9"),
    FAIL("x"),
    FAIL("-1"),
    FAIL(" 2"),
    FAIL("\0"),
    FAIL("\xff"),
    FAIL("{}"),
    FAIL("[\"join\"]"),
    /* MESSAGE without a Socket.IO type, or a bad one */
    FAIL("4"),
    FAIL("4x"),
    FAIL("47"),
    FAIL("48[]"),
    FAIL("49"),
    FAIL("4/admin,{}"),
    FAIL("4[\"a\"]"),
    FAIL("4 2[\"a\"]"),
    FAIL("4\0"),
    FAIL("4-2"),
    /* namespaces */
    FAIL("40admin,{}"),
    /* as the reference parser: a namespace ends at ',' or with the packet */
    GOOD("40/admin", 4, 0, "/admin", -1, 0, ""),
    GOOD("40/random", 4, 0, "/random", -1, 0, ""),
    GOOD("40/admin{}", 4, 0, "/admin{}", -1, 0, ""),
    GOOD("40/", 4, 0, "/", -1, 0, ""),
    GOOD("42/chat12[\"a\"]", 4, 2, "/chat12[\"a\"]", -1, 0, ""),
    GOOD("41" NSP128, 4, 1, NSP128, -1, 0, ""),
    FAIL("41" NSP129),
    FAIL("40" NSP129 ",{}"),
    FAIL("40" NSP129 NSP129 NSP129 ",{}"),
    /* ack ids */
    FAIL("421000000000000000000[1]"), /* 19 digits */
    FAIL("429999999999999999999[1]"),
    FAIL("4218446744073709551616[1]"),
    FAIL("429223372036854775808[1]"),
    FAIL("43/admin,99999999999999999999999999999999999999[]"),
    /* attachments */
    FAIL("451[\"up\"]"),  /* count without its '-' */
    FAIL("451"),
    FAIL("4512"),
    FAIL("45x-[]"),
    FAIL("461/admin,[]"),
    FAIL("421-[\"a\"]"), /* attachments on a non-binary type */
    FAIL("401-{}"),
    FAIL("431-[]"),
    FAIL("441-{}"),
    FAIL("411-"),
    /* data that is not the start of a JSON value */
    FAIL("42x"),
    FAIL("42 [\"a\"]"),
    FAIL("42]"),
    FAIL("42}"),
    FAIL("42'a'"),
    FAIL("42-1"),
    FAIL("42,[\"a\"]"),
    FAIL("42\0[\"a\"]"),
    FAIL("42\xff"),
    FAIL("4212x"),
    FAIL("4212 [1]"),
    FAIL("40/admin,x"),
    FAIL("40/admin,,{}"),
    FAIL("40/admin,7x"),
    FAIL("451-x"),
    FAIL("451-/a,x"),
    FAIL("42/a,-1[]"),
};

/* Checks what is true of every accepted packet, whatever it was. */
static void
check_invariants(const char *buf, size_t len, const wire_sio_packet_t *p, const char *what)
{
    if (p->eio < 0 || p->eio > 6)
        fail_msg("%s: eio %d", what, (int)p->eio);
    if (p->eio == WIRE_EIO_MESSAGE) {
        if (p->sio < 0 || p->sio > 6)
            fail_msg("%s: sio %d", what, (int)p->sio);
        if (p->nsp == NULL || p->nsp_len < 1 || p->nsp_len > WIRE_SIO_NSP_MAX || p->nsp[0] != '/')
            fail_msg("%s: bad nsp", what);
        if (p->nsp_len > 1 && (p->nsp < buf || p->nsp + p->nsp_len > buf + len))
            fail_msg("%s: nsp does not point into the input", what);
        if (p->ack_id < -1 || p->ack_id > 999999999999999999LL)
            fail_msg("%s: ack id %lld", what, p->ack_id);
        if (p->attachments < 0)
            fail_msg("%s: attachments %ld", what, p->attachments);
        if (p->sio != WIRE_SIO_BINARY_EVENT && p->sio != WIRE_SIO_BINARY_ACK && p->attachments != 0)
            fail_msg("%s: attachments %ld on sio type %d", what, p->attachments, (int)p->sio);
        if (p->data_len > 0) {
            char c = p->data[0];
            if (!(c == '[' || c == '{' || c == '"' || (c >= '0' && c <= '9') || c == 't' ||
                  c == 'f' || c == 'n'))
                fail_msg("%s: data starts with 0x%02x", what, (unsigned char)c);
        }
    } else if (p->sio != WIRE_SIO_NONE) {
        fail_msg("%s: sio %d on eio %d", what, (int)p->sio, (int)p->eio);
    }
    if (p->data_len > len)
        fail_msg("%s: data_len %zu > len %zu", what, p->data_len, len);
    if (p->data_len > 0 && (p->data < buf || p->data + p->data_len > buf + len))
        fail_msg("%s: data does not point into the input", what);
    /* The data is the tail of the packet. */
    if (p->data_len > 0 && p->data + p->data_len != buf + len)
        fail_msg("%s: data is not the rest of the packet", what);
}

static void
check_case(const sio_case_t *c, size_t i, const char *in)
{
    wire_sio_packet_t p;
    char what[96];
    int rc;

    snprintf(what, sizeof what, "case %zu '%.40s'", i, c->in);
    memset(&p, 0x5a, sizeof p);
    rc = wire_sio_parse(in, c->len, &p);
    if (!c->ok) {
        if (rc != -EINVAL)
            fail_msg("%s (len %zu) accepted (rc %d, eio %d sio %d ack %lld att %ld data_len %zu)",
                     what, c->len, rc, (int)p.eio, (int)p.sio, p.ack_id, p.attachments, p.data_len);
        return;
    }
    if (rc != 0)
        fail_msg("%s refused (rc %d)", what, rc);
    check_invariants(in, c->len, &p, what);
    if ((int)p.eio != c->eio)
        fail_msg("%s: eio %d, want %d", what, (int)p.eio, c->eio);
    if ((int)p.sio != c->sio)
        fail_msg("%s: sio %d, want %d", what, (int)p.sio, c->sio);
    if (c->eio == WIRE_EIO_MESSAGE) {
        if (p.nsp_len != strlen(c->nsp) || memcmp(p.nsp, c->nsp, p.nsp_len) != 0)
            fail_msg("%s: nsp '%.*s', want '%s'", what, (int)p.nsp_len, p.nsp, c->nsp);
        if (p.ack_id != c->ack)
            fail_msg("%s: ack %lld, want %lld", what, p.ack_id, c->ack);
        if (p.attachments != c->att)
            fail_msg("%s: attachments %ld, want %ld", what, p.attachments, c->att);
    }
    if (p.data_len != strlen(c->data) || (p.data_len && memcmp(p.data, c->data, p.data_len) != 0))
        fail_msg("%s: data '%.*s' (%zu), want '%s'", what, (int)p.data_len,
                 p.data_len ? p.data : "", p.data_len, c->data);
}

static void
test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(&cases[i], i, cases[i].in);
}

/* The same table, each input ending at a PROT_NONE page: a parser that
 * looks one byte past `len` (for a NUL, say) dies here. The input is also
 * left unchanged. */
static void
test_table_guarded(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        guard_t g;
        const char *in = guard_place(&g, cases[i].in, cases[i].len);

        assert_non_null(in);
        check_case(&cases[i], i, in);
        if (cases[i].len)
            assert_memory_equal(in, cases[i].in, cases[i].len);
        guard_release(&g);
    }
}

/* Every prefix of every accepted packet: never a crash or a read past the
 * end, and whatever is accepted is self-consistent. Some prefixes are
 * known to be refused. */
static void
test_prefixes(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (!cases[i].ok)
            continue;
        for (size_t k = 0; k <= cases[i].len; k++) {
            guard_t g;
            wire_sio_packet_t p;
            char what[96];
            const char *in = guard_place(&g, cases[i].in, k);
            int rc;

            assert_non_null(in);
            snprintf(what, sizeof what, "prefix %zu of case %zu '%.40s'", k, i, cases[i].in);
            rc = wire_sio_parse(in, k, &p);
            if (rc == 0)
                check_invariants(in, k, &p, what);
            else if (rc != -EINVAL)
                fail_msg("%s: rc %d", what, rc);
            /* Prefixes the contract decides. */
            if (k == 0 || (k == 1 && cases[i].in[0] == '4'))
                assert_int_equal(rc, -EINVAL);
            guard_release(&g);
        }
    }
}

/* Prefixes cut inside a namespace or an attachment count are refused. */
static void
test_prefixes_refused(void **state)
{
    static const struct {
        const char *full;
        size_t from, to; /* prefix lengths [from, to] that must be refused */
    } pr[] = {
        {"451-[\"up\",{\"_placeholder\":true,\"num\":0}]", 3, 3}, /* "451" */
        {"4512-[1]", 3, 4},                                       /* "451", "4512" */
    };
    (void)state;
    for (size_t i = 0; i < sizeof pr / sizeof pr[0]; i++) {
        for (size_t k = pr[i].from; k <= pr[i].to; k++) {
            guard_t g;
            wire_sio_packet_t p;
            const char *in = guard_place(&g, pr[i].full, k);
            int rc;

            assert_non_null(in);
            rc = wire_sio_parse(in, k, &p);
            if (rc != -EINVAL)
                fail_msg("prefix '%.*s' accepted", (int)k, pr[i].full);
            guard_release(&g);
        }
    }
}

/* Ack ids: 1..18 digits accepted with their value, 19 and more refused;
 * the same with a namespace in front. */
static void
test_ack_digits(void **state)
{
    (void)state;
    for (int with_nsp = 0; with_nsp < 2; with_nsp++) {
        for (size_t nd = 1; nd <= 40; nd++) {
            char buf[128];
            size_t n = 0;
            wire_sio_packet_t p;
            guard_t g;
            const char *in;
            int rc;
            long long want = 0;

            n += (size_t)snprintf(buf + n, sizeof buf - n, "%s", with_nsp ? "42/q," : "42");
            for (size_t d = 0; d < nd; d++) {
                char digit = (char)('1' + d % 9);
                buf[n++] = digit;
                if (nd <= 18)
                    want = want * 10 + (digit - '0');
            }
            memcpy(buf + n, "[\"e\"]", 5);
            n += 5;
            in = guard_place(&g, buf, n);
            assert_non_null(in);
            rc = wire_sio_parse(in, n, &p);
            if (nd <= 18) {
                if (rc != 0)
                    fail_msg("ack of %zu digits refused: '%.*s'", nd, (int)n, buf);
                assert_int_equal(p.ack_id, want);
                assert_int_equal(p.data_len, 5);
                assert_memory_equal(p.data, "[\"e\"]", 5);
            } else if (rc != -EINVAL) {
                fail_msg("ack of %zu digits accepted as %lld: '%.*s'", nd, p.ack_id, (int)n, buf);
            }
            guard_release(&g);
        }
    }
}

/* Namespace lengths around WIRE_SIO_NSP_MAX, counted from the '/' up to but
 * excluding the ','. */
static void
test_nsp_lengths(void **state)
{
    (void)state;
    for (size_t nl = 1; nl <= WIRE_SIO_NSP_MAX + 8; nl++) {
        char buf[WIRE_SIO_NSP_MAX + 32];
        size_t n = 0;
        wire_sio_packet_t p;
        guard_t g;
        const char *in;
        int rc;

        buf[n++] = '4';
        buf[n++] = '2';
        buf[n++] = '/';
        for (size_t j = 1; j < nl; j++)
            buf[n++] = (char)('a' + j % 26);
        buf[n++] = ',';
        buf[n++] = '[';
        buf[n++] = ']';
        in = guard_place(&g, buf, n);
        assert_non_null(in);
        rc = wire_sio_parse(in, n, &p);
        if (nl <= WIRE_SIO_NSP_MAX) {
            if (rc != 0)
                fail_msg("namespace of %zu bytes refused", nl);
            assert_int_equal(p.nsp_len, nl);
            assert_ptr_equal(p.nsp, in + 2);
            assert_int_equal(p.data_len, 2);
        } else if (rc != -EINVAL) {
            fail_msg("namespace of %zu bytes accepted", nl);
        }
        guard_release(&g);
    }
}

/* A namespace as long as a whole frame may be, with no ',' anywhere. */
static void
test_huge_inputs(void **state)
{
    size_t n = 64 * 1024;
    char *buf = malloc(n);
    guard_t g;
    wire_sio_packet_t p;
    const char *in;
    (void)state;

    assert_non_null(buf);
    /* "42/xxxx..." without the ',' */
    memset(buf, 'x', n);
    memcpy(buf, "42/", 3);
    in = guard_place(&g, buf, n);
    assert_non_null(in);
    assert_int_equal(wire_sio_parse(in, n, &p), -EINVAL);
    guard_release(&g);
    /* "42" then 64 Ki digits */
    memset(buf, '7', n);
    memcpy(buf, "42", 2);
    in = guard_place(&g, buf, n);
    assert_non_null(in);
    assert_int_equal(wire_sio_parse(in, n, &p), -EINVAL);
    guard_release(&g);
    /* "45" then 64 Ki digits, no '-' */
    memset(buf, '9', n);
    memcpy(buf, "45", 2);
    in = guard_place(&g, buf, n);
    assert_non_null(in);
    assert_int_equal(wire_sio_parse(in, n, &p), -EINVAL);
    guard_release(&g);
    /* a 64 KiB event is just a long data field */
    memset(buf, 'a', n);
    memcpy(buf, "42[\"", 4);
    memcpy(buf + n - 2, "\"]", 2);
    in = guard_place(&g, buf, n);
    assert_non_null(in);
    assert_int_equal(wire_sio_parse(in, n, &p), 0);
    assert_int_equal(p.sio, WIRE_SIO_EVENT);
    assert_ptr_equal(p.data, in + 2);
    assert_int_equal(p.data_len, n - 2);
    guard_release(&g);
    free(buf);
}

/* An absurd attachment count must not overflow into something accepted as
 * negative or small-and-wrapped. */
static void
test_attachments_overflow(void **state)
{
    static const char *const ins[] = {
        "4599999999999999999999999999999999999999-[\"a\"]",
        "459223372036854775808-[\"a\"]",
        "4518446744073709551617-[\"a\"]",
    };
    (void)state;
    for (size_t i = 0; i < sizeof ins / sizeof ins[0]; i++) {
        guard_t g;
        wire_sio_packet_t p;
        size_t n = strlen(ins[i]);
        const char *in = guard_place(&g, ins[i], n);
        int rc;

        assert_non_null(in);
        rc = wire_sio_parse(in, n, &p);
        if (rc == 0) {
            check_invariants(in, n, &p, ins[i]);
            if (p.attachments < 1000)
                fail_msg("'%s' accepted with %ld attachments", ins[i], p.attachments);
        } else {
            assert_int_equal(rc, -EINVAL);
        }
        guard_release(&g);
    }
}

/* Random inputs, from all bytes and from the packet alphabet: never a crash
 * or a read past the end, accepted packets self-consistent, and the same
 * answer twice. Deterministic seed so a failure reproduces. */
static void
test_random(void **state)
{
    static const char alpha[] = "0123456789/,-[]{}\"tfn a\\:";
    uint64_t seed = 0x5eed5100ull;
    unsigned char buf[96];
    (void)state;

    for (int iter = 0; iter < 200000; iter++) {
        size_t n = (size_t)(test_rand(&seed) % sizeof buf);
        int mode = iter % 3;
        guard_t g;
        wire_sio_packet_t p1, p2;
        const char *in;
        int rc1, rc2;
        char what[64];

        for (size_t j = 0; j < n; j++) {
            uint64_t r = test_rand(&seed);
            if (mode == 0)
                buf[j] = (unsigned char)(r >> 24);
            else
                buf[j] = (unsigned char)alpha[(r >> 24) % (sizeof alpha - 1)];
        }
        /* mode 2: a plausible head, then noise */
        if (mode == 2 && n >= 2) {
            buf[0] = '4';
            buf[1] = (unsigned char)('0' + test_rand(&seed) % 7);
        }
        in = guard_place(&g, buf, n);
        assert_non_null(in);
        snprintf(what, sizeof what, "random input %d (len %zu)", iter, n);
        rc1 = wire_sio_parse(in, n, &p1);
        rc2 = wire_sio_parse(in, n, &p2);
        assert_int_equal(rc1, rc2);
        if (rc1 == 0) {
            check_invariants(in, n, &p1, what);
            assert_int_equal(p1.eio, p2.eio);
            assert_int_equal(p1.sio, p2.sio);
            assert_int_equal(p1.ack_id, p2.ack_id);
            assert_int_equal(p1.data_len, p2.data_len);
        } else if (rc1 != -EINVAL) {
            fail_msg("%s: rc %d", what, rc1);
        }
        guard_release(&g);
    }
}

/* Zero-length input at the very end of a mapping, and a NULL-free check
 * that the parser never needs a terminator: each valid case again with a
 * non-NUL byte after `len` that would change the answer if read. */
static void
test_no_terminator_needed(void **state)
{
    (void)state;
    {
        guard_t g;
        wire_sio_packet_t p;
        const char *in = guard_place(&g, "", 0);
        assert_non_null(in);
        assert_int_equal(wire_sio_parse(in, 0, &p), -EINVAL);
        guard_release(&g);
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[512];
        if (cases[i].len + 8 > sizeof buf)
            continue;
        memcpy(buf, cases[i].in, cases[i].len);
        /* trailing junk that is not part of the packet */
        memcpy(buf + cases[i].len, "9x,-/[\0", 8);
        check_case(&cases[i], i, buf);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_table_guarded),
        cmocka_unit_test(test_prefixes),
        cmocka_unit_test(test_prefixes_refused),
        cmocka_unit_test(test_ack_digits),
        cmocka_unit_test(test_nsp_lengths),
        cmocka_unit_test(test_huge_inputs),
        cmocka_unit_test(test_attachments_overflow),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_no_terminator_needed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
