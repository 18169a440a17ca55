/*
 * util/htable.c: the one hash table of the hub (util.h): intrusive, chained,
 * keyed by bytes, doubling when it holds more nodes than buckets so that a
 * lookup is O(1) expected however many rooms, names or keys there are.
 */
#include "util.h"

#include <stdlib.h>
#include <string.h>

#define INITIAL_BUCKETS 16 /* a power of two */

/*
 * The hash (util.h) is FNV-1a, 64 bits. Not keyed, so not flood-proof in
 * general; it is enough because no table of ours is keyed by free input:
 * room names come from verified token subjects or need the ops role, lock
 * names and app ids are validated and reached only with the service role,
 * configuration keys are validated, and each table is bounded by its owner.
 */

static void
grow(util_htable_t *t)
{
    size_t nb = t->buckets ? (t->mask + 1) * 2 : INITIAL_BUCKETS;
    util_hnode_t **b = util_calloc(nb, sizeof *b);

    if (t->buckets != NULL) {
        for (size_t i = 0; i <= t->mask; i++) {
            util_hnode_t *n = t->buckets[i], *next;
            for (; n; n = next) {
                next = n->next;
                n->next = b[n->hash & (nb - 1)];
                b[n->hash & (nb - 1)] = n;
            }
        }
        free(t->buckets);
    }
    t->buckets = b;
    t->mask = nb - 1;
}

void
util_htable_insert(util_htable_t *t, util_hnode_t *n, const char *key, size_t len)
{
    util_htable_insert_hashed(t, n, key, len, util_hash(key, len));
}

void
util_htable_insert_hashed(util_htable_t *t, util_hnode_t *n, const char *key, size_t len,
                          uint64_t h)
{
    util_hnode_t **slot;

    if (t->buckets == NULL || t->count > t->mask)
        grow(t);
    n->key = key;
    n->len = len;
    n->hash = h;
    slot = &t->buckets[n->hash & t->mask];
    n->next = *slot;
    *slot = n;
    t->count++;
}

void
util_htable_remove(util_htable_t *t, util_hnode_t *n)
{
    util_hnode_t **pp = &t->buckets[n->hash & t->mask];

    while (*pp != n)
        pp = &(*pp)->next;
    *pp = n->next;
    n->next = NULL;
    t->count--;
}

util_hnode_t *
util_htable_next(const util_htable_t *t, const util_hnode_t *n)
{
    size_t b;

    if (t->buckets == NULL)
        return NULL;
    if (n != NULL) {
        if (n->next != NULL)
            return n->next;
        b = (size_t)(n->hash & t->mask) + 1;
    } else {
        b = 0;
    }
    for (; b <= t->mask; b++)
        if (t->buckets[b] != NULL)
            return t->buckets[b];
    return NULL;
}

void
util_htable_free(util_htable_t *t)
{
    free(t->buckets);
    memset(t, 0, sizeof *t);
}
