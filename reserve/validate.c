/*
 * reserve/validate.c: checks on app ids, asset ids and reserve bodies.
 * Pure over (buf, len).
 */
#include "reserve.h"
#include "util.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static int
valid_chars(const char *s, size_t n, size_t max, int dot)
{
    if (n == 0 || n > max)
        return UV_EINVAL;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || (dot && c == '.')))
            return UV_EINVAL;
    }
    return 0;
}

int
resv_valid_app(const char *s, size_t n)
{
    return valid_chars(s, n, RESV_APP_MAX, 0);
}

int
resv_valid_asset(const char *s, size_t n)
{
    return valid_chars(s, n, RESV_ASSET_MAX, 1);
}

void
resv_reserve_args_free(resv_reserve_args_t *a)
{
    for (size_t i = 0; i < a->nassets; i++)
        free(a->assets[i]);
    free(a->assets);
    a->assets = NULL;
    a->nassets = 0;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int
resv_parse_reserve(const char *body, size_t len, resv_reserve_args_t *out, const char **err)
{
    json_t *o, *assets, *ttl, *owner, *v;
    char **sorted = NULL;
    size_t i, n;

    memset(out, 0, sizeof *out);
    o = len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    if (!json_is_object(o)) {
        *err = "body must be a JSON object";
        goto fail;
    }
    assets = json_object_get(o, "assets");
    if (!json_is_array(assets) || (n = json_array_size(assets)) == 0 || n > RESV_ASSETS_MAX) {
        *err = "assets must be an array of 1 to 1000 asset ids";
        goto fail;
    }
    ttl = json_object_get(o, "ttl_s");
    if (!json_is_integer(ttl) || json_integer_value(ttl) < 1 ||
        json_integer_value(ttl) > RESV_TTL_S_MAX) {
        *err = "ttl_s must be an integer from 1 to 86400";
        goto fail;
    }
    out->ttl_s = json_integer_value(ttl);
    owner = json_object_get(o, "owner");
    if (owner != NULL) {
        size_t ol;
        if (!json_is_string(owner) || (ol = json_string_length(owner)) > RESV_OWNER_MAX ||
            strlen(json_string_value(owner)) != ol) {
            *err = "owner must be a string of at most 128 characters";
            goto fail;
        }
        memcpy(out->owner, json_string_value(owner), ol + 1);
    }
    out->assets = util_calloc(n, sizeof *out->assets);
    json_array_foreach(assets, i, v)
    {
        if (!json_is_string(v) ||
            resv_valid_asset(json_string_value(v), json_string_length(v)) != 0 ||
            strlen(json_string_value(v)) != json_string_length(v)) {
            *err = "asset ids are 1-128 characters of A-Za-z0-9_.-";
            goto fail;
        }
        out->assets[out->nassets++] = util_strdup(json_string_value(v));
    }
    /* a duplicate would make the all-or-nothing answer ambiguous */
    sorted = util_malloc(n * sizeof *sorted);
    memcpy(sorted, out->assets, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_str);
    for (i = 1; i < n; i++) {
        if (strcmp(sorted[i - 1], sorted[i]) == 0) {
            *err = "assets must not repeat";
            goto fail;
        }
    }
    free(sorted);
    json_decref(o);
    return 0;
fail:
    free(sorted);
    resv_reserve_args_free(out);
    json_decref(o);
    return UV_EINVAL;
}
