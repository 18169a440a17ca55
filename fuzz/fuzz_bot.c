/*
 * fuzz_bot: the bot text protocol (wire_bot_parse) and bot channel names
 * (wire_bot_channel_id), both on the same input.
 *
 * Checks: every part points into the payload, in order, each separated
 * from the previous by exactly one space; each part is within its alphabet
 * and length (command 1..32 of [A-Za-z0-9_-], bot id a name id, steamId a
 * user id, trade hash 1..128 of [A-Za-z0-9_-] right after the first '_');
 * a part is present only if the one before it is; a failed parse leaves
 * nothing half-filled. A channel id is the bytes after "bot ".
 */
#include "fuzz.h"
#include "wire.h"

#define TOKEN_ALPHABET FUZZ_ALNUM "_-"

static void
check_cmd(const char *in, size_t size, const wire_bot_cmd_t *c)
{
    FUZZ_CHECK(c->command == in);
    FUZZ_CHECK(c->command_len >= 1 && c->command_len <= 32);
    FUZZ_CHECK(fuzz_within(c->command, c->command_len, in, size));
    FUZZ_CHECK(fuzz_only(c->command, c->command_len, TOKEN_ALPHABET));

    if (c->bot_id == NULL) {
        FUZZ_CHECK(c->bot_id_len == 0 && c->steamid == NULL && c->tradehash == NULL);
    } else {
        FUZZ_CHECK(c->bot_id == c->command + c->command_len + 1 && c->bot_id[-1] == ' ');
        FUZZ_CHECK(fuzz_within(c->bot_id, c->bot_id_len, in, size));
        FUZZ_CHECK(wire_valid_name_id(c->bot_id, c->bot_id_len));
    }

    if (c->steamid == NULL) {
        FUZZ_CHECK(c->steamid_len == 0 && c->tradehash == NULL);
    } else {
        FUZZ_CHECK(c->steamid == c->bot_id + c->bot_id_len + 1 && c->steamid[-1] == ' ');
        FUZZ_CHECK(fuzz_within(c->steamid, c->steamid_len, in, size));
        FUZZ_CHECK(wire_valid_user_id(c->steamid, c->steamid_len));
    }

    if (c->tradehash == NULL) {
        FUZZ_CHECK(c->tradehash_len == 0);
        /* a lone steamId token ends at a space, a line end or the end */
        if (c->steamid != NULL) {
            size_t end = (size_t)(c->steamid - in) + c->steamid_len;
            FUZZ_CHECK(end == size || in[end] == ' ' || in[end] == '\n' || in[end] == '\r');
        }
    } else {
        FUZZ_CHECK(c->tradehash == c->steamid + c->steamid_len + 1 && c->tradehash[-1] == '_');
        FUZZ_CHECK(c->tradehash_len >= 1 && c->tradehash_len <= WIRE_TRADEHASH_MAX);
        FUZZ_CHECK(fuzz_within(c->tradehash, c->tradehash_len, in, size));
        FUZZ_CHECK(fuzz_only(c->tradehash, c->tradehash_len, TOKEN_ALPHABET));
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = fuzz_dup(data, size);
    wire_bot_cmd_t c;
    const char *id = NULL;
    size_t idlen = 0;

    if (wire_bot_parse(in, size, &c) == 0) {
        check_cmd(in, size, &c);
    } else {
        FUZZ_CHECK(c.command == NULL && c.bot_id == NULL && c.steamid == NULL &&
                   c.tradehash == NULL);
        FUZZ_CHECK(c.command_len == 0 && c.bot_id_len == 0 && c.steamid_len == 0 &&
                   c.tradehash_len == 0);
    }

    if (wire_bot_channel_id(in, size, &id, &idlen) == 0) {
        FUZZ_CHECK(size > 4 && memcmp(in, "bot ", 4) == 0);
        FUZZ_CHECK(id == in + 4 && idlen == size - 4);
        FUZZ_CHECK(wire_valid_name_id(id, idlen));
    } else {
        FUZZ_CHECK(size <= 4 || memcmp(in, "bot ", 4) != 0 ||
                   !wire_valid_name_id(in + 4, size - 4));
    }

    free(in);
    return 0;
}
