/*
 * fuzz_offset: the recovery offsets "<anchor>-<count>" (wire_offset_parse,
 * docs/recovery.md), which come from clients in ?offset= and in a
 * Socket.IO CONNECT's auth payload.
 *
 * Checks: the input sits in a buffer of exactly `size` bytes (ASan sees a
 * read past it); the answer is 0 or -EINVAL; an accepted offset has both
 * numbers below 2^53 and an anchor of at least 1, and printing it back
 * ("%llu-%llu") gives exactly the input bytes, so that one offset has one
 * spelling; and the parser accepts exactly what a model written from the
 * contract accepts (1-16 digits, no leading zero, at most 40 bytes).
 */
#include "fuzz.h"
#include "wire.h"

#include <errno.h>

#define MAX53 ((UINT64_C(1) << 53) - 1)

/* The contract, spelled differently from the parser: a canonical decimal
 * (no leading zero) compared as a string against 2^53 - 1. */
static int
number_ok(const char *s, size_t n)
{
    static const char max[] = "9007199254740991";

    if (n == 0 || n > sizeof max - 1 || (n > 1 && s[0] == '0'))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return n < sizeof max - 1 || memcmp(s, max, n) <= 0;
}

static int
model(const char *s, size_t n)
{
    const char *dash;
    size_t alen;

    if (n == 0 || n > WIRE_OFFSET_MAX) /* n == 0: fuzz_dup gave NULL */
        return 0;
    dash = memchr(s, '-', n);
    if (dash == NULL)
        return 0;
    alen = (size_t)(dash - s);
    return number_ok(s, alen) && !(alen == 1 && s[0] == '0') && number_ok(dash + 1, n - alen - 1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = fuzz_dup(data, size);
    uint64_t anchor = 0, count = 0;
    int rc = wire_offset_parse(in, size, &anchor, &count);

    FUZZ_CHECK(rc == 0 || rc == -EINVAL);
    FUZZ_CHECK((rc == 0) == model(in, size));
    if (rc == 0) {
        char back[2 * 20 + 2];
        int n = snprintf(back, sizeof back, "%llu-%llu", (unsigned long long)anchor,
                         (unsigned long long)count);

        FUZZ_CHECK(anchor >= 1 && anchor <= MAX53);
        FUZZ_CHECK(count <= MAX53);
        FUZZ_CHECK(size <= WIRE_OFFSET_MAX);
        FUZZ_CHECK(n > 0 && (size_t)n == size && memcmp(back, in, size) == 0);
    }
    free(in);
    return 0;
}
