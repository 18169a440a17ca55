/*
 * gateway/frame.h: shared, reference-counted WebSocket frames and the
 * per-connection queue of references to them (frame.c). Pure: no lws
 * connection state, no loop.
 */
#ifndef COORDHUB_GW_FRAME_H
#define COORDHUB_GW_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

/*
 * A frame is the bytes of one WebSocket message with LWS_PRE bytes of
 * headroom, built once and shared by reference among every recipient's
 * queue. lws writes the frame header into the headroom; with no extensions
 * a server's header for a given length is identical for every connection,
 * so sharing the headroom on one thread is safe.
 */
typedef struct gw_frame {
    uint32_t refs;
    uint32_t len;     /* payload bytes after the headroom */
    uint64_t born_ns; /* uv_hrtime() when its Redis message arrived, or 0 */
    uint32_t hdr;     /* bytes of WebSocket header encoded before the payload, 0: not yet */
    unsigned char buf[];
} gw_frame_t;

/*
 * The frame as it goes on the wire: a server's text frame (FIN, unmasked)
 * header encoded once into the headroom just before the payload, so that
 * every recipient sends the same bytes. Returns the start and sets *n.
 */
unsigned char *gw__frame_wire(gw_frame_t *f, size_t *n);

/* hdr value of a frame whose payload is already a complete WebSocket frame
 * (a control frame of ours, e.g. a PING): sent as it is. */
#define GW_FRAME_RAW 0xffffffffu

gw_frame_t *gw__frame_new(size_t len); /* refs = 1, payload uninitialised */
static inline unsigned char *
gw__frame_data(gw_frame_t *f)
{
    return f->buf + LWS_PRE;
}
static inline void
gw__frame_ref(gw_frame_t *f)
{
    f->refs++;
}
void gw__frame_unref(gw_frame_t *f);

/* Framings of one event. Native: {"event":NAME,"data":DATA,"offset":O};
 * Socket.IO: 42["NAME",DATA,"O"]. `data` is JSON text or NULL for no data;
 * `offset` (SPEC §9) NULL for none. */
enum gw_framing { GW_FRAMING_NATIVE = 0, GW_FRAMING_SIO = 1, GW_FRAMING_COUNT };
gw_frame_t *gw__frame_event(enum gw_framing framing, const char *event, const char *data,
                            size_t dlen, const char *offset);
/* A frame holding `n` bytes of `text` as they are (one reference). */
gw_frame_t *gw__frame_text(const char *text, size_t n);

/* A per-connection send queue of frame references: a ring that grows by
 * doubling and never shrinks while the connection lives, so the fan-out
 * path allocates nothing per recipient once warm. */
typedef struct gw_outq {
    gw_frame_t **ring;
    uint32_t cap, head, count;
    size_t bytes;
} gw_outq_t;

void gw__outq_push(gw_outq_t *q, gw_frame_t *f); /* takes a new reference */
/* Puts `f` before everything queued (a held connection's recovery, which
 * goes in front of the live events queued meanwhile); a new reference. */
void gw__outq_push_front(gw_outq_t *q, gw_frame_t *f);
gw_frame_t *gw__outq_peek(const gw_outq_t *q);
void gw__outq_pop(gw_outq_t *q); /* drops the queue's reference */
void gw__outq_clear(gw_outq_t *q);
void gw__outq_free(gw_outq_t *q);

#endif
