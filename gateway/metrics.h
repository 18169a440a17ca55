/*
 * gateway/metrics.h: the gateway's counters in Prometheus text (metrics.c).
 */
#ifndef COORDHUB_GW_METRICS_H
#define COORDHUB_GW_METRICS_H

#include "state.h"

/* One delivery's publish-to-socket latency into the histogram. */
void gw__metrics_observe_latency(struct gw_metrics *m, uint64_t ns);
/* Renders the Prometheus text; returns a malloc'd buffer and its length. */
char *gw__metrics_render(const gw_t *gw, size_t *len);

#endif
