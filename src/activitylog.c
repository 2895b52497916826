/* SPDX-License-Identifier: MIT */
/*
 * activitylog.c -- the activity_log table; see gk/activitylog.h for the contract.
 *
 * Event batches from the worker are written in one explicit transaction (gk_pg_begin), so a lost
 * connection fails the whole batch and no statement of it can end up committed on its own.
 * Values are cleaned on the way in (one bad value never refuses a batch) and checked on the way
 * out. Statements go through gk/pg.h.
 */
#include "gk/activitylog.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gk/jsonutil.h"
#include "gk/pg.h"

/* Parameters per activity row, and rows per INSERT: 7000 parameters, far below PostgreSQL's
 * limit of 65535 per statement, and a whole batch of the worker in one statement. A full-size
 * INSERT is prepared once per connection: parsing and planning 1000 rows costs as much as
 * inserting them. A backlog is drained in full batches, so the smaller ones, sent as they are,
 * only come when there is time to spare. */
#define EVENT_PARAMS 7
#define EVENTS_PER_STMT 1000
#define EVENTS_STMT_NAME "gk_insert_events"
/* Longest row of VALUES: the fixed text, its ordinal and 7 placeholders of up to 4 digits, and a
 * comma. */
#define EVENT_ROW_SQL_MAX 128
#define TS_MS_MAX INT64_C(253402300799999) /* 9999-12-31T23:59:59.999Z */

/* A batch is written hash-chained (sql/006_activity_hash.sql) under its businesses' head locks,
 * taken first in the same transaction (sql_lock_heads, in a fixed order: no deadlock between two
 * workers). One statement then leaves out the events written already (a redelivered batch), draws
 * the ids in the batch's order, chains each business's rows from its head in id order (gk_chain)
 * and moves the heads; under the lock no other writer of the business can come in between. */
static const char sql_lock_heads[] =
    "INSERT INTO activity_chain (business_id) SELECT DISTINCT unnest($1::text[]) ORDER BY 1 "
    "ON CONFLICT (business_id) DO UPDATE SET head = activity_chain.head";
static const char sql_events_head[] =
    "WITH v (ord, event_id, business_id, user_id, event, created_at, client_ip, details) AS (VALUES ";
static const char sql_events_tail[] =
    "), n AS (SELECT * FROM v WHERE (SELECT a.id FROM activity_log a WHERE a.event_id = v.event_id) IS NULL "
    "ORDER BY ord), "
    "i AS (SELECT nextval('activity_log_id_seq') AS id, n.* FROM n), "
    "c AS (SELECT business_id, 0::bigint AS id, head AS x FROM activity_chain "
    "WHERE business_id IN (SELECT business_id FROM i) UNION ALL "
    "SELECT business_id, id, gk_activity_canon(id, event_id, business_id, user_id, event, created_at, "
    "client_ip, "
    "details) FROM i), "
    "w AS (SELECT id, gk_chain(x) OVER (PARTITION BY business_id ORDER BY id) AS hash FROM c), "
    "ins AS (INSERT INTO activity_log (id, event_id, business_id, user_id, event, created_at, client_ip, "
    "details, "
    "hash) SELECT i.id, i.event_id, i.business_id, i.user_id, i.event, i.created_at, i.client_ip, i.details, "
    "w.hash FROM i JOIN w ON w.id = i.id RETURNING business_id, id, hash) "
    "UPDATE activity_chain h SET head = x.hash FROM (SELECT DISTINCT ON (business_id) business_id, hash FROM "
    "ins "
    "ORDER BY business_id, id DESC) x WHERE h.business_id = x.business_id";
/* The business of the oldest row past the retention: one step down the created_at index
 * (sql/004), however many businesses there are, so that every pass starts where the oldest rows
 * are and no business waits behind others for a turn. */
static const char sql_prune_next[] =
    "SELECT business_id FROM activity_log WHERE created_at < now() - $1::integer * interval '1 day' "
    "AND business_id <> ALL($2::text[]) ORDER BY created_at LIMIT 1";
/* Businesses a pass may pass over: their oldest row sits behind a newer one in chain order. */
#define PRUNE_SKIP_MAX 32
/* Retention keeps each business's hash chain checkable (sql/006): it deletes a prefix of the
 * business's rows in id order (ORDER BY business_id DESC, id: exactly a backward walk of the
 * (business_id, id DESC) index, which the planner cannot trade for a walk of the whole table in
 * id order), up to its first row not old enough, and stores the last deleted row's hash as the
 * anchor the rest chains from, in the same statement. cut and lim are MATERIALIZED: computed once,
 * whatever the planner guesses of a business's rows (inlined, a nested loop may redo them per
 * row deleted). */
static const char sql_prune[] =
    "WITH cut AS MATERIALIZED (SELECT id, created_at FROM activity_log WHERE business_id = $1 "
    "ORDER BY business_id DESC, id LIMIT $3::integer), "
    "lim AS MATERIALIZED (SELECT coalesce(min(id) FILTER (WHERE created_at >= now() - $2::integer * interval "
    "'1 day'), "
    "max(id) + 1, 0) AS m FROM cut), "
    "del AS (DELETE FROM activity_log a USING lim WHERE a.business_id = $1 AND a.id < lim.m "
    "RETURNING a.id, a.hash), "
    "last AS (SELECT id, hash FROM del ORDER BY id DESC LIMIT 1), "
    "up AS (UPDATE activity_chain c SET anchor = coalesce(last.hash, c.anchor), anchor_id = last.id FROM "
    "last "
    "WHERE c.business_id = $1 RETURNING 1) "
    "SELECT count(*) FROM del";
/* Any fixed number: the advisory lock that lets one process prune at a time. */
#define PRUNE_LOCK "7351082461"
/* before_id = INT64_MAX for the first page, so one statement (and one index range) serves all. */
static const char sql_activity[] =
    "SELECT id, event_id, business_id, user_id, event, "
    "floor(extract(epoch FROM created_at) * 1000)::bigint AS ts_ms, host(client_ip) AS ip, "
    "details::text AS details FROM activity_log "
    "WHERE business_id = $1 AND id < $2::bigint ORDER BY id DESC LIMIT $3::bigint";

/* The details as a parameter for a jsonb column: the text when it is one JSON object that jsonb
 * takes, else "{}". json-c checks the syntax and UTF-8; jsonb also refuses the escapes \u0000
 * and lone surrogates, so every surrogate escape is refused here (our scripts never write one:
 * they send UTF-8 as it is). */
static const char *
details_param(const char *d)
{
    size_t len = strnlen(d, GK_EVENT_DETAILS_BUF);

    if (len == GK_EVENT_DETAILS_BUF)
        return "{}";
    for (size_t i = 0; i + 1 < len; i++) {
        if (d[i] != '\\')
            continue;
        i++;
        if (d[i] == 'u' && (strncmp(d + i + 1, "0000", 4) == 0 || d[i + 1] == 'd' || d[i + 1] == 'D'))
            return "{}";
    }
    return gk_json_valid_object(d, len) ? d : "{}";
}

/* Copies JSON text without the whitespace outside strings (jsonb writes a space after every ':'
 * and ','). False when it does not fit in outlen. */
static bool
compact_json(const char *s, char *out, size_t outlen)
{
    bool in_str = false, esc = false;
    size_t n = 0;

    for (; *s != '\0'; s++) {
        char c = *s;

        if (in_str) {
            if (esc)
                esc = false;
            else if (c == '\\')
                esc = true;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
            continue;
        }
        if (n + 1 >= outlen)
            return false;
        out[n++] = c;
    }
    out[n] = '\0';
    return true;
}

/* "(0,$1,$2,...),(...) ..., the rest" for k rows into sql (room for k * EVENT_ROW_SQL_MAX bytes
 * and the tail). */
static void
events_values_sql(char *sql, size_t k)
{
    size_t n = 0;

    for (size_t r = 0; r < k; r++) {
        int p = (int)(r * EVENT_PARAMS);
        int w = snprintf(
            sql + n, EVENT_ROW_SQL_MAX,
            "%s(%zu,$%d::text,$%d::text,$%d::text,$%d::text,to_timestamp($%d::bigint/1000.0),$%d::inet,"
            "$%d::jsonb)",
            r > 0 ? "," : "", r, p + 1, p + 2, p + 3, p + 4, p + 5, p + 6, p + 7);

        GK_ASSERT(w > 0 && w < EVENT_ROW_SQL_MAX);
        n += (size_t)w;
    }
    memcpy(sql + n, sql_events_tail, sizeof(sql_events_tail));
}

/* Sends one INSERT of k rows whose parameters are filled in; sql starts with sql_events_head and
 * has room for the rest. The full size runs as the prepared statement, prepared on first use. */
static enum gk_err
insert_rows(struct gk_pg *pg, char *sql, size_t k, const char *const *params)
{
    int nparams = (int)(k * EVENT_PARAMS);
    struct gk_pg_res *res = NULL;
    enum gk_err rc = GK_OK;

    if (k < EVENTS_PER_STMT || !gk_pg_prepared(pg, EVENTS_STMT_NAME))
        events_values_sql(sql + sizeof(sql_events_head) - 1, k);
    if (k < EVENTS_PER_STMT) {
        rc = gk_pg_exec(pg, sql, nparams, params, &res);
    } else {
        if (!gk_pg_prepared(pg, EVENTS_STMT_NAME))
            rc = gk_pg_prepare(pg, EVENTS_STMT_NAME, sql, nparams);
        if (rc == GK_OK)
            rc = gk_pg_exec_prepared(pg, EVENTS_STMT_NAME, nparams, params, &res);
    }
    gk_pg_res_free(res);
    return rc;
}

/* Locks the chain heads of the businesses of events[0..n) (sql_lock_heads). */
static enum gk_err
lock_heads(struct gk_pg *pg, const struct gk_event *events, size_t n)
{
    size_t len = 3, o = 0;
    struct gk_pg_res *res = NULL;
    const char *p[1];
    enum gk_err rc;
    char *arr;

    for (size_t i = 0; i < n; i++)
        len += strlen(events[i].business) + 3;
    arr = gk_xmalloc(len);
    arr[o++] = '{';
    for (size_t i = 0; i < n; i++) {
        /* Consecutive events mostly share their business: each run is named once. */
        if (i > 0 && strcmp(events[i].business, events[i - 1].business) == 0)
            continue;
        /* Quoted: ids hold no quote or backslash (gk_id_valid). */
        o += (size_t)sprintf(arr + o, "%s\"%s\"", o > 1 ? "," : "", events[i].business);
    }
    arr[o++] = '}';
    arr[o] = '\0';
    p[0] = arr;
    rc = gk_pg_exec(pg, sql_lock_heads, 1, p, &res);
    gk_pg_res_free(res);
    free(arr);
    return rc;
}

enum gk_err
gk_activitylog_insert(struct gk_pg *pg, const struct gk_event *events, size_t n)
{
    size_t cap = n < EVENTS_PER_STMT ? n : EVENTS_PER_STMT;
    const char **params = NULL;
    char *ts = NULL; /* cap texts of GK_PG_I64_BUF bytes */
    char *sql = NULL;
    int64_t now = gk_now_ms();
    enum gk_err rc;

    if (n == 0)
        return GK_OK;
    params = gk_xmalloc(cap * EVENT_PARAMS * sizeof(*params));
    ts = gk_xmalloc(cap * GK_PG_I64_BUF);
    sql = gk_xmalloc(sizeof(sql_events_head) + cap * EVENT_ROW_SQL_MAX + sizeof(sql_events_tail));
    memcpy(sql, sql_events_head, sizeof(sql_events_head) - 1);

    rc = gk_pg_begin(pg);
    if (rc != GK_OK)
        goto out;
    rc = lock_heads(pg, events, n);
    for (size_t done = 0, k; rc == GK_OK && done < n; done += k) {
        k = n - done < cap ? n - done : cap;
        for (size_t r = 0; r < k; r++) {
            const struct gk_event *e = &events[done + r];
            const char **p = &params[r * EVENT_PARAMS];
            char *t = ts + r * GK_PG_I64_BUF;

            snprintf(t, GK_PG_I64_BUF, "%" PRId64, e->ts_ms >= 0 && e->ts_ms <= TS_MS_MAX ? e->ts_ms : now);
            p[0] = e->id;
            p[1] = e->business;
            p[2] = e->user[0] != '\0' ? e->user : NULL;
            p[3] = e->type;
            p[4] = t;
            p[5] = gk_pg_inet_param(e->ip);
            p[6] = details_param(e->details);
        }
        rc = insert_rows(pg, sql, k, params);
    }
    rc = gk_pg_end(pg, rc);
out:
    free(sql);
    free(ts);
    free(params);
    /* Bad values (class 22) are no excuse here: the batch as a whole failed. */
    return rc == GK_OK ? GK_OK : GK_EPG;
}

/* Copies a column into dst, "" for NULL; longer values are cut. */
static void
copy_col(const struct gk_pg_res *res, int row, int col, char *dst, size_t dstlen)
{
    gk_strlcpy(dst, gk_pg_res_isnull(res, row, col) ? "" : gk_pg_res_value(res, row, col), dstlen);
}

/* Reads row i of sql_activity's result into *out; false when its id or time is malformed. */
static bool
read_activity_row(const struct gk_pg_res *res, int i, struct gk_activitylog_row *out)
{
    memset(out, 0, sizeof(*out));
    if (gk_parse_i64(gk_pg_res_value(res, i, 0), 1, INT64_MAX, &out->id) != GK_OK ||
        gk_parse_i64(gk_pg_res_value(res, i, 5), 0, INT64_MAX, &out->ev.ts_ms) != GK_OK)
        return false;
    copy_col(res, i, 1, out->ev.id, sizeof(out->ev.id));
    copy_col(res, i, 2, out->ev.business, sizeof(out->ev.business));
    copy_col(res, i, 3, out->ev.user, sizeof(out->ev.user));
    copy_col(res, i, 4, out->ev.type, sizeof(out->ev.type));
    copy_col(res, i, 6, out->ev.ip, sizeof(out->ev.ip));
    if (!compact_json(gk_pg_res_value(res, i, 7), out->ev.details, sizeof(out->ev.details)))
        gk_strlcpy(out->ev.details, "{}", sizeof(out->ev.details));
    return true;
}

enum gk_err
gk_activitylog_read(struct gk_pg *pg, const char *business, int64_t before_id, uint32_t limit,
                    gk_activitylog_fn fn, void *arg)
{
    char before[GK_PG_I64_BUF], lim[GK_PG_U32_BUF];
    const char *params[3] = {business, before, lim};
    struct gk_activitylog_row row;
    struct gk_pg_res *res = NULL;
    enum gk_err rc;

    snprintf(before, sizeof(before), "%" PRId64, before_id > 0 ? before_id : INT64_MAX);
    snprintf(lim, sizeof(lim), "%" PRIu32, limit);
    rc = gk_pg_exec(pg, sql_activity, (int)GK_ARRAY_LEN(params), params, &res);
    if (rc != GK_OK)
        goto out;
    /* Every row is checked before fn sees any, so an error never leaves half a page behind. */
    for (int i = 0; i < gk_pg_res_rows(res); i++) {
        if (gk_pg_res_cols(res) != 8 || !read_activity_row(res, i, &row)) {
            gk_pg_set_error(pg, "postgres: malformed row in activity_log");
            rc = GK_EPG;
            goto out;
        }
    }
    for (int i = 0; i < gk_pg_res_rows(res); i++) {
        read_activity_row(res, i, &row); /* checked above */
        fn(arg, &row);
    }
out:
    gk_pg_res_free(res);
    return rc;
}

/* Prunes one business, batch by batch, until a batch deletes fewer or the time is up. */
static enum gk_err
prune_business(struct gk_pg *pg, const char *business, const char *days, int64_t until_ms, int64_t *deleted)
{
    char b[GK_PG_U32_BUF];
    const char *params[3] = {business, days, b};
    struct gk_pg_res *res = NULL;
    enum gk_err rc;
    int64_t n;

    snprintf(b, sizeof(b), "%d", GK_ACTIVITYLOG_PRUNE_BATCH);
    do {
        gk_pg_res_free(res);
        res = NULL;
        rc = gk_pg_exec(pg, sql_prune, 3, params, &res);
        if (rc != GK_OK)
            break;
        n = strtoll(gk_pg_res_value(res, 0, 0), NULL, 10);
        *deleted += n;
    } while (n == GK_ACTIVITYLOG_PRUNE_BATCH && gk_mono_ms() < until_ms);
    gk_pg_res_free(res);
    return rc;
}

enum gk_err
gk_activitylog_prune(struct gk_pg *pg, uint32_t days, int64_t budget_ms, int64_t *deleted)
{
    char d[GK_PG_U32_BUF], skip[PRUNE_SKIP_MAX * (GK_ID_MAX + 3) + 3];
    struct gk_pg_res *res = NULL, *biz = NULL;
    int64_t until = gk_mono_ms() + budget_ms;
    int skipped = 0;
    enum gk_err rc;

    *deleted = 0;
    rc = gk_pg_exec(pg, "SELECT pg_try_advisory_lock(" PRUNE_LOCK ")", 0, NULL, &res);
    if (rc != GK_OK || strcmp(gk_pg_res_value(res, 0, 0), "t") != 0)
        goto out;
    snprintf(d, sizeof(d), "%" PRIu32, days);
    /* A business whose oldest row sits behind a newer one in chain order gives nothing now (its
     * prefix stops there): the pass skips it, and a later pass finds its prefix old enough. */
    skip[0] = '{';
    skip[1] = '\0';
    while (rc == GK_OK && gk_mono_ms() < until) {
        const char *params[2] = {d, NULL};
        int64_t before = *deleted;

        strcat(skip, "}");
        params[1] = skip;
        gk_pg_res_free(biz);
        biz = NULL;
        rc = gk_pg_exec(pg, sql_prune_next, 2, params, &biz);
        skip[strlen(skip) - 1] = '\0';
        if (rc != GK_OK || gk_pg_res_rows(biz) == 0)
            break;
        rc = prune_business(pg, gk_pg_res_value(biz, 0, 0), d, until, deleted);
        if (rc == GK_OK && *deleted == before) {
            if (skipped == PRUNE_SKIP_MAX)
                break;
            /* Ids are [A-Za-z0-9._:@-]: nothing to escape inside the quotes. */
            snprintf(skip + strlen(skip), sizeof(skip) - strlen(skip), "%s\"%s\"", skipped > 0 ? "," : "",
                     gk_pg_res_value(biz, 0, 0));
            skipped++;
        }
    }
    /* A connection that broke meanwhile took the lock with it. */
    if (gk_pg_connected(pg)) {
        gk_pg_res_free(res);
        res = NULL;
        if (gk_pg_exec(pg, "SELECT pg_advisory_unlock(" PRUNE_LOCK ")", 0, NULL, &res) != GK_OK)
            gk_pg_disconnect(pg); /* ending the session releases the lock */
    }
out:
    gk_pg_res_free(biz);
    gk_pg_res_free(res);
    return rc;
}
