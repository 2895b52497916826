/* SPDX-License-Identifier: MIT */
/* fairness.c -- see gk/fairness.h for the contract. */
#include "gk/fairness.h"

#include <stdlib.h>
#include <string.h>

#include "gk/util.h"

int64_t
gk_wait_bound_s(size_t i)
{
    static const int64_t bound[GK_WAIT_BUCKETS] = {1, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200};

    return bound[i];
}

/* Sorts a[0..n) with tmp's room, counting the pairs out of order: O(n log n). */
static int64_t
sort_count(int64_t *a, int64_t *tmp, size_t n)
{
    size_t mid = n / 2, i = 0, j = mid, k = 0;
    int64_t inv;

    if (n < 2)
        return 0;
    inv = sort_count(a, tmp, mid) + sort_count(a + mid, tmp, n - mid);
    while (i < mid && j < n) {
        if (a[i] <= a[j]) {
            tmp[k++] = a[i++];
        } else {
            inv += (int64_t)(mid - i);
            tmp[k++] = a[j++];
        }
    }
    while (i < mid)
        tmp[k++] = a[i++];
    while (j < n)
        tmp[k++] = a[j++];
    memcpy(a, tmp, n * sizeof(*a));
    return inv;
}

struct gk_fairness
gk_fairness_of(const int64_t *tickets, size_t n)
{
    struct gk_fairness f = {(int64_t)n, 0, 1.0};
    int64_t *a, *tmp;

    if (n < 2)
        return f;
    a = gk_xmalloc(n * sizeof(*a));
    tmp = gk_xmalloc(n * sizeof(*tmp));
    memcpy(a, tickets, n * sizeof(*a));
    f.inversions = sort_count(a, tmp, n);
    /* tau-a = (concordant - discordant) / all pairs, with discordant = inversions. */
    f.tau = 1.0 - 4.0 * (double)f.inversions / ((double)n * (double)(n - 1));
    free(tmp);
    free(a);
    return f;
}
