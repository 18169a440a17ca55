/*
 * gateway/ws.h: the WebSocket transport (ws.c): the upgrade and its
 * checks, inbound messages and their limits, close frames from the peer.
 * The framings (native.c, socketio.c) sit on top of the connection
 * (conn.c) and its output (writer.c); this file hands them messages.
 */
#ifndef COORDHUB_GW_WS_H
#define COORDHUB_GW_WS_H

#include "state.h"

/* HTTP_CONFIRM_UPGRADE: 0 to accept; 1 when a refusal was written (lws
 * then ends the transaction); -1 to hang up. */
int gw__ws_confirm_upgrade(gw_t *gw, struct lws *wsi);
/* ESTABLISHED: 0, or -1 to close. */
int gw__ws_established(gw_t *gw, gw_conn_t *c, struct lws *wsi);
/* RECEIVE: reassembles fragments and applies the limits (1003 binary, 1009
 * too large, 1007 not UTF-8, 1008 over the rate) before the framing sees a
 * message. Returns 0: every close of ours goes out from the writer. */
int gw__ws_receive(gw_t *gw, gw_conn_t *c, struct lws *wsi, const void *in, size_t len);
/* WS_PEER_INITIATED_CLOSE: 0 to let lws echo the peer's close, -1 to end
 * the connection (the answer to our close, or a close frame we refuse:
 * RFC 6455 §5.5.1, §7.4). */
int gw__ws_peer_close(gw_t *gw, gw_conn_t *c, struct lws *wsi, const void *in, size_t len);

#endif
