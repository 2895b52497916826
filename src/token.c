/* SPDX-License-Identifier: MIT */
/*
 * token.c -- see gk/token.h for the contract.
 *
 * Tokens are standard HS256 JWTs, written and checked here; libjwt is the reference the unit
 * tests hold them to (every issued token must decode with jwt_decode). Neither path goes through
 * libjwt at run time. Issuing: see gk_token_issue. Verifying: libjwt 1.10.2's jwt_decode() does
 * compare the HMAC in constant time (jwt_verify_sha_hmac re-encodes the MAC and calls jwt_strcmp,
 * an XOR-accumulate loop over the longer string), so timing is not the reason. These are:
 *  - it takes the algorithm from the token header, so an HS512 token signed with our secret
 *    verifies; we would have to parse and check the header ourselves first anyway;
 *  - its claim getters ignore types (jwt_get_grant_int returns 0, errno unset, for a string),
 *    and it has no notion of exp, so claim checks would be ours regardless;
 *  - trying the previous secret means a second full decode, with its Jansson tree, BIOs and
 *    copies of the key.
 * So gk_token_verify() splits the token, decodes it with a strict base64url decoder into stack
 * buffers (canonical encodings only, so each token has exactly one spelling), checks that alg is
 * exactly "HS256", compares HMAC-SHA256 over "header.payload" with CRYPTO_memcmp, and only then
 * reads the claims with json-c. The only heap use is the two small json-c trees.
 *
 * Thread-safety: keys (and their precomputed HMAC states) are immutable after gk_token_keys_new();
 * every OpenSSL and json-c object used per call lives inside that call.
 */
#include "gk/token.h"

#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "gk/crypto.h"
#include "gk/jsonutil.h"

#define SIG_LEN 32                     /* HMAC-SHA256 output */
#define SEG_BUF (GK_TOKEN_MAX / 4 * 3) /* a decoded segment always fits */

/* HMAC-SHA256 with the key already absorbed: the SHA-256 states after (key ^ ipad) and after
 * (key ^ opad). Computed once; every MAC then starts from copies of them instead of rebuilding
 * the key schedule and looking "HMAC" up by name, as OpenSSL 3's one-shot HMAC() does on every
 * call (that was a third of a status poll's CPU). Never written after creation, so threads copy
 * from them concurrently. */
struct hmac_key {
    EVP_MD_CTX *inner;
    EVP_MD_CTX *outer;
};

struct gk_token_keys {
    size_t cur_len;
    size_t prev_len;         /* 0: no previous secret */
    struct hmac_key macs[2]; /* current, previous (inner == NULL when there is none) */
    unsigned char secrets[]; /* current secret, then the previous one; no NUL */
};

static void
hmac_key_init(struct hmac_key *hk, const unsigned char *key, size_t keylen)
{
    unsigned char block[64] = {0}, pad[64];

    /* RFC 2104: keys longer than the block are hashed first. */
    if (keylen > sizeof(block))
        GK_ASSERT(EVP_Digest(key, keylen, block, NULL, EVP_sha256(), NULL) == 1);
    else
        memcpy(block, key, keylen);
    hk->inner = EVP_MD_CTX_new();
    hk->outer = EVP_MD_CTX_new();
    GK_ASSERT(hk->inner != NULL && hk->outer != NULL);
    for (size_t i = 0; i < sizeof(pad); i++)
        pad[i] = block[i] ^ 0x36;
    GK_ASSERT(EVP_DigestInit_ex(hk->inner, EVP_sha256(), NULL) == 1 &&
              EVP_DigestUpdate(hk->inner, pad, sizeof(pad)) == 1);
    for (size_t i = 0; i < sizeof(pad); i++)
        pad[i] = block[i] ^ 0x5c;
    GK_ASSERT(EVP_DigestInit_ex(hk->outer, EVP_sha256(), NULL) == 1 &&
              EVP_DigestUpdate(hk->outer, pad, sizeof(pad)) == 1);
    OPENSSL_cleanse(block, sizeof(block));
    OPENSSL_cleanse(pad, sizeof(pad));
}

struct gk_token_keys *
gk_token_keys_new(const char *secret, const char *previous)
{
    size_t cur_len, prev_len = previous != NULL ? strlen(previous) : 0;
    struct gk_token_keys *k;

    /* config enforces >= 32 bytes; an empty HMAC key here would be a bug, not bad input */
    GK_ASSERT(secret != NULL && secret[0] != '\0');
    cur_len = strlen(secret);
    k = gk_xmalloc(sizeof(*k) + cur_len + prev_len);
    k->cur_len = cur_len;
    k->prev_len = prev_len;
    memcpy(k->secrets, secret, cur_len);
    hmac_key_init(&k->macs[0], k->secrets, cur_len);
    k->macs[1] = (struct hmac_key){NULL, NULL};
    if (prev_len > 0) {
        memcpy(k->secrets + cur_len, previous, prev_len);
        hmac_key_init(&k->macs[1], k->secrets + cur_len, prev_len);
    }
    return k;
}

void
gk_token_keys_free(struct gk_token_keys *k)
{
    if (k == NULL)
        return;
    for (int i = 0; i < 2; i++) {
        EVP_MD_CTX_free(k->macs[i].inner); /* OpenSSL cleanses digest state on free */
        EVP_MD_CTX_free(k->macs[i].outer);
    }
    OPENSSL_cleanse(k, sizeof(*k) + k->cur_len + k->prev_len);
    free(k);
}

/* base64url of {"alg":"HS256","typ":"JWT"}: the header of every token we issue (libjwt's own). */
static const char issued_header[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

static bool
claim_id_ok(const char id[GK_ID_BUF])
{
    return gk_id_valid(id, strnlen(id, GK_ID_BUF));
}

/* Finds the two dots of "header.payload.signature" in token[0..len): three non-empty segments of
 * base64url characters, nothing else. */
static bool
split_token(const char *token, size_t len, size_t *dot1, size_t *dot2)
{
    size_t dots[2];
    unsigned ndots = 0;

    for (size_t i = 0; i < len; i++) {
        if (token[i] == '.') {
            if (ndots == 2)
                return false;
            dots[ndots++] = i;
        } else if (gk_base64_value((unsigned char)token[i], GK_B64_URL) < 0) {
            return false;
        }
    }
    if (ndots != 2 || dots[0] == 0 || dots[1] == dots[0] + 1 || dots[1] == len - 1)
        return false;
    *dot1 = dots[0];
    *dot2 = dots[1];
    return true;
}

/* Decodes one segment and parses it as a JSON object. Caller owns *obj (json_object_put). */
static bool
parse_segment(const char *seg, size_t len, struct json_object **obj)
{
    char buf[SEG_BUF];
    size_t n;

    if (!gk_base64_decode(seg, len, GK_B64_URL, (unsigned char *)buf, sizeof(buf), &n))
        return false;
    *obj = gk_json_parse_object(buf, n);
    return *obj != NULL;
}

/* alg must be exactly the string "HS256". A "crit" header names extensions the recipient must
 * understand (RFC 7515 4.1.11); we understand none, so its presence is refused. */
static bool
header_ok(struct json_object *hdr)
{
    struct json_object *alg;

    if (json_object_object_get_ex(hdr, "crit", NULL))
        return false;
    return json_object_object_get_ex(hdr, "alg", &alg) && json_object_is_type(alg, json_type_string) &&
           json_object_get_string_len(alg) == 5 && memcmp(json_object_get_string(alg), "HS256", 5) == 0;
}

static void mac(const struct hmac_key *hk, const char *msg, size_t msglen, unsigned char md[SIG_LEN]);

static bool
mac_matches(const struct hmac_key *hk, const char *msg, size_t msglen, const unsigned char sig[SIG_LEN])
{
    unsigned char md[SIG_LEN];
    bool ok;

    mac(hk, msg, msglen, md);
    ok = CRYPTO_memcmp(md, sig, SIG_LEN) == 0;
    OPENSSL_cleanse(md, sizeof(md)); /* a valid MAC for a message the caller chose */
    return ok;
}

/* base64url without padding of in[0..len) into out; returns the length written. */
static size_t
b64url_encode(const unsigned char *in, size_t len, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0, i = 0;

    for (; i + 2 < len; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];

        out[o++] = abc[v >> 18];
        out[o++] = abc[(v >> 12) & 63];
        out[o++] = abc[(v >> 6) & 63];
        out[o++] = abc[v & 63];
    }
    if (len - i == 1) {
        out[o++] = abc[in[i] >> 2];
        out[o++] = abc[(in[i] & 3) << 4];
    } else if (len - i == 2) {
        unsigned v = (unsigned)in[i] << 8 | in[i + 1];

        out[o++] = abc[v >> 10];
        out[o++] = abc[(v >> 4) & 63];
        out[o++] = abc[(v & 15) << 2];
    }
    return o;
}

static void
mac(const struct hmac_key *hk, const char *msg, size_t msglen, unsigned char md[SIG_LEN])
{
    unsigned char ih[SIG_LEN];
    EVP_MD_CTX *c = EVP_MD_CTX_new();

    GK_ASSERT(c != NULL);
    GK_ASSERT(EVP_MD_CTX_copy_ex(c, hk->inner) == 1 && EVP_DigestUpdate(c, msg, msglen) == 1 &&
              EVP_DigestFinal_ex(c, ih, NULL) == 1 && EVP_MD_CTX_copy_ex(c, hk->outer) == 1 &&
              EVP_DigestUpdate(c, ih, sizeof(ih)) == 1 && EVP_DigestFinal_ex(c, md, NULL) == 1);
    EVP_MD_CTX_free(c);
}

/* lit then v in decimal at p; returns the end (at the NUL). */
static char *
put_int(char *p, const char *lit, int64_t v)
{
    p = stpcpy(p, lit);
    return p + gk_u64_str((uint64_t)v, p);
}

/*
 * Tokens are written here, byte for byte as libjwt 1.10 writes them (header
 * {"alg":"HS256","typ":"JWT"}, claims in sorted order, no spaces): the unit tests decode every
 * issued token with libjwt's jwt_decode to prove it. Going through libjwt itself meant a Jansson
 * tree and OpenSSL's one-shot HMAC per token, a third of an enqueue's CPU.
 */
enum gk_err
gk_token_issue(const struct gk_token_keys *k, const struct gk_claims *c, char *out, size_t outlen)
{
    char payload[2 * GK_ID_BUF + 192], *p;
    unsigned char md[SIG_LEN];
    size_t n = sizeof(issued_header) - 1, plen;

    if (!claim_id_ok(c->business) || !claim_id_ok(c->user) || c->iat < 0 || c->exp < 0 || c->ticket < 0 ||
        c->ticket >= 1000000000000000000LL || c->eta < 0 || c->eta >= 1000000000000000000LL ||
        c->joined < 0 || c->joined >= 1000000000000000000LL || c->shown < 0 ||
        c->shown >= 1000000000000000000LL)
        return GK_EINVAL;
    /* Written piece by piece: two checked ids and seven numbers, at most 428 bytes with the NUL. */
    p = stpcpy(stpcpy(payload, "{\"bid\":\""), c->business);
    p = put_int(p, "\",\"exp\":", c->exp);
    p = put_int(p, ",\"iat\":", c->iat);
    p = stpcpy(stpcpy(stpcpy(p, ",\"sub\":\""), c->user), "\"");
    if (c->ticket > 0) {
        p = put_int(p, ",\"tkt\":", c->ticket);
        if (c->joined > 0) {
            p = put_int(p, ",\"eta\":", c->eta);
            p = put_int(p, ",\"jat\":", c->joined);
        }
        if (c->shown > 0)
            p = put_int(p, ",\"pos\":", c->shown);
    }
    p = stpcpy(p, "}");
    plen = (size_t)(p - payload);
    GK_ASSERT(plen < sizeof(payload));
    /* header.payload.signature, each part at most 4/3 of its bytes */
    if (n + 1 + (plen + 2) / 3 * 4 + 1 + 44 + 1 > outlen || outlen < GK_TOKEN_BUF)
        return GK_EINVAL;
    memcpy(out, issued_header, n);
    out[n++] = '.';
    n += b64url_encode((const unsigned char *)payload, plen, out + n);
    mac(&k->macs[0], out, n, md);
    out[n++] = '.';
    n += b64url_encode(md, sizeof(md), out + n);
    out[n] = '\0';
    OPENSSL_cleanse(md, sizeof(md));
    return n <= GK_TOKEN_MAX ? GK_OK : GK_EINVAL;
}

/* The signature is over token[0..dot2): "header.payload" exactly as sent. *previous says whether
 * only the previous secret matched; the current one is tried first, so telling costs it nothing. */
static bool
signature_ok(const struct gk_token_keys *k, const char *token, size_t dot2, size_t len, bool *previous)
{
    unsigned char sig[SIG_LEN];
    size_t n;

    if (!gk_base64_decode(token + dot2 + 1, len - dot2 - 1, GK_B64_URL, sig, sizeof(sig), &n) || n != SIG_LEN)
        return false;
    *previous = false;
    if (mac_matches(&k->macs[0], token, dot2, sig))
        return true;
    *previous = true;
    return k->prev_len > 0 && mac_matches(&k->macs[1], token, dot2, sig);
}

static bool
read_id(struct json_object *body, const char *name, char out[GK_ID_BUF])
{
    struct json_object *v;
    size_t len;

    if (!json_object_object_get_ex(body, name, &v) || !json_object_is_type(v, json_type_string))
        return false;
    len = (size_t)json_object_get_string_len(v);
    if (!gk_id_valid(json_object_get_string(v), len))
        return false;
    memcpy(out, json_object_get_string(v), len);
    out[len] = '\0';
    return true;
}

/* Integer seconds in [0, INT64_MAX): json-c saturates larger integers to INT64_MAX. */
static bool
read_time(struct json_object *body, const char *name, int64_t *out)
{
    struct json_object *v;

    if (!json_object_object_get_ex(body, name, &v) || !json_object_is_type(v, json_type_int))
        return false;
    *out = json_object_get_int64(v);
    return *out >= 0 && *out < INT64_MAX;
}

/* The optional "tkt" claim: absent (0) or a positive integer; with it, optionally both "eta" (a
 * non-negative integer) and "jat" (positive), and "pos" (positive). */
static bool
read_ticket(struct json_object *body, struct gk_claims *c)
{
    bool eta, jat;

    c->ticket = c->eta = c->joined = c->shown = 0;
    if (!json_object_object_get_ex(body, "tkt", NULL))
        return !json_object_object_get_ex(body, "eta", NULL) &&
               !json_object_object_get_ex(body, "jat", NULL) && !json_object_object_get_ex(body, "pos", NULL);
    if (json_object_object_get_ex(body, "pos", NULL) && !(read_time(body, "pos", &c->shown) && c->shown > 0))
        return false;
    if (!read_time(body, "tkt", &c->ticket) || c->ticket <= 0)
        return false;
    eta = json_object_object_get_ex(body, "eta", NULL);
    jat = json_object_object_get_ex(body, "jat", NULL);
    if (eta != jat)
        return false;
    return !eta || (read_time(body, "eta", &c->eta) && read_time(body, "jat", &c->joined) && c->joined > 0);
}

/* Advances *p past lit if the text continues with it. */
static bool
expect(const char **p, const char *end, const char *lit)
{
    size_t n = strlen(lit);

    if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0)
        return false;
    *p += n;
    return true;
}

/* An id up to the closing quote: 1..128 characters that gk_id_valid accepts. */
static bool
scan_id(const char **p, const char *end, char out[GK_ID_BUF])
{
    const char *q = memchr(*p, '"', (size_t)(end - *p));

    if (q == NULL || !gk_id_valid(*p, (size_t)(q - *p)))
        return false;
    memcpy(out, *p, (size_t)(q - *p));
    out[q - *p] = '\0';
    *p = q;
    return true;
}

/* A plain non-negative integer of at most 18 digits, no leading zero. */
static bool
scan_int(const char **p, const char *end, int64_t *out)
{
    int64_t v = 0;
    int digits = 0;

    while (*p < end && **p >= '0' && **p <= '9' && digits < 19) {
        v = v * 10 + (**p - '0');
        (*p)++;
        digits++;
    }
    if (digits == 0 || digits > 18 || (digits > 1 && *(*p - digits) == '0'))
        return false;
    *out = v;
    return true;
}

/* The claims exactly as we issue them, {"bid":"<id>","exp":<n>,"iat":<n>,"sub":"<id>"} with
 * ,"tkt":<n> before the brace when there is a ticket, and after it ,"eta":<n>,"jat":<n> when
 * the join's ETA is recorded and ,"pos":<n> when a place was shown, read without building a JSON
 * tree (the poll path). Any other spelling, however valid, is left to json-c. */
static bool
issued_claims(const char *seg, size_t len, struct gk_claims *c)
{
    char buf[SEG_BUF];
    const char *p = buf, *end;
    size_t n;

    if (!gk_base64_decode(seg, len, GK_B64_URL, (unsigned char *)buf, sizeof(buf), &n))
        return false;
    end = buf + n;
    c->ticket = c->eta = c->joined = c->shown = 0;
    if (!(expect(&p, end, "{\"bid\":\"") && scan_id(&p, end, c->business) && expect(&p, end, "\",\"exp\":") &&
          scan_int(&p, end, &c->exp) && expect(&p, end, ",\"iat\":") && scan_int(&p, end, &c->iat) &&
          expect(&p, end, ",\"sub\":\"") && scan_id(&p, end, c->user) && expect(&p, end, "\"")))
        return false;
    if (expect(&p, end, ",\"tkt\":")) {
        if (!scan_int(&p, end, &c->ticket) || c->ticket <= 0)
            return false;
        if (expect(&p, end, ",\"eta\":") && !(scan_int(&p, end, &c->eta) && expect(&p, end, ",\"jat\":") &&
                                              scan_int(&p, end, &c->joined) && c->joined > 0))
            return false;
        if (expect(&p, end, ",\"pos\":") && !(scan_int(&p, end, &c->shown) && c->shown > 0))
            return false;
    }
    return expect(&p, end, "}") && p == end;
}

enum gk_token_status
gk_token_verify(const struct gk_token_keys *k, const char *token, int64_t now_s, struct gk_claims *out)
{
    struct json_object *hdr = NULL, *body = NULL;
    struct gk_claims tmp;
    size_t len, dot1, dot2;
    enum gk_token_status st = GK_TOKEN_INVALID;
    bool previous;

    if (token == NULL)
        return GK_TOKEN_INVALID;
    len = strnlen(token, GK_TOKEN_MAX + 1);
    if (len > GK_TOKEN_MAX || !split_token(token, len, &dot1, &dot2))
        return GK_TOKEN_INVALID;
    /* Nothing in the token is trusted until the header names HS256 and the MAC matches. The
     * header we issue ourselves is recognised as it stands; any other is parsed and checked. */
    if (!(dot1 == sizeof(issued_header) - 1 && memcmp(token, issued_header, dot1) == 0) &&
        (!parse_segment(token, dot1, &hdr) || !header_ok(hdr)))
        goto out;
    if (!signature_ok(k, token, dot2, len, &previous))
        goto out;
    if (!issued_claims(token + dot1 + 1, dot2 - dot1 - 1, &tmp) &&
        (!parse_segment(token + dot1 + 1, dot2 - dot1 - 1, &body) || !read_id(body, "bid", tmp.business) ||
         !read_id(body, "sub", tmp.user) || !read_time(body, "iat", &tmp.iat) ||
         !read_time(body, "exp", &tmp.exp) || !read_ticket(body, &tmp)))
        goto out;
    if (tmp.exp <= tmp.iat)
        goto out;
    tmp.previous_key = previous;
    *out = tmp;
    st = tmp.exp <= now_s ? GK_TOKEN_EXPIRED : GK_TOKEN_VALID;
out:
    json_object_put(body);
    json_object_put(hdr);
    return st;
}
