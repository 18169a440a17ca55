/*
 * gateway/http.h: the HTTP answer writer (http.c). Every answer of the
 * hub's HTTP front goes through it, whatever route made it; it knows no
 * route. The refusals of WebSocket upgrades, which lws serves, too.
 */
#ifndef COORDHUB_GW_HTTP_H
#define COORDHUB_GW_HTTP_H

#include "state.h"

/* A request starts on `c` (front.c): an answer is owed from now on;
 * `head` is 1 for HEAD (the answer's headers go out, its body not). */
void gw__http_begin(gw_t *gw, gw_conn_t *c, int head);
/* Answers the request on `c` with `status` and `body`, at once (front.c
 * writes it, headers and body in one send). `ctype` is a static string.
 * An answer to a request already answered, or whose client has gone, is
 * dropped. */
void gw__http_respond(gw_conn_t *c, int status, const char *ctype, const char *body, size_t len);
/* The same with the error shape {"error":{"code":..,"message":..}}. */
void gw__http_error(gw_conn_t *c, int status, const char *code, const char *message);
/* After this answer, close the connection instead of reading the next
 * request. */
void gw__http_close_after(gw_conn_t *c);
/* The answer to this request may wait on other clients (a lock acquire
 * with wait_ms > 0, Engine.IO's waiting GET): the client's leaving (its
 * FIN) cancels it, rather than being answered after it. */
void gw__http_leave_cancels(gw_conn_t *c);
/* The connection closed: a response still owed is given up. */
void gw__http_closed(gw_t *gw, gw_conn_t *c);

/* Writes a complete refusal at once, from inside an lws callback where
 * writing is allowed (CONFIRM_UPGRADE, HTTP). Returns 1 (what
 * CONFIRM_UPGRADE returns after a refusal; from HTTP the caller returns -1
 * to close the connection after it), or -1 when the write failed. */
int gw__http_reject_now(struct lws *wsi, int status, const char *code, const char *message);
/* The same with a JSON body of the caller's. */
int gw__http_reject_body(struct lws *wsi, int status, const char *body);

#endif
