/*
 * gateway/socketio.h: the Socket.IO v4 framing (socketio.c): Engine.IO's
 * handshake checks, its open packet and pings, Socket.IO's packets.
 */
#ifndef COORDHUB_GW_SOCKETIO_H
#define COORDHUB_GW_SOCKETIO_H

#include "state.h"

/* Engine.IO's own HTTP error for a /socket.io/ request it cannot serve:
 * returns the status and sets `*body` (static JSON), or 0 when the query is
 * a valid WebSocket handshake (`want_upgrade`: the request is an upgrade). */
int gw__sio_http_check(struct lws *wsi, int want_upgrade, const char **body);
/* The connection is open: a session id and Engine.IO's open packet. */
void gw__sio_open(gw_t *gw, gw_conn_t *c);
/* One complete inbound message: 0, or a WebSocket close code. */
int gw__sio_receive(gw_t *gw, gw_conn_t *c, const char *buf, size_t len);
/* The ping schedule (liveness.c calls it every sweep): a ping when due, a
 * close (1008) when the last one went unanswered for pingTimeout. */
void gw__sio_sweep(gw_t *gw, gw_conn_t *c, uint64_t now);

#endif
