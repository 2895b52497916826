/* SPDX-License-Identifier: MIT */
/*
 * i18n -- the languages of the visitor-facing pages: one catalogue per language (web/i18n/<code>.json,
 * embedded at build time: every visible string of the waiting and error pages by key), which
 * language a business's setting and a browser's Accept-Language pick, and a catalogue's strings.
 * Pure code over static data; thread-safe.
 */
#ifndef GK_I18N_H
#define GK_I18N_H

#include <stdbool.h>
#include <stddef.h>

#define GK_LANG_BUF 17 /* a language setting: "auto" or a catalogue code, plus NUL */

struct gk_lang {
    const char *code;      /* BCP 47 tag, as in <html lang>: "en", "zh-CN", ... */
    const char *dir;       /* "ltr" or "rtl" */
    const char *catalogue; /* the JSON object of web/i18n/<code>.json, NUL-terminated */
};

/* The catalogue whose code is s (compared without regard to case), or NULL. Static storage. */
const struct gk_lang *gk_i18n_find(const char *s);
/* True when s is "auto" or the code of a catalogue. */
bool gk_i18n_setting_ok(const char *s);
/* The language for a page: the business's setting unless it is "auto" (or unknown), else the best
 * match of accept_language (may be NULL; q-values honoured; "pt-BR" matches "pt", "zh" and
 * "zh-Hans" match "zh-CN"), else English. Never NULL; static storage. */
const struct gk_lang *gk_i18n_pick(const char *setting, const char *accept_language);
/* The string with key `key` in lang's catalogue, or NULL when absent. Caller frees. */
char *gk_i18n_string(const struct gk_lang *lang, const char *key);
/* Number of catalogues, and the i-th (0 <= i < count), in a fixed order. Static storage. */
size_t gk_i18n_count(void);
const struct gk_lang *gk_i18n_at(size_t i);

#endif
