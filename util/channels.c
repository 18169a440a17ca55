/*
 * util/channels.c: the Redis channels the hub listens to (util.h), in one
 * table that the subscription (app/main.c), the routing (gateway/router.c)
 * and the metrics labels (gateway/metrics.c) all index by id.
 */
#include "util.h"

#include <string.h>

#define CH(id, name, pattern, label) [id] = {name, sizeof name - 1, pattern, label}

/* In metrics order: the gateway's labelled counters follow this table,
 * "other" (id UTIL_CH_OTHER, no name) included. */
const util_channel_t util_channels[UTIL_CH_COUNT] = {
    CH(UTIL_CH_TRADESTATE, "tradestate", 0, "tradestate"),
    CH(UTIL_CH_CANCELED, "canceledtrades", 0, "canceledtrades"),
    CH(UTIL_CH_ITEM_RESERVED, UTIL_CHANNEL_ITEM_RESERVED, 0, "itemReserved"),
    CH(UTIL_CH_FINISHED, "finishedtrades", 0, "finishedtrades"),
    CH(UTIL_CH_STEAMDOWN, "steamDown", 0, "steamDown"),
    CH(UTIL_CH_BOT, "bot *", 1, "bot"),
    [UTIL_CH_OTHER] = {NULL, 0, 0, "other"},
    CH(UTIL_CH_LOCK_RELEASED, UTIL_CHANNEL_LOCK_RELEASED, 0, NULL),
    CH(UTIL_CH_CONFIG_INVALIDATE, UTIL_CHANNEL_CONFIG_INVALIDATE, 0, NULL),
    CH(UTIL_CH_TRACKING, UTIL_CHANNEL_TRACKING, 0, NULL),
    CH(UTIL_CH_REC_ANCHOR, UTIL_CHANNEL_REC_ANCHOR, 0, NULL),
};

enum util_channel_id
util_channel_of(const char *pattern, const char *channel, size_t len)
{
    const char *name = pattern != NULL ? pattern : channel;
    size_t n = pattern != NULL ? strlen(pattern) : len;

    for (int i = 0; i < UTIL_CH_COUNT; i++) {
        const util_channel_t *c = &util_channels[i];
        if (c->name != NULL && c->pattern == (pattern != NULL) && c->len == n &&
            memcmp(c->name, name, n) == 0)
            return (enum util_channel_id)i;
    }
    return UTIL_CH_OTHER;
}
