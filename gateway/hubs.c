/*
 * gateway/hubs.c: the registry of hubs (SPEC §11). Every 2 s a hub asks its
 * Redis for its ROLE, then writes what it is into coordhub:hub:<id> (JSON,
 * expiring 10 s later) and its id into the set coordhub:hubs; at a graceful
 * stop it removes both. GET /v1/hubs (api.c) reads the set and every live
 * entry in one script, dropping the ids whose entry has expired (a hub that
 * stopped answering).
 */
#include "hubs.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEY_HUB "coordhub:hub:"
#define KEY_HUBS "coordhub:hubs"
#define BEAT_MS 2000
#define TTL_MS "10000"

/* KEYS: the set of ids. ARGV: the entries' key prefix. The entries of the
 * live hubs; ids whose entry is gone leave the set. */
static const char LIST_LUA[] =
    "local out = {}\n"
    "for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  local v = redis.call('GET', ARGV[1] .. id)\n"
    "  if v then out[#out + 1] = v else redis.call('SREM', KEYS[1], id) end\n"
    "end\n"
    "return out\n";

static bus_script_t list_script = {LIST_LUA, "", 0};


static void
on_written(void *privdata, redisReply *reply)
{
    (void)privdata;
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
        LOG_WARN("gw", "hub registry write failed: %s", reply->str);
}

/* What this hub is, as GET /v1/hubs shows it. */
static char *
entry_json(gw_t *gw)
{
    char addr[300], redis_addr[300];
    json_t *o;
    char *s;

    snprintf(addr, sizeof addr, strchr(gw->host, ':') ? "[%s]:%d" : "%s:%d", gw->host, gw->port);
    bus_address(gw->bus, redis_addr, sizeof redis_addr);
    o = json_pack("{s:s,s:s,s:s,s:I,s:{s:I,s:I,s:I},s:{s:s,s:s},s:I}", "id", gw->hubs.id, "addr",
                  addr, "version", gw->hubs.version, "started_ms",
                  (json_int_t)gw->hubs.started_ms, "connections", "native",
                  (json_int_t)gw->nconns[GW_FRAMING_NATIVE], "socketio",
                  (json_int_t)(gw->nconns[GW_FRAMING_SIO] - gw->npolling), "polling",
                  (json_int_t)gw->npolling, "redis", "addr", redis_addr, "role", gw->hubs.role,
                  "seen_ms", (json_int_t)util_wall_ms());
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

/* ROLE's answer ("master", "slave", ...), then the entry. */
static void
on_role(void *privdata, redisReply *reply)
{
    gw_t *gw = privdata;
    char key[sizeof KEY_HUB + sizeof gw->hubs.id];
    char *entry;

    if (reply == NULL)
        return; /* Redis went away: the entry expires by itself */
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
        reply->element[0]->type == REDIS_REPLY_STRING)
        snprintf(gw->hubs.role, sizeof gw->hubs.role, "%s", reply->element[0]->str);
    else
        snprintf(gw->hubs.role, sizeof gw->hubs.role, "unknown");
    if (gw->shutting_down || !bus_ready(gw->bus))
        return;
    entry = entry_json(gw);
    snprintf(key, sizeof key, KEY_HUB "%s", gw->hubs.id);
    bus_command(gw->bus, on_written, NULL, "SET %s %s PX " TTL_MS, key, entry);
    bus_command(gw->bus, on_written, NULL, "SADD " KEY_HUBS " %s", gw->hubs.id);
    free(entry);
}

static void
on_beat(uv_timer_t *t)
{
    gw_t *gw = t->data;

    if (gw->bus != NULL && bus_ready(gw->bus) && !gw->shutting_down)
        bus_command(gw->bus, on_role, gw, "ROLE");
}

void
gw__hubs_redis_state(gw_t *gw, int ready)
{
    /* announced as soon as Redis is there, then every 2 s */
    if (ready && !gw->shutting_down)
        uv_timer_start(&gw->hubs.beat, on_beat, 0, BEAT_MS);
}

void
gw__hubs_init(gw_t *gw, const gw_options_t *opt)
{
    util_random_id(gw->hubs.id, 16, UTIL_ID_HEX);
    gw->hubs.id[16] = '\0';
    snprintf(gw->hubs.version, sizeof gw->hubs.version, "%s", opt->version ? opt->version : "");
    snprintf(gw->hubs.role, sizeof gw->hubs.role, "unknown");
    gw->hubs.started_ms = util_wall_ms();
    uv_timer_init(gw->loop, &gw->hubs.beat);
    gw->hubs.beat.data = gw;
    if (gw->bus != NULL)
        uv_timer_start(&gw->hubs.beat, on_beat, 0, BEAT_MS);
}

static void
on_left(void *privdata, redisReply *reply)
{
    gw_t *gw = privdata;
    gw->hubs.pending--;
    on_written(NULL, reply);
}

void
gw__hubs_leave(gw_t *gw)
{
    char key[sizeof KEY_HUB + sizeof gw->hubs.id];

    uv_timer_stop(&gw->hubs.beat);
    if (gw->bus == NULL || !bus_ready(gw->bus))
        return; /* the entry expires by itself */
    snprintf(key, sizeof key, KEY_HUB "%s", gw->hubs.id);
    /* the shutdown waits for both answers before the bus closes */
    if (bus_command(gw->bus, on_left, gw, "DEL %s", key) == 0)
        gw->hubs.pending++;
    if (bus_command(gw->bus, on_left, gw, "SREM " KEY_HUBS " %s", gw->hubs.id) == 0)
        gw->hubs.pending++;
}

void
gw__hubs_close(gw_t *gw)
{
    uv_close((uv_handle_t *)&gw->hubs.beat, NULL);
}

int
gw__hubs_list(gw_t *gw, bus_req_t **req, bus_reply_cb cb, void *privdata)
{
    const char *argv[2] = {KEY_HUBS, KEY_HUB};
    size_t lens[2] = {sizeof KEY_HUBS - 1, sizeof KEY_HUB - 1};

    if (gw->bus == NULL)
        return UV_ENOTCONN;
    return bus_script_request(gw->bus, NULL, req, &list_script, 1, 2, argv, lens, cb, privdata);
}

char *
gw__hubs_render(const redisReply *reply, size_t *len)
{
    json_t *hubs = json_array(), *o;
    char *s;

    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *e = reply->element[i];
        json_t *h = e->type == REDIS_REPLY_STRING ? json_loadb(e->str, e->len, 0, NULL) : NULL;
        if (json_is_object(h))
            json_array_append_new(hubs, h); /* an entry that is not ours is left out */
        else
            json_decref(h);
    }
    o = json_pack("{s:o}", "hubs", hubs);
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    *len = strlen(s);
    return s;
}
