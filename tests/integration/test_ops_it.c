/* SPDX-License-Identifier: MIT */
/*
 * test_ops_it.c -- GET /openapi.json and /docs on the built server, and what the server and the
 * worker do at start with an evicting Redis: the OpenAPI document against the route table and
 * the server itself, and the configuration schema against bizconf's ranges; a maxmemory-policy
 * other than noeviction stops both, now or once Redis answers, and an unreadable one is a
 * warning. /metrics and /health are test_monitor_it.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "gk/bizconf.h"
#include "gk/handlers.h"
#include "gk/router.h"
#include "integration/suites.h"
#include "support/gktest.h"

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

/* A documented path ("/wait/{business_id}", "/events/{event_id}/draw") and a route path name the
 * same thing: equal, where each '+' of the route stands for one template segment of the document,
 * and a trailing '*' for a last one. */
static bool
same_path(const char *doc_path, const char *route_path)
{
    const char *d = doc_path;

    for (const char *r = route_path; *r != '\0'; r++) {
        if (*r == '+' || (*r == '*' && r[1] == '\0')) {
            size_t seg = strcspn(d, "/");

            if (*d != '{' || seg < 2 || d[seg - 1] != '}')
                return false;
            d += seg;
        } else if (*r != *d++) {
            return false;
        }
    }
    return *d == '\0';
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
    e = get(get(props, "pow_mode"), "enum");
    ck_assert_uint_eq(json_object_array_length(e), 3);
    for (int m = GK_POW_OFF; m <= GK_POW_AUTO; m++)
        ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(e, (size_t)m)),
                         gk_pow_mode_name((enum gk_pow_mode)m));
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

/* A Redis ACL user named in REDIS_URL: both programs AUTH as that user (AUTH user password). */
START_TEST(redis_acl_user_from_the_url)
{
    char url[256], biz[64];
    const char *env[] = {url, NULL};
    struct gktest_server s, w;
    struct gktest_resp r;

    gktest_redis("ACL SETUSER gkacl on '>gk-acl-pw' '~*' '&*' '+@all'");
    snprintf(url, sizeof(url), "REDIS_URL=redis://gkacl:gk-acl-pw@127.0.0.1:%s/0",
             gktest_env("GK_TEST_REDIS_PORT"));
    gktest_server_start(&s, env);
    gktest_worker_start(&w, env);
    gktest_new_business(s.port, "{}", biz, sizeof(biz));
    gktest_enqueue(s.port, biz, "acl-user", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    gktest_resp_free(&r);
    gktest_sleep_ms(500); /* the worker's first pass */
    /* The server's store and pipeline and the worker's store: every one signed in as gkacl. */
    ck_assert_int_ge(gktest_redis_int("CLIENT KILL USER gkacl"), 3);
    gktest_kill(&s);
    gktest_kill(&w);
    gktest_redis("ACL DELUSER gkacl");
}
END_TEST

Suite *
ops_it_suite(void)
{
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("metrics_and_docs"); /* the metrics half is in test_monitor_it.c */
    TCase *policy = tcase_create("redis_policy");

    tcase_add_unchecked_fixture(tc, gktest_srv_up, gktest_srv_down);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, openapi_matches_the_route_table);
    tcase_add_test(tc, every_documented_operation_answers);
    tcase_add_test(tc, openapi_is_consistent_and_embedded_verbatim);
    tcase_add_test(tc, docs_page_is_self_contained_html);
    suite_add_tcase(s, tc);

    tcase_add_checked_fixture(policy, NULL, policy_restored);
    tcase_set_timeout(policy, 60);
    tcase_add_test(policy, evicting_redis_stops_server_and_worker_at_start);
    tcase_add_test(policy, unreadable_policy_is_a_warning);
    tcase_add_test(policy, evicting_redis_that_comes_later_stops_server_and_worker);
    tcase_add_test(policy, redis_acl_user_from_the_url);
    suite_add_tcase(s, policy);
    return s;
}
