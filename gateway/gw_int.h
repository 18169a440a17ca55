/*
 * Internals shared between the gateway module's own files (and its white-box
 * unit tests). Everything here except the lws glue is pure: the room
 * registry, shared frames, the coalescing throttle. The parsers are the
 * `wire` library (wire.h).
 */
#ifndef COORDHUB_GW_INT_H
#define COORDHUB_GW_INT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>
#include <libwebsockets.h>

#include "wire.h"

/* Results of the gateway's own checks: >= 0 ok, negative = error. */
#define GW_OK 0
#define GW_EPARSE (-1)

/* ---- shared frames (frame.c) ---- */

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

/* Framings of one event. Native: {"event":NAME,"data":DATA}; Socket.IO:
 * 42["NAME",DATA]. `data` is JSON text or NULL for no data. */
enum gw_framing { GW_FRAMING_NATIVE = 0, GW_FRAMING_SIO = 1, GW_FRAMING_COUNT };
gw_frame_t *gw__frame_event(enum gw_framing framing, const char *event, const char *data,
                            size_t dlen);

/* A per-connection send queue of frame references: a ring that grows by
 * doubling and never shrinks while the connection lives, so the fan-out
 * path allocates nothing per recipient once warm. */
typedef struct gw_outq {
    gw_frame_t **ring;
    uint32_t cap, head, count;
    size_t bytes;
} gw_outq_t;

void gw__outq_push(gw_outq_t *q, gw_frame_t *f); /* takes a new reference */
gw_frame_t *gw__outq_peek(const gw_outq_t *q);
void gw__outq_pop(gw_outq_t *q); /* drops the queue's reference */
void gw__outq_clear(gw_outq_t *q);
void gw__outq_free(gw_outq_t *q);

/* ---- rooms (rooms.c) ---- */

/* A room member: embedded in whatever owns the connection. */
typedef struct gw_member {
    struct gw_membership *rooms; /* this member's memberships */
    void *owner;
} gw_member_t;

typedef struct gw_rooms gw_rooms_t;

gw_rooms_t *gw__rooms_new(void);
/* Frees the registry; every member must have left. */
void gw__rooms_free(gw_rooms_t *r);
/* Returns 0 when joined, 1 when already a member. */
int gw__rooms_join(gw_rooms_t *r, const char *room, size_t len, gw_member_t *m);
/* Returns 0 when left, GW_EPARSE when not a member. */
int gw__rooms_leave(gw_rooms_t *r, const char *room, size_t len, gw_member_t *m);
void gw__rooms_leave_all(gw_rooms_t *r, gw_member_t *m);
/* Members of `room` (0 if no such room). */
size_t gw__rooms_size(const gw_rooms_t *r, const char *room, size_t len);
size_t gw__rooms_count(const gw_rooms_t *r);
int gw__rooms_is_member(const gw_rooms_t *r, const char *room, size_t len, const gw_member_t *m);
/* Calls `fn(ctx, owner)` for each member; `fn` must not join or leave. */
size_t gw__rooms_visit(gw_rooms_t *r, const char *room, size_t len,
                       void (*fn)(void *ctx, void *owner), void *ctx);

/* ---- coalescing throttle (throttle.c) ---- */

/* At most one fire per interval: the first hit fires at once (leading),
 * hits during the interval collapse into one trailing fire at its end. */
typedef struct gw_throttle {
    uint64_t interval_ms;
    uint64_t last_fire_ms;
    int fired;   /* fired at least once */
    int pending; /* a trailing fire is owed */
} gw_throttle_t;

enum { GW_THROTTLE_FIRE = 1, GW_THROTTLE_ARM = 2, GW_THROTTLE_QUIET = 3 };

/* A hit at `now`: FIRE (fire now), ARM (arm a timer for `*delay_ms`, then
 * call gw__throttle_expire), or QUIET (a trailing fire is already owed). */
int gw__throttle_hit(gw_throttle_t *t, uint64_t now, uint64_t *delay_ms);
/* The armed timer ran out: returns 1 to fire the trailing event now. */
int gw__throttle_expire(gw_throttle_t *t, uint64_t now);

/* ---- token bucket for inbound ops (throttle.c) ---- */

typedef struct gw_bucket {
    double tokens;
    uint64_t last_ms;
    int init;
} gw_bucket_t;

/* Takes one token; returns 1 if allowed, 0 if over `rate`/s with `burst`. */
int gw__bucket_take(gw_bucket_t *b, uint64_t now_ms, double rate, double burst);

#endif
