/*
 * util/random.c: random ids (util.h), from the kernel's CSPRNG.
 *
 * Failure policy: getrandom(2) without flags blocks until the kernel's pool
 * is initialised (early boot only) and then cannot fail for the few bytes
 * asked here; an interrupted call is retried. Any other failure (ENOSYS on
 * a kernel without it, EFAULT) aborts the process with one line, as running
 * out of memory does: a lock token or a session id that is not
 * unpredictable would break a promise silently, which is worse than a
 * restart.
 *
 * State: a per-thread pool of kernel bytes (the one exception to "no
 * globals outside main.c" in util/, for one system call per sixteen ids
 * instead of one each). The hub never forks, so no two processes can hand
 * out the same bytes.
 */
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static void
fill(unsigned char *buf, size_t n)
{
    size_t got = 0;

    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r > 0) {
            got += (size_t)r;
        } else if (r < 0 && errno != EINTR) {
            fprintf(stderr, "coordhub: getrandom failed: %s\n", strerror(errno));
            abort();
        }
    }
}

/* The kernel's bytes are taken 256 at a time (one system call for about
 * sixteen lock tokens instead of one each) and each byte given out once:
 * it is wiped from the pool as it leaves. Per thread, so no lock. */
#define POOL 256

static void
random_bytes(unsigned char *buf, size_t n)
{
    static _Thread_local unsigned char pool[POOL];
    static _Thread_local size_t left;

    if (n > POOL) {
        fill(buf, n);
        return;
    }
    if (left < n) {
        fill(pool, POOL);
        left = POOL;
    }
    memcpy(buf, pool + POOL - left, n);
    memset(pool + POOL - left, 0, n);
    left -= n;
}

void
util_random_id(char *out, size_t nchars, enum util_id_alphabet alphabet)
{
    static const char hex[] = "0123456789abcdef";
    static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned bits = alphabet == UTIL_ID_HEX ? 4 : 6;
    const char *digits = alphabet == UTIL_ID_HEX ? hex : b64url;
    unsigned char buf[96];
    size_t nbytes = (nchars * bits + 7) / 8;
    uint32_t acc = 0;
    unsigned have = 0;
    size_t in = 0;

    if (nbytes > sizeof buf)
        abort(); /* ids are short: a caller's bug */
    random_bytes(buf, nbytes);
    /* most significant bits first: 15 bytes give the same 20 base64url
     * characters as a base64 encoder would */
    for (size_t i = 0; i < nchars; i++) {
        if (have < bits) {
            acc = acc << 8 | buf[in++];
            have += 8;
        }
        have -= bits;
        out[i] = digits[(acc >> have) & ((1u << bits) - 1)];
    }
    out[nchars] = '\0';
}
