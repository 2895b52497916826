/* SPDX-License-Identifier: MIT */
/*
 * gktest -- shared helpers for the integration tests: the environment run.sh provides, a raw
 * HTTP/1.1 client over a socket, and starting/stopping the built server binary.
 */
#ifndef GK_TEST_H
#define GK_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "gk/monitor.h"

/* Exits with a message unless run.sh's variables are all set. */
void gktest_require_env(void);
/* Value of a run.sh variable (GK_TEST_REDIS_URL, GK_TEST_DATABASE_URL, GK_TEST_BUILD,
 * GK_TEST_TMP, GK_TEST_PGCTL, GK_TEST_REDISCTL). Borrowed from the environment. */
const char *gktest_env(const char *name);
/* Runs "$GK_TEST_PGCTL stop|start" (or REDISCTL); aborts the test if it fails. */
void gktest_pgctl(const char *verb);
void gktest_redisctl(const char *verb);
/* Sends sig to the harness's redis-server (SIGSTOP: a Redis that hangs rather than refuses). */
void gktest_signal_redis(int sig);
/* The port of the Redis that holds key: the harness's one Redis, or on a cluster (GK_IT_CLUSTER=1)
 * the master that serves key's slot now, found with the library's slot map (gk/cluster.h). */
int gktest_redis_port_for(const char *key);
/* Runs one command through redis-cli against the harness's Redis (on a cluster, the node that
 * holds its key); asserts it is no error. */
void gktest_redis(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same, for a command whose answer is an integer (or a number string; nil = 0). */
long long gktest_redis_int(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Runs one SQL statement through psql against the harness's PostgreSQL and returns its whole
 * output (rows "a|b", one per line) in out; asserts that it succeeded. */
void gktest_psql(char *out, size_t outlen, const char *sql);
/* The same, for a statement whose output is one number. */
long long gktest_psql_int(const char *sql);
/* A queue script as the build embeds it: src/scripts/common.lua followed by src/scripts/<name>.lua,
 * or by body when name is NULL. Caller frees. */
char *gktest_lua(const char *name, const char *body);
/* EVALs script against the harness's Redis with nkeys keys then the args (argv, argc strings in
 * all); asserts the reply is no error. Caller frees with freeReplyObject(). */
struct redisReply *gktest_eval(const char *script, int nkeys, const char *const *argv, int argc);
/* How many entries of type the business's activity stream holds (those no worker consumed). */
long long gktest_stream_events(const char *business, const char *type);
/* Waits (up to 10 s) until the business has had at least n admission ticks. */
void gktest_wait_ticks(const char *business, long long n);
/* A unique id with the given prefix ("biz" -> "biz-<pid>-<n>"), for tests that must not share
 * state. Written into out (>= 64 bytes). */
void gktest_unique_id(const char *prefix, char *out, size_t outlen);
/* True when s ends with suffix. */
bool gktest_ends_with(const char *s, const char *suffix);

struct json_object;

/* The operator key every test server starts with. */
#define GKTEST_ADMIN_TOKEN "test-operator-key-0123456789abcdefghijklmnop"
#define GKTEST_JWT_SECRET "test-jwt-secret-0123456789abcdefghijklmnopqrstuv"

/* One parsed HTTP response. Caller frees with gktest_resp_free(). */
struct gktest_resp {
    int status; /* 0 when the connection closed without a response */
    char *head; /* status line and headers */
    char *body; /* NUL-terminated */
    size_t body_len;
    struct json_object *json; /* parsed body when it is JSON, else NULL */
};

/* A TCP port free on 127.0.0.1 right now (another process may take it before the caller binds). */
uint16_t gktest_free_port(void);
/* Connects to 127.0.0.1:port; -1 on failure. */
int gktest_connect(uint16_t port);
/* Sends raw bytes on fd and reads one response (10 s timeout). False when nothing came back. */
bool gktest_exchange(int fd, const char *raw, size_t len, struct gktest_resp *out);
/* Parses the first response in buf[0..n) (its body cut at Content-Length). False when buf holds
 * no complete head. */
bool gktest_parse_response(const char *buf, size_t n, struct gktest_resp *out);
/* Sends raw bytes on fd, then reads everything until the server closes or timeout_ms passes.
 * Returns the bytes read into buf (NUL-terminated, at most cap - 1); *closed tells whether the
 * server closed (end of stream or reset) rather than the time running out. */
size_t gktest_send_read_all(int fd, const char *raw, size_t len, char *buf, size_t cap, int timeout_ms,
                            bool *closed);
/* One request on a fresh connection. headers: "Name: value\r\n" lines or NULL; body may be NULL. */
void gktest_http(uint16_t port, const char *method, const char *path, const char *headers, const char *body,
                 struct gktest_resp *out);
/* Header value (case-insensitive name) copied into buf, or NULL. */
const char *gktest_header(const struct gktest_resp *r, const char *name, char *buf, size_t len);
/* Body JSON member as a string / integer (asserts that it exists and has that type). */
const char *gktest_json_str(const struct gktest_resp *r, const char *key);
long long gktest_json_int(const struct gktest_resp *r, const char *path); /* "a" or "a.b" */
void gktest_resp_free(struct gktest_resp *r);
/* Asserts status, JSON content type and error code of r (and a message), then frees it. */
void gktest_expect_error(struct gktest_resp *r, int status, const char *code);

/* A running build/gatekeeper. */
struct gktest_server {
    pid_t pid;
    uint16_t port;
    char log[512];
};

/* How long /health and the queue metrics may take to show a change: the monitor's background pass
 * (gk/monitor.h), twice, plus the time a failing check may take; longer where the binaries run
 * slower (gktest_slowdown: sanitizers, valgrind). */
#define GKTEST_REFRESH_MS ((2 * GK_MONITOR_PERIOD_MS + 3000) * gktest_slowdown())
/* Polls GET /health on port until it answers want with an activity_backlog of at least
 * min_backlog (< 0: any, or none), or GKTEST_REFRESH_MS has passed; the last answer goes into
 * out (caller frees), whatever it was. Asserts nothing, so it may run while a service is down. */
void gktest_health_until(uint16_t port, int want, long long min_backlog, struct gktest_resp *out);

/* Starts the server on a free port with the harness's Redis and PostgreSQL, the test secrets and
 * extra "KEY=VALUE" entries (NULL-terminated, may be NULL), and waits until it answers. */
void gktest_server_start(struct gktest_server *s, const char *const *extra_env);
/* The server of a TCase: unchecked fixtures start it before the TCase's tests (plain, or with
 * GK_TEST_CLOCK=1) and stop it after them. */
extern struct gktest_server gktest_srv;
void gktest_srv_up(void);
void gktest_srv_up_test_clock(void);
void gktest_srv_down(void);
/* Starts build/gatekeeper-worker with the same environment (no readiness check: a worker has
 * no port). */
void gktest_worker_start(struct gktest_server *w, const char *const *extra_env);
/* Waits up to ms for s to exit: its exit status (128 + signal when killed), or -1 if it still
 * runs. */
int gktest_wait_exit(struct gktest_server *s, long long ms);
/* SIGKILL, then reaps. */
void gktest_kill(struct gktest_server *s);
/* SIGTERM, then waits; asserts a clean exit (0). Works for workers too. */
void gktest_server_stop(struct gktest_server *s);
/* Runs a binary from the build dir with only the given environment (NULL-terminated "K=V").
 * Returns its exit status; its stderr goes into err (NUL-terminated). */
int gktest_run_binary(const char *name, const char *const *env, char *err, size_t errlen);
/* Creates a business through POST /businesses; copies its admin key into key (>= 64 bytes). */
void gktest_create_business(uint16_t port, const char *id, char *key, size_t keylen);
/* Creates a business with a unique id (into id, >= 64 bytes) and applies the config patch (a JSON
 * object text, "{}" for defaults). */
void gktest_new_business(uint16_t port, const char *patch, char *id, size_t idlen);
/* The queue endpoints, as a visitor's page calls them. POST /queue/enqueue as user of biz on port;
 * extra: more header lines ("Name: value\r\n") or NULL. */
void gktest_enqueue(uint16_t port, const char *biz, const char *user, const char *extra,
                    struct gktest_resp *r);
/* A token endpoint of gktest_srv for biz, with token in the jwt header (NULL: no header). */
void gktest_queue_call(const char *method, const char *path, const char *biz, const char *token,
                       struct gktest_resp *r);
/* Enqueues a new user of biz on gktest_srv (asserts 200) and copies their token into tok
 * (>= GK_TOKEN_BUF). */
void gktest_join(const char *biz, const char *user, char *tok);
/* The position GET /queue/status on gktest_srv gives tok's user (asserts 200), or -1 when null. */
long long gktest_position(const char *biz, const char *tok);
/* How many times slower than usual the binaries run (CK_TIMEOUT_MULTIPLIER, default 1: 3 under
 * the sanitizers, more under valgrind); waits for the server scale with it. */
int gktest_slowdown(void);
/* Milliseconds on a monotonic clock. */
long long gktest_ms(void);
/* Seconds since the Unix epoch (token claims are wall-clock times). */
long long gktest_unix_s(void);
/* Sleeps ms milliseconds. */
void gktest_sleep_ms(int ms);

#endif
