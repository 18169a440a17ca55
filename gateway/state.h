/*
 * gateway/state.h: the gateway's state, and nothing else: the gw object,
 * the per-connection data lws allocates for us, the counters. Every file of
 * the gateway includes it; the functions live in one header per file, and
 * docs/gateway.md draws who calls whom (always downwards).
 */
#ifndef COORDHUB_GW_STATE_H
#define COORDHUB_GW_STATE_H

#include "cache.h"
#include "frame.h"
#include "gateway.h"
#include "locks.h"
#include "reserve.h"
#include "rooms.h"
#include "deadline.h"
#include "http1.h"
#include "throttle.h"
#include "util.h"
#include "wire.h"

#include <libwebsockets.h>
#include <uv.h>

#define GW_LAT_BUCKETS 13
#define GW_BODY_MAX (1024 * 1024) /* request bodies (README: 413 above) */
#define GW_SCRATCH (64 * 1024)    /* one send's worth of coalesced frames */

/* HTTP methods, as wire/http1.h numbers them */
enum gw_method {
    GW_M_GET = 0,
    GW_M_POST = 1,
    GW_M_OPTIONS = 2,
    GW_M_PUT = 3,
    GW_M_PATCH = 4,
    GW_M_DELETE = 5,
    GW_M_CONNECT = 6,
    GW_M_HEAD = 7,
    GW_M_OTHER = 8 /* a method no route has */
};

/* How a recovery ended (SPEC §9, docs/recovery.md): recovered, or why not. */
enum gw_rec_outcome {
    GW_REC_RECOVERED = 0,
    GW_REC_OFFSET,   /* garbled, forged, from the future, or "" */
    GW_REC_EPOCH,    /* Redis lost its data (FLUSHALL, a restart without it) */
    GW_REC_WINDOW,   /* older than --recovery-window-ms */
    GW_REC_BOUND,    /* more events than the per-room bound in one room */
    GW_REC_GAP,      /* a segment no hub saw whole */
    GW_REC_UNSYNCED, /* this hub has no position it can vouch for */
    GW_REC_SESSION,  /* Socket.IO: no saved session for this pid and sub */
    GW_REC_ROOMS,    /* a room asked for that the token no longer allows */
    GW_REC_UNAVAILABLE, /* Redis not ready, or an error */
    GW_REC_OUTCOMES
};

struct gw_metrics {
    uint64_t messages_in[UTIL_CH_COUNT]; /* by channel id (util.h); labelled ones shown */
    uint64_t malformed[UTIL_CH_COUNT];
    uint64_t events_routed;    /* events that had at least one recipient */
    uint64_t frames_built;     /* serialisations: one per event per framing */
    uint64_t deliveries;       /* event frames written to sockets */
    uint64_t sends;            /* writes to sockets (frames queued together go in one) */
    uint64_t slow_closes;      /* 4008 */
    uint64_t idle_pings;       /* WebSocket PINGs sent to silent connections */
    uint64_t idle_drops;       /* connections dropped for not answering one */
    uint64_t too_large_closes; /* 1009 */
    uint64_t rate_closes;      /* 1008 */
    uint64_t binary_closes;    /* 1003 */
    uint64_t protocol_closes;  /* 1002 sent by us (Socket.IO packets that do not parse) */
    uint64_t utf8_closes;      /* 1007: a text message that is not UTF-8 */
    uint64_t auth_failures;    /* refused tokens, every entry point */
    uint64_t token_hits_before, token_misses_before; /* of key sets replaced (SIGHUP) */
    uint64_t expired_closes;   /* 4001: the token ended on a live connection */
    uint64_t refreshes;        /* tokens refreshed on a live connection */
    uint64_t ws_accepted;
    uint64_t client_errors; /* error frames sent */
    uint64_t http_requests;
    uint64_t accept_errors;    /* the front's: EMFILE and the like, a failed listener */
    uint64_t polls;            /* Engine.IO polling requests (GET and POST) */
    uint64_t poll_sessions;    /* polling sessions opened */
    uint64_t upgrades;         /* polling sessions upgraded to WebSocket */
    uint64_t rec_outcomes[GW_FRAMING_COUNT][GW_REC_OUTCOMES];
    uint64_t rec_replayed;     /* events sent by recoveries */
    uint64_t rec_entries;      /* history entries sent to Redis */
    uint64_t rec_batches;      /* EVALs that carried them */
    uint64_t rec_refused;      /* entries Redis already had (another hub's) */
    uint64_t rec_write_errors; /* batches that failed */
    uint64_t rec_anchors;      /* anchors seen */
    uint64_t rec_unsynced;     /* events built with no offset to give */
    uint64_t lat_bucket[GW_LAT_BUCKETS + 1]; /* last = +Inf */
    uint64_t lat_count;
    double lat_sum;
};

typedef struct gw_conn gw_conn_t;

/* The request being dispatched, as the HTTP front (front.c) parsed it:
 * valid during the dispatch call only (it points into the front's input);
 * what a route keeps for later it copies. */
typedef struct gw_req {
    int method;       /* enum gw_method */
    const char *path; /* percent-decoded, NUL-terminated */
    wire_span_t query, authorization, origin, ac_request_headers;
    int has_length;   /* a Content-Length was given */
    const char *body; /* Content-Length bytes (len 0: none) */
    size_t len;
} gw_req_t;

struct gw_fconn; /* a connection of the HTTP front (front.c) */

/* HTTP, the answer owed on a connection of the front (http.c): one at a
 * time, reset at each request of a keep-alive connection. */
typedef struct gw_http {
    struct gw_fconn *front; /* the connection the answer goes to */
    int pending; /* an answer is owed on this connection */
    int head;    /* a HEAD request: the headers of the answer, no body */
    int close;   /* close once the answer is out */
    int keep_alive_header; /* an HTTP/1.0 keep-alive: say so in the answer */
    /* the answer may wait on other clients (a lock acquire with wait_ms,
     * a polling GET): the client's leaving (its FIN) cancels it instead of
     * being answered after it (front.c) */
    int leave_cancels;
    /* CORS: the request's Origin, echoed when --cors-origins allows it
     * (polling.c), with credentials; empty: no CORS headers */
    char allow_origin[256];
    int preflight; /* an OPTIONS preflight: the allowed methods and headers too */
    char *allow_headers; /* a preflight's Access-Control-Request-Headers, or NULL */
} gw_http_t;

/* HTTP, the /v1/ request being served (api.c). */
typedef struct gw_api {
    int method;   /* enum gw_method */
    char *path;   /* malloc'd per request */
    char *body;   /* a copy of the request's body (len bytes), or NULL */
    size_t len;
    struct lock_op *lock;    /* a lock request in flight: cancelled if the client goes */
    struct resv_op *resv;    /* a reservation request in flight, likewise */
    struct cache_req *cache; /* a configuration request in flight, likewise */
    struct bus_req *hubs;    /* GET /v1/hubs's read, likewise */
    char query[80];          /* ?category= of GET /v1/config */
} gw_api_t;

/* HTTP, an Engine.IO polling request (polling.c): the GET that waits for a
 * session's output, or the POST that carries its packets. */
typedef struct gw_pollreq {
    gw_conn_t *session; /* NULL once answered, or when the session went first */
    enum { GW_POLL_NONE = 0, GW_POLL_GET, GW_POLL_POST } what;
    char *body; /* the POST's packets, read before they are handled */
    size_t len, cap;
} gw_pollreq_t;

/* The Socket.IO framing's own part (socketio.c), whatever the Engine.IO
 * transport; the polling transport's own fields (polling.c) at the end. */
typedef struct gw_sio {
    int pong_due;       /* a ping is out and unanswered */
    gw_snode_t beat;    /* on gw->sio_ping (the next ping) or, pong due, gw->sio_pong */
    gw_snode_t connect; /* on gw->sio_connect until CONNECT: closed at its deadline */
    int have_claims;   /* a valid ?token= was given with the upgrade */
    int connected;     /* CONNECT on "/" answered; DISCONNECT clears it */
    char sid[24];      /* Engine.IO's session id */
    char sio_sid[24];  /* Socket.IO's socket id (the CONNECT answer) */
    char pid[24];      /* its private id for recovery (SPEC §9), "" when off */
    /* The upgrade of a polling session to WebSocket: on the polling
     * session, the WebSocket probing it; on that WebSocket, the session.
     * Both NULL otherwise; cleared on both sides when either goes. */
    gw_conn_t *upgrade;
    int probed; /* the WebSocket answered 2probe */

    /* polling transport (polling.c); `polling` 0 on a WebSocket */
    int polling;
    gw_conn_t *get;    /* the HTTP connection of the GET waiting, or NULL */
    gw_conn_t *post;   /* the HTTP connection of the POST being read, or NULL */
    util_hnode_t node; /* in gw->sessions by sid, while open */
    gw_conn_t *dead_next; /* gw->poll_dead: closed, freed at the next check */
    int dead;
} gw_sio_t;

/* WebSocket: what every framing has. */
typedef struct gw_ws {
    /* the connection and its rooms (conn.c) */
    gw_member_t member;
    wire_claims_t claims;
    enum gw_framing framing;
    int ready; /* receives events: native at once, Socket.IO after CONNECT */
    int linked;
    gw_conn_t *prev, *next; /* gw->conns */
    uint64_t last_rx;       /* last data or pong from the peer, loop ms */
    long long warn_at;      /* unix s: `expiring` is sent then (0: sent, or none due) */

    /* inbound (ws.c) */
    gw_bucket_t bucket;
    char *rx; /* reassembly of a fragmented message, NULL when unused */
    size_t rxlen;

    /* outbound (writer.c) */
    gw_outq_t q;
    int dirty; /* on the gateway's flush list */
    gw_conn_t *dnext, *dprev;
    int close_code; /* non-zero: close with it at the next writeable */
    const char *close_why; /* its reason text (static), NULL: the code's usual one */
    int close_sent; /* our close frame is out: what the peer still sends is
                       read and discarded until its own close or a deadline */

    /* recovery (recovery.c): while `held`, events are queued, not sent,
     * until the recovery in `rec` puts the missed ones in front */
    int held;
    struct gw_recop *rec;

    /* liveness (liveness.c) */
    uint64_t ping_sent; /* a WebSocket PING is out since then, 0 none */
    int idle_dropped;   /* the sweep has dropped it: lws closes it */

    gw_sio_t sio; /* GW_FRAMING_SIO only */
} gw_ws_t;

enum gw_conn_kind { GW_CONN_NONE = 0, GW_CONN_HTTP, GW_CONN_WS };

/*
 * A connection's state: for a WebSocket, allocated and zeroed by lws; for
 * an HTTP connection, embedded in the front's own (front.c, `wsi` NULL);
 * for an Engine.IO polling session, allocated by polling.c (then `wsi` is
 * NULL and `ws.sio.polling` 1: a WebSocket-kind connection whose output is
 * read by HTTP requests). An upgrade leaves the front's connection and
 * gets a fresh, zeroed one from lws at ESTABLISHED, so the two kinds never
 * mix: `kind` says which half of the union is live, and every close path
 * checks it.
 */
struct gw_conn {
    gw_t *gw;
    struct lws *wsi;
    enum gw_conn_kind kind;
    union {
        struct {
            gw_http_t http;
            gw_api_t api;
            gw_pollreq_t poll;
        };
        gw_ws_t ws;
    };
};

/* Recovery (recovery.c, docs/recovery.md): this hub's position in Redis's
 * order of messages, and the history entries not yet written. */
typedef struct gw_rec_entry {
    size_t key, klen, id, idlen, ev, evlen, data, dlen; /* offsets into the batch's bytes */
} gw_rec_entry_t;

typedef struct gw_rec {
    unsigned window_ms; /* 0: off */
    unsigned bound;     /* entries kept per room */
    unsigned anchor_ms; /* the anchors' period */
    int synced;         /* positions are valid: an anchor seen, subscribed since */
    uint64_t anchor;    /* the current segment */
    uint64_t count;     /* messages since its anchor */
    char epoch[40];
    char offset[48];    /* "<anchor>-<count>" of the message being routed, or "" */
    /* the batch (one EVAL per loop iteration) */
    char *bytes;
    size_t len, cap;
    gw_rec_entry_t *ents;
    size_t n, ecap;
    uv_timer_t timer; /* anchors, and the memory pass */
    uv_timer_t flush; /* armed by the first entry of a batch: GW_REC_FLUSH_MS later */
    size_t saves;     /* Socket.IO sessions being written */
    /* the memory of history in Redis: the last full SCAN pass */
    char cursor[24];
    int scanning;
    uint64_t pass_bytes, pass_keys, redis_bytes, redis_keys;
} gw_rec_t;

/* The HTTP front (front.c): the hub's listening socket and its HTTP/1.1
 * connections; WebSocket upgrades are handed to lws. */
typedef struct gw_front {
    int fd;                    /* the listening socket, -1 once closed */
    uv_poll_t listener;
    uv_timer_t accept_pause;   /* accepting again after EMFILE */
    uv_timer_t timer;          /* at the earliest deadline of the three lists */
    uint64_t timer_at;
    gw_slist_t idle;           /* keep-alive, between requests */
    gw_slist_t reading;        /* a request not complete yet, or an answer not taken */
    gw_slist_t linger;         /* closing: the client's last bytes read and dropped */
    struct gw_fconn *conns;    /* every connection */
    struct gw_fconn *resume;   /* answered outside the front's own loop: settled at the check */
    size_t nconns;
    char *rx;                  /* one read's buffer, shared */
    util_ratelog_t log;
} gw_front_t;

struct gw {
    uv_loop_t *loop;
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    char *host;
    wire_keyset_t *keys; /* every token's verification (auth.c) */
    char *web_root;
    bus_t *bus;
    lock_mgr_t *locks;
    resv_mgr_t *resv;
    struct queues *queues;
    cache_t *cache;
    int port;
    size_t max_frame;
    size_t slow_bytes;
    double op_rate, op_burst;
    unsigned sio_ping_interval_ms, sio_ping_timeout_ms;
    unsigned ws_idle_ping_ms, ws_idle_drop_ms;

    gw_rooms_t *rooms;
    gw_conn_t *conns;       /* every established WebSocket and polling session (conn.c) */
    util_htable_t sessions; /* polling sessions by Engine.IO sid (conn.c) */
    size_t npolling;        /* of nconns[GW_FRAMING_SIO], those polling */
    size_t max_sessions;    /* polling sessions at once (the fd limit, as sockets) */
    gw_conn_t *poll_dead;   /* closed polling sessions, freed by polling.c's check */
    uv_check_t poll_reap;
    char **cors_origins;    /* --cors-origins, NULL-terminated; "*" any; NULL: none */
    unsigned sio_connect_timeout_ms;
    size_t nconns[GW_FRAMING_COUNT];
    size_t http_inflight;   /* HTTP responses owed (http.c) */

    gw_conn_t *dirty;       /* connections with frames queued since the last flush */
    uv_check_t flush;       /* after each loop iteration's I/O: flush `dirty` */
    uv_idle_t wake;         /* active while `dirty` is not empty: poll must not block */
    uv_timer_t lws_kick;    /* lws's timeouts rescheduled (writer.c) */
    unsigned char *scratch; /* GW_SCRATCH bytes */
    uint64_t iterations;    /* loop iterations seen by the flush check */
    uv_timer_t sweep;       /* liveness: idle pings, dead peers */
    /* Engine.IO's schedule (socketio.c): three deadline lists, each of one
     * fixed duration (so sorted by construction), and one timer at the
     * earliest of their heads */
    gw_slist_t sio_ping, sio_pong, sio_connect;
    uv_timer_t sio_timer;

    gw_throttle_t reserve_throttle;
    uv_timer_t reserve_timer;
    util_ratelog_t malformed_log;

    int shutting_down;
    uv_timer_t shutdown_timer;
    uint64_t shutdown_deadline;
    void (*shutdown_done)(void *);
    void *shutdown_privdata;
    int timers_closed;

    gw_rec_t rec;
    gw_front_t front;

    /* the registry of hubs (hubs.c) */
    struct {
        char id[17];
        char version[32];
        char role[16]; /* ROLE's first word at the last beat */
        long long started_ms;
        uv_timer_t beat;
        size_t pending; /* the entry's removal at a graceful stop, unanswered */
    } hubs;

    struct gw_metrics m;
};

#endif
