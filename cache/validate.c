/*
 * cache/validate.c: configuration keys, categories and PUT bodies; the L2
 * value format. Pure functions.
 */
#include "cache.h"
#include "util.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static int
valid_id(const char *s, size_t n, size_t max)
{
    if (n == 0 || n > max)
        return UV_EINVAL;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == ':' || c == '-'))
            return UV_EINVAL;
    }
    return 0;
}

int
cache_valid_key(const char *s, size_t n)
{
    return valid_id(s, n, CACHE_KEY_MAX);
}

int
cache_valid_category(const char *s, size_t n)
{
    return valid_id(s, n, CACHE_CATEGORY_MAX);
}

int
cache_parse_put(const char *body, size_t len, char **value, char **category, const char **err)
{
    json_t *o, *v, *cat;
    char *text;

    *value = NULL;
    *category = NULL;
    o = len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    if (!json_is_object(o)) {
        *err = "body must be a JSON object {\"value\": ..., \"category\": ...}";
        json_decref(o);
        return UV_EINVAL;
    }
    v = json_object_get(o, "value");
    if (v == NULL) {
        *err = "value is required (any JSON, null included)";
        json_decref(o);
        return UV_EINVAL;
    }
    cat = json_object_get(o, "category");
    if (cat != NULL &&
        (!json_is_string(cat) ||
         (json_string_length(cat) > 0 &&
          cache_valid_category(json_string_value(cat), json_string_length(cat)) != 0))) {
        *err = "category must be a string of 0-64 characters of A-Za-z0-9_.:-";
        json_decref(o);
        return UV_EINVAL;
    }
    text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text == NULL || strlen(text) > CACHE_VALUE_MAX) {
        *err = "value too large";
        free(text);
        json_decref(o);
        return UV_EINVAL;
    }
    *value = text;
    if (cat != NULL)
        *category = util_strdup(json_string_value(cat));
    json_decref(o);
    return 0;
}

char *
cache_l2_to_json(const char *raw, size_t len)
{
    json_t *j = json_loadb(raw, len, JSON_DECODE_ANY, NULL);
    char *out;

    if (j == NULL) {
        /* a legacy plain string: served as a JSON string (U+FFFD for bytes
         * that are not UTF-8) */
        char *clean = util_malloc(len * 3 + 1);
        size_t cl = util_utf8_sanitize(clean, raw, len);
        j = json_stringn(clean, cl);
        free(clean);
    }
    out = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : util_strdup("null");
    json_decref(j);
    return out;
}

void
cache_doc_free(cache_doc_t *d)
{
    free(d->key);
    free(d->value);
    free(d->category);
    free(d->prev_category);
    memset(d, 0, sizeof *d);
}

void
cache_doc_copy(cache_doc_t *dst, const cache_doc_t *src)
{
    dst->key = util_strdup(src->key ? src->key : "");
    dst->value = util_strdup(src->value ? src->value : "null");
    dst->category = util_strdup(src->category ? src->category : "");
    dst->version = src->version;
    dst->updated_at_ms = src->updated_at_ms;
    dst->prev_category = src->prev_category ? util_strdup(src->prev_category) : NULL;
}
