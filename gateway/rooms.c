/*
 * gateway/rooms.c: the room registry. A room is a named set of members
 * (connections); the router visits a room's members for each event.
 *
 * Rooms live in a chained hash table that doubles when it holds more rooms
 * than buckets, so lookup is O(1) expected. Each membership is one node on
 * two intrusive doubly linked lists: the room's member list and the
 * member's room list. Leaving one room is O(1) after the lookup plus a
 * walk of the member's (short) room list, leaving all rooms is
 * O(memberships), and a room is freed as soon as its last member leaves, so
 * the registry holds exactly the rooms somebody is in.
 */
#include "gw_int.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

#define ROOMS_INITIAL_BUCKETS 16

typedef struct gw_room gw_room_t;

struct gw_membership {
    gw_room_t *room;
    gw_member_t *member;
    struct gw_membership *rprev, *rnext; /* the room's members */
    struct gw_membership *mprev, *mnext; /* the member's rooms */
};

struct gw_room {
    gw_room_t *hnext; /* bucket chain */
    uint64_t hash;
    struct gw_membership *members;
    size_t size;
    size_t len;
    char name[]; /* len bytes, NUL-terminated for the logs */
};

struct gw_rooms {
    gw_room_t **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
};

/*
 * FNV-1a. Not keyed, so not flood-proof in general; it is enough here
 * because room names are not free input: user rooms come from verified
 * token subjects and bot/ops rooms need the ops role.
 */
static uint64_t
room_hash(const char *s, size_t n)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static gw_room_t *
room_find(const gw_rooms_t *r, const char *name, size_t len, uint64_t h)
{
    gw_room_t *rm = r->buckets[h & (r->nbuckets - 1)];
    for (; rm; rm = rm->hnext)
        if (rm->hash == h && rm->len == len && memcmp(rm->name, name, len) == 0)
            return rm;
    return NULL;
}

static void
rooms_grow(gw_rooms_t *r)
{
    size_t nb = r->nbuckets * 2;
    gw_room_t **b = util_calloc(nb, sizeof *b);
    for (size_t i = 0; i < r->nbuckets; i++) {
        gw_room_t *rm = r->buckets[i], *next;
        for (; rm; rm = next) {
            next = rm->hnext;
            rm->hnext = b[rm->hash & (nb - 1)];
            b[rm->hash & (nb - 1)] = rm;
        }
    }
    free(r->buckets);
    r->buckets = b;
    r->nbuckets = nb;
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

/* Unlinks `rm` from its bucket (it is known to be there) and frees it. */
static void
room_remove(gw_rooms_t *r, gw_room_t *rm)
{
    gw_room_t **pp = &r->buckets[rm->hash & (r->nbuckets - 1)];
    while (*pp != rm)
        pp = &(*pp)->hnext;
    *pp = rm->hnext;
    r->count--;
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
    gw_rooms_t *r = util_calloc(1, sizeof *r);
    r->nbuckets = ROOMS_INITIAL_BUCKETS;
    r->buckets = util_calloc(r->nbuckets, sizeof *r->buckets);
    return r;
}

/*
 * Frees the registry. Members still inside (a shutdown that did not call
 * leave_all for everyone) are detached: their room lists become empty.
 */
void
gw__rooms_free(gw_rooms_t *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nbuckets; i++) {
        gw_room_t *rm = r->buckets[i], *next;
        for (; rm; rm = next) {
            struct gw_membership *ms = rm->members, *msnext;
            next = rm->hnext;
            for (; ms; ms = msnext) {
                msnext = ms->rnext;
                ms->member->rooms = NULL;
                free(ms);
            }
            free(rm);
        }
    }
    free(r->buckets);
    free(r);
}

int
gw__rooms_join(gw_rooms_t *r, const char *room, size_t len, gw_member_t *m)
{
    uint64_t h = room_hash(room, len);
    gw_room_t *rm = room_find(r, room, len, h);
    struct gw_membership *ms;

    if (rm != NULL) {
        if (membership_find(rm, m) != NULL)
            return 1;
    } else {
        if (r->count >= r->nbuckets)
            rooms_grow(r);
        rm = util_malloc(sizeof *rm + len + 1);
        memcpy(rm->name, room, len);
        rm->name[len] = '\0';
        rm->len = len;
        rm->hash = h;
        rm->members = NULL;
        rm->size = 0;
        rm->hnext = r->buckets[h & (r->nbuckets - 1)];
        r->buckets[h & (r->nbuckets - 1)] = rm;
        r->count++;
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
    gw_room_t *rm = room_find(r, room, len, room_hash(room, len));
    struct gw_membership *ms;

    if (rm == NULL || (ms = membership_find(rm, m)) == NULL)
        return GW_EPARSE;
    membership_drop(r, ms);
    return 0;
}

void
gw__rooms_leave_all(gw_rooms_t *r, gw_member_t *m)
{
    while (m->rooms)
        membership_drop(r, m->rooms);
}

size_t
gw__rooms_size(const gw_rooms_t *r, const char *room, size_t len)
{
    gw_room_t *rm = room_find(r, room, len, room_hash(room, len));
    return rm ? rm->size : 0;
}

size_t
gw__rooms_count(const gw_rooms_t *r)
{
    return r->count;
}

int
gw__rooms_is_member(const gw_rooms_t *r, const char *room, size_t len, const gw_member_t *m)
{
    gw_room_t *rm = room_find(r, room, len, room_hash(room, len));
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
    gw_room_t *rm = room_find(r, room, len, room_hash(room, len));
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
