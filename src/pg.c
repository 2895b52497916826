/* SPDX-License-Identifier: MIT */
/*
 * pg.c -- the PostgreSQL connection; see gk/pg.h for the contract.
 *
 * Every statement goes through ensure_conn() and collect(): (re)connect when needed, send one
 * parameterized statement and wait for its result with poll() against a client-side deadline, so
 * neither a dead server nor a frozen one holds a caller for more than a few seconds. A connection
 * that is found broken, or that timed out, is dropped and made again by the next call. While a
 * transaction is open a lost connection is an error, never silently replaced.
 *
 * A struct gk_pg_res is a PGresult under another name: converted at this file's edge, so libpq
 * types stay here.
 */
#include "gk/pg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "gk/log.h"

/* statement_timeout (5 s, below) is the server's limit; this one also covers a server that has
 * stopped answering altogether. */
#define QUERY_TIMEOUT_MS 6000
#define PREPARED_MAX 4
#define PREPARED_NAME_BUF 64
/* The log lines keep the module name they had before the connection had a file of its own. */
#define LOG_MOD "cfgstore"

struct gk_pg {
    PGconn *conn;   /* NULL while disconnected */
    char *url;      /* owned */
    bool listening; /* LISTEN was issued on the current connection */
    bool in_tx;     /* inside BEGIN ... COMMIT: a lost connection must not be replaced */
    size_t n_prepared;
    char prepared[PREPARED_MAX][PREPARED_NAME_BUF]; /* statements prepared on this connection */
    char errmsg[256];
};

static struct gk_pg_res *
res_out(PGresult *res)
{
    return (struct gk_pg_res *)(void *)res;
}

/* Some of libpq's accessors take a PGresult that is not const, though they only read it. */
static PGresult *
res_in(const struct gk_pg_res *res)
{
    return (PGresult *)(uintptr_t)res;
}

static void set_errorv(struct gk_pg *pg, const char *fmt, va_list ap) GK_PRINTF(2, 0);

static void
set_errorv(struct gk_pg *pg, const char *fmt, va_list ap)
{
    size_t n;

    vsnprintf(pg->errmsg, sizeof(pg->errmsg), fmt, ap);
    /* libpq's texts span lines; keep one line for logs. */
    for (char *p = pg->errmsg; *p != '\0'; p++) {
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
    }
    n = strlen(pg->errmsg);
    while (n > 0 && pg->errmsg[n - 1] == ' ')
        pg->errmsg[--n] = '\0';
}

void
gk_pg_set_error(struct gk_pg *pg, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    set_errorv(pg, fmt, ap);
    va_end(ap);
}

/* Server notices (and the FATAL a server sends idle clients when it shuts down) would go to
 * stderr by default; send them through our logger instead. */
static void
log_notice(void *arg, const char *message)
{
    char esc[256];

    (void)arg;
    GK_LOG(GK_LOG_DEBUG, LOG_MOD, "msg=\"postgres notice\" text=\"%s\"",
           gk_log_escape(message, esc, sizeof(esc)));
}

void
gk_pg_disconnect(struct gk_pg *pg)
{
    PQfinish(pg->conn);
    pg->conn = NULL;
    pg->listening = false;
    pg->n_prepared = 0;
}

bool
gk_pg_connected(const struct gk_pg *pg)
{
    return pg->conn != NULL;
}

static enum gk_err
reconnect(struct gk_pg *pg)
{
    /* Our settings come before dbname, so anything the URL sets overrides them. */
    static const char *const keys[] = {
        "connect_timeout",  "options",          "keepalives",       "keepalives_idle", "keepalives_interval",
        "keepalives_count", "tcp_user_timeout", "application_name", "dbname",          NULL,
    };
    const char *values[] = {
        "3", "-c statement_timeout=5000", "1", "10", "5", "3", "10000", "gatekeeper", pg->url, NULL,
    };

    gk_pg_disconnect(pg);
    pg->conn = PQconnectdbParams(keys, values, 1);
    if (PQstatus(pg->conn) != CONNECTION_OK) {
        gk_pg_set_error(pg, "postgres connect: %s", PQerrorMessage(pg->conn));
        gk_pg_disconnect(pg);
        return GK_EPG;
    }
    PQsetNoticeProcessor(pg->conn, log_notice, NULL);
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
 * bound only matters under a flood of notifications, which are kept for gk_pg_wait_notify. */
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
ensure_conn(struct gk_pg *pg)
{
    if (pg->conn != NULL && conn_alive(pg->conn))
        return GK_OK;
    /* The transaction died with its connection; a new one would run the rest in autocommit. */
    if (pg->in_tx) {
        gk_pg_set_error(pg, "postgres: connection lost inside a transaction");
        gk_pg_disconnect(pg);
        return GK_EPG;
    }
    return reconnect(pg);
}

/* Waits until the next result of the statement in flight is complete, then takes it (NULL once
 * the statement is done). On failure the connection is dropped. */
static enum gk_err
await_result(struct gk_pg *pg, int64_t deadline, PGresult **res)
{
    *res = NULL;
    while (PQisBusy(pg->conn)) {
        int64_t left = deadline - gk_mono_ms();
        int n = left > 0 ? wait_readable(pg->conn, left) : 0;

        if (n == 0) {
            gk_pg_set_error(pg, "postgres: no answer within %d ms", QUERY_TIMEOUT_MS);
            gk_pg_disconnect(pg);
            return GK_EPG;
        }
        if (n < 0 || PQconsumeInput(pg->conn) == 0) {
            gk_pg_set_error(pg, "postgres: %s", PQerrorMessage(pg->conn));
            gk_pg_disconnect(pg);
            return GK_EPG;
        }
    }
    *res = PQgetResult(pg->conn);
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
collect(struct gk_pg *pg, int sent, PGresult **out)
{
    PGresult *res = NULL;
    PGresult *extra = NULL;
    const char *state;
    ExecStatusType st;
    int64_t deadline;
    enum gk_err rc;

    *out = NULL;
    if (sent == 0) {
        gk_pg_set_error(pg, "postgres: %s", PQerrorMessage(pg->conn));
        gk_pg_disconnect(pg);
        rc = GK_EPG;
        goto out;
    }
    deadline = gk_mono_ms() + QUERY_TIMEOUT_MS;
    rc = await_result(pg, deadline, &res);
    if (rc != GK_OK)
        goto out;
    /* Read up to the end of the statement so the connection is ready for the next one. */
    do {
        PQclear(extra);
        rc = await_result(pg, deadline, &extra);
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
        gk_pg_set_error(pg, "postgres: %s (SQLSTATE %s)", PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY),
                        state != NULL ? state : "?");
    } else {
        gk_pg_set_error(pg, "postgres: %s", PQerrorMessage(pg->conn));
    }
    rc = map_sqlstate(state);
    /* Class 08 and 57P0x: the server is closing this session. */
    if (state != NULL && (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0))
        gk_pg_disconnect(pg);
out:
    PQclear(res);
    return rc;
}

enum gk_err
gk_pg_exec(struct gk_pg *pg, const char *sql, int nparams, const char *const *params, struct gk_pg_res **out)
{
    PGresult *res = NULL;
    enum gk_err rc = ensure_conn(pg);

    if (rc == GK_OK)
        rc = collect(pg, PQsendQueryParams(pg->conn, sql, nparams, NULL, params, NULL, NULL, 0), &res);
    *out = res_out(res);
    return rc;
}

enum gk_err
gk_pg_exec_plain(struct gk_pg *pg, const char *sql)
{
    struct gk_pg_res *res = NULL;
    enum gk_err rc = gk_pg_exec(pg, sql, 0, NULL, &res);

    gk_pg_res_free(res);
    return rc;
}

enum gk_err
gk_pg_exec_prepared(struct gk_pg *pg, const char *name, int nparams, const char *const *params,
                    struct gk_pg_res **out)
{
    PGresult *res = NULL;
    enum gk_err rc = ensure_conn(pg);

    if (rc == GK_OK)
        rc = collect(pg, PQsendQueryPrepared(pg->conn, name, nparams, params, NULL, NULL, 0), &res);
    *out = res_out(res);
    return rc;
}

bool
gk_pg_prepared(const struct gk_pg *pg, const char *name)
{
    for (size_t i = 0; i < pg->n_prepared; i++) {
        if (strcmp(pg->prepared[i], name) == 0)
            return true;
    }
    return false;
}

enum gk_err
gk_pg_prepare(struct gk_pg *pg, const char *name, const char *sql, int nparams)
{
    PGresult *res = NULL;
    enum gk_err rc = ensure_conn(pg);

    GK_ASSERT(strlen(name) < PREPARED_NAME_BUF);
    if (rc == GK_OK)
        rc = collect(pg, PQsendPrepare(pg->conn, name, sql, nparams, NULL), &res);
    PQclear(res);
    if (rc == GK_OK && !gk_pg_prepared(pg, name)) {
        GK_ASSERT(pg->n_prepared < PREPARED_MAX);
        memcpy(pg->prepared[pg->n_prepared++], name, strlen(name) + 1);
    }
    return rc;
}

enum gk_err
gk_pg_begin(struct gk_pg *pg)
{
    enum gk_err rc = gk_pg_exec_plain(pg, "BEGIN");

    if (rc == GK_OK)
        pg->in_tx = true;
    return rc;
}

enum gk_err
gk_pg_end(struct gk_pg *pg, enum gk_err rc)
{
    struct gk_pg_res *res = NULL;
    char saved[sizeof(pg->errmsg)];

    if (rc == GK_OK) {
        rc = gk_pg_exec(pg, "COMMIT", 0, NULL, &res);
        /* COMMIT of a transaction that failed answers ROLLBACK. */
        if (rc == GK_OK && strcmp(PQcmdStatus(res_in(res)), "COMMIT") != 0) {
            gk_pg_set_error(pg, "postgres: COMMIT answered %s", PQcmdStatus(res_in(res)));
            rc = GK_EPG;
        }
        gk_pg_res_free(res);
    } else if (pg->conn != NULL) {
        memcpy(saved, pg->errmsg, sizeof(saved));
        if (gk_pg_exec_plain(pg, "ROLLBACK") != GK_OK)
            gk_pg_disconnect(pg);
        memcpy(pg->errmsg, saved, sizeof(saved));
    }
    pg->in_tx = false;
    return rc;
}

enum gk_err
gk_pg_check_url(const char *url, char *err, size_t errlen)
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

struct gk_pg *
gk_pg_open(const char *url)
{
    struct gk_pg *pg = gk_xcalloc(1, sizeof(*pg));
    char esc[256];

    pg->url = gk_xstrdup(url);
    /* A failed first connect is retried by the next call, so the process can carry on. */
    if (reconnect(pg) != GK_OK)
        GK_LOG(GK_LOG_WARN, LOG_MOD, "msg=\"postgres not reachable yet\" err=\"%s\"",
               gk_log_escape(pg->errmsg, esc, sizeof(esc)));
    return pg;
}

void
gk_pg_close(struct gk_pg *pg)
{
    if (pg == NULL)
        return;
    gk_pg_disconnect(pg);
    free(pg->url);
    free(pg);
}

const char *
gk_pg_errmsg(const struct gk_pg *pg)
{
    return pg->errmsg;
}

enum gk_err
gk_pg_ping(struct gk_pg *pg)
{
    return gk_pg_exec_plain(pg, "SELECT 1");
}

enum gk_err
gk_pg_listen(struct gk_pg *pg, const char *channel)
{
    char sql[80];
    int n = snprintf(sql, sizeof(sql), "LISTEN %s", channel);
    enum gk_err rc;

    /* An identifier as it is: no quoting needed, nothing to inject. */
    GK_ASSERT(strspn(channel, "abcdefghijklmnopqrstuvwxyz_0123456789") == strlen(channel) && n > 0 &&
              (size_t)n < sizeof(sql));
    rc = gk_pg_exec_plain(pg, sql);
    if (rc == GK_OK)
        pg->listening = true;
    return rc;
}

/* Hands every queued notification to fn; returns how many it counted. */
static int
drain_notifies(struct gk_pg *pg, gk_pg_notify_fn fn, void *arg)
{
    PGnotify *nf;
    int n = 0;

    while ((nf = PQnotifies(pg->conn)) != NULL) {
        if (fn(arg, nf->relname, nf->extra))
            n++;
        PQfreemem(nf);
    }
    return n;
}

enum gk_err
gk_pg_wait_notify(struct gk_pg *pg, int timeout_ms, gk_pg_notify_fn fn, void *arg)
{
    int64_t deadline = gk_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    int64_t left;

    if (!pg->listening || pg->conn == NULL) {
        gk_pg_set_error(pg, "postgres: not listening (connection was lost)");
        return GK_EPG;
    }
    for (;;) {
        /* Notifications may already be queued, read along with an earlier statement's result. */
        if (PQconsumeInput(pg->conn) == 0) {
            gk_pg_set_error(pg, "postgres: %s", PQerrorMessage(pg->conn));
            gk_pg_disconnect(pg);
            return GK_EPG;
        }
        if (drain_notifies(pg, fn, arg) > 0)
            return GK_OK;
        left = deadline - gk_mono_ms();
        if (left <= 0)
            return GK_OK;
        if (wait_readable(pg->conn, left) < 0) {
            gk_pg_set_error(pg, "postgres: poll failed (errno %d)", errno);
            gk_pg_disconnect(pg);
            return GK_EPG;
        }
    }
}

const char *
gk_pg_inet_param(const char *ip)
{
    unsigned char addr[16];

    if (ip != NULL && (inet_pton(AF_INET, ip, addr) == 1 || inet_pton(AF_INET6, ip, addr) == 1))
        return ip;
    return NULL;
}

void
gk_pg_res_free(struct gk_pg_res *res)
{
    PQclear(res_in(res));
}

int
gk_pg_res_rows(const struct gk_pg_res *res)
{
    return PQntuples(res_in(res));
}

int
gk_pg_res_cols(const struct gk_pg_res *res)
{
    return PQnfields(res_in(res));
}

int
gk_pg_res_col(const struct gk_pg_res *res, const char *name)
{
    return PQfnumber(res_in(res), name);
}

const char *
gk_pg_res_value(const struct gk_pg_res *res, int row, int col)
{
    return PQgetvalue(res_in(res), row, col);
}

size_t
gk_pg_res_length(const struct gk_pg_res *res, int row, int col)
{
    return (size_t)PQgetlength(res_in(res), row, col);
}

bool
gk_pg_res_isnull(const struct gk_pg_res *res, int row, int col)
{
    return PQgetisnull(res_in(res), row, col) != 0;
}

int64_t
gk_pg_res_affected(const struct gk_pg_res *res)
{
    return strtoll(PQcmdTuples(res_in(res)), NULL, 10);
}
