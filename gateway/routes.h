/*
 * gateway/routes.h: the HTTP request's entry and the routes outside /v1/
 * (routes.c).
 */
#ifndef COORDHUB_GW_ROUTES_H
#define COORDHUB_GW_ROUTES_H

#include "state.h"

/* A request the front has read whole (its body included) and whose
 * framing it checked: answered now or later, through http.c. */
void gw__routes_request(gw_t *gw, gw_conn_t *c, const gw_req_t *r);
/* A request the front refuses before any route (its head malformed, its
 * body unframeable or over the limit): `status` with the error shape, or
 * Engine.IO's 400 under /socket.io (`path` still encoded, p NULL when
 * unknown); the connection closes after it. */
void gw__routes_refuse(gw_t *gw, gw_conn_t *c, wire_span_t path, int status, const char *code,
                       const char *message);

#endif
