/*
 * util: the few things every module needs and no module owns: the
 * allocation policy, JSON-lines logging and a monotonic clock.
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

/* Parses "error", "warn", "info", "debug". Returns 0, or UV_EINVAL-like -22. */
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

#endif
