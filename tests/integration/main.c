/* SPDX-License-Identifier: MIT */
/* main.c -- the integration test runner. Started by run.sh, which provides the servers. */
#include <stdio.h>
#include <stdlib.h>

#include "integration/suites.h"
#include "support/gktest.h"

int
main(void)
{
    SRunner *sr;
    int failed;

    gktest_require_env();
    sr = srunner_create(NULL);
#define GK_ADD_SUITE(name) srunner_add_suite(sr, name##_it_suite());
    GK_IT_SUITES(GK_ADD_SUITE)
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
