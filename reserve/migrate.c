/*
 * reserve/migrate.c: the one-off import of the legacy reservation lists.
 *
 * Legacy layout: `reserved-assets_<app>` (a list of asset ids) and, beside
 * it, `reserved-assets-info_<app>` (a list of JSON blobs {assetId, expired},
 * expired in epoch ms, or seconds when below 1e12). Each unexpired entry
 * becomes a reservation with the TTL that remains, by SET NX PX, so a second
 * run finds every entry already reserved and changes nothing. The legacy
 * lists are left as they are. Blocking hiredis: this runs from the command
 * line, never on the hub's loop.
 */
#include "reserve.h"
#include "util.h"

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* KEYS[1] index, KEYS[2] asset key; ARGV[1] value, ARGV[2] ttl ms,
 * ARGV[3] expiry ms, ARGV[4] asset id. 1 imported, 0 already reserved. */
static const char import_lua[] =
    "if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then "
    "redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4]) return 1 end return 0";

static redisReply *
command(redisContext *c, FILE *err, const char *what, redisReply *r)
{
    if (r == NULL) {
        fprintf(err, "coordhub: redis failed during %s: %s\n", what, c->errstr);
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        fprintf(err, "coordhub: redis refused %s: %s\n", what, r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

static int
seen(char **ids, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ids[i], id) == 0)
            return 1;
    return 0;
}

int
resv_migrate(void *redis, const resv_migrate_opts_t *o, FILE *out, FILE *err)
{
    redisContext *c = redis;
    char ids_key[128], info_key[128], index[64];
    redisReply *info = NULL, *ids = NULL, *t = NULL, *r;
    char **done = NULL;
    size_t ndone = 0;
    long long now;
    unsigned imported = 0, expired = 0, already = 0, malformed = 0, noexp = 0;
    int rc = UV_EIO;

    snprintf(ids_key, sizeof ids_key, "%s", o->ids_key ? o->ids_key : "");
    snprintf(info_key, sizeof info_key, "%s", o->info_key ? o->info_key : "");
    if (!o->ids_key)
        snprintf(ids_key, sizeof ids_key, "reserved-assets_%s", o->app);
    if (!o->info_key)
        snprintf(info_key, sizeof info_key, "reserved-assets-info_%s", o->app);
    snprintf(index, sizeof index, "reserved:{%s}", o->app);

    if ((t = command(c, err, "TIME", redisCommand(c, "TIME"))) == NULL)
        goto out;
    if (t->type != REDIS_REPLY_ARRAY || t->elements != 2) {
        fprintf(err, "coordhub: unexpected reply to TIME\n");
        goto out;
    }
    now = atoll(t->element[0]->str) * 1000 + atoll(t->element[1]->str) / 1000;
    if ((info = command(c, err, "LRANGE", redisCommand(c, "LRANGE %s 0 -1", info_key))) == NULL ||
        (ids = command(c, err, "LRANGE", redisCommand(c, "LRANGE %s 0 -1", ids_key))) == NULL)
        goto out;
    if (info->type != REDIS_REPLY_ARRAY || ids->type != REDIS_REPLY_ARRAY) {
        fprintf(err, "coordhub: %s and %s must be lists\n", ids_key, info_key);
        goto out;
    }
    done = util_calloc(info->elements + 1, sizeof *done);
    for (size_t i = 0; i < info->elements; i++) {
        redisReply *e = info->element[i];
        json_t *doc = e->type == REDIS_REPLY_STRING ? json_loadb(e->str, e->len, 0, NULL) : NULL;
        json_t *aid = json_object_get(doc, "assetId"), *exp = json_object_get(doc, "expired");
        char asset[RESV_ASSET_MAX + 1], key[256], value[512], ttl[24], expms[24];
        long long when;

        if (json_is_integer(aid))
            snprintf(asset, sizeof asset, "%lld", (long long)json_integer_value(aid));
        else if (json_is_string(aid) && json_string_length(aid) <= RESV_ASSET_MAX)
            snprintf(asset, sizeof asset, "%s", json_string_value(aid));
        else
            asset[0] = '\0';
        if (!json_is_number(exp) || resv_valid_asset(asset, strlen(asset)) != 0) {
            malformed++;
            /* counted once: its id is not also "no expiry" */
            if (resv_valid_asset(asset, strlen(asset)) == 0)
                done[ndone++] = util_strdup(asset);
            fprintf(out, "skipped entry %zu: malformed %.*s\n", i,
                    e->type == REDIS_REPLY_STRING ? (int)(e->len > 80 ? 80 : e->len) : 0,
                    e->type == REDIS_REPLY_STRING ? e->str : "");
            json_decref(doc);
            continue;
        }
        when = (long long)json_number_value(exp);
        if (when < 1000000000000LL) /* seconds, not ms */
            when *= 1000;
        json_decref(doc);
        done[ndone++] = util_strdup(asset);
        if (when <= now) {
            expired++;
            fprintf(out, "skipped %s: expired %lld ms ago\n", asset, now - when);
            continue;
        }
        snprintf(key, sizeof key, "reserved:{%s}:%s", o->app, asset);
        {
            json_t *v =
                json_pack("{s:s,s:I,s:I}", "owner", o->owner ? o->owner : "migrated",
                          "reserved_at_ms", (json_int_t)now, "expires_at_ms", (json_int_t)when);
            char *vs = json_dumps(v, JSON_COMPACT);
            snprintf(value, sizeof value, "%s", vs);
            free(vs);
            json_decref(v);
        }
        snprintf(ttl, sizeof ttl, "%lld", when - now);
        snprintf(expms, sizeof expms, "%lld", when);
        r = command(c, err, "the import script",
                    redisCommand(c, "EVAL %s 2 %s %s %s %s %s %s", import_lua, index, key, value,
                                 ttl, expms, asset));
        if (r == NULL)
            goto out;
        if (r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
            imported++;
            fprintf(out, "imported %s: expires in %s ms\n", asset, ttl);
        } else {
            already++;
            fprintf(out, "skipped %s: already reserved\n", asset);
        }
        freeReplyObject(r);
    }
    for (size_t i = 0; i < ids->elements; i++) {
        redisReply *e = ids->element[i];
        if (e->type == REDIS_REPLY_STRING && !seen(done, ndone, e->str)) {
            noexp++;
            fprintf(out, "skipped %s: no expiry in %s\n", e->str, info_key);
        }
    }
    if (imported > 0) {
        r = command(c, err, "PUBLISH", redisCommand(c, "PUBLISH itemReserved %s", o->app));
        if (r == NULL)
            goto out;
        freeReplyObject(r);
    }
    fprintf(out,
            "imported %u, skipped %u (%u expired, %u already reserved, %u malformed, %u no "
            "expiry)\n",
            imported, expired + already + malformed + noexp, expired, already, malformed, noexp);
    rc = 0;
out:
    for (size_t i = 0; i < ndone; i++)
        free(done[i]);
    free(done);
    if (t)
        freeReplyObject(t);
    if (info)
        freeReplyObject(info);
    if (ids)
        freeReplyObject(ids);
    return rc;
}
