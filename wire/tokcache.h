/*
 * wire/tokcache.h: tokens a key set has verified, kept until their `exp`
 * (tokcache.c). Internal to wire: keys.c owns one per key set, so a key
 * set reloaded (SIGHUP) starts with none.
 */
#ifndef COORDHUB_WIRE_TOKCACHE_H
#define COORDHUB_WIRE_TOKCACHE_H

#include "wire.h"

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Slots of the cache; a token takes the slot its hash names, evicting the
 * one there. */
#define TOKCACHE_SLOTS 512

typedef struct tokcache_entry {
    char *token; /* NULL: empty slot; else its own copy */
    size_t len;
    long long nbf; /* 0 when the token has none */
    wire_claims_t claims;
} tokcache_entry_t;

typedef struct tokcache {
    tokcache_entry_t slot[TOKCACHE_SLOTS];
    uint64_t seed; /* of the slot hash, random per cache */
    uint64_t hits, misses;
} tokcache_t;

/* An empty cache, or NULL without memory. */
tokcache_t *wire__tokcache_new(void);
/* Frees every token kept and the cache (NULL is fine). */
void wire__tokcache_free(tokcache_t *tc);
/* 1 and `out` filled when the very same token was verified before and is
 * still valid at `now` (nbf <= now < exp); else 0 (a slot holding it while
 * it is no longer valid is emptied). The token is compared in constant
 * time: a client cannot learn another client's token from how long a
 * refusal took. */
int wire__tokcache_get(tokcache_t *tc, const char *token, size_t len, time_t now,
                       wire_claims_t *out);
/* Keeps a token just verified with its claims; without memory, keeps
 * nothing. */
void wire__tokcache_put(tokcache_t *tc, const char *token, size_t len, long long nbf,
                        const wire_claims_t *claims);

#endif
