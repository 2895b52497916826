/* SPDX-License-Identifier: MIT */
/*
 * token -- queue tokens: HS256 JWTs naming a business and a user (libjwt stays in token.c).
 * Only HS256 is ever accepted; alg "none" and every other algorithm are refused before any
 * signature check. Tokens signed with the previous secret still verify during a rotation.
 * Keys are immutable after creation; every function is thread-safe.
 */
#ifndef GK_TOKEN_H
#define GK_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gk/util.h"

#define GK_TOKEN_MAX 1024 /* longer input is refused unparsed; issued tokens are far shorter */
#define GK_TOKEN_BUF (GK_TOKEN_MAX + 1)

struct gk_token_keys; /* opaque */

struct gk_claims {
    char business[GK_ID_BUF]; /* "bid" claim */
    char user[GK_ID_BUF];     /* "sub" claim */
    int64_t iat;              /* seconds since the epoch */
    int64_t exp;              /* seconds since the epoch */
    int64_t ticket;           /* "tkt" claim: the user's ticket in the line (their score in the waiting
                               * set), signed so a node may place them from memory; 0 = none */
    int64_t eta;              /* with a ticket, "eta" and "jat" claims: the ETA in seconds shown when */
    int64_t joined;           /* the user joined, and when that was (seconds since the epoch), to
                               * measure the ETA's error at admission; joined 0 = none */
    int64_t shown;            /* with a ticket, "pos" claim: the last place shown, which later answers
                               * never exceed (nodes' views differ in age); 0 = none */
    bool previous_key;        /* set by gk_token_verify: signed with the previous secret, so due for
                               * renewal; gk_token_issue ignores it (it always signs with the current) */
};

enum gk_token_status {
    GK_TOKEN_VALID = 0,
    GK_TOKEN_EXPIRED, /* signature and claims good, exp <= now: claims are filled */
    GK_TOKEN_INVALID, /* malformed, forged, wrong algorithm, missing or malformed claims */
};

/* Copies the secrets (previous may be NULL or ""). Caller owns the result; release with
 * gk_token_keys_free(). */
struct gk_token_keys *gk_token_keys_new(const char *secret, const char *previous);
/* Wipes and frees; NULL is accepted. */
void gk_token_keys_free(struct gk_token_keys *k);

/* Signs c with the current secret into out (>= GK_TOKEN_BUF bytes). GK_EINVAL if a claim is not
 * a valid id or the token would not fit. */
GK_MUSTCHECK enum gk_err gk_token_issue(const struct gk_token_keys *k, const struct gk_claims *c, char *out,
                                        size_t outlen);
/* Verifies token at time now_s. On GK_TOKEN_VALID and GK_TOKEN_EXPIRED, *out holds the claims and
 * out->previous_key which secret verified; on GK_TOKEN_INVALID it is untouched. Never logs the
 * token. */
enum gk_token_status gk_token_verify(const struct gk_token_keys *k, const char *token, int64_t now_s,
                                     struct gk_claims *out);

#endif
