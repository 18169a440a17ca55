/*
 * wire/http1.h: the head of an HTTP/1.x request (http1.c). Pure: no loop,
 * no allocation; every span points into the caller's buffer.
 *
 * What the hub's HTTP front (gateway/front.c) needs and nothing more: the
 * method, the target split into path and query, the version, the framing
 * of the body (Content-Length; Transfer-Encoding only to refuse it), the
 * connection's fate (keep-alive, upgrade), and the few headers a route
 * reads. Strict where laxness smuggles (RFC 9112 §6.3, §11.2): CRLF line
 * ends only, no whitespace before a colon, no folded lines, one
 * Content-Length, not both Content-Length and Transfer-Encoding.
 */
#ifndef COORDHUB_WIRE_HTTP1_H
#define COORDHUB_WIRE_HTTP1_H

#include <stddef.h>

/* Methods, numbered as the gateway's enum gw_method (lws's index). */
enum wire_http_method {
    WIRE_HTTP_GET = 0,
    WIRE_HTTP_POST = 1,
    WIRE_HTTP_OPTIONS = 2,
    WIRE_HTTP_PUT = 3,
    WIRE_HTTP_PATCH = 4,
    WIRE_HTTP_DELETE = 5,
    WIRE_HTTP_CONNECT = 6,
    WIRE_HTTP_HEAD = 7,
    WIRE_HTTP_OTHER = 8 /* a valid token the hub serves no route with */
};

typedef struct wire_span {
    const char *p; /* NULL when absent */
    size_t n;
} wire_span_t;

typedef struct wire_http_head {
    int method;                /* enum wire_http_method */
    wire_span_t target;        /* the request target as sent */
    wire_span_t path;          /* target up to '?', still percent-encoded */
    wire_span_t query;         /* after '?' (p NULL: no '?') */
    int minor;                 /* HTTP/1.<minor>: 0 or 1 */
    int keep_alive;            /* 1.1 unless "Connection: close"; 1.0 only with keep-alive */
    int has_length;            /* a Content-Length was given */
    unsigned long long length; /* its value */
    int chunked;               /* any Transfer-Encoding (the hub takes none) */
    int upgrade;               /* an Upgrade header was given */
    int websocket;             /* ... naming websocket, with "Connection: upgrade" */
    int expect_continue;       /* "Expect: 100-continue" */
    wire_span_t authorization, origin, ac_request_headers, host;
    size_t head_len; /* bytes of the head, its blank line included */
    size_t skip;     /* of those, the empty lines before the request line */
} wire_http_head_t;

/* Refusals, as the HTTP status that says so. */
#define WIRE_HTTP_BAD 400       /* not HTTP/1.x as RFC 9112 frames it */
#define WIRE_HTTP_TOO_LARGE 431 /* no blank line within `max` bytes */
#define WIRE_HTTP_VERSION 505   /* HTTP/2 or later (1.x only) */

/*
 * Parses the head at the start of `buf` (`len` bytes). Returns 1 with `*h`
 * filled when the whole head is there, 0 when more bytes are needed (and
 * fewer than `max` have come), or minus a WIRE_HTTP_* status; `*why` then
 * names the problem. A line of request bytes before the head (a stray CRLF
 * between pipelined requests, RFC 9112 §2.2) is skipped: h->target and the
 * other spans then start after it, head_len counts it.
 */
int wire_http_parse(const char *buf, size_t len, size_t max, wire_http_head_t *h, const char **why);

/*
 * Percent-decodes `in` into `out` (NUL-terminated; `cap` bytes with the
 * NUL). Returns the decoded length, or -1 when it does not fit, a %XX is
 * malformed, or the result holds a control character (NUL, CR, LF, any
 * byte below 0x20 or 0x7f): a name cut at a decoded CR must not be served.
 */
int wire_http_decode(wire_span_t in, char *out, size_t cap);

/*
 * The value of argument `name` in `query` ("a=1&b=2"), percent-decoded into
 * `out` as wire_http_decode does. Returns its length (0 for "name=" or a
 * bare "name"), -1 when absent, -2 when there but not decodable into `cap`
 * bytes. The first occurrence wins.
 */
int wire_http_query_arg(wire_span_t query, const char *name, char *out, size_t cap);

#endif
