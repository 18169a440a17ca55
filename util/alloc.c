/* util/alloc.c: the one allocation wrapper; aborts on OOM (see util.h). */
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
oom(size_t n)
{
    fprintf(stderr,
            "{\"level\":\"error\",\"mod\":\"util\",\"msg\":\"out of memory allocating %zu "
            "bytes\"}\n",
            n);
    abort();
}

void *
util_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom(n);
    return p;
}

void *
util_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p == NULL)
        oom(count * size);
    return p;
}

void *
util_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom(n);
    return q;
}

char *
util_strndup(const char *s, size_t n)
{
    char *d = util_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *
util_strdup(const char *s)
{
    return util_strndup(s, strlen(s));
}
