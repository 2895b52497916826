/* SPDX-License-Identifier: MIT */
/*
 * pow -- proof of work on joining, in ALTCHA's challenge format, stateless and signed.
 *
 * A challenge is {algorithm "SHA-256", challenge, maxnumber, salt, signature}: challenge is the
 * hex SHA-256 of salt followed by a secret number in [0, maxnumber] in decimal, and signature the
 * hex HMAC-SHA256 of challenge under the challenge key. The salt is
 * "<24 hex>?expires=<unix s>&business=<id>&", so a solution is bound to one business and expires
 * GK_POW_TTL_S after it was issued. A solver finds the number by trying them all (about half of
 * maxnumber hashes on average) and sends back the challenge with "number" added, base64-encoded:
 * the payload of ALTCHA's widgets and libraries. Checking it costs one HMAC and one SHA-256, and
 * no state: nothing is stored to issue a challenge; single use is the caller's (a Redis key per
 * challenge, see gk/queue.h).
 *
 * The challenge key is the hex text of HMAC-SHA256(JWT_SECRET, "gatekeeper pow challenge key"):
 * every API node that shares JWT_SECRET derives the same key, and rotating the secret
 * (JWT_SECRET_PREVIOUS) keeps challenges signed under the previous key valid until they expire.
 *
 * In pow_mode "auto" the work follows the business's join rate as this node sees it: the rate of
 * joins that carried a valid proof, averaged with a time constant of GK_POW_RATE_TAU_MS; the work
 * is pow_max_number times rate / GK_POW_CALM_RATE, at least 1 and at most GK_POW_AUTO_MAX times.
 *
 * Thread-safety: a struct gk_pow is shared by every thread; the rate table is guarded by a mutex
 * inside it, the counters are atomic, the keys immutable.
 */
#ifndef GK_POW_H
#define GK_POW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "gk/bizconf.h"
#include "gk/crypto.h"
#include "gk/util.h"

#define GK_POW_TTL_S 300           /* a challenge's life */
#define GK_POW_PAYLOAD_MAX 2048    /* longest X-Gatekeeper-Pow value accepted (base64) */
#define GK_POW_SALT_BUF 192        /* 24 hex, "?expires=", 20 digits, "&business=", an id, "&" */
#define GK_POW_AUTO_MAX 50         /* auto: at most this many times pow_max_number */
#define GK_POW_CALM_RATE 10.0      /* auto: joins per second at which the work starts to rise */
#define GK_POW_RATE_TAU_MS 5000    /* auto: time constant of the join-rate average */
#define GK_POW_BUSINESSES_MAX 1024 /* businesses whose rate and work are tracked at once */

struct gk_pow; /* opaque */

/* One challenge as sent to a client. */
struct gk_pow_challenge {
    char challenge[GK_SHA256_HEX_BUF];
    char salt[GK_POW_SALT_BUF];
    char signature[GK_SHA256_HEX_BUF];
    uint32_t maxnumber;
};

/* A verified solution: its challenge names it for single use, until expires_s. */
struct gk_pow_proof {
    char challenge[GK_SHA256_HEX_BUF];
    int64_t expires_s;
};

/* What /metrics counts. */
enum gk_pow_event {
    GK_POW_ISSUED = 0,      /* challenges handed out (GET /queue/challenge and 428 answers) */
    GK_POW_SOLVED,          /* joins that carried a valid, unused proof */
    GK_POW_REFUSED_MISSING, /* 428 pow_required */
    GK_POW_REFUSED_INVALID, /* 403 pow_invalid */
    GK_POW_REFUSED_REUSED,  /* 403 pow_reused */
    GK_POW_NEVENTS,
};

/* A new instance whose challenge key derives from secret (non-empty) and, when previous is
 * non-empty, also accepts challenges signed under the key of previous. Caller frees with
 * gk_pow_free. Aborts on out-of-memory. */
struct gk_pow *gk_pow_new(const char *secret, const char *previous);
/* Frees p; NULL is fine. */
void gk_pow_free(struct gk_pow *p);

/* The work (maxnumber) of a challenge for business now: max_number in mode on, the rule above in
 * auto; 0 in mode off. Records it for /metrics. Thread-safe. */
uint32_t gk_pow_work(struct gk_pow *p, const char *business, enum gk_pow_mode mode, uint32_t max_number,
                     int64_t now_ms);

/* Issues a challenge of maxnumber for business (a valid id), expiring GK_POW_TTL_S after now_s.
 * GK_EINVAL only if the system's random generator fails. Thread-safe. */
GK_MUSTCHECK enum gk_err gk_pow_challenge_new(const struct gk_pow *p, const char *business,
                                              uint32_t maxnumber, int64_t now_s,
                                              struct gk_pow_challenge *out);

/* Checks the payload an X-Gatekeeper-Pow header carries (base64 of the ALTCHA JSON) for business
 * at now_s: GK_OK and *out filled when it is a solution of a challenge this service signed for
 * this business that has not expired; GK_EINVAL for anything else (malformed, wrong number,
 * forged, expired, another business). Two hashes; no allocation beyond the JSON parse. Whether
 * it was used before is the caller's to check. Thread-safe. */
GK_MUSTCHECK enum gk_err gk_pow_verify(const struct gk_pow *p, const char *business, const char *payload,
                                       int64_t now_s, struct gk_pow_proof *out);

/* Counts ev for /metrics; a GK_POW_SOLVED also counts a join of business for the auto rule.
 * Thread-safe. */
void gk_pow_count(struct gk_pow *p, enum gk_pow_event ev, const char *business, int64_t now_ms);

/* Writes the families gatekeeper_pow_challenges_issued_total, gatekeeper_pow_solved_total,
 * gatekeeper_pow_refused_total{reason} and gatekeeper_pow_work{business} (the work of the
 * business's last challenge from this node). Thread-safe. */
void gk_pow_metrics_write(struct gk_pow *p, FILE *f);

/* A client's side, for tests and the benchmark: finds the number of challenge c by trying
 * 0..maxnumber (true and *number set when found), and writes the payload for it (base64 of the
 * ALTCHA JSON, NUL-terminated) into out, returning its length, 0 if it does not fit. */
bool gk_pow_solve(const struct gk_pow_challenge *c, uint64_t *number);
size_t gk_pow_payload(const struct gk_pow_challenge *c, uint64_t number, char *out, size_t outlen);

#endif
