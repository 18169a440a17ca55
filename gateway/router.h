/*
 * gateway/router.h: Redis messages to room events (router.c). The public
 * entry points, gw_on_message and gw_config_changed, are in gateway.h.
 */
#ifndef COORDHUB_GW_ROUTER_H
#define COORDHUB_GW_ROUTER_H

#include "state.h"

/* Sets up reserve-items coalescing (gw->reserve_timer closes with the
 * gateway). */
void gw__router_init(gw_t *gw, unsigned coalesce_ms);

#endif
