/*
 * gateway/rooms.h: the room registry (rooms.c): room name -> members, and
 * each member's rooms, so that a connection leaves all of them at once.
 * Pure: the members are embedded in whatever owns them.
 */
#ifndef COORDHUB_GW_ROOMS_H
#define COORDHUB_GW_ROOMS_H

#include <stddef.h>

/* A room member: embedded in whatever owns the connection. */
typedef struct gw_member {
    struct gw_membership *rooms; /* this member's memberships */
    void *owner;
} gw_member_t;

typedef struct gw_rooms gw_rooms_t;

gw_rooms_t *gw__rooms_new(void);
/* Frees the registry; every member must have left. */
void gw__rooms_free(gw_rooms_t *r);
/* Returns 0 when joined, 1 when already a member. */
int gw__rooms_join(gw_rooms_t *r, const char *room, size_t len, gw_member_t *m);
/* Returns 0 when left, UV_EINVAL when not a member. */
int gw__rooms_leave(gw_rooms_t *r, const char *room, size_t len, gw_member_t *m);
void gw__rooms_leave_all(gw_rooms_t *r, gw_member_t *m);
/* Leaves every room of `m` whose name `keep` refuses, calling `left` with
 * the name of each (valid during the call) once it is left. */
void gw__rooms_leave_if(gw_rooms_t *r, gw_member_t *m, int (*keep)(void *ctx, const char *room),
                        void (*left)(void *ctx, const char *room), void *ctx);
/* Calls `fn` with the name of each room of `m`; `fn` must not join or leave. */
void gw__rooms_each(const gw_member_t *m, void (*fn)(void *ctx, const char *room), void *ctx);
/* `to` (in no room) takes every membership of `from`, in place: the rooms
 * see no leave and no join, and their order of members is kept. */
void gw__rooms_move(gw_member_t *from, gw_member_t *to);
/* Members of `room` (0 if no such room). */
size_t gw__rooms_size(const gw_rooms_t *r, const char *room, size_t len);
size_t gw__rooms_count(const gw_rooms_t *r);
int gw__rooms_is_member(const gw_rooms_t *r, const char *room, size_t len, const gw_member_t *m);
/* Calls `fn(ctx, owner)` for each member; `fn` must not join or leave. */
size_t gw__rooms_visit(gw_rooms_t *r, const char *room, size_t len,
                       void (*fn)(void *ctx, void *owner), void *ctx);

#endif
