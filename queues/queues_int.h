/*
 * queues/queues_int.h: the watcher's state, shared by its files: queues.c
 * (its life, counts, alerts, the JSON and the metrics) and events.c (job events).
 */
#ifndef COORDHUB_QUEUES_INT_H
#define COORDHUB_QUEUES_INT_H

#include "queues.h"

#include "util.h"

#include <jansson.h>

enum queue_skip {
    QS_MISSING,   /* the spec names nothing in Redis (yet) */
    QS_WRONGTYPE, /* a key of the wrong type, or the script failed */
    QS_GROUP,     /* streams: no such consumer group */
    QS_DATA,      /* a job's data is not JSON */
    QS_USER,      /* a job's user field is not a valid user id */
    QS_GONE,      /* the job was removed before its user could be read */
    QS_COUNT
};

typedef struct job_entry job_entry_t;
typedef struct track track_t;

typedef struct queue {
    struct queues *owner;
    size_t idx;
    const queue_spec_t *spec;
    char *base; /* Bull, BullMQ: "<prefix>:<name>:" */
    bus_req_t *poll;
    uint64_t stuck_ms;
    /* the last poll */
    int have;  /* a poll answered */
    int state; /* 1 ok, 0 names nothing, -1 failed */
    double v[QM_COUNT]; /* NAN: not known */
    long long polled_ms;
    char error[160];
    char last_logged[160]; /* the last poll problem logged */
    int *firing; /* per rule of the conf: 1 while its bound is crossed */
    /* counters */
    uint64_t polls, skips[QS_COUNT], alerts, events[4], unrouted;
    /* job events: the read positions of its streams ("" until known) */
    char cursor[48];  /* BullMQ: <base>events; streams: the stream */
    char dcursor[48]; /* streams: the dead-letter stream */
    char *events_key; /* the stream XREAD reads (BullMQ: <base>events) */
    int bad[2];       /* its stream, its dead letters: not a stream, left out until the next poll */
    int bad_logged[2];
    track_t *tracks;  /* streams: entries with a user, until acked or dead */
    size_t ntracks;
    bus_req_t *check; /* streams: the acknowledgement check */
} queue_t;

enum { JOB_ACTIVE, JOB_PROGRESS, JOB_COMPLETED, JOB_FAILED };

typedef struct queues {
    uv_loop_t *loop;
    bus_t *bus;     /* the hub's command connection: polls, lookups, cursors */
    bus_t *ebus;    /* our own: XREAD BLOCK, Bull's channels; NULL when not needed */
    queues_conf_t conf;
    queue_t *q;
    unsigned poll_ms, progress_ms;
    char *user_field;
    char *cursor_key;
    queues_emit_cb emit;
    void *privdata;
    uv_timer_t poll_timer, tick_timer;
    uv_check_t flush_check;
    bus_group_t group; /* requests on `bus` */
    bus_group_t egroup; /* requests on `ebus` */
    bus_group_t lgroup; /* lookups (privdata: the batch) */
    bus_group_t cgroup; /* Streams checks (privdata: the check) */
    int closing, handles_open;
    void (*done)(void *);
    void *done_arg;
    util_ratelog_t skip_log;
    /* job events (events.c) */
    int cursors_known;
    bus_req_t *xread, *cursor_load;
    uint64_t xread_seq; /* XREADs answered */
    bus_req_t *types; /* after a failed XREAD: which keys are not streams */
    uint64_t xread_after; /* no XREAD before (loop ms): after a failure of another kind */
    util_ratelog_t xread_log;
    util_htable_t jobs; /* "<queue idx>:<job id>" -> job_entry_t */
    job_entry_t *jobs_head, *jobs_tail; /* insertion order, for the bound */
    size_t njobs;
    job_entry_t *owed; /* entries with a trailing progress to send */
    struct job_ev *evq_head, *evq_tail; /* waiting for their user, in order */
    struct lookup *lookup_open; /* the batch being assembled */
    uint64_t lookup_sent, lookup_done;
    uint64_t throttled, lookups, emitted, cursor_saves;
} queues_t;

/* poll.c */
void queues__poll_all(queues_t *qs);
void queues__skip(queues_t *qs, queue_t *q, enum queue_skip why, const char *detail);

/* events.c */
int queues__events_new(queues_t *qs, const char *redis_url, const char **err);
void queues__events_start(queues_t *qs);
void queues__events_tick(queues_t *qs);
void queues__events_retry(queues_t *qs);
void queues__maybe_free(queues_t *qs);
void queues__events_close(queues_t *qs);
void queues__events_free(queues_t *qs);

#endif
