/* SPDX-License-Identifier: MIT */
/* main.c -- the unit test runner: no network, no servers. */
#include <stdlib.h>

#include "unit/suites.h"

int
main(void)
{
    SRunner *sr = srunner_create(NULL);
    int failed;

#define GK_ADD_SUITE(name) srunner_add_suite(sr, name##_suite());
    GK_UNIT_SUITES(GK_ADD_SUITE)
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
