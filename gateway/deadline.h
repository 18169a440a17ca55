/*
 * gateway/deadline.h: deadline lists (deadline.c). Each list holds nodes whose
 * deadlines are all "now + one fixed duration" (Engine.IO's ping interval,
 * its ping timeout, the connect timeout), so appending keeps a list sorted:
 * the earliest deadline is the head, scheduling and cancelling are O(1),
 * and one timer at the earliest head serves every connection, exactly on
 * time (no per-connection timer, no periodic scan). Pure: no loop, no lws.
 */
#ifndef COORDHUB_GW_DEADLINE_H
#define COORDHUB_GW_DEADLINE_H

#include <stdint.h>

typedef struct gw_slist gw_slist_t;

typedef struct gw_snode {
    struct gw_snode *prev, *next;
    gw_slist_t *in; /* the list it is on, NULL when on none */
    uint64_t at;    /* its deadline, loop ms */
} gw_snode_t;

struct gw_slist {
    gw_snode_t *head, *tail;
};

/* Puts `n` on `l` with deadline `at` (off any list it was on first). A
 * deadline earlier than the tail's is walked into place from the tail, so
 * the list stays sorted whatever the caller does; with one fixed duration
 * per list that walk is never taken. */
void gw__sched_put(gw_slist_t *l, gw_snode_t *n, uint64_t at);
/* Takes `n` off its list, if it is on one. */
void gw__sched_cancel(gw_snode_t *n);
/* `to` (on no list) takes `from`'s place, deadline and all. */
void gw__sched_replace(gw_snode_t *from, gw_snode_t *to);
/* The head of `l` if its deadline is at or before `now`, else NULL. */
gw_snode_t *gw__sched_due(const gw_slist_t *l, uint64_t now);

#endif
