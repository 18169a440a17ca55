/*
 * wire/offset.c: the recovery offsets of SPEC §9, "<anchor>-<count>"
 * (docs/recovery.md). A client sends back what it was given, or anything
 * else: every byte is checked, and both numbers stay below 2^53 so that
 * Redis's Lua (doubles) compares them exactly.
 */
#include "wire.h"

#include <errno.h>

#define OFFSET_NUM_MAX ((UINT64_C(1) << 53) - 1)

/* Digits of s[*i..n) up to `stop` (or the end) as a number without a
 * leading zero (0 itself allowed); advances *i. 0 or -EINVAL. */
static int
number(const char *s, size_t n, size_t *i, char stop, uint64_t *out)
{
    size_t start = *i;
    uint64_t v = 0;

    while (*i < n && s[*i] != stop) {
        unsigned d = (unsigned char)s[*i] - '0';
        if (d > 9 || *i - start >= 16)
            return -EINVAL;
        v = v * 10 + d;
        (*i)++;
    }
    if (*i == start || (s[start] == '0' && *i - start > 1) || v > OFFSET_NUM_MAX)
        return -EINVAL;
    *out = v;
    return 0;
}

int
wire_offset_parse(const char *s, size_t n, uint64_t *anchor, uint64_t *count)
{
    size_t i = 0;

    if (s == NULL || n == 0 || n > WIRE_OFFSET_MAX)
        return -EINVAL;
    if (number(s, n, &i, '-', anchor) != 0 || i == n || *anchor == 0)
        return -EINVAL;
    i++; /* the '-' */
    if (number(s, n, &i, '\0', count) != 0 || i != n)
        return -EINVAL;
    return 0;
}
