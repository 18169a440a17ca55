/*
 * gateway/deadline.c: deadline lists sorted by construction (deadline.h).
 */
#include "deadline.h"

#include <stddef.h>

void
gw__sched_cancel(gw_snode_t *n)
{
    gw_slist_t *l = n->in;

    if (l == NULL)
        return;
    if (n->prev)
        n->prev->next = n->next;
    else
        l->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        l->tail = n->prev;
    n->prev = n->next = NULL;
    n->in = NULL;
}

void
gw__sched_put(gw_slist_t *l, gw_snode_t *n, uint64_t at)
{
    gw_snode_t *after;

    gw__sched_cancel(n);
    n->at = at;
    after = l->tail;
    while (after != NULL && after->at > at)
        after = after->prev;
    n->prev = after;
    n->next = after ? after->next : l->head;
    if (n->next)
        n->next->prev = n;
    else
        l->tail = n;
    if (after)
        after->next = n;
    else
        l->head = n;
    n->in = l;
}

void
gw__sched_replace(gw_snode_t *from, gw_snode_t *to)
{
    gw_slist_t *l = from->in;

    if (l == NULL)
        return;
    *to = *from;
    if (to->prev)
        to->prev->next = to;
    else
        l->head = to;
    if (to->next)
        to->next->prev = to;
    else
        l->tail = to;
    from->prev = from->next = NULL;
    from->in = NULL;
}

gw_snode_t *
gw__sched_due(const gw_slist_t *l, uint64_t now)
{
    return l->head != NULL && l->head->at <= now ? l->head : NULL;
}
