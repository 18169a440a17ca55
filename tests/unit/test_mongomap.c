/*
 * tests/unit/test_mongomap.c: the MongoDB store's document mapping
 * (cache/mongo_map.c), without a server: BSON documents of every shape in,
 * cache docs out; the findAndModify update document out, parsed back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <bson/bson.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"

static bson_t *
from_json(const char *text)
{
    bson_error_t err;
    bson_t *b = bson_new_from_json((const uint8_t *)text, -1, &err);
    if (b == NULL)
        fail_msg("bad test JSON %s: %s", text, err.message);
    return b;
}

static int
json_eq(const char *a, const char *b)
{
    json_t *ja = json_loads(a, JSON_DECODE_ANY, NULL), *jb = json_loads(b, JSON_DECODE_ANY, NULL);
    int eq = ja && jb && json_equal(ja, jb);
    json_decref(ja);
    json_decref(jb);
    return eq;
}

static void
test_to_doc(void **state)
{
    static const struct {
        const char *bson_json;
        const char *value;
        const char *category;
        long long version;
        long long at;
    } ok[] = {
        {"{\"_id\":\"tradeDisabled\",\"value\":true,\"category\":\"trade\",\"version\":{\"$"
         "numberLong\":"
         "\"7\"},\"updatedAt\":{\"$date\":{\"$numberLong\":\"1795300000000\"}}}",
         "true", "trade", 7, 1795300000000LL},
        {"{\"_id\":\"k\",\"value\":{\"a\":[1,2.5,\"x\",null]},\"version\":1}",
         "{\"a\":[1,2.5,\"x\",null]}", "", 1, 0},
        {"{\"_id\":\"k\",\"value\":\"s\",\"version\":{\"$numberInt\":\"3\"},\"category\":\"c\"}",
         "\"s\"", "c", 3, 0},
        {"{\"_id\":\"k\",\"value\":null,\"version\":2.0}", "null", "", 2, 0},
        {"{\"version\":1,\"value\":-5,\"_id\":\"a.b:c-d_e\",\"extra\":1}", "-5", "", 1, 0},
    };
    static const char *const bad[] = {
        "{\"value\":1,\"version\":1}",                     /* no _id */
        "{\"_id\":5,\"value\":1,\"version\":1}",           /* _id not a string */
        "{\"_id\":\"k\",\"version\":1}",                   /* no value */
        "{\"_id\":\"k\",\"value\":1}",                     /* no version */
        "{\"_id\":\"k\",\"value\":1,\"version\":\"1\"}",   /* version a string */
        "{\"_id\":\"k\",\"value\":1,\"version\":-1}",      /* negative version */
        "{\"_id\":\"bad key\",\"value\":1,\"version\":1}", /* not a valid key */
        "{}",
    };
    cache_doc_t d;
    (void)state;

    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        bson_t *b = from_json(ok[i].bson_json);
        if (cache_mongo_to_doc(b, &d) != 0)
            fail_msg("refused %s", ok[i].bson_json);
        if (!json_eq(d.value, ok[i].value))
            fail_msg("case %zu: value %s, want %s", i, d.value, ok[i].value);
        assert_string_equal(d.category, ok[i].category);
        assert_int_equal(d.version, ok[i].version);
        assert_int_equal(d.updated_at_ms, ok[i].at);
        cache_doc_free(&d);
        bson_destroy(b);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bson_t *b = from_json(bad[i]);
        if (cache_mongo_to_doc(b, &d) == 0)
            fail_msg("accepted %s", bad[i]);
        bson_destroy(b);
    }
}

static void
test_update_document(void **state)
{
    char *text = cache_mongo_update_json("{\"x\":[1,2]}", "pricing", 1795300000123LL);
    bson_t *b;
    bson_iter_t it, sub;
    (void)state;

    assert_non_null(text);
    b = from_json(text);
    /* $set.value is the value as a document, $set.category, a real date */
    assert_true(bson_iter_init_find(&it, b, "$set") && bson_iter_recurse(&it, &sub));
    assert_true(bson_iter_find(&sub, "value") && BSON_ITER_HOLDS_DOCUMENT(&sub));
    assert_true(bson_iter_init_find(&it, b, "$set") && bson_iter_recurse(&it, &sub));
    assert_true(bson_iter_find(&sub, "updatedAt") && BSON_ITER_HOLDS_DATE_TIME(&sub));
    assert_int_equal(bson_iter_date_time(&sub), 1795300000123LL);
    assert_true(bson_iter_init_find(&it, b, "$set") && bson_iter_recurse(&it, &sub));
    assert_true(bson_iter_find(&sub, "category") && BSON_ITER_HOLDS_UTF8(&sub));
    assert_string_equal(bson_iter_utf8(&sub, NULL), "pricing");
    /* the version grows atomically on the server */
    assert_true(bson_iter_init_find(&it, b, "$inc") && bson_iter_recurse(&it, &sub));
    assert_true(bson_iter_find(&sub, "version") && bson_iter_as_int64(&sub) == 1);
    assert_false(bson_iter_init_find(&it, b, "$setOnInsert"));
    bson_destroy(b);
    free(text);

    /* no category: kept on update, "" on insert */
    text = cache_mongo_update_json("\"s\"", NULL, 1);
    b = from_json(text);
    assert_true(bson_iter_init_find(&it, b, "$set") && bson_iter_recurse(&it, &sub));
    assert_false(bson_iter_find(&sub, "category"));
    assert_true(bson_iter_init_find(&it, b, "$setOnInsert"));
    bson_destroy(b);
    free(text);

    assert_null(cache_mongo_update_json("not json", "c", 1));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_to_doc),
        cmocka_unit_test(test_update_document),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
