/*
 * gateway/rooms.c: the room registry. A room is a named set of members
 * (connections); the router visits a room's members for each event.
 *
 * Rooms live in the hub's hash table (util.h: chained, doubling when it
 * holds more rooms than buckets), so lookup is O(1) expected. Each membership is one node on
 * two intrusive doubly linked lists: the room's member list and the
 * member's room list. Leaving one room is O(1) after the lookup plus a
 * walk of the member's (short) room list, leaving all rooms is
 * O(memberships), and a room is freed as soon as its last member leaves, so
 * the registry holds exactly the rooms somebody is in.
 */
#include "rooms.h"

#include <uv.h>
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct gw_room gw_room_t;

struct gw_membership {
    gw_room_t *room;
    gw_member_t *member;
    struct gw_membership *rprev, *rnext; /* the room's members */
    struct gw_membership *mprev, *mnext; /* the member's rooms */
};

struct gw_room {
    util_hnode_t node; /* in the registry, keyed by `name` (node.len bytes) */
    struct gw_membership *members;
    size_t size;
    char name[]; /* node.len bytes, NUL-terminated for the logs */
};

/* Room names are not free input (user rooms come from verified token
 * subjects, bot and ops rooms need the ops role), which is what the table's
 * unkeyed hash asks of its keys. */
struct gw_rooms {
    util_htable_t table; /* gw_room_t by name */
};

static gw_room_t *
room_find(const gw_rooms_t *r, const char *name, size_t len)
{
    util_hnode_t *n = util_htable_find(&r->table, name, len);
    return n ? UTIL_CONTAINER_OF(n, gw_room_t, node) : NULL;
}

/* The membership of `m` in `rm`, by a walk of the member's rooms. */
static struct gw_membership *
membership_find(const gw_room_t *rm, const gw_member_t *m)
{
    for (struct gw_membership *ms = m->rooms; ms; ms = ms->mnext)
        if (ms->room == rm)
            return ms;
    return NULL;
}

/* Takes `rm` out of the registry and frees it. */
static void
room_remove(gw_rooms_t *r, gw_room_t *rm)
{
    util_htable_remove(&r->table, &rm->node);
    free(rm);
}

/* Unlinks `ms` from both lists, frees it, and the room with it if empty. */
static void
membership_drop(gw_rooms_t *r, struct gw_membership *ms)
{
    gw_room_t *rm = ms->room;
    gw_member_t *m = ms->member;

    if (ms->rprev)
        ms->rprev->rnext = ms->rnext;
    else
        rm->members = ms->rnext;
    if (ms->rnext)
        ms->rnext->rprev = ms->rprev;
    if (ms->mprev)
        ms->mprev->mnext = ms->mnext;
    else
        m->rooms = ms->mnext;
    if (ms->mnext)
        ms->mnext->mprev = ms->mprev;
    free(ms);
    if (--rm->size == 0)
        room_remove(r, rm);
}

gw_rooms_t *
gw__rooms_new(void)
{
    return util_calloc(1, sizeof(gw_rooms_t)); /* a zeroed table is empty */
}

/*
 * Frees the registry. Members still inside (a shutdown that did not call
 * leave_all for everyone) are detached: their room lists become empty.
 */
void
gw__rooms_free(gw_rooms_t *r)
{
    util_hnode_t *n, *next;

    if (r == NULL)
        return;
    for (n = util_htable_next(&r->table, NULL); n != NULL; n = next) {
        gw_room_t *rm = UTIL_CONTAINER_OF(n, gw_room_t, node);
        struct gw_membership *ms = rm->members, *msnext;
        next = util_htable_next(&r->table, n);
        for (; ms; ms = msnext) {
            msnext = ms->rnext;
            ms->member->rooms = NULL;
            free(ms);
        }
        free(rm);
    }
    util_htable_free(&r->table);
    free(r);
}

int
gw__rooms_join(gw_rooms_t *r, const char *room, size_t len, gw_member_t *m)
{
    uint64_t h = util_hash(room, len);
    util_hnode_t *n = util_htable_find_hashed(&r->table, room, len, h);
    gw_room_t *rm = n ? UTIL_CONTAINER_OF(n, gw_room_t, node) : NULL;
    struct gw_membership *ms;

    if (rm != NULL) {
        if (membership_find(rm, m) != NULL)
            return 1;
    } else {
        rm = util_malloc(sizeof *rm + len + 1);
        memcpy(rm->name, room, len);
        rm->name[len] = '\0';
        rm->members = NULL;
        rm->size = 0;
        util_htable_insert_hashed(&r->table, &rm->node, rm->name, len, h);
    }
    ms = util_malloc(sizeof *ms);
    ms->room = rm;
    ms->member = m;
    ms->rprev = NULL;
    ms->rnext = rm->members;
    if (rm->members)
        rm->members->rprev = ms;
    rm->members = ms;
    ms->mprev = NULL;
    ms->mnext = m->rooms;
    if (m->rooms)
        m->rooms->mprev = ms;
    m->rooms = ms;
    rm->size++;
    return 0;
}

int
gw__rooms_leave(gw_rooms_t *r, const char *room, size_t len, gw_member_t *m)
{
    gw_room_t *rm = room_find(r, room, len);
    struct gw_membership *ms;

    if (rm == NULL || (ms = membership_find(rm, m)) == NULL)
        return UV_EINVAL;
    membership_drop(r, ms);
    return 0;
}

void
gw__rooms_leave_all(gw_rooms_t *r, gw_member_t *m)
{
    while (m->rooms)
        membership_drop(r, m->rooms);
}

void
gw__rooms_leave_if(gw_rooms_t *r, gw_member_t *m, int (*keep)(void *ctx, const char *room),
                   void (*left)(void *ctx, const char *room), void *ctx)
{
    struct gw_membership *ms, *next;
    char name[256];

    for (ms = m->rooms; ms; ms = next) {
        next = ms->mnext; /* dropping ms frees it, and its room if now empty */
        if (keep(ctx, ms->room->name))
            continue;
        snprintf(name, sizeof name, "%s", ms->room->name);
        membership_drop(r, ms);
        left(ctx, name);
    }
}

void
gw__rooms_each(const gw_member_t *m, void (*fn)(void *ctx, const char *room), void *ctx)
{
    for (const struct gw_membership *ms = m->rooms; ms; ms = ms->mnext)
        fn(ctx, ms->room->name);
}

void
gw__rooms_move(gw_member_t *from, gw_member_t *to)
{
    for (struct gw_membership *ms = from->rooms; ms; ms = ms->mnext)
        ms->member = to;
    to->rooms = from->rooms;
    from->rooms = NULL;
}

size_t
gw__rooms_size(const gw_rooms_t *r, const char *room, size_t len)
{
    gw_room_t *rm = room_find(r, room, len);
    return rm ? rm->size : 0;
}

size_t
gw__rooms_count(const gw_rooms_t *r)
{
    return r->table.count;
}

int
gw__rooms_is_member(const gw_rooms_t *r, const char *room, size_t len, const gw_member_t *m)
{
    gw_room_t *rm = room_find(r, room, len);
    return rm != NULL && membership_find(rm, m) != NULL;
}

/*
 * Visits every member of `room`. The next node is read before `fn` runs, so
 * `fn` may (as an exception to the header's rule) make the member it was
 * given leave; it must not touch any other membership of this room.
 */
size_t
gw__rooms_visit(gw_rooms_t *r, const char *room, size_t len, void (*fn)(void *ctx, void *owner),
                void *ctx)
{
    gw_room_t *rm = room_find(r, room, len);
    struct gw_membership *ms, *next;
    size_t n = 0;

    if (rm == NULL)
        return 0;
    for (ms = rm->members; ms; ms = next) {
        next = ms->rnext;
        fn(ctx, ms->member->owner);
        n++;
    }
    return n;
}
