/*
 * wire/clientmsg.c: what a native WebSocket client may say (README, "WebSocket") and
 * which rooms it may enter. The parser answers with the error code the
 * client will see; the room check is the only place room access is decided.
 */
#include "wire.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>

static int
fail(const char **code, const char **msg, const char *c, const char *m)
{
    *code = c;
    *msg = m;
    return -EINVAL;
}

int
wire_watch_keys_parse(const json_t *keys, wire_client_op_t *out, const char **msg)
{
    size_t i;
    json_t *k;

    if (!json_is_array(keys) || json_array_size(keys) == 0 ||
        json_array_size(keys) > WIRE_WATCH_KEYS_MAX) {
        *msg = "\"keys\" must be an array of 1 to 32 configuration keys";
        return -EINVAL;
    }
    out->nkeys = 0;
    json_array_foreach(keys, i, k)
    {
        const char *s = json_string_value(k);
        size_t n = json_string_length(k);
        if (!json_is_string(k) || n == 0 || n > WIRE_WATCH_KEY_MAX || strlen(s) != n)
            goto bad;
        for (size_t j = 0; j < n; j++) {
            char c = s[j];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == ':' || c == '-'))
                goto bad;
        }
        memcpy(out->keys[out->nkeys], s, n + 1);
        out->nkeys++;
    }
    return 0;
bad:
    out->nkeys = 0;
    *msg = "configuration keys are 1-64 characters of A-Za-z0-9_.:-";
    return -EINVAL;
}

int
wire_client_op_parse(const char *buf, size_t len, wire_client_op_t *out, const char **code,
                     const char **msg)
{
    json_t *root, *op, *room;
    const char *name;
    int rc;

    memset(out, 0, sizeof *out);
    if (buf == NULL || len == 0)
        return fail(code, msg, "bad_json", "empty frame");
    root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
    if (root == NULL)
        return fail(code, msg, "bad_json", "frame is not valid JSON");
    if (!json_is_object(root)) {
        rc = fail(code, msg, "bad_json", "frame is not a JSON object");
        goto done;
    }
    op = json_object_get(root, "op");
    if (!json_is_string(op)) {
        rc = fail(code, msg, "bad_request", "\"op\" must be a string");
        goto done;
    }
    name = json_string_value(op);
    if (strcmp(name, "ping") == 0) {
        out->op = WIRE_OP_PING;
        rc = 0;
        goto done;
    }
    if (strcmp(name, "config.watch") == 0) {
        out->op = WIRE_OP_CONFIG_WATCH;
        rc = wire_watch_keys_parse(json_object_get(root, "keys"), out, msg);
        if (rc != 0) {
            out->op = 0;
            *code = "bad_request";
        }
        goto done;
    }
    if (strcmp(name, "refresh") == 0) {
        json_t *tok = json_object_get(root, "token");
        if (!json_is_string(tok) || json_string_length(tok) == 0 ||
            json_string_length(tok) > WIRE_TOKEN_MAX) {
            rc = fail(code, msg, "bad_request", "\"token\" must be a string (a JWT)");
            goto done;
        }
        out->op = WIRE_OP_REFRESH;
        out->token_len = json_string_length(tok);
        memcpy(out->token, json_string_value(tok), out->token_len);
        out->token[out->token_len] = '\0';
        rc = 0;
        goto done;
    }
    if (strcmp(name, "join") == 0)
        out->op = WIRE_OP_JOIN;
    else if (strcmp(name, "leave") == 0)
        out->op = WIRE_OP_LEAVE;
    else {
        rc = fail(code, msg, "unknown_op", "unknown \"op\"");
        goto done;
    }
    room = json_object_get(root, "room");
    if (!json_is_string(room) || json_string_length(room) == 0 ||
        json_string_length(room) > WIRE_ROOM_MAX) {
        out->op = 0;
        rc = fail(code, msg, "bad_request", "\"room\" must be a string of 1 to 80 bytes");
        goto done;
    }
    /* jansson refuses \u0000 without JSON_ALLOW_NUL, so the copy is a C
     * string of exactly json_string_length bytes */
    memcpy(out->room, json_string_value(room), json_string_length(room));
    out->room[json_string_length(room)] = '\0';
    rc = 0;
done:
    json_decref(root);
    return rc;
}

static int
has_prefix(const char *s, size_t n, const char *prefix, size_t plen)
{
    return n >= plen && memcmp(s, prefix, plen) == 0;
}

int
wire_room_check(const wire_claims_t *claims, const char *room, const char **code)
{
    size_t n = room ? strnlen(room, WIRE_ROOM_MAX + 1) : 0;

    *code = "bad_room";
    if (n == 0 || n > WIRE_ROOM_MAX)
        return -EINVAL;
    if (has_prefix(room, n, "user:", 5)) {
        if (!wire_valid_user_id(room + 5, n - 5))
            return -EINVAL;
        /* only one's own user room, by the verified subject */
        if (strcmp(room + 5, claims->sub) != 0) {
            *code = "forbidden";
            return -EINVAL;
        }
        *code = NULL;
        return 0;
    }
    if (has_prefix(room, n, "bot:", 4)) {
        if (!wire_valid_name_id(room + 4, n - 4))
            return -EINVAL;
    } else if (strcmp(room, "ops") != 0 && strcmp(room, "queues") != 0) {
        return -EINVAL;
    }
    if (!(claims->roles & WIRE_ROLE_OPS)) {
        *code = "forbidden";
        return -EINVAL;
    }
    *code = NULL;
    return 0;
}
