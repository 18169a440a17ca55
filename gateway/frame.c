/*
 * gateway/frame.c: shared, reference-counted WebSocket frames and the
 * per-connection queues that hold them (h2o's shared buffers are the
 * model). A frame is serialised once per framing and event; every
 * recipient's queue holds one reference; the last queue to drop it frees it.
 * Everything here runs on the loop thread, so the counts are plain integers.
 */
#include "frame.h"
#include "util.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define OUTQ_INITIAL_CAP 8

gw_frame_t *
gw__frame_new(size_t len)
{
    gw_frame_t *f;

    assert(len <= UINT32_MAX);
    f = util_malloc(sizeof *f + LWS_PRE + len);
    f->refs = 1;
    f->len = (uint32_t)len;
    f->born_ns = 0;
    f->hdr = 0;
    return f;
}

unsigned char *
gw__frame_wire(gw_frame_t *f, size_t *n)
{
    unsigned char *p = gw__frame_data(f);

    if (f->hdr == GW_FRAME_RAW) {
        *n = f->len;
        return p;
    }
    if (f->hdr == 0) {
        uint64_t len = f->len;
        if (len < 126) {
            p[-2] = 0x81;
            p[-1] = (unsigned char)len;
            f->hdr = 2;
        } else if (len <= 0xffff) {
            p[-4] = 0x81;
            p[-3] = 126;
            p[-2] = (unsigned char)(len >> 8);
            p[-1] = (unsigned char)len;
            f->hdr = 4;
        } else {
            p[-10] = 0x81;
            p[-9] = 127;
            for (int i = 0; i < 8; i++)
                p[-8 + i] = (unsigned char)(len >> (56 - 8 * i));
            f->hdr = 10;
        }
    }
    *n = f->hdr + f->len;
    return p - f->hdr;
}

void
gw__frame_unref(gw_frame_t *f)
{
    if (f == NULL)
        return;
    assert(f->refs > 0);
    if (--f->refs == 0)
        free(f);
}

/*
 * Builds one event frame: native {"event":"NAME","data":DATA,"offset":"O"}
 * or Socket.IO 42["NAME",DATA,"O"]. `event` is trusted ASCII from our own
 * code (no quotes or backslashes); `data` is JSON text copied verbatim, or
 * NULL (or empty) for an event without data; `offset` likewise trusted
 * (digits and '-', docs/recovery.md), NULL for none. Returns a frame with
 * one reference.
 */
gw_frame_t *
gw__frame_event(enum gw_framing framing, const char *event, const char *data, size_t dlen,
                const char *offset)
{
    const int sio = framing == GW_FRAMING_SIO;
    const char *parts[8]; /* open, event, quote or mid, data, offset's three, close */
    size_t lens[8], np = 0, len = 0;
    gw_frame_t *f;
    unsigned char *p;

    assert(strpbrk(event, "\"\\") == NULL);
    assert(offset == NULL || strpbrk(offset, "\"\\") == NULL);
    if (data == NULL)
        dlen = 0;
#define PART(s, n) (parts[np] = (s), lens[np++] = (n))
#define LIT(s) PART(s, sizeof s - 1)
    if (sio)
        LIT("42[\"");
    else
        LIT("{\"event\":\"");
    PART(event, strlen(event));
    if (dlen) {
        if (sio)
            LIT("\",");
        else
            LIT("\",\"data\":");
        PART(data, dlen);
    } else {
        LIT("\""); /* the event's closing quote */
    }
    if (offset) {
        if (sio)
            LIT(",\"");
        else
            LIT(",\"offset\":\"");
        PART(offset, strlen(offset));
        LIT("\"");
    }
    if (sio)
        LIT("]");
    else
        LIT("}");
#undef LIT
#undef PART
    assert(np <= sizeof parts / sizeof parts[0]);
    for (size_t i = 0; i < np; i++)
        len += lens[i];
    f = gw__frame_new(len);
    p = gw__frame_data(f);
    for (size_t i = 0; i < np; i++) {
        memcpy(p, parts[i], lens[i]);
        p += lens[i];
    }
    return f;
}

/* A frame of `n` bytes of text (a packet of ours), one reference. */
gw_frame_t *
gw__frame_text(const char *text, size_t n)
{
    gw_frame_t *f = gw__frame_new(n);
    memcpy(gw__frame_data(f), text, n);
    return f;
}

/* ---- the send queue ---- */

/* Doubles the ring, unwrapping it so the oldest frame is at index 0. */
static void
outq_grow(gw_outq_t *q)
{
    uint32_t ncap = q->cap ? q->cap * 2 : OUTQ_INITIAL_CAP;
    gw_frame_t **ring;

    assert(ncap > q->cap);
    ring = util_malloc(sizeof *ring * ncap);
    for (uint32_t i = 0; i < q->count; i++)
        ring[i] = q->ring[(q->head + i) & (q->cap - 1)];
    free(q->ring);
    q->ring = ring;
    q->cap = ncap;
    q->head = 0;
}

void
gw__outq_push(gw_outq_t *q, gw_frame_t *f)
{
    if (q->count == q->cap)
        outq_grow(q);
    gw__frame_ref(f);
    q->ring[(q->head + q->count) & (q->cap - 1)] = f;
    q->count++;
    q->bytes += f->len;
}

void
gw__outq_push_front(gw_outq_t *q, gw_frame_t *f)
{
    if (q->count == q->cap)
        outq_grow(q);
    gw__frame_ref(f);
    q->head = (q->head + q->cap - 1) & (q->cap - 1);
    q->ring[q->head] = f;
    q->count++;
    q->bytes += f->len;
}

gw_frame_t *
gw__outq_peek(const gw_outq_t *q)
{
    return q->count ? q->ring[q->head] : NULL;
}

void
gw__outq_pop(gw_outq_t *q)
{
    gw_frame_t *f;

    if (q->count == 0)
        return;
    f = q->ring[q->head];
    q->ring[q->head] = NULL;
    q->head = (q->head + 1) & (q->cap - 1);
    q->count--;
    q->bytes -= f->len;
    gw__frame_unref(f);
}

void
gw__outq_clear(gw_outq_t *q)
{
    while (q->count)
        gw__outq_pop(q);
    q->head = 0;
}

/* Clears the queue and frees its ring; the queue is then empty and
 * reusable (a zeroed gw_outq_t is an empty queue). */
void
gw__outq_free(gw_outq_t *q)
{
    gw__outq_clear(q);
    free(q->ring);
    q->ring = NULL;
    q->cap = 0;
}
