/* SPDX-License-Identifier: MIT */
/*
 * pow.c -- see gk/pow.h for the contract.
 *
 * The auto rule's join rates live in a fixed table of GK_POW_BUSINESSES_MAX slots, open
 * addressing on a hash of the business id: a bounded, constant cost per join whatever the number
 * of businesses. When the probe finds neither the business nor a free slot, the probed slot with
 * the oldest update is taken over (a business that has been calm longest forgets its rate, which
 * a calm business has close to nothing of anyway).
 */
#include "gk/pow.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "gk/jsonutil.h"
#include "gk/metrics.h"

#define KEY_LABEL "gatekeeper pow challenge key"
#define SALT_RANDOM_BYTES 12
#define PROBES 8

struct rate_slot {
    char business[GK_ID_BUF]; /* "" = free */
    double rate;              /* joins per second, as of last_ms */
    int64_t last_ms;
    uint32_t work; /* of the last challenge issued here, for /metrics */
};

struct gk_pow {
    char keys[2][GK_SHA256_HEX_BUF]; /* current, previous ("" when none) */
    _Atomic uint64_t events[GK_POW_NEVENTS];
    pthread_mutex_t mu; /* guards slots */
    struct rate_slot slots[GK_POW_BUSINESSES_MAX];
};

struct gk_pow *
gk_pow_new(const char *secret, const char *previous)
{
    struct gk_pow *p = gk_xcalloc(1, sizeof(*p));

    GK_ASSERT(secret != NULL && secret[0] != '\0');
    /* The hex text of the derived key is the HMAC key: 64 bytes, a whole SHA-256 block. */
    gk_hmac_sha256_hex(secret, strlen(secret), KEY_LABEL, strlen(KEY_LABEL), p->keys[0]);
    if (previous != NULL && previous[0] != '\0')
        gk_hmac_sha256_hex(previous, strlen(previous), KEY_LABEL, strlen(KEY_LABEL), p->keys[1]);
    GK_ASSERT(pthread_mutex_init(&p->mu, NULL) == 0);
    return p;
}

void
gk_pow_free(struct gk_pow *p)
{
    if (p == NULL)
        return;
    pthread_mutex_destroy(&p->mu);
    memset(p->keys, 0, sizeof(p->keys));
    free(p);
}

static uint32_t
hash_id(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* The slot of business, taken if need be; called with p->mu held. */
static struct rate_slot *
slot_of(struct gk_pow *p, const char *business)
{
    uint32_t h = hash_id(business);
    struct rate_slot *victim = NULL;

    /* Slots are never freed, so a business is always found before the first free slot. */
    for (uint32_t i = 0; i < PROBES; i++) {
        struct rate_slot *s = &p->slots[(h + i) % GK_POW_BUSINESSES_MAX];

        if (s->business[0] == '\0') {
            victim = s;
            break;
        }
        if (strcmp(s->business, business) == 0)
            return s;
        if (victim == NULL || s->last_ms < victim->last_ms)
            victim = s;
    }
    gk_strlcpy(victim->business, business, sizeof(victim->business));
    victim->rate = 0;
    victim->last_ms = 0;
    victim->work = 0;
    return victim;
}

/* The slot's rate decayed to now_ms. */
static double
rate_now(const struct rate_slot *s, int64_t now_ms)
{
    int64_t dt = now_ms - s->last_ms;

    return dt <= 0 ? s->rate : s->rate * exp(-(double)dt / GK_POW_RATE_TAU_MS);
}

uint32_t
gk_pow_work(struct gk_pow *p, const char *business, enum gk_pow_mode mode, uint32_t max_number,
            int64_t now_ms)
{
    struct rate_slot *s;
    double factor = 1;
    uint32_t work;

    if (mode == GK_POW_OFF)
        return 0;
    pthread_mutex_lock(&p->mu);
    s = slot_of(p, business);
    if (mode == GK_POW_AUTO) {
        factor = rate_now(s, now_ms) / GK_POW_CALM_RATE;
        factor = factor < 1 ? 1 : factor > GK_POW_AUTO_MAX ? GK_POW_AUTO_MAX : factor;
    }
    work = (uint32_t)((double)max_number * factor);
    s->work = work;
    pthread_mutex_unlock(&p->mu);
    return work;
}

enum gk_err
gk_pow_challenge_new(const struct gk_pow *p, const char *business, uint32_t maxnumber, int64_t now_s,
                     struct gk_pow_challenge *out)
{
    unsigned char rnd[SALT_RANDOM_BYTES];
    uint64_t secret;
    char text[GK_POW_SALT_BUF + GK_U64_BUF];
    size_t n;
    int len;

    if (gk_random_bytes(rnd, sizeof(rnd)) != GK_OK || gk_random_bytes(&secret, sizeof(secret)) != GK_OK)
        return GK_EINVAL;
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(out->salt + 2 * i, 3, "%02x", rnd[i]);
    len = snprintf(out->salt + 2 * sizeof(rnd), sizeof(out->salt) - 2 * sizeof(rnd),
                   "?expires=%" PRId64 "&business=%s&", now_s + GK_POW_TTL_S, business);
    GK_ASSERT(len > 0 && (size_t)len < sizeof(out->salt) - 2 * sizeof(rnd));
    /* The bias of a 64-bit draw reduced modulo at most 500 million and one is below 1e-10. */
    secret %= (uint64_t)maxnumber + 1;
    n = strlen(out->salt);
    memcpy(text, out->salt, n);
    n += gk_u64_str(secret, text + n);
    gk_sha256_hex(text, n, out->challenge);
    gk_hmac_sha256_hex(p->keys[0], strlen(p->keys[0]), out->challenge, strlen(out->challenge),
                       out->signature);
    out->maxnumber = maxnumber;
    return GK_OK;
}

bool
gk_pow_solve(const struct gk_pow_challenge *c, uint64_t *number)
{
    char text[GK_POW_SALT_BUF + GK_U64_BUF], hex[GK_SHA256_HEX_BUF];
    size_t n = strlen(c->salt);

    memcpy(text, c->salt, n);
    for (uint64_t i = 0; i <= c->maxnumber; i++) {
        gk_sha256_hex(text, n + gk_u64_str(i, text + n), hex);
        if (strcmp(hex, c->challenge) == 0) {
            *number = i;
            return true;
        }
    }
    return false;
}

size_t
gk_pow_payload(const struct gk_pow_challenge *c, uint64_t number, char *out, size_t outlen)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char json[GK_POW_PAYLOAD_MAX / 4 * 3];
    int n = snprintf(json, sizeof(json),
                     "{\"algorithm\":\"SHA-256\",\"challenge\":\"%s\",\"number\":%" PRIu64
                     ",\"salt\":\"%s\",\"signature\":\"%s\"}",
                     c->challenge, number, c->salt, c->signature);
    size_t o = 0;

    if (n <= 0 || (size_t)n >= sizeof(json) || ((size_t)n + 2) / 3 * 4 >= outlen)
        return 0;
    for (int i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)json[i] << 16;

        v |= i + 1 < n ? (uint32_t)(unsigned char)json[i + 1] << 8 : 0;
        v |= i + 2 < n ? (uint32_t)(unsigned char)json[i + 2] : 0;
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

/* The member key of obj as a string of 1..max bytes without NUL, or NULL. */
static const char *
str_member(struct json_object *obj, const char *key, size_t max)
{
    struct json_object *v;
    const char *s;

    if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    s = json_object_get_string(v);
    if (json_object_get_string_len(v) == 0 || (size_t)json_object_get_string_len(v) > max ||
        strlen(s) != (size_t)json_object_get_string_len(v))
        return NULL;
    return s;
}

static bool
is_lower_hex64(const char *s)
{
    size_t i;

    for (i = 0; s[i] != '\0'; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return i == GK_SHA256_HEX_BUF - 1;
}

/* Reads expires and business from a salt of ours: "<hex>?expires=<s>&business=<id>&". */
static bool
salt_params(const char *salt, int64_t *expires_s, char business[GK_ID_BUF])
{
    char buf[GK_POW_SALT_BUF], *q, *tok, *save = NULL;
    bool have_exp = false, have_biz = false;

    if (gk_strlcpy(buf, salt, sizeof(buf)) >= sizeof(buf) || (q = strchr(buf, '?')) == NULL)
        return false;
    for (tok = strtok_r(q + 1, "&", &save); tok != NULL; tok = strtok_r(NULL, "&", &save)) {
        if (strncmp(tok, "expires=", 8) == 0 && !have_exp)
            have_exp = gk_parse_i64(tok + 8, 0, INT64_MAX / 2, expires_s) == GK_OK;
        else if (strncmp(tok, "business=", 9) == 0 && !have_biz)
            have_biz = gk_id_valid(tok + 9, strlen(tok + 9)) && gk_strlcpy(business, tok + 9, GK_ID_BUF) > 0;
        else
            return false;
    }
    return have_exp && have_biz;
}

enum gk_err
gk_pow_verify(const struct gk_pow *p, const char *business, const char *payload, int64_t now_s,
              struct gk_pow_proof *out)
{
    unsigned char json[GK_POW_PAYLOAD_MAX / 4 * 3 + 1];
    struct json_object *root = NULL, *num;
    const char *alg, *challenge, *salt, *sig;
    char text[GK_POW_SALT_BUF + GK_U64_BUF], hex[GK_SHA256_HEX_BUF], salt_biz[GK_ID_BUF];
    size_t len, n;
    int64_t number, expires;
    enum gk_err rc = GK_EINVAL;
    bool signed_ok = false;

    len = strnlen(payload, GK_POW_PAYLOAD_MAX + 1);
    if (len > GK_POW_PAYLOAD_MAX)
        return GK_EINVAL;
    if (!gk_base64_decode(payload, len, GK_B64_ANY, json, sizeof(json), &len) ||
        (root = gk_json_parse_object((const char *)json, len)) == NULL)
        goto out;
    alg = str_member(root, "algorithm", 16);
    challenge = str_member(root, "challenge", GK_SHA256_HEX_BUF - 1);
    salt = str_member(root, "salt", GK_POW_SALT_BUF - 1);
    sig = str_member(root, "signature", GK_SHA256_HEX_BUF - 1);
    if (alg == NULL || challenge == NULL || salt == NULL || sig == NULL || strcmp(alg, "SHA-256") != 0 ||
        !is_lower_hex64(challenge) || !is_lower_hex64(sig) ||
        !json_object_object_get_ex(root, "number", &num) || !json_object_is_type(num, json_type_int) ||
        (number = json_object_get_int64(num)) < 0 || number == INT64_MAX)
        goto out;
    /* The salt's claims first (no hash), then the signature, then the work. */
    if (!salt_params(salt, &expires, salt_biz) || strcmp(salt_biz, business) != 0 || expires < now_s ||
        expires > now_s + GK_POW_TTL_S + 60)
        goto out;
    for (int k = 0; k < 2 && !signed_ok; k++) {
        if (p->keys[k][0] == '\0')
            continue;
        gk_hmac_sha256_hex(p->keys[k], strlen(p->keys[k]), challenge, GK_SHA256_HEX_BUF - 1, hex);
        signed_ok = gk_ct_equal(hex, sig, GK_SHA256_HEX_BUF - 1);
    }
    if (!signed_ok)
        goto out;
    n = strlen(salt);
    memcpy(text, salt, n);
    n += gk_u64_str((uint64_t)number, text + n);
    gk_sha256_hex(text, n, hex);
    if (!gk_ct_equal(hex, challenge, GK_SHA256_HEX_BUF - 1))
        goto out;
    memcpy(out->challenge, challenge, GK_SHA256_HEX_BUF);
    out->expires_s = expires;
    rc = GK_OK;
out:
    json_object_put(root);
    return rc;
}

void
gk_pow_count(struct gk_pow *p, enum gk_pow_event ev, const char *business, int64_t now_ms)
{
    struct rate_slot *s;

    GK_ASSERT((unsigned)ev < GK_POW_NEVENTS);
    atomic_fetch_add_explicit(&p->events[ev], 1, memory_order_relaxed);
    if (ev != GK_POW_SOLVED)
        return;
    pthread_mutex_lock(&p->mu);
    s = slot_of(p, business);
    /* An exponential average: each join adds 1/tau, decaying with time constant tau. */
    s->rate = rate_now(s, now_ms) + 1000.0 / GK_POW_RATE_TAU_MS;
    s->last_ms = now_ms > s->last_ms ? now_ms : s->last_ms;
    pthread_mutex_unlock(&p->mu);
}

void
gk_pow_metrics_write(struct gk_pow *p, FILE *f)
{
    static const char *const reasons[] = {
        [GK_POW_REFUSED_MISSING] = "missing",
        [GK_POW_REFUSED_INVALID] = "invalid",
        [GK_POW_REFUSED_REUSED] = "reused",
    };

    gk_metrics_family(f, "gatekeeper_pow_challenges_issued_total", "counter",
                      "Proof-of-work challenges issued (GET /queue/challenge and 428 answers).");
    fprintf(f, "gatekeeper_pow_challenges_issued_total %" PRIu64 "\n",
            atomic_load_explicit(&p->events[GK_POW_ISSUED], memory_order_relaxed));
    gk_metrics_family(f, "gatekeeper_pow_solved_total", "counter",
                      "Joins that carried a valid proof of work, spent for the first time.");
    fprintf(f, "gatekeeper_pow_solved_total %" PRIu64 "\n",
            atomic_load_explicit(&p->events[GK_POW_SOLVED], memory_order_relaxed));
    gk_metrics_family(f, "gatekeeper_pow_refused_total", "counter",
                      "Joins refused for their proof of work: missing (428), invalid or reused (403).");
    for (int ev = GK_POW_REFUSED_MISSING; ev <= GK_POW_REFUSED_REUSED; ev++)
        fprintf(f, "gatekeeper_pow_refused_total{reason=\"%s\"} %" PRIu64 "\n", reasons[ev],
                atomic_load_explicit(&p->events[ev], memory_order_relaxed));
    gk_metrics_family(f, "gatekeeper_pow_work", "gauge",
                      "The work (maxnumber) of the last challenge this node issued, per business.");
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < GK_POW_BUSINESSES_MAX; i++) {
        if (p->slots[i].business[0] != '\0' && p->slots[i].work > 0)
            fprintf(f, "gatekeeper_pow_work{business=\"%s\"} %" PRIu32 "\n", p->slots[i].business,
                    p->slots[i].work);
    }
    pthread_mutex_unlock(&p->mu);
}
