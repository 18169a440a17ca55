/*
 * fuzz_jwt_claims: tokens that are validly signed with the secret but carry
 * fuzzed JSON, so the claim checks behind the signature get exercised.
 *
 * The input is the claims text, signed under the header
 * {"alg":"HS256","typ":"JWT"}; an input holding a NUL byte is
 * "<header>\0<claims>" instead, both fuzzed. The target base64url-encodes
 * both, signs with HMAC-SHA256 itself (libjwt would refuse to encode
 * non-JSON) and calls wire_jwt_verify.
 *
 * Checks, against an independent reading of the same claims with jansson:
 *   - accepted: the claims are a JSON object with no duplicate member
 *     whose exp is an integer after the clock, nbf absent or an integer
 *     not after it, sub a name id and roles absent or an array of
 *     strings, and the result
 *     holds exactly that sub, exp and role bits; the header's alg is HS256;
 *   - refused under the standard header: the claims are not all of that,
 *     even read strictly (duplicates refused), or the token is too long.
 */
#include "jwt_common.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

static const char default_header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    json_object_seed(1);
    return 0;
}

/* base64url without padding of s[0..n) appended at out; returns the end. */
static char *
b64url(char *out, const unsigned char *s, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t i = 0;

    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        *out++ = tab[v >> 18 & 63];
        *out++ = tab[v >> 12 & 63];
        *out++ = tab[v >> 6 & 63];
        *out++ = tab[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)s[i] << 16;
        *out++ = tab[v >> 18 & 63];
        *out++ = tab[v >> 12 & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
        *out++ = tab[v >> 18 & 63];
        *out++ = tab[v >> 12 & 63];
        *out++ = tab[v >> 6 & 63];
    }
    return out;
}

static size_t
b64len(size_t n)
{
    return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

/* The claims as wire_jwt_verify should see them, read with `flags`. */
static int
expect_claims(const char *c, size_t n, size_t flags, wire_claims_t *want)
{
    json_t *o = json_loadb(c, n, flags, NULL), *exp, *sub, *roles, *r;
    size_t i;
    int ok = 0;

    memset(want, 0, sizeof *want);
    if (!json_is_object(o))
        goto done;
    exp = json_object_get(o, "exp");
    sub = json_object_get(o, "sub");
    if (json_object_get(o, "nbf") != NULL &&
        !(json_is_integer(json_object_get(o, "nbf")) &&
          json_integer_value(json_object_get(o, "nbf")) <= (json_int_t)FUZZ_JWT_NOW))
        goto done;
    roles = json_object_get(o, "roles");
    if (!json_is_integer(exp) || json_integer_value(exp) <= (json_int_t)FUZZ_JWT_NOW)
        goto done;
    if (!json_is_string(sub) ||
        !wire_valid_name_id(json_string_value(sub), json_string_length(sub)))
        goto done;
    if (roles != NULL) {
        if (!json_is_array(roles))
            goto done;
        json_array_foreach(roles, i, r)
        {
            const char *s = json_string_value(r);
            if (s == NULL)
                goto done;
            if (strcmp(s, "service") == 0)
                want->roles |= WIRE_ROLE_SERVICE;
            else if (strcmp(s, "admin") == 0)
                want->roles |= WIRE_ROLE_ADMIN;
            else if (strcmp(s, "ops") == 0)
                want->roles |= WIRE_ROLE_OPS;
        }
    }
    memcpy(want->sub, json_string_value(sub), json_string_length(sub));
    want->exp = (long long)json_integer_value(exp);
    ok = 1;
done:
    json_decref(o);
    return ok;
}

/* Does the header, read as libjwt reads it (last duplicate wins), name HS256? */
static int
header_is_hs256(const char *h, size_t n)
{
    json_t *o = json_loadb(h, n, 0, NULL);
    const char *alg = json_string_value(json_object_get(o, "alg"));
    int ok = alg != NULL && strcmp(alg, "HS256") == 0;
    json_decref(o);
    return ok;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    const char *hdr = default_header, *claims = (const char *)data;
    size_t hlen = sizeof default_header - 1, clen = size;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    char *tok, *p, *signed_end;
    size_t toklen;
    wire_claims_t cl, want;
    const char *why = NULL;
    int rc;

    if (nul != NULL) {
        hdr = (const char *)data;
        hlen = (size_t)(nul - data);
        claims = (const char *)nul + 1;
        clen = size - hlen - 1;
    }

    /* header.claims.signature, in a buffer of exactly its length */
    toklen = b64len(hlen) + 1 + b64len(clen) + 1 + b64len(32);
    tok = malloc(toklen);
    FUZZ_CHECK(tok != NULL);
    p = b64url(tok, (const unsigned char *)hdr, hlen);
    *p++ = '.';
    p = b64url(p, (const unsigned char *)claims, clen);
    signed_end = p;
    *p++ = '.';
    FUZZ_CHECK(HMAC(EVP_sha256(), FUZZ_JWT_SECRET, (int)strlen(FUZZ_JWT_SECRET),
                    (const unsigned char *)tok, (size_t)(signed_end - tok), mac, &maclen) != NULL &&
               maclen == 32);
    p = b64url(p, mac, maclen);
    FUZZ_CHECK((size_t)(p - tok) == toklen);

    memset(&cl, 0x55, sizeof cl);
    rc = wire_jwt_verify(FUZZ_JWT_SECRET, tok, toklen, FUZZ_JWT_NOW, &cl, &why);
    if (rc == 0) {
        fuzz_check_claims(&cl);
        FUZZ_CHECK(toklen <= WIRE_TOKEN_MAX);
        FUZZ_CHECK(header_is_hs256(hdr, hlen));
        FUZZ_CHECK(expect_claims(claims, clen, JSON_REJECT_DUPLICATES, &want));
        FUZZ_CHECK(strcmp(cl.sub, want.sub) == 0);
        FUZZ_CHECK(cl.exp == want.exp);
        FUZZ_CHECK(cl.roles == want.roles);
    } else {
        FUZZ_CHECK(why != NULL);
        if (nul == NULL && toklen <= WIRE_TOKEN_MAX)
            FUZZ_CHECK(!expect_claims(claims, clen, JSON_REJECT_DUPLICATES, &want));
    }
    free(tok);
    return 0;
}
