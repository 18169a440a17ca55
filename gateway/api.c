/*
 * gateway/api.c: the JSON API under /v1/ (README, "HTTP"): the body (its
 * framing checked by routes.c), Bearer tokens and roles, and the routes of
 * locks, reservations and configuration over their modules. Answers that
 * wait on Redis are deferred: the connection keeps the request's handle and
 * cancels it if the client goes away first.
 */
#include "api.h"

#include "auth.h"
#include "http.h"
#include "hubs.h"
#include "queues.h"

#include <assert.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void dispatch(gw_t *gw, gw_conn_t *c, const gw_req_t *r);
static void api_error(gw_conn_t *c, int status, const char *code, const char *message);

void
gw__api_reset(gw_conn_t *c)
{
    if (c->api.lock != NULL) {
        lock_cancel(c->api.lock);
        c->api.lock = NULL;
    }
    if (c->api.resv != NULL) {
        resv_cancel(c->api.resv);
        c->api.resv = NULL;
    }
    if (c->api.cache != NULL) {
        cache_cancel(c->api.cache);
        c->api.cache = NULL;
    }
    if (c->api.hubs != NULL) {
        bus_cancel(c->api.hubs);
        c->api.hubs = NULL;
    }
    c->api.query[0] = '\0';
    free(c->api.body);
    c->api.body = NULL;
    c->api.len = 0;
    free(c->api.path);
    c->api.path = NULL;
}

void
gw__api_request(gw_t *gw, gw_conn_t *c, const gw_req_t *r)
{
    if (strlen(r->path) >= 512) {
        api_error(c, 400, "bad_request", "path too long");
        return;
    }
    c->api.path = util_strdup(r->path);
    c->api.method = r->method;
    {
        char q[sizeof c->api.query];
        int n = wire_http_query_arg(r->query, "category", q, sizeof q);
        if (n >= 0)
            memcpy(c->api.query, q, (size_t)n + 1);
        else if (n == -2) /* there, but too long or not decodable: refused */
            snprintf(c->api.query, sizeof c->api.query, "\x01");
    }
    if (r->len > 0) {
        c->api.body = util_malloc(r->len);
        memcpy(c->api.body, r->body, r->len);
        c->api.len = r->len;
    }
    dispatch(gw, c, r);
}

/* ---- locks ---- */

/* Every answer of the API: the request's state goes (its body, its path,
 * anything it waited for), then the answer is staged for the writer. */
static void
answer(gw_conn_t *c, int status, const char *body, size_t len)
{
    gw__api_reset(c);
    gw__http_respond(c, status, "application/json", body, len);
}

static void
api_error(gw_conn_t *c, int status, const char *code, const char *message)
{
    gw__api_reset(c);
    gw__http_error(c, status, code, message);
}

static void
respond_json(gw_conn_t *c, int status, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    answer(c, status, s, strlen(s));
    free(s);
}

/* A lock or reservation request that Redis could not answer (docs/errors.md):
 * 503 either way, named by what went wrong. */
static void
redis_failed(gw_conn_t *c, int error, const char *detail)
{
    if (error == UV_EPROTO)
        api_error(c, 503, "redis_error", detail ? detail : "unexpected redis reply");
    else
        api_error(c, 503, "unavailable", detail ? detail : "redis unavailable");
}

static void
on_lock_result(void *privdata, const lock_result_t *r)
{
    gw_conn_t *c = privdata;
    json_t *o;

    c->api.lock = NULL;
    if (r->error != 0) {
        redis_failed(c, r->error, r->detail);
        return;
    }
    switch (r->outcome) {
    case LOCK_DONE:
        switch (c->api.method) {
        case GW_M_POST:
            o = json_pack("{s:s,s:s,s:I,s:I}", "name", r->name, "token", r->token, "fence",
                          (json_int_t)r->fence, "ttl_ms", (json_int_t)r->ttl_ms);
            break;
        case GW_M_PATCH:
            o = json_pack("{s:s,s:I}", "name", r->name, "ttl_ms", (json_int_t)r->ttl_ms);
            break;
        case GW_M_DELETE: o = json_pack("{s:s,s:b}", "name", r->name, "released", 1); break;
        default: /* GET: never the token */
            o = json_pack("{s:s,s:b,s:o,s:o}", "name", r->name, "held", r->held, "ttl_ms",
                          r->held ? json_integer(r->ttl_ms) : json_null(), "fence",
                          r->fence >= 0 ? json_integer(r->fence) : json_null());
            break;
        }
        respond_json(c, 200, o);
        return;
    case LOCK_HELD: api_error(c, 409, "locked", "the lock is held by another owner"); return;
    case LOCK_NOT_OWNER:
        api_error(c, 409, "not_owner", "this token does not hold the lock");
        return;
    }
}

static void
api_locks(gw_t *gw, gw_conn_t *c, const wire_claims_t *claims, const char *name)
{
    size_t len = strlen(name);
    const char *err;
    char token[LOCK_TOKEN_MAX + 1];
    lock_acquire_args_t a;
    long long ttl;
    int rc;

    if (lock_valid_name(name, len, &err) != 0) {
        api_error(c, 400, "bad_request", err);
        return;
    }
    if (!(claims->roles & WIRE_ROLE_SERVICE) &&
        !(c->api.method == GW_M_GET && (claims->roles & WIRE_ROLE_OPS))) {
        api_error(c, 403, "forbidden", "locks need role service");
        return;
    }
    switch (c->api.method) {
    case GW_M_POST:
        if (lock_parse_acquire(c->api.body, c->api.len, &a, &err) != 0) {
            api_error(c, 400, "bad_request", err);
            return;
        }
        /* A wait can outlast the client: its FIN ends the connection and
         * cancels the wait (the lock must not go to a client that left). */
        if (a.wait_ms > 0)
            gw__http_leave_cancels(c);
        rc = lock_acquire(gw->locks, name, len, &a, on_lock_result, c, &c->api.lock);
        break;
    case GW_M_PATCH:
        if (lock_parse_extend(c->api.body, c->api.len, token, &ttl, &err) != 0) {
            api_error(c, 400, "bad_request", err);
            return;
        }
        rc = lock_extend(gw->locks, name, len, token, ttl, on_lock_result, c, &c->api.lock);
        break;
    case GW_M_DELETE:
        if (lock_parse_release(c->api.body, c->api.len, token, &err) != 0) {
            api_error(c, 400, "bad_request", err);
            return;
        }
        rc = lock_release(gw->locks, name, len, token, on_lock_result, c, &c->api.lock);
        break;
    case GW_M_GET: rc = lock_inspect(gw->locks, name, len, on_lock_result, c, &c->api.lock); break;
    default: api_error(c, 405, "method_not_allowed", "use GET, POST, PATCH or DELETE"); return;
    }
    if (rc != 0)
        api_error(c, 503, "unavailable", "redis unavailable");
}

/* ---- reservations ---- */

static void
on_resv_result(void *privdata, const resv_result_t *r)
{
    gw_conn_t *c = privdata;
    json_t *o, *arr;

    c->api.resv = NULL;
    if (r->error != 0) {
        redis_failed(c, r->error, r->detail);
        return;
    }
    switch (r->outcome) {
    case RESV_DONE:
        if (c->api.method == GW_M_POST) {
            arr = json_array();
            for (size_t i = 0; i < r->nassets; i++)
                json_array_append_new(arr, json_string(r->assets[i]));
            o = json_pack("{s:o,s:I}", "reserved", arr, "expires_at_ms",
                          (json_int_t)r->expires_at_ms);
        } else if (c->api.method == GW_M_DELETE) {
            o = json_pack("{s:s,s:s,s:b}", "app", r->app, "asset", r->asset, "released", 1);
        } else {
            arr = json_array();
            for (size_t i = 0; i < r->nentries; i++)
                json_array_append_new(arr, json_pack("{s:s,s:s,s:I}", "asset", r->entries[i].asset,
                                                     "owner", r->entries[i].owner, "expires_at_ms",
                                                     (json_int_t)r->entries[i].expires_at_ms));
            o = json_pack("{s:o}", "assets", arr);
        }
        respond_json(c, 200, o);
        return;
    case RESV_CONFLICT:
        arr = json_array();
        for (size_t i = 0; i < r->nassets; i++)
            json_array_append_new(arr, json_string(r->assets[i]));
        o = json_pack("{s:{s:s,s:s,s:o}}", "error", "code", "already_reserved", "message",
                      "some assets are reserved already; nothing was reserved", "assets", arr);
        respond_json(c, 409, o);
        return;
    case RESV_NOT_FOUND: api_error(c, 404, "not_found", "this asset is not reserved"); return;
    }
}

/* /v1/reservations/{app} and /v1/reservations/{app}/{asset} */
static void
api_reservations(gw_t *gw, gw_conn_t *c, const wire_claims_t *claims, const char *rest)
{
    const char *slash = strchr(rest, '/');
    char app[RESV_APP_MAX + 1];
    size_t applen = slash ? (size_t)(slash - rest) : strlen(rest);
    const char *asset = slash ? slash + 1 : NULL;
    resv_reserve_args_t a;
    const char *err;
    int rc;

    if (resv_valid_app(rest, applen) != 0) {
        api_error(c, 400, "bad_request", "app ids are 1-32 characters of A-Za-z0-9_-");
        return;
    }
    memcpy(app, rest, applen);
    app[applen] = '\0';
    if (asset != NULL && resv_valid_asset(asset, strlen(asset)) != 0) {
        api_error(c, 400, "bad_request", "asset ids are 1-128 characters of A-Za-z0-9_.-");
        return;
    }
    if (!(claims->roles & WIRE_ROLE_SERVICE) &&
        !(c->api.method == GW_M_GET && (claims->roles & WIRE_ROLE_OPS))) {
        api_error(c, 403, "forbidden", "reservations need role service");
        return;
    }
    if (asset != NULL && c->api.method == GW_M_DELETE) {
        rc = resv_release(gw->resv, app, asset, on_resv_result, c, &c->api.resv);
    } else if (asset == NULL && c->api.method == GW_M_POST) {
        if (resv_parse_reserve(c->api.body, c->api.len, &a, &err) != 0) {
            api_error(c, 400, "bad_request", err);
            return;
        }
        rc = resv_reserve(gw->resv, app, &a, on_resv_result, c, &c->api.resv);
        resv_reserve_args_free(&a);
    } else if (asset == NULL && c->api.method == GW_M_GET) {
        rc = resv_list(gw->resv, app, on_resv_result, c, &c->api.resv);
    } else {
        api_error(c, 405, "method_not_allowed",
                       asset ? "use DELETE on an asset" : "use GET or POST on an app");
        return;
    }
    if (rc != 0)
        api_error(c, 503, "unavailable", "redis unavailable");
}

/* ---- configuration ---- */

static json_t *
doc_json(const cache_doc_t *d, int with_category)
{
    json_t *v = json_loads(d->value, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    json_t *o = json_pack("{s:s,s:o,s:I}", "key", d->key, "value", v ? v : json_null(), "version",
                          (json_int_t)d->version);
    if (with_category)
        json_object_set_new(o, "category", json_string(d->category ? d->category : ""));
    return o;
}

static void
cache_unavailable(gw_conn_t *c)
{
    api_error(c, 503, "unavailable", "redis or the configuration store is unavailable");
}

static void
respond_doc(gw_conn_t *c, const cache_doc_t *doc, int stale)
{
    json_t *o = doc_json(doc, 1);

    if (stale) /* served from this hub's memory while Redis is down */
        json_object_set_new(o, "stale", json_true());
    respond_json(c, 200, o);
}

static void
on_cache_get(void *privdata, int error, enum cache_outcome outcome, const cache_doc_t *doc,
             int stale)
{
    gw_conn_t *c = privdata;

    c->api.cache = NULL;
    if (error != 0) {
        cache_unavailable(c);
        return;
    }
    if (outcome == CACHE_NOT_FOUND) {
        api_error(c, 404, "not_found", "no such configuration key");
        return;
    }
    respond_doc(c, doc, stale);
}

static void
on_cache_put(void *privdata, int error, const cache_doc_t *doc)
{
    gw_conn_t *c = privdata;
    c->api.cache = NULL;
    if (error != 0) {
        cache_unavailable(c);
        return;
    }
    respond_json(c, 200, doc_json(doc, 1));
}

static void
respond_docs(gw_conn_t *c, const cache_doc_t *docs, size_t n, int stale)
{
    json_t *items, *o;

    items = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(items, doc_json(&docs[i], 0));
    o = json_pack("{s:s,s:o}", "category", c->api.query, "items", items);
    if (stale)
        json_object_set_new(o, "stale", json_true());
    respond_json(c, 200, o);
}

static void
on_cache_list(void *privdata, int error, const cache_doc_t *docs, size_t n, int stale)
{
    gw_conn_t *c = privdata;

    c->api.cache = NULL;
    if (error != 0) {
        cache_unavailable(c);
        return;
    }
    respond_docs(c, docs, n, stale);
}

/* /v1/config/{key} (GET, PUT) and /v1/config?category=NAME (GET) */
static void
api_config(gw_t *gw, gw_conn_t *c, const wire_claims_t *claims, const char *rest)
{
    char *value, *category;
    const char *err;
    const cache_doc_t *doc, *docs;
    size_t n;
    int rc, stale;

    if (rest == NULL) {
        if (c->api.method != GW_M_GET) {
            api_error(c, 405, "method_not_allowed", "use GET /v1/config?category=NAME");
            return;
        }
        if (cache_valid_category(c->api.query, strlen(c->api.query)) != 0) {
            api_error(c, 400, "bad_request",
                           "category must be 1-64 characters of A-Za-z0-9_.:-");
            return;
        }
        if (cache_peek_list(gw->cache, c->api.query, &docs, &n, &stale)) {
            respond_docs(c, docs, n, stale);
            return;
        }
        rc = cache_list(gw->cache, c->api.query, on_cache_list, c, &c->api.cache);
    } else if (cache_valid_key(rest, strlen(rest)) != 0) {
        api_error(c, 400, "bad_request", "keys are 1-64 characters of A-Za-z0-9_.:-");
        return;
    } else if (c->api.method == GW_M_GET) {
        /* `rest` points into the request's path, which an answer frees */
        if (cache_peek(gw->cache, rest, &doc, &stale)) {
            respond_doc(c, doc, stale);
            return;
        }
        rc = cache_get(gw->cache, rest, on_cache_get, c, &c->api.cache);
    } else if (c->api.method == GW_M_PUT) {
        if (!(claims->roles & WIRE_ROLE_ADMIN)) {
            api_error(c, 403, "forbidden", "configuration writes need role admin");
            return;
        }
        if (cache_parse_put(c->api.body, c->api.len, &value, &category, &err) != 0) {
            api_error(c, 400, "bad_request", err);
            return;
        }
        rc = cache_put(gw->cache, rest, value, category, on_cache_put, c, &c->api.cache);
        free(value);
        free(category);
    } else {
        api_error(c, 405, "method_not_allowed", "use GET or PUT");
        return;
    }
    if (rc != 0)
        api_error(c, 503, "unavailable", "redis unavailable");
}

/* ---- dispatch ---- */

static void
on_hubs(void *privdata, redisReply *reply)
{
    gw_conn_t *c = privdata;
    size_t len;
    char *body;

    c->api.hubs = NULL;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        redis_failed(c, reply == NULL ? UV_ENOTCONN : UV_EPROTO,
                     reply && reply->type == REDIS_REPLY_ERROR ? reply->str : NULL);
        return;
    }
    body = gw__hubs_render(reply, &len);
    answer(c, 200, body, len);
    free(body);
}

/* GET /v1/hubs (role ops): the registry of hubs (SPEC §11) */
static void
api_hubs(gw_t *gw, gw_conn_t *c, const wire_claims_t *claims)
{
    if (!(claims->roles & WIRE_ROLE_OPS)) {
        api_error(c, 403, "forbidden", "the list of hubs needs role ops");
        return;
    }
    if (c->api.method != GW_M_GET) {
        api_error(c, 405, "method_not_allowed", "use GET");
        return;
    }
    if (gw__hubs_list(gw, &c->api.hubs, on_hubs, c) != 0)
        redis_failed(c, UV_ENOTCONN, NULL);
}

/* GET /v1/queues (role ops): the last poll of every watched queue (SPEC §12),
 * answered from memory */
static void
api_queues(gw_t *gw, gw_conn_t *c, const wire_claims_t *claims)
{
    size_t len;
    char *body;

    if (!(claims->roles & WIRE_ROLE_OPS)) {
        api_error(c, 403, "forbidden", "the job queues need role ops");
        return;
    }
    if (c->api.method != GW_M_GET) {
        api_error(c, 405, "method_not_allowed", "use GET");
        return;
    }
    if (gw->queues == NULL) {
        answer(c, 200, "{\"queues\":[],\"pollSeconds\":null}", 32);
        return;
    }
    body = queues_json(gw->queues, &len);
    answer(c, 200, body, len);
    free(body);
}

static void
dispatch(gw_t *gw, gw_conn_t *c, const gw_req_t *r)
{
    wire_claims_t claims;
    const char *path = c->api.path, *why;

    assert(path != NULL);
    if (gw__auth_req(gw, r, GW_AUTH_HEADER, &claims, &why) != 0) {
        gw->m.auth_failures++;
        LOG_DEBUG("gw", "API request refused: %s", why);
        api_error(c, 401, "unauthorized", "missing or invalid bearer token");
        return;
    }
    if (strncmp(path, "/v1/locks/", 10) == 0 && gw->locks != NULL) {
        if (strchr(path + 10, '/') != NULL)
            api_error(c, 400, "bad_request", "lock names may not contain '/'");
        else
            api_locks(gw, c, &claims, path + 10);
        return;
    }
    if (gw->cache != NULL &&
        (strcmp(path, "/v1/config") == 0 || strcmp(path, "/v1/config/") == 0)) {
        api_config(gw, c, &claims, NULL);
        return;
    }
    if (gw->cache != NULL && strncmp(path, "/v1/config/", 11) == 0) {
        api_config(gw, c, &claims, path + 11);
        return;
    }
    if (strncmp(path, "/v1/reservations/", 17) == 0 && gw->resv != NULL) {
        api_reservations(gw, c, &claims, path + 17);
        return;
    }
    if (strcmp(path, "/v1/hubs") == 0) {
        api_hubs(gw, c, &claims);
        return;
    }
    if (strcmp(path, "/v1/queues") == 0) {
        api_queues(gw, c, &claims);
        return;
    }
    api_error(c, 404, "not_found", "no such route");
}
