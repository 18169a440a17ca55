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

#include "bus.h"

/*
 * A request (bus.h, docs/requests.md). It is hiredis's privdata for each
 * command it sends, so it lives until hiredis has called back for the last
 * of them, whether or not its owner still wants the answer.
 */
struct bus_req {
    bus_t *bus;
    bus_reply_cb cb;
    void *privdata;
    bus_group_t *group; /* NULL once delivered or cancelled */
    bus_req_t *gprev, *gnext;
    int cancelled;  /* the owner does not want the answer: freed at the reply */
    int delivering; /* its callback is running */
    /* A request of several commands (script.c): called with each reply
     * instead of delivering it. Returns 1 when it has sent the next command
     * (the request stays outstanding), or 0 to deliver `*reply`. */
    int (*step)(bus_req_t *r, redisReply **reply);
    void *ext; /* the step's state, freed with ext_free */
    void (*ext_free)(void *ext);
};

/* A request not yet sent; bus__req_free if no send succeeds. */
bus_req_t *bus__req_new(bus_t *bus, bus_reply_cb cb, void *privdata);
/* Sends one command for `r`: 0, or UV_ENOTCONN (nothing was queued). */
int bus__req_send(bus_req_t *r, const char *fmt, ...);
int bus__req_send_argv(bus_req_t *r, int argc, const char **argv, const size_t *argvlen);
/* Puts a request that was sent into `g` (may be NULL), and gives the
 * handle to `*out` (may be NULL). */
void bus__req_accept(bus_req_t *r, bus_group_t *g, bus_req_t **out);
void bus__req_free(bus_req_t *r);

#endif
