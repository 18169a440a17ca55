/*
 * gateway: the hub's front door. One libwebsockets context on the caller's
 * libuv loop serving, on one port, the WebSocket protocols (/ws native,
 * /socket.io/ Socket.IO v4 over WebSocket), the operational HTTP endpoints (/healthz, /readyz,
 * /metrics) and the static web demo; and the routing core that turns Redis
 * messages into events for user, bot and ops rooms.
 */
#ifndef COORDHUB_GATEWAY_H
#define COORDHUB_GATEWAY_H

#include <stddef.h>

#include <uv.h>

#include "bus.h"

typedef struct gw gw_t;

typedef struct gw_options {
    const char *host; /* listen address, e.g. "127.0.0.1" */
    int port;         /* 0 = any free port (see gw_port) */
    struct wire_keyset *keys;      /* the tokens' keys (wire.h): the gateway takes it */
    const char *web_root;          /* NULL: no static files */
    bus_t *bus;                    /* readiness */
    struct lock_mgr *locks;        /* the /v1/locks routes; NULL: not served */
    struct resv_mgr *resv;         /* the /v1/reservations routes; NULL: not served */
    struct cache *cache;           /* /v1/config and config.watch; NULL: not served */
    struct queues *queues;         /* GET /v1/queues and its metrics; NULL: none watched */
    size_t max_frame;              /* 0: 64 KiB */
    size_t slow_bytes;             /* 0: 1 MiB */
    double op_rate;                /* 0: 20 ops/s per connection */
    double op_burst;               /* 0: 40 */
    unsigned coalesce_ms;          /* 0: 1000, reserve-items throttle */
    unsigned sio_ping_interval_ms; /* 0: 25000, Engine.IO pingInterval */
    unsigned sio_ping_timeout_ms;  /* 0: 20000, Engine.IO pingTimeout */
    unsigned sio_connect_timeout_ms; /* 0: 45000, no Socket.IO CONNECT by then: closed */
    const char *cors_origins;      /* "https://a.example,https://b.example" or "*"; NULL: none */
    unsigned ws_idle_ping_ms;      /* 0: 30000, silence before a WebSocket PING */
    unsigned ws_idle_drop_ms;      /* 0: 10000, no answer to it: dropped */
    unsigned recovery_window_ms;   /* 0: recovery off (SPEC §9, docs/recovery.md) */
    unsigned recovery_max_per_room; /* 0: 100 */
    unsigned recovery_anchor_ms;   /* 0: 1000, the anchors' period */
    const char *version;           /* this hub's version, for the registry of hubs */
} gw_options_t;

/*
 * Creates the lws context on `loop` and starts listening. Returns 0, or a
 * negative code with `*err` naming the problem (UV_EADDRINUSE for a port in
 * use, UV_EINVAL for bad options).
 */
int gw_new(uv_loop_t *loop, const gw_options_t *opt, gw_t **out, const char **err);

/* Replaces the key set (SIGHUP's reload): connections stay; tokens are
 * verified with `keys` from now on. The gateway takes `keys`. */
void gw_set_keys(gw_t *gw, struct wire_keyset *keys);

/* The port actually bound. */
int gw_port(const gw_t *gw);

/*
 * Routes one Redis pub/sub message (the bus's on_message callback). Copies
 * nothing it does not keep; never fails: a payload that does not parse is
 * counted and dropped.
 */
void gw_on_message(gw_t *gw, const char *pattern, const char *channel, size_t channel_len,
                   const char *payload, size_t len);

/* A watched configuration key changed: sends event `config` {key, value,
 * version} to the sockets that watch it. `value` is JSON text. */
void gw_config_changed(gw_t *gw, const char *key, const char *value, long long version);

/* An event for one room's members, in both framings: `data` is JSON text.
 * Not history (no offset): job events and the queues' (SPEC §12). */
void gw_room_event(gw_t *gw, const char *room, const char *event, const char *data, size_t len);

/* Told by main when the bus's readiness changes (metrics, logs). */
void gw_on_redis_state(gw_t *gw, int ready);

/*
 * Starts a graceful stop: new upgrades and requests are refused, every
 * WebSocket is sent close 1001, in-flight HTTP answers are written; then
 * the lws context is destroyed (first half). `done` fires once when that is
 * finished or `deadline_ms` has passed.
 */
void gw_shutdown(gw_t *gw, unsigned deadline_ms, void (*done)(void *privdata), void *privdata);

/* Frees everything. Call after uv_run has returned (second half of the lws
 * destroy, see docs/libraries.md), then uv_loop_close. */
void gw_free(gw_t *gw);

#endif
