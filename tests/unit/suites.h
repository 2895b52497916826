/* SPDX-License-Identifier: MIT */
/* suites.h -- every unit suite, one line each; main.c runs them all. */
#ifndef GK_UNIT_SUITES_H
#define GK_UNIT_SUITES_H

#include <check.h>

#define GK_UNIT_SUITES(X)                                                                                    \
    X(util)                                                                                                  \
    X(config)                                                                                                \
    X(cluster)                                                                                               \
    X(router)                                                                                                \
    X(crypto)                                                                                                \
    X(pow)                                                                                                   \
    X(confcache)                                                                                             \
    X(clientip)                                                                                              \
    X(bizconf)                                                                                               \
    X(i18n)                                                                                                  \
    X(token)                                                                                                 \
    X(qview)                                                                                                 \
    X(iplimit)                                                                                               \
    X(qnode)                                                                                                 \
    X(eta)                                                                                                   \
    X(web)                                                                                                   \
    X(metrics)                                                                                               \
    X(h_queue)                                                                                               \
    X(h_verify)                                                                                              \
    X(sched)

#define GK_DECLARE_SUITE(name) Suite *name##_suite(void);
GK_UNIT_SUITES(GK_DECLARE_SUITE)

#endif
