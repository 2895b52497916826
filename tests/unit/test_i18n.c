/* SPDX-License-Identifier: MIT */
/* test_i18n.c -- page languages: the catalogues agree on their keys, Accept-Language picks. */
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "gk/i18n.h"
#include "gk/jsonutil.h"
#include "unit/suites.h"

/* Every catalogue parses, and holds exactly English's keys, each a non-empty string. */
START_TEST(catalogues_have_the_same_keys)
{
    const struct gk_lang *en = gk_i18n_at(0);
    struct json_object *ref = gk_json_parse_object(en->catalogue, strlen(en->catalogue));

    ck_assert_str_eq(en->code, "en");
    ck_assert_ptr_nonnull(ref);
    ck_assert_int_ge(gk_i18n_count(), 9);
    for (size_t i = 0; i < gk_i18n_count(); i++) {
        const struct gk_lang *l = gk_i18n_at(i);
        struct json_object *o = gk_json_parse_object(l->catalogue, strlen(l->catalogue));

        ck_assert_msg(o != NULL, "%s does not parse", l->code);
        ck_assert_int_eq(json_object_object_length(o), json_object_object_length(ref));
        json_object_object_foreach(ref, key, val)
        {
            struct json_object *v = NULL;

            (void)val;
            ck_assert_msg(json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string) &&
                              json_object_get_string_len(v) > 0,
                          "%s lacks %s", l->code, key);
        }
        json_object_put(o);
    }
    json_object_put(ref);
}
END_TEST

START_TEST(settings)
{
    ck_assert(gk_i18n_setting_ok("auto"));
    ck_assert(gk_i18n_setting_ok("zh-CN"));
    ck_assert(gk_i18n_setting_ok("ar"));
    ck_assert(!gk_i18n_setting_ok("xx"));
    ck_assert(!gk_i18n_setting_ok(""));
    ck_assert_str_eq(gk_i18n_find("zh-cn")->code, "zh-CN");
    ck_assert_str_eq(gk_i18n_find("ar")->dir, "rtl");
    ck_assert_str_eq(gk_i18n_find("fr")->dir, "ltr");
}
END_TEST

START_TEST(pick)
{
    ck_assert_str_eq(gk_i18n_pick("auto", NULL)->code, "en");
    ck_assert_str_eq(gk_i18n_pick("de", "fr")->code, "de");
    ck_assert_str_eq(gk_i18n_pick("auto", "fr-CA,fr;q=0.9,en;q=0.8")->code, "fr");
    ck_assert_str_eq(gk_i18n_pick("auto", "pt-BR")->code, "pt");
    ck_assert_str_eq(gk_i18n_pick("auto", "zh-Hans-CN;q=0.9")->code, "zh-CN");
    ck_assert_str_eq(gk_i18n_pick("auto", "xx, ja;q=0.2, es;q=0.5")->code, "es");
    ck_assert_str_eq(gk_i18n_pick("auto", "en;q=0.1,it")->code, "it");
    ck_assert_str_eq(gk_i18n_pick("auto", "de;q=0")->code, "en");
    ck_assert_str_eq(gk_i18n_pick("auto", "*")->code, "en");
    ck_assert_str_eq(gk_i18n_pick("auto", ";;;,,q=,")->code, "en");
    ck_assert_str_eq(gk_i18n_pick("auto", "ar-EG")->code, "ar");
}
END_TEST

/* docs/openapi.json lists exactly "auto" and the catalogues as page.language's values. */
START_TEST(openapi_lists_the_languages)
{
    struct json_object *doc = json_object_from_file(GK_SOURCE_DIR "/docs/openapi.json"), *e = doc;
    static const char *const path[] = {"components", "schemas",    "Config",   "properties",
                                       "page",       "properties", "language", "enum"};

    ck_assert_ptr_nonnull(doc);
    for (size_t i = 0; i < sizeof(path) / sizeof(path[0]); i++)
        ck_assert_msg(json_object_object_get_ex(e, path[i], &e), "no %s", path[i]);
    ck_assert_uint_eq(json_object_array_length(e), gk_i18n_count() + 1);
    ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(e, 0)), "auto");
    for (size_t i = 0; i < gk_i18n_count(); i++)
        ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(e, i + 1)), gk_i18n_at(i)->code);
    json_object_put(doc);
}
END_TEST

START_TEST(strings)
{
    char *s = gk_i18n_string(gk_i18n_find("es"), "queue_closed");

    ck_assert_str_eq(s, "Esta cola está cerrada.");
    free(s);
    ck_assert_ptr_null(gk_i18n_string(gk_i18n_find("es"), "no_such_key"));
}
END_TEST

Suite *
i18n_suite(void)
{
    Suite *s = suite_create("i18n");
    TCase *tc = tcase_create("i18n");

    tcase_add_test(tc, catalogues_have_the_same_keys);
    tcase_add_test(tc, settings);
    tcase_add_test(tc, pick);
    tcase_add_test(tc, openapi_lists_the_languages);
    tcase_add_test(tc, strings);
    suite_add_tcase(s, tc);
    return s;
}
