/* SPDX-License-Identifier: MIT */
/*
 * pow.c -- for `make bench`: prints N proof-of-work payloads (X-Gatekeeper-Pow values), one per
 * line, for a business, under the challenge key the server derives from JWT_SECRET. As the
 * issuer it makes challenges of work 0 (the secret number is 0), so nothing needs solving: the
 * benchmark measures what the server spends on a proof (checking it, spending it), not a client's
 * work. Each payload is good for one join within the challenge's life (GK_POW_TTL_S).
 * Usage: gk-bench-pow BUSINESS N
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gk/pow.h"

int
main(int argc, char **argv)
{
    const char *secret = getenv("JWT_SECRET");
    struct gk_pow_challenge c;
    char payload[GK_POW_PAYLOAD_MAX];
    struct gk_pow *p;
    long n;
    int rc = 0;

    if (argc != 3 || secret == NULL || !gk_id_valid(argv[1], strlen(argv[1])) ||
        (n = strtol(argv[2], NULL, 10)) <= 0) {
        fprintf(stderr, "usage: JWT_SECRET=... gk-bench-pow BUSINESS N\n");
        return 2;
    }
    p = gk_pow_new(secret, NULL);
    for (long i = 0; i < n && rc == 0; i++) {
        if (gk_pow_challenge_new(p, argv[1], 0, gk_now_ms() / 1000, &c) != GK_OK ||
            gk_pow_payload(&c, 0, payload, sizeof(payload)) == 0) {
            fprintf(stderr, "gk-bench-pow: cannot make a payload\n");
            rc = 1;
        } else {
            puts(payload);
        }
    }
    gk_pow_free(p);
    return rc;
}
