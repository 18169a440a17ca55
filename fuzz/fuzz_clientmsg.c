/*
 * fuzz_clientmsg: native client frames (wire_client_op_parse), the keys of
 * config.watch (wire_watch_keys_parse, also fed the input's JSON directly,
 * as Socket.IO's bare-array form reaches it) and the room rule
 * (wire_room_check).
 *
 * The input is parsed as a frame; a parsed join/leave room is then checked
 * against two holders (a plain user and one with role ops, same sub), and
 * so is the raw input taken as a room name (a C string). Checks: the error
 * codes are the documented ones; a parsed room is 1..80 bytes, NUL-
 * terminated; parsed watch keys are 1..32 keys of 1..64 [A-Za-z0-9_.:-];
 * an admitted room is exactly "user:<own sub>", or (role ops only) "ops",
 * "queues" or "bot:<name id>"; whatever a plain user may join, an ops holder may
 * too, and a room is "bad_room" for both or neither.
 */
#include "fuzz.h"
#include "wire.h"

#include <errno.h>
#include <jansson.h>

#define SUB "76561198000000001"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    json_object_seed(1);
    return 0;
}

static int
streq(const char *a, const char *b)
{
    return a != NULL && strcmp(a, b) == 0;
}

/* wire_room_check of `room` (a C string) for one holder, with its checks. */
static int
check_room(const wire_claims_t *cl, const char *room, const char **code)
{
    int rc = wire_room_check(cl, room, code);
    size_t n = strlen(room);

    if (rc == 0) {
        FUZZ_CHECK(*code == NULL);
        FUZZ_CHECK(n >= 1 && n <= WIRE_ROOM_MAX);
        if (strncmp(room, "user:", 5) == 0) {
            FUZZ_CHECK(strcmp(room + 5, cl->sub) == 0);
        } else {
            FUZZ_CHECK(cl->roles & WIRE_ROLE_OPS);
            FUZZ_CHECK(strcmp(room, "ops") == 0 || strcmp(room, "queues") == 0 ||
                       (strncmp(room, "bot:", 4) == 0 && wire_valid_name_id(room + 4, n - 4)));
        }
    } else {
        FUZZ_CHECK(rc == -EINVAL);
        FUZZ_CHECK(streq(*code, "forbidden") || streq(*code, "bad_room"));
    }
    return rc;
}

static void
check_keys(const wire_client_op_t *op)
{
    FUZZ_CHECK(op->nkeys >= 1 && op->nkeys <= WIRE_WATCH_KEYS_MAX);
    for (size_t i = 0; i < op->nkeys; i++) {
        size_t n = strnlen(op->keys[i], WIRE_WATCH_KEY_MAX + 1);
        FUZZ_CHECK(n >= 1 && n <= WIRE_WATCH_KEY_MAX);
        FUZZ_CHECK(fuzz_only(op->keys[i], n, FUZZ_ALNUM "_.:-"));
    }
}

static void
check_both(const char *room)
{
    static const wire_claims_t user = {.sub = SUB, .roles = 0, .exp = 1};
    static const wire_claims_t ops = {.sub = SUB, .roles = WIRE_ROLE_OPS, .exp = 1};
    const char *cu = NULL, *co = NULL;
    int ru = check_room(&user, room, &cu), ro = check_room(&ops, room, &co);

    if (ru == 0)
        FUZZ_CHECK(ro == 0);
    FUZZ_CHECK(streq(cu, "bad_room") == streq(co, "bad_room"));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = fuzz_dup(data, size);
    wire_client_op_t *op = malloc(sizeof *op);
    const char *code = NULL, *msg = NULL;

    FUZZ_CHECK(op != NULL);
    if (wire_client_op_parse(in, size, op, &code, &msg) == 0) {
        if (op->op == WIRE_OP_JOIN || op->op == WIRE_OP_LEAVE) {
            size_t n = strnlen(op->room, sizeof op->room);
            FUZZ_CHECK(n >= 1 && n <= WIRE_ROOM_MAX);
            check_both(op->room);
        } else if (op->op == WIRE_OP_CONFIG_WATCH) {
            check_keys(op);
        } else if (op->op == WIRE_OP_REFRESH) {
            FUZZ_CHECK(op->token_len >= 1 && op->token_len <= WIRE_TOKEN_MAX);
            FUZZ_CHECK(op->token[op->token_len] == '\0');
        } else {
            FUZZ_CHECK(op->op == WIRE_OP_PING);
        }
    } else {
        FUZZ_CHECK(streq(code, "bad_json") || streq(code, "bad_request") ||
                   streq(code, "unknown_op"));
        FUZZ_CHECK(msg != NULL);
    }

    /* the Socket.IO form: config.watch's argument is any JSON value */
    {
        json_t *j = json_loadb(in, size, JSON_DECODE_ANY, NULL);
        if (j != NULL) {
            memset(op, 0, sizeof *op);
            msg = NULL;
            if (wire_watch_keys_parse(json_is_object(j) ? json_object_get(j, "keys") : j, op,
                                      &msg) == 0)
                check_keys(op);
            else
                FUZZ_CHECK(msg != NULL && op->nkeys == 0);
            json_decref(j);
        }
    }
    free(op);
    free(in);

    /* the raw input as a room name */
    in = fuzz_cstr(data, size);
    check_both(in);
    free(in);
    return 0;
}
