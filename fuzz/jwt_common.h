/*
 * fuzz/jwt_common.h: the fixed secret and clock of the JWT targets, and the
 * checks every accepted token must pass.
 */
#ifndef COORDHUB_FUZZ_JWT_COMMON_H
#define COORDHUB_FUZZ_JWT_COMMON_H

#include "fuzz.h"
#include "wire.h"

/* The seed tokens in fuzz/corpus/jwt/ are signed with this secret (see
 * fuzz/make-seeds.py) and carry exp values around this clock. */
#define FUZZ_JWT_SECRET "fuzz-secret-0123456789abcdef0123"
#define FUZZ_JWT_NOW ((time_t)1700000000)

#define FUZZ_ALL_ROLES (WIRE_ROLE_SERVICE | WIRE_ROLE_ADMIN | WIRE_ROLE_OPS)

/* What wire_jwt_verify promises about the claims of a token it accepted. */
static inline void
fuzz_check_claims(const wire_claims_t *cl)
{
    size_t n = strnlen(cl->sub, sizeof cl->sub);
    FUZZ_CHECK(n >= 1 && n <= WIRE_ID_MAX);
    FUZZ_CHECK(wire_valid_name_id(cl->sub, n));
    FUZZ_CHECK(cl->exp > (long long)FUZZ_JWT_NOW);
    FUZZ_CHECK((cl->roles & ~(unsigned)FUZZ_ALL_ROLES) == 0);
}

#endif
