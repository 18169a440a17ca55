/*
 * fuzz_route: the Redis payloads that pick a user room: `tradestate`
 * (gw__route_tradestate, JSON) and `canceledtrades` (gw__route_canceled,
 * plain text), both on the same input.
 *
 * Checks: the steamId buffer is exactly GW_ID_MAX + 1 bytes (ASan sees a
 * write past it); an accepted id is NUL-terminated, 1..64 of [A-Za-z0-9];
 * a canceledtrades id appears verbatim in the payload, and only
 * whitespace and one pair of quotes surround it.
 */
#include "fuzz.h"
#include "gw_int.h"

#include <jansson.h>

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    json_object_seed(1); /* the same hash order every run: reproducible */
    return 0;
}

static int
is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = fuzz_dup(data, size);
    char *sid = malloc(GW_ID_MAX + 1);
    size_t n;

    FUZZ_CHECK(sid != NULL);

    memset(sid, 0x7f, GW_ID_MAX + 1);
    if (gw__route_tradestate(in, size, sid) == GW_OK) {
        n = strnlen(sid, GW_ID_MAX + 1);
        FUZZ_CHECK(n <= GW_ID_MAX);
        FUZZ_CHECK(gw__valid_user_id(sid, n));
    }

    memset(sid, 0x7f, GW_ID_MAX + 1);
    if (gw__route_canceled(in, size, sid) == GW_OK) {
        const char *at;
        size_t b, e;
        n = strnlen(sid, GW_ID_MAX + 1);
        FUZZ_CHECK(n <= GW_ID_MAX);
        FUZZ_CHECK(gw__valid_user_id(sid, n));
        at = memmem(in, size, sid, n);
        FUZZ_CHECK(at != NULL);
        /* what surrounds the (first) occurrence: whitespace, and at most one
         * quote each side, matched */
        b = (size_t)(at - in);
        e = b + n;
        {
            int qb = b > 0 && in[b - 1] == '"', qe = e < size && in[e] == '"';
            FUZZ_CHECK(qb == qe);
            if (qb) {
                b--;
                e++;
            }
        }
        for (size_t i = 0; i < b; i++)
            FUZZ_CHECK(is_ws(in[i]));
        for (size_t i = e; i < size; i++)
            FUZZ_CHECK(is_ws(in[i]));
    }

    free(sid);
    free(in);
    return 0;
}
