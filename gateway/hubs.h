/*
 * gateway/hubs.h: the registry of hubs (hubs.c, SPEC §11): this hub's
 * entry in Redis, refreshed every 2 s, and the listing of GET /v1/hubs.
 */
#ifndef COORDHUB_GW_HUBS_H
#define COORDHUB_GW_HUBS_H

#include "state.h"

/* A new id; the heartbeat starts (its first beat at the next iteration). */
void gw__hubs_init(gw_t *gw, const gw_options_t *opt);
/* The bus became ready (or not): a beat at once when it did. */
void gw__hubs_redis_state(gw_t *gw, int ready);
/* A graceful stop: no more beats, the entry and the id removed. */
void gw__hubs_leave(gw_t *gw);
/* Closes the timer (with the gateway's other handles). */
void gw__hubs_close(gw_t *gw);
/* Reads every live hub's entry: `cb` gets an array of JSON strings (or
 * NULL / an error), as bus_request's callbacks do. 0 or UV_ENOTCONN. */
int gw__hubs_list(gw_t *gw, bus_req_t **req, bus_reply_cb cb, void *privdata);
/* {"hubs":[...]} from that array (malloc'd; entries that do not parse as
 * JSON objects are left out). */
char *gw__hubs_render(const redisReply *reply, size_t *len);

#endif
