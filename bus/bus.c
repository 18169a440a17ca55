/*
 * bus/bus.c: two Redis connections that keep themselves alive.
 *
 * Each connection is a small state machine:
 *
 *   DOWN --(retry timer)--> CONNECTING --(connect cb)--> HANDSHAKE --> READY
 *     ^                         |                          |             |
 *     +------- fail(): free the context, back off ---------+-------------+
 *
 * One timer per connection serves as the connect deadline (CONNECTING and
 * HANDSHAKE: AUTH, SELECT and the subscriptions must all be answered in
 * time) and as the backoff delay (DOWN). A second timer sends the keepalive
 * round trip while READY and declares the connection dead when an answer is
 * later than ping_timeout_ms: a frozen Redis (SIGSTOP) keeps the TCP session
 * open, so only a deadline of our own notices it. The command connection's
 * handshake ends with ROLE and its keepalive is ROLE: a Redis that is not a
 * primary (demoted under us) fails the connection, as does a READONLY
 * answer to any request (SPEC §11). A redis+sentinel:// URL leaves the
 * address to the sentinels ("Sentinel" below).
 *
 * A hiredis context is detached before we free it (ac->data = NULL): hiredis
 * then calls every pending callback with a NULL reply and, for a context
 * that had connected, the disconnect callback; all of ours check ac->data
 * first, so nothing stale reaches the state machine.
 *
 * Requests (docs/requests.md): each command's hiredis privdata is its
 * bus_req_t, which therefore lives until hiredis has called back for it,
 * whether or not its owner still wants the answer; a cancelled one is just
 * freed then. That is the only place where replies are accounted for.
 */
#include "bus.h"
#include "bus_int.h"
#include "util.h"

#include <hiredis/async.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The subscriber's keepalive. A PING on a subscribed connection cannot be
 * used with hiredis 0.14: its reply ["pong", ""] is routed as a pattern
 * message and the callback is never run. Re-subscribing to a channel of our
 * own is answered by a "subscribe" confirmation, which hiredis does route. */
#define KEEPALIVE_CHANNEL "coordhub:keepalive"

enum conn_kind { CONN_SUB, CONN_CMD };
enum conn_state { C_DOWN, C_CONNECTING, C_HANDSHAKE, C_READY, C_CLOSED };

typedef struct conn {
    bus_t *bus;
    enum conn_kind kind;
    enum conn_state state;
    redisAsyncContext *ac;
    uv_timer_t retry; /* connect deadline, or backoff delay */
    uv_timer_t ping;  /* keepalive */
    uint64_t ping_sent_ms;
    int ping_outstanding;
    unsigned attempt;      /* consecutive failures, for backoff */
    unsigned subs_pending; /* subscriptions not yet confirmed */
    long long client_id;   /* CLIENT ID of this connection, 0 unknown */
} conn_t;

struct bus {
    uv_loop_t *loop;
    bus_url_t url;
    bus_options_t opt;
    char **channels;
    char **patterns;
    conn_t sub;
    conn_t cmd;
    int ready;
    int ever_ready;
    uint64_t reconnects;
    uint64_t rng;
    int closing;
    int handles_open;
    void (*close_cb)(void *);
    void *close_privdata;
    /* Sentinel (SPEC §11): asking sentinel `sent_idx` where the master is
     * (`sent`, since `sent_started`), and subscribed to +switch-master on
     * one (`sent_sub`); NULL when not */
    redisAsyncContext *sent, *sent_sub;
    size_t sent_idx;
    uint64_t sent_started;
};

static void conn_connect(conn_t *c);
static void conn_fail(conn_t *c, const char *why);

static const char *
conn_name(const conn_t *c)
{
    return c->kind == CONN_SUB ? "subscriber" : "command";
}

static uint32_t
rng_next(bus_t *bus)
{
    /* xorshift64*: jitter only needs to decorrelate hubs, not be secret */
    uint64_t x = bus->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    bus->rng = x;
    return (uint32_t)((x * 0x2545F4914F6CDD1DULL) >> 32);
}

/* Backoff for the n-th consecutive failure: min * 2^n capped at max, +-20%. */
static uint64_t
backoff_ms(bus_t *bus, unsigned attempt)
{
    uint64_t d = bus->opt.backoff_min_ms;
    for (unsigned i = 0; i < attempt && d < bus->opt.backoff_max_ms; i++)
        d *= 2;
    if (d > bus->opt.backoff_max_ms)
        d = bus->opt.backoff_max_ms;
    /* jitter in [-20%, +20%] */
    int64_t span = (int64_t)d * 40 / 100;
    int64_t j = span ? (int64_t)(rng_next(bus) % (uint64_t)(span + 1)) - span / 2 : 0;
    return (uint64_t)((int64_t)d + j);
}

static void
update_ready(bus_t *bus, const char *why)
{
    int ready = bus->sub.state == C_READY && bus->cmd.state == C_READY;
    int was_ever = bus->ever_ready;
    /* Before the first success every failure is reported, so that the
     * caller can refuse to start; afterwards only transitions are. */
    int start_failure = !ready && !was_ever && why != NULL;

    if (ready == bus->ready && !start_failure)
        return;
    bus->ready = ready;
    if (ready) {
        bus->ever_ready = 1;
        LOG_INFO("bus", "redis ready at %s:%d", bus->url.host, bus->url.port);
    }
    if (bus->opt.on_state && !bus->closing)
        bus->opt.on_state(bus->opt.privdata, ready, was_ever, why);
}

/* ---- handshake and subscriptions ---- */

static void
on_handshake_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    conn_t *c = ac->data;
    redisReply *reply = r;
    const char *what = privdata;
    char why[256];

    if (c == NULL || reply == NULL)
        return; /* detached, or freed: the failure is handled elsewhere */
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(why, sizeof why, "%s refused: %.*s", what, (int)reply->len, reply->str);
        conn_fail(c, why);
        return;
    }
}

/* Is this ROLE answer a replica's ("slave", or a sentinel's)? A ROLE the
 * user may not run (NOPERM) or an old server without it tells nothing: the
 * connection is taken as a primary's, as before ROLE was asked. */
static int
role_not_master(const redisReply *reply)
{
    return reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
           reply->element[0]->type == REDIS_REPLY_STRING &&
           strcmp(reply->element[0]->str, "master") != 0;
}

/* The command connection's ROLE: at the handshake (its last step: the
 * connection is ready only on a primary), and as its keepalive (SPEC §11:
 * a Redis demoted under us is left, and reconnected to until the address
 * leads to a primary again). */
static void
on_cmd_role(redisAsyncContext *ac, void *r, void *privdata)
{
    conn_t *c = ac->data;
    redisReply *reply = r;
    (void)privdata;

    if (c == NULL || reply == NULL)
        return;
    c->ping_outstanding = 0;
    if (role_not_master(reply)) {
        char why[128];
        snprintf(why, sizeof why, "redis at this address is not a primary (ROLE %.32s)",
                 reply->element[0]->str);
        conn_fail(c, why);
        return;
    }
    if (c->state == C_HANDSHAKE) {
        c->state = C_READY;
        c->attempt = 0;
        uv_timer_stop(&c->retry);
        update_ready(c->bus, NULL);
    }
}

static void
on_client_id(redisAsyncContext *ac, void *r, void *privdata)
{
    conn_t *c = ac->data;
    redisReply *reply = r;
    (void)privdata;
    if (c != NULL && reply != NULL && reply->type == REDIS_REPLY_INTEGER)
        c->client_id = reply->integer;
}

static int
str_eq(const redisReply *r, const char *s)
{
    size_t n = strlen(s);
    return r->type == REDIS_REPLY_STRING && r->len == n && strncasecmp(r->str, s, n) == 0;
}

static void
on_sub_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    conn_t *c = ac->data;
    redisReply *reply = r;
    bus_t *bus;
    (void)privdata;

    if (c == NULL || reply == NULL)
        return;
    bus = c->bus;
    if (reply->type == REDIS_REPLY_ERROR) {
        char why[256];
        snprintf(why, sizeof why, "subscribe refused: %.*s", (int)reply->len, reply->str);
        conn_fail(c, why);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3)
        return;
    for (size_t i = 0; i < reply->elements; i++)
        if (reply->element[i] == NULL)
            return;

    if (str_eq(reply->element[0], "message") && reply->elements == 3 &&
        str_eq(reply->element[1], UTIL_CHANNEL_TRACKING)) {
        /* RESP2 client tracking: an array of keys, or nil for a flush */
        redisReply *keys = reply->element[2];
        if (bus->opt.on_invalidate &&
            (keys->type == REDIS_REPLY_ARRAY || keys->type == REDIS_REPLY_NIL))
            bus->opt.on_invalidate(bus->opt.privdata,
                                   keys->type == REDIS_REPLY_ARRAY ? keys : NULL);
    } else if (str_eq(reply->element[0], "message") && reply->elements == 3) {
        redisReply *ch = reply->element[1], *pl = reply->element[2];
        if (ch->type == REDIS_REPLY_STRING && pl->type == REDIS_REPLY_STRING && bus->opt.on_message)
            bus->opt.on_message(bus->opt.privdata, NULL, ch->str, ch->len, pl->str, pl->len);
    } else if (str_eq(reply->element[0], "pmessage") && reply->elements == 4) {
        redisReply *pat = reply->element[1], *ch = reply->element[2], *pl = reply->element[3];
        if (pat->type == REDIS_REPLY_STRING && ch->type == REDIS_REPLY_STRING &&
            pl->type == REDIS_REPLY_STRING && bus->opt.on_message)
            bus->opt.on_message(bus->opt.privdata, pat->str, ch->str, ch->len, pl->str, pl->len);
    } else if (str_eq(reply->element[0], "subscribe") || str_eq(reply->element[0], "psubscribe")) {
        if (str_eq(reply->element[1], KEEPALIVE_CHANNEL) &&
            str_eq(reply->element[0], "subscribe")) {
            c->ping_outstanding = 0;
            if (c->state != C_HANDSHAKE)
                return;
        }
        if (c->subs_pending > 0)
            c->subs_pending--;
        if (c->subs_pending == 0 && c->state == C_HANDSHAKE) {
            c->state = C_READY;
            c->attempt = 0;
            uv_timer_stop(&c->retry);
            update_ready(bus, NULL);
        }
    }
}

static void on_ping_timer(uv_timer_t *t);

static int
send_handshake(conn_t *c)
{
    bus_t *bus = c->bus;
    redisAsyncContext *ac = c->ac;
    int rc = REDIS_OK;

    if (bus->url.pass) {
        if (bus->url.user)
            rc |= redisAsyncCommand(ac, on_handshake_reply, "AUTH", "AUTH %s %s", bus->url.user,
                                    bus->url.pass);
        else
            rc |= redisAsyncCommand(ac, on_handshake_reply, "AUTH", "AUTH %s", bus->url.pass);
    }
    if (bus->url.db != 0)
        rc |= redisAsyncCommand(ac, on_handshake_reply, "SELECT", "SELECT %d", bus->url.db);
    /* named, so that an operator's CLIENT LIST tells them apart */
    c->client_id = 0;
    rc |= redisAsyncCommand(ac, on_client_id, NULL, "CLIENT ID");
    rc |= redisAsyncCommand(ac, on_handshake_reply, "CLIENT SETNAME", "CLIENT SETNAME %s",
                            c->kind == CONN_SUB ? "coordhub-sub" : "coordhub-cmd");
    if (c->kind == CONN_CMD) {
        rc |= redisAsyncCommand(ac, on_cmd_role, NULL, "ROLE");
        return rc;
    }
    /* Subscriber: every channel and pattern, plus the keepalive channel;
     * ready once each is confirmed. */
    c->subs_pending = 0;
    for (size_t i = 0; i < bus->opt.nchannels; i++, c->subs_pending++)
        rc |= redisAsyncCommand(ac, on_sub_reply, NULL, "SUBSCRIBE %s", bus->channels[i]);
    for (size_t i = 0; i < bus->opt.npatterns; i++, c->subs_pending++)
        rc |= redisAsyncCommand(ac, on_sub_reply, NULL, "PSUBSCRIBE %s", bus->patterns[i]);
    rc |= redisAsyncCommand(ac, on_sub_reply, NULL, "SUBSCRIBE %s", KEEPALIVE_CHANNEL);
    c->subs_pending++;
    return rc;
}

/* ---- connection lifecycle ---- */

static void
on_connect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    conn_t *c = ac->data;

    if (c == NULL)
        return;
    if (status != REDIS_OK) {
        char why[256];
        snprintf(why, sizeof why, "connect failed: %s", ac->errstr);
        c->ac = NULL; /* hiredis frees it when we return */
        conn_fail(c, why);
        return;
    }
    c->state = C_HANDSHAKE;
    redisEnableKeepAlive(&ac->c);
    if (send_handshake(c) != REDIS_OK) {
        conn_fail(c, "could not queue handshake");
        return;
    }
    c->ping_outstanding = 0;
    uv_timer_start(&c->ping, on_ping_timer, c->bus->opt.ping_interval_ms,
                   c->bus->opt.ping_interval_ms);
}

static void
on_disconnect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    conn_t *c = ac->data;
    char why[256];

    if (c == NULL)
        return;
    snprintf(why, sizeof why, "connection lost: %s", status == REDIS_OK ? "closed" : ac->errstr);
    c->ac = NULL; /* hiredis frees it when we return */
    conn_fail(c, why);
}

static void
on_retry_timer(uv_timer_t *t)
{
    conn_t *c = t->data;

    if (c->state == C_DOWN)
        conn_connect(c);
    else if (c->state == C_CONNECTING || c->state == C_HANDSHAKE)
        conn_fail(c, "connect timeout");
}

static void
on_ping_timer(uv_timer_t *t)
{
    conn_t *c = t->data;
    uint64_t now = uv_now(c->bus->loop);

    if (c->ac == NULL)
        return;
    if (c->ping_outstanding) {
        if (now - c->ping_sent_ms >= c->bus->opt.ping_timeout_ms)
            conn_fail(c, "keepalive timeout");
        return;
    }
    if (c->state != C_READY)
        return;
    c->ping_outstanding = 1;
    c->ping_sent_ms = now;
    if (c->kind == CONN_SUB)
        redisAsyncCommand(c->ac, on_sub_reply, NULL, "SUBSCRIBE %s", KEEPALIVE_CHANNEL);
    else
        redisAsyncCommand(c->ac, on_cmd_role, NULL, "ROLE");
}

/* ---- Sentinel (SPEC §11) ----
 *
 * With a redis+sentinel:// URL the master's address is not known until a
 * sentinel says it: a connection that wants to connect asks (one question
 * at a time, the sentinels in turn, each within the connect timeout) and
 * looks again 50 ms later. A failed connection forgets the address, so
 * the next attempt asks again (after a failover the old master refuses,
 * or answers ROLE slave, or READONLY). A subscription to +switch-master on
 * the sentinel that answered makes both connections follow a failover at
 * once. */

static void
sentinel_drop(redisAsyncContext **pac)
{
    redisAsyncContext *ac = *pac;

    if (ac == NULL)
        return;
    *pac = NULL;
    ac->data = NULL;
    redisAsyncFree(ac); /* deferred by hiredis when inside its callback */
}

/* The sentinel asked did not tell: the next one is asked next time; a
 * whole round of them failing before the bus was ever ready is a failure
 * at start (the caller refuses to start, as for an unreachable Redis). */
static void
sentinel_next(bus_t *bus, const char *why)
{
    bus->sent_idx = (bus->sent_idx + 1) % bus->url.nsentinels;
    if (bus->sent_idx == 0 && !bus->ever_ready)
        update_ready(bus, why);
}

static void
on_sentinel_connect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    bus_t *bus = ac->data;

    if (bus == NULL || status == REDIS_OK)
        return;
    /* hiredis frees the context when we return */
    if (bus->sent_sub == ac)
        bus->sent_sub = NULL;
    if (bus->sent == ac) {
        bus->sent = NULL;
        sentinel_next(bus, "no sentinel could be reached");
    }
}

static void
on_sentinel_disconnect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    bus_t *bus = ac->data;
    (void)status;

    if (bus == NULL)
        return;
    if (bus->sent == ac)
        bus->sent = NULL;
    if (bus->sent_sub == ac)
        bus->sent_sub = NULL;
}

static redisAsyncContext *
sentinel_connect(bus_t *bus, size_t i)
{
    redisAsyncContext *ac = redisAsyncConnect(bus->url.sentinel_hosts[i], bus->url.sentinel_ports[i]);

    if (ac == NULL)
        return NULL;
    if (ac->err || bus__uv_attach(ac, bus->loop) != 0) {
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = bus;
    redisAsyncSetConnectCallback(ac, on_sentinel_connect);
    redisAsyncSetDisconnectCallback(ac, on_sentinel_disconnect);
    return ac;
}

static void
set_master(bus_t *bus, const char *host, size_t hlen, const char *port)
{
    char *end;
    long p = strtol(port, &end, 10);

    if (hlen == 0 || hlen > 255 || *end != '\0' || p <= 0 || p > 65535)
        return;
    free(bus->url.host);
    bus->url.host = util_strndup(host, hlen);
    bus->url.port = (int)p;
}

/* "+switch-master <name> <old ip> <old port> <new ip> <new port>" */
static void
on_switch_master(redisAsyncContext *ac, void *r, void *privdata)
{
    bus_t *bus = ac->data;
    redisReply *reply = r;
    conn_t *conns[2];
    char name[80], ip[256], port[8];
    (void)privdata;

    if (bus == NULL || reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply->element[2]->type != REDIS_REPLY_STRING || !str_eq(reply->element[0], "message"))
        return;
    if (sscanf(reply->element[2]->str, "%79s %*s %*s %255s %7s", name, ip, port) != 3 ||
        strcmp(name, bus->url.master) != 0)
        return;
    LOG_WARN("bus", "sentinel: master %s switched to %s:%s", name, ip, port);
    set_master(bus, ip, strlen(ip), port);
    conns[0] = &bus->sub;
    conns[1] = &bus->cmd;
    for (int i = 0; i < 2; i++) {
        if (conns[i]->state == C_CLOSED)
            continue;
        conns[i]->attempt = 0; /* at once, not after a backoff */
        if (conns[i]->state == C_DOWN)
            uv_timer_start(&conns[i]->retry, on_retry_timer, 0, 0);
        else
            conn_fail(conns[i], "sentinel: +switch-master");
    }
}

static void
on_master_addr(redisAsyncContext *ac, void *r, void *privdata)
{
    bus_t *bus = ac->data;
    redisReply *reply = r;
    size_t i;
    (void)privdata;

    if (bus == NULL || bus->sent != ac)
        return; /* dropped, or a stale answer */
    i = bus->sent_idx;
    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[0]->type == REDIS_REPLY_STRING &&
        reply->element[1]->type == REDIS_REPLY_STRING) {
        set_master(bus, reply->element[0]->str, reply->element[0]->len, reply->element[1]->str);
        LOG_INFO("bus", "sentinel %s:%d: master %s is at %s:%d", bus->url.sentinel_hosts[i],
                 bus->url.sentinel_ports[i], bus->url.master,
                 bus->url.host ? bus->url.host : "?", bus->url.port);
        if (bus->sent_sub == NULL && (bus->sent_sub = sentinel_connect(bus, i)) != NULL)
            redisAsyncCommand(bus->sent_sub, on_switch_master, NULL, "SUBSCRIBE +switch-master");
    } else {
        LOG_WARN("bus", "sentinel %s:%d does not know master %s%s%s", bus->url.sentinel_hosts[i],
                 bus->url.sentinel_ports[i], bus->url.master,
                 reply && reply->type == REDIS_REPLY_ERROR ? ": " : "",
                 reply && reply->type == REDIS_REPLY_ERROR ? reply->str : "");
        sentinel_drop(&bus->sent);
        sentinel_next(bus, "no sentinel knows the master");
        return;
    }
    sentinel_drop(&bus->sent);
}

/* Asks a sentinel where the master is, unless a question is out and not
 * yet overdue. */
static void
discover(bus_t *bus)
{
    uint64_t now = uv_now(bus->loop);

    if (bus->sent != NULL) {
        if (now - bus->sent_started < bus->opt.connect_timeout_ms)
            return;
        sentinel_drop(&bus->sent);
        sentinel_next(bus, "no sentinel answered in time");
        if (bus->closing)
            return;
    }
    bus->sent = sentinel_connect(bus, bus->sent_idx);
    if (bus->sent == NULL) {
        sentinel_next(bus, "no sentinel could be reached");
        return;
    }
    bus->sent_started = now;
    redisAsyncCommand(bus->sent, on_master_addr, NULL, "SENTINEL get-master-addr-by-name %s",
                      bus->url.master);
}

static void
conn_connect(conn_t *c)
{
    bus_t *bus = c->bus;
    redisAsyncContext *ac;

    if (bus->url.nsentinels > 0 && bus->url.host == NULL) {
        /* where the master is: asked now, looked at again shortly */
        discover(bus);
        c->state = C_DOWN;
        uv_timer_start(&c->retry, on_retry_timer, 50, 0);
        return;
    }

    ac = redisAsyncConnect(bus->url.host, bus->url.port);
    if (ac == NULL) {
        conn_fail(c, "out of memory creating redis context");
        return;
    }
    if (ac->err) {
        char why[256];
        snprintf(why, sizeof why, "connect failed: %s", ac->errstr);
        redisAsyncFree(ac);
        conn_fail(c, why);
        return;
    }
    if (bus__uv_attach(ac, bus->loop) != 0) {
        redisAsyncFree(ac);
        conn_fail(c, "could not attach to the loop");
        return;
    }
    ac->data = c;
    c->ac = ac;
    c->state = C_CONNECTING;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    uv_timer_start(&c->retry, on_retry_timer, bus->opt.connect_timeout_ms, 0);
}

/* Tears the connection down (if up) and schedules the next attempt. */
static void
conn_fail(conn_t *c, const char *why)
{
    bus_t *bus = c->bus;
    int was_ready = c->state == C_READY;
    uint64_t delay;

    if (c->ac != NULL) {
        redisAsyncContext *ac = c->ac;
        c->ac = NULL;
        ac->data = NULL;
        redisAsyncFree(ac); /* deferred by hiredis when inside its callback */
    }
    uv_timer_stop(&c->ping);
    c->ping_outstanding = 0;
    if (bus->closing) {
        c->state = C_CLOSED;
        return;
    }
    if (bus->url.nsentinels > 0 && strcmp(why, "sentinel: +switch-master") != 0) {
        /* the master may have moved: the next attempt asks the sentinels */
        free(bus->url.host);
        bus->url.host = NULL;
    }
    c->state = C_DOWN;
    if (was_ready)
        bus->reconnects++;
    delay = backoff_ms(bus, c->attempt);
    if (c->attempt < 32)
        c->attempt++;
    /* before the first success the caller reports the failure (and refuses
     * to start); afterwards an outage is worth a warning once */
    if (bus->ever_ready && (was_ready || c->attempt == 1))
        LOG_WARN("bus", "redis %s connection down (%s); retrying in %llu ms", conn_name(c), why,
                 (unsigned long long)delay);
    else
        LOG_DEBUG("bus", "redis %s retry failed (%s); next in %llu ms", conn_name(c), why,
                  (unsigned long long)delay);
    uv_timer_start(&c->retry, on_retry_timer, delay, 0);
    update_ready(bus, why);
}

/* ---- public API ---- */

static char **
copy_strv(const char *const *v, size_t n)
{
    char **out = util_calloc(n + 1, sizeof *out);
    for (size_t i = 0; i < n; i++)
        out[i] = util_strdup(v[i]);
    return out;
}

static void
free_strv(char **v)
{
    if (v == NULL)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

static void
conn_init(bus_t *bus, conn_t *c, enum conn_kind kind)
{
    c->bus = bus;
    c->kind = kind;
    c->state = C_DOWN;
    uv_timer_init(bus->loop, &c->retry);
    uv_timer_init(bus->loop, &c->ping);
    c->retry.data = c;
    c->ping.data = c;
    bus->handles_open += 2;
}

int
bus_new(uv_loop_t *loop, const bus_options_t *opt, bus_t **out, const char **err)
{
    bus_t *bus = util_calloc(1, sizeof *bus);
    int rc;

    rc = bus_url_parse(opt->url, &bus->url, err);
    if (rc != 0) {
        free(bus);
        return rc;
    }
    bus->loop = loop;
    bus->opt = *opt;
    bus->opt.url = NULL;
#define DEFAULT(f, v)                                                                              \
    if (bus->opt.f == 0)                                                                           \
    bus->opt.f = (v)
    DEFAULT(connect_timeout_ms, 2000);
    DEFAULT(ping_interval_ms, 1000);
    DEFAULT(ping_timeout_ms, 3000);
    DEFAULT(backoff_min_ms, 100);
    DEFAULT(backoff_max_ms, 2000);
#undef DEFAULT
    bus->channels = copy_strv(opt->channels, opt->nchannels);
    bus->patterns = copy_strv(opt->patterns, opt->npatterns);
    bus->rng = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)bus;
    if (bus->rng == 0)
        bus->rng = 0x9E3779B97F4A7C15ULL;
    conn_init(bus, &bus->sub, CONN_SUB);
    conn_init(bus, &bus->cmd, CONN_CMD);
    *out = bus;
    return 0;
}

void
bus_start(bus_t *bus)
{
    conn_connect(&bus->sub);
    conn_connect(&bus->cmd);
}

int
bus_ready(const bus_t *bus)
{
    return bus->ready;
}

long long
bus_subscriber_id(const bus_t *bus)
{
    return bus->ready ? bus->sub.client_id : 0;
}

void
bus_address(const bus_t *bus, char *out, size_t cap)
{
    /* an IPv6 literal in brackets, as in a URL */
    if (bus->url.host == NULL)
        snprintf(out, cap, "unknown (asking the sentinels)");
    else
        snprintf(out, cap, strchr(bus->url.host, ':') ? "[%s]:%d" : "%s:%d", bus->url.host,
                 bus->url.port);
}

uint64_t
bus_reconnects(const bus_t *bus)
{
    return bus->reconnects;
}

/* ---- requests (docs/requests.md) ---- */

static void
group_unlink(bus_req_t *r)
{
    if (r->group == NULL)
        return;
    if (r->gprev)
        r->gprev->gnext = r->gnext;
    else
        r->group->head = r->gnext;
    if (r->gnext)
        r->gnext->gprev = r->gprev;
    r->group = NULL;
    r->gprev = r->gnext = NULL;
}

bus_req_t *
bus__req_new(bus_t *bus, bus_reply_cb cb, void *privdata)
{
    bus_req_t *r = util_calloc(1, sizeof *r);
    r->bus = bus;
    r->cb = cb;
    r->privdata = privdata;
    return r;
}

void
bus__req_free(bus_req_t *r)
{
    group_unlink(r);
    if (r->ext_free)
        r->ext_free(r->ext);
    free(r);
}

void
bus__req_accept(bus_req_t *r, bus_group_t *g, bus_req_t **out)
{
    if (g != NULL) {
        r->group = g;
        r->gnext = g->head;
        if (g->head)
            g->head->gprev = r;
        g->head = r;
    }
    if (out != NULL)
        *out = r;
}

/* hiredis's callback for every command a request sent. Whatever the reply
 * (NULL when the context is freed), this is the last hiredis will say about
 * that command, so a cancelled request can go now. */
static void
on_request_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    bus_req_t *r = privdata;
    redisReply *rep = reply;
    (void)ac;

    /* a write that reached a replica: the primary moved (SPEC §11). The
     * reply is delivered as it is; then the connection goes, and is made
     * again until the address leads to a primary. */
    int readonly = rep != NULL && rep->type == REDIS_REPLY_ERROR && rep->str != NULL &&
                   strncmp(rep->str, "READONLY", 8) == 0;

    if (r->cancelled) {
        bus__req_free(r);
    } else if (r->step != NULL && r->step(r, &rep)) {
        /* the next command of the request is out */
    } else {
        group_unlink(r);
        r->delivering = 1;
        if (r->cb)
            r->cb(r->privdata, rep);
        bus__req_free(r);
    }
    if (readonly && ac->data != NULL)
        conn_fail(ac->data, "READONLY: redis at this address became a replica");
}

static int
cmd_ready(const bus_t *bus)
{
    return !bus->closing && bus->cmd.state == C_READY && bus->cmd.ac != NULL;
}

int
bus__req_send_argv(bus_req_t *r, int argc, const char **argv, const size_t *argvlen)
{
    bus_t *bus = r->bus;

    if (!cmd_ready(bus) ||
        redisAsyncCommandArgv(bus->cmd.ac, on_request_reply, r, argc, argv, argvlen) != REDIS_OK)
        return UV_ENOTCONN;
    return 0;
}

static int
req_sendv(bus_req_t *r, const char *fmt, va_list ap)
{
    bus_t *bus = r->bus;

    if (!cmd_ready(bus) ||
        redisvAsyncCommand(bus->cmd.ac, on_request_reply, r, fmt, ap) != REDIS_OK)
        return UV_ENOTCONN;
    return 0;
}

int
bus__req_send(bus_req_t *r, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = req_sendv(r, fmt, ap);
    va_end(ap);
    return rc;
}

int
bus_request_argv(bus_t *bus, bus_group_t *g, bus_req_t **req, bus_reply_cb cb, void *privdata,
                 int argc, const char **argv, const size_t *argvlen)
{
    bus_req_t *r;
    int rc;

    if (!cmd_ready(bus))
        return UV_ENOTCONN;
    r = bus__req_new(bus, cb, privdata);
    rc = bus__req_send_argv(r, argc, argv, argvlen);
    if (rc != 0) {
        bus__req_free(r);
        return rc;
    }
    bus__req_accept(r, g, req);
    return 0;
}

static int
requestv(bus_t *bus, bus_group_t *g, bus_req_t **req, bus_reply_cb cb, void *privdata,
         const char *fmt, va_list ap)
{
    bus_req_t *r;
    int rc;

    if (!cmd_ready(bus))
        return UV_ENOTCONN;
    r = bus__req_new(bus, cb, privdata);
    rc = req_sendv(r, fmt, ap);
    if (rc != 0) {
        bus__req_free(r);
        return rc;
    }
    bus__req_accept(r, g, req);
    return 0;
}

int
bus_request(bus_t *bus, bus_group_t *g, bus_req_t **req, bus_reply_cb cb, void *privdata,
            const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = requestv(bus, g, req, cb, privdata, fmt, ap);
    va_end(ap);
    return rc;
}

int
bus_command(bus_t *bus, bus_reply_cb cb, void *privdata, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = requestv(bus, NULL, NULL, cb, privdata, fmt, ap);
    va_end(ap);
    return rc;
}

int
bus_command_argv(bus_t *bus, bus_reply_cb cb, void *privdata, int argc, const char **argv,
                 const size_t *argvlen)
{
    return bus_request_argv(bus, NULL, NULL, cb, privdata, argc, argv, argvlen);
}

void
bus_cancel(bus_req_t *r)
{
    /* a request whose callback runs is being delivered: too late, and
     * harmless (it is freed when the callback returns) */
    if (r == NULL || r->cancelled || r->delivering)
        return;
    group_unlink(r);
    r->cancelled = 1;
    r->cb = NULL;
    r->privdata = NULL;
}

void
bus_group_cancel(bus_group_t *g, void (*release)(void *privdata))
{
    bus_req_t *r;

    while ((r = g->head) != NULL) {
        void *privdata = r->privdata;
        bus_cancel(r); /* unlinks it: the head moves on */
        if (release)
            release(privdata);
    }
}

static void
on_handle_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    bus_t *bus = c->bus;

    if (--bus->handles_open > 0)
        return;
    bus_url_free(&bus->url);
    free_strv(bus->channels);
    free_strv(bus->patterns);
    if (bus->close_cb)
        bus->close_cb(bus->close_privdata);
    free(bus);
}

void
bus_close(bus_t *bus, void (*close_cb)(void *privdata), void *privdata)
{
    conn_t *conns[2] = {&bus->sub, &bus->cmd};

    if (bus->closing)
        return;
    bus->closing = 1;
    bus->close_cb = close_cb;
    bus->close_privdata = privdata;
    sentinel_drop(&bus->sent);
    sentinel_drop(&bus->sent_sub);
    for (int i = 0; i < 2; i++) {
        conn_fail(conns[i], "closing");
        uv_close((uv_handle_t *)&conns[i]->retry, on_handle_closed);
        uv_close((uv_handle_t *)&conns[i]->ping, on_handle_closed);
    }
}
