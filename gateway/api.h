/*
 * gateway/api.h: the JSON API under /v1/ (api.c).
 */
#ifndef COORDHUB_GW_API_H
#define COORDHUB_GW_API_H

#include "state.h"

/* A /v1/ request whose framing routes.c has checked: `cl` is its declared
 * Content-Length (0: no body), at most GW_BODY_MAX. Dispatched now, or at
 * BODY_COMPLETION when it has a body. 0, or -1 to close the connection. */
int gw__api_request(gw_t *gw, gw_conn_t *c, struct lws *wsi, const char *uri, int method,
                    size_t cl);
/* HTTP_BODY / HTTP_BODY_COMPLETION: no-ops unless the request on `c` is a
 * /v1/ request waiting for its body. 0, or -1 to close the connection. */
int gw__api_body(gw_t *gw, gw_conn_t *c, const void *in, size_t len);
int gw__api_body_done(gw_t *gw, gw_conn_t *c);
/* Frees the request's body and path and cancels what it waits for (its
 * callback then never fires). Idempotent. */
void gw__api_reset(gw_conn_t *c);

#endif
