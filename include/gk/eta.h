/* SPDX-License-Identifier: MIT */
/*
 * eta -- how long a waiting visitor is likely to wait: a point estimate and a range.
 *
 * The point estimate is the place over the measured admission rate (admissions per second, an
 * average over recent ticks, so it reflects the cap's refill by finishes and expiries), or
 * before any is measured, whole ticks at the configured rate. The range widens it by what the
 * measured rate does not tell: the rate may rise up to the configured ceiling
 * (admission_limit per admission_frequency) or up by half, and fall by half; and visitors ahead
 * may give up (abandonment: the share of departures from the line that were not admissions)
 * up to one and a half times as often as measured. Calibrated by a simulation with a varying
 * admission rate and 20 % abandonment (tests/unit/test_eta.c): at least 80 % of visitors are
 * admitted within the range they were shown when they joined. Pure functions, thread-safe.
 */
#ifndef GK_ETA_H
#define GK_ETA_H

#include <stdint.h>

struct gk_eta_in {
    int64_t place;   /* 1-based place the estimate is for */
    double rate;     /* measured admissions per second; 0 = not measured yet */
    double abandon;  /* share of departures that were not admissions, 0..1; 0 = unknown */
    uint32_t limit;  /* admission_limit */
    uint32_t freq_s; /* admission_frequency */
};

struct gk_eta {
    int64_t seconds; /* the point estimate */
    int64_t low;     /* the range: low <= seconds <= high */
    int64_t high;
};

/* The estimate for in (place >= 1, limit and freq_s >= 1). */
void gk_eta_estimate(const struct gk_eta_in *in, struct gk_eta *out);

#endif
