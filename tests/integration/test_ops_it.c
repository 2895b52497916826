/* SPDX-License-Identifier: MIT */
/*
 * test_ops_it.c -- GET /metrics, /openapi.json and /docs on the built server, against real Redis
 * and PostgreSQL: the Prometheus text is checked line by line (and with promtool when it is
 * installed), the counters against requests the test makes, the worker tick histogram against a
 * real worker; the OpenAPI document against the route table and the server itself, and the
 * configuration schema against bizconf's ranges.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "gk/bizconf.h"
#include "gk/handlers.h"
#include "gk/router.h"
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

static bool
ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);

    return n >= m && strcmp(s + n - m, suffix) == 0;
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
        CHECK(x, ends_with(name, "_total"), "counter %s does not end in _total", name);
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
            if (ends_with(name, suffixes[i])) {
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
        fprintf(stderr, "ops_it: promtool not installed; checked the format without it\n");
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

/* ---- the OpenAPI document ---- */

static const char *const methods[] = {"get", "put", "post", "delete", "options", "head", "patch", "trace"};

/* GET /openapi.json, parsed; caller frees with json_object_put. */
static struct json_object *
openapi(void)
{
    struct gktest_resp r;
    struct json_object *doc;
    char ct[64];

    gktest_http(gktest_srv.port, "GET", "/openapi.json", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(gktest_header(&r, "Content-Type", ct, sizeof(ct)), "application/json");
    ck_assert_msg(r.json != NULL, "openapi.json is not JSON");
    doc = json_object_get(r.json);
    gktest_resp_free(&r);
    return doc;
}

static struct json_object *
get(struct json_object *o, const char *key)
{
    struct json_object *v = NULL;

    ck_assert_msg(o != NULL && json_object_object_get_ex(o, key, &v), "no member %s", key);
    return v;
}

/* A documented path ("/wait/{business_id}") and a route path ("/wait/ *" without the space)
 * name the same thing: equal, or the route's trailing '*' standing for one template segment. */
static bool
same_path(const char *doc_path, const char *route_path)
{
    size_t n = strlen(route_path);

    if (n > 0 && route_path[n - 1] == '*')
        return strncmp(doc_path, route_path, n - 1) == 0 && doc_path[n - 1] == '{' &&
               strchr(doc_path + n - 1, '/') == NULL && ends_with(doc_path, "}");
    return strcmp(doc_path, route_path) == 0;
}

/* doc_path with each {template} replaced by "x". */
static void
concrete(const char *doc_path, char *out, size_t outlen)
{
    size_t n = 0;

    for (const char *p = doc_path; *p != '\0' && n + 2 < outlen; p++) {
        if (*p == '{') {
            out[n++] = 'x';
            p = strchr(p, '}');
            ck_assert_ptr_nonnull(p);
        } else {
            out[n++] = *p;
        }
    }
    out[n] = '\0';
}

/* s in upper or lower case ASCII. */
static void
recase(const char *s, bool up, char *out, size_t outlen)
{
    size_t i = 0;

    for (; s[i] != '\0' && i + 1 < outlen; i++) {
        char c = s[i];

        if (up && c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        else if (!up && c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        out[i] = c;
    }
    out[i] = '\0';
}

START_TEST(openapi_matches_the_route_table)
{
    struct json_object *doc = openapi(), *paths;
    const struct gk_routes *api = gk_handlers_routes();
    size_t documented = 0;

    ck_assert_int_eq(strncmp(json_object_get_string(get(doc, "openapi")), "3.0.", 4), 0);
    paths = get(doc, "paths");
    /* Every route is documented... */
    for (size_t i = 0; i < api->n; i++) {
        const struct gk_route *rt = &api->table[i];
        char m[16];
        bool found = false;

        recase(rt->method, false, m, sizeof(m));
        json_object_object_foreach(paths, p, item)
        {
            if (same_path(p, rt->path) && json_object_object_get_ex(item, m, NULL))
                found = true;
        }
        ck_assert_msg(found, "%s %s is served but not in docs/openapi.json", rt->method, rt->path);
    }
    /* ...and every documented operation is a route. */
    json_object_object_foreach(paths, p, item)
    {
        for (size_t k = 0; k < sizeof(methods) / sizeof(methods[0]); k++) {
            const struct gk_route *rt;
            char path[256], m[16], allow[128];

            if (!json_object_object_get_ex(item, methods[k], NULL))
                continue;
            documented++;
            concrete(p, path, sizeof(path));
            recase(methods[k], true, m, sizeof(m));
            ck_assert_msg(gk_router_match(api, m, path, &rt, allow, sizeof(allow)) == GK_ROUTE_FOUND &&
                              same_path(p, rt->path),
                          "%s %s is documented but not served", m, p);
        }
    }
    ck_assert_uint_eq(documented, api->n);
    json_object_put(doc);
}
END_TEST

START_TEST(every_documented_operation_answers)
{
    struct json_object *doc = openapi();

    json_object_object_foreach(get(doc, "paths"), p, item)
    {
        for (size_t k = 0; k < sizeof(methods) / sizeof(methods[0]); k++) {
            struct gktest_resp r;
            struct json_object *code = NULL;
            char path[256], m[16];

            if (!json_object_object_get_ex(item, methods[k], NULL))
                continue;
            concrete(p, path, sizeof(path));
            recase(methods[k], true, m, sizeof(m));
            gktest_http(gktest_srv.port, m, path, NULL, NULL, &r);
            ck_assert_msg(r.status != 0 && r.status != 405, "%s %s: %d", m, path, r.status);
            ck_assert_msg(!(r.status == 404 && r.json != NULL &&
                            json_object_object_get_ex(r.json, "error", &code) &&
                            strcmp(json_object_get_string(code), "not_found") == 0),
                          "%s %s: 404 not_found", m, path);
            gktest_resp_free(&r);
        }
    }
    json_object_put(doc);
}
END_TEST

/* Every "$ref" in o points at something in doc. */
static void
check_refs(struct json_object *doc, struct json_object *o, int *count)
{
    if (json_object_is_type(o, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(o); i++)
            check_refs(doc, json_object_array_get_idx(o, i), count);
        return;
    }
    if (!json_object_is_type(o, json_type_object))
        return;
    json_object_object_foreach(o, key, val)
    {
        if (strcmp(key, "$ref") == 0) {
            char ref[256], *save = NULL;
            struct json_object *at = doc;

            snprintf(ref, sizeof(ref), "%s", json_object_get_string(val));
            ck_assert_msg(strncmp(ref, "#/", 2) == 0, "external $ref %s", ref);
            for (char *part = strtok_r(ref + 2, "/", &save); part != NULL; part = strtok_r(NULL, "/", &save))
                ck_assert_msg(json_object_object_get_ex(at, part, &at), "$ref %s does not resolve",
                              json_object_get_string(val));
            (*count)++;
        } else {
            check_refs(doc, val, count);
        }
    }
}

static long long
int_member(struct json_object *o, const char *key)
{
    struct json_object *v = get(o, key);

    ck_assert_msg(json_object_is_type(v, json_type_int), "%s is not an integer", key);
    return (long long)json_object_get_int64(v);
}

/* The config schema's fields, defaults and ranges are bizconf's. */
static void
check_config_schema(struct json_object *schema, bool whole)
{
    struct json_object *props = get(schema, "properties"), *e, *origins;
    struct gk_bizconf def;

    gk_bizconf_defaults(&def);
    ck_assert_int_eq(json_object_object_length(props), GK_BC_NFIELDS);
    ck_assert(!json_object_get_boolean(get(schema, "additionalProperties")));
    if (whole)
        ck_assert_uint_eq(json_object_array_length(get(schema, "required")), GK_BC_NFIELDS);
    for (int f = 0; f < GK_BC_NUMERIC; f++) {
        struct json_object *p = get(props, gk_bizconf_field_name((enum gk_bc_field)f));
        uint32_t min, max, alt;

        gk_bizconf_field_range((enum gk_bc_field)f, &min, &max, &alt);
        ck_assert_str_eq(json_object_get_string(get(p, "type")), "integer");
        ck_assert_int_eq(int_member(p, "maximum"), max);
        ck_assert_int_eq(int_member(p, "default"), def.num[f]);
        if (alt == UINT32_MAX) {
            ck_assert_int_eq(int_member(p, "minimum"), min);
        } else {
            ck_assert_int_eq(int_member(p, "minimum"), alt);
            ck_assert_int_eq(int_member(get(p, "not"), "minimum"), alt + 1);
            ck_assert_int_eq(int_member(get(p, "not"), "maximum"), min - 1);
        }
    }
    e = get(get(props, "queueing_method"), "enum");
    ck_assert_uint_eq(json_object_array_length(e), 4);
    for (int m = GK_QM_FIFO; m <= GK_QM_REJECT; m++)
        ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(e, (size_t)m)),
                         gk_qmethod_name((enum gk_qmethod)m));
    origins = get(props, "allowed_origins");
    ck_assert_int_eq(int_member(origins, "maxItems"), GK_ORIGINS_MAX);
    ck_assert_int_eq(int_member(get(origins, "items"), "maxLength"), GK_ORIGIN_BUF - 1);
}

START_TEST(openapi_is_consistent_and_embedded_verbatim)
{
    struct json_object *doc = openapi(), *schemas, *ops_ids = json_object_new_object();
    struct gktest_resp r;
    FILE *f = fopen(GK_SOURCE_DIR "/docs/openapi.json", "rb");
    char *file;
    long len;
    int refs = 0;

    /* What the server sends is exactly the file in the repository. */
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    rewind(f);
    file = calloc(1, (size_t)len + 1);
    ck_assert_uint_eq(fread(file, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    gktest_http(gktest_srv.port, "GET", "/openapi.json", NULL, NULL, &r);
    ck_assert_uint_eq(r.body_len, (size_t)len);
    ck_assert_int_eq(memcmp(r.body, file, (size_t)len), 0);
    gktest_resp_free(&r);
    free(file);

    check_refs(doc, doc, &refs);
    ck_assert_int_gt(refs, 20);
    /* Operations have unique ids and at least one documented answer. */
    json_object_object_foreach(get(doc, "paths"), p, item)
    {
        json_object_object_foreach(item, method, op)
        {
            const char *id = json_object_get_string(get(op, "operationId"));

            ck_assert_msg(!json_object_object_get_ex(ops_ids, id, NULL), "operationId %s twice", id);
            json_object_object_add(ops_ids, id, NULL);
            ck_assert_msg(json_object_object_length(get(op, "responses")) > 0, "%s %s: no responses", method,
                          p);
        }
    }
    schemas = get(get(doc, "components"), "schemas");
    check_config_schema(get(schemas, "Config"), true);
    check_config_schema(get(schemas, "ConfigPatch"), false);
    json_object_put(ops_ids);
    json_object_put(doc);
}
END_TEST

START_TEST(docs_page_is_self_contained_html)
{
    static const char *const external[] = {"src=\"http", "src='http", "href=\"http", "href='http",
                                           "src=\"//",   "href=\"//", "@import",     "url(http"};
    struct gktest_resp r;
    char ct[64];

    gktest_http(gktest_srv.port, "GET", "/docs", NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(gktest_header(&r, "Content-Type", ct, sizeof(ct)), "text/html; charset=utf-8");
    ck_assert_int_eq(strncmp(r.body, "<!DOCTYPE html>", 15), 0);
    ck_assert_ptr_nonnull(strstr(r.body, "<script>"));
    ck_assert_ptr_nonnull(strstr(r.body, "openapi.json"));
    for (size_t i = 0; i < sizeof(external) / sizeof(external[0]); i++)
        ck_assert_msg(strstr(r.body, external[i]) == NULL, "the page loads something from outside: %s",
                      external[i]);
    gktest_resp_free(&r);
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
            fprintf(stderr, "ops_it: could not restart Redis\n");
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
            "ops_it: %d clients answered %ld times; GET /config p50 %lld ms, p99 %lld ms, max %lld ms\n",
            LOAD_CLIENTS, answered, took[CONFIG_CALLS / 2], took[CONFIG_CALLS * 99 / 100],
            took[CONFIG_CALLS - 1]);
    ck_assert_int_gt(answered, 100);
    ck_assert_msg(took[CONFIG_CALLS * 99 / 100] < 300, "GET /config p99 %lld ms under load",
                  took[CONFIG_CALLS * 99 / 100]);
}
END_TEST

/* ---- Redis's eviction policy ---- */

static void
policy_restored(void)
{
    gktest_redis("ACL SETUSER default +config");
    gktest_redis("CONFIG SET maxmemory-policy noeviction");
}

/* Contents of the file at path (at most len - 1 bytes) into buf. */
static const char *
read_log(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    size_t n;

    ck_assert_ptr_nonnull(f);
    n = fread(buf, 1, len - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

START_TEST(evicting_redis_stops_server_and_worker_at_start)
{
    static const char *const policies[] = {"allkeys-lru", "volatile-ttl"};
    char port[32], redis[256], db[256], err[4096], want[64];
    const char *server_env[] = {
        port, redis, db, "JWT_SECRET=" GKTEST_JWT_SECRET, "ADMIN_TOKEN=" GKTEST_ADMIN_TOKEN, NULL};
    const char *worker_env[] = {redis, db, NULL};

    snprintf(redis, sizeof(redis), "REDIS_URL=%s", gktest_env("GK_TEST_REDIS_URL"));
    snprintf(db, sizeof(db), "DATABASE_URL=%s", gktest_env("GK_TEST_DATABASE_URL"));
    for (size_t i = 0; i < sizeof(policies) / sizeof(policies[0]); i++) {
        int rc;

        gktest_redis("CONFIG SET maxmemory-policy %s", policies[i]);
        snprintf(want, sizeof(want), "maxmemory-policy is %s", policies[i]);
        snprintf(port, sizeof(port), "PORT=%u", gktest_free_port());
        rc = gktest_run_binary("gatekeeper", server_env, err, sizeof(err));
        ck_assert_msg(rc == 1, "server: exit %d, stderr: %s", rc, err);
        ck_assert_msg(strstr(err, want) != NULL && strstr(err, "set maxmemory-policy noeviction") != NULL,
                      "server: %s", err);
        rc = gktest_run_binary("gatekeeper-worker", worker_env, err, sizeof(err));
        ck_assert_msg(rc == 1, "worker: exit %d, stderr: %s", rc, err);
        ck_assert_msg(strstr(err, want) != NULL && strstr(err, "set maxmemory-policy noeviction") != NULL,
                      "worker: %s", err);
    }
}
END_TEST

/* Managed Redis often refuses CONFIG: that is a warning, not a reason to stop. */
START_TEST(unreadable_policy_is_a_warning)
{
    struct gktest_server s, w;
    char buf[65536];

    gktest_redis("ACL SETUSER default -config");
    gktest_server_start(&s, NULL);
    gktest_worker_start(&w, NULL);
    gktest_sleep_ms(1000);
    gktest_server_stop(&s);
    gktest_server_stop(&w);
    ck_assert_ptr_nonnull(strstr(read_log(s.log, buf, sizeof(buf)), "cannot read Redis maxmemory-policy"));
    ck_assert_ptr_nonnull(strstr(read_log(w.log, buf, sizeof(buf)), "cannot read Redis maxmemory-policy"));
}
END_TEST

/* A Redis unreachable at start is checked once it answers: an evicting one then stops both. */
START_TEST(evicting_redis_that_comes_later_stops_server_and_worker)
{
    uint16_t port = gktest_free_port();
    char url[128], cmd[1024], buf[65536];
    const char *env[] = {url, NULL};
    struct gktest_server s, w;
    int rs, rw;

    snprintf(url, sizeof(url), "REDIS_URL=redis://127.0.0.1:%u/0", port);
    gktest_server_start(&s, env);
    gktest_worker_start(&w, env);
    snprintf(
        cmd, sizeof(cmd),
        "redis-server --port %u --bind 127.0.0.1 --save '' --appendonly no --maxmemory-policy allkeys-lru "
        "--daemonize yes --dir '%s' --pidfile '%s/evicting-%u.pid' --logfile '%s/evicting-%u.log'",
        port, gktest_env("GK_TEST_TMP"), gktest_env("GK_TEST_TMP"), port, gktest_env("GK_TEST_TMP"), port);
    ck_assert_int_eq(system(cmd), 0);
    rs = gktest_wait_exit(&s, GKTEST_REFRESH_MS);
    rw = gktest_wait_exit(&w, GKTEST_REFRESH_MS);
    gktest_kill(&s); /* when they did not exit */
    gktest_kill(&w);
    snprintf(cmd, sizeof(cmd), "redis-cli -p %u shutdown nosave >/dev/null 2>&1", port);
    if (system(cmd) != 0)
        fprintf(stderr, "ops_it: could not stop the redis-server on port %u\n", port);
    ck_assert_msg(rs == 1, "server exit %d; see %s", rs, s.log);
    ck_assert_msg(rw == 1, "worker exit %d; see %s", rw, w.log);
    ck_assert_ptr_nonnull(strstr(read_log(s.log, buf, sizeof(buf)), "maxmemory-policy is allkeys-lru"));
    ck_assert_ptr_nonnull(strstr(read_log(w.log, buf, sizeof(buf)), "maxmemory-policy is allkeys-lru"));
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
ops_it_suite(void)
{
    Suite *s = suite_create("ops");
    TCase *checker = tcase_create("checker");
    TCase *tc = tcase_create("metrics_and_docs");
    TCase *outage = tcase_create("outage");
    TCase *token = tcase_create("metrics_token");
    TCase *load = tcase_create("load");
    TCase *policy = tcase_create("redis_policy");

    tcase_add_test(checker, checker_refuses_bad_text);
    suite_add_tcase(s, checker);

    tcase_add_unchecked_fixture(tc, gktest_srv_up, gktest_srv_down);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, metrics_count_requests_rejections_and_queues);
    tcase_add_test(tc, metrics_show_worker_ticks_and_admissions);
    tcase_add_test(tc, repeated_verifies_are_logged_once_a_minute_but_all_counted);
    tcase_add_test(tc, openapi_matches_the_route_table);
    tcase_add_test(tc, every_documented_operation_answers);
    tcase_add_test(tc, openapi_is_consistent_and_embedded_verbatim);
    tcase_add_test(tc, docs_page_is_self_contained_html);
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

    tcase_add_checked_fixture(policy, NULL, policy_restored);
    tcase_set_timeout(policy, 60);
    tcase_add_test(policy, evicting_redis_stops_server_and_worker_at_start);
    tcase_add_test(policy, unreadable_policy_is_a_warning);
    tcase_add_test(policy, evicting_redis_that_comes_later_stops_server_and_worker);
    suite_add_tcase(s, policy);
    return s;
}
