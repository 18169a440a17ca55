/*
 * wire/jscan.c: a JSON validator that allocates nothing, for the routing
 * path. The hub forwards a `tradestate` payload verbatim; all it needs is
 * to know the text is JSON a browser will parse, and which top-level
 * "steamId" the browser will see. Building a jansson tree for that cost a
 * fifth of the hub's CPU per unicast delivery; this is one pass over the
 * bytes with a bit stack for nesting.
 *
 * Accepted: RFC 8259 JSON text (only space, tab, CR and LF as whitespace;
 * strict number grammar; escapes \" \\ \/ \b \f \n \r \t \uXXXX),
 * strings in well-formed UTF-8 (no overlongs, no encoded surrogates,
 * nothing above U+10FFFF), no raw control bytes in strings, \u escapes
 * for surrogates only as high+low pairs, nesting at most WIRE_JSCAN_DEPTH.
 * Numbers of any magnitude are accepted, as JSON.parse accepts them.
 */
#include "wire.h"

#include "hex.h"

#include <errno.h>
#include <string.h>

static size_t
skip_ws(const char *s, size_t i, size_t n)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* The code unit of the four hex digits at s[i..i+4), or -1. */
static long
hex4(const char *s, size_t i, size_t n)
{
    long v = 0;
    if (i > n || n - i < 4)
        return -1;
    for (int k = 0; k < 4; k++) {
        int h = wire__hexval((unsigned char)s[i + k]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

/* The length of the well-formed UTF-8 sequence of two or more bytes at
 * s[i..n), or 0 (the table of well-formed sequences in RFC 3629 section 4). */
static size_t
utf8_seq(const unsigned char *s, size_t i, size_t n)
{
    unsigned char c = s[i], lo = 0x80, hi = 0xbf;
    size_t len;

    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if (n - i < len)
        return 0;
    if (s[i + 1] < lo || s[i + 1] > hi)
        return 0;
    for (size_t k = 2; k < len; k++)
        if (s[i + k] < 0x80 || s[i + k] > 0xbf)
            return 0;
    return len;
}

/*
 * Scans the string whose opening quote is at s[*i - 1]. On success *i is
 * just past the closing quote, *esc says whether it held an escape, and
 * returns 0; else -1.
 */
static int
scan_string(const char *str, size_t *i, size_t n, int *esc)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t p = *i;

    *esc = 0;
    while (p < n) {
        unsigned char c = s[p];
        if (c == '"') {
            *i = p + 1;
            return 0;
        }
        if (c < 0x20)
            return -1;
        if (c < 0x80 && c != '\\') {
            p++;
            continue;
        }
        if (c >= 0x80) {
            size_t len = utf8_seq(s, p, n);
            if (len == 0)
                return -1;
            p += len;
            continue;
        }
        /* an escape */
        *esc = 1;
        if (++p >= n)
            return -1;
        switch (s[p]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't': p++; break;
        case 'u': {
            long u = hex4(str, p + 1, n);
            if (u < 0 || (u >= 0xdc00 && u <= 0xdfff))
                return -1; /* a low surrogate alone */
            p += 5;
            if (u >= 0xd800 && u <= 0xdbff) {
                long lo;
                if (n - p < 6 || s[p] != '\\' || s[p + 1] != 'u')
                    return -1;
                lo = hex4(str, p + 2, n);
                if (lo < 0xdc00 || lo > 0xdfff)
                    return -1;
                p += 6;
            }
            break;
        }
        default: return -1;
        }
    }
    return -1;
}

static int
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Scans a number at s[*i]; *is_int says it had neither fraction nor
 * exponent. */
static int
scan_number(const char *s, size_t *i, size_t n, int *is_int)
{
    size_t p = *i;

    *is_int = 1;
    if (p < n && s[p] == '-')
        p++;
    if (p >= n || !is_digit(s[p]))
        return -1;
    if (s[p] == '0')
        p++;
    else
        while (p < n && is_digit(s[p]))
            p++;
    if (p < n && s[p] == '.') {
        *is_int = 0;
        if (++p >= n || !is_digit(s[p]))
            return -1;
        while (p < n && is_digit(s[p]))
            p++;
    }
    if (p < n && (s[p] == 'e' || s[p] == 'E')) {
        *is_int = 0;
        if (++p < n && (s[p] == '+' || s[p] == '-'))
            p++;
        if (p >= n || !is_digit(s[p]))
            return -1;
        while (p < n && is_digit(s[p]))
            p++;
    }
    *i = p;
    return 0;
}

static int
scan_literal(const char *s, size_t *i, size_t n)
{
    static const char *const lits[] = {"true", "false", "null"};
    for (size_t k = 0; k < 3; k++) {
        size_t l = strlen(lits[k]);
        if (n - *i >= l && memcmp(s + *i, lits[k], l) == 0) {
            *i += l;
            return 0;
        }
    }
    return -1;
}

/*
 * Decodes the escapes of a string body s[0..n) that wire_json_scan_object
 * accepted into out (cap bytes) as far as ASCII goes: returns the decoded
 * length, or cap + 1 when it does not fit or decodes to anything outside
 * ASCII (which no key or id we look for contains).
 */
size_t
wire_json_unescape_ascii(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;

    for (size_t p = 0; p < n; p++) {
        char c = s[p];
        if ((unsigned char)c >= 0x80)
            return cap + 1;
        if (c == '\\') {
            long u;
            if (++p >= n)
                return cap + 1; /* not from the scanner: it ends no body so */
            switch (s[p]) {
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'u':
                u = hex4(s, p + 1, n);
                if (u < 0 || u >= 0x80)
                    return cap + 1;
                c = (char)u;
                p += 4;
                break;
            default: c = s[p]; break; /* " \ / */
            }
        }
        if (o == cap)
            return cap + 1;
        out[o++] = c;
    }
    return o;
}

static int
key_is(const char *s, size_t n, int esc, const char *want)
{
    size_t wl = strlen(want);
    char buf[16];

    if (!esc)
        return n == wl && memcmp(s, want, wl) == 0;
    return wl <= sizeof buf && wire_json_unescape_ascii(s, n, buf, wl) == wl &&
           memcmp(buf, want, wl) == 0;
}

#define BIT_GET(st, d) ((st)[(d) >> 3] & (1u << ((d)&7)))
#define BIT_SET(st, d, v)                                                                          \
    ((v) ? ((st)[(d) >> 3] |= (unsigned char)(1u << ((d)&7)))                                      \
         : ((st)[(d) >> 3] &= (unsigned char)~(1u << ((d)&7))))

int
wire_json_scan_object(const char *s, size_t n, const char *key, wire_jscan_t *out)
{
    unsigned char stack[WIRE_JSCAN_DEPTH / 8]; /* 1: object, 0: array */
    size_t depth = 0, i;
    int watch = 0; /* the value being scanned is the top-level `key` */

    memset(out, 0, sizeof *out);
    if (s == NULL)
        return -EINVAL;
    i = skip_ws(s, 0, n);
    if (i >= n || s[i] != '{')
        return -EINVAL;

    for (;;) {
        /* a value starts at s[i] (after whitespace) */
        size_t start;
        int kind, esc, is_int;
        char c;

        i = skip_ws(s, i, n);
        if (i >= n)
            return -EINVAL;
        c = s[i];
        start = i;
        if (c == '{' || c == '[') {
            if (watch) {
                out->kind = WIRE_JSCAN_OTHER;
                watch = 0;
            }
            if (depth == WIRE_JSCAN_DEPTH)
                return -EINVAL;
            BIT_SET(stack, depth, c == '{');
            depth++;
            i = skip_ws(s, i + 1, n);
            if (i >= n)
                return -EINVAL;
            if (s[i] == (c == '{' ? '}' : ']')) {
                i++;
                depth--;
                goto after_value;
            }
            if (c == '{')
                goto member;
            continue;
        }
        if (c == '"') {
            i++;
            if (scan_string(s, &i, n, &esc) != 0)
                return -EINVAL;
            kind = WIRE_JSCAN_STRING;
            start++;
            if (watch) {
                out->value = s + start;
                out->len = i - 1 - start;
                out->escaped = esc;
            }
        } else if (c == '-' || is_digit(c)) {
            if (scan_number(s, &i, n, &is_int) != 0)
                return -EINVAL;
            kind = is_int ? WIRE_JSCAN_INTEGER : WIRE_JSCAN_OTHER;
            if (watch) {
                out->value = s + start;
                out->len = i - start;
            }
        } else {
            if (scan_literal(s, &i, n) != 0)
                return -EINVAL;
            kind = WIRE_JSCAN_OTHER;
        }
        if (watch) {
            out->kind = kind;
            watch = 0;
        }

    after_value:
        if (depth == 0)
            return skip_ws(s, i, n) == n ? 0 : -EINVAL;
        i = skip_ws(s, i, n);
        if (i >= n)
            return -EINVAL;
        if (s[i] == ',') {
            i++;
            if (BIT_GET(stack, depth - 1))
                goto member;
            continue;
        }
        if (s[i] != (BIT_GET(stack, depth - 1) ? '}' : ']'))
            return -EINVAL;
        i++;
        depth--;
        goto after_value;

    member:
        /* a "key": pair in an object, the key's quote at s[i] (after
         * whitespace) */
        i = skip_ws(s, i, n);
        if (i >= n || s[i] != '"')
            return -EINVAL;
        start = ++i;
        if (scan_string(s, &i, n, &esc) != 0)
            return -EINVAL;
        if (depth == 1 && key != NULL && key_is(s + start, i - 1 - start, esc, key)) {
            out->count++;
            watch = 1;
        }
        i = skip_ws(s, i, n);
        if (i >= n || s[i] != ':')
            return -EINVAL;
        i++;
    }
}
