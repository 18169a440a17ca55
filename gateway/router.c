/*
 * gateway/router.c: the routing core. One Redis message becomes events for
 * rooms (README, the channel table under "WebSocket"); each event is serialised at most once per framing, only
 * when a recipient of that framing exists, and the frame is shared by
 * reference among the recipients' queues. Room lookup is a hash; nothing is
 * allocated per recipient.
 */
#include "router.h"

#include "recovery.h"
#include "writer.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

typedef struct fanout {
    gw_t *gw;
    const char *event;
    const char *data; /* JSON text, or NULL */
    size_t dlen;
    const char *offset; /* SPEC §9, or NULL */
    uint64_t born_ns;
    gw_frame_t *frames[GW_FRAMING_COUNT];
    size_t recipients;
} fanout_t;

static void
deliver(void *ctx, void *owner)
{
    fanout_t *fo = ctx;
    gw_conn_t *c = owner;
    gw_frame_t *f = fo->frames[c->ws.framing];

    if (c->ws.close_code || !c->ws.ready)
        return;
    if (f == NULL) {
        f = gw__frame_event(c->ws.framing, fo->event, fo->data, fo->dlen, fo->offset);
        f->born_ns = fo->born_ns;
        fo->frames[c->ws.framing] = f;
        fo->gw->m.frames_built++;
    }
    gw__out_frame(fo->gw, c, f);
    fo->recipients++;
}

static void
fanout_done(fanout_t *fo)
{
    for (int i = 0; i < GW_FRAMING_COUNT; i++)
        if (fo->frames[i])
            gw__frame_unref(fo->frames[i]); /* the queues hold their own */
    if (fo->recipients)
        fo->gw->m.events_routed++;
}

/* An event to a room's members; with an offset it also goes into the
 * room's history (recovery.c). */
static void
to_room(gw_t *gw, const char *room, size_t rlen, const char *event, const char *data, size_t dlen,
        const char *offset, uint64_t born_ns)
{
    fanout_t fo = {gw, event, data, dlen, offset, born_ns, {NULL}, 0};
    gw__rooms_visit(gw->rooms, room, rlen, deliver, &fo);
    fanout_done(&fo);
    if (offset != NULL)
        gw__rec_record(gw, room, rlen, event, data, dlen);
}

/* Is an event for `room` wanted: a member here, or history to write? */
static int
wanted(gw_t *gw, const char *room, size_t rlen)
{
    return gw->rec.synced || gw__rooms_size(gw->rooms, room, rlen) > 0;
}

static void
to_everyone(gw_t *gw, const char *event, uint64_t born_ns)
{
    /* coalesced: its offset is the position of the last message routed,
     * whose events (and every earlier one) have all been queued by now */
    const char *offset = gw__rec_on(gw) ? gw->rec.offset : NULL;
    fanout_t fo = {gw, event, NULL, 0, offset, born_ns, {NULL}, 0};
    for (gw_conn_t *c = gw->conns; c; c = c->ws.next)
        deliver(&fo, c);
    fanout_done(&fo);
}

/* A JSON string of `s` and its length in *outlen, or NULL (and 0) when `s`
 * is not valid UTF-8 or jansson could not allocate. */
static char *
json_string_text(const char *s, size_t n, size_t *outlen)
{
    json_t *j = json_stringn(s, n);
    char *out;

    *outlen = 0;
    if (j == NULL)
        return NULL;
    out = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
    json_decref(j);
    if (out)
        *outlen = strlen(out);
    return out;
}

static void
malformed(gw_t *gw, enum util_channel_id ch, const char *channel, size_t chlen, const char *what)
{
    unsigned n;
    gw->m.malformed[ch]++;
    n = util_ratelog_allow(&gw->malformed_log, uv_now(gw->loop), 5);
    if (n)
        LOG_WARN("gw", "dropped malformed payload on '%.*s': %s (%u since last report)",
                 (int)(chlen > 64 ? 64 : chlen), channel, what, n);
}

void
gw_config_changed(gw_t *gw, const char *key, const char *value, long long version)
{
    char room[WIRE_ROOM_MAX + 1];
    json_t *v = json_loads(value, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL), *o;
    char *data;
    int n = snprintf(room, sizeof room, "config:%s", key);

    if (n < 0 || (size_t)n >= sizeof room || gw__rooms_size(gw->rooms, room, (size_t)n) == 0) {
        json_decref(v);
        return;
    }
    o = json_pack("{s:s,s:o,s:I}", "key", key, "value", v ? v : json_null(), "version",
                  (json_int_t)version);
    data = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    /* not history: a watch reads the current values again (docs/recovery.md) */
    to_room(gw, room, (size_t)n, "config", data, strlen(data), NULL, uv_hrtime());
    free(data);
}

void
gw_room_event(gw_t *gw, const char *room, const char *event, const char *data, size_t len)
{
    size_t rlen = strlen(room);

    if (gw__rooms_size(gw->rooms, room, rlen) == 0)
        return;
    to_room(gw, room, rlen, event, data, len, NULL, uv_hrtime());
}

static void
fire_reserve_items(gw_t *gw)
{
    to_everyone(gw, "reserve-items", uv_hrtime());
}

static void
on_reserve_timer(uv_timer_t *t)
{
    gw_t *gw = t->data;
    if (gw__throttle_expire(&gw->reserve_throttle, uv_now(gw->loop)))
        fire_reserve_items(gw);
}

void
gw__router_init(gw_t *gw, unsigned coalesce_ms)
{
    gw->reserve_throttle.interval_ms = coalesce_ms;
    uv_timer_init(gw->loop, &gw->reserve_timer);
    gw->reserve_timer.data = gw;
}

static void
route_bot(gw_t *gw, const char *channel, size_t chlen, const char *payload, size_t len,
          const char *offset, uint64_t born)
{
    const char *bot_id;
    size_t bot_len;
    wire_bot_cmd_t cmd;
    char room[WIRE_ROOM_MAX + 1];
    json_t *o;
    char *data;
    int n;

    if (wire_bot_channel_id(channel, chlen, &bot_id, &bot_len) != 0) {
        malformed(gw, UTIL_CH_BOT, channel, chlen, "bad bot channel name");
        return;
    }
    if (wire_bot_parse(payload, len, &cmd) != 0) {
        malformed(gw, UTIL_CH_BOT, channel, chlen, "bot command does not parse");
        return;
    }
    /* `bot` to the bot's room (ops only): everything, raw included */
    n = snprintf(room, sizeof room, "bot:%.*s", (int)bot_len, bot_id);
    if (wanted(gw, room, (size_t)n)) {
        o = json_object();
        json_object_set_new(o, "botId", json_stringn(bot_id, bot_len));
        json_object_set_new(o, "command", json_stringn(cmd.command, cmd.command_len));
        if (cmd.steamid)
            json_object_set_new(o, "steamId", json_stringn(cmd.steamid, cmd.steamid_len));
        if (cmd.tradehash)
            json_object_set_new(o, "tradeHash", json_stringn(cmd.tradehash, cmd.tradehash_len));
        /* raw is opaque and may hold bytes that are not UTF-8, which
         * json_stringn refuses: those become U+FFFD */
        {
            json_t *raw = json_stringn(payload, len);
            if (raw == NULL) {
                char *clean = util_malloc(len * 3 + 1);
                size_t cl = util_utf8_sanitize(clean, payload, len);
                raw = json_stringn(clean, cl);
                free(clean);
            }
            json_object_set_new(o, "raw", raw ? raw : json_string(""));
        }
        data = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (data) {
            to_room(gw, room, (size_t)n, "bot", data, strlen(data), offset, born);
            free(data);
        }
    }
    /* `bot-command` to the user named in it: never tradeData, never raw */
    if (cmd.steamid) {
        n = snprintf(room, sizeof room, "user:%.*s", (int)cmd.steamid_len, cmd.steamid);
        if (!wanted(gw, room, (size_t)n))
            return;
        o = json_object();
        json_object_set_new(o, "botId", json_stringn(bot_id, bot_len));
        json_object_set_new(o, "command", json_stringn(cmd.command, cmd.command_len));
        if (cmd.tradehash)
            json_object_set_new(o, "tradeHash", json_stringn(cmd.tradehash, cmd.tradehash_len));
        data = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (data) {
            to_room(gw, room, (size_t)n, "bot-command", data, strlen(data), offset, born);
            free(data);
        }
    }
}

/* "user:" + id into room; the id is valid (at most WIRE_ID_MAX bytes). */
static size_t
user_room(char room[WIRE_ROOM_MAX + 1], const char *id)
{
    size_t n = strlen(id);
    memcpy(room, "user:", 5);
    memcpy(room + 5, id, n + 1);
    return n + 5;
}

void
gw_on_message(gw_t *gw, const char *pattern, const char *channel, size_t chlen, const char *payload,
              size_t len)
{
    uint64_t born = uv_hrtime();
    char id[WIRE_ID_MAX + 1], room[WIRE_ROOM_MAX + 1];
    enum util_channel_id ch = util_channel_of(pattern, channel, chlen);
    const char *offset;
    uint64_t delay;
    char *data;
    size_t dlen;

    if (ch == UTIL_CH_REC_ANCHOR) {
        gw__rec_anchor(gw, payload, len);
        return;
    }
    if (util_channels[ch].label == NULL)
        ch = UTIL_CH_OTHER; /* not the gateway's (util.h, the channel table) */
    gw->m.messages_in[ch]++;
    if (ch == UTIL_CH_OTHER)
        return;
    /* every message of the gateway's channels has a position, routed or
     * not, so that every hub counts the same (docs/recovery.md) */
    offset = gw__rec_position(gw);
    switch (ch) {
    case UTIL_CH_BOT: route_bot(gw, channel, chlen, payload, len, offset, born); return;
    case UTIL_CH_TRADESTATE:
        if (wire_route_tradestate(payload, len, id) != 0) {
            malformed(gw, ch, channel, chlen, "not a JSON object with a valid steamId");
            return;
        }
        /* data is the object exactly as published: validated, not rebuilt */
        to_room(gw, room, user_room(room, id), "tradestate", payload, len, offset, born);
        return;
    case UTIL_CH_CANCELED:
        if (wire_route_canceled(payload, len, id) != 0) {
            malformed(gw, ch, channel, chlen, "not a valid steamId");
            return;
        }
        /* a valid steamId is ASCII: NULL here is only jansson out of memory */
        data = json_string_text(id, strlen(id), &dlen);
        if (data == NULL)
            return;
        to_room(gw, room, user_room(room, id), "canceledtrades", data, dlen, offset, born);
        free(data);
        return;
    case UTIL_CH_ITEM_RESERVED:
        if (offset != NULL)
            gw__rec_record(gw, "*", 1, "reserve-items", NULL, 0);
        switch (gw__throttle_hit(&gw->reserve_throttle, uv_now(gw->loop), &delay)) {
        case GW_THROTTLE_FIRE: fire_reserve_items(gw); break;
        case GW_THROTTLE_ARM: uv_timer_start(&gw->reserve_timer, on_reserve_timer, delay, 0); break;
        default: break;
        }
        return;
    case UTIL_CH_FINISHED:
    case UTIL_CH_STEAMDOWN:
        data = json_string_text(payload, len, &dlen);
        if (data == NULL) {
            malformed(gw, ch, channel, chlen, "not valid UTF-8 text");
            return;
        }
        to_room(gw, "ops", 3, ch == UTIL_CH_FINISHED ? "finishedtrades" : "steamDown", data, dlen,
                offset, born);
        free(data);
        return;
    default: return;
    }
}
