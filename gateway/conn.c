/*
 * gateway/conn.c: a WebSocket connection's life and its rooms, whatever
 * its framing. A connection is listed in gw->conns from ESTABLISHED to
 * CLOSED (the broadcast path and the liveness sweep walk that list) and is
 * a member of rooms only while it is: leaving them all is part of closing.
 */
#include "conn.h"

#include "recovery.h"
#include "writer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void
link_conn(gw_t *gw, gw_conn_t *c)
{
    gw_ws_t *w = &c->ws;

    w->prev = NULL;
    w->next = gw->conns;
    if (gw->conns)
        gw->conns->ws.prev = c;
    gw->conns = c;
    w->linked = 1;
    gw->nconns[w->framing]++;
}

static void
unlink_conn(gw_t *gw, gw_conn_t *c)
{
    gw_ws_t *w = &c->ws;

    if (!w->linked)
        return;
    if (w->prev)
        w->prev->ws.next = w->next;
    else
        gw->conns = w->next;
    if (w->next)
        w->next->ws.prev = w->prev;
    w->linked = 0;
    gw->nconns[w->framing]--;
}

void
gw__conn_open(gw_t *gw, gw_conn_t *c, struct lws *wsi, enum gw_framing framing)
{
    memset(c, 0, sizeof *c);
    c->gw = gw;
    c->wsi = wsi;
    c->kind = GW_CONN_WS;
    c->ws.member.owner = c;
    c->ws.framing = framing;
    c->ws.last_rx = uv_now(gw->loop);
    link_conn(gw, c);
    if (wsi != NULL)
        gw->m.ws_accepted++;
}

void
gw__conn_session_add(gw_t *gw, gw_conn_t *c)
{
    c->ws.sio.polling = 1;
    util_htable_insert(&gw->sessions, &c->ws.sio.node, c->ws.sio.sid, strlen(c->ws.sio.sid));
    gw->npolling++;
    gw->m.poll_sessions++;
}

gw_conn_t *
gw__conn_session_find(gw_t *gw, const char *sid, size_t len)
{
    util_hnode_t *n = util_htable_find(&gw->sessions, sid, len);
    gw_conn_t *c = n ? UTIL_CONTAINER_OF(n, gw_conn_t, ws.sio.node) : NULL;
    return c != NULL && !c->ws.sio.dead && !c->ws.close_code ? c : NULL;
}

/* Ends the upgrade that links `c` to another connection, from `c`'s side. */
static void
unlink_upgrade(gw_conn_t *c)
{
    gw_conn_t *o = c->ws.sio.upgrade;

    if (o == NULL)
        return;
    c->ws.sio.upgrade = NULL;
    o->ws.sio.upgrade = NULL;
    if (!o->ws.sio.polling)
        gw__out_close(o, LWS_CLOSE_STATUS_NORMAL); /* a probe of a session now gone */
}

void
gw__conn_move(gw_t *gw, gw_conn_t *from, gw_conn_t *to)
{
    gw_sio_t *fs = &from->ws.sio, *ts = &to->ws.sio;

    to->ws.claims = from->ws.claims;
    to->ws.warn_at = from->ws.warn_at;
    to->ws.ready = from->ws.ready;
    to->ws.bucket = from->ws.bucket;
    memcpy(ts->sid, fs->sid, sizeof ts->sid);
    memcpy(ts->sio_sid, fs->sio_sid, sizeof ts->sio_sid);
    ts->pong_due = fs->pong_due;
    gw__sched_replace(&fs->beat, &ts->beat);
    gw__sched_replace(&fs->connect, &ts->connect);
    ts->have_claims = fs->have_claims;
    ts->connected = fs->connected;
    fs->upgrade = ts->upgrade = NULL;
    gw__rooms_move(&from->ws.member, &to->ws.member);
    from->ws.ready = 0;
    gw__rec_moved(from, to);
    gw__out_move(gw, from, to);
    gw->m.upgrades++;
}

void
gw__conn_closed(gw_t *gw, gw_conn_t *c)
{
    if (c->kind != GW_CONN_WS)
        return;
    gw__rec_conn_closed(gw, c); /* before its rooms are left: a session saves them */
    unlink_upgrade(c);
    gw__sched_cancel(&c->ws.sio.beat);
    gw__sched_cancel(&c->ws.sio.connect);
    if (c->ws.sio.polling) {
        util_htable_remove(&gw->sessions, &c->ws.sio.node);
        gw->npolling--;
        c->ws.sio.polling = 0;
    }
    unlink_conn(gw, c);
    gw__out_forget(gw, c);
    gw__rooms_leave_all(gw->rooms, &c->ws.member);
    free(c->ws.rx);
    c->ws.rx = NULL;
    c->kind = GW_CONN_NONE;
    c->wsi = NULL;
}

/* When `expiring` is due for a token ending at `exp`: 30 s before, or at
 * half the remaining lifetime when that is shorter (SPEC §10). */
static long long
warn_time(long long exp)
{
    long long now = (long long)time(NULL), left = exp - now;
    return exp - (left / 2 < 30 ? left / 2 : 30);
}

void
gw__conn_enter(gw_t *gw, gw_conn_t *c, const wire_claims_t *claims)
{
    char room[WIRE_ROOM_MAX + 1];
    int n;

    c->ws.claims = *claims;
    c->ws.warn_at = warn_time(claims->exp);
    n = snprintf(room, sizeof room, "user:%s", c->ws.claims.sub);
    gw__rooms_join(gw->rooms, room, (size_t)n, &c->ws.member);
    c->ws.ready = 1;
}

void
gw__conn_leave_all(gw_t *gw, gw_conn_t *c)
{
    gw__rooms_leave_all(gw->rooms, &c->ws.member);
    c->ws.ready = 0;
}

void
gw__conn_alive(gw_t *gw, gw_conn_t *c)
{
    c->ws.last_rx = uv_now(gw->loop);
    c->ws.ping_sent = 0;
}

struct refresh_ctx {
    gw_t *gw;
    gw_conn_t *c;
    char own[WIRE_ROOM_MAX + 1]; /* user:<sub>, which the token's sub always opens */
};

/* Rooms a refreshed token keeps: its own user room, the configuration
 * watches, and what its roles allow. */
static int
refresh_keeps(void *ctx, const char *room)
{
    struct refresh_ctx *r = ctx;
    const char *code;

    return strcmp(room, r->own) == 0 || strncmp(room, "config:", 7) == 0 ||
           wire_room_check(&r->c->ws.claims, room, &code) == 0;
}

static void
refresh_left(void *ctx, const char *room)
{
    struct refresh_ctx *r = ctx;
    char data[WIRE_ROOM_MAX + 16];
    int n = snprintf(data, sizeof data, "{\"room\":\"%s\"}", room);

    gw__out_event(r->gw, r->c, "left", data, (size_t)n);
}

int
gw__conn_refresh(gw_t *gw, gw_conn_t *c, const wire_claims_t *claims)
{
    struct refresh_ctx r = {gw, c, {0}};

    if (strcmp(claims->sub, c->ws.claims.sub) != 0)
        return UV_EPERM;
    c->ws.claims = *claims;
    c->ws.warn_at = warn_time(claims->exp);
    gw->m.refreshes++;
    /* the roles are read again: rooms they no longer open are left */
    snprintf(r.own, sizeof r.own, "user:%s", claims->sub);
    gw__rooms_leave_if(gw->rooms, &c->ws.member, refresh_keeps, refresh_left, &r);
    return 0;
}

void
gw__conn_expiry(gw_t *gw, gw_conn_t *c, long long now)
{
    char data[48];
    int n;

    if (!c->ws.ready || c->ws.close_code)
        return;
    if (c->ws.claims.exp <= now) {
        gw->m.expired_closes++;
        gw__out_close(c, 4001);
    } else if (c->ws.warn_at != 0 && now >= c->ws.warn_at) {
        c->ws.warn_at = 0;
        n = snprintf(data, sizeof data, "{\"exp\":%lld}", c->ws.claims.exp);
        gw__out_event(gw, c, "expiring", data, (size_t)n);
    }
}

int
gw__conn_inbound(gw_t *gw, gw_conn_t *c, const char *buf, size_t len)
{
    if (!util_utf8_valid(buf, len)) {
        gw->m.utf8_closes++;
        return LWS_CLOSE_STATUS_INVALID_PAYLOAD;
    }
    if (!gw__bucket_take(&c->ws.bucket, uv_now(gw->loop), gw->op_rate, gw->op_burst)) {
        gw->m.rate_closes++;
        return LWS_CLOSE_STATUS_POLICY_VIOLATION;
    }
    return 0;
}

int
gw__conn_join(gw_t *gw, gw_conn_t *c, const char *room, const char **code, const char **msg)
{
    if (wire_room_check(&c->ws.claims, room, code) != 0) {
        *msg = strcmp(*code, "forbidden") == 0 ? "not allowed to join this room"
                                               : "rooms are user:<id>, bot:<id> or ops";
        return UV_EINVAL;
    }
    gw__rooms_join(gw->rooms, room, strlen(room), &c->ws.member);
    return 0;
}

int
gw__conn_leave(gw_t *gw, gw_conn_t *c, const char *room, const char **code, const char **msg)
{
    if (gw__rooms_leave(gw->rooms, room, strlen(room), &c->ws.member) != 0) {
        *code = "not_member";
        *msg = "not in this room";
        return UV_EINVAL;
    }
    return 0;
}

int
gw__conn_watch(gw_t *gw, gw_conn_t *c, const wire_client_op_t *op, const char **code,
               const char **msg)
{
    char room[WIRE_ROOM_MAX + 1];

    if (gw->cache == NULL) {
        *code = "unavailable";
        *msg = "the configuration cache is not enabled";
        return UV_EINVAL;
    }
    for (size_t i = 0; i < op->nkeys; i++) {
        int n = snprintf(room, sizeof room, "config:%s", op->keys[i]);
        int rc = cache_watch(gw->cache, op->keys[i]);
        if (rc == UV_ENOSPC) {
            *code = "too_many_watches";
            *msg = "this hub watches too many configuration keys";
            return rc;
        }
        if (rc != 0) {
            *code = "unavailable";
            *msg = "the configuration cache is closing";
            return rc;
        }
        /* an internal room: join/leave refuse "config:" names */
        gw__rooms_join(gw->rooms, room, (size_t)n, &c->ws.member);
    }
    return 0;
}
