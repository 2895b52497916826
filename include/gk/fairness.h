/* SPDX-License-Identifier: MIT */
/*
 * fairness -- how far admissions stray from join order, in numbers: over the tickets (join order)
 * of the last admitted users in admission order, the inversions (pairs admitted in the opposite
 * order to the one they joined in) and Kendall's tau between join and admission order (1.0:
 * exactly first come, first served; -1.0: exactly reversed); and the waits' distribution. The
 * tick script records both (docs/EVENTS.md, "Fairness in numbers"). Pure, thread-safe.
 */
#ifndef GK_FAIRNESS_H
#define GK_FAIRNESS_H

#include <stddef.h>
#include <stdint.h>

#define GK_FAIR_WINDOW 256 /* admissions the numbers are taken over, per business */
#define GK_WAIT_BUCKETS 10 /* finite buckets of the wait histogram; bounds below */

struct gk_fairness {
    int64_t n;          /* admissions in the window */
    int64_t inversions; /* pairs admitted against join order */
    double tau;         /* Kendall's tau-a; 1.0 when n < 2 */
};

/* Upper bound of finite wait bucket i, in seconds: 1, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200. */
int64_t gk_wait_bound_s(size_t i);
/* The numbers of tickets[0..n) (in admission order; distinct). */
struct gk_fairness gk_fairness_of(const int64_t *tickets, size_t n);

#endif
