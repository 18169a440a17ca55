/*
 * gateway/http.h: the HTTP response writer (http.c). Every HTTP answer of
 * the hub goes through it, whatever route made it; it knows no route.
 */
#ifndef COORDHUB_GW_HTTP_H
#define COORDHUB_GW_HTTP_H

#include "state.h"

/* A request starts on `c` (LWS_CALLBACK_HTTP): a response is owed from now
 * on; `head` is 1 for HEAD (the answer's headers go out, its body not). */
void gw__http_begin(gw_t *gw, gw_conn_t *c, struct lws *wsi, int head);
/* Answers the request on `c` with `status` and a copy of `body`; written
 * from the next HTTP_WRITEABLE. `ctype` must outlive the response (a
 * static string). Replaces an answer staged but not yet written. */
void gw__http_respond(gw_conn_t *c, int status, const char *ctype, const char *body, size_t len);
/* The same with the error shape {"error":{"code":..,"message":..}}. */
void gw__http_error(gw_conn_t *c, int status, const char *code, const char *message);
/* After this answer, close the connection instead of reading the next
 * request (what lws would read next is not a request). */
void gw__http_close_after(gw_conn_t *c);
/* Holds the connection's input (lws rx flow control) until this request's
 * answer is written: what follows it in lws's buffer (a pipelined request)
 * is read only then. Idempotent. */
void gw__http_hold(gw_conn_t *c);
/* The answer to this request may wait on other clients (a lock acquire
 * with wait_ms > 0): its input is not held (and a hold already taken is
 * let go), so lws reads the client's FIN and closes the connection, which
 * cancels the wait. The price: a request pipelined behind it ends the
 * connection (routes.c). Call from inside an lws callback. */
void gw__http_unhold(gw_conn_t *c);
/* Writes a complete response at once, from inside an lws callback where
 * writing is allowed (CONFIRM_UPGRADE, HTTP). Returns 1 (what
 * CONFIRM_UPGRADE returns after a refusal; from HTTP the caller returns -1
 * to close the connection after it), or -1 when the write failed. */
int gw__http_reject_now(struct lws *wsi, int status, const char *code, const char *message);
/* The same with a JSON body of the caller's. */
int gw__http_reject_body(struct lws *wsi, int status, const char *body);

/* HTTP_WRITEABLE: writes a staged answer that closes the connection
 * (headers and body in one write). Returns 0, or -1 to close it. */
int gw__http_writeable(gw_t *gw, gw_conn_t *c, struct lws *wsi);
/* Writes every keep-alive answer staged since the last call, headers and
 * body in one write each, releases the held input and ends the
 * transaction (lws then reads the next request). Called once per loop
 * iteration, outside lws callbacks (writer.c's flush). */
void gw__http_flush(gw_t *gw);
/* Bytes of TCP socket `fd` its reader has taken from the kernel so far, or
 * -1 (not an established TCP connection, or an error). `upper`: when data
 * arrives meanwhile, the figure may be too high (1) or too low (0), never
 * the other way (tcpread.c). */
long long gw__tcp_bytes_read(int fd, int upper);
/* From every request's HTTP callback (it drops the mark gw__http_flush
 * left on the wsi). For a request with a body (`body`): 1 when it was
 * parsed from what lws had buffered, i.e. lws has not read the socket
 * since the previous answer was written, or when that cannot be told. */
int gw__http_from_buffer(struct lws *wsi, int body);
/* CLOSED_HTTP: drops the staged answer; a response still owed is given up. */
void gw__http_closed(gw_t *gw, gw_conn_t *c);

#endif
