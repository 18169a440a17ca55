/*
 * gateway/writer.h: a connection's output (writer.c): its queue of shared
 * frames, the coalescing flush (one send() per connection per loop
 * iteration; for an Engine.IO polling session, one response to its GET),
 * the slow-consumer bound, and the closes the hub initiates.
 */
#ifndef COORDHUB_GW_WRITER_H
#define COORDHUB_GW_WRITER_H

#include "state.h"

/* Starts the flush (a uv_check after each iteration's I/O); the handles
 * close with the gateway (gateway.c). */
void gw__out_init(gw_t *gw);
/* lws_set_timeout from outside lws's own poll callbacks (a timer, the
 * flush, a Redis reply): lws puts a timeout on the loop only from its idle
 * handler, which only its poll callback starts, so lws is also woken
 * (lws_cancel_service) within 100 ms, once for every such call of that
 * time (docs/libraries.md). */
void gw__out_timeout(gw_t *gw, struct lws *wsi, enum pending_timeout reason, int secs);
/* The loop's next poll does not block: the flush (and the front's
 * resume) runs first. */
void gw__out_wake(gw_t *gw);
/* Only the wake-up: after serving lws outside its poll callbacks. */
void gw__out_wake_lws(gw_t *gw);
/* Queues a frame for `c` (takes a reference). Past the slow-consumer bound
 * the queue is dropped and the connection closed with 4008 instead. */
void gw__out_frame(gw_t *gw, gw_conn_t *c, gw_frame_t *f);
/* A held connection's queue (recovery.c) may be written again. */
void gw__out_release(gw_t *gw, gw_conn_t *c);
/* Queues `n` bytes of text as one frame of its own (not the fan-out path). */
void gw__out_text(gw_t *gw, gw_conn_t *c, const char *text, size_t n);
/* Queues one event in the connection's framing (not the fan-out path);
 * `data` is JSON text or NULL. */
void gw__out_event(gw_t *gw, gw_conn_t *c, const char *event, const char *data, size_t dlen);
/* Closes with `code`: what is queued is dropped, the close frame goes out
 * at the next writeable, then the hub reads and discards until the peer's
 * close or a deadline (RFC 6455 §7.1.1). Once per connection; callable
 * from any callback, RECEIVE included. */
void gw__out_close(gw_conn_t *c, int code);
/* SERVER_WRITEABLE: the close frame if one is due, else what is queued.
 * Returns 0, or -1 to have lws close the connection. */
int gw__out_writeable(gw_t *gw, gw_conn_t *c, struct lws *wsi);
/* Drops what is queued, for a connection about to be killed without a
 * close frame (liveness.c's drop of a dead peer). */
void gw__out_drop(gw_conn_t *c);
/* lws writes a close frame of ours (a peer's close frame refused from
 * PEER_INITIATED_CLOSE, ws.c): nothing more is written or queued. */
void gw__out_refused(gw_conn_t *c, int code);
/* The same with a reason text of the caller's (static, at most 32 bytes)
 * in place of the code's usual one. */
void gw__out_close_why(gw_conn_t *c, int code, const char *why);
/* A polling session closed by its client (its close packet), or taken
 * over by a WebSocket (conn.c's move): closed without a close packet of
 * ours (a GET still waiting gets a noop). */
void gw__out_retire(gw_conn_t *c);
/* Moves what is queued for `from` to `to`'s queue, in order. */
void gw__out_move(gw_t *gw, gw_conn_t *from, gw_conn_t *to);
/* A GET now waits on polling session `c`: what is queued goes at once. */
void gw__out_poll(gw_t *gw, gw_conn_t *c);
/* The connection is gone: drop its queue and leave the flush list. */
void gw__out_forget(gw_t *gw, gw_conn_t *c);

#endif
