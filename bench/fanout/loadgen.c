/*
 * bench/fanout/loadgen.c: the fan-out load generator and publisher.
 *
 * One thread, one epoll set, non-blocking sockets. It opens N WebSocket
 * connections to a server, in the native protocol of coordhub (GET
 * /ws?token=...) or in Socket.IO v4 over WebSocket (GET
 * /socket.io/?EIO=4&transport=websocket, then CONNECT "40{"token":...}"),
 * and, in "steps" mode, PUBLISHes `tradestate` messages to Redis itself
 * (raw RESP, pipelined, paced by a token bucket to an exact count) while it
 * receives the deliveries on the same loop.
 *
 * Plan: users U, K sockets per user (N = U*K; sockets of one user share its
 * room). Message seq s goes to user s mod U (round robin), so every socket
 * of that user expects it exactly once. Each socket keeps a bitmap of the
 * step's sequence numbers: delivered, duplicated, lost and misrouted are
 * exact. Each message carries extra.t = CLOCK_MONOTONIC ns at publish
 * (same machine), so latency is publish-to-receipt, kept in a log-linear
 * histogram (about 3% precision).
 *
 * Tokens are minted here (HS256, the same shape as `coordhub token`) from
 * --jwt-secret, because 19,000 process spawns would take minutes.
 *
 * Output: one JSON object per line on stdout (connect phase, each step, or
 * the idle measurement); a human summary on stderr.
 *
 *   loadgen --port P --proto native|sio --jwt-secret S --users U --per-user K
 *           --mode steps --redis-port R --rates 5000,10000 --step-seconds 4
 *           [--cpu-rate R --cpu-seconds S] [--server-pid PID] [--redis-pid PID]
 *           [--label L] [--scenario NAME]
 *   loadgen ... --mode idle --idle-seconds 3 --server-pid PID
 *
 * Bounded: every phase has a deadline, and --max-seconds is a watchdog.
 */
#ifndef _GNU_SOURCE /* the CMake build passes -D_GNU_SOURCE */
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ utilities */

static uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void
die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static void *
xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die("out of memory");
    return p;
}

static void *
xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        die("out of memory");
    return p;
}

static void *
xcalloc(size_t a, size_t b)
{
    void *p = calloc(a ? a : 1, b ? b : 1);
    if (!p)
        die("out of memory");
    return p;
}

/* ------------------------------------------------------------ SHA-256, HMAC, JWT */

typedef struct {
    uint32_t h[8];
    uint64_t len;
    unsigned char buf[64];
    size_t n;
} sha256_t;

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void
sha256_block(sha256_t *s, const unsigned char *p)
{
    uint32_t w[64], a, b, c, d, e, f, g, h;
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
               p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4], f = s->h[5], g = s->h[6],
    h = s->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d;
    s->h[4] += e, s->h[5] += f, s->h[6] += g, s->h[7] += h;
}

static void
sha256_init(sha256_t *s)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, iv, sizeof iv);
    s->len = 0;
    s->n = 0;
}

static void
sha256_update(sha256_t *s, const void *data, size_t len)
{
    const unsigned char *p = data;
    s->len += len;
    while (len > 0) {
        size_t take = 64 - s->n < len ? 64 - s->n : len;
        memcpy(s->buf + s->n, p, take);
        s->n += take, p += take, len -= take;
        if (s->n == 64) {
            sha256_block(s, s->buf);
            s->n = 0;
        }
    }
}

static void
sha256_final(sha256_t *s, unsigned char out[32])
{
    uint64_t bits = s->len * 8;
    unsigned char pad = 0x80, zero = 0, lenb[8];
    sha256_update(s, &pad, 1);
    while (s->n != 56)
        sha256_update(s, &zero, 1);
    for (int i = 0; i < 8; i++)
        lenb[i] = (unsigned char)(bits >> (56 - 8 * i));
    sha256_update(s, lenb, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(s->h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(s->h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(s->h[i] >> 8);
        out[4 * i + 3] = (unsigned char)s->h[i];
    }
}

static void
hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen, unsigned char out[32])
{
    unsigned char k[64] = {0}, ipad[64], opad[64], inner[32];
    sha256_t s;
    if (klen > 64) {
        sha256_init(&s);
        sha256_update(&s, key, klen);
        sha256_final(&s, k);
    } else {
        memcpy(k, key, klen);
    }
    for (int i = 0; i < 64; i++)
        ipad[i] = k[i] ^ 0x36, opad[i] = k[i] ^ 0x5c;
    sha256_init(&s);
    sha256_update(&s, ipad, 64);
    sha256_update(&s, msg, mlen);
    sha256_final(&s, inner);
    sha256_init(&s);
    sha256_update(&s, opad, 64);
    sha256_update(&s, inner, 32);
    sha256_final(&s, out);
}

static size_t
b64url(const unsigned char *in, size_t n, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = t[v >> 18 & 63], out[o++] = t[v >> 12 & 63], out[o++] = t[v >> 6 & 63],
        out[o++] = t[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = t[v >> 18 & 63], out[o++] = t[v >> 12 & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = t[v >> 18 & 63], out[o++] = t[v >> 12 & 63], out[o++] = t[v >> 6 & 63];
    }
    out[o] = 0;
    return o;
}

/* An HS256 token {"alg":"HS256","typ":"JWT"}.{"exp","iat","sub"}. */
static char *
mint_token(const char *secret, const char *sub, long ttl)
{
    char claims[256], buf[1024];
    unsigned char mac[32];
    time_t now = time(NULL);
    int cl = snprintf(claims, sizeof claims, "{\"exp\":%ld,\"iat\":%ld,\"sub\":\"%s\"}",
                      (long)now + ttl, (long)now, sub);
    size_t o = b64url((const unsigned char *)"{\"alg\":\"HS256\",\"typ\":\"JWT\"}", 27, buf);
    buf[o++] = '.';
    o += b64url((const unsigned char *)claims, (size_t)cl, buf + o);
    hmac_sha256(secret, strlen(secret), buf, o, mac);
    buf[o++] = '.';
    o += b64url(mac, 32, buf + o);
    return strdup(buf);
}

/* ------------------------------------------------------------ histogram */

/* Log-linear: values below 64 ns exact; above, 32 sub-buckets per power of
 * two. Index range covers up to 2^45 ns (about 10 hours). */
#define H_SUB 32
#define H_N (64 + 40 * H_SUB)

typedef struct {
    uint64_t b[H_N];
    uint64_t n, max, sum;
} hist_t;

static int
h_index(uint64_t v)
{
    if (v < 64)
        return (int)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - 5;
    int idx = 64 + (msb - 6) * H_SUB + (int)((v >> shift) - 32);
    return idx < H_N ? idx : H_N - 1;
}

static uint64_t
h_value(int idx) /* upper bound of the bucket */
{
    if (idx < 64)
        return (uint64_t)idx;
    int k = idx - 64, msb = k / H_SUB + 6, j = k % H_SUB;
    int shift = msb - 5;
    return ((uint64_t)(32 + j + 1) << shift) - 1;
}

static void
h_add(hist_t *h, uint64_t v)
{
    h->b[h_index(v)]++;
    h->n++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
}

static double
h_pct_ms(const hist_t *h, double p)
{
    if (h->n == 0)
        return 0;
    uint64_t want = (uint64_t)(p / 100.0 * (double)h->n);
    if (want >= h->n)
        want = h->n - 1;
    uint64_t seen = 0;
    for (int i = 0; i < H_N; i++) {
        seen += h->b[i];
        if (seen > want) {
            uint64_t v = h_value(i);
            return (double)(v < h->max ? v : h->max) / 1e6;
        }
    }
    return (double)h->max / 1e6;
}

/* ------------------------------------------------------------ /proc readers */

static double
proc_stat_cpu_s(int pid)
{
    char path[64], buf[2048];
    if (pid <= 0)
        return 0;
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    /* fields after ')': state(3) ... utime(14) stime(15) */
    unsigned long ut = 0, st = 0;
    int field = 2;
    for (char *tok = strtok(p + 1, " "); tok; tok = strtok(NULL, " ")) {
        field++;
        if (field == 14)
            ut = strtoul(tok, NULL, 10);
        else if (field == 15) {
            st = strtoul(tok, NULL, 10);
            break;
        }
    }
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Sums, over every thread of PID, field `field` (0: on-CPU ns, 1: ns spent
 * runnable but waiting for a CPU) of /proc/PID/task/TID/schedstat. On-CPU
 * time is the same quantity as utime+stime with ns precision; the run-queue
 * wait says how much other load on the same core held the process back.
 * PID 0 means this process. 0 if the kernel has no schedstat. */
static double
proc_sched_s(int pid, int field)
{
    char path[64];
    if (pid < 0)
        return 0;
    if (pid == 0)
        pid = getpid();
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    double total = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char p2[320];
        snprintf(p2, sizeof p2, "/proc/%d/task/%s/schedstat", pid, e->d_name);
        FILE *f = fopen(p2, "r");
        if (!f)
            continue;
        unsigned long long v[2] = {0, 0};
        if (fscanf(f, "%llu %llu", &v[0], &v[1]) == 2)
            total += (double)v[field] / 1e9;
        fclose(f);
    }
    closedir(d);
    return total;
}

static double
proc_sched_cpu_s(int pid)
{
    return pid > 0 ? proc_sched_s(pid, 0) : 0;
}

static double
proc_wait_s(int pid)
{
    return proc_sched_s(pid, 1);
}

static double
proc_cpu_s(int pid)
{
    double s = proc_sched_cpu_s(pid);
    return s > 0 ? s : proc_stat_cpu_s(pid);
}

static long
proc_rss_kb(int pid)
{
    char path[64], line[256];
    long kb = -1;
    if (pid <= 0)
        return -1;
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

static double
self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* ------------------------------------------------------------ options */

enum { PROTO_NATIVE, PROTO_SIO };

static struct {
    const char *host;
    int port;
    int proto;
    const char *secret;
    int users, per_user;
    long long uid_base;
    const char *mode;
    int redis_port;
    const char *rates;
    double step_s, warmup_s, idle_s, drain_max_s, settle_s;
    double p99_limit_ms;
    double cpu_rate, cpu_s;
    int stop_on_fail, retries;
    int server_pid, redis_pid;
    const char *label, *scenario;
    int concurrency;
    double connect_timeout_s;
    double max_s;
} O = {
    .host = "127.0.0.1",
    .port = 8080,
    .proto = PROTO_NATIVE,
    .users = 100,
    .per_user = 1,
    .uid_base = 0,
    .mode = "steps",
    .redis_port = 6379,
    .rates = "1000",
    .step_s = 4,
    .warmup_s = 1,
    .idle_s = 3,
    .drain_max_s = 15,
    .settle_s = 0.3,
    .p99_limit_ms = 50,
    .stop_on_fail = 1,
    .retries = 1,
    .label = "server",
    .scenario = "unicast",
    .concurrency = 256,
    .connect_timeout_s = 180,
    .max_s = 600,
};

/* ------------------------------------------------------------ connections */

enum {
    C_FREE,
    C_CONNECTING, /* TCP connect in progress */
    C_UPGRADING,  /* upgrade sent, waiting for 101 */
    C_SIO_OPEN,   /* waiting for the Engine.IO open packet */
    C_SIO_CONN,   /* CONNECT sent, waiting for 40 */
    C_READY,
    C_CLOSED,
};

typedef struct {
    int fd;
    uint8_t state;
    uint8_t in_step; /* ready when the current step began */
    uint32_t user;
    char *rb; /* unparsed bytes (a partial frame or header) */
    uint32_t rlen, rcap;
    char *wb; /* unsent bytes */
    uint32_t wlen, wcap;
    char *frag; /* a fragmented message being assembled */
    uint32_t flen, fcap;
    uint8_t fop;
    uint64_t t_start;
    uint64_t got; /* deliveries counted in the current step */
} conn_t;

static conn_t *C;
static int NC;
static char **TOK; /* per user */
static char **UID; /* per user */
static int EP;
static uint64_t LCG = 0x9e3779b97f4a7c15ull;

/* global counters */
static struct {
    long ready, failed, closed_after_ready, http_refused, connect_errors, timeouts, sio_refused;
    long pings_answered, other_frames;
    long close_frames, eofs, resets;
    int last_close_code;
    char last_fail[160];
} G;

/* step accounting */
static struct {
    int active;
    uint64_t s0;      /* first seq of the step (a multiple of users) */
    uint64_t cap;     /* bitmap bits per connection */
    uint64_t words;   /* 64-bit words per connection */
    uint64_t *bits;   /* NC * words */
    uint64_t delivered, dup, misrouted, stale, late_unknown;
    hist_t h;
} S;

static uint64_t next_seq = 0;

/* Remembers the last failure, made safe for a JSON string (printable
 * ASCII, no quotes or backslashes; the first line only). */
static void
set_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(G.last_fail, sizeof G.last_fail, fmt, ap);
    va_end(ap);
    for (char *p = G.last_fail; *p; p++) {
        if (*p == '\r' || *p == '\n') {
            *p = 0;
            break;
        }
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            *p = '\'';
    }
}

static void
ep_mod(conn_t *c, uint32_t ev)
{
    struct epoll_event e = {.events = ev, .data.u64 = (uint64_t)(c - C)};
    epoll_ctl(EP, EPOLL_CTL_MOD, c->fd, &e);
}

static void
conn_close(conn_t *c, int failed)
{
    if (c->fd >= 0) {
        struct linger lg = {1, 0}; /* RST: no TIME_WAIT piling up between runs */
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        epoll_ctl(EP, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    if (c->state == C_READY)
        G.closed_after_ready++;
    else if (failed && c->state != C_CLOSED)
        G.failed++;
    c->state = C_CLOSED;
    free(c->rb), c->rb = NULL, c->rlen = c->rcap = 0;
    free(c->wb), c->wb = NULL, c->wlen = c->wcap = 0;
    free(c->frag), c->frag = NULL, c->flen = c->fcap = 0;
}

static void
conn_send(conn_t *c, const void *data, size_t len)
{
    const char *p = data;
    if (c->fd < 0)
        return;
    if (c->wlen == 0) {
        ssize_t n = write(c->fd, p, len);
        if (n == (ssize_t)len)
            return;
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                set_fail("write: %s", strerror(errno));
                conn_close(c, 1);
                return;
            }
            n = 0;
        }
        p += n, len -= (size_t)n;
        ep_mod(c, EPOLLIN | EPOLLOUT);
    }
    if (c->wlen + len > c->wcap) {
        c->wcap = (uint32_t)((c->wlen + len) * 2);
        c->wb = xrealloc(c->wb, c->wcap);
    }
    memcpy(c->wb + c->wlen, p, len);
    c->wlen += (uint32_t)len;
}

/* A masked client frame (RFC 6455 5.3). */
static void
ws_send(conn_t *c, int op, const char *payload, size_t len)
{
    unsigned char hdr[14];
    size_t h = 0;
    hdr[h++] = (unsigned char)(0x80 | op);
    if (len < 126) {
        hdr[h++] = (unsigned char)(0x80 | len);
    } else if (len < 65536) {
        hdr[h++] = 0x80 | 126;
        hdr[h++] = (unsigned char)(len >> 8);
        hdr[h++] = (unsigned char)len;
    } else {
        hdr[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            hdr[h++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    LCG = LCG * 6364136223846793005ull + 1442695040888963407ull;
    uint32_t m = (uint32_t)(LCG >> 32);
    unsigned char *mask = hdr + h;
    memcpy(mask, &m, 4);
    h += 4;
    char stackbuf[512];
    char *buf = h + len <= sizeof stackbuf ? stackbuf : xmalloc(h + len);
    memcpy(buf, hdr, h);
    for (size_t i = 0; i < len; i++)
        buf[h + i] = (char)(payload[i] ^ mask[i & 3]);
    conn_send(c, buf, h + len);
    if (buf != stackbuf)
        free(buf);
}

static void
conn_ready(conn_t *c)
{
    c->state = C_READY;
    G.ready++;
}

/* ------------------------------------------------------------ deliveries */

static int
parse_u64_after(const char *p, const char *end, const char *key, size_t klen, uint64_t *out)
{
    const char *k = memmem(p, (size_t)(end - p), key, klen);
    if (!k)
        return -1;
    k += klen;
    while (k < end && (*k == ' ' || *k == ':'))
        k++;
    if (k >= end || *k < '0' || *k > '9')
        return -1;
    uint64_t v = 0;
    while (k < end && *k >= '0' && *k <= '9')
        v = v * 10 + (uint64_t)(*k++ - '0');
    *out = v;
    return 0;
}

static void
on_trade(conn_t *c, const char *p, size_t len, uint64_t now)
{
    const char *end = p + len;
    const char *ex = memmem(p, len, "\"extra\"", 7);
    uint64_t seq, t;
    if (!ex || parse_u64_after(ex, end, "\"seq\"", 5, &seq) != 0 ||
        parse_u64_after(ex, end, "\"t\"", 3, &t) != 0) {
        G.other_frames++;
        return;
    }
    if (!S.active || !c->in_step) {
        S.late_unknown++;
        return;
    }
    if (seq < S.s0) {
        S.stale++;
        return;
    }
    uint64_t rel = seq - S.s0;
    if (seq % (uint64_t)O.users != c->user || rel / (uint64_t)O.users >= S.cap) {
        S.misrouted++;
        return;
    }
    uint64_t idx = rel / (uint64_t)O.users;
    uint64_t *w = S.bits + (uint64_t)(c - C) * S.words + idx / 64;
    uint64_t bit = 1ull << (idx % 64);
    if (*w & bit) {
        S.dup++;
        return;
    }
    *w |= bit;
    S.delivered++;
    c->got++;
    h_add(&S.h, now > t ? now - t : 0);
}

static void sio_send_connect(conn_t *c);

static void
on_message(conn_t *c, const char *p, size_t len, uint64_t now)
{
    if (O.proto == PROTO_NATIVE) {
        if (len > 22 && memcmp(p, "{\"event\":\"tradestate\"", 21) == 0)
            on_trade(c, p, len, now);
        else
            G.other_frames++;
        return;
    }
    /* Engine.IO / Socket.IO */
    if (len == 0) {
        G.other_frames++;
        return;
    }
    switch (p[0]) {
    case '0': /* open */
        if (c->state == C_SIO_OPEN)
            sio_send_connect(c);
        return;
    case '2': /* ping */
        ws_send(c, 1, "3", 1);
        G.pings_answered++;
        return;
    case '4':
        if (len >= 2 && p[1] == '2') {
            if (len > 16 && memcmp(p + 2, "[\"tradestate\"", 13) == 0)
                on_trade(c, p, len, now);
            else
                G.other_frames++;
        } else if (len >= 2 && p[1] == '0') {
            if (c->state == C_SIO_CONN)
                conn_ready(c);
        } else if (len >= 2 && p[1] == '4') {
            G.sio_refused++;
            set_fail("socket.io CONNECT refused: %.*s", (int)(len < 100 ? len : 100), p);
            conn_close(c, 1);
        } else {
            G.other_frames++;
        }
        return;
    default:
        G.other_frames++;
    }
}

/* Parses frames in [p, p+len); returns bytes consumed. */
static size_t
parse_frames(conn_t *c, const char *p, size_t len, uint64_t now)
{
    size_t off = 0;
    while (c->fd >= 0 && len - off >= 2) {
        const unsigned char *f = (const unsigned char *)p + off;
        size_t avail = len - off;
        int fin = f[0] & 0x80, op = f[0] & 0x0f, masked = f[1] & 0x80;
        uint64_t pl = f[1] & 0x7f;
        size_t h = 2;
        if (pl == 126) {
            if (avail < 4)
                break;
            pl = (uint64_t)f[2] << 8 | f[3];
            h = 4;
        } else if (pl == 127) {
            if (avail < 10)
                break;
            pl = 0;
            for (int i = 0; i < 8; i++)
                pl = pl << 8 | f[2 + i];
            h = 10;
        }
        if (masked)
            h += 4;
        if (pl > (16u << 20)) {
            set_fail("frame of %" PRIu64 " bytes", pl);
            conn_close(c, 1);
            return len;
        }
        if (avail < h + pl)
            break;
        char *payload = (char *)f + h;
        if (masked)
            for (uint64_t i = 0; i < pl; i++)
                payload[i] ^= (char)f[h - 4 + (i & 3)];
        off += h + (size_t)pl;
        if (op == 0x8) { /* close */
            G.last_close_code = pl >= 2 ? ((unsigned char)payload[0] << 8 | (unsigned char)payload[1]) : 1005;
            G.close_frames++;
            set_fail("server closed with %d", G.last_close_code);
            conn_close(c, 1);
            return len;
        } else if (op == 0x9) {
            ws_send(c, 0xA, payload, (size_t)pl);
        } else if (op == 0xA) {
            /* pong: nothing */
        } else if (op == 0x1 || op == 0x2 || op == 0x0) {
            if (op != 0 && fin) {
                on_message(c, payload, (size_t)pl, now);
            } else {
                if (op != 0)
                    c->fop = (uint8_t)op, c->flen = 0;
                if (c->flen + pl > c->fcap) {
                    c->fcap = (uint32_t)((c->flen + pl) * 2);
                    c->frag = xrealloc(c->frag, c->fcap);
                }
                memcpy(c->frag + c->flen, payload, (size_t)pl);
                c->flen += (uint32_t)pl;
                if (fin) {
                    on_message(c, c->frag, c->flen, now);
                    c->flen = 0;
                }
            }
        } else {
            G.other_frames++;
        }
    }
    return off;
}

static char RBUF[1 << 20];

static void
on_readable(conn_t *c, uint64_t now)
{
    size_t have = c->rlen;
    if (have)
        memcpy(RBUF, c->rb, have);
    ssize_t n = read(c->fd, RBUF + have, sizeof RBUF - have);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        set_fail("read: %s", n == 0 ? "EOF" : strerror(errno));
        if (n == 0)
            G.eofs++;
        else
            G.resets++;
        conn_close(c, 1);
        return;
    }
    size_t len = have + (size_t)n, off = 0;
    if (c->state == C_UPGRADING) {
        char *e = memmem(RBUF, len, "\r\n\r\n", 4);
        if (!e) {
            off = 0;
            goto keep;
        }
        if (len < 12 || memcmp(RBUF, "HTTP/1.1 101", 12) != 0) {
            G.http_refused++;
            set_fail("upgrade answered: %.*s", (int)((e - RBUF) < 80 ? (e - RBUF) : 80), RBUF);
            conn_close(c, 1);
            return;
        }
        off = (size_t)(e - RBUF) + 4;
        if (O.proto == PROTO_NATIVE)
            conn_ready(c);
        else
            c->state = C_SIO_OPEN;
    }
    off += parse_frames(c, RBUF + off, len - off, now);
    if (c->fd < 0)
        return;
keep:
    c->rlen = (uint32_t)(len - off);
    if (c->rlen) {
        if (c->rlen > c->rcap) {
            c->rcap = c->rlen * 2;
            c->rb = xrealloc(c->rb, c->rcap);
        }
        memmove(c->rb, RBUF + off, c->rlen);
    }
}

static void
on_writable(conn_t *c)
{
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            G.connect_errors++;
            set_fail("connect: %s", strerror(err));
            conn_close(c, 1);
            return;
        }
        char req[2048];
        int n;
        if (O.proto == PROTO_NATIVE)
            n = snprintf(req, sizeof req,
                         "GET /ws?token=%s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n",
                         TOK[c->user], O.host, O.port);
        else
            n = snprintf(req, sizeof req,
                         "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: %s:%d\r\n"
                         "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                         O.host, O.port);
        c->state = C_UPGRADING;
        ep_mod(c, EPOLLIN);
        conn_send(c, req, (size_t)n);
        return;
    }
    if (c->wlen) {
        ssize_t n = write(c->fd, c->wb, c->wlen);
        if (n < 0) {
            if (errno == EAGAIN)
                return;
            set_fail("write: %s", strerror(errno));
            conn_close(c, 1);
            return;
        }
        memmove(c->wb, c->wb + n, c->wlen - (size_t)n);
        c->wlen -= (uint32_t)n;
    }
    if (c->wlen == 0)
        ep_mod(c, EPOLLIN);
}

static void
sio_send_connect(conn_t *c)
{
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "40{\"token\":\"%s\"}", TOK[c->user]);
    c->state = C_SIO_CONN;
    ws_send(c, 1, buf, (size_t)n);
}

static struct sockaddr_in SA;

static int
conn_start(conn_t *c)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        set_fail("socket: %s", strerror(errno));
        G.failed++;
        c->state = C_CLOSED;
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    c->t_start = now_ns();
    c->state = C_CONNECTING;
    struct epoll_event e = {.events = EPOLLOUT | EPOLLIN, .data.u64 = (uint64_t)(c - C)};
    epoll_ctl(EP, EPOLL_CTL_ADD, fd, &e);
    if (connect(fd, (struct sockaddr *)&SA, sizeof SA) != 0 && errno != EINPROGRESS) {
        G.connect_errors++;
        set_fail("connect: %s", strerror(errno));
        conn_close(c, 1);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ Redis publisher */

#define REDIS_TAG UINT64_MAX

static struct {
    int fd;
    char *out;
    size_t olen, ocap, ooff;
    char in[65536];
    size_t ilen;
    uint64_t sent, replies, receivers, zero_receivers, errors;
    int want_out;
} R = {.fd = -1};

static void
redis_connect(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)O.redis_port)};
    inet_pton(AF_INET, O.host, &a.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        die("cannot connect to redis on port %d: %s", O.redis_port, strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    R.fd = fd;
    struct epoll_event e = {.events = EPOLLIN, .data.u64 = REDIS_TAG};
    epoll_ctl(EP, EPOLL_CTL_ADD, fd, &e);
}

static void
redis_flush(void)
{
    while (R.ooff < R.olen) {
        ssize_t n = write(R.fd, R.out + R.ooff, R.olen - R.ooff);
        if (n < 0) {
            if (errno == EAGAIN)
                break;
            die("redis write: %s", strerror(errno));
        }
        R.ooff += (size_t)n;
    }
    if (R.ooff == R.olen)
        R.ooff = R.olen = 0;
    int want = R.olen > 0;
    if (want != R.want_out) {
        struct epoll_event e = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.u64 = REDIS_TAG};
        epoll_ctl(EP, EPOLL_CTL_MOD, R.fd, &e);
        R.want_out = want;
    }
}

static void
redis_read(void)
{
    ssize_t n = read(R.fd, R.in + R.ilen, sizeof R.in - R.ilen);
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN)
            return;
        die("redis connection lost");
    }
    R.ilen += (size_t)n;
    size_t off = 0;
    for (;;) {
        char *nl = memchr(R.in + off, '\n', R.ilen - off);
        if (!nl)
            break;
        if (R.in[off] == ':') {
            long v = strtol(R.in + off + 1, NULL, 10);
            R.receivers += (uint64_t)v;
            if (v == 0)
                R.zero_receivers++;
        } else {
            R.errors++;
            fprintf(stderr, "loadgen: redis: %.*s\n", (int)(nl - (R.in + off)), R.in + off);
        }
        R.replies++;
        off = (size_t)(nl - R.in) + 1;
    }
    memmove(R.in, R.in + off, R.ilen - off);
    R.ilen -= off;
}

static void
redis_publish(uint64_t seq, uint64_t t)
{
    char payload[512];
    uint32_t u = (uint32_t)(seq % (uint64_t)O.users);
    int pl = snprintf(payload, sizeof payload,
                      "{\"steamId\":\"%s\",\"token\":\"t%08" PRIu64 "\",\"state\":\"accepted\","
                      "\"msg\":\"trade offer accepted\",\"extra\":{\"seq\":%" PRIu64 ",\"t\":%" PRIu64 "}}",
                      UID[u], (uint64_t)(seq % 100000000u), seq, t);
    if (R.olen + (size_t)pl + 64 > R.ocap) {
        R.ocap = (R.olen + (size_t)pl + 64) * 2;
        R.out = xrealloc(R.out, R.ocap);
    }
    R.olen += (size_t)sprintf(R.out + R.olen, "*3\r\n$7\r\nPUBLISH\r\n$10\r\ntradestate\r\n$%d\r\n", pl);
    memcpy(R.out + R.olen, payload, (size_t)pl);
    R.olen += (size_t)pl;
    memcpy(R.out + R.olen, "\r\n", 2);
    R.olen += 2;
    R.sent++;
}

/* ------------------------------------------------------------ the loop */

static struct epoll_event EV[4096];
static uint64_t last_poll_return, max_gap_ns; /* the generator's own stalls */

static void
poll_once(int timeout_ms)
{
    uint64_t before = now_ns();
    if (last_poll_return && before - last_poll_return > max_gap_ns)
        max_gap_ns = before - last_poll_return; /* time spent between two waits */
    int n = epoll_wait(EP, EV, (int)(sizeof EV / sizeof EV[0]), timeout_ms);
    uint64_t now = now_ns();
    /* a wait that overslept its timeout by far: we were not scheduled */
    uint64_t slept = now - before, tmo = (uint64_t)timeout_ms * 1000000ull;
    if (slept > tmo && slept - tmo > max_gap_ns)
        max_gap_ns = slept - tmo;
    last_poll_return = now;
    if (n < 0) {
        if (errno == EINTR)
            return;
        die("epoll_wait: %s", strerror(errno));
    }
    for (int i = 0; i < n; i++) {
        uint64_t tag = EV[i].data.u64;
        uint32_t ev = EV[i].events;
        if (tag == REDIS_TAG) {
            if (ev & EPOLLIN)
                redis_read();
            if (ev & EPOLLOUT)
                redis_flush();
            if (ev & (EPOLLERR | EPOLLHUP))
                die("redis connection error");
            continue;
        }
        conn_t *c = &C[tag];
        if (c->fd < 0)
            continue;
        if (ev & EPOLLOUT)
            on_writable(c);
        if (c->fd >= 0 && (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))) {
            if (c->state == C_CONNECTING) {
                on_writable(c); /* reports the connect error */
                continue;
            }
            on_readable(c, now);
        }
    }
}

static void
emit(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

static const char *
proto_name(void)
{
    return O.proto == PROTO_NATIVE ? "native" : "sio";
}

/* Opens every connection, at most O.concurrency handshakes in flight.
 * Returns the seconds from the first connect to the last ready. */
static double
connect_all(void)
{
    int next = 0, inflight;
    uint64_t t0 = now_ns(), last_ready = t0;
    uint64_t deadline = t0 + (uint64_t)(O.connect_timeout_s * 1e9);
    long prev_ready = 0;
    uint64_t last_report = t0;
    for (;;) {
        inflight = 0;
        while (next < NC) {
            long done = G.ready + G.failed;
            inflight = (int)(next - done);
            if (inflight >= O.concurrency)
                break;
            conn_start(&C[next++]);
        }
        if (G.ready + G.failed >= NC)
            break;
        uint64_t now = now_ns();
        if (now > deadline) {
            for (int i = 0; i < NC; i++)
                if (C[i].state != C_READY && C[i].state != C_CLOSED && C[i].state != C_FREE) {
                    G.timeouts++;
                    set_fail("handshake timed out");
                    conn_close(&C[i], 1);
                }
            for (; next < NC; next++)
                G.failed++, C[next].state = C_CLOSED;
            break;
        }
        poll_once(5);
        if (now - last_report > 5000000000ull) {
            last_report = now;
            fprintf(stderr, "loadgen: connecting: %ld ready, %ld failed, %d started, %.1f s\n", G.ready, G.failed,
                    next, (double)(now - t0) / 1e9);
        }
        if (G.ready != prev_ready) {
            prev_ready = G.ready;
            last_ready = now_ns();
        }
    }
    return (double)(last_ready - t0) / 1e9;
}

static void
run_for(double seconds)
{
    uint64_t end = now_ns() + (uint64_t)(seconds * 1e9);
    while (now_ns() < end)
        poll_once(20);
}

static long
count_ready(void)
{
    long n = 0;
    for (int i = 0; i < NC; i++)
        n += C[i].state == C_READY;
    return n;
}

/* One step: publish `rate` msg/s for `seconds` (exact count), then drain.
 * Returns 1 if it passed (no loss, dup, misroute, disconnect; p99 within
 * the limit). */
/* run_step's result: 1 passed; 0 failed on latency or pacing only (worth
 * one retry: other load on a shared machine makes such failures
 * transient); -1 failed on loss, duplicates, misroutes or disconnects. */
static int attempt = 1;

static int
run_step(const char *name, double rate, double seconds, int report)
{
    uint64_t planned = (uint64_t)(rate * seconds + 0.5);
    if (planned == 0)
        planned = 1;
    /* align the first seq to a multiple of users */
    uint64_t U = (uint64_t)O.users;
    next_seq = (next_seq + U - 1) / U * U;
    memset(&S.h, 0, sizeof S.h);
    S.s0 = next_seq;
    S.cap = planned / U + 2;
    S.words = (S.cap + 63) / 64;
    free(S.bits);
    S.bits = xcalloc((size_t)NC * S.words, sizeof(uint64_t));
    S.delivered = S.dup = S.misrouted = S.stale = S.late_unknown = 0;
    long closed0 = G.closed_after_ready;
    for (int i = 0; i < NC; i++) {
        C[i].in_step = C[i].state == C_READY;
        C[i].got = 0;
    }
    uint64_t sent0 = R.sent, rep0 = R.replies, recv0 = R.receivers, zero0 = R.zero_receivers;
    double scpu0 = proc_cpu_s(O.server_pid), rcpu0 = proc_cpu_s(O.redis_pid), gcpu0 = self_cpu_s();
    double swait0 = O.server_pid > 0 ? proc_wait_s(O.server_pid) : 0, gwait0 = proc_wait_s(0),
           rwait0 = O.redis_pid > 0 ? proc_wait_s(O.redis_pid) : 0;
    S.active = 1;
    max_gap_ns = 0;
    last_poll_return = 0;

    uint64_t t0 = now_ns(), sent = 0;
    uint64_t hard_end = t0 + (uint64_t)(seconds * 2e9) + 500000000ull;
    int behind = 0;
    while (sent < planned) {
        uint64_t now = now_ns();
        if (now > hard_end) {
            behind = 1;
            break;
        }
        uint64_t due = (uint64_t)((double)(now - t0) * rate / 1e9) + 1;
        if (due > planned)
            due = planned;
        /* bound what is queued towards Redis (Redis or we are saturated) */
        if (due > sent && R.olen - R.ooff < (8u << 20)) {
            uint64_t n = due - sent;
            uint64_t ts = now_ns();
            for (uint64_t i = 0; i < n; i++)
                redis_publish(next_seq++, ts);
            sent += n;
            redis_flush();
        }
        poll_once(1);
    }
    uint64_t t_pub_end = now_ns();
    double pub_s = (double)(t_pub_end - t0) / 1e9;
    uint64_t published = sent;

    /* expected deliveries: every socket ready at the start, per its user */
    uint64_t expected = 0;
    for (int i = 0; i < NC; i++) {
        if (!C[i].in_step)
            continue;
        uint64_t u = C[i].user;
        expected += published / U + (u < published % U ? 1 : 0);
    }

    /* drain: until everything arrived, or no progress for 3 s, or the cap */
    uint64_t last_progress = now_ns(), last_seen = S.delivered;
    uint64_t drain_end = t_pub_end + (uint64_t)(O.drain_max_s * 1e9);
    while (S.delivered + S.dup < expected || R.replies - rep0 < published) {
        uint64_t now = now_ns();
        if (S.delivered != last_seen)
            last_seen = S.delivered, last_progress = now;
        if (now > drain_end || now - last_progress > 3000000000ull)
            break;
        if (R.olen)
            redis_flush();
        poll_once(5);
    }
    /* a short grace to catch duplicates that would follow */
    run_for(0.05);
    uint64_t t_end = now_ns();
    S.active = 0;
    double wall = (double)(t_end - t0) / 1e9;
    double scpu = proc_cpu_s(O.server_pid) - scpu0, rcpu = proc_cpu_s(O.redis_pid) - rcpu0,
           gcpu = self_cpu_s() - gcpu0;
    double swait = O.server_pid > 0 ? proc_wait_s(O.server_pid) - swait0 : 0, gwait = proc_wait_s(0) - gwait0,
           rwait = O.redis_pid > 0 ? proc_wait_s(O.redis_pid) - rwait0 : 0;
    long disconnects = G.closed_after_ready - closed0;
    uint64_t lost = expected > S.delivered ? expected - S.delivered : 0;
    double p50 = h_pct_ms(&S.h, 50), p90 = h_pct_ms(&S.h, 90), p99 = h_pct_ms(&S.h, 99),
           p999 = h_pct_ms(&S.h, 99.9), mx = (double)S.h.max / 1e6;
    int pass = lost == 0 && S.dup == 0 && S.misrouted == 0 && disconnects == 0 &&
               p99 <= O.p99_limit_ms && !behind && published == planned;
    double drate = (double)S.delivered / pub_s;
    if (report) {
        emit("{\"kind\":\"step\",\"label\":\"%s\",\"proto\":\"%s\",\"scenario\":\"%s\",\"step\":\"%s\","
             "\"users\":%d,\"per_user\":%d,\"conns\":%ld,"
             "\"target_rate\":%.0f,\"published\":%" PRIu64 ",\"pub_seconds\":%.3f,\"pub_rate\":%.0f,"
             "\"pub_behind\":%d,\"redis_receivers\":%" PRIu64 ",\"redis_zero_receivers\":%" PRIu64 ","
             "\"expected\":%" PRIu64 ",\"delivered\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"dup\":%" PRIu64 ","
             "\"misrouted\":%" PRIu64 ",\"stale\":%" PRIu64 ",\"disconnects\":%ld,\"last_close_code\":%d,"
             "\"deliveries_per_s\":%.0f,\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,"
             "\"max_ms\":%.3f,\"wall_seconds\":%.3f,\"server_cpu_s\":%.4f,\"server_cpu_pct\":%.1f,"
             "\"server_us_per_delivery\":%.3f,\"gen_cpu_pct\":%.1f,\"redis_cpu_pct\":%.1f,"
             "\"gen_max_stall_ms\":%.1f,\"server_runq_wait_pct\":%.1f,\"gen_runq_wait_pct\":%.1f,"
             "\"redis_runq_wait_pct\":%.1f,\"attempt\":%d,\"pass\":%s}\n",
             O.label, proto_name(), O.scenario, name, O.users, O.per_user, count_ready(), rate, published,
             pub_s, (double)published / pub_s, behind, R.receivers - recv0, R.zero_receivers - zero0,
             expected, S.delivered, lost, S.dup, S.misrouted, S.stale, disconnects, G.last_close_code,
             drate, p50, p90, p99, p999, mx, wall, scpu, 100.0 * scpu / wall,
             S.delivered ? scpu * 1e6 / (double)S.delivered : 0.0, 100.0 * gcpu / wall,
             100.0 * rcpu / wall, (double)max_gap_ns / 1e6, 100.0 * swait / wall, 100.0 * gwait / wall,
             100.0 * rwait / wall, attempt, pass ? "true" : "false");
    }
    fprintf(stderr,
            "loadgen: %s %s %s %-7s rate %8.0f/s pub %8.0f/s deliv %9.0f/s exp %" PRIu64 " got %" PRIu64
            " lost %" PRIu64 " dup %" PRIu64 " mis %" PRIu64 " disc %ld p50 %.2f p99 %.2f max %.1f ms "
            "srv %.0f%% (waited %.0f%%) %.2fus/d gen %.0f%% (waited %.0f%%) redis %.0f%% stall %.0f ms %s\n",
            O.label, proto_name(), O.scenario, name, rate, (double)published / pub_s, drate, expected,
            S.delivered, lost, S.dup, S.misrouted, disconnects, p50, p99, mx, 100.0 * scpu / wall,
            100.0 * swait / wall, S.delivered ? scpu * 1e6 / (double)S.delivered : 0.0, 100.0 * gcpu / wall,
            100.0 * gwait / wall, 100.0 * rcpu / wall,
            (double)max_gap_ns / 1e6, pass ? "PASS" : "FAIL");
    (void)sent0;
    if (pass)
        return 1;
    return lost == 0 && S.dup == 0 && S.misrouted == 0 && disconnects == 0 ? 0 : -1;
}

/* ------------------------------------------------------------ main */

static void
on_alarm(int sig)
{
    (void)sig;
    static const char m[] = "loadgen: watchdog: --max-seconds passed, exiting\n";
    write(2, m, sizeof m - 1);
    _exit(3);
}

static void
usage(void)
{
    fprintf(stderr,
            "usage: loadgen --port P [--host H] --proto native|sio --jwt-secret S --users U [--per-user K]\n"
            "               [--uid-base B] --mode steps|idle [--redis-port R] [--rates r1,r2,...]\n"
            "               [--step-seconds S] [--warmup-seconds S] [--idle-seconds S] [--drain-seconds S]\n"
            "               [--cpu-rate R --cpu-seconds S] [--p99-limit-ms MS] [--retries N] [--no-stop] [--server-pid PID] [--redis-pid PID]\n"
            "               [--label L] [--scenario NAME] [--concurrency N] [--connect-timeout S]\n"
            "               [--max-seconds S]\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
#define NEXT() (i + 1 < argc ? argv[++i] : (usage(), ""))
        if (!strcmp(a, "--host"))
            O.host = NEXT();
        else if (!strcmp(a, "--port"))
            O.port = atoi(NEXT());
        else if (!strcmp(a, "--proto")) {
            const char *p = NEXT();
            O.proto = !strcmp(p, "sio") ? PROTO_SIO : !strcmp(p, "native") ? PROTO_NATIVE : (usage(), 0);
        } else if (!strcmp(a, "--jwt-secret"))
            O.secret = NEXT();
        else if (!strcmp(a, "--users"))
            O.users = atoi(NEXT());
        else if (!strcmp(a, "--per-user"))
            O.per_user = atoi(NEXT());
        else if (!strcmp(a, "--uid-base"))
            O.uid_base = atoll(NEXT());
        else if (!strcmp(a, "--mode"))
            O.mode = NEXT();
        else if (!strcmp(a, "--redis-port"))
            O.redis_port = atoi(NEXT());
        else if (!strcmp(a, "--rates"))
            O.rates = NEXT();
        else if (!strcmp(a, "--step-seconds"))
            O.step_s = atof(NEXT());
        else if (!strcmp(a, "--warmup-seconds"))
            O.warmup_s = atof(NEXT());
        else if (!strcmp(a, "--idle-seconds"))
            O.idle_s = atof(NEXT());
        else if (!strcmp(a, "--drain-seconds"))
            O.drain_max_s = atof(NEXT());
        else if (!strcmp(a, "--p99-limit-ms"))
            O.p99_limit_ms = atof(NEXT());
        else if (!strcmp(a, "--cpu-rate"))
            O.cpu_rate = atof(NEXT());
        else if (!strcmp(a, "--cpu-seconds"))
            O.cpu_s = atof(NEXT());
        else if (!strcmp(a, "--retries"))
            O.retries = atoi(NEXT());
        else if (!strcmp(a, "--no-stop"))
            O.stop_on_fail = 0;
        else if (!strcmp(a, "--server-pid"))
            O.server_pid = atoi(NEXT());
        else if (!strcmp(a, "--redis-pid"))
            O.redis_pid = atoi(NEXT());
        else if (!strcmp(a, "--label"))
            O.label = NEXT();
        else if (!strcmp(a, "--scenario"))
            O.scenario = NEXT();
        else if (!strcmp(a, "--connect-timeout"))
            O.connect_timeout_s = atof(NEXT());
        else if (!strcmp(a, "--concurrency"))
            O.concurrency = atoi(NEXT());
        else if (!strcmp(a, "--max-seconds"))
            O.max_s = atof(NEXT());
        else
            usage();
    }
    if (!O.secret || O.users <= 0 || O.per_user <= 0 || O.port <= 0)
        usage();
    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, on_alarm);
    alarm((unsigned)O.max_s);

    NC = O.users * O.per_user;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if ((rlim_t)NC + 16 > rl.rlim_cur)
        die("%d connections need %d descriptors but the open-file limit is %llu (hard %llu): "
            "run two loadgen processes with disjoint --uid-base, each below the limit",
            NC, NC + 16, (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);

    SA.sin_family = AF_INET;
    SA.sin_port = htons((uint16_t)O.port);
    if (inet_pton(AF_INET, O.host, &SA.sin_addr) != 1)
        die("bad --host %s", O.host);

    TOK = xcalloc((size_t)O.users, sizeof *TOK);
    UID = xcalloc((size_t)O.users, sizeof *UID);
    for (int u = 0; u < O.users; u++) {
        char id[32];
        snprintf(id, sizeof id, "7656119%010lld", O.uid_base + u);
        UID[u] = strdup(id);
        TOK[u] = mint_token(O.secret, id, 3600);
    }
    C = xcalloc((size_t)NC, sizeof *C);
    for (int i = 0; i < NC; i++) {
        C[i].fd = -1;
        C[i].user = (uint32_t)(i % O.users); /* sockets of one user spread over the run */
    }
    EP = epoll_create1(EPOLL_CLOEXEC);
    if (EP < 0)
        die("epoll_create1: %s", strerror(errno));

    long rss0 = proc_rss_kb(O.server_pid);
    double scpu0 = proc_cpu_s(O.server_pid);
    double secs = connect_all();
    double scpu_conn = proc_cpu_s(O.server_pid) - scpu0;
    long ready = count_ready();
    emit("{\"kind\":\"connect\",\"label\":\"%s\",\"proto\":\"%s\",\"scenario\":\"%s\",\"conns\":%d,"
         "\"ready\":%ld,\"failed\":%ld,\"http_refused\":%ld,\"sio_refused\":%ld,\"connect_errors\":%ld,"
         "\"timeouts\":%ld,\"seconds\":%.3f,\"accept_per_s\":%.0f,\"server_cpu_s\":%.3f,"
         "\"last_failure\":\"%s\"}\n",
         O.label, proto_name(), O.scenario, NC, ready, G.failed, G.http_refused, G.sio_refused,
         G.connect_errors, G.timeouts, secs, secs > 0 ? (double)ready / secs : 0.0, scpu_conn,
         G.last_fail);
    fprintf(stderr, "loadgen: %s %s %s: %ld/%d connections ready in %.2f s (%.0f/s), %ld failed%s%s\n",
            O.label, proto_name(), O.scenario, ready, NC, secs, secs > 0 ? (double)ready / secs : 0.0,
            G.failed, G.last_fail[0] ? ": " : "", G.last_fail);
    if (ready == 0)
        return 1;

    int rc = 0;
    if (!strcmp(O.mode, "idle")) {
        /* RSS once the connections settled (3 s), and again at the end;
         * the server's idle CPU over the steady part (from 10 s on: the
         * tail of the connection work is not idle cost) */
        double first = O.idle_s < 3 ? O.idle_s : 3;
        double steady_from = O.idle_s > 15 ? 10 : 0;
        run_for(first);
        long rss_settled = proc_rss_kb(O.server_pid);
        if (steady_from > first)
            run_for(steady_from - first);
        double icpu0 = proc_cpu_s(O.server_pid);
        uint64_t it0 = now_ns();
        run_for(O.idle_s - (steady_from > first ? steady_from : first));
        double idle_cpu_pct = 100.0 * (proc_cpu_s(O.server_pid) - icpu0) / ((double)(now_ns() - it0) / 1e9);
        double idle_window_s = (double)(now_ns() - it0) / 1e9;
        long rss1 = proc_rss_kb(O.server_pid);
        long still = count_ready();
        double per = rss0 > 0 && rss_settled > 0 ? (double)(rss_settled - rss0) * 1024.0 / (double)ready : 0;
        double per_end = rss0 > 0 && rss1 > 0 ? (double)(rss1 - rss0) * 1024.0 / (double)ready : 0;
        emit("{\"kind\":\"idle\",\"label\":\"%s\",\"proto\":\"%s\",\"scenario\":\"%s\",\"conns\":%d,"
             "\"ready\":%ld,\"still_open\":%ld,\"rss_before_kb\":%ld,\"rss_settled_kb\":%ld,\"rss_after_kb\":%ld,"
             "\"bytes_per_conn\":%.0f,\"bytes_per_conn_end\":%.0f,\"connect_seconds\":%.3f,\"accept_per_s\":%.0f,"
             "\"server_cpu_connect_s\":%.3f,\"server_us_per_accept\":%.1f,\"idle_seconds\":%.1f,"
             "\"server_idle_cpu_pct\":%.2f,\"idle_cpu_window_s\":%.1f,\"pings_answered\":%ld,"
             "\"close_frames\":%ld,\"last_close_code\":%d,\"eofs\":%ld,\"resets\":%ld,\"last_failure\":\"%s\"}\n",
             O.label, proto_name(), O.scenario, NC, ready, still, rss0, rss_settled, rss1, per, per_end, secs,
             secs > 0 ? (double)ready / secs : 0.0, scpu_conn, scpu_conn * 1e6 / (double)ready, O.idle_s,
             idle_cpu_pct, idle_window_s, G.pings_answered, G.close_frames, G.last_close_code, G.eofs, G.resets,
             G.last_fail);
        fprintf(stderr,
                "loadgen: %s %s idle %d: RSS %ld -> %ld kB after 3 s (%.0f bytes/conn), %ld kB after %.0f s "
                "(%.0f bytes/conn), %ld still open, server CPU %.1f%% while idle (%ld pings answered); "
                "closed by the server: %ld close frames (last code %d), %ld EOF, %ld resets\n",
                O.label, proto_name(), NC, rss0, rss_settled, per, rss1, O.idle_s, per_end, still, idle_cpu_pct,
                G.pings_answered, G.close_frames, G.last_close_code, G.eofs, G.resets);
        if (still != ready)
            rc = 1;
    } else {
        redis_connect();
        run_for(O.settle_s);
        /* warm-up at the first rate, not reported */
        double first = atof(O.rates);
        if (O.warmup_s > 0)
            run_step("warmup", first, O.warmup_s, 0);
        /* the fixed-rate CPU measurement (scenario 4), before the ramp */
        if (O.cpu_rate > 0 && O.cpu_s > 0)
            run_step("cpu", O.cpu_rate, O.cpu_s, 1);
        char *rates = strdup(O.rates);
        for (char *tok = strtok(rates, ","); tok; tok = strtok(NULL, ",")) {
            double rate = atof(tok);
            if (rate <= 0)
                continue;
            attempt = 1;
            int ok = run_step(tok, rate, O.step_s, 1);
            for (int r = 0; ok == 0 && r < O.retries && count_ready() > 0; r++) {
                attempt = 2 + r;
                fprintf(stderr, "loadgen: step %s failed on latency only: retrying it\n", tok);
                ok = run_step(tok, rate, O.step_s, 1);
            }
            if (ok != 1 && O.stop_on_fail)
                break;
            if (count_ready() == 0) {
                rc = 1;
                break;
            }
        }
        free(rates);
    }
    for (int i = 0; i < NC; i++)
        if (C[i].fd >= 0)
            conn_close(&C[i], 0);
    return rc;
}
