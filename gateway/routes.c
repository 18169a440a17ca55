/*
 * gateway/routes.c: an HTTP request's way in. Its body's framing is checked
 * first, whatever the path (a body that cannot be delimited would be read
 * as the next request); then /v1/ goes to the API (api.c) and the rest is
 * served here: /healthz, /readyz, /metrics, the files of the web root; a
 * /socket.io/ request that is not an upgrade goes to Engine.IO's polling
 * transport (polling.c).
 */
#include "routes.h"

#include "api.h"
#include "http.h"
#include "metrics.h"
#include "polling.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int
ready(const gw_t *gw)
{
    return gw->bus != NULL && bus_ready(gw->bus) && !gw->shutting_down;
}

static const char *
mime_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(path, '.');
    if (dot != NULL)
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcmp(dot, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

static int
is_sio_path(const char *uri)
{
    return strncmp(uri, "/socket.io", 10) == 0 && (uri[10] == '\0' || uri[10] == '/');
}

/* The largest file of the web root served (the web demo's are a few KiB). */
#define STATIC_MAX (4 * 1024 * 1024)

/* Serves a file of the web root through the same response writer as every
 * other answer (so HEAD and pipelined requests behave the same): it is read
 * whole, which is fine for the small files of a demo page. lws has already
 * percent-decoded the path and collapsed "..", but we refuse anything odd
 * ourselves all the same. */
static int
serve_static(gw_t *gw, gw_conn_t *c, const char *uri)
{
    char path[1024];
    struct stat st;
    FILE *f;
    char *buf;
    size_t got;
    int n;

    if (uri[0] != '/' || strstr(uri, "..") != NULL || strstr(uri, "//") != NULL ||
        strchr(uri, '\\') != NULL) {
        gw__http_error(c, 404, "not_found", "no such path");
        return 0;
    }
    n = snprintf(path, sizeof path, "%s%s%s", gw->web_root, uri,
                 uri[strlen(uri) - 1] == '/' ? "index.html" : "");
    if (n < 0 || (size_t)n >= sizeof path || stat(path, &st) != 0 || !S_ISREG(st.st_mode) ||
        st.st_size > STATIC_MAX || (f = fopen(path, "rb")) == NULL) {
        gw__http_error(c, 404, "not_found", "no such path");
        return 0;
    }
    buf = util_malloc((size_t)st.st_size + 1);
    got = fread(buf, 1, (size_t)st.st_size, f);
    fclose(f);
    if (got != (size_t)st.st_size) {
        free(buf);
        gw__http_error(c, 404, "not_found", "no such path");
        return 0;
    }
    gw__http_respond(c, 200, mime_type(path), buf, got);
    free(buf);
    return 0;
}

/* Refuses a request whose body cannot be skipped and closes the connection
 * once the answer is out: anything lws read after it would be taken for the
 * next request. */
static int
refuse_and_close(struct lws *wsi, const char *uri, int status, const char *code,
                 const char *message)
{
    if (is_sio_path(uri)) /* Engine.IO answers in its own words */
        gw__http_reject_body(wsi, 400, "{\"code\":3,\"message\":\"Bad request\"}");
    else
        gw__http_reject_now(wsi, status, code, message);
    return -1;
}

int
gw__routes_request(gw_t *gw, gw_conn_t *c, struct lws *wsi, const char *uri)
{
    char *uri_ptr = NULL, clbuf[32], *end;
    int uri_len = 0, method, has_cl;
    unsigned long long cl = 0;

    method = lws_http_get_uri_and_method(wsi, &uri_ptr, &uri_len);
    gw__api_reset(c);
    gw__poll_reset(gw, c);
    gw__http_begin(gw, c, wsi, method == GW_M_HEAD);
    /* The body's framing first, whatever the route: one that cannot be
     * delimited (chunked, or a body method without Content-Length) would be
     * read as the next request, and one over the limit is not read at all;
     * both are refused and the connection closed. A well-framed body on a
     * route that takes none is read and dropped (body_state). */
    has_cl = lws_hdr_copy(wsi, clbuf, sizeof clbuf, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0;
    if (has_cl) {
        cl = strtoull(clbuf, &end, 10);
        if (end == clbuf || *end != '\0')
            return refuse_and_close(wsi, uri, 400, "bad_request", "bad Content-Length");
    }
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0)
        return refuse_and_close(wsi, uri, 411, "length_required",
                                "request bodies need Content-Length (no chunked encoding)");
    if (!has_cl && (method == GW_M_POST || method == GW_M_PUT || method == GW_M_PATCH)) {
        /* No body by RFC 9112 §6.3, but lws then reads until the peer
         * closes: the API says so (411), other routes answer as they do
         * and the connection ends after the answer. */
        if (strncmp(uri, "/v1/", 4) == 0)
            return refuse_and_close(wsi, uri, 411, "length_required",
                                    "request bodies need Content-Length (no chunked encoding)");
        gw__http_close_after(c);
    }
    if (cl > GW_BODY_MAX)
        return refuse_and_close(wsi, uri, 413, "too_large", "request body over 1 MiB");
    /* A request with a body that lws parsed from its own buffer (sent
     * behind another before that one's answer): once our HTTP callback
     * returns, lws 4.1 feeds its buffered input to the body from the start
     * of the very chunk it is parsing the headers from (the headers taken
     * for body), consumes that chunk and frees it, then goes on with the
     * body from its pointer into the freed chunk (lws_http_action's loop
     * over the wsi's buflist, docs/libraries.md): a use-after-free. Only
     * ending the connection here, before lws reads the body, avoids it;
     * the answers before it have gone out. */
    if (gw__http_from_buffer(wsi, cl > 0)) {
        LOG_DEBUG("http", "a request with a body pipelined behind another: connection closed");
        return -1;
    }
    /* Keep-alive, one request at a time: lws 4.1 mishandles a request read
     * from its buffer behind another one whose answer is not written yet
     * (it re-reads consumed or freed input, docs/libraries.md), so the
     * connection's input is held from the end of a request (here when it
     * has no body, at its completion otherwise) until its answer is out;
     * pipelined requests are then read and answered in order. Engine.IO's
     * polling requests keep one request per connection (`Connection:
     * close`): a waiting GET must still see its client go away. */
    if (is_sio_path(uri))
        gw__http_close_after(c);
    else if (cl == 0 && !c->http.close)
        gw__http_hold(c);
    if (gw->shutting_down) {
        gw__http_error(c, 503, "shutting_down", "the hub is stopping");
        return 0;
    }
    if (strncmp(uri, "/v1/", 4) == 0)
        return gw__api_request(gw, c, wsi, uri, method, (size_t)cl);
    if (strcmp(uri, "/healthz") == 0 || strcmp(uri, "/readyz") == 0 ||
        strcmp(uri, "/metrics") == 0) {
        if (method != GW_M_GET && method != GW_M_HEAD) {
            gw__http_error(c, 405, "method_not_allowed", "use GET");
            return 0;
        }
        if (uri[1] == 'h') {
            gw__http_respond(c, 200, "application/json", "{\"status\":\"ok\"}", 15);
        } else if (uri[1] == 'r') {
            if (ready(gw))
                gw__http_respond(c, 200, "application/json", "{\"status\":\"ready\"}", 18);
            else
                gw__http_respond(c, 503, "application/json",
                                 "{\"status\":\"not_ready\",\"redis\":\"unavailable\"}", 43);
        } else {
            size_t len;
            char *text = gw__metrics_render(gw, &len);
            gw__http_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
            free(text);
        }
        return 0;
    }
    if (is_sio_path(uri))
        return gw__poll_request(gw, c, wsi, method, (size_t)cl);
    if ((method == GW_M_GET || method == GW_M_HEAD) && gw->web_root != NULL)
        return serve_static(gw, c, uri);
    gw__http_error(c, 404, "not_found", "no such path");
    return 0;
}


int
gw__routes_body(gw_t *gw, gw_conn_t *c, const void *in, size_t len)
{
    if (c->poll.what == GW_POLL_POST)
        return gw__poll_body(gw, c, in, len);
    return gw__api_body(gw, c, in, len);
}

int
gw__routes_body_done(gw_t *gw, gw_conn_t *c)
{
    int rc;

    /* Once a request's body is complete its input is held, so lws has no
     * reason to report the completion again, except its pipelining bug: a
     * request with a body read from its buffer behind another is parsed in
     * a loop that takes whatever follows the body for more of it and
     * reports the completion again, forever, never returning to the event
     * loop (docs/libraries.md). A second completion ends the connection;
     * the answers to the requests before it have gone out. A client that
     * does not pipeline bodies (wrk, browsers, Node's agents) never meets
     * it: a request that arrives while another waits stays in the kernel
     * until the answer is out, and lws reads it fresh.
     * A request whose answer may wait on other clients is not held
     * (gw__http_unhold): lws reports its completion again for every read
     * that brings more input, i.e. a request pipelined behind it. That
     * cannot be answered in order without holding the input, so the
     * connection ends (the wait is cancelled; the client may retry).
     * Without the hold for other reasons (a connection that closes after
     * its answer), lws re-reports once per pass over its buffered input,
     * harmless, but the same loop can spin: a bound ends it. */
    if (c->http.body_done++ && (c->http.held || c->http.unheld || c->http.body_done > 64))
        return -1;
    if (c->poll.what == GW_POLL_POST)
        rc = gw__poll_body_done(gw, c);
    else
        rc = gw__api_body_done(gw, c);
    /* held from here, after the dispatch: it may have asked for no hold */
    if (rc == 0 && !c->http.close)
        gw__http_hold(c);
    return rc;
}
