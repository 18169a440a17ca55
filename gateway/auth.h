/*
 * gateway/auth.h: token authentication, the same for every entry point
 * (the WebSocket upgrade, Engine.IO's polling, Socket.IO's CONNECT, the
 * HTTP API).
 */
#ifndef COORDHUB_GW_AUTH_H
#define COORDHUB_GW_AUTH_H

#include "state.h"

/* Where a request's token may be: the Authorization header always, the
 * query string (?token=) too where browsers cannot set headers. */
enum gw_auth_from { GW_AUTH_HEADER, GW_AUTH_HEADER_OR_QUERY };

/*
 * Finds the token of the request on `wsi` and verifies it: 0 with `*claims`
 * filled, or UV_EINVAL (missing, malformed, expired, badly signed) with
 * `*why` a static string for the logs, never for the client. Counts
 * nothing: whether a refusal is one is the caller's to say.
 */
int gw__auth_request(gw_t *gw, struct lws *wsi, enum gw_auth_from from, wire_claims_t *claims,
                     const char **why);
/* The same for a request of the HTTP front. */
int gw__auth_req(gw_t *gw, const gw_req_t *r, enum gw_auth_from from, wire_claims_t *claims,
                 const char **why);
/* Verifies a token the client sent in a message (Socket.IO's CONNECT):
 * 0 and `*claims`, or UV_EINVAL, counted as an authentication failure. */
int gw__auth_token(gw_t *gw, const char *tok, size_t len, wire_claims_t *claims);

#endif
