/*
 * Internals shared between the gateway module's own files (and its white-box
 * unit tests). Everything here except the lws glue is pure: parsers over
 * (buf, len), the room registry, shared frames, the coalescing throttle.
 */
#ifndef COORDHUB_GW_INT_H
#define COORDHUB_GW_INT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>
#include <libwebsockets.h>

/* Parser results, picohttpparser style: >= 0 ok, negative = error. */
#define GW_OK 0
#define GW_EPARSE (-1)

#define GW_ID_MAX 64      /* user ids (steamIds) and bot ids */
#define GW_ROOM_MAX 80    /* "user:" + id, "bot:" + id, "ops" */
#define GW_TOKEN_MAX 4096 /* bytes of a JWT we are willing to look at */
#define GW_TRADEHASH_MAX 128

/* ---- identifiers ---- */

/* 1..64 bytes of [A-Za-z0-9]: a user id (steamId). */
int gw__valid_user_id(const char *s, size_t n);
/* 1..64 bytes of [A-Za-z0-9_.-]: a bot id, or a token's subject. */
int gw__valid_name_id(const char *s, size_t n);

/* ---- JWT (jwt.c) ---- */

enum {
    GW_ROLE_SERVICE = 1u << 0,
    GW_ROLE_ADMIN = 1u << 1,
    GW_ROLE_OPS = 1u << 2,
};

typedef struct gw_claims {
    char sub[GW_ID_MAX + 1];
    unsigned roles; /* GW_ROLE_* bits; unknown role names are ignored */
    long long exp;
} gw_claims_t;

/*
 * Verifies an HS256 JWT of `len` bytes against `secret` at time `now`.
 * Refused: any other alg (none included), a bad signature, a missing or
 * non-integer `exp`, exp <= now, a missing `sub` or one that is not a valid
 * id (gw__valid_name_id), `roles` present but not an array of strings,
 * anything over GW_TOKEN_MAX. Returns 0 and fills `out`, or GW_EPARSE with
 * `*why` a static string for the logs (never sent to the client verbatim).
 */
int gw__jwt_verify(const char *secret, const char *token, size_t len, time_t now, gw_claims_t *out,
                   const char **why);

/* ---- JSON validation without allocation (jscan.c) ---- */

#define GW_JSCAN_DEPTH 2048 /* nesting, as jansson allows */

enum { GW_JSCAN_NONE, GW_JSCAN_STRING, GW_JSCAN_INTEGER, GW_JSCAN_OTHER };

typedef struct gw_jscan {
    int count;         /* how many times the key appears at the top level */
    int kind;          /* GW_JSCAN_*: the type of its (last) value */
    const char *value; /* a string's body between the quotes, or an integer's text */
    size_t len;
    int escaped; /* the string body holds escapes */
} gw_jscan_t;

/*
 * Validates s[0..n) as one JSON object (RFC 8259, UTF-8; whitespace around
 * it allowed, nothing else) and reports where the top-level member `key`
 * (compared after unescaping; NULL: none) is. Never reads past n, needs no
 * NUL, allocates nothing. Returns GW_OK or GW_EPARSE.
 */
int gw__json_scan_object(const char *s, size_t n, const char *key, gw_jscan_t *out);
/* The ASCII a string body accepted by the scanner decodes to, in out[0..cap);
 * returns its length, or cap + 1 when longer or not all ASCII. */
size_t gw__json_unescape_ascii(const char *s, size_t n, char *out, size_t cap);

/* ---- Redis payload routing (route.c) ---- */

/* Validates a `tradestate` payload: a JSON object whose "steamId" is a valid
 * user id (a string, or a non-negative integer as some bots send). Copies
 * the id NUL-terminated into `steamid`. Returns 0 or GW_EPARSE. */
int gw__route_tradestate(const char *payload, size_t len, char steamid[GW_ID_MAX + 1]);

/* A `canceledtrades` payload: the steamId as plain text, tolerating
 * surrounding ASCII whitespace and one pair of double quotes. */
int gw__route_canceled(const char *payload, size_t len, char steamid[GW_ID_MAX + 1]);

/* The bot id from a channel "bot <id>"; points into `channel`. */
int gw__bot_channel_id(const char *channel, size_t len, const char **id, size_t *idlen);

/*
 * The bot text protocol: "<command>[ <botId>[ <steamId>_<tradeHash>|<steamId>]][ rest...]",
 * single spaces, e.g. "withdraw 7 76561198000000001_ab12 tradeData:{...}".
 * A token starting "tradeData:" is never taken as an id: it and what follows
 * it are opaque and stay in `raw` only. Pointers point into `payload`;
 * absent parts have NULL/0. Returns 0 or GW_EPARSE (empty, control bytes,
 * a bad command, a steamId that is not a valid user id, an empty hash).
 */
typedef struct gw_bot_cmd {
    const char *command;
    size_t command_len;
    const char *bot_id; /* as written in the payload, may differ from the channel's */
    size_t bot_id_len;
    const char *steamid;
    size_t steamid_len;
    const char *tradehash;
    size_t tradehash_len;
} gw_bot_cmd_t;

int gw__bot_parse(const char *payload, size_t len, gw_bot_cmd_t *out);

/* ---- native client frames (clientmsg.c) ---- */

enum gw_op { GW_OP_JOIN = 1, GW_OP_LEAVE, GW_OP_PING, GW_OP_CONFIG_WATCH };

#define GW_WATCH_KEYS_MAX 32 /* keys per config.watch */
#define GW_WATCH_KEY_MAX 64

typedef struct gw_client_op {
    enum gw_op op;
    char room[GW_ROOM_MAX + 1];                         /* for join/leave */
    char keys[GW_WATCH_KEYS_MAX][GW_WATCH_KEY_MAX + 1]; /* for config.watch */
    size_t nkeys;
} gw_client_op_t;

/* The keys of a config.watch ({"keys": [...]}, or a bare array): 1..32
 * strings of 1..64 of [A-Za-z0-9_.:-]. 0, or GW_EPARSE with *msg. */
int gw__watch_keys_parse(const json_t *keys, gw_client_op_t *out, const char **msg);

/* Parses one client text frame. On error `*code` is the error code for the
 * client ("bad_json", "bad_request", "unknown_op") and `*msg` a message.
 * Returns 0 or GW_EPARSE. */
int gw__client_op_parse(const char *buf, size_t len, gw_client_op_t *out, const char **code,
                        const char **msg);

/* Which rooms may a holder of `claims` join? 0 = yes, else GW_EPARSE with
 * `*code` "forbidden" or "bad_room". Rooms: user:<id>, bot:<id>, ops. */
int gw__room_check(const gw_claims_t *claims, const char *room, const char **code);

/* ---- shared frames (frame.c) ---- */

/*
 * A frame is the bytes of one WebSocket message with LWS_PRE bytes of
 * headroom, built once and shared by reference among every recipient's
 * queue. lws writes the frame header into the headroom; with no extensions
 * a server's header for a given length is identical for every connection,
 * so sharing the headroom on one thread is safe.
 */
typedef struct gw_frame {
    uint32_t refs;
    uint32_t len;     /* payload bytes after the headroom */
    uint64_t born_ns; /* uv_hrtime() when its Redis message arrived, or 0 */
    uint32_t hdr;     /* bytes of WebSocket header encoded before the payload, 0: not yet */
    unsigned char buf[];
} gw_frame_t;

/*
 * The frame as it goes on the wire: a server's text frame (FIN, unmasked)
 * header encoded once into the headroom just before the payload, so that
 * every recipient sends the same bytes. Returns the start and sets *n.
 */
unsigned char *gw__frame_wire(gw_frame_t *f, size_t *n);

/* hdr value of a frame whose payload is already a complete WebSocket frame
 * (a control frame of ours, e.g. a PING): sent as it is. */
#define GW_FRAME_RAW 0xffffffffu

gw_frame_t *gw__frame_new(size_t len); /* refs = 1, payload uninitialised */
static inline unsigned char *
gw__frame_data(gw_frame_t *f)
{
    return f->buf + LWS_PRE;
}
static inline void
gw__frame_ref(gw_frame_t *f)
{
    f->refs++;
}
void gw__frame_unref(gw_frame_t *f);

/* Framings of one event. Native: {"event":NAME,"data":DATA}; Socket.IO:
 * 42["NAME",DATA]. `data` is JSON text or NULL for no data. */
enum gw_framing { GW_FRAMING_NATIVE = 0, GW_FRAMING_SIO = 1, GW_FRAMING_COUNT };
gw_frame_t *gw__frame_event(enum gw_framing framing, const char *event, const char *data,
                            size_t dlen);

/* A per-connection send queue of frame references: a ring that grows by
 * doubling and never shrinks while the connection lives, so the fan-out
 * path allocates nothing per recipient once warm. */
typedef struct gw_outq {
    gw_frame_t **ring;
    uint32_t cap, head, count;
    size_t bytes;
} gw_outq_t;

void gw__outq_push(gw_outq_t *q, gw_frame_t *f); /* takes a new reference */
gw_frame_t *gw__outq_peek(const gw_outq_t *q);
void gw__outq_pop(gw_outq_t *q); /* drops the queue's reference */
void gw__outq_clear(gw_outq_t *q);
void gw__outq_free(gw_outq_t *q);

/* ---- rooms (rooms.c) ---- */

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
/* Returns 0 when left, GW_EPARSE when not a member. */
int gw__rooms_leave(gw_rooms_t *r, const char *room, size_t len, gw_member_t *m);
void gw__rooms_leave_all(gw_rooms_t *r, gw_member_t *m);
/* Members of `room` (0 if no such room). */
size_t gw__rooms_size(const gw_rooms_t *r, const char *room, size_t len);
size_t gw__rooms_count(const gw_rooms_t *r);
int gw__rooms_is_member(const gw_rooms_t *r, const char *room, size_t len, const gw_member_t *m);
/* Calls `fn(ctx, owner)` for each member; `fn` must not join or leave. */
size_t gw__rooms_visit(gw_rooms_t *r, const char *room, size_t len,
                       void (*fn)(void *ctx, void *owner), void *ctx);

/* ---- coalescing throttle (throttle.c) ---- */

/* At most one fire per interval: the first hit fires at once (leading),
 * hits during the interval collapse into one trailing fire at its end. */
typedef struct gw_throttle {
    uint64_t interval_ms;
    uint64_t last_fire_ms;
    int fired;   /* fired at least once */
    int pending; /* a trailing fire is owed */
} gw_throttle_t;

enum { GW_THROTTLE_FIRE = 1, GW_THROTTLE_ARM = 2, GW_THROTTLE_QUIET = 3 };

/* A hit at `now`: FIRE (fire now), ARM (arm a timer for `*delay_ms`, then
 * call gw__throttle_expire), or QUIET (a trailing fire is already owed). */
int gw__throttle_hit(gw_throttle_t *t, uint64_t now, uint64_t *delay_ms);
/* The armed timer ran out: returns 1 to fire the trailing event now. */
int gw__throttle_expire(gw_throttle_t *t, uint64_t now);

/* ---- token bucket for inbound ops (throttle.c) ---- */

typedef struct gw_bucket {
    double tokens;
    uint64_t last_ms;
    int init;
} gw_bucket_t;

/* Takes one token; returns 1 if allowed, 0 if over `rate`/s with `burst`. */
int gw__bucket_take(gw_bucket_t *b, uint64_t now_ms, double rate, double burst);

/* ---- Engine.IO v4 / Socket.IO v5 packets over WebSocket (sio.c) ---- */

enum gw_eio_type {
    GW_EIO_OPEN = 0,
    GW_EIO_CLOSE = 1,
    GW_EIO_PING = 2,
    GW_EIO_PONG = 3,
    GW_EIO_MESSAGE = 4,
    GW_EIO_UPGRADE = 5,
    GW_EIO_NOOP = 6,
};

enum gw_sio_type {
    GW_SIO_NONE = -1, /* not a MESSAGE packet */
    GW_SIO_CONNECT = 0,
    GW_SIO_DISCONNECT = 1,
    GW_SIO_EVENT = 2,
    GW_SIO_ACK = 3,
    GW_SIO_CONNECT_ERROR = 4,
    GW_SIO_BINARY_EVENT = 5,
    GW_SIO_BINARY_ACK = 6,
};

#define GW_SIO_NSP_MAX 128

typedef struct gw_sio_packet {
    enum gw_eio_type eio;
    enum gw_sio_type sio;
    const char *nsp; /* "/" when omitted; points into the input otherwise */
    size_t nsp_len;
    long long ack_id; /* -1 when absent */
    long attachments; /* binary packets only, else 0 */
    const char *data; /* the rest: JSON text for Socket.IO, raw for ping/pong */
    size_t data_len;
} gw_sio_packet_t;

/*
 * Parses one WebSocket text frame of Engine.IO v4 carrying (for MESSAGE)
 * a Socket.IO v5 packet: "<eio>[<sio>[<n>-][<nsp>,][<ack id>][json]]".
 * Pure: pointers point into `buf`. Checks the shape only (digits, bounds,
 * that JSON data starts with '{', '[' or '"'... as Socket.IO allows), not
 * the JSON itself. Returns 0 or GW_EPARSE.
 */
int gw__sio_parse(const char *buf, size_t len, gw_sio_packet_t *out);

#endif
