/*
 * gateway/liveness.h: the sweep that pings silent connections and drops
 * the ones that stopped answering (liveness.c).
 */
#ifndef COORDHUB_GW_LIVENESS_H
#define COORDHUB_GW_LIVENESS_H

#include "state.h"

/* Starts the sweep timer (gw->sweep; it closes with the gateway). */
void gw__liveness_init(gw_t *gw);

#endif
