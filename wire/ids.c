/*
 * wire/ids.c: the two identifier alphabets of the hub. User ids
 * (steamIds) name user rooms; name ids name bots and token subjects. Both
 * are checked over (buf, len) and never read past `n`.
 */
#include "wire.h"

static int
is_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* Returns 1 when s[0..n) is 1..WIRE_ID_MAX bytes of [A-Za-z0-9], else 0. */
int
wire_valid_user_id(const char *s, size_t n)
{
    if (s == NULL || n == 0 || n > WIRE_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_alnum((unsigned char)s[i]))
            return 0;
    return 1;
}

/* Returns 1 when s[0..n) is 1..WIRE_ID_MAX bytes of [A-Za-z0-9_.-], else 0. */
int
wire_valid_name_id(const char *s, size_t n)
{
    if (s == NULL || n == 0 || n > WIRE_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!is_alnum(c) && c != '_' && c != '.' && c != '-')
            return 0;
    }
    return 1;
}
