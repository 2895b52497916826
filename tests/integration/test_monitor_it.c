/* SPDX-License-Identifier: MIT */
/*
 * test_monitor_it.c -- GET /metrics and /health on the built server, against real Redis and
 * PostgreSQL: the Prometheus text is checked line by line (and with promtool when it is
 * installed), the counters against requests the test makes, the worker tick histogram against a
 * real worker; both with Redis down, /metrics behind METRICS_TOKEN, and both polled hard while
 * GET /config keeps its latency.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gk/token.h"
#include "integration/suites.h"
#include "support/gktest.h"

/* ---- the Prometheus text format, checked without promtool ---- */

#define FAMILIES_MAX 64
#define SERIES_MAX 128

struct family {
    char name[128];
    char type[16];
    bool help, typed, done;
};

/* One histogram series: the buckets of one label set, in order, then _sum and _count. */
struct hseries {
    char key[256]; /* labels without le */
    double last_le, cum, inf, count;
    bool has_inf, has_sum, has_count;
};

struct expo {
    struct family fam[FAMILIES_MAX];
    int n, cur;
    struct hseries hs[SERIES_MAX];
    int n_hs;
    int line;
    jmp_buf fail;
    char err[256];
};

/* Records why the text is wrong and abandons the check. */
#define CHECK(x, cond, ...)                                                                                  \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            snprintf((x)->err, sizeof((x)->err), __VA_ARGS__);                                               \
            longjmp((x)->fail, 1);                                                                           \
        }                                                                                                    \
    } while (0)

static bool
name_char(char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && c >= '0' && c <= '9');
}

static struct family *
family_get(struct expo *x, const char *name, bool create)
{
    for (int i = 0; i < x->n; i++)
        if (strcmp(x->fam[i].name, name) == 0)
            return &x->fam[i];
    if (!create)
        return NULL;
    CHECK(x, x->n < FAMILIES_MAX, "more than %d families", FAMILIES_MAX);
    snprintf(x->fam[x->n].name, sizeof(x->fam[x->n].name), "%s", name);
    return &x->fam[x->n++];
}

/* Every histogram series seen since the family began is complete and consistent. */
static void
histograms_close(struct expo *x)
{
    for (int i = 0; i < x->n_hs; i++) {
        const struct hseries *h = &x->hs[i];

        CHECK(x, h->has_inf && h->has_sum && h->has_count, "histogram series {%s} is incomplete", h->key);
        CHECK(x, h->inf == h->count, "{%s}: +Inf bucket %g != _count %g", h->key, h->inf, h->count);
    }
    x->n_hs = 0;
}

/* Makes f the family being written; a family's samples must be contiguous. */
static void
family_enter(struct expo *x, struct family *f)
{
    int idx = (int)(f - x->fam);

    if (idx == x->cur)
        return;
    CHECK(x, !f->done, "line %d: samples of %s are not contiguous", x->line, f->name);
    if (x->cur >= 0)
        x->fam[x->cur].done = true;
    histograms_close(x);
    x->cur = idx;
}

static void
comment_line(struct expo *x, const char *line)
{
    char kw[8], name[128], rest[512] = "";
    struct family *f;

    if (sscanf(line, "# %7s %127s %511[^\n]", kw, name, rest) < 2)
        return; /* a plain comment */
    if (strcmp(kw, "HELP") != 0 && strcmp(kw, "TYPE") != 0)
        return;
    f = family_get(x, name, true);
    family_enter(x, f);
    if (strcmp(kw, "HELP") == 0) {
        CHECK(x, !f->help, "line %d: second HELP for %s", x->line, name);
        CHECK(x, rest[0] != '\0', "line %d: empty HELP", x->line);
        f->help = true;
        return;
    }
    CHECK(x, !f->typed, "line %d: second TYPE for %s", x->line, name);
    CHECK(x,
          strcmp(rest, "counter") == 0 || strcmp(rest, "gauge") == 0 || strcmp(rest, "histogram") == 0 ||
              strcmp(rest, "summary") == 0 || strcmp(rest, "untyped") == 0,
          "line %d: bad type %.32s", x->line, rest);
    snprintf(f->type, sizeof(f->type), "%.15s", rest);
    f->typed = true;
    if (strcmp(rest, "counter") == 0)
        CHECK(x, gktest_ends_with(name, "_total"), "counter %s does not end in _total", name);
}

/* Parses a sample value ("+Inf" and friends too). */
static double
parse_value(struct expo *x, const char *s)
{
    char *end;
    double v;

    if (strcmp(s, "+Inf") == 0)
        return 1e308 * 10;
    if (strcmp(s, "-Inf") == 0)
        return -1e308 * 10;
    if (strcmp(s, "NaN") == 0)
        return 0;
    v = strtod(s, &end);
    CHECK(x, end != s && *end == '\0', "line %d: bad value '%s'", x->line, s);
    return v;
}

static void
histogram_sample(struct expo *x, const char *suffix, const char *key, const char *le, double v)
{
    struct hseries *h = NULL;

    for (int i = 0; i < x->n_hs && h == NULL; i++)
        if (strcmp(x->hs[i].key, key) == 0)
            h = &x->hs[i];
    if (h == NULL) {
        CHECK(x, x->n_hs < SERIES_MAX, "more than %d histogram series", SERIES_MAX);
        h = &x->hs[x->n_hs++];
        memset(h, 0, sizeof(*h));
        snprintf(h->key, sizeof(h->key), "%s", key);
        h->last_le = -1;
    }
    if (strcmp(suffix, "_bucket") == 0) {
        double b;

        CHECK(x, le != NULL, "line %d: bucket without le", x->line);
        b = parse_value(x, le);
        CHECK(x, !h->has_inf && b > h->last_le, "line %d: le not ascending", x->line);
        CHECK(x, v >= h->cum, "line %d: buckets not cumulative", x->line);
        h->last_le = b;
        h->cum = v;
        if (strcmp(le, "+Inf") == 0) {
            h->has_inf = true;
            h->inf = v;
        }
    } else if (strcmp(suffix, "_sum") == 0) {
        h->has_sum = true;
    } else {
        h->has_count = true;
        h->count = v;
    }
}

static void
sample_line(struct expo *x, const char *line)
{
    char name[128], key[256] = "", le[32];
    const char *p = line, *suffix = NULL;
    bool has_le = false;
    size_t n = 0;
    struct family *f;

    CHECK(x, name_char(*p, true), "line %d: bad metric name: %.80s", x->line, line);
    while (name_char(*p, false) && n < sizeof(name) - 1)
        name[n++] = *p++;
    name[n] = '\0';
    if (*p == '{') {
        p++;
        while (*p != '}') {
            char lname[64], lval[256];
            size_t ln = 0, lv = 0;

            CHECK(x, name_char(*p, true) && *p != ':', "line %d: bad label name", x->line);
            while (name_char(*p, false) && *p != ':' && ln < sizeof(lname) - 1)
                lname[ln++] = *p++;
            lname[ln] = '\0';
            CHECK(x, p[0] == '=' && p[1] == '"', "line %d: label %s has no quoted value", x->line, lname);
            for (p += 2; *p != '"'; p++) {
                CHECK(x, *p != '\0' && *p != '\n', "line %d: unterminated label value", x->line);
                if (*p == '\\') {
                    p++;
                    CHECK(x, *p == '\\' || *p == '"' || *p == 'n', "line %d: bad escape", x->line);
                }
                if (lv < sizeof(lval) - 1)
                    lval[lv++] = *p;
            }
            lval[lv] = '\0';
            p++;
            if (strcmp(lname, "le") == 0) {
                snprintf(le, sizeof(le), "%.31s", lval);
                has_le = true;
            } else {
                size_t k = strlen(key);

                snprintf(key + k, sizeof(key) - k, "%.63s=%.120s,", lname, lval);
            }
            if (*p == ',')
                p++;
            else
                CHECK(x, *p == '}', "line %d: expected , or }", x->line);
        }
        p++;
    }
    CHECK(x, *p == ' ', "line %d: no space before the value", x->line);
    f = family_get(x, name, false);
    if (f == NULL) {
        static const char *const suffixes[] = {"_bucket", "_sum", "_count"};

        for (size_t i = 0; i < 3 && f == NULL; i++) {
            if (gktest_ends_with(name, suffixes[i])) {
                char base[128];

                snprintf(base, sizeof(base), "%.*s", (int)(strlen(name) - strlen(suffixes[i])), name);
                f = family_get(x, base, false);
                if (f != NULL && strcmp(f->type, "histogram") == 0)
                    suffix = suffixes[i];
                else
                    f = NULL;
            }
        }
    }
    CHECK(x, f != NULL && f->typed && f->help, "line %d: %s has no HELP and TYPE before it", x->line, name);
    CHECK(x, strcmp(f->type, "histogram") != 0 || suffix != NULL, "line %d: bare histogram sample", x->line);
    family_enter(x, f);
    if (suffix != NULL)
        histogram_sample(x, suffix, key, has_le ? le : NULL, parse_value(x, p + 1));
    else
        parse_value(x, p + 1);
}

static void
check_lines(struct expo *x, const char *text)
{
    const char *p = text;
    char line[1024];

    CHECK(x, text[0] != '\0' && text[strlen(text) - 1] == '\n', "the text must end with a newline");
    while (*p != '\0') {
        size_t n = strcspn(p, "\n");

        x->line++;
        CHECK(x, n > 0 && n < sizeof(line), "line %d is empty or too long", x->line);
        memcpy(line, p, n);
        line[n] = '\0';
        if (line[0] == '#')
            comment_line(x, line);
        else
            sample_line(x, line);
        p += n + 1;
    }
    histograms_close(x);
}

/* Why text is not valid Prometheus text exposition format 0.0.4 with HELP and TYPE for every
 * family and consistent histograms, or NULL when it is. Borrowed until the next call. */
static const char *
exposition_error(const char *text)
{
    static struct expo x;

    memset(&x, 0, sizeof(x));
    x.cur = -1;
    if (setjmp(x.fail) != 0)
        return x.err;
    check_lines(&x, text);
    return NULL;
}

static void
check_exposition(const char *text)
{
    const char *err = exposition_error(text);

    ck_assert_msg(err == NULL, "/metrics: %s", err);
}

/* Runs promtool on text when it is installed. */
static void
promtool_check(const char *text)
{
    char path[512], cmd[1024];
    FILE *f;

    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        fprintf(stderr, "monitor_it: promtool not installed; checked the format without it\n");
        return;
    }
    snprintf(path, sizeof(path), "%s/metrics-%d.txt", gktest_env("GK_TEST_TMP"), (int)getpid());
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s' >&2", path);
    ck_assert_msg(system(cmd) == 0, "promtool check metrics failed on %s", path);
}

/* The value of one series ("name{labels}" exactly as written), or -1 when absent. */
static double
series_value(const char *text, const char *series)
{
    size_t n = strlen(series);

    for (const char *p = text; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p != NULL ? p + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

/* GET /metrics; checks the answer and returns its body (caller frees). */
static char *
scrape(void)
{
    struct gktest_resp r;
    char ct[128], *body;

    gktest_http(gktest_srv.port, "GET", "/metrics", NULL, NULL, &r);
    ck_assert_msg(r.status == 200, "metrics: %d %s", r.status, r.body);
    ck_assert_ptr_nonnull(gktest_header(&r, "Content-Type", ct, sizeof(ct)));
    ck_assert_msg(strncmp(ct, "text/plain; version=0.0.4", 25) == 0, "content type %s", ct);
    body = r.body;
    r.body = NULL;
    gktest_resp_free(&r);
    check_exposition(body);
    return body;
}

/* Scrapes until series has the value want, or GKTEST_REFRESH_MS has passed; returns the last body
 * (caller frees). */
static char *
scrape_until(const char *series, double want)
{
    long long t0 = gktest_ms();

    for (;;) {
        char *text = scrape();

        if (series_value(text, series) == want || gktest_ms() - t0 > GKTEST_REFRESH_MS)
            return text;
        free(text);
        gktest_sleep_ms(100);
    }
}

static int
enqueue(const char *biz, const char *user)
{
    char h[256];
    struct gktest_resp r;
    int status;

    snprintf(h, sizeof(h), "business_id: %s\r\nuser_id: %s\r\n", biz, user);
    gktest_http(gktest_srv.port, "POST", "/queue/enqueue", h, NULL, &r);
    status = r.status;
    gktest_resp_free(&r);
    return status;
}

/* The checker itself, on small texts: each broken one names its fault. */
START_TEST(checker_refuses_bad_text)
{
    static const char head[] = "# HELP h_seconds x\n# TYPE h_seconds histogram\n";
    static const struct {
        const char *text, *fault;
    } cases[] = {
        {"h_seconds_bucket{le=\"1\"} 2\nh_seconds_bucket{le=\"+Inf\"} 2\nh_seconds_sum 1\nh_seconds_count "
         "2\n",
         NULL},
        {"h_seconds_bucket{le=\"1\"} 2\nh_seconds_bucket{le=\"+Inf\"} 2\nh_seconds_sum 1\nh_seconds_count "
         "3\n",
         "_count"},
        {"h_seconds_bucket{le=\"1\"} 3\nh_seconds_bucket{le=\"+Inf\"} 2\nh_seconds_sum 1\nh_seconds_count "
         "2\n",
         "cumulative"},
        {"h_seconds_bucket{le=\"2\"} 1\nh_seconds_bucket{le=\"1\"} 2\n", "ascending"},
        {"h_seconds_bucket{le=\"1\"} 2\nh_seconds_sum 1\nh_seconds_count 2\n", "incomplete"},
        {"h_seconds_sum 1\nh_seconds_count 0\nh_seconds_bucket{le=\"+Inf\"} 0\n# HELP c_total y\n# TYPE "
         "c_total counter\n"
         "c_total 1\nh_seconds_count 0\n",
         "contiguous"},
        {"# HELP c y\n# TYPE c counter\nc 1\n", "_total"},
        {"other 1\n", "no HELP"},
        {"h_seconds_count{a=\"b} 1\n", "unterminated"},
        {"h_seconds_count 1x\n", "bad value"},
    };
    char text[512];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *err;

        snprintf(text, sizeof(text), "%s%s", head, cases[i].text);
        err = exposition_error(text);
        if (cases[i].fault == NULL)
            ck_assert_msg(err == NULL, "case %zu: %s", i, err);
        else
            ck_assert_msg(err != NULL && strstr(err, cases[i].fault) != NULL, "case %zu: want '%s', got '%s'",
                          i, cases[i].fault, err != NULL ? err : "valid");
    }
}
END_TEST

START_TEST(metrics_count_requests_rejections_and_queues)
{
    char biz[64], series[256], *text;
    struct gktest_resp r;

    gktest_new_business(gktest_srv.port, "{\"ip_enqueue_limit\": 1, \"ip_enqueue_limit_interval\": 3600}",
                        biz, sizeof(biz));
    ck_assert_int_eq(enqueue(biz, "u1"), 200);
    ck_assert_int_eq(enqueue(biz, "u2"), 429);
    gktest_http(gktest_srv.port, "GET", "/no-such-path", NULL, NULL, &r);
    gktest_resp_free(&r);

    snprintf(series, sizeof(series), "gatekeeper_enqueued_total{business=\"%s\"}", biz);
    text = scrape_until(series, 1);
    promtool_check(text);
    ck_assert_double_ge(series_value(text, "gatekeeper_http_requests_total{route=\"enqueue\",code=\"200\"}"),
                        1);
    ck_assert_double_ge(series_value(text, "gatekeeper_http_requests_total{route=\"enqueue\",code=\"429\"}"),
                        1);
    ck_assert_double_ge(
        series_value(text, "gatekeeper_http_requests_total{route=\"not_found\",code=\"404\"}"), 1);
    ck_assert_double_ge(series_value(text, "gatekeeper_rate_limited_total{route=\"enqueue\"}"), 1);
    ck_assert_double_ge(
        series_value(text, "gatekeeper_http_request_duration_seconds_count{route=\"businesses\"}"), 1);
    ck_assert_double_eq(series_value(text, "gatekeeper_redis_up"), 1);
    ck_assert_double_ge(series_value(text, "gatekeeper_businesses"), 1);
    snprintf(series, sizeof(series), "gatekeeper_queue_waiting_users{business=\"%s\"}", biz);
    ck_assert_double_eq(series_value(text, series), 1);
    snprintf(series, sizeof(series), "gatekeeper_queue_ready_users{business=\"%s\"}", biz);
    ck_assert_double_eq(series_value(text, series), 0);
    snprintf(series, sizeof(series), "gatekeeper_enqueued_total{business=\"%s\"}", biz);
    ck_assert_double_eq(series_value(text, series), 1);
    snprintf(series, sizeof(series), "gatekeeper_activity_backlog_events{business=\"%s\"}", biz);
    ck_assert_double_ge(series_value(text, series), 1); /* no worker runs: the events wait in Redis */
    ck_assert_ptr_nonnull(strstr(text, "# TYPE gatekeeper_worker_tick_duration_seconds histogram\n"));
    free(text);

    /* The scrape itself is counted by the next one. */
    text = scrape();
    ck_assert_double_ge(series_value(text, "gatekeeper_http_requests_total{route=\"metrics\",code=\"200\"}"),
                        1);
    free(text);
}
END_TEST

START_TEST(metrics_show_worker_ticks_and_admissions)
{
    char biz[64], series[256], *text;
    struct gktest_server w;
    double before;

    text = scrape();
    before = series_value(text, "gatekeeper_worker_tick_duration_seconds_count");
    free(text);
    ck_assert_double_ge(before, 0);
    gktest_new_business(gktest_srv.port, "{\"admission_frequency\": 1}", biz, sizeof(biz));
    ck_assert_int_eq(enqueue(biz, "u1"), 200);
    ck_assert_int_eq(enqueue(biz, "u2"), 200);
    gktest_worker_start(&w, NULL);
    gktest_wait_ticks(biz, 1);
    gktest_server_stop(&w);

    snprintf(series, sizeof(series), "gatekeeper_admitted_total{business=\"%s\"}", biz);
    text = scrape_until(series, 2);
    promtool_check(text);
    ck_assert_double_gt(series_value(text, "gatekeeper_worker_tick_duration_seconds_count"), before);
    ck_assert_double_eq(series_value(text, "gatekeeper_worker_tick_duration_seconds_bucket{le=\"+Inf\"}"),
                        series_value(text, "gatekeeper_worker_tick_duration_seconds_count"));
    ck_assert_double_gt(series_value(text, "gatekeeper_worker_tick_duration_seconds_sum"), 0);
    snprintf(series, sizeof(series), "gatekeeper_admitted_total{business=\"%s\"}", biz);
    ck_assert_double_eq(series_value(text, series), 2);
    snprintf(series, sizeof(series), "gatekeeper_queue_ready_users{business=\"%s\"}", biz);
    ck_assert_double_eq(series_value(text, series), 2);
    snprintf(series, sizeof(series), "gatekeeper_admission_ticks_total{business=\"%s\"}", biz);
    ck_assert_double_ge(series_value(text, series), 1);
    free(text);
}
END_TEST

/* ---- Redis down ---- */

static void
redis_up(void)
{
    gktest_redisctl("start");
}

static void
redis_up_unchecked(void)
{
    const char *ctl = getenv("GK_TEST_REDISCTL");
    char cmd[1024];

    if (ctl != NULL) {
        snprintf(cmd, sizeof(cmd), "'%s' start >/dev/null 2>&1", ctl);
        if (system(cmd) != 0)
            fprintf(stderr, "monitor_it: could not restart Redis\n");
    }
    gktest_srv_down();
}

START_TEST(metrics_without_redis_keep_the_request_counters)
{
    char biz[64], *text = NULL;
    struct gktest_resp r;
    int status = 0;

    gktest_new_business(gktest_srv.port, "{}", biz, sizeof(biz));
    /* No ck_assert between stop and start: a failed check must not leave Redis down. */
    gktest_redisctl("stop");
    for (long long t0 = gktest_ms(); gktest_ms() - t0 < GKTEST_REFRESH_MS; gktest_sleep_ms(100)) {
        free(text);
        gktest_http(gktest_srv.port, "GET", "/metrics", NULL, NULL, &r);
        status = r.status;
        text = r.body;
        r.body = NULL;
        gktest_resp_free(&r);
        if (status != 200 || series_value(text, "gatekeeper_redis_up") == 0)
            break;
    }
    gktest_redisctl("start");
    ck_assert_int_eq(status, 200);
    check_exposition(text);
    ck_assert_double_eq(series_value(text, "gatekeeper_redis_up"), 0);
    ck_assert_ptr_nonnull(strstr(text, "gatekeeper_http_requests_total{route=\"businesses\",code=\"201\"}"));
    ck_assert_ptr_null(strstr(text, "gatekeeper_queue_waiting_users"));
    free(text);
}
END_TEST

START_TEST(health_names_no_error_text)
{
    struct gktest_resp r;
    char *body;
    int status;

    gktest_redisctl("stop");
    gktest_health_until(gktest_srv.port, 503, -1, &r);
    gktest_redisctl("start");
    status = r.status;
    body = r.body;
    r.body = NULL;
    gktest_resp_free(&r);
    ck_assert_msg(status == 503, "/health said %d within %d ms of Redis stopping: %s", status,
                  GKTEST_REFRESH_MS, body);
    ck_assert_msg(strstr(body, "\"redis\":\"unavailable\"") != NULL, "%s", body);
    ck_assert_msg(strstr(body, "\"postgres\":\"ok\"") != NULL, "%s", body);
    ck_assert_msg(strstr(body, "connect") == NULL && strstr(body, "refused") == NULL, "error text: %s", body);
    free(body);
}
END_TEST

/* ---- METRICS_TOKEN ---- */

#define METRICS_TOKEN "metrics-token-0123456789abcdefghijklmnopq"

static struct gktest_server token_srv;

static void
token_srv_up(void)
{
    static const char *const env[] = {"METRICS_TOKEN=" METRICS_TOKEN, NULL};

    gktest_server_start(&token_srv, env);
}

static void
token_srv_down(void)
{
    gktest_server_stop(&token_srv);
}

START_TEST(metrics_token_is_required_when_set)
{
    static const char *const refused[] = {
        NULL, "Authorization: Bearer wrong-token\r\n", "Authorization: Bearer " METRICS_TOKEN "x\r\n",
        "Authorization: Basic " METRICS_TOKEN "\r\n", "Authorization: Bearer " GKTEST_ADMIN_TOKEN "\r\n"};
    struct gktest_resp r;
    char www[64];

    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        gktest_http(token_srv.port, "GET", "/metrics", refused[i], NULL, &r);
        ck_assert_msg(r.status == 401, "case %zu: %d %s", i, r.status, r.body);
        ck_assert_str_eq(gktest_json_str(&r, "error"), "unauthorized");
        ck_assert_str_eq(gktest_header(&r, "WWW-Authenticate", www, sizeof(www)), "Bearer");
        gktest_resp_free(&r);
    }
    gktest_http(token_srv.port, "GET", "/metrics", "Authorization: Bearer " METRICS_TOKEN "\r\n", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    check_exposition(r.body);
    gktest_resp_free(&r);
    /* The other routes do not ask for it. */
    gktest_http(token_srv.port, "GET", "/health", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    gktest_resp_free(&r);
}
END_TEST

/* ---- /metrics and /health under load ---- */

#define LOAD_BUSINESSES 500
#define LOAD_CLIENTS 24
#define CONFIG_CALLS 50

struct poller {
    uint16_t port;
    const char *path;
    atomic_bool *stop;
    long answered;
};

static void *
poll_main(void *arg)
{
    struct poller *p = arg;

    while (!atomic_load(p->stop)) {
        struct gktest_resp r;

        gktest_http(p->port, "GET", p->path, NULL, NULL, &r);
        if (r.status == 200)
            p->answered++;
        gktest_resp_free(&r);
    }
    return NULL;
}

static int
cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;

    return (x > y) - (x < y);
}

/* GET /health's "businesses" on port. */
static long long
businesses_known(uint16_t port)
{
    struct gktest_resp r;
    long long n;

    gktest_http(port, "GET", "/health", NULL, NULL, &r);
    n = r.json != NULL ? gktest_json_int(&r, "businesses") : -1;
    gktest_resp_free(&r);
    return n;
}

/* With 500 businesses, clients polling /metrics and /health as fast as they can cost GET /config
 * nothing: they read the monitor's snapshot on the event loops, while /config has the offload
 * threads to itself (each scrape used to make 500 Redis round trips on those threads). */
START_TEST(polling_metrics_and_health_does_not_slow_config)
{
    static struct poller pollers[LOAD_CLIENTS];
    pthread_t threads[LOAD_CLIENTS];
    atomic_bool stop = false;
    long long took[CONFIG_CALLS], t0, before = businesses_known(gktest_srv.port);
    char prefix[64], sql[256], out[256], biz[64], key[64], h[256];
    long answered = 0;

    gktest_unique_id("load", prefix, sizeof(prefix));
    snprintf(sql, sizeof(sql), "INSERT INTO businesses (id) SELECT '%s-' || g FROM generate_series(1, %d) g",
             prefix, LOAD_BUSINESSES);
    gktest_psql(out, sizeof(out), sql);
    for (t0 = gktest_ms(); businesses_known(gktest_srv.port) < before + LOAD_BUSINESSES; gktest_sleep_ms(100))
        ck_assert_msg(gktest_ms() - t0 < 10000, "the node did not load %d businesses", LOAD_BUSINESSES);
    gktest_unique_id("cfg", biz, sizeof(biz));
    gktest_create_business(gktest_srv.port, biz, key, sizeof(key));
    snprintf(h, sizeof(h), "business_id: %s\r\nAuthorization: Bearer %s\r\n", biz, key);

    for (int i = 0; i < LOAD_CLIENTS; i++) {
        pollers[i] = (struct poller){gktest_srv.port, i % 2 ? "/health" : "/metrics", &stop, 0};
        ck_assert_int_eq(pthread_create(&threads[i], NULL, poll_main, &pollers[i]), 0);
    }
    gktest_sleep_ms(500);
    for (int i = 0; i < CONFIG_CALLS; i++) {
        struct gktest_resp r;

        t0 = gktest_ms();
        gktest_http(gktest_srv.port, "GET", "/config", h, NULL, &r);
        took[i] = gktest_ms() - t0;
        ck_assert_int_eq(r.status, 200);
        gktest_resp_free(&r);
        gktest_sleep_ms(20);
    }
    atomic_store(&stop, true);
    for (int i = 0; i < LOAD_CLIENTS; i++) {
        pthread_join(threads[i], NULL);
        answered += pollers[i].answered;
    }
    snprintf(sql, sizeof(sql), "DELETE FROM businesses WHERE id LIKE '%s-%%'", prefix);
    gktest_psql(out, sizeof(out), sql);
    qsort(took, CONFIG_CALLS, sizeof(took[0]), cmp_ll);
    fprintf(stderr,
            "monitor_it: %d clients answered %ld times; GET /config p50 %lld ms, p99 %lld ms, max %lld ms\n",
            LOAD_CLIENTS, answered, took[CONFIG_CALLS / 2], took[CONFIG_CALLS * 99 / 100],
            took[CONFIG_CALLS - 1]);
    ck_assert_int_gt(answered, 100);
    /* The bound stretches with the binaries' slowdown (sanitizers, valgrind), as timeouts do. */
    ck_assert_msg(took[CONFIG_CALLS * 99 / 100] < 300 * gktest_slowdown(),
                  "GET /config p99 %lld ms under load", took[CONFIG_CALLS * 99 / 100]);
}
END_TEST

static double
verifies(const char *text, const char *result, const char *via)
{
    char series[128];

    snprintf(series, sizeof(series), "gatekeeper_verify_total{result=\"%s\",via=\"%s\"}", result, via);
    return series_value(text, series);
}

/* Asks verify (or gate) as a backend would; returns the HTTP status. */
static int
verify(const char *path, const char *biz, const char *tok)
{
    struct gktest_resp r;
    char h[2048];
    int status;

    snprintf(h, sizeof(h), "business_id: %s\r\njwt: %s\r\n", biz, tok);
    gktest_http(gktest_srv.port, "GET", path, h, NULL, &r);
    status = r.status;
    gktest_resp_free(&r);
    return status;
}

START_TEST(repeated_verifies_are_logged_once_a_minute_but_all_counted)
{
    char biz[64], h[256], tok[GK_TOKEN_BUF], *before, *after;
    struct gktest_resp r;

    gktest_new_business(gktest_srv.port, "{}", biz, sizeof(biz));
    snprintf(h, sizeof(h), "business_id: %s\r\nuser_id: v1\r\n", biz);
    gktest_http(gktest_srv.port, "POST", "/queue/enqueue", h, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    snprintf(tok, sizeof(tok), "%s", gktest_json_str(&r, "jwt"));
    gktest_resp_free(&r);
    before = scrape();
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(verify("/queue/verify", biz, tok), 200);
    ck_assert_int_eq(gktest_stream_events(biz, "verify"), 1);
    gktest_redis(
        "EVAL \"redis.call('ZREM', KEYS[1], 'v1') redis.call('ZADD', KEYS[2], 9999999999999, 'v1')\" "
        "2 'gk:{%s}:wait' 'gk:{%s}:ready'",
        biz, biz);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(verify("/queue/verify", biz, tok), 200);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(verify("/queue/gate", biz, tok), 204);
    ck_assert_int_eq(gktest_stream_events(biz, "verify"), 2); /* the change to ready, once */
    /* A minute later (the seen key gone) the same answer is recorded again. */
    gktest_redis("DEL 'gk:{%s}:seen:v1'", biz);
    ck_assert_int_eq(verify("/queue/gate", biz, tok), 204);
    ck_assert_int_eq(gktest_stream_events(biz, "verify"), 3);
    after = scrape();
    ck_assert_double_eq(verifies(after, "not_ready", "verify") - verifies(before, "not_ready", "verify"), 4);
    ck_assert_double_eq(verifies(after, "ready", "verify") - verifies(before, "ready", "verify"), 3);
    ck_assert_double_eq(verifies(after, "ready", "gate") - verifies(before, "ready", "gate"), 3);
    free(before);
    free(after);
}
END_TEST

Suite *
monitor_it_suite(void)
{
    Suite *s = suite_create("monitor");
    TCase *checker = tcase_create("checker");
    TCase *tc = tcase_create("metrics_and_docs"); /* the docs half is in test_ops_it.c */
    TCase *outage = tcase_create("outage");
    TCase *token = tcase_create("metrics_token");
    TCase *load = tcase_create("load");

    tcase_add_test(checker, checker_refuses_bad_text);
    suite_add_tcase(s, checker);

    tcase_add_unchecked_fixture(tc, gktest_srv_up, gktest_srv_down);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, metrics_count_requests_rejections_and_queues);
    tcase_add_test(tc, metrics_show_worker_ticks_and_admissions);
    tcase_add_test(tc, repeated_verifies_are_logged_once_a_minute_but_all_counted);
    suite_add_tcase(s, tc);

    tcase_add_unchecked_fixture(outage, gktest_srv_up, redis_up_unchecked);
    tcase_add_checked_fixture(outage, redis_up, redis_up);
    tcase_set_timeout(outage, 60);
    tcase_add_test(outage, metrics_without_redis_keep_the_request_counters);
    tcase_add_test(outage, health_names_no_error_text);
    suite_add_tcase(s, outage);

    tcase_add_unchecked_fixture(token, token_srv_up, token_srv_down);
    tcase_set_timeout(token, 30);
    tcase_add_test(token, metrics_token_is_required_when_set);
    suite_add_tcase(s, token);

    tcase_add_unchecked_fixture(load, gktest_srv_up, gktest_srv_down);
    tcase_set_timeout(load, 120);
    tcase_add_test(load, polling_metrics_and_health_does_not_slow_config);
    suite_add_tcase(s, load);
    return s;
}
