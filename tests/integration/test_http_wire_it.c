/* SPDX-License-Identifier: MIT */
/*
 * test_http_wire_it.c -- the built server binary over a raw socket, against real Redis and
 * PostgreSQL: what it does with the bytes of a connection. Malformed first lines and header lines,
 * NUL bytes, smuggling shapes, oversized heads and chunked bodies (a JSON answer and a close at
 * once, never a hang), the request deadline (CONNECTION_TIMEOUT=1 s), and one event loop with 128
 * or 256 requests ready at once or a client that half-closes. The API's conventions over HTTP are
 * in test_http_it.c.
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "integration/suites.h"
#include "support/gktest.h"

#define OPERATOR "Authorization: Bearer " GKTEST_ADMIN_TOKEN "\r\n"

/* ---- malformed, smuggled and oversized requests ---- */

START_TEST(oversized_chunked_body_is_refused)
{
    static const char head[] = "POST /businesses HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                               "Authorization: Bearer " GKTEST_ADMIN_TOKEN "\r\n\r\n";
    size_t chunk = 8192, total = sizeof(head) - 1 + 10 * (chunk + 16) + 8;
    char *raw = malloc(total), *p = raw;
    int fd = gktest_connect(gktest_srv.port);
    struct gktest_resp r;

    p += sprintf(p, "%s", head);
    for (int i = 0; i < 10; i++) {
        p += sprintf(p, "%zx\r\n", chunk);
        memset(p, 'x', chunk);
        p += chunk;
        p += sprintf(p, "\r\n");
    }
    p += sprintf(p, "0\r\n\r\n");
    /* Either a 413 or a closed connection: never a 2xx and never a hang. */
    if (gktest_exchange(fd, raw, (size_t)(p - raw), &r))
        ck_assert_int_eq(r.status, 413);
    gktest_resp_free(&r);
    close(fd);
    free(raw);
    gktest_http(gktest_srv.port, "GET", "/health?shallow", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    gktest_resp_free(&r);
}
END_TEST

START_TEST(garbage_and_huge_headers_do_not_hurt)
{
    static const char garbage[] = "\x01\x02 NOT HTTP\r\n\r\n";
    size_t big = 40 * 1024;
    char *raw = malloc(big + 128);
    struct gktest_resp r;
    int fd = gktest_connect(gktest_srv.port), n;

    if (gktest_exchange(fd, garbage, sizeof(garbage) - 1, &r))
        ck_assert_int_ge(r.status, 400);
    gktest_resp_free(&r);
    close(fd);
    n = sprintf(raw, "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(raw + n, 'a', big);
    n += (int)big;
    n += sprintf(raw + n, "\r\n\r\n");
    fd = gktest_connect(gktest_srv.port);
    if (gktest_exchange(fd, raw, (size_t)n, &r))
        ck_assert_int_ge(r.status, 400);
    gktest_resp_free(&r);
    close(fd);
    free(raw);
    gktest_http(gktest_srv.port, "GET", "/health?shallow", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    gktest_resp_free(&r);
}
END_TEST

/* Sends raw on fd and reads until the server closes (5 s at most), then closes fd: asserts
 * exactly one answer, status and error code in a JSON body, and the close. */
static void
expect_error_then_close(int fd, const char *raw, size_t len, int status, const char *code)
{
    char buf[8192];
    struct gktest_resp r;
    bool closed;
    size_t n;

    ck_assert_int_ge(fd, 0);
    n = gktest_send_read_all(fd, raw, len, buf, sizeof(buf), 5000, &closed);
    close(fd);
    ck_assert_msg(closed, "not closed after: %s", buf);
    ck_assert_msg(gktest_parse_response(buf, n, &r), "no answer before the close");
    ck_assert_msg(strlen(r.head) + 2 + r.body_len == n, "more than one answer: %s", buf);
    gktest_expect_error(&r, status, code);
}

/* The same on a fresh connection, raw sent right after the connect. */
static void
expect_raw_error_then_close(const char *raw, size_t len, int status, const char *code)
{
    expect_error_then_close(gktest_connect(gktest_srv.port), raw, len, status, code);
}

/* A smuggled request hidden after a body the framing headers disagree on is never answered. */
START_TEST(smuggling_shapes_are_400_and_close)
{
    static const char smuggled[] = "GET /health?shallow HTTP/1.1\r\nHost: x\r\n\r\n";
    static const char *const heads[] = {
        "POST /businesses HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\n",
        "POST /businesses HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        "0\r\n\r\n",
        "POST /businesses HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\nContent-Length: 0\r\n\r\n",
    };
    char raw[512];

    for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
        int n = snprintf(raw, sizeof(raw), "%s%s", heads[i], smuggled);

        expect_raw_error_then_close(raw, (size_t)n, 400, "invalid_header");
    }
}
END_TEST

/* First lines and header lines libmicrohttpd answered in HTML, or took for blank lines (NUL bytes)
 * and then waited on until CONNECTION_TIMEOUT: JSON, and closed at once. */
START_TEST(malformed_first_lines_are_json_and_close_at_once)
{
    static const struct {
        const char *raw;
        size_t len;
        int status;
        const char *code;
    } cases[] = {
#define RAW(s) s, sizeof(s) - 1
        {RAW("\0\0\0\0\r\n\r\n"), 400, "bad_request"},
        {RAW("\0\0\0 / HTTP/1.1\r\nHost: x\r\n\r\n"), 400, "bad_request"},
        {RAW(" / HTTP/1.1\r\nHost: x\r\n\r\n"), 400, "bad_request"},
        {RAW("\x01\x02 NOT HTTP\r\n\r\n"), 400, "bad_request"},
        {RAW("GET /health?shallow\r\n\r\n"), 400, "bad_request"},
        {RAW("GET /hea\0lth?shallow HTTP/1.1\r\nHost: x\r\n\r\n"), 400, "bad_request"},
        {RAW("GET /health?shallow HTTP/2.0\r\nHost: x\r\n\r\n"), 505, "http_version_not_supported"},
        {RAW("GET /health?shallow HTTP/1.1\r\nHost x\r\n\r\n"), 400, "bad_request"},
        {RAW("GET /health?shallow HTTP/1.1\r\nHost: x\r\nbusi\0ness_id: b\r\n\r\n"), 400, "bad_request"},
        {RAW("GET /health?shallow HTTP/1.1\r\nX Y: z\r\n\r\n"), 400, "bad_request"},
#undef RAW
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        long long t0 = gktest_ms();

        expect_raw_error_then_close(cases[i].raw, cases[i].len, cases[i].status, cases[i].code);
        ck_assert_msg(gktest_ms() - t0 < 1000, "case %zu closed after %lld ms", i, gktest_ms() - t0);
    }
}
END_TEST

/* The first request is looked at before libmicrohttpd reads any of it, however its bytes come:
 * right behind the connect (libmicrohttpd used to read those first, now and then, and answer in
 * HTML), NUL bytes that never end a line, or a head in two writes. Each bad one is JSON and
 * closed at once; a good one in two writes is served. */
START_TEST(first_request_is_checked_however_its_bytes_come)
{
    static const char nul_name[] = "GET /health?shallow HTTP/1.1\r\nHost: x\r\nbusi\0ness_id: b\r\n\r\n";
    static const char nuls[] = "\0\0\0\0\0\0\0\0";
#define PIECE(s) s, sizeof(s) - 1
    static const struct {
        const char *first;
        const char *second;
        size_t second_len;
        int status; /* 200: served */
        const char *code;
    } pieces[] = {
        {"GET /health?sha", PIECE("llow HTTP/1.1\r\nHost: x\r\n\r\n"), 200, NULL},
        {"GET /health?shallow HTTP/1.1\r\nHo", PIECE("st: x\r\n\r\n"), 200, NULL},
        {"GET /health?sha", PIECE("llow\x01 HTTP/1.1\r\nHost: x\r\n\r\n"), 400, "bad_request"},
        {"GET /health?shallow HTTP/", PIECE("2.0\r\nHost: x\r\n\r\n"), 505, "http_version_not_supported"},
        {"GET /health?shallow HTTP/1.1\r\n", PIECE("Host x\r\n\r\n"), 400, "bad_request"},
        {"GET /health?shallow HTTP/1.1\r\nHost: x\r\n", PIECE("busi\0ness_id: b\r\n\r\n"), 400,
         "bad_request"},
        {"\r\n", PIECE("\0\0\0\0"), 400, "bad_request"},
    };
#undef PIECE
    long long t0;

    for (int i = 0; i < 300; i++) {
        t0 = gktest_ms();
        expect_raw_error_then_close(nul_name, sizeof(nul_name) - 1, 400, "bad_request");
        ck_assert_msg(gktest_ms() - t0 < 1000, "connection %d closed after %lld ms", i, gktest_ms() - t0);
    }
    t0 = gktest_ms();
    expect_raw_error_then_close(nuls, sizeof(nuls) - 1, 400, "bad_request");
    ck_assert_msg(gktest_ms() - t0 < 1000, "NUL bytes closed after %lld ms", gktest_ms() - t0);
    for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
        int fd = gktest_connect(gktest_srv.port);
        struct gktest_resp r;
        char ct[64];

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, pieces[i].first, strlen(pieces[i].first)),
                         (ssize_t)strlen(pieces[i].first));
        gktest_sleep_ms(100); /* the server sees the first piece alone */
        t0 = gktest_ms();
        if (pieces[i].status != 200) {
            expect_error_then_close(fd, pieces[i].second, pieces[i].second_len, pieces[i].status,
                                    pieces[i].code);
            ck_assert_msg(gktest_ms() - t0 < 1000, "case %zu closed after %lld ms", i, gktest_ms() - t0);
            continue;
        }
        ck_assert_msg(gktest_exchange(fd, pieces[i].second, pieces[i].second_len, &r), "case %zu: no answer",
                      i);
        close(fd);
        ck_assert_msg(r.status == 200, "case %zu: %d %s", i, r.status, r.body);
        ck_assert_str_eq(gktest_header(&r, "Content-Type", ct, sizeof(ct)), "application/json");
        gktest_resp_free(&r);
    }
}
END_TEST

/* MHD cuts a value at a NUL byte ("ab<NUL>cd" was the user "ab"): refused, naming the header. */
START_TEST(nul_in_a_header_value_is_400)
{
    static const char middle[] = "POST /queue/enqueue HTTP/1.1\r\nHost: x\r\nbusiness_id: b\r\n"
                                 "user_id: ab\0cd\r\nContent-Length: 0\r\n\r\n";
    static const char last[] = "GET /health?shallow HTTP/1.1\r\nHost: x\r\nX-Note: ab\0\r\n\r\n";
    struct gktest_resp r;
    int fd = gktest_connect(gktest_srv.port);

    ck_assert(gktest_exchange(fd, middle, sizeof(middle) - 1, &r));
    close(fd);
    ck_assert_str_eq(gktest_json_str(&r, "field"), "user_id");
    gktest_expect_error(&r, 400, "invalid_header");
    fd = gktest_connect(gktest_srv.port);
    ck_assert(gktest_exchange(fd, last, sizeof(last) - 1, &r));
    close(fd);
    ck_assert_str_eq(gktest_json_str(&r, "field"), "X-Note");
    gktest_expect_error(&r, 400, "invalid_header");
}
END_TEST

/* Over GK_HTTP_HEADERS_MAX (16 KiB) but within libmicrohttpd's pool: our JSON 431. */
START_TEST(oversized_head_is_431_json)
{
    size_t big = 17 * 1024;
    char *h = malloc(big + 16);
    struct gktest_resp r;

    strcpy(h, "X-Big: ");
    memset(h + 7, 'a', big);
    strcpy(h + 7 + big, "\r\n");
    gktest_http(gktest_srv.port, "GET", "/health?shallow", h, NULL, &r);
    free(h);
    gktest_expect_error(&r, 431, "headers_too_large");
}
END_TEST

/* ---- one event loop with 128 or 256 requests ready at once ---- */

/* MHD 0.9.75's epoll loop stalls until the next connection timeout when exactly 128 events are
 * ready and it may block (docs/DEVELOPMENT.md). Our loops never let MHD block: n connections to a
 * one-loop server send a request each at once, five times over, and every answer must come
 * within 5 s (CONNECTION_TIMEOUT is 30 s here, so a stall would show). */
static void
all_answered_at_once(uint16_t port, int n)
{
    static const char req[] = "GET /health?shallow HTTP/1.1\r\nHost: t\r\n\r\n";
    struct pollfd *fds = calloc((size_t)n, sizeof(*fds));
    int *got = calloc((size_t)n, sizeof(*got));

    for (int i = 0; i < n; i++) {
        fds[i].fd = gktest_connect(port);
        fds[i].events = POLLIN;
        ck_assert_int_ge(fds[i].fd, 0);
    }
    for (int round = 0; round < 5; round++) {
        long long deadline = gktest_ms() + 5000;
        int left = n;

        for (int i = 0; i < n; i++) {
            ck_assert_int_eq(write(fds[i].fd, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
            got[i] = 0;
        }
        while (left > 0) {
            ck_assert_msg(gktest_ms() < deadline, "%d connections: %d of %d unanswered after 5 s (round %d)",
                          n, left, n, round);
            ck_assert_int_ge(poll(fds, (nfds_t)n, 100), 0);
            for (int i = 0; i < n; i++) {
                char buf[1024];
                ssize_t r;

                if (!(fds[i].revents & POLLIN) || got[i])
                    continue;
                r = read(fds[i].fd, buf, sizeof(buf) - 1);
                ck_assert_int_gt(r, 0);
                buf[r] = '\0';
                /* Small enough to arrive in one piece on loopback. */
                ck_assert_msg(strstr(buf, "HTTP/1.1 200") != NULL && strstr(buf, "healthy") != NULL, "%s",
                              buf);
                got[i] = 1;
                left--;
            }
        }
    }
    for (int i = 0; i < n; i++)
        close(fds[i].fd);
    free(fds);
    free(got);
}

/* An idle loop sleeps up to a second in poll: a request answered by an offload thread must wake
 * it, and a client that sends its last bytes and its end of stream together must be closed at
 * once (MHD's epoll mode alone misses that end of stream). */
START_TEST(idle_loop_wakes_for_offloaded_answers_and_half_closed_clients)
{
    static const char *const env[] = {"HTTP_THREADS=1", "CONNECTION_TIMEOUT=30", NULL};
    static const char partial[] = "GET /health HTTP/1.1\r\nHo";
    struct gktest_server one;
    struct gktest_resp r;
    char buf[256];
    long long t0;
    int fd;

    gktest_server_start(&one, env);
    for (int i = 0; i < 3; i++) {
        gktest_sleep_ms(300); /* the loop is asleep again */
        t0 = gktest_ms();
        /* An offloaded route (the admin routes are; /health answers on the loop). */
        gktest_http(one.port, "GET", "/config", "business_id: no-such-business\r\n" OPERATOR, NULL, &r);
        ck_assert_int_eq(r.status, 404);
        ck_assert_msg(gktest_ms() - t0 < 500, "GET /config took %lld ms", gktest_ms() - t0);
        gktest_resp_free(&r);
    }
    fd = gktest_connect(one.port);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, partial, sizeof(partial) - 1), (ssize_t)sizeof(partial) - 1);
    shutdown(fd, SHUT_WR);
    t0 = gktest_ms();
    ck_assert_int_eq(read(fd, buf, sizeof(buf)), 0); /* closed, no answer */
    ck_assert_msg(gktest_ms() - t0 < 2000, "closed after %lld ms", gktest_ms() - t0);
    close(fd);
    gktest_server_stop(&one);
}
END_TEST

START_TEST(one_loop_answers_128_and_256_ready_requests)
{
    static const char *const env[] = {"HTTP_THREADS=1", "CONNECTION_TIMEOUT=30", NULL};
    struct gktest_server one;

    gktest_server_start(&one, env);
    all_answered_at_once(one.port, 127);
    all_answered_at_once(one.port, 128);
    all_answered_at_once(one.port, 129);
    all_answered_at_once(one.port, 256);
    gktest_server_stop(&one);
}
END_TEST

/* ---- the request deadline (CONNECTION_TIMEOUT=1 s) ---- */

static struct gktest_server deadline_srv;

static void
deadline_up(void)
{
    static const char *const env[] = {"CONNECTION_TIMEOUT=1", NULL};

    gktest_server_start(&deadline_srv, env);
}

static void
deadline_down(void)
{
    gktest_server_stop(&deadline_srv);
}

static void
redis_thawed(void)
{
    gktest_signal_redis(SIGCONT);
}

START_TEST(trickled_request_is_cut_at_the_deadline)
{
    static const char head[] = "GET /health?shallow HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    int fd = gktest_connect(deadline_srv.port);
    long long t0 = gktest_ms(), took;
    char buf[256];
    ssize_t n = -1;

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, head, sizeof(head) - 1), (ssize_t)(sizeof(head) - 1));
    /* A byte every 200 ms: never silent long enough for the idle timeout. */
    while (gktest_ms() - t0 < 10000) {
        struct pollfd p = {.fd = fd, .events = POLLIN};

        if (poll(&p, 1, 200) > 0) {
            n = read(fd, buf, sizeof(buf));
            break;
        }
        if (write(fd, "a", 1) != 1)
            break;
    }
    took = gktest_ms() - t0;
    close(fd);
    ck_assert_msg(n <= 0, "answered instead of cut: %.*s", (int)(n > 0 ? n : 0), buf);
    /* The reaper looks once a second: cut between 1 and 2 s, with slack for a slow build. */
    ck_assert_msg(took >= 1000 && took <= 2500LL * gktest_slowdown(), "cut after %lld ms", took);
}
END_TEST

START_TEST(keep_alive_requests_are_not_cut)
{
    static const char req[] = "GET /health?shallow HTTP/1.1\r\nHost: x\r\n\r\n";
    int fd = gktest_connect(deadline_srv.port);

    ck_assert_int_ge(fd, 0);
    /* 2.5 s on one connection, well past the 1 s deadline, with 300 ms between requests. */
    for (int i = 0; i < 8; i++) {
        struct gktest_resp r;

        ck_assert_msg(gktest_exchange(fd, req, sizeof(req) - 1, &r), "request %d got no answer", i);
        ck_assert_int_eq(r.status, 200);
        gktest_resp_free(&r);
        gktest_sleep_ms(300);
    }
    close(fd);
}
END_TEST

START_TEST(request_waiting_for_a_hung_redis_is_not_cut)
{
    char id[64], key[64], h[256];
    struct gktest_resp r;
    long long t0, took;

    gktest_unique_id("biz", id, sizeof(id));
    gktest_create_business(deadline_srv.port, id, key, sizeof(key));
    snprintf(h, sizeof(h), "business_id: %s\r\nuser_id: waits\r\n", id);
    gktest_signal_redis(SIGSTOP);
    /* Suspended for the store's 2 s deadline, twice the request deadline: answered, not cut. */
    t0 = gktest_ms();
    gktest_http(deadline_srv.port, "POST", "/queue/enqueue", h, NULL, &r);
    took = gktest_ms() - t0;
    gktest_signal_redis(SIGCONT);
    ck_assert_msg(r.status == 503, "want 503 got %d after %lld ms: %s", r.status, took, r.body);
    ck_assert_int_ge(took, 1500);
    gktest_resp_free(&r);
}
END_TEST

Suite *
http_wire_it_suite(void)
{
    Suite *s = suite_create("http_wire");
    TCase *conv = tcase_create("conventions");
    TCase *start = tcase_create("startup");
    TCase *deadline = tcase_create("request_deadline");

    tcase_add_unchecked_fixture(conv, gktest_srv_up, gktest_srv_down);
    tcase_set_timeout(conv, 30);
    tcase_add_test(conv, oversized_chunked_body_is_refused);
    tcase_add_test(conv, garbage_and_huge_headers_do_not_hurt);
    tcase_add_test(conv, smuggling_shapes_are_400_and_close);
    tcase_add_test(conv, nul_in_a_header_value_is_400);
    tcase_add_test(conv, malformed_first_lines_are_json_and_close_at_once);
    tcase_add_test(conv, first_request_is_checked_however_its_bytes_come);
    tcase_add_test(conv, oversized_head_is_431_json);
    suite_add_tcase(s, conv);

    tcase_add_unchecked_fixture(deadline, deadline_up, deadline_down);
    tcase_add_checked_fixture(deadline, NULL, redis_thawed);
    tcase_set_timeout(deadline, 30);
    tcase_add_test(deadline, trickled_request_is_cut_at_the_deadline);
    tcase_add_test(deadline, keep_alive_requests_are_not_cut);
    tcase_add_test(deadline, request_waiting_for_a_hung_redis_is_not_cut);
    suite_add_tcase(s, deadline);

    /* Tests that start servers of their own. */
    tcase_set_timeout(start, 60);
    tcase_add_test(start, one_loop_answers_128_and_256_ready_requests);
    tcase_add_test(start, idle_loop_wakes_for_offloaded_answers_and_half_closed_clients);
    suite_add_tcase(s, start);
    return s;
}
