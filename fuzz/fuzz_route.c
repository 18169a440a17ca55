/*
 * fuzz_route: the Redis payloads that pick a user room: `tradestate`
 * (wire_route_tradestate, JSON) and `canceledtrades` (wire_route_canceled,
 * plain text), both on the same input.
 *
 * The allocation-free JSON scanner is checked against jansson on the same
 * bytes: both accept or both refuse, but for three known differences
 * (jansson refuses numbers too big for its types and NUL in object keys,
 * which JSON.parse and the scanner take; it skips raw NUL bytes between
 * tokens, which JSON.parse and the scanner refuse); and the top-level
 * steamId the scanner reports is the one jansson's tree holds.
 *
 * Checks: the steamId buffer is exactly WIRE_ID_MAX + 1 bytes (ASan sees a
 * write past it); an accepted id is NUL-terminated, 1..64 of [A-Za-z0-9];
 * a canceledtrades id appears verbatim in the payload, and only
 * whitespace and one pair of quotes surround it.
 */
#include "fuzz.h"
#include "wire.h"

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

static void
differential(const char *in, size_t size)
{
    json_error_t err;
    json_t *root = json_loadb(in, size, JSON_ALLOW_NUL, &err), *v;
    wire_jscan_t js;
    int ok = wire_json_scan_object(in, size, "steamId", &js) == 0;

    /* jansson's reader skips raw NUL bytes between tokens; JSON has none */
    if (root != NULL)
        FUZZ_CHECK(ok == json_is_object(root) || (!ok && memchr(in, 0, size) != NULL));
    else if (ok)
        FUZZ_CHECK(strstr(err.text, "too big") != NULL || strstr(err.text, "overflow") != NULL ||
                   strstr(err.text, "NUL byte in object key") != NULL);
    if (ok && root != NULL) {
        v = json_object_get(root, "steamId");
        FUZZ_CHECK((js.count > 0) == (v != NULL));
        if (js.count == 1 && js.kind == WIRE_JSCAN_STRING) {
            FUZZ_CHECK(json_is_string(v));
            if (!js.escaped) {
                FUZZ_CHECK(js.len == json_string_length(v) &&
                           memcmp(js.value, json_string_value(v), js.len) == 0);
            } else {
                char buf[WIRE_ID_MAX];
                size_t n = wire_json_unescape_ascii(js.value, js.len, buf, sizeof buf);
                if (n <= sizeof buf)
                    FUZZ_CHECK(n == json_string_length(v) &&
                               memcmp(buf, json_string_value(v), n) == 0);
            }
        } else if (js.count == 1 && js.kind == WIRE_JSCAN_INTEGER) {
            FUZZ_CHECK(json_is_integer(v));
        } else if (js.count == 1) {
            FUZZ_CHECK(!json_is_string(v) && !json_is_integer(v));
        }
    }
    json_decref(root);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = fuzz_dup(data, size);
    char *sid = malloc(WIRE_ID_MAX + 1);
    size_t n;

    FUZZ_CHECK(sid != NULL);

    differential(in, size);

    memset(sid, 0x7f, WIRE_ID_MAX + 1);
    if (wire_route_tradestate(in, size, sid) == 0) {
        n = strnlen(sid, WIRE_ID_MAX + 1);
        FUZZ_CHECK(n <= WIRE_ID_MAX);
        FUZZ_CHECK(wire_valid_user_id(sid, n));
    }

    memset(sid, 0x7f, WIRE_ID_MAX + 1);
    if (wire_route_canceled(in, size, sid) == 0) {
        const char *at;
        size_t b, e;
        n = strnlen(sid, WIRE_ID_MAX + 1);
        FUZZ_CHECK(n <= WIRE_ID_MAX);
        FUZZ_CHECK(wire_valid_user_id(sid, n));
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
