/* SPDX-License-Identifier: MIT */
/* test_pow.c -- challenges in ALTCHA's format: issue, solve, verify and every refusal;
 * the auto rule's rise and fall under an injected clock. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gk/pow.h"
#include "unit/suites.h"

#define SECRET "0123456789abcdef0123456789abcdef"
#define OTHER "fedcba9876543210fedcba9876543210"
#define NOW 1800000000

/* A solved challenge of business biz issued at NOW, as its payload. */
static void
solved(const struct gk_pow *p, const char *biz, struct gk_pow_challenge *c, char *payload, size_t len)
{
    uint64_t n;

    ck_assert_int_eq(gk_pow_challenge_new(p, biz, 1000, NOW, c), GK_OK);
    ck_assert(gk_pow_solve(c, &n));
    ck_assert_uint_le(n, 1000);
    ck_assert_uint_gt(gk_pow_payload(c, n, payload, len), 0);
}

START_TEST(challenge_shape)
{
    struct gk_pow *p = gk_pow_new(SECRET, NULL);
    struct gk_pow_challenge c;
    char want[64];

    ck_assert_int_eq(gk_pow_challenge_new(p, "shop-1", 5000, NOW, &c), GK_OK);
    ck_assert_uint_eq(strlen(c.challenge), 64);
    ck_assert_uint_eq(strlen(c.signature), 64);
    ck_assert_uint_eq(strspn(c.salt, "0123456789abcdef"), 24);
    snprintf(want, sizeof(want), "?expires=%d&business=shop-1&", NOW + GK_POW_TTL_S);
    ck_assert_str_eq(c.salt + 24, want);
    ck_assert_uint_eq(c.maxnumber, 5000);
    gk_pow_free(p);
}
END_TEST

START_TEST(solution_accepted_once_per_key)
{
    struct gk_pow *p = gk_pow_new(SECRET, NULL), *rotated = gk_pow_new(OTHER, SECRET),
                  *other = gk_pow_new(OTHER, NULL);
    struct gk_pow_challenge c;
    struct gk_pow_proof proof;
    char payload[GK_POW_PAYLOAD_MAX];

    solved(p, "shop", &c, payload, sizeof(payload));
    ck_assert_int_eq(gk_pow_verify(p, "shop", payload, NOW + 10, &proof), GK_OK);
    ck_assert_str_eq(proof.challenge, c.challenge);
    ck_assert_int_eq(proof.expires_s, NOW + GK_POW_TTL_S);
    /* After JWT_SECRET rotates, the previous key still verifies; an unrelated key does not. */
    ck_assert_int_eq(gk_pow_verify(rotated, "shop", payload, NOW + 10, &proof), GK_OK);
    ck_assert_int_eq(gk_pow_verify(other, "shop", payload, NOW + 10, &proof), GK_EINVAL);
    /* Another business, expired, not yet issued by a sane clock. */
    ck_assert_int_eq(gk_pow_verify(p, "shop2", payload, NOW + 10, &proof), GK_EINVAL);
    ck_assert_int_eq(gk_pow_verify(p, "shop", payload, NOW + GK_POW_TTL_S + 1, &proof), GK_EINVAL);
    ck_assert_int_eq(gk_pow_verify(p, "shop", payload, NOW - 3600, &proof), GK_EINVAL);
    gk_pow_free(p);
    gk_pow_free(rotated);
    gk_pow_free(other);
}
END_TEST

START_TEST(tampered_payloads_refused)
{
    struct gk_pow *p = gk_pow_new(SECRET, NULL);
    struct gk_pow_challenge c, forged;
    struct gk_pow_proof proof;
    char payload[GK_POW_PAYLOAD_MAX], long_payload[GK_POW_PAYLOAD_MAX + 8];
    uint64_t n;
    static const char *const bad[] = {
        "", "!!!!", "e30=",                 /* {} */
        "eyJhbGdvcml0aG0iOiJTSEEtMjU2In0=", /* {"algorithm":"SHA-256"} */
    };

    solved(p, "shop", &c, payload, sizeof(payload));
    ck_assert(gk_pow_solve(&c, &n));
    /* A wrong number. */
    ck_assert_uint_gt(gk_pow_payload(&c, n + 1, payload, sizeof(payload)), 0);
    ck_assert_int_eq(gk_pow_verify(p, "shop", payload, NOW, &proof), GK_EINVAL);
    /* A salt rewritten to another business or a later expiry: the challenge no longer matches. */
    forged = c;
    memcpy(strstr(forged.salt, "shop"), "shoq", 4);
    ck_assert_uint_gt(gk_pow_payload(&forged, n, payload, sizeof(payload)), 0);
    ck_assert_int_eq(gk_pow_verify(p, "shoq", payload, NOW, &proof), GK_EINVAL);
    /* A challenge of the solver's own making, with a signature it cannot compute. */
    forged = c;
    snprintf(forged.salt, sizeof(forged.salt), "00?expires=%d&business=shop&", NOW + 60);
    gk_sha256_hex("00?expires=1800000060&business=shop&7", strlen(forged.salt) + 1, forged.challenge);
    ck_assert_uint_gt(gk_pow_payload(&forged, 7, payload, sizeof(payload)), 0);
    ck_assert_int_eq(gk_pow_verify(p, "shop", payload, NOW, &proof), GK_EINVAL);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_int_eq(gk_pow_verify(p, "shop", bad[i], NOW, &proof), GK_EINVAL);
    memset(long_payload, 'A', sizeof(long_payload) - 1);
    long_payload[sizeof(long_payload) - 1] = '\0';
    ck_assert_int_eq(gk_pow_verify(p, "shop", long_payload, NOW, &proof), GK_EINVAL);
    gk_pow_free(p);
}
END_TEST

START_TEST(auto_work_follows_join_rate)
{
    struct gk_pow *p = gk_pow_new(SECRET, NULL);
    int64_t t = 1000000;

    ck_assert_uint_eq(gk_pow_work(p, "b", GK_POW_OFF, 1000, t), 0);
    ck_assert_uint_eq(gk_pow_work(p, "b", GK_POW_ON, 1000, t), 1000);
    ck_assert_uint_eq(gk_pow_work(p, "b", GK_POW_AUTO, 1000, t), 1000);
    /* 100 joins per second for 20 s: about 10x. */
    for (int i = 0; i < 2000; i++)
        gk_pow_count(p, GK_POW_SOLVED, "b", t += 10);
    ck_assert_uint_ge(gk_pow_work(p, "b", GK_POW_AUTO, 1000, t), 9000);
    ck_assert_uint_le(gk_pow_work(p, "b", GK_POW_AUTO, 1000, t), 11000);
    ck_assert_uint_eq(gk_pow_work(p, "other", GK_POW_AUTO, 1000, t), 1000);
    /* 10,000 per second: capped at 50x. */
    for (int i = 0; i < 100000; i++)
        gk_pow_count(p, GK_POW_SOLVED, "b", t += 0);
    ck_assert_uint_eq(gk_pow_work(p, "b", GK_POW_AUTO, 1000, t), 50000);
    /* Calm again: back to the base within a minute. */
    ck_assert_uint_eq(gk_pow_work(p, "b", GK_POW_AUTO, 1000, t + 60000), 1000);
    gk_pow_free(p);
}
END_TEST

START_TEST(many_businesses_bounded)
{
    struct gk_pow *p = gk_pow_new(SECRET, NULL);
    char id[32];
    char *text = NULL;
    size_t len = 0;
    FILE *f;

    for (int i = 0; i < 3 * GK_POW_BUSINESSES_MAX; i++) {
        snprintf(id, sizeof(id), "b%d", i);
        gk_pow_count(p, GK_POW_SOLVED, id, 1000 + i);
        ck_assert_uint_eq(gk_pow_work(p, id, GK_POW_ON, 2000, 1000 + i), 2000);
    }
    gk_pow_count(p, GK_POW_REFUSED_REUSED, "b1", 0);
    f = open_memstream(&text, &len);
    gk_pow_metrics_write(p, f);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(text, "gatekeeper_pow_solved_total 3072\n"));
    ck_assert_ptr_nonnull(strstr(text, "gatekeeper_pow_refused_total{reason=\"reused\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "gatekeeper_pow_work{business=\"b3071\"} 2000\n"));
    free(text);
    gk_pow_free(p);
}
END_TEST

Suite *
pow_suite(void)
{
    Suite *s = suite_create("pow");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, challenge_shape);
    tcase_add_test(tc, solution_accepted_once_per_key);
    tcase_add_test(tc, tampered_payloads_refused);
    tcase_add_test(tc, auto_work_follows_join_rate);
    tcase_add_test(tc, many_businesses_bounded);
    suite_add_tcase(s, tc);
    return s;
}
