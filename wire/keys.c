/*
 * wire/keys.c: the keys tokens are verified with, and the verification.
 *
 * A key set holds HMAC secrets (HS256/384/512), RSA public keys
 * (RS256/384/512) and EC P-256/P-384 public keys (ES256/ES384), from
 * --jwt-secret and from a JSON Web Key Set. Verification is ours, over
 * OpenSSL: the header's `alg` picks the key type (so `none`, and an RS256
 * key used as an HMAC secret, cannot verify), `kid` picks the key (a token
 * without one is tried against every key of that type), MACs are compared
 * in constant time, and each HMAC key keeps its initialised MAC context, so
 * an HMAC verification fetches nothing from OpenSSL (RSA and EC fetch their
 * digest by name each time). A `crit` header is refused. Then the claims: `exp` (an
 * integer in the future), `nbf`, `sub`, `roles`, and `iss`/`aud` when the
 * set asks for them. A token that verified is kept with its claims until
 * its `exp` (tokcache.c): the same token again is not verified again.
 */
#include "wire.h"

#include "tokcache.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum kty { KTY_OCT, KTY_RSA, KTY_EC };

typedef struct key {
    enum kty kty;
    char *kid; /* NULL: none */
    char alg[8]; /* the only alg it verifies (the JWK's "alg"); "": any of its type */
    int curve_bits; /* EC: 256 or 384 */
    EVP_MAC_CTX *mac[3]; /* oct: HMAC-SHA256/384/512, each initialised with the secret */
    EVP_PKEY *pkey;   /* RSA, EC */
} jwk_t;

struct wire_keyset {
    jwk_t *keys;
    size_t n;
    char *iss, *aud; /* required claims, NULL: not checked */
    EVP_MAC *hmac;
    tokcache_t *cache; /* from the first token verified; NULL before */
};

static int
b64url_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* base64url without padding into `out` (cap bytes): the length, or -1. */
static long
b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;

    if (len % 4 == 1)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_val((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap)
                return -1;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return -1; /* non-canonical trailing bits */
    return (long)o;
}

/* A JSON string member in base64url, decoded into a malloc'd buffer. */
static unsigned char *
b64_member(json_t *o, const char *name, size_t *n)
{
    json_t *v = json_object_get(o, name);
    unsigned char *buf;
    long got;

    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 8192)
        return NULL;
    buf = malloc(json_string_length(v));
    if (buf == NULL)
        return NULL;
    got = b64url_decode(json_string_value(v), json_string_length(v), buf, json_string_length(v));
    if (got <= 0) {
        free(buf);
        return NULL;
    }
    *n = (size_t)got;
    return buf;
}

static void
key_clear(jwk_t *k)
{
    free(k->kid);
    for (int i = 0; i < 3; i++)
        EVP_MAC_CTX_free(k->mac[i]);
    EVP_PKEY_free(k->pkey);
    memset(k, 0, sizeof *k);
}

void
wire_keyset_free(wire_keyset_t *ks)
{
    if (ks == NULL)
        return;
    for (size_t i = 0; i < ks->n; i++)
        key_clear(&ks->keys[i]);
    free(ks->keys);
    free(ks->iss);
    free(ks->aud);
    EVP_MAC_free(ks->hmac);
    wire__tokcache_free(ks->cache);
    free(ks);
}

int
wire_keyset_new(const char *iss, const char *aud, wire_keyset_t **out)
{
    wire_keyset_t *ks = calloc(1, sizeof *ks);

    *out = NULL;
    if (ks == NULL)
        return -ENOMEM;
    ks->hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    ks->iss = iss && *iss ? strdup(iss) : NULL;
    ks->aud = aud && *aud ? strdup(aud) : NULL;
    if (ks->hmac == NULL || (iss && *iss && !ks->iss) || (aud && *aud && !ks->aud)) {
        wire_keyset_free(ks);
        return -ENOMEM;
    }
    *out = ks;
    return 0;
}

static jwk_t *
push(wire_keyset_t *ks)
{
    jwk_t *k = realloc(ks->keys, (ks->n + 1) * sizeof *k);
    if (k == NULL)
        return NULL;
    ks->keys = k;
    memset(&k[ks->n], 0, sizeof k[0]);
    return &k[ks->n++];
}

static int
add_oct(wire_keyset_t *ks, const unsigned char *secret, size_t n, const char *kid, const char *alg)
{
    jwk_t *k;

    if (n == 0)
        return -EINVAL;
    if ((k = push(ks)) == NULL)
        return -ENOMEM;
    k->kty = KTY_OCT;
    if (alg)
        snprintf(k->alg, sizeof k->alg, "%s", alg);
    if (kid && (k->kid = strdup(kid)) == NULL)
        goto fail;
    /* one context per digest, each keeping the key: a verification only
     * resets one (EVP_MAC_init with no key) */
    for (int i = 0; i < 3; i++) {
        static const char *const md[3] = {"SHA256", "SHA384", "SHA512"};
        OSSL_PARAM p[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)md[i], 0),
                          OSSL_PARAM_construct_end()};
        k->mac[i] = EVP_MAC_CTX_new(ks->hmac);
        if (k->mac[i] == NULL || EVP_MAC_init(k->mac[i], secret, n, p) != 1)
            goto fail;
    }
    return 0;
fail:
    key_clear(k);
    ks->n--;
    return -ENOMEM;
}

int
wire_keyset_add_secret(wire_keyset_t *ks, const char *secret)
{
    /* --jwt-secret is HS256's, as it always was (SPEC §1) */
    return add_oct(ks, (const unsigned char *)secret, strlen(secret), NULL, "HS256");
}

/* An EVP_PKEY from parameters (RSA n/e, or an EC point). */
static EVP_PKEY *
pkey_from(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pkey = NULL;

    if (params == NULL || pc == NULL || EVP_PKEY_fromdata_init(pc) != 1 ||
        EVP_PKEY_fromdata(pc, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
    OSSL_PARAM_free(params);
    EVP_PKEY_CTX_free(pc);
    return pkey;
}

/* Adds a public key to the set, which takes `pkey` in every case. */
static int
add_pkey(wire_keyset_t *ks, enum kty kty, int curve_bits, EVP_PKEY *pkey, const char *kid)
{
    jwk_t *k = push(ks);

    if (k == NULL) {
        EVP_PKEY_free(pkey);
        return -ENOMEM;
    }
    k->kty = kty;
    k->curve_bits = curve_bits;
    k->pkey = pkey;
    if (kid && (k->kid = strdup(kid)) == NULL) {
        key_clear(k);
        ks->n--;
        return -ENOMEM;
    }
    return 0;
}

static int
add_rsa(wire_keyset_t *ks, json_t *jwk, const char *kid)
{
    size_t nn = 0, en = 0;
    unsigned char *n = b64_member(jwk, "n", &nn), *e = b64_member(jwk, "e", &en);
    BIGNUM *bn = n ? BN_bin2bn(n, (int)nn, NULL) : NULL, *be = e ? BN_bin2bn(e, (int)en, NULL) : NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pkey = NULL;
    int rc = -EINVAL;

    /* 2048 bits or more (leading zero bytes do not count); an odd
     * exponent above 1 (e = 1 would make every signature valid) */
    if (bn && be && bld && BN_num_bits(bn) >= 2048 && BN_is_odd(be) && BN_num_bits(be) > 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
        pkey = pkey_from("RSA", bld);
    if (pkey != NULL)
        rc = add_pkey(ks, KTY_RSA, 0, pkey, kid);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    free(n);
    free(e);
    return rc;
}

static int
add_ec(wire_keyset_t *ks, json_t *jwk, const char *kid)
{
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    size_t xn = 0, yn = 0, clen;
    unsigned char *x = b64_member(jwk, "x", &xn), *y = b64_member(jwk, "y", &yn), pt[1 + 2 * 48];
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pkey = NULL;
    int bits = 0, rc = -EINVAL;

    if (crv && strcmp(crv, "P-256") == 0)
        bits = 256;
    else if (crv && strcmp(crv, "P-384") == 0)
        bits = 384;
    clen = (size_t)bits / 8;
    if (bits && x && y && xn == clen && yn == clen && bld) {
        pt[0] = 0x04; /* uncompressed point */
        memcpy(pt + 1, x, clen);
        memcpy(pt + 1 + clen, y, clen);
        if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                            bits == 256 ? "prime256v1" : "secp384r1", 0) &&
            OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, 1 + 2 * clen))
            pkey = pkey_from("EC", bld);
    }
    if (pkey != NULL)
        rc = add_pkey(ks, KTY_EC, bits, pkey, kid);
    OSSL_PARAM_BLD_free(bld);
    free(x);
    free(y);
    return rc;
}

typedef struct alg {
    const char *name;
    enum kty kty;
    const char *md; /* digest name */
    int mdi;        /* HS: which of the key's MAC contexts */
    int ec_bits;    /* ES: the curve */
} alg_t;

static const alg_t algs[] = {
    {"HS256", KTY_OCT, "SHA256", 0, 0},   {"HS384", KTY_OCT, "SHA384", 1, 0},
    {"HS512", KTY_OCT, "SHA512", 2, 0},   {"RS256", KTY_RSA, "SHA256", 0, 0},
    {"RS384", KTY_RSA, "SHA384", 0, 0},   {"RS512", KTY_RSA, "SHA512", 0, 0},
    {"ES256", KTY_EC, "SHA256", 0, 256}, {"ES384", KTY_EC, "SHA384", 0, 384},
};

static const alg_t *
find_alg(const char *name)
{
    for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++)
        if (strcmp(name, algs[i].name) == 0)
            return &algs[i];
    return NULL;
}

int
wire_keyset_add_jwks(wire_keyset_t *ks, const char *text, size_t len, const char **why)
{
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL), *keys, *jwk;
    size_t i, before = ks->n;
    int rc = 0;

    *why = NULL;
    keys = json_object_get(root, "keys");
    if (!json_is_array(keys) || json_array_size(keys) == 0) {
        *why = "not a JSON Web Key Set ({\"keys\": [...]} with at least one key)";
        json_decref(root);
        return -EINVAL;
    }
    json_array_foreach(keys, i, jwk)
    {
        const char *kty = json_string_value(json_object_get(jwk, "kty"));
        json_t *kidv = json_object_get(jwk, "kid"), *use = json_object_get(jwk, "use");
        const char *kid = json_string_value(kidv);

        if (!json_is_object(jwk) || kty == NULL || (kidv && !json_is_string(kidv)) ||
            (kid && (strlen(kid) == 0 || strlen(kid) > 128)) ||
            (use && !(json_is_string(use) && strcmp(json_string_value(use), "sig") == 0))) {
            *why = "a key is not an object with kty (and a kid string, use \"sig\")";
            rc = -EINVAL;
            break;
        }
        if (strcmp(kty, "oct") == 0) {
            size_t kn = 0;
            unsigned char *k = b64_member(jwk, "k", &kn);
            rc = k ? add_oct(ks, k, kn, kid, NULL) : -EINVAL;
            if (k)
                OPENSSL_cleanse(k, kn);
            free(k);
        } else if (strcmp(kty, "RSA") == 0) {
            rc = add_rsa(ks, jwk, kid);
        } else if (strcmp(kty, "EC") == 0) {
            rc = add_ec(ks, jwk, kid);
        } else {
            rc = -EINVAL;
        }
        if (rc == 0 && json_object_get(jwk, "alg") != NULL) {
            const char *ka = json_string_value(json_object_get(jwk, "alg"));
            const alg_t *a = ka ? find_alg(ka) : NULL;
            jwk_t *k = &ks->keys[ks->n - 1];
            if (a == NULL || a->kty != k->kty || (a->kty == KTY_EC && a->ec_bits != k->curve_bits))
                rc = -EINVAL; /* an alg this key cannot be used with */
            else
                snprintf(k->alg, sizeof k->alg, "%s", ka);
        }
        if (rc != 0) {
            *why = "a key does not load (oct needs k; RSA n and e, 2048 bits or more; EC crv "
                   "P-256 or P-384, x and y)";
            break;
        }
    }
    if (rc != 0) { /* all or nothing */
        while (ks->n > before)
            key_clear(&ks->keys[--ks->n]);
        ERR_clear_error();
    }
    json_decref(root);
    return rc;
}

size_t
wire_keyset_size(const wire_keyset_t *ks)
{
    return ks ? ks->n : 0;
}

/* ---- verification ---- */

static int
verify_mac(jwk_t *k, const alg_t *a, const char *input, size_t ilen, const unsigned char *sig,
           size_t slen)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t mlen = 0;
    EVP_MAC_CTX *ctx = k->mac[a->mdi];

    /* no key: the one the context was initialised with */
    if (EVP_MAC_init(ctx, NULL, 0, NULL) != 1 ||
        EVP_MAC_update(ctx, (const unsigned char *)input, ilen) != 1 ||
        EVP_MAC_final(ctx, mac, &mlen, sizeof mac) != 1)
        return 0;
    return mlen == slen && CRYPTO_memcmp(mac, sig, mlen) == 0;
}

static int
verify_pkey(jwk_t *k, const alg_t *a, const char *input, size_t ilen, const unsigned char *sig,
            size_t slen)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char der[160];
    const unsigned char *s = sig;
    size_t sn = slen;
    int ok = 0;

    if (md == NULL)
        return 0;
    if (a->kty == KTY_EC) {
        /* JWS carries r||s; OpenSSL wants DER */
        size_t half = (size_t)a->ec_bits / 8;
        ECDSA_SIG *es = ECDSA_SIG_new();
        unsigned char *p = der;
        BIGNUM *r, *ss;
        int dn;
        if (es == NULL || slen != 2 * half) {
            ECDSA_SIG_free(es);
            EVP_MD_CTX_free(md);
            return 0;
        }
        r = BN_bin2bn(sig, (int)half, NULL);
        ss = BN_bin2bn(sig + half, (int)half, NULL);
        if (r == NULL || ss == NULL || ECDSA_SIG_set0(es, r, ss) != 1) {
            BN_free(r);
            BN_free(ss);
            ECDSA_SIG_free(es);
            EVP_MD_CTX_free(md);
            return 0;
        }
        dn = i2d_ECDSA_SIG(es, NULL);
        if (dn <= 0 || (size_t)dn > sizeof der || i2d_ECDSA_SIG(es, &p) != dn) {
            ECDSA_SIG_free(es);
            EVP_MD_CTX_free(md);
            return 0;
        }
        ECDSA_SIG_free(es);
        s = der;
        sn = (size_t)dn;
    }
    ok = EVP_DigestVerifyInit_ex(md, NULL, a->md, NULL, NULL, k->pkey, NULL) == 1 &&
         EVP_DigestVerify(md, s, sn, (const unsigned char *)input, ilen) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

static unsigned
role_bit(const char *name)
{
    if (strcmp(name, "service") == 0)
        return WIRE_ROLE_SERVICE;
    if (strcmp(name, "admin") == 0)
        return WIRE_ROLE_ADMIN;
    if (strcmp(name, "ops") == 0)
        return WIRE_ROLE_OPS;
    return 0;
}

/* An integer claim: 1 and *v, 0 absent, -1 of another type. */
static int
int_claim(json_t *claims, const char *name, long long *v)
{
    json_t *j = json_object_get(claims, name);
    if (j == NULL)
        return 0;
    if (json_is_integer(j)) {
        *v = (long long)json_integer_value(j);
        return 1;
    }
    return -1;
}

/* `aud`: a string, or an array of strings, naming `want`. */
static int
aud_ok(json_t *aud, const char *want)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    for (size_t i = 0; json_is_array(aud) && i < json_array_size(aud); i++) {
        json_t *v = json_array_get(aud, i);
        if (json_is_string(v) && strcmp(json_string_value(v), want) == 0)
            return 1;
    }
    return 0;
}

static int
claims_check(const wire_keyset_t *ks, json_t *c, time_t now, wire_claims_t *out,
             long long *nbf_out, const char **why)
{
    long long exp = 0, nbf = 0;
    json_t *sub = json_object_get(c, "sub"), *roles = json_object_get(c, "roles"), *r;
    size_t i;

    if (!json_is_object(c)) {
        *why = "claims are not a JSON object";
        return -EINVAL;
    }
    if (int_claim(c, "exp", &exp) != 1) {
        *why = "exp missing or not an integer";
        return -EINVAL;
    }
    if (exp <= (long long)now) {
        *why = "token expired";
        return -EINVAL;
    }
    switch (int_claim(c, "nbf", &nbf)) {
    case -1: *why = "nbf is not an integer"; return -EINVAL;
    case 1:
        if (nbf > (long long)now) {
            *why = "token not valid yet (nbf)";
            return -EINVAL;
        }
        break;
    default: break;
    }
    if (ks->iss && !(json_is_string(json_object_get(c, "iss")) &&
                     strcmp(json_string_value(json_object_get(c, "iss")), ks->iss) == 0)) {
        *why = "iss is not the expected issuer";
        return -EINVAL;
    }
    if (ks->aud && !aud_ok(json_object_get(c, "aud"), ks->aud)) {
        *why = "aud does not name this hub";
        return -EINVAL;
    }
    if (!json_is_string(sub) || !wire_valid_name_id(json_string_value(sub), json_string_length(sub))) {
        *why = "sub missing or not a valid id";
        return -EINVAL;
    }
    out->roles = 0;
    if (roles != NULL) {
        if (!json_is_array(roles)) {
            *why = "roles is not an array";
            return -EINVAL;
        }
        json_array_foreach(roles, i, r)
        {
            if (!json_is_string(r)) {
                *why = "roles holds a non-string";
                return -EINVAL;
            }
            out->roles |= role_bit(json_string_value(r));
        }
    }
    memcpy(out->sub, json_string_value(sub), json_string_length(sub) + 1);
    out->exp = exp;
    *nbf_out = nbf;
    return 0;
}

/* Keeps a token that verified (the cache is made on the first one: a key
 * set that never verifies a token, as the one of wire_jwt_verify often,
 * allocates none). */
static void
keep(wire_keyset_t *ks, const char *token, size_t len, long long nbf, const wire_claims_t *claims)
{
    if (ks->cache == NULL && (ks->cache = wire__tokcache_new()) == NULL)
        return;
    wire__tokcache_put(ks->cache, token, len, nbf, claims);
}

void
wire_keyset_cache_stats(const wire_keyset_t *ks, uint64_t *hits, uint64_t *misses)
{
    int some = ks != NULL && ks->cache != NULL;

    *hits = some ? ks->cache->hits : 0;
    *misses = some ? ks->cache->misses : 0;
}

int
wire_jwt_verify_keys(wire_keyset_t *ks, const char *token, size_t len, time_t now,
                     wire_claims_t *out, const char **why)
{
    /* each part decodes to at most 3/4 of the token (WIRE_TOKEN_MAX) */
    unsigned char hbuf[WIRE_TOKEN_MAX], pbuf[WIRE_TOKEN_MAX], sig[WIRE_TOKEN_MAX];
    const char *d1, *d2;
    long hn, pn, sn;
    json_t *header = NULL, *claims = NULL;
    const alg_t *a = NULL;
    const char *alg, *kid;
    long long nbf = 0;
    int verified = 0, rc = -EINVAL;

    *why = "malformed token";
    if (ks == NULL || ks->n == 0) {
        *why = "no keys configured";
        return -EINVAL;
    }
    if (token == NULL || len == 0 || len > WIRE_TOKEN_MAX) {
        *why = len ? "token too long" : "empty token";
        return -EINVAL;
    }
    if (ks->cache != NULL && wire__tokcache_get(ks->cache, token, len, now, out))
        return 0;
    d1 = memchr(token, '.', len);
    d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
    if (d1 == NULL || d2 == NULL || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)) != NULL)
        return -EINVAL;
    hn = b64url_decode(token, (size_t)(d1 - token), hbuf, sizeof hbuf);
    pn = b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), pbuf, sizeof pbuf);
    sn = b64url_decode(d2 + 1, len - (size_t)(d2 + 1 - token), sig, sizeof sig);
    if (hn <= 0 || pn <= 0 || sn <= 0)
        return -EINVAL;
    header = json_loadb((const char *)hbuf, (size_t)hn, JSON_REJECT_DUPLICATES, NULL);
    alg = json_string_value(json_object_get(header, "alg"));
    kid = json_string_value(json_object_get(header, "kid"));
    a = alg ? find_alg(alg) : NULL;
    if (a == NULL) {
        *why = "alg missing or not accepted (none included)";
        goto done;
    }
    if (json_object_get(header, "kid") && kid == NULL)
        goto done;
    if (json_object_get(header, "crit") != NULL) {
        /* RFC 7515 §4.1.11: extensions we would have to understand */
        *why = "crit header: extensions not supported";
        goto done;
    }
    /* the alg decides the key type; kid, when given, the key */
    for (size_t i = 0; i < ks->n && !verified; i++) {
        jwk_t *k = &ks->keys[i];
        if (k->kty != a->kty || (a->kty == KTY_EC && k->curve_bits != a->ec_bits))
            continue;
        if (kid != NULL && (k->kid == NULL || strcmp(k->kid, kid) != 0))
            continue;
        if (k->alg[0] != '\0' && strcmp(k->alg, a->name) != 0)
            continue;
        verified = a->kty == KTY_OCT
                       ? verify_mac(k, a, token, (size_t)(d2 - token), sig, (size_t)sn)
                       : verify_pkey(k, a, token, (size_t)(d2 - token), sig, (size_t)sn);
    }
    if (!verified) {
        *why = "bad signature, or no key for its alg and kid";
        goto done;
    }
    claims = json_loadb((const char *)pbuf, (size_t)pn, JSON_REJECT_DUPLICATES, NULL);
    if (claims == NULL) {
        *why = "claims are not JSON";
        goto done;
    }
    rc = claims_check(ks, claims, now, out, &nbf, why);
    if (rc == 0)
        keep(ks, token, len, nbf, out);
done:
    if (rc != 0)
        ERR_clear_error(); /* a failed verify or decode leaves OpenSSL errors queued */
    json_decref(header);
    json_decref(claims);
    return rc;
}
