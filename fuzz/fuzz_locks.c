/*
 * fuzz_locks: what clients send to the lock routes: the name
 * (lock_valid_name) and the JSON bodies of acquire, extend and release
 * (lock_parse_acquire / _extend / _release), all on the same input.
 *
 * Checks: the name check agrees with the documented rule (1..200 of
 * A-Za-z0-9:_.-{}, not starting "coordhub:"); accepted bodies hold values
 * in range (ttl_ms 1..86400000, wait_ms 0..60000, owner <= 128 bytes,
 * token 1..64 bytes, NUL-terminated in exactly-sized buffers); a refusal
 * names the problem; a body good for extend is good for release with the
 * same token.
 */
#include "fuzz.h"
#include "locks.h"

#include <jansson.h>

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    json_object_seed(1);
    return 0;
}

static int
name_rule(const char *s, size_t n)
{
    return n >= 1 && n <= LOCK_NAME_MAX && fuzz_only(s, n, FUZZ_ALNUM ":_.-{}") &&
           !(n >= 9 && memcmp(s, "coordhub:", 9) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = fuzz_dup(data, size);
    lock_acquire_args_t *a = malloc(sizeof *a);
    char *tok = malloc(LOCK_TOKEN_MAX + 1), *tok2 = malloc(LOCK_TOKEN_MAX + 1);
    const char *err = NULL;
    long long ttl = -1;
    int extend_ok;

    FUZZ_CHECK(a != NULL && tok != NULL && tok2 != NULL);

    if (lock_valid_name(in, size, &err) == 0) {
        FUZZ_CHECK(name_rule(in, size));
    } else {
        FUZZ_CHECK(err != NULL);
        FUZZ_CHECK(!name_rule(in, size));
    }

    err = NULL;
    if (lock_parse_acquire(in, size, a, &err) == 0) {
        FUZZ_CHECK(a->ttl_ms >= 1 && a->ttl_ms <= LOCK_TTL_MAX);
        FUZZ_CHECK(a->wait_ms >= 0 && a->wait_ms <= LOCK_WAIT_MAX);
        FUZZ_CHECK(strnlen(a->owner, sizeof a->owner) <= LOCK_OWNER_MAX);
    } else {
        FUZZ_CHECK(err != NULL);
    }

    err = NULL;
    extend_ok = lock_parse_extend(in, size, tok, &ttl, &err) == 0;
    if (extend_ok) {
        size_t n = strnlen(tok, LOCK_TOKEN_MAX + 1);
        FUZZ_CHECK(n >= 1 && n <= LOCK_TOKEN_MAX);
        FUZZ_CHECK(ttl >= 1 && ttl <= LOCK_TTL_MAX);
    } else {
        FUZZ_CHECK(err != NULL);
    }

    err = NULL;
    if (lock_parse_release(in, size, tok2, &err) == 0) {
        size_t n = strnlen(tok2, LOCK_TOKEN_MAX + 1);
        FUZZ_CHECK(n >= 1 && n <= LOCK_TOKEN_MAX);
        if (extend_ok)
            FUZZ_CHECK(strcmp(tok, tok2) == 0);
    } else {
        FUZZ_CHECK(err != NULL);
        FUZZ_CHECK(!extend_ok);
    }

    free(tok2);
    free(tok);
    free(a);
    free(in);
    return 0;
}
