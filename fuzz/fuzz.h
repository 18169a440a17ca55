/*
 * fuzz/fuzz.h: what every libFuzzer target here shares.
 *
 * Each target copies libFuzzer's input into a malloc'd buffer of exactly
 * `size` bytes (or size + 1 with a NUL, for the C-string APIs), so an
 * over-read by one byte is an AddressSanitizer report, and checks the
 * parser's contract with FUZZ_CHECK: a broken invariant aborts, which
 * libFuzzer reports as a crash and saves the input.
 */
#ifndef COORDHUB_FUZZ_H
#define COORDHUB_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The input in a buffer of exactly `size` bytes (no terminator). */
static inline char *
fuzz_dup(const uint8_t *data, size_t size)
{
    char *p = malloc(size);
    if (p == NULL && size != 0)
        abort();
    if (size != 0)
        memcpy(p, data, size);
    return p;
}

/* The input as a C string in a buffer of exactly size + 1 bytes (it may
 * hold NULs before the terminator; a C-string API then sees a prefix). */
static inline char *
fuzz_cstr(const uint8_t *data, size_t size)
{
    char *p = malloc(size + 1);
    if (p == NULL)
        abort();
    if (size != 0)
        memcpy(p, data, size);
    p[size] = '\0';
    return p;
}

/* Is [p, p + n) inside [base, base + len)? */
static inline int
fuzz_within(const void *p, size_t n, const void *base, size_t len)
{
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)base;
    return p != NULL && a >= b && a - b <= len && n <= len - (a - b);
}

/* Does s[0..n) hold only bytes of `alphabet`? */
static inline int
fuzz_only(const char *s, size_t n, const char *alphabet)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\0' || strchr(alphabet, s[i]) == NULL)
            return 0;
    return 1;
}

#define FUZZ_ALNUM "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

#endif
