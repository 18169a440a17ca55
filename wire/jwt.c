/*
 * wire/jwt.c: HS256 tokens, verified and signed over libjwt 1.10.
 *
 * libjwt 1.10 does the base64url and HMAC work only: it accepts whichever
 * HMAC algorithm the token names and validates no claim. So everything the
 * hub relies on is checked here, on the claims libjwt parsed: the
 * algorithm is pinned to HS256 after decoding, `exp` must be a JSON integer
 * in the future, `sub` a valid name id, `roles` an array of strings. The
 * token is copied into a bounded, NUL-terminated buffer first because
 * libjwt reads C strings and our callers hold (buf, len) views.
 */
#include "wire.h"

#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static int
is_b64url(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/*
 * A cheap shape check before libjwt sees the bytes: three base64url
 * segments separated by exactly two dots, no NUL, nothing else. It keeps
 * hostile input away from the library's parsers and makes the NUL rule
 * explicit.
 */
static int
token_shape_ok(const char *t, size_t len)
{
    size_t dots = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c == '.')
            dots++;
        else if (!is_b64url(c))
            return 0;
    }
    return dots == 2 && t[0] != '.';
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

/*
 * Reads the claims of a signature-checked token into `out`, from the tree
 * libjwt already built (the getters check the JSON type; only `roles`, when
 * present, is dumped and re-read). A token whose claims are not a JSON
 * object does not decode at all.
 */
static int
claims_read(jwt_t *jwt, time_t now, wire_claims_t *out, const char **why)
{
    const char *sub;
    char *roles_text;
    json_t *roles, *r;
    long exp;
    size_t sublen, i;
    int rc = 0;

    errno = 0;
    exp = jwt_get_grant_int(jwt, "exp");
    if (errno != 0) {
        *why = "exp missing or not an integer";
        return -EINVAL;
    }
    if (exp <= (long)now) {
        *why = "token expired";
        return -EINVAL;
    }
    sub = jwt_get_grant(jwt, "sub");
    if (sub == NULL) {
        *why = "sub missing or not a string";
        return -EINVAL;
    }
    sublen = strlen(sub);
    if (!wire_valid_name_id(sub, sublen)) {
        *why = "sub is not a valid id";
        return -EINVAL;
    }
    out->roles = 0;
    roles_text = jwt_get_grants_json(jwt, "roles"); /* NULL: no roles */
    if (roles_text != NULL) {
        roles = json_loads(roles_text, JSON_DECODE_ANY, NULL);
        free(roles_text);
        if (!json_is_array(roles)) {
            *why = "roles is not an array";
            rc = -EINVAL;
        } else {
            json_array_foreach(roles, i, r)
            {
                if (!json_is_string(r)) {
                    *why = "roles holds a non-string";
                    rc = -EINVAL;
                    break;
                }
                out->roles |= role_bit(json_string_value(r));
            }
        }
        json_decref(roles);
        if (rc != 0)
            return rc;
    }
    memcpy(out->sub, sub, sublen);
    out->sub[sublen] = '\0';
    out->exp = (long long)exp;
    return 0;
}

/*
 * Verifies an HS256 JWT of `len` bytes (not necessarily NUL-terminated)
 * against `secret` at `now`. Returns 0 with `out` filled, or -EINVAL with
 * `*why` a static reason; `out` is unspecified on failure.
 */
int
wire_jwt_verify(const char *secret, const char *token, size_t len, time_t now, wire_claims_t *out,
                const char **why)
{
    char buf[WIRE_TOKEN_MAX + 1];
    size_t keylen;
    jwt_t *jwt = NULL;
    int rc = -EINVAL;

    *why = "malformed token";
    if (secret == NULL || (keylen = strlen(secret)) == 0 || keylen > INT_MAX) {
        *why = "no secret configured";
        return -EINVAL;
    }
    if (token == NULL || len == 0) {
        *why = "empty token";
        return -EINVAL;
    }
    if (len > WIRE_TOKEN_MAX) {
        *why = "token too long";
        return -EINVAL;
    }
    if (!token_shape_ok(token, len))
        return -EINVAL;
    memcpy(buf, token, len);
    buf[len] = '\0';

    /* With a key given libjwt refuses alg "none" itself (EINVAL), but we
     * never rely on that: the alg is pinned below. */
    if (jwt_decode(&jwt, buf, (const unsigned char *)secret, (int)keylen) != 0 || jwt == NULL) {
        *why = "bad signature or malformed token";
        goto done;
    }
    if (jwt_get_alg(jwt) != JWT_ALG_HS256) {
        *why = "alg is not HS256";
        goto done;
    }
    rc = claims_read(jwt, now, out, why);
done:
    if (jwt)
        jwt_free(jwt);
    return rc;
}

/* Appends the roles of a "a,b,c" list of [a-z]+ names to `arr`; -EINVAL
 * for anything else (empty names included). */
static int
roles_parse(const char *csv, json_t *arr)
{
    const char *p = csv;
    while (*p) {
        const char *start = p;
        while (*p >= 'a' && *p <= 'z')
            p++;
        if (p == start || (*p != ',' && *p != '\0'))
            return -EINVAL;
        if (json_array_append_new(arr, json_stringn(start, (size_t)(p - start))) != 0)
            return -ENOMEM;
        if (*p == ',' && *++p == '\0')
            return -EINVAL; /* trailing comma */
    }
    return 0;
}

/*
 * Signs an HS256 token: claims sub, iat (= now), exp (= now + ttl_s) and,
 * when `roles_csv` is neither NULL nor empty, roles (a JSON array). Returns 0
 * with a malloc'd token in `*out` (free() it), or -EINVAL for bad input
 * (no secret, sub not a name id, roles not a comma list of [a-z]+, ttl_s
 * <= 0 or overflowing exp), or another negative errno from libjwt.
 */
int
wire_jwt_sign(const char *secret, const char *sub, const char *roles_csv, long long ttl_s,
              time_t now, char **out)
{
    json_t *claims = NULL, *roles = NULL;
    char *claims_text = NULL, *tok = NULL;
    jwt_t *jwt = NULL;
    size_t keylen;
    int rc;

    if (out == NULL)
        return -EINVAL;
    *out = NULL;
    if (secret == NULL || (keylen = strlen(secret)) == 0 || keylen > INT_MAX || sub == NULL ||
        !wire_valid_name_id(sub, strlen(sub)) || ttl_s <= 0 || (long long)now < 0 ||
        ttl_s > LLONG_MAX - (long long)now)
        return -EINVAL;

    claims = json_object();
    if (claims == NULL)
        return -ENOMEM;
    if (roles_csv != NULL && roles_csv[0] != '\0') {
        roles = json_array();
        if (roles == NULL) {
            rc = -ENOMEM;
            goto done;
        }
        if ((rc = roles_parse(roles_csv, roles)) != 0)
            goto done;
        if (json_object_set(claims, "roles", roles) != 0) {
            rc = -ENOMEM;
            goto done;
        }
    }
    if (json_object_set_new(claims, "sub", json_string(sub)) != 0 ||
        json_object_set_new(claims, "iat", json_integer((json_int_t)now)) != 0 ||
        json_object_set_new(claims, "exp", json_integer((json_int_t)now + ttl_s)) != 0 ||
        (claims_text = json_dumps(claims, JSON_COMPACT)) == NULL) {
        rc = -ENOMEM;
        goto done;
    }
    if ((rc = jwt_new(&jwt)) != 0 || (rc = jwt_add_grants_json(jwt, claims_text)) != 0 ||
        (rc = jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret, (int)keylen)) != 0) {
        rc = -(rc > 0 ? rc : EINVAL);
        goto done;
    }
    tok = jwt_encode_str(jwt);
    if (tok == NULL) {
        rc = errno > 0 ? -errno : -ENOMEM;
        goto done;
    }
    *out = tok;
    rc = 0;
done:
    if (jwt)
        jwt_free(jwt);
    free(claims_text);
    json_decref(roles);
    json_decref(claims);
    return rc;
}
