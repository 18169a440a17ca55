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

#endif
