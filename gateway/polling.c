/*
 * gateway/polling.c: Engine.IO v4's HTTP long-polling transport, the one
 * socket.io-client starts with by default.
 *
 * A polling session is a connection like a WebSocket one (rooms, claims,
 * the Socket.IO state, the output queue, the ping schedule), allocated here
 * instead of by lws: it has no socket of its own. A GET waits on it until
 * the writer has output for it (the writer answers the GET with every
 * queued packet, separated by 0x1e); a POST carries packets from the client,
 * which go to socketio.c one by one, as a WebSocket's messages do. Closing
 * a session answers a waiting GET (with Engine.IO's close packet when the
 * hub closes it, a noop when the client did or a WebSocket took it over)
 * and puts it on gw->poll_dead; this file frees it at the next loop check,
 * so that no caller ever holds a freed session. The upgrade to WebSocket is
 * socketio.c's (the probe) and conn.c's (the move). Sessions at once are
 * bounded by the fd limit, as sockets are (503 past it).
 *
 * Refusals are Engine.IO's, as the reference server sends them: 400 with
 * {"code":N,"message":...}.
 */
#include "polling.h"

#include "auth.h"
#include "conn.h"
#include "http.h"
#include "socketio.h"
#include "writer.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char ERR_TRANSPORT[] = "{\"code\":0,\"message\":\"Transport unknown\"}";
static const char ERR_SID[] = "{\"code\":1,\"message\":\"Session ID unknown\"}";
static const char ERR_METHOD[] = "{\"code\":2,\"message\":\"Bad handshake method\"}";
static const char ERR_BAD[] = "{\"code\":3,\"message\":\"Bad request\"}";
static const char ERR_VERSION[] = "{\"code\":5,\"message\":\"Unsupported protocol version\"}";
/* ours: as many polling sessions as the hub would take sockets */
static const char ERR_FULL[] = "{\"code\":3,\"message\":\"Too many sessions\"}";

static void
refuse(gw_conn_t *h, const char *body)
{
    gw__http_respond(h, 400, "application/json", body, strlen(body));
}

/* The longest Access-Control-Request-Headers echoed to a preflight. */
#define ALLOW_HEADERS_MAX 1024

/* Sets the CORS answer of request `h` when its Origin is allowed. */
static void
cors(gw_t *gw, gw_conn_t *h, const gw_req_t *r, int preflight)
{
    char origin[sizeof h->http.allow_origin];
    wire_span_t ac = r->ac_request_headers;
    int ok = 0;

    if (gw->cors_origins == NULL || r->origin.n == 0 || r->origin.n >= sizeof origin)
        return;
    memcpy(origin, r->origin.p, r->origin.n);
    origin[r->origin.n] = '\0';
    for (char **o = gw->cors_origins; *o && !ok; o++)
        ok = strcmp(*o, "*") == 0 || strcasecmp(*o, origin) == 0;
    if (!ok)
        return;
    memcpy(h->http.allow_origin, origin, sizeof origin);
    h->http.preflight = preflight;
    if (preflight && ac.n > 0 && ac.n <= ALLOW_HEADERS_MAX) {
        /* the front's parser let no control character through */
        h->http.allow_headers = util_malloc(ac.n + 1);
        memcpy(h->http.allow_headers, ac.p, ac.n);
        h->http.allow_headers[ac.n] = '\0';
    }
}

/* A new session, its open packet the answer to the handshake GET `h`. */
static void
handshake(gw_t *gw, gw_conn_t *h, const gw_req_t *r)
{
    gw_conn_t *s = util_malloc(sizeof *s);
    wire_claims_t claims;
    const char *why;

    gw__conn_open(gw, s, NULL, GW_FRAMING_SIO);
    util_random_id(s->ws.sio.sid, 20, UTIL_ID_B64URL);
    gw__conn_session_add(gw, s);
    /* a ?token= of the handshake serves a CONNECT without one, as for a
     * WebSocket's upgrade */
    if (gw__auth_req(gw, r, GW_AUTH_HEADER_OR_QUERY, &claims, &why) == 0) {
        s->ws.sio.have_claims = 1;
        s->ws.claims = claims;
    }
    gw__sio_open(gw, s);
    s->ws.sio.get = h;
    h->poll.session = s;
    h->poll.what = GW_POLL_GET;
    gw__out_poll(gw, s);
}

static void post_done(gw_t *gw, gw_conn_t *h);

void
gw__poll_request(gw_t *gw, gw_conn_t *h, const gw_req_t *r)
{
    char arg[32], sid[32];
    int method = r->method;
    gw_conn_t *s;

    gw->m.polls++;
    cors(gw, h, r, method == GW_M_OPTIONS);
    if (method == GW_M_OPTIONS) { /* a CORS preflight */
        gw__http_respond(h, 204, "text/plain", "", 0);
        return;
    }
    if (wire_http_query_arg(r->query, "EIO", arg, sizeof arg) < 0 || strcmp(arg, "4") != 0) {
        refuse(h, ERR_VERSION);
        return;
    }
    if (wire_http_query_arg(r->query, "transport", arg, sizeof arg) < 0 ||
        (strcmp(arg, "polling") != 0 && strcmp(arg, "websocket") != 0)) {
        refuse(h, ERR_TRANSPORT);
        return;
    }
    if (strcmp(arg, "websocket") == 0) { /* the WebSocket transport without an upgrade */
        refuse(h, method == GW_M_GET ? ERR_BAD : ERR_METHOD);
        return;
    }
    switch (wire_http_query_arg(r->query, "sid", sid, sizeof sid)) {
    case -1: /* no session yet: the handshake */
        if (method != GW_M_GET)
            refuse(h, ERR_METHOD);
        else if (gw->npolling >= gw->max_sessions) /* each holds memory, none a socket */
            gw__http_respond(h, 503, "application/json", ERR_FULL, sizeof ERR_FULL - 1);
        else
            handshake(gw, h, r);
        return;
    case -2: refuse(h, ERR_SID); return; /* longer than any of ours */
    default: break;
    }
    s = gw__conn_session_find(gw, sid, strlen(sid));
    if (s == NULL || gw__sio_overdue(gw, s)) {
        refuse(h, ERR_SID);
        return;
    }
    if (method == GW_M_GET) {
        if (s->ws.sio.get != NULL) {
            /* two GETs at once: the reference server refuses the second
             * and closes the session */
            refuse(h, ERR_BAD);
            gw__out_close(s, LWS_CLOSE_STATUS_PROTOCOL_ERR);
            return;
        }
        if (s->ws.sio.upgrade != NULL && s->ws.sio.upgrade->ws.sio.probed) {
            /* An upgrade under way: the client has paused polling and
             * waits for this GET to end before it sends "5" (a GET sent
             * after the probe's noop, before "3probe" reached it). The
             * reference server sends noops until the upgrade; queued
             * events stay queued and move to the WebSocket. */
            gw__http_respond(h, 200, "text/plain; charset=UTF-8", "6", 1);
            return;
        }
        s->ws.sio.get = h;
        h->poll.session = s;
        h->poll.what = GW_POLL_GET;
        /* it waits until the ping schedule's next packet at the latest; a
         * client that leaves meanwhile closes the session (gw__poll_reset) */
        gw__http_leave_cancels(h);
        gw__out_poll(gw, s);
        return;
    }
    if (method != GW_M_POST) {
        refuse(h, ERR_BAD);
        return;
    }
    if (s->ws.sio.post != NULL) {
        refuse(h, ERR_BAD);
        gw__out_close(s, LWS_CLOSE_STATUS_PROTOCOL_ERR);
        return;
    }
    if (r->len > gw->max_frame) { /* over the maxPayload the open packet gave */
        gw->m.too_large_closes++;
        gw__http_respond(h, 413, "application/json", ERR_BAD, sizeof ERR_BAD - 1);
        gw__out_close(s, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE);
        return;
    }
    s->ws.sio.post = h;
    h->poll.session = s;
    h->poll.what = GW_POLL_POST;
    if (r->len > 0) {
        h->poll.body = util_malloc(r->len);
        memcpy(h->poll.body, r->body, r->len);
        h->poll.len = h->poll.cap = r->len;
    }
    post_done(gw, h);
}

/* The packets of a POST, one by one, as a WebSocket's messages: 0, or the
 * close code of the first one refused. */
static int
receive_payload(gw_t *gw, gw_conn_t *s, const char *p, size_t len)
{
    size_t i = 0;

    while (i <= len) {
        const char *sep = memchr(p + i, 0x1e, len - i);
        size_t n = sep ? (size_t)(sep - (p + i)) : len - i;
        int code;

        if (n > 0 && p[i] == 'b') { /* a binary packet, base64: not carried */
            gw->m.binary_closes++;
            return LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE;
        }
        code = gw__conn_inbound(gw, s, p + i, n);
        if (code == 0)
            code = gw__sio_receive(gw, s, p + i, n);
        if (code != 0)
            return code;
        if (s->ws.close_code)
            return 0; /* closed meanwhile: the rest is not read */
        i += n + 1;
    }
    return 0;
}

/* A POST's packets, its body read whole. */
static void
post_done(gw_t *gw, gw_conn_t *h)
{
    gw_conn_t *s = h->poll.session;
    int code;

    h->poll.session = NULL;
    h->poll.what = GW_POLL_NONE;
    if (s != NULL)
        s->ws.sio.post = NULL;
    if (s == NULL || s->ws.close_code) { /* closed meanwhile */
        gw__poll_reset(gw, h);
        refuse(h, ERR_SID);
        return;
    }
    gw__conn_alive(gw, s);
    code = h->poll.len > 0 ? receive_payload(gw, s, h->poll.body, h->poll.len)
                           : LWS_CLOSE_STATUS_PROTOCOL_ERR; /* an empty payload */
    gw__poll_reset(gw, h);
    if (code == LWS_CLOSE_STATUS_NORMAL) {
        /* the client's close packet: a GET waiting gets a noop */
        gw__out_retire(s);
    } else if (code != 0) {
        if (code == LWS_CLOSE_STATUS_PROTOCOL_ERR)
            gw->m.protocol_closes++;
        gw__out_close(s, code);
        refuse(h, ERR_BAD);
        return;
    }
    gw__http_respond(h, 200, "text/html", "ok", 2);
}

void
gw__poll_reset(gw_t *gw, gw_conn_t *h)
{
    gw_conn_t *s = h->poll.session;

    (void)gw;
    if (s != NULL) {
        if (s->ws.sio.get == h) {
            /* a poll the client gave up (the front saw it leave): the
             * reference server closes the session */
            s->ws.sio.get = NULL;
            gw__out_close(s, LWS_CLOSE_STATUS_NORMAL);
        }
        if (s->ws.sio.post == h)
            s->ws.sio.post = NULL;
    }
    h->poll.session = NULL;
    h->poll.what = GW_POLL_NONE;
    free(h->poll.body);
    h->poll.body = NULL;
    h->poll.len = h->poll.cap = 0;
}

/* Frees the sessions closed since the last check. */
static void
on_reap(uv_check_t *chk)
{
    gw_t *gw = chk->data;

    while (gw->poll_dead != NULL) {
        gw_conn_t *s = gw->poll_dead;
        gw->poll_dead = s->ws.sio.dead_next;
        if (s->ws.sio.get != NULL)
            s->ws.sio.get->poll.session = NULL;
        if (s->ws.sio.post != NULL)
            s->ws.sio.post->poll.session = NULL;
        gw__conn_closed(gw, s);
        free(s);
    }
}

void
gw__poll_init(gw_t *gw)
{
    uv_check_init(gw->loop, &gw->poll_reap);
    gw->poll_reap.data = gw;
    uv_check_start(&gw->poll_reap, on_reap);
}

void
gw__poll_free_all(gw_t *gw)
{
    util_hnode_t *n, *next;

    /* open sessions (a shutdown that passed its deadline) are closed, then
     * freed with the dead ones */
    for (n = util_htable_next(&gw->sessions, NULL); n; n = next) {
        next = util_htable_next(&gw->sessions, n);
        gw__out_close(UTIL_CONTAINER_OF(n, gw_conn_t, ws.sio.node), LWS_CLOSE_STATUS_GOINGAWAY);
    }
    on_reap(&gw->poll_reap);
    util_htable_free(&gw->sessions);
}
