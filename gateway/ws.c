/*
 * gateway/ws.c: the WebSocket connection: authentication before the
 * upgrade, the native protocol's client ops, the three limits, and the
 * writer that drains a connection's queue of shared frames.
 *
 * Close codes are sent two ways, both tested from a real client: from
 * RECEIVE, lws_close_reason() and return -1; from anywhere else, the
 * connection is marked and the close frame is written by hand in the next
 * SERVER_WRITEABLE (PITFALLS: lws_close_reason there reaches the client as
 * 1006). Either way the TCP connection is not closed when our close frame
 * is out: the hub keeps reading, and discarding, until the peer's own close
 * frame or a short deadline (RFC 6455 §7.1.1). Closing with the peer's
 * frames still unread makes the kernel answer with a reset, which destroys
 * our close frame in the peer's receive buffer: the peer saw 1006.
 */
#include "gw_core.h"

#include <assert.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* A connection closed for one of our reasons is given this long to take the
 * close frame before lws drops it (a client that never reads). */
#define CLOSE_GRACE_S 5
/* ...and, once it has our close frame, this long to answer with its own. */
#define CLOSE_ACK_S 2

static void undirty(gw_t *gw, gw_conn_t *c);

static void
on_wake(uv_idle_t *h)
{
    (void)h; /* only there to keep the poll phase from blocking */
}

/* Finds the token: Authorization: Bearer first, then ?token=. */
static int
find_token(struct lws *wsi, char *buf, int cap)
{
    int n = lws_hdr_copy(wsi, buf, cap, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n > 7 && strncasecmp(buf, "Bearer ", 7) == 0) {
        memmove(buf, buf + 7, (size_t)(n - 7) + 1);
        return n - 7;
    }
    /* returns a pointer into buf just past "token=" */
    const char *v = lws_get_urlarg_by_name(wsi, "token=", buf, cap);
    if (v != NULL) {
        size_t vn = strlen(v);
        memmove(buf, v, vn + 1);
        return (int)vn;
    }
    return -1;
}

static int
authenticate(gw_t *gw, struct lws *wsi, wire_claims_t *claims, const char **why)
{
    char tok[WIRE_TOKEN_MAX + 1];
    int n = find_token(wsi, tok, sizeof tok);

    if (n <= 0) {
        *why = "missing token";
        return GW_EPARSE;
    }
    return wire_jwt_verify(gw->secret, tok, (size_t)n, time(NULL), claims, why);
}

static int
path_framing(struct lws *wsi, enum gw_framing *out)
{
    char uri[256];
    int n = lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI);

    if (n <= 0)
        return GW_EPARSE;
    if (strcmp(uri, "/ws") == 0 || strcmp(uri, "/ws/") == 0) {
        *out = GW_FRAMING_NATIVE;
        return 0;
    }
    if (strcmp(uri, "/socket.io/") == 0 || strcmp(uri, "/socket.io") == 0) {
        *out = GW_FRAMING_SIO;
        return 0;
    }
    return GW_EPARSE;
}

int
gw__ws_confirm_upgrade(gw_t *gw, struct lws *wsi)
{
    wire_claims_t claims;
    enum gw_framing framing;
    const char *why, *body;
    int status;

    if (gw->shutting_down)
        return gw__http_reject_now(wsi, 503, "shutting_down", "the hub is stopping");
    if (path_framing(wsi, &framing) != 0)
        return gw__http_reject_now(wsi, 404, "not_found",
                                   "WebSocket endpoints are /ws and /socket.io/");
    if (framing == GW_FRAMING_SIO) {
        /* Socket.IO authenticates in its CONNECT packet, not at the upgrade */
        status = gw__sio_http_check(wsi, 1, &body);
        return status ? gw__http_reject_body(wsi, status, body) : 0;
    }
    if (authenticate(gw, wsi, &claims, &why) != 0) {
        gw->m.auth_failures++;
        LOG_DEBUG("gw", "upgrade refused: %s", why);
        return gw__http_reject_now(wsi, 401, "unauthorized", "missing or invalid token");
    }
    return 0;
}

int
gw__ws_verify_token(gw_t *gw, const char *tok, size_t len, wire_claims_t *claims)
{
    const char *why;
    if (wire_jwt_verify(gw->secret, tok, len, time(NULL), claims, &why) != 0) {
        gw->m.auth_failures++;
        LOG_DEBUG("gw", "token refused: %s", why);
        return GW_EPARSE;
    }
    return 0;
}

static void
link_conn(gw_t *gw, gw_conn_t *c)
{
    c->prev = NULL;
    c->next = gw->conns;
    if (gw->conns)
        gw->conns->prev = c;
    gw->conns = c;
    c->linked = 1;
    gw->nconns[c->framing]++;
}

static void
unlink_conn(gw_t *gw, gw_conn_t *c)
{
    if (!c->linked)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        gw->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->linked = 0;
    gw->nconns[c->framing]--;
}

int
gw__ws_established(gw_t *gw, gw_conn_t *c, struct lws *wsi)
{
    const char *why;

    memset(c, 0, sizeof *c);
    c->gw = gw;
    c->wsi = wsi;
    c->is_ws = 1;
    c->member.owner = c;
    c->last_rx = uv_now(gw->loop);
    if (path_framing(wsi, &c->framing) != 0)
        return -1;
    if (c->framing == GW_FRAMING_SIO) {
        /* a valid ?token= is remembered for the CONNECT packet */
        c->sio_have_claims = authenticate(gw, wsi, &c->claims, &why) == 0;
        link_conn(gw, c);
        gw->m.ws_accepted++;
        gw__sio_established(gw, c, wsi);
    } else {
        /* The upgrade was authenticated in CONFIRM_UPGRADE; the headers are
         * still attached here, and verifying again is what fills the claims
         * (the HTTP half's per-session data is not carried over). */
        if (authenticate(gw, wsi, &c->claims, &why) != 0)
            return -1;
        link_conn(gw, c);
        gw->m.ws_accepted++;
        gw__ws_enter(gw, c);
    }
    if (gw->shutting_down)
        gw__ws_close_later(c, LWS_CLOSE_STATUS_GOINGAWAY);
    return 0;
}

void
gw__ws_enter(gw_t *gw, gw_conn_t *c)
{
    char room[WIRE_ROOM_MAX + 1];
    int n = snprintf(room, sizeof room, "user:%s", c->claims.sub);
    gw__rooms_join(gw->rooms, room, (size_t)n, &c->member);
    c->ready = 1;
}

int
gw__ws_join(gw_t *gw, gw_conn_t *c, const char *room, const char **code, const char **msg)
{
    if (wire_room_check(&c->claims, room, code) != 0) {
        *msg = strcmp(*code, "forbidden") == 0 ? "not allowed to join this room"
                                               : "rooms are user:<id>, bot:<id> or ops";
        return GW_EPARSE;
    }
    gw__rooms_join(gw->rooms, room, strlen(room), &c->member);
    return 0;
}

int
gw__ws_config_watch(gw_t *gw, gw_conn_t *c, const wire_client_op_t *op, const char **code,
                    const char **msg)
{
    char room[WIRE_ROOM_MAX + 1];

    if (gw->cache == NULL) {
        *code = "unavailable";
        *msg = "the configuration cache is not enabled";
        return GW_EPARSE;
    }
    for (size_t i = 0; i < op->nkeys; i++) {
        int n = snprintf(room, sizeof room, "config:%s", op->keys[i]);
        if (cache_watch(gw->cache, op->keys[i]) != 0) {
            *code = "too_many_watches";
            *msg = "this hub watches too many configuration keys";
            return GW_EPARSE;
        }
        /* an internal room: join/leave refuse "config:" names */
        gw__rooms_join(gw->rooms, room, (size_t)n, &c->member);
    }
    return 0;
}

int
gw__ws_leave(gw_t *gw, gw_conn_t *c, const char *room, const char **code, const char **msg)
{
    if (gw__rooms_leave(gw->rooms, room, strlen(room), &c->member) != 0) {
        *code = "not_member";
        *msg = "not in this room";
        return GW_EPARSE;
    }
    return 0;
}

void
gw__ws_closed(gw_t *gw, gw_conn_t *c)
{
    if (c == NULL || !c->is_ws)
        return;
    unlink_conn(gw, c);
    undirty(gw, c);
    gw__rooms_leave_all(gw->rooms, &c->member);
    gw__outq_free(&c->q);
    free(c->rx);
    c->rx = NULL;
    c->is_ws = 0;
    c->wsi = NULL;
}

void
gw__ws_close_later(gw_conn_t *c, int code)
{
    if (c->close_code)
        return;
    c->close_code = code;
    gw__outq_clear(&c->q);
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, CLOSE_GRACE_S);
    lws_callback_on_writable(c->wsi);
}

void
gw__ws_enqueue(gw_t *gw, gw_conn_t *c, gw_frame_t *f)
{
    if (c->close_code || gw->timers_closed)
        return;
    if (c->q.bytes + f->len > gw->slow_bytes) {
        /* A slow consumer: drop what it has not read and close it, so it
         * reconnects and resynchronises instead of making the hub grow. */
        gw->m.slow_closes++;
        LOG_DEBUG("gw", "slow consumer %s closed (%zu bytes queued)", c->claims.sub, c->q.bytes);
        gw__ws_close_later(c, 4008);
        return;
    }
    gw__outq_push(&c->q, f);
    if (!c->dirty) {
        /* sent at the end of this loop iteration, with whatever else is
         * queued for this socket by then: one send() for them all. Queued
         * from a timer, the poll phase would otherwise block first. */
        if (gw->dirty == NULL)
            uv_idle_start(&gw->wake, on_wake);
        c->dirty = 1;
        c->dprev = NULL;
        c->dnext = gw->dirty;
        if (gw->dirty)
            gw->dirty->dprev = c;
        gw->dirty = c;
    }
}

static void
undirty(gw_t *gw, gw_conn_t *c)
{
    if (!c->dirty)
        return;
    if (c->dprev)
        c->dprev->dnext = c->dnext;
    else
        gw->dirty = c->dnext;
    if (c->dnext)
        c->dnext->dprev = c->dprev;
    c->dirty = 0;
    c->dnext = c->dprev = NULL;
}

/*
 * Writes what is queued for `c`, coalesced: one frame goes from its shared
 * buffer as it is; several are copied into the gateway's scratch buffer and
 * go in one send(). lws keeps any part the kernel did not take in its own
 * buffer (copied, so the scratch can be reused at once) and sends it before
 * anything else; while it holds some, we wait for WRITEABLE. Returns 0, or
 * -1 when the connection failed.
 */
static int
flush_conn(gw_t *gw, gw_conn_t *c)
{
    uint64_t now_ns = 0;
    size_t total = 0, n, k = 0;
    unsigned char *wire, *out;

    if (c->close_code) {
        lws_callback_on_writable(c->wsi);
        return 0;
    }
    if (c->q.count == 0)
        return 0;
    if (lws_partial_buffered(c->wsi)) {
        lws_callback_on_writable(c->wsi);
        return 0;
    }
    if (c->q.count == 1) {
        out = gw__frame_wire(gw__outq_peek(&c->q), &total);
        k = 1;
    } else {
        out = gw->scratch;
        while (k < c->q.count) {
            gw_frame_t *f = c->q.ring[(c->q.head + k) % c->q.cap];
            wire = gw__frame_wire(f, &n);
            if (total + n > GW_SCRATCH && k > 0)
                break;
            if (n > GW_SCRATCH) { /* cannot happen (frames are smaller) but stay safe */
                out = wire;
                total = n;
                k = 1;
                break;
            }
            memcpy(gw->scratch + total, wire, n);
            total += n;
            k++;
        }
    }
    if (lws_write(c->wsi, out, total, LWS_WRITE_RAW) < 0)
        return -1;
    while (k-- > 0) {
        gw_frame_t *f = gw__outq_peek(&c->q);
        if (f->born_ns) {
            if (now_ns == 0)
                now_ns = uv_hrtime();
            gw->m.deliveries++;
            gw__metrics_observe_latency(&gw->m, now_ns - f->born_ns);
        }
        gw__outq_pop(&c->q);
    }
    gw->m.sends++;
    if (c->q.count > 0 || lws_partial_buffered(c->wsi))
        lws_callback_on_writable(c->wsi);
    return 0;
}

static void
on_flush(uv_check_t *h)
{
    gw_t *gw = h->data;
    gw_conn_t *c;

    uv_idle_stop(&gw->wake);
    while ((c = gw->dirty) != NULL) {
        undirty(gw, c);
        if (flush_conn(gw, c) != 0) {
            /* not from inside an lws callback: have lws close it soon */
            gw__outq_clear(&c->q);
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        }
    }
}

/* A WebSocket silent for ws_idle_ping_ms is sent a PING; one that does not
 * answer within ws_idle_drop_ms is dropped (a peer that vanished, a
 * half-open connection stuck in the middle of a frame). Every WebSocket
 * client answers pings by itself. */

void
gw__ws_alive(gw_t *gw, gw_conn_t *c)
{
    c->last_rx = uv_now(gw->loop);
    c->ws_ping_sent = 0;
}

static void
on_sweep(uv_timer_t *t)
{
    /* FIN, PING, 2 bytes of payload. Not empty: lws 4.1 does not report a
     * PONG without payload to the protocol callback, and a PONG echoes the
     * PING's payload. */
    static const unsigned char ping[4] = {0x89, 0x02, 'c', 'h'};
    gw_t *gw = t->data;
    uint64_t now = uv_now(gw->loop);

    for (gw_conn_t *c = gw->conns, *next; c; c = next) {
        next = c->next; /* a drop below unlinks c, and only c */
        if (c->close_code || c->idle_dropped)
            continue;
        if (c->framing == GW_FRAMING_SIO)
            gw__sio_sweep(gw, c, now);
        if (c->ws_ping_sent != 0) {
            if (now - c->ws_ping_sent >= gw->ws_idle_drop_ms) {
                /* It cannot take a close frame either: close it, once.
                 * Synchronously when lws holds no output for it (an async
                 * kill is an lws timeout, inserted in a sorted list at
                 * O(connections) each); with output held, a sync kill
                 * only starts lws's flush-before-close, which a peer that
                 * does not read keeps open, so the timeout path then. */
                gw->m.idle_drops++;
                gw__outq_clear(&c->q);
                c->idle_dropped = 1;
                lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK,
                                lws_partial_buffered(c->wsi) ? LWS_TO_KILL_ASYNC
                                                             : LWS_TO_KILL_SYNC);
            }
        } else if (now - c->last_rx >= gw->ws_idle_ping_ms) {
            gw->m.idle_pings++;
            gw_frame_t *f = gw__frame_new(sizeof ping);
            memcpy(gw__frame_data(f), ping, sizeof ping);
            f->hdr = GW_FRAME_RAW;
            gw__ws_enqueue(gw, c, f);
            gw__frame_unref(f);
            c->ws_ping_sent = now;
        }
    }
}

void
gw__ws_sweep_init(gw_t *gw)
{
    /* often enough for the shortest Socket.IO interval (tests use 300 ms) */
    uint64_t period = gw->sio_ping_interval_ms / 4;
    if (gw->ws_idle_ping_ms / 4 < period)
        period = gw->ws_idle_ping_ms / 4;
    if (gw->ws_idle_drop_ms / 4 < period)
        period = gw->ws_idle_drop_ms / 4;
    if (period > 1000)
        period = 1000;
    if (period < 10)
        period = 10;
    uv_timer_init(gw->loop, &gw->sweep);
    gw->sweep.data = gw;
    uv_timer_start(&gw->sweep, on_sweep, period, period);
}

void
gw__ws_flush_init(gw_t *gw)
{
    gw->scratch = util_malloc(GW_SCRATCH);
    uv_check_init(gw->loop, &gw->flush);
    gw->flush.data = gw;
    uv_check_start(&gw->flush, on_flush);
    uv_idle_init(gw->loop, &gw->wake);
}

void
gw__ws_send_text(gw_t *gw, gw_conn_t *c, const char *text, size_t n)
{
    gw_frame_t *f = gw__frame_new(n);
    memcpy(gw__frame_data(f), text, n);
    gw__ws_enqueue(gw, c, f);
    gw__frame_unref(f);
}

void
gw__ws_send_event(gw_t *gw, gw_conn_t *c, const char *event, const char *data, size_t dlen)
{
    gw_frame_t *f = gw__frame_event(c->framing, event, data, dlen);
    gw__ws_enqueue(gw, c, f);
    gw__frame_unref(f);
}

static void
send_error(gw_t *gw, gw_conn_t *c, const char *code, const char *message)
{
    json_t *o = json_pack("{s:s,s:s}", "code", code, "message", message);
    char *s = json_dumps(o, JSON_COMPACT);
    gw->m.client_errors++;
    gw__ws_send_event(gw, c, "error", s, strlen(s));
    free(s);
    json_decref(o);
}

static void
send_room_ack(gw_t *gw, gw_conn_t *c, const char *event, const char *room)
{
    json_t *o = json_pack("{s:s}", "room", room);
    char *s = json_dumps(o, JSON_COMPACT);
    gw__ws_send_event(gw, c, event, s, strlen(s));
    free(s);
    json_decref(o);
}

static void
handle_op(gw_t *gw, gw_conn_t *c, const char *buf, size_t len)
{
    wire_client_op_t op;
    const char *code, *msg;

    if (wire_client_op_parse(buf, len, &op, &code, &msg) != 0) {
        send_error(gw, c, code, msg);
        return;
    }
    switch (op.op) {
    case WIRE_OP_PING: gw__ws_send_event(gw, c, "pong", NULL, 0); break;
    case WIRE_OP_JOIN:
        if (gw__ws_join(gw, c, op.room, &code, &msg) != 0)
            send_error(gw, c, code, msg);
        else
            send_room_ack(gw, c, "joined", op.room);
        break;
    case WIRE_OP_LEAVE:
        if (gw__ws_leave(gw, c, op.room, &code, &msg) != 0)
            send_error(gw, c, code, msg);
        else
            send_room_ack(gw, c, "left", op.room);
        break;
    case WIRE_OP_CONFIG_WATCH:
        if (gw__ws_config_watch(gw, c, &op, &code, &msg) != 0) {
            send_error(gw, c, code, msg);
        } else {
            json_t *keys = json_array(), *o;
            char *s;
            for (size_t i = 0; i < op.nkeys; i++)
                json_array_append_new(keys, json_string(op.keys[i]));
            o = json_pack("{s:o}", "keys", keys);
            s = json_dumps(o, JSON_COMPACT);
            gw__ws_send_event(gw, c, "watching", s, strlen(s));
            free(s);
            json_decref(o);
        }
        break;
    }
}

/* One complete inbound message: returns 0, or a close code. */
static int
dispatch(gw_t *gw, gw_conn_t *c, const char *buf, size_t len)
{
    if (!util_utf8_valid(buf, len)) {
        gw->m.utf8_closes++;
        return LWS_CLOSE_STATUS_INVALID_PAYLOAD;
    }
    if (!gw__bucket_take(&c->bucket, uv_now(gw->loop), gw->op_rate, gw->op_burst)) {
        gw->m.rate_closes++;
        return LWS_CLOSE_STATUS_POLICY_VIOLATION;
    }
    if (c->framing == GW_FRAMING_SIO)
        return gw__sio_receive(gw, c, buf, len);
    handle_op(gw, c, buf, len);
    return 0;
}

static const char *
close_text(int code)
{
    switch (code) {
    case LWS_CLOSE_STATUS_POLICY_VIOLATION: return "rate limit";
    case LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE: return "text frames only";
    case LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE: return "message too large";
    case LWS_CLOSE_STATUS_GOINGAWAY: return "hub stopping";
    case 4008: return "slow consumer";
    case LWS_CLOSE_STATUS_PROTOCOL_ERR: return "protocol error";
    case LWS_CLOSE_STATUS_INVALID_PAYLOAD: return "text is not UTF-8";
    default: return "";
    }
}

/* Closes from RECEIVE: the close frame goes out at the next writeable, as
 * every other close of ours, and RECEIVE goes on returning 0. Returning -1
 * here instead would make lws drop the rest of its read buffer mid-frame;
 * its parser then reads the peer's next frames from their middle ("illegal
 * opcode") and resets the connection before the peer's close arrives. */
static int
close_soon(gw_conn_t *c, int code)
{
    gw__ws_close_later(c, code);
    return 0;
}

/* Closes from PEER_INITIATED_CLOSE (a close frame we refuse): the peer has
 * sent its last frame, so lws can answer with ours and end the connection. */
static int
close_in_rx(gw_conn_t *c, struct lws *wsi, int code)
{
    const char *text = close_text(code);

    c->close_code = code;
    c->close_sent = 1;
    lws_close_reason(wsi, (enum lws_close_status)code, (unsigned char *)text, strlen(text));
    return -1;
}

int
gw__ws_receive(gw_t *gw, gw_conn_t *c, struct lws *wsi, const void *in, size_t len)
{
    int first = lws_is_first_fragment(wsi), final = lws_is_final_fragment(wsi);
    size_t remaining = lws_remaining_packet_payload(wsi);
    int code;

    if (c->close_code)
        return 0; /* closing: ignore what it still sends */
    gw__ws_alive(gw, c);
    if (lws_frame_is_binary(wsi)) {
        gw->m.binary_closes++;
        return close_soon(c, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE);
    }
    if ((first ? 0 : c->rxlen) + len + remaining > gw->max_frame) {
        gw->m.too_large_closes++;
        return close_soon(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE);
    }
    if (first && final && remaining == 0) {
        /* the common case: the whole message in one piece, no copy */
        code = dispatch(gw, c, in, len);
    } else {
        if (first)
            c->rxlen = 0;
        if (c->rx == NULL)
            c->rx = util_malloc(gw->max_frame);
        memcpy(c->rx + c->rxlen, in, len);
        c->rxlen += len;
        if (!final || remaining > 0)
            return 0;
        code = dispatch(gw, c, c->rx, c->rxlen);
        /* do not keep 64 KiB per connection for one large message */
        free(c->rx);
        c->rx = NULL;
        c->rxlen = 0;
    }
    if (code == 0)
        return 0;
    if (code == LWS_CLOSE_STATUS_PROTOCOL_ERR)
        gw->m.protocol_closes++;
    return close_soon(c, code);
}

/* lws 4.1 keeps the close opcode private (LWS_WRITE_CLOSE is 4 in
 * roles/ws/private-lib-roles-ws.h); its public lws_close_reason() path does
 * not write the frame from SERVER_WRITEABLE, so we pass the value directly. */
#define GW_WRITE_CLOSE ((enum lws_write_protocol)4)

int
gw__ws_peer_close(gw_t *gw, gw_conn_t *c, struct lws *wsi, const void *in, size_t len)
{
    const unsigned char *p = in;
    unsigned code;

    if (c->close_sent)
        return -1; /* the answer to our close frame: the handshake is done */
    if (len == 0)
        return 0;
    if (len == 1) {
        gw->m.protocol_closes++;
        return close_in_rx(c, wsi, LWS_CLOSE_STATUS_PROTOCOL_ERR);
    }
    code = (unsigned)p[0] << 8 | p[1];
    /* codes a peer may send: 1000-1003, 1007-1014, 3000-4999 */
    if (code < 1000 || (code >= 1004 && code <= 1006) || (code >= 1015 && code < 3000) ||
        code >= 5000) {
        gw->m.protocol_closes++;
        return close_in_rx(c, wsi, LWS_CLOSE_STATUS_PROTOCOL_ERR);
    }
    if (!util_utf8_valid((const char *)p + 2, len - 2)) {
        gw->m.utf8_closes++;
        return close_in_rx(c, wsi, LWS_CLOSE_STATUS_INVALID_PAYLOAD);
    }
    return 0;
}

/* Writes our close frame and waits for the peer's (gw__ws_peer_close ends
 * the connection then) or for CLOSE_ACK_S. */
static int
write_close(gw_conn_t *c, struct lws *wsi)
{
    const char *text = close_text(c->close_code);
    size_t tlen = strlen(text);
    unsigned char buf[LWS_PRE + 2 + 64];

    assert(tlen <= 64);
    buf[LWS_PRE] = (unsigned char)(c->close_code >> 8);
    buf[LWS_PRE + 1] = (unsigned char)c->close_code;
    memcpy(buf + LWS_PRE + 2, text, tlen);
    if (lws_write(wsi, buf + LWS_PRE, 2 + tlen, GW_WRITE_CLOSE) < 0)
        return -1;
    c->close_sent = 1;
    lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_ACK, CLOSE_ACK_S);
    return 0;
}

int
gw__ws_writeable(gw_t *gw, gw_conn_t *c, struct lws *wsi)
{
    if (c->close_sent)
        return 0; /* waiting for the peer's close */
    if (c->close_code)
        return write_close(c, wsi);
    undirty(gw, c);
    return flush_conn(gw, c);
}
