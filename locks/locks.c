/*
 * locks/locks.c: the lock manager: Lua scripts on the bus's command
 * connection, and the per-name queues of waiters.
 *
 * Lifetimes. A lock_op_t is owned by its request until the callback fires
 * or lock_cancel is called ("done"); it is freed when it is done, has no
 * Redis request in flight and its deadline timer (if it waited) has closed.
 * Its Redis requests are in the manager's bus group `ops` (privdata: the
 * op), which lock_mgr_close cancels, answering what was still owed
 * (docs/requests.md). A lock_name_t exists while it has waiters or an
 * attempt in flight; it is freed when its expiry timer has closed.
 *
 * Waking. Only the head of a name's queue ever retries, and only when a
 * release notice for the name arrives or the expiry timer (armed at the
 * holder's PTTL) fires: one Redis round trip per wake, never a poll loop.
 */
#include "locks.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

enum script { S_ACQUIRE, S_RELEASE, S_EXTEND, S_INSPECT, S_COUNT };

/* KEYS[1] = name, KEYS[2] = fence key; ARGV[1] = token, ARGV[2] = ttl ms.
 * Answers {1, fence} when taken, {0, pttl of the holder} when held. */
static const char acquire_lua[] =
    "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then "
    "return {1, redis.call('INCR', KEYS[2])} end "
    "return {0, redis.call('PTTL', KEYS[1])}";

/* KEYS[1] = name; ARGV[1] = token. Deletes only our own lock, then tells
 * every hub's waiters. */
static const char release_lua[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                                  "redis.call('DEL', KEYS[1]) "
                                  "redis.call('PUBLISH', '" LOCK_RELEASE_CHANNEL "', KEYS[1]) "
                                  "return 1 end return 0";

/* KEYS[1] = name; ARGV[1] = token, ARGV[2] = ttl ms. */
static const char extend_lua[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                                 "redis.call('PEXPIRE', KEYS[1], ARGV[2]) "
                                 "return 1 end return 0";

/* KEYS[1] = name, KEYS[2] = fence key. {pttl, fence or false}. */
static const char inspect_lua[] = "return {redis.call('PTTL', KEYS[1]), "
                                  "redis.call('GET', KEYS[2])}";

static const char *const script_text[S_COUNT] = {acquire_lua, release_lua, extend_lua, inspect_lua};

/* OP_WAIT: an acquire that won, waiting for WAIT (--lock-replicas) */
enum op_kind { OP_ACQUIRE, OP_RELEASE, OP_EXTEND, OP_INSPECT, OP_WAIT };

#define WAIT_TIMEOUT_MS 100 /* SPEC §11 */

typedef struct lock_name lock_name_t;

struct lock_op {
    lock_mgr_t *m;
    enum op_kind kind;
    char name[LOCK_NAME_MAX + 1];
    size_t name_len;
    char token[LOCK_TOKEN_MAX + 1];
    long long ttl_ms;
    long long wait_ms;
    long long fence; /* OP_WAIT: the fence the acquire got */
    lock_cb cb;
    void *privdata;
    int done;       /* the callback fired, or the request was cancelled */
    /* OP_WAIT fell short of the replicas: the lock is given back and the
     * refusal answered only once Redis has answered the release, so that a
     * client that sees the 503 finds no lock left behind */
    int refused;
    bus_req_t *req; /* its script in flight, or NULL */
    /* waiting */
    lock_name_t *ln;
    lock_op_t *qnext, *qprev;
    uv_timer_t deadline;
    int deadline_open; /* the timer is initialised and not yet closed */
    int deadline_passed;
    uint64_t wait_start_ms;
};

struct lock_name {
    lock_mgr_t *m;
    char name[LOCK_NAME_MAX + 1];
    size_t len;
    lock_op_t *head, *tail;
    uv_timer_t expiry;
    int attempt; /* the head's acquire is in flight */
    int closing;
    util_hnode_t node; /* in the manager's `names`, keyed by `name` */
};

struct lock_mgr {
    uv_loop_t *loop;
    bus_t *bus;
    bus_script_t scripts[S_COUNT];
    unsigned replicas; /* --lock-replicas: WAIT for this many, 0 none */
    int ready;
    int draining;
    int closing;
    util_htable_t names; /* lock_name_t by name */
    lock_metrics_t metrics;
    bus_group_t ops;   /* the ops' scripts: privdata lock_op_t */
    bus_group_t loads; /* script loads: privdata our scripts */
    uv_timer_t closer; /* makes the close callback asynchronous */
    int handles_open;
    void (*close_cb)(void *);
    void *close_privdata;
};

static int send_op(lock_op_t *op);
static void wake(lock_name_t *ln);

/* ---- small things ---- */

static void
maybe_free_mgr(lock_mgr_t *m)
{
    if (!m->closing || m->handles_open > 0)
        return;
    util_htable_free(&m->names); /* empty: each name closed its timer */
    if (m->close_cb)
        m->close_cb(m->close_privdata);
    free(m);
}

static void
op_release(lock_op_t *op)
{
    lock_mgr_t *m = op->m;
    if (!op->done || op->req != NULL || op->deadline_open)
        return;
    free(op);
    maybe_free_mgr(m);
}

/* ---- names ---- */

static lock_name_t *
name_find(lock_mgr_t *m, const char *name, size_t len)
{
    util_hnode_t *n = util_htable_find(&m->names, name, len);
    return n ? UTIL_CONTAINER_OF(n, lock_name_t, node) : NULL;
}

static void
on_name_closed(uv_handle_t *h)
{
    lock_name_t *ln = h->data;
    lock_mgr_t *m = ln->m;
    free(ln);
    m->handles_open--;
    maybe_free_mgr(m);
}

static void
on_expiry(uv_timer_t *t)
{
    wake(t->data);
}

static lock_name_t *
name_get(lock_mgr_t *m, const char *name, size_t len)
{
    lock_name_t *ln = name_find(m, name, len);

    if (ln != NULL)
        return ln;
    ln = util_calloc(1, sizeof *ln);
    ln->m = m;
    memcpy(ln->name, name, len);
    ln->len = len;
    uv_timer_init(m->loop, &ln->expiry);
    ln->expiry.data = ln;
    m->handles_open++;
    util_htable_insert(&m->names, &ln->node, ln->name, len);
    return ln;
}

/* Drops the name when nobody waits on it and nothing is in flight. */
static void
name_maybe_drop(lock_name_t *ln)
{
    lock_mgr_t *m = ln->m;

    if (ln->head != NULL || ln->attempt || ln->closing)
        return;
    util_htable_remove(&m->names, &ln->node);
    ln->closing = 1;
    uv_close((uv_handle_t *)&ln->expiry, on_name_closed);
}

/* Retries the head when the holder's TTL runs out (+1 ms: PTTL rounds). A
 * holder without expiry (-1) is only ever released by a notice. */
static void
arm_expiry(lock_name_t *ln, long long pttl)
{
    if (pttl >= 0)
        uv_timer_start(&ln->expiry, on_expiry, (uint64_t)pttl + 1, 0);
    else if (pttl == -2)
        uv_timer_start(&ln->expiry, on_expiry, 0, 0);
}

/* ---- waiters ---- */

static void
on_deadline_closed(uv_handle_t *h)
{
    lock_op_t *op = h->data;
    lock_mgr_t *m = op->m;
    op->deadline_open = 0;
    m->handles_open--;
    op_release(op);
}

/* Takes `op` off its name's queue (the name may be dropped). */
static void
dequeue(lock_op_t *op)
{
    lock_name_t *ln = op->ln;
    lock_mgr_t *m = op->m;

    if (ln == NULL)
        return;
    if (op->qprev)
        op->qprev->qnext = op->qnext;
    else
        ln->head = op->qnext;
    if (op->qnext)
        op->qnext->qprev = op->qprev;
    else
        ln->tail = op->qprev;
    op->ln = NULL;
    op->qnext = op->qprev = NULL;
    m->metrics.wait_count++;
    m->metrics.wait_seconds += (double)(uv_now(m->loop) - op->wait_start_ms) / 1000.0;
    if (op->deadline_open)
        uv_close((uv_handle_t *)&op->deadline, on_deadline_closed);
    name_maybe_drop(ln);
}

/* Answers the request once (docs/errors.md: `error`, else `outcome`). */
static void
finish(lock_op_t *op, int error, enum lock_outcome outcome, long long fence, long long ttl,
       int held, const char *detail)
{
    lock_result_t r;

    dequeue(op);
    if (op->done)
        return;
    op->done = 1;
    memset(&r, 0, sizeof r);
    r.error = error;
    r.outcome = outcome;
    r.name = op->name;
    r.fence = fence;
    r.ttl_ms = ttl;
    r.held = held;
    r.detail = detail;
    if ((op->kind == OP_ACQUIRE || op->kind == OP_WAIT) && error == 0 && outcome == LOCK_DONE)
        memcpy(r.token, op->token, 33);
    if (error == 0 && outcome == LOCK_HELD)
        op->m->metrics.contention++;
    if (error == 0 && outcome == LOCK_NOT_OWNER)
        op->m->metrics.not_owner++;
    op->cb(op->privdata, &r);
}

static void
on_deadline(uv_timer_t *t)
{
    lock_op_t *op = t->data;

    /* An attempt in flight decides: if it wins, the lock is the caller's
     * (answering 409 would strand a lock nobody holds the token of). */
    if (op->ln && op->ln->head == op && op->ln->attempt) {
        op->deadline_passed = 1;
        return;
    }
    finish(op, 0, LOCK_HELD, 0, 0, 0, NULL);
    op_release(op);
}

static void
enqueue(lock_op_t *op, lock_name_t *ln)
{
    lock_mgr_t *m = op->m;

    op->ln = ln;
    op->qprev = ln->tail;
    if (ln->tail)
        ln->tail->qnext = op;
    else
        ln->head = op;
    ln->tail = op;
    op->wait_start_ms = uv_now(m->loop);
    m->metrics.waits++;
    uv_timer_init(m->loop, &op->deadline);
    op->deadline.data = op;
    op->deadline_open = 1;
    m->handles_open++;
    uv_timer_start(&op->deadline, on_deadline, (uint64_t)op->wait_ms, 0);
}

static void
fail_all_waiters(lock_mgr_t *m, int error, const char *why)
{
    util_hnode_t *n, *next;

    /* finish() may drop the name being visited (the next one is taken
     * first) and never adds one: nothing waits while Redis is down or the
     * manager drains */
    for (n = util_htable_next(&m->names, NULL); n != NULL; n = next) {
        lock_name_t *ln = UTIL_CONTAINER_OF(n, lock_name_t, node);
        lock_op_t *op = ln->head;
        next = util_htable_next(&m->names, n);
        /* finish() may drop `ln`; walk its queue from a copy */
        while (op != NULL) {
            lock_op_t *qn = op->qnext;
            if (ln->attempt && op == ln->head) {
                op->deadline_passed = 1; /* its reply decides */
            } else {
                finish(op, error, LOCK_DONE, 0, 0, 0, why);
                op_release(op);
            }
            op = qn;
        }
    }
}

/* ---- Redis ---- */

static enum script
op_script(const lock_op_t *op)
{
    switch (op->kind) {
    case OP_ACQUIRE: return S_ACQUIRE;
    case OP_RELEASE: return S_RELEASE;
    case OP_EXTEND: return S_EXTEND;
    default: return S_INSPECT;
    }
}

static int
reply_int(const redisReply *r, long long *out)
{
    if (r == NULL || r->type != REDIS_REPLY_INTEGER)
        return UV_EPROTO;
    *out = r->integer;
    return 0;
}

static void on_op_reply(void *privdata, redisReply *reply);

/* Sends the op's script. Returns 0, or UV_ENOTCONN. */
static int
send_op(lock_op_t *op)
{
    lock_mgr_t *m = op->m;
    char fence_key[LOCK_NAME_MAX + 32], ttl[24];
    const char *argv[4];
    size_t argvlen[4];
    int argc = 0, numkeys = 1, rc;

#define ARG(p, n) (argv[argc] = (p), argvlen[argc++] = (n))
    snprintf(fence_key, sizeof fence_key, "coordhub:fence:{%.*s}", (int)op->name_len, op->name);
    snprintf(ttl, sizeof ttl, "%lld", op->ttl_ms);
    ARG(op->name, op->name_len);
    switch (op->kind) {
    case OP_ACQUIRE:
        numkeys = 2;
        ARG(fence_key, strlen(fence_key));
        ARG(op->token, strlen(op->token));
        ARG(ttl, strlen(ttl));
        break;
    case OP_RELEASE: ARG(op->token, strlen(op->token)); break;
    case OP_EXTEND:
        ARG(op->token, strlen(op->token));
        ARG(ttl, strlen(ttl));
        break;
    case OP_INSPECT:
    case OP_WAIT: /* (never sent as a script: its WAIT goes in acquire_reply) */
        numkeys = 2;
        ARG(fence_key, strlen(fence_key));
        break;
    }
#undef ARG
    rc = bus_script_request(m->bus, &m->ops, &op->req, &m->scripts[op_script(op)], numkeys, argc,
                            argv, argvlen, on_op_reply, op);
    return rc;
}

/* A cancelled request's acquire won: give the lock straight back, so that
 * it does not block everyone until its TTL. */
static void
release_orphan(lock_op_t *op)
{
    op->kind = OP_RELEASE;
    if (send_op(op) != 0)
        op_release(op);
}

static void
acquire_reply(lock_op_t *op, redisReply *reply)
{
    lock_mgr_t *m = op->m;
    lock_name_t *ln = op->ln;
    long long granted, value;

    if (ln && ln->head == op)
        ln->attempt = 0;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply_int(reply->element[0], &granted) != 0 || reply_int(reply->element[1], &value) != 0) {
        finish(op, UV_EPROTO, LOCK_DONE, 0, 0, 0, "unexpected reply to the acquire script");
        op_release(op);
        return;
    }
    if (granted) {
        if (op->done) {
            dequeue(op);
            release_orphan(op);
            return;
        }
        if (m->replicas > 0) {
            /* granted only once the replicas hold it (SPEC §11); the
             * waiters behind it wait for its release or its expiry */
            dequeue(op);
            if ((ln = name_find(m, op->name, op->name_len)) != NULL && ln->head)
                arm_expiry(ln, op->ttl_ms);
            op->fence = value;
            op->kind = OP_WAIT;
            if (bus_request(m->bus, &m->ops, &op->req, on_op_reply, op, "WAIT %u %d",
                            m->replicas, WAIT_TIMEOUT_MS) != 0) {
                finish(op, UV_ENOTCONN, LOCK_DONE, 0, 0, 0, "redis unavailable");
                op_release(op); /* the lock expires by itself: no connection to release it */
            }
            return;
        }
        m->metrics.acquisitions++;
        finish(op, 0, LOCK_DONE, value, op->ttl_ms, 1, NULL);
        /* the others wait for this holder's release, or its expiry */
        if ((ln = name_find(m, op->name, op->name_len)) != NULL && ln->head)
            arm_expiry(ln, op->ttl_ms);
        op_release(op);
        return;
    }
    /* held by someone else: `value` is its PTTL */
    if (ln != NULL) {
        if (op->done || op->deadline_passed || m->draining || !m->ready) {
            finish(op,
                   m->draining ? UV_ECANCELED
                   : !m->ready ? UV_ENOTCONN
                               : 0,
                   LOCK_HELD, 0, 0, 0, m->draining ? "shutting down" : NULL);
            op_release(op);
            if ((ln = name_find(m, op->name, op->name_len)) != NULL && ln->head)
                arm_expiry(ln, value);
            return;
        }
        arm_expiry(ln, value);
        return;
    }
    if (op->done) {
        op_release(op);
        return;
    }
    if (op->wait_ms == 0 || m->draining) {
        finish(op, 0, LOCK_HELD, 0, value, 1, NULL);
        op_release(op);
        return;
    }
    ln = name_get(m, op->name, op->name_len);
    enqueue(op, ln);
    arm_expiry(ln, value);
}

static void
on_op_reply(void *privdata, redisReply *reply)
{
    lock_op_t *op = privdata;
    lock_mgr_t *m = op->m;
    long long v;

    op->req = NULL;
    if (reply == NULL) {
        if (op->ln && op->ln->head == op)
            op->ln->attempt = 0;
        finish(op, UV_ENOTCONN, LOCK_DONE, 0, 0, 0, "redis connection lost");
        op_release(op);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        if (op->ln && op->ln->head == op)
            op->ln->attempt = 0;
        finish(op, UV_EPROTO, LOCK_DONE, 0, 0, 0, reply->str);
        op_release(op);
        return;
    }
    switch (op->kind) {
    case OP_ACQUIRE: acquire_reply(op, reply); return;
    case OP_WAIT:
        if (reply_int(reply, &v) != 0 || v < (long long)m->replicas) {
            /* not on enough replicas: a failover could lose it, so it is
             * given back and refused (503) */
            m->metrics.replica_refusals++;
            op->refused = 1;
            op->kind = OP_RELEASE;
            if (send_op(op) != 0) {
                finish(op, UV_ENOTCONN, LOCK_DONE, 0, 0, 0, "redis unavailable");
                op_release(op);
            }
            return;
        }
        if (op->done) { /* cancelled meanwhile */
            release_orphan(op);
            return;
        }
        m->metrics.acquisitions++;
        finish(op, 0, LOCK_DONE, op->fence, op->ttl_ms, 1, NULL);
        op_release(op);
        return;
    case OP_RELEASE:
    case OP_EXTEND:
        if (op->refused) {
            finish(op, UV_ENOTCONN, LOCK_DONE, 0, 0, 0,
                   "the lock did not reach enough replicas in time");
        } else if (reply_int(reply, &v) != 0) {
            finish(op, UV_EPROTO, LOCK_DONE, 0, 0, 0, "unexpected reply to a lock script");
        } else if (op->kind == OP_RELEASE) {
            if (v)
                m->metrics.releases++;
            else
                m->metrics.releases_not_owner++;
            finish(op, 0, v ? LOCK_DONE : LOCK_NOT_OWNER, 0, 0, 0, NULL);
        } else {
            if (v)
                m->metrics.extends++;
            finish(op, 0, v ? LOCK_DONE : LOCK_NOT_OWNER, 0, op->ttl_ms, 1, NULL);
        }
        op_release(op);
        return;
    case OP_INSPECT: {
        long long pttl, fence = -1;
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
            reply_int(reply->element[0], &pttl) != 0) {
            finish(op, UV_EPROTO, LOCK_DONE, 0, 0, 0, "unexpected reply to the inspect script");
        } else {
            redisReply *f = reply->element[1];
            if (f != NULL && f->type == REDIS_REPLY_STRING) {
                char *end;
                fence = strtoll(f->str, &end, 10);
                if (*end != '\0')
                    fence = -1;
            }
            finish(op, 0, LOCK_DONE, fence, pttl, pttl != -2, NULL);
        }
        op_release(op);
        return;
    }
    }
}

/* The head of a name's queue tries again. */
static void
wake(lock_name_t *ln)
{
    lock_op_t *op = ln->head;

    if (op == NULL || ln->attempt)
        return;
    uv_timer_stop(&ln->expiry);
    ln->attempt = 1;
    if (send_op(op) != 0) {
        ln->attempt = 0;
        finish(op, UV_ENOTCONN, LOCK_DONE, 0, 0, 0, "redis unavailable");
        op_release(op);
    }
}

/* ---- public API ---- */

void
lock_mgr_set_replicas(lock_mgr_t *m, unsigned n)
{
    m->replicas = n;
}

lock_mgr_t *
lock_mgr_new(uv_loop_t *loop, bus_t *bus)
{
    lock_mgr_t *m = util_calloc(1, sizeof *m);
    m->loop = loop;
    m->bus = bus;
    for (int s = 0; s < S_COUNT; s++)
        m->scripts[s].text = script_text[s];
    uv_timer_init(loop, &m->closer);
    m->closer.data = m;
    m->handles_open = 1;
    return m;
}

void
lock_on_release(lock_mgr_t *m, const char *name, size_t len)
{
    lock_name_t *ln;
    if (len == 0 || len > LOCK_NAME_MAX)
        return;
    ln = name_find(m, name, len);
    if (ln != NULL)
        wake(ln);
}

void
lock_on_redis_state(lock_mgr_t *m, int ready)
{
    m->ready = ready;
    if (!ready) {
        /* waiters cannot hear release notices any more: documented as 503 */
        fail_all_waiters(m, UV_ENOTCONN, "redis unavailable");
        return;
    }
    /* SCRIPT LOAD once per connection; EVALSHA from then on */
    for (int s = 0; s < S_COUNT; s++)
        bus_script_preload(m->bus, &m->loads, &m->scripts[s]);
}

static lock_op_t *
op_new(lock_mgr_t *m, enum op_kind kind, const char *name, size_t len, lock_cb cb, void *privdata)
{
    lock_op_t *op = util_calloc(1, sizeof *op);
    op->m = m;
    op->kind = kind;
    memcpy(op->name, name, len);
    op->name_len = len;
    op->cb = cb;
    op->privdata = privdata;
    return op;
}

/* Whether a request may start now: 0, UV_EINVAL, UV_ECANCELED or
 * UV_ENOTCONN (docs/errors.md), in that order of precedence. */
static int
admit(const lock_mgr_t *m, size_t len, const char *token)
{
    if (len == 0 || len > LOCK_NAME_MAX || (token != NULL && strlen(token) > LOCK_TOKEN_MAX))
        return UV_EINVAL;
    if (m->closing)
        return UV_ECANCELED;
    return m->ready ? 0 : UV_ENOTCONN;
}

static int
start(lock_op_t *op, lock_op_t **out)
{
    int rc = send_op(op);
    if (rc != 0) {
        free(op);
        return rc;
    }
    *out = op;
    return 0;
}

int
lock_acquire(lock_mgr_t *m, const char *name, size_t len, const lock_acquire_args_t *a, lock_cb cb,
             void *privdata, lock_op_t **out)
{
    lock_op_t *op;
    lock_name_t *ln;
    int rc = admit(m, len, NULL);

    if (rc != 0)
        return rc;
    op = op_new(m, OP_ACQUIRE, name, len, cb, privdata);
    op->ttl_ms = a->ttl_ms;
    op->wait_ms = m->draining ? 0 : a->wait_ms;
    util_random_id(op->token, 32, UTIL_ID_HEX); /* 128 bits */
    /* first come, first served: behind this hub's waiters, not around them */
    if (op->wait_ms > 0 && (ln = name_find(m, name, len)) != NULL && ln->head != NULL) {
        enqueue(op, ln);
        *out = op;
        return 0;
    }
    return start(op, out);
}

int
lock_extend(lock_mgr_t *m, const char *name, size_t len, const char *token, long long ttl_ms,
            lock_cb cb, void *privdata, lock_op_t **out)
{
    lock_op_t *op;
    int rc = admit(m, len, token);

    if (rc != 0)
        return rc;
    op = op_new(m, OP_EXTEND, name, len, cb, privdata);
    snprintf(op->token, sizeof op->token, "%s", token);
    op->ttl_ms = ttl_ms;
    return start(op, out);
}

int
lock_release(lock_mgr_t *m, const char *name, size_t len, const char *token, lock_cb cb,
             void *privdata, lock_op_t **out)
{
    lock_op_t *op;
    int rc = admit(m, len, token);

    if (rc != 0)
        return rc;
    op = op_new(m, OP_RELEASE, name, len, cb, privdata);
    snprintf(op->token, sizeof op->token, "%s", token);
    return start(op, out);
}

int
lock_inspect(lock_mgr_t *m, const char *name, size_t len, lock_cb cb, void *privdata,
             lock_op_t **out)
{
    int rc = admit(m, len, NULL);

    if (rc != 0)
        return rc;
    return start(op_new(m, OP_INSPECT, name, len, cb, privdata), out);
}

void
lock_cancel(lock_op_t *op)
{
    lock_name_t *ln = op->ln;

    if (op->done)
        return;
    op->done = 1;
    if (ln != NULL && !(ln->head == op && ln->attempt))
        dequeue(op); /* a waiter between attempts just leaves */
    /* An acquire in flight runs on: if it wins, its reply gives the lock
     * straight back (release_orphan). Anything else is of no more use. */
    if (op->req != NULL && op->kind != OP_ACQUIRE) {
        bus_cancel(op->req);
        op->req = NULL;
    }
    op_release(op);
}

void
lock_mgr_drain(lock_mgr_t *m)
{
    m->draining = 1;
    fail_all_waiters(m, UV_ECANCELED, "shutting down");
}

const lock_metrics_t *
lock_metrics(lock_mgr_t *m)
{
    m->metrics.noscript_reloads = 0;
    for (int s = 0; s < S_COUNT; s++)
        m->metrics.noscript_reloads += m->scripts[s].reloads;
    return &m->metrics;
}

static void
on_closer_closed(uv_handle_t *h)
{
    lock_mgr_t *m = h->data;
    m->handles_open--;
    maybe_free_mgr(m);
}

/* An op whose script was in flight at close: answered if still owed. */
static void
answer_cancelled(void *privdata)
{
    lock_op_t *op = privdata;

    op->req = NULL;
    if (op->ln && op->ln->head == op)
        op->ln->attempt = 0;
    finish(op, UV_ECANCELED, LOCK_DONE, 0, 0, 0, "shutting down");
    op_release(op);
}

void
lock_mgr_close(lock_mgr_t *m, void (*close_cb)(void *privdata), void *privdata)
{
    if (m->closing)
        return;
    m->draining = 1;
    fail_all_waiters(m, UV_ECANCELED, "shutting down");
    m->closing = 1;
    m->close_cb = close_cb;
    m->close_privdata = privdata;
    bus_group_cancel(&m->loads, NULL);
    bus_group_cancel(&m->ops, answer_cancelled);
    uv_close((uv_handle_t *)&m->closer, on_closer_closed);
}
