/* SPDX-License-Identifier: MIT */
/*
 * metrics -- process-wide request counters and the Prometheus text format.
 *
 * Counting is lock-free: every counter is a relaxed atomic in static storage, so a request costs a
 * few atomic additions, no allocation and no mutex. A route gets its counters the first time it is
 * seen (a compare-and-swap on a free slot), so the route table stays the only list of routes.
 * Rendering reads the same atomics and may run at any time on any thread: a scrape that races with
 * requests sees each counter at some moment, and a histogram's +Inf bucket always equals its
 * _count, because _count is computed from the buckets.
 */
#ifndef GK_METRICS_H
#define GK_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define GK_METRICS_BUCKETS 13    /* finite duration buckets; one more counts +Inf */
#define GK_METRICS_ROUTES_MAX 48 /* distinct route names; more are counted as "-" */

/* Observations of one duration histogram, per bucket (not cumulative). */
struct gk_metrics_hist {
    uint64_t bucket[GK_METRICS_BUCKETS + 1]; /* bucket[i]: bound_us(i-1) < d <= bound_us(i) */
    uint64_t sum_us;
};

/* Upper bound of finite bucket i (0 <= i < GK_METRICS_BUCKETS) in microseconds: 500 us .. 5 s. */
int64_t gk_metrics_bound_us(size_t i);
/* Index of the bucket a duration in microseconds falls in; GK_METRICS_BUCKETS for +Inf. */
size_t gk_metrics_bucket(int64_t us);

/* Counts one answered request: route is a static string (a route table name, "preflight",
 * "not_found") or NULL for a request that never reached a route ("-"); status is the HTTP status
 * sent. Requests that got no answer (status 0) are not counted. Thread-safe, lock-free. */
void gk_metrics_request(const char *route, int status, int64_t dur_us);

/* Counts one answered verify or gate: the per-route counter cannot tell ready from not ready
 * (verify answers 200 either way), and the activity log records repeated answers only once a
 * minute. Thread-safe, lock-free. */
void gk_metrics_verify(bool ready, bool gate);

/* Writes the HELP and TYPE lines that open a metric family. */
void gk_metrics_family(FILE *f, const char *name, const char *type, const char *help);
/* Writes the samples of one histogram: cumulative _bucket lines, _sum in seconds and _count.
 * label/value add one label to every sample (both NULL for none); value must need no escaping
 * (route names and business ids never do). The family lines are the caller's. */
void gk_metrics_hist_write(FILE *f, const char *name, const char *label, const char *value,
                           const struct gk_metrics_hist *h);
/* Writes the request families: gatekeeper_http_requests_total{route,code},
 * gatekeeper_http_request_duration_seconds{route}, gatekeeper_rate_limited_total{route} and
 * gatekeeper_verify_total{result,via}. */
void gk_metrics_write_http(FILE *f);

/* Counts one admitted visitor's ETA error: the wait they had over the ETA shown when they
 * joined. Thread-safe, lock-free. */
void gk_metrics_eta_ratio(double ratio);
/* Writes gatekeeper_eta_error_ratio, the histogram of those ratios (1 = exact). */
void gk_metrics_write_eta(FILE *f);

#endif
