/*
 * bus/script.c: Lua scripts by EVALSHA, loaded once and reloaded when Redis
 * has forgotten them. Callers see one reply per call, as with bus_command.
 */
#include "bus.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct eval_req {
    bus_t *bus;
    bus_script_t *s;
    int argc; /* including EVALSHA, sha and numkeys */
    char **argv;
    size_t *argvlen;
    bus_reply_cb cb;
    void *privdata;
    int reloaded;
} eval_req_t;

static int send_eval(eval_req_t *r);

static void
req_free(eval_req_t *r)
{
    for (int i = 0; i < r->argc; i++)
        free(r->argv[i]);
    free(r->argv);
    free(r->argvlen);
    free(r);
}

static void
req_done(eval_req_t *r, redisReply *reply)
{
    if (r->cb)
        r->cb(r->privdata, reply);
    req_free(r);
}

static int
store_sha(bus_script_t *s, const redisReply *reply)
{
    if (reply == NULL || reply->type != REDIS_REPLY_STRING || reply->len != 40)
        return -1;
    memcpy(s->sha, reply->str, 40);
    s->sha[40] = '\0';
    return 0;
}

static void
on_loaded(void *privdata, redisReply *reply)
{
    eval_req_t *r = privdata;

    if (store_sha(r->s, reply) == 0 && send_eval(r) == 0)
        return;
    /* NULL: connection lost; an error: the script does not compile */
    req_done(r, reply != NULL && reply->type == REDIS_REPLY_ERROR ? reply : NULL);
}

static void
on_reply(void *privdata, redisReply *reply)
{
    eval_req_t *r = privdata;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0 && !r->reloaded) {
        r->reloaded = 1;
        r->s->sha[0] = '\0';
        r->s->reloads++;
        if (send_eval(r) == 0)
            return;
        reply = NULL;
    }
    req_done(r, reply);
}

static int
send_eval(eval_req_t *r)
{
    if (r->s->sha[0] == '\0')
        return bus_command(r->bus, on_loaded, r, "SCRIPT LOAD %s", r->s->text);
    memcpy(r->argv[1], r->s->sha, 41);
    return bus_command_argv(r->bus, on_reply, r, r->argc, (const char **)r->argv, r->argvlen);
}

int
bus_evalsha(bus_t *bus, bus_script_t *s, int numkeys, int argc, const char **argv,
            const size_t *argvlen, bus_reply_cb cb, void *privdata)
{
    eval_req_t *r;
    char nk[16];
    int rc;

    if (!bus_ready(bus))
        return UV_ENOTCONN;
    r = util_calloc(1, sizeof *r);
    r->bus = bus;
    r->s = s;
    r->cb = cb;
    r->privdata = privdata;
    r->argc = argc + 3;
    r->argv = util_calloc((size_t)r->argc, sizeof *r->argv);
    r->argvlen = util_calloc((size_t)r->argc, sizeof *r->argvlen);
    r->argv[0] = util_strdup("EVALSHA");
    r->argvlen[0] = 7;
    r->argv[1] = util_calloc(41, 1);
    r->argvlen[1] = 40;
    snprintf(nk, sizeof nk, "%d", numkeys);
    r->argv[2] = util_strdup(nk);
    r->argvlen[2] = strlen(nk);
    for (int i = 0; i < argc; i++) {
        r->argv[i + 3] = util_strndup(argv[i], argvlen[i]);
        r->argvlen[i + 3] = argvlen[i];
    }
    rc = send_eval(r);
    if (rc != 0)
        req_free(r);
    return rc;
}

static void
on_preloaded(void *privdata, redisReply *reply)
{
    store_sha(privdata, reply);
}

void
bus_script_preload(bus_t *bus, bus_script_t *s)
{
    bus_command(bus, on_preloaded, s, "SCRIPT LOAD %s", s->text);
}
