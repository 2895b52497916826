/* SPDX-License-Identifier: MIT */
/*
 * draw -- the pre-queue draw of a scheduled event, exactly as docs/EVENTS.md specifies it, so that
 * anyone can recompute it from the public record:
 *   participants_digest = hex SHA-256 of the user ids sorted bytewise, each followed by "\n";
 *   draw_seed = SHA-256(server_seed || the 32 bytes of participants_digest);
 *   draw key of a user = hex HMAC-SHA256(key = draw_seed, message = user id);
 *   the order is ascending draw key.
 * The worker computes it at opening; gatekeeper-audit recomputes it. Pure functions, thread-safe.
 */
#ifndef GK_DRAW_H
#define GK_DRAW_H

#include <stddef.h>

#include "gk/crypto.h"

/* One participant: the user id (borrowed from the caller) and its draw key in hex. */
struct gk_draw_entry {
    const char *user;
    char key[GK_SHA256_HEX_BUF];
};

/* Sorts users[0..n) bytewise (the order the digest is taken in), in place. */
void gk_draw_sort_users(const char **users, size_t n);
/* participants_digest of users[0..n), which must be sorted (gk_draw_sort_users), into out. */
void gk_draw_digest(const char *const *sorted, size_t n, char out[GK_SHA256_HEX_BUF]);
/* draw_seed from server_seed and the hex participants_digest (64 digits), into out.
 * GK_EINVAL when digest_hex is not 64 hex digits. */
GK_MUSTCHECK enum gk_err gk_draw_seed(const unsigned char server_seed[GK_SHA256_LEN], const char *digest_hex,
                                      unsigned char out[GK_SHA256_LEN]);
/* The draw key of user under draw_seed, in hex, into out. */
void gk_draw_key(const unsigned char draw_seed[GK_SHA256_LEN], const char *user, char out[GK_SHA256_HEX_BUF]);
/* The draw: out[0..n) gets users[0..n) with their keys, in draw order (ascending key). users are
 * borrowed: out's entries point at them. */
void gk_draw_order(const unsigned char draw_seed[GK_SHA256_LEN], const char *const *users, size_t n,
                   struct gk_draw_entry *out);

#endif
