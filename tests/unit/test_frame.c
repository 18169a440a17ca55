/*
 * tests/unit/test_frame.c: shared frames (allocation, reference counts,
 * event framings) and the per-connection send queue.
 *
 * This executable is linked with -Wl,--wrap=free so the test can see the
 * exact moment the gateway code frees a given frame.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

/* The free() watch: test-only state, needed because a --wrap hook takes
 * no context argument. */
static const void *watched;
static int watched_frees;

void __real_free(void *p);
void __wrap_free(void *p);

void
__wrap_free(void *p)
{
    if (p != NULL && p == watched)
        watched_frees++;
    __real_free(p);
}

static void
watch(const void *p)
{
    watched = p;
    watched_frees = 0;
}

static void
test_frame_new(void **state)
{
    size_t sizes[] = {0, 1, 100, 65536};
    (void)state;

    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        gw_frame_t *f = gw__frame_new(sizes[i]);
        assert_non_null(f);
        assert_int_equal(f->refs, 1);
        assert_int_equal(f->len, sizes[i]);
        assert_int_equal(f->born_ns, 0);
        assert_ptr_equal(gw__frame_data(f), f->buf + LWS_PRE);
        /* headroom and payload are writable (ASan checks the bounds) */
        memset(f->buf, 0xAA, LWS_PRE + sizes[i]);
        watch(f);
        gw__frame_ref(f);
        assert_int_equal(f->refs, 2);
        gw__frame_unref(f);
        assert_int_equal(watched_frees, 0);
        assert_int_equal(f->refs, 1);
        gw__frame_unref(f);
        assert_int_equal(watched_frees, 1);
    }
    watch(NULL);
}

typedef struct ev_case {
    enum gw_framing framing;
    const char *event;
    const char *data;
    size_t dlen;
    const char *want;
    const char *offset;
} ev_case_t;

static void
test_frame_event(void **state)
{
    static const char longdata[] = "{\"a\":1}TRAILING-JUNK";
    static const ev_case_t cases[] = {
        {GW_FRAMING_NATIVE, "tradestate", "{\"steamId\":\"1\",\"state\":3}", 25,
         "{\"event\":\"tradestate\",\"data\":{\"steamId\":\"1\",\"state\":3}}", NULL},
        {GW_FRAMING_NATIVE, "pong", NULL, 0, "{\"event\":\"pong\"}", NULL},
        {GW_FRAMING_NATIVE, "reserve-items", NULL, 99, "{\"event\":\"reserve-items\"}", NULL},
        {GW_FRAMING_NATIVE, "canceledtrades", "\"765\"", 5,
         "{\"event\":\"canceledtrades\",\"data\":\"765\"}", NULL},
        {GW_FRAMING_NATIVE, "e", longdata, 7, "{\"event\":\"e\",\"data\":{\"a\":1}}", NULL},
        {GW_FRAMING_SIO, "tradestate", "{\"steamId\":\"1\",\"state\":3}", 25,
         "42[\"tradestate\",{\"steamId\":\"1\",\"state\":3}]", NULL},
        {GW_FRAMING_SIO, "canceledtrades", "\"765\"", 5, "42[\"canceledtrades\",\"765\"]", NULL},
        {GW_FRAMING_SIO, "reserve-items", NULL, 0, "42[\"reserve-items\"]", NULL},
        {GW_FRAMING_SIO, "e", longdata, 7, "42[\"e\",{\"a\":1}]", NULL},
        {GW_FRAMING_SIO, "n", "12", 2, "42[\"n\",12]", NULL},
        /* with an offset (SPEC §9): the last member, the last element */
        {GW_FRAMING_NATIVE, "tradestate", "{\"a\":1}", 7,
         "{\"event\":\"tradestate\",\"data\":{\"a\":1},\"offset\":\"17-3\"}", "17-3"},
        {GW_FRAMING_NATIVE, "reserve-items", NULL, 0,
         "{\"event\":\"reserve-items\",\"offset\":\"17-4\"}", "17-4"},
        {GW_FRAMING_NATIVE, "e", "1", 1, "{\"event\":\"e\",\"data\":1,\"offset\":\"\"}", ""},
        {GW_FRAMING_SIO, "tradestate", "{\"a\":1}", 7, "42[\"tradestate\",{\"a\":1},\"17-3\"]",
         "17-3"},
        {GW_FRAMING_SIO, "reserve-items", NULL, 0, "42[\"reserve-items\",\"9-0\"]", "9-0"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const ev_case_t *c = &cases[i];
        gw_frame_t *f = gw__frame_event(c->framing, c->event, c->data, c->dlen, c->offset);
        const char *text = (const char *)gw__frame_data(f);
        size_t off = c->framing == GW_FRAMING_SIO ? 2 : 0;
        json_t *j;

        assert_int_equal(f->refs, 1);
        assert_int_equal(f->born_ns, 0);
        if (f->len != strlen(c->want) || memcmp(text, c->want, f->len) != 0)
            fail_msg("case %zu: got '%.*s', want '%s'", i, (int)f->len, text, c->want);
        /* and it is JSON of the right shape after the Socket.IO prefix */
        j = json_loadb(text + off, f->len - off, 0, NULL);
        assert_non_null(j);
        if (c->framing == GW_FRAMING_SIO) {
            assert_true(json_is_array(j));
            assert_string_equal(json_string_value(json_array_get(j, 0)), c->event);
            assert_int_equal(json_array_size(j), (c->data ? 2 : 1) + (c->offset ? 1 : 0));
        } else {
            assert_true(json_is_object(j));
            assert_string_equal(json_string_value(json_object_get(j, "event")), c->event);
            assert_int_equal(json_object_get(j, "data") != NULL, c->data != NULL);
            assert_int_equal(json_object_get(j, "offset") != NULL, c->offset != NULL);
        }
        json_decref(j);
        gw__frame_unref(f);
    }
}

static gw_frame_t *
numbered_frame(uint32_t n)
{
    gw_frame_t *f = gw__frame_new(n % 7 + 4);
    memcpy(gw__frame_data(f), &n, sizeof n);
    return f;
}

static uint32_t
frame_number(gw_frame_t *f)
{
    uint32_t n;
    memcpy(&n, gw__frame_data(f), sizeof n);
    return n;
}

/* One frame in three queues: each queue holds one reference, and the frame
 * is freed exactly when the last queue drops it. */
static void
test_outq_shared(void **state)
{
    gw_outq_t q[3] = {{0}};
    gw_frame_t *f = gw__frame_event(GW_FRAMING_NATIVE, "tradestate", "{}", 2, NULL);
    (void)state;

    for (int i = 0; i < 3; i++) {
        gw__outq_push(&q[i], f);
        assert_int_equal(f->refs, (uint32_t)(i + 2));
        assert_int_equal(q[i].bytes, f->len);
        assert_ptr_equal(gw__outq_peek(&q[i]), f);
    }
    watch(f);
    gw__frame_unref(f); /* the builder's reference, as the router drops it */
    assert_int_equal(f->refs, 3);
    gw__outq_pop(&q[1]);
    assert_int_equal(f->refs, 2);
    assert_int_equal(q[1].count, 0);
    assert_int_equal(q[1].bytes, 0);
    assert_null(gw__outq_peek(&q[1]));
    gw__outq_clear(&q[0]);
    assert_int_equal(f->refs, 1);
    assert_int_equal(watched_frees, 0);
    gw__outq_pop(&q[2]);
    assert_int_equal(watched_frees, 1);
    watch(NULL);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(q[i].count, 0);
        gw__outq_free(&q[i]);
        assert_null(q[i].ring);
    }
}

static void
test_outq_order_growth(void **state)
{
    gw_outq_t q = {0};
    uint32_t next_in = 0, next_out = 0;
    size_t bytes = 0;
    (void)state;

    assert_null(gw__outq_peek(&q));
    gw__outq_pop(&q); /* empty: a no-op */
    /* interleave pushes and pops so the ring wraps before it grows */
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < 5 + round * 7; i++) {
            gw_frame_t *f = numbered_frame(next_in++);
            gw__outq_push(&q, f);
            bytes += f->len;
            gw__frame_unref(f);
            assert_int_equal(f->refs, 1);
        }
        assert_int_equal(q.bytes, bytes);
        assert_int_equal(q.count, next_in - next_out);
        assert_true(q.cap >= q.count);
        assert_int_equal(q.cap & (q.cap - 1), 0); /* doubling from 8 */
        assert_true(q.cap >= 8);
        for (int i = 0; i < 3 + round; i++) {
            gw_frame_t *f = gw__outq_peek(&q);
            assert_non_null(f);
            assert_int_equal(frame_number(f), next_out);
            bytes -= f->len;
            next_out++;
            gw__outq_pop(&q);
        }
        assert_int_equal(q.bytes, bytes);
    }
    assert_int_equal(q.cap, 64); /* 8 -> 16 -> 32 -> 64 for at most 50 queued */
    while (q.count) {
        assert_int_equal(frame_number(gw__outq_peek(&q)), next_out++);
        gw__outq_pop(&q);
    }
    assert_int_equal(next_out, next_in);
    assert_int_equal(q.bytes, 0);
    /* the ring never shrinks while the queue lives */
    assert_int_equal(q.cap, 64);
    gw__outq_free(&q);
    assert_int_equal(q.cap, 0);
}

static void
test_outq_free_drops_refs(void **state)
{
    gw_outq_t q = {0};
    gw_frame_t *keep = gw__frame_new(10);
    (void)state;

    for (int i = 0; i < 20; i++)
        gw__outq_push(&q, keep);
    assert_int_equal(keep->refs, 21);
    assert_int_equal(q.bytes, 200);
    gw__outq_clear(&q);
    assert_int_equal(keep->refs, 1);
    assert_int_equal(q.bytes, 0);
    for (int i = 0; i < 3; i++)
        gw__outq_push(&q, keep);
    gw__outq_free(&q);
    assert_int_equal(keep->refs, 1);
    assert_int_equal(q.count, 0);
    /* a freed queue is empty and usable again */
    gw__outq_push(&q, keep);
    assert_int_equal(keep->refs, 2);
    gw__outq_free(&q);
    gw__frame_unref(keep);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_new),
        cmocka_unit_test(test_frame_event),
        cmocka_unit_test(test_outq_shared),
        cmocka_unit_test(test_outq_order_growth),
        cmocka_unit_test(test_outq_free_drops_refs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
