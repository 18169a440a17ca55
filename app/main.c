/*
 * app/main.c: the composition root. Reads flags and environment (SPEC §1),
 * owns the uv_loop_t, wires the bus's messages into the gateway, and runs
 * the stop sequence: stop accepting and close sockets with 1001, destroy the
 * lws context, close Redis, close our handles, drain the loop, close it.
 *
 * Exit codes: 0 after a clean stop, 2 for bad flags or a start-up failure
 * (port, Redis), 1 if the loop did not close cleanly (a leak of handles).
 */
#include "bus.h"
#include "gateway.h"
#include "locks.h"
#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#ifndef COORDHUB_VERSION
#define COORDHUB_VERSION "dev"
#endif

typedef struct config {
    char host[256];
    int port;
    const char *redis_url;
    const char *mongo_uri;
    const char *jwt_secret;
    const char *web_root;
    int log_level;
} config_t;

typedef struct hub {
    uv_loop_t loop;
    config_t cfg;
    bus_t *bus;
    lock_mgr_t *locks;
    gw_t *gw;
    uv_signal_t sigint, sigterm;
    int stopping;
    int exit_code;
    int signals_closed;
} hub_t;

static const char *const sub_channels[] = {"tradestate",   "canceledtrades",
                                           "itemReserved", "finishedtrades",
                                           "steamDown",    LOCK_RELEASE_CHANNEL};
static const char *const sub_patterns[] = {"bot *"};

static void
usage(FILE *f)
{
    fputs("usage: coordhub [options]\n"
          "       coordhub token --sub ID [--roles r1,r2] [--ttl SECONDS] [--jwt-secret S]\n"
          "\n"
          "A real-time coordination hub: Redis pub/sub fanned out to WebSocket rooms.\n"
          "\n"
          "options (flags override environment variables):\n"
          "  --listen HOST:PORT  COORDHUB_LISTEN      default 127.0.0.1:8080\n"
          "  --redis URL         REDIS_URL            default redis://127.0.0.1:6379/0\n"
          "  --mongo URI         MONGODB_URI          configuration store (not used yet)\n"
          "  --jwt-secret S      COORDHUB_JWT_SECRET  required: HS256 secret for tokens\n"
          "  --web-root DIR      COORDHUB_WEB_ROOT    serve static files at /\n"
          "  --log-level L       COORDHUB_LOG_LEVEL   error|warn|info|debug (default info)\n"
          "  --help, --version\n",
          f);
}

static int
fail_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "coordhub: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see coordhub --help)\n");
    return 2;
}

/* HOST:PORT, [v6]:PORT or :PORT. */
static int
parse_listen(const char *s, char *host, size_t hostcap, int *port)
{
    const char *colon = strrchr(s, ':');
    char *end;
    long p;
    size_t hl;

    if (colon == NULL)
        return -1;
    errno = 0;
    p = strtol(colon + 1, &end, 10);
    if (errno || *end != '\0' || end == colon + 1 || p < 0 || p > 65535)
        return -1;
    hl = (size_t)(colon - s);
    if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']') {
        s++;
        hl -= 2;
    }
    if (hl == 0) {
        s = "0.0.0.0";
        hl = 7;
    }
    if (hl >= hostcap)
        return -1;
    memcpy(host, s, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}

static const char *
env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

/* A positive number of milliseconds from the environment, or 0 (default). */
static unsigned
env_ms(const char *name)
{
    const char *v = getenv(name);
    char *end;
    long n;
    if (v == NULL || *v == '\0')
        return 0;
    errno = 0;
    n = strtol(v, &end, 10);
    if (errno || *end || n <= 0 || n > 3600000) {
        LOG_WARN("main", "ignoring %s='%s': want milliseconds 1..3600000", name, v);
        return 0;
    }
    return (unsigned)n;
}

enum {
    OPT_LISTEN = 256,
    OPT_REDIS,
    OPT_MONGO,
    OPT_SECRET,
    OPT_WEBROOT,
    OPT_LOGLEVEL,
    OPT_HELP,
    OPT_VERSION,
    OPT_SUB,
    OPT_ROLES,
    OPT_TTL
};

static int
parse_config(int argc, char **argv, config_t *cfg)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"redis", required_argument, NULL, OPT_REDIS},
        {"mongo", required_argument, NULL, OPT_MONGO},
        {"jwt-secret", required_argument, NULL, OPT_SECRET},
        {"web-root", required_argument, NULL, OPT_WEBROOT},
        {"log-level", required_argument, NULL, OPT_LOGLEVEL},
        {"help", no_argument, NULL, OPT_HELP},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    const char *listen = env_or("COORDHUB_LISTEN", "127.0.0.1:8080");
    const char *level = env_or("COORDHUB_LOG_LEVEL", "info");
    struct stat st;
    int c;

    cfg->redis_url = env_or("REDIS_URL", "redis://127.0.0.1:6379/0");
    cfg->mongo_uri = env_or("MONGODB_URI", NULL);
    cfg->jwt_secret = env_or("COORDHUB_JWT_SECRET", NULL);
    cfg->web_root = env_or("COORDHUB_WEB_ROOT", NULL);
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case OPT_LISTEN: listen = optarg; break;
        case OPT_REDIS: cfg->redis_url = optarg; break;
        case OPT_MONGO: cfg->mongo_uri = optarg; break;
        case OPT_SECRET: cfg->jwt_secret = optarg; break;
        case OPT_WEBROOT: cfg->web_root = optarg; break;
        case OPT_LOGLEVEL: level = optarg; break;
        case OPT_HELP: usage(stdout); exit(0);
        case OPT_VERSION: printf("coordhub %s\n", COORDHUB_VERSION); exit(0);
        case ':': return fail_usage("option %s needs a value", argv[optind - 1]);
        default: return fail_usage("unknown option %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return fail_usage("unexpected argument '%s'", argv[optind]);
    if (parse_listen(listen, cfg->host, sizeof cfg->host, &cfg->port) != 0)
        return fail_usage("bad listen address '%s': want HOST:PORT", listen);
    if (util_log_parse_level(level, &cfg->log_level) != 0)
        return fail_usage("bad log level '%s': want error, warn, info or debug", level);
    if (cfg->jwt_secret == NULL)
        return fail_usage("%s", "no JWT secret: give --jwt-secret or COORDHUB_JWT_SECRET");
    if (cfg->web_root && (stat(cfg->web_root, &st) != 0 || !S_ISDIR(st.st_mode)))
        return fail_usage("web root '%s' is not a directory", cfg->web_root);
    if (cfg->mongo_uri && strncmp(cfg->mongo_uri, "mongodb://", 10) != 0 &&
        strncmp(cfg->mongo_uri, "mongodb+srv://", 14) != 0)
        return fail_usage("bad MongoDB URI '%s'", cfg->mongo_uri);
    return 0;
}

/* coordhub token --sub ID [--roles r1,r2] [--ttl SECONDS] [--jwt-secret S] */
static int
cmd_token(int argc, char **argv)
{
    static const struct option opts[] = {
        {"sub", required_argument, NULL, OPT_SUB},
        {"roles", required_argument, NULL, OPT_ROLES},
        {"ttl", required_argument, NULL, OPT_TTL},
        {"jwt-secret", required_argument, NULL, OPT_SECRET},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    const char *sub = NULL, *roles = NULL, *secret = env_or("COORDHUB_JWT_SECRET", NULL);
    long long ttl = 3600;
    char *end, *tok;
    int c;

    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case OPT_SUB: sub = optarg; break;
        case OPT_ROLES: roles = optarg; break;
        case OPT_SECRET: secret = optarg; break;
        case OPT_TTL:
            errno = 0;
            ttl = strtoll(optarg, &end, 10);
            if (errno || *end || ttl <= 0 || ttl > 10LL * 365 * 86400)
                return fail_usage("bad --ttl '%s': want seconds > 0", optarg);
            break;
        case OPT_HELP:
            puts("usage: coordhub token --sub ID [--roles r1,r2] [--ttl SECONDS] "
                 "[--jwt-secret S]\nroles: service, admin, ops; ttl default 3600");
            return 0;
        case ':': return fail_usage("option %s needs a value", argv[optind - 1]);
        default: return fail_usage("unknown option %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return fail_usage("unexpected argument '%s'", argv[optind]);
    if (sub == NULL)
        return fail_usage("%s", "token needs --sub");
    if (secret == NULL || *secret == '\0')
        return fail_usage("%s", "no JWT secret: give --jwt-secret or COORDHUB_JWT_SECRET");
    if (gw_token_sign(secret, sub, roles, ttl, time(NULL), &tok) != 0)
        return fail_usage("%s", "bad --sub or --roles (sub: 1-64 of A-Za-z0-9_.-; roles: "
                                "comma-separated names)");
    puts(tok);
    free(tok);
    return 0;
}

/* ---- the stop sequence ---- */

static void
on_locks_closed(void *privdata)
{
    hub_t *hub = privdata;
    hub->locks = NULL;
}

static void
on_bus_closed(void *privdata)
{
    hub_t *hub = privdata;
    hub->bus = NULL;
    /* after the bus: closing it answered every lock command in flight */
    if (hub->locks)
        lock_mgr_close(hub->locks, on_locks_closed, hub);
}

static void
on_gw_stopped(void *privdata)
{
    hub_t *hub = privdata;
    if (hub->bus)
        bus_close(hub->bus, on_bus_closed, hub);
    if (!hub->signals_closed) {
        hub->signals_closed = 1;
        uv_close((uv_handle_t *)&hub->sigint, NULL);
        uv_close((uv_handle_t *)&hub->sigterm, NULL);
    }
}

static void
stop(hub_t *hub, int exit_code)
{
    if (hub->stopping)
        return;
    hub->stopping = 1;
    hub->exit_code = exit_code;
    if (exit_code == 0)
        LOG_INFO("main", "stopping");
    /* lock waiters are answered 503 now, so that the gateway can finish
     * every in-flight HTTP answer before it closes */
    if (hub->locks)
        lock_mgr_drain(hub->locks);
    gw_shutdown(hub->gw, 3000, on_gw_stopped, hub);
}

static void
on_signal(uv_signal_t *h, int signum)
{
    hub_t *hub = h->data;
    LOG_INFO("main", "signal %d received", signum);
    stop(hub, 0);
}

static void
on_bus_state(void *privdata, int ready, int ever_ready, const char *error)
{
    hub_t *hub = privdata;

    if (!ready && !ever_ready) {
        /* unreachable Redis at start: refuse to start (SPEC §1), with one
         * line however many connections report it */
        if (hub->stopping)
            return;
        fprintf(stderr, "coordhub: cannot use Redis at %s: %s\n", hub->cfg.redis_url,
                error ? error : "unavailable");
        stop(hub, 2);
        return;
    }
    if (ready && !ever_ready)
        LOG_INFO("main", "coordhub %s ready on %s:%d, redis %s", COORDHUB_VERSION, hub->cfg.host,
                 gw_port(hub->gw), hub->cfg.redis_url);
    else if (ready)
        LOG_INFO("main", "ready again: redis is back");
    else
        LOG_WARN("main", "not ready: redis %s", error ? error : "unavailable");
    if (hub->locks)
        lock_on_redis_state(hub->locks, ready);
    gw_on_redis_state(hub->gw, ready);
}

static void
on_bus_message(void *privdata, const char *pattern, const char *channel, size_t channel_len,
               const char *payload, size_t len)
{
    hub_t *hub = privdata;
    if (pattern == NULL && channel_len == sizeof LOCK_RELEASE_CHANNEL - 1 &&
        memcmp(channel, LOCK_RELEASE_CHANNEL, channel_len) == 0) {
        if (hub->locks)
            lock_on_release(hub->locks, payload, len);
        return;
    }
    if (hub->gw)
        gw_on_message(hub->gw, pattern, channel, channel_len, payload, len);
}

static int
run(hub_t *hub)
{
    bus_options_t bo;
    gw_options_t go;
    const char *err = NULL;
    int rc;

    uv_loop_init(&hub->loop);
    memset(&bo, 0, sizeof bo);
    bo.url = hub->cfg.redis_url;
    bo.channels = sub_channels;
    bo.nchannels = sizeof sub_channels / sizeof sub_channels[0];
    bo.patterns = sub_patterns;
    bo.npatterns = 1;
    bo.on_message = on_bus_message;
    bo.on_state = on_bus_state;
    bo.privdata = hub;
    if (bus_new(&hub->loop, &bo, &hub->bus, &err) != 0) {
        fprintf(stderr, "coordhub: bad Redis URL '%s': %s\n", hub->cfg.redis_url, err);
        uv_loop_close(&hub->loop);
        return 2;
    }

    hub->locks = lock_mgr_new(&hub->loop, hub->bus);

    memset(&go, 0, sizeof go);
    go.host = hub->cfg.host;
    go.port = hub->cfg.port;
    go.jwt_secret = hub->cfg.jwt_secret;
    go.web_root = hub->cfg.web_root;
    go.bus = hub->bus;
    go.locks = hub->locks;
    /* Engine.IO timings: SPEC-less knobs for tests and unusual proxies */
    go.sio_ping_interval_ms = env_ms("COORDHUB_SIO_PING_INTERVAL_MS");
    go.sio_ping_timeout_ms = env_ms("COORDHUB_SIO_PING_TIMEOUT_MS");
    rc = gw_new(&hub->loop, &go, &hub->gw, &err);
    if (rc != 0) {
        fprintf(stderr, "coordhub: cannot listen on %s:%d: %s\n", hub->cfg.host, hub->cfg.port,
                err);
        bus_close(hub->bus, on_bus_closed, hub);
        uv_run(&hub->loop, UV_RUN_DEFAULT);
        uv_loop_close(&hub->loop);
        return 2;
    }
    uv_signal_init(&hub->loop, &hub->sigint);
    uv_signal_init(&hub->loop, &hub->sigterm);
    hub->sigint.data = hub->sigterm.data = hub;
    uv_signal_start(&hub->sigint, on_signal, SIGINT);
    uv_signal_start(&hub->sigterm, on_signal, SIGTERM);

    if (hub->cfg.mongo_uri)
        LOG_WARN("main", "--mongo is accepted but the configuration cache is not in this build "
                         "yet; it is ignored");
    bus_start(hub->bus);

    uv_run(&hub->loop, UV_RUN_DEFAULT);

    gw_free(hub->gw);
    hub->gw = NULL;
    /* anything still open now is a leak of ours: report it, fail the exit */
    if (uv_loop_close(&hub->loop) != 0) {
        uv_run(&hub->loop, UV_RUN_DEFAULT);
        if (uv_loop_close(&hub->loop) != 0) {
            LOG_ERROR("main", "event loop did not close cleanly");
            return hub->exit_code ? hub->exit_code : 1;
        }
    }
    if (hub->exit_code == 0)
        LOG_INFO("main", "stopped");
    return hub->exit_code;
}

int
main(int argc, char **argv)
{
    hub_t hub;
    int rc;

    signal(SIGPIPE, SIG_IGN);
    if (argc > 1 && strcmp(argv[1], "token") == 0)
        return cmd_token(argc - 1, argv + 1);
    memset(&hub, 0, sizeof hub);
    rc = parse_config(argc, argv, &hub.cfg);
    if (rc != 0)
        return rc;
    util_log_set_level(hub.cfg.log_level);
    return run(&hub);
}
