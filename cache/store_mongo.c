/*
 * cache/store_mongo.c: the configuration source of truth in MongoDB
 * (collection `configurations`). The driver blocks, so every call runs on
 * libuv's thread pool (uv_queue_work) with a client popped from a
 * mongoc_client_pool_t, and its answer is delivered on the loop in the
 * after-work callback. Nothing of the driver is ever called on the loop
 * except creating and destroying the pool.
 */
#include "cache.h"
#include "util.h"

#include <mongoc/mongoc.h>
#include <stdlib.h>
#include <string.h>

typedef struct mstore {
    cache_store_t base;
    uv_loop_t *loop;
    mongoc_uri_t *uri;
    mongoc_client_pool_t *pool;
    char db[64];
    /* work requests queued or running: a running one cannot be cancelled,
     * and its after-work callback still reads the store */
    int in_flight;
    int closing;
    void (*close_cb)(void *);
    void *close_privdata;
} mstore_t;

enum mop_kind { M_GET, M_PUT, M_LIST };

typedef struct mop {
    uv_work_t work;
    mstore_t *s;
    enum mop_kind kind;
    char *key; /* or the category for M_LIST */
    char *value;
    char *category;
    cache_store_cb cb;
    void *privdata;
    /* results, written on the pool thread, read on the loop */
    int error; /* docs/errors.md: 0 or UV_ENOTCONN */
    enum cache_outcome outcome;
    cache_doc_t *docs;
    size_t n;
    char err[512];
} mop_t;

static void
add_doc(mop_t *op, const bson_t *b)
{
    cache_doc_t d;
    if (cache_mongo_to_doc(b, &d) != 0)
        return; /* a document of another shape: not ours to serve */
    op->docs = util_realloc(op->docs, (op->n + 1) * sizeof *op->docs);
    op->docs[op->n++] = d;
}

/* On the pool thread. */
static void
work(uv_work_t *w)
{
    mop_t *op = w->data;
    mstore_t *s = op->s;
    mongoc_client_t *client = mongoc_client_pool_pop(s->pool);
    mongoc_collection_t *coll = mongoc_client_get_collection(client, s->db, "configurations");
    bson_error_t err;
    const bson_t *doc;

    op->error = UV_ENOTCONN;
    op->outcome = CACHE_FOUND;
    if (op->kind == M_GET || op->kind == M_LIST) {
        bson_t *filter = op->kind == M_GET ? BCON_NEW("_id", BCON_UTF8(op->key))
                                           : BCON_NEW("category", BCON_UTF8(op->key));
        bson_t *opts = op->kind == M_GET ? BCON_NEW("limit", BCON_INT64(1))
                                         : BCON_NEW("sort", "{", "_id", BCON_INT32(1), "}");
        mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
        while (mongoc_cursor_next(cur, &doc))
            add_doc(op, doc);
        if (mongoc_cursor_error(cur, &err))
            snprintf(op->err, sizeof op->err, "%s", err.message);
        else
            op->error = 0;
        if (op->error == 0 && op->kind == M_GET && op->n == 0)
            op->outcome = CACHE_NOT_FOUND;
        mongoc_cursor_destroy(cur);
        bson_destroy(filter);
        bson_destroy(opts);
    } else {
        struct timeval tv;
        char *upd_json;
        bson_t *query = BCON_NEW("_id", BCON_UTF8(op->key)), *update = NULL;
        mongoc_find_and_modify_opts_t *fam = mongoc_find_and_modify_opts_new();
        bson_t reply;
        bson_iter_t it, val;

        char *prev = NULL;

        /* the category before the write, so that its bundle can be dropped
         * too (a concurrent write may slip between: then the bundle of the
         * category in between is dropped by that write) */
        {
            bson_t *popts =
                BCON_NEW("limit", BCON_INT64(1), "projection", "{", "category", BCON_INT32(1), "}");
            mongoc_cursor_t *pc = mongoc_collection_find_with_opts(coll, query, popts, NULL);
            bson_iter_t pit;
            if (mongoc_cursor_next(pc, &doc) && bson_iter_init_find(&pit, doc, "category") &&
                BSON_ITER_HOLDS_UTF8(&pit))
                prev = util_strdup(bson_iter_utf8(&pit, NULL));
            mongoc_cursor_destroy(pc);
            bson_destroy(popts);
        }
        bson_gettimeofday(&tv); /* wall-clock time for updatedAt */
        upd_json = cache_mongo_update_json(op->value, op->category,
                                           (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000);
        if (upd_json != NULL)
            update = bson_new_from_json((const uint8_t *)upd_json, -1, &err);
        if (update == NULL) {
            snprintf(op->err, sizeof op->err, "bad update document");
        } else {
            mongoc_find_and_modify_opts_set_update(fam, update);
            mongoc_find_and_modify_opts_set_flags(fam, MONGOC_FIND_AND_MODIFY_UPSERT |
                                                           MONGOC_FIND_AND_MODIFY_RETURN_NEW);
            if (mongoc_collection_find_and_modify_with_opts(coll, query, fam, &reply, &err)) {
                if (bson_iter_init_find(&it, &reply, "value") && BSON_ITER_HOLDS_DOCUMENT(&it) &&
                    bson_iter_recurse(&it, &val)) {
                    const uint8_t *data;
                    uint32_t len;
                    bson_t sub;
                    bson_iter_document(&it, &len, &data);
                    if (bson_init_static(&sub, data, len))
                        add_doc(op, &sub);
                }
                op->error = op->n == 1 ? 0 : UV_ENOTCONN;
                if (op->n == 1) {
                    op->docs[0].prev_category = prev;
                    prev = NULL;
                }
            } else {
                snprintf(op->err, sizeof op->err, "%s", err.message);
            }
            bson_destroy(&reply);
        }
        free(prev);
        mongoc_find_and_modify_opts_destroy(fam);
        bson_destroy(query);
        if (update)
            bson_destroy(update);
        free(upd_json);
    }
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(s->pool, client);
}

static void
finish_close(mstore_t *s)
{
    void (*cb)(void *) = s->close_cb;
    void *privdata = s->close_privdata;
    mongoc_client_pool_destroy(s->pool);
    mongoc_uri_destroy(s->uri);
    mongoc_cleanup();
    free(s);
    if (cb)
        cb(privdata);
}

/* On the loop. */
static void
after_work(uv_work_t *w, int status)
{
    mop_t *op = w->data;
    mstore_t *s = op->s;

    if (status == UV_ECANCELED)
        op->error = UV_ENOTCONN;
    if (op->error != 0 && op->err[0])
        LOG_WARN("cache", "mongodb: %s", op->err);
    /* after close the caller is gone (cache.h: the store's close cancels) */
    if (!s->closing)
        op->cb(op->privdata, op->error, op->outcome, op->docs, op->n);
    for (size_t i = 0; i < op->n; i++)
        cache_doc_free(&op->docs[i]);
    free(op->docs);
    free(op->key);
    free(op->value);
    free(op->category);
    free(op);
    if (--s->in_flight == 0 && s->closing)
        finish_close(s);
}

static int
queue(mstore_t *s, enum mop_kind kind, const char *key, const char *value, const char *category,
      cache_store_cb cb, void *privdata)
{
    mop_t *op;
    if (s->closing)
        return UV_ENOTCONN;
    op = util_calloc(1, sizeof *op);
    op->s = s;
    op->kind = kind;
    op->key = util_strdup(key);
    op->value = value ? util_strdup(value) : NULL;
    op->category = category ? util_strdup(category) : NULL;
    op->cb = cb;
    op->privdata = privdata;
    op->work.data = op;
    if (uv_queue_work(s->loop, &op->work, work, after_work) != 0) {
        free(op->key);
        free(op->value);
        free(op->category);
        free(op);
        return UV_ENOTCONN;
    }
    s->in_flight++;
    return 0;
}

static int
ms_get(cache_store_t *b, const char *key, cache_store_cb cb, void *privdata)
{
    return queue((mstore_t *)b, M_GET, key, NULL, NULL, cb, privdata);
}

static int
ms_put(cache_store_t *b, const char *key, const char *value, const char *category,
       cache_store_cb cb, void *privdata)
{
    return queue((mstore_t *)b, M_PUT, key, value, category, cb, privdata);
}

static int
ms_list(cache_store_t *b, const char *category, cache_store_cb cb, void *privdata)
{
    return queue((mstore_t *)b, M_LIST, category, NULL, NULL, cb, privdata);
}

static void
ms_close(cache_store_t *b, void (*cb)(void *), void *privdata)
{
    mstore_t *s = (mstore_t *)b;
    s->closing = 1;
    s->close_cb = cb;
    s->close_privdata = privdata;
    if (s->in_flight == 0)
        finish_close(s);
}

static const cache_store_ops_t mongo_ops = {
    .name = "mongodb",
    .put_publishes = 0,
    .get = ms_get,
    .put = ms_put,
    .list = ms_list,
    .close = ms_close,
};

cache_store_t *
cache_store_mongo_new(uv_loop_t *loop, const char *uri, const char **err)
{
    bson_error_t e;
    mstore_t *s;
    mongoc_uri_t *u;
    const char *db;

    mongoc_init();
    u = mongoc_uri_new_with_error(uri, &e);
    if (u == NULL) {
        *err = "MongoDB URI does not parse";
        mongoc_cleanup();
        return NULL;
    }
    /* a request must not hang for the driver's default 30 s */
    if (!mongoc_uri_has_option(u, MONGOC_URI_SERVERSELECTIONTIMEOUTMS))
        mongoc_uri_set_option_as_int32(u, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 2000);
    s = util_calloc(1, sizeof *s);
    s->base.ops = &mongo_ops;
    s->loop = loop;
    s->uri = u;
    s->pool = mongoc_client_pool_new(u);
    mongoc_client_pool_set_error_api(s->pool, MONGOC_ERROR_API_VERSION_2);
    db = mongoc_uri_get_database(u);
    snprintf(s->db, sizeof s->db, "%s", db && *db ? db : "coordhub");
    return &s->base;
}
