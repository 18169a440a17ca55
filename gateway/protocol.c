/*
 * gateway/protocol.c: the one lws protocol of the hub, and its dispatch.
 *
 * A single protocol serves HTTP and both WebSocket framings: lws binds a new
 * connection to the vhost's default protocol and a WebSocket upgrade that
 * names no subprotocol to it as well (docs/libraries.md: otherwise such a
 * client is bound to the HTTP protocol and silently gets nothing). This
 * file only routes callback reasons: the upgrade to ws.c, WebSockets to
 * ws.c, writer.c and conn.c. lws sees no other HTTP: the front (front.c)
 * serves it and hands lws the upgrades.
 */
#include "protocol.h"

#include "conn.h"
#include "http.h"
#include "state.h"
#include "writer.h"
#include "ws.h"

#include <string.h>
#include <strings.h>

static int
callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    gw_conn_t *c = user;
    struct lws_context *ctx = lws_get_context(wsi);
    gw_t *gw = ctx ? lws_context_user(ctx) : NULL;

    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: {
        /* `in` is not read: for an upgrade it does not know, lws 4.1 has
         * answered 403 and freed the headers `in` points into before it
         * calls us (docs/libraries.md). The headers, if still there: */
        char up[16];
        if (lws_hdr_copy(wsi, up, sizeof up, WSI_TOKEN_UPGRADE) <= 0)
            return -1; /* lws answered and dropped the request */
        if (strcasecmp(up, "websocket") != 0)
            return gw__http_reject_now(wsi, 400, "bad_upgrade", "only websocket upgrades");
        return gw__ws_confirm_upgrade(gw, wsi);
    }

    case LWS_CALLBACK_HTTP:
        /* lws is handed WebSocket upgrades only (front.c); a request that
         * reaches it anyway (after a refused upgrade, on the same
         * connection) is refused and the connection closed */
        gw__http_reject_now(wsi, 400, "bad_request", "only WebSocket upgrades here");
        return -1;

    case LWS_CALLBACK_HTTP_BODY:
    case LWS_CALLBACK_HTTP_BODY_COMPLETION: return -1;

    case LWS_CALLBACK_RAW_ADOPT:
    case LWS_CALLBACK_RAW_RX:
        /* a raw socket: the hub has none */
        return -1;

    case LWS_CALLBACK_ESTABLISHED: return gw__ws_established(gw, c, wsi);

    case LWS_CALLBACK_RECEIVE:
        return c->kind == GW_CONN_WS ? gw__ws_receive(gw, c, wsi, in, len) : -1;

    case LWS_CALLBACK_SERVER_WRITEABLE:
        return c->kind == GW_CONN_WS ? gw__out_writeable(gw, c, wsi) : -1;

    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        return c->kind == GW_CONN_WS ? gw__ws_peer_close(gw, c, wsi, in, len) : -1;

    case LWS_CALLBACK_RECEIVE_PONG:
        if (c != NULL && c->kind == GW_CONN_WS)
            gw__conn_alive(gw, c);
        break;

    case LWS_CALLBACK_CLOSED:
        if (c != NULL)
            gw__conn_closed(gw, c);
        break;

    default: break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

const struct lws_protocols gw__protocols[] = {
    {
        .name = "coordhub",
        .callback = callback,
        .per_session_data_size = sizeof(gw_conn_t),
        /* reassembly is ours (gw_ws_t.rx); lws hands us at most this much
         * of a frame per RECEIVE */
        .rx_buffer_size = 512, /* per connection: client ops are small */
        /* lws sends at most this much per write (else rx_buffer_size): our
         * coalesced batches go in one send() */
        .tx_packet_size = 65536,
    },
    {NULL, NULL, 0, 0, 0, NULL, 0},
};
