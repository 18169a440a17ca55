/*
 * gateway/liveness.c: one timer for the liveness of every connection (lws
 * 4.1's per-connection timers are a sorted list with linear inserts:
 * quadratic at 20k sockets; docs/libraries.md).
 *
 * A WebSocket silent for ws_idle_ping_ms is sent a PING; one that does not
 * answer within ws_idle_drop_ms is dropped (a peer that vanished, a
 * half-open connection stuck in the middle of a frame). Every WebSocket
 * client answers pings by itself. Socket.IO connections also get
 * Engine.IO's pings, on their own timer (socketio.c).
 */
#include "liveness.h"

#include "conn.h"
#include "writer.h"

#include <time.h>

#include <string.h>

static void
on_sweep(uv_timer_t *t)
{
    /* FIN, PING, 2 bytes of payload. Not empty: lws 4.1 does not report a
     * PONG without payload to the protocol callback, and a PONG echoes the
     * PING's payload. */
    static const unsigned char ping[4] = {0x89, 0x02, 'c', 'h'};
    gw_t *gw = t->data;
    uint64_t now = uv_now(gw->loop);
    long long now_s = (long long)time(NULL);

    for (gw_conn_t *c = gw->conns, *next; c; c = next) {
        next = c->ws.next; /* a drop below unlinks c, and only c */
        if (c->ws.close_code || c->ws.idle_dropped)
            continue;
        gw__conn_expiry(gw, c, now_s); /* one compare per connection per sweep */
        if (c->ws.close_code)
            continue;
        if (c->wsi == NULL)
            continue; /* a polling session: Engine.IO's pings only (socketio.c) */
        if (c->ws.ping_sent != 0) {
            if (now - c->ws.ping_sent >= gw->ws_idle_drop_ms) {
                /* It cannot take a close frame either: close it, once.
                 * Synchronously when lws holds no output for it (an async
                 * kill is an lws timeout, inserted in a sorted list at
                 * O(connections) each); with output held, a sync kill
                 * only starts lws's flush-before-close, which a peer that
                 * does not read keeps open, so the timeout path then. */
                gw->m.idle_drops++;
                gw__out_drop(c);
                c->ws.idle_dropped = 1;
                gw__out_timeout(gw, c->wsi, PENDING_TIMEOUT_USER_OK,
                                lws_partial_buffered(c->wsi) ? LWS_TO_KILL_ASYNC
                                                             : LWS_TO_KILL_SYNC);
            }
        } else if (now - c->ws.last_rx >= gw->ws_idle_ping_ms) {
            gw->m.idle_pings++;
            gw_frame_t *f = gw__frame_new(sizeof ping);
            memcpy(gw__frame_data(f), ping, sizeof ping);
            f->hdr = GW_FRAME_RAW;
            gw__out_frame(gw, c, f);
            gw__frame_unref(f);
            c->ws.ping_sent = now;
        }
    }
}

void
gw__liveness_init(gw_t *gw)
{
    uint64_t period = gw->ws_idle_ping_ms / 4;
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

