/* SPDX-License-Identifier: MIT */
/*
 * cfgstore.c -- see gk/cfgstore.h for the contract.
 *
 * Every statement goes through run(), which (re)connects when needed, sends one parameterized
 * statement and waits for its result with poll() against a client-side deadline, so neither a
 * dead server nor a frozen one holds a caller for more than a few seconds. A connection that is
 * found broken, or that timed out, is dropped and made again by the next call. Rows are read by
 * column name, with the names from bizconf's field table, and every value is range-checked.
 *
 * Config changes and business creation write their activity_log row in the same statement as the
 * change (a data-modifying CTE), so the log holds a row exactly when the change happened. Event
 * batches from the worker are written in one explicit transaction; while it is open a lost
 * connection is an error, never silently replaced, so no statement of a batch can end up
 * committed on its own.
 */
#include "gk/cfgstore.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "gk/jsonutil.h"
#include "gk/log.h"

/* statement_timeout (5 s, below) is the server's limit; this one also covers a server that has
 * stopped answering altogether. */
#define QUERY_TIMEOUT_MS 6000
#define CHANNEL "gk_config"
/* {"o1","o2",...}: every byte of an origin may need a backslash, plus quotes and commas. */
#define ORIGINS_LITERAL_BUF (GK_ORIGINS_MAX * (2 * GK_ORIGIN_BUF + 3) + 3)
#define U32_BUF 11
#define I64_BUF 21
/* Parameters per activity row, and rows per INSERT: 7000 parameters, far below PostgreSQL's
 * limit of 65535 per statement, and a whole batch of the worker in one statement. A full-size
 * INSERT is prepared once per connection: parsing and planning 1000 rows costs as much as
 * inserting them. A backlog is drained in full batches, so the smaller ones, sent as they are,
 * only come when there is time to spare. */
#define EVENT_PARAMS 7
#define EVENTS_PER_STMT 1000
#define EVENTS_STMT_NAME "gk_insert_events"
/* Longest row of VALUES: the fixed text plus 7 placeholders of up to 4 digits, and a comma. */
#define EVENT_ROW_SQL_MAX 96
#define TS_MS_MAX INT64_C(253402300799999) /* 9999-12-31T23:59:59.999Z */

struct gk_cfgstore {
    PGconn *conn;         /* NULL while disconnected */
    char *url;            /* owned */
    bool listening;       /* LISTEN was issued on the current connection */
    bool in_tx;           /* inside BEGIN ... COMMIT: a lost connection must not be replaced */
    bool events_prepared; /* the full-size event INSERT is prepared on this connection */
    char errmsg[256];
};

/* Column numbers of one result, looked up by name. */
struct row_cols {
    int id;
    int admin_key_hash;
    int version;
    int num[GK_BC_NUMERIC];
    int queueing_method;
    int allowed_origins;
};

#define BUSINESS_COLS                                                                                        \
    "id, admin_key_hash, version, admission_limit, admission_frequency, jwt_expiry_seconds, "                \
    "ready_ttl_seconds, ip_enqueue_limit, ip_enqueue_limit_interval, ip_status_polling_limit, "              \
    "ip_status_polling_limit_interval, max_active_users, abandon_after_seconds, max_queue_length, "          \
    "ip_verify_limit, ip_verify_limit_interval, ip_finish_limit, ip_finish_limit_interval, "                 \
    "queueing_method, allowed_origins"

/* Parameter $2+f is field f (enum gk_bc_field order); NULL keeps the stored value. $19 is the
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
    "queueing_method = COALESCE($17::text, queueing_method), "
    "allowed_origins = COALESCE($18::text[], allowed_origins) "
    "WHERE id = $1 RETURNING " BUSINESS_COLS "), "
    "a AS (INSERT INTO activity_log (event_id, business_id, event, client_ip, details) "
    "SELECT 'pg/' || gen_random_uuid(), u.id, '" GK_EV_CONFIG_CHANGE "', $19::inet, "
    "jsonb_strip_nulls(jsonb_build_object("
    "'admission_limit', $2::integer, 'admission_frequency', $3::integer, "
    "'jwt_expiry_seconds', $4::integer, 'ready_ttl_seconds', $5::integer, "
    "'ip_enqueue_limit', $6::integer, 'ip_enqueue_limit_interval', $7::integer, "
    "'ip_status_polling_limit', $8::integer, 'ip_status_polling_limit_interval', $9::integer, "
    "'max_active_users', $10::integer, 'abandon_after_seconds', $11::integer, "
    "'max_queue_length', $12::integer, 'ip_verify_limit', $13::integer, "
    "'ip_verify_limit_interval', $14::integer, 'ip_finish_limit', $15::integer, "
    "'ip_finish_limit_interval', $16::integer, 'queueing_method', $17::text, 'allowed_origins', "
    "$18::text[])) "
    "FROM u) "
    "SELECT * FROM u";
_Static_assert(GK_BC_IP_FINISH_LIMIT_INTERVAL == 14 && GK_BC_QUEUEING_METHOD == 15 &&
                   GK_BC_ALLOWED_ORIGINS == 16 && GK_BC_NFIELDS == 17,
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
static const char sql_events_head[] = "INSERT INTO activity_log (event_id, business_id, user_id, event, "
                                      "created_at, client_ip, details) VALUES ";
static const char sql_events_tail[] = " ON CONFLICT (event_id) DO NOTHING";
/* Retention: the oldest rows first, by the created_at index (sql/004). */
static const char sql_prune[] =
    "DELETE FROM activity_log WHERE id IN (SELECT id FROM activity_log "
    "WHERE created_at < now() - $1::integer * interval '1 day' ORDER BY created_at LIMIT $2::integer)";
/* Any fixed number: the advisory lock that lets one process prune at a time. */
#define PRUNE_LOCK "7351082461"
/* before_id = INT64_MAX for the first page, so one statement (and one index range) serves all. */
static const char sql_activity[] =
    "SELECT id, event_id, business_id, user_id, event, "
    "floor(extract(epoch FROM created_at) * 1000)::bigint AS ts_ms, host(client_ip) AS ip, "
    "details::text AS details FROM activity_log "
    "WHERE business_id = $1 AND id < $2::bigint ORDER BY id DESC LIMIT $3::bigint";

static void set_error(struct gk_cfgstore *cs, const char *fmt, ...) GK_PRINTF(2, 3);

static void
set_error(struct gk_cfgstore *cs, const char *fmt, ...)
{
    va_list ap;
    size_t n;

    va_start(ap, fmt);
    vsnprintf(cs->errmsg, sizeof(cs->errmsg), fmt, ap);
    va_end(ap);
    /* libpq's texts span lines; keep one line for logs. */
    for (char *p = cs->errmsg; *p != '\0'; p++) {
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
    }
    n = strlen(cs->errmsg);
    while (n > 0 && cs->errmsg[n - 1] == ' ')
        cs->errmsg[--n] = '\0';
}

/* Server notices (and the FATAL a server sends idle clients when it shuts down) would go to
 * stderr by default; send them through our logger instead. */
static void
log_notice(void *arg, const char *message)
{
    char esc[256];

    (void)arg;
    GK_LOG(GK_LOG_DEBUG, "cfgstore", "msg=\"postgres notice\" text=\"%s\"",
           gk_log_escape(message, esc, sizeof(esc)));
}

static void
disconnect(struct gk_cfgstore *cs)
{
    PQfinish(cs->conn);
    cs->conn = NULL;
    cs->listening = false;
    cs->events_prepared = false;
}

static enum gk_err
reconnect(struct gk_cfgstore *cs)
{
    /* Our settings come before dbname, so anything the URL sets overrides them. */
    static const char *const keys[] = {
        "connect_timeout",  "options",          "keepalives",       "keepalives_idle", "keepalives_interval",
        "keepalives_count", "tcp_user_timeout", "application_name", "dbname",          NULL,
    };
    const char *values[] = {
        "3", "-c statement_timeout=5000", "1", "10", "5", "3", "10000", "gatekeeper", cs->url, NULL,
    };

    disconnect(cs);
    cs->conn = PQconnectdbParams(keys, values, 1);
    if (PQstatus(cs->conn) != CONNECTION_OK) {
        set_error(cs, "postgres connect: %s", PQerrorMessage(cs->conn));
        disconnect(cs);
        return GK_EPG;
    }
    PQsetNoticeProcessor(cs->conn, log_notice, NULL);
    return GK_OK;
}

/* >0 when the socket is readable (or poll was interrupted: the caller simply looks again),
 * 0 on timeout, <0 on error. */
static int
wait_readable(PGconn *conn, int64_t timeout_ms)
{
    struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
    int n;

    if (pfd.fd < 0)
        return -1;
    n = poll(&pfd, 1, (int)timeout_ms);
    if (n < 0 && errno == EINTR)
        return 1;
    return n;
}

/* Reads whatever arrived while the connection sat idle. A server that shut down sent an error
 * and then closed the socket, which stays readable until libpq reads the EOF and marks the
 * connection bad; so a dead connection is found here, before a statement is sent on it. The
 * bound only matters under a flood of notifications, which are kept for wait_changes. */
static bool
conn_alive(PGconn *conn)
{
    for (int i = 0; i < 8 && PQstatus(conn) == CONNECTION_OK; i++) {
        int n = wait_readable(conn, 0);

        if (n == 0)
            return true;
        if (n < 0 || PQconsumeInput(conn) == 0)
            return false;
    }
    return PQstatus(conn) == CONNECTION_OK;
}

static enum gk_err
ensure_conn(struct gk_cfgstore *cs)
{
    if (cs->conn != NULL && conn_alive(cs->conn))
        return GK_OK;
    /* The transaction died with its connection; a new one would run the rest in autocommit. */
    if (cs->in_tx) {
        set_error(cs, "postgres: connection lost inside a transaction");
        disconnect(cs);
        return GK_EPG;
    }
    return reconnect(cs);
}

/* Waits until the next result of the statement in flight is complete, then takes it (NULL once
 * the statement is done). On failure the connection is dropped. */
static enum gk_err
await_result(struct gk_cfgstore *cs, int64_t deadline, PGresult **res)
{
    *res = NULL;
    while (PQisBusy(cs->conn)) {
        int64_t left = deadline - gk_mono_ms();
        int n = left > 0 ? wait_readable(cs->conn, left) : 0;

        if (n == 0) {
            set_error(cs, "postgres: no answer within %d ms", QUERY_TIMEOUT_MS);
            disconnect(cs);
            return GK_EPG;
        }
        if (n < 0 || PQconsumeInput(cs->conn) == 0) {
            set_error(cs, "postgres: %s", PQerrorMessage(cs->conn));
            disconnect(cs);
            return GK_EPG;
        }
    }
    *res = PQgetResult(cs->conn);
    return GK_OK;
}

/* Bad values (SQLSTATE class 22, data exception) and CHECK violations are the caller's input;
 * anything else is a database failure. */
static enum gk_err
map_sqlstate(const char *state)
{
    if (state != NULL && (strncmp(state, "22", 2) == 0 || strcmp(state, "23514") == 0))
        return GK_EINVAL;
    return GK_EPG;
}

/* Waits for the result of the statement just sent (sent is the PQsend* return value). On GK_OK
 * *out holds its result, which the caller releases with PQclear. */
static enum gk_err
collect(struct gk_cfgstore *cs, int sent, PGresult **out)
{
    PGresult *res = NULL;
    PGresult *extra = NULL;
    const char *state;
    ExecStatusType st;
    int64_t deadline;
    enum gk_err rc;

    *out = NULL;
    if (sent == 0) {
        set_error(cs, "postgres: %s", PQerrorMessage(cs->conn));
        disconnect(cs);
        rc = GK_EPG;
        goto out;
    }
    deadline = gk_mono_ms() + QUERY_TIMEOUT_MS;
    rc = await_result(cs, deadline, &res);
    if (rc != GK_OK)
        goto out;
    /* Read up to the end of the statement so the connection is ready for the next one. */
    do {
        PQclear(extra);
        rc = await_result(cs, deadline, &extra);
    } while (rc == GK_OK && extra != NULL);
    if (rc != GK_OK)
        goto out;

    st = PQresultStatus(res);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        *out = res;
        res = NULL;
        goto out;
    }
    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (res != NULL && PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) != NULL) {
        /* Only the primary message: DETAIL would quote the whole row. */
        set_error(cs, "postgres: %s (SQLSTATE %s)", PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY),
                  state != NULL ? state : "?");
    } else {
        set_error(cs, "postgres: %s", PQerrorMessage(cs->conn));
    }
    rc = map_sqlstate(state);
    /* Class 08 and 57P0x: the server is closing this session. */
    if (state != NULL && (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0))
        disconnect(cs);
out:
    PQclear(res);
    return rc;
}

/* Runs one parameterized statement (text parameters; NULL entries are SQL NULL). On GK_OK *out
 * holds its result, which the caller releases with PQclear. */
static enum gk_err
run(struct gk_cfgstore *cs, const char *sql, int nparams, const char *const *params, PGresult **out)
{
    enum gk_err rc = ensure_conn(cs);

    *out = NULL;
    if (rc != GK_OK)
        return rc;
    return collect(cs, PQsendQueryParams(cs->conn, sql, nparams, NULL, params, NULL, NULL, 0), out);
}

/* The same for the statement prepared on this connection as name. */
static enum gk_err
run_prepared(struct gk_cfgstore *cs, const char *name, int nparams, const char *const *params, PGresult **out)
{
    enum gk_err rc = ensure_conn(cs);

    *out = NULL;
    if (rc != GK_OK)
        return rc;
    return collect(cs, PQsendQueryPrepared(cs->conn, name, nparams, params, NULL, NULL, 0), out);
}

/* Prepares sql as name on the current connection (its parameter types inferred). */
static enum gk_err
prepare(struct gk_cfgstore *cs, const char *name, const char *sql, int nparams)
{
    PGresult *res = NULL;
    enum gk_err rc = ensure_conn(cs);

    if (rc == GK_OK)
        rc = collect(cs, PQsendPrepare(cs->conn, name, sql, nparams, NULL), &res);
    PQclear(res);
    return rc;
}

static bool
find_cols(const PGresult *res, struct row_cols *c)
{
    bool ok;

    c->id = PQfnumber(res, "id");
    c->admin_key_hash = PQfnumber(res, "admin_key_hash");
    c->version = PQfnumber(res, "version");
    c->queueing_method = PQfnumber(res, "queueing_method");
    c->allowed_origins = PQfnumber(res, "allowed_origins");
    ok = c->id >= 0 && c->admin_key_hash >= 0 && c->version >= 0 && c->queueing_method >= 0 &&
         c->allowed_origins >= 0;
    for (int f = 0; f < GK_BC_NUMERIC; f++) {
        c->num[f] = PQfnumber(res, gk_bizconf_field_name((enum gk_bc_field)f));
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
parse_row(const PGresult *res, int row, const struct row_cols *c, struct gk_business *out)
{
    const char *v;
    size_t len;
    uint32_t x;

    memset(out, 0, sizeof(*out));
    v = PQgetvalue(res, row, c->id);
    len = (size_t)PQgetlength(res, row, c->id);
    if (!gk_id_valid(v, len))
        return false;
    memcpy(out->id, v, len + 1);
    if (!PQgetisnull(res, row, c->admin_key_hash)) {
        v = PQgetvalue(res, row, c->admin_key_hash);
        len = (size_t)PQgetlength(res, row, c->admin_key_hash);
        if (!hash_valid(v, len))
            return false;
        memcpy(out->admin_key_hash, v, len + 1);
    }
    if (gk_parse_i64(PQgetvalue(res, row, c->version), 1, INT64_MAX, &out->version) != GK_OK)
        return false;
    for (int f = 0; f < GK_BC_NUMERIC; f++) {
        if (gk_parse_u32(PQgetvalue(res, row, c->num[f]), 0, UINT32_MAX, &x) != GK_OK ||
            !gk_bizconf_value_ok((enum gk_bc_field)f, x))
            return false;
        out->conf.num[f] = x;
    }
    if (gk_qmethod_parse(PQgetvalue(res, row, c->queueing_method), &out->conf.queueing_method) != GK_OK)
        return false;
    return parse_origins(PQgetvalue(res, row, c->allowed_origins), &out->conf);
}

/* Reads the single row a statement returned: GK_ENOTFOUND when there is none. */
static enum gk_err
single_row(struct gk_cfgstore *cs, const PGresult *res, struct gk_business *out)
{
    struct row_cols cols;
    struct gk_business tmp;

    if (PQntuples(res) == 0)
        return GK_ENOTFOUND;
    if (PQntuples(res) != 1 || !find_cols(res, &cols) || !parse_row(res, 0, &cols, &tmp)) {
        set_error(cs, "postgres: malformed row in businesses");
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

/* The IP as a parameter for an inet column: NULL for NULL, "" or anything not an address, which
 * the cast would refuse along with the whole statement. */
static const char *
ip_param(const char *ip)
{
    unsigned char addr[16];

    if (ip != NULL && (inet_pton(AF_INET, ip, addr) == 1 || inet_pton(AF_INET6, ip, addr) == 1))
        return ip;
    return NULL;
}

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

/* Runs a statement whose result is only its status. */
static enum gk_err
exec_plain(struct gk_cfgstore *cs, const char *sql)
{
    PGresult *res = NULL;
    enum gk_err rc = run(cs, sql, 0, NULL, &res);

    PQclear(res);
    return rc;
}

/* Ends the transaction the caller began. The error text of the failure that made it roll back is
 * kept. A connection whose ROLLBACK failed is dropped, so it never carries a transaction on. */
static enum gk_err
end_tx(struct gk_cfgstore *cs, enum gk_err rc)
{
    PGresult *res = NULL;
    char saved[sizeof(cs->errmsg)];

    if (rc == GK_OK) {
        rc = run(cs, "COMMIT", 0, NULL, &res);
        /* COMMIT of a transaction that failed answers ROLLBACK. */
        if (rc == GK_OK && strcmp(PQcmdStatus(res), "COMMIT") != 0) {
            set_error(cs, "postgres: COMMIT answered %s", PQcmdStatus(res));
            rc = GK_EPG;
        }
        PQclear(res);
    } else if (cs->conn != NULL) {
        memcpy(saved, cs->errmsg, sizeof(saved));
        if (exec_plain(cs, "ROLLBACK") != GK_OK)
            disconnect(cs);
        memcpy(cs->errmsg, saved, sizeof(saved));
    }
    cs->in_tx = false;
    return rc;
}

enum gk_err
gk_cfgstore_check_url(const char *url, char *err, size_t errlen)
{
    PQconninfoOption *opts;
    char *perr = NULL;

    opts = PQconninfoParse(url, &perr);
    if (opts == NULL) {
        snprintf(err, errlen, "%s", perr != NULL ? perr : "out of memory");
        /* libpq ends its messages with a newline. */
        err[strcspn(err, "\n")] = '\0';
        PQfreemem(perr);
        return GK_EINVAL;
    }
    /* libpq checks ports only when it connects; a typo should stop the program at start. */
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        const char *p = o->val;

        if (strcmp(o->keyword, "port") != 0 || p == NULL)
            continue;
        while (*p != '\0') {
            char one[8];
            size_t n = strcspn(p, ",");
            uint32_t port;

            snprintf(one, sizeof(one), "%.*s", (int)(n < sizeof(one) ? n : sizeof(one) - 1), p);
            if (n == 0 || n >= sizeof(one) || gk_parse_u32(one, 1, 65535, &port) != GK_OK) {
                snprintf(err, errlen, "has a bad port (want 1-65535)");
                PQconninfoFree(opts);
                return GK_EINVAL;
            }
            p += n + (p[n] == ',');
        }
    }
    PQconninfoFree(opts);
    return GK_OK;
}

struct gk_cfgstore *
gk_cfgstore_open(const char *url)
{
    struct gk_cfgstore *cs = gk_xcalloc(1, sizeof(*cs));
    char esc[256];

    cs->url = gk_xstrdup(url);
    /* A failed first connect is retried by the next call, so the process can carry on. */
    if (reconnect(cs) != GK_OK)
        GK_LOG(GK_LOG_WARN, "cfgstore", "msg=\"postgres not reachable yet\" err=\"%s\"",
               gk_log_escape(cs->errmsg, esc, sizeof(esc)));
    return cs;
}

void
gk_cfgstore_close(struct gk_cfgstore *cs)
{
    if (cs == NULL)
        return;
    disconnect(cs);
    free(cs->url);
    free(cs);
}

const char *
gk_cfgstore_errmsg(const struct gk_cfgstore *cs)
{
    return cs->errmsg;
}

enum gk_err
gk_cfgstore_ping(struct gk_cfgstore *cs)
{
    PGresult *res = NULL;
    enum gk_err rc;

    rc = run(cs, "SELECT 1", 0, NULL, &res);
    PQclear(res);
    return rc;
}

enum gk_err
gk_cfgstore_create_business(struct gk_cfgstore *cs, const char *id, const char *admin_key_hash,
                            const char *client_ip, struct gk_business *out)
{
    const char *params[3] = {id, admin_key_hash, ip_param(client_ip)};
    PGresult *res = NULL;
    enum gk_err rc;

    rc = run(cs, sql_create, (int)GK_ARRAY_LEN(params), params, &res);
    if (rc != GK_OK)
        goto out;
    /* ON CONFLICT DO NOTHING returns no row when the id is taken. */
    rc = single_row(cs, res, out);
    if (rc == GK_ENOTFOUND)
        rc = GK_EEXIST;
out:
    PQclear(res);
    return rc;
}

enum gk_err
gk_cfgstore_ensure_business(struct gk_cfgstore *cs, const char *id)
{
    const char *params[1] = {id};
    PGresult *res = NULL;
    enum gk_err rc;

    rc = run(cs, sql_ensure, 1, params, &res);
    PQclear(res);
    return rc;
}

enum gk_err
gk_cfgstore_get_business(struct gk_cfgstore *cs, const char *id, struct gk_business *out)
{
    const char *params[1] = {id};
    PGresult *res = NULL;
    enum gk_err rc;

    rc = run(cs, sql_get, 1, params, &res);
    if (rc != GK_OK)
        goto out;
    rc = single_row(cs, res, out);
out:
    PQclear(res);
    return rc;
}

enum gk_err
gk_cfgstore_update_config(struct gk_cfgstore *cs, const char *id, const struct gk_bizconf_patch *patch,
                          const char *client_ip, struct gk_business *out)
{
    const char *params[1 + GK_BC_NFIELDS + 1] = {id};
    char nums[GK_BC_NUMERIC][U32_BUF];
    char origins[ORIGINS_LITERAL_BUF];
    PGresult *res = NULL;
    enum gk_err rc;

    /* Nothing to change: no UPDATE, so the version is not bumped for nothing. */
    if ((patch->set & ((1u << GK_BC_NFIELDS) - 1)) == 0)
        return gk_cfgstore_get_business(cs, id, out);
    for (int f = 0; f < GK_BC_NUMERIC; f++) {
        if (patch->set & (1u << f)) {
            snprintf(nums[f], sizeof(nums[f]), "%" PRIu32, patch->v.num[f]);
            params[1 + f] = nums[f];
        }
    }
    if (patch->set & (1u << GK_BC_QUEUEING_METHOD)) {
        if ((unsigned)patch->v.queueing_method > GK_QM_REJECT) {
            set_error(cs, "queueing_method: no such method");
            return GK_EINVAL;
        }
        params[1 + GK_BC_QUEUEING_METHOD] = gk_qmethod_name(patch->v.queueing_method);
    }
    if (patch->set & (1u << GK_BC_ALLOWED_ORIGINS)) {
        if (!origins_valid(&patch->v)) {
            set_error(cs, "allowed_origins: too many entries or an invalid origin");
            return GK_EINVAL;
        }
        origins_literal(&patch->v, origins, sizeof(origins));
        params[1 + GK_BC_ALLOWED_ORIGINS] = origins;
    }
    params[1 + GK_BC_NFIELDS] = ip_param(client_ip);

    rc = run(cs, sql_update, (int)GK_ARRAY_LEN(params), params, &res);
    if (rc != GK_OK)
        goto out;
    rc = single_row(cs, res, out);
out:
    PQclear(res);
    return rc;
}

enum gk_err
gk_cfgstore_each_business(struct gk_cfgstore *cs, gk_business_fn fn, void *arg)
{
    struct row_cols cols;
    struct gk_business b;
    PGresult *res = NULL;
    enum gk_err rc;

    rc = run(cs, sql_each, 0, NULL, &res);
    if (rc != GK_OK)
        goto out;
    if (!find_cols(res, &cols)) {
        set_error(cs, "postgres: malformed row in businesses");
        rc = GK_EPG;
        goto out;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        if (!parse_row(res, i, &cols, &b)) {
            set_error(cs, "postgres: malformed row in businesses");
            rc = GK_EPG;
            goto out;
        }
        rc = fn(arg, &b);
        if (rc != GK_OK)
            goto out;
    }
out:
    PQclear(res);
    return rc;
}

enum gk_err
gk_cfgstore_listen(struct gk_cfgstore *cs)
{
    PGresult *res = NULL;
    enum gk_err rc;

    rc = run(cs, "LISTEN " CHANNEL, 0, NULL, &res);
    if (rc == GK_OK)
        cs->listening = true;
    PQclear(res);
    return rc;
}

/* Hands every queued notification to fn; returns how many named a valid business id. */
static int
drain_notifies(struct gk_cfgstore *cs, gk_changed_fn fn, void *arg)
{
    PGnotify *nf;
    int n = 0;

    while ((nf = PQnotifies(cs->conn)) != NULL) {
        if (strcmp(nf->relname, CHANNEL) == 0 && gk_id_valid(nf->extra, strnlen(nf->extra, GK_ID_BUF))) {
            fn(arg, nf->extra);
            n++;
        }
        PQfreemem(nf);
    }
    return n;
}

enum gk_err
gk_cfgstore_wait_changes(struct gk_cfgstore *cs, int timeout_ms, gk_changed_fn fn, void *arg)
{
    int64_t deadline = gk_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    int64_t left;

    if (!cs->listening || cs->conn == NULL) {
        set_error(cs, "postgres: not listening (connection was lost)");
        return GK_EPG;
    }
    for (;;) {
        /* Notifications may already be queued, read along with an earlier statement's result. */
        if (PQconsumeInput(cs->conn) == 0) {
            set_error(cs, "postgres: %s", PQerrorMessage(cs->conn));
            disconnect(cs);
            return GK_EPG;
        }
        if (drain_notifies(cs, fn, arg) > 0)
            return GK_OK;
        left = deadline - gk_mono_ms();
        if (left <= 0)
            return GK_OK;
        if (wait_readable(cs->conn, left) < 0) {
            set_error(cs, "postgres: poll failed (errno %d)", errno);
            disconnect(cs);
            return GK_EPG;
        }
    }
}

/* "($1,$2,...),(...) ON CONFLICT ..." for k rows into sql (room for k * EVENT_ROW_SQL_MAX bytes
 * and the tail). */
static void
events_values_sql(char *sql, size_t k)
{
    size_t n = 0;

    for (size_t r = 0; r < k; r++) {
        int p = (int)(r * EVENT_PARAMS);
        int w = snprintf(sql + n, EVENT_ROW_SQL_MAX,
                         "%s($%d,$%d,$%d,$%d,to_timestamp($%d::bigint/1000.0),$%d::inet,$%d::jsonb)",
                         r > 0 ? "," : "", p + 1, p + 2, p + 3, p + 4, p + 5, p + 6, p + 7);

        GK_ASSERT(w > 0 && w < EVENT_ROW_SQL_MAX);
        n += (size_t)w;
    }
    memcpy(sql + n, sql_events_tail, sizeof(sql_events_tail));
}

/* Sends one INSERT of k rows whose parameters are filled in; sql starts with sql_events_head and
 * has room for the rest. The full size runs as the prepared statement, prepared on first use. */
static enum gk_err
insert_rows(struct gk_cfgstore *cs, char *sql, size_t k, const char *const *params)
{
    int nparams = (int)(k * EVENT_PARAMS);
    PGresult *res = NULL;
    enum gk_err rc = GK_OK;

    if (k < EVENTS_PER_STMT || !cs->events_prepared)
        events_values_sql(sql + sizeof(sql_events_head) - 1, k);
    if (k < EVENTS_PER_STMT) {
        rc = run(cs, sql, nparams, params, &res);
    } else {
        if (!cs->events_prepared) {
            rc = prepare(cs, EVENTS_STMT_NAME, sql, nparams);
            cs->events_prepared = rc == GK_OK;
        }
        if (rc == GK_OK)
            rc = run_prepared(cs, EVENTS_STMT_NAME, nparams, params, &res);
    }
    PQclear(res);
    return rc;
}

enum gk_err
gk_cfgstore_insert_events(struct gk_cfgstore *cs, const struct gk_event *events, size_t n)
{
    size_t cap = n < EVENTS_PER_STMT ? n : EVENTS_PER_STMT;
    const char **params = NULL;
    char *ts = NULL; /* cap texts of I64_BUF bytes */
    char *sql = NULL;
    int64_t now = gk_now_ms();
    enum gk_err rc;

    if (n == 0)
        return GK_OK;
    params = gk_xmalloc(cap * EVENT_PARAMS * sizeof(*params));
    ts = gk_xmalloc(cap * I64_BUF);
    sql = gk_xmalloc(sizeof(sql_events_head) + cap * EVENT_ROW_SQL_MAX + sizeof(sql_events_tail));
    memcpy(sql, sql_events_head, sizeof(sql_events_head) - 1);

    rc = exec_plain(cs, "BEGIN");
    if (rc != GK_OK)
        goto out;
    cs->in_tx = true;
    for (size_t done = 0, k; rc == GK_OK && done < n; done += k) {
        k = n - done < cap ? n - done : cap;
        for (size_t r = 0; r < k; r++) {
            const struct gk_event *e = &events[done + r];
            const char **p = &params[r * EVENT_PARAMS];
            char *t = ts + r * I64_BUF;

            snprintf(t, I64_BUF, "%" PRId64, e->ts_ms >= 0 && e->ts_ms <= TS_MS_MAX ? e->ts_ms : now);
            p[0] = e->id;
            p[1] = e->business;
            p[2] = e->user[0] != '\0' ? e->user : NULL;
            p[3] = e->type;
            p[4] = t;
            p[5] = ip_param(e->ip);
            p[6] = details_param(e->details);
        }
        rc = insert_rows(cs, sql, k, params);
    }
    rc = end_tx(cs, rc);
out:
    free(sql);
    free(ts);
    free(params);
    /* Bad values (class 22) are no excuse here: the batch as a whole failed. */
    return rc == GK_OK ? GK_OK : GK_EPG;
}

/* Copies a column into dst, "" for NULL; longer values are cut. */
static void
copy_col(const PGresult *res, int row, int col, char *dst, size_t dstlen)
{
    gk_strlcpy(dst, PQgetisnull(res, row, col) ? "" : PQgetvalue(res, row, col), dstlen);
}

/* Reads row i of sql_activity's result into *out; false when its id or time is malformed. */
static bool
read_activity_row(const PGresult *res, int i, struct gk_activity_row *out)
{
    memset(out, 0, sizeof(*out));
    if (gk_parse_i64(PQgetvalue(res, i, 0), 1, INT64_MAX, &out->id) != GK_OK ||
        gk_parse_i64(PQgetvalue(res, i, 5), 0, INT64_MAX, &out->ev.ts_ms) != GK_OK)
        return false;
    copy_col(res, i, 1, out->ev.id, sizeof(out->ev.id));
    copy_col(res, i, 2, out->ev.business, sizeof(out->ev.business));
    copy_col(res, i, 3, out->ev.user, sizeof(out->ev.user));
    copy_col(res, i, 4, out->ev.type, sizeof(out->ev.type));
    copy_col(res, i, 6, out->ev.ip, sizeof(out->ev.ip));
    if (!compact_json(PQgetvalue(res, i, 7), out->ev.details, sizeof(out->ev.details)))
        gk_strlcpy(out->ev.details, "{}", sizeof(out->ev.details));
    return true;
}

enum gk_err
gk_cfgstore_activity(struct gk_cfgstore *cs, const char *business, int64_t before_id, uint32_t limit,
                     gk_activity_fn fn, void *arg)
{
    char before[I64_BUF], lim[U32_BUF];
    const char *params[3] = {business, before, lim};
    struct gk_activity_row row;
    PGresult *res = NULL;
    enum gk_err rc;

    snprintf(before, sizeof(before), "%" PRId64, before_id > 0 ? before_id : INT64_MAX);
    snprintf(lim, sizeof(lim), "%" PRIu32, limit);
    rc = run(cs, sql_activity, (int)GK_ARRAY_LEN(params), params, &res);
    if (rc != GK_OK)
        goto out;
    /* Every row is checked before fn sees any, so an error never leaves half a page behind. */
    for (int i = 0; i < PQntuples(res); i++) {
        if (PQnfields(res) != 8 || !read_activity_row(res, i, &row)) {
            set_error(cs, "postgres: malformed row in activity_log");
            rc = GK_EPG;
            goto out;
        }
    }
    for (int i = 0; i < PQntuples(res); i++) {
        read_activity_row(res, i, &row); /* checked above */
        fn(arg, &row);
    }
out:
    PQclear(res);
    return rc;
}

enum gk_err
gk_cfgstore_prune_activity(struct gk_cfgstore *cs, uint32_t days, int64_t budget_ms, int64_t *deleted)
{
    char d[U32_BUF], b[U32_BUF];
    const char *params[2] = {d, b};
    PGresult *res = NULL;
    int64_t t0 = gk_mono_ms(), n;
    enum gk_err rc;

    *deleted = 0;
    rc = run(cs, "SELECT pg_try_advisory_lock(" PRUNE_LOCK ")", 0, NULL, &res);
    if (rc != GK_OK || strcmp(PQgetvalue(res, 0, 0), "t") != 0)
        goto out;
    snprintf(d, sizeof(d), "%" PRIu32, days);
    snprintf(b, sizeof(b), "%d", GK_ACTIVITY_PRUNE_BATCH);
    do {
        PQclear(res);
        rc = run(cs, sql_prune, 2, params, &res);
        if (rc != GK_OK)
            break;
        n = strtoll(PQcmdTuples(res), NULL, 10);
        *deleted += n;
    } while (n == GK_ACTIVITY_PRUNE_BATCH && gk_mono_ms() - t0 < budget_ms);
    /* A connection that broke meanwhile took the lock with it. */
    if (cs->conn != NULL) {
        PQclear(res);
        if (run(cs, "SELECT pg_advisory_unlock(" PRUNE_LOCK ")", 0, NULL, &res) != GK_OK)
            disconnect(cs); /* ending the session releases the lock */
    }
out:
    PQclear(res);
    return rc;
}
