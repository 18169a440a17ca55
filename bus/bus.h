/*
 * bus: coordhub's Redis, over hiredis async on our own libuv adapter.
 *
 * A bus owns two connections to one Redis: a subscriber (SUBSCRIBE and
 * PSUBSCRIBE only) and a command connection. Each connects with a timeout,
 * proves itself alive with a keepalive round trip, and on any failure is
 * torn down and reconnected with capped exponential backoff and jitter
 * (100 ms doubling to 2 s, +-20%); the subscriber resubscribes everything.
 * The bus is "ready" while both are up and every subscription is confirmed.
 */
#ifndef COORDHUB_BUS_H
#define COORDHUB_BUS_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <uv.h>

typedef struct bus bus_t;

/* A parsed redis:// URL. Strings are owned by the struct. */
typedef struct bus_url {
    char *host;
    int port;
    char *user; /* NULL unless given */
    char *pass; /* NULL unless given */
    int db;
} bus_url_t;

/*
 * Parses `redis://[[user]:pass@]host[:port][/db]` (also `[v6addr]`). Pure: no
 * allocation on failure. Returns 0, or UV_EINVAL with `*err` naming the
 * problem (a static string). On success free with bus_url_free.
 */
int bus_url_parse(const char *url, bus_url_t *out, const char **err);
void bus_url_free(bus_url_t *u);

/* Called for each pub/sub message. `pattern` is NULL for plain SUBSCRIBE.
 * Buffers are valid only during the call. */
typedef void (*bus_message_cb)(void *privdata, const char *pattern, const char *channel,
                               size_t channel_len, const char *payload, size_t len);

/* Called when readiness changes. `ever_ready` tells a first failure at start
 * (0) from an outage later (1); `error` is a static or transient string. */
typedef void (*bus_state_cb)(void *privdata, int ready, int ever_ready, const char *error);

typedef struct bus_options {
    const char *url;
    unsigned connect_timeout_ms; /* 0: 2000 */
    unsigned ping_interval_ms;   /* 0: 1000; keepalive round trip period */
    unsigned ping_timeout_ms;    /* 0: 3000; no answer for this long = dead */
    unsigned backoff_min_ms;     /* 0: 100 */
    unsigned backoff_max_ms;     /* 0: 2000 */
    const char *const *channels;
    size_t nchannels;
    const char *const *patterns;
    size_t npatterns;
    bus_message_cb on_message;
    /* Client-side caching invalidations (RESP2: messages on
     * "__redis__:invalidate", subscribe to it in `channels`): `keys` is the
     * array of invalidated keys, or NULL when Redis flushed everything. */
    void (*on_invalidate)(void *privdata, const redisReply *keys);
    bus_state_cb on_state;
    void *privdata;
} bus_options_t;

/*
 * Creates a bus on `loop`; nothing connects until bus_start. Copies what it
 * needs from `opt`. Returns 0, or UV_EINVAL for a bad URL (`*err` says why).
 */
int bus_new(uv_loop_t *loop, const bus_options_t *opt, bus_t **out, const char **err);

/* Starts connecting both connections. */
void bus_start(bus_t *bus);

int bus_ready(const bus_t *bus);

/* The subscriber connection's CLIENT ID (for CLIENT TRACKING ... REDIRECT),
 * valid while the bus is ready; 0 when unknown. */
long long bus_subscriber_id(const bus_t *bus);
uint64_t bus_reconnects(const bus_t *bus);

/*
 * A reply callback: `reply` is NULL when the connection went away (or the
 * bus is closing) before an answer came; an error reply is passed as is, so
 * check reply->type == REDIS_REPLY_ERROR. Fires exactly once per accepted
 * command.
 */
typedef void (*bus_reply_cb)(void *privdata, redisReply *reply);

/*
 * Sends a command on the command connection. Returns 0 (the callback will
 * fire once), or UV_ENOTCONN when that connection is not ready (the callback
 * never fires). `cb` may be NULL to ignore the reply.
 */
int bus_command(bus_t *bus, bus_reply_cb cb, void *privdata, const char *fmt, ...);
int bus_command_argv(bus_t *bus, bus_reply_cb cb, void *privdata, int argc, const char **argv,
                     const size_t *argvlen);

/*
 * A Lua script run by EVALSHA. Declare one per script (static storage is
 * fine: the sha is a cache of the text's SHA1, valid on any server).
 */
typedef struct bus_script {
    const char *text;
    char sha[41];     /* "" until SCRIPT LOAD has answered */
    uint64_t reloads; /* NOSCRIPT answers recovered from */
} bus_script_t;

/*
 * Runs `s` with `numkeys` keys among `argc` arguments (keys first), copying
 * them. The script is SCRIPT LOADed first if its sha is not known; a
 * NOSCRIPT answer (Redis restarted, SCRIPT FLUSH) loads it again and retries
 * once, so the callback sees the script's own reply. Returns 0 (the callback,
 * if not NULL, fires once), or UV_ENOTCONN (it never does).
 */
int bus_evalsha(bus_t *bus, bus_script_t *s, int numkeys, int argc, const char **argv,
                const size_t *argvlen, bus_reply_cb cb, void *privdata);

/* SCRIPT LOADs `s` now (fire and forget), e.g. when the bus becomes ready. */
void bus_script_preload(bus_t *bus, bus_script_t *s);

/*
 * Closes both connections (pending callbacks get NULL) and every handle;
 * `close_cb` fires once, from the loop, when the bus memory is freed.
 */
void bus_close(bus_t *bus, void (*close_cb)(void *privdata), void *privdata);

#endif
