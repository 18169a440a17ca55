/*
 * gateway/protocol.h: the one lws protocol of the hub (protocol.c).
 */
#ifndef COORDHUB_GW_PROTOCOL_H
#define COORDHUB_GW_PROTOCOL_H

#include <libwebsockets.h>

/* The vhost's protocol list, terminated (lws_context_creation_info). */
extern const struct lws_protocols gw__protocols[];

#endif
