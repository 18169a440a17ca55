/* Internals shared between the bus module's own files. */
#ifndef COORDHUB_BUS_INT_H
#define COORDHUB_BUS_INT_H

#include <hiredis/async.h>
#include <uv.h>

/*
 * Attaches `ac` to `loop` through our adapter. Unlike hiredis 0.14's bundled
 * one, a poll error (a refused or reset connect) is passed on to hiredis as
 * a read/write attempt, so hiredis sees the socket error and calls the
 * connect or disconnect callback. The adapter frees itself when hiredis
 * calls its cleanup hook and the poll handle has closed.
 * Returns 0, or UV_EINVAL if `ac` already has an event library.
 */
int bus__uv_attach(redisAsyncContext *ac, uv_loop_t *loop);

#endif
