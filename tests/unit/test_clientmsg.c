/*
 * tests/unit/test_clientmsg.c: native client frames (wire_client_op_parse)
 * and room access (wire_room_check).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "guard.h"
#include "wire.h"

#define S(lit) lit, sizeof(lit) - 1
#define ERR(lit, code)                                                                             \
    {                                                                                              \
        S(lit), code, 0, NULL                                                                      \
    }
#define R80 "user:012345678901234567890123456789012345678901234567890123456789012345678901234"

typedef struct op_case {
    const char *in;
    size_t len;
    const char *code; /* NULL: accepted */
    enum wire_op op;
    const char *room; /* for join/leave */
} op_case_t;

static const op_case_t op_cases[] = {
    {S("{\"op\":\"join\",\"room\":\"user:1\"}"), NULL, WIRE_OP_JOIN, "user:1"},
    {S("{\"room\":\"bot:42\",\"op\":\"leave\"}"), NULL, WIRE_OP_LEAVE, "bot:42"},
    {S("{\"op\":\"ping\"}"), NULL, WIRE_OP_PING, NULL},
    {S(" {\"op\":\"ping\",\"extra\":[1,2]} \n"), NULL, WIRE_OP_PING, NULL},
    {S("{\"op\":\"ping\",\"room\":5}"), NULL, WIRE_OP_PING, NULL},
    /* refresh: the token is copied, not judged (the gateway verifies it) */
    {S("{\"op\":\"refresh\",\"token\":\"a.b.c\"}"), NULL, WIRE_OP_REFRESH, NULL},
    ERR("{\"op\":\"refresh\"}", "bad_request"),
    ERR("{\"op\":\"refresh\",\"token\":\"\"}", "bad_request"),
    ERR("{\"op\":\"refresh\",\"token\":42}", "bad_request"),
    {S("{\"op\":\"join\",\"room\":\"" R80 "\"}"), NULL, WIRE_OP_JOIN, R80},
    /* the room is copied as given; wire_room_check judges it */
    {S("{\"op\":\"join\",\"room\":\"nowhere\"}"), NULL, WIRE_OP_JOIN, "nowhere"},
    {S("{\"op\":\"join\",\"room\":\"\\u00e9\"}"), NULL, WIRE_OP_JOIN, "\xc3\xa9"},
    /* bad_request: fields of the wrong type or size */
    ERR("{\"op\":\"join\"}", "bad_request"),
    ERR("{\"op\":\"leave\"}", "bad_request"),
    ERR("{\"op\":\"join\",\"room\":42}", "bad_request"),
    ERR("{\"op\":\"join\",\"room\":null}", "bad_request"),
    ERR("{\"op\":\"join\",\"room\":[\"ops\"]}", "bad_request"),
    ERR("{\"op\":\"join\",\"room\":\"\"}", "bad_request"),
    ERR("{\"op\":\"join\",\"room\":\"" R80 "5\"}", "bad_request"),
    ERR("{\"op\":1}", "bad_request"),
    ERR("{\"op\":null}", "bad_request"),
    ERR("{\"op\":[\"ping\"]}", "bad_request"),
    ERR("{}", "bad_request"),
    ERR("{\"OP\":\"ping\"}", "bad_request"),
    /* unknown_op */
    ERR("{\"op\":\"dance\"}", "unknown_op"),
    ERR("{\"op\":\"\"}", "unknown_op"),
    ERR("{\"op\":\"PING\"}", "unknown_op"),
    ERR("{\"op\":\"join \",\"room\":\"ops\"}", "unknown_op"),
    /* bad_json */
    ERR("", "bad_json"),
    ERR(" ", "bad_json"),
    ERR("ping", "bad_json"),
    ERR("\"ping\"", "bad_json"),
    ERR("[]", "bad_json"),
    ERR("[{\"op\":\"ping\"}]", "bad_json"),
    ERR("42", "bad_json"),
    ERR("{\"op\":\"ping\"", "bad_json"),
    ERR("{\"op\":\"ping\"}}", "bad_json"),
    ERR("{\"op\":\"ping\"}\0", "bad_json"),
    ERR("{\"op\":\"ping\",\"x\":\"\xff\"}", "bad_json"),
    ERR("{\"op\":\"join\",\"room\":\"user:1\\u0000x\"}", "bad_json"),
    ERR("{\"op\":\"ping\",\"op\":\"join\"}", "bad_json"),
};

static void
test_client_op_table(void **state)
{
    (void)state;
    assert_int_equal(strlen(R80), WIRE_ROOM_MAX);
    for (size_t i = 0; i < sizeof op_cases / sizeof op_cases[0]; i++) {
        const op_case_t *c = &op_cases[i];
        guard_t g;
        const char *in = guard_place(&g, c->in, c->len);
        const char *code = NULL, *msg = NULL;
        wire_client_op_t out;
        int rc;

        assert_non_null(in);
        rc = wire_client_op_parse(in, c->len, &out, &code, &msg);
        if (c->code == NULL) {
            if (rc != 0)
                fail_msg("case %zu '%.*s' refused: %s", i, (int)c->len, c->in, code);
            assert_int_equal(out.op, c->op);
            if (c->room)
                assert_string_equal(out.room, c->room);
        } else {
            if (rc != -EINVAL)
                fail_msg("case %zu '%.*s' accepted", i, (int)c->len, c->in);
            assert_non_null(code);
            assert_string_equal(code, c->code);
            assert_non_null(msg);
            assert_true(strlen(msg) > 0);
        }
        guard_release(&g);
    }
}

typedef struct room_case {
    const char *room;
    unsigned roles;
    const char *code; /* NULL: allowed */
} room_case_t;

static void
test_room_check(void **state)
{
    static const room_case_t cases[] = {
        {"user:76561198000000001", 0, NULL},
        {"user:76561198000000001", WIRE_ROLE_OPS, NULL},
        {"user:76561198000000002", 0, "forbidden"},
        {"user:76561198000000002", WIRE_ROLE_OPS | WIRE_ROLE_ADMIN | WIRE_ROLE_SERVICE,
         "forbidden"},
        {"user:7656119800000000", 0, "forbidden"},
        {"user:765611980000000011", 0, "forbidden"},
        {"bot:42", WIRE_ROLE_OPS, NULL},
        {"bot:a.b-c_d", WIRE_ROLE_OPS, NULL},
        {"bot:42", 0, "forbidden"},
        {"bot:42", WIRE_ROLE_ADMIN | WIRE_ROLE_SERVICE, "forbidden"},
        {"ops", WIRE_ROLE_OPS, NULL},
        {"ops", WIRE_ROLE_ADMIN, "forbidden"},
        {"ops", 0, "forbidden"},
        {"queues", WIRE_ROLE_OPS, NULL},
        {"queues", WIRE_ROLE_ADMIN | WIRE_ROLE_SERVICE, "forbidden"},
        {"queues", 0, "forbidden"},
        {"queuesx", WIRE_ROLE_OPS, "bad_room"},
        {"queue", WIRE_ROLE_OPS, "bad_room"},
        {"user:", 0, "bad_room"},
        {"user:bad!", 0, "bad_room"},
        {"user:7656119800000000_1", 0, "bad_room"},
        {"bot:", WIRE_ROLE_OPS, "bad_room"},
        {"bot:4 2", WIRE_ROLE_OPS, "bad_room"},
        {"bot:a/b", WIRE_ROLE_OPS, "bad_room"},
        {"bot:0123456789012345678901234567890123456789012345678901234567890123", WIRE_ROLE_OPS,
         NULL},
        {"bot:01234567890123456789012345678901234567890123456789012345678901234", WIRE_ROLE_OPS,
         "bad_room"},
        {"opsx", WIRE_ROLE_OPS, "bad_room"},
        {"ops ", WIRE_ROLE_OPS, "bad_room"},
        {"OPS", WIRE_ROLE_OPS, "bad_room"},
        {"USER:76561198000000001", 0, "bad_room"},
        {"", WIRE_ROLE_OPS, "bad_room"},
        {"lobby", WIRE_ROLE_OPS, "bad_room"},
        {"user", 0, "bad_room"},
        {R80 "5", WIRE_ROLE_OPS, "bad_room"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wire_claims_t cl = {.sub = "76561198000000001", .roles = cases[i].roles, .exp = 1};
        const char *code = "unset";
        int rc = wire_room_check(&cl, cases[i].room, &code);

        if (cases[i].code == NULL) {
            if (rc != 0)
                fail_msg("'%s' roles %u refused: %s", cases[i].room, cases[i].roles, code);
        } else {
            if (rc != -EINVAL)
                fail_msg("'%s' roles %u allowed", cases[i].room, cases[i].roles);
            assert_string_equal(code, cases[i].code);
        }
    }
}

/* A subject that is a valid name id but not a user id has no user room. */
static void
test_room_check_sub_forms(void **state)
{
    wire_claims_t cl = {.sub = "svc.worker-1", .roles = 0, .exp = 1};
    const char *code;
    (void)state;

    assert_int_equal(wire_room_check(&cl, "user:svc.worker-1", &code), -EINVAL);
    assert_string_equal(code, "bad_room");
    strcpy(cl.sub, "Alice");
    assert_int_equal(wire_room_check(&cl, "user:Alice", &code), 0);
    assert_int_equal(wire_room_check(&cl, "user:alice", &code), -EINVAL);
    assert_string_equal(code, "forbidden");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_op_table),
        cmocka_unit_test(test_room_check),
        cmocka_unit_test(test_room_check_sub_forms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
