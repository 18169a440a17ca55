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

/* "host[:port]" or "[v6]:port" of s[p..end) into *host (new) and *port
 * (left as it is when absent). 0, or UV_EINVAL with *err. */
static int
parse_hostport(const char *p, const char *end, char **host, int *port, const char **err)
{
    const char *hostend, *portp = NULL;
    long v;

    if (p < end && *p == '[') {
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (rb == NULL || rb == p + 1) {
            *err = "bad IPv6 host in URL";
            return UV_EINVAL;
        }
        hostend = rb + 1;
        if (hostend < end) {
            if (*hostend != ':') {
                *err = "junk after IPv6 host in URL";
                return UV_EINVAL;
            }
            portp = hostend + 1;
        }
        if (portp != NULL &&
            (parse_uint(portp, (size_t)(end - portp), 65535, &v) != 0 || v == 0)) {
            *err = "bad port in URL";
            return UV_EINVAL;
        }
        *host = util_strndup(p + 1, (size_t)(rb - p - 1));
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        hostend = colon ? colon : end;
        if (hostend == p) {
            *err = "URL has no host";
            return UV_EINVAL;
        }
        for (const char *q = p; q < hostend; q++) {
            char c = *q;
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == '_')) {
                *err = "bad character in URL host";
                return UV_EINVAL;
            }
        }
        if (colon)
            portp = colon + 1;
        if (portp != NULL &&
            (parse_uint(portp, (size_t)(end - portp), 65535, &v) != 0 || v == 0)) {
            *err = "bad port in URL";
            return UV_EINVAL;
        }
        *host = util_strndup(p, (size_t)(hostend - p));
    }
    if (portp != NULL)
        *port = (int)v;
    return 0;
}

void
bus_url_free(bus_url_t *u)
{
    for (size_t i = 0; i < u->nsentinels; i++)
        free(u->sentinel_hosts[i]);
    free(u->sentinel_hosts);
    free(u->sentinel_ports);
    free(u->master);
    free(u->host);
    free(u->user);
    free(u->pass);
    memset(u, 0, sizeof *u);
}

/* "host[:port],host[:port]..." of s[p..end) into u's sentinels. */
static int
parse_sentinels(const char *p, const char *end, bus_url_t *u, const char **err)
{
    size_t n = 1;

    for (const char *q = p; q < end; q++)
        n += *q == ',';
    if (n > 16) {
        *err = "more than 16 sentinels in URL";
        return UV_EINVAL;
    }
    u->sentinel_hosts = util_calloc(n, sizeof *u->sentinel_hosts);
    u->sentinel_ports = util_calloc(n, sizeof *u->sentinel_ports);
    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        u->sentinel_ports[u->nsentinels] = 26379;
        if (parse_hostport(p, e, &u->sentinel_hosts[u->nsentinels],
                           &u->sentinel_ports[u->nsentinels], err) != 0)
            return UV_EINVAL;
        u->nsentinels++;
        if (comma == NULL)
            return 0;
        p = comma + 1;
    }
}

int
bus_url_parse(const char *url, bus_url_t *out, const char **err)
{
    static const char scheme[] = "redis://", sentinel[] = "redis+sentinel://";
    const char *p, *end, *at, *slash;
    bus_url_t u = {.port = 6379};
    int is_sentinel = url != NULL && strncmp(url, sentinel, sizeof sentinel - 1) == 0;
    long v;

    if (url == NULL || (!is_sentinel && strncmp(url, scheme, sizeof scheme - 1) != 0)) {
        *err = "URL must start with redis:// or redis+sentinel://";
        return UV_EINVAL;
    }
    p = url + (is_sentinel ? sizeof sentinel : sizeof scheme) - 1;
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
    if (is_sentinel) {
        if (parse_sentinels(p, slash, &u, err) != 0)
            goto fail;
        /* /<master>[/db] */
        if (slash == end || slash + 1 == end) {
            *err = "a redis+sentinel:// URL names its master: .../<master-name>";
            goto fail;
        }
        p = slash + 1;
        slash = memchr(p, '/', (size_t)(end - p));
        if (slash == NULL)
            slash = end;
        if (slash == p || slash - p > 64 || strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                           "0123456789._-") < (size_t)(slash - p)) {
            *err = "bad master name in URL";
            goto fail;
        }
        u.master = util_strndup(p, (size_t)(slash - p));
        u.port = 0;
    } else if (parse_hostport(p, slash, &u.host, &u.port, err) != 0) {
        goto fail;
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
