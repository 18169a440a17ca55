/*
 * bus: coordhub's Redis, over hiredis async on our own libuv adapter.
 *
 * A bus owns two connections to one Redis: a subscriber (SUBSCRIBE and
 * PSUBSCRIBE only) and a command connection. Each connects with a timeout,
 * proves itself alive with a keepalive round trip, and on any failure is
 * torn down and reconnected with capped exponential backoff and jitter
 * (100 ms doubling to 2 s, +-20%); the subscriber resubscribes everything.
 * The bus is "ready" while both are up and every subscription is confirmed.
 *
 * Every command is a request that its owner can cancel, alone or with the
 * rest of its group: docs/requests.md. Errors: docs/errors.md.
 */
#ifndef COORDHUB_BUS_H
#define COORDHUB_BUS_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <uv.h>

typedef struct bus bus_t;

/* A parsed redis:// or redis+sentinel:// URL. Strings are owned by the
 * struct. */
typedef struct bus_url {
    char *host; /* sentinel: the master found through them, NULL until then */
    int port;
    char *user; /* NULL unless given */
    char *pass; /* NULL unless given */
    int db;
    /* redis+sentinel://[user:pass@]host:port[,host:port...]/<master>[/db]
     * (SPEC §11): the sentinels (port 26379 when absent) and the master's
     * name; nsentinels 0 for redis:// */
    char **sentinel_hosts;
    int *sentinel_ports;
    size_t nsentinels;
    char *master;
} bus_url_t;

/*
 * Parses `redis://[[user]:pass@]host[:port][/db]` (also `[v6addr]`), or
 * `redis+sentinel://[[user]:pass@]host[:port][,host[:port]...]/<master>[/db]`
 * (the credentials are the master's; the sentinels are asked without). Pure: no
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
/* "host:port" of the Redis this bus talks to, into out[0..cap). */
void bus_address(const bus_t *bus, char *out, size_t cap);

/*
 * A reply callback: `reply` is NULL when the connection went away (or the
 * bus is closing) before an answer came; an error reply is passed as is, so
 * check reply->type == REDIS_REPLY_ERROR. Fires exactly once per accepted
 * command, never inside the call that sent it, unless the request was
 * cancelled first (then never). The reply is valid during the call only.
 */
typedef void (*bus_reply_cb)(void *privdata, redisReply *reply);

/*
 * Requests (docs/requests.md). Every command sent on the command connection
 * is a request, owned by the bus until its reply has been delivered.
 *
 * A bus_req_t handle is valid from the successful return of the call that
 * made it until its callback starts, or until bus_cancel returns: after
 * that it is gone, so the owner drops its copy in the callback. Cancelling
 * is therefore only possible while the reply is outstanding; a request
 * whose callback is running is no longer cancellable (bus_cancel on it is a
 * no-op), and one whose callback has returned no longer exists.
 */
typedef struct bus_req bus_req_t;

/*
 * The requests of one owner, so that it can cancel all of them when it
 * closes without counting replies: embed one, zeroed, in the owner, pass it
 * to every request, and call bus_group_cancel before freeing it. A request
 * leaves its group when its callback starts or when it is cancelled.
 */
typedef struct bus_group {
    bus_req_t *head;
} bus_group_t;

/*
 * Sends a command on the command connection. Returns 0 (the callback will
 * fire once, unless cancelled), or UV_ENOTCONN when that connection is not
 * ready (the callback never fires). `g` (may be NULL) is the owner's group;
 * `*req` (if `req` is not NULL) receives the handle. `cb` may be NULL to
 * ignore the reply.
 */
int bus_request(bus_t *bus, bus_group_t *g, bus_req_t **req, bus_reply_cb cb, void *privdata,
                const char *fmt, ...);
int bus_request_argv(bus_t *bus, bus_group_t *g, bus_req_t **req, bus_reply_cb cb, void *privdata,
                     int argc, const char **argv, const size_t *argvlen);

/*
 * The callback of `req` will never fire. The bus keeps the request's own
 * memory until Redis has answered (or the connection is gone) and then
 * frees it; the caller may free `privdata` as soon as this returns.
 */
void bus_cancel(bus_req_t *req);

/*
 * Cancels every request of `g` that is still outstanding. When `release`
 * is not NULL it is called, inside this call, with the privdata of each
 * request it cancelled, so that an owner whose requests each own a small
 * state of their own can free it without keeping a list. Afterwards `g` is
 * empty (and may be freed, or used again).
 */
void bus_group_cancel(bus_group_t *g, void (*release)(void *privdata));

/* bus_request without a group or a handle: for replies nobody needs to
 * cancel (fire and forget, or owners that outlive the bus). */
int bus_command(bus_t *bus, bus_reply_cb cb, void *privdata, const char *fmt, ...);
int bus_command_argv(bus_t *bus, bus_reply_cb cb, void *privdata, int argc, const char **argv,
                     const size_t *argvlen);

/*
 * A Lua script run by EVALSHA. Declare one per script (static storage is
 * fine: the sha is a cache of the text's SHA1, valid on any server). A
 * request running it writes into it, so one that lives in an owner's memory
 * is only used with the owner's group.
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
 * once, so the callback sees the script's own reply. One request however
 * many commands that takes: `g` and `req` as for bus_request. Returns 0 (the
 * callback, if not NULL, fires once unless cancelled), or UV_ENOTCONN (it
 * never does).
 */
int bus_script_request(bus_t *bus, bus_group_t *g, bus_req_t **req, bus_script_t *s, int numkeys,
                       int argc, const char **argv, const size_t *argvlen, bus_reply_cb cb,
                       void *privdata);

/* SCRIPT LOADs `s` now, e.g. when the bus becomes ready. Its answer is
 * written into `s`, so the request is put in `g` (the group of the owner of
 * `s`, or NULL when `s` outlives the bus). Failures are ignored: EVALSHA
 * loads what is missing. */
void bus_script_preload(bus_t *bus, bus_group_t *g, bus_script_t *s);

/*
 * Closes both connections (the callbacks of requests not cancelled get
 * NULL, before this returns unless it is called from inside a reply
 * callback, where hiredis defers it until that callback returns) and every
 * handle; `close_cb` fires once, from the loop, when the bus memory is
 * freed. Every request is gone by then.
 */
void bus_close(bus_t *bus, void (*close_cb)(void *privdata), void *privdata);

#endif
