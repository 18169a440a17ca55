/*
 * gateway/native.c: the native framing of /ws. Every frame is a JSON text
 * frame; the server sends {"event": NAME, "data": VALUE}, the client sends
 * ops ({"op":"join","room":...}, leave, ping, config.watch, refresh), parsed by
 * wire_client_op_parse and answered here. Events reach the connection from
 * the moment it is open (conn.c, router.c).
 */
#include "native.h"

#include "auth.h"
#include "conn.h"
#include "writer.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
send_error(gw_t *gw, gw_conn_t *c, const char *code, const char *message)
{
    json_t *o = json_pack("{s:s,s:s}", "code", code, "message", message);
    char *s = json_dumps(o, JSON_COMPACT);
    gw->m.client_errors++;
    gw__out_event(gw, c, "error", s, strlen(s));
    free(s);
    json_decref(o);
}

static void
send_room_ack(gw_t *gw, gw_conn_t *c, const char *event, const char *room)
{
    json_t *o = json_pack("{s:s}", "room", room);
    char *s = json_dumps(o, JSON_COMPACT);
    gw__out_event(gw, c, event, s, strlen(s));
    free(s);
    json_decref(o);
}

static void
send_watching(gw_t *gw, gw_conn_t *c, const wire_client_op_t *op)
{
    json_t *keys = json_array(), *o;
    char *s;

    for (size_t i = 0; i < op->nkeys; i++)
        json_array_append_new(keys, json_string(op->keys[i]));
    o = json_pack("{s:o}", "keys", keys);
    s = json_dumps(o, JSON_COMPACT);
    gw__out_event(gw, c, "watching", s, strlen(s));
    free(s);
    json_decref(o);
}

void
gw__native_receive(gw_t *gw, gw_conn_t *c, const char *buf, size_t len)
{
    wire_client_op_t op;
    const char *code, *msg;

    if (wire_client_op_parse(buf, len, &op, &code, &msg) != 0) {
        send_error(gw, c, code, msg);
        return;
    }
    switch (op.op) {
    case WIRE_OP_PING: gw__out_event(gw, c, "pong", NULL, 0); break;
    case WIRE_OP_JOIN:
        if (gw__conn_join(gw, c, op.room, &code, &msg) != 0)
            send_error(gw, c, code, msg);
        else
            send_room_ack(gw, c, "joined", op.room);
        break;
    case WIRE_OP_LEAVE:
        if (gw__conn_leave(gw, c, op.room, &code, &msg) != 0)
            send_error(gw, c, code, msg);
        else
            send_room_ack(gw, c, "left", op.room);
        break;
    case WIRE_OP_REFRESH: {
        wire_claims_t claims;
        char data[48];
        int n;
        if (gw__auth_token(gw, op.token, op.token_len, &claims) != 0) {
            send_error(gw, c, "unauthorized", "the new token is not valid");
            break;
        }
        if (gw__conn_refresh(gw, c, &claims) != 0) {
            send_error(gw, c, "forbidden", "a refresh must keep the token's sub");
            gw__out_close(c, 4003);
            break;
        }
        n = snprintf(data, sizeof data, "{\"exp\":%lld}", claims.exp);
        gw__out_event(gw, c, "refreshed", data, (size_t)n);
        break;
    }
    case WIRE_OP_CONFIG_WATCH:
        if (gw__conn_watch(gw, c, &op, &code, &msg) != 0)
            send_error(gw, c, code, msg);
        else
            send_watching(gw, c, &op);
        break;
    }
}
