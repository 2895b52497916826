/* SPDX-License-Identifier: MIT */
/*
 * crypto -- hashing, randomness and constant-time comparison for keys and script names.
 * (token.c also uses libcrypto, for the HMAC of queue tokens.)
 * Admin keys are 32 random bytes, so a plain SHA-256 is a sound one-way hash for storing them:
 * there is nothing to brute-force that a slow password hash would protect. Thread-safe.
 */
#ifndef GK_CRYPTO_H
#define GK_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>

#include "gk/util.h"

#define GK_SHA256_HEX_BUF 65 /* 64 hex digits and NUL */
#define GK_ADMIN_KEY_BUF 48  /* "gk_" + 43 base64url characters of 32 random bytes + NUL */

#define GK_SHA1_HEX_BUF 41

/* SHA-1 of data in lower-case hex into out: only for naming Redis scripts (EVALSHA), never for
 * anything secret. */
void gk_sha1_hex(const void *data, size_t len, char out[GK_SHA1_HEX_BUF]);
/* SHA-256 of data in lower-case hex into out. */
void gk_sha256_hex(const void *data, size_t len, char out[GK_SHA256_HEX_BUF]);
#define GK_SHA256_LEN 32

/* SHA-256 of data into out (raw bytes). */
void gk_sha256(const void *data, size_t len, unsigned char out[GK_SHA256_LEN]);
/* HMAC-SHA256 of msg under key into out (raw bytes). */
void gk_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t len,
                    unsigned char out[GK_SHA256_LEN]);
/* The n bytes of in as lower-case hex into out (2n characters and NUL). */
void gk_hex(const unsigned char *in, size_t n, char *out);
/* Reads exactly 2n hex digits (either case) of in into out[0..n). GK_EINVAL otherwise. */
GK_MUSTCHECK enum gk_err gk_unhex(const char *in, unsigned char *out, size_t n);
/* HMAC-SHA256 of data under key, in lower-case hex, into out. One-shot (OpenSSL's HMAC()):
 * for calls that are not on every request's path (gk/token.h keeps its own precomputed keys). */
void gk_hmac_sha256_hex(const void *key, size_t keylen, const void *data, size_t len,
                        char out[GK_SHA256_HEX_BUF]);
/* Alphabets of gk_base64_decode. */
enum gk_b64 {
    GK_B64_URL, /* base64url without padding, as in JWTs */
    GK_B64_ANY, /* the standard or the URL-safe alphabet, with or without padding */
};
extern const unsigned char gk_base64url_codes[256];
/* The value 0..63 of the base64 character c in alphabet a, or -1. */
static inline int
gk_base64_value(unsigned char c, enum gk_b64 a)
{
    if (gk_base64url_codes[c] != 0)
        return gk_base64url_codes[c] - 1;
    if (a == GK_B64_ANY && (c == '+' || c == '/'))
        return c == '+' ? 62 : 63;
    return -1;
}
/* Decodes in[0..len) into out (outcap bytes) and sets *outlen. False for a character outside the
 * alphabet, a length of 1 mod 4 (padding aside), non-zero leftover bits (so only the canonical
 * spelling decodes), or more than outcap bytes. Thread-safe. */
bool gk_base64_decode(const char *in, size_t len, enum gk_b64 a, unsigned char *out, size_t outcap,
                      size_t *outlen);
/* Fills buf with n bytes from the system CSPRNG. GK_EINVAL if it fails (never partial). */
GK_MUSTCHECK enum gk_err gk_random_bytes(void *buf, size_t n);
/* A fresh admin key ("gk_" + base64url of 32 random bytes) into out. */
GK_MUSTCHECK enum gk_err gk_admin_key_new(char out[GK_ADMIN_KEY_BUF]);
/* Compares n bytes in time independent of their contents. */
bool gk_ct_equal(const void *a, const void *b, size_t n);
/* True when SHA-256(key) equals the stored hex hash, in constant time. An empty stored hash
 * never matches. */
bool gk_key_matches_hash(const char *key, size_t keylen, const char *stored_hex);

#endif
