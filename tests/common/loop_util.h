/*
 * tests/common/loop_util.h: what the C tests that talk to a real Redis share:
 * driving a libuv loop until a flag is reached (bounded), and the port of
 * the ctest "redis" fixture. Header-only, for test executables.
 */
#ifndef COORDHUB_TEST_LOOP_UTIL_H
#define COORDHUB_TEST_LOOP_UTIL_H

#include <stdio.h>
#include <stdlib.h>

#include <uv.h>

static void
loop_util_tick(uv_timer_t *t)
{
    (void)t;
}

/* Runs `loop` until *flag >= want or `ms` pass; returns 1 if it got there. */
static int
run_until(uv_loop_t *loop, const int *flag, int want, unsigned ms)
{
    uv_timer_t t;
    uint64_t deadline;
    int ok;

    uv_timer_init(loop, &t);
    uv_timer_start(&t, loop_util_tick, 5, 5);
    uv_update_time(loop);
    deadline = uv_now(loop) + ms;
    while (*flag < want && uv_now(loop) < deadline)
        uv_run(loop, UV_RUN_ONCE);
    ok = *flag >= want;
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return ok;
}

/* The port written by tests/redis-fixture.sh into $COORDHUB_TEST_REDIS_DIR. */
static int
fixture_port(void)
{
    const char *dir = getenv("COORDHUB_TEST_REDIS_DIR");
    char path[512];
    FILE *f;
    int port = 0;

    assert_non_null(dir);
    snprintf(path, sizeof path, "%s/port", dir);
    f = fopen(path, "r");
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%d", &port), 1);
    fclose(f);
    return port;
}

#endif
