/*
 * gateway/throttle.c: time-based rate shaping with the clock passed in, so
 * it is pure and testable. The coalescing throttle turns bursts of a
 * broadcast trigger (itemReserved) into at most one event per interval,
 * leading and trailing; the token bucket limits a client's inbound ops.
 */
#include "throttle.h"

int
gw__throttle_hit(gw_throttle_t *t, uint64_t now, uint64_t *delay_ms)
{
    uint64_t due;

    if (t->pending)
        return GW_THROTTLE_QUIET;
    due = t->last_fire_ms + t->interval_ms;
    if (!t->fired || now >= due) {
        t->fired = 1;
        t->last_fire_ms = now;
        return GW_THROTTLE_FIRE;
    }
    t->pending = 1;
    *delay_ms = due - now;
    return GW_THROTTLE_ARM;
}

/*
 * The trailing fire. It counts as a fire at `now`, so a hit right after it
 * is held for a whole interval again. A timer that runs out with nothing
 * owed (a spurious call) fires nothing.
 */
int
gw__throttle_expire(gw_throttle_t *t, uint64_t now)
{
    if (!t->pending)
        return 0;
    t->pending = 0;
    t->fired = 1;
    t->last_fire_ms = now;
    return 1;
}

/*
 * A token bucket that starts full at `burst` and refills at `rate` tokens per
 * second of elapsed milliseconds, capped at `burst`. A clock that goes back
 * adds nothing.
 */
int
gw__bucket_take(gw_bucket_t *b, uint64_t now_ms, double rate, double burst)
{
    if (!b->init) {
        b->init = 1;
        b->tokens = burst;
        b->last_ms = now_ms;
    } else if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * rate / 1000.0;
        if (b->tokens > burst)
            b->tokens = burst;
        b->last_ms = now_ms;
    }
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return 1;
    }
    return 0;
}
