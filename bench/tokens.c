/* SPDX-License-Identifier: MIT */
/*
 * tokens.c -- for `make bench`: prints N queue tokens, one per line, for users u0..u(N-1) of a
 * business, signed with JWT_SECRET from the environment, valid for an hour. With "tickets", each
 * carries its user's ticket as bench/run.sh's fill hands them out (u<i> holds ticket i + 1), so
 * that a node answers their polls from memory, and the place last shown (i + 1 in a fresh line),
 * as the token a client keeps from its last answer does: wrk sends the same tokens again and
 * again, and without the place every answer would sign a new token. Without "tickets" the tokens
 * carry neither (users who join in any order: their first status answer brings a token with
 * their ticket). The users themselves are put into Redis by bench/run.sh (or join through the
 * API).
 * Usage: gk-bench-tokens BUSINESS N [tickets]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gk/token.h"

int
main(int argc, char **argv)
{
    const char *secret = getenv("JWT_SECRET");
    struct gk_token_keys *keys;
    char tok[GK_TOKEN_BUF];
    long n;

    if (argc < 3 || argc > 4 || (argc == 4 && strcmp(argv[3], "tickets") != 0) || secret == NULL ||
        (n = strtol(argv[2], NULL, 10)) <= 0) {
        fprintf(stderr, "usage: JWT_SECRET=... gk-bench-tokens BUSINESS N [tickets]\n");
        return 2;
    }
    keys = gk_token_keys_new(secret, NULL);
    for (long i = 0; i < n; i++) {
        struct gk_claims c = {
            .iat = gk_now_ms() / 1000, .ticket = argc == 4 ? i + 1 : 0, .shown = argc == 4 ? i + 1 : 0};

        c.exp = c.iat + 3600;
        snprintf(c.business, sizeof(c.business), "%s", argv[1]);
        snprintf(c.user, sizeof(c.user), "u%ld", i);
        if (gk_token_issue(keys, &c, tok, sizeof(tok)) != GK_OK) {
            fprintf(stderr, "gk-bench-tokens: cannot issue a token for %s\n", c.user);
            gk_token_keys_free(keys);
            return 1;
        }
        puts(tok);
    }
    gk_token_keys_free(keys);
    return 0;
}
