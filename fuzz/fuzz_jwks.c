/*
 * fuzz_jwks: JSON Web Key Sets (wire_keyset_add_jwks), then tokens against
 * what loaded.
 *
 * The input is a key set, or "<key set>\0<token>". Checks: a set that loads
 * adds at least one key and reports no reason; one that does not names a
 * reason and leaves the set as it was (all or nothing: the one HS256
 * secret added first is still its only key); a token verified against the
 * set either fills a valid subject or names a reason; verified again (from
 * the set's cache of verified tokens when it passed) it gives the same
 * answer and claims, and at its exp it is refused.
 */
#include "jwt_common.h"

#include <errno.h>

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t jlen = nul ? (size_t)(nul - data) : size;
    wire_keyset_t *ks = NULL;
    wire_claims_t cl;
    const char *why = NULL;
    int rc;

    FUZZ_CHECK(wire_keyset_new("iss", NULL, &ks) == 0);
    FUZZ_CHECK(wire_keyset_add_secret(ks, FUZZ_JWT_SECRET) == 0);
    rc = wire_keyset_add_jwks(ks, (const char *)data, jlen, &why);
    if (rc == 0) {
        FUZZ_CHECK(why == NULL);
        FUZZ_CHECK(wire_keyset_size(ks) >= 2);
    } else {
        FUZZ_CHECK(rc == -EINVAL && why != NULL);
        FUZZ_CHECK(wire_keyset_size(ks) == 1);
    }
    if (nul != NULL) {
        const char *tok = (const char *)nul + 1;
        size_t tlen = size - jlen - 1;
        wire_claims_t again;

        why = NULL;
        memset(&cl, 0x55, sizeof cl);
        rc = wire_jwt_verify_keys(ks, tok, tlen, FUZZ_JWT_NOW, &cl, &why);
        if (rc == 0)
            fuzz_check_claims(&cl);
        else
            FUZZ_CHECK(why != NULL);
        memset(&again, 0x55, sizeof again);
        FUZZ_CHECK(wire_jwt_verify_keys(ks, tok, tlen, FUZZ_JWT_NOW, &again, &why) == rc);
        if (rc == 0) {
            FUZZ_CHECK(strcmp(again.sub, cl.sub) == 0 && again.roles == cl.roles &&
                       again.exp == cl.exp);
            FUZZ_CHECK(wire_jwt_verify_keys(ks, tok, tlen, (time_t)cl.exp, &again, &why) != 0);
        }
    }
    wire_keyset_free(ks);
    return 0;
}
