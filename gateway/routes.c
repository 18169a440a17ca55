/*
 * gateway/routes.c: an HTTP request's way in, once the front (front.c) has
 * read it whole and checked its framing: /v1/ goes to the API (api.c) and
 * the rest is served here: /healthz, /readyz, /metrics, the files of the
 * web root; a /socket.io/ request that is not an upgrade goes to
 * Engine.IO's polling transport (polling.c).
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
is_sio_path_n(const char *p, size_t n)
{
    return n >= 10 && strncmp(p, "/socket.io", 10) == 0 && (n == 10 || p[10] == '/');
}

static int
is_sio_path(const char *uri)
{
    return is_sio_path_n(uri, strlen(uri));
}

/* The largest file of the web root served (the web demo's are a few KiB). */
#define STATIC_MAX (4 * 1024 * 1024)

/* Serves a file of the web root through the same response writer as every
 * other answer (so HEAD and pipelined requests behave the same): it is read
 * whole, which is fine for the small files of a demo page. The path is
 * percent-decoded (front.c): "..", "//" and backslashes are refused. */
static void
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
        return;
    }
    n = snprintf(path, sizeof path, "%s%s%s", gw->web_root, uri,
                 uri[strlen(uri) - 1] == '/' ? "index.html" : "");
    if (n < 0 || (size_t)n >= sizeof path || stat(path, &st) != 0 || !S_ISREG(st.st_mode) ||
        st.st_size > STATIC_MAX || (f = fopen(path, "rb")) == NULL) {
        gw__http_error(c, 404, "not_found", "no such path");
        return;
    }
    buf = util_malloc((size_t)st.st_size + 1);
    got = fread(buf, 1, (size_t)st.st_size, f);
    fclose(f);
    if (got != (size_t)st.st_size) {
        free(buf);
        gw__http_error(c, 404, "not_found", "no such path");
        return;
    }
    gw__http_respond(c, 200, mime_type(path), buf, got);
    free(buf);
}

void
gw__routes_refuse(gw_t *gw, gw_conn_t *c, wire_span_t path, int status, const char *code,
                  const char *message)
{
    (void)gw;
    gw__http_close_after(c);
    if (path.p != NULL && is_sio_path_n(path.p, path.n)) {
        /* Engine.IO answers in its own words */
        static const char bad[] = "{\"code\":3,\"message\":\"Bad request\"}";
        gw__http_respond(c, 400, "application/json", bad, sizeof bad - 1);
        return;
    }
    gw__http_error(c, status, code, message);
}

void
gw__routes_request(gw_t *gw, gw_conn_t *c, const gw_req_t *r)
{
    const char *uri = r->path;
    int method = r->method;

    gw__api_reset(c);
    gw__poll_reset(gw, c);
    if (gw->shutting_down) {
        gw__http_error(c, 503, "shutting_down", "the hub is stopping");
        return;
    }
    if (strncmp(uri, "/v1/", 4) == 0) {
        /* RFC 9112 §6.3: no Content-Length, no body; the API says so */
        if (!r->has_length && (method == GW_M_POST || method == GW_M_PUT || method == GW_M_PATCH))
            gw__http_error(c, 411, "length_required",
                           "request bodies need Content-Length (no chunked encoding)");
        else
            gw__api_request(gw, c, r);
        return;
    }
    if (strcmp(uri, "/healthz") == 0 || strcmp(uri, "/readyz") == 0 ||
        strcmp(uri, "/metrics") == 0) {
        if (method != GW_M_GET && method != GW_M_HEAD) {
            gw__http_error(c, 405, "method_not_allowed", "use GET");
            return;
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
        return;
    }
    if (is_sio_path(uri)) {
        gw__poll_request(gw, c, r);
        return;
    }
    if ((method == GW_M_GET || method == GW_M_HEAD) && gw->web_root != NULL) {
        serve_static(gw, c, uri);
        return;
    }
    gw__http_error(c, 404, "not_found", "no such path");
}
