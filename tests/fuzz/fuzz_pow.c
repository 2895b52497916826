/* SPDX-License-Identifier: MIT */
/*
 * fuzz_pow -- gk_pow_verify with fixed keys (a current and a previous secret), as enqueue calls
 * it on the X-Gatekeeper-Pow header of business "shop1". The input is the header value (cut at a
 * NUL, as a header value is). Checks: a payload that verifies is at most GK_POW_PAYLOAD_MAX bytes,
 * names a challenge of 64 lower-case hex digits and expires within the challenge's life of now;
 * and it never verifies for another business.
 */
#include "fuzz/fuzz.h"
#include "gk/pow.h"

/* The corpus's valid payloads are signed with these (tests/fuzz/seeds.py). */
#define SECRET "fuzz-jwt-secret-0123456789abcdefghijklmnop"
#define PREVIOUS "fuzz-previous-secret-zyxwvutsrqponmlkjihgf"
#define NOW_S 1800000000 /* fixed, so a run is repeatable */

static struct gk_pow *pow_keys;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    pow_keys = gk_pow_new(SECRET, PREVIOUS);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *payload = fuzz_cstr(data, size);
    struct gk_pow_proof proof;

    if (gk_pow_verify(pow_keys, "shop1", payload, NOW_S, &proof) == GK_OK) {
        FUZZ_CHECK(strlen(payload) <= GK_POW_PAYLOAD_MAX);
        FUZZ_CHECK(strlen(proof.challenge) == 64 && strspn(proof.challenge, "0123456789abcdef") == 64);
        FUZZ_CHECK(proof.expires_s >= NOW_S && proof.expires_s <= NOW_S + GK_POW_TTL_S + 60);
        FUZZ_CHECK(gk_pow_verify(pow_keys, "shop2", payload, NOW_S, &proof) == GK_EINVAL);
    }
    free(payload);
    return 0;
}
