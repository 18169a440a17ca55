/*
 * gateway/routes.h: the HTTP request's entry and the routes outside /v1/
 * (routes.c).
 */
#ifndef COORDHUB_GW_ROUTES_H
#define COORDHUB_GW_ROUTES_H

#include "state.h"

/* LWS_CALLBACK_HTTP for `uri`: answers (now or later, through http.c) or
 * hands the request to the API. 0, or -1 to close the connection. */
int gw__routes_request(gw_t *gw, gw_conn_t *c, struct lws *wsi, const char *uri);
/* HTTP_BODY / HTTP_BODY_COMPLETION of the request on `c`: to the API when
 * it asked for the body, dropped otherwise. 0, or -1 to close. */
int gw__routes_body(gw_t *gw, gw_conn_t *c, const void *in, size_t len);
int gw__routes_body_done(gw_t *gw, gw_conn_t *c);

#endif
