/*
 * gateway/throttle.h: the coalescing throttle of reserve-items and the
 * token bucket of inbound client ops (throttle.c). Pure: time is passed in.
 */
#ifndef COORDHUB_GW_THROTTLE_H
#define COORDHUB_GW_THROTTLE_H

#include <stdint.h>

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
