/*
 * bus/uvadapter.c: hiredis async <-> libuv, written for our needs.
 *
 * Why not hiredis' adapters/libuv.h: in 0.14.1 its poll callback returns
 * early on a non-zero status, so a connect refused by a dead Redis is never
 * reported and the hub would wait forever instead of reconnecting.
 */
#include "bus_int.h"
#include "util.h"

typedef struct adapter {
    redisAsyncContext *ac; /* NULL once hiredis called cleanup */
    uv_poll_t poll;
    int events;  /* what hiredis asked for */
    int polling; /* what the poll handle watches now */
} adapter_t;

static void
on_poll(uv_poll_t *h, int status, int events)
{
    adapter_t *a = h->data;

    /* On error, let hiredis try the operations it asked for: the read or
     * write fails, hiredis records the error and runs its callbacks. */
    if (status < 0) {
        events = a->events;
        a->polling = 0; /* libuv stops a handle it reports an error on */
    }
    if (a->ac != NULL && (events & UV_READABLE))
        redisAsyncHandleRead(a->ac);
    /* hiredis may have freed the context in the read: cleanup cleared a->ac
     * but the adapter lives until its handle has closed. */
    if (a->ac != NULL && (events & UV_WRITABLE))
        redisAsyncHandleWrite(a->ac);
}

/*
 * hiredis asks for reads again after every read. uv_poll_start with the
 * mask already watched is not free: libuv drops the descriptor from epoll
 * and adds it back (two epoll_ctl calls per Redis message), so the handle
 * is touched only when the mask changes.
 */
static void
update(adapter_t *a)
{
    if (a->events == a->polling)
        return;
    if (a->events)
        uv_poll_start(&a->poll, a->events, on_poll);
    else
        uv_poll_stop(&a->poll);
    a->polling = a->events;
}

static void
add_read(void *p)
{
    adapter_t *a = p;
    a->events |= UV_READABLE;
    update(a);
}

static void
del_read(void *p)
{
    adapter_t *a = p;
    a->events &= ~UV_READABLE;
    update(a);
}

static void
add_write(void *p)
{
    adapter_t *a = p;
    a->events |= UV_WRITABLE;
    update(a);
}

static void
del_write(void *p)
{
    adapter_t *a = p;
    a->events &= ~UV_WRITABLE;
    update(a);
}

static void
on_close(uv_handle_t *h)
{
    free(h->data);
}

static void
cleanup(void *p)
{
    adapter_t *a = p;
    a->ac = NULL;
    a->events = a->polling = 0;
    uv_close((uv_handle_t *)&a->poll, on_close);
}

int
bus__uv_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    adapter_t *a;

    if (ac->ev.data != NULL)
        return UV_EINVAL;
    a = util_calloc(1, sizeof *a);
    if (uv_poll_init(loop, &a->poll, ac->c.fd) != 0) {
        free(a);
        return UV_EINVAL;
    }
    a->ac = ac;
    a->poll.data = a;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    ac->ev.data = a;
    return 0;
}
