/* SPDX-License-Identifier: MIT */
/* test_util.c -- bounded parsing, identifiers, logfmt escaping. */
#include <stdlib.h>
#include <string.h>

#include "gk/log.h"
#include "gk/util.h"
#include "unit/suites.h"

START_TEST(parse_u32_bounds)
{
    uint32_t v = 0;

    ck_assert_int_eq(gk_parse_u32("42", 1, 100, &v), GK_OK);
    ck_assert_uint_eq(v, 42);
    ck_assert_int_eq(gk_parse_u32("0", 1, 100, &v), GK_EINVAL);
    ck_assert_int_eq(gk_parse_u32("101", 1, 100, &v), GK_EINVAL);
    ck_assert_int_eq(gk_parse_u32("-1", 0, 100, &v), GK_EINVAL);
    ck_assert_int_eq(gk_parse_u32("", 0, 100, &v), GK_EINVAL);
    ck_assert_int_eq(gk_parse_u32("1x", 0, 100, &v), GK_EINVAL);
    ck_assert_int_eq(gk_parse_u32(" 1", 0, 100, &v), GK_EINVAL);
    ck_assert_int_eq(gk_parse_u32("99999999999999999999999", 0, UINT32_MAX, &v), GK_EINVAL);
    ck_assert_int_eq(gk_parse_u32("4294967295", 0, UINT32_MAX, &v), GK_OK);
    ck_assert_uint_eq(v, UINT32_MAX);
}
END_TEST

START_TEST(id_charset_and_length)
{
    char long_id[GK_ID_MAX + 2];

    ck_assert(gk_id_valid("shop1", 5));
    ck_assert(gk_id_valid("a.b_c:d@e-f", 11));
    ck_assert(!gk_id_valid("", 0));
    ck_assert(!gk_id_valid("a b", 3));
    ck_assert(!gk_id_valid("a/b", 3));
    ck_assert(!gk_id_valid("a\0b", 3));
    ck_assert(!gk_id_valid("\xc3\xa9", 2));
    memset(long_id, 'x', sizeof(long_id));
    ck_assert(gk_id_valid(long_id, GK_ID_MAX));
    ck_assert(!gk_id_valid(long_id, GK_ID_MAX + 1));
}
END_TEST

START_TEST(log_escape_is_safe_and_bounded)
{
    char out[16];

    ck_assert_str_eq(gk_log_escape("a\"b\\c\n", out, sizeof(out)), "a\\\"b\\\\c%0a");
    ck_assert_str_eq(gk_log_escape("0123456789abcdefghij", out, sizeof(out)), "0123456789abcde");
    ck_assert_str_eq(gk_log_escape(NULL, out, sizeof(out)), "");
}
END_TEST

START_TEST(rfc3339_format)
{
    char out[32];

    gk_rfc3339(1700000000123, out, sizeof(out));
    ck_assert_str_eq(out, "2023-11-14T22:13:20.123Z");
}
END_TEST

START_TEST(u64_str_writes_every_digit)
{
    char out[GK_U64_BUF];

    ck_assert_uint_eq(gk_u64_str(0, out), 1);
    ck_assert_str_eq(out, "0");
    ck_assert_uint_eq(gk_u64_str(1000, out), 4);
    ck_assert_str_eq(out, "1000");
    ck_assert_uint_eq(gk_u64_str(UINT64_MAX, out), 20);
    ck_assert_str_eq(out, "18446744073709551615");
}
END_TEST

START_TEST(sbuf_grows_and_stays_terminated)
{
    struct gk_sbuf b = {0};

    gk_sbuf_add(&b, "", 0);
    ck_assert_str_eq(b.s, "");
    for (int i = 0; i < 1000; i++)
        gk_sbuf_add(&b, "abc", 2);
    ck_assert_uint_eq(b.len, 2000);
    ck_assert_uint_eq(strlen(b.s), 2000);
    ck_assert(strncmp(b.s + 1998, "ab", 3) == 0);
    free(b.s);
}
END_TEST

Suite *
util_suite(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, parse_u32_bounds);
    tcase_add_test(tc, id_charset_and_length);
    tcase_add_test(tc, log_escape_is_safe_and_bounded);
    tcase_add_test(tc, rfc3339_format);
    tcase_add_test(tc, u64_str_writes_every_digit);
    tcase_add_test(tc, sbuf_grows_and_stays_terminated);
    suite_add_tcase(s, tc);
    return s;
}
