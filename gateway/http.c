/*
 * gateway/http.c: the HTTP response writer.
 *
 * A response is staged on the connection (status, type, body) and written
 * from HTTP_WRITEABLE, headers and body in one write. Staging also serves
 * answers that come later (a Redis reply): the connection is kept and asked
 * for writeable. Connections are kept alive; a request's input is held
 * until its answer is out (gw__http_hold), so pipelined requests are
 * answered in order.
 * The request's own state belongs to whoever serves it (api.c); this file
 * only counts the responses owed, which the graceful stop waits for.
 */
#include "http.h"

#include "writer.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void
drop_staged(gw_http_t *h)
{
    free(h->body);
    h->body = NULL;
    h->len = 0;
    h->status = 0;
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
    c->http.body_done = 0;
    c->http.unheld = 0;
    if (!c->http.pending) {
        c->http.pending = 1;
        gw->http_inflight++;
    }
    gw->m.http_requests++;
}

static void
ready_remove(gw_t *gw, gw_conn_t *c)
{
    gw_http_t *h = &c->http;

    if (!h->ready)
        return;
    if (h->rprev)
        h->rprev->http.rnext = h->rnext;
    else
        gw->http_ready = h->rnext;
    if (h->rnext)
        h->rnext->http.rprev = h->rprev;
    h->ready = 0;
    h->rnext = h->rprev = NULL;
}

static void
on_wake(uv_idle_t *i)
{
    (void)i; /* only there to keep the poll phase from blocking */
}

void
gw__http_respond(gw_conn_t *c, int status, const char *ctype, const char *body, size_t len)
{
    gw_t *gw = c->gw;
    gw_http_t *h = &c->http;

    drop_staged(h);
    h->status = status;
    h->ctype = ctype;
    h->body = util_malloc(LWS_PRE + len + 1);
    memcpy(h->body + LWS_PRE, body, len);
    h->len = len;
    if (c->wsi == NULL)
        return;
    if (h->close) {
        lws_callback_on_writable(c->wsi); /* written, then closed, from there */
        return;
    }
    /* Written by gw__http_flush at the end of this loop iteration (from a
     * timer's answer: before the loop polls again), outside any lws
     * callback: lws 4.1 does not call HTTP_WRITEABLE while the input is
     * held, and the transaction's end rebinds the protocol, which frees
     * the connection's state under a callback still using it. */
    if (!h->ready) {
        h->ready = 1;
        h->rprev = NULL;
        h->rnext = gw->http_ready;
        if (gw->http_ready)
            gw->http_ready->http.rprev = c;
        gw->http_ready = c;
        uv_idle_start(&gw->wake, on_wake);
    }
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

void
gw__http_hold(gw_conn_t *c)
{
    if (c->http.held || c->http.unheld || c->wsi == NULL)
        return;
    lws_rx_flow_control(c->wsi, 0);
    c->http.held = 1;
}

void
gw__http_unhold(gw_conn_t *c)
{
    c->http.unheld = 1;
    if (c->http.held && c->wsi != NULL) {
        c->http.held = 0;
        lws_rx_flow_control(c->wsi, 1);
    }
}

/* Room for lws's security headers (~320 bytes), ours, and CORS with a long
 * origin and header list. */
#define HDR_ROOM 3072
/* Answers up to this size are assembled on the stack. */
#define STACK_BODY 4096

/*
 * Writes the staged answer: headers and body in one buffer and one write,
 * so one send() per answer. Returns 0, or -1 when the connection failed.
 */
static int
write_answer(gw_t *gw, gw_conn_t *c, struct lws *wsi)
{
    unsigned char stack[LWS_PRE + HDR_ROOM + STACK_BODY], *buf = stack, *start, *p, *end;
    gw_http_t *h = &c->http;
    size_t body = h->head ? 0 : h->len, total;
    int rc = -1;

    if (body > STACK_BODY)
        buf = util_malloc(LWS_PRE + HDR_ROOM + body);
    start = p = buf + LWS_PRE;
    end = start + HDR_ROOM;
    if (lws_add_http_common_headers(wsi, (unsigned)h->status, h->ctype, h->len, &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-store", 8, &p, end) ||
        /* the client's keep-alive pool must not reuse a socket we end */
        (h->close && lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
                                                  (const unsigned char *)"close", 5, &p, end)) ||
        add_cors(wsi, h, &p, end) || lws_finalize_http_header(wsi, &p, end))
        goto out;
    if (body > 0)
        memcpy(p, h->body + LWS_PRE, body);
    total = (size_t)(p - start) + body;
    if (lws_write(wsi, start, total, LWS_WRITE_HTTP_FINAL) != (int)total)
        goto out;
    rc = 0;
out:
    if (buf != stack)
        free(buf);
    drop_staged(h);
    h->pending = 0;
    gw->http_inflight--;
    return rc;
}

int
gw__http_writeable(gw_t *gw, gw_conn_t *c, struct lws *wsi)
{
    gw_http_t *h = &c->http;

    /* only answers that close the connection are written from here */
    if (c->kind != GW_CONN_HTTP || !h->pending || h->status == 0 || !h->close)
        return 0;
    write_answer(gw, c, wsi);
    return -1; /* written (or failed): lws flushes it, then closes */
}

/* What lws has read of the socket so far, kept on the wsi (the
 * connection's state does not outlive the transaction) for the next
 * request's HTTP callback to compare (gw__http_from_buffer). No mark: lws
 * holds none of the connection's input, so the next request is read from
 * the socket; 1: not measurable. */
static void
mark_read(struct lws *wsi, int buffered)
{
    long long got;

    if (!buffered) {
        lws_set_opaque_user_data(wsi, NULL);
        return;
    }
    got = gw__tcp_bytes_read(lws_get_socket_fd(wsi), 1);
    lws_set_opaque_user_data(wsi, (void *)(uintptr_t)(got < 0 ? 1 : (uintptr_t)got + 2));
}

/*
 * Ends the transaction on `wsi` after its answer went out: lws rebinds the
 * protocol, which frees the connection's state (docs/libraries.md), and
 * waits for POLLOUT before it reads the next request. When the kernel took
 * the whole answer and lws holds no input of the connection, the socket is
 * writable and nothing is left to parse: lws is told so at once, which
 * saves a round of the loop and two interest changes (each an epoll_ctl
 * pair in lws's libuv glue), and woken later for the timeout it set
 * (gw__out_wake_lws). With input buffered (a pipelined request), lws's own
 * POLLOUT is waited for: its idle handler, which parses that input, starts
 * only from its own poll callback.
 */
static void
end_transaction(gw_t *gw, struct lws *wsi, int buffered)
{
    int rc;

    mark_read(wsi, buffered);
    gw->http_completing = wsi;
    gw->http_rebound = 0;
    rc = lws_http_transaction_completed(wsi);
    gw->http_completing = NULL;
    if (rc != 0) {
        gw__out_timeout(gw, wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        return;
    }
    if (gw->http_rebound && !buffered && !lws_partial_buffered(wsi)) {
        struct lws_pollfd pfd = {
            .fd = lws_get_socket_fd(wsi), .events = LWS_POLLOUT, .revents = LWS_POLLOUT};

        lws_service_fd(gw->ctx, &pfd);
        gw__out_wake_lws(gw);
    }
}

void
gw__http_flush(gw_t *gw)
{
    gw_conn_t *c;

    while ((c = gw->http_ready) != NULL) {
        struct lws *wsi = c->wsi;
        int buffered;

        ready_remove(gw, c);
        if (wsi == NULL || !c->http.pending || c->http.status == 0)
            continue;
        if (write_answer(gw, c, wsi) != 0) {
            /* not from inside an lws callback: have lws close it soon */
            gw__out_timeout(gw, wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
            continue;
        }
        /* Input again. Then whether lws still holds some of it: its
         * service timeout is 0 when a connection not held has input
         * buffered (this one, or another: then it is assumed to be this
         * one). A part of the answer the kernel did not take is lws's to
         * send; it ends the transaction after it. */
        if (c->http.held) {
            c->http.held = 0;
            lws_rx_flow_control(wsi, 1);
        }
        buffered = lws_service_adjust_timeout(gw->ctx, 1, 0) == 0;
        end_transaction(gw, wsi, buffered); /* frees c */
    }
}

int
gw__http_from_buffer(struct lws *wsi, int body)
{
    uintptr_t mark = (uintptr_t)lws_get_opaque_user_data(wsi);
    long long got;

    lws_set_opaque_user_data(wsi, NULL);
    if (mark == 0)
        return 0; /* a first request, or nothing buffered at the last answer:
                   * read from the socket */
    if (!body)
        return 0; /* the mark is only wanted for a body (routes.c) */
    if (mark == 1)
        return 1;
    got = gw__tcp_bytes_read(lws_get_socket_fd(wsi), 0);
    /* lws reads the socket only when its buffer for the connection is
     * empty: a read since the answer means none of it is left */
    return got < 0 || (uintptr_t)got + 2 <= mark;
}

void
gw__http_closed(gw_t *gw, gw_conn_t *c)
{
    ready_remove(gw, c);
    if (c->http.pending) {
        c->http.pending = 0;
        gw->http_inflight--;
    }
    drop_staged(&c->http);
    c->wsi = NULL;
}
