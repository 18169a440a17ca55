/*
 * gateway/front.c: the hub's HTTP/1.1 front.
 *
 * The hub listens here, not in lws: every connection starts as ours. Its
 * requests are parsed by wire/http1.c, their framing checked, and each is
 * handed to routes.c once its body is in; its answer (http.c) is written at
 * once, headers and body in one send. Requests are served one at a time
 * per connection, in order: bytes that come while an answer is owed
 * (pipelined requests) wait in the connection's buffer, and are read the
 * moment the answer is out. A WebSocket upgrade hands the socket to lws,
 * with the bytes read so far (lws_adopt_socket_vhost_readbuf): lws serves
 * WebSockets only.
 *
 * Why not lws for HTTP too (issue 20, docs/libraries.md): lws 4.1's libuv
 * glue turns every change of a socket's interest into an epoll_ctl pair,
 * seven per keep-alive request, and its HTTP/1.1 pipelining reads freed
 * input. Here a connection is watched for input from its accept to its
 * close; it is watched for output only while the kernel holds back part of
 * an answer, and not for input only while its buffer is full or after its
 * FIN.
 *
 * Deadlines, on three lists of one fixed duration each (deadline.h): a
 * request (the first one from the accept) must be complete within
 * READ_MS of its first byte; an answer the kernel could not take at once
 * must make progress every READ_MS; a keep-alive connection may idle
 * IDLE_MS between requests; a connection closing after its answer reads
 * and drops the client's last bytes for LINGER_MS (so that they do not
 * turn the close into a reset that destroys the answer). An answer owed
 * has no deadline here: what it waits for (Redis, a lock's wait_ms,
 * Engine.IO's ping) bounds it. While input is paused (BUFFERED_MAX) on a
 * request that a leaving client cancels, the socket is still watched for
 * the client's FIN (UV_DISCONNECT).
 *
 * Ownership: the front owns each connection (gw_fconn_t) and the request
 * state in it (`c`, the gw_conn_t routes.c, api.c and polling.c serve);
 * one close path (fc_close) cancels that state and closes the handle; the
 * memory goes in the handle's close callback, so a connection closed
 * during a callback stays readable until the loop's closing phase.
 */
#include "front.h"

#include "api.h"
#include "http.h"
#include "polling.h"
#include "routes.h"
#include "writer.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HEAD_MAX (16 * 1024)     /* a request's head; 431 beyond */
#define RX_SIZE (64 * 1024)      /* one read */
#define BUFFERED_MAX (64 * 1024) /* input kept while an answer is owed */
#define PATH_BYTES 2048          /* a decoded path; 414 beyond */
#define READ_MS 10000
#define IDLE_MS 5000
#define LINGER_MS 2000
#define ACCEPT_BATCH 64
#define ACCEPT_PAUSE_MS 100 /* after EMFILE: the descriptors some close frees */
#define BACKLOG 4096

typedef struct gw_fconn {
    gw_t *gw;
    int fd; /* -1 once handed to lws */
    uv_poll_t poll;
    int events;  /* what `poll` watches (UV_READABLE | UV_WRITABLE) */
    gw_conn_t c; /* the request: routes.c, api.c, polling.c */
    char *in;    /* input not handled yet (a partial or pipelined request) */
    size_t inlen, incap;
    /* the request being read: bytes of fc->in known to hold no complete
     * head yet, or (need > 0) the head is in and its whole is `need` bytes */
    size_t scanned, need;
    char *out; /* answer bytes the kernel has not taken yet */
    size_t outlen, outoff;
    gw_snode_t dl; /* on one of the front's deadline lists, or none */
    enum { DL_NONE = 0, DL_REQUEST, DL_OUTPUT, DL_IDLE, DL_LINGER } dl_kind;
    unsigned owed : 1;        /* a request handed to routes.c, not answered yet */
    unsigned busy : 1;        /* inside advance(): it settles the connection itself */
    unsigned eof : 1;         /* the client's FIN was read */
    unsigned close_after : 1; /* close once the answer is out */
    unsigned lingering : 1;   /* our FIN is sent; the client's last bytes are dropped */
    unsigned continued : 1;   /* "100 Continue" sent for the request being read */
    unsigned begun : 1;       /* its head is in: an answer is owed (http.c counts it) */
    unsigned broken : 1;      /* a write failed: closed by the next settle */
    unsigned closed : 1;
    unsigned queued : 1;            /* on front.resume */
    struct gw_fconn *next, *prev;   /* front.conns */
    struct gw_fconn *rnext, *rprev; /* front.resume */
} gw_fconn_t;

static void fc_close(gw_fconn_t *fc);
static void settle(gw_fconn_t *fc);

/* ---- deadlines ---- */

static void
on_deadline(uv_timer_t *t)
{
    gw_t *gw = t->data;
    gw_front_t *f = &gw->front;
    gw_slist_t *lists[] = {&f->reading, &f->idle, &f->linger};
    uint64_t now = uv_now(gw->loop), next = 0;
    gw_snode_t *n;

    for (size_t i = 0; i < 3; i++) {
        while ((n = gw__sched_due(lists[i], now)) != NULL) {
            gw_fconn_t *fc = UTIL_CONTAINER_OF(n, gw_fconn_t, dl);
            if (fc->dl_kind == DL_REQUEST || fc->dl_kind == DL_OUTPUT)
                LOG_DEBUG("http", "%s within %d ms: closed",
                          fc->dl_kind == DL_REQUEST ? "a request not complete"
                                                    : "an answer not taken",
                          READ_MS);
            fc_close(fc); /* takes it off the list */
        }
        if (lists[i]->head != NULL && (next == 0 || lists[i]->head->at < next))
            next = lists[i]->head->at;
    }
    f->timer_at = next;
    if (next != 0)
        uv_timer_start(&f->timer, on_deadline, next - now, 0);
}

static void
no_deadline(gw_fconn_t *fc)
{
    gw__sched_cancel(&fc->dl);
    fc->dl_kind = DL_NONE;
}

static void
deadline(gw_fconn_t *fc, int kind)
{
    gw_front_t *f = &fc->gw->front;
    gw_slist_t *l = kind == DL_IDLE ? &f->idle : kind == DL_LINGER ? &f->linger : &f->reading;
    unsigned ms = kind == DL_IDLE ? IDLE_MS : kind == DL_LINGER ? LINGER_MS : READ_MS;
    uint64_t now = uv_now(fc->gw->loop), at = now + ms;

    fc->dl_kind = kind;
    gw__sched_put(l, &fc->dl, at);
    if (f->timer_at == 0 || at < f->timer_at) {
        f->timer_at = at;
        uv_timer_start(&f->timer, on_deadline, ms, 0);
    }
}

/* ---- the socket ---- */

static void on_io(uv_poll_t *p, int status, int events);

/* Watches what the connection's state calls for, and nothing when that
 * has not changed (libuv 1.44's uv_poll_start is an epoll_ctl pair). */
static void
watch(gw_fconn_t *fc)
{
    int ev = 0, pending_out = fc->outoff < fc->outlen;

    if (fc->closed)
        return;
    if (!fc->eof && (fc->lingering || fc->inlen < BUFFERED_MAX || !(fc->owed || pending_out)))
        ev |= UV_READABLE;
    else if (!fc->eof && fc->owed && fc->c.http.leave_cancels)
        ev |= UV_DISCONNECT; /* input paused: the client's FIN still cancels */
    if (pending_out)
        ev |= UV_WRITABLE;
    if (ev == fc->events)
        return;
    fc->events = ev;
    if (ev == 0)
        uv_poll_stop(&fc->poll);
    else
        uv_poll_start(&fc->poll, ev, on_io);
}

static void
unqueue(gw_fconn_t *fc)
{
    gw_front_t *f = &fc->gw->front;

    if (!fc->queued)
        return;
    if (fc->rprev)
        fc->rprev->rnext = fc->rnext;
    else
        f->resume = fc->rnext;
    if (fc->rnext)
        fc->rnext->rprev = fc->rprev;
    fc->queued = 0;
    fc->rnext = fc->rprev = NULL;
}

/* Settled at the loop's next check (gw__front_resume): an answer given
 * outside advance(). */
static void
enqueue(gw_fconn_t *fc)
{
    gw_front_t *f = &fc->gw->front;

    if (fc->queued || fc->busy || fc->closed)
        return;
    fc->queued = 1;
    fc->rprev = NULL;
    fc->rnext = f->resume;
    if (f->resume)
        f->resume->rprev = fc;
    f->resume = fc;
    gw__out_wake(fc->gw); /* the check must come before the loop blocks */
}

static void
on_closed(uv_handle_t *h)
{
    gw_fconn_t *fc = h->data;

    if (fc->fd >= 0)
        close(fc->fd);
    free(fc->in);
    free(fc->out);
    free(fc);
}

/* The one close path: the request's state is cancelled (what it waits for
 * never calls back), the socket closed, the memory freed by the loop. */
static void
fc_close(gw_fconn_t *fc)
{
    gw_t *gw = fc->gw;
    gw_front_t *f = &gw->front;

    if (fc->closed)
        return;
    gw__api_reset(&fc->c);
    gw__poll_reset(gw, &fc->c);
    gw__http_closed(gw, &fc->c);
    fc->closed = 1;
    gw__sched_cancel(&fc->dl);
    unqueue(fc);
    if (fc->prev)
        fc->prev->next = fc->next;
    else
        f->conns = fc->next;
    if (fc->next)
        fc->next->prev = fc->prev;
    f->nconns--;
    uv_close((uv_handle_t *)&fc->poll, on_closed); /* stops watching now */
}

/* Keeps `n` bytes at `p` (what advance() left of a read) as the start of
 * the connection's input; `p` may point into fc->in itself. */
static void
keep(gw_fconn_t *fc, const char *p, size_t n)
{
    if (n == 0) {
        free(fc->in);
        fc->in = NULL;
        fc->inlen = fc->incap = 0;
        return;
    }
    if (fc->in != NULL && p >= fc->in && p < fc->in + fc->inlen) {
        memmove(fc->in, p, n);
    } else {
        char *in = util_malloc(n);
        memcpy(in, p, n);
        free(fc->in);
        fc->in = in;
        fc->incap = n;
    }
    fc->inlen = n;
}

static void
append(gw_fconn_t *fc, const char *p, size_t n)
{
    if (fc->inlen + n > fc->incap) { /* geometric: a body read in small pieces */
        fc->incap = fc->inlen + n > 2 * fc->incap ? fc->inlen + n : 2 * fc->incap;
        fc->in = util_realloc(fc->in, fc->incap);
    }
    memcpy(fc->in + fc->inlen, p, n);
    fc->inlen += n;
}

/* Sends what is left of the answer. 0, or -1 when the connection failed. */
static int
flush_out(gw_fconn_t *fc)
{
    while (fc->outoff < fc->outlen) {
        ssize_t n = send(fc->fd, fc->out + fc->outoff, fc->outlen - fc->outoff,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        }
        fc->outoff += (size_t)n;
        deadline(fc, DL_OUTPUT); /* the client takes its answer: time again */
    }
    free(fc->out);
    fc->out = NULL;
    fc->outlen = fc->outoff = 0;
    return 0;
}

static void
write_bytes(gw_fconn_t *fc, const void *bytes, size_t len)
{
    if (fc->broken)
        return;
    if (fc->outoff < fc->outlen) { /* behind an answer still going out */
        fc->out = util_realloc(fc->out, fc->outlen + len);
        memcpy(fc->out + fc->outlen, bytes, len);
        fc->outlen += len;
        return;
    }
    for (;;) {
        ssize_t n = send(fc->fd, bytes, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0 && (size_t)n == len)
            return;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            fc->broken = 1;
            return;
        }
        if (n < 0)
            n = 0;
        /* the rest when the socket drains (watch: UV_WRITABLE) */
        fc->out = util_malloc(len - (size_t)n);
        memcpy(fc->out, (const char *)bytes + n, len - (size_t)n);
        fc->outlen = len - (size_t)n;
        fc->outoff = 0;
        return;
    }
}

/* ---- requests ---- */

/* A request refused before routes.c sees it (its framing, its head): the
 * connection closes after the answer, since what follows cannot be told
 * apart from this request's body. */
static void
refuse(gw_fconn_t *fc, const wire_http_head_t *h, int status, const char *code, const char *message)
{
    if (!fc->begun)
        gw__http_begin(fc->gw, &fc->c, h != NULL && h->method == GW_M_HEAD);
    fc->begun = 0;
    fc->owed = 1;
    gw__routes_refuse(fc->gw, &fc->c, h ? h->path : (wire_span_t){NULL, 0}, status, code, message);
}

/* A WebSocket upgrade: the socket and the bytes from its request line on
 * go to lws. */
static void
handoff(gw_fconn_t *fc, const char *p, size_t n)
{
    gw_t *gw = fc->gw;
    int fd = fc->fd;

    fc->fd = -1;  /* lws's from here on: it closes it */
    fc_close(fc); /* no longer watched: lws watches it now */
    if (lws_adopt_socket_vhost_readbuf(gw->vhost, fd, p, n) == NULL)
        LOG_DEBUG("http", "lws did not take an upgrade (it closed the socket)");
    /* lws arms its timeouts, and reads input left in its buffer, from
     * its own idle handler, which only its poll callbacks start */
    gw__out_wake_lws(gw);
}

/* Hands a complete, well-framed request to routes.c. */
static void
dispatch(gw_fconn_t *fc, const wire_http_head_t *h, const char *body)
{
    gw_t *gw = fc->gw;
    gw_conn_t *c = &fc->c;
    char path[PATH_BYTES];
    gw_req_t r;

    fc->begun = 0;
    fc->owed = 1;
    c->http.close = !h->keep_alive || gw->shutting_down;
    c->http.keep_alive_header = h->keep_alive && h->minor == 0;
    if (h->path.p == NULL) { /* "*" (CONNECT was refused before) */
        gw__http_error(c, 400, "bad_request", "no route takes the request target *");
        return;
    }
    if (h->path.n >= PATH_BYTES) {
        gw__http_error(c, 414, "uri_too_long", "path too long");
        return;
    }
    if (wire_http_decode(h->path, path, sizeof path) < 0) {
        /* a %XX that is not one, or that decodes to a control character:
         * POST /v1/locks/ctl%0Ab must not take the lock "ctl" */
        gw__http_error(c, 400, "bad_request", "malformed request target");
        return;
    }
    r.method = h->method;
    r.path = path;
    r.query = h->query;
    r.authorization = h->authorization;
    r.origin = h->origin;
    r.ac_request_headers = h->ac_request_headers;
    r.has_length = h->has_length;
    r.body = body;
    r.len = (size_t)h->length;
    gw__routes_request(gw, c, &r);
}

/*
 * The request at `p` (`n` bytes buffered): refused, handed to lws, or
 * dispatched once complete. Returns the bytes it took (the whole request),
 * or 0 when it is not complete yet.
 */
static size_t
next_request(gw_fconn_t *fc, const char *p, size_t n)
{
    wire_http_head_t h;
    const char *why;
    size_t total, from;
    int rc;

    /* a read of a few bytes costs a look at those bytes, not at the whole
     * head or body again (a client that trickles them in) */
    if (fc->need > 0 && n < fc->need)
        return 0;
    if (fc->scanned > 0 && fc->need == 0 && n < HEAD_MAX) {
        from = fc->scanned > 3 ? fc->scanned - 3 : 0;
        if (memmem(p + from, n - from, "\r\n\r\n", 4) == NULL) {
            fc->scanned = n;
            return 0;
        }
    }
    rc = wire_http_parse(p, n, HEAD_MAX, &h, &why);
    if (rc == 0) {
        fc->scanned = n;
        return 0;
    }
    if (rc < 0) {
        LOG_DEBUG("http", "request refused: %s", why);
        refuse(fc, NULL, -rc, rc == -WIRE_HTTP_TOO_LARGE ? "header_too_large" : "bad_request", why);
        return n;
    }
    if (h.websocket && h.method == GW_M_GET) {
        handoff(fc, p + h.skip, n - h.skip); /* lws takes no empty line first */
        return n;
    }
    /* A method no route has is refused before its body's framing: the
     * connection closes after the answer, whatever follows */
    if (h.method == GW_M_OTHER) {
        refuse(fc, &h, 501, "not_implemented", "unknown method");
        return n;
    }
    if (h.method == GW_M_CONNECT) {
        refuse(fc, &h, 405, "method_not_allowed", "the hub tunnels nothing");
        return n;
    }
    if (h.chunked) {
        refuse(fc, &h, 411, "length_required",
               "request bodies need Content-Length (no chunked encoding)");
        return n;
    }
    if (h.length > GW_BODY_MAX) {
        refuse(fc, &h, 413, "too_large", "request body over 1 MiB");
        return n;
    }
    /* owed from its head on: the graceful stop waits for its body */
    if (!fc->begun) {
        gw__http_begin(fc->gw, &fc->c, h.method == GW_M_HEAD);
        fc->begun = 1;
    }
    total = h.head_len + (size_t)h.length;
    if (n < total) {
        fc->need = total;
        if (h.expect_continue && !fc->continued && h.minor == 1) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            fc->continued = 1;
            write_bytes(fc, cont, sizeof cont - 1);
        }
        return 0;
    }
    fc->continued = 0;
    dispatch(fc, &h, p + h.head_len);
    return total;
}

/* Serves the requests complete in [p, p + n), in order, while none is
 * owed. Returns the bytes taken. */
static size_t
advance(gw_fconn_t *fc, const char *p, size_t n)
{
    size_t used = 0, got;

    fc->busy = 1;
    while (used < n && !fc->closed && !fc->owed && !fc->close_after && !fc->broken &&
           fc->outoff == fc->outlen) {
        got = next_request(fc, p + used, n - used);
        if (got == 0)
            break;
        used += got;
        fc->scanned = fc->need = 0; /* the next request starts there */
    }
    fc->busy = 0;
    return used;
}

/* Input arrived: `n` bytes at `p` (the shared read buffer). */
static void
feed(gw_fconn_t *fc, const char *p, size_t n)
{
    size_t used;

    if (fc->lingering)
        return; /* dropped */
    if (fc->inlen == 0) {
        used = advance(fc, p, n);
        if (!fc->closed)
            keep(fc, p + used, n - used);
    } else {
        append(fc, p, n);
        used = advance(fc, fc->in, fc->inlen);
        if (!fc->closed)
            keep(fc, fc->in + used, fc->inlen - used);
    }
    settle(fc);
}

/* After our FIN: the client's last bytes are read and dropped until its
 * own FIN or LINGER_MS. */
static void
linger(gw_fconn_t *fc)
{
    if (fc->eof || shutdown(fc->fd, SHUT_WR) != 0) {
        fc_close(fc);
        return;
    }
    fc->lingering = 1;
    keep(fc, NULL, 0);
    deadline(fc, DL_LINGER);
    watch(fc);
}

/* Drops empty lines between requests (RFC 9112 §2.2), so that a client
 * that ends its request with an extra CRLF idles as any other. */
static void
drop_empty_lines(gw_fconn_t *fc)
{
    size_t i = 0;

    while (i + 1 < fc->inlen && fc->in[i] == '\r' && fc->in[i + 1] == '\n')
        i += 2;
    if (i > 0) {
        keep(fc, fc->in + i, fc->inlen - i);
        fc->scanned = 0;
    }
}

/*
 * Puts the connection in the state its flags call for, once nothing of
 * ours runs on it: closed after a failure, left alone while an answer is
 * owed, given time while its answer goes out, closed (or lingering) after
 * its last answer, else waiting for its next request (buffered ones are
 * served first). From the graceful stop on, a connection with no request
 * begun is closed instead of waiting.
 */
static void
settle(gw_fconn_t *fc)
{
    int stopping = fc->gw->shutting_down;

    for (;;) {
        if (fc->closed || fc->lingering)
            return;
        if (fc->broken) {
            fc_close(fc);
            return;
        }
        if (fc->owed) {
            no_deadline(fc); /* what it waits for has its own bounds */
            watch(fc);
            return;
        }
        if (fc->outoff < fc->outlen) { /* the client must take its answer in time */
            if (fc->dl_kind != DL_OUTPUT)
                deadline(fc, DL_OUTPUT);
            watch(fc);
            return;
        }
        if (fc->close_after) {
            linger(fc);
            return;
        }
        drop_empty_lines(fc);
        if (fc->inlen == 0) {
            if (fc->eof) {
                fc_close(fc);
                return;
            }
            if (stopping) { /* nothing unread: the close is a FIN */
                fc_close(fc);
                return;
            }
            deadline(fc, DL_IDLE);
            watch(fc);
            return;
        }
        {
            size_t used = advance(fc, fc->in, fc->inlen);
            if (fc->closed)
                return;
            keep(fc, fc->in + used, fc->inlen - used);
            if (used > 0)
                continue; /* served some: again, for what it became */
        }
        if (fc->eof) { /* a request cut short by the client's FIN */
            fc_close(fc);
            return;
        }
        if (stopping && !fc->begun) { /* a request not begun when the hub stops */
            fc_close(fc);
            return;
        }
        if (fc->dl_kind != DL_REQUEST) /* counted from the request's first byte */
            deadline(fc, DL_REQUEST);
        watch(fc);
        return;
    }
}

/* The client's FIN (read, or reported while input is paused). */
static void
peer_done(gw_fconn_t *fc)
{
    fc->eof = 1;
    if (fc->lingering || (fc->owed && fc->c.http.leave_cancels)) {
        /* the client left: its wait is cancelled (a lock not taken for
         * nobody), or its last bytes are in */
        fc_close(fc);
        return;
    }
    settle(fc); /* an answer owed is still written (a half-close) */
}

static void
on_read(gw_fconn_t *fc)
{
    gw_t *gw = fc->gw;
    ssize_t n;

    do
        n = recv(fc->fd, gw->front.rx, RX_SIZE, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            fc_close(fc); /* a reset: nothing can be answered */
        return;
    }
    if (n > 0)
        feed(fc, gw->front.rx, (size_t)n);
    else
        peer_done(fc);
}

static void
on_io(uv_poll_t *p, int status, int events)
{
    gw_fconn_t *fc = p->data;

    if (status < 0) {
        fc_close(fc);
        return;
    }
    if (events & UV_WRITABLE) {
        if (flush_out(fc) != 0) {
            fc_close(fc);
            return;
        }
        settle(fc);
    }
    if ((events & UV_READABLE) && !fc->closed)
        on_read(fc);
    else if ((events & UV_DISCONNECT) && !fc->closed && !fc->eof)
        peer_done(fc);
}

/* ---- answers (http.c) ---- */

void
gw__front_answer(gw_conn_t *c, const void *bytes, size_t len, int close)
{
    gw_fconn_t *fc = c->http.front;

    if (fc == NULL || fc->closed || !fc->owed)
        return;
    fc->owed = 0;
    if (close)
        fc->close_after = 1;
    write_bytes(fc, bytes, len);
    enqueue(fc); /* settled from the loop's check, or by advance() */
}

void
gw__front_resume(gw_t *gw)
{
    gw_fconn_t *fc;

    while ((fc = gw->front.resume) != NULL) {
        unqueue(fc);
        settle(fc);
    }
}

/* ---- accepting ---- */

static void
open_conn(gw_t *gw, int fd)
{
    gw_front_t *f = &gw->front;
    gw_fconn_t *fc;
    int one = 1;

    /* answers go out as they are written: one send each */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fc = util_calloc(1, sizeof *fc);
    fc->gw = gw;
    fc->fd = fd;
    fc->c.gw = gw;
    fc->c.kind = GW_CONN_HTTP;
    fc->c.http.front = fc;
    if (uv_poll_init(gw->loop, &fc->poll, fd) != 0) {
        gw->m.accept_errors++;
        close(fd);
        free(fc);
        return;
    }
    fc->poll.data = fc;
    fc->next = f->conns;
    if (f->conns)
        f->conns->prev = fc;
    f->conns = fc;
    f->nconns++;
    deadline(fc, DL_REQUEST);
    watch(fc);
}

static void on_accept(uv_poll_t *p, int status, int events);

static void
on_accept_pause(uv_timer_t *t)
{
    gw_t *gw = t->data;

    if (gw->front.fd >= 0 && !uv_is_closing((uv_handle_t *)&gw->front.listener))
        uv_poll_start(&gw->front.listener, UV_READABLE, on_accept);
}

static void
on_accept(uv_poll_t *p, int status, int events)
{
    gw_t *gw = p->data;
    gw_front_t *f = &gw->front;

    (void)events;
    if (status < 0) {
        /* libuv has stopped the handle: accepting again after a pause */
        gw->m.accept_errors++;
        LOG_WARN("http", "the listening socket failed (%s); accepting again in %d ms",
                 uv_strerror(status), ACCEPT_PAUSE_MS);
        uv_timer_start(&f->accept_pause, on_accept_pause, ACCEPT_PAUSE_MS, 0);
        return;
    }
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = accept4(f->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                gw->m.accept_errors++;
                unsigned n = util_ratelog_allow(&f->log, uv_now(gw->loop), 1);
                if (n)
                    LOG_WARN("http", "cannot accept: %s (%u times); pausing %d ms", strerror(errno),
                             n, ACCEPT_PAUSE_MS);
                uv_poll_stop(&f->listener);
                uv_timer_start(&f->accept_pause, on_accept_pause, ACCEPT_PAUSE_MS, 0);
            }
            return; /* EAGAIN: all taken; ECONNABORTED and the like: gone */
        }
        open_conn(gw, fd);
    }
}

void
gw__front_init(gw_t *gw)
{
    gw_front_t *f = &gw->front;

    f->fd = -1;
    f->rx = util_malloc(RX_SIZE);
    uv_timer_init(gw->loop, &f->timer);
    f->timer.data = gw;
    uv_timer_init(gw->loop, &f->accept_pause);
    f->accept_pause.data = gw;
}

int
gw__front_listen(gw_t *gw, const char *host, int port)
{
    gw_front_t *f = &gw->front;
    struct addrinfo hints, *ai = NULL;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char service[16];
    int fd, rc, one = 1;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(service, sizeof service, "%d", port);
    if (getaddrinfo(host, service, &hints, &ai) != 0 || ai == NULL)
        return UV_EINVAL;
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(ai);
        return -errno; /* UV_E* on Unix */
    }
    /* a port in TIME_WAIT after a restart is ours again at once */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, BACKLOG) != 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        rc = -errno;
        freeaddrinfo(ai);
        close(fd);
        return rc;
    }
    freeaddrinfo(ai);
    if ((rc = uv_poll_init(gw->loop, &f->listener, fd)) != 0) {
        close(fd);
        return rc;
    }
    f->fd = fd;
    f->listener.data = gw;
    uv_poll_start(&f->listener, UV_READABLE, on_accept);
    gw->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

static void
on_listener_closed(uv_handle_t *h)
{
    gw_t *gw = h->data;

    close(gw->front.fd);
    gw->front.fd = -1;
}

static void
close_listener(gw_front_t *f)
{
    uv_timer_stop(&f->accept_pause);
    if (f->fd >= 0 && !uv_is_closing((uv_handle_t *)&f->listener))
        uv_close((uv_handle_t *)&f->listener, on_listener_closed);
}

void
gw__front_stop(gw_t *gw)
{
    gw_front_t *f = &gw->front;

    close_listener(f);
    for (gw_fconn_t *fc = f->conns, *next; fc; fc = next) {
        next = fc->next; /* settle closes fc, and only fc */
        if (!fc->busy)
            settle(fc);
    }
}

void
gw__front_close(gw_t *gw)
{
    gw_front_t *f = &gw->front;

    while (f->conns != NULL)
        fc_close(f->conns);
    close_listener(f);
    uv_close((uv_handle_t *)&f->timer, NULL);
    uv_close((uv_handle_t *)&f->accept_pause, NULL);
    free(f->rx);
    f->rx = NULL;
}
