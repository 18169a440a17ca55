/*
 * bus/script.c: Lua scripts by EVALSHA, loaded once and reloaded when Redis
 * has forgotten them. However many commands that takes (SCRIPT LOAD, the
 * EVALSHA, a retry after NOSCRIPT), it is one request (bus_int.h): one
 * handle, one cancel, one reply for the caller, as with bus_request.
 */
#include "bus.h"
#include "bus_int.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct eval_state {
    bus_script_t *s;
    int argc; /* including EVALSHA, sha and numkeys */
    char **argv;
    size_t *argvlen;
    int loading; /* the outstanding command is the SCRIPT LOAD */
    int reloaded;
} eval_state_t;

static void
state_free(void *p)
{
    eval_state_t *e = p;
    for (int i = 0; i < e->argc; i++)
        free(e->argv[i]);
    free(e->argv);
    free(e->argvlen);
    free(e);
}

static int
store_sha(bus_script_t *s, const redisReply *reply)
{
    if (reply == NULL || reply->type != REDIS_REPLY_STRING || reply->len != 40)
        return UV_EPROTO;
    memcpy(s->sha, reply->str, 40);
    s->sha[40] = '\0';
    return 0;
}

/* Sends the request's next command: the load if the sha is unknown, else
 * the EVALSHA. 0 or UV_ENOTCONN. */
static int
send_eval(bus_req_t *r)
{
    eval_state_t *e = r->ext;

    e->loading = e->s->sha[0] == '\0';
    if (e->loading)
        return bus__req_send(r, "SCRIPT LOAD %s", e->s->text);
    memcpy(e->argv[1], e->s->sha, 41);
    return bus__req_send_argv(r, e->argc, (const char **)e->argv, e->argvlen);
}

/* The request's step (bus_int.h): 1 when the next command is out. */
static int
step(bus_req_t *r, redisReply **reply)
{
    eval_state_t *e = r->ext;
    redisReply *rep = *reply;

    if (e->loading) {
        if (store_sha(e->s, rep) == 0 && send_eval(r) == 0)
            return 1;
        /* NULL: connection lost; an error: the script does not compile */
        *reply = rep != NULL && rep->type == REDIS_REPLY_ERROR ? rep : NULL;
        return 0;
    }
    if (rep != NULL && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0 &&
        !e->reloaded) {
        e->reloaded = 1;
        e->s->sha[0] = '\0';
        e->s->reloads++;
        if (send_eval(r) == 0)
            return 1;
        *reply = NULL;
    }
    return 0;
}

int
bus_script_request(bus_t *bus, bus_group_t *g, bus_req_t **req, bus_script_t *s, int numkeys,
                   int argc, const char **argv, const size_t *argvlen, bus_reply_cb cb,
                   void *privdata)
{
    eval_state_t *e;
    bus_req_t *r;
    char nk[16];
    int rc;

    if (!bus_ready(bus))
        return UV_ENOTCONN;
    e = util_calloc(1, sizeof *e);
    e->s = s;
    e->argc = argc + 3;
    e->argv = util_calloc((size_t)e->argc, sizeof *e->argv);
    e->argvlen = util_calloc((size_t)e->argc, sizeof *e->argvlen);
    e->argv[0] = util_strdup("EVALSHA");
    e->argvlen[0] = 7;
    e->argv[1] = util_calloc(41, 1);
    e->argvlen[1] = 40;
    snprintf(nk, sizeof nk, "%d", numkeys);
    e->argv[2] = util_strdup(nk);
    e->argvlen[2] = strlen(nk);
    for (int i = 0; i < argc; i++) {
        e->argv[i + 3] = util_strndup(argv[i], argvlen[i]);
        e->argvlen[i + 3] = argvlen[i];
    }
    r = bus__req_new(bus, cb, privdata);
    r->step = step;
    r->ext = e;
    r->ext_free = state_free;
    rc = send_eval(r);
    if (rc != 0) {
        bus__req_free(r);
        return rc;
    }
    bus__req_accept(r, g, req);
    return 0;
}

static void
on_preloaded(void *privdata, redisReply *reply)
{
    store_sha(privdata, reply);
}

void
bus_script_preload(bus_t *bus, bus_group_t *g, bus_script_t *s)
{
    bus_request(bus, g, NULL, on_preloaded, s, "SCRIPT LOAD %s", s->text);
}
