/* SPDX-License-Identifier: MIT */
/*
 * fuzz_id -- identity headers (business_id, user_id and their hyphenated spellings,
 * X-Gatekeeper-Business) through gk_id_valid, as the handlers call it: on the C string a header
 * value is, with strlen as the length. Checked against a plain restatement of docs/API.md's rule
 * (1-128 bytes of [A-Za-z0-9._:@-]), on the whole input (with any NUL in it) and on the header
 * view of it.
 */
#include "fuzz/fuzz.h"

static bool
reference(const uint8_t *s, size_t len)
{
    static const char allowed[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:@-";

    if (len < 1 || len > 128)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\0' || strchr(allowed, s[i]) == NULL)
            return false;
    }
    return true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    size_t n = strlen(s);

    FUZZ_CHECK(gk_id_valid((const char *)data, size) == reference(data, size));
    FUZZ_CHECK(gk_id_valid(s, n) == reference((const uint8_t *)s, n));
    FUZZ_CHECK(!gk_id_valid(NULL, size));
    free(s);
    return 0;
}
