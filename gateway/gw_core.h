/*
 * The gateway's shared state: the gw object, the per-connection data that
 * libwebsockets allocates for us, the metrics, and the functions by which
 * the lws glue files (protocol.c, http.c, ws.c) and the routing core
 * (router.c) reach each other.
 */
#ifndef COORDHUB_GW_CORE_H
#define COORDHUB_GW_CORE_H

#include "gateway.h"
#include "gw_int.h"
#include "locks.h"
#include "reserve.h"
#include "cache.h"
#include "util.h"

#include <string.h>

#define GW_LAT_BUCKETS 13

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
    uint64_t auth_failures;    /* 401 before upgrade */
    uint64_t ws_accepted;
    uint64_t client_errors; /* error frames sent */
    uint64_t http_requests;
    uint64_t lat_bucket[GW_LAT_BUCKETS + 1]; /* last = +Inf */
    uint64_t lat_count;
    double lat_sum;
};

typedef struct gw_conn gw_conn_t;

/*
 * Per-session data, allocated and zeroed by lws for each connection. An
 * HTTP connection that upgrades gets a fresh, zeroed one at ESTABLISHED
 * (lws rebinds the protocol), so the two halves never mix.
 */
struct gw_conn {
    gw_t *gw;
    struct lws *wsi;
    int is_ws;

    /* WebSocket */
    gw_member_t member;
    wire_claims_t claims;
    enum gw_framing framing;
    gw_outq_t q;
    gw_bucket_t bucket;
    char *rx; /* reassembly of a fragmented message, NULL when unused */
    size_t rxlen;
    int ready;      /* receives events: native at once, Socket.IO after CONNECT */
    int close_code; /* non-zero: close with it at the next writeable */
    int close_sent; /* our close frame is out (or lws is writing it): what
                       the peer still sends is read and discarded until its
                       own close or a deadline */
    int dirty;      /* on the gateway's flush list */
    gw_conn_t *dnext, *dprev;
    int sio_pong_due;      /* a ping is out and unanswered */
    uint64_t sio_deadline; /* next ping, or (pong due) the pong's deadline, loop ms */
    uint64_t last_rx;      /* last data or pong from the peer, loop ms */
    uint64_t ws_ping_sent; /* a WebSocket PING is out since then, 0 none */
    int idle_dropped;      /* the sweep has dropped it: lws closes it */
    int sio_have_claims;   /* a valid ?token= was given with the upgrade */
    char sio_sid[24];
    int linked;
    gw_conn_t *prev, *next;

    /* HTTP: one response at a time, reset at each request (keep-alive) */
    int http_pending; /* a response is owed on this connection */
    int http_status;
    int http_headers_sent;
    int http_head;  /* a HEAD request: the headers of the answer, no body */
    int http_close; /* close once the answer is out (a body we cannot skip) */
    const char *http_ctype;
    char *http_body;
    size_t http_len;

    /* HTTP API (/v1/...): the request being served on this connection */
    int api_method; /* lws method index: 0 GET, 1 POST, 3 PUT, 4 PATCH, 5 DELETE */
    char *api_path; /* malloc'd per request: WebSockets do not carry it */
    char *req_body; /* Content-Length bytes, read before dispatch */
    size_t req_len, req_cap;
    /* Whether BODY / BODY_COMPLETION concern the API: only a /v1/ request
     * that declared a non-empty body waits for them. Every other request
     * (another route, an empty body, one already answered) ignores them,
     * whatever lws delivers, so no route runs twice or without its path. */
    enum { GW_BODY_IGNORE = 0, GW_BODY_WAIT } body_state;
    struct lock_op *api_op;      /* a lock request in flight: cancelled if the client goes */
    struct resv_op *api_resv;    /* a reservation request in flight, likewise */
    struct cache_req *api_cache; /* a configuration request in flight, likewise */
    char api_query[80];          /* ?category= of GET /v1/config */
};

struct gw {
    uv_loop_t *loop;
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    char *host;
    char *secret;
    char *web_root;
    bus_t *bus;
    lock_mgr_t *locks;
    resv_mgr_t *resv;
    cache_t *cache;
    int port;
    size_t max_frame;
    size_t slow_bytes;
    double op_rate, op_burst;
    unsigned sio_ping_interval_ms, sio_ping_timeout_ms;
    unsigned ws_idle_ping_ms, ws_idle_drop_ms;

    gw_rooms_t *rooms;
    gw_conn_t *conns;       /* every established WebSocket */
    gw_conn_t *dirty;       /* connections with frames queued since the last flush */
    uv_check_t flush;       /* after each loop iteration's I/O: flush `dirty` */
    uv_idle_t wake;         /* active while `dirty` is not empty: poll must not block */
    uv_timer_t sweep;       /* liveness: Socket.IO pings, idle pings, dead peers */
    unsigned char *scratch; /* one send's worth of coalesced frames */
    size_t nconns[GW_FRAMING_COUNT];
    size_t http_inflight;

    gw_throttle_t reserve_throttle;
    uv_timer_t reserve_timer;
    util_ratelog_t malformed_log;

    int shutting_down;
    uv_timer_t shutdown_timer;
    uint64_t shutdown_deadline;
    void (*shutdown_done)(void *);
    void *shutdown_privdata;
    int timers_closed;

    struct gw_metrics m;
};

/* protocol.c */
extern const struct lws_protocols gw__protocols[];

/* http.c */
int gw__http_request(gw_t *gw, gw_conn_t *c, struct lws *wsi, const char *uri);
int gw__http_writeable(gw_t *gw, gw_conn_t *c, struct lws *wsi);
void gw__http_closed(gw_t *gw, gw_conn_t *c);
/* Answers the request on `c` with `status` and a body that is copied. */
void gw__http_respond(gw_conn_t *c, int status, const char *ctype, const char *body, size_t len);
/* {"error":{"code":..,"message":..}} */
void gw__http_error(gw_conn_t *c, int status, const char *code, const char *message);
/* Writes a complete response at once (inside CONFIRM_UPGRADE); returns 1. */
int gw__http_reject_now(struct lws *wsi, int status, const char *code, const char *message);
/* The same with a JSON body of the caller's. */
int gw__http_reject_body(struct lws *wsi, int status, const char *body);
/* Socket.IO's own HTTP error for /socket.io/ requests it cannot serve:
 * returns the status and sets `*body` (static JSON), or 0 when the query is
 * a valid WebSocket handshake. */
int gw__sio_http_check(struct lws *wsi, int want_upgrade, const char **body);

/* ws.c */
int gw__ws_confirm_upgrade(gw_t *gw, struct lws *wsi);
int gw__ws_established(gw_t *gw, gw_conn_t *c, struct lws *wsi);
int gw__ws_receive(gw_t *gw, gw_conn_t *c, struct lws *wsi, const void *in, size_t len);
int gw__ws_writeable(gw_t *gw, gw_conn_t *c, struct lws *wsi);
void gw__ws_closed(gw_t *gw, gw_conn_t *c);
/* Liveness, one timer for every connection (lws 4.1's per-connection
 * timers are a sorted list with linear inserts: quadratic at 20k sockets). */
void gw__ws_sweep_init(gw_t *gw);
/* The peer sent data or a PONG: it is alive. */
void gw__ws_alive(gw_t *gw, gw_conn_t *c);
/* Socket.IO: the ping schedule of a connection (ws_sio.c). */
void gw__sio_sweep(gw_t *gw, gw_conn_t *c, uint64_t now);
/* The peer sent a close frame: 0 to echo it, or -1 (with our own close
 * reason set) when its body is malformed (RFC 6455 §5.5.1, §7.4). */
int gw__ws_peer_close(gw_t *gw, gw_conn_t *c, struct lws *wsi, const void *in, size_t len);
/* Verifies a token (counting refusals); 0 or GW_EPARSE. */
int gw__ws_verify_token(gw_t *gw, const char *tok, size_t len, wire_claims_t *claims);
/* The connection is authenticated: join user:<sub>, start receiving events. */
void gw__ws_enter(gw_t *gw, gw_conn_t *c);
/* Room ops with the role rules; on refusal `*code`/`*msg` for the client. */
int gw__ws_join(gw_t *gw, gw_conn_t *c, const char *room, const char **code, const char **msg);
int gw__ws_leave(gw_t *gw, gw_conn_t *c, const char *room, const char **code, const char **msg);
/* Queues `n` bytes of text as one frame of its own (not the fan-out path). */
void gw__ws_send_text(gw_t *gw, gw_conn_t *c, const char *text, size_t n);

/* Starts watching `op`'s keys for `c` (config events); 0, or GW_EPARSE with
 * `code` and `msg` for the client. */
int gw__ws_config_watch(gw_t *gw, gw_conn_t *c, const wire_client_op_t *op, const char **code,
                        const char **msg);

/* ws_sio.c: the Socket.IO framing of a connection */
void gw__sio_established(gw_t *gw, gw_conn_t *c, struct lws *wsi);
/* One complete inbound message: 0, or a WebSocket close code. */
int gw__sio_receive(gw_t *gw, gw_conn_t *c, const char *buf, size_t len);
/* Queues a frame (takes a reference); may mark the connection slow. */
void gw__ws_enqueue(gw_t *gw, gw_conn_t *c, gw_frame_t *f);
/* The coalescing writer: a uv_check that flushes dirty connections once per
 * loop iteration (call once at start; the handle closes with the gateway). */
#define GW_SCRATCH (64 * 1024)
void gw__ws_flush_init(gw_t *gw);
/* Asks for a close with `code` at the next writeable (not from RECEIVE). */
void gw__ws_close_later(gw_conn_t *c, int code);
/* Sends one event to one connection (not the fan-out path). */
void gw__ws_send_event(gw_t *gw, gw_conn_t *c, const char *event, const char *data, size_t dlen);

/* router.c */
void gw__router_init(gw_t *gw, unsigned coalesce_ms);

/* api.c: the JSON API under /v1/ */
#define GW_BODY_MAX (1024 * 1024)
/* lws's method index (lws_http_get_uri_and_method) */
enum {
    GW_M_GET = 0,
    GW_M_POST = 1,
    GW_M_OPTIONS = 2,
    GW_M_PUT = 3,
    GW_M_PATCH = 4,
    GW_M_DELETE = 5,
    GW_M_CONNECT = 6,
    GW_M_HEAD = 7
};
/* A /v1/ request whose framing http.c has checked: `cl` is its declared
 * Content-Length (0: no body), at most GW_BODY_MAX. */
int gw__api_request(gw_t *gw, gw_conn_t *c, struct lws *wsi, const char *uri, int method,
                    size_t cl);
int gw__api_body(gw_t *gw, gw_conn_t *c, const void *in, size_t len);
int gw__api_body_done(gw_t *gw, gw_conn_t *c);
/* Frees the request's body and cancels what it waits for. */
void gw__api_reset(gw_conn_t *c);

/* metrics.c */
void gw__metrics_observe_latency(struct gw_metrics *m, uint64_t ns);
/* Renders the Prometheus text; returns a malloc'd buffer and its length. */
char *gw__metrics_render(const gw_t *gw, size_t *len);

#endif
