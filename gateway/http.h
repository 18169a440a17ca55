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
/* Writes a complete response at once, from inside an lws callback where
 * writing is allowed (CONFIRM_UPGRADE, HTTP). Returns 1 (what
 * CONFIRM_UPGRADE returns after a refusal; from HTTP the caller returns -1
 * to close the connection after it), or -1 when the write failed. */
int gw__http_reject_now(struct lws *wsi, int status, const char *code, const char *message);
/* The same with a JSON body of the caller's. */
int gw__http_reject_body(struct lws *wsi, int status, const char *body);

/* HTTP_WRITEABLE: writes what is staged (headers, then the body in the next
 * writeable, as lws wants one write per writeable) and ends the
 * transaction. Returns 0, or -1 to close the connection. */
int gw__http_writeable(gw_t *gw, gw_conn_t *c, struct lws *wsi);
/* CLOSED_HTTP: drops the staged answer; a response still owed is given up. */
void gw__http_closed(gw_t *gw, gw_conn_t *c);

#endif
