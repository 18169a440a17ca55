/*
 * fuzz_escape: the two functions every hostile string passes through on
 * its way to a log line or a JSON answer: util_json_escape and
 * util_utf8_sanitize.
 *
 * Checks: json_escape never writes past `cap` (the output buffer is
 * exactly `cap` bytes, cap taken from the input's first byte so small and
 * odd capacities get tried), NUL-terminates within it and never cuts an
 * escape in half: its output, quoted, is valid JSON (jansson refuses bad
 * UTF-8 and raw control bytes); the full-size escape of the whole input
 * decodes back to the input when the input is valid UTF-8. utf8_sanitize
 * writes at most 3n + 1 bytes, NUL-terminated, and its output is valid
 * UTF-8.
 */
#include "fuzz.h"
#include "util.h"

#include <jansson.h>

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    json_object_seed(1);
    return 0;
}

/* Is out[0..n), between quotes, a JSON string? Returns its value or NULL. */
static json_t *
as_json_string(const char *out, size_t n)
{
    char *q = malloc(n + 2);
    json_t *j;
    FUZZ_CHECK(q != NULL);
    q[0] = '"';
    memcpy(q + 1, out, n);
    q[n + 1] = '"';
    j = json_loadb(q, n + 2, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    free(q);
    FUZZ_CHECK(json_is_string(j));
    return j;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t cap, n, w, big;
    char *in, *out, *san;
    json_t *j;

    if (size == 0)
        return 0;
    cap = data[0];
    in = fuzz_dup(data + 1, size - 1);
    n = size - 1;

    /* bounded escape into exactly `cap` bytes */
    out = malloc(cap); /* ASan: even a 0-byte block is one to overflow */
    FUZZ_CHECK(out != NULL || cap == 0);
    w = util_json_escape(out, cap, in, n);
    FUZZ_CHECK(cap == 0 ? w == 0 : w < cap && out[w] == '\0');
    json_decref(as_json_string(out, w));
    free(out);

    /* a full-size escape (6 bytes per input byte is the worst case) */
    big = n * 6 + 1;
    out = malloc(big);
    FUZZ_CHECK(out != NULL);
    w = util_json_escape(out, big, in, n);
    FUZZ_CHECK(w < big && out[w] == '\0');
    j = as_json_string(out, w);
    {
        /* valid UTF-8 (NULs included) round-trips exactly */
        json_t *orig = json_stringn(in, n); /* NULL if not valid UTF-8 */
        if (orig != NULL)
            FUZZ_CHECK(json_equal(orig, j));
        json_decref(orig);
    }
    json_decref(j);
    free(out);

    /* sanitize into exactly 3n + 1 bytes */
    san = malloc(3 * n + 1);
    FUZZ_CHECK(san != NULL);
    w = util_utf8_sanitize(san, in, n);
    FUZZ_CHECK(w <= 3 * n && san[w] == '\0');
    j = json_stringn(san, w); /* NULL if not valid UTF-8 */
    FUZZ_CHECK(j != NULL);
    json_decref(j);
    free(san);

    free(in);
    return 0;
}
