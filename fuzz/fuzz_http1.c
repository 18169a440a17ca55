/*
 * fuzz_http1: the head of an HTTP/1.x request (wire_http_parse) and the
 * helpers a route reads its arguments with (wire_http_decode,
 * wire_http_query_arg).
 *
 * Input: one control byte, then the bytes a connection sent. The control
 * byte gives a small `max` (3 * byte + 1, so that heads meet it), the
 * decoders' output capacity (its low 6 bits) and the length of an argument
 * name taken from the front of the bytes (its top 3 bits).
 *
 * Checks, under max 8192 and under the small max, on the input in a buffer
 * of exactly its size: the answer is 1, 0 or -400/-431/-505 (then with a
 * reason); it agrees with the framing computed here (empty lines skipped,
 * then the first blank line): 1 exactly when it ends within max, with
 * head_len there; 0 only below max with no blank line; 431 only at or past
 * max with none within it. An accepted head: every span inside it, the
 * target a run of visible bytes after the method token and before
 * " HTTP/1.x", the method the token's, the path and query splitting the
 * target at its first '?', no bare CR or LF and no folded line, header
 * values trimmed and free of control characters, Host on 1.1, no length
 * with Transfer-Encoding, websocket only with Upgrade. The same answer
 * twice; the same head from the head alone and from the input with more
 * bytes after it, "need more" one byte short of it; a head within the small
 * max is the same under the large one. Pipelined heads after the first are
 * checked the same way. wire_http_decode and wire_http_query_arg agree with
 * models written from their contracts, write at most `cap` bytes (the
 * buffer is exactly that), NUL-terminate and never put out a control byte.
 */
#include "fuzz.h"
#include "http1.h"

#include <strings.h>

#define BIG_MAX 8192

static const char *const method_names[] = {"GET",   "POST",   "OPTIONS", "PUT",
                                           "PATCH", "DELETE", "CONNECT", "HEAD"};

/* The empty lines before a request line that the parser skips. */
static size_t
crlf_skip(const char *s, size_t n, size_t max)
{
    size_t k = 0;

    while (k + 2 <= n && k < max && s[k] == '\r' && s[k + 1] == '\n')
        k += 2;
    return k;
}

/* The offset just past the first "\r\n\r\n" in s[from..n), or 0. */
static size_t
blank_end(const char *s, size_t n, size_t from)
{
    for (size_t i = from; i + 4 <= n; i++)
        if (memcmp(s + i, "\r\n\r\n", 4) == 0)
            return i + 4;
    return 0;
}

/* Does s[0..n) hold `word` in any case? */
static int
has_word(const char *s, size_t n, const char *word)
{
    size_t w = strlen(word);

    for (size_t i = 0; i + w <= n; i++)
        if (strncasecmp(s + i, word, w) == 0)
            return 1;
    return 0;
}

static int
same_span(wire_span_t a, const char *abase, wire_span_t b, const char *bbase)
{
    if (a.p == NULL || b.p == NULL)
        return a.p == NULL && b.p == NULL && a.n == 0 && b.n == 0;
    return a.n == b.n && a.p - abase == b.p - bbase;
}

/* The same head, parsed from two copies of the bytes. */
static int
same_head(const wire_http_head_t *a, const char *abase, const wire_http_head_t *b,
          const char *bbase)
{
    return a->method == b->method && a->minor == b->minor && a->keep_alive == b->keep_alive &&
           a->has_length == b->has_length && a->length == b->length && a->chunked == b->chunked &&
           a->upgrade == b->upgrade && a->websocket == b->websocket &&
           a->expect_continue == b->expect_continue && a->head_len == b->head_len &&
           same_span(a->target, abase, b->target, bbase) &&
           same_span(a->path, abase, b->path, bbase) &&
           same_span(a->query, abase, b->query, bbase) &&
           same_span(a->authorization, abase, b->authorization, bbase) &&
           same_span(a->origin, abase, b->origin, bbase) &&
           same_span(a->ac_request_headers, abase, b->ac_request_headers, bbase) &&
           same_span(a->host, abase, b->host, bbase);
}

/* A header value: inside the head, trimmed, no control byte but HT. */
static void
check_value(wire_span_t v, const char *buf, size_t head_len)
{
    if (v.p == NULL) {
        FUZZ_CHECK(v.n == 0);
        return;
    }
    FUZZ_CHECK(fuzz_within(v.p, v.n, buf, head_len));
    if (v.n > 0)
        FUZZ_CHECK(v.p[0] != ' ' && v.p[0] != '\t' && v.p[v.n - 1] != ' ' && v.p[v.n - 1] != '\t');
    for (size_t i = 0; i < v.n; i++) {
        unsigned char c = (unsigned char)v.p[i];
        FUZZ_CHECK((c >= ' ' && c != 0x7f) || c == '\t');
    }
}

/* An accepted head at buf[skip..h->head_len). */
static void
check_head(const char *buf, size_t n, size_t skip, const wire_http_head_t *h)
{
    size_t hl = h->head_len;
    const char *t = h->target.p, *v;
    size_t tokn;

    FUZZ_CHECK(hl >= skip + 4 && hl <= n && memcmp(buf + hl - 4, "\r\n\r\n", 4) == 0);
    FUZZ_CHECK(h->skip == skip);
    /* no bare CR or LF, no folded line */
    for (size_t i = skip; i < hl; i++) {
        if (buf[i] == '\r')
            FUZZ_CHECK(i + 1 < hl && buf[i + 1] == '\n');
        if (buf[i] == '\n')
            FUZZ_CHECK(i > skip && buf[i - 1] == '\r' &&
                       (i + 1 == hl || (buf[i + 1] != ' ' && buf[i + 1] != '\t')));
    }
    /* the request line: token SP target SP HTTP/1.x CRLF */
    FUZZ_CHECK(t != NULL && h->target.n > 0 && fuzz_within(t, h->target.n, buf, hl));
    FUZZ_CHECK(t > buf + skip + 1 && t[-1] == ' ');
    tokn = (size_t)(t - 1 - (buf + skip));
    FUZZ_CHECK(fuzz_only(buf + skip, tokn, FUZZ_ALNUM "!#$%&'*+-.^_`|~"));
    for (size_t i = 0; i < h->target.n; i++)
        FUZZ_CHECK((unsigned char)t[i] > ' ' && t[i] != 0x7f);
    v = t + h->target.n;
    FUZZ_CHECK(fuzz_within(v, 11, buf, hl));
    FUZZ_CHECK(memcmp(v, " HTTP/1.", 8) == 0 && v[8] >= '0' && v[8] <= '9' && v[9] == '\r');
    FUZZ_CHECK(h->minor == (v[8] == '0' ? 0 : 1));
    /* the method is the token's */
    FUZZ_CHECK(h->method >= WIRE_HTTP_GET && h->method <= WIRE_HTTP_OTHER);
    for (int m = 0; m < WIRE_HTTP_OTHER; m++) {
        int same =
            strlen(method_names[m]) == tokn && memcmp(method_names[m], buf + skip, tokn) == 0;
        FUZZ_CHECK(same == (h->method == m));
    }
    /* path and query split the target at its first '?' */
    if (h->path.p != NULL) {
        FUZZ_CHECK(h->path.p == t && t[0] == '/' && h->path.n <= h->target.n);
        FUZZ_CHECK(memchr(t, '?', h->path.n) == NULL);
        if (h->query.p != NULL)
            FUZZ_CHECK(h->path.n < h->target.n && t[h->path.n] == '?' &&
                       h->query.p == t + h->path.n + 1 &&
                       h->path.n + 1 + h->query.n == h->target.n);
        else
            FUZZ_CHECK(h->path.n == h->target.n && h->query.n == 0);
    } else {
        FUZZ_CHECK(h->path.n == 0 && h->query.p == NULL && h->query.n == 0);
        FUZZ_CHECK((h->target.n == 1 && t[0] == '*') || h->method == WIRE_HTTP_CONNECT);
    }
    check_value(h->authorization, buf, hl);
    check_value(h->origin, buf, hl);
    check_value(h->ac_request_headers, buf, hl);
    check_value(h->host, buf, hl);
    /* the flags */
    FUZZ_CHECK(h->minor == 0 || h->minor == 1);
    FUZZ_CHECK((h->keep_alive | h->has_length | h->chunked | h->upgrade | h->websocket |
                h->expect_continue) >>
                   1 ==
               0);
    FUZZ_CHECK(h->has_length || h->length == 0);
    FUZZ_CHECK(h->length < 1000000000000000000ull);
    FUZZ_CHECK(!(h->chunked && h->has_length));
    FUZZ_CHECK(!h->websocket || h->upgrade);
    FUZZ_CHECK(h->minor == 0 || h->host.p != NULL);
    /* a flag only with the word that sets it somewhere in the head */
    if (h->has_length)
        FUZZ_CHECK(has_word(buf + skip, hl - skip, "content-length:"));
    if (h->chunked)
        FUZZ_CHECK(has_word(buf + skip, hl - skip, "transfer-encoding:"));
    if (h->websocket)
        FUZZ_CHECK(has_word(buf + skip, hl - skip, "websocket"));
    if (h->expect_continue)
        FUZZ_CHECK(has_word(buf + skip, hl - skip, "100-continue"));
    if (h->minor == 1 && !h->keep_alive)
        FUZZ_CHECK(has_word(buf + skip, hl - skip, "close"));
    if (h->minor == 0 && h->keep_alive)
        FUZZ_CHECK(has_word(buf + skip, hl - skip, "keep-alive"));
}

/* Parses buf[0..n) under `max` and checks the answer against the framing. */
static int
parse_checked(const char *buf, size_t n, size_t max, wire_http_head_t *h)
{
    const char *why = NULL;
    int rc = wire_http_parse(buf, n, max, h, &why);
    size_t skip = crlf_skip(buf, n, max);
    size_t end = blank_end(buf, n, skip);

    switch (rc) {
    case 1:
        FUZZ_CHECK(end != 0 && end <= max && h->head_len == end);
        check_head(buf, n, skip, h);
        break;
    case 0: FUZZ_CHECK(n < max && end == 0); break;
    case -WIRE_HTTP_TOO_LARGE:
        FUZZ_CHECK(n >= max && (end == 0 || end > max));
        FUZZ_CHECK(why != NULL);
        break;
    case -WIRE_HTTP_BAD:
    case -WIRE_HTTP_VERSION:
        FUZZ_CHECK(end != 0 && end <= max);
        FUZZ_CHECK(why != NULL);
        break;
    default: FUZZ_CHECK(!"an answer out of the contract");
    }
    return rc;
}

/* The decoder's contract, spelled out: -1 or the length written to out. */
static int
decode_model(const char *s, size_t n, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef0123456789ABCDEF";
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            const char *hi, *lo;
            if (n - i < 3 || s[i + 1] == '\0' || s[i + 2] == '\0' ||
                (hi = strchr(hex, s[i + 1])) == NULL || (lo = strchr(hex, s[i + 2])) == NULL)
                return -1;
            c = (unsigned char)(((hi - hex) % 16) * 16 + (lo - hex) % 16);
            i += 2;
        }
        if (c < 0x20 || c == 0x7f)
            return -1;
        if (o + 1 >= cap)
            return -1;
        out[o++] = (char)c;
    }
    if (cap == 0)
        return -1;
    out[o] = '\0';
    return (int)o;
}

/* The argument's contract: the first '&'-separated part whose name (up to
 * its first '=') is `name`, its value decoded (-2 when it does not decode
 * into cap bytes); -1 when there is none. */
static int
query_model(const char *q, size_t n, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name), a = 0;

    for (;;) {
        const char *amp = memchr(q + a, '&', n - a);
        size_t b = amp ? (size_t)(amp - q) : n;
        const char *eq = memchr(q + a, '=', b - a);
        size_t klen = eq ? (size_t)(eq - (q + a)) : b - a;

        if (klen == nlen && memcmp(q + a, name, nlen) == 0) {
            int r = eq == NULL ? decode_model("", 0, out, cap)
                               : decode_model(eq + 1, (size_t)(q + b - (eq + 1)), out, cap);
            return r < 0 ? -2 : r;
        }
        if (amp == NULL)
            return -1;
        a = b + 1;
    }
}

/* One output in exactly `cap` bytes: NUL-terminated, no control byte. */
static void
check_output(int r, const char *out, size_t cap)
{
    FUZZ_CHECK(r >= -2);
    if (r < 0)
        return;
    FUZZ_CHECK((size_t)r < cap && out[r] == '\0');
    for (int i = 0; i < r; i++)
        FUZZ_CHECK((unsigned char)out[i] >= 0x20 && out[i] != 0x7f);
}

static void
fuzz_query(wire_span_t q, const char *name, size_t cap)
{
    char *out = malloc(cap), *want = malloc(cap + 1); /* ASan: exactly cap bytes */
    int r, m;

    FUZZ_CHECK((out != NULL || cap == 0) && want != NULL);
    r = wire_http_query_arg(q, name, out, cap);
    check_output(r, out, cap);
    m = q.p == NULL ? -1 : query_model(q.p, q.n, name, want, cap);
    FUZZ_CHECK(r == m);
    if (r >= 0)
        FUZZ_CHECK(memcmp(out, want, (size_t)r + 1) == 0);
    free(out);
    free(want);
}

static void
fuzz_decode(const char *in, size_t n, size_t cap)
{
    char *out = malloc(cap), *big = malloc(n + 1), *want = malloc(n + 1), *enc;
    int r, rb, m;

    FUZZ_CHECK((out != NULL || cap == 0) && big != NULL && want != NULL);
    /* into exactly cap bytes, and into enough */
    r = wire_http_decode((wire_span_t){in, n}, out, cap);
    check_output(r, out, cap);
    FUZZ_CHECK(r >= -1);
    rb = wire_http_decode((wire_span_t){in, n}, big, n + 1);
    check_output(rb, big, n + 1);
    FUZZ_CHECK(rb >= -1);
    m = decode_model(in, n, want, n + 1);
    FUZZ_CHECK(rb == m);
    if (rb >= 0)
        FUZZ_CHECK(memcmp(big, want, (size_t)rb + 1) == 0);
    FUZZ_CHECK(r == (rb >= 0 && (size_t)rb < cap ? rb : -1));
    if (r >= 0)
        FUZZ_CHECK(memcmp(out, big, (size_t)r + 1) == 0);
    /* without '%' and control bytes, the input is its own decoding */
    if (memchr(in, '%', n) == NULL) {
        int plain = 1;
        for (size_t i = 0; i < n; i++)
            plain &= (unsigned char)in[i] >= 0x20 && in[i] != 0x7f;
        FUZZ_CHECK(plain ? rb == (int)n && memcmp(big, in, n) == 0 : rb == -1);
    }
    /* a decoded value, encoded whole, decodes back to itself */
    if (rb >= 0) {
        enc = malloc(3 * (size_t)rb + 1);
        FUZZ_CHECK(enc != NULL);
        for (int i = 0; i < rb; i++)
            snprintf(enc + 3 * i, 4, "%%%02X", (unsigned char)big[i]);
        FUZZ_CHECK(wire_http_decode((wire_span_t){enc, 3 * (size_t)rb}, want, n + 1) == rb &&
                   memcmp(want, big, (size_t)rb + 1) == 0);
        free(enc);
    }
    free(out);
    free(big);
    free(want);
}

/* The head at the front of buf[0..n) under max, and the heads pipelined
 * after it. */
static void
fuzz_heads(const char *buf, size_t n, size_t small, size_t cap)
{
    size_t at = 0;

    for (int k = 0; k < 8 && at < n; k++) {
        const char *p = buf + at;
        size_t left = n - at;
        wire_http_head_t h, again, hs;
        int rc = parse_checked(p, left, BIG_MAX, &h);
        int rs = parse_checked(p, left, small, &hs);

        /* determinism */
        FUZZ_CHECK(parse_checked(p, left, BIG_MAX, &again) == rc);
        if (rc == 1)
            FUZZ_CHECK(same_head(&h, p, &again, p));
        /* a smaller max: the same head when it fits, else too large */
        if (rs == 1)
            FUZZ_CHECK(rc == 1 && same_head(&h, p, &hs, p));
        if (rc == 1 && h.head_len <= small)
            FUZZ_CHECK(rs == 1);
        if (rc != 1)
            FUZZ_CHECK(rs == rc || rs == -WIRE_HTTP_TOO_LARGE);
        if (rc != 1)
            break;
        {
            size_t hl = h.head_len;
            char *cut = fuzz_dup((const uint8_t *)p, hl - 1);
            char *exact = fuzz_dup((const uint8_t *)p, hl);
            char *more = malloc(left + n);
            wire_http_head_t h2;

            FUZZ_CHECK(more != NULL);
            /* one byte short: need more */
            FUZZ_CHECK(parse_checked(cut, hl - 1, BIG_MAX, &h2) == 0);
            /* the head alone, and with more bytes after it */
            FUZZ_CHECK(parse_checked(exact, hl, BIG_MAX, &h2) == 1 && same_head(&h, p, &h2, exact));
            memcpy(more, p, left);
            memcpy(more + left, buf, n);
            FUZZ_CHECK(parse_checked(more, left + n, BIG_MAX, &h2) == 1 &&
                       same_head(&h, p, &h2, more));
            free(cut);
            free(exact);
            free(more);
        }
        /* the query as a route reads it */
        if (h.query.p != NULL) {
            fuzz_query(h.query, "token", cap);
            fuzz_query(h.query, "offset", 64);
        }
        fuzz_decode(h.path.p != NULL ? h.path.p : h.target.p,
                    h.path.p != NULL ? h.path.n : h.target.n, cap);
        at += h.head_len;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t small, cap, nlen, n;
    char *buf, *name;

    if (size == 0)
        return 0;
    small = 3 * (size_t)data[0] + 1;
    cap = data[0] & 63;
    nlen = data[0] >> 5;
    n = size - 1;
    buf = fuzz_dup(data + 1, n);

    fuzz_heads(buf, n, small, cap);

    /* the bytes as a percent-encoded string */
    fuzz_decode(buf, n, cap);

    /* the bytes as a query, after a name taken from their front */
    if (nlen > n)
        nlen = n;
    name = fuzz_cstr(data + 1, nlen); /* a NUL in it ends it */
    {
        char *q = fuzz_dup(data + 1 + nlen, n - nlen);
        fuzz_query((wire_span_t){q, n - nlen}, name, cap);
        fuzz_query((wire_span_t){NULL, 0}, name, cap);
        free(q);
    }
    free(name);
    free(buf);
    return 0;
}
