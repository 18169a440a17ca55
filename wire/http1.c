/*
 * wire/http1.c: the head of an HTTP/1.x request (http1.h).
 *
 * One pass over the bytes: the blank line is found first (bounded by
 * `max`), then the request line and each header line are checked within
 * it. Nothing is copied; a refusal says which rule was broken.
 */
#include "http1.h"

#include "hex.h"

#include <string.h>
#include <strings.h>

/* RFC 9110 §5.6.2 tchar */
static int
is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int
span_is(wire_span_t s, const char *lit)
{
    size_t n = strlen(lit);
    return s.n == n && strncasecmp(s.p, lit, n) == 0;
}

/* Whether the comma-separated list `v` has the token `tok` (any case). */
static int
list_has(wire_span_t v, const char *tok)
{
    size_t i = 0;

    while (i < v.n) {
        size_t a, b;
        while (i < v.n && (v.p[i] == ' ' || v.p[i] == '\t' || v.p[i] == ','))
            i++;
        a = i;
        while (i < v.n && v.p[i] != ',')
            i++;
        b = i;
        while (b > a && (v.p[b - 1] == ' ' || v.p[b - 1] == '\t'))
            b--;
        if (span_is((wire_span_t){v.p + a, b - a}, tok))
            return 1;
    }
    return 0;
}

static const struct {
    const char *name;
    int method;
} methods[] = {
    {"GET", WIRE_HTTP_GET},         {"POST", WIRE_HTTP_POST},   {"OPTIONS", WIRE_HTTP_OPTIONS},
    {"PUT", WIRE_HTTP_PUT},         {"PATCH", WIRE_HTTP_PATCH}, {"DELETE", WIRE_HTTP_DELETE},
    {"CONNECT", WIRE_HTTP_CONNECT}, {"HEAD", WIRE_HTTP_HEAD},
};

static int
method_of(const char *p, size_t n)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (strlen(methods[i].name) == n && memcmp(methods[i].name, p, n) == 0)
            return methods[i].method;
    return WIRE_HTTP_OTHER; /* methods are case-sensitive (RFC 9110 §9.1) */
}

/* "METHOD SP target SP HTTP/1.x" in [p, e). 0, or a refusal. */
static int
request_line(const char *p, const char *e, wire_http_head_t *h, const char **why)
{
    const char *m = p, *t, *v;
    size_t i;

    while (p < e && is_tchar((unsigned char)*p))
        p++;
    if (p == m || p == e || *p != ' ') {
        *why = "malformed request line";
        return -WIRE_HTTP_BAD;
    }
    h->method = method_of(m, (size_t)(p - m));
    t = ++p;
    while (p < e && (unsigned char)*p > ' ' && *p != 0x7f)
        p++;
    if (p == t || p == e || *p != ' ') {
        *why = "malformed request line";
        return -WIRE_HTTP_BAD;
    }
    h->target = (wire_span_t){t, (size_t)(p - t)};
    v = ++p;
    if (e - v != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' || v[5] < '0' || v[5] > '9' ||
        v[7] < '0' || v[7] > '9') {
        *why = "malformed request line";
        return -WIRE_HTTP_BAD;
    }
    if (v[5] != '1') {
        *why = "HTTP/1.0 and HTTP/1.1 only";
        return v[5] == '0' ? -WIRE_HTTP_BAD : -WIRE_HTTP_VERSION;
    }
    h->minor = v[7] == '0' ? 0 : 1;
    /* origin-form ("/path?query"), or "*" for OPTIONS; CONNECT's
     * authority-form is kept whole (the hub refuses CONNECT anyway) */
    if (t[0] == '/') {
        for (i = 0; i < h->target.n && t[i] != '?'; i++)
            ;
        h->path = (wire_span_t){t, i};
        if (i < h->target.n)
            h->query = (wire_span_t){t + i + 1, h->target.n - i - 1};
    } else if (!(h->target.n == 1 && t[0] == '*') && h->method != WIRE_HTTP_CONNECT) {
        *why = "the request target must be a path";
        return -WIRE_HTTP_BAD;
    }
    return 0;
}

static int
parse_length(wire_span_t v, unsigned long long *out)
{
    unsigned long long n = 0;

    if (v.n == 0 || v.n > 18)
        return -1; /* 18 digits: no overflow, far above any limit */
    for (size_t i = 0; i < v.n; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return -1;
        n = n * 10 + (unsigned long long)(v.p[i] - '0');
    }
    *out = n;
    return 0;
}

/* One "name: value" line in [p, e). 0, or a refusal. */
static int
header_line(const char *p, const char *e, wire_http_head_t *h, int *conn_close, int *conn_keep,
            int *conn_upgrade, wire_span_t *upgrade, const char **why)
{
    const char *n = p, *v;
    wire_span_t name, val;

    while (p < e && is_tchar((unsigned char)*p))
        p++;
    if (p == n || p == e || *p != ':') {
        *why = "malformed header line";
        return -WIRE_HTTP_BAD;
    }
    name = (wire_span_t){n, (size_t)(p - n)};
    for (v = p + 1; v < e && (*v == ' ' || *v == '\t'); v++)
        ;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    for (const char *q = v; q < e; q++)
        if (((unsigned char)*q < ' ' && *q != '\t') || *q == 0x7f) {
            *why = "control character in a header";
            return -WIRE_HTTP_BAD;
        }
    val = (wire_span_t){v, (size_t)(e - v)};
    if (span_is(name, "content-length")) {
        unsigned long long len;
        if (h->has_length || parse_length(val, &len) != 0) {
            *why = "bad Content-Length";
            return -WIRE_HTTP_BAD;
        }
        h->has_length = 1;
        h->length = len;
    } else if (span_is(name, "transfer-encoding")) {
        h->chunked = 1;
    } else if (span_is(name, "connection")) {
        *conn_close |= list_has(val, "close");
        *conn_keep |= list_has(val, "keep-alive");
        *conn_upgrade |= list_has(val, "upgrade");
    } else if (span_is(name, "upgrade")) {
        h->upgrade = 1;
        *upgrade = val;
    } else if (span_is(name, "authorization")) {
        h->authorization = val;
    } else if (span_is(name, "origin")) {
        h->origin = val;
    } else if (span_is(name, "access-control-request-headers")) {
        h->ac_request_headers = val;
    } else if (span_is(name, "host")) {
        if (h->host.p != NULL) {
            *why = "more than one Host"; /* RFC 9112 §3.2 */
            return -WIRE_HTTP_BAD;
        }
        h->host = val;
    } else if (span_is(name, "expect")) {
        h->expect_continue = span_is(val, "100-continue");
    }
    return 0;
}

int
wire_http_parse(const char *buf, size_t len, size_t max, wire_http_head_t *h, const char **why)
{
    const char *p = buf, *e, *end, *line;
    int conn_close = 0, conn_keep = 0, conn_upgrade = 0, rc;
    wire_span_t upgrade = {NULL, 0};
    size_t skip = 0;

    memset(h, 0, sizeof *h);
    *why = NULL;
    /* empty lines before a request line are ignored (RFC 9112 §2.2) */
    while (skip + 1 < len && buf[skip] == '\r' && buf[skip + 1] == '\n' && skip < max)
        skip += 2;
    p = buf + skip;
    len -= skip;
    max = max > skip ? max - skip : 0;
    end = NULL;
    for (size_t i = 3; i < len && i < max; i++)
        if (p[i] == '\n' && p[i - 1] == '\r' && p[i - 2] == '\n' && p[i - 3] == '\r') {
            end = p + i + 1;
            break;
        }
    if (end == NULL) {
        if (len >= max) {
            *why = "request head too large";
            return -WIRE_HTTP_TOO_LARGE;
        }
        return 0;
    }
    /* the request line */
    e = memchr(p, '\n', (size_t)(end - p));
    if (e == p || e[-1] != '\r') {
        *why = "malformed request line";
        return -WIRE_HTTP_BAD;
    }
    if ((rc = request_line(p, e - 1, h, why)) != 0)
        return rc;
    /* the header lines, up to the blank one */
    for (line = e + 1; line < end - 2; line = e + 1) {
        e = memchr(line, '\n', (size_t)(end - line));
        if (e == line || e[-1] != '\r') {
            *why = "bare LF in the head";
            return -WIRE_HTTP_BAD;
        }
        if (*line == ' ' || *line == '\t') {
            *why = "folded header line"; /* obs-fold, RFC 9112 §5.2 */
            return -WIRE_HTTP_BAD;
        }
        if ((rc = header_line(line, e - 1, h, &conn_close, &conn_keep, &conn_upgrade, &upgrade,
                              why)) != 0)
            return rc;
    }
    if (h->chunked && h->has_length) {
        *why = "both Content-Length and Transfer-Encoding";
        return -WIRE_HTTP_BAD;
    }
    if (h->minor == 1 && h->host.p == NULL) {
        *why = "no Host"; /* RFC 9112 §3.2 */
        return -WIRE_HTTP_BAD;
    }
    h->keep_alive = h->minor == 1 ? !conn_close : conn_keep && !conn_close;
    h->websocket = h->upgrade && conn_upgrade && list_has(upgrade, "websocket");
    h->head_len = skip + (size_t)(end - p);
    h->skip = skip;
    return 1;
}

int
wire_http_decode(wire_span_t in, char *out, size_t cap)
{
    size_t o = 0;

    if (cap == 0)
        return -1;
    for (size_t i = 0; i < in.n; i++) {
        unsigned char c = (unsigned char)in.p[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= in.n)
                return -1;
            hi = wire__hexval((unsigned char)in.p[i + 1]);
            lo = wire__hexval((unsigned char)in.p[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        }
        if (c < ' ' || c == 0x7f || o + 1 >= cap)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return (int)o;
}

int
wire_http_query_arg(wire_span_t query, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name), i = 0;

    if (query.p == NULL)
        return -1;
    while (i <= query.n) {
        size_t a = i, eq;
        while (i < query.n && query.p[i] != '&')
            i++;
        /* [a, i) is one "k=v" or "k" */
        for (eq = a; eq < i && query.p[eq] != '='; eq++)
            ;
        if (eq - a == nlen && memcmp(query.p + a, name, nlen) == 0) {
            wire_span_t v = {query.p + (eq < i ? eq + 1 : i), eq < i ? i - eq - 1 : 0};
            int n = wire_http_decode(v, out, cap);
            return n < 0 ? -2 : n;
        }
        i++;
    }
    return -1;
}
