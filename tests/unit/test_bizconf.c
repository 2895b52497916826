/* SPDX-License-Identifier: MIT */
/* test_bizconf.c -- business config: defaults, ranges, POST /config body parsing, origins, JSON. */
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "gk/bizconf.h"
#include "unit/suites.h"

#define NO_ALT UINT32_MAX

/* docs/API.md's table, written out again here so the implementation's table is checked against it. */
static const struct {
    enum gk_bc_field f;
    const char *name;
    uint32_t def, min, max, alt;
} expect[GK_BC_NUMERIC] = {
    {GK_BC_ADMISSION_LIMIT, "admission_limit", 100, 1, 100000, NO_ALT},
    {GK_BC_ADMISSION_FREQUENCY, "admission_frequency", 5, 1, 3600, NO_ALT},
    {GK_BC_JWT_EXPIRY_SECONDS, "jwt_expiry_seconds", 300, 60, 600, NO_ALT},
    {GK_BC_READY_TTL_SECONDS, "ready_ttl_seconds", 600, 60, 3600, NO_ALT},
    {GK_BC_IP_ENQUEUE_LIMIT, "ip_enqueue_limit", 100, 1, 1000000, NO_ALT},
    {GK_BC_IP_ENQUEUE_LIMIT_INTERVAL, "ip_enqueue_limit_interval", 60, 1, 86400, NO_ALT},
    {GK_BC_IP_STATUS_POLLING_LIMIT, "ip_status_polling_limit", 60, 1, 1000000, NO_ALT},
    {GK_BC_IP_STATUS_POLLING_LIMIT_INTERVAL, "ip_status_polling_limit_interval", 60, 1, 86400, NO_ALT},
    {GK_BC_MAX_ACTIVE_USERS, "max_active_users", 0, 0, 10000000, NO_ALT},
    {GK_BC_ABANDON_AFTER_SECONDS, "abandon_after_seconds", 0, 30, 86400, 0},
    {GK_BC_MAX_QUEUE_LENGTH, "max_queue_length", 0, 0, 100000000, NO_ALT},
    {GK_BC_IP_VERIFY_LIMIT, "ip_verify_limit", 1200, 1, 1000000, NO_ALT},
    {GK_BC_IP_VERIFY_LIMIT_INTERVAL, "ip_verify_limit_interval", 60, 1, 86400, NO_ALT},
    {GK_BC_IP_FINISH_LIMIT, "ip_finish_limit", 600, 1, 1000000, NO_ALT},
    {GK_BC_IP_FINISH_LIMIT_INTERVAL, "ip_finish_limit_interval", 60, 1, 86400, NO_ALT},
    {GK_BC_POW_MAX_NUMBER, "pow_max_number", 100000, 1000, 10000000, NO_ALT},
};

/* Result of one parse, with the output buffers sized as a handler would size them. */
struct parsed {
    enum gk_err rc;
    struct gk_bizconf_patch p;
    bool json_error;
    char field[64];
    char msg[128];
};

static void
parse_len(const char *body, size_t len, struct parsed *r)
{
    r->rc = gk_bizconf_parse_patch(body, len, &r->p, &r->json_error, r->field, sizeof(r->field), r->msg,
                                   sizeof(r->msg));
}

static void
parse(const char *body, struct parsed *r)
{
    parse_len(body, strlen(body), r);
}

/* Parses {"<name>": <value>} and checks only that one field was accepted. */
static enum gk_err
parse_one(const char *name, const char *value, struct parsed *r)
{
    char body[512];

    snprintf(body, sizeof(body), "{\"%s\": %s}", name, value);
    parse(body, r);
    if (r->rc == GK_OK) {
        ck_assert(!r->json_error);
        ck_assert_str_eq(r->field, "");
    }
    return r->rc;
}

static void
assert_json_error(const char *body, size_t len)
{
    struct parsed r;

    parse_len(body, len, &r);
    ck_assert_msg(r.rc == GK_EINVAL, "accepted: %.*s", (int)len, body);
    ck_assert(r.json_error);
    ck_assert_str_eq(r.field, "");
    ck_assert(r.msg[0] != '\0');
    ck_assert_uint_eq(r.p.set, 0);
}

static void
assert_field_error(const char *body, const char *field)
{
    struct parsed r;

    parse(body, &r);
    ck_assert_msg(r.rc == GK_EINVAL, "accepted: %s", body);
    ck_assert(!r.json_error);
    ck_assert_str_eq(r.field, field);
    ck_assert(r.msg[0] != '\0');
    ck_assert_uint_eq(r.p.set, 0);
}

static void
assert_conf_eq(const struct gk_bizconf *a, const struct gk_bizconf *b)
{
    for (int i = 0; i < GK_BC_NUMERIC; i++)
        ck_assert_uint_eq(a->num[i], b->num[i]);
    ck_assert_int_eq(a->queueing_method, b->queueing_method);
    ck_assert_int_eq(a->pow_mode, b->pow_mode);
    ck_assert_uint_eq(a->n_origins, b->n_origins);
    for (uint32_t i = 0; i < a->n_origins; i++)
        ck_assert_str_eq(a->origins[i], b->origins[i]);
}

START_TEST(defaults_match_api)
{
    struct gk_bizconf c;

    memset(&c, 0xAB, sizeof(c));
    gk_bizconf_defaults(&c);
    for (int i = 0; i < GK_BC_NUMERIC; i++)
        ck_assert_uint_eq(c.num[expect[i].f], expect[i].def);
    ck_assert_int_eq(c.queueing_method, GK_QM_FIFO);
    ck_assert_uint_eq(c.n_origins, 1);
    ck_assert_str_eq(c.origins[0], "*");
}
END_TEST

START_TEST(field_table_matches_api)
{
    uint32_t min, max, alt;

    for (int i = 0; i < GK_BC_NUMERIC; i++) {
        ck_assert_str_eq(gk_bizconf_field_name(expect[i].f), expect[i].name);
        gk_bizconf_field_range(expect[i].f, &min, &max, &alt);
        ck_assert_uint_eq(min, expect[i].min);
        ck_assert_uint_eq(max, expect[i].max);
        ck_assert_uint_eq(alt, expect[i].alt);
    }
    ck_assert_str_eq(gk_bizconf_field_name(GK_BC_QUEUEING_METHOD), "queueing_method");
    ck_assert_str_eq(gk_bizconf_field_name(GK_BC_ALLOWED_ORIGINS), "allowed_origins");
    ck_assert(gk_bizconf_value_ok(GK_BC_ABANDON_AFTER_SECONDS, 0));
    ck_assert(!gk_bizconf_value_ok(GK_BC_ABANDON_AFTER_SECONDS, 1));
    ck_assert(!gk_bizconf_value_ok(GK_BC_ABANDON_AFTER_SECONDS, 29));
    ck_assert(gk_bizconf_value_ok(GK_BC_ABANDON_AFTER_SECONDS, 30));
    ck_assert(!gk_bizconf_value_ok(GK_BC_ADMISSION_LIMIT, 0));
    ck_assert(!gk_bizconf_value_ok(GK_BC_ADMISSION_LIMIT, UINT32_MAX));
}
END_TEST

/* One numeric field (the loop index) at min-1, min, max, max+1 and its extra value. */
START_TEST(numeric_boundaries)
{
    const char *name = expect[_i].name;
    enum gk_bc_field f = expect[_i].f;
    uint32_t min = expect[_i].min, max = expect[_i].max, alt = expect[_i].alt;
    char v[32];
    struct parsed r;

    snprintf(v, sizeof(v), "%u", min);
    ck_assert_int_eq(parse_one(name, v, &r), GK_OK);
    ck_assert_uint_eq(r.p.set, 1u << f);
    ck_assert_uint_eq(r.p.v.num[f], min);

    snprintf(v, sizeof(v), "%u", max);
    ck_assert_int_eq(parse_one(name, v, &r), GK_OK);
    ck_assert_uint_eq(r.p.v.num[f], max);

    snprintf(v, sizeof(v), "%u", max + 1);
    ck_assert_int_eq(parse_one(name, v, &r), GK_EINVAL);
    ck_assert_str_eq(r.field, name);
    ck_assert(!r.json_error);
    ck_assert_uint_eq(r.p.set, 0);

    /* min-1 is -1 for fields starting at 0: a negative number is out of range too. */
    snprintf(v, sizeof(v), "%lld", (long long)min - 1);
    if (alt == NO_ALT || (long long)alt != (long long)min - 1) {
        ck_assert_int_eq(parse_one(name, v, &r), GK_EINVAL);
        ck_assert_str_eq(r.field, name);
    }
    if (alt != NO_ALT) {
        snprintf(v, sizeof(v), "%u", alt);
        ck_assert_int_eq(parse_one(name, v, &r), GK_OK);
        ck_assert_uint_eq(r.p.v.num[f], alt);
        snprintf(v, sizeof(v), "%u", alt + 1);
        ck_assert_int_eq(parse_one(name, v, &r), GK_EINVAL);
    }
}
END_TEST

START_TEST(numeric_range_message)
{
    struct parsed r;

    ck_assert_int_eq(parse_one("admission_limit", "0", &r), GK_EINVAL);
    ck_assert_str_eq(r.msg, "must be an integer between 1 and 100000");
    ck_assert_int_eq(parse_one("abandon_after_seconds", "29", &r), GK_EINVAL);
    ck_assert_str_eq(r.msg, "must be 0 or an integer between 30 and 86400");
}
END_TEST

START_TEST(numeric_wrong_types)
{
    static const char *const bad[] = {
        "1.0",
        "1e2",
        "100.5",
        "\"5\"",
        "\"\"",
        "true",
        "false",
        "null",
        "[]",
        "{}",
        "[5]",
        "-1",
        "-0.0",
        "NaN",
        "-100",
        "4294967296",
        "4294967396",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551615",
        "99999999999999999999999999",
        "-9223372036854775808",
        "-99999999999999999999999999",
    };
    struct parsed r;

    for (size_t i = 0; i < GK_ARRAY_LEN(bad); i++) {
        enum gk_err rc = parse_one("admission_limit", bad[i], &r);

        if (rc == GK_EINVAL && r.json_error)
            continue; /* e.g. NaN is not JSON at all; refused either way */
        ck_assert_msg(rc == GK_EINVAL, "admission_limit accepted %s", bad[i]);
        ck_assert_str_eq(r.field, "admission_limit");
    }
    /* -0 is the JSON integer zero. */
    ck_assert_int_eq(parse_one("max_queue_length", "-0", &r), GK_OK);
    ck_assert_uint_eq(r.p.v.num[GK_BC_MAX_QUEUE_LENGTH], 0);
}
END_TEST

START_TEST(unknown_field)
{
    char body[400];
    char key[300];
    struct parsed r;

    assert_field_error("{\"admission_limit\": 5, \"nope\": 1}", "nope");
    parse("{\"Admission_limit\": 5}", &r);
    ck_assert_str_eq(r.field, "Admission_limit");
    ck_assert_str_eq(r.msg, "unknown field");

    /* An overlong key is cut to the field buffer. */
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    snprintf(body, sizeof(body), "{\"%s\": 1}", key);
    parse(body, &r);
    ck_assert_int_eq(r.rc, GK_EINVAL);
    ck_assert_uint_eq(strlen(r.field), sizeof(r.field) - 1);
    ck_assert(strncmp(r.field, key, sizeof(r.field) - 1) == 0);
    ck_assert_uint_le(strlen(r.msg), 64);

    /* ...and never in the middle of a UTF-8 character: "kk" + 40 x "é" is 82 bytes. */
    strcpy(key, "kk");
    for (int i = 0; i < 40; i++)
        strcat(key, "\xc3\xa9");
    snprintf(body, sizeof(body), "{\"%s\": 1}", key);
    parse(body, &r);
    ck_assert_int_eq(r.rc, GK_EINVAL);
    ck_assert_uint_eq(strlen(r.field), 62); /* 63 would split the 31st character */
    ck_assert(strncmp(r.field, key, 62) == 0);
}
END_TEST

START_TEST(small_output_buffers)
{
    struct gk_bizconf_patch p;
    bool json_error;
    char field[5];
    char msg[10];

    ck_assert_int_eq(gk_bizconf_parse_patch("{\"admission_limit\": 0}", 22, &p, &json_error, field,
                                            sizeof(field), msg, sizeof(msg)),
                     GK_EINVAL);
    ck_assert_str_eq(field, "admi");
    ck_assert_str_eq(msg, "must be a");
}
END_TEST

START_TEST(malformed_bodies)
{
    static const char *const bad[] = {
        "",
        " ",
        "{",
        "}",
        "{\"admission_limit\": 5",
        "[]",
        "[{}]",
        "1",
        "\"x\"",
        "null",
        "true",
        "{}x",
        "{} {}",
        "{}{}",
        "{\"admission_limit\": 5,}",
        "{,}",
        "{'admission_limit': 5}x",
        "{\"a\" 1}",
        "{\"admission_limit\": 01}",
        "{\"a\": 1 /* c */}",
        "{\"a\":\"\xff\"}",
        "{\"a\": True}",
        "\xef\xbb\xbf{}",
        "{\"allowed_origins\": [[[[\"*\"]]]]}",
        "{\"a\": {\"b\": {\"c\": {\"d\": 1}}}}",
    };
    static const char *const nul_keys[] = {
        "{\"admission_limit\\u0000x\": 5}",
        "{\"admission_limit\": 5, \"\\u0000\": 1}",
        "{\"allowed_origins\": [{\"a\\u0000\": 1}]}",
    };
    char deep[2048];
    size_t n = 0;

    for (size_t i = 0; i < GK_ARRAY_LEN(bad); i++)
        assert_json_error(bad[i], strlen(bad[i]));

    /* A NUL byte after the object, or inside it, is not JSON. */
    assert_json_error("{}\0", 3);
    assert_json_error("{\"a\":\"x\0y\"}", 11);
    assert_json_error("\0{}", 3);

    /* json-c cuts a key at an escaped NUL, so "admission_limit\u0000x" would pass for
     * admission_limit: such a key makes the body unreadable, wherever it sits. An escaped
     * backslash before "u0000" is no NUL: that key is just unknown. */
    for (size_t i = 0; i < GK_ARRAY_LEN(nul_keys); i++)
        assert_json_error(nul_keys[i], strlen(nul_keys[i]));
    assert_field_error("{\"a\\\\u0000\": 5}", "a\\u0000");

    /* Deep nesting is cut short by the depth limit, not by the stack. */
    deep[n++] = '{';
    n += (size_t)snprintf(deep + n, sizeof(deep) - n, "\"a\":");
    for (int i = 0; i < 1000; i++)
        deep[n++] = '[';
    deep[n] = '\0';
    assert_json_error(deep, n);
}
END_TEST

START_TEST(whitespace_and_empty_object)
{
    struct parsed r;

    parse(" \t\r\n{ \"admission_limit\" : 5 }\r\n ", &r);
    ck_assert_int_eq(r.rc, GK_OK);
    ck_assert_uint_eq(r.p.v.num[GK_BC_ADMISSION_LIMIT], 5);
    parse("{}", &r);
    ck_assert_int_eq(r.rc, GK_OK);
    ck_assert_uint_eq(r.p.set, 0);
}
END_TEST

START_TEST(queueing_method_values)
{
    static const char *const names[] = {"fifo", "random", "passthrough", "reject"};
    static const char *const bad[] = {
        "\"FIFO\"", "\"\"", "\"lifo\"", "\"fifo \"",  "\"fifo\\u0000x\"",
        "1",        "null", "true",     "[\"fifo\"]", "{}",
    };
    char v[32];
    struct parsed r;
    enum gk_qmethod m;

    for (int i = 0; i < 4; i++) {
        snprintf(v, sizeof(v), "\"%s\"", names[i]);
        ck_assert_int_eq(parse_one("queueing_method", v, &r), GK_OK);
        ck_assert_uint_eq(r.p.set, 1u << GK_BC_QUEUEING_METHOD);
        ck_assert_int_eq(r.p.v.queueing_method, i);
        ck_assert_str_eq(gk_qmethod_name((enum gk_qmethod)i), names[i]);
        ck_assert_int_eq(gk_qmethod_parse(names[i], &m), GK_OK);
        ck_assert_int_eq(m, i);
    }
    for (size_t i = 0; i < GK_ARRAY_LEN(bad); i++) {
        ck_assert_msg(parse_one("queueing_method", bad[i], &r) == GK_EINVAL, "accepted %s", bad[i]);
        ck_assert_str_eq(r.field, "queueing_method");
    }
    ck_assert_int_eq(gk_qmethod_parse("Random", &m), GK_EINVAL);
}
END_TEST

START_TEST(pow_mode_values)
{
    static const char *const names[] = {"off", "on", "auto"};
    static const char *const bad[] = {"\"OFF\"", "\"\"", "\"always\"", "true", "0", "null"};
    struct gk_bizconf c;
    char v[32];
    struct parsed r;

    gk_bizconf_defaults(&c);
    ck_assert_int_eq(c.pow_mode, GK_POW_OFF);
    ck_assert_str_eq(gk_bizconf_field_name(GK_BC_POW_MODE), "pow_mode");
    for (int i = 0; i < 3; i++) {
        snprintf(v, sizeof(v), "\"%s\"", names[i]);
        ck_assert_int_eq(parse_one("pow_mode", v, &r), GK_OK);
        ck_assert_uint_eq(r.p.set, 1u << GK_BC_POW_MODE);
        ck_assert_int_eq(r.p.v.pow_mode, i);
        ck_assert_str_eq(gk_pow_mode_name((enum gk_pow_mode)i), names[i]);
        gk_bizconf_apply(&c, &r.p);
        ck_assert_int_eq(c.pow_mode, i);
    }
    for (size_t i = 0; i < GK_ARRAY_LEN(bad); i++) {
        ck_assert_msg(parse_one("pow_mode", bad[i], &r) == GK_EINVAL, "accepted %s", bad[i]);
        ck_assert_str_eq(r.field, "pow_mode");
    }
}
END_TEST

START_TEST(origin_syntax)
{
    static const char *const good[] = {
        "*",
        "http://a.com",
        "https://example.com",
        "https://shop.example.co.uk:8443",
        "http://localhost:1",
        "http://localhost:65535",
        "http://127.0.0.1:8080",
        "http://[::1]",
        "https://[2001:db8::1]:443",
        "https://xn--bcher-kva.example",
        "https://A-B.Example.COM",
        "http://a",
    };
    static const char *const bad[] = {
        "",
        "**",
        " *",
        "http://",
        "https://",
        "example.com",
        "//example.com",
        "ftp://example.com",
        "HTTPS://example.com",
        "https:/example.com",
        "https://example.com/",
        "https://example.com/path",
        "https://example.com?q=1",
        "https://example.com#frag",
        "https://user@example.com",
        "https://user:pw@example.com",
        "https://example.com:",
        "https://example.com:0",
        "https://example.com:65536",
        "https://example.com:99999",
        "https://example.com:123456",
        "https://example.com:080",
        "https://example.com:-1",
        "https://example.com:80:80",
        "https://-example.com",
        "https://example.com-",
        "https://.example.com",
        "https://example.com.",
        "https://exa_mple.com",
        "https://exa mple.com",
        "https://example.com ",
        "https://ex\xc3\xa4mple.com",
        "https://[::1",
        "https://[]",
        "https://[zz::1]",
        "https://[1.2.3.4]",
        "https://[::1]x",
        "https://example.com\"",
        "https://example.com,https://b.com",
        "https://example.com\\",
        "null",
    };
    char longest[GK_ORIGIN_BUF + 1];

    for (size_t i = 0; i < GK_ARRAY_LEN(good); i++)
        ck_assert_msg(gk_origin_valid(good[i]), "refused %s", good[i]);
    for (size_t i = 0; i < GK_ARRAY_LEN(bad); i++)
        ck_assert_msg(!gk_origin_valid(bad[i]), "accepted %s", bad[i]);
    ck_assert(!gk_origin_valid(NULL));

    /* 256 bytes is the limit. */
    strcpy(longest, "https://");
    memset(longest + 8, 'a', GK_ORIGIN_BUF - 1 - 8);
    longest[GK_ORIGIN_BUF - 1] = '\0';
    ck_assert_uint_eq(strlen(longest), 256);
    ck_assert(gk_origin_valid(longest));
    longest[GK_ORIGIN_BUF - 1] = 'a';
    longest[GK_ORIGIN_BUF] = '\0';
    ck_assert(!gk_origin_valid(longest));
}
END_TEST

START_TEST(origins_array)
{
    char body[4096];
    size_t n;
    struct parsed r;

    parse("{\"allowed_origins\": [\"https://a.example\", \"http://localhost:3000\"]}", &r);
    ck_assert_int_eq(r.rc, GK_OK);
    ck_assert_uint_eq(r.p.set, 1u << GK_BC_ALLOWED_ORIGINS);
    ck_assert_uint_eq(r.p.v.n_origins, 2);
    ck_assert_str_eq(r.p.v.origins[0], "https://a.example");
    ck_assert_str_eq(r.p.v.origins[1], "http://localhost:3000");

    /* An empty list is allowed: no cross-origin caller at all. */
    parse("{\"allowed_origins\": []}", &r);
    ck_assert_int_eq(r.rc, GK_OK);
    ck_assert_uint_eq(r.p.set, 1u << GK_BC_ALLOWED_ORIGINS);
    ck_assert_uint_eq(r.p.v.n_origins, 0);

    /* 16 entries are fine, 17 are not. */
    n = (size_t)snprintf(body, sizeof(body), "{\"allowed_origins\": [");
    for (int i = 0; i < GK_ORIGINS_MAX; i++)
        n += (size_t)snprintf(body + n, sizeof(body) - n, "%s\"https://h%d.example\"", i ? "," : "", i);
    snprintf(body + n, sizeof(body) - n, "]}");
    parse(body, &r);
    ck_assert_int_eq(r.rc, GK_OK);
    ck_assert_uint_eq(r.p.v.n_origins, GK_ORIGINS_MAX);
    ck_assert_str_eq(r.p.v.origins[15], "https://h15.example");
    snprintf(body + n, sizeof(body) - n, ",\"https://h16.example\"]}");
    assert_field_error(body, "allowed_origins");

    assert_field_error("{\"allowed_origins\": [\"https://a.example\", \"https://a.example\"]}",
                       "allowed_origins");
    assert_field_error("{\"allowed_origins\": [\"*\", \"*\"]}", "allowed_origins");
    assert_field_error("{\"allowed_origins\": \"*\"}", "allowed_origins");
    assert_field_error("{\"allowed_origins\": null}", "allowed_origins");
    assert_field_error("{\"allowed_origins\": {}}", "allowed_origins");
    assert_field_error("{\"allowed_origins\": [null]}", "allowed_origins");
    assert_field_error("{\"allowed_origins\": [1]}", "allowed_origins");
    assert_field_error("{\"allowed_origins\": [[\"*\"]]}", "allowed_origins");
    assert_field_error("{\"allowed_origins\": [\"https://a.example/\"]}", "allowed_origins");
    assert_field_error("{\"allowed_origins\": [\"*\\u0000x\"]}", "allowed_origins");
    parse("{\"allowed_origins\": [\"https://ok.example\", \"javascript:alert(1)\"]}", &r);
    ck_assert_int_eq(r.rc, GK_EINVAL);
    /* The message names the entry but does not echo it. */
    ck_assert_ptr_null(strstr(r.msg, "javascript"));
}
END_TEST

START_TEST(partial_patch_and_apply)
{
    struct gk_bizconf c, before;
    struct parsed r;

    gk_bizconf_defaults(&c);
    before = c;
    parse("{\"admission_limit\": 7, \"abandon_after_seconds\": 0, \"queueing_method\": \"random\","
          " \"allowed_origins\": [\"https://a.example\"]}",
          &r);
    ck_assert_int_eq(r.rc, GK_OK);
    ck_assert_uint_eq(r.p.set, (1u << GK_BC_ADMISSION_LIMIT) | (1u << GK_BC_ABANDON_AFTER_SECONDS) |
                                   (1u << GK_BC_QUEUEING_METHOD) | (1u << GK_BC_ALLOWED_ORIGINS));
    gk_bizconf_apply(&c, &r.p);
    ck_assert_uint_eq(c.num[GK_BC_ADMISSION_LIMIT], 7);
    ck_assert_uint_eq(c.num[GK_BC_ABANDON_AFTER_SECONDS], 0);
    ck_assert_int_eq(c.queueing_method, GK_QM_RANDOM);
    ck_assert_uint_eq(c.n_origins, 1);
    ck_assert_str_eq(c.origins[0], "https://a.example");
    for (int i = 0; i < GK_BC_NUMERIC; i++) {
        if (i != GK_BC_ADMISSION_LIMIT)
            ck_assert_uint_eq(c.num[i], before.num[i]);
    }

    /* A patch with one bad field sets nothing, even the good fields before it. */
    parse("{\"admission_limit\": 8, \"jwt_expiry_seconds\": 59}", &r);
    ck_assert_int_eq(r.rc, GK_EINVAL);
    ck_assert_str_eq(r.field, "jwt_expiry_seconds");
    ck_assert_uint_eq(r.p.set, 0);
    before = c;
    gk_bizconf_apply(&c, &r.p);
    assert_conf_eq(&c, &before);

    /* The empty patch changes nothing. */
    parse("{}", &r);
    ck_assert_int_eq(r.rc, GK_OK);
    gk_bizconf_apply(&c, &r.p);
    assert_conf_eq(&c, &before);
}
END_TEST

START_TEST(to_json_round_trip)
{
    struct gk_bizconf c, back;
    struct json_object *obj = json_object_new_object();
    struct json_object *v;
    const char *text;
    struct parsed r;

    gk_bizconf_defaults(&c);
    for (int i = 0; i < GK_BC_NUMERIC; i++)
        c.num[i] = expect[i].max;
    c.queueing_method = GK_QM_PASSTHROUGH;
    c.n_origins = 3;
    strcpy(c.origins[0], "*");
    strcpy(c.origins[1], "https://a.example:8443");
    strcpy(c.origins[2], "http://[::1]:3000");

    gk_bizconf_to_json(&c, obj);
    ck_assert_int_eq(json_object_object_length(obj), GK_BC_NFIELDS);
    for (int i = 0; i < GK_BC_NUMERIC; i++) {
        ck_assert(json_object_object_get_ex(obj, expect[i].name, &v));
        ck_assert(json_object_is_type(v, json_type_int));
        ck_assert_int_eq(json_object_get_int64(v), expect[i].max);
    }
    ck_assert(json_object_object_get_ex(obj, "queueing_method", &v));
    ck_assert_str_eq(json_object_get_string(v), "passthrough");
    ck_assert(json_object_object_get_ex(obj, "allowed_origins", &v));
    ck_assert(json_object_is_type(v, json_type_array));
    ck_assert_uint_eq(json_object_array_length(v), 3);

    /* What GET /config returns is a valid POST /config body meaning the same config. */
    text = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN);
    parse(text, &r);
    ck_assert_int_eq(r.rc, GK_OK);
    ck_assert_uint_eq(r.p.set, (1u << GK_BC_NFIELDS) - 1);
    gk_bizconf_defaults(&back);
    gk_bizconf_apply(&back, &r.p);
    assert_conf_eq(&back, &c);
    json_object_put(obj);

    /* Defaults and an empty origin list survive the trip too. */
    obj = json_object_new_object();
    gk_bizconf_defaults(&c);
    c.n_origins = 0;
    gk_bizconf_to_json(&c, obj);
    parse(json_object_to_json_string(obj), &r);
    ck_assert_int_eq(r.rc, GK_OK);
    memset(&back, 0, sizeof(back));
    gk_bizconf_apply(&back, &r.p);
    assert_conf_eq(&back, &c);
    json_object_put(obj);
}
END_TEST

Suite *
bizconf_suite(void)
{
    Suite *s = suite_create("bizconf");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, defaults_match_api);
    tcase_add_test(tc, field_table_matches_api);
    tcase_add_loop_test(tc, numeric_boundaries, 0, GK_BC_NUMERIC);
    tcase_add_test(tc, numeric_range_message);
    tcase_add_test(tc, numeric_wrong_types);
    tcase_add_test(tc, unknown_field);
    tcase_add_test(tc, small_output_buffers);
    tcase_add_test(tc, malformed_bodies);
    tcase_add_test(tc, whitespace_and_empty_object);
    tcase_add_test(tc, queueing_method_values);
    tcase_add_test(tc, pow_mode_values);
    tcase_add_test(tc, origin_syntax);
    tcase_add_test(tc, origins_array);
    tcase_add_test(tc, partial_patch_and_apply);
    tcase_add_test(tc, to_json_round_trip);
    suite_add_tcase(s, tc);
    return s;
}
