/*
 * wire/route.c: parsers for the payloads bots and services publish on
 * Redis (README, "API in brief"). Each is a pure function over (payload, len): it never
 * reads past `len`, never needs a NUL terminator, and returns -EINVAL for
 * anything it does not fully understand, so the router can drop and count
 * it. Results either point into the payload or are copied into the
 * caller's fixed-size buffer.
 */
#include "wire.h"

#include <errno.h>
#include <string.h>

/* Payloads larger than this are not looked at (bots publish a few KiB). */
#define PAYLOAD_MAX (1024u * 1024u)
#define COMMAND_MAX 32

static const char tradedata_prefix[] = "tradeData:";

/* ---- tradestate ---- */

/* The canonical decimal text of a non-negative JSON integer token that fits
 * in an int64 ("-0" is 0), into steamid; -1 otherwise. */
static int
integer_id(const char *t, size_t n, char steamid[WIRE_ID_MAX + 1])
{
    static const char max[] = "9223372036854775807";

    if (n > 0 && t[0] == '-') {
        if (n == 2 && t[1] == '0') {
            memcpy(steamid, "0", 2);
            return 0;
        }
        return -1;
    }
    /* the scanner's grammar: no sign, no leading zero, digits only */
    if (n == 0 || n > sizeof max - 1 || (n == sizeof max - 1 && memcmp(t, max, n) > 0))
        return -1;
    memcpy(steamid, t, n);
    steamid[n] = '\0';
    return 0;
}

int
wire_route_tradestate(const char *payload, size_t len, char steamid[WIRE_ID_MAX + 1])
{
    wire_jscan_t id;

    if (payload == NULL || len == 0 || len > PAYLOAD_MAX)
        return -EINVAL;
    if (wire_json_scan_object(payload, len, "steamId", &id) != 0)
        return -EINVAL;
    /* A browser's JSON.parse keeps the last of duplicate keys; refuse to
     * guess instead of routing by one the page will not see. */
    if (id.count != 1)
        return -EINVAL;
    if (id.kind == WIRE_JSCAN_INTEGER)
        return integer_id(id.value, id.len, steamid) == 0 ? 0 : -EINVAL;
    if (id.kind != WIRE_JSCAN_STRING)
        return -EINVAL;
    if (id.escaped) {
        /* "\u0031" is "1" to the browser: decode, then check the result */
        size_t n = wire_json_unescape_ascii(id.value, id.len, steamid, WIRE_ID_MAX);
        if (n > WIRE_ID_MAX || !wire_valid_user_id(steamid, n))
            return -EINVAL;
        steamid[n] = '\0';
        return 0;
    }
    if (!wire_valid_user_id(id.value, id.len))
        return -EINVAL;
    memcpy(steamid, id.value, id.len);
    steamid[id.len] = '\0';
    return 0;
}

/* ---- canceledtrades ---- */

static int
is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int
wire_route_canceled(const char *payload, size_t len, char steamid[WIRE_ID_MAX + 1])
{
    size_t b = 0, e = len;

    if (payload == NULL || len > PAYLOAD_MAX)
        return -EINVAL;
    while (b < e && is_space((unsigned char)payload[b]))
        b++;
    while (e > b && is_space((unsigned char)payload[e - 1]))
        e--;
    /* One pair of quotes, as JSON.stringify(steamId) would publish it;
     * whitespace inside the quotes is not tolerated. */
    if (e - b >= 2 && payload[b] == '"' && payload[e - 1] == '"') {
        b++;
        e--;
    }
    if (!wire_valid_user_id(payload + b, e - b))
        return -EINVAL;
    memcpy(steamid, payload + b, e - b);
    steamid[e - b] = '\0';
    return 0;
}

/* ---- bot channels and the bot text protocol ---- */

int
wire_bot_channel_id(const char *channel, size_t len, const char **id, size_t *idlen)
{
    if (channel == NULL || len <= 4 || memcmp(channel, "bot ", 4) != 0 ||
        !wire_valid_name_id(channel + 4, len - 4))
        return -EINVAL;
    *id = channel + 4;
    *idlen = len - 4;
    return 0;
}

/* 1..max bytes of [A-Za-z0-9_-]: the alphabet of commands and trade hashes */
static int
valid_token(const char *s, size_t n, size_t max)
{
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static int
valid_command(const char *s, size_t n)
{
    return valid_token(s, n, COMMAND_MAX);
}

static int
valid_tradehash(const char *s, size_t n)
{
    return valid_token(s, n, WIRE_TRADEHASH_MAX);
}

static int
is_tradedata(const char *s, size_t n)
{
    return n >= sizeof tradedata_prefix - 1 &&
           memcmp(s, tradedata_prefix, sizeof tradedata_prefix - 1) == 0;
}

/* The length of the token at p[0..n): up to the first space or the end. */
static size_t
token_len(const char *p, size_t n)
{
    const char *sp = memchr(p, ' ', n);
    return sp ? (size_t)(sp - p) : n;
}

/*
 * Grammar (single spaces between tokens; an empty token is an error):
 *   payload  = command [ " " botid [ " " idtoken [ " " rest ] ] ] [ "\n" | "\r\n" ]
 *   a "tradeData:..." token in the botid or idtoken place ends parsing;
 *   idtoken  = steamid "_" tradehash | steamid | anything else (ignored).
 * Control bytes are refused inside the tokens we interpret (they fall
 * outside every alphabet) but not in the opaque rest, which may be JSON.
 */
int
wire_bot_parse(const char *payload, size_t len, wire_bot_cmd_t *out)
{
    const char *p = payload;
    size_t n = len, t;

    memset(out, 0, sizeof *out);
    if (payload == NULL || len == 0 || len > PAYLOAD_MAX)
        return -EINVAL;
    /* one trailing line end, as a bot's println would add */
    if (p[n - 1] == '\n') {
        n--;
        if (n > 0 && p[n - 1] == '\r')
            n--;
    }

    t = token_len(p, n);
    if (!valid_command(p, t))
        goto bad;
    out->command = p;
    out->command_len = t;
    if (t == n)
        return 0;
    p += t + 1;
    n -= t + 1;

    t = token_len(p, n);
    if (is_tradedata(p, t))
        return 0;
    if (!wire_valid_name_id(p, t))
        goto bad;
    out->bot_id = p;
    out->bot_id_len = t;
    if (t == n)
        return 0;
    p += t + 1;
    n -= t + 1;

    t = token_len(p, n);
    if (t == 0)
        goto bad;
    if (is_tradedata(p, t))
        return 0;
    {
        const char *us = memchr(p, '_', t);
        if (us != NULL) {
            size_t idn = (size_t)(us - p);
            if (!wire_valid_user_id(p, idn) || !valid_tradehash(us + 1, t - idn - 1))
                goto bad;
            out->steamid = p;
            out->steamid_len = idn;
            out->tradehash = us + 1;
            out->tradehash_len = t - idn - 1;
        } else if (wire_valid_user_id(p, t)) {
            out->steamid = p;
            out->steamid_len = t;
        }
    }
    /* what follows (if anything) is opaque */
    return 0;
bad:
    memset(out, 0, sizeof *out);
    return -EINVAL;
}
