/*
 * tests/bus/test_bus.c: the bus against a real redis-server (the ctest
 * fixture "redis"): failed connects are reported (the reason we wrote our
 * own libuv adapter), messages and pattern messages arrive, AUTH and SELECT
 * come from the URL, a killed connection is re-established and
 * resubscribed, and every handle is closed afterwards (uv_loop_close == 0).
 * Requests: after bus_cancel (or bus_group_cancel) a callback never fires,
 * also at shutdown, while an uncancelled one is answered NULL once; a
 * cancel once the reply is being delivered is a no-op.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bus.h"
#include "loop_util.h"

typedef struct probe {
    int ready;
    int ever_ready;
    int state_calls;
    int start_failures;
    char error[256];
    int messages;
    char last_channel[64];
    char last_pattern[64];
    char last_payload[64];
    size_t last_len;
    int reply_type;
    long long reply_int;
    char reply_str[512];
    int replies;
    int closed;
} probe_t;

/* A loopback port nobody listens on: bound then released. */
static int
closed_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static void
on_state(void *privdata, int ready, int ever_ready, const char *error)
{
    probe_t *p = privdata;
    p->ready = ready;
    p->ever_ready = ever_ready || ready;
    p->state_calls++;
    if (!ready && !ever_ready)
        p->start_failures++;
    if (error)
        snprintf(p->error, sizeof p->error, "%s", error);
}

static void
on_message(void *privdata, const char *pattern, const char *channel, size_t chlen,
           const char *payload, size_t len)
{
    probe_t *p = privdata;
    p->messages++;
    snprintf(p->last_channel, sizeof p->last_channel, "%.*s", (int)chlen, channel);
    snprintf(p->last_pattern, sizeof p->last_pattern, "%s", pattern ? pattern : "");
    p->last_len = len;
    memcpy(p->last_payload, payload, len < sizeof p->last_payload ? len : sizeof p->last_payload);
}

static void
on_reply(void *privdata, redisReply *r)
{
    probe_t *p = privdata;
    p->replies++;
    p->reply_type = r ? r->type : -1;
    if (r && r->type == REDIS_REPLY_INTEGER)
        p->reply_int = r->integer;
    if (r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
              r->type == REDIS_REPLY_ERROR))
        snprintf(p->reply_str, sizeof p->reply_str, "%.*s", (int)r->len, r->str);
}

static void
on_closed(void *privdata)
{
    ((probe_t *)privdata)->closed = 1;
}

static bus_t *
make_bus(uv_loop_t *loop, const char *url, probe_t *p)
{
    static const char *const channels[] = {"tradestate", "canceledtrades"};
    static const char *const patterns[] = {"bot *"};
    bus_options_t o = {0};
    bus_t *bus = NULL;
    const char *err = NULL;

    o.url = url;
    o.channels = channels;
    o.nchannels = 2;
    o.patterns = patterns;
    o.npatterns = 1;
    o.connect_timeout_ms = 1000;
    o.ping_interval_ms = 200;
    o.ping_timeout_ms = 1000;
    o.on_message = on_message;
    o.on_state = on_state;
    o.privdata = p;
    assert_int_equal(bus_new(loop, &o, &bus, &err), 0);
    return bus;
}

static void
close_bus(uv_loop_t *loop, bus_t *bus, probe_t *p)
{
    bus_close(bus, on_closed, p);
    assert_true(run_until(loop, &p->closed, 1, 2000));
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

static void
test_bad_url_refused(void **state)
{
    uv_loop_t loop;
    bus_options_t o = {0};
    bus_t *bus = NULL;
    const char *err = NULL;
    (void)state;

    uv_loop_init(&loop);
    o.url = "http://127.0.0.1:6379";
    assert_int_equal(bus_new(&loop, &o, &bus, &err), UV_EINVAL);
    assert_null(bus);
    assert_non_null(err);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void
test_down_at_start_is_reported(void **state)
{
    uv_loop_t loop;
    probe_t p = {0};
    char url[64];
    bus_t *bus;
    (void)state;

    uv_loop_init(&loop);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", closed_port());
    bus = make_bus(&loop, url, &p);
    assert_int_equal(bus_command(bus, on_reply, &p, "PING"), UV_ENOTCONN);
    bus_start(bus);
    /* a refused connect must be reported at once, not hang */
    assert_true(run_until(&loop, &p.start_failures, 1, 1000));
    assert_int_equal(p.ready, 0);
    assert_non_null(strstr(p.error, "refused"));
    assert_int_equal(p.replies, 0);
    close_bus(&loop, bus, &p);
}

static void
test_messages_and_patterns(void **state)
{
    uv_loop_t loop;
    probe_t p = {0};
    char url[64];
    const char *argv[3] = {"PUBLISH", "canceledtrades", "a\0b"};
    const size_t lens[3] = {7, 14, 3};
    bus_t *bus;
    (void)state;

    uv_loop_init(&loop);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", fixture_port());
    bus = make_bus(&loop, url, &p);
    bus_start(bus);
    assert_true(run_until(&loop, &p.ready, 1, 3000));
    assert_int_equal(bus_ready(bus), 1);

    assert_int_equal(bus_command(bus, on_reply, &p, "PUBLISH tradestate %s", "hello"), 0);
    assert_true(run_until(&loop, &p.messages, 1, 2000));
    assert_string_equal(p.last_channel, "tradestate");
    assert_string_equal(p.last_pattern, "");
    assert_int_equal(p.last_len, 5);
    assert_memory_equal(p.last_payload, "hello", 5);
    assert_true(run_until(&loop, &p.replies, 1, 2000));
    assert_int_equal(p.reply_type, REDIS_REPLY_INTEGER);
    assert_true(p.reply_int >= 1);

    assert_int_equal(bus_command(bus, NULL, NULL, "PUBLISH %s %s", "bot 7", "checkSteamGuard 7"),
                     0);
    assert_true(run_until(&loop, &p.messages, 2, 2000));
    assert_string_equal(p.last_channel, "bot 7");
    assert_string_equal(p.last_pattern, "bot *");

    /* binary-safe payloads */
    assert_int_equal(bus_command_argv(bus, NULL, NULL, 3, argv, lens), 0);
    assert_true(run_until(&loop, &p.messages, 3, 2000));
    assert_int_equal(p.last_len, 3);
    assert_memory_equal(p.last_payload, "a\0b", 3);

    /* an error reply is passed through, typed */
    assert_int_equal(bus_command(bus, on_reply, &p, "NOSUCHCOMMAND"), 0);
    assert_true(run_until(&loop, &p.replies, 2, 2000));
    assert_int_equal(p.reply_type, REDIS_REPLY_ERROR);
    close_bus(&loop, bus, &p);
}

static redisContext *
sync_connect(void)
{
    redisContext *c = redisConnect("127.0.0.1", fixture_port());
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    return c;
}

static void
sync_cmd(redisContext *c, const char *cmd)
{
    redisReply *r = redisCommand(c, cmd);
    assert_non_null(r);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
}

static void
test_auth_and_select_from_url(void **state)
{
    uv_loop_t loop;
    probe_t p = {0}, q = {0};
    redisContext *sc = sync_connect();
    char url[128];
    bus_t *bus;
    (void)state;

    sync_cmd(sc, "ACL SETUSER bustest on >s3cret ~* &* +@all");

    uv_loop_init(&loop);
    snprintf(url, sizeof url, "redis://bustest:s3cret@127.0.0.1:%d/5", fixture_port());
    bus = make_bus(&loop, url, &p);
    bus_start(bus);
    assert_true(run_until(&loop, &p.ready, 1, 3000));
    assert_int_equal(bus_command(bus, on_reply, &p, "CLIENT INFO"), 0);
    assert_true(run_until(&loop, &p.replies, 1, 2000));
    assert_non_null(strstr(p.reply_str, " db=5 "));
    assert_non_null(strstr(p.reply_str, " user=bustest "));
    close_bus(&loop, bus, &p);

    /* a wrong password is a start failure naming the refusal */
    uv_loop_init(&loop);
    snprintf(url, sizeof url, "redis://bustest:wrong@127.0.0.1:%d/0", fixture_port());
    bus = make_bus(&loop, url, &q);
    bus_start(bus);
    assert_true(run_until(&loop, &q.start_failures, 1, 3000));
    assert_non_null(strstr(q.error, "AUTH refused"));
    close_bus(&loop, bus, &q);

    sync_cmd(sc, "ACL DELUSER bustest");
    redisFree(sc);
}

static void
test_killed_connections_come_back(void **state)
{
    uv_loop_t loop;
    probe_t p = {0};
    redisContext *sc = sync_connect();
    char url[64];
    bus_t *bus;
    (void)state;

    uv_loop_init(&loop);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", fixture_port());
    bus = make_bus(&loop, url, &p);
    bus_start(bus);
    assert_true(run_until(&loop, &p.ready, 1, 3000));
    assert_int_equal(bus_reconnects(bus), 0);

    /* kill both of the bus's connections (named by its handshake) */
    sync_cmd(sc, "CLIENT KILL TYPE pubsub");
    sync_cmd(sc, "CLIENT KILL SKIPME yes TYPE normal");
    p.state_calls = 0;
    assert_true(run_until(&loop, &p.state_calls, 1, 2000));
    assert_int_equal(p.ready, 0);
    assert_true(run_until(&loop, &p.ready, 1, 5000));
    assert_true(bus_reconnects(bus) >= 1);

    /* resubscribed: a message published now arrives */
    sync_cmd(sc, "PUBLISH tradestate again");
    assert_true(run_until(&loop, &p.messages, 1, 2000));
    assert_memory_equal(p.last_payload, "again", 5);
    redisFree(sc);
    close_bus(&loop, bus, &p);
}

/* ---- requests: cancel and groups (docs/requests.md) ---- */

typedef struct owner {
    int calls;    /* callbacks that fired */
    int released; /* privdata handed back by bus_group_cancel */
    int nulls;    /* callbacks with a NULL reply */
    bus_req_t *self;
    int self_cancel_tried;
} owner_t;

static void
on_owner_reply(void *privdata, redisReply *r)
{
    owner_t *o = privdata;
    o->calls++;
    if (r == NULL)
        o->nulls++;
}

static void
on_owner_release(void *privdata)
{
    ((owner_t *)privdata)->released++;
}

/* Frees its privdata: under ASan a callback after cancel is a use after
 * free, and a request the bus forgot to free is a leak. */
static void
on_heap_reply(void *privdata, redisReply *r)
{
    (void)r;
    fail_msg("a cancelled request's callback fired");
    free(privdata);
}

static bus_t *
ready_bus(uv_loop_t *loop, probe_t *p)
{
    char url[64];
    bus_t *bus;

    uv_loop_init(loop);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", fixture_port());
    bus = make_bus(loop, url, p);
    bus_start(bus);
    assert_true(run_until(loop, &p->ready, 1, 3000));
    return bus;
}

static void
test_cancel_never_fires(void **state)
{
    uv_loop_t loop;
    probe_t p = {0};
    owner_t o = {0};
    bus_group_t g = {0};
    bus_req_t *req = NULL;
    bus_t *bus;
    (void)state;

    bus = ready_bus(&loop, &p);
    /* one cancelled by its handle, its privdata freed at once */
    {
        char *mine = malloc(32);
        assert_int_equal(bus_request(bus, &g, &req, on_heap_reply, mine, "PING"), 0);
        assert_non_null(req);
        assert_ptr_equal(g.head, req);
        bus_cancel(req);
        assert_null(g.head); /* a cancelled request leaves its group */
        free(mine);
    }
    /* one with arguments, one script, then a marker that answers after
     * them on the same connection */
    {
        static bus_script_t s = {.text = "return 1"};
        const char *argv[2] = {"ECHO", "x"};
        const size_t lens[2] = {4, 1};
        bus_req_t *r2 = NULL, *r3 = NULL;
        assert_int_equal(bus_request_argv(bus, &g, &r2, on_owner_reply, &o, 2, argv, lens), 0);
        assert_int_equal(bus_script_request(bus, &g, &r3, &s, 0, 0, NULL, NULL, on_owner_reply, &o),
                         0);
        bus_cancel(r2);
        bus_cancel(r3);
    }
    assert_int_equal(bus_command(bus, on_reply, &p, "PING"), 0);
    assert_true(run_until(&loop, &p.replies, 1, 2000));
    assert_int_equal(o.calls, 0);
    close_bus(&loop, bus, &p);
}

static void
on_self_cancel(void *privdata, redisReply *r)
{
    owner_t *o = privdata;
    (void)r;
    o->calls++;
    /* too late: the reply is being delivered; a no-op, not a crash */
    bus_cancel(o->self);
    o->self_cancel_tried = 1;
    o->self = NULL;
}

static void
test_cancel_after_reply_is_harmless(void **state)
{
    uv_loop_t loop;
    probe_t p = {0};
    owner_t o = {0};
    bus_group_t g = {0};
    bus_t *bus;
    (void)state;

    bus = ready_bus(&loop, &p);
    assert_int_equal(bus_request(bus, &g, &o.self, on_self_cancel, &o, "PING"), 0);
    assert_true(run_until(&loop, &o.calls, 1, 2000));
    assert_int_equal(o.self_cancel_tried, 1);
    /* answered requests have left the group: cancelling it finds nothing */
    assert_null(g.head);
    bus_group_cancel(&g, on_owner_release);
    assert_int_equal(o.released, 0);
    assert_int_equal(o.calls, 1);
    close_bus(&loop, bus, &p);
}

static void
test_group_cancel(void **state)
{
    uv_loop_t loop;
    probe_t p = {0};
    owner_t o[3] = {{0}};
    bus_group_t g = {0}, other = {0};
    bus_t *bus;
    (void)state;

    bus = ready_bus(&loop, &p);
    for (int i = 0; i < 3; i++)
        assert_int_equal(bus_request(bus, &g, NULL, on_owner_reply, &o[i], "PING"), 0);
    assert_int_equal(bus_request(bus, &other, NULL, on_reply, &p, "PING"), 0);
    bus_group_cancel(&g, on_owner_release);
    assert_null(g.head);
    for (int i = 0; i < 3; i++)
        assert_int_equal(o[i].released, 1);
    /* the other group's request is untouched, and answers after them */
    assert_true(run_until(&loop, &p.replies, 1, 2000));
    assert_null(other.head);
    for (int i = 0; i < 3; i++)
        assert_int_equal(o[i].calls, 0);
    close_bus(&loop, bus, &p);
}

static void
test_cancel_at_shutdown(void **state)
{
    uv_loop_t loop;
    probe_t p = {0};
    owner_t kept = {0}, gone = {0};
    bus_group_t g = {0};
    bus_t *bus;
    (void)state;

    bus = ready_bus(&loop, &p);
    /* both are outstanding at close: the loop has not run since */
    assert_int_equal(bus_request(bus, &g, NULL, on_owner_reply, &gone, "PING"), 0);
    assert_int_equal(bus_request(bus, NULL, NULL, on_owner_reply, &kept, "PING"), 0);
    bus_group_cancel(&g, NULL); /* the owner closes first */
    bus_close(bus, on_closed, &p);
    /* not cancelled: answered NULL by the close, once; cancelled: never */
    assert_int_equal(kept.calls, 1);
    assert_int_equal(kept.nulls, 1);
    assert_int_equal(gone.calls, 0);
    assert_true(run_until(&loop, &p.closed, 1, 2000));
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(kept.calls, 1);
    assert_int_equal(gone.calls, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_url_refused),
        cmocka_unit_test(test_down_at_start_is_reported),
        cmocka_unit_test(test_messages_and_patterns),
        cmocka_unit_test(test_auth_and_select_from_url),
        cmocka_unit_test(test_killed_connections_come_back),
        cmocka_unit_test(test_cancel_never_fires),
        cmocka_unit_test(test_cancel_after_reply_is_harmless),
        cmocka_unit_test(test_group_cancel),
        cmocka_unit_test(test_cancel_at_shutdown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
