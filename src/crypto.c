/* SPDX-License-Identifier: MIT */
/* crypto.c -- see gk/crypto.h for the contract. */
#include "gk/crypto.h"

#include <limits.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

static void
hex_of(const unsigned char *md, unsigned n, char *out)
{
    static const char hex[] = "0123456789abcdef";

    for (unsigned i = 0; i < n; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[2 * n] = '\0';
}

static void
digest_hex(const EVP_MD *type, unsigned want, const void *data, size_t len, char *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    GK_ASSERT(EVP_Digest(data, len, md, &mdlen, type, NULL) == 1 && mdlen == want);
    hex_of(md, want, out);
}

void
gk_sha1_hex(const void *data, size_t len, char out[GK_SHA1_HEX_BUF])
{
    digest_hex(EVP_sha1(), 20, data, len, out);
}

void
gk_sha256_hex(const void *data, size_t len, char out[GK_SHA256_HEX_BUF])
{
    digest_hex(EVP_sha256(), 32, data, len, out);
}

void
gk_sha256(const void *data, size_t len, unsigned char out[GK_SHA256_LEN])
{
    unsigned int mdlen = 0;

    GK_ASSERT(EVP_Digest(data, len, out, &mdlen, EVP_sha256(), NULL) == 1 && mdlen == GK_SHA256_LEN);
}

void
gk_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t len, unsigned char out[GK_SHA256_LEN])
{
    unsigned int mdlen = 0;

    GK_ASSERT(keylen <= INT_MAX && HMAC(EVP_sha256(), key, (int)keylen, msg, len, out, &mdlen) != NULL &&
              mdlen == GK_SHA256_LEN);
}

void
gk_hex(const unsigned char *in, size_t n, char *out)
{
    hex_of(in, (unsigned)n, out);
}

static int
hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

enum gk_err
gk_unhex(const char *in, unsigned char *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi, lo;

        if (in[2 * i] == '\0' || in[2 * i + 1] == '\0')
            return GK_EINVAL;
        hi = hex_digit(in[2 * i]);
        lo = hex_digit(in[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return GK_EINVAL;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return in[2 * n] == '\0' ? GK_OK : GK_EINVAL;
}

void
gk_hmac_sha256_hex(const void *key, size_t keylen, const void *data, size_t len, char out[GK_SHA256_HEX_BUF])
{
    unsigned char md[GK_SHA256_LEN];

    gk_hmac_sha256(key, keylen, data, len, md);
    hex_of(md, GK_SHA256_LEN, out);
}

/* 1 + the value of each base64url character, 0 for the rest: one load per character on the
 * token path (a chain of branches there was about 4 % of a status poll's CPU). */
const unsigned char gk_base64url_codes[256] = {
    ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,  ['G'] = 7,  ['H'] = 8,
    ['I'] = 9,  ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
    ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
    ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
    ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
    ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['-'] = 63, ['_'] = 64,
};

bool
gk_base64_decode(const char *in, size_t len, enum gk_b64 a, unsigned char *out, size_t outcap, size_t *outlen)
{
    unsigned acc = 0, bits = 0;
    size_t n = 0;

    for (int pad = 0; a == GK_B64_ANY && pad < 2 && len > 0 && in[len - 1] == '='; pad++)
        len--;
    if (len % 4 == 1 || len / 4 * 3 + len % 4 * 3 / 4 > outcap)
        return false;
    for (size_t i = 0; i < len; i++) {
        int v = gk_base64_value((unsigned char)in[i], a);

        if (v < 0)
            return false;
        acc = (acc << 6 | (unsigned)v) & 0xfff; /* at most 12 pending bits are ever needed */
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    if ((acc & ((1u << bits) - 1)) != 0)
        return false;
    *outlen = n;
    return true;
}

enum gk_err
gk_random_bytes(void *buf, size_t n)
{
    return RAND_bytes(buf, (int)n) == 1 ? GK_OK : GK_EINVAL;
}

enum gk_err
gk_admin_key_new(char out[GK_ADMIN_KEY_BUF])
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char raw[33]; /* 32 random bytes, padded to a multiple of 3 */
    size_t o = 3;

    raw[32] = 0;
    if (gk_random_bytes(raw, 32) != GK_OK)
        return GK_EINVAL;
    memcpy(out, "gk_", 3);
    for (size_t i = 0; i < sizeof(raw); i += 3) {
        unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 | raw[i + 2];

        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = b64[(v >> 6) & 63];
        out[o++] = b64[v & 63];
    }
    /* 32 bytes are 43 base64 characters; the 44th only encodes the padding byte. */
    out[3 + 43] = '\0';
    OPENSSL_cleanse(raw, sizeof(raw));
    return GK_OK;
}

bool
gk_ct_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

bool
gk_key_matches_hash(const char *key, size_t keylen, const char *stored_hex)
{
    char got[GK_SHA256_HEX_BUF];

    if (strlen(stored_hex) != GK_SHA256_HEX_BUF - 1)
        return false;
    gk_sha256_hex(key, keylen, got);
    return gk_ct_equal(got, stored_hex, GK_SHA256_HEX_BUF - 1);
}
