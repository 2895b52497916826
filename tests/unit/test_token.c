/* SPDX-License-Identifier: MIT */
/*
 * test_token.c -- queue tokens: round trip, expiry boundary, forgery, algorithm confusion, key
 * rotation, claim validation, malformed input. Hostile tokens are built here by hand (own
 * base64url, HMAC from libcrypto) and most carry a signature that is valid for the bytes sent,
 * so each one is refused for the reason the test names and not for a bad MAC.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <jwt.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "gk/token.h"
#include "unit/suites.h"

#define SECRET "unit-test-secret-0123456789abcdef-0123"
#define PREVIOUS "previous-secret-fedcba9876543210-fedcba"
#define OTHER "somebody-elses-secret-00000000000000000"
#define HS256_HDR "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
#define GOOD_BODY "{\"bid\":\"shop1\",\"sub\":\"user-1\",\"iat\":1000,\"exp\":1300}"
#define BIG 4096

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void
b64url(const void *in, size_t n, char *out)
{
    const unsigned char *p = in;
    size_t o = 0;

    for (size_t i = 0; i < n; i += 3) {
        unsigned v =
            (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        size_t chars = n - i >= 3 ? 4 : n - i + 1;

        for (size_t c = 0; c < chars; c++)
            out[o++] = B64URL[(v >> (18 - 6 * c)) & 63];
    }
    out[o] = '\0';
}

/* "b64(header).b64(body).b64(MAC)" with HMAC-md under key; md NULL leaves the signature empty. */
static void
craft(char out[BIG], const char *header, const char *body, const char *key, const EVP_MD *md)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    size_t n;

    b64url(header, strlen(header), out);
    n = strlen(out);
    out[n++] = '.';
    b64url(body, strlen(body), out + n);
    n = strlen(out);
    if (md != NULL)
        ck_assert_ptr_nonnull(HMAC(md, key, (int)strlen(key), (const unsigned char *)out, n, mac, &maclen));
    out[n++] = '.';
    b64url(mac, maclen, out + n);
}

/* Verifies with keys (SECRET, no previous) at now_s = 1000. */
static enum gk_token_status
verify_at(const char *token, int64_t now_s, struct gk_claims *c)
{
    struct gk_token_keys *k = gk_token_keys_new(SECRET, NULL);
    enum gk_token_status st = gk_token_verify(k, token, now_s, c);

    gk_token_keys_free(k);
    return st;
}

static enum gk_token_status
verify(const char *token)
{
    struct gk_claims c;

    return verify_at(token, 1000, &c);
}

static enum gk_token_status
verify_crafted(const char *header, const char *body, const char *key, const EVP_MD *md)
{
    char tok[BIG];

    craft(tok, header, body, key, md);
    return verify(tok);
}

static struct gk_claims
claims(const char *bid, const char *sub, int64_t iat, int64_t exp)
{
    struct gk_claims c = {.iat = iat, .exp = exp};

    snprintf(c.business, sizeof(c.business), "%s", bid);
    snprintf(c.user, sizeof(c.user), "%s", sub);
    return c;
}

START_TEST(issue_verify_round_trip)
{
    struct gk_token_keys *k = gk_token_keys_new(SECRET, PREVIOUS);
    struct gk_claims in = claims("shop1", "user-1@example.com", 1000, 1300), out;
    char tok[GK_TOKEN_BUF];

    ck_assert_int_eq(gk_token_issue(k, &in, tok, sizeof(tok)), GK_OK);
    ck_assert_ptr_null(strchr(tok, '='));
    memset(&out, 0, sizeof(out));
    ck_assert_int_eq(gk_token_verify(k, tok, 1000, &out), GK_TOKEN_VALID);
    ck_assert_str_eq(out.business, "shop1");
    ck_assert_str_eq(out.user, "user-1@example.com");
    ck_assert_int_eq(out.iat, 1000);
    ck_assert_int_eq(out.exp, 1300);
    gk_token_keys_free(k);
}
END_TEST

/* The ticket claim: carried and verified when set, absent otherwise; only a positive integer
 * is accepted in a token signed by someone else's spelling. */
START_TEST(ticket_claim_round_trip)
{
    struct gk_token_keys *k = gk_token_keys_new(SECRET, NULL);
    struct gk_claims in = claims("shop1", "user-1", 1000, 1300), out;
    char tok[GK_TOKEN_BUF], crafted[BIG];

    in.ticket = 123456789012345678LL;
    ck_assert_int_eq(gk_token_issue(k, &in, tok, sizeof(tok)), GK_OK);
    ck_assert_int_eq(gk_token_verify(k, tok, 1000, &out), GK_TOKEN_VALID);
    ck_assert_int_eq(out.ticket, 123456789012345678LL);
    ck_assert_str_eq(out.user, "user-1");
    in.ticket = 0;
    ck_assert_int_eq(gk_token_issue(k, &in, tok, sizeof(tok)), GK_OK);
    ck_assert_int_eq(gk_token_verify(k, tok, 1000, &out), GK_TOKEN_VALID);
    ck_assert_int_eq(out.ticket, 0);
    in.ticket = 42;
    in.eta = 90;
    in.joined = 1000;
    ck_assert_int_eq(gk_token_issue(k, &in, tok, sizeof(tok)), GK_OK);
    ck_assert_int_eq(gk_token_verify(k, tok, 1000, &out), GK_TOKEN_VALID);
    ck_assert_int_eq(out.ticket, 42);
    ck_assert_int_eq(out.eta, 90);
    ck_assert_int_eq(out.joined, 1000);
    ck_assert_int_eq(out.shown, 0);
    /* the place last shown, with and without the join's ETA */
    in.shown = 17;
    ck_assert_int_eq(gk_token_issue(k, &in, tok, sizeof(tok)), GK_OK);
    ck_assert_int_eq(gk_token_verify(k, tok, 1000, &out), GK_TOKEN_VALID);
    ck_assert_int_eq(out.shown, 17);
    ck_assert_int_eq(out.joined, 1000);
    in.eta = in.joined = 0;
    ck_assert_int_eq(gk_token_issue(k, &in, tok, sizeof(tok)), GK_OK);
    ck_assert_int_eq(gk_token_verify(k, tok, 1000, &out), GK_TOKEN_VALID);
    ck_assert_int_eq(out.shown, 17);
    ck_assert_int_eq(out.joined, 0);
    in.shown = 0;
    in.ticket = -1;
    ck_assert_int_eq(gk_token_issue(k, &in, tok, sizeof(tok)), GK_EINVAL);
    craft(crafted, HS256_HDR, "{\"bid\":\"shop1\",\"sub\":\"u\",\"iat\":1000,\"exp\":1300,\"tkt\":7}", SECRET,
          EVP_sha256());
    ck_assert_int_eq(gk_token_verify(k, crafted, 1000, &out), GK_TOKEN_VALID);
    ck_assert_int_eq(out.ticket, 7);
    craft(crafted, HS256_HDR,
          "{\"bid\":\"shop1\",\"sub\":\"u\",\"iat\":1000,\"exp\":1300,\"tkt\":7,\"jat\":999,\"eta\":5}",
          SECRET, EVP_sha256());
    ck_assert_int_eq(gk_token_verify(k, crafted, 1000, &out), GK_TOKEN_VALID);
    ck_assert_int_eq(out.eta, 5);
    ck_assert_int_eq(out.joined, 999);
    /* the join's ETA comes with its time, and only with a ticket */
    craft(crafted, HS256_HDR,
          "{\"bid\":\"shop1\",\"sub\":\"u\",\"iat\":1000,\"exp\":1300,\"tkt\":7,\"eta\":5}", SECRET,
          EVP_sha256());
    ck_assert_int_eq(gk_token_verify(k, crafted, 1000, &out), GK_TOKEN_INVALID);
    craft(crafted, HS256_HDR,
          "{\"bid\":\"shop1\",\"sub\":\"u\",\"iat\":1000,\"exp\":1300,\"eta\":5,\"jat\":9}", SECRET,
          EVP_sha256());
    ck_assert_int_eq(gk_token_verify(k, crafted, 1000, &out), GK_TOKEN_INVALID);
    craft(crafted, HS256_HDR, "{\"bid\":\"shop1\",\"sub\":\"u\",\"iat\":1000,\"exp\":1300,\"tkt\":0}", SECRET,
          EVP_sha256());
    ck_assert_int_eq(gk_token_verify(k, crafted, 1000, &out), GK_TOKEN_INVALID);
    craft(crafted, HS256_HDR, "{\"bid\":\"shop1\",\"sub\":\"u\",\"iat\":1000,\"exp\":1300,\"tkt\":\"7\"}",
          SECRET, EVP_sha256());
    ck_assert_int_eq(gk_token_verify(k, crafted, 1000, &out), GK_TOKEN_INVALID);
    gk_token_keys_free(k);
}
END_TEST

START_TEST(issue_longest_ids_fits)
{
    struct gk_token_keys *k = gk_token_keys_new(SECRET, NULL);
    struct gk_claims in = {.iat = 0, .exp = INT64_MAX - 1}, out;
    char tok[GK_TOKEN_BUF];

    memset(in.business, 'b', GK_ID_MAX);
    in.business[GK_ID_MAX] = '\0';
    memset(in.user, 'u', GK_ID_MAX);
    in.user[GK_ID_MAX] = '\0';
    in.ticket = in.eta = in.joined = in.shown = 999999999999999999LL;
    in.iat = INT64_MAX - 2;
    ck_assert_int_eq(gk_token_issue(k, &in, tok, sizeof(tok)), GK_OK);
    ck_assert_int_eq(gk_token_verify(k, tok, INT64_MAX - 2, &out), GK_TOKEN_VALID);
    ck_assert_str_eq(out.business, in.business);
    ck_assert_str_eq(out.user, in.user);
    ck_assert_int_eq(out.exp, INT64_MAX - 1);
    ck_assert_int_eq(out.shown, 999999999999999999LL);
    gk_token_keys_free(k);
}
END_TEST

START_TEST(issue_refuses_bad_ids_and_small_buffers)
{
    struct gk_token_keys *k = gk_token_keys_new(SECRET, NULL);
    struct gk_claims c;
    char tok[GK_TOKEN_BUF];

    c = claims("", "user-1", 1000, 1300);
    ck_assert_int_eq(gk_token_issue(k, &c, tok, sizeof(tok)), GK_EINVAL);
    c = claims("shop1", "user 1", 1000, 1300);
    ck_assert_int_eq(gk_token_issue(k, &c, tok, sizeof(tok)), GK_EINVAL);
    c = claims("shop1", "us\"er", 1000, 1300);
    ck_assert_int_eq(gk_token_issue(k, &c, tok, sizeof(tok)), GK_EINVAL);
    c = claims("shop1", "user-1", 1000, 1300);
    memset(c.business, 'a', sizeof(c.business)); /* no terminating NUL */
    ck_assert_int_eq(gk_token_issue(k, &c, tok, sizeof(tok)), GK_EINVAL);
    c = claims("shop1", "user-1", 1000, 1300);
    ck_assert_int_eq(gk_token_issue(k, &c, tok, 20), GK_EINVAL);
    gk_token_keys_free(k);
}
END_TEST

START_TEST(expiry_boundary)
{
    struct gk_token_keys *k = gk_token_keys_new(SECRET, NULL);
    struct gk_claims in = claims("shop1", "user-1", 1000, 1300), out;
    char tok[GK_TOKEN_BUF];

    ck_assert_int_eq(gk_token_issue(k, &in, tok, sizeof(tok)), GK_OK);
    ck_assert_int_eq(gk_token_verify(k, tok, 1299, &out), GK_TOKEN_VALID); /* exp == now + 1 */
    memset(&out, 0, sizeof(out));
    ck_assert_int_eq(gk_token_verify(k, tok, 1300, &out), GK_TOKEN_EXPIRED); /* exp == now */
    ck_assert_str_eq(out.business, "shop1");
    ck_assert_str_eq(out.user, "user-1");
    ck_assert_int_eq(out.exp, 1300);
    ck_assert_int_eq(gk_token_verify(k, tok, 1000000, &out), GK_TOKEN_EXPIRED);
    gk_token_keys_free(k);
}
END_TEST

START_TEST(hand_crafted_hs256_verifies)
{
    /* The crafting helper agrees with the verifier, so the refusals below are not vacuous. */
    ck_assert_int_eq(verify_crafted(HS256_HDR, GOOD_BODY, SECRET, EVP_sha256()), GK_TOKEN_VALID);
    ck_assert_int_eq(verify_crafted("{\"alg\":\"HS256\"}", GOOD_BODY, SECRET, EVP_sha256()), GK_TOKEN_VALID);
    ck_assert_int_eq(verify_crafted(HS256_HDR,
                                    "{\"bid\":\"shop1\",\"sub\":\"u\",\"iat\":0,\"exp\":1,\"x\":[1]}", SECRET,
                                    EVP_sha256()),
                     GK_TOKEN_EXPIRED);
}
END_TEST

START_TEST(any_single_character_change_is_refused)
{
    static const char repl[] = "AQgw_-.9a=";
    char good[BIG], tok[BIG];
    size_t len;

    craft(good, HS256_HDR, GOOD_BODY, SECRET, EVP_sha256());
    len = strlen(good);
    for (size_t i = 0; i < len; i++) {
        for (const char *r = repl; *r != '\0'; r++) {
            if (*r == good[i])
                continue;
            memcpy(tok, good, len + 1);
            tok[i] = *r;
            ck_assert_msg(verify(tok) == GK_TOKEN_INVALID, "accepted with position %zu set to '%c'", i, *r);
        }
    }
}
END_TEST

START_TEST(non_canonical_signature_is_refused)
{
    char tok[BIG];
    size_t len;

    craft(tok, HS256_HDR, GOOD_BODY, SECRET, EVP_sha256());
    len = strlen(tok);
    /* 32 bytes are 43 characters; the last one carries 2 unused bits. Setting them keeps the
     * decoded bytes the same for a lenient decoder. */
    ck_assert_int_eq(verify(tok), GK_TOKEN_VALID);
    tok[len - 1] = B64URL[(strchr(B64URL, tok[len - 1]) - B64URL) ^ 1];
    ck_assert_int_eq(verify(tok), GK_TOKEN_INVALID);
}
END_TEST

START_TEST(structure_is_checked)
{
    char good[BIG], tok[BIG + 8];
    const char *dot2;
    size_t len;

    craft(good, HS256_HDR, GOOD_BODY, SECRET, EVP_sha256());
    len = strlen(good);
    dot2 = strrchr(good, '.');

    memcpy(tok, good, len - 1); /* truncated by one character */
    tok[len - 1] = '\0';
    ck_assert_int_eq(verify(tok), GK_TOKEN_INVALID);
    memcpy(tok, good, len / 2); /* cut in half */
    tok[len / 2] = '\0';
    ck_assert_int_eq(verify(tok), GK_TOKEN_INVALID);
    memcpy(tok, good, (size_t)(dot2 - good) + 1); /* "header.payload." */
    tok[dot2 - good + 1] = '\0';
    ck_assert_int_eq(verify(tok), GK_TOKEN_INVALID);
    tok[dot2 - good] = '\0'; /* "header.payload" */
    ck_assert_int_eq(verify(tok), GK_TOKEN_INVALID);
    snprintf(tok, sizeof(tok), "%s.", good); /* extra empty segment */
    ck_assert_int_eq(verify(tok), GK_TOKEN_INVALID);
    snprintf(tok, sizeof(tok), "%s.AAAA", good); /* extra segment */
    ck_assert_int_eq(verify(tok), GK_TOKEN_INVALID);
    snprintf(tok, sizeof(tok), ".%s", good);
    ck_assert_int_eq(verify(tok), GK_TOKEN_INVALID);
    snprintf(tok, sizeof(tok), "%s\n", good);
    ck_assert_int_eq(verify(tok), GK_TOKEN_INVALID);
    snprintf(tok, sizeof(tok), " %s", good);
    ck_assert_int_eq(verify(tok), GK_TOKEN_INVALID);
    ck_assert_int_eq(verify(""), GK_TOKEN_INVALID);
    ck_assert_int_eq(verify("."), GK_TOKEN_INVALID);
    ck_assert_int_eq(verify(".."), GK_TOKEN_INVALID);
    ck_assert_int_eq(verify("..."), GK_TOKEN_INVALID);
    ck_assert_int_eq(verify("abc"), GK_TOKEN_INVALID);
    ck_assert_int_eq(verify(NULL), GK_TOKEN_INVALID);
}
END_TEST

START_TEST(garbage_base64_is_refused)
{
    char tok[BIG], hdr[64], body[256], sig[64];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen;

    ck_assert_int_eq(verify("!!!!.????.****"), GK_TOKEN_INVALID);
    ck_assert_int_eq(verify("eyJhbGciOiJIUzI1NiJ9.e30.A"), GK_TOKEN_INVALID); /* 1 mod 4 */
    /* Standard-alphabet and padded spellings of a correctly signed token. */
    b64url(HS256_HDR, strlen(HS256_HDR), hdr);
    b64url(GOOD_BODY, strlen(GOOD_BODY), body);
    snprintf(tok, sizeof(tok), "%s.%s", hdr, body);
    HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const unsigned char *)tok, strlen(tok), mac, &maclen);
    b64url(mac, maclen, sig);
    snprintf(tok, sizeof(tok), "%s.%s.%s=", hdr, body, sig);
    ck_assert_int_eq(verify(tok), GK_TOKEN_INVALID);
    snprintf(tok, sizeof(tok), "%s==.%s.%s", hdr, body, sig);
    ck_assert_int_eq(verify(tok), GK_TOKEN_INVALID);
    for (char *p = sig; *p != '\0'; p++)
        *p = *p == '-' ? '+' : *p == '_' ? '/' : *p;
    snprintf(tok, sizeof(tok), "%s.%s.%s+", hdr, body, sig);
    ck_assert_int_eq(verify(tok), GK_TOKEN_INVALID);
    /* A segment that is valid base64url but not JSON, even when signed. */
    ck_assert_int_eq(verify_crafted(HS256_HDR, "not json", SECRET, EVP_sha256()), GK_TOKEN_INVALID);
    ck_assert_int_eq(verify_crafted("not json", GOOD_BODY, SECRET, EVP_sha256()), GK_TOKEN_INVALID);
}
END_TEST

START_TEST(algorithm_must_be_hs256)
{
    /* alg "none", unsigned, as an attacker would send it. */
    ck_assert_int_eq(verify_crafted("{\"alg\":\"none\",\"typ\":\"JWT\"}", GOOD_BODY, NULL, NULL),
                     GK_TOKEN_INVALID);
    ck_assert_int_eq(verify_crafted("{\"alg\":\"none\"}", GOOD_BODY, NULL, NULL), GK_TOKEN_INVALID);
    /* Each header below carries a valid HS256 MAC under our secret: only the alg check refuses it. */
    static const char *const wrong[] = {
        "{\"alg\":\"none\",\"typ\":\"JWT\"}",
        "{\"alg\":\"HS512\",\"typ\":\"JWT\"}",
        "{\"alg\":\"HS384\",\"typ\":\"JWT\"}",
        "{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
        "{\"alg\":\"ES256\",\"typ\":\"JWT\"}",
        "{\"alg\":\"hs256\",\"typ\":\"JWT\"}",
        "{\"alg\":\"HS256 \",\"typ\":\"JWT\"}",
        "{\"alg\":\"HS256\\u0000\",\"typ\":\"JWT\"}",
        "{\"alg\":\"HS2\",\"typ\":\"JWT\"}",
        "{\"alg\":\"\",\"typ\":\"JWT\"}",
        "{\"alg\":256,\"typ\":\"JWT\"}",
        "{\"alg\":null,\"typ\":\"JWT\"}",
        "{\"alg\":[\"HS256\"]}",
        "{\"typ\":\"JWT\"}",
        "{}",
        "[\"HS256\"]",
        "\"HS256\"",
        "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}",
    };
    for (size_t i = 0; i < GK_ARRAY_LEN(wrong); i++)
        ck_assert_msg(verify_crafted(wrong[i], GOOD_BODY, SECRET, EVP_sha256()) == GK_TOKEN_INVALID,
                      "accepted header %s", wrong[i]);
    /* Correctly signed with the algorithm the header names, same secret. */
    ck_assert_int_eq(verify_crafted("{\"alg\":\"HS512\",\"typ\":\"JWT\"}", GOOD_BODY, SECRET, EVP_sha512()),
                     GK_TOKEN_INVALID);
    ck_assert_int_eq(verify_crafted("{\"alg\":\"HS384\",\"typ\":\"JWT\"}", GOOD_BODY, SECRET, EVP_sha384()),
                     GK_TOKEN_INVALID);
    /* RS256 with our secret used as the "public key" HMAC (classic key confusion). */
    ck_assert_int_eq(verify_crafted("{\"alg\":\"RS256\",\"typ\":\"JWT\"}", GOOD_BODY, SECRET, EVP_sha256()),
                     GK_TOKEN_INVALID);
}
END_TEST

START_TEST(previous_secret_during_rotation)
{
    struct gk_token_keys *old = gk_token_keys_new(PREVIOUS, NULL);
    struct gk_token_keys *rotated = gk_token_keys_new(SECRET, PREVIOUS);
    struct gk_token_keys *done = gk_token_keys_new(SECRET, NULL);
    struct gk_token_keys *empty_prev = gk_token_keys_new(SECRET, "");
    struct gk_token_keys *stranger = gk_token_keys_new(OTHER, NULL);
    struct gk_claims in = claims("shop1", "user-1", 1000, 1300), out;
    char tok[GK_TOKEN_BUF];

    ck_assert_int_eq(gk_token_issue(old, &in, tok, sizeof(tok)), GK_OK);
    memset(&out, 0, sizeof(out));
    ck_assert_int_eq(gk_token_verify(rotated, tok, 1000, &out), GK_TOKEN_VALID);
    ck_assert_str_eq(out.user, "user-1");
    ck_assert(out.previous_key);
    ck_assert_int_eq(gk_token_verify(rotated, tok, 1300, &out), GK_TOKEN_EXPIRED);
    ck_assert(out.previous_key);
    ck_assert_int_eq(gk_token_verify(done, tok, 1000, &out), GK_TOKEN_INVALID);
    ck_assert_int_eq(gk_token_verify(empty_prev, tok, 1000, &out), GK_TOKEN_INVALID);
    ck_assert_int_eq(gk_token_verify(stranger, tok, 1000, &out), GK_TOKEN_INVALID);
    /* New tokens are signed with the current secret only. */
    ck_assert_int_eq(gk_token_issue(rotated, &in, tok, sizeof(tok)), GK_OK);
    ck_assert_int_eq(gk_token_verify(rotated, tok, 1000, &out), GK_TOKEN_VALID);
    ck_assert(!out.previous_key);
    ck_assert_int_eq(gk_token_verify(done, tok, 1000, &out), GK_TOKEN_VALID);
    ck_assert(!out.previous_key);
    ck_assert_int_eq(gk_token_verify(old, tok, 1000, &out), GK_TOKEN_INVALID);
    gk_token_keys_free(stranger);
    gk_token_keys_free(empty_prev);
    gk_token_keys_free(done);
    gk_token_keys_free(rotated);
    gk_token_keys_free(old);
    gk_token_keys_free(NULL);
}
END_TEST

START_TEST(unknown_secret_is_refused)
{
    ck_assert_int_eq(verify_crafted(HS256_HDR, GOOD_BODY, OTHER, EVP_sha256()), GK_TOKEN_INVALID);
    ck_assert_int_eq(verify_crafted(HS256_HDR, GOOD_BODY, "", EVP_sha256()), GK_TOKEN_INVALID);
    ck_assert_int_eq(verify_crafted(HS256_HDR, GOOD_BODY, SECRET "x", EVP_sha256()), GK_TOKEN_INVALID);
}
END_TEST

START_TEST(claims_must_be_present_and_well_typed)
{
    static const char *const bad[] = {
        "{\"bid\":1,\"sub\":\"user-1\",\"iat\":1000,\"exp\":1300}",
        "{\"bid\":\"\",\"sub\":\"user-1\",\"iat\":1000,\"exp\":1300}",
        "{\"bid\":\"shop 1\",\"sub\":\"user-1\",\"iat\":1000,\"exp\":1300}",
        "{\"bid\":\"shop1\\u0000x\",\"sub\":\"user-1\",\"iat\":1000,\"exp\":1300}",
        "{\"bid\":[\"shop1\"],\"sub\":\"user-1\",\"iat\":1000,\"exp\":1300}",
        "{\"sub\":\"user-1\",\"iat\":1000,\"exp\":1300}",
        "{\"bid\":\"shop1\",\"sub\":\"us/er\",\"iat\":1000,\"exp\":1300}",
        "{\"bid\":\"shop1\",\"sub\":\"\\u00fcser\",\"iat\":1000,\"exp\":1300}",
        "{\"bid\":\"shop1\",\"sub\":null,\"iat\":1000,\"exp\":1300}",
        "{\"bid\":\"shop1\",\"iat\":1000,\"exp\":1300}",
        "{\"bid\":\"shop1\",\"sub\":\"user-1\",\"exp\":1300}",
        "{\"bid\":\"shop1\",\"sub\":\"user-1\",\"iat\":\"1000\",\"exp\":1300}",
        "{\"bid\":\"shop1\",\"sub\":\"user-1\",\"iat\":1000}",
        "{\"bid\":\"shop1\",\"sub\":\"user-1\",\"iat\":1000,\"exp\":\"1300\"}",
        "{\"bid\":\"shop1\",\"sub\":\"user-1\",\"iat\":1000,\"exp\":1300.5}",
        "{\"bid\":\"shop1\",\"sub\":\"user-1\",\"iat\":1000,\"exp\":1.3e3}",
        "{\"bid\":\"shop1\",\"sub\":\"user-1\",\"iat\":1000,\"exp\":true}",
        "{\"bid\":\"shop1\",\"sub\":\"user-1\",\"iat\":1000,\"exp\":null}",
        "{\"bid\":\"shop1\",\"sub\":\"user-1\",\"iat\":1000,\"exp\":1000}",
        "{\"bid\":\"shop1\",\"sub\":\"user-1\",\"iat\":1000,\"exp\":999}",
        "{\"bid\":\"shop1\",\"sub\":\"user-1\",\"iat\":-5,\"exp\":1300}",
        "{\"bid\":\"shop1\",\"sub\":\"user-1\",\"iat\":1000,\"exp\":99999999999999999999999}",
        "[\"shop1\",\"user-1\",1000,1300]",
        "{}",
    };
    char body[512], tok[BIG];
    struct gk_claims before, c;

    for (size_t i = 0; i < GK_ARRAY_LEN(bad); i++)
        ck_assert_msg(verify_crafted(HS256_HDR, bad[i], SECRET, EVP_sha256()) == GK_TOKEN_INVALID,
                      "accepted %s", bad[i]);
    /* sub of GK_ID_MAX bytes is fine, one more is not */
    snprintf(body, sizeof(body), "{\"bid\":\"shop1\",\"sub\":\"%0*d\",\"iat\":1000,\"exp\":1300}", GK_ID_MAX,
             7);
    ck_assert_int_eq(verify_crafted(HS256_HDR, body, SECRET, EVP_sha256()), GK_TOKEN_VALID);
    snprintf(body, sizeof(body), "{\"bid\":\"shop1\",\"sub\":\"%0*d\",\"iat\":1000,\"exp\":1300}",
             GK_ID_MAX + 1, 7);
    ck_assert_int_eq(verify_crafted(HS256_HDR, body, SECRET, EVP_sha256()), GK_TOKEN_INVALID);
    /* *out is untouched when the token is refused */
    craft(tok, HS256_HDR, bad[0], SECRET, EVP_sha256());
    memset(&before, 0x5a, sizeof(before));
    c = before;
    ck_assert_int_eq(verify_at(tok, 1000, &c), GK_TOKEN_INVALID);
    ck_assert_mem_eq(&c, &before, sizeof(c));
}
END_TEST

/* A correctly signed token of exactly len characters, padded with an extra claim. */
static void
craft_of_length(char out[BIG], size_t len)
{
    char body[BIG];

    for (size_t pad = 0; pad < 1000; pad++) {
        snprintf(body, sizeof(body),
                 "{\"bid\":\"shop1\",\"sub\":\"user-1\",\"iat\":1000,\"exp\":1300,\"pad\":\"%0*d\"}",
                 (int)pad + 1, 0);
        craft(out, HS256_HDR, body, SECRET, EVP_sha256());
        if (strlen(out) == len)
            return;
    }
    ck_abort_msg("no padding gives a token of %zu characters", len);
}

START_TEST(size_limit)
{
    char tok[BIG];

    craft_of_length(tok, GK_TOKEN_MAX);
    ck_assert_int_eq(verify(tok), GK_TOKEN_VALID);
    craft_of_length(tok, GK_TOKEN_MAX + 1);
    ck_assert_int_eq(verify(tok), GK_TOKEN_INVALID);
    memset(tok, 'A', BIG - 1);
    tok[BIG - 1] = '\0';
    tok[10] = tok[20] = '.';
    ck_assert_int_eq(verify(tok), GK_TOKEN_INVALID);
}
END_TEST

START_TEST(binary_junk_is_refused)
{
    struct gk_token_keys *k = gk_token_keys_new(SECRET, PREVIOUS);
    struct gk_claims c;
    char junk[GK_TOKEN_BUF];
    uint32_t x = 12345;

    for (int round = 0; round < 2000; round++) {
        size_t len = 1 + round % GK_TOKEN_MAX;

        for (size_t i = 0; i < len; i++) {
            x = x * 1103515245u + 12345u;
            junk[i] = (char)(1 + (x >> 16) % 255); /* any byte but NUL */
        }
        if (round % 2 == 1 && len > 4) /* give half of them the dots of a JWT */
            junk[len / 3] = junk[2 * len / 3] = '.';
        junk[len] = '\0';
        ck_assert_int_eq(gk_token_verify(k, junk, 1000, &c), GK_TOKEN_INVALID);
    }
    gk_token_keys_free(k);
}
END_TEST

struct race {
    const struct gk_token_keys *k;
    int failures;
};

static void *
race_thread(void *arg)
{
    struct race *r = arg;
    char tok[GK_TOKEN_BUF], user[32];
    struct gk_claims in, out;

    for (int i = 0; i < 300; i++) {
        snprintf(user, sizeof(user), "u%d", i);
        in = claims("shop1", user, 1000, 1300);
        if (gk_token_issue(r->k, &in, tok, sizeof(tok)) != GK_OK ||
            gk_token_verify(r->k, tok, 1000, &out) != GK_TOKEN_VALID || strcmp(out.user, user) != 0)
            r->failures++;
    }
    return NULL;
}

START_TEST(shared_keys_across_threads)
{
    struct gk_token_keys *k = gk_token_keys_new(SECRET, PREVIOUS);
    struct race r[4];
    pthread_t t[4];

    for (int i = 0; i < 4; i++) {
        r[i] = (struct race){.k = k};
        ck_assert_int_eq(pthread_create(&t[i], NULL, race_thread, &r[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
        ck_assert_int_eq(r[i].failures, 0);
    }
    gk_token_keys_free(k);
}
END_TEST

/* Tokens are standard JWTs: libjwt, an independent implementation, decodes and verifies every
 * token we issue, and reads back the same claims. */
START_TEST(issued_tokens_verify_with_libjwt)
{
    struct gk_token_keys *k = gk_token_keys_new(SECRET, NULL);
    struct gk_claims c = {.iat = 1795000000, .exp = 1795000300};
    char tok[GK_TOKEN_BUF];
    jwt_t *jwt = NULL;

    snprintf(c.business, sizeof(c.business), "shop-1.example:eu@x");
    memset(c.user, 'u', GK_ID_MAX);
    c.user[GK_ID_MAX] = '\0';
    ck_assert_int_eq(gk_token_issue(k, &c, tok, sizeof(tok)), GK_OK);
    ck_assert_int_eq(jwt_decode(&jwt, tok, (const unsigned char *)SECRET, (int)strlen(SECRET)), 0);
    ck_assert_int_eq(jwt_get_alg(jwt), JWT_ALG_HS256);
    ck_assert_str_eq(jwt_get_grant(jwt, "bid"), c.business);
    ck_assert_str_eq(jwt_get_grant(jwt, "sub"), c.user);
    ck_assert_int_eq(jwt_get_grant_int(jwt, "iat"), 1795000000);
    ck_assert_int_eq(jwt_get_grant_int(jwt, "exp"), 1795000300);
    jwt_free(jwt);
    jwt = NULL;
    /* ... and a token libjwt issues verifies here. */
    ck_assert_int_eq(jwt_new(&jwt), 0);
    ck_assert_int_eq(jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)SECRET, (int)strlen(SECRET)), 0);
    ck_assert_int_eq(jwt_add_grant(jwt, "bid", "shop"), 0);
    ck_assert_int_eq(jwt_add_grant(jwt, "sub", "ann"), 0);
    ck_assert_int_eq(jwt_add_grant_int(jwt, "iat", 1795000000), 0);
    ck_assert_int_eq(jwt_add_grant_int(jwt, "exp", 1795000300), 0);
    {
        char *enc = jwt_encode_str(jwt);
        struct gk_claims got;

        ck_assert_ptr_nonnull(enc);
        ck_assert_int_eq(gk_token_verify(k, enc, 1795000100, &got), GK_TOKEN_VALID);
        ck_assert_str_eq(got.user, "ann");
        free(enc);
    }
    jwt_free(jwt);
    gk_token_keys_free(k);
}
END_TEST

Suite *
token_suite(void)
{
    Suite *s = suite_create("token");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, issued_tokens_verify_with_libjwt);
    tcase_add_test(tc, issue_verify_round_trip);
    tcase_add_test(tc, issue_longest_ids_fits);
    tcase_add_test(tc, ticket_claim_round_trip);
    tcase_add_test(tc, issue_refuses_bad_ids_and_small_buffers);
    tcase_add_test(tc, expiry_boundary);
    tcase_add_test(tc, hand_crafted_hs256_verifies);
    tcase_add_test(tc, any_single_character_change_is_refused);
    tcase_add_test(tc, non_canonical_signature_is_refused);
    tcase_add_test(tc, structure_is_checked);
    tcase_add_test(tc, garbage_base64_is_refused);
    tcase_add_test(tc, algorithm_must_be_hs256);
    tcase_add_test(tc, previous_secret_during_rotation);
    tcase_add_test(tc, unknown_secret_is_refused);
    tcase_add_test(tc, claims_must_be_present_and_well_typed);
    tcase_add_test(tc, size_limit);
    tcase_add_test(tc, binary_junk_is_refused);
    tcase_add_test(tc, shared_keys_across_threads);
    suite_add_tcase(s, tc);
    return s;
}
