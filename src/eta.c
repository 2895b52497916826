/* SPDX-License-Identifier: MIT */
/* eta.c -- the ETA and its range (see gk/eta.h). */
#include "gk/eta.h"

#include <math.h>
#include <stdbool.h>

#define SPREAD 0.5       /* the measured rate may rise or fall by this share */
#define ABANDON_MORE 1.5 /* those ahead may give up this much more often than measured */
#define ABANDON_MAX 0.9  /* but never all of them */
#define CAP_S 1000000000 /* a bound for estimates that would not fit */

static int64_t
secs(double s, bool up)
{
    if (!(s < CAP_S))
        return CAP_S;
    return s <= 0 ? 0 : (int64_t)(up ? ceil(s - 1e-9) : floor(s + 1e-9));
}

void
gk_eta_estimate(const struct gk_eta_in *in, struct gk_eta *out)
{
    double ceiling = (double)in->limit / in->freq_s;
    double gone = in->abandon * ABANDON_MORE;
    double ahead_low = 1 + (double)(in->place - 1) * (1 - (gone < ABANDON_MAX ? gone : ABANDON_MAX));

    if (in->rate <= 0) {
        /* Whole ticks at the configured rate; a cap or slow finishes may make it longer. */
        out->seconds = (in->place + in->limit - 1) / in->limit * in->freq_s;
        out->low = secs(floor((ahead_low - 1) / in->limit) * in->freq_s, false);
        out->high = out->seconds * 2;
    } else {
        double fast = in->rate * (1 + SPREAD);

        if (fast > ceiling)
            fast = ceiling > in->rate ? ceiling : in->rate;
        double eta = (double)in->place / in->rate;

        out->seconds = eta < 1e9 ? (int64_t)(eta + 0.999) : CAP_S;
        out->low = secs(ahead_low / fast, false);
        out->high = secs((double)in->place / (in->rate * (1 - SPREAD)), true);
    }
    if (out->low > out->seconds)
        out->low = out->seconds;
    if (out->high < out->seconds)
        out->high = out->seconds;
}
