/* SPDX-License-Identifier: MIT */
/*
 * pg -- one PostgreSQL connection: connect and reconnect, deadlines, parameterized statements,
 * transactions, LISTEN. The only module that includes libpq; what cfgstore and activitylog send
 * goes through here, and no libpq type leaks out (a result is the opaque struct gk_pg_res).
 *
 * One handle = one connection; not thread-safe: open one per thread. A handle whose connection
 * broke, or whose statement got no answer in time, reconnects on its next call, so a process can
 * start while PostgreSQL is down. The last error's text stays in the handle (gk_pg_errmsg).
 */
#ifndef GK_PG_H
#define GK_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gk/util.h"

/* Parameters are texts: room for a uint32 and an int64 in decimal. */
#define GK_PG_U32_BUF 11
#define GK_PG_I64_BUF 21

struct gk_pg;     /* opaque: one connection */
struct gk_pg_res; /* opaque: the result of one statement */

/* Checks that url is a connection string libpq accepts (URI or key=value), ports included.
 * GK_EINVAL with the reason in err otherwise. Does not connect. */
GK_MUSTCHECK enum gk_err gk_pg_check_url(const char *url, char *err, size_t errlen);

/* Creates a handle for url and tries to connect (connect timeout 3 s, statement timeout 5 s, a
 * client-side deadline of 6 s per statement). Never NULL: a handle whose first connect failed
 * (logged) reconnects on its next call. Caller owns the result; release with gk_pg_close(). */
struct gk_pg *gk_pg_open(const char *url);
/* Closes and frees; NULL is accepted. */
void gk_pg_close(struct gk_pg *pg);
/* Last error text, one line. Borrowed: valid until the next call on pg. */
const char *gk_pg_errmsg(const struct gk_pg *pg);
/* SELECT 1. GK_EPG when PostgreSQL cannot be reached. */
GK_MUSTCHECK enum gk_err gk_pg_ping(struct gk_pg *pg);

/* ---- for the modules that own the SQL (cfgstore, activitylog) ---- */

/* Sets the error text gk_pg_errmsg returns (newlines and tabs become spaces). */
void gk_pg_set_error(struct gk_pg *pg, const char *fmt, ...) GK_PRINTF(2, 3);
/* True while the handle holds a connection (false after a failure dropped it). */
bool gk_pg_connected(const struct gk_pg *pg);
/* Drops the connection (the next call makes a new one): ends the session and all it held. */
void gk_pg_disconnect(struct gk_pg *pg);

/* Runs one statement with text parameters (NULL entries are SQL NULL), (re)connecting first when
 * needed. On GK_OK *out holds its result (caller frees with gk_pg_res_free); else *out is NULL
 * and the text is in gk_pg_errmsg: GK_EINVAL when the database refused a value (SQLSTATE class
 * 22 or a CHECK violation), GK_EPG for everything else. */
GK_MUSTCHECK enum gk_err gk_pg_exec(struct gk_pg *pg, const char *sql, int nparams, const char *const *params,
                                    struct gk_pg_res **out);
/* gk_pg_exec without parameters, for a statement whose result is only its status. */
GK_MUSTCHECK enum gk_err gk_pg_exec_plain(struct gk_pg *pg, const char *sql);

/* True when name is prepared on the current connection (a new connection has none). */
bool gk_pg_prepared(const struct gk_pg *pg, const char *name);
/* Prepares sql as name on the current connection, parameter types inferred. At most 4 names per
 * handle, of up to 63 bytes. */
GK_MUSTCHECK enum gk_err gk_pg_prepare(struct gk_pg *pg, const char *name, const char *sql, int nparams);
/* gk_pg_exec for the statement prepared as name. */
GK_MUSTCHECK enum gk_err gk_pg_exec_prepared(struct gk_pg *pg, const char *name, int nparams,
                                             const char *const *params, struct gk_pg_res **out);

/* BEGIN. Until gk_pg_end, a lost connection is an error and never silently replaced, so no
 * statement of the transaction can end up committed on its own. */
GK_MUSTCHECK enum gk_err gk_pg_begin(struct gk_pg *pg);
/* Ends the transaction begun with gk_pg_begin: COMMIT when rc is GK_OK (an error when it did not
 * commit), else ROLLBACK, keeping the error text of the failure and returning rc. A connection
 * whose ROLLBACK failed is dropped, so it never carries a transaction on. */
GK_MUSTCHECK enum gk_err gk_pg_end(struct gk_pg *pg, enum gk_err rc);

/* LISTEN channel (a plain lower-case identifier) on this connection. A reconnect ends it:
 * gk_pg_wait_notify then answers GK_EPG and the caller listens again. */
GK_MUSTCHECK enum gk_err gk_pg_listen(struct gk_pg *pg, const char *channel);
/* Called once per notification (both texts borrowed for the call); true when it counted. */
typedef bool (*gk_pg_notify_fn)(void *arg, const char *channel, const char *payload);
/* Waits up to timeout_ms until a notification fn counts, handing fn every one that arrived. GK_OK
 * on timeout or after that; GK_EPG when not listening or the connection broke (then dropped). */
GK_MUSTCHECK enum gk_err gk_pg_wait_notify(struct gk_pg *pg, int timeout_ms, gk_pg_notify_fn fn, void *arg);

/* The parameter for an inet column: ip, or NULL (SQL NULL) for NULL, "" or anything that is not
 * an IPv4 or IPv6 address, which the cast would refuse along with the whole statement. */
const char *gk_pg_inet_param(const char *ip);

/* ---- results; every accessor takes row and column numbers within range ---- */

/* NULL is accepted. */
void gk_pg_res_free(struct gk_pg_res *res);
int gk_pg_res_rows(const struct gk_pg_res *res);
int gk_pg_res_cols(const struct gk_pg_res *res);
/* The number of the column called name, -1 when there is none. */
int gk_pg_res_col(const struct gk_pg_res *res, const char *name);
/* The value as text ("" for NULL), borrowed until gk_pg_res_free; its length in bytes. */
const char *gk_pg_res_value(const struct gk_pg_res *res, int row, int col);
size_t gk_pg_res_length(const struct gk_pg_res *res, int row, int col);
bool gk_pg_res_isnull(const struct gk_pg_res *res, int row, int col);
/* Rows an INSERT, UPDATE or DELETE touched (0 for other statements). */
int64_t gk_pg_res_affected(const struct gk_pg_res *res);

#endif
