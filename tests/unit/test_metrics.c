/* SPDX-License-Identifier: MIT */
/* test_metrics.c -- buckets, counting by route and code, verifies by result, histogram text, and
 * lock-free counting from many threads. Check forks every test, so each starts from zero
 * counters. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gk/metrics.h"
#include "unit/suites.h"

/* What write renders, caller frees. */
static char *
render(void (*write)(FILE *f))
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    ck_assert_ptr_nonnull(f);
    write(f);
    fclose(f);
    return text;
}

/* The whole request-family text, caller frees. */
static char *
render_http(void)
{
    return render(gk_metrics_write_http);
}

START_TEST(buckets_have_inclusive_upper_bounds)
{
    ck_assert_int_eq(gk_metrics_bound_us(0), 500);
    ck_assert_int_eq(gk_metrics_bound_us(GK_METRICS_BUCKETS - 1), 5000000);
    ck_assert_uint_eq(gk_metrics_bucket(0), 0);
    ck_assert_uint_eq(gk_metrics_bucket(500), 0);
    ck_assert_uint_eq(gk_metrics_bucket(501), 1);
    ck_assert_uint_eq(gk_metrics_bucket(1000), 1);
    ck_assert_uint_eq(gk_metrics_bucket(5000000), GK_METRICS_BUCKETS - 1);
    ck_assert_uint_eq(gk_metrics_bucket(5000001), GK_METRICS_BUCKETS);
    for (size_t i = 1; i < GK_METRICS_BUCKETS; i++)
        ck_assert_int_gt(gk_metrics_bound_us(i), gk_metrics_bound_us(i - 1));
}
END_TEST

START_TEST(requests_are_counted_by_route_and_code)
{
    static const char enqueue[] = "enqueue";
    char other_copy[] = "enqueue"; /* same name, another address: still the same route */
    char *text;

    gk_metrics_request(enqueue, 200, 300);
    gk_metrics_request(enqueue, 200, 700);
    gk_metrics_request(other_copy, 429, 100);
    gk_metrics_request(NULL, 413, 10);
    gk_metrics_request("status", 0, 10); /* never answered: not counted */
    text = render_http();
    ck_assert_ptr_nonnull(strstr(text, "gatekeeper_http_requests_total{route=\"enqueue\",code=\"200\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(text, "gatekeeper_http_requests_total{route=\"enqueue\",code=\"429\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "gatekeeper_http_requests_total{route=\"-\",code=\"413\"} 1\n"));
    ck_assert_ptr_null(strstr(text, "route=\"status\""));
    ck_assert_ptr_nonnull(strstr(text, "gatekeeper_rate_limited_total{route=\"enqueue\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "# TYPE gatekeeper_http_request_duration_seconds histogram\n"));
    /* 100 and 300 us in the first bucket, 700 us in the second; cumulative. */
    ck_assert_ptr_nonnull(
        strstr(text, "gatekeeper_http_request_duration_seconds_bucket{route=\"enqueue\",le=\"0.0005\"} 2\n"));
    ck_assert_ptr_nonnull(
        strstr(text, "gatekeeper_http_request_duration_seconds_bucket{route=\"enqueue\",le=\"0.001\"} 3\n"));
    ck_assert_ptr_nonnull(
        strstr(text, "gatekeeper_http_request_duration_seconds_bucket{route=\"enqueue\",le=\"+Inf\"} 3\n"));
    ck_assert_ptr_nonnull(
        strstr(text, "gatekeeper_http_request_duration_seconds_sum{route=\"enqueue\"} 0.001100\n"));
    ck_assert_ptr_nonnull(
        strstr(text, "gatekeeper_http_request_duration_seconds_count{route=\"enqueue\"} 3\n"));
    free(text);
}
END_TEST

START_TEST(verifies_are_counted_by_result_and_caller)
{
    char *text;

    gk_metrics_verify(true, false);
    gk_metrics_verify(true, false);
    gk_metrics_verify(false, true);
    text = render_http();
    ck_assert_ptr_nonnull(strstr(text, "# TYPE gatekeeper_verify_total counter\n"));
    ck_assert_ptr_nonnull(strstr(text, "gatekeeper_verify_total{result=\"ready\",via=\"verify\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(text, "gatekeeper_verify_total{result=\"ready\",via=\"gate\"} 0\n"));
    ck_assert_ptr_nonnull(strstr(text, "gatekeeper_verify_total{result=\"not_ready\",via=\"verify\"} 0\n"));
    ck_assert_ptr_nonnull(strstr(text, "gatekeeper_verify_total{result=\"not_ready\",via=\"gate\"} 1\n"));
    free(text);
}
END_TEST

START_TEST(eta_errors_are_a_cumulative_histogram)
{
    char *text;

    gk_metrics_eta_ratio(1.0);  /* exact: le 1 */
    gk_metrics_eta_ratio(0.6);  /* le 0.75 */
    gk_metrics_eta_ratio(12.5); /* +Inf */
    gk_metrics_eta_ratio(-1);   /* nonsense: not counted */
    text = render(gk_metrics_write_eta);
    ck_assert_ptr_nonnull(strstr(text, "# TYPE gatekeeper_eta_error_ratio histogram\n"));
    ck_assert_ptr_nonnull(strstr(text, "gatekeeper_eta_error_ratio_bucket{le=\"0.5\"} 0\n"));
    ck_assert_ptr_nonnull(strstr(text, "gatekeeper_eta_error_ratio_bucket{le=\"0.75\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "gatekeeper_eta_error_ratio_bucket{le=\"1\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(text, "gatekeeper_eta_error_ratio_bucket{le=\"5\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(text, "gatekeeper_eta_error_ratio_bucket{le=\"+Inf\"} 3\n"));
    ck_assert_ptr_nonnull(strstr(text, "gatekeeper_eta_error_ratio_sum 14.100\n"));
    ck_assert_ptr_nonnull(strstr(text, "gatekeeper_eta_error_ratio_count 3\n"));
    free(text);
}
END_TEST

START_TEST(histogram_without_label)
{
    struct gk_metrics_hist h = {.bucket = {[0] = 1, [GK_METRICS_BUCKETS] = 2}, .sum_us = 12000123};
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    gk_metrics_hist_write(f, "x_seconds", NULL, NULL, &h);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(text, "x_seconds_bucket{le=\"0.0005\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "x_seconds_bucket{le=\"5\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "x_seconds_bucket{le=\"+Inf\"} 3\n"));
    ck_assert_ptr_nonnull(strstr(text, "x_seconds_sum 12.000123\n"));
    ck_assert_ptr_nonnull(strstr(text, "x_seconds_count 3\n"));
    free(text);
}
END_TEST

#define THREADS 4
#define PER_THREAD 50000

static void *
hammer(void *arg)
{
    static const char *const names[] = {"a", "b", "c", "d", "e", "f", "g", "h"};
    size_t t = (size_t)arg;

    for (int i = 0; i < PER_THREAD; i++)
        gk_metrics_request(names[(t + (size_t)i) % 8], 200, i % 2000);
    return NULL;
}

/* Threads racing to claim route slots and to count must lose nothing and make no duplicates. */
START_TEST(concurrent_counting_loses_nothing)
{
    pthread_t th[THREADS];
    char *text, *p;
    long long total = 0;
    int series = 0;

    for (size_t i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, hammer, (void *)i), 0);
    for (size_t i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    text = render_http();
    for (p = text; (p = strstr(p, "gatekeeper_http_requests_total{route=\"")) != NULL; p++) {
        total += atoll(strchr(p, '}') + 2);
        series++;
    }
    ck_assert_int_eq(series, 8);
    ck_assert_int_eq(total, (long long)THREADS * PER_THREAD);
    free(text);
}
END_TEST

Suite *
metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, buckets_have_inclusive_upper_bounds);
    tcase_add_test(tc, requests_are_counted_by_route_and_code);
    tcase_add_test(tc, verifies_are_counted_by_result_and_caller);
    tcase_add_test(tc, histogram_without_label);
    tcase_add_test(tc, eta_errors_are_a_cumulative_histogram);
    tcase_add_test(tc, concurrent_counting_loses_nothing);
    suite_add_tcase(s, tc);
    return s;
}
