/* SPDX-License-Identifier: MIT */
/* draw.c -- see gk/draw.h for the contract. */
#include "gk/draw.h"

#include <stdlib.h>
#include <string.h>

static int
cmp_user(const void *a, const void *b)
{
    /* strcmp compares as unsigned char: bytewise. */
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void
gk_draw_sort_users(const char **users, size_t n)
{
    qsort(users, n, sizeof(*users), cmp_user);
}

void
gk_draw_digest(const char *const *sorted, size_t n, char out[GK_SHA256_HEX_BUF])
{
    unsigned char md[GK_SHA256_LEN];
    size_t len = 0, o = 0;
    char *buf;

    for (size_t i = 0; i < n; i++)
        len += strlen(sorted[i]) + 1;
    buf = gk_xmalloc(len + 1);
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(sorted[i]);

        memcpy(buf + o, sorted[i], k);
        buf[o + k] = '\n';
        o += k + 1;
    }
    gk_sha256(buf, len, md);
    gk_hex(md, sizeof(md), out);
    free(buf);
}

enum gk_err
gk_draw_seed(const unsigned char server_seed[GK_SHA256_LEN], const char *digest_hex,
             unsigned char out[GK_SHA256_LEN])
{
    unsigned char in[2 * GK_SHA256_LEN];

    memcpy(in, server_seed, GK_SHA256_LEN);
    if (gk_unhex(digest_hex, in + GK_SHA256_LEN, GK_SHA256_LEN) != GK_OK)
        return GK_EINVAL;
    gk_sha256(in, sizeof(in), out);
    return GK_OK;
}

void
gk_draw_key(const unsigned char draw_seed[GK_SHA256_LEN], const char *user, char out[GK_SHA256_HEX_BUF])
{
    unsigned char mac[GK_SHA256_LEN];

    gk_hmac_sha256(draw_seed, GK_SHA256_LEN, user, strlen(user), mac);
    gk_hex(mac, sizeof(mac), out);
}

static int
cmp_entry(const void *a, const void *b)
{
    const struct gk_draw_entry *x = a, *y = b;
    int c = strcmp(x->key, y->key);

    return c != 0 ? c : strcmp(x->user, y->user);
}

void
gk_draw_order(const unsigned char draw_seed[GK_SHA256_LEN], const char *const *users, size_t n,
              struct gk_draw_entry *out)
{
    for (size_t i = 0; i < n; i++) {
        out[i].user = users[i];
        gk_draw_key(draw_seed, users[i], out[i].key);
    }
    qsort(out, n, sizeof(*out), cmp_entry);
}
