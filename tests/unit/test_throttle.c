/*
 * tests/unit/test_throttle.c: the coalescing throttle (leading fire plus
 * one trailing fire per interval) and the inbound token bucket, driven by
 * a simulated clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "throttle.h"

/* A simulated event loop for one throttle: hits at given times, the armed
 * timer firing when its time comes; counts the events actually sent. */
typedef struct sim {
    gw_throttle_t t;
    int timer_armed;
    uint64_t timer_due;
    uint64_t fires[64];
    int nfires;
} sim_t;

static void
sim_advance(sim_t *s, uint64_t now)
{
    if (s->timer_armed && s->timer_due <= now) {
        s->timer_armed = 0;
        if (gw__throttle_expire(&s->t, s->timer_due))
            s->fires[s->nfires++] = s->timer_due;
    }
}

static int
sim_hit(sim_t *s, uint64_t now)
{
    uint64_t delay = 0;
    int r;

    sim_advance(s, now);
    r = gw__throttle_hit(&s->t, now, &delay);
    if (r == GW_THROTTLE_FIRE)
        s->fires[s->nfires++] = now;
    else if (r == GW_THROTTLE_ARM) {
        assert_false(s->timer_armed);
        assert_true(delay > 0 && delay <= s->t.interval_ms);
        s->timer_armed = 1;
        s->timer_due = now + delay;
    }
    return r;
}

static void
test_throttle_burst(void **state)
{
    sim_t s = {.t = {.interval_ms = 1000}};
    int counts[4] = {0};
    (void)state;

    /* 20 hits within one interval, starting at t=5000 */
    for (int i = 0; i < 20; i++)
        counts[sim_hit(&s, 5000 + (uint64_t)i * 40)]++;
    assert_int_equal(counts[GW_THROTTLE_FIRE], 1);
    assert_int_equal(counts[GW_THROTTLE_ARM], 1);
    assert_int_equal(counts[GW_THROTTLE_QUIET], 18);
    assert_int_equal(s.nfires, 1);
    assert_true(s.timer_armed);
    assert_int_equal(s.timer_due, 6000); /* one interval after the leading fire */
    sim_advance(&s, 10000);
    /* exactly one leading and one trailing */
    assert_int_equal(s.nfires, 2);
    assert_int_equal(s.fires[0], 5000);
    assert_int_equal(s.fires[1], 6000);
    /* a spurious expiry owes nothing */
    assert_int_equal(gw__throttle_expire(&s.t, 10001), 0);
}

static void
test_throttle_spaced(void **state)
{
    sim_t s = {.t = {.interval_ms = 1000}};
    (void)state;

    for (int i = 0; i < 10; i++)
        assert_int_equal(sim_hit(&s, 1000 + (uint64_t)i * 1001), GW_THROTTLE_FIRE);
    assert_int_equal(s.nfires, 10);
    /* exactly one interval apart also fires at once */
    assert_int_equal(sim_hit(&s, 1000 + 9 * 1001 + 1000), GW_THROTTLE_FIRE);
    /* first hit at time 0 fires too (no previous fire) */
    {
        sim_t z = {.t = {.interval_ms = 1000}};
        assert_int_equal(sim_hit(&z, 0), GW_THROTTLE_FIRE);
        assert_int_equal(sim_hit(&z, 999), GW_THROTTLE_ARM);
        assert_int_equal(z.timer_due, 1000);
    }
}

/* After a trailing fire, the next hit waits a whole interval from it: the
 * rate stays at most one per interval under a steady stream. */
static void
test_throttle_steady_stream(void **state)
{
    sim_t s = {.t = {.interval_ms = 1000}};
    (void)state;

    for (uint64_t now = 0; now < 10000; now += 100)
        sim_hit(&s, now);
    sim_advance(&s, 20000);
    assert_int_equal(s.nfires, 11); /* 0, 1000, ..., 10000 */
    for (int i = 0; i < s.nfires; i++)
        assert_int_equal(s.fires[i], (uint64_t)i * 1000);
    for (int i = 1; i < s.nfires; i++)
        assert_true(s.fires[i] - s.fires[i - 1] >= 1000);
}

static void
test_bucket(void **state)
{
    gw_bucket_t b = {0};
    int allowed = 0;
    (void)state;

    /* starts full: a burst of 5 passes, the 6th does not */
    for (int i = 0; i < 10; i++)
        allowed += gw__bucket_take(&b, 1000, 2.0, 5.0);
    assert_int_equal(allowed, 5);
    /* 2 per second: 499 ms is not yet a token, 500 ms is */
    assert_int_equal(gw__bucket_take(&b, 1499, 2.0, 5.0), 0);
    assert_int_equal(gw__bucket_take(&b, 1500, 2.0, 5.0), 1);
    assert_int_equal(gw__bucket_take(&b, 1500, 2.0, 5.0), 0);
    /* a long pause refills only up to the burst */
    allowed = 0;
    for (int i = 0; i < 10; i++)
        allowed += gw__bucket_take(&b, 100000, 2.0, 5.0);
    assert_int_equal(allowed, 5);
    /* a clock that goes back adds nothing */
    assert_int_equal(gw__bucket_take(&b, 50000, 2.0, 5.0), 0);
    assert_int_equal(gw__bucket_take(&b, 100000, 2.0, 5.0), 0);
    /* steady state: over 10 s at 2/s, exactly 20 more pass (125 ms steps
     * add 0.25 tokens, exact in binary floating point) */
    allowed = 0;
    for (uint64_t t = 100125; t <= 110000; t += 125)
        allowed += gw__bucket_take(&b, t, 2.0, 5.0);
    assert_int_equal(allowed, 20);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_throttle_burst),
        cmocka_unit_test(test_throttle_spaced),
        cmocka_unit_test(test_throttle_steady_stream),
        cmocka_unit_test(test_bucket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
