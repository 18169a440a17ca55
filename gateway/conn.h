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
/* CLOSED: leaves every room, drops the output, unlists. Idempotent. */
void gw__conn_closed(gw_t *gw, gw_conn_t *c);
/* Authenticated as `claims`: joins user:<sub> and receives events. */
void gw__conn_enter(gw_t *gw, gw_conn_t *c, const wire_claims_t *claims);
/* Socket.IO's DISCONNECT: leaves every room, receives nothing more. */
void gw__conn_leave_all(gw_t *gw, gw_conn_t *c);
/* The peer sent data or a PONG: it is alive (liveness.c reads it). */
void gw__conn_alive(gw_t *gw, gw_conn_t *c);

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
