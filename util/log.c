/* util/log.c: JSON-lines logging on stderr, with a level and a rate limit. */
#include "util.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <uv.h>

/* The log level is process-wide by nature (stderr is). It is the one piece of
 * mutable state outside main.c, set once at start-up before the loop runs. */
static int log_level = UTIL_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int
util_log_parse_level(const char *s, int *level_out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *level_out = i;
            return 0;
        }
    }
    return UV_EINVAL;
}

void
util_log_set_level(int level)
{
    log_level = level;
}

int
util_log_enabled(int level)
{
    return level <= log_level;
}

/* Length of the valid UTF-8 sequence starting at s, or 0 if invalid. */
static size_t
utf8_seq_len(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned cp;
    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xE0) == 0xC0) {
        len = 2;
        cp = s[0] & 0x1F;
    } else if ((s[0] & 0xF0) == 0xE0) {
        len = 3;
        cp = s[0] & 0x0F;
    } else if ((s[0] & 0xF8) == 0xF0) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    /* overlong forms, surrogates and values past U+10FFFF are invalid */
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

size_t
util_json_escape(char *out, size_t cap, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        char tmp[8];
        size_t tl;
        size_t sl = utf8_seq_len(p + i, n - i);
        if (sl == 0) {
            tl = (size_t)snprintf(tmp, sizeof tmp, "\\ufffd");
            sl = 1;
        } else if (p[i] == '"' || p[i] == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)p[i];
            tl = 2;
        } else if (p[i] < 0x20 || p[i] == 0x7f) {
            tl = (size_t)snprintf(tmp, sizeof tmp, "\\u%04x", p[i]);
        } else {
            memcpy(tmp, p + i, sl);
            tl = sl;
        }
        if (o + tl >= cap)
            break;
        memcpy(out + o, tmp, tl);
        o += tl;
        i += sl;
    }
    if (cap)
        out[o < cap ? o : cap - 1] = '\0';
    return o;
}

int
util_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t sl;
        if (p[i] < 0x80) { /* the common case, byte by byte */
            i++;
            continue;
        }
        sl = utf8_seq_len(p + i, n - i);
        if (sl == 0)
            return 0;
        i += sl;
    }
    return 1;
}

size_t
util_utf8_sanitize(char *out, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t sl = utf8_seq_len(p + i, n - i);
        if (sl == 0) {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(out + o, p + i, sl);
            o += sl;
            i += sl;
        }
    }
    out[o] = '\0';
    return o;
}

void
util_log(int level, const char *mod, const char *fmt, ...)
{
    char msg[1024], esc[2048];
    struct timespec ts;
    struct tm tm;
    va_list ap;
    int n;

    if (level > log_level)
        return;
    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof msg)
        n = sizeof msg - 1;
    util_json_escape(esc, sizeof esc, msg, (size_t)n);
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    fprintf(stderr,
            "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\",\"mod\":\"%s\","
            "\"msg\":\"%s\"}\n",
            tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000, level_names[level], mod, esc);
}

long long
util_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

unsigned
util_ratelog_allow(util_ratelog_t *rl, uint64_t now_ms, unsigned burst)
{
    unsigned r;
    if (now_ms - rl->window_ms >= 1000) {
        rl->window_ms = now_ms;
        rl->used = 0;
    }
    if (rl->used >= burst) {
        rl->suppressed++;
        return 0;
    }
    rl->used++;
    r = rl->suppressed + 1;
    rl->suppressed = 0;
    return r;
}
