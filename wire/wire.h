/*
 * wire: the hub's pure parsers, one per thing that arrives from outside:
 * ids, JWTs, the payloads bots and services publish on Redis, native client
 * frames and Engine.IO / Socket.IO packets. No I/O, no loop, no state: each
 * function reads (buf, len) without reading past len or needing a NUL,
 * writes only into what the caller passed, and is fuzzed (fuzz/) and
 * table-tested with its input against the end of a page (tests/unit/).
 *
 * Errors: a function that can fail returns 0, or -EINVAL (libuv's
 * UV_EINVAL: on Unix libuv's codes are the negated errno values) for input
 * it refuses. The library depends on jansson and libjwt, and on nothing of
 * ours.
 */
#ifndef COORDHUB_WIRE_H
#define COORDHUB_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#define WIRE_ID_MAX 64      /* user ids (steamIds) and bot ids */
#define WIRE_ROOM_MAX 80    /* "user:" + id, "bot:" + id, "ops" */
#define WIRE_TOKEN_MAX 4096 /* bytes of a JWT we are willing to look at */
#define WIRE_TRADEHASH_MAX 128

/* ---- identifiers (ids.c) ---- */

/* 1 when s[0..n) is 1..WIRE_ID_MAX bytes of [A-Za-z0-9] (a user id, i.e. a
 * steamId), else 0. */
int wire_valid_user_id(const char *s, size_t n);
/* 1 when s[0..n) is 1..WIRE_ID_MAX bytes of [A-Za-z0-9_.-] (a bot id, or a
 * token's subject), else 0. */
int wire_valid_name_id(const char *s, size_t n);

/* ---- JWT (jwt.c) ---- */

enum {
    WIRE_ROLE_SERVICE = 1u << 0,
    WIRE_ROLE_ADMIN = 1u << 1,
    WIRE_ROLE_OPS = 1u << 2,
};

typedef struct wire_claims {
    char sub[WIRE_ID_MAX + 1];
    unsigned roles; /* WIRE_ROLE_* bits; unknown role names are ignored */
    long long exp;
} wire_claims_t;

/*
 * Verifies an HS256 JWT of `len` bytes against `secret` at time `now`.
 * Refused: any other alg (none included), a bad signature, a missing or
 * non-integer `exp`, exp <= now, a missing `sub` or one that is not a valid
 * name id, `roles` present but not an array of strings, anything over
 * WIRE_TOKEN_MAX. Returns 0 and fills `out`, or -EINVAL with `*why` a
 * static string for the logs (never sent to the client verbatim); `out` is
 * unspecified on failure.
 */
int wire_jwt_verify(const char *secret, const char *token, size_t len, time_t now,
                    wire_claims_t *out, const char **why);

/*
 * A key set (keys.c): HMAC secrets (HS256/384/512), RSA public keys of
 * 2048 bits or more with an odd exponent above 1 (RS256/384/512), EC
 * P-256/P-384 public keys
 * (ES256/ES384), each with an optional `kid`; and the `iss`/`aud` every
 * token must carry, when set.
 */
typedef struct wire_keyset wire_keyset_t;
/* An empty set; `iss`, `aud` NULL or "" for no check. 0 or -ENOMEM. */
int wire_keyset_new(const char *iss, const char *aud, wire_keyset_t **out);
/* Adds an HMAC secret without kid (--jwt-secret), for HS256 only. 0,
 * -EINVAL (empty), -ENOMEM. */
int wire_keyset_add_secret(wire_keyset_t *ks, const char *secret);
/* Adds every key of a JSON Web Key Set ({"keys":[...]}: kty oct, RSA, EC),
 * all or none: 0, or -EINVAL with `*why` (static) and the set unchanged. */
int wire_keyset_add_jwks(wire_keyset_t *ks, const char *text, size_t len, const char **why);
size_t wire_keyset_size(const wire_keyset_t *ks);
void wire_keyset_free(wire_keyset_t *ks);
/*
 * Verifies a JWT against the set at `now`: the header's alg names the key
 * type (HS*, RS*, ES*; anything else, `none` included, is refused), its
 * kid the key (no kid: every key of that type is tried); MACs compared in
 * constant time. Then the claims as wire_jwt_verify reads them, plus `nbf`
 * (not after now) and `iss`/`aud` when the set asks. Returns 0 with `out`
 * filled, or -EINVAL with `*why` static. Not const: HMAC contexts are
 * reused (one thread).
 */
int wire_jwt_verify_keys(wire_keyset_t *ks, const char *token, size_t len, time_t now,
                         wire_claims_t *out, const char **why);
/* A token that verified is kept (at most 512, until its exp; the key set's
 * own cache, gone with it): the very same token is then answered from
 * memory while nbf <= now < exp. Lookups answered so far and not (0 and 0
 * for NULL). */
void wire_keyset_cache_stats(const wire_keyset_t *ks, uint64_t *hits, uint64_t *misses);

/*
 * Signs an HS256 token for `sub` with `roles_csv` ("ops,service", may be NULL
 * or empty) valid for `ttl_s` seconds from `now`: claims sub, iat, exp and
 * roles (a JSON array, when given). Returns 0 and a malloc'd string in
 * `*out` (the caller frees it), or -EINVAL for bad input (no secret, sub not
 * a name id, roles not a comma list of [a-z]+, ttl_s <= 0 or an exp that
 * overflows), or another negative errno from libjwt.
 */
int wire_jwt_sign(const char *secret, const char *sub, const char *roles_csv, long long ttl_s,
                  time_t now, char **out);

/* ---- JSON validation without allocation (jscan.c) ---- */

#define WIRE_JSCAN_DEPTH 2048 /* nesting, as jansson allows */

enum { WIRE_JSCAN_NONE, WIRE_JSCAN_STRING, WIRE_JSCAN_INTEGER, WIRE_JSCAN_OTHER };

typedef struct wire_jscan {
    int count;         /* how many times the key appears at the top level */
    int kind;          /* WIRE_JSCAN_*: the type of its (last) value */
    const char *value; /* a string's body between the quotes, or an integer's text */
    size_t len;
    int escaped; /* the string body holds escapes */
} wire_jscan_t;

/*
 * Validates s[0..n) as one JSON object (RFC 8259, UTF-8; whitespace around
 * it allowed, nothing else) and reports in `out` where the top-level member
 * `key` (compared after unescaping; NULL: none) is; `value` points into `s`.
 * Allocates nothing. Returns 0 or -EINVAL.
 */
int wire_json_scan_object(const char *s, size_t n, const char *key, wire_jscan_t *out);
/* Decodes a string body accepted by the scanner into out[0..cap) as far as
 * ASCII goes; returns its length, or cap + 1 when longer or not all ASCII. */
size_t wire_json_unescape_ascii(const char *s, size_t n, char *out, size_t cap);

/* ---- Redis payload routing (route.c) ---- */

/* Validates a `tradestate` payload: a JSON object whose "steamId" is a valid
 * user id (a string, or a non-negative integer as some bots send). Copies
 * the id NUL-terminated into `steamid`. Returns 0 or -EINVAL. */
int wire_route_tradestate(const char *payload, size_t len, char steamid[WIRE_ID_MAX + 1]);

/* A `canceledtrades` payload: the steamId as plain text, tolerating
 * surrounding ASCII whitespace and one pair of double quotes. Copies it
 * NUL-terminated into `steamid`. Returns 0 or -EINVAL. */
int wire_route_canceled(const char *payload, size_t len, char steamid[WIRE_ID_MAX + 1]);

/* The bot id from a channel "bot <id>": `*id` points into `channel`.
 * Returns 0 or -EINVAL. */
int wire_bot_channel_id(const char *channel, size_t len, const char **id, size_t *idlen);

/*
 * The bot text protocol: "<command>[ <botId>[ <steamId>_<tradeHash>|<steamId>]][ rest...]",
 * single spaces, e.g. "withdraw 7 76561198000000001_ab12 tradeData:{...}".
 * A token starting "tradeData:" is never taken as an id: it and what follows
 * it are opaque. Pointers point into `payload`; absent parts have NULL/0.
 * Returns 0 or -EINVAL (empty, control bytes, a bad command, a steamId that
 * is not a valid user id, an empty hash), with `out` all NULL/0.
 */
typedef struct wire_bot_cmd {
    const char *command;
    size_t command_len;
    const char *bot_id; /* as written in the payload, may differ from the channel's */
    size_t bot_id_len;
    const char *steamid;
    size_t steamid_len;
    const char *tradehash;
    size_t tradehash_len;
} wire_bot_cmd_t;

int wire_bot_parse(const char *payload, size_t len, wire_bot_cmd_t *out);

/* ---- native client frames (clientmsg.c) ---- */

enum wire_op { WIRE_OP_JOIN = 1, WIRE_OP_LEAVE, WIRE_OP_PING, WIRE_OP_CONFIG_WATCH, WIRE_OP_REFRESH };

#define WIRE_WATCH_KEYS_MAX 32 /* keys per config.watch */
#define WIRE_WATCH_KEY_MAX 64

typedef struct wire_client_op {
    enum wire_op op;
    char room[WIRE_ROOM_MAX + 1];                           /* for join/leave */
    char keys[WIRE_WATCH_KEYS_MAX][WIRE_WATCH_KEY_MAX + 1]; /* for config.watch */
    size_t nkeys;
    char token[WIRE_TOKEN_MAX + 1]; /* for refresh: the new token, not yet verified */
    size_t token_len;
} wire_client_op_t;

/* The keys of a config.watch ({"keys": [...]}, or a bare array): 1..32
 * strings of 1..64 of [A-Za-z0-9_.:-], copied into out->keys. Returns 0, or
 * -EINVAL with `*msg` a static message for the client. */
int wire_watch_keys_parse(const json_t *keys, wire_client_op_t *out, const char **msg);

/* Parses one client text frame into `out`. Returns 0, or -EINVAL with
 * `*code` the error code for the client ("bad_json", "bad_request",
 * "unknown_op") and `*msg` a message (both static). */
int wire_client_op_parse(const char *buf, size_t len, wire_client_op_t *out, const char **code,
                         const char **msg);

/* May a holder of `claims` join `room` (a C string)? Rooms: user:<id> (only
 * one's own), bot:<id>, ops and queues (role ops). Returns 0 with `*code` NULL, or
 * -EINVAL with `*code` "forbidden" or "bad_room". */
int wire_room_check(const wire_claims_t *claims, const char *room, const char **code);

/* ---- recovery offsets (offset.c) ---- */

#define WIRE_OFFSET_MAX 40 /* "<anchor>-<count>": two numbers of at most 16 digits */

/* Parses an offset "<anchor>-<count>" (docs/recovery.md): decimal, no sign,
 * no leading zeros, anchor >= 1, both below 2^53, nothing around them.
 * Returns 0 with both set, or -EINVAL. */
int wire_offset_parse(const char *s, size_t n, uint64_t *anchor, uint64_t *count);

/* ---- Engine.IO v4 / Socket.IO v5 packets over WebSocket (sio.c) ---- */

enum wire_eio_type {
    WIRE_EIO_OPEN = 0,
    WIRE_EIO_CLOSE = 1,
    WIRE_EIO_PING = 2,
    WIRE_EIO_PONG = 3,
    WIRE_EIO_MESSAGE = 4,
    WIRE_EIO_UPGRADE = 5,
    WIRE_EIO_NOOP = 6,
};

enum wire_sio_type {
    WIRE_SIO_NONE = -1, /* not a MESSAGE packet */
    WIRE_SIO_CONNECT = 0,
    WIRE_SIO_DISCONNECT = 1,
    WIRE_SIO_EVENT = 2,
    WIRE_SIO_ACK = 3,
    WIRE_SIO_CONNECT_ERROR = 4,
    WIRE_SIO_BINARY_EVENT = 5,
    WIRE_SIO_BINARY_ACK = 6,
};

#define WIRE_SIO_NSP_MAX 128

typedef struct wire_sio_packet {
    enum wire_eio_type eio;
    enum wire_sio_type sio;
    const char *nsp; /* "/" when omitted; points into the input otherwise */
    size_t nsp_len;
    long long ack_id; /* -1 when absent */
    long attachments; /* binary packets only, else 0 */
    const char *data; /* the rest: JSON text for Socket.IO, raw for ping/pong */
    size_t data_len;
} wire_sio_packet_t;

/*
 * Parses one WebSocket text frame of Engine.IO v4 carrying (for MESSAGE)
 * a Socket.IO v5 packet: "<eio>[<sio>[<n>-][<nsp>,][<ack id>][json]]".
 * Pointers point into `buf`. Checks the shape only (digits, bounds, that
 * JSON data starts with '{', '[' or '"'... as Socket.IO allows), not the
 * JSON itself. Returns 0 or -EINVAL.
 */
int wire_sio_parse(const char *buf, size_t len, wire_sio_packet_t *out);

#endif
