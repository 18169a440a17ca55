/*
 * fuzz_config: the configuration API's input: keys and categories
 * (cache_valid_key / cache_valid_category), the PUT body
 * (cache_parse_put) and the L2 value format read back from Redis
 * (cache_l2_to_json, which must accept anything an admin tool SET).
 *
 * Checks: the id checks agree with their rule (1..64 of A-Za-z0-9_.:-); an
 * accepted PUT gives a value that is JSON (any type) of at most
 * CACHE_VALUE_MAX bytes and a category that is absent, empty or valid; a
 * refused one names the problem and allocates nothing; whatever L2 holds
 * comes back as JSON text. Everything returned is freed (LeakSanitizer).
 */
#include "cache.h"
#include "fuzz.h"

#include <jansson.h>

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    json_object_seed(1);
    return 0;
}

/* JSON text as the hub reads it back (cache.c: json_loads, JSON_DECODE_ANY);
 * `flags` may add JSON_ALLOW_NUL. */
static int
is_json(const char *s, size_t flags)
{
    json_t *j = json_loads(s, JSON_DECODE_ANY | flags, NULL);
    json_decref(j);
    return j != NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = fuzz_dup(data, size);
    char *value = (char *)"unset", *category = (char *)"unset", *l2;
    const char *err = NULL;
    int id_rule = size >= 1 && size <= 64 && fuzz_only(in, size, FUZZ_ALNUM "_.:-");

    FUZZ_CHECK((cache_valid_key(in, size) == 0) == id_rule);
    FUZZ_CHECK((cache_valid_category(in, size) == 0) == id_rule);

    if (cache_parse_put(in, size, &value, &category, &err) == 0) {
        FUZZ_CHECK(value != NULL && strlen(value) <= CACHE_VALUE_MAX);
        FUZZ_CHECK(is_json(value, 0));
        FUZZ_CHECK(category == NULL || category[0] == '\0' ||
                   cache_valid_category(category, strlen(category)) == 0);
        free(value);
        free(category);
    } else {
        FUZZ_CHECK(err != NULL);
        FUZZ_CHECK(value == NULL && category == NULL);
    }

    l2 = cache_l2_to_json(in, size);
    FUZZ_CHECK(l2 != NULL);
    /* always JSON, as the hub's readers parse it (a legacy value holding a
     * NUL byte comes back with "\u0000": they pass JSON_ALLOW_NUL) */
    FUZZ_CHECK(is_json(l2, JSON_ALLOW_NUL));
    free(l2);

    free(in);
    return 0;
}
