/* SPDX-License-Identifier: MIT */
/* schedule.c -- see gk/schedule.h for the contract. Statements go through gk/pg.h. */
#include "gk/schedule.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "gk/bizconf.h"
#include "gk/jsonutil.h"

static const char *const conf_names[GK_SC_N] = {"admission_limit", "admission_frequency", "max_active_users",
                                                "ready_ttl_seconds"};
static const enum gk_bc_field conf_fields[GK_SC_N] = {GK_BC_ADMISSION_LIMIT, GK_BC_ADMISSION_FREQUENCY,
                                                      GK_BC_MAX_ACTIVE_USERS, GK_BC_READY_TTL_SECONDS};

#define MS(col) "round(extract(epoch FROM " col ") * 1000)::bigint"
#define EVENT_COLS                                                                                           \
    "id, business_id, name, " MS("prequeue_opens_at") " AS pq, " MS(                                         \
        "opens_at") " AS op, "                                                                               \
                    "coalesce(" MS(                                                                          \
                        "ends_at") ", 0) AS en, admission_limit, admission_frequency, max_active_users, "    \
                                   "ready_ttl_seconds, server_seed, seed_commitment, cancelled_at IS NOT "   \
                                   "NULL AS cancelled, "                                                     \
                                   "drawn_at IS NOT NULL AS drawn, coalesce(participants_digest, '') AS "    \
                                   "digest, "                                                                \
                                   "coalesce(draw_seed, '') AS dseed, coalesce(participants, 0) AS np"

/* One statement under the business's lock (taken first, in the same transaction): the overlap
 * check sees every event committed before it. biz = 0: no such business; ins = 0: overlap. */
static const char sql_lock[] = "SELECT pg_advisory_xact_lock(hashtext('gk-events:' || $1))";
static const char sql_insert[] =
    "WITH b AS (SELECT id FROM businesses WHERE id = $2), "
    "o AS (SELECT 1 FROM events WHERE business_id = $2 AND cancelled_at IS NULL AND "
    "tstzrange(prequeue_opens_at, ends_at) && "
    "tstzrange(to_timestamp($4::bigint / 1000.0), to_timestamp(nullif($6::bigint, 0) / 1000.0))), "
    "i AS (INSERT INTO events (id, business_id, name, prequeue_opens_at, opens_at, ends_at, "
    "admission_limit, admission_frequency, max_active_users, ready_ttl_seconds, server_seed, "
    "seed_commitment) SELECT $1, b.id, $3, to_timestamp($4::bigint / 1000.0), "
    "to_timestamp($5::bigint / 1000.0), to_timestamp(nullif($6::bigint, 0) / 1000.0), $7::integer, "
    "$8::integer, $9::integer, $10::integer, $11, $12 FROM b WHERE NOT EXISTS (SELECT 1 FROM o) "
    "RETURNING id) "
    "SELECT (SELECT count(*) FROM b) AS biz, (SELECT count(*) FROM i) AS ins";
static const char sql_get[] =
    "SELECT " EVENT_COLS " FROM events WHERE id = $1 AND ($2::text IS NULL OR business_id = $2)";
static const char sql_list[] = "SELECT " EVENT_COLS " FROM events WHERE business_id = $1 "
                               "ORDER BY created_at DESC, id LIMIT 100";
_Static_assert(GK_SCHED_LIST_MAX == 100, "sql_list's LIMIT");
/* The worker's once a minute: events are few (admin-made), a scan is cheap. */
static const char sql_ahead[] = "SELECT " EVENT_COLS " FROM events WHERE cancelled_at IS NULL AND "
                                "drawn_at IS NULL AND opens_at > now() ORDER BY opens_at LIMIT $1::integer";
static const char sql_cancel[] = "UPDATE events SET cancelled_at = coalesce(cancelled_at, now()) "
                                 "WHERE id = $1 AND business_id = $2";
static const char sql_delete[] = "DELETE FROM events WHERE id = $1 AND business_id = $2";
static const char sql_draw_event[] =
    "UPDATE events SET participants_digest = $2, draw_seed = $3, participants = $4::integer, "
    "drawn_at = now() WHERE id = $1 AND drawn_at IS NULL";
static const char sql_draw_rows[] =
    "INSERT INTO event_participants (event_id, user_id, draw_key, place) "
    "SELECT $1, u, k, p::integer FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS t(u, k, p) "
    "ON CONFLICT DO NOTHING";
static const char sql_draw_keys[] = "SELECT coalesce(json_agg(draw_key ORDER BY place), '[]')::text "
                                    "FROM event_participants WHERE event_id = $1";
static const char sql_draw_users[] = "SELECT coalesce(json_agg(user_id ORDER BY user_id COLLATE \"C\"), "
                                     "'[]')::text FROM event_participants WHERE event_id = $1";

/* ---- parsing ---- */

enum gk_err
gk_sched_parse_time(const char *s, int64_t *ms)
{
    struct tm tm = {0};
    int64_t frac = 0, off = 0;
    const char *p;
    time_t t;

    if (strlen(s) > 40)
        return GK_EINVAL;
    p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (p == NULL || s[4] != '-' || s[10] != 'T')
        return GK_EINVAL;
    if (*p == '.') {
        int digits = 0;

        for (p++; *p >= '0' && *p <= '9'; p++, digits++) {
            if (digits < 3)
                frac = frac * 10 + (*p - '0');
        }
        if (digits == 0)
            return GK_EINVAL;
        for (; digits < 3; digits++)
            frac *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if ((*p == '+' || *p == '-') && p[1] >= '0' && p[1] <= '2' && p[2] >= '0' && p[2] <= '9' &&
               p[3] == ':' && p[4] >= '0' && p[4] <= '5' && p[5] >= '0' && p[5] <= '9') {
        off = ((p[1] - '0') * 10 + (p[2] - '0')) * 3600 + ((p[4] - '0') * 10 + (p[5] - '0')) * 60;
        if (*p == '-')
            off = -off;
        p += 6;
    } else {
        return GK_EINVAL;
    }
    if (*p != '\0' || tm.tm_year < 70 || tm.tm_year > 8099)
        return GK_EINVAL;
    t = timegm(&tm);
    if (t == (time_t)-1)
        return GK_EINVAL;
    *ms = ((int64_t)t - off) * 1000 + frac;
    return *ms > 0 ? GK_OK : GK_EINVAL;
}

void
gk_sched_time_str(int64_t ms, char out[GK_SCHED_TIME_BUF])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    size_t n;

    gmtime_r(&t, &tm);
    n = strftime(out, GK_SCHED_TIME_BUF, "%Y-%m-%dT%H:%M:%S", &tm);
    if (ms % 1000 != 0)
        snprintf(out + n, GK_SCHED_TIME_BUF - n, ".%03dZ", (int)(ms % 1000));
    else
        snprintf(out + n, GK_SCHED_TIME_BUF - n, "Z");
}

static bool
fail(char *field, size_t fieldlen, const char *f, char *msg, size_t msglen, const char *m)
{
    gk_strlcpy(field, f, fieldlen);
    gk_strlcpy(msg, m, msglen);
    return false;
}

/* The time in member key of body into *ms; absent or null is fine when optional (*ms = 0). */
static bool
parse_time_field(struct json_object *body, const char *key, bool optional, int64_t *ms, char *field,
                 size_t fieldlen, char *msg, size_t msglen)
{
    struct json_object *v = NULL;
    char m[128];

    *ms = 0;
    if (!json_object_object_get_ex(body, key, &v) || v == NULL) {
        if (optional)
            return true;
        snprintf(m, sizeof(m), "%s is required.", key);
        return fail(field, fieldlen, key, msg, msglen, m);
    }
    if (!json_object_is_type(v, json_type_string) ||
        gk_sched_parse_time(json_object_get_string(v), ms) != GK_OK) {
        snprintf(m, sizeof(m), "%s must be an RFC 3339 date-time, e.g. 2026-12-07T10:00:00Z.", key);
        return fail(field, fieldlen, key, msg, msglen, m);
    }
    return true;
}

/* The overrides object; each field an integer in its business config range. */
static bool
parse_conf(struct json_object *conf, struct gk_sched_event *out, char *field, size_t fieldlen, char *msg,
           size_t msglen)
{
    char m[160];

    if (!json_object_is_type(conf, json_type_object))
        return fail(field, fieldlen, "config", msg, msglen, "config must be an object.");
    json_object_object_foreach(conf, key, val)
    {
        int i = 0;
        uint32_t min, max, alt;
        int64_t v;

        while (i < GK_SC_N && strcmp(key, conf_names[i]) != 0)
            i++;
        if (i == GK_SC_N)
            return fail(field, fieldlen, "config", msg, msglen,
                        "config may only hold admission_limit, admission_frequency, max_active_users and "
                        "ready_ttl_seconds.");
        gk_bizconf_field_range(conf_fields[i], &min, &max, &alt);
        v = json_object_get_int64(val);
        if (!json_object_is_type(val, json_type_int) || ((v < min || v > max) && v != alt)) {
            snprintf(m, sizeof(m), "config.%s must be an integer from %u to %u.", conf_names[i], min, max);
            return fail(field, fieldlen, "config", msg, msglen, m);
        }
        out->conf_set[i] = true;
        out->conf[i] = (uint32_t)v;
    }
    return true;
}

/* The number of UTF-8 characters of s (valid UTF-8: json-c checked it). */
static size_t
utf8_chars(const char *s)
{
    size_t n = 0;

    for (; *s != '\0'; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static bool
parse_body(struct json_object *body, struct gk_sched_event *out, char *field, size_t fieldlen, char *msg,
           size_t msglen)
{
    static const char *const known[] = {"name", "prequeue_opens_at", "opens_at", "ends_at", "config"};
    struct json_object *v = NULL;

    json_object_object_foreach(body, key, val)
    {
        size_t i = 0;

        (void)val;
        while (i < GK_ARRAY_LEN(known) && strcmp(key, known[i]) != 0)
            i++;
        if (i == GK_ARRAY_LEN(known))
            return fail(field, fieldlen, "body", msg, msglen, "Unknown field in the event.");
    }
    if (!json_object_object_get_ex(body, "name", &v) || !json_object_is_type(v, json_type_string) ||
        json_object_get_string_len(v) == 0 || utf8_chars(json_object_get_string(v)) > GK_SCHED_NAME_MAX ||
        (size_t)json_object_get_string_len(v) != strlen(json_object_get_string(v)))
        return fail(field, fieldlen, "name", msg, msglen, "name is required: a string of 1-200 characters.");
    gk_strlcpy(out->name, json_object_get_string(v), sizeof(out->name));
    if (!parse_time_field(body, "prequeue_opens_at", false, &out->prequeue_ms, field, fieldlen, msg,
                          msglen) ||
        !parse_time_field(body, "opens_at", false, &out->opens_ms, field, fieldlen, msg, msglen) ||
        !parse_time_field(body, "ends_at", true, &out->ends_ms, field, fieldlen, msg, msglen))
        return false;
    if (out->prequeue_ms >= out->opens_ms)
        return fail(field, fieldlen, "opens_at", msg, msglen, "opens_at must come after prequeue_opens_at.");
    if (out->ends_ms != 0 && out->ends_ms <= out->opens_ms)
        return fail(field, fieldlen, "ends_at", msg, msglen, "ends_at must come after opens_at.");
    if (json_object_object_get_ex(body, "config", &v) && v != NULL)
        return parse_conf(v, out, field, fieldlen, msg, msglen);
    return true;
}

enum gk_err
gk_sched_parse(const char *body, size_t len, struct gk_sched_event *out, bool *json_error, char *field,
               size_t fieldlen, char *msg, size_t msglen)
{
    struct json_object *o = gk_json_parse_object(body, len);
    bool ok;

    *json_error = o == NULL;
    if (o == NULL)
        return GK_EINVAL;
    memset(out, 0, sizeof(*out));
    ok = parse_body(o, out, field, fieldlen, msg, msglen);
    json_object_put(o);
    return ok ? GK_OK : GK_EINVAL;
}

enum gk_err
gk_sched_new_ids(struct gk_sched_event *ev)
{
    unsigned char id[8], seed[GK_SHA256_LEN], commit[GK_SHA256_LEN];

    if (gk_random_bytes(id, sizeof(id)) != GK_OK || gk_random_bytes(seed, sizeof(seed)) != GK_OK)
        return GK_EINVAL;
    memcpy(ev->id, "ev_", 3);
    gk_hex(id, sizeof(id), ev->id + 3);
    gk_hex(seed, sizeof(seed), ev->server_seed);
    gk_sha256(seed, sizeof(seed), commit);
    gk_hex(commit, sizeof(commit), ev->seed_commitment);
    return GK_OK;
}

enum gk_sched_state
gk_sched_state_at(const struct gk_sched_event *ev, int64_t now_ms)
{
    if (ev->cancelled)
        return GK_SCHED_CANCELLED;
    if (now_ms < ev->prequeue_ms)
        return GK_SCHED_SCHEDULED;
    if (now_ms < ev->opens_ms)
        return GK_SCHED_PREQUEUE;
    if (ev->ends_ms == 0 || now_ms < ev->ends_ms)
        return GK_SCHED_OPEN;
    return GK_SCHED_ENDED;
}

const char *
gk_sched_state_name(enum gk_sched_state s)
{
    static const char *const names[] = {"scheduled", "prequeue", "open", "ended", "cancelled"};

    return names[s];
}

/* ---- PostgreSQL ---- */

static void
i64_param(int64_t v, char buf[GK_PG_I64_BUF])
{
    snprintf(buf, GK_PG_I64_BUF, "%" PRId64, v);
}

static enum gk_err
insert_locked(struct gk_pg *pg, const struct gk_sched_event *ev)
{
    char pq[GK_PG_I64_BUF], op[GK_PG_I64_BUF], en[GK_PG_I64_BUF], conf[GK_SC_N][GK_PG_U32_BUF];
    const char *p[12] = {ev->id, ev->business, ev->name, pq, op, en};
    const char *lock[1] = {ev->business};
    struct gk_pg_res *res = NULL;
    enum gk_err rc;

    i64_param(ev->prequeue_ms, pq);
    i64_param(ev->opens_ms, op);
    i64_param(ev->ends_ms, en);
    for (int i = 0; i < GK_SC_N; i++) {
        snprintf(conf[i], sizeof(conf[i]), "%u", ev->conf[i]);
        p[6 + i] = ev->conf_set[i] ? conf[i] : NULL;
    }
    p[10] = ev->server_seed;
    p[11] = ev->seed_commitment;
    rc = gk_pg_exec(pg, sql_lock, 1, lock, &res);
    if (rc != GK_OK)
        goto out;
    gk_pg_res_free(res);
    res = NULL;
    rc = gk_pg_exec(pg, sql_insert, 12, p, &res);
    if (rc != GK_OK)
        goto out;
    if (strcmp(gk_pg_res_value(res, 0, 0), "0") == 0)
        rc = GK_ENOTFOUND;
    else if (strcmp(gk_pg_res_value(res, 0, 1), "0") == 0)
        rc = GK_EEXIST;
out:
    gk_pg_res_free(res);
    return rc;
}

enum gk_err
gk_sched_insert(struct gk_pg *pg, const struct gk_sched_event *ev)
{
    enum gk_err rc = gk_pg_begin(pg);

    if (rc != GK_OK)
        return rc;
    rc = insert_locked(pg, ev);
    if (rc == GK_ENOTFOUND || rc == GK_EEXIST) {
        /* Nothing was written: end the transaction, keep the answer. */
        return gk_pg_end(pg, GK_OK) == GK_OK ? rc : GK_EPG;
    }
    return gk_pg_end(pg, rc);
}

static enum gk_err
exec_affecting(struct gk_pg *pg, const char *sql, int n, const char *const *p)
{
    struct gk_pg_res *res = NULL;
    enum gk_err rc = gk_pg_exec(pg, sql, n, p, &res);

    if (rc == GK_OK && gk_pg_res_affected(res) == 0)
        rc = GK_ENOTFOUND;
    gk_pg_res_free(res);
    return rc;
}

enum gk_err
gk_sched_delete(struct gk_pg *pg, const char *business, const char *id)
{
    const char *p[2] = {id, business};

    return exec_affecting(pg, sql_delete, 2, p);
}

enum gk_err
gk_sched_cancel(struct gk_pg *pg, const char *business, const char *id)
{
    const char *p[2] = {id, business};

    return exec_affecting(pg, sql_cancel, 2, p);
}

static void
copy_col(const struct gk_pg_res *res, int row, int col, char *out, size_t outlen)
{
    gk_strlcpy(out, gk_pg_res_value(res, row, col), outlen);
}

static int64_t
i64_col(const struct gk_pg_res *res, int row, int col)
{
    return strtoll(gk_pg_res_value(res, row, col), NULL, 10);
}

/* Row row of an EVENT_COLS result into out. */
static void
read_event(const struct gk_pg_res *res, int row, struct gk_sched_event *out)
{
    memset(out, 0, sizeof(*out));
    copy_col(res, row, 0, out->id, sizeof(out->id));
    copy_col(res, row, 1, out->business, sizeof(out->business));
    copy_col(res, row, 2, out->name, sizeof(out->name));
    out->prequeue_ms = i64_col(res, row, 3);
    out->opens_ms = i64_col(res, row, 4);
    out->ends_ms = i64_col(res, row, 5);
    for (int i = 0; i < GK_SC_N; i++) {
        out->conf_set[i] = !gk_pg_res_isnull(res, row, 6 + i);
        out->conf[i] = out->conf_set[i] ? (uint32_t)i64_col(res, row, 6 + i) : 0;
    }
    copy_col(res, row, 10, out->server_seed, sizeof(out->server_seed));
    copy_col(res, row, 11, out->seed_commitment, sizeof(out->seed_commitment));
    out->cancelled = gk_pg_res_value(res, row, 12)[0] == 't';
    out->drawn = gk_pg_res_value(res, row, 13)[0] == 't';
    copy_col(res, row, 14, out->participants_digest, sizeof(out->participants_digest));
    copy_col(res, row, 15, out->draw_seed, sizeof(out->draw_seed));
    out->participants = i64_col(res, row, 16);
}

enum gk_err
gk_sched_get(struct gk_pg *pg, const char *business, const char *id, struct gk_sched_event *out)
{
    const char *p[2] = {id, business};
    struct gk_pg_res *res = NULL;
    enum gk_err rc = gk_pg_exec(pg, sql_get, 2, p, &res);

    if (rc == GK_OK && gk_pg_res_rows(res) != 1)
        rc = GK_ENOTFOUND;
    if (rc == GK_OK)
        read_event(res, 0, out);
    gk_pg_res_free(res);
    return rc;
}

enum gk_err
gk_sched_list(struct gk_pg *pg, const char *business, struct gk_sched_event *out, size_t *n)
{
    const char *p[1] = {business};
    struct gk_pg_res *res = NULL;
    enum gk_err rc = gk_pg_exec(pg, sql_list, 1, p, &res);

    *n = 0;
    if (rc == GK_OK) {
        for (int i = 0; i < gk_pg_res_rows(res) && i < GK_SCHED_LIST_MAX; i++)
            read_event(res, i, &out[(*n)++]);
    }
    gk_pg_res_free(res);
    return rc;
}

enum gk_err
gk_sched_ahead(struct gk_pg *pg, struct gk_sched_event *out, size_t max, size_t *n)
{
    char lim[GK_U64_BUF];
    const char *p[1] = {lim};
    struct gk_pg_res *res = NULL;
    enum gk_err rc;

    gk_u64_str(max, lim);
    rc = gk_pg_exec(pg, sql_ahead, 1, p, &res);
    *n = 0;
    if (rc == GK_OK) {
        for (int i = 0; i < gk_pg_res_rows(res) && (size_t)i < max; i++)
            read_event(res, i, &out[(*n)++]);
    }
    gk_pg_res_free(res);
    return rc;
}

/* A PostgreSQL text[] literal of strs[0..n): every element quoted (ids hold no quote or
 * backslash, see gk_id_valid), so none reads as NULL. Caller frees. */
static char *
text_array(const char *const *strs, size_t n)
{
    size_t len = 3, o = 0;
    char *s;

    for (size_t i = 0; i < n; i++)
        len += strlen(strs[i]) + 3;
    s = gk_xmalloc(len);
    s[o++] = '{';
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(strs[i]);

        if (i > 0)
            s[o++] = ',';
        s[o++] = '"';
        memcpy(s + o, strs[i], k);
        o += k;
        s[o++] = '"';
    }
    s[o++] = '}';
    s[o] = '\0';
    return s;
}

static enum gk_err
record_draw_in_tx(struct gk_pg *pg, const char *id, const char *digest, const char *seed_hex,
                  const char *const *users, const char *const *keys, size_t n)
{
    char np[GK_PG_I64_BUF];
    const char *p[4] = {id, digest, seed_hex, np};
    char *u = NULL, *k = NULL;
    struct gk_pg_res *res = NULL;
    enum gk_err rc;

    i64_param((int64_t)n, np);
    rc = gk_pg_exec(pg, sql_draw_event, 4, p, &res);
    /* Recorded already: by another worker, identically (the draw is a function of its inputs). */
    if (rc != GK_OK || gk_pg_res_affected(res) == 0)
        goto out;
    gk_pg_res_free(res);
    res = NULL;
    u = text_array(users, n);
    k = text_array(keys, n);
    p[1] = u;
    p[2] = k;
    rc = gk_pg_exec(pg, sql_draw_rows, 3, p, &res);
out:
    gk_pg_res_free(res);
    free(u);
    free(k);
    return rc;
}

enum gk_err
gk_sched_record_draw(struct gk_pg *pg, const char *id, const char *digest, const char *draw_seed_hex,
                     const char *const *users, const char *const *keys, size_t n)
{
    enum gk_err rc = gk_pg_begin(pg);

    if (rc != GK_OK)
        return rc;
    return gk_pg_end(pg, record_draw_in_tx(pg, id, digest, draw_seed_hex, users, keys, n));
}

enum gk_err
gk_sched_draw_list(struct gk_pg *pg, const char *id, bool want_users, char **out)
{
    const char *p[1] = {id};
    struct gk_pg_res *res = NULL;
    enum gk_err rc = gk_pg_exec(pg, want_users ? sql_draw_users : sql_draw_keys, 1, p, &res);

    *out = NULL;
    if (rc == GK_OK)
        *out = gk_xstrdup(gk_pg_res_value(res, 0, 0));
    gk_pg_res_free(res);
    return rc;
}
