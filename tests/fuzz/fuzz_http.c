/* SPDX-License-Identifier: MIT */
/*
 * fuzz_http -- whole HTTP requests through the real server, as a client sends them: bytes on a
 * loopback TCP connection to gk_http_start(), so libmicrohttpd's request parser, http.c
 * (gk_req_header / gk_req_query / gk_req_cookie, body and header limits, connections suspended
 * while a queue operation waits for the Redis pipeline), the dispatcher, the router, CORS and
 * every handler run exactly as in production. Redis and PostgreSQL are
 * configured on port 1 of loopback, where nothing listens, so a handler that gets past its own
 * checks (headers, key, token, body, query) answers 503 at once; three businesses sit in the
 * config cache (not loaded from PostgreSQL), one with its own admin key.
 *
 * One input is one connection: the bytes are sent, the write side is shut, and the answers are
 * read until the server closes. Checks: the server closes within CLOSE_WAIT_MS of the client's
 * EOF (no hang), and it never answers 500 (a handler that failed to answer). Crashes, leaks and
 * undefined behaviour in the server thread are the sanitizers' to report.
 *
 * The corpus's tokens and keys are made with the secrets below (see corpus/fuzz_http/README).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fuzz/fuzz.h"
#include "gk/confcache.h"
#include "gk/crypto.h"
#include "gk/handlers.h"
#include "gk/http.h"
#include "gk/log.h"
#include "gk/monitor.h"
#include "gk/store.h"

#define JWT_SECRET "fuzz-jwt-secret-0123456789abcdefghijklmnop"
#define JWT_PREVIOUS "fuzz-previous-secret-zyxwvutsrqponmlkjihgf"
#define ADMIN_TOKEN "fuzz-admin-token-0123456789abcdefghijklmnop"
#define SHOP1_KEY "gk_fuzz-shop1-key-0123456789abcdefghijklmnopq"
#define CLOSE_WAIT_MS 5000
#define RESP_MAX (4 * 1024 * 1024)

static const char *const env_table[][2] = {
    {"BIND", "127.0.0.1"},
    {"REDIS_URL", "redis://127.0.0.1:1/0"},
    {"DATABASE_URL", "postgresql://fuzz@127.0.0.1:1/fuzz?connect_timeout=1"},
    {"JWT_SECRET", JWT_SECRET},
    {"JWT_SECRET_PREVIOUS", JWT_PREVIOUS},
    {"ADMIN_TOKEN", ADMIN_TOKEN},
    {"TRUSTED_PROXIES", "127.0.0.0/8, 10.0.0.0/8, ::1/128"},
    {"HTTP_THREADS", "1"},
    {"CONNECTION_TIMEOUT", "10"},
};

static struct gk_config cfg;
static struct gk_app app;
static uint16_t port;
static char *resp_buf;

/* Redis is never reached here, so it cannot turn out to evict keys. */
static void
refused(void)
{
    abort();
}

static const char *
env(void *arg, const char *key)
{
    (void)arg;
    for (size_t i = 0; i < GK_ARRAY_LEN(env_table); i++) {
        if (strcmp(env_table[i][0], key) == 0)
            return env_table[i][1];
    }
    return NULL;
}

static void
add_business(const char *id, const char *key, enum gk_qmethod m, const char *origin)
{
    struct gk_business b;

    memset(&b, 0, sizeof(b));
    gk_strlcpy(b.id, id, sizeof(b.id));
    b.version = 1;
    gk_bizconf_defaults(&b.conf);
    b.conf.queueing_method = m;
    if (key != NULL)
        gk_sha256_hex(key, strlen(key), b.admin_key_hash);
    if (origin != NULL) {
        b.conf.n_origins = 1;
        gk_strlcpy(b.conf.origins[0], origin, sizeof(b.conf.origins[0]));
    }
    gk_confcache_put(app.cache, &b);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct gk_http_opts opts = {.bind = "127.0.0.1", .port = 0, .threads = 1, .max_connections = 64};
    static struct gk_http_companion comp; /* the server keeps a copy, but it lives on anyway */
    struct gk_http *srv;
    char err[256];

    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    /* FUZZ_HTTP_LOG=debug shows the server's log lines; by default only errors. */
    gk_log_set_level(GK_LOG_ERROR);
    if (getenv("FUZZ_HTTP_LOG") != NULL) {
        enum gk_log_level lv;

        if (gk_log_parse_level(getenv("FUZZ_HTTP_LOG"), &lv) == GK_OK)
            gk_log_set_level(lv);
    }
    if (gk_config_load(&cfg, GK_PROG_SERVER, env, NULL, err, sizeof(err)) != GK_OK) {
        fprintf(stderr, "fuzz_http: config: %s\n", err);
        abort();
    }
    app.cfg = &cfg;
    app.cache = gk_confcache_new();
    app.tokens = gk_token_keys_new(cfg.jwt_secret, cfg.jwt_secret_previous);
    app.pow = gk_pow_new(cfg.jwt_secret, cfg.jwt_secret_previous);
    gk_sha256_hex(cfg.admin_token, strlen(cfg.admin_token), app.operator_key_hash);
    add_business("shop1", SHOP1_KEY, GK_QM_FIFO, NULL);
    add_business("shop2", NULL, GK_QM_REJECT, "https://shop2.example");
    add_business("shop3", NULL, GK_QM_PASSTHROUGH, "http://localhost:3000");
    FUZZ_CHECK(gk_handlers_init() == GK_OK);
    /* /health and /metrics read its snapshot: Redis and PostgreSQL down. */
    app.monitor = gk_monitor_start(&cfg, app.cache, refused);
    FUZZ_CHECK(app.monitor != NULL);
    opts.connection_timeout = cfg.connection_timeout;
    comp = gk_handlers_companion(&app);
    opts.companion = &comp;
    srv = gk_http_start(&opts, gk_handlers_dispatch, &app, err, sizeof(err));
    if (srv == NULL) {
        fprintf(stderr, "fuzz_http: %s\n", err);
        abort();
    }
    port = gk_http_port(srv);
    resp_buf = gk_xmalloc(RESP_MAX + 1);
    /* The server runs until the process exits: libFuzzer never returns to tear it down. */
    return 0;
}

static long long
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool
wait_fd(int fd, short ev, long long deadline)
{
    struct pollfd p = {.fd = fd, .events = ev};
    long long left = deadline - now_ms();
    int r;

    do
        r = poll(&p, 1, left > 0 ? (int)left : 0);
    while (r < 0 && errno == EINTR);
    return r == 1;
}

/* Every status line in the answers: none may be a 500. */
static void
check_answers(const char *buf, size_t n)
{
    for (const char *p = buf; p != NULL && p < buf + n; p = strstr(p, "\r\nHTTP/1.")) {
        if (p != buf)
            p += 2;
        if (n - (size_t)(p - buf) >= 12 && strncmp(p, "HTTP/1.", 7) == 0 && p[8] == ' ' &&
            memcmp(p + 9, "500", 3) == 0) {
            fprintf(stderr, "fuzz_http: the server answered 500:\n%.*s\n", (int)(n > 2048 ? 2048 : n), buf);
            abort();
        }
        p++;
    }
}

/* A connection from the next of 65534 loopback addresses (127.1.0.1 ...). The client closes
 * first, so each connection leaves a TIME_WAIT entry for a minute; thousands of inputs a second
 * from one address would run out of ephemeral ports, from many they cannot. */
static int
connect_server(struct sockaddr_in *server)
{
    static uint32_t next;

    for (int attempt = 0; attempt < 8; attempt++) {
        struct sockaddr_in local = {.sin_family = AF_INET};
        int fd = socket(AF_INET, SOCK_STREAM, 0);

        FUZZ_CHECK(fd >= 0);
        local.sin_addr.s_addr = htonl(0x7f010000u + 1 + next++ % 65534);
        if (bind(fd, (struct sockaddr *)&local, sizeof(local)) == 0 &&
            connect(fd, (struct sockaddr *)server, sizeof(*server)) == 0)
            return fd;
        close(fd);
    }
    fprintf(stderr, "fuzz_http: cannot connect to the server: %s\n", strerror(errno));
    abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    long long deadline;
    size_t sent = 0, got = 0;
    bool closed = false;
    int fd;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = connect_server(&sa);
    deadline = now_ms() + CLOSE_WAIT_MS;
    /* Inputs are small (-max_len), so the socket buffers hold the answers while this sends. */
    while (sent < size && wait_fd(fd, POLLOUT, deadline)) {
        ssize_t w = send(fd, data + sent, size - sent, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (w < 0 && errno != EAGAIN && errno != EINTR)
            break; /* the server answered and closed before reading everything */
        if (w > 0)
            sent += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    while (!closed && wait_fd(fd, POLLIN, deadline)) {
        char sink[4096];
        ssize_t r =
            got < RESP_MAX ? recv(fd, resp_buf + got, RESP_MAX - got, 0) : recv(fd, sink, sizeof(sink), 0);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            closed = true;
        else if (got < RESP_MAX)
            got += (size_t)r;
    }
    if (!closed) {
        fprintf(stderr, "fuzz_http: the server kept the connection open %d ms after the client's EOF\n",
                CLOSE_WAIT_MS);
        abort();
    }
    resp_buf[got] = '\0';
    check_answers(resp_buf, got);
    close(fd);
    return 0;
}
