/*
 * queues: the platform's job queues on the hub's Redis, watched read-only
 * (SPEC §12, docs/queues.md).
 *
 * Three kinds: Bull v3 (`bull:<name>`), BullMQ (`bullmq:<name>`), both under
 * the key prefix `bull` unless written `bull@<prefix>:<name>`, and a Redis
 * Streams queue with a consumer group (`stream:<stream>/<group>[/<dead>]`).
 *
 * Counts: one Lua script per queue per poll on the hub's command
 * connection (never KEYS, never a write). Alerts: bounds per queue, crossed
 * and cleared. Job events: BullMQ's events streams and the Streams queues'
 * streams by one blocking XREAD on a connection of the module's own, Bull's
 * global event channels on that connection's subscriber; each job's user
 * is looked up once (a Lua script reads the field out of the job's data),
 * and events go to `user:<id>` through the emit callback, progress
 * throttled per job.
 */
#ifndef COORDHUB_QUEUES_H
#define COORDHUB_QUEUES_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "bus.h"

enum queue_kind { QUEUE_BULL, QUEUE_BULLMQ, QUEUE_STREAM };

/* What a queue reports; which ones depends on its kind (queue_has). */
enum queue_metric {
    QM_WAITING,
    QM_ACTIVE,
    QM_DELAYED,
    QM_COMPLETED,
    QM_FAILED,
    QM_PAUSED,
    QM_PRIORITIZED,
    QM_WAITING_CHILDREN,
    QM_STUCK,  /* active (streams: pending) for longer than the stuck bound */
    QM_OLDEST, /* seconds the oldest waiting job has waited */
    QM_STALLED, /* active jobs whose worker's lock is gone (Bull, BullMQ) */
    QM_LENGTH,  /* streams from here on */
    QM_PENDING,
    QM_LAG,
    QM_CONSUMERS,
    QM_DEAD_LETTERS,
    QM_COUNT
};

#define QUEUE_NAME_MAX 200

typedef struct queue_spec {
    enum queue_kind kind;
    char *label;  /* the `queue` label: the name, or the stream's key */
    char *prefix; /* Bull, BullMQ: "bull" unless given */
    char *group;  /* streams */
    char *dead;   /* streams: the dead-letter stream, or NULL */
} queue_spec_t;

typedef struct queue_rule {
    int queue; /* index into the specs, or -1: every queue with the metric */
    enum queue_metric metric;
    double bound; /* a count; seconds for stuck and oldest */
    char text[QUEUE_NAME_MAX + 48]; /* as written, e.g. "tradeitQueue:waiting>20" */
} queue_rule_t;

typedef struct queues_conf {
    queue_spec_t *q;
    size_t nq;
    queue_rule_t *rules;
    size_t nrules;
} queues_conf_t;

#define QUEUES_DEFAULT_ALERTS "waiting>100,failed>50,stuck>300s"

/*
 * Parses `--queues` (comma-separated specs; NULL or "" is no queue) and
 * `--queue-alerts` (NULL: the default). Pure. Returns 0, or -1 with the
 * reason in err[0..cap). On success free with queues_conf_free.
 */
int queues_conf_parse(const char *list, const char *alerts, queues_conf_t *out, char *err,
                      size_t cap);
void queues_conf_free(queues_conf_t *c);
/* Does a queue of `kind` report `m`? */
int queue_has(enum queue_kind kind, enum queue_metric m);
/* The metric's name in alerts and JSON ("waiting", "dead-letters", ...). */
const char *queue_metric_name(enum queue_metric m);
/* The stuck bound of queue `i` in ms: its rule `stuck>...`, else the
 * global one, else 300 s. */
uint64_t queues_stuck_ms(const queues_conf_t *c, size_t i);

/* ---- the watcher ---- */

typedef struct queues queues_t;

/* An event for a room; `json` is the event's data. */
typedef void (*queues_emit_cb)(void *privdata, const char *room, const char *event,
                               const char *json, size_t len);

typedef struct queues_options {
    queues_conf_t conf;     /* taken: the watcher frees it */
    bus_t *bus;             /* counts, lookups, cursors (the hub's command connection) */
    const char *redis_url;  /* for the module's own connection (blocking reads, channels) */
    unsigned poll_ms;       /* 0: 5000 */
    const char *user_field; /* NULL: "userId"; dotted paths reach into objects */
    const char *cursor_id;  /* names this hub's read positions ("host:port") */
    unsigned progress_ms;   /* 0: 1000, the per-job progress throttle */
    queues_emit_cb emit;
    void *privdata;
} queues_options_t;

int queues_new(uv_loop_t *loop, const queues_options_t *opt, queues_t **out, const char **err);
void queues_start(queues_t *q);
/* GET /v1/queues: the last poll of every queue as JSON (malloc'd). */
char *queues_json(const queues_t *q, size_t *len);
/* The queues' lines of /metrics (malloc'd). */
char *queues_metrics(const queues_t *q, size_t *len);
/* The hub is stopping: no job event leaves from now on, so the positions
 * saved at close are those of the last event that did. */
void queues_stop_events(queues_t *q);
/* Saves the read positions, closes the module's connection; `done` fires
 * once from the loop when everything is freed. */
void queues_close(queues_t *q, void (*done)(void *privdata), void *privdata);

#endif
