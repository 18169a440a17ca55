/*
 * locks/validate.c: the checks on what a client sends to the lock routes.
 * Pure functions over (buf, len); the JSON is parsed with jansson.
 */
#include "locks.h"

#include <jansson.h>
#include <string.h>
#include <uv.h>

/* Every refusal is UV_EINVAL with `*err` set (docs/errors.md). */

int
lock_valid_name(const char *s, size_t n, const char **err)
{
    if (n == 0 || n > LOCK_NAME_MAX) {
        *err = "lock name must be 1-200 characters";
        return UV_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == ':' || c == '_' || c == '.' || c == '-' || c == '{' || c == '}')) {
            *err = "lock name may hold only A-Za-z0-9:_.-{}";
            return UV_EINVAL;
        }
    }
    if (n >= 9 && memcmp(s, "coordhub:", 9) == 0) {
        *err = "names beginning coordhub: are reserved for the hub";
        return UV_EINVAL;
    }
    return 0;
}

/* A JSON object, or NULL with *err set. */
static json_t *
body_object(const char *body, size_t len, const char **err)
{
    json_t *o;
    if (len == 0) {
        *err = "a JSON object body is required";
        return NULL;
    }
    o = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    if (o == NULL) {
        *err = "body is not valid JSON";
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        *err = "body must be a JSON object";
        return NULL;
    }
    return o;
}

/* An integer field in [min, max]; absent gives `def` (or an error if def < 0). */
static int
int_field(json_t *o, const char *key, long long min, long long max, long long def, long long *out,
          const char **err, const char *msg)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL) {
        if (def < 0) {
            *err = msg;
            return UV_EINVAL;
        }
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        *err = msg;
        return UV_EINVAL;
    }
    *out = json_integer_value(v);
    return 0;
}

static int
token_field(json_t *o, char token[LOCK_TOKEN_MAX + 1], const char **err)
{
    json_t *v = json_object_get(o, "token");
    size_t n;
    if (!json_is_string(v) || (n = json_string_length(v)) == 0 || n > LOCK_TOKEN_MAX ||
        strlen(json_string_value(v)) != n) {
        *err = "token must be the string returned by the acquire";
        return UV_EINVAL;
    }
    memcpy(token, json_string_value(v), n + 1);
    return 0;
}

int
lock_parse_acquire(const char *body, size_t len, lock_acquire_args_t *out, const char **err)
{
    json_t *o = body_object(body, len, err), *owner;
    int rc = UV_EINVAL;

    if (o == NULL)
        return UV_EINVAL;
    memset(out, 0, sizeof *out);
    if (int_field(o, "ttl_ms", 1, LOCK_TTL_MAX, -1, &out->ttl_ms, err,
                  "ttl_ms must be an integer from 1 to 86400000") != 0 ||
        int_field(o, "wait_ms", 0, LOCK_WAIT_MAX, 0, &out->wait_ms, err,
                  "wait_ms must be an integer from 0 to 60000") != 0)
        goto done;
    owner = json_object_get(o, "owner");
    if (owner != NULL) {
        size_t n;
        if (!json_is_string(owner) || (n = json_string_length(owner)) > LOCK_OWNER_MAX ||
            strlen(json_string_value(owner)) != n) {
            *err = "owner must be a string of at most 128 characters";
            goto done;
        }
        memcpy(out->owner, json_string_value(owner), n + 1);
    }
    rc = 0;
done:
    json_decref(o);
    return rc;
}

int
lock_parse_extend(const char *body, size_t len, char token[LOCK_TOKEN_MAX + 1], long long *ttl_ms,
                  const char **err)
{
    json_t *o = body_object(body, len, err);
    int rc;
    if (o == NULL)
        return UV_EINVAL;
    rc = token_field(o, token, err);
    if (rc == 0)
        rc = int_field(o, "ttl_ms", 1, LOCK_TTL_MAX, -1, ttl_ms, err,
                       "ttl_ms must be an integer from 1 to 86400000");
    json_decref(o);
    return rc;
}

int
lock_parse_release(const char *body, size_t len, char token[LOCK_TOKEN_MAX + 1], const char **err)
{
    json_t *o = body_object(body, len, err);
    int rc;
    if (o == NULL)
        return UV_EINVAL;
    rc = token_field(o, token, err);
    json_decref(o);
    return rc;
}
