/*
 * gateway/ws.c: the WebSocket transport. The upgrade is checked here (the
 * path names the framing: /ws native, /socket.io/ Socket.IO; a native
 * upgrade needs a valid token, a Socket.IO one authenticates in its CONNECT
 * packet), inbound messages are reassembled and held to the limits, and
 * complete messages go to their framing. Closes of ours are asked of the
 * writer, from RECEIVE too (writer.c says why).
 */
#include "ws.h"

#include "auth.h"
#include "conn.h"
#include "http.h"
#include "native.h"
#include "recovery.h"
#include "socketio.h"
#include "writer.h"

#include <stdlib.h>
#include <string.h>

static int
path_framing(struct lws *wsi, enum gw_framing *out)
{
    char uri[256];
    int n = lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI);

    if (n <= 0)
        return UV_EINVAL;
    if (strcmp(uri, "/ws") == 0 || strcmp(uri, "/ws/") == 0) {
        *out = GW_FRAMING_NATIVE;
        return 0;
    }
    if (strcmp(uri, "/socket.io/") == 0 || strcmp(uri, "/socket.io") == 0) {
        *out = GW_FRAMING_SIO;
        return 0;
    }
    return UV_EINVAL;
}

int
gw__ws_confirm_upgrade(gw_t *gw, struct lws *wsi)
{
    wire_claims_t claims;
    enum gw_framing framing;
    const char *why, *body;
    int status;

    if (gw->shutting_down)
        return gw__http_reject_now(wsi, 503, "shutting_down", "the hub is stopping");
    if (path_framing(wsi, &framing) != 0)
        return gw__http_reject_now(wsi, 404, "not_found",
                                   "WebSocket endpoints are /ws and /socket.io/");
    if (framing == GW_FRAMING_SIO) {
        /* Socket.IO authenticates in its CONNECT packet, not at the upgrade */
        status = gw__sio_http_check(gw, wsi, &body);
        return status ? gw__http_reject_body(wsi, status, body) : 0;
    }
    if (gw__auth_request(gw, wsi, GW_AUTH_HEADER_OR_QUERY, &claims, &why) != 0) {
        gw->m.auth_failures++;
        LOG_DEBUG("gw", "upgrade refused: %s", why);
        return gw__http_reject_now(wsi, 401, "unauthorized", "missing or invalid token");
    }
    return 0;
}

int
gw__ws_established(gw_t *gw, gw_conn_t *c, struct lws *wsi)
{
    wire_claims_t claims;
    enum gw_framing framing;
    const char *why;
    int authed;

    if (path_framing(wsi, &framing) != 0)
        return -1;
    /* The headers are still attached here. A native upgrade was checked in
     * CONFIRM_UPGRADE; verifying again is what gives us the claims (the
     * HTTP half's per-session data is not carried over). A Socket.IO
     * upgrade's ?token=, if valid, is remembered for its CONNECT packet. */
    authed = gw__auth_request(gw, wsi, GW_AUTH_HEADER_OR_QUERY, &claims, &why) == 0;
    if (framing == GW_FRAMING_NATIVE && !authed)
        return -1;
    if (framing == GW_FRAMING_SIO) {
        /* the upgrade of a polling session (?sid=): a probe until the
         * client's "5", when the session moves here (socketio.c) */
        gw_conn_t *s = NULL;
        if (gw__sio_upgrade_of(gw, wsi, &s) != 0)
            return -1; /* its session went since CONFIRM_UPGRADE */
        gw__conn_open(gw, c, wsi, framing);
        if (s != NULL) {
            c->ws.sio.upgrade = s;
            s->ws.sio.upgrade = c;
        } else {
            c->ws.sio.have_claims = authed;
            if (authed)
                c->ws.claims = claims;
            gw__sio_open(gw, c);
        }
    } else {
        gw__conn_open(gw, c, wsi, framing);
        gw__conn_enter(gw, c, &claims);
        gw__rec_native(gw, c, wsi); /* ?offset=: SPEC §9 */
    }
    if (gw->shutting_down)
        gw__out_close(c, LWS_CLOSE_STATUS_GOINGAWAY);
    return 0;
}

/* One complete inbound message: returns 0, or a close code. */
static int
dispatch(gw_t *gw, gw_conn_t *c, const char *buf, size_t len)
{
    int code = gw__conn_inbound(gw, c, buf, len);

    if (code != 0)
        return code;
    if (c->ws.framing == GW_FRAMING_SIO)
        return gw__sio_receive(gw, c, buf, len);
    gw__native_receive(gw, c, buf, len);
    return 0;
}

int
gw__ws_receive(gw_t *gw, gw_conn_t *c, struct lws *wsi, const void *in, size_t len)
{
    int first = lws_is_first_fragment(wsi), final = lws_is_final_fragment(wsi);
    size_t remaining = lws_remaining_packet_payload(wsi);
    gw_ws_t *w = &c->ws;
    int code;

    if (w->close_code)
        return 0; /* closing: read and drop what it still sends */
    gw__conn_alive(gw, c);
    if (lws_frame_is_binary(wsi)) {
        gw->m.binary_closes++;
        gw__out_close(c, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE);
        return 0;
    }
    if ((first ? 0 : w->rxlen) + len + remaining > gw->max_frame) {
        gw->m.too_large_closes++;
        gw__out_close(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE);
        return 0;
    }
    if (first && final && remaining == 0) {
        /* the common case: the whole message in one piece, no copy */
        code = dispatch(gw, c, in, len);
    } else {
        if (first)
            w->rxlen = 0;
        if (w->rx == NULL)
            w->rx = util_malloc(gw->max_frame);
        memcpy(w->rx + w->rxlen, in, len);
        w->rxlen += len;
        if (!final || remaining > 0)
            return 0;
        code = dispatch(gw, c, w->rx, w->rxlen);
        /* do not keep 64 KiB per connection for one large message */
        free(w->rx);
        w->rx = NULL;
        w->rxlen = 0;
    }
    if (code != 0) {
        if (code == LWS_CLOSE_STATUS_PROTOCOL_ERR)
            gw->m.protocol_closes++;
        gw__out_close(c, code);
    }
    return 0;
}

/* A close frame we refuse: the peer has sent its last frame, so lws can
 * answer with ours and end the connection at once. */
static int
refuse_close(gw_conn_t *c, struct lws *wsi, int code, const char *text)
{
    gw__out_refused(c, code);
    lws_close_reason(wsi, (enum lws_close_status)code, (unsigned char *)text, strlen(text));
    return -1;
}

int
gw__ws_peer_close(gw_t *gw, gw_conn_t *c, struct lws *wsi, const void *in, size_t len)
{
    const unsigned char *p = in;
    unsigned code;

    if (c->ws.close_sent)
        return -1; /* the answer to our close frame: the handshake is done */
    if (len == 0)
        return 0;
    if (len == 1) {
        gw->m.protocol_closes++;
        return refuse_close(c, wsi, LWS_CLOSE_STATUS_PROTOCOL_ERR, "bad close");
    }
    code = (unsigned)p[0] << 8 | p[1];
    /* codes a peer may send: 1000-1003, 1007-1014, 3000-4999 */
    if (code < 1000 || (code >= 1004 && code <= 1006) || (code >= 1015 && code < 3000) ||
        code >= 5000) {
        gw->m.protocol_closes++;
        return refuse_close(c, wsi, LWS_CLOSE_STATUS_PROTOCOL_ERR, "bad close");
    }
    if (!util_utf8_valid((const char *)p + 2, len - 2)) {
        gw->m.utf8_closes++;
        return refuse_close(c, wsi, LWS_CLOSE_STATUS_INVALID_PAYLOAD, "bad reason");
    }
    return 0;
}
