/*
 * fuzz_queuespec: `--queues` and `--queue-alerts` (queues_conf_parse, SPEC
 * §12). The input up to its first NUL or newline is the list, the rest the
 * alerts; without a separator the alerts are NULL (the default). Each is a
 * C string in a buffer of exactly its length + 1, the reason a buffer of
 * exactly ERRCAP bytes, so that a read or write past either is an ASan
 * report.
 *
 * Checks on success: one queue per comma-separated item and one rule per
 * alert item; every label, prefix, group and dead-letter stream is 1..200
 * bytes of printable ASCII without space, ',', '"' or '\\', and appears in
 * the list; labels are unique; Bull and BullMQ queues have a prefix and no
 * group, streams a group and no prefix; each rule's text is non-empty,
 * terminated inside its buffer and appears in the alerts, its queue is -1
 * or an index below nq whose kind has the measure, its bound finite and not
 * negative; queues_stuck_ms answers for every queue; every queue can be
 * named in a rule of its own (`<label>:stuck>1500ms` is accepted, is that
 * queue's, and gives it 1500 ms, the others the 300 s default);
 * queues_conf_free releases everything (LeakSanitizer) and zeroes the
 * struct. On failure: -1,
 * a non-empty reason terminated inside the buffer, the output zeroed.
 */
#include "fuzz.h"
#include "queues.h"

#include <math.h>

#define ERRCAP 128

static int
name_ok(const char *s)
{
    size_t n;

    if (s == NULL)
        return 0;
    n = strlen(s);
    if (n == 0 || n > QUEUE_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~' || s[i] == ',' || s[i] == '"' || s[i] == '\\')
            return 0;
    return 1;
}

static size_t
items(const char *s)
{
    size_t n = 1;

    for (; *s != '\0'; s++)
        n += *s == ',';
    return n;
}

/* SPEC §12: per queue as `<queue>:waiting>20`, for any queue the list
 * accepts. */
static void
check_own_rule(const char *list, size_t nq, size_t i, const char *label)
{
    char rule[QUEUE_NAME_MAX + 32], err[ERRCAP];
    queues_conf_t c;

    snprintf(rule, sizeof rule, "%s:stuck>1500ms", label);
    FUZZ_CHECK(queues_conf_parse(list, rule, &c, err, sizeof err) == 0);
    FUZZ_CHECK(c.nq == nq && c.nrules == 1 && c.rules[0].queue == (int)i);
    for (size_t k = 0; k < nq; k++)
        FUZZ_CHECK(queues_stuck_ms(&c, k) == (k == i ? 1500 : 300000));
    queues_conf_free(&c);
}

static void
check_ok(const queues_conf_t *c, const char *list, const char *alerts)
{
    FUZZ_CHECK(c->nq == (*list == '\0' ? 0 : items(list)));
    FUZZ_CHECK((c->nq == 0) == (c->q == NULL));
    for (size_t i = 0; i < c->nq; i++) {
        const queue_spec_t *q = &c->q[i];

        FUZZ_CHECK(name_ok(q->label) && strstr(list, q->label) != NULL);
        for (size_t k = 0; k < i; k++)
            FUZZ_CHECK(strcmp(c->q[k].label, q->label) != 0);
        if (q->kind == QUEUE_STREAM) {
            FUZZ_CHECK(q->prefix == NULL);
            FUZZ_CHECK(name_ok(q->group) && strstr(list, q->group) != NULL);
            FUZZ_CHECK(q->dead == NULL || (name_ok(q->dead) && strstr(list, q->dead) != NULL));
            FUZZ_CHECK(q->dead == NULL || strchr(q->dead, '/') == NULL);
            FUZZ_CHECK(strchr(q->label, '/') == NULL && strchr(q->group, '/') == NULL);
        } else {
            FUZZ_CHECK(q->kind == QUEUE_BULL || q->kind == QUEUE_BULLMQ);
            FUZZ_CHECK(name_ok(q->prefix) && q->group == NULL && q->dead == NULL);
            FUZZ_CHECK(strchr(q->prefix, ':') == NULL);
        }
        FUZZ_CHECK(queues_stuck_ms(c, i) <= UINT64_C(60) * 1000 * 1000000000000);
        check_own_rule(list, c->nq, i, q->label);
    }
    FUZZ_CHECK(c->nrules == (*alerts == '\0' ? 0 : items(alerts)));
    for (size_t i = 0; i < c->nrules; i++) {
        const queue_rule_t *r = &c->rules[i];
        size_t tl = strnlen(r->text, sizeof r->text);

        FUZZ_CHECK(tl > 0 && tl < sizeof r->text && strstr(alerts, r->text) != NULL);
        FUZZ_CHECK((unsigned)r->metric < QM_COUNT);
        FUZZ_CHECK(r->queue >= -1 && (r->queue < 0 || (size_t)r->queue < c->nq));
        FUZZ_CHECK(r->queue < 0 || queue_has(c->q[r->queue].kind, r->metric));
        FUZZ_CHECK(isfinite(r->bound) && r->bound >= 0);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const queues_conf_t zero;
    size_t cut = 0;
    char *list, *alerts = NULL, *err = malloc(ERRCAP);
    queues_conf_t c;
    int rc;

    while (cut < size && data[cut] != '\0' && data[cut] != '\n')
        cut++;
    list = fuzz_cstr(data, cut);
    if (cut < size)
        alerts = fuzz_cstr(data + cut + 1, size - cut - 1);
    if (err == NULL)
        abort();
    memset(err, 0x5a, ERRCAP);
    memset(&c, 0x5a, sizeof c);
    rc = queues_conf_parse(list, alerts, &c, err, ERRCAP);
    if (rc == 0) {
        check_ok(&c, list, alerts != NULL ? alerts : QUEUES_DEFAULT_ALERTS);
        queues_conf_free(&c);
        FUZZ_CHECK(memcmp(&c, &zero, sizeof c) == 0);
    } else {
        FUZZ_CHECK(rc == -1);
        FUZZ_CHECK(err[0] != '\0' && memchr(err, '\0', ERRCAP) != NULL);
        FUZZ_CHECK(memcmp(&c, &zero, sizeof c) == 0);
    }
    free(list);
    free(alerts);
    free(err);
    return 0;
}
