/*
 * bus/url.c: the redis:// URL parser. Pure over its input; allocates only
 * the strings of a successful parse.
 */
#include "bus.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

static int
parse_uint(const char *s, size_t n, long max, long *out)
{
    long v = 0;
    if (n == 0 || n > 10)
        return UV_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return UV_EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    if (v > max)
        return UV_EINVAL;
    *out = v;
    return 0;
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 32;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into a new string; NULL on a bad escape or NUL. */
static char *
pct_decode(const char *s, size_t n)
{
    char *d = util_malloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi, lo;
            if (i + 2 >= n)
                goto bad;
            hi = hexval(s[i + 1]);
            lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                goto bad;
            d[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            d[o++] = s[i];
        }
    }
    d[o] = '\0';
    return d;
bad:
    free(d);
    return NULL;
}

void
bus_url_free(bus_url_t *u)
{
    free(u->host);
    free(u->user);
    free(u->pass);
    memset(u, 0, sizeof *u);
}

int
bus_url_parse(const char *url, bus_url_t *out, const char **err)
{
    static const char scheme[] = "redis://";
    const char *p, *end, *at, *hostend, *portp = NULL, *slash;
    bus_url_t u = {.port = 6379};
    long v;

    if (url == NULL || strncmp(url, scheme, sizeof scheme - 1) != 0) {
        *err = "URL must start with redis://";
        return UV_EINVAL;
    }
    p = url + sizeof scheme - 1;
    end = p + strlen(p);
    if (end - p > 1024) {
        *err = "URL too long";
        return UV_EINVAL;
    }
    slash = memchr(p, '/', (size_t)(end - p));
    if (slash == NULL)
        slash = end;
    /* userinfo: the last '@' before the path (a password may contain '@' only
     * percent-encoded, but be lenient as redis-cli is) */
    at = NULL;
    for (const char *q = p; q < slash; q++)
        if (*q == '@')
            at = q;
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon != NULL) {
            if (colon > p && (u.user = pct_decode(p, (size_t)(colon - p))) == NULL)
                goto bad_userinfo;
            if ((u.pass = pct_decode(colon + 1, (size_t)(at - colon - 1))) == NULL)
                goto bad_userinfo;
            if (u.pass[0] == '\0') { /* "redis://:@host": no password, no AUTH "" */
                free(u.pass);
                u.pass = NULL;
            }
        } else if (at > p) {
            /* redis://secret@host: a lone userinfo is the password, as
             * redis-cli and most clients read it */
            if ((u.pass = pct_decode(p, (size_t)(at - p))) == NULL)
                goto bad_userinfo;
        }
        p = at + 1;
    }
    if (p < slash && *p == '[') {
        const char *rb = memchr(p, ']', (size_t)(slash - p));
        if (rb == NULL || rb == p + 1) {
            *err = "bad IPv6 host in URL";
            goto fail;
        }
        u.host = util_strndup(p + 1, (size_t)(rb - p - 1));
        hostend = rb + 1;
        if (hostend < slash) {
            if (*hostend != ':') {
                *err = "junk after IPv6 host in URL";
                goto fail;
            }
            portp = hostend + 1;
        }
    } else {
        const char *colon = memchr(p, ':', (size_t)(slash - p));
        hostend = colon ? colon : slash;
        if (hostend == p) {
            *err = "URL has no host";
            goto fail;
        }
        for (const char *q = p; q < hostend; q++) {
            char c = *q;
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == '_')) {
                *err = "bad character in URL host";
                goto fail;
            }
        }
        u.host = util_strndup(p, (size_t)(hostend - p));
        if (colon)
            portp = colon + 1;
    }
    if (portp != NULL) {
        if (parse_uint(portp, (size_t)(slash - portp), 65535, &v) != 0 || v == 0) {
            *err = "bad port in URL";
            goto fail;
        }
        u.port = (int)v;
    }
    if (slash < end && slash + 1 < end) {
        if (parse_uint(slash + 1, (size_t)(end - slash - 1), 1000000, &v) != 0) {
            *err = "bad database number in URL";
            goto fail;
        }
        u.db = (int)v;
    }
    *out = u;
    return 0;
bad_userinfo:
    *err = "bad percent-escape in URL credentials";
fail:
    bus_url_free(&u);
    return UV_EINVAL;
}
