/*
 * queues/spec.c: `--queues` and `--queue-alerts` (SPEC §12). Pure: strings
 * in, a queues_conf_t or a reason out.
 */
#include "queues.h"

#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const metric_names[QM_COUNT] = {
    "waiting", "active",  "delayed", "completed", "failed",    "paused",
    "prioritized", "waiting-children", "stuck", "oldest", "stalled", "length",
    "pending", "lag", "consumers", "dead-letters"};

const char *
queue_metric_name(enum queue_metric m)
{
    return (unsigned)m < QM_COUNT ? metric_names[m] : "?";
}

int
queue_has(enum queue_kind kind, enum queue_metric m)
{
    switch (m) {
    case QM_WAITING:
    case QM_STUCK:
    case QM_OLDEST:
        return 1;
    case QM_ACTIVE:
    case QM_DELAYED:
    case QM_COMPLETED:
    case QM_FAILED:
    case QM_STALLED:
        return kind != QUEUE_STREAM;
    case QM_PAUSED:
        return kind == QUEUE_BULL;
    case QM_PRIORITIZED:
    case QM_WAITING_CHILDREN:
        return kind == QUEUE_BULLMQ;
    case QM_LENGTH:
    case QM_PENDING:
    case QM_LAG:
    case QM_CONSUMERS:
    case QM_DEAD_LETTERS:
        return kind == QUEUE_STREAM;
    case QM_COUNT:
        break;
    }
    return 0;
}

static int
fail(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return -1;
}

/* A name part: printable ASCII, no space or comma, 1..QUEUE_NAME_MAX. */
static int
name_ok(const char *s, size_t n)
{
    if (n == 0 || n > QUEUE_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~' || s[i] == ',' || s[i] == '"' || s[i] == '\\')
            return 0;
    return 1;
}

void
queues_conf_free(queues_conf_t *c)
{
    for (size_t i = 0; i < c->nq; i++) {
        free(c->q[i].label);
        free(c->q[i].prefix);
        free(c->q[i].group);
        free(c->q[i].dead);
    }
    free(c->q);
    free(c->rules);
    memset(c, 0, sizeof *c);
}

/* One spec, s[0..n). */
static int
parse_queue(const char *s, size_t n, queue_spec_t *q, char *err, size_t cap)
{
    const char *colon, *at, *end = s + n;
    size_t kl;

    memset(q, 0, sizeof *q);
    colon = memchr(s, ':', n);
    if (colon == NULL)
        return fail(err, cap, "queue '%.*s': expected bull:, bullmq: or stream:", (int)n, s);
    kl = (size_t)(colon - s);
    at = memchr(s, '@', kl);
    if (at == NULL)
        at = colon;
    if ((size_t)(at - s) == 4 && memcmp(s, "bull", 4) == 0)
        q->kind = QUEUE_BULL;
    else if ((size_t)(at - s) == 6 && memcmp(s, "bullmq", 6) == 0)
        q->kind = QUEUE_BULLMQ;
    else if (kl == 6 && memcmp(s, "stream", 6) == 0)
        q->kind = QUEUE_STREAM;
    else
        return fail(err, cap, "queue '%.*s': expected bull:, bullmq: or stream:", (int)n, s);

    if (q->kind != QUEUE_STREAM) {
        const char *name = colon + 1;
        size_t pl = at == colon ? 4 : (size_t)(colon - at - 1);
        const char *prefix = at == colon ? "bull" : at + 1;
        if (!name_ok(prefix, pl))
            return fail(err, cap, "queue '%.*s': a bad key prefix", (int)n, s);
        if (!name_ok(name, (size_t)(end - name)))
            return fail(err, cap, "queue '%.*s': a bad or missing name", (int)n, s);
        q->prefix = util_strndup(prefix, pl);
        q->label = util_strndup(name, (size_t)(end - name));
        return 0;
    } else {
        const char *st = colon + 1, *g, *d = NULL;
        const char *slash = memchr(st, '/', (size_t)(end - st));
        if (slash == NULL)
            return fail(err, cap, "queue '%.*s': expected stream:<stream>/<group>[/<dead>]",
                        (int)n, s);
        g = slash + 1;
        slash = memchr(g, '/', (size_t)(end - g));
        if (slash != NULL)
            d = slash + 1;
        if (!name_ok(st, (size_t)(g - 1 - st)) || !name_ok(g, (size_t)((d ? d - 1 : end) - g)) ||
            (d != NULL && (!name_ok(d, (size_t)(end - d)) || memchr(d, '/', (size_t)(end - d)))))
            return fail(err, cap, "queue '%.*s': expected stream:<stream>/<group>[/<dead>]",
                        (int)n, s);
        q->label = util_strndup(st, (size_t)(g - 1 - st));
        q->group = util_strndup(g, (size_t)((d ? d - 1 : end) - g));
        if (d != NULL)
            q->dead = util_strndup(d, (size_t)(end - d));
        return 0;
    }
}

/* A bound: digits with an optional fraction; for stuck and oldest a unit
 * (ms, s, m; seconds when absent), stored in seconds. */
static int
parse_bound(const char *s, size_t n, int duration, double *out)
{
    char buf[32];
    char *e;
    double v, scale = 1;
    size_t digits = 0, dots = 0;

    if (n == 0 || n >= sizeof buf || !isdigit((unsigned char)s[0]))
        return -1;
    /* digits, at most one '.' followed by a digit: no hex, no exponent */
    while (digits < n && (isdigit((unsigned char)s[digits]) || s[digits] == '.')) {
        if (s[digits] == '.' && (++dots > 1 || digits + 1 == n ||
                                 !isdigit((unsigned char)s[digits + 1])))
            return -1;
        digits++;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    errno = 0;
    v = strtod(buf, &e);
    if ((size_t)(e - buf) != digits)
        return -1;
    if (errno != 0 || !isfinite(v) || v < 0 || v > 1e12)
        return -1;
    if (*e != '\0') {
        if (!duration)
            return -1;
        if (strcmp(e, "ms") == 0)
            scale = 0.001;
        else if (strcmp(e, "s") == 0)
            scale = 1;
        else if (strcmp(e, "m") == 0)
            scale = 60;
        else
            return -1;
    }
    *out = v * scale;
    return 0;
}

static int
parse_rule(const char *s, size_t n, const queues_conf_t *c, queue_rule_t *r, char *err,
           size_t cap)
{
    const char *gt = NULL, *m, *colon = NULL;
    size_t ml;
    int dur;

    memset(r, 0, sizeof *r);
    /* The last '>': a bound holds none, but a queue's name may ("a>b"). */
    for (const char *p = s; p < s + n; p++)
        if (*p == '>')
            gt = p;
    if (gt == NULL || n >= sizeof r->text)
        return fail(err, cap, "alert '%.*s': expected [<queue>:]<what>><bound>", (int)n, s);
    for (const char *p = s; p < gt; p++)
        if (*p == ':')
            colon = p;
    m = colon ? colon + 1 : s;
    ml = (size_t)(gt - m);
    r->metric = QM_COUNT;
    for (int i = 0; i < QM_COUNT; i++)
        if (strlen(metric_names[i]) == ml && memcmp(metric_names[i], m, ml) == 0)
            r->metric = (enum queue_metric)i;
    if (r->metric == QM_COUNT)
        return fail(err, cap, "alert '%.*s': no measure '%.*s'", (int)n, s, (int)ml, m);
    dur = r->metric == QM_STUCK || r->metric == QM_OLDEST;
    if (parse_bound(gt + 1, (size_t)(s + n - gt - 1), dur, &r->bound) != 0)
        return fail(err, cap, "alert '%.*s': a bad bound%s", (int)n, s,
                    dur ? " (a number, with ms, s or m)" : " (a number)");
    r->queue = -1;
    if (colon != NULL) {
        size_t ql = (size_t)(colon - s);
        for (size_t i = 0; i < c->nq; i++)
            if (strlen(c->q[i].label) == ql && memcmp(c->q[i].label, s, ql) == 0)
                r->queue = (int)i;
        if (r->queue < 0)
            return fail(err, cap, "alert '%.*s': no queue named '%.*s' in --queues", (int)n, s,
                        (int)ql, s);
        if (!queue_has(c->q[r->queue].kind, r->metric))
            return fail(err, cap, "alert '%.*s': a queue of that kind has no %s", (int)n, s,
                        metric_names[r->metric]);
    }
    memcpy(r->text, s, n);
    r->text[n] = '\0';
    return 0;
}

/* Calls `each` with every comma-separated item of `list`, spaces around
 * items trimmed; empty items are refused. */
static int
split(const char *list, const char *what, char *err, size_t cap,
      int (*each)(void *ctx, const char *s, size_t n), void *ctx)
{
    const char *p = list;

    while (1) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        const char *s = p;
        while (n > 0 && isspace((unsigned char)*s))
            s++, n--;
        while (n > 0 && isspace((unsigned char)s[n - 1]))
            n--;
        if (n == 0)
            return fail(err, cap, "%s: an empty item", what);
        if (each(ctx, s, n) != 0)
            return -1;
        if (e == NULL)
            return 0;
        p = e + 1;
    }
}

struct parse_ctx {
    queues_conf_t *c;
    char *err;
    size_t cap;
};

static int
add_queue(void *ctx, const char *s, size_t n)
{
    struct parse_ctx *p = ctx;
    queues_conf_t *c = p->c;
    queue_spec_t q;

    if (parse_queue(s, n, &q, p->err, p->cap) != 0)
        return -1;
    for (size_t i = 0; i < c->nq; i++)
        if (strcmp(c->q[i].label, q.label) == 0) {
            fail(p->err, p->cap, "queue '%.*s': a second queue named '%s'", (int)n, s, q.label);
            free(q.label);
            free(q.prefix);
            free(q.group);
            free(q.dead);
            return -1;
        }
    c->q = util_realloc(c->q, (c->nq + 1) * sizeof *c->q);
    c->q[c->nq++] = q;
    return 0;
}

static int
add_rule(void *ctx, const char *s, size_t n)
{
    struct parse_ctx *p = ctx;
    queues_conf_t *c = p->c;
    queue_rule_t r;

    if (parse_rule(s, n, c, &r, p->err, p->cap) != 0)
        return -1;
    c->rules = util_realloc(c->rules, (c->nrules + 1) * sizeof *c->rules);
    c->rules[c->nrules++] = r;
    return 0;
}

int
queues_conf_parse(const char *list, const char *alerts, queues_conf_t *out, char *err,
                  size_t cap)
{
    struct parse_ctx p = {out, err, cap};

    memset(out, 0, sizeof *out);
    if (list != NULL && *list != '\0' && split(list, "--queues", err, cap, add_queue, &p) != 0)
        goto bad;
    if (alerts == NULL)
        alerts = QUEUES_DEFAULT_ALERTS;
    if (*alerts != '\0' && split(alerts, "--queue-alerts", err, cap, add_rule, &p) != 0)
        goto bad;
    return 0;
bad:
    queues_conf_free(out);
    return -1;
}

uint64_t
queues_stuck_ms(const queues_conf_t *c, size_t i)
{
    double global = 300, own = -1;

    for (size_t k = 0; k < c->nrules; k++) {
        const queue_rule_t *r = &c->rules[k];
        if (r->metric != QM_STUCK)
            continue;
        if (r->queue == (int)i)
            own = r->bound;
        else if (r->queue < 0)
            global = r->bound;
    }
    return (uint64_t)((own >= 0 ? own : global) * 1000.0 + 0.5);
}
