/* SPDX-License-Identifier: MIT */
/*
 * test_shutdown_it.c -- SIGTERM on the built server: new connections are refused at once, a
 * request in flight on a keep-alive connection still gets its answer (with Connection: close),
 * idle connections do not hold the exit up, a request that never completes is cut at
 * SHUTDOWN_TIMEOUT, and the exit status is 0 every time. Each test runs its own server.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "integration/suites.h"
#include "support/gktest.h"

#define BODY_HEAD "{\"business_id\": \""

/* A time bound, stretched as the binaries are slowed down (valgrind, sanitizers); `make test`
 * checks the bounds as written. */
static long long
bound(long long ms)
{
    return ms * gktest_slowdown();
}

/* Milliseconds until connecting to port fails, polling every 5 ms for up to ms; -1 if it never does. */
static long long
refused_within(uint16_t port, long long ms)
{
    long long t0 = gktest_ms();

    while (gktest_ms() - t0 < ms) {
        int fd = gktest_connect(port);

        if (fd < 0)
            return gktest_ms() - t0;
        close(fd);
        gktest_sleep_ms(5);
    }
    return -1;
}

/* Opens a keep-alive connection, proves it with one request, then sends the head and the first
 * part of a POST /businesses for id, whose body it does not finish. */
static int
start_slow_request(uint16_t port, const char *id)
{
    static const char probe[] = "GET /health?shallow HTTP/1.1\r\nHost: x\r\n\r\n";
    int fd = gktest_connect(port);
    struct gktest_resp r;
    char head[512];
    int n;

    ck_assert_int_ge(fd, 0);
    ck_assert(gktest_exchange(fd, probe, sizeof(probe) - 1, &r));
    ck_assert_int_eq(r.status, 200);
    gktest_resp_free(&r);
    n = snprintf(head, sizeof(head),
                 "POST /businesses HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " GKTEST_ADMIN_TOKEN
                 "\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n" BODY_HEAD,
                 strlen(BODY_HEAD) + strlen(id) + 2);
    ck_assert_int_eq(send(fd, head, (size_t)n, MSG_NOSIGNAL), n);
    /* Let the server read the head: from then on the request is in flight. */
    gktest_sleep_ms((int)bound(200));
    return fd;
}

START_TEST(in_flight_request_completes_and_new_connections_are_refused)
{
    static const char *const env[] = {"SHUTDOWN_TIMEOUT=10", NULL};
    struct gktest_server s;
    struct gktest_resp r;
    char id[64], rest[128], conn[32];
    long long t0, refused;
    int fd, n, status;

    gktest_unique_id("stop", id, sizeof(id));
    gktest_server_start(&s, env);
    fd = start_slow_request(s.port, id);
    t0 = gktest_ms();
    ck_assert_int_eq(kill(s.pid, SIGTERM), 0);
    refused = refused_within(s.port, bound(2000));
    ck_assert_msg(refused >= 0, "still accepting connections 2 s after SIGTERM");
    ck_assert_msg(refused < bound(500), "new connections refused only after %lld ms", refused);
    ck_assert_int_eq(gktest_wait_exit(&s, 0), -1); /* the request in flight keeps it up */

    n = snprintf(rest, sizeof(rest), "%s\"}", id);
    ck_assert(gktest_exchange(fd, rest, (size_t)n, &r));
    ck_assert_msg(r.status == 201, "%d %s", r.status, r.body);
    ck_assert_str_eq(gktest_header(&r, "Connection", conn, sizeof(conn)), "close");
    gktest_resp_free(&r);
    close(fd);
    status = gktest_wait_exit(&s, bound(5000));
    ck_assert_msg(status == 0, "exit status %d; see %s", status, s.log);
    ck_assert_msg(gktest_ms() - t0 < bound(10000), "took %lld ms", gktest_ms() - t0);
}
END_TEST

START_TEST(idle_keep_alive_connection_does_not_delay_exit)
{
    static const char probe[] = "GET /health?shallow HTTP/1.1\r\nHost: x\r\n\r\n";
    static const char *const env[] = {"SHUTDOWN_TIMEOUT=10", NULL};
    struct gktest_server s;
    struct gktest_resp r;
    long long t0;
    int fd, status;
    char c;

    gktest_server_start(&s, env);
    fd = gktest_connect(s.port);
    ck_assert_int_ge(fd, 0);
    ck_assert(gktest_exchange(fd, probe, sizeof(probe) - 1, &r));
    ck_assert_int_eq(r.status, 200);
    gktest_resp_free(&r);
    t0 = gktest_ms();
    ck_assert_int_eq(kill(s.pid, SIGTERM), 0);
    status = gktest_wait_exit(&s, bound(3000));
    ck_assert_msg(status == 0, "exit status %d after %lld ms; see %s", status, gktest_ms() - t0, s.log);
    ck_assert_msg(gktest_ms() - t0 < bound(1000), "took %lld ms", gktest_ms() - t0);
    ck_assert_int_eq(recv(fd, &c, 1, 0), 0); /* closed by the server */
    close(fd);
}
END_TEST

START_TEST(stuck_request_is_cut_at_the_bound)
{
    static const char *const env[] = {"SHUTDOWN_TIMEOUT=1", NULL};
    struct gktest_server s;
    char id[64];
    long long t0, took;
    int fd, status;

    gktest_unique_id("stuck", id, sizeof(id));
    gktest_server_start(&s, env);
    fd = start_slow_request(s.port, id);
    t0 = gktest_ms();
    ck_assert_int_eq(kill(s.pid, SIGTERM), 0);
    status = gktest_wait_exit(&s, bound(5000));
    took = gktest_ms() - t0;
    close(fd);
    ck_assert_msg(status == 0, "exit status %d; see %s", status, s.log);
    ck_assert_msg(took >= 900 && took < bound(3000), "exited after %lld ms, not at the 1 s bound", took);
}
END_TEST

Suite *
shutdown_it_suite(void)
{
    Suite *s = suite_create("shutdown");
    TCase *tc = tcase_create("sigterm");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, in_flight_request_completes_and_new_connections_are_refused);
    tcase_add_test(tc, idle_keep_alive_connection_does_not_delay_exit);
    tcase_add_test(tc, stuck_request_is_cut_at_the_bound);
    suite_add_tcase(s, tc);
    return s;
}
