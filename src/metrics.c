/* SPDX-License-Identifier: MIT */
/* metrics.c -- see gk/metrics.h for the contract. */
#include "gk/metrics.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <string.h>

#include "gk/util.h"

#define CODE_MIN 100
#define CODE_COUNT 500 /* 100..599: every status a response can have */

/* Bounds and their Prometheus spelling, written out so that le values never depend on float
 * formatting. */
static const int64_t bounds_us[GK_METRICS_BUCKETS] = {500,    1000,   2500,   5000,    10000,   25000,  50000,
                                                      100000, 250000, 500000, 1000000, 2500000, 5000000};
static const char *const bounds_le[GK_METRICS_BUCKETS] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5"};

struct route_counts {
    atomic_uint_fast64_t code[CODE_COUNT]; /* by status - CODE_MIN */
    atomic_uint_fast64_t bucket[GK_METRICS_BUCKETS + 1];
    atomic_uint_fast64_t sum_us;
};

/* Slot i counts the route named route_names[i]; NULL = free. Slot 0 is "-" from the start. The
 * names sit apart from the counters so that finding a slot reads a few cache lines only. */
static _Atomic(const char *) route_names[GK_METRICS_ROUTES_MAX] = {"-"};
static struct route_counts counts[GK_METRICS_ROUTES_MAX];
/* Answered verifies by [ready][gate]. */
static atomic_uint_fast64_t verifies[2][2];

int64_t
gk_metrics_bound_us(size_t i)
{
    GK_ASSERT(i < GK_METRICS_BUCKETS);
    return bounds_us[i];
}

size_t
gk_metrics_bucket(int64_t us)
{
    size_t i = 0;

    while (i < GK_METRICS_BUCKETS && us > bounds_us[i])
        i++;
    return i;
}

/* The slot of route name, claiming a free one the first time a name is seen. */
static size_t
slot_of(const char *name)
{
    if (name == NULL)
        return 0;
    /* Names are static strings, so the pointer matches on this cheap pass almost always. */
    for (size_t i = 0; i < GK_METRICS_ROUTES_MAX; i++) {
        const char *n = atomic_load_explicit(&route_names[i], memory_order_acquire);

        if (n == name)
            return i;
        if (n == NULL)
            break;
    }
    for (size_t i = 0; i < GK_METRICS_ROUTES_MAX; i++) {
        const char *n = atomic_load_explicit(&route_names[i], memory_order_acquire);

        if (n == NULL) {
            if (atomic_compare_exchange_strong_explicit(&route_names[i], &n, name, memory_order_acq_rel,
                                                        memory_order_acquire))
                return i;
            /* Another thread claimed it first; n is now its name. */
        }
        if (strcmp(n, name) == 0)
            return i;
    }
    return 0;
}

void
gk_metrics_request(const char *route, int status, int64_t dur_us)
{
    struct route_counts *c;

    if (status < CODE_MIN || status >= CODE_MIN + CODE_COUNT)
        return;
    if (dur_us < 0)
        dur_us = 0;
    c = &counts[slot_of(route)];
    atomic_fetch_add_explicit(&c->code[status - CODE_MIN], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->bucket[gk_metrics_bucket(dur_us)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->sum_us, (uint_fast64_t)dur_us, memory_order_relaxed);
}

void
gk_metrics_verify(bool ready, bool gate)
{
    atomic_fetch_add_explicit(&verifies[ready][gate], 1, memory_order_relaxed);
}

void
gk_metrics_family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void
gk_metrics_hist_write(FILE *f, const char *name, const char *label, const char *value,
                      const struct gk_metrics_hist *h)
{
    char sel[GK_ID_BUF + 64] = "";
    const char *comma;
    uint64_t cum = 0;

    if (label != NULL)
        snprintf(sel, sizeof(sel), "%s=\"%s\"", label, value);
    comma = sel[0] != '\0' ? "," : "";
    for (size_t i = 0; i <= GK_METRICS_BUCKETS; i++) {
        cum += h->bucket[i];
        fprintf(f, "%s_bucket{%s%sle=\"%s\"} %" PRIu64 "\n", name, sel, comma,
                i < GK_METRICS_BUCKETS ? bounds_le[i] : "+Inf", cum);
    }
    fprintf(f, "%s_sum%s%s%s %" PRIu64 ".%06" PRIu64 "\n", name, sel[0] != '\0' ? "{" : "", sel,
            sel[0] != '\0' ? "}" : "", h->sum_us / 1000000, h->sum_us % 1000000);
    fprintf(f, "%s_count%s%s%s %" PRIu64 "\n", name, sel[0] != '\0' ? "{" : "", sel,
            sel[0] != '\0' ? "}" : "", cum);
}

void
gk_metrics_write_http(FILE *f)
{
    const char *names[GK_METRICS_ROUTES_MAX];
    size_t n = 0;

    while (n < GK_METRICS_ROUTES_MAX &&
           (names[n] = atomic_load_explicit(&route_names[n], memory_order_acquire)) != NULL)
        n++;

    gk_metrics_family(f, "gatekeeper_http_requests_total", "counter",
                      "HTTP requests answered by this node, by route and status code.");
    for (size_t i = 0; i < n; i++) {
        for (int c = 0; c < CODE_COUNT; c++) {
            uint64_t v = atomic_load_explicit(&counts[i].code[c], memory_order_relaxed);

            if (v > 0)
                fprintf(f, "gatekeeper_http_requests_total{route=\"%s\",code=\"%d\"} %" PRIu64 "\n", names[i],
                        c + CODE_MIN, v);
        }
    }

    gk_metrics_family(f, "gatekeeper_http_request_duration_seconds", "histogram",
                      "Time from a request's headers to its completion, by route.");
    for (size_t i = 0; i < n; i++) {
        struct gk_metrics_hist h;
        uint64_t total = 0;

        for (size_t b = 0; b <= GK_METRICS_BUCKETS; b++)
            total += h.bucket[b] = atomic_load_explicit(&counts[i].bucket[b], memory_order_relaxed);
        h.sum_us = atomic_load_explicit(&counts[i].sum_us, memory_order_relaxed);
        if (total > 0) /* "-" has a slot from the start, but no series until it counts something */
            gk_metrics_hist_write(f, "gatekeeper_http_request_duration_seconds", "route", names[i], &h);
    }

    gk_metrics_family(f, "gatekeeper_rate_limited_total", "counter",
                      "Requests refused with 429 by a per-IP rate limit, by route.");
    for (size_t i = 0; i < n; i++) {
        uint64_t v = atomic_load_explicit(&counts[i].code[429 - CODE_MIN], memory_order_relaxed);

        if (v > 0)
            fprintf(f, "gatekeeper_rate_limited_total{route=\"%s\"} %" PRIu64 "\n", names[i], v);
    }

    gk_metrics_family(f, "gatekeeper_verify_total", "counter",
                      "Answered verify and gate checks, by answer and by who asked (verify or gate).");
    for (int ready = 1; ready >= 0; ready--) {
        for (int gate = 0; gate <= 1; gate++)
            fprintf(f, "gatekeeper_verify_total{result=\"%s\",via=\"%s\"} %" PRIu64 "\n",
                    ready ? "ready" : "not_ready", gate ? "gate" : "verify",
                    atomic_load_explicit(&verifies[ready][gate], memory_order_relaxed));
    }
}

/* ---- ETA calibration ---- */

#define ETA_BUCKETS 11
static const double eta_bounds[ETA_BUCKETS] = {0.25, 0.5, 0.75, 0.9, 1, 1.1, 1.25, 1.5, 2, 3, 5};
static const char *const eta_le[ETA_BUCKETS] = {"0.25", "0.5", "0.75", "0.9", "1", "1.1",
                                                "1.25", "1.5", "2",    "3",   "5"};
static _Atomic uint64_t eta_bucket[ETA_BUCKETS + 1];
static _Atomic uint64_t eta_sum_millis; /* the ratios' sum, in thousandths */

void
gk_metrics_eta_ratio(double ratio)
{
    size_t i = 0;

    if (!(ratio >= 0))
        return;
    while (i < ETA_BUCKETS && ratio > eta_bounds[i])
        i++;
    atomic_fetch_add_explicit(&eta_bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&eta_sum_millis,
                              ratio < 1e9 ? (uint64_t)(ratio * 1000 + 0.5) : 1000000000000ULL,
                              memory_order_relaxed);
}

void
gk_metrics_write_eta(FILE *f)
{
    uint64_t cum = 0, sum = atomic_load_explicit(&eta_sum_millis, memory_order_relaxed);

    gk_metrics_family(f, "gatekeeper_eta_error_ratio", "histogram",
                      "Admitted visitors' wait over the ETA they were shown when they joined (1 = exact).");
    for (size_t i = 0; i <= ETA_BUCKETS; i++) {
        cum += atomic_load_explicit(&eta_bucket[i], memory_order_relaxed);
        fprintf(f, "gatekeeper_eta_error_ratio_bucket{le=\"%s\"} %" PRIu64 "\n",
                i < ETA_BUCKETS ? eta_le[i] : "+Inf", cum);
    }
    fprintf(f, "gatekeeper_eta_error_ratio_sum %" PRIu64 ".%03" PRIu64 "\n", sum / 1000, sum % 1000);
    fprintf(f, "gatekeeper_eta_error_ratio_count %" PRIu64 "\n", cum);
}
