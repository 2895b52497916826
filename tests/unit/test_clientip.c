/* SPDX-License-Identifier: MIT */
/* test_clientip.c -- X-Forwarded-For is honoured only from trusted proxies. */
#include <stdio.h>
#include <string.h>

#include "gk/clientip.h"
#include "unit/suites.h"

static void
check(const char *peer, const char *xff, const char *trusted_csv, const char *want)
{
    struct gk_cidr nets[4];
    size_t n = 0;
    uint8_t p[16];
    char out[GK_IP_BUF];
    char buf[128];
    char *save = NULL;

    snprintf(buf, sizeof(buf), "%s", trusted_csv);
    for (char *t = strtok_r(buf, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save))
        ck_assert_int_eq(gk_cidr_parse(t, &nets[n++]), GK_OK);
    ck_assert_int_eq(gk_ip_parse(peer, p), GK_OK);
    gk_client_ip(p, xff, nets, n, out);
    ck_assert_msg(strcmp(out, want) == 0, "peer %s xff %s trusted %s: got %s want %s", peer, xff ? xff : "-",
                  trusted_csv, out, want);
}

START_TEST(untrusted_peer_is_the_client)
{
    check("203.0.113.9", "1.1.1.1", "", "203.0.113.9");
    check("203.0.113.9", "1.1.1.1", "10.0.0.0/8", "203.0.113.9");
    check("::ffff:203.0.113.9", NULL, "", "203.0.113.9");
    check("2001:db8::1", "1.1.1.1", "10.0.0.0/8", "2001:db8::1");
}
END_TEST

START_TEST(trusted_peer_right_most_untrusted_entry)
{
    check("10.0.0.2", "198.51.100.7", "10.0.0.0/8", "198.51.100.7");
    /* A client cannot spoof by prepending: the right-most untrusted entry wins. */
    check("10.0.0.2", "6.6.6.6, 198.51.100.7", "10.0.0.0/8", "198.51.100.7");
    check("10.0.0.2", "6.6.6.6, 198.51.100.7, 10.1.1.1", "10.0.0.0/8", "198.51.100.7");
    check("10.0.0.2", "10.9.9.9,10.1.1.1", "10.0.0.0/8", "10.9.9.9");
    check("10.0.0.2", NULL, "10.0.0.0/8", "10.0.0.2");
    check("10.0.0.2", "", "10.0.0.0/8", "10.0.0.2");
    check("::1", "2001:DB8:0:0::5", "::1/128", "2001:db8::5");
}
END_TEST

START_TEST(garbage_stops_the_walk)
{
    check("10.0.0.2", "nonsense", "10.0.0.0/8", "10.0.0.2");
    check("10.0.0.2", "1.2.3.4, nonsense, 10.1.1.1", "10.0.0.0/8", "10.1.1.1");
    check("10.0.0.2", ",,,", "10.0.0.0/8", "10.0.0.2");
    check("10.0.0.2", "1.2.3.4:8080", "10.0.0.0/8", "10.0.0.2");
}
END_TEST

Suite *
clientip_suite(void)
{
    Suite *s = suite_create("clientip");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, untrusted_peer_is_the_client);
    tcase_add_test(tc, trusted_peer_right_most_untrusted_entry);
    tcase_add_test(tc, garbage_stops_the_walk);
    suite_add_tcase(s, tc);
    return s;
}
