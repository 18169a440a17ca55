/*
 * tests/unit/guard.h: helpers shared by the unit tests (header-only, each
 * test is its own executable).
 *
 * guard_place() copies bytes so that they end exactly at the end of a
 * readable mapping followed by a PROT_NONE page: a parser that reads even
 * one byte past `len` dies with SIGSEGV instead of passing by luck.
 */
#ifndef COORDHUB_TEST_GUARD_H
#define COORDHUB_TEST_GUARD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct guard {
    unsigned char *base;
    size_t maplen;
} guard_t;

/* Maps enough pages for `n` bytes plus one guard page and copies `src`
 * to the end of the readable part. Returns the copy, or NULL. */
static inline const char *
guard_place(guard_t *g, const void *src, size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t data_pages = n / page + 1;
    unsigned char *base;

    g->base = NULL;
    g->maplen = (data_pages + 1) * page;
    base = mmap(NULL, g->maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    if (mprotect(base + data_pages * page, page, PROT_NONE) != 0) {
        munmap(base, g->maplen);
        return NULL;
    }
    g->base = base;
    if (n)
        memcpy(base + data_pages * page - n, src, n);
    return (const char *)(base + data_pages * page - n);
}

static inline void
guard_release(guard_t *g)
{
    if (g->base != NULL)
        munmap(g->base, g->maplen);
    g->base = NULL;
}

/* A small deterministic PRNG (xorshift64*) for the random-input tests, so a
 * failure reproduces. */
static inline uint64_t
test_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

#endif
