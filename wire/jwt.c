/*
 * wire/jwt.c: HS256 tokens signed over libjwt 1.10 (`coordhub token`, the
 * tests), and verified against one secret through keys.c (libjwt 1.10
 * compares MACs with strcmp and accepts whichever HMAC the token names:
 * verification is ours).
 */
#include "wire.h"

#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/*
 * Verifies an HS256 JWT against one secret: a key set of that secret alone
 * (keys.c does the work, as for the hub's own set).
 */
int
wire_jwt_verify(const char *secret, const char *token, size_t len, time_t now, wire_claims_t *out,
                const char **why)
{
    wire_keyset_t *ks;
    int rc;

    if (secret == NULL || secret[0] == '\0') {
        *why = "no secret configured";
        return -EINVAL;
    }
    if (wire_keyset_new(NULL, NULL, &ks) != 0 || wire_keyset_add_secret(ks, secret) != 0) {
        wire_keyset_free(ks);
        *why = "out of memory";
        return -ENOMEM;
    }
    rc = wire_jwt_verify_keys(ks, token, len, now, out, why);
    wire_keyset_free(ks);
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
