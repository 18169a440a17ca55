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
/* A /socket.io/ request that is not an upgrade, read whole by the front:
 * the handshake, a GET that waits for output, a POST of packets, a CORS
 * preflight, or Engine.IO's 400. */
void gw__poll_request(gw_t *gw, gw_conn_t *h, const gw_req_t *r);
/* The HTTP connection `h` ends or starts another request: it no longer
 * waits on or feeds a session. Idempotent. */
void gw__poll_reset(gw_t *gw, gw_conn_t *h);
/* At the gateway's end: closes and frees every session. */
void gw__poll_free_all(gw_t *gw);

#endif
