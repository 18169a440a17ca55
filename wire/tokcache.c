/*
 * wire/tokcache.c: verified tokens, reused until their `exp`.
 *
 * A token's verification (base64url, two JSON parses, an HMAC or a
 * signature check) is most of what an authenticated HTTP request costs the
 * hub; a service sends the same token with every request until it
 * expires. The cache is keyed by the whole token: a hit compares every
 * byte, so a token differing anywhere (its signature included) is verified
 * in full. Only tokens that verified are kept, with what decides their
 * validity over time (exp, nbf); the key set's other checks do not depend
 * on time. Direct-mapped and bounded: a token evicts whatever its slot
 * held, which costs that token one verification more.
 */
#include "tokcache.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

/* FNV-1a from a random start: spreads tokens over the slots. Nothing
 * depends on it resisting an attacker (only verified tokens get in; a
 * collision evicts; the comparison takes the same time wherever the
 * tokens differ); the random start only keeps slots from being chosen
 * ahead. */
static size_t
slot_of(const tokcache_t *tc, const char *token, size_t len)
{
    uint64_t h = 14695981039346656037ull ^ tc->seed;

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)token[i];
        h *= 1099511628211ull;
    }
    return (size_t)(h % TOKCACHE_SLOTS);
}

static void
empty(tokcache_entry_t *e)
{
    free(e->token);
    memset(e, 0, sizeof *e);
}

tokcache_t *
wire__tokcache_new(void)
{
    tokcache_t *tc = calloc(1, sizeof *tc);

    /* without randomness the start is fixed: slower to spread, no less sound */
    if (tc != NULL && RAND_bytes((unsigned char *)&tc->seed, sizeof tc->seed) != 1)
        tc->seed = 0;
    return tc;
}

void
wire__tokcache_free(tokcache_t *tc)
{
    if (tc == NULL)
        return;
    for (size_t i = 0; i < TOKCACHE_SLOTS; i++)
        empty(&tc->slot[i]);
    free(tc);
}

int
wire__tokcache_get(tokcache_t *tc, const char *token, size_t len, time_t now,
                   wire_claims_t *out)
{
    tokcache_entry_t *e = &tc->slot[slot_of(tc, token, len)];

    if (e->token == NULL || e->len != len || CRYPTO_memcmp(e->token, token, len) != 0) {
        tc->misses++;
        return 0;
    }
    if (e->claims.exp <= (long long)now || e->nbf > (long long)now) {
        /* verified again in full, which says why it is refused */
        empty(e);
        tc->misses++;
        return 0;
    }
    *out = e->claims;
    tc->hits++;
    return 1;
}

void
wire__tokcache_put(tokcache_t *tc, const char *token, size_t len, long long nbf,
                   const wire_claims_t *claims)
{
    tokcache_entry_t *e = &tc->slot[slot_of(tc, token, len)];
    char *copy = malloc(len);

    if (copy == NULL)
        return;
    memcpy(copy, token, len);
    empty(e);
    e->token = copy;
    e->len = len;
    e->nbf = nbf;
    e->claims = *claims;
}
