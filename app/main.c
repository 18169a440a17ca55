/*
 * app/main.c: the composition root. Reads flags and environment (README, "Configuration"),
 * owns the uv_loop_t, wires the bus's messages into the gateway, and runs
 * the stop sequence: stop accepting and close sockets with 1001, destroy the
 * lws context, close Redis, close our handles, drain the loop, close it.
 *
 * Exit codes: 0 after a clean stop, 2 for bad flags or a start-up failure
 * (port, Redis), 1 if the loop did not close cleanly (a leak of handles).
 */
#include "bus.h"
#include "cache.h"
#include "gateway.h"
#include "locks.h"
#include "queues.h"
#include "reserve.h"
#include "wire.h"

#include <hiredis/hiredis.h>
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
    const char *jwt_keys; /* a JSON Web Key Set file, reloaded on SIGHUP */
    const char *jwt_issuer, *jwt_audience;
    const char *web_root;
    const char *apps; /* comma-separated app ids to watch */
    const char *cors_origins; /* comma-separated origins allowed cross-origin, or "*" */
    unsigned recovery_window_ms; /* SPEC §9; 0: recovery off */
    unsigned recovery_max_per_room;
    unsigned lock_replicas; /* SPEC §11: WAIT for this many replicas; 0 off */
    queues_conf_t queues;   /* SPEC §12: --queues and --queue-alerts, parsed */
    unsigned queue_poll_ms;
    const char *job_user_field;
    int log_level;
} config_t;

typedef struct hub {
    uv_loop_t loop;
    config_t cfg;
    bus_t *bus;
    bus_t *lock_bus; /* --lock-replicas: the locks' own connections (WAIT blocks one) */
    lock_mgr_t *locks;
    resv_mgr_t *resv;
    cache_t *cache;
    queues_t *queues;
    gw_t *gw;
    uv_signal_t sigint, sigterm, sighup;
    int stopping;
    int exit_code;
    int signals_closed;
} hub_t;

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
          "  --mongo URI         MONGODB_URI          configuration store (default: the Redis\n"
          "                                           hash configuration-store)\n"
          "  --jwt-secret S      COORDHUB_JWT_SECRET  HMAC secret for tokens (HS256/384/512)\n"
          "  --jwt-keys FILE     COORDHUB_JWT_KEYS    JSON Web Key Set (oct, RSA, EC keys by kid);\n"
          "                                           reloaded on SIGHUP. One of the two is required\n"
          "  --jwt-issuer S      COORDHUB_JWT_ISSUER  tokens must carry iss S\n"
          "  --jwt-audience S    COORDHUB_JWT_AUDIENCE  tokens must carry aud S\n"
          "  --web-root DIR      COORDHUB_WEB_ROOT    serve static files at /\n"
          "  --log-level L       COORDHUB_LOG_LEVEL   error|warn|info|debug (default info)\n"
          "  --apps ID,ID        COORDHUB_APPS        app ids whose reservations to sweep\n"
          "  --cors-origins L    COORDHUB_CORS_ORIGINS  origins (scheme://host[:port], comma-\n"
          "                                           separated, or *) whose pages may use\n"
          "                                           Socket.IO polling cross-origin (default:\n"
          "                                           none, same origin only)\n"
          "  --recovery-window-ms N  COORDHUB_RECOVERY_WINDOW_MS  how long missed events can be\n"
          "                                           recovered after a disconnect (default\n"
          "                                           120000; 0: recovery off)\n"
          "  --recovery-max-per-room N  COORDHUB_RECOVERY_MAX_PER_ROOM  events kept per room\n"
          "                                           for recovery (default 100, 1-10000)\n"
          "  --lock-replicas N   COORDHUB_LOCK_REPLICAS  grant a lock only once N replicas hold\n"
          "                                           it (WAIT, 100 ms; else 503), 0-16 (default 0)\n"
          "  --queues LIST       COORDHUB_QUEUES      job queues to watch, comma-separated:\n"
          "                                           bull:<name>, bullmq:<name> (key prefix\n"
          "                                           bull, or bull@<prefix>:<name>),\n"
          "                                           stream:<stream>/<group>[/<dead letters>]\n"
          "  --queue-poll-ms N   COORDHUB_QUEUE_POLL_MS  how often their counts are read\n"
          "                                           (default 5000, 100-3600000)\n"
          "  --queue-alerts L    COORDHUB_QUEUE_ALERTS  bounds, [<queue>:]<measure>><bound>\n"
          "                                           (default " QUEUES_DEFAULT_ALERTS ")\n"
          "  --job-user-field P  COORDHUB_JOB_USER_FIELD  the field of a job's data naming\n"
          "                                           its user (default userId; a.b for nested)\n"
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
    OPT_TTL,
    OPT_APPS,
    OPT_CORS,
    OPT_JWT_KEYS,
    OPT_JWT_ISS,
    OPT_JWT_AUD,
    OPT_REC_WINDOW,
    OPT_REC_MAX,
    OPT_LOCK_REPLICAS,
    OPT_QUEUES,
    OPT_QUEUE_POLL,
    OPT_QUEUE_ALERTS,
    OPT_JOB_USER_FIELD,
    OPT_APP,
    OPT_OWNER,
    OPT_IDS_KEY,
    OPT_INFO_KEY
};

/* A decimal integer in [lo, hi]: 0, or -1. */
static int
parse_uint(const char *s, unsigned long lo, unsigned long hi, unsigned *out)
{
    char *end;
    unsigned long v;

    if (s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = (unsigned)v;
    return 0;
}

/* Calls fn for each id of "730,440,570"; -1 if one is not a valid app id. */
static int
for_each_app(const char *list, void (*fn)(void *, const char *, size_t), void *ctx)
{
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (resv_valid_app(p, n) != 0)
            return -1;
        if (fn)
            fn(ctx, p, n);
        if (comma == NULL)
            return 0;
        p = comma + 1;
    }
}

static void
watch_app(void *ctx, const char *app, size_t n)
{
    resv_watch(ctx, app, n);
}

/* A path of field names joined by dots: each 1-100 printable, no dot
 * at either end. */
static int
user_field_ok(const char *p)
{
    size_t run = 0, n = strlen(p);

    if (n == 0 || n > 200)
        return 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || p[i] == '.') {
            if (run == 0 || run > 100)
                return 0;
            run = 0;
        } else if (p[i] <= ' ' || p[i] > '~') {
            return 0;
        } else {
            run++;
        }
    }
    return 1;
}

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
        {"apps", required_argument, NULL, OPT_APPS},
        {"cors-origins", required_argument, NULL, OPT_CORS},
        {"jwt-keys", required_argument, NULL, OPT_JWT_KEYS},
        {"jwt-issuer", required_argument, NULL, OPT_JWT_ISS},
        {"jwt-audience", required_argument, NULL, OPT_JWT_AUD},
        {"recovery-window-ms", required_argument, NULL, OPT_REC_WINDOW},
        {"recovery-max-per-room", required_argument, NULL, OPT_REC_MAX},
        {"lock-replicas", required_argument, NULL, OPT_LOCK_REPLICAS},
        {"queues", required_argument, NULL, OPT_QUEUES},
        {"queue-poll-ms", required_argument, NULL, OPT_QUEUE_POLL},
        {"queue-alerts", required_argument, NULL, OPT_QUEUE_ALERTS},
        {"job-user-field", required_argument, NULL, OPT_JOB_USER_FIELD},
        {NULL, 0, NULL, 0},
    };
    const char *rec_window = env_or("COORDHUB_RECOVERY_WINDOW_MS", "120000");
    const char *rec_max = env_or("COORDHUB_RECOVERY_MAX_PER_ROOM", "100");
    const char *lock_replicas = env_or("COORDHUB_LOCK_REPLICAS", "0");
    const char *queues = env_or("COORDHUB_QUEUES", NULL);
    const char *queue_alerts = env_or("COORDHUB_QUEUE_ALERTS", NULL);
    const char *queue_poll = env_or("COORDHUB_QUEUE_POLL_MS", "5000");
    char qerr[512];
    const char *listen = env_or("COORDHUB_LISTEN", "127.0.0.1:8080");
    const char *level = env_or("COORDHUB_LOG_LEVEL", "info");
    struct stat st;
    int c;

    cfg->redis_url = env_or("REDIS_URL", "redis://127.0.0.1:6379/0");
    cfg->mongo_uri = env_or("MONGODB_URI", NULL);
    cfg->jwt_secret = env_or("COORDHUB_JWT_SECRET", NULL);
    cfg->web_root = env_or("COORDHUB_WEB_ROOT", NULL);
    cfg->apps = env_or("COORDHUB_APPS", NULL);
    cfg->cors_origins = env_or("COORDHUB_CORS_ORIGINS", NULL);
    cfg->jwt_keys = env_or("COORDHUB_JWT_KEYS", NULL);
    cfg->jwt_issuer = env_or("COORDHUB_JWT_ISSUER", NULL);
    cfg->jwt_audience = env_or("COORDHUB_JWT_AUDIENCE", NULL);
    cfg->job_user_field = env_or("COORDHUB_JOB_USER_FIELD", "userId");
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case OPT_LISTEN: listen = optarg; break;
        case OPT_REDIS: cfg->redis_url = optarg; break;
        case OPT_MONGO: cfg->mongo_uri = optarg; break;
        case OPT_SECRET: cfg->jwt_secret = optarg; break;
        case OPT_WEBROOT: cfg->web_root = optarg; break;
        case OPT_APPS: cfg->apps = optarg; break;
        case OPT_CORS: cfg->cors_origins = optarg; break;
        case OPT_JWT_KEYS: cfg->jwt_keys = optarg; break;
        case OPT_JWT_ISS: cfg->jwt_issuer = optarg; break;
        case OPT_JWT_AUD: cfg->jwt_audience = optarg; break;
        case OPT_REC_WINDOW: rec_window = optarg; break;
        case OPT_REC_MAX: rec_max = optarg; break;
        case OPT_LOCK_REPLICAS: lock_replicas = optarg; break;
        case OPT_QUEUES: queues = optarg; break;
        case OPT_QUEUE_POLL: queue_poll = optarg; break;
        case OPT_QUEUE_ALERTS: queue_alerts = optarg; break;
        case OPT_JOB_USER_FIELD: cfg->job_user_field = optarg; break;
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
    if (parse_uint(rec_window, 0, 24u * 3600 * 1000, &cfg->recovery_window_ms) != 0)
        return fail_usage("bad --recovery-window-ms '%s': want 0 (off) to 86400000", rec_window);
    if (parse_uint(rec_max, 1, 10000, &cfg->recovery_max_per_room) != 0)
        return fail_usage("bad --recovery-max-per-room '%s': want 1 to 10000", rec_max);
    if (parse_uint(lock_replicas, 0, 16, &cfg->lock_replicas) != 0)
        return fail_usage("bad --lock-replicas '%s': want 0 to 16", lock_replicas);
    if (parse_uint(queue_poll, 100, 3600000, &cfg->queue_poll_ms) != 0)
        return fail_usage("bad --queue-poll-ms '%s': want 100 to 3600000", queue_poll);
    if (!user_field_ok(cfg->job_user_field))
        return fail_usage("bad --job-user-field '%s': want a field name, or names joined by "
                          "dots", cfg->job_user_field);
    if (queues_conf_parse(queues, queue_alerts, &cfg->queues, qerr, sizeof qerr) != 0)
        return fail_usage("%s", qerr);
    if (cfg->apps && for_each_app(cfg->apps, NULL, NULL) != 0)
        return fail_usage("bad --apps '%s': want app ids (A-Za-z0-9_-) separated by commas",
                          cfg->apps);
    if ((cfg->jwt_secret == NULL || cfg->jwt_secret[0] == '\0') && cfg->jwt_keys == NULL)
        return fail_usage("%s", "no key for tokens: give --jwt-secret (COORDHUB_JWT_SECRET) or "
                                "--jwt-keys (COORDHUB_JWT_KEYS)");
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
    if (wire_jwt_sign(secret, sub, roles, ttl, time(NULL), &tok) != 0)
        return fail_usage("%s", "bad --sub or --roles (sub: 1-64 of A-Za-z0-9_.-; roles: "
                                "comma-separated names)");
    puts(tok);
    free(tok);
    return 0;
}

/* coordhub migrate-reservations --app ID [--redis URL] [--owner NAME]
 *                               [--ids-key K] [--info-key K] */
static int
cmd_migrate(int argc, char **argv)
{
    static const struct option opts[] = {
        {"app", required_argument, NULL, OPT_APP},
        {"redis", required_argument, NULL, OPT_REDIS},
        {"owner", required_argument, NULL, OPT_OWNER},
        {"ids-key", required_argument, NULL, OPT_IDS_KEY},
        {"info-key", required_argument, NULL, OPT_INFO_KEY},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    const char *url = env_or("REDIS_URL", "redis://127.0.0.1:6379/0"), *err;
    resv_migrate_opts_t mo = {0};
    struct timeval tv = {2, 0};
    redisContext *rc;
    redisReply *r;
    bus_url_t u;
    int c, status;

    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case OPT_APP: mo.app = optarg; break;
        case OPT_REDIS: url = optarg; break;
        case OPT_OWNER: mo.owner = optarg; break;
        case OPT_IDS_KEY: mo.ids_key = optarg; break;
        case OPT_INFO_KEY: mo.info_key = optarg; break;
        case OPT_HELP:
            puts("usage: coordhub migrate-reservations --app ID [--redis URL] [--owner NAME]\n"
                 "         [--ids-key K] [--info-key K]\n"
                 "imports reserved-assets_<app> / reserved-assets-info_<app> as TTL'd\n"
                 "reservations; idempotent; the legacy lists are left untouched");
            return 0;
        case ':': return fail_usage("option %s needs a value", argv[optind - 1]);
        default: return fail_usage("unknown option %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return fail_usage("unexpected argument '%s'", argv[optind]);
    if (mo.app == NULL || resv_valid_app(mo.app, strlen(mo.app)) != 0)
        return fail_usage("%s", "migrate-reservations needs --app ID (A-Za-z0-9_-, 1-32)");
    if ((mo.ids_key && strlen(mo.ids_key) > 100) || (mo.info_key && strlen(mo.info_key) > 100))
        return fail_usage("%s", "key names over 100 characters");
    if (bus_url_parse(url, &u, &err) != 0)
        return fail_usage("bad Redis URL: %s", err);
    rc = redisConnectWithTimeout(u.host, u.port, tv);
    if (rc == NULL || rc->err) {
        fprintf(stderr, "coordhub: cannot connect to Redis at %s: %s\n", url,
                rc ? rc->errstr : "out of memory");
        redisFree(rc);
        bus_url_free(&u);
        return 2;
    }
    redisSetTimeout(rc, tv);
    r = NULL;
    if (u.pass)
        r = u.user ? redisCommand(rc, "AUTH %s %s", u.user, u.pass)
                   : redisCommand(rc, "AUTH %s", u.pass);
    if (r == NULL && u.pass == NULL && u.db)
        r = redisCommand(rc, "SELECT %d", u.db);
    else if (r != NULL && r->type != REDIS_REPLY_ERROR && u.db) {
        freeReplyObject(r);
        r = redisCommand(rc, "SELECT %d", u.db);
    }
    if ((u.pass || u.db) && (r == NULL || r->type == REDIS_REPLY_ERROR)) {
        fprintf(stderr, "coordhub: Redis refused AUTH/SELECT: %s\n", r ? r->str : rc->errstr);
        freeReplyObject(r);
        redisFree(rc);
        bus_url_free(&u);
        return 2;
    }
    freeReplyObject(r);
    bus_url_free(&u);
    status = resv_migrate(rc, &mo, stdout, stderr) == 0 ? 0 : 2;
    redisFree(rc);
    return status;
}

/* ---- the stop sequence ---- */

static void
on_locks_closed(void *privdata)
{
    hub_t *hub = privdata;
    hub->locks = NULL;
}

static void
on_resv_closed(void *privdata)
{
    hub_t *hub = privdata;
    hub->resv = NULL;
}

static void
on_cache_closed(void *privdata)
{
    hub_t *hub = privdata;
    hub->cache = NULL;
}

static void
on_bus_closed(void *privdata)
{
    hub_t *hub = privdata;
    hub->bus = NULL;
    /* after the bus: closing it answered every command in flight (the
     * locks after theirs, when they have one) */
    if (hub->locks && hub->lock_bus == NULL)
        lock_mgr_close(hub->locks, on_locks_closed, hub);
    if (hub->resv)
        resv_mgr_close(hub->resv, on_resv_closed, hub);
    if (hub->cache)
        cache_close(hub->cache, on_cache_closed, hub);
}

static void
on_lock_bus_closed(void *privdata)
{
    hub_t *hub = privdata;
    hub->lock_bus = NULL;
    if (hub->locks && hub->bus == NULL)
        lock_mgr_close(hub->locks, on_locks_closed, hub);
}

/* Both buses close; the managers close after them (on_bus_closed). */
static void
close_buses(hub_t *hub)
{
    if (hub->lock_bus)
        bus_close(hub->lock_bus, on_lock_bus_closed, hub);
    if (hub->bus)
        bus_close(hub->bus, on_bus_closed, hub);
}

static void
on_queues_closed(void *privdata)
{
    hub_t *hub = privdata;
    hub->queues = NULL;
}

/* A start that failed after the queues were made: they close too. */
static void
close_queues_and_buses(hub_t *hub)
{
    if (hub->queues)
        queues_close(hub->queues, on_queues_closed, hub);
    close_buses(hub);
}

static void
on_gw_stopped(void *privdata)
{
    hub_t *hub = privdata;
    close_buses(hub);
    if (!hub->signals_closed) {
        hub->signals_closed = 1;
        uv_close((uv_handle_t *)&hub->sigint, NULL);
        uv_close((uv_handle_t *)&hub->sigterm, NULL);
        uv_close((uv_handle_t *)&hub->sighup, NULL);
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
    /* first: it saves its read positions on the bus, and sends no more
     * events to a gateway that is stopping */
    if (hub->queues)
        queues_close(hub->queues, on_queues_closed, hub);
    gw_shutdown(hub->gw, 3000, on_gw_stopped, hub);
}

#define KEYS_FILE_MAX (1024 * 1024)

/* The key set of the configuration: the secret and the key file. 0, or -1
 * with `*why` naming the problem (static, or in `whybuf`). */
static int
load_keys(const config_t *cfg, wire_keyset_t **out, char *whybuf, size_t cap)
{
    wire_keyset_t *ks;
    const char *why = NULL;
    char *text;
    size_t n;
    FILE *f;

    *out = NULL;
    if (wire_keyset_new(cfg->jwt_issuer, cfg->jwt_audience, &ks) != 0) {
        snprintf(whybuf, cap, "out of memory");
        return -1;
    }
    if (cfg->jwt_secret && cfg->jwt_secret[0] && wire_keyset_add_secret(ks, cfg->jwt_secret) != 0) {
        wire_keyset_free(ks);
        snprintf(whybuf, cap, "the JWT secret does not load");
        return -1;
    }
    if (cfg->jwt_keys) {
        if ((f = fopen(cfg->jwt_keys, "rb")) == NULL) {
            snprintf(whybuf, cap, "cannot read the key file %s: %s", cfg->jwt_keys, strerror(errno));
            wire_keyset_free(ks);
            return -1;
        }
        text = util_malloc(KEYS_FILE_MAX + 1);
        n = fread(text, 1, KEYS_FILE_MAX + 1, f);
        fclose(f);
        if (n > KEYS_FILE_MAX || wire_keyset_add_jwks(ks, text, n, &why) != 0) {
            snprintf(whybuf, cap, "key file %s: %s", cfg->jwt_keys,
                     why ? why : "over 1 MiB");
            free(text);
            wire_keyset_free(ks);
            return -1;
        }
        free(text);
    }
    *out = ks;
    return 0;
}

/* SIGHUP: the key file again. Sockets stay; a file that does not load
 * keeps the keys in use. */
static void
on_hup(uv_signal_t *h, int signum)
{
    hub_t *hub = h->data;
    wire_keyset_t *ks;
    char why[512];

    (void)signum;
    if (load_keys(&hub->cfg, &ks, why, sizeof why) != 0) {
        LOG_WARN("main", "SIGHUP: keys not reloaded, the old ones stay: %s", why);
        return;
    }
    LOG_INFO("main", "SIGHUP: %zu keys loaded", wire_keyset_size(ks));
    gw_set_keys(hub->gw, ks);
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
        /* unreachable Redis at start: refuse to start (README, "Configuration"), with one
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
    if (hub->locks && hub->lock_bus == NULL)
        lock_on_redis_state(hub->locks, ready);
    if (hub->resv)
        resv_on_redis_state(hub->resv, ready);
    if (hub->cache)
        cache_on_redis_state(hub->cache, ready);
    gw_on_redis_state(hub->gw, ready);
}

/* The locks' own bus (--lock-replicas): its readiness is theirs. */
static void
on_lock_bus_state(void *privdata, int ready, int ever_ready, const char *error)
{
    hub_t *hub = privdata;

    if (!ready && error)
        LOG_WARN("main", "locks' redis connection %s: %s", ever_ready ? "down" : "not up yet",
                 error);
    if (hub->locks)
        lock_on_redis_state(hub->locks, ready);
}

static void
on_bus_message(void *privdata, const char *pattern, const char *channel, size_t channel_len,
               const char *payload, size_t len)
{
    hub_t *hub = privdata;

    switch (util_channel_of(pattern, channel, channel_len)) {
    case UTIL_CH_LOCK_RELEASED:
        if (hub->locks)
            lock_on_release(hub->locks, payload, len);
        return;
    case UTIL_CH_CONFIG_INVALIDATE:
        if (hub->cache)
            cache_on_publish(hub->cache, payload, len);
        return;
    case UTIL_CH_ITEM_RESERVED:
        if (hub->resv)
            resv_on_item_reserved(hub->resv, payload, len); /* maybe an earlier expiry */
        break;                                              /* and the gateway's event */
    default: break;
    }
    if (hub->gw)
        gw_on_message(hub->gw, pattern, channel, channel_len, payload, len);
}

static void
on_tracking(void *privdata, const redisReply *keys)
{
    hub_t *hub = privdata;
    if (hub->cache)
        cache_on_tracking(hub->cache, keys);
}

static void
on_config_change(void *privdata, const char *key, const char *value, long long version)
{
    hub_t *hub = privdata;
    if (hub->gw)
        gw_config_changed(hub->gw, key, value, version);
}

static void
on_queue_event(void *privdata, const char *room, const char *event, const char *json, size_t len)
{
    hub_t *hub = privdata;
    if (hub->gw && !hub->stopping)
        gw_room_event(hub->gw, room, event, json, len);
}

static int
run(hub_t *hub)
{
    bus_options_t bo;
    gw_options_t go;
    const char *channels[UTIL_CH_COUNT], *patterns[UTIL_CH_COUNT];
    const char *err = NULL;
    int rc;

    uv_loop_init(&hub->loop);
    memset(&bo, 0, sizeof bo);
    bo.url = hub->cfg.redis_url;
    /* every channel of the table (util.h); the bus copies the names */
    for (int i = 0; i < UTIL_CH_COUNT; i++) {
        const util_channel_t *ch = &util_channels[i];
        if (ch->name == NULL)
            continue;
        if (ch->pattern)
            patterns[bo.npatterns++] = ch->name;
        else
            channels[bo.nchannels++] = ch->name;
    }
    bo.channels = channels;
    bo.patterns = patterns;
    bo.on_message = on_bus_message;
    bo.on_state = on_bus_state;
    bo.on_invalidate = on_tracking;
    bo.privdata = hub;
    if (bus_new(&hub->loop, &bo, &hub->bus, &err) != 0) {
        fprintf(stderr, "coordhub: bad Redis URL '%s': %s\n", hub->cfg.redis_url, err);
        uv_loop_close(&hub->loop);
        return 2;
    }

    if (hub->cfg.lock_replicas > 0) {
        /* WAIT blocks the connection it runs on: the locks get their own */
        bus_options_t lo;
        memset(&lo, 0, sizeof lo);
        lo.url = hub->cfg.redis_url;
        lo.on_state = on_lock_bus_state;
        lo.privdata = hub;
        if (bus_new(&hub->loop, &lo, &hub->lock_bus, &err) != 0) {
            fprintf(stderr, "coordhub: bad Redis URL '%s': %s\n", hub->cfg.redis_url, err);
            bus_close(hub->bus, on_bus_closed, hub);
            uv_run(&hub->loop, UV_RUN_DEFAULT);
            uv_loop_close(&hub->loop);
            return 2;
        }
    }
    hub->locks = lock_mgr_new(&hub->loop, hub->lock_bus ? hub->lock_bus : hub->bus);
    lock_mgr_set_replicas(hub->locks, hub->cfg.lock_replicas);
    hub->resv = resv_mgr_new(&hub->loop, hub->bus);
    {
        cache_options_t co = {0};
        cache_store_t *store;
        co.on_change = on_config_change;
        co.privdata = hub;
        if (hub->cfg.mongo_uri) {
            store = cache_store_mongo_new(&hub->loop, hub->cfg.mongo_uri, &err);
            if (store == NULL) {
                fprintf(stderr, "coordhub: bad --mongo: %s\n", err);
                return 2;
            }
        } else {
            store = cache_store_redis_new(hub->bus, 180);
        }
        hub->cache = cache_new(&hub->loop, hub->bus, store, &co);
    }
    if (hub->cfg.apps)
        for_each_app(hub->cfg.apps, watch_app, hub->resv);
    if (hub->cfg.queues.nq > 0) {
        queues_options_t qo = {0};
        char cursor_id[300];
        snprintf(cursor_id, sizeof cursor_id, "%s:%d", hub->cfg.host, hub->cfg.port);
        qo.conf = hub->cfg.queues; /* taken */
        memset(&hub->cfg.queues, 0, sizeof hub->cfg.queues);
        qo.bus = hub->bus;
        qo.redis_url = hub->cfg.redis_url;
        qo.poll_ms = hub->cfg.queue_poll_ms;
        qo.user_field = hub->cfg.job_user_field;
        qo.cursor_id = cursor_id;
        qo.progress_ms = env_ms("COORDHUB_JOB_PROGRESS_MS"); /* an undocumented knob for tests */
        qo.emit = on_queue_event;
        qo.privdata = hub;
        if (queues_new(&hub->loop, &qo, &hub->queues, &err) != 0) {
            fprintf(stderr, "coordhub: bad Redis URL '%s': %s\n", hub->cfg.redis_url, err);
            return 2; /* not reached: the URL was parsed by the bus already */
        }
    }

    memset(&go, 0, sizeof go);
    go.host = hub->cfg.host;
    go.port = hub->cfg.port;
    {
        char why[512];
        if (load_keys(&hub->cfg, &go.keys, why, sizeof why) != 0) {
            fprintf(stderr, "coordhub: %s\n", why);
            close_queues_and_buses(hub);
            uv_run(&hub->loop, UV_RUN_DEFAULT);
            uv_loop_close(&hub->loop);
            return 2;
        }
    }
    go.web_root = hub->cfg.web_root;
    go.bus = hub->bus;
    go.locks = hub->locks;
    go.resv = hub->resv;
    go.cache = hub->cache;
    go.queues = hub->queues;
    /* Engine.IO timings: undocumented knobs for tests and unusual proxies */
    go.sio_ping_interval_ms = env_ms("COORDHUB_SIO_PING_INTERVAL_MS");
    go.sio_ping_timeout_ms = env_ms("COORDHUB_SIO_PING_TIMEOUT_MS");
    go.sio_connect_timeout_ms = env_ms("COORDHUB_SIO_CONNECT_TIMEOUT_MS");
    go.cors_origins = hub->cfg.cors_origins;
    go.version = COORDHUB_VERSION;
    go.recovery_window_ms = hub->cfg.recovery_window_ms;
    go.recovery_max_per_room = hub->cfg.recovery_max_per_room;
    /* an undocumented knob for tests: the anchors' period (docs/recovery.md) */
    go.recovery_anchor_ms = env_ms("COORDHUB_RECOVERY_ANCHOR_MS");
    go.ws_idle_ping_ms = env_ms("COORDHUB_WS_IDLE_PING_MS");
    go.ws_idle_drop_ms = env_ms("COORDHUB_WS_IDLE_DROP_MS");
    rc = gw_new(&hub->loop, &go, &hub->gw, &err);
    if (rc != 0) {
        if (rc == UV_EINVAL) /* a bad option */
            fprintf(stderr, "coordhub: %s\n", err);
        else
            fprintf(stderr, "coordhub: cannot listen on %s:%d: %s\n", hub->cfg.host,
                    hub->cfg.port, err);
        close_queues_and_buses(hub);
        uv_run(&hub->loop, UV_RUN_DEFAULT);
        uv_loop_close(&hub->loop);
        return 2;
    }
    uv_signal_init(&hub->loop, &hub->sigint);
    uv_signal_init(&hub->loop, &hub->sigterm);
    hub->sigint.data = hub->sigterm.data = hub;
    uv_signal_start(&hub->sigint, on_signal, SIGINT);
    uv_signal_start(&hub->sigterm, on_signal, SIGTERM);
    uv_signal_init(&hub->loop, &hub->sighup);
    hub->sighup.data = hub;
    uv_signal_start(&hub->sighup, on_hup, SIGHUP);

    bus_start(hub->bus);
    if (hub->lock_bus)
        bus_start(hub->lock_bus);
    if (hub->queues)
        queues_start(hub->queues);

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
    if (argc > 1 && strcmp(argv[1], "migrate-reservations") == 0)
        return cmd_migrate(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "token") == 0)
        return cmd_token(argc - 1, argv + 1);
    memset(&hub, 0, sizeof hub);
    rc = parse_config(argc, argv, &hub.cfg);
    if (rc != 0) {
        queues_conf_free(&hub.cfg.queues); /* parsed before a later flag failed */
        return rc;
    }
    util_log_set_level(hub.cfg.log_level);
    rc = run(&hub);
    queues_conf_free(&hub.cfg.queues); /* when run did not take it */
    return rc;
}
