/*
 * gateway/conn.h: a WebSocket connection's life and its rooms (conn.c),
 * whatever its framing: the list of connections, the user room it enters,
 * the rooms it may join under its roles, the configuration keys it watches.
 */
#ifndef COORDHUB_GW_CONN_H
#define COORDHUB_GW_CONN_H

#include "state.h"

/* ESTABLISHED: `c` (fresh from lws) becomes a WebSocket of `framing`,
 * listed and counted. It receives no event until gw__conn_enter. */
void gw__conn_open(gw_t *gw, gw_conn_t *c, struct lws *wsi, enum gw_framing framing);
/* An Engine.IO polling session (`c` from gw__conn_open with no wsi, its
 * sid set): listed by sid, counted apart. */
void gw__conn_session_add(gw_t *gw, gw_conn_t *c);
/* The open polling session of `sid`, or NULL (unknown, or closing). */
gw_conn_t *gw__conn_session_find(gw_t *gw, const char *sid, size_t len);
/* The upgrade's last step: the WebSocket `to` takes over the polling
 * session `from`: its claims, Socket.IO state, rooms and queued output,
 * in order (nothing published meanwhile is lost). `from` is left empty,
 * to be closed by its owner. */
void gw__conn_move(gw_t *gw, gw_conn_t *from, gw_conn_t *to);
/* CLOSED: leaves every room, drops the output, unlists (a polling session
 * leaves the sid table too; a pending upgrade is ended on both sides).
 * Idempotent. */
void gw__conn_closed(gw_t *gw, gw_conn_t *c);
/* Authenticated as `claims`: joins user:<sub> and receives events. */
void gw__conn_enter(gw_t *gw, gw_conn_t *c, const wire_claims_t *claims);
/* Socket.IO's DISCONNECT: leaves every room, receives nothing more. */
void gw__conn_leave_all(gw_t *gw, gw_conn_t *c);
/* The peer sent data or a PONG: it is alive (liveness.c reads it). */
void gw__conn_alive(gw_t *gw, gw_conn_t *c);

/* A new token for a live connection (already verified): 0, or UV_EPERM
 * when its `sub` is not the connection's (the caller closes it, 4003).
 * Its roles are read again: rooms they no longer open are left, with a
 * `left` event each; `expiring` is rescheduled for its `exp`. */
int gw__conn_refresh(gw_t *gw, gw_conn_t *c, const wire_claims_t *claims);
/* The token's lifetime (liveness.c, each sweep, `now` in unix s): the
 * `expiring` event when it is due, a close with 4001 at `exp`. Only for a
 * connection that receives events (its claims are its token's). */
void gw__conn_expiry(gw_t *gw, gw_conn_t *c, long long now);
/* The limits of every inbound message, whatever its transport: UTF-8
 * text (1007) within the op rate (1008). 0, or the close code (counted). */
int gw__conn_inbound(gw_t *gw, gw_conn_t *c, const char *buf, size_t len);

/* Room ops under the role rules. 0, or UV_EINVAL with `*code` and `*msg`
 * (static strings) for the client's error frame. */
int gw__conn_join(gw_t *gw, gw_conn_t *c, const char *room, const char **code, const char **msg);
int gw__conn_leave(gw_t *gw, gw_conn_t *c, const char *room, const char **code, const char **msg);
/* Starts watching `keys` (config events); 0, or UV_EINVAL (no cache),
 * UV_ENOSPC (the bound on watched keys), UV_ECANCELED (closing), with
 * `*code` and `*msg` for the client. */
int gw__conn_watch(gw_t *gw, gw_conn_t *c, const wire_client_op_t *op, const char **code,
                   const char **msg);

#endif
