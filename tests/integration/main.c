/* SPDX-License-Identifier: MIT */
/*
 * main.c -- the integration test runner. Started by run.sh, which provides the servers.
 * GK_IT_SHARD=i/n runs only the suites whose place in the list is i modulo n, so that `make check`
 * can run n shards side by side, each with its own Redis and PostgreSQL.
 */
#include <stdio.h>
#include <stdlib.h>

#include "integration/suites.h"
#include "support/gktest.h"

/* The shard from GK_IT_SHARD into *index and *count; 0 of 1 (every suite) when unset. */
static void
shard(unsigned *index, unsigned *count)
{
    const char *s = getenv("GK_IT_SHARD");

    *index = 0;
    *count = 1;
    if (s != NULL && (sscanf(s, "%u/%u", index, count) != 2 || *count == 0 || *index >= *count)) {
        fprintf(stderr, "it-tests: GK_IT_SHARD must be i/n with i < n, not \"%s\"\n", s);
        exit(2);
    }
}

int
main(void)
{
    SRunner *sr;
    unsigned index, count, place = 0;
    int failed;

    gktest_require_env();
    shard(&index, &count);
    sr = srunner_create(NULL);
#define GK_ADD_SUITE(name)                                                                                   \
    if (place++ % count == index)                                                                            \
        srunner_add_suite(sr, name##_it_suite());
    GK_IT_SUITES(GK_ADD_SUITE)
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
