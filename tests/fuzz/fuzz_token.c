/* SPDX-License-Identifier: MIT */
/*
 * fuzz_token -- gk_token_verify with fixed keys (a current and a previous secret), as the queue
 * handlers call it on the jwt header, Authorization: Bearer or the gk_token cookie.
 * The input is the token text (cut at a NUL, as a header value is). Checks: a token that
 * verifies has well-formed claims (valid ids, 0 <= iat < exp) and the status matches exp; a
 * token of more than GK_TOKEN_MAX bytes never verifies; and a token issued for the claims read
 * back verifies to the same claims.
 */
#include "fuzz/fuzz.h"
#include "gk/token.h"

/* The corpus's valid tokens are signed with these (tests/fuzz/corpus/fuzz_token/README). */
#define SECRET "fuzz-jwt-secret-0123456789abcdefghijklmnop"
#define PREVIOUS "fuzz-previous-secret-zyxwvutsrqponmlkjihgf"
#define NOW_S 1800000000 /* fixed, so a run is repeatable */

static struct gk_token_keys *keys;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    keys = gk_token_keys_new(SECRET, PREVIOUS);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *token = fuzz_cstr(data, size), again[GK_TOKEN_BUF];
    struct gk_claims c, c2;
    enum gk_token_status st;

    memset(&c, 0xA5, sizeof(c));
    st = gk_token_verify(keys, token, NOW_S, &c);
    FUZZ_CHECK(st == GK_TOKEN_VALID || st == GK_TOKEN_EXPIRED || st == GK_TOKEN_INVALID);
    if (st != GK_TOKEN_INVALID) {
        FUZZ_CHECK(strlen(token) <= GK_TOKEN_MAX);
        FUZZ_CHECK(memchr(c.business, '\0', sizeof(c.business)) != NULL);
        FUZZ_CHECK(memchr(c.user, '\0', sizeof(c.user)) != NULL);
        FUZZ_CHECK(gk_id_valid(c.business, strlen(c.business)) && gk_id_valid(c.user, strlen(c.user)));
        FUZZ_CHECK(c.iat >= 0 && c.exp > c.iat);
        FUZZ_CHECK((st == GK_TOKEN_EXPIRED) == (c.exp <= NOW_S));
        if (gk_token_issue(keys, &c, again, sizeof(again)) == GK_OK) {
            FUZZ_CHECK(gk_token_verify(keys, again, NOW_S, &c2) == st);
            FUZZ_CHECK(memcmp(&c, &c2, sizeof(c)) == 0 ||
                       (strcmp(c.business, c2.business) == 0 && strcmp(c.user, c2.user) == 0 &&
                        c.iat == c2.iat && c.exp == c2.exp));
        }
    }
    free(token);
    return 0;
}
