/*
 * gateway/http.c: the HTTP response writer.
 *
 * A response is staged on the connection (status, type, body) and written
 * from HTTP_WRITEABLE: headers in one writeable, the body in the next, as
 * lws wants one write per writeable. Staging also serves answers that come
 * later (a Redis reply): the connection is kept and asked for writeable.
 * The request's own state belongs to whoever serves it (api.c); this file
 * only counts the responses owed, which the graceful stop waits for.
 */
#include "http.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void
drop_staged(gw_http_t *h)
{
    free(h->body);
    h->body = NULL;
    h->len = 0;
    h->status = 0;
    h->headers_sent = 0;
    h->ctype = NULL;
}

void
gw__http_begin(gw_t *gw, gw_conn_t *c, struct lws *wsi, int head)
{
    c->kind = GW_CONN_HTTP;
    c->gw = gw;
    c->wsi = wsi;
    drop_staged(&c->http);
    c->http.allow_origin[0] = '\0';
    c->http.preflight = 0;
    c->http.head = head;
    c->http.close = 0;
    c->http.completions = 0;
    if (!c->http.pending) {
        c->http.pending = 1;
        gw->http_inflight++;
    }
    gw->m.http_requests++;
}

void
gw__http_respond(gw_conn_t *c, int status, const char *ctype, const char *body, size_t len)
{
    drop_staged(&c->http);
    c->http.status = status;
    c->http.ctype = ctype;
    c->http.body = util_malloc(LWS_PRE + len + 1);
    memcpy(c->http.body + LWS_PRE, body, len);
    c->http.len = len;
    if (c->wsi)
        lws_callback_on_writable(c->wsi);
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

void
gw__http_close_after(gw_conn_t *c)
{
    c->http.close = 1;
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
        rc = -1; /* just hang up */
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

/* The CORS headers of an allowed Origin (polling.c decides). */
static int
add_cors(struct lws *wsi, const gw_http_t *h, unsigned char **p, unsigned char *end)
{
    static const char methods[] = "GET, POST, OPTIONS";
    char req[1024];
    int n;

    if (h->allow_origin[0] == '\0')
        return 0;
    if (lws_add_http_header_by_name(wsi, (const unsigned char *)"access-control-allow-origin:",
                                    (const unsigned char *)h->allow_origin,
                                    (int)strlen(h->allow_origin), p, end) ||
        lws_add_http_header_by_name(wsi,
                                    (const unsigned char *)"access-control-allow-credentials:",
                                    (const unsigned char *)"true", 4, p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"vary:",
                                    (const unsigned char *)"Origin", 6, p, end))
        return 1;
    if (!h->preflight)
        return 0;
    if (lws_add_http_header_by_name(wsi, (const unsigned char *)"access-control-allow-methods:",
                                    (const unsigned char *)methods, sizeof methods - 1, p, end))
        return 1;
#if defined(LWS_WITH_HTTP_UNCOMMON_HEADERS) || defined(LWS_HTTP_HEADERS_ALL)
    /* a header lws knows by name is not kept for the custom lookup */
    n = lws_hdr_copy(wsi, req, sizeof req, WSI_TOKEN_HTTP_AC_REQUEST_HEADERS);
#else
    n = lws_hdr_custom_copy(wsi, req, sizeof req, "access-control-request-headers:", 31);
#endif
    if (n > 0 && lws_add_http_header_by_name(
                     wsi, (const unsigned char *)"access-control-allow-headers:",
                     (const unsigned char *)req, n, p, end))
        return 1;
    return 0;
}

int
gw__http_writeable(gw_t *gw, gw_conn_t *c, struct lws *wsi)
{
    /* lws's security headers (~320 bytes), ours, and CORS with a long
     * origin and header list */
    unsigned char hdr[LWS_PRE + 3072], *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof hdr;
    gw_http_t *h = &c->http;

    if (c->kind != GW_CONN_HTTP || !h->pending || h->status == 0)
        return 0;
    if (!h->headers_sent) {
        if (lws_add_http_common_headers(wsi, (unsigned)h->status, h->ctype, h->len, &p, end) ||
            lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                        (const unsigned char *)"no-store", 8, &p, end) ||
            /* the client's keep-alive pool must not reuse a socket we end */
            (h->close && lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
                                                      (const unsigned char *)"close", 5, &p,
                                                      end)) ||
            add_cors(wsi, h, &p, end) || lws_finalize_write_http_header(wsi, start, &p, end))
            return -1;
        h->headers_sent = 1;
        if (h->len > 0 && !h->head) {
            lws_callback_on_writable(wsi);
            return 0;
        }
    } else if (lws_write(wsi, (unsigned char *)h->body + LWS_PRE, h->len, LWS_WRITE_HTTP_FINAL) !=
               (int)h->len) {
        return -1;
    }
    drop_staged(h);
    h->pending = 0;
    gw->http_inflight--;
    if (h->close)
        return -1; /* the answer is written: lws flushes it, then closes */
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

void
gw__http_closed(gw_t *gw, gw_conn_t *c)
{
    if (c->http.pending) {
        c->http.pending = 0;
        gw->http_inflight--;
    }
    drop_staged(&c->http);
    c->wsi = NULL;
}
