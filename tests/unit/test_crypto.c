/* SPDX-License-Identifier: MIT */
/* test_crypto.c -- SHA-256 vectors, admin key shape, constant-time key matching. */
#include <string.h>

#include "gk/crypto.h"
#include "unit/suites.h"

START_TEST(sha256_vectors)
{
    char hex[GK_SHA256_HEX_BUF];

    gk_sha256_hex("", 0, hex);
    ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    gk_sha256_hex("abc", 3, hex);
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
END_TEST

START_TEST(base64_alphabets)
{
    unsigned char out[8];
    size_t n;

    ck_assert(gk_base64_decode("+/8=", 4, GK_B64_ANY, out, sizeof(out), &n));
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(out[0], 0xfb);
    ck_assert_int_eq(out[1], 0xff);
    ck_assert(gk_base64_decode("-_8", 3, GK_B64_ANY, out, sizeof(out), &n) && n == 2 && out[0] == 0xfb);
    ck_assert(gk_base64_decode("-_8", 3, GK_B64_URL, out, sizeof(out), &n) && n == 2 && out[1] == 0xff);
    /* JWT segments: no padding, no standard alphabet, canonical only. */
    ck_assert(!gk_base64_decode("+/8", 3, GK_B64_URL, out, sizeof(out), &n));
    ck_assert(!gk_base64_decode("-_8=", 4, GK_B64_URL, out, sizeof(out), &n));
    ck_assert(!gk_base64_decode("-_9", 3, GK_B64_URL, out, sizeof(out), &n));
    ck_assert(!gk_base64_decode("A", 1, GK_B64_ANY, out, sizeof(out), &n));
    ck_assert(!gk_base64_decode("A*AA", 4, GK_B64_ANY, out, sizeof(out), &n));
    ck_assert(!gk_base64_decode("AAAAAAAAAAAA", 12, GK_B64_ANY, out, sizeof(out), &n));
    ck_assert_int_eq(gk_base64_value('+', GK_B64_URL), -1);
    ck_assert_int_eq(gk_base64_value('_', GK_B64_URL), 63);
}
END_TEST

START_TEST(admin_keys_are_random_and_url_safe)
{
    char a[GK_ADMIN_KEY_BUF], b[GK_ADMIN_KEY_BUF];

    ck_assert_int_eq(gk_admin_key_new(a), GK_OK);
    ck_assert_int_eq(gk_admin_key_new(b), GK_OK);
    ck_assert_str_ne(a, b);
    ck_assert_uint_eq(strlen(a), 46);
    ck_assert_int_eq(strncmp(a, "gk_", 3), 0);
    ck_assert_uint_eq(strspn(a + 3, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 43);
}
END_TEST

START_TEST(key_matching)
{
    char hash[GK_SHA256_HEX_BUF];

    gk_sha256_hex("secret-key", 10, hash);
    ck_assert(gk_key_matches_hash("secret-key", 10, hash));
    ck_assert(!gk_key_matches_hash("secret-kez", 10, hash));
    ck_assert(!gk_key_matches_hash("secret-key", 9, hash));
    ck_assert(!gk_key_matches_hash("", 0, ""));
    ck_assert(!gk_key_matches_hash("secret-key", 10, "short"));
    ck_assert(gk_ct_equal("abc", "abc", 3));
    ck_assert(!gk_ct_equal("abc", "abd", 3));
}
END_TEST

Suite *
crypto_suite(void)
{
    Suite *s = suite_create("crypto");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, sha256_vectors);
    tcase_add_test(tc, base64_alphabets);
    tcase_add_test(tc, admin_keys_are_random_and_url_safe);
    tcase_add_test(tc, key_matching);
    suite_add_tcase(s, tc);
    return s;
}
