/* SPDX-License-Identifier: MIT */
/* store.c -- see gk/store.h for the contract. */
#include "gk/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

struct gk_store {
    struct gk_redis_addr addr;
    redisContext *ctx;
    int64_t next_try_ms; /* no reconnect before this monotonic time */
    char errmsg[256];
};

static void
set_error(struct gk_store *st, const char *what, const char *detail)
{
    snprintf(st->errmsg, sizeof(st->errmsg), "redis %s: %s", what, detail != NULL ? detail : "unknown error");
}

static void
drop(struct gk_store *st)
{
    if (st->ctx != NULL)
        redisFree(st->ctx);
    st->ctx = NULL;
    st->next_try_ms = gk_mono_ms() + GK_STORE_RETRY_MS;
}

/* Runs one command on a connected context; drops the connection on I/O errors. */
static redisReply *
command(struct gk_store *st, int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(st->ctx, argc, argv, NULL);

    if (r == NULL) {
        set_error(st, "command", st->ctx->errstr);
        drop(st);
    }
    return r;
}

static enum gk_err
connect_if_needed(struct gk_store *st)
{
    struct timeval tv = {GK_STORE_TIMEOUT_MS / 1000, (GK_STORE_TIMEOUT_MS % 1000) * 1000};
    char db[16];
    redisReply *r;

    if (st->ctx != NULL)
        return GK_OK;
    if (gk_mono_ms() < st->next_try_ms)
        return GK_EREDIS;
    st->ctx = redisConnectWithTimeout(st->addr.host, st->addr.port, tv);
    if (st->ctx == NULL || st->ctx->err) {
        set_error(st, "connect", st->ctx != NULL ? st->ctx->errstr : "out of memory");
        drop(st);
        return GK_EREDIS;
    }
    if (redisSetTimeout(st->ctx, tv) != REDIS_OK || redisEnableKeepAlive(st->ctx) != REDIS_OK) {
        set_error(st, "connect", st->ctx->errstr);
        drop(st);
        return GK_EREDIS;
    }
    if (st->addr.password[0] != '\0') {
        const char *argv[] = {"AUTH", st->addr.password};

        r = command(st, 2, argv);
        if (r == NULL)
            return GK_EREDIS;
        if (r->type == REDIS_REPLY_ERROR) {
            set_error(st, "auth", "refused");
            freeReplyObject(r);
            drop(st);
            return GK_EREDIS;
        }
        freeReplyObject(r);
    }
    if (st->addr.db != 0) {
        const char *argv[] = {"SELECT", db};

        snprintf(db, sizeof(db), "%u", st->addr.db);
        r = command(st, 2, argv);
        if (r == NULL)
            return GK_EREDIS;
        if (r->type == REDIS_REPLY_ERROR) {
            set_error(st, "select", r->str);
            freeReplyObject(r);
            drop(st);
            return GK_EREDIS;
        }
        freeReplyObject(r);
    }
    return GK_OK;
}

struct gk_store *
gk_store_open(const struct gk_redis_addr *addr)
{
    struct gk_store *st = gk_xcalloc(1, sizeof(*st));

    st->addr = *addr;
    (void)connect_if_needed(st);
    return st;
}

void
gk_store_close(struct gk_store *st)
{
    if (st == NULL)
        return;
    if (st->ctx != NULL)
        redisFree(st->ctx);
    free(st);
}

const char *
gk_store_errmsg(const struct gk_store *st)
{
    return st->errmsg;
}

enum gk_err
gk_store_ping(struct gk_store *st)
{
    const char *argv[] = {"PING"};
    enum gk_err rc = GK_EREDIS;
    redisReply *r;

    if (connect_if_needed(st) != GK_OK)
        return GK_EREDIS;
    r = command(st, 1, argv);
    if (r == NULL)
        return GK_EREDIS;
    if (r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0)
        rc = GK_OK;
    else
        set_error(st, "ping", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    freeReplyObject(r);
    return rc;
}
