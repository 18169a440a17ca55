/*
 * gateway/polling.h: Engine.IO's HTTP long-polling transport (polling.c):
 * the sessions it opens, the GETs that wait on them, the POSTs that feed
 * them.
 */
#ifndef COORDHUB_GW_POLLING_H
#define COORDHUB_GW_POLLING_H

#include "state.h"

/* Starts the check that frees closed sessions; its handle closes with the
 * gateway (gateway.c). */
void gw__poll_init(gw_t *gw);
/* A /socket.io/ request that is not an upgrade, its body's framing checked
 * by routes.c (`cl` its Content-Length): the handshake, a GET that waits
 * for output, a POST of packets, a CORS preflight, or Engine.IO's 400.
 * 0, or -1 to close the connection. */
int gw__poll_request(gw_t *gw, gw_conn_t *h, struct lws *wsi, int method, size_t cl);
/* HTTP_BODY / HTTP_BODY_COMPLETION of a POST: no-ops for any other
 * request. 0, or -1 to close the connection. */
int gw__poll_body(gw_t *gw, gw_conn_t *h, const void *in, size_t len);
int gw__poll_body_done(gw_t *gw, gw_conn_t *h);
/* The HTTP connection `h` ends or starts another request: it no longer
 * waits on or feeds a session. Idempotent. */
void gw__poll_reset(gw_t *gw, gw_conn_t *h);
/* The liveness sweep, for each polling session: a GET that waits and whose
 * client has gone (a FIN, seen with MSG_PEEK: lws reads nothing while it
 * owes the answer) is closed, and with it the session. */
void gw__poll_check(gw_t *gw, gw_conn_t *s);
/* At the gateway's end: closes and frees every session. */
void gw__poll_free_all(gw_t *gw);

#endif
