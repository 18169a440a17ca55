/*
 * bus/uvadapter.c: hiredis async <-> libuv, written for our needs.
 *
 * Why not hiredis' adapters/libuv.h: in 0.14.1 its poll callback returns
 * early on a non-zero status, so a connect refused by a dead Redis is never
 * reported and the hub would wait forever instead of reconnecting.
 *
 * The system calls per command are one write (shared by every command
 * queued in the same loop iteration) and one read (likewise for replies),
 * and no epoll_ctl: the poll handle watches reads for the connection's
 * whole life and adds writes only when the kernel did not take everything.
 * hiredis asks for write interest after every command and drops it after
 * every write; polling for it would cost libuv four epoll_ctl per command
 * (uv_poll_start on a live handle is EPOLL_CTL_DEL, then EPOLL_CTL_ADD at
 * the next poll). Instead a connected context's output is written from an
 * idle callback, which runs before the loop next polls: everything the
 * current iteration queued (the commands of every request answered in it)
 * goes in one write().
 */
#include "bus_int.h"
#include "util.h"

typedef struct adapter {
    redisAsyncContext *ac; /* NULL once hiredis called cleanup */
    uv_poll_t poll;
    uv_idle_t flush; /* active while output waits for the next flush */
    int events;      /* what hiredis asked for */
    int polling;     /* what the poll handle watches now */
    int blocked;     /* the kernel took part of a write: wait for POLLOUT */
    int in_flush;
    int open; /* handles not yet reported closed */
} adapter_t;

static int
connected(const adapter_t *a)
{
    return a->ac != NULL && (a->ac->c.flags & REDIS_CONNECTED);
}

static void on_poll(uv_poll_t *h, int status, int events);

/*
 * What the poll handle should watch: reads when hiredis wants them; writes
 * while connecting (the first writeable is the connect's outcome, and
 * hiredis checks it) and when a write was partial.
 */
static void
watch(adapter_t *a)
{
    int want = a->events & UV_READABLE;

    if ((a->events & UV_WRITABLE) && (!connected(a) || a->blocked))
        want |= UV_WRITABLE;
    if (want == a->polling)
        return;
    if (want)
        uv_poll_start(&a->poll, want, on_poll);
    else
        uv_poll_stop(&a->poll);
    a->polling = want;
}

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
     * but the adapter lives until its handles have closed. */
    if (a->ac != NULL && (events & UV_WRITABLE)) {
        a->blocked = 0; /* hiredis asks for writes again if still short */
        a->in_flush = 1;
        redisAsyncHandleWrite(a->ac);
        a->in_flush = 0;
        if (a->ac != NULL && (a->events & UV_WRITABLE))
            a->blocked = 1;
        if (a->ac != NULL)
            watch(a);
    }
}

static void
on_flush(uv_idle_t *h)
{
    adapter_t *a = h->data;

    uv_idle_stop(&a->flush);
    if (!connected(a) || !(a->events & UV_WRITABLE) || a->blocked)
        return;
    a->in_flush = 1;
    redisAsyncHandleWrite(a->ac); /* may free the context (cleanup) */
    a->in_flush = 0;
    if (a->ac == NULL)
        return;
    if (a->events & UV_WRITABLE) /* partial: the rest when the kernel can take it */
        a->blocked = 1;
    watch(a);
}

static void
add_read(void *p)
{
    adapter_t *a = p;
    a->events |= UV_READABLE;
    watch(a);
}

static void
del_read(void *p)
{
    adapter_t *a = p;
    a->events &= ~UV_READABLE;
    watch(a);
}

static void
add_write(void *p)
{
    adapter_t *a = p;
    a->events |= UV_WRITABLE;
    if (a->in_flush)
        return; /* the write in progress decides what comes next */
    if (connected(a) && !a->blocked)
        uv_idle_start(&a->flush, on_flush); /* no-op when already due */
    else
        watch(a);
}

static void
del_write(void *p)
{
    adapter_t *a = p;
    a->events &= ~UV_WRITABLE;
    a->blocked = 0;
    if (!a->in_flush)
        watch(a);
}

static void
on_close(uv_handle_t *h)
{
    adapter_t *a = h->data;

    if (--a->open == 0)
        free(a);
}

static void
cleanup(void *p)
{
    adapter_t *a = p;
    a->ac = NULL;
    a->events = a->polling = 0;
    uv_close((uv_handle_t *)&a->poll, on_close);
    uv_close((uv_handle_t *)&a->flush, on_close);
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
    uv_idle_init(loop, &a->flush);
    a->open = 2;
    a->ac = ac;
    a->poll.data = a;
    a->flush.data = a;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    ac->ev.data = a;
    return 0;
}
