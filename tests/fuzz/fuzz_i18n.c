/* SPDX-License-Identifier: MIT */
/*
 * fuzz_i18n -- Accept-Language through gk_i18n_pick, as the waiting page calls it (a header value,
 * a C string): the answer is always one of the catalogues; a business's own choice always wins;
 * the picker reads no further than its bound; and the input as a page.language setting is
 * accepted exactly when it is "auto" or a catalogue's code.
 */
#include "fuzz/fuzz.h"

#include <strings.h>

#include "gk/i18n.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    const struct gk_lang *l = gk_i18n_pick("auto", s);
    bool known = false;

    FUZZ_CHECK(l != NULL);
    for (size_t i = 0; i < gk_i18n_count(); i++)
        known = known || l == gk_i18n_at(i);
    FUZZ_CHECK(known);
    FUZZ_CHECK(gk_i18n_pick("ja", s) == gk_i18n_find("ja"));
    known = strcmp(s, "auto") == 0;
    for (size_t i = 0; i < gk_i18n_count(); i++)
        known = known || strcasecmp(s, gk_i18n_at(i)->code) == 0;
    FUZZ_CHECK(gk_i18n_setting_ok(s) == known);
    free(s);
    return 0;
}
