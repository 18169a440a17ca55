/*
 * gateway/http.c: the HTTP answer writer.
 *
 * An answer is made whole, status line, headers and body in one buffer,
 * and handed to the front (front.c), which sends it at once: one send()
 * per answer. The headers are those lws gave the hub's answers before the
 * front took HTTP over (its "security best practices" set), so that no
 * client sees a difference. The request's own state belongs to whoever
 * serves it (api.c, polling.c); this file only counts the answers owed,
 * which the graceful stop waits for.
 */
#include "http.h"

#include "front.h"

#include <assert.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
gw__http_begin(gw_t *gw, gw_conn_t *c, int head)
{
    gw_http_t *h = &c->http;

    c->kind = GW_CONN_HTTP;
    c->gw = gw;
    h->head = head;
    h->close = 0;
    h->keep_alive_header = 0;
    h->leave_cancels = 0;
    h->allow_origin[0] = '\0';
    h->preflight = 0;
    free(h->allow_headers);
    h->allow_headers = NULL;
    if (!h->pending) {
        h->pending = 1;
        gw->http_inflight++;
    }
    gw->m.http_requests++;
}

static char *
error_json(const char *code, const char *message)
{
    json_t *o = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

void
gw__http_error(gw_conn_t *c, int status, const char *code, const char *message)
{
    char *s = error_json(code, message);
    gw__http_respond(c, status, "application/json", s, strlen(s));
    free(s);
}

int
gw__http_reject_body(struct lws *wsi, int status, const char *text)
{
    unsigned char hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof hdr;
    size_t len = strlen(text);
    unsigned char *body = util_malloc(LWS_PRE + len);
    int rc = 1;

    memcpy(body + LWS_PRE, text, len);
    if (lws_add_http_common_headers(wsi, (unsigned)status, "application/json", len, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        rc = -1;                                                   /* just hang up */
    else if (lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) == 0 && /* HEAD: no body */
             lws_write(wsi, body + LWS_PRE, len, LWS_WRITE_HTTP_FINAL) != (int)len)
        rc = -1;
    free(body);
    return rc;
}

int
gw__http_reject_now(struct lws *wsi, int status, const char *code, const char *message)
{
    char *s = error_json(code, message);
    int rc = gw__http_reject_body(wsi, status, s);
    free(s);
    return rc;
}

void
gw__http_close_after(gw_conn_t *c)
{
    c->http.close = 1;
}

void
gw__http_leave_cancels(gw_conn_t *c)
{
    c->http.leave_cancels = 1;
}

static const char *
reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Status";
    }
}

/* What lws's LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE
 * added to every answer. */
static const char SECURITY[] =
    "content-security-policy: default-src 'none'; img-src 'self' data: ; script-src 'self'; "
    "font-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; frame-ancestors 'none'; "
    "base-uri 'none';form-action 'self';\r\n"
    "x-content-type-options: nosniff\r\n"
    "x-xss-protection: 1; mode=block\r\n"
    "x-frame-options: deny\r\n"
    "referrer-policy: no-referrer\r\n";

/* Appends to the answer being made, `cap` bytes in all: its room was sized
 * for everything it holds (head_room), so a header that does not fit is a
 * bug here, not the client's. */
static void __attribute__((format(printf, 4, 5)))
appendf(char *buf, size_t cap, size_t *n, const char *fmt, ...)
{
    va_list ap;
    int k;

    va_start(ap, fmt);
    k = vsnprintf(buf + *n, cap - *n, fmt, ap);
    va_end(ap);
    assert(k >= 0 && (size_t)k < cap - *n);
    if (k < 0 || (size_t)k >= cap - *n) /* NDEBUG: cut, never past the end */
        k = (int)(cap - *n - 1);
    *n += (size_t)k;
}

/* The CORS headers of an allowed Origin (polling.c decides). */
static void
add_cors(char *buf, size_t cap, size_t *n, const gw_http_t *h)
{
    if (h->allow_origin[0] == '\0')
        return;
    appendf(buf, cap, n,
            "access-control-allow-origin: %s\r\naccess-control-allow-credentials: true\r\n"
            "vary: Origin\r\n",
            h->allow_origin);
    if (h->preflight)
        appendf(buf, cap, n, "access-control-allow-methods: GET, POST, OPTIONS\r\n");
    if (h->preflight && h->allow_headers != NULL)
        appendf(buf, cap, n, "access-control-allow-headers: %s\r\n", h->allow_headers);
}

/* Room for the answer's head: the status line, SECURITY, our headers (a
 * content type is a short static string), CORS with what it echoes. */
static size_t
head_room(const gw_http_t *h)
{
    size_t room = 256 + sizeof SECURITY;

    if (h->allow_origin[0] != '\0')
        room += 256 + strlen(h->allow_origin) + (h->allow_headers ? strlen(h->allow_headers) : 0);
    return room;
}

/* Answers up to this size are assembled on the stack. */
#define STACK_BYTES 8192

void
gw__http_respond(gw_conn_t *c, int status, const char *ctype, const char *body, size_t len)
{
    gw_http_t *h = &c->http;
    size_t blen = h->head ? 0 : len, cap = head_room(h) + blen, n = 0;
    char stack[STACK_BYTES], *buf = stack;

    if (!h->pending)
        return; /* answered already, or the client has gone */
    if (cap > sizeof stack)
        buf = util_malloc(cap);
    else
        cap = sizeof stack;
    appendf(buf, cap, &n,
            "HTTP/1.1 %d %s\r\n%scontent-type: %s\r\ncontent-length: %zu\r\n"
            "cache-control: no-store\r\n%s",
            status, reason(status), SECURITY, ctype, len,
            /* the client's keep-alive pool must not reuse a socket we end */
            h->close               ? "connection: close\r\n"
            : h->keep_alive_header ? "connection: keep-alive\r\n"
                                   : "");
    add_cors(buf, cap, &n, h);
    appendf(buf, cap, &n, "\r\n");
    assert(cap - n >= blen);
    if (blen > cap - n) /* NDEBUG: as above */
        blen = cap - n;
    if (blen > 0)
        memcpy(buf + n, body, blen);
    h->pending = 0;
    c->gw->http_inflight--;
    gw__front_answer(c, buf, n + blen, h->close);
    if (buf != stack)
        free(buf);
}

void
gw__http_closed(gw_t *gw, gw_conn_t *c)
{
    if (c->http.pending) {
        c->http.pending = 0;
        gw->http_inflight--;
    }
    free(c->http.allow_headers);
    c->http.allow_headers = NULL;
}
