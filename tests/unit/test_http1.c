/*
 * tests/unit/test_http1.c: the HTTP/1.x request head parser (wire/http1.h):
 * wire_http_parse on whole heads, on every prefix of them, against its
 * `max`, and on the refusals RFC 9112 asks for; wire_http_decode and
 * wire_http_query_arg. Every input is placed against a PROT_NONE page
 * (guard.h), so that a read past its length crashes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "http1.h"

#define S(lit) lit, sizeof(lit) - 1
#define MAX 8192

/* One parse of s[0..n), placed against a guard page: the spans point into
 * `buf` until parsed_done. */
typedef struct parsed {
    guard_t g;
    const char *buf;
    wire_http_head_t h;
    const char *why;
    int rc;
} parsed_t;

static int
parse(parsed_t *p, const char *s, size_t n, size_t max)
{
    p->buf = guard_place(&p->g, s, n);
    assert_non_null(p->buf);
    memset(&p->h, 0x5a, sizeof p->h);
    p->why = NULL;
    p->rc = wire_http_parse(p->buf, n, max, &p->h, &p->why);
    if (p->rc < 0) {
        assert_true(p->rc == -WIRE_HTTP_BAD || p->rc == -WIRE_HTTP_TOO_LARGE ||
                    p->rc == -WIRE_HTTP_VERSION);
        assert_non_null(p->why);
    } else {
        assert_true(p->rc == 0 || p->rc == 1);
    }
    if (p->rc == 1)
        assert_true(p->h.head_len >= 4 && p->h.head_len <= n && p->h.head_len <= max &&
                    memcmp(p->buf + p->h.head_len - 4, "\r\n\r\n", 4) == 0);
    return p->rc;
}

static void
parsed_done(parsed_t *p)
{
    guard_release(&p->g);
}

/* Parses a whole head that must be accepted and be exactly s[0..n). */
static void
parse_head(parsed_t *p, const char *s, size_t n)
{
    if (parse(p, s, n, MAX) != 1)
        fail_msg("'%.*s' not accepted: rc %d (%s)", (int)n, s, p->rc, p->why ? p->why : "-");
    assert_int_equal(p->h.head_len, n);
}

static void
expect_span(const char *what, wire_span_t sp, const char *want)
{
    if (want == NULL) {
        if (sp.p != NULL)
            fail_msg("%s: '%.*s', want none", what, (int)sp.n, sp.p);
        return;
    }
    if (sp.p == NULL)
        fail_msg("%s: none, want '%s'", what, want);
    if (sp.n != strlen(want) || memcmp(sp.p, want, sp.n) != 0)
        fail_msg("%s: '%.*s', want '%s'", what, (int)sp.n, sp.p, want);
}

static void
test_get(void **state)
{
    static const char req[] = "GET /a/b?x=1&y=%2F HTTP/1.1\r\n"
                              "Host: example.com:8080\r\n"
                              "User-Agent: t/1\r\n"
                              "Authorization: Bearer abc.def\r\n"
                              "Origin: https://app.example\r\n"
                              "Access-Control-Request-Headers: content-type, x-id\r\n"
                              "\r\n";
    parsed_t p;
    (void)state;

    parse_head(&p, S(req));
    assert_int_equal(p.h.method, WIRE_HTTP_GET);
    expect_span("target", p.h.target, "/a/b?x=1&y=%2F");
    expect_span("path", p.h.path, "/a/b");
    expect_span("query", p.h.query, "x=1&y=%2F");
    assert_ptr_equal(p.h.target.p, p.buf + 4);
    assert_ptr_equal(p.h.path.p, p.h.target.p);
    assert_int_equal(p.h.minor, 1);
    assert_int_equal(p.h.keep_alive, 1);
    assert_int_equal(p.h.has_length, 0);
    assert_true(p.h.length == 0);
    assert_int_equal(p.h.chunked, 0);
    assert_int_equal(p.h.upgrade, 0);
    assert_int_equal(p.h.websocket, 0);
    assert_int_equal(p.h.expect_continue, 0);
    expect_span("host", p.h.host, "example.com:8080");
    expect_span("authorization", p.h.authorization, "Bearer abc.def");
    expect_span("origin", p.h.origin, "https://app.example");
    expect_span("acrh", p.h.ac_request_headers, "content-type, x-id");
    assert_null(p.why);
    parsed_done(&p);

    /* the smallest: no header at all (1.0 needs no Host) */
    parse_head(&p, S("GET / HTTP/1.0\r\n\r\n"));
    expect_span("path", p.h.path, "/");
    expect_span("query", p.h.query, NULL);
    expect_span("host", p.h.host, NULL);
    expect_span("authorization", p.h.authorization, NULL);
    assert_int_equal(p.h.minor, 0);
    assert_int_equal(p.h.keep_alive, 0);
    parsed_done(&p);
}

/* Complete heads, cut at every length: "need more" (0) until the last
 * byte, then the head; the same against a max of exactly the head. */
static void
test_prefixes(void **state)
{
    static const struct {
        const char *in;
        size_t len;
    } heads[] = {
        {S("GET /a?b=c HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n")},
        {S("\r\n\r\nPOST /x HTTP/1.0\r\nContent-Length: 3\r\n\r\n")},
        {S("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")},
        {S("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")},
        {S("GET / HTTP/1.0\r\n\r\n")},
    };
    (void)state;

    for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) {
        const char *s = heads[i].in;
        size_t len = heads[i].len;

        for (size_t n = 0; n < len; n++) {
            parsed_t p;
            size_t maxes[] = {MAX, len};
            for (size_t m = 0; m < 2; m++) {
                if (parse(&p, s, n, maxes[m]) != 0)
                    fail_msg("head %zu cut at %zu (max %zu): rc %d (%s)", i, n, maxes[m], p.rc,
                             p.why ? p.why : "-");
                parsed_done(&p);
            }
        }
        {
            parsed_t p;
            /* exactly max bytes of head: accepted; one byte fewer allowed:
             * too large, whether the blank line came or not */
            assert_int_equal(parse(&p, s, len, len), 1);
            assert_int_equal(p.h.head_len, len);
            parsed_done(&p);
            assert_int_equal(parse(&p, s, len, len - 1), -WIRE_HTTP_TOO_LARGE);
            parsed_done(&p);
            assert_int_equal(parse(&p, s, len - 1, len - 1), -WIRE_HTTP_TOO_LARGE);
            parsed_done(&p);
        }
    }
}

static void
test_too_large(void **state)
{
    char buf[MAX + 64];
    size_t n;
    parsed_t p;
    (void)state;

    /* a header that never ends */
    n = (size_t)snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nHost: h\r\nX: ");
    memset(buf + n, 'a', sizeof buf - n);
    assert_int_equal(parse(&p, buf, MAX - 1, MAX), 0);
    parsed_done(&p);
    assert_int_equal(parse(&p, buf, MAX, MAX), -WIRE_HTTP_TOO_LARGE);
    assert_string_not_equal(p.why, "");
    parsed_done(&p);
    assert_int_equal(parse(&p, buf, sizeof buf, MAX), -WIRE_HTTP_TOO_LARGE);
    parsed_done(&p);
    /* its blank line one byte past max */
    memcpy(buf + MAX - 3, "\r\n\r\n", 4);
    assert_int_equal(parse(&p, buf, MAX + 1, MAX), -WIRE_HTTP_TOO_LARGE);
    parsed_done(&p);
    assert_int_equal(parse(&p, buf, MAX + 1, MAX + 1), 1);
    assert_int_equal(p.h.head_len, MAX + 1);
    parsed_done(&p);
    /* a max of 0: nothing is allowed */
    assert_int_equal(parse(&p, "", 0, 0), -WIRE_HTTP_TOO_LARGE);
    parsed_done(&p);
    /* empty lines only: need more, until they fill max */
    for (n = 0; n < 20; n += 2)
        memcpy(buf + n, "\r\n", 2);
    assert_int_equal(parse(&p, buf, 20, MAX), 0);
    parsed_done(&p);
    assert_int_equal(parse(&p, buf, 20, 21), 0);
    parsed_done(&p);
    assert_int_equal(parse(&p, buf, 20, 20), -WIRE_HTTP_TOO_LARGE);
    parsed_done(&p);
    assert_int_equal(parse(&p, buf, 20, 7), -WIRE_HTTP_TOO_LARGE);
    parsed_done(&p);
}

typedef struct bad_case {
    const char *in;
    size_t len;
    int rc;
} bad_case_t;

#define BAD(lit)                                                                                   \
    {                                                                                              \
        S(lit), -WIRE_HTTP_BAD                                                                     \
    }
#define VER(lit)                                                                                   \
    {                                                                                              \
        S(lit), -WIRE_HTTP_VERSION                                                                 \
    }
#define H "Host: h\r\n"

static const bad_case_t bad_cases[] = {
    /* versions */
    VER("GET / HTTP/2.0\r\n" H "\r\n"),
    VER("GET / HTTP/3.0\r\n\r\n"),
    VER("GET / HTTP/9.1\r\n\r\n"),
    VER("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), /* the h2 preface */
    BAD("GET / HTTP/0.9\r\n\r\n"),
    BAD("GET / HTTP/0.1\r\n\r\n"),
    BAD("GET /\r\n\r\n"), /* HTTP/0.9's simple request */
    BAD("GET / HTTP/1\r\n\r\n"),
    BAD("GET / HTTP/1.\r\n\r\n"),
    BAD("GET / HTTP/1.x\r\n\r\n"),
    BAD("GET / HTTP/x.1\r\n\r\n"),
    BAD("GET / HTTP/11.1\r\n\r\n"),
    BAD("GET / HTTP/1.10\r\n\r\n"),
    BAD("GET / HTTP/1.1 \r\n" H "\r\n"),
    BAD("GET / http/1.1\r\n" H "\r\n"),
    BAD("GET / HTTPS/1.1\r\n" H "\r\n"),
    BAD("GET / HTTP/1,1\r\n" H "\r\n"),
    /* garbage, and request lines of the wrong shape */
    BAD("hello\r\n\r\n"),
    BAD("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"),
    BAD("\0\0\0\0\r\n\r\n"),
    BAD("GET  / HTTP/1.1\r\n" H "\r\n"),
    BAD("GET /  HTTP/1.1\r\n" H "\r\n"),
    BAD("GET  HTTP/1.1\r\n" H "\r\n"),
    BAD("CONNECT  HTTP/1.1\r\n" H "\r\n"),
    BAD(" GET / HTTP/1.1\r\n" H "\r\n"),
    BAD("GET\t/\tHTTP/1.1\r\n" H "\r\n"),
    BAD("G(T / HTTP/1.1\r\n" H "\r\n"),
    BAD("G\xc3\x89T / HTTP/1.1\r\n" H "\r\n"),
    BAD("GET /a b HTTP/1.1\r\n" H "\r\n"),
    BAD("GET /\x7f HTTP/1.1\r\n" H "\r\n"),
    BAD("GET /\x01 HTTP/1.1\r\n" H "\r\n"),
    BAD("GET /\0 HTTP/1.1\r\n" H "\r\n"),
    BAD("GET / HTTP/1.1\rX\r\n" H "\r\n"),
    BAD("GET /\r HTTP/1.1\r\n" H "\r\n"),
    BAD("\r\r\nGET / HTTP/1.1\r\n" H "\r\n"),
    /* the target must be a path (or "*") */
    BAD("GET a HTTP/1.1\r\n" H "\r\n"),
    BAD("GET http://h/ HTTP/1.1\r\n" H "\r\n"),
    BAD("GET ?x=1 HTTP/1.1\r\n" H "\r\n"),
    BAD("GET ** HTTP/1.1\r\n" H "\r\n"),
    BAD("GET *x HTTP/1.1\r\n" H "\r\n"),
    BAD("OPTIONS h:443 HTTP/1.1\r\n" H "\r\n"),
    /* bare LF */
    BAD("GET / HTTP/1.1\n" H "\r\n"),
    BAD("GET / HTTP/1.11\n" H "\r\n"),
    BAD("\nGET / HTTP/1.1\r\n" H "\r\n"),
    BAD("GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\n" H "\n\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\n" H "X: a\nb\r\n\r\n"),
    /* obs-fold */
    BAD("GET / HTTP/1.1\r\n" H "X: a\r\n b\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\n" H "X: a\r\n\tb\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\n " H "\r\n"),
    /* header names */
    BAD("GET / HTTP/1.1\r\nHost : h\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\nHost\t: h\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\n" H "Content-Length : 0\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\n" H ": x\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\n" H "No colon here\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\n" H "Nocolon\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\n" H "X(y): 1\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\n" H "X\xc3\xa9: 1\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\n" H "X\0: 1\r\n\r\n"),
    /* control characters in a value */
    BAD("GET / HTTP/1.1\r\n" H "X: a\x01"
        "b\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\n" H "X: a\x7f\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\n" H "X: a\0b\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\n" H "X: a\rb\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\n" H "X: a\r\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\n" H "X: \x1b[31m\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\nHost: h\x0b\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\n" H "Authorization: Bearer a\0b\r\n\r\n"),
    /* Content-Length */
    BAD("POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 5\r\n\r\n"),
    BAD("POST / HTTP/1.1\r\n" H "Content-Length: 5\r\ncontent-length: 6\r\n\r\n"),
    BAD("POST / HTTP/1.1\r\n" H "Content-Length: abc\r\n\r\n"),
    BAD("POST / HTTP/1.1\r\n" H "Content-Length: 5a\r\n\r\n"),
    BAD("POST / HTTP/1.1\r\n" H "Content-Length: \r\n\r\n"),
    BAD("POST / HTTP/1.1\r\n" H "Content-Length: +5\r\n\r\n"),
    BAD("POST / HTTP/1.1\r\n" H "Content-Length: -1\r\n\r\n"),
    BAD("POST / HTTP/1.1\r\n" H "Content-Length: 0x10\r\n\r\n"),
    BAD("POST / HTTP/1.1\r\n" H "Content-Length: 1 2\r\n\r\n"),
    BAD("POST / HTTP/1.1\r\n" H "Content-Length: 1,1\r\n\r\n"),
    BAD("POST / HTTP/1.1\r\n" H "Content-Length: 1.0\r\n\r\n"),
    BAD("POST / HTTP/1.1\r\n" H "Content-Length: 1000000000000000000\r\n\r\n"), /* 19 digits */
    BAD("POST / HTTP/1.1\r\n" H "Content-Length: 18446744073709551616\r\n\r\n"),
    BAD("POST / HTTP/1.1\r\n" H "Content-Length: 0000000000000000001\r\n\r\n"),
    /* Content-Length with Transfer-Encoding, either order */
    BAD("POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
    BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
    BAD("POST / HTTP/1.0\r\nTransfer-Encoding: gzip\r\nContent-Length: 0\r\n\r\n"),
    /* Host */
    BAD("GET / HTTP/1.1\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\nX-Host: h\r\n\r\n"),
    BAD("GET / HTTP/1.1\r\n" H H "\r\n"),
    BAD("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"),
    BAD("GET / HTTP/1.0\r\nHost: a\r\nHOST: a\r\n\r\n"),
};

static void
test_refused(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case_t *c = &bad_cases[i];
        parsed_t p;

        if (parse(&p, c->in, c->len, MAX) != c->rc)
            fail_msg("case %zu '%.*s': rc %d, want %d", i, (int)c->len, c->in, p.rc, c->rc);
        parsed_done(&p);
        /* cut short, it is never accepted nor refused for another reason */
        for (size_t n = 0; n < c->len; n++) {
            int rc = parse(&p, c->in, n, MAX);
            if (rc != 0 && rc != c->rc)
                fail_msg("case %zu cut at %zu: rc %d", i, n, rc);
            parsed_done(&p);
        }
    }
}

static void
test_methods(void **state)
{
    static const struct {
        const char *name;
        int method;
    } cases[] = {
        {"GET", WIRE_HTTP_GET},
        {"POST", WIRE_HTTP_POST},
        {"OPTIONS", WIRE_HTTP_OPTIONS},
        {"PUT", WIRE_HTTP_PUT},
        {"PATCH", WIRE_HTTP_PATCH},
        {"DELETE", WIRE_HTTP_DELETE},
        {"CONNECT", WIRE_HTTP_CONNECT},
        {"HEAD", WIRE_HTTP_HEAD},
        /* methods are case-sensitive: a valid token, no route */
        {"get", WIRE_HTTP_OTHER},
        {"Get", WIRE_HTTP_OTHER},
        {"head", WIRE_HTTP_OTHER},
        {"PROPFIND", WIRE_HTTP_OTHER},
        {"M-SEARCH", WIRE_HTTP_OTHER},
        {"GETS", WIRE_HTTP_OTHER},
        {"GE", WIRE_HTTP_OTHER},
        {"POSTGET", WIRE_HTTP_OTHER},
        {"X", WIRE_HTTP_OTHER},
        {"!#$%&'*+-.^_`|~09az", WIRE_HTTP_OTHER},
    };
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char req[128];
        int n = snprintf(req, sizeof req, "%s /m HTTP/1.1\r\nHost: h\r\n\r\n", cases[i].name);
        parsed_t p;

        parse_head(&p, req, (size_t)n);
        if (p.h.method != cases[i].method)
            fail_msg("%s: method %d, want %d", cases[i].name, p.h.method, cases[i].method);
        expect_span("path", p.h.path, "/m");
        parsed_done(&p);
    }
}

static void
test_targets(void **state)
{
    static const struct {
        const char *method, *target, *path, *query;
    } cases[] = {
        {"GET", "/", "/", NULL},
        {"GET", "/a/b/", "/a/b/", NULL},
        {"GET", "/?", "/", ""},
        {"GET", "/p?", "/p", ""},
        {"GET", "/p?a", "/p", "a"},
        {"GET", "/p?a=1?b=2", "/p", "a=1?b=2"},
        {"GET", "/p??", "/p", "?"},
        {"GET", "//x", "//x", NULL},
        {"GET", "/%20%3F?q=%3F", "/%20%3F", "q=%3F"},
        {"GET", "/\xc3\xa9", "/\xc3\xa9", NULL},
        {"GET", "/#frag", "/#frag", NULL},
        {"OPTIONS", "*", NULL, NULL},
        /* CONNECT's authority-form is kept whole */
        {"CONNECT", "h:443", NULL, NULL},
    };
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char req[128];
        int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: h\r\n\r\n", cases[i].method,
                         cases[i].target);
        parsed_t p;

        parse_head(&p, req, (size_t)n);
        expect_span("target", p.h.target, cases[i].target);
        expect_span("path", p.h.path, cases[i].path);
        expect_span("query", p.h.query, cases[i].query);
        if (p.h.path.p != NULL)
            assert_ptr_equal(p.h.path.p, p.h.target.p);
        if (p.h.query.p != NULL)
            assert_ptr_equal(p.h.query.p, p.h.target.p + p.h.path.n + 1);
        parsed_done(&p);
    }
}

/* Builds "GET / HTTP/1.<minor>\r\n" + headers + "\r\n" and parses it. */
static void
parse_with(parsed_t *p, int minor, const char *headers)
{
    char req[512];
    int n = snprintf(req, sizeof req, "GET /x HTTP/1.%d\r\n%s\r\n", minor, headers);

    assert_true(n > 0 && (size_t)n < sizeof req);
    parse_head(p, req, (size_t)n);
}

static void
test_keep_alive(void **state)
{
    static const struct {
        int minor;
        const char *headers;
        int keep_alive;
    } cases[] = {
        {1, H, 1},
        {1, H "Connection: keep-alive\r\n", 1},
        {1, H "Connection: close\r\n", 0},
        {1, H "Connection: Close\r\n", 0},
        {1, H "Connection: keep-alive, close\r\n", 0},
        {1, H "Connection: keep-alive\r\nConnection: close\r\n", 0},
        {1, H "Connection: upgrade\r\n", 1},
        {1, H "Connection: closed\r\n", 1},
        {1, H "Connection: x-close\r\n", 1},
        {1, H "Connection:close\r\n", 0},
        {1, H "Connection: \t, ,close , \r\n", 0},
        {9, H, 1}, /* HTTP/1.9 is served as 1.1 */
        {0, "", 0},
        {0, H, 0},
        {0, "Connection: keep-alive\r\n", 1},
        {0, "Connection: Keep-Alive\r\n", 1},
        {0, "Connection: te, keep-alive\r\n", 1},
        {0, "Connection: keep-alive, close\r\n", 0},
        {0, "Connection: close\r\nConnection: keep-alive\r\n", 0},
        {0, "Connection: keep-alived\r\n", 0},
        {0, "Keep-Alive: timeout=5\r\n", 0},
    };
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        parsed_t p;

        parse_with(&p, cases[i].minor, cases[i].headers);
        assert_int_equal(p.h.minor, cases[i].minor == 0 ? 0 : 1);
        if (p.h.keep_alive != cases[i].keep_alive)
            fail_msg("case %zu (1.%d, '%s'): keep_alive %d", i, cases[i].minor, cases[i].headers,
                     p.h.keep_alive);
        parsed_done(&p);
    }
}

static void
test_framing(void **state)
{
    static const struct {
        const char *headers;
        int has_length;
        unsigned long long length;
        int chunked;
    } cases[] = {
        {H, 0, 0, 0},
        {H "Content-Length: 0\r\n", 1, 0, 0},
        {H "Content-Length: 42\r\n", 1, 42, 0},
        {H "content-LENGTH:   42 \t\r\n", 1, 42, 0},
        {H "Content-Length: 007\r\n", 1, 7, 0},
        {H "Content-Length: 999999999999999999\r\n", 1, 999999999999999999ull, 0}, /* 18 */
        {H "Transfer-Encoding: chunked\r\n", 0, 0, 1},
        {H "transfer-encoding: gzip, chunked\r\n", 0, 0, 1},
        {H "Transfer-Encoding: identity\r\n", 0, 0, 1},
        {H "Content-Type: text/plain\r\n", 0, 0, 0},
        {H "X-Content-Length: 5\r\n", 0, 0, 0},
    };
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        parsed_t p;

        parse_with(&p, 1, cases[i].headers);
        assert_int_equal(p.h.has_length, cases[i].has_length);
        assert_true(p.h.length == cases[i].length);
        assert_int_equal(p.h.chunked, cases[i].chunked);
        parsed_done(&p);
    }
}

static void
test_host(void **state)
{
    parsed_t p;
    (void)state;

    parse_with(&p, 1, "hOsT:\th:1 \r\n");
    expect_span("host", p.h.host, "h:1");
    parsed_done(&p);
    /* an empty Host is a Host (RFC 9112 §3.2: no authority in the target) */
    parse_with(&p, 1, "Host:\r\n");
    expect_span("host", p.h.host, "");
    parsed_done(&p);
    parse_with(&p, 0, "");
    expect_span("host", p.h.host, NULL);
    parsed_done(&p);
    parse_with(&p, 0, "Host: h\r\n");
    expect_span("host", p.h.host, "h");
    parsed_done(&p);
}

/* Leading and trailing whitespace is not part of a value; inside it is. */
static void
test_trimming(void **state)
{
    static const struct {
        const char *headers;
        const char *origin;
    } cases[] = {
        {"Origin: https://a.b\r\n", "https://a.b"},
        {"Origin:https://a.b\r\n", "https://a.b"},
        {"Origin: \t https://a.b \t \r\n", "https://a.b"},
        {"Origin: a  b\tc\r\n", "a  b\tc"},
        {"Origin:\r\n", ""},
        {"Origin:  \t \r\n", ""},
        {"origin: \xc3\xa9\r\n", "\xc3\xa9"}, /* obs-text is allowed */
    };
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char headers[128];
        parsed_t p;

        snprintf(headers, sizeof headers, H "%s", cases[i].headers);
        parse_with(&p, 1, headers);
        expect_span("origin", p.h.origin, cases[i].origin);
        parsed_done(&p);
    }
}

static void
test_websocket(void **state)
{
    static const struct {
        const char *headers;
        int upgrade, websocket;
    } cases[] = {
        {H "Upgrade: websocket\r\nConnection: Upgrade\r\n", 1, 1},
        {H "Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n", 1, 1},
        {H "Connection: keep-alive,Upgrade\r\nUpgrade: WebSocket\r\n", 1, 1},
        {H "Upgrade: WEBSOCKET\r\nConnection: UPGRADE\r\n", 1, 1},
        {H "Upgrade: h2c, websocket\r\nConnection: upgrade\r\n", 1, 1},
        {H "Upgrade: websocket\r\nConnection: close\r\nConnection: upgrade\r\n", 1, 1},
        {H "Upgrade: websocket\r\n", 1, 0},
        {H "Upgrade: websocket\r\nConnection: keep-alive\r\n", 1, 0},
        {H "Upgrade: websocket\r\nConnection: upgraded\r\n", 1, 0},
        {H "Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n", 1, 0},
        {H "Upgrade: websockets\r\nConnection: upgrade\r\n", 1, 0},
        {H "Upgrade:\r\nConnection: upgrade\r\n", 1, 0},
        {H "Connection: upgrade\r\n", 0, 0},
        {H "X-Upgrade: websocket\r\nConnection: upgrade\r\n", 0, 0},
    };
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        parsed_t p;

        parse_with(&p, 1, cases[i].headers);
        if (p.h.upgrade != cases[i].upgrade || p.h.websocket != cases[i].websocket)
            fail_msg("case %zu '%s': upgrade %d websocket %d", i, cases[i].headers, p.h.upgrade,
                     p.h.websocket);
        parsed_done(&p);
    }
}

static void
test_expect(void **state)
{
    static const struct {
        const char *headers;
        int expect;
    } cases[] = {
        {H "Expect: 100-continue\r\n", 1},
        {H "expect:100-Continue \r\n", 1},
        {H, 0},
        {H "Expect: 100-continued\r\n", 0},
        {H "Expect: 200-ok\r\n", 0},
        {H "X-Expect: 100-continue\r\n", 0},
    };
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        parsed_t p;

        parse_with(&p, 1, cases[i].headers);
        assert_int_equal(p.h.expect_continue, cases[i].expect);
        parsed_done(&p);
    }
}

/* Empty lines before the request line are skipped and counted; the bytes
 * after the head (a body, the next request) are not. */
static void
test_head_len(void **state)
{
    static const char one[] = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n";
    static const char two[] = "POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 8\r\n\r\n";
    char buf[256];
    size_t n;
    parsed_t p;
    (void)state;

    /* leading empty lines */
    n = (size_t)snprintf(buf, sizeof buf, "\r\n\r\n%s", one);
    parse_head(&p, buf, n);
    assert_ptr_equal(p.h.target.p, p.buf + 4 + 4);
    assert_int_equal(p.h.skip, 4);
    expect_span("path", p.h.path, "/1");
    parsed_done(&p);
    n = (size_t)snprintf(buf, sizeof buf, "\r\n%s", one);
    parse_head(&p, buf, n);
    assert_ptr_equal(p.h.target.p, p.buf + 2 + 4);
    assert_int_equal(p.h.skip, 2);
    parsed_done(&p);

    /* pipelined: the first head, then the second from where it ended */
    n = (size_t)snprintf(buf, sizeof buf, "%s%s", one, two);
    assert_int_equal(parse(&p, buf, n, MAX), 1);
    assert_int_equal(p.h.head_len, sizeof one - 1);
    parsed_done(&p);
    assert_int_equal(parse(&p, buf + sizeof one - 1, n - (sizeof one - 1), MAX), 1);
    assert_int_equal(p.h.head_len, sizeof two - 1);
    assert_int_equal(p.h.method, WIRE_HTTP_POST);
    parsed_done(&p);

    /* a body holding a blank line of its own */
    n = (size_t)snprintf(buf, sizeof buf, "%sab\r\n\r\ncdGET / HTTP/1.1\r\n\r\n", two);
    assert_int_equal(parse(&p, buf, n, MAX), 1);
    assert_int_equal(p.h.head_len, sizeof two - 1);
    assert_int_equal(p.h.has_length, 1);
    assert_true(p.h.length == 8);
    parsed_done(&p);

    /* the bytes after the head do not change it, even when they would be
     * refused */
    n = (size_t)snprintf(buf, sizeof buf, "%s\x01\n\n HTTP/2.0", one);
    assert_int_equal(parse(&p, buf, n, MAX), 1);
    assert_int_equal(p.h.head_len, sizeof one - 1);
    parsed_done(&p);
    /* and a head that is too large stays so with more bytes */
    assert_int_equal(parse(&p, buf, n, sizeof one - 2), -WIRE_HTTP_TOO_LARGE);
    parsed_done(&p);
}

/* Random mutations of valid heads: no crash, no read past the end, and a
 * head accepted under a small max is the same under a large one. */
static void
test_random(void **state)
{
    static const char *const seeds[] = {
        "GET /a?b=c HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n"
        "Upgrade: websocket\r\n\r\n",
        "\r\nPOST /x HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc",
        "OPTIONS * HTTP/1.1\r\nHost: h\r\nOrigin: o\r\n\r\nGET / HTTP/1.1\r\n\r\n",
    };
    static const char alphabet[] = "\r\n\r\n \t:/?*%&=,GHTP10.2\x7f\x01\xff";
    uint64_t seed = 0x4711;
    char buf[160];
    unsigned accepted = 0;
    (void)state;

    for (int iter = 0; iter < 20000; iter++) {
        const char *s = seeds[test_rand(&seed) % 3];
        size_t n = strlen(s), small;
        int flips = (int)(test_rand(&seed) % 3);
        parsed_t a, b;

        memcpy(buf, s, n);
        for (int f = 0; f < flips; f++)
            buf[test_rand(&seed) % n] = alphabet[test_rand(&seed) % (sizeof alphabet - 1)];
        if (test_rand(&seed) & 1)
            n = test_rand(&seed) % (n + 1);
        small = test_rand(&seed) % 100;
        parse(&a, buf, n, MAX);
        parse(&b, buf, n, small);
        if (b.rc == 1) {
            assert_int_equal(a.rc, 1);
            assert_int_equal(a.h.head_len, b.h.head_len);
            assert_int_equal(a.h.method, b.h.method);
            assert_int_equal(a.h.keep_alive, b.h.keep_alive);
            assert_int_equal(a.h.websocket, b.h.websocket);
        }
        if (a.rc == 1 && a.h.head_len <= small)
            assert_int_equal(b.rc, 1);
        if (a.rc == 0)
            assert_true(b.rc == 0 || b.rc == -WIRE_HTTP_TOO_LARGE);
        accepted += a.rc == 1;
        parsed_done(&a);
        parsed_done(&b);
    }
    assert_true(accepted > 1000);
}

/* wire_http_decode on s[0..n), placed against a guard page, into exactly
 * `cap` bytes of a larger buffer whose rest must stay untouched. */
static int
decode(const char *s, size_t n, size_t cap, char *out)
{
    guard_t g;
    char buf[64];
    const char *in = guard_place(&g, s, n);
    int rc;

    assert_non_null(in);
    assert_true(cap < sizeof buf);
    memset(buf, '#', sizeof buf);
    rc = wire_http_decode((wire_span_t){in, n}, buf, cap);
    guard_release(&g);
    for (size_t i = cap; i < sizeof buf; i++)
        assert_int_equal(buf[i], '#');
    if (rc >= 0) {
        assert_true((size_t)rc < cap);
        assert_int_equal(buf[rc], '\0');
        memcpy(out, buf, (size_t)rc + 1);
    }
    return rc;
}

static void
test_decode(void **state)
{
    static const struct {
        const char *in;
        size_t len;
        int rc;
        const char *out;
    } cases[] = {
        {S(""), 0, ""},
        {S("abc"), 3, "abc"},
        {S("%41"), 1, "A"},
        {S("a%41b"), 3, "aAb"},
        {S("%2F"), 1, "/"},
        {S("%2f"), 1, "/"},
        {S("%20"), 1, " "},
        {S("%25"), 1, "%"},
        {S("%2541"), 3, "%41"}, /* decoded once */
        {S("+"), 1, "+"},       /* not form encoding: '+' stays */
        {S("%e6%97%A5"), 3, "\xe6\x97\xa5"},
        {S("\xc3\xa9"), 2, "\xc3\xa9"},
        {S("%7E"), 1, "~"},
        /* malformed */
        {S("%"), -1, NULL},
        {S("a%"), -1, NULL},
        {S("%4"), -1, NULL},
        {S("ab%4"), -1, NULL},
        {S("%G1"), -1, NULL},
        {S("%1G"), -1, NULL},
        {S("%%41"), -1, NULL},
        {S("%4 1"), -1, NULL},
        {S("%-1"), -1, NULL},
        {S("%\0"
           "1"),
         -1, NULL},
        /* control characters, decoded or raw */
        {S("%00"), -1, NULL},
        {S("a%0A"), -1, NULL},
        {S("%0d"), -1, NULL},
        {S("%0D%0A"), -1, NULL},
        {S("%1f"), -1, NULL},
        {S("%7F"), -1, NULL},
        {S("%7f"), -1, NULL},
        {S("a\x01"), -1, NULL},
        {S("a\tb"), -1, NULL},
        {S("\x7f"), -1, NULL},
        {S("a\0b"), -1, NULL},
        {S("a\rb"), -1, NULL},
    };
    char out[64];
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = decode(cases[i].in, cases[i].len, 32, out);

        if (rc != cases[i].rc)
            fail_msg("case %zu '%.*s': rc %d, want %d", i, (int)cases[i].len, cases[i].in, rc,
                     cases[i].rc);
        if (rc >= 0)
            assert_memory_equal(out, cases[i].out, (size_t)rc + 1);
    }
}

/* The output and its NUL in exactly cap bytes, or -1. */
static void
test_decode_fit(void **state)
{
    char out[64];
    (void)state;

    assert_int_equal(decode(S("abcd"), 5, out), 4);
    assert_string_equal(out, "abcd");
    assert_int_equal(decode(S("abcd"), 4, out), -1);
    assert_int_equal(decode(S("abcd"), 1, out), -1);
    assert_int_equal(decode(S("abcd"), 0, out), -1);
    assert_int_equal(decode(S(""), 1, out), 0);
    assert_string_equal(out, "");
    assert_int_equal(decode(S(""), 0, out), -1);
    assert_int_equal(decode(S("%41%42"), 3, out), 2);
    assert_string_equal(out, "AB");
    assert_int_equal(decode(S("%41%42"), 2, out), -1);
    assert_int_equal(decode(S("%41"), 2, out), 1);
    assert_int_equal(decode(S("%41"), 1, out), -1);
}

/* wire_http_query_arg on q[0..n) (q NULL: no query). */
static int
query_arg(const char *q, size_t n, const char *name, size_t cap, char *out)
{
    guard_t g;
    const char *in = q == NULL ? NULL : guard_place(&g, q, n);
    int rc;

    if (q != NULL)
        assert_non_null(in);
    memset(out, '#', cap);
    rc = wire_http_query_arg((wire_span_t){in, n}, name, out, cap);
    if (q != NULL)
        guard_release(&g);
    if (rc >= 0) {
        assert_true((size_t)rc < cap);
        assert_int_equal(out[rc], '\0');
    }
    return rc;
}

static void
test_query_arg(void **state)
{
    static const struct {
        const char *q; /* NULL: no '?' */
        const char *name;
        int rc;
        const char *out;
    } cases[] = {
        {"a=1&b=2", "a", 1, "1"},
        {"a=1&b=2", "b", 1, "2"},
        {"a=1&a=2", "a", 1, "1"},
        {"a=%zz&a=2", "a", -2, NULL}, /* the first, even when undecodable */
        {"a&b=2", "a", 0, ""},
        {"b=2&a", "a", 0, ""},
        {"a=&b=2", "a", 0, ""},
        {"b=2", "a", -1, NULL},
        {"", "a", -1, NULL},
        {"&&", "a", -1, NULL},
        {"&&a=1&", "a", 1, "1"},
        {"token=abc", "tok", -1, NULL},
        {"tok=1&token=2", "token", 1, "2"},
        {"tokenx=1&token=3", "token", 1, "3"},
        {"xtoken=1", "token", -1, NULL},
        {"A=1", "a", -1, NULL},
        {"a=1;b=2", "b", -1, NULL},
        {"a=1=2", "a", 3, "1=2"},
        {"t=%41%20b%2F", "t", 4, "A b/"},
        {"t=a+b", "t", 3, "a+b"},
        {"t=%0A", "t", -2, NULL},
        {"t=%00x", "t", -2, NULL},
        {"t=%4", "t", -2, NULL},
        {"%74=1", "t", -1, NULL}, /* names are matched as sent */
        {NULL, "a", -1, NULL},
        {NULL, "", -1, NULL},
    };
    char out[32];
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *q = cases[i].q;
        int rc = query_arg(q, q ? strlen(q) : 0, cases[i].name, sizeof out, out);

        if (rc != cases[i].rc)
            fail_msg("case %zu '%s' '%s': rc %d, want %d", i, q ? q : "(none)", cases[i].name, rc,
                     cases[i].rc);
        if (rc >= 0)
            assert_string_equal(out, cases[i].out);
    }
    /* the value must fit: -2, it is there */
    assert_int_equal(query_arg(S("t=abcd"), "t", 5, out), 4);
    assert_int_equal(query_arg(S("t=abcd"), "t", 4, out), -2);
    assert_int_equal(query_arg(S("t="), "t", 0, out), -2);
    assert_int_equal(query_arg(S("t=1"), "x", 0, out), -1);
    /* the query of a parsed head */
    {
        parsed_t p;

        parse_head(&p, S("GET /s?token=a.b%2Fc&offset=1-2 HTTP/1.1\r\n" H "\r\n"));
        assert_int_equal(wire_http_query_arg(p.h.query, "token", out, sizeof out), 5);
        assert_string_equal(out, "a.b/c");
        assert_int_equal(wire_http_query_arg(p.h.query, "offset", out, sizeof out), 3);
        assert_string_equal(out, "1-2");
        assert_int_equal(wire_http_query_arg(p.h.query, "s", out, sizeof out), -1);
        parsed_done(&p);
        parse_head(&p, S("GET /s HTTP/1.1\r\n" H "\r\n"));
        assert_int_equal(wire_http_query_arg(p.h.query, "token", out, sizeof out), -1);
        parsed_done(&p);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get),        cmocka_unit_test(test_prefixes),
        cmocka_unit_test(test_too_large),  cmocka_unit_test(test_refused),
        cmocka_unit_test(test_methods),    cmocka_unit_test(test_targets),
        cmocka_unit_test(test_keep_alive), cmocka_unit_test(test_framing),
        cmocka_unit_test(test_host),       cmocka_unit_test(test_trimming),
        cmocka_unit_test(test_websocket),  cmocka_unit_test(test_expect),
        cmocka_unit_test(test_head_len),   cmocka_unit_test(test_random),
        cmocka_unit_test(test_decode),     cmocka_unit_test(test_decode_fit),
        cmocka_unit_test(test_query_arg),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
