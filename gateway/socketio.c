/*
 * gateway/socketio.c: the Socket.IO v4 framing of a WebSocket connection
 * (Engine.IO v4 over the websocket transport only), so that pages using the
 * official socket.io-client keep working with `transports: ["websocket"]`.
 *
 * The rooms, role rules, limits and fan-out are those of every connection
 * (conn.c, ws.c, router.c); this file only speaks the packets: the open
 * packet and server pings of Engine.IO, and Socket.IO's CONNECT (the token
 * is in its auth payload, or in ?token=), events, acks and DISCONNECT on
 * namespace "/". Events reach a socket only after its CONNECT succeeded.
 */
#include "socketio.h"

#include "auth.h"
#include "conn.h"
#include "recovery.h"
#include "writer.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The polling session an upgrade's ?sid= names: 0 with *out NULL (no
 * sid), 0 with *out set, or UV_ENOENT (unknown, closing, or already being
 * upgraded). */
static int
upgrade_session(gw_t *gw, struct lws *wsi, gw_conn_t **out)
{
    char arg[WIRE_TOKEN_MAX + 16]; /* lws stops at the first longer argument (a ?token=) */
    const char *sid = lws_get_urlarg_by_name(wsi, "sid=", arg, sizeof arg);
    gw_conn_t *s;

    *out = NULL;
    if (sid == NULL)
        return 0;
    s = gw__conn_session_find(gw, sid, strlen(sid));
    if (s == NULL || s->ws.sio.upgrade != NULL || gw__sio_overdue(gw, s))
        return UV_ENOENT;
    *out = s;
    return 0;
}

int
gw__sio_http_check(gw_t *gw, struct lws *wsi, const char **body)
{
    char arg[WIRE_TOKEN_MAX + 16]; /* lws stops at the first longer argument (a ?token=) */
    const char *v;
    gw_conn_t *s;

    /* Engine.IO's own codes and messages, as the official server answers */
    v = lws_get_urlarg_by_name(wsi, "EIO=", arg, sizeof arg);
    if (v == NULL || strcmp(v, "4") != 0) {
        *body = "{\"code\":5,\"message\":\"Unsupported protocol version\"}";
        return 400;
    }
    v = lws_get_urlarg_by_name(wsi, "transport=", arg, sizeof arg);
    if (v == NULL || (strcmp(v, "websocket") != 0 && strcmp(v, "polling") != 0)) {
        *body = "{\"code\":0,\"message\":\"Transport unknown\"}";
        return 400;
    }
    if (strcmp(v, "websocket") != 0) { /* an upgrade that says polling */
        *body = "{\"code\":3,\"message\":\"Bad request\"}";
        return 400;
    }
    if (upgrade_session(gw, wsi, &s) != 0) {
        *body = "{\"code\":1,\"message\":\"Session ID unknown\"}";
        return 400;
    }
    return 0;
}

int
gw__sio_upgrade_of(gw_t *gw, struct lws *wsi, gw_conn_t **s)
{
    return upgrade_session(gw, wsi, s);
}

static void on_schedule(uv_timer_t *t);

/* Arms the timer at the earliest deadline of the three lists. */
static void
arm(gw_t *gw)
{
    uint64_t at = UINT64_MAX, now = uv_now(gw->loop);
    gw_slist_t *lists[3] = {&gw->sio_ping, &gw->sio_pong, &gw->sio_connect};

    if (gw->timers_closed)
        return;
    for (int i = 0; i < 3; i++)
        if (lists[i]->head != NULL && lists[i]->head->at < at)
            at = lists[i]->head->at;
    if (at == UINT64_MAX)
        uv_timer_stop(&gw->sio_timer);
    else
        uv_timer_start(&gw->sio_timer, on_schedule, at > now ? at - now : 0, 0);
}

/* Puts `n` on `l` at now + `ms`, rearming the timer when it becomes the
 * earliest deadline. */
static void
schedule(gw_t *gw, gw_slist_t *l, gw_snode_t *n, unsigned ms)
{
    uint64_t at = uv_now(gw->loop) + ms;
    int earliest = uv_is_active((uv_handle_t *)&gw->sio_timer) == 0 ||
                   at < uv_now(gw->loop) + uv_timer_get_due_in(&gw->sio_timer);

    gw__sched_put(l, n, at);
    if (earliest || n->prev == NULL)
        arm(gw);
}

#define CONN_OF(node, field) UTIL_CONTAINER_OF(node, gw_conn_t, ws.sio.field)

/* The deadlines that have come, in order: a ping due, a pong not answered
 * within pingTimeout, a CONNECT not sent within the connect timeout. */
static void
on_schedule(uv_timer_t *t)
{
    gw_t *gw = t->data;
    uint64_t now = uv_now(gw->loop);
    gw_snode_t *n;

    while ((n = gw__sched_due(&gw->sio_connect, now)) != NULL) {
        gw_conn_t *c = CONN_OF(n, connect);
        gw__sched_cancel(n);
        LOG_DEBUG("gw", "socket.io client %s never connected", c->ws.sio.sid);
        gw__sched_cancel(&c->ws.sio.beat);
        gw__out_close_why(c, LWS_CLOSE_STATUS_NORMAL, "no CONNECT in time");
    }
    while ((n = gw__sched_due(&gw->sio_pong, now)) != NULL) {
        /* no pong within pingTimeout: the peer is gone or not Engine.IO */
        gw_conn_t *c = CONN_OF(n, beat);
        gw__sched_cancel(n);
        LOG_DEBUG("gw", "socket.io client %s missed its pong", c->ws.sio.sid);
        gw__out_close_why(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "ping timeout");
    }
    while ((n = gw__sched_due(&gw->sio_ping, now)) != NULL) {
        gw_conn_t *c = CONN_OF(n, beat);
        if (c->ws.close_code) {
            gw__sched_cancel(n);
            continue;
        }
        gw__out_text(gw, c, "2", 1);
        c->ws.sio.pong_due = 1;
        /* from when the ping was due, not from when this timer ran: a busy
         * loop does not stretch the schedule (the reference's clock) */
        gw__sched_put(&gw->sio_pong, n, n->at + gw->sio_ping_timeout_ms);
    }
    arm(gw);
}

int
gw__sio_overdue(gw_t *gw, gw_conn_t *c)
{
    uint64_t now = uv_now(gw->loop);

    if (c->ws.sio.pong_due && c->ws.sio.beat.in == &gw->sio_pong && c->ws.sio.beat.at <= now) {
        gw__sched_cancel(&c->ws.sio.beat);
        gw__out_close_why(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "ping timeout");
        return 1;
    }
    if (c->ws.sio.connect.in != NULL && c->ws.sio.connect.at <= now) {
        gw__sched_cancel(&c->ws.sio.connect);
        gw__sched_cancel(&c->ws.sio.beat);
        gw__out_close_why(c, LWS_CLOSE_STATUS_NORMAL, "no CONNECT in time");
        return 1;
    }
    return 0;
}

void
gw__sio_init(gw_t *gw)
{
    uv_timer_init(gw->loop, &gw->sio_timer);
    gw->sio_timer.data = gw;
}

void
gw__sio_open(gw_t *gw, gw_conn_t *c)
{
    char open[256];
    int n;

    /* the Engine.IO session id: 120 random bits (a polling session has
     * one already: its key in the session table) */
    if (c->ws.sio.sid[0] == '\0')
        util_random_id(c->ws.sio.sid, 20, UTIL_ID_B64URL);
    /* Socket.IO's own id, distinct (the reference server's are too) */
    util_random_id(c->ws.sio.sio_sid, 20, UTIL_ID_B64URL);
    n = snprintf(open, sizeof open,
                 "0{\"sid\":\"%s\",\"upgrades\":[%s],\"pingInterval\":%u,\"pingTimeout\":%u,"
                 "\"maxPayload\":%zu}",
                 c->ws.sio.sid, c->ws.sio.polling ? "\"websocket\"" : "",
                 gw->sio_ping_interval_ms, gw->sio_ping_timeout_ms, gw->max_frame);
    gw__out_text(gw, c, open, (size_t)n);
    schedule(gw, &gw->sio_ping, &c->ws.sio.beat, gw->sio_ping_interval_ms);
    schedule(gw, &gw->sio_connect, &c->ws.sio.connect, gw->sio_connect_timeout_ms);
}

static void
send_json_packet(gw_t *gw, gw_conn_t *c, const char *prefix, json_t *body)
{
    char *s = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    size_t pl = strlen(prefix), sl = strlen(s);
    char *text = util_malloc(pl + sl);

    memcpy(text, prefix, pl);
    memcpy(text + pl, s, sl);
    gw__out_text(gw, c, text, pl + sl);
    free(text);
    free(s);
}

static int
sio_connect(gw_t *gw, gw_conn_t *c, const wire_sio_packet_t *p)
{
    wire_claims_t claims;
    json_t *auth = NULL, *tok = NULL;
    int ok = 0;
    char reply[64];
    int n;

    if (p->data_len > 0) {
        auth = json_loadb(p->data, p->data_len, JSON_ALLOW_NUL, NULL);
        if (!json_is_object(auth)) { /* as the reference parser: not a CONNECT */
            json_decref(auth);
            return LWS_CLOSE_STATUS_PROTOCOL_ERR;
        }
        tok = json_object_get(auth, "token");
    }
    if (json_is_string(tok)) {
        /* a token in the auth payload decides, whatever the query said */
        ok = gw__auth_token(gw, json_string_value(tok), json_string_length(tok), &claims) == 0;
    } else if (c->ws.sio.have_claims && c->ws.claims.exp > (long long)time(NULL)) {
        /* the upgrade's ?token=, while it lasts */
        claims = c->ws.claims;
        ok = 1;
    } else {
        gw->m.auth_failures++;
    }
    if (!ok) {
        static const char refused[] =
            "44{\"message\":\"unauthorized\",\"data\":{\"code\":\"unauthorized\"}}";
        json_decref(auth);
        gw__out_text(gw, c, refused, sizeof refused - 1);
        return 0;
    }
    gw__conn_enter(gw, c, &claims);
    c->ws.sio.connected = 1;
    gw__sched_cancel(&c->ws.sio.connect);
    if (gw__rec_on(gw)) {
        /* answered with a pid, after recovering when asked (SPEC §9) */
        gw__rec_sio_connect(gw, c, auth);
        json_decref(auth);
        return 0;
    }
    json_decref(auth);
    n = snprintf(reply, sizeof reply, "40{\"sid\":\"%s\"}", c->ws.sio.sio_sid);
    gw__out_text(gw, c, reply, (size_t)n);
    return 0;
}

/* The room of a join/leave: "bot:7" or {"room": "bot:7"}. */
static const char *
room_arg(json_t *arg)
{
    json_t *r = json_is_object(arg) ? json_object_get(arg, "room") : arg;
    if (!json_is_string(r) || json_string_length(r) == 0 || json_string_length(r) > WIRE_ROOM_MAX ||
        strlen(json_string_value(r)) != json_string_length(r))
        return NULL;
    return json_string_value(r);
}

static void
answer(gw_t *gw, gw_conn_t *c, long long ack_id, const char *event, const char *room,
       const char *code, const char *msg)
{
    json_t *body;

    if (code)
        gw->m.client_errors++;
    if (ack_id >= 0) {
        char prefix[32];
        if (code)
            body = json_pack("[{s:b,s:{s:s,s:s}}]", "ok", 0, "error", "code", code, "message", msg);
        else if (room)
            body = json_pack("[{s:b,s:s}]", "ok", 1, "room", room);
        else
            body = json_pack("[{s:b}]", "ok", 1);
        snprintf(prefix, sizeof prefix, "43%lld", ack_id);
        send_json_packet(gw, c, prefix, body);
    } else {
        if (code)
            body = json_pack("[s,{s:s,s:s}]", "error", "code", code, "message", msg);
        else if (room)
            body = json_pack("[s,{s:s}]", event, "room", room);
        else
            body = json_pack("[s]", event);
        send_json_packet(gw, c, "42", body);
    }
    json_decref(body);
}

/* A refresh's answer: the ack [{ok:true, exp}], or the event refreshed. */
static void
answer_exp(gw_t *gw, gw_conn_t *c, long long ack_id, long long exp)
{
    json_t *body;

    if (ack_id >= 0) {
        char prefix[32];
        body = json_pack("[{s:b,s:I}]", "ok", 1, "exp", (json_int_t)exp);
        snprintf(prefix, sizeof prefix, "43%lld", ack_id);
        send_json_packet(gw, c, prefix, body);
    } else {
        body = json_pack("[s,{s:I}]", "refreshed", "exp", (json_int_t)exp);
        send_json_packet(gw, c, "42", body);
    }
    json_decref(body);
}

static int
sio_event(gw_t *gw, gw_conn_t *c, const wire_sio_packet_t *p)
{
    json_t *arr = json_loadb(p->data, p->data_len, JSON_ALLOW_NUL, NULL);
    const char *name, *room, *code = NULL, *msg = NULL;

    if (!json_is_array(arr) || json_array_size(arr) < 1 ||
        !(json_is_string(json_array_get(arr, 0)) || json_is_number(json_array_get(arr, 0)))) {
        json_decref(arr);
        return LWS_CLOSE_STATUS_PROTOCOL_ERR; /* as the official parser: not an event */
    }
    /* a numeric name is an event too (the reference parser says so); none
     * of ours is numeric */
    name = json_is_string(json_array_get(arr, 0)) ? json_string_value(json_array_get(arr, 0)) : "";
    if (strcmp(name, "ping") == 0) {
        answer(gw, c, p->ack_id, "pong", NULL, NULL, NULL);
    } else if (strcmp(name, "join") == 0 || strcmp(name, "leave") == 0) {
        int join = name[0] == 'j';
        room = room_arg(json_array_get(arr, 1));
        if (room == NULL)
            answer(gw, c, p->ack_id, NULL, NULL, "bad_request",
                   "join and leave take a room name, or {\"room\": name}");
        else if ((join ? gw__conn_join : gw__conn_leave)(gw, c, room, &code, &msg) != 0)
            answer(gw, c, p->ack_id, NULL, NULL, code, msg);
        else
            answer(gw, c, p->ack_id, join ? "joined" : "left", room, NULL, NULL);
    } else if (strcmp(name, "refresh") == 0) {
        /* socket.emit("refresh", token, ack): the ack is {ok:true, exp} */
        json_t *tok = json_array_get(arr, 1);
        wire_claims_t claims;
        if (!json_is_string(tok) || json_string_length(tok) > WIRE_TOKEN_MAX) {
            answer(gw, c, p->ack_id, NULL, NULL, "bad_request", "refresh takes the new token");
        } else if (gw__auth_token(gw, json_string_value(tok), json_string_length(tok), &claims) != 0) {
            answer(gw, c, p->ack_id, NULL, NULL, "unauthorized", "the new token is not valid");
        } else if (gw__conn_refresh(gw, c, &claims) != 0) {
            json_decref(arr);
            return 4003; /* another sub: forbidden */
        } else {
            answer_exp(gw, c, p->ack_id, claims.exp);
        }
    } else if (strcmp(name, "config.watch") == 0) {
        /* socket.emit("config.watch", ["k1", "k2"]) or ({keys: [...]}) */
        json_t *arg = json_array_get(arr, 1);
        wire_client_op_t op;
        memset(&op, 0, sizeof op);
        if (wire_watch_keys_parse(json_is_object(arg) ? json_object_get(arg, "keys") : arg, &op,
                                 &msg) != 0)
            answer(gw, c, p->ack_id, NULL, NULL, "bad_request", msg);
        else if (gw__conn_watch(gw, c, &op, &code, &msg) != 0)
            answer(gw, c, p->ack_id, NULL, NULL, code, msg);
        else
            answer(gw, c, p->ack_id, "watching", NULL, NULL, NULL);
    } else {
        answer(gw, c, p->ack_id, NULL, NULL, "unknown_op",
               "events are join, leave, ping, config.watch and refresh");
    }
    json_decref(arr);
    return 0;
}

/* A message on a WebSocket that probes a polling session: "2probe" is
 * answered "3probe" (and a GET waiting on the session released with a
 * noop), then "5" moves the session here. Anything else ends the probe. */
static int
probe(gw_t *gw, gw_conn_t *c, const wire_sio_packet_t *p)
{
    gw_conn_t *s = c->ws.sio.upgrade;

    if (s->ws.close_code)
        return LWS_CLOSE_STATUS_NORMAL; /* the session closed: nothing to upgrade */
    if (p->eio == WIRE_EIO_PING && !c->ws.sio.probed && p->data_len == 5 &&
        memcmp(p->data, "probe", 5) == 0) {
        gw__out_text(gw, c, "3probe", 6);
        c->ws.sio.probed = 1;
        gw__out_text(gw, s, "6", 1);
        return 0;
    }
    if (p->eio == WIRE_EIO_UPGRADE && c->ws.sio.probed && p->data_len == 0) {
        gw__conn_move(gw, s, c);
        gw__out_retire(s);
        return 0;
    }
    return LWS_CLOSE_STATUS_PROTOCOL_ERR;
}

int
gw__sio_receive(gw_t *gw, gw_conn_t *c, const char *buf, size_t len)
{
    wire_sio_packet_t p;

    if (wire_sio_parse(buf, len, &p) != 0)
        return LWS_CLOSE_STATUS_PROTOCOL_ERR;
    if (c->ws.sio.upgrade != NULL && !c->ws.sio.polling)
        return probe(gw, c, &p);
    switch (p.eio) {
    case WIRE_EIO_PONG:
        if (c->ws.sio.pong_due) {
            /* the next ping pingInterval after this pong, as the reference */
            c->ws.sio.pong_due = 0;
            schedule(gw, &gw->sio_ping, &c->ws.sio.beat, gw->sio_ping_interval_ms);
        }
        return 0;
    case WIRE_EIO_PING: {
        /* v4 clients do not ping, but answering costs nothing */
        char pong[64];
        if (p.data_len > sizeof pong - 1)
            return LWS_CLOSE_STATUS_PROTOCOL_ERR;
        pong[0] = '3';
        memcpy(pong + 1, p.data, p.data_len);
        gw__out_text(gw, c, pong, p.data_len + 1);
        return 0;
    }
    case WIRE_EIO_CLOSE: return LWS_CLOSE_STATUS_NORMAL;
    case WIRE_EIO_NOOP:
    case WIRE_EIO_UPGRADE: return 0;
    case WIRE_EIO_OPEN: return LWS_CLOSE_STATUS_PROTOCOL_ERR;
    case WIRE_EIO_MESSAGE: break;
    }
    if (p.sio == WIRE_SIO_BINARY_EVENT || p.sio == WIRE_SIO_BINARY_ACK) {
        /* binary attachments are not carried: refuse the connection cleanly */
        gw->m.binary_closes++;
        return LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE;
    }
    /* As the official decoder: a payload that is not JSON is a parse error
     * that closes the connection, before the packet is routed anywhere. */
    if (p.data_len > 0) {
        json_t *j = json_loadb(p.data, p.data_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        if (j == NULL)
            return LWS_CLOSE_STATUS_PROTOCOL_ERR;
        json_decref(j);
    }
    if (p.nsp_len != 1) {
        if (p.sio == WIRE_SIO_CONNECT) {
            char prefix[WIRE_SIO_NSP_MAX + 8];
            json_t *body = json_pack("{s:s}", "message", "Invalid namespace");
            snprintf(prefix, sizeof prefix, "44%.*s,", (int)p.nsp_len, p.nsp);
            send_json_packet(gw, c, prefix, body);
            json_decref(body);
            return 0;
        }
        return LWS_CLOSE_STATUS_PROTOCOL_ERR; /* a namespace never joined */
    }
    /* The reference server's states: CONNECT once, everything else only
     * while connected; a packet out of turn closes the session. */
    if ((p.sio == WIRE_SIO_CONNECT) == (c->ws.sio.connected != 0))
        return LWS_CLOSE_STATUS_PROTOCOL_ERR;
    switch (p.sio) {
    case WIRE_SIO_CONNECT: return sio_connect(gw, c, &p);
    case WIRE_SIO_DISCONNECT:
        /* leaves "/"; the Engine.IO session stays (it may CONNECT again) */
        gw__conn_leave_all(gw, c);
        c->ws.sio.connected = 0;
        /* as at the open: a CONNECT again within the connect timeout */
        schedule(gw, &gw->sio_connect, &c->ws.sio.connect, gw->sio_connect_timeout_ms);
        return 0;
    case WIRE_SIO_EVENT: return sio_event(gw, c, &p);
    case WIRE_SIO_ACK: return 0; /* the hub never asks for acks */
    default: return LWS_CLOSE_STATUS_PROTOCOL_ERR;
    }
}
