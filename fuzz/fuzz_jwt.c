/*
 * fuzz_jwt: wire_jwt_verify on the raw input as a token, with a fixed
 * secret and clock. The seeds are genuine tokens for that secret, so
 * mutations start from the signed shape (three base64url segments).
 *
 * Checks: a refusal always says why; an accepted token's claims keep the
 * contract (sub a name id, exp in the future, only known role bits).
 */
#include "jwt_common.h"

#include <jansson.h>

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    json_object_seed(1);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = fuzz_dup(data, size);
    wire_claims_t cl;
    const char *why = NULL;

    memset(&cl, 0x55, sizeof cl);
    if (wire_jwt_verify(FUZZ_JWT_SECRET, in, size, FUZZ_JWT_NOW, &cl, &why) == 0) {
        FUZZ_CHECK(size <= WIRE_TOKEN_MAX);
        fuzz_check_claims(&cl);
    } else {
        FUZZ_CHECK(why != NULL);
    }
    free(in);
    return 0;
}
