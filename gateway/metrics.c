/*
 * gateway/metrics.c: counters kept by the gateway and their Prometheus text
 * rendering for GET /metrics.
 */
#include "metrics.h"

#include "queues.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* Upper bounds of the delivery latency buckets, in seconds. */
static const double lat_bounds[GW_LAT_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0};

void
gw__metrics_observe_latency(struct gw_metrics *m, uint64_t ns)
{
    double s = (double)ns / 1e9;
    int i = 0;
    while (i < GW_LAT_BUCKETS && s > lat_bounds[i])
        i++;
    m->lat_bucket[i]++;
    m->lat_count++;
    m->lat_sum += s;
}

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf_t;

static void __attribute__((format(printf, 2, 3))) put(sbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->len)
            break;
        b->cap *= 2;
        b->p = util_realloc(b->p, b->cap);
    }
    b->len += (size_t)n;
}

static void
counter(sbuf_t *b, const char *name, const char *help, uint64_t v)
{
    put(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
        (unsigned long long)v);
}

/* A counter with one label: `n` values named by `labels`. */
static void
labelled(sbuf_t *b, const char *name, const char *help, const char *label, int n,
         const char *const *labels, const uint64_t *values)
{
    put(b, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
    for (int i = 0; i < n; i++)
        put(b, "%s{%s=\"%s\"} %llu\n", name, label, labels[i], (unsigned long long)values[i]);
}

char *
gw__metrics_render(const gw_t *gw, size_t *len)
{
    const struct gw_metrics *m = &gw->m;
    sbuf_t b = {util_malloc(8192), 0, 8192};
    uint64_t cum = 0;

    put(&b,
        "# HELP coordhub_connections Open connections by protocol: WebSockets, and Socket.IO "
        "sessions on HTTP long-polling.\n"
        "# TYPE coordhub_connections gauge\n"
        "coordhub_connections{protocol=\"native\"} %zu\n"
        "coordhub_connections{protocol=\"socketio\"} %zu\n"
        "coordhub_connections{protocol=\"socketio_polling\"} %zu\n",
        gw->nconns[GW_FRAMING_NATIVE], gw->nconns[GW_FRAMING_SIO] - gw->npolling, gw->npolling);
    put(&b,
        "# HELP coordhub_rooms Rooms with at least one member.\n# TYPE coordhub_rooms gauge\n"
        "coordhub_rooms %zu\n",
        gw__rooms_count(gw->rooms));
    put(&b, "# HELP coordhub_messages_in_total Redis messages received by channel.\n"
            "# TYPE coordhub_messages_in_total counter\n");
    for (int i = 0; i < UTIL_CH_COUNT; i++) /* the channel table's order */
        if (util_channels[i].label)
            put(&b, "coordhub_messages_in_total{channel=\"%s\"} %llu\n", util_channels[i].label,
                (unsigned long long)m->messages_in[i]);
    put(&b, "# HELP coordhub_malformed_payloads_total Payloads dropped because they did not "
            "parse, by channel.\n# TYPE coordhub_malformed_payloads_total counter\n");
    for (int i = 0; i < UTIL_CH_COUNT; i++)
        if (util_channels[i].label)
            put(&b, "coordhub_malformed_payloads_total{channel=\"%s\"} %llu\n",
                util_channels[i].label, (unsigned long long)m->malformed[i]);
    counter(&b, "coordhub_events_routed_total", "Events that reached at least one socket.",
            m->events_routed);
    counter(&b, "coordhub_frames_built_total",
            "Event serialisations (one per event per framing, shared by all recipients).",
            m->frames_built);
    counter(&b, "coordhub_deliveries_total", "Event frames written to sockets.", m->deliveries);
    counter(&b, "coordhub_polling_requests_total",
            "Engine.IO long-polling requests (GET and POST, handshakes included).", m->polls);
    counter(&b, "coordhub_polling_sessions_total", "Socket.IO sessions opened on long-polling.",
            m->poll_sessions);
    counter(&b, "coordhub_polling_upgrades_total",
            "Long-polling sessions upgraded to WebSocket.", m->upgrades);
    counter(&b, "coordhub_socket_writes_total",
            "Writes to sockets (frames queued together go in one).", m->sends);
    counter(&b, "coordhub_slow_consumer_closes_total", "Connections closed with 4008.",
            m->slow_closes);
    counter(&b, "coordhub_idle_pings_total",
            "WebSocket PINGs sent to silent connections (30 s by default).", m->idle_pings);
    counter(&b, "coordhub_idle_drops_total",
            "Connections dropped for not answering an idle PING (within 10 s by default).",
            m->idle_drops);
    counter(&b, "coordhub_token_expired_closes_total",
            "Connections closed with 4001: their token ended before a refresh.", m->expired_closes);
    counter(&b, "coordhub_token_refreshes_total", "Tokens refreshed on live connections.",
            m->refreshes);
    counter(&b, "coordhub_frame_too_large_closes_total", "Connections closed with 1009.",
            m->too_large_closes);
    counter(&b, "coordhub_rate_limited_closes_total", "Connections closed with 1008.",
            m->rate_closes);
    counter(&b, "coordhub_binary_frame_closes_total", "Connections closed with 1003.",
            m->binary_closes);
    counter(&b, "coordhub_invalid_utf8_closes_total",
            "Connections closed with 1007 (a text message that is not UTF-8).", m->utf8_closes);
    counter(&b, "coordhub_protocol_error_closes_total",
            "Connections the hub closed with 1002 (packets that do not parse).",
            m->protocol_closes);
    counter(&b, "coordhub_auth_failures_total", "Refused tokens: WebSocket upgrades, Socket.IO CONNECTs and API requests.", m->auth_failures);
    {
        uint64_t hits, misses;

        wire_keyset_cache_stats(gw->keys, &hits, &misses);
        counter(&b, "coordhub_token_cache_hits_total",
                "Tokens found verified in the cache (the same token again before its exp).",
                m->token_hits_before + hits);
        counter(&b, "coordhub_token_cache_misses_total",
                "Tokens looked up in the cache and verified in full.",
                m->token_misses_before + misses);
    }
    counter(&b, "coordhub_ws_accepted_total", "WebSocket connections accepted.", m->ws_accepted);
    counter(&b, "coordhub_client_errors_total", "Error frames sent to clients.", m->client_errors);
    counter(&b, "coordhub_http_requests_total", "HTTP requests received.", m->http_requests);
    put(&b,
        "# HELP coordhub_http_connections HTTP connections open (the front's, upgrades "
        "not counted).\n# TYPE coordhub_http_connections gauge\ncoordhub_http_connections %zu\n",
        gw->front.nconns);
    counter(&b, "coordhub_http_accept_errors_total",
            "Connections the HTTP front could not take (descriptors exhausted and the like).",
            m->accept_errors);
    put(&b,
        "# HELP coordhub_redis_connected 1 while Redis is connected and every subscription "
        "is active.\n# TYPE coordhub_redis_connected gauge\ncoordhub_redis_connected %d\n",
        gw->bus ? bus_ready(gw->bus) : 0);
    counter(&b, "coordhub_redis_reconnects_total", "Redis connections re-established after loss.",
            gw->bus ? bus_reconnects(gw->bus) : 0);
    {
        static const char *const outcome[GW_REC_OUTCOMES] = {
            "recovered", "offset", "epoch", "window", "bound",
            "gap", "unsynced", "session", "rooms", "unavailable"};
        static const char *const framing[GW_FRAMING_COUNT] = {"native", "socketio"};
        put(&b, "# HELP coordhub_recovery_total Reconnects that asked for missed events, by "
                "framing and outcome (recovered, or why not).\n"
                "# TYPE coordhub_recovery_total counter\n");
        for (int f = 0; f < GW_FRAMING_COUNT; f++)
            for (int o = 0; o < GW_REC_OUTCOMES; o++)
                put(&b, "coordhub_recovery_total{framing=\"%s\",outcome=\"%s\"} %llu\n",
                    framing[f], outcome[o], (unsigned long long)m->rec_outcomes[f][o]);
    }
    counter(&b, "coordhub_recovery_replayed_events_total", "Missed events sent by recoveries.",
            m->rec_replayed);
    counter(&b, "coordhub_recovery_history_entries_total",
            "History entries this hub sent to Redis.", m->rec_entries);
    counter(&b, "coordhub_recovery_history_refused_total",
            "History entries Redis already had from another hub.", m->rec_refused);
    counter(&b, "coordhub_recovery_history_batches_total",
            "Batches of history entries (one EVAL each).", m->rec_batches);
    counter(&b, "coordhub_recovery_history_errors_total", "Batches that failed.",
            m->rec_write_errors);
    counter(&b, "coordhub_recovery_anchors_total", "Anchors received.", m->rec_anchors);
    counter(&b, "coordhub_recovery_unsynced_events_total",
            "Messages that arrived while this hub had no position (their offset is \"\").",
            m->rec_unsynced);
    put(&b,
        "# HELP coordhub_recovery_window_seconds How long missed events can be recovered (0: "
        "off).\n# TYPE coordhub_recovery_window_seconds gauge\n"
        "coordhub_recovery_window_seconds %g\n"
        "# HELP coordhub_recovery_room_bound Events kept per room for recovery.\n"
        "# TYPE coordhub_recovery_room_bound gauge\ncoordhub_recovery_room_bound %u\n"
        "# HELP coordhub_recovery_synced 1 while this hub has a position it can vouch for.\n"
        "# TYPE coordhub_recovery_synced gauge\ncoordhub_recovery_synced %d\n"
        "# HELP coordhub_recovery_history_bytes Redis memory used by the history streams "
        "(MEMORY USAGE summed over the last full SCAN pass).\n"
        "# TYPE coordhub_recovery_history_bytes gauge\ncoordhub_recovery_history_bytes %llu\n"
        "# HELP coordhub_recovery_history_keys History streams in Redis (last full pass).\n"
        "# TYPE coordhub_recovery_history_keys gauge\ncoordhub_recovery_history_keys %llu\n"
        "# HELP coordhub_recovery_pending_bytes History bytes this hub holds before its next "
        "write.\n# TYPE coordhub_recovery_pending_bytes gauge\n"
        "coordhub_recovery_pending_bytes %zu\n",
        gw->rec.window_ms / 1000.0, gw->rec.bound, gw->rec.synced,
        (unsigned long long)gw->rec.redis_bytes, (unsigned long long)gw->rec.redis_keys,
        gw->rec.len);
    put(&b, "# HELP coordhub_delivery_latency_seconds From the Redis message reaching the hub to "
            "its frame being written to a socket.\n"
            "# TYPE coordhub_delivery_latency_seconds histogram\n");
    for (int i = 0; i < GW_LAT_BUCKETS; i++) {
        cum += m->lat_bucket[i];
        put(&b, "coordhub_delivery_latency_seconds_bucket{le=\"%g\"} %llu\n", lat_bounds[i],
            (unsigned long long)cum);
    }
    cum += m->lat_bucket[GW_LAT_BUCKETS];
    put(&b, "coordhub_delivery_latency_seconds_bucket{le=\"+Inf\"} %llu\n",
        (unsigned long long)cum);
    put(&b, "coordhub_delivery_latency_seconds_sum %.9f\n", m->lat_sum);
    put(&b, "coordhub_delivery_latency_seconds_count %llu\n", (unsigned long long)m->lat_count);
    if (gw->locks != NULL) {
        const lock_metrics_t *lm = lock_metrics(gw->locks);
        counter(&b, "coordhub_lock_acquisitions_total", "Locks granted.", lm->acquisitions);
        counter(&b, "coordhub_lock_contention_total", "Acquires answered 409 locked.",
                lm->contention);
        counter(&b, "coordhub_lock_waits_total", "Acquires that had to wait.", lm->waits);
        put(&b,
            "# HELP coordhub_lock_wait_seconds Time spent waiting for locks.\n"
            "# TYPE coordhub_lock_wait_seconds summary\n"
            "coordhub_lock_wait_seconds_sum %.6f\ncoordhub_lock_wait_seconds_count %llu\n",
            lm->wait_seconds, (unsigned long long)lm->wait_count);
        labelled(&b, "coordhub_lock_releases_total", "Releases by result.", "result", 2,
                 (const char *const[]){"released", "not_owner"},
                 (const uint64_t[]){lm->releases, lm->releases_not_owner});
        counter(&b, "coordhub_lock_extends_total", "Locks extended.", lm->extends);
        counter(&b, "coordhub_lock_not_owner_total", "Extends and releases refused: not_owner.",
                lm->not_owner);
        counter(&b, "coordhub_lock_script_reloads_total", "Lua scripts reloaded after NOSCRIPT.",
                lm->noscript_reloads);
        counter(&b, "coordhub_lock_replica_refusals_total",
                "Locks won but not confirmed by --lock-replicas replicas in 100 ms: released, 503.",
                lm->replica_refusals);
    }
    if (gw->resv != NULL) {
        const resv_metrics_t *rm = resv_metrics(gw->resv);
        labelled(&b, "coordhub_reservations_total", "Reserve requests by result.", "result", 2,
                 (const char *const[]){"reserved", "conflict"},
                 (const uint64_t[]){rm->reserved, rm->conflicts});
        labelled(&b, "coordhub_reservation_releases_total", "Releases by result.", "result", 2,
                 (const char *const[]){"released", "not_found"},
                 (const uint64_t[]){rm->released, rm->not_found});
        counter(&b, "coordhub_reservation_lists_total", "Listings served.", rm->lists);
        counter(&b, "coordhub_reservation_sweeps_total", "Expiry sweeps run by this hub.",
                rm->sweeps);
        counter(&b, "coordhub_reservation_expired_total",
                "Expired reservations removed from the index by this hub.", rm->expired);
    }
    if (gw->cache != NULL) {
        const cache_metrics_t *cm = cache_metrics(gw->cache);
        labelled(&b, "coordhub_config_cache_hits_total",
                 "Configuration reads by the tier that answered.", "tier", 3,
                 (const char *const[]){"l1", "l2", "store"},
                 (const uint64_t[]){cm->hits_l1, cm->hits_l2, cm->hits_store});
        counter(&b, "coordhub_config_cache_misses_total", "L1 misses (fetches started).",
                cm->misses);
        counter(&b, "coordhub_config_stale_served_total",
                "Reads answered from L1 marked stale while Redis was down.", cm->stale_served);
        labelled(&b, "coordhub_config_invalidations_total", "Invalidations received by source.",
                 "source", 3, (const char *const[]){"publish", "tracking", "flush"},
                 (const uint64_t[]){cm->inval_publish, cm->inval_tracking, cm->inval_flush});
        counter(&b, "coordhub_config_changes_total", "Changes reported to watchers.", cm->changes);
        counter(&b, "coordhub_config_writes_total", "Configuration writes.", cm->writes);
        counter(&b, "coordhub_config_tracking_errors_total", "Failures to enable client tracking.",
                cm->tracking_errors);
        put(&b,
            "# HELP coordhub_config_store_seconds Time spent in store calls.\n"
            "# TYPE coordhub_config_store_seconds summary\n"
            "coordhub_config_store_seconds_sum %.6f\ncoordhub_config_store_seconds_count "
            "%llu\n",
            cm->store_seconds, (unsigned long long)cm->store_calls);
    }
    if (gw->queues != NULL) {
        size_t ql;
        char *qt = queues_metrics(gw->queues, &ql);
        put(&b, "%s", qt);
        free(qt);
    }
    *len = b.len;
    return b.p;
}
