/* SPDX-License-Identifier: MIT */
/* test_web.c -- which return_to the waiting room accepts, and the page text transforms. */
#include <stdlib.h>
#include <string.h>

#include "gk/web.h"
#include "unit/suites.h"

static struct gk_bizconf
conf_with(const char *const *origins, uint32_t n)
{
    struct gk_bizconf c;

    gk_bizconf_defaults(&c);
    c.n_origins = n;
    for (uint32_t i = 0; i < n; i++)
        strcpy(c.origins[i], origins[i]);
    return c;
}

START_TEST(return_to_paths)
{
    struct gk_bizconf c = conf_with(NULL, 0);

    ck_assert(gk_web_return_to_ok(&c, "/"));
    ck_assert(gk_web_return_to_ok(&c, "/app/?a=1&b=%20#x"));
    ck_assert(!gk_web_return_to_ok(&c, ""));
    ck_assert(!gk_web_return_to_ok(&c, "//evil.example/"));
    ck_assert(!gk_web_return_to_ok(&c, "/\\evil.example/"));
    ck_assert(!gk_web_return_to_ok(&c, "/a b"));
    ck_assert(!gk_web_return_to_ok(&c, "/a\tb"));
    ck_assert(!gk_web_return_to_ok(&c, "/caf\xc3\xa9"));
    ck_assert(!gk_web_return_to_ok(&c, "app/"));
    ck_assert(!gk_web_return_to_ok(&c, "javascript:alert(1)"));
}
END_TEST

START_TEST(return_to_origins)
{
    const char *const list[] = {"https://shop.example", "http://127.0.0.1:9000"};
    struct gk_bizconf c = conf_with(list, 2);

    ck_assert(gk_web_return_to_ok(&c, "https://shop.example"));
    ck_assert(gk_web_return_to_ok(&c, "https://shop.example/"));
    ck_assert(gk_web_return_to_ok(&c, "HTTPS://Shop.Example/cart?x=1"));
    ck_assert(gk_web_return_to_ok(&c, "https://shop.example?x=1"));
    ck_assert(gk_web_return_to_ok(&c, "https://shop.example#top"));
    ck_assert(gk_web_return_to_ok(&c, "http://127.0.0.1:9000/a"));
    ck_assert(gk_web_return_to_ok(&c, "https://shop.example/@me?to=a@b"));
    ck_assert(!gk_web_return_to_ok(&c, "http://shop.example/"));
    ck_assert(!gk_web_return_to_ok(&c, "https://shop.example:443/"));
    ck_assert(!gk_web_return_to_ok(&c, "https://shop.example.evil.example/"));
    ck_assert(!gk_web_return_to_ok(&c, "https://shop.example@evil.example/"));
    ck_assert(!gk_web_return_to_ok(&c, "https://evil.example/https://shop.example"));
    ck_assert(!gk_web_return_to_ok(&c, "http://127.0.0.1:90001/"));
    ck_assert(!gk_web_return_to_ok(&c, "https:///"));
    ck_assert(!gk_web_return_to_ok(&c, "ftp://shop.example/"));
}
END_TEST

START_TEST(return_to_star_is_not_a_redirect_list)
{
    const char *const list[] = {"*"};
    struct gk_bizconf c = conf_with(list, 1);
    char long_path[GK_RETURN_TO_MAX + 2];

    ck_assert(!gk_web_return_to_ok(&c, "https://anything.example/"));
    ck_assert(gk_web_return_to_ok(&c, "/still/fine"));
    memset(long_path, 'a', sizeof(long_path) - 1);
    long_path[0] = '/';
    long_path[GK_RETURN_TO_MAX] = '\0';
    ck_assert(gk_web_return_to_ok(&c, long_path));
    long_path[GK_RETURN_TO_MAX] = 'a';
    long_path[GK_RETURN_TO_MAX + 1] = '\0';
    ck_assert(!gk_web_return_to_ok(&c, long_path));
}
END_TEST

static void
check_transform(char *(*fn)(const char *), const char *in, const char *want)
{
    char *got = fn(in);

    ck_assert_str_eq(got, want);
    free(got);
}

START_TEST(escapes)
{
    check_transform(gk_web_html_escape, "", "");
    check_transform(gk_web_html_escape, "a<b>&\"c'", "a&lt;b&gt;&amp;&quot;c&#39;");
    check_transform(gk_web_query_escape, "/app/?a=1&b=2 #", "%2Fapp%2F%3Fa%3D1%26b%3D2%20%23");
    check_transform(gk_web_query_escape, "Az09-._~", "Az09-._~");
    check_transform(gk_web_query_escape, "\xc3\xa9", "%C3%A9");
    check_transform(gk_web_script_json, "{\"a\":\"</script><!--&\"}",
                    "{\"a\":\"\\u003c/script\\u003e\\u003c!--\\u0026\"}");
}
END_TEST

START_TEST(render)
{
    static const char tmpl[] = "{{a}}-{{b}}-{{unknown}}-{{a}}{{";
    const struct gk_web_var vars[] = {{"a", "1"}, {"b", "<two>"}};
    size_t len;
    char *out = gk_web_render(tmpl, sizeof(tmpl) - 1, vars, 2, &len);

    ck_assert_str_eq(out, "1-<two>-{{unknown}}-1{{");
    ck_assert_uint_eq(len, strlen(out));
    free(out);
    out = gk_web_render(tmpl, 0, vars, 2, &len);
    ck_assert_str_eq(out, "");
    ck_assert_uint_eq(len, 0);
    free(out);
}
END_TEST

Suite *
web_suite(void)
{
    Suite *s = suite_create("web");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, return_to_paths);
    tcase_add_test(tc, return_to_origins);
    tcase_add_test(tc, return_to_star_is_not_a_redirect_list);
    tcase_add_test(tc, escapes);
    tcase_add_test(tc, render);
    suite_add_tcase(s, tc);
    return s;
}
