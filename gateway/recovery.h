/*
 * gateway/recovery.h: recovery of missed events (SPEC §9), as
 * docs/recovery.md designs it: positions counted from anchors, history in
 * one Redis stream per room written by every synced hub, and the answer to
 * a client that comes back with an offset (native ?offset=, Socket.IO's
 * pid and offset).
 */
#ifndef COORDHUB_GW_RECOVERY_H
#define COORDHUB_GW_RECOVERY_H

#include "state.h"

/* From the options; starts the anchor timer when recovery is on. */
void gw__rec_init(gw_t *gw, const gw_options_t *opt);
/* Closes the timer (shutdown, or a failed gw_new). */
void gw__rec_close(gw_t *gw);
/* Frees the batch (gw_free). */
void gw__rec_free(gw_t *gw);
static inline int
gw__rec_on(const gw_t *gw)
{
    return gw->rec.window_ms != 0;
}

/* The bus's readiness changed: not ready loses the position; ready asks
 * for an anchor at once. */
void gw__rec_redis_state(gw_t *gw, int ready);
/* A message on one of the gateway's channels: the next position. Returns
 * the offset for its events ("" while not synced), or NULL when off. */
const char *gw__rec_position(gw_t *gw);
/* A message on the anchor channel. */
void gw__rec_anchor(gw_t *gw, const char *payload, size_t len);
/* The event just routed to `room` goes into history (when synced). */
void gw__rec_record(gw_t *gw, const char *room, size_t rlen, const char *event, const char *data,
                    size_t dlen);
/* Sends the batch: one EVAL, nothing waits for it. Called by a timer 5 ms
 * after a batch's first entry (or at 64 entries), and before anything that must follow it in
 * Redis (a recovery's read, a segment's record, the shutdown). */
void gw__rec_flush(gw_t *gw);

/* Native, at ESTABLISHED: ?offset= (and ?rooms=) asks for a recovery. */
void gw__rec_native(gw_t *gw, gw_conn_t *c, struct lws *wsi);
/* Socket.IO's CONNECT, its token verified and the socket in its own room:
 * answers it (with a pid), recovering first when the payload has `pid`
 * and `offset`. `auth` is the CONNECT payload, or NULL. */
void gw__rec_sio_connect(gw_t *gw, gw_conn_t *c, json_t *auth);
/* The connection is closing: a recovery in flight is abandoned; a
 * connected Socket.IO socket's session is saved for its pid. */
void gw__rec_conn_closed(gw_t *gw, gw_conn_t *c);
/* A polling session moved to its WebSocket (conn.c). */
void gw__rec_moved(gw_conn_t *from, gw_conn_t *to);

#endif
