/* SPDX-License-Identifier: MIT */
/*
 * log.c -- gatekeeper-audit log --business <id>: walks one business's activity-log hash chain
 * (sql/006_activity_hash.sql) from the anchor retention left, recomputing every row's hash from
 * its columns: hash = SHA-256(previous hash || id, event_id, business_id, user_id, event,
 * created_at, client_ip, details, one per line). The first row that does not chain is named:
 * an edited row fails its own hash, a deleted or moved one the hash of the row after it. Rows
 * written before the chain existed (no hash) are skipped while no hashed row has come yet.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "gk/crypto.h"
#include "gk/pg.h"
#include "gk/util.h"

#define PAGE "10000"

static const char sql_anchor[] =
    "SELECT encode(anchor, 'hex'), anchor_id FROM activity_chain WHERE business_id = $1";
static const char sql_rows[] = "SELECT id, event_id, business_id, coalesce(user_id, ''), event, "
                               "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
                               "coalesce(host(client_ip), ''), "
                               "details::text, coalesce(encode(hash, 'hex'), '') FROM activity_log "
                               "WHERE business_id = $1 AND id > $2::bigint ORDER BY id LIMIT " PAGE;

struct walk {
    unsigned char prev[GK_SHA256_LEN];
    size_t prev_len; /* 0: the empty string (a chain's start) */
    bool started;    /* a hashed row has been seen */
    int64_t last_id, rows, legacy;
};

/* Checks row i of a sql_rows page against w; 0, or 1 after naming the row. */
static int
check_row(struct walk *w, const struct gk_pg_res *res, int i)
{
    const char *hash = gk_pg_res_value(res, i, 8);
    unsigned char got[GK_SHA256_LEN];
    char hex[GK_SHA256_HEX_BUF], *buf;
    size_t len = w->prev_len, cap = w->prev_len;

    w->last_id = strtoll(gk_pg_res_value(res, i, 0), NULL, 10);
    if (hash[0] == '\0') {
        if (!w->started) {
            w->legacy++;
            return 0;
        }
        fprintf(stderr, "FAIL: row id=%" PRId64 " (event_id %s) has no hash\n", w->last_id,
                gk_pg_res_value(res, i, 1));
        return 1;
    }
    for (int c = 0; c < 8; c++)
        cap += gk_pg_res_length(res, i, c) + 1;
    buf = gk_xmalloc(cap);
    memcpy(buf, w->prev, w->prev_len);
    for (int c = 0; c < 8; c++) {
        size_t n = gk_pg_res_length(res, i, c);

        memcpy(buf + len, gk_pg_res_value(res, i, c), n);
        len += n;
        if (c < 7)
            buf[len++] = '\n';
    }
    gk_sha256(buf, len, got);
    free(buf);
    gk_hex(got, sizeof(got), hex);
    if (strcmp(hex, hash) != 0) {
        fprintf(stderr,
                "FAIL: row id=%" PRId64
                " (event_id %s) does not chain: it, or the row before it, was edited, "
                "deleted or moved\n",
                w->last_id, gk_pg_res_value(res, i, 1));
        return 1;
    }
    memcpy(w->prev, got, sizeof(got));
    w->prev_len = sizeof(got);
    w->started = true;
    w->rows++;
    return 0;
}

/* The anchor retention left (or the empty start) into w. */
static int
read_anchor(struct gk_pg *pg, const char *business, struct walk *w)
{
    const char *p[1] = {business};
    struct gk_pg_res *res = NULL;
    int rc = 2;

    if (gk_pg_exec(pg, sql_anchor, 1, p, &res) != GK_OK) {
        fprintf(stderr, "cannot read activity_chain: %s\n", gk_pg_errmsg(pg));
        goto out;
    }
    if (gk_pg_res_rows(res) == 1 && gk_pg_res_length(res, 0, 0) > 0) {
        if (gk_unhex(gk_pg_res_value(res, 0, 0), w->prev, sizeof(w->prev)) != GK_OK) {
            fprintf(stderr, "FAIL: the stored anchor is not a SHA-256\n");
            rc = 1;
            goto out;
        }
        w->prev_len = sizeof(w->prev);
        w->started = true;
        w->last_id = strtoll(gk_pg_res_value(res, 0, 1), NULL, 10);
    }
    rc = 0;
out:
    gk_pg_res_free(res);
    return rc;
}

int
gk_audit_log(const char *business, const char *database_url)
{
    struct walk w = {0};
    struct gk_pg *pg;
    int rc, rows;

    if (database_url == NULL || database_url[0] == '\0') {
        fprintf(stderr, "DATABASE_URL is not set\n");
        return 2;
    }
    pg = gk_pg_open(database_url);
    rc = read_anchor(pg, business, &w);
    do {
        char after[GK_PG_I64_BUF];
        const char *p[2] = {business, after};
        struct gk_pg_res *res = NULL;

        if (rc != 0)
            break;
        snprintf(after, sizeof(after), "%" PRId64, w.last_id);
        if (gk_pg_exec(pg, sql_rows, 2, p, &res) != GK_OK) {
            fprintf(stderr, "cannot read activity_log: %s\n", gk_pg_errmsg(pg));
            rc = 2;
            break;
        }
        rows = gk_pg_res_rows(res);
        for (int i = 0; rc == 0 && i < rows; i++)
            rc = check_row(&w, res, i);
        gk_pg_res_free(res);
    } while (rc == 0 && rows == atoi(PAGE));
    gk_pg_close(pg);
    if (rc == 0)
        printf("ok: %" PRId64 " rows of %s chain intact (%" PRId64 " older rows without a hash)\n", w.rows,
               business, w.legacy);
    return rc;
}
