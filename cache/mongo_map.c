/*
 * cache/mongo_map.c: the MongoDB store's documents <-> cache_doc_t. Pure
 * (no server): unit-tested on its own.
 *
 *   {_id: <key>, value: <any>, category: <string>, version: <int>,
 *    updatedAt: <date>}
 */
#include "cache.h"
#include "util.h"

#include <bson/bson.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* The JSON text of one BSON value (relaxed extended JSON, so numbers stay
 * numbers), or NULL. */
static char *
value_to_json(const bson_value_t *v)
{
    bson_t wrap = BSON_INITIALIZER;
    char *ext, *out = NULL;
    json_t *j;

    bson_append_value(&wrap, "v", 1, v);
    ext = bson_as_relaxed_extended_json(&wrap, NULL);
    bson_destroy(&wrap);
    if (ext == NULL)
        return NULL;
    j = json_loads(ext, 0, NULL);
    bson_free(ext);
    if (json_is_object(j) && json_object_get(j, "v") != NULL)
        out = json_dumps(json_object_get(j, "v"), JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(j);
    return out;
}

int
cache_mongo_to_doc(const bson_t *b, cache_doc_t *out)
{
    bson_iter_t it;
    const char *id = NULL, *cat = "";
    char *value = NULL;
    long long version = -1, at = 0;

    memset(out, 0, sizeof *out);
    if (!bson_iter_init(&it, b))
        return UV_EINVAL;
    while (bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        if (strcmp(k, "_id") == 0 && BSON_ITER_HOLDS_UTF8(&it)) {
            id = bson_iter_utf8(&it, NULL);
        } else if (strcmp(k, "value") == 0) {
            free(value);
            value = value_to_json(bson_iter_value(&it));
        } else if (strcmp(k, "category") == 0 && BSON_ITER_HOLDS_UTF8(&it)) {
            cat = bson_iter_utf8(&it, NULL);
        } else if (strcmp(k, "version") == 0 &&
                   (BSON_ITER_HOLDS_INT32(&it) || BSON_ITER_HOLDS_INT64(&it) ||
                    BSON_ITER_HOLDS_DOUBLE(&it))) {
            version = bson_iter_as_int64(&it);
        } else if (strcmp(k, "updatedAt") == 0) {
            if (BSON_ITER_HOLDS_DATE_TIME(&it))
                at = bson_iter_date_time(&it);
            else if (BSON_ITER_HOLDS_INT64(&it) || BSON_ITER_HOLDS_INT32(&it))
                at = bson_iter_as_int64(&it);
        }
    }
    if (id == NULL || value == NULL || version < 0 || cache_valid_key(id, strlen(id)) != 0) {
        free(value);
        return UV_EINVAL;
    }
    out->key = util_strdup(id);
    out->value = value;
    out->category = util_strdup(cat);
    out->version = version;
    out->updated_at_ms = at;
    return 0;
}

char *
cache_mongo_update_json(const char *value, const char *category, long long now_ms)
{
    json_t *v = json_loads(value, JSON_DECODE_ANY, NULL), *set, *upd;
    char *out;

    if (v == NULL)
        return NULL;
    /* updatedAt as an extended-JSON date; the version grows atomically */
    {
        char ms[24];
        json_t *dt = json_object(), *date = json_object();
        snprintf(ms, sizeof ms, "%lld", now_ms);
        json_object_set_new(date, "$numberLong", json_string(ms));
        json_object_set_new(dt, "$date", date);
        set = json_object();
        json_object_set_new(set, "value", v);
        json_object_set_new(set, "updatedAt", dt);
    }
    if (category != NULL)
        json_object_set_new(set, "category", json_string(category));
    upd = json_pack("{s:o,s:{s:i}}", "$set", set, "$inc", "version", 1);
    if (category == NULL)
        json_object_set_new(upd, "$setOnInsert", json_pack("{s:s}", "category", ""));
    out = json_dumps(upd, JSON_COMPACT);
    json_decref(upd);
    return out;
}
