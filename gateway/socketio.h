/*
 * gateway/socketio.h: the Socket.IO v4 framing (socketio.c): Engine.IO's
 * handshake checks, its open packet and pings, Socket.IO's packets.
 */
#ifndef COORDHUB_GW_SOCKETIO_H
#define COORDHUB_GW_SOCKETIO_H

#include "state.h"

/* A WebSocket upgrade on /socket.io/: 0 when its query is Engine.IO's
 * (EIO=4, transport=websocket, and a ?sid= names a polling session that
 * can be upgraded), else the status with `*body` (static JSON), as the
 * reference server refuses it. */
int gw__sio_http_check(gw_t *gw, struct lws *wsi, const char **body);
/* At ESTABLISHED: the polling session the upgrade's ?sid= names (*s), or
 * *s NULL when it names none. UV_ENOENT when the session is gone. */
int gw__sio_upgrade_of(gw_t *gw, struct lws *wsi, gw_conn_t **s);
/* The connection (a WebSocket or a polling session) is open: session ids,
 * Engine.IO's open packet, the ping schedule and the connect timeout. */
void gw__sio_open(gw_t *gw, gw_conn_t *c);
/* One complete inbound message: 0, or a WebSocket close code. */
int gw__sio_receive(gw_t *gw, gw_conn_t *c, const char *buf, size_t len);
/* A request for session `c` came: if one of its deadlines has passed
 * whose timer has not run yet (a busy loop), it is closed now, as the
 * timer would have. 1 when closed. */
int gw__sio_overdue(gw_t *gw, gw_conn_t *c);
/* Starts Engine.IO's schedule (its timer closes with the gateway): a ping
 * pingInterval after the open or the last pong, a close (1008) when one
 * goes unanswered for pingTimeout, a close (1000) when no CONNECT came
 * within the connect timeout; each exactly at its deadline. */
void gw__sio_init(gw_t *gw);

#endif
