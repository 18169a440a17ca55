/*
 * fuzz_reserve: what clients send to the reservation routes: app and asset
 * ids (resv_valid_app / resv_valid_asset) and the reserve body
 * (resv_parse_reserve, whose result is freed with resv_reserve_args_free).
 *
 * Checks: the id checks agree with their rules (app 1..32 of
 * [A-Za-z0-9_-], asset 1..128 of [A-Za-z0-9_.-]); an accepted body holds
 * 1..1000 assets, each a valid asset id, none repeated, ttl_s 1..86400 and
 * an owner of at most 128 bytes; a refused one names the problem and
 * leaves nothing allocated (LeakSanitizer sees the rest).
 */
#include "fuzz.h"
#include "reserve.h"

#include <jansson.h>

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    json_object_seed(1);
    return 0;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = fuzz_dup(data, size);
    resv_reserve_args_t *r = malloc(sizeof *r);
    const char *err = NULL;
    int app_rule, asset_rule;

    FUZZ_CHECK(r != NULL);

    app_rule = size >= 1 && size <= RESV_APP_MAX && fuzz_only(in, size, FUZZ_ALNUM "_-");
    asset_rule = size >= 1 && size <= RESV_ASSET_MAX && fuzz_only(in, size, FUZZ_ALNUM "_.-");
    FUZZ_CHECK((resv_valid_app(in, size) == 0) == app_rule);
    FUZZ_CHECK((resv_valid_asset(in, size) == 0) == asset_rule);

    if (resv_parse_reserve(in, size, r, &err) == 0) {
        char **sorted;
        FUZZ_CHECK(r->nassets >= 1 && r->nassets <= RESV_ASSETS_MAX && r->assets != NULL);
        FUZZ_CHECK(r->ttl_s >= 1 && r->ttl_s <= RESV_TTL_S_MAX);
        FUZZ_CHECK(strnlen(r->owner, sizeof r->owner) <= RESV_OWNER_MAX);
        for (size_t i = 0; i < r->nassets; i++)
            FUZZ_CHECK(r->assets[i] != NULL &&
                       resv_valid_asset(r->assets[i], strlen(r->assets[i])) == 0);
        sorted = malloc(r->nassets * sizeof *sorted);
        FUZZ_CHECK(sorted != NULL);
        memcpy(sorted, r->assets, r->nassets * sizeof *sorted);
        qsort(sorted, r->nassets, sizeof *sorted, cmp_str);
        for (size_t i = 1; i < r->nassets; i++)
            FUZZ_CHECK(strcmp(sorted[i - 1], sorted[i]) != 0);
        free(sorted);
        resv_reserve_args_free(r);
        FUZZ_CHECK(r->assets == NULL && r->nassets == 0);
    } else {
        FUZZ_CHECK(err != NULL);
        FUZZ_CHECK(r->assets == NULL && r->nassets == 0);
    }

    free(r);
    free(in);
    return 0;
}
