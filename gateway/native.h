/*
 * gateway/native.h: the native JSON framing of /ws (native.c): what a
 * client's message asks, and the answer frames.
 */
#ifndef COORDHUB_GW_NATIVE_H
#define COORDHUB_GW_NATIVE_H

#include "state.h"

/* One complete inbound message (UTF-8, within the limits: ws.c checked):
 * answered with a frame of its own; a bad one with an error frame. */
void gw__native_receive(gw_t *gw, gw_conn_t *c, const char *buf, size_t len);

#endif
