/*
 * gateway/gateway.c: the gateway object's life: the lws context on the
 * caller's libuv loop (foreign loop), and the graceful stop.
 *
 * lws 4.1 on a foreign loop is destroyed in two calls (docs/libraries.md):
 * the first, inside the running loop, starts closing its handles; the
 * second, after uv_run has returned, frees the context. gw_shutdown makes
 * the first, gw_free the second.
 */
#include "state.h"

#include "front.h"
#include "liveness.h"
#include "polling.h"
#include "protocol.h"
#include "hubs.h"
#include "recovery.h"
#include "socketio.h"
#include "router.h"
#include "writer.h"

#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define SHUTDOWN_POLL_MS 10

/* No lws validity timers: lws 4.1 arms one per connection (default: ping
 * at 300 s, hang up at 310 s) in a sorted list with linear inserts, at
 * every upgrade and every PONG, which is quadratic at 20k sockets (accepts
 * slow down, and a wave of PONGs stalls the loop for seconds). A zero
 * hang-up time turns them off; the gateway's own sweep (liveness.c) does the
 * job on one timer. */
static const lws_retry_bo_t no_validity_timers = {
    .secs_since_valid_ping = 0,
    .secs_since_valid_hangup = 0,
};

void
gw_set_keys(gw_t *gw, wire_keyset_t *keys)
{
    uint64_t hits, misses;

    /* the cache of verified tokens goes with the old keys; its counts stay */
    wire_keyset_cache_stats(gw->keys, &hits, &misses);
    gw->m.token_hits_before += hits;
    gw->m.token_misses_before += misses;
    wire_keyset_free(gw->keys);
    gw->keys = keys;
}

int
gw_port(const gw_t *gw)
{
    return gw->port;
}

void
gw_on_redis_state(gw_t *gw, int ready)
{
    gw__rec_redis_state(gw, ready);
    gw__hubs_redis_state(gw, ready);
}

static unsigned
fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
        rl.rlim_cur > (1u << 20))
        return 1u << 16;
    return (unsigned)rl.rlim_cur;
}

/* The listen address as a numeric one, IPv4 first ("localhost" then
 * means 127.0.0.1 wherever ::1 sorts first). A name that does not resolve
 * is kept as it is: the listen then fails and says so. */
static char *
numeric_host(const char *host)
{
    struct addrinfo hints, *ai = NULL, *pick;
    char num[NI_MAXHOST];

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;

    if (getaddrinfo(host, NULL, &hints, &ai) != 0 || ai == NULL)
        return util_strdup(host);
    /* IPv4 first: "localhost" then means 127.0.0.1 wherever ::1 sorts first */
    for (pick = ai; pick && pick->ai_family != AF_INET; pick = pick->ai_next)
        ;
    if (pick == NULL)
        pick = ai;
    if (getnameinfo(pick->ai_addr, pick->ai_addrlen, num, sizeof num, NULL, 0, NI_NUMERICHOST) !=
        0)
        snprintf(num, sizeof num, "%s", host);
    freeaddrinfo(ai);
    return util_strdup(num);
}

/* lws's log lines, to stderr as lws writes them, but for the two it
 * writes at error level each time it is handed a socket with bytes read
 * (adopt_socket_readbuf in lws 4.1): that is every WebSocket here. */
static void
lws_log(int level, const char *line)
{
    if (strstr(line, "adopt_socket_readbuf") != NULL)
        return;
    lwsl_emit_stderr(level, line);
}

static void
drain_failed_context(uv_loop_t *loop, struct lws_context *ctx)
{
    /* A context whose vhost failed is half torn down already; finish the
     * two-step destroy so nothing it opened outlives it. */
    lws_context_destroy(ctx);
    uv_run(loop, UV_RUN_DEFAULT);
    lws_context_destroy(ctx);
}

static void
free_origins(char **list)
{
    if (list == NULL)
        return;
    for (char **o = list; *o; o++)
        free(*o);
    free(list);
}

/* "*" or "http[s]://host[:port]" items separated by commas, into a
 * NULL-terminated array. 0, or UV_EINVAL (with *out what was parsed). */
static int
parse_origins(const char *text, char ***out)
{
    size_t n = 1, k = 0;
    const char *p = text;

    for (const char *q = text; *q; q++)
        n += *q == ',';
    *out = util_malloc((n + 1) * sizeof **out);
    memset(*out, 0, (n + 1) * sizeof **out);
    for (;;) {
        size_t len = strcspn(p, ",");
        char *o = util_malloc(len + 1);
        memcpy(o, p, len);
        o[len] = '\0';
        (*out)[k++] = o;
        if (strcmp(o, "*") != 0) {
            const char *host = strstr(o, "://");
            if ((strncmp(o, "http://", 7) != 0 && strncmp(o, "https://", 8) != 0) ||
                host[3] == '\0' || strpbrk(host + 3, " \t/") != NULL || len >= 255)
                return UV_EINVAL;
        }
        if (p[len] == '\0')
            return 0;
        p += len + 1;
    }
}

int
gw_new(uv_loop_t *loop, const gw_options_t *opt, gw_t **out, const char **err)
{
    struct lws_context_creation_info info;
    void *foreign_loops[1] = {loop};
    gw_t *gw;

    if (opt->keys == NULL || wire_keyset_size(opt->keys) == 0) {
        *err = "no key for tokens";
        wire_keyset_free(opt->keys);
        return UV_EINVAL;
    }
    gw = util_calloc(1, sizeof *gw);
    gw->loop = loop;
    gw->host = numeric_host(opt->host ? opt->host : "127.0.0.1");
    gw->keys = opt->keys;
    gw->web_root = opt->web_root ? util_strdup(opt->web_root) : NULL;
    gw->bus = opt->bus;
    gw->locks = opt->locks;
    gw->resv = opt->resv;
    gw->queues = opt->queues;
    gw->cache = opt->cache;
    gw->max_frame = opt->max_frame ? opt->max_frame : 64 * 1024;
    gw->slow_bytes = opt->slow_bytes ? opt->slow_bytes : 1024 * 1024;
    gw->op_rate = opt->op_rate > 0 ? opt->op_rate : 20;
    gw->op_burst = opt->op_burst > 0 ? opt->op_burst : 40;
    gw->sio_ping_interval_ms = opt->sio_ping_interval_ms ? opt->sio_ping_interval_ms : 25000;
    gw->sio_ping_timeout_ms = opt->sio_ping_timeout_ms ? opt->sio_ping_timeout_ms : 20000;
    gw->sio_connect_timeout_ms = opt->sio_connect_timeout_ms ? opt->sio_connect_timeout_ms : 45000;
    if (opt->cors_origins != NULL && parse_origins(opt->cors_origins, &gw->cors_origins) != 0) {
        free_origins(gw->cors_origins);
        free(gw->host);
        wire_keyset_free(gw->keys);
        free(gw->web_root);
        free(gw);
        *err = "bad --cors-origins: want * or origins (http[s]://host[:port]) separated by commas";
        return UV_EINVAL;
    }
    gw->ws_idle_ping_ms = opt->ws_idle_ping_ms ? opt->ws_idle_ping_ms : 30000;
    gw->ws_idle_drop_ms = opt->ws_idle_drop_ms ? opt->ws_idle_drop_ms : 10000;
    gw->rooms = gw__rooms_new();
    gw__router_init(gw, opt->coalesce_ms ? opt->coalesce_ms : 1000);
    uv_timer_init(loop, &gw->shutdown_timer);
    gw->shutdown_timer.data = gw;
    gw__out_init(gw);
    gw__liveness_init(gw);
    gw__sio_init(gw);
    gw__poll_init(gw);
    gw__rec_init(gw, opt);
    gw__hubs_init(gw, opt);
    gw__front_init(gw);

    /* the hub listens, not lws (front.c): lws gets the upgrades */
    if (gw__front_listen(gw, gw->host, opt->port) != 0) {
        *err = "could not listen (address in use or not available)";
        goto fail;
    }
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = gw__protocols;
    info.vhost_name = "default";
    /* UTF-8 of text messages is checked by the hub (ws.c), not by lws's
     * VALIDATE_UTF8, so that those 1007 closes are counted */
    info.options =
        LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE;
    info.foreign_loops = foreign_loops;
    info.user = gw;
    info.fd_limit_per_thread = fd_limit();
    /* polling sessions hold no socket: bounded like the sockets would be */
    gw->max_sessions = info.fd_limit_per_thread;
    info.timeout_secs = 10;
    info.retry_and_idle_policy = &no_validity_timers;

    /* lws logs only real trouble (it writes to stderr too) */
    lws_set_log_level(getenv("GW_LWS_DEBUG")
                          ? (LLL_ERR | LLL_WARN | LLL_NOTICE | LLL_INFO | LLL_DEBUG)
                          : LLL_ERR,
                      lws_log);
    gw->ctx = lws_create_context(&info);
    if (gw->ctx == NULL) {
        *err = "could not create the WebSocket context";
        goto fail;
    }
    /* lws 4.1 returns a context even when its vhost failed (docs/libraries.md) */
    gw->vhost = lws_get_vhost_by_name(gw->ctx, "default");
    if (gw->vhost == NULL) {
        *err = "could not create the WebSocket context";
        drain_failed_context(loop, gw->ctx);
        gw->ctx = NULL;
        goto fail;
    }
    *out = gw;
    return 0;
fail:
    gw__front_close(gw);
    uv_close((uv_handle_t *)&gw->reserve_timer, NULL);
    uv_close((uv_handle_t *)&gw->shutdown_timer, NULL);
    uv_close((uv_handle_t *)&gw->flush, NULL);
    uv_close((uv_handle_t *)&gw->wake, NULL);
    uv_close((uv_handle_t *)&gw->lws_kick, NULL);
    uv_close((uv_handle_t *)&gw->sweep, NULL);
    uv_close((uv_handle_t *)&gw->poll_reap, NULL);
    uv_close((uv_handle_t *)&gw->sio_timer, NULL);
    gw__rec_close(gw);
    gw__hubs_close(gw);
    uv_run(loop, UV_RUN_NOWAIT);
    gw__rooms_free(gw->rooms);
    free_origins(gw->cors_origins);
    free(gw->scratch);
    free(gw->host);
    wire_keyset_free(gw->keys);
    free(gw->web_root);
    free(gw);
    return UV_EADDRINUSE;
}

static void
finish_shutdown(gw_t *gw)
{
    void (*done)(void *) = gw->shutdown_done;

    uv_timer_stop(&gw->shutdown_timer);
    uv_close((uv_handle_t *)&gw->reserve_timer, NULL);
    uv_close((uv_handle_t *)&gw->shutdown_timer, NULL);
    uv_close((uv_handle_t *)&gw->flush, NULL);
    uv_close((uv_handle_t *)&gw->wake, NULL);
    uv_close((uv_handle_t *)&gw->lws_kick, NULL);
    uv_close((uv_handle_t *)&gw->sweep, NULL);
    gw__poll_free_all(gw);
    uv_close((uv_handle_t *)&gw->poll_reap, NULL);
    uv_close((uv_handle_t *)&gw->sio_timer, NULL);
    gw__rec_flush(gw);
    gw__rec_close(gw);
    gw__hubs_close(gw);
    gw__front_close(gw);
    gw->timers_closed = 1;
    gw->shutdown_done = NULL;
    lws_context_destroy(gw->ctx); /* first half: starts closing */
    if (done)
        done(gw->shutdown_privdata);
}

static void
on_shutdown_poll(uv_timer_t *t)
{
    gw_t *gw = t->data;

    /* the Socket.IO sessions saved at the sockets' close are written
     * before the bus closes (recovery across a SIGTERM, SPEC §9) */
    if ((gw->conns == NULL && gw->http_inflight == 0 && gw->front.nconns == 0 &&
         gw->rec.saves == 0 && gw->hubs.pending == 0) ||
        uv_now(gw->loop) >= gw->shutdown_deadline) {
        if (gw->conns != NULL || gw->http_inflight != 0 || gw->front.nconns != 0 ||
            gw->rec.saves != 0)
            LOG_WARN("gw",
                     "shutdown deadline passed with %zu sockets, %zu requests (%zu HTTP "
                     "connections) and %zu session saves open",
                     gw->nconns[0] + gw->nconns[1], gw->http_inflight, gw->front.nconns,
                     gw->rec.saves);
        finish_shutdown(gw);
    }
}

void
gw_shutdown(gw_t *gw, unsigned deadline_ms, void (*done)(void *privdata), void *privdata)
{
    if (gw->shutting_down)
        return;
    gw->shutting_down = 1;
    gw->shutdown_done = done;
    gw->shutdown_privdata = privdata;
    gw->shutdown_deadline = uv_now(gw->loop) + deadline_ms;
    uv_timer_stop(&gw->reserve_timer);
    gw__front_stop(gw);
    gw__hubs_leave(gw);
    for (gw_conn_t *c = gw->conns; c; c = c->ws.next)
        gw__out_close(c, LWS_CLOSE_STATUS_GOINGAWAY);
    uv_timer_start(&gw->shutdown_timer, on_shutdown_poll, 0, SHUTDOWN_POLL_MS);
}

void
gw_free(gw_t *gw)
{
    if (gw->ctx)
        lws_context_destroy(gw->ctx); /* second half: frees */
    gw->ctx = NULL;
    gw__rooms_free(gw->rooms);
    gw__rec_free(gw);
    free_origins(gw->cors_origins);
    free(gw->scratch);
    free(gw->host);
    wire_keyset_free(gw->keys);
    free(gw->web_root);
    free(gw);
}
