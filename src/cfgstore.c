/* SPDX-License-Identifier: MIT */
/*
 * cfgstore.c -- businesses and their config in PostgreSQL; see gk/cfgstore.h for the contract.
 *
 * Rows are read by column name, with the names from bizconf's field table, and every value is
 * range-checked, admin-key hashes included. Config changes and business creation write their
 * activity_log row in the same statement as the change (a data-modifying CTE), so the log holds a
 * row exactly when the change happened. Statements go through gk/pg.h.
 */
#include "gk/cfgstore.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gk/event.h"
#include "gk/pg.h"

#define CHANNEL "gk_config"
/* {"o1","o2",...}: every byte of an origin may need a backslash, plus quotes and commas. */
#define ORIGINS_LITERAL_BUF (GK_ORIGINS_MAX * (2 * GK_ORIGIN_BUF + 3) + 3)

/* Column numbers of one result, looked up by name. */
struct row_cols {
    int id;
    int admin_key_hash;
    int version;
    int num[GK_BC_NUMERIC];
    int queueing_method;
    int allowed_origins;
    int pow_mode;
};

#define BUSINESS_COLS                                                                                        \
    "id, admin_key_hash, version, admission_limit, admission_frequency, jwt_expiry_seconds, "                \
    "ready_ttl_seconds, ip_enqueue_limit, ip_enqueue_limit_interval, ip_status_polling_limit, "              \
    "ip_status_polling_limit_interval, max_active_users, abandon_after_seconds, max_queue_length, "          \
    "ip_verify_limit, ip_verify_limit_interval, ip_finish_limit, ip_finish_limit_interval, "                 \
    "pow_max_number, queueing_method, allowed_origins, pow_mode"

/* Parameter $2+f is field f (enum gk_bc_field order); NULL keeps the stored value. $21 is the
 * client IP. The activity row's details are the fields that were set (jsonb_strip_nulls drops
 * the others), with their new values. */
static const char sql_update[] =
    "WITH u AS (UPDATE businesses SET "
    "admission_limit = COALESCE($2::integer, admission_limit), "
    "admission_frequency = COALESCE($3::integer, admission_frequency), "
    "jwt_expiry_seconds = COALESCE($4::integer, jwt_expiry_seconds), "
    "ready_ttl_seconds = COALESCE($5::integer, ready_ttl_seconds), "
    "ip_enqueue_limit = COALESCE($6::integer, ip_enqueue_limit), "
    "ip_enqueue_limit_interval = COALESCE($7::integer, ip_enqueue_limit_interval), "
    "ip_status_polling_limit = COALESCE($8::integer, ip_status_polling_limit), "
    "ip_status_polling_limit_interval = COALESCE($9::integer, ip_status_polling_limit_interval), "
    "max_active_users = COALESCE($10::integer, max_active_users), "
    "abandon_after_seconds = COALESCE($11::integer, abandon_after_seconds), "
    "max_queue_length = COALESCE($12::integer, max_queue_length), "
    "ip_verify_limit = COALESCE($13::integer, ip_verify_limit), "
    "ip_verify_limit_interval = COALESCE($14::integer, ip_verify_limit_interval), "
    "ip_finish_limit = COALESCE($15::integer, ip_finish_limit), "
    "ip_finish_limit_interval = COALESCE($16::integer, ip_finish_limit_interval), "
    "pow_max_number = COALESCE($17::integer, pow_max_number), "
    "queueing_method = COALESCE($18::text, queueing_method), "
    "allowed_origins = COALESCE($19::text[], allowed_origins), "
    "pow_mode = COALESCE($20::text, pow_mode) "
    "WHERE id = $1 RETURNING " BUSINESS_COLS "), "
    "a AS (INSERT INTO activity_log (event_id, business_id, event, client_ip, details) "
    "SELECT 'pg/' || gen_random_uuid(), u.id, '" GK_EV_CONFIG_CHANGE "', $21::inet, "
    "jsonb_strip_nulls(jsonb_build_object("
    "'admission_limit', $2::integer, 'admission_frequency', $3::integer, "
    "'jwt_expiry_seconds', $4::integer, 'ready_ttl_seconds', $5::integer, "
    "'ip_enqueue_limit', $6::integer, 'ip_enqueue_limit_interval', $7::integer, "
    "'ip_status_polling_limit', $8::integer, 'ip_status_polling_limit_interval', $9::integer, "
    "'max_active_users', $10::integer, 'abandon_after_seconds', $11::integer, "
    "'max_queue_length', $12::integer, 'ip_verify_limit', $13::integer, "
    "'ip_verify_limit_interval', $14::integer, 'ip_finish_limit', $15::integer, "
    "'ip_finish_limit_interval', $16::integer, 'pow_max_number', $17::integer, "
    "'queueing_method', $18::text, 'allowed_origins', $19::text[], 'pow_mode', $20::text)) "
    "FROM u) "
    "SELECT * FROM u";
_Static_assert(GK_BC_POW_MAX_NUMBER == 15 && GK_BC_QUEUEING_METHOD == 16 && GK_BC_ALLOWED_ORIGINS == 17 &&
                   GK_BC_POW_MODE == 18 && GK_BC_NFIELDS == 19,
               "sql_update numbers its parameters by enum gk_bc_field");

static const char sql_get[] = "SELECT " BUSINESS_COLS " FROM businesses WHERE id = $1";
static const char sql_each[] = "SELECT " BUSINESS_COLS " FROM businesses ORDER BY id";
/* $3 is the client IP. */
static const char sql_create[] =
    "WITH b AS (INSERT INTO businesses (id, admin_key_hash) VALUES ($1, $2) "
    "ON CONFLICT (id) DO NOTHING RETURNING " BUSINESS_COLS "), "
    "a AS (INSERT INTO activity_log (event_id, business_id, event, client_ip) "
    "SELECT 'pg/' || gen_random_uuid(), b.id, '" GK_EV_BUSINESS_CREATED "', $3::inet FROM b) "
    "SELECT * FROM b";
static const char sql_ensure[] =
    "WITH b AS (INSERT INTO businesses (id) VALUES ($1) "
    "ON CONFLICT (id) DO NOTHING RETURNING id) "
    "INSERT INTO activity_log (event_id, business_id, event) "
    "SELECT 'pg/' || gen_random_uuid(), b.id, '" GK_EV_BUSINESS_CREATED "' FROM b";

static bool
find_cols(const struct gk_pg_res *res, struct row_cols *c)
{
    bool ok;

    c->id = gk_pg_res_col(res, "id");
    c->admin_key_hash = gk_pg_res_col(res, "admin_key_hash");
    c->version = gk_pg_res_col(res, "version");
    c->queueing_method = gk_pg_res_col(res, "queueing_method");
    c->allowed_origins = gk_pg_res_col(res, "allowed_origins");
    c->pow_mode = gk_pg_res_col(res, "pow_mode");
    ok = c->id >= 0 && c->admin_key_hash >= 0 && c->version >= 0 && c->queueing_method >= 0 &&
         c->allowed_origins >= 0 && c->pow_mode >= 0;
    for (int f = 0; f < GK_BC_NUMERIC; f++) {
        c->num[f] = gk_pg_res_col(res, gk_bizconf_field_name((enum gk_bc_field)f));
        ok = ok && c->num[f] >= 0;
    }
    return ok;
}

static bool
hash_valid(const char *s, size_t len)
{
    if (len != GK_ADMIN_HASH_BUF - 1)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return true;
}

/* Parses a text[] in PostgreSQL's output syntax ({a,"b c"}) into c's origins. Every entry must be
 * a valid origin, so NULL entries, nested arrays and explicit bounds are all refused. */
static bool
parse_origins(const char *s, struct gk_bizconf *c)
{
    const char *p = s;
    uint32_t n = 0;

    if (*p++ != '{')
        return false;
    if (*p == '}') {
        p++;
    } else {
        for (;;) {
            char *dst;
            size_t len = 0;

            if (n == GK_ORIGINS_MAX)
                return false;
            dst = c->origins[n];
            if (*p == '"') {
                for (p++; *p != '"'; p++) {
                    if (*p == '\\')
                        p++;
                    if (*p == '\0' || len == GK_ORIGIN_BUF - 1)
                        return false;
                    dst[len++] = *p;
                }
                p++;
            } else {
                for (; *p != ',' && *p != '}'; p++) {
                    if (*p == '\0' || *p == '"' || *p == '\\' || *p == '{' || len == GK_ORIGIN_BUF - 1)
                        return false;
                    dst[len++] = *p;
                }
            }
            dst[len] = '\0';
            if (!gk_origin_valid(dst))
                return false;
            n++;
            if (*p == '}') {
                p++;
                break;
            }
            if (*p++ != ',')
                return false;
        }
    }
    c->n_origins = n;
    return *p == '\0';
}

/* Copies row `row` into *out; false when any value is missing or out of range. */
static bool
parse_row(const struct gk_pg_res *res, int row, const struct row_cols *c, struct gk_business *out)
{
    const char *v;
    size_t len;
    uint32_t x;

    memset(out, 0, sizeof(*out));
    v = gk_pg_res_value(res, row, c->id);
    len = gk_pg_res_length(res, row, c->id);
    if (!gk_id_valid(v, len))
        return false;
    memcpy(out->id, v, len + 1);
    if (!gk_pg_res_isnull(res, row, c->admin_key_hash)) {
        v = gk_pg_res_value(res, row, c->admin_key_hash);
        len = gk_pg_res_length(res, row, c->admin_key_hash);
        if (!hash_valid(v, len))
            return false;
        memcpy(out->admin_key_hash, v, len + 1);
    }
    if (gk_parse_i64(gk_pg_res_value(res, row, c->version), 1, INT64_MAX, &out->version) != GK_OK)
        return false;
    for (int f = 0; f < GK_BC_NUMERIC; f++) {
        if (gk_parse_u32(gk_pg_res_value(res, row, c->num[f]), 0, UINT32_MAX, &x) != GK_OK ||
            !gk_bizconf_value_ok((enum gk_bc_field)f, x))
            return false;
        out->conf.num[f] = x;
    }
    if (gk_qmethod_parse(gk_pg_res_value(res, row, c->queueing_method), &out->conf.queueing_method) !=
            GK_OK ||
        gk_pow_mode_parse(gk_pg_res_value(res, row, c->pow_mode), &out->conf.pow_mode) != GK_OK)
        return false;
    return parse_origins(gk_pg_res_value(res, row, c->allowed_origins), &out->conf);
}

/* Reads the single row a statement returned: GK_ENOTFOUND when there is none. */
static enum gk_err
single_row(struct gk_pg *pg, const struct gk_pg_res *res, struct gk_business *out)
{
    struct row_cols cols;
    struct gk_business tmp;

    if (gk_pg_res_rows(res) == 0)
        return GK_ENOTFOUND;
    if (gk_pg_res_rows(res) != 1 || !find_cols(res, &cols) || !parse_row(res, 0, &cols, &tmp)) {
        gk_pg_set_error(pg, "postgres: malformed row in businesses");
        return GK_EPG;
    }
    *out = tmp;
    return GK_OK;
}

/* allowed_origins as an array literal, {"o1","o2"}. Validated origins hold no quote, backslash or
 * comma, but every entry is quoted and escaped anyway so the literal means exactly the given text. */
static void
origins_literal(const struct gk_bizconf *c, char *buf, size_t buflen)
{
    size_t n = 0;

    GK_ASSERT(c->n_origins <= GK_ORIGINS_MAX);
    buf[n++] = '{';
    for (uint32_t i = 0; i < c->n_origins; i++) {
        const char *o = c->origins[i];
        size_t len = strnlen(o, GK_ORIGIN_BUF - 1);

        if (i > 0)
            buf[n++] = ',';
        buf[n++] = '"';
        for (size_t j = 0; j < len; j++) {
            if (o[j] == '"' || o[j] == '\\')
                buf[n++] = '\\';
            buf[n++] = o[j];
        }
        buf[n++] = '"';
    }
    buf[n++] = '}';
    GK_ASSERT(n < buflen);
    buf[n] = '\0';
}

/* The table cannot check origin syntax, and a row holding a bad origin could not be read back,
 * so origins are checked here like every other field is by the table's CHECKs. */
static bool
origins_valid(const struct gk_bizconf *c)
{
    if (c->n_origins > GK_ORIGINS_MAX)
        return false;
    for (uint32_t i = 0; i < c->n_origins; i++) {
        if (!gk_origin_valid(c->origins[i]))
            return false;
    }
    return true;
}

enum gk_err
gk_cfgstore_create_business(struct gk_pg *pg, const char *id, const char *admin_key_hash,
                            const char *client_ip, struct gk_business *out)
{
    const char *params[3] = {id, admin_key_hash, gk_pg_inet_param(client_ip)};
    struct gk_pg_res *res = NULL;
    enum gk_err rc;

    rc = gk_pg_exec(pg, sql_create, (int)GK_ARRAY_LEN(params), params, &res);
    if (rc != GK_OK)
        goto out;
    /* ON CONFLICT DO NOTHING returns no row when the id is taken. */
    rc = single_row(pg, res, out);
    if (rc == GK_ENOTFOUND)
        rc = GK_EEXIST;
out:
    gk_pg_res_free(res);
    return rc;
}

enum gk_err
gk_cfgstore_ensure_business(struct gk_pg *pg, const char *id)
{
    const char *params[1] = {id};
    struct gk_pg_res *res = NULL;
    enum gk_err rc;

    rc = gk_pg_exec(pg, sql_ensure, 1, params, &res);
    gk_pg_res_free(res);
    return rc;
}

enum gk_err
gk_cfgstore_get_business(struct gk_pg *pg, const char *id, struct gk_business *out)
{
    const char *params[1] = {id};
    struct gk_pg_res *res = NULL;
    enum gk_err rc;

    rc = gk_pg_exec(pg, sql_get, 1, params, &res);
    if (rc != GK_OK)
        goto out;
    rc = single_row(pg, res, out);
out:
    gk_pg_res_free(res);
    return rc;
}

enum gk_err
gk_cfgstore_update_config(struct gk_pg *pg, const char *id, const struct gk_bizconf_patch *patch,
                          const char *client_ip, struct gk_business *out)
{
    const char *params[1 + GK_BC_NFIELDS + 1] = {id};
    char nums[GK_BC_NUMERIC][GK_PG_U32_BUF];
    char origins[ORIGINS_LITERAL_BUF];
    struct gk_pg_res *res = NULL;
    enum gk_err rc;

    /* Nothing to change: no UPDATE, so the version is not bumped for nothing. */
    if ((patch->set & ((1u << GK_BC_NFIELDS) - 1)) == 0)
        return gk_cfgstore_get_business(pg, id, out);
    for (int f = 0; f < GK_BC_NUMERIC; f++) {
        if (patch->set & (1u << f)) {
            snprintf(nums[f], sizeof(nums[f]), "%" PRIu32, patch->v.num[f]);
            params[1 + f] = nums[f];
        }
    }
    if (patch->set & (1u << GK_BC_QUEUEING_METHOD)) {
        if ((unsigned)patch->v.queueing_method > GK_QM_REJECT) {
            gk_pg_set_error(pg, "queueing_method: no such method");
            return GK_EINVAL;
        }
        params[1 + GK_BC_QUEUEING_METHOD] = gk_qmethod_name(patch->v.queueing_method);
    }
    if (patch->set & (1u << GK_BC_ALLOWED_ORIGINS)) {
        if (!origins_valid(&patch->v)) {
            gk_pg_set_error(pg, "allowed_origins: too many entries or an invalid origin");
            return GK_EINVAL;
        }
        origins_literal(&patch->v, origins, sizeof(origins));
        params[1 + GK_BC_ALLOWED_ORIGINS] = origins;
    }
    if (patch->set & (1u << GK_BC_POW_MODE)) {
        if ((unsigned)patch->v.pow_mode > GK_POW_AUTO) {
            gk_pg_set_error(pg, "pow_mode: no such mode");
            return GK_EINVAL;
        }
        params[1 + GK_BC_POW_MODE] = gk_pow_mode_name(patch->v.pow_mode);
    }
    params[1 + GK_BC_NFIELDS] = gk_pg_inet_param(client_ip);

    rc = gk_pg_exec(pg, sql_update, (int)GK_ARRAY_LEN(params), params, &res);
    if (rc != GK_OK)
        goto out;
    rc = single_row(pg, res, out);
out:
    gk_pg_res_free(res);
    return rc;
}

enum gk_err
gk_cfgstore_each_business(struct gk_pg *pg, gk_business_fn fn, void *arg)
{
    struct row_cols cols;
    struct gk_business b;
    struct gk_pg_res *res = NULL;
    enum gk_err rc;

    rc = gk_pg_exec(pg, sql_each, 0, NULL, &res);
    if (rc != GK_OK)
        goto out;
    if (!find_cols(res, &cols)) {
        gk_pg_set_error(pg, "postgres: malformed row in businesses");
        rc = GK_EPG;
        goto out;
    }
    for (int i = 0; i < gk_pg_res_rows(res); i++) {
        if (!parse_row(res, i, &cols, &b)) {
            gk_pg_set_error(pg, "postgres: malformed row in businesses");
            rc = GK_EPG;
            goto out;
        }
        rc = fn(arg, &b);
        if (rc != GK_OK)
            goto out;
    }
out:
    gk_pg_res_free(res);
    return rc;
}

enum gk_err
gk_cfgstore_listen(struct gk_pg *pg)
{
    return gk_pg_listen(pg, CHANNEL);
}

struct changes {
    gk_changed_fn fn;
    void *arg;
};

/* Hands a notification that names a valid business id on our channel to the caller's fn. */
static bool
on_notify(void *arg, const char *channel, const char *payload)
{
    const struct changes *ch = arg;

    if (strcmp(channel, CHANNEL) != 0 || !gk_id_valid(payload, strnlen(payload, GK_ID_BUF)))
        return false;
    ch->fn(ch->arg, payload);
    return true;
}

enum gk_err
gk_cfgstore_wait_changes(struct gk_pg *pg, int timeout_ms, gk_changed_fn fn, void *arg)
{
    struct changes ch = {fn, arg};

    return gk_pg_wait_notify(pg, timeout_ms, on_notify, &ch);
}
