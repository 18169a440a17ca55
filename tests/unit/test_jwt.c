/*
 * tests/unit/test_jwt.c: token verification (wire_jwt_verify) and signing
 * (wire_jwt_sign). Test tokens are made with libjwt directly, or by hand
 * where libjwt would refuse to make them (alg "none").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jwt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "wire.h"

#define SECRET "test-secret-0123456789"
#define NOW ((time_t)1700000000)

/* ---- token makers ---- */

static char *
b64url(const char *s, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = malloc(n / 3 * 4 + 5), *o = out;
    size_t i = 0;

    assert_non_null(out);
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)s[i] << 16 | (uint32_t)(unsigned char)s[i + 1] << 8 |
                     (unsigned char)s[i + 2];
        *o++ = tab[v >> 18 & 63];
        *o++ = tab[v >> 12 & 63];
        *o++ = tab[v >> 6 & 63];
        *o++ = tab[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)(unsigned char)s[i] << 16;
        *o++ = tab[v >> 18 & 63];
        *o++ = tab[v >> 12 & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)(unsigned char)s[i] << 16 | (uint32_t)(unsigned char)s[i + 1] << 8;
        *o++ = tab[v >> 18 & 63];
        *o++ = tab[v >> 12 & 63];
        *o++ = tab[v >> 6 & 63];
    }
    *o = '\0';
    return out;
}

/* A token over `claims` (a JSON object) signed by libjwt with `alg`. */
static char *
make_token(const char *secret, jwt_alg_t alg, const char *claims)
{
    jwt_t *j = NULL;
    char *tok;

    assert_int_equal(jwt_new(&j), 0);
    assert_int_equal(jwt_add_grants_json(j, claims), 0);
    assert_int_equal(jwt_set_alg(j, alg, (const unsigned char *)secret, (int)strlen(secret)), 0);
    tok = jwt_encode_str(j);
    assert_non_null(tok);
    jwt_free(j);
    return tok;
}

static char *
make_hs256(const char *claims)
{
    return make_token(SECRET, JWT_ALG_HS256, claims);
}

/* header.payload.sig by hand from JSON texts and a raw signature string. */
static char *
make_raw(const char *header, const char *claims, const char *sig)
{
    char *h = b64url(header, strlen(header)), *p = b64url(claims, strlen(claims));
    size_t n = strlen(h) + strlen(p) + strlen(sig) + 3;
    char *tok = malloc(n);

    assert_non_null(tok);
    snprintf(tok, n, "%s.%s.%s", h, p, sig);
    free(h);
    free(p);
    return tok;
}

static int
verify(const char *tok, size_t len, wire_claims_t *cl, const char **why)
{
    return wire_jwt_verify(SECRET, tok, len, NOW, cl, why);
}

/* ---- verification table: claims signed properly with HS256 ---- */

typedef struct claims_case {
    const char *claims;
    int ok;
    const char *sub;
    unsigned roles;
} claims_case_t;

#define SUB "\"sub\":\"76561198000000001\""
#define EXP_OK "\"exp\":1700000060"

static const claims_case_t claims_cases[] = {
    {"{" SUB "," EXP_OK "}", 1, "76561198000000001", 0},
    {"{" SUB "," EXP_OK ",\"roles\":[]}", 1, "76561198000000001", 0},
    {"{" SUB "," EXP_OK ",\"roles\":[\"ops\"]}", 1, "76561198000000001", WIRE_ROLE_OPS},
    {"{" SUB "," EXP_OK ",\"roles\":[\"service\",\"admin\",\"ops\",\"other\"]}", 1,
     "76561198000000001", WIRE_ROLE_SERVICE | WIRE_ROLE_ADMIN | WIRE_ROLE_OPS},
    {"{" SUB "," EXP_OK ",\"roles\":[\"OPS\",\"opsx\"]}", 1, "76561198000000001", 0},
    {"{\"sub\":\"svc.worker-1_a\"," EXP_OK "}", 1, "svc.worker-1_a", 0},
    {"{\"sub\":\"0123456789012345678901234567890123456789012345678901234567890123\"," EXP_OK "}", 1,
     "0123456789012345678901234567890123456789012345678901234567890123", 0},
    {"{" SUB ",\"exp\":1700000001}", 1, "76561198000000001", 0},
    /* exp */
    {"{" SUB ",\"exp\":1700000000}", 0, NULL, 0},
    {"{" SUB ",\"exp\":1699999999}", 0, NULL, 0},
    {"{" SUB ",\"exp\":0}", 0, NULL, 0},
    {"{" SUB ",\"exp\":-5}", 0, NULL, 0},
    {"{" SUB "}", 0, NULL, 0},
    {"{" SUB ",\"exp\":\"1800000000\"}", 0, NULL, 0},
    {"{" SUB ",\"exp\":1800000000.0}", 0, NULL, 0},
    {"{" SUB ",\"exp\":null}", 0, NULL, 0},
    {"{" SUB ",\"exp\":true}", 0, NULL, 0},
    {"{" SUB ",\"exp\":[1800000000]}", 0, NULL, 0},
    /* sub */
    {"{" EXP_OK "}", 0, NULL, 0},
    {"{\"sub\":\"\"," EXP_OK "}", 0, NULL, 0},
    {"{\"sub\":\"bad sub\"," EXP_OK "}", 0, NULL, 0},
    {"{\"sub\":\"a/b\"," EXP_OK "}", 0, NULL, 0},
    {"{\"sub\":\"user:1\"," EXP_OK "}", 0, NULL, 0},
    {"{\"sub\":\"\\u00e9\"," EXP_OK "}", 0, NULL, 0},
    {"{\"sub\":\"01234567890123456789012345678901234567890123456789012345678901234\"," EXP_OK "}",
     0, NULL, 0},
    {"{\"sub\":76561198000000001," EXP_OK "}", 0, NULL, 0},
    {"{\"sub\":null," EXP_OK "}", 0, NULL, 0},
    {"{\"sub\":[\"a\"]," EXP_OK "}", 0, NULL, 0},
    /* roles */
    {"{" SUB "," EXP_OK ",\"roles\":\"ops\"}", 0, NULL, 0},
    {"{" SUB "," EXP_OK ",\"roles\":\"ops,admin\"}", 0, NULL, 0},
    {"{" SUB "," EXP_OK ",\"roles\":[\"ops\",1]}", 0, NULL, 0},
    {"{" SUB "," EXP_OK ",\"roles\":[[\"ops\"]]}", 0, NULL, 0},
    {"{" SUB "," EXP_OK ",\"roles\":{\"ops\":true}}", 0, NULL, 0},
    {"{" SUB "," EXP_OK ",\"roles\":null}", 0, NULL, 0},
    {"{" SUB "," EXP_OK ",\"roles\":true}", 0, NULL, 0},
};

static void
test_jwt_claims_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof claims_cases / sizeof claims_cases[0]; i++) {
        const claims_case_t *c = &claims_cases[i];
        char *tok = make_hs256(c->claims);
        wire_claims_t cl;
        const char *why = NULL;
        int rc;

        memset(&cl, 0x55, sizeof cl);
        rc = verify(tok, strlen(tok), &cl, &why);
        if (c->ok) {
            if (rc != 0)
                fail_msg("case %zu %s refused: %s", i, c->claims, why);
            assert_string_equal(cl.sub, c->sub);
            assert_int_equal(cl.roles, c->roles);
            assert_true(cl.exp > (long long)NOW);
        } else {
            if (rc != -EINVAL)
                fail_msg("case %zu %s accepted", i, c->claims);
            assert_non_null(why);
        }
        free(tok);
    }
}

static void
test_jwt_valid_fields(void **state)
{
    char *tok = make_hs256("{" SUB ",\"exp\":1700000123,\"roles\":[\"ops\"],\"iat\":1}");
    wire_claims_t cl;
    const char *why;
    (void)state;

    assert_int_equal(verify(tok, strlen(tok), &cl, &why), 0);
    assert_int_equal(cl.exp, 1700000123);
    assert_string_equal(cl.sub, "76561198000000001");
    assert_int_equal(cl.roles, WIRE_ROLE_OPS);
    /* the same token is expired for a later clock */
    assert_int_equal(wire_jwt_verify(SECRET, tok, strlen(tok), 1700000123, &cl, &why), -EINVAL);
    /* and refused under another secret, or with no secret */
    assert_int_equal(wire_jwt_verify("other", tok, strlen(tok), NOW, &cl, &why), -EINVAL);
    assert_int_equal(wire_jwt_verify(SECRET "x", tok, strlen(tok), NOW, &cl, &why), -EINVAL);
    assert_int_equal(wire_jwt_verify("", tok, strlen(tok), NOW, &cl, &why), -EINVAL);
    assert_int_equal(wire_jwt_verify(NULL, tok, strlen(tok), NOW, &cl, &why), -EINVAL);
    free(tok);
}

/* ---- algorithms ---- */

static void
test_jwt_other_algs(void **state)
{
    const char *claims = "{" SUB "," EXP_OK "}";
    jwt_alg_t algs[] = {JWT_ALG_HS384, JWT_ALG_HS512};
    wire_claims_t cl;
    const char *why;
    (void)state;

    for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++) {
        /* correctly signed with our own secret, but not HS256 */
        char *tok = make_token(SECRET, algs[i], claims);
        assert_int_equal(verify(tok, strlen(tok), &cl, &why), -EINVAL);
        free(tok);
    }
}

static void
test_jwt_alg_none(void **state)
{
    static const char *headers[] = {
        "{\"alg\":\"none\",\"typ\":\"JWT\"}",
        "{\"alg\":\"none\"}",
        "{\"alg\":\"None\",\"typ\":\"JWT\"}",
        "{\"alg\":\"NONE\",\"typ\":\"JWT\"}",
        "{\"typ\":\"JWT\"}",
        "{\"alg\":\"\",\"typ\":\"JWT\"}",
        "{\"alg\":null,\"typ\":\"JWT\"}",
    };
    static const char *sigs[] = {"", "AAAA", "x"};
    const char *claims = "{" SUB "," EXP_OK ",\"roles\":[\"ops\",\"admin\"]}";
    wire_claims_t cl;
    const char *why;
    (void)state;

    for (size_t h = 0; h < sizeof headers / sizeof headers[0]; h++) {
        for (size_t s = 0; s < sizeof sigs / sizeof sigs[0]; s++) {
            char *tok = make_raw(headers[h], claims, sigs[s]);
            if (verify(tok, strlen(tok), &cl, &why) != -EINVAL)
                fail_msg("accepted %s with sig '%s': %s", headers[h], sigs[s], tok);
            free(tok);
        }
    }
    /* the same claims and an HS256 header but the alg-none empty signature */
    {
        char *tok = make_raw("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", claims, "");
        assert_int_equal(verify(tok, strlen(tok), &cl, &why), -EINVAL);
        free(tok);
    }
}

/* A genuine token with its header swapped for alg none keeps its payload
 * and signature: still refused. */
static void
test_jwt_header_swap(void **state)
{
    char *good = make_hs256("{" SUB "," EXP_OK "}");
    static const char none_h[] = "{\"alg\":\"none\",\"typ\":\"JWT\"}";
    static const char hs512_h[] = "{\"alg\":\"HS512\",\"typ\":\"JWT\"}";
    char *none = b64url(none_h, sizeof none_h - 1);
    char *hs512 = b64url(hs512_h, sizeof hs512_h - 1);
    const char *rest = strchr(good, '.');
    char buf[1024];
    wire_claims_t cl;
    const char *why;
    (void)state;

    assert_int_equal(verify(good, strlen(good), &cl, &why), 0);
    snprintf(buf, sizeof buf, "%s%s", none, rest);
    assert_int_equal(verify(buf, strlen(buf), &cl, &why), -EINVAL);
    snprintf(buf, sizeof buf, "%s%s", hs512, rest);
    assert_int_equal(verify(buf, strlen(buf), &cl, &why), -EINVAL);
    /* and the payload stripped of its signature */
    snprintf(buf, sizeof buf, "%s", good);
    *(strrchr(buf, '.') + 1) = '\0';
    assert_int_equal(verify(buf, strlen(buf), &cl, &why), -EINVAL);
    free(good);
    free(none);
    free(hs512);
}

/* ---- tampering, garbage, sizes ---- */

static void
test_jwt_tampered(void **state)
{
    char *good = make_hs256("{" SUB "," EXP_OK ",\"roles\":[\"service\"]}");
    size_t n = strlen(good);
    char *evil_claims, *evil;
    char *buf = malloc(n + 2);
    wire_claims_t cl;
    const char *why;
    (void)state;

    assert_non_null(buf);
    assert_int_equal(verify(good, n, &cl, &why), 0);
    /* flip one character at every position of the token */
    for (size_t i = 0; i < n; i++) {
        memcpy(buf, good, n + 1);
        if (buf[i] == '.')
            continue;
        buf[i] = buf[i] == 'A' ? 'B' : 'A';
        /* includes the last signature character, whose 2 low bits are
         * padding: libjwt compares the encoded text, so that is refused too */
        if (verify(buf, n, &cl, &why) != -EINVAL)
            fail_msg("flip at %zu accepted: %s", i, buf);
    }
    /* every proper prefix is refused, the whole is accepted */
    for (size_t k = 0; k < n; k++) {
        guard_t g;
        const char *in = guard_place(&g, good, k);
        assert_non_null(in);
        if (verify(in, k, &cl, &why) != -EINVAL)
            fail_msg("prefix %zu accepted", k);
        guard_release(&g);
    }
    /* trailing bytes */
    snprintf(buf, n + 2, "%s.", good);
    assert_int_equal(verify(buf, n + 1, &cl, &why), -EINVAL);
    snprintf(buf, n + 2, "%sA", good);
    assert_int_equal(verify(buf, n + 1, &cl, &why), -EINVAL);
    /* an embedded NUL: the token followed by its terminator, counted */
    assert_int_equal(verify(good, n + 1, &cl, &why), -EINVAL);
    memcpy(buf, good, n + 1);
    buf[n / 2] = '\0';
    assert_int_equal(verify(buf, n, &cl, &why), -EINVAL);
    /* the signature of one token on the claims of another (role escalation) */
    evil_claims = b64url("{" SUB "," EXP_OK ",\"roles\":[\"admin\"]}",
                         strlen("{" SUB "," EXP_OK ",\"roles\":[\"admin\"]}"));
    {
        const char *d1 = strchr(good, '.'), *d2 = strrchr(good, '.');
        size_t m = (size_t)(d1 - good) + 1 + strlen(evil_claims) + strlen(d2) + 1;
        evil = malloc(m);
        assert_non_null(evil);
        snprintf(evil, m, "%.*s.%s%s", (int)(d1 - good), good, evil_claims, d2);
        assert_int_equal(verify(evil, strlen(evil), &cl, &why), -EINVAL);
        free(evil);
    }
    free(evil_claims);
    free(buf);
    free(good);
}

static void
test_jwt_garbage(void **state)
{
    static const char *cases[] = {
        "",
        ".",
        "..",
        "...",
        "a",
        "a.b",
        "a.b.c",
        "a.b.c.d",
        "Bearer x.y.z",
        "null",
        "eyJhbGciOiJIUzI1NiJ9",
        "eyJhbGciOiJIUzI1NiJ9..",
        ".eyJzdWIiOiJ4In0.",
        "eyJ.eyJ.eyJ",
        "e30.e30.",
        "e30.e30.e30",
        "W10.W10.W10",
        "!!!.???.***",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9 .e30.x",
        "eyJhbGciOiJIUzI1NiJ9.e30.\n",
    };
    wire_claims_t cl;
    const char *why;
    uint64_t seed = 7;
    char buf[256];
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        guard_t g;
        const char *in = guard_place(&g, cases[i], strlen(cases[i]));
        assert_non_null(in);
        if (verify(in, strlen(cases[i]), &cl, &why) != -EINVAL)
            fail_msg("garbage '%s' accepted", cases[i]);
        guard_release(&g);
    }
    assert_int_equal(verify(NULL, 0, &cl, &why), -EINVAL);
    /* random base64url-ish strings with dots */
    for (int iter = 0; iter < 3000; iter++) {
        static const char alpha[] = "eyJhbGciOiJIUzI1NiJ9.e30-_AZaz09.\0\xff";
        size_t n = test_rand(&seed) % sizeof buf;
        guard_t g;
        const char *in;
        for (size_t i = 0; i < n; i++)
            buf[i] = alpha[test_rand(&seed) % (sizeof alpha - 1)];
        in = guard_place(&g, buf, n);
        assert_non_null(in);
        assert_int_equal(verify(in, n, &cl, &why), -EINVAL);
        guard_release(&g);
    }
}

/* A valid token placed against a guard page, not NUL-terminated: accepted,
 * so the NUL the library needs comes from our copy, not from the caller. */
static void
test_jwt_unterminated(void **state)
{
    char *tok = make_hs256("{" SUB "," EXP_OK "}");
    guard_t g;
    const char *in = guard_place(&g, tok, strlen(tok));
    wire_claims_t cl;
    const char *why;
    (void)state;

    assert_non_null(in);
    assert_int_equal(verify(in, strlen(tok), &cl, &why), 0);
    assert_string_equal(cl.sub, "76561198000000001");
    guard_release(&g);
    free(tok);
}

/* Tokens around WIRE_TOKEN_MAX: the longest one that fits is accepted, the
 * shortest one over is refused, whatever its signature. */
static void
test_jwt_size_limit(void **state)
{
    char *claims = malloc(WIRE_TOKEN_MAX + 100);
    size_t best_under = 0, best_over = SIZE_MAX;
    wire_claims_t cl;
    const char *why;
    (void)state;

    assert_non_null(claims);
    for (size_t pad = 2900; pad < 3100; pad++) {
        char *tok;
        size_t n;
        int n0 = snprintf(claims, WIRE_TOKEN_MAX + 100, "{" SUB "," EXP_OK ",\"pad\":\"");
        memset(claims + n0, 'p', pad);
        strcpy(claims + n0 + pad, "\"}");
        tok = make_hs256(claims);
        n = strlen(tok);
        if (n <= WIRE_TOKEN_MAX) {
            assert_int_equal(verify(tok, n, &cl, &why), 0);
            if (n > best_under)
                best_under = n;
        } else {
            assert_int_equal(verify(tok, n, &cl, &why), -EINVAL);
            if (n < best_over)
                best_over = n;
        }
        free(tok);
    }
    /* the pad range must straddle the limit closely, or this proves little */
    assert_true(best_under > WIRE_TOKEN_MAX - 8);
    assert_true(best_over < WIRE_TOKEN_MAX + 8);
    free(claims);
}

/* ---- signing ---- */

static void
test_sign_round_trip(void **state)
{
    typedef struct {
        const char *sub, *roles;
        unsigned want;
    } rt_t;
    static const rt_t cases[] = {
        {"alice", "ops,service", WIRE_ROLE_OPS | WIRE_ROLE_SERVICE},
        {"76561198000000001", NULL, 0},
        {"76561198000000001", "", 0},
        {"svc.locks-1", "service", WIRE_ROLE_SERVICE},
        {"root", "admin,ops,service", WIRE_ROLE_ADMIN | WIRE_ROLE_OPS | WIRE_ROLE_SERVICE},
        {"x", "viewer", 0},
        {"x", "ops,ops", WIRE_ROLE_OPS},
    };
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *tok = NULL;
        wire_claims_t cl;
        const char *why;
        jwt_t *j = NULL;

        assert_int_equal(wire_jwt_sign(SECRET, cases[i].sub, cases[i].roles, 60, NOW, &tok), 0);
        assert_non_null(tok);
        if (verify(tok, strlen(tok), &cl, &why) != 0)
            fail_msg("case %zu: own token refused: %s", i, why);
        assert_string_equal(cl.sub, cases[i].sub);
        assert_int_equal(cl.roles, cases[i].want);
        assert_int_equal(cl.exp, (long long)NOW + 60);
        /* expires exactly ttl seconds later */
        assert_int_equal(wire_jwt_verify(SECRET, tok, strlen(tok), NOW + 59, &cl, &why), 0);
        assert_int_equal(wire_jwt_verify(SECRET, tok, strlen(tok), NOW + 60, &cl, &why), -EINVAL);
        assert_int_equal(wire_jwt_verify("other", tok, strlen(tok), NOW, &cl, &why), -EINVAL);
        /* it is HS256 and carries roles as an array, read independently */
        assert_int_equal(jwt_decode(&j, tok, (const unsigned char *)SECRET, strlen(SECRET)), 0);
        assert_int_equal(jwt_get_alg(j), JWT_ALG_HS256);
        {
            char *roles = jwt_get_grants_json(j, "roles");
            if (cases[i].roles == NULL || cases[i].roles[0] == '\0')
                assert_null(roles);
            else {
                assert_non_null(roles);
                assert_int_equal(roles[0], '[');
            }
            free(roles);
        }
        jwt_free(j);
        free(tok);
    }
}

static void
test_sign_bad_input(void **state)
{
    typedef struct {
        const char *secret, *sub, *roles;
        long long ttl;
    } bad_t;
    static const bad_t cases[] = {
        {SECRET, "", NULL, 60},
        {SECRET, NULL, NULL, 60},
        {SECRET, "bad sub", NULL, 60},
        {SECRET, "a/b", NULL, 60},
        {SECRET, "01234567890123456789012345678901234567890123456789012345678901234", NULL, 60},
        {SECRET, "x", "Ops", 60},
        {SECRET, "x", "ops,", 60},
        {SECRET, "x", ",ops", 60},
        {SECRET, "x", "ops,,admin", 60},
        {SECRET, "x", "ops admin", 60},
        {SECRET, "x", "ops;admin", 60},
        {SECRET, "x", ",", 60},
        {SECRET, "x", "op1", 60},
        {SECRET, "x", "ops", 0},
        {SECRET, "x", "ops", -1},
        {SECRET, "x", "ops", LLONG_MIN},
        {SECRET, "x", "ops", LLONG_MAX},
        {"", "x", "ops", 60},
        {NULL, "x", "ops", 60},
    };
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *tok = (char *)"untouched";
        int rc =
            wire_jwt_sign(cases[i].secret, cases[i].sub, cases[i].roles, cases[i].ttl, NOW, &tok);
        if (rc != -EINVAL)
            fail_msg("case %zu: rc %d", i, rc);
        assert_null(tok);
    }
    assert_int_equal(wire_jwt_sign(SECRET, "x", NULL, 60, NOW, NULL), -EINVAL);
}

/* ---- verified tokens kept until their exp (tokcache.c) ---- */

static void
test_jwt_cache(void **state)
{
    wire_keyset_t *ks = NULL, *other = NULL;
    wire_claims_t cl;
    const char *why;
    uint64_t hits, misses;
    char claims[160];
    char *tok, *late, *bad;
    (void)state;

    assert_int_equal(wire_keyset_new(NULL, NULL, &ks), 0);
    assert_int_equal(wire_keyset_add_secret(ks, SECRET), 0);
    snprintf(claims, sizeof claims, "{\"sub\":\"alice\",\"exp\":%lld,\"roles\":[\"service\"]}",
             (long long)NOW + 60);
    tok = make_hs256(claims);
    snprintf(claims, sizeof claims, "{\"sub\":\"bob\",\"exp\":%lld,\"nbf\":%lld}",
             (long long)NOW + 100, (long long)NOW + 10);
    late = make_hs256(claims);
    bad = strdup(tok);
    assert_non_null(bad);
    bad[strlen(bad) - 2] = bad[strlen(bad) - 2] == 'A' ? 'B' : 'A'; /* same length */

    /* verified once in full, then from the cache with the same claims */
    assert_int_equal(wire_jwt_verify_keys(ks, tok, strlen(tok), NOW, &cl, &why), 0);
    memset(&cl, 0, sizeof cl);
    assert_int_equal(wire_jwt_verify_keys(ks, tok, strlen(tok), NOW + 1, &cl, &why), 0);
    wire_keyset_cache_stats(ks, &hits, &misses);
    assert_int_equal(hits, 1);
    assert_string_equal(cl.sub, "alice");
    assert_int_equal(cl.roles, WIRE_ROLE_SERVICE);
    assert_int_equal(cl.exp, (long long)NOW + 60);

    /* a token differing in one byte of its signature (same length) is
     * verified in full, and refused; the good one still answers */
    assert_int_equal(wire_jwt_verify_keys(ks, bad, strlen(bad), NOW + 1, &cl, &why), -EINVAL);
    assert_int_equal(wire_jwt_verify_keys(ks, tok, strlen(tok), NOW + 2, &cl, &why), 0);
    wire_keyset_cache_stats(ks, &hits, &misses);
    assert_int_equal(hits, 2);

    /* at exp the cached token is refused as expired; a clock set back
     * finds it verified in full again */
    assert_int_equal(wire_jwt_verify_keys(ks, tok, strlen(tok), NOW + 60, &cl, &why), -EINVAL);
    assert_string_equal(why, "token expired");
    assert_int_equal(wire_jwt_verify_keys(ks, tok, strlen(tok), NOW + 3, &cl, &why), 0);
    wire_keyset_cache_stats(ks, &hits, &misses);
    assert_int_equal(hits, 2);

    /* nbf: not before it, from the cache neither */
    assert_int_equal(wire_jwt_verify_keys(ks, late, strlen(late), NOW, &cl, &why), -EINVAL);
    assert_int_equal(wire_jwt_verify_keys(ks, late, strlen(late), NOW + 10, &cl, &why), 0);
    assert_int_equal(wire_jwt_verify_keys(ks, late, strlen(late), NOW + 11, &cl, &why), 0);
    wire_keyset_cache_stats(ks, &hits, &misses);
    assert_int_equal(hits, 3);
    assert_int_equal(wire_jwt_verify_keys(ks, late, strlen(late), NOW + 5, &cl, &why), -EINVAL);
    assert_string_equal(why, "token not valid yet (nbf)");

    /* many tokens: the cache stays bounded (its slots are evicted; the
     * sanitizers see every copy freed with the key set) */
    for (int i = 0; i < 2000; i++) {
        char *t;
        snprintf(claims, sizeof claims, "{\"sub\":\"u%d\",\"exp\":%lld}", i, (long long)NOW + 60);
        t = make_hs256(claims);
        assert_int_equal(wire_jwt_verify_keys(ks, t, strlen(t), NOW, &cl, &why), 0);
        free(t);
    }

    /* the cache is the key set's: a set reloaded with the same secret
     * verifies the token in full first, then has its own hit; one whose
     * secret changed refuses a token the old set had kept */
    assert_int_equal(wire_keyset_new(NULL, NULL, &other), 0);
    assert_int_equal(wire_keyset_add_secret(other, SECRET), 0);
    assert_int_equal(wire_jwt_verify_keys(other, late, strlen(late), NOW + 11, &cl, &why), 0);
    wire_keyset_cache_stats(other, &hits, &misses);
    assert_int_equal(hits, 0);
    assert_int_equal(wire_jwt_verify_keys(other, late, strlen(late), NOW + 12, &cl, &why), 0);
    wire_keyset_cache_stats(other, &hits, &misses);
    assert_int_equal(hits, 1);
    wire_keyset_free(other);
    assert_int_equal(wire_keyset_new(NULL, NULL, &other), 0);
    assert_int_equal(wire_keyset_add_secret(other, "another-secret"), 0);
    assert_int_equal(wire_jwt_verify_keys(other, late, strlen(late), NOW + 11, &cl, &why), -EINVAL);
    wire_keyset_cache_stats(NULL, &hits, &misses);
    assert_int_equal(hits + misses, 0);

    wire_keyset_free(other);
    wire_keyset_free(ks);
    free(bad);
    free(late);
    free(tok);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jwt_claims_table), cmocka_unit_test(test_jwt_valid_fields),
        cmocka_unit_test(test_jwt_other_algs),   cmocka_unit_test(test_jwt_alg_none),
        cmocka_unit_test(test_jwt_header_swap),  cmocka_unit_test(test_jwt_tampered),
        cmocka_unit_test(test_jwt_garbage),      cmocka_unit_test(test_jwt_unterminated),
        cmocka_unit_test(test_jwt_size_limit),   cmocka_unit_test(test_sign_round_trip),
        cmocka_unit_test(test_sign_bad_input),   cmocka_unit_test(test_jwt_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
