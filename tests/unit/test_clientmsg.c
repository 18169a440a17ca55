/*
 * tests/unit/test_clientmsg.c: native client frames (gw__client_op_parse)
 * and room access (gw__room_check).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "guard.h"
#include "gw_int.h"

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
    enum gw_op op;
    const char *room; /* for join/leave */
} op_case_t;

static const op_case_t op_cases[] = {
    {S("{\"op\":\"join\",\"room\":\"user:1\"}"), NULL, GW_OP_JOIN, "user:1"},
    {S("{\"room\":\"bot:42\",\"op\":\"leave\"}"), NULL, GW_OP_LEAVE, "bot:42"},
    {S("{\"op\":\"ping\"}"), NULL, GW_OP_PING, NULL},
    {S(" {\"op\":\"ping\",\"extra\":[1,2]} \n"), NULL, GW_OP_PING, NULL},
    {S("{\"op\":\"ping\",\"room\":5}"), NULL, GW_OP_PING, NULL},
    {S("{\"op\":\"join\",\"room\":\"" R80 "\"}"), NULL, GW_OP_JOIN, R80},
    /* the room is copied as given; gw__room_check judges it */
    {S("{\"op\":\"join\",\"room\":\"nowhere\"}"), NULL, GW_OP_JOIN, "nowhere"},
    {S("{\"op\":\"join\",\"room\":\"\\u00e9\"}"), NULL, GW_OP_JOIN, "\xc3\xa9"},
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
    assert_int_equal(strlen(R80), GW_ROOM_MAX);
    for (size_t i = 0; i < sizeof op_cases / sizeof op_cases[0]; i++) {
        const op_case_t *c = &op_cases[i];
        guard_t g;
        const char *in = guard_place(&g, c->in, c->len);
        const char *code = NULL, *msg = NULL;
        gw_client_op_t out;
        int rc;

        assert_non_null(in);
        rc = gw__client_op_parse(in, c->len, &out, &code, &msg);
        if (c->code == NULL) {
            if (rc != GW_OK)
                fail_msg("case %zu '%.*s' refused: %s", i, (int)c->len, c->in, code);
            assert_int_equal(out.op, c->op);
            if (c->room)
                assert_string_equal(out.room, c->room);
        } else {
            if (rc != GW_EPARSE)
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
        {"user:76561198000000001", GW_ROLE_OPS, NULL},
        {"user:76561198000000002", 0, "forbidden"},
        {"user:76561198000000002", GW_ROLE_OPS | GW_ROLE_ADMIN | GW_ROLE_SERVICE, "forbidden"},
        {"user:7656119800000000", 0, "forbidden"},
        {"user:765611980000000011", 0, "forbidden"},
        {"bot:42", GW_ROLE_OPS, NULL},
        {"bot:a.b-c_d", GW_ROLE_OPS, NULL},
        {"bot:42", 0, "forbidden"},
        {"bot:42", GW_ROLE_ADMIN | GW_ROLE_SERVICE, "forbidden"},
        {"ops", GW_ROLE_OPS, NULL},
        {"ops", GW_ROLE_ADMIN, "forbidden"},
        {"ops", 0, "forbidden"},
        {"user:", 0, "bad_room"},
        {"user:bad!", 0, "bad_room"},
        {"user:7656119800000000_1", 0, "bad_room"},
        {"bot:", GW_ROLE_OPS, "bad_room"},
        {"bot:4 2", GW_ROLE_OPS, "bad_room"},
        {"bot:a/b", GW_ROLE_OPS, "bad_room"},
        {"bot:0123456789012345678901234567890123456789012345678901234567890123", GW_ROLE_OPS, NULL},
        {"bot:01234567890123456789012345678901234567890123456789012345678901234", GW_ROLE_OPS,
         "bad_room"},
        {"opsx", GW_ROLE_OPS, "bad_room"},
        {"ops ", GW_ROLE_OPS, "bad_room"},
        {"OPS", GW_ROLE_OPS, "bad_room"},
        {"USER:76561198000000001", 0, "bad_room"},
        {"", GW_ROLE_OPS, "bad_room"},
        {"lobby", GW_ROLE_OPS, "bad_room"},
        {"user", 0, "bad_room"},
        {R80 "5", GW_ROLE_OPS, "bad_room"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gw_claims_t cl = {.sub = "76561198000000001", .roles = cases[i].roles, .exp = 1};
        const char *code = "unset";
        int rc = gw__room_check(&cl, cases[i].room, &code);

        if (cases[i].code == NULL) {
            if (rc != GW_OK)
                fail_msg("'%s' roles %u refused: %s", cases[i].room, cases[i].roles, code);
        } else {
            if (rc != GW_EPARSE)
                fail_msg("'%s' roles %u allowed", cases[i].room, cases[i].roles);
            assert_string_equal(code, cases[i].code);
        }
    }
}

/* A subject that is a valid name id but not a user id has no user room. */
static void
test_room_check_sub_forms(void **state)
{
    gw_claims_t cl = {.sub = "svc.worker-1", .roles = 0, .exp = 1};
    const char *code;
    (void)state;

    assert_int_equal(gw__room_check(&cl, "user:svc.worker-1", &code), GW_EPARSE);
    assert_string_equal(code, "bad_room");
    strcpy(cl.sub, "Alice");
    assert_int_equal(gw__room_check(&cl, "user:Alice", &code), GW_OK);
    assert_int_equal(gw__room_check(&cl, "user:alice", &code), GW_EPARSE);
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
