/*
 * tests/unit/test_url.c: the redis:// URL parser (bus_url_parse).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "bus.h"

typedef struct url_case {
    const char *url;
    int ok;
    const char *host;
    int port;
    const char *user; /* NULL: absent */
    const char *pass; /* NULL: absent */
    int db;
} url_case_t;

#define BAD(url)                                                                                   \
    {                                                                                              \
        url, 0, NULL, 0, NULL, NULL, 0                                                             \
    }

static const url_case_t url_cases[] = {
    {"redis://127.0.0.1:6379/0", 1, "127.0.0.1", 6379, NULL, NULL, 0},
    {"redis://localhost", 1, "localhost", 6379, NULL, NULL, 0},
    {"redis://localhost/", 1, "localhost", 6379, NULL, NULL, 0},
    {"redis://localhost:7000", 1, "localhost", 7000, NULL, NULL, 0},
    {"redis://redis.internal-1_a/15", 1, "redis.internal-1_a", 6379, NULL, NULL, 15},
    {"redis://:s3cret@host:1234/2", 1, "host", 1234, NULL, "s3cret", 2},
    {"redis://alice:s3cret@host", 1, "host", 6379, "alice", "s3cret", 0},
    {"redis://s3cret@host", 1, "host", 6379, NULL, "s3cret", 0},
    {"redis://u:p%40ss%3a%2F@h", 1, "h", 6379, "u", "p@ss:/", 0},
    {"redis://%41lice:x@h", 1, "h", 6379, "Alice", "x", 0},
    {"redis://u:p@ss@h", 1, "h", 6379, "u", "p@ss", 0},
    {"redis://[::1]:6380/3", 1, "::1", 6380, NULL, NULL, 3},
    {"redis://[::1]", 1, "::1", 6379, NULL, NULL, 0},
    {"redis://h:1", 1, "h", 1, NULL, NULL, 0},
    {"redis://h:65535/1000000", 1, "h", 65535, NULL, NULL, 1000000},
    /* refused */
    BAD(NULL),
    BAD(""),
    BAD("redis:/"),
    BAD("redis://"),
    BAD("rediss://h"),
    BAD("http://h"),
    BAD("REDIS://h"),
    BAD("redis://:6379"),
    BAD("redis://u:p@"),
    BAD("redis://u:p@:1"),
    BAD("redis://h:"),
    BAD("redis://h:0"),
    BAD("redis://h:65536"),
    BAD("redis://h:-1"),
    BAD("redis://h:+1"),
    BAD("redis://h:abc"),
    BAD("redis://h:99999999999"),
    BAD("redis://h:6379:1"),
    BAD("redis://h/abc"),
    BAD("redis://h/-1"),
    BAD("redis://h/1000001"),
    BAD("redis://h/0/x"),
    BAD("redis://h/0?x=1"),
    BAD("redis://h o"),
    BAD("redis://h\to"),
    BAD("redis://h\xff"),
    BAD("redis://[::1"),
    BAD("redis://[]"),
    BAD("redis://[::1]x"),
    BAD("redis://[::1]:"),
    BAD("redis://u:%zz@h"),
    BAD("redis://u:%4@h"),
    BAD("redis://u:%@h"),
    BAD("redis://u:%00@h"),
    BAD("redis://%00:p@h"),
};

static void
expect_str(const char *what, const char *url, const char *got, const char *want)
{
    if (want == NULL && got == NULL)
        return;
    if (want == NULL || got == NULL || strcmp(got, want) != 0)
        fail_msg("%s: %s: got %s, want %s", url, what, got ? got : "(null)",
                 want ? want : "(null)");
}

static void
test_url_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof url_cases / sizeof url_cases[0]; i++) {
        const url_case_t *c = &url_cases[i];
        bus_url_t u;
        const char *err = NULL;
        int rc;

        memset(&u, 0, sizeof u);
        rc = bus_url_parse(c->url, &u, &err);
        if (!c->ok) {
            if (rc == 0)
                fail_msg("'%s' accepted (host %s)", c->url ? c->url : "(null)", u.host);
            assert_true(rc < 0);
            assert_non_null(err);
            continue;
        }
        if (rc != 0)
            fail_msg("'%s' refused: %s", c->url, err);
        expect_str("host", c->url, u.host, c->host);
        expect_str("user", c->url, u.user, c->user);
        expect_str("pass", c->url, u.pass, c->pass);
        assert_int_equal(u.port, c->port);
        assert_int_equal(u.db, c->db);
        bus_url_free(&u);
        assert_null(u.host);
    }
}

/* redis+sentinel:// (SPEC §11): the sentinels, the master's name, the db;
 * host and port stay unknown until a sentinel says them. */
static void
test_url_sentinel(void **state)
{
    static const char *const bad[] = {
        "redis+sentinel://h",           /* no master name */
        "redis+sentinel://h/",          /* empty master name */
        "redis+sentinel://h//",         /* empty master name, then a db */
        "redis+sentinel://h//1",
        "redis+sentinel://h/m a",       /* bad master name */
        "redis+sentinel://h,/m",        /* an empty sentinel */
        "redis+sentinel://h:0/m",       /* bad port */
        "redis+sentinel://h/m/x",       /* bad db */
        "redis+sentinel://a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q/m", /* 17 sentinels */
        "redis+sentinel:/h/m",
    };
    bus_url_t u;
    const char *err;
    (void)state;

    memset(&u, 0, sizeof u);
    assert_int_equal(
        bus_url_parse("redis+sentinel://:pw@127.0.0.1:26380,[::1],s3.internal:7/mymaster/2", &u,
                      &err),
        0);
    assert_null(u.host);
    assert_int_equal(u.nsentinels, 3);
    assert_string_equal(u.sentinel_hosts[0], "127.0.0.1");
    assert_int_equal(u.sentinel_ports[0], 26380);
    assert_string_equal(u.sentinel_hosts[1], "::1");
    assert_int_equal(u.sentinel_ports[1], 26379);
    assert_string_equal(u.sentinel_hosts[2], "s3.internal");
    assert_int_equal(u.sentinel_ports[2], 7);
    assert_string_equal(u.master, "mymaster");
    assert_string_equal(u.pass, "pw");
    assert_int_equal(u.db, 2);
    bus_url_free(&u);
    assert_null(u.master);
    assert_int_equal(u.nsentinels, 0);
    /* a plain URL has no sentinels */
    assert_int_equal(bus_url_parse("redis://h", &u, &err), 0);
    assert_int_equal(u.nsentinels, 0);
    assert_null(u.master);
    bus_url_free(&u);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (bus_url_parse(bad[i], &u, &err) == 0)
            fail_msg("'%s' accepted", bad[i]);
        assert_non_null(err);
    }
}

static void
test_url_length(void **state)
{
    char url[2048];
    bus_url_t u;
    const char *err;
    size_t pre = strlen("redis://");
    (void)state;

    memcpy(url, "redis://", pre);
    /* 1024 bytes after the scheme are allowed, 1025 are not */
    memset(url + pre, 'h', 1024);
    url[pre + 1024] = '\0';
    assert_int_equal(bus_url_parse(url, &u, &err), 0);
    assert_int_equal(strlen(u.host), 1024);
    bus_url_free(&u);
    memset(url + pre, 'h', 1025);
    url[pre + 1025] = '\0';
    assert_true(bus_url_parse(url, &u, &err) < 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_table),
        cmocka_unit_test(test_url_sentinel),
        cmocka_unit_test(test_url_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
