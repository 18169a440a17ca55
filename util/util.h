/*
 * util: the few things every module needs and no module owns: the
 * allocation policy, JSON-lines logging, the hash table, random ids and the
 * table of Redis channels. Time is libuv's: every module reads the loop's
 * millisecond clock with uv_now(loop) (cached per loop iteration, which is
 * what timers and deadlines compare with), and uv_hrtime() where
 * nanoseconds matter (delivery latency).
 *
 * Errors follow docs/errors.md: 0 or a negative UV_E* code.
 *
 * Allocation policy (as Redis and h2o): running out of memory aborts the
 * process with a one-line message. A hub that cannot allocate cannot keep
 * any of its promises (a half-delivered fan-out is worse than a restart
 * that clients reconnect through), and checking every small allocation
 * would bury the real error paths.
 */
#ifndef COORDHUB_UTIL_H
#define COORDHUB_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <uv.h>

void *util_malloc(size_t n);
void *util_calloc(size_t count, size_t size);
void *util_realloc(void *p, size_t n);
char *util_strdup(const char *s);
char *util_strndup(const char *s, size_t n);

enum util_log_level {
    UTIL_LOG_ERROR = 0,
    UTIL_LOG_WARN = 1,
    UTIL_LOG_INFO = 2,
    UTIL_LOG_DEBUG = 3,
};

/* Parses "error", "warn", "info", "debug". Returns 0, or UV_EINVAL. */
int util_log_parse_level(const char *s, int *level_out);
void util_log_set_level(int level);
int util_log_enabled(int level);

/*
 * Writes one JSON line to stderr: {"ts":..., "level":..., "mod":..., "msg":...}.
 * The message is printf-formatted and JSON-escaped; it is never trusted to
 * be valid UTF-8 or free of quotes (it may carry a Redis error string).
 */
void util_log(int level, const char *mod, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG_ERROR(mod, ...) util_log(UTIL_LOG_ERROR, mod, __VA_ARGS__)
#define LOG_WARN(mod, ...) util_log(UTIL_LOG_WARN, mod, __VA_ARGS__)
#define LOG_INFO(mod, ...) util_log(UTIL_LOG_INFO, mod, __VA_ARGS__)
#define LOG_DEBUG(mod, ...)                                                                        \
    do {                                                                                           \
        if (util_log_enabled(UTIL_LOG_DEBUG))                                                      \
            util_log(UTIL_LOG_DEBUG, mod, __VA_ARGS__);                                            \
    } while (0)

/*
 * A log rate limit: at most `burst` lines per second; the rest are counted
 * and reported as "suppressed" by the next line let through.
 */
typedef struct util_ratelog {
    uint64_t window_ms;
    unsigned used;
    unsigned suppressed;
} util_ratelog_t;

/* Returns the number suppressed since the last allowed line plus one when a
 * line may be written now (so the caller can say "and N more"), 0 if not. */
unsigned util_ratelog_allow(util_ratelog_t *rl, uint64_t now_ms, unsigned burst);

/* Wall-clock time in ms since the epoch (for timestamps others read). */
long long util_wall_ms(void);

/* Appends `s` (n bytes) to `out` as a JSON string body (no quotes), escaping
 * quotes, backslashes, control bytes and bytes >= 0x80 that do not form valid
 * UTF-8. `out` has room for `cap`; returns bytes written, truncating. */
size_t util_json_escape(char *out, size_t cap, const char *s, size_t n);

/* Copies `s` into `out` replacing each byte that does not start a valid UTF-8
 * sequence with U+FFFD; `out` needs 3 * n + 1 bytes. Returns bytes written
 * (NUL-terminated). */
size_t util_utf8_sanitize(char *out, const char *s, size_t n);

/* 1 if s[0..n) is valid UTF-8 (no overlong forms, surrogates or values past
 * U+10FFFF), else 0. */
int util_utf8_valid(const char *s, size_t n);

/* ---- the hash table (htable.c) ----
 *
 * Intrusive and chained, keyed by bytes: embed a util_hnode_t in the object
 * and give the table a key that lives in that object for as long as it is
 * in the table. A zeroed util_htable_t is an empty table; it allocates its
 * buckets at the first insert and doubles them whenever it holds more nodes
 * than buckets, so lookups stay O(1) expected. It never allocates nodes and
 * never frees them: they are the caller's.
 */
typedef struct util_hnode {
    struct util_hnode *next;
    uint64_t hash;
    const char *key;
    size_t len;
} util_hnode_t;

typedef struct util_htable {
    util_hnode_t **buckets;
    size_t mask; /* buckets - 1 (a power of two, minus one) */
    size_t count;
} util_htable_t;

#define UTIL_CONTAINER_OF(ptr, type, field) ((type *)(void *)((char *)(ptr)-offsetof(type, field)))

/* FNV-1a, 64 bits (see htable.c for why an unkeyed hash is enough).
 * Inline, with the lookup: the fan-out finds a room for every event. */
static inline uint64_t
util_hash(const void *key, size_t len)
{
    const unsigned char *p = (const unsigned char *)key;
    uint64_t h = 14695981039346656037ull;

    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* The node whose key is key[0..len) (whose util_hash is `h`), or NULL. */
static inline util_hnode_t *
util_htable_find_hashed(const util_htable_t *t, const char *key, size_t len, uint64_t h)
{
    util_hnode_t *n;

    if (t->count == 0)
        return NULL;
    for (n = t->buckets[h & t->mask]; n != NULL; n = n->next)
        if (n->hash == h && n->len == len && memcmp(n->key, key, len) == 0)
            return n;
    return NULL;
}

static inline util_hnode_t *
util_htable_find(const util_htable_t *t, const char *key, size_t len)
{
    return util_htable_find_hashed(t, key, len, util_hash(key, len));
}
/* Adds `n` under key[0..len) (not copied); the key must not be present.
 * The _hashed form takes util_hash(key, len) already computed by a find. */
void util_htable_insert(util_htable_t *t, util_hnode_t *n, const char *key, size_t len);
void util_htable_insert_hashed(util_htable_t *t, util_hnode_t *n, const char *key, size_t len,
                               uint64_t h);
/* Takes `n`, which is in `t`, out of it. */
void util_htable_remove(util_htable_t *t, util_hnode_t *n);
/* Iteration in no particular order: the first node (n NULL) or the one
 * after `n`, NULL at the end. Removing the current node is allowed once the
 * next has been taken; inserting during an iteration is not. */
util_hnode_t *util_htable_next(const util_htable_t *t, const util_hnode_t *n);
/* Frees the buckets (the nodes are the caller's): `t` is empty again. */
void util_htable_free(util_htable_t *t);

/* ---- random ids (random.c) ---- */

enum util_id_alphabet {
    UTIL_ID_HEX,    /* 4 bits a character: 0-9a-f */
    UTIL_ID_B64URL, /* 6 bits a character: A-Za-z0-9-_ */
};

/* Writes `nchars` random characters and a NUL to `out` (nchars + 1 bytes),
 * from the kernel's CSPRNG. Never fails: it blocks until the kernel's pool
 * is ready (early boot only) and aborts if the kernel cannot give random
 * bytes at all, as out of memory does (random.c says why). */
void util_random_id(char *out, size_t nchars, enum util_id_alphabet alphabet);

/* ---- Redis channels (channels.c) ----
 *
 * Every channel the hub subscribes to, by id: app/main.c subscribes from
 * this table and dispatches by id, the gateway routes by id and names its
 * metrics from the labels. The names the hub's own Lua scripts publish to
 * are macros so that the scripts splice in the same text.
 */
#define UTIL_CHANNEL_ITEM_RESERVED "itemReserved"
#define UTIL_CHANNEL_LOCK_RELEASED "coordhub:lock-released"
#define UTIL_CHANNEL_CONFIG_INVALIDATE "configuration-invalidate"
#define UTIL_CHANNEL_TRACKING "__redis__:invalidate" /* RESP2 client tracking */
#define UTIL_CHANNEL_REC_ANCHOR "coordhub:rec:anchors" /* docs/recovery.md */

enum util_channel_id {
    UTIL_CH_TRADESTATE,
    UTIL_CH_CANCELED,
    UTIL_CH_ITEM_RESERVED,
    UTIL_CH_FINISHED,
    UTIL_CH_STEAMDOWN,
    UTIL_CH_BOT,   /* the pattern "bot *" */
    UTIL_CH_OTHER, /* a message on none of these */
    UTIL_CH_LOCK_RELEASED,
    UTIL_CH_CONFIG_INVALIDATE,
    UTIL_CH_TRACKING,
    UTIL_CH_REC_ANCHOR,
    UTIL_CH_COUNT
};

typedef struct util_channel {
    const char *name; /* channel, or pattern; NULL for UTIL_CH_OTHER */
    size_t len;
    int pattern;       /* 1: PSUBSCRIBE */
    const char *label; /* the gateway's metrics label; NULL: not counted there */
} util_channel_t;

extern const util_channel_t util_channels[UTIL_CH_COUNT];

/* The id of a message's channel (`pattern` as the bus passes it, NULL for a
 * plain SUBSCRIBE); UTIL_CH_OTHER when it is none of the table's. */
enum util_channel_id util_channel_of(const char *pattern, const char *channel, size_t len);

#endif
