/*
 * gateway/api.h: the JSON API under /v1/ (api.c).
 */
#ifndef COORDHUB_GW_API_H
#define COORDHUB_GW_API_H

#include "state.h"

/* A /v1/ request, read whole (body included, at most GW_BODY_MAX) by the
 * front: answered now or when what it waits for answers. */
void gw__api_request(gw_t *gw, gw_conn_t *c, const gw_req_t *r);
/* Frees the request's body and path and cancels what it waits for (its
 * callback then never fires). Idempotent. */
void gw__api_reset(gw_conn_t *c);

#endif
