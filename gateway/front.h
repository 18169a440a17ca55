/*
 * gateway/front.h: the hub's HTTP/1.1 front (front.c). It owns the
 * listening socket and every connection until a WebSocket upgrade, which
 * it hands to lws with the bytes read so far; it reads requests, checks
 * their framing, hands them to routes.c one at a time per connection
 * (pipelined ones wait in its buffer), and writes their answers.
 */
#ifndef COORDHUB_GW_FRONT_H
#define COORDHUB_GW_FRONT_H

#include "state.h"

/* The front's timers and read buffer (gw_new, before anything can fail
 * after it: every fail path closes them through gw__front_close). */
void gw__front_init(gw_t *gw);
/* Listens on `host` (a numeric address) and `port` (0: any free one):
 * 0 with gw->port set, or a UV_E* code. */
int gw__front_listen(gw_t *gw, const char *host, int port);
/* Writes an answer's `len` bytes on the connection of request `c`
 * (http.c made them); then the connection reads its next request, or
 * closes after the answer when `close`. The write is attempted at once;
 * what the kernel does not take is written as the socket drains. */
void gw__front_answer(gw_conn_t *c, const void *bytes, size_t len, int close);
/* Once per loop iteration, from writer.c's flush: the connections answered
 * outside their own read go on: their next request, already buffered, is
 * served now; or they wait for it; or they close. */
void gw__front_resume(gw_t *gw);
/* The graceful stop begins: no more accepts; connections with no request
 * begun close now, the others after their answer. */
void gw__front_stop(gw_t *gw);
/* At the graceful stop's end: closes the listener and every connection
 * (requests still owed are given up). */
void gw__front_close(gw_t *gw);

#endif
