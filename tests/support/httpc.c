/* SPDX-License-Identifier: MIT */
/* httpc.c -- a small raw HTTP/1.1 client, the server launcher, and the business and queue calls the
 * integration tests share. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "gk/token.h"
#include "support/gktest.h"

#define IO_TIMEOUT_MS 10000

long long
gktest_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long
gktest_unix_s(void)
{
    return (long long)time(NULL);
}

void
gktest_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

int
gktest_connect(uint16_t port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool
wait_fd(int fd, short ev, long long deadline)
{
    struct pollfd p = {.fd = fd, .events = ev};
    long long left = deadline - gktest_ms();

    return left > 0 && poll(&p, 1, (int)left) == 1;
}

const char *
gktest_header(const struct gktest_resp *r, const char *name, char *buf, size_t len)
{
    size_t nlen = strlen(name);
    const char *line;

    if (r->head == NULL)
        return NULL;
    for (line = strstr(r->head, "\r\n"); line != NULL; line = strstr(line, "\r\n")) {
        line += 2;
        if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1, *end;

            while (*v == ' ')
                v++;
            end = strstr(v, "\r\n");
            if (end == NULL)
                end = v + strlen(v);
            snprintf(buf, len, "%.*s", (int)(end - v), v);
            return buf;
        }
    }
    return NULL;
}

bool
gktest_exchange(int fd, const char *raw, size_t len, struct gktest_resp *out)
{
    long long deadline = gktest_ms() + (long long)IO_TIMEOUT_MS * gktest_slowdown();
    size_t cap = 4096, n = 0, sent = 0, head_len = 0, want = SIZE_MAX;
    char *buf = malloc(cap), cl[32];
    bool ok;

    memset(out, 0, sizeof(*out));
    while (sent < len) {
        ssize_t w;

        if (!wait_fd(fd, POLLOUT, deadline))
            break;
        w = send(fd, raw + sent, len - sent, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* the server may answer and close before reading everything */
        sent += (size_t)w;
    }
    for (;;) {
        ssize_t r;
        char *end;

        if (n + 1 >= cap)
            buf = realloc(buf, cap *= 2);
        if (head_len > 0 && n >= head_len + want)
            break;
        if (!wait_fd(fd, POLLIN, deadline))
            break;
        r = recv(fd, buf + n, cap - n - 1, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
        buf[n] = '\0';
        if (head_len == 0 && (end = strstr(buf, "\r\n\r\n")) != NULL) {
            head_len = (size_t)(end - buf) + 4;
            out->head = strndup(buf, head_len - 2);
            want = gktest_header(out, "Content-Length", cl, sizeof(cl)) != NULL ? strtoull(cl, NULL, 10)
                                                                                : SIZE_MAX;
        }
    }
    buf[n] = '\0';
    free(out->head);
    out->head = NULL;
    ok = gktest_parse_response(buf, n, out);
    free(buf);
    return ok;
}

bool
gktest_parse_response(const char *buf, size_t n, struct gktest_resp *out)
{
    const char *end = strstr(buf, "\r\n\r\n");
    size_t head_len, want;
    char cl[32];

    memset(out, 0, sizeof(*out));
    if (end == NULL)
        return false;
    head_len = (size_t)(end - buf) + 4;
    out->head = strndup(buf, head_len - 2);
    want = n - head_len;
    if (gktest_header(out, "Content-Length", cl, sizeof(cl)) != NULL && strtoull(cl, NULL, 10) < want)
        want = strtoull(cl, NULL, 10);
    out->status = atoi(buf + 9);
    out->body_len = want;
    out->body = strndup(buf + head_len, want);
    out->json = json_tokener_parse(out->body);
    return true;
}

size_t
gktest_send_read_all(int fd, const char *raw, size_t len, char *buf, size_t cap, int timeout_ms, bool *closed)
{
    long long deadline = gktest_ms() + (long long)timeout_ms * gktest_slowdown();
    size_t n = 0;

    *closed = false;
    if (send(fd, raw, len, MSG_NOSIGNAL) < 0)
        return 0;
    while (n + 1 < cap && wait_fd(fd, POLLIN, deadline)) {
        ssize_t r = recv(fd, buf + n, cap - n - 1, 0);

        if (r <= 0) {
            *closed = true;
            break;
        }
        n += (size_t)r;
    }
    buf[n] = '\0';
    return n;
}

void
gktest_http(uint16_t port, const char *method, const char *path, const char *headers, const char *body,
            struct gktest_resp *out)
{
    size_t blen = body != NULL ? strlen(body) : 0;
    size_t cap = strlen(path) + (headers != NULL ? strlen(headers) : 0) + blen + 256;
    char *raw = malloc(cap);
    int fd = gktest_connect(port);
    int len;

    ck_assert_msg(fd >= 0, "connect to %u failed", port);
    len = snprintf(raw, cap, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s%zu\r\n\r\n", method, path,
                   headers != NULL ? headers : "", "Content-Length: ", blen);
    if (blen > 0)
        memcpy(raw + len, body, blen);
    gktest_exchange(fd, raw, (size_t)len + blen, out);
    close(fd);
    free(raw);
}

const char *
gktest_json_str(const struct gktest_resp *r, const char *key)
{
    struct json_object *v = NULL;

    ck_assert_msg(r->json != NULL && json_object_object_get_ex(r->json, key, &v) &&
                      json_object_is_type(v, json_type_string),
                  "no string %s in %s", key, r->body != NULL ? r->body : "(no body)");
    return json_object_get_string(v);
}

long long
gktest_json_int(const struct gktest_resp *r, const char *path)
{
    struct json_object *v = r->json;
    char key[64];
    const char *p = path;

    while (*p != '\0') {
        size_t k = strcspn(p, ".");

        snprintf(key, sizeof(key), "%.*s", (int)k, p);
        ck_assert_msg(v != NULL && json_object_object_get_ex(v, key, &v), "no %s in %s", path,
                      r->body != NULL ? r->body : "(no body)");
        p += k + (p[k] == '.');
    }
    ck_assert_msg(json_object_is_type(v, json_type_int), "%s is not an integer in %s", path, r->body);
    return (long long)json_object_get_int64(v);
}

void
gktest_resp_free(struct gktest_resp *r)
{
    free(r->head);
    free(r->body);
    json_object_put(r->json);
    memset(r, 0, sizeof(*r));
}

void
gktest_expect_error(struct gktest_resp *r, int status, const char *code)
{
    char ct[64];

    ck_assert_msg(r->status == status, "want %d got %d: %s", status, r->status, r->body);
    ck_assert_str_eq(gktest_header(r, "Content-Type", ct, sizeof(ct)), "application/json");
    ck_assert_str_eq(gktest_json_str(r, "error"), code);
    ck_assert(strlen(gktest_json_str(r, "message")) > 0);
    gktest_resp_free(r);
}

uint16_t
gktest_free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert(fd >= 0);
    ck_assert(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    ck_assert(getsockname(fd, (struct sockaddr *)&sa, &sl) == 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* Whether one of extra sets the variable of entry ("NAME=value"). */
static bool
env_overridden(const char *entry, const char *const *extra)
{
    size_t n = strcspn(entry, "=") + 1;

    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
        if (strncmp(extra[i], entry, n) == 0)
            return true;
    }
    return false;
}

/* Builds the server environment: the extra entries, then the defaults they do not override. Each
 * variable appears once: programs that rebuild the environment (valgrind) may keep the last of
 * two, where getenv() takes the first. */
static char **
server_env(uint16_t port, const char *const *extra)
{
    static char buf[8][1200];
    char **env = calloc(64, sizeof(*env));
    size_t n = 0;

    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 48; i++)
        env[n++] = (char *)(uintptr_t)extra[i];
    snprintf(buf[0], sizeof(buf[0]), "PORT=%u", port);
    /* On a cluster (make test-cluster) the servers get its seed nodes instead, unless the test
     * names its own Redis. */
    if (getenv("GK_TEST_REDIS_CLUSTER_NODES") != NULL && !env_overridden("REDIS_URL=", extra))
        snprintf(buf[1], sizeof(buf[1]), "REDIS_CLUSTER_NODES=%s", gktest_env("GK_TEST_REDIS_CLUSTER_NODES"));
    else
        snprintf(buf[1], sizeof(buf[1]), "REDIS_URL=%s", gktest_env("GK_TEST_REDIS_URL"));
    snprintf(buf[2], sizeof(buf[2]), "DATABASE_URL=%s", gktest_env("GK_TEST_DATABASE_URL"));
    snprintf(buf[3], sizeof(buf[3]), "JWT_SECRET=%s", GKTEST_JWT_SECRET);
    snprintf(buf[4], sizeof(buf[4]), "ADMIN_TOKEN=%s", GKTEST_ADMIN_TOKEN);
    snprintf(buf[5], sizeof(buf[5]), "LOG_LEVEL=debug");
    snprintf(buf[6], sizeof(buf[6]), "HTTP_THREADS=2");
    /* Marks the process as the harness's, so run.sh can clean it up whatever happens. */
    snprintf(buf[7], sizeof(buf[7]), "GK_TEST_TMP=%s", gktest_env("GK_TEST_TMP"));
    for (size_t i = 0; i < 8; i++) {
        if (!env_overridden(buf[i], extra))
            env[n++] = buf[i];
    }
    env[n] = NULL;
    return env;
}

int
gktest_slowdown(void)
{
    const char *m = getenv("CK_TIMEOUT_MULTIPLIER");
    int v = m != NULL ? atoi(m) : 1;

    return v >= 1 ? v : 1;
}

/* argv for bin: GK_TEST_WRAPPER's words (split at spaces; `make valgrind` sets it to a valgrind
 * command line), then bin. Static storage: call in the forked child only. */
static char **
wrapped_argv(char *bin)
{
    static char words[2048];
    static char *argv[64];
    const char *w = getenv("GK_TEST_WRAPPER");
    size_t n = 0;
    char *save = NULL;

    if (w != NULL) {
        snprintf(words, sizeof(words), "%s", w);
        for (char *t = strtok_r(words, " ", &save); t != NULL && n < sizeof(argv) / sizeof(argv[0]) - 2;
             t = strtok_r(NULL, " ", &save))
            argv[n++] = t;
    }
    argv[n++] = bin;
    argv[n] = NULL;
    return argv;
}

/* execve, or through the wrapper: execvpe looks the wrapper up in the test's own PATH (the
 * server environment has none). */
static void
exec_binary(char *bin, char **env)
{
    char **argv = wrapped_argv(bin);

    execvpe(argv[0], argv, env);
}

/* Forks and execs build/<name> with the test environment, output appended to s->log. */
static void
spawn(struct gktest_server *s, const char *name, const char *const *extra_env)
{
    char bin[512];

    snprintf(bin, sizeof(bin), "%s/%s", gktest_env("GK_TEST_BUILD"), name);
    s->pid = fork();
    ck_assert(s->pid >= 0);
    if (s->pid == 0) {
        char **env = server_env(s->port, extra_env);
        int fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0644);

        dup2(fd, STDERR_FILENO);
        dup2(fd, STDOUT_FILENO);
        exec_binary(bin, env);
        _exit(127);
    }
}

/* A node answers before its first load of businesses from PostgreSQL, and until then calls an
 * unknown business 503, not 404 (docs/API.md). Tests expect a started server to know every
 * business, so wait for the 404; bounded and never failing, because some tests start a server
 * with PostgreSQL down. Slow starts (valgrind) made this visible. */
static void
wait_businesses_loaded(uint16_t port)
{
    static const char h[] =
        "business_id: gktest-no-such-business\r\nAuthorization: Bearer " GKTEST_ADMIN_TOKEN "\r\n";

    for (long long deadline = gktest_ms() + 5000LL * gktest_slowdown(); gktest_ms() < deadline;
         gktest_sleep_ms(10)) {
        struct gktest_resp r;
        int status;

        gktest_http(port, "GET", "/config", h, NULL, &r);
        status = r.status;
        gktest_resp_free(&r);
        if (status != 503)
            return;
    }
}

void
gktest_server_start(struct gktest_server *s, const char *const *extra_env)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        long long deadline;

        s->port = gktest_free_port();
        snprintf(s->log, sizeof(s->log), "%s/server-%u.log", gktest_env("GK_TEST_TMP"), s->port);
        spawn(s, "gatekeeper", extra_env);
        for (deadline = gktest_ms() + 10000LL * gktest_slowdown(); gktest_ms() < deadline;
             gktest_sleep_ms(20)) {
            static const char probe[] = "GET /health?shallow HTTP/1.1\r\nHost: x\r\n\r\n";
            struct gktest_resp r;
            int status, fd;

            if (waitpid(s->pid, &status, WNOHANG) == s->pid)
                break; /* died: port taken or bad config; retry or fail below */
            fd = gktest_connect(s->port);
            if (fd < 0)
                continue; /* not listening yet */
            gktest_exchange(fd, probe, sizeof(probe) - 1, &r);
            close(fd);
            status = r.status;
            gktest_resp_free(&r);
            if (status == 200) {
                wait_businesses_loaded(s->port);
                return;
            }
        }
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
    }
    ck_abort_msg("server did not start; see %s", s->log);
}

void
gktest_worker_start(struct gktest_server *w, const char *const *extra_env)
{
    static int n;

    w->port = 0;
    snprintf(w->log, sizeof(w->log), "%s/worker-%d-%d.log", gktest_env("GK_TEST_TMP"), (int)getpid(), n++);
    spawn(w, "gatekeeper-worker", extra_env);
}

int
gktest_wait_exit(struct gktest_server *s, long long ms)
{
    long long deadline = gktest_ms() + ms;
    int status;

    do {
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            s->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        gktest_sleep_ms(10);
    } while (gktest_ms() < deadline);
    return -1;
}

void
gktest_kill(struct gktest_server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
    }
    s->pid = 0;
}

void
gktest_server_stop(struct gktest_server *s)
{
    int status = 0;

    if (s->pid <= 0)
        return;
    kill(s->pid, SIGTERM);
    waitpid(s->pid, &status, 0);
    s->pid = 0;
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "server exit status %d; see %s", status,
                  s->log);
}

int
gktest_run_binary(const char *name, const char *const *env, char *err, size_t errlen)
{
    char bin[512];
    int pipefd[2], status = 0;
    size_t n = 0;
    pid_t pid;

    snprintf(bin, sizeof(bin), "%s/%s", gktest_env("GK_TEST_BUILD"), name);
    ck_assert(pipe(pipefd) == 0);
    pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        dup2(pipefd[1], STDERR_FILENO);
        close(pipefd[0]);
        exec_binary(bin, (char **)(uintptr_t)env);
        _exit(127);
    }
    close(pipefd[1]);
    /* A binary that got through its configuration would run on: give up on it after 5 s. */
    for (long long deadline = gktest_ms() + 5000LL * gktest_slowdown();;) {
        struct pollfd p = {.fd = pipefd[0], .events = POLLIN};
        long long left = deadline - gktest_ms();
        ssize_t r;

        if (left <= 0 || poll(&p, 1, (int)left) != 1)
            break;
        r = read(pipefd[0], err + n, errlen - 1 - n);
        if (r <= 0 || (n += (size_t)r) >= errlen - 1)
            break;
    }
    err[n] = '\0';
    close(pipefd[0]);
    if (waitpid(pid, &status, WNOHANG) == 0) {
        kill(pid, SIGTERM);
        waitpid(pid, &status, 0);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void
gktest_create_business(uint16_t port, const char *id, char *key, size_t keylen)
{
    struct gktest_resp r;
    char body[256];

    snprintf(body, sizeof(body), "{\"business_id\":\"%s\"}", id);
    gktest_http(port, "POST", "/businesses", "Authorization: Bearer " GKTEST_ADMIN_TOKEN "\r\n", body, &r);
    ck_assert_msg(r.status == 201, "create %s: %d %s", id, r.status, r.body);
    snprintf(key, keylen, "%s", gktest_json_str(&r, "admin_key"));
    gktest_resp_free(&r);
}

void
gktest_new_business(uint16_t port, const char *patch, char *id, size_t idlen)
{
    char key[64], h[256];
    struct gktest_resp r;

    gktest_unique_id("b", id, idlen);
    gktest_create_business(port, id, key, sizeof(key));
    snprintf(h, sizeof(h), "business_id: %s\r\nAuthorization: Bearer %s\r\n", id, key);
    gktest_http(port, "POST", "/config", h, patch, &r);
    ck_assert_msg(r.status == 200, "config %s: %d %s", patch, r.status, r.body);
    gktest_resp_free(&r);
}

void
gktest_enqueue(uint16_t port, const char *biz, const char *user, const char *extra, struct gktest_resp *r)
{
    char h[512];

    snprintf(h, sizeof(h), "business_id: %s\r\nuser_id: %s\r\n%s", biz, user, extra != NULL ? extra : "");
    gktest_http(port, "POST", "/queue/enqueue", h, NULL, r);
}

void
gktest_queue_call(const char *method, const char *path, const char *biz, const char *token,
                  struct gktest_resp *r)
{
    char h[2048];

    snprintf(h, sizeof(h), "business_id: %s\r\n%s%s%s", biz, token != NULL ? "jwt: " : "",
             token != NULL ? token : "", token != NULL ? "\r\n" : "");
    gktest_http(gktest_srv.port, method, path, h, NULL, r);
}

void
gktest_join(const char *biz, const char *user, char *tok)
{
    struct gktest_resp r;

    gktest_enqueue(gktest_srv.port, biz, user, NULL, &r);
    ck_assert_msg(r.status == 200, "enqueue %s: %d %s", user, r.status, r.body);
    snprintf(tok, GK_TOKEN_BUF, "%s", gktest_json_str(&r, "jwt"));
    ck_assert(tok[0] != '\0');
    gktest_resp_free(&r);
}

long long
gktest_position(const char *biz, const char *tok)
{
    struct gktest_resp r;
    struct json_object *p;
    long long v = -1;

    gktest_queue_call("GET", "/queue/status", biz, tok, &r);
    ck_assert_msg(r.status == 200, "status: %d %s", r.status, r.body);
    if (json_object_object_get_ex(r.json, "position", &p) && p != NULL)
        v = json_object_get_int64(p);
    gktest_resp_free(&r);
    return v;
}

struct gktest_server gktest_srv;

void
gktest_srv_up(void)
{
    gktest_server_start(&gktest_srv, NULL);
}

void
gktest_srv_up_test_clock(void)
{
    static const char *const env[] = {"GK_TEST_CLOCK=1", NULL};

    gktest_server_start(&gktest_srv, env);
}

void
gktest_srv_down(void)
{
    gktest_server_stop(&gktest_srv);
}

void
gktest_health_until(uint16_t port, int want, long long min_backlog, struct gktest_resp *out)
{
    long long t0 = gktest_ms();

    for (;;) {
        struct json_object *v = NULL;

        gktest_http(port, "GET", "/health", NULL, NULL, out);
        if (out->status == want &&
            (min_backlog < 0 ||
             (out->json != NULL && json_object_object_get_ex(out->json, "activity_backlog", &v) &&
              json_object_get_int64(v) >= min_backlog)))
            return;
        if (gktest_ms() - t0 > GKTEST_REFRESH_MS)
            return;
        gktest_resp_free(out);
        gktest_sleep_ms(100);
    }
}
