/* SPDX-License-Identifier: MIT */
/* suites.h -- every integration suite, one line each; main.c runs them all against the real
 * redis-server and PostgreSQL that run.sh started (see tests/support/gktest.h). */
#ifndef GK_IT_SUITES_H
#define GK_IT_SUITES_H

#include <check.h>

#define GK_IT_SUITES(X)                                                                                      \
    X(cfgstore)                                                                                              \
    X(http)                                                                                                  \
    X(http_wire)                                                                                             \
    X(queue)                                                                                                 \
    X(queue_stress)                                                                                          \
    X(pow)                                                                                                   \
    X(qview)                                                                                                 \
    X(scripts)                                                                                               \
    X(cluster)                                                                                               \
    X(worker)                                                                                                \
    X(events)                                                                                                \
    X(sched)                                                                                                 \
    X(chain)                                                                                                 \
    X(activity)                                                                                              \
    X(monitor)                                                                                               \
    X(ops)                                                                                                   \
    X(console)                                                                                               \
    X(shutdown)

#define GK_DECLARE_SUITE(name) Suite *name##_it_suite(void);
GK_IT_SUITES(GK_DECLARE_SUITE)

#endif
