/*
 * locks: distributed locks on Redis (README, "Locks").
 *
 * The lock name is the Redis key itself, holding a random token, with a PX
 * TTL: a legacy `SET lockTrade:<id> x NX EX 900` and a lock taken here
 * exclude each other. Acquire runs one Lua script that does SET NX PX and
 * INCR of the fencing counter `coordhub:fence:{<name>}` (no TTL: fences only
 * grow, across holders and restarts). Release and extend compare the token
 * in Lua before DEL / PEXPIRE; release PUBLISHes the name on
 * `coordhub:lock-released`. Scripts are SCRIPT LOADed and run by EVALSHA,
 * reloaded transparently on NOSCRIPT (a Redis restart flushes them).
 *
 * A request that may wait is queued per name, first come first served among
 * this hub's waiters, and retried only when a release notice for the name
 * arrives or a timer at the holder's remaining PTTL fires (a legacy holder
 * never publishes): never by polling.
 */
#ifndef COORDHUB_LOCKS_H
#define COORDHUB_LOCKS_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "bus.h"
#include "util.h"

#define LOCK_NAME_MAX 200
#define LOCK_TTL_MAX 86400000LL
#define LOCK_WAIT_MAX 60000LL
#define LOCK_OWNER_MAX 128
#define LOCK_TOKEN_MAX 64 /* accepted from clients; ours are 32 hex chars */
#define LOCK_RELEASE_CHANNEL UTIL_CHANNEL_LOCK_RELEASED /* util.h: the channel table */

typedef struct lock_mgr lock_mgr_t;
typedef struct lock_op lock_op_t;

/* What happened, when the request did not fail (docs/errors.md). */
enum lock_outcome {
    LOCK_DONE = 0,  /* acquired, extended, released or inspected */
    LOCK_HELD,      /* held by someone else (after waiting, if asked) */
    LOCK_NOT_OWNER, /* the token does not hold the lock */
};

typedef struct lock_result {
    /* 0, or UV_ENOTCONN (Redis down, or went down while waiting),
     * UV_ECANCELED (the manager is draining or closing), UV_EPROTO (Redis
     * answered something unexpected) */
    int error;
    enum lock_outcome outcome; /* when error is 0 */
    const char *name;
    char token[33];     /* acquire */
    long long fence;    /* acquire; inspect: -1 when never taken */
    long long ttl_ms;   /* acquire, extend; inspect: -1 no expiry, -2 not held */
    int held;           /* inspect */
    const char *detail; /* with an error: why (static or transient), or NULL */
} lock_result_t;

/* Fires exactly once per accepted request, unless lock_cancel came first. */
typedef void (*lock_cb)(void *privdata, const lock_result_t *r);

typedef struct lock_metrics {
    uint64_t acquisitions;
    uint64_t contention; /* answered held */
    uint64_t waits;      /* requests that had to wait */
    uint64_t wait_count; /* waits that ended (granted or not) */
    double wait_seconds;
    uint64_t releases;
    uint64_t releases_not_owner;
    uint64_t extends;
    uint64_t not_owner; /* extend or release refused */
    uint64_t noscript_reloads;
    uint64_t replica_refusals; /* won, but WAIT saw too few replicas: released, 503 */
} lock_metrics_t;

/* ---- request validation (pure; validate.c) ---- */

/* 1..200 of [A-Za-z0-9:_.-{}], not starting "coordhub:". 0, or UV_EINVAL
 * with *err. */
int lock_valid_name(const char *s, size_t n, const char **err);

typedef struct lock_acquire_args {
    long long ttl_ms;
    long long wait_ms;
    char owner[LOCK_OWNER_MAX + 1];
} lock_acquire_args_t;

/* Bodies of the HTTP routes: a JSON object of the documented fields, typed and
 * range-checked. Return 0, or UV_EINVAL with *err naming the problem. */
int lock_parse_acquire(const char *body, size_t len, lock_acquire_args_t *out, const char **err);
int lock_parse_extend(const char *body, size_t len, char token[LOCK_TOKEN_MAX + 1],
                      long long *ttl_ms, const char **err);
int lock_parse_release(const char *body, size_t len, char token[LOCK_TOKEN_MAX + 1],
                       const char **err);

/* ---- the manager (locks.c) ---- */

/* Creates a manager using `bus`'s command connection. The caller routes
 * messages of LOCK_RELEASE_CHANNEL to lock_on_release and readiness to
 * lock_on_redis_state. */
lock_mgr_t *lock_mgr_new(uv_loop_t *loop, bus_t *bus);
/* --lock-replicas (SPEC §11): a won acquire is granted only after WAIT n
 * (100 ms) confirms n replicas hold it; otherwise it is released and
 * answered UV_ENOTCONN (503). Its bus should be the locks' own: WAIT
 * blocks the connection it runs on. */
void lock_mgr_set_replicas(lock_mgr_t *m, unsigned n);

void lock_on_release(lock_mgr_t *m, const char *name, size_t len);
void lock_on_redis_state(lock_mgr_t *m, int ready);

/*
 * Each request copies its arguments. Returns 0 (the callback will fire once,
 * from the loop, unless cancelled, and `*op` is the handle for lock_cancel,
 * valid until the callback starts or lock_cancel returns), or (the callback
 * never fires) UV_EINVAL for a name or token out of bounds (names should have
 * passed lock_valid_name), UV_ECANCELED when the manager is closing,
 * UV_ENOTCONN when Redis is not ready.
 */
int lock_acquire(lock_mgr_t *m, const char *name, size_t len, const lock_acquire_args_t *a,
                 lock_cb cb, void *privdata, lock_op_t **op);
int lock_extend(lock_mgr_t *m, const char *name, size_t len, const char *token, long long ttl_ms,
                lock_cb cb, void *privdata, lock_op_t **op);
int lock_release(lock_mgr_t *m, const char *name, size_t len, const char *token, lock_cb cb,
                 void *privdata, lock_op_t **op);
int lock_inspect(lock_mgr_t *m, const char *name, size_t len, lock_cb cb, void *privdata,
                 lock_op_t **op);

/* The requester is gone: its callback never fires. A waiter leaves the
 * queue at once; a Redis command in flight finishes unseen. */
void lock_cancel(lock_op_t *op);

/* Answers every waiter UV_ECANCELED ("shutting down") and refuses new
 * waits: the first step of a graceful stop. */
void lock_mgr_drain(lock_mgr_t *m);

const lock_metrics_t *lock_metrics(lock_mgr_t *m);

/* Closes: every request not yet answered is answered UV_ECANCELED (unless
 * cancelled), the manager's Redis requests are cancelled (docs/requests.md),
 * so it may be called before or after bus_close. `close_cb` fires from the
 * loop once every handle is closed and the memory freed. */
void lock_mgr_close(lock_mgr_t *m, void (*close_cb)(void *privdata), void *privdata);

#endif
