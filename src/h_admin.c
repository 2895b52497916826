/* SPDX-License-Identifier: MIT */
/*
 * h_admin.c -- POST /businesses, GET /config, POST /config, GET /stats, GET /activity,
 * GET /stats/history.
 * Auth is "Authorization: Bearer <key>": the operator key (ADMIN_TOKEN) or the business's own
 * admin key. Keys are compared as SHA-256 hashes in constant time; only hashes are stored.
 * Reads come from the in-memory cache; writes go to PostgreSQL in one statement and then into
 * this node's cache (other nodes hear of it through NOTIFY). The same statement records the
 * change in the activity log, with the socket peer as client IP. /stats reads Redis in one round
 * trip; /activity pages through PostgreSQL's activity_log.
 */
#include "gk/handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "gk/activitylog.h"
#include "gk/cfgstore.h"
#include "gk/jsonutil.h"
#include "gk/log.h"
#include "gk/pg.h"
#include "gk/store.h"

#define ACTIVITY_LIMIT_DEFAULT 100
#define ACTIVITY_LIMIT_MAX 1000

enum auth { AUTH_NONE, AUTH_OPERATOR, AUTH_BUSINESS };

static enum auth
authenticate(const struct gk_ctx *ctx, const struct gk_req *req)
{
    size_t len;
    const char *key = gk_bearer(req, &len);

    if (key == NULL)
        return AUTH_NONE;
    if (gk_key_matches_hash(key, len, ctx->app->operator_key_hash))
        return AUTH_OPERATOR;
    if (ctx->biz != NULL && gk_key_matches_hash(key, len, ctx->biz->admin_key_hash))
        return AUTH_BUSINESS;
    return AUTH_NONE;
}

static void
reply_unauthorized(struct gk_resp *resp)
{
    gk_resp_header(resp, "WWW-Authenticate", "Bearer");
    gk_reply_error(resp, 401, "unauthorized", "A valid admin key is required (Authorization: Bearer <key>).",
                   NULL);
}

/* Header, then key, then business: a caller without a valid key learns nothing about which
 * businesses exist. True when the handler may go on. Every per-business admin route starts here. */
static bool
config_preamble(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp)
{
    if (ctx->biz_header != NULL && gk_id_valid(ctx->biz_header, strlen(ctx->biz_header)) &&
        authenticate(ctx, req) == AUTH_NONE) {
        reply_unauthorized(resp);
        return false;
    }
    return gk_need_business(ctx, resp);
}

static void
reply_config(struct gk_resp *resp, const char *message, const struct gk_bizconf *c)
{
    struct json_object *o = json_object_new_object(), *conf = json_object_new_object();

    gk_bizconf_to_json(c, conf);
    json_object_object_add(o, "message", json_object_new_string(message));
    json_object_object_add(o, "updated_config", conf);
    gk_reply_json(resp, 200, o);
}

void
gk_h_config_get(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp)
{
    if (config_preamble(ctx, req, resp))
        reply_config(resp, "Configuration retrieved successfully", &ctx->biz->conf);
}

void
gk_h_config_post(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp)
{
    struct gk_bizconf_patch patch;
    struct gk_business b;
    char field[64], msg[160];
    bool json_error = false;
    enum gk_err rc;

    if (!config_preamble(ctx, req, resp))
        return;
    if (gk_bizconf_parse_patch(req->body, req->body_len, &patch, &json_error, field, sizeof(field), msg,
                               sizeof(msg)) != GK_OK) {
        if (json_error)
            gk_reply_error(resp, 400, "invalid_json", "The body must be one JSON object.", NULL);
        else
            gk_reply_error(resp, 422, "invalid_config", msg, field);
        return;
    }
    rc = gk_cfgstore_update_config(ctx->db, ctx->biz->id, &patch, req->peer_ip, &b);
    switch (rc) {
    case GK_OK:
        break;
    case GK_ENOTFOUND:
        gk_reply_error(resp, 404, "unknown_business", "No business with this business_id.", NULL);
        return;
    case GK_EINVAL:
        gk_reply_error(resp, 422, "invalid_config", "The database refused a value.", NULL);
        return;
    default:
        GK_RLOG(GK_LOG_WARN, "admin", req->id, "msg=\"config update failed\" err=\"%s\"",
                gk_pg_errmsg(ctx->db));
        gk_reply_unavailable(resp, "PostgreSQL");
        return;
    }
    gk_confcache_put(ctx->app->cache, &b);
    GK_RLOG(GK_LOG_INFO, "admin", req->id, "msg=\"config updated\" business=%s version=%lld fields=%#x", b.id,
            (long long)b.version, patch.set);
    reply_config(resp, "Configuration updated successfully", &b.conf);
}

/* The business_id of a POST /businesses body; NULL after replying with the error. */
static const char *
new_business_id(struct json_object *body, struct gk_resp *resp)
{
    struct json_object *v = NULL;
    const char *id;

    json_object_object_foreach(body, key, val)
    {
        (void)val;
        if (strcmp(key, "business_id") != 0) {
            char msg[96], esc[40];

            snprintf(msg, sizeof(msg), "Unknown field \"%s\".", gk_log_escape(key, esc, sizeof(esc)));
            gk_reply_error(resp, 422, "invalid_field", msg, esc);
            return NULL;
        }
    }
    if (!json_object_object_get_ex(body, "business_id", &v) || !json_object_is_type(v, json_type_string)) {
        gk_reply_error(resp, 422, "invalid_field", "business_id is required and must be a string.",
                       "business_id");
        return NULL;
    }
    id = json_object_get_string(v);
    if (!gk_id_valid(id, (size_t)json_object_get_string_len(v))) {
        gk_reply_error(resp, 422, "invalid_field",
                       "business_id must be 1-128 characters of A-Z a-z 0-9 . _ : @ -.", "business_id");
        return NULL;
    }
    return id;
}

void
gk_h_business_create(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp)
{
    struct json_object *body = NULL, *o, *conf;
    char key[GK_ADMIN_KEY_BUF], hash[GK_SHA256_HEX_BUF];
    struct gk_business b;
    const char *id;

    if (authenticate(ctx, req) != AUTH_OPERATOR) {
        reply_unauthorized(resp);
        goto out;
    }
    body = gk_json_parse_object(req->body, req->body_len);
    if (body == NULL) {
        gk_reply_error(resp, 400, "invalid_json", "The body must be one JSON object.", NULL);
        goto out;
    }
    id = new_business_id(body, resp);
    if (id == NULL)
        goto out;
    if (gk_admin_key_new(key) != GK_OK) {
        gk_reply_error(resp, 500, "internal", "No randomness available for the admin key.", NULL);
        goto out;
    }
    gk_sha256_hex(key, strlen(key), hash);
    switch (gk_cfgstore_create_business(ctx->db, id, hash, req->peer_ip, &b)) {
    case GK_OK:
        break;
    case GK_EEXIST:
        gk_reply_error(resp, 409, "business_exists", "A business with this business_id already exists.",
                       NULL);
        goto out;
    default:
        GK_RLOG(GK_LOG_WARN, "admin", req->id, "msg=\"create business failed\" err=\"%s\"",
                gk_pg_errmsg(ctx->db));
        gk_reply_unavailable(resp, "PostgreSQL");
        goto out;
    }
    gk_confcache_put(ctx->app->cache, &b);
    GK_RLOG(GK_LOG_INFO, "admin", req->id, "msg=\"business created\" business=%s", b.id);
    o = json_object_new_object();
    conf = json_object_new_object();
    gk_bizconf_to_json(&b.conf, conf);
    json_object_object_add(o, "business_id", json_object_new_string(b.id));
    json_object_object_add(o, "admin_key", json_object_new_string(key));
    json_object_object_add(o, "config", conf);
    gk_reply_json(resp, 201, o);
out:
    explicit_bzero(key, sizeof(key));
    json_object_put(body);
}

/* JSON string of an RFC 3339 time, or JSON null for 0 (never). */
static struct json_object *
time_or_null(int64_t ms)
{
    char buf[32];

    if (ms <= 0)
        return NULL;
    gk_rfc3339(ms, buf, sizeof(buf));
    return json_object_new_string(buf);
}

/* A rate as a JSON number with at most two decimals ("12.5", "0"), not json-c's 17 digits.
 * Anything not a plausible rate (negative, NaN, infinite, absurdly large) is 0. */
static struct json_object *
rate_json(double v)
{
    char buf[32];
    size_t n;

    if (!(v > 0 && v < 1e15))
        v = 0;
    snprintf(buf, sizeof(buf), "%.2f", v);
    n = strlen(buf);
    while (buf[n - 1] == '0')
        buf[--n] = '\0';
    if (buf[n - 1] == '.')
        buf[--n] = '\0';
    return json_object_new_double_s(strtod(buf, NULL), buf);
}

/* {"window", "inversions", "kendall_tau", "wait_seconds": {"le": {"1": n, ..., "+Inf": n},
 * "count", "sum"}}: how far admissions stray from join order, and how long admitted users
 * waited (gk/fairness.h). */
static struct json_object *
fairness_json(const struct gk_stats_out *st)
{
    struct json_object *f = json_object_new_object(), *w = json_object_new_object(),
                       *le = json_object_new_object();
    char bound[24];

    for (size_t i = 0; i < GK_WAIT_BUCKETS; i++) {
        snprintf(bound, sizeof(bound), "%lld", (long long)gk_wait_bound_s(i));
        json_object_object_add(le, bound, json_object_new_int64(st->wait_le[i]));
    }
    json_object_object_add(le, "+Inf", json_object_new_int64(st->wait_le[GK_WAIT_BUCKETS]));
    json_object_object_add(w, "le", le);
    json_object_object_add(w, "count", json_object_new_int64(st->wait_le[GK_WAIT_BUCKETS]));
    json_object_object_add(w, "sum", json_object_new_double((double)st->wait_sum_ms / 1000.0));
    json_object_object_add(f, "window", json_object_new_int64(st->fair.n));
    json_object_object_add(f, "inversions", json_object_new_int64(st->fair.inversions));
    json_object_object_add(f, "kendall_tau", json_object_new_double(st->fair.tau));
    json_object_object_add(f, "wait_seconds", w);
    return f;
}

void
gk_h_stats(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp)
{
    struct gk_stats_out st;
    struct json_object *o;

    if (!config_preamble(ctx, req, resp))
        return;
    if (gk_store_stats(ctx->store, ctx->biz->id, &st) != GK_OK) {
        GK_RLOG(GK_LOG_WARN, "admin", req->id, "msg=\"stats failed\" err=\"%s\"",
                gk_store_errmsg(ctx->store));
        gk_reply_unavailable(resp, "Redis");
        return;
    }
    o = json_object_new_object();
    json_object_object_add(o, "waiting", json_object_new_int64(st.waiting));
    json_object_object_add(o, "ready", json_object_new_int64(st.ready));
    json_object_object_add(o, "admitted_total", json_object_new_int64(st.admitted_total));
    json_object_object_add(o, "enqueued_total", json_object_new_int64(st.enqueued_total));
    json_object_object_add(o, "last_admission_at", time_or_null(st.last_admission_ms));
    json_object_object_add(o, "admission_rate_per_min", rate_json(st.admit_rate * 60));
    json_object_object_add(o, "events_backlog", json_object_new_int64(st.events_backlog));
    json_object_object_add(o, "events_dropped", json_object_new_int64(st.events_dropped));
    json_object_object_add(o, "rate_limited_total", json_object_new_int64(st.rate_limited_total));
    json_object_object_add(o, "expired_total", json_object_new_int64(st.expired_total));
    json_object_object_add(o, "evicted_total", json_object_new_int64(st.evicted_total));
    json_object_object_add(o, "finished_total", json_object_new_int64(st.finished_total));
    json_object_object_add(o, "left_total", json_object_new_int64(st.left_total));
    json_object_object_add(o, "fairness", fairness_json(&st));
    gk_reply_json(resp, 200, o);
}

struct activity_page {
    struct json_object *rows; /* array, owned */
    int64_t last_id;
    uint32_t n;
};

static struct json_object *
string_or_null(const char *s)
{
    return s[0] != '\0' ? json_object_new_string(s) : NULL;
}

static void
add_activity_row(void *arg, const struct gk_activitylog_row *row)
{
    struct activity_page *page = arg;
    struct json_object *o = json_object_new_object();
    struct json_object *details = gk_json_parse_object(row->ev.details, strlen(row->ev.details));
    char created[32];

    gk_rfc3339(row->ev.ts_ms, created, sizeof(created));
    json_object_object_add(o, "id", json_object_new_int64(row->id));
    json_object_object_add(o, "event_id", json_object_new_string(row->ev.id));
    json_object_object_add(o, "event", json_object_new_string(row->ev.type));
    json_object_object_add(o, "user_id", string_or_null(row->ev.user));
    json_object_object_add(o, "client_ip", string_or_null(row->ev.ip));
    json_object_object_add(o, "created_at", json_object_new_string(created));
    /* Details too deep or too long for the reader show as {}, as they are stored. */
    json_object_object_add(o, "details", details != NULL ? details : json_object_new_object());
    json_object_array_add(page->rows, o);
    page->last_id = row->id;
    page->n++;
}

void
gk_h_activity(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp)
{
    struct activity_page page = {0};
    const char *v;
    uint32_t limit = ACTIVITY_LIMIT_DEFAULT;
    int64_t before_id = 0;
    struct json_object *o;

    if (!config_preamble(ctx, req, resp))
        return;
    v = gk_req_query(req, "limit");
    if (v != NULL && gk_parse_u32(v, 1, ACTIVITY_LIMIT_MAX, &limit) != GK_OK) {
        gk_reply_error(resp, 400, "invalid_query", "limit must be an integer from 1 to 1000.", "limit");
        return;
    }
    v = gk_req_query(req, "before_id");
    if (v != NULL && gk_parse_i64(v, 1, INT64_MAX, &before_id) != GK_OK) {
        gk_reply_error(resp, 400, "invalid_query", "before_id must be a positive integer.", "before_id");
        return;
    }
    page.rows = json_object_new_array();
    if (gk_activitylog_read(ctx->db, ctx->biz->id, before_id, limit, add_activity_row, &page) != GK_OK) {
        GK_RLOG(GK_LOG_WARN, "admin", req->id, "msg=\"activity read failed\" err=\"%s\"",
                gk_pg_errmsg(ctx->db));
        json_object_put(page.rows);
        gk_reply_unavailable(resp, "PostgreSQL");
        return;
    }
    o = json_object_new_object();
    json_object_object_add(o, "business_id", json_object_new_string(ctx->biz->id));
    json_object_object_add(o, "activity", page.rows);
    json_object_object_add(o, "next_before_id", page.n == limit ? json_object_new_int64(page.last_id) : NULL);
    gk_reply_json(resp, 200, o);
}

void
gk_h_stats_history(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp)
{
    struct gk_history_point *pts = NULL;
    const char *v;
    uint32_t minutes = 60;
    size_t n = 0;
    struct json_object *o, *arr;

    if (!config_preamble(ctx, req, resp))
        return;
    v = gk_req_query(req, "minutes");
    if (v != NULL && gk_parse_u32(v, 1, 60, &minutes) != GK_OK) {
        gk_reply_error(resp, 400, "invalid_query", "minutes must be an integer from 1 to 60.", "minutes");
        return;
    }
    pts = gk_xcalloc(GK_HISTORY_POINTS, sizeof(*pts));
    if (gk_store_history_read(ctx->store, ctx->biz->id, (size_t)minutes * 60000 / GK_HISTORY_INTERVAL_MS, pts,
                              &n) != GK_OK) {
        GK_RLOG(GK_LOG_WARN, "admin", req->id, "msg=\"history read failed\" err=\"%s\"",
                gk_store_errmsg(ctx->store));
        free(pts);
        gk_reply_unavailable(resp, "Redis");
        return;
    }
    o = json_object_new_object();
    arr = json_object_new_array();
    json_object_object_add(o, "interval_seconds", json_object_new_int(GK_HISTORY_INTERVAL_MS / 1000));
    for (size_t i = 0; i < n; i++) {
        struct json_object *p = json_object_new_object();
        char t[32];

        gk_rfc3339(pts[i].t_ms, t, sizeof(t));
        json_object_object_add(p, "t", json_object_new_string(t));
        json_object_object_add(p, "waiting", json_object_new_int64(pts[i].waiting));
        json_object_object_add(p, "ready", json_object_new_int64(pts[i].ready));
        json_object_object_add(p, "enqueued", json_object_new_int64(pts[i].enqueued));
        json_object_object_add(p, "admitted", json_object_new_int64(pts[i].admitted));
        json_object_array_add(arr, p);
    }
    json_object_object_add(o, "points", arr);
    free(pts);
    gk_reply_json(resp, 200, o);
}

bool
gk_need_admin(struct gk_ctx *ctx, const struct gk_req *req, struct gk_resp *resp)
{
    return config_preamble(ctx, req, resp);
}
