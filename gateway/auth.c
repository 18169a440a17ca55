/*
 * gateway/auth.c: finding a request's token and verifying it (wire's JWT
 * check against the hub's key set, at the current time).
 */
#include "auth.h"

#include <string.h>
#include <strings.h>
#include <time.h>

/* Copies the token into buf (NUL-terminated) and returns its length, or -1. */
static int
find_token(struct lws *wsi, enum gw_auth_from from, char *buf, int cap)
{
    int n = lws_hdr_copy(wsi, buf, cap, WSI_TOKEN_HTTP_AUTHORIZATION);
    const char *v;

    if (n > 7 && strncasecmp(buf, "Bearer ", 7) == 0) {
        memmove(buf, buf + 7, (size_t)(n - 7) + 1);
        return n - 7;
    }
    if (from != GW_AUTH_HEADER_OR_QUERY)
        return -1;
    /* returns a pointer into buf just past "token=" */
    v = lws_get_urlarg_by_name(wsi, "token=", buf, cap);
    if (v != NULL) {
        size_t vn = strlen(v);
        memmove(buf, v, vn + 1);
        return (int)vn;
    }
    return -1;
}

int
gw__auth_request(gw_t *gw, struct lws *wsi, enum gw_auth_from from, wire_claims_t *claims,
                 const char **why)
{
    /* lws stops looking at the first query argument longer than the buffer:
     * sized for the longest token we accept */
    char tok[WIRE_TOKEN_MAX + 16];
    int n = find_token(wsi, from, tok, sizeof tok);

    if (n <= 0) {
        *why = "missing token";
        return UV_EINVAL;
    }
    return wire_jwt_verify_keys(gw->keys, tok, (size_t)n, time(NULL), claims, why) == 0 ? 0
                                                                                     : UV_EINVAL;
}

int
gw__auth_req(gw_t *gw, const gw_req_t *r, enum gw_auth_from from, wire_claims_t *claims,
             const char **why)
{
    char tok[WIRE_TOKEN_MAX + 16];
    const char *p = NULL;
    size_t n = 0;
    int q;

    if (r->authorization.n > 7 && strncasecmp(r->authorization.p, "Bearer ", 7) == 0) {
        p = r->authorization.p + 7;
        n = r->authorization.n - 7;
    } else if (from == GW_AUTH_HEADER_OR_QUERY &&
               (q = wire_http_query_arg(r->query, "token", tok, sizeof tok)) > 0) {
        p = tok;
        n = (size_t)q;
    }
    if (n == 0) {
        *why = "missing token";
        return UV_EINVAL;
    }
    return wire_jwt_verify_keys(gw->keys, p, n, time(NULL), claims, why) == 0 ? 0 : UV_EINVAL;
}

int
gw__auth_token(gw_t *gw, const char *tok, size_t len, wire_claims_t *claims)
{
    const char *why;

    if (wire_jwt_verify_keys(gw->keys, tok, len, time(NULL), claims, &why) != 0) {
        gw->m.auth_failures++;
        LOG_DEBUG("gw", "token refused: %s", why);
        return UV_EINVAL;
    }
    return 0;
}
