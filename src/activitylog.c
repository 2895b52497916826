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
#include <time.h>

#include "gk/crypto.h"
#include "gk/jsonutil.h"
#include "gk/pg.h"

/* Parameters per activity row, and rows per INSERT: 9000 parameters, far below PostgreSQL's
 * limit of 65535 per statement, and a whole batch of the worker in one statement. A full-size
 * INSERT is prepared once per connection: parsing and planning 1000 rows costs as much as
 * inserting them. A backlog is drained in full batches, so the smaller ones, sent as they are,
 * only come when there is time to spare. */
#define EVENT_PARAMS 9
#define EVENTS_PER_STMT 1000
#define EVENTS_STMT_NAME "gk_insert_events"
/* Longest row of VALUES: the fixed text and 9 placeholders of up to 4 digits, and a comma. */
#define EVENT_ROW_SQL_MAX 128
#define TS_MS_MAX INT64_C(253402300799999) /* 9999-12-31T23:59:59.999Z */
#define TS_BUF 80 /* "YYYY-MM-DDTHH:MM:SS.ffffffZ", with room for any int the compiler sees */
#define HASH_PARAM_BUF (2 + 2 * GK_SHA256_LEN + 1) /* "\x" + hex */

/* A batch is written hash-chained (sql/006_activity_hash.sql) under its businesses' head locks,
 * taken first in the same transaction (sql_lock_heads, in a fixed order: no deadlock between two
 * workers), which answer the heads. Under the lock no other writer of the business comes in
 * between, so the hashes are computed here, in C: a chain in SQL costs a function call per row
 * (docs/BENCHMARKS.md). sql_prep answers, in the batch's order, whether each event is written
 * already (a redelivered batch), the ids to draw and what the canonical content takes from
 * PostgreSQL's own text forms: details as jsonb writes them (stored as that text, which jsonb
 * reads back to the same value and writes back the same) and host(client_ip). created_at is sent
 * as the exact text the canonical content has. The rows then go in with their hashes (the trigger
 * leaves rows with a hash alone) and the heads move. */
static const char sql_lock_heads[] =
    "INSERT INTO activity_chain (business_id) SELECT DISTINCT unnest($1::text[]) ORDER BY 1 "
    "ON CONFLICT (business_id) DO UPDATE SET head = activity_chain.head RETURNING business_id, head";
/* Two forms: without the check (a unique violation then fails the batch, which is tried again with
 * it: a redelivered batch is rare, the check costs an index lookup per row), and with it. */
#define SQL_PREP(written)                                                                                    \
    "SELECT nextval('activity_log_id_seq'), " written ", u.d::jsonb::text, host(u.ip::inet) "                \
    "FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS u (e, d, ip, ord) ORDER BY u.ord"
static const char *const sql_prep[2] = {
    SQL_PREP("false"),
    SQL_PREP("(SELECT a.id FROM activity_log a WHERE a.event_id = u.e) IS NOT NULL"),
};
static const char sql_events_head[] = "INSERT INTO activity_log (id, event_id, business_id, user_id, event, "
                                      "created_at, client_ip, details, hash) VALUES ";
static const char sql_move_heads[] =
    "UPDATE activity_chain h SET head = decode(x.head, 'hex') "
    "FROM unnest($1::text[], $2::text[]) AS x (business_id, head) WHERE h.business_id = x.business_id";
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

/* "($1,...,$9),(...)" for k rows into sql (room for k * EVENT_ROW_SQL_MAX bytes). */
static void
events_values_sql(char *sql, size_t k)
{
    size_t n = 0;

    for (size_t r = 0; r < k; r++) {
        int p = (int)(r * EVENT_PARAMS);
        int w = snprintf(sql + n, EVENT_ROW_SQL_MAX,
                         "%s($%d::bigint,$%d,$%d,$%d,$%d,$%d::timestamptz,$%d::inet,$%d::jsonb,$%d::bytea)",
                         r > 0 ? "," : "", p + 1, p + 2, p + 3, p + 4, p + 5, p + 6, p + 7, p + 8, p + 9);

        GK_ASSERT(w > 0 && w < EVENT_ROW_SQL_MAX);
        n += (size_t)w;
    }
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

/* Appends s (NULL: a NULL element) to the text[] literal being built in t. */
static void
array_add(struct gk_sbuf *t, const char *s)
{
    gk_sbuf_add(t, t->len > 1 ? "," : "", t->len > 1 ? 1 : 0);
    if (s == NULL) {
        gk_sbuf_add(t, "NULL", 4);
        return;
    }
    gk_sbuf_add(t, "\"", 1);
    for (const char *c = s; *c != '\0'; c++) {
        if (*c == '"' || *c == '\\')
            gk_sbuf_add(t, "\\", 1);
        gk_sbuf_add(t, c, 1);
    }
    gk_sbuf_add(t, "\"", 1);
}

static void
array_begin(struct gk_sbuf *t)
{
    t->len = 0;
    gk_sbuf_add(t, "{", 1);
}

/* One business of the batch: its chain head as locked, then as moved by the batch's rows. */
struct head {
    const char *business; /* borrowed from the events */
    unsigned char hash[GK_SHA256_LEN];
    bool empty; /* the chain starts here (head '') */
};

/* Locks the chain heads of the businesses of events[0..n) (sql_lock_heads) and reads them into
 * heads (room for n), *nheads of them. */
static enum gk_err
lock_heads(struct gk_pg *pg, const struct gk_event *events, size_t n, struct head *heads, size_t *nheads)
{
    struct gk_sbuf arr = {0};
    struct gk_pg_res *res = NULL;
    const char *p[1];
    enum gk_err rc;

    array_begin(&arr);
    for (size_t i = 0; i < n; i++) {
        /* Consecutive events mostly share their business: each run is named once. */
        if (i == 0 || strcmp(events[i].business, events[i - 1].business) != 0)
            array_add(&arr, events[i].business);
    }
    gk_sbuf_add(&arr, "}", 1);
    p[0] = arr.s;
    rc = gk_pg_exec(pg, sql_lock_heads, 1, p, &res);
    *nheads = 0;
    /* One row per business named, so at most n. */
    for (int r = 0; rc == GK_OK && r < gk_pg_res_rows(res) && (size_t)r < n; r++) {
        const char *b = gk_pg_res_value(res, r, 0), *h = gk_pg_res_value(res, r, 1);
        struct head *hd = &heads[*nheads];

        hd->business = NULL;
        for (size_t i = 0; i < n && hd->business == NULL; i++)
            if (strcmp(events[i].business, b) == 0)
                hd->business = events[i].business;
        hd->empty = strcmp(h, "\\x") == 0;
        if (hd->business == NULL || strncmp(h, "\\x", 2) != 0 ||
            (!hd->empty &&
             (strlen(h) != HASH_PARAM_BUF - 1 || gk_unhex(h + 2, hd->hash, GK_SHA256_LEN) != GK_OK))) {
            gk_pg_set_error(pg, "postgres: malformed activity_chain head of %s", b);
            rc = GK_EPG;
        }
        (*nheads)++;
    }
    gk_pg_res_free(res);
    free(arr.s);
    return rc;
}

static struct head *
head_of(struct head *heads, size_t nheads, const char *business)
{
    for (size_t i = 0; i < nheads; i++)
        if (strcmp(heads[i].business, business) == 0)
            return &heads[i];
    return NULL;
}

/* Runs sql_prep for events[0..n): n rows in their order (id, written already (false unless check),
 * details, host). */
static enum gk_err
prep_rows(struct gk_pg *pg, const struct gk_event *events, size_t n, bool check, struct gk_pg_res **res)
{
    struct gk_sbuf a[3] = {{0}};
    const char *p[3];
    enum gk_err rc;

    for (size_t k = 0; k < 3; k++)
        array_begin(&a[k]);
    for (size_t i = 0; i < n; i++) {
        array_add(&a[0], events[i].id);
        array_add(&a[1], details_param(events[i].details));
        array_add(&a[2], gk_pg_inet_param(events[i].ip));
    }
    for (size_t k = 0; k < 3; k++) {
        gk_sbuf_add(&a[k], "}", 1);
        p[k] = a[k].s;
    }
    rc = gk_pg_exec(pg, sql_prep[check], 3, p, res);
    if (rc == GK_OK && (gk_pg_res_rows(*res) != (int)n || gk_pg_res_cols(*res) != 4)) {
        gk_pg_set_error(pg, "postgres: malformed answer to the activity batch");
        rc = GK_EPG;
    }
    for (size_t k = 0; k < 3; k++)
        free(a[k].s);
    return rc;
}

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

/* created_at as the canonical content writes it (and PostgreSQL reads it exactly). */
static void
ts_text(int64_t ms, char out[TS_BUF])
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;

    gmtime_r(&s, &tm);
    snprintf(out, TS_BUF, "%04d-%02d-%02dT%02d:%02d:%02d.%03d000Z", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

/* One row to insert: the texts its parameters point to. */
struct row {
    char id[GK_PG_I64_BUF];
    char ts[TS_BUF];
    char hash[HASH_PARAM_BUF];
};

/* hash = SHA-256(head || canonical content) (sql/006_activity_hash.sql); moves head. canon is a
 * scratch buffer the call may grow. */
static void
chain_row(struct head *head, const struct gk_event *e, const struct row *r, const char *host,
          const char *details, struct gk_sbuf *canon, char hash_param[HASH_PARAM_BUF])
{
    const char *parts[8] = {r->id, e->id, e->business, e->user, e->type, r->ts, host, details};

    canon->len = 0;
    if (!head->empty)
        gk_sbuf_add(canon, (const char *)head->hash, GK_SHA256_LEN);
    for (size_t i = 0; i < GK_ARRAY_LEN(parts); i++) {
        if (i > 0)
            gk_sbuf_add(canon, "\n", 1);
        gk_sbuf_add(canon, parts[i], strlen(parts[i]));
    }
    gk_sha256(canon->s, canon->len, head->hash);
    head->empty = false;
    memcpy(hash_param, "\\x", 2);
    gk_hex(head->hash, GK_SHA256_LEN, hash_param + 2);
    hash_param[HASH_PARAM_BUF - 1] = '\0';
}

/* Moves the heads of the batch's businesses (sql_move_heads). */
static enum gk_err
move_heads(struct gk_pg *pg, const struct head *heads, size_t nheads)
{
    struct gk_sbuf a[2] = {{0}};
    struct gk_pg_res *res = NULL;
    char hex[2 * GK_SHA256_LEN + 1];
    const char *p[2];
    enum gk_err rc;

    array_begin(&a[0]);
    array_begin(&a[1]);
    for (size_t i = 0; i < nheads; i++) {
        if (heads[i].empty)
            continue;
        gk_hex(heads[i].hash, GK_SHA256_LEN, hex);
        hex[2 * GK_SHA256_LEN] = '\0';
        array_add(&a[0], heads[i].business);
        array_add(&a[1], hex);
    }
    gk_sbuf_add(&a[0], "}", 1);
    gk_sbuf_add(&a[1], "}", 1);
    p[0] = a[0].s;
    p[1] = a[1].s;
    rc = gk_pg_exec(pg, sql_move_heads, 2, p, &res);
    gk_pg_res_free(res);
    free(a[0].s);
    free(a[1].s);
    return rc;
}

/* Writes events[0..n), chained, in the open transaction: with check, only those not written yet;
 * else all, failing when one was. */
static enum gk_err
insert_chained(struct gk_pg *pg, const struct gk_event *events, size_t n, bool check)
{
    size_t cap = n < EVENTS_PER_STMT ? n : EVENTS_PER_STMT, nheads = 0, k = 0, next_id = 0;
    const char **params = gk_xmalloc(cap * EVENT_PARAMS * sizeof(*params));
    struct row *rows = gk_xmalloc(cap * sizeof(*rows));
    struct head *heads = gk_xmalloc(n * sizeof(*heads));
    int64_t *ids = gk_xmalloc(n * sizeof(*ids));
    char *sql = gk_xmalloc(sizeof(sql_events_head) + cap * EVENT_ROW_SQL_MAX);
    struct gk_pg_res *prep = NULL;
    struct gk_sbuf canon = {0};
    int64_t now = gk_now_ms();
    enum gk_err rc;

    memcpy(sql, sql_events_head, sizeof(sql_events_head) - 1);
    rc = lock_heads(pg, events, n, heads, &nheads);
    if (rc == GK_OK)
        rc = prep_rows(pg, events, n, check, &prep);
    for (size_t i = 0; rc == GK_OK && i < n; i++) {
        if (gk_parse_i64(gk_pg_res_value(prep, (int)i, 0), 1, INT64_MAX, &ids[i]) != GK_OK) {
            gk_pg_set_error(pg, "postgres: malformed activity id");
            rc = GK_EPG;
        }
    }
    /* The ids go to the new events in the batch's order, so id order is the batch's order. */
    if (rc == GK_OK)
        qsort(ids, n, sizeof(*ids), cmp_i64);
    for (size_t i = 0; rc == GK_OK && i < n; i++) {
        const struct gk_event *e = &events[i];
        struct head *h = head_of(heads, nheads, e->business);
        const char **p = &params[k * EVENT_PARAMS];
        struct row *r = &rows[k];

        if (strcmp(gk_pg_res_value(prep, (int)i, 1), "t") == 0)
            continue;
        if (h == NULL) {
            gk_pg_set_error(pg, "postgres: no activity_chain head of %s", e->business);
            rc = GK_EPG;
            break;
        }
        snprintf(r->id, sizeof(r->id), "%" PRId64, ids[next_id++]);
        ts_text(e->ts_ms >= 0 && e->ts_ms <= TS_MS_MAX ? e->ts_ms : now, r->ts);
        chain_row(h, e, r, gk_pg_res_value(prep, (int)i, 3), gk_pg_res_value(prep, (int)i, 2), &canon,
                  r->hash);
        p[0] = r->id;
        p[1] = e->id;
        p[2] = e->business;
        p[3] = e->user[0] != '\0' ? e->user : NULL;
        p[4] = e->type;
        p[5] = r->ts;
        p[6] = gk_pg_inet_param(e->ip);
        p[7] = gk_pg_res_value(prep, (int)i, 2);
        p[8] = r->hash;
        if (++k == cap) {
            rc = insert_rows(pg, sql, k, params);
            k = 0;
        }
    }
    if (rc == GK_OK && k > 0)
        rc = insert_rows(pg, sql, k, params);
    if (rc == GK_OK && next_id > 0)
        rc = move_heads(pg, heads, nheads);
    gk_pg_res_free(prep);
    free(canon.s);
    free(sql);
    free(ids);
    free(heads);
    free(rows);
    free(params);
    return rc;
}

enum gk_err
gk_activitylog_insert(struct gk_pg *pg, const struct gk_event *events, size_t n)
{
    enum gk_err rc;

    if (n == 0)
        return GK_OK;
    rc = gk_pg_begin(pg);
    if (rc == GK_OK)
        rc = gk_pg_end(pg, insert_chained(pg, events, n, false));
    /* Maybe written already (redelivered): once more, leaving those out. */
    if (rc != GK_OK && gk_pg_connected(pg)) {
        rc = gk_pg_begin(pg);
        if (rc == GK_OK)
            rc = gk_pg_end(pg, insert_chained(pg, events, n, true));
    }
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
