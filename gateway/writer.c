/*
 * gateway/writer.c: a WebSocket connection's output.
 *
 * Frames are queued by reference and written once per loop iteration: a
 * uv_check flushes every connection that got frames since the last one, so
 * whatever was queued for a socket in that iteration goes in one send().
 *
 * Every close the hub initiates goes out from SERVER_WRITEABLE, written by
 * hand (lws 4.1: lws_close_reason() from there reaches the client as 1006,
 * and from RECEIVE its -1 makes lws drop the rest of its read buffer
 * mid-frame, so that its parser then resets the connection before the
 * peer's close arrives; docs/libraries.md). Then the connection stays open,
 * reading and discarding, until the peer's close frame (ws.c ends it there)
 * or CLOSE_ACK_S: closing with the peer's frames still unread would make the
 * kernel answer with a reset, which destroys our close frame in the peer's
 * receive buffer.
 */
#include "writer.h"

#include "front.h"

#include "http.h"
#include "metrics.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* A connection closed for one of our reasons is given this long to take the
 * close frame before lws drops it (a client that never reads)... */
#define CLOSE_GRACE_S 5
/* ...and, once it has our close frame, this long to answer with its own. */
#define CLOSE_ACK_S 2

/* lws 4.1 keeps the close opcode private (LWS_WRITE_CLOSE is 4 in
 * roles/ws/private-lib-roles-ws.h); its public lws_close_reason() path does
 * not write the frame from SERVER_WRITEABLE, so we pass the value directly. */
#define GW_WRITE_CLOSE ((enum lws_write_protocol)4)

static void
on_wake(uv_idle_t *h)
{
    (void)h; /* only there to keep the poll phase from blocking */
}

static void
undirty(gw_t *gw, gw_conn_t *c)
{
    gw_ws_t *w = &c->ws;

    if (!w->dirty)
        return;
    if (w->dprev)
        w->dprev->ws.dnext = w->dnext;
    else
        gw->dirty = w->dnext;
    if (w->dnext)
        w->dnext->ws.dprev = w->dprev;
    w->dirty = 0;
    w->dnext = w->dprev = NULL;
}

/* Answers the GET waiting on polling session `s` with `body`: the GET is
 * detached from the session, its answer written by http.c. */
static void
poll_answer(gw_conn_t *s, const char *body, size_t len)
{
    gw_conn_t *h = s->ws.sio.get;

    s->ws.sio.get = NULL;
    h->poll.session = NULL;
    gw__http_respond(h, 200, "text/plain; charset=UTF-8", body, len);
}

/* Puts a closed polling session on the list polling.c frees from. */
static void
poll_dead(gw_conn_t *c, const char *last_packet)
{
    gw_t *gw = c->gw;

    if (c->ws.sio.dead)
        return;
    c->ws.sio.dead = 1;
    gw__outq_clear(&c->ws.q);
    if (c->ws.sio.get != NULL)
        poll_answer(c, last_packet, strlen(last_packet));
    c->ws.sio.dead_next = gw->poll_dead;
    gw->poll_dead = c;
}

void
gw__out_close(gw_conn_t *c, int code)
{
    if (c->ws.close_code)
        return;
    c->ws.close_code = code;
    gw__outq_clear(&c->ws.q);
    if (c->wsi == NULL) {
        /* a polling session: Engine.IO's close packet to a GET waiting,
         * else the next poll finds the session gone (error 1) */
        poll_dead(c, "1");
        return;
    }
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, CLOSE_GRACE_S);
    lws_callback_on_writable(c->wsi);
}

void
gw__out_close_why(gw_conn_t *c, int code, const char *why)
{
    if (c->ws.close_code)
        return;
    c->ws.close_why = why;
    gw__out_close(c, code);
}

void
gw__out_retire(gw_conn_t *c)
{
    c->ws.close_code = LWS_CLOSE_STATUS_NORMAL;
    poll_dead(c, "6");
}

void
gw__out_move(gw_t *gw, gw_conn_t *from, gw_conn_t *to)
{
    gw_outq_t *q = &from->ws.q;

    while (q->count > 0) {
        gw__out_frame(gw, to, gw__outq_peek(q));
        gw__outq_pop(q);
    }
}

/* Sent at the end of this loop iteration, with whatever else is queued
 * for this socket by then: one send() for them all. Queued from a timer,
 * the poll phase would otherwise block first. */
static void
mark_dirty(gw_t *gw, gw_conn_t *c)
{
    gw_ws_t *w = &c->ws;

    if (w->dirty)
        return;
    if (gw->dirty == NULL)
        uv_idle_start(&gw->wake, on_wake);
    w->dirty = 1;
    w->dprev = NULL;
    w->dnext = gw->dirty;
    if (gw->dirty)
        gw->dirty->ws.dprev = c;
    gw->dirty = c;
}

void
gw__out_frame(gw_t *gw, gw_conn_t *c, gw_frame_t *f)
{
    gw_ws_t *w = &c->ws;

    if (w->close_code || gw->timers_closed)
        return;
    if (w->q.bytes + f->len > gw->slow_bytes) {
        /* A slow consumer: drop what it has not read and close it, so it
         * reconnects and resynchronises instead of making the hub grow. */
        gw->m.slow_closes++;
        LOG_DEBUG("gw", "slow consumer %s closed (%zu bytes queued)", w->claims.sub, w->q.bytes);
        gw__out_close(c, 4008);
        return;
    }
    gw__outq_push(&w->q, f);
    mark_dirty(gw, c);
}

void
gw__out_release(gw_t *gw, gw_conn_t *c)
{
    if (c->ws.q.count > 0)
        mark_dirty(gw, c);
}

void
gw__out_text(gw_t *gw, gw_conn_t *c, const char *text, size_t n)
{
    gw_frame_t *f = gw__frame_text(text, n);
    gw__out_frame(gw, c, f);
    gw__frame_unref(f);
}

void
gw__out_event(gw_t *gw, gw_conn_t *c, const char *event, const char *data, size_t dlen)
{
    gw_frame_t *f = gw__frame_event(c->ws.framing, event, data, dlen, NULL);
    gw__out_frame(gw, c, f);
    gw__frame_unref(f);
}

/* Counts an event frame `f` as delivered, with its latency from Redis;
 * `*now_ns` is read from the clock once per flush (0: not yet). */
static void
delivered(gw_t *gw, const gw_frame_t *f, uint64_t *now_ns)
{
    if (f->born_ns == 0)
        return; /* not an event: an open packet, a pong, a ping */
    if (*now_ns == 0)
        *now_ns = uv_hrtime();
    gw->m.deliveries++;
    gw__metrics_observe_latency(&gw->m, *now_ns - f->born_ns);
}

/* The output of polling session `c` to the GET waiting on it, if any: every
 * queued packet, separated by 0x1e, in one response. */
static void
flush_poll(gw_t *gw, gw_conn_t *c)
{
    gw_outq_t *q = &c->ws.q;
    uint64_t now_ns = 0;
    size_t total = 0;
    char *body, *p;

    if (q->count == 0 || c->ws.sio.get == NULL || c->ws.held)
        return;
    for (uint32_t k = 0; k < q->count; k++)
        total += q->ring[(q->head + k) % q->cap]->len + 1;
    p = body = util_malloc(total);
    while (q->count > 0) {
        gw_frame_t *f = gw__outq_peek(q);
        if (p != body)
            *p++ = '\x1e';
        memcpy(p, gw__frame_data(f), f->len);
        p += f->len;
        delivered(gw, f, &now_ns);
        gw__outq_pop(q);
    }
    poll_answer(c, body, (size_t)(p - body));
    gw->m.sends++;
    free(body);
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
    gw_outq_t *q = &c->ws.q;
    uint64_t now_ns = 0;
    size_t total = 0, n, k = 0;
    unsigned char *wire, *out;

    if (c->wsi == NULL) {
        flush_poll(gw, c);
        return 0;
    }
    if (c->ws.close_code) {
        lws_callback_on_writable(c->wsi);
        return 0;
    }
    if (q->count == 0 || c->ws.held)
        return 0; /* held: a recovery puts the missed events first (recovery.c) */
    if (lws_partial_buffered(c->wsi)) {
        lws_callback_on_writable(c->wsi);
        return 0;
    }
    if (q->count == 1) {
        out = gw__frame_wire(gw__outq_peek(q), &total);
        k = 1;
    } else {
        out = gw->scratch;
        while (k < q->count) {
            gw_frame_t *f = q->ring[(q->head + k) % q->cap];
            wire = gw__frame_wire(f, &n);
            if (total + n > GW_SCRATCH && k > 0)
                break;
            if (n > GW_SCRATCH) { /* an event over 64 KiB: it goes alone */
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
        delivered(gw, gw__outq_peek(q), &now_ns);
        gw__outq_pop(q);
    }
    gw->m.sends++;
    if (q->count > 0 || lws_partial_buffered(c->wsi))
        lws_callback_on_writable(c->wsi);
    return 0;
}

static void
on_flush(uv_check_t *h)
{
    gw_t *gw = h->data;
    gw_conn_t *c;

    gw->iterations++;
    uv_idle_stop(&gw->wake);
    gw__front_resume(gw);
    while ((c = gw->dirty) != NULL) {
        undirty(gw, c);
        if (flush_conn(gw, c) != 0) {
            /* not from inside an lws callback: have lws close it soon */
            gw__outq_clear(&c->ws.q);
            gw__out_timeout(gw, c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        }
    }
}

static void
on_lws_kick(uv_timer_t *t)
{
    gw_t *gw = t->data;

    lws_cancel_service(gw->ctx);
}

void
gw__out_wake(gw_t *gw)
{
    uv_idle_start(&gw->wake, on_wake);
}

void
gw__out_wake_lws(gw_t *gw)
{
    if (!uv_is_active((uv_handle_t *)&gw->lws_kick))
        uv_timer_start(&gw->lws_kick, on_lws_kick, 100, 0);
}

void
gw__out_timeout(gw_t *gw, struct lws *wsi, enum pending_timeout reason, int secs)
{
    lws_set_timeout(wsi, reason, secs);
    gw__out_wake_lws(gw);
}

void
gw__out_init(gw_t *gw)
{
    gw->scratch = util_malloc(GW_SCRATCH);
    uv_check_init(gw->loop, &gw->flush);
    gw->flush.data = gw;
    uv_check_start(&gw->flush, on_flush);
    uv_idle_init(gw->loop, &gw->wake);
    uv_timer_init(gw->loop, &gw->lws_kick);
    gw->lws_kick.data = gw;
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
    case 4001: return "token expired";
    case 4003: return "forbidden";
    case LWS_CLOSE_STATUS_PROTOCOL_ERR: return "protocol error";
    case LWS_CLOSE_STATUS_INVALID_PAYLOAD: return "text is not UTF-8";
    default: return "";
    }
}

/* Writes our close frame and waits for the peer's or for CLOSE_ACK_S. */
static int
write_close(gw_conn_t *c, struct lws *wsi)
{
    const char *text = c->ws.close_why ? c->ws.close_why : close_text(c->ws.close_code);
    size_t tlen = strlen(text);
    unsigned char buf[LWS_PRE + 2 + 32];

    buf[LWS_PRE] = (unsigned char)(c->ws.close_code >> 8);
    buf[LWS_PRE + 1] = (unsigned char)c->ws.close_code;
    assert(tlen <= sizeof buf - LWS_PRE - 2);
    memcpy(buf + LWS_PRE + 2, text, tlen);
    if (lws_write(wsi, buf + LWS_PRE, 2 + tlen, GW_WRITE_CLOSE) < 0)
        return -1;
    c->ws.close_sent = 1;
    lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_ACK, CLOSE_ACK_S);
    return 0;
}

int
gw__out_writeable(gw_t *gw, gw_conn_t *c, struct lws *wsi)
{
    if (c->ws.close_sent)
        return 0; /* waiting for the peer's close */
    if (c->ws.close_code)
        return write_close(c, wsi);
    undirty(gw, c);
    return flush_conn(gw, c);
}

void
gw__out_drop(gw_conn_t *c)
{
    gw__outq_clear(&c->ws.q);
}

void
gw__out_refused(gw_conn_t *c, int code)
{
    c->ws.close_code = code;
    c->ws.close_sent = 1;
}

void
gw__out_poll(gw_t *gw, gw_conn_t *c)
{
    flush_poll(gw, c);
}

void
gw__out_forget(gw_t *gw, gw_conn_t *c)
{
    undirty(gw, c);
    gw__outq_free(&c->ws.q);
}
