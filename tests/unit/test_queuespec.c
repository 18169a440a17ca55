/*
 * tests/unit/test_queuespec.c: `--queues` and `--queue-alerts` (SPEC §12),
 * the pure parser in queues/spec.c: queues_conf_parse, queue_has,
 * queue_metric_name, queues_stuck_ms.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "queues.h"

#define ERRCAP 256
#define NO NULL /* an absent prefix, group or dead-letter stream */

/* ---- helpers ---- */

/* Parses with `out` and `err` full of garbage first, so that what the
 * parser leaves there is what it wrote. */
static int
parse(const char *list, const char *alerts, queues_conf_t *out, char *err)
{
    memset(out, 0x5a, sizeof *out);
    memset(err, 0x5a, ERRCAP);
    err[ERRCAP - 1] = '\0';
    return queues_conf_parse(list, alerts, out, err, ERRCAP);
}

static int
zeroed(const queues_conf_t *c)
{
    static const queues_conf_t zero;
    return memcmp(c, &zero, sizeof zero) == 0;
}

static const char *
show(const char *s)
{
    return s ? s : "(null)";
}

/* The parse of (list, alerts) is refused, with a reason that holds
 * `fragment`, and leaves the output zeroed. */
static void
expect_refused(const char *list, const char *alerts, const char *fragment)
{
    queues_conf_t c;
    char err[ERRCAP];
    int rc = parse(list, alerts, &c, err);

    if (rc == 0) {
        fail_msg("--queues '%s' --queue-alerts '%s' accepted", show(list), show(alerts));
        queues_conf_free(&c);
        return;
    }
    assert_int_equal(rc, -1);
    if (err[0] == '\0' || strlen(err) >= ERRCAP)
        fail_msg("'%s' / '%s': no reason given", show(list), show(alerts));
    if (fragment != NULL && strstr(err, fragment) == NULL)
        fail_msg("'%s' / '%s': reason '%s' lacks '%s'", show(list), show(alerts), err, fragment);
    if (!zeroed(&c))
        fail_msg("'%s' / '%s': output not zeroed after a refusal", show(list), show(alerts));
}

static void
expect_str(const char *in, const char *what, const char *got, const char *want)
{
    if (want == NULL && got == NULL)
        return;
    if (want == NULL || got == NULL || strcmp(got, want) != 0)
        fail_msg("'%s': %s: got '%s', want '%s'", in, what, show(got), show(want));
}

static void
expect_bound(const char *in, double got, double want)
{
    if (fabs(got - want) > 1e-9 * (want > 1 ? want : 1))
        fail_msg("'%s': bound %.17g, want %.17g", in, got, want);
}

/* ---- --queues ---- */

typedef struct qexp {
    enum queue_kind kind;
    const char *label;
    const char *prefix;
    const char *group;
    const char *dead;
} qexp_t;

typedef struct qcase {
    const char *list;
    size_t nq;
    qexp_t q[3];
} qcase_t;

static const qcase_t queue_cases[] = {
    {NULL, 0, {{0}}},
    {"", 0, {{0}}},
    {"bull:tradeitQueue", 1, {{QUEUE_BULL, "tradeitQueue", "bull", NO, NO}}},
    {"bullmq:emails", 1, {{QUEUE_BULLMQ, "emails", "bull", NO, NO}}},
    {"bull@myapp:jobs", 1, {{QUEUE_BULL, "jobs", "myapp", NO, NO}}},
    {"bullmq@p:x", 1, {{QUEUE_BULLMQ, "x", "p", NO, NO}}},
    {"bullmq@{tenant-1}:mail", 1, {{QUEUE_BULLMQ, "mail", "{tenant-1}", NO, NO}}},
    /* the name is everything after the first colon */
    {"bullmq:portfolio:high_priority",
     1,
     {{QUEUE_BULLMQ, "portfolio:high_priority", "bull", NO, NO}}},
    {"bull:a:b:c", 1, {{QUEUE_BULL, "a:b:c", "bull", NO, NO}}},
    {"bullmq@pre:fix:a", 1, {{QUEUE_BULLMQ, "fix:a", "pre", NO, NO}}},
    /* an @ after the first colon is part of the name */
    {"bull:a@b", 1, {{QUEUE_BULL, "a@b", "bull", NO, NO}}},
    {"bull:x", 1, {{QUEUE_BULL, "x", "bull", NO, NO}}},
    {"stream:orders/workers", 1, {{QUEUE_STREAM, "orders", NO, "workers", NO}}},
    {"stream:orders/workers/orders:dead",
     1,
     {{QUEUE_STREAM, "orders", NO, "workers", "orders:dead"}}},
    {"stream:app:events/g-1", 1, {{QUEUE_STREAM, "app:events", NO, "g-1", NO}}},
    {"stream:s/g:1/d@x", 1, {{QUEUE_STREAM, "s", NO, "g:1", "d@x"}}},
    {"bull:a,bullmq:b,stream:c/g/d",
     3,
     {{QUEUE_BULL, "a", "bull", NO, NO},
      {QUEUE_BULLMQ, "b", "bull", NO, NO},
      {QUEUE_STREAM, "c", NO, "g", "d"}}},
    /* spaces around items are trimmed */
    {"  bull:a , bullmq@p:b ,stream:s/g  ",
     3,
     {{QUEUE_BULL, "a", "bull", NO, NO},
      {QUEUE_BULLMQ, "b", "p", NO, NO},
      {QUEUE_STREAM, "s", NO, "g", NO}}},
    {"\tbull:a\t,\r\nbullmq:b \n",
     2,
     {{QUEUE_BULL, "a", "bull", NO, NO}, {QUEUE_BULLMQ, "b", "bull", NO, NO}}},
    /* labels differ: no duplicate */
    {"bull:a,bull:A,bullmq:a:b",
     3,
     {{QUEUE_BULL, "a", "bull", NO, NO},
      {QUEUE_BULL, "A", "bull", NO, NO},
      {QUEUE_BULLMQ, "a:b", "bull", NO, NO}}},
};

static void
test_queues_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof queue_cases / sizeof queue_cases[0]; i++) {
        const qcase_t *t = &queue_cases[i];
        const char *in = show(t->list);
        queues_conf_t c;
        char err[ERRCAP];

        if (parse(t->list, "", &c, err) != 0)
            fail_msg("'%s' refused: %s", in, err);
        if (c.nq != t->nq)
            fail_msg("'%s': %zu queues, want %zu", in, c.nq, t->nq);
        assert_int_equal(c.nrules, 0);
        for (size_t k = 0; k < t->nq; k++) {
            const qexp_t *e = &t->q[k];
            if (c.q[k].kind != e->kind)
                fail_msg("'%s': queue %zu: kind %d, want %d", in, k, (int)c.q[k].kind,
                         (int)e->kind);
            expect_str(in, "label", c.q[k].label, e->label);
            expect_str(in, "prefix", c.q[k].prefix, e->prefix);
            expect_str(in, "group", c.q[k].group, e->group);
            expect_str(in, "dead", c.q[k].dead, e->dead);
        }
        queues_conf_free(&c);
        assert_true(zeroed(&c));
    }
}

typedef struct bad_case {
    const char *in;
    const char *why; /* a fragment of the reason */
} bad_case_t;

#define E_KIND "expected bull:, bullmq: or stream:"
#define E_NAME "a bad or missing name"
#define E_PREFIX "a bad key prefix"
#define E_STREAM "expected stream:<stream>/<group>[/<dead>]"
#define E_EMPTY "an empty item"
#define E_DUP "a second queue named"

static const bad_case_t bad_queues[] = {
    /* empty items */
    {",", E_EMPTY},
    {" ", E_EMPTY},
    {" , ", E_EMPTY},
    {"bull:a,", E_EMPTY},
    {",bull:a", E_EMPTY},
    {"bull:a,,bull:b", E_EMPTY},
    {"bull:a, \t ,bull:b", E_EMPTY},
    /* unknown kinds */
    {"redis:a", E_KIND},
    {"Bull:a", E_KIND},
    {"BULLMQ:a", E_KIND},
    {"bullq:a", E_KIND},
    {"bul:a", E_KIND},
    {"kafka:topic", E_KIND},
    {"stream2:s/g", E_KIND},
    {"stream@p:s/g", E_KIND},
    {"bull", E_KIND},
    {"tradeitQueue", E_KIND},
    {":a", E_KIND},
    {"@p:a", E_KIND},
    {"bull :a", E_KIND},
    /* missing names */
    {"bull:", E_NAME},
    {"bullmq:", E_NAME},
    {"bull@p:", E_NAME},
    {"bullmq@p:", E_NAME},
    {"bull: ", E_NAME},
    {"bull:a,bullmq:", E_NAME},
    /* empty or bad prefixes */
    {"bull@:a", E_PREFIX},
    {"bullmq@:a", E_PREFIX},
    {"bull@p q:a", E_PREFIX},
    {"bull@p\"q:a", E_PREFIX},
    {"bullmq@p,q:a", E_KIND}, /* split at the comma: "bullmq@p" has no colon */
    /* streams without a group, or with too many parts */
    {"stream:", E_STREAM},
    {"stream:s", E_STREAM},
    {"stream:s/", E_STREAM},
    {"stream:/g", E_STREAM},
    {"stream:s//d", E_STREAM},
    {"stream:s/g/", E_STREAM},
    {"stream:/", E_STREAM},
    {"stream://", E_STREAM},
    {"stream:a/b/c/d", E_STREAM},
    {"stream:a/b/c/d/e", E_STREAM},
    {"stream:s/g//", E_STREAM},
    /* bytes a name may not hold */
    {"bull:a b", E_NAME},
    {"bull:a\"b", E_NAME},
    {"bull:\"a\"", E_NAME},
    {"bull:a\\b", E_NAME},
    {"bull:a\x01", E_NAME},
    {"bull:a\x1f"
     "b",
     E_NAME},
    {"bull:a\x7f", E_NAME},
    {"bull:\xc3\xa9t\xc3\xa9", E_NAME},
    {"bull:a\tb", E_NAME},
    {"bullmq:a\nb", E_NAME},
    {"stream:s x/g", E_STREAM},
    {"stream:s/g\"", E_STREAM},
    {"stream:s/g/d\\x", E_STREAM},
    {"stream:s/g/d\x02", E_STREAM},
    /* duplicate labels, whatever the kind or prefix */
    {"bull:a,bull:a", E_DUP},
    {"bull:a,bullmq:a", E_DUP},
    {"bull:a,bull@x:a", E_DUP},
    {"bull:orders,stream:orders/g", E_DUP},
    {"stream:s/g1,stream:s/g2", E_DUP},
    {"bull:a, bull:a ", E_DUP},
    {"bull:x,bull:y,bullmq:p:q,bull:p:q", E_DUP},
};

static void
test_queues_refused(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_queues / sizeof bad_queues[0]; i++) {
        expect_refused(bad_queues[i].in, "", bad_queues[i].why);
        /* the default alerts change nothing about a bad list */
        expect_refused(bad_queues[i].in, NULL, bad_queues[i].why);
    }
}

/* Names of QUEUE_NAME_MAX bytes pass in every position, one more does not. */
static void
test_queues_name_length(void **state)
{
    static const char *const forms[] = {"bull:%s",     "bullmq:%s",   "bull@%s:n",    "bullmq@%s:n",
                                        "stream:%s/g", "stream:s/%s", "stream:s/g/%s"};
    char name[QUEUE_NAME_MAX + 2], list[QUEUE_NAME_MAX + 64];
    (void)state;

    for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
        queues_conf_t c;
        char err[ERRCAP];

        memset(name, 'n', QUEUE_NAME_MAX);
        name[QUEUE_NAME_MAX] = '\0';
        snprintf(list, sizeof list, forms[f], name);
        if (parse(list, "", &c, err) != 0)
            fail_msg("form %s with %d bytes refused: %s", forms[f], QUEUE_NAME_MAX, err);
        assert_int_equal(c.nq, 1);
        assert_true(strlen(c.q[0].label) <= QUEUE_NAME_MAX);
        queues_conf_free(&c);

        name[QUEUE_NAME_MAX] = 'n';
        name[QUEUE_NAME_MAX + 1] = '\0';
        snprintf(list, sizeof list, forms[f], name);
        expect_refused(list, "", NULL);
    }
}

/* ---- --queue-alerts ---- */

/* The queues the alert cases run against: one of each kind, one label with
 * colons. */
#define ALERT_QUEUES                                                                               \
    "bull:tradeitQueue,bullmq:portfolio:high_priority,stream:orders/workers/orders-dead"
enum { Q_BULL, Q_BULLMQ, Q_STREAM, Q_ANY = -1 };

typedef struct rexp {
    int queue;
    enum queue_metric metric;
    double bound;
    const char *text;
} rexp_t;

typedef struct acase {
    const char *alerts;
    size_t nrules;
    rexp_t r[4];
} acase_t;

static const acase_t alert_cases[] = {
    {NULL,
     3,
     {{Q_ANY, QM_WAITING, 100, "waiting>100"},
      {Q_ANY, QM_FAILED, 50, "failed>50"},
      {Q_ANY, QM_STUCK, 300, "stuck>300s"}}},
    {"", 0, {{0}}},
    {"waiting>20", 1, {{Q_ANY, QM_WAITING, 20, "waiting>20"}}},
    {"waiting>0", 1, {{Q_ANY, QM_WAITING, 0, "waiting>0"}}},
    {"waiting>2.5", 1, {{Q_ANY, QM_WAITING, 2.5, "waiting>2.5"}}},
    {"tradeitQueue:waiting>20", 1, {{Q_BULL, QM_WAITING, 20, "tradeitQueue:waiting>20"}}},
    {"portfolio:high_priority:waiting>20",
     1,
     {{Q_BULLMQ, QM_WAITING, 20, "portfolio:high_priority:waiting>20"}}},
    {"portfolio:high_priority:prioritized>5",
     1,
     {{Q_BULLMQ, QM_PRIORITIZED, 5, "portfolio:high_priority:prioritized>5"}}},
    {"portfolio:high_priority:waiting-children>7",
     1,
     {{Q_BULLMQ, QM_WAITING_CHILDREN, 7, "portfolio:high_priority:waiting-children>7"}}},
    {"tradeitQueue:paused>0", 1, {{Q_BULL, QM_PAUSED, 0, "tradeitQueue:paused>0"}}},
    {"tradeitQueue:stalled>1", 1, {{Q_BULL, QM_STALLED, 1, "tradeitQueue:stalled>1"}}},
    {"orders:pending>10,orders:lag>1000,orders:dead-letters>0,orders:consumers>3",
     4,
     {{Q_STREAM, QM_PENDING, 10, "orders:pending>10"},
      {Q_STREAM, QM_LAG, 1000, "orders:lag>1000"},
      {Q_STREAM, QM_DEAD_LETTERS, 0, "orders:dead-letters>0"},
      {Q_STREAM, QM_CONSUMERS, 3, "orders:consumers>3"}}},
    {"orders:length>5000,orders:stuck>10s,orders:oldest>1m",
     3,
     {{Q_STREAM, QM_LENGTH, 5000, "orders:length>5000"},
      {Q_STREAM, QM_STUCK, 10, "orders:stuck>10s"},
      {Q_STREAM, QM_OLDEST, 60, "orders:oldest>1m"}}},
    /* durations: ms, s, m, or seconds without a unit */
    {"stuck>1500ms", 1, {{Q_ANY, QM_STUCK, 1.5, "stuck>1500ms"}}},
    {"stuck>2m", 1, {{Q_ANY, QM_STUCK, 120, "stuck>2m"}}},
    {"stuck>0.5s", 1, {{Q_ANY, QM_STUCK, 0.5, "stuck>0.5s"}}},
    {"stuck>90", 1, {{Q_ANY, QM_STUCK, 90, "stuck>90"}}},
    {"oldest>30s", 1, {{Q_ANY, QM_OLDEST, 30, "oldest>30s"}}},
    {"oldest>1.5m", 1, {{Q_ANY, QM_OLDEST, 90, "oldest>1.5m"}}},
    {"oldest>0ms", 1, {{Q_ANY, QM_OLDEST, 0, "oldest>0ms"}}},
    /* trimmed items, and the text is the trimmed item */
    {"  waiting>1 ,\tfailed>2\t, tradeitQueue:stuck>5s ",
     3,
     {{Q_ANY, QM_WAITING, 1, "waiting>1"},
      {Q_ANY, QM_FAILED, 2, "failed>2"},
      {Q_BULL, QM_STUCK, 5, "tradeitQueue:stuck>5s"}}},
    /* a global rule may name a measure only some kinds have: it applies to
     * the queues that have it */
    {"paused>1,prioritized>2,length>3,dead-letters>4",
     4,
     {{Q_ANY, QM_PAUSED, 1, "paused>1"},
      {Q_ANY, QM_PRIORITIZED, 2, "prioritized>2"},
      {Q_ANY, QM_LENGTH, 3, "length>3"},
      {Q_ANY, QM_DEAD_LETTERS, 4, "dead-letters>4"}}},
};

static void
test_alerts_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof alert_cases / sizeof alert_cases[0]; i++) {
        const acase_t *t = &alert_cases[i];
        const char *in = show(t->alerts);
        queues_conf_t c;
        char err[ERRCAP];

        if (parse(ALERT_QUEUES, t->alerts, &c, err) != 0)
            fail_msg("alerts '%s' refused: %s", in, err);
        assert_int_equal(c.nq, 3);
        if (c.nrules != t->nrules)
            fail_msg("'%s': %zu rules, want %zu", in, c.nrules, t->nrules);
        for (size_t k = 0; k < t->nrules; k++) {
            const rexp_t *e = &t->r[k];
            const queue_rule_t *r = &c.rules[k];
            if (r->queue != e->queue)
                fail_msg("'%s': rule %zu: queue %d, want %d", in, k, r->queue, e->queue);
            if (r->metric != e->metric)
                fail_msg("'%s': rule %zu: %s, want %s", in, k, queue_metric_name(r->metric),
                         queue_metric_name(e->metric));
            expect_bound(in, r->bound, e->bound);
            expect_str(in, "text", r->text, e->text);
        }
        queues_conf_free(&c);
        assert_true(zeroed(&c));
    }
}

/* The default alerts hold with no queue at all; a per-queue rule does not. */
static void
test_alerts_without_queues(void **state)
{
    queues_conf_t c;
    char err[ERRCAP];
    (void)state;

    assert_int_equal(parse(NULL, NULL, &c, err), 0);
    assert_int_equal(c.nq, 0);
    assert_null(c.q);
    assert_int_equal(c.nrules, 3);
    assert_string_equal(c.rules[0].text, "waiting>100");
    queues_conf_free(&c);
    assert_int_equal(parse("", "stuck>1m,oldest>5s", &c, err), 0);
    assert_int_equal(c.nrules, 2);
    queues_conf_free(&c);
    assert_int_equal(parse(NULL, "", &c, err), 0);
    assert_true(zeroed(&c));
    expect_refused(NULL, "tradeitQueue:waiting>20", "no queue named 'tradeitQueue'");
    expect_refused("", "a:waiting>1", "no queue named 'a'");
}

#define E_FORM "expected [<queue>:]<what>><bound>"
#define E_MEASURE "no measure"
#define E_QUEUE "no queue named"
#define E_KINDLESS "a queue of that kind has no"
#define E_COUNT "a bad bound (a number)"
#define E_DURATION "a bad bound (a number, with ms, s or m)"

static const bad_case_t bad_alerts[] = {
    /* empty items */
    {",", "--queue-alerts: an empty item"},
    {" ", "--queue-alerts: an empty item"},
    {"waiting>1,", "an empty item"},
    {"waiting>1,,failed>2", "an empty item"},
    {",waiting>1", "an empty item"},
    /* no comparison */
    {"waiting", E_FORM},
    {"waiting<5", E_FORM},
    {"waiting=5", E_FORM},
    {"tradeitQueue:waiting", E_FORM},
    /* unknown measures */
    {">5", E_MEASURE},
    {"bogus>5", "no measure 'bogus'"},
    {"Waiting>5", E_MEASURE},
    {"waiting >5", E_MEASURE},
    {"wait>5", E_MEASURE},
    {"waitingx>5", E_MEASURE},
    {"dead_letters>1", E_MEASURE},
    {"tradeitQueue:>5", E_MEASURE},
    {"tradeitQueue:bogus>5", E_MEASURE},
    {"stuck:>5", E_MEASURE},
    /* unknown queues */
    {"nope:waiting>5", "no queue named 'nope'"},
    {"tradeitqueue:waiting>5", E_QUEUE},
    {"portfolio:waiting>5", "no queue named 'portfolio'"},
    {"high_priority:waiting>5", E_QUEUE},
    {":waiting>5", "no queue named ''"},
    {"orders-dead:length>5", E_QUEUE}, /* the dead-letter stream is no queue */
    {"workers:pending>5", E_QUEUE},    /* nor is the group */
    {" tradeitQueue :waiting>5", E_QUEUE},
    /* measures the queue's kind does not have */
    {"orders:paused>0", E_KINDLESS " paused"},
    {"orders:active>1", E_KINDLESS " active"},
    {"orders:failed>1", E_KINDLESS},
    {"orders:completed>1", E_KINDLESS},
    {"orders:delayed>1", E_KINDLESS},
    {"orders:stalled>1", E_KINDLESS},
    {"orders:prioritized>1", E_KINDLESS},
    {"tradeitQueue:prioritized>1", E_KINDLESS},
    {"tradeitQueue:waiting-children>1", E_KINDLESS},
    {"tradeitQueue:length>1", E_KINDLESS},
    {"tradeitQueue:dead-letters>1", E_KINDLESS " dead-letters"},
    {"portfolio:high_priority:paused>1", E_KINDLESS},
    {"portfolio:high_priority:pending>1", E_KINDLESS},
    {"portfolio:high_priority:lag>1", E_KINDLESS},
    {"portfolio:high_priority:consumers>1", E_KINDLESS},
    /* bad numbers */
    {"waiting>", E_COUNT},
    {"waiting>abc", E_COUNT},
    {"waiting>-1", E_COUNT},
    {"waiting>+1", E_COUNT},
    {"waiting>.5", E_COUNT},
    {"waiting> 5", E_COUNT},
    {"waiting>5 x", E_COUNT},
    {"waiting>5x", E_COUNT},
    {"waiting>1.2.3", E_COUNT},
    {"waiting>1e999", E_COUNT},
    {"waiting>99999999999999", E_COUNT}, /* over 1e12 */
    /* the bound follows the last '>' (a queue's name may hold one) */
    {"waiting>>5", "no measure 'waiting>'"},
    {"waiting>5>6", "no measure 'waiting>5'"},
    {"tradeitQueue>:waiting>5", "no queue named 'tradeitQueue>'"},
    {"waiting>5:6", E_COUNT},
    {"waiting>000000000000000000000000000000001", E_COUNT}, /* 33 bytes */
    {"tradeitQueue:waiting>-3", E_COUNT},
    {"stuck>", E_DURATION},
    {"stuck>-5s", E_DURATION},
    {"stuck>s", E_DURATION},
    {"stuck>ms", E_DURATION},
    {"stuck>5h", E_DURATION},
    {"stuck>5d", E_DURATION},
    {"stuck>5sec", E_DURATION},
    {"stuck>5 s", E_DURATION},
    {"stuck>5S", E_DURATION},
    {"stuck>5MS", E_DURATION},
    {"stuck>5ms5", E_DURATION},
    {"stuck>5mss", E_DURATION},
    {"oldest>1d", E_DURATION},
    {"oldest>-30s", E_DURATION},
    {"orders:stuck>10 m", E_DURATION},
    /* units on counts */
    {"waiting>5s", E_COUNT},
    {"failed>10ms", E_COUNT},
    {"orders:pending>1m", E_COUNT},
    {"orders:lag>3s", E_COUNT},
    {"tradeitQueue:stalled>2s", E_COUNT},
    /* one bad rule among good ones spoils the lot */
    {"waiting>1,failed>2,bogus>3", E_MEASURE},
    {"waiting>1,orders:paused>0", E_KINDLESS},
};

static void
test_alerts_refused(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_alerts / sizeof bad_alerts[0]; i++)
        expect_refused(ALERT_QUEUES, bad_alerts[i].in, bad_alerts[i].why);
}

/* A per-queue rule for a label of the full QUEUE_NAME_MAX bytes fits the
 * rule's text, with the longest measure name. */
static void
test_alerts_long_label(void **state)
{
    char name[QUEUE_NAME_MAX + 1], list[QUEUE_NAME_MAX + 16], alerts[2 * QUEUE_NAME_MAX + 64];
    queues_conf_t c;
    char err[ERRCAP];
    (void)state;

    memset(name, 'q', QUEUE_NAME_MAX);
    name[QUEUE_NAME_MAX] = '\0';
    snprintf(list, sizeof list, "bullmq:%s", name);
    snprintf(alerts, sizeof alerts, "%s:waiting-children>1000000,%s:stuck>1500ms", name, name);
    if (parse(list, alerts, &c, err) != 0)
        fail_msg("refused: %s", err);
    assert_int_equal(c.nrules, 2);
    assert_int_equal(c.rules[0].queue, 0);
    assert_int_equal(c.rules[0].metric, QM_WAITING_CHILDREN);
    assert_true(strlen(c.rules[0].text) == QUEUE_NAME_MAX + strlen(":waiting-children>1000000"));
    assert_int_equal(queues_stuck_ms(&c, 0), 1500);
    queues_conf_free(&c);
}

/* A name may hold '>' and ':', and a rule of its own still names it:
 * the measure and the bound follow the last ':' and the last '>'. */
static void
test_alerts_gt_in_name(void **state)
{
    queues_conf_t c;
    char err[ERRCAP];
    (void)state;

    if (parse("bull:a>b,bullmq:x:y>z,stream:s>1/g>2", "a>b:waiting>1,x:y>z:stuck>2s,s>1:lag>3", &c,
              err) != 0)
        fail_msg("refused: %s", err);
    assert_int_equal(c.nq, 3);
    assert_string_equal(c.q[0].label, "a>b");
    assert_string_equal(c.q[1].label, "x:y>z");
    assert_string_equal(c.q[2].label, "s>1");
    assert_string_equal(c.q[2].group, "g>2");
    assert_int_equal(c.nrules, 3);
    assert_int_equal(c.rules[0].queue, 0);
    assert_int_equal(c.rules[0].metric, QM_WAITING);
    expect_bound("a>b:waiting>1", c.rules[0].bound, 1);
    assert_int_equal(c.rules[1].queue, 1);
    assert_int_equal(c.rules[1].metric, QM_STUCK);
    assert_int_equal(queues_stuck_ms(&c, 1), 2000);
    assert_int_equal(queues_stuck_ms(&c, 0), 300000);
    assert_int_equal(c.rules[2].queue, 2);
    assert_int_equal(c.rules[2].metric, QM_LAG);
    queues_conf_free(&c);
    expect_refused("bull:a>b", "a:waiting>1", "no queue named 'a'");
    expect_refused("bull:a>b", "b:waiting>1", "no queue named 'b'");
}

/* ---- queues_stuck_ms ---- */

typedef struct stuck_case {
    const char *alerts;
    uint64_t ms[3]; /* queues a, b, s */
} stuck_case_t;

static const stuck_case_t stuck_cases[] = {
    {NULL, {300000, 300000, 300000}},
    {"", {300000, 300000, 300000}},
    {"waiting>5,oldest>10s", {300000, 300000, 300000}},
    {"stuck>1500ms", {1500, 1500, 1500}},
    {"stuck>2m", {120000, 120000, 120000}},
    {"stuck>45", {45000, 45000, 45000}},
    {"stuck>0", {0, 0, 0}},
    {"stuck>0.0004s", {0, 0, 0}},
    {"stuck>1ms", {1, 1, 1}},
    /* a queue's own rule over the global one, whatever the order */
    {"a:stuck>10s,stuck>2m", {10000, 120000, 120000}},
    {"stuck>2m,a:stuck>10s", {10000, 120000, 120000}},
    /* over the default */
    {"b:stuck>1m", {300000, 60000, 300000}},
    {"s:stuck>250ms,waiting>1", {300000, 300000, 250}},
    {"a:stuck>0,s:stuck>7s", {0, 300000, 7000}},
    /* another queue's rule is not the global one */
    {"a:stuck>1s", {1000, 300000, 300000}},
};

static void
test_stuck_ms(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof stuck_cases / sizeof stuck_cases[0]; i++) {
        const stuck_case_t *t = &stuck_cases[i];
        queues_conf_t c;
        char err[ERRCAP];

        if (parse("bull:a,bullmq:b,stream:s/g", t->alerts, &c, err) != 0)
            fail_msg("'%s' refused: %s", show(t->alerts), err);
        for (size_t q = 0; q < 3; q++) {
            uint64_t got = queues_stuck_ms(&c, q);
            if (got != t->ms[q])
                fail_msg("'%s': queue %zu: %llu ms, want %llu", show(t->alerts), q,
                         (unsigned long long)got, (unsigned long long)t->ms[q]);
        }
        queues_conf_free(&c);
    }
}

/* ---- queue_has, queue_metric_name ---- */

static const struct {
    enum queue_metric m;
    const char *name;
    int bull, bullmq, stream;
} has_table[] = {
    {QM_WAITING, "waiting", 1, 1, 1},
    {QM_ACTIVE, "active", 1, 1, 0},
    {QM_DELAYED, "delayed", 1, 1, 0},
    {QM_COMPLETED, "completed", 1, 1, 0},
    {QM_FAILED, "failed", 1, 1, 0},
    {QM_PAUSED, "paused", 1, 0, 0},
    {QM_PRIORITIZED, "prioritized", 0, 1, 0},
    {QM_WAITING_CHILDREN, "waiting-children", 0, 1, 0},
    {QM_STUCK, "stuck", 1, 1, 1},
    {QM_OLDEST, "oldest", 1, 1, 1},
    {QM_STALLED, "stalled", 1, 1, 0},
    {QM_LENGTH, "length", 0, 0, 1},
    {QM_PENDING, "pending", 0, 0, 1},
    {QM_LAG, "lag", 0, 0, 1},
    {QM_CONSUMERS, "consumers", 0, 0, 1},
    {QM_DEAD_LETTERS, "dead-letters", 0, 0, 1},
};

static void
test_queue_has(void **state)
{
    static const char *const list[] = {"bull:q", "bullmq:q", "stream:q/g"};
    (void)state;

    assert_int_equal(sizeof has_table / sizeof has_table[0], QM_COUNT);
    for (size_t i = 0; i < QM_COUNT; i++) {
        enum queue_metric m = has_table[i].m;
        int want[3] = {has_table[i].bull, has_table[i].bullmq, has_table[i].stream};
        static const enum queue_kind kinds[3] = {QUEUE_BULL, QUEUE_BULLMQ, QUEUE_STREAM};

        assert_int_equal(m, (enum queue_metric)i);
        assert_string_equal(queue_metric_name(m), has_table[i].name);
        for (size_t k = 0; k < 3; k++) {
            char alert[64];
            queues_conf_t c;
            char err[ERRCAP];
            int rc;

            if (!queue_has(kinds[k], m) != !want[k])
                fail_msg("queue_has(%s, %s) = %d, want %d", list[k], has_table[i].name,
                         queue_has(kinds[k], m), want[k]);
            /* and the parser agrees: a per-queue rule only for a measure
             * the kind has; the name round-trips */
            snprintf(alert, sizeof alert, "q:%s>1", has_table[i].name);
            rc = parse(list[k], alert, &c, err);
            if (want[k]) {
                if (rc != 0)
                    fail_msg("%s with '%s' refused: %s", list[k], alert, err);
                assert_int_equal(c.rules[0].metric, m);
                queues_conf_free(&c);
            } else {
                expect_refused(list[k], alert, E_KINDLESS);
            }
        }
    }
    assert_false(queue_has(QUEUE_BULL, QM_COUNT));
    assert_false(queue_has(QUEUE_STREAM, QM_COUNT));
    assert_string_equal(queue_metric_name(QM_COUNT), "?");
    assert_string_equal(queue_metric_name((enum queue_metric)(QM_COUNT + 1)), "?");
}

/* ---- robustness ---- */

/* Parses a copy of s[0..n) that ends exactly at a guard page (its NUL the
 * last readable byte), so a read past the terminator faults, and checks the
 * contract either way. Which side is copied: the list or the alerts. */
static void
parse_guarded(const char *list, size_t nl, const char *alerts, size_t na, int guard_list)
{
    char buf[1024];
    guard_t g, ge;
    const char *s = guard_list ? list : alerts;
    size_t n = guard_list ? nl : na;
    const char *in;
    char *err;
    queues_conf_t c;
    int rc;

    assert_true(n < sizeof buf);
    memcpy(buf, s, n);
    buf[n] = '\0';
    in = guard_place(&g, buf, n + 1);
    assert_non_null(in);
    /* the reason, too, is written against a guard page */
    err = (char *)guard_place(&ge, "", 1);
    assert_non_null(err);
    err -= ERRCAP - 1;
    memset(&c, 0x5a, sizeof c);
    rc = queues_conf_parse(guard_list ? in : list, guard_list ? alerts : in, &c, err, ERRCAP);
    if (rc == 0) {
        for (size_t i = 0; i < c.nq; i++)
            assert_true(c.q[i].label[0] != '\0' && strlen(c.q[i].label) <= QUEUE_NAME_MAX);
        queues_conf_free(&c);
    } else {
        assert_int_equal(rc, -1);
        if (err[0] == '\0')
            fail_msg("'%.*s' refused without a reason", (int)n, s);
        assert_true(strlen(err) < ERRCAP);
        assert_true(zeroed(&c));
    }
    guard_release(&g);
    guard_release(&ge);
}

static const char *const prefix_lists[] = {
    " bull:tradeitQueue , bullmq@myapp:portfolio:high_priority,stream:orders/workers/orders-dead",
    "stream:app:events/g-1,bull@p:a@b",
};
static const char *const prefix_alerts[] = {
    " waiting>100 , tradeitQueue:failed>50,portfolio:high_priority:stuck>1500ms,"
    "orders:dead-letters>0,oldest>2.5m , stuck>300s",
};

/* Every prefix of a few valid inputs parses or is refused cleanly. */
static void
test_prefixes(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof prefix_lists / sizeof prefix_lists[0]; i++) {
        size_t len = strlen(prefix_lists[i]);
        for (size_t k = 0; k <= len; k++) {
            parse_guarded(prefix_lists[i], k, "", 0, 1);
            parse_guarded(prefix_lists[i], k, NULL, 0, 1);
        }
    }
    for (size_t i = 0; i < sizeof prefix_alerts / sizeof prefix_alerts[0]; i++) {
        size_t len = strlen(prefix_alerts[i]);
        for (size_t k = 0; k <= len; k++)
            parse_guarded(prefix_lists[0], strlen(prefix_lists[0]), prefix_alerts[i], k, 0);
    }
}

/* A reason longer than the buffer is cut, never written past it. */
static void
test_small_err(void **state)
{
    static const size_t caps[] = {1, 2, 8, 40};
    (void)state;

    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
        char *err = malloc(caps[i]);
        queues_conf_t c;

        assert_non_null(err);
        assert_int_equal(queues_conf_parse("bull:a,bull:a b c d e f g h", NULL, &c, err, caps[i]),
                         -1);
        assert_true(strlen(err) == caps[i] - 1);
        assert_true(zeroed(&c));
        assert_int_equal(queues_conf_parse("bull:a", "a:bogus-measure>1", &c, err, caps[i]), -1);
        assert_true(strlen(err) == caps[i] - 1);
        free(err);
    }
}

/* Random strings over the parser's own alphabet: accepted or refused
 * cleanly, never a crash or a leak. */
static void
test_random(void **state)
{
    static const char alpha[] = "bullmq@stream:/,> \t\"\\x1sm.-abc";
    static const char *const pre[] = {"bull:", "bullmq:", "bull@", "stream:", ""};
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    (void)state;

    for (int iter = 0; iter < 20000; iter++) {
        char list[64], alerts[64];
        size_t nl, na, p;
        queues_conf_t c;
        char err[ERRCAP];

        p = (size_t)(test_rand(&seed) % (sizeof pre / sizeof pre[0]));
        nl = strlen(pre[p]);
        memcpy(list, pre[p], nl);
        na = 0;
        for (size_t n = test_rand(&seed) % 24; n > 0; n--)
            list[nl++] = alpha[test_rand(&seed) % (sizeof alpha - 1)];
        for (size_t n = test_rand(&seed) % 24; n > 0; n--)
            alerts[na++] = alpha[test_rand(&seed) % (sizeof alpha - 1)];
        list[nl] = '\0';
        alerts[na] = '\0';
        if (parse(list, test_rand(&seed) % 4 ? alerts : NULL, &c, err) == 0) {
            for (size_t i = 0; i < c.nrules; i++)
                assert_true(c.rules[i].queue >= -1 && c.rules[i].queue < (int)c.nq);
            queues_conf_free(&c);
        } else {
            assert_true(err[0] != '\0');
            assert_true(zeroed(&c));
        }
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queues_table),
        cmocka_unit_test(test_queues_refused),
        cmocka_unit_test(test_queues_name_length),
        cmocka_unit_test(test_alerts_table),
        cmocka_unit_test(test_alerts_without_queues),
        cmocka_unit_test(test_alerts_refused),
        cmocka_unit_test(test_alerts_long_label),
        cmocka_unit_test(test_alerts_gt_in_name),
        cmocka_unit_test(test_stuck_ms),
        cmocka_unit_test(test_queue_has),
        cmocka_unit_test(test_prefixes),
        cmocka_unit_test(test_small_err),
        cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
